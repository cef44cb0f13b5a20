/* Real trained models from ../shared (skipped with a message when it is absent):
 * stories260K must reproduce its author's greedy continuation, the float64 reference
 * logits, and its tokenizer must round-trip. Usage: test_shared SHARED_DIR */
#include <sys/stat.h>

#include "../common/check.h"
#include "loupe/loupe.h"

int main(int argc, char **argv)
{
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/models/stories260K", shared);
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("SKIP: %s not found (the shared models folder is absent in a fresh clone)\n", dir);
        return 77;
    }
    lp_error err = {0};
    lp_model *m;
    if (!check(lp_model_load(dir, &m, &err) == 0, "stories260K loads (%s)", err.msg))
        return check_done();
    const lp_config *c = lp_model_config(m);
    lp_tokenizer *tok = lp_model_tokenizer(m);
    check(c->prepend_bos == 1 && c->bos_token_id == 1, "prepend_bos follows tokenizer_config (BOS id %d)",
          c->bos_token_id);

    /* greedy 256 from BOS alone */
    int32_t bos = 1, out[256];
    int n_out;
    lp_gen_opts g = lp_gen_opts_default();
    g.n_new = 256;
    check(lp_model_generate(m, &bos, 1, &g, out, &n_out, &err) == 0, "generates 256 tokens (%s)", err.msg);
    char *text = lp_tokenizer_decode(tok, out, (size_t)n_out, 1, &err);
    snprintf(path, sizeof path, "%s/expected_greedy_256.txt", dir);
    char *expect = slurp(path);
    size_t el = expect ? strlen(expect) : 0;
    while (el && (expect[el - 1] == '\n'))
        expect[--el] = 0;
    check(text && expect && strcmp(text, expect) == 0, "greedy continuation from BOS equals expected_greedy_256.txt");
    if (text && expect && strcmp(text, expect) != 0)
        printf("  got:      %.200s\n  expected: %.200s\n", text, expect);

    /* reference logits */
    int32_t ids[32] = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                       338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426};
    float *logits = malloc(32 * 512 * 4);
    lp_run_opts ro = lp_run_opts_default();
    ro.logits = LP_LOGITS_ALL;
    ro.logits_out = logits;
    lp_batch b = {ids, 1, 32, NULL};
    lp_model_run(m, &b, &ro, &err);
    snprintf(path, sizeof path, "%s/reference_logits_bos_plus_31.npy", dir);
    lp_tensor ref;
    void *rd;
    if (check(lp_npy_load(path, &ref, &rd, &err) == 0, "reads reference logits (%s)", err.msg)) {
        double mref, d = max_abs_diff(logits, ref.data, 32 * 512, &mref);
        check(d <= 1e-4 * mref, "logits match the float64 reference: max |d| %.3g (max |logit| %.3g)", d, mref);
        free(rd);
    }
    /* tokenizer: the story round-trips and its ids start with BOS */
    if (expect) {
        int32_t *tids;
        size_t nt;
        int erc = lp_tokenizer_encode(tok, expect, strlen(expect), -1, &tids, &nt, &err);
        check(erc == 0 && nt > 0 && tids[0] == 1, "tokenizer encodes the story with BOS first (%zu tokens)", nt);
        char *back = lp_tokenizer_decode(tok, tids, nt, 1, &err);
        check(back && strcmp(back, expect) == 0, "tokenizer round-trips the story");
        check(nt - 1 == (size_t)n_out && memcmp(tids + 1, out, (size_t)n_out * 4) == 0,
              "re-encoding the story gives the generated ids");
        free(back);
        free(tids);
    }
    free(text);
    free(expect);
    free(logits);
    lp_model_free(m);
    return check_done();
}
