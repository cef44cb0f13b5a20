/* sae — sae.dashboard: a feature's top contexts, quantile samples, density, logit effects. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glue.h"

static const lp_param_desc dash_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder"},
    {"store", LP_PARAM_STRING, "", "activation store with the SAE's hook point (contexts and activations); "
                                   "empty: the logit effects only"},
    {"feature", LP_PARAM_INT, NULL, "latent index"},
    {"n_top", LP_PARAM_INT, "10", "top-activating contexts"},
    {"n_quantile", LP_PARAM_INT, "3", "contexts sampled per activation quantile (4 quantile bins)"},
    {"max_tokens", LP_PARAM_INT, "200000", "tokens of the store to scan (0: all)"},
    {"window", LP_PARAM_INT, "16", "tokens shown before the activating token (and 4 after)"},
    {"n_logits", LP_PARAM_INT, "10", "top and bottom tokens of the logit effect"},
};

static const char dash_help[] =
    "A feature's dashboard over an activation store: its activation on every scanned token,\n"
    "the top-activating contexts with per-token activations, contexts sampled from activation\n"
    "quantiles, its density, and its logit effects (W_dec[feature]·W_U: the tokens its decoder\n"
    "direction promotes and suppresses, bias excluded).\n"
    "Without a store only the logit effects are computed, and the string `note` says that\n"
    "contexts, quantile samples and density need one.\n"
    "Results: density, max_activation, mean_activation (when active); tables `examples`\n"
    "(kind: top|q1..q4, rank, context, pos, activation, text with the token in [[ ]]),\n"
    "`tokens` (example, offset, token, activation: per-token activations of each example),\n"
    "`logits` (direction: up|down, rank, token, id, effect); tensor `histogram` [20] of the\n"
    "active activations.\n";

typedef struct hit {
    float a;
    int64_t row;
} hit;

static int hit_desc(const void *x, const void *y)
{
    float a = ((const hit *)x)->a, b = ((const hit *)y)->a;
    if (a != b)
        return a < b ? 1 : -1;
    int64_t r = ((const hit *)x)->row - ((const hit *)y)->row;
    return r > 0 ? 1 : r < 0 ? -1 : 0;
}

/* activations of feature j for store rows [r0, r0+n) */
static void feature_acts(const sae *s, const store *st, int j, int64_t r0, int n, float *xbuf, float *fbuf, float *out)
{
    int D = s->d_in, S = s->d_sae;
    for (int r = 0; r < n; r++)
        store_row(st, r0 + r, xbuf + (size_t)r * D, NULL);
    if (s->arch == SAE_TOPK || strcmp(s->normalize, "none")) {
        sae_encode(s, xbuf, n, fbuf);
        for (int r = 0; r < n; r++)
            out[r] = fbuf[(size_t)r * S + j];
        return;
    }
    for (int r = 0; r < n; r++) { /* one latent: a dot product */
        const float *x = xbuf + (size_t)r * D;
        double lin = 0;
        for (int d = 0; d < D; d++)
            lin += (double)(x[d] - (s->apply_b_dec_to_input ? s->b_dec[d] : 0)) * s->W_enc[(size_t)d * S + j];
        double pre = lin + s->b_enc[j], v;
        if (s->arch == SAE_GATED) {
            double mag = lin * exp(s->r_mag[j]) + s->b_mag[j];
            v = pre > 0 && mag > 0 ? mag : 0;
        } else if (s->arch == SAE_JUMPRELU)
            v = pre > s->threshold[j] && pre > 0 ? pre : 0;
        else
            v = pre > 0 ? pre : 0;
        out[r] = (float)v;
    }
}

/* logit effects: unembed(W_dec[j]) - unembed(0), the nl largest and smallest; returns 1 when
 * the table was made (the SAE's d_in is the residual stream's width). */
