/* The hooked forward pass.
 *
 * Layout: activations are row-major with rows = (batch, position), so every hook's
 * tensor is a view of the buffer the forward pass itself reads next. A hook point
 * that nobody asks for costs nothing; one the cache wants is computed straight into
 * the cache's arena. Named activations are written once and never modified in place
 * afterwards (only by hooks), so a cached value is exactly what flowed downstream.
 *
 * Scratch memory: one workspace per model, [persistent | per-block], where the
 * per-block part is rewound after every block. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

#define QBLOCK 128 /* query rows per attention block */
#define W_USER 1
#define W_CACHE 2

struct lp_kv {
    int max_pos, len, n_layers, d_head;
    int *heads;   /* [n_layers] heads stored per layer (n_kv_heads, or n_heads when expanded), 0: unset */
    float **k, **v; /* [n_layers] -> [max_pos, heads, d_head] */
};

typedef struct buf {
    float *p;
    int cached;
} buf;

typedef struct fwd {
    lp_model *m;
    const lp_config *c;
    const lp_run_opts *o;
    lp_error *err;
    int B, T, BT, past, Tk;
    const int32_t *tokens;
    int32_t *lengths;
    unsigned char *want; /* [(n_layers + 1) * LP_HOOK_KIND_COUNT] */
    float *ws;
    size_t ws_cap, ws_top;
    float *rope_cos, *rope_sin; /* [T, rotary_dim/2] */
} fwd;

static unsigned char *want_at(fwd *f, lp_hook_kind k, int layer)
{
    int slot = layer < 0 ? f->c->n_layers : layer;
    return &f->want[slot * LP_HOOK_KIND_COUNT + k];
}

static int kind_exists(const lp_config *c, lp_hook_kind k)
{
    switch (k) {
    case LP_HOOK_POS_EMBED: return c->learned_pos;
    case LP_HOOK_ROT_Q:
    case LP_HOOK_ROT_K: return c->rotary_dim > 0;
    case LP_HOOK_RESID_MID: return !c->parallel_blocks;
    case LP_HOOK_MLP_PRE_LINEAR: return c->gated_mlp;
    default: return 1;
    }
}

int lp_model_n_hook_points(const lp_model *m)
{
    int n = 0;
    for (int k = 0; k < LP_HOOK_KIND_COUNT; k++)
        if (kind_exists(&m->cfg, (lp_hook_kind)k))
            n += lp_hook_kind_is_block((lp_hook_kind)k) ? m->cfg.n_layers : 1;
    return n;
}

/* Forward order: embeddings, then each block's points, then ln_final. */
int lp_model_hook_point(const lp_model *m, int i, lp_hook_kind *kind, int *layer)
{
    const lp_config *c = &m->cfg;
    int n = 0;
    for (int k = 0; k <= LP_HOOK_POS_EMBED; k++)
        if (kind_exists(c, (lp_hook_kind)k) && n++ == i) {
            *kind = (lp_hook_kind)k;
            *layer = -1;
            return LP_OK;
        }
    for (int L = 0; L < c->n_layers; L++)
        for (int k = LP_HOOK_RESID_PRE; k <= LP_HOOK_RESID_POST; k++)
            if (kind_exists(c, (lp_hook_kind)k) && n++ == i) {
                *kind = (lp_hook_kind)k;
                *layer = L;
                return LP_OK;
            }
    for (int k = LP_HOOK_LN_FINAL_SCALE; k < LP_HOOK_KIND_COUNT; k++)
        if (n++ == i) {
            *kind = (lp_hook_kind)k;
            *layer = -1;
            return LP_OK;
        }
    return LP_ENOTFOUND;
}

int lp_model_hook_shape(const lp_model *m, lp_hook_kind kind, int B, int T, int Tk, int64_t *ne)
{
    const lp_config *c = &m->cfg;
    ne[0] = B;
    ne[1] = T;
    switch (kind) {
    case LP_HOOK_LN1_SCALE:
    case LP_HOOK_LN2_SCALE:
    case LP_HOOK_LN_FINAL_SCALE: ne[2] = 1; return 3;
    case LP_HOOK_Q: case LP_HOOK_K: case LP_HOOK_V: case LP_HOOK_ROT_Q: case LP_HOOK_ROT_K: case LP_HOOK_Z:
        ne[2] = c->n_heads;
        ne[3] = c->d_head;
        return 4;
    case LP_HOOK_ATTN_SCORES:
    case LP_HOOK_PATTERN:
        ne[1] = c->n_heads;
        ne[2] = T;
        ne[3] = Tk;
        return 4;
    case LP_HOOK_MLP_PRE:
    case LP_HOOK_MLP_PRE_LINEAR:
    case LP_HOOK_MLP_POST: ne[2] = c->d_mlp; return 3;
    default: ne[2] = c->d_model; return 3;
    }
}

/* ---------------- scratch and hook plumbing ---------------- */

static float *scratch(fwd *f, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (f->ws_top + n > f->ws_cap)
        return NULL; /* sized up front; cannot happen */
    float *p = f->ws + f->ws_top;
    f->ws_top += n;
    return p;
}

/* Storage for activation (kind, layer): in the cache when wanted there, else scratch. */
static int act(fwd *f, lp_hook_kind k, int layer, buf *out)
{
    int64_t ne[LP_MAX_DIMS];
    int nd = lp_model_hook_shape(f->m, k, f->B, f->T, f->Tk, ne);
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)ne[i];
    if (*want_at(f, k, layer) & W_CACHE) {
        char name[96];
        lp_hook_name(k, layer, name, sizeof name);
        lp_tensor t = lp_cache_alloc(f->o->cache, name, nd, ne);
        if (!t.data)
            return lp_error_set(f->err, LP_ENOMEM, "out of memory caching %s (%zu bytes)", name, n * 4);
        out->p = t.data;
        out->cached = 1;
        return LP_OK;
    }
    out->p = scratch(f, n);
    out->cached = 0;
    if (!out->p)
        return lp_error_set(f->err, LP_ENOMEM, "internal: workspace too small");
    return LP_OK;
}

