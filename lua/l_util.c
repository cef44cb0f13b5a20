/* loupe Lua binding — output helpers: loupe.json, loupe.write_json, loupe.write_csv and
 * loupe.progress (a bar on stderr when it is a terminal; NO_COLOR respected). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "l_loupe.h"

/* ---- JSON ---- */

static void json_free(void *j) { cJSON_Delete(j); }

typedef struct okey {
    const char *s;
    int slot;
} okey;

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const okey *)a)->s, ((const okey *)b)->s);
}

static cJSON *tensor_json(const float *x, const int64_t *ne, int ndim)
{
    cJSON *a = cJSON_CreateArray();
    int64_t stride = 1;
    for (int d = 1; d < ndim; d++)
        stride *= ne[d];
    for (int64_t k = 0; k < ne[0]; k++)
        cJSON_AddItemToArray(a, ndim == 1 ? cJSON_CreateNumber(x[k]) : tensor_json(x + k * stride, ne + 1, ndim - 1));
    return a;
}

/* Convert the value at idx; raises on unsupported values (the caller holds the root in a
 * deferred box, so nothing leaks). */
static cJSON *to_json(lua_State *L, int idx, int depth)
{
    idx = lua_absindex(L, idx);
    if (depth > 100)
        luaL_error(L, "json: nesting deeper than 100 (a cycle?)");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return cJSON_CreateNull();
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v))
            return cJSON_CreateNull();
        return cJSON_CreateNumber(v);
    }
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TUSERDATA: {
        lt_tensor *t = lt_tensor_test(L, idx);
        if (!t)
            break;
        const float *x = lt_tensor_contig(L, &t->t);
        cJSON *j = t->t.ndim ? tensor_json(x, t->t.ne, t->t.ndim) : cJSON_CreateNumber(x[0]);
        lua_pop(L, 1);
        return j;
    }
    case LUA_TTABLE: {
        luaL_checkstack(L, 6, "json: too deep");
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        /* an array when the keys are exactly 1..n (n > 0) */
        int count = 0, is_array = 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            count++;
            if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 || lua_tointeger(L, -2) > n)
                is_array = 0;
            lua_pop(L, 1);
        }
        if (is_array && count == n && n > 0) {
            cJSON *a = cJSON_CreateArray();
            lt_defer *d = lt_defer_push(L, json_free, a);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, idx, i);
                cJSON_AddItemToArray(a, to_json(L, -1, depth + 1));
                lua_pop(L, 1);
            }
            d->p = NULL;
            lua_pop(L, 1);
            return a;
        }
        /* an object, keys sorted for stable output; anchor[i] holds the original key i */
        okey *keys = lt_scratch(L, (size_t)(count ? count : 1) * sizeof *keys);
        lua_createtable(L, 2 * count, 0);
        int anchor = lua_gettop(L), k = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            int kt = lua_type(L, -1);
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
                luaL_error(L, "json: table keys must be strings or numbers, got %s", luaL_typename(L, -1));
            lua_pushvalue(L, -1);
            lua_rawseti(L, anchor, 2 * k + 1);
            lua_pushvalue(L, -1);
            luaL_tolstring(L, -1, NULL); /* a new string even for string keys */
            lua_remove(L, -2);
            keys[k].s = lua_tostring(L, -1);
            keys[k].slot = 2 * k + 1;
            lua_rawseti(L, anchor, 2 * k + 2);
            k++;
        }
        qsort(keys, (size_t)k, sizeof *keys, cmp_key);
        cJSON *o = cJSON_CreateObject();
        lt_defer *d = lt_defer_push(L, json_free, o);
        for (int i = 0; i < k; i++) {
            lua_rawgeti(L, anchor, keys[i].slot);
            lua_gettable(L, idx);
            cJSON_AddItemToObject(o, keys[i].s, to_json(L, -1, depth + 1));
            lua_pop(L, 1);
        }
        d->p = NULL;
        lua_pop(L, 3); /* defer box, anchor, keys */
        return o;
    }
    default: break;
    }
    luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
    return NULL;
}

static char *encode_json(lua_State *L, int idx, int pretty, lt_defer **d)
{
    cJSON *j = to_json(L, idx, 0);
    lt_defer *dj = lt_defer_push(L, json_free, j);
    char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    lt_defer_run(dj);
    lua_pop(L, 1);
    if (!s)
        luaL_error(L, "json: out of memory");
    *d = lt_defer_push(L, free, s);
    return s;
}

