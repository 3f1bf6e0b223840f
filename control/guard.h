/* guard.h - watches the candidate and rolls it back: on the workers'
 * instant-flip notices at once, and on the detector's verdict, judged every
 * GUARD_TICK_MS over detector.window_s.
 *
 * Both go through the state machine (who "fast-flip" or "detector", the
 * numbers in the reason), so a rollback by either is persisted, recorded and
 * published like an operator's. The detector judges only traffic seen since
 * the candidate last started getting some: failures from before a rollback
 * never count against the next attempt. A flip whose notice was lost (the
 * split at 0 while the state is not, on two ticks in a row) is recorded by
 * the tick as a "fast-flip" rollback too.
 */
#ifndef SY_CONTROL_GUARD_H
#define SY_CONTROL_GUARD_H

#include <event2/event.h>

#include "control/pool_sum.h"
#include "health/detect.h"

#define GUARD_TICK_MS 100

struct guard;
struct proxy;
struct reloader;
struct service;

/* Starts watching. base, proxy, svc and rl are borrowed and must outlive the
 * guard. Returns NULL when out of memory. */
struct guard *guard_new(struct event_base *base, struct proxy *proxy, struct service *svc,
                        struct reloader *rl);
void guard_free(struct guard *g); /* NULL is fine */

/* Where the detector reads the pools' recent outcomes: fn(arg), or the
 * proxy's own windows when fn is NULL (the default). In a fleet, the leader
 * judges the fleet's sums (redis_fleet_pool_sum); an instance's workers
 * still flip the candidate out at once on their own failures. A change of
 * source re-arms the guard. */
void guard_set_source(struct guard *g, pool_sum_fn fn, void *arg);

/* From the next tick on, judges only traffic from then on (a rollout's new
 * step must earn its own verdict). */
void guard_rearm(struct guard *g);

/* The last verdict (borrowed, updated every tick), and the seconds of
 * traffic it covered (seconds may be NULL). */
const struct detect_result *guard_last(const struct guard *g, unsigned *seconds);

#endif