static int logit_effects(lp_call *call, const lp_host_api *h, lp_model *m, const sae *s, int j, int nl)
{
    const lp_config *cfg = h->model_config(m);
    int V = cfg->d_vocab, D = s->d_in, made = 0;
    if (s->d_in != cfg->d_model)
        return 0;
    float *z = calloc((size_t)2 * D, sizeof(float)), *lg = malloc(sizeof(float) * (size_t)2 * V);
    if (z && lg) {
        memcpy(z, s->W_dec + (size_t)j * D, sizeof(float) * (size_t)D);
        if (h->model_unembed(m, z, 2, lg) == 0) {
            for (int v = 0; v < V; v++)
                lg[v] -= lg[V + v];
            const char *lcols[] = {"direction", "rank", "token", "id", "effect"};
            int tl = h->result_table(call, "logits", 5, lcols);
            made = 1;
            for (int dir = 0; dir < 2; dir++) {
                int *taken = calloc((size_t)V, sizeof(int));
                for (int r = 0; r < nl && r < V && taken; r++) {
                    int bi = -1;
                    for (int v = 0; v < V; v++)
                        if (!taken[v] && (bi < 0 || (dir == 0 ? lg[v] > lg[bi] : lg[v] < lg[bi])))
                            bi = v;
                    taken[bi] = 1;
                    char tx[96];
                    sae_token_text(m, bi, tx, sizeof tx);
                    lp_cell lr[5] = {{0, 0, dir ? "down" : "up"}, {1, r + 1, NULL}, {0, 0, tx}, {1, bi, NULL},
                                     {1, lg[bi], NULL}};
                    h->table_row(call, tl, lr);
                }
                free(taken);
            }
        }
    }
    free(z), free(lg);
    return made;
}

