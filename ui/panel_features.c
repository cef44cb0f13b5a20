/* loupe UI — the features view: a sparse autoencoder's features on the prompt's tokens,
 * and a feature's dashboard.
 *
 * Left: the token strip (the selected position is app->sel_pos, shared with the other
 * views) and the selected token's active features, sorted by activation. Right: the
 * dashboard of the feature chosen with Enter: logit effects, activation density and
 * histogram, top-activating contexts and quantile samples with per-token activations.
 *
 * Everything goes through the plugin host by method name: `sae.encode` (with the UI's own
 * token ids, so positions line up) whenever the tokens or the SAE change while the view is
 * shown, and `sae.dashboard` (with the store when one is set; without one it returns the
 * logit effects only). Both run on the worker thread, started from draw when the worker is
 * idle (an encoding is short; the dashboard shows the progress gauge and Esc cancels it).
 * When those methods are not loaded the view says so and does nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curses.h>

#include "ui.h"

#define ENC_K "64"    /* features listed per token */
#define DASH_WINDOW "12"
#define DASH_QUANTILE "2"
#define DASH_LOGITS 10
#define HIST_BINS 20

typedef struct frow {
    int feature;
    float act;
} frow;

typedef struct dtok {
    char *text; /* escaped for display */
    float act;
    int offset; /* from the activating token */
} dtok;

typedef struct dex {
    char kind[8]; /* top, q4 … q1 */
    float act;
    int first, n; /* its tokens in tk */
} dex;

typedef struct dlogit {
    int id;
    float effect;
    char text[96];
} dlogit;

enum { DASH_NONE, DASH_RUNNING, DASH_READY, DASH_ERROR };
enum { ED_NONE, ED_SAE, ED_STORE, ED_FEATURE };

typedef struct feat_state {
    /* the encoding of the prompt's tokens */
    int32_t *enc_ids;   /* [enc_n] the tokens the results are for */
    int enc_n;
    unsigned enc_gen;   /* app->sae_gen they are for */
    int enc_have;       /* results or an error for (enc_ids, enc_gen) */
    int enc_running, enc_force;
    int32_t *job_ids;   /* [job_n] of the encoding in flight */
    int job_n;
    unsigned job_gen;
    frow *rows;         /* features of position p: rows[row_start[p] .. row_start[p+1]) */
    int *row_start;     /* [enc_n + 1] */
    float *l0;          /* [enc_n] */
    char enc_error[512], hook[128];
    unsigned enc_version; /* bumped by each delivered encoding */

    int fsel, fsel_pos, focus; /* selected feature row, for position fsel_pos; focus 0 list, 1 dashboard */
    unsigned fsel_version;
    int cursor_to;      /* a feature opened by number: put the cursor on it when it is listed (-1: none) */

    /* the dashboard */
    int want_dash;      /* feature to compute when the worker is free (-1: none) */
    int dash_state, dash_feature, dash_had_store;
    unsigned dash_job_gen; /* app->sae_gen of the dashboard in flight */
    unsigned seen_sae_gen, seen_store_gen;
    char dash_error[512], dash_note[256];
    int has_stats;
    double density, max_act, mean_act, scanned;
    float hist[HIST_BINS];
    int has_hist;
    dlogit up[DASH_LOGITS], down[DASH_LOGITS];
    int n_up, n_down;
    dex *ex;
    int n_ex;
    dtok *tk;
    int n_tk;
    int scroll, page;

    int editing; /* ED_* */
    ui_edit field;
} feat_state;

static int have_methods(const ui_app *app)
{
    return app->reg && lp_registry_find_method(app->reg, "sae.encode") >= 0 &&
           lp_registry_find_method(app->reg, "sae.dashboard") >= 0;
}

static const char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    static char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)n, path);
    const char *sl = strrchr(buf, '/');
    return sl && sl[1] ? sl + 1 : buf;
}

/* ---------------------------------------------------------------- results */

static int col_of(const lp_call *c, int t, const char *name)
{
    for (int i = 0; i < lp_call_table_n_cols(c, t); i++)
        if (!strcmp(lp_call_table_col(c, t, i), name))
            return i;
    return -1;
}

static double cell_num(const lp_call *c, int t, int row, int col)
{
    const lp_cell *x = col >= 0 ? lp_call_table_cell(c, t, row, col) : NULL;
    return x && x->is_num ? x->num : 0;
}

static const char *cell_str(const lp_call *c, int t, int row, int col)
{
    const lp_cell *x = col >= 0 ? lp_call_table_cell(c, t, row, col) : NULL;
    return x && !x->is_num && x->str ? x->str : "";
}

static double scalar_of(const lp_call *c, const char *name, int *found)
{
    int i = lp_call_find_result(c, name);
    *found = i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_SCALAR;
    return *found ? lp_call_result_scalar(c, i) : 0;
}

