/* patching through the host API on golden fixtures. Invariants: patching the final
 * residual stream (resid_post of the last block) at the last position restores exactly 1;
 * patching cells where clean and corrupted agree leaves exactly 0; with a one-token
 * corruption, resid_pre of layer 0 at that position restores exactly 1; a head cell
 * equals a hand-made hook_z patch; zero-ablating every head and MLP equals the metric
 * computed by hand from the embeddings and the attention output biases; resampling from
 * the prompt itself changes nothing; eval accuracy agrees with plain runs.
 * Usage: test_patching PLUGIN.so FIXTURE_DIR... */
#include <unistd.h>

#include "check.h"
#include "fixture_ids.h"
#include "loupe/loupe.h"
#include "loupe/plugins.h"

static double scalar(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_SCALAR ? lp_call_result_scalar(c, i) : NAN;
}

static const lp_tensor *tensor(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_TENSOR ? lp_call_result_tensor(c, i, NULL) : NULL;
}

static double plain_diff(lp_model *m, const int32_t *ids, int T, const lp_hooks *hk, int a, int w)
{
    int V = lp_model_config(m)->d_vocab;
    float *lg = malloc(sizeof(float) * (size_t)V);
    lp_batch b = {ids, 1, T, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_LAST;
    o.logits_out = lg;
    o.hooks = hk;
    lp_error err = {0};
    double d = lp_model_run(m, &b, &o, &err) ? NAN : (double)lg[a] - lg[w];
    free(lg);
    return d;
}

static int argmax_last(lp_model *m, const int32_t *ids, int T, int not)
{
    int V = lp_model_config(m)->d_vocab, best = not == 0;
    float *lg = malloc(sizeof(float) * (size_t)V);
    lp_batch b = {ids, 1, T, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_LAST;
    o.logits_out = lg;
    lp_error err = {0};
    lp_model_run(m, &b, &o, &err);
    for (int v = 0; v < V; v++)
        if (v != not && lg[v] > lg[best])
            best = v;
    free(lg);
    return best;
}

typedef struct zpatch {
    lp_tensor src;
    int head;
} zpatch;

static int zpatch_fn(lp_tensor *act, const lp_hook_info *info, void *user)
{
    zpatch *z = user;
    int Dh = (int)act->ne[3], H = (int)act->ne[2];
    for (int t = 0; t < info->n_pos; t++)
        memcpy((float *)act->data + ((size_t)t * H + z->head) * Dh,
               (const float *)z->src.data + ((size_t)t * H + z->head) * Dh, sizeof(float) * (size_t)Dh);
    return 0;
}

static lp_call *patch_call(lp_registry *reg, lp_model *m, const int32_t *cl, const int32_t *co, int T, int a, int w,
                           const char *what)
{
    lp_error err = {0};
    lp_call *c = lp_call_new(reg, "patching.run", m, &err);
    char as[32], ws[32];
    snprintf(as, sizeof as, "#%d", a);
    snprintf(ws, sizeof ws, "#%d", w);
    lp_call_set_param_tokens(c, "clean", cl, T, &err);
    lp_call_set_param_tokens(c, "corrupted", co, T, &err);
    lp_call_set_param(c, "answer", as, &err);
    lp_call_set_param(c, "wrong", ws, &err);
    lp_call_set_param(c, "what", what, &err);
    if (lp_call_run(c, &err))
        printf("     (%s)\n", err.msg);
    return c;
}

static void test_run(lp_registry *reg, lp_model *m, const char *dir, const int32_t *ids, int T)
{
    const lp_config *cfg = lp_model_config(m);
    int NL = cfg->n_layers, H = cfg->n_heads, V = cfg->d_vocab;
    int32_t *co = malloc(sizeof(int32_t) * (size_t)T);
    memcpy(co, ids, sizeof(int32_t) * (size_t)T);
    const int p1 = 3, p2 = T - 4;
    co[p1] = (ids[p1] + 11) % V;
    co[p2] = (ids[p2] + 23) % V;
    int a = argmax_last(m, ids, T, -1), w = argmax_last(m, co, T, a);
    double want_clean = plain_diff(m, ids, T, NULL, a, w), want_corr = plain_diff(m, co, T, NULL, a, w);

    lp_call *c = patch_call(reg, m, ids, co, T, a, w, "resid_post");
    const lp_tensor *pt = tensor(c, "patched");
    if (check(pt && pt->ne[0] == NL && pt->ne[1] == T, "%s: resid_post patching gives [%d,%d]", dir, NL, T)) {
        const float *v = pt->data;
        check(v[(size_t)(NL - 1) * T + T - 1] == 1.0f,
              "%s: patching the final residual stream at the last position restores exactly 1 (%.9g)", dir,
              v[(size_t)(NL - 1) * T + T - 1]);
        int zero = 1;
        for (int l = 0; l < NL; l++)
            for (int t = 0; t < p1; t++)
                zero &= v[(size_t)l * T + t] == 0.0f;
        check(zero, "%s: cells before the first corrupted position (nothing differs) are exactly 0", dir);
        check(fabs(scalar(c, "clean_metric") - want_clean) < 1e-4 && fabs(scalar(c, "corrupted_metric") - want_corr) < 1e-4,
              "%s: clean %.5f / corrupted %.5f metrics match plain runs (%.5f / %.5f)", dir, scalar(c, "clean_metric"),
              scalar(c, "corrupted_metric"), want_clean, want_corr);
        int ti = lp_call_find_result(c, "top");
        check(ti >= 0 && lp_call_table_n_rows(c, ti) == 10 && lp_call_table_cell(c, ti, 0, 3)->num >= 1.0 - 1e-6,
              "%s: top table has 10 rows, the best restores >= 1", dir);
    }
    /* batched cells (default) against one run per cell */
    float *batched = pt ? malloc(sizeof(float) * (size_t)NL * T) : NULL;
    if (batched)
        memcpy(batched, pt->data, sizeof(float) * (size_t)NL * T);
    lp_error err = {0};
    const char *batches[2] = {"1", "5"};
    for (int i = 0; i < 2; i++) {
        lp_call_set_param(c, "batch", batches[i], &err);
        lp_call_run(c, &err);
        pt = tensor(c, "patched");
        double bd = batched && pt ? max_abs_diff(batched, pt->data, (size_t)NL * T, NULL) : INFINITY;
        int exact = pt && ((const float *)pt->data)[(size_t)(NL - 1) * T + T - 1] == 1.0f;
        for (int l = 0; pt && l < NL; l++)
            for (int t = 0; t < p1; t++)
                exact &= ((const float *)pt->data)[(size_t)l * T + t] == 0.0f;
        check(bd < 1e-5 && exact,
              "%s: batch=%s agrees with the default batching (max diff %.2g), still exactly 1 and exactly 0", dir,
              batches[i], bd);
    }
    free(batched);
    lp_call_free(c);

    /* one corrupted token: resid_pre of layer 0 there is the whole difference */
    int32_t *co1 = malloc(sizeof(int32_t) * (size_t)T);
    memcpy(co1, ids, sizeof(int32_t) * (size_t)T);
    co1[p1] = (ids[p1] + 11) % V;
    int w1 = argmax_last(m, co1, T, a);
    c = patch_call(reg, m, ids, co1, T, a, w1, "resid_pre");
    pt = tensor(c, "patched");
    check(pt && ((const float *)pt->data)[p1] == 1.0f && ((const float *)pt->data)[p1 + 1] == 0.0f,
          "%s: one corrupted token: resid_pre L0 at it restores exactly 1, next position exactly 0", dir);
    lp_call_free(c);
    free(co1);

    c = patch_call(reg, m, ids, co, T, a, w, "heads");
    pt = tensor(c, "patched");
    if (check(pt && pt->ne[0] == NL && pt->ne[1] == H, "%s: heads patching gives [%d,%d]", dir, NL, H)) {
        /* layer NL-1 head 1 by hand */
        lp_cache *cache = lp_cache_new();
        char name[64];
        lp_hook_name(LP_HOOK_Z, NL - 1, name, sizeof name);
        const char *f[] = {name};
        lp_error err = {0};
        lp_cache_set_filter(cache, f, 1, &err);
        lp_batch b = {ids, 1, T, NULL};
        lp_run_opts o = lp_run_opts_default();
        o.cache = cache;
        lp_model_run(m, &b, &o, &err);
        zpatch zp = {lp_cache_entry(cache, 0), 1};
        lp_hooks *hk = lp_hooks_new();
        lp_hooks_add(hk, name, zpatch_fn, &zp, &err);
        double pd = plain_diff(m, co, T, hk, a, w);
        double want = (pd - want_corr) / (want_clean - want_corr);
        double got = ((const float *)pt->data)[(NL - 1) * H + 1];
        check(fabs(got - want) < 1e-4, "%s: head L%dH1 cell %.6f equals a hand-made hook_z patch %.6f", dir, NL - 1,
              got, want);
        lp_hooks_free(hk);
        lp_cache_free(cache);
    }
    lp_call_free(c);
    c = patch_call(reg, m, ids, co, T, a, w, "bogus");
    check(lp_call_n_results(c) == 0, "%s: what=bogus is refused", dir);
    lp_call_free(c);
    c = lp_call_new(reg, "patching.run", m, &err);
    lp_call_set_param_tokens(c, "clean", ids, T, &err);
    lp_call_set_param_tokens(c, "corrupted", ids, T - 1, &err);
    lp_call_set_param(c, "answer", "#1", &err);
    lp_call_set_param(c, "wrong", "#2", &err);
    check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "same length"), "%s: lengths differ: %s", dir, err.msg);
    lp_call_set_param_tokens(c, "corrupted", ids, T, &err);
    check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "equal"), "%s: clean == corrupted: %s", dir, err.msg);
    lp_call_free(c);
    free(co);
}

