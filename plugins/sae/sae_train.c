/* sae — training ReLU (L1 weighted by decoder norms) and TopK (with the auxiliary loss for
 * dead latents) SAEs with Adam.
 *
 * Per step on a batch x [B, d_in]:
 *   xc = x − b_dec (apply_b_dec_to_input), pre = xc·W_enc + b_enc   (the one dense matmul)
 *   standard: f = relu(pre);  topk: the k largest of pre, relu'd;
 *   jumprelu: f = pre·[pre > θ], θ = exp(log_threshold), loss + l0·mean_b Σ_i [pre > θ]; the
 *   threshold learns through SAELens' straight-through estimators (a rectangle kernel of
 *   width `bandwidth`: entries within bandwidth/2 of θ carry dL/dθ)
 *   x̂ = f·W_dec + b_dec, loss = mean_b |x̂ − x|² (+ l1·mean_b Σ_i f_i |W_dec,i|) (+ aux)
 * Everything after the encoder matmul uses only the active latents: the decoder forward,
 * dL/df (a dot product per active entry), dW_dec and the masked dW_enc (one row update per
 * active entry, grouped by latent so that two threads own disjoint latents). A chunk where
 * more than 3% of latents are active (early ReLU training) takes the dense path (sgemm).
 * Adam then updates every parameter (moments decay even where the gradient is zero), fused
 * with zeroing the touched gradient rows and, for TopK, renormalising decoder rows.
 *
 * Internally the encoder is kept transposed (W_encT [d_sae, d_in]) so that a latent's
 * encoder and decoder rows are both contiguous. Everything is deterministic for a given
 * seed and thread count: a run resumed from a checkpoint matches an uninterrupted one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sae_impl.h"

#define CHUNK 256

/* Hot loops get AVX-512 / AVX2 clones chosen at load time (as core/src/kernels.c does). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

/* Σ a·b with 16 partial sums, so the loop vectorises without -ffast-math. */
static inline float vdot(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int d = 0;
    for (; d + 16 <= n; d += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[d + l] * b[d + l];
    float s = 0;
    for (; d < n; d++)
        s += a[d] * b[d];
    for (int l = 0; l < 16; l++)
        s += acc[l];
    return s;
}
#define DENSE_FRAC 0.03

void train_cfg_default(train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->arch = SAE_STANDARD;
    c->d_sae = 1024;
    c->k = 32;
    c->batch = 4096;
    c->steps = 1000;
    c->lr = 4e-4;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->lr_warmup_steps = 0;
    c->lr_decay_steps = 0;
    c->l1_coeff = 5.0;
    c->l1_warmup_steps = 0;
    c->aux_coeff = 1.0 / 32;
    c->dead_tokens = 10000000;
    c->dense_threshold = 0.1;
    c->seed = 42;
    c->init_norm = 0.1;
    c->bandwidth = 0.001;
    c->init_threshold = 0.001;
    c->apply_b_dec_to_input = 1;
    c->checkpoint_every = 0;
    c->log_every = 50;
}

typedef struct entry {
    int32_t row; /* batch row                              */
    int32_t aux; /* 1: from the auxiliary loss              */
    float f;     /* activation                              */
    float dpre;  /* dL/dpre                                 */
    float dth;   /* jumprelu: dL/dθ from this entry (near θ) */
} entry;

struct trainer {
    train_cfg c;
    int D, S;
    int batch_cap;
    /* parameters and Adam moments */
    float *W_encT, *W_dec, *b_enc, *b_dec; /* [S,D] [S,D] [S] [D] */
    float *mWe, *vWe, *mWd, *vWd, *mbe, *vbe, *mbd, *vbd;
    /* gradients */
    float *gWe, *gWd, *gbe, *gbd;
    float *log_thr, *thr, *mlt, *vlt, *glt; /* jumprelu: [S] each */
    float *dec_norm;     /* [S] |W_dec,i| */
    uint8_t *touched;    /* [S] */
    float *fsum;         /* [S] Σ_b f_bi this step */
    int64_t *last_fired; /* [S] tokens seen when latent i last fired */
    int64_t *fire_count; /* [S] firings since the last metrics */
    int64_t fire_tokens;
    int64_t step, tokens;
    /* per-step buffers */
    float *xc, *g, *gaux;     /* [B,D] */
    float *pre, *dP;          /* [CHUNK,S] */
    int32_t *row_n, *row_off; /* [CHUNK+1] */
    int32_t *lat;             /* entries' latent ids, parallel to ents */
    entry *ents;
    int64_t n_ents, cap_ents;
    int32_t *bucket; /* [S+1] */
    int32_t *order;  /* [cap] */
    float *sel_tmp;  /* [threads, S] */
    uint8_t *dead;   /* [S] */
    int n_dead;
    /* batch statistics */
    double mse_sum, l1_sum, aux_sum, nnz_sum, var_sum;
};

int64_t trainer_step(const trainer *t)
{
    return t->step;
}

int trainer_set_batch(trainer *t, int B)
{
    if (B < 1 || B > t->batch_cap)
        return SAE_EINVAL;
    t->c.batch = B;
    return 0;
}
const int64_t *trainer_last_fired(const trainer *t)
{
    return t->last_fired;
}

void trainer_free(trainer *t)
{
    if (!t)
        return;
    float *fl[] = {t->W_encT,   t->W_dec, t->b_enc, t->b_dec, t->mWe,  t->vWe, t->mWd, t->vWd,
                   t->mbe,      t->vbe,   t->mbd,   t->vbd,   t->gWe,  t->gWd, t->gbe, t->gbd,
                   t->dec_norm, t->fsum,  t->xc,    t->g,     t->gaux, t->pre, t->dP,  t->sel_tmp,
                   t->log_thr,  t->thr,   t->mlt,   t->vlt,   t->glt};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
        free(fl[i]);
    free(t->touched), free(t->last_fired), free(t->fire_count), free(t->row_n), free(t->row_off);
    free(t->lat), free(t->ents), free(t->bucket), free(t->order), free(t->dead);
    free(t);
}

static float *fz(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

int trainer_new(const train_cfg *cfg, int d_in, const float *data_mean, trainer **out, char *err)
{
    *out = NULL;
    if (cfg->d_sae < 1 || d_in < 1 || cfg->batch < 1)
        return sae_err(err, SAE_EINVAL, "d_sae, d_in and batch must be positive");
    if (cfg->arch != SAE_STANDARD && cfg->arch != SAE_TOPK && cfg->arch != SAE_JUMPRELU)
        return sae_err(err, SAE_EUNSUPPORTED, "training supports the standard (ReLU), topk and jumprelu architectures");
    if (cfg->arch == SAE_JUMPRELU && !(cfg->bandwidth > 0 && cfg->init_threshold > 0))
        return sae_err(err, SAE_EINVAL, "jumprelu needs bandwidth > 0 and init_threshold > 0");
    if (cfg->arch == SAE_TOPK && (cfg->k < 1 || cfg->k > cfg->d_sae))
        return sae_err(err, SAE_EINVAL, "k must be in 1..d_sae (got %d)", cfg->k);
    trainer *t = calloc(1, sizeof *t);
    if (!t)
        return sae_err(err, SAE_ENOMEM, "out of memory");
    t->c = *cfg;
    t->batch_cap = cfg->batch;
    int D = t->D = d_in, S = t->S = cfg->d_sae, B = cfg->batch;
    size_t SD = (size_t)S * D;
    t->W_encT = fz(SD), t->W_dec = fz(SD), t->b_enc = fz(S), t->b_dec = fz(D);
    t->mWe = fz(SD), t->vWe = fz(SD), t->mWd = fz(SD), t->vWd = fz(SD);
    t->mbe = fz(S), t->vbe = fz(S), t->mbd = fz(D), t->vbd = fz(D);
    t->gWe = fz(SD), t->gWd = fz(SD), t->gbe = fz(S), t->gbd = fz(D);
    t->dec_norm = fz(S), t->fsum = fz(S);
    t->log_thr = fz(S), t->thr = fz(S), t->mlt = fz(S), t->vlt = fz(S), t->glt = fz(S);
    t->touched = calloc((size_t)S, 1), t->dead = calloc((size_t)S, 1);
    t->last_fired = calloc((size_t)S, sizeof(int64_t)), t->fire_count = calloc((size_t)S, sizeof(int64_t));
    t->xc = fz((size_t)B * D), t->g = fz((size_t)B * D), t->gaux = fz((size_t)B * D);
    int C = B < CHUNK ? B : CHUNK;
    t->pre = fz((size_t)C * S), t->dP = fz((size_t)C * S);
    t->row_n = calloc((size_t)C + 1, sizeof(int32_t)), t->row_off = calloc((size_t)C + 1, sizeof(int32_t));
    t->bucket = calloc((size_t)S + 2, sizeof(int32_t));
    t->sel_tmp = fz((size_t)(sae_threads > 0 ? sae_threads : 1) * S * 2);
    if (!t->W_encT || !t->W_dec || !t->b_enc || !t->b_dec || !t->mWe || !t->vWe || !t->mWd || !t->vWd || !t->mbe ||
        !t->vbe || !t->mbd || !t->vbd || !t->gWe || !t->gWd || !t->gbe || !t->gbd || !t->dec_norm || !t->fsum ||
        !t->touched || !t->dead || !t->last_fired || !t->fire_count || !t->xc || !t->g || !t->gaux || !t->pre ||
        !t->dP || !t->row_n || !t->row_off || !t->bucket || !t->sel_tmp || !t->log_thr || !t->thr || !t->mlt ||
        !t->vlt || !t->glt) {
        trainer_free(t);
        return sae_err(err, SAE_ENOMEM, "out of memory for training a %d x %d SAE with batch %d", D, S, B);
    }
    /* init: random decoder rows of norm init_norm (1 for topk), encoder = decoder^T,
     * b_dec = the data mean */
    sae_rng r;
    sae_rng_seed(&r, cfg->seed);
    double nrm = cfg->arch == SAE_TOPK ? 1.0 : cfg->init_norm;
    for (int i = 0; i < S; i++) {
        float *w = t->W_dec + (size_t)i * D;
        double ss = 0;
        for (int d = 0; d < D; d++) {
            w[d] = (float)sae_rng_normal(&r);
            ss += (double)w[d] * w[d];
        }
        float sc = (float)(nrm / sqrt(ss));
        for (int d = 0; d < D; d++)
            w[d] *= sc;
        memcpy(t->W_encT + (size_t)i * D, w, sizeof(float) * (size_t)D);
        t->dec_norm[i] = (float)nrm;
    }
    if (data_mean)
        memcpy(t->b_dec, data_mean, sizeof(float) * (size_t)D);
    for (int i = 0; i < S; i++)
        t->log_thr[i] = (float)log(cfg->init_threshold);
    *out = t;
    return 0;
}

/* ---- phase A: per chunk ---- */
typedef struct chunk_job {
    trainer *t;
    const float *x;
    int r0, n; /* global first row, rows in chunk */
    int B;
    double l1; /* current l1 coefficient */
    int k_aux;
    double aux_scale;
    int pass;     /* 0: count/select, 1: fill + backprop */
    int32_t *sel; /* [CHUNK, k + k_aux] topk selections */
    double mse[64], l1s[64], auxs[64];
} chunk_job;

static void row_range(int part, int parts, int n, int *a, int *b)
{
    *a = (int)((int64_t)n * part / parts);
    *b = (int)((int64_t)n * (part + 1) / parts);
}

HOT static void chunk_rows(int part, int parts, void *u)
{
    chunk_job *j = u;
    trainer *t = j->t;
    int D = t->D, S = t->S, a, b;
    row_range(part, parts, j->n, &a, &b);
    float *tmp = t->sel_tmp + (size_t)part * S * 2;
    int topk = t->c.arch == SAE_TOPK, K = t->c.k, KA = j->k_aux, KS = K + KA;
    int jump = t->c.arch == SAE_JUMPRELU;
    float half_bw = (float)(t->c.bandwidth / 2), inv_bw = (float)(1 / t->c.bandwidth);
    for (int rr = a; rr < b; rr++) {
        const float *pre = t->pre + (size_t)rr * S;
        int gr = j->r0 + rr;
        if (j->pass == 0) {
            if (topk) {
                int32_t *sel = j->sel + (size_t)rr * KS;
                sae_select_topk(pre, NULL, S, K, tmp, sel);
                int na = KA > 0 ? sae_select_topk(pre, t->dead, S, KA, tmp, sel + K) : 0;
                for (int q = na; q < KA; q++)
                    sel[K + q] = -1;
                t->row_n[rr] = K + na;
            } else if (jump) {
                int c = 0;
                for (int i = 0; i < S; i++)
                    c += pre[i] > t->thr[i] || fabsf(pre[i] - t->thr[i]) < half_bw;
                t->row_n[rr] = c;
            } else {
                int c = 0;
                for (int i = 0; i < S; i++)
                    c += pre[i] > 0;
                t->row_n[rr] = c;
            }
            continue;
        }
        /* pass 1: entries, reconstruction, gradients */
        entry *E = t->ents + t->row_off[rr];
        int32_t *L = t->lat + t->row_off[rr];
        int n = 0, nmain;
        if (topk) {
            const int32_t *sel = j->sel + (size_t)rr * KS;
            for (int q = 0; q < K; q++) {
                float v = pre[sel[q]];
                L[n] = sel[q];
                E[n++] = (entry){gr, 0, v > 0 ? v : 0, 0, 0};
            }
            nmain = n;
            for (int q = 0; q < KA && sel[K + q] >= 0; q++) {
                float v = pre[sel[K + q]];
                L[n] = sel[K + q];
                E[n++] = (entry){gr, 1, v > 0 ? v : 0, 0, 0};
            }
        } else if (jump) { /* active entries, and inactive ones within bandwidth/2 of θ (f = 0) */
            for (int i = 0; i < S; i++)
                if (pre[i] > t->thr[i] || fabsf(pre[i] - t->thr[i]) < half_bw) {
                    L[n] = i;
                    E[n++] = (entry){gr, 0, pre[i] > t->thr[i] ? pre[i] : 0, 0, 0};
                }
            nmain = n;
        } else {
            for (int i = 0; i < S; i++)
                if (pre[i] > 0) {
                    L[n] = i;
                    E[n++] = (entry){gr, 0, pre[i], 0, 0};
                }
            nmain = n;
        }
        /* x̂ = b_dec + Σ f W_dec */
        float *g = t->g + (size_t)gr * D;
        const float *xr = j->x + (size_t)gr * D;
        memcpy(g, t->b_dec, sizeof(float) * (size_t)D);
        double l1r = 0;
        for (int q = 0; q < nmain; q++) {
            float f = E[q].f;
            if (f == 0)
                continue;
            const float *w = t->W_dec + (size_t)L[q] * D;
            for (int d = 0; d < D; d++)
                g[d] += f * w[d];
            l1r += jump ? 1.0 : (double)f * t->dec_norm[L[q]];
        }
        double se = 0;
        float s2 = 2.0f / (float)j->B;
        for (int d = 0; d < D; d++) {
            float e = g[d] - xr[d];
            se += (double)e * e;
            g[d] = s2 * e;
        }
        j->mse[part] += se;
        j->l1s[part] += l1r;
        float l1B = (float)(j->l1 / j->B);
        for (int q = 0; q < nmain; q++) {
            if (jump) { /* JumpReLU and Step straight-through estimators (SAELens) */
                int i = L[q];
                float dot = vdot(g, t->W_dec + (size_t)i * D, D);
                E[q].dpre = E[q].f != 0 ? dot : 0;
                if (fabsf(pre[i] - t->thr[i]) < half_bw)
                    E[q].dth = -(t->thr[i] * inv_bw) * dot - l1B * inv_bw;
                continue;
            }
            if (E[q].f == 0)
                continue;
            float dot = vdot(g, t->W_dec + (size_t)L[q] * D, D);
            E[q].dpre = topk ? dot : dot + l1B * t->dec_norm[L[q]];
        }
        if (n > nmain) { /* aux: reconstruct the residual x − x̂ from dead latents */
            float *ga = t->gaux + (size_t)gr * D;
            memset(ga, 0, sizeof(float) * (size_t)D);
            for (int q = nmain; q < n; q++) {
                float f = E[q].f;
                if (f == 0)
                    continue;
                const float *w = t->W_dec + (size_t)L[q] * D;
                for (int d = 0; d < D; d++)
                    ga[d] += f * w[d];
            }
            double sa = 0;
            float cs = (float)(t->c.aux_coeff * j->aux_scale) * s2;
            for (int d = 0; d < D; d++) {
                float resid = -g[d] / s2; /* x − x̂ */
                float e = ga[d] - resid;
                sa += (double)e * e;
                ga[d] = cs * e;
            }
            j->auxs[part] += sa * t->c.aux_coeff * j->aux_scale;
            for (int q = nmain; q < n; q++) {
                if (E[q].f == 0)
                    continue;
                E[q].dpre = vdot(ga, t->W_dec + (size_t)L[q] * D, D);
            }
        }
    }
}

/* Dense path for one chunk (standard SAE with many active latents). */
HOT static void chunk_dense(trainer *t, const float *x, int r0, int n, int B, double l1, chunk_job *j)
{
    int D = t->D, S = t->S;
    float *F = t->pre, *dP = t->dP;
    int jump = t->c.arch == SAE_JUMPRELU;
    float half_bw = (float)(t->c.bandwidth / 2), inv_bw = (float)(1 / t->c.bandwidth);
    float *near = NULL; /* jumprelu: pre − θ, kept for the threshold's gradient */
    if (jump) {
        near = malloc(sizeof(float) * (size_t)n * S);
        for (int r = 0; r < n; r++)
            for (int i = 0; i < S; i++) {
                size_t q = (size_t)r * S + i;
                near[q] = F[q] - t->thr[i];
                F[q] = F[q] > t->thr[i] ? F[q] : 0;
            }
    } else
        for (size_t q = 0; q < (size_t)n * S; q++)
            F[q] = F[q] > 0 ? F[q] : 0;
    float *g = t->g + (size_t)r0 * D;
    for (int r = 0; r < n; r++)
        memcpy(g + (size_t)r * D, t->b_dec, sizeof(float) * (size_t)D);
    sae_sgemm(0, 0, n, D, S, 1.0f, F, S, t->W_dec, D, 1.0f, g, D);
    float s2 = 2.0f / (float)B;
    double se = 0, l1s = 0;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)(r0 + r) * D;
        float *gr = g + (size_t)r * D;
        for (int d = 0; d < D; d++) {
            float e = gr[d] - xr[d];
            se += (double)e * e;
            gr[d] = s2 * e;
        }
        const float *fr = F + (size_t)r * S;
        for (int i = 0; i < S; i++) {
            l1s += jump ? (fr[i] != 0) : (double)fr[i] * t->dec_norm[i];
            if (fr[i] != 0)
                j->mse[63] += 1; /* nnz */
        }
    }
    j->mse[0] += se;
    j->l1s[0] += l1s;
    sae_sgemm(0, 1, n, S, D, 1.0f, g, D, t->W_dec, D, 0.0f, dP, S);
    float l1B = (float)(l1 / B);
    for (int r = 0; r < n; r++) {
        float *dr = dP + (size_t)r * S;
        const float *fr = F + (size_t)r * S;
        for (int i = 0; i < S; i++) {
            if (jump && fabsf(near[(size_t)r * S + i]) < half_bw)
                t->glt[i] += -(t->thr[i] * inv_bw) * dr[i] - l1B * inv_bw;
            dr[i] = fr[i] != 0 ? (jump ? dr[i] : dr[i] + l1B * t->dec_norm[i]) : 0;
            t->gbe[i] += dr[i];
            t->fsum[i] += fr[i];
            if (fr[i] != 0)
                t->fire_count[i]++, t->touched[i] = 2; /* 2: fired */
        }
    }
    free(near);
    sae_sgemm(1, 0, S, D, n, 1.0f, F, S, g, D, 1.0f, t->gWd, D);
    sae_sgemm(1, 0, S, D, n, 1.0f, dP, S, t->xc + (size_t)r0 * D, D, 1.0f, t->gWe, D);
    for (int i = 0; i < S; i++)
        if (!t->touched[i])
            t->touched[i] = 1;
}

