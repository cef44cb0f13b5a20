/* Timing helpers shared by the C benchmarks. Header-only. */
#ifndef LOUPE_BENCH_UTIL_H
#define LOUPE_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* seconds on the monotonic clock */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the median of v[0..n) (sorts v) */
static inline __attribute__((unused)) double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
