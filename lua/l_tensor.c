/* loupe Lua binding — the Tensor userdata ("loupe.Tensor"): float32, strided, N-d (up to 6).
 *
 * Indexing is 1-based with inclusive ranges; negative indices count from the end (-1 is
 * the last). t[i] selects along the first dimension; t[{i, {a,b}, ":"}] indexes several
 * dimensions at once (an integer drops the dimension, {a,b} keeps a..b, {a} is a..end,
 * ":" or {} keeps everything; missing trailing entries keep everything). When every
 * dimension is indexed by an integer the result is a number. Indices returned by
 * argmax/argmin/max/min/topk are 1-based too. Views (indexing, select, narrow, view,
 * transpose, permute) share memory with their parent; everything else makes a new tensor. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l_loupe.h"

#define HDR ((sizeof(lt_tensor) + 15) & ~(size_t)15)

static int64_t nelem(const lp_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->ne[i];
    return n;
}

static int is_contig(const lp_tensor *t)
{
    int64_t s = 4;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->ne[i] != 1 && t->nb[i] != s)
            return 0;
        s *= t->ne[i];
    }
    return 1;
}

void lt_shape_str(const lp_tensor *t, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)t->ne[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
}

static void set_contig_strides(lp_tensor *t)
{
    int64_t s = 4;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->nb[i] = s;
        s *= t->ne[i];
    }
}

static lt_tensor *new_uninit(lua_State *L, int ndim, const int64_t *ne)
{
    if (ndim < 0 || ndim > LP_MAX_DIMS)
        luaL_error(L, "a tensor has at most %d dimensions", LP_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (ne[i] < 0)
            luaL_error(L, "negative size %lld in a shape", (long long)ne[i]);
        if (ne[i] && n > (INT64_C(1) << 40) / ne[i])
            luaL_error(L, "tensor too large");
        n *= ne[i];
    }
    lt_tensor *r = lua_newuserdatauv(L, HDR + (size_t)n * 4, 1);
    memset(r, 0, sizeof *r);
    r->t.dtype = LP_F32;
    r->t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        r->t.ne[i] = ne[i];
    set_contig_strides(&r->t);
    r->own = (float *)((char *)r + HDR);
    r->t.data = r->own;
    luaL_setmetatable(L, LT_TENSOR);
    return r;
}

lt_tensor *lt_tensor_new(lua_State *L, int ndim, const int64_t *ne)
{
    lt_tensor *r = new_uninit(L, ndim, ne);
    memset(r->own, 0, (size_t)nelem(&r->t) * 4);
    return r;
}

lt_tensor *lt_tensor_push_view(lua_State *L, const lp_tensor *v, int owner_idx, const int *alive, const char *dead)
{
    owner_idx = lua_absindex(L, owner_idx);
    lt_tensor *p = luaL_testudata(L, owner_idx, LT_TENSOR);
    lt_tensor *r = lua_newuserdatauv(L, sizeof *r, 1);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, LT_TENSOR);
    r->t = *v;
    r->alive = alive;
    r->dead = dead;
    if (p && !p->own)
        lua_getiuservalue(L, owner_idx, 1); /* the root owner */
    else
        lua_pushvalue(L, owner_idx);
    lua_setiuservalue(L, -2, 1);
    return r;
}

static void check_alive(lua_State *L, lt_tensor *r)
{
    if (r->alive && !*r->alive)
        luaL_error(L, "%s", r->dead ? r->dead : "tensor is no longer valid");
}

lt_tensor *lt_tensor_check(lua_State *L, int idx)
{
    lt_tensor *r = luaL_checkudata(L, idx, LT_TENSOR);
    check_alive(L, r);
    return r;
}

lt_tensor *lt_tensor_test(lua_State *L, int idx)
{
    lt_tensor *r = luaL_testudata(L, idx, LT_TENSOR);
    if (r)
        check_alive(L, r);
    return r;
}

/* A view of parent tensor at idx. */
static lt_tensor *push_subview(lua_State *L, int idx, const lp_tensor *v)
{
    lt_tensor *p = lua_touserdata(L, idx);
    return lt_tensor_push_view(L, v, idx, p->alive, p->dead);
}

float *lt_tensor_contig(lua_State *L, const lp_tensor *t)
{
    int64_t n = nelem(t);
    float *d = lt_scratch(L, (size_t)(n ? n : 1) * 4);
    lp_tensor_to_f32(t, d);
    return d;
}

/* Pushes a new owning contiguous copy. */
static lt_tensor *push_copy(lua_State *L, const lp_tensor *t)
{
    lt_tensor *r = new_uninit(L, t->ndim, t->ne);
    if (nelem(t))
        lp_tensor_to_f32(t, r->own);
    return r;
}

/* ---- shapes and dims ---- */

static int check_dim(lua_State *L, int arg, const lp_tensor *t, lua_Integer d)
{
    if (t->ndim == 0)
        luaL_argerror(L, arg, "tensor has no dimensions");
    if (d < 0)
        d += t->ndim + 1;
    if (d < 1 || d > t->ndim)
        return luaL_argerror(L, arg,
                             lua_pushfstring(L, "dimension %d out of range (tensor has %d; 1-based, -1 is the last)",
                                             (int)(d <= 0 ? d - t->ndim - 1 : d), t->ndim));
    return (int)d - 1;
}

static int opt_dim(lua_State *L, int arg, const lp_tensor *t, int def_last)
{
    if (lua_isnoneornil(L, arg))
        return def_last ? t->ndim - 1 : -1;
    return check_dim(L, arg, t, luaL_checkinteger(L, arg));
}

/* Shape from a table or from integer arguments starting at arg; returns ndim. -1 allowed
 * once when allow_infer. */
static int read_shape(lua_State *L, int arg, int64_t *ne, int allow_infer)
{
    int nd = 0;
    if (lua_istable(L, arg)) {
        int n = (int)luaL_len(L, arg);
        if (n > LP_MAX_DIMS)
            luaL_argerror(L, arg, "too many dimensions");
        for (int i = 1; i <= n; i++) {
            lua_geti(L, arg, i);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            lua_pop(L, 1);
            if (!ok || (v < 0 && !(allow_infer && v == -1)))
                luaL_argerror(L, arg, "shape entries must be non-negative integers");
            ne[nd++] = v;
        }
    } else {
        int top = lua_gettop(L);
        for (int i = arg; i <= top; i++) {
            if (nd >= LP_MAX_DIMS)
                luaL_argerror(L, i, "too many dimensions");
            lua_Integer v = luaL_checkinteger(L, i);
            if (v < 0 && !(allow_infer && v == -1))
                luaL_argerror(L, i, "sizes must be non-negative integers");
            ne[nd++] = v;
        }
    }
    return nd;
}

/* ---- element access ---- */

static float *elem_ptr(const lp_tensor *t, const int64_t *idx)
{
    char *p = t->data;
    for (int i = 0; i < t->ndim; i++)
        p += idx[i] * t->nb[i];
    return (float *)p;
}

static int64_t norm_index(lua_State *L, lua_Integer i, int64_t size, int dim)
{
    int64_t j = i < 0 ? size + i : i - 1;
    if (i == 0 || j < 0 || j >= size)
        luaL_error(L, "index %d out of range for dimension %d of size %d (1-based; -1 is the last)", (int)i, dim + 1,
                   (int)size);
    return j;
}

