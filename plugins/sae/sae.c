/* sae — sparse autoencoders as a loupe plugin: an activation store (harvest), SAELens-
 * compatible SAE files, training, encoding a prompt's tokens, evaluation (L0, explained
 * variance, CE loss recovered, KL, dead/dense latents, density histogram), comparing two
 * dictionaries, and feature dashboards. The numeric core lives in the other files of this
 * folder (no host calls there); this file reads parameters, drives the model through the
 * host table and writes results. See README.md. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "loupe/plugin.h"
#include "sae_impl.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

static const lp_host_api *H;

static void host_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc)
{
    H->sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- hook widths: the flattened per-position size of a hook point ---- */
static int hook_width(lp_model *m, const char *name, int head_index, char *err)
{
    const lp_config *c = H->model_config(m);
    int n = H->model_n_hook_points(m);
    for (int i = 0; i < n; i++) {
        lp_hook_kind k;
        int layer;
        char buf[128];
        H->model_hook_point(m, i, &k, &layer);
        H->hook_name(k, layer, buf, sizeof buf);
        if (strcmp(buf, name))
            continue;
        switch (k) {
        case LP_HOOK_Q: case LP_HOOK_K: case LP_HOOK_V: case LP_HOOK_Z: case LP_HOOK_ROT_Q: case LP_HOOK_ROT_K:
            return head_index >= 0 ? c->d_head : c->n_heads * c->d_head;
        case LP_HOOK_MLP_PRE: case LP_HOOK_MLP_PRE_LINEAR: case LP_HOOK_MLP_POST:
            return c->d_mlp;
        case LP_HOOK_LN1_SCALE: case LP_HOOK_LN2_SCALE: case LP_HOOK_LN_FINAL_SCALE:
            return 1;
        case LP_HOOK_ATTN_SCORES: case LP_HOOK_PATTERN:
            return sae_err(err, SAE_EUNSUPPORTED, "%s is not a per-position activation (SAEs read per-token vectors)",
                           name);
        default:
            return c->d_model;
        }
    }
    return sae_err(err, SAE_ENOTFOUND, "the model has no hook point '%s' (see `loupe hooks`)", name);
}

static int hook_layer(const char *name)
{
    int L = -1;
    if (sscanf(name, "blocks.%d.", &L) == 1)
        return L;
    return -1;
}

/* ---- a one-entry cache of the last SAE loaded (encode is called per keystroke) ---- */
static struct {
    char path[1024];
    time_t mtime;
    off_t size;
    sae s;
    int valid;
} cache;

static int sae_get(lp_call *call, const char *path, const sae **out)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", path);
    struct stat sb;
    if (stat(p, &sb) != 0) {
        snprintf(p, sizeof p, "%s/params.npz", path);
        if (stat(p, &sb) != 0 && stat(path, &sb) != 0)
            return H->error(call, LP_ENOTFOUND, "%s: no such SAE (a folder with cfg.json and sae_weights.safetensors, "
                                                "or a Gemma Scope params.npz)", path);
    }
    if (cache.valid && !strcmp(cache.path, path) && cache.mtime == sb.st_mtime && cache.size == sb.st_size) {
        *out = &cache.s;
        return 0;
    }
    if (cache.valid)
        sae_free(&cache.s);
    cache.valid = 0;
    char err[SAE_ERR_MAX];
    int rc = sae_load(path, &cache.s, err);
    if (rc)
        return H->error(call, rc, "%s", err);
    snprintf(cache.path, sizeof cache.path, "%s", path);
    cache.mtime = sb.st_mtime;
    cache.size = sb.st_size;
    cache.valid = 1;
    *out = &cache.s;
    return 0;
}

/* Load an SAE and check it fits the call's model (hook exists, width matches). */
static int sae_for_model(lp_call *call, lp_model *m, const char *path, const char *hook_override, const sae **out,
                         char *hook, size_t hcap)
{
    int rc = sae_get(call, path, out);
    if (rc)
        return rc;
    const sae *s = *out;
    snprintf(hook, hcap, "%s", hook_override && *hook_override ? hook_override : s->hook_name);
    if (!hook[0])
        return H->error(call, LP_EINVAL, "%s: the SAE names no hook point; pass hook=NAME", path);
    char err[SAE_ERR_MAX];
    int w = hook_width(m, hook, s->hook_head_index, err);
    if (w < 0)
        return H->error(call, w, "%s: %s", path, err);
    if (w != s->d_in)
        return H->error(call, LP_EINVAL, "%s: d_in is %d but the model's %s is %d wide", path, s->d_in, hook, w);
    return 0;
}

/* ---- token text for tables ---- */
static void token_text(lp_model *m, int32_t id, char *out, size_t cap)
{
    char raw[128];
    int n = H->token_bytes(m, id, raw, sizeof raw);
    if (n < 0) {
        snprintf(out, cap, "#%d", (int)id);
        return;
    }
    if (n > (int)sizeof raw)
        n = (int)sizeof raw;
    size_t k = 0;
    for (int i = 0; i < n && k + 5 < cap; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\n')
            k += (size_t)snprintf(out + k, cap - k, "\\n");
        else if (c < 0x20 || c == 0x7f)
            k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
        else
            out[k++] = (char)c;
    }
    out[k] = 0;
}

/* ---- corpus → contexts ---- */
typedef struct contexts {
    int32_t *tok; /* [n, T] */
    int64_t n;
    int T;
} contexts;

static int append_tokens(int32_t **buf, int64_t *n, int64_t *cap, const int32_t *ids, int k)
{
    if (*n + k > *cap) {
        int64_t c = (*n + k) * 2 + 4096;
        int32_t *b = realloc(*buf, sizeof(int32_t) * (size_t)c);
        if (!b)
            return LP_ENOMEM;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *n, ids, sizeof(int32_t) * (size_t)k);
    *n += k;
    return 0;
}

/* Documents: JSONL lines with a "text" field, or plain text split at blank lines (or at
 * every newline when by_line). Each is
 * tokenized without BOS; documents are joined by the BOS token (SAELens' default
 * separator) when the model has one; the stream is cut into contexts of T tokens, each
 * starting with BOS when prepend_bos. */
static int corpus_contexts(lp_call *call, lp_model *m, const char *path, int T, int bos, int64_t max_ctx,
                           int by_line, contexts *out, int64_t *corpus_bytes)
{
    size_t len;
    char *text = sae_slurp(path, &len);
    if (!text)
        return H->error(call, LP_ENOTFOUND, "corpus %s: cannot read", path);
    *corpus_bytes = (int64_t)len;
    const lp_config *cfg = H->model_config(m);
    int bos_id = cfg->bos_token_id >= 0 ? cfg->bos_token_id : cfg->eos_token_id;
    if (bos && bos_id < 0) {
        free(text);
        return H->error(call, LP_EINVAL, "prepend_bos: the model has no BOS/EOS token id");
    }
    size_t pl = strlen(path);
    int jsonl = pl > 6 && !strcmp(path + pl - 6, ".jsonl");
    int32_t *stream = NULL;
    int64_t ns = 0, cap = 0;
    int rc = 0;
    int64_t want = max_ctx > 0 ? max_ctx * T + T : -1;
    char *p = text;
    while (*p && !rc && (want < 0 || ns < want)) {
        char *doc = NULL, *end;
        cJSON *j = NULL;
        if (jsonl) {
            end = strchr(p, '\n');
            if (end)
                *end = 0;
            j = cJSON_Parse(p);
            const cJSON *t = cJSON_GetObjectItem(j, "text");
            if (cJSON_IsString(t))
                doc = t->valuestring;
            p = end ? end + 1 : p + strlen(p);
        } else {
            end = by_line ? strchr(p, '\n') : strstr(p, "\n\n");
            if (end)
                *end = 0;
            doc = p;
            p = end ? end + (by_line ? 1 : 2) : p + strlen(p);
        }
        if (doc && *doc) {
            int32_t *ids = NULL;
            int n = 0;
            lp_error e = {0};
            if ((rc = H->tokenize(m, doc, 0, &ids, &n, &e)) == 0) {
                if (ns > 0 && bos_id >= 0) {
                    int32_t sep = bos_id;
                    rc = append_tokens(&stream, &ns, &cap, &sep, 1);
                }
                if (!rc)
                    rc = append_tokens(&stream, &ns, &cap, ids, n);
            } else
                rc = H->error(call, rc, "corpus %s: %s", path, e.msg);
            H->free(ids);
        }
        cJSON_Delete(j);
    }
    free(text);
    if (rc) {
        free(stream);
        return rc;
    }
    int body = bos ? T - 1 : T;
    int64_t nc = body > 0 ? ns / body : 0;
    if (max_ctx > 0 && nc > max_ctx)
        nc = max_ctx;
    if (nc == 0) {
        free(stream);
        return H->error(call, LP_EINVAL, "corpus %s: %lld tokens, not enough for one context of %d", path,
                        (long long)ns, T);
    }
    out->tok = malloc(sizeof(int32_t) * (size_t)nc * T);
    if (!out->tok) {
        free(stream);
        return H->error(call, LP_ENOMEM, "out of memory");
    }
    for (int64_t c = 0; c < nc; c++) {
        int32_t *o = out->tok + c * T;
        if (bos)
            *o++ = bos_id;
        memcpy(o, stream + c * body, sizeof(int32_t) * (size_t)body);
    }
    out->n = nc;
    out->T = T;
    free(stream);
    return 0;
}

/* ---- capturing / splicing activations through hooks ---- */
typedef struct hook_io {
    float *buf;     /* [n_batch * n_pos, d] rows of the current batch */
    int d;
    int head;       /* hook_head_index or -1 */
    int mode;       /* 0 capture, 1 replace, 2 zero, 3 replace with `mean` */
    const float *mean;
    int skip_bos;   /* leave position 0 untouched when replacing */
} hook_io;

