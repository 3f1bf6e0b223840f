/* test_redis_fleet.c - two instances on one event loop publish synthetic
 * totals through a real redis-server and each sums the other's; bad and
 * missing publications are skipped; a killed Redis makes the signals stale
 * and a restarted one fresh again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "conf/redisurl.h"
#include "control/redis_conn.h"
#include "control/redis_fleet.h"
#include "tests/unit/support/redis_fixture.h"

#define NS "sy:test"
#define SLICE_MS 100
#define SEE_EACH_OTHER_MS 6000 /* the first sighting and one delta take about 2 s */
#define STALE_MS 5000          /* a killed Redis is noticed within a round or two */
#define BACK_MS 10000          /* reconnect backoff (200 ms at most here) and a round */

/* One synthetic instance: its totals only grow, as a proxy's do. */
struct instance {
    struct window_sum totals[CONF_COLOURS];
    struct redis_conn *conn;
    struct redis_fleet *fleet;
};

struct fixture {
    struct redis_fixture server;
    struct event_base *base;
    struct instance a, b;
};

static void totals_cb(void *arg, enum conf_colour c, struct window_sum *out)
{
    struct instance *in = arg;

    window_sum_merge(out, &in->totals[c]);
}

/* n answers of pool c, each taking latency_us. */
static void serve(struct instance *in, enum conf_colour c, uint64_t n, uint64_t latency_us)
{
    in->totals[c].requests += n;
    in->totals[c].s2xx += n;
    in->totals[c].latency.counts[hist_bucket_of(latency_us)] += n;
    in->totals[c].latency.total += n;
}

static void run_ms(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

typedef bool (*until_fn)(const struct fixture *f);

/* Runs the loop in slices until done(f) or limit_ms; returns done(f). */
static bool run_until(struct fixture *f, until_fn done, int limit_ms)
{
    for (int waited = 0; waited < limit_ms && !done(f); waited += SLICE_MS)
        run_ms(f->base, SLICE_MS);
    return done(f);
}

static void instance_start(struct fixture *f, struct instance *in, const char *id)
{
    struct redis_url url;
    char why[128];
    struct redis_conn_opts opts = {
        .connect_timeout_ms = 500,
        .command_timeout_ms = 500,
        .backoff_first_ms = 50,
        .backoff_max_ms = 200,
    };

    assert_int_equal(redis_url_parse(f->server.url, &url, why, sizeof(why)), 0);
    in->conn = redis_conn_new(f->base, &url, &opts, NULL, NULL);
    assert_non_null(in->conn);
    in->fleet = redis_fleet_new(f->base, in->conn, NS, id, totals_cb, in);
    assert_non_null(in->fleet);
}

/* The conn first: its pending replies are then dropped, never delivered
 * to a freed fleet. */
static void instance_stop(struct instance *in)
{
    redis_conn_free(in->conn);
    redis_fleet_free(in->fleet);
    memset(in, 0, sizeof(*in));
}

static int group_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || redis_fixture_start(&f->server, NULL) < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;

    redis_fixture_stop(&f->server);
    free(f);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = *state;
    char out[32];

    if (f->server.pid == 0 && redis_fixture_restart(&f->server) < 0)
        return -1;
    if (redis_fixture_cmd(&f->server, out, sizeof(out), "FLUSHALL") < 0)
        return -1;
    f->base = event_base_new();
    if (f->base == NULL)
        return -1;
    instance_start(f, &f->a, "a");
    instance_start(f, &f->b, "b");
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    instance_stop(&f->a);
    instance_stop(&f->b);
    event_base_free(f->base);
    f->base = NULL;
    return 0;
}

static uint64_t fleet_requests(const struct instance *in, enum conf_colour c)
{
    struct window_sum s;

    window_sum_clear(&s);
    fleet_ring_sum(redis_fleet_ring(in->fleet), c, window_now_s(), FLEET_RING_SLOTS, &s);
    return s.requests;
}

static bool both_follow_both(const struct fixture *f)
{
    return fleet_ring_count(redis_fleet_ring(f->a.fleet)) == 2 &&
           fleet_ring_count(redis_fleet_ring(f->b.fleet)) == 2;
}

/* a served 300 blue, b 40 green, and both count exactly that. */
static bool both_see_all(const struct fixture *f)
{
    return fleet_requests(&f->a, CONF_BLUE) == 300 && fleet_requests(&f->a, CONF_GREEN) == 40 &&
           fleet_requests(&f->b, CONF_BLUE) == 300 && fleet_requests(&f->b, CONF_GREEN) == 40;
}

static bool both_fresh(const struct fixture *f)
{
    return redis_fleet_fresh(f->a.fleet) && redis_fleet_fresh(f->b.fleet);
}

static bool both_stale(const struct fixture *f)
{
    return !redis_fleet_fresh(f->a.fleet) && !redis_fleet_fresh(f->b.fleet);
}

static bool both_forgot_all(const struct fixture *f)
{
    return fleet_ring_count(redis_fleet_ring(f->a.fleet)) == 0 &&
           fleet_ring_count(redis_fleet_ring(f->b.fleet)) == 0;
}

