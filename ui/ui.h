/* loupe terminal UI — the private header shared by the files of ui/.
 *
 * Everything is drawn into a ui_canvas (a grid of cells with a semantic colour each),
 * never straight to ncurses: screen.c blits a canvas to the terminal, while tests and
 * bench/bench_ui.c render into a canvas in memory and read it back as text. The model
 * work (tokenize, forward, lens, attention patterns) lives in analysis.c; long plugin
 * calls run on the worker thread of loop.c. */
#ifndef LOUPE_UI_H
#define LOUPE_UI_H

#include <pthread.h>
#include <stdint.h>
#include <wchar.h>

#include "loupe/loupe.h"
#include "loupe/plugins.h"

/* ---- semantic colours (screen.c maps them to 256 / 8 / no colours) ---- */
enum {
    C_NORMAL = 0,
    C_DIM,
    C_TITLE,       /* panel title, unfocused */
    C_TITLE_FOCUS, /* panel title, focused   */
    C_STATUS,      /* status bar             */
    C_KEY,         /* key names in hints     */
    C_SEL,         /* selection / cursor     */
    C_TOK_A,       /* alternating token backgrounds in the strip */
    C_TOK_B,
    C_ERROR,
    C_GOOD,
    C_GAUGE,
    C_HEAT0, /* C_HEAT0 .. C_HEAT0+9: heatmap levels, low to high */
    C_COUNT = C_HEAT0 + 10
};
#define UI_HEAT_LEVELS 10

enum { A_BOLD_ = 1, A_REV_ = 2, A_UL_ = 4 };

typedef struct ui_cell {
    uint32_t ch;   /* a code point of width 1 or 2; 0 = right half of a wide one */
    uint8_t color; /* C_*  */
    uint8_t attr;  /* A_*_ */
} ui_cell;

typedef struct ui_canvas {
    int w, h;
    int mono; /* no colours: heatmaps use characters, selection uses reverse video */
    ui_cell *cells;
} ui_canvas;

typedef struct ui_rect {
    int x, y, w, h;
} ui_rect;

int ui_canvas_resize(ui_canvas *cv, int w, int h);
void ui_canvas_free(ui_canvas *cv);
void cv_clear(ui_canvas *cv);
void cv_fill(ui_canvas *cv, ui_rect r, uint32_t ch, int color, int attr);
void cv_put(ui_canvas *cv, int x, int y, uint32_t ch, int color, int attr);
/* UTF-8 text, clipped to maxw columns; returns the columns written. Control characters
 * and invalid bytes are shown escaped. */
