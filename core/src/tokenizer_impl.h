/* loupe — tokenizer internals shared by tok_*.c (not installed). */
#ifndef LOUPE_TOKENIZER_IMPL_H
#define LOUPE_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stddef.h>

#include "loupe/tokenizer.h"

#define LPI_TOK_MAX_ID (1 << 24) /* refuse ids beyond this: a corrupt file must not make us allocate GBs */

enum { LPI_TOK_BYTE_LEVEL = 0, LPI_TOK_SENTENCEPIECE = 1 };

/* One vocabulary entry, indexed by id.  s == NULL for an unused id. */
typedef struct {
    char *s;       /* NUL-terminated, borrowed from lp_tokenizer.strs */
    uint32_t len;
    uint8_t special;
    uint8_t added;
} lpi_tok_token;

/* string -> int32 open-addressing map; keys are borrowed (they point into lpi_tok_token strings). */
typedef struct {
    const char *s;
    uint32_t len;
    uint32_t hash;
    int32_t val;
} lpi_tok_strent;
typedef struct {
    lpi_tok_strent *e; /* cap entries, s == NULL when empty */
    size_t cap, n;
} lpi_tok_strmap;

/* (left id, right id) -> (rank, merged id) */
typedef struct {
    uint64_t key; /* UINT64_MAX when empty */
    int32_t rank, id;
} lpi_tok_mergeent;
typedef struct {
    lpi_tok_mergeent *e;
    size_t cap, n;
} lpi_tok_mergemap;

/* Normalizer steps applied, in order, to each text segment between added tokens. */
enum { LPI_NORM_PREPEND, LPI_NORM_REPLACE };
typedef struct {
    int type;
    char *a; size_t alen; /* PREPEND: text; REPLACE: pattern */
    char *b; size_t blen; /* REPLACE: content */
    uint8_t if_missing;   /* PREPEND only when the segment does not already start with a (Metaspace) */
    uint8_t first_only;   /* PREPEND only for the segment at offset 0 (Metaspace prepend_scheme "first") */
} lpi_tok_norm;

/* Pre-tokenizer split steps (HF SplitDelimiterBehavior). */
enum { LPI_SPLIT_REMOVED, LPI_SPLIT_ISOLATED, LPI_SPLIT_MERGED_PREV, LPI_SPLIT_MERGED_NEXT, LPI_SPLIT_CONTIGUOUS };
typedef struct {
    pcre2_code *re; /* NULL: not a split but ByteLevel's add_prefix_space, applied to each piece */
    int behavior;
    int invert;
} lpi_tok_split;

typedef struct {
    int32_t id;
    char *s; /* borrowed from the token table */
    size_t len;
    uint8_t special, lstrip, rstrip;
} lpi_tok_added;

struct lp_tokenizer {
    int kind;
    char **strs; /* chunks holding every string the tokenizer owns; everything else borrows from here */
    size_t n_strs, cap_strs;
    char *chunk; /* free space in the last chunk */
    size_t chunk_left;
    lpi_tok_token *tok;
    int32_t n_tok;
    lpi_tok_strmap vocab;  /* model vocab + added tokens (added win) */
    lpi_tok_strmap mvocab; /* model vocab only (merges and BPE symbols look here) */
    lpi_tok_mergemap merges;

    lpi_tok_added *added; /* sorted by first byte, then length descending */
    size_t n_added;
    uint32_t added_first[257]; /* added[added_first[c] .. added_first[c+1]) start with byte c */

    lpi_tok_norm *norm;
    size_t n_norm;
    lpi_tok_split *split; /* pre-tokenizer steps, in order */
    size_t n_split;
    int byte_level;       /* model input is bytes mapped through bytes_to_unicode */
    int nfc_assumed;      /* an NFC normalizer was present and is treated as identity */

    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    int32_t byte_tok[256]; /* id of "<0xNN>" or -1 */

    uint32_t b2u[256];  /* bytes_to_unicode */
    int16_t u2b[324];   /* inverse for code points < 324, -1 if none */

    /* decoder */
    int has_decoder;      /* without one, HF joins tokens with spaces */
    int dec_byte_level;
    int dec_replace_meta; /* "▁" -> " " */
    int dec_byte_fallback;
    int dec_strip_left;   /* strip this many leading spaces from the result */

    int32_t bos, eos;
    int default_add_bos;
};

/* tok_util.c */
uint32_t lpi_tok_hash(const char *s, size_t n);
int lpi_tok_strmap_init(lpi_tok_strmap *m, size_t n_expected);
int lpi_tok_strmap_put(lpi_tok_strmap *m, const char *s, size_t n, int32_t val); /* overwrites */
int32_t lpi_tok_strmap_get(const lpi_tok_strmap *m, const char *s, size_t n);     /* -1 if absent */
void lpi_tok_strmap_free(lpi_tok_strmap *m);
int lpi_tok_mergemap_init(lpi_tok_mergemap *m, size_t n_expected);
void lpi_tok_mergemap_put(lpi_tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const lpi_tok_mergeent *lpi_tok_mergemap_get(const lpi_tok_mergemap *m, int32_t a, int32_t b);
void lpi_tok_mergemap_free(lpi_tok_mergemap *m);
/* Strict UTF-8 check; returns 1 if valid, else 0 and *bad = offset of the first bad byte. */
int lpi_tok_utf8_valid(const char *s, size_t n, size_t *bad);
/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
size_t lpi_tok_utf8_seq(const unsigned char *s, size_t n);
size_t lpi_tok_utf8_put(uint32_t cp, char *out); /* writes 1..4 bytes */
void lpi_tok_bytes_to_unicode(uint32_t b2u[256], int16_t u2b[324]);

/* A growable byte buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} lpi_tok_buf;
int lpi_tok_buf_put(lpi_tok_buf *b, const void *s, size_t n);
/* Append s with invalid UTF-8 replaced by U+FFFD (maximal subparts, as Rust's from_utf8_lossy). */
int lpi_tok_buf_put_lossy(lpi_tok_buf *b, const char *s, size_t n);

/* tok_load.c: build from a parsed tokenizer.json (name is used in messages) */
struct cJSON;
int lpi_tok_from_cjson(const struct cJSON *root, const char *name, lp_tokenizer **out, lp_error *err);
void lpi_tok_destroy(lp_tokenizer *t);

#endif
