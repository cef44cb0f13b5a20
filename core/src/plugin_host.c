/* Plugin registry: the search path, dlopen with the ABI check, registration of method
 * descriptors, and one diagnostic line per unusable file. The core knows no plugin by
 * name: everything it learns comes from the files it finds. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loupe_impl.h"

#ifndef LOUPE_BUILD_PLUGIN_DIR
#define LOUPE_BUILD_PLUGIN_DIR ""
#endif
#ifndef LOUPE_INSTALL_PLUGIN_DIR
#define LOUPE_INSTALL_PLUGIN_DIR ""
#endif

#define MAX_PARAMS 64

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q)
        return LP_ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

int lpi_registry_diag(lp_registry *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *s = line; *s; s++) /* one line each, whatever a plugin passed */
        if (*s == '\n' || *s == '\r')
            *s = ' ';
    if (grow((void **)&r->diags, &r->cap_diags, r->n_diags + 1, sizeof *r->diags))
        return LP_ENOMEM;
    char *d = lpi_strdup(line);
    if (!d)
        return LP_ENOMEM;
    r->diags[r->n_diags++] = d;
    return LP_OK;
}

lp_registry *lp_registry_new(void)
{
    return calloc(1, sizeof(lp_registry));
}

static void plugin_free(lp_plugin *p)
{
    if (!p)
        return;
    if (p->handle)
        dlclose(p->handle);
    free(p->path);
    free(p->real);
    free(p->name);
    free(p->version);
    free(p->summary);
    free(p);
}

static void drop_methods_from(lp_registry *r, int first)
{
    for (int i = first; i < r->n_methods; i++) {
        free(r->methods[i].name);
        free(r->methods[i].full_name);
    }
    if (first < r->n_methods)
        r->n_methods = first;
}

void lp_registry_free(lp_registry *r)
{
    if (!r)
        return;
    drop_methods_from(r, 0);
    free(r->methods);
    for (int i = 0; i < r->n_plugins; i++)
        plugin_free(r->plugins[i]);
    free(r->plugins);
    for (int i = 0; i < r->n_diags; i++)
        free(r->diags[i]);
    free(r->diags);
    for (int i = 0; i < r->n_dirs; i++)
        free(r->dirs[i]);
    free(r->dirs);
    free(r->dir_exists);
    free(r);
}

/* [a-z_][a-z0-9_]* — the pieces of "plugin.method" and parameter names. */
static int ident_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 63)
        return 0;
    if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

int lpi_parse_param(lp_param_type t, const char *s, int64_t *iv, double *fv, char *why, size_t cap)
{
    char *end;
    switch (t) {
    case LP_PARAM_INT: {
        errno = 0;
        long long v = strtoll(s, &end, 0);
        if (end == s || *end || errno) {
            snprintf(why, cap, "'%s' is not an integer", s);
            return LP_EINVAL;
        }
        *iv = v;
        *fv = (double)v;
        return LP_OK;
    }
    case LP_PARAM_FLOAT: {
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || *end || errno || !isfinite(v)) {
            snprintf(why, cap, "'%s' is not a finite number", s);
            return LP_EINVAL;
        }
        *fv = v;
        *iv = (int64_t)v;
        return LP_OK;
    }
    case LP_PARAM_BOOL: {
        static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(s, yes[i])) {
                *iv = 1;
                *fv = 1;
                return LP_OK;
            }
            if (!strcasecmp(s, no[i])) {
                *iv = 0;
                *fv = 0;
                return LP_OK;
            }
        }
        snprintf(why, cap, "'%s' is not a boolean (true/false, 1/0, yes/no, on/off)", s);
        return LP_EINVAL;
    }
    case LP_PARAM_STRING:
    case LP_PARAM_TEXT:
    case LP_PARAM_HOOK:
        *iv = 0;
        *fv = 0;
        return LP_OK;
    }
    snprintf(why, cap, "unknown parameter type %d", (int)t);
    return LP_EINVAL;
}

