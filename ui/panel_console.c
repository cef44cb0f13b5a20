/* loupe UI — the Lua console: a REPL bound to the UI's model.
 *
 * One Lua state for the session (created on first use) with the standard libraries, the
 * `loupe` module, and the global `m`: the UI's own model, lent to Lua (m:close() refuses,
 * __gc leaves it alone) and the UI's plugin registry. `print` and `io.write` append to the
 * console's output pane instead of the terminal, which ncurses owns.
 *
 * A line is compiled on the UI thread as lua.c does: `return LINE` first (so expressions
 * echo their values), else the line itself; a syntax error ending in "<eof>" keeps the
 * chunk open and the next line continues it (prompt ">>"). The compiled chunk then runs on
 * the UI's worker thread as a function job, so the model is never run by the UI and Lua at
 * once (the analysis waits, marked dirty, until the job is delivered) and the screen keeps
 * redrawing. Esc or Ctrl-C sets a flag that a count hook (every 1000 instructions) turns
 * into the error "interrupted"; long C operations (m:run, plugin calls) poll lt_interrupted.
 * Errors come back with their traceback (the handler of `loupe run`).
 *
 * `:run PATH [ARGS]` runs a script file (arguments in `arg` and `...`), `:clear` empties the
 * pane, `:help` lists the commands. History: Up/Down, kept for the session and appended to
 * $XDG_STATE_HOME/loupe/history (default ~/.local/state/loupe/history) when writable. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curses.h>

#include "l_loupe.h"
#include "ui.h"

#define MAX_LINES 4000   /* output lines kept (the oldest are dropped) */
#define MAX_HIST 1000
#define HOOK_COUNT 1000  /* instructions between two looks at the stop flag */

enum { JOB_LINE, JOB_SCRIPT };

typedef struct out_line {
    char *s;
    int color;
} out_line;

typedef struct console {
    lua_State *L;
    char lua_error[256];     /* why there is no Lua state */
    ui_edit in;
    char *pending;           /* an incomplete chunk (multi-line input) or NULL */

    pthread_mutex_t mu;      /* the output, appended to by the worker (print) */
    out_line *lines;
    int n_lines, cap_lines;
    int open_last;           /* the last line has no newline yet (io.write) */
    int scroll;              /* display rows scrolled up from the bottom */
    int page;                /* rows of the output pane at the last draw */

    char **hist;
    int n_hist, hist_pos;    /* hist_pos == n_hist: the line being typed */
    char typed[sizeof(((ui_edit *)0)->buf)];
    char hist_path[1024];

    atomic_int stop;         /* set by Esc / Ctrl-C, read by the count hook */
    int busy;                /* a job of ours is on the worker */
    int job_kind, job_nargs;
    char job_label[96];
    char **queue;            /* lines entered while a command runs (type-ahead) */
    int n_queue;
} console;

/* ---------------------------------------------------------------- output pane */

static void push_line(console *con, const char *s, size_t n, int color)
{
    if (con->n_lines == con->cap_lines) {
        if (con->n_lines >= MAX_LINES) { /* drop the oldest quarter */
            int drop = MAX_LINES / 4;
            for (int i = 0; i < drop; i++)
                free(con->lines[i].s);
            memmove(con->lines, con->lines + drop, sizeof *con->lines * (size_t)(con->n_lines - drop));
            con->n_lines -= drop;
        } else {
            int cap = con->cap_lines ? con->cap_lines * 2 : 64;
            out_line *nl = realloc(con->lines, sizeof *nl * (size_t)cap);
            if (!nl)
                return;
            con->lines = nl;
            con->cap_lines = cap;
        }
    }
    char *c = malloc(n + 1);
    if (!c)
        return;
    memcpy(c, s, n);
    c[n] = 0;
    con->lines[con->n_lines++] = (out_line){c, color};
}

static void extend_last(console *con, const char *s, size_t n)
{
    out_line *l = &con->lines[con->n_lines - 1];
    size_t old = strlen(l->s);
    char *c = realloc(l->s, old + n + 1);
    if (!c)
        return;
    memcpy(c + old, s, n);
    c[old + n] = 0;
    l->s = c;
}