/* copy between the activation (any strides) and contiguous rows */
static int hook_rw(lp_tensor *act, const lp_hook_info *info, void *user)
{
    hook_io *io = user;
    int B = (int)act->ne[0], P = (int)act->ne[1];
    int64_t inner = 1;
    for (int k = 2; k < act->ndim; k++)
        inner *= act->ne[k];
    if (act->dtype != LP_F32 || (io->head < 0 && inner != io->d) || act->ndim < 3) {
        snprintf(info->err->msg, sizeof info->err->msg, "sae: %s has an unexpected shape", info->name);
        info->err->code = LP_EINVAL;
        return LP_EINVAL;
    }
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            char *base = (char *)act->data + b * act->nb[0] + p * act->nb[1];
            float *row = io->buf + ((size_t)b * P + p) * io->d;
            if (act->ndim == 3) {
                float *a = (float *)base;
                if (io->mode == 0)
                    memcpy(row, a, sizeof(float) * (size_t)io->d);
                else if (!(io->skip_bos && p == 0)) {
                    if (io->mode == 1)
                        memcpy(a, row, sizeof(float) * (size_t)io->d);
                    else if (io->mode == 2)
                        memset(a, 0, sizeof(float) * (size_t)io->d);
                    else
                        memcpy(a, io->mean, sizeof(float) * (size_t)io->d);
                }
                continue;
            }
            /* [b, p, head, d_head]: flatten (or one head) */
            int nh = (int)act->ne[2], dh = (int)act->ne[3];
            for (int h = 0; h < nh; h++) {
                if (io->head >= 0 && h != io->head)
                    continue;
                float *a = (float *)(base + h * act->nb[2]);
                float *r = row + (io->head >= 0 ? 0 : (size_t)h * dh);
                const float *mv = io->mean ? io->mean + (io->head >= 0 ? 0 : (size_t)h * dh) : NULL;
                if (io->mode == 0)
                    memcpy(r, a, sizeof(float) * (size_t)dh);
                else if (!(io->skip_bos && p == 0)) {
                    if (io->mode == 1)
                        memcpy(a, r, sizeof(float) * (size_t)dh);
                    else if (io->mode == 2)
                        memset(a, 0, sizeof(float) * (size_t)dh);
                    else
                        memcpy(a, mv, sizeof(float) * (size_t)dh);
                }
            }
        }
    return 0;
}

/* Run the model on contexts [nb, T], with an optional hook on `hook`, logits into
 * `logits` [nb, T, V] (NULL: none; then the run stops after the hook's block). */
