/* The UI's features view rendered into memory, on the bundled toy model and its SAE
 * (plugins/sae/toy/resid2_topk24, whose latent 363 tracks the passage mood): for a happy
 * prompt the mood latent is among the last token's active features (and not for a sad
 * one); choosing it with ↑ ↓ and Enter shows its dashboard: logit effects that promote
 * happy verbs, then — with a small activation store harvested here from the held-out
 * mood set — density and top-activating contexts from happy passages; at 80x24 and
 * 200x60, in colour and without. Also: Esc cancels a dashboard, errors (a bad SAE path, an
 * SAE whose d_in does not fit, a folder that is not a store) leave one line in the status
 * bar, the help overlay, and the view without the sae plugin.
 * Usage: test_ui_features SRC_ROOT TMPDIR   (skips, 77, without models/toy or the SAE) */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curses.h>

#include "check.h"
#include "ui.h"

#define MOOD 363 /* plugins/sae/toy/README.md */
#define TXT(d) ((d) ? (d) : "")

static const char *happy_words[] = {"happily", "gladly", "eagerly", "warmly", "brightly", "cheerfully", "smiled",
                                    "laughed", "grinned", "sang", "danced", "beamed", "giggled", "cheered", "bright",
                                    "cheerful", "sunny", "warm", "lovely", "joyful", "glad", "merry", "golden",
                                    "radiant", "sweet", "pleasant", NULL};
static const char *sad_words[] = {"sadly", "slowly", "wearily", "quietly", "heavily", "bitterly", "sighed", "wept",
                                  "frowned", "sobbed", "moaned", "sulked", "groaned", "mourned", "gloomy", "dreary",
                                  "grey", "cold", "bleak", "dismal", "somber", "dull", "heavy", "lonely", "bitter",
                                  "hollow", NULL};

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static char *screen(ui_app *app, ui_canvas *cv)
{
    ui_render_full(app, cv);
    return cv_dump(cv);
}

static void key(ui_app *app, int k)
{
    wchar_t w = (wchar_t)k;
    ui_handle_key(app, k, k < 0x100 ? &w : NULL);
}

static void type(ui_app *app, const char *s)
{
    for (; *s; s++)
        key(app, (unsigned char)*s);
}

/* The line of the feature list showing feature f ("  363 " after the cursor column), or NULL. */
static const char *feature_row(const char *d, int f, int cursor)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\xe2\x94\x82%c%5d", cursor ? '>' : ' ', f);
    const char *p = strstr(d, pat);
    if (!p && !cursor) {
        snprintf(pat, sizeof pat, "\xe2\x94\x82>%5d", f);
        p = strstr(d, pat);
    }
    return p;
}

/* Row y of the canvas from column x on, as UTF-8 (malloc'd). */
static char *text_from(const ui_canvas *cv, int y, int x)
{
    char *r = malloc((size_t)cv->w * 4 + 1);
    size_t n = 0;
    for (int i = x; r && i < cv->w; i++) {
        uint32_t c = cv->cells[y * cv->w + i].ch;
        if (!c)
            continue;
        if (c < 0x80) r[n++] = (char)c;
        else if (c < 0x800) { r[n++] = (char)(0xc0 | (c >> 6)); r[n++] = (char)(0x80 | (c & 0x3f)); }
        else { r[n++] = (char)(0xe0 | (c >> 12)); r[n++] = (char)(0x80 | ((c >> 6) & 0x3f)); r[n++] = (char)(0x80 | (c & 0x3f)); }
    }
    if (r)
        r[n] = 0;
    return r;
}

/* Where a text starts on the canvas (its first occurrence); 0 when found. */
static int find_text(const ui_canvas *cv, const char *needle, int *fx, int *fy)
{
    for (int y = 0; y < cv->h; y++)
        for (int x = 0; x < cv->w; x++) {
            char *t = text_from(cv, y, x);
            int hit = t && !strncmp(t, needle, strlen(needle));
            free(t);
            if (hit) {
                *fx = x;
                *fy = y;
                return 0;
            }
        }
    return -1;
}