/* t:get(i, j, …) / t:set(i, j, …, v) */
static void read_full_index(lua_State *L, lt_tensor *r, int first, int n, int64_t *idx)
{
    if (n != r->t.ndim)
        luaL_error(L, "expected %d indices for a %d-d tensor, got %d", r->t.ndim, r->t.ndim, n);
    for (int d = 0; d < n; d++)
        idx[d] = norm_index(L, luaL_checkinteger(L, first + d), r->t.ne[d], d);
}

static int l_tensor_get(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int64_t idx[LP_MAX_DIMS];
    read_full_index(L, r, 2, lua_gettop(L) - 1, idx);
    lua_pushnumber(L, *elem_ptr(&r->t, idx));
    return 1;
}

static int l_tensor_set(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int top = lua_gettop(L);
    lua_Number v = luaL_checknumber(L, top);
    int64_t idx[LP_MAX_DIMS];
    read_full_index(L, r, 2, top - 2, idx);
    *elem_ptr(&r->t, idx) = (float)v;
    return 0;
}

/* Apply an index key (integer or table) to t; returns the view and whether all dims
 * were dropped. */
static lp_tensor apply_index(lua_State *L, const lp_tensor *t, int key)
{
    lp_tensor v = *t;
    if (lua_isinteger(L, key) || (lua_type(L, key) == LUA_TNUMBER)) {
        int ok;
        lua_Integer i = lua_tointegerx(L, key, &ok);
        if (!ok)
            luaL_error(L, "tensor index must be an integer, got %s", lua_tostring(L, key));
        if (t->ndim == 0)
            luaL_error(L, "cannot index a 0-d tensor");
        return lp_tensor_select(t, 0, norm_index(L, i, t->ne[0], 0));
    }
    if (!lua_istable(L, key))
        luaL_error(L, "tensor index must be an integer or a table like {1, {2,5}, \":\"}, got %s", luaL_typename(L, key));
    int n = (int)luaL_len(L, key);
    if (n > t->ndim)
        luaL_error(L, "too many indices (%d) for a %d-d tensor", n, t->ndim);
    int out = 0; /* current dim in v */
    for (int d = 0; d < n; d++) {
        int ty = lua_geti(L, key, d + 1);
        if (ty == LUA_TNUMBER) {
            int ok;
            lua_Integer i = lua_tointegerx(L, -1, &ok);
            if (!ok)
                luaL_error(L, "index %d: expected an integer", d + 1);
            v = lp_tensor_select(&v, out, norm_index(L, i, v.ne[out], d));
        } else if (ty == LUA_TSTRING && !strcmp(lua_tostring(L, -1), ":")) {
            out++;
        } else if (ty == LUA_TTABLE) {
            int m = (int)luaL_len(L, -1);
            int64_t size = v.ne[out];
            lua_Integer a = 1, b = -1;
            if (m >= 1) {
                lua_geti(L, -1, 1);
                int ok;
                a = lua_tointegerx(L, -1, &ok);
                if (!ok)
                    luaL_error(L, "index %d: range start must be an integer", d + 1);
                lua_pop(L, 1);
            }
            if (m >= 2) {
                lua_geti(L, -1, 2);
                int ok;
                b = lua_tointegerx(L, -1, &ok);
                if (!ok)
                    luaL_error(L, "index %d: range end must be an integer", d + 1);
                lua_pop(L, 1);
            }
            if (m > 2)
                luaL_error(L, "index %d: a range is {first, last}", d + 1);
            int64_t s = a < 0 ? size + a : a - 1, e = b < 0 ? size + b : b - 1;
            if (a == 0 || b == 0 || s < 0 || s > size || e < -1 || e >= size)
                luaL_error(L, "range {%d, %d} out of bounds for dimension %d of size %d (1-based, inclusive)", (int)a,
                           (int)b, d + 1, (int)size);
            int64_t len = e - s + 1;
            if (len < 0)
                len = 0;
            if (s == size)
                s = size ? size - 1 : 0, len = 0;
            v = lp_tensor_narrow(&v, out, s, len);
            out++;
        } else {
            luaL_error(L, "index %d: expected an integer, {first, last} or \":\", got %s", d + 1,
                       luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    return v;
}

static int l_tensor_index(lua_State *L)
{
    lt_tensor *r = luaL_checkudata(L, 1, LT_TENSOR);
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, 2);
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
            return 1;
        check_alive(L, r);
        if (!strcmp(k, "shape")) {
            lua_createtable(L, r->t.ndim, 0);
            for (int i = 0; i < r->t.ndim; i++) {
                lua_pushinteger(L, r->t.ne[i]);
                lua_rawseti(L, -2, i + 1);
            }
            return 1;
        }
        if (!strcmp(k, "ndim")) {
            lua_pushinteger(L, r->t.ndim);
            return 1;
        }
        if (!strcmp(k, "dtype")) {
            lua_pushliteral(L, "f32");
            return 1;
        }
        if (!strcmp(k, "T")) {
            if (r->t.ndim != 2)
                luaL_error(L, "t.T needs a 2-d tensor (use t:transpose(a, b) or t:permute)");
            lp_tensor v = r->t;
            v.ne[0] = r->t.ne[1], v.ne[1] = r->t.ne[0];
            v.nb[0] = r->t.nb[1], v.nb[1] = r->t.nb[0];
            push_subview(L, 1, &v);
            return 1;
        }
        return luaL_error(L, "Tensor has no field or method '%s'", k);
    }
    check_alive(L, r);
    lp_tensor v = apply_index(L, &r->t, 2);
    if (v.ndim == 0)
        lua_pushnumber(L, *(float *)v.data);
    else
        push_subview(L, 1, &v);
    return 1;
}

static void fill(const lp_tensor *t, float x)
{
    int64_t n = nelem(t);
    if (is_contig(t)) {
        float *p = t->data;
        for (int64_t i = 0; i < n; i++)
            p[i] = x;
        return;
    }
    int64_t idx[LP_MAX_DIMS] = {0};
    for (int64_t k = 0; k < n; k++) {
        *elem_ptr(t, idx) = x;
        for (int i = t->ndim - 1; i >= 0; i--) {
            if (++idx[i] < t->ne[i])
                break;
            idx[i] = 0;
        }
    }
}

/* Align src to dst's shape with broadcasting strides (0 where src is broadcast). */
static int bcast_strides(const lp_tensor *dst, const lp_tensor *src, int64_t *nb)
{
    if (src->ndim > dst->ndim)
        return -1;
    int off = dst->ndim - src->ndim;
    for (int i = 0; i < dst->ndim; i++) {
        if (i < off) {
            nb[i] = 0;
            continue;
        }
        int64_t s = src->ne[i - off];
        if (s == dst->ne[i])
            nb[i] = src->nb[i - off];
        else if (s == 1)
            nb[i] = 0;
        else
            return -1;
    }
    return 0;
}

int lt_copy_broadcast(const lp_tensor *dst, const lp_tensor *src, char *msg, size_t cap)
{
    int64_t nb[LP_MAX_DIMS];
    if (bcast_strides(dst, src, nb)) {
        char a[128], b[128];
        lt_shape_str(src, a, sizeof a);
        lt_shape_str(dst, b, sizeof b);
        snprintf(msg, cap, "shape %s cannot be copied into shape %s", a, b);
        return -1;
    }
    int64_t n = nelem(dst);
    if (n == 0)
        return 0;
    /* The source may overlap the destination (a view of the same memory): copy it first. */
    float *tmp = malloc((size_t)nelem(src) * 4 + 4);
    if (!tmp) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    lp_tensor_to_f32(src, tmp);
    lp_tensor s = lp_tensor_make(LP_F32, tmp, src->ndim, src->ne);
    bcast_strides(dst, &s, nb);
    if (is_contig(dst) && src->ndim == dst->ndim && nelem(src) == n) {
        memcpy(dst->data, tmp, (size_t)n * 4);
        free(tmp);
        return 0;
    }
    int64_t idx[LP_MAX_DIMS] = {0};
    for (int64_t k = 0; k < n; k++) {
        const char *p = (const char *)tmp;
        for (int i = 0; i < dst->ndim; i++)
            p += idx[i] * nb[i];
        *elem_ptr(dst, idx) = *(const float *)p;
        for (int i = dst->ndim - 1; i >= 0; i--) {
            if (++idx[i] < dst->ne[i])
                break;
            idx[i] = 0;
        }
    }
    free(tmp);
    return 0;
}

static void assign(lua_State *L, const lp_tensor *dst, int val)
{
    if (lua_type(L, val) == LUA_TNUMBER) {
        fill(dst, (float)lua_tonumber(L, val));
        return;
    }
    lt_tensor *s = lt_tensor_test(L, val);
    if (!s)
        luaL_error(L, "can only assign a number or a Tensor to a tensor slice, got %s", luaL_typename(L, val));
    char msg[300];
    if (lt_copy_broadcast(dst, &s->t, msg, sizeof msg))
        luaL_error(L, "%s", msg);
}

static int l_tensor_newindex(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "cannot set field '%s' of a Tensor", lua_tostring(L, 2));
    lp_tensor v = apply_index(L, &r->t, 2);
    assign(L, &v, 3);
    return 0;
}

