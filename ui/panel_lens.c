/* loupe UI — the logit lens view: a layers × positions grid, each cell coloured by the
 * probability of its top token (labelled with it), or of a chosen target token (labelled
 * with its rank and probability). The cursor's cell shows its top-k beside or below.
 * Only the cells on screen are computed (analysis.c keeps them until the prompt
 * changes), at most UI_LENS_BUDGET per frame, which keeps a keystroke cheap on large
 * vocabularies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curses.h>

#include "ui.h"

typedef struct lens_state {
    int layer, pos;  /* cursor; pos -1: follow the last position; layer -1: the final layer */
    int col0, row0;  /* scroll */
    int target_editing;
    ui_edit target;
} lens_state;

static int cur_pos(ui_app *app, lens_state *s)
{
    int n = app->an.n;
    if (n <= 0)
        return -1;
    return s->pos < 0 || s->pos >= n ? n - 1 : s->pos;
}

static int cur_layer(ui_app *app, lens_state *s)
{
    int L = app->cfg->n_layers;
    return s->layer < 0 || s->layer > L ? L : s->layer;
}

static void layer_name(ui_app *app, int l, char *buf, size_t cap)
{
    if (l == app->cfg->n_layers)
        snprintf(buf, cap, "out");
    else
        snprintf(buf, cap, "L%d", l);
}

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    lens_state *s = p->state;
    ui_analysis *an = &app->an;
    int L = app->cfg->n_layers;
    int wide = r.w >= 120;
    int side_w = wide ? 46 : 0;
    int below_h = wide ? 0 : 7;
    char title[160], tl[64] = "";
    if (an->target >= 0)
        ui_token_label(app, an->target, tl, sizeof tl);
    if (an->target >= 0)
        snprintf(title, sizeof title, "Logit lens: P(target %s) per layer × position  (t: change)", tl);
    else
        snprintf(title, sizeof title, "Logit lens: top token per layer × position  (t: target)");
    ui_rect grid_r = {r.x, r.y, r.w - side_w, r.h - below_h};
    ui_rect in = cv_box(cv, grid_r, title, 1);
    if (an->error[0] || an->n == 0) {
        cv_text(cv, in.x + 1, in.y, in.w - 2, an->error[0] ? an->error : "type a prompt in the prompt view (1)",
                an->error[0] ? C_ERROR : C_DIM, 0);
        return;
    }
    int cl = cur_layer(app, s), cp = cur_pos(app, s);
    const int lw = 4, cw = in.w >= 100 ? 10 : 8;
    int ncols = (in.w - lw) / cw, nrows = in.h - 2; /* header + target/edit line */
    if (ncols < 1) ncols = 1;
    if (nrows < 1) nrows = 1;
    /* keep the cursor visible; show the end of the prompt by default */
    if (cp < s->col0) s->col0 = cp;
    if (cp >= s->col0 + ncols) s->col0 = cp - ncols + 1;
    if (s->col0 > an->n - ncols) s->col0 = an->n - ncols;
    if (s->col0 < 0) s->col0 = 0;
    if (cl < s->row0) s->row0 = cl;
    if (cl >= s->row0 + nrows) s->row0 = cl - nrows + 1;
    if (s->row0 > L + 1 - nrows) s->row0 = L + 1 - nrows;
    if (s->row0 < 0) s->row0 = 0;
    /* header: the input tokens */
    for (int c = 0; c < ncols && s->col0 + c < an->n; c++) {
        int pos = s->col0 + c;
        char lab[96];
        ui_token_label(app, an->ids[pos], lab, sizeof lab);
        int sel = pos == cp;
        cv_text(cv, in.x + lw + c * cw, in.y, cw - 1, lab, sel ? C_SEL : C_TITLE, sel ? A_BOLD_ : 0);
    }
    int last = s->col0 + ncols < an->n ? s->col0 + ncols : an->n;
    /* only the cells on screen, a budget per frame: a keystroke shows the output row and
     * the cursor's cell at once (one small batch), the rest fills in over the next frames */
    int lrow = s->row0 + nrows - 1 < L ? s->row0 + nrows - 1 : L;
    ui_lens_cell *first = ui_lens_at(app, cl, cp);
    int budget = first && !first->done ? last - s->col0 + 1 : UI_LENS_BUDGET; /* a fresh prompt: the output row */
    an->lens_more = ui_lens_ensure_cells(app, s->col0, last, s->row0, lrow, cl, cp, budget) > 0;
    for (int rr = 0; rr < nrows && s->row0 + rr <= L; rr++) {
        int l = s->row0 + rr, y = in.y + 1 + rr;
        char ln[16];
        layer_name(app, l, ln, sizeof ln);
        cv_text(cv, in.x, y, lw, ln, l == cl ? C_SEL : C_DIM, l == cl ? A_BOLD_ : 0);
        for (int c = 0; c < ncols && s->col0 + c < an->n; c++) {
            int pos = s->col0 + c;
            ui_lens_cell *cell = ui_lens_at(app, l, pos);
            char lab[96] = "…";
            double level = 0.0 / 0.0;
            if (cell && cell->done) {
                if (an->target >= 0) {
                    level = cell->target_prob;
                    snprintf(lab, sizeof lab, "r%d %.0f%%", cell->target_rank, cell->target_prob * 100);
                } else {
                    level = cell->prob[0];
                    ui_token_label(app, cell->top[0], lab, sizeof lab);
                }
            }
            cv_heat(cv, in.x + lw + c * cw, y, cw - 1, level, lab, l == cl && pos == cp);
        }
    }
    int ey = in.y + in.h - 1;
    if (s->target_editing) {
        int x = in.x + cv_text(cv, in.x, ey, in.w, "target token (text or #id, empty: none): ", C_TITLE, A_BOLD_);
        ui_edit_draw(&s->target, cv, x, ey, in.x + in.w - x, 1);
    } else {
        cv_printf(cv, in.x, ey, in.w, C_DIM, 0, "positions %d–%d of %d · layers %d–%d of %d%s", s->col0,
                  s->col0 + ncols - 1 < an->n - 1 ? s->col0 + ncols - 1 : an->n - 1, an->n, s->row0,
                  s->row0 + nrows - 1 < L ? s->row0 + nrows - 1 : L, L, cv->mono ? " · shade: low ' .:-=+*#%@' high" : "");
    }
    /* the cursor's top-k */
    ui_rect dr = wide ? (ui_rect){r.x + r.w - side_w, r.y, side_w, r.h} : (ui_rect){r.x, r.y + r.h - below_h, r.w, below_h};
    char ln[16], tok[96];
    layer_name(app, cl, ln, sizeof ln);
    ui_token_label(app, an->ids[cp], tok, sizeof tok);
    snprintf(title, sizeof title, "%s, position %d %s", ln, cp, tok);
    ui_rect di = cv_box(cv, dr, title, 0);
    ui_lens_cell *cell = ui_lens_at(app, cl, cp);
    if (wide) {
        ui_draw_topk(app, cv, di, cell, NULL);
    } else if (cell && cell->done) {
        /* compact: k entries side by side */
        int x = di.x, y = di.y;
        for (int i = 0; i < UI_TOPK && y < di.y + di.h; i++) {
            char lab[96], e[128];
            ui_token_label(app, cell->top[i], lab, sizeof lab);
            snprintf(e, sizeof e, "%d %s %.1f%%", i + 1, lab, cell->prob[i] * 100);
            int ew = ui_text_width(e) + 3;
            if (x + ew > di.x + di.w) {
                x = di.x;
                y++;
                if (y >= di.y + di.h)
                    break;
            }
            cv_text(cv, x, y, ew, e, i == 0 ? C_GOOD : C_NORMAL, i == 0 ? A_BOLD_ : 0);
            x += ew;
        }
        if (an->target >= 0 && y + 1 < di.y + di.h)
            cv_printf(cv, di.x, y + 1, di.w, C_TITLE, 0, "target %s: %.2f%% (rank %d)", tl, cell->target_prob * 100,
                      cell->target_rank);
    }
}

