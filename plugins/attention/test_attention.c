/* attention through the host API on golden fixtures: attention.pattern equals the
 * model's own hook_pattern, rows are causal distributions, the top table agrees; and
 * attention.head_scores recomputed here from a plain run on the same token sequences
 * (returned as `tokens`) with TransformerLens' definitions, baselines by formula,
 * rankings sorted, seeds reproducible.
 * Usage: test_attention PLUGIN.so FIXTURE_DIR... */
#include "check.h"
#include "fixture_ids.h"
#include "loupe/loupe.h"
#include "loupe/plugins.h"

static const lp_tensor *result_tensor(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_TENSOR ? lp_call_result_tensor(c, i, NULL) : NULL;
}

static double result_scalar(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_SCALAR ? lp_call_result_scalar(c, i) : NAN;
}

/* every layer's pattern of a plain run: [NL][B, H, T, T] */
static float **plain_patterns(lp_model *m, const int32_t *tok, int B, int T)
{
    const lp_config *cfg = lp_model_config(m);
    lp_cache *cache = lp_cache_new();
    lp_error err = {0};
    const char *f[] = {"blocks.*.attn.hook_pattern"};
    lp_cache_set_filter(cache, f, 1, &err);
    lp_batch b = {tok, B, T, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.cache = cache;
    float **out = calloc((size_t)cfg->n_layers, sizeof *out);
    if (lp_model_run(m, &b, &o, &err) == 0)
        for (int l = 0; l < cfg->n_layers; l++) {
            char name[64];
            lp_hook_name(LP_HOOK_PATTERN, l, name, sizeof name);
            lp_tensor t = lp_cache_entry(cache, lp_cache_find(cache, name));
            out[l] = malloc(lp_tensor_nbytes(&t));
            lp_tensor_to_f32(&t, out[l]);
        }
    lp_cache_free(cache);
    return out;
}

static void free_patterns(float **p, int n)
{
    for (int i = 0; i < n; i++)
        free(p[i]);
    free(p);
}

static void test_pattern(lp_registry *reg, lp_model *m, const char *dir, const int32_t *ids, int T)
{
    const lp_config *cfg = lp_model_config(m);
    int H = cfg->n_heads, NL = cfg->n_layers;
    float **ref = plain_patterns(m, ids, 1, T);
    lp_error err = {0};
    lp_call *c = lp_call_new(reg, "attention.pattern", m, &err);
    lp_call_set_param_tokens(c, "prompt", ids, T, &err);
    lp_call_set_param(c, "layer", "-1", &err);
    lp_call_set_param(c, "k", "2", &err);
    int rc = lp_call_run(c, &err);
    check(rc == 0, "%s: attention.pattern layer=-1 (%s)", dir, err.msg);
    const lp_tensor *p = result_tensor(c, "pattern");
    if (check(p && p->ndim == 3 && p->ne[0] == H && p->ne[1] == T && p->ne[2] == T, "%s: pattern is [%d,%d,%d]", dir,
              H, T, T)) {
        check(memcmp(p->data, ref[NL - 1], sizeof(float) * (size_t)H * T * T) == 0,
              "%s: pattern equals blocks.%d.attn.hook_pattern of a plain run", dir, NL - 1);
        int ok = 1;
        const float *d = p->data;
        for (int hh = 0; hh < H; hh++)
            for (int q = 0; q < T; q++) {
                double s = 0;
                for (int k = 0; k < T; k++) {
                    float w = d[((size_t)hh * T + q) * T + k];
                    ok &= k <= q ? w >= 0 : w == 0;
                    s += w;
                }
                ok &= fabs(s - 1) < 1e-5;
            }
        check(ok, "%s: rows are causal distributions (sum 1, zero above the diagonal)", dir);
        int ti = lp_call_find_result(c, "top"), want = 0;
        for (int q = 0; q < T; q++)
            want += H * (q + 1 < 2 ? q + 1 : 2);
        check(ti >= 0 && lp_call_table_n_rows(c, ti) == want, "%s: top has %d rows (2 per query, 1 at q=0)", dir, want);
        int top_ok = 1;
        for (int r = 0; ti >= 0 && r < lp_call_table_n_rows(c, ti); r++) {
            int hh = (int)lp_call_table_cell(c, ti, r, 0)->num, q = (int)lp_call_table_cell(c, ti, r, 1)->num;
            int rank = (int)lp_call_table_cell(c, ti, r, 3)->num, k = (int)lp_call_table_cell(c, ti, r, 4)->num;
            double w = lp_call_table_cell(c, ti, r, 6)->num;
            const float *row = d + ((size_t)hh * T + q) * T;
            int above = 0;
            for (int j = 0; j <= q; j++)
                above += row[j] > row[k];
            top_ok &= k <= q && w == row[k] && above < rank;
        }
        check(top_ok, "%s: top rows name the most attended keys with their weights", dir);
    }
    lp_call_set_param(c, "layer", "0", &err);
    lp_call_set_param(c, "head", "1", &err);
    rc = lp_call_run(c, &err);
    p = result_tensor(c, "pattern");
    check(rc == 0 && p && p->ne[0] == 1 &&
              memcmp(p->data, ref[0] + (size_t)1 * T * T, sizeof(float) * (size_t)T * T) == 0,
          "%s: head=1 gives [1,%d,%d], head 1 of layer 0", dir, T, T);
    lp_call_set_param(c, "layer", "99", &err);
    check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "layer must be"), "%s: layer=99 refused (%s)", dir,
          err.msg);
    lp_call_set_param(c, "layer", "0", &err);
    lp_call_set_param(c, "head", "-2", &err);
    check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "head must be"), "%s: head=-2 refused (%s)", dir,
          err.msg);
    lp_call_free(c);
    free_patterns(ref, NL);
}

