/* loupe Lua binding — the Cache userdata ("loupe.Cache"): activations stored by
 * m:run_with_cache. cache["blocks.0.hook_resid_pre"] is a Tensor view into the cache's
 * memory that keeps the cache alive; closing the cache (c:close(), or a `<close>`
 * variable going out of scope) frees it at once and makes every view raise. */
#include <string.h>

#include "l_loupe.h"

static const char dead_msg[] = "the cache this tensor belongs to was closed";

lt_cache *lt_cache_push(lua_State *L, lp_cache *c)
{
    lt_cache *lc = lua_newuserdatauv(L, sizeof *lc, 0);
    lc->c = NULL;
    lc->alive = 0;
    luaL_setmetatable(L, LT_CACHE);
    lc->c = c;
    lc->alive = 1;
    return lc;
}

static lt_cache *check_open(lua_State *L, int idx)
{
    lt_cache *lc = luaL_checkudata(L, idx, LT_CACHE);
    if (!lc->c)
        luaL_argerror(L, idx, "cache is closed");
    return lc;
}

static void push_entry(lua_State *L, lt_cache *lc, int i)
{
    lp_tensor t = lp_cache_entry(lc->c, i);
    lt_tensor_push_view(L, &t, 1, &lc->alive, dead_msg);
}

static int l_cache_index(lua_State *L)
{
    luaL_checkudata(L, 1, LT_CACHE);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    lt_cache *lc = check_open(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int i = lp_cache_find(lc->c, name);
    if (i < 0)
        return luaL_error(L, "the cache has no '%s' (it holds %d entries; see cache:keys(), or cache:get(name) "
                             "which returns nil)", name, lp_cache_count(lc->c));
    push_entry(L, lc, i);
    return 1;
}

static int l_cache_get(lua_State *L)
{
    lt_cache *lc = check_open(L, 1);
    int i = lp_cache_find(lc->c, luaL_checkstring(L, 2));
    if (i < 0) {
        lua_pushnil(L);
        return 1;
    }
    push_entry(L, lc, i);
    return 1;
}

static int l_cache_keys(lua_State *L)
{
    lt_cache *lc = check_open(L, 1);
    int n = lp_cache_count(lc->c);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, lp_cache_name(lc->c, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_cache_len(lua_State *L)
{
    lt_cache *lc = check_open(L, 1);
    lua_pushinteger(L, lp_cache_count(lc->c));
    return 1;
}

static int l_cache_bytes(lua_State *L)
{
    lt_cache *lc = check_open(L, 1);
    lua_pushinteger(L, (lua_Integer)lp_cache_bytes_used(lc->c));
    return 1;
}

static int pairs_next(lua_State *L)
{
    lt_cache *lc = check_open(L, 1);
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(1));
    if (i >= lp_cache_count(lc->c))
        return 0;
    lua_pushinteger(L, i + 1);
    lua_replace(L, lua_upvalueindex(1));
    lua_pushstring(L, lp_cache_name(lc->c, (int)i));
    push_entry(L, lc, (int)i);
    return 2;
}

/* for name, t in pairs(cache) do … end, in forward order */
static int l_cache_pairs(lua_State *L)
{
    check_open(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, pairs_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int l_cache_close(lua_State *L)
{
    lt_cache *lc = luaL_checkudata(L, 1, LT_CACHE);
    if (lc->c) {
        lp_cache_free(lc->c);
        lc->c = NULL;
    }
    lc->alive = 0;
    return 0;
}

static int l_cache_tostring(lua_State *L)
{
    lt_cache *lc = luaL_checkudata(L, 1, LT_CACHE);
    if (!lc->c)
        lua_pushliteral(L, "Cache(closed)");
    else
        lua_pushfstring(L, "Cache(%d entries, %f MB)", lp_cache_count(lc->c), lp_cache_bytes_used(lc->c) / 1e6);
    return 1;
}

void lt_cache_register(lua_State *L, int module_idx)
{
    static const luaL_Reg methods[] = {{"get", l_cache_get},   {"keys", l_cache_keys},   {"bytes", l_cache_bytes},
                                       {"close", l_cache_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", l_cache_close},       {"__close", l_cache_close}, {"__len", l_cache_len},
                                    {"__pairs", l_cache_pairs},    {"__tostring", l_cache_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, LT_CACHE);
    int mt = lua_gettop(L);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, mt, "methods");
    lua_pushcclosure(L, l_cache_index, 1);
    lua_setfield(L, mt, "__index");
    lua_settop(L, module_idx);
}
