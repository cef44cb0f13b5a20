/* loupe Lua binding — the Model userdata ("loupe.Model"): loading, tokenizing, the hooked
 * forward pass (run, run_with_cache), generation, weights and hook points.
 *
 * Hooks are Lua functions called from inside the C forward pass. Each call goes through
 * lua_pcall (never a longjmp across the core's frames): the activation is handed over as a
 * Tensor view guarded by a Borrow object that is invalidated when the hook returns, and a
 * Lua error becomes a negative return code whose message m:run raises after the forward
 * pass has unwound cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l_loupe.h"

static const char *const act_names[] = {"gelu_tanh", "gelu_erf", "silu", "relu"};

lt_model *lt_model_check(lua_State *L, int idx)
{
    lt_model *mo = luaL_checkudata(L, idx, LT_MODEL);
    if (!mo->m)
        luaL_argerror(L, idx, "model is closed");
    return mo;
}

static int l_load(lua_State *L)
{
    const char *spec = luaL_checkstring(L, 1);
    static const char *const allowed[] = {"threads", NULL};
    lt_check_options(L, 2, "loupe.load", allowed);
    lua_Integer threads = lt_opt_int(L, 2, "threads", 0);
    if (threads < 0)
        luaL_argerror(L, 2, "threads must be >= 0");
    if (threads > 0)
        lp_set_threads((int)threads);
    /* born closed, so __gc is safe whatever happens next */
    lt_model *mo = lua_newuserdatauv(L, sizeof *mo, 1);
    mo->m = NULL;
    mo->alive = 0;
    mo->busy = 0;
    mo->borrowed = 0;
    luaL_setmetatable(L, LT_MODEL);
    lp_error err = {0};
    lp_model *m;
    if (lp_model_load(spec, &m, &err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    mo->m = m;
    mo->alive = 1;
    return 1;
}

lt_model *lt_model_push_borrowed(lua_State *L, lp_model *m)
{
    lt_model *mo = lua_newuserdatauv(L, sizeof *mo, 1);
    mo->m = m;
    mo->alive = 1;
    mo->busy = 0;
    mo->borrowed = 1;
    luaL_setmetatable(L, LT_MODEL);
    return mo;
}

static int l_model_close(lua_State *L)
{
    lt_model *mo = luaL_checkudata(L, 1, LT_MODEL);
    if (mo->busy)
        return luaL_error(L, "cannot close a model while it is running (called from a hook?)");
    if (mo->borrowed)
        return luaL_error(L, "this model belongs to the UI and cannot be closed from Lua");
    if (mo->m) {
        lp_model_free(mo->m);
        mo->m = NULL;
    }
    mo->alive = 0;
    return 0;
}

static int l_model_gc(lua_State *L)
{
    lt_model *mo = luaL_checkudata(L, 1, LT_MODEL);
    if (mo->m && !mo->busy && !mo->borrowed) {
        lp_model_free(mo->m);
        mo->m = NULL;
    }
    mo->alive = 0;
    return 0;
}

static int l_model_tostring(lua_State *L)
{
    lt_model *mo = luaL_checkudata(L, 1, LT_MODEL);
    if (!mo->m) {
        lua_pushliteral(L, "Model(closed)");
        return 1;
    }
    const lp_config *c = lp_model_config(mo->m);
    lua_pushfstring(L, "Model(%s: %s, %d layers, d_model %d, %d heads, vocab %d)", lp_model_name(mo->m), c->model_type,
                    c->n_layers, c->d_model, c->n_heads, c->d_vocab);
    return 1;
}

static void push_cfg(lua_State *L, lp_model *m)
{
    const lp_config *c = lp_model_config(m);
    lp_tokenizer *tok = lp_model_tokenizer(m);
    lua_createtable(L, 0, 32);
#define SETI(k, v) (lua_pushinteger(L, (v)), lua_setfield(L, -2, k))
#define SETS(k, v) (lua_pushstring(L, (v)), lua_setfield(L, -2, k))
#define SETB(k, v) (lua_pushboolean(L, (v)), lua_setfield(L, -2, k))
#define SETN(k, v) (lua_pushnumber(L, (v)), lua_setfield(L, -2, k))
    SETI("n_layers", c->n_layers);
    SETI("d_model", c->d_model);
    SETI("n_heads", c->n_heads);
    SETI("n_kv_heads", c->n_kv_heads);
    SETI("d_head", c->d_head);
    SETI("d_mlp", c->d_mlp);
    SETI("d_vocab", c->d_vocab);
    SETI("n_ctx", c->n_ctx);
    SETS("model_type", c->model_type);
    SETS("architecture", c->arch == LP_ARCH_GPT2 ? "gpt2" : c->arch == LP_ARCH_LLAMA ? "llama" : "gpt_neox");
    SETS("dtype", c->dtype);
    SETS("act", act_names[c->act]);
    SETS("normalization", c->norm == LP_NORM_RMSNORM ? "rmsnorm" : "layernorm");
    SETN("norm_eps", c->norm_eps);
    SETB("gated_mlp", c->gated_mlp);
    SETB("parallel_blocks", c->parallel_blocks);
    SETS("positional", c->learned_pos ? "learned" : "rotary");
    SETI("rotary_dim", c->rotary_dim);
    SETN("rope_theta", c->rope_theta);
    SETB("tied_embeddings", c->tied_embeddings);
    SETI("bos_token_id", c->bos_token_id);
    SETI("eos_token_id", c->eos_token_id);
    SETB("prepend_bos", c->prepend_bos);
    SETS("name", lp_model_name(m));
    SETS("dir", lp_model_dir(m));
    SETI("n_params", lp_model_n_params(m));
    if (tok)
        SETS("tokenizer", lp_tokenizer_kind(tok));
#undef SETI
#undef SETS
#undef SETB
#undef SETN
}

static int l_model_index(lua_State *L)
{
    luaL_checkudata(L, 1, LT_MODEL);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    const char *k = lua_tostring(L, 2);
    if (k && !strcmp(k, "cfg")) {
        lt_model *mo = lt_model_check(L, 1);
        if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE)
            return 1;
        push_cfg(L, mo->m);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 1, 1);
        return 1;
    }
    return luaL_error(L, "Model has no field or method '%s'", k ? k : luaL_typename(L, 2));
}

