/* logit_lens — what the model would predict if the residual stream stopped at each
 * layer: the final norm and the unembedding applied to blocks.L.hook_resid_pre for every
 * L, and to the final residual stream (resid_post of the last block), at every position.
 * See README.md in this folder for how to read the results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe/plugin.h"
#include "plugin_util.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

static const lp_param_desc params[] = {
    {"prompt", LP_PARAM_TEXT, NULL, "the text to run (tokenized with the model's BOS rule)"},
    {"k", LP_PARAM_INT, "5", "how many top tokens to list per layer and position"},
    {"target", LP_PARAM_STRING, "", "a token to follow: its text (\" Mary\", must be one token) or #ID"},
    {"positions", LP_PARAM_STRING, "all", "which positions: all, or a comma list (negative counts from the end)"},
    {"logits", LP_PARAM_BOOL, "false", "also return the lens logits as a tensor [layer, pos, vocab]"},
};

static const char help[] =
    "For every layer L in 0..n_layers and each chosen position, apply the model's final norm\n"
    "and unembedding to the residual stream: layer L < n_layers reads blocks.L.hook_resid_pre\n"
    "(what block L receives), layer n_layers reads the final residual stream (resid_post of\n"
    "the last block), whose lens is exactly the model's own logits.\n"
    "\n"
    "Results:\n"
    "  top               table: layer, pos, token, id, rank, prob, logit (the k most likely tokens)\n"
    "  kl                [layer, pos] KL(final || layer) in nats: 0 at the last layer; how far each\n"
    "                    layer's guess is from the model's final distribution\n"
    "  target_prob       [layer, pos] probability of `target` (when given)\n"
    "  target_rank       [layer, pos] its rank, 1 = most likely (when given)\n"
    "  positions         [pos] the absolute position of each column\n"
    "  first_layer_top1  first layer whose top-1 token at the last position is the final top-1\n"
    "  logits            [layer, pos, vocab] the lens logits (with logits=true)\n";

typedef struct lens {
    const lp_host_api *h;
    lp_call *call;
    lp_model *m;
    int T, V, D, NL;
    int *sel;   /* [nsel] absolute positions */
    int nsel;
    float *x;   /* [T, D] normed residual */
    float *lg;  /* [T, V] logits */
    float *lg_final; /* [T, V] the final layer's logits, kept from the first pass */
    double *final_lp; /* [nsel, V] final log-probs */
    float *final_p;   /* [nsel, V] final probabilities (exp of final_lp, computed once) */
    lp_cache *cache;
} lens;

static void lens_free(lens *s)
{
    if (s->cache)
        s->h->cache_free(s->cache);
    s->h->free(s->x);
    s->h->free(s->lg);
    s->h->free(s->lg_final);
    s->h->free(s->final_lp);
    s->h->free(s->final_p);
    free(s->sel);
}

/* log Σ exp(z): the terms in float (expf, all ≤ 1), the sum in double. The same function
 * gives the final and every layer's normaliser, so the last layer's KL is exactly 0. */
static double logsumexp(const float *z, int n)
{
    float mx = z[0];
    for (int i = 1; i < n; i++)
        if (z[i] > mx)
            mx = z[i];
    double s = 0;
    for (int i = 0; i < n; i++)
        s += expf(z[i] - mx);
    return mx + log(s);
}

static int argmax(const float *z, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[b])
            b = i;
    return b;
}

/* Printable token text: control bytes escaped; #ID when the model has no tokenizer. */
static void token_text(const lens *s, int32_t id, char *out, size_t cap) { pu_token_text(s->h, s->m, id, out, cap); }

static int parse_positions(lens *s, const char *spec)
{
    s->sel = malloc(sizeof(int) * (strlen(spec) / 2 + (size_t)s->T + 2));
    if (!s->sel)
        return s->h->error(s->call, LP_ENOMEM, "out of memory");
    if (!strcmp(spec, "all") || !*spec) {
        for (int t = 0; t < s->T; t++)
            s->sel[s->nsel++] = t;
        return 0;
    }
    const char *p = spec;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            return s->h->error(s->call, LP_EINVAL, "positions: '%s' is not 'all' or a comma list of positions", spec);
        long a = v < 0 ? s->T + v : v;
        if (a < 0 || a >= s->T)
            return s->h->error(s->call, LP_EINVAL, "positions: %ld is outside the prompt's %d positions", v, s->T);
        s->sel[s->nsel++] = (int)a;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return 0;
}

