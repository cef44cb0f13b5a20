/* sae_tool — the SAE file code without a model, for interoperability checks:
 *   sae_tool encode SAE X.npy OUT.npy     f32 [n, d_in] → feature activations [n, d_sae]
 *   sae_tool decode SAE F.npy OUT.npy     [n, d_sae] → reconstruction [n, d_in]
 *   sae_tool resave SAE OUT_DIR           load (any supported layout) and save as SAELens 6.x
 *   sae_tool random D_IN D_SAE ARCH K HOOK OUT_DIR   a random SAE (for benchmarks)
 *   sae_tool train SAE X.npy STEPS LR L1 AUX DEAD_TOKENS OUT_DIR [BANDWIDTH]
 *                                         STEPS Adam steps on the batch X from SAE's weights
 *                                         (the trainer's arithmetic, for train_check.py)
 * (sae_lens_roundtrip.py drives it against the sae_lens package.) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sae_impl.h"

static void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

static float *npy_read(const char *path, int *rows, int *cols)
{
    size_t len;
    char *b = sae_slurp(path, &len);
    if (!b || len < 12 || memcmp(b, "\x93NUMPY", 6))
        return NULL;
    size_t hl = (unsigned char)b[6] == 1 ? (size_t)((unsigned char)b[8] | (unsigned char)b[9] << 8) : 0, ho = 10;
    if (!hl || !strstr(b + ho, "'<f4'") || strstr(b + ho, "True")) {
        free(b);
        return NULL;
    }
    const char *sh = strstr(b + ho, "'shape': (");
    long long r = 0, c = 1;
    if (!sh || sscanf(sh + 10, "%lld, %lld", &r, &c) < 1) {
        free(b);
        return NULL;
    }
    float *o = malloc(sizeof(float) * (size_t)(r * c));
    memcpy(o, b + ho + hl, sizeof(float) * (size_t)(r * c));
    free(b);
    *rows = (int)r;
    *cols = (int)c;
    return o;
}

static int npy_write(const char *path, const float *x, int r, int c)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", r, c);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    unsigned short hl = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(x, sizeof(float), (size_t)r * c, f);
    return fclose(f) != 0;
}

int main(int argc, char **argv)
{
    sae_sgemm = blas_sgemm;
    if (argc < 4) {
        fprintf(stderr, "usage: sae_tool encode|decode SAE IN.npy OUT.npy | resave SAE OUT_DIR\n");
        return 2;
    }
    sae s;
    char err[SAE_ERR_MAX];
    if (!strcmp(argv[1], "random") && argc >= 8) {
        sae_arch a = !strcmp(argv[4], "topk") ? SAE_TOPK : !strcmp(argv[4], "jumprelu") ? SAE_JUMPRELU : SAE_STANDARD;
        if (sae_alloc(&s, atoi(argv[2]), atoi(argv[3]), a, err)) {
            fprintf(stderr, "sae_tool: %s\n", err);
            return 1;
        }
        s.k = atoi(argv[5]);
        snprintf(s.hook_name, sizeof s.hook_name, "%s", argv[6]);
        sae_rng r;
        sae_rng_seed(&r, 1);
        size_t n = (size_t)s.d_in * s.d_sae;
        float sc = 1.0f / sqrtf((float)s.d_in);
        for (size_t i = 0; i < n; i++)
            s.W_enc[i] = (float)sae_rng_normal(&r) * sc, s.W_dec[i] = (float)sae_rng_normal(&r) * sc;
        for (int i = 0; i < s.d_sae; i++)
            s.b_enc[i] = -0.5f;
        int rc = sae_save(&s, argv[7], err);
        if (rc)
            fprintf(stderr, "sae_tool: %s\n", err);
        sae_free(&s);
        return rc ? 1 : 0;
    }
    if (sae_load(argv[2], &s, err)) {
        fprintf(stderr, "sae_tool: %s\n", err);
        return 2;
    }
    int rc = 0;
    if (!strcmp(argv[1], "train") && argc >= 10) {
        int r, c;
        float *x = npy_read(argv[3], &r, &c);
        train_cfg tc;
        train_cfg_default(&tc);
        tc.arch = s.arch;
        if (argc >= 11)
            tc.bandwidth = atof(argv[10]);
        tc.d_sae = s.d_sae;
        tc.k = s.k;
        tc.batch = r;
        tc.steps = atoi(argv[4]);
        tc.lr = atof(argv[5]);
        tc.l1_coeff = atof(argv[6]);
        tc.aux_coeff = atof(argv[7]);
        tc.dead_tokens = atoll(argv[8]);
        tc.apply_b_dec_to_input = s.apply_b_dec_to_input;
        trainer *t = NULL;
        if (!x || c != s.d_in || trainer_new(&tc, s.d_in, NULL, &t, err) || trainer_import(t, &s, err)) {
            fprintf(stderr, "sae_tool: train: %s\n", x ? err : "bad X.npy");
            rc = 2;
        } else {
            train_metrics m;
            for (int st = 0; st < tc.steps; st++) {
                trainer_do_step(t, x, &m);
                printf("step %d loss %.6f mse %.6f l1 %.6f aux %.6f l0 %.3f\n", st + 1, m.loss, m.mse, m.l1, m.aux,
                       m.l0);
            }
            sae o;
            trainer_export(t, &o, err);
            o.k = s.k;
            rc = sae_save(&o, argv[9], err) ? 1 : 0;
            sae_free(&o);
        }
        trainer_free(t);
        free(x);
    } else if (!strcmp(argv[1], "resave")) {
        if (sae_save(&s, argv[3], err)) {
            fprintf(stderr, "sae_tool: %s\n", err);
            rc = 1;
        }
    } else if (argc >= 5 && (!strcmp(argv[1], "encode") || !strcmp(argv[1], "decode"))) {
        int r, c;
        float *x = npy_read(argv[3], &r, &c);
        int enc = !strcmp(argv[1], "encode");
        if (!x || c != (enc ? s.d_in : s.d_sae)) {
            fprintf(stderr, "sae_tool: %s: need f32 [n, %d]\n", argv[3], enc ? s.d_in : s.d_sae);
            rc = 2;
        } else {
            int oc = enc ? s.d_sae : s.d_in;
            float *o = malloc(sizeof(float) * (size_t)r * oc);
            if (enc)
                sae_encode(&s, x, r, o);
            else
                sae_decode(&s, x, r, o);
            rc = npy_write(argv[4], o, r, oc);
            free(o);
        }
        free(x);
    } else {
        fprintf(stderr, "sae_tool: unknown command '%s'\n", argv[1]);
        rc = 2;
    }
    sae_free(&s);
    return rc;
}
