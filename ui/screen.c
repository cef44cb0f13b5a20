/* loupe UI — the canvas (drawing into memory), the colour table, the screen layout, and the
 * blit of a canvas onto the terminal through ncursesw. */
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curses.h>

#include "ui.h"

/* ---------------------------------------------------------------- canvas */

int ui_canvas_resize(ui_canvas *cv, int w, int h)
{
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w != cv->w || h != cv->h || !cv->cells) {
        ui_cell *c = realloc(cv->cells, (size_t)w * h * sizeof *c);
        if (!c)
            return -1;
        cv->cells = c;
        cv->w = w;
        cv->h = h;
    }
    cv_clear(cv);
    return 0;
}

void ui_canvas_free(ui_canvas *cv)
{
    free(cv->cells);
    cv->cells = NULL;
    cv->w = cv->h = 0;
}

void cv_clear(ui_canvas *cv)
{
    for (int i = 0; i < cv->w * cv->h; i++)
        cv->cells[i] = (ui_cell){' ', C_NORMAL, 0};
}

void cv_put(ui_canvas *cv, int x, int y, uint32_t ch, int color, int attr)
{
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h)
        return;
    ui_cell *c = &cv->cells[y * cv->w + x];
    if (c->ch == 0 && x > 0) /* overwriting the right half of a wide char: blank its left half */
        cv->cells[y * cv->w + x - 1].ch = ' ';
    c->ch = ch;
    c->color = (uint8_t)color;
    c->attr = (uint8_t)attr;
}

void cv_fill(ui_canvas *cv, ui_rect r, uint32_t ch, int color, int attr)
{
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++)
            cv_put(cv, x, y, ch, color, attr);
}

/* Decode one UTF-8 sequence; returns its length (>= 1) and the code point, or -1 for an
 * invalid byte (then *cp is that byte). */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    int len;
    uint32_t v;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xc2 && c <= 0xdf) { len = 2; v = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; v = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; v = c & 0x07; }
    else { *cp = c; return -1; }
    if ((size_t)len > n) { *cp = c; return -1; }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) { *cp = c; return -1; }
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff)) {
        *cp = c;
        return -1;
    }
    *cp = v;
    return len;
}

static int cp_width(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
        return -1;
    int w = wcwidth((wchar_t)cp);
    return w;
}

/* Walk s, calling emit for each display cell; escapes what cannot be shown. */
typedef void (*emit_fn)(void *u, uint32_t ch, int width);

static void walk_text(const char *s, emit_fn emit, void *u)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        uint32_t cp;
        int l = utf8_decode(p, n, &cp);
        int w = l > 0 ? cp_width(cp) : -1;
        if (l < 0 || w < 0 || w > 2) {
            char esc[16];
            if (l < 0)
                snprintf(esc, sizeof esc, "\\x%02x", cp);
            else if (cp == '\n')
                snprintf(esc, sizeof esc, "\\n");
            else if (cp == '\t')
                snprintf(esc, sizeof esc, "\\t");
            else if (cp < 0x100)
                snprintf(esc, sizeof esc, "\\x%02x", cp);
            else
                snprintf(esc, sizeof esc, "\\u%04x", cp);
            for (char *e = esc; *e; e++)
                emit(u, (unsigned char)*e, 1);
            l = l < 0 ? 1 : l;
        } else if (w == 0) {
            /* combining marks and zero-width characters: show them escaped too, so that every
             * byte of a token is visible and the grid never shifts */
            char esc[16];
            snprintf(esc, sizeof esc, "\\u%04x", cp);
            for (char *e = esc; *e; e++)
                emit(u, (unsigned char)*e, 1);
        } else {
            emit(u, cp, w);
        }
        p += l;
        n -= (size_t)l;
    }
}

typedef struct {
    ui_canvas *cv;
    int x, y, x0, maxw, color, attr;
} text_ctx;

static void emit_canvas(void *u, uint32_t ch, int width)
{
    text_ctx *t = u;
    if (t->x - t->x0 + width > t->maxw)
        return;
    cv_put(t->cv, t->x, t->y, ch, t->color, t->attr);
    if (width == 2)
        cv_put(t->cv, t->x + 1, t->y, 0, t->color, t->attr);
    t->x += width;
}

int cv_text(ui_canvas *cv, int x, int y, int maxw, const char *s, int color, int attr)
{
    if (maxw <= 0 || !s)
        return 0;
    text_ctx t = {cv, x, y, x, maxw, color, attr};
    walk_text(s, emit_canvas, &t);
    return t.x - x;
}

