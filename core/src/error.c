#include "loupe/error.h"

#include <stdio.h>
#include <string.h>

int lp_error_setv(lp_error *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int lp_error_set(lp_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lp_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int lp_error_prefix(lp_error *err, const char *fmt, ...)
{
    if (!err)
        return LP_OK;
    char pre[LP_ERROR_MSG_MAX], old[LP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old);
    return err->code;
}

void lp_error_clear(lp_error *err)
{
    if (err) {
        err->code = LP_OK;
        err->msg[0] = '\0';
    }
}

const char *lp_strerror(int code)
{
    switch (code) {
    case LP_OK: return "ok";
    case LP_EINVAL: return "invalid argument";
    case LP_EIO: return "i/o error";
    case LP_ENOMEM: return "out of memory";
    case LP_EFORMAT: return "bad file format";
    case LP_ENOTFOUND: return "not found";
    case LP_EUNSUPPORTED: return "unsupported";
    case LP_ECANCELLED: return "cancelled";
    default: return "unknown error";
    }
}