static void free_encoding(feat_state *s)
{
    free(s->rows);
    free(s->row_start);
    free(s->l0);
    s->rows = NULL;
    s->row_start = NULL;
    s->l0 = NULL;
}

static void free_dash(feat_state *s)
{
    for (int i = 0; i < s->n_tk; i++)
        free(s->tk[i].text);
    free(s->tk);
    free(s->ex);
    s->tk = NULL;
    s->ex = NULL;
    s->n_tk = s->n_ex = s->n_up = s->n_down = 0;
    s->has_stats = s->has_hist = 0;
    s->dash_error[0] = s->dash_note[0] = 0;
    s->dash_state = DASH_NONE;
    s->scroll = 0;
}

static void enc_done(ui_app *app, lp_call *call, int rc, const char *err, void *user)
{
    feat_state *s = user;
    s->enc_running = 0;
    free(s->enc_ids);
    s->enc_ids = s->job_ids;
    s->enc_n = s->job_n;
    s->job_ids = NULL;
    s->enc_gen = s->job_gen;
    s->enc_have = 1;
    s->enc_version++;
    free_encoding(s);
    s->enc_error[0] = 0;
    if (rc) {
        if (rc == LP_ECANCELLED) {
            snprintf(s->enc_error, sizeof s->enc_error, "encoding cancelled (r encodes again)");
        } else {
            snprintf(s->enc_error, sizeof s->enc_error, "%s", err && *err ? err : lp_strerror(rc));
            ui_set_msg(app, 1, "%s", s->enc_error); /* the message names the method */
        }
        lp_call_free(call);
        return;
    }
    int t = lp_call_find_result(call, "features");
    int n = s->enc_n, nr = t >= 0 && lp_call_result_kind(call, t) == LP_RESULT_TABLE ? lp_call_table_n_rows(call, t) : 0;
    s->rows = malloc(sizeof *s->rows * (size_t)(nr > 0 ? nr : 1));
    s->row_start = calloc((size_t)n + 1, sizeof *s->row_start);
    s->l0 = calloc((size_t)n > 0 ? (size_t)n : 1, sizeof *s->l0);
    if (!s->rows || !s->row_start || !s->l0) {
        free_encoding(s);
        snprintf(s->enc_error, sizeof s->enc_error, "out of memory");
        lp_call_free(call);
        return;
    }
    int cp = col_of(call, t, "pos"), cf = col_of(call, t, "feature"), ca = col_of(call, t, "activation");
    /* rows come by position, then rank: count per position, then place them */
    int *count = calloc((size_t)n + 1, sizeof *count);
    for (int r = 0; r < nr && count; r++) {
        int p = (int)cell_num(call, t, r, cp);
        if (p >= 0 && p < n)
            count[p]++;
    }
    for (int p = 0; p < n; p++)
        s->row_start[p + 1] = s->row_start[p] + (count ? count[p] : 0);
    if (count)
        memset(count, 0, sizeof *count * (size_t)n);
    for (int r = 0; r < nr && count; r++) {
        int p = (int)cell_num(call, t, r, cp);
        if (p < 0 || p >= n)
            continue;
        s->rows[s->row_start[p] + count[p]++] =
            (frow){(int)cell_num(call, t, r, cf), (float)cell_num(call, t, r, ca)};
    }
    free(count);
    int li = lp_call_find_result(call, "l0");
    if (li >= 0 && lp_call_result_kind(call, li) == LP_RESULT_TENSOR) {
        const lp_tensor *l0 = lp_call_result_tensor(call, li, NULL);
        if (l0 && lp_tensor_nelem(l0) == n)
            memcpy(s->l0, l0->data, sizeof(float) * (size_t)n);
    }
    int hi = lp_call_find_result(call, "hook");
    snprintf(s->hook, sizeof s->hook, "%s",
             hi >= 0 && lp_call_result_kind(call, hi) == LP_RESULT_STRING ? lp_call_result_string(call, hi) : "");
    lp_call_free(call);
}

