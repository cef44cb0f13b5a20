/* loupe — tokenizer loading: tokenizer.json (HF tokenizers format) into an lp_tokenizer. */
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16 /* nesting of Sequence normalizers / pre-tokenizers / decoders */

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
    lp_tokenizer *t;
    const char *name; /* file name for messages */
    lp_error *err;
} loader;

__attribute__((format(printf, 3, 4))) static int fail(loader *L, int code, const char *fmt, ...)
{
    char msg[LP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lp_error_set(L->err, code, "%s: %s", L->name, msg);
}

static int nomem(loader *L) { return fail(L, LP_ENOMEM, "out of memory"); }

/* Keep a copy of s[0..n) owned by the tokenizer; NULL on no memory.  Strings are carved from 64 KiB
 * chunks (a GPT-2 vocabulary is 50k small strings); t->strs lists the chunks. */
static char *own(lp_tokenizer *t, const char *s, size_t n)
{
    enum { CHUNK = 1 << 16 };
    if (n + 1 > t->chunk_left) {
        if (t->n_strs == t->cap_strs) {
            size_t c = t->cap_strs ? t->cap_strs * 2 : 64;
            char **p = realloc(t->strs, c * sizeof *p);
            if (!p)
                return NULL;
            t->strs = p;
            t->cap_strs = c;
        }
        size_t sz = n + 1 > CHUNK ? n + 1 : CHUNK;
        char *c = malloc(sz);
        if (!c)
            return NULL;
        t->strs[t->n_strs++] = c;
        t->chunk = c;
        t->chunk_left = sz;
    }
    char *c = t->chunk;
    memcpy(c, s, n);
    c[n] = '\0';
    t->chunk += n + 1;
    t->chunk_left -= n + 1;
    return c;
}

void lpi_tok_destroy(lp_tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_strs; i++)
        free(t->strs[i]);
    free(t->strs);
    free(t->tok);
    lpi_tok_strmap_free(&t->vocab);
    lpi_tok_strmap_free(&t->mvocab);
    lpi_tok_mergemap_free(&t->merges);
    free(t->added);
    free(t->norm);
    for (size_t i = 0; i < t->n_split; i++)
        pcre2_code_free(t->split[i].re);
    free(t->split);
    free(t);
}

/* ---- small cJSON accessors ---- */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* -1 if absent/null, else 0/1; -2 if present with a wrong type */
static int jbool(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return -1;
    if (!cJSON_IsBool(v))
        return -2;
    return cJSON_IsTrue(v) ? 1 : 0;
}

static int jid(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < LPI_TOK_MAX_ID) || d != (double)(int32_t)d)
        return -1;
    *out = (int32_t)d;
    return 0;
}

/* ---- vocabulary ---- */

static int scan_max_id(loader *L, const cJSON *vocab, const cJSON *added, int32_t *max_id)
{
    int32_t m = -1, id;
    const cJSON *c;
    cJSON_ArrayForEach(c, vocab)
    {
        if (!c->string || jid(c, &id))
            return fail(L, LP_EFORMAT, "model.vocab entry \"%.60s\" is not a valid token id",
                        c->string ? c->string : "?");
        if (id > m)
            m = id;
    }
    if (added) {
        if (!cJSON_IsArray(added))
            return fail(L, LP_EFORMAT, "added_tokens is not an array");
        cJSON_ArrayForEach(c, added)
        {
            if (!cJSON_IsObject(c) || jid(cJSON_GetObjectItemCaseSensitive(c, "id"), &id) ||
                !jstr(c, "content"))
                return fail(L, LP_EFORMAT, "added_tokens entry lacks a valid id or content");
            if (id > m)
                m = id;
        }
    }
    /* ids may have holes, but a handful of entries claiming id 16M would make us allocate for nothing */
    size_t count = (size_t)cJSON_GetArraySize(vocab) + (added ? (size_t)cJSON_GetArraySize(added) : 0);
    if (m >= 0 && (size_t)m >= 2 * count + 65536)
        return fail(L, LP_EFORMAT, "token ids are implausibly sparse (max id %ld for %zu tokens)", (long)m, count);
    *max_id = m;
    return 0;
}

