/* logit_lens — what the model would predict if the residual stream stopped at each
 * layer: the final norm and the unembedding applied to blocks.L.hook_resid_pre for every
 * L, and to the final residual stream (resid_post of the last block), at every position.
 * See README.md in this folder for how to read the results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "loupe/plugin.h"
#include "plugin_util.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

static const lp_param_desc params[] = {
    {"prompt", LP_PARAM_TEXT, NULL, "the text to run (tokenized with the model's BOS rule)"},
    {"k", LP_PARAM_INT, "5", "how many top tokens to list per layer and position (1..1000)"},
    {"target", LP_PARAM_STRING, "", "a token to follow: its text (\" Mary\", must be one token) or #ID"},
    {"positions", LP_PARAM_STRING, "all", "which positions: all, or a comma list (negative counts from the end)"},
    {"logits", LP_PARAM_BOOL, "false", "also return the lens logits as a tensor [layer, pos, vocab]"},
};

static const char help[] =
    "For every layer L in 0..n_layers and each chosen position, apply the model's final norm\n"
    "and unembedding to the residual stream: layer L < n_layers reads blocks.L.hook_resid_pre\n"
    "(what block L receives), layer n_layers reads the final residual stream (resid_post of\n"
    "the last block), whose lens is exactly the model's own logits.\n"
    "\n"
    "Results:\n"
    "  top               table: layer, pos, token, id, rank, prob, logit (the k most likely tokens)\n"
    "  kl                [layer, pos] KL(final || layer) in nats: 0 at the last layer; how far each\n"
    "                    layer's guess is from the model's final distribution\n"
    "  target_prob       [layer, pos] probability of `target` (when given)\n"
    "  target_rank       [layer, pos] its rank, 1 = most likely (when given)\n"
    "  positions         [pos] the absolute position of each column\n"
    "  first_layer_top1  first layer whose top-1 token at the last position is the final top-1\n"
    "  logits            [layer, pos, vocab] the lens logits (with logits=true)\n";

/* ---------------- how the lens is computed ----------------
 *
 * One forward pass gives the model's logits at every position (the last layer of the
 * lens, exactly) and caches every blocks.L.hook_resid_pre. Those residual streams go
 * through the final norm into X [rows = positions × n_layers, d_model]. The vocabulary
 * is cut into chunks of LENS_CHUNK columns; each chunk is one task on the model's
 * threads: its logits Z = X·W_U[:, chunk] (a cache-sized buffer, never the whole
 * [rows, vocab] matrix), then per row and chunk the partial statistics below. Merging
 * the chunks in order gives log Σ exp, KL, target rank and top-k exactly as if each
 * row's full logits had been materialised; the chunk width is fixed, so a row's numbers
 * do not depend on which positions were asked for. */
#define LENS_CHUNK 2048

typedef struct part {
    float m;          /* max logit in the chunk                                   */
    double s;         /* Σ exp(z − m) over the chunk                              */
    double d;         /* Σ p_final·(z_final − z)  (the KL numerator's chunk part) */
    double pf;        /* Σ p_final over the chunk (final rows only)               */
    int64_t above;    /* how many logits exceed the target's                      */
} part;

typedef struct cand {
    float z;
    int32_t id;
} cand;

typedef struct lens {
    const lp_host_api *h;
    lp_call *call;
    lp_model *m;
    int T, V, D, NL;
    int *sel;    /* [nsel] absolute positions asked for */
    int nsel;
    int *pos;    /* [np] positions computed: sel, plus the last position when absent */
    int np;
    int k;       /* top-k per row and chunk */
    int32_t target;
    int nchunk;
    float *flog; /* [T, V] the forward pass's logits: the final layer of the lens */
    float *x;    /* [np·NL, D] normed residual streams, row j·NL + L */
    double *lse_f; /* [np] log Σ exp of the final logits */
    float *zt;   /* [np·(NL+1)] the target's logit per row */
    part *parts; /* [np·(NL+1), nchunk] */
    cand *tops;  /* [np·(NL+1), nchunk, k] */
    float *zbuf; /* [threads, np·NL, LENS_CHUNK] */
    float *pbuf; /* [threads, 2, LENS_CHUNK]: p_final and exp scratch */
    float *lt;   /* logits result [NL+1, nsel, V] or NULL */
    lp_cache *cache;
    int c_first; /* the first chunk of the current parallel batch */
} lens;

