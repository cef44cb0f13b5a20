/* sae — sae.evaluate: L0, explained variance, CE loss recovered, KL, dead/dense latents. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glue.h"

static const lp_param_desc eval_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder"},
    {"store", LP_PARAM_STRING, "", "evaluate on the contexts of this activation store (its tokens)"},
    {"corpus", LP_PARAM_STRING, "", "or on contexts cut from this corpus"},
    {"docs", LP_PARAM_STRING, "paragraphs", "corpus documents: paragraphs or lines"},
    {"skip_contexts", LP_PARAM_INT, "0", "corpus: skip this many contexts first (to hold out the training part)"},
    {"contexts", LP_PARAM_INT, "64", "how many contexts (a store gives its last ones: seen in training unless held out)"},
    {"context_size", LP_PARAM_INT, "0", "corpus contexts' length (0: the SAE's context_size or 128)"},
    {"batch", LP_PARAM_INT, "8", "contexts per forward pass"},
    {"exclude_bos", LP_PARAM_BOOL, "false", "leave position 0 (BOS) untouched and out of the statistics"},
    {"dense_threshold", LP_PARAM_FLOAT, "0.1", "a latent firing on more than this fraction of tokens is dense"},
    {"hook", LP_PARAM_STRING, "", "override the SAE's hook point"},
};

static const char eval_help[] =
    "The figures the field argues about, on held-out contexts:\n"
    "  l0                 mean active latents per token\n"
    "  explained_variance 1 - Σ|x - x̂|² / Σ|x - mean(x)|²\n"
    "  ce_clean, ce_sae, ce_zero, ce_mean   next-token cross-entropy (nats) of the clean run, with\n"
    "                     the reconstruction spliced in at the hook, and with the activation zero-\n"
    "                     and mean-ablated (mean over the evaluated tokens)\n"
    "  ce_recovered_zero  (ce_zero - ce_sae) / (ce_zero - ce_clean) (SAELens' definition), and\n"
    "  ce_recovered_mean  the same against mean ablation\n"
    "  kl_sae, kl_zero    mean KL(clean || spliced) per position\n"
    "  dead, dense        latents that never fire / fire above dense_threshold\n"
    "Tables: histogram (log10 density bin, latents); tensor density [d_sae].\n";

typedef struct ce_acc {
    double ce, kl;
    int64_t n;
} ce_acc;

/* Add CE (and KL against clean log-probs when given) of logits [nb, T, V] for tokens. */
static void ce_add(const float *lg, const int32_t *tok, int nb, int T, int V, float *lp_out, const float *lp_clean,
                   ce_acc *a)
{
    for (int b = 0; b < nb; b++)
        for (int p = 0; p < T; p++) {
            const float *z = lg + ((size_t)b * T + p) * V;
            float mx = z[0];
            for (int v = 1; v < V; v++)
                mx = z[v] > mx ? z[v] : mx;
            double s = 0;
            for (int v = 0; v < V; v++)
                s += exp((double)z[v] - mx);
            double lse = mx + log(s);
            if (p + 1 < T) {
                a->ce += lse - z[tok[(size_t)b * T + p + 1]];
                a->n++;
            }
            float *lo = lp_out ? lp_out + ((size_t)b * T + p) * V : NULL;
            if (lo)
                for (int v = 0; v < V; v++)
                    lo[v] = (float)(z[v] - lse);
            if (lp_clean) {
                const float *lc = lp_clean + ((size_t)b * T + p) * V;
                double kl = 0;
                for (int v = 0; v < V; v++)
                    kl += exp(lc[v]) * (lc[v] - (z[v] - lse));
                a->kl += kl;
            }
        }
}

