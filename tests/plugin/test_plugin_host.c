/* The plugin host against deliberately broken plugins (tests/plugin/bad/): one diagnostic
 * line per bad file naming it, the good plugins still load, parameters are parsed by
 * type, a failing method returns its error through lp_call_run and leaves the model as
 * it was, progress can cancel.
 * Usage: test_plugin_host BAD_PLUGIN_DIR FIXTURE_DIR */
#include <unistd.h>

#include "../common/check.h"
#include "loupe/loupe.h"
#include "loupe/plugins.h"

/* How many diagnostics mention "/FILE:" (the file named at the start of the line). */
static int diags_naming(const lp_registry *r, const char *file, const char *must, const char **line)
{
    char key[256];
    snprintf(key, sizeof key, "/%s: ", file);
    int n = 0;
    for (int i = 0; i < lp_registry_n_diagnostics(r); i++) {
        const char *d = lp_registry_diagnostic(r, i);
        if (strstr(d, key)) {
            n++;
            *line = d;
            if (must && !strstr(d, must))
                n += 100;
        }
    }
    return n;
}

static void test_loading(lp_registry *r, const char *dir)
{
    int loaded = lp_registry_load_dir(r, dir);
    check(loaded == 2, "load_dir loads 2 plugins (got %d)", loaded);
    static const struct {
        const char *file, *must;
    } bad[] = {
        {"bad_major.so", "2.0, this loupe speaks plugin ABI 1.1 (major differs)"},
        {"bad_minor.so", "1.99, newer than this loupe's plugin ABI 1.1"},
        {"bad_noabi.so", "no 'loupe_plugin_abi' symbol"},
        {"bad_noinit.so", "no 'loupe_plugin_init' symbol"},
        {"bad_initfail.so", "loupe_plugin_init returned -6"},
        {"bad_noname.so", "did not call set_info"},
        {"bad_dupmethod.so", "method 'a' is registered twice; the second one is refused"},
        {"bad_badtype.so", "parameter 'n' has unknown type 42; method refused; loupe_plugin_init returned"},
        {"zz_same_name.so", "plugin 'good' is already loaded from"},
    };
    int n_bad = (int)(sizeof bad / sizeof bad[0]);
    for (int i = 0; i < n_bad; i++) {
        const char *line = "(none)";
        int n = diags_naming(r, bad[i].file, bad[i].must, &line);
        check(n == 1, "exactly one diagnostic for %s saying \"%s\": %s", bad[i].file, bad[i].must, line);
    }
    const char *line = "";
    check(diags_naming(r, "good.so", NULL, &line) == 0, "no diagnostic for good.so");
    check(lp_registry_n_diagnostics(r) == n_bad, "%d diagnostics in all (got %d)", n_bad,
          lp_registry_n_diagnostics(r));
    for (int i = 0; i < lp_registry_n_diagnostics(r); i++)
        check(!strchr(lp_registry_diagnostic(r, i), '\n'), "diagnostic %d is one line", i);

    /* a file that is not a shared object; a file that does not exist */
    char tmp[] = "/tmp/loupe-plugin-test-XXXXXX";
    int fd = mkstemp(tmp);
    check(fd >= 0 && write(fd, "not an ELF file\n", 16) == 16, "temp file");
    close(fd);
    char so[64];
    snprintf(so, sizeof so, "%s.so", tmp);
    rename(tmp, so);
    lp_error err = {0};
    int before = lp_registry_n_diagnostics(r);
    check(lp_registry_load_file(r, so, &err) == LP_EFORMAT && strstr(err.msg, so) && strstr(err.msg, "cannot be loaded"),
          "garbage .so: %s", err.msg);
    check(lp_registry_load_file(r, "/nonexistent/x.so", &err) == LP_ENOTFOUND && strstr(err.msg, "/nonexistent/x.so"),
          "missing file: %s", err.msg);
    check(lp_registry_n_diagnostics(r) == before + 2, "each adds one diagnostic");
    unlink(so);

    check(lp_registry_n_plugins(r) == 2, "plugins: good and dupmethod");
    lp_plugin_info pi;
    int gi = -1, di = -1;
    for (int i = 0; i < lp_registry_n_plugins(r); i++) {
        lp_registry_plugin(r, i, &pi);
        if (!strcmp(pi.name, "good"))
            gi = i;
        if (!strcmp(pi.name, "dupmethod"))
            di = i;
    }
    check(gi >= 0 && lp_registry_plugin(r, gi, &pi) == 0 && pi.n_methods == 2 && !strcmp(pi.version, "1.2.3") &&
              strstr(pi.path, "good.so") && pi.abi == LP_PLUGIN_ABI_VERSION,
          "good: version 1.2.3, 2 methods, path, ABI");
    check(di >= 0 && lp_registry_plugin(r, di, &pi) == 0 && pi.n_methods == 1, "dupmethod keeps its first method");
    check(lp_registry_find_method(r, "good.echo") >= 0 && lp_registry_find_method(r, "good.fails") >= 0 &&
              lp_registry_find_method(r, "dupmethod.a") >= 0 && lp_registry_find_method(r, "never.a") < 0,
          "methods by full name");
    lp_method_info mi;
    lp_registry_method(r, lp_registry_find_method(r, "good.echo"), &mi);
    check(mi.n_params == 6 && !strcmp(mi.plugin, "good") && !strcmp(mi.name, "echo") &&
              mi.params[3].type == LP_PARAM_BOOL && !strcmp(lp_param_type_name(mi.params[4].type), "hook"),
          "good.echo descriptor");
}