static void emit_count(void *u, uint32_t ch, int width)
{
    (void)ch;
    *(int *)u += width;
}

int ui_text_width(const char *s)
{
    int w = 0;
    walk_text(s, emit_count, &w);
    return w;
}

int cv_printf(ui_canvas *cv, int x, int y, int maxw, int color, int attr, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return cv_text(cv, x, y, maxw, buf, color, attr);
}

ui_rect cv_box(ui_canvas *cv, ui_rect r, const char *title, int focused)
{
    if (r.w < 2 || r.h < 2)
        return (ui_rect){r.x, r.y, 0, 0};
    int col = focused ? C_TITLE_FOCUS : C_DIM;
    for (int x = r.x + 1; x < r.x + r.w - 1; x++) {
        cv_put(cv, x, r.y, 0x2500, col, 0);
        cv_put(cv, x, r.y + r.h - 1, 0x2500, col, 0);
    }
    for (int y = r.y + 1; y < r.y + r.h - 1; y++) {
        cv_put(cv, r.x, y, 0x2502, col, 0);
        cv_put(cv, r.x + r.w - 1, y, 0x2502, col, 0);
    }
    cv_put(cv, r.x, r.y, 0x250c, col, 0);
    cv_put(cv, r.x + r.w - 1, r.y, 0x2510, col, 0);
    cv_put(cv, r.x, r.y + r.h - 1, 0x2514, col, 0);
    cv_put(cv, r.x + r.w - 1, r.y + r.h - 1, 0x2518, col, 0);
    if (title && *title) {
        char t[256];
        snprintf(t, sizeof t, " %s ", title);
        cv_text(cv, r.x + 2, r.y, r.w - 4, t, focused ? C_TITLE_FOCUS : C_TITLE, A_BOLD_);
    }
    return (ui_rect){r.x + 1, r.y + 1, r.w - 2, r.h - 2};
}

static const char mono_ramp[] = " .:-=+*#%@";

void cv_heat(ui_canvas *cv, int x, int y, int w, double level, const char *label, int selected)
{
    int empty = level != level;
    int lv = empty ? 0 : (int)(level * UI_HEAT_LEVELS);
    if (lv < 0) lv = 0;
    if (lv >= UI_HEAT_LEVELS) lv = UI_HEAT_LEVELS - 1;
    int color = empty ? C_NORMAL : C_HEAT0 + lv;
    int attr = selected ? (A_REV_ | A_BOLD_) : 0;
    for (int i = 0; i < w; i++)
        cv_put(cv, x + i, y, ' ', color, attr);
    int lx = x, lw = w;
    if (cv->mono && !empty) {
        cv_put(cv, x, y, (unsigned char)mono_ramp[lv], color, attr);
        lx++;
        lw--;
    }
    if (label && lw > 0)
        cv_text(cv, lx, y, lw, label, color, attr);
}

uint32_t ui_shade_char(double level)
{
    if (!(level > 0))
        return ' ';
    int lv = (int)(level * UI_HEAT_LEVELS);
    if (lv < 1) lv = 1;
    if (lv >= UI_HEAT_LEVELS) lv = UI_HEAT_LEVELS - 1;
    return (unsigned char)mono_ramp[lv];
}

