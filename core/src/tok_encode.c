/* loupe — tokenizer encoding: added-token split, normalize, pre-tokenize, BPE merge by rank. */
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

#define MATCH_LIMIT 10000000u /* a pathological regex from a file must not hang the caller */

typedef struct {
    size_t s, e;
} piece;

typedef struct {
    size_t s, e;
    int m; /* matched the delimiter pattern */
} span;

typedef struct {
    int32_t id; /* -1 once merged into its left neighbour */
    int32_t prev, next;
} sym;

typedef struct {
    int32_t rank, pos, left, right, merged;
} cand;

typedef struct {
    const lp_tokenizer *t;
    lp_error *err;
    int32_t *ids;
    size_t n_ids, cap_ids;
    lpi_tok_buf nb[2]; /* normalizer ping-pong buffers */
    lpi_tok_buf word;
    piece *pc[2];
    size_t n_pc[2], cap_pc[2];
    span *sp;
    size_t n_sp, cap_sp;
    sym *sy;
    size_t cap_sy;
    cand *hp;
    size_t n_hp, cap_hp;
    pcre2_match_data *md;
    pcre2_match_context *mc;
} enc;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return LP_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int oom(enc *E) { return lp_error_set(E->err, LP_ENOMEM, "tokenizer encode: out of memory"); }

static int emit(enc *E, int32_t id)
{
    if (grow((void **)&E->ids, &E->cap_ids, E->n_ids + 1, sizeof *E->ids))
        return oom(E);
    E->ids[E->n_ids++] = id;
    return 0;
}

/* ---- BPE ---- */

static int cand_less(const cand *a, const cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(enc *E, int32_t pos)
{
    const sym *s = &E->sy[pos];
    if (s->next < 0)
        return 0;
    int32_t l = s->id, r = E->sy[s->next].id;
    const lpi_tok_mergeent *m = lpi_tok_mergemap_get(&E->t->merges, l, r);
    if (!m)
        return 0;
    if (grow((void **)&E->hp, &E->cap_hp, E->n_hp + 1, sizeof *E->hp))
        return oom(E);
    cand c = {m->rank, pos, l, r, m->id};
    size_t i = E->n_hp++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &E->hp[p]))
            break;
        E->hp[i] = E->hp[p];
        i = p;
    }
    E->hp[i] = c;
    return 0;
}

static cand heap_pop(enc *E)
{
    cand top = E->hp[0], last = E->hp[--E->n_hp];
    size_t i = 0, n = E->n_hp;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const cand *best = &last;
        if (l < n && cand_less(&E->hp[l], best))
            best = &E->hp[m = l];
        if (l + 1 < n && cand_less(&E->hp[l + 1], best))
            best = &E->hp[m = l + 1];
        if (m == i)
            break;
        E->hp[i] = E->hp[m];
        i = m;
    }
    if (n)
        E->hp[i] = last;
    return top;
}

static int push_sym(enc *E, size_t *n, int32_t id)
{
    if (*n >= (size_t)INT32_MAX - 1)
        return lp_error_set(E->err, LP_EINVAL, "tokenizer encode: word too long");
    if (grow((void **)&E->sy, &E->cap_sy, *n + 1, sizeof *E->sy))
        return oom(E);
    E->sy[*n] = (sym){id, (int32_t)*n - 1, -1};
    if (*n)
        E->sy[*n - 1].next = (int32_t)*n;
    (*n)++;
    return 0;
}

/* Split w into initial symbols as HF's BPE::merge_word: vocab chars, byte fallback, (fused) unk. */
static int initial_symbols(enc *E, const char *w, size_t n, size_t *n_sym)
{
    const lp_tokenizer *t = E->t;
    int pending_unk = 0, rc;
    for (size_t i = 0; i < n;) {
        size_t l = lpi_tok_utf8_seq((const unsigned char *)w + i, n - i);
        if (!l)
            l = 1;
        int32_t id = lpi_tok_strmap_get(&t->mvocab, w + i, l);
        int bytes_ok = 0;
        if (id < 0 && t->byte_fallback) {
            bytes_ok = 1;
            for (size_t k = 0; k < l; k++)
                bytes_ok &= t->byte_tok[(unsigned char)w[i + k]] >= 0;
        }
        if (id >= 0 || bytes_ok) {
            if (pending_unk && (rc = push_sym(E, n_sym, t->unk_id)))
                return rc;
            pending_unk = 0;
            if (id >= 0) {
                if ((rc = push_sym(E, n_sym, id)))
                    return rc;
            } else
                for (size_t k = 0; k < l; k++)
                    if ((rc = push_sym(E, n_sym, t->byte_tok[(unsigned char)w[i + k]])))
                        return rc;
        } else if (t->unk_id >= 0) {
            if (pending_unk && !t->fuse_unk && (rc = push_sym(E, n_sym, t->unk_id)))
                return rc;
            pending_unk = 1;
        } /* else: no unk token, the character is dropped (as HF does) */
        i += l;
    }
    if (pending_unk)
        return push_sym(E, n_sym, t->unk_id);
    return 0;
}

