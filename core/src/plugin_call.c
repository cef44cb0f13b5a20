/* Calling plugin methods: parameters (parsed by declared type), the run (required
 * parameters, text tokenized with the model's BOS rule, hook names checked against the
 * model), results owned by the host, and the host table plugins see. */
#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

typedef struct param_val {
    const char *value; /* borrowed default or owned `owned`; NULL when unset */
    char *owned;
    int64_t iv;
    double fv;
    int32_t *tokens; /* LP_PARAM_TEXT */
    int n_tokens;
    int tokens_given; /* set through lp_call_set_param_tokens */
} param_val;

typedef struct result {
    lp_result_kind kind;
    char *name;
    double num;
    char *str;
    lp_tensor t;
    char *axes;
    char **cols;
    int n_cols;
    lp_cell *cells; /* [n_rows, n_cols], str owned */
    int n_rows, cap_rows;
} result;

struct lp_call {
    lp_registry *reg;
    int mi; /* method index: the registry may grow (and move its arrays) while a call lives */
    lp_model *model;
    param_val *pv;
    int add_bos;
    lp_progress_fn progress;
    void *progress_user;
    lp_log_fn log;
    void *log_user;
    int cancelled;
    int running;
    lp_error err;
    result *res;
    int n_res, cap_res;
};

#define METHOD(c) (&(c)->reg->methods[(c)->mi])

