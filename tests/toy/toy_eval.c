/* Measures what the bundled toy model must demonstrably do (issue: the bundled model
 * with planted mechanisms) with loupe's own engine, on the held-out evaluation sets in
 * models/toy/data/eval/:
 *   IOI top-1 accuracy and mean logit difference (IO − S); induction top-1 accuracy on
 *   the second copy of repeated random tokens vs the first; the best TransformerLens
 *   induction and previous-token head scores; fact recall; linear decodability of the
 *   passage mood and the bracket depth from each layer's residual stream (ridge
 *   classifier, held-out split) against a bag-of-current-token baseline (the token
 *   embedding).
 *   toy_eval MODEL_DIR EVAL_DIR [--json] [--check]
 * --check exits 1 when a figure misses the model card's threshold. */
#include <cjson/cJSON.h>
#include <math.h>

#include "../common/check.h"
#include "loupe/loupe.h"

typedef struct ctx {
    lp_model *m;
    lp_tokenizer *tok;
    const lp_config *c;
    const char *eval;
} ctx;

/* ---- data ---- */

static cJSON **read_jsonl(const char *dir, const char *name, int *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = slurp(path);
    *n = 0;
    if (!s) {
        fprintf(stderr, "toy_eval: cannot read %s\n", path);
        return NULL;
    }
    int cap = 64;
    cJSON **v = malloc((size_t)cap * sizeof *v);
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (!j)
            continue;
        if (*n == cap)
            v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[(*n)++] = j;
    }
    free(s);
    return v;
}

static void free_jsonl(cJSON **v, int n)
{
    for (int i = 0; i < n; i++)
        cJSON_Delete(v[i]);
    free(v);
}

static const char *jstr(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuestring; }

/* Ids of text with BOS; and the byte offset where each token starts. */
static int encode(ctx *x, const char *text, int32_t **ids, int **starts)
{
    size_t n;
    lp_error err = {0};
    if (lp_tokenizer_encode(x->tok, text, strlen(text), 1, ids, &n, &err)) {
        fprintf(stderr, "toy_eval: %s\n", err.msg);
        return -1;
    }
    if (starts) {
        *starts = malloc((n + 1) * sizeof **starts);
        int off = 0;
        for (size_t i = 0; i < n; i++) {
            (*starts)[i] = off;
            if (!lp_tokenizer_is_special(x->tok, (*ids)[i]))
                off += lp_tokenizer_token_bytes(x->tok, (*ids)[i], NULL, 0);
        }
        (*starts)[n] = off;
    }
    return (int)n;
}

/* Index of the token covering byte `ch`. */
static int token_at(const int *starts, int n, int ch)
{
    int t = 0;
    for (int i = 1; i < n; i++)
        if (starts[i] <= ch)
            t = i;
    return t;
}

static int32_t single_token(ctx *x, const char *s)
{
    int32_t *ids;
    size_t n;
    if (lp_tokenizer_encode(x->tok, s, strlen(s), 0, &ids, &n, NULL))
        return -1;
    int32_t id = n >= 1 ? ids[0] : -1;
    free(ids);
    return id;
}