static int parse_target(lens *s, const char *spec, int32_t *id)
{
    *id = -1;
    if (!spec || !*spec)
        return 0;
    if (spec[0] == '#' && spec[1]) {
        char *end;
        long v = strtol(spec + 1, &end, 10);
        if (*end || v < 0 || v >= s->V)
            return s->h->error(s->call, LP_EINVAL, "target: '%s' is not a token id in 0..%d", spec, s->V - 1);
        *id = (int32_t)v;
        return 0;
    }
    int32_t *ids = NULL;
    int n = 0;
    lp_error err = {0};
    int rc = s->h->tokenize(s->m, spec, 0, &ids, &n, &err);
    if (rc) {
        s->h->free(ids);
        return s->h->error(s->call, rc, "target: %s", err.msg);
    }
    if (n != 1) {
        s->h->free(ids);
        return s->h->error(s->call, LP_EINVAL, "target: '%s' is %d tokens; give one token (or #ID)", spec, n);
    }
    *id = ids[0];
    s->h->free(ids);
    return 0;
}

/* The lens logits of layer L (L == NL: the final residual) for all positions into s->lg. */
static int lens_layer(lens *s, int L)
{
    char name[64];
    if (L < s->NL)
        s->h->hook_name(LP_HOOK_RESID_PRE, L, name, sizeof name);
    else
        s->h->hook_name(LP_HOOK_RESID_POST, s->NL - 1, name, sizeof name);
    int i = s->h->cache_find(s->cache, name);
    if (i < 0)
        return s->h->error(s->call, LP_ENOTFOUND, "the forward pass did not cache %s", name);
    lp_tensor t = s->h->cache_entry(s->cache, i);
    if (t.dtype != LP_F32 || t.ndim != 3 || t.ne[1] != s->T || t.ne[2] != s->D)
        return s->h->error(s->call, LP_EINVAL, "%s has an unexpected shape", name);
    int rc = s->h->model_ln_final(s->m, t.data, s->T, s->x, NULL);
    if (!rc)
        rc = s->h->model_unembed(s->m, s->x, s->T, s->lg);
    if (rc)
        return s->h->error(s->call, rc, "lens of %s failed", name);
    return 0;
}

