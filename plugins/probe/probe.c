/* probe — the plugin's methods: probe.train, probe.sweep, probe.apply, probe.erase,
 * probe.ablate (here) and probe.steer (steer.c). README.md in this folder says how to
 * read each result. Every accuracy is reported next to its baselines: the
 * majority class and the same probe trained on the token embeddings (hook_embed). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_impl.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

int pr_steer_run(lp_call *call, const lp_host_api *h);
extern const lp_param_desc pr_steer_params[];
extern const int pr_steer_n_params;
extern const char pr_steer_help[];

#define DATA_PARAMS                                                                                                    \
    {"dataset", LP_PARAM_STRING, NULL, "CSV or JSONL file: text, label, optional position / char offsets"},         \
        {"label", LP_PARAM_STRING, "label", "the label's key (JSONL) or column (CSV)"},                              \
        {"expand", LP_PARAM_STRING, "", "JSONL: an array key whose objects are the examples (e.g. words)"},          \
        {"seed", LP_PARAM_INT, "0", "seed of the train/test split"},                                                 \
        {"test_frac", LP_PARAM_FLOAT, "0.2", "share of the texts held out for testing"},                             \
        {"folds", LP_PARAM_INT, "0", "k-fold cross-validation over texts when >= 2 (instead of one split)"}

#define FIT_PARAMS                                                                                                     \
    {"kind", LP_PARAM_STRING, "logistic", "logistic | ridge (continuous targets) | mean_diff (binary)"},            \
        {"c", LP_PARAM_FLOAT, "1.0", "logistic: inverse L2 strength, as scikit-learn's C"},                          \
        {"lambda", LP_PARAM_FLOAT, "1.0", "ridge: L2 strength, as scikit-learn's Ridge alpha"},                      \
        {"normalize", LP_PARAM_BOOL, "true", "standardise features with the training rows' mean and std"},          \
        {"max_iter", LP_PARAM_INT, "1000", "L-BFGS iterations at most"}

typedef struct session {
    pr_ctx x;
    pr_data d;
    pr_fit_opts fo;
    int *fold, n_folds;
    char **hooks; /* [n_hooks]; hooks[n_hooks] is hook_embed when with_embed */
    int n_hooks;
    int with_embed;
    float **X;    /* per hook [d.n, dim[k]] */
    int *dim;     /* per hook: features per position */
} session;

static void session_free(session *s)
{
    if (s->X)
        for (int k = 0; k < s->n_hooks + s->with_embed; k++)
            free(s->X[k]);
    free(s->X);
    if (s->hooks)
        for (int k = 0; k < s->n_hooks + s->with_embed; k++)
            free(s->hooks[k]);
    free(s->hooks);
    free(s->dim);
    free(s->fold);
    pr_data_free(&s->d);
}

static int parse_kind(const char *k)
{
    if (!strcmp(k, "logistic"))
        return PR_LOGISTIC;
    if (!strcmp(k, "ridge"))
        return PR_RIDGE;
    if (!strcmp(k, "mean_diff"))
        return PR_MEAN_DIFF;
    return -1;
}

static const char *kind_name(int k) { return k == PR_RIDGE ? "ridge" : k == PR_MEAN_DIFF ? "mean_diff" : "logistic"; }

static int layer_of(const char *hook)
{
    return !strncmp(hook, "blocks.", 7) ? atoi(hook + 7) : -1;
}

/* Load the dataset, read the fit options, resolve the hook pattern (plus hook_embed),
 * gather activations. `pattern` NULL: the method has a single "hook" parameter. */
