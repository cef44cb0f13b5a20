/* loupe Lua binding — method plugins: loupe.call, loupe.methods and the lazily populated
 * loupe.plugins table (loupe.plugins.logit_lens.run(m, {...})).
 *
 * The registry is loaded from the default search path on first use and lives as long as
 * the Lua state. Parameters are checked against the method's declared list before
 * anything runs; results become a Lua table {name = number | string | Tensor | rows},
 * where rows is an array of tables keyed by column name with rows.columns giving the
 * column order. Nothing in a plugin calls back into Lua, so no Lua error can cross a
 * plugin's frames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l_loupe.h"

typedef struct lt_registry {
    lp_registry *r;
    int borrowed; /* owned by the embedding program (lt_plugins_use_registry) */
} lt_registry;

static int registry_gc(lua_State *L)
{
    lt_registry *lr = luaL_checkudata(L, 1, LT_REGISTRY);
    if (lr->r && !lr->borrowed) {
        lp_registry_free(lr->r);
        lr->r = NULL;
    }
    return 0;
}

static lp_registry *get_registry(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, LT_REGISTRY ".instance") == LUA_TUSERDATA) {
        lt_registry *lr = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return lr->r;
    }
    lua_pop(L, 1);
    lt_registry *lr = lua_newuserdatauv(L, sizeof *lr, 0);
    lr->r = NULL;
    lr->borrowed = 0;
    luaL_setmetatable(L, LT_REGISTRY);
    lr->r = lp_registry_new();
    if (!lr->r)
        luaL_error(L, "out of memory");
    lp_registry_load_default(lr->r);
    for (int i = 0; i < lp_registry_n_diagnostics(lr->r); i++)
        fprintf(stderr, "loupe: warning: %s\n", lp_registry_diagnostic(lr->r, i));
    lua_setfield(L, LUA_REGISTRYINDEX, LT_REGISTRY ".instance");
    return lr->r;
}

void lt_plugins_use_registry(lua_State *L, lp_registry *r)
{
    lt_registry *lr = lua_newuserdatauv(L, sizeof *lr, 0);
    lr->r = r;
    lr->borrowed = 1;
    luaL_setmetatable(L, LT_REGISTRY);
    lua_setfield(L, LUA_REGISTRYINDEX, LT_REGISTRY ".instance");
}

static void method_list(lua_State *L, lp_registry *r)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lp_registry_n_methods(r);
    for (int i = 0; i < n; i++) {
        lp_method_info mi;
        lp_registry_method(r, i, &mi);
        if (i)
            luaL_addstring(&b, ", ");
        luaL_addstring(&b, mi.full_name);
    }
    if (!n)
        luaL_addstring(&b, "none; see 'loupe plugins'");
    luaL_pushresult(&b);
}

static void param_list(lua_State *L, const lp_method_info *mi)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int p = 0; p < mi->n_params; p++) {
        if (p)
            luaL_addstring(&b, ", ");
        luaL_addstring(&b, mi->params[p].name);
    }
    if (!mi->n_params)
        luaL_addstring(&b, "none");
    luaL_pushresult(&b);
}

static void call_free(void *c) { lp_call_free(c); }

static int progress_cb(void *user, double done, double total, const char *what)
{
    (void)user, (void)done, (void)total, (void)what;
    return lt_interrupted;
}

