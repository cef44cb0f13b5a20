/* A well-behaved plugin used by test_plugin_host: every result kind and parameter type,
 * progress with cancellation, and a method that fails inside a hook mid forward pass. */
#include <stdio.h>
#include <string.h>

#include "loupe/plugin.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

static const lp_param_desc echo_params[] = {
    {"s", LP_PARAM_STRING, "hello", "a string"},
    {"n", LP_PARAM_INT, "2", "an int"},
    {"x", LP_PARAM_FLOAT, "0.25", "a float"},
    {"flag", LP_PARAM_BOOL, "false", "a bool"},
    {"hook", LP_PARAM_HOOK, "blocks.0.hook_resid_pre", "a hook point"},
    {"steps", LP_PARAM_INT, "0", "progress steps to report"},
};

static int echo(lp_call *call, const lp_host_api *h)
{
    int64_t steps = h->param_int(call, "steps");
    for (int64_t i = 0; i < steps; i++)
        if (h->progress(call, (double)i, (double)steps, "steps"))
            return h->error(call, LP_ECANCELLED, "cancelled at step %lld", (long long)i);
    h->result_string(call, "s", h->param_str(call, "s"));
    h->result_string(call, "hook", h->param_str(call, "hook"));
    h->result_scalar(call, "n", (double)h->param_int(call, "n"));
    h->result_scalar(call, "x", h->param_float(call, "x"));
    h->result_scalar(call, "flag", h->param_bool(call, "flag"));
    int64_t ne[2] = {2, 3};
    lp_tensor t = h->result_tensor(call, "t", 2, ne, "row,col");
    if (!t.data)
        return h->error(call, LP_ENOMEM, "no tensor");
    for (int i = 0; i < 6; i++)
        ((float *)t.data)[i] = (float)i;
    const char *const cols[] = {"name", "value"};
    int tab = h->result_table(call, "tab", 2, cols);
    char name[32];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "row%d", i); /* the host copies it */
        lp_cell row[2] = {{0, 0, name}, {1, i * 1.5, NULL}};
        if (h->table_row(call, tab, row))
            return h->error(call, LP_ENOMEM, "no row");
    }
    return 0;
}

static int fail_hook(lp_tensor *act, const lp_hook_info *info, void *user)
{
    float *x = act->data;
    for (int64_t i = 0; i < act->ne[0] * act->ne[1] * act->ne[2]; i++)
        x[i] = 1e30f; /* scribble, then fail: nothing of this may leak into later runs */
    /* plugins do not link the core (no lp_error_set): write the caller's lp_error directly */
    info->err->code = LP_EINVAL;
    snprintf(info->err->msg, sizeof info->err->msg, "deliberate failure in %s", info->name);
    return LP_EINVAL;
}

static int fails(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    int n;
    const int32_t *tok = h->param_tokens(call, "prompt", &n);
    lp_hooks *hooks = h->hooks_new();
    lp_error err = {0};
    if (!hooks || h->hooks_add(hooks, "blocks.0.hook_resid_pre", fail_hook, NULL, &err)) {
        h->hooks_free(hooks);
        return h->error(call, LP_ENOMEM, "hooks: %s", err.msg);
    }
    h->result_scalar(call, "partial", 1); /* discarded by the host when the method fails */
    lp_batch b = {.tokens = tok, .n_batch = 1, .n_pos = n, .lengths = NULL};
    lp_run_opts o;
    memset(&o, 0, sizeof o);
    o.hooks = hooks;
    int rc = h->model_run(m, &b, &o, &err);
    h->hooks_free(hooks);
    return h->error(call, rc ? rc : LP_EINVAL, "the forward pass failed: %s", err.msg);
}

static const lp_param_desc fails_params[] = {{"prompt", LP_PARAM_TEXT, NULL, "text"}};

static const lp_method_desc methods[] = {
    {.struct_size = sizeof(lp_method_desc), .name = "echo", .summary = "echoes its parameters",
     .help = "Returns every parameter back, a 2x3 tensor and a 3-row table.", .params = echo_params,
     .n_params = sizeof echo_params / sizeof echo_params[0], .caps = 0, .run = echo},
    {.struct_size = sizeof(lp_method_desc), .name = "fails", .summary = "fails inside a hook",
     .help = "Runs the model with a hook that scribbles over resid_pre and fails.", .params = fails_params,
     .n_params = 1, .caps = LP_CAP_WRITES_ACTIVATIONS, .run = fails},
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    int rc = host->set_info(plugin, "good", "1.2.3", "a well-behaved test plugin");
    for (int i = 0; !rc && i < 2; i++)
        rc = host->register_method(plugin, &methods[i]);
    return rc;
}
