/* loupe — safetensors files: memory-mapped reading and atomic writing.
 *
 * Reading validates the whole header before anything is used: the header length
 * against the file size, the JSON, each entry's dtype, shape, byte size and data
 * offsets (inside the data area, not overlapping). Data stays memory-mapped; views
 * returned by lp_st_get point into the mapping and live as long as the lp_st_file. */
#ifndef LOUPE_SAFETENSORS_H
#define LOUPE_SAFETENSORS_H

#include "loupe/error.h"
#include "loupe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_st_file lp_st_file;

int lp_st_open(const char *path, lp_st_file **out, lp_error *err);
/* Parse a header+data image already in memory (not copied; must outlive the handle).
 * `name` is used in error messages. Used by the fuzz target and tests. */
int lp_st_open_mem(const void *data, size_t len, const char *name, lp_st_file **out, lp_error *err);
void lp_st_close(lp_st_file *f);

int lp_st_count(const lp_st_file *f);
const char *lp_st_name(const lp_st_file *f, int i);
/* Index of a tensor by name, or -1. */
int lp_st_find(const lp_st_file *f, const char *name);
/* View of tensor i (data points into the mapping). */
lp_tensor lp_st_tensor(const lp_st_file *f, int i);
const char *lp_st_path(const lp_st_file *f);
/* Value of a string in __metadata__, or NULL. Borrowed. */
const char *lp_st_metadata(const lp_st_file *f, const char *key);
/* Tell the kernel the mapped bytes of tensor i are no longer needed (after conversion). */
void lp_st_release(lp_st_file *f, int i);

/* Writing: collect named tensors (their data is copied when written, so it only has
 * to stay valid until lp_st_writer_finish), then write to `path` atomically through
 * a temporary file in the same directory and rename(2). */
typedef struct lp_st_writer lp_st_writer;
lp_st_writer *lp_st_writer_new(void);
/* Tensor t is converted to dtype `as` (LP_F32, LP_F16, LP_BF16, or its own dtype). */
int lp_st_writer_add(lp_st_writer *w, const char *name, const lp_tensor *t, lp_dtype as, lp_error *err);
int lp_st_writer_set_metadata(lp_st_writer *w, const char *key, const char *value, lp_error *err);
int lp_st_writer_finish(lp_st_writer *w, const char *path, lp_error *err);
void lp_st_writer_free(lp_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
