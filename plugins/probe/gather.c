/* probe — gathering activations: one cached forward pass per text, texts batched by
 * similar length with right padding, the activation at each example's token copied out
 * for every requested hook. Char offsets become tokens through the tokens' byte lengths
 * (byte-level BPE tokens concatenate back to the text). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_impl.h"

enum { MAX_BATCH = 16 };

int pr_hooks_matching(const pr_ctx *x, const char *pattern, char ***names, int *n)
{
    int np = x->h->model_n_hook_points(x->m);
    char **out = calloc((size_t)np + 1, sizeof *out);
    if (!out)
        return LP_ENOMEM;
    int k = 0;
    for (int i = 0; i < np; i++) {
        lp_hook_kind kind;
        int layer;
        char nm[96];
        x->h->model_hook_point(x->m, i, &kind, &layer);
        x->h->hook_name(kind, layer, nm, sizeof nm);
        if (x->h->hook_match(pattern, nm) && !(out[k++] = strdup(nm))) {
            for (int j = 0; j < k - 1; j++)
                free(out[j]);
            free(out);
            return LP_ENOMEM;
        }
    }
    *names = out;
    *n = k;
    return 0;
}

int pr_encode(const pr_ctx *x, const char *text, int32_t **ids, int **starts, int *n)
{
    lp_error err = {0};
    int32_t *plain = NULL;
    int np = 0;
    int rc = x->h->tokenize(x->m, text, -1, ids, n, &err);
    if (rc)
        return x->h->error(x->call, rc, "tokenize: %s", err.msg);
    if (!starts)
        return 0;
    if ((rc = x->h->tokenize(x->m, text, 0, &plain, &np, &err))) {
        x->h->free(*ids);
        return x->h->error(x->call, rc, "tokenize: %s", err.msg);
    }
    int shift = *n - np;
    *starts = malloc(sizeof(int) * (size_t)(*n + 1));
    if (!*starts) {
        x->h->free(plain);
        x->h->free(*ids);
        return x->h->error(x->call, LP_ENOMEM, "out of memory");
    }
    for (int i = 0; i < shift; i++)
        (*starts)[i] = -1;
    int off = 0;
    for (int i = 0; i < np; i++) {
        (*starts)[shift + i] = off;
        int b = x->h->token_bytes(x->m, plain[i], NULL, 0);
        off += b > 0 ? b : 0;
    }
    (*starts)[*n] = off;
    x->h->free(plain);
    return 0;
}

typedef struct item {
    int text, len;
} item;

static int by_len(const void *a, const void *b)
{
    const item *p = a, *q = b;
    return p->len != q->len ? p->len - q->len : p->text - q->text;
}

/* log-softmax of a row in double */
static void log_softmax(const float *z, int V, double *out)
{
    float mx = z[0];
    for (int v = 1; v < V; v++)
        mx = z[v] > mx ? z[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++)
        s += exp((double)z[v] - mx);
    double l = mx + log(s);
    for (int v = 0; v < V; v++)
        out[v] = z[v] - l;
}