static int fire(fwd *f, lp_hook_kind k, int layer, float *data)
{
    if (!(*want_at(f, k, layer) & W_USER))
        return LP_OK;
    char name[96];
    lp_hook_name(k, layer, name, sizeof name);
    int64_t ne[LP_MAX_DIMS];
    int nd = lp_model_hook_shape(f->m, k, f->B, f->T, f->Tk, ne);
    lp_hook_info info = {name, k, layer, f->B, f->T, f->past, f->lengths, f->tokens, f->err};
    const lp_hooks *h = f->o->hooks;
    for (int i = 0; i < lpi_hooks_n(h); i++) {
        if (!lp_hook_match(lpi_hooks_pattern(h, i), name))
            continue;
        lp_tensor t = lp_tensor_make(LP_F32, data, nd, ne);
        lp_error_clear(f->err);
        int rc = lpi_hooks_fn(h, i)(&t, &info, lpi_hooks_user(h, i));
        if (rc) {
            if (!f->err->msg[0])
                lp_error_set(f->err, rc, "hook on %s failed (%s)", name, lp_strerror(rc));
            else
                lp_error_prefix(f->err, "hook on %s", name);
            f->err->code = rc < 0 ? rc : LP_EINVAL;
            return f->err->code;
        }
    }
    return LP_OK;
}

/* Whether anybody (hook or cache) looks at (kind, layer). */
static int wanted(fwd *f, lp_hook_kind k, int layer) { return *want_at(f, k, layer) != 0; }

/* Point `dst` at the same values as `src` under a new name: alias when nothing can
 * observe the difference, else copy. */
static int continue_as(fwd *f, lp_hook_kind k, int layer, buf src, size_t n, buf *dst)
{
    unsigned char w = *want_at(f, k, layer);
    if ((w & W_CACHE) || (src.cached && (w & W_USER))) {
        int rc = act(f, k, layer, dst);
        if (rc)
            return rc;
        memcpy(dst->p, src.p, n * sizeof(float));
        return LP_OK;
    }
    *dst = src;
    return LP_OK;
}

/* ---------------- building blocks ---------------- */

typedef struct lin_ctx {
    const lpi_linear *l;
    const float *x;
    float *y;
    int ldx, ldy, M, chunk;
} lin_ctx;

static void lin_task(int task, int thread, void *vctx)
{
    (void)thread;
    const lin_ctx *a = vctx;
    const lpi_linear *l = a->l;
    int j0 = task * a->chunk, j1 = j0 + a->chunk < l->n_out ? j0 + a->chunk : l->n_out;
    if (j1 <= j0)
        return;
    const float *w = l->trans ? l->w + (size_t)j0 * l->ld : l->w + j0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, l->trans ? CblasTrans : CblasNoTrans, a->M, j1 - j0, l->n_in, 1.0f, a->x,
                a->ldx, w, l->ld, 0.0f, a->y + j0, a->ldy);
    if (l->b)
        for (int r = 0; r < a->M; r++) {
            float *yr = a->y + (size_t)r * a->ldy;
            for (int j = j0; j < j1; j++)
                yr[j] += l->b[j];
        }
}

/* y = x·W (+ b), split over output columns across the pool: each thread runs a
 * single-threaded sgemm on its own column block. */
static void linear_par(lpi_pool *pool, const lpi_linear *l, const float *x, int ldx, float *y, int ldy, int M)
{
    if (M <= 0)
        return;
    int n = lpi_pool_size(pool);
    /* waking the pool costs microseconds: tiny products run inline */
    int tasks = n > 1 && (double)M * l->n_out * l->n_in >= (1 << 20) ? 2 * n : 1;
    int chunk = (l->n_out + tasks - 1) / tasks;
    chunk = (chunk + 15) & ~15;
    tasks = (l->n_out + chunk - 1) / chunk;
    lin_ctx a = {l, x, y, ldx, ldy, M, chunk};
    lpi_pool_run(pool, tasks, lin_task, &a);
}

void lpi_linear_fwd(const lpi_linear *l, const float *x, int ldx, float *y, int ldy, int M)
{
    lin_ctx a = {l, x, y, ldx, ldy, M, l->n_out};
    if (M > 0)
        lin_task(0, 0, &a);
}

typedef struct norm_ctx {
    const lp_config *c;
    const float *x, *w, *b;
    float *y, *scale;
    int rows, chunk;
} norm_ctx;

static void norm_task(int task, int thread, void *vctx)
{
    (void)thread;
    const norm_ctx *a = vctx;
    const lp_config *c = a->c;
    int r0 = task * a->chunk, n = r0 + a->chunk < a->rows ? a->chunk : a->rows - r0;
    if (n <= 0)
        return;
    size_t off = (size_t)r0 * c->d_model;
    float *sc = a->scale ? a->scale + r0 : NULL;
    if (c->norm == LP_NORM_RMSNORM)
        lpi_rmsnorm(a->x + off, c->d_model, a->y + off, c->d_model, sc, a->w, n, c->d_model, c->norm_eps);
    else
        lpi_layernorm(a->x + off, c->d_model, a->y + off, c->d_model, sc, a->w, a->b, n, c->d_model, c->norm_eps);
}

static void norm_rows(lpi_pool *pool, const lp_config *c, const float *x, float *y, float *scale, const float *w,
                      const float *b, int rows)
{
    int tasks = rows >= 64 && pool ? 2 * lpi_pool_size(pool) : 1;
    norm_ctx a = {c, x, w, b, y, scale, rows, (rows + tasks - 1) / tasks};
    if (pool)
        lpi_pool_run(pool, tasks, norm_task, &a);
    else
        norm_task(0, 0, &a);
}

static void norm(fwd *f, const float *x, float *y, float *scale, const float *w, const float *b, int rows)
{
    norm_rows(f->m->pool, f->c, x, y, scale, w, b, rows);
}

/* ln → (scale, normalized) hooks; returns the normalized buffer. */
static int norm_point(fwd *f, lp_hook_kind ks, lp_hook_kind kn, int layer, const float *x, const float *w,
                      const float *b, buf *out)
{
    buf sc = {NULL, 0};
    int rc;
    int want_scale = wanted(f, ks, layer);
    if (want_scale && (rc = act(f, ks, layer, &sc)))
        return rc;
    if ((rc = act(f, kn, layer, out)))
        return rc;
    norm(f, x, out->p, sc.p, w, b, f->BT);
    if (want_scale && (rc = fire(f, ks, layer, sc.p)))
        return rc;
    return fire(f, kn, layer, out->p);
}

