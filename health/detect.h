/* detect.h - the detector's verdict on a candidate, from the outcomes of
 * both pools over the same window.
 *
 * Pure: numbers in, a verdict and its reason out. The control thread calls
 * it every 100 ms (control/guard.c) and rolls back on a fail.
 *
 * The candidate fails when, with at least detector.min_requests requests in
 * the window, any of these holds:
 *   - its error rate is over max_error_rate;
 *   - its p99 upstream latency is over max_p99_ms;
 *   - its error rate is over max_error_ratio times stable's, where stable's
 *     counts as at least DETECT_ERROR_RATE_FLOOR;
 *   - its p99 is over max_p99_ratio times stable's, where stable's counts as
 *     at least DETECT_P99_FLOOR_US.
 * The relative checks need stable to have min_requests too: with a quiet
 * stable pool only the ceilings judge. The floors keep a near-perfect stable
 * pool (0 errors, 1 ms p99) from failing every candidate that is merely
 * good.
 */
#ifndef SY_HEALTH_DETECT_H
#define SY_HEALTH_DETECT_H

#include <stdint.h>

#include "conf/config.h"
#include "health/window.h"

#define DETECT_ERROR_RATE_FLOOR 0.01 /* 1 % */
#define DETECT_P99_FLOOR_US 25000    /* 25 ms */

enum verdict {
    VERDICT_INCONCLUSIVE, /* not enough requests yet */
    VERDICT_OK,
    VERDICT_FAIL,
};

const char *verdict_name(enum verdict v);

/* The numbers a verdict rests on, for one pool. */
struct detect_pool {
    uint64_t requests;
    uint64_t errors;
    double error_rate;
    uint64_t p50_us, p99_us;
};

struct detect_result {
    enum verdict verdict;
    struct detect_pool candidate, stable;
    char reason[256]; /* why, with the numbers: for logs, events and status */
};

/* Judges candidate against stable (sums over the same window) under d. */
void detect_judge(const struct conf_detector *d, const struct window_sum *candidate,
                  const struct window_sum *stable, struct detect_result *out);

#endif