static int count_words(const char *r, const char **words)
{
    int n = 0;
    for (int k = 0; words[k]; k++) {
        char w[40];
        snprintf(w, sizeof w, "\xc2\xb7%s", words[k]);
        for (const char *q = strstr(r, w); q; q = strstr(q + 1, w)) {
            char c = q[strlen(w)];
            n += !(c >= 'a' && c <= 'z');
        }
    }
    return n;
}

/* The text rows under a heading of the dashboard (until the next heading or the box's end):
 * how many, how many name a happy word, and the happy and sad words in all. */
static void count_mood(const ui_canvas *cv, const char *heading, int *lines, int *happy_lines, int *happy, int *sad)
{
    *lines = *happy_lines = *happy = *sad = 0;
    int x, y;
    if (find_text(cv, heading, &x, &y))
        return;
    for (y++; y < cv->h; y++) {
        char *r = text_from(cv, y, x);
        if (!r || strstr(r, "Samples by activation") || !strncmp(r, "\xe2\x94\x80", 3)) {
            free(r);
            break;
        }
        if (strstr(r, "\xc2\xb7")) { /* a row of tokens (the shade rows under them have no '·') */
            int h = count_words(r, happy_words), sd = count_words(r, sad_words);
            (*lines)++;
            *happy_lines += h > 0;
            *happy += h;
            *sad += sd;
        }
        free(r);
    }
}

/* Happy verbs among the promoted tokens (the column under "promotes"). */
static int happy_promoted(const ui_canvas *cv)
{
    static const char *verbs[] = {"smiled", "laughed", "grinned", "sang", "danced", "beamed", "giggled", "cheered",
                                  NULL};
    int x, y, n = 0;
    if (find_text(cv, "promotes", &x, &y))
        return 0;
    for (int row = 1; row <= 10 && y + row < cv->h; row++) {
        char *r = text_from(cv, y + row, x);
        for (int k = 0; r && verbs[k]; k++) {
            char w[32];
            snprintf(w, sizeof w, "\xc2\xb7%s ", verbs[k]);
            n += !strncmp(r, w, strlen(w));
        }
        free(r);
    }
    return n;
}

