/* sae — sae.harvest: a corpus through the model into an activation store (store.c). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glue.h"

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
        int w = sae_hook_width(m, name, -1, err);
        if (w < 0)
            return h->error(call, w, "%s", err);
        if (want.n_hooks && w != want.d)
            return h->error(call, LP_EINVAL, "hooks of one store must have the same width (%s is %d, not %d)", name, w,
                            want.d);
        want.d = w;
        snprintf(want.hooks[want.n_hooks++], sizeof want.hooks[0], "%s", name);
    }
    if (!want.n_hooks)
        return h->error(call, LP_ENOTFOUND, "hook '%s' matches no hook point", pat);
    contexts cx = {0};
    int64_t max_ctx = max_tokens > 0 ? (max_tokens + T - 1) / T : 0;
    int rc = sae_corpus_contexts(call, m, corpus, T, bos, max_ctx, !strcmp(h->param_str(call, "docs"), "lines"), &cx,
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
    double t0 = sae_now();
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
                rc = h->hooks_add(hs, want.hooks[i], sae_hook_rw, &io[i], &e);
            }
            int maxL = -1, full = 0;
            for (int i = 0; i < want.n_hooks; i++) {
                int L = sae_hook_layer(want.hooks[i]);
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
            double el = sae_now() - t0, tps = new_tokens / (el > 1e-9 ? el : 1e-9);
            int64_t done_tok = start_ctx * T + new_tokens;
            char what[128];
            snprintf(what, sizeof what, "tokens, %.0f tok/s, ETA %.0f s", tps, (total_tokens - done_tok) / tps);
            if (h->progress(call, (double)done_tok, (double)total_tokens, what)) {
                rc = h->error(call, LP_ECANCELLED,
                              "cancelled after %d complete shards (%lld tokens); run the same "
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
    double el = sae_now() - t0;
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

const lp_method_desc sae_method_harvest =
    SAE_DESC("harvest", "run a corpus through the model and store hook activations (resumable shards)", harvest_help,
             harvest_params, LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_FILES, harvest);
