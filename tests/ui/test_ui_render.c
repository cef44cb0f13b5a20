/* The UI without a terminal: token escaping, the canvas, the key table, the line editor,
 * and (with ../shared/models/stories260K) a full render of each view into memory. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curses.h>

#include "ui.h"

static int fails, passes;
#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (c) passes++;                                                                           \
        else { fails++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); puts(""); } \
    } while (0)

static void esc(const char *in, int len, const char *want)
{
    char out[128];
    ui_escape_token(in, len, out, sizeof out);
    CHECK(!strcmp(out, want), "escape: got '%s' want '%s'", out, want);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "C.UTF-8");
    esc(" the", 4, "\xc2\xb7the");
    esc("  x", 3, "\xc2\xb7\xc2\xb7x");
    esc("a\nb", 3, "a\\nb");
    esc("\t", 1, "\\t");
    esc("\x01", 1, "\\x01");
    esc("\xff\xfe", 2, "\\xff\\xfe");
    esc("\xe2\x82", 2, "\\xe2\\x82");          /* truncated UTF-8 */
    esc("caf\xc3\xa9", 5, "caf\xc3\xa9");       /* valid UTF-8 kept */

    ui_canvas cv = {0};
    ui_canvas_resize(&cv, 20, 3);
    int w = cv_text(&cv, 0, 0, 20, "a\xe4\xb8\xad" "b\x01", 0, 0); /* wide char, control */
    char *row = cv_row_text(&cv, 0);
    CHECK(w == 8 && !strcmp(row, "a\xe4\xb8\xad" "b\\x01"), "canvas: w=%d row='%s'", w, row);
    free(row);
    cv_text(&cv, 0, 1, 3, "abcdef", 0, 0);
    row = cv_row_text(&cv, 1);
    CHECK(!strcmp(row, "abc"), "clip: '%s'", row);
    free(row);
    cv.mono = 1;
    cv_heat(&cv, 0, 2, 4, 0.95, "x", 0);
    row = cv_row_text(&cv, 2);
    CHECK(!strcmp(row, "@x"), "mono heat: '%s'", row);
    free(row);
    ui_canvas_free(&cv);

    CHECK(ui_key_action('q', CTX_LENS) == ACT_QUIT, "q quits");
    CHECK(ui_key_action('t', CTX_LENS) == ACT_TARGET, "t in lens");
    CHECK(ui_key_action(']', CTX_ATTN) == ACT_LAYER_NEXT, "] in attention");
    CHECK(ui_key_action(KEY_F(10), CTX_PLUGINS) == ACT_QUIT, "F10 quits");

    ui_edit e;
    ui_edit_set(&e, "ab");
    wchar_t c = L'\x00e9';
    ui_edit_key(&e, 0, &c);
    CHECK(!strcmp(e.buf, "ab\xc3\xa9"), "edit insert: '%s'", e.buf);
    ui_edit_key(&e, KEY_BACKSPACE, NULL);
    CHECK(!strcmp(e.buf, "ab") && e.cur == 2, "edit backspace: '%s'", e.buf);

    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K", argc > 1 ? argv[1] : "../shared");
    lp_model *m = NULL;
    lp_error err = {0};
    if (lp_model_load(path, &m, &err)) {
        printf("SKIP model part: %s\n", err.msg);
    } else {
        ui_app *app = calloc(1, sizeof *app);
        ui_app_init(app, m, NULL, "Once upon a");
        app->mono = 1;
        CHECK(ui_analyse(app) == 0, "analyse: %s", app->an.error);
        ui_canvas s = {0};
        const int sizes[][2] = {{80, 24}, {200, 60}, {60, 16}};
        for (int z = 0; z < 3; z++) {
            ui_canvas_resize(&s, sizes[z][0], sizes[z][1]);
            for (int v = 0; v < VIEW_COUNT; v++) {
                app->view = v;
                ui_render_full(app, &s);
                char *d = cv_dump(&s);
                if (v == VIEW_PROMPT)
                    CHECK(strstr(d, " 1 \xc2\xb7time") != NULL, "prompt view top-1 at %dx%d:\n%s", s.w, s.h, d);
                if (v == VIEW_ATTN) /* the patterns, kept only for this view: analysed again */
                    CHECK(strstr(d, "<s>     @") != NULL && app->an.with_patterns, "attention at %dx%d:\n%s", s.w, s.h, d);
                if (v == VIEW_LENS)
                    CHECK(strstr(d, "\xc2\xb7time") != NULL, "lens at %dx%d:\n%s", s.w, s.h, d);
                CHECK(strstr(d, "stories260K") != NULL, "status bar at %dx%d view %d", s.w, s.h, v);
                free(d);
            }
        }
        /* the help overlay and a typed key re-analyse */
        app->view = VIEW_PROMPT;
        app->prompt_editing = 1;
        ui_edit_set(&app->prompt, "Once upon a tim");
        wchar_t ch = L'e';
        ui_handle_key(app, 'e', &ch);
        CHECK(app->dirty && !strcmp(app->prompt.buf, "Once upon a time"), "typing marks dirty");
        ui_analyse(app);
        CHECK(app->an.n == 5, "5 tokens, got %d", app->an.n);
        app->help = 1;
        ui_render(app, &s);
        char *d = cv_dump(&s);
        CHECK(strstr(d, "Keys: Prompt view") != NULL, "help overlay:\n%s", d);
        free(d);
        app->help = 0;

        /* the Lua console: lines typed as keys, run on the worker, output in the pane */
        setenv("XDG_STATE_HOME", "/nonexistent/loupe-test", 1); /* history: failures ignored */
        app->view = VIEW_CONSOLE;
        ui_canvas_resize(&s, 80, 50);
        ui_render(app, &s);
        d = cv_dump(&s);
        CHECK(strstr(d, "m = stories260K (5 layers") != NULL, "console greeting:\n%s", d);
        free(d);
        const char *lines[] = {"print(1+1)", "m.cfg.n_layers * 100", "error('boom')", "print('still ' .. 'here')",
                               "for i = 1, 2 do", "print('i=' .. i)", "end", "x = m:run('Once upon')",
                               "print(x:size(2), x:size(3))", "m:close()"};
        for (size_t l = 0; l < sizeof lines / sizeof lines[0]; l++) {
            for (const char *c = lines[l]; *c; c++) {
                wchar_t wc = (wchar_t)*c;
                ui_handle_key(app, *c, &wc);
            }
            wchar_t cr = L'\r';
            ui_handle_key(app, '\r', &cr);
            ui_worker_wait(app);
        }
        ui_render(app, &s);
        d = cv_dump(&s);
        CHECK(strstr(d, "\n\xe2\x94\x82" "2 ") != NULL, "console print(1+1):\n%s", d);
        CHECK(strstr(d, "\xe2\x94\x82" "500 ") != NULL, "console expression:\n%s", d);
        CHECK(strstr(d, "stdin:1: boom") && strstr(d, "stack traceback:"), "console error:\n%s", d);
        CHECK(strstr(d, "still here") != NULL, "console after an error:\n%s", d);
        CHECK(strstr(d, ">> print('i=' .. i)") && strstr(d, "i=1") && strstr(d, "i=2"), "console multi-line:\n%s", d);
        CHECK(strstr(d, "3       512") != NULL, "console m:run on the UI's model:\n%s", d);
        CHECK(strstr(d, "belongs to the UI") != NULL, "console m:close refused:\n%s", d);
        CHECK(app->dirty, "a console command marks the analysis dirty");
        CHECK(ui_analyse(app) == 0, "the UI's model still works after Lua used it: %s", app->an.error);
        free(d);
        ui_canvas_free(&s);
        ui_app_free(app);
        free(app);
        lp_model_free(m);
    }
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
