/* metrics.h - the Prometheus text exposition (format 0.0.4) of a running
 * switchyard, served as GET /metrics by the admin HTTP listener.
 *
 * Two steps, so that the text is tested without a running proxy:
 * metrics_collect() reads the live sources into a struct metrics_input
 * (plain numbers), and metrics_render() writes the text from that alone.
 *
 * The counters are totals since start (health/window.h's totals), never the
 * 64-second windows: Prometheus takes rates itself. Every name starts with
 * "switchyard_"; README.md ("admin.http") lists them all.
 */
#ifndef SY_CONTROL_METRICS_H
#define SY_CONTROL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "control/redis_sync.h"
#include "control/state.h"
#include "health/detect.h"
#include "proxy/snapshot.h"

struct evbuffer;
struct status_sources;
struct window_sum;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The finite `le` bounds of the latency histograms (0.001 s .. 60 s); +Inf
 * is the count. */
#define METRICS_LE_BOUNDS 15

/* The outcome label's values, in the order they are rendered. */
enum metrics_outcome {
    METRICS_1XX,
    METRICS_2XX,
    METRICS_3XX,
    METRICS_4XX,
    METRICS_5XX,
    METRICS_CONNECT_ERROR,
    METRICS_TIMEOUT,
    METRICS_RESET,
    METRICS_OUTCOMES
};

/* One series' traffic since start, as Prometheus shows it. */
struct metrics_traffic {
    uint64_t outcomes[METRICS_OUTCOMES];
    uint64_t le[METRICS_LE_BOUNDS]; /* responses whose latency is <= each bound */
    uint64_t count;                 /* responses (only they have a latency) */
    uint64_t sum_us;                /* their latencies, from bucket midpoints */
};

/* Reduces a sum (of window totals) to what the text shows. */
void metrics_traffic_from_sum(struct metrics_traffic *t, const struct window_sum *sum);

struct metrics_server {
    const char *name; /* borrowed (the running config's) */
    enum server_admin admin;
    enum server_health health;
    uint32_t in_flight;
    struct metrics_traffic traffic;
};

struct metrics_pool {
    struct metrics_traffic traffic;
    struct metrics_server *servers; /* owned; in config order */
    size_t nservers;
};

/* Everything /metrics shows, as plain values. */
struct metrics_input {
    struct state state;
    bool persisted;
    enum verdict verdict; /* the detector's last */
    uint32_t connections;
    uint32_t connections_refused;
    unsigned reloads;
    struct metrics_pool pools[CONF_COLOURS];
    bool redis; /* configured: the redis and fleet families are shown */
    struct redis_sync_stats redis_stats;
    uint32_t fleet_instances; /* that published within REDIS_FLEET_LIVE_MS */
};

/* Fills *in from src (borrowed; see control/status.h). The server names stay
 * borrowed from the running config: render before the control loop runs a
 * reload. Returns 0, or -1 when out of memory (*in is then cleared). */
int metrics_collect(const struct status_sources *src, struct metrics_input *in)
    __attribute__((warn_unused_result));

/* Frees what metrics_collect() allocated; *in can be collected again. */
void metrics_input_clear(struct metrics_input *in);

/* Appends the exposition text of *in to out. Returns 0, or -1 when out of
 * memory (out then holds part of the text). */
int metrics_render(const struct metrics_input *in, struct evbuffer *out)
    __attribute__((warn_unused_result));

#endif