/* Append text (any thread): a newline ends the open line, tabs expand to 8 columns. */
static void out_append(console *con, const char *s, size_t n, int color)
{
    pthread_mutex_lock(&con->mu);
    for (size_t i = 0; i < n;) {
        if (s[i] == '\n') {
            if (!con->open_last)
                push_line(con, "", 0, color);
            con->open_last = 0;
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && s[j] != '\n')
            j++;
        int open = con->open_last && con->n_lines;
        size_t col = open ? strlen(con->lines[con->n_lines - 1].s) : 0, bl = 0;
        char *buf = malloc((j - i) * 8 + 1);
        if (!buf)
            break;
        for (size_t k = i; k < j; k++) {
            if (s[k] == '\t')
                do
                    buf[bl++] = ' ';
                while ((col + bl) % 8);
            else
                buf[bl++] = s[k];
        }
        if (open)
            extend_last(con, buf, bl);
        else
            push_line(con, buf, bl, color);
        free(buf);
        con->open_last = 1;
        i = j;
    }
    pthread_mutex_unlock(&con->mu);
}

/* A whole line of its own (echo, errors, notes): ends a line left open by io.write first. */
static void out_line_add(console *con, const char *s, int color)
{
    pthread_mutex_lock(&con->mu);
    con->open_last = 0;
    pthread_mutex_unlock(&con->mu);
    out_append(con, s, strlen(s), color);
    out_append(con, "\n", 1, color);
}

static void out_clear(console *con)
{
    pthread_mutex_lock(&con->mu);
    for (int i = 0; i < con->n_lines; i++)
        free(con->lines[i].s);
    con->n_lines = 0;
    con->open_last = 0;
    con->scroll = 0;
    pthread_mutex_unlock(&con->mu);
}

/* Bytes of the character at s (invalid UTF-8: one byte). */
static int char_len(const unsigned char *s)
{
    int n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 1;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

/* Row starts (byte offsets) of s wrapped at w columns; returns the rows (>= 1). */
static int wrap_rows(const char *s, int w, int *starts, int max)
{
    int n = 0, col = 0;
    starts[n++] = 0;
    for (int i = 0; s[i];) {
        int l = char_len((const unsigned char *)s + i);
        char ch[8];
        memcpy(ch, s + i, (size_t)l);
        ch[l] = 0;
        int cw = ui_text_width(ch);
        if (col + cw > w && col > 0) {
            if (n == max)
                break;
            starts[n++] = i;
            col = 0;
        }
        col += cw;
        i += l;
    }
    return n;
}

/* ---------------------------------------------------------------- history */

static void hist_add(console *con, const char *line, int save)
{
    if (!*line || (con->n_hist && !strcmp(con->hist[con->n_hist - 1], line)))
        return;
    if (con->n_hist == MAX_HIST) {
        free(con->hist[0]);
        memmove(con->hist, con->hist + 1, sizeof *con->hist * (MAX_HIST - 1));
        con->n_hist--;
    }
    if (!con->hist) {
        con->hist = calloc(MAX_HIST, sizeof *con->hist);
        if (!con->hist)
            return;
    }
    char *c = strdup(line);
    if (!c)
        return;
    con->hist[con->n_hist++] = c;
    if (save && con->hist_path[0]) { /* failures are ignored: history is a convenience */
        FILE *f = fopen(con->hist_path, "a");
        if (f) {
            fprintf(f, "%s\n", line);
            fclose(f);
        }
    }
}

static void mkdirs(char *path) /* every parent folder of path */
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        mkdir(path, 0700);
        *p = '/';
    }
}

static void hist_load(console *con)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(con->hist_path, sizeof con->hist_path, "%s/loupe/history", xdg);
    else if (home && *home)
        snprintf(con->hist_path, sizeof con->hist_path, "%s/.local/state/loupe/history", home);
    else
        return;
    mkdirs(con->hist_path);
    FILE *f = fopen(con->hist_path, "r");
    if (!f)
        return;
    char line[sizeof con->in.buf];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        hist_add(con, line, 0);
    }
    fclose(f);
    con->hist_pos = con->n_hist;
}

/* ---------------------------------------------------------------- Lua */

static console *con_of(lua_State *L)
{
    return *(console **)lua_getextraspace(L);
}

/* print(...): tostring of each argument, tab-separated, into the pane */
static int l_print(lua_State *L)
{
    console *con = con_of(L);
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        size_t l;
        const char *s = luaL_tolstring(L, i, &l);
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
        (void)s;
    }
    luaL_pushresult(&b);
    size_t l;
    const char *s = lua_tolstring(L, -1, &l);
    out_append(con, s, l, C_NORMAL);
    out_append(con, "\n", 1, C_NORMAL);
    return 0;
}