void cv_gauge(ui_canvas *cv, int x, int y, int w, double frac)
{
    if (w < 3)
        return;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    int fill = (int)(frac * (w - 2) + 0.5);
    cv_put(cv, x, y, '[', C_GAUGE, 0);
    for (int i = 0; i < w - 2; i++)
        cv_put(cv, x + 1 + i, y, i < fill ? '#' : '.', C_GAUGE, i < fill ? A_BOLD_ : 0);
    cv_put(cv, x + w - 1, y, ']', C_GAUGE, 0);
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

char *cv_row_text(const ui_canvas *cv, int y)
{
    char *s = malloc((size_t)cv->w * 4 + 1);
    if (!s)
        return NULL;
    size_t n = 0;
    for (int x = 0; x < cv->w; x++) {
        uint32_t ch = cv->cells[y * cv->w + x].ch;
        if (ch)
            n += put_utf8(s + n, ch);
    }
    while (n > 0 && s[n - 1] == ' ')
        n--;
    s[n] = 0;
    return s;
}

char *cv_dump(const ui_canvas *cv)
{
    size_t cap = (size_t)cv->h * (cv->w * 4 + 1) + 1, n = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    for (int y = 0; y < cv->h; y++) {
        char *r = cv_row_text(cv, y);
        size_t l = r ? strlen(r) : 0;
        memcpy(s + n, r ? r : "", l);
        n += l;
        s[n++] = '\n';
        free(r);
    }
    s[n] = 0;
    return s;
}

int ui_escape_token(const char *bytes, int len, char *out, size_t cap)
{
    size_t o = 0;
    int i = 0;
#define PUT(str)                                                                                 \
    do {                                                                                         \
        const char *s_ = (str);                                                                  \
        size_t l_ = strlen(s_);                                                                  \
        if (o + l_ + 1 > cap)                                                                    \
            goto done;                                                                           \
        memcpy(out + o, s_, l_);                                                                 \
        o += l_;                                                                                 \
    } while (0)
    if (cap == 0)
        return 0;
    while (i < len && bytes[i] == ' ') { /* leading spaces visible */
        PUT("\xc2\xb7");
        i++;
    }
    while (i < len) {
        uint32_t cp;
        int l = utf8_decode((const unsigned char *)bytes + i, (size_t)(len - i), &cp);
        char esc[16];
        if (l < 0) {
            snprintf(esc, sizeof esc, "\\x%02x", cp);
            PUT(esc);
            i++;
            continue;
        }
        if (cp == '\n') PUT("\\n");
        else if (cp == '\t') PUT("\\t");
        else if (cp == '\r') PUT("\\r");
        else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            snprintf(esc, sizeof esc, cp < 0x100 ? "\\x%02x" : "\\u%04x", cp);
            PUT(esc);
        } else {
            if (o + (size_t)l + 1 > cap)
                goto done;
            memcpy(out + o, bytes + i, (size_t)l);
            o += (size_t)l;
        }
        i += l;
    }
#undef PUT
done:
    out[o] = 0;
    return (int)o;
}

/* ---------------------------------------------------------------- layout */

long ui_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long pages = 0, rss = 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void draw_tabs(ui_app *app, ui_canvas *cv)
{
    cv_fill(cv, (ui_rect){0, 0, cv->w, 1}, ' ', C_STATUS, 0);
    int x = 0;
    x += cv_text(cv, x, 0, cv->w - x, " loupe ", C_STATUS, A_BOLD_);
    for (int i = 0; i < VIEW_COUNT && x < cv->w; i++) {
        char t[64];
        snprintf(t, sizeof t, " %d %s ", i + 1, app->panels[i].name);
        int sel = i == app->view;
        x += cv_text(cv, x, 0, cv->w - x, t, sel ? C_TITLE_FOCUS : C_STATUS, sel ? A_BOLD_ | A_REV_ : 0);
    }
}

static void draw_status(ui_app *app, ui_canvas *cv)
{
    int y = cv->h - 1;
    cv_fill(cv, (ui_rect){0, y, cv->w, 1}, ' ', C_STATUS, 0);
    char left[512];
    long rss = ui_rss_kib();
    double params = (double)lp_model_n_params(app->model);
    snprintf(left, sizeof left, " %s %.*f%s params │ fwd %.1f ms │ RSS %ld MiB │", app->model_label,
             params >= 1e9 ? 2 : 1, params >= 1e9 ? params / 1e9 : params >= 1e6 ? params / 1e6 : params / 1e3,
             params >= 1e9 ? "B" : params >= 1e6 ? "M" : "K", lp_model_last_run_ms(app->model), rss / 1024);
    int x = cv_text(cv, 0, y, cv->w, left, C_STATUS, 0) + 1;
    ui_worker *w = &app->worker;
    if (w->running) {
        pthread_mutex_lock(&w->mu);
        double frac = w->total > 0 ? w->done / w->total : 0;
        char what[160];
        snprintf(what, sizeof what, "%s %s", w->label, w->what);
        pthread_mutex_unlock(&w->mu);
        int gw = cv->w - x > 40 ? 20 : 10;
        cv_gauge(cv, x, y, gw, frac);
        x += gw + 1;
        x += cv_printf(cv, x, y, cv->w - x, C_STATUS, A_BOLD_, "%3.0f%% ", frac * 100);
        x += cv_text(cv, x, y, cv->w - x - 12, what, C_STATUS, 0);
        cv_text(cv, cv->w - 12, y, 12, " Esc cancel", C_KEY, A_BOLD_);
        return;
    }
    if (app->msg[0]) {
        cv_text(cv, x, y, cv->w - x, app->msg, app->msg_error ? C_ERROR : C_STATUS, app->msg_error ? A_BOLD_ : 0);
        return;
    }
    const char *hint = app->view == VIEW_CONSOLE ? "Enter run · F1 help · F10 quit"
                       : app->panels[app->view].editing && app->panels[app->view].editing(app, &app->panels[app->view])
                           ? "typing · Esc stop · F1 help"
                           : "? help · q quit";
    int hw = ui_text_width(hint), hx = cv->w - hw - 1 > x ? cv->w - hw - 1 : x;
    cv_text(cv, hx, y, cv->w - hx, hint, C_KEY, 0);
}

