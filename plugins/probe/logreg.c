/* probe — fitting linear probes.
 *
 * Logistic regression minimises scikit-learn's objective exactly,
 *     0.5 ||W||^2 + C * sum_i loss_i      (intercept not penalised),
 * binary (sigmoid, one weight row) or multinomial (softmax, one row per class), by
 * L-BFGS (memory 10, backtracking Armijo line search) on the objective divided by C·n,
 * which has the same minimiser and a gradient scale independent of n. The products
 * with the feature matrix go through the host's sgemm; the optimiser runs in double.
 * Ridge regression solves (Z^T Z + lambda I) w = Z^T (y - mean y) by Cholesky.
 * The difference of means ("mass-mean") probe is mu_1 - mu_0 in raw activation space,
 * thresholded halfway between the class means. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe_impl.h"

/* sgemm without the host (numerics only need a plain product; the plugin passes the
 * host's through pr_set_sgemm so the heavy products run on BLAS). */
static pr_sgemm_fn g_sgemm;
void pr_set_sgemm(pr_sgemm_fn f) { g_sgemm = f; }

/* The logistic loss needs only thin products (N or M = number of classes). BLAS threads
 * buy nothing there and, on a loaded machine, cost more than the product itself (waking
 * and spinning), so these two shapes run here, single-threaded, in a form the compiler
 * vectorises: rows·rows dot products with 8 float lanes, and row updates accumulated in
 * double. */
enum { THIN = 16 };

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

typedef float pr_v8 __attribute__((vector_size(32)));

/* C[M, N] = A B^T, N small: four rows of A at a time against each row of B */
HOT static void thin_abt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    const int K8 = K & ~7;
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        const float *a0 = A + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (int j = 0; j < N; j++) {
            const float *b = B + (size_t)j * ldb;
            pr_v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, vb, v;
            for (int k = 0; k < K8; k += 8) {
                memcpy(&vb, b + k, sizeof vb);
                memcpy(&v, a0 + k, sizeof v);
                s0 += v * vb;
                memcpy(&v, a1 + k, sizeof v);
                s1 += v * vb;
                memcpy(&v, a2 + k, sizeof v);
                s2 += v * vb;
                memcpy(&v, a3 + k, sizeof v);
                s3 += v * vb;
            }
            double t[4] = {0, 0, 0, 0};
            for (int l = 0; l < 8; l++) {
                t[0] += s0[l];
                t[1] += s1[l];
                t[2] += s2[l];
                t[3] += s3[l];
            }
            for (int k = K8; k < K; k++) {
                t[0] += (double)a0[k] * b[k];
                t[1] += (double)a1[k] * b[k];
                t[2] += (double)a2[k] * b[k];
                t[3] += (double)a3[k] * b[k];
            }
            for (int r = 0; r < 4; r++)
                C[(size_t)(i + r) * ldc + j] = (float)t[r];
        }
    }
    for (; i < M; i++) {
        const float *a = A + (size_t)i * lda;
        for (int j = 0; j < N; j++) {
            const float *b = B + (size_t)j * ldb;
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)a[k] * b[k];
            C[(size_t)i * ldc + j] = (float)s;
        }
    }
}

/* C[M, N] = A^T B with A [K, M], B [K, N], M small: float partial sums over blocks of
 * 256 rows (vectorised axpy), the blocks added in double */
