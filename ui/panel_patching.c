/* loupe UI — attribution and patching: a clean / corrupted prompt pair, direct logit
 * attribution (dla.run) or activation patching (patching.run) on the worker thread, and
 * the resulting [layer, pos] or [layer, head] heatmap of the normalized metric. Those
 * plugins are written elsewhere: when they are not loaded the view says so. Parameters are
 * matched by type and name (text parameters named clean/prompt and corrupted), so the view
 * does not depend on their exact parameter lists. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curses.h>

#include "ui.h"

typedef struct patch_state {
    ui_edit clean, corrupt;
    int field, editing;
    float *m;  /* [rows, cols] */
    int rows, cols, cr, cc;
    char row_axis[32], col_axis[32], title[160], note[256];
} patch_state;

void ui_draw_matrix(ui_app *app, ui_canvas *cv, ui_rect r, const float *v, int rows, int cols, const char *row_axis,
                    const char *col_axis, int cur_r, int cur_c, int symmetric)
{
    const int lw = 6, cw = r.w >= 120 ? 8 : 6;
    int ncols = (r.w - lw) / cw, nrows = r.h - 2;
    if (ncols < 1 || nrows < 1)
        return;
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < rows * cols; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    float amax = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
    int c0 = cur_c - ncols + 1 > 0 ? cur_c - ncols + 1 : 0, r0 = cur_r - nrows + 1 > 0 ? cur_r - nrows + 1 : 0;
    int pos_cols = !strcmp(col_axis, "pos") && cols == app->an.n;
    for (int c = 0; c < ncols && c0 + c < cols; c++) {
        char lab[96];
        if (pos_cols) ui_token_label(app, app->an.ids[c0 + c], lab, sizeof lab);
        else snprintf(lab, sizeof lab, "%s%d", !strcmp(col_axis, "head") ? "H" : "", c0 + c);
        cv_text(cv, r.x + lw + c * cw, r.y, cw - 1, lab, c0 + c == cur_c ? C_SEL : C_TITLE, 0);
    }
    for (int rr = 0; rr < nrows && r0 + rr < rows; rr++) {
        int ri = r0 + rr;
        cv_printf(cv, r.x, r.y + 1 + rr, lw, ri == cur_r ? C_SEL : C_DIM, 0, "%s%d", !strcmp(row_axis, "layer") ? "L" : "", ri);
        for (int c = 0; c < ncols && c0 + c < cols; c++) {
            float x = v[(size_t)ri * cols + c0 + c];
            double level = symmetric ? (amax > 0 ? 0.5 + 0.5 * x / amax : 0.5) : (hi > lo ? (x - lo) / (hi - lo) : 0.5);
            char lab[32];
            snprintf(lab, sizeof lab, "%.2f", x);
            cv_heat(cv, r.x + lw + c * cw, r.y + 1 + rr, cw - 1, level, lab, ri == cur_r && c0 + c == cur_c);
        }
    }
    if (cur_r < rows && cur_c < cols)
        cv_printf(cv, r.x, r.y + r.h - 1, r.w, C_DIM, 0, "%s %d, %s %d: %.4f   (range %.3g … %.3g)", row_axis, cur_r,
                  col_axis, cur_c, v[(size_t)cur_r * cols + cur_c], lo, hi);
}

static void done(ui_app *app, lp_call *call, int rc, const char *err, void *user)
{
    (void)app;
    patch_state *s = user;
    if (rc) {
        snprintf(s->note, sizeof s->note, "%s", rc == LP_ECANCELLED ? "cancelled" : err);
        lp_call_free(call);
        return;
    }
    int best = -1;
    for (int i = 0; i < lp_call_n_results(call); i++) {
        if (lp_call_result_kind(call, i) != LP_RESULT_TENSOR)
            continue;
        const lp_tensor *t = lp_call_result_tensor(call, i, NULL);
        if (t->ndim != 2)
            continue;
        if (best < 0 || strstr(lp_call_result_name(call, i), "norm"))
            best = i;
    }
    if (best < 0) {
        snprintf(s->note, sizeof s->note, "the method returned no 2-D tensor to show");
        lp_call_free(call);
        return;
    }
    const char *axes = NULL;
    const lp_tensor *t = lp_call_result_tensor(call, best, &axes);
    free(s->m);
    s->rows = (int)t->ne[0];
    s->cols = (int)t->ne[1];
    s->m = malloc(sizeof(float) * (size_t)s->rows * s->cols);
    if (s->m)
        memcpy(s->m, t->data, sizeof(float) * (size_t)s->rows * s->cols);
    snprintf(s->row_axis, sizeof s->row_axis, "row");
    snprintf(s->col_axis, sizeof s->col_axis, "col");
    if (axes && strchr(axes, ',')) {
        sscanf(axes, "%31[^,],%31s", s->row_axis, s->col_axis);
    }
    snprintf(s->title, sizeof s->title, "%s: %s [%s]", app->worker.label, lp_call_result_name(call, best),
             axes ? axes : "");
    s->cr = s->rows - 1;
    s->cc = s->cols - 1;
    s->note[0] = 0;
    lp_call_free(call);
}

