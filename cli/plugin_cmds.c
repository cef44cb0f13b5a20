/* loupe plugins / loupe call: list method plugins and run their methods. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "loupe/plugins.h"

static const char plugins_help[] =
    "usage: loupe plugins [--json]\n"
    "Method plugins found on the search path (the build tree, PREFIX/LIBDIR/loupe/plugins,\n"
    "then each folder of $LOUPE_PLUGIN_PATH), with versions and methods. Files that could\n"
    "not be used are reported on stderr, one line each (the exit status stays 0).\n";

static void print_diagnostics(const lp_registry *r)
{
    int col = cli_color(stderr);
    for (int i = 0; i < lp_registry_n_diagnostics(r); i++)
        fprintf(stderr, "%sloupe: warning:%s %s\n", col ? "\033[1;33m" : "", col ? "\033[0m" : "",
                lp_registry_diagnostic(r, i));
}

static const char *caps_str(uint32_t caps, char *buf, size_t cap)
{
    static const char *const names[] = {"reads-activations", "writes-activations", "trains", "writes-files"};
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < 4; i++)
        if (caps & (1u << i))
            k += (size_t)snprintf(buf + k, cap - k, "%s%s", k ? "," : "", names[i]);
    return buf;
}

static cJSON *params_json(const lp_method_info *mi)
{
    cJSON *a = cJSON_CreateArray();
    for (int p = 0; p < mi->n_params; p++) {
        const lp_param_desc *pd = &mi->params[p];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", pd->name);
        cJSON_AddStringToObject(o, "type", lp_param_type_name(pd->type));
        if (pd->default_value)
            cJSON_AddStringToObject(o, "default", pd->default_value);
        else
            cJSON_AddBoolToObject(o, "required", 1);
        cJSON_AddStringToObject(o, "help", pd->help ? pd->help : "");
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

int cmd_plugins(int argc, char **argv)
{
    const char *pos[1];
    int json = 0, n_pos, help;
    cli_opt opts[] = {{"--json", 0, 0, NULL, &json}, {0}};
    int rc = cli_parse(argc, argv, opts, pos, 0, &n_pos, plugins_help, &help);
    if (rc || help)
        return rc;
    lp_registry *r = lp_registry_new();
    if (!r)
        return cli_error("out of memory");
    lp_registry_load_default(r);
    char caps[128];
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *dirs = cJSON_AddArrayToObject(j, "search_path");
        for (int i = 0; i < lp_registry_n_search_dirs(r); i++) {
            int ex;
            const char *d = lp_registry_search_dir(r, i, &ex);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "dir", d);
            cJSON_AddBoolToObject(o, "exists", ex);
            cJSON_AddItemToArray(dirs, o);
        }
        cJSON *pl = cJSON_AddArrayToObject(j, "plugins");
        for (int i = 0; i < lp_registry_n_plugins(r); i++) {
            lp_plugin_info pi;
            lp_registry_plugin(r, i, &pi);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", pi.name);
            cJSON_AddStringToObject(o, "version", pi.version);
            cJSON_AddStringToObject(o, "summary", pi.summary);
            cJSON_AddStringToObject(o, "path", pi.path);
            char abi[32];
            snprintf(abi, sizeof abi, "%u.%u", pi.abi >> 16, pi.abi & 0xffff);
            cJSON_AddStringToObject(o, "abi", abi);
            cJSON *ms = cJSON_AddArrayToObject(o, "methods");
            for (int k = pi.first_method; k < pi.first_method + pi.n_methods; k++) {
                lp_method_info mi;
                lp_registry_method(r, k, &mi);
                cJSON *mo = cJSON_CreateObject();
                cJSON_AddStringToObject(mo, "name", mi.full_name);
                cJSON_AddStringToObject(mo, "summary", mi.summary);
                cJSON_AddStringToObject(mo, "caps", caps_str(mi.caps, caps, sizeof caps));
                cJSON_AddItemToObject(mo, "params", params_json(&mi));
                cJSON_AddItemToArray(ms, mo);
            }
            cJSON_AddItemToArray(pl, o);
        }
        cJSON *dg = cJSON_AddArrayToObject(j, "diagnostics");
        for (int i = 0; i < lp_registry_n_diagnostics(r); i++)
            cJSON_AddItemToArray(dg, cJSON_CreateString(lp_registry_diagnostic(r, i)));
        char *s = cJSON_Print(j);
        puts(s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("search path:\n");
        for (int i = 0; i < lp_registry_n_search_dirs(r); i++) {
            int ex;
            const char *d = lp_registry_search_dir(r, i, &ex);
            printf("  %s%s\n", d, ex ? "" : "  (absent)");
        }
        if (lp_registry_n_plugins(r) == 0)
            printf("\nno plugins found\n");
        for (int i = 0; i < lp_registry_n_plugins(r); i++) {
            lp_plugin_info pi;
            lp_registry_plugin(r, i, &pi);
            printf("\n%s %s  (ABI %u.%u)  %s\n  %s\n", pi.name, pi.version, pi.abi >> 16, pi.abi & 0xffff, pi.path,
                   pi.summary);
            for (int k = pi.first_method; k < pi.first_method + pi.n_methods; k++) {
                lp_method_info mi;
                lp_registry_method(r, k, &mi);
                printf("  %-24s %s\n", mi.full_name, mi.summary);
                printf("  %-24s params:", "");
                for (int p = 0; p < mi.n_params; p++)
                    printf(" %s%s", mi.params[p].name, mi.params[p].default_value ? "" : "*");
                if (mi.caps)
                    printf("  [%s]", caps_str(mi.caps, caps, sizeof caps));
                printf("\n");
            }
        }
    }
    print_diagnostics(r);
    lp_registry_free(r);
    return EXIT_OK;
}

/* ---------------- loupe call ---------------- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct progress_state {
    int bar; /* draw a bar (stderr is a terminal) */
    int drawn;
} progress_state;

