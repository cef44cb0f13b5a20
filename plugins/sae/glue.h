/* sae — what the plugin's method files share: the host table, loading an SAE (with a
 * one-entry cache) and checking it against the model, corpora cut into contexts, and
 * reading or replacing a hook point's activation during a forward pass. */
#ifndef SAE_GLUE_H
#define SAE_GLUE_H

#include "loupe/plugin.h"
#include "sae_impl.h"

extern const lp_host_api *sae_host;

double sae_now(void);
/* The flattened per-position width of a hook point, or a negative code (message in err). */
int sae_hook_width(lp_model *m, const char *name, int head_index, char *err);
int sae_hook_layer(const char *name); /* L of "blocks.L.…", else -1 */
/* The SAE at path, loaded once and kept until its weights file changes. */
int sae_get(lp_call *call, const char *path, const sae **out);
/* sae_get, then check the hook (hook_override or the SAE's) exists and is d_in wide. */
int sae_for_model(lp_call *call, lp_model *m, const char *path, const char *hook_override, const sae **out, char *hook,
                  size_t hcap);
void sae_token_text(lp_model *m, int32_t id, char *out, size_t cap);

typedef struct contexts {
    int32_t *tok; /* [n, T] */
    int64_t n;
    int T;
} contexts;

/* Contexts of T tokens from a corpus (see sae.c). */
int sae_corpus_contexts(lp_call *call, lp_model *m, const char *path, int T, int bos, int64_t max_ctx, int by_line,
                        contexts *out, int64_t *corpus_bytes);

typedef struct hook_io {
    float *buf; /* [n_batch * n_pos, d] rows of the current batch */
    int d;
    int head; /* hook_head_index or -1 */
    int mode; /* 0 capture, 1 replace, 2 zero, 3 replace with `mean` */
    const float *mean;
    int skip_bos; /* leave position 0 untouched when replacing */
} hook_io;

int sae_hook_rw(lp_tensor *act, const lp_hook_info *info, void *user);
/* Run contexts [nb, T] with io on hook; logits [nb, T, V] when given (else stop after the hook's block). */
int sae_run_ctx(lp_call *call, lp_model *m, const int32_t *tok, int nb, int T, const char *hook, hook_io *io,
                float *logits);

#define SAE_DESC(nm, sum, hlp, prm, cp, fn)                                                                            \
    {                                                                                                                  \
        .struct_size = sizeof(lp_method_desc), .name = nm, .summary = sum, .help = hlp, .params = prm,                 \
        .n_params = sizeof prm / sizeof prm[0], .caps = cp, .run = fn                                                  \
    }

extern const lp_method_desc sae_method_harvest, sae_method_train, sae_method_encode, sae_method_evaluate,
    sae_method_compare, sae_method_dashboard, sae_method_auroc;

#endif
