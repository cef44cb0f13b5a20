#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

/* Suffix of each kind: block hooks are "blocks.L.<suffix>". */
static const char *const suffix[LP_HOOK_KIND_COUNT] = {
    [LP_HOOK_EMBED] = "hook_embed",
    [LP_HOOK_POS_EMBED] = "hook_pos_embed",
    [LP_HOOK_RESID_PRE] = "hook_resid_pre",
    [LP_HOOK_LN1_SCALE] = "ln1.hook_scale",
    [LP_HOOK_LN1_NORMALIZED] = "ln1.hook_normalized",
    [LP_HOOK_Q] = "attn.hook_q",
    [LP_HOOK_K] = "attn.hook_k",
    [LP_HOOK_V] = "attn.hook_v",
    [LP_HOOK_ROT_Q] = "attn.hook_rot_q",
    [LP_HOOK_ROT_K] = "attn.hook_rot_k",
    [LP_HOOK_ATTN_SCORES] = "attn.hook_attn_scores",
    [LP_HOOK_PATTERN] = "attn.hook_pattern",
    [LP_HOOK_Z] = "attn.hook_z",
    [LP_HOOK_ATTN_OUT] = "hook_attn_out",
    [LP_HOOK_RESID_MID] = "hook_resid_mid",
    [LP_HOOK_LN2_SCALE] = "ln2.hook_scale",
    [LP_HOOK_LN2_NORMALIZED] = "ln2.hook_normalized",
    [LP_HOOK_MLP_PRE] = "mlp.hook_pre",
    [LP_HOOK_MLP_PRE_LINEAR] = "mlp.hook_pre_linear",
    [LP_HOOK_MLP_POST] = "mlp.hook_post",
    [LP_HOOK_MLP_OUT] = "hook_mlp_out",
    [LP_HOOK_RESID_POST] = "hook_resid_post",
    [LP_HOOK_LN_FINAL_SCALE] = "ln_final.hook_scale",
    [LP_HOOK_LN_FINAL_NORMALIZED] = "ln_final.hook_normalized",
};

int lp_hook_kind_is_block(lp_hook_kind k)
{
    return k != LP_HOOK_EMBED && k != LP_HOOK_POS_EMBED && k != LP_HOOK_LN_FINAL_SCALE &&
           k != LP_HOOK_LN_FINAL_NORMALIZED;
}

int lp_hook_name(lp_hook_kind k, int layer, char *buf, size_t cap)
{
    if ((unsigned)k >= LP_HOOK_KIND_COUNT)
        return snprintf(buf, cap, "?");
    if (lp_hook_kind_is_block(k))
        return snprintf(buf, cap, "blocks.%d.%s", layer, suffix[k]);
    return snprintf(buf, cap, "%s", suffix[k]);
}

int lp_hook_parse(const char *name, lp_hook_kind *kind, int *layer)
{
    if (strncmp(name, "blocks.", 7) == 0) {
        const char *p = name + 7;
        if (*p < '0' || *p > '9')
            return LP_ENOTFOUND;
        long l = 0;
        while (*p >= '0' && *p <= '9' && l < 1000000)
            l = l * 10 + (*p++ - '0');
        if (*p++ != '.')
            return LP_ENOTFOUND;
        for (int k = 0; k < LP_HOOK_KIND_COUNT; k++)
            if (lp_hook_kind_is_block((lp_hook_kind)k) && strcmp(p, suffix[k]) == 0) {
                *kind = (lp_hook_kind)k;
                *layer = (int)l;
                return LP_OK;
            }
        return LP_ENOTFOUND;
    }
    for (int k = 0; k < LP_HOOK_KIND_COUNT; k++)
        if (!lp_hook_kind_is_block((lp_hook_kind)k) && strcmp(name, suffix[k]) == 0) {
            *kind = (lp_hook_kind)k;
            *layer = -1;
            return LP_OK;
        }
    return LP_ENOTFOUND;
}

int lp_hook_match(const char *pattern, const char *name)
{
    if (!strpbrk(pattern, "*?["))
        return strcmp(pattern, name) == 0;
    return fnmatch(pattern, name, 0) == 0;
}

typedef struct hook_entry {
    char *pattern;
    lp_hook_fn fn;
    void *user;
} hook_entry;

struct lp_hooks {
    hook_entry *e;
    int n, cap;
};

lp_hooks *lp_hooks_new(void) { return calloc(1, sizeof(lp_hooks)); }

void lp_hooks_clear(lp_hooks *h)
{
    for (int i = 0; i < h->n; i++)
        free(h->e[i].pattern);
    h->n = 0;
}

void lp_hooks_free(lp_hooks *h)
{
    if (!h)
        return;
    lp_hooks_clear(h);
    free(h->e);
    free(h);
}

int lp_hooks_count(const lp_hooks *h) { return h ? h->n : 0; }

int lp_hooks_add(lp_hooks *h, const char *pattern, lp_hook_fn fn, void *user, lp_error *err)
{
    if (!pattern || !*pattern || !fn)
        return lp_error_set(err, LP_EINVAL, "hook needs a name pattern and a callback");
    if (h->n == h->cap) {
        int nc = h->cap ? h->cap * 2 : 8;
        hook_entry *ne = realloc(h->e, (size_t)nc * sizeof *ne);
        if (!ne)
            return lp_error_set(err, LP_ENOMEM, "out of memory");
        h->e = ne;
        h->cap = nc;
    }
    char *p = lpi_strdup(pattern);
    if (!p)
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    h->e[h->n++] = (hook_entry){p, fn, user};
    return LP_OK;
}

/* Internal accessors for the forward pass. */
LPI_HIDDEN int lpi_hooks_n(const lp_hooks *h) { return h ? h->n : 0; }
LPI_HIDDEN const char *lpi_hooks_pattern(const lp_hooks *h, int i) { return h->e[i].pattern; }
LPI_HIDDEN lp_hook_fn lpi_hooks_fn(const lp_hooks *h, int i) { return h->e[i].fn; }
LPI_HIDDEN void *lpi_hooks_user(const lp_hooks *h, int i) { return h->e[i].user; }