static int session_open(session *s, lp_call *call, const lp_host_api *h, const char *pattern, int fit_params,
                        int with_embed, const lp_hooks *edit, double *kl)
{
    memset(s, 0, sizeof *s);
    s->x.h = h;
    s->x.call = call;
    s->x.m = h->call_model(call);
    if (!s->x.m)
        return h->error(call, LP_EINVAL, "needs a model");
    s->x.d_model = h->model_config(s->x.m)->d_model;
    s->fo = pr_fit_opts_default();
    int continuous = 0;
    if (fit_params) {
        s->fo.kind = parse_kind(h->param_str(call, "kind"));
        if (s->fo.kind < 0)
            return h->error(call, LP_EINVAL, "kind must be logistic, ridge or mean_diff (got '%s')",
                            h->param_str(call, "kind"));
        s->fo.C = h->param_float(call, "c");
        s->fo.lambda = h->param_float(call, "lambda");
        s->fo.normalize = h->param_bool(call, "normalize");
        s->fo.max_iter = (int)h->param_int(call, "max_iter");
        if (!(s->fo.C > 0) || s->fo.lambda < 0 || s->fo.max_iter < 1)
            return h->error(call, LP_EINVAL, "C must be > 0, lambda >= 0 and max_iter >= 1");
        continuous = s->fo.kind == PR_RIDGE;
    }
    char err[1024];
    int rc = pr_data_load(h->param_str(call, "dataset"), h->param_str(call, "label"), h->param_str(call, "expand"),
                          continuous, &s->d, err, sizeof err);
    if (rc)
        return h->error(call, rc, "%s", err);
    if (s->fo.kind == PR_MEAN_DIFF && s->d.n_classes != 2) {
        int k = s->d.n_classes;
        session_free(s);
        return h->error(call, LP_EINVAL, "mean_diff needs two classes (the dataset has %d)", k);
    }
    int dropped = 0;
    if ((rc = pr_data_drop_long(&s->x, &s->d, &dropped))) {
        session_free(s);
        return rc;
    }
    if (dropped)
        h->log(call, LP_LOG_WARN, "%d texts longer than the model's context were left out", dropped);
    if (s->d.n_texts < 2) {
        session_free(s);
        return h->error(call, LP_EINVAL, "the dataset needs at least two texts to split");
    }
    double tf = h->param_float(call, "test_frac");
    int folds = (int)h->param_int(call, "folds");
    if (!(tf > 0 && tf < 1) || folds < 0 || folds > s->d.n_texts) {
        session_free(s);
        return h->error(call, LP_EINVAL, "test_frac must be in (0, 1) and folds in 0..%d", s->d.n_texts);
    }
    s->fold = pr_split(s->d.n_texts, folds, tf, (uint64_t)h->param_int(call, "seed"), &s->n_folds);
    if ((rc = pr_hooks_matching(&s->x, pattern ? pattern : h->param_str(call, "hook"), &s->hooks, &s->n_hooks)) ||
        !s->fold) {
        session_free(s);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    s->with_embed = with_embed;
    if (with_embed && !(s->hooks[s->n_hooks] = strdup("hook_embed"))) {
        session_free(s);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    int nh = s->n_hooks + with_embed;
    s->X = calloc((size_t)nh, sizeof(float *));
    s->dim = calloc((size_t)nh, sizeof(int));
    for (int k = 0; s->X && s->dim && k < nh; k++) {
        if ((s->dim[k] = pr_hook_width(&s->x, s->hooks[k])) < 1) {
            char nm[128];
            snprintf(nm, sizeof nm, "%s", s->hooks[k]);
            session_free(s);
            return h->error(call, LP_EUNSUPPORTED, "%s has no per-position features to probe", nm);
        }
        if (!(s->X[k] = malloc(sizeof(float) * (size_t)s->d.n * s->dim[k]))) {
            session_free(s);
            return h->error(call, LP_ENOMEM, "out of memory for the activations");
        }
    }
    if (!s->X || !s->dim) {
        session_free(s);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    if ((rc = pr_gather(&s->x, &s->d, s->hooks, nh, s->X, edit, kl))) {
        session_free(s);
        return rc;
    }
    return 0;
}

static const char *metric_name(const session *s) { return s->d.n_classes ? "accuracy" : "r2"; }

/* ---- saving ---- */

static int save_probe(session *s, const pr_probe *p, int hk, const pr_metrics *m, const pr_metrics *me,
                      const char *path)
{
    const lp_host_api *h = s->x.h;
    const int d = p->d;
    char st[4096], js[4096], err[1024];
    size_t L = strlen(path);
    const char *stem_end = L > 12 && !strcmp(path + L - 12, ".safetensors") ? path + L - 12 : path + L;
    snprintf(st, sizeof st, "%.*s.safetensors", (int)(stem_end - path), path);
    snprintf(js, sizeof js, "%.*s.json", (int)(stem_end - path), path);
    float *dir = malloc(sizeof(float) * (size_t)d), *md = calloc((size_t)d, sizeof(float));
    if (!dir || !md) {
        free(dir);
        free(md);
        return h->error(s->x.call, LP_ENOMEM, "out of memory");
    }
    pr_direction(p, 1, dir);
    if (s->d.n_classes == 2) { /* raw mean difference (class 1 - class 0) on the training rows */
        long c0 = 0, c1 = 0;
        double *acc = calloc(2 * (size_t)d, sizeof(double));
        for (int i = 0; acc && i < s->d.n; i++) {
            if (s->fold[s->d.tix[i]] == 0)
                continue;
            int one = s->d.y[i] > 0.5;
            (one ? c1++ : c0++);
            const float *x = s->X[hk] + (size_t)i * d;
            for (int j = 0; j < d; j++)
                acc[(size_t)one * d + j] += x[j];
        }
        for (int j = 0; acc && c0 && c1 && j < d; j++)
            md[j] = (float)(acc[d + j] / c1 - acc[j] / c0);
        free(acc);
    }
    pr_named t[6] = {
        {"weight", 2, {p->k, d}, p->W}, {"bias", 1, {p->k}, p->b},     {"mean", 1, {d}, p->mu},
        {"std", 1, {d}, p->sd},         {"direction", 1, {d}, dir},    {"mean_diff", 1, {d}, md},
    };
    int rc = pr_write_safetensors(st, t, s->d.n_classes == 2 ? 6 : 5, err, sizeof err);
    free(dir);
    free(md);
    if (rc)
        return h->error(s->x.call, rc, "save: %s", err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "loupe-probe-1");
    cJSON_AddStringToObject(o, "kind", kind_name(p->kind));
    cJSON_AddStringToObject(o, "hook", s->hooks[hk]);
    cJSON_AddNumberToObject(o, "layer", layer_of(s->hooks[hk]));
    cJSON_AddNumberToObject(o, "d_model", d);
    cJSON *cl = cJSON_AddArrayToObject(o, "classes");
    for (int c = 0; c < s->d.n_classes; c++)
        cJSON_AddItemToArray(cl, cJSON_CreateString(s->d.class_names[c]));
    cJSON_AddStringToObject(o, "normalisation", s->fo.normalize && p->kind != PR_MEAN_DIFF ? "standard" : "none");
    cJSON_AddNumberToObject(o, "C", s->fo.C);
    cJSON_AddNumberToObject(o, "lambda", s->fo.lambda);
    cJSON_AddStringToObject(o, "weights", strrchr(st, '/') ? strrchr(st, '/') + 1 : st);
    cJSON_AddStringToObject(o, "metric", metric_name(s));
    cJSON_AddNumberToObject(o, "test_score", m->acc);
    cJSON_AddNumberToObject(o, "baseline_majority", m->majority);
    cJSON_AddNumberToObject(o, "baseline_embed", me ? me->acc : NAN);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return h->error(s->x.call, LP_ENOMEM, "out of memory");
    rc = pr_write_text(js, text, err, sizeof err);
    free(text);
    if (rc)
        return h->error(s->x.call, rc, "save: %s", err);
    h->result_string(s->x.call, "saved", st);
    return 0;
}

/* the features of the first hook, labels and the test mask (fold 0), for outside checks */
static int export_features(session *s, const char *path)
{
    const int n = s->d.n;
    float *y = malloc(sizeof(float) * (size_t)n), *t = malloc(sizeof(float) * (size_t)n);
    char err[1024];
    if (!y || !t) {
        free(y);
        free(t);
        return s->x.h->error(s->x.call, LP_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        y[i] = (float)s->d.y[i];
        t[i] = s->fold[s->d.tix[i]] == 0;
    }
    pr_named nt[3] = {{"X", 2, {n, s->dim[0]}, s->X[0]}, {"y", 1, {n}, y}, {"test", 1, {n}, t}};
    int rc = pr_write_safetensors(path, nt, 3, err, sizeof err);
    free(y);
    free(t);
    if (rc)
        return s->x.h->error(s->x.call, rc, "export: %s", err);
    return s->x.h->result_string(s->x.call, "exported", path);
}

/* ---- probe.train / probe.sweep ---- */

static int train_or_sweep(lp_call *call, const lp_host_api *h, int sweep)
{
    session s;
    const char *pattern = h->param_str(call, "hook");
    int rc = session_open(&s, call, h, pattern, 1, 1, NULL, NULL);
    if (rc)
        return rc;
    const int nh = s.n_hooks;
    pr_metrics *m = calloc((size_t)nh + 1, sizeof *m);
    pr_probe last = {0};
    if (!m) {
        session_free(&s);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    /* the embedding baseline first, then each hook */
    for (int k = nh; k >= 0; k--) {
        if (h->progress(call, nh - k, nh + 1, "probes")) {
            rc = h->error(call, LP_ECANCELLED, "cancelled");
            goto out;
        }
        pr_probe p;
        if ((rc = pr_evaluate(&s.d, s.X[k], s.dim[k], &s.fo, s.fold, s.n_folds, &m[k], &p))) {
            rc = h->error(call, rc, "fitting the probe at %s failed (%s)", s.hooks[k],
                          rc == LP_ENOMEM ? "out of memory" : "degenerate data: one class in the training split?");
            goto out;
        }
        if (k == 0 && nh == 1)
            last = p;
        else
            pr_probe_free(&p);
    }
    const pr_metrics *me = &m[nh];
    int best = 0;
    for (int k = 1; k < nh; k++)
        if (m[k].acc > m[best].acc)
            best = k;
    const char *cols[] = {"hook", "layer", "metric", "probe", "baseline_majority", "baseline_embed", "auroc",
                          "embed_auroc", "n_test"};
    int tb = h->result_table(call, sweep ? "sweep" : "probes", 9, cols);
    int64_t ne1[1] = {nh}, ne2[2] = {nh, 3};
    /* [hook, 3]: the probe's score beside its two baselines, so a plot of it never shows
     * a probe number alone */
    lp_tensor acc = h->result_tensor(call, "accuracy", 2, ne2, "layer,probe|majority|embed");
    lp_tensor lay = h->result_tensor(call, "layers", 1, ne1, "layer");
    if (tb < 0 || !acc.data || !lay.data) {
        rc = h->error(call, LP_ENOMEM, "out of memory for the results");
        goto out;
    }
    for (int k = 0; k < nh; k++) {
        lp_cell row[9] = {{0, 0, s.hooks[k]},         {1, layer_of(s.hooks[k]), NULL}, {0, 0, metric_name(&s)},
                          {1, m[k].acc, NULL},        {1, m[k].majority, NULL},        {1, me->acc, NULL},
                          {1, m[k].auroc, NULL},      {1, me->auroc, NULL},            {1, m[k].n_test, NULL}};
        h->table_row(call, tb, row);
        ((float *)acc.data)[3 * k] = (float)m[k].acc;
        ((float *)acc.data)[3 * k + 1] = (float)m[k].majority;
        ((float *)acc.data)[3 * k + 2] = (float)me->acc;
        ((float *)lay.data)[k] = (float)layer_of(s.hooks[k]);
    }
    h->result_string(call, "metric", metric_name(&s));
    h->result_string(call, "best_hook", s.hooks[best]);
    h->result_scalar(call, "best_layer", layer_of(s.hooks[best]));
    h->result_scalar(call, "best", m[best].acc);
    h->result_scalar(call, "baseline_majority", m[best].majority);
    h->result_scalar(call, "baseline_embed", me->acc);
    if (!sweep && nh == 1) {
        h->result_scalar(call, "auroc", m[0].auroc);
        h->result_scalar(call, "iterations", last.iters);
        h->result_scalar(call, "converged", last.converged);
        int64_t ne2[2] = {last.k, last.d};
        lp_tensor w = h->result_tensor(call, "weight", 2, ne2, "class,feature");
        if (w.data)
            memcpy(w.data, last.W, sizeof(float) * (size_t)last.k * last.d);
        const char *save = h->param_str(call, "save"), *exp = h->param_str(call, "export");
        if (save && *save && (rc = save_probe(&s, &last, 0, &m[0], me, save)))
            goto out;
        if (exp && *exp && (rc = export_features(&s, exp)))
            goto out;
    } else if (!sweep && *h->param_str(call, "save")) {
        rc = h->error(call, LP_EINVAL, "save needs a single hook (the pattern matched %d)", nh);
        goto out;
    }
out:
    pr_probe_free(&last);
    free(m);
    session_free(&s);
    return rc;
}

static int train_run(lp_call *call, const lp_host_api *h) { return train_or_sweep(call, h, 0); }
static int sweep_run(lp_call *call, const lp_host_api *h) { return train_or_sweep(call, h, 1); }

/* ---- probe.apply: a saved probe on a dataset ---- */

static int load_sidecar(const lp_host_api *h, lp_call *call, const char *path, char *hook, size_t cap, char *st,
                        size_t stcap, int *kind)
{
    size_t L = strlen(path);
    const char *end = L > 12 && !strcmp(path + L - 12, ".safetensors") ? path + L - 12
                      : L > 5 && !strcmp(path + L - 5, ".json")   ? path + L - 5
                                                                    : path + L;
    char js[4096];
    snprintf(js, sizeof js, "%.*s.json", (int)(end - path), path);
    snprintf(st, stcap, "%.*s.safetensors", (int)(end - path), path);
    FILE *f = fopen(js, "rb");
    if (!f)
        return h->error(call, LP_EIO, "%s: cannot open the probe's JSON", js);
    char buf[1 << 15];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *o = cJSON_Parse(buf);
    const cJSON *hk = cJSON_GetObjectItemCaseSensitive(o, "hook"), *kd = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsString(hk) || !cJSON_IsString(kd) || parse_kind(kd->valuestring) < 0) {
        cJSON_Delete(o);
        return h->error(call, LP_EFORMAT, "%s: not a probe description (needs hook and kind)", js);
    }
    snprintf(hook, cap, "%s", hk->valuestring);
    *kind = parse_kind(kd->valuestring);
    cJSON_Delete(o);
    return 0;
}

static int apply_run(lp_call *call, const lp_host_api *h)
{
    char hook[256], st[4096], err[1024];
    int kind, rc;
    if ((rc = load_sidecar(h, call, h->param_str(call, "probe"), hook, sizeof hook, st, sizeof st, &kind)))
        return rc;
    pr_probe p = {0};
    int64_t nw, nb, nm, ns;
    if ((rc = pr_read_tensor(st, "weight", &p.W, &nw, err, sizeof err)) ||
        (rc = pr_read_tensor(st, "bias", &p.b, &nb, err, sizeof err)) ||
        (rc = pr_read_tensor(st, "mean", &p.mu, &nm, err, sizeof err)) ||
        (rc = pr_read_tensor(st, "std", &p.sd, &ns, err, sizeof err))) {
        pr_probe_free(&p);
        return h->error(call, rc, "%s", err);
    }
    p.kind = kind;
    p.d = (int)nm;
    p.k = (int)nb;
    if (nw != nb * nm || ns != nm) {
        pr_probe_free(&p);
        return h->error(call, LP_EFORMAT, "%s: weight/bias/mean/std sizes disagree", st);
    }
    session s;
    memset(&s, 0, sizeof s);
    s.x = (pr_ctx){h, call, h->call_model(call), 0};
    if (!s.x.m) {
        pr_probe_free(&p);
        return h->error(call, LP_EINVAL, "needs a model");
    }
    s.x.d_model = h->model_config(s.x.m)->d_model;
    if (pr_hook_width(&s.x, hook) != p.d) {
        pr_probe_free(&p);
        return h->error(call, LP_EINVAL, "the probe has %d features; %s has %d in this model", p.d, hook,
                        pr_hook_width(&s.x, hook));
    }
    if ((rc = pr_data_load(h->param_str(call, "dataset"), h->param_str(call, "label"), h->param_str(call, "expand"),
                           kind == PR_RIDGE, &s.d, err, sizeof err))) {
        pr_probe_free(&p);
        return h->error(call, rc, "%s", err);
    }
    p.n_classes = s.d.n_classes;
    int dropped = 0;
    if ((rc = pr_data_drop_long(&s.x, &s.d, &dropped))) {
        pr_probe_free(&p);
        pr_data_free(&s.d);
        return rc;
    }
    h->result_scalar(call, "texts_left_out", dropped);
    char *hooks[1] = {hook};
    float *X = malloc(sizeof(float) * (size_t)s.d.n * p.d), *sc = malloc(sizeof(float) * (size_t)s.d.n * p.k);
    if (!X || !sc)
        rc = h->error(call, LP_ENOMEM, "out of memory");
    else if (!(rc = pr_gather(&s.x, &s.d, hooks, 1, &X, NULL, NULL))) {
        pr_scores(&p, X, NULL, s.d.n, sc);
        long *cnt = calloc((size_t)(s.d.n_classes ? s.d.n_classes : 1), sizeof(long));
        double hit = 0, ss = 0, st2 = 0, ym = 0;
        for (int i = 0; i < s.d.n; i++)
            ym += s.d.y[i] / s.d.n;
        for (int i = 0; i < s.d.n; i++) {
            double v = pr_predict_row(&p, sc + (size_t)i * p.k);
            if (s.d.n_classes) {
                hit += (int)v == (int)s.d.y[i];
                if (cnt)
                    cnt[(int)s.d.y[i]]++;
            } else {
                ss += (v - s.d.y[i]) * (v - s.d.y[i]);
                st2 += (s.d.y[i] - ym) * (s.d.y[i] - ym);
            }
        }
        long mx = 0;
        for (int c = 0; cnt && c < s.d.n_classes; c++)
            mx = cnt[c] > mx ? cnt[c] : mx;
        free(cnt);
        h->result_string(call, "hook", hook);
        h->result_string(call, "metric", s.d.n_classes ? "accuracy" : "r2");
        h->result_scalar(call, "score", s.d.n_classes ? hit / s.d.n : 1 - ss / (st2 > 0 ? st2 : 1));
        h->result_scalar(call, "baseline_majority", s.d.n_classes ? (double)mx / s.d.n : 0);
        int64_t ne[2] = {s.d.n, p.k};
        lp_tensor t = h->result_tensor(call, "scores", 2, ne, "example,class");
        if (t.data)
            memcpy(t.data, sc, sizeof(float) * (size_t)s.d.n * p.k);
    }
    free(X);
    free(sc);
    pr_probe_free(&p);
    pr_data_free(&s.d);
    return rc;
}

/* ---- probe.erase: LEACE at a hook ---- */

/* fresh logistic probe accuracy on (train rows, test rows) of X */
static double fresh_accuracy(const session *s, const float *X, int dim, double C, double *majority)
{
    pr_fit_opts o = pr_fit_opts_default();
    o.C = C;
    pr_metrics m;
    if (pr_evaluate(&s->d, X, dim, &o, s->fold, s->n_folds, &m, NULL))
        return NAN;
    if (majority)
        *majority = m.majority;
    return m.acc;
}

static int erase_run(lp_call *call, const lp_host_api *h)
{
    session s;
    int rc = session_open(&s, call, h, NULL, 0, 0, NULL, NULL);
    if (rc)
        return rc;
    const int D = s.dim[0], n = s.d.n;
    pr_fit_opts fo = pr_fit_opts_default();
    fo.C = h->param_float(call, "c");
    if (s.n_hooks != 1) {
        session_free(&s);
        return h->error(call, LP_EINVAL, "erase works at one hook (the pattern matched %d)", s.n_hooks);
    }
    if (!s.d.n_classes || !(fo.C > 0)) {
        session_free(&s);
        return h->error(call, LP_EINVAL, "erase needs class labels and c > 0");
    }
    int *tr = malloc(sizeof(int) * (size_t)n), *te = malloc(sizeof(int) * (size_t)n);
    float *Xe = malloc(sizeof(float) * (size_t)n * D);
    pr_eraser e = {0};
    double before = 0, after = 0, maj = 0, msc = 0, var = 0;
    long n_te_all = 0;
    int used = 0;
    if (!tr || !te || !Xe) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    /* per fold: LEACE fitted on the training texts only; probes before and after tested on
     * the held-out texts (one split: fold 0 is the test fold) */
    for (int f = 0; f < s.n_folds; f++) {
        if (h->progress(call, f, s.n_folds, "folds")) {
            rc = h->error(call, LP_ECANCELLED, "cancelled");
            goto out;
        }
        int ntr = 0, nte = 0;
        for (int i = 0; i < n; i++) {
            if (s.fold[s.d.tix[i]] == f)
                te[nte++] = i;
            else
                tr[ntr++] = i;
        }
        if (!nte || ntr < 2)
            continue;
        double b = 0, a = 0, m = 0;
        pr_eraser_free(&e);
        if ((rc = pr_accuracy_rows(&s.d, s.X[0], D, &fo, tr, ntr, te, nte, &b, &m)) ||
            (rc = pr_leace_fit(&e, s.X[0], D, s.d.y, tr, ntr, s.d.n_classes))) {
            rc = h->error(call, rc, "fit failed (%s)", rc == LP_ENOMEM ? "out of memory" : "degenerate data");
            goto out;
        }
        memcpy(Xe, s.X[0], sizeof(float) * (size_t)n * D);
        pr_leace_apply(&e, Xe, n);
        if ((rc = pr_accuracy_rows(&s.d, Xe, D, &fo, tr, ntr, te, nte, &a, NULL))) {
            rc = h->error(call, rc, "fit after erasure failed");
            goto out;
        }
        before += b;
        after += a;
        maj += m;
        used++;
        for (int q = 0; q < nte; q++) {
            const float *x0 = s.X[0] + (size_t)te[q] * D, *x1 = Xe + (size_t)te[q] * D;
            for (int j = 0; j < D; j++) {
                msc += ((double)x0[j] - x1[j]) * ((double)x0[j] - x1[j]);
                var += ((double)x0[j] - e.mu[j]) * ((double)x0[j] - e.mu[j]);
            }
        }
        n_te_all += nte;
    }
    if (!used) {
        rc = h->error(call, LP_EINVAL, "no usable fold");
        goto out;
    }
    before /= used;
    after /= used;
    maj /= used;
    msc /= n_te_all;
    var /= n_te_all;
    h->progress(call, s.n_folds, s.n_folds, "folds");
    h->result_string(call, "hook", s.hooks[0]);
    h->result_scalar(call, "accuracy_before", before);
    h->result_scalar(call, "accuracy_after", after);
    h->result_scalar(call, "chance", maj);
    h->result_scalar(call, "mean_sq_change", msc);
    h->result_scalar(call, "relative_sq_change", var > 0 ? msc / var : 0);
    h->result_scalar(call, "rank", e.r);
    h->result_scalar(call, "n_test", (double)n_te_all);
    const char *cols[] = {"hook", "accuracy_before", "accuracy_after", "chance", "mean_sq_change",
                          "relative_sq_change"};
    int tb = h->result_table(call, "erasure", 6, cols);
    lp_cell row[6] = {{0, 0, s.hooks[0]}, {1, before, NULL}, {1, after, NULL},
                      {1, maj, NULL},     {1, msc, NULL},    {1, var > 0 ? msc / var : 0, NULL}};
    if (tb >= 0)
        h->table_row(call, tb, row);
    const char *save = h->param_str(call, "save");
    if (*save) { /* the eraser of the last fold */
        char err[1024];
        pr_named t[3] = {{"mean", 1, {D}, e.mu}, {"A", 2, {e.r, D}, e.A}, {"B", 2, {e.r, D}, e.B}};
        if ((rc = pr_write_safetensors(save, t, 3, err, sizeof err)))
            rc = h->error(call, rc, "save: %s", err);
        else
            h->result_string(call, "saved", save);
    }
out:
    pr_eraser_free(&e);
    free(tr);
    free(te);
    free(Xe);
    session_free(&s);
    return rc;
}

/* ---- probe.ablate: project a direction out at a hook ---- */

typedef struct ablation {
    const float *u; /* [d] unit */
    int d;
} ablation;

int pr_contiguous(const lp_tensor *t)
{
    int64_t want = (int64_t)sizeof(float);
    for (int k = t->ndim - 1; k >= 0; k--) {
        if (t->ne[k] > 1 && t->nb[k] != want)
            return 0;
        want *= t->ne[k];
    }
    return 1;
}

static int ablate_hook(lp_tensor *act, const lp_hook_info *info, void *user)
{
    const ablation *a = user;
    int64_t rows = 1;
    for (int k = 0; k < act->ndim - 1; k++)
        rows *= act->ne[k];
    if (act->dtype != LP_F32 || act->ne[act->ndim - 1] != a->d || !pr_contiguous(act)) {
        snprintf(info->err->msg, sizeof info->err->msg, "%s is not a contiguous [.., %d] f32 activation", info->name,
                 a->d);
        return info->err->code = LP_EUNSUPPORTED;
    }
    float *x = act->data;
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * a->d;
        double p = 0;
        for (int j = 0; j < a->d; j++)
            p += (double)v[j] * a->u[j];
        for (int j = 0; j < a->d; j++)
            v[j] -= (float)(p * a->u[j]);
    }
    return 0;
}

/* direction: from a saved probe (its unit "direction") or the dataset's mean difference */
int pr_load_direction(const lp_host_api *h, lp_call *call, const char *path, const char *tensor, int d, float *out,
                      float *norm_out)
{
    char err[1024], st[4096], hook[256];
    int kind, rc;
    size_t L = strlen(path);
    if (L > 5 && !strcmp(path + L - 5, ".json")) {
        if ((rc = load_sidecar(h, call, path, hook, sizeof hook, st, sizeof st, &kind)))
            return rc;
        path = st;
    }
    float *v;
    int64_t n;
    if ((rc = pr_read_tensor(path, tensor, &v, &n, err, sizeof err)) &&
        (rc = pr_read_tensor(path, "direction", &v, &n, err, sizeof err)))
        return h->error(call, rc, "%s", err);
    if (n != d) {
        free(v);
        return h->error(call, LP_EINVAL, "%s: the direction has %lld entries; d_model is %d", path, (long long)n, d);
    }
    double nn = 0;
    for (int j = 0; j < d; j++)
        nn += (double)v[j] * v[j];
    nn = sqrt(nn);
    for (int j = 0; j < d; j++)
        out[j] = nn > 0 ? (float)(v[j] / nn) : 0;
    if (norm_out)
        *norm_out = (float)nn;
    free(v);
    return nn > 0 ? 0 : h->error(call, LP_EINVAL, "%s: the direction is zero", path);
}

/* unit mean difference (class 1 - class 0) of X over the training rows; *norm its length */
int pr_mean_diff(const pr_data *d, const int *fold, const float *X, int D, float *u, float *norm)
{
    double *acc = calloc(2 * (size_t)D, sizeof(double));
    long c[2] = {0, 0};
    if (!acc)
        return LP_ENOMEM;
    for (int i = 0; i < d->n; i++) {
        if (fold && fold[d->tix[i]] == 0)
            continue;
        int one = d->y[i] > 0.5;
        c[one]++;
        for (int j = 0; j < D; j++)
            acc[(size_t)one * D + j] += X[(size_t)i * D + j];
    }
    if (!c[0] || !c[1]) {
        free(acc);
        return LP_EINVAL;
    }
    double nn = 0;
    for (int j = 0; j < D; j++) {
        double v = acc[D + j] / c[1] - acc[j] / c[0];
        u[j] = (float)v;
        nn += v * v;
    }
    nn = sqrt(nn);
    for (int j = 0; j < D; j++)
        u[j] = nn > 0 ? (float)(u[j] / nn) : 0;
    *norm = (float)nn;
    free(acc);
    return nn > 0 ? 0 : LP_EINVAL;
}

int pr_dataset_direction(lp_call *call, const lp_host_api *h, const char *hook, float *u, float *norm)
{
    session t;
    int rc = session_open(&t, call, h, hook, 0, 0, NULL, NULL);
    if (rc)
        return rc;
    if (t.d.n_classes != 2 || t.n_hooks != 1 || t.dim[0] != pr_hook_width(&t.x, hook) ||
        pr_mean_diff(&t.d, NULL, t.X[0], t.dim[0], u, norm))
        rc = h->error(call, LP_EINVAL, "a mean-difference direction needs a dataset with two classes and one hook");
    session_free(&t);
    return rc;
}

static int ablate_run(lp_call *call, const lp_host_api *h)
{
    /* first a clean pass at the ablated hook and the probe hook: direction + accuracy before */
    const char *hook = h->param_str(call, "hook");
    const char *probe_hook = h->param_str(call, "probe_hook");
    if (!*probe_hook)
        probe_hook = hook;
    char pat[600];
    snprintf(pat, sizeof pat, "%s", probe_hook);
    session s;
    int rc = session_open(&s, call, h, pat, 0, 0, NULL, NULL);
    if (rc)
        return rc;
    /* the direction's width: the (first) ablated hook's */
    char **hn = NULL;
    int nhn = 0, D = s.x.d_model;
    if (!pr_hooks_matching(&s.x, hook, &hn, &nhn)) {
        if (nhn > 0)
            D = pr_hook_width(&s.x, hn[0]);
        for (int i = 0; i < nhn; i++)
            free(hn[i]);
        free(hn);
    }
    if (s.n_hooks != 1 || !s.d.n_classes || D < 1) {
        session_free(&s);
        return h->error(call, LP_EINVAL, "ablate needs class labels and one probe_hook (matched %d)", s.n_hooks);
    }
    float *u = malloc(sizeof(float) * (size_t)D), norm = 0;
    lp_hooks *hk = h->hooks_new();
    if (!u || !hk) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    const char *dir = h->param_str(call, "direction");
    if (*dir) {
        if ((rc = pr_load_direction(h, call, dir, "direction", D, u, &norm)))
            goto out;
    } else {
        /* mean difference at the ablated hook (gathered with a one-hook session) */
        session t;
        if ((rc = session_open(&t, call, h, hook, 0, 0, NULL, NULL)))
            goto out;
        if (s.d.n_classes != 2 || t.n_hooks != 1 || t.dim[0] != D || pr_mean_diff(&t.d, t.fold, t.X[0], D, u, &norm)) {
            session_free(&t);
            rc = h->error(call, LP_EINVAL, "without direction=FILE the dataset needs two classes and one hook");
            goto out;
        }
        session_free(&t);
    }
    double maj = 0, before = fresh_accuracy(&s, s.X[0], s.dim[0], h->param_float(call, "c"), &maj);
    ablation ab = {u, D};
    lp_error err = {0};
    if ((rc = h->hooks_add(hk, hook, ablate_hook, &ab, &err))) {
        rc = h->error(call, rc, "%s", err.msg);
        goto out;
    }
    double kl = 0;
    if ((rc = pr_gather(&s.x, &s.d, s.hooks, 1, s.X, hk, &kl)))
        goto out;
    double after = fresh_accuracy(&s, s.X[0], s.dim[0], h->param_float(call, "c"), NULL);
    h->result_string(call, "hook", hook);
    h->result_string(call, "probe_hook", s.hooks[0]);
    h->result_scalar(call, "kl", kl);
    h->result_scalar(call, "accuracy_before", before);
    h->result_scalar(call, "accuracy_after", after);
    h->result_scalar(call, "chance", maj);
    h->result_scalar(call, "direction_norm", norm);
out:
    if (hk)
        h->hooks_free(hk);
    free(u);
    session_free(&s);
    return rc;
}

/* ---- descriptors ---- */

static const lp_param_desc train_params[] = {
    DATA_PARAMS,
    {"hook", LP_PARAM_HOOK, NULL, "where to read: a hook name, or a glob for one probe per hook"},
    FIT_PARAMS,
    {"save", LP_PARAM_STRING, "", "write the probe: PATH.safetensors + PATH.json (one hook only)"},
    {"export", LP_PARAM_STRING, "", "write the features as safetensors: X [n, d_model], y [n], test [n] (one hook)"},
};

static const lp_param_desc sweep_params[] = {
    DATA_PARAMS,
    {"hook", LP_PARAM_HOOK, "blocks.*.hook_resid_post", "hooks to sweep (a glob)"},
    FIT_PARAMS,
};

static const lp_param_desc apply_params[] = {
    {"probe", LP_PARAM_STRING, NULL, "a saved probe: PATH (PATH.json + PATH.safetensors)"},
    {"dataset", LP_PARAM_STRING, NULL, "CSV or JSONL, as for probe.train"},
    {"label", LP_PARAM_STRING, "label", "the label's key or column"},
    {"expand", LP_PARAM_STRING, "", "JSONL: an array key whose objects are the examples"},
};

static const lp_param_desc erase_params[] = {
    DATA_PARAMS,
    {"hook", LP_PARAM_HOOK, NULL, "the hook to erase at"},
    {"c", LP_PARAM_FLOAT, "1.0", "C of the logistic probes trained before and after"},
    {"save", LP_PARAM_STRING, "", "write the eraser (mean, A, B: x' = x - A^T B (x - mean)) as safetensors"},
};

static const lp_param_desc ablate_params[] = {
    DATA_PARAMS,
    {"hook", LP_PARAM_HOOK, NULL, "where the direction is projected out (every position)"},
    {"probe_hook", LP_PARAM_STRING, "", "where probes are trained before/after (default: hook)"},
    {"direction", LP_PARAM_STRING, "", "a saved probe (its unit direction); default: the dataset's mean difference"},
    {"c", LP_PARAM_FLOAT, "1.0", "C of the logistic probes"},
};

static const char train_help[] =
    "Gather activations at `hook` for every example of `dataset` (one cached forward pass per\n"
    "text, batched) and fit a linear probe: logistic regression (L-BFGS, scikit-learn's\n"
    "objective and C), ridge regression (continuous labels) or the difference of means.\n"
    "Evaluated on held-out texts (test_frac, or k folds), always beside two baselines: the\n"
    "majority class of the training split and the same probe on hook_embed.\n"
    "\n"
    "Results:\n"
    "  probes              table: hook, layer, metric, probe, baseline_majority, baseline_embed,\n"
    "                      auroc, embed_auroc, n_test\n"
    "  best, best_hook     the best hook's test score (accuracy, or R^2 for ridge)\n"
    "  baseline_majority, baseline_embed   its baselines\n"
    "  weight              [class, d_model] the weights on standardised features (one hook)\n"
    "  saved               the safetensors path written (save=PATH)\n";

static const char sweep_help[] =
    "probe.train over every hook matching `hook` (default every block's resid_post).\n"
    "Results: accuracy [layer, 3] (per hook: the test score, the majority baseline, the\n"
    "embedding baseline), layers [layer] (block index), the\n"
    "`sweep` table (each row with both baselines), best, best_hook, best_layer,\n"
    "baseline_majority, baseline_embed.\n";

static const char apply_help[] =
    "Score a dataset with a saved probe (probe.train save=PATH) at the hook it was trained on.\n"
    "Results: score (accuracy or R^2) beside baseline_majority, scores [example, class].\n";

static const char erase_help[] =
    "LEACE at `hook`: fit the closed-form least-squares concept eraser on the training texts,\n"
    "apply it to all, and train a fresh logistic probe before and after.\n"
    "Results: accuracy_before, accuracy_after (test), chance (majority-class accuracy),\n"
    "mean_sq_change (mean ||x' - x||^2 on the test rows), relative_sq_change (the same over\n"
    "their variance), rank (directions erased: classes - 1), the `erasure` table.\n";

static const char ablate_help[] =
    "Project a direction out of the activation at `hook` (every position) and measure what\n"
    "changes downstream: kl (mean KL(clean || ablated) of next-token distributions over all\n"
    "real positions of the dataset's texts), accuracy_before / accuracy_after of a fresh\n"
    "probe at probe_hook, beside chance.\n";

#define N(a) ((int)(sizeof a / sizeof a[0]))
static const lp_method_desc methods[] = {
    {sizeof(lp_method_desc), "train", "fit a linear probe (logistic, ridge, mean_diff) at a hook, with baselines",
     train_help, train_params, N(train_params), LP_CAP_READS_ACTIVATIONS | LP_CAP_TRAINS | LP_CAP_WRITES_FILES,
     train_run},
    {sizeof(lp_method_desc), "sweep", "probe accuracy per layer, with baselines", sweep_help, sweep_params,
     N(sweep_params), LP_CAP_READS_ACTIVATIONS | LP_CAP_TRAINS, sweep_run},
    {sizeof(lp_method_desc), "apply", "score a dataset with a saved probe", apply_help, apply_params,
     N(apply_params), LP_CAP_READS_ACTIVATIONS, apply_run},
    {sizeof(lp_method_desc), "erase", "LEACE concept erasure at a hook: probe accuracy before/after",
     erase_help, erase_params, N(erase_params), LP_CAP_READS_ACTIVATIONS | LP_CAP_TRAINS | LP_CAP_WRITES_FILES,
     erase_run},
    {sizeof(lp_method_desc), "ablate", "project a direction out at a hook: KL and probe accuracy after",
     ablate_help, ablate_params, N(ablate_params), LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_ACTIVATIONS | LP_CAP_TRAINS,
     ablate_run},
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    pr_set_sgemm(host->sgemm);
    int rc = host->set_info(plugin, "probe", "1.0.0", "linear probes, concept directions, steering, LEACE erasure");
    for (int i = 0; !rc && i < N(methods); i++)
        rc = host->register_method(plugin, &methods[i]);
    static lp_method_desc steer;
    steer = (lp_method_desc){sizeof(lp_method_desc), "steer", "add alpha x a concept direction at a hook while generating",
                             pr_steer_help, pr_steer_params, pr_steer_n_params,
                             LP_CAP_READS_ACTIVATIONS | LP_CAP_WRITES_ACTIVATIONS, pr_steer_run};
    if (!rc)
        rc = host->register_method(plugin, &steer);
    return rc;
}
