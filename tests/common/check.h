/* Minimal test helpers shared by loupe's C tests: ok/FAIL lines, a summary, exit status
 * (0 pass, 1 fail, 77 skip as meson understands it). */
#ifndef LOUPE_TEST_CHECK_H
#define LOUPE_TEST_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_fail, t_ok;

__attribute__((format(printf, 2, 3), unused)) static int check(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(cond ? "ok   " : "FAIL ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    if (cond)
        t_ok++;
    else
        t_fail++;
    fflush(stdout);
    return cond;
}

__attribute__((unused)) static int check_done(void)
{
    printf("%d passed, %d failed\n", t_ok, t_fail);
    return t_fail ? 1 : 0;
}

/* Whole file as a NUL-terminated malloc'd string, or NULL. */
__attribute__((unused)) static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)(n < 0 ? 0 : n) + 1);
    size_t r = s && n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    if (s)
        s[r] = 0;
    fclose(f);
    return s;
}

/* max |a-b| and max |b| over n floats */
__attribute__((unused)) static double max_abs_diff(const float *a, const float *b, size_t n, double *max_ref)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        if (!(x <= d))
            d = x; /* NaN propagates as "large" */
        if (fabs(b[i]) > m)
            m = fabs(b[i]);
    }
    if (max_ref)
        *max_ref = m;
    return d;
}

#endif