static void apply_target(ui_app *app, lens_state *s)
{
    const char *t = s->target.buf;
    if (!*t) {
        ui_set_target(app, -1);
        return;
    }
    if (t[0] == '#' && t[1]) {
        int id = atoi(t + 1);
        if (id < 0 || id >= app->cfg->d_vocab) {
            ui_set_msg(app, 1, "target: no token #%d", id);
            return;
        }
        ui_set_target(app, id);
        return;
    }
    if (!app->tok) {
        ui_set_msg(app, 1, "target: no tokenizer, give #id");
        return;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    lp_error err = {0};
    if (lp_tokenizer_encode(app->tok, t, strlen(t), 0, &ids, &n, &err) || n != 1) {
        ui_set_msg(app, 1, "target: '%s' is %zu tokens, not one (use #id)", t, n);
        free(ids);
        return;
    }
    ui_set_target(app, ids[0]);
    free(ids);
}

static int on_key(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch)
{
    lens_state *s = p->state;
    if (s->target_editing) {
        if (key == 27) {
            s->target_editing = 0;
            return UI_REDRAW;
        }
        if (key == '\r' || key == '\n' || key == KEY_ENTER) {
            s->target_editing = 0;
            apply_target(app, s);
            return UI_REDRAW;
        }
        return ui_edit_key(&s->target, key, wch) ? UI_REDRAW : 0;
    }
    int n = app->an.n, L = app->cfg->n_layers;
    int cl = cur_layer(app, s), cp = cur_pos(app, s);
    switch (action) {
    case ACT_LEFT: if (cp > 0) s->pos = cp - 1; break;
    case ACT_RIGHT: s->pos = cp + 1 >= n - 1 ? -1 : cp + 1; break;
    case ACT_UP: if (cl > 0) s->layer = cl - 1; break;
    case ACT_DOWN: s->layer = cl + 1 >= L ? -1 : cl + 1; break;
    case ACT_HOME: s->pos = 0; break;
    case ACT_END: s->pos = -1; break;
    case ACT_TARGET: s->target_editing = 1; break;
    case ACT_EDIT: app->view = VIEW_PROMPT; app->prompt_editing = 1; break;
    default: return 0;
    }
    return UI_REDRAW;
}

static int editing(ui_app *app, ui_panel *p)
{
    (void)app;
    return ((lens_state *)p->state)->target_editing;
}

void ui_panel_lens_init(ui_panel *p)
{
    lens_state *s = calloc(1, sizeof *s);
    if (s) {
        s->layer = -1;
        s->pos = -1;
    }
    *p = (ui_panel){.name = "Lens", .ctx = CTX_LENS, .draw = draw, .on_key = on_key, .editing = editing, .state = s};
}
