/* loupe — tokenizer public entry points: loading from files / folders, config files, accessors. */
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1u << 30)

/* Read a whole file; LP_ENOTFOUND if it does not exist. */
static int read_file(const char *path, char **data, size_t *n, lp_error *err)
{
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return lp_error_set(err, errno == ENOENT ? LP_ENOTFOUND : LP_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            if (cap >= MAX_FILE) {
                free(buf);
                fclose(f);
                return lp_error_set(err, LP_EFORMAT, "%s: file too large", path);
            }
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = !buf ? LP_ENOMEM : ferror(f) ? LP_EIO : 0;
    fclose(f);
    if (bad) {
        free(buf);
        return lp_error_set(err, bad, "%s: %s", path, bad == LP_ENOMEM ? "out of memory" : "read error");
    }
    *data = buf;
    *n = len;
    return 0;
}

static int parse_json(const char *data, size_t len, const char *name, cJSON **out, lp_error *err)
{
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!*out) {
        size_t off = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        return lp_error_set(err, LP_EFORMAT, "%s: malformed JSON near byte %zu", name, off);
    }
    return 0;
}

int lp_tokenizer_load_json_mem(const char *data, size_t len, const char *name, lp_tokenizer **out, lp_error *err)
{
    if (!out || (!data && len))
        return lp_error_set(err, LP_EINVAL, "lp_tokenizer_load_json_mem: NULL argument");
    *out = NULL;
    if (!name)
        name = "tokenizer.json";
    cJSON *root;
    int rc = parse_json(data ? data : "", len, name, &root, err);
    if (rc)
        return rc;
    rc = lpi_tok_from_cjson(root, name, out, err);
    cJSON_Delete(root);
    return rc;
}

int lp_tokenizer_load_json(const char *path, lp_tokenizer **out, lp_error *err)
{
    if (!path || !out)
        return lp_error_set(err, LP_EINVAL, "lp_tokenizer_load_json: NULL argument");
    *out = NULL;
    char *data;
    size_t n;
    int rc = read_file(path, &data, &n, err);
    if (rc)
        return rc;
    rc = lp_tokenizer_load_json_mem(data, n, path, out, err);
    free(data);
    return rc;
}

/* ---- folders: config files and the vocab.json + merges.txt fallback ---- */

static char *join(const char *dir, const char *file)
{
    size_t a = strlen(dir), b = strlen(file);
    char *p = malloc(a + b + 2);
    if (p)
        snprintf(p, a + b + 2, "%s/%s", dir, file);
    return p;
}

/* Parse dir/file if it exists; *out = NULL when absent. */
static int read_optional_json(const char *dir, const char *file, cJSON **out, lp_error *err)
{
    *out = NULL;
    char *path = join(dir, file), *data;
    size_t n;
    if (!path)
        return lp_error_set(err, LP_ENOMEM, "%s/%s: out of memory", dir, file);
    int rc = read_file(path, &data, &n, err);
    if (rc == LP_ENOTFOUND) {
        lp_error_clear(err);
        rc = 0;
    } else if (!rc) {
        rc = parse_json(data, n, path, out, err);
        if (!rc && !cJSON_IsObject(*out)) {
            cJSON_Delete(*out);
            *out = NULL;
            rc = lp_error_set(err, LP_EFORMAT, "%s: not a JSON object", path);
        }
        free(data);
    }
    free(path);
    return rc;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} */
static const char *token_name(const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void apply_config(lp_tokenizer *t, const cJSON *cfg)
{
    if (!cfg)
        return;
    const char *b = token_name(cfg, "bos_token"), *e = token_name(cfg, "eos_token");
    int32_t id;
    if (b && (id = lp_tokenizer_token_id(t, b)) >= 0)
        t->bos = id;
    if (e && (id = lp_tokenizer_token_id(t, e)) >= 0)
        t->eos = id;
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    if (cJSON_IsBool(ab))
        t->default_add_bos = cJSON_IsTrue(ab);
}

static int add_added(cJSON *arr, int32_t id, const char *content, int special, int lstrip, int rstrip)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, arr)
    {
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (cJSON_IsString(cc) && !strcmp(cc->valuestring, content))
            return 0;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "id", id) || !cJSON_AddStringToObject(o, "content", content) ||
        !cJSON_AddBoolToObject(o, "special", special) || !cJSON_AddBoolToObject(o, "lstrip", lstrip) ||
        !cJSON_AddBoolToObject(o, "rstrip", rstrip)) {
        cJSON_Delete(o);
        return LP_ENOMEM;
    }
    cJSON_AddItemToArray(arr, o);
    return 0;
}