static int ends_with(const char *s, const char *t)
{
    size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

int pr_hook_width(const pr_ctx *x, const char *name)
{
    const lp_config *c = x->h->model_config(x->m);
    if (ends_with(name, "hook_pattern") || ends_with(name, "hook_attn_scores"))
        return LP_EUNSUPPORTED;
    if (ends_with(name, "mlp.hook_pre") || ends_with(name, "mlp.hook_pre_linear") || ends_with(name, "mlp.hook_post"))
        return c->d_mlp;
    if (ends_with(name, "attn.hook_q") || ends_with(name, "attn.hook_k") || ends_with(name, "attn.hook_v") ||
        ends_with(name, "attn.hook_rot_q") || ends_with(name, "attn.hook_rot_k") || ends_with(name, "attn.hook_z"))
        return c->n_heads * c->d_head;
    if (ends_with(name, "hook_scale"))
        return 1;
    return c->d_model;
}

int pr_gather(const pr_ctx *x, const pr_data *d, char *const *hooks, int n_hooks, float **X, const lp_hooks *edit,
              double *kl)
{
    const lp_host_api *h = x->h;
    const lp_config *cfg = h->model_config(x->m);
    const int V = cfg->d_vocab;
    int rc = 0;
    /* examples grouped by text */
    int *first = malloc(sizeof(int) * (size_t)(d->n_texts + 1));
    int *order = malloc(sizeof(int) * (size_t)(d->n > 0 ? d->n : 1));
    item *items = malloc(sizeof(item) * (size_t)d->n_texts);
    int32_t **ids = calloc((size_t)d->n_texts, sizeof *ids);
    int **starts = calloc((size_t)d->n_texts, sizeof *starts);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)MAX_BATCH * (size_t)cfg->n_ctx);
    int32_t lens[MAX_BATCH];
    /* logits for the KL: at most 32M floats per buffer (or one full-context sequence) */
    size_t lg_cap = (size_t)MAX_BATCH * cfg->n_ctx * V;
    if (lg_cap > ((size_t)1 << 25))
        lg_cap = (size_t)cfg->n_ctx * V > ((size_t)1 << 25) ? (size_t)cfg->n_ctx * V : ((size_t)1 << 25);
    float *lg = kl ? malloc(sizeof(float) * lg_cap) : NULL;
    float *lg2 = kl ? malloc(sizeof(float) * lg_cap) : NULL;
    double *p = kl ? malloc(sizeof(double) * 2 * (size_t)V) : NULL;
    lp_cache *cache = h->cache_new();
    double kl_sum = 0;
    long kl_n = 0;
    if (!first || !order || !items || !ids || !starts || !tok || !cache || (kl && (!lg || !lg2 || !p))) {
        rc = h->error(x->call, LP_ENOMEM, "out of memory gathering activations");
        goto out;
    }
    lp_error err = {0};
    if ((rc = h->cache_set_filter(cache, (const char *const *)hooks, n_hooks, &err))) {
        rc = h->error(x->call, rc, "cache: %s", err.msg);
        goto out;
    }
    /* counting sort of examples by text */
    memset(first, 0, sizeof(int) * (size_t)(d->n_texts + 1));
    for (int i = 0; i < d->n; i++)
        first[d->tix[i] + 1]++;
    for (int t = 0; t < d->n_texts; t++)
        first[t + 1] += first[t];
    {
        int *fill = calloc((size_t)d->n_texts, sizeof(int));
        if (!fill) {
            rc = h->error(x->call, LP_ENOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < d->n; i++)
            order[first[d->tix[i]] + fill[d->tix[i]]++] = i;
        free(fill);
    }
    int n_items = 0;
    for (int t = 0; t < d->n_texts; t++) {
        if (first[t + 1] == first[t])
            continue;
        int n;
        if ((rc = pr_encode(x, d->text[t], &ids[t], &starts[t], &n)))
            goto out;
        if (n > cfg->n_ctx) {
            rc = h->error(x->call, LP_EINVAL, "text %d is %d tokens; the model's context is %d", t + 1, n, cfg->n_ctx);
            goto out;
        }
        if (n < 1) {
            rc = h->error(x->call, LP_EINVAL, "text %d is empty", t + 1);
            goto out;
        }
        items[n_items++] = (item){t, n};
    }
    qsort(items, (size_t)n_items, sizeof *items, by_len);
    for (int s = 0; s < n_items;) {
        if (h->progress(x->call, s, n_items, "texts")) {
            rc = h->error(x->call, LP_ECANCELLED, "cancelled after %d of %d texts", s, n_items);
            goto out;
        }
        /* a batch of texts within 25% of the first one's length */
        int nb = 0, T = 0;
        while (s + nb < n_items && nb < MAX_BATCH && items[s + nb].len <= items[s].len + items[s].len / 4 + 2 &&
               (!kl || (size_t)(nb + 1) * items[s + nb].len * V <= lg_cap))
            nb++;
        T = items[s + nb - 1].len;
        memset(tok, 0, sizeof(int32_t) * (size_t)nb * T);
        for (int j = 0; j < nb; j++) {
            lens[j] = items[s + j].len;
            memcpy(tok + (size_t)j * T, ids[items[s + j].text], sizeof(int32_t) * (size_t)lens[j]);
        }
        lp_batch b = {.tokens = tok, .n_batch = nb, .n_pos = T, .lengths = lens};
        lp_run_opts o;
        memset(&o, 0, sizeof o);
        if (kl) {
            o.logits = LP_LOGITS_ALL;
            o.logits_out = lg;
            if ((rc = h->model_run(x->m, &b, &o, &err))) {
                rc = h->error(x->call, rc, "%s", err.msg);
                goto out;
            }
            o.logits_out = lg2;
        }
        o.cache = cache;
        o.hooks = edit;
        h->cache_reset(cache);
        if ((rc = h->model_run(x->m, &b, &o, &err))) {
            rc = h->error(x->call, rc, "%s", err.msg);
            goto out;
        }
        if (kl)
            for (int j = 0; j < nb; j++)
                for (int t = 0; t < lens[j]; t++) {
                    size_t r = ((size_t)j * T + t) * V;
                    log_softmax(lg + r, V, p);
                    log_softmax(lg2 + r, V, p + V);
                    double acc = 0;
                    for (int v = 0; v < V; v++)
                        acc += exp(p[v]) * (p[v] - p[V + v]);
                    kl_sum += acc > 0 ? acc : 0;
                    kl_n++;
                }
        for (int k = 0; k < n_hooks; k++) {
            int ci = h->cache_find(cache, hooks[k]);
            if (ci < 0) {
                rc = h->error(x->call, LP_ENOTFOUND, "the forward pass did not cache %s", hooks[k]);
                goto out;
            }
            lp_tensor a = h->cache_entry(cache, ci);
            int64_t w = 1;
            for (int q = 2; q < a.ndim; q++)
                w *= a.ne[q];
            const int D = pr_hook_width(x, hooks[k]);
            if (a.ndim < 3 || a.ne[1] != T || w != D) {
                rc = h->error(x->call, LP_EUNSUPPORTED, "%s is not [batch, pos, ...] with %d features per position",
                              hooks[k], D);
                goto out;
            }
            for (int j = 0; j < nb; j++) {
                int t = items[s + j].text, n = lens[j];
                for (int e = first[t]; e < first[t + 1]; e++) {
                    int i = order[e], pos;
                    if (d->chr[i] >= 0) {
                        if (d->chr[i] >= starts[t][n]) {
                            rc = h->error(x->call, LP_EINVAL, "text %d: char offset %d is past its end (%d bytes)", t + 1,
                                          d->chr[i], starts[t][n]);
                            goto out;
                        }
                        pos = 0;
                        for (int q = 0; q < n; q++)
                            if (starts[t][q] >= 0 && starts[t][q] <= d->chr[i])
                                pos = q;
                    } else {
                        pos = d->tok[i] < 0 ? n + d->tok[i] : d->tok[i];
                        if (pos < 0 || pos >= n) {
                            rc = h->error(x->call, LP_EINVAL, "text %d: position %d is outside its %d tokens", t + 1,
                                          d->tok[i], n);
                            goto out;
                        }
                    }
                    memcpy(X[k] + (size_t)i * D, (const char *)a.data + ((size_t)j * T + pos) * D * sizeof(float),
                           sizeof(float) * (size_t)D);
                }
            }
        }
        s += nb;
    }
    h->progress(x->call, n_items, n_items, "texts");
    if (kl)
        *kl = kl_n ? kl_sum / (double)kl_n : 0;
out:
    if (ids)
        for (int t = 0; t < d->n_texts; t++) {
            h->free(ids[t]);
            free(starts[t]);
        }
    free(ids);
    free(starts);
    free(first);
    free(order);
    free(items);
    free(tok);
    free(lg);
    free(lg2);
    free(p);
    if (cache)
        h->cache_free(cache);
    return rc;
}