HOT static int thin_atb(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    double *acc = calloc((size_t)M * N, sizeof(double));
    float *part = malloc(sizeof(float) * (size_t)M * N);
    if (!acc || !part) {
        free(acc);
        free(part);
        return -1;
    }
    for (int k0 = 0; k0 < K; k0 += 256) {
        int k1 = k0 + 256 < K ? k0 + 256 : K;
        memset(part, 0, sizeof(float) * (size_t)M * N);
        const int N8 = N & ~7;
        for (int k = k0; k < k1; k++) {
            const float *a = A + (size_t)k * lda, *b = B + (size_t)k * ldb;
            for (int i = 0; i < M; i++) {
                const float ai = a[i];
                if (ai == 0)
                    continue;
                float *c = part + (size_t)i * N;
                pr_v8 va = {ai, ai, ai, ai, ai, ai, ai, ai}, vb, vc;
                for (int j = 0; j < N8; j += 8) {
                    memcpy(&vb, b + j, sizeof vb);
                    memcpy(&vc, c + j, sizeof vc);
                    vc += va * vb;
                    memcpy(c + j, &vc, sizeof vc);
                }
                for (int j = N8; j < N; j++)
                    c[j] += ai * b[j];
            }
        }
        for (size_t q = 0; q < (size_t)M * N; q++)
            acc[q] += part[q];
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = (float)acc[(size_t)i * N + j];
    free(acc);
    free(part);
    return 0;
}

/* The thin products split over plain threads (created per call and joined: a waiting
 * thread sleeps instead of spinning, so a busy machine loses nothing), one per ~1M
 * multiply-adds, at most the online CPUs (8 at most, LOUPE_THREADS caps it). */
typedef struct thin_job {
    int ta, M, N, K, lda, ldb, ldc, rc;
    const float *A, *B;
    float *C;
} thin_job;

static void *thin_worker(void *p)
{
    thin_job *j = p;
    if (!j->ta)
        thin_abt(j->M, j->N, j->K, j->A, j->lda, j->B, j->ldb, j->C, j->ldc);
    else
        j->rc = thin_atb(j->M, j->N, j->K, j->A, j->lda, j->B, j->ldb, j->C, j->ldc);
    return NULL;
}

static int thin_threads(double macs)
{
    static int ncpu;
    if (!ncpu) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        ncpu = c < 1 ? 1 : c > 8 ? 8 : (int)c;
        const char *e = getenv("LOUPE_THREADS");
        if (e && atoi(e) > 0 && atoi(e) < ncpu)
            ncpu = atoi(e);
    }
    int n = (int)(macs / 1e6);
    return n < 1 ? 1 : n > ncpu ? ncpu : n;
}

/* 0, or -1 when the caller should fall back */
static int thin_parallel(int ta, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                         int ldc)
{
    enum { MAXT = 8 };
    int T = thin_threads((double)M * N * K);
    if (T == 1) {
        if (!ta) {
            thin_abt(M, N, K, A, lda, B, ldb, C, ldc);
            return 0;
        }
        return thin_atb(M, N, K, A, lda, B, ldb, C, ldc);
    }
    thin_job job[MAXT];
    pthread_t tid[MAXT];
    int started[MAXT] = {0};
    float *part = ta ? malloc(sizeof(float) * (size_t)T * M * N) : NULL;
    if (ta && !part)
        return -1;
    int span = ta ? K : M;
    for (int t = 0; t < T; t++) {
        int r0 = (int)((long)span * t / T), r1 = (int)((long)span * (t + 1) / T);
        job[t] = ta ? (thin_job){1, M, N, r1 - r0, lda, ldb, N, 0, A + (size_t)r0 * lda, B + (size_t)r0 * ldb,
                                 part + (size_t)t * M * N}
                    : (thin_job){0, r1 - r0, N, K, lda, ldb, ldc, 0, A + (size_t)r0 * lda, B, C + (size_t)r0 * ldc};
        if (t > 0)
            started[t] = pthread_create(&tid[t], NULL, thin_worker, &job[t]) == 0;
    }
    thin_worker(&job[0]);
    int rc = job[0].rc;
    for (int t = 1; t < T; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            thin_worker(&job[t]);
        rc |= job[t].rc;
    }
    if (ta && !rc)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double sum = 0;
                for (int t = 0; t < T; t++)
                    sum += part[(size_t)t * M * N + (size_t)i * N + j];
                C[(size_t)i * ldc + j] = (float)sum;
            }
    free(part);
    return rc ? -1 : 0;
}

void pr_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    if (!ta && tb && N <= THIN && !thin_parallel(0, M, N, K, A, lda, B, ldb, C, ldc))
        return;
    if (ta && !tb && M <= THIN && !thin_parallel(1, M, N, K, A, lda, B, ldb, C, ldc))
        return;
    if (g_sgemm) {
        g_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            C[(size_t)i * ldc + j] = (float)s;
        }
}