/* io.write(...): strings and numbers into the pane; returns io.stdout like the original */
static int l_write(lua_State *L)
{
    console *con = con_of(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t l;
        const char *s = luaL_checklstring(L, i, &l);
        out_append(con, s, l, C_NORMAL);
    }
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "stdout");
    return 1;
}

/* io.read / io.lines(): the terminal belongs to the UI */
static int l_no_stdin(lua_State *L)
{
    return luaL_error(L, "standard input is not available in the UI console (the terminal belongs to the UI)");
}

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (atomic_load(&con_of(L)->stop))
        luaL_error(L, "interrupted");
}

typedef struct init_ctx {
    ui_app *app;
} init_ctx;

static int pinit(lua_State *L)
{
    init_ctx *ic = lua_touserdata(L, 1);
    luaL_openlibs(L);
    luaL_requiref(L, "loupe", luaopen_loupe, 1);
    lua_pop(L, 1);
    if (ic->app->reg)
        lt_plugins_use_registry(L, ic->app->reg);
    lt_model_push_borrowed(L, ic->app->model);
    lua_setglobal(L, "m");
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    lua_getglobal(L, "io");
    lua_pushcfunction(L, l_write);
    lua_setfield(L, -2, "write");
    lua_pushcfunction(L, l_no_stdin);
    lua_setfield(L, -2, "read");
    lua_pop(L, 1);
    return 0;
}

static int ensure_lua(ui_app *app, console *con)
{
    if (con->L)
        return 0;
    if (con->lua_error[0])
        return -1;
    lt_no_tty = 1; /* no progress bars or warnings on the terminal the UI draws on */
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(con->lua_error, sizeof con->lua_error, "cannot create a Lua state: out of memory");
        return -1;
    }
    *(console **)lua_getextraspace(L) = con;
    init_ctx ic = {app};
    lua_pushcfunction(L, pinit);
    lua_pushlightuserdata(L, &ic);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        snprintf(con->lua_error, sizeof con->lua_error, "cannot set up Lua: %s", lua_tostring(L, -1));
        lua_close(L);
        return -1;
    }
    con->L = L;
    hist_load(con);
    char greet[256];
    const lp_config *c = app->cfg;
    snprintf(greet, sizeof greet, "%s · loupe %s · m = %s (%d layers, d_model %d, %d heads)", LUA_RELEASE,
             LOUPE_VERSION_STRING, app->model_label, c->n_layers, c->d_model, c->n_heads);
    out_line_add(con, greet, C_DIM);
    out_line_add(con, "Enter runs a line, an expression prints its value; :help for more", C_DIM);
    return 0;
}

/* The worker side: runs the function prepared on the stack [msghandler, fn, args...]. */
static int job_run(void *user, lp_error *err)
{
    (void)err;
    console *con = user;
    lua_State *L = con->L;
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
    int st = lua_pcall(L, con->job_nargs, LUA_MULTRET, 1);
    if (st == LUA_OK && con->job_kind == JOB_LINE && lua_gettop(L) > 1) {
        /* echo the results like lua.c: print(...) under the same handler */
        int n = lua_gettop(L) - 1;
        lua_pushcfunction(L, l_print);
        lua_insert(L, 2);
        st = lua_pcall(L, n, 0, 1);
    }
    lua_sethook(L, NULL, 0, 0);
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        out_line_add(con, msg ? msg : "(error object is not a string)", C_ERROR);
    }
    lua_settop(L, 0);
    return st != LUA_OK && atomic_load(&con->stop) ? LP_ECANCELLED : 0;
}

/* Esc / Ctrl-C (UI thread or signal handler): flags only */
static void job_cancel(void *user)
{
    console *con = user;
    atomic_store(&con->stop, 1);
    lt_interrupted = 1;
}

static void submit(ui_app *app, console *con, const char *text);

static void job_done(ui_app *app, lp_call *call, int rc, const char *err, void *user)
{
    (void)call, (void)err;
    console *con = user;
    con->busy = 0;
    atomic_store(&con->stop, 0);
    lt_interrupted = 0;
    if (rc == LP_ECANCELLED)
        ui_set_msg(app, 0, "Lua: interrupted");
    app->dirty = 1; /* Lua may have changed the model (weights are writable views) */
    if (rc == LP_ECANCELLED) { /* an interrupt drops the type-ahead too */
        for (int i = 0; i < con->n_queue; i++)
            free(con->queue[i]);
        con->n_queue = 0;
    }
    /* lines typed meanwhile, in order, until one of them starts a job */
    while (con->n_queue && !con->busy) {
        char *line = con->queue[0];
        memmove(con->queue, con->queue + 1, sizeof *con->queue * (size_t)--con->n_queue);
        submit(app, con, line);
        free(line);
    }
}