static int l_tensor_fill(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    fill(&r->t, (float)luaL_checknumber(L, 2));
    lua_settop(L, 1);
    return 1;
}

static int l_tensor_copy(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    lt_tensor_check(L, 2);
    assign(L, &r->t, 2);
    lua_settop(L, 1);
    return 1;
}

static int l_tensor_len(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    lua_pushinteger(L, r->t.ndim ? r->t.ne[0] : 0);
    return 1;
}

static int l_tensor_size(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    if (lua_isnoneornil(L, 2)) {
        for (int i = 0; i < r->t.ndim; i++)
            lua_pushinteger(L, r->t.ne[i]);
        return r->t.ndim;
    }
    lua_pushinteger(L, r->t.ne[check_dim(L, 2, &r->t, luaL_checkinteger(L, 2))]);
    return 1;
}

static int l_tensor_numel(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    lua_pushinteger(L, nelem(&r->t));
    return 1;
}

static int l_tensor_is_contiguous(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    lua_pushboolean(L, is_contig(&r->t));
    return 1;
}

/* ---- views ---- */

static int do_view(lua_State *L, int allow_copy)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int64_t ne[LP_MAX_DIMS];
    int nd = read_shape(L, 2, ne, 1);
    int64_t n = nelem(&r->t), known = 1;
    int infer = -1;
    for (int i = 0; i < nd; i++) {
        if (ne[i] == -1) {
            if (infer >= 0)
                luaL_error(L, "only one size may be -1");
            infer = i;
        } else {
            known *= ne[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || n % known)
            luaL_error(L, "cannot infer the size for -1: %d elements", (int)n);
        ne[infer] = n / known;
        known *= ne[infer];
    }
    if (known != n) {
        char a[128];
        lt_shape_str(&r->t, a, sizeof a);
        luaL_error(L, "cannot view a tensor of shape %s (%d elements) with %d elements", a, (int)n, (int)known);
    }
    if (!is_contig(&r->t)) {
        if (!allow_copy)
            luaL_error(L, "view needs a contiguous tensor; use t:contiguous():view(...) or t:reshape(...)");
        lt_tensor *c = push_copy(L, &r->t);
        c->t.ndim = nd;
        for (int i = 0; i < nd; i++)
            c->t.ne[i] = ne[i];
        set_contig_strides(&c->t);
        return 1;
    }
    lp_tensor v = r->t;
    v.ndim = nd;
    for (int i = 0; i < nd; i++)
        v.ne[i] = ne[i];
    set_contig_strides(&v);
    push_subview(L, 1, &v);
    return 1;
}

static int l_tensor_view(lua_State *L) { return do_view(L, 0); }
static int l_tensor_reshape(lua_State *L) { return do_view(L, 1); }

static int l_tensor_transpose(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int a, b;
    if (lua_isnoneornil(L, 2)) {
        if (r->t.ndim != 2)
            luaL_argerror(L, 2, "give two dimensions to swap for a tensor that is not 2-d");
        a = 0, b = 1;
    } else {
        a = check_dim(L, 2, &r->t, luaL_checkinteger(L, 2));
        b = check_dim(L, 3, &r->t, luaL_checkinteger(L, 3));
    }
    lp_tensor v = r->t;
    v.ne[a] = r->t.ne[b], v.ne[b] = r->t.ne[a];
    v.nb[a] = r->t.nb[b], v.nb[b] = r->t.nb[a];
    push_subview(L, 1, &v);
    return 1;
}

static int l_tensor_permute(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int64_t p[LP_MAX_DIMS];
    int nd = read_shape(L, 2, p, 0);
    if (nd != r->t.ndim)
        luaL_error(L, "permute needs %d dimensions, got %d", r->t.ndim, nd);
    int seen[LP_MAX_DIMS] = {0};
    lp_tensor v = r->t;
    for (int i = 0; i < nd; i++) {
        if (p[i] < 1 || p[i] > nd || seen[p[i] - 1]++)
            luaL_error(L, "permute: dimensions must be a permutation of 1..%d", nd);
        v.ne[i] = r->t.ne[p[i] - 1];
        v.nb[i] = r->t.nb[p[i] - 1];
    }
    push_subview(L, 1, &v);
    return 1;
}

static int l_tensor_select(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int d = check_dim(L, 2, &r->t, luaL_checkinteger(L, 2));
    int64_t i = norm_index(L, luaL_checkinteger(L, 3), r->t.ne[d], d);
    lp_tensor v = lp_tensor_select(&r->t, d, i);
    if (v.ndim == 0)
        lua_pushnumber(L, *(float *)v.data);
    else
        push_subview(L, 1, &v);
    return 1;
}

static int l_tensor_narrow(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int d = check_dim(L, 2, &r->t, luaL_checkinteger(L, 2));
    lua_Integer s = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    int64_t start = s < 0 ? r->t.ne[d] + s : s - 1;
    if (s == 0 || start < 0 || len < 0 || start + len > r->t.ne[d])
        luaL_error(L, "narrow: start %d and length %d do not fit dimension %d of size %d (1-based)", (int)s, (int)len,
                   d + 1, (int)r->t.ne[d]);
    lp_tensor v = lp_tensor_narrow(&r->t, d, start, len);
    push_subview(L, 1, &v);
    return 1;
}

