/* loupe — models: loading Hugging Face folders, configuration, weights, the hooked
 * forward pass, KV-cached generation.
 *
 * A model owns its weights: f32 tensors are used in place from the memory-mapped
 * safetensors files, f16/bf16 are converted to f32 once at load. Weight views
 * (lp_model_weight) live as long as the model. The model is not thread-safe: run one
 * forward pass at a time per lp_model. */
#ifndef LOUPE_MODEL_H
#define LOUPE_MODEL_H

#include <stdint.h>

#include "loupe/cache.h"
#include "loupe/error.h"
#include "loupe/hook.h"
#include "loupe/tensor.h"
#include "loupe/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lp_arch { LP_ARCH_GPT2 = 0, LP_ARCH_LLAMA, LP_ARCH_GPT_NEOX } lp_arch;
typedef enum lp_norm_kind { LP_NORM_LAYERNORM = 0, LP_NORM_RMSNORM } lp_norm_kind;
typedef enum lp_act_kind { LP_ACT_GELU_TANH = 0, LP_ACT_GELU_ERF, LP_ACT_SILU, LP_ACT_RELU } lp_act_kind;

typedef struct lp_config {
    lp_arch arch;
    char model_type[32];   /* config.json's model_type                         */
    char dtype[16];        /* storage dtype of the weights ("float32", …)      */
    int n_layers;
    int d_model;
    int n_heads;
    int n_kv_heads;        /* == n_heads unless grouped-query attention        */
    int d_head;
    int d_mlp;
    int d_vocab;
    int n_ctx;             /* maximum positions                                */
    lp_norm_kind norm;
    float norm_eps;
    lp_act_kind act;
    int gated_mlp;         /* SwiGLU: hook_pre = gate, hook_pre_linear = up    */
    int parallel_blocks;   /* attention and MLP read the same resid_pre        */
    int learned_pos;       /* GPT-2 style absolute position embeddings         */
    int rotary_dim;        /* dims of each head rotated (0: no rotary)         */
    float rope_theta;
    int tied_embeddings;
    int attn_bias, mlp_bias;
    float attn_scale;      /* multiplier on q·k (1/sqrt(d_head) usually)       */
    int scale_attn_by_inverse_layer_idx; /* GPT-2 option                       */
    int bos_token_id, eos_token_id;      /* -1 if unknown                      */
    int prepend_bos;       /* default for text inputs (tokenizer config)       */
} lp_config;

typedef struct lp_model lp_model;

/* spec: a folder, a bundled model name ("toy"), or a hub id ("gpt2",
 * "EleutherAI/pythia-70m") resolved offline in the Hugging Face hub cache. */
int lp_model_load(const char *spec, lp_model **out, lp_error *err);
void lp_model_free(lp_model *m);
/* Resolve spec to a folder without loading (writes into dir). On failure the message
 * lists every place that was looked at. */
int lp_model_resolve(const char *spec, char *dir, size_t cap, lp_error *err);

const lp_config *lp_model_config(const lp_model *m);
const char *lp_model_dir(const lp_model *m);
const char *lp_model_name(const lp_model *m);
int64_t lp_model_n_params(const lp_model *m);       /* every weight, embeddings included */
int64_t lp_model_weight_bytes(const lp_model *m);   /* f32 bytes of the weights          */
lp_tokenizer *lp_model_tokenizer(const lp_model *m); /* NULL when the folder has none     */
/* Files the weights came from (borrowed). */
int lp_model_n_files(const lp_model *m);
const char *lp_model_file(const lp_model *m, int i);
/* Seconds spent in lp_model_load. */
double lp_model_load_seconds(const lp_model *m);

/* Weights by TransformerLens name, as views (no copy; strides express transposes):
 * W_E [d_vocab,d_model], W_pos [n_ctx,d_model], W_U [d_model,d_vocab], b_U,
 * blocks.L.ln1.w|b, blocks.L.ln2.w|b, ln_final.w|b [d_model],
 * blocks.L.attn.W_Q|W_K|W_V [n_heads,d_model,d_head] (K/V per kv head: n_kv_heads),
 * blocks.L.attn.b_Q|b_K|b_V [heads,d_head], blocks.L.attn.W_O [n_heads,d_head,d_model],
 * blocks.L.attn.b_O [d_model], blocks.L.mlp.W_in|W_gate [d_model,d_mlp],
 * blocks.L.mlp.b_in [d_mlp], blocks.L.mlp.W_out [d_mlp,d_model], blocks.L.mlp.b_out.
 * Returns LP_ENOTFOUND for names the architecture does not have (e.g. b_Q in Llama). */
int lp_model_weight(const lp_model *m, const char *name, lp_tensor *out, lp_error *err);

