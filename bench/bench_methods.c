/* Method-plugin benchmark, through the plugin host as a front end runs them:
 *  (a) logit_lens.run over every layer and position of a 128-token prompt (k=1) against
 *      one plain forward pass with logits for every position (target: <= 1.5x);
 *  (b) patching.run what=resid_pre over every (layer, position) of a 20-token prompt:
 *      n_layers x 20 patched runs plus the clean and corrupted ones, timed.
 * Prints one JSON object. Compare (b) with bench/torch_patching.py.
 *   bench_methods MODEL_DIR PLUGIN_DIR [--reps N] [--threads N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "loupe/loupe.h"
#include "loupe/plugins.h"
#include "bench_util.h"

static void rand_ids(int32_t *ids, int n, int V, unsigned seed)
{
    unsigned s = seed;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = (int32_t)((s >> 8) % (unsigned)V);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_methods MODEL_DIR PLUGIN_DIR [--reps N] [--threads N]\n");
        return 2;
    }
    int reps = 3, threads = 2;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    if (reps < 1 || reps > 100)
        reps = 3;
    lp_set_threads(threads);
    lp_error err = {0};
    lp_model *m;
    if (lp_model_load(argv[1], &m, &err)) {
        fprintf(stderr, "bench_methods: %s\n", err.msg);
        return 2;
    }
    lp_registry *reg = lp_registry_new();
    if (lp_registry_load_dir(reg, argv[2]) < 1 || lp_registry_find_method(reg, "logit_lens.run") < 0 ||
        lp_registry_find_method(reg, "patching.run") < 0) {
        fprintf(stderr, "bench_methods: logit_lens and patching plugins not found under %s\n", argv[2]);
        return 2;
    }
    const lp_config *c = lp_model_config(m);
    const int T = 128, TP = 20;
    int32_t ids[128], clean[20], corr[20];
    rand_ids(ids, T, c->d_vocab, 12345u);
    rand_ids(clean, TP, c->d_vocab, 777u);
    memcpy(corr, clean, sizeof clean);
    corr[TP / 2] = (clean[TP / 2] + 1) % c->d_vocab;
    double *t_fwd = malloc(sizeof(double) * reps), *t_lens = malloc(sizeof(double) * reps),
           *t_patch = malloc(sizeof(double) * reps);

    /* (a) a plain forward pass with every position's logits vs the logit lens */
    float *logits = malloc(sizeof(float) * (size_t)T * c->d_vocab);
    lp_batch b = {ids, 1, T, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_ALL;
    o.logits_out = logits;
    lp_model_run(m, &b, &o, &err); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (lp_model_run(m, &b, &o, &err)) {
            fprintf(stderr, "bench_methods: %s\n", err.msg);
            return 1;
        }
        t_fwd[r] = now() - t0;
    }
    lp_call *lc = lp_call_new(reg, "logit_lens.run", m, &err);
    lp_call_set_param_tokens(lc, "prompt", ids, T, &err);
    lp_call_set_param(lc, "k", "1", &err);
    lp_call_run(lc, &err); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (lp_call_run(lc, &err)) {
            fprintf(stderr, "bench_methods: %s\n", err.msg);
            return 1;
        }
        t_lens[r] = now() - t0;
    }
    lp_call_free(lc);
    /* the lens's arithmetic floor: the forward pass plus one sgemm of every other layer's
     * residual stream through the unembedding, [n_layers·T, d_model] x [d_model, vocab] */
    double *t_gemm = malloc(sizeof(double) * reps);
    {
        int R = c->n_layers * T, D = c->d_model, V = c->d_vocab;
        float *A = malloc(sizeof(float) * (size_t)R * D), *B = malloc(sizeof(float) * (size_t)D * V),
              *C = malloc(sizeof(float) * (size_t)R * V);
        for (size_t i = 0; i < (size_t)R * D; i++)
            A[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        for (size_t i = 0; i < (size_t)D * V; i++)
            B[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
        memset(C, 0, sizeof(float) * (size_t)R * V);
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, V, D, 1.0f, A, D, B, D, 0.0f, C, V);
            if (r >= 0)
                t_gemm[r] = now() - t0;
        }
        free(A);
        free(B);
        free(C);
    }

    /* (b) resid_pre patching over every (layer, position) of a 20-token prompt */
    lp_call *pc = lp_call_new(reg, "patching.run", m, &err);
    char as[32], ws[32];
    snprintf(as, sizeof as, "#%d", (int)clean[TP / 2]);
    snprintf(ws, sizeof ws, "#%d", (int)corr[TP / 2]);
    lp_call_set_param_tokens(pc, "clean", clean, TP, &err);
    lp_call_set_param_tokens(pc, "corrupted", corr, TP, &err);
    lp_call_set_param(pc, "answer", as, &err);
    lp_call_set_param(pc, "wrong", ws, &err);
    lp_call_set_param(pc, "what", "resid_pre", &err);
    double final_cell = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (lp_call_run(pc, &err)) {
            fprintf(stderr, "bench_methods: %s\n", err.msg);
            return 1;
        }
        t_patch[r] = now() - t0;
        int i = lp_call_find_result(pc, "patched");
        const lp_tensor *t = lp_call_result_tensor(pc, i, NULL);
        final_cell = ((const float *)t->data)[(size_t)(c->n_layers - 1) * TP + TP - 1];
    }
    lp_call_free(pc);
    double fwd = median(t_fwd, reps), lens = median(t_lens, reps), patch = median(t_patch, reps),
           gemm = median(t_gemm, reps);
    double gemm_flop = 2.0 * c->n_layers * T * c->d_model * (double)c->d_vocab;
    int runs = c->n_layers * TP + 2;
    char blas[160];
    lp_blas_info(blas, sizeof blas);
    printf("{\"blas\":\"%s\",\"threads\":%d,\"reps\":%d,\"n_layers\":%d,\"d_model\":%d,"
           "\"forward_128_all_logits_s\":%.4f,\"logit_lens_128_s\":%.4f,\"lens_over_forward\":%.3f,"
           "\"lens_target_ratio\":1.5,\"unembed_gemm_s\":%.4f,\"unembed_gemm_gflops\":%.1f,"
           "\"lens_floor_s\":%.4f,\"floor_over_forward\":%.3f,\"lens_over_floor\":%.3f,\"patching_20_tokens\":{\"cells\":%d,\"runs\":%d,\"total_s\":%.4f,"
           "\"per_run_ms\":%.3f,\"last_layer_last_pos_normalized\":%.6f}}\n",
           blas, threads, reps, c->n_layers, c->d_model, fwd, lens, lens / fwd, gemm, gemm_flop / gemm * 1e-9,
           fwd + gemm, (fwd + gemm) / fwd, lens / (fwd + gemm), c->n_layers * TP, runs, patch,
           patch / runs * 1e3, final_cell);
    free(t_fwd);
    free(t_lens);
    free(t_patch);
    free(t_gemm);
    free(logits);
    lp_registry_free(reg);
    lp_model_free(m);
    return 0;
}
