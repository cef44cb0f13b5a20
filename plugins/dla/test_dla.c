/* dla through the host API on golden fixtures: the contributions sum to the real logit
 * difference (the invariant, within 1e-3), `actual` is the plain run's logit difference,
 * the per-layer head sums plus b_O equal the attribution of hook_attn_out computed here
 * independently (no W_O), the table is sorted and complete.
 * Usage: test_dla PLUGIN.so FIXTURE_DIR... */
#include "check.h"
#include "fixture_ids.h"
#include "loupe/loupe.h"
#include "loupe/plugins.h"

static double scalar(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_SCALAR ? lp_call_result_scalar(c, i) : NAN;
}

static const float *tensor(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_TENSOR ? lp_call_result_tensor(c, i, NULL)->data : NULL;
}

static void check_one(lp_registry *reg, lp_model *m, const char *dir, const int32_t *ids, int T, int pos, int tgt,
                      int base)
{
    const lp_config *cfg = lp_model_config(m);
    int NL = cfg->n_layers, H = cfg->n_heads, D = cfg->d_model, V = cfg->d_vocab;
    lp_error err = {0};
    /* plain run: logits, attn_out, the final scale */
    lp_cache *cache = lp_cache_new();
    const char *f[] = {"blocks.*.hook_attn_out", "ln_final.hook_scale"};
    lp_cache_set_filter(cache, f, 2, &err);
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    lp_batch b = {ids, 1, T, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_ALL;
    o.logits_out = lg;
    o.cache = cache;
    check(lp_model_run(m, &b, &o, &err) == 0, "%s: plain run", dir);
    double want = (double)lg[(size_t)pos * V + tgt] - (base >= 0 ? lg[(size_t)pos * V + base] : 0);

    lp_call *c = lp_call_new(reg, "dla.run", m, &err);
    char ts[32], bs[32], ps[32];
    snprintf(ts, sizeof ts, "#%d", tgt);
    snprintf(bs, sizeof bs, "#%d", base);
    snprintf(ps, sizeof ps, "%d", pos - T); /* negative form */
    lp_call_set_param_tokens(c, "prompt", ids, T, &err);
    lp_call_set_param(c, "target", ts, &err);
    if (base >= 0)
        lp_call_set_param(c, "baseline", bs, &err);
    lp_call_set_param(c, "position", ps, &err);
    int rc = lp_call_run(c, &err);
    if (!check(rc == 0, "%s: dla.run target=%s baseline=%s position=%s (%s)", dir, ts, base >= 0 ? bs : "-", ps,
               err.msg))
        goto out;
    double total = scalar(c, "total"), actual = scalar(c, "actual"), re = scalar(c, "residual_error");
    check(actual == (double)(float)want || fabs(actual - want) < 1e-9, "%s: actual %.6f is the plain run's %s %.6f",
          dir, actual, base >= 0 ? "logit difference" : "logit", want);
    check(fabs(total - actual) < 1e-3 && fabs(re - fabs(total - actual)) < 1e-12,
          "%s: contributions sum to the actual logit%s: total %.6f, actual %.6f, residual_error %.2g", dir,
          base >= 0 ? " difference" : "", total, actual, re);
    int ti = lp_call_find_result(c, "contributions");
    int n = ti >= 0 ? lp_call_table_n_rows(c, ti) : 0;
    lp_tensor wt;
    char wn[64];
    snprintf(wn, sizeof wn, "blocks.0.attn.b_O");
    int has_bo = lp_model_weight(m, wn, &wt, &err) == 0;
    int want_rows = 1 + NL * H + NL * has_bo + NL + (lp_model_weight(m, "ln_final.b", &wt, &err) == 0) +
                    (lp_model_weight(m, "b_U", &wt, &err) == 0);
    double sum = 0, last = INFINITY, fsum = 0;
    int sorted = 1;
    for (int r = 0; r < n; r++) {
        double v = lp_call_table_cell(c, ti, r, 3)->num;
        sorted &= fabs(v) <= last;
        last = fabs(v);
        sum += v;
        fsum += lp_call_table_cell(c, ti, r, 4)->num;
    }
    check(n == want_rows && sorted && fabs(sum - total) < 1e-9 && fabs(fsum - 1) < 1e-6,
          "%s: table has %d rows (embed, %d heads,%s %d MLPs, biases), sorted by |contribution|, sums to total, "
          "fractions sum to 1",
          dir, want_rows, NL * H, has_bo ? " b_O," : "", NL);
    /* per layer: sum of heads + b_O == frozen-norm attribution of hook_attn_out */
    const float *hd = tensor(c, "heads"), *ab = tensor(c, "attn_bias");
    lp_tensor WU, lw;
    lp_model_weight(m, "W_U", &WU, &err);
    int has_w = lp_model_weight(m, "ln_final.w", &lw, &err) == 0;
    lp_tensor sc = lp_cache_entry(cache, lp_cache_find(cache, "ln_final.hook_scale"));
    double s = ((const float *)sc.data)[pos];
    double worst = 0;
    for (int l = 0; hd && ab && l < NL; l++) {
        char name[64];
        lp_hook_name(LP_HOOK_ATTN_OUT, l, name, sizeof name);
        lp_tensor ao = lp_cache_entry(cache, lp_cache_find(cache, name));
        const float *x = (const float *)ao.data + (size_t)pos * D;
        double mean = 0, v = 0;
        for (int i = 0; i < D; i++)
            mean += x[i];
        mean = cfg->norm == LP_NORM_LAYERNORM ? mean / D : 0;
        for (int i = 0; i < D; i++) {
            int64_t it[2] = {i, tgt}, ib[2] = {i, base};
            double u = *(float *)lp_tensor_ptr(&WU, it) - (base >= 0 ? *(float *)lp_tensor_ptr(&WU, ib) : 0);
            double w = has_w ? ((const float *)lw.data)[i] : 1;
            v += (x[i] - mean) / s * w * u;
        }
        double hs = ab[l];
        for (int hh = 0; hh < H; hh++)
            hs += hd[l * H + hh];
        worst = fmax(worst, fabs(hs - v) / (1 + fabs(v)));
    }
    check(hd && ab && worst < 1e-4, "%s: heads + b_O of each layer equal the attribution of hook_attn_out (rel err %.2g)",
          dir, worst);
out:
    lp_call_free(c);
    lp_cache_free(cache);
    free(lg);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_dla PLUGIN.so FIXTURE_DIR...\n");
        return 2;
    }
    lp_registry *reg = lp_registry_new();
    lp_error err = {0};
    check(lp_registry_load_file(reg, argv[1], &err) == 0, "load %s (%s)", argv[1], err.msg);
    for (int a = 2; a < argc; a++) {
        const char *dir = argv[a];
        lp_model *m;
        if (!check(lp_model_load(dir, &m, &err) == 0, "%s: load (%s)", dir, err.msg))
            continue;
        int T, V = lp_model_config(m)->d_vocab;
        int32_t *ids = fixture_ids(dir, &T);
        /* the model's top two tokens at the last position: target and baseline */
        float *lg = malloc(sizeof(float) * (size_t)V);
        lp_batch b = {ids, 1, T, NULL};
        lp_run_opts o = lp_run_opts_default();
        o.logits = LP_LOGITS_LAST;
        o.logits_out = lg;
        lp_model_run(m, &b, &o, &err);
        int t1 = 0, t2 = 1;
        for (int v = 0; v < V; v++)
            if (lg[v] > lg[t1])
                t1 = v;
        t2 = t1 == 0;
        for (int v = 0; v < V; v++)
            if (v != t1 && lg[v] > lg[t2])
                t2 = v;
        free(lg);
        check_one(reg, m, dir, ids, T, T - 1, t1, t2);
        check_one(reg, m, dir, ids, T, T - 1, t1, -1);
        check_one(reg, m, dir, ids, T, 3, (ids[4] + 5) % V, ids[4]);

        lp_call *c = lp_call_new(reg, "dla.run", m, &err);
        lp_call_set_param_tokens(c, "prompt", ids, T, &err);
        lp_call_set_param(c, "target", "#1", &err);
        lp_call_set_param(c, "position", "99", &err);
        check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "outside"), "%s: position=99 refused (%s)", dir,
              err.msg);
        lp_call_set_param(c, "position", "-1", &err);
        lp_call_set_param(c, "target", "#100000", &err);
        check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "token id"), "%s: target=#100000 refused (%s)", dir,
              err.msg);
        lp_call_set_param(c, "target", "Mary", &err);
        check(lp_call_run(c, &err) != 0 && lp_call_n_results(c) == 0, "%s: a text target without tokenizer (%s)", dir,
              err.msg);
        lp_call_set_param(c, "target", "#1", &err);
        lp_call_set_param(c, "k", "5", &err);
        int ti = -1;
        check(lp_call_run(c, &err) == 0 && (ti = lp_call_find_result(c, "contributions")) >= 0 &&
                  lp_call_table_n_rows(c, ti) == 5,
              "%s: k=5 keeps the 5 largest rows", dir);
        lp_call_free(c);
        free(ids);
        lp_model_free(m);
    }
    /* text targets on a SentencePiece model (../shared/models/stories260K, when present):
     * " time" encodes as [" ", " time"], and is taken as the one token " time" */
    const char *sh = getenv("LOUPE_SHARED");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K", sh ? sh : "../shared");
    lp_model *m;
    if (lp_model_load(dir, &m, &err) == 0) {
        double v[2];
        const char *tg[2] = {" time", "time"};
        for (int i = 0; i < 2; i++) {
            err.msg[0] = 0;
            lp_call *c = lp_call_new(reg, "dla.run", m, &err);
            lp_call_set_param(c, "prompt", "Once upon a", &err);
            lp_call_set_param(c, "target", tg[i], &err);
            v[i] = lp_call_run(c, &err) == 0 ? scalar(c, "actual") : NAN;
            check(fabs(scalar(c, "residual_error")) < 1e-3, "%s: target='%s' sums to the logit (%s)", dir, tg[i],
                  err.msg);
            lp_call_free(c);
        }
        check(v[0] == v[1], "%s: target ' time' is the single token ' time' (%g == %g)", dir, v[0], v[1]);
        lp_model_free(m);
    } else {
        printf("     (%s absent: SentencePiece target check skipped)\n", dir);
    }
    lp_registry_free(reg);
    return check_done();
}
