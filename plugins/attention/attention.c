/* attention — attention patterns of one layer's heads, and TransformerLens-style head
 * scores (previous-token, duplicate-token, induction) for every head at once, each with
 * the score a uniform-attention head would get. See README.md in this folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe/plugin.h"
#include "plugin_util.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

/* Pattern of (layer, batch row b, head, q, k) from a cache entry [B, H, T, T]. */
static inline float pat(const lp_tensor *p, int b, int hh, int q, int k)
{
    return *(const float *)((const char *)p->data + b * p->nb[0] + hh * p->nb[1] + q * p->nb[2] + k * p->nb[3]);
}

/* ------------------------------------------------------------------ pattern */

static const lp_param_desc pattern_params[] = {
    {"prompt", LP_PARAM_TEXT, NULL, "the text to run (tokenized with the model's BOS rule)"},
    {"layer", LP_PARAM_INT, NULL, "the block (negative counts from the end)"},
    {"head", LP_PARAM_INT, "-1", "one head, or -1 for all heads of the layer"},
    {"k", LP_PARAM_INT, "3", "how many top attended positions to list per query"},
};

static const char pattern_help[] =
    "The attention pattern blocks.LAYER.attn.hook_pattern of one prompt: for each head and each\n"
    "query position, the softmax weights over the key positions 0..q (causal).\n"
    "\n"
    "Results:\n"
    "  pattern   [head, q_pos, k_pos] the weights (rows sum to 1; k_pos > q_pos is 0)\n"
    "  top       table: head, q_pos, q_token, rank, k_pos, k_token, weight (the k most attended\n"
    "            positions of every query)\n"
    "  uniform   [q_pos] what a head spreading its attention evenly would give each key: 1/(q+1)\n";

