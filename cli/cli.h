/* loupe command line: shared helpers of the subcommands. */
#ifndef LOUPE_CLI_H
#define LOUPE_CLI_H

#include <stdio.h>

#include "loupe/loupe.h"

/* Exit codes: 0 success, 1 internal failure, 2 bad usage or bad input, 130 cancelled. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CANCEL = 130 };

#define DEFAULT_MODEL "toy"

typedef struct cli_opt {
    const char *lng;  /* "--temperature"               */
    char shrt;        /* 't' or 0                       */
    int has_arg;
    const char **val; /* where the argument goes        */
    int *flag;        /* set to 1 when present (no arg) */
} cli_opt;

/* Parse argv into options and positionals; returns 0 or prints an error and returns EXIT_USAGE.
 * `help` is printed for -h/--help (then *want_help = 1). */
int cli_parse(int argc, char **argv, const cli_opt *opts, const char **pos, int max_pos, int *n_pos,
              const char *help, int *want_help);
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail(const lp_error *err); /* prints err, returns the exit code for its code */
int cli_exit_code(int lp_code);
int cli_load_model(const char *spec, lp_model **m);
/* Token ids from --ids "1,2,3" or --text (with BOS per the model unless overridden). */
int cli_tokens(lp_model *m, const char *text, const char *ids, int bos, int no_bos, int32_t **out, int *n);
int cli_color(FILE *f);

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_hooks(int argc, char **argv);
int cmd_plugins(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_ui(int argc, char **argv); /* ui/ui_main.c */

#endif