int cv_text(ui_canvas *cv, int x, int y, int maxw, const char *s, int color, int attr);
int cv_printf(ui_canvas *cv, int x, int y, int maxw, int color, int attr, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* A box with a title; returns the inner rectangle. */
ui_rect cv_box(ui_canvas *cv, ui_rect r, const char *title, int focused);
/* One heatmap cell of width w: level in [0,1] (NaN: empty), label drawn over it.
 * In monochrome the first column shows the level as one of " .:-=+*#%@". */
void cv_heat(ui_canvas *cv, int x, int y, int w, double level, const char *label, int selected);
void cv_gauge(ui_canvas *cv, int x, int y, int w, double frac);
/* The monochrome shade of a level in [0,1]: one of " .:-=+*#%@" (a level > 0 is never ' '). */
uint32_t ui_shade_char(double level);
/* One row of the canvas as UTF-8 (for tests); returns a malloc'd string. */
char *cv_row_text(const ui_canvas *cv, int y);
/* The whole canvas as text, rows separated by '\n' (malloc'd). */
char *cv_dump(const ui_canvas *cv);

/* Visible form of a token's bytes: a leading space becomes '·', newline "\n", tab "\t",
 * other control characters and invalid UTF-8 "\xNN". Returns the length written. */
int ui_escape_token(const char *bytes, int len, char *out, size_t cap);
/* Display columns of a UTF-8 string (as cv_text would draw it). */
int ui_text_width(const char *s);

/* ---- actions and keys (keys.c) ---- */
enum {
    ACT_NONE = 0,
    ACT_QUIT,
    ACT_HELP,
    ACT_NEXT_VIEW,
    ACT_PREV_VIEW,
    ACT_VIEW1, ACT_VIEW2, ACT_VIEW3, ACT_VIEW4, ACT_VIEW5, ACT_VIEW6, ACT_VIEW7,
    ACT_CANCEL,
    ACT_EDIT,      /* start editing the focused text field */
    ACT_LEFT, ACT_RIGHT, ACT_UP, ACT_DOWN,
    ACT_PGUP, ACT_PGDN, ACT_HOME, ACT_END,
    ACT_ENTER,
    ACT_TARGET,    /* lens: choose a target token */
    ACT_LAYER_NEXT, ACT_LAYER_PREV, ACT_HEAD_NEXT, ACT_HEAD_PREV,
    ACT_ALL_HEADS, ACT_SORT, ACT_SCORES,
    ACT_RUN_DLA, ACT_RUN_PATCH, ACT_SWAP,
    ACT_RUN,       /* plugins: run the method */
    ACT_FOCUS,     /* switch the focused pane inside a view */
    ACT_SET_SAE,   /* features: choose the SAE folder */
    ACT_SET_STORE, /* features: choose the activation store */
    ACT_GOTO,      /* features: a feature's dashboard by number */
    ACT_COUNT
};

enum {
    CTX_GLOBAL = 0, CTX_PROMPT, CTX_LENS, CTX_ATTN, CTX_PATCH, CTX_PLUGINS, CTX_CONSOLE, CTX_FEATURES, CTX_EDIT,
    CTX_COUNT
};

typedef struct ui_key {
    int key;          /* ncurses key code or character */
    int ctx;          /* CTX_*                          */
    int action;       /* ACT_*                          */
    const char *name; /* "q", "F1", "←"                 */
    const char *help;
} ui_key;

extern const ui_key ui_keys[];
extern const int ui_n_keys;
/* Action of key in context ctx (then the global context); ACT_NONE when unbound. */
int ui_key_action(int key, int ctx);

/* ---- a line editor (prompt, fields, target) ---- */
typedef struct ui_edit {
    char buf[2048];
    int len, cur; /* bytes */
} ui_edit;
void ui_edit_set(ui_edit *e, const char *s);
/* Returns 1 when the key changed the text, 2 when it only moved the cursor, 0 when not handled. */
int ui_edit_key(ui_edit *e, int key, const wchar_t *wch);
/* Draws the text with the cursor (when active), scrolled so that the cursor is visible. */
void ui_edit_draw(const ui_edit *e, ui_canvas *cv, int x, int y, int w, int active);

/* ---- the analysis of the current prompt (analysis.c) ---- */
#define UI_TOPK 10
#define UI_MAX_TOKENS 256

typedef struct ui_lens_cell {
    int done;
    int done_pending; /* scratch mark of ui_lens_ensure_cells */
    int32_t top[UI_TOPK];
    float prob[UI_TOPK];
    float target_prob;
    int target_rank;
} ui_lens_cell;

typedef struct ui_analysis {
    int32_t *ids;
    int n;            /* tokens */
    int truncated;    /* the prompt had more than UI_MAX_TOKENS tokens */
    lp_cache *cache;  /* resid_pre of every block, the final resid_post, every pattern */
    ui_lens_cell *lens; /* [(n_layers + 1) * n], computed lazily per column */
    int32_t target;   /* -1: none */
    lp_kv *kv;        /* keys and values of ids[0..n): the next analysis resumes from them */
    float *resid;     /* [n_layers + 1, n, d_model] the lens layers' residual streams      */
    float *pat;       /* [n_layers, n_heads, n, n] every pattern (with_patterns), or NULL  */
    int fwd_kept;     /* positions the last forward pass took from the KV cache            */
    int scratch_rows;
    float *scratch_x, *scratch_n, *scratch_logits; /* [(n_layers+1), d_model] ×2, [(n_layers+1), d_vocab] */
    char error[512];
    double forward_ms, analyse_ms;
    unsigned generation; /* incremented by each analysis */
    int lens_more;       /* lens cells on screen still to compute (next frame) */
    int with_patterns;   /* the last analysis kept the attention patterns */
    int lens_kept;       /* positions whose lens cells were kept from the previous analysis */
    const lp_model *lens_model; /* the model and target the lens cells were computed for */
    int32_t lens_target;
} ui_analysis;

/* ---- the worker (loop.c): plugin calls and Lua commands off the UI thread ---- */
typedef struct ui_app ui_app;
/* call: the plugin call, or NULL for a function job (ui_worker_start_fn) */
typedef void (*ui_job_done_fn)(ui_app *app, lp_call *call, int rc, const char *err, void *user);
/* A function job: runs on the worker thread; returns 0, LP_ECANCELLED or an error code. */
typedef int (*ui_job_fn)(void *user, lp_error *err);
/* Called on the UI thread (or from the SIGINT handler: async-signal-safe only) to ask a
 * function job to stop. */
typedef void (*ui_job_cancel_fn)(void *user);

typedef struct ui_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    int running;           /* a job is in flight (UI thread's view)   */
    volatile int finished; /* set by the worker                       */
    volatile int cancel;
    double done, total;
    char what[128];
    lp_call *call;
    ui_job_fn fn;                /* set instead of call for a function job        */
    ui_job_cancel_fn cancel_fn;  /* how a function job is asked to stop           */
    int quiet;                   /* no "done in N ms" message (the job reports)   */
    int rc;
    lp_error err;
    ui_job_done_fn on_done;
    void *user;
    char label[128];
    double started;
} ui_worker;