const char *lp_param_type_name(lp_param_type t)
{
    static const char *const n[] = {"int", "float", "bool", "string", "text", "hook"};
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

static char *dup_or_empty(const char *s)
{
    return lpi_strdup(s ? s : "");
}

int lpi_plugin_set_info(lp_plugin *p, const char *name, const char *version, const char *summary)
{
    if (!p || !p->reg || !p->in_init)
        return LP_EINVAL;
    if (!ident_ok(name)) {
        lpi_registry_diag(p->reg, "%s: plugin name '%s' is not an identifier ([a-z_][a-z0-9_]*)", p->path,
                          name ? name : "(null)");
        return LP_EINVAL;
    }
    free(p->name);
    free(p->version);
    free(p->summary);
    p->name = lpi_strdup(name);
    p->version = dup_or_empty(version);
    p->summary = dup_or_empty(summary);
    return p->name && p->version && p->summary ? LP_OK : LP_ENOMEM;
}

/* Why a descriptor is unusable, or NULL. */
static const char *check_desc(const lp_method_desc *m, char *why, size_t cap)
{
    size_t need = offsetof(lp_method_desc, run) + sizeof m->run;
    if (m->struct_size < need) {
        snprintf(why, cap, "descriptor struct_size %u is smaller than %zu", m->struct_size, need);
        return why;
    }
    if (!ident_ok(m->name)) {
        snprintf(why, cap, "method name '%s' is not an identifier ([a-z_][a-z0-9_]*)", m->name ? m->name : "(null)");
        return why;
    }
    if (!m->run) {
        snprintf(why, cap, "method '%s' has no run function", m->name);
        return why;
    }
    if (m->n_params < 0 || m->n_params > MAX_PARAMS || (m->n_params > 0 && !m->params)) {
        snprintf(why, cap, "method '%s' has a bad parameter list (n_params %d)", m->name, m->n_params);
        return why;
    }
    for (int i = 0; i < m->n_params; i++) {
        const lp_param_desc *pd = &m->params[i];
        if (!ident_ok(pd->name)) {
            snprintf(why, cap, "method '%s': parameter %d name '%s' is not an identifier", m->name, i,
                     pd->name ? pd->name : "(null)");
            return why;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(m->params[j].name, pd->name)) {
                snprintf(why, cap, "method '%s': parameter '%s' is declared twice", m->name, pd->name);
                return why;
            }
        if ((unsigned)pd->type > LP_PARAM_HOOK) {
            snprintf(why, cap, "method '%s': parameter '%s' has unknown type %d", m->name, pd->name, (int)pd->type);
            return why;
        }
        char w[256];
        int64_t iv;
        double fv;
        if (pd->default_value && lpi_parse_param(pd->type, pd->default_value, &iv, &fv, w, sizeof w)) {
            snprintf(why, cap, "method '%s': parameter '%s' default: %s", m->name, pd->name, w);
            return why;
        }
    }
    return NULL;
}

int lpi_plugin_register_method(lp_plugin *p, const lp_method_desc *m)
{
    if (!p || !p->reg || !p->in_init)
        return LP_EINVAL;
    lp_registry *r = p->reg;
    char why[512];
    if (!m) {
        lpi_registry_diag(r, "%s: register_method with a NULL descriptor; refused", p->path);
        return LP_EINVAL;
    }
    if (check_desc(m, why, sizeof why)) {
        lpi_registry_diag(r, "%s: %s; method refused", p->path, why);
        return LP_EINVAL;
    }
    for (int i = p->first_method; i < r->n_methods; i++)
        if (!strcmp(r->methods[i].name, m->name)) {
            lpi_registry_diag(r, "%s: method '%s' is registered twice; the second one is refused", p->path, m->name);
            return LP_EINVAL;
        }
    if (grow((void **)&r->methods, &r->cap_methods, r->n_methods + 1, sizeof *r->methods))
        return LP_ENOMEM;
    lpi_method *x = &r->methods[r->n_methods];
    memset(x, 0, sizeof *x);
    size_t n = m->struct_size < sizeof x->d ? m->struct_size : sizeof x->d;
    memcpy(&x->d, m, n); /* a descriptor from an older plugin is zero-extended */
    x->d.struct_size = (uint32_t)sizeof x->d;
    if (!x->d.summary)
        x->d.summary = "";
    if (!x->d.help)
        x->d.help = "";
    x->name = lpi_strdup(m->name);
    if (!x->name)
        return LP_ENOMEM;
    x->d.name = x->name;
    x->plugin = r->n_plugins; /* the index this plugin gets if it loads */
    r->n_methods++;
    return LP_OK;
}

static int find_plugin(const lp_registry *r, const char *name)
{
    for (int i = 0; i < r->n_plugins; i++)
        if (!strcmp(r->plugins[i]->name, name))
            return i;
    return -1;
}

static int fail_file(lp_registry *r, lp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_file(lp_registry *r, lp_error *err, int code, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    lpi_registry_diag(r, "%s", line);
    return lp_error_set(err, code, "%s", line);
}

int lp_registry_load_file(lp_registry *r, const char *path, lp_error *err)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return fail_file(r, err, LP_ENOTFOUND, "%s: %s", path, strerror(errno));
    for (int i = 0; i < r->n_plugins; i++)
        if (!strcmp(r->plugins[i]->real, real))
            return LP_OK; /* the same file reached twice (e.g. through a symlink) */
    dlerror();
    void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        return fail_file(r, err, LP_EFORMAT, "%s: cannot be loaded: %s", path, e ? e : "dlopen failed");
    }
    const uint32_t *abi = dlsym(h, LP_PLUGIN_ABI_SYMBOL);
    if (!abi) {
        dlclose(h);
        return fail_file(r, err, LP_EFORMAT, "%s: no '%s' symbol (not a loupe plugin, or built without LP_PLUGIN_EXPORT)",
                         path, LP_PLUGIN_ABI_SYMBOL);
    }
    uint32_t v = *abi, major = v >> 16, minor = v & 0xffff;
    if (major != LP_PLUGIN_ABI_MAJOR) {
        dlclose(h);
        return fail_file(r, err, LP_EUNSUPPORTED, "%s: %s is %u.%u, this loupe speaks plugin ABI %d.%d (major differs)",
                         path, LP_PLUGIN_ABI_SYMBOL, major, minor, LP_PLUGIN_ABI_MAJOR, LP_PLUGIN_ABI_MINOR);
    }
    if (minor > LP_PLUGIN_ABI_MINOR) {
        dlclose(h);
        return fail_file(r, err, LP_EUNSUPPORTED,
                         "%s: %s is %u.%u, newer than this loupe's plugin ABI %d.%d (rebuild the plugin or update loupe)",
                         path, LP_PLUGIN_ABI_SYMBOL, major, minor, LP_PLUGIN_ABI_MAJOR, LP_PLUGIN_ABI_MINOR);
    }
    lp_plugin_init_fn init;
    *(void **)&init = dlsym(h, LP_PLUGIN_INIT_SYMBOL);
    if (!init) {
        dlclose(h);
        return fail_file(r, err, LP_EFORMAT, "%s: no '%s' symbol", path, LP_PLUGIN_INIT_SYMBOL);
    }
    lp_plugin *p = calloc(1, sizeof *p);
    if (!p || !(p->path = lpi_strdup(path)) || !(p->real = lpi_strdup(real)) ||
        grow((void **)&r->plugins, &r->cap_plugins, r->n_plugins + 1, sizeof *r->plugins)) {
        if (p) {
            free(p->path);
            free(p->real);
        }
        free(p);
        dlclose(h);
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
    }
    p->reg = r;
    p->handle = h;
    p->abi = v;
    p->first_method = r->n_methods;
    p->n_diag_at_start = r->n_diags;
    p->in_init = 1;
    int rc = init(&lpi_host_api, p);
    p->in_init = 0;
    int noted = r->n_diags > p->n_diag_at_start; /* a registration problem was already reported */
    const char *problem = NULL;
    char buf[256];
    if (rc) {
        snprintf(buf, sizeof buf, "%s returned %d (%s)", LP_PLUGIN_INIT_SYMBOL, rc, lp_strerror(rc));
        problem = buf;
    } else if (!p->name) {
        problem = "loupe_plugin_init did not call set_info (the plugin has no name)";
    } else {
        int other = find_plugin(r, p->name);
        if (other >= 0) {
            snprintf(buf, sizeof buf, "plugin '%s' is already loaded from %s; this one is skipped", p->name,
                     r->plugins[other]->path);
            problem = buf;
        }
    }
    if (problem) {
        drop_methods_from(r, p->first_method);
        if (noted) { /* one line per file: extend the line registration left */
            char *old = r->diags[r->n_diags - 1];
            r->n_diags--;
            lpi_registry_diag(r, "%s; %s, plugin not loaded", old, problem);
            free(old);
        } else {
            lpi_registry_diag(r, "%s: %s", path, problem);
        }
        lp_error_set(err, rc ? rc : LP_EINVAL, "%s", r->diags[r->n_diags - 1]);
        plugin_free(p);
        return rc ? rc : LP_EINVAL;
    }
    p->n_methods = r->n_methods - p->first_method;
    for (int i = p->first_method; i < r->n_methods; i++) {
        lpi_method *x = &r->methods[i];
        size_t n = strlen(p->name) + strlen(x->name) + 2;
        x->full_name = malloc(n);
        if (!x->full_name) {
            drop_methods_from(r, p->first_method);
            plugin_free(p);
            return lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
        }
        snprintf(x->full_name, n, "%s.%s", p->name, x->name);
    }
    r->plugins[r->n_plugins++] = p;
    return LP_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with_so(const char *s)
{
    size_t n = strlen(s);
    return n > 3 && !strcmp(s + n - 3, ".so");
}

/* Sorted entries of dir that are .so files (files) or subfolders (dirs). */
static int list_dir(const char *dir, char ***files, int *nf, char ***dirs, int *nd)
{
    *files = NULL;
    if (dirs)
        *dirs = NULL;
    *nf = *nd = 0;
    DIR *d = opendir(dir);
    if (!d)
        return LP_ENOTFOUND;
    int cf = 0, cd = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st))
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (!dirs || grow((void **)dirs, &cd, *nd + 1, sizeof **dirs))
                continue;
            (*dirs)[(*nd)++] = lpi_strdup(path);
        } else if (S_ISREG(st.st_mode) && ends_with_so(e->d_name)) {
            if (grow((void **)files, &cf, *nf + 1, sizeof **files))
                continue;
            (*files)[(*nf)++] = lpi_strdup(path);
        }
    }
    closedir(d);
    if (*nf)
        qsort(*files, (size_t)*nf, sizeof **files, cmp_str);
    if (*nd)
        qsort(*dirs, (size_t)*nd, sizeof **dirs, cmp_str);
    return LP_OK;
}

