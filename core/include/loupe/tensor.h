/* loupe — tensors: a plain struct describing typed, strided memory it does not own.
 *
 * A tensor is a view: dtype, sizes (ne) and strides in bytes (nb), and a data pointer.
 * It never owns its data; whoever produced it says how long the data lives (a model's
 * weights live as long as the model, a hook's activation only for the duration of the
 * hook call, a cache's entries until the cache is reset or freed). Slicing a head or a
 * layer is a new view: nothing is copied. */
#ifndef LOUPE_TENSOR_H
#define LOUPE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LP_MAX_DIMS 6

typedef enum lp_dtype {
    LP_F32 = 0,
    LP_F16,
    LP_BF16,
    LP_F64,
    LP_I64,
    LP_I32,
    LP_I16,
    LP_I8,
    LP_U8,
    LP_BOOL,
    LP_DTYPE_COUNT
} lp_dtype;

typedef struct lp_tensor {
    lp_dtype dtype;
    int ndim;
    int64_t ne[LP_MAX_DIMS]; /* sizes, outermost first (row-major)             */
    int64_t nb[LP_MAX_DIMS]; /* strides in bytes                               */
    void *data;              /* first element; borrowed, see the producer's doc */
} lp_tensor;

size_t lp_dtype_size(lp_dtype t);
const char *lp_dtype_name(lp_dtype t);           /* "F32", "BF16", … (safetensors spelling) */
int lp_dtype_from_name(const char *name, lp_dtype *out); /* 0 or LP_EUNSUPPORTED */

/* A contiguous row-major view over data with the given sizes. */
lp_tensor lp_tensor_make(lp_dtype t, void *data, int ndim, const int64_t *ne);
int64_t lp_tensor_nelem(const lp_tensor *t);
size_t lp_tensor_nbytes(const lp_tensor *t); /* nelem * dtype size */
int lp_tensor_is_contiguous(const lp_tensor *t);
/* Element pointer at a full index (ndim entries). */
void *lp_tensor_ptr(const lp_tensor *t, const int64_t *idx);
/* View of index i along dim (drops that dimension). */
lp_tensor lp_tensor_select(const lp_tensor *t, int dim, int64_t i);
/* View of [start, start+len) along dim. */
lp_tensor lp_tensor_narrow(const lp_tensor *t, int dim, int64_t start, int64_t len);
/* Copy src into contiguous f32 dst (dst holds nelem floats); converts f16/bf16/f64/ints. */
void lp_tensor_to_f32(const lp_tensor *src, float *dst);

/* Scalar conversions used by loaders and writers. */
float lp_f16_to_f32(uint16_t h);
float lp_bf16_to_f32(uint16_t h);
uint16_t lp_f32_to_f16(float f);
uint16_t lp_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