/* Start the chunk on the stack top (a function) with nargs arguments above it. */
static void start_job(ui_app *app, console *con, int kind, int nargs, const char *label)
{
    lua_State *L = con->L;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, 1);
    con->job_kind = kind;
    con->job_nargs = nargs;
    snprintf(con->job_label, sizeof con->job_label, "Lua %s", label);
    atomic_store(&con->stop, 0);
    lt_interrupted = 0;
    con->scroll = 0;
    if (ui_worker_start_fn(app, job_run, job_cancel, con->job_label, 1, job_done, con)) {
        lua_settop(L, 0);
        out_line_add(con, "busy: another job is running (Esc cancels it); try again when it ends", C_ERROR);
        return;
    }
    con->busy = 1;
}

static int ends_with_eof(lua_State *L)
{
    size_t l;
    const char *msg = lua_tolstring(L, -1, &l);
    return msg && l >= 5 && !strcmp(msg + l - 5, "<eof>");
}

static void run_script(ui_app *app, console *con, char *args)
{
    lua_State *L = con->L;
    char *argv[64];
    int argc = 0;
    for (char *t = strtok(args, " \t"); t && argc < 64; t = strtok(NULL, " \t"))
        argv[argc++] = t;
    if (!argc) {
        out_line_add(con, ":run needs a script: :run PATH [ARGS]", C_ERROR);
        return;
    }
    lua_settop(L, 0);
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, argv[0]) != LUA_OK) {
        out_line_add(con, lua_tostring(L, -1), C_ERROR);
        lua_settop(L, 0);
        return;
    }
    for (int i = 1; i < argc; i++)
        lua_pushstring(L, argv[i]);
    char label[80];
    snprintf(label, sizeof label, "%s", argv[0]);
    start_job(app, con, JOB_SCRIPT, argc - 1, label);
}

static void command(ui_app *app, console *con, char *line)
{
    char *cmd = line + 1, *rest = cmd + strcspn(cmd, " \t");
    if (*rest)
        *rest++ = 0;
    if (!strcmp(cmd, "run")) {
        run_script(app, con, rest);
    } else if (!strcmp(cmd, "sae") || !strcmp(cmd, "store")) {
        /* the features view's SAE folder / activation store ("-" clears the store) */
        char msg[1200];
        while (*rest == ' ' || *rest == '\t')
            rest++;
        size_t l = strlen(rest);
        while (l > 0 && (rest[l - 1] == ' ' || rest[l - 1] == '\t'))
            rest[--l] = 0;
        int is_sae = cmd[1] == 'a', set = *rest != 0;
        if (set) {
            if (!is_sae && !strcmp(rest, "-"))
                rest[0] = 0;
            ui_set_sae(app, is_sae ? rest : NULL, is_sae ? NULL : rest);
        }
        const char *v = is_sae ? app->sae_path : app->store_path;
        snprintf(msg, sizeof msg, "%s: %s%s", is_sae ? "SAE" : "activation store", *v ? v : "(none)",
                 set ? " (the features view, 7, uses it)" : "");
        out_line_add(con, msg, C_DIM);
    } else if (!strcmp(cmd, "clear")) {
        out_clear(con);
    } else if (!strcmp(cmd, "help")) {
        static const char *help[] = {
            "m is the UI's model; loupe is the module (docs/lua-api.md).",
            "A line runs when complete; an unfinished one continues with >> (Esc drops it).",
            "An expression prints its value: m.cfg.n_layers, m:to_str_tokens('hi').",
            ":run PATH [ARGS]  run a script (arg, ...), output here",
            ":sae [DIR]        the features view's SAE folder (no DIR: show it)",
            ":store [DIR|-]    its activation store for top contexts (-: none)",
            ":clear            empty the output     :help   this text",
            "Esc / Ctrl-C interrupt a running command; Up/Down history; PgUp/PgDn scroll.",
        };
        for (size_t i = 0; i < sizeof help / sizeof help[0]; i++)
            out_line_add(con, help[i], C_DIM);
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown command ':%s' (:run PATH [ARGS], :sae, :store, :clear, :help)", cmd);
        out_line_add(con, msg, C_ERROR);
    }
}