static void rope(fwd *f, const float *src, float *dst, int heads)
{
    const lp_config *c = f->c;
    int Dh = c->d_head, half = c->rotary_dim / 2;
    for (int b = 0; b < f->B; b++)
        for (int t = 0; t < f->T; t++) {
            const float *cs = f->rope_cos + (size_t)t * half, *sn = f->rope_sin + (size_t)t * half;
            for (int h = 0; h < heads; h++) {
                size_t o = (((size_t)b * f->T + t) * heads + h) * Dh;
                const float *x = src + o;
                float *y = dst + o;
                for (int i = 0; i < half; i++) {
                    float x1 = x[i], x2 = x[i + half];
                    y[i] = x1 * cs[i] - x2 * sn[i];
                    y[i + half] = x2 * cs[i] + x1 * sn[i];
                }
                if (y != x)
                    memcpy(y + 2 * half, x + 2 * half, (size_t)(Dh - 2 * half) * sizeof(float));
            }
        }
}

/* Repeat each kv head over its query-head group: [BT, hk, Dh] → [BT, H, Dh]. */
static void expand_heads(const float *src, float *dst, size_t rows, int hk, int H, int Dh)
{
    int g = H / hk;
    for (size_t r = 0; r < rows; r++)
        for (int h = 0; h < H; h++)
            memcpy(dst + (r * H + h) * Dh, src + (r * hk + h / g) * Dh, (size_t)Dh * sizeof(float));
}

static int kv_store(fwd *f, int L, const float *k, const float *v, int hk)
{
    lp_kv *kv = f->o->kv;
    const lp_config *c = f->c;
    int Dh = c->d_head, H = c->n_heads;
    if (kv->heads[L] == 0) {
        kv->k[L] = malloc((size_t)kv->max_pos * hk * Dh * sizeof(float));
        kv->v[L] = malloc((size_t)kv->max_pos * hk * Dh * sizeof(float));
        if (!kv->k[L] || !kv->v[L])
            return lp_error_set(f->err, LP_ENOMEM, "out of memory for the KV cache");
        kv->heads[L] = hk;
    } else if (kv->heads[L] != hk && hk == H) { /* now expanded: widen what is stored */
        float *nk = malloc((size_t)kv->max_pos * H * Dh * sizeof(float));
        float *nv = malloc((size_t)kv->max_pos * H * Dh * sizeof(float));
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return lp_error_set(f->err, LP_ENOMEM, "out of memory for the KV cache");
        }
        expand_heads(kv->k[L], nk, (size_t)f->past, kv->heads[L], H, Dh);
        expand_heads(kv->v[L], nv, (size_t)f->past, kv->heads[L], H, Dh);
        free(kv->k[L]);
        free(kv->v[L]);
        kv->k[L] = nk;
        kv->v[L] = nv;
        kv->heads[L] = H;
    }
    int hs = kv->heads[L];
    size_t off = (size_t)f->past * hs * Dh;
    if (hs == hk) {
        memcpy(kv->k[L] + off, k, (size_t)f->T * hk * Dh * sizeof(float));
        memcpy(kv->v[L] + off, v, (size_t)f->T * hk * Dh * sizeof(float));
    } else {
        expand_heads(k, kv->k[L] + off, (size_t)f->T, hk, hs, Dh);
        expand_heads(v, kv->v[L] + off, (size_t)f->T, hk, hs, Dh);
    }
    return LP_OK;
}

/* Scaled, masked scores for query rows [t0, t1) of (b, h) into S (row stride lds),
 * columns [0, kmax) computed, the rest of each row up to Tk set to -inf. */
static void scores_block(fwd *f, int b, const float *q, int ldq, const float *k, int ldk, float alpha, int t0,
                         int t1, int kmax, float *S, int lds)
{
    int Dh = f->c->d_head, len = f->lengths[b];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t1 - t0, kmax, Dh, alpha, q + (size_t)t0 * ldq, ldq, k,
                ldk, 0.0f, S, lds);
    for (int t = t0; t < t1; t++) {
        float *row = S + (size_t)(t - t0) * lds;
        int lim = f->past + t + 1; /* causal */
        if (lim > f->past + len)
            lim = f->past + len; /* right padding keys */
        if (lim < 1)
            lim = 1;
        for (int p = lim; p < f->Tk; p++)
            row[p] = -INFINITY;
    }
}

/* Attention is parallel over (batch, head) pairs; each phase is one pool run. */
typedef struct att_ctx {
    fwd *f;
    const float *q, *k, *v;
    float *S, *P, *z; /* S/P: materialised [B, H, T, Tk] or NULL */
    float *scratch;   /* per thread [QBLOCK, Tk] for the fused path */
    int hk, g, ldq, ldk, full;
    float alpha;
    enum { PH_SCORES, PH_SOFTMAX, PH_PV, PH_FUSED } phase;
} att_ctx;

static void att_task(int task, int thread, void *vctx)
{
    att_ctx *a = vctx;
    fwd *f = a->f;
    int H = f->c->n_heads, Dh = f->c->d_head, T = f->T, Tk = f->Tk;
    int b = task / H, h = task % H;
    const float *qb = a->q + ((size_t)b * T * H + h) * Dh;
    const float *kb = a->k + ((size_t)b * Tk * a->hk + h / a->g) * Dh;
    const float *vb = a->v + ((size_t)b * Tk * a->hk + h / a->g) * Dh;
    float *zb = a->z + ((size_t)b * T * H + h) * Dh;
    size_t bh = ((size_t)b * H + h) * T * Tk;
    for (int t0 = 0; t0 < T; t0 += QBLOCK) {
        int t1 = t0 + QBLOCK < T ? t0 + QBLOCK : T;
        int kmax = f->past + t1;
        switch (a->phase) {
        case PH_SCORES:
            scores_block(f, b, qb, a->ldq, kb, a->ldk, a->alpha, t0, t1, kmax, a->S + bh + (size_t)t0 * Tk, Tk);
            break;
        case PH_SOFTMAX:
            for (int t = t0; t < t1; t++)
                lpi_softmax_row(a->P + bh + (size_t)t * Tk, Tk);
            break;
        case PH_PV:
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t1 - t0, Dh, a->full ? Tk : kmax, 1.0f,
                        a->P + bh + (size_t)t0 * Tk, Tk, vb, a->ldk, 0.0f, zb + (size_t)t0 * a->ldq, a->ldq);
            break;
        case PH_FUSED: {
            float *S = a->scratch + (size_t)thread * QBLOCK * Tk;
            scores_block(f, b, qb, a->ldq, kb, a->ldk, a->alpha, t0, t1, kmax, S, Tk);
            for (int t = t0; t < t1; t++)
                lpi_softmax_row(S + (size_t)(t - t0) * Tk, kmax);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t1 - t0, Dh, kmax, 1.0f, S, Tk, vb, a->ldk, 0.0f,
                        zb + (size_t)t0 * a->ldq, a->ldq);
            break;
        }
        }
    }
}

