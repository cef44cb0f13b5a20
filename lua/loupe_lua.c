/* loupe Lua binding — luaopen_loupe (the module table) and helpers shared by the lua/ sources. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "l_loupe.h"

volatile int lt_interrupted;
int lt_no_tty;

int lt_stderr_tty(void)
{
    return !lt_no_tty && isatty(fileno(stderr));
}

void *lt_scratch(lua_State *L, size_t bytes)
{
    return lua_newuserdatauv(L, bytes ? bytes : 1, 0);
}

static int defer_gc(lua_State *L)
{
    lt_defer_run(lua_touserdata(L, 1));
    return 0;
}

lt_defer *lt_defer_push(lua_State *L, void (*fn)(void *), void *p)
{
    lt_defer *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->fn = fn;
    d->p = p;
    luaL_setmetatable(L, LT_DEFER);
    return d;
}

void lt_defer_run(lt_defer *d)
{
    if (d && d->fn && d->p) {
        void *p = d->p;
        d->p = NULL;
        d->fn(p);
    }
}

void lt_check_options(lua_State *L, int idx, const char *what, const char *const *allowed)
{
    if (lua_isnoneornil(L, idx))
        return;
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: options must be a table, got %s", what, luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (const char *const *a = allowed; *a && !ok; a++)
                ok = !strcmp(*a, k);
        }
        if (!ok) {
            luaL_Buffer b;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2);
            luaL_buffinit(L, &b);
            for (const char *const *a = allowed; *a; a++) {
                if (a != allowed)
                    luaL_addstring(&b, ", ");
                luaL_addstring(&b, *a);
            }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (valid: %s)", what, k, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
}

static int opt_field(lua_State *L, int idx, const char *key)
{
    if (idx == 0 || lua_isnoneornil(L, idx))
        return 0;
    if (lua_getfield(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

lua_Integer lt_opt_int(lua_State *L, int idx, const char *key, lua_Integer def)
{
    if (!opt_field(L, idx, key))
        return def;
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok)
        luaL_error(L, "option '%s' must be an integer, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

lua_Number lt_opt_num(lua_State *L, int idx, const char *key, lua_Number def)
{
    if (!opt_field(L, idx, key))
        return def;
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
    lua_Number v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

int lt_opt_bool(lua_State *L, int idx, const char *key, int def)
{
    if (!opt_field(L, idx, key))
        return def;
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "option '%s' must be a boolean, got %s", key, luaL_typename(L, -1));
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void lt_new_type(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, tname);
    luaL_setfuncs(L, meta, 0);
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "methods");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

static int l_version(lua_State *L)
{
    lua_pushstring(L, LOUPE_VERSION_STRING);
    return 1;
}

static int l_set_threads(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 1024, 1, "thread count must be in 1..1024");
    lp_set_threads((int)n);
    return 0;
}

/* loupe.clock() → seconds from a monotonic clock (for timing) */
static int l_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

static int l_interrupted(lua_State *L)
{
    lua_pushboolean(L, lt_interrupted);
    return 1;
}

int luaopen_loupe(lua_State *L)
{
    luaL_checkversion(L);
    static const luaL_Reg defer_meta[] = {{"__gc", defer_gc}, {NULL, NULL}};
    lt_new_type(L, LT_DEFER, defer_meta, NULL);
    static const luaL_Reg funcs[] = {
        {"version", l_version}, {"set_threads", l_set_threads}, {"interrupted", l_interrupted}, {"clock", l_clock}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    int mod = lua_gettop(L);
    lt_tensor_register(L, mod);
    lt_cache_register(L, mod);
    lt_model_register(L, mod);
    lt_plugins_register(L, mod);
    lt_util_register(L, mod);
    lua_settop(L, mod);
    return 1;
}