/* Run prompts as one right-padded batch; last-position logits into out [n, V]. */
static void last_logits(ctx *x, char **texts, int n, float *out)
{
    int32_t **ids = malloc((size_t)n * sizeof *ids);
    int32_t *lens = malloc((size_t)n * sizeof *lens);
    int T = 0;
    for (int i = 0; i < n; i++) {
        lens[i] = encode(x, texts[i], &ids[i], NULL);
        T = lens[i] > T ? lens[i] : T;
    }
    int32_t *flat = calloc((size_t)n * T, sizeof *flat);
    for (int i = 0; i < n; i++)
        memcpy(flat + (size_t)i * T, ids[i], (size_t)lens[i] * 4);
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_LAST;
    o.logits_out = out;
    lp_batch b = {flat, n, T, lens};
    lp_error err = {0};
    if (lp_model_run(x->m, &b, &o, &err))
        fprintf(stderr, "toy_eval: %s\n", err.msg);
    for (int i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(lens);
    free(flat);
}

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

/* ---- IOI and facts ---- */

static void eval_ioi(ctx *x, double *acc, double *ld)
{
    int n;
    cJSON **v = read_jsonl(x->eval, "ioi.jsonl", &n);
    int V = x->c->d_vocab, hits = 0;
    double sum = 0;
    char **texts = malloc((size_t)n * sizeof *texts);
    for (int i = 0; i < n; i++)
        texts[i] = (char *)jstr(v[i], "prompt");
    float *lg = malloc((size_t)n * V * 4);
    last_logits(x, texts, n, lg);
    for (int i = 0; i < n; i++) {
        int io = single_token(x, jstr(v[i], "io")), s = single_token(x, jstr(v[i], "s"));
        const float *l = lg + (size_t)i * V;
        hits += argmax(l, V) == io;
        sum += l[io] - l[s];
    }
    *acc = (double)hits / n;
    *ld = sum / n;
    free(lg);
    free(texts);
    free_jsonl(v, n);
}

static double eval_facts(ctx *x)
{
    int n;
    cJSON **v = read_jsonl(x->eval, "facts.jsonl", &n);
    int V = x->c->d_vocab, hits = 0;
    char **texts = malloc((size_t)n * sizeof *texts);
    for (int i = 0; i < n; i++)
        texts[i] = (char *)jstr(v[i], "prompt");
    float *lg = malloc((size_t)n * V * 4);
    last_logits(x, texts, n, lg);
    for (int i = 0; i < n; i++)
        hits += argmax(lg + (size_t)i * V, V) == single_token(x, jstr(v[i], "answer"));
    free(lg);
    free(texts);
    free_jsonl(v, n);
    return (double)hits / n;
}

/* ---- induction: accuracy and head scores on [BOS] + R + R ---- */

static void eval_induction(ctx *x, double *acc2, double *acc1, float *ind, float *prev)
{
    int n;
    cJSON **v = read_jsonl(x->eval, "induction_tokens.jsonl", &n);
    const lp_config *c = x->c;
    int H = c->n_heads, L = c->n_layers, V = c->d_vocab;
    long h1 = 0, n1 = 0, h2 = 0, n2 = 0;
    memset(ind, 0, (size_t)L * H * sizeof *ind);
    memset(prev, 0, (size_t)L * H * sizeof *prev);
    lp_cache *cache = lp_cache_new();
    const char *pat[] = {"blocks.*.attn.hook_pattern"};
    lp_cache_set_filter(cache, pat, 1, NULL);
    for (int s = 0; s < n; s++) {
        int T;
        int32_t *ids = NULL;
        cJSON *a = cJSON_GetObjectItem(v[s], "ids");
        T = cJSON_GetArraySize(a);
        ids = malloc((size_t)T * 4);
        for (int i = 0; i < T; i++)
            ids[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
        int R = (int)cJSON_GetObjectItem(v[s], "len_R")->valuedouble;
        float *lg = malloc((size_t)T * V * 4);
        lp_run_opts o = lp_run_opts_default();
        o.logits = LP_LOGITS_ALL;
        o.logits_out = lg;
        o.cache = cache;
        lp_cache_reset(cache);
        lp_batch b = {ids, 1, T, NULL};
        lp_model_run(x->m, &b, &o, NULL);
        /* position p predicts p+1; first copy occupies 1..R, second R+1..2R */
        for (int p = 1; p < R; p++, n1++)
            h1 += argmax(lg + (size_t)p * V, V) == ids[p + 1];
        for (int p = R + 1; p < 2 * R; p++, n2++)
            h2 += argmax(lg + (size_t)p * V, V) == ids[p + 1];
        for (int l = 0; l < L; l++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blocks.%d.attn.hook_pattern", l);
            const float *P = lp_cache_entry(cache, lp_cache_find(cache, nm)).data; /* [1,H,T,T] */
            for (int h = 0; h < H; h++) {
                const float *Ph = P + (size_t)h * T * T;
                double si = 0, sp = 0;
                for (int q = R + 1; q <= 2 * R; q++) /* attend to the token after the earlier copy */
                    si += Ph[(size_t)q * T + (q - R + 1)];
                for (int q = 1; q < T; q++)
                    sp += Ph[(size_t)q * T + q - 1];
                ind[l * H + h] += (float)(si / R / n);
                prev[l * H + h] += (float)(sp / (T - 1) / n);
            }
        }
        free(lg);
        free(ids);
    }
    *acc1 = (double)h1 / n1;
    *acc2 = (double)h2 / n2;
    lp_cache_free(cache);
    free_jsonl(v, n);
}

/* ---- probes: ridge classifier on activations at labelled tokens ---- */

typedef struct probe_set {
    int n, cap, d, n_layers; /* layers: 0 = embedding baseline, 1..L = resid_post */
    float *X;                /* [n, n_layers, d] */
    int *y;
    int *group;              /* passage index, for a split that keeps passages apart */
} probe_set;

static void probe_add(probe_set *ps, const lp_cache *cache, int pos, int T, int label, int group)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 1024;
        ps->X = realloc(ps->X, (size_t)ps->cap * ps->n_layers * ps->d * sizeof(float));
        ps->y = realloc(ps->y, (size_t)ps->cap * sizeof(int));
        ps->group = realloc(ps->group, (size_t)ps->cap * sizeof(int));
    }
    float *row = ps->X + (size_t)ps->n * ps->n_layers * ps->d;
    for (int l = 0; l < ps->n_layers; l++) {
        char nm[64];
        if (l == 0)
            snprintf(nm, sizeof nm, "hook_embed");
        else
            snprintf(nm, sizeof nm, "blocks.%d.hook_resid_post", l - 1);
        const float *a = lp_cache_entry(cache, lp_cache_find(cache, nm)).data;
        memcpy(row + (size_t)l * ps->d, a + (size_t)pos * ps->d, (size_t)ps->d * sizeof(float));
    }
    (void)T;
    ps->y[ps->n] = label;
    ps->group[ps->n] = group;
    ps->n++;
}

