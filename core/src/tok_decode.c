/* loupe — tokenizer decoding (HF decoder semantics) and per-token display bytes. */
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

#define META "\xE2\x96\x81" /* ▁ U+2581 */

/* Byte-level: map every char back through bytes_to_unicode; if any char is not in the table, use the
 * token's raw UTF-8 (HF's ByteLevel decoder does the same). */
static int byte_level_bytes(const lp_tokenizer *t, const lpi_tok_token *tk, lpi_tok_buf *out)
{
    const unsigned char *s = (const unsigned char *)tk->s;
    size_t n = tk->len, start = out->n;
    for (size_t i = 0; i < n;) {
        size_t l = lpi_tok_utf8_seq(s + i, n - i);
        uint32_t cp;
        if (l == 1)
            cp = s[i];
        else if (l == 2)
            cp = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
        else
            cp = UINT32_MAX;
        if (cp >= 324 || t->u2b[cp] < 0) {
            out->n = start;
            return lpi_tok_buf_put(out, tk->s, n);
        }
        unsigned char b = (unsigned char)t->u2b[cp];
        if (lpi_tok_buf_put(out, &b, 1))
            return LP_ENOMEM;
        i += l;
    }
    return 0;
}

/* "<0xNN>" → 0..255, else -1 */
static int byte_token(const lpi_tok_token *tk)
{
    const char *s = tk->s;
    if (tk->len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int put_meta_replaced(lpi_tok_buf *out, const char *s, size_t n, int replace)
{
    size_t run = 0;
    for (size_t i = 0; replace && i + 3 <= n;) {
        if (!memcmp(s + i, META, 3)) {
            if (lpi_tok_buf_put(out, s + run, i - run) || lpi_tok_buf_put(out, " ", 1))
                return LP_ENOMEM;
            i += 3;
            run = i;
        } else
            i++;
    }
    return lpi_tok_buf_put(out, s + run, n - run);
}

/* HF ByteFallback: a run of <0xNN> tokens becomes its bytes if valid UTF-8, else one U+FFFD per byte. */
static int flush_bytes(lpi_tok_buf *out, lpi_tok_buf *grp)
{
    int rc = 0;
    if (lpi_tok_utf8_valid(grp->p, grp->n, NULL))
        rc = lpi_tok_buf_put(out, grp->p, grp->n);
    else
        for (size_t i = 0; i < grp->n && !rc; i++)
            rc = lpi_tok_buf_put(out, "\xEF\xBF\xBD", 3);
    grp->n = 0;
    return rc;
}

static int check_id(const lp_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_tok && t->tok[id].s;
}

char *lp_tokenizer_decode(const lp_tokenizer *t, const int32_t *ids, size_t n, int skip_special, lp_error *err)
{
    if (!t || (!ids && n)) {
        lp_error_set(err, LP_EINVAL, "lp_tokenizer_decode: NULL argument");
        return NULL;
    }
    lpi_tok_buf raw = {0}, grp = {0}, out = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!check_id(t, ids[i])) {
            lp_error_set(err, LP_EINVAL, "lp_tokenizer_decode: token id %ld at position %zu is out of range",
                         (long)ids[i], i);
            goto fail;
        }
        const lpi_tok_token *tk = &t->tok[ids[i]];
        if (skip_special && tk->special)
            continue;
        if (t->dec_byte_level) {
            rc = byte_level_bytes(t, tk, &raw);
            continue;
        }
        int b = t->dec_byte_fallback ? byte_token(tk) : -1;
        if (b >= 0) {
            unsigned char c = (unsigned char)b;
            rc = lpi_tok_buf_put(&grp, &c, 1);
            continue;
        }
        if (grp.n)
            rc = flush_bytes(&raw, &grp);
        if (!rc && !t->has_decoder && raw.n)
            rc = lpi_tok_buf_put(&raw, " ", 1); /* no decoder at all: HF joins tokens with spaces */
        if (!rc)
            rc = put_meta_replaced(&raw, tk->s, tk->len, t->dec_replace_meta);
    }
    if (!rc && grp.n)
        rc = flush_bytes(&raw, &grp);
    size_t skip = 0;
    while (!rc && (int)skip < t->dec_strip_left && skip < raw.n && raw.p[skip] == ' ')
        skip++;
    if (!rc)
        rc = lpi_tok_buf_put_lossy(&out, raw.p ? raw.p + skip : "", raw.n - skip);
    if (!rc && !out.p)
        rc = lpi_tok_buf_put(&out, "", 0);
    if (rc) {
        lp_error_set(err, LP_ENOMEM, "lp_tokenizer_decode: out of memory");
        goto fail;
    }
    free(raw.p);
    free(grp.p);
    return out.p;
fail:
    free(raw.p);
    free(grp.p);
    free(out.p);
    return NULL;
}

int lp_tokenizer_token_bytes(const lp_tokenizer *t, int32_t id, char *buf, size_t cap)
{
    if (!t || !check_id(t, id))
        return LP_EINVAL;
    const lpi_tok_token *tk = &t->tok[id];
    lpi_tok_buf b = {0};
    int rc;
    if (t->kind == LPI_TOK_BYTE_LEVEL)
        rc = byte_level_bytes(t, tk, &b);
    else {
        int v = byte_token(tk);
        unsigned char c = (unsigned char)v;
        rc = v >= 0 ? lpi_tok_buf_put(&b, &c, 1) : put_meta_replaced(&b, tk->s, tk->len, 1);
    }
    if (rc) {
        free(b.p);
        return LP_ENOMEM;
    }
    size_t n = b.n;
    if (buf && cap)
        memcpy(buf, b.p ? b.p : "", n < cap ? n : cap);
    free(b.p);
    return n > INT32_MAX ? LP_EINVAL : (int)n;
}
