/* probe.steer — add alpha × a concept direction at a hook (every position) while
 * generating, for each alpha of a list, and count how often given word lists appear in
 * the continuations. The direction is a dataset's difference of class means at the
 * hook (class 1 minus class 0; alpha = 1 moves an activation by that whole difference)
 * or a saved probe (its "mean_diff" vector when stored, else its unit "direction").
 * Generation re-runs the whole sequence each step (the host table has no KV cache):
 * fine for the small models probes are trained on. The same seed per sample is used for
 * every alpha, so rows differ only by the steering. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_impl.h"

const lp_param_desc pr_steer_params[] = {
    {"prompt", LP_PARAM_TEXT, NULL, "the text to continue"},
    {"hook", LP_PARAM_HOOK, NULL, "where the direction is added (e.g. blocks.1.hook_resid_post)"},
    {"direction", LP_PARAM_STRING, "", "a saved probe (PATH or PATH.json); else build it from dataset"},
    {"dataset", LP_PARAM_STRING, "", "labelled data whose mean difference (class 1 - class 0) at hook is the direction"},
    {"label", LP_PARAM_STRING, "label", "the label's key or column"},
    {"expand", LP_PARAM_STRING, "", "JSONL: an array key whose objects are the examples"},
    {"seed", LP_PARAM_INT, "0", "sampling seed (sample i uses seed + i for every alpha)"},
    {"test_frac", LP_PARAM_FLOAT, "0.2", "unused by steer (the direction uses every example)"},
    {"folds", LP_PARAM_INT, "0", "unused by steer"},
    {"alphas", LP_PARAM_STRING, "-4,-2,0,2,4", "comma list of multipliers"},
    {"n", LP_PARAM_INT, "40", "tokens to generate"},
    {"samples", LP_PARAM_INT, "4", "continuations per alpha (one batch)"},
    {"temperature", LP_PARAM_FLOAT, "0.8", "0: greedy"},
    {"top_k", LP_PARAM_INT, "0", "sample from the k most likely tokens (0: all)"},
    {"pos_words", LP_PARAM_STRING, "", "comma list of words counted as the concept's class-1 side"},
    {"neg_words", LP_PARAM_STRING, "", "comma list of words counted as the class-0 side"},
};
const int pr_steer_n_params = (int)(sizeof pr_steer_params / sizeof pr_steer_params[0]);

const char pr_steer_help[] =
    "Generate n tokens after `prompt` with alpha x v added to the activation at `hook` at\n"
    "every position, for each alpha in `alphas` (v: the mean difference of the dataset's two\n"
    "classes at hook, or a saved probe's mean_diff / direction). With pos_words / neg_words,\n"
    "count whole words of the continuations in each list.\n"
    "\n"
    "Results:\n"
    "  generations   table: alpha, sample, text (the continuation only)\n"
    "  shares        table: alpha, pos_share, neg_share, balance (pos / (pos + neg)), words\n"
    "  pos_share     [alpha] share of continuation words in pos_words; neg_share likewise\n"
    "  direction_norm  the length of v\n";

typedef struct steer_hook {
    const float *v; /* [d] alpha * norm * u */
    int d;
} steer_hook;

static int add_hook(lp_tensor *act, const lp_hook_info *info, void *user)
{
    const steer_hook *s = user;
    if (act->dtype != LP_F32 || act->ne[act->ndim - 1] != s->d || !pr_contiguous(act)) {
        snprintf(info->err->msg, sizeof info->err->msg, "%s is not a contiguous [.., %d] f32 activation", info->name,
                 s->d);
        return info->err->code = LP_EUNSUPPORTED;
    }
    int64_t rows = 1;
    for (int k = 0; k < act->ndim - 1; k++)
        rows *= act->ne[k];
    float *x = act->data;
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < s->d; j++)
            x[r * s->d + j] += s->v[j];
    return 0;
}

/* words of text in a comma list (case-insensitive, letters only) */
static int in_list(const char *list, const char *w, size_t n)
{
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *f = e;
        while (f > p && f[-1] == ' ')
            f--;
        if ((size_t)(f - p) == n && !strncasecmp(p, w, n))
            return 1;
        p = e;
    }
    return 0;
}

static void count_words(const char *text, const char *pos, const char *neg, long *np, long *nn, long *nw)
{
    const char *p = text;
    while (*p) {
        while (*p && !isalpha((unsigned char)*p))
            p++;
        const char *e = p;
        while (*e && isalpha((unsigned char)*e))
            e++;
        if (e > p) {
            (*nw)++;
            *np += in_list(pos, p, (size_t)(e - p));
            *nn += in_list(neg, p, (size_t)(e - p));
        }
        p = e;
    }
}

/* invalid UTF-8 (a character cut by the token budget, or bytes the model made up)
 * becomes '?', so tables and JSON stay text */