static int l_tensor_unsqueeze(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    if (r->t.ndim >= LP_MAX_DIMS)
        luaL_error(L, "a tensor has at most %d dimensions", LP_MAX_DIMS);
    lua_Integer d = luaL_checkinteger(L, 2);
    if (d < 0)
        d += r->t.ndim + 2;
    if (d < 1 || d > r->t.ndim + 1)
        luaL_argerror(L, 2, "dimension out of range");
    lp_tensor v = r->t;
    int k = (int)d - 1;
    for (int i = v.ndim; i > k; i--)
        v.ne[i] = v.ne[i - 1], v.nb[i] = v.nb[i - 1];
    v.ne[k] = 1;
    v.nb[k] = k < r->t.ndim ? r->t.nb[k] * r->t.ne[k] : 4;
    v.ndim++;
    push_subview(L, 1, &v);
    return 1;
}

static int l_tensor_squeeze(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    lp_tensor v = r->t;
    int only = lua_isnoneornil(L, 2) ? -1 : check_dim(L, 2, &r->t, luaL_checkinteger(L, 2));
    v.ndim = 0;
    for (int i = 0; i < r->t.ndim; i++)
        if (!(r->t.ne[i] == 1 && (only < 0 || only == i) && r->t.ndim > 1)) {
            v.ne[v.ndim] = r->t.ne[i];
            v.nb[v.ndim++] = r->t.nb[i];
        }
    if (v.ndim == 0) { /* keep one dim */
        v.ndim = 1;
        v.ne[0] = 1;
        v.nb[0] = 4;
    }
    push_subview(L, 1, &v);
    return 1;
}

static int l_tensor_contiguous(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    if (is_contig(&r->t)) {
        lua_settop(L, 1);
        return 1;
    }
    push_copy(L, &r->t);
    return 1;
}

static int l_tensor_clone(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    push_copy(L, &r->t);
    return 1;
}

/* ---- element-wise arithmetic with broadcasting ---- */

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW };

static inline float apply_op(int op, float a, float b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    default: return powf(a, b);
    }
}

/* Operand at idx: a Tensor or a number (as a 0-d tensor over *scalar). */
static lp_tensor operand(lua_State *L, int idx, float *scalar)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        *scalar = (float)lua_tonumber(L, idx);
        lp_tensor t;
        memset(&t, 0, sizeof t);
        t.dtype = LP_F32;
        t.data = scalar;
        return t;
    }
    lt_tensor *r = lt_tensor_test(L, idx);
    if (!r)
        luaL_error(L, "arithmetic on a Tensor needs a Tensor or a number, got %s", luaL_typename(L, idx));
    return r->t;
}

static void binop(lua_State *L, int op)
{
    float sa, sb;
    lp_tensor a = operand(L, 1, &sa), b = operand(L, 2, &sb);
    int nd = a.ndim > b.ndim ? a.ndim : b.ndim;
    int64_t ne[LP_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a.ndim), ib = i - (nd - b.ndim);
        int64_t x = ia >= 0 ? a.ne[ia] : 1, y = ib >= 0 ? b.ne[ib] : 1;
        if (x != y && x != 1 && y != 1) {
            char s1[128], s2[128];
            lt_shape_str(&a, s1, sizeof s1);
            lt_shape_str(&b, s2, sizeof s2);
            luaL_error(L, "shapes %s and %s cannot be broadcast together (dimension %d: %d vs %d)", s1, s2, i + 1,
                       (int)x, (int)y);
        }
        ne[i] = x == 1 ? y : x;
    }
    lt_tensor *o = new_uninit(L, nd, ne);
    int64_t n = nelem(&o->t);
    float *out = o->own;
    if (n == 0)
        return;
    if (a.ndim == b.ndim && is_contig(&a) && is_contig(&b) && nelem(&a) == n && nelem(&b) == n) {
        const float *x = a.data, *y = b.data;
        for (int64_t i = 0; i < n; i++)
            out[i] = apply_op(op, x[i], y[i]);
        return;
    }
    if (b.ndim == 0 && is_contig(&a)) {
        const float *x = a.data;
        float y = *(float *)b.data;
        for (int64_t i = 0; i < n; i++)
            out[i] = apply_op(op, x[i], y);
        return;
    }
    if (a.ndim == 0 && is_contig(&b)) {
        const float *y = b.data;
        float x = *(float *)a.data;
        for (int64_t i = 0; i < n; i++)
            out[i] = apply_op(op, x, y[i]);
        return;
    }
    int64_t na[LP_MAX_DIMS], nbb[LP_MAX_DIMS];
    bcast_strides(&o->t, &a, na);
    bcast_strides(&o->t, &b, nbb);
    int64_t idx[LP_MAX_DIMS] = {0};
    int last = nd - 1;
    int64_t inner = ne[last];
    for (int64_t k = 0; k < n; k += inner) {
        const char *pa = a.data, *pb = b.data;
        for (int i = 0; i < last; i++) {
            pa += idx[i] * na[i];
            pb += idx[i] * nbb[i];
        }
        for (int64_t j = 0; j < inner; j++)
            out[k + j] = apply_op(op, *(const float *)(pa + j * na[last]), *(const float *)(pb + j * nbb[last]));
        for (int i = last - 1; i >= 0; i--) {
            if (++idx[i] < ne[i])
                break;
            idx[i] = 0;
        }
    }
}

static int l_tensor_add(lua_State *L) { binop(L, OP_ADD); return 1; }
static int l_tensor_sub(lua_State *L) { binop(L, OP_SUB); return 1; }
static int l_tensor_mul(lua_State *L) { binop(L, OP_MUL); return 1; }
static int l_tensor_div(lua_State *L) { binop(L, OP_DIV); return 1; }
static int l_tensor_pow(lua_State *L) { binop(L, OP_POW); return 1; }

enum { U_NEG, U_EXP, U_LOG, U_SQRT, U_ABS, U_TANH, U_RELU };

static void unop(lua_State *L, int op)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    lt_tensor *o = push_copy(L, &r->t);
    int64_t n = nelem(&o->t);
    float *x = o->own;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        switch (op) {
        case U_NEG: v = -v; break;
        case U_EXP: v = expf(v); break;
        case U_LOG: v = logf(v); break;
        case U_SQRT: v = sqrtf(v); break;
        case U_ABS: v = fabsf(v); break;
        case U_TANH: v = tanhf(v); break;
        default: v = v > 0 ? v : 0; break;
        }
        x[i] = v;
    }
}

static int l_tensor_unm(lua_State *L) { unop(L, U_NEG); return 1; }
static int l_tensor_exp(lua_State *L) { unop(L, U_EXP); return 1; }
static int l_tensor_log(lua_State *L) { unop(L, U_LOG); return 1; }
static int l_tensor_sqrt(lua_State *L) { unop(L, U_SQRT); return 1; }
static int l_tensor_abs(lua_State *L) { unop(L, U_ABS); return 1; }
static int l_tensor_tanh(lua_State *L) { unop(L, U_TANH); return 1; }
static int l_tensor_relu(lua_State *L) { unop(L, U_RELU); return 1; }

/* ---- reductions ---- */