static int sorted_table(const lp_call *c, const char *name, const float *s, int n, int k)
{
    int ti = lp_call_find_result(c, name);
    if (ti < 0 || lp_call_table_n_rows(c, ti) != k)
        return 0;
    double last = INFINITY;
    for (int r = 0; r < k; r++) {
        int l = (int)lp_call_table_cell(c, ti, r, 0)->num, hh = (int)lp_call_table_cell(c, ti, r, 1)->num;
        double v = lp_call_table_cell(c, ti, r, 2)->num;
        int H = n / k;
        (void)H;
        if (v > last || (int)lp_call_table_cell(c, ti, r, 3)->num != r + 1 || l < 0 || hh < 0)
            return 0;
        last = v;
    }
    double top = -INFINITY;
    for (int i = 0; i < n; i++)
        top = s[i] > top ? s[i] : top;
    return lp_call_table_cell(c, ti, 0, 2)->num == top;
}

static void test_scores(lp_registry *reg, lp_model *m, const char *dir, const int32_t *ids, int T)
{
    const lp_config *cfg = lp_model_config(m);
    int H = cfg->n_heads, NL = cfg->n_layers;
    lp_error err = {0};
    lp_call *c = lp_call_new(reg, "attention.head_scores", m, &err);
    const int L = 12, NS = 3;
    lp_call_set_param(c, "seq_len", "12", &err);
    lp_call_set_param(c, "n_seqs", "3", &err);
    lp_call_set_param(c, "seed", "7", &err);
    lp_call_set_param(c, "k", "0", &err);
    int rc = lp_call_run(c, &err);
    if (!check(rc == 0, "%s: head_scores seq_len=12 n_seqs=3 (%s)", dir, err.msg)) {
        lp_call_free(c);
        return;
    }
    const lp_tensor *tt = result_tensor(c, "tokens"), *ind = result_tensor(c, "induction"),
                    *prev = result_tensor(c, "prev_token"), *dup = result_tensor(c, "duplicate");
    int off = cfg->bos_token_id >= 0, ST = 2 * L + off;
    if (!check(tt && ind && prev && dup && tt->ne[0] == NS && tt->ne[1] == ST && ind->ne[0] == NL && ind->ne[1] == H,
               "%s: tokens [%d,%d], scores [%d,%d]", dir, NS, ST, NL, H)) {
        lp_call_free(c);
        return;
    }
    int32_t *tok = malloc(sizeof *tok * (size_t)NS * ST);
    int rep = 1;
    for (int i = 0; i < NS * ST; i++)
        tok[i] = (int32_t)((const float *)tt->data)[i];
    for (int b = 0; b < NS; b++) {
        rep &= !off || tok[b * ST] == cfg->bos_token_id;
        for (int i = 0; i < L; i++)
            rep &= tok[b * ST + off + i] == tok[b * ST + off + L + i];
    }
    check(rep, "%s: each sequence is [BOS] + R + R", dir);
    float **pp = plain_patterns(m, tok, NS, ST);
    double e_ind = 0, e_prev = 0, e_dup = 0;
    for (int l = 0; l < NL; l++)
        for (int hh = 0; hh < H; hh++) {
            double si = 0, sp = 0, sd = 0;
            for (int b = 0; b < NS; b++) {
                const float *P = pp[l] + ((size_t)b * H + hh) * ST * ST;
                for (int q = off + L; q < ST; q++)
                    si += P[(size_t)q * ST + q - (L - 1)];
                for (int q = 1; q < ST; q++)
                    sp += P[(size_t)q * ST + q - 1];
                for (int q = 0; q < ST; q++)
                    for (int k = 0; k < q; k++)
                        if (tok[b * ST + k] == tok[b * ST + q])
                            sd += P[(size_t)q * ST + k];
            }
            si /= NS * L;
            sp /= NS * (ST - 1);
            sd /= NS * ST;
            e_ind = fmax(e_ind, fabs(si - ((const float *)ind->data)[l * H + hh]));
            e_prev = fmax(e_prev, fabs(sp - ((const float *)prev->data)[l * H + hh]));
            e_dup = fmax(e_dup, fabs(sd - ((const float *)dup->data)[l * H + hh]));
        }
    check(e_ind < 1e-6 && e_prev < 1e-6 && e_dup < 1e-6,
          "%s: scores recomputed from a plain run agree (max err induction %.2g prev %.2g dup %.2g)", dir, e_ind,
          e_prev, e_dup);
    double bi = 0, bp = 0;
    for (int q = off + L; q < ST; q++)
        bi += 1.0 / (q + 1);
    for (int q = 1; q < ST; q++)
        bp += 1.0 / (q + 1);
    check(fabs(result_scalar(c, "baseline_induction") - bi / L) < 1e-12 &&
              fabs(result_scalar(c, "baseline_prev_token") - bp / (ST - 1)) < 1e-12,
          "%s: uniform baselines induction %.4f prev_token %.4f", dir, bi / L, bp / (ST - 1));
    double ceil = result_scalar(c, "ceiling_duplicate"), bd = result_scalar(c, "baseline_duplicate");
    int dup_ok = ceil >= (double)L / ST - 1e-12 && bd > 0 && bd < ceil;
    for (int i = 0; i < NL * H; i++)
        dup_ok &= ((const float *)dup->data)[i] <= ceil + 1e-6;
    check(dup_ok, "%s: duplicate scores <= ceiling %.3f, baseline %.3f", dir, ceil, bd);
    check(sorted_table(c, "top_induction", ind->data, NL * H, NL * H) &&
              sorted_table(c, "top_prev_token", prev->data, NL * H, NL * H) &&
              sorted_table(c, "top_duplicate", dup->data, NL * H, NL * H),
          "%s: ranking tables list every head, sorted, rank 1 = the best score", dir);
    float *keep = malloc(sizeof(float) * (size_t)NL * H);
    memcpy(keep, ind->data, sizeof(float) * (size_t)NL * H);
    rc = lp_call_run(c, &err);
    ind = result_tensor(c, "induction");
    check(rc == 0 && ind && memcmp(keep, ind->data, sizeof(float) * (size_t)NL * H) == 0,
          "%s: the same seed gives the same scores", dir);
    lp_call_set_param(c, "seed", "8", &err);
    rc = lp_call_run(c, &err);
    ind = result_tensor(c, "induction");
    check(rc == 0 && ind && memcmp(keep, ind->data, sizeof(float) * (size_t)NL * H) != 0,
          "%s: another seed draws other tokens", dir);
    free(keep);
    free_patterns(pp, NL);
    free(tok);

    /* prev_token on a given prompt */
    char spec[512] = "ids:";
    for (int i = 0; i < T; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s%d", i ? "," : "", (int)ids[i]);
    lp_call_set_param(c, "prompt", spec, &err);
    lp_call_set_param(c, "k", "3", &err);
    rc = lp_call_run(c, &err);
    prev = result_tensor(c, "prev_token");
    check(rc == 0 && prev, "%s: head_scores prompt=%s (%s)", dir, spec, err.msg);
    pp = plain_patterns(m, ids, 1, T);
    double e = 0;
    for (int l = 0; prev && l < NL; l++)
        for (int hh = 0; hh < H; hh++) {
            double sp = 0;
            for (int q = 1; q < T; q++)
                sp += pp[l][((size_t)hh * T + q) * T + q - 1];
            e = fmax(e, fabs(sp / (T - 1) - ((const float *)prev->data)[l * H + hh]));
        }
    bp = 0;
    for (int q = 1; q < T; q++)
        bp += 1.0 / (q + 1);
    int ti = lp_call_find_result(c, "top_prev_token");
    check(prev && e < 1e-6 && fabs(result_scalar(c, "baseline_prev_token") - bp / (T - 1)) < 1e-12 && ti >= 0 &&
              lp_call_table_n_rows(c, ti) == 3,
          "%s: prev_token on the prompt agrees with a plain run (err %.2g), its own baseline, k=3 rows", dir, e);
    free_patterns(pp, NL);
    lp_call_set_param(c, "prompt", "ids:1,x", &err);
    check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "token ids"), "%s: bad prompt ids refused (%s)", dir,
          err.msg);
    lp_call_set_param(c, "prompt", "", &err);
    lp_call_set_param(c, "seq_len", "1000", &err);
    check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "seq_len"), "%s: seq_len=1000 refused (%s)", dir,
          err.msg);
    lp_call_free(c);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_attention PLUGIN.so FIXTURE_DIR...\n");
        return 2;
    }
    lp_registry *reg = lp_registry_new();
    lp_error err = {0};
    check(lp_registry_load_file(reg, argv[1], &err) == 0, "load %s (%s)", argv[1], err.msg);
    check(lp_registry_find_method(reg, "attention.pattern") >= 0 &&
              lp_registry_find_method(reg, "attention.head_scores") >= 0,
          "attention.pattern and attention.head_scores are registered");
    for (int i = 2; i < argc; i++) {
        lp_model *m;
        if (!check(lp_model_load(argv[i], &m, &err) == 0, "%s: load (%s)", argv[i], err.msg))
            continue;
        int T;
        int32_t *ids = fixture_ids(argv[i], &T);
        if (check(ids && T > 2, "%s: inputs.json ids", argv[i])) {
            test_pattern(reg, m, argv[i], ids, T);
            test_scores(reg, m, argv[i], ids, T);
        }
        free(ids);
        lp_model_free(m);
    }
    lp_registry_free(reg);
    return check_done();
}
