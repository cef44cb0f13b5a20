/* probe's known answers on the bundled toy model (models/toy; skipped when absent):
 *  - passage mood decoded >= 95% at its best layer while the embedding baseline sits at
 *    chance; bracket depth >= 90%; each sweep peaks where the model card says
 *    (eval_results.json's best_site, or within a point of the peak there);
 *  - LEACE on the mood at the best layer: a fresh probe within 2 points of chance;
 *  - steering with the mood direction moves the share of happy words in sampled passages
 *    the expected way, by an amount that grows with alpha.
 * Usage: test_probe_toy PLUGIN.so TOY_DIR */
#include <cjson/cJSON.h>
#include <unistd.h>

#include "check.h"
#include "loupe/loupe.h"
#include "loupe/plugins.h"

/* tools/toy/gen_corpus.py: HAPPY_ADJ + HAPPY_VERB + HAPPY_ADV, and the SAD_ lists */
static const char happy_words[] = "bright,cheerful,sunny,warm,lovely,joyful,glad,merry,golden,radiant,sweet,pleasant,"
                                  "smiled,laughed,grinned,sang,danced,beamed,giggled,cheered,"
                                  "happily,gladly,eagerly,warmly,brightly,cheerfully";
static const char sad_words[] = "gloomy,dreary,grey,cold,bleak,dismal,somber,dull,heavy,lonely,bitter,hollow,"
                                "sighed,wept,frowned,sobbed,moaned,sulked,groaned,mourned,"
                                "sadly,slowly,wearily,quietly,heavily,bitterly";

#include "probe_test.h"

static int run(lp_call *c, const char *what)
{
    lp_error err = {0};
    int rc = lp_call_run(c, &err);
    check(rc == 0, "%s runs (%s)", what, rc ? err.msg : "ok");
    return rc;
}

/* eval_results.json's best site of a probe ("L2" → 2), or -1 */
static int card_layer(const char *toy, const char *key)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/eval_results.json", toy);
    char *s = slurp(p);
    if (!s)
        return -1;
    cJSON *j = cJSON_Parse(s);
    free(s);
    const cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(j, key), "best_site");
    int l = cJSON_IsString(b) && b->valuestring[0] == 'L' ? atoi(b->valuestring + 1) : -1;
    cJSON_Delete(j);
    return l;
}

