/* loupe UI — the analysis behind the views: tokenize the prompt, run one forward pass that
 * caches the residual stream at every layer and every attention pattern, then compute the
 * logit lens lazily, one position (column) at a time, for the cells a view shows. The final
 * layer of the lens is the model's own next-token distribution, so the prompt view's
 * predictions come from the same cache. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"

int ui_model_busy(const ui_app *app)
{
    return app->worker.running;
}

void ui_set_msg(ui_app *app, int error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->msg, sizeof app->msg, fmt, ap);
    va_end(ap);
    app->msg_error = error;
}

int ui_sel_pos(const ui_app *app)
{
    int n = app->an.n;
    if (n <= 0)
        return -1;
    if (app->sel_pos < 0 || app->sel_pos >= n)
        return n - 1;
    return app->sel_pos;
}

/* What the forward pass keeps: every block's residual stream (the lens) and, only while
 * the attention view is shown, every pattern: hooking the patterns makes the engine
 * materialise them instead of running its fused attention. */
static int set_filter(ui_app *app, lp_error *err)
{
    ui_analysis *an = &app->an;
    char last[64];
    snprintf(last, sizeof last, "blocks.%d.hook_resid_post", app->cfg->n_layers - 1);
    const char *pats[] = {"blocks.*.hook_resid_pre", last, "blocks.*.attn.hook_pattern"};
    an->with_patterns = app->view == VIEW_ATTN;
    return lp_cache_set_filter(an->cache, pats, an->with_patterns ? 3 : 2, err);
}

static int setup_cache(ui_app *app, lp_error *err)
{
    ui_analysis *an = &app->an;
    if (an->cache)
        return set_filter(app, err);
    int L = app->cfg->n_layers;
    an->cache = lp_cache_new();
    if (!an->cache)
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    int max = UI_MAX_TOKENS < app->cfg->n_ctx ? UI_MAX_TOKENS : app->cfg->n_ctx;
    an->kv = lp_kv_new(app->model, max);
    size_t dm = (size_t)app->cfg->d_model, dv = (size_t)app->cfg->d_vocab;
    an->scratch_x = malloc(sizeof(float) * dm * (size_t)(L + 1));
    an->scratch_n = malloc(sizeof(float) * dm * (size_t)(L + 1));
    an->scratch_logits = malloc(sizeof(float) * dv * (size_t)(L + 1));
    an->scratch_rows = L + 1;
    if (!an->kv || !an->scratch_x || !an->scratch_n || !an->scratch_logits)
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    return set_filter(app, err);
}

typedef struct ui_prev {
    int32_t *ids;
    ui_lens_cell *lens;
    float *resid, *pat;
    int n, with_patterns;
} ui_prev;
static int analyse_ids(ui_app *app, const int32_t *in_ids, int n_in, const ui_prev *prev);

int ui_analyse(ui_app *app)
{
    if (ui_model_busy(app))
        return -1; /* stays dirty: analysed when the worker is done */
    double t0 = ui_now_ms();
    ui_analysis *an = &app->an;
    lp_error err = {0};
    app->dirty = 0;
    an->generation++;
    an->error[0] = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (!app->tok || lp_tokenizer_encode(app->tok, app->prompt.buf, (size_t)app->prompt.len, -1, &ids, &n, &err)) {
        /* nothing to show: drop the previous analysis */
        snprintf(an->error, sizeof an->error, "%s",
                 app->tok ? err.msg : "this model has no tokenizer: the prompt cannot be encoded");
        free(ids);
        free(an->ids);
        an->ids = NULL;
        an->n = 0;
        an->truncated = 0;
        free(an->lens);
        an->lens = NULL;
        free(an->resid);
        an->resid = NULL;
        free(an->pat);
        an->pat = NULL;
        return -1;
    }
    int rc = ui_analyse_ids(app, ids, (int)n, t0);
    free(ids);
    return rc;
}

int ui_analyse_ids(ui_app *app, const int32_t *in_ids, int n_in, double t0)
{
    ui_analysis *an = &app->an;
    if (ui_model_busy(app))
        return -1;
    if (t0 <= 0)
        t0 = ui_now_ms();
    app->dirty = 0;
    an->generation++;
    an->error[0] = 0;
    /* the previous analysis: the model is causal, so everything at the positions before
     * the first changed token is still right (lens cells, residual streams, pattern rows,
     * and the keys and values in the KV cache) and is kept */
    ui_prev prev = {an->ids, an->lens, an->resid, an->pat, an->n, an->with_patterns};
    an->ids = NULL;
    an->n = 0;
    an->truncated = 0;
    an->lens = NULL;
    an->resid = NULL;
    an->pat = NULL;
    int rc = analyse_ids(app, in_ids, n_in, &prev);
    free(prev.ids);
    free(prev.lens);
    free(prev.resid);
    free(prev.pat);
    if (rc) {
        an->n = 0;
        return rc;
    }
    an->analyse_ms = ui_now_ms() - t0;
    return 0;
}

