/* probe — LEACE, least-squares concept erasure (Belrose et al. 2023), in closed form.
 *
 * With whitening W = Σ^{-1/2} and A = Σ_xz (the cross-covariance of the activations with
 * the centred one-hot concept, r = n_classes - 1 columns), the eraser is
 *     x' = x - W^+ P_{WA} W (x - μ)
 * and, with P_{WA} = WA (A^T W W A)^+ A^T W, this is the oblique projection
 *     x' = x - A M A^T Σ^{-1} (x - μ),    M = (A^T Σ^{-1} A)^{-1}.
 * So no eigendecomposition is needed: one Cholesky of Σ (a tiny ridge, 1e-6 of its mean
 * variance, keeps it definite when the activations have null directions) and an r×r
 * solve. After erasure Cov(x', z) = A - A M (A^T Σ^{-1} A) = 0 exactly, whatever ridge
 * was used: no linear classifier can beat the constant one on the training
 * distribution. Stored as low-rank factors: x' = x - A^T B (x - μ) with A, B [r, d]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe_impl.h"

void pr_eraser_free(pr_eraser *e)
{
    free(e->mu);
    free(e->A);
    free(e->B);
    memset(e, 0, sizeof *e);
}

int pr_leace_fit(pr_eraser *e, const float *X, int d, const double *y, const int *rows, int n, int n_classes)
{
    memset(e, 0, sizeof *e);
    if (n_classes < 2 || n < 2)
        return LP_EINVAL;
    const int r = n_classes - 1;
    e->d = d;
    e->r = r;
    e->mu = calloc((size_t)d, sizeof(float));
    e->A = malloc(sizeof(float) * (size_t)r * d);
    e->B = malloc(sizeof(float) * (size_t)r * d);
    float *Xc = malloc(sizeof(float) * (size_t)n * d), *S = malloc(sizeof(float) * (size_t)d * d);
    double *mu = calloc((size_t)d, sizeof(double)), *Sig = malloc(sizeof(double) * (size_t)d * d);
    double *SiA = malloc(sizeof(double) * (size_t)d * r), *Ad = calloc((size_t)d * r, sizeof(double));
    double *Mi = malloc(sizeof(double) * (size_t)r * r), *Bt = malloc(sizeof(double) * (size_t)r * d);
    double *zm = calloc((size_t)r, sizeof(double));
    int rc = 0;
    if (!e->mu || !e->A || !e->B || !Xc || !S || !mu || !Sig || !SiA || !Ad || !Mi || !Bt || !zm) {
        rc = LP_ENOMEM;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)rows[i] * d;
        for (int j = 0; j < d; j++)
            mu[j] += x[j];
        int c = (int)y[rows[i]];
        if (c >= 1 && c <= r)
            zm[c - 1] += 1;
    }
    for (int j = 0; j < d; j++) {
        mu[j] /= n;
        e->mu[j] = (float)mu[j];
    }
    for (int c = 0; c < r; c++)
        zm[c] /= n;
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)rows[i] * d;
        float *xc = Xc + (size_t)i * d;
        int c = (int)y[rows[i]];
        for (int j = 0; j < d; j++)
            xc[j] = (float)(x[j] - mu[j]);
        /* A[:, c'] += (x - mu) (z_c' - mean z_c') */
        for (int q = 0; q < r; q++) {
            double zc = (c == q + 1) - zm[q];
            if (zc != 0)
                for (int j = 0; j < d; j++)
                    Ad[(size_t)j * r + q] += xc[j] * zc;
        }
    }
    pr_gemm(1, 0, d, d, n, Xc, d, Xc, d, S, d);
    double tr = 0;
    for (size_t i = 0; i < (size_t)d * d; i++)
        Sig[i] = S[i] / (double)n;
    for (int j = 0; j < d; j++)
        tr += Sig[(size_t)j * d + j];
    double ridge = 1e-6 * (tr > 0 ? tr / d : 1);
    for (int j = 0; j < d; j++)
        Sig[(size_t)j * d + j] += ridge;
    for (size_t i = 0; i < (size_t)d * r; i++) {
        Ad[i] /= n;
        SiA[i] = Ad[i];
    }
    if ((rc = pr_cholesky_solve(Sig, SiA, d, r))) /* SiA = Σ^-1 A  [d, r] */
        goto out;
    /* Mi = A^T Σ^-1 A [r, r]; Bt = (Σ^-1 A)^T [r, d]; solve Mi B = Bt */
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double s = 0;
            for (int j = 0; j < d; j++)
                s += Ad[(size_t)j * r + a] * SiA[(size_t)j * r + b];
            Mi[a * r + b] = s;
        }
    for (int a = 0; a < r; a++)
        for (int j = 0; j < d; j++)
            Bt[(size_t)a * d + j] = SiA[(size_t)j * r + a];
    if ((rc = pr_cholesky_solve(Mi, Bt, r, d)))
        goto out;
    for (int a = 0; a < r; a++)
        for (int j = 0; j < d; j++) {
            e->A[(size_t)a * d + j] = (float)Ad[(size_t)j * r + a];
            e->B[(size_t)a * d + j] = (float)Bt[(size_t)a * d + j];
        }
out:
    free(Xc);
    free(S);
    free(mu);
    free(Sig);
    free(SiA);
    free(Ad);
    free(Mi);
    free(Bt);
    free(zm);
    if (rc)
        pr_eraser_free(e);
    return rc;
}

void pr_leace_apply(const pr_eraser *e, float *X, int n)
{
    const int d = e->d, r = e->r;
    double c[64];
    double *cc = r <= 64 ? c : malloc(sizeof(double) * (size_t)r);
    if (!cc)
        return;
    for (int i = 0; i < n; i++) {
        float *x = X + (size_t)i * d;
        for (int a = 0; a < r; a++) {
            const float *b = e->B + (size_t)a * d;
            double s = 0;
            for (int j = 0; j < d; j++)
                s += (double)b[j] * (x[j] - e->mu[j]);
            cc[a] = s;
        }
        for (int a = 0; a < r; a++) {
            const float *A = e->A + (size_t)a * d;
            for (int j = 0; j < d; j++)
                x[j] -= (float)(cc[a] * A[j]);
        }
    }
    if (cc != c)
        free(cc);
}