/* ---- tokens ---- */

static lp_tokenizer *need_tok(lua_State *L, lt_model *mo)
{
    lp_tokenizer *tok = lp_model_tokenizer(mo->m);
    if (!tok)
        luaL_error(L, "%s has no tokenizer (tokenizer.json or vocab.json); pass token ids instead of text",
                   lp_model_name(mo->m));
    return tok;
}

/* bos option: nil → -1 (model rule), true/false */
static int bos_opt(lua_State *L, int opts)
{
    if (opts == 0 || lua_isnoneornil(L, opts))
        return -1;
    if (lua_getfield(L, opts, "bos") == LUA_TNIL) {
        lua_pop(L, 1);
        return -1;
    }
    if (!lua_isboolean(L, -1))
        luaL_error(L, "option 'bos' must be a boolean");
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Encode text into Lua-owned memory (pushed scratch); returns the ids. */
static int32_t *encode(lua_State *L, lt_model *mo, const char *text, size_t len, int add_bos, int *n)
{
    lp_tokenizer *tok = need_tok(L, mo);
    int32_t *ids = NULL;
    size_t nn = 0;
    lp_error err = {0};
    if (lp_tokenizer_encode(tok, text, len, add_bos, &ids, &nn, &err))
        luaL_error(L, "tokenize: %s", err.msg);
    lt_defer *d = lt_defer_push(L, free, ids);
    int32_t *out = lt_scratch(L, (nn ? nn : 1) * sizeof *out);
    memcpy(out, ids, nn * sizeof *out);
    lt_defer_run(d);
    lua_remove(L, -2);
    *n = (int)nn;
    return out;
}

static void push_ids(lua_State *L, const int32_t *ids, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int32_t check_id(lua_State *L, lt_model *mo, lua_Number v)
{
    int V = lp_model_config(mo->m)->d_vocab;
    if (v != (lua_Number)(int64_t)v || v < 0 || v >= V)
        luaL_error(L, "token id %f is not an integer in 0..%d", (double)v, V - 1);
    return (int32_t)v;
}

/* Flat ids from a table or 1-d Tensor at idx (scratch pushed). */
static int32_t *ids_arg(lua_State *L, lt_model *mo, int idx, int *n)
{
    idx = lua_absindex(L, idx);
    lt_tensor *t = lt_tensor_test(L, idx);
    if (t) {
        if (t->t.ndim != 1 && !(t->t.ndim == 2 && t->t.ne[0] == 1))
            luaL_error(L, "token ids: expected a 1-d tensor or [1, pos]");
        int64_t k = t->t.ndim == 1 ? t->t.ne[0] : t->t.ne[1];
        const float *x = lt_tensor_contig(L, &t->t);
        int32_t *ids = lt_scratch(L, (size_t)(k ? k : 1) * sizeof *ids);
        lua_remove(L, -2);
        for (int64_t i = 0; i < k; i++)
            ids[i] = check_id(L, mo, x[i]);
        *n = (int)k;
        return ids;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    int k = (int)luaL_len(L, idx);
    int32_t *ids = lt_scratch(L, (size_t)(k ? k : 1) * sizeof *ids);
    for (int i = 0; i < k; i++) {
        if (lua_geti(L, idx, i + 1) != LUA_TNUMBER)
            luaL_error(L, "token ids: entry %d is a %s, not a number", i + 1, luaL_typename(L, -1));
        ids[i] = check_id(L, mo, lua_tonumber(L, -1));
        lua_pop(L, 1);
    }
    *n = k;
    return ids;
}

typedef struct tokbatch {
    int32_t *tokens; /* [B, T] */
    int32_t *lengths; /* [B] or NULL */
    int B, T;
} tokbatch;

/* Tokens argument of run/run_with_cache: text, ids, a batch (table of id tables or texts,
 * right-padded), or a Tensor [pos] / [batch, pos]. Scratch memory stays on the stack. */
static tokbatch tokens_arg(lua_State *L, lt_model *mo, int idx, int add_bos)
{
    tokbatch tb = {0};
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        tb.tokens = encode(L, mo, s, len, add_bos, &tb.T);
        tb.B = 1;
    } else if (lt_tensor_test(L, idx) && ((lt_tensor *)lua_touserdata(L, idx))->t.ndim == 2) {
        lt_tensor *t = lua_touserdata(L, idx);
        tb.B = (int)t->t.ne[0];
        tb.T = (int)t->t.ne[1];
        const float *x = lt_tensor_contig(L, &t->t);
        tb.tokens = lt_scratch(L, (size_t)tb.B * tb.T * sizeof *tb.tokens + 4);
        for (int64_t i = 0; i < (int64_t)tb.B * tb.T; i++)
            tb.tokens[i] = check_id(L, mo, x[i]);
    } else if (lua_istable(L, idx) && (lua_geti(L, idx, 1), lua_type(L, -1) == LUA_TTABLE || lua_type(L, -1) == LUA_TSTRING)) {
        lua_pop(L, 1);
        int B = (int)luaL_len(L, idx);
        luaL_checkstack(L, B + 8, "batch too large");
        int32_t **rows = lt_scratch(L, (size_t)(B ? B : 1) * sizeof *rows);
        tb.lengths = lt_scratch(L, (size_t)(B ? B : 1) * sizeof *tb.lengths);
        int T = 0, padded = 0;
        for (int b = 0; b < B; b++) {
            lua_geti(L, idx, b + 1);
            int n = 0;
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t len;
                const char *s = lua_tolstring(L, -1, &len);
                rows[b] = encode(L, mo, s, len, add_bos, &n);
            } else if (lua_istable(L, -1)) {
                rows[b] = ids_arg(L, mo, -1, &n);
            } else {
                luaL_error(L, "batch entry %d must be a table of token ids or a string, got %s", b + 1,
                           luaL_typename(L, -1));
            }
            if (n == 0)
                luaL_error(L, "batch entry %d has no tokens", b + 1);
            lua_remove(L, -2); /* the row's scratch stays on the stack until the call ends */
            tb.lengths[b] = n;
            if (b && n != T)
                padded = 1;
            T = n > T ? n : T;
        }
        tb.B = B;
        tb.T = T;
        tb.tokens = lt_scratch(L, (size_t)B * T * sizeof *tb.tokens + 4);
        memset(tb.tokens, 0, (size_t)B * T * sizeof *tb.tokens);
        for (int b = 0; b < B; b++)
            memcpy(tb.tokens + (size_t)b * T, rows[b], (size_t)tb.lengths[b] * sizeof *tb.tokens);
        if (!padded)
            tb.lengths = NULL;
    } else {
        if (lua_istable(L, idx))
            lua_pop(L, 1);
        tb.tokens = ids_arg(L, mo, idx, &tb.T);
        tb.B = 1;
    }
    if (tb.B == 0 || tb.T == 0)
        luaL_error(L, "no tokens to run");
    int nctx = lp_model_config(mo->m)->n_ctx;
    if (tb.T > nctx)
        luaL_error(L, "%d positions is more than the model's context of %d", tb.T, nctx);
    return tb;
}

static int l_model_tokenize(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    static const char *const allowed[] = {"bos", NULL};
    lt_check_options(L, 3, "tokenize", allowed);
    int n;
    int32_t *ids = encode(L, mo, s, len, bos_opt(L, 3), &n);
    push_ids(L, ids, n);
    return 1;
}

static int l_model_to_tokens(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    static const char *const allowed[] = {"bos", NULL};
    lt_check_options(L, 3, "to_tokens", allowed);
    int n;
    int32_t *ids = encode(L, mo, s, len, bos_opt(L, 3), &n);
    int64_t ne[2] = {1, n};
    lt_tensor *t = lt_tensor_new(L, 2, ne);
    for (int i = 0; i < n; i++)
        t->own[i] = (float)ids[i];
    return 1;
}

/* ids from: table, Tensor, or text (tokenized with the model's rule) */
static int32_t *any_ids(lua_State *L, lt_model *mo, int idx, int *n)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return encode(L, mo, s, len, -1, n);
    }
    if (lua_type(L, idx) == LUA_TNUMBER) {
        int32_t *ids = lt_scratch(L, sizeof *ids);
        ids[0] = check_id(L, mo, lua_tonumber(L, idx));
        *n = 1;
        return ids;
    }
    if (!lua_istable(L, idx) && !lt_tensor_test(L, idx))
        luaL_argerror(L, idx, "expected token ids (a table or Tensor), a token id, or text");
    return ids_arg(L, mo, idx, n);
}