static void dash_done(ui_app *app, lp_call *call, int rc, const char *err, void *user)
{
    feat_state *s = user;
    if (s->dash_job_gen != app->sae_gen || s->dash_state != DASH_RUNNING) {
        lp_call_free(call); /* the SAE changed meanwhile: a dashboard of the old one */
        return;
    }
    if (rc) {
        s->dash_state = DASH_ERROR;
        snprintf(s->dash_error, sizeof s->dash_error, "%s",
                 rc == LP_ECANCELLED ? "cancelled (Enter computes it again)" : err && *err ? err : lp_strerror(rc));
        if (rc == LP_ECANCELLED)
            ui_set_msg(app, 0, "sae.dashboard cancelled");
        else
            ui_set_msg(app, 1, "%s", s->dash_error); /* the message names the method */
        lp_call_free(call);
        return;
    }
    ui_set_msg(app, 0, "feature %d: dashboard in %.0f ms", s->dash_feature, ui_now_ms() - app->worker.started);
    s->dash_state = DASH_READY;
    int f1, f2, f3, f4;
    s->density = scalar_of(call, "density", &f1);
    s->max_act = scalar_of(call, "max_activation", &f2);
    s->mean_act = scalar_of(call, "mean_activation", &f3);
    s->scanned = scalar_of(call, "tokens_scanned", &f4);
    s->has_stats = f1 && f2;
    int i = lp_call_find_result(call, "histogram");
    if (i >= 0 && lp_call_result_kind(call, i) == LP_RESULT_TENSOR) {
        const lp_tensor *h = lp_call_result_tensor(call, i, NULL);
        if (h && lp_tensor_nelem(h) == HIST_BINS) {
            memcpy(s->hist, h->data, sizeof s->hist);
            s->has_hist = 1;
        }
    }
    i = lp_call_find_result(call, "note");
    if (i >= 0 && lp_call_result_kind(call, i) == LP_RESULT_STRING)
        snprintf(s->dash_note, sizeof s->dash_note, "%s", lp_call_result_string(call, i));
    /* logit effects */
    int t = lp_call_find_result(call, "logits");
    if (t >= 0 && lp_call_result_kind(call, t) == LP_RESULT_TABLE) {
        int cd = col_of(call, t, "direction"), ci = col_of(call, t, "id"), ce = col_of(call, t, "effect"),
            ct = col_of(call, t, "token");
        for (int r = 0; r < lp_call_table_n_rows(call, t); r++) {
            int up = !strcmp(cell_str(call, t, r, cd), "up");
            dlogit *l = up ? (s->n_up < DASH_LOGITS ? &s->up[s->n_up++] : NULL)
                           : (s->n_down < DASH_LOGITS ? &s->down[s->n_down++] : NULL);
            if (!l)
                continue;
            l->id = (int)cell_num(call, t, r, ci);
            l->effect = (float)cell_num(call, t, r, ce);
            if (ci >= 0)
                ui_token_label(app, l->id, l->text, sizeof l->text);
            else {
                const char *tx = cell_str(call, t, r, ct);
                ui_escape_token(tx, (int)strlen(tx), l->text, sizeof l->text);
            }
        }
    }
    /* examples and their tokens */
    int te = lp_call_find_result(call, "examples"), tt = lp_call_find_result(call, "tokens");
    if (te >= 0 && tt >= 0 && lp_call_result_kind(call, te) == LP_RESULT_TABLE &&
        lp_call_result_kind(call, tt) == LP_RESULT_TABLE) {
        int ne = lp_call_table_n_rows(call, te), nt = lp_call_table_n_rows(call, tt);
        s->ex = calloc((size_t)(ne > 0 ? ne : 1), sizeof *s->ex);
        s->tk = calloc((size_t)(nt > 0 ? nt : 1), sizeof *s->tk);
        if (s->ex && s->tk) {
            int ck = col_of(call, te, "kind"), ca = col_of(call, te, "activation");
            for (int r = 0; r < ne; r++) {
                snprintf(s->ex[r].kind, sizeof s->ex[r].kind, "%s", cell_str(call, te, r, ck));
                s->ex[r].act = (float)cell_num(call, te, r, ca);
                s->ex[r].first = -1;
            }
            s->n_ex = ne;
            int cx = col_of(call, tt, "example"), co = col_of(call, tt, "offset"), ctk = col_of(call, tt, "token"),
                cta = col_of(call, tt, "activation");
            for (int r = 0; r < nt; r++) { /* rows come grouped by example */
                int e = (int)cell_num(call, tt, r, cx);
                if (e < 0 || e >= ne)
                    continue;
                const char *tx = cell_str(call, tt, r, ctk);
                char esc[256];
                ui_escape_token(tx, (int)strlen(tx), esc, sizeof esc);
                dtok *d = &s->tk[s->n_tk];
                d->text = strdup(esc);
                if (!d->text)
                    break;
                d->offset = (int)cell_num(call, tt, r, co);
                d->act = (float)cell_num(call, tt, r, cta);
                if (s->ex[e].first < 0)
                    s->ex[e].first = s->n_tk;
                s->ex[e].n++;
                s->n_tk++;
            }
        }
    }
    lp_call_free(call);
}

/* ---------------------------------------------------------------- jobs */

static int encoding_current(const ui_app *app, const feat_state *s)
{
    return s->enc_have && s->enc_gen == app->sae_gen && s->enc_n == app->an.n && app->an.n > 0 &&
           !memcmp(s->enc_ids, app->an.ids, sizeof(int32_t) * (size_t)app->an.n);
}

