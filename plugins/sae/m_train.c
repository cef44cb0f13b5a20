/* sae — sae.train: an SAE trained on an activation store (sae_train.c). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glue.h"

static const lp_param_desc train_params[] = {
    {"store", LP_PARAM_STRING, NULL, "activation store folder (from sae.harvest)"},
    {"out", LP_PARAM_STRING, NULL, "where to write the SAE (SAELens folder); OUT/checkpoint holds the state"},
    {"hook", LP_PARAM_STRING, "", "which of the store's hooks (default: its first)"},
    {"arch", LP_PARAM_STRING, "topk", "standard (ReLU + L1), topk, or jumprelu (L0 via straight-through estimators)"},
    {"d_sae", LP_PARAM_INT, "0", "latents (0: 8 x d_in)"},
    {"k", LP_PARAM_INT, "32", "topk: active latents per token"},
    {"batch", LP_PARAM_INT, "4096", "tokens per step"},
    {"steps", LP_PARAM_INT, "0", "optimiser steps (0: one pass over the store)"},
    {"lr", LP_PARAM_FLOAT, "0.0004", "Adam learning rate"},
    {"lr_warmup_steps", LP_PARAM_INT, "0", "linear warm-up"},
    {"lr_decay_steps", LP_PARAM_INT, "-1", "linear decay to 0 over the last N steps (-1: 20% of steps)"},
    {"l1_coeff", LP_PARAM_FLOAT, "5", "standard: L1 weight (activations times decoder norms); jumprelu: L0 weight"},
    {"l1_warmup_steps", LP_PARAM_INT, "-1", "standard: L1 warm-up (-1: 5% of steps)"},
    {"bandwidth", LP_PARAM_FLOAT, "0.001", "jumprelu: straight-through estimator kernel width"},
    {"init_threshold", LP_PARAM_FLOAT, "0.001", "jumprelu: initial threshold"},
    {"aux_coeff", LP_PARAM_FLOAT, "0.03125", "topk: auxiliary loss weight for dead latents"},
    {"dead_tokens", LP_PARAM_INT, "1000000", "a latent is dead after this many tokens without firing"},
    {"seed", LP_PARAM_INT, "42", "initialisation and data order"},
    {"checkpoint_every", LP_PARAM_INT, "500", "steps between checkpoints (atomic; resumed automatically)"},
    {"log_every", LP_PARAM_INT, "50", "steps between CSV log rows"},
    {"resume", LP_PARAM_BOOL, "true", "resume from OUT/checkpoint when present"},
    {"threads", LP_PARAM_INT, "2", "threads for the sparse kernels"},
};

static const char train_help[] =
    "Train a sparse autoencoder on an activation store with Adam: ReLU with an L1 penalty on\n"
    "activations times decoder-row norms (arch=standard), or TopK with the auxiliary loss that\n"
    "revives dead latents (arch=topk, decoder rows kept at unit norm), or JumpReLU with an L0\n"
    "penalty trained through SAELens' straight-through estimators (arch=jumprelu, l1_coeff is\n"
    "the L0 weight, `bandwidth` the kernel width). Initialisation: decoder\n"
    "rows random (norm 0.1, 1 for topk), encoder = decoder transpose, b_dec = the data mean.\n"
    "Checkpoints (OUT/checkpoint/trainer_state.safetensors) are atomic; re-running the same\n"
    "command resumes and ends with exactly the weights an uninterrupted run would have.\n"
    "OUT/train_log.csv gets step, loss, mse, l1, aux, l0, fvu, dead, dense, lr.\n"
    "\n"
    "Results: step, loss, mse, l0, fvu, dead, dense, tokens_per_s, out; table `log`.\n";

typedef struct train_ctx {
    lp_call *call;
    const lp_host_api *h;
    store_sampler sm;
    FILE *log;
    int log_every;
    int64_t steps, B;
    double t0;
    int64_t step0;
    int table;
    train_metrics last;
} train_ctx;

static void train_data(void *u, int64_t step, int B, float *x)
{
    train_ctx *c = u;
    store_sampler_batch(&c->sm, step, B, x);
}

static int train_cb(void *u, const train_metrics *m)
{
    train_ctx *c = u;
    c->last = *m;
    if (c->log_every > 0 && (m->step % c->log_every == 0 || m->step == c->steps)) {
        if (c->log) {
            fprintf(c->log, "%lld,%.6g,%.6g,%.6g,%.6g,%.3f,%.6g,%d,%d,%.6g\n", (long long)m->step, m->loss, m->mse,
                    m->l1, m->aux, m->l0, m->fvu, m->dead, m->dense, m->lr);
            fflush(c->log);
        }
        lp_cell row[7] = {{1, (double)m->step, NULL}, {1, m->loss, NULL}, {1, m->mse, NULL},  {1, m->l0, NULL},
                          {1, m->fvu, NULL},          {1, m->dead, NULL}, {1, m->dense, NULL}};
        c->h->table_row(c->call, c->table, row);
    }
    double el = sae_now() - c->t0, tps = (m->step - c->step0) * (double)c->B / (el > 1e-9 ? el : 1e-9);
    char what[160];
    snprintf(what, sizeof what, "steps, loss %.4g L0 %.1f FVU %.3f dead %d, %.0f tok/s", m->loss, m->l0, m->fvu,
             m->dead, tps);
    return c->h->progress(c->call, (double)m->step, (double)c->steps, what);
}

static int train(lp_call *call, const lp_host_api *h)
{
    const char *sdir = h->param_str(call, "store"), *out = h->param_str(call, "out"),
               *hook = h->param_str(call, "hook"), *arch = h->param_str(call, "arch");
    char err[SAE_ERR_MAX];
    store st;
    int rc = store_open(sdir, hook, &st, err);
    if (rc)
        return h->error(call, rc, "%s", err);
    train_cfg c;
    train_cfg_default(&c);
    if (!strcmp(arch, "topk"))
        c.arch = SAE_TOPK;
    else if (!strcmp(arch, "standard") || !strcmp(arch, "relu"))
        c.arch = SAE_STANDARD;
    else if (!strcmp(arch, "jumprelu"))
        c.arch = SAE_JUMPRELU;
    else {
        store_close(&st);
        return h->error(call, LP_EINVAL, "arch must be standard, topk or jumprelu (got '%s')", arch);
    }
    c.d_sae = (int)h->param_int(call, "d_sae");
    if (c.d_sae <= 0)
        c.d_sae = 8 * st.d;
    c.k = (int)h->param_int(call, "k");
    c.batch = (int)h->param_int(call, "batch");
    c.steps = h->param_int(call, "steps");
    if (c.batch < 1) {
        store_close(&st);
        return h->error(call, LP_EINVAL, "batch must be positive");
    }
    if (c.steps <= 0)
        c.steps = st.n_tokens / c.batch > 0 ? st.n_tokens / c.batch : 1;
    c.lr = h->param_float(call, "lr");
    c.lr_warmup_steps = h->param_int(call, "lr_warmup_steps");
    c.lr_decay_steps = h->param_int(call, "lr_decay_steps");
    if (c.lr_decay_steps < 0)
        c.lr_decay_steps = c.steps / 5;
    c.l1_coeff = h->param_float(call, "l1_coeff");
    c.l1_warmup_steps = h->param_int(call, "l1_warmup_steps");
    if (c.l1_warmup_steps < 0)
        c.l1_warmup_steps = c.steps / 20;
    c.aux_coeff = h->param_float(call, "aux_coeff");
    c.bandwidth = h->param_float(call, "bandwidth");
    c.init_threshold = h->param_float(call, "init_threshold");
    c.dead_tokens = h->param_int(call, "dead_tokens");
    c.seed = (uint64_t)h->param_int(call, "seed");
    c.checkpoint_every = h->param_int(call, "checkpoint_every");
    c.log_every = h->param_int(call, "log_every");
    int th = (int)h->param_int(call, "threads");
    sae_threads = th < 1 ? 1 : th > 64 ? 64 : th;
    if (c.arch == SAE_TOPK && (c.k < 1 || c.k > c.d_sae)) {
        store_close(&st);
        return h->error(call, LP_EINVAL, "k must be in 1..d_sae");
    }
    /* data mean for b_dec */
    float *mean = calloc((size_t)st.d, sizeof(float)), *row = malloc(sizeof(float) * (size_t)st.d);
    double *acc = calloc((size_t)st.d, sizeof(double));
    int64_t nm = st.n_tokens < 65536 ? st.n_tokens : 65536;
    for (int64_t i = 0; i < nm; i++) {
        store_row(&st, i * (st.n_tokens / nm), row, NULL);
        for (int d = 0; d < st.d; d++)
            acc[d] += row[d];
    }
    for (int d = 0; d < st.d; d++)
        mean[d] = (float)(acc[d] / nm);
    free(acc);
    free(row);
    trainer *t = NULL;
    rc = trainer_new(&c, st.d, mean, &t, err);
    free(mean);
    if (rc) {
        store_close(&st);
        return h->error(call, rc, "%s", err);
    }
    train_ctx tc;
    memset(&tc, 0, sizeof tc);
    tc.call = call;
    tc.h = h;
    tc.log_every = (int)c.log_every;
    tc.steps = c.steps;
    tc.B = c.batch;
    store_sampler_init(&tc.sm, &st, c.seed);
    char ck[1200], logp[1200];
    snprintf(ck, sizeof ck, "%s/checkpoint", out);
    snprintf(logp, sizeof logp, "%s/train_log.csv", out);
    if ((rc = sae_mkdirs(out, err)))
        goto fail;
    if (!h->param_bool(call, "resume")) {
        char p[1300];
        snprintf(p, sizeof p, "%s/trainer_state.safetensors", ck);
        remove(p);
    }
    struct stat sb;
    int fresh = stat(logp, &sb) != 0;
    tc.log = fopen(logp, "a");
    if (tc.log && fresh)
        fprintf(tc.log, "step,loss,mse,l1,aux,l0,fvu,dead,dense,lr\n");
    const char *cols[] = {"step", "loss", "mse", "l0", "fvu", "dead", "dense"};
    tc.table = h->result_table(call, "log", 7, cols);
    tc.t0 = sae_now();
    /* the checkpoint's step is known after trainer_run loads it: take it from the first cb */
    {
        char p[1300];
        snprintf(p, sizeof p, "%s/trainer_state.safetensors", ck);
        if (stat(p, &sb) == 0 && trainer_load_ckpt(t, ck, err) == 0)
            tc.step0 = trainer_step(t);
    }
    rc = trainer_run(t, train_data, &tc, ck, train_cb, &tc, err);
    if (tc.log)
        fclose(tc.log);
    if (rc)
        goto fail;
    double el = sae_now() - tc.t0;
    sae s;
    if ((rc = trainer_export(t, &s, err)))
        goto fail;
    snprintf(s.hook_name, sizeof s.hook_name, "%s", st.hook);
    snprintf(s.model_name, sizeof s.model_name, "%s", st.model);
    s.prepend_bos = st.prepend_bos;
    s.context_size = st.context_size;
    rc = sae_save(&s, out, err);
    sae_free(&s);
    if (rc)
        goto fail;
    /* metrics of the last step (of this call) */
    train_metrics m = tc.last;
    h->result_scalar(call, "step", (double)trainer_step(t));
    if (m.step > 0) {
        h->result_scalar(call, "loss", m.loss);
        h->result_scalar(call, "mse", m.mse);
        h->result_scalar(call, "l0", m.l0);
        h->result_scalar(call, "fvu", m.fvu);
        h->result_scalar(call, "dead", m.dead);
        h->result_scalar(call, "dense", m.dense);
    }
    h->result_scalar(call, "tokens_per_s", el > 0 ? (trainer_step(t) - tc.step0) * (double)c.batch / el : 0);
    h->result_string(call, "out", out);
    store_sampler_free(&tc.sm);
    trainer_free(t);
    store_close(&st);
    return 0;
fail:
    store_sampler_free(&tc.sm);
    trainer_free(t);
    store_close(&st);
    return h->error(call, rc, "%s", err);
}

const lp_method_desc sae_method_train =
    SAE_DESC("train", "train a ReLU, TopK or JumpReLU sparse autoencoder on an activation store", train_help,
             train_params, LP_CAP_TRAINS | LP_CAP_WRITES_FILES, train);
