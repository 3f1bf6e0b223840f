/* test_metrics.c - the Prometheus text: a whole render line by line, label
 * escaping, histogram buckets from window sums, and collecting from a
 * snapshot and a service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf/config.h"
#include "control/metrics.h"
#include "control/reload.h"
#include "control/service.h"
#include "control/status.h"
#include "health/window.h"
#include "proxy/snapshot.h"

/* Renders in and returns the text as a new string. */
static char *render(const struct metrics_input *in)
{
    struct evbuffer *buf = evbuffer_new();

    assert_non_null(buf);
    assert_int_equal(metrics_render(in, buf), 0);
    size_t len = evbuffer_get_length(buf);
    char *text = malloc(len + 1);
    assert_non_null(text);
    assert_int_equal(evbuffer_remove(buf, text, len), (int)len);
    text[len] = '\0';
    evbuffer_free(buf);
    return text;
}

/* Compares text with want line by line; prints every mismatch before
 * failing, so that one run shows them all. */
static void check_lines(const char *text, const char *const *want, size_t nwant)
{
    size_t line = 0, failed = 0;

    for (const char *p = text; *p != '\0'; line++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl); /* every line ends with a newline */
        int len = (int)(nl - p);
        if (line >= nwant || strncmp(p, want[line], (size_t)len) != 0 || want[line][len] != '\0') {
            print_message("line %zu: got  %.*s\n       want %s\n", line + 1, len, p,
                          line < nwant ? want[line] : "(nothing)");
            failed++;
        }
        p = nl + 1;
    }
    if (line != nwant)
        print_message("got %zu lines, want %zu\n", line, nwant);
    assert_int_equal(failed, 0);
    assert_int_equal(line, nwant);
}

/* Zero traffic everywhere but the counts given. */
static struct metrics_traffic traffic(uint64_t s2xx, uint64_t s5xx, uint64_t timeouts,
                                      uint64_t fast, uint64_t sum_us)
{
    struct metrics_traffic t = {0};

    t.outcomes[METRICS_2XX] = s2xx;
    t.outcomes[METRICS_5XX] = s5xx;
    t.outcomes[METRICS_TIMEOUT] = timeouts;
    /* fast responses under 1 ms, the others between 2.5 and 5 ms */
    for (int i = 0; i < METRICS_LE_BOUNDS; i++)
        t.le[i] = i < 2 ? fast : s2xx + s5xx;
    t.count = s2xx + s5xx;
    t.sum_us = sum_us;
    return t;
}

#define HELP_LATENCY                                                                               \
    "A latency less than 1/32 below a bound may count in the next bucket; _sum adds bucket "       \
    "midpoints (within 1.6 %)."