/* ---- phase B: sparse parameter gradients, latents split between threads ---- */
typedef struct grad_job {
    trainer *t;
} grad_job;

HOT static void grad_latents(int part, int parts, void *u)
{
    trainer *t = ((grad_job *)u)->t;
    int D = t->D, a, b;
    row_range(part, parts, t->S, &a, &b);
    for (int i = a; i < b; i++) {
        int32_t s0 = t->bucket[i], s1 = t->bucket[i + 1];
        if (s0 == s1)
            continue;
        float *gwd = t->gWd + (size_t)i * D, *gwe = t->gWe + (size_t)i * D;
        float gbe = 0, fs = 0;
        int fired = 0;
        float gth = 0;
        for (int32_t q = s0; q < s1; q++) {
            const entry *e = &t->ents[t->order[q]];
            gth += e->dth;
            if (e->f == 0)
                continue;
            const float *gv = (e->aux ? t->gaux : t->g) + (size_t)e->row * D;
            const float *xv = t->xc + (size_t)e->row * D;
            float f = e->f, dp = e->dpre;
            for (int d = 0; d < D; d++) {
                gwd[d] += f * gv[d];
                gwe[d] += dp * xv[d];
            }
            gbe += dp;
            if (!e->aux) {
                fs += f;
                fired++;
            }
        }
        t->gbe[i] += gbe;
        t->glt[i] += gth;
        t->fsum[i] += fs;
        t->fire_count[i] += fired;
        t->touched[i] = fired ? 2 : (t->touched[i] ? t->touched[i] : 1);
    }
}

