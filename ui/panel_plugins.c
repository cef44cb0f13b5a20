#include "ui.h"
static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r) { (void)app; (void)p; cv_box(cv, r, "plugins", 0); }
void ui_panel_plugins_init(ui_panel *p) { *p = (ui_panel){.name = "plugins", .ctx = CTX_GLOBAL, .draw = draw}; }
