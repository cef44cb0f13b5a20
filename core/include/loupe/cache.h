/* loupe — activation caches.
 *
 * A cache names what it wants with a filter (exact names or globs); a forward pass
 * run with the cache writes each wanted activation straight into the cache's arena
 * (no copy) and never materialises the rest, so asking for one layer's residual
 * stream costs one layer's memory. Entries keep TransformerLens shapes with the
 * leading batch dimension. The cache owns its memory: entry views stay valid until
 * lp_cache_reset (O(1), keeps the arena for reuse) or lp_cache_free. */
#ifndef LOUPE_CACHE_H
#define LOUPE_CACHE_H

#include "loupe/error.h"
#include "loupe/hook.h"
#include "loupe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_cache lp_cache;

lp_cache *lp_cache_new(void);
void lp_cache_free(lp_cache *c);
/* Patterns are copied. n == 0 means "everything". Replaces any previous filter. */
int lp_cache_set_filter(lp_cache *c, const char *const *patterns, int n, lp_error *err);
/* Whether the filter wants this hook name. */
int lp_cache_wants(const lp_cache *c, const char *name);
void lp_cache_reset(lp_cache *c);
int lp_cache_count(const lp_cache *c);
const char *lp_cache_name(const lp_cache *c, int i);
lp_tensor lp_cache_entry(const lp_cache *c, int i);
/* Index of an entry by exact name, or -1. */
int lp_cache_find(const lp_cache *c, const char *name);
/* Bytes held by entries / reserved by the arena. */
size_t lp_cache_bytes_used(const lp_cache *c);
size_t lp_cache_bytes_reserved(const lp_cache *c);

/* Used by the forward pass: reserve an f32 entry of the given shape and return it
 * (uninitialised). Returns NULL data on allocation failure. */
lp_tensor lp_cache_alloc(lp_cache *c, const char *name, int ndim, const int64_t *ne);

#ifdef __cplusplus
}
#endif
#endif