/* ---- phase D: Adam over every parameter ---- */
typedef struct adam_job {
    trainer *t;
    float lr_t; /* lr / (1 - β1^t) */
    float bc2;  /* sqrt(1 - β2^t) */
} adam_job;

static inline void adam_vec(float *p, float *g, float *m, float *v, int n, int has_grad, float b1, float b2, float lr_t,
                            float bc2, float eps)
{
    if (has_grad) {
        for (int d = 0; d < n; d++) {
            float gd = g[d];
            float md = m[d] = b1 * m[d] + (1 - b1) * gd;
            float vd = v[d] = b2 * v[d] + (1 - b2) * gd * gd;
            p[d] -= lr_t * md / (sqrtf(vd) / bc2 + eps);
            g[d] = 0;
        }
    } else {
        for (int d = 0; d < n; d++) {
            float md = m[d] = b1 * m[d];
            float vd = v[d] = b2 * v[d];
            p[d] -= lr_t * md / (sqrtf(vd) / bc2 + eps);
        }
    }
}

HOT static void adam_rows(int part, int parts, void *u)
{
    adam_job *j = u;
    trainer *t = j->t;
    int D = t->D, a, b;
    float b1 = (float)t->c.beta1, b2 = (float)t->c.beta2, eps = (float)t->c.eps;
    row_range(part, parts, t->S, &a, &b);
    int topk = t->c.arch == SAE_TOPK;
    for (int i = a; i < b; i++) {
        size_t o = (size_t)i * D;
        int has = t->touched[i] != 0;
        if (has && topk) { /* remove the gradient component parallel to the (unit) decoder row */
            float dot = vdot(t->gWd + o, t->W_dec + o, D);
            for (int d = 0; d < D; d++)
                t->gWd[o + d] -= dot * t->W_dec[o + d];
        }
        adam_vec(t->W_encT + o, t->gWe + o, t->mWe + o, t->vWe + o, D, has, b1, b2, j->lr_t, j->bc2, eps);
        adam_vec(t->W_dec + o, t->gWd + o, t->mWd + o, t->vWd + o, D, has, b1, b2, j->lr_t, j->bc2, eps);
        adam_vec(t->b_enc + i, t->gbe + i, t->mbe + i, t->vbe + i, 1, has, b1, b2, j->lr_t, j->bc2, eps);
        if (t->c.arch == SAE_JUMPRELU) {
            t->glt[i] *= t->thr[i];
            adam_vec(t->log_thr + i, t->glt + i, t->mlt + i, t->vlt + i, 1, 1, b1, b2, j->lr_t, j->bc2, eps);
        }
        float nr = sqrtf(vdot(t->W_dec + o, t->W_dec + o, D));
        if (topk && nr > 0) {
            float inv = 1.0f / nr;
            for (int d = 0; d < D; d++)
                t->W_dec[o + d] *= inv;
            nr = 1;
        }
        t->dec_norm[i] = nr;
        t->touched[i] = 0;
        t->fsum[i] = 0;
    }
}