static void start_encode(ui_app *app, feat_state *s)
{
    lp_error err = {0};
    s->enc_force = 0;
    lp_call *c = lp_call_new(app->reg, "sae.encode", app->model, &err);
    int32_t *ids = malloc(sizeof *ids * (size_t)app->an.n);
    if (!c || !ids || lp_call_set_param(c, "sae", app->sae_path, &err) || lp_call_set_param(c, "k", ENC_K, &err) ||
        lp_call_set_param_tokens(c, "prompt", app->an.ids, app->an.n, &err)) {
        /* remember the failure for these tokens, as a failed run would */
        free(s->job_ids);
        s->job_ids = ids;
        if (ids)
            memcpy(ids, app->an.ids, sizeof *ids * (size_t)app->an.n);
        s->job_n = ids ? app->an.n : 0;
        s->job_gen = app->sae_gen;
        enc_done(app, c, err.code ? err.code : LP_ENOMEM, err.msg[0] ? err.msg : "out of memory", s);
        return;
    }
    memcpy(ids, app->an.ids, sizeof *ids * (size_t)app->an.n);
    free(s->job_ids);
    s->job_ids = ids;
    s->job_n = app->an.n;
    s->job_gen = app->sae_gen;
    if (ui_worker_start(app, c, "sae.encode", enc_done, s)) {
        lp_call_free(c);
        return;
    }
    app->worker.quiet = 1; /* enc_done reports failures itself */
    s->enc_running = 1;
}

static void start_dash(ui_app *app, feat_state *s, int feature)
{
    lp_error err = {0};
    char fs[16];
    snprintf(fs, sizeof fs, "%d", feature);
    lp_call *c = lp_call_new(app->reg, "sae.dashboard", app->model, &err);
    if (!c || lp_call_set_param(c, "sae", app->sae_path, &err) || lp_call_set_param(c, "feature", fs, &err) ||
        (app->store_path[0] && lp_call_set_param(c, "store", app->store_path, &err)) ||
        lp_call_set_param(c, "n_quantile", DASH_QUANTILE, &err) || lp_call_set_param(c, "window", DASH_WINDOW, &err)) {
        free_dash(s);
        s->dash_feature = feature;
        s->dash_state = DASH_ERROR;
        snprintf(s->dash_error, sizeof s->dash_error, "%s", err.msg[0] ? err.msg : "out of memory");
        ui_set_msg(app, 1, "sae.dashboard: %s", s->dash_error);
        lp_call_free(c);
        return;
    }
    if (ui_worker_start(app, c, "sae.dashboard", dash_done, s)) {
        lp_call_free(c);
        return;
    }
    app->worker.quiet = 1; /* dash_done reports */
    free_dash(s);
    s->dash_feature = feature;
    s->dash_had_store = app->store_path[0] != 0;
    s->dash_state = DASH_RUNNING;
    s->dash_job_gen = app->sae_gen;
}

/* Start what the view needs when the worker is free: the encoding first, then a dashboard. */
static void pump(ui_app *app, feat_state *s)
{
    if (s->seen_sae_gen != app->sae_gen) { /* another SAE: its dashboard is gone */
        s->seen_sae_gen = app->sae_gen;
        s->seen_store_gen = app->store_gen;
        free_dash(s);
        s->dash_feature = -1;
    }
    if (s->seen_store_gen != app->store_gen) { /* another store: the same feature again */
        s->seen_store_gen = app->store_gen;
        if (s->dash_state != DASH_NONE && s->want_dash < 0)
            s->want_dash = s->dash_feature;
    }
    if (app->open_feature >= 0) {
        s->want_dash = s->cursor_to = app->open_feature;
        app->open_feature = -1;
    }
    if (!have_methods(app) || app->worker.running || !app->sae_path[0])
        return;
    if (!app->dirty && app->an.n > 0 && (s->enc_force || !encoding_current(app, s))) {
        start_encode(app, s);
        return;
    }
    if (s->want_dash >= 0) {
        int f = s->want_dash;
        s->want_dash = -1;
        start_dash(app, s, f);
    }
}

/* ---------------------------------------------------------------- drawing */

/* Rows of a scrollable pane: row() gives the screen row of the next virtual row, or -1. */
typedef struct vrows {
    ui_canvas *cv;
    ui_rect r;
    int y, scroll;
} vrows;

static int vrow(vrows *v)
{
    int sy = v->y++ - v->scroll;
    return sy >= 0 && sy < v->r.h ? v->r.y + sy : -1;
}