static int cancel_at_3(void *user, double done, double total, const char *what)
{
    int *calls = user;
    ++*calls;
    return done >= 3;
}

static void test_calls(lp_registry *r, const char *fixture)
{
    lp_error err = {0};
    lp_model *m;
    if (!check(lp_model_load(fixture, &m, &err) == 0, "load %s (%s)", fixture, err.msg))
        return;
    int V = lp_model_config(m)->d_vocab;
    int32_t ids[] = {12, 52, 90, 11, 17};
    int T = 5;
    float *ref = malloc(sizeof(float) * (size_t)T * V), *after = malloc(sizeof(float) * (size_t)T * V);
    lp_batch b = {ids, 1, T, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_ALL;
    o.logits_out = ref;
    check(lp_model_run(m, &b, &o, &err) == 0, "reference run");

    check(lp_call_new(r, "good.nope", m, &err) == NULL && err.code == LP_ENOTFOUND && strstr(err.msg, "good.echo"),
          "unknown method lists the loaded ones: %s", err.msg);

    /* a method that fails mid forward pass */
    lp_call *c = lp_call_new(r, "good.fails", m, &err);
    check(c && lp_call_set_param_tokens(c, "prompt", ids, T, &err) == 0, "good.fails: prompt ids");
    int rc = lp_call_run(c, &err);
    check(rc == LP_EINVAL && strstr(err.msg, "good.fails: the forward pass failed: ") &&
              strstr(err.msg, "deliberate failure in blocks.0.hook_resid_pre"),
          "the method's error comes back through lp_call_run: %s", err.msg);
    check(lp_call_n_results(c) == 0, "a failed call keeps no results");
    o.logits_out = after;
    check(lp_model_run(m, &b, &o, &err) == 0 && memcmp(ref, after, sizeof(float) * (size_t)T * V) == 0,
          "the model runs as before afterwards (logits identical)");
    lp_call_free(c);

    /* parameters by type */
    c = lp_call_new(r, "good.echo", m, &err);
    check(c != NULL, "good.echo call");
    check(lp_call_set_param(c, "n", "0x10", &err) == 0, "int accepts 0x10");
    check(lp_call_set_param(c, "n", "1.5", &err) == LP_EINVAL && strstr(err.msg, "'n' (int): '1.5' is not an integer"),
          "int refuses 1.5: %s", err.msg);
    check(lp_call_set_param(c, "x", "nan", &err) == LP_EINVAL && strstr(err.msg, "finite"), "float refuses nan: %s",
          err.msg);
    check(lp_call_set_param(c, "flag", "maybe", &err) == LP_EINVAL && strstr(err.msg, "not a boolean"),
          "bool refuses maybe: %s", err.msg);
    check(lp_call_set_param(c, "zzz", "1", &err) == LP_ENOTFOUND &&
              strstr(err.msg, "its parameters: s, n, x, flag, hook, steps"),
          "unknown parameter lists the valid ones: %s", err.msg);
    check(lp_call_set_param_tokens(c, "s", ids, 2, &err) == LP_EINVAL, "token ids only for text parameters: %s",
          err.msg);
    check(lp_call_set_param(c, "s", "hi there", &err) == 0 && lp_call_set_param(c, "x", "-2.5e-1", &err) == 0 &&
              lp_call_set_param(c, "flag", "YES", &err) == 0 &&
              lp_call_set_param(c, "hook", "blocks.*.attn.hook_pattern", &err) == 0,
          "good values");
    rc = lp_call_run(c, &err);
    check(rc == 0, "good.echo runs (%s)", err.msg);
    int i;
    check((i = lp_call_find_result(c, "s")) >= 0 && lp_call_result_kind(c, i) == LP_RESULT_STRING &&
              !strcmp(lp_call_result_string(c, i), "hi there"),
          "string result");
    check((i = lp_call_find_result(c, "n")) >= 0 && lp_call_result_scalar(c, i) == 16, "int 0x10 = 16");
    check((i = lp_call_find_result(c, "x")) >= 0 && lp_call_result_scalar(c, i) == -0.25, "float -0.25");
    check((i = lp_call_find_result(c, "flag")) >= 0 && lp_call_result_scalar(c, i) == 1, "bool YES = 1");
    const char *axes = NULL;
    const lp_tensor *t = (i = lp_call_find_result(c, "t")) >= 0 ? lp_call_result_tensor(c, i, &axes) : NULL;
    check(t && t->ndim == 2 && t->ne[0] == 2 && t->ne[1] == 3 && ((float *)t->data)[5] == 5 && !strcmp(axes, "row,col"),
          "tensor [2,3] with axes row,col");
    i = lp_call_find_result(c, "tab");
    check(i >= 0 && lp_call_table_n_cols(c, i) == 2 && lp_call_table_n_rows(c, i) == 3 &&
              !strcmp(lp_call_table_col(c, i, 1), "value") && !strcmp(lp_call_table_cell(c, i, 2, 0)->str, "row2") &&
              lp_call_table_cell(c, i, 2, 1)->num == 3.0,
          "table 3x2 with copied strings");

    /* hook names are checked against the model */
    check(lp_call_set_param(c, "hook", "blocks.99.hook_resid_pre", &err) == 0 && lp_call_run(c, &err) == LP_ENOTFOUND &&
              strstr(err.msg, "matches no hook point"),
          "unknown hook refused at run: %s", err.msg);
    lp_call_set_param(c, "hook", "hook_embed", &err);

    /* progress and cancellation */
    int calls = 0;
    lp_call_set_progress(c, cancel_at_3, &calls);
    lp_call_set_param(c, "steps", "10", &err);
    rc = lp_call_run(c, &err);
    check(rc == LP_ECANCELLED && calls == 4 && strstr(err.msg, "cancelled at step 3") && lp_call_n_results(c) == 0,
          "progress returning non-zero cancels (%d calls): %s", calls, err.msg);
    lp_call_set_progress(c, NULL, NULL);
    check(lp_call_run(c, &err) == 0 && lp_call_n_results(c) == 7, "runs again without the callback");
    lp_call_free(c);

    free(ref);
    free(after);
    lp_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_plugin_host BAD_PLUGIN_DIR FIXTURE_DIR\n");
        return 2;
    }
    lp_registry *r = lp_registry_new();
    test_loading(r, argv[1]);
    test_calls(r, argv[2]);
    lp_registry_free(r);
    /* an empty registry; a missing folder */
    r = lp_registry_new();
    check(lp_registry_load_dir(r, "/nonexistent-dir") == LP_ENOTFOUND && lp_registry_n_diagnostics(r) == 0,
          "a missing folder is not a diagnostic");
    lp_registry_free(r);
    return check_done();
}