static int run_ctx(lp_call *call, lp_model *m, const int32_t *tok, int nb, int T, const char *hook, hook_io *io,
                   float *logits)
{
    lp_hooks *hs = H->hooks_new();
    lp_error e = {0};
    int rc = hs ? 0 : LP_ENOMEM;
    if (!rc && hook && io)
        rc = H->hooks_add(hs, hook, hook_rw, io, &e);
    lp_batch b = {.tokens = tok, .n_batch = nb, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.hooks = hs;
    if (logits) {
        o.logits = LP_LOGITS_ALL;
        o.logits_out = logits;
    } else if (hook) {
        int L = hook_layer(hook);
        const lp_config *c = H->model_config(m);
        if (L >= 0 && L + 1 < c->n_layers)
            o.stop_at_layer = L + 1;
    }
    if (!rc)
        rc = H->model_run(m, &b, &o, &e);
    H->hooks_free(hs);
    if (rc)
        return H->error(call, rc, "forward pass: %s", e.msg[0] ? e.msg : "failed");
    return 0;
}

/* =========================== sae.harvest =========================== */
static const lp_param_desc harvest_params[] = {
    {"corpus", LP_PARAM_STRING, NULL, "text file (documents split at blank lines) or .jsonl with a \"text\" field"},
    {"docs", LP_PARAM_STRING, "paragraphs", "plain text: documents are paragraphs (blank-line separated) or lines"},
    {"hook", LP_PARAM_HOOK, NULL, "hook point(s) to store (a name or glob, up to 8 points)"},
    {"out", LP_PARAM_STRING, NULL, "the store's folder (created; re-running the same harvest resumes it)"},
    {"context_size", LP_PARAM_INT, "128", "tokens per context"},
    {"prepend_bos", LP_PARAM_INT, "-1", "1: each context starts with BOS, 0: not, -1: the model's rule"},
    {"max_tokens", LP_PARAM_INT, "0", "stop after this many tokens (0: the whole corpus)"},
    {"shard_tokens", LP_PARAM_INT, "65536", "tokens per shard (rounded to whole contexts)"},
    {"dtype", LP_PARAM_STRING, "f32", "f32 or f16"},
    {"batch", LP_PARAM_INT, "8", "contexts per forward pass"},
};

static const char harvest_help[] =
    "Run the model over a corpus and store the activations of one or more hook points in an\n"
    "activation store: OUT/manifest.json and OUT/shard_NNNNN.safetensors, one tensor per hook\n"
    "[tokens, d] plus `tokens` [tokens] (i32), rows in corpus order. Shards are written to a\n"
    "temporary name and renamed when complete, the manifest after each shard (atomically): an\n"
    "interrupted harvest loses at most the shard in flight, and running the same command again\n"
    "resumes after the last complete shard. Progress shows tokens, tokens/s and the ETA.\n"
    "\n"
    "Results: tokens, shards, new_tokens (harvested by this call), tokens_per_s, complete, dir.\n";

static int harvest(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(m);
    const char *corpus = h->param_str(call, "corpus"), *pat = h->param_str(call, "hook"),
               *out = h->param_str(call, "out"), *dts = h->param_str(call, "dtype");
    int T = (int)h->param_int(call, "context_size");
    int bos = (int)h->param_int(call, "prepend_bos");
    int64_t max_tokens = h->param_int(call, "max_tokens"), shard_tokens = h->param_int(call, "shard_tokens");
    int nbatch = (int)h->param_int(call, "batch");
    if (bos < 0)
        bos = cfg->prepend_bos;
    if (T < 2 || T > cfg->n_ctx)
        return h->error(call, LP_EINVAL, "context_size must be in 2..%d (got %d)", cfg->n_ctx, T);
    if (nbatch < 1 || nbatch > 4096)
        return h->error(call, LP_EINVAL, "batch must be in 1..4096");
    if (strcmp(dts, "f32") && strcmp(dts, "f16"))
        return h->error(call, LP_EINVAL, "dtype must be f32 or f16 (got '%s')", dts);
    if (shard_tokens < T)
        shard_tokens = T;
    int cps = (int)(shard_tokens / T); /* contexts per shard */
    shard_tokens = (int64_t)cps * T;

    /* the hook points */
    store_meta want;
    memset(&want, 0, sizeof want);
    char err[SAE_ERR_MAX];
    int n = h->model_n_hook_points(m);
    for (int i = 0; i < n; i++) {
        lp_hook_kind k;
        int layer;
        char name[128];
        h->model_hook_point(m, i, &k, &layer);
        h->hook_name(k, layer, name, sizeof name);
        if (!h->hook_match(pat, name))
            continue;
        if (want.n_hooks == 8)
            return h->error(call, LP_EINVAL, "hook '%s' matches more than 8 hook points", pat);
        int w = hook_width(m, name, -1, err);
        if (w < 0)
            return h->error(call, w, "%s", err);
        if (want.n_hooks && w != want.d)
            return h->error(call, LP_EINVAL, "hooks of one store must have the same width (%s is %d, not %d)", name,
                            w, want.d);
        want.d = w;
        snprintf(want.hooks[want.n_hooks++], sizeof want.hooks[0], "%s", name);
    }
    if (!want.n_hooks)
        return h->error(call, LP_ENOTFOUND, "hook '%s' matches no hook point", pat);
    contexts cx = {0};
    int64_t max_ctx = max_tokens > 0 ? (max_tokens + T - 1) / T : 0;
    int rc = corpus_contexts(call, m, corpus, T, bos, max_ctx, !strcmp(h->param_str(call, "docs"), "lines"), &cx,
                             &want.corpus_bytes);
    if (rc)
        return rc;
    snprintf(want.model, sizeof want.model, "%s", cfg->model_type);
    const char *slash = strrchr(corpus, '/');
    snprintf(want.corpus, sizeof want.corpus, "%s", slash ? slash + 1 : corpus);
    want.context_size = T;
    want.prepend_bos = bos;
    want.dtype = strcmp(dts, "f16") ? ST_F32 : ST_F16;
    want.shard_tokens = shard_tokens;

    /* resume: an existing manifest must describe the same harvest */
    store_meta cur;
    if ((rc = sae_mkdirs(out, err))) {
        free(cx.tok);
        return h->error(call, rc, "%s", err);
    }
    rc = store_meta_read(out, &cur, err);
    if (rc == 0) {
        int same = cur.d == want.d && cur.context_size == T && cur.prepend_bos == bos && cur.dtype == want.dtype &&
                   cur.shard_tokens == shard_tokens && cur.n_hooks == want.n_hooks &&
                   !strcmp(cur.corpus, want.corpus) && cur.corpus_bytes == want.corpus_bytes;
        for (int i = 0; same && i < want.n_hooks; i++)
            same = !strcmp(cur.hooks[i], want.hooks[i]);
        if (!same) {
            store_meta_free(&cur);
            free(cx.tok);
            return h->error(call, LP_EINVAL,
                            "%s holds a different harvest (corpus, hooks, context_size, dtype or shard size "
                            "differ); use another folder",
                            out);
        }
        want.n_shards = cur.n_shards;
        want.n_tokens = cur.n_tokens;
        want.shard_n = cur.shard_n;
        cur.shard_n = NULL;
        store_meta_free(&cur);
    } else if (rc != SAE_ENOTFOUND) {
        free(cx.tok);
        return h->error(call, rc, "%s", err);
    } else if ((rc = store_meta_write(out, &want, err))) {
        free(cx.tok);
        return h->error(call, rc, "%s", err);
    }
    { /* temporary files of a shard or manifest that was in flight when a run was killed */
        DIR *dd = opendir(out);
        struct dirent *de;
        while (dd && (de = readdir(dd)))
            if (strstr(de->d_name, ".safetensors.tmp.") || strstr(de->d_name, "manifest.json.tmp.")) {
                char tp[1400];
                snprintf(tp, sizeof tp, "%s/%s", out, de->d_name);
                remove(tp);
            }
        if (dd)
            closedir(dd);
    }
    int64_t n_shards_total = (cx.n + cps - 1) / cps;
    int64_t start_ctx = (int64_t)want.n_shards * cps;
    float *acts[8] = {0};
    for (int i = 0; i < want.n_hooks; i++)
        acts[i] = malloc(sizeof(float) * (size_t)shard_tokens * want.d);
    if (!acts[want.n_hooks - 1]) {
        rc = h->error(call, LP_ENOMEM, "out of memory for a shard of %lld tokens", (long long)shard_tokens);
        goto done;
    }
    double t0 = now_s();
    int64_t new_tokens = 0, total_tokens = cx.n * T;
    for (int64_t s = want.n_shards; s < n_shards_total; s++) {
        int64_t c0 = s * cps, c1 = c0 + cps < cx.n ? c0 + cps : cx.n;
        for (int64_t c = c0; c < c1; c += nbatch) {
            int nb = (int)(c1 - c < nbatch ? c1 - c : nbatch);
            /* one forward for all hooks: a hook_io per hook point */
            hook_io io[8];
            lp_hooks *hs = h->hooks_new();
            lp_error e = {0};
            for (int i = 0; i < want.n_hooks && !rc; i++) {
                io[i] = (hook_io){acts[i] + (size_t)(c - c0) * T * want.d, want.d, -1, 0, NULL, 0};
                rc = h->hooks_add(hs, want.hooks[i], hook_rw, &io[i], &e);
            }
            int maxL = -1, full = 0;
            for (int i = 0; i < want.n_hooks; i++) {
                int L = hook_layer(want.hooks[i]);
                full |= L < 0;
                maxL = L > maxL ? L : maxL;
            }
            lp_batch b = {.tokens = cx.tok + c * T, .n_batch = nb, .n_pos = T, .lengths = NULL};
            lp_run_opts o;
            memset(&o, 0, sizeof o);
            o.hooks = hs;
            if (!full && maxL >= 0 && maxL + 1 < cfg->n_layers)
                o.stop_at_layer = maxL + 1;
            if (!rc)
                rc = h->model_run(m, &b, &o, &e);
            h->hooks_free(hs);
            if (rc) {
                rc = h->error(call, rc, "forward pass: %s", e.msg);
                goto done;
            }
            new_tokens += (int64_t)nb * T;
            double el = now_s() - t0, tps = new_tokens / (el > 1e-9 ? el : 1e-9);
            int64_t done_tok = start_ctx * T + new_tokens;
            char what[128];
            snprintf(what, sizeof what, "tokens, %.0f tok/s, ETA %.0f s", tps, (total_tokens - done_tok) / tps);
            if (h->progress(call, (double)done_tok, (double)total_tokens, what)) {
                rc = h->error(call, LP_ECANCELLED, "cancelled after %d complete shards (%lld tokens); run the same "
                                                   "command to resume",
                              want.n_shards, (long long)want.n_tokens);
                goto done;
            }
        }
        const float *ap[8];
        for (int i = 0; i < want.n_hooks; i++)
            ap[i] = acts[i];
        if ((rc = store_write_shard(out, &want, ap, cx.tok + c0 * T, (c1 - c0) * T, err))) {
            rc = h->error(call, rc, "%s", err);
            goto done;
        }
    }
    want.complete = 1;
    if ((rc = store_meta_write(out, &want, err))) {
        rc = h->error(call, rc, "%s", err);
        goto done;
    }
    double el = now_s() - t0;
    h->result_scalar(call, "tokens", (double)want.n_tokens);
    h->result_scalar(call, "shards", want.n_shards);
    h->result_scalar(call, "new_tokens", (double)new_tokens);
    h->result_scalar(call, "tokens_per_s", new_tokens > 0 && el > 0 ? new_tokens / el : 0);
    h->result_scalar(call, "complete", 1);
    h->result_string(call, "dir", out);
done:
    for (int i = 0; i < 8; i++)
        free(acts[i]);
    free(cx.tok);
    store_meta_free(&want);
    return rc;
}

/* =========================== sae.train =========================== */
static const lp_param_desc train_params[] = {
    {"store", LP_PARAM_STRING, NULL, "activation store folder (from sae.harvest)"},
    {"out", LP_PARAM_STRING, NULL, "where to write the SAE (SAELens folder); OUT/checkpoint holds the state"},
    {"hook", LP_PARAM_STRING, "", "which of the store's hooks (default: its first)"},
    {"arch", LP_PARAM_STRING, "topk", "standard (ReLU + L1) or topk"},
    {"d_sae", LP_PARAM_INT, "0", "latents (0: 8 x d_in)"},
    {"k", LP_PARAM_INT, "32", "topk: active latents per token"},
    {"batch", LP_PARAM_INT, "4096", "tokens per step"},
    {"steps", LP_PARAM_INT, "0", "optimiser steps (0: one pass over the store)"},
    {"lr", LP_PARAM_FLOAT, "0.0004", "Adam learning rate"},
    {"lr_warmup_steps", LP_PARAM_INT, "0", "linear warm-up"},
    {"lr_decay_steps", LP_PARAM_INT, "-1", "linear decay to 0 over the last N steps (-1: 20% of steps)"},
    {"l1_coeff", LP_PARAM_FLOAT, "5", "standard: L1 weight (activations times decoder norms)"},
    {"l1_warmup_steps", LP_PARAM_INT, "-1", "standard: L1 warm-up (-1: 5% of steps)"},
    {"aux_coeff", LP_PARAM_FLOAT, "0.03125", "topk: auxiliary loss weight for dead latents"},
    {"dead_tokens", LP_PARAM_INT, "1000000", "a latent is dead after this many tokens without firing"},
    {"seed", LP_PARAM_INT, "42", "initialisation and data order"},
    {"checkpoint_every", LP_PARAM_INT, "500", "steps between checkpoints (atomic; resumed automatically)"},
    {"log_every", LP_PARAM_INT, "50", "steps between CSV log rows"},
    {"resume", LP_PARAM_BOOL, "true", "resume from OUT/checkpoint when present"},
    {"threads", LP_PARAM_INT, "2", "threads for the sparse kernels"},
};

static const char train_help[] =
    "Train a sparse autoencoder on an activation store with Adam: ReLU with an L1 penalty on\n"
    "activations times decoder-row norms (arch=standard), or TopK with the auxiliary loss that\n"
    "revives dead latents (arch=topk, decoder rows kept at unit norm). Initialisation: decoder\n"
    "rows random (norm 0.1, 1 for topk), encoder = decoder transpose, b_dec = the data mean.\n"
    "Checkpoints (OUT/checkpoint/trainer_state.safetensors) are atomic; re-running the same\n"
    "command resumes and ends with exactly the weights an uninterrupted run would have.\n"
    "OUT/train_log.csv gets step, loss, mse, l1, aux, l0, fvu, dead, dense, lr.\n"
    "\n"
    "Results: step, loss, mse, l0, fvu, dead, dense, tokens_per_s, out; table `log`.\n";

typedef struct train_ctx {
    lp_call *call;
    const lp_host_api *h;
    store_sampler sm;
    FILE *log;
    int log_every;
    int64_t steps, B;
    double t0;
    int64_t step0;
    int table;
    train_metrics last;
} train_ctx;

static void train_data(void *u, int64_t step, int B, float *x)
{
    train_ctx *c = u;
    store_sampler_batch(&c->sm, step, B, x);
}

static int train_cb(void *u, const train_metrics *m)
{
    train_ctx *c = u;
    c->last = *m;
    if (c->log_every > 0 && (m->step % c->log_every == 0 || m->step == c->steps)) {
        if (c->log) {
            fprintf(c->log, "%lld,%.6g,%.6g,%.6g,%.6g,%.3f,%.6g,%d,%d,%.6g\n", (long long)m->step, m->loss, m->mse, m->l1,
                    m->aux, m->l0, m->fvu, m->dead, m->dense, m->lr);
            fflush(c->log);
        }
        lp_cell row[7] = {{1, (double)m->step, NULL}, {1, m->loss, NULL}, {1, m->mse, NULL}, {1, m->l0, NULL},
                          {1, m->fvu, NULL},          {1, m->dead, NULL}, {1, m->dense, NULL}};
        c->h->table_row(c->call, c->table, row);
    }
    double el = now_s() - c->t0, tps = (m->step - c->step0) * (double)c->B / (el > 1e-9 ? el : 1e-9);
    char what[160];
    snprintf(what, sizeof what, "steps, loss %.4g L0 %.1f FVU %.3f dead %d, %.0f tok/s", m->loss, m->l0, m->fvu,
             m->dead, tps);
    return c->h->progress(c->call, (double)m->step, (double)c->steps, what);
}

static int train(lp_call *call, const lp_host_api *h)
{
    const char *sdir = h->param_str(call, "store"), *out = h->param_str(call, "out"),
               *hook = h->param_str(call, "hook"), *arch = h->param_str(call, "arch");
    char err[SAE_ERR_MAX];
    store st;
    int rc = store_open(sdir, hook, &st, err);
    if (rc)
        return h->error(call, rc, "%s", err);
    train_cfg c;
    train_cfg_default(&c);
    if (!strcmp(arch, "topk"))
        c.arch = SAE_TOPK;
    else if (!strcmp(arch, "standard") || !strcmp(arch, "relu"))
        c.arch = SAE_STANDARD;
    else {
        store_close(&st);
        return h->error(call, LP_EINVAL, "arch must be standard or topk (got '%s')", arch);
    }
    c.d_sae = (int)h->param_int(call, "d_sae");
    if (c.d_sae <= 0)
        c.d_sae = 8 * st.d;
    c.k = (int)h->param_int(call, "k");
    c.batch = (int)h->param_int(call, "batch");
    c.steps = h->param_int(call, "steps");
    if (c.batch < 1) {
        store_close(&st);
        return h->error(call, LP_EINVAL, "batch must be positive");
    }
    if (c.steps <= 0)
        c.steps = st.n_tokens / c.batch > 0 ? st.n_tokens / c.batch : 1;
    c.lr = h->param_float(call, "lr");
    c.lr_warmup_steps = h->param_int(call, "lr_warmup_steps");
    c.lr_decay_steps = h->param_int(call, "lr_decay_steps");
    if (c.lr_decay_steps < 0)
        c.lr_decay_steps = c.steps / 5;
    c.l1_coeff = h->param_float(call, "l1_coeff");
    c.l1_warmup_steps = h->param_int(call, "l1_warmup_steps");
    if (c.l1_warmup_steps < 0)
        c.l1_warmup_steps = c.steps / 20;
    c.aux_coeff = h->param_float(call, "aux_coeff");
    c.dead_tokens = h->param_int(call, "dead_tokens");
    c.seed = (uint64_t)h->param_int(call, "seed");
    c.checkpoint_every = h->param_int(call, "checkpoint_every");
    c.log_every = h->param_int(call, "log_every");
    int th = (int)h->param_int(call, "threads");
    sae_threads = th < 1 ? 1 : th > 64 ? 64 : th;
    if (c.arch == SAE_TOPK && (c.k < 1 || c.k > c.d_sae)) {
        store_close(&st);
        return h->error(call, LP_EINVAL, "k must be in 1..d_sae");
    }
    /* data mean for b_dec */
    float *mean = calloc((size_t)st.d, sizeof(float)), *row = malloc(sizeof(float) * (size_t)st.d);
    double *acc = calloc((size_t)st.d, sizeof(double));
    int64_t nm = st.n_tokens < 65536 ? st.n_tokens : 65536;
    for (int64_t i = 0; i < nm; i++) {
        store_row(&st, i * (st.n_tokens / nm), row, NULL);
        for (int d = 0; d < st.d; d++)
            acc[d] += row[d];
    }
    for (int d = 0; d < st.d; d++)
        mean[d] = (float)(acc[d] / nm);
    free(acc);
    free(row);
    trainer *t = NULL;
    rc = trainer_new(&c, st.d, mean, &t, err);
    free(mean);
    if (rc) {
        store_close(&st);
        return h->error(call, rc, "%s", err);
    }
    train_ctx tc;
    memset(&tc, 0, sizeof tc);
    tc.call = call;
    tc.h = h;
    tc.log_every = (int)c.log_every;
    tc.steps = c.steps;
    tc.B = c.batch;
    store_sampler_init(&tc.sm, &st, c.seed);
    char ck[1200], logp[1200];
    snprintf(ck, sizeof ck, "%s/checkpoint", out);
    snprintf(logp, sizeof logp, "%s/train_log.csv", out);
    if ((rc = sae_mkdirs(out, err)))
        goto fail;
    if (!h->param_bool(call, "resume")) {
        char p[1300];
        snprintf(p, sizeof p, "%s/trainer_state.safetensors", ck);
        remove(p);
    }
    struct stat sb;
    int fresh = stat(logp, &sb) != 0;
    tc.log = fopen(logp, "a");
    if (tc.log && fresh)
        fprintf(tc.log, "step,loss,mse,l1,aux,l0,fvu,dead,dense,lr\n");
    const char *cols[] = {"step", "loss", "mse", "l0", "fvu", "dead", "dense"};
    tc.table = h->result_table(call, "log", 7, cols);
    tc.t0 = now_s();
    /* the checkpoint's step is known after trainer_run loads it: take it from the first cb */
    {
        char p[1300];
        snprintf(p, sizeof p, "%s/trainer_state.safetensors", ck);
        if (stat(p, &sb) == 0 && trainer_load_ckpt(t, ck, err) == 0)
            tc.step0 = trainer_step(t);
    }
    rc = trainer_run(t, train_data, &tc, ck, train_cb, &tc, err);
    if (tc.log)
        fclose(tc.log);
    if (rc)
        goto fail;
    double el = now_s() - tc.t0;
    sae s;
    if ((rc = trainer_export(t, &s, err)))
        goto fail;
    snprintf(s.hook_name, sizeof s.hook_name, "%s", st.hook);
    snprintf(s.model_name, sizeof s.model_name, "%s", st.model);
    s.prepend_bos = st.prepend_bos;
    s.context_size = st.context_size;
    rc = sae_save(&s, out, err);
    sae_free(&s);
    if (rc)
        goto fail;
    /* metrics of the last step (of this call) */
    train_metrics m = tc.last;
    h->result_scalar(call, "step", (double)trainer_step(t));
    if (m.step > 0) {
        h->result_scalar(call, "loss", m.loss);
        h->result_scalar(call, "mse", m.mse);
        h->result_scalar(call, "l0", m.l0);
        h->result_scalar(call, "fvu", m.fvu);
        h->result_scalar(call, "dead", m.dead);
        h->result_scalar(call, "dense", m.dense);
    }
    h->result_scalar(call, "tokens_per_s", el > 0 ? (trainer_step(t) - tc.step0) * (double)c.batch / el : 0);
    h->result_string(call, "out", out);
    store_sampler_free(&tc.sm);
    trainer_free(t);
    store_close(&st);
    return 0;
fail:
    store_sampler_free(&tc.sm);
    trainer_free(t);
    store_close(&st);
    return h->error(call, rc, "%s", err);
}

/* =========================== sae.encode =========================== */
static const lp_param_desc encode_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder (SAELens layout) or Gemma Scope params.npz"},
    {"prompt", LP_PARAM_TEXT, NULL, "the text to encode"},
    {"k", LP_PARAM_INT, "8", "top features listed per token"},
    {"hook", LP_PARAM_STRING, "", "override the SAE's hook point"},
    {"dense", LP_PARAM_BOOL, "false", "also return all activations [pos, d_sae]"},
};