static int evaluate(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), h->param_str(call, "hook"), &s, hook, sizeof hook);
    if (rc)
        return rc;
    const char *sdir = h->param_str(call, "store"), *corpus = h->param_str(call, "corpus");
    int64_t nctx = h->param_int(call, "contexts");
    int nbatch = (int)h->param_int(call, "batch"), skip_bos = h->param_bool(call, "exclude_bos");
    double dense_thr = h->param_float(call, "dense_threshold");
    if (nctx < 1 || nbatch < 1)
        return h->error(call, LP_EINVAL, "contexts and batch must be positive");
    contexts cx = {0};
    char err[SAE_ERR_MAX];
    if (*sdir) {
        store st;
        if ((rc = store_open(sdir, NULL, &st, err)))
            return h->error(call, rc, "%s", err);
        int T = st.context_size;
        int64_t have = st.n_tokens / T;
        if (nctx > have)
            nctx = have;
        cx.T = T;
        cx.n = nctx;
        cx.tok = malloc(sizeof(int32_t) * (size_t)nctx * T);
        float *tmp = malloc(sizeof(float) * (size_t)st.d);
        for (int64_t c = 0; c < nctx; c++) /* the last contexts of the store */
            for (int p = 0; p < T; p++)
                store_row(&st, (have - nctx + c) * T + p, tmp, &cx.tok[c * T + p]);
        free(tmp);
        store_close(&st);
    } else if (*corpus) {
        int T = (int)h->param_int(call, "context_size");
        if (T <= 0)
            T = s->context_size > 0 ? s->context_size : 128;
        int64_t bytes;
        int64_t skip = h->param_int(call, "skip_contexts");
        if (skip < 0)
            skip = 0;
        if ((rc = sae_corpus_contexts(call, m, corpus, T, s->prepend_bos, nctx + skip,
                                      !strcmp(h->param_str(call, "docs"), "lines"), &cx, &bytes)))
            return rc;
        if (skip >= cx.n) {
            free(cx.tok);
            return h->error(call, LP_EINVAL, "skip_contexts %lld leaves no context of the corpus's %lld",
                            (long long)skip, (long long)cx.n);
        }
        memmove(cx.tok, cx.tok + skip * T, sizeof(int32_t) * (size_t)(cx.n - skip) * T);
        cx.n -= skip;
    } else
        return h->error(call, LP_EINVAL, "give store=DIR or corpus=FILE");
    const lp_config *cfg = h->model_config(m);
    int T = cx.T, V = cfg->d_vocab, D = s->d_in, S = s->d_sae;
    size_t rows_b = (size_t)nbatch * T;
    float *x = malloc(sizeof(float) * rows_b * D), *xh = malloc(sizeof(float) * rows_b * D),
          *f = malloc(sizeof(float) * rows_b * S), *lg = malloc(sizeof(float) * rows_b * V),
          *lpc = malloc(sizeof(float) * rows_b * V);
    double *mean = calloc((size_t)D, sizeof(double)), *sum2 = calloc((size_t)D, sizeof(double));
    int64_t *fires = calloc((size_t)S, sizeof(int64_t));
    float *meanf = malloc(sizeof(float) * (size_t)D);
    if (!x || !xh || !f || !lg || !lpc || !mean || !sum2 || !fires || !meanf) {
        rc =
            h->error(call, LP_ENOMEM, "out of memory (batch %d x %d positions, %d latents, %d vocab)", nbatch, T, S, V);
        goto out;
    }
    /* pass 1: the mean activation (for mean ablation and explained variance) */
    int64_t ntok = 0;
    for (int64_t c = 0; c < cx.n && !rc; c += nbatch) {
        int nb = (int)(cx.n - c < nbatch ? cx.n - c : nbatch);
        hook_io io = {x, D, s->hook_head_index, 0, NULL, 0};
        rc = sae_run_ctx(call, m, cx.tok + c * T, nb, T, hook, &io, NULL);
        for (int r = 0; !rc && r < nb * T; r++) {
            if (skip_bos && r % T == 0)
                continue;
            for (int d = 0; d < D; d++)
                mean[d] += x[(size_t)r * D + d];
            ntok++;
        }
        if (h->progress(call, (double)c, (double)cx.n * 2, "contexts"))
            rc = h->error(call, LP_ECANCELLED, "cancelled");
    }
    if (rc)
        goto out;
    for (int d = 0; d < D; d++)
        meanf[d] = (float)(mean[d] /= (double)(ntok ? ntok : 1));
    ce_acc clean = {0}, sae_a = {0}, zero = {0}, meanab = {0};
    double l0 = 0, se = 0, var = 0;
    for (int64_t c = 0; c < cx.n && !rc; c += nbatch) {
        int nb = (int)(cx.n - c < nbatch ? cx.n - c : nbatch);
        const int32_t *tk = cx.tok + c * T;
        hook_io cap = {x, D, s->hook_head_index, 0, NULL, 0};
        if ((rc = sae_run_ctx(call, m, tk, nb, T, hook, &cap, lg)))
            break;
        ce_add(lg, tk, nb, T, V, lpc, NULL, &clean);
        sae_encode(s, x, nb * T, f);
        sae_reconstruct(s, x, f, nb * T, xh);
        for (int r = 0; r < nb * T; r++) {
            if (skip_bos && r % T == 0)
                continue;
            const float *fr = f + (size_t)r * S;
            for (int i = 0; i < S; i++)
                if (fr[i] != 0) {
                    l0++;
                    fires[i]++;
                }
            for (int d = 0; d < D; d++) {
                double e = xh[(size_t)r * D + d] - x[(size_t)r * D + d], v = x[(size_t)r * D + d] - mean[d];
                se += e * e;
                var += v * v;
            }
        }
        hook_io rep = {xh, D, s->hook_head_index, 1, NULL, skip_bos};
        if ((rc = sae_run_ctx(call, m, tk, nb, T, hook, &rep, lg)))
            break;
        ce_add(lg, tk, nb, T, V, NULL, lpc, &sae_a);
        hook_io z = {xh, D, s->hook_head_index, 2, NULL, skip_bos};
        if ((rc = sae_run_ctx(call, m, tk, nb, T, hook, &z, lg)))
            break;
        ce_add(lg, tk, nb, T, V, NULL, lpc, &zero);
        hook_io mab = {xh, D, s->hook_head_index, 3, meanf, skip_bos};
        if ((rc = sae_run_ctx(call, m, tk, nb, T, hook, &mab, lg)))
            break;
        ce_add(lg, tk, nb, T, V, NULL, lpc, &meanab);
        if (h->progress(call, (double)(cx.n + c + nb), (double)cx.n * 2, "contexts"))
            rc = h->error(call, LP_ECANCELLED, "cancelled");
    }
    if (rc)
        goto out;
    {
        double ce_c = clean.ce / clean.n, ce_s = sae_a.ce / sae_a.n, ce_z = zero.ce / zero.n,
               ce_m = meanab.ce / meanab.n;
        int64_t npos = clean.n + cx.n; /* every position for KL */
        h->result_scalar(call, "tokens", (double)ntok);
        h->result_scalar(call, "l0", l0 / (double)ntok);
        h->result_scalar(call, "explained_variance", var > 0 ? 1 - se / var : 0);
        h->result_scalar(call, "mse", se / (double)ntok);
        h->result_scalar(call, "ce_clean", ce_c);
        h->result_scalar(call, "ce_sae", ce_s);
        h->result_scalar(call, "ce_zero", ce_z);
        h->result_scalar(call, "ce_mean", ce_m);
        h->result_scalar(call, "ce_recovered_zero", (ce_z - ce_s) / (ce_z - ce_c));
        h->result_scalar(call, "ce_recovered_mean", (ce_m - ce_s) / (ce_m - ce_c));
        h->result_scalar(call, "kl_sae", sae_a.kl / (double)npos);
        h->result_scalar(call, "kl_zero", zero.kl / (double)npos);
        int dead = 0, dense = 0;
        int64_t neS[1] = {S};
        lp_tensor den = h->result_tensor(call, "density", 1, neS, "feature");
        int hist[10] = {0}; /* log10 density bins: [-inf,-8) [-8,-7) … [-1,0] */
        for (int i = 0; i < S; i++) {
            double dn = (double)fires[i] / (double)ntok;
            if (den.data)
                ((float *)den.data)[i] = (float)dn;
            dead += fires[i] == 0;
            dense += dn > dense_thr;
            int bin = fires[i] == 0 ? 0 : (int)floor(log10(dn)) + 9;
            hist[fires[i] == 0 ? 0 : bin < 1 ? 1 : bin > 9 ? 9 : bin]++;
        }
        h->result_scalar(call, "dead", dead);
        h->result_scalar(call, "dense", dense);
        const char *cols[] = {"log10_density", "latents"};
        int tb = h->result_table(call, "histogram", 2, cols);
        for (int b = 0; b < 10; b++) {
            char lab[32];
            if (b == 0)
                snprintf(lab, sizeof lab, "never");
            else
                snprintf(lab, sizeof lab, "[%d,%d)", b - 9, b - 8);
            lp_cell row[2] = {{0, 0, lab}, {1, hist[b], NULL}};
            h->table_row(call, tb, row);
        }
    }
out:
    free(x), free(xh), free(f), free(lg), free(lpc), free(mean), free(sum2), free(fires), free(meanf);
    free(cx.tok);
    return rc;
}

const lp_method_desc sae_method_evaluate =
    SAE_DESC("evaluate", "L0, explained variance, CE loss recovered, KL, dead/dense latents", eval_help, eval_params,
             LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_ACTIVATIONS, evaluate);