static int fail(ui_app *app, const char *what, const char *msg)
{
    snprintf(app->an.error, sizeof app->an.error, "%s%s", what, msg);
    return -1;
}

static int analyse_ids(ui_app *app, const int32_t *in_ids, int n_in, const ui_prev *prev)
{
    ui_analysis *an = &app->an;
    lp_error err = {0};
    if (setup_cache(app, &err))
        return fail(app, "", err.msg);
    lp_cache_reset(an->cache);
    int n = n_in, max = UI_MAX_TOKENS < app->cfg->n_ctx ? UI_MAX_TOKENS : app->cfg->n_ctx;
    if (n > max) {
        an->truncated = n;
        n = max;
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)(n ? n : 1));
    if (!ids)
        return fail(app, "", "out of memory");
    memcpy(ids, in_ids, sizeof *ids * (size_t)n);
    an->ids = ids;
    an->n = n;
    if (n == 0)
        return 0;
    const int L = app->cfg->n_layers, H = app->cfg->n_heads, D = app->cfg->d_model;
    an->lens = calloc((size_t)(L + 1) * n, sizeof *an->lens);
    an->resid = malloc(sizeof(float) * (size_t)(L + 1) * n * D);
    an->pat = an->with_patterns ? calloc((size_t)L * H * n * n, sizeof(float)) : NULL;
    if (!an->lens || !an->resid || (an->with_patterns && !an->pat))
        return fail(app, "", "out of memory");

    /* the common prefix with the previous analysis */
    int keep = 0;
    if (prev->lens && prev->ids && an->lens_model == app->model)
        while (keep < prev->n && keep < n && prev->ids[keep] == ids[keep])
            keep++;
    if (an->lens_target == an->target)
        for (int l = 0; keep > 0 && l <= L; l++)
            memcpy(an->lens + (size_t)l * n, prev->lens + (size_t)l * prev->n, sizeof *an->lens * (size_t)keep);
    an->lens_kept = an->lens_target == an->target ? keep : 0;
    an->lens_model = app->model;
    an->lens_target = an->target;
    /* the forward pass restarts at the first changed token (at least the last one), from
     * the KV cache; from scratch when the patterns are wanted now and were not kept */
    int past = keep < n ? keep : n - 1;
    if (!prev->resid || !an->kv || lp_kv_len(an->kv) < past || (an->with_patterns && !prev->with_patterns))
        past = 0;
    lp_kv_truncate(an->kv, past);
    an->fwd_kept = past;

    lp_batch b = {.tokens = ids + past, .n_batch = 1, .n_pos = n - past, .lengths = NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_NONE;
    o.cache = an->cache;
    o.kv = an->kv;
    if (lp_model_run(app->model, &b, &o, &err)) {
        lp_kv_clear(an->kv); /* its contents no longer match the previous tokens */
        return fail(app, "forward pass: ", err.msg);
    }
    an->forward_ms = lp_model_last_run_ms(app->model);

    /* residual streams [(L+1), n, D]: the kept rows, then the new ones from the cache */
    const int nn = n - past;
    char name[96];
    for (int l = 0; l <= L; l++) {
        float *dst = an->resid + (size_t)l * n * D;
        if (past)
            memcpy(dst, prev->resid + (size_t)l * prev->n * D, sizeof(float) * (size_t)past * D);
        if (l < L)
            snprintf(name, sizeof name, "blocks.%d.hook_resid_pre", l);
        else
            snprintf(name, sizeof name, "blocks.%d.hook_resid_post", L - 1);
        int i = lp_cache_find(an->cache, name);
        lp_tensor t = i >= 0 ? lp_cache_entry(an->cache, i) : (lp_tensor){0};
        if (i < 0 || t.ndim != 3 || t.ne[1] != nn || t.ne[2] != D)
            return fail(app, "the forward pass did not keep ", name);
        lp_tensor_to_f32(&t, dst + (size_t)past * D);
    }
    /* patterns [L, H, n, n]: kept query rows, then the new rows [1, H, nn, n] */
    for (int l = 0; an->pat && l < L; l++) {
        snprintf(name, sizeof name, "blocks.%d.attn.hook_pattern", l);
        int i = lp_cache_find(an->cache, name);
        lp_tensor t = i >= 0 ? lp_cache_entry(an->cache, i) : (lp_tensor){0};
        if (i < 0 || t.dtype != LP_F32 || !lp_tensor_is_contiguous(&t) || t.ndim != 4 || t.ne[1] != H ||
            t.ne[2] != nn || t.ne[3] != n)
            return fail(app, "the forward pass did not keep ", name);
        for (int h = 0; h < H; h++) {
            float *dst = an->pat + ((size_t)l * H + h) * n * n;
            for (int q = 0; q < past; q++)
                memcpy(dst + (size_t)q * n, prev->pat + (((size_t)l * H + h) * prev->n + q) * prev->n,
                       sizeof(float) * (size_t)(q + 1));
            memcpy(dst + (size_t)past * n, (const float *)t.data + (size_t)h * nn * n, sizeof(float) * (size_t)nn * n);
        }
    }
    lp_cache_reset(an->cache); /* everything is copied out */
    return 0;
}