static int pattern_run(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(m);
    int T;
    const int32_t *tok = h->param_tokens(call, "prompt", &T);
    int64_t layer = h->param_int(call, "layer"), head = h->param_int(call, "head"), k = h->param_int(call, "k");
    if (layer < 0)
        layer += cfg->n_layers;
    if (layer < 0 || layer >= cfg->n_layers)
        return h->error(call, LP_EINVAL, "layer must be in 0..%d (or negative from the end)", cfg->n_layers - 1);
    if (head < -1 || head >= cfg->n_heads)
        return h->error(call, LP_EINVAL, "head must be -1 (all) or in 0..%d", cfg->n_heads - 1);
    if (k < 1)
        return h->error(call, LP_EINVAL, "k must be >= 1");
    if (k > T)
        k = T;
    char name[96];
    h->hook_name(LP_HOOK_PATTERN, (int)layer, name, sizeof name);
    lp_cache *cache = h->cache_new();
    lp_error err = {0};
    const char *filt[] = {name};
    int rc = cache ? h->cache_set_filter(cache, filt, 1, &err) : LP_ENOMEM;
    if (rc) {
        h->cache_free(cache);
        return h->error(call, rc, "cache: %s", err.msg);
    }
    lp_batch b = {.tokens = tok, .n_batch = 1, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.cache = cache;
    o.stop_at_layer = (int)layer + 1 < cfg->n_layers ? (int)layer + 1 : 0;
    if ((rc = h->model_run(m, &b, &o, &err))) {
        h->cache_free(cache);
        return h->error(call, rc, "%s", err.msg);
    }
    lp_tensor p = pu_cached(h, call, cache, name);
    if (!p.data) {
        h->cache_free(cache);
        return LP_ENOTFOUND;
    }
    int h0 = head < 0 ? 0 : (int)head, nh = head < 0 ? cfg->n_heads : 1;
    int64_t ne[3] = {nh, T, T}, ne1[1] = {T};
    lp_tensor out = h->result_tensor(call, "pattern", 3, ne, "head,q_pos,k_pos");
    lp_tensor uni = h->result_tensor(call, "uniform", 1, ne1, "q_pos");
    const char *cols[] = {"head", "q_pos", "q_token", "rank", "k_pos", "k_token", "weight"};
    int tab = h->result_table(call, "top", 7, cols);
    if (!out.data || !uni.data || tab < 0) {
        h->cache_free(cache);
        return h->error(call, LP_ENOMEM, "out of memory for the results");
    }
    for (int q = 0; q < T; q++)
        ((float *)uni.data)[q] = 1.0f / (float)(q + 1);
    int *best = malloc(sizeof(int) * (size_t)k);
    if (!best) {
        h->cache_free(cache);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    for (int hh = 0; hh < nh && !rc; hh++)
        for (int q = 0; q < T && !rc; q++) {
            float *row = (float *)out.data + ((size_t)hh * T + q) * T;
            for (int kk = 0; kk < T; kk++)
                row[kk] = pat(&p, 0, h0 + hh, q, kk);
            int kq = (int)(k < q + 1 ? k : q + 1);
            for (int r = 0; r < kq && !rc; r++) {
                int bi = -1;
                for (int kk = 0; kk <= q; kk++) {
                    int taken = 0;
                    for (int s = 0; s < r && !taken; s++)
                        taken = best[s] == kk;
                    if (!taken && (bi < 0 || row[kk] > row[bi]))
                        bi = kk;
                }
                best[r] = bi;
                char qt[96], kt[96];
                pu_token_text(h, m, tok[q], qt, sizeof qt);
                pu_token_text(h, m, tok[bi], kt, sizeof kt);
                lp_cell cells[7] = {{1, h0 + hh, NULL}, {1, q, NULL},  {0, 0, qt},         {1, r + 1, NULL},
                                    {1, bi, NULL},      {0, 0, kt},    {1, row[bi], NULL}};
                rc = h->table_row(call, tab, cells);
            }
        }
    free(best);
    h->cache_free(cache);
    if (rc)
        return h->error(call, rc, "out of memory for the table");
    h->result_scalar(call, "layer", (double)layer);
    return 0;
}

/* ------------------------------------------------------------------ head_scores */

static const lp_param_desc score_params[] = {
    {"seq_len", LP_PARAM_INT, "50", "length L of the random token run R (the sequence is [BOS] + R + R)"},
    {"n_seqs", LP_PARAM_INT, "4", "how many random sequences the scores are averaged over"},
    {"seed", LP_PARAM_INT, "0", "seed of the random tokens"},
    {"prompt", LP_PARAM_STRING, "",
     "score previous-token attention on this prompt (text, or ids:1,2,3) instead of the random sequences"},
    {"k", LP_PARAM_INT, "10", "rows of each ranking table (0: every head)"},
};

static const char score_help[] =
    "Scores every head of every layer with TransformerLens' definitions, from one batched\n"
    "forward pass over n_seqs sequences [BOS] + R + R, R = seq_len random tokens (seeded):\n"
    "  induction   mean attention from each position of the second copy of R to the token\n"
    "              after its previous occurrence (the diagonal at offset -(seq_len-1))\n"
    "  prev_token  mean attention from position i to i-1, over i >= 1 (on `prompt` if given)\n"
    "  duplicate   TL detect_head(duplicate_token): attention mass on earlier occurrences of\n"
    "              the same token, divided by the total mass (= number of query positions)\n"
    "Scores are in 0..1; read each against its baseline (what a head attending uniformly to\n"
    "positions 0..q would score) and, for duplicate, its ceiling (the share of queries that\n"
    "have an earlier occurrence at all, about 1/2 on [BOS] + R + R).\n"
    "\n"
    "Results:\n"
    "  induction, prev_token, duplicate   [layer, head]\n"
    "  top_induction, top_prev_token, top_duplicate   tables: layer, head, score, rank\n"
    "  tokens      [seq, pos] the random sequences (token ids)\n"
    "  baseline_induction, baseline_prev_token, baseline_duplicate, ceiling_duplicate  scalars\n";

typedef struct scores {
    const lp_host_api *h;
    lp_call *call;
    int NL, H;
} scores;

static int cmp_desc(const void *a, const void *b)
{
    const float *x = *(const float *const *)a, *y = *(const float *const *)b;
    if (*x != *y)
        return *x > *y ? -1 : 1;
    return x < y ? -1 : x > y; /* ties: lower (layer, head) first */
}

static int ranking(const lp_host_api *h, lp_call *call, const char *name, float *s, int n, int H, int k)
{
    const float **ord = malloc(sizeof *ord * (size_t)n);
    if (!ord)
        return h->error(call, LP_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        ord[i] = s + i;
    qsort(ord, (size_t)n, sizeof *ord, cmp_desc);
    const char *cols[] = {"layer", "head", "score", "rank"};
    int tab = h->result_table(call, name, 4, cols);
    int rc = tab < 0 ? tab : 0;
    for (int r = 0; r < (k > 0 && k < n ? k : n) && !rc; r++) {
        int i = (int)(ord[r] - s);
        lp_cell c[4] = {{1, i / H, NULL}, {1, i % H, NULL}, {1, *ord[r], NULL}, {1, r + 1, NULL}};
        rc = h->table_row(call, tab, c);
    }
    free(ord);
    return rc ? h->error(call, rc, "out of memory for table %s", name) : 0;
}

/* One forward pass of B sequences of length T caching every layer's pattern. */
static int run_patterns(const lp_host_api *h, lp_call *call, lp_model *m, const int32_t *tok, int B, int T,
                        lp_cache **out)
{
    lp_cache *cache = h->cache_new();
    lp_error err = {0};
    const char *filt[] = {"blocks.*.attn.hook_pattern"};
    int rc = cache ? h->cache_set_filter(cache, filt, 1, &err) : LP_ENOMEM;
    if (!rc) {
        lp_batch b = {.tokens = tok, .n_batch = B, .n_pos = T, .lengths = NULL};
        lp_run_opts o;
        memset(&o, 0, sizeof o);
        o.cache = cache;
        rc = h->model_run(m, &b, &o, &err);
    }
    if (rc) {
        h->cache_free(cache);
        return h->error(call, rc, "%s", err.msg[0] ? err.msg : "out of memory");
    }
    *out = cache;
    return 0;
}

static int scores_run(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(m);
    int NL = cfg->n_layers, H = cfg->n_heads, V = cfg->d_vocab;
    int64_t L = h->param_int(call, "seq_len"), NS = h->param_int(call, "n_seqs"), k = h->param_int(call, "k");
    uint64_t seed = (uint64_t)h->param_int(call, "seed");
    int bos = cfg->bos_token_id >= 0 && cfg->bos_token_id < V ? cfg->bos_token_id : -1;
    int off = bos >= 0;
    if (L < 2 || 2 * L + off > cfg->n_ctx)
        return h->error(call, LP_EINVAL, "seq_len must be in 2..%d (the sequence is [BOS] + R + R, %d positions max)",
                        (cfg->n_ctx - off) / 2, cfg->n_ctx);
    if (NS < 1 || NS > 1024)
        return h->error(call, LP_EINVAL, "n_seqs must be in 1..1024");
    if (V < 4)
        return h->error(call, LP_EINVAL, "the vocabulary is too small for random sequences");
    int T = (int)(2 * L + off), B = (int)NS;
    int32_t *tok = malloc(sizeof *tok * (size_t)B * T);
    float *ind = calloc((size_t)NL * H, sizeof(float) * 3);
    if (!tok || !ind) {
        free(tok);
        free(ind);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    float *prev = ind + (size_t)NL * H, *dup = prev + (size_t)NL * H;
    uint64_t st = seed * 0x2545f4914f6cdd1dull + 1;
    for (int b = 0; b < B; b++) {
        int32_t *s = tok + (size_t)b * T;
        if (off)
            s[0] = bos;
        for (int i = 0; i < L; i++) {
            int32_t t;
            do
                t = (int32_t)(pu_rand(&st) % (uint64_t)V);
            while (t == bos || t == cfg->eos_token_id);
            s[off + i] = s[off + L + i] = t;
        }
    }
    if (h->progress(call, 0, 2, "forward")) {
        free(tok);
        free(ind);
        return h->error(call, LP_ECANCELLED, "cancelled");
    }
    lp_cache *cache = NULL;
    int rc = run_patterns(h, call, m, tok, B, T, &cache);
    double base_ind = 0, base_prev = 0, base_dup = 0, ceil_dup = 0;
    /* baselines and the duplicate mask are the same for every head */
    for (int q = off + (int)L; q < T; q++)
        base_ind += 1.0 / (q + 1);
    base_ind /= (double)L;
    for (int b = 0; b < B; b++)
        for (int q = 0; q < T; q++) {
            int n = 0;
            for (int kk = 0; kk < q; kk++)
                n += tok[(size_t)b * T + kk] == tok[(size_t)b * T + q];
            base_dup += (double)n / (q + 1);
            ceil_dup += n > 0;
        }
    base_dup /= (double)B * T;
    ceil_dup /= (double)B * T;
    for (int l = 0; l < NL && !rc; l++) {
        char name[96];
        h->hook_name(LP_HOOK_PATTERN, l, name, sizeof name);
        lp_tensor p = pu_cached(h, call, cache, name);
        if (!p.data) {
            rc = LP_ENOTFOUND;
            break;
        }
        for (int hh = 0; hh < H; hh++) {
            double si = 0, sp = 0, sd = 0;
            for (int b = 0; b < B; b++) {
                const int32_t *s = tok + (size_t)b * T;
                for (int q = off + (int)L; q < T; q++)
                    si += pat(&p, b, hh, q, q - (int)(L - 1));
                for (int q = 1; q < T; q++)
                    sp += pat(&p, b, hh, q, q - 1);
                for (int q = 1; q < T; q++)
                    for (int kk = 0; kk < q; kk++)
                        if (s[kk] == s[q])
                            sd += pat(&p, b, hh, q, kk);
            }
            ind[l * H + hh] = (float)(si / ((double)B * L));
            prev[l * H + hh] = (float)(sp / ((double)B * (T - 1)));
            dup[l * H + hh] = (float)(sd / ((double)B * T));
        }
    }
    h->cache_free(cache);
    cache = NULL;
    for (int q = 1; q < T; q++)
        base_prev += 1.0 / (q + 1);
    base_prev /= (T - 1);

    /* previous-token scores on a given prompt */
    const char *ps = h->param_str(call, "prompt");
    if (!rc && ps && *ps) {
        int32_t *ids = NULL;
        int n = 0;
        rc = pu_parse_prompt(h, call, m, "prompt", ps, &ids, &n);
        if (!rc && n < 2)
            rc = h->error(call, LP_EINVAL, "prompt: needs at least 2 tokens");
        if (!rc && !(rc = h->progress(call, 1, 2, "forward") ? h->error(call, LP_ECANCELLED, "cancelled") : 0))
            rc = run_patterns(h, call, m, ids, 1, n, &cache);
        for (int l = 0; l < NL && !rc; l++) {
            char name[96];
            h->hook_name(LP_HOOK_PATTERN, l, name, sizeof name);
            lp_tensor p = pu_cached(h, call, cache, name);
            if (!p.data) {
                rc = LP_ENOTFOUND;
                break;
            }
            for (int hh = 0; hh < H; hh++) {
                double sp = 0;
                for (int q = 1; q < n; q++)
                    sp += pat(&p, 0, hh, q, q - 1);
                prev[l * H + hh] = (float)(sp / (n - 1));
            }
        }
        if (!rc) {
            base_prev = 0;
            for (int q = 1; q < n; q++)
                base_prev += 1.0 / (q + 1);
            base_prev /= (n - 1);
        }
        h->cache_free(cache);
        h->free(ids);
    }
    if (!rc) {
        int64_t ne[2] = {B, T};
        lp_tensor t = h->result_tensor(call, "tokens", 2, ne, "seq,pos");
        if (!t.data)
            rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        for (size_t i = 0; !rc && i < (size_t)B * T; i++)
            ((float *)t.data)[i] = (float)tok[i];
    }
    free(tok);
    if (!rc) {
        int64_t ne[2] = {NL, H};
        const char *names[3] = {"induction", "prev_token", "duplicate"};
        float *src[3] = {ind, prev, dup};
        for (int i = 0; i < 3 && !rc; i++) {
            lp_tensor t = h->result_tensor(call, names[i], 2, ne, "layer,head");
            if (!t.data) {
                rc = h->error(call, LP_ENOMEM, "out of memory for the results");
                break;
            }
            memcpy(t.data, src[i], sizeof(float) * (size_t)NL * H);
            char tn[32];
            snprintf(tn, sizeof tn, "top_%s", names[i]);
            rc = ranking(h, call, tn, src[i], NL * H, H, (int)k);
        }
    }
    free(ind);
    if (rc)
        return rc;
    h->result_scalar(call, "baseline_induction", base_ind);
    h->result_scalar(call, "baseline_prev_token", base_prev);
    h->result_scalar(call, "baseline_duplicate", base_dup);
    h->result_scalar(call, "ceiling_duplicate", ceil_dup);
    h->result_scalar(call, "seq_positions", T);
    h->progress(call, 2, 2, "forward");
    return 0;
}

static const lp_method_desc pattern_desc = {
    .struct_size = sizeof(lp_method_desc),
    .name = "pattern",
    .summary = "attention pattern of a layer's heads on a prompt, with each query's most attended positions",
    .help = pattern_help,
    .params = pattern_params,
    .n_params = sizeof pattern_params / sizeof pattern_params[0],
    .caps = LP_CAP_READS_ACTIVATIONS,
    .run = pattern_run,
};

static const lp_method_desc scores_desc = {
    .struct_size = sizeof(lp_method_desc),
    .name = "head_scores",
    .summary = "induction, previous-token and duplicate-token scores of every head (TransformerLens definitions)",
    .help = score_help,
    .params = score_params,
    .n_params = sizeof score_params / sizeof score_params[0],
    .caps = LP_CAP_READS_ACTIVATIONS,
    .run = scores_run,
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    int rc = host->set_info(plugin, "attention", "1.0.0", "attention patterns and head scores");
    if (!rc)
        rc = host->register_method(plugin, &pattern_desc);
    if (!rc)
        rc = host->register_method(plugin, &scores_desc);
    return rc;
}
