/* fleet_ring.h - the fleet's outcomes, second by second, from each
 * instance's totals since its start.
 *
 * Every second the reader feeds each instance's latest published totals
 * (both pools). The ring keeps, per instance, the totals it last saw and
 * adds what grew since (the delta) to the slot of the second it was read
 * in: a ring of FLEET_RING_SLOTS one-second slots per pool, each a
 * window_sum (counters and a latency histogram). So the sum of the last N
 * seconds is what the fleet served in those seconds, read the same way as
 * an instance's own windows (see control/pool_sum.h).
 *
 * An instance seen for the first time counts nothing: its totals are its
 * whole past, not this second. One whose totals went backwards or whose
 * start changed restarted: all its current totals are new. One not fed for
 * FLEET_FORGET_MS is forgotten, so that after a gap (Redis away) its next
 * report is a first sighting again rather than a gap's worth of traffic
 * landing in one second. Seconds nobody fed stay empty: while nothing is
 * fed, the sums fall to zero as their seconds pass.
 *
 * Pure: no I/O, no clock of its own (the caller passes CLOCK_MONOTONIC ms,
 * whose second now_ms / 1000 is window_now_s()'s). One thread.
 * Memory: 725 KB of slots plus 11 KB per instance followed.
 */
#ifndef SY_CONTROL_FLEET_RING_H
#define SY_CONTROL_FLEET_RING_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "health/window.h"

#define FLEET_RING_SLOTS 64
#define FLEET_FORGET_MS 3000 /* an instance not fed for this long is forgotten */
#define FLEET_RATE_S 5       /* the per-instance request rate covers this many seconds */
#define FLEET_PEERS_MAX 256  /* instances followed at most */
#define FLEET_ID_MAX 64      /* bytes of an instance id, NUL included */

struct fleet_ring;

/* A new ring, every slot empty, no instance followed; NULL when out of
 * memory. */
struct fleet_ring *fleet_ring_new(void);
void fleet_ring_free(struct fleet_ring *r); /* NULL is fine */

/* Feeds instance's totals since its start (started_ms, the instance's wall
 * clock) as published with sequence number seq, read at now_ms (monotonic,
 * >= 0). instance and totals are borrowed for the call. Returns 0, or -1
 * when instance is empty or too long, or new while FLEET_PEERS_MAX are
 * followed, or out of memory: nothing is counted then. */
int fleet_ring_feed(struct fleet_ring *r, int64_t now_ms, const char *instance, int64_t started_ms,
                    uint64_t seq, const struct window_sum totals[CONF_COLOURS])
    __attribute__((warn_unused_result));

/* Forgets the instances last fed FLEET_FORGET_MS or more before now_ms.
 * Returns how many it forgot. */
size_t fleet_ring_expire(struct fleet_ring *r, int64_t now_ms);

/* Adds pool c's fleet outcomes of seconds now_s - seconds + 1 .. now_s to
 * *out (seconds capped at FLEET_RING_SLOTS): proxy_pool_sum's contract. */
void fleet_ring_sum(const struct fleet_ring *r, enum conf_colour c, int64_t now_s, unsigned seconds,
                    struct window_sum *out);

/* One followed instance, for status. */
struct fleet_instance {
    const char *id;           /* borrowed until the next feed or expire */
    int64_t started_ms;       /* its start, as it published it */
    uint64_t seq;             /* its last publication's number */
    double rps[CONF_COLOURS]; /* requests/s of each pool over the last FLEET_RATE_S s */
    int64_t report_age_ms;    /* since its last new publication (a new seq) was fed */
};

/* How many instances the ring follows. */
size_t fleet_ring_count(const struct fleet_ring *r);

/* Fills *out with instance i (i < fleet_ring_count()) as of now_ms. */
void fleet_ring_instance(const struct fleet_ring *r, size_t i, int64_t now_ms,
                         struct fleet_instance *out);

#endif
