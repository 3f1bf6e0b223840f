/* metrics.c - collecting the numbers and writing the Prometheus text. */
#include "control/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "control/guard.h"
#include "control/redis_fleet.h"
#include "control/reload.h"
#include "control/service.h"
#include "control/status.h"
#include "health/window.h"
#include "proxy/worker.h"

/* The `le` bounds in µs and as written: exact decimal text, no float
 * formatting. */
static const struct {
    uint64_t us;
    const char *text;
} le_bounds[METRICS_LE_BOUNDS] = {
    {1000, "0.001"},  {2500, "0.0025"}, {5000, "0.005"},  {10000, "0.01"},  {25000, "0.025"},
    {50000, "0.05"},  {100000, "0.1"},  {250000, "0.25"}, {500000, "0.5"},  {1000000, "1"},
    {2500000, "2.5"}, {5000000, "5"},   {10000000, "10"}, {30000000, "30"}, {60000000, "60"},
};

/* The histogram's resolution, said in each latency family's HELP. */
#define LATENCY_NOTE                                                                               \
    "A latency less than 1/32 below a bound may count in the next bucket; _sum adds bucket "       \
    "midpoints (within 1.6 %)."

static const char *const outcome_names[METRICS_OUTCOMES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx", "connect_error", "timeout", "reset",
};

static const enum verdict verdicts[] = {VERDICT_OK, VERDICT_INCONCLUSIVE, VERDICT_FAIL};
static const enum server_admin admin_states[] = {SERVER_ENABLED, SERVER_DRAINING, SERVER_DISABLED};

/* --- from window sums ------------------------------------------------- */

static uint64_t midpoint_sum_us(const struct hist_sum *h)
{
    uint64_t sum = 0;

    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        if (h->counts[b] != 0)
            sum += h->counts[b] *
                   (hist_bucket_low(b) + (hist_bucket_high(b) - hist_bucket_low(b)) / 2);
    }
    return sum;
}

void metrics_traffic_from_sum(struct metrics_traffic *t, const struct window_sum *sum)
{
    const uint64_t by_outcome[METRICS_OUTCOMES] = {
        sum->s1xx, sum->s2xx,           sum->s3xx,     sum->s4xx,
        sum->s5xx, sum->connect_errors, sum->timeouts, sum->resets,
    };

    memcpy(t->outcomes, by_outcome, sizeof(t->outcomes));
    for (size_t i = 0; i < METRICS_LE_BOUNDS; i++)
        t->le[i] = hist_sum_count_le(&sum->latency, le_bounds[i].us);
    t->count = sum->latency.total;
    t->sum_us = midpoint_sum_us(&sum->latency);
}

/* --- collecting ------------------------------------------------------- */

static void collect_server(const struct server_state *st, const char *name,
                           struct window_sum *scratch, struct metrics_server *out)
{
    out->name = name;
    out->admin = server_state_admin(st);
    out->health = server_state_health(st);
    out->in_flight = server_state_busy(st);
    window_sum_clear(scratch);
    server_state_totals(st, scratch);
    metrics_traffic_from_sum(&out->traffic, scratch);
}

/* One pool: its totals over every worker, and each server's. */
static int collect_pool(const struct status_sources *src, enum conf_colour c,
                        struct window_sum *scratch, struct metrics_pool *out)
{
    const struct snapshot *snap = reloader_current(src->reloader);
    const struct conf_pool *pool = &snap->cfg->pools[c];

    window_sum_clear(scratch);
    if (src->proxy != NULL)
        proxy_pool_totals(src->proxy, c, scratch);
    metrics_traffic_from_sum(&out->traffic, scratch);
    out->servers = calloc(pool->nservers ? pool->nservers : 1, sizeof(*out->servers));
    if (out->servers == NULL)
        return -1;
    out->nservers = pool->nservers;
    for (size_t i = 0; i < pool->nservers; i++)
        collect_server(snap->servers[c][i], pool->servers[i].name, scratch, &out->servers[i]);
    return 0;
}

static void collect_scalars(const struct status_sources *src, struct metrics_input *in)
{
    unsigned seconds;

    in->state = *service_state(src->svc);
    in->persisted = service_persisted(src->svc);
    in->verdict =
        src->guard != NULL ? guard_last(src->guard, &seconds)->verdict : VERDICT_INCONCLUSIVE;
    in->connections = src->proxy != NULL ? proxy_connections(src->proxy) : 0;
    in->connections_refused = src->proxy != NULL ? proxy_connections_refused(src->proxy) : 0;
    in->reloads = reloader_count(src->reloader);
}