static int load_files(lp_registry *r, char **files, int n)
{
    int loaded = 0;
    for (int i = 0; i < n; i++) {
        int before = r->n_plugins;
        if (files[i] && lp_registry_load_file(r, files[i], NULL) == LP_OK && r->n_plugins > before)
            loaded++;
        free(files[i]);
    }
    free(files);
    return loaded;
}

int lp_registry_load_dir(lp_registry *r, const char *dir)
{
    char **files, **dirs;
    int nf, nd;
    if (list_dir(dir, &files, &nf, &dirs, &nd))
        return LP_ENOTFOUND;
    int loaded = load_files(r, files, nf);
    for (int i = 0; i < nd; i++) {
        char **sub;
        int ns, unused;
        if (dirs[i] && list_dir(dirs[i], &sub, &ns, NULL, &unused) == LP_OK)
            loaded += load_files(r, sub, ns);
        free(dirs[i]);
    }
    free(dirs);
    return loaded;
}

static void add_search_dir(lp_registry *r, const char *dir, size_t len)
{
    if (len == 0)
        return;
    char **nd = realloc(r->dirs, (size_t)(r->n_dirs + 1) * sizeof *nd);
    if (!nd)
        return;
    r->dirs = nd;
    int *ne = realloc(r->dir_exists, (size_t)(r->n_dirs + 1) * sizeof *ne);
    if (!ne)
        return;
    r->dir_exists = ne;
    char *s = malloc(len + 1);
    if (!s)
        return;
    memcpy(s, dir, len);
    s[len] = 0;
    r->dirs[r->n_dirs] = s;
    r->dir_exists[r->n_dirs] = lpi_dir_exists(s);
    r->n_dirs++;
}

