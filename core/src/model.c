/* Model folders: resolving a spec to a folder, opening the weight files, the
 * tokenizer, and the model's lifetime. Architecture-specific tensor binding is in
 * model_bind.c. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

#ifndef LOUPE_MODELS_DIRS
#define LOUPE_MODELS_DIRS ""
#endif

static int try_dir(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", dir);
    return lpi_file_exists(p);
}

static void append(char *buf, size_t cap, const char *s)
{
    size_t l = strlen(buf);
    if (l < cap - 1)
        snprintf(buf + l, cap - l, "%s%s", l ? "; " : "", s);
}

static int from_hub(const char *spec, char *dir, size_t cap, char *looked, size_t lcap)
{
    char hub[2048];
    const char *e;
    if ((e = getenv("HF_HUB_CACHE")) && *e)
        snprintf(hub, sizeof hub, "%s", e);
    else if ((e = getenv("HF_HOME")) && *e)
        snprintf(hub, sizeof hub, "%s/hub", e);
    else if ((e = getenv("HOME")) && *e)
        snprintf(hub, sizeof hub, "%s/.cache/huggingface/hub", e);
    else
        return 0;
    char repo[1024] = "models--";
    size_t k = strlen(repo);
    for (const char *s = spec; *s && k + 3 < sizeof repo; s++) {
        if (*s == '/') {
            repo[k++] = '-';
            repo[k++] = '-';
        } else {
            repo[k++] = *s;
        }
    }
    repo[k] = 0;
    char base[3200], ref[3300], tmp[3400];
    snprintf(base, sizeof base, "%s/%s", hub, repo);
    append(looked, lcap, base);
    if (!lpi_dir_exists(base))
        return 0;
    snprintf(ref, sizeof ref, "%s/refs/main", base);
    char *rev = NULL;
    size_t rl;
    if (lpi_read_file(ref, &rev, &rl, NULL) == LP_OK) {
        while (rl && (rev[rl - 1] == '\n' || rev[rl - 1] == '\r' || rev[rl - 1] == ' '))
            rev[--rl] = 0;
        snprintf(tmp, sizeof tmp, "%s/snapshots/%s", base, rev);
        free(rev);
        if (try_dir(tmp)) {
            snprintf(dir, cap, "%s", tmp);
            return 1;
        }
        append(looked, lcap, tmp);
        return 0;
    }
    /* No refs/main: accept a single snapshot. */
    snprintf(tmp, sizeof tmp, "%s/snapshots", base);
    DIR *d = opendir(tmp);
    if (!d)
        return 0;
    struct dirent *de;
    int found = 0;
    char pick[3600];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(pick, sizeof pick, "%s/%s", tmp, de->d_name);
        if (try_dir(pick)) {
            if (!found)
                snprintf(dir, cap, "%s", pick);
            found++;
        }
    }
    closedir(d);
    if (found > 1) {
        append(looked, lcap, "(several snapshots and no refs/main)");
        return 0;
    }
    return found == 1;
}

