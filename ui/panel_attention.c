/* loupe UI — the attention view: one head's pattern (query rows × key columns, token
 * labels on both axes) or every head of a layer as small multiples, computed from the
 * cached blocks.L.attn.hook_pattern; and a head-score table (induction, previous-token,
 * duplicate, …) from the attention.head_scores plugin when it is loaded, sortable by
 * column. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curses.h>

#include "ui.h"

#define MAX_SCORES 8

typedef struct attn_state {
    int layer, head; /* head -1: all heads */
    int q, k;        /* cursor; q -1: follow the last position */
    int started;     /* head scores asked for once */
    int n_scores;    /* columns */
    char names[MAX_SCORES][32];
    float *scores;   /* [n_scores][n_layers*n_heads] */
    int *order;      /* rows sorted */
    int sort_col, scroll;
    char note[256];
} attn_state;

static void sort_rows(ui_app *app, attn_state *s)
{
    int n = app->cfg->n_layers * app->cfg->n_heads;
    if (!s->order || s->n_scores == 0)
        return;
    const float *v = s->scores + (size_t)s->sort_col * n;
    for (int i = 0; i < n; i++)
        s->order[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort, descending; n is small */
        int x = s->order[i], j = i;
        while (j > 0 && v[s->order[j - 1]] < v[x]) {
            s->order[j] = s->order[j - 1];
            j--;
        }
        s->order[j] = x;
    }
}

static void scores_done(ui_app *app, lp_call *call, int rc, const char *err, void *user)
{
    attn_state *s = user;
    int n = app->cfg->n_layers * app->cfg->n_heads;
    if (rc) {
        snprintf(s->note, sizeof s->note, rc == LP_ECANCELLED ? "head scores cancelled (c: again)" : "head scores: %s",
                 err);
        lp_call_free(call);
        return;
    }
    free(s->scores);
    free(s->order);
    s->scores = malloc(sizeof(float) * (size_t)n * MAX_SCORES);
    s->order = malloc(sizeof(int) * (size_t)n);
    s->n_scores = 0;
    for (int i = 0; i < lp_call_n_results(call) && s->scores && s->order && s->n_scores < MAX_SCORES; i++) {
        const char *axes = NULL;
        if (lp_call_result_kind(call, i) != LP_RESULT_TENSOR)
            continue;
        const lp_tensor *t = lp_call_result_tensor(call, i, &axes);
        if (!axes || strcmp(axes, "layer,head") || lp_tensor_nelem(t) != n)
            continue;
        snprintf(s->names[s->n_scores], sizeof s->names[0], "%s", lp_call_result_name(call, i));
        memcpy(s->scores + (size_t)s->n_scores * n, t->data, sizeof(float) * (size_t)n);
        s->n_scores++;
    }
    s->note[0] = 0;
    if (s->n_scores == 0)
        snprintf(s->note, sizeof s->note, "attention.head_scores returned no [layer, head] tensors");
    if (s->sort_col >= s->n_scores)
        s->sort_col = 0;
    sort_rows(app, s);
    lp_call_free(call);
}

static void start_scores(ui_app *app, attn_state *s)
{
    s->started = 1;
    if (!app->reg || lp_registry_find_method(app->reg, "attention.head_scores") < 0) {
        snprintf(s->note, sizeof s->note, "plugin not available: attention.head_scores is not loaded");
        return;
    }
    lp_error err = {0};
    lp_call *c = lp_call_new(app->reg, "attention.head_scores", app->model, &err);
    if (!c) {
        snprintf(s->note, sizeof s->note, "head scores: %s", err.msg);
        return;
    }
    if (ui_worker_start(app, c, "attention.head_scores", scores_done, s)) {
        lp_call_free(c);
        return;
    }
    snprintf(s->note, sizeof s->note, "computing head scores… (Esc cancels)");
}

