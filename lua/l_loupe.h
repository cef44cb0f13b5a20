/* loupe — the Lua 5.4 binding: private header shared by the lua/ sources.
 *
 * Userdata types, one metatable each: "loupe.Tensor", "loupe.Model", "loupe.Cache",
 * "loupe.Progress", plus internal ones (registry, scratch, borrow guards).
 *
 * Lifetimes. A Tensor either owns its float buffer (own != NULL) or is a view. A view's
 * user value 1 is the object that owns the memory (an owning Tensor, a Model for weight
 * views, a Cache for cache entries, a Borrow guard for hook activations), so the storage
 * never dies before the view. Objects that can be closed early (Model, Cache) or whose
 * memory is only lent for a call (hook activations) expose an `alive` flag; views keep a
 * pointer to it (it lives inside the userdata their user value keeps alive) and every
 * access checks it, so a stale view raises a clear error instead of reading freed memory.
 *
 * Errors: misuse raises (luaL_argerror / luaL_error); environmental failures (files,
 * models that cannot be loaded) return nil, message. C temporaries are allocated as Lua
 * userdata (lt_scratch) so raising never leaks them. Lua functions called from inside the
 * core (hooks) run under lua_pcall; their errors come back as a negative code. */
#ifndef LOUPE_L_LOUPE_H
#define LOUPE_L_LOUPE_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "loupe/loupe.h"
#include "loupe/plugins.h"

#define LT_TENSOR "loupe.Tensor"
#define LT_MODEL "loupe.Model"
#define LT_CACHE "loupe.Cache"
#define LT_PROGRESS "loupe.Progress"
#define LT_REGISTRY "loupe.Registry"
#define LT_BORROW "loupe.Borrow"
#define LT_SCRATCH "loupe.Scratch"
#define LT_DEFER "loupe.Defer"

/* A Tensor: always float32 (token ids are stored as exact floats). */
typedef struct lt_tensor {
    lp_tensor t;       /* f32 view; ndim 0 .. LP_MAX_DIMS                              */
    float *own;        /* owned buffer (freed by __gc) or NULL for views               */
    const int *alive;  /* NULL: always valid; else valid while *alive                  */
    const char *dead;  /* what to say when !*alive                                     */
} lt_tensor;

/* Guard for memory lent for one call (a hook's activation). */
typedef struct lt_borrow {
    int alive;
    char dead[160];    /* the message a stale view raises                              */
} lt_borrow;

typedef struct lt_model {
    lp_model *m;       /* NULL once closed                                             */
    int alive;
    int busy;          /* inside run/generate: a hook may not re-enter the model       */
    int borrowed;      /* lent by the embedding program (the UI): never freed here     */
} lt_model;

typedef struct lt_cache {
    lp_cache *c;       /* NULL once closed                                             */
    int alive;
} lt_cache;

/* ---- tensors (l_tensor.c) ---- */
void lt_tensor_register(lua_State *L, int module_idx);
/* New owning contiguous tensor (zero-filled), pushed on the stack. Raises on OOM. */
lt_tensor *lt_tensor_new(lua_State *L, int ndim, const int64_t *ne);
/* Push a view of `v` whose memory is owned by the object at owner_idx (a Tensor, Model,
 * Cache or Borrow); alive/dead as in lt_tensor. */
lt_tensor *lt_tensor_push_view(lua_State *L, const lp_tensor *v, int owner_idx, const int *alive, const char *dead);
/* Check argument idx is a live Tensor (raises otherwise). */
lt_tensor *lt_tensor_check(lua_State *L, int idx);
lt_tensor *lt_tensor_test(lua_State *L, int idx); /* NULL if not a tensor; raises if stale */
/* Copy src into dst with broadcasting (shape-checked); 0 or -1 with msg. */
int lt_copy_broadcast(const lp_tensor *dst, const lp_tensor *src, char *msg, size_t cap);
/* Contiguous float copy of t (Lua-owned scratch; pushed on the stack). */
float *lt_tensor_contig(lua_State *L, const lp_tensor *t);
void lt_shape_str(const lp_tensor *t, char *buf, size_t cap);

/* ---- models, caches (l_model.c, l_cache.c) ---- */
void lt_model_register(lua_State *L, int module_idx);
lt_model *lt_model_check(lua_State *L, int idx); /* open Model or raise */
/* Push a Model userdata for a model owned by the caller (the UI's console): close and __gc
 * leave it alone; the caller keeps it alive as long as the state. */
lt_model *lt_model_push_borrowed(lua_State *L, lp_model *m);
void lt_cache_register(lua_State *L, int module_idx);
/* Push a new Cache userdata owning c. */
lt_cache *lt_cache_push(lua_State *L, lp_cache *c);

/* ---- plugins, utilities (l_plugins.c, l_util.c) ---- */
void lt_plugins_register(lua_State *L, int module_idx);
void lt_util_register(lua_State *L, int module_idx);
/* Make loupe.plugins use a registry owned by the caller (not freed by the state) instead of
 * loading the default one on first use. Call before any plugin function runs. */
void lt_plugins_use_registry(lua_State *L, lp_registry *r);

/* ---- shared helpers (loupe_lua.c) ---- */
/* Lua-owned scratch memory: a userdata of `bytes` bytes pushed on the stack (collected
 * with the stack frame, so raising never leaks it). */
void *lt_scratch(lua_State *L, size_t bytes);
/* Run fn(p) when the returned box is collected (if an error unwinds the frame) or now
 * with lt_defer_run: how C resources survive a raise without leaking. */
typedef struct lt_defer {
    void (*fn)(void *);
    void *p;
} lt_defer;
lt_defer *lt_defer_push(lua_State *L, void (*fn)(void *), void *p);
void lt_defer_run(lt_defer *d);
/* Raise if the table at idx has a string key not in `allowed` (NULL-terminated). */
void lt_check_options(lua_State *L, int idx, const char *what, const char *const *allowed);
/* Optional fields of an options table (idx may be 0/none: returns def). */
lua_Integer lt_opt_int(lua_State *L, int idx, const char *key, lua_Integer def);
lua_Number lt_opt_num(lua_State *L, int idx, const char *key, lua_Number def);
int lt_opt_bool(lua_State *L, int idx, const char *key, int def);
/* Set by 'loupe run' on SIGINT; polled by long operations. */
extern volatile int lt_interrupted;
/* Whether stderr gets colour / a progress bar (never while lt_no_tty is set: the UI owns
 * the terminal). */
extern int lt_no_tty;
int lt_stderr_tty(void);
/* Method-table helper: a metatable `tname` with __index = methods table. */
void lt_new_type(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods);

int luaopen_loupe(lua_State *L);

#endif