/* Solve (A + lam I) w = b for symmetric positive definite A [d, d] by Cholesky, in place. */
static void chol_solve(double *A, double *B, int d, int k)
{
    for (int j = 0; j < d; j++) {
        double s = A[j * d + j];
        for (int p = 0; p < j; p++)
            s -= A[j * d + p] * A[j * d + p];
        A[j * d + j] = sqrt(s > 1e-12 ? s : 1e-12);
        for (int i = j + 1; i < d; i++) {
            double t = A[i * d + j];
            for (int p = 0; p < j; p++)
                t -= A[i * d + p] * A[j * d + p];
            A[i * d + j] = t / A[j * d + j];
        }
    }
    for (int c = 0; c < k; c++) {
        for (int i = 0; i < d; i++) { /* L y = b */
            double t = B[i * k + c];
            for (int p = 0; p < i; p++)
                t -= A[i * d + p] * B[p * k + c];
            B[i * k + c] = t / A[i * d + i];
        }
        for (int i = d - 1; i >= 0; i--) { /* L^T x = y */
            double t = B[i * k + c];
            for (int p = i + 1; p < d; p++)
                t -= A[p * d + i] * B[p * k + c];
            B[i * k + c] = t / A[i * d + i];
        }
    }
}

/* Held-out accuracy of a linear classifier on layer l's features: multinomial logistic
 * regression started from the one-vs-rest ridge solution. */
