/* The SAE plugin's numeric core, compiled straight into this test (no host):
 *  - known answer: planted sparse features in superposition are recovered by trained TopK
 *    and ReLU SAEs (mean max cosine to the true directions), and two seeds agree;
 *  - a run resumed from a checkpoint ends bit-identical to an uninterrupted one;
 *  - encoding follows SAELens for every architecture (against a naive implementation);
 *  - save → load round trip; the activation store's shards, manifest and sampler.
 * LOUPE_SLOW_TESTS=1 runs the full-size planted problem (512 features in 64 dims).
 * Usage: test_sae_core TMPDIR */
#include <cblas.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "sae_impl.h"

static void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- planted features ---- */
typedef struct planted {
    int n_feat, d;
    double p;    /* probability each feature is active */
    float *dirs; /* [n_feat, d] unit */
    uint64_t seed;
} planted;

static void planted_init(planted *P, int n_feat, int d, double p, uint64_t seed)
{
    P->n_feat = n_feat, P->d = d, P->p = p, P->seed = seed;
    P->dirs = malloc(sizeof(float) * (size_t)n_feat * d);
    sae_rng r;
    sae_rng_seed(&r, seed);
    for (int i = 0; i < n_feat; i++) {
        double ss = 0;
        float *v = P->dirs + (size_t)i * d;
        for (int k = 0; k < d; k++) {
            v[k] = (float)sae_rng_normal(&r);
            ss += (double)v[k] * v[k];
        }
        for (int k = 0; k < d; k++)
            v[k] /= (float)sqrt(ss);
    }
}

static void planted_batch(void *u, int64_t step, int B, float *x)
{
    planted *P = u;
    sae_rng r;
    sae_rng_seed(&r, P->seed * 1000003u + (uint64_t)step + 17);
    memset(x, 0, sizeof(float) * (size_t)B * P->d);
    for (int b = 0; b < B; b++) {
        float *o = x + (size_t)b * P->d;
        for (int i = 0; i < P->n_feat; i++) {
            if (sae_rng_uniform(&r) >= P->p)
                continue;
            float a = (float)(0.5 + sae_rng_uniform(&r));
            const float *v = P->dirs + (size_t)i * P->d;
            for (int k = 0; k < P->d; k++)
                o[k] += a * v[k];
        }
    }
}

/* mean over rows of A of the max cosine with any row of B */
static double mmcs(const float *A, int na, const float *B, int nb, int d)
{
    double tot = 0;
    for (int i = 0; i < na; i++) {
        const float *a = A + (size_t)i * d;
        double na2 = 0, best = -1;
        for (int k = 0; k < d; k++)
            na2 += (double)a[k] * a[k];
        for (int j = 0; j < nb; j++) {
            const float *b = B + (size_t)j * d;
            double dot = 0, nb2 = 0;
            for (int k = 0; k < d; k++)
                dot += (double)a[k] * b[k], nb2 += (double)b[k] * b[k];
            double c = dot / sqrt(na2 * nb2 + 1e-30);
            if (c > best)
                best = c;
        }
        tot += best;
    }
    return tot / na;
}

static trainer *train_planted(planted *P, sae_arch arch, int d_sae, int k, int steps, int B, uint64_t seed,
                              const char *ckpt, double *secs, train_metrics *last)
{
    train_cfg c;
    train_cfg_default(&c);
    c.arch = arch;
    c.d_sae = d_sae;
    c.k = k;
    c.batch = B;
    c.steps = steps;
    c.seed = seed;
    c.lr = arch == SAE_TOPK ? 2e-3 : 1e-3;
    c.lr_decay_steps = steps / 5;
    c.l1_coeff = 1.0;
    c.l1_warmup_steps = steps / 10;
    c.dead_tokens = (int64_t)B * 20;
    if (getenv("SAE_AUX"))
        c.aux_coeff = atof(getenv("SAE_AUX"));
    c.log_every = 0;
    trainer *t;
    char err[SAE_ERR_MAX];
    if (trainer_new(&c, P->d, NULL, &t, err)) {
        printf("trainer_new: %s\n", err);
        return NULL;
    }
    float *x = malloc(sizeof(float) * (size_t)B * P->d);
    double t0 = now();
    for (int s = 0; s < steps; s++) {
        planted_batch(P, s, B, x);
        trainer_do_step(t, x, last);
    }
    *secs = now() - t0;
    free(x);
    (void)ckpt;
    return t;
}