ui_lens_cell *ui_lens_at(ui_app *app, int layer, int pos)
{
    ui_analysis *an = &app->an;
    if (!an->lens || pos < 0 || pos >= an->n || layer < 0 || layer > app->cfg->n_layers)
        return NULL;
    return &an->lens[(size_t)layer * an->n + pos];
}

static void topk_row(const float *logits, int V, int32_t target, ui_lens_cell *c)
{
    float mx = -INFINITY;
    for (int v = 0; v < V; v++)
        if (logits[v] > mx)
            mx = logits[v];
    double sum = 0;
    for (int v = 0; v < V; v++)
        sum += exp((double)(logits[v] - mx));
    int k = 0;
    float topv[UI_TOPK];
    for (int v = 0; v < V; v++) {
        float x = logits[v];
        if (k == UI_TOPK && x <= topv[k - 1])
            continue;
        int i = k < UI_TOPK ? k++ : k - 1;
        while (i > 0 && topv[i - 1] < x) {
            topv[i] = topv[i - 1];
            c->top[i] = c->top[i - 1];
            i--;
        }
        topv[i] = x;
        c->top[i] = v;
    }
    for (int i = 0; i < UI_TOPK; i++) {
        if (i < k) {
            c->prob[i] = (float)(exp((double)(topv[i] - mx)) / sum);
        } else {
            c->top[i] = -1;
            c->prob[i] = 0;
        }
    }
    c->target_prob = NAN;
    c->target_rank = 0;
    if (target >= 0 && target < V) {
        float t = logits[target];
        int rank = 1;
        for (int v = 0; v < V; v++)
            rank += logits[v] > t;
        c->target_prob = (float)(exp((double)(t - mx)) / sum);
        c->target_rank = rank;
    }
    c->done = 1;
}

/* Compute the given (layer, pos) cells in one batch: W_U is streamed once. */
static int compute_cells(ui_app *app, const int *cell_l, const int *cell_p, int rows)
{
    ui_analysis *an = &app->an;
    if (rows <= 0)
        return 0;
    if (ui_model_busy(app))
        return -1;
    int dm = app->cfg->d_model, V = app->cfg->d_vocab;
    if (rows > an->scratch_rows) {
        float *x = realloc(an->scratch_x, sizeof(float) * (size_t)dm * rows);
        if (x) an->scratch_x = x;
        float *nn = realloc(an->scratch_n, sizeof(float) * (size_t)dm * rows);
        if (nn) an->scratch_n = nn;
        float *lg = realloc(an->scratch_logits, sizeof(float) * (size_t)V * rows);
        if (lg) an->scratch_logits = lg;
        if (!x || !nn || !lg)
            return -1;
        an->scratch_rows = rows;
    }
    if (!an->resid)
        return -1;
    for (int r = 0; r < rows; r++)
        memcpy(an->scratch_x + (size_t)r * dm, an->resid + ((size_t)cell_l[r] * an->n + cell_p[r]) * dm,
               sizeof(float) * (size_t)dm);
    if (lp_model_ln_final(app->model, an->scratch_x, rows, an->scratch_n, NULL) ||
        lp_model_unembed(app->model, an->scratch_n, rows, an->scratch_logits))
        return -1;
    for (int r = 0; r < rows; r++)
        topk_row(an->scratch_logits + (size_t)r * V, V, an->target, ui_lens_at(app, cell_l[r], cell_p[r]));
    return 0;
}

