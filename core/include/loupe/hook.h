/* loupe — hook points: TransformerLens-named places in the forward pass where an
 * activation can be read or edited.
 *
 * Names (L = block index): hook_embed, hook_pos_embed, blocks.L.hook_resid_pre,
 * blocks.L.ln1.hook_scale, blocks.L.ln1.hook_normalized, blocks.L.attn.hook_q|k|v,
 * blocks.L.attn.hook_rot_q|rot_k (rotary models), blocks.L.attn.hook_attn_scores,
 * blocks.L.attn.hook_pattern, blocks.L.attn.hook_z, blocks.L.hook_attn_out,
 * blocks.L.hook_resid_mid (sequential blocks only), blocks.L.ln2.hook_scale,
 * blocks.L.ln2.hook_normalized, blocks.L.mlp.hook_pre, blocks.L.mlp.hook_pre_linear
 * (gated MLPs), blocks.L.mlp.hook_post, blocks.L.hook_mlp_out, blocks.L.hook_resid_post,
 * ln_final.hook_scale, ln_final.hook_normalized.
 *
 * Shapes are TransformerLens' with a leading batch dimension:
 *   residual-like  [batch, pos, d_model]        ln scale [batch, pos, 1]
 *   q/k/v/z        [batch, pos, n_heads, d_head] (grouped-query K/V expanded per query head)
 *   scores/pattern [batch, n_heads, q_pos, k_pos] (scores are scaled, masked entries -inf)
 *   mlp pre/post   [batch, pos, d_mlp]
 *
 * Ownership: the tensor handed to a hook callback is BORROWED for the duration of the
 * call. The callback may read it and may write it in place (the rest of the forward
 * pass then uses the edited values); to keep it, copy it. Shape and layout must not
 * be changed. */
#ifndef LOUPE_HOOK_H
#define LOUPE_HOOK_H

#include "loupe/error.h"
#include "loupe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lp_hook_kind {
    LP_HOOK_EMBED = 0,
    LP_HOOK_POS_EMBED,
    LP_HOOK_RESID_PRE,
    LP_HOOK_LN1_SCALE,
    LP_HOOK_LN1_NORMALIZED,
    LP_HOOK_Q,
    LP_HOOK_K,
    LP_HOOK_V,
    LP_HOOK_ROT_Q,
    LP_HOOK_ROT_K,
    LP_HOOK_ATTN_SCORES,
    LP_HOOK_PATTERN,
    LP_HOOK_Z,
    LP_HOOK_ATTN_OUT,
    LP_HOOK_RESID_MID,
    LP_HOOK_LN2_SCALE,
    LP_HOOK_LN2_NORMALIZED,
    LP_HOOK_MLP_PRE,
    LP_HOOK_MLP_PRE_LINEAR,
    LP_HOOK_MLP_POST,
    LP_HOOK_MLP_OUT,
    LP_HOOK_RESID_POST,
    LP_HOOK_LN_FINAL_SCALE,
    LP_HOOK_LN_FINAL_NORMALIZED,
    LP_HOOK_KIND_COUNT
} lp_hook_kind;

/* Whether kind is a per-block hook ("blocks.L.…"). */
int lp_hook_kind_is_block(lp_hook_kind k);
/* Name of (kind, layer) written into buf; returns the length (snprintf semantics). */
int lp_hook_name(lp_hook_kind k, int layer, char *buf, size_t cap);
/* Parse a full hook name; returns 0 and fills kind/layer, or LP_ENOTFOUND. */
int lp_hook_parse(const char *name, lp_hook_kind *kind, int *layer);
/* Glob match ('*', '?', and [..] as fnmatch) of a hook name against a pattern. */
int lp_hook_match(const char *pattern, const char *name);

/* What a callback learns about the activation it is handed. */
typedef struct lp_hook_info {
    const char *name;       /* full TransformerLens name                        */
    lp_hook_kind kind;
    int layer;              /* block index, -1 for non-block hooks              */
    int n_batch;
    int n_pos;              /* positions in this call                           */
    int pos_offset;         /* absolute position of pos 0 (>0 with a KV cache)  */
    const int32_t *lengths; /* [n_batch] real lengths (the rest is right padding) */
    const int32_t *tokens;  /* [n_batch, n_pos] token ids                        */
    lp_error *err;          /* a callback that fails writes its message here      */
} lp_hook_info;

/* Return 0 to continue, or a negative LP_E* code to stop the forward pass (the run
 * then returns that code with the message the callback put in info->err). */
typedef int (*lp_hook_fn)(lp_tensor *act, const lp_hook_info *info, void *user);

/* An ordered list of (pattern, callback). Callbacks matching the same hook point run
 * in the order they were added. The list does not own `user`. */
typedef struct lp_hooks lp_hooks;
lp_hooks *lp_hooks_new(void);
void lp_hooks_free(lp_hooks *h);
int lp_hooks_add(lp_hooks *h, const char *pattern, lp_hook_fn fn, void *user, lp_error *err);
void lp_hooks_clear(lp_hooks *h);
int lp_hooks_count(const lp_hooks *h);

#ifdef __cplusplus
}
#endif
#endif