static void test_planted(int slow)
{
    int n_feat = slow ? 512 : 192, d = slow ? 64 : 40, B = slow ? 1024 : 256, steps = slow ? 3000 : 2000;
    double p = slow ? 0.008 : 0.016;
    if (getenv("SAE_PLANTED")) /* n_feat,d,B,steps,p for experiments */
        sscanf(getenv("SAE_PLANTED"), "%d,%d,%d,%d,%lf", &n_feat, &d, &B, &steps, &p);
    planted P;
    planted_init(&P, n_feat, d, p, 7);
    printf("# planted: %d features in %d dims, each active with p=%.3f (~%.1f per sample), %d steps of %d\n", n_feat, d,
           p, n_feat * p, steps, B);
    int k = (int)(n_feat * p * 1.25 + 1);
    sae *sv[2];
    for (int seed = 0; seed < 2; seed++) {
        double secs;
        train_metrics m;
        trainer *t = train_planted(&P, SAE_TOPK, n_feat, k, steps, B, 100 + seed, NULL, &secs, &m);
        if (!check(t != NULL, "topk trainer"))
            return;
        sv[seed] = calloc(1, sizeof(sae));
        char err[SAE_ERR_MAX];
        trainer_export(t, sv[seed], err);
        double rec = mmcs(P.dirs, n_feat, sv[seed]->W_dec, n_feat, d);
        printf("# topk seed %d: k=%d, %.1fs, mse %.4f fvu %.4f l0 %.1f dead %d; recovery mmcs %.4f\n", seed, k, secs,
               m.mse, m.fvu, m.l0, m.dead, rec);
        check(rec >= 0.9, "topk seed %d recovers the planted directions: mean max cosine %.3f >= 0.9", seed, rec);
        trainer_free(t);
    }
    double agree = mmcs(sv[0]->W_dec, n_feat, sv[1]->W_dec, n_feat, d);
    check(agree >= 0.9, "two seeds agree: mean max cosine %.3f >= 0.9", agree);
    /* ReLU with L1 */
    double secs;
    train_metrics m;
    trainer *t = train_planted(&P, SAE_STANDARD, n_feat, 0, steps, B, 5, NULL, &secs, &m);
    sae rs;
    char err[SAE_ERR_MAX];
    trainer_export(t, &rs, err);
    double rec = mmcs(P.dirs, n_feat, rs.W_dec, n_feat, d);
    printf("# relu: %.1fs, mse %.4f fvu %.4f l0 %.1f dead %d; recovery mmcs %.4f\n", secs, m.mse, m.fvu, m.l0, m.dead,
           rec);
    check(rec >= 0.9, "relu SAE recovers the planted directions: mean max cosine %.3f >= 0.9", rec);
    trainer_free(t);
    sae_free(&rs);
    for (int i = 0; i < 2; i++)
        sae_free(sv[i]), free(sv[i]);
    free(P.dirs);
}

/* ---- resume: N steps straight == N/2, checkpoint, new trainer, resume ---- */
typedef struct stop_at {
    int64_t step;
} stop_at;

static int cb_stop(void *u, const train_metrics *m)
{
    return m->step >= ((stop_at *)u)->step;
}

