/* loupe — the plugin ABI. The only header a plugin includes.
 *
 * A plugin is a shared object that exports two symbols:
 *
 *   LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;
 *   LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin);
 *
 * The host reads `loupe_plugin_abi` first and refuses a plugin built for another major
 * version or a newer minor one (naming the file and the symbol), then calls
 * loupe_plugin_init once. init describes the plugin (lp_plugin_set_info through the host
 * table) and registers its methods with host->register_method.
 *
 * Plugins never link against the loupe library: everything they need from the host
 * comes through the lp_host_api table (so a stub host can test a plugin and nothing
 * is interposed). The table is APPEND-ONLY: fields are never removed or reordered;
 * a plugin that uses a field added in a later minor version checks
 * LP_HOST_HAS(host, field) before calling it.
 *
 * Types (lp_tensor, lp_error, lp_config, lp_batch, lp_run_opts, hook kinds) come from
 * the public headers included below; plugins use those types, never the functions
 * those headers declare.
 *
 * OWNERSHIP across the boundary
 *  - Strings a plugin passes to the host (names, help, parameter descriptors) must stay
 *    valid for the plugin's lifetime (static storage is the norm). The host copies what
 *    it keeps longer.
 *  - Objects a plugin obtains from the host (hooks lists, caches, buffers from
 *    host->alloc) are owned by the plugin until it releases them with the matching
 *    host function; result tensors from host->result_tensor are owned by the host and
 *    live until the call's results are discarded by the caller.
 *  - A tensor handed to a hook callback is borrowed for the duration of the callback.
 *  - Strings the host returns (param_str, token text) are borrowed for the duration of
 *    the call.
 *  - Errors: every function returns 0 or a negative LP_E* code; a method that fails sets
 *    the message with host->error(call, ...). Plugins never exit, abort or longjmp. */
#ifndef LOUPE_PLUGIN_H
#define LOUPE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "loupe/error.h"
#include "loupe/hook.h"
#include "loupe/model.h"
#include "loupe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_PLUGIN_ABI_MAJOR 1
#define LP_PLUGIN_ABI_MINOR 1
#define LP_PLUGIN_ABI_VERSION ((uint32_t)((LP_PLUGIN_ABI_MAJOR << 16) | LP_PLUGIN_ABI_MINOR))
#define LP_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Whether the host table has a field (for fields added after 1.0). */
#define LP_HOST_HAS(host, field) \
    ((host)->struct_size >= offsetof(lp_host_api, field) + sizeof((host)->field) && (host)->field != NULL)

typedef struct lp_plugin lp_plugin; /* host-side record of one loaded plugin */
typedef struct lp_call lp_call;     /* one invocation of a method            */
typedef struct lp_host_api lp_host_api; /* the host table, below              */

typedef enum lp_param_type {
    LP_PARAM_INT = 0,
    LP_PARAM_FLOAT,
    LP_PARAM_BOOL,
    LP_PARAM_STRING,
    LP_PARAM_TEXT,  /* a prompt: text, tokenized by the host with the model's BOS rule */
    LP_PARAM_HOOK,  /* a hook point name or glob, checked against the model            */
} lp_param_type;

typedef struct lp_param_desc {
    const char *name;
    lp_param_type type;
    const char *default_value; /* NULL: the parameter is required */
    const char *help;
} lp_param_desc;

enum {
    LP_CAP_READS_ACTIVATIONS = 1u << 0,
    LP_CAP_WRITES_ACTIVATIONS = 1u << 1,
    LP_CAP_TRAINS = 1u << 2,
    LP_CAP_WRITES_FILES = 1u << 3,
};

typedef struct lp_method_desc {
    uint32_t struct_size;        /* sizeof(lp_method_desc) as the plugin knows it */
    const char *name;            /* "head_scores"; full name is plugin.method      */
    const char *summary;         /* one line                                       */
    const char *help;            /* paragraphs: what it computes, how to read it   */
    const lp_param_desc *params; /* [n_params]                                     */
    int n_params;
    uint32_t caps;               /* LP_CAP_*                                       */
    /* Run the method. Read parameters and the model through the host; write results
     * with host->result_*. Return 0 or a negative LP_E* code (with host->error). */
    int (*run)(lp_call *call, const lp_host_api *host);
} lp_method_desc;

/* A result table cell. */
typedef struct lp_cell {
    int is_num;
    double num;
    const char *str; /* copied by the host */
} lp_cell;

enum { LP_LOG_DEBUG = 0, LP_LOG_INFO, LP_LOG_WARN };

struct lp_host_api {
    uint32_t struct_size;
    uint32_t abi_version;

    /* ---- registration (during loupe_plugin_init) ---- */
    int (*set_info)(lp_plugin *p, const char *name, const char *version, const char *summary);
    int (*register_method)(lp_plugin *p, const lp_method_desc *m);