static void push_token_str(lua_State *L, lp_tokenizer *tok, int32_t id)
{
    char buf[256];
    int l = lp_tokenizer_token_bytes(tok, id, buf, sizeof buf);
    if (l < 0)
        luaL_error(L, "token id %d is not in the tokenizer's vocabulary", (int)id);
    if (l > (int)sizeof buf) {
        char *big = lt_scratch(L, (size_t)l);
        lp_tokenizer_token_bytes(tok, id, big, (size_t)l);
        lua_pushlstring(L, big, (size_t)l);
        lua_remove(L, -2);
        return;
    }
    lua_pushlstring(L, buf, (size_t)l);
}

static int l_model_to_str_tokens(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    lp_tokenizer *tok = need_tok(L, mo);
    int n;
    int32_t *ids = any_ids(L, mo, 2, &n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        push_token_str(L, tok, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_model_decode(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    lp_tokenizer *tok = need_tok(L, mo);
    lua_settop(L, 3); /* any_ids pushes scratch memory: keep slot 3 for the options */
    int n;
    int32_t *ids = any_ids(L, mo, 2, &n);
    static const char *const allowed[] = {"skip_special", NULL};
    lt_check_options(L, 3, "decode", allowed);
    int skip = lt_opt_bool(L, 3, "skip_special", 0);
    lp_error err = {0};
    char *s = lp_tokenizer_decode(tok, ids, (size_t)n, skip, &err);
    if (!s)
        return luaL_error(L, "decode: %s", err.msg);
    lt_defer *d = lt_defer_push(L, free, s);
    lua_pushstring(L, s);
    lt_defer_run(d);
    return 1;
}

static int l_model_to_single_token(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    int n;
    int32_t *ids = encode(L, mo, s, len, 0, &n);
    if (n != 1)
        return luaL_error(L, "'%s' is %d tokens, not one", s, n);
    lua_pushinteger(L, ids[0]);
    return 1;
}

/* ---- hooks ---- */

typedef struct hook_slot {
    lua_State *L;
    int fn_idx; /* absolute stack index of the Lua function in the calling frame */
} hook_slot;

/* The protected part of a hook call: args (function, slot, act, info) on the stack. */
static int hook_trampoline(lua_State *L)
{
    lp_tensor *act = lua_touserdata(L, 3);
    const lp_hook_info *info = lua_touserdata(L, 4);
    lt_borrow *b = lua_newuserdatauv(L, sizeof *b, 0); /* 5 */
    b->alive = 1;
    snprintf(b->dead, sizeof b->dead, "the activation of hook '%s' was used after the hook returned (clone it to keep it)",
             info->name);
    lua_pushvalue(L, 1);                                         /* the Lua function */
    lt_tensor_push_view(L, act, 5, &b->alive, b->dead);          /* t */
    lua_createtable(L, 0, 6);                                     /* ctx */
    lua_pushstring(L, info->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, info->layer);
    lua_setfield(L, -2, "layer");
    const char *kind = info->name;
    if (info->layer >= 0 && !strncmp(kind, "blocks.", 7)) {
        const char *p = strchr(kind + 7, '.');
        kind = p ? p + 1 : kind;
    }
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, info->n_pos);
    lua_setfield(L, -2, "n_pos");
    lua_pushinteger(L, info->pos_offset);
    lua_setfield(L, -2, "pos_offset");
    lua_pushinteger(L, info->n_batch);
    lua_setfield(L, -2, "n_batch");
    int st = lua_pcall(L, 2, 1, 0);
    if (st != LUA_OK) {
        b->alive = 0;
        return lua_error(L);
    }
    char msg[400];
    msg[0] = 0;
    if (!lua_isnil(L, -1)) {
        lt_tensor *r = luaL_testudata(L, -1, LT_TENSOR);
        if (!r) {
            snprintf(msg, sizeof msg, "a hook must return nil or a Tensor, not a %s", luaL_typename(L, -1));
        } else if (r->alive && !*r->alive) {
            snprintf(msg, sizeof msg, "%s", r->dead);
        } else if (r->t.data != act->data || memcmp(r->t.nb, act->nb, sizeof act->nb) ||
                   memcmp(r->t.ne, act->ne, sizeof act->ne) || r->t.ndim != act->ndim) {
            char a[128], c[128];
            lt_shape_str(&r->t, a, sizeof a);
            lt_shape_str(act, c, sizeof c);
            int same = r->t.ndim == act->ndim && !memcmp(r->t.ne, act->ne, (size_t)act->ndim * sizeof act->ne[0]);
            if (!same)
                snprintf(msg, sizeof msg, "the hook returned a tensor of shape %s for an activation of shape %s", a, c);
            else if (lt_copy_broadcast(act, &r->t, msg, sizeof msg))
                ;
            else
                msg[0] = 0;
        }
    }
    b->alive = 0;
    if (msg[0])
        return luaL_error(L, "%s", msg);
    return 0;
}

static int lua_hook_cb(lp_tensor *act, const lp_hook_info *info, void *user)
{
    hook_slot *h = user;
    lua_State *L = h->L;
    if (!lua_checkstack(L, 8))
        return lp_error_set(info->err, LP_ENOMEM, "hook '%s': Lua stack overflow", info->name);
    lua_pushcfunction(L, hook_trampoline);
    lua_pushvalue(L, h->fn_idx);
    lua_pushlightuserdata(L, h);
    lua_pushlightuserdata(L, act);
    lua_pushlightuserdata(L, (void *)info);
    if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        lp_error_set(info->err, LP_EINVAL, "hook '%s': %s", info->name, m ? m : "(error object is not a string)");
        lua_pop(L, 1);
        return LP_EINVAL;
    }
    return LP_OK;
}

static void hooks_free(void *h) { lp_hooks_free(h); }

/* Does pattern name at least one hook point of the model? */
static int matches_any(lp_model *m, const char *pat)
{
    char nm[96];
    for (int h = 0; h < lp_model_n_hook_points(m); h++) {
        lp_hook_kind k;
        int L;
        lp_model_hook_point(m, h, &k, &L);
        lp_hook_name(k, L, nm, sizeof nm);
        if (lp_hook_match(pat, nm))
            return 1;
    }
    return 0;
}

static void unknown_hook(lua_State *L, lp_model *m, const char *pat)
{
    const lp_config *c = lp_model_config(m);
    luaL_error(L,
               "hook '%s' matches no hook point of this %s model (%d blocks, 0-based; names look like "
               "blocks.0.hook_resid_pre, blocks.0.attn.hook_pattern; see m:hook_points())",
               pat, c->model_type, c->n_layers);
}

/* Build an lp_hooks from the table at idx ({[name_or_glob] = function}); the Lua functions
 * are copied onto the stack (their indices are recorded) and the list is freed by a
 * deferred box pushed on the stack. Returns NULL when idx is nil. */
static lp_hooks *build_hooks(lua_State *L, lt_model *mo, int idx, lt_defer **dout)
{
    *dout = NULL;
    if (idx == 0 || lua_isnoneornil(L, idx))
        return NULL;
    if (!lua_istable(L, idx))
        luaL_error(L, "option 'hooks' must be a table {[hook name or glob] = function(t, ctx) ... end}");
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "hooks: keys must be hook names or globs (strings), got %s", luaL_typename(L, -2));
        if (!lua_isfunction(L, -1))
            luaL_error(L, "hooks['%s'] must be a function, got %s", lua_tostring(L, -2), luaL_typename(L, -1));
        if (!matches_any(mo->m, lua_tostring(L, -2)))
            unknown_hook(L, mo->m, lua_tostring(L, -2));
        lua_pop(L, 1);
        n++;
    }
    if (n == 0)
        return NULL;
    hook_slot *slots = lt_scratch(L, (size_t)n * sizeof *slots);
    lp_hooks *h = lp_hooks_new();
    if (!h)
        luaL_error(L, "out of memory");
    *dout = lt_defer_push(L, hooks_free, h);
    luaL_checkstack(L, n + 4, "too many hooks");
    int k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        /* stack: key fn → leave fn in place as the slot's function, key on top for lua_next */
        lua_pushvalue(L, -2); /* key fn key */
        lua_remove(L, -3);    /* fn key */
        slots[k].L = L;
        slots[k].fn_idx = lua_gettop(L) - 1;
        lp_error err = {0};
        if (lp_hooks_add(h, lua_tostring(L, -1), lua_hook_cb, &slots[k], &err))
            luaL_error(L, "hooks: %s", err.msg);
        k++;
    }
    return h;
}