static void test_resume(const char *tmp)
{
    static const sae_arch archs[] = {SAE_STANDARD, SAE_TOPK, SAE_JUMPRELU};
    for (int ai = 0; ai < 3; ai++) {
        sae_arch arch = archs[ai];
        const char *an = sae_arch_name(arch);
        planted P;
        planted_init(&P, 64, 16, 0.05, 3);
        train_cfg c;
        train_cfg_default(&c);
        c.arch = arch;
        c.bandwidth = 0.05;
        c.d_sae = 96;
        c.k = 6;
        c.batch = 300;
        c.steps = 40;
        c.lr_warmup_steps = 5;
        c.lr_decay_steps = 10;
        c.l1_warmup_steps = 8;
        c.dead_tokens = 900;
        c.checkpoint_every = 7;
        c.l1_coeff = 0.5;
        char err[SAE_ERR_MAX], d1[512], d2[512];
        snprintf(d1, sizeof d1, "%s/ck_straight_%d", tmp, arch);
        snprintf(d2, sizeof d2, "%s/ck_resumed_%d", tmp, arch);
        trainer *a, *b, *b2;
        trainer_new(&c, P.d, NULL, &a, err);
        int rc = trainer_run(a, planted_batch, &P, d1, NULL, NULL, err);
        check(rc == 0, "[%s] uninterrupted run (%s)", an, rc ? err : "ok");
        trainer_new(&c, P.d, NULL, &b, err);
        stop_at sa = {17};
        rc = trainer_run(b, planted_batch, &P, d2, cb_stop, &sa, err);
        check(rc == SAE_ECANCELLED && trainer_step(b) == 17, "[%s] interrupted at step 17 (%s)", an,
              err);
        trainer_free(b);
        trainer_new(&c, P.d, NULL, &b2, err);
        rc = trainer_run(b2, planted_batch, &P, d2, NULL, NULL, err);
        check(rc == 0 && trainer_step(b2) == 40, "[%s] resumed to step 40", an);
        sae sa_, sb_;
        trainer_export(a, &sa_, err);
        trainer_export(b2, &sb_, err);
        size_t n = (size_t)sa_.d_in * sa_.d_sae;
        int same = !memcmp(sa_.W_enc, sb_.W_enc, n * 4) && !memcmp(sa_.W_dec, sb_.W_dec, n * 4) &&
                   !memcmp(sa_.b_enc, sb_.b_enc, (size_t)sa_.d_sae * 4) &&
                   !memcmp(sa_.b_dec, sb_.b_dec, (size_t)sa_.d_in * 4) &&
                   (!sa_.threshold || !memcmp(sa_.threshold, sb_.threshold, (size_t)sa_.d_sae * 4));
        check(same, "[%s] resumed run is bit-identical to the uninterrupted one", an);
        sae_free(&sa_), sae_free(&sb_);
        trainer_free(a), trainer_free(b2);
        free(P.dirs);
    }
}

/* ---- encode vs naive, every architecture; save/load round trip ---- */
static void naive_encode(const sae *s, const float *x, float *f)
{
    int D = s->d_in, S = s->d_sae;
    double *pre = malloc(sizeof(double) * S), *lin = malloc(sizeof(double) * S);
    for (int i = 0; i < S; i++) {
        double a = 0;
        for (int d = 0; d < D; d++)
            a += (double)(x[d] - (s->apply_b_dec_to_input ? s->b_dec[d] : 0)) * s->W_enc[(size_t)d * S + i];
        lin[i] = a;
        pre[i] = a + s->b_enc[i];
    }
    for (int i = 0; i < S; i++) {
        double v = pre[i];
        if (s->arch == SAE_STANDARD)
            f[i] = (float)(v > 0 ? v : 0);
        else if (s->arch == SAE_JUMPRELU)
            f[i] = (float)(v > s->threshold[i] && v > 0 ? v : 0);
        else if (s->arch == SAE_GATED) {
            double mag = lin[i] * exp(s->r_mag[i]) + s->b_mag[i];
            f[i] = (float)(v > 0 ? (mag > 0 ? mag : 0) : 0);
        } else {
            int above = 0;
            for (int j = 0; j < S; j++)
                above += pre[j] > v;
            f[i] = above < s->k && v > 0 ? (float)v : 0;
        }
    }
    free(pre), free(lin);
}

