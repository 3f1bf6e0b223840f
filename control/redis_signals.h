/* redis_signals.h - one instance's outcome totals as compact text, for its
 * <ns>:signals:<instance> key, and a strict reader for the leader.
 *
 * Every second each instance writes its totals since start for both pools;
 * the leader sums the fleet's. The text, lines ending in '\n':
 *
 *   v1 <started_ms> <seq>
 *   blue <requests> <1xx> <2xx> <3xx> <4xx> <5xx> <connect_errors> <timeouts> <resets> <errors>[
 * <bucket>:<count>]... green ...
 *
 * The latency histogram is sparse: only non-zero buckets, in increasing
 * bucket order; its total is their sum. Size: about 60 bytes of counters per
 * pool plus 6 to 12 bytes per non-zero bucket, so a busy instance with ~100
 * buckets per pool weighs 1.5 to 2.5 KB; an idle one about 70 bytes; the
 * worst case (every bucket, 15-digit counts) about 28 KB.
 *
 * The reader trusts nothing: every number is bounded, every bucket index
 * checked, and anything else is refused with a reason.
 */
#ifndef SY_CONTROL_REDIS_SIGNALS_H
#define SY_CONTROL_REDIS_SIGNALS_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "health/window.h"

/* The largest counter either side accepts: a million outcomes a second for
 * 30 years stays below it, and the leader can sum thousands of instances
 * without overflow. */
#define REDIS_SIGNALS_COUNT_MAX 1000000000000000ull /* 10^15 */

/* Encodes sums (blue, green), the instance's start (wall clock ms) and the
 * sequence number of this publication. Returns 0 with *out new (caller frees;
 * NUL-terminated, *len bytes without the NUL), or -1 when out of memory or
 * when a counter is above REDIS_SIGNALS_COUNT_MAX or started_ms is negative. */
int redis_signals_encode(const struct window_sum sums[CONF_COLOURS], int64_t started_ms,
                         uint64_t seq, char **out, size_t *len) __attribute__((warn_unused_result));

/* Decodes len bytes of text (no NUL needed) into sums, *started_ms and *seq.
 * Returns 0, or -1 with why naming the line and the problem; the outputs are
 * then untouched. */
int redis_signals_decode(const char *text, size_t len, struct window_sum sums[CONF_COLOURS],
                         int64_t *started_ms, uint64_t *seq, char *why, size_t why_len)
    __attribute__((warn_unused_result));

#endif
