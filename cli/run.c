/* loupe run: run a Lua 5.4 script (or -e code) with the loupe module loaded.
 *
 * Like lua.c: the script's arguments are in the global `arg` (arg[0] is the script) and
 * in `...`; errors go through a traceback handler; Ctrl-C sets a hook that raises
 * "interrupted!" at the next Lua instruction instead of touching the state from the signal
 * handler (long C operations poll the same flag and stop). Exit status: 0 success, 1 a
 * runtime error (traceback on stderr), 2 bad usage or a script that cannot be read or
 * compiled, 130 interrupted. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cli.h"

extern volatile int lt_interrupted; /* lua/loupe_lua.c */
int luaopen_loupe(lua_State *L);

static const char run_help[] =
    "usage: loupe run SCRIPT.lua [ARGS...]\n"
    "       loupe run -e 'CODE' [ARGS...]\n"
    "       loupe run - [ARGS...]            (script from standard input)\n"
    "Run a Lua 5.4 script with the 'loupe' module loaded (also as the global 'loupe').\n"
    "Arguments are in 'arg' (arg[0] is the script) and in '...'. See docs/lua-api.md.\n"
    "Exit status: 0 success, 1 a Lua error (traceback on stderr), 2 a script that cannot\n"
    "be read or compiled, 130 interrupted (Ctrl-C).\n";

static lua_State *global_L;

static void lstop(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint(int sig)
{
    int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
    lt_interrupted = 1;
    lua_sethook(global_L, lstop, flag, 1);
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

static void report(const char *msg)
{
    int col = cli_color(stderr);
    fprintf(stderr, "%sloupe: error:%s %s\n", col ? "\033[1;31m" : "", col ? "\033[0m" : "", msg ? msg : "(no message)");
    fflush(stderr);
}

/* The protected main: loads libraries and the chunk, then runs it. */
typedef struct run_ctx {
    const char *script; /* path, "-" or NULL with code */
    const char *code;
    int argc;           /* script arguments */
    char **argv;
    int load_failed;
} run_ctx;

static int pmain(lua_State *L)
{
    run_ctx *rc = lua_touserdata(L, 1);
    luaL_openlibs(L);
    luaL_requiref(L, "loupe", luaopen_loupe, 1); /* package.loaded.loupe and the global */
    lua_pop(L, 1);
    /* arg table */
    lua_createtable(L, rc->argc, 1);
    lua_pushstring(L, rc->script ? rc->script : "-e");
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < rc->argc; i++) {
        lua_pushstring(L, rc->argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    int st;
    if (rc->code)
        st = luaL_loadbuffer(L, rc->code, strlen(rc->code), "=(command line)");
    else
        st = luaL_loadfile(L, strcmp(rc->script, "-") ? rc->script : NULL);
    if (st != LUA_OK) {
        rc->load_failed = 1;
        return lua_error(L);
    }
    lua_pushcfunction(L, msghandler);
    lua_insert(L, -2);
    int base = lua_gettop(L) - 1;
    luaL_checkstack(L, rc->argc + 2, "too many arguments");
    for (int i = 0; i < rc->argc; i++)
        lua_pushstring(L, rc->argv[i]);
    global_L = L;
    signal(SIGINT, on_sigint);
    st = lua_pcall(L, rc->argc, 0, base);
    signal(SIGINT, SIG_DFL);
    if (st != LUA_OK)
        return lua_error(L); /* the message already carries the traceback */
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_ctx rc = {0};
    int i = 1;
    if (argc < 2)
        return cli_error("run: missing SCRIPT.lua or -e CODE (see loupe run --help)");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(run_help, stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "-e")) {
        if (argc < 3)
            return cli_error("run: -e needs a chunk of Lua code");
        rc.code = argv[2];
        i = 3;
    } else {
        rc.script = argv[1];
        i = 2;
        if (strcmp(rc.script, "-")) {
            FILE *f = fopen(rc.script, "r");
            if (!f)
                return cli_error("run: cannot read script '%s': %s", rc.script, strerror(errno));
            fclose(f);
        }
    }
    rc.argc = argc - i;
    rc.argv = argv + i;
    const char *t = getenv("LOUPE_THREADS");
    if (t && atoi(t) > 0)
        lp_set_threads(atoi(t));
    lua_State *L = luaL_newstate();
    if (!L) {
        report("cannot create a Lua state: out of memory");
        return EXIT_FAIL;
    }
    global_L = L;
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &rc);
    int st = lua_pcall(L, 1, 0, 0);
    int code = EXIT_OK;
    if (st != LUA_OK) {
        report(lua_tostring(L, -1));
        code = rc.load_failed ? EXIT_USAGE : lt_interrupted ? EXIT_CANCEL : EXIT_FAIL;
    }
    lua_close(L);
    return code;
}
