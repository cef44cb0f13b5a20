/* bench_sae — SAE training steps/s of loupe's trainer (plugins/sae/sae_train.c) on synthetic
 * activations: sparse planted features in d_in dimensions plus noise. Prints one JSON line.
 * bench/bench_sae.py runs it next to a PyTorch eager implementation of the same SAE and
 * optimiser. ReLU is first trained `--warm` steps at batch `--warm-batch` (the L1 penalty
 * brings it to a realistic L0; random init has half the latents active), then timed at
 * `--batch`; the L0 during the timed steps is reported.
 * Usage: bench_sae --arch relu|topk --d-in 768 --d-sae 24576 --batch 4096 --k 32
 *                  --warm 60 --warm-batch 512 --steps 5 --threads 2 --l1 5 --lr 4e-4 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sae_impl.h"
#include "bench_util.h"

static void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

/* A pool of batches: each row the sum of ~n_active of n_feat unit directions with
 * magnitudes in [0.5, 1.5], plus N(0, 0.02²) noise. */
static float *make_pool(int n_batches, int B, int D, int n_feat, double p_active, uint64_t seed)
{
    sae_rng r;
    sae_rng_seed(&r, seed);
    float *dirs = malloc(sizeof(float) * (size_t)n_feat * D);
    for (int i = 0; i < n_feat; i++) {
        double ss = 0;
        for (int d = 0; d < D; d++) {
            dirs[(size_t)i * D + d] = (float)sae_rng_normal(&r);
            ss += (double)dirs[(size_t)i * D + d] * dirs[(size_t)i * D + d];
        }
        for (int d = 0; d < D; d++)
            dirs[(size_t)i * D + d] /= (float)sqrt(ss);
    }
    size_t rows = (size_t)n_batches * B;
    float *x = malloc(sizeof(float) * rows * D);
    int avg = (int)(p_active * n_feat + 0.5);
    for (size_t row = 0; row < rows; row++) {
        float *o = x + row * D;
        for (int d = 0; d < D; d++)
            o[d] = (float)(0.02 * sae_rng_normal(&r));
        int na = avg / 2 + (int)(sae_rng_next(&r) % (uint64_t)(avg + 1));
        for (int a = 0; a < na; a++) {
            int i = (int)(sae_rng_next(&r) % (uint64_t)n_feat);
            float m = (float)(0.5 + sae_rng_uniform(&r));
            for (int d = 0; d < D; d++)
                o[d] += m * dirs[(size_t)i * D + d];
        }
    }
    free(dirs);
    return x;
}

int main(int argc, char **argv)
{
    const char *arch = "topk";
    int D = 768, S = 24576, B = 4096, k = 32, warm = 60, warm_b = 512, steps = 5, threads = 2;
    double l1 = 5, lr = 4e-4;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--arch"))
            arch = v;
        else if (!strcmp(a, "--d-in"))
            D = atoi(v);
        else if (!strcmp(a, "--d-sae"))
            S = atoi(v);
        else if (!strcmp(a, "--batch"))
            B = atoi(v);
        else if (!strcmp(a, "--k"))
            k = atoi(v);
        else if (!strcmp(a, "--warm"))
            warm = atoi(v);
        else if (!strcmp(a, "--warm-batch"))
            warm_b = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--l1"))
            l1 = atof(v);
        else if (!strcmp(a, "--lr"))
            lr = atof(v);
        else {
            fprintf(stderr, "bench_sae: unknown option %s\n", a);
            return 2;
        }
    }
    sae_sgemm = blas_sgemm;
    sae_threads = threads;
    train_cfg c;
    train_cfg_default(&c);
    c.arch = strcmp(arch, "topk") ? SAE_STANDARD : SAE_TOPK;
    c.d_sae = S;
    c.k = k;
    c.batch = B;
    c.steps = 1 << 30;
    c.lr = lr;
    c.l1_coeff = l1;
    c.dead_tokens = 1000000;
    int npool = 4;
    float *pool = make_pool(npool, B, D, 4 * D, 32.0 / (4 * D), 1);
    double *mean = calloc((size_t)D, sizeof(double));
    float *meanf = malloc(sizeof(float) * (size_t)D);
    for (int r = 0; r < B; r++)
        for (int d = 0; d < D; d++)
            mean[d] += pool[(size_t)r * D + d] / B;
    for (int d = 0; d < D; d++)
        meanf[d] = (float)mean[d];
    trainer *t;
    char err[SAE_ERR_MAX];
    if (trainer_new(&c, D, meanf, &t, err)) {
        fprintf(stderr, "bench_sae: %s\n", err);
        return 1;
    }
    train_metrics m;
    double tw = now();
    int wb = c.arch == SAE_STANDARD ? warm_b : B;
    int nwarm = c.arch == SAE_STANDARD ? warm : 1;
    trainer_set_batch(t, wb);
    for (int s = 0; s < nwarm; s++)
        trainer_do_step(t, pool + (size_t)(s % (npool * B / wb)) * wb * D, &m);
    tw = now() - tw;
    trainer_set_batch(t, B);
    trainer_do_step(t, pool, &m); /* one at full batch before timing */
    double t0 = now(), l0 = 0;
    for (int s = 0; s < steps; s++) {
        trainer_do_step(t, pool + (size_t)((s + 1) % npool) * B * D, &m);
        l0 += m.l0;
    }
    double el = now() - t0;
    printf("{\"impl\": \"loupe\", \"arch\": \"%s\", \"d_in\": %d, \"d_sae\": %d, \"batch\": %d, \"k\": %d, "
           "\"threads\": %d, \"steps\": %d, \"s_per_step\": %.4f, \"tokens_per_s\": %.1f, \"l0\": %.2f, "
           "\"fvu\": %.4f, \"warm_steps\": %d, \"warm_batch\": %d, \"warm_s\": %.1f}\n",
           c.arch == SAE_TOPK ? "topk" : "relu", D, S, B, k, threads, steps, el / steps, steps * (double)B / el,
           l0 / steps, m.fvu, nwarm, wb, tw);
    trainer_free(t);
    free(pool), free(mean), free(meanf);
    return 0;
}
