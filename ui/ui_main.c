/* loupe UI — `loupe ui [MODEL] [--model M] [--prompt TEXT] [--sae DIR] [--store DIR]`, also
 * what plain `loupe` runs.
 * `--dump COLSxROWS` renders one screen of `--view N` as text on stdout without a
 * terminal (used for the README captures and the tests). */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ui.h"

static const char help[] =
    "usage: loupe ui [MODEL] [--model MODEL] [--prompt TEXT] [--view N] [--dump COLSxROWS]\n"
    "                [--sae DIR] [--store DIR] [--feature N]\n"
    "\n"
    "The terminal workbench: prompt and tokens with next-token predictions, logit lens,\n"
    "attention patterns and head scores, attribution / patching, every plugin method, a\n"
    "Lua console bound to the model, and SAE features. Press ? inside for the keys of the current view\n"
    "(F1 in the console), q or F10 to quit.\n"
    "MODEL defaults to the bundled '" DEFAULT_MODEL "' model.\n"
    "\n"
    "  --prompt TEXT      start with this prompt\n"
    "  --view N           start in view N (1 prompt, 2 lens, 3 attention, 4 patching,\n"
    "                     5 plugins, 6 Lua, 7 features)\n"
    "  --sae DIR          the features view's sparse autoencoder (SAELens layout, through\n"
    "                     the sae plugin's sae.encode); starts in that view unless --view\n"
    "  --store DIR        an activation store (sae.harvest) for the dashboards' top contexts,\n"
    "                     density and quantile samples (without one: logit effects only)\n"
    "  --feature N        open feature N's dashboard (sae.dashboard) in the features view\n"
    "  --dump COLSxROWS   no terminal: print that view as text and exit (NO_COLOR style)\n";

int cmd_ui(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *view = NULL, *dump = NULL, *sae = NULL, *store = NULL,
               *feature = NULL;
    const cli_opt opts[] = {{"--model", 'm', 1, &model, NULL},
                            {"--prompt", 'p', 1, &prompt, NULL},
                            {"--view", 0, 1, &view, NULL},
                            {"--dump", 0, 1, &dump, NULL},
                            {"--sae", 0, 1, &sae, NULL},
                            {"--store", 0, 1, &store, NULL},
                            {"--feature", 0, 1, &feature, NULL},
                            {NULL, 0, 0, NULL, NULL}};
    const char *pos[1];
    int npos, want_help;
    int rc = cli_parse(argc, argv, opts, pos, 1, &npos, help, &want_help);
    if (rc || want_help)
        return rc;
    if (npos && model)
        return cli_error("ui: give the model once (MODEL or --model)");
    if (npos)
        model = pos[0];
    int w = 0, h = 0;
    if (dump && (sscanf(dump, "%dx%d", &w, &h) != 2 || w < 1 || h < 1 || w > 1000 || h > 1000))
        return cli_error("ui: --dump wants COLSxROWS, e.g. 80x24");
    int v = view ? atoi(view) : sae ? VIEW_FEATURES + 1 : 1;
    long fnum = -1;
    if (feature) {
        char *end;
        fnum = strtol(feature, &end, 10);
        if (!*feature || *end || fnum < 0 || fnum > 1 << 30)
            return cli_error("ui: --feature wants a feature number, e.g. 363");
        if (!sae)
            return cli_error("ui: --feature needs --sae DIR");
    }
    if (store && !sae)
        return cli_error("ui: --store needs --sae DIR");
    if (v < 1 || v > VIEW_COUNT)
        return cli_error("ui: --view wants 1 … %d", VIEW_COUNT);
    if (!dump && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
        return cli_error("ui: needs a terminal (or --dump COLSxROWS for a text capture)");
    setlocale(LC_ALL, "");
    lp_model *m = NULL;
    rc = cli_load_model(model ? model : DEFAULT_MODEL, &m);
    if (rc) {
        if (!model)
            fprintf(stderr, "loupe: the UI opens the bundled '" DEFAULT_MODEL "' model by default; "
                            "try 'loupe ui MODEL' (a folder or hub id)\n");
        return rc;
    }
    lp_registry *reg = lp_registry_new();
    if (reg)
        lp_registry_load_default(reg);
    ui_app *app = calloc(1, sizeof *app);
    if (!app || ui_app_init(app, m, reg, prompt)) {
        free(app);
        lp_registry_free(reg);
        lp_model_free(m);
        return cli_error("ui: out of memory");
    }
    app->view = v - 1;
    if (sae)
        ui_set_sae(app, sae, store);
    app->open_feature = (int)fnum;
    if (app->view != VIEW_PROMPT || prompt)
        app->prompt_editing = 0;
    if (dump) {
        app->mono = 1;
        ui_analyse(app);
        ui_canvas cv = {0};
        ui_canvas_resize(&cv, w, h);
        cv.mono = 1;
        ui_render_full(app, &cv);
        char *s = cv_dump(&cv);
        /* the status bar's live figures (time, memory) vary: captures are for reading */
        fputs(s ? s : "", stdout);
        free(s);
        ui_canvas_free(&cv);
        rc = EXIT_OK;
    } else {
        rc = ui_run_loop(app) ? EXIT_FAIL : EXIT_OK;
    }
    ui_app_free(app);
    free(app);
    lp_registry_free(reg);
    lp_model_free(m);
    return rc;
}