/* ---- run ---- */

static int should_abort(void *user)
{
    (void)user;
    return lt_interrupted;
}

/* Copies the residual stream at the stop layer into the output tensor. */
typedef struct capture {
    float *dst;
} capture;

static int capture_cb(lp_tensor *act, const lp_hook_info *info, void *user)
{
    (void)info;
    capture *c = user;
    lp_tensor_to_f32(act, c->dst);
    return 0;
}

static const char *const run_keys[] = {"hooks", "stop_at_layer", "last_only", "bos", NULL};
static const char *const cache_keys[] = {"hooks", "stop_at_layer", "last_only", "bos", "names", NULL};

static void cache_free_cb(void *c) { lp_cache_free(c); }

/* m:run(tokens [, opts]) / m:run_with_cache(tokens [, opts]) */
static int do_run(lua_State *L, int with_cache)
{
    lt_model *mo = lt_model_check(L, 1);
    if (lua_isnoneornil(L, 2))
        luaL_argerror(L, 2, "tokens expected (text, token ids, a batch of them, or a Tensor)");
    int opts = lua_isnoneornil(L, 3) ? 0 : 3;
    lt_check_options(L, 3, with_cache ? "run_with_cache" : "run", with_cache ? cache_keys : run_keys);
    lua_settop(L, 3);
    if (mo->busy)
        return luaL_error(L, "this model is already running (m:run called from inside one of its hooks?)");
    const lp_config *c = lp_model_config(mo->m);
    int last_only = lt_opt_bool(L, opts, "last_only", 0);
    lua_Integer stop = lt_opt_int(L, opts, "stop_at_layer", 0);
    if (stop < 0 || stop > c->n_layers)
        return luaL_error(L, "stop_at_layer %d is out of range 1..%d (0 or nil: run every block)", (int)stop,
                          c->n_layers);
    tokbatch tb = tokens_arg(L, mo, 2, bos_opt(L, opts));
    lt_defer *hd = NULL;
    int hooks_idx = 0;
    if (opts) {
        lua_getfield(L, opts, "hooks");
        hooks_idx = lua_gettop(L);
    }
    lp_hooks *hooks = build_hooks(L, mo, hooks_idx, &hd);
    /* output: logits, or the residual stream when stopping early */
    int64_t ne[3];
    int out_idx;
    capture cap = {0};
    if (stop > 0) {
        ne[0] = tb.B, ne[1] = tb.T, ne[2] = c->d_model;
        cap.dst = lt_tensor_new(L, 3, ne)->own;
        out_idx = lua_gettop(L);
        if (!hooks) {
            hooks = lp_hooks_new();
            if (!hooks)
                return luaL_error(L, "out of memory");
            hd = lt_defer_push(L, hooks_free, hooks);
        }
        char nm[96];
        lp_hook_name(LP_HOOK_RESID_POST, (int)stop - 1, nm, sizeof nm);
        lp_error e = {0};
        if (lp_hooks_add(hooks, nm, capture_cb, &cap, &e))
            return luaL_error(L, "%s", e.msg);
    } else if (last_only) {
        ne[0] = tb.B, ne[1] = c->d_vocab;
        lt_tensor_new(L, 2, ne);
        out_idx = lua_gettop(L);
    } else {
        ne[0] = tb.B, ne[1] = tb.T, ne[2] = c->d_vocab;
        lt_tensor_new(L, 3, ne);
        out_idx = lua_gettop(L);
    }
    lt_cache *lc = NULL;
    int cache_idx = 0;
    if (with_cache) {
        /* names: a list of names/globs, or one string; default everything */
        int n_pats = 0;
        const char **pats = NULL;
        if (opts && lua_getfield(L, opts, "names") != LUA_TNIL) {
            int ni = lua_gettop(L);
            if (lua_type(L, ni) == LUA_TSTRING) {
                pats = lt_scratch(L, sizeof *pats);
                pats[n_pats++] = lua_tostring(L, ni);
            } else if (lua_istable(L, ni)) {
                int n = (int)luaL_len(L, ni);
                pats = lt_scratch(L, (size_t)(n ? n : 1) * sizeof *pats);
                for (int i = 0; i < n; i++) {
                    if (lua_geti(L, ni, i + 1) != LUA_TSTRING)
                        luaL_error(L, "names: entry %d must be a hook name or glob", i + 1);
                    pats[n_pats++] = lua_tostring(L, -1);
                    lua_pop(L, 1); /* the string stays alive in the names table */
                }
                if (n == 0)
                    luaL_error(L, "names: empty list (omit it to cache everything)");
            } else {
                luaL_error(L, "option 'names' must be a list of hook names or globs");
            }
            for (int i = 0; i < n_pats; i++)
                if (!matches_any(mo->m, pats[i]))
                    unknown_hook(L, mo->m, pats[i]);
        }
        lp_cache *cc = lp_cache_new();
        if (!cc)
            return luaL_error(L, "out of memory");
        lt_defer *cd = lt_defer_push(L, cache_free_cb, cc);
        lp_error e = {0};
        if (lp_cache_set_filter(cc, pats, n_pats, &e))
            return luaL_error(L, "names: %s", e.msg);
        cd->p = NULL; /* the Cache object owns it from here */
        lc = lt_cache_push(L, cc);
        cache_idx = lua_gettop(L);
    }
    lt_tensor *out = lua_touserdata(L, out_idx);
    lp_run_opts ro = lp_run_opts_default();
    ro.logits = stop > 0 ? LP_LOGITS_NONE : last_only ? LP_LOGITS_LAST : LP_LOGITS_ALL;
    ro.logits_out = stop > 0 ? NULL : out->own;
    ro.hooks = hooks;
    ro.cache = lc ? lc->c : NULL;
    ro.stop_at_layer = (int)stop;
    ro.should_abort = should_abort;
    lp_batch b = {tb.tokens, tb.B, tb.T, tb.lengths};
    lp_error err = {0};
    mo->busy = 1;
    int rc = lp_model_run(mo->m, &b, &ro, &err);
    mo->busy = 0;
    lt_defer_run(hd);
    if (rc) {
        if (lc) {
            lp_cache_free(lc->c);
            lc->c = NULL;
            lc->alive = 0;
        }
        return luaL_error(L, "%s", err.msg[0] ? err.msg : lp_strerror(rc));
    }
    lua_pushvalue(L, out_idx);
    if (with_cache) {
        lua_pushvalue(L, cache_idx);
        return 2;
    }
    return 1;
}