/* loupe.json(value [, {pretty=bool}]) → string */
static int l_json(lua_State *L)
{
    luaL_checkany(L, 1);
    static const char *const allowed[] = {"pretty", NULL};
    lt_check_options(L, 2, "json", allowed);
    int pretty = lt_opt_bool(L, 2, "pretty", 0);
    lt_defer *d;
    char *s = encode_json(L, 1, pretty, &d);
    lua_pushstring(L, s);
    lt_defer_run(d);
    return 1;
}

static int fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    luaL_pushfail(L);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return 2;
}

/* loupe.write_json(path, value) → true | nil, msg */
static int l_write_json(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checkany(L, 2);
    lt_defer *d;
    char *s = encode_json(L, 2, 1, &d);
    FILE *f = fopen(path, "w");
    if (!f) {
        lt_defer_run(d);
        return fail(L, "%s: %s", path, strerror(errno));
    }
    int ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    lt_defer_run(d);
    if (!ok)
        return fail(L, "%s: write failed", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- CSV ---- */

/* Write one cell (the value at the top of the stack); types were checked before. */
static void csv_field(FILE *f, lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: fputs(lua_toboolean(L, idx) ? "true" : "false", f); return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            fprintf(f, "%lld", (long long)lua_tointeger(L, idx));
        else
            fprintf(f, "%.9g", (double)lua_tonumber(L, idx));
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        int quote = strpbrk(s, ",\"\n\r") != NULL || (len && (s[0] == ' ' || s[len - 1] == ' '));
        if (!quote) {
            fwrite(s, 1, len, f);
            return;
        }
        fputc('"', f);
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"')
                fputc('"', f);
            fputc(s[i], f);
        }
        fputc('"', f);
        return;
    }
    default: return;
    }
}

/* Push row r's cell for column k (by name, else by position). */
static int push_cell(lua_State *L, int row, int cols, int k)
{
    lua_geti(L, cols, k);
    lua_gettable(L, row);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_geti(L, row, k);
    }
    return lua_type(L, -1);
}

static void file_close(void *f) { fclose(f); }

/* loupe.write_csv(path, rows [, columns]) → true | nil, msg. rows: array of tables keyed
 * by column name (or arrays, by position). columns default to rows.columns, else the
 * sorted keys of the first row. */