static double probe_accuracy(const probe_set *ps, int l, int n_classes)
{
    int d = ps->d, D = d + 1;
    double *mu = calloc((size_t)d, sizeof *mu), *sd = calloc((size_t)d, sizeof *sd);
    int n_train = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->group[i] % 5 != 0) {
            const float *x = ps->X + ((size_t)i * ps->n_layers + l) * d;
            for (int j = 0; j < d; j++) {
                mu[j] += x[j];
                sd[j] += (double)x[j] * x[j];
            }
            n_train++;
        }
    for (int j = 0; j < d; j++) {
        mu[j] /= n_train;
        sd[j] = sqrt(sd[j] / n_train - mu[j] * mu[j]) + 1e-6;
    }
    double *A = calloc((size_t)D * D, sizeof *A), *B = calloc((size_t)D * n_classes, sizeof *B);
    double *z = malloc((size_t)D * sizeof *z);
    for (int i = 0; i < ps->n; i++) {
        if (ps->group[i] % 5 == 0)
            continue;
        const float *x = ps->X + ((size_t)i * ps->n_layers + l) * d;
        for (int j = 0; j < d; j++)
            z[j] = (x[j] - mu[j]) / sd[j];
        z[d] = 1;
        for (int a = 0; a < D; a++) {
            for (int b = 0; b <= a; b++)
                A[a * D + b] += z[a] * z[b];
            for (int c = 0; c < n_classes; c++)
                B[a * n_classes + c] += z[a] * (ps->y[i] == c ? 1.0 : -1.0);
        }
    }
    for (int a = 0; a < D; a++)
        for (int b = 0; b < a; b++)
            A[b * D + a] = A[a * D + b];
    double lam = 1e-2 * n_train;
    for (int a = 0; a < d; a++)
        A[a * D + a] += lam;
    chol_solve(A, B, D, n_classes);
    /* Refine the ridge solution into a multinomial logistic regression (softmax, L2) by
     * full-batch gradient descent with momentum on the standardised features. */
    double *Zt = malloc((size_t)n_train * D * sizeof *Zt);
    int *yt = malloc((size_t)n_train * sizeof *yt), r = 0;
    for (int i = 0; i < ps->n; i++) {
        if (ps->group[i] % 5 == 0)
            continue;
        const float *x = ps->X + ((size_t)i * ps->n_layers + l) * d;
        for (int j = 0; j < d; j++)
            Zt[(size_t)r * D + j] = (x[j] - mu[j]) / sd[j];
        Zt[(size_t)r * D + d] = 1;
        yt[r++] = ps->y[i];
    }
    double *G = malloc((size_t)D * n_classes * sizeof *G), *M = calloc((size_t)D * n_classes, sizeof *M);
    double *pz = malloc((size_t)n_classes * sizeof *pz);
    for (int a = 0; a < D * n_classes; a++)
        B[a] *= 0.5;
    for (int it = 0; it < 120; it++) {
        memset(G, 0, (size_t)D * n_classes * sizeof *G);
        for (int i = 0; i < n_train; i++) {
            const double *zi = Zt + (size_t)i * D;
            double mx = -1e300, sum = 0;
            for (int c = 0; c < n_classes; c++) {
                double s = 0;
                for (int a = 0; a < D; a++)
                    s += zi[a] * B[a * n_classes + c];
                pz[c] = s;
                mx = s > mx ? s : mx;
            }
            for (int c = 0; c < n_classes; c++)
                sum += (pz[c] = exp(pz[c] - mx));
            for (int c = 0; c < n_classes; c++) {
                double gc = pz[c] / sum - (yt[i] == c);
                for (int a = 0; a < D; a++)
                    G[a * n_classes + c] += gc * zi[a];
            }
        }
        for (int a = 0; a < D * n_classes; a++) {
            double g = G[a] / n_train + (a / n_classes < d ? 1e-3 * B[a] : 0);
            M[a] = 0.9 * M[a] - 0.5 * g;
            B[a] += M[a];
        }
    }
    free(Zt);
    free(yt);
    free(G);
    free(M);
    free(pz);
    int hits = 0, n_test = 0;
    for (int i = 0; i < ps->n; i++) {
        if (ps->group[i] % 5 != 0)
            continue;
        const float *x = ps->X + ((size_t)i * ps->n_layers + l) * d;
        for (int j = 0; j < d; j++)
            z[j] = (x[j] - mu[j]) / sd[j];
        z[d] = 1;
        int best = 0;
        double bs = -1e300;
        for (int c = 0; c < n_classes; c++) {
            double s = 0;
            for (int a = 0; a < D; a++)
                s += z[a] * B[a * n_classes + c];
            if (s > bs) {
                bs = s;
                best = c;
            }
        }
        hits += best == ps->y[i];
        n_test++;
    }
    free(mu);
    free(sd);
    free(A);
    free(B);
    free(z);
    return n_test ? (double)hits / n_test : 0;
}