static int on_progress(void *user, double done, double total, const char *what)
{
    progress_state *ps = user;
    if (ps->bar && total > 0) {
        double f = done / total;
        if (f < 0)
            f = 0;
        if (f > 1)
            f = 1;
        int w = 30, fill = (int)(f * w + 0.5);
        char bar[64];
        for (int i = 0; i < w; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        int col = cli_color(stderr);
        fprintf(stderr, "\r%s[%s]%s %3.0f%% %s (%g/%g)\033[K", col ? "\033[36m" : "", bar, col ? "\033[0m" : "",
                f * 100, what, done, total);
        fflush(stderr);
        ps->drawn = 1;
    }
    return interrupted != 0;
}

static void on_log(void *user, int level, const char *msg)
{
    (void)user;
    if (level >= LP_LOG_WARN)
        fprintf(stderr, "loupe: warning: %s\n", msg);
    else if (level == LP_LOG_INFO)
        fprintf(stderr, "loupe: %s\n", msg);
}

static void method_help(const lp_method_info *mi)
{
    printf("usage: loupe call %s [MODEL] [key=value ...] [--json] [--bos|--no-bos]\n", mi->full_name);
    printf("%s\n\n", mi->summary);
    if (mi->help && *mi->help)
        printf("%s%s\n", mi->help, mi->help[strlen(mi->help) - 1] == '\n' ? "" : "\n");
    size_t wn = 4, wt = 4, wd = 7;
    for (int p = 0; p < mi->n_params; p++) {
        const lp_param_desc *pd = &mi->params[p];
        size_t a = strlen(pd->name), b = strlen(lp_param_type_name(pd->type)),
               c = pd->default_value ? strlen(pd->default_value) + 2 : 10;
        wn = a > wn ? a : wn;
        wt = b > wt ? b : wt;
        wd = c > wd ? c : wd;
    }
    printf("Parameters:\n  %-*s  %-*s  %-*s  %s\n", (int)wn, "name", (int)wt, "type", (int)wd, "default", "help");
    for (int p = 0; p < mi->n_params; p++) {
        const lp_param_desc *pd = &mi->params[p];
        char def[256];
        if (pd->default_value)
            snprintf(def, sizeof def, "\"%s\"", pd->default_value);
        else
            snprintf(def, sizeof def, "(required)");
        printf("  %-*s  %-*s  %-*s  %s\n", (int)wn, pd->name, (int)wt, lp_param_type_name(pd->type), (int)wd, def,
               pd->help ? pd->help : "");
    }
    printf("\nText parameters take token ids as NAME:ids=1,2,3. MODEL defaults to '" DEFAULT_MODEL "'.\n");
}

static const char call_help[] =
    "usage: loupe call PLUGIN.METHOD [MODEL] [key=value ...] [--json] [--bos|--no-bos]\n"
    "Run a plugin method. An argument with '=' is a parameter (text parameters also take\n"
    "token ids as NAME:ids=1,2,3); MODEL defaults to the bundled '" DEFAULT_MODEL "' model.\n"
    "'loupe call PLUGIN.METHOD --help' shows a method's help and parameters; 'loupe plugins'\n"
    "lists the methods. Ctrl-C cancels (exit 130).\n";

static void fmt_num(double v, char *buf, size_t cap)
{
    if (v == (double)(long long)v && v > -1e15 && v < 1e15)
        snprintf(buf, cap, "%lld", (long long)v);
    else
        snprintf(buf, cap, "%.6g", v);
}

static void print_table(const lp_call *c, int i)
{
    int nc = lp_call_table_n_cols(c, i), nr = lp_call_table_n_rows(c, i);
    int *w = calloc((size_t)nc, sizeof *w);
    int *num = calloc((size_t)nc, sizeof *num);
    char buf[64];
    for (int k = 0; k < nc; k++) {
        w[k] = (int)strlen(lp_call_table_col(c, i, k));
        num[k] = 1;
    }
    for (int r = 0; r < nr; r++)
        for (int k = 0; k < nc; k++) {
            const lp_cell *cl = lp_call_table_cell(c, i, r, k);
            const char *s = cl->str;
            if (cl->is_num) {
                fmt_num(cl->num, buf, sizeof buf);
                s = buf;
            } else {
                num[k] = 0;
            }
            int l = (int)strlen(s) + (cl->is_num ? 0 : 2);
            if (l > w[k])
                w[k] = l;
        }
    printf("%s:\n ", lp_call_result_name(c, i));
    for (int k = 0; k < nc; k++)
        printf(" %*s", num[k] ? w[k] : -w[k], lp_call_table_col(c, i, k));
    printf("\n");
    for (int r = 0; r < nr; r++) {
        printf(" ");
        for (int k = 0; k < nc; k++) {
            const lp_cell *cl = lp_call_table_cell(c, i, r, k);
            if (cl->is_num) {
                fmt_num(cl->num, buf, sizeof buf);
                printf(" %*s", num[k] ? w[k] : -w[k], buf);
            } else {
                char q[512];
                snprintf(q, sizeof q, "'%s'", cl->str);
                printf(" %*s", -w[k], q);
            }
        }
        printf("\n");
    }
    free(w);
    free(num);
}

static void print_tensor(const lp_call *c, int i)
{
    const char *axes;
    const lp_tensor *t = lp_call_result_tensor(c, i, &axes);
    printf("%s: tensor [", lp_call_result_name(c, i));
    for (int d = 0; d < t->ndim; d++)
        printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
    printf("]%s%s%s", *axes ? " (" : "", axes, *axes ? ")" : "");
    const float *x = t->data;
    int64_t n = lp_tensor_nelem(t);
    if (n > 0) {
        double mn = x[0], mx = x[0], s = 0;
        for (int64_t k = 0; k < n; k++) {
            mn = x[k] < mn ? x[k] : mn;
            mx = x[k] > mx ? x[k] : mx;
            s += x[k];
        }
        printf(" min %.4g max %.4g mean %.4g", mn, mx, s / (double)n);
    }
    printf("\n");
    int64_t rows = t->ndim == 1 ? 1 : t->ne[0], cols = t->ndim == 1 ? t->ne[0] : t->ne[1];
    if (t->ndim > 2 || rows > 64 || cols > 64)
        return;
    for (int64_t r = 0; r < rows; r++) {
        printf("  ");
        for (int64_t k = 0; k < cols; k++)
            printf(" %9.4g", x[r * cols + k]);
        printf("\n");
    }
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

static void print_results_json(const lp_call *c, const char *method, const char *model)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", method);
    cJSON_AddStringToObject(j, "model", model);
    cJSON *res = cJSON_AddObjectToObject(j, "results");
    for (int i = 0; i < lp_call_n_results(c); i++) {
        cJSON *o = cJSON_CreateObject();
        switch (lp_call_result_kind(c, i)) {
        case LP_RESULT_SCALAR:
            cJSON_AddStringToObject(o, "kind", "scalar");
            cJSON_AddNumberToObject(o, "value", lp_call_result_scalar(c, i));
            break;
        case LP_RESULT_STRING:
            cJSON_AddStringToObject(o, "kind", "string");
            cJSON_AddStringToObject(o, "value", lp_call_result_string(c, i));
            break;
        case LP_RESULT_TENSOR: {
            const char *axes;
            const lp_tensor *t = lp_call_result_tensor(c, i, &axes);
            cJSON_AddStringToObject(o, "kind", "tensor");
            cJSON *sh = cJSON_AddArrayToObject(o, "shape");
            for (int d = 0; d < t->ndim; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddStringToObject(o, "axes", axes);
            cJSON_AddItemToObject(o, "data", tensor_json(t->data, t->ne, t->ndim));
            break;
        }
        case LP_RESULT_TABLE: {
            cJSON_AddStringToObject(o, "kind", "table");
            cJSON *cols = cJSON_AddArrayToObject(o, "columns");
            int nc = lp_call_table_n_cols(c, i);
            for (int k = 0; k < nc; k++)
                cJSON_AddItemToArray(cols, cJSON_CreateString(lp_call_table_col(c, i, k)));
            cJSON *rows = cJSON_AddArrayToObject(o, "rows");
            for (int r = 0; r < lp_call_table_n_rows(c, i); r++) {
                cJSON *row = cJSON_CreateArray();
                for (int k = 0; k < nc; k++) {
                    const lp_cell *cl = lp_call_table_cell(c, i, r, k);
                    cJSON_AddItemToArray(row, cl->is_num ? cJSON_CreateNumber(cl->num) : cJSON_CreateString(cl->str));
                }
                cJSON_AddItemToArray(rows, row);
            }
            break;
        }
        }
        cJSON_AddItemToObject(res, lp_call_result_name(c, i), o);
    }
    char *s = cJSON_Print(j);
    puts(s);
    free(s);
    cJSON_Delete(j);
}

/* "1,2,3" → ids */
static int parse_ids(const char *s, int32_t **out, int *n)
{
    size_t cap = strlen(s) / 2 + 2;
    int32_t *v = malloc(cap * sizeof *v);
    int k = 0;
    while (*s) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < 0 || x > 0x7fffffff) {
            free(v);
            return -1;
        }
        v[k++] = (int32_t)x;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    *out = v;
    *n = k;
    return k > 0 ? 0 : -1;
}

int cmd_call(int argc, char **argv)
{
    const char *pos[64];
    int json = 0, bos = 0, no_bos = 0, n_pos, help = 0;
    /* method --help needs the registry: look for it before the generic parser */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--"))
            break;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            help = 1;
    const char *method = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    lp_registry *r = NULL;
    if (help) {
        if (!method) {
            fputs(call_help, stdout);
            return EXIT_OK;
        }
        r = lp_registry_new();
        lp_registry_load_default(r);
        int mi_i = lp_registry_find_method(r, method);
        lp_method_info mi;
        if (mi_i < 0 || lp_registry_method(r, mi_i, &mi)) {
            lp_error err = {0};
            lp_call_free(lp_call_new(r, method, NULL, &err));
            print_diagnostics(r);
            lp_registry_free(r);
            return cli_error("call: %s", err.msg);
        }
        method_help(&mi);
        lp_registry_free(r);
        return EXIT_OK;
    }
    cli_opt opts[] = {{"--json", 0, 0, NULL, &json},
                      {"--bos", 0, 0, NULL, &bos},
                      {"--no-bos", 0, 0, NULL, &no_bos},
                      {0}};
    int rc = cli_parse(argc, argv, opts, pos, 64, &n_pos, call_help, &help);
    if (rc || help)
        return rc;
    if (n_pos < 1)
        return cli_error("call: missing PLUGIN.METHOD (see --help; 'loupe plugins' lists them)");
    method = pos[0];
    const char *model_spec = NULL;
    for (int i = 1; i < n_pos; i++)
        if (!strchr(pos[i], '=')) {
            if (model_spec)
                return cli_error("call: two models given ('%s' and '%s'); parameters are key=value", model_spec,
                                 pos[i]);
            model_spec = pos[i];
        }
    if (!model_spec)
        model_spec = DEFAULT_MODEL;

    r = lp_registry_new();
    if (!r)
        return cli_error("out of memory");
    lp_registry_load_default(r);
    lp_error err = {0};
    if (lp_registry_find_method(r, method) < 0) {
        lp_call_free(lp_call_new(r, method, NULL, &err));
        print_diagnostics(r);
        lp_registry_free(r);
        return cli_error("call: %s", err.msg);
    }
    lp_model *m = NULL;
    if ((rc = cli_load_model(model_spec, &m))) {
        lp_registry_free(r);
        return rc;
    }
    lp_call *c = lp_call_new(r, method, m, &err);
    if (!c) {
        rc = cli_fail(&err);
        goto out;
    }
    if (bos || no_bos)
        lp_call_set_add_bos(c, bos ? 1 : 0);
    for (int i = 1; i < n_pos; i++) {
        const char *eq = strchr(pos[i], '=');
        if (!eq)
            continue;
        char key[128];
        size_t kl = (size_t)(eq - pos[i]);
        if (kl == 0 || kl >= sizeof key) {
            rc = cli_error("call: '%s' is not key=value", pos[i]);
            goto out;
        }
        memcpy(key, pos[i], kl);
        key[kl] = 0;
        char *suffix = strstr(key, ":ids");
        if (suffix && !suffix[4]) {
            *suffix = 0;
            int32_t *ids;
            int n;
            if (parse_ids(eq + 1, &ids, &n)) {
                rc = cli_error("call: %s: '%s' is not a comma-separated list of token ids", pos[i], eq + 1);
                goto out;
            }
            int e = lp_call_set_param_tokens(c, key, ids, n, &err);
            free(ids);
            if (e) {
                rc = cli_fail(&err);
                goto out;
            }
        } else if (lp_call_set_param(c, key, eq + 1, &err)) {
            rc = cli_fail(&err);
            goto out;
        }
    }
    progress_state ps = {.bar = isatty(fileno(stderr)), .drawn = 0};
    lp_call_set_progress(c, on_progress, &ps);
    lp_call_set_log(c, on_log, NULL);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    int e = lp_call_run(c, &err);
    sigaction(SIGINT, &old, NULL);
    if (ps.drawn)
        fprintf(stderr, "\r\033[K");
    if (e) {
        rc = cli_fail(&err);
        goto out;
    }
    if (json) {
        print_results_json(c, method, lp_model_dir(m));
    } else {
        for (int i = 0; i < lp_call_n_results(c); i++) {
            char buf[64];
            switch (lp_call_result_kind(c, i)) {
            case LP_RESULT_SCALAR:
                fmt_num(lp_call_result_scalar(c, i), buf, sizeof buf);
                printf("%s: %s\n", lp_call_result_name(c, i), buf);
                break;
            case LP_RESULT_STRING:
                printf("%s: %s\n", lp_call_result_name(c, i), lp_call_result_string(c, i));
                break;
            case LP_RESULT_TENSOR:
                print_tensor(c, i);
                break;
            case LP_RESULT_TABLE:
                print_table(c, i);
                break;
            }
        }
    }
    rc = EXIT_OK;
out:
    lp_call_free(c);
    lp_model_free(m);
    lp_registry_free(r);
    return rc;
}
