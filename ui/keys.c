/* loupe UI — the key map: every key is bound to a named action in a context, and the same
 * table feeds the help overlay. Also the small line editor used by every text field. */
#include <string.h>

#include <curses.h>

#include "ui.h"

#define CTRL(c) ((c) & 0x1f)

const ui_key ui_keys[] = {
    /* everywhere (unless a text field is being edited: then only the function keys) */
    {'?', CTX_GLOBAL, ACT_HELP, "?", "show / hide this help"},
    {KEY_F(1), CTX_GLOBAL, ACT_HELP, "F1", "help, also while typing"},
    {'q', CTX_GLOBAL, ACT_QUIT, "q", "quit"},
    {KEY_F(10), CTX_GLOBAL, ACT_QUIT, "F10", "quit, also while typing"},
    {'\t', CTX_GLOBAL, ACT_NEXT_VIEW, "Tab", "next view"},
    {KEY_BTAB, CTX_GLOBAL, ACT_PREV_VIEW, "S-Tab", "previous view"},
    {'1', CTX_GLOBAL, ACT_VIEW1, "1 … 7", "the views, numbered as in the tabs at the top"},
    {'2', CTX_GLOBAL, ACT_VIEW2, "2", NULL},
    {'3', CTX_GLOBAL, ACT_VIEW3, "3", NULL},
    {'4', CTX_GLOBAL, ACT_VIEW4, "4", NULL},
    {'5', CTX_GLOBAL, ACT_VIEW5, "5", NULL},
    {'6', CTX_GLOBAL, ACT_VIEW6, "6", NULL},
    {'7', CTX_GLOBAL, ACT_VIEW7, "7", NULL},
    {KEY_F(2), CTX_GLOBAL, ACT_VIEW1, "F2 … F8", "the same views, also while typing"},
    {KEY_F(3), CTX_GLOBAL, ACT_VIEW2, "F3", NULL},
    {KEY_F(4), CTX_GLOBAL, ACT_VIEW3, "F4", NULL},
    {KEY_F(5), CTX_GLOBAL, ACT_VIEW4, "F5", NULL},
    {KEY_F(6), CTX_GLOBAL, ACT_VIEW5, "F6", NULL},
    {KEY_F(7), CTX_GLOBAL, ACT_VIEW6, "F7", NULL},
    {KEY_F(8), CTX_GLOBAL, ACT_VIEW7, "F8", NULL},
    {27, CTX_GLOBAL, ACT_CANCEL, "Esc", "cancel the running job / stop editing / close help"},

    /* prompt and tokens */
    {'e', CTX_PROMPT, ACT_EDIT, "e / Enter", "edit the prompt (re-runs as you type)"},
    {'\r', CTX_PROMPT, ACT_EDIT, "Enter", NULL},
    {'\n', CTX_PROMPT, ACT_EDIT, NULL, NULL},
    {KEY_LEFT, CTX_PROMPT, ACT_LEFT, "← →", "select the token whose next-token predictions are shown"},
    {KEY_RIGHT, CTX_PROMPT, ACT_RIGHT, "→", NULL},
    {'h', CTX_PROMPT, ACT_LEFT, NULL, NULL},
    {'l', CTX_PROMPT, ACT_RIGHT, NULL, NULL},
    {KEY_HOME, CTX_PROMPT, ACT_HOME, "Home End", "first / last token"},
    {KEY_END, CTX_PROMPT, ACT_END, "End", NULL},

    /* logit lens */
    {KEY_LEFT, CTX_LENS, ACT_LEFT, "← → ↑ ↓", "move the cursor (positions × layers)"},
    {KEY_RIGHT, CTX_LENS, ACT_RIGHT, NULL, NULL},
    {KEY_UP, CTX_LENS, ACT_UP, NULL, NULL},
    {KEY_DOWN, CTX_LENS, ACT_DOWN, NULL, NULL},
    {'h', CTX_LENS, ACT_LEFT, "h j k l", "the same"},
    {'l', CTX_LENS, ACT_RIGHT, NULL, NULL},
    {'k', CTX_LENS, ACT_UP, NULL, NULL},
    {'j', CTX_LENS, ACT_DOWN, NULL, NULL},
    {KEY_HOME, CTX_LENS, ACT_HOME, "Home End", "first / last position"},
    {KEY_END, CTX_LENS, ACT_END, NULL, NULL},
    {'t', CTX_LENS, ACT_TARGET, "t", "colour by a target token (type it; empty: top token)"},
    {'e', CTX_LENS, ACT_EDIT, "e", "edit the prompt (in the prompt view)"},

    /* attention */
    {']', CTX_ATTN, ACT_LAYER_NEXT, "] [", "next / previous layer"},
    {'[', CTX_ATTN, ACT_LAYER_PREV, NULL, NULL},
    {'}', CTX_ATTN, ACT_HEAD_NEXT, "} {", "next / previous head"},
    {'{', CTX_ATTN, ACT_HEAD_PREV, NULL, NULL},
    {'a', CTX_ATTN, ACT_ALL_HEADS, "a", "one head / all heads of the layer (small multiples)"},
    {KEY_LEFT, CTX_ATTN, ACT_LEFT, "← → ↑ ↓", "move the cursor (key × query)"},
    {KEY_RIGHT, CTX_ATTN, ACT_RIGHT, NULL, NULL},
    {KEY_UP, CTX_ATTN, ACT_UP, NULL, NULL},
    {KEY_DOWN, CTX_ATTN, ACT_DOWN, NULL, NULL},
    {'c', CTX_ATTN, ACT_SCORES, "c", "compute head scores (attention.head_scores plugin)"},
    {'s', CTX_ATTN, ACT_SORT, "s", "sort the head-score table by the next column"},
    {KEY_NPAGE, CTX_ATTN, ACT_PGDN, "PgDn PgUp", "scroll the head-score table"},
    {KEY_PPAGE, CTX_ATTN, ACT_PGUP, NULL, NULL},

    /* attribution / patching */
    {'\r', CTX_PATCH, ACT_EDIT, "Enter", "edit the focused prompt (clean / corrupted)"},
    {'\n', CTX_PATCH, ACT_EDIT, NULL, NULL},
    {KEY_UP, CTX_PATCH, ACT_UP, "↑ ↓", "focus the clean / corrupted prompt"},
    {KEY_DOWN, CTX_PATCH, ACT_DOWN, NULL, NULL},
    {'d', CTX_PATCH, ACT_RUN_DLA, "d", "run direct logit attribution (dla.run)"},
    {'p', CTX_PATCH, ACT_RUN_PATCH, "p", "run activation patching (patching.run)"},
    {'x', CTX_PATCH, ACT_SWAP, "x", "swap clean and corrupted"},
    {KEY_LEFT, CTX_PATCH, ACT_LEFT, "← →", "move the heatmap cursor"},
    {KEY_RIGHT, CTX_PATCH, ACT_RIGHT, NULL, NULL},

    /* plugins */
    {KEY_UP, CTX_PLUGINS, ACT_UP, "↑ ↓", "choose a method / a parameter / scroll the results"},
    {KEY_DOWN, CTX_PLUGINS, ACT_DOWN, NULL, NULL},
    {'k', CTX_PLUGINS, ACT_UP, NULL, NULL},
    {'j', CTX_PLUGINS, ACT_DOWN, NULL, NULL},
    {'\r', CTX_PLUGINS, ACT_ENTER, "Enter", "open the parameter form / edit the parameter"},
    {'\n', CTX_PLUGINS, ACT_ENTER, NULL, NULL},
    {'r', CTX_PLUGINS, ACT_RUN, "r", "run the method with the form's parameters"},
    {'f', CTX_PLUGINS, ACT_FOCUS, "f", "focus: methods → form → results"},
    {KEY_LEFT, CTX_PLUGINS, ACT_LEFT, "← →", "scroll the results sideways / next result"},
    {KEY_RIGHT, CTX_PLUGINS, ACT_RIGHT, NULL, NULL},
    {KEY_NPAGE, CTX_PLUGINS, ACT_PGDN, "PgDn PgUp", "scroll the results"},
    {KEY_PPAGE, CTX_PLUGINS, ACT_PGUP, NULL, NULL},

    /* the Lua console: the input line always has the keys (documentation only: the panel
     * reads them raw); F2-F8, Tab, F1 and F10 stay global */
    {'\r', CTX_CONSOLE, ACT_NONE, "Enter", "run the line; an unfinished chunk continues (>>)"},
    {KEY_UP, CTX_CONSOLE, ACT_NONE, "↑ ↓", "history (this session and earlier ones)"},
    {KEY_PPAGE, CTX_CONSOLE, ACT_NONE, "PgUp PgDn", "scroll the output"},
    {27, CTX_CONSOLE, ACT_NONE, "Esc C-c", "interrupt the running command"},
    {0, CTX_CONSOLE, ACT_NONE, "Esc", "idle: drop unfinished input / clear the line"},
    {CTRL('l'), CTX_CONSOLE, ACT_NONE, "C-l", "clear the output"},
    {0, CTX_CONSOLE, ACT_NONE, ":run F [A]", "run script F with arguments A (:help, :clear)"},
    {0, CTX_CONSOLE, ACT_NONE, ":sae :store", "set the features view's SAE folder / activation store"},
    {0, CTX_CONSOLE, ACT_NONE, "F2 … F8", "other views (digits and q are text here)"},

    /* SAE features */
    {KEY_LEFT, CTX_FEATURES, ACT_LEFT, "← → Home End", "select the token (shared with the other views)"},
    {KEY_RIGHT, CTX_FEATURES, ACT_RIGHT, NULL, NULL},
    {'h', CTX_FEATURES, ACT_LEFT, NULL, NULL},
    {'l', CTX_FEATURES, ACT_RIGHT, NULL, NULL},
    {KEY_HOME, CTX_FEATURES, ACT_HOME, NULL, NULL},
    {KEY_END, CTX_FEATURES, ACT_END, NULL, NULL},
    {KEY_UP, CTX_FEATURES, ACT_UP, "↑ ↓", "select a feature; after f, scroll the dashboard"},
    {KEY_DOWN, CTX_FEATURES, ACT_DOWN, NULL, NULL},
    {'k', CTX_FEATURES, ACT_UP, NULL, NULL},
    {'j', CTX_FEATURES, ACT_DOWN, NULL, NULL},
    {'\r', CTX_FEATURES, ACT_ENTER, "Enter", "the selected feature's dashboard (sae.dashboard)"},
    {'\n', CTX_FEATURES, ACT_ENTER, NULL, NULL},
    {'g', CTX_FEATURES, ACT_GOTO, "g", "the dashboard of a feature by number"},
    {KEY_NPAGE, CTX_FEATURES, ACT_PGDN, "PgDn PgUp", "scroll the dashboard"},
    {KEY_PPAGE, CTX_FEATURES, ACT_PGUP, NULL, NULL},
    {'f', CTX_FEATURES, ACT_FOCUS, "f", "focus: features ↔ dashboard (↑ ↓ scroll it)"},
    {'s', CTX_FEATURES, ACT_SET_SAE, "s / a", "choose the SAE folder / the activation store"},
    {'a', CTX_FEATURES, ACT_SET_STORE, NULL, NULL},
    {'r', CTX_FEATURES, ACT_RUN, "r", "encode the prompt again"},
    {'e', CTX_FEATURES, ACT_EDIT, "e", "edit the prompt (in the prompt view)"},

    /* while typing in a text field */
    {KEY_LEFT, CTX_EDIT, ACT_NONE, "← → Home End", "move in the text"},
    {KEY_BACKSPACE, CTX_EDIT, ACT_NONE, "Bksp Del", "delete"},
    {CTRL('u'), CTX_EDIT, ACT_NONE, "C-u C-k C-w", "delete to start / to end / a word"},
    {'\r', CTX_EDIT, ACT_NONE, "Enter / Esc", "stop editing"},
};
const int ui_n_keys = (int)(sizeof ui_keys / sizeof ui_keys[0]);

