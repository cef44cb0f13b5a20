/* sae — encoding and decoding, exactly as SAELens does it:
 *   x ← normalize(x) (constant_norm_rescale / layer_norm; expected_average_only_in is folded)
 *   x ← x − b_dec                         when apply_b_dec_to_input
 *   pre = x·W_enc + b_enc
 *   standard: relu(pre); jumprelu: relu(pre)·[pre > threshold]; topk: relu of the k largest;
 *   gated: [x·W_enc + b_gate > 0] · relu(x·(W_enc ⊙ exp r_mag) + b_mag)
 *   x̂ = f·W_dec + b_dec (then the normalisation undone). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sae_impl.h"

/* Per-row normalisation factors (SAELens run_time_activation_norm_fn_in). */
static void norm_in(const sae *s, const float *x, int n, float *xn, float *mu, float *sd)
{
    int D = s->d_in;
    for (int r = 0; r < n; r++) {
        const float *a = x + (size_t)r * D;
        float *o = xn + (size_t)r * D;
        if (!strcmp(s->normalize, "constant_norm_rescale")) {
            double ss = 0;
            for (int d = 0; d < D; d++)
                ss += (double)a[d] * a[d];
            float c = (float)(sqrt((double)D) / sqrt(ss));
            mu[r] = 0;
            sd[r] = 1.0f / c;
            for (int d = 0; d < D; d++)
                o[d] = a[d] * c;
        } else if (!strcmp(s->normalize, "layer_norm")) {
            double m = 0, v = 0;
            for (int d = 0; d < D; d++)
                m += a[d];
            m /= D;
            for (int d = 0; d < D; d++)
                v += (a[d] - m) * (a[d] - m);
            double sdv = sqrt(v / (D > 1 ? D - 1 : 1)); /* torch .std(): unbiased */
            mu[r] = (float)m;
            sd[r] = (float)sdv;
            for (int d = 0; d < D; d++)
                o[d] = (float)((a[d] - m) / (sdv + 1e-5));
        } else {
            mu[r] = 0;
            sd[r] = 1;
            memcpy(o, a, sizeof(float) * (size_t)D);
        }
    }
}

static int has_norm(const sae *s)
{
    return !strcmp(s->normalize, "constant_norm_rescale") || !strcmp(s->normalize, "layer_norm");
}

/* ---- selection: indices of the k largest values (ties: lower index), into idx ----
 * A min-heap of the k best so far: after the first few hundred elements almost every value
 * fails the one comparison with the heap's root, so this is one pass over the row. */
static inline void sift_down(float *hv, int32_t *hi, int k, int p)
{
    for (;;) {
        int l = 2 * p + 1, r = l + 1, m = p;
        /* min-heap on (value, then larger index first, so the larger index is evicted first) */
        if (l < k && (hv[l] < hv[m] || (hv[l] == hv[m] && hi[l] > hi[m])))
            m = l;
        if (r < k && (hv[r] < hv[m] || (hv[r] == hv[m] && hi[r] > hi[m])))
            m = r;
        if (m == p)
            return;
        float tv = hv[p];
        hv[p] = hv[m];
        hv[m] = tv;
        int32_t ti = hi[p];
        hi[p] = hi[m];
        hi[m] = ti;
        p = m;
    }
}

int sae_select_topk(const float *v, const uint8_t *mask, int n, int k, float *tmp, int32_t *idx)
{
    int c = 0, i = 0;
    for (; i < n && c < k; i++)
        if (!mask || mask[i]) {
            tmp[c] = v[i];
            idx[c++] = i;
        }
    if (c < k)
        return c;
    for (int p = k / 2 - 1; p >= 0; p--)
        sift_down(tmp, idx, k, p);
    float root = tmp[0];
    for (; i < n; i++) {
        if (!(v[i] > root) || (mask && !mask[i]))
            continue;
        tmp[0] = v[i];
        idx[0] = i;
        sift_down(tmp, idx, k, 0);
        root = tmp[0];
    }
    return k;
}

/* Keep the k largest of row[0..S) (relu'd), zero the rest. Ties: lower index first. */
static void topk_row(float *row, int S, int k, float *tmp)
{
    int32_t *idx = (int32_t *)(tmp + k);
    int c = sae_select_topk(row, NULL, S, k, tmp, idx);
    memset(row, 0, sizeof(float) * (size_t)S);
    for (int i = 0; i < c; i++)
        row[idx[i]] = tmp[i] > 0 ? tmp[i] : 0;
}

