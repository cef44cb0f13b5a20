/* Numeric kernels on rows of f32, written so the compiler vectorises them. */
#include <math.h>
#include <string.h>

#include "loupe_impl.h"

/* Hot loops get AVX-512 and AVX2 clones picked at load time (ifunc), so one binary
 * runs everywhere and still uses the widest vectors the machine has. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

/* e^x with ~1 ulp error: x = n·ln2 + r, e^r by a degree-7 polynomial, 2^n through the
 * exponent bits. Branch-free so loops over it vectorise; x < -87.3 gives 0. */
static inline float fexp(float x)
{
    const float lo = -87.3f, hi = 88.7f;
    float xc = x < lo ? lo : (x > hi ? hi : x);
    /* round to nearest through the 1.5·2^23 trick: vectorises, unlike roundf */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693145751953125f - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    float v = p * s;
    return x < lo ? 0.0f : v;
}

float lpi_expf(float x) { return fexp(x); }

HOT void lpi_layernorm(const float *x, int ldx, float *y, int ldy, float *scale, const float *w, const float *b,
                   int rows, int d, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        double s = 0;
        for (int i = 0; i < d; i++)
            s += xr[i];
        float mean = (float)(s / d);
        double v = 0;
        for (int i = 0; i < d; i++) {
            float c = xr[i] - mean;
            v += (double)c * c;
        }
        float sc = sqrtf((float)(v / d) + eps);
        float inv = 1.0f / sc;
        if (scale)
            scale[r] = sc;
        if (b)
            for (int i = 0; i < d; i++)
                yr[i] = (xr[i] - mean) * inv * w[i] + b[i];
        else
            for (int i = 0; i < d; i++)
                yr[i] = (xr[i] - mean) * inv * w[i];
    }
}

HOT void lpi_rmsnorm(const float *x, int ldx, float *y, int ldy, float *scale, const float *w, int rows, int d,
                 float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        double v = 0;
        for (int i = 0; i < d; i++)
            v += (double)xr[i] * xr[i];
        float sc = sqrtf((float)(v / d) + eps);
        float inv = 1.0f / sc;
        if (scale)
            scale[r] = sc;
        for (int i = 0; i < d; i++)
            yr[i] = w[i] * (xr[i] * inv);
    }
}

/* 0.5·x·(1 + tanh(u)) = x · sigmoid(2u), u = √(2/π)(x + 0.044715x³) */
HOT void lpi_gelu_tanh(float *x, size_t n)
{
    const float k = 0.7978845608028654f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = k * (v + 0.044715f * v * v * v);
        x[i] = v / (1.0f + fexp(-2.0f * u));
    }
}

HOT void lpi_gelu_erf(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

HOT void lpi_silu_mul(const float *gate, const float *up, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + fexp(-g)) * up[i];
    }
}

HOT void lpi_relu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0 ? x[i] : 0;
}

HOT void lpi_softmax_row(float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) { /* fully masked row: all zeros */
        memset(x, 0, (size_t)n * sizeof *x);
        return;
    }
    float s = 0;
    for (int i = 0; i < n; i++) {
        float e = fexp(x[i] - mx);
        x[i] = e;
        s += e;
    }
    float inv = 1.0f / s;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

HOT void lpi_add(const float *a, const float *b, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

HOT void lpi_add3(const float *a, const float *b, const float *c, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i] + c[i];
}