pr_fit_opts pr_fit_opts_default(void)
{
    return (pr_fit_opts){.kind = PR_LOGISTIC, .C = 1.0, .lambda = 1.0, .normalize = 1, .max_iter = 1000, .tol = 1e-6};
}

void pr_probe_free(pr_probe *p)
{
    free(p->mu);
    free(p->sd);
    free(p->W);
    free(p->b);
    memset(p, 0, sizeof *p);
}

/* ---- L-BFGS ---- */

enum { MEM = 10 };

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

int pr_lbfgs(pr_objective f, void *user, double *x, int n, int max_iter, double tol, int *converged, double *fval)
{
    double *g = malloc(sizeof(double) * (size_t)n * (5 + 2 * MEM));
    if (!g)
        return -1;
    double *d = g + n, *xn = d + n, *gn = xn + n, *q = gn + n, *S = q + n, *Y = S + (size_t)n * MEM;
    double rho[MEM], alpha[MEM];
    int head = 0, m = 0, it;
    double fx = f(x, g, user);
    *converged = 0;
    for (it = 0; it < max_iter; it++) {
        double gmax = 0;
        for (int i = 0; i < n; i++)
            gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
        if (gmax <= tol) {
            *converged = 1;
            break;
        }
        /* two-loop recursion: d = -H g */
        memcpy(q, g, sizeof(double) * (size_t)n);
        for (int j = 0; j < m; j++) {
            int k = (head - 1 - j + MEM) % MEM;
            alpha[k] = rho[k] * dot(S + (size_t)k * n, q, n);
            for (int i = 0; i < n; i++)
                q[i] -= alpha[k] * Y[(size_t)k * n + i];
        }
        double gamma = 1;
        if (m) {
            int k = (head - 1 + MEM) % MEM;
            gamma = dot(S + (size_t)k * n, Y + (size_t)k * n, n) / dot(Y + (size_t)k * n, Y + (size_t)k * n, n);
        } else {
            double gn2 = sqrt(dot(g, g, n));
            gamma = gn2 > 0 ? 1.0 / gn2 : 1;
            if (gamma > 1)
                gamma = 1;
        }
        for (int i = 0; i < n; i++)
            q[i] *= gamma;
        for (int j = m - 1; j >= 0; j--) {
            int k = (head - 1 - j + MEM) % MEM;
            double beta = rho[k] * dot(Y + (size_t)k * n, q, n);
            for (int i = 0; i < n; i++)
                q[i] += (alpha[k] - beta) * S[(size_t)k * n + i];
        }
        for (int i = 0; i < n; i++)
            d[i] = -q[i];
        double slope = dot(g, d, n);
        if (slope >= 0) { /* not a descent direction: restart with steepest descent */
            m = 0;
            for (int i = 0; i < n; i++)
                d[i] = -g[i];
            slope = dot(g, d, n);
        }
        double step = 1, fn = 0;
        int ok = 0;
        for (int ls = 0; ls < 40; ls++) {
            for (int i = 0; i < n; i++)
                xn[i] = x[i] + step * d[i];
            fn = f(xn, gn, user);
            if (fn <= fx + 1e-4 * step * slope) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok) /* no decrease possible at float precision: as good as it gets */
            break;
        double *s = S + (size_t)head * n, *y = Y + (size_t)head * n;
        for (int i = 0; i < n; i++) {
            s[i] = xn[i] - x[i];
            y[i] = gn[i] - g[i];
        }
        double sy = dot(s, y, n);
        if (sy > 1e-12 * sqrt(dot(s, s, n) * dot(y, y, n))) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % MEM;
            if (m < MEM)
                m++;
        }
        double rel = fabs(fx - fn) / (fabs(fx) > 1 ? fabs(fx) : 1);
        memcpy(x, xn, sizeof(double) * (size_t)n);
        memcpy(g, gn, sizeof(double) * (size_t)n);
        fx = fn;
        if (rel < 1e-14 && it > 5) {
            *converged = 1;
            it++;
            break;
        }
    }
    if (fval)
        *fval = fx;
    free(g);
    return it;
}

/* ---- logistic objective ---- */