/* outer × len × inner layout of a contiguous copy along dim d */
static void split_dims(const lp_tensor *t, int d, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = 1, *inner = 1;
    for (int i = 0; i < d; i++)
        *outer *= t->ne[i];
    *len = t->ne[d];
    for (int i = d + 1; i < t->ndim; i++)
        *inner *= t->ne[i];
}

/* New tensor with dim d removed (or kept as 1). */
static lt_tensor *push_reduced(lua_State *L, const lp_tensor *t, int d, int keep)
{
    int64_t ne[LP_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == d) {
            if (keep)
                ne[nd++] = 1;
        } else {
            ne[nd++] = t->ne[i];
        }
    }
    if (nd == 0) {
        ne[0] = 1;
        nd = 1;
    }
    return new_uninit(L, nd, ne);
}

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_ARGMAX, R_ARGMIN, R_NORM };

static int reduce(lua_State *L, int kind)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    int d = opt_dim(L, 2, &r->t, 0);
    int keep = lua_toboolean(L, 3);
    int64_t n = nelem(&r->t);
    int top = lua_gettop(L);
    const float *x = lt_tensor_contig(L, &r->t);
    if ((kind == R_MAX || kind == R_MIN || kind == R_ARGMAX || kind == R_ARGMIN || kind == R_MEAN) &&
        (n == 0 || (d >= 0 && r->t.ne[d] == 0)))
        luaL_error(L, "reduction over an empty tensor");
    if (d < 0) {
        double acc = kind == R_MAX ? -INFINITY : kind == R_MIN ? INFINITY : 0;
        int64_t best = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = x[i];
            switch (kind) {
            case R_SUM:
            case R_MEAN: acc += v; break;
            case R_NORM: acc += v * v; break;
            case R_MAX:
            case R_ARGMAX:
                if (i == 0 || v > x[best] || (v != v && x[best] == x[best])) best = i;
                break;
            default:
                if (i == 0 || v < x[best] || (v != v && x[best] == x[best])) best = i;
                break;
            }
        }
        lua_settop(L, top);
        if (kind == R_MEAN)
            acc /= (double)n;
        else if (kind == R_NORM)
            acc = sqrt(acc);
        else if (kind == R_MAX || kind == R_MIN)
            acc = x[best];
        if (kind == R_ARGMAX || kind == R_ARGMIN)
            lua_pushinteger(L, best + 1);
        else
            lua_pushnumber(L, acc);
        if (kind == R_MAX || kind == R_MIN) {
            lua_pushinteger(L, best + 1);
            return 2;
        }
        return 1;
    }
    int64_t outer, len, inner;
    split_dims(&r->t, d, &outer, &len, &inner);
    lt_tensor *o = push_reduced(L, &r->t, d, keep);
    lt_tensor *oi = (kind == R_MAX || kind == R_MIN) ? push_reduced(L, &r->t, d, keep) : NULL;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            const float *p = x + a * len * inner + c;
            double acc = 0;
            int64_t best = 0;
            for (int64_t j = 0; j < len; j++) {
                double v = p[j * inner];
                switch (kind) {
                case R_SUM:
                case R_MEAN: acc += v; break;
                case R_NORM: acc += v * v; break;
                case R_MAX:
                case R_ARGMAX:
                    if (j == 0 || v > p[best * inner]) best = j;
                    break;
                default:
                    if (j == 0 || v < p[best * inner]) best = j;
                    break;
                }
            }
            float res;
            switch (kind) {
            case R_SUM: res = (float)acc; break;
            case R_MEAN: res = (float)(acc / (double)len); break;
            case R_NORM: res = (float)sqrt(acc); break;
            case R_MAX:
            case R_MIN: res = p[best * inner]; break;
            default: res = (float)(best + 1); break;
            }
            o->own[a * inner + c] = res;
            if (oi)
                oi->own[a * inner + c] = (float)(best + 1);
        }
    return oi ? 2 : 1;
}

static int l_tensor_sum(lua_State *L) { return reduce(L, R_SUM); }
static int l_tensor_mean(lua_State *L) { return reduce(L, R_MEAN); }
static int l_tensor_max(lua_State *L) { return reduce(L, R_MAX); }
static int l_tensor_min(lua_State *L) { return reduce(L, R_MIN); }
static int l_tensor_argmax(lua_State *L) { return reduce(L, R_ARGMAX); }
static int l_tensor_argmin(lua_State *L) { return reduce(L, R_ARGMIN); }
static int l_tensor_norm(lua_State *L) { return reduce(L, R_NORM); }

/* softmax / log_softmax along dim (default last) */
static int softmax(lua_State *L, int logp)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    if (r->t.ndim == 0)
        luaL_error(L, "softmax of a 0-d tensor");
    int d = opt_dim(L, 2, &r->t, 1);
    lt_tensor *o = push_copy(L, &r->t);
    int64_t outer, len, inner;
    split_dims(&o->t, d, &outer, &len, &inner);
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            float *p = o->own + a * len * inner + c;
            float mx = -INFINITY;
            for (int64_t j = 0; j < len; j++)
                mx = p[j * inner] > mx ? p[j * inner] : mx;
            double s = 0;
            for (int64_t j = 0; j < len; j++)
                s += exp((double)p[j * inner] - mx);
            double ls = log(s);
            for (int64_t j = 0; j < len; j++)
                p[j * inner] = logp ? (float)((double)p[j * inner] - mx - ls) : (float)(exp((double)p[j * inner] - mx) / s);
        }
    return 1;
}

static int l_tensor_softmax(lua_State *L) { return softmax(L, 0); }
static int l_tensor_log_softmax(lua_State *L) { return softmax(L, 1); }

typedef struct kv_pair {
    float v;
    int64_t i;
} kv_pair;

static int cmp_desc(const void *a, const void *b)
{
    const kv_pair *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int l_tensor_topk(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    if (r->t.ndim == 0)
        luaL_error(L, "topk of a 0-d tensor");
    int d = opt_dim(L, 3, &r->t, 1);
    if (k < 1 || k > r->t.ne[d])
        luaL_argerror(L, 2, lua_pushfstring(L, "k must be in 1..%d", (int)r->t.ne[d]));
    const float *x = lt_tensor_contig(L, &r->t);
    int64_t outer, len, inner;
    split_dims(&r->t, d, &outer, &len, &inner);
    kv_pair *buf = lt_scratch(L, (size_t)len * sizeof *buf);
    lp_tensor shp = r->t;
    shp.ne[d] = k;
    lt_tensor *vals = new_uninit(L, shp.ndim, shp.ne);
    lt_tensor *idxs = new_uninit(L, shp.ndim, shp.ne);
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            const float *p = x + a * len * inner + c;
            int64_t m = 0;
            if (k <= 32) { /* insertion into a sorted top-k */
                for (int64_t j = 0; j < len; j++) {
                    kv_pair e = {p[j * inner], j};
                    if (e.v != e.v)
                        e.v = -INFINITY;
                    if (m == k && cmp_desc(&e, &buf[m - 1]) >= 0)
                        continue;
                    int64_t q = m < k ? m++ : m - 1;
                    while (q > 0 && cmp_desc(&e, &buf[q - 1]) < 0) {
                        buf[q] = buf[q - 1];
                        q--;
                    }
                    buf[q] = e;
                }
            } else {
                for (int64_t j = 0; j < len; j++) {
                    buf[j].v = p[j * inner] != p[j * inner] ? -INFINITY : p[j * inner];
                    buf[j].i = j;
                }
                qsort(buf, (size_t)len, sizeof *buf, cmp_desc);
            }
            for (int64_t j = 0; j < k; j++) {
                vals->own[(a * k + j) * inner + c] = buf[j].v;
                idxs->own[(a * k + j) * inner + c] = (float)(buf[j].i + 1);
            }
        }
    return 2;
}

