/* A minimal loupe plugin, built out of tree by tests/plugin/test_out_of_tree.sh:
 *
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags loupe-plugin) \
 *      -o hello.so hello_plugin.c
 *   LOUPE_PLUGIN_PATH=. loupe call hello.greet MODEL name=you
 */
#include <stdio.h>

#include "loupe/plugin.h"

LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;

static const lp_param_desc params[] = {
    {"name", LP_PARAM_STRING, "world", "who to greet"},
};

static int greet(lp_call *call, const lp_host_api *host)
{
    lp_model *m = host->call_model(call);
    if (!m)
        return host->error(call, LP_EINVAL, "needs a model");
    const lp_config *cfg = host->model_config(m);
    char msg[256];
    snprintf(msg, sizeof msg, "hello, %s, from a %d-layer %s", host->param_str(call, "name"), cfg->n_layers,
             cfg->model_type);
    host->result_string(call, "greeting", msg);
    return host->result_scalar(call, "n_layers", cfg->n_layers);
}

static const lp_method_desc greet_desc = {
    .struct_size = sizeof(lp_method_desc),
    .name = "greet",
    .summary = "greets someone and says which model it was handed",
    .help = "Returns a greeting string and the model's layer count.",
    .params = params,
    .n_params = 1,
    .caps = 0,
    .run = greet,
};

LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
    int rc = host->set_info(plugin, "hello", "0.1.0", "the example plugin from docs/plugins.md");
    return rc ? rc : host->register_method(plugin, &greet_desc);
}
