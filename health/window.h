/* window.h - outcome windows: what one series saw over the last seconds.
 *
 * A window is one series (a pool or a server, as seen by one worker): a ring
 * of WINDOW_SLOTS one-second slots, each holding the second it counts, the
 * outcome counters of that second and a histogram of upstream latency.
 *
 * One thread writes a window (its worker); any thread may read it. The
 * writer never takes a lock nor does a read-modify-write: it owns every
 * counter, so a relaxed load and a relaxed store are enough. A slot that is
 * reused for a new second is guarded by its `sec` field used as a sequence:
 * a reader that overlaps the reset skips the slot rather than count it half
 * cleared.
 *
 * Beside the slots, a window keeps totals since it was made (the same
 * counters and a latency histogram, 64 bits each, never reset): what a
 * Prometheus counter must report, where the slots forget after 64 s.
 *
 * Memory: about 2.8 KB per slot (the histogram), 187 KB per window.
 */
#ifndef SY_HEALTH_WINDOW_H
#define SY_HEALTH_WINDOW_H

#include <stdint.h>

#include "health/histogram.h"

#define WINDOW_SLOTS 64

enum outcome_kind {
    OUTCOME_RESPONSE,      /* the upstream answered with a status */
    OUTCOME_CONNECT_ERROR, /* no connection to the server */
    OUTCOME_TIMEOUT,       /* connect, write or response timed out */
    OUTCOME_RESET,         /* the connection broke before a whole response */
};

struct outcome {
    enum outcome_kind kind;
    int status; /* the response status, 0 unless RESPONSE; outside 100..599 counts as 5xx */
    uint64_t latency_us; /* upstream latency; recorded in the histogram only for RESPONSE */
};

struct window;

/* A new window with every slot empty; NULL when out of memory. */
struct window *window_new(void);

/* Frees w (NULL is fine). No writer or reader may use it any more. */
void window_free(struct window *w);

/* Writer (one thread only): counts o into the slot of second now_s
 * (monotonic seconds, window_now_s()), clearing that slot first when it last
 * held an older second, and into the totals. An outcome older than its
 * slot's second (more than WINDOW_SLOTS seconds late) or with a negative
 * now_s is left out of the slots; the totals count every outcome. */
void window_record(struct window *w, int64_t now_s, const struct outcome *o);

/* A reader's totals. errors = 5xx + connect errors + timeouts + resets (a 4xx
 * is the client's fault: not an error). requests counts every outcome. */
struct window_sum {
    uint64_t requests, s1xx, s2xx, s3xx, s4xx, s5xx, connect_errors, timeouts, resets, errors;
    struct hist_sum latency;
};

void window_sum_clear(struct window_sum *s);

/* Reader (any thread): adds the slots of seconds now_s - seconds + 1 ..
 * now_s to *s (seconds is capped at WINDOW_SLOTS). A slot that holds another
 * second, or that the writer resets while it is read, is skipped. */
void window_sum_add(struct window_sum *s, const struct window *w, int64_t now_s, unsigned seconds);

/* Reader (any thread): adds w's totals since it was made to *into. Each
 * counter only grows, so two reads never go backwards; a read that overlaps
 * a write may see a class count and its latency bucket one apart. */
void window_totals_add(struct window_sum *into, const struct window *w);

void window_sum_merge(struct window_sum *into, const struct window_sum *from);
/* Takes part, an earlier sum of some of the same slots, out of *from (to
 * count only what came after it); counts never go below 0. */
void window_sum_subtract(struct window_sum *from, const struct window_sum *part);

/* errors / requests; 0 when there was no request. */
double window_sum_error_rate(const struct window_sum *s);

/* The monotonic clock (CLOCK_MONOTONIC) in whole seconds, for writers and
 * readers alike. */
int64_t window_now_s(void);

#endif
