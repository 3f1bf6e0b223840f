/* test_fleet_ring.c - the fleet's per-second deltas: first sightings,
 * restarts, forgetting, sums over seconds, and a fleet-wide p99 from merged
 * histograms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/fleet_ring.h"

#define T0_MS 1000000 /* an arbitrary monotonic start: second 1000 */
#define T0_S (T0_MS / 1000)
#define STARTED_A 1700000000000
#define STARTED_B 1700000000500

/* Two pools' totals of one instance. */
struct totals {
    struct window_sum s[CONF_COLOURS];
};

static int setup(void **state)
{
    *state = fleet_ring_new();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    fleet_ring_free(*state);
    return 0;
}

/* Counts n answers of status class 2 (ok) or 5 (error), each taking
 * latency_us, into pool c of t. */
static void serve(struct totals *t, enum conf_colour c, uint64_t n, int class, uint64_t latency_us)
{
    struct window_sum *s = &t->s[c];

    s->requests += n;
    if (class == 5) {
        s->s5xx += n;
        s->errors += n;
    } else {
        s->s2xx += n;
    }
    s->latency.counts[hist_bucket_of(latency_us)] += n;
    s->latency.total += n;
}

static void feed(struct fleet_ring *r, int64_t now_ms, const char *id, int64_t started_ms,
                 uint64_t seq, const struct totals *t)
{
    assert_int_equal(fleet_ring_feed(r, now_ms, id, started_ms, seq, t->s), 0);
}

static struct window_sum sum_of(const struct fleet_ring *r, enum conf_colour c, int64_t now_s,
                                unsigned seconds)
{
    struct window_sum s;

    window_sum_clear(&s);
    fleet_ring_sum(r, c, now_s, seconds, &s);
    return s;
}

static uint64_t requests_of(const struct fleet_ring *r, enum conf_colour c, int64_t now_s,
                            unsigned seconds)
{
    return sum_of(r, c, now_s, seconds).requests;
}

static void test_first_sighting_counts_nothing(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0};

    serve(&a, CONF_BLUE, 5000, 2, 1000); /* its past, before we looked */
    feed(r, T0_MS, "a", STARTED_A, 1, &a);
    assert_int_equal(fleet_ring_count(r), 1);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S, FLEET_RING_SLOTS), 0);

    serve(&a, CONF_BLUE, 30, 2, 1000);
    serve(&a, CONF_GREEN, 7, 5, 1000);
    feed(r, T0_MS + 1000, "a", STARTED_A, 2, &a);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 1, 1), 30);
    struct window_sum green = sum_of(r, CONF_GREEN, T0_S + 1, 1);
    assert_int_equal(green.requests, 7);
    assert_int_equal(green.errors, 7);
    assert_int_equal(green.s5xx, 7);
    assert_int_equal(green.latency.total, 7);
}

static void test_deltas_land_in_their_seconds(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0}, b = {0};
    const uint64_t per_second_a[] = {10, 20, 0, 40};

    feed(r, T0_MS, "a", STARTED_A, 1, &a);
    feed(r, T0_MS + 200, "b", STARTED_B, 1, &b);
    for (int i = 0; i < 4; i++) {
        int64_t now_ms = T0_MS + 1000 * (i + 1);

        serve(&a, CONF_BLUE, per_second_a[i], 2, 2000);
        serve(&b, CONF_BLUE, 100, 2, 2000);
        feed(r, now_ms, "a", STARTED_A, (uint64_t)i + 2, &a);
        feed(r, now_ms + 300, "b", STARTED_B, (uint64_t)i + 2, &b);
    }
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 4, 1), 40 + 100);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 4, 2), 40 + 0 + 200);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 4, 4), 70 + 400);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 4, FLEET_RING_SLOTS + 10), 70 + 400);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 2, 1), 20 + 100);
    assert_int_equal(requests_of(r, CONF_GREEN, T0_S + 4, 4), 0);
    /* Seconds later, with nothing fed, the window slides past them. */
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 6, 2), 0);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 6, 3), 140);
    /* A read that adds to *out keeps what was there. */
    struct window_sum s;
    window_sum_clear(&s);
    s.requests = 1;
    fleet_ring_sum(r, CONF_BLUE, T0_S + 4, 1, &s);
    assert_int_equal(s.requests, 141);
}

static void test_same_second_feeds_add_up(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0};

    feed(r, T0_MS, "a", STARTED_A, 1, &a);
    serve(&a, CONF_BLUE, 3, 2, 1000);
    feed(r, T0_MS + 1100, "a", STARTED_A, 2, &a);
    serve(&a, CONF_BLUE, 4, 2, 1000);
    feed(r, T0_MS + 1900, "a", STARTED_A, 3, &a); /* a late tick, same second */
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 1, 1), 7);
}