HOT static void add_bias(float *p, int n, int S, const float *b)
{
    for (int r = 0; r < n; r++)
        for (int i = 0; i < S; i++)
            p[(size_t)r * S + i] += b[i];
}

static double lr_at(const train_cfg *c, int64_t step)
{
    double lr = c->lr;
    if (c->lr_warmup_steps > 0 && step < c->lr_warmup_steps)
        lr *= (double)(step + 1) / c->lr_warmup_steps;
    if (c->lr_decay_steps > 0 && step >= c->steps - c->lr_decay_steps)
        lr *= (double)(c->steps - step) / c->lr_decay_steps;
    return lr;
}

static double l1_at(const train_cfg *c, int64_t step)
{
    if (c->arch == SAE_TOPK)
        return 0;
    if (c->l1_warmup_steps > 0 && step < c->l1_warmup_steps)
        return c->l1_coeff * (double)(step + 1) / c->l1_warmup_steps;
    return c->l1_coeff;
}

void trainer_do_step(trainer *t, const float *x, train_metrics *met)
{
    int D = t->D, S = t->S, B = t->c.batch;
    int topk = t->c.arch == SAE_TOPK;
    double l1 = l1_at(&t->c, t->step), lr = lr_at(&t->c, t->step);
    if (t->c.arch == SAE_JUMPRELU)
        for (int i = 0; i < S; i++)
            t->thr[i] = expf(t->log_thr[i]);
    /* dead latents (topk aux) */
    t->n_dead = 0;
    for (int i = 0; i < S; i++) {
        t->dead[i] = t->tokens - t->last_fired[i] >= t->c.dead_tokens;
        t->n_dead += t->dead[i];
    }
    int k_aux = topk && t->n_dead > 0 && t->c.aux_coeff > 0 ? (D / 2 < t->n_dead ? D / 2 : t->n_dead) : 0;
    if (k_aux > S - t->c.k)
        k_aux = S - t->c.k;
    double aux_scale = k_aux ? fmin((double)t->n_dead / (D / 2 > 0 ? D / 2 : 1), 1.0) : 0;
    /* xc for the whole batch; batch variance for FVU */
    double var = 0;
    {
        double *mean = calloc((size_t)D, sizeof(double));
        for (int r = 0; r < B; r++)
            for (int d = 0; d < D; d++)
                mean[d] += x[(size_t)r * D + d];
        for (int d = 0; d < D; d++)
            mean[d] /= B;
        for (int r = 0; r < B; r++) {
            const float *xr = x + (size_t)r * D;
            float *o = t->xc + (size_t)r * D;
            for (int d = 0; d < D; d++) {
                double c = xr[d] - mean[d];
                var += c * c;
                o[d] = t->c.apply_b_dec_to_input ? xr[d] - t->b_dec[d] : xr[d];
            }
        }
        free(mean);
    }
    t->n_ents = 0;
    chunk_job job;
    memset(&job, 0, sizeof job);
    job.t = t;
    job.x = x;
    job.B = B;
    job.l1 = l1;
    job.k_aux = k_aux;
    job.aux_scale = aux_scale;
    int C = B < CHUNK ? B : CHUNK;
    int KS = t->c.k + k_aux;
    int32_t *sel = topk ? malloc(sizeof(int32_t) * (size_t)C * KS) : NULL;
    job.sel = sel;
    int parts = sae_threads > 0 ? sae_threads : 1;
    double nnz_dense = 0;
    for (int r0 = 0; r0 < B; r0 += C) {
        int n = B - r0 < C ? B - r0 : C;
        job.r0 = r0;
        job.n = n;
        /* pre = xc·W_enc + b_enc */
        sae_sgemm(0, 1, n, S, D, 1.0f, t->xc + (size_t)r0 * D, D, t->W_encT, D, 0.0f, t->pre, S);
        add_bias(t->pre, n, S, t->b_enc);
        job.pass = 0;
        sae_parallel(parts, chunk_rows, &job);
        int64_t cn = 0;
        for (int r = 0; r < n; r++) {
            t->row_off[r] = (int32_t)(t->n_ents + cn);
            cn += t->row_n[r];
        }
        if (!topk && cn > DENSE_FRAC * (double)n * S) {
            job.mse[63] = 0;
            chunk_dense(t, x, r0, n, B, l1, &job);
            nnz_dense += job.mse[63];
            job.mse[63] = 0;
            continue;
        }
        if (t->n_ents + cn > t->cap_ents) {
            int64_t cap = (t->n_ents + cn) * 2 + 1024;
            t->ents = realloc(t->ents, sizeof(entry) * (size_t)cap);
            t->lat = realloc(t->lat, sizeof(int32_t) * (size_t)cap);
            t->order = realloc(t->order, sizeof(int32_t) * (size_t)cap);
            t->cap_ents = cap;
        }
        job.pass = 1;
        sae_parallel(parts, chunk_rows, &job);
        t->n_ents += cn;
    }
    free(sel);
    /* phase B: bucket entries by latent (stable: rows stay in order) */
    memset(t->bucket, 0, sizeof(int32_t) * (size_t)(S + 2));
    for (int64_t q = 0; q < t->n_ents; q++)
        t->bucket[t->lat[q] + 1]++;
    for (int i = 0; i < S; i++)
        t->bucket[i + 1] += t->bucket[i];
    {
        int32_t *pos = malloc(sizeof(int32_t) * (size_t)(S + 1));
        memcpy(pos, t->bucket, sizeof(int32_t) * (size_t)(S + 1));
        for (int64_t q = 0; q < t->n_ents; q++)
            t->order[pos[t->lat[q]]++] = (int32_t)q;
        free(pos);
    }
    grad_job gj = {t};
    sae_parallel(parts, grad_latents, &gj);
    /* phase C: L1's decoder-norm gradient, b_dec's gradients */
    if (t->c.arch == SAE_STANDARD && l1 > 0)
        for (int i = 0; i < S; i++)
            if (t->fsum[i] > 0 && t->dec_norm[i] > 0) {
                float c = (float)(l1 / B) * t->fsum[i] / t->dec_norm[i];
                float *gw = t->gWd + (size_t)i * D;
                const float *w = t->W_dec + (size_t)i * D;
                for (int d = 0; d < D; d++)
                    gw[d] += c * w[d];
            }
    for (int r = 0; r < B; r++) {
        const float *g = t->g + (size_t)r * D;
        for (int d = 0; d < D; d++)
            t->gbd[d] += g[d];
    }
    if (t->c.apply_b_dec_to_input) /* pre depends on −b_dec·W_enc */
        sae_sgemm(0, 0, 1, D, S, -1.0f, t->gbe, S, t->W_encT, D, 1.0f, t->gbd, D);
    /* firing bookkeeping */
    int64_t tok_after = t->tokens + B;
    int dense = 0, dead = 0;
    for (int i = 0; i < S; i++)
        if (t->touched[i] == 2)
            t->last_fired[i] = tok_after;
    t->fire_tokens += B;
    for (int i = 0; i < S; i++) {
        dead += tok_after - t->last_fired[i] >= t->c.dead_tokens;
        dense += (double)t->fire_count[i] / (double)t->fire_tokens > t->c.dense_threshold;
    }
    /* metrics (before the update) */
    double nnz = nnz_dense;
    for (int64_t q = 0; q < t->n_ents; q++)
        nnz += !t->ents[q].aux && t->ents[q].f > 0;
    double mse_sum = 0, l1_sum = 0, aux_sum = 0;
    for (int p = 0; p < 64; p++)
        if (p != 63)
            mse_sum += job.mse[p], l1_sum += job.l1s[p], aux_sum += job.auxs[p];
    /* phase D: Adam */
    t->step++;
    adam_job aj;
    aj.t = t;
    aj.lr_t = (float)(lr / (1 - pow(t->c.beta1, (double)t->step)));
    aj.bc2 = (float)sqrt(1 - pow(t->c.beta2, (double)t->step));
    sae_parallel(parts, adam_rows, &aj);
    adam_vec(t->b_dec, t->gbd, t->mbd, t->vbd, D, 1, (float)t->c.beta1, (float)t->c.beta2, aj.lr_t, aj.bc2,
             (float)t->c.eps);
    t->tokens = tok_after;
    if (met) {
        met->step = t->step;
        met->mse = mse_sum / B;
        met->l1 = l1 * l1_sum / B;
        met->aux = aux_sum / B;
        met->loss = met->mse + met->l1 + met->aux;
        met->l0 = nnz / B;
        met->fvu = var > 0 ? mse_sum / var : 0;
        met->dead = dead;
        met->dense = dense;
        met->lr = lr;
        met->l1_coeff = l1;
    }
}