int ui_key_action(int key, int ctx)
{
    for (int i = 0; i < ui_n_keys; i++)
        if (ui_keys[i].key == key && ui_keys[i].ctx == ctx && ui_keys[i].action != ACT_NONE)
            return ui_keys[i].action;
    if (ctx != CTX_GLOBAL)
        for (int i = 0; i < ui_n_keys; i++)
            if (ui_keys[i].key == key && ui_keys[i].ctx == CTX_GLOBAL)
                return ui_keys[i].action;
    return ACT_NONE;
}

/* ---------------------------------------------------------------- line editor */

void ui_edit_set(ui_edit *e, const char *s)
{
    size_t l = strlen(s);
    if (l >= sizeof e->buf)
        l = sizeof e->buf - 1;
    memcpy(e->buf, s, l);
    e->buf[l] = 0;
    e->len = e->cur = (int)l;
}

static int prev_char(const ui_edit *e, int i)
{
    if (i <= 0)
        return 0;
    i--;
    while (i > 0 && ((unsigned char)e->buf[i] & 0xc0) == 0x80)
        i--;
    return i;
}

static int next_char(const ui_edit *e, int i)
{
    if (i >= e->len)
        return e->len;
    i++;
    while (i < e->len && ((unsigned char)e->buf[i] & 0xc0) == 0x80)
        i++;
    return i;
}

