/* patching — activation patching (clean → corrupted, one component at a time) and
 * ablation (zero, mean, resample) of a set of components. The metric is
 * logit(answer) − logit(wrong) at the last position. See README.md in this folder. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe/plugin.h"
#include "plugin_util.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

/* ------------------------------------------------------------------ the metric */

/* The metric direction: u = W_U[:, answer] − W_U[:, wrong], plus the b_U difference. */
typedef struct metric {
    const lp_host_api *h;
    lp_model *m;
    int D, V;
    int32_t ans, wrong;
    double *u;
    double bias;
    float *rows, *normed; /* [cap, D] */
    int cap, n;           /* rows copied by the reader hook */
} metric;

static int metric_init(metric *mt, const lp_host_api *h, lp_call *call, lp_model *m, int cap)
{
    memset(mt, 0, sizeof *mt);
    const lp_config *cfg = h->model_config(m);
    mt->h = h;
    mt->m = m;
    mt->D = cfg->d_model;
    mt->V = cfg->d_vocab;
    mt->cap = cap;
    int rc = pu_parse_token(h, call, m, "answer", h->param_str(call, "answer"), &mt->ans);
    if (!rc)
        rc = pu_parse_token(h, call, m, "wrong", h->param_str(call, "wrong"), &mt->wrong);
    if (rc)
        return rc;
    lp_tensor WU, bU;
    lp_error err = {0};
    if ((rc = h->model_weight(m, "W_U", &WU, &err)))
        return h->error(call, rc, "%s", err.msg);
    mt->u = malloc(sizeof(double) * (size_t)mt->D);
    mt->rows = h->alloc(sizeof(float) * (size_t)mt->D * cap);
    mt->normed = h->alloc(sizeof(float) * (size_t)mt->D * cap);
    if (!mt->u || !mt->rows || !mt->normed)
        return h->error(call, LP_ENOMEM, "out of memory");
    for (int i = 0; i < mt->D; i++)
        mt->u[i] = (double)pu_at2(&WU, i, mt->ans) - (double)pu_at2(&WU, i, mt->wrong);
    if (h->model_weight(m, "b_U", &bU, &err) == 0)
        mt->bias = (double)*(const float *)((const char *)bU.data + mt->ans * bU.nb[0]) -
                   (double)*(const float *)((const char *)bU.data + mt->wrong * bU.nb[0]);
    return 0;
}

static void metric_free(metric *mt)
{
    if (!mt->h)
        return;
    free(mt->u);
    mt->h->free(mt->rows);
    mt->h->free(mt->normed);
}

/* Reader hook on the last block's resid_post: copy each sequence's last real row. Added
 * after any patching hook, so it sees the patched stream. */
static int metric_reader(lp_tensor *act, const lp_hook_info *info, void *user)
{
    metric *mt = user;
    mt->n = 0;
    for (int b = 0; b < info->n_batch && b < mt->cap; b++) {
        int t = (info->lengths ? info->lengths[b] : info->n_pos) - 1;
        const char *src = (const char *)act->data + b * act->nb[0] + t * act->nb[1];
        for (int i = 0; i < mt->D; i++)
            mt->rows[(size_t)b * mt->D + i] = *(const float *)(src + i * act->nb[2]);
        mt->n = b + 1;
    }
    return 0;
}

/* The metric of row b of the last run: the model's own final norm, then u. */
static void metric_values(metric *mt, double *out)
{
    mt->h->model_ln_final(mt->m, mt->rows, mt->n, mt->normed, NULL);
    for (int b = 0; b < mt->n; b++) {
        double acc = mt->bias;
        for (int i = 0; i < mt->D; i++)
            acc += (double)mt->normed[(size_t)b * mt->D + i] * mt->u[i];
        out[b] = acc;
    }
}

static int add_reader(const lp_host_api *h, lp_call *call, lp_model *m, lp_hooks *hk, metric *mt)
{
    char name[96];
    lp_error err = {0};
    h->hook_name(LP_HOOK_RESID_POST, h->model_config(m)->n_layers - 1, name, sizeof name);
    int rc = h->hooks_add(hk, name, metric_reader, mt, &err);
    return rc ? h->error(call, rc, "%s", err.msg) : 0;
}

/* ------------------------------------------------------------------ patching.run */

typedef enum what { W_RESID_PRE, W_RESID_POST, W_ATTN_OUT, W_MLP_OUT, W_HEADS } what;
static const char *const what_names[] = {"resid_pre", "resid_post", "attn_out", "mlp_out", "heads"};
static const lp_hook_kind what_kinds[] = {LP_HOOK_RESID_PRE, LP_HOOK_RESID_POST, LP_HOOK_ATTN_OUT, LP_HOOK_MLP_OUT,
                                          LP_HOOK_Z};

typedef struct patch {
    lp_tensor src; /* the clean activation of a batch of the same size, [B, T, ...] */
    what w;
    int first;     /* batch row b patches cell first + b (a position, or a head) */
} patch;

