/* Activation cache: a filter of name patterns and an arena of large chunks that the
 * forward pass writes wanted activations into directly. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "loupe_impl.h"

#define CHUNK_MIN (16u << 20)
#define HUGE_PAGE (2u << 20)

typedef struct chunk {
    char *mem;
    size_t cap, used;
} chunk;

typedef struct centry {
    char *name;
    lp_tensor t;
} centry;

struct lp_cache {
    char **pat;
    int n_pat;
    chunk *ch;
    int n_ch, cur;
    centry *e;
    int n, cap;
    size_t used;
};

lp_cache *lp_cache_new(void) { return calloc(1, sizeof(lp_cache)); }

static void free_filter(lp_cache *c)
{
    for (int i = 0; i < c->n_pat; i++)
        free(c->pat[i]);
    free(c->pat);
    c->pat = NULL;
    c->n_pat = 0;
}

void lp_cache_reset(lp_cache *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->e[i].name);
    c->n = 0;
    for (int i = 0; i < c->n_ch; i++)
        c->ch[i].used = 0;
    c->cur = 0;
    c->used = 0;
}

void lp_cache_free(lp_cache *c)
{
    if (!c)
        return;
    lp_cache_reset(c);
    for (int i = 0; i < c->n_ch; i++)
        free(c->ch[i].mem);
    free(c->ch);
    free(c->e);
    free_filter(c);
    free(c);
}

int lp_cache_set_filter(lp_cache *c, const char *const *patterns, int n, lp_error *err)
{
    free_filter(c);
    if (n <= 0)
        return LP_OK;
    c->pat = calloc((size_t)n, sizeof(char *));
    if (!c->pat)
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (!patterns[i] || !*patterns[i]) {
            free_filter(c);
            return lp_error_set(err, LP_EINVAL, "empty cache name pattern");
        }
        c->pat[i] = lpi_strdup(patterns[i]);
        c->n_pat = i + 1;
    }
    return LP_OK;
}

int lp_cache_wants(const lp_cache *c, const char *name)
{
    if (!c)
        return 0;
    if (c->n_pat == 0)
        return 1;
    for (int i = 0; i < c->n_pat; i++)
        if (lp_hook_match(c->pat[i], name))
            return 1;
    return 0;
}

int lp_cache_count(const lp_cache *c) { return c->n; }
const char *lp_cache_name(const lp_cache *c, int i) { return c->e[i].name; }
lp_tensor lp_cache_entry(const lp_cache *c, int i) { return c->e[i].t; }
size_t lp_cache_bytes_used(const lp_cache *c) { return c->used; }

size_t lp_cache_bytes_reserved(const lp_cache *c)
{
    size_t s = 0;
    for (int i = 0; i < c->n_ch; i++)
        s += c->ch[i].cap;
    return s;
}

int lp_cache_find(const lp_cache *c, const char *name)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (strcmp(c->e[i].name, name) == 0)
            return i;
    return -1;
}

static void *arena_alloc(lp_cache *c, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    for (; c->cur < c->n_ch; c->cur++) {
        chunk *k = &c->ch[c->cur];
        if (k->cap - k->used >= bytes) {
            void *p = k->mem + k->used;
            k->used += bytes;
            return p;
        }
    }
    chunk *nc = realloc(c->ch, (size_t)(c->n_ch + 1) * sizeof *nc);
    if (!nc)
        return NULL;
    c->ch = nc;
    size_t cap = bytes > CHUNK_MIN ? bytes : CHUNK_MIN;
    cap = (cap + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
    /* Huge pages: a full cache of a GPT-2-small forward is gigabytes written once; 2 MiB
     * pages make first touch ~500x fewer faults. */
    char *mem = NULL;
    if (posix_memalign((void **)&mem, HUGE_PAGE, cap) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(mem, cap, MADV_HUGEPAGE);
#endif
    c->ch[c->n_ch] = (chunk){mem, cap, bytes};
    c->cur = c->n_ch;
    c->n_ch++;
    return mem;
}

lp_tensor lp_cache_alloc(lp_cache *c, const char *name, int ndim, const int64_t *ne)
{
    lp_tensor t = lp_tensor_make(LP_F32, NULL, ndim, ne);
    if (c->n == c->cap) {
        int ncap = c->cap ? 2 * c->cap : 64;
        centry *e = realloc(c->e, (size_t)ncap * sizeof *e);
        if (!e)
            return t;
        c->e = e;
        c->cap = ncap;
    }
    size_t bytes = lp_tensor_nbytes(&t);
    void *p = arena_alloc(c, bytes);
    char *nm = lpi_strdup(name);
    if (!p || !nm) {
        free(nm);
        return t;
    }
    t.data = p;
    c->e[c->n++] = (centry){nm, t};
    c->used += bytes;
    return t;
}