void trainer_reset_density(trainer *t)
{
    memset(t->fire_count, 0, sizeof(int64_t) * (size_t)t->S);
    t->fire_tokens = 0;
}

int trainer_export(const trainer *t, sae *s, char *err)
{
    int rc = sae_alloc(s, t->D, t->S, t->c.arch, err);
    if (rc)
        return rc;
    int D = t->D, S = t->S;
    for (int i = 0; i < S; i++)
        for (int d = 0; d < D; d++)
            s->W_enc[(size_t)d * S + i] = t->W_encT[(size_t)i * D + d];
    memcpy(s->W_dec, t->W_dec, sizeof(float) * (size_t)S * D);
    memcpy(s->b_enc, t->b_enc, sizeof(float) * (size_t)S);
    memcpy(s->b_dec, t->b_dec, sizeof(float) * (size_t)D);
    s->k = t->c.k;
    s->apply_b_dec_to_input = t->c.apply_b_dec_to_input;
    if (t->c.arch == SAE_JUMPRELU)
        for (int i = 0; i < S; i++)
            s->threshold[i] = expf(t->log_thr[i]);
    return 0;
}

int trainer_import(trainer *t, const sae *s, char *err)
{
    int D = t->D, S = t->S;
    if (s->d_in != D || s->d_sae != S)
        return sae_err(err, SAE_EINVAL, "SAE is %d x %d, the trainer %d x %d", s->d_in, s->d_sae, D, S);
    for (int i = 0; i < S; i++) {
        for (int d = 0; d < D; d++)
            t->W_encT[(size_t)i * D + d] = s->W_enc[(size_t)d * S + i];
        t->dec_norm[i] = sqrtf(vdot(s->W_dec + (size_t)i * D, s->W_dec + (size_t)i * D, D));
    }
    memcpy(t->W_dec, s->W_dec, sizeof(float) * (size_t)S * D);
    memcpy(t->b_enc, s->b_enc, sizeof(float) * (size_t)S);
    memcpy(t->b_dec, s->b_dec, sizeof(float) * (size_t)D);
    if (t->c.arch == SAE_JUMPRELU && s->threshold)
        for (int i = 0; i < S; i++)
            t->log_thr[i] = logf(s->threshold[i] > 0 ? s->threshold[i] : 1e-30f);
    return 0;
}