static void status_line(const char *d, char *out, size_t cap)
{
    size_t n = strlen(d);
    while (n > 0 && d[n - 1] == '\n')
        n--;
    const char *s = d + n;
    while (s > d && s[-1] != '\n')
        s--;
    snprintf(out, cap, "%.*s", (int)(d + n - s), s);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "C.UTF-8");
    const char *src = argc > 1 ? argv[1] : ".";
    const char *tmp = argc > 2 ? argv[2] : "/tmp";
    char toy[4096], sae[4096], corpus[4096], store[4096], bad_sae[4096], not_store[4096];
    snprintf(toy, sizeof toy, "%s/models/toy", src);
    snprintf(sae, sizeof sae, "%s/plugins/sae/toy/resid2_topk24", src);
    snprintf(corpus, sizeof corpus, "%s/data/eval/mood.jsonl", toy);
    char cfg[4200], tmpl[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", toy);
    if (!exists(cfg)) {
        printf("SKIP: %s is absent\n", toy);
        return 77;
    }
    snprintf(cfg, sizeof cfg, "%s/cfg.json", sae);
    if (!exists(cfg) || !exists(corpus)) {
        printf("SKIP: no toy SAE (%s) or no %s\n", sae, corpus);
        return 77;
    }
    { /* the SAE belongs to one set of toy weights (as test_sae_toy.lua) */
        char want[80] = "", have[80] = "", cmd[4300];
        snprintf(cmd, sizeof cmd, "%s/model.sha256", sae);
        FILE *f = fopen(cmd, "r");
        if (f && !fgets(want, sizeof want, f))
            want[0] = 0;
        if (f)
            fclose(f);
        snprintf(cmd, sizeof cmd, "sha256sum '%s/model.safetensors' 2>/dev/null", toy);
        FILE *pp = popen(cmd, "r");
        if (pp && !fgets(have, sizeof have, pp))
            have[0] = 0;
        if (pp)
            pclose(pp);
        if (want[0] && have[0] && strncmp(want, have, 64)) {
            printf("SKIP: models/toy has changed since the SAE was trained (plugins/sae/toy/train_toy_sae.sh)\n");
            return 77;
        }
    }
    snprintf(tmpl, sizeof tmpl, "%s/ui-features-XXXXXX", tmp);
    if (!mkdtemp(tmpl)) {
        printf("FAIL: mkdtemp %s\n", tmpl);
        return 1;
    }
    snprintf(store, sizeof store, "%s/store", tmpl);
    snprintf(bad_sae, sizeof bad_sae, "%s/wide_sae", tmpl);
    snprintf(not_store, sizeof not_store, "%s/empty", tmpl);
    mkdir(not_store, 0755);

    lp_model *m = NULL;
    lp_error err = {0};
    if (lp_model_load(toy, &m, &err)) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    lp_registry *reg = lp_registry_new();
    lp_registry_load_default(reg);
    if (lp_registry_find_method(reg, "sae.harvest") < 0) {
        printf("FAIL: the sae plugin is not found\n");
        return 1;
    }
    /* a small activation store: 16,384 tokens of held-out mood passages */
    {
        lp_call *c = lp_call_new(reg, "sae.harvest", m, &err);
        const char *kv[][2] = {{"corpus", corpus}, {"hook", "blocks.2.hook_resid_pre"}, {"out", store},
                               {"context_size", "128"}, {"prepend_bos", "1"}, {"max_tokens", "16384"}};
        int rc = c ? 0 : -1;
        for (size_t i = 0; i < sizeof kv / sizeof kv[0] && !rc; i++)
            rc = lp_call_set_param(c, kv[i][0], kv[i][1], &err);
        if (!rc)
            rc = lp_call_run(c, &err);
        check(rc == 0, "harvest a store of 16384 tokens from %s: %s", corpus, rc ? err.msg : "ok");
        lp_call_free(c);
    }
    /* an SAE that does not fit: the toy SAE's weights with its hook moved to a 768-wide one */
    {
        char cmd[13000];
        snprintf(cmd, sizeof cmd,
                 "mkdir -p '%s' && sed 's/blocks.2.hook_resid_pre/blocks.0.mlp.hook_post/' '%s/cfg.json' > '%s/cfg.json' "
                 "&& cp '%s/sae_weights.safetensors' '%s/'",
                 bad_sae, sae, bad_sae, sae, bad_sae);
        check(system(cmd) == 0, "made %s", bad_sae);
    }

    ui_app *app = calloc(1, sizeof *app);
    ui_app_init(app, m, reg, "Mia happily smiled. She laughed. She");
    app->mono = 1;
    app->prompt_editing = 0;
    app->view = VIEW_FEATURES;
    check(ui_analyse(app) == 0 && app->an.n == 9, "9 tokens: %s", app->an.error);
    ui_canvas cv = {0};
    char *d;

    /* no SAE yet: the view explains itself */
    ui_canvas_resize(&cv, 80, 24);
    d = screen(app, &cv);
    check(strstr(d, "7 Features") && strstr(d, "no SAE: press s"), "80x24 without an SAE:\n%s", d);
    free(d);

    /* choose the SAE with s: the last token (" She" after two happy sentences) is encoded */
    key(app, 's');
    key(app, 'u' & 0x1f);
    type(app, sae);
    key(app, '\r');
    d = screen(app, &cv);
    check(strstr(d, "Features at 8 \xc2\xb7She") && strstr(d, "resid2_topk24 \xc2\xb7 L0 24"),
          "80x24: the last token's features with the SAE's L0:\n%s", d);
    check(feature_row(d, MOOD, 0) != NULL, "80x24: the mood latent %d is among the active features of a happy prompt",
          MOOD);
    check(feature_row(d, 98, 1) != NULL, "80x24: the cursor starts on the strongest feature (98)");
    free(d);

    /* ↓ to the mood latent, Enter: its dashboard, without a store the logit effects */
    int steps = 0;
    for (; steps < 64; steps++) {
        d = screen(app, &cv);
        int on = feature_row(d, MOOD, 1) != NULL;
        free(d);
        if (on)
            break;
        key(app, KEY_DOWN);
    }
    check(steps < 24, "the cursor reached feature %d after %d ↓", MOOD, steps);
    key(app, '\r');
    d = screen(app, &cv);
    int hp = happy_promoted(&cv);
    check(strstr(d, "Feature 363 \xc2\xb7 blocks.2.hook_resid_pre") && strstr(d, "No activation store") &&
              strstr(d, "promotes") && hp >= 3,
          "80x24: feature 363's dashboard without a store: %d happy verbs among the promoted tokens:\n%s", hp, TXT(d));
    check(strstr(d, "  363*") != NULL, "80x24: the open feature is marked in the list");
    free(d);

    /* the store (a): density and top-activating contexts from happy passages */
    key(app, 'a');
    type(app, store);
    key(app, '\r');
    d = screen(app, &cv);
    check(strstr(d, "density ") && strstr(d, "histogram 0 ") && strstr(d, "Top-activating contexts"),
          "80x24: with the store, density, histogram and the contexts' heading:\n%s", d);
    free(d);
    key(app, KEY_NPAGE);
    d = screen(app, &cv);
    check(strstr(d, "Top-activating contexts") == NULL && strstr(d, "\xc2\xb7He") && strstr(d, "more "),
          "80x24: PgDn scrolls the dashboard:\n%s", d);
    free(d);

    /* 200x60: the whole dashboard */
    key(app, KEY_PPAGE);
    key(app, KEY_PPAGE);
    ui_canvas_resize(&cv, 200, 60);
    d = screen(app, &cv);
    int lines, happy_lines, happy, sad;
    count_mood(&cv, "Top-activating contexts", &lines, &happy_lines, &happy, &sad);
    check(lines >= 8 && happy_lines >= lines - 1 && sad * 4 <= happy,
          "200x60: the top contexts come from happy passages (%d rows, %d with happy words; %d happy words, %d "
          "sad):\n%s",
          lines, happy_lines, happy, sad, d);
    check(strstr(d, "Samples by activation quartile") && strstr(d, "q1 ") && strstr(d, "q4 "),
          "200x60: quartile samples from q4 to q1");
    check(strstr(d, "@@@") != NULL, "200x60 without colour: per-token activations as shade characters");
    hp = happy_promoted(&cv);
    check(hp >= 3, "200x60: %d happy verbs among the promoted tokens", hp);
    check(feature_row(d, MOOD, 1) != NULL, "200x60: the selected feature is still %d", MOOD);
    free(d);
    /* colour: no shade rows, the activation is the token's background */
    app->mono = 0;
    d = screen(app, &cv);
    int heat = 0;
    for (int i = 0; i < cv.w * cv.h; i++)
        heat += cv.cells[i].color == C_HEAT0 + 9 && cv.cells[i].ch != ' ';
    check(strstr(d, "@@@") == NULL && heat >= 8, "200x60 in colour: %d cells at the top heat level, no shade rows",
          heat);
    free(d);
    app->mono = 1;

    /* a sad prompt: the mood latent is not active at its last token (the whole list fits at 200x60) */
    ui_edit_set(&app->prompt, "Mia sadly sighed. She wept. She");
    app->dirty = 1;
    ui_analyse(app);
    d = screen(app, &cv);
    check(strstr(d, "Features at 8 \xc2\xb7She") && feature_row(d, 98, 1) && !feature_row(d, MOOD, 0),
          "200x60: a sad prompt's last token does not activate the mood latent:\n%s", TXT(d));
    check(strstr(d, "Feature 363") != NULL, "the open dashboard stays when the prompt changes");
    free(d);

    /* the selected position is shared with the prompt view */
    key(app, KEY_HOME);
    d = screen(app, &cv);
    check(strstr(d, "Features at 0 <|endoftext|>") != NULL && ui_sel_pos(app) == 0, "Home selects position 0");
    free(d);
    app->view = VIEW_PROMPT;
    d = screen(app, &cv);
    check(strstr(d, "Next token after position 0") != NULL, "the prompt view shows the same position");
    free(d);
    app->view = VIEW_FEATURES;
    key(app, KEY_END);

    /* help overlay at both sizes */
    const int sizes[][2] = {{80, 24}, {200, 60}};
    for (int z = 0; z < 2; z++) {
        ui_canvas_resize(&cv, sizes[z][0], sizes[z][1]);
        key(app, '?');
        d = screen(app, &cv);
        check(strstr(d, "Keys: Features view") && strstr(d, "choose the SAE folder / the activation store") &&
                  strstr(d, "the selected feature's dashboard") && strstr(d, "F2 \xe2\x80\xa6 F8") &&
                  strstr(d, "cancel the running job"),
              "help overlay at %dx%d:\n%s", cv.w, cv.h, d);
        free(d);
        key(app, '?');
    }

    /* Esc cancels a dashboard (the cancel may lose the race against a fast one: retry) */
    int cancelled = 0;
    for (int t = 0; t < 5 && !cancelled; t++) {
        key(app, 'g');
        type(app, "916");
        key(app, '\r');
        ui_render(app, &cv); /* starts the job on the worker */
        int running = app->worker.running;
        key(app, 27);
        ui_worker_wait(app);
        d = screen(app, &cv);
        cancelled = running && strstr(d, "cancelled (Enter computes it again)") != NULL;
        free(d);
    }
    check(cancelled, "Esc cancels a running dashboard");

    /* errors: one line in the status bar, the UI stays up */
    char st[1024];
    ui_canvas_resize(&cv, 200, 60); /* the whole status line */
    key(app, 's');
    key(app, 'u' & 0x1f);
    type(app, "/nonexistent/sae");
    key(app, '\r');
    d = screen(app, &cv);
    status_line(d, st, sizeof st);
    check(strstr(st, "sae.encode: /nonexistent/sae: no such SAE") != NULL, "a bad SAE path in the status bar: '%s'",
          st);
    free(d);
    key(app, 's');
    key(app, 'u' & 0x1f);
    type(app, bad_sae);
    key(app, '\r');
    d = screen(app, &cv);
    status_line(d, st, sizeof st);
    check(strstr(st, "d_in is 192") && strstr(st, "768 wide"), "an SAE that does not fit the hook: '%s'", st);
    free(d);
    key(app, 's');
    key(app, 'u' & 0x1f);
    type(app, sae);
    key(app, '\r');
    key(app, 'a');
    key(app, 'u' & 0x1f);
    type(app, "/nonexistent/store");
    key(app, '\r');
    d = screen(app, &cv);
    status_line(d, st, sizeof st);
    check(strstr(st, "/nonexistent/store: no such folder") != NULL, "a missing store: '%s'", st);
    free(d);
    key(app, 'a');
    key(app, 'u' & 0x1f);
    type(app, not_store);
    key(app, '\r');
    key(app, 'g');
    type(app, "363");
    key(app, '\r');
    d = screen(app, &cv);
    status_line(d, st, sizeof st);
    check(strstr(st, "sae.dashboard: ") && strstr(st, "manifest"), "a folder that is not a store: '%s'", st);
    check(strstr(d, "Features at 8") && feature_row(d, 98, 0), "the features still work after the errors");
    free(d);

    /* :sae / :store from the Lua console */
    setenv("XDG_STATE_HOME", "/nonexistent/loupe-test", 1);
    app->view = VIEW_CONSOLE;
    type(app, ":store -");
    key(app, '\r');
    type(app, ":sae");
    key(app, '\r');
    d = screen(app, &cv);
    check(strstr(d, "activation store: (none) (the features view") && strstr(d, "SAE: ") && !app->store_path[0],
          "console :store - and :sae:\n%s", d);
    free(d);

    ui_canvas_free(&cv);
    ui_app_free(app);
    free(app);

    /* without the sae plugin: one line, the rest of the UI as usual */
    app = calloc(1, sizeof *app);
    ui_app_init(app, m, NULL, "Mia happily smiled.");
    ui_set_sae(app, sae, NULL);
    app->mono = 1;
    app->view = VIEW_FEATURES;
    ui_analyse(app);
    ui_canvas_resize(&cv, 80, 24);
    d = screen(app, &cv);
    check(strstr(d, "the sae plugin is not loaded") && strstr(d, "Tokens (") && strstr(d, "\xc2\xb7happily"),
          "without the plugin:\n%s", d);
    free(d);
    key(app, '\r');
    ui_canvas_free(&cv);
    ui_app_free(app);
    free(app);

    lp_registry_free(reg);
    lp_model_free(m);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpl);
    return check_done();
}