/* ---- panels ---- */
enum { UI_HANDLED = 1, UI_REDRAW = 2, UI_REANALYSE = 4, UI_QUIT = 8 };

typedef struct ui_panel ui_panel;
struct ui_panel {
    const char *name;  /* "Prompt" — tab label */
    int ctx;           /* CTX_* for its keys   */
    void (*draw)(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r);
    /* key: the raw key; action: its mapping in this panel's context (or ACT_NONE); wch:
     * the wide character typed (NULL for function keys). Returns UI_* flags. */
    int (*on_key)(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch);
    void (*on_focus)(ui_app *app, ui_panel *p, int gained);
    int (*editing)(ui_app *app, ui_panel *p); /* a text field has the keys (may be NULL) */
    void *state;
};

enum { VIEW_PROMPT = 0, VIEW_LENS, VIEW_ATTN, VIEW_PATCH, VIEW_PLUGINS, VIEW_CONSOLE, VIEW_FEATURES, VIEW_COUNT };

struct ui_app {
    lp_model *model;
    const lp_config *cfg;
    lp_tokenizer *tok;
    lp_registry *reg;
    char model_label[256];

    ui_edit prompt;
    int prompt_editing;
    int sel_pos;   /* selected token position; -1: follow the last one */
    int dirty;     /* the prompt changed since the last analysis */
    ui_analysis an;

    ui_panel panels[VIEW_COUNT];
    int view;
    int help;      /* help overlay shown */
    int quit;
    char msg[256]; /* one-line message in the status bar */
    int msg_error;

    ui_worker worker;
    int mono;      /* no colour */

    /* the features view: an SAE folder and an optional activation store (ui_set_sae) */
    char sae_path[1024], store_path[1024];
    unsigned sae_gen, store_gen; /* bumped by each change */
    int open_feature;            /* a dashboard to open when the view is first drawn (-1: none) */
};