static void test_encode_io(const char *tmp)
{
    for (int arch = 0; arch < 4; arch++) {
        sae s;
        char err[SAE_ERR_MAX];
        int D = 24, S = 80, n = 7;
        sae_alloc(&s, D, S, (sae_arch)arch, err);
        s.k = 9;
        s.apply_b_dec_to_input = arch != SAE_JUMPRELU;
        snprintf(s.hook_name, sizeof s.hook_name, "blocks.1.hook_resid_pre");
        snprintf(s.model_name, sizeof s.model_name, "toy");
        sae_rng r;
        sae_rng_seed(&r, 11 + arch);
        for (int i = 0; i < D * S; i++)
            s.W_enc[i] = (float)sae_rng_normal(&r) * 0.3f, s.W_dec[i] = (float)sae_rng_normal(&r) * 0.3f;
        for (int i = 0; i < S; i++) {
            s.b_enc[i] = (float)sae_rng_normal(&r) * 0.2f;
            if (s.threshold)
                s.threshold[i] = (float)sae_rng_uniform(&r) * 0.3f;
            if (s.b_mag)
                s.b_mag[i] = (float)sae_rng_normal(&r) * 0.2f, s.r_mag[i] = (float)sae_rng_normal(&r) * 0.2f;
        }
        for (int d = 0; d < D; d++)
            s.b_dec[d] = (float)sae_rng_normal(&r) * 0.1f;
        float *x = malloc(sizeof(float) * n * D), *f = malloc(sizeof(float) * n * S), *fr = malloc(sizeof(float) * S);
        for (int i = 0; i < n * D; i++)
            x[i] = (float)sae_rng_normal(&r);
        sae_encode(&s, x, n, f);
        double worst = 0;
        int nz = 0;
        for (int row = 0; row < n; row++) {
            naive_encode(&s, x + row * D, fr);
            for (int i = 0; i < S; i++) {
                double dlt = fabs(fr[i] - f[row * S + i]);
                if (dlt > worst)
                    worst = dlt;
                nz += f[row * S + i] != 0;
            }
        }
        check(worst < 1e-4 && nz > 0, "[%s] encode matches the naive SAELens formula (max diff %.2g, %d active)",
              sae_arch_name(s.arch), worst, nz);
        char dir[512];
        snprintf(dir, sizeof dir, "%s/sae_%s", tmp, sae_arch_name(s.arch));
        int rc = sae_save(&s, dir, err);
        sae l;
        if (check(rc == 0, "[%s] save (%s)", sae_arch_name(s.arch), rc ? err : "ok") &&
            check(sae_load(dir, &l, err) == 0, "[%s] load back (%s)", sae_arch_name(s.arch), err)) {
            float *f2 = malloc(sizeof(float) * n * S);
            sae_encode(&l, x, n, f2);
            check(l.arch == s.arch && l.k == (s.arch == SAE_TOPK ? 9 : l.k) && !strcmp(l.hook_name, s.hook_name) &&
                      l.apply_b_dec_to_input == s.apply_b_dec_to_input && !memcmp(f, f2, sizeof(float) * n * S),
                  "[%s] loaded SAE has the same config and identical encodings", sae_arch_name(s.arch));
            free(f2);
            sae_free(&l);
        }
        free(x), free(f), free(fr);
        sae_free(&s);
    }
    /* clear errors */
    char err[SAE_ERR_MAX], dir[512], path[600];
    sae l;
    snprintf(dir, sizeof dir, "%s/sae_bad", tmp);
    sae_mkdirs(dir, err);
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    const char *cfg = "{\"d_in\": 4, \"d_sae\": 8, \"architecture\": \"matryoshka\"}";
    sae_write_atomic(path, cfg, strlen(cfg), err);
    check(sae_load(dir, &l, err) == SAE_EUNSUPPORTED && strstr(err, "matryoshka"), "unknown architecture: %s", err);
    cfg = "{\"d_in\": 4, \"d_sae\": 8, \"hook_point\": \"blocks.0.hook_resid_pre\", \"activation_fn_str\": \"topk\","
          " \"activation_fn_kwargs\": {\"k\": 3}, \"normalize_activations\": false}";
    sae_write_atomic(path, cfg, strlen(cfg), err);
    int rc = sae_load(dir, &l, err);
    check(rc == SAE_ENOTFOUND && strstr(err, "sae_weights.safetensors"), "flat config parsed, missing weights: %s",
          err);
    /* missing tensor */
    st_writer *w = st_writer_new();
    float z[32] = {0};
    int64_t ne[2] = {4, 8};
    st_writer_add(w, "W_enc", ST_F32, z, 2, ne, ST_F32);
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    st_writer_finish(w, path, err);
    st_writer_free(w);
    rc = sae_load(dir, &l, err);
    check(rc == SAE_ENOTFOUND && strstr(err, "W_dec"), "missing tensor named: %s", err);
}