static int run(lp_call *call, const lp_host_api *h)
{
    lens s;
    memset(&s, 0, sizeof s);
    s.h = h;
    s.call = call;
    s.m = h->call_model(call);
    if (!s.m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(s.m);
    const int32_t *tok = h->param_tokens(call, "prompt", &s.T);
    s.V = cfg->d_vocab;
    s.D = cfg->d_model;
    s.NL = cfg->n_layers;
    int64_t k = h->param_int(call, "k");
    if (k < 1 || k > s.V)
        return h->error(call, LP_EINVAL, "k must be in 1..%d (got %lld)", s.V, (long long)k);
    int want_logits = h->param_bool(call, "logits");
    int32_t target;
    int rc = parse_target(&s, h->param_str(call, "target"), &target);
    if (!rc)
        rc = parse_positions(&s, h->param_str(call, "positions"));
    if (rc) {
        lens_free(&s);
        return rc;
    }
    const int NL = s.NL, V = s.V, T = s.T, ns = s.nsel;

    /* one forward pass caching every resid_pre and the final residual */
    s.cache = h->cache_new();
    char last[64];
    h->hook_name(LP_HOOK_RESID_POST, NL - 1, last, sizeof last);
    const char *const filt[] = {"blocks.*.hook_resid_pre", last};
    lp_error err = {0};
    if (!s.cache || (rc = h->cache_set_filter(s.cache, filt, 2, &err))) {
        lens_free(&s);
        return h->error(call, rc ? rc : LP_ENOMEM, "cache: %s", err.msg);
    }
    lp_batch b = {.tokens = tok, .n_batch = 1, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.cache = s.cache;
    if ((rc = h->model_run(s.m, &b, &o, &err))) {
        lens_free(&s);
        return h->error(call, rc, "%s", err.msg);
    }
    s.x = h->alloc(sizeof(float) * (size_t)T * s.D);
    s.lg = h->alloc(sizeof(float) * (size_t)T * V);
    s.final_lp = h->alloc(sizeof(double) * (size_t)ns * V);
    s.final_p = h->alloc(sizeof(float) * (size_t)ns * V);
    if (!s.x || !s.lg || !s.final_lp || !s.final_p) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory (%d positions x %d tokens)", T, V);
    }

    /* results */
    int64_t ne2[2] = {NL + 1, ns}, ne3[3] = {NL + 1, ns, V}, ne1[1] = {ns};
    lp_tensor kl = h->result_tensor(call, "kl", 2, ne2, "layer,pos");
    lp_tensor tp = {0}, tr = {0}, lt = {0};
    lp_tensor pos = h->result_tensor(call, "positions", 1, ne1, "pos");
    if (target >= 0) {
        tp = h->result_tensor(call, "target_prob", 2, ne2, "layer,pos");
        tr = h->result_tensor(call, "target_rank", 2, ne2, "layer,pos");
    }
    if (want_logits)
        lt = h->result_tensor(call, "logits", 3, ne3, "layer,pos,vocab");
    const char *const cols[] = {"layer", "pos", "token", "id", "rank", "prob", "logit"};
    int top = h->result_table(call, "top", 7, cols);
    if (!kl.data || !pos.data || (target >= 0 && (!tp.data || !tr.data)) || (want_logits && !lt.data) || top < 0) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory for the results");
    }
    for (int j = 0; j < ns; j++)
        ((float *)pos.data)[j] = (float)s.sel[j];

    /* the final distribution first: KL is measured against it */
    if ((rc = lens_layer(&s, NL))) {
        lens_free(&s);
        return rc;
    }
    int final_top1 = argmax(s.lg + (size_t)(T - 1) * V, V);
    for (int j = 0; j < ns; j++) {
        const float *z = s.lg + (size_t)s.sel[j] * V;
        double lse = logsumexp(z, V);
        for (int v = 0; v < V; v++)
            s.final_p[(size_t)j * V + v] = (float)exp(s.final_lp[(size_t)j * V + v] = z[v] - lse);
    }
    /* keep the final logits for layer NL (one unembedding fewer); layers use a new buffer */
    s.lg_final = s.lg;
    s.lg = h->alloc(sizeof(float) * (size_t)T * V);
    if (!s.lg) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory (%d positions x %d tokens)", T, V);
    }
    int first_top1 = -1;
    int *best = malloc(sizeof(int) * (size_t)k);
    if (!best) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    for (int L = 0; L <= NL; L++) {
        if (h->progress(call, L, NL + 1, "layers")) {
            free(best);
            lens_free(&s);
            return h->error(call, LP_ECANCELLED, "cancelled at layer %d", L);
        }
        if (L < NL && (rc = lens_layer(&s, L))) {
            free(best);
            lens_free(&s);
            return rc;
        }
        if (L == NL) { /* the final lens, computed first: swap it in */
            float *work = s.lg;
            s.lg = s.lg_final;
            s.lg_final = work;
        }
        if (first_top1 < 0 && argmax(s.lg + (size_t)(T - 1) * V, V) == final_top1)
            first_top1 = L;
        for (int j = 0; j < ns; j++) {
            const float *z = s.lg + (size_t)s.sel[j] * V;
            double lse = logsumexp(z, V);
            const double *flp = s.final_lp + (size_t)j * V;
            const float *fp = s.final_p + (size_t)j * V;
            double d = 0;
            for (int v = 0; v < V; v++)
                if (fp[v] > 0) /* also skips -inf log-probs */
                    d += fp[v] * (flp[v] - ((double)z[v] - lse));
            ((float *)kl.data)[(size_t)L * ns + j] = (float)(d > 0 ? d : 0);
            if (want_logits)
                memcpy((float *)lt.data + ((size_t)L * ns + j) * V, z, sizeof(float) * (size_t)V);
            if (target >= 0) {
                int rank = 1;
                for (int v = 0; v < V; v++)
                    rank += z[v] > z[target];
                ((float *)tp.data)[(size_t)L * ns + j] = (float)exp((double)z[target] - lse);
                ((float *)tr.data)[(size_t)L * ns + j] = (float)rank;
            }
            /* top k by selection: each pass takes the best not yet taken (ties: lower id) */
            for (int r = 0; r < k; r++) {
                int bi = -1;
                for (int v = 0; v < V; v++) {
                    if (bi >= 0 && !(z[v] > z[bi]))
                        continue;
                    int taken = 0;
                    for (int q = 0; q < r && !taken; q++)
                        taken = best[q] == v;
                    if (!taken)
                        bi = v;
                }
                if (bi < 0)
                    break;
                best[r] = bi;
                char text[96];
                token_text(&s, bi, text, sizeof text);
                lp_cell row[7] = {
                    {1, L, NULL},       {1, s.sel[j], NULL}, {0, 0, text}, {1, bi, NULL}, {1, r + 1, NULL},
                    {1, exp((double)z[bi] - lse), NULL}, {1, z[bi], NULL},
                };
                if ((rc = h->table_row(call, top, row))) {
                    free(best);
                    lens_free(&s);
                    return h->error(call, rc, "out of memory for the table");
                }
            }
        }
    }
    h->progress(call, NL + 1, NL + 1, "layers");
    free(best);
    h->result_scalar(call, "first_layer_top1", first_top1);
    lens_free(&s);
    return 0;
}

static const lp_method_desc method = {
    .struct_size = sizeof(lp_method_desc),
    .name = "run",
    .summary = "the logit lens: each layer's residual stream read through the final norm and unembedding",
    .help = help,
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .caps = LP_CAP_READS_ACTIVATIONS,
    .run = run,
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    int rc = host->set_info(plugin, "logit_lens", "1.0.0", "logit lens: per-layer predictions through the unembedding");
    if (!rc)
        rc = host->register_method(plugin, &method);
    return rc;
}