/* mood: probe at the periods after the first sentence; nesting: at each word's first token */
static void eval_probes(ctx *x, const char *file, int is_mood, double *acc /* [L+1] */)
{
    int n;
    cJSON **v = read_jsonl(x->eval, file, &n);
    const lp_config *c = x->c;
    probe_set ps = {0};
    ps.d = c->d_model;
    ps.n_layers = c->n_layers + 1;
    lp_cache *cache = lp_cache_new();
    const char *pat[] = {"hook_embed", "blocks.*.hook_resid_post"};
    lp_cache_set_filter(cache, pat, 2, NULL);
    for (int s = 0; s < n; s++) {
        int32_t *ids;
        int *starts;
        int T = encode(x, jstr(v[s], "text"), &ids, &starts);
        if (T <= 0 || T > c->n_ctx) {
            free(ids);
            free(starts);
            continue;
        }
        lp_run_opts o = lp_run_opts_default();
        o.cache = cache;
        lp_cache_reset(cache);
        lp_batch b = {ids, 1, T, NULL};
        lp_model_run(x->m, &b, &o, NULL);
        if (is_mood) {
            int label = (int)cJSON_GetObjectItem(v[s], "label")->valuedouble;
            const cJSON *pc;
            cJSON_ArrayForEach(pc, cJSON_GetObjectItem(v[s], "probe_chars"))
                probe_add(&ps, cache, token_at(starts, T, (int)pc->valuedouble), T, label, s);
        } else {
            const cJSON *w;
            cJSON_ArrayForEach(w, cJSON_GetObjectItem(v[s], "words"))
            {
                int ch = (int)cJSON_GetObjectItem(w, "char")->valuedouble;
                int depth = (int)cJSON_GetObjectItem(w, "depth")->valuedouble;
                probe_add(&ps, cache, token_at(starts, T, ch), T, depth, s);
            }
        }
        free(ids);
        free(starts);
    }
    int n_classes = 0;
    for (int i = 0; i < ps.n; i++)
        n_classes = ps.y[i] + 1 > n_classes ? ps.y[i] + 1 : n_classes;
    for (int l = 0; l < ps.n_layers; l++)
        acc[l] = probe_accuracy(&ps, l, n_classes);
    free(ps.X);
    free(ps.y);
    free(ps.group);
    lp_cache_free(cache);
    free_jsonl(v, n);
}