int lp_model_resolve(const char *spec, char *dir, size_t cap, lp_error *err)
{
    if (!spec || !*spec)
        return lp_error_set(err, LP_EINVAL, "empty model name");
    char looked[3000] = "";
    if (lpi_dir_exists(spec)) {
        if (try_dir(spec)) {
            snprintf(dir, cap, "%s", spec);
            return LP_OK;
        }
        return lp_error_set(err, LP_ENOTFOUND, "%s: folder has no config.json", spec);
    }
    /* Bundled models: $LOUPE_MODELS_PATH, then the build's source tree and install dir. */
    if (!strchr(spec, '/')) {
        char paths[8192];
        const char *env = getenv("LOUPE_MODELS_PATH");
        snprintf(paths, sizeof paths, "%s%s%s", env ? env : "", env && *env ? ":" : "", LOUPE_MODELS_DIRS);
        char *save = NULL;
        for (char *p = strtok_r(paths, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
            if (!*p)
                continue;
            char cand[4096];
            snprintf(cand, sizeof cand, "%s/%s", p, spec);
            if (try_dir(cand)) {
                snprintf(dir, cap, "%s", cand);
                return LP_OK;
            }
            append(looked, sizeof looked, cand);
        }
    }
    if (strchr(spec, '/') == strrchr(spec, '/') && spec[0] != '.' && spec[0] != '/' &&
        from_hub(spec, dir, cap, looked, sizeof looked))
        return LP_OK;
    if (!*looked) /* a path: it was the only place to look */
        return lp_error_set(err, LP_ENOTFOUND, "%s: model not found: no such folder", spec);
    return lp_error_set(err, LP_ENOTFOUND, "model '%s' not found (not a folder; looked in: %s)", spec, looked);
}

static int open_weights(lp_model *m, lp_error *err)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", m->dir);
    if (lpi_file_exists(p)) {
        m->files = calloc(1, sizeof *m->files);
        if (!m->files)
            return lp_error_set(err, LP_ENOMEM, "out of memory");
        int rc = lp_st_open(p, &m->files[0], err);
        if (rc)
            return rc;
        m->n_files = 1;
        return LP_OK;
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", m->dir);
    if (!lpi_file_exists(p)) {
        snprintf(p, sizeof p, "%s/pytorch_model.bin", m->dir);
        if (lpi_file_exists(p))
            return lp_error_set(err, LP_EUNSUPPORTED,
                                "%s: only safetensors weights are supported (convert pytorch_model.bin first)", m->dir);
        return lp_error_set(err, LP_ENOTFOUND, "%s: no model.safetensors or model.safetensors.index.json", m->dir);
    }
    char *text;
    size_t len;
    int rc = lpi_read_file(p, &text, &len, err);
    if (rc)
        return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return lp_error_set(err, LP_EFORMAT, "%s: no weight_map object", p);
    }
    /* Distinct shard names, in order of first appearance. */
    int n = cJSON_GetArraySize(wm);
    char **names = calloc((size_t)n + 1, sizeof(char *));
    int nn = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm)
    {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || strstr(it->valuestring, "..")) {
            rc = lp_error_set(err, LP_EFORMAT, "%s: bad shard name for '%s'", p, it->string ? it->string : "?");
            break;
        }
        int seen = 0;
        for (int i = 0; i < nn; i++)
            seen |= strcmp(names[i], it->valuestring) == 0;
        if (!seen)
            names[nn++] = it->valuestring;
    }
    if (!rc) {
        m->files = calloc((size_t)nn + 1, sizeof *m->files);
        for (int i = 0; i < nn && !rc; i++) {
            char sp[4096];
            snprintf(sp, sizeof sp, "%s/%s", m->dir, names[i]);
            rc = lp_st_open(sp, &m->files[i], err);
            if (!rc)
                m->n_files = i + 1;
        }
    }
    /* Every mapped name must be in the shard the index says. */
    if (!rc) {
        cJSON_ArrayForEach(it, wm)
        {
            for (int i = 0; i < m->n_files; i++) {
                const char *base = strrchr(lp_st_path(m->files[i]), '/') + 1;
                if (strcmp(base, it->valuestring) == 0 && lp_st_find(m->files[i], it->string) < 0) {
                    rc = lp_error_set(err, LP_EFORMAT, "%s: index lists '%s' but the shard does not hold it",
                                      lp_st_path(m->files[i]), it->string);
                    break;
                }
            }
            if (rc)
                break;
        }
    }
    free(names);
    cJSON_Delete(root);
    return rc;
}

int lp_model_load(const char *spec, lp_model **out, lp_error *err)
{
    double t0 = lpi_now();
    *out = NULL;
    char dir[4096];
    int rc = lp_model_resolve(spec, dir, sizeof dir, err);
    if (rc)
        return rc;
    lp_model *m = calloc(1, sizeof *m);
    if (!m)
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    m->dir = lpi_strdup(dir);
    m->name = lpi_strdup(spec);
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    rc = lpi_config_parse(p, &m->cfg, err);
    if (!rc)
        rc = open_weights(m, err);
    if (!rc)
        rc = lpi_model_bind(m, err);
    if (!rc) {
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        char p2[4200];
        snprintf(p2, sizeof p2, "%s/vocab.json", dir);
        if (lpi_file_exists(p) || lpi_file_exists(p2)) {
            rc = lp_tokenizer_load_dir(dir, &m->tok, err);
            if (!rc) {
                m->cfg.prepend_bos = lp_tokenizer_default_add_bos(m->tok);
                if (lp_tokenizer_n_vocab(m->tok) > m->cfg.d_vocab)
                    rc = lp_error_set(err, LP_EFORMAT, "%s: tokenizer has %d tokens but the model only %d", dir,
                                      lp_tokenizer_n_vocab(m->tok), m->cfg.d_vocab);
                if (m->cfg.bos_token_id < 0)
                    m->cfg.bos_token_id = lp_tokenizer_bos(m->tok);
                if (m->cfg.eos_token_id < 0)
                    m->cfg.eos_token_id = lp_tokenizer_eos(m->tok);
            }
        }
    }
    if (rc) {
        lp_model_free(m);
        return rc;
    }
    m->load_s = lpi_now() - t0;
    *out = m;
    return LP_OK;
}

void lp_model_free(lp_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_files; i++)
        lp_st_close(m->files[i]);
    free(m->files);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->rope_inv_freq);
    if (m->tok)
        lp_tokenizer_free(m->tok);
    free(m->ws.buf);
    lpi_pool_free(m->pool);
    free(m->dir);
    free(m->name);
    free(m);
}

const lp_config *lp_model_config(const lp_model *m) { return &m->cfg; }
const char *lp_model_dir(const lp_model *m) { return m->dir; }
const char *lp_model_name(const lp_model *m) { return m->name; }
int64_t lp_model_n_params(const lp_model *m) { return m->n_params; }
int64_t lp_model_weight_bytes(const lp_model *m) { return m->n_params * 4; }
lp_tokenizer *lp_model_tokenizer(const lp_model *m) { return m->tok; }
int lp_model_n_files(const lp_model *m) { return m->n_files; }
const char *lp_model_file(const lp_model *m, int i) { return lp_st_path(m->files[i]); }
double lp_model_load_seconds(const lp_model *m) { return m->load_s; }
double lp_model_last_run_ms(const lp_model *m) { return m->last_run_ms; }