static int attention(fwd *f, int L, const float *q, const float *k, const float *v, int hk, buf *z)
{
    const lp_config *c = f->c;
    int H = c->n_heads, Dh = c->d_head, T = f->T, Tk = f->Tk, rc;
    if ((rc = act(f, LP_HOOK_Z, L, z)))
        return rc;
    att_ctx a = {f, q, k, v, NULL, NULL, z->p, NULL, hk, H / hk, H * Dh, hk * Dh, 0, c->attn_scale, PH_FUSED};
    if (c->scale_attn_by_inverse_layer_idx)
        a.alpha /= (float)(L + 1);
    lpi_pool *pool = (double)f->B * H * T * Tk * Dh >= (1 << 20) ? f->m->pool : NULL; /* inline when tiny */
    int tasks = f->B * H;
    if (wanted(f, LP_HOOK_ATTN_SCORES, L) || wanted(f, LP_HOOK_PATTERN, L)) {
        buf S, P;
        if ((rc = act(f, LP_HOOK_ATTN_SCORES, L, &S)))
            return rc;
        a.S = S.p;
        a.phase = PH_SCORES;
        lpi_pool_run(pool, tasks, att_task, &a);
        if ((rc = fire(f, LP_HOOK_ATTN_SCORES, L, S.p)))
            return rc;
        size_t n = (size_t)f->B * H * T * Tk;
        if (S.cached || (*want_at(f, LP_HOOK_PATTERN, L) & W_CACHE)) {
            if ((rc = act(f, LP_HOOK_PATTERN, L, &P)))
                return rc;
            memcpy(P.p, S.p, n * sizeof(float));
        } else {
            P = S;
        }
        a.P = P.p;
        a.phase = PH_SOFTMAX;
        lpi_pool_run(pool, tasks, att_task, &a);
        if ((rc = fire(f, LP_HOOK_PATTERN, L, P.p)))
            return rc;
        a.full = (*want_at(f, LP_HOOK_PATTERN, L) & W_USER) != 0; /* edits may reach masked entries */
        a.phase = PH_PV;
        lpi_pool_run(pool, tasks, att_task, &a);
    } else {
        size_t mark = f->ws_top;
        a.scratch = scratch(f, (size_t)lpi_pool_size(f->m->pool) * QBLOCK * Tk);
        if (!a.scratch)
            return lp_error_set(f->err, LP_ENOMEM, "internal: workspace too small");
        a.phase = PH_FUSED;
        lpi_pool_run(pool, tasks, att_task, &a);
        f->ws_top = mark;
    }
    return fire(f, LP_HOOK_Z, L, z->p);
}

typedef struct act_ctx {
    lp_act_kind kind;
    const float *src, *lin;
    float *dst;
    size_t n, chunk;
} act_ctx;

static void act_task(int task, int thread, void *vctx)
{
    (void)thread;
    const act_ctx *a = vctx;
    size_t i0 = (size_t)task * a->chunk, n = i0 + a->chunk < a->n ? a->chunk : a->n - i0;
    if (i0 >= a->n)
        return;
    const float *src = a->src + i0;
    float *dst = a->dst + i0;
    if (a->lin && a->kind == LP_ACT_SILU) { /* fused SwiGLU */
        lpi_silu_mul(src, a->lin + i0, dst, n);
        return;
    }
    if (dst != src)
        memcpy(dst, src, n * sizeof(float));
    switch (a->kind) {
    case LP_ACT_GELU_TANH: lpi_gelu_tanh(dst, n); break;
    case LP_ACT_GELU_ERF: lpi_gelu_erf(dst, n); break;
    case LP_ACT_SILU:
        for (size_t i = 0; i < n; i++)
            dst[i] = dst[i] / (1.0f + lpi_expf(-dst[i]));
        break;
    case LP_ACT_RELU: lpi_relu(dst, n); break;
    }
    if (a->lin)
        for (size_t i = 0; i < n; i++)
            dst[i] *= a->lin[i0 + i];
}

/* dst = act(src) (· lin for gated MLPs), in parallel chunks */
static void activation(fwd *f, lp_act_kind kind, const float *src, const float *lin, float *dst, size_t n)
{
    int tasks = n >= 16384 ? 2 * lpi_pool_size(f->m->pool) : 1;
    size_t chunk = ((n + (size_t)tasks - 1) / (size_t)tasks + 15) & ~(size_t)15;
    act_ctx a = {kind, src, lin, dst, n, chunk};
    lpi_pool_run(f->m->pool, tasks, act_task, &a);
}

