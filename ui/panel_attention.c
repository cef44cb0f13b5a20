#include "ui.h"
static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r) { (void)app; (void)p; cv_box(cv, r, "attention", 0); }
void ui_panel_attention_init(ui_panel *p) { *p = (ui_panel){.name = "attention", .ctx = CTX_GLOBAL, .draw = draw}; }
