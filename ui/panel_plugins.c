/* loupe UI — the plugins view: every loaded plugin and method with its help and
 * parameters, a parameter form, and the method's results (scalars, strings, tensors,
 * tables) as scrollable text. Fully generic through lp_registry_* and lp_call_*; the call
 * runs on the worker thread with a progress gauge and Esc to cancel. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curses.h>

#include "ui.h"

#define MAX_PARAMS 32

typedef struct plug_state {
    int focus;      /* 0 methods, 1 form, 2 results */
    int method;     /* selected method index */
    int form_method;
    int field, editing;
    ui_edit values[MAX_PARAMS];
    char **lines;   /* results as text */
    int n_lines, cap_lines, scroll, hscroll;
} plug_state;

static void clear_lines(plug_state *s)
{
    for (int i = 0; i < s->n_lines; i++)
        free(s->lines[i]);
    s->n_lines = 0;
    s->scroll = s->hscroll = 0;
}

static void add_line(plug_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_line(plug_state *s, const char *fmt, ...)
{
    if (s->n_lines == s->cap_lines) {
        int cap = s->cap_lines ? s->cap_lines * 2 : 64;
        char **l = realloc(s->lines, sizeof *l * (size_t)cap);
        if (!l)
            return;
        s->lines = l;
        s->cap_lines = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    if (out)
        s->lines[s->n_lines++] = out;
}

/* Draws text wrapped at spaces into r from line `skip`; returns the lines it needed. */
static int wrap_text(ui_canvas *cv, ui_rect r, const char *t, int color)
{
    int y = 0;
    while (*t) {
        const char *nl = strchr(t, '\n');
        int len = nl ? (int)(nl - t) : (int)strlen(t);
        int l = len;
        if (ui_text_width(t) > r.w || l > r.w) {
            l = len < r.w ? len : r.w;
            int b = l;
            while (b > 0 && t[b] != ' ')
                b--;
            if (b > 0 && l < len)
                l = b;
        }
        char line[512];
        snprintf(line, sizeof line, "%.*s", l, t);
        if (y < r.h)
            cv_text(cv, r.x, r.y + y, r.w, line, color, 0);
        y++;
        t += l;
        while (*t == ' ')
            t++;
        if (*t == '\n')
            t++;
    }
    return y;
}

static void fill_form(ui_app *app, plug_state *s)
{
    lp_method_info mi;
    if (lp_registry_method(app->reg, s->method, &mi))
        return;
    s->form_method = s->method;
    s->field = 0;
    for (int i = 0; i < mi.n_params && i < MAX_PARAMS; i++) {
        const lp_param_desc *pd = &mi.params[i];
        if (pd->type == LP_PARAM_TEXT && (!pd->default_value || !*pd->default_value))
            ui_edit_set(&s->values[i], app->prompt.buf); /* the current prompt */
        else
            ui_edit_set(&s->values[i], pd->default_value ? pd->default_value : "");
    }
}

static void run_done(ui_app *app, lp_call *call, int rc, const char *err, void *user)
{
    plug_state *s = user;
    clear_lines(s);
    if (rc) {
        add_line(s, "%s", rc == LP_ECANCELLED ? "cancelled" : err);
        lp_call_free(call);
        return;
    }
    for (int i = 0; i < lp_call_n_results(call); i++) {
        const char *name = lp_call_result_name(call, i);
        switch (lp_call_result_kind(call, i)) {
        case LP_RESULT_SCALAR: add_line(s, "%s = %g", name, lp_call_result_scalar(call, i)); break;
        case LP_RESULT_STRING: add_line(s, "%s = %s", name, lp_call_result_string(call, i)); break;
        case LP_RESULT_TENSOR: {
            const char *axes = NULL;
            const lp_tensor *t = lp_call_result_tensor(call, i, &axes);
            char shape[128] = "";
            int o = 0;
            for (int d = 0; d < t->ndim; d++)
                o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
            add_line(s, "%s: tensor [%s]%s%s%s", name, shape, axes && *axes ? " (" : "", axes ? axes : "",
                     axes && *axes ? ")" : "");
            if (t->ndim <= 2 && lp_tensor_nelem(t) <= 64 * 64) {
                int rows = t->ndim == 2 ? (int)t->ne[0] : 1, cols = t->ndim == 0 ? 1 : (int)t->ne[t->ndim - 1];
                const float *v = t->data;
                for (int r = 0; r < rows; r++) {
                    char row[64 * 12 + 16];
                    int p = snprintf(row, sizeof row, "  %3d │", r);
                    for (int c = 0; c < cols && p < (int)sizeof row - 12; c++)
                        p += snprintf(row + p, sizeof row - (size_t)p, " %9.4f", v[(size_t)r * cols + c]);
                    add_line(s, "%s", row);
                }
            }
            break;
        }
        case LP_RESULT_TABLE: {
            int nc = lp_call_table_n_cols(call, i), nr = lp_call_table_n_rows(call, i);
            add_line(s, "%s: table, %d rows", name, nr);
            int wcol[64] = {0};
            nc = nc > 64 ? 64 : nc;
            char cell[128];
            for (int c = 0; c < nc; c++)
                wcol[c] = ui_text_width(lp_call_table_col(call, i, c));
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nc; c++) {
                    const lp_cell *x = lp_call_table_cell(call, i, r, c);
                    if (x->is_num) snprintf(cell, sizeof cell, "%.6g", x->num);
                    else ui_escape_token(x->str ? x->str : "", x->str ? (int)strlen(x->str) : 0, cell, sizeof cell);
                    int w = ui_text_width(cell);
                    if (w > wcol[c]) wcol[c] = w > 40 ? 40 : w;
                }
            char row[4096];
            int p = 0;
            for (int c = 0; c < nc; c++)
                p += snprintf(row + p, sizeof row - (size_t)p, "  %-*s", wcol[c], lp_call_table_col(call, i, c));
            add_line(s, "%s", row);
            for (int r = 0; r < nr; r++) {
                p = 0;
                for (int c = 0; c < nc && p < (int)sizeof row - 64; c++) {
                    const lp_cell *x = lp_call_table_cell(call, i, r, c);
                    if (x->is_num) snprintf(cell, sizeof cell, "%.6g", x->num);
                    else ui_escape_token(x->str ? x->str : "", x->str ? (int)strlen(x->str) : 0, cell, sizeof cell);
                    int pad = wcol[c] - ui_text_width(cell);
                    p += snprintf(row + p, sizeof row - (size_t)p, "  %s%*s", cell, pad > 0 ? pad : 0, "");
                }
                add_line(s, "%s", row);
            }
            break;
        }
        }
    }
    if (s->n_lines == 0)
        add_line(s, "(no results)");
    s->focus = 2;
    lp_call_free(call);
}

static void run_method(ui_app *app, plug_state *s)
{
    lp_method_info mi;
    if (lp_registry_method(app->reg, s->method, &mi))
        return;
    if (s->form_method != s->method)
        fill_form(app, s);
    lp_error err = {0};
    lp_call *c = lp_call_new(app->reg, mi.full_name, app->model, &err);
    if (!c) {
        ui_set_msg(app, 1, "%s", err.msg);
        return;
    }
    for (int i = 0; i < mi.n_params && i < MAX_PARAMS; i++) {
        if (!s->values[i].len && mi.params[i].default_value)
            continue;
        if (lp_call_set_param(c, mi.params[i].name, s->values[i].buf, &err)) {
            ui_set_msg(app, 1, "%s", err.msg);
            lp_call_free(c);
            return;
        }
    }
    clear_lines(s);
    add_line(s, "running %s…", mi.full_name);
    if (ui_worker_start(app, c, mi.full_name, run_done, s))
        lp_call_free(c);
}

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    plug_state *s = p->state;
    int lw = r.w >= 120 ? 36 : 26;
    ui_rect li = cv_box(cv, (ui_rect){r.x, r.y, lw, r.h}, "Plugins and methods", s->focus == 0);
    int nm = app->reg ? lp_registry_n_methods(app->reg) : 0;
    if (nm == 0) {
        int y = li.y;
        cv_text(cv, li.x, y++, li.w, "no plugins loaded", C_ERROR, 0);
        for (int i = 0; app->reg && i < lp_registry_n_search_dirs(app->reg) && y < li.y + li.h; i++) {
            int ex = 0;
            const char *d = lp_registry_search_dir(app->reg, i, &ex);
            cv_printf(cv, li.x, y++, li.w, C_DIM, 0, "%s %s", ex ? "+" : "-", d);
        }
        return;
    }
    if (s->method >= nm) s->method = nm - 1;
    int y = li.y;
    const char *last_plugin = "";
    /* scroll the list so that the selection is visible */
    int first = 0, rows_needed = 0;
    for (int i = 0; i <= s->method; i++) {
        lp_method_info mi;
        lp_registry_method(app->reg, i, &mi);
        rows_needed += strcmp(mi.plugin, last_plugin) ? 2 : 1;
        last_plugin = mi.plugin;
    }
    if (rows_needed > li.h)
        first = s->method - li.h / 2 < 0 ? 0 : s->method - li.h / 2;
    last_plugin = "";
    for (int i = first; i < nm && y < li.y + li.h; i++) {
        lp_method_info mi;
        lp_registry_method(app->reg, i, &mi);
        if (strcmp(mi.plugin, last_plugin)) {
            lp_plugin_info pi;
            lp_registry_plugin(app->reg, mi.plugin_index, &pi);
            cv_printf(cv, li.x, y++, li.w, C_TITLE, A_BOLD_, "%s %s", pi.name, pi.version);
            last_plugin = mi.plugin;
            if (y >= li.y + li.h)
                break;
        }
        int sel = i == s->method;
        cv_fill(cv, (ui_rect){li.x, y, li.w, 1}, ' ', sel ? C_SEL : C_NORMAL, sel ? A_REV_ : 0);
        cv_printf(cv, li.x, y++, li.w, sel ? C_SEL : C_NORMAL, sel ? A_BOLD_ | A_REV_ : 0, "%s%s", sel ? ">" : " ", mi.name);
    }
    /* help and the parameter form */
    lp_method_info mi;
    lp_registry_method(app->reg, s->method, &mi);
    if (s->form_method != s->method)
        fill_form(app, s);
    int rw = r.w - lw, fh = (r.h * 3) / 5;
    char title[160];
    snprintf(title, sizeof title, "%s — %s", mi.full_name, mi.summary ? mi.summary : "");
    ui_rect fi = cv_box(cv, (ui_rect){r.x + lw, r.y, rw, fh}, title, s->focus == 1);
    int np = mi.n_params < MAX_PARAMS ? mi.n_params : MAX_PARAMS;
    int help_h = fi.h - np - 1;
    if (help_h > 0 && mi.help)
        wrap_text(cv, (ui_rect){fi.x, fi.y, fi.w, help_h}, mi.help, C_DIM);
    int fy = fi.y + (help_h > 0 ? help_h : 0);
    if (fy < fi.y + fi.h)
        cv_text(cv, fi.x, fy++, fi.w, "parameters (Enter edits, r runs):", C_TITLE, A_BOLD_);
    for (int i = 0; i < np && fy < fi.y + fi.h; i++, fy++) {
        const lp_param_desc *pd = &mi.params[i];
        int sel = s->focus == 1 && i == s->field;
        int x = fi.x + cv_printf(cv, fi.x, fy, 30, sel ? C_SEL : C_NORMAL, sel ? A_BOLD_ : 0, "%s%s %s%s ", sel ? ">" : " ",
                                 pd->name, lp_param_type_name(pd->type), pd->default_value ? "" : "*");
        x = x < fi.x + 22 ? fi.x + 22 : x;
        ui_edit_draw(&s->values[i], cv, x, fy, fi.x + fi.w - x, sel && s->editing);
    }
    /* results */
    ui_rect ri = cv_box(cv, (ui_rect){r.x + lw, r.y + fh, rw, r.h - fh}, "Results (↑ ↓ PgUp PgDn ← →)", s->focus == 2);
    if (s->scroll > s->n_lines - ri.h) s->scroll = s->n_lines - ri.h;
    if (s->scroll < 0) s->scroll = 0;
    for (int i = 0; i < ri.h && s->scroll + i < s->n_lines; i++) {
        const char *l = s->lines[s->scroll + i];
        int skip = s->hscroll;
        while (*l && skip-- > 0) { /* whole characters */
            l++;
            while ((*l & 0xc0) == 0x80)
                l++;
        }
        cv_text(cv, ri.x, ri.y + i, ri.w, l, C_NORMAL, 0);
    }
}

