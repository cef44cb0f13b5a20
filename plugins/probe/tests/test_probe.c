/* probe through the host API, as a front end calls it (lp_registry_load_file, lp_call):
 * (stories260K is a 260K-parameter model: the thresholds here are loose sanity checks;
 * the known answers are checked on the bundled toy model by test_probe_toy.c)
 * on a small real model (stories260K from ../shared, skipped when absent) with a
 * generated two-mood dataset: train + save + apply, sweep, erase, ablate, steer, and
 * the error paths. Usage: test_probe PLUGIN.so MODEL_DIR TMPDIR */
#include <unistd.h>

#include "check.h"
#include "loupe/loupe.h"
#include "loupe/plugins.h"

#include "probe_test.h"

static const char *string(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_STRING ? lp_call_result_string(c, i) : "";
}

static int run(lp_call *c, const char *what)
{
    lp_error err = {0};
    int rc = lp_call_run(c, &err);
    check(rc == 0, "%s runs (%s)", what, rc ? err.msg : "ok");
    return rc;
}

/* A text whose mood is carried by one adjective; read at the last token, after the
 * adjective, so the token embedding there says nothing about the mood. */
static void make_dataset(const char *path, int n, unsigned seed)
{
    static const char *happy[] = {"happy", "glad", "joyful", "bright", "merry", "sunny"};
    static const char *sad[] = {"sad", "gloomy", "grey", "dull", "bleak", "lonely"};
    static const char *who[] = {"Tom", "Lily", "Sam", "Mia", "Ben", "Sue", "Max", "Amy"};
    static const char *what[] = {"the park", "the sea", "school", "the shop", "bed", "the garden"};
    FILE *f = fopen(path, "w");
    unsigned s = seed;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        int y = (s >> 16) & 1;
        s = s * 1103515245u + 12345u;
        unsigned r = s >> 8;
        fprintf(f, "{\"text\": \"%s felt %s and went to %s. Then\", \"label\": \"%s\"}\n", who[r % 8],
                (y ? happy : sad)[(r / 8) % 6], what[(r / 48) % 6], y ? "happy" : "sad");
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_probe PLUGIN.so MODEL_DIR TMPDIR\n");
        return 2;
    }
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", argv[2]);
    if (access(cfg, R_OK)) {
        printf("SKIP: no model at %s\n", argv[2]);
        return 77;
    }
    lp_error err = {0};
    reg = lp_registry_new();
    if (!check(lp_registry_load_file(reg, argv[1], &err) == 0, "load %s (%s)", argv[1], err.msg))
        return check_done();
    if (!check(lp_model_load(argv[2], &model, &err) == 0, "load model (%s)", err.msg))
        return check_done();
    const lp_config *mc = lp_model_config(model);
    char ds[1024], saved[1024], hook[64];
    snprintf(ds, sizeof ds, "%s/probe_mood.jsonl", argv[3]);
    snprintf(saved, sizeof saved, "%s/probe_saved", argv[3]);
    snprintf(hook, sizeof hook, "blocks.%d.hook_resid_post", mc->n_layers - 1);
    make_dataset(ds, 400, 7);

    /* train + save */
    lp_call *c = call_new("probe.train");
    set(c, "dataset", ds);
    set(c, "hook", hook);
    set(c, "save", saved);
    double acc = NAN, maj = NAN;
    if (!run(c, "probe.train")) {
        acc = scalar(c, "best");
        maj = scalar(c, "baseline_majority");
        double emb = scalar(c, "baseline_embed");
        check(acc >= 0.8, "the mood is decoded at %s: %.3f", hook, acc);
        check(maj > 0.35 && maj < 0.65, "majority baseline beside it: %.3f", maj);
        check(fabs(emb - maj) < 0.08, "embedding baseline near chance at the last token: %.3f", emb);
        check(scalar(c, "converged") == 1, "L-BFGS converged (%g iterations)", scalar(c, "iterations"));
        check(strstr(string(c, "saved"), "probe_saved.safetensors") != NULL, "saved: %s", string(c, "saved"));
    }
    lp_call_free(c);

    /* the saved probe, reloaded, scores the training file itself */
    c = call_new("probe.apply");
    set(c, "probe", saved);
    set(c, "dataset", ds);
    if (!run(c, "probe.apply")) {
        check(scalar(c, "score") >= acc - 0.05, "the reloaded probe scores %.3f (test split %.3f)", scalar(c, "score"),
              acc);
        check(!strcmp(string(c, "hook"), hook), "it read the hook recorded in its JSON: %s", string(c, "hook"));
    }
    lp_call_free(c);

    /* sweep: one accuracy per block */
    c = call_new("probe.sweep");
    set(c, "dataset", ds);
    set(c, "folds", "3");
    if (!run(c, "probe.sweep")) {
        int i = lp_call_find_result(c, "accuracy");
        const lp_tensor *t = i >= 0 ? lp_call_result_tensor(c, i, NULL) : NULL;
        check(t && t->ndim == 2 && t->ne[0] == mc->n_layers && t->ne[1] == 3, "accuracy tensor [%d, 3]", mc->n_layers);
        int tb = lp_call_find_result(c, "sweep");
        check(tb >= 0 && lp_call_table_n_rows(c, tb) == mc->n_layers && lp_call_table_n_cols(c, tb) == 9,
              "sweep table: one row per layer, with baseline columns");
    }
    lp_call_free(c);

    /* ridge on a continuous target and mean_diff */
    c = call_new("probe.train");
    set(c, "dataset", ds);
    set(c, "hook", hook);
    set(c, "kind", "mean_diff");
    if (!run(c, "probe.train kind=mean_diff"))
        check(scalar(c, "best") >= 0.6, "mean_diff probe %.3f beside majority %.3f", scalar(c, "best"),
              scalar(c, "baseline_majority"));
    lp_call_free(c);

    /* LEACE */
    c = call_new("probe.erase");
    set(c, "dataset", ds);
    set(c, "hook", hook);
    set(c, "folds", "5");
    if (!run(c, "probe.erase")) {
        double b = scalar(c, "accuracy_before"), a = scalar(c, "accuracy_after"), ch = scalar(c, "chance");
        printf("     erase: before %.3f after %.3f chance %.3f mean_sq_change %.4g (relative %.4f)\n", b, a, ch,
               scalar(c, "mean_sq_change"), scalar(c, "relative_sq_change"));
        check(b >= 0.8 && fabs(a - ch) <= 0.05, "LEACE: %.3f before, %.3f after vs chance %.3f (400 texts)", b, a, ch);
        check(scalar(c, "relative_sq_change") > 0 && scalar(c, "relative_sq_change") < 0.5,
              "the rest of the activation barely moves: relative change %.4f", scalar(c, "relative_sq_change"));
    }
    lp_call_free(c);

    /* ablation of the mean difference */
    c = call_new("probe.ablate");
    set(c, "dataset", ds);
    set(c, "hook", hook);
    if (!run(c, "probe.ablate"))
        check(scalar(c, "kl") > 0 && isfinite(scalar(c, "kl")), "ablation changes the next-token distribution: KL %.4g",
              scalar(c, "kl"));
    lp_call_free(c);

    /* steering: alpha 0 is the plain greedy continuation, a large alpha changes it */
    c = call_new("probe.steer");
    set(c, "prompt", "Tom felt");
    set(c, "hook", "blocks.1.hook_resid_post");
    set(c, "dataset", ds);
    set(c, "alphas", "0,100");
    set(c, "samples", "1");
    set(c, "temperature", "0");
    set(c, "n", "12");
    set(c, "pos_words", "happy,glad,joyful,bright,merry,sunny");
    set(c, "neg_words", "sad,gloomy,grey,dull,bleak,lonely");
    if (!run(c, "probe.steer")) {
        int tg = lp_call_find_result(c, "generations");
        if (check(tg >= 0 && lp_call_table_n_rows(c, tg) == 2, "two generations")) {
            const char *a = lp_call_table_cell(c, tg, 0, 2)->str, *b = lp_call_table_cell(c, tg, 1, 2)->str;
            printf("     alpha 0: %s\n     alpha 100: %s\n", a, b);
            check(strcmp(a, b) != 0, "steering changes the continuation");
        }
    }
    lp_call_free(c);

    /* errors are one line naming the problem */
    c = call_new("probe.train");
    set(c, "dataset", ds);
    set(c, "hook", hook);
    set(c, "kind", "svm");
    check(lp_call_run(c, &err) == LP_EINVAL && strstr(err.msg, "kind"), "bad kind: %s", err.msg);
    set(c, "kind", "logistic");
    set(c, "dataset", "/nonexistent.jsonl");
    check(lp_call_run(c, &err) == LP_EIO && strstr(err.msg, "/nonexistent.jsonl"), "missing dataset: %s", err.msg);
    lp_call_free(c);

    lp_model_free(model);
    lp_registry_free(reg);
    return check_done();
}
