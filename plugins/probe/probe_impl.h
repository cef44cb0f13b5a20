/* probe — the plugin's one private header: datasets, activation gathering, linear
 * probes (logistic / ridge / difference of means), evaluation with baselines, LEACE and
 * the direction files. Everything here has hidden visibility (the plugin is built with
 * -fvisibility=hidden); only loupe_plugin_abi and loupe_plugin_init are exported. */
#ifndef LOUPE_PROBE_IMPL_H
#define LOUPE_PROBE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "loupe/plugin.h"

/* ---- datasets (dataset.c) ---- */

/* One labelled example: a position in one of the dataset's texts. */
typedef struct pr_data {
    int n;              /* examples                                                     */
    int n_texts;
    char **text;        /* [n_texts]                                                    */
    int *tix;           /* [n] which text                                               */
    int *tok;           /* [n] token index (negative: from the end, -1 = last), or ...  */
    int *chr;           /* [n] ... a byte offset into the text (>= 0), else -1          */
    double *y;          /* [n] class index, or the target when continuous               */
    int n_classes;      /* 0: continuous targets                                        */
    char **class_names; /* [n_classes]                                                  */
} pr_data;

/* Load CSV (header with text,label[,position]) or JSONL ({"text", label_key, optional
 * "position" / "char" / "chars" / "probe_chars", numbers or arrays}). With `expand`
 * non-empty each object of the array line[expand] is one example ({label_key, "char" or
 * "position"}). continuous: labels are numbers kept as targets. Returns 0 or LP_E* with
 * a message in err. */
int pr_data_load(const char *path, const char *label_key, const char *expand, int continuous, pr_data *d,
                 char *err, size_t cap);
void pr_data_free(pr_data *d);

/* ---- activations (gather.c) ---- */

typedef struct pr_ctx {
    const lp_host_api *h;
    lp_call *call;
    lp_model *m;
    int d_model;
} pr_ctx;

/* Hook point names of the model matching pattern, in forward order; *names is
 * malloc'd (free each and the array). */
int pr_hooks_matching(const pr_ctx *x, const char *pattern, char ***names, int *n);
/* Features per position at a hook: d_model for residual-like hooks, d_mlp for the MLP's
 * pre/post, n_heads·d_head for q/k/v/z (flattened), 1 for norm scales; LP_EUNSUPPORTED
 * for attention patterns and scores. */
int pr_hook_width(const pr_ctx *x, const char *name);
/* Run every text of d once (right-padded batches) and copy the activation at each
 * example's position, for each hook, into X[h] ([d->n, pr_hook_width], malloc'd by
 * the caller). `edit` (may be NULL) is added to the run (e.g. an ablation). When kl is non
 * NULL a second, clean run is made and *kl gets the mean KL(clean || edited) of the
 * next-token distributions over all real positions. */
int pr_gather(const pr_ctx *x, const pr_data *d, char *const *hooks, int n_hooks, float **X, const lp_hooks *edit,
              double *kl);
/* Drop the examples of texts longer than the model's context (the texts stay, unused);
 * *n_dropped counts the texts. Fails only when nothing is left. */
int pr_data_drop_long(const pr_ctx *x, pr_data *d, int *n_dropped);
/* Token ids of text with the model's BOS rule and each token's byte start (shifted for
 * BOS: a BOS token gets start -1). *ids / *starts are malloc'd. */
int pr_encode(const pr_ctx *x, const char *text, int32_t **ids, int **starts, int *n);

/* ---- probes (logreg.c) ---- */

enum { PR_LOGISTIC = 0, PR_RIDGE, PR_MEAN_DIFF };

typedef struct pr_probe {
    int kind;
    int d;          /* features                                                    */
    int k;          /* output rows: n_classes (multinomial) or 1                   */
    int n_classes;  /* 0 for ridge                                                 */
    float *mu, *sd; /* [d] normalisation: z = (x - mu) / sd                        */
    float *W;       /* [k, d] weights on z                                         */
    float *b;       /* [k]                                                         */
    int iters, converged;
    double loss;
} pr_probe;

typedef struct pr_fit_opts {
    int kind;
    double C;       /* logistic: inverse regularisation (scikit-learn's C)         */
    double lambda;  /* ridge: L2 penalty (scikit-learn's alpha)                    */
    int normalize;  /* standardise features with the training rows' mean and std    */
    int max_iter;
    double tol;     /* gradient tolerance on the mean loss                          */
} pr_fit_opts;

pr_fit_opts pr_fit_opts_default(void);
/* Fit on rows [n_rows] of X [*, d] with targets y. 0 or LP_ENOMEM / LP_EINVAL. */
int pr_fit(pr_probe *p, const pr_fit_opts *o, const float *X, int d, const double *y, const int *rows, int n_rows,
           int n_classes);