static int l_model_run(lua_State *L) { return do_run(L, 0); }
static int l_model_run_with_cache(lua_State *L) { return do_run(L, 1); }

/* ---- generation ---- */

static int l_model_generate(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    static const char *const allowed[] = {"n", "temperature", "top_k", "seed", "hooks", "stop_at_eos", "bos", NULL};
    lt_check_options(L, 3, "generate", allowed);
    lua_settop(L, 3);
    int opts = lua_isnil(L, 3) ? 0 : 3;
    if (mo->busy)
        return luaL_error(L, "this model is already running (m:generate called from inside one of its hooks?)");
    lua_Integer n_new = lt_opt_int(L, opts, "n", 20);
    lua_Number temp = lt_opt_num(L, opts, "temperature", 0);
    lua_Integer top_k = lt_opt_int(L, opts, "top_k", 0);
    lua_Integer seed = lt_opt_int(L, opts, "seed", 0);
    int stop_eos = lt_opt_bool(L, opts, "stop_at_eos", 0);
    if (n_new < 0 || n_new > 1000000)
        luaL_error(L, "generate: n must be in 0..1000000");
    if (temp < 0)
        luaL_error(L, "generate: temperature must be >= 0");
    if (top_k < 0)
        luaL_error(L, "generate: top_k must be >= 0");
    int n;
    int32_t *prompt;
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 2, &len);
        prompt = encode(L, mo, s, len, bos_opt(L, opts), &n);
    } else if (lua_istable(L, 2) || lt_tensor_test(L, 2)) {
        prompt = ids_arg(L, mo, 2, &n);
    } else {
        return luaL_argerror(L, 2, "prompt must be text or token ids");
    }
    if (n == 0)
        return luaL_error(L, "generate: the prompt has no tokens");
    if (n + n_new > lp_model_config(mo->m)->n_ctx)
        return luaL_error(L, "generate: %d prompt + %d new tokens exceed the context of %d", n, (int)n_new,
                          lp_model_config(mo->m)->n_ctx);
    lt_defer *hd = NULL;
    int hooks_idx = 0;
    if (opts) {
        lua_getfield(L, opts, "hooks");
        hooks_idx = lua_gettop(L);
    }
    lp_hooks *hooks = build_hooks(L, mo, hooks_idx, &hd);
    int32_t *out = lt_scratch(L, (size_t)(n_new + 1) * sizeof *out);
    lp_gen_opts g = lp_gen_opts_default();
    g.n_new = (int)n_new;
    g.temperature = (float)temp;
    g.top_k = (int)top_k;
    g.seed = (uint64_t)seed;
    g.stop_at_eos = stop_eos;
    g.hooks = hooks;
    int n_out = 0;
    lp_error err = {0};
    mo->busy = 1;
    int rc = n_new ? lp_model_generate(mo->m, prompt, n, &g, out, &n_out, &err) : 0;
    mo->busy = 0;
    lt_defer_run(hd);
    if (rc)
        return luaL_error(L, "%s", err.msg[0] ? err.msg : lp_strerror(rc));
    lp_tokenizer *tok = lp_model_tokenizer(mo->m);
    if (tok) {
        char *s = lp_tokenizer_decode(tok, out, (size_t)n_out, 0, &err);
        if (!s)
            return luaL_error(L, "decode: %s", err.msg);
        lt_defer *d = lt_defer_push(L, free, s);
        lua_pushstring(L, s);
        lt_defer_run(d);
        lua_remove(L, -2);
    } else {
        lua_pushnil(L);
    }
    push_ids(L, out, n_out);
    return 2;
}

