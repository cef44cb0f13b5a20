/* loupe UI — the Lua console. The Lua binding (lua/, `loupe run`) has not landed on main
 * yet; until it does this panel says so, and the REPL is built on it once it exists. */
#include "ui.h"

static void draw(ui_app *app, ui_panel *p, ui_canvas *cv, ui_rect r)
{
    (void)p;
    ui_rect in = cv_box(cv, r, "Lua console", 0);
    static const char *lines[] = {
        "Lua console arrives with the Lua binding.",
        "",
        "The binding (lua/, `loupe run SCRIPT`) is being written on another",
        "branch. When it lands, this view becomes a REPL bound to the current",
        "model: history, multi-line input, \"run script\" with its output here,",
        "and errors shown with their traceback while the UI stays up.",
    };
    for (int i = 0; i < (int)(sizeof lines / sizeof lines[0]) && i < in.h - 1; i++)
        cv_text(cv, in.x + 2, in.y + 1 + i, in.w - 4, lines[i], i == 0 ? C_TITLE : C_NORMAL, i == 0 ? A_BOLD_ : 0);
    (void)app;
}

void ui_panel_console_init(ui_panel *p)
{
    *p = (ui_panel){.name = "Lua", .ctx = CTX_CONSOLE, .draw = draw};
}
