/* loupe core — internal declarations shared by core/src files (not installed). */
#ifndef LOUPE_IMPL_H
#define LOUPE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "loupe/cache.h"
#include "loupe/error.h"
#include "loupe/hook.h"
#include "loupe/model.h"
#include "loupe/safetensors.h"
#include "loupe/tensor.h"

#define LPI_HIDDEN __attribute__((visibility("hidden")))

/* ---- small utilities (util.c) ---- */
LPI_HIDDEN char *lpi_strdup(const char *s);
LPI_HIDDEN int lpi_read_file(const char *path, char **data, size_t *len, lp_error *err);
LPI_HIDDEN int lpi_file_exists(const char *path);
LPI_HIDDEN int lpi_dir_exists(const char *path);
LPI_HIDDEN double lpi_now(void);
LPI_HIDDEN void *lpi_aligned_alloc(size_t bytes); /* 64-byte aligned, free with free() */
/* Write `len` bytes to path atomically: temp file in the same dir, fsync, rename. */
LPI_HIDDEN int lpi_write_atomic(const char *path, const void *const *parts, const size_t *lens, int nparts,
                                lp_error *err);

/* ---- a linear layer over f32 weights ---- */
typedef struct lpi_linear {
    const float *w; /* [n_out, n_in] if trans (nn.Linear) else [n_in, n_out] (Conv1D) */
    const float *b; /* [n_out] or NULL                                                 */
    int n_in, n_out;
    int trans;
    int ld;         /* leading dimension of w as stored                                */
} lpi_linear;

/* y[M, n_out] = x[M, n_in] @ W (+ b), with x row stride ldx and y row stride ldy. */
LPI_HIDDEN void lpi_linear_fwd(const lpi_linear *l, const float *x, int ldx, float *y, int ldy, int M);

typedef struct lpi_layer {
    const float *ln1_w, *ln1_b; /* [d_model]                                   */
    const float *ln2_w, *ln2_b; /* [d_model]                                   */
    lpi_linear qkv;             /* fused: gpt2 [d, 3d] / neox [3d(h,3,dh), d] */
    lpi_linear q, k, v;         /* separate projections (llama)               */
    lpi_linear o;               /* [H*dh -> d]                                  */
    lpi_linear mlp_in;          /* [d -> d_mlp] (the "up" of a gated MLP)       */
    lpi_linear mlp_gate;        /* [d -> d_mlp] gated MLPs only                 */
    lpi_linear mlp_out;         /* [d_mlp -> d]                                 */
} lpi_layer;

/* pool.c: fork-join over task indices (caller + n-1 workers) */
typedef struct lpi_pool lpi_pool;
LPI_HIDDEN lpi_pool *lpi_pool_new(int n_threads);
LPI_HIDDEN void lpi_pool_free(lpi_pool *p);
LPI_HIDDEN int lpi_pool_size(const lpi_pool *p);
LPI_HIDDEN void lpi_pool_run(lpi_pool *p, int n_tasks, void (*fn)(int task, int thread, void *ctx), void *ctx);

typedef struct lpi_workspace {
    float *buf;
    size_t cap; /* floats */
} lpi_workspace;

struct lp_model {
    lp_config cfg;
    char *dir;
    char *name;
    lp_st_file **files;
    int n_files;
    float **owned;   /* converted (f16/bf16 → f32) or realigned weight buffers */
    int n_owned, cap_owned;
    int64_t n_params;
    lp_tokenizer *tok;

    const float *wte;   /* [d_vocab, d_model]                          */
    const float *wpe;   /* [n_ctx, d_model] or NULL                   */
    lpi_layer *layers;  /* [n_layers]                                  */
    const float *lnf_w, *lnf_b; /* [d_model]                           */
    lpi_linear unembed; /* [d_model -> d_vocab]                        */
    const float *b_U;   /* [d_vocab] or NULL                           */
    float *rope_inv_freq; /* [rotary_dim/2]                            */

    lpi_workspace ws;
    lpi_pool *pool;     /* created on the first run                    */
    double load_s;
    double last_run_ms;
};

/* config.c */
LPI_HIDDEN int lpi_config_parse(const char *path, lp_config *cfg, lp_error *err);
/* Same from text in memory (need not be NUL-terminated); path names it in messages. */
LPI_HIDDEN int lpi_config_parse_mem(const char *text, size_t len, const char *path, lp_config *cfg, lp_error *err);
/* model_bind.c: find every tensor the architecture needs in the open files. */
LPI_HIDDEN int lpi_model_bind(lp_model *m, lp_error *err);

/* hook.c: read access to a hook list */
LPI_HIDDEN int lpi_hooks_n(const lp_hooks *h);
LPI_HIDDEN const char *lpi_hooks_pattern(const lp_hooks *h, int i);
LPI_HIDDEN lp_hook_fn lpi_hooks_fn(const lp_hooks *h, int i);
LPI_HIDDEN void *lpi_hooks_user(const lp_hooks *h, int i);


/* kernels.c — numeric kernels over rows of f32 */
LPI_HIDDEN void lpi_layernorm(const float *x, int ldx, float *y, int ldy, float *scale, const float *w,
                              const float *b, int rows, int d, float eps);
LPI_HIDDEN void lpi_rmsnorm(const float *x, int ldx, float *y, int ldy, float *scale, const float *w, int rows,
                            int d, float eps);
LPI_HIDDEN void lpi_gelu_tanh(float *x, size_t n);
LPI_HIDDEN void lpi_gelu_erf(float *x, size_t n);
LPI_HIDDEN void lpi_silu_mul(const float *gate, const float *up, float *out, size_t n);
LPI_HIDDEN void lpi_relu(float *x, size_t n);
LPI_HIDDEN void lpi_softmax_row(float *x, int n); /* in place; -inf entries become 0 */
LPI_HIDDEN void lpi_add(const float *a, const float *b, float *y, size_t n);
LPI_HIDDEN void lpi_add3(const float *a, const float *b, const float *c, float *y, size_t n);
LPI_HIDDEN float lpi_expf(float x);

/* ---- plugin host (plugin_host.c: registry and loading; plugin_call.c: calls and the
 * host table) ---- */
#include "loupe/plugins.h"

typedef struct lpi_method {
    lp_method_desc d; /* copy, zero-extended from the plugin's struct_size */
    char *name;       /* copy of d.name                                     */
    char *full_name;  /* "plugin.method"                                    */
    int plugin;
} lpi_method;

struct lp_plugin {
    lp_registry *reg;
    char *path, *real;
    void *handle;
    char *name, *version, *summary;
    uint32_t abi;
    int first_method, n_methods;
    int n_diag_at_start; /* diagnostics recorded while init ran */
    int in_init;         /* set_info/register_method are only valid during init */
};

struct lp_registry {
    lp_plugin **plugins;
    int n_plugins, cap_plugins;
    lpi_method *methods;
    int n_methods, cap_methods;
    char **diags;
    int n_diags, cap_diags;
    char **dirs;
    int *dir_exists;
    int n_dirs;
};

LPI_HIDDEN extern const lp_host_api lpi_host_api;
LPI_HIDDEN int lpi_registry_diag(lp_registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
LPI_HIDDEN int lpi_plugin_set_info(lp_plugin *p, const char *name, const char *version, const char *summary);
LPI_HIDDEN int lpi_plugin_register_method(lp_plugin *p, const lp_method_desc *m);
LPI_HIDDEN int lpi_parse_param(lp_param_type t, const char *s, int64_t *iv, double *fv, char *why, size_t cap);

#endif
