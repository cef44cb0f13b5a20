/* bench_probe — the C side of bench/bench_probe.py.
 *
 *   bench_probe fit X.f32 Y.i32 N D C OUT.f32
 *       fit one L2 logistic probe (probe plugin's numerics: standardisation + L-BFGS, the
 *       heavy products on OpenBLAS sgemm) on N x D float32 features, best of 3; prints
 *       seconds, iterations, train accuracy; writes the weights (on standardised features)
 *       and the bias to OUT for the script to compare with scikit-learn's.
 *   bench_probe sweep PLUGIN.so MODEL DATASET [key=value ...]
 *       time probe.sweep through the host API (activation gathering + one probe per
 *       layer + the embedding baseline) and print its table. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loupe/loupe.h"
#include "loupe/plugins.h"
#include "probe_impl.h"
#include "bench_util.h"

static void blas(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

static void *readall(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    void *p = malloc(bytes);
    if (!f || !p || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "bench_probe: cannot read %zu bytes from %s\n", bytes, path);
        exit(2);
    }
    fclose(f);
    return p;
}

static int fit(int argc, char **argv)
{
    if (argc < 8)
        return 2;
    int n = atoi(argv[4]), d = atoi(argv[5]);
    double C = atof(argv[6]);
    float *X = readall(argv[2], sizeof(float) * (size_t)n * d);
    int32_t *yi = readall(argv[3], sizeof(int32_t) * (size_t)n);
    double *y = malloc(sizeof(double) * (size_t)n);
    int *rows = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        y[i] = yi[i];
        rows[i] = i;
    }
    pr_set_sgemm(blas);
    pr_fit_opts o = pr_fit_opts_default();
    o.C = C;
    double best = 1e30;
    pr_probe p = {0};
    for (int r = 0; r < 3; r++) {
        pr_probe_free(&p);
        double t0 = now();
        pr_fit(&p, &o, X, d, y, rows, n, 2);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    float *sc = malloc(sizeof(float) * (size_t)n);
    pr_scores(&p, X, rows, n, sc);
    int hit = 0;
    for (int i = 0; i < n; i++)
        hit += (sc[i] > 0) == (yi[i] != 0);
    printf("{\"seconds\": %.4f, \"iterations\": %d, \"converged\": %d, \"train_accuracy\": %.5f}\n", best, p.iters,
           p.converged, (double)hit / n);
    FILE *f = fopen(argv[7], "wb");
    fwrite(p.W, sizeof(float), (size_t)d, f);
    fwrite(p.b, sizeof(float), 1, f);
    fclose(f);
    pr_probe_free(&p);
    free(X);
    free(yi);
    free(y);
    free(rows);
    free(sc);
    return 0;
}

static int sweep(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    lp_error err = {0};
    lp_registry *r = lp_registry_new();
    lp_model *m;
    if (lp_registry_load_file(r, argv[2], &err) || lp_model_load(argv[3], &m, &err)) {
        fprintf(stderr, "bench_probe: %s\n", err.msg);
        return 1;
    }
    lp_call *c = lp_call_new(r, "probe.sweep", m, &err);
    lp_call_set_param(c, "dataset", argv[4], &err);
    for (int i = 5; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            continue;
        *eq = 0;
        if (lp_call_set_param(c, argv[i], eq + 1, &err)) {
            fprintf(stderr, "bench_probe: %s\n", err.msg);
            return 2;
        }
    }
    double t0 = now();
    if (lp_call_run(c, &err)) {
        fprintf(stderr, "bench_probe: %s\n", err.msg);
        return 1;
    }
    double t = now() - t0;
    int tb = lp_call_find_result(c, "sweep");
    int rows = lp_call_table_n_rows(c, tb);
    const lp_cell *n_test = lp_call_table_cell(c, tb, 0, 8);
    printf("{\"seconds\": %.3f, \"layers\": %d, \"n_test\": %g, \"accuracy\": [", t, rows, n_test->num);
    for (int i = 0; i < rows; i++)
        printf("%s%.4f", i ? ", " : "", lp_call_table_cell(c, tb, i, 3)->num);
    printf("], \"baseline_majority\": %.4f, \"baseline_embed\": %.4f}\n",
           lp_call_result_scalar(c, lp_call_find_result(c, "baseline_majority")),
           lp_call_result_scalar(c, lp_call_find_result(c, "baseline_embed")));
    lp_call_free(c);
    lp_model_free(m);
    lp_registry_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "fit"))
        rc = fit(argc, argv);
    else if (argc > 1 && !strcmp(argv[1], "sweep"))
        rc = sweep(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: bench_probe fit X.f32 Y.i32 N D C OUT.f32 | sweep PLUGIN.so MODEL DATASET [k=v ...]\n");
    return rc;
}