static void draw_scores(ui_app *app, attn_state *s, ui_canvas *cv, ui_rect r)
{
    char title[96];
    snprintf(title, sizeof title, "Head scores%s", s->n_scores ? " (s: sort)" : "");
    ui_rect in = cv_box(cv, r, title, 0);
    if (s->n_scores == 0) {
        const char *m = s->note[0] ? s->note : "c: compute (attention.head_scores)";
        /* wrap the note over a few lines */
        int len = (int)strlen(m), y = in.y;
        for (int o = 0; o < len && y < in.y + in.h; y++) {
            int l = len - o < in.w ? len - o : in.w;
            if (o + l < len)
                while (l > 1 && m[o + l] != ' ')
                    l--;
            char line[256];
            snprintf(line, sizeof line, "%.*s", l, m + o);
            cv_text(cv, in.x, y, in.w, line, strstr(m, "not available") ? C_ERROR : C_DIM, 0);
            o += l;
            while (m[o] == ' ')
                o++;
        }
        return;
    }
    int cw = (in.w - 6) / s->n_scores;
    if (cw > 10) cw = 10;
    cv_text(cv, in.x, in.y, 6, "head", C_TITLE, A_BOLD_);
    for (int c = 0; c < s->n_scores; c++) {
        char h[40];
        snprintf(h, sizeof h, "%s%s", c == s->sort_col ? "▼" : "", s->names[c]);
        cv_text(cv, in.x + 6 + c * cw, in.y, cw - 1, h, c == s->sort_col ? C_SEL : C_TITLE, A_BOLD_);
    }
    int n = app->cfg->n_layers * app->cfg->n_heads, H = app->cfg->n_heads;
    int rows = in.h - 1;
    if (s->scroll > n - rows) s->scroll = n - rows;
    if (s->scroll < 0) s->scroll = 0;
    for (int i = 0; i < rows && s->scroll + i < n; i++) {
        int row = s->order[s->scroll + i], y = in.y + 1 + i;
        int cur = row / H == s->layer && row % H == s->head;
        cv_printf(cv, in.x, y, 6, cur ? C_SEL : C_NORMAL, cur ? A_BOLD_ : 0, "%d.%d", row / H, row % H);
        for (int c = 0; c < s->n_scores; c++)
            cv_printf(cv, in.x + 6 + c * cw, y, cw - 1, C_NORMAL, 0, "%7.3f", s->scores[(size_t)c * n + row]);
    }
}

static void draw_head(ui_app *app, attn_state *s, ui_canvas *cv, ui_rect in, const float *pat)
{
    int n = app->an.n;
    const int lw = 8, hh = 4; /* query labels on the left; key labels written downwards */
    int cols = (in.w - lw) / 2, rows = in.h - hh - 1;
    if (cols < 1 || rows < 1)
        return;
    int q = s->q < 0 || s->q >= n ? n - 1 : s->q, k = s->k >= n ? n - 1 : s->k < 0 ? q : s->k;
    /* windows over positions that keep the cursor visible, ending at the prompt's end by default */
    int q0 = q - rows + 1 < 0 ? 0 : q - rows + 1;
    int k0 = n - cols < 0 ? 0 : n - cols;
    if (k < k0) k0 = k;
    if (k >= k0 + cols) k0 = k - cols + 1;
    for (int c = 0; c < cols && k0 + c < n; c++) {
        char lab[96];
        ui_token_label(app, app->an.ids[k0 + c], lab, sizeof lab);
        /* one character per row, downwards */
        const char *p = lab;
        for (int yy = 0; yy < hh && *p; yy++) {
            int l = 1;
            while ((p[l] & 0xc0) == 0x80)
                l++;
            char ch[8];
            snprintf(ch, sizeof ch, "%.*s", l, p);
            cv_text(cv, in.x + lw + 2 * c, in.y + yy, 2, ch, k0 + c == k ? C_SEL : C_TITLE, 0);
            p += l;
        }
    }
    for (int rr = 0; rr < rows && q0 + rr < n; rr++) {
        int qi = q0 + rr, y = in.y + hh + rr;
        char lab[96];
        ui_token_label(app, app->an.ids[qi], lab, sizeof lab);
        cv_text(cv, in.x, y, lw - 1, lab, qi == q ? C_SEL : C_TITLE, 0);
        for (int c = 0; c < cols && k0 + c < n; c++) {
            int ki = k0 + c;
            double v = ki > qi ? 0.0 / 0.0 : pat[(size_t)qi * n + ki];
            cv_heat(cv, in.x + lw + 2 * c, y, 2, v, NULL, qi == q && ki == k);
        }
    }
    char a[96], b[96];
    ui_token_label(app, app->an.ids[q], a, sizeof a);
    ui_token_label(app, app->an.ids[k], b, sizeof b);
    cv_printf(cv, in.x, in.y + in.h - 1, in.w, C_DIM, 0, "query %d %s → key %d %s: %.3f", q, a, k, b,
              k <= q ? pat[(size_t)q * n + k] : 0.0);
}