/* ---- checkpoints: one safetensors file (params, Adam moments, firing state), atomic ---- */
int trainer_save_ckpt(const trainer *t, const char *dir, char *err)
{
    int rc = sae_mkdirs(dir, err);
    if (rc)
        return rc;
    int64_t D = t->D, S = t->S, nSD[2] = {S, D};
    st_writer *w = st_writer_new();
    struct {
        const char *n;
        float *p;
        int nd;
        int64_t *ne;
    } T[] = {
        {"W_encT", t->W_encT, 2, nSD},    {"W_dec", t->W_dec, 2, nSD},  {"b_enc", t->b_enc, 1, &S},
        {"b_dec", t->b_dec, 1, &D},       {"m.W_encT", t->mWe, 2, nSD}, {"v.W_encT", t->vWe, 2, nSD},
        {"m.W_dec", t->mWd, 2, nSD},      {"v.W_dec", t->vWd, 2, nSD},  {"m.b_enc", t->mbe, 1, &S},
        {"v.b_enc", t->vbe, 1, &S},       {"m.b_dec", t->mbd, 1, &D},   {"v.b_dec", t->vbd, 1, &D},
        {"dec_norm", t->dec_norm, 1, &S},      {"log_threshold", t->log_thr, 1, &S}, {"m.log_threshold", t->mlt, 1, &S},
        {"v.log_threshold", t->vlt, 1, &S},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        st_writer_add(w, T[i].n, ST_F32, T[i].p, T[i].nd, T[i].ne, ST_F32);
    st_writer_add(w, "last_fired", ST_I64, t->last_fired, 1, &S, ST_I64);
    st_writer_add(w, "fire_count", ST_I64, t->fire_count, 1, &S, ST_I64);
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", (long long)t->step);
    st_writer_meta(w, "step", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)t->tokens);
    st_writer_meta(w, "tokens", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)t->fire_tokens);
    st_writer_meta(w, "fire_tokens", buf);
    snprintf(buf, sizeof buf, "%d,%d,%d,%d,%d", t->D, t->S, (int)t->c.arch, t->c.k, t->c.batch);
    st_writer_meta(w, "shape", buf);
    char path[1200];
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", dir);
    rc = st_writer_finish(w, path, err);
    st_writer_free(w);
    return rc;
}

