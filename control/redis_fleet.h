/* redis_fleet.h - the fleet's outcome signals through Redis.
 *
 * Every REDIS_FLEET_TICK_MS each instance publishes its totals since start
 * (both pools, control/redis_signals.h text) and reads everyone's:
 *
 *   SET <ns>:signals:<instance> <text> PX REDIS_FLEET_SIGNALS_PX
 *   ZADD <ns>:instances <wall ms> <instance>
 *   ZREMRANGEBYSCORE <ns>:instances -inf <wall ms - REDIS_FLEET_KEEP_MS>
 *   ZRANGEBYSCORE <ns>:instances <wall ms - REDIS_FLEET_LIVE_MS> +inf
 *   MGET <ns>:signals:<each of them>
 *
 * and feeds what it read into a fleet_ring, whose sums the leader's
 * detector and the max_rps gate read (redis_fleet_pool_sum is a
 * pool_sum_fn). The sorted set names who published lately, so the reader
 * needs no KEYS scan; a dead instance's key expires on its own.
 *
 * The event loop never waits: every command is asynchronous with its own
 * timeout, and a round still under way when the next tick comes makes that
 * tick skip. While Redis is away nothing is fed: the ring empties as its
 * seconds pass and redis_fleet_fresh() says false. Instances compare wall
 * clocks (the sorted set's scores): clocks more than REDIS_FLEET_LIVE_MS
 * apart hide each other.
 */
#ifndef SY_CONTROL_REDIS_FLEET_H
#define SY_CONTROL_REDIS_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf/config.h"
#include "control/fleet_ring.h"
#include "health/window.h"

#define REDIS_FLEET_TICK_MS 1000
#define REDIS_FLEET_SIGNALS_PX 3000 /* a signal key outlives its last write by this */
#define REDIS_FLEET_LIVE_MS 3000    /* instances that published within this are read */
#define REDIS_FLEET_KEEP_MS 10000   /* older <ns>:instances entries are removed */
#define REDIS_FLEET_TIMEOUT_MS 500  /* each command's */
#define REDIS_FLEET_FRESH_MS 2500   /* fresh while the last good read is this recent */

struct redis_conn;
struct redis_fleet;

/* Adds pool c's totals since this process started (window_totals_add's
 * counters that only grow) to *out, which the caller cleared. */
typedef void (*fleet_totals_fn)(void *arg, enum conf_colour c, struct window_sum *out);

/* Starts publishing this instance's totals (read through totals(arg)) and
 * reading the fleet's, from the first tick on. base, conn and arg are
 * borrowed and must outlive the fleet; ns and instance are copied. Returns
 * NULL when out of memory or when ns or instance make a bad key (logged). */
struct redis_fleet *redis_fleet_new(struct event_base *base, struct redis_conn *conn,
                                    const char *ns, const char *instance, fleet_totals_fn totals,
                                    void *arg);

/* Frees f (NULL is fine). The replies of its commands still pending would
 * find it gone: free it after its conn (redis_conn_free drops pending
 * callbacks), or before it with no loop iteration in between. */
void redis_fleet_free(struct redis_fleet *f);

/* True while the link is up and the fleet was read within
 * REDIS_FLEET_FRESH_MS: the ring's last seconds are the fleet's. */
bool redis_fleet_fresh(const struct redis_fleet *f);

/* The fleet's per-second sums (borrowed, for as long as f lives). */
const struct fleet_ring *redis_fleet_ring(const struct redis_fleet *f);

/* A pool_sum_fn (control/pool_sum.h) over f's ring; fleet is the struct
 * redis_fleet. */
void redis_fleet_pool_sum(void *fleet, enum conf_colour c, int64_t now_s, unsigned seconds,
                          struct window_sum *out);

/* {"fresh":bool,"instance":ID,"published":SEQ,"last_error":TEXT,
 *  "instances":[{"id":ID,"rps":{"blue":R,"green":R},"report_age_ms":N,
 *                "started_ms":N},...]}: a new object, or NULL when out of
 * memory. rps covers the last FLEET_RATE_S seconds. */
json_t *redis_fleet_status_json(const struct redis_fleet *f);

#endif