typedef struct logit_prob {
    const float *Z;  /* [n, d] normalised rows */
    const int *y;    /* [n] class */
    int n, d, k;     /* k = 1: binary (sigmoid); else softmax over k classes */
    double reg;      /* 1 / (C n) */
    float *W;        /* [k, d] float copy of θ */
    float *S;        /* [n, k] scores */
    float *R;        /* [n, k] residuals */
    float *G;        /* [k, d] */
} logit_prob;

static double logit_f(const double *th, double *grad, void *user)
{
    logit_prob *p = user;
    const int n = p->n, d = p->d, k = p->k;
    const double *bias = th + (size_t)k * d;
    for (size_t i = 0; i < (size_t)k * d; i++)
        p->W[i] = (float)th[i];
    pr_gemm(0, 1, n, k, d, p->Z, d, p->W, d, p->S, k); /* S = Z W^T */
    double loss = 0;
    double gb[64] = {0};
    double *gbias = k <= 64 ? gb : calloc((size_t)k, sizeof(double));
    for (int i = 0; i < n; i++) {
        float *s = p->S + (size_t)i * k, *r = p->R + (size_t)i * k;
        if (k == 1) {
            double z = s[0] + bias[0], yy = p->y[i];
            /* log(1 + e^z) - y z, stably */
            loss += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - yy * z;
            double sg = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
            r[0] = (float)((sg - yy) / n);
            gbias[0] += (sg - yy) / n;
        } else {
            double mx = -INFINITY;
            for (int c = 0; c < k; c++)
                mx = s[c] + bias[c] > mx ? s[c] + bias[c] : mx;
            double se = 0;
            for (int c = 0; c < k; c++) /* r holds e^(z - max) for now */
                se += (r[c] = (float)exp(s[c] + bias[c] - mx));
            loss += mx + log(se) - (s[p->y[i]] + bias[p->y[i]]);
            for (int c = 0; c < k; c++) {
                double pc = r[c] / se - (c == p->y[i]);
                r[c] = (float)(pc / n);
                gbias[c] += pc / n;
            }
        }
    }
    pr_gemm(1, 0, k, d, n, p->R, k, p->Z, d, p->G, d); /* G = R^T Z */
    double reg = 0;
    for (size_t i = 0; i < (size_t)k * d; i++) {
        grad[i] = p->G[i] + p->reg * th[i];
        reg += th[i] * th[i];
    }
    for (int c = 0; c < k; c++)
        grad[(size_t)k * d + c] = gbias[c];
    if (gbias != gb)
        free(gbias);
    return loss / n + 0.5 * p->reg * reg;
}

/* ---- Cholesky ---- */