static lp_call *ablate_call(lp_registry *reg, lp_model *m, const int32_t *ids, int T, int a, int w, const char *comp,
                            const char *mode, const char *extra_k, const char *extra_v, int *rc)
{
    lp_error err = {0};
    lp_call *c = lp_call_new(reg, "patching.ablate", m, &err);
    char as[32], ws[32];
    snprintf(as, sizeof as, "#%d", a);
    snprintf(ws, sizeof ws, "#%d", w);
    lp_call_set_param_tokens(c, "prompt", ids, T, &err);
    lp_call_set_param(c, "answer", as, &err);
    lp_call_set_param(c, "wrong", ws, &err);
    lp_call_set_param(c, "components", comp, &err);
    lp_call_set_param(c, "mode", mode, &err);
    if (extra_k)
        lp_call_set_param(c, extra_k, extra_v, &err);
    *rc = lp_call_run(c, &err);
    if (*rc)
        printf("     (%s)\n", err.msg);
    return c;
}

static void test_ablate(lp_registry *reg, lp_model *m, const char *dir, const int32_t *ids, int T)
{
    const lp_config *cfg = lp_model_config(m);
    int NL = cfg->n_layers, D = cfg->d_model, V = cfg->d_vocab;
    int a = argmax_last(m, ids, T, -1), w = argmax_last(m, ids, T, a), rc;
    lp_error err = {0};
    lp_call *c = ablate_call(reg, m, ids, T, a, w, "heads=* mlp=*", "zero", NULL, NULL, &rc);
    /* by hand: the final residual is the embeddings plus every b_O */
    float *x = calloc((size_t)D, sizeof(float)), *y = malloc(sizeof(float) * (size_t)D),
          *lg = malloc(sizeof(float) * (size_t)V);
    lp_tensor t;
    lp_model_weight(m, "W_E", &t, &err);
    for (int i = 0; i < D; i++) {
        int64_t ix[2] = {ids[T - 1], i};
        x[i] += *(float *)lp_tensor_ptr(&t, ix);
    }
    if (lp_model_weight(m, "W_pos", &t, &err) == 0)
        for (int i = 0; i < D; i++) {
            int64_t ix[2] = {T - 1, i};
            x[i] += *(float *)lp_tensor_ptr(&t, ix);
        }
    for (int l = 0; l < NL; l++) {
        char wn[64];
        snprintf(wn, sizeof wn, "blocks.%d.attn.b_O", l);
        if (lp_model_weight(m, wn, &t, &err) == 0)
            for (int i = 0; i < D; i++)
                x[i] += *(float *)((char *)t.data + i * t.nb[0]);
    }
    lp_model_ln_final(m, x, 1, y, NULL);
    lp_model_unembed(m, y, 1, lg);
    double want = (double)lg[a] - lg[w], before = plain_diff(m, ids, T, NULL, a, w);
    check(rc == 0 && fabs(scalar(c, "metric_after") - want) < 1e-4 && fabs(scalar(c, "metric_before") - before) < 1e-6,
          "%s: zero-ablating every head and MLP gives %.6f, by hand (embeddings + b_O) %.6f; before %.6f", dir,
          scalar(c, "metric_after"), want, before);
    int ti = lp_call_find_result(c, "ablated");
    check(ti >= 0 && lp_call_table_n_rows(c, ti) == 2 * NL, "%s: the ablated table lists %d hook points", dir, 2 * NL);
    check(fabs(scalar(c, "fraction_lost") - (before - scalar(c, "metric_after")) / before) < 1e-9,
          "%s: fraction_lost = (before - after) / before", dir);
    lp_call_free(c);
    free(x);
    free(y);
    free(lg);

    /* resampling from the prompt itself is the identity */
    char spec[512] = "ids:";
    for (int i = 0; i < T; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s%d", i ? "," : "", (int)ids[i]);
    c = ablate_call(reg, m, ids, T, a, w, "heads=0.1,1.* mlp=0 attn=1 neurons=0:3,1:5", "resample", "source", spec, &rc);
    check(rc == 0 && scalar(c, "metric_after") == scalar(c, "metric_before") && scalar(c, "fraction_lost") == 0,
          "%s: resampling from the prompt itself leaves the metric unchanged (%.6f)", dir, scalar(c, "metric_after"));
    lp_call_free(c);
    /* mean over the prompt == mean over a dataset holding only the prompt; differs from zero */
    c = ablate_call(reg, m, ids, T, a, w, "mlp=0 heads=1.0", "mean", NULL, NULL, &rc);
    double m1 = scalar(c, "metric_after");
    lp_call_free(c);
    c = ablate_call(reg, m, ids, T, a, w, "mlp=0 heads=1.0", "mean", "dataset", spec, &rc);
    double m2 = scalar(c, "metric_after");
    lp_call_free(c);
    c = ablate_call(reg, m, ids, T, a, w, "mlp=0 heads=1.0", "zero", NULL, NULL, &rc);
    double m3 = scalar(c, "metric_after");
    lp_call_free(c);
    check(m1 == m2 && m1 != m3, "%s: mean over the prompt (%.6f) == mean over dataset=[prompt]; zero differs (%.6f)",
          dir, m1, m3);
    /* a dataset file (one prompt per line) == the same prompts separated by '|' */
    char dpath[256], two[1100];
    snprintf(dpath, sizeof dpath, "/tmp/loupe-test-patching-ds-%d.txt", (int)getpid());
    FILE *df = fopen(dpath, "w");
    fprintf(df, "%s\n\n%s\n", spec, "ids:5,6,7,8");
    fclose(df);
    snprintf(two, sizeof two, "%s | ids:5,6,7,8", spec);
    c = ablate_call(reg, m, ids, T, a, w, "mlp=1 neurons=0:3", "mean", "dataset", dpath, &rc);
    double f1 = scalar(c, "metric_after");
    lp_call_free(c);
    c = ablate_call(reg, m, ids, T, a, w, "mlp=1 neurons=0:3", "mean", "dataset", two, &rc);
    double f2 = scalar(c, "metric_after");
    lp_call_free(c);
    check(rc == 0 && f1 == f2 && f1 != m1, "%s: a dataset file equals the same prompts split by '|' (%.6f)", dir, f1);
    remove(dpath);

    /* eval accuracy */
    char path[256];
    snprintf(path, sizeof path, "/tmp/loupe-test-patching-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    int hits = 0;
    for (int k = 0; k < 5; k++) {
        int n = T - k;
        int aa = (ids[n - 1] + k) % V, ww = (ids[n - 1] + 2 * k + 1) % V;
        fprintf(f, "{\"prompt\": \"ids:");
        for (int i = 0; i < n; i++)
            fprintf(f, "%s%d", i ? "," : "", (int)ids[i]);
        fprintf(f, "\", \"%s\": \"#%d\", \"%s\": \"#%d\"}\n", k % 2 ? "io" : "answer", aa, k % 2 ? "s" : "wrong", ww);
        hits += plain_diff(m, ids, n, NULL, aa, ww) > 0;
    }
    fclose(f);
    c = ablate_call(reg, m, ids, T, a, w, "heads=*", "zero", "eval", path, &rc);
    check(rc == 0 && scalar(c, "n_eval") == 5 && scalar(c, "accuracy_before") == hits / 5.0 &&
              scalar(c, "accuracy_after") >= 0 && scalar(c, "accuracy_after") <= 1,
          "%s: eval over 5 prompts (padded batch): accuracy before %.2f == plain runs %.2f, after %.2f", dir,
          scalar(c, "accuracy_before"), hits / 5.0, scalar(c, "accuracy_after"));
    lp_call_free(c);
    remove(path);

    /* errors */
    const char *bad[] = {"heads=99.0", "foo=1", "heads=1", "neurons=*", "mlp=x", ""};
    for (int i = 0; i < 6; i++) {
        c = ablate_call(reg, m, ids, T, a, w, bad[i], "zero", NULL, NULL, &rc);
        check(rc == LP_EINVAL && lp_call_n_results(c) == 0, "%s: components='%s' refused", dir, bad[i]);
        lp_call_free(c);
    }
    c = ablate_call(reg, m, ids, T, a, w, "mlp=0", "resample", NULL, NULL, &rc);
    check(rc == LP_EINVAL, "%s: resample without source refused", dir);
    lp_call_free(c);
    c = ablate_call(reg, m, ids, T, a, w, "mlp=0", "sideways", NULL, NULL, &rc);
    check(rc == LP_EINVAL, "%s: mode=sideways refused", dir);
    lp_call_free(c);
    c = ablate_call(reg, m, ids, T, a, w, "mlp=0", "zero", "eval", "/nonexistent.jsonl", &rc);
    check(rc == LP_ENOTFOUND, "%s: a missing eval file refused", dir);
    lp_call_free(c);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_patching PLUGIN.so FIXTURE_DIR...\n");
        return 2;
    }
    lp_registry *reg = lp_registry_new();
    lp_error err = {0};
    check(lp_registry_load_file(reg, argv[1], &err) == 0, "load %s (%s)", argv[1], err.msg);
    for (int i = 2; i < argc; i++) {
        lp_model *m;
        if (!check(lp_model_load(argv[i], &m, &err) == 0, "%s: load (%s)", argv[i], err.msg))
            continue;
        int T;
        int32_t *ids = fixture_ids(argv[i], &T);
        if (check(ids && T > 8, "%s: inputs.json ids", argv[i])) {
            test_run(reg, m, argv[i], ids, T);
            test_ablate(reg, m, argv[i], ids, T);
        }
        free(ids);
        lp_model_free(m);
    }
    lp_registry_free(reg);
    return check_done();
}
