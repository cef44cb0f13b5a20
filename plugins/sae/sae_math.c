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

/* Keep the k largest of row[0..S) (relu'd), zero the rest. Ties: lower index first. */
static void topk_row(float *row, int S, int k, float *tmp)
{
    /* k-th largest by partial selection on a copy (quickselect) */
    memcpy(tmp, row, sizeof(float) * (size_t)S);
    int lo = 0, hi = S - 1, want = k - 1; /* descending order index */
    while (lo < hi) {
        float piv = tmp[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (tmp[i] > piv)
                i++;
            while (tmp[j] < piv)
                j--;
            if (i <= j) {
                float t = tmp[i];
                tmp[i] = tmp[j];
                tmp[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            break;
    }
    float kth = tmp[want];
    int above = 0;
    for (int i = 0; i < S; i++)
        above += row[i] > kth;
    int eq_left = k - above; /* how many equal to kth to keep */
    for (int i = 0; i < S; i++) {
        float v = row[i];
        if (v > kth)
            row[i] = v > 0 ? v : 0;
        else if (v == kth && eq_left > 0) {
            eq_left--;
            row[i] = v > 0 ? v : 0;
        } else
            row[i] = 0;
    }
}

int sae_encode(const sae *s, const float *x, int n, float *f)
{
    int D = s->d_in, S = s->d_sae;
    float *xc = malloc(sizeof(float) * (size_t)n * D), *mu = malloc(sizeof(float) * (size_t)n),
          *sd = malloc(sizeof(float) * (size_t)n);
    float *tmp = s->arch == SAE_TOPK ? malloc(sizeof(float) * (size_t)S) : NULL;
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