static int best_of(const double *a, int n)
{
    int b = 1;
    for (int i = 1; i < n; i++)
        if (a[i] > a[b])
            b = i;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: toy_eval MODEL_DIR EVAL_DIR [--json] [--check]\n");
        return 2;
    }
    int json = 0, chk = 0;
    for (int i = 3; i < argc; i++) {
        json |= !strcmp(argv[i], "--json");
        chk |= !strcmp(argv[i], "--check");
    }
    ctx x = {0};
    lp_error err = {0};
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", argv[1]);
    FILE *probe = fopen(cfg, "r");
    if (!probe) {
        printf("SKIP: no model at %s\n", argv[1]);
        return 77;
    }
    fclose(probe);
    if (lp_model_load(argv[1], &x.m, &err)) {
        fprintf(stderr, "toy_eval: %s\n", err.msg);
        return 2;
    }
    x.tok = lp_model_tokenizer(x.m);
    x.c = lp_model_config(x.m);
    x.eval = argv[2];
    int L = x.c->n_layers, H = x.c->n_heads;
    double ioi_acc, ioi_ld, ind2, ind1, facts;
    float *ind = malloc((size_t)L * H * 4), *prev = malloc((size_t)L * H * 4);
    double *mood = calloc((size_t)L + 1, sizeof *mood), *depth = calloc((size_t)L + 1, sizeof *depth);
    eval_ioi(&x, &ioi_acc, &ioi_ld);
    facts = eval_facts(&x);
    eval_induction(&x, &ind2, &ind1, ind, prev);
    eval_probes(&x, "mood.jsonl", 1, mood);
    eval_probes(&x, "nesting.jsonl", 0, depth);
    int bi = 0, bp = 0;
    for (int i = 1; i < L * H; i++) {
        bi = ind[i] > ind[bi] ? i : bi;
        bp = prev[i] > prev[bp] ? i : bp;
    }
    int bm = best_of(mood, L + 1), bd = best_of(depth, L + 1);
    if (json) {
        printf("{\"ioi_top1\": %.4f, \"ioi_logit_diff\": %.3f, \"induction_top1_second\": %.4f, "
               "\"induction_top1_first\": %.4f, \"induction_head\": [%d, %d, %.3f], \"prev_token_head\": [%d, %d, %.3f], "
               "\"facts_top1\": %.4f, \"mood_probe\": [%d, %.4f], \"mood_baseline\": %.4f, \"depth_probe\": [%d, %.4f], "
               "\"depth_baseline\": %.4f}\n",
               ioi_acc, ioi_ld, ind2, ind1, bi / H, bi % H, ind[bi], bp / H, bp % H, prev[bp], facts, bm - 1,
               mood[bm], mood[0], bd - 1, depth[bd], depth[0]);
    } else {
        printf("IOI: top-1 %.1f%%, mean logit diff (IO - S) %.2f\n", 100 * ioi_acc, ioi_ld);
        printf("induction: top-1 %.1f%% on the second copy, %.1f%% on the first\n", 100 * ind2, 100 * ind1);
        printf("heads (layer.head): best induction %d.%d score %.3f; best previous-token %d.%d score %.3f\n", bi / H,
               bi % H, ind[bi], bp / H, bp % H, prev[bp]);
        printf("induction scores:\n");
        for (int l = 0; l < L; l++) {
            printf("  L%d", l);
            for (int h = 0; h < H; h++)
                printf(" %5.2f", ind[l * H + h]);
            printf("\n");
        }
        printf("previous-token scores:\n");
        for (int l = 0; l < L; l++) {
            printf("  L%d", l);
            for (int h = 0; h < H; h++)
                printf(" %5.2f", prev[l * H + h]);
            printf("\n");
        }
        printf("facts: top-1 %.1f%%\n", 100 * facts);
        printf("mood probe accuracy by layer (embed, resid_post 0..%d):", L - 1);
        for (int l = 0; l <= L; l++)
            printf(" %.3f", mood[l]);
        printf("\nbracket depth probe accuracy by layer:");
        for (int l = 0; l <= L; l++)
            printf(" %.3f", depth[l]);
        printf("\n");
    }
    int rc = 0;
    if (chk) {
        rc |= !check(ioi_acc >= 0.90, "IOI top-1 %.3f >= 0.90", ioi_acc);
        rc |= !check(ioi_ld >= 2.0, "IOI mean logit diff %.2f >= 2", ioi_ld);
        rc |= !check(ind2 >= 0.80 && ind1 <= 0.2, "induction top-1 second copy %.3f >= 0.80, first copy %.3f near chance",
                     ind2, ind1);
        rc |= !check(ind[bi] >= 0.5, "an induction head (%d.%d) scores %.3f >= 0.5", bi / H, bi % H, ind[bi]);
        rc |= !check(prev[bp] >= 0.5, "a previous-token head (%d.%d) scores %.3f >= 0.5", bp / H, bp % H, prev[bp]);
        rc |= !check(facts >= 0.90, "fact recall %.3f >= 0.90", facts);
        rc |= !check(mood[bm] >= 0.95 && mood[0] <= mood[bm] - 0.2,
                     "mood decodable at resid_post %d: %.3f >= 0.95 vs current-token baseline %.3f", bm - 1, mood[bm],
                     mood[0]);
        rc |= !check(depth[bd] >= 0.90 && depth[0] <= depth[bd] - 0.2,
                     "bracket depth decodable at resid_post %d: %.3f >= 0.90 vs current-token baseline %.3f", bd - 1,
                     depth[bd], depth[0]);
        check_done();
    }
    free(ind);
    free(prev);
    free(mood);
    free(depth);
    lp_model_free(x.m);
    return rc ? 1 : 0;
}