static void draw_help(ui_app *app, ui_canvas *cv)
{
    ui_panel *p = &app->panels[app->view];
    int ctxs[3] = {p->ctx, CTX_GLOBAL, -1};
    if (p->editing && p->editing(app, p))
        ctxs[2] = CTX_EDIT;
    int n = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < ui_n_keys; i++)
            if (ctxs[c] >= 0 && ui_keys[i].ctx == ctxs[c] && ui_keys[i].help)
                n++;
    int w = cv->w - 8 < 72 ? cv->w - 8 : 72, h = n + 4 + 2;
    if (h > cv->h - 2)
        h = cv->h - 2;
    ui_rect r = {(cv->w - w) / 2, (cv->h - h) / 2, w, h};
    cv_fill(cv, r, ' ', C_NORMAL, 0);
    char title[96];
    snprintf(title, sizeof title, "Keys: %s view (? or Esc closes)", p->name);
    ui_rect in = cv_box(cv, r, title, 1);
    int y = in.y;
    static const char *ctx_names[CTX_COUNT] = {"everywhere", "prompt", "logit lens", "attention", "patching",
                                               "plugins", "console", "features", "while typing"};
    for (int c = 0; c < 3 && y < in.y + in.h; c++) {
        if (ctxs[c] < 0)
            continue;
        int any = 0;
        for (int i = 0; i < ui_n_keys && y < in.y + in.h; i++) {
            const ui_key *k = &ui_keys[i];
            if (k->ctx != ctxs[c] || !k->help)
                continue;
            if (!any) {
                cv_text(cv, in.x + 1, y++, in.w - 2, ctx_names[ctxs[c]], C_TITLE, A_BOLD_);
                any = 1;
                if (y >= in.y + in.h)
                    break;
            }
            cv_text(cv, in.x + 3, y, 12, k->name, C_KEY, A_BOLD_);
            cv_text(cv, in.x + 16, y, in.w - 17, k->help, C_NORMAL, 0);
            y++;
        }
    }
}

void ui_render_full(ui_app *app, ui_canvas *cv)
{
    for (int i = 0; i < 1000; i++) {
        app->an.lens_more = 0;
        int was_dirty = app->dirty;
        ui_render(app, cv);
        if (!was_dirty && app->dirty && !ui_model_busy(app) && app->an.n > 0) {
            /* the view wants more of the forward pass (the attention patterns): again */
            int n = app->an.n;
            int32_t *ids = malloc(sizeof *ids * (size_t)n);
            if (!ids)
                break;
            memcpy(ids, app->an.ids, sizeof *ids * (size_t)n);
            ui_analyse_ids(app, ids, n, 0);
            free(ids);
            continue;
        }
        if (app->worker.running) { /* a job the view started (the features view's encoding): its result */
            ui_worker_wait(app);
            continue;
        }
        if (!app->an.lens_more)
            break;
    }
}

void ui_render(ui_app *app, ui_canvas *cv)
{
    cv->mono = app->mono;
    cv_clear(cv);
    if (cv->w < 60 || cv->h < 16) {
        char m[128];
        snprintf(m, sizeof m, "terminal too small: %dx%d (need 60x16)", cv->w, cv->h);
        cv_text(cv, 0, cv->h / 2, cv->w, m, C_ERROR, A_BOLD_);
        cv_text(cv, 0, cv->h / 2 + 1, cv->w, "enlarge it, or press q to quit", C_NORMAL, 0);
        return;
    }
    draw_tabs(app, cv);
    ui_panel *p = &app->panels[app->view];
    p->draw(app, p, cv, (ui_rect){0, 1, cv->w, cv->h - 2});
    draw_status(app, cv);
    if (app->help)
        draw_help(app, cv);
}

/* ---------------------------------------------------------------- ncurses */

static int screen_on;
static int n_colors_mode; /* 0 mono, 1 eight colours, 2 256 colours */

typedef struct {
    short fg256, bg256, fg8, bg8;
    int mono_attr;
} colour_row;

