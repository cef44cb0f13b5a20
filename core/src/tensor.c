#include <string.h>

#include "loupe_impl.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[LP_DTYPE_COUNT] = {
    [LP_F32] = {"F32", 4}, [LP_F16] = {"F16", 2}, [LP_BF16] = {"BF16", 2}, [LP_F64] = {"F64", 8},
    [LP_I64] = {"I64", 8}, [LP_I32] = {"I32", 4}, [LP_I16] = {"I16", 2},   [LP_I8] = {"I8", 1},
    [LP_U8] = {"U8", 1},   [LP_BOOL] = {"BOOL", 1},
};

size_t lp_dtype_size(lp_dtype t) { return (unsigned)t < LP_DTYPE_COUNT ? dtypes[t].size : 0; }
const char *lp_dtype_name(lp_dtype t) { return (unsigned)t < LP_DTYPE_COUNT ? dtypes[t].name : "?"; }

int lp_dtype_from_name(const char *name, lp_dtype *out)
{
    for (int i = 0; i < LP_DTYPE_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (lp_dtype)i;
            return LP_OK;
        }
    return LP_EUNSUPPORTED;
}

lp_tensor lp_tensor_make(lp_dtype t, void *data, int ndim, const int64_t *ne)
{
    lp_tensor x;
    memset(&x, 0, sizeof x);
    x.dtype = t;
    x.ndim = ndim;
    x.data = data;
    int64_t stride = (int64_t)lp_dtype_size(t);
    for (int i = ndim - 1; i >= 0; i--) {
        x.ne[i] = ne[i];
        x.nb[i] = stride;
        stride *= ne[i];
    }
    return x;
}

int64_t lp_tensor_nelem(const lp_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->ne[i];
    return n;
}

size_t lp_tensor_nbytes(const lp_tensor *t) { return (size_t)lp_tensor_nelem(t) * lp_dtype_size(t->dtype); }

int lp_tensor_is_contiguous(const lp_tensor *t)
{
    int64_t stride = (int64_t)lp_dtype_size(t->dtype);
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->ne[i] != 1 && t->nb[i] != stride)
            return 0;
        stride *= t->ne[i];
    }
    return 1;
}

void *lp_tensor_ptr(const lp_tensor *t, const int64_t *idx)
{
    char *p = t->data;
    for (int i = 0; i < t->ndim; i++)
        p += idx[i] * t->nb[i];
    return p;
}

lp_tensor lp_tensor_select(const lp_tensor *t, int dim, int64_t i)
{
    lp_tensor v = *t;
    v.data = (char *)t->data + i * t->nb[dim];
    for (int d = dim; d < t->ndim - 1; d++) {
        v.ne[d] = t->ne[d + 1];
        v.nb[d] = t->nb[d + 1];
    }
    v.ndim = t->ndim - 1;
    return v;
}

lp_tensor lp_tensor_narrow(const lp_tensor *t, int dim, int64_t start, int64_t len)
{
    lp_tensor v = *t;
    v.data = (char *)t->data + start * t->nb[dim];
    v.ne[dim] = len;
    return v;
}

float lp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float lp_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lp_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)((x + rounding) >> 16);
}

uint16_t lp_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (ax >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* subnormal or zero in half */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = ax >> 23;
        uint32_t man = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((ax >> 13) - (112u << 10));
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
        half++;
    return (uint16_t)(sign | half);
}

static double load_elem(lp_dtype t, const void *p)
{
    switch (t) {
    case LP_F32: { float v; memcpy(&v, p, 4); return v; }
    case LP_F64: { double v; memcpy(&v, p, 8); return v; }
    case LP_F16: { uint16_t v; memcpy(&v, p, 2); return lp_f16_to_f32(v); }
    case LP_BF16: { uint16_t v; memcpy(&v, p, 2); return lp_bf16_to_f32(v); }
    case LP_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case LP_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case LP_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case LP_I8: return *(const int8_t *)p;
    case LP_U8: case LP_BOOL: return *(const uint8_t *)p;
    default: return 0;
    }
}

void lp_tensor_to_f32(const lp_tensor *src, float *dst)
{
    int64_t n = lp_tensor_nelem(src);
    if (n == 0)
        return;
    if (src->dtype == LP_F32 && lp_tensor_is_contiguous(src)) {
        memcpy(dst, src->data, (size_t)n * 4);
        return;
    }
    int64_t idx[LP_MAX_DIMS] = {0};
    int nd = src->ndim;
    for (int64_t k = 0; k < n; k++) {
        const char *p = src->data;
        for (int i = 0; i < nd; i++)
            p += idx[i] * src->nb[i];
        dst[k] = (float)load_elem(src->dtype, p);
        for (int i = nd - 1; i >= 0; i--) {
            if (++idx[i] < src->ne[i])
                break;
            idx[i] = 0;
        }
    }
}