static void test_restart_by_start_counts_all_its_totals(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0}, again = {0};

    serve(&a, CONF_BLUE, 1000, 2, 1000);
    feed(r, T0_MS, "a", STARTED_A, 50, &a);
    /* Restarted and already served more than before: only its start says
     * so. Its totals since that start all belong to this second. */
    serve(&again, CONF_BLUE, 1200, 2, 1000);
    feed(r, T0_MS + 1000, "a", STARTED_A + 60000, 1, &again);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 1, 1), 1200);
    serve(&again, CONF_BLUE, 5, 2, 1000);
    feed(r, T0_MS + 2000, "a", STARTED_A + 60000, 2, &again);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 2, 1), 5);
}

static void test_restart_by_totals_going_back(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0}, again = {0};

    serve(&a, CONF_BLUE, 1000, 2, 1000);
    serve(&a, CONF_GREEN, 7, 2, 1000);
    serve(&a, CONF_GREEN, 3, 5, 1000);
    feed(r, T0_MS, "a", STARTED_A, 9, &a);
    /* The same start (its clock went back), more requests than before, but
     * green's errors went back: a new process all the same. */
    serve(&again, CONF_BLUE, 1040, 2, 1000);
    serve(&again, CONF_GREEN, 12, 2, 1000);
    feed(r, T0_MS + 1000, "a", STARTED_A, 1, &again);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 1, 1), 1040);
    assert_int_equal(requests_of(r, CONF_GREEN, T0_S + 1, 1), 12);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S, 1), 0);
}

static void test_forgotten_after_three_seconds(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0}, b = {0};

    feed(r, T0_MS, "a", STARTED_A, 1, &a);
    feed(r, T0_MS, "b", STARTED_B, 1, &b);
    feed(r, T0_MS + 1000, "b", STARTED_B, 2, &b);
    assert_int_equal(fleet_ring_expire(r, T0_MS + FLEET_FORGET_MS - 1), 0);
    assert_int_equal(fleet_ring_count(r), 2);
    assert_int_equal(fleet_ring_expire(r, T0_MS + FLEET_FORGET_MS), 1);
    assert_int_equal(fleet_ring_count(r), 1);
    struct fleet_instance in;
    fleet_ring_instance(r, 0, T0_MS + FLEET_FORGET_MS, &in);
    assert_string_equal(in.id, "b");

    /* Back after the gap: a first sighting again, not 10 s in one second. */
    serve(&a, CONF_BLUE, 10000, 2, 1000);
    feed(r, T0_MS + 10000, "a", STARTED_A, 11, &a);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 10, 1), 0);
    serve(&a, CONF_BLUE, 8, 2, 1000);
    feed(r, T0_MS + 11000, "a", STARTED_A, 12, &a);
    assert_int_equal(requests_of(r, CONF_BLUE, T0_S + 11, 1), 8);
    assert_int_equal(fleet_ring_expire(r, T0_MS + 11000), 1); /* b */
}

/* Fleet p99 from the merged histograms: neither instance's own p99, nor
 * their mean, but the fleet's. */
static void test_fleet_p99_from_merged_histograms(void **state)
{
    struct fleet_ring *r = *state;
    struct totals fast = {0}, slow = {0};

    feed(r, T0_MS, "fast", STARTED_A, 1, &fast);
    feed(r, T0_MS, "slow", STARTED_B, 1, &slow);
    serve(&fast, CONF_GREEN, 980, 2, 10000); /* 10 ms */
    serve(&slow, CONF_GREEN, 20, 2, 500000); /* 500 ms */
    feed(r, T0_MS + 1000, "fast", STARTED_A, 2, &fast);
    feed(r, T0_MS + 1000, "slow", STARTED_B, 2, &slow);

    struct window_sum s = sum_of(r, CONF_GREEN, T0_S + 1, 10);
    assert_int_equal(s.requests, 1000);
    assert_int_equal(s.latency.total, 1000);
    uint64_t p50 = hist_sum_quantile(&s.latency, 0.50);
    uint64_t p99 = hist_sum_quantile(&s.latency, 0.99);
    assert_true(p50 >= hist_bucket_low(hist_bucket_of(10000)));
    assert_true(p50 <= hist_bucket_high(hist_bucket_of(10000)));
    assert_true(p99 >= hist_bucket_low(hist_bucket_of(500000)));
    assert_true(p99 <= hist_bucket_high(hist_bucket_of(500000)));
    /* At the 98th percentile the fleet is still fast. */
    assert_true(hist_sum_quantile(&s.latency, 0.98) <= hist_bucket_high(hist_bucket_of(10000)));
}

