/* sae — the activation store: a folder with manifest.json and shard_NNNNN.safetensors.
 * Each shard holds one tensor per hook point ([n, d], f32 or f16) and `tokens` [n] (i32),
 * rows in corpus order (context c, position p → row c·context_size + p). Shards are written
 * to a temporary name and renamed when complete; the manifest (also written atomically)
 * lists only complete shards, so an interrupted harvest loses at most the shard in flight. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sae_impl.h"

void store_meta_free(store_meta *m)
{
    free(m->shard_n);
    m->shard_n = NULL;
}

int store_meta_read(const char *dir, store_meta *m, char *err)
{
    memset(m, 0, sizeof *m);
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char *t = sae_slurp(path, NULL);
    if (!t)
        return sae_err(err, SAE_ENOTFOUND, "%s: no manifest.json (not an activation store)", dir);
    cJSON *j = cJSON_Parse(t);
    free(t);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sae_err(err, SAE_EFORMAT, "%s: manifest is not a JSON object", path);
    }
    const cJSON *v;
#define GETS(key, dst)                                                                                                 \
    if (cJSON_IsString(v = cJSON_GetObjectItem(j, key)))                                                               \
    snprintf(dst, sizeof dst, "%s", v->valuestring)
#define GETN(key) (cJSON_IsNumber(v = cJSON_GetObjectItem(j, key)) ? v->valuedouble : cJSON_IsTrue(v) ? 1 : 0)
    GETS("model", m->model);
    GETS("corpus", m->corpus);
    m->corpus_bytes = (int64_t)GETN("corpus_bytes");
    m->d = (int)GETN("d");
    m->context_size = (int)GETN("context_size");
    m->prepend_bos = (int)GETN("prepend_bos");
    m->shard_tokens = (int64_t)GETN("shard_tokens");
    m->complete = (int)GETN("complete");
    char dt[16] = "f32";
    GETS("dtype", dt);
    m->dtype = !strcmp(dt, "f16") ? ST_F16 : ST_F32;
    const cJSON *hk = cJSON_GetObjectItem(j, "hooks"), *sh = cJSON_GetObjectItem(j, "shards"), *it;
    cJSON_ArrayForEach(it, hk) if (cJSON_IsString(it) && m->n_hooks < 8)
        snprintf(m->hooks[m->n_hooks++], sizeof m->hooks[0], "%s", it->valuestring);
    int ns = cJSON_GetArraySize(sh);
    m->shard_n = calloc((size_t)ns + 1, sizeof(int64_t));
    cJSON_ArrayForEach(it, sh)
    {
        const cJSON *n = cJSON_GetObjectItem(it, "tokens");
        m->shard_n[m->n_shards++] = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
        m->n_tokens += m->shard_n[m->n_shards - 1];
    }
    cJSON_Delete(j);
#undef GETS
#undef GETN
    if (m->d <= 0 || m->n_hooks == 0 || m->context_size <= 0) {
        store_meta_free(m);
        return sae_err(err, SAE_EFORMAT, "%s: manifest lacks d, hooks or context_size", path);
    }
    return 0;
}

int store_meta_write(const char *dir, const store_meta *m, char *err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "model", m->model);
    cJSON_AddStringToObject(j, "corpus", m->corpus);
    cJSON_AddNumberToObject(j, "corpus_bytes", (double)m->corpus_bytes);
    cJSON *hk = cJSON_AddArrayToObject(j, "hooks");
    for (int i = 0; i < m->n_hooks; i++)
        cJSON_AddItemToArray(hk, cJSON_CreateString(m->hooks[i]));
    cJSON_AddNumberToObject(j, "d", m->d);
    cJSON_AddNumberToObject(j, "context_size", m->context_size);
    cJSON_AddBoolToObject(j, "prepend_bos", m->prepend_bos);
    cJSON_AddStringToObject(j, "dtype", m->dtype == ST_F16 ? "f16" : "f32");
    cJSON_AddNumberToObject(j, "shard_tokens", (double)m->shard_tokens);
    cJSON_AddNumberToObject(j, "n_tokens", (double)m->n_tokens);
    cJSON_AddBoolToObject(j, "complete", m->complete);
    cJSON *sh = cJSON_AddArrayToObject(j, "shards");
    for (int i = 0; i < m->n_shards; i++) {
        cJSON *o = cJSON_CreateObject();
        char name[64];
        snprintf(name, sizeof name, "shard_%05d.safetensors", i);
        cJSON_AddStringToObject(o, "file", name);
        cJSON_AddNumberToObject(o, "tokens", (double)m->shard_n[i]);
        cJSON_AddItemToArray(sh, o);
    }
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    int rc = sae_write_atomic(path, txt, strlen(txt), err);
    free(txt);
    return rc;
}

int store_write_shard(const char *dir, store_meta *m, const float *const *acts, const int32_t *tokens, int64_t n,
                      char *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/shard_%05d.safetensors", dir, m->n_shards);
    st_writer *w = st_writer_new();
    if (!w)
        return sae_err(err, SAE_ENOMEM, "out of memory");
    int64_t ne[2] = {n, m->d};
    for (int h = 0; h < m->n_hooks; h++)
        st_writer_add(w, m->hooks[h], ST_F32, acts[h], 2, ne, m->dtype);
    st_writer_add(w, "tokens", ST_I32, tokens, 1, &n, ST_I32);
    int rc = st_writer_finish(w, path, err);
    st_writer_free(w);
    if (rc)
        return rc;
    int64_t *sn = realloc(m->shard_n, sizeof(int64_t) * (size_t)(m->n_shards + 1));
    if (!sn)
        return sae_err(err, SAE_ENOMEM, "out of memory");
    m->shard_n = sn;
    sn[m->n_shards++] = n;
    m->n_tokens += n;
    return store_meta_write(dir, m, err);
}

void store_close(store *s)
{
    for (int i = 0; i < s->n_shards; i++)
        st_close(&s->shards[i].st);
    free(s->shards);
    free(s->offsets);
    store_meta_free(&s->meta);
    memset(s, 0, sizeof *s);
}

int store_open(const char *dir, const char *hook, store *s, char *err)
{
    memset(s, 0, sizeof *s);
    int rc = store_meta_read(dir, &s->meta, err);
    if (rc)
        return rc;
    store_meta *m = &s->meta;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    int h = 0;
    if (hook && *hook) {
        h = -1;
        for (int i = 0; i < m->n_hooks; i++)
            if (!strcmp(m->hooks[i], hook))
                h = i;
        if (h < 0) {
            store_close(s);
            return sae_err(err, SAE_ENOTFOUND, "%s: the store has no activations for '%s'", dir, hook);
        }
    }
    snprintf(s->hook, sizeof s->hook, "%s", m->hooks[h]);
    snprintf(s->model, sizeof s->model, "%s", m->model);
    s->d = m->d;
    s->context_size = m->context_size;
    s->prepend_bos = m->prepend_bos;
    s->dtype = m->dtype;
    s->shard_tokens = m->shard_tokens;
    s->complete = m->complete;
    s->shards = calloc((size_t)m->n_shards + 1, sizeof *s->shards);
    s->offsets = calloc((size_t)m->n_shards + 1, sizeof(int64_t));
    if (!s->shards || !s->offsets) {
        store_close(s);
        return sae_err(err, SAE_ENOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_shards; i++) {
        store_shard *sh = &s->shards[i];
        snprintf(sh->file, sizeof sh->file, "shard_%05d.safetensors", i);
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, sh->file);
        if ((rc = st_open(path, &sh->st, err))) {
            store_close(s);
            return rc;
        }
        s->n_shards++;
        sh->act = st_find(&sh->st, s->hook);
        sh->tokens = st_find(&sh->st, "tokens");
        sh->n_tokens = m->shard_n[i];
        if (!sh->act || !sh->tokens || sh->act->ndim != 2 || sh->act->ne[0] != sh->n_tokens || sh->act->ne[1] != s->d ||
            (sh->act->dtype != ST_F32 && sh->act->dtype != ST_F16) || sh->tokens->dtype != ST_I32 ||
            st_nelem(sh->tokens) != sh->n_tokens) {
            store_close(s);
            return sae_err(err, SAE_EFORMAT, "%s: shard does not match the manifest", path);
        }
        s->offsets[i + 1] = s->offsets[i] + sh->n_tokens;
    }
    s->n_tokens = s->offsets[s->n_shards];
    if (s->n_tokens == 0) {
        store_close(s);
        return sae_err(err, SAE_EINVAL, "%s: the store holds no complete shard yet", dir);
    }
    return 0;
}

void store_row(const store *s, int64_t i, float *out, int32_t *tok)
{
    int lo = 0, hi = s->n_shards - 1;
    if (s->shard_tokens > 0 && i / s->shard_tokens < s->n_shards && s->offsets[i / s->shard_tokens] <= i &&
        i < s->offsets[i / s->shard_tokens + 1])
        lo = hi = (int)(i / s->shard_tokens);
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->offsets[mid] <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    const store_shard *sh = &s->shards[lo];
    int64_t r = i - s->offsets[lo];
    int d = s->d;
    if (sh->act->dtype == ST_F32)
        memcpy(out, (const float *)sh->act->data + r * d, sizeof(float) * (size_t)d);
    else {
        const uint16_t *p = (const uint16_t *)sh->act->data + r * d;
        for (int k = 0; k < d; k++)
            out[k] = sae_f16_to_f32(p[k]);
    }
    if (tok)
        *tok = ((const int32_t *)sh->tokens->data)[r];
}

int store_sampler_init(store_sampler *sm, const store *st, uint64_t seed)
{
    sm->st = st;
    sm->seed = seed;
    sm->epoch = -1;
    sm->perm = malloc(sizeof(int64_t) * (size_t)st->n_tokens);
    return sm->perm ? 0 : SAE_ENOMEM;
}

void store_sampler_free(store_sampler *sm)
{
    free(sm->perm);
    sm->perm = NULL;
}

static void make_perm(store_sampler *sm, int64_t epoch)
{
    int64_t N = sm->st->n_tokens;
    sae_rng r;
    sae_rng_seed(&r, sm->seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch + 1);
    for (int64_t i = 0; i < N; i++)
        sm->perm[i] = i;
    for (int64_t i = N - 1; i > 0; i--) {
        int64_t j = (int64_t)(sae_rng_next(&r) % (uint64_t)(i + 1));
        int64_t t = sm->perm[i];
        sm->perm[i] = sm->perm[j];
        sm->perm[j] = t;
    }
    sm->epoch = epoch;
}

/* Batch `step`: rows step·B … step·B+B-1 of the infinite sequence of epoch permutations. */
void store_sampler_batch(store_sampler *sm, int64_t step, int B, float *out)
{
    int64_t N = sm->st->n_tokens;
    for (int b = 0; b < B; b++) {
        int64_t g = step * (int64_t)B + b, e = g / N;
        if (e != sm->epoch)
            make_perm(sm, e);
        store_row(sm->st, sm->perm[g % N], out + (size_t)b * sm->st->d, NULL);
    }
}
