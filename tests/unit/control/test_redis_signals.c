/* test_redis_signals.c - the outcome totals' text: round trips, every
 * refusal, and random damage that must decode cleanly or fail cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/redis_signals.h"

#define ROUND_TRIPS 200
#define MUTATIONS 10000

/* splitmix64: a fixed seed gives the same data on every run. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return rng_next(state) % n;
}

/* A busy pool: counters up to 10^12 and about `buckets` non-zero buckets,
 * the first and the last often among them. */
static void random_sum(uint64_t *rng, struct window_sum *s, size_t buckets)
{
    uint64_t *counters[] = {&s->requests, &s->s1xx,           &s->s2xx,     &s->s3xx,   &s->s4xx,
                            &s->s5xx,     &s->connect_errors, &s->timeouts, &s->resets, &s->errors};

    window_sum_clear(s);
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        *counters[i] = rng_below(rng, 1000000000000ull);
    for (size_t i = 0; i < buckets; i++) {
        size_t b = rng_below(rng, 4) == 0 ? (rng_below(rng, 2) ? 0 : HIST_BUCKETS - 1)
                                          : rng_below(rng, HIST_BUCKETS);
        uint64_t n = 1 + rng_below(rng, 1000000);
        s->latency.counts[b] += n;
        s->latency.total += n;
    }
}

static void assert_sums_equal(const struct window_sum *a, const struct window_sum *b)
{
    /* Only uint64_t fields: no padding, so the bytes compare every field. */
    for (int c = 0; c < CONF_COLOURS; c++)
        assert_memory_equal(&a[c], &b[c], sizeof(a[c]));
}

