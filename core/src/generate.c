/* KV-cached generation: greedy, or temperature with optional top-k, seeded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

lp_gen_opts lp_gen_opts_default(void)
{
    lp_gen_opts o;
    memset(&o, 0, sizeof o);
    o.n_new = 20;
    return o;
}

/* splitmix64: a small, well-mixed, seedable generator. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *s) { return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

typedef struct cand {
    float v;
    int id;
} cand;

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return x->v > y->v ? -1 : x->v < y->v ? 1 : (x->id - y->id);
}

static int sample(const float *logits, int n, float temp, int top_k, uint64_t *rng, cand *tmp)
{
    if (temp <= 0)
        return argmax(logits, n);
    for (int i = 0; i < n; i++)
        tmp[i] = (cand){logits[i] / temp, i};
    int k = n;
    if (top_k > 0 && top_k < n) {
        qsort(tmp, (size_t)n, sizeof *tmp, cmp_cand);
        k = top_k;
    }
    float mx = -INFINITY;
    for (int i = 0; i < k; i++)
        mx = tmp[i].v > mx ? tmp[i].v : mx;
    double s = 0;
    for (int i = 0; i < k; i++)
        s += exp((double)tmp[i].v - mx);
    double u = next_unit(rng) * s, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += exp((double)tmp[i].v - mx);
        if (u < acc)
            return tmp[i].id;
    }
    return tmp[k - 1].id;
}

int lp_model_generate(lp_model *m, const int32_t *prompt, int n_prompt, const lp_gen_opts *opts, int32_t *out,
                      int *n_out, lp_error *err)
{
    *n_out = 0;
    if (n_prompt < 1)
        return lp_error_set(err, LP_EINVAL, "generation needs a prompt of at least one token");
    if (opts->n_new < 0)
        return lp_error_set(err, LP_EINVAL, "cannot generate %d tokens", opts->n_new);
    if (opts->temperature < 0)
        return lp_error_set(err, LP_EINVAL, "temperature must be >= 0");
    const lp_config *c = lp_model_config(m);
    int total = n_prompt + opts->n_new;
    if (c->learned_pos && total > c->n_ctx)
        return lp_error_set(err, LP_EINVAL, "prompt (%d) + new tokens (%d) exceed the context of %d", n_prompt,
                            opts->n_new, c->n_ctx);
    lp_kv *kv = lp_kv_new(m, total);
    float *logits = malloc((size_t)c->d_vocab * sizeof(float));
    cand *tmp = malloc((size_t)c->d_vocab * sizeof(cand));
    int rc = LP_OK;
    if (!kv || !logits || !tmp) {
        rc = lp_error_set(err, LP_ENOMEM, "out of memory");
        goto done;
    }
    uint64_t rng = opts->seed;
    lp_run_opts ro = lp_run_opts_default();
    ro.logits = LP_LOGITS_LAST;
    ro.logits_out = logits;
    ro.hooks = opts->hooks;
    ro.kv = kv;
    lp_batch b = {prompt, 1, n_prompt, NULL};
    for (int i = 0; i < opts->n_new; i++) {
        if ((rc = lp_model_run(m, &b, &ro, err)))
            break;
        int32_t id = sample(logits, c->d_vocab, opts->temperature, opts->top_k, &rng, tmp);
        out[(*n_out)++] = id;
        if (opts->on_token && opts->on_token(id, opts->user))
            break;
        if (opts->stop_at_eos && id == c->eos_token_id)
            break;
        b.tokens = &out[*n_out - 1];
        b.n_pos = 1;
    }
done:
    lp_kv_free(kv);
    free(logits);
    free(tmp);
    return rc;
}
