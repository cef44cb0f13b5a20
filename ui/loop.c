/* loupe UI — the event loop and the worker thread.
 *
 * One loop: draw, then wait for a key with a timeout; on a timeout (ERR) poll the worker,
 * on KEY_RESIZE relayout. Plugin calls run on one worker pthread with lp_call's progress
 * callback, which reports progress and returns the cancel flag (Esc); Lua console commands
 * run there too as function jobs, stopped by their cancel function. The model is not
 * thread-safe, so while a job runs the UI does not touch the model: a changed prompt
 * stays "dirty" and is analysed as soon as the job is delivered. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curses.h>

#include "ui.h"

double ui_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- worker */

static int progress_cb(void *user, double done, double total, const char *what)
{
    ui_worker *w = user;
    pthread_mutex_lock(&w->mu);
    w->done = done;
    w->total = total;
    snprintf(w->what, sizeof w->what, "%s", what ? what : "");
    int cancel = w->cancel;
    pthread_mutex_unlock(&w->mu);
    return cancel;
}

static void *worker_main(void *arg)
{
    ui_worker *w = arg;
    lp_error_clear(&w->err);
    int rc = w->fn ? w->fn(w->user, &w->err) : lp_call_run(w->call, &w->err);
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->finished = 1;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int ui_worker_start(ui_app *app, lp_call *call, const char *label, ui_job_done_fn done, void *user)
{
    ui_worker *w = &app->worker;
    if (w->running) {
        ui_set_msg(app, 1, "busy: %s is still running (Esc cancels it)", w->label);
        return -1;
    }
    w->call = call;
    w->fn = NULL;
    w->cancel_fn = NULL;
    w->quiet = 0;
    w->on_done = done;
    w->user = user;
    w->cancel = 0;
    w->finished = 0;
    w->done = 0;
    w->total = 0;
    w->what[0] = 0;
    w->started = ui_now_ms();
    snprintf(w->label, sizeof w->label, "%s", label);
    lp_call_set_progress(call, progress_cb, w);
    if (pthread_create(&w->thread, NULL, worker_main, w)) {
        ui_set_msg(app, 1, "cannot start a worker thread");
        return -1;
    }
    w->running = 1;
    return 0;
}

static ui_worker *sigint_worker; /* the app whose function job Ctrl-C interrupts */

int ui_worker_start_fn(ui_app *app, ui_job_fn fn, ui_job_cancel_fn cancel, const char *label, int quiet,
                       ui_job_done_fn done, void *user)
{
    ui_worker *w = &app->worker;
    if (w->running) {
        ui_set_msg(app, 1, "busy: %s is still running (Esc cancels it)", w->label);
        return -1;
    }
    w->call = NULL;
    w->fn = fn;
    w->cancel_fn = cancel;
    w->quiet = quiet;
    w->on_done = done;
    w->user = user;
    w->cancel = 0;
    w->finished = 0;
    w->done = 0;
    w->total = 0;
    w->what[0] = 0;
    w->started = ui_now_ms();
    snprintf(w->label, sizeof w->label, "%s", label);
    sigint_worker = w;
    if (pthread_create(&w->thread, NULL, worker_main, w)) {
        ui_set_msg(app, 1, "cannot start a worker thread");
        return -1;
    }
    w->running = 1;
    return 0;
}

void ui_worker_poll(ui_app *app)
{
    ui_worker *w = &app->worker;
    if (!w->running)
        return;
    pthread_mutex_lock(&w->mu);
    int fin = w->finished;
    pthread_mutex_unlock(&w->mu);
    if (!fin)
        return;
    pthread_join(w->thread, NULL);
    w->running = 0;
    double ms = ui_now_ms() - w->started;
    if (w->quiet)
        ;
    else if (w->rc == LP_ECANCELLED)
        ui_set_msg(app, 0, "%s cancelled", w->label);
    else if (w->rc)
        ui_set_msg(app, 1, "%s: %s", w->label, w->err.msg[0] ? w->err.msg : lp_strerror(w->rc));
    else
        ui_set_msg(app, 0, "%s done in %.0f ms", w->label, ms);
    if (w->on_done)
        w->on_done(app, w->call, w->rc, w->err.msg, w->user);
}

void ui_worker_cancel(ui_app *app)
{
    ui_worker *w = &app->worker;
    pthread_mutex_lock(&w->mu);
    w->cancel = 1;
    pthread_mutex_unlock(&w->mu);
    if (w->fn && w->cancel_fn)
        w->cancel_fn(w->user);
}

void ui_worker_wait(ui_app *app)
{
    while (app->worker.running) {
        pthread_mutex_lock(&app->worker.mu);
        int fin = app->worker.finished;
        pthread_mutex_unlock(&app->worker.mu);
        if (fin) {
            ui_worker_poll(app);
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---------------------------------------------------------------- keys */

static void set_view(ui_app *app, int v)
{
    v = (v + VIEW_COUNT) % VIEW_COUNT;
    if (v == app->view)
        return;
    ui_panel *old = &app->panels[app->view];
    if (old->on_focus)
        old->on_focus(app, old, 0);
    app->view = v;
    ui_panel *p = &app->panels[v];
    if (p->on_focus)
        p->on_focus(app, p, 1);
}

int ui_handle_key(ui_app *app, int key, const wchar_t *wch)
{
    ui_panel *p = &app->panels[app->view];
    int editing = p->editing && p->editing(app, p);
    app->msg[0] = 0;
    if (app->help) {
        if (key == '?' || key == 27 || key == KEY_F(1) || key == 'q' || key == '\r' || key == '\n')
            app->help = 0;
        return UI_REDRAW;
    }
    int action = ACT_NONE;
    if (editing) {
        /* function keys and Tab stay global; everything else goes to the text field */
        if (key == KEY_F(1) || key == KEY_F(10) || (key >= KEY_F(2) && key <= KEY_F(8)) || key == '\t' ||
            key == KEY_BTAB)
            action = ui_key_action(key, CTX_GLOBAL);
        else if (key == 27 && app->worker.running)
            action = ACT_CANCEL;
    } else {
        action = ui_key_action(key, p->ctx);
    }
    switch (action) {
    case ACT_QUIT: app->quit = 1; return UI_QUIT;
    case ACT_HELP: app->help = 1; return UI_REDRAW;
    case ACT_NEXT_VIEW: set_view(app, app->view + 1); return UI_REDRAW;
    case ACT_PREV_VIEW: set_view(app, app->view - 1); return UI_REDRAW;
    case ACT_VIEW1: case ACT_VIEW2: case ACT_VIEW3: case ACT_VIEW4: case ACT_VIEW5: case ACT_VIEW6: case ACT_VIEW7:
        set_view(app, action - ACT_VIEW1);
        return UI_REDRAW;
    case ACT_CANCEL:
        if (app->worker.running) {
            ui_worker_cancel(app);
            ui_set_msg(app, 0, "cancelling %s…", app->worker.label);
            return UI_REDRAW;
        }
        break; /* the panel may use Esc (stop editing) */
    default: break;
    }
    int r = p->on_key ? p->on_key(app, p, key, editing ? ACT_NONE : ui_key_action(key, p->ctx), wch) : 0;
    if (r & UI_REANALYSE)
        app->dirty = 1;
    return r;
}

/* ---------------------------------------------------------------- terminal restore */

static void restore_atexit(void)
{
    ui_screen_end();
}

/* Ctrl-C while a function job (a Lua command) runs interrupts the job, as in lua.c;
 * otherwise it ends the UI like the other signals. */
static void on_sigint(int sig)
{
    ui_worker *w = sigint_worker;
    if (w && w->running && !w->finished && w->fn && w->cancel_fn) {
        w->cancel = 1;
        w->cancel_fn(w->user); /* async-signal-safe: sets flags only */
        return;
    }
    ui_screen_end();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_signal(int sig)
{
    ui_screen_end();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_handlers(void)
{
    atexit(restore_atexit);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sigs[i] == SIGINT ? on_sigint : on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = sigs[i] == SIGINT ? SA_RESTART : SA_RESETHAND;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---------------------------------------------------------------- the loop */

int ui_run_loop(ui_app *app)
{
    int mono = 0;
    if (ui_screen_init(&mono)) {
        fprintf(stderr, "loupe: error: cannot initialise the terminal (TERM=%s)\n",
                getenv("TERM") ? getenv("TERM") : "");
        return 1;
    }
    install_handlers();
    app->mono = mono;
    ui_canvas cv = {0};
    ui_canvas_resize(&cv, COLS, LINES);
    const char *crash = getenv("LOUPE_UI_TEST_CRASH"); /* tests: the terminal survives a crash */
    while (!app->quit) {
        if (app->dirty && !ui_model_busy(app))
            ui_analyse(app);
        if (cv.w != COLS || cv.h != LINES)
            ui_canvas_resize(&cv, COLS, LINES);
        app->an.lens_more = 0;
        ui_render(app, &cv);
        erase();
        ui_screen_blit(&cv);
        wnoutrefresh(stdscr);
        doupdate();
        timeout(app->worker.running ? 50 : app->an.lens_more ? 0 : 1000); /* 0: more lens cells to draw */
        wint_t c;
        int r = get_wch(&c);
        if (r == ERR) {
            ui_worker_poll(app);
            continue;
        }
        /* take every key already typed before analysing again */
        for (;;) {
            if (r == KEY_CODE_YES) {
                if ((int)c == KEY_RESIZE)
                    ui_canvas_resize(&cv, COLS, LINES);
                else
                    ui_handle_key(app, (int)c, NULL);
            } else {
                wchar_t w = (wchar_t)c;
                if (crash && w == 0x1c) /* C-\ with LOUPE_UI_TEST_CRASH set: a deliberate crash */
                    raise(SIGSEGV);
                ui_handle_key(app, (int)c, &w);
            }
            if (app->quit)
                break;
            timeout(0);
            r = get_wch(&c);
            if (r == ERR)
                break;
        }
        /* a short job (most Lua console lines) is shown done on the next frame */
        for (int i = 0; i < 20 && app->worker.running; i++) {
            pthread_mutex_lock(&app->worker.mu);
            int fin = app->worker.finished;
            pthread_mutex_unlock(&app->worker.mu);
            if (fin)
                break;
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        ui_worker_poll(app);
    }
    if (app->worker.running) {
        ui_worker_cancel(app);
        ui_worker_wait(app);
    }
    ui_canvas_free(&cv);
    ui_screen_end();
    return 0;
}