/* ---- weights, hook points ---- */

static int l_model_weight(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    lp_tensor t;
    lp_error err = {0};
    if (lp_model_weight(mo->m, name, &t, &err))
        return luaL_argerror(L, 2, err.msg);
    if (t.dtype != LP_F32)
        return luaL_error(L, "weight '%s' is not float32", name);
    lt_tensor_push_view(L, &t, 1, &mo->alive, "the model this weight belongs to was closed");
    return 1;
}

static int l_model_hook_points(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    int n = lp_model_n_hook_points(mo->m);
    lua_createtable(L, n, 0);
    char nm[96];
    for (int i = 0; i < n; i++) {
        lp_hook_kind k;
        int layer;
        lp_model_hook_point(mo->m, i, &k, &layer);
        lp_hook_name(k, layer, nm, sizeof nm);
        lua_pushstring(L, nm);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* m:hook_shape(name [, pos]) → shape table for a batch of one */
static int l_model_hook_shape(lua_State *L)
{
    lt_model *mo = lt_model_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    lua_Integer P = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, P >= 1, 3, "positions must be >= 1");
    lp_hook_kind k;
    int layer;
    if (lp_hook_parse(name, &k, &layer) || !matches_any(mo->m, name))
        unknown_hook(L, mo->m, name);
    int64_t ne[LP_MAX_DIMS];
    int nd = lp_model_hook_shape(mo->m, k, 1, (int)P, (int)P, ne);
    lua_createtable(L, nd, 0);
    for (int i = 0; i < nd; i++) {
        lua_pushinteger(L, ne[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"tokenize", l_model_tokenize},
    {"to_tokens", l_model_to_tokens},
    {"to_str_tokens", l_model_to_str_tokens},
    {"decode", l_model_decode},
    {"to_string", l_model_decode},
    {"to_single_token", l_model_to_single_token},
    {"run", l_model_run},
    {"run_with_cache", l_model_run_with_cache},
    {"generate", l_model_generate},
    {"weight", l_model_weight},
    {"hook_points", l_model_hook_points},
    {"hook_shape", l_model_hook_shape},
    {"close", l_model_close},
    {NULL, NULL}};

void lt_model_register(lua_State *L, int module_idx)
{
    luaL_newmetatable(L, LT_MODEL);
    int mt = lua_gettop(L);
    static const luaL_Reg meta[] = {
        {"__gc", l_model_gc}, {"__close", l_model_close}, {"__tostring", l_model_tostring}, {NULL, NULL}};
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, model_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, mt, "methods");
    lua_pushcclosure(L, l_model_index, 1);
    lua_setfield(L, mt, "__index");
    lua_settop(L, module_idx);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, module_idx, "load");
    lua_settop(L, module_idx);
}