static const char *const want_full[] = {
    "# HELP switchyard_requests_total Exchanges with the pool's servers since start, by outcome.",
    "# TYPE switchyard_requests_total counter",
    "switchyard_requests_total{pool=\"blue\",outcome=\"1xx\"} 0",
    "switchyard_requests_total{pool=\"blue\",outcome=\"2xx\"} 30",
    "switchyard_requests_total{pool=\"blue\",outcome=\"3xx\"} 0",
    "switchyard_requests_total{pool=\"blue\",outcome=\"4xx\"} 0",
    "switchyard_requests_total{pool=\"blue\",outcome=\"5xx\"} 0",
    "switchyard_requests_total{pool=\"blue\",outcome=\"connect_error\"} 0",
    "switchyard_requests_total{pool=\"blue\",outcome=\"timeout\"} 0",
    "switchyard_requests_total{pool=\"blue\",outcome=\"reset\"} 0",
    "switchyard_requests_total{pool=\"green\",outcome=\"1xx\"} 0",
    "switchyard_requests_total{pool=\"green\",outcome=\"2xx\"} 2",
    "switchyard_requests_total{pool=\"green\",outcome=\"3xx\"} 0",
    "switchyard_requests_total{pool=\"green\",outcome=\"4xx\"} 0",
    "switchyard_requests_total{pool=\"green\",outcome=\"5xx\"} 5",
    "switchyard_requests_total{pool=\"green\",outcome=\"connect_error\"} 0",
    "switchyard_requests_total{pool=\"green\",outcome=\"timeout\"} 1",
    "switchyard_requests_total{pool=\"green\",outcome=\"reset\"} 0",
    "# HELP switchyard_upstream_latency_seconds Upstream latency of the pool's responses since "
    "start. " HELP_LATENCY,
    "# TYPE switchyard_upstream_latency_seconds histogram",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.001\"} 20",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.0025\"} 20",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.005\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.01\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.025\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.05\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.1\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.25\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"0.5\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"1\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"2.5\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"5\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"10\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"30\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"60\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"blue\",le=\"+Inf\"} 30",
    "switchyard_upstream_latency_seconds_sum{pool=\"blue\"} 1.5",
    "switchyard_upstream_latency_seconds_count{pool=\"blue\"} 30",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.001\"} 0",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.0025\"} 0",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.005\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.01\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.025\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.05\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.1\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.25\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"0.5\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"1\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"2.5\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"5\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"10\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"30\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"60\"} 7",
    "switchyard_upstream_latency_seconds_bucket{pool=\"green\",le=\"+Inf\"} 7",
    "switchyard_upstream_latency_seconds_sum{pool=\"green\"} 0.02107",
    "switchyard_upstream_latency_seconds_count{pool=\"green\"} 7",
    "# HELP switchyard_server_requests_total Exchanges with the server since start, by outcome.",
    "# TYPE switchyard_server_requests_total counter",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome=\"1xx\"} 0",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome=\"2xx\"} 2",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome=\"3xx\"} 0",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome=\"4xx\"} 0",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome=\"5xx\"} 5",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome="
    "\"connect_error\"} 0",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome="
    "\"timeout\"} 1",
    "switchyard_server_requests_total{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",outcome=\"reset\"}"
    " 0",
    "# HELP switchyard_server_upstream_latency_seconds Upstream latency of the server's "
    "responses since start. " HELP_LATENCY,
    "# TYPE switchyard_server_upstream_latency_seconds histogram",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.001\"} 0",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.0025\"} 0",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.005\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.01\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.025\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.05\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.1\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.25\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"0.5\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"1\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"2.5\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"5\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"10\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"30\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"60\"} 7",
    "switchyard_server_upstream_latency_seconds_bucket{pool=\"green\",server=\"g\\\"1\\\\x\\ny\","
    "le=\"+Inf\"} 7",
    "switchyard_server_upstream_latency_seconds_sum{pool=\"green\",server=\"g\\\"1\\\\x\\ny\"} "
    "0.02107",
    "switchyard_server_upstream_latency_seconds_count{pool=\"green\",server=\"g\\\"1\\\\x\\ny\"} 7",
    "# HELP switchyard_server_up 1 when the health checks have the server up, else 0.",
    "# TYPE switchyard_server_up gauge",
    "switchyard_server_up{pool=\"green\",server=\"g\\\"1\\\\x\\ny\"} 0",
    "# HELP switchyard_server_admin_state 1 for the operator's admin state of the server, 0 for "
    "the others.",
    "# TYPE switchyard_server_admin_state gauge",
    "switchyard_server_admin_state{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",state=\"enabled\"} 0",
    "switchyard_server_admin_state{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",state=\"draining\"} 1",
    "switchyard_server_admin_state{pool=\"green\",server=\"g\\\"1\\\\x\\ny\",state=\"disabled\"} 0",
    "# HELP switchyard_server_in_flight Exchanges under way on the server.",
    "# TYPE switchyard_server_in_flight gauge",
    "switchyard_server_in_flight{pool=\"green\",server=\"g\\\"1\\\\x\\ny\"} 3",
    "# HELP switchyard_candidate_weight_ratio Share of the traffic the candidate pool gets, 0..1.",
    "# TYPE switchyard_candidate_weight_ratio gauge",
    "switchyard_candidate_weight_ratio 0.1234",
    "# HELP switchyard_stable 1 for the stable pool, 0 for the candidate.",
    "# TYPE switchyard_stable gauge",
    "switchyard_stable{pool=\"blue\"} 1",
    "switchyard_stable{pool=\"green\"} 0",
    "# HELP switchyard_phase 1 for the current phase, 0 for the others.",
    "# TYPE switchyard_phase gauge",
    "switchyard_phase{phase=\"idle\"} 0",
    "switchyard_phase{phase=\"preflight\"} 0",
    "switchyard_phase{phase=\"progressing\"} 0",
    "switchyard_phase{phase=\"paused\"} 0",
    "switchyard_phase{phase=\"promoted\"} 0",
    "switchyard_phase{phase=\"rolled_back\"} 1",
    "# HELP switchyard_state_generation Generation of the traffic state: +1 at every change.",
    "# TYPE switchyard_state_generation gauge",
    "switchyard_state_generation 42",
    "# HELP switchyard_state_persisted 1 when the state file holds the current state (or none is "
    "configured), else 0.",
    "# TYPE switchyard_state_persisted gauge",
    "switchyard_state_persisted 0",
    "# HELP switchyard_detector_verdict 1 for the detector's last verdict on the candidate, 0 for "
    "the others.",
    "# TYPE switchyard_detector_verdict gauge",
    "switchyard_detector_verdict{verdict=\"ok\"} 0",
    "switchyard_detector_verdict{verdict=\"inconclusive\"} 0",
    "switchyard_detector_verdict{verdict=\"fail\"} 1",
    "# HELP switchyard_connections Client connections open now.",
    "# TYPE switchyard_connections gauge",
    "switchyard_connections 17",
    "# HELP switchyard_connections_refused_total Client connections refused over "
    "limits.max_connections since start.",
    "# TYPE switchyard_connections_refused_total counter",
    "switchyard_connections_refused_total 4",
    "# HELP switchyard_reloads_total Config reloads applied since start.",
    "# TYPE switchyard_reloads_total counter",
    "switchyard_reloads_total 2",
};

