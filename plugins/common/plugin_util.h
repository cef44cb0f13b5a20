/* Small helpers shared by the method plugins in this repository (attention, dla,
 * patching). Header-only, static: each plugin stays one self-contained shared object
 * that talks to loupe only through the host table. */
#ifndef LOUPE_PLUGIN_UTIL_H
#define LOUPE_PLUGIN_UTIL_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe/plugin.h"

/* Printable token text: control bytes escaped; #ID when the model has no tokenizer. */
static __attribute__((unused)) void pu_token_text(const lp_host_api *h, const lp_model *m, int32_t id, char *out,
                                                  size_t cap)
{
    char raw[128];
    int n = h->token_bytes(m, id, raw, sizeof raw);
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
        else if (c == '\t')
            k += (size_t)snprintf(out + k, cap - k, "\\t");
        else if (c < 0x20 || c == 0x7f)
            k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
        else
            out[k++] = (char)c;
    }
    out[k] = 0;
}

/* One token given as its text (must encode to exactly one token, without BOS) or #ID.
 * `what` names the parameter in errors. Returns 0 or the code host->error returned. */
static __attribute__((unused)) int pu_parse_token(const lp_host_api *h, lp_call *call, lp_model *m, const char *what,
                                                  const char *spec, int32_t *id)
{
    int V = h->model_config(m)->d_vocab;
    *id = -1;
    if (!spec || !*spec)
        return h->error(call, LP_EINVAL, "%s: no token given", what);
    if (spec[0] == '#' && spec[1]) {
        char *end;
        long v = strtol(spec + 1, &end, 10);
        if (*end || v < 0 || v >= V)
            return h->error(call, LP_EINVAL, "%s: '%s' is not a token id in 0..%d", what, spec, V - 1);
        *id = (int32_t)v;
        return 0;
    }
    int32_t *ids = NULL;
    int n = 0;
    lp_error err = {0};
    int rc = h->tokenize(m, spec, 0, &ids, &n, &err);
    if (rc) {
        h->free(ids);
        return h->error(call, rc, "%s: %s", what, err.msg);
    }
    if (n != 1 && spec[0] == ' ' && spec[1]) {
        /* SentencePiece tokenizers add their own leading space: " time" encodes as
         * [" ", " time"]; "time" encodes as " time". Accept that one token when its text
         * does start with a space. */
        int32_t *ids2 = NULL;
        int n2 = 0;
        char b[8];
        if (h->tokenize(m, spec + 1, 0, &ids2, &n2, &err) == 0 && n2 == 1 &&
            h->token_bytes(m, ids2[0], b, sizeof b) > 0 && b[0] == ' ') {
            h->free(ids);
            *id = ids2[0];
            h->free(ids2);
            return 0;
        }
        h->free(ids2);
    }
    if (n != 1) {
        h->free(ids);
        return h->error(call, LP_EINVAL, "%s: '%s' is %d tokens; give one token (or #ID)", what, spec, n);
    }
    *id = ids[0];
    h->free(ids);
    return 0;
}

/* A prompt given in a string parameter: "ids:1,2,3" (token ids) or text tokenized with
 * the model's BOS rule. *ids is released with h->free. */
static __attribute__((unused)) int pu_parse_prompt(const lp_host_api *h, lp_call *call, lp_model *m, const char *what,
                                                   const char *spec, int32_t **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    int V = h->model_config(m)->d_vocab;
    if (!strncmp(spec, "ids:", 4)) {
        const char *p = spec + 4;
        size_t cap = strlen(p) / 2 + 2;
        int32_t *out = h->alloc(cap * sizeof *out);
        if (!out)
            return h->error(call, LP_ENOMEM, "out of memory");
        int k = 0;
        while (*p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v >= V || (size_t)k >= cap) {
                h->free(out);
                return h->error(call, LP_EINVAL, "%s: '%s' is not a list of token ids in 0..%d", what, spec, V - 1);
            }
            out[k++] = (int32_t)v;
            p = end;
            while (*p == ',' || *p == ' ')
                p++;
        }
        if (!k) {
            h->free(out);
            return h->error(call, LP_EINVAL, "%s: no token ids in '%s'", what, spec);
        }
        *ids = out;
        *n = k;
        return 0;
    }
    lp_error err = {0};
    int rc = h->tokenize(m, spec, -1, ids, n, &err);
    if (rc) {
        h->free(*ids);
        *ids = NULL;
        return h->error(call, rc, "%s: %s", what, err.msg);
    }
    if (*n <= 0) {
        h->free(*ids);
        *ids = NULL;
        return h->error(call, LP_EINVAL, "%s: '%s' encodes to no tokens", what, spec);
    }
    return 0;
}

/* Element (i0, i1[, i2]) of an f32 view, read with its byte strides. */
static inline float pu_at2(const lp_tensor *t, int64_t i, int64_t j)
{
    return *(const float *)((const char *)t->data + i * t->nb[0] + j * t->nb[1]);
}
static inline float pu_at3(const lp_tensor *t, int64_t i, int64_t j, int64_t k)
{
    return *(const float *)((const char *)t->data + i * t->nb[0] + j * t->nb[1] + k * t->nb[2]);
}

/* A cached activation by name, or NULL data (with the error set through host->error). */
static __attribute__((unused)) lp_tensor pu_cached(const lp_host_api *h, lp_call *call, const lp_cache *c,
                                                   const char *name)
{
    lp_tensor t;
    memset(&t, 0, sizeof t);
    int i = h->cache_find(c, name);
    if (i < 0) {
        h->error(call, LP_ENOTFOUND, "the forward pass did not cache %s", name);
        return t;
    }
    t = h->cache_entry(c, i);
    if (t.dtype != LP_F32) {
        h->error(call, LP_EINVAL, "%s is not f32", name);
        t.data = NULL;
    }
    return t;
}

/* splitmix64: seeded random numbers that do not depend on the C library. */
static inline uint64_t pu_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