static int load_vocab(loader *L, const cJSON *vocab)
{
    lp_tokenizer *t = L->t;
    const cJSON *c;
    int32_t id;
    if (lpi_tok_strmap_init(&t->mvocab, (size_t)cJSON_GetArraySize(vocab)) ||
        lpi_tok_strmap_init(&t->vocab, (size_t)cJSON_GetArraySize(vocab)))
        return nomem(L);
    cJSON_ArrayForEach(c, vocab)
    {
        jid(c, &id); /* validated by scan_max_id */
        size_t n = strlen(c->string);
        char *s = own(t, c->string, n);
        if (!s || lpi_tok_strmap_put(&t->mvocab, s, n, id) || lpi_tok_strmap_put(&t->vocab, s, n, id))
            return nomem(L);
        if (!t->tok[id].s) {
            t->tok[id].s = s;
            t->tok[id].len = (uint32_t)n;
        }
    }
    return 0;
}

static int load_added(loader *L, const cJSON *added)
{
    lp_tokenizer *t = L->t;
    const cJSON *c;
    size_t n_arr = (size_t)cJSON_GetArraySize(added);
    t->added = calloc(n_arr ? n_arr : 1, sizeof *t->added);
    if (!t->added)
        return nomem(L);
    cJSON_ArrayForEach(c, added)
    {
        int32_t id;
        jid(cJSON_GetObjectItemCaseSensitive(c, "id"), &id); /* validated by scan_max_id */
        const char *content = jstr(c, "content");
        size_t n = strlen(content);
        char *s = own(t, content, n);
        if (!s || lpi_tok_strmap_put(&t->vocab, s, n, id))
            return nomem(L);
        int special = jbool(c, "special") == 1;
        t->tok[id].s = s; /* HF: the added vocabulary wins for id -> token */
        t->tok[id].len = (uint32_t)n;
        t->tok[id].added = 1;
        t->tok[id].special = (uint8_t)special;
        if (n == 0)
            continue; /* can never match */
        lpi_tok_added *a = &t->added[t->n_added++];
        a->id = id;
        a->s = s;
        a->len = n;
        a->special = (uint8_t)special;
        a->lstrip = jbool(c, "lstrip") == 1;
        a->rstrip = jbool(c, "rstrip") == 1;
    }
    return 0;
}

static int cmp_added(const void *pa, const void *pb)
{
    const lpi_tok_added *a = pa, *b = pb;
    unsigned ca = (unsigned char)a->s[0], cb = (unsigned char)b->s[0];
    if (ca != cb)
        return ca < cb ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void index_added(lp_tokenizer *t)
{
    if (t->n_added)
        qsort(t->added, t->n_added, sizeof *t->added, cmp_added);
    size_t j = 0;
    for (int c = 0; c <= 256; c++) {
        while (c < 256 && j < t->n_added && (unsigned char)t->added[j].s[0] < c)
            j++;
        t->added_first[c] = (uint32_t)j;
    }
    t->added_first[256] = (uint32_t)t->n_added;
}

/* ---- merges ---- */

static int add_merge(loader *L, size_t rank, const char *a, size_t na, const char *b, size_t nb)
{
    lp_tokenizer *t = L->t;
    int32_t ia = lpi_tok_strmap_get(&t->mvocab, a, na), ib = lpi_tok_strmap_get(&t->mvocab, b, nb);
    char stackbuf[256], *ab = na + nb <= sizeof stackbuf ? stackbuf : malloc(na + nb);
    if (!ab)
        return nomem(L);
    memcpy(ab, a, na);
    memcpy(ab + na, b, nb);
    int32_t iab = lpi_tok_strmap_get(&t->mvocab, ab, na + nb);
    if (ab != stackbuf)
        free(ab);
    if (ia < 0 || ib < 0 || iab < 0)
        return fail(L, LP_EFORMAT, "merge #%zu \"%.*s %.*s\" references a token not in the vocabulary", rank,
                    (int)(na > 40 ? 40 : na), a, (int)(nb > 40 ? 40 : nb), b);
    lpi_tok_mergemap_put(&t->merges, ia, ib, (int32_t)rank, iab);
    return 0;
}

static int load_merges(loader *L, const cJSON *merges)
{
    size_t n = (size_t)cJSON_GetArraySize(merges);
    if (lpi_tok_mergemap_init(&L->t->merges, n))
        return nomem(L);
    size_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        int rc;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return fail(L, LP_EFORMAT, "merge #%zu \"%.60s\" is not two tokens separated by one space", rank,
                            s);
            rc = add_merge(L, rank, s, (size_t)(sp - s), sp + 1, strlen(sp + 1));
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *a = m->child->valuestring, *b = m->child->next->valuestring;
            rc = add_merge(L, rank, a, strlen(a), b, strlen(b));
        } else
            return fail(L, LP_EFORMAT, "merge #%zu is neither \"a b\" nor [\"a\", \"b\"]", rank);
        if (rc)
            return rc;
        rank++;
    }
    return 0;
}