static const char encode_help[] =
    "Run the prompt to the SAE's hook point and encode each token's activation (SAELens'\n"
    "encode: b_dec subtracted when apply_b_dec_to_input, then the architecture's nonlinearity).\n"
    "The SAE stays loaded between calls (reloaded when its file changes).\n"
    "\n"
    "Results: table `features` (pos, token, rank, feature, activation), l0 [pos],\n"
    "recon_error [pos] (|x - x̂| / |x|), forward_ms, encode_ms, acts [pos, d_sae] (dense=true).\n";

static int encode(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    double t0 = now_s();
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), h->param_str(call, "hook"), &s, hook, sizeof hook);
    if (rc)
        return rc;
    int T;
    const int32_t *tok = h->param_tokens(call, "prompt", &T);
    int k = (int)h->param_int(call, "k");
    if (k < 1)
        k = 1;
    if (k > s->d_sae)
        k = s->d_sae;
    int D = s->d_in, S = s->d_sae;
    float *x = malloc(sizeof(float) * (size_t)T * D), *f = malloc(sizeof(float) * (size_t)T * S),
          *xh = malloc(sizeof(float) * (size_t)T * D);
    if (!x || !f || !xh) {
        free(x), free(f), free(xh);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    double t1 = now_s();
    hook_io io = {x, D, s->hook_head_index, 0, NULL, 0};
    rc = run_ctx(call, m, tok, 1, T, hook, &io, NULL);
    double t2 = now_s();
    if (!rc && sae_encode(s, x, T, f))
        rc = h->error(call, LP_ENOMEM, "out of memory");
    double t3 = now_s();
    if (rc) {
        free(x), free(f), free(xh);
        return rc;
    }
    sae_reconstruct(s, x, f, T, xh);
    int *act = malloc(sizeof(int) * (size_t)S);
    if (!act) {
        free(x), free(f), free(xh);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    const char *cols[] = {"pos", "token", "rank", "feature", "activation"};
    int tb = h->result_table(call, "features", 5, cols);
    int64_t neT[1] = {T}, neTS[2] = {T, S};
    lp_tensor l0 = h->result_tensor(call, "l0", 1, neT, "pos");
    lp_tensor re = h->result_tensor(call, "recon_error", 1, neT, "pos");
    for (int p = 0; p < T; p++) {
        const float *fr = f + (size_t)p * S;
        int cnt = 0;
        for (int i = 0; i < S; i++)
            cnt += fr[i] != 0;
        ((float *)l0.data)[p] = (float)cnt;
        double e2 = 0, x2 = 0;
        for (int d = 0; d < D; d++) {
            double dx = xh[(size_t)p * D + d] - x[(size_t)p * D + d];
            e2 += dx * dx;
            x2 += (double)x[(size_t)p * D + d] * x[(size_t)p * D + d];
        }
        ((float *)re.data)[p] = (float)(x2 > 0 ? sqrt(e2 / x2) : 0);
        char text[96];
        token_text(m, tok[p], text, sizeof text);
        /* the k largest active features: collect the nonzeros, then partial selection */
        int na = 0;
        for (int i = 0; i < S; i++)
            if (fr[i] > 0)
                act[na++] = i;
        for (int r = 0; r < k && r < na; r++) {
            int b = r;
            for (int q = r + 1; q < na; q++)
                if (fr[act[q]] > fr[act[b]] || (fr[act[q]] == fr[act[b]] && act[q] < act[b]))
                    b = q;
            int tmpi = act[r];
            act[r] = act[b];
            act[b] = tmpi;
            lp_cell row[5] = {{1, p, NULL}, {0, 0, text}, {1, r + 1, NULL}, {1, act[r], NULL}, {1, fr[act[r]], NULL}};
            h->table_row(call, tb, row);
        }
    }
    if (h->param_bool(call, "dense")) {
        lp_tensor a = h->result_tensor(call, "acts", 2, neTS, "pos,feature");
        if (a.data)
            memcpy(a.data, f, sizeof(float) * (size_t)T * S);
    }
    h->result_scalar(call, "forward_ms", (t2 - t1) * 1e3);
    h->result_scalar(call, "encode_ms", (t3 - t2) * 1e3);
    h->result_scalar(call, "total_ms", (now_s() - t0) * 1e3);
    h->result_string(call, "hook", hook);
    free(x), free(f), free(xh), free(act);
    return 0;
}

/* =========================== sae.evaluate =========================== */
static const lp_param_desc eval_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder"},
    {"store", LP_PARAM_STRING, "", "evaluate on the contexts of this activation store (its tokens)"},
    {"corpus", LP_PARAM_STRING, "", "or on contexts cut from this corpus"},
    {"docs", LP_PARAM_STRING, "paragraphs", "corpus documents: paragraphs or lines"},
    {"skip_contexts", LP_PARAM_INT, "0", "corpus: skip this many contexts first (to hold out the training part)"},
    {"contexts", LP_PARAM_INT, "64", "how many contexts (from the end of the store: held out when possible)"},
    {"context_size", LP_PARAM_INT, "0", "corpus contexts' length (0: the SAE's context_size or 128)"},
    {"batch", LP_PARAM_INT, "8", "contexts per forward pass"},
    {"exclude_bos", LP_PARAM_BOOL, "false", "leave position 0 (BOS) untouched and out of the statistics"},
    {"dense_threshold", LP_PARAM_FLOAT, "0.1", "a latent firing on more than this fraction of tokens is dense"},
    {"hook", LP_PARAM_STRING, "", "override the SAE's hook point"},
};