int pr_cholesky_solve(double *A, double *B, int n, int m)
{
    for (int j = 0; j < n; j++) {
        double s = A[(size_t)j * n + j];
        for (int p = 0; p < j; p++)
            s -= A[(size_t)j * n + p] * A[(size_t)j * n + p];
        if (!(s > 0))
            return LP_EINVAL;
        double ljj = sqrt(s);
        A[(size_t)j * n + j] = ljj;
        for (int i = j + 1; i < n; i++) {
            double t = A[(size_t)i * n + j];
            const double *ai = A + (size_t)i * n, *aj = A + (size_t)j * n;
            for (int p = 0; p < j; p++)
                t -= ai[p] * aj[p];
            A[(size_t)i * n + j] = t / ljj;
        }
    }
    for (int c = 0; c < m; c++) {
        for (int i = 0; i < n; i++) {
            double t = B[(size_t)i * m + c];
            for (int p = 0; p < i; p++)
                t -= A[(size_t)i * n + p] * B[(size_t)p * m + c];
            B[(size_t)i * m + c] = t / A[(size_t)i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) {
            double t = B[(size_t)i * m + c];
            for (int p = i + 1; p < n; p++)
                t -= A[(size_t)p * n + i] * B[(size_t)p * m + c];
            B[(size_t)i * m + c] = t / A[(size_t)i * n + i];
        }
    }
    return 0;
}

/* ---- fitting ---- */

int pr_fit(pr_probe *p, const pr_fit_opts *o, const float *X, int d, const double *y, const int *rows, int n,
           int n_classes)
{
    memset(p, 0, sizeof *p);
    if (n < 2 || d < 1)
        return LP_EINVAL;
    p->kind = o->kind;
    p->d = d;
    p->n_classes = o->kind == PR_RIDGE ? 0 : n_classes;
    p->k = o->kind == PR_LOGISTIC && n_classes > 2 ? n_classes : 1;
    if (o->kind == PR_MEAN_DIFF && n_classes != 2)
        return LP_EINVAL;
    const int k = p->k;
    p->mu = calloc((size_t)d, sizeof(float));
    p->sd = malloc(sizeof(float) * (size_t)d);
    p->W = calloc((size_t)k * d, sizeof(float));
    p->b = calloc((size_t)k, sizeof(float));
    float *Z = malloc(sizeof(float) * (size_t)n * d);
    double *acc = calloc(2 * (size_t)d, sizeof(double));
    if (!p->mu || !p->sd || !p->W || !p->b || !Z || !acc) {
        free(Z);
        free(acc);
        pr_probe_free(p);
        return LP_ENOMEM;
    }
    for (int j = 0; j < d; j++)
        p->sd[j] = 1;
    int normalize = o->normalize && o->kind != PR_MEAN_DIFF;
    if (normalize) { /* population mean and std of the training rows (StandardScaler) */
        for (int i = 0; i < n; i++) {
            const float *x = X + (size_t)rows[i] * d;
            for (int j = 0; j < d; j++)
                acc[j] += x[j];
        }
        for (int j = 0; j < d; j++)
            acc[j] /= n;
        for (int i = 0; i < n; i++) {
            const float *x = X + (size_t)rows[i] * d;
            for (int j = 0; j < d; j++)
                acc[d + j] += (x[j] - acc[j]) * (x[j] - acc[j]);
        }
        for (int j = 0; j < d; j++) {
            double sd = sqrt(acc[d + j] / n);
            p->mu[j] = (float)acc[j];
            p->sd[j] = sd > 1e-12 ? (float)sd : 1.0f;
        }
    }
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)rows[i] * d;
        float *z = Z + (size_t)i * d;
        for (int j = 0; j < d; j++)
            z[j] = (x[j] - p->mu[j]) / p->sd[j];
    }
    int rc = 0;
    if (o->kind == PR_MEAN_DIFF) {
        double *m0 = acc, *m1 = acc + d;
        memset(acc, 0, sizeof(double) * 2 * (size_t)d);
        int c0 = 0, c1 = 0;
        for (int i = 0; i < n; i++) {
            int one = y[rows[i]] > 0.5;
            double *m = one ? m1 : m0;
            (one ? c1++ : c0++);
            for (int j = 0; j < d; j++)
                m[j] += Z[(size_t)i * d + j];
        }
        if (!c0 || !c1)
            rc = LP_EINVAL;
        else {
            double bb = 0;
            for (int j = 0; j < d; j++) {
                m0[j] /= c0;
                m1[j] /= c1;
                p->W[j] = (float)(m1[j] - m0[j]);
                bb -= (m1[j] - m0[j]) * 0.5 * (m1[j] + m0[j]);
            }
            p->b[0] = (float)bb;
            p->converged = 1;
        }
    } else if (o->kind == PR_RIDGE) {
        const int D = d;
        double ym = 0;
        for (int i = 0; i < n; i++)
            ym += y[rows[i]];
        ym /= n;
        float *G = malloc(sizeof(float) * (size_t)D * D);
        double *A = malloc(sizeof(double) * (size_t)D * D), *B = calloc((size_t)D, sizeof(double));
        double *zm = calloc((size_t)D, sizeof(double));
        if (!G || !A || !B || !zm)
            rc = LP_ENOMEM;
        else {
            /* centre Z (it is already when normalised) */
            for (int i = 0; i < n; i++)
                for (int j = 0; j < d; j++)
                    zm[j] += Z[(size_t)i * d + j];
            for (int j = 0; j < d; j++)
                zm[j] /= n;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < d; j++)
                    Z[(size_t)i * d + j] -= (float)zm[j];
            pr_gemm(1, 0, D, D, n, Z, d, Z, d, G, D);
            for (size_t i = 0; i < (size_t)D * D; i++)
                A[i] = G[i];
            for (int j = 0; j < D; j++)
                A[(size_t)j * D + j] += o->lambda > 0 ? o->lambda : 1e-9;
            for (int i = 0; i < n; i++) {
                double r = y[rows[i]] - ym;
                for (int j = 0; j < d; j++)
                    B[j] += Z[(size_t)i * d + j] * r;
            }
            rc = pr_cholesky_solve(A, B, D, 1);
            double bb = ym;
            for (int j = 0; j < d; j++) {
                p->W[j] = (float)B[j];
                bb -= B[j] * zm[j];
            }
            p->b[0] = (float)bb;
            p->converged = 1;
        }
        free(G);
        free(A);
        free(B);
        free(zm);
    } else {
        int nt = k * d + k;
        double *th = calloc((size_t)nt, sizeof(double));
        int *yi = malloc(sizeof(int) * (size_t)n);
        logit_prob lp = {.Z = Z, .y = yi, .n = n, .d = d, .k = k, .reg = 1.0 / (o->C * n)};
        lp.W = malloc(sizeof(float) * (size_t)k * d);
        lp.G = malloc(sizeof(float) * (size_t)k * d);
        lp.S = malloc(sizeof(float) * (size_t)n * k);
        lp.R = malloc(sizeof(float) * (size_t)n * k);
        if (!th || !yi || !lp.W || !lp.G || !lp.S || !lp.R || !(o->C > 0))
            rc = !(o->C > 0) ? LP_EINVAL : LP_ENOMEM;
        else {
            for (int i = 0; i < n; i++)
                yi[i] = (int)y[rows[i]];
            if (k == 1) { /* start at the log-odds of the base rate */
                double pos = 0;
                for (int i = 0; i < n; i++)
                    pos += yi[i];
                double pr = (pos + 0.5) / (n + 1.0);
                th[d] = log(pr / (1 - pr));
            }
            p->iters = pr_lbfgs(logit_f, &lp, th, nt, o->max_iter, o->tol, &p->converged, &p->loss);
            if (p->iters < 0)
                rc = LP_ENOMEM;
            for (size_t i = 0; i < (size_t)k * d; i++)
                p->W[i] = (float)th[i];
            for (int c = 0; c < k; c++)
                p->b[c] = (float)th[(size_t)k * d + c];
        }
        free(th);
        free(yi);
        free(lp.W);
        free(lp.G);
        free(lp.S);
        free(lp.R);
    }
    free(Z);
    free(acc);
    if (rc)
        pr_probe_free(p);
    return rc;
}

