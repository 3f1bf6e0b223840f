/* redis_sync.h - one service's state shared by a fleet through Redis.
 *
 * Every instance keeps its own state machine and routes by it; Redis holds
 * the fleet's copy. A local change (an operator's, a rollout's, a rollback)
 * is written with a compare-and-set on the generation the instance last saw
 * there; the script publishes the new generation and every other instance
 * reads and adopts it. A writer whose base is stale is refused and adopts
 * what Redis holds instead, except that a rollback always wins: it is
 * applied again on top of the newer state, never lost to a progression made
 * without knowing of it.
 *
 * The data plane never waits on Redis: every operation is asynchronous and
 * bounded by its own timer. While Redis is away the instance serves its last
 * known state, local rollbacks still apply at once, and both the state and
 * the events queued meanwhile are written when Redis returns (an empty Redis,
 * restarted without persistence, is seeded with the instance's state).
 *
 * Leadership: the instance that holds <ns>:leader (SET NX PX, renewed at a
 * third of the lease) is the only one that advances a rollout. Without a
 * Redis link no instance can prove it leads, so a rollout holds.
 */
#ifndef SY_CONTROL_REDIS_SYNC_H
#define SY_CONTROL_REDIS_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/config.h"

#define REDIS_SYNC_POLL_MS 1000        /* re-read the state even without a message */
#define REDIS_SYNC_EVENTS_QUEUED 4096  /* events waiting for Redis, at most */
#define REDIS_SYNC_EVENTS_MAXLEN 10000 /* the stream keeps about this many */
#define REDIS_SYNC_EVENTS_READ 256     /* events redis_sync_read_events() gives */

struct event_base;
struct redis_conn;
struct redis_sync;
struct service;

/* Starts syncing svc through the Redis of cfg (its redis section must be
 * enabled). base and svc are borrowed and must outlive it; cfg is read
 * during the call only. instance names this process in the fleet (NULL:
 * "<hostname>:<pid>"). Returns NULL when out of memory or the URL does not
 * parse (logged). */
struct redis_sync *redis_sync_new(struct event_base *base, struct service *svc,
                                  const struct conf_redis *cfg, const char *instance);
void redis_sync_free(struct redis_sync *rs); /* NULL is fine */

/* Runs base until the shared state was read and adopted (or this instance's
 * seeded an empty Redis), at most timeout_ms. Returns true when it was: an
 * instance reads the fleet's state before it accepts traffic. */
bool redis_sync_wait_ready(struct redis_sync *rs, uint32_t timeout_ms);

/* The link, for the fleet's signals to share (borrowed: lives as long as
 * rs), and this instance's name in the fleet. */
struct redis_conn *redis_sync_conn(struct redis_sync *rs);
const char *redis_sync_instance(const struct redis_sync *rs);

/* Shutting down: stops renewing the lease and gives it back when held, so
 * that another instance leads at once rather than after the lease. */
void redis_sync_step_down(struct redis_sync *rs);

/* True while this instance holds a lease it renewed in time. */
bool redis_sync_leader(const struct redis_sync *rs);

/* The link, the lease and what waits to be written, for status. A new
 * object, or NULL when out of memory. */
json_t *redis_sync_status_json(const struct redis_sync *rs);

/* Counters for metrics. */
struct redis_sync_stats {
    bool up;
    bool leader;
    bool synced;             /* Redis holds this instance's current state (as last seen, link up) */
    uint64_t connects;       /* links made, the first included */
    uint64_t conflicts;      /* writes refused because another instance wrote first */
    uint64_t adopted;        /* states taken from Redis */
    uint64_t events_queued;  /* waiting to be written */
    uint64_t events_dropped; /* lost: the queue was full while Redis was away */
};
void redis_sync_stats(const struct redis_sync *rs, struct redis_sync_stats *out);

/* The fleet's audit trail, for `switchyardctl events`: events (new, the
 * callback owns it) is a JSON array of the stream's last
 * REDIS_SYNC_EVENTS_READ events, oldest first, each the stored event object
 * plus "instance" (who made it); or events is NULL and err (borrowed) says
 * why: "Redis did not answer within 1000 ms", "Redis is unreachable: ...". */
typedef void (*redis_events_cb)(json_t *events, const char *err, void *arg);

/* Reads <ns>:events (XREVRANGE), waiting at most timeout_ms for Redis.
 * Returns 0: cb runs exactly once, later, from the loop (with an error when
 * rs is freed first); or -1 when out of memory: cb never runs. arg is
 * borrowed until cb. */
int redis_sync_read_events(struct redis_sync *rs, uint32_t timeout_ms, redis_events_cb cb,
                           void *arg) __attribute__((warn_unused_result));

#endif