int pr_data_drop_long(const pr_ctx *x, pr_data *d, int *n_dropped)
{
    const int n_ctx = x->h->model_config(x->m)->n_ctx;
    char *drop = calloc((size_t)d->n_texts, 1);
    if (!drop)
        return x->h->error(x->call, LP_ENOMEM, "out of memory");
    *n_dropped = 0;
    for (int t = 0; t < d->n_texts; t++) {
        int32_t *ids = NULL;
        int n = 0;
        int rc = pr_encode(x, d->text[t], &ids, NULL, &n);
        x->h->free(ids);
        if (rc) {
            free(drop);
            return rc;
        }
        if (n > n_ctx || n < 1) {
            drop[t] = 1;
            (*n_dropped)++;
        }
    }
    if (*n_dropped) {
        int k = 0;
        for (int i = 0; i < d->n; i++) {
            if (drop[d->tix[i]])
                continue;
            d->tix[k] = d->tix[i];
            d->tok[k] = d->tok[i];
            d->chr[k] = d->chr[i];
            d->y[k] = d->y[i];
            k++;
        }
        d->n = k;
    }
    free(drop);
    if (d->n == 0)
        return x->h->error(x->call, LP_EINVAL, "every text is longer than the model's context (%d tokens)", n_ctx);
    return 0;
}