static int patch_hook(lp_tensor *act, const lp_hook_info *info, void *user)
{
    const patch *p = user;
    for (int b = 0; b < info->n_batch; b++) {
        char *row = (char *)act->data + b * act->nb[0];
        int c = p->first + b;
        if (p->w == W_HEADS) {
            for (int t = 0; t < info->n_pos; t++)
                for (int64_t j = 0; j < act->ne[3]; j++)
                    *(float *)(row + t * act->nb[1] + c * act->nb[2] + j * act->nb[3]) =
                        *(const float *)((const char *)p->src.data + b * p->src.nb[0] + t * p->src.nb[1] +
                                         c * p->src.nb[2] + j * p->src.nb[3]);
        } else {
            for (int64_t i = 0; i < act->ne[2]; i++)
                *(float *)(row + c * act->nb[1] + i * act->nb[2]) =
                    *(const float *)((const char *)p->src.data + b * p->src.nb[0] + c * p->src.nb[1] +
                                     i * p->src.nb[2]);
        }
    }
    return 0;
}

static const lp_param_desc run_params[] = {
    {"clean", LP_PARAM_TEXT, NULL, "the prompt whose activations are patched in"},
    {"corrupted", LP_PARAM_TEXT, NULL, "the prompt that is run and patched (same number of tokens)"},
    {"answer", LP_PARAM_STRING, NULL, "the right token (text or #ID): metric = logit(answer) - logit(wrong)"},
    {"wrong", LP_PARAM_STRING, NULL, "the wrong token (text or #ID)"},
    {"what", LP_PARAM_STRING, "resid_pre", "resid_pre, resid_post, attn_out, mlp_out (layer x position) or heads"},
    {"k", LP_PARAM_INT, "10", "rows of the top table"},
    {"batch", LP_PARAM_INT, "0",
     "cells run together as rows of one batched forward pass (0: auto, up to 512 token rows; 1: one run per cell)"},
};

static const char run_help[] =
    "Activation patching: run `corrupted`, and for each cell replace one activation with its\n"
    "value from the `clean` run, then measure metric = logit(answer) - logit(wrong) at the last\n"
    "position. One cached clean run, one corrupted run, then one patched run per cell:\n"
    "  resid_pre / resid_post / attn_out / mlp_out   cell = (layer, position): the d_model vector\n"
    "                                                 blocks.L.hook_X at that position\n"
    "  heads                                          cell = (layer, head): that head's slice of\n"
    "                                                 blocks.L.attn.hook_z at every position\n"
    "Each cell reports normalized = (patched - corrupted) / (clean - corrupted): 0 = no effect,\n"
    "1 = the clean behaviour fully restored by that one component. Cells of one layer run as\n"
    "rows of a batched forward pass (`batch`); every row is an independent patched run.\n"
    "\n"
    "Results:\n"
    "  patched          [layer, pos] or [layer, head]: normalized values\n"
    "  metric           the same cells, raw metric values\n"
    "  top              table: layer, index (pos or head), token, normalized, metric (largest first)\n"
    "  clean_metric, corrupted_metric   scalars\n";