static int valid_id(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < LPI_TOK_MAX_ID;
}

/* Added tokens for the slow-tokenizer layout: tokenizer_config's added_tokens_decoder, then the named
 * special tokens (bos/eos/unk/pad/additional) that exist in vocab.json — all matched before BPE. */
static int fallback_added(cJSON *arr, const cJSON *vocab, const cJSON *const cfgs[2])
{
    static const char *keys[] = {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token",
                                 "mask_token"};
    for (int k = 0; k < 2; k++) {
        const cJSON *c, *dec = cJSON_GetObjectItemCaseSensitive(cfgs[k], "added_tokens_decoder");
        cJSON_ArrayForEach(c, dec)
        {
            char *end;
            long id = strtol(c->string ? c->string : "", &end, 10);
            const char *content = token_name(c, "content");
            if (!content || *end || id < 0 || id >= LPI_TOK_MAX_ID)
                continue;
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(c, "special");
            if (add_added(arr, (int32_t)id, content, cJSON_IsTrue(sp),
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "lstrip")),
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "rstrip"))))
                return LP_ENOMEM;
        }
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *name = token_name(cfgs[k], keys[i]);
            const cJSON *v = name ? cJSON_GetObjectItemCaseSensitive(vocab, name) : NULL;
            if (valid_id(v) && add_added(arr, (int32_t)v->valuedouble, name, 1, 0, 0))
                return LP_ENOMEM;
        }
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(cfgs[k], "additional_special_tokens");
        cJSON_ArrayForEach(c, extra)
        {
            const char *name = cJSON_IsString(c) ? c->valuestring : token_name(c, "content");
            const cJSON *v = name ? cJSON_GetObjectItemCaseSensitive(vocab, name) : NULL;
            if (valid_id(v) && add_added(arr, (int32_t)v->valuedouble, name, 1, 0, 0))
                return LP_ENOMEM;
        }
    }
    return 0;
}

/* merges.txt → JSON array of "a b" strings. */
static int merges_txt(const char *path, cJSON *arr, lp_error *err)
{
    char *data;
    size_t n;
    int rc = read_file(path, &data, &n, err);
    if (rc)
        return rc;
    size_t line_no = 0;
    for (size_t i = 0; i < n && !rc;) {
        size_t e = i;
        while (e < n && data[e] != '\n')
            e++;
        size_t le = e;
        if (le > i && data[le - 1] == '\r')
            le--;
        line_no++;
        const char *s = data + i;
        size_t len = le - i;
        i = e + 1;
        if (len == 0 || (line_no == 1 && len >= 8 && !memcmp(s, "#version", 8)))
            continue;
        const char *sp = memchr(s, ' ', len);
        if (!sp || sp == s || sp + 1 == s + len || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1)) ||
            memchr(s, '\0', len)) {
            rc = lp_error_set(err, LP_EFORMAT, "%s:%zu: a merge line must be two tokens separated by one space",
                              path, line_no);
            break;
        }
        char *str = malloc(len + 1);
        cJSON *item = NULL;
        if (str) {
            memcpy(str, s, len);
            str[len] = '\0';
            item = cJSON_CreateString(str);
            free(str);
        }
        if (!item)
            rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
        else
            cJSON_AddItemToArray(arr, item);
    }
    free(data);
    return rc;
}

