/* Golden tests: loupe's forward pass against Hugging Face transformers on tiny
 * random-weight models in the real HF layout (fixtures made by make_fixtures.py).
 * Usage: test_golden FIXTURE_DIR... */
#include <cjson/cJSON.h>

#include "../common/check.h"
#include "loupe/loupe.h"

#define REL_TOL 1e-4

static int32_t *json_ids(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc((size_t)(*n + 1) * sizeof *v);
    for (int i = 0; i < *n; i++)
        v[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
    return v;
}

static cJSON *read_json(const char *path)
{
    char *s = slurp(path);
    if (!s)
        return NULL;
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

/* Compare our [1, ...] cache entry against HF's expected tensor (no batch dim).
 * GQA rot_k: ours is expanded per query head, HF's per kv head. */
static void compare_entry(const char *fx, const char *name, const lp_tensor *ours, const lp_tensor *ref, int group)
{
    int64_t n = lp_tensor_nelem(ref);
    float *r = malloc((size_t)n * 4);
    lp_tensor_to_f32(ref, r);
    int64_t n_ours = lp_tensor_nelem(ours);
    float *o = malloc((size_t)n_ours * 4);
    lp_tensor_to_f32(ours, o);
    float *cmp = o;
    if (group > 1 && ref->ndim == 3) { /* [T, Hk, Dh] vs ours [T, H, Dh] */
        int64_t T = ref->ne[0], Hk = ref->ne[1], Dh = ref->ne[2];
        cmp = malloc((size_t)n * 4);
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < Hk; h++)
                memcpy(cmp + (t * Hk + h) * Dh, o + (t * Hk * group + h * group) * Dh, (size_t)Dh * 4);
    } else if (n != n_ours) {
        check(0, "%s: %s has %lld elements, expected %lld", fx, name, (long long)n_ours, (long long)n);
        free(r);
        free(o);
        return;
    }
    double mref, d = max_abs_diff(cmp, r, (size_t)n, &mref);
    double tol = REL_TOL * (mref > 1 ? mref : 1);
    check(d <= tol, "%s: cache %s matches transformers (max |d| %.3g, tol %.3g)", fx, name, d, tol);
    if (cmp != o)
        free(cmp);
    free(r);
    free(o);
}

typedef struct patch {
    const lp_cache *src;
    const char *name;
} patch;

static int patch_hook(lp_tensor *act, const lp_hook_info *info, void *user)
{
    patch *p = user;
    int i = lp_cache_find(p->src, info->name);
    if (i < 0)
        return lp_error_set(info->err, LP_ENOTFOUND, "no cached %s", info->name);
    lp_tensor s = lp_cache_entry(p->src, i);
    memcpy(act->data, s.data, lp_tensor_nbytes(act));
    return 0;
}

static int failing_hook(lp_tensor *act, const lp_hook_info *info, void *user)
{
    (void)act;
    (void)user;
    return lp_error_set(info->err, LP_EINVAL, "deliberate failure");
}

static void test_fixture(const char *dir)
{
    const char *fx = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    lp_error err = {0};
    lp_model *m;
    if (!check(lp_model_load(dir, &m, &err) == 0, "%s: loads (%s)", fx, err.msg))
        return;
    const lp_config *c = lp_model_config(m);
    char path[4096];
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    cJSON *inputs = read_json(path);
    int T;
    int32_t *ids = json_ids(cJSON_GetObjectItem(inputs, "ids"), &T);
    size_t V = (size_t)c->d_vocab;

    /* logits, all positions */
    float *logits = malloc((size_t)T * V * 4);
    lp_run_opts ro = lp_run_opts_default();
    ro.logits = LP_LOGITS_ALL;
    ro.logits_out = logits;
    lp_batch b = {ids, 1, T, NULL};
    check(lp_model_run(m, &b, &ro, &err) == 0, "%s: forward runs (%s)", fx, err.msg);
    snprintf(path, sizeof path, "%s/logits.npy", dir);
    lp_tensor ref;
    void *refdata;
    if (check(lp_npy_load(path, &ref, &refdata, &err) == 0, "%s: reads logits.npy (%s)", fx, err.msg)) {
        double mref, d = max_abs_diff(logits, ref.data, (size_t)T * V, &mref);
        check(d <= REL_TOL * mref, "%s: logits match transformers: max |d| %.3g <= 1e-4 x max |logit| %.3g", fx, d,
              mref);
        free(refdata);
    }
    /* last-position logits are the last row */
    float *last = malloc(V * 4);
    ro.logits = LP_LOGITS_LAST;
    ro.logits_out = last;
    lp_model_run(m, &b, &ro, &err);
    check(max_abs_diff(last, logits + (size_t)(T - 1) * V, V, NULL) <= 1e-5, "%s: last-position logits = last row", fx);

    /* greedy continuation */
    snprintf(path, sizeof path, "%s/greedy.json", dir);
    cJSON *g = read_json(path);
    int np, nc;
    int32_t *prompt = json_ids(cJSON_GetObjectItem(g, "prompt"), &np);
    int32_t *cont = json_ids(cJSON_GetObjectItem(g, "continuation"), &nc);
    int32_t out[64];
    int n_out = 0;
    lp_gen_opts go = lp_gen_opts_default();
    go.n_new = nc;
    check(lp_model_generate(m, prompt, np, &go, out, &n_out, &err) == 0 && n_out == nc &&
              memcmp(out, cont, (size_t)nc * 4) == 0,
          "%s: greedy %d-token continuation (KV cache) identical to transformers", fx, nc);
    free(prompt);
    free(cont);
    cJSON_Delete(g);

    /* full cache vs HF's captures, and the residual identities */
    lp_cache *cache = lp_cache_new();
    ro = lp_run_opts_default();
    ro.cache = cache;
    ro.logits = LP_LOGITS_ALL;
    float *logits2 = malloc((size_t)T * V * 4);
    ro.logits_out = logits2;
    check(lp_model_run(m, &b, &ro, &err) == 0, "%s: forward with full cache (%s)", fx, err.msg);
    check(memcmp(logits, logits2, (size_t)T * V * 4) == 0, "%s: caching does not change the logits", fx);
    check(lp_cache_count(cache) == lp_model_n_hook_points(m), "%s: full cache holds all %d hook points (%d)", fx,
          lp_model_n_hook_points(m), lp_cache_count(cache));
    snprintf(path, sizeof path, "%s/expected_cache.safetensors", dir);
    lp_st_file *ex;
    if (check(lp_st_open(path, &ex, &err) == 0, "%s: reads expected cache", fx)) {
        for (int i = 0; i < lp_st_count(ex); i++) {
            const char *nm = lp_st_name(ex, i);
            int k = lp_cache_find(cache, nm);
            if (!check(k >= 0, "%s: cache has %s", fx, nm))
                continue;
            lp_tensor ours = lp_cache_entry(cache, k), r = lp_st_tensor(ex, i);
            int group = strstr(nm, "rot_k") ? c->n_heads / c->n_kv_heads : 1;
            compare_entry(fx, nm, &ours, &r, group);
        }
        lp_st_close(ex);
    }
    size_t nD = (size_t)T * c->d_model;
    int exact = 1;
    double zo = 0, zo_ref = 0;
    char nm[96];
    for (int L = 0; L < c->n_layers; L++) {
#define ENT(s) (snprintf(nm, sizeof nm, "blocks.%d." s, L), (float *)lp_cache_entry(cache, lp_cache_find(cache, nm)).data)
        float *pre = ENT("hook_resid_pre"), *ao = ENT("hook_attn_out"), *mo = ENT("hook_mlp_out");
        float *post = ENT("hook_resid_post"), *z = ENT("attn.hook_z");
        if (c->parallel_blocks) {
            for (size_t i = 0; i < nD; i++)
                exact &= post[i] == pre[i] + ao[i] + mo[i];
        } else {
            float *mid = ENT("hook_resid_mid");
            for (size_t i = 0; i < nD; i++)
                exact &= mid[i] == pre[i] + ao[i] && post[i] == mid[i] + mo[i];
        }
#undef ENT
        lp_tensor WO, bO;
        snprintf(nm, sizeof nm, "blocks.%d.attn.W_O", L);
        lp_model_weight(m, nm, &WO, &err);
        snprintf(nm, sizeof nm, "blocks.%d.attn.b_O", L);
        int has_b = lp_model_weight(m, nm, &bO, NULL) == 0;
        for (int t = 0; t < T; t++)
            for (int o = 0; o < c->d_model; o++) {
                double s = has_b ? ((float *)bO.data)[o] : 0;
                for (int h = 0; h < c->n_heads; h++)
                    for (int j = 0; j < c->d_head; j++) {
                        int64_t idx[3] = {h, j, o};
                        s += (double)z[((size_t)t * c->n_heads + h) * c->d_head + j] * *(float *)lp_tensor_ptr(&WO, idx);
                    }
                double d = fabs(s - ao[(size_t)t * c->d_model + o]);
                zo = d > zo ? d : zo;
                zo_ref = fabs(s) > zo_ref ? fabs(s) : zo_ref;
            }
    }
    check(exact, "%s: resid_mid = resid_pre + attn_out and resid_post = resid_mid + mlp_out hold exactly%s", fx,
          c->parallel_blocks ? " (parallel: resid_post = pre + attn_out + mlp_out)" : "");
    check(zo <= 1e-5 * (zo_ref > 1 ? zo_ref : 1), "%s: hook_z . W_O + b_O = attn_out (max |d| %.2g)", fx, zo);

    /* a filtered cache stores only what was asked for */
    lp_cache *one = lp_cache_new();
    const char *pat[] = {"blocks.0.hook_resid_post"};
    lp_cache_set_filter(one, pat, 1, &err);
    ro = lp_run_opts_default();
    ro.cache = one;
    lp_model_run(m, &b, &ro, &err);
    check(lp_cache_count(one) == 1 && lp_cache_bytes_used(one) == nD * 4,
          "%s: one-name cache holds one entry of %zu bytes", fx, nD * 4);
    const char *glob[] = {"blocks.*.attn.hook_pattern"};
    lp_cache_reset(one);
    lp_cache_set_filter(one, glob, 1, &err);
    lp_model_run(m, &b, &ro, &err);
    check(lp_cache_count(one) == c->n_layers, "%s: glob 'blocks.*.attn.hook_pattern' caches %d entries", fx,
          lp_cache_count(one));
    lp_cache_free(one);

    /* write hooks: patching the whole residual stream at block L from another input
     * must give exactly that input's logits */
    int32_t *ids2 = malloc((size_t)T * 4);
    for (int i = 0; i < T; i++)
        ids2[i] = (ids[T - 1 - i] + 7) % c->d_vocab;
    lp_cache *other = lp_cache_new();
    float *lo = malloc((size_t)T * V * 4), *lp = malloc((size_t)T * V * 4);
    ro = lp_run_opts_default();
    ro.cache = other;
    ro.logits = LP_LOGITS_ALL;
    ro.logits_out = lo;
    lp_batch b2 = {ids2, 1, T, NULL};
    lp_model_run(m, &b2, &ro, &err);
    int L = c->n_layers - 1;
    snprintf(nm, sizeof nm, "blocks.%d.hook_resid_pre", L);
    lp_hooks *hk = lp_hooks_new();
    patch pt = {other, nm};
    lp_hooks_add(hk, nm, patch_hook, &pt, &err);
    ro = lp_run_opts_default();
    ro.hooks = hk;
    ro.logits = LP_LOGITS_ALL;
    ro.logits_out = lp;
    check(lp_model_run(m, &b, &ro, &err) == 0, "%s: run with a write hook (%s)", fx, err.msg);
    double dpatch = max_abs_diff(lp, lo, (size_t)T * V, NULL);
    check(dpatch <= 1e-5, "%s: patching %s from another prompt reproduces its logits (max |d| %.2g)", fx, nm, dpatch);
    /* a cache in the same run sees the patched value */
    lp_cache *seen = lp_cache_new();
    const char *pn[] = {nm};
    lp_cache_set_filter(seen, pn, 1, &err);
    ro.cache = seen;
    lp_model_run(m, &b, &ro, &err);
    int si = lp_cache_find(seen, nm), oi = lp_cache_find(other, nm);
    check(si >= 0 && memcmp(lp_cache_entry(seen, si).data, lp_cache_entry(other, oi).data, nD * 4) == 0,
          "%s: the cache stores the value after write hooks", fx);
    lp_cache_free(seen);
    /* a failing hook stops the run with its message; the model stays usable */
    lp_hooks_clear(hk);
    lp_hooks_add(hk, "blocks.0.attn.hook_z", failing_hook, NULL, &err);
    ro = lp_run_opts_default();
    ro.hooks = hk;
    int rc = lp_model_run(m, &b, &ro, &err);
    check(rc == LP_EINVAL && strstr(err.msg, "deliberate failure") && strstr(err.msg, "blocks.0.attn.hook_z"),
          "%s: a failing hook aborts the run: '%s'", fx, err.msg);
    lp_hooks_clear(hk);
    lp_hooks_add(hk, "blocks.0.attn.hook_nonsense", failing_hook, NULL, &err);
    rc = lp_model_run(m, &b, &ro, &err);
    check(rc == LP_ENOTFOUND, "%s: unknown hook name is an error: '%s'", fx, err.msg);
    ro = lp_run_opts_default();
    ro.logits = LP_LOGITS_ALL;
    ro.logits_out = lp;
    lp_model_run(m, &b, &ro, &err);
    check(memcmp(lp, logits, (size_t)T * V * 4) == 0, "%s: model is unchanged after hook runs", fx);
    lp_hooks_free(hk);
    lp_cache_free(other);
    free(ids2);
    free(lo);
    free(lp);

    /* padded batch: each row's real positions equal the row run on its own */
    cJSON *bj = cJSON_GetObjectItem(inputs, "batch");
    int B = cJSON_GetArraySize(bj), Tmax = 0;
    for (int i = 0; i < B; i++)
        Tmax = cJSON_GetArraySize(cJSON_GetArrayItem(bj, i)) > Tmax ? cJSON_GetArraySize(cJSON_GetArrayItem(bj, i)) : Tmax;
    int32_t *bt = calloc((size_t)B * Tmax, 4), *lens = malloc((size_t)B * 4);
    for (int i = 0; i < B; i++) {
        int n;
        int32_t *row = json_ids(cJSON_GetArrayItem(bj, i), &n);
        memcpy(bt + (size_t)i * Tmax, row, (size_t)n * 4);
        lens[i] = n;
        free(row);
    }
    float *bl = malloc((size_t)B * Tmax * V * 4);
    ro = lp_run_opts_default();
    ro.logits = LP_LOGITS_ALL;
    ro.logits_out = bl;
    lp_batch bb = {bt, B, Tmax, lens};
    check(lp_model_run(m, &bb, &ro, &err) == 0, "%s: padded batch of %d runs", fx, B);
    snprintf(path, sizeof path, "%s/batch_logits.safetensors", dir);
    lp_st_file *bf;
    if (lp_st_open(path, &bf, &err) == 0) {
        for (int i = 0; i < B; i++) {
            char key[8];
            snprintf(key, sizeof key, "b%d", i);
            lp_tensor r = lp_st_tensor(bf, lp_st_find(bf, key));
            double mref, d = max_abs_diff(bl + (size_t)i * Tmax * V, r.data, (size_t)lens[i] * V, &mref);
            check(d <= REL_TOL * mref, "%s: batch row %d (length %d of %d) matches it alone (max |d| %.3g)", fx, i,
                  lens[i], Tmax, d);
        }
        lp_st_close(bf);
    }
    free(bt);
    free(lens);
    free(bl);

    lp_cache_free(cache);
    cJSON_Delete(inputs);
    free(ids);
    free(logits);
    free(logits2);
    free(last);
    lp_model_free(m);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        test_fixture(argv[i]);
    return check_done();
}
