/* loupe UI — the prompt view: the prompt being edited, the token strip (boundaries, ids,
 * the selected position) and the next-token predictions at the selected position. The
 * prompt is re-analysed after every change (the loop coalesces a burst of keys). */
#include <stdio.h>
#include <string.h>

#include <curses.h>

#include "ui.h"

int ui_draw_token_strip(ui_app *app, ui_canvas *cv, ui_rect r, int sel)
{
    ui_analysis *an = &app->an;
    if (r.w < 4 || r.h < 1)
        return 0;
    if (an->error[0]) {
        cv_text(cv, r.x, r.y, r.w, an->error, C_ERROR, A_BOLD_);
        return 1;
    }
    if (an->n == 0) {
        cv_text(cv, r.x, r.y, r.w, app->dirty ? "…" : "(no tokens: type a prompt)", C_DIM, 0);
        return 1;
    }
    /* lay the chips out in lines of two rows (text, id), then scroll to the selection */
    int lines = 1, x = 0, sel_line = 0;
    enum { MAXL = 1024 };
    static short line_of[UI_MAX_TOKENS], x_of[UI_MAX_TOKENS], w_of[UI_MAX_TOKENS];
    for (int i = 0; i < an->n; i++) {
        char lab[128], idl[16];
        ui_token_label(app, an->ids[i], lab, sizeof lab);
        snprintf(idl, sizeof idl, "%d", an->ids[i]);
        int w = ui_text_width(lab), wi = (int)strlen(idl);
        if (w < wi)
            w = wi;
        if (w > r.w - 1)
            w = r.w - 1;
        if (x > 0 && x + w > r.w) {
            lines++;
            x = 0;
        }
        line_of[i] = (short)(lines - 1);
        x_of[i] = (short)x;
        w_of[i] = (short)w;
        if (i == sel)
            sel_line = lines - 1;
        x += w + 1;
    }
    int vis = r.h / 2 < 1 ? 1 : r.h / 2;
    int first = sel_line - vis + 1 < 0 ? 0 : sel_line - vis + 1;
    for (int i = 0; i < an->n; i++) {
        int ln = line_of[i] - first;
        if (ln < 0 || ln >= vis)
            continue;
        char lab[128], idl[16];
        ui_token_label(app, an->ids[i], lab, sizeof lab);
        snprintf(idl, sizeof idl, "%d", an->ids[i]);
        int col = i == sel ? C_SEL : (i % 2 ? C_TOK_B : C_TOK_A);
        int attr = i == sel ? A_BOLD_ | (cv->mono ? A_REV_ : 0) : 0;
        int y = r.y + 2 * ln;
        for (int k = 0; k < w_of[i]; k++)
            cv_put(cv, r.x + x_of[i] + k, y, ' ', col, attr);
        cv_text(cv, r.x + x_of[i], y, w_of[i], lab, col, attr);
        if (y + 1 < r.y + r.h)
            cv_text(cv, r.x + x_of[i], y + 1, w_of[i], idl, i == sel ? C_SEL : C_DIM, i == sel ? A_BOLD_ : 0);
        if (cv->mono && x_of[i] + w_of[i] < r.w)
            cv_put(cv, r.x + x_of[i] + w_of[i], y, '|', C_DIM, 0);
    }
    return 2 * vis;
}