int ui_lens_ensure_range(ui_app *app, int pos0, int pos1, int final_only)
{
    ui_analysis *an = &app->an;
    int L = app->cfg->n_layers;
    if (!an->lens || pos0 < 0 || pos1 > an->n || pos0 >= pos1)
        return -1;
    int max_rows = (L + 1) * (pos1 - pos0), rows = 0;
    int *cell_l = malloc(sizeof(int) * (size_t)max_rows), *cell_p = malloc(sizeof(int) * (size_t)max_rows);
    int rc = -1;
    if (cell_l && cell_p) {
        for (int pos = pos0; pos < pos1; pos++)
            for (int l = final_only ? L : 0; l <= L; l++)
                if (!ui_lens_at(app, l, pos)->done) {
                    cell_l[rows] = l;
                    cell_p[rows++] = pos;
                }
        rc = compute_cells(app, cell_l, cell_p, rows);
    }
    free(cell_l);
    free(cell_p);
    return rc;
}

int ui_lens_ensure_cells(ui_app *app, int pos0, int pos1, int l0, int l1, int cur_l, int cur_p, int budget)
{
    ui_analysis *an = &app->an;
    int L = app->cfg->n_layers;
    if (l0 < 0) l0 = 0;
    if (l1 > L) l1 = L;
    if (!an->lens || pos0 < 0 || pos1 > an->n || pos0 >= pos1 || l0 > l1)
        return -1;
    int max_rows = (l1 - l0 + 2) * (pos1 - pos0) + 2, rows = 0, missing = 0;
    int *cell_l = malloc(sizeof(int) * (size_t)max_rows), *cell_p = malloc(sizeof(int) * (size_t)max_rows);
    if (!cell_l || !cell_p) {
        free(cell_l);
        free(cell_p);
        return -1;
    }
    /* in order of need: the cursor's cell (its top-k is shown), the output row, then the
     * layers from the top down; up to budget cells now, the rest on later frames */
#define WANT(L_, P_)                                                                             \
    do {                                                                                         \
        ui_lens_cell *c_ = ui_lens_at(app, (L_), (P_));                                          \
        if (c_ && !c_->done && !c_->done_pending) {                                              \
            c_->done_pending = 1;                                                                \
            if (rows < budget) {                                                                 \
                cell_l[rows] = (L_);                                                             \
                cell_p[rows++] = (P_);                                                           \
            } else {                                                                             \
                missing++;                                                                       \
            }                                                                                    \
        }                                                                                        \
    } while (0)
    if (cur_p >= 0 && cur_l >= 0)
        WANT(cur_l, cur_p);
    for (int l = l1; l >= l0; l--)
        for (int pos = pos0; pos < pos1; pos++)
            WANT(l, pos);
#undef WANT
    /* clear the marks (they only avoid listing a cell twice) */
    for (int l = l0; l <= l1; l++)
        for (int pos = pos0; pos < pos1; pos++)
            ui_lens_at(app, l, pos)->done_pending = 0;
    if (cur_p >= 0 && cur_l >= 0 && ui_lens_at(app, cur_l, cur_p))
        ui_lens_at(app, cur_l, cur_p)->done_pending = 0;
    int rc = compute_cells(app, cell_l, cell_p, rows);
    free(cell_l);
    free(cell_p);
    return rc ? -1 : missing;
}

int ui_lens_ensure(ui_app *app, int pos, int final_only)
{
    return ui_lens_ensure_range(app, pos, pos + 1, final_only);
}

const float *ui_pattern(ui_app *app, int layer)
{
    ui_analysis *an = &app->an;
    if (an->n > 0 && !an->with_patterns && !an->error[0]) {
        app->dirty = 1; /* analysed again, keeping the patterns, before the next frame */
        return NULL;
    }
    if (an->n <= 0 || layer < 0 || layer >= app->cfg->n_layers || !an->pat)
        return NULL;
    return an->pat + (size_t)layer * app->cfg->n_heads * an->n * an->n;
}

void ui_set_target(ui_app *app, int32_t id)
{
    app->an.target = id;
    if (app->an.lens)
        memset(app->an.lens, 0, sizeof *app->an.lens * (size_t)(app->cfg->n_layers + 1) * app->an.n);
}

void ui_token_label(const ui_app *app, int32_t id, char *out, size_t cap)
{
    char raw[256];
    int l = app->tok ? lp_tokenizer_token_bytes(app->tok, id, raw, sizeof raw) : -1;
    if (l < 0) {
        snprintf(out, cap, "#%d", id);
        return;
    }
    if (l > (int)sizeof raw)
        l = (int)sizeof raw;
    if (l == 0) {
        snprintf(out, cap, "∅");
        return;
    }
    ui_escape_token(raw, l, out, cap);
}
