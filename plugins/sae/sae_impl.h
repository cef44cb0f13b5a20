/* sae — the plugin's private header: SAE weights and files (sae_io.c), minimal safetensors
 * reading/writing (st.c), encoding (sae_math.c), the activation store (store.c) and
 * training (sae_train.c). None of these files use the host table except through the
 * function pointers below, so tests compile them straight into an executable. */
#ifndef SAE_IMPL_H
#define SAE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define SAE_ERR_MAX 512

/* Error codes match LP_E* (loupe/error.h) so the plugin can pass them on. */
enum {
    SAE_OK = 0,
    SAE_EINVAL = -1,
    SAE_EIO = -2,
    SAE_ENOMEM = -3,
    SAE_EFORMAT = -4,
    SAE_ENOTFOUND = -5,
    SAE_EUNSUPPORTED = -6,
    SAE_ECANCELLED = -7
};

int sae_err(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* C[M,N] = alpha·op(A)·op(B) + beta·C, row-major (host->sgemm or cblas in tests). */
typedef void (*sae_sgemm_fn)(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc);
extern sae_sgemm_fn sae_sgemm;
extern int sae_threads; /* threads for the plugin's own kernels (default 2) */

/* Run fn(i, n, user) for i in 0..n-1 on sae_threads threads (i is the part index). */
void sae_parallel(int n_parts, void (*fn)(int part, int n_parts, void *user), void *user);

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */
typedef struct sae_rng {
    uint64_t s[4];
} sae_rng;
void sae_rng_seed(sae_rng *r, uint64_t seed);
uint64_t sae_rng_next(sae_rng *r);
double sae_rng_uniform(sae_rng *r); /* [0,1) */
double sae_rng_normal(sae_rng *r);

/* ---- safetensors (the subset SAEs need) ---- */
typedef struct st_entry {
    char name[128];
    int dtype; /* ST_F32 … */
    int ndim;
    int64_t ne[4];
    const void *data;
} st_entry;
enum { ST_F32 = 0, ST_F16, ST_BF16, ST_F64, ST_I32, ST_I64 };
typedef struct st_file {
    void *map;
    size_t size;
    int n;
    st_entry *e;
    char *meta_json; /* __metadata__ as JSON text, or NULL */
} st_file;
int st_open(const char *path, st_file *f, char *err);
void st_close(st_file *f);
const st_entry *st_find(const st_file *f, const char *name);
int64_t st_nelem(const st_entry *e);
/* Convert any float/int entry to f32 (n = nelem floats). */
void st_to_f32(const st_entry *e, float *out);

typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
/* data is borrowed until st_writer_finish; `as` is ST_F32, ST_F16 or (for int32 data) ST_I32 */
int st_writer_add(st_writer *w, const char *name, int src_dtype, const void *data, int ndim, const int64_t *ne, int as);
int st_writer_meta(st_writer *w, const char *key, const char *value);
/* Writes path atomically (path.tmp.PID, fsync, rename). */
int st_writer_finish(st_writer *w, const char *path, char *err);
void st_writer_free(st_writer *w);

float sae_f16_to_f32(uint16_t h);
uint16_t sae_f32_to_f16(float f);
float sae_bf16_to_f32(uint16_t h);

/* Write a whole file atomically (temp name + rename). */
int sae_write_atomic(const char *path, const void *data, size_t len, char *err);
char *sae_slurp(const char *path, size_t *len); /* NUL-terminated, malloc'd, or NULL */
int sae_mkdirs(const char *path, char *err);

/* ---- SAEs ---- */
typedef enum sae_arch { SAE_STANDARD = 0, SAE_GATED, SAE_JUMPRELU, SAE_TOPK } sae_arch;
const char *sae_arch_name(sae_arch a);

typedef struct sae {
    int d_in, d_sae;
    sae_arch arch;
    int k; /* topk */
    int apply_b_dec_to_input;
    char normalize[48]; /* normalize_activations: "none", "expected_average_only_in", … */
    char dtype[16];     /* as in cfg.json ("float32") */
    /* metadata */
    char hook_name[128];
    int hook_head_index; /* -1: none */
    char model_name[128];
    int prepend_bos;
    int context_size;
    /* weights, all f32, owned (or pointing into `mapped` when loaded in place) */
    float *W_enc;     /* [d_in, d_sae]  (SAELens layout)          */
    float *W_dec;     /* [d_sae, d_in]                              */
    float *b_enc;     /* [d_sae] (gated: b_gate)                    */
    float *b_dec;     /* [d_in]                                     */
    float *threshold; /* [d_sae] jumprelu, else NULL                */
    float *b_mag;     /* [d_sae] gated                              */
    float *r_mag;     /* [d_sae] gated                              */
    st_file mapped;   /* when loaded in place from an f32 file      */
    int owns;         /* weights malloc'd (else inside `mapped`)    */
    float *sparsity;  /* [d_sae] log10 feature density, or NULL     */
} sae;

int sae_alloc(sae *s, int d_in, int d_sae, sae_arch arch, char *err);
void sae_free(sae *s);
/* Load a SAELens folder (cfg.json + sae_weights.safetensors), the older flat config, or a
 * Gemma Scope folder with params.npz (or the npz itself). */
int sae_load(const char *path, sae *s, char *err);
/* Save in the SAELens 6.x layout (cfg.json, sae_weights.safetensors) atomically per file. */
int sae_save(const sae *s, const char *dir, char *err);

/* Encode rows of x [n, d_in] → feature activations f [n, d_sae] (dense). `scratch` may be
 * NULL. Follows SAELens: x - b_dec if apply_b_dec_to_input, pre = x·W_enc + b_enc, then the
 * architecture's nonlinearity. */
int sae_encode(const sae *s, const float *x, int n, float *f);
/* The k largest of v[0..n) where mask[i] (mask NULL: all), ties to the lower index: values
 * into tmp[0..k), indices into idx[0..k), in heap order. Returns how many (< k when fewer
 * qualify). One comparison per element for almost all of the row. */
int sae_select_topk(const float *v, const uint8_t *mask, int n, int k, float *tmp, int32_t *idx);
/* x̂ [n, d_in] from dense f [n, d_sae]. */
void sae_decode(const sae *s, const float *f, int n, float *xhat);
/* x̂ from the nonzeros of f only (f dense). */
void sae_decode_sparse(const sae *s, const float *f, int n, float *xhat);
/* x̂ of raw inputs x from f, the normalisation applied and undone as SAELens does. */
void sae_reconstruct(const sae *s, const float *x, const float *f, int n, float *xhat);

/* ---- the activation store ---- */
typedef struct store_meta {
    char model[256];
    char corpus[1024];
    int64_t corpus_bytes;
    int n_hooks;
    char hooks[8][128];
    int d;
    int context_size;
    int prepend_bos;
    int dtype; /* ST_F32 / ST_F16 */
    int64_t shard_tokens;
    int n_shards;
    int64_t n_tokens;
    int complete;
    int64_t *shard_n; /* [n_shards] tokens per shard */
} store_meta;
typedef struct store_shard {
    char file[64];
    int64_t n_tokens;
    st_file st;
    const st_entry *act;    /* [n_tokens, d] */
    const st_entry *tokens; /* [n_tokens] i32 */
} store_shard;

typedef struct store {
    char dir[1024];
    char hook[128];
    char model[256];
    int d;
    int context_size;
    int prepend_bos;
    int dtype; /* ST_F32 or ST_F16 */
    int64_t shard_tokens;
    int n_shards; /* complete shards */
    int complete; /* the whole corpus is harvested */
    int64_t n_tokens;
    store_shard *shards;
    int64_t *offsets; /* [n_shards+1] cumulative token offsets */
    store_meta meta;
} store;

/* Open a store for one hook (NULL or "": the store's only/first hook). */
int store_open(const char *dir, const char *hook, store *s, char *err);
/* Append a complete shard: writes shard_NNNNN.safetensors atomically (acts[h] [n, d] f32
 * for each hook name, tokens [n]) then the manifest (atomically). */
int store_meta_read(const char *dir, store_meta *m, char *err); /* SAE_ENOTFOUND when none */
int store_meta_write(const char *dir, const store_meta *m, char *err);
void store_meta_free(store_meta *m);
int store_write_shard(const char *dir, store_meta *m, const float *const *acts, const int32_t *tokens, int64_t n,
                      char *err);
void store_close(store *s);
/* Row i (global) as f32 into out [d]; token id into *tok (may be NULL). */
void store_row(const store *s, int64_t i, float *out, int32_t *tok);
/* Batch `step` of size B under a seeded shuffle (epoch permutations); rows into out [B, d].
 * perm/perm_epoch is the caller's cache (perm malloc'd of n_tokens, epoch -1 initially). */
typedef struct store_sampler {
    const store *st;
    uint64_t seed;
    int64_t *perm;
    int64_t epoch;
} store_sampler;
int store_sampler_init(store_sampler *sm, const store *st, uint64_t seed);
void store_sampler_free(store_sampler *sm);
void store_sampler_batch(store_sampler *sm, int64_t step, int B, float *out);

/* ---- training ---- */
typedef struct train_cfg {
    sae_arch arch;
    int d_sae;
    int k;     /* topk                                   */
    int batch; /* tokens per step                        */
    int64_t steps;
    double lr;
    double beta1, beta2, eps;
    int64_t lr_warmup_steps;
    int64_t lr_decay_steps; /* linear decay to 0 over the last N steps */
    double l1_coeff;        /* standard: L1 weight; jumprelu: L0 weight */
    int64_t l1_warmup_steps;
    double aux_coeff;       /* topk: auxiliary loss weight            */
    int64_t dead_tokens;    /* a latent is dead after this many tokens without firing */
    double dense_threshold; /* a latent is dense above this firing rate (metrics) */
    uint64_t seed;
    double init_norm; /* decoder row norm at init (standard)     */
    double bandwidth;      /* jumprelu: width of the straight-through estimators' kernel */
    double init_threshold; /* jumprelu: initial threshold */
    int apply_b_dec_to_input;
    int64_t checkpoint_every; /* steps; 0: only at the end             */
    int64_t log_every;
} train_cfg;
void train_cfg_default(train_cfg *c);

typedef struct train_metrics {
    int64_t step;
    double loss, mse, l1, aux, l0, fvu;
    int dead, dense;
    double lr, l1_coeff;
} train_metrics;

/* Data source: fills x [B, d] for step `step`. */
typedef void (*train_data_fn)(void *user, int64_t step, int B, float *x);
/* Progress/log: return non-zero to cancel (after the current step, a checkpoint is written). */
typedef int (*train_cb_fn)(void *user, const train_metrics *m);

typedef struct trainer trainer;
int trainer_new(const train_cfg *cfg, int d_in, const float *data_mean, trainer **out, char *err);
void trainer_free(trainer *t);
/* Run steps until cfg.steps (or cancel). ckpt_dir may be NULL; when set and a checkpoint
 * exists there, training resumes from it. */
int trainer_run(trainer *t, train_data_fn data, void *data_user, const char *ckpt_dir, train_cb_fn cb, void *cb_user,
                char *err);
int64_t trainer_step(const trainer *t);
/* Use a smaller batch from now on (B ≤ the batch the trainer was made for). */
int trainer_set_batch(trainer *t, int B);
/* One step on x [B, d_in]; fills metrics. */
void trainer_do_step(trainer *t, const float *x, train_metrics *m);
/* The SAE being trained, as a SAELens-layout sae (copied into *out; caller sae_free()s). */
int trainer_export(const trainer *t, sae *out, char *err);
/* Start from the weights of s (SAELens layout; same d_in/d_sae); Adam state reset. */
int trainer_import(trainer *t, const sae *s, char *err);
int trainer_save_ckpt(const trainer *t, const char *dir, char *err);
int trainer_load_ckpt(trainer *t, const char *dir, char *err);
/* Per-latent step of last firing (for dead counts); read-only view. */
const int64_t *trainer_last_fired(const trainer *t);
/* Start a new window for the dense-latent count (after each logged step). */
void trainer_reset_density(trainer *t);

#endif
