/* Deliberately broken plugins, one per -DBAD_* variant (see meson.build): each must
 * leave exactly one diagnostic line naming its file, and never stop the others loading. */
#include "loupe/plugin.h"

static int run(lp_call *call, const lp_host_api *host)
{
    return host->result_scalar(call, "x", 1);
}

#if defined(BAD_MAJOR) /* built for a future major ABI */
LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = (2u << 16) | 0u;
#elif defined(BAD_MINOR) /* built against a newer minor than the host has */
LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = (LP_PLUGIN_ABI_MAJOR << 16) | 99u;
#elif defined(BAD_NOABI) /* forgot the ABI symbol */
#else
LP_PLUGIN_EXPORT const uint32_t loupe_plugin_abi = LP_PLUGIN_ABI_VERSION;
#endif

static const lp_param_desc params[] = {{"n", LP_PARAM_INT, "1", "a number"}};
#ifdef BAD_BADTYPE
static const lp_param_desc bad_params[] = {{"n", (lp_param_type)42, "1", "a parameter of no known type"}};
#endif

__attribute__((unused)) static const lp_method_desc method = {
    .struct_size = sizeof(lp_method_desc), .name = "a", .summary = "a method", .help = "",
    .params = params, .n_params = 1, .caps = 0, .run = run,
};

#ifndef BAD_NOINIT /* BAD_NOINIT: forgot loupe_plugin_init */
LP_PLUGIN_EXPORT int loupe_plugin_init(const lp_host_api *host, lp_plugin *plugin)
{
#if defined(BAD_INITFAIL)
    host->set_info(plugin, "initfail", "0.1", "init fails");
    return LP_EUNSUPPORTED;
#elif defined(BAD_NONAME)
    return host->register_method(plugin, &method); /* never calls set_info */
#elif defined(BAD_DUPMETHOD)
    host->set_info(plugin, "dupmethod", "0.1", "registers 'a' twice; keeps the first");
    host->register_method(plugin, &method);
    host->register_method(plugin, &method); /* refused; the plugin still loads with one method */
    return 0;
#elif defined(BAD_BADTYPE)
    static const lp_method_desc m2 = {
        .struct_size = sizeof(lp_method_desc), .name = "b", .summary = "bad param type", .help = "",
        .params = bad_params, .n_params = 1, .caps = 0, .run = run,
    };
    host->set_info(plugin, "badtype", "0.1", "a parameter with type 42");
    int rc = host->register_method(plugin, &m2);
    return rc; /* propagates the refusal: the plugin is not loaded, still one line */
#else
    host->set_info(plugin, "never", "0.1", "should not load");
    return host->register_method(plugin, &method);
#endif
}
#endif
