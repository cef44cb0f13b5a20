/* loupe — entry point: dispatch to subcommands, shared option parsing and errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: loupe [--version] [--help] COMMAND [ARGS]\n"
    "\n"
    "Commands (MODEL is a folder, a bundled model name, or a Hugging Face hub id;\n"
    "it defaults to the bundled '" DEFAULT_MODEL "' model):\n"
    "  info      [MODEL] [--json]                 architecture, sizes, files, BLAS\n"
    "  tokenize  [MODEL] TEXT [--json]            token ids and strings\n"
    "  generate  [MODEL] PROMPT [-n N] [--temperature T] [--top-k K] [--seed S]\n"
    "  logits    [MODEL] (--text T | --ids 1,2,3) -o OUT.npy\n"
    "  cache     [MODEL] (--text T | --ids 1,2,3) [--names GLOB,...] -o OUT.safetensors\n"
    "  hooks     [MODEL] [--json]                 every hook point and its shape\n"
    "  plugins   [--json]                         method plugins found, their methods\n"
    "  call      PLUGIN.METHOD [MODEL] [key=value ...] [--json]   run a plugin method\n"
    "  run       SCRIPT.lua [ARGS...] | -e CODE   run a Lua script (docs/lua-api.md)\n"
    "  ui        [MODEL] [--prompt TEXT]          the terminal UI (also plain 'loupe' on a terminal)\n"
    "\n"
    "Run 'loupe COMMAND --help' for a command's options. Exit codes: 0 success,\n"
    "2 bad usage or bad input, 1 internal failure, 130 cancelled. NO_COLOR disables colour.\n";

int cli_color(FILE *f)
{
    const char *nc = getenv("NO_COLOR");
    return (!nc || !*nc) && isatty(fileno(f));
}

int cli_error(const char *fmt, ...)
{
    int col = cli_color(stderr);
    fprintf(stderr, "%sloupe: error:%s ", col ? "\033[1;31m" : "", col ? "\033[0m" : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

int cli_exit_code(int code)
{
    switch (code) {
    case LP_OK: return EXIT_OK;
    case LP_ENOMEM: return EXIT_FAIL;
    case LP_ECANCELLED: return EXIT_CANCEL;
    default: return EXIT_USAGE;
    }
}

int cli_fail(const lp_error *err)
{
    cli_error("%s", err->msg[0] ? err->msg : lp_strerror(err->code));
    return cli_exit_code(err->code);
}

int cli_parse(int argc, char **argv, const cli_opt *opts, const char **pos, int max_pos, int *n_pos,
              const char *help, int *want_help)
{
    *n_pos = 0;
    *want_help = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            fputs(help, stdout);
            *want_help = 1;
            return EXIT_OK;
        }
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9')) {
            const cli_opt *o = NULL;
            const char *inline_val = NULL;
            for (const cli_opt *p = opts; p && p->lng; p++) {
                size_t l = strlen(p->lng);
                if (!strncmp(a, p->lng, l) && (a[l] == '\0' || (a[l] == '=' && p->has_arg))) {
                    o = p;
                    inline_val = a[l] == '=' ? a + l + 1 : NULL;
                    break;
                }
                if (p->shrt && a[1] == p->shrt && a[2] == '\0') {
                    o = p;
                    break;
                }
            }
            if (!o)
                return cli_error("%s: unknown option '%s' (see --help)", argv[0], a);
            if (o->has_arg) {
                if (!inline_val) {
                    if (i + 1 >= argc)
                        return cli_error("%s: option %s needs a value", argv[0], o->lng);
                    inline_val = argv[++i];
                }
                *o->val = inline_val;
            } else if (o->flag) {
                *o->flag = 1;
            }
            continue;
        }
        if (*n_pos >= max_pos)
            return cli_error("%s: unexpected argument '%s' (see --help)", argv[0], a);
        pos[(*n_pos)++] = a;
    }
    return EXIT_OK;
}

int cli_load_model(const char *spec, lp_model **m)
{
    lp_error err = {0};
    const char *t = getenv("LOUPE_THREADS");
    if (t && atoi(t) > 0)
        lp_set_threads(atoi(t));
    if (lp_model_load(spec, m, &err))
        return cli_fail(&err);
    return EXIT_OK;
}

int cli_tokens(lp_model *m, const char *text, const char *ids, int bos, int no_bos, int32_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    if ((text != NULL) == (ids != NULL))
        return cli_error("give exactly one of --text or --ids");
    if (ids) {
        size_t cap = strlen(ids) / 2 + 2;
        int32_t *v = malloc(cap * sizeof *v);
        const char *p = ids;
        int k = 0;
        while (*p) {
            char *end;
            errno = 0;
            long x = strtol(p, &end, 10);
            if (end == p || errno || x < 0 || x > 0x7fffffff) {
                free(v);
                return cli_error("--ids: '%s' is not a comma-separated list of token ids", ids);
            }
            v[k++] = (int32_t)x;
            p = end;
            while (*p == ',' || *p == ' ')
                p++;
        }
        if (k == 0) {
            free(v);
            return cli_error("--ids: no token ids given");
        }
        *out = v;
        *n = k;
        return EXIT_OK;
    }
    lp_tokenizer *tok = lp_model_tokenizer(m);
    if (!tok)
        return cli_error("%s: model has no tokenizer.json or vocab.json; use --ids", lp_model_dir(m));
    lp_error err = {0};
    size_t nn;
    int add = bos ? 1 : no_bos ? 0 : -1;
    if (lp_tokenizer_encode(tok, text, strlen(text), add, out, &nn, &err))
        return cli_fail(&err);
    if (nn == 0) {
        free(*out);
        *out = NULL;
        return cli_error("the text encodes to no tokens");
    }
    *n = (int)nn;
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"info", cmd_info},   {"tokenize", cmd_tokenize}, {"generate", cmd_generate},
                {"logits", cmd_logits}, {"cache", cmd_cache},     {"hooks", cmd_hooks},
                {"plugins", cmd_plugins}, {"call", cmd_call},     {"run", cmd_run},
                {"ui", cmd_ui}};
    if (argc < 2) { /* no command: the terminal UI on the default model (info + usage without a terminal) */
        if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
            char *args[] = {"ui", NULL};
            return cmd_ui(1, args);
        }
        char *args[] = {"info", NULL};
        int rc = cmd_info(1, args);
        fputs("\n", stdout);
        fputs(usage, stdout);
        return rc;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("loupe %s\n", LOUPE_VERSION_STRING);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    cli_error("unknown command '%s' (see loupe --help)", argv[1]);
    return EXIT_USAGE;
}