static void submit(ui_app *app, console *con, const char *text)
{
    lua_State *L = con->L;
    char line[sizeof con->in.buf];
    snprintf(line, sizeof line, "%s", text);
    char echo[sizeof line + 4];
    snprintf(echo, sizeof echo, "%s %s", con->pending ? ">>" : ">", line);
    out_line_add(con, echo, C_KEY);
    con->scroll = 0;
    if (!con->pending && line[0] == ':') {
        command(app, con, line);
        return;
    }
    if (!con->pending && !line[0])
        return;
    lua_settop(L, 0);
    if (!con->pending) { /* an expression? */
        size_t rl = strlen(line) + 8;
        char *ret = malloc(rl);
        if (ret) {
            snprintf(ret, rl, "return %s", line);
            int st = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
            free(ret);
            if (st == LUA_OK) {
                start_job(app, con, JOB_LINE, 0, line);
                return;
            }
            lua_settop(L, 0);
        }
    }
    size_t pl = con->pending ? strlen(con->pending) : 0, ll = strlen(line);
    char *chunk = malloc(pl + ll + 2);
    if (!chunk)
        return;
    if (con->pending) {
        memcpy(chunk, con->pending, pl);
        chunk[pl++] = '\n';
    }
    memcpy(chunk + pl, line, ll + 1);
    free(con->pending);
    con->pending = NULL;
    int st = luaL_loadbuffer(L, chunk, strlen(chunk), "=stdin");
    if (st == LUA_ERRSYNTAX && ends_with_eof(L)) {
        con->pending = chunk; /* continue on the next line */
        lua_settop(L, 0);
        return;
    }
    free(chunk);
    if (st != LUA_OK) {
        out_line_add(con, lua_tostring(L, -1), C_ERROR);
        lua_settop(L, 0);
        return;
    }
    start_job(app, con, JOB_LINE, 0, line);
}

/* ---------------------------------------------------------------- the panel */

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    console *con = p->state;
    ensure_lua(app, con);
    char title[200];
    snprintf(title, sizeof title, "Lua console · m = %s  (:help, :run FILE, PgUp PgDn)", app->model_label);
    ui_rect in = cv_box(cv, r, title, 1);
    if (in.w < 4 || in.h < 2)
        return;
    if (!con->L) {
        cv_text(cv, in.x + 1, in.y + 1, in.w - 2, con->lua_error, C_ERROR, A_BOLD_);
        return;
    }
    int rows = in.h - 1;
    con->page = rows;
    /* the output, bottom-up, wrapped at the pane's width */
    pthread_mutex_lock(&con->mu);
    int starts[256];
    int total = 0;
    for (int i = con->n_lines - 1; i >= 0 && total < con->scroll + rows + 256; i--)
        total += wrap_rows(con->lines[i].s, in.w, starts, 256);
    if (con->scroll > total - rows)
        con->scroll = total - rows > 0 ? total - rows : 0;
    int y = in.y + rows - 1 + con->scroll; /* the bottom row of the last line */
    for (int i = con->n_lines - 1; i >= 0 && y >= in.y; i--) {
        int n = wrap_rows(con->lines[i].s, in.w, starts, 256);
        for (int k = n - 1; k >= 0 && y >= in.y; k--, y--) {
            if (y >= in.y + rows)
                continue;
            int end = k + 1 < n ? starts[k + 1] : (int)strlen(con->lines[i].s);
            char seg[4096];
            int len = end - starts[k] < (int)sizeof seg - 1 ? end - starts[k] : (int)sizeof seg - 1;
            memcpy(seg, con->lines[i].s + starts[k], (size_t)len);
            seg[len] = 0;
            cv_text(cv, in.x, y, in.w, seg, con->lines[i].color, con->lines[i].color == C_ERROR ? A_BOLD_ : 0);
        }
    }
    pthread_mutex_unlock(&con->mu);
    if (con->scroll > 0) {
        char more[48];
        snprintf(more, sizeof more, " ↓ %d more ", con->scroll);
        cv_text(cv, in.x + in.w - ui_text_width(more), in.y + rows - 1, ui_text_width(more), more, C_KEY, A_REV_);
    }
    /* the input line */
    int iy = in.y + rows, iw = in.w;
    if (con->busy) { /* the input stays editable (type-ahead); the state on the right */
        char run[96];
        snprintf(run, sizeof run, " running… %.1f s%s · Esc interrupts ", (ui_now_ms() - app->worker.started) / 1e3,
                 con->n_queue ? " (+ queued)" : "");
        int rw = ui_text_width(run);
        if (rw < in.w - 10) {
            cv_text(cv, in.x + in.w - rw, iy, rw, run, C_KEY, A_BOLD_ | A_REV_);
            iw -= rw + 1;
        }
    }
    const char *prompt = con->busy ? "… " : con->pending ? ">> " : "> ";
    int px = cv_text(cv, in.x, iy, iw, prompt, C_KEY, A_BOLD_);
    ui_edit_draw(&con->in, cv, in.x + px, iy, iw - px, 1);
}