static const char eval_help[] =
    "The figures the field argues about, on held-out contexts:\n"
    "  l0                 mean active latents per token\n"
    "  explained_variance 1 - Σ|x - x̂|² / Σ|x - mean(x)|²\n"
    "  ce_clean, ce_sae, ce_zero, ce_mean   next-token cross-entropy (nats) of the clean run, with\n"
    "                     the reconstruction spliced in at the hook, and with the activation zero-\n"
    "                     and mean-ablated (mean over the evaluated tokens)\n"
    "  ce_recovered_zero  (ce_zero - ce_sae) / (ce_zero - ce_clean) (SAELens' definition), and\n"
    "  ce_recovered_mean  the same against mean ablation\n"
    "  kl_sae, kl_zero    mean KL(clean || spliced) per position\n"
    "  dead, dense        latents that never fire / fire above dense_threshold\n"
    "Tables: histogram (log10 density bin, latents); tensor density [d_sae].\n";

typedef struct ce_acc {
    double ce, kl;
    int64_t n;
} ce_acc;

/* Add CE (and KL against clean log-probs when given) of logits [nb, T, V] for tokens. */
static void ce_add(const float *lg, const int32_t *tok, int nb, int T, int V, float *lp_out, const float *lp_clean,
                   ce_acc *a)
{
    for (int b = 0; b < nb; b++)
        for (int p = 0; p < T; p++) {
            const float *z = lg + ((size_t)b * T + p) * V;
            float mx = z[0];
            for (int v = 1; v < V; v++)
                mx = z[v] > mx ? z[v] : mx;
            double s = 0;
            for (int v = 0; v < V; v++)
                s += exp((double)z[v] - mx);
            double lse = mx + log(s);
            if (p + 1 < T) {
                a->ce += lse - z[tok[(size_t)b * T + p + 1]];
                a->n++;
            }
            float *lo = lp_out ? lp_out + ((size_t)b * T + p) * V : NULL;
            if (lo)
                for (int v = 0; v < V; v++)
                    lo[v] = (float)(z[v] - lse);
            if (lp_clean) {
                const float *lc = lp_clean + ((size_t)b * T + p) * V;
                double kl = 0;
                for (int v = 0; v < V; v++)
                    kl += exp(lc[v]) * (lc[v] - (z[v] - lse));
                a->kl += kl;
            }
        }
}

static int evaluate(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), h->param_str(call, "hook"), &s, hook, sizeof hook);
    if (rc)
        return rc;
    const char *sdir = h->param_str(call, "store"), *corpus = h->param_str(call, "corpus");
    int64_t nctx = h->param_int(call, "contexts");
    int nbatch = (int)h->param_int(call, "batch"), skip_bos = h->param_bool(call, "exclude_bos");
    double dense_thr = h->param_float(call, "dense_threshold");
    if (nctx < 1 || nbatch < 1)
        return h->error(call, LP_EINVAL, "contexts and batch must be positive");
    contexts cx = {0};
    char err[SAE_ERR_MAX];
    if (*sdir) {
        store st;
        if ((rc = store_open(sdir, NULL, &st, err)))
            return h->error(call, rc, "%s", err);
        int T = st.context_size;
        int64_t have = st.n_tokens / T;
        if (nctx > have)
            nctx = have;
        cx.T = T;
        cx.n = nctx;
        cx.tok = malloc(sizeof(int32_t) * (size_t)nctx * T);
        float *tmp = malloc(sizeof(float) * (size_t)st.d);
        for (int64_t c = 0; c < nctx; c++) /* the last contexts of the store */
            for (int p = 0; p < T; p++)
                store_row(&st, (have - nctx + c) * T + p, tmp, &cx.tok[c * T + p]);
        free(tmp);
        store_close(&st);
    } else if (*corpus) {
        int T = (int)h->param_int(call, "context_size");
        if (T <= 0)
            T = s->context_size > 0 ? s->context_size : 128;
        int64_t bytes;
        int64_t skip = h->param_int(call, "skip_contexts");
        if (skip < 0)
            skip = 0;
        if ((rc = corpus_contexts(call, m, corpus, T, s->prepend_bos, nctx + skip,
                                  !strcmp(h->param_str(call, "docs"), "lines"), &cx, &bytes)))
            return rc;
        if (skip >= cx.n) {
            free(cx.tok);
            return h->error(call, LP_EINVAL, "skip_contexts %lld leaves no context of the corpus's %lld",
                            (long long)skip, (long long)cx.n);
        }
        memmove(cx.tok, cx.tok + skip * T, sizeof(int32_t) * (size_t)(cx.n - skip) * T);
        cx.n -= skip;
    } else
        return h->error(call, LP_EINVAL, "give store=DIR or corpus=FILE");
    const lp_config *cfg = h->model_config(m);
    int T = cx.T, V = cfg->d_vocab, D = s->d_in, S = s->d_sae;
    size_t rows_b = (size_t)nbatch * T;
    float *x = malloc(sizeof(float) * rows_b * D), *xh = malloc(sizeof(float) * rows_b * D),
          *f = malloc(sizeof(float) * rows_b * S), *lg = malloc(sizeof(float) * rows_b * V),
          *lpc = malloc(sizeof(float) * rows_b * V);
    double *mean = calloc((size_t)D, sizeof(double)), *sum2 = calloc((size_t)D, sizeof(double));
    int64_t *fires = calloc((size_t)S, sizeof(int64_t));
    float *meanf = malloc(sizeof(float) * (size_t)D);
    if (!x || !xh || !f || !lg || !lpc || !mean || !sum2 || !fires || !meanf) {
        rc = h->error(call, LP_ENOMEM, "out of memory (batch %d x %d positions, %d latents, %d vocab)", nbatch, T, S, V);
        goto out;
    }
    /* pass 1: the mean activation (for mean ablation and explained variance) */
    int64_t ntok = 0;
    for (int64_t c = 0; c < cx.n && !rc; c += nbatch) {
        int nb = (int)(cx.n - c < nbatch ? cx.n - c : nbatch);
        hook_io io = {x, D, s->hook_head_index, 0, NULL, 0};
        rc = run_ctx(call, m, cx.tok + c * T, nb, T, hook, &io, NULL);
        for (int r = 0; !rc && r < nb * T; r++) {
            if (skip_bos && r % T == 0)
                continue;
            for (int d = 0; d < D; d++)
                mean[d] += x[(size_t)r * D + d];
            ntok++;
        }
        if (h->progress(call, (double)c, (double)cx.n * 2, "contexts"))
            rc = h->error(call, LP_ECANCELLED, "cancelled");
    }
    if (rc)
        goto out;
    for (int d = 0; d < D; d++)
        meanf[d] = (float)(mean[d] /= (double)(ntok ? ntok : 1));
    ce_acc clean = {0}, sae_a = {0}, zero = {0}, meanab = {0};
    double l0 = 0, se = 0, var = 0;
    for (int64_t c = 0; c < cx.n && !rc; c += nbatch) {
        int nb = (int)(cx.n - c < nbatch ? cx.n - c : nbatch);
        const int32_t *tk = cx.tok + c * T;
        hook_io cap = {x, D, s->hook_head_index, 0, NULL, 0};
        if ((rc = run_ctx(call, m, tk, nb, T, hook, &cap, lg)))
            break;
        ce_add(lg, tk, nb, T, V, lpc, NULL, &clean);
        sae_encode(s, x, nb * T, f);
        sae_reconstruct(s, x, f, nb * T, xh);
        for (int r = 0; r < nb * T; r++) {
            if (skip_bos && r % T == 0)
                continue;
            const float *fr = f + (size_t)r * S;
            for (int i = 0; i < S; i++)
                if (fr[i] != 0) {
                    l0++;
                    fires[i]++;
                }
            for (int d = 0; d < D; d++) {
                double e = xh[(size_t)r * D + d] - x[(size_t)r * D + d], v = x[(size_t)r * D + d] - mean[d];
                se += e * e;
                var += v * v;
            }
        }
        hook_io rep = {xh, D, s->hook_head_index, 1, NULL, skip_bos};
        if ((rc = run_ctx(call, m, tk, nb, T, hook, &rep, lg)))
            break;
        ce_add(lg, tk, nb, T, V, NULL, lpc, &sae_a);
        hook_io z = {xh, D, s->hook_head_index, 2, NULL, skip_bos};
        if ((rc = run_ctx(call, m, tk, nb, T, hook, &z, lg)))
            break;
        ce_add(lg, tk, nb, T, V, NULL, lpc, &zero);
        hook_io mab = {xh, D, s->hook_head_index, 3, meanf, skip_bos};
        if ((rc = run_ctx(call, m, tk, nb, T, hook, &mab, lg)))
            break;
        ce_add(lg, tk, nb, T, V, NULL, lpc, &meanab);
        if (h->progress(call, (double)(cx.n + c + nb), (double)cx.n * 2, "contexts"))
            rc = h->error(call, LP_ECANCELLED, "cancelled");
    }
    if (rc)
        goto out;
    {
        double ce_c = clean.ce / clean.n, ce_s = sae_a.ce / sae_a.n, ce_z = zero.ce / zero.n,
               ce_m = meanab.ce / meanab.n;
        int64_t npos = clean.n + cx.n; /* every position for KL */
        h->result_scalar(call, "tokens", (double)ntok);
        h->result_scalar(call, "l0", l0 / (double)ntok);
        h->result_scalar(call, "explained_variance", var > 0 ? 1 - se / var : 0);
        h->result_scalar(call, "mse", se / (double)ntok);
        h->result_scalar(call, "ce_clean", ce_c);
        h->result_scalar(call, "ce_sae", ce_s);
        h->result_scalar(call, "ce_zero", ce_z);
        h->result_scalar(call, "ce_mean", ce_m);
        h->result_scalar(call, "ce_recovered_zero", (ce_z - ce_s) / (ce_z - ce_c));
        h->result_scalar(call, "ce_recovered_mean", (ce_m - ce_s) / (ce_m - ce_c));
        h->result_scalar(call, "kl_sae", sae_a.kl / (double)npos);
        h->result_scalar(call, "kl_zero", zero.kl / (double)npos);
        int dead = 0, dense = 0;
        int64_t neS[1] = {S};
        lp_tensor den = h->result_tensor(call, "density", 1, neS, "feature");
        int hist[10] = {0}; /* log10 density bins: [-inf,-8) [-8,-7) … [-1,0] */
        for (int i = 0; i < S; i++) {
            double dn = (double)fires[i] / (double)ntok;
            if (den.data)
                ((float *)den.data)[i] = (float)dn;
            dead += fires[i] == 0;
            dense += dn > dense_thr;
            int bin = fires[i] == 0 ? 0 : (int)floor(log10(dn)) + 9;
            hist[fires[i] == 0 ? 0 : bin < 1 ? 1 : bin > 9 ? 9 : bin]++;
        }
        h->result_scalar(call, "dead", dead);
        h->result_scalar(call, "dense", dense);
        const char *cols[] = {"log10_density", "latents"};
        int tb = h->result_table(call, "histogram", 2, cols);
        for (int b = 0; b < 10; b++) {
            char lab[32];
            if (b == 0)
                snprintf(lab, sizeof lab, "never");
            else
                snprintf(lab, sizeof lab, "[%d,%d)", b - 9, b - 8);
            lp_cell row[2] = {{0, 0, lab}, {1, hist[b], NULL}};
            h->table_row(call, tb, row);
        }
    }