/* Text wrapped at spaces over as many rows as it needs. */
static void vwrap(vrows *v, const char *t, int color, int attr)
{
    int w = v->r.w;
    while (*t) {
        int len = (int)strlen(t), l = len;
        if (ui_text_width(t) > w) {
            l = len < w ? len : w;
            int b = l;
            while (b > 0 && t[b] != ' ')
                b--;
            if (b > 0)
                l = b;
        }
        char line[1024];
        snprintf(line, sizeof line, "%.*s", l, t);
        int y = vrow(v);
        if (y >= 0)
            cv_text(v->cv, v->r.x, y, w, line, color, attr);
        t += l;
        while (*t == ' ')
            t++;
    }
}

static int heat_level(float act, double mx)
{
    if (!(act > 0) || !(mx > 0))
        return -1;
    int lv = (int)(act / mx * UI_HEAT_LEVELS);
    if (lv < 1) lv = 1;
    if (lv >= UI_HEAT_LEVELS) lv = UI_HEAT_LEVELS - 1;
    return lv;
}

/* One example: a prefix, then its tokens flowing over rows; a token's background is its
 * activation (relative to the feature's maximum); without colours a row of shade
 * characters under the text says the same. The activating token is bold and underlined. */
static void draw_example(vrows *v, const char *prefix, const dex *e, const dtok *tk, double mx)
{
    ui_canvas *cv = v->cv;
    int pw = 9, w = v->r.w, x = pw;
    int mono = cv->mono;
    int y = vrow(v), ys = mono ? vrow(v) : -1;
    if (y >= 0)
        cv_text(cv, v->r.x, y, pw - 1, prefix, C_DIM, 0);
    for (int i = 0; i < e->n; i++) {
        const dtok *d = &tk[e->first + i];
        int tw = ui_text_width(d->text);
        if (tw > w - pw)
            tw = w - pw;
        if (x + tw > w && x > pw) {
            y = vrow(v);
            ys = mono ? vrow(v) : -1;
            x = pw;
        }
        int lv = heat_level(d->act, mx);
        int color = lv < 0 ? C_NORMAL : mono ? C_NORMAL : C_HEAT0 + lv;
        int attr = d->offset == 0 ? A_BOLD_ | A_UL_ : 0;
        if (y >= 0)
            cv_text(cv, v->r.x + x, y, tw, d->text, color, attr);
        if (ys >= 0 && lv >= 0)
            for (int k = 0; k < tw; k++)
                cv_put(cv, v->r.x + x + k, ys, ui_shade_char(d->act / mx), C_DIM, 0);
        x += tw;
    }
}