/* Whole numbers become Lua integers (layer 3, not 3.0). */
static void push_num(lua_State *L, double v)
{
    if (v == (double)(long long)v && v > -9e15 && v < 9e15)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

static void push_results(lua_State *L, lp_call *c)
{
    int n = lp_call_n_results(c);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        switch (lp_call_result_kind(c, i)) {
        case LP_RESULT_SCALAR:
            push_num(L, lp_call_result_scalar(c, i));
            break;
        case LP_RESULT_STRING:
            lua_pushstring(L, lp_call_result_string(c, i));
            break;
        case LP_RESULT_TENSOR: {
            const char *axes;
            const lp_tensor *t = lp_call_result_tensor(c, i, &axes);
            lt_tensor *o = lt_tensor_new(L, t->ndim, t->ne);
            if (lp_tensor_nelem(t))
                lp_tensor_to_f32(t, o->own);
            break;
        }
        case LP_RESULT_TABLE: {
            int nc = lp_call_table_n_cols(c, i), nr = lp_call_table_n_rows(c, i);
            lua_createtable(L, nr, 1);
            lua_createtable(L, nc, 0);
            for (int k = 0; k < nc; k++) {
                lua_pushstring(L, lp_call_table_col(c, i, k));
                lua_rawseti(L, -2, k + 1);
            }
            lua_setfield(L, -2, "columns");
            for (int r = 0; r < nr; r++) {
                lua_createtable(L, 0, nc);
                for (int k = 0; k < nc; k++) {
                    const lp_cell *cl = lp_call_table_cell(c, i, r, k);
                    if (cl->is_num)
                        push_num(L, cl->num);
                    else
                        lua_pushstring(L, cl->str ? cl->str : "");
                    lua_setfield(L, -2, lp_call_table_col(c, i, k));
                }
                lua_rawseti(L, -2, r + 1);
            }
            break;
        }
        }
        lua_setfield(L, -2, lp_call_result_name(c, i));
    }
}

