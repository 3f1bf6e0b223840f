/* test_detect.c - the detector's verdicts: not before min_requests, each
 * ceiling and ratio, and the floors that keep a perfect stable pool from
 * failing a good candidate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "health/detect.h"

static const struct conf_detector detector = {
    .enabled = true,
    .window_s = 30,
    .min_requests = 100,
    .max_error_rate = 0.05,
    .max_error_ratio = 2.0,
    .max_p99_ms = 1000,
    .max_p99_ratio = 2.0,
    .fast_consecutive_failures = 10,
};

/* A window sum of n responses at latency_us, of which errors answered 503. */
static struct window_sum *sum_of(unsigned n, unsigned errors, uint64_t latency_us)
{
    struct window *w = window_new();
    struct window_sum *s = calloc(1, sizeof(*s));
    int64_t now = 1000;

    assert_non_null(w);
    assert_non_null(s);
    for (unsigned i = 0; i < n; i++) {
        struct outcome o = {OUTCOME_RESPONSE, i < errors ? 503 : 200, latency_us};
        window_record(w, now, &o);
    }
    window_sum_clear(s);
    window_sum_add(s, w, now, 1);
    window_free(w);
    return s;
}

static enum verdict judge(struct window_sum *c, struct window_sum *s, char *why, size_t len)
{
    struct detect_result r;

    detect_judge(&detector, c, s, &r);
    snprintf(why, len, "%s", r.reason);
    free(c);
    free(s);
    return r.verdict;
}

static void test_inconclusive_below_min_requests(void **state)
{
    char why[256];

    /* Every request failed, but 99 are not enough to judge. */
    assert_int_equal(judge(sum_of(99, 99, 1000), sum_of(1000, 0, 1000), why, sizeof(why)),
                     VERDICT_INCONCLUSIVE);
    assert_string_equal(why, "waiting for 100 candidate requests, have 99");
}

static void test_ok(void **state)
{
    char why[256];

    assert_int_equal(judge(sum_of(1000, 10, 2000), sum_of(1000, 10, 2000), why, sizeof(why)),
                     VERDICT_OK);
}

static void test_error_rate_ceiling(void **state)
{
    char why[256];

    /* 6 % of errors, with a quiet stable pool: the ceiling alone judges. */
    assert_int_equal(judge(sum_of(1000, 60, 1000), sum_of(10, 0, 1000), why, sizeof(why)),
                     VERDICT_FAIL);
    assert_non_null(strstr(why, "error rate 6.00% (60 of 1000) over max_error_rate 5.00%"));
    /* 4 %: under the ceiling; stable too quiet for the ratio. */
    assert_int_equal(judge(sum_of(1000, 40, 1000), sum_of(10, 0, 1000), why, sizeof(why)),
                     VERDICT_OK);
}

static void test_p99_ceiling(void **state)
{
    char why[256];

    assert_int_equal(judge(sum_of(1000, 0, 1500000), sum_of(10, 0, 1000), why, sizeof(why)),
                     VERDICT_FAIL);
    assert_non_null(strstr(why, "over max_p99_ms 1000"));
}

static void test_error_ratio_and_floor(void **state)
{
    char why[256];

    /* Stable 1.5 %: 4 % is over 2 x 1.5 %. */
    assert_int_equal(judge(sum_of(1000, 40, 1000), sum_of(1000, 15, 1000), why, sizeof(why)),
                     VERDICT_FAIL);
    assert_non_null(strstr(why, "over 2.0 x stable's 1.50%"));
    /* Stable 0 %: the floor (1 %) makes the bar 2 %; 1.5 % passes. */
    assert_int_equal(judge(sum_of(1000, 15, 1000), sum_of(1000, 0, 1000), why, sizeof(why)),
                     VERDICT_OK);
    assert_int_equal(judge(sum_of(1000, 25, 1000), sum_of(1000, 0, 1000), why, sizeof(why)),
                     VERDICT_FAIL);
}

static void test_p99_ratio_and_floor(void **state)
{
    char why[256];

    /* Stable 100 ms: 300 ms is over 2 x. */
    assert_int_equal(judge(sum_of(1000, 0, 300000), sum_of(1000, 0, 100000), why, sizeof(why)),
                     VERDICT_FAIL);
    assert_non_null(strstr(why, "max_p99_ratio"));
    /* Stable 1 ms: the 25 ms floor makes the bar 50 ms; 40 ms passes. */
    assert_int_equal(judge(sum_of(1000, 0, 40000), sum_of(1000, 0, 1000), why, sizeof(why)),
                     VERDICT_OK);
    assert_int_equal(judge(sum_of(1000, 0, 60000), sum_of(1000, 0, 1000), why, sizeof(why)),
                     VERDICT_FAIL);
}

/* 4xx answers are the clients' fault: never an error of the candidate. */
static void test_4xx_is_not_an_error(void **state)
{
    struct window *w = window_new();
    struct window_sum *c = calloc(1, sizeof(*c));
    char why[256];

    assert_non_null(w);
    assert_non_null(c);
    for (int i = 0; i < 1000; i++) {
        struct outcome o = {OUTCOME_RESPONSE, 404, 1000};
        window_record(w, 5, &o);
    }
    window_sum_clear(c);
    window_sum_add(c, w, 5, 1);
    window_free(w);
    assert_int_equal(judge(c, sum_of(1000, 0, 1000), why, sizeof(why)), VERDICT_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inconclusive_below_min_requests),
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_error_rate_ceiling),
        cmocka_unit_test(test_p99_ceiling),
        cmocka_unit_test(test_error_ratio_and_floor),
        cmocka_unit_test(test_p99_ratio_and_floor),
        cmocka_unit_test(test_4xx_is_not_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
