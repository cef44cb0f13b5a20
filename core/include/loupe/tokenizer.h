/* loupe — tokenizers: byte-level BPE (GPT-2 family) and SentencePiece-style BPE with byte fallback
 * (Llama family), loaded from Hugging Face files.
 *
 * Ownership:
 *   - An lp_tokenizer is created by lp_tokenizer_load_* and owned by the caller, who releases it with
 *     lp_tokenizer_free().  It is immutable after loading: every function taking a `const lp_tokenizer *`
 *     may be called concurrently from several threads.
 *   - Arrays / strings returned through `**ids` or as `char *` are malloc'd and owned by the caller (free()).
 *   - `const char *` results (token_str, kind) are borrowed and live as long as the tokenizer.
 *   - Errors follow loupe/error.h: 0 or a negative LP_E* code, message in the caller's lp_error (may be NULL).
 *
 * What is understood in tokenizer.json (anything else is refused with LP_EUNSUPPORTED, never guessed):
 *   model       BPE (merges as "a b" or ["a","b"]; unk_token, fuse_unk, byte_fallback, ignore_merges)
 *   normalizer  Sequence, Prepend, Replace (String pattern), NFC (treated as identity: input assumed NFC)
 *   pre_tokenizer  Sequence, ByteLevel (add_prefix_space, use_regex), Split (String/Regex, all five
 *               behaviours, invert), Digits, Whitespace, WhitespaceSplit, Metaspace
 *   decoder     Sequence, ByteLevel, ByteFallback, Fuse, Replace "▁"→" ", Strip (leading spaces), Metaspace
 *   post_processor  a TemplateProcessing starting with a special token gives BOS and the default add_bos;
 *               other processors are ignored (nothing is appended after the text)
 *   added_tokens  longest match first, lstrip/rstrip; single_word and normalized are ignored
 * Regexes run in PCRE2 (UTF + UCP), compiled once per tokenizer; HF uses Oniguruma, so exotic patterns
 * may differ at the margins.  Metaspace and ByteLevel's add_prefix_space act where they appear in a
 * Sequence; Metaspace's replace/prepend act on the whole text segment between added tokens.
 */
#ifndef LOUPE_TOKENIZER_H
#define LOUPE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "loupe/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_tokenizer lp_tokenizer;

/* dir: a model folder; reads tokenizer.json, else falls back to vocab.json + merges.txt (GPT-2 byte-level
 * BPE); also reads tokenizer_config.json / special_tokens_map.json when present for bos/eos/add_bos_token. */
int lp_tokenizer_load_dir(const char *dir, lp_tokenizer **out, lp_error *err);
/* One tokenizer.json file.  BOS/default-BOS come from its post_processor (TemplateProcessing); when it
 * names none, BOS/EOS are taken from well-known special tokens (<s>, </s>, <|endoftext|>, ...). */
int lp_tokenizer_load_json(const char *tokenizer_json_path, lp_tokenizer **out, lp_error *err);
/* Same, from memory (data need not be NUL-terminated; it is not kept).  name_for_errors names the
 * source in error messages (may be NULL). */
int lp_tokenizer_load_json_mem(const char *data, size_t len, const char *name_for_errors, lp_tokenizer **out,
                               lp_error *err);
void lp_tokenizer_free(lp_tokenizer *tok); /* NULL is fine */

/* Encode UTF-8 text (len bytes). Added/special tokens appearing in the text (e.g. "<|endoftext|>") are
 * matched as in HF tokenizers.  add_bos: 1 prepend BOS, 0 don't, -1 follow the tokenizer's own default
 * (tokenizer_config add_bos_token / post_processor).  *ids is malloc'd (possibly for 0 ids), caller frees
 * with free().  Invalid UTF-8 → LP_EINVAL with a message giving the byte offset. */
int lp_tokenizer_encode(const lp_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t **ids,
                        size_t *n_ids, lp_error *err);
/* Decode to UTF-8 like HF's decode (byte-level: map bytes back; SentencePiece: ▁→space, byte-fallback
 * <0xNN> tokens, strip the leading space added by Prepend as HF's decoder does).  Byte sequences that are
 * not valid UTF-8 become U+FFFD as in HF.  skip_special drops special tokens.  Returns a malloc'd
 * NUL-terminated string (caller frees) or NULL on bad ids / no memory (err set). */
char *lp_tokenizer_decode(const lp_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, lp_error *err);
/* The raw bytes one token stands for when decoded on its own (for display: e.g. " the" for GPT-2's "Ġthe";
 * one byte for "<0x0A>").  Not NUL-terminated; writes up to cap bytes (buf may be NULL when cap is 0),
 * returns the full length or a negative LP_E* code for an out-of-range id. */
int lp_tokenizer_token_bytes(const lp_tokenizer *tok, int32_t id, char *buf, size_t cap);
/* Vocab string as stored ("Ġthe"), borrowed, NULL if out of range / unused id. */
const char *lp_tokenizer_token_str(const lp_tokenizer *tok, int32_t id);
int32_t lp_tokenizer_token_id(const lp_tokenizer *tok, const char *token_str); /* -1 if absent */
int32_t lp_tokenizer_n_vocab(const lp_tokenizer *tok);   /* max id + 1, including added tokens */
int32_t lp_tokenizer_bos(const lp_tokenizer *tok);       /* -1 if none */
int32_t lp_tokenizer_eos(const lp_tokenizer *tok);       /* -1 if none */
int lp_tokenizer_default_add_bos(const lp_tokenizer *tok); /* 1/0 */
int lp_tokenizer_is_special(const lp_tokenizer *tok, int32_t id); /* 1/0 (0 for out of range) */
const char *lp_tokenizer_kind(const lp_tokenizer *tok);  /* "byte_level_bpe" or "sentencepiece_bpe" */

#ifdef __cplusplus
}
#endif
#endif