void pr_probe_free(pr_probe *p);
/* Scores [n_rows, k] for rows of X (logits; ridge: the prediction). */
void pr_scores(const pr_probe *p, const float *X, const int *rows, int n_rows, float *out);
/* Predicted class (or value) of one score row. */
double pr_predict_row(const pr_probe *p, const float *score);
/* The unit direction in activation space (raw, not normalised) for class `c` (binary: c
 * ignored): W[c] / sd, normalised. dir [d]. */
void pr_direction(const pr_probe *p, int c, float *dir);

/* C = op(A) op(B), row-major (BLAS semantics, alpha 1, beta 0): the host's sgemm once
 * pr_set_sgemm has been called (at plugin init), else a plain double-accumulating loop
 * (so the numerics can be tested without a host). */
typedef void (*pr_sgemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                            int);
void pr_set_sgemm(pr_sgemm_fn f);
void pr_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);

/* L-BFGS on f(θ) with gradient; returns iterations used, *converged set. */
typedef double (*pr_objective)(const double *theta, double *grad, void *user);
int pr_lbfgs(pr_objective f, void *user, double *theta, int n, int max_iter, double tol, int *converged,
             double *fval);

/* Solve A x = B (A [n,n] SPD, B [n,m]) in place by Cholesky; returns 0 or LP_EINVAL. */
int pr_cholesky_solve(double *A, double *B, int n, int m);

/* ---- evaluation (eval.c) ---- */

typedef struct pr_metrics {
    double acc;      /* accuracy (classes) or R^2 (continuous)           */
    double auroc;    /* binary AUROC, macro one-vs-rest for more; NaN for continuous */
    double majority; /* majority-class accuracy (continuous: R^2 of the train mean) */
    int n_test;
} pr_metrics;

/* A fixed-seed assignment of texts to folds: fold[t] in 0..n_folds-1. folds <= 1 means
 * one train/test split with test_frac of the texts in fold 0 (the test fold). */
int *pr_split(int n_texts, int folds, double test_frac, uint64_t seed, int *n_folds);
/* Train on examples whose text is not in fold f, test on fold f; metrics averaged over
 * folds. probe_out (may be NULL) gets the probe of the last fold. */
int pr_evaluate(const pr_data *d, const float *X, int dim, const pr_fit_opts *o, const int *fold, int n_folds,
                pr_metrics *m, pr_probe *probe_out);
/* Class-label accuracy of a probe fitted on rows tr and tested on rows te, and the
 * training majority class's accuracy on te. */
int pr_accuracy_rows(const pr_data *d, const float *X, int dim, const pr_fit_opts *o, const int *tr, int ntr,
                     const int *te, int nte, double *acc, double *majority);
double pr_auroc(const float *score, const int *pos, int n);

/* ---- LEACE (leace.c) ---- */

typedef struct pr_eraser {
    int d, r;
    float *mu; /* [d]                                               */
    float *A;  /* [r, d] columns of Σ_xz (the concept's directions) */
    float *B;  /* [r, d] M Σ_xz^T Σ^-1: x' = x - A^T B (x - mu)     */
} pr_eraser;

/* Fit LEACE on rows of X with class labels y (n_classes >= 2). */
int pr_leace_fit(pr_eraser *e, const float *X, int d, const double *y, const int *rows, int n_rows, int n_classes);
/* Erase in place: x <- x - A^T B (x - mu), for n rows of X. */
void pr_leace_apply(const pr_eraser *e, float *X, int n);
void pr_eraser_free(pr_eraser *e);

/* ---- files (files.c): safetensors + JSON sidecar, written atomically ---- */

typedef struct pr_named {
    const char *name;
    int ndim;
    int64_t ne[2];
    const float *data;
} pr_named;

int pr_write_safetensors(const char *path, const pr_named *t, int n, char *err, size_t cap);
/* Read one named F32 tensor; *data malloc'd, *count its elements. */
int pr_read_tensor(const char *path, const char *name, float **data, int64_t *count, char *err, size_t cap);
/* Write text to path atomically (path.tmp + rename). */
int pr_write_text(const char *path, const char *text, char *err, size_t cap);

/* ---- shared by the methods (probe.c) ---- */

/* Whether an f32 activation is contiguous. */
int pr_contiguous(const lp_tensor *t);
/* A unit direction from a saved probe (tensor `tensor`, else "direction"); *norm_out
 * gets the stored vector's length. */
int pr_load_direction(const lp_host_api *h, lp_call *call, const char *path, const char *tensor, int d, float *out,
                      float *norm_out);
/* Unit mean difference (class 1 - class 0) of X over the training rows (all rows when
 * fold is NULL); *norm is its length. */
int pr_mean_diff(const pr_data *d, const int *fold, const float *X, int D, float *u, float *norm);
/* The mean difference at `hook` over the call's dataset (parameters dataset, label,
 * expand, seed, test_frac, folds). */
int pr_dataset_direction(lp_call *call, const lp_host_api *h, const char *hook, float *u, float *norm);

/* splitmix64 */
uint64_t pr_rand(uint64_t *s);

#endif
