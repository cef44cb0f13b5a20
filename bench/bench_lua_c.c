/* The C side of bench_lua.lua: N forward passes of a 16-token prompt (all logits, as
 * m:run returns them), timed after a warm-up. usage: bench_lua_c MODEL [N]
 * Prints "c: N passes, X us/pass". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "loupe/loupe.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lua_c MODEL [N]\n");
        return 2;
    }
    int N = argc > 2 ? atoi(argv[2]) : 1000;
    const char *t = getenv("LOUPE_THREADS");
    if (t && atoi(t) > 0)
        lp_set_threads(atoi(t));
    lp_error err = {0};
    lp_model *m;
    if (lp_model_load(argv[1], &m, &err)) {
        fprintf(stderr, "bench_lua_c: %s\n", err.msg);
        return 2;
    }
    const lp_config *c = lp_model_config(m);
    int32_t ids[16];
    for (int i = 0; i < 16; i++)
        ids[i] = (i * 37 + 11) % c->d_vocab;
    lp_batch b = {ids, 1, 16, NULL};
    float *logits = malloc((size_t)16 * c->d_vocab * sizeof *logits);
    lp_run_opts ro = lp_run_opts_default();
    ro.logits = LP_LOGITS_ALL;
    ro.logits_out = logits;
    for (int i = 0; i < 20; i++)
        lp_model_run(m, &b, &ro, &err);
    double t0 = now();
    for (int i = 0; i < N; i++)
        if (lp_model_run(m, &b, &ro, &err)) {
            fprintf(stderr, "bench_lua_c: %s\n", err.msg);
            return 1;
        }
    double dt = now() - t0;
    printf("c: %d passes, %.2f us/pass\n", N, dt / N * 1e6);
    free(logits);
    lp_model_free(m);
    return 0;
}