static void utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        int ok = n > 0 && !(n == 2 && *p < 0xc2);
        for (int k = 1; ok && k < n; k++)
            ok = (p[k] & 0xc0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

static int sample_token(const float *z, int V, double temp, int top_k, uint64_t *rng, double *pbuf)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best])
            best = v;
    if (!(temp > 0))
        return best;
    double thr = -INFINITY;
    if (top_k > 0 && top_k < V) { /* k-th largest by repeated max (k is small) */
        float prev = INFINITY;
        int taken = 0;
        while (taken < top_k) {
            float mx = -INFINITY;
            int cnt = 0;
            for (int v = 0; v < V; v++)
                if (z[v] < prev && z[v] > mx)
                    mx = z[v];
            for (int v = 0; v < V; v++)
                cnt += z[v] == mx;
            taken += cnt ? cnt : top_k;
            prev = mx;
        }
        thr = prev;
    }
    double s = 0;
    for (int v = 0; v < V; v++) {
        pbuf[v] = z[v] >= thr ? exp((z[v] - z[best]) / temp) : 0;
        s += pbuf[v];
    }
    double r = (double)(pr_rand(rng) >> 11) / 9007199254740992.0 * s;
    for (int v = 0; v < V; v++) {
        r -= pbuf[v];
        if (r <= 0 && pbuf[v] > 0)
            return v;
    }
    return best;
}