static int block(fwd *f, int L, buf x, buf *out)
{
    const lp_config *c = f->c;
    const lpi_layer *w = &f->m->layers[L];
    int D = c->d_model, H = c->n_heads, Dh = c->d_head, F = c->d_mlp, BT = f->BT, rc;
    int hk = c->n_kv_heads;
    size_t nD = (size_t)BT * D;

    /* attention */
    buf a_in, q, k, v;
    if ((rc = norm_point(f, LP_HOOK_LN1_SCALE, LP_HOOK_LN1_NORMALIZED, L, x.p, w->ln1_w, w->ln1_b, &a_in)))
        return rc;
    int expand = hk != H && (wanted(f, LP_HOOK_K, L) || wanted(f, LP_HOOK_V, L) || wanted(f, LP_HOOK_ROT_K, L));
    if ((rc = act(f, LP_HOOK_Q, L, &q)))
        return rc;
    if (c->arch == LP_ARCH_LLAMA) {
        if ((rc = act(f, LP_HOOK_K, L, &k)) || (rc = act(f, LP_HOOK_V, L, &v)))
            return rc;
        linear_par(f->m->pool, &w->q, a_in.p, D, q.p, H * Dh, BT);
        if (expand) {
            /* the two temporaries stay in scratch until the block ends */
            float *tk = scratch(f, (size_t)BT * hk * Dh), *tv = scratch(f, (size_t)BT * hk * Dh);
            linear_par(f->m->pool, &w->k, a_in.p, D, tk, hk * Dh, BT);
            linear_par(f->m->pool, &w->v, a_in.p, D, tv, hk * Dh, BT);
            expand_heads(tk, k.p, (size_t)BT, hk, H, Dh);
            expand_heads(tv, v.p, (size_t)BT, hk, H, Dh);
            hk = H;
        } else {
            linear_par(f->m->pool, &w->k, a_in.p, D, k.p, hk * Dh, BT);
            linear_par(f->m->pool, &w->v, a_in.p, D, v.p, hk * Dh, BT);
        }
    } else {
        if ((rc = act(f, LP_HOOK_K, L, &k)) || (rc = act(f, LP_HOOK_V, L, &v)))
            return rc;
        if (c->arch == LP_ARCH_GPT2) { /* c_attn columns are [q | k | v], each [H, Dh] */
            lpi_linear lq = w->qkv, lk = w->qkv, lv = w->qkv;
            lq.n_out = lk.n_out = lv.n_out = D;
            lk.w += D;
            lv.w += 2 * D;
            if (w->qkv.b) {
                lk.b += D;
                lv.b += 2 * D;
            }
            linear_par(f->m->pool, &lq, a_in.p, D, q.p, D, BT);
            linear_par(f->m->pool, &lk, a_in.p, D, k.p, D, BT);
            linear_par(f->m->pool, &lv, a_in.p, D, v.p, D, BT);
        } else { /* neox: rows of query_key_value are [H, 3, Dh] */
            size_t mark = f->ws_top;
            float *qkv = scratch(f, (size_t)BT * 3 * D);
            linear_par(f->m->pool, &w->qkv, a_in.p, D, qkv, 3 * D, BT);
            for (size_t r = 0; r < (size_t)BT; r++)
                for (int h = 0; h < H; h++) {
                    const float *s = qkv + r * 3 * D + (size_t)h * 3 * Dh;
                    size_t o = (r * H + h) * Dh;
                    memcpy(q.p + o, s, (size_t)Dh * sizeof(float));
                    memcpy(k.p + o, s + Dh, (size_t)Dh * sizeof(float));
                    memcpy(v.p + o, s + 2 * Dh, (size_t)Dh * sizeof(float));
                }
            f->ws_top = mark;
        }
    }
    if ((rc = fire(f, LP_HOOK_Q, L, q.p)) || (rc = fire(f, LP_HOOK_K, L, k.p)) || (rc = fire(f, LP_HOOK_V, L, v.p)))
        return rc;
    buf rq = q, rk = k;
    if (c->rotary_dim > 0) {
        if ((rc = act(f, LP_HOOK_ROT_Q, L, &rq)) || (rc = act(f, LP_HOOK_ROT_K, L, &rk)))
            return rc;
        rope(f, q.p, rq.p, H);
        rope(f, k.p, rk.p, hk);
        if ((rc = fire(f, LP_HOOK_ROT_Q, L, rq.p)) || (rc = fire(f, LP_HOOK_ROT_K, L, rk.p)))
            return rc;
    }
    const float *K = rk.p, *V = v.p;
    if (f->o->kv) {
        if ((rc = kv_store(f, L, rk.p, v.p, hk)))
            return rc;
        hk = f->o->kv->heads[L];
        K = f->o->kv->k[L];
        V = f->o->kv->v[L];
    }
    buf z, ao;
    if ((rc = attention(f, L, rq.p, K, V, hk, &z)))
        return rc;
    if ((rc = act(f, LP_HOOK_ATTN_OUT, L, &ao)))
        return rc;
    linear_par(f->m->pool, &w->o, z.p, H * Dh, ao.p, D, BT);
    if ((rc = fire(f, LP_HOOK_ATTN_OUT, L, ao.p)))
        return rc;

    /* MLP */
    buf mid = x;
    if (!c->parallel_blocks) {
        if ((rc = act(f, LP_HOOK_RESID_MID, L, &mid)))
            return rc;
        lpi_add(x.p, ao.p, mid.p, nD);
        if ((rc = fire(f, LP_HOOK_RESID_MID, L, mid.p)))
            return rc;
    }
    buf m_in, pre, post, mo;
    if ((rc = norm_point(f, LP_HOOK_LN2_SCALE, LP_HOOK_LN2_NORMALIZED, L, mid.p, w->ln2_w, w->ln2_b, &m_in)))
        return rc;
    size_t nF = (size_t)BT * F;
    if ((rc = act(f, LP_HOOK_MLP_PRE, L, &pre)))
        return rc;
    if (c->gated_mlp) {
        buf lin;
        if ((rc = act(f, LP_HOOK_MLP_PRE_LINEAR, L, &lin)))
            return rc;
        linear_par(f->m->pool, &w->mlp_gate, m_in.p, D, pre.p, F, BT);
        linear_par(f->m->pool, &w->mlp_in, m_in.p, D, lin.p, F, BT);
        if ((rc = fire(f, LP_HOOK_MLP_PRE, L, pre.p)) || (rc = fire(f, LP_HOOK_MLP_PRE_LINEAR, L, lin.p)))
            return rc;
        if ((rc = act(f, LP_HOOK_MLP_POST, L, &post)))
            return rc;
        activation(f, c->act, pre.p, lin.p, post.p, nF);
    } else {
        linear_par(f->m->pool, &w->mlp_in, m_in.p, D, pre.p, F, BT);
        if ((rc = fire(f, LP_HOOK_MLP_PRE, L, pre.p)))
            return rc;
        /* The activation may overwrite hook_pre in place once its hooks have run, unless the
         * cache keeps hook_pre or wants hook_post in its own storage. */
        if (!pre.cached && !(*want_at(f, LP_HOOK_MLP_POST, L) & W_CACHE))
            post = pre;
        else if ((rc = act(f, LP_HOOK_MLP_POST, L, &post)))
            return rc;
        activation(f, c->act, pre.p, NULL, post.p, nF);
    }
    if ((rc = fire(f, LP_HOOK_MLP_POST, L, post.p)))
        return rc;
    if ((rc = act(f, LP_HOOK_MLP_OUT, L, &mo)))
        return rc;
    linear_par(f->m->pool, &w->mlp_out, post.p, F, mo.p, D, BT);
    if ((rc = fire(f, LP_HOOK_MLP_OUT, L, mo.p)))
        return rc;

    /* resid_post goes to the persistent slot this block's parity owns */
    buf y;
    if (*want_at(f, LP_HOOK_RESID_POST, L) & W_CACHE) {
        if ((rc = act(f, LP_HOOK_RESID_POST, L, &y)))
            return rc;
    } else {
        y.p = f->ws + (size_t)(L % 2) * ((nD + 15) & ~(size_t)15);
        y.cached = 0;
    }
    if (c->parallel_blocks)
        lpi_add3(x.p, ao.p, mo.p, y.p, nD);
    else
        lpi_add(mid.p, mo.p, y.p, nD);
    if ((rc = fire(f, LP_HOOK_RESID_POST, L, y.p)))
        return rc;
    *out = y;
    return LP_OK;
}

