/* The UI's incremental analysis: after an edit, the forward pass resumes from the KV cache
 * at the first changed token and the kept positions' residual streams, pattern rows and
 * lens cells are reused. Each edit is checked against a fresh analysis of the same tokens
 * in a second app: same residual streams and patterns (up to float rounding), same lens
 * top-k, and the forward pass really did start where expected.
 * Usage: test_ui_incremental [MODEL_DIR]   (default: $LOUPE_SRC/models/toy) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"

static int fails, passes;
#define CHECK(c, ...)                                                                                                 \
    do {                                                                                                              \
        if (c) {                                                                                                      \
            passes++;                                                                                                 \
        } else {                                                                                                      \
            fails++;                                                                                                  \
            printf("FAIL ");                                                                                          \
            printf(__VA_ARGS__);                                                                                      \
            printf("\n");                                                                                             \
        }                                                                                                             \
    } while (0)

static double rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        num = d > num ? d : num;
        den = fabs(b[i]) > den ? fabs(b[i]) : den;
    }
    return num / (den > 0 ? den : 1);
}

/* analyse ids in `inc` (incrementally) and in a fresh app, and compare */
static void step(const char *what, lp_model *m, ui_app *inc, const int32_t *ids, int n, int view, int want_kept)
{
    const lp_config *c = lp_model_config(m);
    int L = c->n_layers, H = c->n_heads, D = c->d_model;
    inc->view = view;
    CHECK(ui_analyse_ids(inc, ids, n, 0) == 0, "%s: incremental analysis (%s)", what, inc->an.error);
    CHECK(inc->an.fwd_kept == want_kept, "%s: the forward pass resumed at %d, expected %d", what, inc->an.fwd_kept,
          want_kept);
    ui_app *ref = calloc(1, sizeof *ref);
    ui_app_init(ref, m, NULL, "");
    ref->view = view;
    CHECK(ui_analyse_ids(ref, ids, n, 0) == 0 && ref->an.fwd_kept == 0, "%s: fresh analysis", what);
    double dr = rel_diff(inc->an.resid, ref->an.resid, (size_t)(L + 1) * n * D);
    CHECK(dr <= 1e-5, "%s: residual streams agree with a fresh pass (max diff %.2g of max |x|)", what, dr);
    if (view == VIEW_ATTN) {
        int ok = 1;
        double dp = 0;
        for (int l = 0; l < L && ok; l++) {
            const float *a = ui_pattern(inc, l), *b = ui_pattern(ref, l);
            ok = a && b;
            if (ok) {
                double d = rel_diff(a, b, (size_t)H * n * n);
                dp = d > dp ? d : dp;
            }
        }
        CHECK(ok && dp <= 1e-5, "%s: attention patterns agree (max diff %.2g)", what, dp);
    }
    ui_lens_ensure_range(inc, 0, n, 0);
    ui_lens_ensure_range(ref, 0, n, 0);
    int same = 1;
    double dprob = 0;
    for (int l = 0; l <= L; l++)
        for (int p = 0; p < n; p++) {
            const ui_lens_cell *a = ui_lens_at(inc, l, p), *b = ui_lens_at(ref, l, p);
            same &= a->done && b->done && a->top[0] == b->top[0];
            double d = fabs(a->prob[0] - b->prob[0]);
            dprob = d > dprob ? d : dprob;
        }
    CHECK(same && dprob <= 1e-5, "%s: every lens cell's top-1 agrees (max prob diff %.2g; %d positions kept)", what,
          dprob, inc->an.lens_kept);
    ui_app_free(ref);
    free(ref);
}

int main(int argc, char **argv)
{
    char path[4096];
    const char *src = getenv("LOUPE_SRC");
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/models/toy", src ? src : ".");
    lp_model *m = NULL;
    lp_error err = {0};
    if (lp_model_load(path, &m, &err)) {
        printf("FAIL load %s: %s\n", path, err.msg);
        return 1;
    }
    const lp_config *c = lp_model_config(m);
    int V = c->d_vocab;
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = (int32_t)((i * 7919 + 11) % V);
    ui_app *app = calloc(1, sizeof *app);
    ui_app_init(app, m, NULL, "");

    step("first analysis, 30 tokens", m, app, ids, 30, VIEW_LENS, 0);
    step("one token appended", m, app, ids, 31, VIEW_LENS, 30);
    ids[30] = (ids[30] + 1) % V;
    step("the last token changed", m, app, ids, 31, VIEW_LENS, 30);
    step("the same tokens again (the last one re-run)", m, app, ids, 31, VIEW_LENS, 30);
    ids[12] = (ids[12] + 5) % V;
    step("a token in the middle changed", m, app, ids, 31, VIEW_LENS, 12);
    step("the attention view wants patterns: from scratch", m, app, ids, 31, VIEW_ATTN, 0);
    step("patterns kept, three tokens appended", m, app, ids, 34, VIEW_ATTN, 31);
    step("patterns kept, back to 20 tokens", m, app, ids, 20, VIEW_ATTN, 19);
    ids[0] = (ids[0] + 1) % V;
    step("the first token changed", m, app, ids, 20, VIEW_ATTN, 0);
    app->an.target = 5;
    step("a new lens target: cells recomputed, the forward still resumes", m, app, ids, 21, VIEW_LENS, 20);

    ui_app_free(app);
    free(app);
    lp_model_free(m);
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
