/* The UI's cost per keystroke: re-analysing a prompt (forward pass with the UI's cache,
 * the next-token predictions, the logit lens of the columns on screen) and rendering the
 * view into memory, as the event loop does after a key. Default: 64 tokens on the
 * GPT-2-small-shaped random model at /tmp/loupe-gpt2-small (make it with
 *   /usr/bin/python3 bench/torch_reference.py --make-model /tmp/loupe-gpt2-small --tokens 1 --reps 1 --json
 * ) at 80x24 and 200x60. Run with `env -u OPENBLAS_CORETYPE`.
 *
 *   bench_ui [MODEL] [N_TOKENS] [REPS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/tmp/loupe-gpt2-small";
    int n = argc > 2 ? atoi(argv[2]) : 64, reps = argc > 3 ? atoi(argv[3]) : 15;
    const char *t = getenv("LOUPE_THREADS");
    if (t && atoi(t) > 0)
        lp_set_threads(atoi(t));
    lp_model *m = NULL;
    lp_error err = {0};
    if (lp_model_load(path, &m, &err)) {
        fprintf(stderr, "bench_ui: %s\n", err.msg);
        return 2;
    }
    const lp_config *cfg = lp_model_config(m);
    ui_app *app = calloc(1, sizeof *app);
    ui_app_init(app, m, NULL, "");
    app->prompt_editing = 1;
    int32_t *ids = malloc(sizeof *ids * (size_t)n);
    srand(1);
    for (int i = 0; i < n; i++)
        ids[i] = rand() % cfg->d_vocab;
    char blas[256];
    lp_blas_info(blas, sizeof blas);
    printf("model %s: %d layers, d_model %d, vocab %d; %d tokens; %s\n", path, cfg->n_layers, cfg->d_model,
           cfg->d_vocab, n, blas);
    const int sizes[][2] = {{80, 24}, {200, 60}};
    const int views[] = {VIEW_PROMPT, VIEW_LENS, VIEW_ATTN};
    const char *vnames[] = {"prompt", "lens", "attention"};
    ui_canvas cv = {0};
    /* edit 0: the last token changes (typing at the end: the lens cells of every earlier
     * position are kept); edit 1: the first token changes (every cell is recomputed) */
    const char *edits[] = {"type at end", "edit at start"};
    for (int edit = 0; edit < 2; edit++)
    for (int z = 0; z < 2; z++) {
        ui_canvas_resize(&cv, sizes[z][0], sizes[z][1]);
        for (int v = 0; v < 3; v++) {
            app->view = views[v];
            double *ms = malloc(sizeof(double) * (size_t)reps), *fw = malloc(sizeof(double) * (size_t)reps);
            double *full = malloc(sizeof(double) * (size_t)reps);
            for (int r = -2; r < reps; r++) { /* two warm-up rounds */
                int at = edit ? 0 : n - 1; /* "a keystroke": this token changes */
                ids[at] = (ids[at] + 1) % cfg->d_vocab;
                double t0 = ui_now_ms();
                ui_analyse_ids(app, ids, n, t0);
                app->an.lens_more = 0;
                ui_render(app, &cv);
                double dt = ui_now_ms() - t0;
                ui_render_full(app, &cv); /* the lens fills in over the next frames */
                double df = ui_now_ms() - t0;
                if (r >= 0) {
                    ms[r] = dt;
                    fw[r] = app->an.forward_ms;
                    full[r] = df;
                }
            }
            qsort(ms, (size_t)reps, sizeof *ms, cmp);
            qsort(fw, (size_t)reps, sizeof *fw, cmp);
            qsort(full, (size_t)reps, sizeof *full, cmp);
            printf("%-13s %3dx%-3d %-9s keystroke → screen: median %6.1f ms (min %6.1f, max %6.1f); every cell on "
                   "screen %6.1f ms; forward alone %6.1f ms\n",
                   edits[edit], cv.w, cv.h, vnames[v], ms[reps / 2], ms[0], ms[reps - 1], full[reps / 2],
                   fw[reps / 2]);
            free(ms);
            free(fw);
            free(full);
        }
    }
    ui_canvas_free(&cv);
    free(ids);
    ui_app_free(app);
    free(app);
    lp_model_free(m);
    return 0;
}