static int cmp_desc(const void *a, const void *b)
{
    const float *x = *(const float *const *)a, *y = *(const float *const *)b;
    if (*x != *y)
        return *x > *y ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int run(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(m);
    const int NL = cfg->n_layers, H = cfg->n_heads;
    int T, Tc;
    const int32_t *clean = h->param_tokens(call, "clean", &T), *corr = h->param_tokens(call, "corrupted", &Tc);
    if (T != Tc)
        return h->error(call, LP_EINVAL, "clean is %d tokens and corrupted %d: they must have the same length", T, Tc);
    const char *ws = h->param_str(call, "what");
    int w = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(ws, what_names[i]))
            w = i;
    if (w < 0)
        return h->error(call, LP_EINVAL, "what: '%s' is not resid_pre, resid_post, attn_out, mlp_out or heads", ws);
    int64_t k = h->param_int(call, "k"), B = h->param_int(call, "batch");
    if (k < 0)
        return h->error(call, LP_EINVAL, "k must be >= 0");
    if (B < 0)
        return h->error(call, LP_EINVAL, "batch must be >= 0");
    int ncol = w == W_HEADS ? H : T, ncell = NL * ncol;
    if (B == 0)
        B = 512 / T > 1 ? 512 / T : 1;
    if (B > ncol)
        B = ncol;
    if (B > 512)
        B = 512;
    metric mt;
    int rc = metric_init(&mt, h, call, m, (int)B);
    lp_cache *cache = NULL, *cache2 = NULL;
    lp_hooks *hk = NULL;
    float *vals = NULL;
    const float **ord = NULL;
    int32_t *btok = NULL;
    if (rc)
        goto out;
    vals = malloc(sizeof(float) * (size_t)ncell * 2);
    ord = malloc(sizeof *ord * (size_t)ncell);
    cache = h->cache_new();
    hk = h->hooks_new();
    btok = malloc(sizeof(int32_t) * (size_t)B * T);
    if (!vals || !ord || !cache || !hk || !btok) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    /* Reference runs. The clean and corrupted metrics reported are those of plain
     * single-sequence runs. The cells run B at a time as the rows of one batched pass, and
     * each row is measured against the clean and corrupted runs of a batch of the same
     * size at the same row (its patch values come from that clean row too): the rounding
     * of batched products then cancels exactly, so a cell that changes nothing gives
     * exactly 0 and one that restores the clean final stream exactly 1. */
    char glob[96], name[96];
    lp_error err = {0};
    h->hook_name(what_kinds[w], 0, glob, sizeof glob);
    memcpy(glob, "blocks.*", 8); /* "blocks.0.x" -> "blocks.*.x" */
    const char *filt[] = {glob};
    int last_n = ncol % (int)B ? ncol % (int)B : (int)B;
    cache2 = last_n != B ? h->cache_new() : NULL;
    if ((last_n != B && !cache2) || (rc = h->cache_set_filter(cache, filt, 1, &err)) ||
        (cache2 && (rc = h->cache_set_filter(cache2, filt, 1, &err))) || (rc = add_reader(h, call, m, hk, &mt))) {
        rc = h->error(call, rc ? rc : LP_ENOMEM, "%s", err.msg[0] ? err.msg : "out of memory");
        goto out;
    }
    lp_batch b = {.tokens = clean, .n_batch = 1, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.hooks = hk;
    double clean_m, corr_m, ref[2][2][512]; /* [full, last][clean, corrupted][row] */
    for (int i = 0; i < 2 && !rc; i++) {
        b.tokens = i ? corr : clean;
        if (!(rc = h->model_run(m, &b, &o, &err)))
            metric_values(&mt, i ? &corr_m : &clean_m);
    }
    if (rc) {
        rc = h->error(call, rc, "%s", err.msg);
        goto out;
    }
    double gap = clean_m - corr_m;
    if (!(fabs(gap) > 1e-6 * (1 + fabs(clean_m)))) {
        rc = h->error(call, LP_EINVAL, "the clean and corrupted metrics are equal (%g): nothing to restore", clean_m);
        goto out;
    }
    for (int shape = 0; shape < 2; shape++) {
        b.n_batch = shape ? last_n : (int)B;
        if (shape && !cache2) {
            memcpy(ref[1], ref[0], sizeof ref[0]);
            break;
        }
        for (int i = 0; i < 2; i++) {
            const int32_t *src = i ? corr : clean;
            for (int r = 0; r < b.n_batch; r++)
                memcpy(btok + (size_t)r * T, src, sizeof(int32_t) * (size_t)T);
            b.tokens = btok;
            o.cache = i ? NULL : shape ? cache2 : cache;
            if ((rc = h->model_run(m, &b, &o, &err))) {
                rc = h->error(call, rc, "%s run: %s", i ? "corrupted" : "clean", err.msg);
                goto out;
            }
            metric_values(&mt, ref[shape][i]);
        }
    }
    o.cache = NULL;

    /* the patched runs: B cells of a layer as the rows of one batched pass (btok holds
     * the corrupted prompt in every row now) */
    b.tokens = btok;
    for (int l = 0; l < NL; l++) {
        h->hook_name(what_kinds[w], l, name, sizeof name);
        int ci = h->cache_find(cache, name), ci2 = cache2 ? h->cache_find(cache2, name) : ci;
        if (ci < 0 || ci2 < 0) {
            rc = h->error(call, LP_ENOTFOUND, "the clean run did not cache %s", name);
            goto out;
        }
        patch p = {.src = h->cache_entry(cache, ci), .w = (what)w};
        h->hooks_free(hk);
        hk = h->hooks_new();
        if (!hk || (rc = h->hooks_add(hk, name, patch_hook, &p, &err)) || (rc = add_reader(h, call, m, hk, &mt))) {
            rc = h->error(call, rc ? rc : LP_ENOMEM, "hooks: %s", err.msg);
            goto out;
        }
        o.hooks = hk;
        for (int c0 = 0; c0 < ncol; c0 += (int)B) {
            if (h->progress(call, l * ncol + c0, ncell, "patched runs")) {
                rc = h->error(call, LP_ECANCELLED, "cancelled at layer %d, %s %d", l, w == W_HEADS ? "head" : "pos", c0);
                goto out;
            }
            b.n_batch = ncol - c0 < B ? ncol - c0 : (int)B;
            int shape = b.n_batch != B;
            p.first = c0;
            p.src = shape ? h->cache_entry(cache2, ci2) : h->cache_entry(cache, ci);
            if ((rc = h->model_run(m, &b, &o, &err))) {
                rc = h->error(call, rc, "patched run: %s", err.msg);
                goto out;
            }
            double v[512];
            metric_values(&mt, v);
            for (int r = 0; r < b.n_batch; r++) {
                double cl = ref[shape][0][r], co = ref[shape][1][r];
                vals[l * ncol + c0 + r] = (float)((v[r] - co) / (cl - co));
                vals[ncell + l * ncol + c0 + r] = (float)v[r];
            }
        }
    }
    h->progress(call, ncell, ncell, "patched runs");
    int64_t ne[2] = {NL, ncol};
    const char *axes = w == W_HEADS ? "layer,head" : "layer,pos";
    lp_tensor tn = h->result_tensor(call, "patched", 2, ne, axes), tm = h->result_tensor(call, "metric", 2, ne, axes);
    const char *cols[] = {"layer", w == W_HEADS ? "head" : "pos", "token", "normalized", "metric"};
    int tab = h->result_table(call, "top", 5, cols);
    if (!tn.data || !tm.data || tab < 0) {
        rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        goto out;
    }
    memcpy(tn.data, vals, sizeof(float) * (size_t)ncell);
    memcpy(tm.data, vals + ncell, sizeof(float) * (size_t)ncell);
    for (int i = 0; i < ncell; i++)
        ord[i] = vals + i;
    qsort(ord, (size_t)ncell, sizeof *ord, cmp_desc);
    for (int r = 0; r < (k < ncell ? k : ncell); r++) {
        int i = (int)(ord[r] - vals), l = i / ncol, c = i % ncol;
        char tt[96] = "";
        if (w != W_HEADS)
            pu_token_text(h, m, clean[c], tt, sizeof tt);
        lp_cell row[5] = {{1, l, NULL}, {1, c, NULL}, {0, 0, tt}, {1, *ord[r], NULL}, {1, vals[ncell + i], NULL}};
        if ((rc = h->table_row(call, tab, row))) {
            rc = h->error(call, rc, "out of memory for the table");
            goto out;
        }
    }
    h->result_scalar(call, "clean_metric", clean_m);
    h->result_scalar(call, "corrupted_metric", corr_m);
    rc = 0;
out:
    h->hooks_free(hk);
    h->cache_free(cache);
    h->cache_free(cache2);
    free(vals);
    free(ord);
    free(btok);
    metric_free(&mt);
    return rc;
}

/* ------------------------------------------------------------------ patching.ablate */

enum { S_Z = 0, S_ATTN_OUT, S_MLP_OUT, S_MLP_POST, S_KINDS };
static const lp_hook_kind site_kinds[S_KINDS] = {LP_HOOK_Z, LP_HOOK_ATTN_OUT, LP_HOOK_MLP_OUT, LP_HOOK_MLP_POST};
static const char *const site_labels[S_KINDS] = {"heads", "attn", "mlp", "neurons"};

/* One hook point touched by the ablation. */
typedef struct site {
    int used;
    int all;        /* the whole per-position vector (attn, mlp)                  */
    int *idx;       /* heads (hook_z) or neurons (mlp.hook_post)                  */
    int n_idx, cap_idx;
    int row;        /* floats per position: n_heads*d_head, d_model or d_mlp       */
    int sub;        /* floats per index: d_head for heads, 1 for neurons           */
    float *val;     /* [n_val, row] replacement values; NULL = zero                */
    double *sum;    /* mean accumulation                                           */
    int n_val;
    char name[96];
} site;

typedef struct ablation {
    const lp_host_api *h;
    lp_call *call;
    lp_model *m;
    int NL;
    site *s; /* [S_KINDS * NL] */
    int n_sites;
} ablation;

static int site_add(ablation *a, int kind, int layer, int idx)
{
    site *s = &a->s[kind * a->NL + layer];
    s->used = 1;
    if (idx < 0) {
        s->all = 1;
        return 0;
    }
    for (int i = 0; i < s->n_idx; i++)
        if (s->idx[i] == idx)
            return 0;
    if (s->n_idx == s->cap_idx) {
        int nc = s->cap_idx ? 2 * s->cap_idx : 8;
        int *ni = realloc(s->idx, sizeof(int) * (size_t)nc);
        if (!ni)
            return a->h->error(a->call, LP_ENOMEM, "out of memory");
        s->idx = ni;
        s->cap_idx = nc;
    }
    s->idx[s->n_idx++] = idx;
    return 0;
}

/* "heads=9.6,9.9 mlp=3 attn=1 neurons=2:17,2:40"; '*' means every layer (and head). */
static int parse_components(ablation *a, const char *spec)
{
    const lp_config *cfg = a->h->model_config(a->m);
    char *buf = strdup(spec);
    if (!buf)
        return a->h->error(a->call, LP_ENOMEM, "out of memory");
    int rc = 0, any = 0;
    for (char *sv = NULL, *tok = strtok_r(buf, " \t\n", &sv); tok && !rc; tok = strtok_r(NULL, " \t\n", &sv)) {
        char *eq = strchr(tok, '=');
        int kind = -1;
        if (eq) {
            *eq = 0;
            for (int k = 0; k < S_KINDS; k++)
                if (!strcmp(tok, site_labels[k]) || (k == S_Z && !strcmp(tok, "head")))
                    kind = k;
        }
        if (kind < 0) {
            rc = a->h->error(a->call, LP_EINVAL,
                             "components: '%s' is not heads=L.H,... mlp=L,... attn=L,... or neurons=L:N,...", tok);
            break;
        }
        for (char *sv2 = NULL, *it = strtok_r(eq + 1, ",", &sv2); it && !rc; it = strtok_r(NULL, ",", &sv2)) {
            long L = -1, I = -1;
            char *end = it;
            if (!strcmp(it, "*")) {
                for (int l = 0; l < cfg->n_layers && !rc; l++) {
                    if (kind == S_Z)
                        for (int hh = 0; hh < cfg->n_heads && !rc; hh++)
                            rc = site_add(a, kind, l, hh);
                    else if (kind == S_MLP_POST)
                        rc = a->h->error(a->call, LP_EINVAL, "components: neurons=* is not allowed; use mlp=*");
                    else
                        rc = site_add(a, kind, l, -1);
                }
                any = 1;
                continue;
            }
            L = strtol(it, &end, 10);
            int ok = end != it;
            if (ok && (kind == S_Z || kind == S_MLP_POST)) {
                char sep = kind == S_Z ? '.' : ':';
                ok = *end == sep;
                if (ok && kind == S_Z && !strcmp(end + 1, "*")) {
                    I = -2;
                    end += 2;
                } else if (ok) {
                    char *e2;
                    I = strtol(end + 1, &e2, 10);
                    ok = e2 != end + 1;
                    end = e2;
                }
            }
            int lim = kind == S_Z ? cfg->n_heads : cfg->d_mlp;
            if (!ok || *end || L < 0 || L >= cfg->n_layers || ((kind == S_Z || kind == S_MLP_POST) && I != -2 &&
                                                               (I < 0 || I >= lim))) {
                rc = a->h->error(a->call, LP_EINVAL,
                                 "components: '%s=%s' is not valid here (layers 0..%d, heads 0..%d, neurons 0..%d)",
                                 site_labels[kind], it, cfg->n_layers - 1, cfg->n_heads - 1, cfg->d_mlp - 1);
                break;
            }
            if (I == -2)
                for (int hh = 0; hh < cfg->n_heads && !rc; hh++)
                    rc = site_add(a, kind, (int)L, hh);
            else
                rc = site_add(a, kind, (int)L, kind == S_Z || kind == S_MLP_POST ? (int)I : -1);
            any = 1;
        }
    }
    free(buf);
    if (!rc && !any)
        rc = a->h->error(a->call, LP_EINVAL, "components: nothing to ablate in '%s'", spec);
    for (int i = 0; !rc && i < S_KINDS * a->NL; i++) {
        site *s = &a->s[i];
        if (!s->used)
            continue;
        int kind = i / a->NL, l = i % a->NL;
        a->h->hook_name(site_kinds[kind], l, s->name, sizeof s->name);
        s->row = kind == S_Z ? cfg->n_heads * cfg->d_head : kind == S_MLP_POST ? cfg->d_mlp : cfg->d_model;
        s->sub = kind == S_Z ? cfg->d_head : 1;
        a->n_sites++;
    }
    return rc;
}

static void ablation_free(ablation *a)
{
    for (int i = 0; a->s && i < S_KINDS * a->NL; i++) {
        free(a->s[i].idx);
        free(a->s[i].val);
        free(a->s[i].sum);
    }
    free(a->s);
}

/* The write hook: every ablated slice of this activation gets its replacement. */
static int ablate_hook(lp_tensor *act, const lp_hook_info *info, void *user)
{
    const site *s = user;
    const int64_t last = act->nb[act->ndim - 1];
    for (int b = 0; b < info->n_batch; b++)
        for (int t = 0; t < info->n_pos; t++) {
            char *dst = (char *)act->data + b * act->nb[0] + t * act->nb[1];
            const float *v = s->val ? s->val + (size_t)(t < s->n_val ? t : s->n_val - 1) * s->row : NULL;
            if (act->ndim == 4) { /* hook_z [b, t, head, d_head] */
                for (int i = 0; i < s->n_idx; i++)
                    for (int j = 0; j < s->sub; j++)
                        *(float *)(dst + s->idx[i] * act->nb[2] + j * act->nb[3]) =
                            v ? v[s->idx[i] * s->sub + j] : 0.0f;
            } else if (s->all) {
                for (int i = 0; i < s->row; i++)
                    *(float *)(dst + i * last) = v ? v[i] : 0.0f;
            } else {
                for (int i = 0; i < s->n_idx; i++)
                    *(float *)(dst + s->idx[i] * last) = v ? v[s->idx[i]] : 0.0f;
            }
        }
    return 0;
}

/* Run one prompt caching every site; accumulate (mean) or copy (resample) values. */
static int collect(ablation *a, lp_cache *cache, const int32_t *ids, int n, int resample)
{
    const lp_host_api *h = a->h;
    lp_batch b = {.tokens = ids, .n_batch = 1, .n_pos = n, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.cache = cache;
    lp_error err = {0};
    h->cache_reset(cache);
    int rc = h->model_run(a->m, &b, &o, &err);
    if (rc)
        return h->error(a->call, rc, "%s", err.msg);
    for (int i = 0; i < S_KINDS * a->NL; i++) {
        site *s = &a->s[i];
        if (!s->used)
            continue;
        lp_tensor t = pu_cached(h, a->call, cache, s->name);
        if (!t.data)
            return LP_ENOTFOUND;
        if (resample) {
            s->val = malloc(sizeof(float) * (size_t)n * s->row);
            if (!s->val)
                return h->error(a->call, LP_ENOMEM, "out of memory");
            s->n_val = n;
        } else if (!s->sum && !(s->sum = calloc((size_t)s->row, sizeof(double)))) {
            return h->error(a->call, LP_ENOMEM, "out of memory");
        }
        /* every activation here is [1, pos, ...] with a contiguous per-position row */
        for (int p = 0; p < n; p++) {
            const float *src = (const float *)((const char *)t.data + p * t.nb[1]);
            for (int j = 0; j < s->row; j++) {
                if (resample)
                    s->val[(size_t)p * s->row + j] = src[j];
                else
                    s->sum[j] += src[j];
            }
        }
    }
    return 0;
}

static int add_ablation_hooks(ablation *a, lp_hooks *hk)
{
    lp_error err = {0};
    for (int i = 0; i < S_KINDS * a->NL; i++)
        if (a->s[i].used) {
            int rc = a->h->hooks_add(hk, a->s[i].name, ablate_hook, &a->s[i], &err);
            if (rc)
                return a->h->error(a->call, rc, "%s", err.msg);
        }
    return 0;
}

/* Split a dataset: a file of prompts (one per line) or prompts separated by '|'. */
static char **split_dataset(const char *spec, int *n)
{
    char *text = NULL;
    FILE *f = fopen(spec, "rb");
    char sep = '|';
    if (f) {
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc(len > 0 ? (size_t)len + 1 : 1);
        size_t r = text && len > 0 ? fread(text, 1, (size_t)len, f) : 0;
        if (text)
            text[r] = 0;
        fclose(f);
        sep = '\n';
    } else {
        text = strdup(spec);
    }
    *n = 0;
    if (!text)
        return NULL;
    int cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == sep;
    char **out = malloc(sizeof *out * ((size_t)cap + 1));
    if (!out) {
        free(text);
        return NULL;
    }
    out[0] = text; /* out[0] owns the buffer: free(out[0]) then free(out) */
    char *p = text;
    int k = 0;
    while (p) {
        char *e = strchr(p, sep);
        if (e)
            *e = 0;
        char *q = p;
        while (*q == ' ' || *q == '\r')
            q++;
        size_t l = strlen(q);
        while (l && (q[l - 1] == '\r' || q[l - 1] == ' ' || q[l - 1] == '\n'))
            q[--l] = 0;
        if (*q)
            out[++k] = q;
        p = e ? e + 1 : NULL;
    }
    *n = k;
    return out;
}

static const lp_param_desc ablate_params[] = {
    {"prompt", LP_PARAM_TEXT, NULL, "the prompt the metric is measured on"},
    {"answer", LP_PARAM_STRING, NULL, "the right token (text or #ID): metric = logit(answer) - logit(wrong)"},
    {"wrong", LP_PARAM_STRING, NULL, "the wrong token (text or #ID)"},
    {"components", LP_PARAM_STRING, NULL,
     "what to ablate: heads=L.H,... (L.* all heads of L) mlp=L,... attn=L,... neurons=L:N,... ('*' = every layer)"},
    {"mode", LP_PARAM_STRING, "zero", "zero, mean or resample"},
    {"dataset", LP_PARAM_STRING, "",
     "mean mode: prompts separated by '|', or a file with one prompt per line (default: the prompt itself)"},
    {"source", LP_PARAM_STRING, "", "resample mode: the prompt whose activations replace them (text or ids:1,2,3)"},
    {"eval", LP_PARAM_STRING, "",
     "optional JSONL file of {\"prompt\", \"answer\"|\"io\", \"wrong\"|\"s\"}: accuracy before and after"},
};

static const char ablate_help[] =
    "Ablates a set of components in one forward pass and measures what is lost:\n"
    "  zero      the activations are set to 0\n"
    "  mean      set to their mean over every position of a dataset (default: the prompt)\n"
    "  resample  set to their values on `source` at the same position (its last position\n"
    "            for positions beyond its length)\n"
    "Components: heads=L.H (that head's slice of hook_z: its whole output except b_O),\n"
    "attn=L (hook_attn_out), mlp=L (hook_mlp_out), neurons=L:N (mlp.hook_post[N]).\n"
    "\n"
    "Results:\n"
    "  metric_before, metric_after   logit(answer) - logit(wrong) at the last position\n"
    "  fraction_lost                 (before - after) / before: 1 = all of it gone, 0 = no effect\n"
    "  with eval: accuracy_before/after (answer beats wrong), top1_before/after (answer is the\n"
    "  top token), logit_diff_before/after (mean), n_eval\n"
    "  ablated   table: hook, layer, count (heads or neurons, 0 = the whole vector)\n";

typedef struct eval_item {
    int32_t *ids;
    int n;
    int32_t ans, wrong;
} eval_item;

static int load_eval(ablation *a, const char *path, eval_item **out, int *n_out)
{
    const lp_host_api *h = a->h;
    int n;
    char **lines = split_dataset(path, &n);
    FILE *probe = fopen(path, "rb");
    if (probe)
        fclose(probe);
    if (!probe) {
        if (lines)
            free(lines[0]);
        free(lines);
        return h->error(a->call, LP_ENOTFOUND, "eval: cannot read '%s': %s", path, strerror(errno));
    }
    eval_item *it = calloc((size_t)n + 1, sizeof *it);
    int rc = it ? 0 : h->error(a->call, LP_ENOMEM, "out of memory"), k = 0;
    for (int i = 0; i < n && !rc; i++) {
        /* tiny JSON reader: the three string fields we need */
        const char *keys[3][2] = {{"\"prompt\"", NULL}, {"\"answer\"", "\"io\""}, {"\"wrong\"", "\"s\""}};
        char val[3][1024];
        for (int f = 0; f < 3 && !rc; f++) {
            const char *p = NULL;
            size_t kl = 0;
            for (int alt = 0; alt < 2 && !p; alt++)
                if (keys[f][alt] && (p = strstr(lines[i + 1], keys[f][alt])))
                    kl = strlen(keys[f][alt]);
            if (p)
                p = strchr(p + kl, ':');
            if (p)
                p = strchr(p, '"');
            size_t o = 0;
            if (p) {
                for (p++; *p && *p != '"' && o + 4 < sizeof val[f]; p++) {
                    if (*p == '\\' && p[1]) {
                        p++;
                        val[f][o++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
                    } else {
                        val[f][o++] = *p;
                    }
                }
            }
            val[f][o] = 0;
            if (!p)
                rc = h->error(a->call, LP_EINVAL, "eval: line %d has no %s field", i + 1, keys[f][0]);
        }
        if (!rc)
            rc = pu_parse_prompt(h, a->call, a->m, "eval prompt", val[0], &it[k].ids, &it[k].n);
        if (!rc)
            rc = pu_parse_token(h, a->call, a->m, "eval answer", val[1], &it[k].ans);
        if (!rc)
            rc = pu_parse_token(h, a->call, a->m, "eval wrong", val[2], &it[k].wrong);
        if (!rc)
            k++;
    }
    if (lines)
        free(lines[0]);
    free(lines);
    if (!rc && !k)
        rc = h->error(a->call, LP_EINVAL, "eval: '%s' holds no prompts", path);
    if (rc) {
        for (int i = 0; it && i <= k; i++)
            h->free(it[i].ids);
        free(it);
        return rc;
    }
    *out = it;
    *n_out = k;
    return 0;
}

/* Last-position logits of the eval prompts (right-padded batches), with or without
 * hooks: accuracy (answer beats wrong), top-1 accuracy, mean logit difference. */
static int eval_run(ablation *a, const eval_item *it, int n, const lp_hooks *hk, double *acc, double *top1,
                    double *ld)
{
    const lp_host_api *h = a->h;
    const int V = h->model_config(a->m)->d_vocab, CH = 32;
    int maxT = 0;
    for (int i = 0; i < n; i++)
        maxT = it[i].n > maxT ? it[i].n : maxT;
    int32_t *tok = h->alloc(sizeof(int32_t) * (size_t)CH * maxT), *len = h->alloc(sizeof(int32_t) * CH);
    float *lg = h->alloc(sizeof(float) * (size_t)CH * V);
    if (!tok || !len || !lg) {
        h->free(tok);
        h->free(len);
        h->free(lg);
        return h->error(a->call, LP_ENOMEM, "out of memory");
    }
    int hits = 0, hits1 = 0, rc = 0;
    double sum = 0;
    for (int i0 = 0; i0 < n && !rc; i0 += CH) {
        int B = n - i0 < CH ? n - i0 : CH, T = 0;
        for (int b = 0; b < B; b++)
            T = it[i0 + b].n > T ? it[i0 + b].n : T;
        memset(tok, 0, sizeof(int32_t) * (size_t)B * T);
        for (int b = 0; b < B; b++) {
            memcpy(tok + (size_t)b * T, it[i0 + b].ids, sizeof(int32_t) * (size_t)it[i0 + b].n);
            len[b] = it[i0 + b].n;
        }
        lp_batch bt = {.tokens = tok, .n_batch = B, .n_pos = T, .lengths = len};
        lp_run_opts o;
        memset(&o, 0, sizeof o);
        o.hooks = hk;
        o.logits = LP_LOGITS_LAST;
        o.logits_out = lg;
        lp_error err = {0};
        if ((rc = h->model_run(a->m, &bt, &o, &err))) {
            rc = h->error(a->call, rc, "eval: %s", err.msg);
            break;
        }
        for (int b = 0; b < B; b++) {
            const float *z = lg + (size_t)b * V;
            const eval_item *e = &it[i0 + b];
            int am = 0;
            for (int v = 1; v < V; v++)
                if (z[v] > z[am])
                    am = v;
            hits += z[e->ans] > z[e->wrong];
            hits1 += am == e->ans;
            sum += (double)z[e->ans] - z[e->wrong];
        }
        if (h->progress(a->call, i0 + B, n, "eval prompts")) {
            rc = h->error(a->call, LP_ECANCELLED, "cancelled");
            break;
        }
    }
    h->free(tok);
    h->free(len);
    h->free(lg);
    *acc = (double)hits / n;
    *top1 = (double)hits1 / n;
    *ld = sum / n;
    return rc;
}

static int ablate_run(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(m);
    ablation a = {.h = h, .call = call, .m = m, .NL = cfg->n_layers};
    int T;
    const int32_t *tok = h->param_tokens(call, "prompt", &T);
    const char *mode = h->param_str(call, "mode");
    int mean = !strcmp(mode, "mean"), resample = !strcmp(mode, "resample");
    if (!mean && !resample && strcmp(mode, "zero"))
        return h->error(call, LP_EINVAL, "mode: '%s' is not zero, mean or resample", mode);
    metric mt;
    memset(&mt, 0, sizeof mt);
    lp_cache *cache = NULL;
    lp_hooks *hk = NULL;
    eval_item *ev = NULL;
    int n_ev = 0, rc = 0;
    float *lg = NULL;
    a.s = calloc((size_t)S_KINDS * a.NL, sizeof *a.s);
    if (!a.s) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = metric_init(&mt, h, call, m, 1)) || (rc = parse_components(&a, h->param_str(call, "components"))))
        goto out;
    cache = h->cache_new();
    hk = h->hooks_new();
    lg = h->alloc(sizeof(float) * (size_t)cfg->d_vocab);
    if (!cache || !hk || !lg) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    /* replacement values */
    if (mean || resample) {
        const char **filt = malloc(sizeof *filt * (size_t)a.n_sites);
        int nf = 0;
        for (int i = 0; filt && i < S_KINDS * a.NL; i++)
            if (a.s[i].used)
                filt[nf++] = a.s[i].name;
        lp_error err = {0};
        rc = filt ? h->cache_set_filter(cache, filt, nf, &err) : LP_ENOMEM;
        free(filt);
        if (rc) {
            rc = h->error(call, rc, "cache: %s", err.msg);
            goto out;
        }
    }
    if (resample) {
        const char *src = h->param_str(call, "source");
        if (!src || !*src) {
            rc = h->error(call, LP_EINVAL, "mode=resample needs a source prompt (source=...)");
            goto out;
        }
        int32_t *ids;
        int n;
        if ((rc = pu_parse_prompt(h, call, m, "source", src, &ids, &n)))
            goto out;
        rc = collect(&a, cache, ids, n, 1);
        h->free(ids);
        if (rc)
            goto out;
    } else if (mean) {
        const char *ds = h->param_str(call, "dataset");
        long count = 0;
        if (!ds || !*ds) {
            if ((rc = collect(&a, cache, tok, T, 0)))
                goto out;
            count = T;
        } else {
            int n;
            char **lines = split_dataset(ds, &n);
            if (!lines || !n) {
                if (lines)
                    free(lines[0]);
                free(lines);
                rc = h->error(call, LP_EINVAL, "dataset: no prompts in '%s'", ds);
                goto out;
            }
            for (int i = 0; i < n && !rc; i++) {
                int32_t *ids;
                int np;
                if (h->progress(call, i, n, "dataset")) {
                    rc = h->error(call, LP_ECANCELLED, "cancelled");
                    break;
                }
                if ((rc = pu_parse_prompt(h, call, m, "dataset", lines[i + 1], &ids, &np)))
                    break;
                rc = collect(&a, cache, ids, np, 0);
                h->free(ids);
                count += np;
            }
            free(lines[0]);
            free(lines);
            if (rc)
                goto out;
        }
        for (int i = 0; i < S_KINDS * a.NL; i++) {
            site *s = &a.s[i];
            if (!s->used)
                continue;
            s->val = malloc(sizeof(float) * (size_t)s->row);
            if (!s->val) {
                rc = h->error(call, LP_ENOMEM, "out of memory");
                goto out;
            }
            for (int j = 0; j < s->row; j++)
                s->val[j] = (float)(s->sum[j] / (double)count);
            s->n_val = 1;
        }
    }
    h->cache_free(cache);
    cache = NULL;

    /* the metric before and after */
    lp_batch b = {.tokens = tok, .n_batch = 1, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.logits = LP_LOGITS_LAST;
    o.logits_out = lg;
    lp_error err = {0};
    if ((rc = h->model_run(m, &b, &o, &err))) {
        rc = h->error(call, rc, "%s", err.msg);
        goto out;
    }
    double before = (double)lg[mt.ans] - lg[mt.wrong];
    if ((rc = add_ablation_hooks(&a, hk)))
        goto out;
    o.hooks = hk;
    if ((rc = h->model_run(m, &b, &o, &err))) {
        rc = h->error(call, rc, "ablated run: %s", err.msg);
        goto out;
    }
    double after = (double)lg[mt.ans] - lg[mt.wrong];
    const char *evp = h->param_str(call, "eval");
    double acc0 = 0, acc1 = 0, t10 = 0, t11 = 0, ld0 = 0, ld1 = 0;
    if (evp && *evp) {
        if ((rc = load_eval(&a, evp, &ev, &n_ev)) || (rc = eval_run(&a, ev, n_ev, NULL, &acc0, &t10, &ld0)) ||
            (rc = eval_run(&a, ev, n_ev, hk, &acc1, &t11, &ld1)))
            goto out;
    }
    const char *cols[] = {"hook", "layer", "count"};
    int tab = h->result_table(call, "ablated", 3, cols);
    for (int i = 0; tab >= 0 && i < S_KINDS * a.NL; i++)
        if (a.s[i].used) {
            lp_cell row[3] = {{0, 0, a.s[i].name}, {1, i % a.NL, NULL}, {1, a.s[i].all ? 0 : a.s[i].n_idx, NULL}};
            if (h->table_row(call, tab, row) < 0)
                tab = -1;
        }
    if (tab < 0) {
        rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        goto out;
    }
    h->result_scalar(call, "metric_before", before);
    h->result_scalar(call, "metric_after", after);
    h->result_scalar(call, "fraction_lost", before != 0 ? (before - after) / before : NAN);
    if (n_ev) {
        h->result_scalar(call, "n_eval", n_ev);
        h->result_scalar(call, "accuracy_before", acc0);
        h->result_scalar(call, "accuracy_after", acc1);
        h->result_scalar(call, "top1_before", t10);
        h->result_scalar(call, "top1_after", t11);
        h->result_scalar(call, "logit_diff_before", ld0);
        h->result_scalar(call, "logit_diff_after", ld1);
    }
    rc = 0;
out:
    for (int i = 0; ev && i < n_ev; i++)
        h->free(ev[i].ids);
    free(ev);
    h->free(lg);
    h->hooks_free(hk);
    h->cache_free(cache);
    metric_free(&mt);
    ablation_free(&a);
    return rc;
}

static const lp_method_desc run_desc = {
    .struct_size = sizeof(lp_method_desc),
    .name = "run",
    .summary = "activation patching clean -> corrupted per (layer, position) or (layer, head), normalized metric",
    .help = run_help,
    .params = run_params,
    .n_params = sizeof run_params / sizeof run_params[0],
    .caps = LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_ACTIVATIONS,
    .run = run,
};

static const lp_method_desc ablate_desc = {
    .struct_size = sizeof(lp_method_desc),
    .name = "ablate",
    .summary = "zero, mean or resample ablation of heads, MLPs and neurons: the metric and accuracy before and after",
    .help = ablate_help,
    .params = ablate_params,
    .n_params = sizeof ablate_params / sizeof ablate_params[0],
    .caps = LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_ACTIVATIONS,
    .run = ablate_run,
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    int rc = host->set_info(plugin, "patching", "1.0.0", "activation patching and ablations");
    if (!rc)
        rc = host->register_method(plugin, &run_desc);
    if (!rc)
        rc = host->register_method(plugin, &ablate_desc);
    return rc;
}