static int load_model(loader *L, const cJSON *root)
{
    lp_tokenizer *t = L->t;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return fail(L, LP_EFORMAT, "no \"model\" object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (type && !cJSON_IsString(type))
        return fail(L, LP_EFORMAT, "model.type is not a string");
    if (type && strcmp(type->valuestring, "BPE") != 0)
        return fail(L, LP_EUNSUPPORTED, "unsupported tokenizer model type \"%.40s\" (only BPE is supported)",
                    type->valuestring);
    if (!type && !merges)
        return fail(L, LP_EUNSUPPORTED, "model has no \"type\" and no merges; only BPE is supported");
    if (!cJSON_IsObject(vocab))
        return fail(L, LP_EFORMAT, "model.vocab is missing or not an object");
    if (merges && !cJSON_IsArray(merges) && !cJSON_IsNull(merges))
        return fail(L, LP_EFORMAT, "model.merges is not an array");
    const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
    if ((pre && *pre) || (suf && *suf))
        return fail(L, LP_EUNSUPPORTED, "BPE continuing_subword_prefix / end_of_word_suffix are not supported");

    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (cJSON_IsNull(added))
        added = NULL;
    int32_t max_id;
    int rc = scan_max_id(L, vocab, added, &max_id);
    if (rc)
        return rc;
    if (max_id < 0)
        return fail(L, LP_EFORMAT, "the vocabulary is empty");
    t->n_tok = max_id + 1;
    t->tok = calloc((size_t)t->n_tok, sizeof *t->tok);
    if (!t->tok)
        return nomem(L);
    if ((rc = load_vocab(L, vocab)))
        return rc;
    if (cJSON_IsArray(merges) && (rc = load_merges(L, merges)))
        return rc;
    if (!cJSON_IsArray(merges) && lpi_tok_mergemap_init(&t->merges, 0))
        return nomem(L);
    if (added && (rc = load_added(L, added)))
        return rc;
    index_added(t);

    t->byte_fallback = jbool(model, "byte_fallback") == 1;
    t->fuse_unk = jbool(model, "fuse_unk") == 1;
    t->ignore_merges = jbool(model, "ignore_merges") == 1;
    const char *unk = jstr(model, "unk_token");
    t->unk_id = unk ? lpi_tok_strmap_get(&t->vocab, unk, strlen(unk)) : -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_tok[b] = lpi_tok_strmap_get(&t->mvocab, name, 6);
    }
    return 0;
}

/* ---- normalizers and pre-tokenizers ---- */

static int push_norm(loader *L, lpi_tok_norm n)
{
    lp_tokenizer *t = L->t;
    lpi_tok_norm *p = realloc(t->norm, (t->n_norm + 1) * sizeof *p);
    if (!p)
        return nomem(L);
    t->norm = p;
    t->norm[t->n_norm++] = n;
    return 0;
}