/* Blue has traffic and no server; green one server whose name needs every
 * escape. */
static void test_full_render(void **state)
{
    struct metrics_server green = {
        .name = "g\"1\\x\ny",
        .admin = SERVER_DRAINING,
        .health = SERVER_DOWN,
        .in_flight = 3,
        .traffic = traffic(2, 5, 1, 0, 21070),
    };
    struct metrics_input in = {
        .state = {.stable = CONF_BLUE,
                  .candidate_bp = 1234,
                  .phase = STATE_ROLLED_BACK,
                  .generation = 42},
        .persisted = false,
        .verdict = VERDICT_FAIL,
        .connections = 17,
        .connections_refused = 4,
        .reloads = 2,
    };

    in.pools[CONF_BLUE].traffic = traffic(30, 0, 0, 20, 1500000);
    in.pools[CONF_GREEN].traffic = green.traffic;
    in.pools[CONF_GREEN].servers = &green;
    in.pools[CONF_GREEN].nservers = 1;
    char *text = render(&in);
    check_lines(text, want_full, sizeof(want_full) / sizeof(want_full[0]));
    free(text);
}

/* The weight and the latency sum are decimals without trailing zeros. */
static void test_decimals(void **state)
{
    static const struct {
        uint32_t bp;
        uint64_t sum_us;
        const char *ratio, *sum;
    } cases[] = {
        {0, 0, "switchyard_candidate_weight_ratio 0\n", "_sum{pool=\"blue\"} 0\n"},
        {2500, 1, "switchyard_candidate_weight_ratio 0.25\n", "_sum{pool=\"blue\"} 0.000001\n"},
        {10000, 12000000, "switchyard_candidate_weight_ratio 1\n", "_sum{pool=\"blue\"} 12\n"},
        {1, 1234567, "switchyard_candidate_weight_ratio 0.0001\n",
         "_sum{pool=\"blue\"} 1.234567\n"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct metrics_input in = {.state = {.candidate_bp = cases[i].bp}};
        in.pools[CONF_BLUE].traffic.sum_us = cases[i].sum_us;
        char *text = render(&in);
        if (strstr(text, cases[i].ratio) == NULL || strstr(text, cases[i].sum) == NULL)
            fail_msg("bp %u, sum %llu µs: want \"%s\" and \"%s\"", cases[i].bp,
                     (unsigned long long)cases[i].sum_us, cases[i].ratio, cases[i].sum);
        free(text);
    }
}

/* From a window's totals: outcomes by kind, cumulative `le` counts (a
 * latency just under a bound counts in the next bucket, as documented), the
 * count of responses and the midpoint sum. */
static void test_traffic_from_sum(void **state)
{
    struct window *w = window_new();
    struct window_sum *sum = malloc(sizeof(*sum));
    struct metrics_traffic t;
    struct outcome fast = {OUTCOME_RESPONSE, 200, 40};        /* a bucket of its own */
    struct outcome mid = {OUTCOME_RESPONSE, 503, 2000};       /* bucket 1984..2015 */
    struct outcome edge = {OUTCOME_RESPONSE, 404, 995};       /* bucket 992..1007 */
    struct outcome slow = {OUTCOME_RESPONSE, 200, 90000000};  /* clamped to 60 s */
    struct outcome refused = {OUTCOME_CONNECT_ERROR, 0, 777}; /* no latency */

    assert_non_null(w);
    assert_non_null(sum);
    for (int i = 0; i < 3; i++)
        window_record(w, 5, &fast);
    for (int i = 0; i < 2; i++)
        window_record(w, 6, &mid);
    window_record(w, 7, &edge);
    window_record(w, 8, &slow);
    window_record(w, 8, &refused);
    window_sum_clear(sum);
    window_totals_add(sum, w);
    metrics_traffic_from_sum(&t, sum);

    assert_int_equal(t.outcomes[METRICS_2XX], 4);
    assert_int_equal(t.outcomes[METRICS_4XX], 1);
    assert_int_equal(t.outcomes[METRICS_5XX], 2);
    assert_int_equal(t.outcomes[METRICS_CONNECT_ERROR], 1);
    assert_int_equal(t.count, 7);
    assert_int_equal(t.le[0], 3);  /* <= 1 ms: 995 µs's bucket ends at 1007 */
    assert_int_equal(t.le[1], 6);  /* <= 2.5 ms */
    assert_int_equal(t.le[13], 6); /* <= 30 s */
    assert_int_equal(t.le[14], 6); /* <= 60 s: the top bucket ends past 60 s */
    uint64_t top = hist_bucket_of(HIST_MAX_US);
    uint64_t top_mid = hist_bucket_low(top) + (hist_bucket_high(top) - hist_bucket_low(top)) / 2;
    assert_int_equal(t.sum_us, 3 * 40 + 2 * 1999 + 999 + top_mid);
    free(sum);
    window_free(w);
}

static struct config *load_config(void)
{
    static const char text[] =
        "{\"listen\": [{\"addr\": \"127.0.0.1:1\"}],"
        " \"pools\": {\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": \"127.0.0.1:2\"},"
        "                                     {\"name\": \"b2\", \"addr\": \"127.0.0.1:3\"}]},"
        "             \"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": \"127.0.0.1:4\"}]}},"
        " \"routing\": {\"stable\": \"green\", \"candidate_percent\": 12.5}}";
    struct conf_errors errs = {0};
    struct config *cfg = config_load_string(text, strlen(text), "t.json", "/tmp", &errs);

    conf_errors_print(&errs, stderr);
    conf_errors_clear(&errs);
    assert_non_null(cfg);
    return cfg;
}

/* Collecting reads the snapshot's servers (states, totals of every worker)
 * and the service's state; without a proxy the pools' own totals are 0. */
static void test_collect(void **state)
{
    struct config *cfg = load_config();
    struct service *svc = service_new(cfg);
    struct snapshot *snap = snapshot_new(cfg, 2, NULL);
    struct reloader *rl = reloader_new(NULL, false, snap, NULL, svc);
    struct status_sources src = {.svc = svc, .reloader = rl};
    struct outcome ok = {OUTCOME_RESPONSE, 200, 100}, reset = {OUTCOME_RESET, 0, 0};
    struct metrics_input in;

    assert_non_null(svc);
    assert_non_null(snap);
    assert_non_null(rl);
    struct server_state *b2 = snap->servers[CONF_BLUE][1];
    atomic_store(&b2->admin, SERVER_DISABLED);
    atomic_store(&b2->health, SERVER_DOWN);
    server_state_busy_add(b2, 0, 2);
    server_state_busy_add(b2, 1, 1);
    window_record(server_state_window(b2, 0), 10, &ok);
    window_record(server_state_window(b2, 1), 10, &ok);
    window_record(server_state_window(b2, 1), 200, &reset);

    assert_int_equal(metrics_collect(&src, &in), 0);
    assert_int_equal(in.state.stable, CONF_GREEN);
    assert_int_equal(in.state.candidate_bp, 1250);
    assert_true(in.persisted);
    assert_int_equal(in.verdict, VERDICT_INCONCLUSIVE);
    assert_int_equal(in.pools[CONF_BLUE].nservers, 2);
    assert_int_equal(in.pools[CONF_GREEN].nservers, 1);
    assert_string_equal(in.pools[CONF_BLUE].servers[1].name, "b2");
    assert_string_equal(in.pools[CONF_GREEN].servers[0].name, "g1");
    const struct metrics_server *s = &in.pools[CONF_BLUE].servers[1];
    assert_int_equal(s->admin, SERVER_DISABLED);
    assert_int_equal(s->health, SERVER_DOWN);
    assert_int_equal(s->in_flight, 3);
    assert_int_equal(s->traffic.outcomes[METRICS_2XX], 2);
    assert_int_equal(s->traffic.outcomes[METRICS_RESET], 1);
    assert_int_equal(s->traffic.count, 2);
    assert_int_equal(in.pools[CONF_BLUE].servers[0].traffic.count, 0);
    assert_int_equal(in.pools[CONF_BLUE].traffic.outcomes[METRICS_2XX], 0);

    char *text = render(&in);
    assert_non_null(strstr(text, "\nswitchyard_candidate_weight_ratio 0.125\n"));
    assert_non_null(strstr(text, "\nswitchyard_stable{pool=\"green\"} 1\n"));
    assert_non_null(strstr(text, "\nswitchyard_server_up{pool=\"blue\",server=\"b2\"} 0\n"));
    free(text);
    metrics_input_clear(&in);
    assert_null(in.pools[CONF_BLUE].servers);
    reloader_free(rl);
    snapshot_unref(snap);
    service_free(svc);
}

static const char want_redis[] =
    "# HELP switchyard_redis_up 1 while the link to Redis is up, else 0.\n"
    "# TYPE switchyard_redis_up gauge\n"
    "switchyard_redis_up 1\n"
    "# HELP switchyard_redis_connects_total Links to Redis made since start, the first "
    "included.\n"
    "# TYPE switchyard_redis_connects_total counter\n"
    "switchyard_redis_connects_total 3\n"
    "# HELP switchyard_fleet_leader 1 while this instance holds the fleet's leader lease, else "
    "0.\n"
    "# TYPE switchyard_fleet_leader gauge\n"
    "switchyard_fleet_leader 1\n"
    "# HELP switchyard_redis_synced 1 when Redis holds this instance's current state.\n"
    "# TYPE switchyard_redis_synced gauge\n"
    "switchyard_redis_synced 0\n"
    "# HELP switchyard_redis_conflicts_total State writes refused because another instance "
    "wrote first.\n"
    "# TYPE switchyard_redis_conflicts_total counter\n"
    "switchyard_redis_conflicts_total 4\n"
    "# HELP switchyard_redis_adopted_total States taken from Redis (other instances' changes).\n"
    "# TYPE switchyard_redis_adopted_total counter\n"
    "switchyard_redis_adopted_total 5\n"
    "# HELP switchyard_redis_events_queued Events waiting to be written to Redis.\n"
    "# TYPE switchyard_redis_events_queued gauge\n"
    "switchyard_redis_events_queued 6\n"
    "# HELP switchyard_redis_events_dropped_total Events lost because the queue was full while "
    "Redis was away.\n"
    "# TYPE switchyard_redis_events_dropped_total counter\n"
    "switchyard_redis_events_dropped_total 7\n"
    "# HELP switchyard_fleet_instances Instances that published their signals in the last 3 s.\n"
    "# TYPE switchyard_fleet_instances gauge\n"
    "switchyard_fleet_instances 2\n";

/* The Redis and fleet families come last, and only with Redis configured. */
static void test_redis_render(void **state)
{
    struct metrics_input in = {
        .redis_stats = {.up = true,
                        .leader = true,
                        .synced = false,
                        .connects = 3,
                        .conflicts = 4,
                        .adopted = 5,
                        .events_queued = 6,
                        .events_dropped = 7},
        .fleet_instances = 2,
    };
    char *text = render(&in);

    assert_null(strstr(text, "switchyard_redis"));
    assert_null(strstr(text, "switchyard_fleet"));
    free(text);
    in.redis = true;
    text = render(&in);
    size_t len = strlen(text), want = strlen(want_redis);
    assert_true(len > want);
    assert_string_equal(text + len - want, want_redis);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_render),      cmocka_unit_test(test_decimals),
        cmocka_unit_test(test_traffic_from_sum), cmocka_unit_test(test_collect),
        cmocka_unit_test(test_redis_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