static void lens_free(lens *s)
{
    if (s->cache)
        s->h->cache_free(s->cache);
    s->h->free(s->flog);
    s->h->free(s->x);
    s->h->free(s->zbuf);
    s->h->free(s->pbuf);
    free(s->lse_f);
    free(s->zt);
    free(s->parts);
    free(s->tops);
    free(s->sel);
    free(s->pos);
}

/* Printable token text: control bytes escaped; #ID when the model has no tokenizer. */
static void token_text(const lens *s, int32_t id, char *out, size_t cap) { pu_token_text(s->h, s->m, id, out, cap); }

static int parse_positions(lens *s, const char *spec)
{
    s->sel = malloc(sizeof(int) * (strlen(spec) / 2 + (size_t)s->T + 2));
    if (!s->sel)
        return s->h->error(s->call, LP_ENOMEM, "out of memory");
    if (!strcmp(spec, "all") || !*spec) {
        for (int t = 0; t < s->T; t++)
            s->sel[s->nsel++] = t;
        return 0;
    }
    const char *p = spec;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            return s->h->error(s->call, LP_EINVAL, "positions: '%s' is not 'all' or a comma list of positions", spec);
        long a = v < 0 ? s->T + v : v;
        if (a < 0 || a >= s->T)
            return s->h->error(s->call, LP_EINVAL, "positions: %ld is outside the prompt's %d positions", v, s->T);
        s->sel[s->nsel++] = (int)a;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return 0;
}

static int parse_target(lens *s, const char *spec, int32_t *id)
{
    *id = -1;
    if (!spec || !*spec)
        return 0;
    if (spec[0] == '#' && spec[1]) {
        char *end;
        long v = strtol(spec + 1, &end, 10);
        if (*end || v < 0 || v >= s->V)
            return s->h->error(s->call, LP_EINVAL, "target: '%s' is not a token id in 0..%d", spec, s->V - 1);
        *id = (int32_t)v;
        return 0;
    }
    int32_t *ids = NULL;
    int n = 0;
    lp_error err = {0};
    int rc = s->h->tokenize(s->m, spec, 0, &ids, &n, &err);
    if (rc) {
        s->h->free(ids);
        return s->h->error(s->call, rc, "target: %s", err.msg);
    }
    if (n != 1) {
        s->h->free(ids);
        return s->h->error(s->call, LP_EINVAL, "target: '%s' is %d tokens; give one token (or #ID)", spec, n);
    }
    *id = ids[0];
    s->h->free(ids);
    return 0;
}

/* ---------------- vector kernels over one row's chunk ----------------
 * Written with explicit lanes so that the compiler vectorises them without
 * -ffast-math, and so that the summation order is fixed. */
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define LANES 16

/* exp(x) for x ≤ 88 (Cephes' expf: range reduction by ln 2, degree-6 polynomial, about
 * 1 ulp); x below −87 gives ≈1e-38 instead of 0, which no sum here can see. */
static inline float lens_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    /* n = round(x / ln 2) by the 1.5·2^23 trick: adds and subtracts vectorise, floorf may not */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float sc;
    memcpy(&sc, &e, sizeof sc);
    return p * sc;
}

typedef float lens_v16 __attribute__((vector_size(64)));
typedef int32_t lens_v16i __attribute__((vector_size(64)));

/* max of z[0..n): a compare-and-select on 16-wide vectors (the compiler will not turn a
 * scalar max reduction into vector code without -ffast-math) */
HOT static float vmax(const float *z, int n)
{
    lens_v16 acc = (lens_v16){0} - INFINITY;
    int i = 0;
    for (; i + LANES <= n; i += LANES) {
        lens_v16 v;
        memcpy(&v, z + i, sizeof v);
        lens_v16i mk = v > acc;
        acc = (lens_v16)(((lens_v16i)v & mk) | ((lens_v16i)acc & ~mk));
    }
    float m = acc[0];
    for (int l = 1; l < LANES; l++)
        m = acc[l] > m ? acc[l] : m;
    for (; i < n; i++)
        m = z[i] > m ? z[i] : m;
    return m;
}