/* ---------------- the run ---------------- */

static int resolve(fwd *f)
{
    const lp_config *c = f->c;
    const lp_hooks *h = f->o->hooks;
    int nh = lpi_hooks_n(h);
    unsigned char *hit = calloc((size_t)nh + 1, 1);
    if (!hit)
        return lp_error_set(f->err, LP_ENOMEM, "out of memory");
    int np = lp_model_n_hook_points(f->m);
    char name[96];
    for (int i = 0; i < np; i++) {
        lp_hook_kind k;
        int layer;
        lp_model_hook_point(f->m, i, &k, &layer);
        lp_hook_name(k, layer, name, sizeof name);
        unsigned char w = 0;
        for (int j = 0; j < nh; j++)
            if (lp_hook_match(lpi_hooks_pattern(h, j), name)) {
                w |= W_USER;
                hit[j] = 1;
            }
        if (f->o->cache && lp_cache_wants(f->o->cache, name))
            w |= W_CACHE;
        if (f->o->stop_at_layer > 0 && (layer >= f->o->stop_at_layer || layer < 0) && k >= LP_HOOK_LN_FINAL_SCALE)
            w = 0;
        *want_at(f, k, layer) = w;
    }
    for (int j = 0; j < nh; j++)
        if (!hit[j]) {
            int rc = lp_error_set(f->err, LP_ENOTFOUND,
                                  "hook '%s' matches no hook point of this %s model (%d blocks; names look like "
                                  "blocks.0.hook_resid_pre, blocks.0.attn.hook_pattern)",
                                  lpi_hooks_pattern(h, j), c->model_type, c->n_layers);
            free(hit);
            return rc;
        }
    free(hit);
    return LP_OK;
}

static size_t r16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t workspace_floats(const fwd *f, int mat_scores)
{
    const lp_config *c = f->c;
    size_t BT = (size_t)f->BT, D = (size_t)c->d_model, HD = (size_t)c->n_heads * c->d_head, F = (size_t)c->d_mlp;
    size_t n = 2 * r16(BT * D);              /* persistent residual slots        */
    n += 2 * r16(BT * D);                    /* embed, pos_embed                 */
    n += 2 * r16(BT) + 3 * r16(BT * D);      /* ln1, ln2, scales, attn_out       */
    n += r16(BT * D);                        /* resid_mid                        */
    n += 7 * r16(BT * HD) + r16(BT * 3 * D); /* q k v rot_q rot_k z + temps, qkv */
    n += 3 * r16(BT * F) + r16(BT * D);      /* pre, pre_linear, post, mlp_out   */
    n += (size_t)lpi_pool_size(f->m->pool) * r16((size_t)QBLOCK * f->Tk);
    if (mat_scores)
        n += 2 * r16((size_t)f->B * c->n_heads * f->T * f->Tk);
    n += r16(BT * D) + r16(BT) + 2 * r16((size_t)f->T * (c->rotary_dim / 2 + 1)); /* ln_final, rope */
    return n + 64;
}