static int bpe(enc *E, const char *w, size_t n)
{
    const lp_tokenizer *t = E->t;
    int rc;
    if (t->ignore_merges) {
        int32_t id = lpi_tok_strmap_get(&t->mvocab, w, n);
        if (id >= 0)
            return emit(E, id);
    }
    size_t n_sym = 0;
    if ((rc = initial_symbols(E, w, n, &n_sym)))
        return rc;
    E->n_hp = 0;
    for (size_t i = 0; i + 1 < n_sym; i++)
        if ((rc = heap_push(E, (int32_t)i)))
            return rc;
    while (E->n_hp) {
        cand c = heap_pop(E);
        sym *s = &E->sy[c.pos];
        if (s->id != c.left || s->next < 0 || E->sy[s->next].id != c.right)
            continue; /* stale */
        sym *r = &E->sy[s->next];
        s->id = c.merged;
        s->next = r->next;
        if (r->next >= 0)
            E->sy[r->next].prev = c.pos;
        r->id = -1;
        if ((s->prev >= 0 && (rc = heap_push(E, s->prev))) || (rc = heap_push(E, c.pos)))
            return rc;
    }
    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = E->sy[i].next)
        if ((rc = emit(E, E->sy[i].id)))
            return rc;
    return 0;
}

/* ---- pre-tokenization ---- */

static int push_span(enc *E, size_t s, size_t e, int m)
{
    if (grow((void **)&E->sp, &E->cap_sp, E->n_sp + 1, sizeof *E->sp))
        return oom(E);
    E->sp[E->n_sp++] = (span){s, e, m};
    return 0;
}

static int push_piece(enc *E, int k, size_t s, size_t e)
{
    if (s == e)
        return 0;
    if (grow((void **)&E->pc[k], &E->cap_pc[k], E->n_pc[k] + 1, sizeof E->pc[k][0]))
        return oom(E);
    E->pc[k][E->n_pc[k]++] = (piece){s, e};
    return 0;
}