static int on_key(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch)
{
    plug_state *s = p->state;
    int nm = app->reg ? lp_registry_n_methods(app->reg) : 0;
    if (nm == 0)
        return 0;
    lp_method_info mi;
    lp_registry_method(app->reg, s->method, &mi);
    int np = mi.n_params < MAX_PARAMS ? mi.n_params : MAX_PARAMS;
    if (s->editing) {
        if (key == 27 || key == '\r' || key == '\n' || key == KEY_ENTER) {
            s->editing = 0;
            return UI_REDRAW;
        }
        return ui_edit_key(&s->values[s->field], key, wch) ? UI_REDRAW : 0;
    }
    switch (action) {
    case ACT_UP:
        if (s->focus == 0 && s->method > 0) s->method--;
        else if (s->focus == 1 && s->field > 0) s->field--;
        else if (s->focus == 2 && s->scroll > 0) s->scroll--;
        break;
    case ACT_DOWN:
        if (s->focus == 0 && s->method < nm - 1) s->method++;
        else if (s->focus == 1 && s->field < np - 1) s->field++;
        else if (s->focus == 2) s->scroll++;
        break;
    case ACT_PGDN: s->scroll += 10; s->focus = 2; break;
    case ACT_PGUP: s->scroll -= 10; s->focus = 2; break;
    case ACT_LEFT: if (s->hscroll > 0) s->hscroll -= 8; break;
    case ACT_RIGHT: s->hscroll += 8; break;
    case ACT_ENTER:
        if (s->focus == 0) { s->focus = 1; s->field = 0; }
        else if (s->focus == 1 && np > 0) s->editing = 1;
        break;
    case ACT_FOCUS: s->focus = (s->focus + 1) % 3; break;
    case ACT_RUN: run_method(app, s); break;
    case ACT_CANCEL: if (s->focus > 0) s->focus--; break;
    default: return 0;
    }
    return UI_REDRAW;
}

static int editing(ui_app *app, ui_panel *p)
{
    (void)app;
    return ((plug_state *)p->state)->editing;
}

static void on_focus(ui_app *app, ui_panel *p, int gained)
{
    (void)app;
    plug_state *s = p->state;
    if (gained < 0 && s) {
        clear_lines(s);
        free(s->lines);
        s->lines = NULL;
    }
}

void ui_panel_plugins_init(ui_panel *p)
{
    plug_state *s = calloc(1, sizeof *s);
    if (s)
        s->form_method = -1;
    *p = (ui_panel){.name = "Plugins", .ctx = CTX_PLUGINS, .draw = draw, .on_key = on_key, .on_focus = on_focus,
                    .editing = editing, .state = s};
}