int sae_encode(const sae *s, const float *x, int n, float *f)
{
    int D = s->d_in, S = s->d_sae;
    float *xc = malloc(sizeof(float) * (size_t)n * D), *mu = malloc(sizeof(float) * (size_t)n),
          *sd = malloc(sizeof(float) * (size_t)n);
    float *tmp = s->arch == SAE_TOPK ? malloc(sizeof(float) * (size_t)2 * s->k + 8) : NULL;
    if (!xc || !mu || !sd || (s->arch == SAE_TOPK && !tmp)) {
        free(xc), free(mu), free(sd), free(tmp);
        return SAE_ENOMEM;
    }
    norm_in(s, x, n, xc, mu, sd);
    if (s->apply_b_dec_to_input)
        for (int r = 0; r < n; r++)
            for (int d = 0; d < D; d++)
                xc[(size_t)r * D + d] -= s->b_dec[d];
    sae_sgemm(0, 0, n, S, D, 1.0f, xc, D, s->W_enc, S, 0.0f, f, S);
    if (s->arch == SAE_GATED) {
        /* magnitude path: (x·W_enc)·exp(r_mag) + b_mag (W_enc ⊙ exp r_mag scales columns) */
        for (int r = 0; r < n; r++) {
            float *row = f + (size_t)r * S;
            for (int i = 0; i < S; i++) {
                float lin = row[i];
                float gate = lin + s->b_enc[i];
                float mag = lin * expf(s->r_mag[i]) + s->b_mag[i];
                row[i] = gate > 0 ? (mag > 0 ? mag : 0) : 0;
            }
        }
    } else {
        for (int r = 0; r < n; r++) {
            float *row = f + (size_t)r * S;
            for (int i = 0; i < S; i++)
                row[i] += s->b_enc[i];
            if (s->arch == SAE_TOPK)
                topk_row(row, S, s->k, tmp);
            else if (s->arch == SAE_JUMPRELU)
                for (int i = 0; i < S; i++)
                    row[i] = row[i] > s->threshold[i] && row[i] > 0 ? row[i] : 0;
            else
                for (int i = 0; i < S; i++)
                    row[i] = row[i] > 0 ? row[i] : 0;
        }
    }
    free(xc), free(mu), free(sd), free(tmp);
    return 0;
}

static void denorm_out(const sae *s, const float *x, int n, float *xhat)
{
    if (!has_norm(s))
        return;
    int D = s->d_in;
    float *xn = malloc(sizeof(float) * (size_t)n * D), *mu = malloc(sizeof(float) * (size_t)n),
          *sd = malloc(sizeof(float) * (size_t)n);
    if (xn && mu && sd) {
        norm_in(s, x, n, xn, mu, sd);
        for (int r = 0; r < n; r++)
            for (int d = 0; d < D; d++)
                xhat[(size_t)r * D + d] = xhat[(size_t)r * D + d] * sd[r] + mu[r];
    }
    free(xn), free(mu), free(sd);
}

void sae_decode(const sae *s, const float *f, int n, float *xhat)
{
    int D = s->d_in, S = s->d_sae;
    for (int r = 0; r < n; r++)
        memcpy(xhat + (size_t)r * D, s->b_dec, sizeof(float) * (size_t)D);
    sae_sgemm(0, 0, n, D, S, 1.0f, f, S, s->W_dec, D, 1.0f, xhat, D);
}

void sae_decode_sparse(const sae *s, const float *f, int n, float *xhat)
{
    int D = s->d_in, S = s->d_sae;
    for (int r = 0; r < n; r++) {
        float *o = xhat + (size_t)r * D;
        memcpy(o, s->b_dec, sizeof(float) * (size_t)D);
        const float *fr = f + (size_t)r * S;
        for (int i = 0; i < S; i++) {
            float a = fr[i];
            if (a == 0)
                continue;
            const float *w = s->W_dec + (size_t)i * D;
            for (int d = 0; d < D; d++)
                o[d] += a * w[d];
        }
    }
}

/* Reconstruction of raw activations x (normalisation applied and undone as SAELens). */
void sae_reconstruct(const sae *s, const float *x, const float *f, int n, float *xhat);
void sae_reconstruct(const sae *s, const float *x, const float *f, int n, float *xhat)
{
    sae_decode_sparse(s, f, n, xhat);
    denorm_out(s, x, n, xhat);
}