static void run(ui_app *app, patch_state *s, const char *method)
{
    if (!app->reg || lp_registry_find_method(app->reg, method) < 0) {
        snprintf(s->note, sizeof s->note, "not available: the %s plugin method is not loaded", method);
        return;
    }
    lp_method_info mi;
    lp_registry_method(app->reg, lp_registry_find_method(app->reg, method), &mi);
    lp_error err = {0};
    lp_call *c = lp_call_new(app->reg, method, app->model, &err);
    if (!c) {
        snprintf(s->note, sizeof s->note, "%s", err.msg);
        return;
    }
    int n_text = 0;
    for (int i = 0; i < mi.n_params; i++) {
        const lp_param_desc *pd = &mi.params[i];
        if (pd->type != LP_PARAM_TEXT && pd->type != LP_PARAM_STRING)
            continue;
        const char *v = NULL;
        if (strstr(pd->name, "corrupt"))
            v = s->corrupt.buf;
        else if (strstr(pd->name, "clean") || !strcmp(pd->name, "prompt"))
            v = s->clean.buf;
        else if (pd->type == LP_PARAM_TEXT)
            v = n_text == 0 ? s->clean.buf : s->corrupt.buf;
        if (pd->type == LP_PARAM_TEXT)
            n_text++;
        if (v && lp_call_set_param(c, pd->name, v, &err)) {
            snprintf(s->note, sizeof s->note, "%s", err.msg);
            lp_call_free(c);
            return;
        }
    }
    if (ui_worker_start(app, c, method, done, s))
        lp_call_free(c);
    else
        snprintf(s->note, sizeof s->note, "running %s…", method);
}

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    patch_state *s = p->state;
    if (!s->clean.len && !s->corrupt.len && app->prompt.len)
        ui_edit_set(&s->clean, app->prompt.buf);
    ui_rect in = cv_box(cv, (ui_rect){r.x, r.y, r.w, 4}, "Clean / corrupted (↑ ↓ choose, Enter edit, x swap)", 0);
    const char *lab[2] = {"clean     ", "corrupted "};
    ui_edit *e[2] = {&s->clean, &s->corrupt};
    for (int i = 0; i < 2; i++) {
        int sel = i == s->field;
        int x = in.x + cv_text(cv, in.x, in.y + i, in.w, lab[i], sel ? C_SEL : C_TITLE, sel ? A_BOLD_ : 0);
        ui_edit_draw(e[i], cv, x, in.y + i, in.x + in.w - x, sel && s->editing);
    }
    int have_dla = app->reg && lp_registry_find_method(app->reg, "dla.run") >= 0;
    int have_patch = app->reg && lp_registry_find_method(app->reg, "patching.run") >= 0;
    ui_rect hr = {r.x, r.y + 4, r.w, r.h - 4};
    ui_rect hi = cv_box(cv, hr, s->m ? s->title : "Attribution / patching (d: DLA, p: patching)", 1);
    if (s->m) {
        ui_draw_matrix(app, cv, (ui_rect){hi.x, hi.y, hi.w, hi.h - 1}, s->m, s->rows, s->cols, s->row_axis, s->col_axis,
                       s->cr, s->cc, 1);
    } else {
        int y = hi.y;
        cv_printf(cv, hi.x, y++, hi.w, have_dla ? C_GOOD : C_ERROR, 0, "dla.run       %s",
                  have_dla ? "available (d)" : "not available: plugin not loaded");
        cv_printf(cv, hi.x, y++, hi.w, have_patch ? C_GOOD : C_ERROR, 0, "patching.run  %s",
                  have_patch ? "available (p)" : "not available: plugin not loaded");
    }
    if (s->note[0])
        cv_text(cv, hi.x, hi.y + hi.h - 1, hi.w, s->note, strstr(s->note, "not") ? C_ERROR : C_DIM, 0);
}

static int on_key(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch)
{
    patch_state *s = p->state;
    if (s->editing) {
        if (key == 27 || key == '\r' || key == '\n' || key == KEY_ENTER) {
            s->editing = 0;
            return UI_REDRAW;
        }
        return ui_edit_key(s->field ? &s->corrupt : &s->clean, key, wch) ? UI_REDRAW : 0;
    }
    switch (action) {
    case ACT_UP: s->field = 0; if (s->m && s->cr > 0) s->cr--; break;
    case ACT_DOWN: s->field = 1; if (s->m && s->cr < s->rows - 1) s->cr++; break;
    case ACT_LEFT: if (s->cc > 0) s->cc--; break;
    case ACT_RIGHT: if (s->cc < s->cols - 1) s->cc++; break;
    case ACT_EDIT: s->editing = 1; break;
    case ACT_SWAP: { ui_edit t = s->clean; s->clean = s->corrupt; s->corrupt = t; break; }
    case ACT_RUN_DLA: run(app, s, "dla.run"); break;
    case ACT_RUN_PATCH: run(app, s, "patching.run"); break;
    default: return 0;
    }
    return UI_REDRAW;
}

static int editing(ui_app *app, ui_panel *p)
{
    (void)app;
    return ((patch_state *)p->state)->editing;
}

static void on_focus(ui_app *app, ui_panel *p, int gained)
{
    (void)app;
    patch_state *s = p->state;
    if (gained < 0 && s) {
        free(s->m);
        s->m = NULL;
    }
}

void ui_panel_patching_init(ui_panel *p)
{
    patch_state *s = calloc(1, sizeof *s);
    *p = (ui_panel){.name = "Patching", .ctx = CTX_PATCH, .draw = draw, .on_key = on_key, .on_focus = on_focus,
                    .editing = editing, .state = s};
}