void pr_scores(const pr_probe *p, const float *X, const int *rows, int n, float *out)
{
    const int d = p->d, k = p->k;
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)(rows ? rows[i] : i) * d;
        for (int c = 0; c < k; c++) {
            const float *w = p->W + (size_t)c * d;
            double s = p->b[c];
            for (int j = 0; j < d; j++)
                s += (double)w[j] * ((x[j] - p->mu[j]) / p->sd[j]);
            out[(size_t)i * k + c] = (float)s;
        }
    }
}

double pr_predict_row(const pr_probe *p, const float *s)
{
    if (p->kind == PR_RIDGE)
        return s[0];
    if (p->k == 1)
        return s[0] > 0 ? 1 : 0;
    int b = 0;
    for (int c = 1; c < p->k; c++)
        if (s[c] > s[b])
            b = c;
    return b;
}

void pr_direction(const pr_probe *p, int c, float *dir)
{
    const float *w = p->W + (size_t)(p->k == 1 ? 0 : c) * p->d;
    double nn = 0;
    for (int j = 0; j < p->d; j++) {
        dir[j] = w[j] / p->sd[j];
        nn += (double)dir[j] * dir[j];
    }
    nn = nn > 0 ? 1 / sqrt(nn) : 0;
    for (int j = 0; j < p->d; j++)
        dir[j] = (float)(dir[j] * nn);
}