static int push_split(loader *L, const char *pat, size_t len, int literal, int behavior, int invert)
{
    lp_tokenizer *t = L->t;
    int ec;
    PCRE2_SIZE eo;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pat ? pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &eo, NULL) : NULL;
    if (pat && !re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return fail(L, LP_EFORMAT, "pre-tokenizer regex does not compile at offset %zu: %s", (size_t)eo,
                    (const char *)msg);
    }
    if (re)
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; the interpreter is the fallback */
    lpi_tok_split *p = realloc(t->split, (t->n_split + 1) * sizeof *p);
    if (!p) {
        pcre2_code_free(re);
        return nomem(L);
    }
    t->split = p;
    t->split[t->n_split++] = (lpi_tok_split){re, behavior, invert};
    return 0;
}

/* pattern: {"String": s} or {"Regex": r} */
static int parse_pattern(loader *L, const cJSON *o, const char **pat, int *literal)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    if ((*pat = jstr(p, "String"))) {
        *literal = 1;
        return 0;
    }
    if ((*pat = jstr(p, "Regex"))) {
        *literal = 0;
        return 0;
    }
    return fail(L, LP_EFORMAT, "pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
}

static const char *type_of(loader *L, const cJSON *o, const char *what)
{
    const char *ty = cJSON_IsObject(o) ? jstr(o, "type") : NULL;
    if (!ty)
        fail(L, LP_EFORMAT, "%s has no \"type\"", what);
    return ty;
}

static int parse_normalizer(loader *L, const cJSON *o, int depth)
{
    if (!o || cJSON_IsNull(o))
        return 0;
    const char *ty = type_of(L, o, "normalizer");
    if (!ty)
        return LP_EFORMAT;
    if (depth > MAX_DEPTH)
        return fail(L, LP_EFORMAT, "normalizers nested too deeply");
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *c;
        if (!cJSON_IsArray(arr))
            return fail(L, LP_EFORMAT, "Sequence normalizer without a \"normalizers\" array");
        cJSON_ArrayForEach(c, arr)
        {
            int rc = parse_normalizer(L, c, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(ty, "Prepend")) {
        const char *s = jstr(o, "prepend");
        if (!s)
            return fail(L, LP_EFORMAT, "Prepend normalizer without a \"prepend\" string");
        char *a = own(L->t, s, strlen(s));
        if (!a)
            return nomem(L);
        return push_norm(L, (lpi_tok_norm){LPI_NORM_PREPEND, a, strlen(a), NULL, 0, 0, 0});
    }
    if (!strcmp(ty, "Replace")) {
        const char *pat, *content = jstr(o, "content");
        int literal, rc = parse_pattern(L, o, &pat, &literal);
        if (rc)
            return rc;
        if (!literal)
            return fail(L, LP_EUNSUPPORTED, "Replace normalizer with a Regex pattern is not supported");
        if (!content || !*pat)
            return fail(L, LP_EFORMAT, "Replace normalizer needs a non-empty pattern and a content");
        char *a = own(L->t, pat, strlen(pat)), *b = own(L->t, content, strlen(content));
        if (!a || !b)
            return nomem(L);
        return push_norm(L, (lpi_tok_norm){LPI_NORM_REPLACE, a, strlen(a), b, strlen(b), 0, 0});
    }
    if (!strcmp(ty, "NFC")) {
        L->t->nfc_assumed = 1; /* caveat: input is assumed to be NFC already */
        return 0;
    }
    return fail(L, LP_EUNSUPPORTED, "unsupported normalizer type \"%.40s\"", ty);
}

static int parse_behavior(loader *L, const cJSON *o, int *b)
{
    const char *s = jstr(o, "behavior");
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; s && i < 5; i++)
        if (!strcmp(s, names[i])) {
            *b = i;
            return 0;
        }
    return fail(L, LP_EFORMAT, "Split pre-tokenizer has no valid \"behavior\"");
}