void ui_draw_topk(ui_app *app, ui_canvas *cv, ui_rect r, const ui_lens_cell *c, const char *title)
{
    int y = r.y;
    if (title) {
        cv_text(cv, r.x, y++, r.w, title, C_TITLE, A_BOLD_);
    }
    if (!c || !c->done) {
        if (y < r.y + r.h)
            cv_text(cv, r.x, y, r.w, ui_model_busy(app) ? "(waiting for the running job)" : "…", C_DIM, 0);
        return;
    }
    int labw = r.w >= 60 ? 24 : r.w >= 40 ? 16 : 10;
    for (int i = 0; i < UI_TOPK && y < r.y + r.h; i++, y++) {
        if (c->top[i] < 0)
            break;
        char lab[128];
        ui_token_label(app, c->top[i], lab, sizeof lab);
        cv_printf(cv, r.x, y, 4, C_DIM, 0, "%2d ", i + 1);
        cv_text(cv, r.x + 3, y, labw, lab, i == 0 ? C_GOOD : C_NORMAL, i == 0 ? A_BOLD_ : 0);
        int x = r.x + 3 + labw + 1;
        cv_printf(cv, x, y, 8, C_NORMAL, 0, "%6.2f%%", c->prob[i] * 100);
        x += 8;
        cv_printf(cv, x, y, 8, C_DIM, 0, "#%d", c->top[i]);
        x += 8;
        int bw = r.x + r.w - x;
        if (bw > 40)
            bw = 40;
        int fill = (int)(c->prob[i] * bw + 0.5);
        for (int k = 0; k < fill; k++)
            cv_put(cv, x + k, y, cv->mono ? '#' : 0x2588, C_HEAT0 + 7, 0);
    }
    if (app->an.target >= 0 && y < r.y + r.h && c->target_rank > 0) {
        char lab[128];
        ui_token_label(app, app->an.target, lab, sizeof lab);
        cv_printf(cv, r.x, y, r.w, C_TITLE, 0, "target %s: %.2f%% (rank %d)", lab, c->target_prob * 100,
                  c->target_rank);
    }
}

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    ui_analysis *an = &app->an;
    ui_rect in = cv_box(cv, (ui_rect){r.x, r.y, r.w, 3}, app->prompt_editing ? "Prompt (typing; Enter/Esc to stop)"
                                                                            : "Prompt (e or Enter to edit)",
                        app->prompt_editing);
    ui_edit_draw(&app->prompt, cv, in.x, in.y, in.w, app->prompt_editing);
    int rest_y = r.y + 3, rest_h = r.h - 3;
    int wide = r.w >= 140;
    int topk_h = UI_TOPK + 4;
    ui_rect tok_r, pred_r;
    if (wide) {
        int tw = r.w * 55 / 100;
        tok_r = (ui_rect){r.x, rest_y, tw, rest_h};
        pred_r = (ui_rect){r.x + tw, rest_y, r.w - tw, rest_h};
    } else {
        if (topk_h > rest_h - 4)
            topk_h = rest_h - 4;
        tok_r = (ui_rect){r.x, rest_y, r.w, rest_h - topk_h};
        pred_r = (ui_rect){r.x, rest_y + rest_h - topk_h, r.w, topk_h};
    }
    int sel = ui_sel_pos(app);
    char t[160];
    if (an->truncated)
        snprintf(t, sizeof t, "Tokens: %d of %d shown (the UI analyses at most %d)", an->n, an->truncated, an->n);
    else
        snprintf(t, sizeof t, "Tokens: %d   forward %.1f ms   analysis %.1f ms", an->n, an->forward_ms, an->analyse_ms);
    ui_rect ti = cv_box(cv, tok_r, t, !app->prompt_editing);
    ui_draw_token_strip(app, cv, ti, sel);

    char lab[128] = "";
    if (sel >= 0)
        ui_token_label(app, an->ids[sel], lab, sizeof lab);
    snprintf(t, sizeof t, "Next token after position %d %s", sel, lab);
    ui_rect pi = cv_box(cv, pred_r, sel >= 0 ? t : "Next token", 0);
    if (sel >= 0) {
        ui_lens_ensure(app, sel, 1);
        ui_draw_topk(app, cv, pi, ui_lens_at(app, app->cfg->n_layers, sel), NULL);
    }
    (void)p;
}

static int on_key(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch)
{
    (void)p;
    if (app->prompt_editing) {
        if (key == 27 || key == '\r' || key == '\n' || key == KEY_ENTER) {
            app->prompt_editing = 0;
            return UI_REDRAW;
        }
        int r = ui_edit_key(&app->prompt, key, wch);
        if (r == 1) {
            app->sel_pos = -1;
            return UI_REANALYSE | UI_REDRAW;
        }
        return r ? UI_REDRAW : 0;
    }
    int n = app->an.n, sel = ui_sel_pos(app);
    switch (action) {
    case ACT_EDIT: app->prompt_editing = 1; return UI_REDRAW;
    case ACT_LEFT: if (sel > 0) app->sel_pos = sel - 1; return UI_REDRAW;
    case ACT_RIGHT: app->sel_pos = sel + 1 >= n - 1 ? -1 : sel + 1; return UI_REDRAW;
    case ACT_HOME: app->sel_pos = n > 0 ? 0 : -1; return UI_REDRAW;
    case ACT_END: app->sel_pos = -1; return UI_REDRAW;
    case ACT_CANCEL: return 0;
    default: return 0;
    }
}

static int editing(ui_app *app, ui_panel *p)
{
    (void)p;
    return app->prompt_editing;
}

void ui_panel_prompt_init(ui_panel *p)
{
    *p = (ui_panel){.name = "Prompt", .ctx = CTX_PROMPT, .draw = draw, .on_key = on_key, .editing = editing};
}