/* sweep a dataset; returns the best layer */
static int sweep(const char *toy, const char *file, const char *what, const char *expand, const char *label,
                 double need, const char *card_key)
{
    lp_call *c = call_new("probe.sweep");
    set(c, "dataset", file);
    set(c, "c", "0.5");
    if (*expand)
        set(c, "expand", expand);
    set(c, "label", label);
    int best = -1;
    if (!run(c, what)) {
        int tb = lp_call_find_result(c, "sweep");
        printf("     %s by layer:", what);
        for (int r = 0; r < lp_call_table_n_rows(c, tb); r++)
            printf(" %.4f", lp_call_table_cell(c, tb, r, 3)->num);
        printf("\n");
        double b = scalar(c, "best"), maj = scalar(c, "baseline_majority"), emb = scalar(c, "baseline_embed");
        best = (int)scalar(c, "best_layer");
        check(b >= need, "%s decoded at blocks.%d.hook_resid_post: %.4f >= %.2f (majority %.4f, embedding %.4f)", what,
              best, b, need, maj, emb);
        check(emb <= b - 0.2, "%s: the embedding baseline %.4f is far below the probe", what, emb);
        int cl = card_layer(toy, card_key);
        if (cl >= 0) {
            double at = lp_call_table_cell(c, tb, cl, 3)->num;
            check(cl == best || at >= b - 0.01, "%s: the sweep peaks where the card says (card L%d: %.4f, peak L%d: %.4f)",
                  what, cl, at, best, b);
        } else
            printf("     (no eval_results.json best_site for %s: card check skipped)\n", card_key);
    }
    lp_call_free(c);
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_probe_toy PLUGIN.so TOY_DIR\n");
        return 2;
    }
    const char *toy = argv[2];
    char cfg[4200], mood[4200], nest[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", toy);
    snprintf(mood, sizeof mood, "%s/eval/mood.jsonl", toy);
    if (access(mood, R_OK))
        snprintf(mood, sizeof mood, "%s/data/eval/mood.jsonl", toy);
    snprintf(nest, sizeof nest, "%.*s/nesting.jsonl", (int)(strlen(mood) - strlen("/mood.jsonl")), mood);
    if (access(cfg, R_OK) || access(mood, R_OK) || access(nest, R_OK)) {
        printf("SKIP: no toy model with eval sets at %s\n", toy);
        return 77;
    }
    lp_error err = {0};
    reg = lp_registry_new();
    if (!check(lp_registry_load_file(reg, argv[1], &err) == 0, "load %s (%s)", argv[1], err.msg))
        return check_done();
    if (!check(lp_model_load(toy, &model, &err) == 0, "load the toy model (%s)", err.msg))
        return check_done();

    int bm = sweep(toy, mood, "mood", "", "label", 0.95, "probe_mood");
    sweep(toy, nest, "depth", "words", "depth", 0.90, "probe_depth");

    /* LEACE on the mood at its best layer */
    if (bm >= 0) {
        char hook[64];
        snprintf(hook, sizeof hook, "blocks.%d.hook_resid_post", bm);
        lp_call *c = call_new("probe.erase");
        set(c, "dataset", mood);
        set(c, "hook", hook);
        set(c, "folds", "5");
        if (!run(c, "probe.erase on the mood")) {
            double b = scalar(c, "accuracy_before"), a = scalar(c, "accuracy_after"), ch = scalar(c, "chance");
            check(fabs(a - ch) <= 0.02,
                  "LEACE at %s: %.4f before, %.4f after vs chance %.4f (within 2 points); mean squared change %.4g "
                  "(%.2f%% of the variance)",
                  hook, b, a, ch, scalar(c, "mean_sq_change"), 100 * scalar(c, "relative_sq_change"));
        }
        lp_call_free(c);
    }

    /* steering: happy-word share against alpha */
    lp_call *c = call_new("probe.steer");
    lp_call_set_add_bos(c, 1);
    set(c, "prompt", "Sue read a book.");
    set(c, "hook", "blocks.0.hook_resid_post");
    set(c, "dataset", mood);
    set(c, "alphas", "-2,-1,0,1,2");
    set(c, "samples", "32");
    set(c, "n", "64");
    set(c, "temperature", "0.8");
    set(c, "pos_words", happy_words);
    set(c, "neg_words", sad_words);
    if (!run(c, "probe.steer with the mood direction")) {
        int ts = lp_call_find_result(c, "shares");
        double ps[5], ns[5];
        for (int a = 0; a < 5; a++) {
            ps[a] = lp_call_table_cell(c, ts, a, 1)->num;
            ns[a] = lp_call_table_cell(c, ts, a, 2)->num;
            printf("     alpha %+d: happy %.4f sad %.4f (%g words)\n", a - 2, ps[a], ns[a],
                   lp_call_table_cell(c, ts, a, 4)->num);
        }
        check(ps[3] > ps[2] && ps[4] > ps[3], "happy share grows with alpha > 0: %.4f < %.4f < %.4f", ps[2], ps[3],
              ps[4]);
        check(ps[0] < ps[2] && ps[1] < ps[2], "and falls with alpha < 0: %.4f (-2), %.4f (-1) < %.4f (0)", ps[0], ps[1],
              ps[2]);
        /* The mood balance (happy minus sad share) is the less noisy reading of the same
         * generations: it must grow at every step from alpha -1 up (unsteered passages already
         * lean sad, so at -2 the balance saturates), and -2 must still sit below 0. */
        int mono = ps[0] - ns[0] < ps[2] - ns[2];
        for (int a = 2; a < 5; a++)
            mono &= ps[a] - ns[a] > ps[a - 1] - ns[a - 1];
        check(mono, "happy - sad share grows with alpha: %+.4f %+.4f %+.4f %+.4f %+.4f", ps[0] - ns[0], ps[1] - ns[1],
              ps[2] - ns[2], ps[3] - ns[3], ps[4] - ns[4]);
        check(ns[0] > ns[2] && ns[4] < ns[2], "sad share moves the other way: %.4f (-2) > %.4f (0) > %.4f (+2)", ns[0],
              ns[2], ns[4]);
        int tg = lp_call_find_result(c, "generations");
        printf("     alpha -2: %s\n     alpha  0: %s\n     alpha +2: %s\n", lp_call_table_cell(c, tg, 0, 2)->str,
               lp_call_table_cell(c, tg, 64, 2)->str, lp_call_table_cell(c, tg, 128, 2)->str);
    }
    lp_call_free(c);

    lp_model_free(model);
    lp_registry_free(reg);
    return check_done();
}
