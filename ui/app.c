/* loupe UI — the application state: the model, the plugins, the prompt and the panels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"

int ui_app_init(ui_app *app, lp_model *m, lp_registry *reg, const char *prompt)
{
    memset(app, 0, sizeof *app);
    app->model = m;
    app->cfg = lp_model_config(m);
    app->tok = lp_model_tokenizer(m);
    app->reg = reg;
    const char *name = lp_model_name(m), *slash = strrchr(name, '/');
    if (slash && slash[1])
        name = slash + 1;
    snprintf(app->model_label, sizeof app->model_label, "%s", name);
    ui_edit_set(&app->prompt, prompt ? prompt : "");
    app->prompt_editing = 1;
    app->sel_pos = -1;
    app->dirty = 1;
    app->an.target = -1;
    pthread_mutex_init(&app->worker.mu, NULL);
    ui_panel_prompt_init(&app->panels[VIEW_PROMPT]);
    ui_panel_lens_init(&app->panels[VIEW_LENS]);
    ui_panel_attention_init(&app->panels[VIEW_ATTN]);
    ui_panel_patching_init(&app->panels[VIEW_PATCH]);
    ui_panel_plugins_init(&app->panels[VIEW_PLUGINS]);
    ui_panel_console_init(&app->panels[VIEW_CONSOLE]);
    ui_panel_features_init(&app->panels[VIEW_FEATURES]);
    app->open_feature = -1;
    return 0;
}

void ui_set_sae(ui_app *app, const char *sae, const char *store)
{
    if (sae) {
        snprintf(app->sae_path, sizeof app->sae_path, "%s", sae);
        app->sae_gen++;
    }
    if (store) {
        snprintf(app->store_path, sizeof app->store_path, "%s", store);
        app->store_gen++;
    }
}

void ui_app_free(ui_app *app)
{
    if (app->worker.running) {
        ui_worker_cancel(app);
        ui_worker_wait(app);
    }
    for (int i = 0; i < VIEW_COUNT; i++) {
        ui_panel *p = &app->panels[i];
        if (p->on_focus)
            p->on_focus(app, p, -1); /* -1: the app is going away, free the state */
        free(p->state);
        p->state = NULL;
    }
    ui_analysis *an = &app->an;
    free(an->ids);
    free(an->lens);
    free(an->resid);
    free(an->pat);
    if (an->kv)
        lp_kv_free(an->kv);
    free(an->scratch_x);
    free(an->scratch_n);
    free(an->scratch_logits);
    lp_cache_free(an->cache);
    pthread_mutex_destroy(&app->worker.mu);
    memset(app, 0, sizeof *app);
}
