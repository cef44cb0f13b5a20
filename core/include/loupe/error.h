/* loupe — error reporting shared by every public API.
 *
 * Convention (llama.h / SQLite style): functions return 0 (LP_OK) on success or a
 * negative LP_E* code, and fill a caller-owned lp_error with one human-readable line
 * that names the file (when there is one) and the problem.  Library code never
 * exits, aborts or prints on bad input. */
#ifndef LOUPE_ERROR_H
#define LOUPE_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LP_OK = 0,
    LP_EINVAL = -1,       /* bad argument or malformed input data          */
    LP_EIO = -2,          /* file could not be opened / read / written     */
    LP_ENOMEM = -3,       /* allocation failed                              */
    LP_EFORMAT = -4,      /* a file is corrupt or not of the expected kind  */
    LP_ENOTFOUND = -5,    /* a named thing (file, tensor, hook) is missing  */
    LP_EUNSUPPORTED = -6, /* valid but not supported (architecture, dtype)  */
    LP_ECANCELLED = -7,   /* stopped by a progress/abort callback           */
};

#define LP_ERROR_MSG_MAX 512

typedef struct lp_error {
    int code;                   /* last LP_E* code, LP_OK when none        */
    char msg[LP_ERROR_MSG_MAX]; /* one line, no trailing newline           */
} lp_error;

/* Set err (may be NULL) and return code, so callers can `return lp_error_set(...)`. */
int lp_error_set(lp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int lp_error_setv(lp_error *err, int code, const char *fmt, va_list ap);
/* Prefix an existing message with "context: " (e.g. a file name). */
int lp_error_prefix(lp_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lp_error_clear(lp_error *err);
const char *lp_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