int lp_registry_load_default(lp_registry *r)
{
    add_search_dir(r, LOUPE_BUILD_PLUGIN_DIR, strlen(LOUPE_BUILD_PLUGIN_DIR));
    add_search_dir(r, LOUPE_INSTALL_PLUGIN_DIR, strlen(LOUPE_INSTALL_PLUGIN_DIR));
    const char *env = getenv("LOUPE_PLUGIN_PATH");
    for (const char *p = env; p && *p;) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        add_search_dir(r, p, n); /* empty entries are ignored: never the current directory */
        p = c ? c + 1 : p + n;
    }
    int loaded = 0;
    for (int i = 0; i < r->n_dirs; i++)
        if (r->dir_exists[i]) {
            int n = lp_registry_load_dir(r, r->dirs[i]);
            if (n > 0)
                loaded += n;
        }
    return loaded;
}

int lp_registry_n_search_dirs(const lp_registry *r)
{
    return r->n_dirs;
}

const char *lp_registry_search_dir(const lp_registry *r, int i, int *exists)
{
    if (i < 0 || i >= r->n_dirs)
        return NULL;
    if (exists)
        *exists = r->dir_exists[i];
    return r->dirs[i];
}

int lp_registry_n_diagnostics(const lp_registry *r)
{
    return r->n_diags;
}

