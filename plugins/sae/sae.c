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

#include "glue.h"
#include "plugin_util.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

const lp_host_api *sae_host;

static void host_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc)
{
    sae_host->sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

double sae_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- hook widths: the flattened per-position size of a hook point ---- */
int sae_hook_width(lp_model *m, const char *name, int head_index, char *err)
{
    const lp_config *c = sae_host->model_config(m);
    int n = sae_host->model_n_hook_points(m);
    for (int i = 0; i < n; i++) {
        lp_hook_kind k;
        int layer;
        char buf[128];
        sae_host->model_hook_point(m, i, &k, &layer);
        sae_host->hook_name(k, layer, buf, sizeof buf);
        if (strcmp(buf, name))
            continue;
        switch (k) {
        case LP_HOOK_Q:
        case LP_HOOK_K:
        case LP_HOOK_V:
        case LP_HOOK_Z:
        case LP_HOOK_ROT_Q:
        case LP_HOOK_ROT_K:
            return head_index >= 0 ? c->d_head : c->n_heads * c->d_head;
        case LP_HOOK_MLP_PRE:
        case LP_HOOK_MLP_PRE_LINEAR:
        case LP_HOOK_MLP_POST:
            return c->d_mlp;
        case LP_HOOK_LN1_SCALE:
        case LP_HOOK_LN2_SCALE:
        case LP_HOOK_LN_FINAL_SCALE:
            return 1;
        case LP_HOOK_ATTN_SCORES:
        case LP_HOOK_PATTERN:
            return sae_err(err, SAE_EUNSUPPORTED, "%s is not a per-position activation (SAEs read per-token vectors)",
                           name);
        default:
            return c->d_model;
        }
    }
    return sae_err(err, SAE_ENOTFOUND, "the model has no hook point '%s' (see `loupe hooks`)", name);
}

int sae_hook_layer(const char *name)
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

int sae_get(lp_call *call, const char *path, const sae **out)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", path);
    struct stat sb;
    if (stat(p, &sb) != 0) {
        snprintf(p, sizeof p, "%s/params.npz", path);
        if (stat(p, &sb) != 0 && stat(path, &sb) != 0)
            return sae_host->error(call, LP_ENOTFOUND,
                                   "%s: no such SAE (a folder with cfg.json and sae_weights.safetensors, "
                                   "or a Gemma Scope params.npz)",
                                   path);
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
        return sae_host->error(call, rc, "%s", err);
    snprintf(cache.path, sizeof cache.path, "%s", path);
    cache.mtime = sb.st_mtime;
    cache.size = sb.st_size;
    cache.valid = 1;
    *out = &cache.s;
    return 0;
}

/* Load an SAE and check it fits the call's model (hook exists, width matches). */
int sae_for_model(lp_call *call, lp_model *m, const char *path, const char *hook_override, const sae **out, char *hook,
                  size_t hcap)
{
    int rc = sae_get(call, path, out);
    if (rc)
        return rc;
    const sae *s = *out;
    snprintf(hook, hcap, "%s", hook_override && *hook_override ? hook_override : s->hook_name);
    if (!hook[0])
        return sae_host->error(call, LP_EINVAL, "%s: the SAE names no hook point; pass hook=NAME", path);
    char err[SAE_ERR_MAX];
    int w = sae_hook_width(m, hook, s->hook_head_index, err);
    if (w < 0)
        return sae_host->error(call, w, "%s: %s", path, err);
    if (w != s->d_in)
        return sae_host->error(call, LP_EINVAL, "%s: d_in is %d but the model's %s is %d wide", path, s->d_in, hook, w);
    return 0;
}

/* ---- token text for tables ---- */
void sae_token_text(lp_model *m, int32_t id, char *out, size_t cap)
{
    pu_token_text(sae_host, m, id, out, cap);
}

/* ---- corpus → contexts ---- */

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
int sae_corpus_contexts(lp_call *call, lp_model *m, const char *path, int T, int bos, int64_t max_ctx, int by_line,
                        contexts *out, int64_t *corpus_bytes)
{
    size_t len;
    char *text = sae_slurp(path, &len);
    if (!text)
        return sae_host->error(call, LP_ENOTFOUND, "corpus %s: cannot read", path);
    *corpus_bytes = (int64_t)len;
    const lp_config *cfg = sae_host->model_config(m);
    int bos_id = cfg->bos_token_id >= 0 ? cfg->bos_token_id : cfg->eos_token_id;
    if (bos && bos_id < 0) {
        free(text);
        return sae_host->error(call, LP_EINVAL, "prepend_bos: the model has no BOS/EOS token id");
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
            if ((rc = sae_host->tokenize(m, doc, 0, &ids, &n, &e)) == 0) {
                if (ns > 0 && bos_id >= 0) {
                    int32_t sep = bos_id;
                    rc = append_tokens(&stream, &ns, &cap, &sep, 1);
                }
                if (!rc)
                    rc = append_tokens(&stream, &ns, &cap, ids, n);
            } else
                rc = sae_host->error(call, rc, "corpus %s: %s", path, e.msg);
            sae_host->free(ids);
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
        return sae_host->error(call, LP_EINVAL, "corpus %s: %lld tokens, not enough for one context of %d", path,
                               (long long)ns, T);
    }
    out->tok = malloc(sizeof(int32_t) * (size_t)nc * T);
    if (!out->tok) {
        free(stream);
        return sae_host->error(call, LP_ENOMEM, "out of memory");
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

/* copy between the activation (any strides) and contiguous rows */
int sae_hook_rw(lp_tensor *act, const lp_hook_info *info, void *user)
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
int sae_run_ctx(lp_call *call, lp_model *m, const int32_t *tok, int nb, int T, const char *hook, hook_io *io,
                float *logits)
{
    lp_hooks *hs = sae_host->hooks_new();
    lp_error e = {0};
    int rc = hs ? 0 : LP_ENOMEM;
    if (!rc && hook && io)
        rc = sae_host->hooks_add(hs, hook, sae_hook_rw, io, &e);
    lp_batch b = {.tokens = tok, .n_batch = nb, .n_pos = T, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.hooks = hs;
    if (logits) {
        o.logits = LP_LOGITS_ALL;
        o.logits_out = logits;
    } else if (hook) {
        int L = sae_hook_layer(hook);
        const lp_config *c = sae_host->model_config(m);
        if (L >= 0 && L + 1 < c->n_layers)
            o.stop_at_layer = L + 1;
    }
    if (!rc)
        rc = sae_host->model_run(m, &b, &o, &e);
    sae_host->hooks_free(hs);
    if (rc)
        return sae_host->error(call, rc, "forward pass: %s", e.msg[0] ? e.msg : "failed");
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
        int w = sae_hook_width(m, s->hook_name, s->hook_head_index, err);
        h->result_string(call, "fits_model",
                         w == s->d_in ? "yes"
                         : w < 0      ? err
                                      : "no: d_in differs from the hook's width");
    }
    return 0;
}

static const lp_method_desc info_method = SAE_DESC("info", "an SAE's configuration (and whether it fits the model)",
                                                   "Reads cfg.json / params.npz.\n", info_params, 0, info);

static const lp_method_desc *const methods[] = {
    &sae_method_harvest, &sae_method_train,     &sae_method_encode, &sae_method_evaluate,
    &sae_method_compare, &sae_method_dashboard, &sae_method_auroc,  &info_method,
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
    sae_host = host;
    sae_sgemm = host_sgemm;
    int rc =
        host->set_info(plugin, "sae", "0.1.0",
                       "sparse autoencoders: activation store, SAELens-format SAEs, training, evaluation, dashboards");
    for (size_t i = 0; !rc && i < sizeof methods / sizeof methods[0]; i++)
        rc = host->register_method(plugin, methods[i]);
    return rc;
}