static int l_tensor_dot(lua_State *L)
{
    lt_tensor *a = lt_tensor_check(L, 1), *b = lt_tensor_check(L, 2);
    int64_t n = nelem(&a->t);
    if (n != nelem(&b->t))
        luaL_error(L, "dot: tensors have %d and %d elements", (int)n, (int)nelem(&b->t));
    const float *x = lt_tensor_contig(L, &a->t), *y = lt_tensor_contig(L, &b->t);
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * y[i];
    lua_pushnumber(L, s);
    return 1;
}

/* loupe.cosine(a, b [, dim]): a number (flattened) or a tensor along dim (broadcast) */
static int l_cosine(lua_State *L)
{
    lt_tensor *a = lt_tensor_check(L, 1), *b = lt_tensor_check(L, 2);
    if (lua_isnoneornil(L, 3)) {
        int64_t n = nelem(&a->t);
        if (n != nelem(&b->t))
            luaL_error(L, "cosine: tensors have %d and %d elements (give a dim to compare along one axis)", (int)n,
                       (int)nelem(&b->t));
        const float *x = lt_tensor_contig(L, &a->t), *y = lt_tensor_contig(L, &b->t);
        double s = 0, nx = 0, ny = 0;
        for (int64_t i = 0; i < n; i++) {
            s += (double)x[i] * y[i];
            nx += (double)x[i] * x[i];
            ny += (double)y[i] * y[i];
        }
        lua_pushnumber(L, nx > 0 && ny > 0 ? s / sqrt(nx * ny) : 0.0);
        return 1;
    }
    /* along dim: (a*b):sum(dim) / (|a|(dim) * |b|(dim)) */
    lua_Integer dim = luaL_checkinteger(L, 3);
    lua_settop(L, 3);
    int base = lua_gettop(L);
    lua_pushcfunction(L, l_tensor_mul);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1); /* base+1: a*b */
    lua_pushcfunction(L, l_tensor_sum);
    lua_pushvalue(L, base + 1);
    lua_pushinteger(L, dim);
    lua_call(L, 2, 1); /* base+2 */
    lua_pushcfunction(L, l_tensor_norm);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, dim);
    lua_call(L, 2, 1); /* base+3 */
    lua_pushcfunction(L, l_tensor_norm);
    lua_pushvalue(L, 2);
    lua_pushinteger(L, dim);
    lua_call(L, 2, 1); /* base+4 */
    lt_tensor *s = lua_touserdata(L, base + 2), *na = lua_touserdata(L, base + 3), *nb = lua_touserdata(L, base + 4);
    int64_t n = nelem(&s->t);
    if (nelem(&na->t) != n && nelem(&na->t) != 1)
        luaL_error(L, "cosine: shapes do not match along the other dimensions");
    for (int64_t i = 0; i < n; i++) {
        double x = na->own[nelem(&na->t) == 1 ? 0 : i], y = nb->own[nelem(&nb->t) == 1 ? 0 : i];
        s->own[i] = x > 0 && y > 0 ? (float)(s->own[i] / (x * y)) : 0.0f;
    }
    lua_pushvalue(L, base + 2);
    return 1;
}

/* a:matmul(b): [..., m, k] @ [k, n] or [B..., m, k] @ [B..., k, n]; 1-d operands act as
 * a row (left) or column (right) vector and their dimension is dropped. */
static int l_tensor_matmul(lua_State *L)
{
    lt_tensor *ra = lt_tensor_check(L, 1), *rb = lt_tensor_check(L, 2);
    const lp_tensor *a = &ra->t, *b = &rb->t;
    if (a->ndim == 0 || b->ndim == 0)
        luaL_error(L, "matmul of a 0-d tensor");
    int64_t M = a->ndim == 1 ? 1 : a->ne[a->ndim - 2], K = a->ne[a->ndim - 1];
    int64_t Kb = b->ndim == 1 ? b->ne[0] : b->ne[b->ndim - 2], N = b->ndim == 1 ? 1 : b->ne[b->ndim - 1];
    char s1[128], s2[128];
    lt_shape_str(a, s1, sizeof s1);
    lt_shape_str(b, s2, sizeof s2);
    if (K != Kb)
        luaL_error(L, "matmul: shapes %s and %s do not match (%d vs %d)", s1, s2, (int)K, (int)Kb);
    int abatch = a->ndim > 2 ? a->ndim - 2 : 0, bbatch = b->ndim > 2 ? b->ndim - 2 : 0;
    int64_t nbatch = 1;
    if (bbatch) {
        if (abatch != bbatch)
            luaL_error(L, "matmul: batch dimensions of %s and %s differ", s1, s2);
        for (int i = 0; i < abatch; i++) {
            if (a->ne[i] != b->ne[i])
                luaL_error(L, "matmul: batch dimensions of %s and %s differ", s1, s2);
            nbatch *= a->ne[i];
        }
    }
    /* output shape */
    int64_t ne[LP_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < abatch; i++)
        ne[nd++] = a->ne[i];
    if (a->ndim >= 2)
        ne[nd++] = M;
    if (b->ndim >= 2)
        ne[nd++] = N;
    if (nd == 0)
        ne[nd++] = 1;
    const float *x = lt_tensor_contig(L, a), *y = lt_tensor_contig(L, b);
    lt_tensor *o = new_uninit(L, nd, ne);
    int64_t rows = bbatch ? M : nelem(a) / (K ? K : 1);
    if (M == 0 || N == 0 || rows == 0)
        return 1;
    if (K == 0) {
        memset(o->own, 0, (size_t)nelem(&o->t) * 4);
        return 1;
    }
    if (!bbatch) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)N, (int)K, 1.0f, x, (int)K, y, (int)N,
                    0.0f, o->own, (int)N);
    } else {
        for (int64_t bi = 0; bi < nbatch; bi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, x + bi * M * K,
                        (int)K, y + bi * K * N, (int)N, 0.0f, o->own + bi * M * N, (int)N);
    }
    return 1;
}

/* ---- conversion ---- */

