/* What BLAS we run on. OpenBLAS exposes its core and threads; anything else is
 * reported as such. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

/* OpenBLAS extensions (declared in its cblas.h; repeated here so another CBLAS works
 * when these are provided weakly). */
extern char *openblas_get_corename(void) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
extern void openblas_set_num_threads(int) __attribute__((weak));

void lp_set_threads(int n)
{
    if (n > 0 && openblas_set_num_threads)
        openblas_set_num_threads(n);
}

void lp_blas_info(char *buf, size_t cap)
{
    if (!openblas_get_corename) {
        snprintf(buf, cap, "BLAS: not OpenBLAS (core and threads unknown)");
        return;
    }
    const char *forced = getenv("OPENBLAS_CORETYPE");
    int n = snprintf(buf, cap, "%s core=%s threads=%d", openblas_get_config ? openblas_get_config() : "OpenBLAS",
                     openblas_get_corename(), openblas_get_num_threads ? openblas_get_num_threads() : -1);
    if (forced && *forced && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n,
                 " (warning: OPENBLAS_CORETYPE=%s forces this core; unset it for the fastest kernels)", forced);
}