/* Instances the fleet heard from lately, this one included once it has
 * published. */
static uint32_t live_instances(const struct redis_fleet *f)
{
    const struct fleet_ring *ring = redis_fleet_ring(f);
    struct timespec ts;
    struct fleet_instance in;
    uint32_t n = 0;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (size_t i = 0; i < fleet_ring_count(ring); i++) {
        fleet_ring_instance(ring, i, now_ms, &in);
        if (in.report_age_ms <= REDIS_FLEET_LIVE_MS)
            n++;
    }
    return n;
}

static void collect_redis(const struct status_sources *src, struct metrics_input *in)
{
    if (src->sync == NULL)
        return;
    in->redis = true;
    redis_sync_stats(src->sync, &in->redis_stats);
    in->fleet_instances = src->fleet != NULL ? live_instances(src->fleet) : 0;
}

int metrics_collect(const struct status_sources *src, struct metrics_input *in)
{
    /* A sum holds a histogram: not for the stack. */
    struct window_sum *scratch = malloc(sizeof(*scratch));

    memset(in, 0, sizeof(*in));
    if (scratch == NULL)
        return -1;
    collect_scalars(src, in);
    collect_redis(src, in);
    for (int c = 0; c < CONF_COLOURS; c++) {
        if (collect_pool(src, (enum conf_colour)c, scratch, &in->pools[c]) < 0) {
            free(scratch);
            metrics_input_clear(in);
            return -1;
        }
    }
    free(scratch);
    return 0;
}

void metrics_input_clear(struct metrics_input *in)
{
    for (int c = 0; c < CONF_COLOURS; c++) {
        free(in->pools[c].servers);
        in->pools[c].servers = NULL;
        in->pools[c].nservers = 0;
    }
}

/* --- writing ------------------------------------------------------------ */

/* The text being written; the first failed append is remembered, so that
 * the writers need not check each line. */
struct text {
    struct evbuffer *buf;
    bool failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (evbuffer_add_vprintf(t->buf, fmt, ap) < 0)
        t->failed = true;
    va_end(ap);
}

/* A label value, escaped as the exposition format asks: backslash, double
 * quote and line feed. */
static void put_label_value(struct text *t, const char *v)
{
    for (;;) {
        size_t plain = strcspn(v, "\\\"\n");
        if (plain > 0 && evbuffer_add(t->buf, v, plain) < 0)
            t->failed = true;
        v += plain;
        if (*v == '\0')
            return;
        put(t, "%s", *v == '\n' ? "\\n" : *v == '"' ? "\\\"" : "\\\\");
        v++;
    }
}