    /* ---- the call: parameters, model, errors, progress ---- */
    lp_model *(*call_model)(lp_call *c);
    int64_t (*param_int)(lp_call *c, const char *name);
    double (*param_float)(lp_call *c, const char *name);
    int (*param_bool)(lp_call *c, const char *name);
    const char *(*param_str)(lp_call *c, const char *name);
    /* LP_PARAM_TEXT: the tokens (borrowed for the call) */
    const int32_t *(*param_tokens)(lp_call *c, const char *name, int *n);
    int (*error)(lp_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    void (*log)(lp_call *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    /* Report progress; returns non-zero when the user asked to cancel (then stop and
     * return LP_ECANCELLED). */
    int (*progress)(lp_call *c, double done, double total, const char *what);

    /* ---- results (owned by the host) ---- */
    int (*result_scalar)(lp_call *c, const char *name, double value);
    int (*result_string)(lp_call *c, const char *name, const char *value);
    /* A zero-filled f32 tensor owned by the host; NULL data on failure. `axes` names
     * the dimensions ("layer,pos"), may be NULL. */
    lp_tensor (*result_tensor)(lp_call *c, const char *name, int ndim, const int64_t *ne, const char *axes);
    /* A table with named columns; returns its id (>= 0) or a negative code. */
    int (*result_table)(lp_call *c, const char *name, int n_cols, const char *const *cols);
    int (*table_row)(lp_call *c, int table, const lp_cell *cells);

    /* ---- model access (the core API, re-exported) ---- */
    const lp_config *(*model_config)(const lp_model *m);
    int (*model_weight)(const lp_model *m, const char *name, lp_tensor *out, lp_error *err);
    int (*model_run)(lp_model *m, const lp_batch *b, const lp_run_opts *o, lp_error *err);
    int (*model_n_hook_points)(const lp_model *m);
    int (*model_hook_point)(const lp_model *m, int i, lp_hook_kind *kind, int *layer);
    /* x [rows, d_model] → out [rows, d_model]: the final norm as the model applies it. */
    int (*model_ln_final)(const lp_model *m, const float *x, int rows, float *out, float *scale);
    /* x [rows, d_model] → logits [rows, d_vocab] (W_U, plus b_U if any). */
    int (*model_unembed)(const lp_model *m, const float *x, int rows, float *logits);
    /* Token text as bytes (for display); returns length or negative. */
    int (*token_bytes)(const lp_model *m, int32_t id, char *buf, size_t cap);
    /* add_bos: 1, 0, or -1 for the model's rule. *ids is released with host->free. */
    int (*tokenize)(const lp_model *m, const char *text, int add_bos, int32_t **ids, int *n, lp_error *err);
    int (*hook_name)(lp_hook_kind k, int layer, char *buf, size_t cap);
    int (*hook_match)(const char *pattern, const char *name);

    lp_hooks *(*hooks_new)(void);
    void (*hooks_free)(lp_hooks *h);
    int (*hooks_add)(lp_hooks *h, const char *pattern, lp_hook_fn fn, void *user, lp_error *err);
    lp_cache *(*cache_new)(void);
    void (*cache_free)(lp_cache *c);
    int (*cache_set_filter)(lp_cache *c, const char *const *patterns, int n, lp_error *err);
    void (*cache_reset)(lp_cache *c);
    int (*cache_find)(const lp_cache *c, const char *name);
    lp_tensor (*cache_entry)(const lp_cache *c, int i);

    /* ---- memory and numerics ---- */
    void *(*alloc)(size_t bytes); /* 64-byte aligned; NULL on failure */
    void (*free)(void *p);
    /* C[M,N] = alpha·op(A)·op(B) + beta·C, row-major, BLAS semantics. */
    void (*sgemm)(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc);

    /* ---- added in 1.1 (check with LP_HOST_HAS) ---- */
    /* The model's worker threads: fn(task, thread, ctx) for task 0..n_tasks-1, thread in
     * 0..model_threads-1, BLAS single-threaded inside. Tasks must not call model_run,
     * parallel, progress or result functions; report progress between parallel calls. */
    int (*model_threads)(const lp_model *m);
    int (*parallel)(const lp_model *m, int n_tasks, void (*fn)(int task, int thread, void *ctx), void *ctx);
    /* Unembedding of the vocabulary slice [v0, v1): x [rows, d_model] (already normed) →
     * out[r·ldo + (v − v0)], single-threaded, callable from parallel tasks. */
    int (*model_unembed_slice)(const lp_model *m, const float *x, int rows, int v0, int v1, float *out, int ldo);
};

/* The plugin's entry points. */
typedef int (*lp_plugin_init_fn)(const lp_host_api *host, lp_plugin *plugin);
#define LP_PLUGIN_INIT_SYMBOL "loupe_plugin_init"
#define LP_PLUGIN_ABI_SYMBOL "loupe_plugin_abi"

#ifdef __cplusplus
}
#endif
#endif