/* Find the matches of re in buf[ps, pe) as HF's Pattern::find_matches (absolute offsets). */
static int find_spans(enc *E, const lpi_tok_split *sp, const char *buf, size_t ps, size_t pe)
{
    const char *subj = buf + ps;
    size_t n = pe - ps, off = 0, prev = 0;
    int rc;
    E->n_sp = 0;
    while (off <= n) {
        int mr = pcre2_match(sp->re, (PCRE2_SPTR)subj, n, off, PCRE2_NO_UTF_CHECK, E->md, E->mc);
        if (mr == PCRE2_ERROR_NOMATCH)
            break;
        if (mr < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(mr, msg, sizeof msg);
            return lp_error_set(E->err, LP_EINVAL, "tokenizer encode: pre-tokenizer regex failed: %s",
                                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(E->md);
        size_t ms = ov[0], me = ov[1];
        if (me < ms || me > n || ms < off)
            break; /* \K tricks: give up on further matches rather than loop */
        if (prev != ms && (rc = push_span(E, ps + prev, ps + ms, 0)))
            return rc;
        if ((rc = push_span(E, ps + ms, ps + me, 1)))
            return rc;
        prev = me;
        if (me == ms) {
            if (ms >= n)
                break;
            size_t l = lpi_tok_utf8_seq((const unsigned char *)subj + ms, n - ms);
            off = ms + (l ? l : 1);
        } else
            off = me;
    }
    if (prev != n)
        return push_span(E, ps + prev, pe, 0);
    return 0;
}

/* Apply one split step to piece list `from` (index k) into list 1-k, as HF's NormalizedString::split. */
static int split_step(enc *E, const lpi_tok_split *st, const char *buf, int k)
{
    int o = 1 - k, rc;
    E->n_pc[o] = 0;
    for (size_t p = 0; p < E->n_pc[k]; p++) {
        if ((rc = find_spans(E, st, buf, E->pc[k][p].s, E->pc[k][p].e)))
            return rc;
        span *v = E->sp;
        size_t nv = E->n_sp, w = 0;
        if (st->invert)
            for (size_t i = 0; i < nv; i++)
                v[i].m = !v[i].m;
        switch (st->behavior) {
        case LPI_SPLIT_REMOVED:
            for (size_t i = 0; i < nv; i++)
                if (!v[i].m)
                    v[w++] = v[i];
            break;
        case LPI_SPLIT_ISOLATED:
            w = nv;
            break;
        case LPI_SPLIT_MERGED_PREV: {
            int prev_m = 0;
            for (size_t i = 0; i < nv; i++) {
                int m = v[i].m;
                if (m && !prev_m && w)
                    v[w - 1].e = v[i].e;
                else
                    v[w++] = v[i];
                prev_m = m;
            }
            break;
        }
        case LPI_SPLIT_MERGED_NEXT: {
            int next_m = 0; /* walk backwards; results packed at the end, then moved */
            size_t top = nv;
            for (size_t i = nv; i-- > 0;) {
                int m = v[i].m;
                if (m && !next_m && top < nv)
                    v[top].s = v[i].s;
                else
                    v[--top] = v[i];
                next_m = m;
            }
            memmove(v, v + top, (nv - top) * sizeof *v);
            w = nv - top;
            break;
        }
        default: { /* Contiguous */
            int prev_m = 0;
            for (size_t i = 0; i < nv; i++) {
                int m = v[i].m;
                if (m == prev_m && w)
                    v[w - 1].e = v[i].e;
                else
                    v[w++] = v[i];
                prev_m = m;
            }
            break;
        }
        }
        for (size_t i = 0; i < w; i++)
            if ((rc = push_piece(E, o, v[i].s, v[i].e)))
                return rc;
    }
    return 0;
}

/* ---- normalization ---- */

static int normalize(enc *E, const char *s, size_t n, int at_start, lpi_tok_buf **res)
{
    const lp_tokenizer *t = E->t;
    int k = 0;
    E->nb[0].n = 0;
    if (lpi_tok_buf_put(&E->nb[0], s, n))
        return oom(E);
    for (size_t i = 0; i < t->n_norm; i++) {
        const lpi_tok_norm *st = &t->norm[i];
        lpi_tok_buf *in = &E->nb[k], *out = &E->nb[1 - k];
        out->n = 0;
        if (st->type == LPI_NORM_PREPEND) {
            if (in->n == 0 || (st->first_only && !at_start) ||
                (st->if_missing && in->n >= st->alen && !memcmp(in->p, st->a, st->alen)))
                continue;
            if (lpi_tok_buf_put(out, st->a, st->alen) || lpi_tok_buf_put(out, in->p, in->n))
                return oom(E);
        } else {
            size_t j = 0, run = 0;
            while (j + st->alen <= in->n) {
                if (!memcmp(in->p + j, st->a, st->alen)) {
                    if (lpi_tok_buf_put(out, in->p + run, j - run) || lpi_tok_buf_put(out, st->b, st->blen))
                        return oom(E);
                    j += st->alen;
                    run = j;
                } else
                    j++;
            }
            if (lpi_tok_buf_put(out, in->p + run, in->n - run))
                return oom(E);
        }
        k = 1 - k;
    }
    *res = &E->nb[k];
    return 0;
}

/* ByteLevel add_prefix_space: each piece not starting with ' ' gets one (HF applies it per split).
 * Pieces of list k are rewritten into buffer `out`, in place in the list. */
static int prefix_space(enc *E, const lpi_tok_buf *in, lpi_tok_buf *out, int k)
{
    out->n = 0;
    for (size_t p = 0; p < E->n_pc[k]; p++) {
        piece *pc = &E->pc[k][p];
        size_t start = out->n;
        if (in->p[pc->s] != ' ' && lpi_tok_buf_put(out, " ", 1))
            return oom(E);
        if (lpi_tok_buf_put(out, in->p + pc->s, pc->e - pc->s))
            return oom(E);
        *pc = (piece){start, out->n};
    }
    return 0;
}

/* Encode text between added tokens. */
static int encode_segment(enc *E, const char *s, size_t n, int at_start)
{
    const lp_tokenizer *t = E->t;
    lpi_tok_buf *nb;
    int rc;
    if (n == 0)
        return 0;
    if ((rc = normalize(E, s, n, at_start, &nb)))
        return rc;
    int k = 0;
    E->n_pc[0] = 0;
    if ((rc = push_piece(E, 0, 0, nb->n)))
        return rc;
    for (size_t i = 0; i < t->n_split; i++) {
        if (!t->split[i].re) {
            lpi_tok_buf *o = nb == &E->nb[0] ? &E->nb[1] : &E->nb[0];
            if ((rc = prefix_space(E, nb, o, k)))
                return rc;
            nb = o;
            continue;
        }
        if ((rc = split_step(E, &t->split[i], nb->p, k)))
            return rc;
        k = 1 - k;
    }
    for (size_t p = 0; p < E->n_pc[k]; p++) {
        const char *w = nb->p + E->pc[k][p].s;
        size_t wn = E->pc[k][p].e - E->pc[k][p].s;
        if (t->byte_level) {
            E->word.n = 0;
            for (size_t i = 0; i < wn; i++) {
                char u[4];
                if (lpi_tok_buf_put(&E->word, u, lpi_tok_utf8_put(t->b2u[(unsigned char)w[i]], u)))
                    return oom(E);
            }
            w = E->word.p;
            wn = E->word.n;
        }
        if ((rc = bpe(E, w, wn)))
            return rc;
    }
    return 0;
}

static int is_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Longest added token starting at text[pos], or NULL. */
static const lpi_tok_added *match_added(const lp_tokenizer *t, const char *text, size_t len, size_t pos)
{
    unsigned c = (unsigned char)text[pos];
    for (uint32_t i = t->added_first[c]; i < t->added_first[c + 1]; i++) {
        const lpi_tok_added *a = &t->added[i];
        if (a->len <= len - pos && !memcmp(text + pos, a->s, a->len))
            return a;
    }
    return NULL;
}

static int encode_all(enc *E, const char *text, size_t len)
{
    const lp_tokenizer *t = E->t;
    size_t seg = 0, pos = 0;
    int rc;
    while (pos < len) {
        const lpi_tok_added *a = t->n_added ? match_added(t, text, len, pos) : NULL;
        if (!a) {
            pos++;
            continue;
        }
        size_t ms = pos, me = pos + a->len;
        if (a->lstrip)
            while (ms > seg && is_ws((unsigned char)text[ms - 1]))
                ms--;
        if (a->rstrip)
            while (me < len && is_ws((unsigned char)text[me]))
                me++;
        if ((rc = encode_segment(E, text + seg, ms - seg, seg == 0)) || (rc = emit(E, a->id)))
            return rc;
        pos = seg = me;
    }
    return encode_segment(E, text + seg, len - seg, seg == 0);
}

int lp_tokenizer_encode(const lp_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                        size_t *n_ids, lp_error *err)
{
    if (!t || !ids || !n_ids || (!text && len))
        return lp_error_set(err, LP_EINVAL, "lp_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    size_t bad;
    if (len && !lpi_tok_utf8_valid(text, len, &bad))
        return lp_error_set(err, LP_EINVAL, "lp_tokenizer_encode: invalid UTF-8 at byte offset %zu", bad);
    if (add_bos < 0)
        add_bos = t->default_add_bos;
    if (add_bos && t->bos < 0)
        return lp_error_set(err, LP_EINVAL, "lp_tokenizer_encode: BOS requested but the tokenizer has none");

    enc E;
    memset(&E, 0, sizeof E);
    E.t = t;
    E.err = err;
    int rc = 0;
    E.md = pcre2_match_data_create(1, NULL);
    E.mc = pcre2_match_context_create(NULL);
    if (!E.md || !E.mc)
        rc = oom(&E);
    else
        pcre2_set_match_limit(E.mc, MATCH_LIMIT);
    if (!rc && add_bos)
        rc = emit(&E, t->bos);
    if (!rc && len)
        rc = encode_all(&E, text, len);
    if (!rc && !E.ids && !(E.ids = malloc(sizeof *E.ids)))
        rc = oom(&E);
    pcre2_match_data_free(E.md);
    pcre2_match_context_free(E.mc);
    free(E.nb[0].p);
    free(E.nb[1].p);
    free(E.word.p);
    free(E.pc[0]);
    free(E.pc[1]);
    free(E.sp);
    free(E.sy);
    free(E.hp);
    if (rc) {
        free(E.ids);
        return rc;
    }
    *ids = E.ids;
    *n_ids = E.n_ids;
    return 0;
}