/* Call full_name with the model (or nil) at model_idx and params table at params_idx. */
static int do_call(lua_State *L, const char *full_name, int model_idx, int params_idx)
{
    lp_registry *r = get_registry(L);
    int mi_idx = lp_registry_find_method(r, full_name);
    if (mi_idx < 0) {
        method_list(L, r);
        return luaL_error(L, "no plugin method '%s' (available: %s)", full_name, lua_tostring(L, -1));
    }
    lp_method_info mi;
    lp_registry_method(r, mi_idx, &mi);
    lt_model *mo = NULL;
    if (!lua_isnoneornil(L, model_idx)) {
        mo = luaL_testudata(L, model_idx, LT_MODEL);
        if (!mo)
            return luaL_error(L, "%s: expected a Model (from loupe.load) or nil, got %s", full_name,
                              luaL_typename(L, model_idx));
        if (!mo->m)
            return luaL_error(L, "%s: the model is closed", full_name);
        if (mo->busy)
            return luaL_error(L, "%s: the model is running (called from a hook?)", full_name);
    }
    if (!lua_isnoneornil(L, params_idx) && !lua_istable(L, params_idx))
        return luaL_error(L, "%s: parameters must be a table, got %s", full_name, luaL_typename(L, params_idx));
    /* check every key, and required parameters, before creating the call */
    int bos = -1;
    if (!lua_isnoneornil(L, params_idx)) {
        lua_pushnil(L);
        while (lua_next(L, params_idx)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            int found = 0;
            for (int p = 0; k && p < mi.n_params && !found; p++)
                found = !strcmp(mi.params[p].name, k);
            if (k && !found && !strcmp(k, "bos")) {
                if (!lua_isboolean(L, -1))
                    return luaL_error(L, "%s: 'bos' must be a boolean", full_name);
                bos = lua_toboolean(L, -1);
                found = 1;
            }
            if (!found) {
                param_list(L, &mi);
                return luaL_error(L, "%s: unknown parameter '%s' (valid: %s)", full_name,
                                  k ? k : luaL_typename(L, -3), lua_tostring(L, -1));
            }
            lua_pop(L, 1);
        }
    }
    for (int p = 0; p < mi.n_params; p++) {
        if (mi.params[p].default_value)
            continue;
        int missing = lua_isnoneornil(L, params_idx) || lua_getfield(L, params_idx, mi.params[p].name) == LUA_TNIL;
        if (!lua_isnoneornil(L, params_idx))
            lua_pop(L, 1);
        if (missing)
            return luaL_error(L, "%s: missing required parameter '%s' (%s): %s", full_name, mi.params[p].name,
                              lp_param_type_name(mi.params[p].type), mi.params[p].help ? mi.params[p].help : "");
    }
    lp_error err = {0};
    lp_call *c = lp_call_new(r, full_name, mo ? mo->m : NULL, &err);
    if (!c)
        return luaL_error(L, "%s", err.msg);
    lt_defer *d = lt_defer_push(L, call_free, c);
    char msg[LP_ERROR_MSG_MAX + 64];
    msg[0] = 0;
    for (int p = 0; p < mi.n_params && !msg[0]; p++) {
        const lp_param_desc *pd = &mi.params[p];
        if (lua_isnoneornil(L, params_idx) || lua_getfield(L, params_idx, pd->name) == LUA_TNIL) {
            if (!lua_isnoneornil(L, params_idx))
                lua_pop(L, 1);
            continue;
        }
        int rc = 0;
        char buf[64];
        int ty = lua_type(L, -1);
        if (ty == LUA_TSTRING) {
            rc = lp_call_set_param(c, pd->name, lua_tostring(L, -1), &err);
        } else if (ty == LUA_TNUMBER) {
            if (lua_isinteger(L, -1))
                snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, -1));
            else
                snprintf(buf, sizeof buf, "%.17g", (double)lua_tonumber(L, -1));
            rc = lp_call_set_param(c, pd->name, buf, &err);
        } else if (ty == LUA_TBOOLEAN) {
            rc = lp_call_set_param(c, pd->name, lua_toboolean(L, -1) ? "true" : "false", &err);
        } else if ((ty == LUA_TTABLE || luaL_testudata(L, -1, LT_TENSOR)) && pd->type == LP_PARAM_TEXT) {
            /* token ids */
            int n;
            int32_t *ids;
            lt_tensor *t = luaL_testudata(L, -1, LT_TENSOR);
            if (t && t->alive && !*t->alive) {
                snprintf(msg, sizeof msg, "%s: parameter '%s': %s", full_name, pd->name, t->dead);
                break;
            }
            if (t) {
                n = (int)lp_tensor_nelem(&t->t);
                const float *x = lt_tensor_contig(L, &t->t);
                ids = lt_scratch(L, (size_t)(n ? n : 1) * sizeof *ids);
                for (int i = 0; i < n; i++)
                    ids[i] = (int32_t)x[i];
                lua_remove(L, -2);
            } else {
                n = (int)luaL_len(L, -1);
                ids = lt_scratch(L, (size_t)(n ? n : 1) * sizeof *ids);
                for (int i = 0; i < n && !msg[0]; i++) {
                    int ok;
                    lua_geti(L, -2, i + 1);
                    lua_Integer v = lua_tointegerx(L, -1, &ok);
                    lua_pop(L, 1);
                    if (!ok || v < 0 || v > 0x7fffffff)
                        snprintf(msg, sizeof msg, "%s: parameter '%s': entry %d is not a token id", full_name,
                                 pd->name, i + 1);
                    ids[i] = (int32_t)v;
                }
            }
            if (!msg[0])
                rc = lp_call_set_param_tokens(c, pd->name, ids, n, &err);
            lua_pop(L, 1);
        } else {
            snprintf(msg, sizeof msg, "%s: parameter '%s' (%s) cannot be a %s", full_name, pd->name,
                     lp_param_type_name(pd->type), luaL_typename(L, -1));
        }
        lua_pop(L, 1);
        if (rc && !msg[0])
            snprintf(msg, sizeof msg, "%s", err.msg);
    }
    if (msg[0]) {
        lt_defer_run(d);
        return luaL_error(L, "%s", msg);
    }
    lp_call_set_add_bos(c, bos);
    lp_call_set_progress(c, progress_cb, NULL);
    if (mo)
        mo->busy = 1;
    int rc = lp_call_run(c, &err);
    if (mo)
        mo->busy = 0;
    if (rc) {
        lt_defer_run(d);
        return luaL_error(L, "%s", err.msg[0] ? err.msg : lp_strerror(rc));
    }
    push_results(L, c);
    lt_defer_run(d);
    return 1;
}

/* loupe.call("plugin.method", model_or_nil, {params}) */
static int l_call(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    return do_call(L, name, 2, 3);
}

static int l_method_closure(lua_State *L)
{
    return do_call(L, lua_tostring(L, lua_upvalueindex(1)), 1, 2);
}