/* Lets both see each other, then serves traffic they must both count. */
static void meet_and_serve(struct fixture *f)
{
    assert_true(run_until(f, both_follow_both, SEE_EACH_OTHER_MS));
    assert_true(both_fresh(f));
    serve(&f->a, CONF_BLUE, 300, 2000);
    serve(&f->b, CONF_GREEN, 40, 900000);
    assert_true(run_until(f, both_see_all, SEE_EACH_OTHER_MS));
}

static void test_each_sees_the_other(void **state)
{
    struct fixture *f = *state;

    assert_false(redis_fleet_fresh(f->a.fleet)); /* nothing read yet */
    /* Their past before they met is not traffic of the fleet's seconds. */
    serve(&f->a, CONF_BLUE, 5000, 2000);
    meet_and_serve(f);

    /* b's slow green answers are in a's p99 of green. */
    struct window_sum green;
    window_sum_clear(&green);
    fleet_ring_sum(redis_fleet_ring(f->a.fleet), CONF_GREEN, window_now_s(), 10, &green);
    assert_true(hist_sum_quantile(&green.latency, 0.99) >= hist_bucket_low(hist_bucket_of(900000)));

    json_t *st = redis_fleet_status_json(f->a.fleet);
    assert_non_null(st);
    assert_true(json_is_true(json_object_get(st, "fresh")));
    assert_string_equal(json_string_value(json_object_get(st, "instance")), "a");
    assert_int_equal(json_array_size(json_object_get(st, "instances")), 2);
    json_t *first = json_array_get(json_object_get(st, "instances"), 0);
    assert_non_null(json_object_get(json_object_get(first, "rps"), "blue"));
    assert_true(json_integer_value(json_object_get(first, "report_age_ms")) < 2000);
    json_decref(st);

    /* The pool_sum_fn reads the same ring. */
    struct window_sum blue;
    window_sum_clear(&blue);
    redis_fleet_pool_sum(f->b.fleet, CONF_BLUE, window_now_s(), FLEET_RING_SLOTS, &blue);
    assert_int_equal(blue.requests, 300);
}

static void test_bad_and_missing_signals_are_skipped(void **state)
{
    struct fixture *f = *state;
    char out[64];
    long long soon = (long long)time(NULL) * 1000 + 60000; /* live for the whole test */

    assert_int_equal(redis_fixture_cmd(&f->server, out, sizeof(out), "SET %s:signals:ghost %s", NS,
                                       "v1 garbage\n"),
                     0);
    assert_int_equal(redis_fixture_cmd(&f->server, out, sizeof(out), "ZADD %s:instances %lld %s",
                                       NS, soon, "ghost"),
                     0);
    assert_int_equal(redis_fixture_cmd(&f->server, out, sizeof(out), "ZADD %s:instances %lld %s",
                                       NS, soon, "gone"), /* no signals key */
                     0);
    meet_and_serve(f);
    assert_int_equal(fleet_ring_count(redis_fleet_ring(f->a.fleet)), 2);
    assert_true(both_fresh(f));
}

static void test_killed_redis_is_stale_and_comes_back(void **state)
{
    struct fixture *f = *state;

    meet_and_serve(f);
    redis_fixture_kill(&f->server);
    assert_true(run_until(f, both_stale, STALE_MS));
    /* Nothing is fed: the instances are forgotten, and the last seconds
     * are empty while the earlier ones still hold what was counted. */
    assert_true(run_until(f, both_forgot_all, STALE_MS));
    struct window_sum recent;
    window_sum_clear(&recent);
    fleet_ring_sum(redis_fleet_ring(f->a.fleet), CONF_BLUE, window_now_s(), 2, &recent);
    assert_int_equal(recent.requests, 0);
    assert_int_equal(fleet_requests(&f->a, CONF_BLUE), 300);
    json_t *st = redis_fleet_status_json(f->a.fleet);
    assert_true(json_is_false(json_object_get(st, "fresh")));
    assert_true(strlen(json_string_value(json_object_get(st, "last_error"))) > 0);
    json_decref(st);

    /* Restarted empty: both publish again and count only what is new. */
    assert_int_equal(redis_fixture_restart(&f->server), 0);
    assert_true(run_until(f, both_fresh, BACK_MS));
    assert_true(run_until(f, both_follow_both, SEE_EACH_OTHER_MS));
    serve(&f->a, CONF_BLUE, 7, 2000);
    struct window_sum s;
    for (int i = 0; i < SEE_EACH_OTHER_MS / SLICE_MS; i++) {
        window_sum_clear(&s);
        fleet_ring_sum(redis_fleet_ring(f->b.fleet), CONF_BLUE, window_now_s(), 3, &s);
        if (s.requests == 7)
            break;
        run_ms(f->base, SLICE_MS);
    }
    assert_int_equal(s.requests, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_sees_the_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_and_missing_signals_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_redis_is_stale_and_comes_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
