/* worker.h - the data plane: N worker threads, each with its own event loop,
 * its own SO_REUSEPORT listeners and its own upstream pools.
 *
 * The control thread talks to workers only through their notification pipe
 * and the shared atomics in struct proxy_shared; workers never lock.
 */
#ifndef SY_PROXY_WORKER_H
#define SY_PROXY_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/config.h"
#include "proxy/route.h"

struct proxy;
struct snapshot;
struct flip_notice;
struct window_sum;

/* Binds every listen address of snap's config once per worker and prepares
 * the workers, each holding a reference to snap. split is borrowed and must
 * outlive the proxy. Returns a new proxy, or NULL after logging why (address
 * in use, no memory, ...). */
struct proxy *proxy_new(struct snapshot *snap, struct route_split *split);

/* Starts the worker threads. Returns 0 or -1. */
int proxy_start(struct proxy *p) __attribute__((warn_unused_result));

/* Hands snap (referenced) to every worker, which switches to it at its next
 * loop turn: new pools, weights, timeouts, limits and routing options apply
 * from the next request; exchanges under way finish as they started. The
 * listeners, the worker count and the access log path stay: the caller
 * refuses a config that changes them. */
void proxy_reload(struct proxy *p, struct snapshot *snap);

/* Reopens access_log.path (after log rotation). Returns 0, or -1 with the
 * reason logged and the old file still in use. */
int proxy_reopen_access_log(struct proxy *p);

/* The descriptor that becomes readable when a worker flipped the candidate
 * to 0 (see proxy/signals.h); proxy_read_flip() takes one notice: 1, or 0
 * when none is left. */
int proxy_flip_fd(const struct proxy *p);
int proxy_read_flip(struct proxy *p, struct flip_notice *n);

/* Adds every worker's outcomes for pool colour over the last `seconds` up to
 * now_s (window_now_s()) to *sum. Safe on the control thread while the
 * workers run. */
void proxy_pool_sum(const struct proxy *p, enum conf_colour colour, int64_t now_s,
                    unsigned seconds, struct window_sum *sum);

/* Adds every worker's outcomes for pool colour since start to *sum (totals
 * that only grow: Prometheus counters). Safe on the control thread while the
 * workers run. */
void proxy_pool_totals(const struct proxy *p, enum conf_colour colour, struct window_sum *sum);

/* Client connections open now, all workers. */
uint32_t proxy_connections(const struct proxy *p);

/* Connections refused over limits.max_connections since start. */
uint32_t proxy_connections_refused(const struct proxy *p);

/* Stops accepting; every worker finishes its exchanges and exits. */
void proxy_drain(struct proxy *p);

/* Cuts every connection now and makes the workers exit. */
void proxy_stop(struct proxy *p);

/* Number of workers still running. */
unsigned proxy_running(const struct proxy *p);

/* Joins the workers (after they stopped) and frees everything; NULL is fine. */
void proxy_free(struct proxy *p);

#endif