static int on_key(ui_app *app, ui_panel *p, int key, int action, const wchar_t *wch)
{
    (void)action;
    console *con = p->state;
    if (ensure_lua(app, con))
        return 0;
    int k = wch ? (int)*wch : key;
    if (key == KEY_PPAGE || key == KEY_NPAGE) {
        int step = con->page > 2 ? con->page - 1 : 1;
        con->scroll += key == KEY_PPAGE ? step : -step;
        if (con->scroll < 0)
            con->scroll = 0;
        return UI_REDRAW; /* the upper bound is clamped when drawing */
    }
    if (k == ('l' & 0x1f)) { /* C-l: clear the pane */
        out_clear(con);
        return UI_REDRAW;
    }
    if (k == 27 && con->busy)
        return UI_REDRAW; /* (Esc interrupts the command: handled by the loop) */
    if (k == 27) { /* drop an unfinished chunk, else the line */
        if (con->pending) {
            free(con->pending);
            con->pending = NULL;
            out_line_add(con, "(unfinished input dropped)", C_DIM);
        } else {
            ui_edit_set(&con->in, "");
        }
        return UI_REDRAW;
    }
    if (k == '\r' || k == '\n' || key == KEY_ENTER) {
        hist_add(con, con->in.buf, 1);
        con->hist_pos = con->n_hist;
        if (con->busy) { /* type-ahead: runs when the command ends */
            char **q = realloc(con->queue, sizeof *q * (size_t)(con->n_queue + 1));
            char *c = strdup(con->in.buf);
            if (q)
                con->queue = q;
            if (q && c)
                con->queue[con->n_queue++] = c;
            else
                free(c);
        } else {
            submit(app, con, con->in.buf);
        }
        ui_edit_set(&con->in, "");
        return UI_REDRAW;
    }
    if (key == KEY_UP || key == KEY_DOWN) {
        if (!con->n_hist)
            return UI_REDRAW;
        if (con->hist_pos == con->n_hist)
            snprintf(con->typed, sizeof con->typed, "%s", con->in.buf);
        con->hist_pos += key == KEY_UP ? -1 : 1;
        if (con->hist_pos < 0)
            con->hist_pos = 0;
        if (con->hist_pos >= con->n_hist) {
            con->hist_pos = con->n_hist;
            ui_edit_set(&con->in, con->typed);
        } else {
            ui_edit_set(&con->in, con->hist[con->hist_pos]);
        }
        return UI_REDRAW;
    }
    if (wch && *wch == '\t')
        return 0;
    return ui_edit_key(&con->in, key, wch) ? UI_REDRAW : 0;
}

static int editing(ui_app *app, ui_panel *p)
{
    (void)app;
    console *con = p->state;
    return con && !con->lua_error[0];
}

static void on_focus(ui_app *app, ui_panel *p, int gained)
{
    console *con = p->state;
    if (!con)
        return;
    if (gained == 1) {
        ensure_lua(app, con);
        return;
    }
    if (gained != -1)
        return;
    /* the app is going away (the worker has been stopped) */
    if (con->L)
        lua_close(con->L);
    con->L = NULL;
    for (int i = 0; i < con->n_lines; i++)
        free(con->lines[i].s);
    free(con->lines);
    for (int i = 0; i < con->n_hist; i++)
        free(con->hist[i]);
    free(con->hist);
    free(con->pending);
    for (int i = 0; i < con->n_queue; i++)
        free(con->queue[i]);
    free(con->queue);
    pthread_mutex_destroy(&con->mu);
}

void ui_panel_console_init(ui_panel *p)
{
    console *con = calloc(1, sizeof *con);
    if (con)
        pthread_mutex_init(&con->mu, NULL);
    *p = (ui_panel){.name = "Lua", .ctx = CTX_CONSOLE, .draw = draw, .on_key = on_key, .on_focus = on_focus,
                    .editing = editing, .state = con};
}