lp_run_opts lp_run_opts_default(void)
{
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

static int check_inputs(lp_model *m, const lp_batch *bt, const lp_run_opts *o, int past, lp_error *err)
{
    const lp_config *c = &m->cfg;
    if (!bt || !bt->tokens || bt->n_batch <= 0 || bt->n_pos <= 0)
        return lp_error_set(err, LP_EINVAL, "empty batch: need at least one token");
    if (o->kv && bt->n_batch != 1)
        return lp_error_set(err, LP_EINVAL, "a KV cache runs one sequence at a time (batch is %d)", bt->n_batch);
    if (o->kv && past + bt->n_pos > o->kv->max_pos)
        return lp_error_set(err, LP_EINVAL, "KV cache holds %d positions; %d + %d do not fit", o->kv->max_pos, past,
                            bt->n_pos);
    if (c->learned_pos && past + bt->n_pos > c->n_ctx)
        return lp_error_set(err, LP_EINVAL, "%d positions exceed the model's context of %d", past + bt->n_pos,
                            c->n_ctx);
    if (o->stop_at_layer < 0 || o->stop_at_layer > c->n_layers)
        return lp_error_set(err, LP_EINVAL, "stop_at_layer %d is out of range 0..%d", o->stop_at_layer, c->n_layers);
    if (o->logits != LP_LOGITS_NONE && !o->logits_out)
        return lp_error_set(err, LP_EINVAL, "logits requested without an output buffer");
    size_t n = (size_t)bt->n_batch * bt->n_pos;
    for (size_t i = 0; i < n; i++)
        if (bt->tokens[i] < 0 || bt->tokens[i] >= c->d_vocab)
            return lp_error_set(err, LP_EINVAL, "token id %d at index %zu is out of range 0..%d", bt->tokens[i], i,
                                c->d_vocab - 1);
    if (bt->lengths)
        for (int b = 0; b < bt->n_batch; b++)
            if (bt->lengths[b] < 1 || bt->lengths[b] > bt->n_pos)
                return lp_error_set(err, LP_EINVAL, "sequence %d has length %d (must be 1..%d)", b, bt->lengths[b],
                                    bt->n_pos);
    return LP_OK;
}

int lp_model_run(lp_model *m, const lp_batch *bt, const lp_run_opts *opts, lp_error *err)
{
    double t0 = lpi_now();
    lp_run_opts defaults = lp_run_opts_default();
    const lp_run_opts *o = opts ? opts : &defaults;
    const lp_config *c = &m->cfg;
    int past = o->kv ? o->kv->len : 0;
    int blas_threads = m->pool ? lpi_pool_size(m->pool) : (openblas_get_num_threads ? openblas_get_num_threads() : 1);
    int rc = check_inputs(m, bt, o, past, err);
    if (rc)
        return rc;
    fwd f = {0};
    f.m = m;
    f.c = c;
    f.o = o;
    f.err = err;
    f.B = bt->n_batch;
    f.T = bt->n_pos;
    f.BT = f.B * f.T;
    f.past = past;
    f.Tk = past + f.T;
    f.tokens = bt->tokens;
    f.want = calloc((size_t)(c->n_layers + 1) * LP_HOOK_KIND_COUNT, 1);
    f.lengths = malloc((size_t)f.B * sizeof(int32_t));
    if (!f.want || !f.lengths) {
        rc = lp_error_set(err, LP_ENOMEM, "out of memory");
        goto done;
    }
    for (int b = 0; b < f.B; b++)
        f.lengths[b] = bt->lengths ? bt->lengths[b] : f.T;
    if ((rc = resolve(&f)))
        goto done;
    if (!m->pool)
        m->pool = lpi_pool_new(blas_threads);
    /* The pool splits every matrix product itself; BLAS runs one thread per call. */
    if (openblas_set_num_threads && blas_threads > 1)
        openblas_set_num_threads(1);
    int mat = 0;
    for (int L = 0; L < c->n_layers; L++)
        mat |= wanted(&f, LP_HOOK_ATTN_SCORES, L) || wanted(&f, LP_HOOK_PATTERN, L);
    size_t need = workspace_floats(&f, mat);
    if (m->ws.cap < need) {
        free(m->ws.buf);
        m->ws.buf = lpi_aligned_alloc(need * sizeof(float));
        m->ws.cap = m->ws.buf ? need : 0;
        if (!m->ws.buf) {
            rc = lp_error_set(err, LP_ENOMEM, "out of memory for a %zu MiB workspace", need * 4 >> 20);
            goto done;
        }
    }
    f.ws = m->ws.buf;
    f.ws_cap = m->ws.cap;
    size_t nD = (size_t)f.BT * c->d_model;
    f.ws_top = 2 * r16(nD);
    if (c->rotary_dim > 0) {
        int half = c->rotary_dim / 2;
        f.rope_cos = scratch(&f, (size_t)f.T * half);
        f.rope_sin = scratch(&f, (size_t)f.T * half);
        for (int t = 0; t < f.T; t++)
            for (int i = 0; i < half; i++) {
                float ang = (float)(past + t) * m->rope_inv_freq[i];
                f.rope_cos[(size_t)t * half + i] = cosf(ang);
                f.rope_sin[(size_t)t * half + i] = sinf(ang);
            }
    }
    /* embeddings */
    buf e, pe = {NULL, 0}, x;
    if ((rc = act(&f, LP_HOOK_EMBED, -1, &e)))
        goto done;
    for (int i = 0; i < f.BT; i++)
        memcpy(e.p + (size_t)i * c->d_model, m->wte + (size_t)bt->tokens[i] * c->d_model, c->d_model * sizeof(float));
    if ((rc = fire(&f, LP_HOOK_EMBED, -1, e.p)))
        goto done;
    if (c->learned_pos) {
        if ((rc = act(&f, LP_HOOK_POS_EMBED, -1, &pe)))
            goto done;
        for (int b = 0; b < f.B; b++)
            for (int t = 0; t < f.T; t++)
                memcpy(pe.p + ((size_t)b * f.T + t) * c->d_model, m->wpe + (size_t)(past + t) * c->d_model,
                       c->d_model * sizeof(float));
        if ((rc = fire(&f, LP_HOOK_POS_EMBED, -1, pe.p)))
            goto done;
        if ((rc = act(&f, LP_HOOK_RESID_PRE, 0, &x)))
            goto done;
        if (!x.cached) /* the slot resid_post(0) does not use */
            x.p = f.ws + r16(nD);
        lpi_add(e.p, pe.p, x.p, nD);
    } else if ((rc = continue_as(&f, LP_HOOK_RESID_PRE, 0, e, nD, &x))) {
        goto done;
    }
    if ((rc = fire(&f, LP_HOOK_RESID_PRE, 0, x.p)))
        goto done;
    size_t mark = f.ws_top;
    int n_blocks = o->stop_at_layer > 0 ? o->stop_at_layer : c->n_layers;
    for (int L = 0; L < n_blocks; L++) {
        if (o->should_abort && o->should_abort(o->abort_user)) {
            rc = lp_error_set(err, LP_ECANCELLED, "cancelled at block %d", L);
            goto done;
        }
        if (L > 0) {
            buf nx;
            if ((rc = continue_as(&f, LP_HOOK_RESID_PRE, L, x, nD, &nx)))
                goto done;
            x = nx;
            if ((rc = fire(&f, LP_HOOK_RESID_PRE, L, x.p)))
                goto done;
        }
        buf y;
        if ((rc = block(&f, L, x, &y)))
            goto done;
        x = y;
        f.ws_top = mark;
    }
    if (o->stop_at_layer > 0)
        goto done;
    /* final norm and unembedding */
    int want_lnf = wanted(&f, LP_HOOK_LN_FINAL_NORMALIZED, -1) || wanted(&f, LP_HOOK_LN_FINAL_SCALE, -1);
    if (o->logits == LP_LOGITS_NONE && !want_lnf)
        goto done;
    if (o->logits == LP_LOGITS_LAST && !want_lnf) {
        float *rows = scratch(&f, (size_t)f.B * c->d_model);
        for (int b = 0; b < f.B; b++) {
            const float *src = x.p + ((size_t)b * f.T + f.lengths[b] - 1) * c->d_model;
            norm(&f, src, rows + (size_t)b * c->d_model, NULL, m->lnf_w, m->lnf_b, 1);
        }
        linear_par(m->pool, &m->unembed, rows, c->d_model, o->logits_out, c->d_vocab, f.B);
        goto done;
    }
    buf ln;
    if ((rc = norm_point(&f, LP_HOOK_LN_FINAL_SCALE, LP_HOOK_LN_FINAL_NORMALIZED, -1, x.p, m->lnf_w, m->lnf_b, &ln)))
        goto done;
    if (o->logits == LP_LOGITS_ALL) {
        linear_par(m->pool, &m->unembed, ln.p, c->d_model, o->logits_out, c->d_vocab, f.BT);
    } else if (o->logits == LP_LOGITS_LAST) {
        for (int b = 0; b < f.B; b++)
            linear_par(m->pool, &m->unembed, ln.p + ((size_t)b * f.T + f.lengths[b] - 1) * c->d_model, c->d_model,
                           o->logits_out + (size_t)b * c->d_vocab, c->d_vocab, 1);
    }
done:
    if (openblas_set_num_threads && blas_threads > 1)
        openblas_set_num_threads(blas_threads);
    if (!rc && o->kv)
        o->kv->len += f.T;
    free(f.want);
    free(f.lengths);
    m->last_run_ms = (lpi_now() - t0) * 1e3;
    return rc;
}

/* The final norm and unembedding exactly as lp_model_run applies them (same row
 * chunks, same column split over the model's pool, single-threaded BLAS per task), so
 * that lens readings of the final residual stream equal the model's logits bit for bit. */
int lp_model_ln_final(const lp_model *m, const float *x, int rows, float *out, float *scale)
{
    if (rows > 0)
        norm_rows(m->pool, &m->cfg, x, out, scale, m->lnf_w, m->lnf_b, rows);
    return LP_OK;
}

int lp_model_unembed(const lp_model *m, const float *x, int rows, float *logits)
{
    if (rows <= 0)
        return LP_OK;
    if (!m->pool) {
        lpi_linear_fwd(&m->unembed, x, m->cfg.d_model, logits, m->cfg.d_vocab, rows);
    } else {
        int threads = lpi_pool_size(m->pool);
        if (openblas_set_num_threads && threads > 1)
            openblas_set_num_threads(1);
        linear_par(m->pool, &m->unembed, x, m->cfg.d_model, logits, m->cfg.d_vocab, rows);
        if (openblas_set_num_threads && threads > 1)
            openblas_set_num_threads(threads);
    }
    if (m->b_U)
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < m->cfg.d_vocab; j++)
                logits[(size_t)r * m->cfg.d_vocab + j] += m->b_U[j];
    return LP_OK;
}