int pr_steer_run(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = h->model_config(m);
    const int V = cfg->d_vocab;
    int T0;
    const int32_t *prompt = h->param_tokens(call, "prompt", &T0);
    int n_new = (int)h->param_int(call, "n"), S = (int)h->param_int(call, "samples"), top_k = (int)h->param_int(call, "top_k");
    double temp = h->param_float(call, "temperature");
    if (n_new < 1 || S < 1 || S > 256 || top_k < 0 || temp < 0)
        return h->error(call, LP_EINVAL, "n >= 1, 1 <= samples <= 256, top_k >= 0 and temperature >= 0");
    if (T0 < 1)
        return h->error(call, LP_EINVAL, "the prompt is empty");
    if (T0 + n_new > cfg->n_ctx)
        n_new = cfg->n_ctx - T0;
    if (n_new < 1)
        return h->error(call, LP_EINVAL, "the prompt fills the model's context (%d)", cfg->n_ctx);
    /* alphas */
    double alphas[64];
    int na = 0;
    const char *p = h->param_str(call, "alphas");
    while (*p && na < 64) {
        char *e;
        double a = strtod(p, &e);
        if (e == p || !isfinite(a))
            return h->error(call, LP_EINVAL, "alphas: '%s' is not a comma list of numbers", h->param_str(call, "alphas"));
        alphas[na++] = a;
        p = e;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (!na)
        return h->error(call, LP_EINVAL, "alphas: give at least one");
    const char *hook = h->param_str(call, "hook");
    pr_ctx x = {h, call, m, cfg->d_model};
    const int D = pr_hook_width(&x, hook);
    if (D < 1)
        return h->error(call, LP_EUNSUPPORTED, "%s has no per-position vector to steer", hook);
    float *u = malloc(sizeof(float) * (size_t)D), *v = malloc(sizeof(float) * (size_t)D), norm = 1;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)S * cfg->n_ctx);
    float *lg = malloc(sizeof(float) * (size_t)S * V);
    double *pbuf = malloc(sizeof(double) * (size_t)V);
    char *text = malloc((size_t)n_new * 64 + 1);
    lp_hooks *hk = h->hooks_new();
    int rc = 0;
    long *cnt = calloc((size_t)na * 3, sizeof(long));
    if (!u || !v || !tok || !lg || !pbuf || !text || !hk || !cnt) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    const char *dir = h->param_str(call, "direction"), *ds = h->param_str(call, "dataset");
    if (*dir)
        rc = pr_load_direction(h, call, dir, "mean_diff", D, u, &norm);
    else if (*ds)
        rc = pr_dataset_direction(call, h, hook, u, &norm);
    else
        rc = h->error(call, LP_EINVAL, "give direction=FILE or dataset=FILE");
    if (rc)
        goto out;
    steer_hook sh = {v, D};
    lp_error err = {0};
    if ((rc = h->hooks_add(hk, hook, add_hook, &sh, &err))) {
        rc = h->error(call, rc, "%s", err.msg);
        goto out;
    }
    const char *gcols[] = {"alpha", "sample", "text"};
    int tg = h->result_table(call, "generations", 3, gcols);
    if (tg < 0) {
        rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        goto out;
    }
    const char *pw = h->param_str(call, "pos_words"), *nw = h->param_str(call, "neg_words");
    uint64_t seed = (uint64_t)h->param_int(call, "seed");
    for (int a = 0; a < na; a++) {
        for (int j = 0; j < D; j++)
            v[j] = (float)(alphas[a] * norm * u[j]);
        uint64_t rng[256];
        for (int sidx = 0; sidx < S; sidx++) {
            rng[sidx] = seed + (uint64_t)sidx * 0x9e3779b97f4a7c15ull;
            memcpy(tok + (size_t)sidx * cfg->n_ctx, prompt, sizeof(int32_t) * (size_t)T0);
        }
        /* the batch is [S, T] with row stride n_ctx: compact into a [S, T] copy per step */
        int32_t *cur = malloc(sizeof(int32_t) * (size_t)S * cfg->n_ctx);
        if (!cur) {
            rc = h->error(call, LP_ENOMEM, "out of memory");
            goto out;
        }
        for (int st = 0; st < n_new; st++) {
            if (h->progress(call, a * n_new + st, na * n_new, "tokens")) {
                free(cur);
                rc = h->error(call, LP_ECANCELLED, "cancelled at alpha %g", alphas[a]);
                goto out;
            }
            int T = T0 + st;
            for (int sidx = 0; sidx < S; sidx++)
                memcpy(cur + (size_t)sidx * T, tok + (size_t)sidx * cfg->n_ctx, sizeof(int32_t) * (size_t)T);
            lp_batch b = {.tokens = cur, .n_batch = S, .n_pos = T, .lengths = NULL};
            lp_run_opts o;
            memset(&o, 0, sizeof o);
            o.logits = LP_LOGITS_LAST;
            o.logits_out = lg;
            o.hooks = alphas[a] != 0 ? hk : NULL;
            if ((rc = h->model_run(m, &b, &o, &err))) {
                free(cur);
                rc = h->error(call, rc, "%s", err.msg);
                goto out;
            }
            for (int sidx = 0; sidx < S; sidx++)
                tok[(size_t)sidx * cfg->n_ctx + T] = sample_token(lg + (size_t)sidx * V, V, temp, top_k, &rng[sidx], pbuf);
        }
        free(cur);
        for (int sidx = 0; sidx < S; sidx++) {
            size_t k = 0;
            for (int t = T0; t < T0 + n_new; t++) {
                int32_t id = tok[(size_t)sidx * cfg->n_ctx + t];
                if (id == cfg->eos_token_id && cfg->eos_token_id >= 0)
                    break; /* a document ends: count only the continuation */
                char buf[64];
                int nb = h->token_bytes(m, id, buf, sizeof buf);
                if (nb > (int)sizeof buf)
                    nb = (int)sizeof buf;
                for (int q = 0; q < nb; q++)
                    text[k++] = buf[q] ? buf[q] : ' ';
            }
            text[k] = 0;
            utf8_sanitize(text);
            count_words(text, pw, nw, &cnt[a * 3], &cnt[a * 3 + 1], &cnt[a * 3 + 2]);
            lp_cell row[3] = {{1, alphas[a], NULL}, {1, sidx, NULL}, {0, 0, text}};
            h->table_row(call, tg, row);
        }
    }
    const char *scols[] = {"alpha", "pos_share", "neg_share", "balance", "words"};
    int ts = h->result_table(call, "shares", 5, scols);
    int64_t ne[1] = {na};
    lp_tensor tp = h->result_tensor(call, "pos_share", 1, ne, "alpha");
    lp_tensor tn = h->result_tensor(call, "neg_share", 1, ne, "alpha");
    lp_tensor ta = h->result_tensor(call, "alphas", 1, ne, "alpha");
    if (ts < 0 || !tp.data || !tn.data || !ta.data) {
        rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        goto out;
    }
    for (int a = 0; a < na; a++) {
        double w = cnt[a * 3 + 2] ? (double)cnt[a * 3 + 2] : 1;
        double ps = cnt[a * 3] / w, ns = cnt[a * 3 + 1] / w;
        double bal = cnt[a * 3] + cnt[a * 3 + 1] ? (double)cnt[a * 3] / (double)(cnt[a * 3] + cnt[a * 3 + 1]) : NAN;
        lp_cell row[5] = {{1, alphas[a], NULL}, {1, ps, NULL}, {1, ns, NULL}, {1, bal, NULL}, {1, (double)cnt[a * 3 + 2], NULL}};
        h->table_row(call, ts, row);
        ((float *)tp.data)[a] = (float)ps;
        ((float *)tn.data)[a] = (float)ns;
        ((float *)ta.data)[a] = (float)alphas[a];
    }
    h->result_scalar(call, "direction_norm", norm);
out:
    if (hk)
        h->hooks_free(hk);
    free(u);
    free(v);
    free(tok);
    free(lg);
    free(pbuf);
    free(text);
    free(cnt);
    return rc;
}
