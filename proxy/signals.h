/* signals.h - what a worker learns from each exchange.
 *
 * Every attempt on an upstream server ends in one outcome (a response and
 * its status, or a connect error, a timeout, a reset), recorded in the
 * worker's own windows: one for the server, one for its pool. The control
 * thread reads them for the detector, status and metrics.
 *
 * The instant flip: a worker that sees detector.fast_rollback
 * .consecutive_failures failures in a row from the candidate pool sets the
 * candidate's weight to 0 itself, with one compare-and-swap on the split
 * every worker reads before each request, and only then tells the control
 * thread, which records the rollback through the state machine. No request
 * is routed to the candidate after that store.
 */
#ifndef SY_PROXY_SIGNALS_H
#define SY_PROXY_SIGNALS_H

#include <stdint.h>

#include "conf/config.h"
#include "health/window.h"

struct worker;
struct upstream_server;

/* What a worker that flipped tells the control thread (one pipe write, under
 * PIPE_BUF, so notices from several workers never interleave). */
struct flip_notice {
    unsigned worker;
    enum conf_colour candidate; /* the pool that was failing */
    uint32_t failures;          /* in a row */
    char last[200];             /* the last failure, e.g. "green-1: status 503" */
};

/* Records the outcome o of one attempt on srv by worker w; why (may be NULL)
 * describes a failure for the flip notice. */
void signals_record(struct worker *w, struct upstream_server *srv, const struct outcome *o,
                    const char *why);

#endif
