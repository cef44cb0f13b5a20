/* logit_lens through the host API: load the built plugin with lp_registry_load_file,
 * call logit_lens.run on golden fixtures, and check its invariants: the last layer's
 * lens is the model's own logits (bit for bit), KL there is 0, ranks and
 * probabilities agree with the logits.
 * Usage: test_logit_lens PLUGIN.so FIXTURE_DIR... */
#include <cjson/cJSON.h>

#include "check.h"
#include "loupe/loupe.h"
#include "loupe/plugins.h"
#include "fixture_ids.h"


static const float *tensor(const lp_call *c, const char *name, int ndim, const int64_t *ne)
{
    int i = lp_call_find_result(c, name);
    if (i < 0 || lp_call_result_kind(c, i) != LP_RESULT_TENSOR)
        return NULL;
    const lp_tensor *t = lp_call_result_tensor(c, i, NULL);
    if (t->ndim != ndim)
        return NULL;
    for (int d = 0; d < ndim; d++)
        if (t->ne[d] != ne[d])
            return NULL;
    return t->data;
}

static void test_fixture(lp_registry *reg, const char *dir)
{
    lp_error err = {0};
    lp_model *m;
    if (!check(lp_model_load(dir, &m, &err) == 0, "%s: load (%s)", dir, err.msg))
        return;
    const lp_config *cfg = lp_model_config(m);
    int T, NL = cfg->n_layers, V = cfg->d_vocab;
    int32_t *ids = fixture_ids(dir, &T);
    int synthetic = ids == NULL; /* a model folder without a golden inputs.json (models/toy) */
    if (synthetic) {
        T = 40;
        ids = malloc(sizeof *ids * (size_t)T);
        for (int i = 0; ids && i < T; i++)
            ids[i] = (int32_t)((i * 7919 + 13) % V);
    }
    if (!check(ids && T > 1, "%s: %s ids", dir, synthetic ? "synthetic" : "inputs.json")) {
        lp_model_free(m);
        return;
    }
    /* the plain run */
    float *ref = malloc(sizeof(float) * (size_t)T * V);
    lp_batch b = {ids, 1, T, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_ALL;
    o.logits_out = ref;
    check(lp_model_run(m, &b, &o, &err) == 0, "%s: plain run", dir);
    /* with a vocabulary wider than one of the lens's 2048-column chunks, a target in the
     * last chunk: the chunks' partial sums, counts and top-k lists must merge exactly */
    int32_t target = V > 2048 ? V - 1 - ids[T - 1] % 50 : (ids[T - 1] + 7) % V;

    lp_call *c = lp_call_new(reg, "logit_lens.run", m, &err);
    if (!check(c != NULL, "%s: lp_call_new (%s)", dir, err.msg))
        goto out;
    check(lp_call_set_param_tokens(c, "prompt", ids, T, &err) == 0, "set prompt tokens");
    check(lp_call_set_param(c, "k", "3", &err) == 0, "set k=3");
    check(lp_call_set_param(c, "logits", "true", &err) == 0, "set logits=true");
    char tgt[32];
    snprintf(tgt, sizeof tgt, "#%d", (int)target);
    check(lp_call_set_param(c, "target", tgt, &err) == 0, "set target=%s", tgt);
    int rc = lp_call_run(c, &err);
    if (!check(rc == 0, "%s: logit_lens.run (%s)", dir, err.msg))
        goto out;

    int64_t ne3[3] = {NL + 1, T, V}, ne2[2] = {NL + 1, T};
    const float *lg = tensor(c, "logits", 3, ne3), *kl = tensor(c, "kl", 2, ne2);
    const float *tp = tensor(c, "target_prob", 2, ne2), *tr = tensor(c, "target_rank", 2, ne2);
    if (!check(lg && kl && tp && tr, "%s: tensors logits [%d,%d,%d], kl/target_prob/target_rank [%d,%d]", dir, NL + 1,
               T, V, NL + 1, T))
        goto out;
    const float *last = lg + (size_t)NL * T * V;
    check(memcmp(last, ref, sizeof(float) * (size_t)T * V) == 0,
          "%s: the last layer's lens equals the model's own logits exactly", dir);
    int kl0 = 1, kl_ok = 1;
    for (int t = 0; t < T; t++) {
        kl0 &= kl[(size_t)NL * T + t] == 0.0f;
        for (int L = 0; L < NL; L++)
            kl_ok &= kl[(size_t)L * T + t] >= 0.0f && isfinite(kl[(size_t)L * T + t]);
    }
    check(kl0, "%s: KL(final || last layer) == 0 at every position", dir);
    check(kl_ok, "%s: KL of the other layers is finite and >= 0", dir);
    /* layer 0 of a model is not the final layer: some difference is expected */
    check(memcmp(lg, last, sizeof(float) * (size_t)T * V) != 0, "%s: layer 0's lens differs from the final", dir);

    /* target rank/prob agree with the lens logits */
    int agree = 1;
    for (int L = 0; L <= NL; L++)
        for (int t = 0; t < T; t++) {
            const float *z = lg + ((size_t)L * T + t) * V;
            int rank = 1;
            double mx = z[0], s = 0;
            for (int v = 0; v < V; v++) {
                rank += z[v] > z[target];
                if (z[v] > mx)
                    mx = z[v];
            }
            for (int v = 0; v < V; v++)
                s += exp(z[v] - mx);
            double p = exp(z[target] - mx) / s;
            agree &= tr[(size_t)L * T + t] == rank && fabs(tp[(size_t)L * T + t] - p) <= 1e-6 + 1e-4 * p;
        }
    check(agree, "%s: target_rank and target_prob agree with the lens logits", dir);
    /* KL(final || L) recomputed in double from the logits tensor */
    double kl_worst = 0;
    for (int L = 0; L < NL; L++)
        for (int t = 0; t < T; t++) {
            const float *z = lg + ((size_t)L * T + t) * V, *zf = last + (size_t)t * V;
            double mz = z[0], mf = zf[0], sz = 0, sf = 0, d = 0;
            for (int v = 0; v < V; v++) {
                mz = z[v] > mz ? z[v] : mz;
                mf = zf[v] > mf ? zf[v] : mf;
            }
            for (int v = 0; v < V; v++) {
                sz += exp(z[v] - mz);
                sf += exp(zf[v] - mf);
            }
            double lz = mz + log(sz), lf = mf + log(sf);
            for (int v = 0; v < V; v++)
                d += exp(zf[v] - lf) * ((zf[v] - lf) - (z[v] - lz));
            double e = fabs(kl[(size_t)L * T + t] - d) / (1e-5 + d);
            kl_worst = e > kl_worst ? e : kl_worst;
        }
    check(kl_worst <= 1e-4, "%s: KL agrees with a float64 recomputation (worst relative diff %.2g)", dir, kl_worst);

    /* the table: k rows per (layer, pos), ranks 1..k, last layer top-1 = argmax of the model's logits */
    int ti = lp_call_find_result(c, "top");
    check(ti >= 0 && lp_call_result_kind(c, ti) == LP_RESULT_TABLE && lp_call_table_n_cols(c, ti) == 7 &&
              lp_call_table_n_rows(c, ti) == (NL + 1) * T * 3,
          "%s: table top has 7 columns and %d rows", dir, (NL + 1) * T * 3);
    int top_ok = 1;
    for (int r = 0; ti >= 0 && r < lp_call_table_n_rows(c, ti); r++) {
        int L = (int)lp_call_table_cell(c, ti, r, 0)->num, t = (int)lp_call_table_cell(c, ti, r, 1)->num;
        int id = (int)lp_call_table_cell(c, ti, r, 3)->num, rank = (int)lp_call_table_cell(c, ti, r, 4)->num;
        double logit = lp_call_table_cell(c, ti, r, 6)->num;
        const float *z = lg + ((size_t)L * T + t) * V;
        int above = 0;
        for (int v = 0; v < V; v++)
            above += z[v] > z[id];
        top_ok &= logit == z[id] && above < rank && !lp_call_table_cell(c, ti, r, 2)->is_num;
        if (L == NL && rank == 1) {
            int am = 0;
            for (int v = 1; v < V; v++)
                if (ref[(size_t)t * V + v] > ref[(size_t)t * V + am])
                    am = v;
            top_ok &= id == am && logit == ref[(size_t)t * V + am];
        }
    }
    check(top_ok, "%s: table rows agree with the logits; last layer top-1 is the model's argmax", dir);
    int fi = lp_call_find_result(c, "first_layer_top1");
    double f1 = fi >= 0 ? lp_call_result_scalar(c, fi) : -1;
    check(fi >= 0 && f1 >= 0 && f1 <= NL, "%s: first_layer_top1 = %g in 0..%d", dir, f1, NL);

    /* positions=-1: one column, the last position, same numbers (results of the first run
     * are released by the next lp_call_run: keep a copy of kl) */
    float *kl_all = malloc(sizeof(float) * (size_t)(NL + 1) * T);
    memcpy(kl_all, kl, sizeof(float) * (size_t)(NL + 1) * T);
    kl = kl_all;
    check(lp_call_set_param(c, "positions", "-1", &err) == 0, "set positions=-1");
    check(lp_call_set_param(c, "logits", "no", &err) == 0, "set logits=no");
    rc = lp_call_run(c, &err);
    int64_t ne1[2] = {NL + 1, 1}, np[1] = {1};
    const float *kl1 = tensor(c, "kl", 2, ne1), *pos = tensor(c, "positions", 1, np);
    check(rc == 0 && kl1 && pos && pos[0] == T - 1 && lp_call_find_result(c, "logits") < 0,
          "%s: positions=-1 gives one column (position %d), no logits tensor", dir, T - 1);
    /* the same numbers up to float rounding: BLAS may block a 1-position product
     * differently from a T-position one */
    double worst = kl1 ? 0 : INFINITY;
    for (int L = 0; kl1 && L <= NL; L++) {
        double a = kl1[L], b = kl[(size_t)L * T + T - 1];
        double e = fabs(a - b) / (1e-6 + fabs(b));
        worst = e > worst ? e : worst;
    }
    check(worst <= 1e-4, "%s: KL at the last position is the same as with positions=all (worst relative diff %.2g)",
          dir, worst);
    free(kl_all);

    /* errors */
    check(lp_call_set_param(c, "positions", "99", &err) == 0 && lp_call_run(c, &err) == LP_EINVAL &&
              strstr(err.msg, "outside") && lp_call_n_results(c) == 0,
          "%s: positions=99 is refused (%s), no results kept", dir, err.msg);
    lp_call_set_param(c, "positions", "all", &err);
    if (!synthetic)
        check(lp_call_set_param(c, "target", "hello", &err) == 0 && lp_call_run(c, &err) != 0 &&
                  strstr(err.msg, "tokenizer"),
              "%s: a text target without a tokenizer is refused (%s)", dir, err.msg);
    else {
        rc = lp_call_set_param(c, "target", " Mary", &err);
        if (!rc)
            rc = lp_call_run(c, &err);
        check(rc == 0, "%s: a text target through the model's tokenizer (%s)", dir, rc ? err.msg : "ok");
    }
    check(lp_call_set_param(c, "k", "x3", &err) == LP_EINVAL && strstr(err.msg, "not an integer"),
          "k=x3 is refused (%s)", err.msg);
    check(lp_call_set_param(c, "kk", "3", &err) == LP_ENOTFOUND && strstr(err.msg, "prompt, k, target"),
          "unknown parameter lists the valid ones (%s)", err.msg);
    lp_call_free(c);

    c = lp_call_new(reg, "logit_lens.run", m, &err);
    check(c && lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "'prompt'") && strstr(err.msg, "required"),
          "missing prompt: %s", err.msg);
    if (!synthetic)
        check(c && lp_call_set_param(c, "prompt", "some text", &err) == 0 && lp_call_run(c, &err) == LP_EINVAL &&
                  strstr(err.msg, "prompt:ids="),
              "text prompt on a model without tokenizer: %s", err.msg);
out:
    lp_call_free(c);
    free(ref);
    free(ids);
    lp_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_logit_lens PLUGIN.so FIXTURE_DIR...\n");
        return 2;
    }
    lp_registry *reg = lp_registry_new();
    lp_error err = {0};
    check(lp_registry_load_file(reg, argv[1], &err) == 0, "load %s (%s)", argv[1], err.msg);
    check(lp_registry_n_diagnostics(reg) == 0, "no diagnostics");
    lp_method_info mi;
    int mi_i = lp_registry_find_method(reg, "logit_lens.run");
    check(mi_i >= 0 && lp_registry_method(reg, mi_i, &mi) == 0 && mi.n_params == 5 && mi.help[0],
          "logit_lens.run is registered with 5 parameters and help");
    for (int i = 2; i < argc; i++)
        test_fixture(reg, argv[i]);
    lp_registry_free(reg);
    return check_done();
}