static int64_t meta_int(const st_file *f, const char *key)
{
    if (!f->meta_json)
        return -1;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(f->meta_json, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

int trainer_load_ckpt(trainer *t, const char *dir, char *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", dir);
    st_file f;
    int rc = st_open(path, &f, err);
    if (rc)
        return rc;
    char want[64];
    snprintf(want, sizeof want, "\"shape\":\"%d,%d,%d,%d,%d\"", t->D, t->S, (int)t->c.arch, t->c.k, t->c.batch);
    if (!f.meta_json || !strstr(f.meta_json, want)) {
        st_close(&f);
        return sae_err(err, SAE_EINVAL, "%s: checkpoint is for another shape/architecture/batch", path);
    }
    int64_t S = t->S, D = t->D;
    struct {
        const char *n;
        float *p;
        int64_t n_el;
    } T[] = {
        {"W_encT", t->W_encT, S * D}, {"W_dec", t->W_dec, S * D},  {"b_enc", t->b_enc, S},
        {"b_dec", t->b_dec, D},       {"m.W_encT", t->mWe, S * D}, {"v.W_encT", t->vWe, S * D},
        {"m.W_dec", t->mWd, S * D},   {"v.W_dec", t->vWd, S * D},  {"m.b_enc", t->mbe, S},
        {"v.b_enc", t->vbe, S},       {"m.b_dec", t->mbd, D},      {"v.b_dec", t->vbd, D},
        {"dec_norm", t->dec_norm, S},   {"log_threshold", t->log_thr, S}, {"m.log_threshold", t->mlt, S},
        {"v.log_threshold", t->vlt, S},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0] && !rc; i++) {
        const st_entry *e = st_find(&f, T[i].n);
        if (!e || e->dtype != ST_F32 || st_nelem(e) != T[i].n_el)
            rc = sae_err(err, SAE_EFORMAT, "%s: bad or missing '%s'", path, T[i].n);
        else
            memcpy(T[i].p, e->data, sizeof(float) * (size_t)T[i].n_el);
    }
    const st_entry *lf = st_find(&f, "last_fired"), *fc = st_find(&f, "fire_count");
    if (!rc && (!lf || !fc || lf->dtype != ST_I64 || st_nelem(lf) != S || st_nelem(fc) != S))
        rc = sae_err(err, SAE_EFORMAT, "%s: bad or missing last_fired/fire_count", path);
    if (!rc) {
        memcpy(t->last_fired, lf->data, sizeof(int64_t) * (size_t)S);
        memcpy(t->fire_count, fc->data, sizeof(int64_t) * (size_t)S);
        t->step = meta_int(&f, "step");
        t->tokens = meta_int(&f, "tokens");
        t->fire_tokens = meta_int(&f, "fire_tokens");
        if (t->step < 0 || t->tokens < 0 || t->fire_tokens < 0)
            rc = sae_err(err, SAE_EFORMAT, "%s: missing step/tokens metadata", path);
    }
    st_close(&f);
    return rc;
}

int trainer_run(trainer *t, train_data_fn data, void *du, const char *ckpt, train_cb_fn cb, void *cu, char *err)
{
    int rc;
    if (ckpt) {
        char path[1200];
        struct stat sb;
        snprintf(path, sizeof path, "%s/trainer_state.safetensors", ckpt);
        if (stat(path, &sb) == 0 && (rc = trainer_load_ckpt(t, ckpt, err)))
            return rc;
    }
    float *x = malloc(sizeof(float) * (size_t)t->c.batch * t->D);
    if (!x)
        return sae_err(err, SAE_ENOMEM, "out of memory");
    train_metrics m;
    memset(&m, 0, sizeof m);
    rc = 0;
    while (t->step < t->c.steps) {
        data(du, t->step, t->c.batch, x);
        trainer_do_step(t, x, &m);
        int log = t->c.log_every > 0 && (t->step % t->c.log_every == 0 || t->step == t->c.steps);
        int stop = cb ? cb(cu, &m) : 0;
        if (log)
            trainer_reset_density(t);
        if (ckpt &&
            ((t->c.checkpoint_every > 0 && t->step % t->c.checkpoint_every == 0) || stop || t->step == t->c.steps))
            if ((rc = trainer_save_ckpt(t, ckpt, err)))
                break;
        if (stop) {
            rc = sae_err(err, SAE_ECANCELLED, "cancelled at step %lld (checkpoint written)", (long long)t->step);
            break;
        }
    }
    free(x);
    return rc;
}