out:
    free(x), free(xh), free(f), free(lg), free(lpc), free(mean), free(sum2), free(fires), free(meanf);
    free(cx.tok);
    return rc;
}

/* =========================== sae.compare =========================== */
static const lp_param_desc compare_params[] = {
    {"a", LP_PARAM_STRING, NULL, "first SAE folder"},
    {"b", LP_PARAM_STRING, NULL, "second SAE folder"},
};

static const char compare_help[] =
    "Mean max cosine similarity between decoder directions: for each latent of A the best\n"
    "cosine with any latent of B (and the other way). 1 means every direction of A is in B.\n"
    "Results: mmcs_ab, mmcs_ba, max_cos_ab [d_sae of A], matched_0_9 (fraction of A above 0.9).\n";

static void unit_rows(const float *W, int n, int d, float *out)
{
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int k = 0; k < d; k++)
            ss += (double)W[(size_t)i * d + k] * W[(size_t)i * d + k];
        float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
        for (int k = 0; k < d; k++)
            out[(size_t)i * d + k] = W[(size_t)i * d + k] * inv;
    }
}

static int compare(lp_call *call, const lp_host_api *h)
{
    sae A, B;
    char err[SAE_ERR_MAX];
    int rc = sae_load(h->param_str(call, "a"), &A, err);
    if (rc)
        return h->error(call, rc, "%s", err);
    if ((rc = sae_load(h->param_str(call, "b"), &B, err))) {
        sae_free(&A);
        return h->error(call, rc, "%s", err);
    }
    if (A.d_in != B.d_in) {
        sae_free(&A), sae_free(&B);
        return h->error(call, LP_EINVAL, "the SAEs have different d_in (%d and %d)", A.d_in, B.d_in);
    }
    int d = A.d_in, na = A.d_sae, nb = B.d_sae, CH = 512;
    float *ua = malloc(sizeof(float) * (size_t)na * d), *ub = malloc(sizeof(float) * (size_t)nb * d),
          *sim = malloc(sizeof(float) * (size_t)CH * nb), *best_b = malloc(sizeof(float) * (size_t)nb);
    int64_t ne[1] = {na};
    lp_tensor mc = h->result_tensor(call, "max_cos_ab", 1, ne, "feature");
    if (!ua || !ub || !sim || !best_b || !mc.data) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    unit_rows(A.W_dec, na, d, ua);
    unit_rows(B.W_dec, nb, d, ub);
    for (int j = 0; j < nb; j++)
        best_b[j] = -2;
    double sab = 0, sba = 0;
    int matched = 0;
    for (int i0 = 0; i0 < na; i0 += CH) {
        int n = na - i0 < CH ? na - i0 : CH;
        H->sgemm(0, 1, n, nb, d, 1.0f, ua + (size_t)i0 * d, d, ub, d, 0.0f, sim, nb);
        for (int i = 0; i < n; i++) {
            float bst = -2;
            for (int j = 0; j < nb; j++) {
                float v = sim[(size_t)i * nb + j];
                bst = v > bst ? v : bst;
                best_b[j] = v > best_b[j] ? v : best_b[j];
            }
            ((float *)mc.data)[i0 + i] = bst;
            sab += bst;
            matched += bst > 0.9f;
        }
        if (h->progress(call, i0 + n, na, "latents")) {
            rc = h->error(call, LP_ECANCELLED, "cancelled");
            goto out;
        }
    }
    for (int j = 0; j < nb; j++)
        sba += best_b[j];
    h->result_scalar(call, "mmcs_ab", sab / na);
    h->result_scalar(call, "mmcs_ba", sba / nb);
    h->result_scalar(call, "matched_0_9", (double)matched / na);
out:
    free(ua), free(ub), free(sim), free(best_b);
    sae_free(&A), sae_free(&B);
    return rc;
}

/* =========================== sae.dashboard =========================== */
static const lp_param_desc dash_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder"},
    {"store", LP_PARAM_STRING, NULL, "activation store with the SAE's hook point (contexts and activations)"},
    {"feature", LP_PARAM_INT, NULL, "latent index"},
    {"n_top", LP_PARAM_INT, "10", "top-activating contexts"},
    {"n_quantile", LP_PARAM_INT, "3", "contexts sampled per activation quantile (4 quantile bins)"},
    {"max_tokens", LP_PARAM_INT, "200000", "tokens of the store to scan (0: all)"},
    {"window", LP_PARAM_INT, "16", "tokens shown before the activating token (and 4 after)"},
    {"n_logits", LP_PARAM_INT, "10", "top and bottom tokens of the logit effect"},
};

static const char dash_help[] =
    "A feature's dashboard over an activation store: its activation on every scanned token,\n"
    "the top-activating contexts with per-token activations, contexts sampled from activation\n"
    "quantiles, its density, and its logit effects (W_dec[feature]·W_U: the tokens its decoder\n"
    "direction promotes and suppresses, bias excluded).\n"
    "Results: density, max_activation, mean_activation (when active); tables `examples`\n"
    "(kind: top|q1..q4, rank, context, pos, activation, text with the token in [[ ]]),\n"
    "`tokens` (example, offset, token, activation: per-token activations of each example),\n"
    "`logits` (direction: up|down, rank, token, id, effect); tensor `histogram` [20] of the\n"
    "active activations.\n";

typedef struct hit {
    float a;
    int64_t row;
} hit;

static int hit_desc(const void *x, const void *y)
{
    float a = ((const hit *)x)->a, b = ((const hit *)y)->a;
    if (a != b)
        return a < b ? 1 : -1;
    int64_t r = ((const hit *)x)->row - ((const hit *)y)->row;
    return r > 0 ? 1 : r < 0 ? -1 : 0;
}

/* activations of feature j for store rows [r0, r0+n) */
static void feature_acts(const sae *s, const store *st, int j, int64_t r0, int n, float *xbuf, float *fbuf,
                         float *out)
{
    int D = s->d_in, S = s->d_sae;
    for (int r = 0; r < n; r++)
        store_row(st, r0 + r, xbuf + (size_t)r * D, NULL);
    if (s->arch == SAE_TOPK || strcmp(s->normalize, "none")) {
        sae_encode(s, xbuf, n, fbuf);
        for (int r = 0; r < n; r++)
            out[r] = fbuf[(size_t)r * S + j];
        return;
    }
    for (int r = 0; r < n; r++) { /* one latent: a dot product */
        const float *x = xbuf + (size_t)r * D;
        double lin = 0;
        for (int d = 0; d < D; d++)
            lin += (double)(x[d] - (s->apply_b_dec_to_input ? s->b_dec[d] : 0)) * s->W_enc[(size_t)d * S + j];
        double pre = lin + s->b_enc[j], v;
        if (s->arch == SAE_GATED) {
            double mag = lin * exp(s->r_mag[j]) + s->b_mag[j];
            v = pre > 0 && mag > 0 ? mag : 0;
        } else if (s->arch == SAE_JUMPRELU)
            v = pre > s->threshold[j] && pre > 0 ? pre : 0;
        else
            v = pre > 0 ? pre : 0;
        out[r] = (float)v;
    }
}