/* Semantic colours: 256-colour, 8-colour and monochrome columns (-1 = terminal default). */
static const colour_row colours[C_COUNT] = {
    [C_NORMAL] = {-1, -1, -1, -1, 0},
    [C_DIM] = {244, -1, COLOR_BLUE, -1, A_DIM},
    [C_TITLE] = {110, -1, COLOR_CYAN, -1, A_BOLD},
    [C_TITLE_FOCUS] = {231, 25, COLOR_WHITE, COLOR_BLUE, A_REVERSE | A_BOLD},
    [C_STATUS] = {252, 236, COLOR_BLACK, COLOR_CYAN, A_REVERSE},
    [C_KEY] = {214, 236, COLOR_YELLOW, COLOR_CYAN, A_REVERSE | A_BOLD},
    [C_SEL] = {16, 214, COLOR_BLACK, COLOR_YELLOW, A_REVERSE},
    [C_TOK_A] = {-1, 237, -1, -1, 0},
    [C_TOK_B] = {-1, 239, COLOR_BLACK, COLOR_WHITE, A_UNDERLINE},
    [C_ERROR] = {203, -1, COLOR_RED, -1, A_BOLD},
    [C_GOOD] = {114, -1, COLOR_GREEN, -1, A_BOLD},
    [C_GAUGE] = {214, 236, COLOR_YELLOW, COLOR_CYAN, A_REVERSE},
    [C_HEAT0 + 0] = {250, 235, COLOR_WHITE, COLOR_BLACK, 0},
    [C_HEAT0 + 1] = {231, 17, COLOR_WHITE, COLOR_BLUE, 0},
    [C_HEAT0 + 2] = {231, 19, COLOR_WHITE, COLOR_BLUE, 0},
    [C_HEAT0 + 3] = {231, 25, COLOR_BLACK, COLOR_CYAN, 0},
    [C_HEAT0 + 4] = {231, 31, COLOR_BLACK, COLOR_CYAN, 0},
    [C_HEAT0 + 5] = {16, 37, COLOR_BLACK, COLOR_GREEN, 0},
    [C_HEAT0 + 6] = {16, 72, COLOR_BLACK, COLOR_GREEN, 0},
    [C_HEAT0 + 7] = {16, 149, COLOR_BLACK, COLOR_YELLOW, A_BOLD},
    [C_HEAT0 + 8] = {16, 220, COLOR_BLACK, COLOR_YELLOW, A_BOLD},
    [C_HEAT0 + 9] = {16, 226, COLOR_BLACK, COLOR_RED, A_BOLD},
};

int ui_screen_init(int *mono)
{
    const char *nc = getenv("NO_COLOR");
    int no_color = nc && *nc;
    if (!initscr())
        return -1;
    screen_on = 1;
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    n_colors_mode = 0;
    if (!no_color && has_colors() && start_color() == OK) {
        use_default_colors();
        n_colors_mode = COLORS >= 256 ? 2 : COLORS >= 8 ? 1 : 0;
    }
    if (n_colors_mode) {
        for (int i = 1; i < C_COUNT && i < COLOR_PAIRS; i++) {
            const colour_row *c = &colours[i];
            short fg = n_colors_mode == 2 ? c->fg256 : c->fg8, bg = n_colors_mode == 2 ? c->bg256 : c->bg8;
            init_pair((short)i, fg, bg);
        }
    }
    *mono = n_colors_mode == 0;
    return 0;
}

void ui_screen_end(void)
{
    if (screen_on) {
        screen_on = 0;
        curs_set(1);
        endwin();
    }
}

void ui_screen_blit(const ui_canvas *cv)
{
    for (int y = 0; y < cv->h && y < LINES; y++) {
        for (int x = 0; x < cv->w && x < COLS; x++) {
            const ui_cell *c = &cv->cells[y * cv->w + x];
            if (c->ch == 0)
                continue;
            attr_t a = 0;
            short pair = 0;
            if (n_colors_mode) {
                pair = c->color;
                if (c->color >= C_HEAT0 + 7 && n_colors_mode == 1)
                    a |= A_BOLD;
            } else {
                a |= (attr_t)colours[c->color].mono_attr;
            }
            if (c->attr & A_BOLD_) a |= A_BOLD;
            if (c->attr & A_REV_) a |= A_REVERSE;
            if (c->attr & A_UL_) a |= A_UNDERLINE;
            wchar_t wc[2] = {(wchar_t)c->ch, 0};
            cchar_t cc;
            setcchar(&cc, wc, a, pair, NULL);
            mvadd_wch(y, x, &cc);
        }
    }
}