static int parse_metaspace(loader *L, const cJSON *o, int pretok)
{
    const char *rep = jstr(o, "replacement");
    if (!rep || !*rep)
        rep = "\xE2\x96\x81";
    const char *scheme = jstr(o, "prepend_scheme");
    int prepend = 1, first = 0;
    if (scheme) {
        prepend = strcmp(scheme, "never") != 0;
        first = !strcmp(scheme, "first");
    } else if (jbool(o, "add_prefix_space") == 0)
        prepend = 0;
    if (!pretok) {
        L->t->dec_replace_meta = 1;
        L->t->dec_strip_left = prepend;
        return 0;
    }
    char *r = own(L->t, rep, strlen(rep));
    if (!r)
        return nomem(L);
    int rc = push_norm(L, (lpi_tok_norm){LPI_NORM_REPLACE, " ", 1, r, strlen(r), 0, 0});
    if (!rc && prepend)
        rc = push_norm(L, (lpi_tok_norm){LPI_NORM_PREPEND, r, strlen(r), NULL, 0, 1, (uint8_t)first});
    if (!rc && jbool(o, "split") != 0)
        rc = push_split(L, r, strlen(r), 1, LPI_SPLIT_MERGED_NEXT, 0);
    return rc;
}

static int parse_pretok(loader *L, const cJSON *o, int depth)
{
    if (!o || cJSON_IsNull(o))
        return 0;
    const char *ty = type_of(L, o, "pre_tokenizer");
    if (!ty)
        return LP_EFORMAT;
    if (depth > MAX_DEPTH)
        return fail(L, LP_EFORMAT, "pre-tokenizers nested too deeply");
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), *c;
        if (!cJSON_IsArray(arr))
            return fail(L, LP_EFORMAT, "Sequence pre-tokenizer without a \"pretokenizers\" array");
        cJSON_ArrayForEach(c, arr)
        {
            int rc = parse_pretok(L, c, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) {
        L->t->byte_level = 1;
        int rc = jbool(o, "add_prefix_space") == 1 ? push_split(L, NULL, 0, 0, 0, 0) : 0;
        if (!rc && jbool(o, "use_regex") != 0)
            rc = push_split(L, GPT2_REGEX, sizeof GPT2_REGEX - 1, 0, LPI_SPLIT_ISOLATED, 0);
        return rc;
    }
    if (!strcmp(ty, "Split")) {
        const char *pat;
        int literal, behavior, rc = parse_pattern(L, o, &pat, &literal);
        if (rc || (rc = parse_behavior(L, o, &behavior)))
            return rc;
        return push_split(L, pat, strlen(pat), literal, behavior, jbool(o, "invert") == 1);
    }
    if (!strcmp(ty, "Digits")) {
        if (jbool(o, "individual_digits") == 1)
            return push_split(L, "\\p{N}", 5, 0, LPI_SPLIT_ISOLATED, 0);
        return push_split(L, "\\p{N}+", 6, 0, LPI_SPLIT_ISOLATED, 0);
    }
    if (!strcmp(ty, "Whitespace"))
        return push_split(L, "\\w+|[^\\w\\s]+", 12, 0, LPI_SPLIT_REMOVED, 1);
    if (!strcmp(ty, "WhitespaceSplit"))
        return push_split(L, "\\s+", 3, 0, LPI_SPLIT_REMOVED, 0);
    if (!strcmp(ty, "Metaspace"))
        return parse_metaspace(L, o, 1);
    return fail(L, LP_EUNSUPPORTED, "unsupported pre_tokenizer type \"%.40s\"", ty);
}

/* ---- decoder and post-processor ---- */