static int dashboard(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), NULL, &s, hook, sizeof hook);
    if (rc)
        return rc;
    int j = (int)h->param_int(call, "feature");
    if (j < 0 || j >= s->d_sae)
        return h->error(call, LP_EINVAL, "feature must be in 0..%d", s->d_sae - 1);
    store st;
    char err[SAE_ERR_MAX];
    if ((rc = store_open(h->param_str(call, "store"), hook, &st, err)))
        return h->error(call, rc, "%s", err);
    if (st.d != s->d_in) {
        store_close(&st);
        return h->error(call, LP_EINVAL, "the store's %s is %d wide, the SAE's d_in is %d", hook, st.d, s->d_in);
    }
    int64_t N = st.n_tokens, maxt = h->param_int(call, "max_tokens");
    if (maxt > 0 && N > maxt)
        N = maxt - maxt % st.context_size;
    if (N < st.context_size)
        N = st.context_size <= st.n_tokens ? st.context_size : st.n_tokens;
    int T = st.context_size, n_top = (int)h->param_int(call, "n_top"), nq = (int)h->param_int(call, "n_quantile"),
        win = (int)h->param_int(call, "window"), nl = (int)h->param_int(call, "n_logits");
    int CH = 256, D = s->d_in, S = s->d_sae;
    float *acts = malloc(sizeof(float) * (size_t)N), *xb = malloc(sizeof(float) * (size_t)CH * D),
          *fb = malloc(sizeof(float) * (size_t)CH * S);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)N);
    hit *hits = malloc(sizeof(hit) * (size_t)N);
    if (!acts || !xb || !fb || !toks || !hits) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t r0 = 0; r0 < N; r0 += CH) {
        int n = (int)(N - r0 < CH ? N - r0 : CH);
        feature_acts(s, &st, j, r0, n, xb, fb, acts + r0);
        if ((r0 / CH) % 64 == 0 && h->progress(call, (double)r0, (double)N, "tokens")) {
            rc = h->error(call, LP_ECANCELLED, "cancelled");
            goto out;
        }
    }
    float tmp[1];
    for (int64_t r = 0; r < N; r++)
        store_row(&st, r, xb, &toks[r]), (void)tmp;
    int64_t nh = 0;
    double sum = 0;
    float mx = 0;
    for (int64_t r = 0; r < N; r++)
        if (acts[r] > 0) {
            hits[nh++] = (hit){acts[r], r};
            sum += acts[r];
            mx = acts[r] > mx ? acts[r] : mx;
        }
    h->result_scalar(call, "density", (double)nh / (double)N);
    h->result_scalar(call, "max_activation", mx);
    h->result_scalar(call, "mean_activation", nh ? sum / nh : 0);
    h->result_scalar(call, "tokens_scanned", (double)N);
    {
        int64_t ne[1] = {20};
        lp_tensor hg = h->result_tensor(call, "histogram", 1, ne, "bin");
        for (int64_t q = 0; q < nh && hg.data; q++) {
            int b = mx > 0 ? (int)(hits[q].a / mx * 20) : 0;
            ((float *)hg.data)[b > 19 ? 19 : b]++;
        }
    }
    qsort(hits, (size_t)nh, sizeof(hit), hit_desc);
    const char *ecols[] = {"kind", "rank", "context", "pos", "activation", "text"};
    const char *tcols[] = {"example", "offset", "token", "activation"};
    int te = h->result_table(call, "examples", 6, ecols), tt = h->result_table(call, "tokens", 4, tcols);
    int ex = 0;
    /* examples: top n_top by activation (one per context), then nq per quantile bin */
    int64_t *used_ctx = calloc((size_t)(n_top + 4 * nq + 1), sizeof(int64_t));
    int n_used = 0;
    for (int kind = 0; kind < 5; kind++) {
        int64_t lo = 0, hi = nh;
        int want = kind == 0 ? n_top : nq;
        if (kind > 0) { /* kind 1..4 = quartiles q4..q1 of the (descending) hits; q4 = top quarter */
            lo = nh * (kind - 1) / 4;
            hi = nh * kind / 4;
        }
        int got = 0;
        int64_t span = hi - lo, stride = kind == 0 ? 1 : (span / (want > 0 ? want : 1) > 0 ? span / want : 1);
        for (int64_t q = lo; q < hi && got < want; q += stride) {
            int64_t row = hits[q].row, c = row / T;
            int dup = 0;
            for (int u = 0; u < n_used && !dup; u++)
                dup = used_ctx[u] == c;
            if (dup)
                continue;
            used_ctx[n_used++] = c;
            int p = (int)(row % T), a0 = p - win < 0 ? 0 : p - win, a1 = p + 5 > T ? T : p + 5;
            char text[2048];
            size_t k = 0;
            for (int t = a0; t < a1 && k + 200 < sizeof text; t++) {
                char tx[96];
                token_text(m, toks[c * T + t], tx, sizeof tx);
                k += (size_t)snprintf(text + k, sizeof text - k, t == p ? "[[%s]]" : "%s", tx);
                lp_cell tr[4] = {{1, ex, NULL}, {1, t - p, NULL}, {0, 0, tx}, {1, acts[c * T + t], NULL}};
                h->table_row(call, tt, tr);
            }
            char kn[8];
            snprintf(kn, sizeof kn, kind == 0 ? "top" : "q%d", 5 - kind);
            lp_cell er[6] = {{0, 0, kn}, {1, got + 1, NULL}, {1, (double)c, NULL}, {1, p, NULL},
                             {1, hits[q].a, NULL}, {0, 0, text}};
            h->table_row(call, te, er);
            got++;
            ex++;
        }
    }
    free(used_ctx);
    /* logit effects: unembed(W_dec[j]) - unembed(0) */
    {
        const lp_config *cfg = h->model_config(m);
        int V = cfg->d_vocab;
        if (s->d_in == cfg->d_model) {
            float *z = calloc((size_t)2 * D, sizeof(float)), *lg = malloc(sizeof(float) * (size_t)2 * V);
            if (z && lg) {
                memcpy(z, s->W_dec + (size_t)j * D, sizeof(float) * (size_t)D);
                if (h->model_unembed(m, z, 2, lg) == 0) {
                    for (int v = 0; v < V; v++)
                        lg[v] -= lg[V + v];
                    const char *lcols[] = {"direction", "rank", "token", "id", "effect"};
                    int tl = h->result_table(call, "logits", 5, lcols);
                    for (int dir = 0; dir < 2; dir++) {
                        int *taken = calloc((size_t)V, sizeof(int));
                        for (int r = 0; r < nl && r < V && taken; r++) {
                            int bi = -1;
                            for (int v = 0; v < V; v++)
                                if (!taken[v] && (bi < 0 || (dir == 0 ? lg[v] > lg[bi] : lg[v] < lg[bi])))
                                    bi = v;
                            taken[bi] = 1;
                            char tx[96];
                            token_text(m, bi, tx, sizeof tx);
                            lp_cell lr[5] = {{0, 0, dir ? "down" : "up"}, {1, r + 1, NULL}, {0, 0, tx}, {1, bi, NULL},
                                             {1, lg[bi], NULL}};
                            h->table_row(call, tl, lr);
                        }
                        free(taken);
                    }
                }
            }
            free(z), free(lg);
        }
    }
out:
    free(acts), free(xb), free(fb), free(toks), free(hits);
    store_close(&st);
    return rc;
}

/* =========================== sae.auroc =========================== */
static const lp_param_desc auroc_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder"},
    {"data", LP_PARAM_STRING, NULL, "JSONL with a \"text\" field and labels"},
    {"mode", LP_PARAM_STRING, "passage", "passage: one label per text (label_field); words: labelled char offsets"},
    {"label_field", LP_PARAM_STRING, "label", "passage mode: the numeric label"},
    {"reduce", LP_PARAM_STRING, "last", "passage mode: a latent's value per text: last, max or mean over tokens"},
    {"words_field", LP_PARAM_STRING, "words", "words mode: array of objects with \"char\" and value_field"},
    {"value_field", LP_PARAM_STRING, "depth", "words mode: the numeric value of each word"},
    {"threshold", LP_PARAM_FLOAT, "0", "a sample's label is 1 when its value > threshold"},
    {"prepend_bos", LP_PARAM_INT, "-1", "1/0, or -1: the SAE's prepend_bos"},
    {"max_items", LP_PARAM_INT, "0", "use at most this many lines (0: all)"},
    {"n_best", LP_PARAM_INT, "10", "latents listed"},
};

static const char auroc_help[] =
    "How well single latents track a labelled variable: for every latent, the AUROC of its\n"
    "activation as a score for label 1 (Mann-Whitney, ties counted half). passage mode scores\n"
    "each text once (the latent at the last token, or its max / mean); words mode scores the token\n"
    "at each labelled char offset (e.g. nesting depth > 0). A latent that fires for label 0 has\n"
    "AUROC near 0: `best` ranks by max(AUROC, 1 - AUROC) and says which way.\n"
    "Results: samples, positives, best_auroc, best_feature; table best (feature, auroc,\n"
    "direction, mean_pos, mean_neg); tensor auroc [d_sae].\n";

typedef struct scored {
    float v;
    uint8_t y;
} scored;

static int scored_cmp(const void *a, const void *b)
{
    float x = ((const scored *)a)->v, y = ((const scored *)b)->v;
    return (x > y) - (x < y);
}