int lp_model_unembed_slice(const lp_model *m, const float *x, int rows, int v0, int v1, float *out, int ldo)
{
    const lpi_linear *l = &m->unembed;
    if (rows < 0 || v0 < 0 || v1 > m->cfg.d_vocab || v0 >= v1 || ldo < v1 - v0 || (rows > 0 && (!x || !out)))
        return LP_EINVAL;
    if (rows == 0)
        return LP_OK;
    const float *w = l->trans ? l->w + (size_t)v0 * l->ld : l->w + v0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, l->trans ? CblasTrans : CblasNoTrans, rows, v1 - v0, l->n_in, 1.0f, x,
                l->n_in, w, l->ld, 0.0f, out, ldo);
    for (int k = 0; k < 2; k++) {
        const float *b = k ? m->b_U : l->b;
        if (b)
            for (int r = 0; r < rows; r++) {
                float *o = out + (size_t)r * ldo;
                for (int j = 0; j < v1 - v0; j++)
                    o[j] += b[v0 + j];
            }
    }
    return LP_OK;
}

int lp_model_threads(const lp_model *m)
{
    return lpi_pool_size(m->pool);
}

int lp_model_parallel(const lp_model *m, int n_tasks, void (*fn)(int task, int thread, void *ctx), void *ctx)
{
    if (!fn || n_tasks < 0)
        return LP_EINVAL;
    if (n_tasks == 0)
        return LP_OK;
    if (!m->pool) {
        for (int t = 0; t < n_tasks; t++)
            fn(t, 0, ctx);
        return LP_OK;
    }
    int threads = lpi_pool_size(m->pool);
    if (openblas_set_num_threads && threads > 1)
        openblas_set_num_threads(1);
    lpi_pool_run(m->pool, n_tasks, fn, ctx);
    if (openblas_set_num_threads && threads > 1)
        openblas_set_num_threads(threads);
    return LP_OK;
}

/* ---------------- KV cache ---------------- */

lp_kv *lp_kv_new(const lp_model *m, int max_pos)
{
    if (max_pos <= 0)
        return NULL;
    lp_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return NULL;
    kv->max_pos = max_pos;
    kv->n_layers = m->cfg.n_layers;
    kv->d_head = m->cfg.d_head;
    kv->heads = calloc((size_t)kv->n_layers, sizeof(int));
    kv->k = calloc((size_t)kv->n_layers, sizeof(float *));
    kv->v = calloc((size_t)kv->n_layers, sizeof(float *));
    if (!kv->heads || !kv->k || !kv->v) {
        lp_kv_free(kv);
        return NULL;
    }
    return kv;
}

void lp_kv_free(lp_kv *kv)
{
    if (!kv)
        return;
    for (int L = 0; L < kv->n_layers; L++) {
        if (kv->k)
            free(kv->k[L]);
        if (kv->v)
            free(kv->v[L]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->heads);
    free(kv);
}

void lp_kv_clear(lp_kv *kv) { kv->len = 0; }
int lp_kv_len(const lp_kv *kv) { return kv->len; }
void lp_kv_truncate(lp_kv *kv, int len)
{
    if (kv && len >= 0 && len < kv->len)
        kv->len = len;
}