static void push_table_rec(lua_State *L, const lp_tensor *t, int d, const char *p)
{
    luaL_checkstack(L, 4, "tensor too deep");
    lua_createtable(L, (int)t->ne[d], 0);
    for (int64_t i = 0; i < t->ne[d]; i++) {
        const char *q = p + i * t->nb[d];
        if (d == t->ndim - 1)
            lua_pushnumber(L, *(const float *)q);
        else
            push_table_rec(L, t, d + 1, q);
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_tensor_totable(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    if (r->t.ndim == 0) {
        lua_pushnumber(L, *(float *)r->t.data);
        return 1;
    }
    push_table_rec(L, &r->t, 0, r->t.data);
    return 1;
}

static int l_tensor_item(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    if (nelem(&r->t) != 1) {
        char s[128];
        lt_shape_str(&r->t, s, sizeof s);
        luaL_error(L, "item() needs a tensor with one element, this one has shape %s", s);
    }
    int64_t idx[LP_MAX_DIMS] = {0};
    lua_pushnumber(L, *elem_ptr(&r->t, idx));
    return 1;
}

static void fmt_val(luaL_Buffer *b, float v, int sci)
{
    char s[32];
    if (sci)
        snprintf(s, sizeof s, "%11.4e", v);
    else
        snprintf(s, sizeof s, "%8.4f", v);
    luaL_addstring(b, s);
}

static void tostr_rec(luaL_Buffer *b, const lp_tensor *t, int d, const char *p, int trunc, int sci)
{
    luaL_addchar(b, '[');
    int64_t n = t->ne[d];
    for (int64_t i = 0; i < n; i++) {
        if (trunc && n > 6 && i == 3) {
            luaL_addstring(b, d == t->ndim - 1 ? "..., " : "...,\n");
            if (d != t->ndim - 1)
                for (int s = 0; s <= d + 7; s++)
                    luaL_addchar(b, ' ');
            i = n - 3;
        }
        const char *q = p + i * t->nb[d];
        if (d == t->ndim - 1)
            fmt_val(b, *(const float *)q, sci);
        else
            tostr_rec(b, t, d + 1, q, trunc, sci);
        if (i + 1 < n) {
            luaL_addchar(b, ',');
            if (d == t->ndim - 1) {
                luaL_addchar(b, ' ');
            } else {
                for (int s = d; s < t->ndim - 1; s++)
                    luaL_addchar(b, '\n');
                for (int s = 0; s <= d + 7; s++)
                    luaL_addchar(b, ' ');
            }
        }
    }
    luaL_addchar(b, ']');
}

static int l_tensor_tostring(lua_State *L)
{
    lt_tensor *r = luaL_checkudata(L, 1, LT_TENSOR);
    char shp[160];
    if (r->alive && !*r->alive) {
        lua_pushfstring(L, "tensor(<released: %s>)", r->dead ? r->dead : "");
        return 1;
    }
    lt_shape_str(&r->t, shp, sizeof shp);
    if (r->t.ndim == 0) {
        lua_pushfstring(L, "tensor(%f)", (double)*(float *)r->t.data);
        return 1;
    }
    int64_t n = nelem(&r->t);
    int trunc = n > 1000;
    /* scientific notation when magnitudes are very large or very small */
    int sci = 0;
    {
        int64_t idx[LP_MAX_DIMS] = {0};
        float mx = 0, mn = INFINITY;
        int64_t lim = n > 100000 ? 100000 : n;
        for (int64_t k = 0; k < lim; k++) {
            float v = fabsf(*elem_ptr(&r->t, idx));
            if (isfinite(v)) {
                mx = v > mx ? v : mx;
                if (v > 0)
                    mn = v < mn ? v : mn;
            }
            for (int i = r->t.ndim - 1; i >= 0; i--) {
                if (++idx[i] < r->t.ne[i])
                    break;
                idx[i] = 0;
            }
        }
        sci = mx >= 1e5f || (mx > 0 && mx < 1e-3f);
        (void)mn;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "tensor(");
    if (n == 0)
        luaL_addstring(&b, "[]");
    else
        tostr_rec(&b, &r->t, 0, r->t.data, trunc, sci);
    luaL_addstring(&b, ", shape=");
    luaL_addstring(&b, shp);
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

/* ---- creation ---- */

static int l_zeros(lua_State *L)
{
    int64_t ne[LP_MAX_DIMS];
    int nd = read_shape(L, 1, ne, 0);
    lt_tensor_new(L, nd, ne);
    return 1;
}

static int l_ones(lua_State *L)
{
    int64_t ne[LP_MAX_DIMS];
    int nd = read_shape(L, 1, ne, 0);
    lt_tensor *r = new_uninit(L, nd, ne);
    fill(&r->t, 1.0f);
    return 1;
}

static int l_full(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    float v = (float)luaL_checknumber(L, 2);
    lua_settop(L, 1);
    int64_t ne[LP_MAX_DIMS];
    int nd = read_shape(L, 1, ne, 0);
    lt_tensor *r = new_uninit(L, nd, ne);
    fill(&r->t, v);
    return 1;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int l_randn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    uint64_t seed = (uint64_t)luaL_optinteger(L, 2, 0);
    lua_settop(L, 1);
    int64_t ne[LP_MAX_DIMS];
    int nd = read_shape(L, 1, ne, 0);
    lt_tensor *r = new_uninit(L, nd, ne);
    int64_t n = nelem(&r->t);
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = ((splitmix64(&s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
        double u2 = (splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        double rad = sqrt(-2.0 * log(u1));
        r->own[i] = (float)(rad * cos(2 * M_PI * u2));
        if (i + 1 < n)
            r->own[i + 1] = (float)(rad * sin(2 * M_PI * u2));
    }
    return 1;
}

/* loupe.arange(n) → 0..n-1; loupe.arange(a, b [, step]) → a, a+step, … < b (NumPy). */
static int l_arange(lua_State *L)
{
    lua_Number a = 0, b, st = 1;
    if (lua_isnoneornil(L, 2)) {
        b = luaL_checknumber(L, 1);
    } else {
        a = luaL_checknumber(L, 1);
        b = luaL_checknumber(L, 2);
        st = luaL_optnumber(L, 3, 1);
    }
    if (st == 0)
        luaL_argerror(L, 3, "step must not be zero");
    double cnt = ceil((b - a) / st);
    if (cnt < 0)
        cnt = 0;
    if (cnt > 1e9)
        luaL_error(L, "arange: too many elements");
    int64_t ne[1] = {(int64_t)cnt};
    lt_tensor *r = new_uninit(L, 1, ne);
    for (int64_t i = 0; i < ne[0]; i++)
        r->own[i] = (float)(a + st * (double)i);
    return 1;
}

/* loupe.tensor(nested tables) */
static void infer_shape(lua_State *L, int idx, int d, int *nd, int64_t *ne)
{
    if (d >= LP_MAX_DIMS)
        luaL_error(L, "loupe.tensor: more than %d levels of nesting", LP_MAX_DIMS);
    ne[d] = (int64_t)luaL_len(L, idx);
    *nd = d + 1;
    if (ne[d] > 0) {
        lua_geti(L, idx, 1);
        if (lua_istable(L, -1))
            infer_shape(L, lua_gettop(L), d + 1, nd, ne);
        else if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "loupe.tensor: expected numbers or tables, got %s", luaL_typename(L, -1));
        lua_pop(L, 1);
    }
}

static void fill_rec(lua_State *L, int idx, int d, int nd, const int64_t *ne, float *out, int64_t *k)
{
    luaL_checkstack(L, 3, NULL);
    if ((int64_t)luaL_len(L, idx) != ne[d])
        luaL_error(L, "loupe.tensor: ragged nesting (dimension %d has %d and %d entries)", d + 1, (int)ne[d],
                   (int)luaL_len(L, idx));
    for (int64_t i = 1; i <= ne[d]; i++) {
        lua_geti(L, idx, i);
        if (d == nd - 1) {
            int ok;
            lua_Number v = lua_tonumberx(L, -1, &ok);
            if (!ok || lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "loupe.tensor: expected a number at depth %d, got %s", d + 1, luaL_typename(L, -1));
            out[(*k)++] = (float)v;
        } else {
            if (!lua_istable(L, -1))
                luaL_error(L, "loupe.tensor: ragged nesting (expected a table at depth %d)", d + 1);
            fill_rec(L, lua_gettop(L), d + 1, nd, ne, out, k);
        }
        lua_pop(L, 1);
    }
}

static int l_tensor_from(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t ne[LP_MAX_DIMS];
    int nd = 0;
    infer_shape(L, 1, 0, &nd, ne);
    lt_tensor *r = new_uninit(L, nd, ne);
    int64_t k = 0;
    fill_rec(L, 1, 0, nd, ne, r->own, &k);
    return 1;
}

/* ---- files ---- */

static int l_tensor_save_npy(lua_State *L)
{
    lt_tensor *r = lt_tensor_check(L, 1);
    const char *path = luaL_checkstring(L, 2);
    lp_error err = {0};
    if (lp_npy_save(path, &r->t, &err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_load_npy(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lp_error err = {0};
    lp_tensor t;
    void *data = NULL;
    if (lp_npy_load(path, &t, &data, &err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lt_defer *d = lt_defer_push(L, free, data); /* freed even if the copy below raises */
    lt_tensor *r = new_uninit(L, t.ndim, t.ne);
    if (nelem(&t))
        lp_tensor_to_f32(&t, r->own);
    lt_defer_run(d);
    return 1;
}

/* loupe.save_safetensors(path, {name = tensor, …} [, metadata]) */
static int l_save_safetensors(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_meta = !lua_isnoneornil(L, 3);
    if (has_meta)
        luaL_checktype(L, 3, LUA_TTABLE);
    /* validate first, so nothing can raise while the writer is alive */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 2, "keys must be tensor names (strings)");
        if (!lt_tensor_test(L, -1))
            luaL_argerror(L, 2, lua_pushfstring(L, "'%s' is not a Tensor", lua_tostring(L, -2)));
        lua_pop(L, 1);
    }
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, 3, "metadata must map strings to strings");
            lua_pop(L, 1);
        }
    }
    lp_st_writer *w = lp_st_writer_new();
    lp_error err = {0};
    int rc = w ? 0 : lp_error_set(&err, LP_ENOMEM, "out of memory");
    lua_pushnil(L);
    while (!rc && lua_next(L, 2)) {
        lt_tensor *r = lua_touserdata(L, -1);
        rc = lp_st_writer_add(w, lua_tostring(L, -2), &r->t, LP_F32, &err);
        lua_pop(L, 1);
    }
    if (!rc && has_meta) {
        lua_pushnil(L);
        while (!rc && lua_next(L, 3)) {
            rc = lp_st_writer_set_metadata(w, lua_tostring(L, -2), lua_tostring(L, -1), &err);
            lua_pop(L, 1);
        }
    }
    if (!rc)
        rc = lp_st_writer_finish(w, path, &err);
    lp_st_writer_free(w);
    if (rc) {
        lua_settop(L, 0);
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void st_close(void *f) { lp_st_close(f); }

/* loupe.load_safetensors(path) → {name = Tensor (f32 copy)}, {metadata} */
static int l_load_safetensors(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lp_error err = {0};
    lp_st_file *f;
    if (lp_st_open(path, &f, &err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lt_defer *d = lt_defer_push(L, st_close, f);
    lua_newtable(L);
    int n = lp_st_count(f);
    for (int i = 0; i < n; i++) {
        lp_tensor t = lp_st_tensor(f, i);
        lt_tensor *r = new_uninit(L, t.ndim, t.ne);
        if (nelem(&t))
            lp_tensor_to_f32(&t, r->own);
        lua_setfield(L, -2, lp_st_name(f, i));
    }
    lt_defer_run(d);
    return 1;
}

/* ---- registration ---- */

static const luaL_Reg tensor_methods[] = {
    {"size", l_tensor_size},       {"numel", l_tensor_numel},     {"is_contiguous", l_tensor_is_contiguous},
    {"get", l_tensor_get},         {"set", l_tensor_set},         {"fill", l_tensor_fill},
    {"copy", l_tensor_copy},       {"view", l_tensor_view},       {"reshape", l_tensor_reshape},
    {"transpose", l_tensor_transpose}, {"permute", l_tensor_permute}, {"select", l_tensor_select},
    {"narrow", l_tensor_narrow},   {"unsqueeze", l_tensor_unsqueeze}, {"squeeze", l_tensor_squeeze},
    {"contiguous", l_tensor_contiguous}, {"clone", l_tensor_clone}, {"add", l_tensor_add},
    {"sub", l_tensor_sub},         {"mul", l_tensor_mul},         {"div", l_tensor_div},
    {"pow", l_tensor_pow},         {"neg", l_tensor_unm},         {"exp", l_tensor_exp},
    {"log", l_tensor_log},         {"sqrt", l_tensor_sqrt},       {"abs", l_tensor_abs},
    {"tanh", l_tensor_tanh},       {"relu", l_tensor_relu},       {"sum", l_tensor_sum},
    {"mean", l_tensor_mean},       {"max", l_tensor_max},         {"min", l_tensor_min},
    {"argmax", l_tensor_argmax},   {"argmin", l_tensor_argmin},   {"norm", l_tensor_norm},
    {"softmax", l_tensor_softmax}, {"log_softmax", l_tensor_log_softmax}, {"topk", l_tensor_topk},
    {"dot", l_tensor_dot},         {"matmul", l_tensor_matmul},   {"totable", l_tensor_totable},
    {"item", l_tensor_item},       {"save_npy", l_tensor_save_npy}, {NULL, NULL}};

static const luaL_Reg tensor_funcs[] = {
    {"zeros", l_zeros},   {"ones", l_ones},         {"full", l_full},
    {"randn", l_randn},   {"arange", l_arange},     {"tensor", l_tensor_from},
    {"cosine", l_cosine}, {"load_npy", l_load_npy}, {"save_safetensors", l_save_safetensors},
    {"load_safetensors", l_load_safetensors}, {NULL, NULL}};

void lt_tensor_register(lua_State *L, int module_idx)
{
    luaL_newmetatable(L, LT_TENSOR);
    int mt = lua_gettop(L);
    luaL_newlib(L, tensor_methods); /* methods table */
    lua_pushvalue(L, -1);
    lua_setfield(L, mt, "methods"); /* for docs checks: getmetatable(t).methods */
    lua_pushcclosure(L, l_tensor_index, 1);
    lua_setfield(L, mt, "__index");
    static const luaL_Reg meta[] = {{"__newindex", l_tensor_newindex}, {"__len", l_tensor_len},
                                    {"__tostring", l_tensor_tostring}, {"__add", l_tensor_add},
                                    {"__sub", l_tensor_sub},           {"__mul", l_tensor_mul},
                                    {"__div", l_tensor_div},           {"__pow", l_tensor_pow},
                                    {"__unm", l_tensor_unm},           {NULL, NULL}};
    luaL_setfuncs(L, meta, 0);
    lua_pushliteral(L, LT_TENSOR);
    lua_setfield(L, mt, "__name");
    lua_pop(L, 1);
    luaL_setfuncs(L, tensor_funcs, 0);
    (void)module_idx;
}