static void put_family(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Whose sample it is: a pool, or one server of it (server non-NULL). */
struct series {
    const char *pool;
    const char *server;
};

/* name{pool="..",server="..",extra}; extra (a fixed text such as
 * outcome="2xx", which needs no escaping) may be NULL. */
static void put_series(struct text *t, const char *name, const struct series *s, const char *extra)
{
    put(t, "%s{pool=\"%s\"", name, s->pool);
    if (s->server != NULL) {
        put(t, ",server=\"");
        put_label_value(t, s->server);
        put(t, "\"");
    }
    if (extra != NULL)
        put(t, ",%s", extra);
    put(t, "}");
}

static void put_sample(struct text *t, const char *name, const struct series *s, const char *extra,
                       uint64_t value)
{
    put_series(t, name, s, extra);
    put(t, " %" PRIu64 "\n", value);
}

/* value / 10^digits as a decimal without trailing zeros, from integers:
 * exact, and the same whatever the locale. */
static void put_fixed(struct text *t, uint64_t value, int digits)
{
    uint64_t scale = 1;

    for (int i = 0; i < digits; i++)
        scale *= 10;
    uint64_t frac = value % scale;
    put(t, "%" PRIu64, value / scale);
    if (frac == 0)
        return;
    for (; frac % 10 == 0; frac /= 10)
        digits--;
    put(t, ".%0*" PRIu64, digits, frac);
}

static void put_requests(struct text *t, const char *name, const struct series *s,
                         const struct metrics_traffic *tr)
{
    char extra[32];

    for (int i = 0; i < METRICS_OUTCOMES; i++) {
        snprintf(extra, sizeof(extra), "outcome=\"%s\"", outcome_names[i]);
        put_sample(t, name, s, extra, tr->outcomes[i]);
    }
}

/* name_bucket for every bound and +Inf, name_sum, name_count. */
static void put_latency(struct text *t, const char *name, const struct series *s,
                        const struct metrics_traffic *tr)
{
    char sample[64], extra[32];

    snprintf(sample, sizeof(sample), "%s_bucket", name);
    for (int i = 0; i < METRICS_LE_BOUNDS; i++) {
        snprintf(extra, sizeof(extra), "le=\"%s\"", le_bounds[i].text);
        put_sample(t, sample, s, extra, tr->le[i]);
    }
    put_sample(t, sample, s, "le=\"+Inf\"", tr->count);
    snprintf(sample, sizeof(sample), "%s_sum", name);
    put_series(t, sample, s, NULL);
    put(t, " ");
    put_fixed(t, tr->sum_us, 6);
    put(t, "\n");
    snprintf(sample, sizeof(sample), "%s_count", name);
    put_sample(t, sample, s, NULL, tr->count);
}

/* --- the families ------------------------------------------------------- */

static const char *pool_name(int c)
{
    return conf_colour_name((enum conf_colour)c);
}

static void put_pools(struct text *t, const struct metrics_input *in)
{
    put_family(t, "switchyard_requests_total", "counter",
               "Exchanges with the pool's servers since start, by outcome.");
    for (int c = 0; c < CONF_COLOURS; c++)
        put_requests(t, "switchyard_requests_total", &(struct series){pool_name(c), NULL},
                     &in->pools[c].traffic);
    put_family(t, "switchyard_upstream_latency_seconds", "histogram",
               "Upstream latency of the pool's responses since start. " LATENCY_NOTE);
    for (int c = 0; c < CONF_COLOURS; c++)
        put_latency(t, "switchyard_upstream_latency_seconds", &(struct series){pool_name(c), NULL},
                    &in->pools[c].traffic);
}

/* Writes one server's samples of a family. */
typedef void (*server_put_cb)(struct text *t, const char *name, const struct series *s,
                              const struct metrics_server *srv);

static void put_servers(struct text *t, const struct metrics_input *in, const char *name,
                        server_put_cb cb)
{
    for (int c = 0; c < CONF_COLOURS; c++) {
        for (size_t i = 0; i < in->pools[c].nservers; i++) {
            const struct metrics_server *srv = &in->pools[c].servers[i];
            cb(t, name, &(struct series){pool_name(c), srv->name}, srv);
        }
    }
}

static void server_requests(struct text *t, const char *name, const struct series *s,
                            const struct metrics_server *srv)
{
    put_requests(t, name, s, &srv->traffic);
}

static void server_latency(struct text *t, const char *name, const struct series *s,
                           const struct metrics_server *srv)
{
    put_latency(t, name, s, &srv->traffic);
}

static void server_up(struct text *t, const char *name, const struct series *s,
                      const struct metrics_server *srv)
{
    put_sample(t, name, s, NULL, srv->health == SERVER_UP);
}

static void server_admin(struct text *t, const char *name, const struct series *s,
                         const struct metrics_server *srv)
{
    char extra[32];

    for (size_t i = 0; i < sizeof(admin_states) / sizeof(admin_states[0]); i++) {
        snprintf(extra, sizeof(extra), "state=\"%s\"", server_admin_name(admin_states[i]));
        put_sample(t, name, s, extra, srv->admin == admin_states[i]);
    }
}

static void server_in_flight(struct text *t, const char *name, const struct series *s,
                             const struct metrics_server *srv)
{
    put_sample(t, name, s, NULL, srv->in_flight);
}

static void put_server_families(struct text *t, const struct metrics_input *in)
{
    static const struct {
        const char *name, *type, *help;
        server_put_cb cb;
    } families[] = {
        {"switchyard_server_requests_total", "counter",
         "Exchanges with the server since start, by outcome.", server_requests},
        {"switchyard_server_upstream_latency_seconds", "histogram",
         "Upstream latency of the server's responses since start. " LATENCY_NOTE, server_latency},
        {"switchyard_server_up", "gauge", "1 when the health checks have the server up, else 0.",
         server_up},
        {"switchyard_server_admin_state", "gauge",
         "1 for the operator's admin state of the server, 0 for the others.", server_admin},
        {"switchyard_server_in_flight", "gauge", "Exchanges under way on the server.",
         server_in_flight},
    };

    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        put_family(t, families[i].name, families[i].type, families[i].help);
        put_servers(t, in, families[i].name, families[i].cb);
    }
}