static void edit_erase(ui_edit *e, int a, int b)
{
    memmove(e->buf + a, e->buf + b, (size_t)(e->len - b + 1));
    e->len -= b - a;
    e->cur = a;
}

int ui_edit_key(ui_edit *e, int key, const wchar_t *wch)
{
    if (wch) {
        wchar_t c = *wch;
        if (c == 127 || c == 8) {
            key = KEY_BACKSPACE;
        } else if (c >= 0x20 || c == '\t') {
            if (c == '\t')
                return 0;
            char mb[8];
            mbstate_t st = {0};
            size_t l = wcrtomb(mb, c, &st);
            if (l == (size_t)-1 || e->len + (int)l >= (int)sizeof e->buf)
                return 0;
            memmove(e->buf + e->cur + l, e->buf + e->cur, (size_t)(e->len - e->cur + 1));
            memcpy(e->buf + e->cur, mb, l);
            e->len += (int)l;
            e->cur += (int)l;
            return 1;
        } else {
            key = c;
        }
    }
    switch (key) {
    case KEY_LEFT: e->cur = prev_char(e, e->cur); return 2;
    case KEY_RIGHT: e->cur = next_char(e, e->cur); return 2;
    case KEY_HOME: case CTRL('a'): e->cur = 0; return 2;
    case KEY_END: case CTRL('e'): e->cur = e->len; return 2;
    case KEY_BACKSPACE:
        if (e->cur == 0)
            return 2;
        edit_erase(e, prev_char(e, e->cur), e->cur);
        return 1;
    case KEY_DC: case CTRL('d'):
        if (e->cur >= e->len)
            return 2;
        edit_erase(e, e->cur, next_char(e, e->cur));
        return 1;
    case CTRL('u'): edit_erase(e, 0, e->cur); return 1;
    case CTRL('k'): e->buf[e->cur] = 0; e->len = e->cur; return 1;
    case CTRL('w'): {
        int i = e->cur;
        while (i > 0 && e->buf[i - 1] == ' ') i--;
        while (i > 0 && e->buf[i - 1] != ' ') i--;
        edit_erase(e, i, e->cur);
        return 1;
    }
    default: return 0;
    }
}