const char *lp_registry_diagnostic(const lp_registry *r, int i)
{
    return i >= 0 && i < r->n_diags ? r->diags[i] : NULL;
}

int lp_registry_n_plugins(const lp_registry *r)
{
    return r->n_plugins;
}

int lp_registry_plugin(const lp_registry *r, int i, lp_plugin_info *out)
{
    if (i < 0 || i >= r->n_plugins)
        return LP_ENOTFOUND;
    const lp_plugin *p = r->plugins[i];
    out->name = p->name;
    out->version = p->version;
    out->summary = p->summary;
    out->path = p->path;
    out->abi = p->abi;
    out->first_method = p->first_method;
    out->n_methods = p->n_methods;
    return LP_OK;
}

int lp_registry_n_methods(const lp_registry *r)
{
    return r->n_methods;
}

int lp_registry_method(const lp_registry *r, int i, lp_method_info *out)
{
    if (i < 0 || i >= r->n_methods)
        return LP_ENOTFOUND;
    const lpi_method *x = &r->methods[i];
    out->full_name = x->full_name;
    out->plugin = r->plugins[x->plugin]->name;
    out->name = x->name;
    out->summary = x->d.summary;
    out->help = x->d.help;
    out->params = x->d.params;
    out->n_params = x->d.n_params;
    out->caps = x->d.caps;
    out->plugin_index = x->plugin;
    return LP_OK;
}

int lp_registry_find_method(const lp_registry *r, const char *full_name)
{
    for (int i = 0; i < r->n_methods; i++)
        if (!strcmp(r->methods[i].full_name, full_name))
            return i;
    return -1;
}