/* Every hook point of this model, in forward order. */
int lp_model_n_hook_points(const lp_model *m);
int lp_model_hook_point(const lp_model *m, int i, lp_hook_kind *kind, int *layer);
/* Full shape (with batch) of a hook point's activation for a given batch and length. */
int lp_model_hook_shape(const lp_model *m, lp_hook_kind kind, int n_batch, int n_pos, int k_pos, int64_t *ne);

/* ---- KV cache for incremental decoding (batch of one sequence) ---- */
typedef struct lp_kv lp_kv;
lp_kv *lp_kv_new(const lp_model *m, int max_pos);
void lp_kv_free(lp_kv *kv);
void lp_kv_clear(lp_kv *kv);
int lp_kv_len(const lp_kv *kv);
/* Forget every position from len on (len >= the current length changes nothing): the
 * next run continues from position len, e.g. after the tokens from len on changed. */
void lp_kv_truncate(lp_kv *kv, int len);

/* ---- the forward pass ---- */
typedef enum lp_logits_mode { LP_LOGITS_NONE = 0, LP_LOGITS_ALL, LP_LOGITS_LAST } lp_logits_mode;

typedef struct lp_batch {
    const int32_t *tokens;  /* [n_batch, n_pos] row-major                                    */
    int n_batch, n_pos;
    const int32_t *lengths; /* [n_batch] real lengths, right-padded; NULL: all n_pos          */
} lp_batch;

typedef struct lp_run_opts {
    lp_logits_mode logits;  /* what to write into logits_out                               */
    float *logits_out;      /* caller-owned: [n_batch, n_pos, d_vocab] (ALL) or
                               [n_batch, d_vocab] (LAST: each sequence's last real position) */
    const lp_hooks *hooks;  /* optional; callbacks run in order at each matching point     */
    lp_cache *cache;        /* optional; wanted activations are stored (after hooks)       */
    lp_kv *kv;              /* optional; n_batch must be 1; appends to the cache            */
    int stop_at_layer;      /* 0: run every block; L>0: stop before block L (no logits)    */
    int (*should_abort)(void *user); /* polled between blocks; non-zero → LP_ECANCELLED     */
    void *abort_user;
} lp_run_opts;

lp_run_opts lp_run_opts_default(void);
int lp_model_run(lp_model *m, const lp_batch *batch, const lp_run_opts *opts, lp_error *err);
/* Milliseconds the last lp_model_run took. */
double lp_model_last_run_ms(const lp_model *m);

/* The model's final norm on rows of the residual stream: x [rows, d_model] → out
 * [rows, d_model]; scale [rows] (may be NULL) gets the norm's divisor. */
int lp_model_ln_final(const lp_model *m, const float *x, int rows, float *out, float *scale);
/* Unembedding: x [rows, d_model] → logits [rows, d_vocab]. */
int lp_model_unembed(const lp_model *m, const float *x, int rows, float *logits);
/* The unembedding for a slice of the vocabulary, single-threaded (safe inside
 * lp_model_parallel tasks): x [rows, d_model] → out[r·ldo + (v − v0)] for v0 ≤ v < v1,
 * the same numbers lp_model_unembed gives for those columns up to float rounding. */
int lp_model_unembed_slice(const lp_model *m, const float *x, int rows, int v0, int v1, float *out, int ldo);

/* ---- the model's worker threads, for methods that split their own work ---- */
int lp_model_threads(const lp_model *m);
/* fn(task, thread, ctx) for every task in 0..n_tasks-1 over the model's threads (thread
 * in 0..lp_model_threads-1; each thread runs its tasks one at a time); BLAS calls made
 * inside run single-threaded. Returns when all tasks are done. Not re-entrant: do not
 * call it (or lp_model_run) from inside a task. */
int lp_model_parallel(const lp_model *m, int n_tasks, void (*fn)(int task, int thread, void *ctx), void *ctx);

/* ---- generation ---- */
typedef struct lp_gen_opts {
    int n_new;          /* tokens to generate                          */
    float temperature;  /* 0: greedy                                   */
    int top_k;          /* 0: no truncation                            */
    uint64_t seed;
    int stop_at_eos;    /* stop when the model's eos token is produced  */
    const lp_hooks *hooks; /* applied on every step (e.g. steering)     */
    /* Called after each new token; return non-zero to stop. May be NULL. */
    int (*on_token)(int32_t id, void *user);
    void *user;
} lp_gen_opts;

lp_gen_opts lp_gen_opts_default(void);
/* Writes up to opts->n_new ids into out (caller-owned, n_new entries); *n_out gets the
 * count. The prompt must hold at least one token. */
int lp_model_generate(lp_model *m, const int32_t *prompt, int n_prompt, const lp_gen_opts *opts,
                      int32_t *out, int *n_out, lp_error *err);

/* ---- BLAS / threads ---- */
void lp_set_threads(int n);
/* One line: "OpenBLAS 0.3.21 core=SkylakeX threads=2" plus a warning when
 * OPENBLAS_CORETYPE forces a core. */
void lp_blas_info(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