static void push_method_info(lua_State *L, const lp_method_info *mi)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, mi->full_name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, mi->plugin);
    lua_setfield(L, -2, "plugin");
    lua_pushstring(L, mi->name);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, mi->summary ? mi->summary : "");
    lua_setfield(L, -2, "summary");
    lua_pushstring(L, mi->help ? mi->help : "");
    lua_setfield(L, -2, "help");
    lua_createtable(L, mi->n_params, 0);
    for (int p = 0; p < mi->n_params; p++) {
        const lp_param_desc *pd = &mi->params[p];
        lua_createtable(L, 0, 5);
        lua_pushstring(L, pd->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, lp_param_type_name(pd->type));
        lua_setfield(L, -2, "type");
        if (pd->default_value) {
            lua_pushstring(L, pd->default_value);
            lua_setfield(L, -2, "default");
        }
        lua_pushboolean(L, pd->default_value == NULL);
        lua_setfield(L, -2, "required");
        lua_pushstring(L, pd->help ? pd->help : "");
        lua_setfield(L, -2, "help");
        lua_rawseti(L, -2, p + 1);
    }
    lua_setfield(L, -2, "params");
}

/* loupe.methods() → array of {name, plugin, method, summary, help, params} */
static int l_methods(lua_State *L)
{
    lp_registry *r = get_registry(L);
    int n = lp_registry_n_methods(r);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lp_method_info mi;
        lp_registry_method(r, i, &mi);
        push_method_info(L, &mi);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* plugin table __index: method name → function (cached) */
static int plugin_index(lua_State *L)
{
    lp_registry *r = get_registry(L);
    const char *key = luaL_checkstring(L, 2);
    lua_getfield(L, 1, "name");
    lua_pushfstring(L, "%s.%s", lua_tostring(L, -1), key);
    const char *full = lua_tostring(L, -1);
    if (lp_registry_find_method(r, full) < 0) {
        method_list(L, r);
        return luaL_error(L, "no plugin method '%s' (available: %s)", full, lua_tostring(L, -1));
    }
    lua_pushcclosure(L, l_method_closure, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

/* loupe.plugins __index: plugin name → table {name, version, summary, path, <methods>} */
static int plugins_index(lua_State *L)
{
    lp_registry *r = get_registry(L);
    const char *key = luaL_checkstring(L, 2);
    for (int i = 0; i < lp_registry_n_plugins(r); i++) {
        lp_plugin_info pi;
        lp_registry_plugin(r, i, &pi);
        if (strcmp(pi.name, key))
            continue;
        lua_createtable(L, 0, 6);
        lua_pushstring(L, pi.name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, pi.version ? pi.version : "");
        lua_setfield(L, -2, "version");
        lua_pushstring(L, pi.summary ? pi.summary : "");
        lua_setfield(L, -2, "summary");
        lua_pushstring(L, pi.path ? pi.path : "");
        lua_setfield(L, -2, "path");
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, plugin_index);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, -2);
        lua_rawset(L, 1);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < lp_registry_n_plugins(r); i++) {
        lp_plugin_info pi;
        lp_registry_plugin(r, i, &pi);
        if (i)
            luaL_addstring(&b, ", ");
        luaL_addstring(&b, pi.name);
    }
    if (!lp_registry_n_plugins(r))
        luaL_addstring(&b, "none found; see 'loupe plugins'");
    luaL_pushresult(&b);
    return luaL_error(L, "no plugin '%s' (loaded: %s)", key, lua_tostring(L, -1));
}

/* pairs(loupe.plugins): every plugin by name */
static int plugins_pairs(lua_State *L)
{
    lp_registry *r = get_registry(L);
    lua_createtable(L, 0, lp_registry_n_plugins(r));
    for (int i = 0; i < lp_registry_n_plugins(r); i++) {
        lp_plugin_info pi;
        lp_registry_plugin(r, i, &pi);
        lua_pushcfunction(L, plugins_index);
        lua_pushvalue(L, 1);
        lua_pushstring(L, pi.name);
        lua_call(L, 2, 1);
        lua_setfield(L, -2, pi.name);
    }
    lua_getglobal(L, "next");
    lua_insert(L, -2);
    lua_pushnil(L);
    return 3;
}

void lt_plugins_register(lua_State *L, int module_idx)
{
    static const luaL_Reg reg_meta[] = {{"__gc", registry_gc}, {NULL, NULL}};
    lt_new_type(L, LT_REGISTRY, reg_meta, NULL);
    lua_pushcfunction(L, l_call);
    lua_setfield(L, module_idx, "call");
    lua_pushcfunction(L, l_methods);
    lua_setfield(L, module_idx, "methods");
    lua_newtable(L);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, plugins_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, plugins_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_setmetatable(L, -2);
    lua_setfield(L, module_idx, "plugins");
    lua_settop(L, module_idx);
}
