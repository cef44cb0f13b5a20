/* loupe — NumPy .npy files (version 1.0/2.0, little-endian, C order). */
#ifndef LOUPE_NPY_H
#define LOUPE_NPY_H

#include "loupe/error.h"
#include "loupe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write t (any layout; written contiguous) as `as` dtype (LP_F32 or the tensor's own
 * dtype), atomically via temp file + rename. */
int lp_npy_save(const char *path, const lp_tensor *t, lp_error *err);
/* Read a .npy into a malloc'd buffer (*data, caller frees with free()); the returned
 * tensor views it. Supports <f4 <f8 <f2 <i4 <i8 |u1 |b1. */
int lp_npy_load(const char *path, lp_tensor *out, void **data, lp_error *err);

#ifdef __cplusplus
}
#endif
#endif
