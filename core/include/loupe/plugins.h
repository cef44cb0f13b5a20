/* loupe — the plugin host: finding and loading method plugins, describing their methods,
 * and calling them. This is the host side used by the CLI (and later Lua and the UI);
 * plugin authors include loupe/plugin.h instead (docs/plugins.md).
 *
 * A registry loads plugin files (shared objects exporting loupe_plugin_abi and
 * loupe_plugin_init). A file that cannot be used leaves exactly one diagnostic line
 * naming the file and the problem, and the registry goes on with the others.
 *
 * Search path of lp_registry_load_default, in order: the build tree's plugin folder
 * (compiled in), the installed PREFIX/LIBDIR/loupe/plugins, then each folder of
 * $LOUPE_PLUGIN_PATH (colon-separated). Folders that do not exist are skipped; the
 * current directory is never searched implicitly. In each folder every "*.so" file is
 * loaded, and so is every "*.so" one level down (the build tree keeps one folder per
 * plugin). A plugin whose name is already loaded from another file is skipped with a
 * diagnostic (the first one found wins); the same file reached twice is loaded once.
 *
 * Ownership: the registry owns its plugins (dlclose'd by lp_registry_free), so every
 * string and descriptor it hands out lives as long as the registry. A call borrows the
 * registry and the model (both must outlive it) and owns its results: pointers from
 * lp_call_result_* stay valid until lp_call_free or the next lp_call_run. */
#ifndef LOUPE_PLUGINS_H
#define LOUPE_PLUGINS_H

#include <stdint.h>

#include "loupe/error.h"
#include "loupe/model.h"
#include "loupe/plugin.h"
#include "loupe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_registry lp_registry;

lp_registry *lp_registry_new(void);
void lp_registry_free(lp_registry *r);

/* Load from the default search path (above). Returns the number of plugins loaded. */
int lp_registry_load_default(lp_registry *r);
/* Load one file. 0 on success; on failure a negative LP_E* code, and one diagnostic
 * line is recorded (also copied into err, which may be NULL). */
int lp_registry_load_file(lp_registry *r, const char *path, lp_error *err);
/* Load every "*.so" in dir and one level of subfolders, in name order. Returns the
 * number loaded, or LP_ENOTFOUND when dir is not a folder (no diagnostic). */
int lp_registry_load_dir(lp_registry *r, const char *dir);

/* Folders lp_registry_load_default looked at, with whether each existed. */
int lp_registry_n_search_dirs(const lp_registry *r);
const char *lp_registry_search_dir(const lp_registry *r, int i, int *exists);

/* Diagnostics: one line each, "FILE: problem". */
int lp_registry_n_diagnostics(const lp_registry *r);
const char *lp_registry_diagnostic(const lp_registry *r, int i);

typedef struct lp_plugin_info {
    const char *name, *version, *summary;
    const char *path;  /* the file it was loaded from */
    uint32_t abi;      /* the loupe_plugin_abi it was built with */
    int first_method;  /* its methods are [first_method, first_method + n_methods) */
    int n_methods;
} lp_plugin_info;

typedef struct lp_method_info {
    const char *full_name; /* "plugin.method"                    */
    const char *plugin;    /* plugin name                        */
    const char *name;      /* method name                        */
    const char *summary, *help;
    const lp_param_desc *params;
    int n_params;
    uint32_t caps;         /* LP_CAP_*                           */
    int plugin_index;
} lp_method_info;

int lp_registry_n_plugins(const lp_registry *r);
int lp_registry_plugin(const lp_registry *r, int i, lp_plugin_info *out);
int lp_registry_n_methods(const lp_registry *r);
int lp_registry_method(const lp_registry *r, int i, lp_method_info *out);
/* Index of a method by full name, or -1. */
int lp_registry_find_method(const lp_registry *r, const char *full_name);

const char *lp_param_type_name(lp_param_type t); /* "int", "float", "bool", "string", "text", "hook" */

/* ---- calling a method ---- */

typedef enum lp_result_kind { LP_RESULT_SCALAR = 0, LP_RESULT_STRING, LP_RESULT_TENSOR, LP_RESULT_TABLE } lp_result_kind;

/* Progress: return non-zero to ask the method to stop (lp_call_run then returns
 * LP_ECANCELLED). */
typedef int (*lp_progress_fn)(void *user, double done, double total, const char *what);
typedef void (*lp_log_fn)(void *user, int level, const char *msg);

/* model may be NULL for methods that need none. Unknown method → LP_ENOTFOUND with
 * the list of methods in err. */
lp_call *lp_call_new(lp_registry *r, const char *full_name, lp_model *model, lp_error *err);
void lp_call_free(lp_call *c);
/* Set a parameter from its string form, parsed by the declared type (int, float,
 * bool: true/false/1/0/yes/no/on/off, string, text, hook). Unknown name → LP_ENOTFOUND
 * listing the valid ones; a bad value → LP_EINVAL. */
int lp_call_set_param(lp_call *c, const char *name, const char *value, lp_error *err);
/* Give an LP_PARAM_TEXT parameter as token ids instead of text (copied). */
int lp_call_set_param_tokens(lp_call *c, const char *name, const int32_t *ids, int n, lp_error *err);
/* BOS for LP_PARAM_TEXT parameters: -1 (default) the model's rule, 1 always, 0 never. */
void lp_call_set_add_bos(lp_call *c, int add_bos);
void lp_call_set_progress(lp_call *c, lp_progress_fn cb, void *user);
/* Messages a method logs (default: dropped). */
void lp_call_set_log(lp_call *c, lp_log_fn cb, void *user);
/* Check required parameters, tokenize text, check hook names against the model, and
 * run. Earlier results are discarded first; on failure no results are kept. */
int lp_call_run(lp_call *c, lp_error *err);

int lp_call_n_results(const lp_call *c);
int lp_call_find_result(const lp_call *c, const char *name); /* index or -1 */
lp_result_kind lp_call_result_kind(const lp_call *c, int i);
const char *lp_call_result_name(const lp_call *c, int i);
double lp_call_result_scalar(const lp_call *c, int i);
const char *lp_call_result_string(const lp_call *c, int i);
/* The tensor (f32, contiguous) and its axes string ("layer,pos"; "" when none). */
const lp_tensor *lp_call_result_tensor(const lp_call *c, int i, const char **axes);
int lp_call_table_n_cols(const lp_call *c, int i);
const char *lp_call_table_col(const lp_call *c, int i, int col);
int lp_call_table_n_rows(const lp_call *c, int i);
const lp_cell *lp_call_table_cell(const lp_call *c, int i, int row, int col);

#ifdef __cplusplus
}
#endif
#endif