static void test_store(const char *tmp)
{
    char dir[512], err[SAE_ERR_MAX];
    snprintf(dir, sizeof dir, "%s/store", tmp);
    sae_mkdirs(dir, err);
    store_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.model, sizeof m.model, "synthetic");
    m.n_hooks = 1;
    snprintf(m.hooks[0], sizeof m.hooks[0], "blocks.0.hook_resid_pre");
    m.d = 5, m.context_size = 4, m.shard_tokens = 12, m.dtype = ST_F16;
    float a[12 * 5];
    int32_t tok[12];
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 12; i++) {
            tok[i] = s * 12 + i;
            for (int d = 0; d < 5; d++)
                a[i * 5 + d] = (float)(s * 12 + i) + d * 0.25f;
        }
        const float *acts[1] = {a};
        check(store_write_shard(dir, &m, acts, tok, 12, err) == 0, "write shard %d", s);
    }
    store st;
    int rc = store_open(dir, NULL, &st, err);
    if (!check(rc == 0 && st.n_tokens == 36 && st.n_shards == 3, "store opens: 3 shards, 36 tokens (%s)", err))
        return;
    float row[5];
    int32_t t;
    store_row(&st, 29, row, &t);
    check(t == 29 && row[0] == 29.0f && row[4] == 30.0f, "row 29 (f16 stored) reads back");
    store_sampler sm;
    store_sampler_init(&sm, &st, 5);
    float bt[10 * 5];
    int seen[36] = {0}, ok = 1;
    for (int step = 0; step < 36 / 4 * 2; step++) { /* two epochs of batch 4 (36/4 = 9 steps) */
        store_sampler_batch(&sm, step, 4, bt);
        for (int b = 0; b < 4; b++) {
            int id = (int)bt[b * 5];
            ok &= id >= 0 && id < 36;
            if (ok)
                seen[id]++;
        }
    }
    for (int i = 0; i < 36; i++)
        ok &= seen[i] == 2;
    check(ok, "shuffled sampling visits every row once per epoch");
    store_sampler_free(&sm);
    store_close(&st);
    store_meta m2;
    check(store_meta_read(dir, &m2, err) == 0 && m2.n_shards == 3 && m2.n_tokens == 36, "manifest lists 3 shards");
    store_meta_free(&m2);
    store_meta_free(&m);
}

int main(int argc, char **argv)
{
    const char *tmp = argc > 1 ? argv[1] : "/tmp";
    sae_sgemm = blas_sgemm;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sae_core_%d", tmp, (int)getpid());
    char err[SAE_ERR_MAX];
    sae_mkdirs(dir, err);
    const char *slow = getenv("LOUPE_SLOW_TESTS");
    test_encode_io(dir);
    test_store(dir);
    test_resume(dir);
    test_planted(slow && *slow && strcmp(slow, "0"));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return check_done();
}
