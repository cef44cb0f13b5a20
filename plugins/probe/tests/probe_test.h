/* Shared by the probe plugin's tests: one registry and model per test program, and
 * small wrappers over lp_call_* that report failures through check(). Include after
 * check.h and loupe/plugins.h. */
#ifndef PROBE_TEST_H
#define PROBE_TEST_H

#include <math.h>
#include <stdio.h>

static lp_registry *reg;
static lp_model *model;

__attribute__((unused)) static lp_call *call_new(const char *method)
{
    lp_error err = {0};
    lp_call *c = lp_call_new(reg, method, model, &err);
    if (!c)
        fprintf(stderr, "%s: %s\n", method, err.msg);
    return c;
}

__attribute__((unused)) static void set(lp_call *c, const char *k, const char *v)
{
    lp_error err = {0};
    if (lp_call_set_param(c, k, v, &err))
        check(0, "set %s=%s: %s", k, v, err.msg);
}

__attribute__((unused)) static double scalar(const lp_call *c, const char *name)
{
    int i = lp_call_find_result(c, name);
    return i >= 0 && lp_call_result_kind(c, i) == LP_RESULT_SCALAR ? lp_call_result_scalar(c, i) : NAN;
}

#endif