static void draw_dashboard(ui_app *app, feat_state *s, ui_canvas *cv, ui_rect r)
{
    char title[200];
    if (s->dash_state == DASH_NONE)
        snprintf(title, sizeof title, "Dashboard");
    else
        snprintf(title, sizeof title, "Feature %d%s%s", s->dash_feature, s->hook[0] ? " · " : "", s->hook);
    ui_rect in = cv_box(cv, r, title, s->focus == 1);
    if (in.w < 8 || in.h < 1)
        return;
    s->page = in.h;
    vrows v = {cv, in, 0, s->scroll};
    if (!have_methods(app)) {
        vwrap(&v, "The sae plugin is not loaded: sae.encode and sae.dashboard are not available "
                  "(see the plugins view, 5).", C_ERROR, 0);
        return;
    }
    if (s->dash_state == DASH_NONE) {
        if (!app->sae_path[0])
            vwrap(&v, "Choose an SAE with s (a folder in the SAELens layout, e.g. "
                      "plugins/sae/toy/resid2_topk24 for the toy model) and optionally an activation store "
                      "with a (made by sae.harvest) for top contexts. Or: loupe ui --sae DIR --store DIR.",
                  C_DIM, 0);
        v.y++;
        vwrap(&v, "Select a token (← →) and one of its features (↑ ↓), then press Enter for the feature's "
                  "dashboard: its logit effects, activation density and top-activating contexts. g opens a "
                  "feature by number; ? lists the keys.",
              C_DIM, 0);
        return;
    }
    if (s->dash_state == DASH_RUNNING) {
        char t[160];
        snprintf(t, sizeof t, "computing the dashboard of feature %d… (Esc cancels)", s->dash_feature);
        vwrap(&v, t, C_DIM, 0);
        return;
    }
    if (s->dash_state == DASH_ERROR) {
        vwrap(&v, s->dash_error, C_ERROR, A_BOLD_);
        return;
    }
    char t[512];
    /* density and the histogram of the active activations */
    if (s->has_stats) {
        snprintf(t, sizeof t, "density %.3g%% of %.0f tokens · max %.3g · mean %.3g (when active)", s->density * 100,
                 s->scanned, s->max_act, s->mean_act);
        vwrap(&v, t, C_NORMAL, 0);
    }
    if (s->has_hist) {
        int y = vrow(&v);
        float hm = 0;
        for (int b = 0; b < HIST_BINS; b++)
            hm = s->hist[b] > hm ? s->hist[b] : hm;
        if (y >= 0 && hm > 0) {
            int x = in.x + cv_text(cv, in.x, y, in.w, "histogram 0 ", C_DIM, 0);
            for (int b = 0; b < HIST_BINS && x < in.x + in.w; b++, x++) {
                double lv = s->hist[b] / hm;
                if (cv->mono)
                    cv_put(cv, x, y, ui_shade_char(lv), C_NORMAL, 0);
                else
                    cv_put(cv, x, y, s->hist[b] > 0 ? 0x2581 + (uint32_t)(lv * 7 + 0.5) : ' ', C_HEAT0 + 7, 0);
            }
            cv_printf(cv, x + 1, y, in.x + in.w - x - 1, C_DIM, 0, "%.3g", s->max_act);
        }
    }
    if (s->dash_note[0] || !s->dash_had_store) {
        if (!s->dash_had_store)
            vwrap(&v, "No activation store: logit effects only. a chooses one (or --store DIR) for the density "
                      "and the top-activating contexts.",
                  C_DIM, 0);
        else
            vwrap(&v, s->dash_note, C_DIM, 0);
    }
    /* logit effects: two columns */
    if (s->n_up || s->n_down) {
        v.y += v.y > 0;
        int y = vrow(&v), cw = in.w / 2 < 36 ? in.w / 2 : 36;
        if (y >= 0) {
            cv_text(cv, in.x, y, cw, "promotes (W_dec·W_U)", C_TITLE, A_BOLD_);
            cv_text(cv, in.x + cw, y, in.w - cw, "suppresses", C_TITLE, A_BOLD_);
        }
        int tw = cw - 9 > 4 ? cw - 9 : 4;
        for (int i = 0; i < s->n_up || i < s->n_down; i++) {
            y = vrow(&v);
            if (y < 0)
                continue;
            if (i < s->n_up) {
                cv_text(cv, in.x, y, tw, s->up[i].text, C_GOOD, 0);
                cv_printf(cv, in.x + tw + 1, y, 8, C_NORMAL, 0, "%+7.3f", s->up[i].effect);
            }
            if (i < s->n_down) {
                cv_text(cv, in.x + cw, y, tw, s->down[i].text, C_ERROR, 0);
                cv_printf(cv, in.x + cw + tw + 1, y, 8, C_NORMAL, 0, "%+7.3f", s->down[i].effect);
            }
        }
    }
    /* contexts */
    int any_top = 0, any_q = 0;
    for (int i = 0; i < s->n_ex; i++) {
        if (s->ex[i].first < 0)
            continue;
        int top = !strcmp(s->ex[i].kind, "top");
        if (top && !any_top) {
            v.y++;
            int y = vrow(&v);
            if (y >= 0)
                cv_text(cv, in.x, y, in.w, "Top-activating contexts", C_TITLE, A_BOLD_);
            any_top = 1;
        }
        if (!top && !any_q) {
            v.y++;
            int y = vrow(&v);
            if (y >= 0)
                cv_text(cv, in.x, y, in.w, "Samples by activation quartile (q4 highest)", C_TITLE, A_BOLD_);
            any_q = 1;
        }
        char prefix[32];
        if (top)
            snprintf(prefix, sizeof prefix, "%8.3f", s->ex[i].act);
        else
            snprintf(prefix, sizeof prefix, "%s %5.2f", s->ex[i].kind, s->ex[i].act);
        draw_example(&v, prefix, &s->ex[i], s->tk, s->max_act);
    }
    if (s->dash_had_store && s->has_stats && s->n_ex == 0) {
        v.y++;
        vwrap(&v, "the feature never fires on the scanned tokens", C_DIM, 0);
    }
    /* the scroll position: clamp, and say what is below */
    int total = v.y;
    if (s->scroll > total - in.h)
        s->scroll = total - in.h > 0 ? total - in.h : 0;
    if (total - s->scroll > in.h) {
        char more[48];
        snprintf(more, sizeof more, " ↓ %d more ", total - s->scroll - in.h);
        int mw = ui_text_width(more);
        cv_text(cv, in.x + in.w - mw, in.y + in.h - 1, mw, more, C_KEY, A_REV_);
    }
}