static void test_old_seconds_do_not_wrap_around(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0};

    feed(r, T0_MS, "a", STARTED_A, 1, &a);
    serve(&a, CONF_BLUE, 9, 2, 1000);
    feed(r, T0_MS + 1000, "a", STARTED_A, 2, &a);
    /* FLEET_RING_SLOTS seconds on, the same slot index holds an old second. */
    int64_t later = T0_S + 1 + FLEET_RING_SLOTS;
    assert_int_equal(requests_of(r, CONF_BLUE, later, FLEET_RING_SLOTS), 0);
    assert_int_equal(requests_of(r, CONF_BLUE, later - 1, FLEET_RING_SLOTS), 9);
    /* Reused for the new second, it starts empty. */
    serve(&a, CONF_BLUE, 2, 2, 1000);
    feed(r, later * 1000, "a", STARTED_A, 3, &a);
    assert_int_equal(requests_of(r, CONF_BLUE, later, 1), 2);
    /* Near the clock's start, seconds before 0 are skipped. */
    assert_int_equal(requests_of(r, CONF_BLUE, 0, 5), 0);
    assert_int_equal(requests_of(r, CONF_BLUE, -3, 5), 0);
}

static void test_instance_rate_and_report_age(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0};
    struct fleet_instance in;

    feed(r, T0_MS, "a", STARTED_A, 1, &a);
    fleet_ring_instance(r, 0, T0_MS, &in);
    assert_string_equal(in.id, "a");
    assert_true(in.rps[CONF_BLUE] == 0.0);
    /* Two seconds of traffic: the rate covers those, not FLEET_RATE_S. */
    for (int i = 1; i <= 2; i++) {
        serve(&a, CONF_BLUE, 100, 2, 1000);
        serve(&a, CONF_GREEN, 10, 2, 1000);
        feed(r, T0_MS + 1000 * i, "a", STARTED_A, (uint64_t)i + 1, &a);
    }
    fleet_ring_instance(r, 0, T0_MS + 2000, &in);
    assert_true(in.rps[CONF_BLUE] > 99.9 && in.rps[CONF_BLUE] < 100.1);
    assert_true(in.rps[CONF_GREEN] > 9.9 && in.rps[CONF_GREEN] < 10.1);
    assert_int_equal(in.seq, 3);
    assert_int_equal(in.started_ms, STARTED_A);
    assert_int_equal(in.report_age_ms, 0);
    /* The same publication read again: no new report, no traffic. */
    feed(r, T0_MS + 2900, "a", STARTED_A, 3, &a);
    fleet_ring_instance(r, 0, T0_MS + 2900, &in);
    assert_int_equal(in.report_age_ms, 900);
    /* Seven seconds on, its two busy seconds are out of the rate. */
    for (int i = 3; i <= 7; i++)
        feed(r, T0_MS + 1000 * i, "a", STARTED_A, (uint64_t)i + 1, &a);
    fleet_ring_instance(r, 0, T0_MS + 7000, &in);
    assert_true(in.rps[CONF_BLUE] == 0.0);
    assert_int_equal(in.report_age_ms, 0);
}

static void test_refuses_bad_ids_and_too_many(void **state)
{
    struct fleet_ring *r = *state;
    struct totals a = {0};
    char id[FLEET_ID_MAX + 1];

    assert_int_equal(fleet_ring_feed(r, T0_MS, "", STARTED_A, 1, a.s), -1);
    memset(id, 'x', FLEET_ID_MAX);
    id[FLEET_ID_MAX] = '\0';
    assert_int_equal(fleet_ring_feed(r, T0_MS, id, STARTED_A, 1, a.s), -1);
    assert_int_equal(fleet_ring_feed(r, -1, "a", STARTED_A, 1, a.s), -1);
    for (int i = 0; i < FLEET_PEERS_MAX; i++) {
        snprintf(id, sizeof(id), "i%d", i);
        feed(r, T0_MS, id, STARTED_A, 1, &a);
    }
    assert_int_equal(fleet_ring_feed(r, T0_MS, "one-too-many", STARTED_A, 1, a.s), -1);
    assert_int_equal(fleet_ring_count(r), FLEET_PEERS_MAX);
    feed(r, T0_MS + 1000, "i7", STARTED_A, 2, &a); /* a known one still feeds */
    assert_int_equal(fleet_ring_expire(r, T0_MS + FLEET_FORGET_MS), FLEET_PEERS_MAX - 1);
    assert_int_equal(fleet_ring_count(r), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_sighting_counts_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deltas_land_in_their_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_second_feeds_add_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_by_start_counts_all_its_totals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_by_totals_going_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forgotten_after_three_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fleet_p99_from_merged_histograms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_seconds_do_not_wrap_around, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_rate_and_report_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_ids_and_too_many, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