static int auroc(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), NULL, &s, hook, sizeof hook);
    if (rc)
        return rc;
    const char *mode = h->param_str(call, "mode"), *red = h->param_str(call, "reduce");
    int words = !strcmp(mode, "words");
    if (!words && strcmp(mode, "passage"))
        return h->error(call, LP_EINVAL, "mode must be passage or words");
    int bos = (int)h->param_int(call, "prepend_bos");
    if (bos < 0)
        bos = s->prepend_bos;
    double thr = h->param_float(call, "threshold");
    int64_t max_items = h->param_int(call, "max_items");
    const char *data = h->param_str(call, "data");
    char *text = sae_slurp(data, NULL);
    if (!text)
        return h->error(call, LP_ENOTFOUND, "data %s: cannot read", data);
    int D = s->d_in, S = s->d_sae, cap = 0, n = 0, npos = 0;
    const lp_config *cfg = h->model_config(m);
    float *X = NULL;   /* [n, S] samples */
    uint8_t *Y = NULL; /* [n] */
    int64_t items = 0;
    for (char *p = text; *p && !rc && (max_items <= 0 || items < max_items);) {
        char *end = strchr(p, '\n');
        if (end)
            *end = 0;
        cJSON *j = cJSON_Parse(p);
        p = end ? end + 1 : p + strlen(p);
        const cJSON *t = cJSON_GetObjectItem(j, "text");
        if (!cJSON_IsString(t)) {
            cJSON_Delete(j);
            continue;
        }
        items++;
        int32_t *ids = NULL;
        int T = 0;
        lp_error e = {0};
        if ((rc = h->tokenize(m, t->valuestring, 0, &ids, &T, &e))) {
            rc = h->error(call, rc, "%s: %s", data, e.msg);
            cJSON_Delete(j);
            break;
        }
        int off0 = bos ? 1 : 0, TT = T + off0;
        if (TT > cfg->n_ctx)
            TT = cfg->n_ctx;
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(TT > 0 ? TT : 1));
        if (bos)
            tok[0] = cfg->bos_token_id >= 0 ? cfg->bos_token_id : cfg->eos_token_id;
        memcpy(tok + off0, ids, sizeof(int32_t) * (size_t)(TT - off0));
        float *x = malloc(sizeof(float) * (size_t)TT * D), *f = malloc(sizeof(float) * (size_t)TT * S);
        hook_io io = {x, D, s->hook_head_index, 0, NULL, 0};
        rc = run_ctx(call, m, tok, 1, TT, hook, &io, NULL);
        if (!rc)
            sae_encode(s, x, TT, f);
        /* samples of this text */
        int want = 0;
        const cJSON *ws = NULL;
        if (!rc && words) {
            ws = cJSON_GetObjectItem(j, h->param_str(call, "words_field"));
            want = cJSON_GetArraySize(ws);
        } else if (!rc)
            want = 1;
        if (n + want > cap) {
            cap = (n + want) * 2 + 64;
            X = realloc(X, sizeof(float) * (size_t)cap * S);
            Y = realloc(Y, (size_t)cap);
        }
        if (!rc && !words) {
            const cJSON *lb = cJSON_GetObjectItem(j, h->param_str(call, "label_field"));
            if (cJSON_IsNumber(lb)) {
                float *o = X + (size_t)n * S;
                int a = off0 < TT ? off0 : 0;
                for (int i = 0; i < S; i++) {
                    double v = !strcmp(red, "last") ? f[(size_t)(TT - 1) * S + i] : 0;
                    if (strcmp(red, "last"))
                        for (int q = a; q < TT; q++) {
                            float fv = f[(size_t)q * S + i];
                            v = !strcmp(red, "max") ? (fv > v ? fv : v) : v + fv / (TT - a);
                        }
                    o[i] = (float)v;
                }
                Y[n] = lb->valuedouble > thr;
                npos += Y[n];
                n++;
            }
        } else if (!rc) {
            /* char offset → token: walk the token bytes */
            int *start = malloc(sizeof(int) * (size_t)(TT + 1));
            int off = 0;
            for (int q = off0; q < TT; q++) {
                char b[256];
                int l = h->token_bytes(m, tok[q], b, sizeof b);
                start[q] = off;
                off += l > 0 ? l : 0;
            }
            start[TT] = off;
            const cJSON *w;
            cJSON_ArrayForEach(w, ws)
            {
                const cJSON *c = cJSON_GetObjectItem(w, "char"),
                            *v = cJSON_GetObjectItem(w, h->param_str(call, "value_field"));
                if (!cJSON_IsNumber(c) || !cJSON_IsNumber(v))
                    continue;
                int ch = c->valueint, q = -1;
                for (int r = off0; r < TT; r++)
                    if (start[r] <= ch && ch < start[r + 1])
                        q = r;
                if (q < 0)
                    continue;
                memcpy(X + (size_t)n * S, f + (size_t)q * S, sizeof(float) * (size_t)S);
                Y[n] = v->valuedouble > thr;
                npos += Y[n];
                n++;
            }
            free(start);
        }
        free(x), free(f), free(tok);
        h->free(ids);
        cJSON_Delete(j);
        if (!rc && h->progress(call, (double)items, max_items > 0 ? (double)max_items : 0, "texts"))
            rc = h->error(call, LP_ECANCELLED, "cancelled");
    }
    free(text);
    if (!rc && (npos == 0 || npos == n))
        rc = h->error(call, LP_EINVAL, "%s: need samples of both labels (%d of %d positive)", data, npos, n);
    if (rc) {
        free(X), free(Y);
        return rc;
    }
    int64_t neS[1] = {S};
    lp_tensor at = h->result_tensor(call, "auroc", 1, neS, "feature");
    scored *col = malloc(sizeof(scored) * (size_t)n);
    float *au = malloc(sizeof(float) * (size_t)S);
    double *mp = calloc((size_t)S, sizeof(double)), *mn = calloc((size_t)S, sizeof(double));
    for (int i = 0; i < S; i++) {
        for (int q = 0; q < n; q++) {
            col[q] = (scored){X[(size_t)q * S + i], Y[q]};
            if (Y[q])
                mp[i] += col[q].v / npos;
            else
                mn[i] += col[q].v / (n - npos);
        }
        qsort(col, (size_t)n, sizeof(scored), scored_cmp);
        double rank_sum = 0; /* ranks of positives, ties averaged */
        for (int a = 0; a < n;) {
            int b = a;
            while (b < n && col[b].v == col[a].v)
                b++;
            double r = (a + 1 + b) / 2.0;
            for (int q = a; q < b; q++)
                if (col[q].y)
                    rank_sum += r;
            a = b;
        }
        double U = rank_sum - (double)npos * (npos + 1) / 2;
        au[i] = (float)(U / ((double)npos * (n - npos)));
        if (at.data)
            ((float *)at.data)[i] = au[i];
    }
    int nb = (int)h->param_int(call, "n_best");
    const char *cols[] = {"feature", "auroc", "direction", "mean_pos", "mean_neg"};
    int tb = h->result_table(call, "best", 5, cols);
    uint8_t *taken = calloc((size_t)S, 1);
    int best = -1;
    for (int r = 0; r < nb && r < S; r++) {
        int bi = -1;
        for (int i = 0; i < S; i++)
            if (!taken[i] && (bi < 0 || fmaxf(au[i], 1 - au[i]) > fmaxf(au[bi], 1 - au[bi])))
                bi = i;
        taken[bi] = 1;
        if (r == 0)
            best = bi;
        lp_cell row[5] = {{1, bi, NULL}, {1, fmaxf(au[bi], 1 - au[bi]), NULL},
                          {0, 0, au[bi] >= 0.5f ? "label 1" : "label 0"}, {1, mp[bi], NULL}, {1, mn[bi], NULL}};
        h->table_row(call, tb, row);
    }
    h->result_scalar(call, "samples", n);
    h->result_scalar(call, "positives", npos);
    h->result_scalar(call, "best_feature", best);
    h->result_scalar(call, "best_auroc", fmaxf(au[best], 1 - au[best]));
    free(taken), free(col), free(au), free(mp), free(mn), free(X), free(Y);
    return 0;
}

/* =========================== sae.info =========================== */
static const lp_param_desc info_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder or params.npz"},
};

static int info(lp_call *call, const lp_host_api *h)
{
    const sae *s;
    int rc = sae_get(call, h->param_str(call, "sae"), &s);
    if (rc)
        return rc;
    h->result_scalar(call, "d_in", s->d_in);
    h->result_scalar(call, "d_sae", s->d_sae);
    h->result_string(call, "architecture", sae_arch_name(s->arch));
    if (s->arch == SAE_TOPK)
        h->result_scalar(call, "k", s->k);
    h->result_string(call, "hook_name", s->hook_name);
    h->result_string(call, "model_name", s->model_name);
    h->result_scalar(call, "apply_b_dec_to_input", s->apply_b_dec_to_input);
    h->result_string(call, "normalize_activations", s->normalize);
    h->result_scalar(call, "prepend_bos", s->prepend_bos);
    lp_model *m = h->call_model(call);
    if (m && s->hook_name[0]) {
        char err[SAE_ERR_MAX];
        int w = hook_width(m, s->hook_name, s->hook_head_index, err);
        h->result_string(call, "fits_model", w == s->d_in ? "yes" : w < 0 ? err : "no: d_in differs from the hook's width");
    }
    return 0;
}

#define DESC(nm, sum, hlp, prm, cp, fn)                                                                                \
    {.struct_size = sizeof(lp_method_desc), .name = nm, .summary = sum, .help = hlp, .params = prm,                     \
     .n_params = sizeof prm / sizeof prm[0], .caps = cp, .run = fn}

static const lp_method_desc methods[] = {
    DESC("harvest", "run a corpus through the model and store hook activations (resumable shards)", harvest_help,
         harvest_params, LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_FILES, harvest),
    DESC("train", "train a ReLU or TopK sparse autoencoder on an activation store", train_help, train_params,
         LP_CAP_TRAINS | LP_CAP_WRITES_FILES, train),
    DESC("encode", "active SAE features of each token of a prompt", encode_help, encode_params,
         LP_CAP_READS_ACTIVATIONS, encode),
    DESC("evaluate", "L0, explained variance, CE loss recovered, KL, dead/dense latents", eval_help, eval_params,
         LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_ACTIVATIONS, evaluate),
    DESC("compare", "mean max cosine similarity between two SAEs' decoder directions", compare_help, compare_params,
         0, compare),
    DESC("dashboard", "a feature's top contexts, quantile samples, density and logit effects", dash_help, dash_params,
         0, dashboard),
    DESC("auroc", "AUROC of each latent for a labelled variable (passage labels or labelled words)", auroc_help,
         auroc_params, LP_CAP_READS_ACTIVATIONS, auroc),
    DESC("info", "an SAE's configuration (and whether it fits the model)", "Reads cfg.json / params.npz.\n",
         info_params, 0, info),
};

static void cleanup(void) __attribute__((destructor));
static void cleanup(void)
{
    if (cache.valid)
        sae_free(&cache.s);
    cache.valid = 0;
}

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    H = host;
    sae_sgemm = host_sgemm;
    int rc = host->set_info(plugin, "sae", "0.1.0",
                            "sparse autoencoders: activation store, SAELens-format SAEs, training, evaluation, dashboards");
    for (size_t i = 0; !rc && i < sizeof methods / sizeof methods[0]; i++)
        rc = host->register_method(plugin, &methods[i]);
    return rc;
}