static int l_write_csv(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    if (lua_isnil(L, 3)) {
        lua_getfield(L, 2, "columns");
        lua_replace(L, 3);
    }
    if (lua_isnil(L, 3)) {
        /* sorted string keys of the first row */
        lua_newtable(L);
        if (lua_geti(L, 2, 1) == LUA_TTABLE) {
            int r1 = lua_gettop(L), n = 0;
            lua_pushnil(L);
            while (lua_next(L, r1)) {
                lua_pop(L, 1);
                if (lua_type(L, -1) == LUA_TSTRING) {
                    lua_pushvalue(L, -1);
                    lua_rawseti(L, r1 - 1, ++n);
                }
            }
            lua_pop(L, 1);
            lua_getglobal(L, "table");
            if (lua_istable(L, -1)) {
                lua_getfield(L, -1, "sort");
                lua_pushvalue(L, -3);
                lua_call(L, 1, 0);
            }
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
        }
        lua_replace(L, 3);
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    int nc = (int)luaL_len(L, 3);
    if (nc == 0)
        return luaL_argerror(L, 3, "no columns (give columns, or rows keyed by column name)");
    for (int k = 1; k <= nc; k++) {
        if (lua_geti(L, 3, k) != LUA_TSTRING)
            luaL_argerror(L, 3, "column names must be strings");
        lua_pop(L, 1);
    }
    int nr = (int)luaL_len(L, 2);
    /* check every cell first, so nothing raises while the file is being written */
    for (int r = 1; r <= nr; r++) {
        if (lua_geti(L, 2, r) != LUA_TTABLE)
            luaL_error(L, "write_csv: row %d is a %s, not a table", r, luaL_typename(L, -1));
        for (int k = 1; k <= nc; k++) {
            int ty = push_cell(L, lua_gettop(L), 3, k);
            if (ty != LUA_TNIL && ty != LUA_TNUMBER && ty != LUA_TSTRING && ty != LUA_TBOOLEAN)
                luaL_error(L, "write_csv: row %d, column %d: cannot write a %s in a cell", r, k, luaL_typename(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return fail(L, "%s: %s", path, strerror(errno));
    lt_defer *d = lt_defer_push(L, file_close, f);
    for (int k = 1; k <= nc; k++) {
        if (k > 1)
            fputc(',', f);
        lua_geti(L, 3, k);
        csv_field(f, L, -1);
        lua_pop(L, 1);
    }
    fputc('\n', f);
    for (int r = 1; r <= nr; r++) {
        lua_geti(L, 2, r);
        for (int k = 1; k <= nc; k++) {
            if (k > 1)
                fputc(',', f);
            push_cell(L, lua_gettop(L), 3, k);
            csv_field(f, L, -1);
            lua_pop(L, 1);
        }
        fputc('\n', f);
        lua_pop(L, 1);
    }
    int ok = !ferror(f);
    d->p = NULL;
    ok = (fclose(f) == 0) && ok;
    if (!ok)
        return fail(L, "%s: write failed", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- progress ---- */

typedef struct lt_progress {
    double n, done;
    int bar, color, finished;
    double last_draw, start;
    char label[64];
} lt_progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void draw(lt_progress *p, int force)
{
    if (!p->bar)
        return;
    double t = now_s();
    if (!force && t - p->last_draw < 0.05)
        return;
    p->last_draw = t;
    double f = p->n > 0 ? p->done / p->n : 1;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    int w = 30, fill = (int)(f * w + 0.5);
    char bar[40];
    for (int i = 0; i < w; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    double el = t - p->start, eta = p->done > 0 ? el * (p->n - p->done) / p->done : 0;
    fprintf(stderr, "\r%s%s%s[%s]%s %3.0f%% %g/%g  %.1fs elapsed, %.1fs left\033[K", p->label,
            p->label[0] ? " " : "", p->color ? "\033[36m" : "", bar, p->color ? "\033[0m" : "", f * 100, p->done, p->n,
            el, eta);
    fflush(stderr);
}

/* loupe.progress(n [, label]) */
static int l_progress(lua_State *L)
{
    lua_Number n = luaL_checknumber(L, 1);
    luaL_argcheck(L, n >= 0, 1, "total must be >= 0");
    const char *label = luaL_optstring(L, 2, "");
    lt_progress *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, LT_PROGRESS);
    p->n = n;
    p->bar = lt_stderr_tty();
    const char *nc = getenv("NO_COLOR");
    p->color = p->bar && (!nc || !*nc);
    p->start = now_s();
    snprintf(p->label, sizeof p->label, "%s", label);
    draw(p, 1);
    return 1;
}

static int l_progress_tick(lua_State *L)
{
    lt_progress *p = luaL_checkudata(L, 1, LT_PROGRESS);
    lua_Number k = luaL_optnumber(L, 2, 1);
    p->done += k;
    draw(p, p->done >= p->n);
    lua_settop(L, 1);
    return 1;
}

static int l_progress_done(lua_State *L)
{
    lt_progress *p = luaL_checkudata(L, 1, LT_PROGRESS);
    if (p->finished)
        return 0;
    p->finished = 1;
    if (p->bar) {
        draw(p, 1);
        fputc('\n', stderr);
        fflush(stderr);
    }
    return 0;
}

static int l_progress_tostring(lua_State *L)
{
    lt_progress *p = luaL_checkudata(L, 1, LT_PROGRESS);
    lua_pushfstring(L, "Progress(%f/%f)", p->done, p->n);
    return 1;
}

void lt_util_register(lua_State *L, int module_idx)
{
    static const luaL_Reg pmeta[] = {{"__close", l_progress_done}, {"__tostring", l_progress_tostring}, {NULL, NULL}};
    static const luaL_Reg pmethods[] = {{"tick", l_progress_tick}, {"done", l_progress_done}, {NULL, NULL}};
    lt_new_type(L, LT_PROGRESS, pmeta, pmethods);
    static const luaL_Reg funcs[] = {{"json", l_json},
                                     {"write_json", l_write_json},
                                     {"write_csv", l_write_csv},
                                     {"progress", l_progress},
                                     {NULL, NULL}};
    lua_settop(L, module_idx);
    luaL_setfuncs(L, funcs, 0);
}