/* app lifetime (ui_main.c / analysis.c) */
int ui_app_init(ui_app *app, lp_model *m, lp_registry *reg, const char *prompt);
void ui_app_free(ui_app *app);
void ui_set_msg(ui_app *app, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The features view's SAE folder and activation store; NULL leaves one unchanged, "" clears it. */
void ui_set_sae(ui_app *app, const char *sae, const char *store);

/* analysis.c */
int ui_analyse(ui_app *app);            /* tokenize + forward; resets the lens */
/* The same from token ids (copied); t0: when the work started (ms, 0: now). */
int ui_analyse_ids(ui_app *app, const int32_t *ids, int n, double t0);
int ui_sel_pos(const ui_app *app);      /* the selected position, resolved */
/* Make sure the lens cells of position pos are computed (all layers, or only the final
 * one). Returns 0, or -1 when the model is busy or there is nothing to compute. */
int ui_lens_ensure(ui_app *app, int pos, int final_only);
int ui_lens_ensure_range(ui_app *app, int pos0, int pos1, int final_only); /* [pos0, pos1), one batch */
/* The cells of positions [pos0, pos1) × layers [l0, l1] (what is on screen), the cell
 * (cur_l, cur_p) first, then the output row, then the layers downwards: at most budget
 * cells in one batch. Returns how many are still missing (drawn as "…"; the loop draws
 * again at once while any are), or -1. */
int ui_lens_ensure_cells(ui_app *app, int pos0, int pos1, int l0, int l1, int cur_l, int cur_p, int budget);
/* lens cells per frame after the first: each batch streams W_U once (≈10–15 ms for
 * GPT-2's 154 MB) and 256 rows cost ≈40 ms more of sgemm, so input is polled at least every
 * ≈55 ms while the grid fills in, with few passes over W_U */
#define UI_LENS_BUDGET 256
ui_lens_cell *ui_lens_at(ui_app *app, int layer, int pos);
/* blocks.L.attn.hook_pattern row data: [n_heads, n, n] of layer L, or NULL (also when the
 * last analysis did not keep the patterns: then the prompt is marked for analysis again). */
const float *ui_pattern(ui_app *app, int layer);
void ui_set_target(ui_app *app, int32_t id);
/* Token text for display (escaped), into out. */
void ui_token_label(const ui_app *app, int32_t id, char *out, size_t cap);
int ui_model_busy(const ui_app *app);

/* loop.c */
int ui_worker_start(ui_app *app, lp_call *call, const char *label, ui_job_done_fn done, void *user);
/* Run fn(user) on the worker (the model is busy meanwhile); Esc / Ctrl-C call cancel(user). */
int ui_worker_start_fn(ui_app *app, ui_job_fn fn, ui_job_cancel_fn cancel, const char *label, int quiet,
                       ui_job_done_fn done, void *user);
void ui_worker_poll(ui_app *app); /* delivers a finished job */
void ui_worker_cancel(ui_app *app);
void ui_worker_wait(ui_app *app); /* blocks until the job is finished and delivered */
int ui_run_loop(ui_app *app);
double ui_now_ms(void);
/* Handle one key (shared by the loop and the tests); returns UI_* flags. */
int ui_handle_key(ui_app *app, int key, const wchar_t *wch);

/* screen.c */
void ui_render(ui_app *app, ui_canvas *cv); /* the whole screen into the canvas */
/* Render until nothing on screen is left to compute (captures, tests, the bench). */
void ui_render_full(ui_app *app, ui_canvas *cv);
int ui_screen_init(int *mono);             /* ncurses on; colours        */
void ui_screen_end(void);                  /* idempotent                 */
void ui_screen_blit(const ui_canvas *cv);  /* the canvas onto the terminal */
long ui_rss_kib(void);

/* panels */
void ui_panel_prompt_init(ui_panel *p);
void ui_panel_lens_init(ui_panel *p);
void ui_panel_attention_init(ui_panel *p);
void ui_panel_patching_init(ui_panel *p);
void ui_panel_plugins_init(ui_panel *p);
void ui_panel_console_init(ui_panel *p);
void ui_panel_features_init(ui_panel *p);
/* Draws the token strip (shared by several views); returns rows used. */
int ui_draw_token_strip(ui_app *app, ui_canvas *cv, ui_rect r, int sel);
/* Draws a top-k list of a lens cell. */
void ui_draw_topk(ui_app *app, ui_canvas *cv, ui_rect r, const ui_lens_cell *c, const char *title);
/* Draw a [rows, cols] heatmap with labels, for patching/DLA/plugin tensors. */
void ui_draw_matrix(ui_app *app, ui_canvas *cv, ui_rect r, const float *v, int rows, int cols,
                    const char *row_axis, const char *col_axis, int cur_r, int cur_c, int symmetric);

int cmd_ui(int argc, char **argv);

#endif
