/* detect.c - the detector's verdict. */
#include "health/detect.h"

#include <stdio.h>

const char *verdict_name(enum verdict v)
{
    switch (v) {
    case VERDICT_INCONCLUSIVE:
        return "inconclusive";
    case VERDICT_OK:
        return "ok";
    case VERDICT_FAIL:
        return "fail";
    }
    return "unknown";
}

static void pool_numbers(const struct window_sum *s, struct detect_pool *out)
{
    out->requests = s->requests;
    out->errors = s->errors;
    out->error_rate = window_sum_error_rate(s);
    out->p50_us = hist_sum_quantile(&s->latency, 0.50);
    out->p99_us = hist_sum_quantile(&s->latency, 0.99);
}

static double at_least(double v, double floor)
{
    return v > floor ? v : floor;
}

void detect_judge(const struct conf_detector *d, const struct window_sum *candidate,
                  const struct window_sum *stable, struct detect_result *out)
{
    struct detect_pool *c = &out->candidate, *s = &out->stable;
    char *why = out->reason;
    size_t len = sizeof(out->reason);

    pool_numbers(candidate, c);
    pool_numbers(stable, s);
    out->verdict = VERDICT_FAIL;
    if (c->requests < d->min_requests) {
        out->verdict = VERDICT_INCONCLUSIVE;
        snprintf(why, len, "waiting for %u candidate requests, have %llu", d->min_requests,
                 (unsigned long long)c->requests);
        return;
    }
    if (c->error_rate > d->max_error_rate) {
        snprintf(why, len, "error rate %.2f%% (%llu of %llu) over max_error_rate %.2f%%",
                 c->error_rate * 100, (unsigned long long)c->errors,
                 (unsigned long long)c->requests, d->max_error_rate * 100);
        return;
    }
    if (c->p99_us > (uint64_t)d->max_p99_ms * 1000) {
        snprintf(why, len, "p99 %.1f ms over max_p99_ms %u", c->p99_us / 1000.0, d->max_p99_ms);
        return;
    }
    if (s->requests >= d->min_requests) {
        double err_base = at_least(s->error_rate, DETECT_ERROR_RATE_FLOOR);
        double p99_base = at_least((double)s->p99_us, DETECT_P99_FLOOR_US);
        if (c->error_rate > d->max_error_ratio * err_base) {
            snprintf(why, len,
                     "error rate %.2f%% over %.1f x stable's %.2f%% (max_error_ratio, floor "
                     "%.0f%%)",
                     c->error_rate * 100, d->max_error_ratio, s->error_rate * 100,
                     DETECT_ERROR_RATE_FLOOR * 100);
            return;
        }
        if ((double)c->p99_us > d->max_p99_ratio * p99_base) {
            snprintf(why, len,
                     "p99 %.1f ms over %.1f x stable's %.1f ms (max_p99_ratio, floor %d ms)",
                     c->p99_us / 1000.0, d->max_p99_ratio, s->p99_us / 1000.0,
                     DETECT_P99_FLOOR_US / 1000);
            return;
        }
    }
    out->verdict = VERDICT_OK;
    snprintf(why, len, "error rate %.2f%%, p99 %.1f ms over %llu requests", c->error_rate * 100,
             c->p99_us / 1000.0, (unsigned long long)c->requests);
}