static void put_state(struct text *t, const struct state *st, bool persisted)
{
    put_family(t, "switchyard_candidate_weight_ratio", "gauge",
               "Share of the traffic the candidate pool gets, 0..1.");
    put(t, "switchyard_candidate_weight_ratio ");
    put_fixed(t, st->candidate_bp, 4);
    put(t, "\n");
    put_family(t, "switchyard_stable", "gauge", "1 for the stable pool, 0 for the candidate.");
    for (int c = 0; c < CONF_COLOURS; c++)
        put(t, "switchyard_stable{pool=\"%s\"} %d\n", pool_name(c),
            st->stable == (enum conf_colour)c);
    put_family(t, "switchyard_phase", "gauge", "1 for the current phase, 0 for the others.");
    for (int p = 0; p < STATE_PHASES; p++)
        put(t, "switchyard_phase{phase=\"%s\"} %d\n", state_phase_name((enum state_phase)p),
            st->phase == (enum state_phase)p);
    put_family(t, "switchyard_state_generation", "gauge",
               "Generation of the traffic state: +1 at every change.");
    put(t, "switchyard_state_generation %" PRIu64 "\n", st->generation);
    put_family(t, "switchyard_state_persisted", "gauge",
               "1 when the state file holds the current state (or none is configured), else 0.");
    put(t, "switchyard_state_persisted %d\n", persisted);
}

static void put_process(struct text *t, const struct metrics_input *in)
{
    put_family(t, "switchyard_detector_verdict", "gauge",
               "1 for the detector's last verdict on the candidate, 0 for the others.");
    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++)
        put(t, "switchyard_detector_verdict{verdict=\"%s\"} %d\n", verdict_name(verdicts[i]),
            in->verdict == verdicts[i]);
    put_family(t, "switchyard_connections", "gauge", "Client connections open now.");
    put(t, "switchyard_connections %" PRIu32 "\n", in->connections);
    put_family(t, "switchyard_connections_refused_total", "counter",
               "Client connections refused over limits.max_connections since start.");
    put(t, "switchyard_connections_refused_total %" PRIu32 "\n", in->connections_refused);
    put_family(t, "switchyard_reloads_total", "counter", "Config reloads applied since start.");
    put(t, "switchyard_reloads_total %u\n", in->reloads);
}

static void put_gauge(struct text *t, const char *name, const char *help, uint64_t value)
{
    put_family(t, name, "gauge", help);
    put(t, "%s %" PRIu64 "\n", name, value);
}

static void put_counter(struct text *t, const char *name, const char *help, uint64_t value)
{
    put_family(t, name, "counter", help);
    put(t, "%s %" PRIu64 "\n", name, value);
}

static void put_redis(struct text *t, const struct metrics_input *in)
{
    const struct redis_sync_stats *st = &in->redis_stats;

    put_gauge(t, "switchyard_redis_up", "1 while the link to Redis is up, else 0.", st->up);
    put_counter(t, "switchyard_redis_connects_total",
                "Links to Redis made since start, the first included.", st->connects);
    put_gauge(t, "switchyard_fleet_leader",
              "1 while this instance holds the fleet's leader lease, else 0.", st->leader);
    put_gauge(t, "switchyard_redis_synced", "1 when Redis holds this instance's current state.",
              st->synced);
    put_counter(t, "switchyard_redis_conflicts_total",
                "State writes refused because another instance wrote first.", st->conflicts);
    put_counter(t, "switchyard_redis_adopted_total",
                "States taken from Redis (other instances' changes).", st->adopted);
    put_gauge(t, "switchyard_redis_events_queued", "Events waiting to be written to Redis.",
              st->events_queued);
    put_counter(t, "switchyard_redis_events_dropped_total",
                "Events lost because the queue was full while Redis was away.", st->events_dropped);
    put_gauge(t, "switchyard_fleet_instances",
              "Instances that published their signals in the last 3 s.", in->fleet_instances);
}

int metrics_render(const struct metrics_input *in, struct evbuffer *out)
{
    struct text t = {out, false};

    put_pools(&t, in);
    put_server_families(&t, in);
    put_state(&t, &in->state, in->persisted);
    put_process(&t, in);
    if (in->redis)
        put_redis(&t, in);
    return t.failed ? -1 : 0;
}