static void draw_features(ui_app *app, feat_state *s, ui_canvas *cv, ui_rect r, int sel)
{
    char title[200], lab[128] = "";
    if (sel >= 0 && sel < app->an.n)
        ui_token_label(app, app->an.ids[sel], lab, sizeof lab);
    snprintf(title, sizeof title, "Features at %d %s", sel, lab);
    ui_rect in = cv_box(cv, r, sel >= 0 ? title : "Features", s->focus == 0);
    if (in.w < 4 || in.h < 1)
        return;
    vrows v = {cv, in, 0, 0};
    if (!have_methods(app)) {
        vwrap(&v, "the sae plugin is not loaded", C_ERROR, A_BOLD_);
        return;
    }
    if (!app->sae_path[0]) {
        vwrap(&v, "no SAE: press s to choose one (or loupe ui --sae DIR)", C_DIM, 0);
        return;
    }
    if (app->an.n == 0 || sel < 0) {
        vwrap(&v, "(no tokens: type a prompt)", C_DIM, 0);
        return;
    }
    if (!encoding_current(app, s)) {
        vwrap(&v, s->enc_running ? "encoding…" : app->worker.running ? "(waiting for the running job)" : "…", C_DIM,
              0);
        return;
    }
    if (s->enc_error[0]) {
        vwrap(&v, s->enc_error, C_ERROR, A_BOLD_);
        return;
    }
    int a = s->row_start[sel], n = s->row_start[sel + 1] - a;
    if (s->fsel_pos != sel || s->fsel_version != s->enc_version) {
        s->fsel_pos = sel;
        s->fsel_version = s->enc_version;
        s->fsel = 0;
    }
    for (int i = 0; s->cursor_to >= 0 && i < n; i++) /* once, when the list is first drawn */
        if (s->rows[a + i].feature == s->cursor_to)
            s->fsel = i;
    s->cursor_to = -1;
    if (s->fsel >= n)
        s->fsel = n > 0 ? n - 1 : 0;
    cv_printf(cv, in.x, in.y, in.w, C_TITLE, 0, "%s · L0 %.0f", base_name(app->sae_path), s->l0[sel]);
    if (n == 0) {
        if (in.h > 1)
            cv_text(cv, in.x, in.y + 1, in.w, "no active features", C_DIM, 0);
        return;
    }
    int rows = in.h - 1, first = s->fsel - rows + 1 > 0 ? s->fsel - rows + 1 : 0;
    float mx = s->rows[a].act > 0 ? s->rows[a].act : 1;
    for (int i = 0; i < rows && first + i < n; i++) {
        const frow *f = &s->rows[a + first + i];
        int y = in.y + 1 + i, chosen = first + i == s->fsel;
        int open = f->feature == s->dash_feature && s->dash_state != DASH_NONE;
        int col = chosen ? C_SEL : C_NORMAL, attr = chosen ? A_BOLD_ | (cv->mono ? A_REV_ : 0) : 0;
        if (chosen)
            cv_fill(cv, (ui_rect){in.x, y, 15, 1}, ' ', col, attr);
        cv_printf(cv, in.x, y, 15, col, attr, "%c%5d%c%8.3f", chosen ? '>' : ' ', f->feature, open ? '*' : ' ', f->act);
        int bw = in.w - 16;
        if (bw > 40)
            bw = 40;
        int fill = (int)(f->act / mx * bw + 0.5);
        for (int k = 0; k < fill && k < bw; k++)
            cv_put(cv, in.x + 16 + k, y, cv->mono ? '#' : 0x2588, C_HEAT0 + 7, 0);
    }
    if (first + rows < n) {
        char more[32];
        snprintf(more, sizeof more, " ↓ %d ", n - first - rows);
        int mw = ui_text_width(more);
        cv_text(cv, in.x + in.w - mw, in.y + in.h - 1, mw, more, C_KEY, A_REV_);
    }
}

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    feat_state *s = p->state;
    pump(app, s);
    int lw = r.w >= 120 ? r.w * 2 / 5 : r.w * 5 / 12, th = r.h >= 40 ? 12 : 6;
    int sel = ui_sel_pos(app);
    ui_rect ti = cv_box(cv, (ui_rect){r.x, r.y, lw, th}, "Tokens (← → select)", 0);
    ui_draw_token_strip(app, cv, ti, sel);
    draw_features(app, s, cv, (ui_rect){r.x, r.y + th, lw, r.h - th}, sel);
    draw_dashboard(app, s, cv, (ui_rect){r.x + lw, r.y, r.w - lw, r.h});
    if (s->editing) {
        static const char *what[] = {"", "SAE folder", "activation store (empty: none)", "feature number"};
        char t[160];
        snprintf(t, sizeof t, "%s (Enter sets, Esc cancels)", what[s->editing]);
        int w = r.w - 8 < 76 ? r.w - 8 : 76;
        ui_rect b = {r.x + (r.w - w) / 2, r.y + r.h / 2 - 1, w, 3};
        cv_fill(cv, b, ' ', C_NORMAL, 0);
        ui_rect bi = cv_box(cv, b, t, 1);
        ui_edit_draw(&s->field, cv, bi.x, bi.y, bi.w, 1);
    }
}

/* ---------------------------------------------------------------- keys */