static int parse_decoder(loader *L, const cJSON *o, int depth)
{
    if (!o || cJSON_IsNull(o))
        return 0;
    const char *ty = type_of(L, o, "decoder");
    if (!ty)
        return LP_EFORMAT;
    if (depth > MAX_DEPTH)
        return fail(L, LP_EFORMAT, "decoders nested too deeply");
    lp_tokenizer *t = L->t;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "decoders"), *c;
        if (!cJSON_IsArray(arr))
            return fail(L, LP_EFORMAT, "Sequence decoder without a \"decoders\" array");
        cJSON_ArrayForEach(c, arr)
        {
            int rc = parse_decoder(L, c, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) {
        t->dec_byte_level = 1;
        return 0;
    }
    if (!strcmp(ty, "ByteFallback")) {
        t->dec_byte_fallback = 1;
        return 0;
    }
    if (!strcmp(ty, "Fuse"))
        return 0;
    if (!strcmp(ty, "Replace")) {
        const char *pat, *content = jstr(o, "content");
        int literal, rc = parse_pattern(L, o, &pat, &literal);
        if (rc)
            return rc;
        if (!literal || !content || strcmp(pat, "\xE2\x96\x81") || strcmp(content, " "))
            return fail(L, LP_EUNSUPPORTED, "only the Replace decoder \"\xE2\x96\x81\" -> \" \" is supported");
        t->dec_replace_meta = 1;
        return 0;
    }
    if (!strcmp(ty, "Strip")) {
        const char *content = jstr(o, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(o, "start");
        int32_t n = 0;
        if (!content || strcmp(content, " ") || (start && jid(start, &n)) || n > 64)
            return fail(L, LP_EUNSUPPORTED, "only a Strip decoder of leading spaces is supported");
        t->dec_strip_left = (int)n;
        return 0;
    }
    if (!strcmp(ty, "Metaspace"))
        return parse_metaspace(L, o, 0);
    return fail(L, LP_EUNSUPPORTED, "unsupported decoder type \"%.40s\"", ty);
}

/* TemplateProcessing whose single template starts with a special token → that token is the default BOS. */
static void parse_post(loader *L, const cJSON *o, int depth)
{
    const char *ty = cJSON_IsObject(o) ? jstr(o, "type") : NULL;
    if (!ty || depth > MAX_DEPTH)
        return;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(o, "processors")) parse_post(L, c, depth + 1);
        return;
    }
    if (strcmp(ty, "TemplateProcessing"))
        return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *first = cJSON_IsArray(single) ? single->child : NULL;
    const char *name = jstr(cJSON_GetObjectItemCaseSensitive(first, "SpecialToken"), "id");
    if (!name)
        return;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "special_tokens"), name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
    int32_t id = -1;
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 || jid(ids->child, &id) || id >= L->t->n_tok)
        id = lpi_tok_strmap_get(&L->t->vocab, name, strlen(name));
    if (id >= 0) {
        L->t->bos = id;
        L->t->default_add_bos = 1;
    }
}

static int32_t find_first(const lp_tokenizer *t, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = lpi_tok_strmap_get(&t->vocab, *names, strlen(*names));
        if (id >= 0 && t->tok[id].special)
            return id;
    }
    return -1;
}

static int from_json(loader *L, const cJSON *root)
{
    lp_tokenizer *t = L->t;
    if (!cJSON_IsObject(root))
        return fail(L, LP_EFORMAT, "not a JSON object");
    int rc;
    if ((rc = load_model(L, root)) || (rc = parse_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0)) ||
        (rc = parse_pretok(L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0)) ||
        (rc = parse_decoder(L, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0)))
        return rc;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    t->has_decoder = dec && !cJSON_IsNull(dec);
    t->kind = (t->byte_level || t->dec_byte_level) ? LPI_TOK_BYTE_LEVEL : LPI_TOK_SENTENCEPIECE;
    parse_post(L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0);
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", NULL};
    if (t->bos < 0)
        t->bos = find_first(t, bos_names);
    t->eos = find_first(t, eos_names);
    return 0;
}

static lp_tokenizer *tok_new(void)
{
    lp_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->unk_id = t->bos = t->eos = -1;
    lpi_tok_bytes_to_unicode(t->b2u, t->u2b);
    return t;
}

int lpi_tok_from_cjson(const cJSON *root, const char *name, lp_tokenizer **out, lp_error *err)
{
    *out = NULL;
    lp_tokenizer *t = tok_new();
    if (!t)
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", name);
    loader L = {t, name, err};
    int rc = from_json(&L, root);
    if (rc) {
        lpi_tok_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}
