/* Forward-pass benchmark: tokens/s for prompts of several lengths with logits for all
 * positions or the last one, with the full cache and a one-hook cache; peak RSS per
 * configuration (each configuration runs in a fresh child process); the sgemm rate at
 * the model's own shapes. Prints one JSON object.
 *   bench_forward MODEL_DIR [--tokens 128,512,1024] [--reps N] [--threads N]
 *   bench_forward MODEL_DIR --child MODE T REPS     (internal) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loupe/loupe.h"
#include "bench_util.h"

static long rss_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t l = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, l))
            v = atol(line + l + 1);
    if (f)
        fclose(f);
    return v;
}

/* mode: all, last, cache_full, cache_one */
static int child(const char *dir, const char *mode, int T, int reps)
{
    lp_error err = {0};
    lp_model *m;
    if (lp_model_load(dir, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    const lp_config *c = lp_model_config(m);
    int32_t *ids = malloc((size_t)T * 4);
    unsigned s = 12345;
    for (int i = 0; i < T; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = (int32_t)((s >> 8) % (unsigned)c->d_vocab);
    }
    int last = !strcmp(mode, "last");
    float *logits = malloc((size_t)(last ? 1 : T) * c->d_vocab * 4);
    lp_cache *cache = NULL;
    if (!strncmp(mode, "cache", 5)) {
        cache = lp_cache_new();
        if (!strcmp(mode, "cache_one")) {
            const char *p[] = {"blocks.6.hook_resid_post"};
            lp_cache_set_filter(cache, p, 1, &err);
        }
    }
    lp_run_opts o = lp_run_opts_default();
    o.logits = last ? LP_LOGITS_LAST : LP_LOGITS_ALL;
    o.logits_out = logits;
    o.cache = cache;
    lp_batch b = {ids, 1, T, NULL};
    /* Peak RSS of the steady state: reset the high-water mark after loading. */
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (cr) {
        fputs("5", cr);
        fclose(cr);
    }
    long rss_load = rss_kb("VmRSS:");
    double *t = malloc((size_t)reps * sizeof *t);
    lp_model_run(m, &b, &o, &err); /* warm-up */
    for (int r = 0; r < reps; r++) {
        if (cache)
            lp_cache_reset(cache);
        double t0 = now();
        if (lp_model_run(m, &b, &o, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        t[r] = now() - t0;
    }
    printf("{\"mode\":\"%s\",\"tokens\":%d,\"median_s\":%.5f,\"min_s\":%.5f,\"peak_rss_mb\":%.1f,"
           "\"rss_after_load_mb\":%.1f,\"cache_mb\":%.1f}\n",
           mode, T, median(t, reps), t[0], rss_kb("VmHWM:") / 1024.0, rss_load / 1024.0,
           cache ? lp_cache_bytes_used(cache) / 1048576.0 : 0.0);
    return 0;
}

static double sgemm_gflops(int M, int N, int K, int reps)
{
    float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)K * N * 4), *c = malloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
        t[r] = now() - t0;
    }
    double g = 2.0 * M * N * K / median(t, reps) / 1e9;
    free(a);
    free(b);
    free(c);
    free(t);
    return g;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_forward MODEL_DIR [--tokens 128,512,1024] [--reps N] [--threads N]\n");
        return 2;
    }
    const char *dir = argv[1];
    if (argc >= 6 && !strcmp(argv[2], "--child"))
        return child(dir, argv[3], atoi(argv[4]), atoi(argv[5]));
    const char *tokens = "128,512,1024";
    int reps = 5, threads = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) tokens = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    lp_set_threads(threads);
    char tstr[32];
    snprintf(tstr, sizeof tstr, "%d", threads);
    setenv("LOUPE_THREADS", tstr, 1);
    setenv("OPENBLAS_NUM_THREADS", tstr, 1);
    lp_error err = {0};
    lp_model *m;
    double t0 = now();
    if (lp_model_load(dir, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    double load_s = now() - t0;
    const lp_config *c = lp_model_config(m);
    char blas[512];
    lp_blas_info(blas, sizeof blas);
    int64_t D = c->d_model, F = c->d_mlp, L = c->n_layers;
    int64_t nonemb = L * (4 * D * D + 2 * D * F); /* attention + MLP matrices */
    printf("{\"blas\":\"%s\",\"threads\":%d,\"load_s\":%.4f,\"n_params\":%lld,\"nonembedding_params\":%lld,"
           "\"weights_mb\":%.1f,\"results\":[\n",
           blas, threads, load_s, (long long)lp_model_n_params(m), (long long)nonemb,
           lp_model_weight_bytes(m) / 1048576.0);
    fflush(stdout);
    lp_model_free(m);
    char buf[64], *save = NULL;
    snprintf(buf, sizeof buf, "%s", tokens);
    int first = 1;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int T = atoi(tok);
        /* sgemm at this length's shapes: QKV, MLP in, MLP out */
        double g1 = sgemm_gflops(T, 3 * (int)D, (int)D, 5), g2 = sgemm_gflops(T, (int)F, (int)D, 5),
               g3 = sgemm_gflops(T, (int)D, (int)F, 5);
        double flops_lin = 2.0 * nonemb * T;
        double flops_attn = L * 2.0 * 2.0 * D * (T * (T + 1) / 2.0); /* causal QK^T and PV */
        double flops_unemb_all = 2.0 * D * c->d_vocab * T, flops_unemb_last = 2.0 * D * c->d_vocab;
        printf("%s{\"tokens\":%d,\"sgemm_gflops\":{\"qkv\":%.1f,\"mlp_in\":%.1f,\"mlp_out\":%.1f},"
               "\"flops_all\":%.4g,\"flops_last\":%.4g,\"runs\":[\n",
               first ? "" : ",\n", T, g1, g2, g3, flops_lin + flops_attn + flops_unemb_all,
               flops_lin + flops_attn + flops_unemb_last);
        fflush(stdout);
        first = 0;
        const char *modes[] = {"all", "last", "cache_full", "cache_one"};
        for (int k = 0; k < 4; k++) {
            pid_t pid = fork();
            if (pid == 0) {
                char ts[16], rs[16];
                snprintf(ts, sizeof ts, "%d", T);
                snprintf(rs, sizeof rs, "%d", T >= 1024 ? (reps > 3 ? 3 : reps) : reps);
                if (k)
                    printf(",");
                fflush(stdout);
                execl("/proc/self/exe", argv[0], dir, "--child", modes[k], ts, rs, (char *)NULL);
                _exit(127);
            }
            int st;
            waitpid(pid, &st, 0);
        }
        printf("]}");
    }
    printf("\n]}\n");
    return 0;
}