/* out = exp(z − m) */
HOT static void vexp(const float *z, int n, float m, float *out)
{
    for (int i = 0; i < n; i++)
        out[i] = lens_expf(z[i] - m);
}

/* Σ e in double, 16 lanes */
HOT static double vsum(const float *e, int n)
{
    double acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += e[i + l];
    for (; i < n; i++)
        acc[0] += e[i];
    double s = 0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* tmp = exp(z − m), returning Σ tmp: the terms in float, the sum in double */
static double vsumexp(const float *z, int n, float m, float *tmp)
{
    vexp(z, n, m, tmp);
    return vsum(tmp, n);
}

/* Σ p·(zf − z) */
HOT static double vkl(const float *p, const float *zf, const float *z, int n)
{
    double acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += (double)(p[i + l] * (zf[i + l] - z[i + l]));
    for (; i < n; i++)
        acc[0] += (double)(p[i] * (zf[i] - z[i]));
    double s = 0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

HOT static int64_t vcount_gt(const float *z, int n, float t)
{
    int32_t acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += z[i + l] > t;
    for (; i < n; i++)
        acc[0] += z[i] > t;
    int64_t c = 0;
    for (int l = 0; l < LANES; l++)
        c += acc[l];
    return c;
}

/* (z desc, id asc): a total order, so chunks can be merged in any order */
static int cand_before(cand a, cand b)
{
    return a.z > b.z || (a.z == b.z && a.id < b.id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    cand a = *(const cand *)pa, b = *(const cand *)pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* The k best of a chunk (fewer when the chunk is narrower), best first; unused slots get
 * id −1. m is the chunk's max: with k = 1 only its first occurrence is looked for. */
static void topk_chunk(const float *z, int n, int v0, int k, float m, cand *out)
{
    for (int r = 0; r < k; r++)
        out[r] = (cand){-INFINITY, -1};
    if (k == 1) {
        for (int v = 0; v < n; v++)
            if (z[v] == m) {
                out[0] = (cand){z[v], v0 + v};
                return;
            }
        return;
    }
    int filled = 0;
    for (int v = 0; v < n; v++) {
        if (filled == k && !(z[v] > out[k - 1].z))
            continue; /* ties keep the lower id, already in */
        if (z[v] != z[v])
            continue; /* NaN */
        cand c = {z[v], v0 + v};
        int i = filled < k ? filled++ : k - 1;
        while (i > 0 && cand_before(c, out[i - 1])) {
            out[i] = out[i - 1];
            i--;
        }
        out[i] = c;
    }
}

static inline size_t row_of(const lens *s, int j, int L)
{
    return (size_t)j * (s->NL + 1) + L;
}

/* One chunk of the vocabulary for every row: the chunk's logits, then its partials. */
static void chunk_task(int task, int thread, void *ctx)
{
    lens *s = ctx;
    const int c = s->c_first + task, NL = s->NL, V = s->V;
    const int v0 = c * LENS_CHUNK, v1 = v0 + LENS_CHUNK < V ? v0 + LENS_CHUNK : V, w = v1 - v0;
    float *Z = s->zbuf + (size_t)thread * s->np * NL * LENS_CHUNK;
    float *P = s->pbuf + (size_t)thread * 2 * LENS_CHUNK, *E = P + LENS_CHUNK;
    s->h->model_unembed_slice(s->m, s->x, s->np * NL, v0, v1, Z, LENS_CHUNK);
    for (int j = 0; j < s->np; j++) {
        const float *zf = s->flog + (size_t)s->pos[j] * V + v0;
        double pf = vsumexp(zf, w, (float)s->lse_f[j], P); /* P = p_final over the chunk */
        for (int L = 0; L <= NL; L++) {
            const float *z = L < NL ? Z + ((size_t)j * NL + L) * LENS_CHUNK : zf;
            size_t r = row_of(s, j, L);
            part *pt = s->parts + r * s->nchunk + c;
            pt->m = vmax(z, w);
            pt->s = vsumexp(z, w, pt->m, E);
            pt->d = L < NL ? vkl(P, zf, z, w) : 0;
            pt->pf = L == NL ? pf : 0;
            pt->above = s->target >= 0 ? vcount_gt(z, w, s->zt[r]) : 0;
            topk_chunk(z, w, v0, s->k, pt->m, s->tops + (r * s->nchunk + c) * s->k);
            if (s->lt && j < s->nsel)
                memcpy(s->lt + ((size_t)L * s->nsel + j) * V + v0, z, sizeof(float) * (size_t)w);
        }
    }
}

/* The target's logit in every row: its chunk computed exactly as chunk_task does. */
static void target_task(int task, int thread, void *ctx)
{
    (void)task;
    lens *s = ctx;
    const int NL = s->NL, V = s->V, c = s->target / LENS_CHUNK;
    const int v0 = c * LENS_CHUNK, v1 = v0 + LENS_CHUNK < V ? v0 + LENS_CHUNK : V;
    float *Z = s->zbuf + (size_t)thread * s->np * NL * LENS_CHUNK;
    s->h->model_unembed_slice(s->m, s->x, s->np * NL, v0, v1, Z, LENS_CHUNK);
    for (int j = 0; j < s->np; j++)
        for (int L = 0; L <= NL; L++)
            s->zt[row_of(s, j, L)] = L < NL ? Z[((size_t)j * NL + L) * LENS_CHUNK + s->target - v0]
                                            : s->flog[(size_t)s->pos[j] * V + s->target];
}

/* log Σ exp over a full row from its chunks' max and Σ exp(z − max) */
static double merge_lse(const part *p, int nchunk)
{
    float M = p[0].m;
    for (int c = 1; c < nchunk; c++)
        M = p[c].m > M ? p[c].m : M;
    double S = 0;
    for (int c = 0; c < nchunk; c++)
        S += p[c].s * exp((double)p[c].m - M);
    return M + log(S);
}

/* the final layer's log Σ exp per position, chunk by chunk like every other row */
static void final_lse(lens *s)
{
    part p[256];
    for (int j = 0; j < s->np; j++) {
        const float *zf = s->flog + (size_t)s->pos[j] * s->V;
        for (int c = 0; c < s->nchunk; c++) {
            int v0 = c * LENS_CHUNK, w = v0 + LENS_CHUNK < s->V ? LENS_CHUNK : s->V - v0;
            p[c].m = vmax(zf + v0, w);
            p[c].s = vsumexp(zf + v0, w, p[c].m, s->pbuf);
        }
        s->lse_f[j] = merge_lse(p, s->nchunk);
    }
}

static int run(lp_call *call, const lp_host_api *h)
{
    lens s;
    memset(&s, 0, sizeof s);
    s.h = h;
    s.call = call;
    s.m = h->call_model(call);
    if (!s.m)
        return h->error(call, LP_EINVAL, "needs a model");
    if (!LP_HOST_HAS(h, model_unembed_slice) || !LP_HOST_HAS(h, parallel))
        return h->error(call, LP_EUNSUPPORTED, "this loupe is older than plugin ABI 1.1 (no parallel unembedding)");
    const lp_config *cfg = h->model_config(s.m);
    const int32_t *tok = h->param_tokens(call, "prompt", &s.T);
    s.V = cfg->d_vocab;
    s.D = cfg->d_model;
    s.NL = cfg->n_layers;
    int64_t k = h->param_int(call, "k");
    if (k < 1 || k > 1000 || k > s.V)
        return h->error(call, LP_EINVAL, "k must be in 1..%d (got %lld); logits=true gives every logit",
                        s.V < 1000 ? s.V : 1000, (long long)k);
    s.k = (int)k;
    int want_logits = h->param_bool(call, "logits");
    int rc = parse_target(&s, h->param_str(call, "target"), &s.target);
    if (!rc)
        rc = parse_positions(&s, h->param_str(call, "positions"));
    if (rc) {
        lens_free(&s);
        return rc;
    }
    const int NL = s.NL, V = s.V, T = s.T, ns = s.nsel;
    s.nchunk = (V + LENS_CHUNK - 1) / LENS_CHUNK;
    if (s.nchunk > 256) {
        lens_free(&s);
        return h->error(call, LP_EUNSUPPORTED, "a vocabulary of %d tokens is more than this lens handles (%d)", V,
                        256 * LENS_CHUNK);
    }

    /* the positions computed: those asked for, and the last (first_layer_top1 reads it) */
    s.pos = malloc(sizeof(int) * (size_t)(ns + 1));
    if (!s.pos) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    memcpy(s.pos, s.sel, sizeof(int) * (size_t)ns);
    s.np = ns;
    int j_last = -1;
    for (int j = 0; j < ns && j_last < 0; j++)
        if (s.sel[j] == T - 1)
            j_last = j;
    if (j_last < 0)
        s.pos[j_last = s.np++] = T - 1;
    const int np = s.np, rows = np * (NL + 1);

    /* one forward pass: every position's logits, and every block's resid_pre cached */
    s.cache = h->cache_new();
    const char *const filt[] = {"blocks.*.hook_resid_pre"};
    lp_error err = {0};
    if (!s.cache || (rc = h->cache_set_filter(s.cache, filt, 1, &err))) {
        lens_free(&s);
        return h->error(call, rc ? rc : LP_ENOMEM, "cache: %s", err.msg);
    }
    s.flog = h->alloc(sizeof(float) * (size_t)T * V);
    if (!s.flog) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory (%d positions x %d tokens)", T, V);
    }
    lp_batch b = {.tokens = tok, .n_batch = 1, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.cache = s.cache;
    o.logits = LP_LOGITS_ALL;
    o.logits_out = s.flog;
    if ((rc = h->model_run(s.m, &b, &o, &err))) {
        lens_free(&s);
        return h->error(call, rc, "%s", err.msg);
    }

    int threads = h->model_threads(s.m);
    if (threads < 1)
        threads = 1;
    s.x = h->alloc(sizeof(float) * (size_t)np * NL * s.D);
    s.zbuf = h->alloc(sizeof(float) * (size_t)threads * np * NL * LENS_CHUNK);
    s.pbuf = h->alloc(sizeof(float) * (size_t)threads * 2 * LENS_CHUNK);
    s.lse_f = malloc(sizeof(double) * (size_t)np);
    s.zt = malloc(sizeof(float) * (size_t)rows);
    s.parts = calloc((size_t)rows * s.nchunk, sizeof(part));
    s.tops = malloc(sizeof(cand) * (size_t)rows * s.nchunk * s.k);
    if (!s.x || !s.zbuf || !s.pbuf || !s.lse_f || !s.zt || !s.parts || !s.tops) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory (%d rows x %d tokens)", rows, V);
    }
    /* X: each layer's residual stream at the chosen positions, through the final norm */
    for (int L = 0; L < NL; L++) {
        char name[64];
        h->hook_name(LP_HOOK_RESID_PRE, L, name, sizeof name);
        int i = h->cache_find(s.cache, name);
        lp_tensor t = i >= 0 ? h->cache_entry(s.cache, i) : (lp_tensor){0};
        if (i < 0 || t.dtype != LP_F32 || t.ndim != 3 || t.ne[1] != T || t.ne[2] != s.D) {
            lens_free(&s);
            return h->error(call, LP_ENOTFOUND, "the forward pass did not cache %s as [1, %d, %d]", name, T, s.D);
        }
        for (int j = 0; j < np; j++)
            memcpy(s.x + ((size_t)j * NL + L) * s.D, (const float *)t.data + (size_t)s.pos[j] * s.D,
                   sizeof(float) * (size_t)s.D);
    }
    h->cache_free(s.cache);
    s.cache = NULL;
    if ((rc = h->model_ln_final(s.m, s.x, np * NL, s.x, NULL))) {
        lens_free(&s);
        return h->error(call, rc, "the final norm failed");
    }

    /* results */
    int64_t ne2[2] = {NL + 1, ns}, ne3[3] = {NL + 1, ns, V}, ne1[1] = {ns};
    lp_tensor kl = h->result_tensor(call, "kl", 2, ne2, "layer,pos");
    lp_tensor tp = {0}, tr = {0}, lt = {0};
    lp_tensor posr = h->result_tensor(call, "positions", 1, ne1, "pos");
    if (s.target >= 0) {
        tp = h->result_tensor(call, "target_prob", 2, ne2, "layer,pos");
        tr = h->result_tensor(call, "target_rank", 2, ne2, "layer,pos");
    }
    if (want_logits)
        lt = h->result_tensor(call, "logits", 3, ne3, "layer,pos,vocab");
    const char *const cols[] = {"layer", "pos", "token", "id", "rank", "prob", "logit"};
    int top = h->result_table(call, "top", 7, cols);
    if (!kl.data || !posr.data || (s.target >= 0 && (!tp.data || !tr.data)) || (want_logits && !lt.data) || top < 0) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory for the results");
    }
    s.lt = lt.data;
    for (int j = 0; j < ns; j++)
        ((float *)posr.data)[j] = (float)s.sel[j];

    /* the final distribution's normaliser, the target's logits, then the vocabulary in
     * batches of chunks (progress and cancellation between batches) */
    final_lse(&s);
    if (s.target >= 0)
        h->parallel(s.m, 1, target_task, &s);
    int batch = 2 * threads;
    for (int c0 = 0; c0 < s.nchunk; c0 += batch) {
        if (h->progress(call, c0, s.nchunk, "vocabulary chunks")) {
            lens_free(&s);
            return h->error(call, LP_ECANCELLED, "cancelled after %d of %d vocabulary chunks", c0, s.nchunk);
        }
        s.c_first = c0;
        h->parallel(s.m, c0 + batch < s.nchunk ? batch : s.nchunk - c0, chunk_task, &s);
    }
    h->progress(call, s.nchunk, s.nchunk, "vocabulary chunks");

    /* merge the chunks row by row */
    size_t ncand = (size_t)s.nchunk * s.k;
    int32_t *top1 = malloc(sizeof(int32_t) * (size_t)(NL + 1));
    if (!top1) {
        lens_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    for (int L = 0; L <= NL && !rc; L++) {
        for (int j = 0; j < np && !rc; j++) {
            size_t r = row_of(&s, j, L);
            double lse = merge_lse(s.parts + r * s.nchunk, s.nchunk);
            cand *cs = s.tops + r * ncand;
            qsort(cs, ncand, sizeof(cand), cand_cmp);
            if (j == j_last)
                top1[L] = cs[0].id;
            if (j >= ns)
                continue; /* computed only for first_layer_top1 */
            const part *p = s.parts + r * s.nchunk, *pf = s.parts + row_of(&s, j, NL) * s.nchunk;
            double d = 0, psum = 0;
            for (int c = 0; c < s.nchunk; c++) {
                d += p[c].d;
                psum += pf[c].pf;
            }
            /* KL(final || L) = Σ p_f (z_f − z) + (lse_L − lse_f)·Σ p_f; exactly 0 for the final layer */
            double klv = L == NL ? 0 : d + (lse - s.lse_f[j]) * psum;
            ((float *)kl.data)[(size_t)L * ns + j] = (float)(klv > 0 ? klv : 0);
            if (s.target >= 0) {
                int64_t above = 0;
                for (int c = 0; c < s.nchunk; c++)
                    above += p[c].above;
                ((float *)tp.data)[(size_t)L * ns + j] = (float)exp((double)s.zt[r] - lse);
                ((float *)tr.data)[(size_t)L * ns + j] = (float)(above + 1);
            }
            for (int q = 0; q < s.k && cs[q].id >= 0; q++) {
                char text[96];
                token_text(&s, cs[q].id, text, sizeof text);
                lp_cell row[7] = {
                    {1, L, NULL}, {1, s.sel[j], NULL}, {0, 0, text}, {1, cs[q].id, NULL}, {1, q + 1, NULL},
                    {1, exp((double)cs[q].z - lse), NULL}, {1, cs[q].z, NULL},
                };
                if ((rc = h->table_row(call, top, row)))
                    rc = h->error(call, rc, "out of memory for the table");
            }
        }
    }
    int first_top1 = -1;
    for (int L = 0; L <= NL && first_top1 < 0; L++)
        if (top1[L] == top1[NL])
            first_top1 = L;
    free(top1);
    if (!rc)
        h->result_scalar(call, "first_layer_top1", first_top1);
    lens_free(&s);
    return rc;
}

static const lp_method_desc method = {
    .struct_size = sizeof(lp_method_desc),
    .name = "run",
    .summary = "the logit lens: each layer's residual stream read through the final norm and unembedding",
    .help = help,
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .caps = LP_CAP_READS_ACTIVATIONS,
    .run = run,
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    int rc = host->set_info(plugin, "logit_lens", "1.0.0", "logit lens: per-layer predictions through the unembedding");
    if (!rc)
        rc = host->register_method(plugin, &method);
    return rc;
}