static int load_fallback(const char *dir, const cJSON *const cfgs[2], lp_tokenizer **out, lp_error *err)
{
    char *vpath = join(dir, "vocab.json"), *mpath = join(dir, "merges.txt"), *data = NULL, name[1024];
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *vocab = NULL;
    int rc = 0;
    if (!vpath || !mpath || !root || !model) {
        rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", dir);
        cJSON_Delete(model);
        goto done;
    }
    cJSON_AddItemToObject(root, "model", model);
    size_t n;
    if ((rc = read_file(vpath, &data, &n, err))) {
        if (rc == LP_ENOTFOUND)
            lp_error_set(err, LP_ENOTFOUND, "%s: no tokenizer.json, nor vocab.json + merges.txt", dir);
        goto done;
    }
    if ((rc = parse_json(data, n, vpath, &vocab, err)))
        goto done;
    cJSON_AddItemToObject(model, "vocab", vocab); /* root owns it now */
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(cfgs[1], "add_prefix_space");
    if (!merges || !added || !pre || !dec || !cJSON_AddStringToObject(model, "type", "BPE") ||
        !cJSON_AddStringToObject(pre, "type", "ByteLevel") ||
        !cJSON_AddBoolToObject(pre, "add_prefix_space", cJSON_IsTrue(aps)) ||
        !cJSON_AddStringToObject(dec, "type", "ByteLevel")) {
        rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if ((rc = merges_txt(mpath, merges, err)))
        goto done;
    if (cJSON_IsObject(vocab) && fallback_added(added, vocab, cfgs)) {
        rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    snprintf(name, sizeof name, "%s + merges.txt", vpath);
    rc = lpi_tok_from_cjson(root, name, out, err);
done:
    cJSON_Delete(root);
    free(data);
    free(vpath);
    free(mpath);
    return rc;
}

int lp_tokenizer_load_dir(const char *dir, lp_tokenizer **out, lp_error *err)
{
    if (!dir || !out)
        return lp_error_set(err, LP_EINVAL, "lp_tokenizer_load_dir: NULL argument");
    *out = NULL;
    cJSON *stm = NULL, *cfg = NULL;
    int rc = read_optional_json(dir, "special_tokens_map.json", &stm, err);
    if (!rc)
        rc = read_optional_json(dir, "tokenizer_config.json", &cfg, err);
    char *path = rc ? NULL : join(dir, "tokenizer.json");
    if (!rc && !path)
        rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", dir);
    if (!rc) {
        rc = lp_tokenizer_load_json(path, out, err);
        if (rc == LP_ENOTFOUND) {
            const cJSON *const cfgs[2] = {stm, cfg};
            lp_error_clear(err);
            rc = load_fallback(dir, cfgs, out, err);
        }
    }
    if (!rc) {
        apply_config(*out, stm);
        apply_config(*out, cfg);
    }
    free(path);
    cJSON_Delete(stm);
    cJSON_Delete(cfg);
    return rc;
}

void lp_tokenizer_free(lp_tokenizer *t) { lpi_tok_destroy(t); }

/* ---- accessors ---- */

const char *lp_tokenizer_token_str(const lp_tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->n_tok ? t->tok[id].s : NULL;
}

int32_t lp_tokenizer_token_id(const lp_tokenizer *t, const char *s)
{
    return t && s ? lpi_tok_strmap_get(&t->vocab, s, strlen(s)) : -1;
}

int32_t lp_tokenizer_n_vocab(const lp_tokenizer *t) { return t ? t->n_tok : 0; }
int32_t lp_tokenizer_bos(const lp_tokenizer *t) { return t ? t->bos : -1; }
int32_t lp_tokenizer_eos(const lp_tokenizer *t) { return t ? t->eos : -1; }
int lp_tokenizer_default_add_bos(const lp_tokenizer *t) { return t && t->default_add_bos && t->bos >= 0; }

int lp_tokenizer_is_special(const lp_tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->n_tok && t->tok[id].special;
}

const char *lp_tokenizer_kind(const lp_tokenizer *t)
{
    return t && t->kind == LPI_TOK_SENTENCEPIECE ? "sentencepiece_bpe" : "byte_level_bpe";
}
