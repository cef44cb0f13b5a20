/* dla — direct logit attribution: the final logit of a target token (or the logit
 * difference target − baseline) at one position, split into what each component writes
 * into the final residual stream, read through the final norm with its scale frozen (as
 * TransformerLens does) and the unembedding. See README.md in this folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe/plugin.h"
#include "plugin_util.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

static const lp_param_desc params[] = {
    {"prompt", LP_PARAM_TEXT, NULL, "the text to run (tokenized with the model's BOS rule)"},
    {"target", LP_PARAM_STRING, NULL, "the token whose logit is explained: its text (\" Mary\") or #ID"},
    {"baseline", LP_PARAM_STRING, "", "optional second token: explain logit(target) - logit(baseline)"},
    {"position", LP_PARAM_INT, "-1", "the position whose prediction is explained (negative counts from the end)"},
    {"k", LP_PARAM_INT, "0", "rows of the contributions table (0: every component)"},
};

static const char help[] =
    "Splits the final logit of `target` at `position` (or logit(target) - logit(baseline)) into\n"
    "the direct contributions of every component that writes into the residual stream:\n"
    "  embed        hook_embed + hook_pos_embed\n"
    "  LxHy         each attention head: hook_z[pos, head] @ W_O[head]\n"
    "  Lx.b_O       each layer's attention output bias (models that have one)\n"
    "  Lx.mlp       each MLP layer: hook_mlp_out (its output bias included)\n"
    "  ln_final.b   the final LayerNorm's bias, b_U the unembedding bias (when present)\n"
    "Each residual-stream term c contributes ((c - mean(c)) / s * w_ln) . (W_U[:,t] - W_U[:,b]),\n"
    "with s the cached ln_final.hook_scale of the run (frozen: the norm is treated as linear,\n"
    "as TransformerLens' apply_ln_to_stack does); RMSNorm models are not centred.\n"
    "\n"
    "Results:\n"
    "  contributions  table: component, layer, head, contribution, fraction (of total), sorted by |contribution|\n"
    "  heads          [layer, head]   mlp [layer]   attn_bias [layer]\n"
    "  total          the sum of the contributions\n"
    "  actual         the logit (difference) of the real forward pass\n"
    "  residual_error |total - actual| (float rounding only: the decomposition is exact)\n";

typedef struct comp {
    char name[32];
    int layer, head;
    double v;
} comp;

static int cmp_abs(const void *a, const void *b)
{
    double x = fabs(((const comp *)a)->v), y = fabs(((const comp *)b)->v);
    return x > y ? -1 : x < y;
}

static double dotv(const lp_tensor *t, int64_t row_off_bytes, const double *e, int D)
{
    /* t's last dim is contiguous-or-strided with stride t->nb[t->ndim-1] */
    const char *p = (const char *)t->data + row_off_bytes;
    int64_t s = t->nb[t->ndim - 1];
    double acc = 0;
    for (int i = 0; i < D; i++)
        acc += (double)*(const float *)(p + i * s) * e[i];
    return acc;
}