static void draw_all(ui_app *app, attn_state *s, ui_canvas *cv, ui_rect in, const float *pat)
{
    int n = app->an.n, H = app->cfg->n_heads;
    /* tiles of side m (the last m positions), as many per row as fit */
    int m = n;
    int per_row = 1, tile_rows = 1;
    for (; m >= 2; m--) {
        per_row = in.w / (m + 1);
        if (per_row < 1)
            continue;
        tile_rows = (H + per_row - 1) / per_row;
        if (tile_rows * (m + 1) <= in.h - 1)
            break;
    }
    if (m < 2) {
        cv_text(cv, in.x, in.y, in.w, "too many heads to draw here: enlarge the terminal or press a", C_DIM, 0);
        return;
    }
    int off = n - m;
    for (int h = 0; h < H; h++) {
        int tx = in.x + (h % per_row) * (m + 1), ty = in.y + (h / per_row) * (m + 1);
        cv_printf(cv, tx, ty, m, h == s->head ? C_SEL : C_TITLE, 0, "H%d", h);
        const float *ph = pat + (size_t)h * n * n;
        for (int qi = 1; qi < m; qi++) /* row 0 holds the title */
            for (int ki = 0; ki < m; ki++) {
                int Q = off + qi, K = off + ki;
                double v = K > Q ? 0.0 / 0.0 : ph[(size_t)Q * n + K];
                cv_heat(cv, tx + ki, ty + qi, 1, v, NULL, 0);
            }
    }
    cv_printf(cv, in.x, in.y + in.h - 1, in.w, C_DIM, 0, "layer %d, all %d heads, last %d positions%s", s->layer, H,
              m - 1, m < n ? " (enlarge to see more)" : "");
}

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    attn_state *s = p->state;
    int L = app->cfg->n_layers, H = app->cfg->n_heads;
    if (!s->started)
        start_scores(app, s);
    if (s->layer >= L) s->layer = L - 1;
    if (s->head >= H) s->head = H - 1;
    int tw = r.w >= 120 ? 44 : 30;
    ui_rect hr = {r.x, r.y, r.w - tw, r.h};
    char title[128];
    if (s->head < 0)
        snprintf(title, sizeof title, "Attention: layer %d, all heads  ([ ] layer, a one head)", s->layer);
    else
        snprintf(title, sizeof title, "Attention: layer %d head %d  ([ ] { } a)", s->layer, s->head);
    ui_rect in = cv_box(cv, hr, title, 1);
    const float *pat = ui_pattern(app, s->layer);
    if (app->an.error[0] || app->an.n == 0 || !pat)
        cv_text(cv, in.x, in.y, in.w,
                app->an.error[0] ? app->an.error
                : app->an.n && app->dirty ? "…"
                                          : "type a prompt in the prompt view (1)",
                app->an.error[0] ? C_ERROR : C_DIM, 0);
    else if (s->head < 0)
        draw_all(app, s, cv, in, pat);
    else
        draw_head(app, s, cv, in, pat + (size_t)s->head * app->an.n * app->an.n);
    draw_scores(app, s, cv, (ui_rect){r.x + r.w - tw, r.y, tw, r.h});
}

static int on_key(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch)
{
    (void)key;
    (void)wch;
    attn_state *s = p->state;
    int L = app->cfg->n_layers, H = app->cfg->n_heads, n = app->an.n;
    int q = s->q < 0 || s->q >= n ? n - 1 : s->q, k = s->k < 0 || s->k >= n ? q : s->k;
    switch (action) {
    case ACT_LAYER_NEXT: s->layer = (s->layer + 1) % L; break;
    case ACT_LAYER_PREV: s->layer = (s->layer + L - 1) % L; break;
    case ACT_HEAD_NEXT: s->head = s->head < 0 ? 0 : (s->head + 1) % H; break;
    case ACT_HEAD_PREV: s->head = s->head < 0 ? H - 1 : (s->head + H - 1) % H; break;
    case ACT_ALL_HEADS: s->head = s->head < 0 ? 0 : -1; break;
    case ACT_UP: if (q > 0) { s->q = q - 1; s->k = k > q - 1 ? q - 1 : k; } break;
    case ACT_DOWN: if (q < n - 1) { s->q = q + 1; s->k = k; } break;
    case ACT_LEFT: if (k > 0) { s->k = k - 1; s->q = q; } break;
    case ACT_RIGHT: if (k < q) { s->k = k + 1; s->q = q; } break;
    case ACT_SORT: if (s->n_scores) { s->sort_col = (s->sort_col + 1) % s->n_scores; sort_rows(app, s); } break;
    case ACT_SCORES: start_scores(app, s); break;
    case ACT_PGDN: s->scroll += 10; break;
    case ACT_PGUP: s->scroll -= 10; break;
    default: return 0;
    }
    return UI_REDRAW;
}

static void on_focus(ui_app *app, ui_panel *p, int gained)
{
    (void)app;
    attn_state *s = p->state;
    if (gained < 0 && s) {
        free(s->scores);
        free(s->order);
        s->scores = NULL;
        s->order = NULL;
    }
}

void ui_panel_attention_init(ui_panel *p)
{
    attn_state *s = calloc(1, sizeof *s);
    if (s) {
        s->q = -1;
        s->k = -1;
    }
    *p = (ui_panel){.name = "Attention", .ctx = CTX_ATTN, .draw = draw, .on_key = on_key, .on_focus = on_focus, .state = s};
}