static void test_round_trip(void **state)
{
    struct window_sum in[CONF_COLOURS], out[CONF_COLOURS];
    uint64_t rng = 42;
    char why[200] = "";

    (void)state;
    for (int i = 0; i < ROUND_TRIPS; i++) {
        int64_t started = (int64_t)rng_below(&rng, 2000000000000ull);
        uint64_t seq = rng_next(&rng), seq_out = 0;
        int64_t started_out = -1;
        char *text = NULL;
        size_t len = 0;

        random_sum(&rng, &in[CONF_BLUE], rng_below(&rng, 200));
        random_sum(&rng, &in[CONF_GREEN], rng_below(&rng, 200));
        assert_int_equal(redis_signals_encode(in, started, seq, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        assert_int_equal(
            redis_signals_decode(text, len, out, &started_out, &seq_out, why, sizeof(why)), 0);
        assert_sums_equal(in, out);
        assert_int_equal(started_out, started);
        assert_true(seq_out == seq);
        free(text);
    }
}

/* What a busy instance weighs: ~100 non-zero buckets per pool. */
static void test_busy_size(void **state)
{
    struct window_sum in[CONF_COLOURS];
    uint64_t rng = 7;
    char *text = NULL;
    size_t len = 0;

    (void)state;
    for (int c = 0; c < CONF_COLOURS; c++) {
        window_sum_clear(&in[c]);
        random_sum(&rng, &in[c], 0);
        for (size_t b = 200; b < 300; b++) {
            in[c].latency.counts[b] = 1 + rng_below(&rng, 100000);
            in[c].latency.total += in[c].latency.counts[b];
        }
    }
    assert_int_equal(redis_signals_encode(in, 1795000000123LL, 86400, &text, &len), 0);
    print_message("busy instance (100 buckets per pool): %zu bytes\n", len);
    assert_in_range(len, 1500, 2500);
    free(text);
}

static void test_empty(void **state)
{
    static const char expected[] = "v1 0 0\n"
                                   "blue 0 0 0 0 0 0 0 0 0 0\n"
                                   "green 0 0 0 0 0 0 0 0 0 0\n";
    struct window_sum in[CONF_COLOURS], out[CONF_COLOURS];
    int64_t started = -1;
    uint64_t seq = 99;
    char why[200] = "";
    char *text = NULL;
    size_t len = 0;

    (void)state;
    window_sum_clear(&in[CONF_BLUE]);
    window_sum_clear(&in[CONF_GREEN]);
    assert_int_equal(redis_signals_encode(in, 0, 0, &text, &len), 0);
    assert_string_equal(text, expected);
    memset(out, 0xff, sizeof(out));
    assert_int_equal(redis_signals_decode(text, len, out, &started, &seq, why, sizeof(why)), 0);
    assert_sums_equal(in, out);
    assert_int_equal(started, 0);
    assert_int_equal(seq, 0);
    free(text);
}

/* A text written by hand, so that a bug shared by both sides shows. */
static void test_known_text(void **state)
{
    static const char text[] = "v1 1795000000123 17\n"
                               "blue 10 1 2 3 4 5 6 7 8 9 0:3 5:1 696:2\n"
                               "green 1000000000000000 0 0 0 0 0 0 0 0 0\n";
    struct window_sum out[CONF_COLOURS];
    int64_t started = 0;
    uint64_t seq = 0;
    char why[200] = "";

    (void)state;
    assert_int_equal(
        redis_signals_decode(text, sizeof(text) - 1, out, &started, &seq, why, sizeof(why)), 0);
    assert_int_equal(started, 1795000000123LL);
    assert_int_equal(seq, 17);
    assert_int_equal(out[CONF_BLUE].requests, 10);
    assert_int_equal(out[CONF_BLUE].s1xx, 1);
    assert_int_equal(out[CONF_BLUE].s5xx, 5);
    assert_int_equal(out[CONF_BLUE].connect_errors, 6);
    assert_int_equal(out[CONF_BLUE].resets, 8);
    assert_int_equal(out[CONF_BLUE].errors, 9);
    assert_int_equal(out[CONF_BLUE].latency.counts[0], 3);
    assert_int_equal(out[CONF_BLUE].latency.counts[5], 1);
    assert_int_equal(out[CONF_BLUE].latency.counts[HIST_BUCKETS - 1], 2);
    assert_int_equal(out[CONF_BLUE].latency.total, 6);
    assert_int_equal(out[CONF_GREEN].requests, REDIS_SIGNALS_COUNT_MAX);
    assert_int_equal(out[CONF_GREEN].latency.total, 0);
}

static void expect_refused(const char *text, const char *needle)
{
    struct window_sum out[CONF_COLOURS], before[CONF_COLOURS];
    int64_t started = 5;
    uint64_t seq = 6;
    char why[200] = "";

    memset(out, 0x5a, sizeof(out));
    memcpy(before, out, sizeof(out));
    assert_int_equal(
        redis_signals_decode(text, strlen(text), out, &started, &seq, why, sizeof(why)), -1);
    print_message("why: %s\n", why);
    assert_non_null(strstr(why, needle));
    assert_memory_equal(out, before, sizeof(out));
    assert_int_equal(started, 5);
    assert_int_equal(seq, 6);
}

#define ZEROS " 0 0 0 0 0 0 0 0 0 0"
#define HEAD "v1 1 2\n"
#define GREEN "green" ZEROS "\n"

static void test_decode_errors(void **state)
{
    (void)state;
    expect_refused("", "line 1: expected \"v1\"");
    expect_refused("v2 1 2\n", "expected \"v1\"");
    expect_refused(HEAD, "line 2: expected \"blue\"");
    expect_refused(HEAD "blue 0 0\n", "line 2: unexpected byte 0x0a before a counter");
    expect_refused(HEAD "blue" ZEROS " 5:1", "line 2: truncated before the end of the line");
    expect_refused(HEAD "blue" ZEROS " x:1\n" GREEN, "a bucket index is not a number");
    expect_refused(HEAD "blue" ZEROS " 5;1\n" GREEN, "unexpected byte 0x3b before a bucket count");
    expect_refused(HEAD "blue" ZEROS " 697:1\n" GREEN, "a bucket index above 696");
    expect_refused(HEAD "blue" ZEROS " 99999999999999999999999:1\n" GREEN,
                   "a bucket index above 696");
    expect_refused(HEAD "blue" ZEROS " 5:1000000000000001\n" GREEN,
                   "a bucket count above 1000000000000000");
    expect_refused(HEAD "blue 1000000000000001 0 0 0 0 0 0 0 0 0\n" GREEN,
                   "a counter above 1000000000000000");
    expect_refused(HEAD "blue" ZEROS " 5:1 5:1\n" GREEN, "bucket 5 out of order");
    expect_refused(HEAD "blue" ZEROS " 6:1 5:1\n" GREEN, "bucket 5 out of order");
    expect_refused(HEAD "blue" ZEROS " 5:0\n" GREEN, "bucket 5 has a zero count");
    expect_refused(HEAD "blue" ZEROS " 05:1\n" GREEN, "a bucket index has a leading zero");
    expect_refused(HEAD "blue -1 0 0 0 0 0 0 0 0 0\n" GREEN, "a counter is not a number");
    expect_refused("v1 9223372036854775808 2\n", "started_ms above 9223372036854775807");
    expect_refused("v1 1 18446744073709551616\n", "seq above 18446744073709551615");
    expect_refused(HEAD "blue" ZEROS "\n" GREEN "x", "line 4: trailing bytes");
    expect_refused(HEAD "blue" ZEROS "\n" GREEN "\n", "line 4: trailing bytes");
    expect_refused(HEAD GREEN GREEN, "line 2: expected \"blue\"");
    expect_refused(HEAD "blue" ZEROS " \n" GREEN, "a bucket index is not a number");
}

/* Every proper prefix of a valid text is refused, without reading past it. */
static void test_truncated(void **state)
{
    struct window_sum in[CONF_COLOURS], out[CONF_COLOURS];
    uint64_t rng = 3, seq;
    int64_t started;
    char why[200];
    char *text = NULL;
    size_t len = 0;

    (void)state;
    random_sum(&rng, &in[CONF_BLUE], 20);
    random_sum(&rng, &in[CONF_GREEN], 20);
    assert_int_equal(redis_signals_encode(in, 123, 4, &text, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = malloc(cut + 1); /* exact size: ASan catches a read past it */
        assert_non_null(copy);
        memcpy(copy, text, cut);
        assert_int_equal(redis_signals_decode(copy, cut, out, &started, &seq, why, sizeof(why)),
                         -1);
        free(copy);
    }
    free(text);
}

static void test_encode_refuses(void **state)
{
    struct window_sum in[CONF_COLOURS];
    char *text = NULL;
    size_t len = 0;

    (void)state;
    window_sum_clear(&in[CONF_BLUE]);
    window_sum_clear(&in[CONF_GREEN]);
    assert_int_equal(redis_signals_encode(in, -1, 0, &text, &len), -1);
    in[CONF_GREEN].timeouts = REDIS_SIGNALS_COUNT_MAX + 1;
    assert_int_equal(redis_signals_encode(in, 0, 0, &text, &len), -1);
    in[CONF_GREEN].timeouts = 0;
    in[CONF_BLUE].latency.counts[HIST_BUCKETS - 1] = REDIS_SIGNALS_COUNT_MAX + 1;
    assert_int_equal(redis_signals_encode(in, 0, 0, &text, &len), -1);
    assert_null(text);
}

/* One random edit: overwrite, insert, delete a byte, or cut the text. */
static size_t mutate(uint64_t *rng, char *buf, size_t len, size_t cap)
{
    static const char alphabet[] = "0123456789 :\nvbluegrn-x";
    char c = rng_below(rng, 4) == 0 ? (char)rng_below(rng, 256)
                                    : alphabet[rng_below(rng, sizeof(alphabet) - 1)];
    size_t at = len ? rng_below(rng, len) : 0;

    switch (rng_below(rng, 4)) {
    case 0:
        if (len > 0)
            buf[at] = c;
        return len;
    case 1:
        if (len >= cap)
            return len;
        memmove(buf + at + 1, buf + at, len - at);
        buf[at] = c;
        return len + 1;
    case 2:
        if (len == 0)
            return len;
        memmove(buf + at, buf + at + 1, len - at - 1);
        return len - 1;
    default:
        return at;
    }
}

/* A text the decoder accepts is canonical: encoding what it read gives the
 * same bytes back, and every histogram total matches its buckets. */
static void assert_canonical(const char *text, size_t len, const struct window_sum *sums,
                             int64_t started, uint64_t seq)
{
    char *again = NULL;
    size_t again_len = 0;

    for (int c = 0; c < CONF_COLOURS; c++) {
        uint64_t total = 0;
        for (size_t b = 0; b < HIST_BUCKETS; b++)
            total += sums[c].latency.counts[b];
        assert_true(total == sums[c].latency.total);
    }
    assert_int_equal(redis_signals_encode(sums, started, seq, &again, &again_len), 0);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, text, len);
    free(again);
}

static void test_mutations(void **state)
{
    struct window_sum in[CONF_COLOURS], out[CONF_COLOURS];
    uint64_t rng = 1234, seq;
    int64_t started;
    char why[200];
    char *text = NULL;
    size_t len = 0, accepted = 0;

    (void)state;
    random_sum(&rng, &in[CONF_BLUE], 30);
    random_sum(&rng, &in[CONF_GREEN], 30);
    assert_int_equal(redis_signals_encode(in, 1795000000000LL, 77, &text, &len), 0);
    for (int i = 0; i < MUTATIONS; i++) {
        size_t cap = len + 8, n = len;
        char *buf = malloc(cap);
        assert_non_null(buf);
        memcpy(buf, text, len);
        for (uint64_t edits = 1 + rng_below(&rng, 4); edits > 0; edits--)
            n = mutate(&rng, buf, n, cap);
        /* Exactly n bytes: a read past the end hits ASan's redzone. */
        char *exact = malloc(n ? n : 1);
        assert_non_null(exact);
        memcpy(exact, buf, n);
        if (redis_signals_decode(exact, n, out, &started, &seq, why, sizeof(why)) == 0) {
            assert_canonical(exact, n, out, started, seq);
            accepted++;
        }
        free(exact);
        free(buf);
    }
    print_message("%zu of %d mutated texts were still valid\n", accepted, MUTATIONS);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_busy_size),
        cmocka_unit_test(test_empty),          cmocka_unit_test(test_known_text),
        cmocka_unit_test(test_decode_errors),  cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_encode_refuses), cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