static int dashboard(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), NULL, &s, hook, sizeof hook);
    if (rc)
        return rc;
    int j = (int)h->param_int(call, "feature");
    if (j < 0 || j >= s->d_sae)
        return h->error(call, LP_EINVAL, "feature must be in 0..%d", s->d_sae - 1);
    int nl = (int)h->param_int(call, "n_logits");
    const char *store_path = h->param_str(call, "store");
    if (!store_path || !*store_path) { /* no store: what the weights alone say */
        int made = logit_effects(call, h, m, s, j, nl);
        h->result_string(call, "note",
                         made ? "no activation store: logit effects only (top contexts, quantile samples and "
                                "density need store=DIR)"
                              : "no activation store, and no logit effects: the SAE's d_in is not the model's d_model");
        return 0;
    }
    store st;
    char err[SAE_ERR_MAX];
    if ((rc = store_open(store_path, hook, &st, err)))
        return h->error(call, rc, "%s", err);
    if (st.d != s->d_in) {
        store_close(&st);
        return h->error(call, LP_EINVAL, "the store's %s is %d wide, the SAE's d_in is %d", hook, st.d, s->d_in);
    }
    int64_t N = st.n_tokens, maxt = h->param_int(call, "max_tokens");
    if (maxt > 0 && N > maxt)
        N = maxt - maxt % st.context_size;
    if (N < st.context_size)
        N = st.context_size <= st.n_tokens ? st.context_size : st.n_tokens;
    int T = st.context_size, n_top = (int)h->param_int(call, "n_top"), nq = (int)h->param_int(call, "n_quantile"),
        win = (int)h->param_int(call, "window");
    int CH = 256, D = s->d_in, S = s->d_sae;
    float *acts = malloc(sizeof(float) * (size_t)N), *xb = malloc(sizeof(float) * (size_t)CH * D),
          *fb = malloc(sizeof(float) * (size_t)CH * S);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)N);
    hit *hits = malloc(sizeof(hit) * (size_t)N);
    if (!acts || !xb || !fb || !toks || !hits) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t r0 = 0; r0 < N; r0 += CH) {
        int n = (int)(N - r0 < CH ? N - r0 : CH);
        /* progress (and a chance to cancel) before every 4096 tokens, the first included */
        if ((r0 / CH) % 16 == 0 && h->progress(call, (double)r0, (double)N, "tokens")) {
            rc = h->error(call, LP_ECANCELLED, "cancelled");
            goto out;
        }
        feature_acts(s, &st, j, r0, n, xb, fb, acts + r0);
    }
    h->progress(call, (double)N, (double)N, "tokens");
    float tmp[1];
    for (int64_t r = 0; r < N; r++)
        store_row(&st, r, xb, &toks[r]), (void)tmp;
    int64_t nh = 0;
    double sum = 0;
    float mx = 0;
    for (int64_t r = 0; r < N; r++)
        if (acts[r] > 0) {
            hits[nh++] = (hit){acts[r], r};
            sum += acts[r];
            mx = acts[r] > mx ? acts[r] : mx;
        }
    h->result_scalar(call, "density", (double)nh / (double)N);
    h->result_scalar(call, "max_activation", mx);
    h->result_scalar(call, "mean_activation", nh ? sum / nh : 0);
    h->result_scalar(call, "tokens_scanned", (double)N);
    {
        int64_t ne[1] = {20};
        lp_tensor hg = h->result_tensor(call, "histogram", 1, ne, "bin");
        for (int64_t q = 0; q < nh && hg.data; q++) {
            int b = mx > 0 ? (int)(hits[q].a / mx * 20) : 0;
            ((float *)hg.data)[b > 19 ? 19 : b]++;
        }
    }
    qsort(hits, (size_t)nh, sizeof(hit), hit_desc);
    const char *ecols[] = {"kind", "rank", "context", "pos", "activation", "text"};
    const char *tcols[] = {"example", "offset", "token", "activation"};
    int te = h->result_table(call, "examples", 6, ecols), tt = h->result_table(call, "tokens", 4, tcols);
    int ex = 0;
    /* examples: top n_top by activation (one per context), then nq per quantile bin */
    int64_t *used_ctx = calloc((size_t)(n_top + 4 * nq + 1), sizeof(int64_t));
    int n_used = 0;
    for (int kind = 0; kind < 5; kind++) {
        int64_t lo = 0, hi = nh;
        int want = kind == 0 ? n_top : nq;
        if (kind > 0) { /* kind 1..4 = quartiles q4..q1 of the (descending) hits; q4 = top quarter */
            lo = nh * (kind - 1) / 4;
            hi = nh * kind / 4;
        }
        int got = 0;
        int64_t span = hi - lo, stride = kind == 0 ? 1 : (span / (want > 0 ? want : 1) > 0 ? span / want : 1);
        for (int64_t q = lo; q < hi && got < want; q += stride) {
            int64_t row = hits[q].row, c = row / T;
            int dup = 0;
            for (int u = 0; u < n_used && !dup; u++)
                dup = used_ctx[u] == c;
            if (dup)
                continue;
            used_ctx[n_used++] = c;
            int p = (int)(row % T), a0 = p - win < 0 ? 0 : p - win, a1 = p + 5 > T ? T : p + 5;
            char text[2048];
            size_t k = 0;
            for (int t = a0; t < a1 && k + 200 < sizeof text; t++) {
                char tx[96];
                sae_token_text(m, toks[c * T + t], tx, sizeof tx);
                k += (size_t)snprintf(text + k, sizeof text - k, t == p ? "[[%s]]" : "%s", tx);
                lp_cell tr[4] = {{1, ex, NULL}, {1, t - p, NULL}, {0, 0, tx}, {1, acts[c * T + t], NULL}};
                h->table_row(call, tt, tr);
            }
            char kn[8];
            snprintf(kn, sizeof kn, kind == 0 ? "top" : "q%d", 5 - kind);
            lp_cell er[6] = {{0, 0, kn},   {1, got + 1, NULL},   {1, (double)c, NULL},
                             {1, p, NULL}, {1, hits[q].a, NULL}, {0, 0, text}};
            h->table_row(call, te, er);
            got++;
            ex++;
        }
    }
    free(used_ctx);
    if (!logit_effects(call, h, m, s, j, nl))
        h->result_string(call, "note", "no logit effects: the SAE's d_in is not the model's d_model");
out:
    free(acts), free(xb), free(fb), free(toks), free(hits);
    store_close(&st);
    return rc;
}

const lp_method_desc sae_method_dashboard =
    SAE_DESC("dashboard", "a feature's top contexts, quantile samples, density and logit effects", dash_help,
             dash_params, 0, dashboard);