void ui_edit_draw(const ui_edit *e, ui_canvas *cv, int x, int y, int w, int active)
{
    if (w <= 1)
        return;
    /* scroll so that the cursor is visible: drop whole characters from the left */
    char before[sizeof e->buf];
    memcpy(before, e->buf, (size_t)e->cur);
    before[e->cur] = 0;
    int start = 0;
    while (ui_text_width(before + start) > w - 2 && start < e->cur) {
        start++;
        while (start < e->cur && ((unsigned char)before[start] & 0xc0) == 0x80)
            start++;
    }
    int cx = x + cv_text(cv, x, y, w - 1, before + start, C_NORMAL, 0);
    if (start > 0)
        cv_put(cv, x, y, '<', C_DIM, A_BOLD_);
    if (active) {
        /* the character under the cursor in reverse video */
        int n = next_char(e, e->cur) - e->cur;
        char ch[8] = " ";
        if (n > 0) {
            memcpy(ch, e->buf + e->cur, (size_t)n);
            ch[n] = 0;
        }
        int cw = cv_text(cv, cx, y, x + w - cx, ch, C_SEL, A_REV_);
        cv_text(cv, cx + cw, y, x + w - cx - cw, e->buf + e->cur + n, C_NORMAL, 0);
    } else {
        cv_text(cv, cx, y, x + w - cx, e->buf + e->cur, C_NORMAL, 0);
    }
}