static void result_clear(result *r)
{
    free(r->name);
    free(r->str);
    free(r->t.data);
    free(r->axes);
    for (int i = 0; i < r->n_cols; i++)
        free(r->cols[i]);
    free(r->cols);
    for (int i = 0; i < r->n_rows * r->n_cols; i++)
        free((char *)r->cells[i].str);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

static void results_clear(lp_call *c)
{
    for (int i = 0; i < c->n_res; i++)
        result_clear(&c->res[i]);
    c->n_res = 0;
}

static void list_methods(const lp_registry *r, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < r->n_methods && k + 2 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", r->methods[i].full_name);
    if (r->n_methods == 0)
        snprintf(buf, cap, "none (see 'loupe plugins')");
}

lp_call *lp_call_new(lp_registry *r, const char *full_name, lp_model *model, lp_error *err)
{
    int i = lp_registry_find_method(r, full_name);
    if (i < 0) {
        char list[384];
        list_methods(r, list, sizeof list);
        lp_error_set(err, LP_ENOTFOUND, "no method '%s'; loaded methods: %s", full_name, list);
        return NULL;
    }
    lp_call *c = calloc(1, sizeof *c);
    if (!c) {
        lp_error_set(err, LP_ENOMEM, "out of memory");
        return NULL;
    }
    c->reg = r;
    c->mi = i;
    c->model = model;
    c->add_bos = -1;
    c->pv = calloc((size_t)METHOD(c)->d.n_params + 1, sizeof *c->pv);
    if (!c->pv) {
        free(c);
        lp_error_set(err, LP_ENOMEM, "out of memory");
        return NULL;
    }
    for (int k = 0; k < METHOD(c)->d.n_params; k++) {
        const lp_param_desc *pd = &METHOD(c)->d.params[k];
        c->pv[k].value = pd->default_value;
        if (pd->default_value) { /* checked at registration */
            char why[64];
            lpi_parse_param(pd->type, pd->default_value, &c->pv[k].iv, &c->pv[k].fv, why, sizeof why);
        }
    }
    return c;
}

void lp_call_free(lp_call *c)
{
    if (!c)
        return;
    results_clear(c);
    free(c->res);
    for (int k = 0; k < METHOD(c)->d.n_params; k++) {
        free(c->pv[k].owned);
        free(c->pv[k].tokens);
    }
    free(c->pv);
    free(c);
}

static int param_index(const lp_call *c, const char *name)
{
    for (int k = 0; k < METHOD(c)->d.n_params; k++)
        if (!strcmp(METHOD(c)->d.params[k].name, name))
            return k;
    return -1;
}

static int unknown_param(const lp_call *c, const char *name, lp_error *err)
{
    char list[384];
    size_t k = 0;
    list[0] = 0;
    for (int i = 0; i < METHOD(c)->d.n_params && k + 2 < sizeof list; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", METHOD(c)->d.params[i].name);
    return lp_error_set(err, LP_ENOTFOUND, "%s has no parameter '%s'; its parameters: %s", METHOD(c)->full_name, name,
                        METHOD(c)->d.n_params ? list : "none");
}

int lp_call_set_param(lp_call *c, const char *name, const char *value, lp_error *err)
{
    int k = param_index(c, name);
    if (k < 0)
        return unknown_param(c, name, err);
    const lp_param_desc *pd = &METHOD(c)->d.params[k];
    param_val *v = &c->pv[k];
    char why[320];
    int64_t iv;
    double fv;
    if (lpi_parse_param(pd->type, value, &iv, &fv, why, sizeof why))
        return lp_error_set(err, LP_EINVAL, "%s: parameter '%s' (%s): %s", METHOD(c)->full_name, name,
                            lp_param_type_name(pd->type), why);
    char *s = lpi_strdup(value);
    if (!s)
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    free(v->owned);
    free(v->tokens);
    v->tokens = NULL;
    v->n_tokens = 0;
    v->tokens_given = 0;
    v->owned = s;
    v->value = s;
    v->iv = iv;
    v->fv = fv;
    return LP_OK;
}

int lp_call_set_param_tokens(lp_call *c, const char *name, const int32_t *ids, int n, lp_error *err)
{
    int k = param_index(c, name);
    if (k < 0)
        return unknown_param(c, name, err);
    if (METHOD(c)->d.params[k].type != LP_PARAM_TEXT)
        return lp_error_set(err, LP_EINVAL, "%s: parameter '%s' is %s, not text; token ids cannot be given",
                            METHOD(c)->full_name, name, lp_param_type_name(METHOD(c)->d.params[k].type));
    if (n <= 0)
        return lp_error_set(err, LP_EINVAL, "%s: parameter '%s': no token ids given", METHOD(c)->full_name, name);
    param_val *v = &c->pv[k];
    size_t cap = (size_t)n * 12 + 1;
    int32_t *t = malloc((size_t)n * sizeof *t);
    char *s = malloc(cap);
    if (!t || !s) {
        free(t);
        free(s);
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    }
    memcpy(t, ids, (size_t)n * sizeof *t);
    size_t o = 0;
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s%d", i ? "," : "", (int)ids[i]);
    free(v->owned);
    free(v->tokens);
    v->owned = s;
    v->value = s;
    v->tokens = t;
    v->n_tokens = n;
    v->tokens_given = 1;
    return LP_OK;
}

void lp_call_set_add_bos(lp_call *c, int add_bos)
{
    c->add_bos = add_bos < 0 ? -1 : add_bos ? 1 : 0;
}

void lp_call_set_progress(lp_call *c, lp_progress_fn cb, void *user)
{
    c->progress = cb;
    c->progress_user = user;
}

void lp_call_set_log(lp_call *c, lp_log_fn cb, void *user)
{
    c->log = cb;
    c->log_user = user;
}

/* Required parameters, text → tokens, hook names against the model. */
static int prepare(lp_call *c, lp_error *err)
{
    const char *fn = METHOD(c)->full_name;
    for (int k = 0; k < METHOD(c)->d.n_params; k++) {
        const lp_param_desc *pd = &METHOD(c)->d.params[k];
        param_val *v = &c->pv[k];
        if (!v->value)
            return lp_error_set(err, LP_EINVAL, "%s: parameter '%s' (%s) is required", fn, pd->name,
                                lp_param_type_name(pd->type));
        if (pd->type == LP_PARAM_TEXT && !v->tokens_given) {
            free(v->tokens);
            v->tokens = NULL;
            v->n_tokens = 0;
            lp_tokenizer *tok = c->model ? lp_model_tokenizer(c->model) : NULL;
            if (!c->model)
                return lp_error_set(err, LP_EINVAL, "%s: parameter '%s' is text, and no model was given", fn, pd->name);
            if (!tok)
                return lp_error_set(err, LP_EINVAL,
                                    "%s: no tokenizer.json or vocab.json, so %s parameter '%s' cannot be tokenized; "
                                    "give token ids (%s:ids=1,2,3)",
                                    lp_model_dir(c->model), fn, pd->name, pd->name);
            size_t n = 0;
            int rc = lp_tokenizer_encode(tok, v->value, strlen(v->value), c->add_bos, &v->tokens, &n, err);
            if (rc)
                return lp_error_prefix(err, "%s: parameter '%s'", fn, pd->name), rc;
            if (n == 0)
                return lp_error_set(err, LP_EINVAL, "%s: parameter '%s': the text encodes to no tokens", fn, pd->name);
            v->n_tokens = (int)n;
        }
        if (pd->type == LP_PARAM_TEXT && c->model) {
            int d_vocab = lp_model_config(c->model)->d_vocab;
            for (int i = 0; i < v->n_tokens; i++)
                if (v->tokens[i] < 0 || v->tokens[i] >= d_vocab)
                    return lp_error_set(err, LP_EINVAL, "%s: parameter '%s': token id %d is outside the vocabulary (0..%d)",
                                        fn, pd->name, (int)v->tokens[i], d_vocab - 1);
        }
        if (pd->type == LP_PARAM_HOOK) {
            if (!c->model)
                return lp_error_set(err, LP_EINVAL, "%s: parameter '%s' names a hook point, and no model was given", fn,
                                    pd->name);
            int found = 0, n = lp_model_n_hook_points(c->model);
            for (int i = 0; i < n && !found; i++) {
                lp_hook_kind kind;
                int layer;
                char name[96];
                lp_model_hook_point(c->model, i, &kind, &layer);
                lp_hook_name(kind, layer, name, sizeof name);
                found = lp_hook_match(v->value, name);
            }
            if (!found)
                return lp_error_set(err, LP_ENOTFOUND,
                                    "%s: parameter '%s': '%s' matches no hook point of %s (see 'loupe hooks')", fn,
                                    pd->name, v->value, lp_model_dir(c->model));
        }
    }
    return LP_OK;
}

int lp_call_run(lp_call *c, lp_error *err)
{
    results_clear(c);
    lp_error_clear(&c->err);
    c->cancelled = 0;
    int rc = prepare(c, err);
    if (rc)
        return rc;
    c->running = 1;
    rc = METHOD(c)->d.run(c, &lpi_host_api);
    c->running = 0;
    if (rc > 0)
        rc = LP_EINVAL;
    if (!rc && c->cancelled)
        rc = LP_ECANCELLED;
    if (rc) {
        results_clear(c);
        if (c->err.msg[0])
            lp_error_set(err, rc, "%s: %s", METHOD(c)->full_name, c->err.msg);
        else if (rc == LP_ECANCELLED)
            lp_error_set(err, rc, "%s: cancelled", METHOD(c)->full_name);
        else
            lp_error_set(err, rc, "%s failed: %s", METHOD(c)->full_name, lp_strerror(rc));
    }
    return rc;
}

/* ---- results, caller side ---- */

int lp_call_n_results(const lp_call *c)
{
    return c->n_res;
}

int lp_call_find_result(const lp_call *c, const char *name)
{
    for (int i = 0; i < c->n_res; i++)
        if (!strcmp(c->res[i].name, name))
            return i;
    return -1;
}

static const result *res_at(const lp_call *c, int i)
{
    return i >= 0 && i < c->n_res ? &c->res[i] : NULL;
}

lp_result_kind lp_call_result_kind(const lp_call *c, int i)
{
    const result *r = res_at(c, i);
    return r ? r->kind : LP_RESULT_SCALAR;
}

const char *lp_call_result_name(const lp_call *c, int i)
{
    const result *r = res_at(c, i);
    return r ? r->name : NULL;
}

double lp_call_result_scalar(const lp_call *c, int i)
{
    const result *r = res_at(c, i);
    return r && r->kind == LP_RESULT_SCALAR ? r->num : 0.0;
}

const char *lp_call_result_string(const lp_call *c, int i)
{
    const result *r = res_at(c, i);
    return r && r->kind == LP_RESULT_STRING ? r->str : NULL;
}

const lp_tensor *lp_call_result_tensor(const lp_call *c, int i, const char **axes)
{
    const result *r = res_at(c, i);
    if (!r || r->kind != LP_RESULT_TENSOR)
        return NULL;
    if (axes)
        *axes = r->axes ? r->axes : "";
    return &r->t;
}

int lp_call_table_n_cols(const lp_call *c, int i)
{
    const result *r = res_at(c, i);
    return r && r->kind == LP_RESULT_TABLE ? r->n_cols : 0;
}

const char *lp_call_table_col(const lp_call *c, int i, int col)
{
    const result *r = res_at(c, i);
    return r && r->kind == LP_RESULT_TABLE && col >= 0 && col < r->n_cols ? r->cols[col] : NULL;
}

int lp_call_table_n_rows(const lp_call *c, int i)
{
    const result *r = res_at(c, i);
    return r && r->kind == LP_RESULT_TABLE ? r->n_rows : 0;
}

const lp_cell *lp_call_table_cell(const lp_call *c, int i, int row, int col)
{
    const result *r = res_at(c, i);
    if (!r || r->kind != LP_RESULT_TABLE || row < 0 || row >= r->n_rows || col < 0 || col >= r->n_cols)
        return NULL;
    return &r->cells[(size_t)row * r->n_cols + col];
}

/* ---- the host table: what a method sees ---- */

static void h_log(lp_call *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void h_log(lp_call *c, int level, const char *fmt, ...)
{
    if (!c || !c->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->log(c->log_user, level, msg);
}

static int h_error(lp_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int h_error(lp_call *c, int code, const char *fmt, ...)
{
    if (code >= 0)
        code = LP_EINVAL;
    if (!c)
        return code;
    va_list ap;
    va_start(ap, fmt);
    lp_error_setv(&c->err, code, fmt, ap);
    va_end(ap);
    for (char *s = c->err.msg; *s; s++)
        if (*s == '\n')
            *s = ' ';
    return code;
}

static lp_model *h_call_model(lp_call *c)
{
    return c ? c->model : NULL;
}

/* The parameter a method asks for, with a warning to the log when it names none of its
 * own or asks with the wrong type (a plugin bug). */
static param_val *get_param(lp_call *c, const char *name, int want, const char *as)
{
    if (!c || !name)
        return NULL;
    int k = param_index(c, name);
    if (k < 0) {
        h_log(c, LP_LOG_WARN, "%s asked for undeclared parameter '%s'", METHOD(c)->full_name, name);
        return NULL;
    }
    int t = METHOD(c)->d.params[k].type;
    if (want >= 0 && t != want && !(want == LP_PARAM_FLOAT && t == LP_PARAM_INT) &&
        !(want == LP_PARAM_INT && t == LP_PARAM_BOOL)) {
        h_log(c, LP_LOG_WARN, "%s read %s parameter '%s' as %s", METHOD(c)->full_name, lp_param_type_name(t), name, as);
        return NULL;
    }
    return &c->pv[k];
}

static int64_t h_param_int(lp_call *c, const char *name)
{
    param_val *v = get_param(c, name, LP_PARAM_INT, "int");
    return v ? v->iv : 0;
}

static double h_param_float(lp_call *c, const char *name)
{
    param_val *v = get_param(c, name, LP_PARAM_FLOAT, "float");
    return v ? v->fv : 0.0;
}

static int h_param_bool(lp_call *c, const char *name)
{
    param_val *v = get_param(c, name, LP_PARAM_BOOL, "bool");
    return v ? v->iv != 0 : 0;
}

static const char *h_param_str(lp_call *c, const char *name)
{
    param_val *v = get_param(c, name, -1, "string");
    return v ? v->value : NULL;
}

static const int32_t *h_param_tokens(lp_call *c, const char *name, int *n)
{
    param_val *v = get_param(c, name, LP_PARAM_TEXT, "tokens");
    if (n)
        *n = v ? v->n_tokens : 0;
    return v ? v->tokens : NULL;
}

static int h_progress(lp_call *c, double done, double total, const char *what)
{
    if (!c)
        return 0;
    if (!c->cancelled && c->progress && c->progress(c->progress_user, done, total, what ? what : ""))
        c->cancelled = 1;
    return c->cancelled;
}

static result *new_result(lp_call *c, const char *name, lp_result_kind kind)
{
    if (!c || !c->running || !name || !*name)
        return NULL;
    if (lp_call_find_result(c, name) >= 0) {
        h_error(c, LP_EINVAL, "result '%s' was written twice", name);
        return NULL;
    }
    if (c->n_res == c->cap_res) {
        int nc = c->cap_res ? c->cap_res * 2 : 8;
        result *nr = realloc(c->res, (size_t)nc * sizeof *nr);
        if (!nr)
            return NULL;
        c->res = nr;
        c->cap_res = nc;
    }
    result *r = &c->res[c->n_res];
    memset(r, 0, sizeof *r);
    if (!(r->name = lpi_strdup(name)))
        return NULL;
    r->kind = kind;
    c->n_res++;
    return r;
}

static int h_result_scalar(lp_call *c, const char *name, double value)
{
    result *r = new_result(c, name, LP_RESULT_SCALAR);
    if (!r)
        return LP_EINVAL;
    r->num = value;
    return LP_OK;
}

static int h_result_string(lp_call *c, const char *name, const char *value)
{
    result *r = new_result(c, name, LP_RESULT_STRING);
    if (!r)
        return LP_EINVAL;
    r->str = lpi_strdup(value ? value : "");
    return r->str ? LP_OK : LP_ENOMEM;
}

static lp_tensor h_result_tensor(lp_call *c, const char *name, int ndim, const int64_t *ne, const char *axes)
{
    lp_tensor t;
    memset(&t, 0, sizeof t);
    if (ndim < 1 || ndim > LP_MAX_DIMS || !ne) {
        h_error(c, LP_EINVAL, "result tensor '%s': ndim %d is outside 1..%d", name ? name : "?", ndim, LP_MAX_DIMS);
        return t;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (ne[i] < 0 || (ne[i] > 0 && n > ((int64_t)1 << 40) / ne[i])) {
            h_error(c, LP_EINVAL, "result tensor '%s': bad size %lld on axis %d", name ? name : "?", (long long)ne[i], i);
            return t;
        }
        n *= ne[i];
    }
    float *data = lpi_aligned_alloc((size_t)n * sizeof(float));
    if (!data)
        return t;
    memset(data, 0, (size_t)n * sizeof(float));
    result *r = new_result(c, name, LP_RESULT_TENSOR);
    if (!r || (axes && !(r->axes = lpi_strdup(axes)))) {
        free(data);
        return t;
    }
    r->t = lp_tensor_make(LP_F32, data, ndim, ne);
    return r->t;
}

static int h_result_table(lp_call *c, const char *name, int n_cols, const char *const *cols)
{
    if (n_cols < 1 || n_cols > 256 || !cols)
        return h_error(c, LP_EINVAL, "result table '%s': %d columns", name ? name : "?", n_cols);
    result *r = new_result(c, name, LP_RESULT_TABLE);
    if (!r)
        return LP_EINVAL;
    r->cols = calloc((size_t)n_cols, sizeof *r->cols);
    if (!r->cols)
        return LP_ENOMEM;
    r->n_cols = n_cols;
    for (int i = 0; i < n_cols; i++)
        if (!(r->cols[i] = lpi_strdup(cols[i] ? cols[i] : "")))
            return LP_ENOMEM;
    return c->n_res - 1;
}

static int h_table_row(lp_call *c, int table, const lp_cell *cells)
{
    if (!c || table < 0 || table >= c->n_res || c->res[table].kind != LP_RESULT_TABLE || !cells)
        return h_error(c, LP_EINVAL, "table_row: %d is not a table of this call", table);
    result *r = &c->res[table];
    if (r->n_rows == r->cap_rows) {
        int nc = r->cap_rows ? r->cap_rows * 2 : 16;
        lp_cell *ncells = realloc(r->cells, (size_t)nc * r->n_cols * sizeof *ncells);
        if (!ncells)
            return LP_ENOMEM;
        r->cells = ncells;
        r->cap_rows = nc;
    }
    lp_cell *row = &r->cells[(size_t)r->n_rows * r->n_cols];
    for (int i = 0; i < r->n_cols; i++) {
        row[i].is_num = cells[i].is_num != 0;
        row[i].num = cells[i].is_num ? cells[i].num : 0;
        row[i].str = NULL;
        if (!cells[i].is_num && !(row[i].str = lpi_strdup(cells[i].str ? cells[i].str : ""))) {
            for (int j = 0; j < i; j++)
                free((char *)row[j].str);
            return LP_ENOMEM;
        }
    }
    r->n_rows++;
    return LP_OK;
}

static int h_token_bytes(const lp_model *m, int32_t id, char *buf, size_t cap)
{
    lp_tokenizer *tok = m ? lp_model_tokenizer(m) : NULL;
    if (!tok)
        return LP_ENOTFOUND;
    return lp_tokenizer_token_bytes(tok, id, buf, cap);
}

static int h_tokenize(const lp_model *m, const char *text, int add_bos, int32_t **ids, int *n, lp_error *err)
{
    *ids = NULL;
    *n = 0;
    lp_tokenizer *tok = m ? lp_model_tokenizer(m) : NULL;
    if (!tok)
        return lp_error_set(err, LP_ENOTFOUND, "%s: the model has no tokenizer", m ? lp_model_dir(m) : "(no model)");
    size_t nn = 0;
    int rc = lp_tokenizer_encode(tok, text, strlen(text), add_bos, ids, &nn, err);
    if (!rc)
        *n = (int)nn;
    return rc;
}

static void *h_alloc(size_t bytes)
{
    return lpi_aligned_alloc(bytes);
}

static void h_free(void *p)
{
    free(p);
}

static void h_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

const lp_host_api lpi_host_api = {
    .struct_size = sizeof(lp_host_api),
    .abi_version = LP_PLUGIN_ABI_VERSION,
    .set_info = lpi_plugin_set_info,
    .register_method = lpi_plugin_register_method,
    .call_model = h_call_model,
    .param_int = h_param_int,
    .param_float = h_param_float,
    .param_bool = h_param_bool,
    .param_str = h_param_str,
    .param_tokens = h_param_tokens,
    .error = h_error,
    .log = h_log,
    .progress = h_progress,
    .result_scalar = h_result_scalar,
    .result_string = h_result_string,
    .result_tensor = h_result_tensor,
    .result_table = h_result_table,
    .table_row = h_table_row,
    .model_config = lp_model_config,
    .model_weight = lp_model_weight,
    .model_run = lp_model_run,
    .model_n_hook_points = lp_model_n_hook_points,
    .model_hook_point = lp_model_hook_point,
    .model_ln_final = lp_model_ln_final,
    .model_unembed = lp_model_unembed,
    .token_bytes = h_token_bytes,
    .tokenize = h_tokenize,
    .hook_name = lp_hook_name,
    .hook_match = lp_hook_match,
    .hooks_new = lp_hooks_new,
    .hooks_free = lp_hooks_free,
    .hooks_add = lp_hooks_add,
    .cache_new = lp_cache_new,
    .cache_free = lp_cache_free,
    .cache_set_filter = lp_cache_set_filter,
    .cache_reset = lp_cache_reset,
    .cache_find = lp_cache_find,
    .cache_entry = lp_cache_entry,
    .alloc = h_alloc,
    .free = h_free,
    .sgemm = h_sgemm,
    .model_threads = lp_model_threads,
    .parallel = lp_model_parallel,
    .model_unembed_slice = lp_model_unembed_slice,
};