static int run(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(m);
    const int NL = cfg->n_layers, H = cfg->n_heads, Dh = cfg->d_head, D = cfg->d_model, V = cfg->d_vocab;
    int T;
    const int32_t *tok = h->param_tokens(call, "prompt", &T);
    int32_t tgt, base = -1;
    int rc = pu_parse_token(h, call, m, "target", h->param_str(call, "target"), &tgt);
    if (rc)
        return rc;
    const char *bs = h->param_str(call, "baseline");
    if (bs && *bs && (rc = pu_parse_token(h, call, m, "baseline", bs, &base)))
        return rc;
    int64_t pos = h->param_int(call, "position"), k = h->param_int(call, "k");
    if (pos < 0)
        pos += T;
    if (pos < 0 || pos >= T)
        return h->error(call, LP_EINVAL, "position %lld is outside the prompt's %d positions",
                        (long long)h->param_int(call, "position"), T);
    if (k < 0)
        return h->error(call, LP_EINVAL, "k must be >= 0");

    /* the unembedding direction, folded with the final norm's weight (and centred) */
    lp_error err = {0};
    lp_tensor WU, lnw, lnb, bU;
    if ((rc = h->model_weight(m, "W_U", &WU, &err)))
        return h->error(call, rc, "%s", err.msg);
    int has_lnw = h->model_weight(m, "ln_final.w", &lnw, &err) == 0;
    int has_lnb = h->model_weight(m, "ln_final.b", &lnb, &err) == 0;
    int has_bU = h->model_weight(m, "b_U", &bU, &err) == 0;
    double *u = calloc((size_t)D * 2 + (size_t)Dh, sizeof(double));
    comp *cs = calloc((size_t)NL * (H + 2) + 4, sizeof *cs);
    float *logits = h->alloc(sizeof(float) * (size_t)T * V);
    lp_cache *cache = h->cache_new();
    if (!u || !cs || !logits || !cache) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    double *e = u + D, *g = e + D;
    for (int i = 0; i < D; i++)
        u[i] = (double)pu_at2(&WU, i, tgt) - (base >= 0 ? (double)pu_at2(&WU, i, base) : 0.0);
    double emean = 0;
    for (int i = 0; i < D; i++) {
        e[i] = u[i] * (has_lnw ? (double)*(const float *)((const char *)lnw.data + i * lnw.nb[0]) : 1.0);
        emean += e[i];
    }
    emean /= D;
    if (cfg->norm == LP_NORM_LAYERNORM)
        for (int i = 0; i < D; i++)
            e[i] -= emean;

    /* one forward pass: every logit, and the few activations the decomposition reads */
    const char *filt[] = {"hook_embed", "hook_pos_embed", "blocks.*.attn.hook_z", "blocks.*.hook_mlp_out",
                          "ln_final.hook_scale"};
    if ((rc = h->cache_set_filter(cache, filt, 5, &err))) {
        rc = h->error(call, rc, "cache: %s", err.msg);
        goto out;
    }
    lp_batch b = {.tokens = tok, .n_batch = 1, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.cache = cache;
    o.logits = LP_LOGITS_ALL;
    o.logits_out = logits;
    if ((rc = h->model_run(m, &b, &o, &err))) {
        rc = h->error(call, rc, "%s", err.msg);
        goto out;
    }
    const float *lrow = logits + (size_t)pos * V;
    double actual = (double)lrow[tgt] - (base >= 0 ? (double)lrow[base] : 0.0);
    lp_tensor sc = pu_cached(h, call, cache, "ln_final.hook_scale");
    if (!sc.data) {
        rc = LP_ENOTFOUND;
        goto out;
    }
    double s = *(const float *)((const char *)sc.data + pos * sc.nb[1]);
    int nc = 0;

    /* embeddings */
    lp_tensor emb = pu_cached(h, call, cache, "hook_embed");
    if (!emb.data) {
        rc = LP_ENOTFOUND;
        goto out;
    }
    double ev = dotv(&emb, pos * emb.nb[1], e, D);
    if (h->cache_find(cache, "hook_pos_embed") >= 0) {
        lp_tensor pe = pu_cached(h, call, cache, "hook_pos_embed");
        ev += dotv(&pe, pos * pe.nb[1], e, D);
    }
    cs[nc++] = (comp){"embed", -1, -1, ev / s};

    int64_t ne2[2] = {NL, H}, ne1[1] = {NL};
    lp_tensor th = h->result_tensor(call, "heads", 2, ne2, "layer,head");
    lp_tensor tm = h->result_tensor(call, "mlp", 1, ne1, "layer");
    lp_tensor tb = h->result_tensor(call, "attn_bias", 1, ne1, "layer");
    if (!th.data || !tm.data || !tb.data) {
        rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        goto out;
    }
    for (int l = 0; l < NL; l++) {
        if (h->progress(call, l, NL, "layers")) {
            rc = h->error(call, LP_ECANCELLED, "cancelled at layer %d", l);
            goto out;
        }
        char name[96], wn[64];
        h->hook_name(LP_HOOK_Z, l, name, sizeof name);
        lp_tensor z = pu_cached(h, call, cache, name);
        h->hook_name(LP_HOOK_MLP_OUT, l, name, sizeof name);
        lp_tensor mo = pu_cached(h, call, cache, name);
        lp_tensor WO, bO;
        snprintf(wn, sizeof wn, "blocks.%d.attn.W_O", l);
        if (!z.data || !mo.data) {
            rc = LP_ENOTFOUND;
            goto out;
        }
        if ((rc = h->model_weight(m, wn, &WO, &err))) {
            rc = h->error(call, rc, "%s", err.msg);
            goto out;
        }
        for (int hh = 0; hh < H; hh++) {
            /* g = W_O[h] e: [d_head] */
            for (int j = 0; j < Dh; j++) {
                const char *row = (const char *)WO.data + hh * WO.nb[0] + j * WO.nb[1];
                double acc = 0;
                for (int i = 0; i < D; i++)
                    acc += (double)*(const float *)(row + i * WO.nb[2]) * e[i];
                g[j] = acc;
            }
            const char *zr = (const char *)z.data + pos * z.nb[1] + hh * z.nb[2];
            double v = 0;
            for (int j = 0; j < Dh; j++)
                v += (double)*(const float *)(zr + j * z.nb[3]) * g[j];
            v /= s;
            ((float *)th.data)[l * H + hh] = (float)v;
            comp c = {"", l, hh, v};
            snprintf(c.name, sizeof c.name, "L%dH%d", l, hh);
            cs[nc++] = c;
        }
        snprintf(wn, sizeof wn, "blocks.%d.attn.b_O", l);
        if (h->model_weight(m, wn, &bO, &err) == 0) {
            double v = dotv(&bO, 0, e, D) / s;
            ((float *)tb.data)[l] = (float)v;
            comp c = {"", l, -1, v};
            snprintf(c.name, sizeof c.name, "L%d.b_O", l);
            cs[nc++] = c;
        }
        double v = dotv(&mo, pos * mo.nb[1], e, D) / s;
        ((float *)tm.data)[l] = (float)v;
        comp c = {"", l, -1, v};
        snprintf(c.name, sizeof c.name, "L%d.mlp", l);
        cs[nc++] = c;
    }
    if (has_lnb)
        cs[nc++] = (comp){"ln_final.b", -1, -1, dotv(&lnb, 0, u, D)};
    if (has_bU)
        cs[nc++] = (comp){"b_U", -1, -1,
                          (double)*(const float *)((const char *)bU.data + tgt * bU.nb[0]) -
                              (base >= 0 ? (double)*(const float *)((const char *)bU.data + base * bU.nb[0]) : 0.0)};
    double total = 0;
    for (int i = 0; i < nc; i++)
        total += cs[i].v;
    qsort(cs, (size_t)nc, sizeof *cs, cmp_abs);
    const char *cols[] = {"component", "layer", "head", "contribution", "fraction"};
    int tab = h->result_table(call, "contributions", 5, cols);
    if (tab < 0) {
        rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        goto out;
    }
    for (int i = 0; i < (k > 0 && k < nc ? k : nc); i++) {
        lp_cell row[5] = {{0, 0, cs[i].name},
                          {1, cs[i].layer, NULL},
                          {1, cs[i].head, NULL},
                          {1, cs[i].v, NULL},
                          {1, total != 0 ? cs[i].v / total : NAN, NULL}};
        if ((rc = h->table_row(call, tab, row))) {
            rc = h->error(call, rc, "out of memory for the table");
            goto out;
        }
    }
    h->result_scalar(call, "total", total);
    h->result_scalar(call, "actual", actual);
    h->result_scalar(call, "residual_error", fabs(total - actual));
    h->result_scalar(call, "position", (double)pos);
    h->result_scalar(call, "ln_final_scale", s);
    h->progress(call, NL, NL, "layers");
    rc = 0;
out:
    h->cache_free(cache);
    h->free(logits);
    free(u);
    free(cs);
    return rc;
}

static const lp_method_desc method = {
    .struct_size = sizeof(lp_method_desc),
    .name = "run",
    .summary = "direct logit attribution: a logit (difference) split over embeddings, heads, MLPs and biases",
    .help = help,
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .caps = LP_CAP_READS_ACTIVATIONS,
    .run = run,
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    int rc = host->set_info(plugin, "dla", "1.0.0", "direct logit attribution");
    if (!rc)
        rc = host->register_method(plugin, &method);
    return rc;
}