static void field_done(ui_app *app, feat_state *s)
{
    const char *v = s->field.buf;
    struct stat sb;
    switch (s->editing) {
    case ED_SAE:
        if (!*v) {
            ui_set_msg(app, 1, "no SAE folder given");
            break;
        }
        ui_set_sae(app, v, NULL);
        ui_set_msg(app, 0, "SAE: %s", v);
        break;
    case ED_STORE:
        if (*v && (stat(v, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
            ui_set_msg(app, 1, "%s: no such folder (an activation store made by sae.harvest)", v);
            break;
        }
        ui_set_sae(app, NULL, v);
        ui_set_msg(app, 0, *v ? "activation store: %s" : "no activation store%s", v);
        break;
    case ED_FEATURE: {
        char *end;
        long f = strtol(v, &end, 10);
        while (*end == ' ')
            end++;
        if (!*v || *end || f < 0 || f > 1 << 30)
            ui_set_msg(app, 1, "not a feature number: '%s'", v);
        else if (!app->sae_path[0])
            ui_set_msg(app, 1, "no SAE: press s to choose one");
        else
            s->want_dash = s->cursor_to = (int)f;
        break;
    }
    default: break;
    }
    s->editing = ED_NONE;
}

static int on_key(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch)
{
    feat_state *s = p->state;
    if (s->editing) {
        if (key == 27) {
            s->editing = ED_NONE;
            return UI_REDRAW;
        }
        if (key == '\r' || key == '\n' || key == KEY_ENTER) {
            field_done(app, s);
            return UI_REDRAW;
        }
        return ui_edit_key(&s->field, key, wch) ? UI_REDRAW : 0;
    }
    int n = app->an.n, sel = ui_sel_pos(app);
    int n_feat = encoding_current(app, s) && !s->enc_error[0] && sel >= 0 && s->row_start
                     ? s->row_start[sel + 1] - s->row_start[sel]
                     : 0;
    switch (action) {
    case ACT_LEFT: if (sel > 0) app->sel_pos = sel - 1; break;
    case ACT_RIGHT: app->sel_pos = sel + 1 >= n - 1 ? -1 : sel + 1; break;
    case ACT_HOME: app->sel_pos = n > 0 ? 0 : -1; break;
    case ACT_END: app->sel_pos = -1; break;
    case ACT_UP:
        if (s->focus == 1) { if (s->scroll > 0) s->scroll--; }
        else if (s->fsel > 0) s->fsel--;
        break;
    case ACT_DOWN:
        if (s->focus == 1) s->scroll++; /* clamped when drawn */
        else if (s->fsel < n_feat - 1) s->fsel++;
        break;
    case ACT_PGDN: s->scroll += s->page > 2 ? s->page - 1 : 1; break;
    case ACT_PGUP:
        s->scroll -= s->page > 2 ? s->page - 1 : 1;
        if (s->scroll < 0) s->scroll = 0;
        break;
    case ACT_FOCUS: s->focus = !s->focus; break;
    case ACT_ENTER:
        if (!have_methods(app))
            ui_set_msg(app, 1, "the sae plugin is not loaded");
        else if (!app->sae_path[0])
            ui_set_msg(app, 1, "no SAE: press s to choose one");
        else if (n_feat == 0)
            ui_set_msg(app, 1, "no feature selected");
        else
            s->want_dash = s->rows[s->row_start[sel] + s->fsel].feature;
        break;
    case ACT_GOTO:
        s->editing = ED_FEATURE;
        ui_edit_set(&s->field, "");
        break;
    case ACT_SET_SAE:
        s->editing = ED_SAE;
        ui_edit_set(&s->field, app->sae_path);
        break;
    case ACT_SET_STORE:
        s->editing = ED_STORE;
        ui_edit_set(&s->field, app->store_path);
        break;
    case ACT_RUN:
        s->enc_force = 1;
        break;
    case ACT_EDIT: app->view = VIEW_PROMPT; app->prompt_editing = 1; break;
    default: return 0;
    }
    return UI_REDRAW;
}

static int editing(ui_app *app, ui_panel *p)
{
    (void)app;
    return ((feat_state *)p->state)->editing != ED_NONE;
}

static void on_focus(ui_app *app, ui_panel *p, int gained)
{
    (void)app;
    feat_state *s = p->state;
    if (gained >= 0 || !s)
        return;
    /* the app is going away (the worker has been stopped) */
    free_dash(s);
    free_encoding(s);
    free(s->enc_ids);
    free(s->job_ids);
    s->enc_ids = s->job_ids = NULL;
}

void ui_panel_features_init(ui_panel *p)
{
    feat_state *s = calloc(1, sizeof *s);
    if (s) {
        s->want_dash = -1;
        s->cursor_to = -1;
        s->dash_feature = -1;
        s->fsel_pos = -1;
    }
    *p = (ui_panel){.name = "Features", .ctx = CTX_FEATURES, .draw = draw, .on_key = on_key, .on_focus = on_focus,
                    .editing = editing, .state = s};
}
