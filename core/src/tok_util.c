/* loupe — tokenizer helpers: hash maps, UTF-8, bytes_to_unicode, byte buffers. */
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

uint32_t lpi_tok_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

int lpi_tok_strmap_init(lpi_tok_strmap *m, size_t n_expected)
{
    m->cap = pow2_at_least(n_expected * 2 + 1);
    m->n = 0;
    m->e = calloc(m->cap, sizeof *m->e);
    return m->e ? 0 : LP_ENOMEM;
}

static int strmap_grow(lpi_tok_strmap *m)
{
    lpi_tok_strmap g;
    g.cap = m->cap * 2;
    g.n = 0;
    g.e = calloc(g.cap, sizeof *g.e);
    if (!g.e)
        return LP_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        const lpi_tok_strent *e = &m->e[i];
        if (!e->s)
            continue;
        size_t j = e->hash & (g.cap - 1);
        while (g.e[j].s)
            j = (j + 1) & (g.cap - 1);
        g.e[j] = *e;
        g.n++;
    }
    free(m->e);
    *m = g;
    return 0;
}

int lpi_tok_strmap_put(lpi_tok_strmap *m, const char *s, size_t n, int32_t val)
{
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m))
        return LP_ENOMEM;
    uint32_t h = lpi_tok_hash(s, n);
    size_t j = h & (m->cap - 1);
    while (m->e[j].s) {
        lpi_tok_strent *e = &m->e[j];
        if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0) {
            e->val = val;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->e[j] = (lpi_tok_strent){s, (uint32_t)n, h, val};
    m->n++;
    return 0;
}

int32_t lpi_tok_strmap_get(const lpi_tok_strmap *m, const char *s, size_t n)
{
    if (!m->e)
        return -1;
    uint32_t h = lpi_tok_hash(s, n);
    size_t j = h & (m->cap - 1);
    while (m->e[j].s) {
        const lpi_tok_strent *e = &m->e[j];
        if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0)
            return e->val;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void lpi_tok_strmap_free(lpi_tok_strmap *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

int lpi_tok_mergemap_init(lpi_tok_mergemap *m, size_t n_expected)
{
    m->cap = pow2_at_least(n_expected * 2 + 1);
    m->n = 0;
    m->e = malloc(m->cap * sizeof *m->e);
    if (!m->e)
        return LP_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        m->e[i].key = UINT64_MAX;
    return 0;
}

/* The map is sized for all merges up front (n <= cap/2), so put never grows. */
void lpi_tok_mergemap_put(lpi_tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->e[j].key != UINT64_MAX && m->e[j].key != key)
        j = (j + 1) & (m->cap - 1);
    if (m->e[j].key == UINT64_MAX)
        m->n++;
    m->e[j] = (lpi_tok_mergeent){key, rank, id};
}

const lpi_tok_mergeent *lpi_tok_mergemap_get(const lpi_tok_mergemap *m, int32_t a, int32_t b)
{
    if (!m->e)
        return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->e[j].key != UINT64_MAX) {
        if (m->e[j].key == key)
            return &m->e[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void lpi_tok_mergemap_free(lpi_tok_mergemap *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

size_t lpi_tok_utf8_seq(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

int lpi_tok_utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = lpi_tok_utf8_seq(u + i, n - i);
        if (!l) {
            if (bad)
                *bad = i;
            return 0;
        }
        i += l;
    }
    return 1;
}

size_t lpi_tok_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256, 257, ... */
void lpi_tok_bytes_to_unicode(uint32_t b2u[256], int16_t u2b[324])
{
    uint32_t next = 256;
    for (int i = 0; i < 324; i++)
        u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        b2u[b] = keep ? (uint32_t)b : next++;
        u2b[b2u[b]] = (int16_t)b;
    }
}

int lpi_tok_buf_put(lpi_tok_buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n + 1)
            c *= 2;
        char *p = realloc(b->p, c);
        if (!p)
            return LP_ENOMEM;
        b->p = p;
        b->cap = c;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* Length of the maximal prefix of a valid sequence at s (1 if even the lead byte is bad). */
static size_t maximal_subpart(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 1;
    size_t i = 1;
    if (i < n && i < len && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < n && i < len && s[i] >= 0x80 && s[i] <= 0xBF)
            i++;
    }
    return i;
}

int lpi_tok_buf_put_lossy(lpi_tok_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        size_t l = u[i] < 0x80 ? 1 : lpi_tok_utf8_seq(u + i, n - i);
        if (l) {
            i += l;
            continue;
        }
        if (lpi_tok_buf_put(b, s + run, i - run) || lpi_tok_buf_put(b, "\xEF\xBF\xBD", 3))
            return LP_ENOMEM;
        i += maximal_subpart(u + i, n - i);
        run = i;
    }
    return lpi_tok_buf_put(b, s + run, n - run);
}
