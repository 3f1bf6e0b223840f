/* test_histogram.c - bucket layout, clamping, quantiles against exact ones,
 * and Prometheus-style cumulative counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#include <cmocka.h>

#include "health/histogram.h"

#define VALUES 100000
#define MAX_REL_ERROR 0.02

/* splitmix64: a fixed seed gives the same data on every run. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) / 9007199254740992.0;
}

static uint64_t clamp_us(double v)
{
    if (v < HIST_MIN_US)
        return HIST_MIN_US;
    if (v > HIST_MAX_US)
        return HIST_MAX_US;
    return (uint64_t)llround(v);
}

/* Log-uniform over the whole range, 1 µs .. 60 s. */
static uint64_t draw_log_uniform(uint64_t *rng)
{
    return clamp_us(exp(rng_unit(rng) * log((double)HIST_MAX_US)));
}

/* Exponential with a 2 ms mean. */
static uint64_t draw_exponential(uint64_t *rng)
{
    return clamp_us(-2000.0 * log(1.0 - rng_unit(rng)));
}

/* Half near 1 ms, half near 200 ms (each ±10 %). */
static uint64_t draw_bimodal(uint64_t *rng)
{
    double centre = rng_next(rng) & 1 ? 200000.0 : 1000.0;

    return clamp_us(centre * (0.9 + 0.2 * rng_unit(rng)));
}

static uint64_t draw_constant(uint64_t *rng)
{
    return 4321;
}

struct distribution {
    const char *name;
    uint64_t (*draw)(uint64_t *rng);
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The value at rank ceil(q * n) of sorted values, as hist_sum_quantile defines it. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);

    return sorted[(rank < 1 ? 1 : rank) - 1];
}

/* Fills values with n draws, records them into a fresh histogram, sums it into
 * *sum and sorts values. */
static void record_sorted(const struct distribution *d, uint64_t *values, size_t n,
                          struct hist_sum *sum)
{
    static struct histogram h;
    uint64_t rng = 42;

    hist_clear(&h);
    for (size_t i = 0; i < n; i++) {
        values[i] = d->draw(&rng);
        hist_record(&h, values[i]);
    }
    hist_sum_clear(sum);
    hist_sum_add(sum, &h);
    qsort(values, n, sizeof(values[0]), cmp_u64);
}

/* p50/p90/p99/p999 are within 2 % of the exact sorted values. */
static void test_quantiles_match_exact(void **state)
{
    static const struct distribution dists[] = {
        {"log-uniform 1us..60s", draw_log_uniform},
        {"exponential 2ms", draw_exponential},
        {"bimodal 1ms/200ms", draw_bimodal},
        {"constant", draw_constant},
    };
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    static uint64_t values[VALUES];
    static struct hist_sum sum;

    for (size_t d = 0; d < sizeof(dists) / sizeof(dists[0]); d++) {
        record_sorted(&dists[d], values, VALUES, &sum);
        assert_int_equal(sum.total, VALUES);
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
            double exact = (double)exact_quantile(values, VALUES, qs[i]);
            double got = (double)hist_sum_quantile(&sum, qs[i]);
            if (fabs(got - exact) > MAX_REL_ERROR * exact)
                fail_msg("%s q=%g: histogram %.0f, exact %.0f", dists[d].name, qs[i], got, exact);
        }
    }
}

/* A histogram holding one value reports it within 1/64 (half a bucket):
 * every value up to 2^16, then every 997th one up to 60 s. */
static void test_single_value_error_bound(void **state)
{
    static struct hist_sum sum;

    for (uint64_t v = 1; v <= HIST_MAX_US; v += v < 65536 ? 1 : 997) {
        hist_sum_clear(&sum);
        sum.counts[hist_bucket_of(v)] = 1;
        sum.total = 1;
        uint64_t got = hist_sum_quantile(&sum, 0.5);
        double err = fabs((double)got - (double)v) / (double)v;
        if (err > 1.0 / 64)
            fail_msg("value %llu read back as %llu", (unsigned long long)v,
                     (unsigned long long)got);
        if (v < 2 * HIST_SUB_BUCKETS && got != v)
            fail_msg("small value %llu is not exact: %llu", (unsigned long long)v,
                     (unsigned long long)got);
    }
}

/* Buckets tile 1 .. 60 s without gap or overlap, each at most 1/32 of its low wide. */
static void test_buckets_contiguous(void **state)
{
    assert_int_equal(HIST_BUCKETS, 697);
    assert_int_equal(hist_bucket_low(0), 1);
    assert_true(hist_bucket_high(HIST_BUCKETS - 1) >= HIST_MAX_US);
    assert_true(hist_bucket_low(HIST_BUCKETS - 1) <= HIST_MAX_US);
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        uint64_t low = hist_bucket_low(b), high = hist_bucket_high(b);
        assert_true(low <= high);
        assert_true(high - low + 1 <= (low < 64 ? 1 : low / HIST_SUB_BUCKETS));
        assert_int_equal(hist_bucket_of(low), b);
        assert_int_equal(hist_bucket_of(high < HIST_MAX_US ? high : HIST_MAX_US), b);
        if (b + 1 < HIST_BUCKETS)
            assert_int_equal(hist_bucket_low(b + 1), high + 1);
    }
}

/* Every value lands in a bucket that holds it: all values up to 2^20, then
 * random ones up to 60 s. */
static void test_value_within_its_bucket(void **state)
{
    uint64_t rng = 7;

    for (uint64_t i = 1; i < (1u << 20) + 200000; i++) {
        uint64_t v = i <= (1u << 20) ? i : 1 + rng_next(&rng) % HIST_MAX_US;
        size_t b = hist_bucket_of(v);
        assert_true(b < HIST_BUCKETS);
        if (v < hist_bucket_low(b) || v > hist_bucket_high(b))
            fail_msg("value %llu in bucket %zu [%llu, %llu]", (unsigned long long)v, b,
                     (unsigned long long)hist_bucket_low(b),
                     (unsigned long long)hist_bucket_high(b));
    }
}

/* 0 goes to the first bucket, anything past 60 s to the last. */
static void test_clamping(void **state)
{
    static struct histogram h;
    static struct hist_sum sum;

    assert_int_equal(hist_bucket_of(0), 0);
    assert_int_equal(hist_bucket_of(1), 0);
    assert_int_equal(hist_bucket_of(HIST_MAX_US), HIST_BUCKETS - 1);
    assert_int_equal(hist_bucket_of(HIST_MAX_US + 1ull), HIST_BUCKETS - 1);
    assert_int_equal(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
    assert_int_equal(hist_bucket_low(HIST_BUCKETS + 5), hist_bucket_low(HIST_BUCKETS - 1));

    hist_clear(&h);
    hist_record(&h, 0);
    hist_record(&h, UINT64_MAX);
    hist_sum_clear(&sum);
    hist_sum_add(&sum, &h);
    assert_int_equal(sum.total, 2);
    assert_int_equal(sum.counts[0], 1);
    assert_int_equal(sum.counts[HIST_BUCKETS - 1], 1);
    assert_int_equal(hist_sum_quantile(&sum, 0.5), 1);
    assert_true(hist_sum_quantile(&sum, 1.0) >= HIST_MAX_US - HIST_MAX_US / 64);
}

static void test_empty_and_odd_q(void **state)
{
    static struct hist_sum sum;

    hist_sum_clear(&sum);
    assert_int_equal(hist_sum_quantile(&sum, 0.5), 0);
    assert_int_equal(hist_sum_count_le(&sum, UINT64_MAX), 0);

    sum.counts[hist_bucket_of(10)] = 3;
    sum.counts[hist_bucket_of(20)] = 1;
    sum.total = 4;
    assert_int_equal(hist_sum_quantile(&sum, 0.75), 10); /* rank 3 */
    assert_int_equal(hist_sum_quantile(&sum, 0.76), 20); /* rank ceil(3.04) = 4 */
    assert_int_equal(hist_sum_quantile(&sum, 0.0), 10);  /* clamped to rank 1 */
    assert_int_equal(hist_sum_quantile(&sum, -1.0), 10);
    assert_int_equal(hist_sum_quantile(&sum, 2.0), 20);
    assert_int_equal(hist_sum_quantile(&sum, NAN), 10);
}

/* count_le at every bucket's high edge equals a direct count over the sorted
 * values; inside a wider bucket it counts only the buckets before it. */
static void test_count_le_at_edges(void **state)
{
    static const struct distribution dists[] = {
        {"exponential 2ms", draw_exponential},
        {"log-uniform 1us..60s", draw_log_uniform},
    };
    static uint64_t values[VALUES];
    static struct hist_sum sum;

    for (size_t d = 0; d < sizeof(dists) / sizeof(dists[0]); d++) {
        record_sorted(&dists[d], values, VALUES, &sum);
        size_t at = 0; /* values[0 .. at) are <= the current edge */
        for (size_t b = 0; b < HIST_BUCKETS; b++) {
            uint64_t low = hist_bucket_low(b), high = hist_bucket_high(b);
            size_t before = at; /* values in buckets 0 .. b-1 */
            while (at < VALUES && values[at] <= high)
                at++;
            if (hist_sum_count_le(&sum, high) != at)
                fail_msg("%s: count_le(%llu) = %llu, direct %zu", dists[d].name,
                         (unsigned long long)high,
                         (unsigned long long)hist_sum_count_le(&sum, high), at);
            if (high > low)
                assert_int_equal(hist_sum_count_le(&sum, high - 1), before);
        }
        assert_int_equal(at, VALUES);
        assert_int_equal(hist_sum_count_le(&sum, 0), 0);
        assert_int_equal(hist_sum_count_le(&sum, UINT64_MAX), VALUES);
    }
}

/* The merge of two halves is the sum of the whole. */
static void test_merge(void **state)
{
    static struct histogram a, b;
    static struct hist_sum whole, half_a, half_b;
    uint64_t rng = 3;

    hist_clear(&a);
    hist_clear(&b);
    hist_sum_clear(&whole);
    for (int i = 0; i < 10000; i++)
        hist_record(i % 2 ? &a : &b, draw_bimodal(&rng));
    hist_sum_add(&whole, &a);
    hist_sum_add(&whole, &b);
    hist_sum_clear(&half_a);
    hist_sum_clear(&half_b);
    hist_sum_add(&half_a, &a);
    hist_sum_add(&half_b, &b);
    hist_sum_merge(&half_a, &half_b);
    assert_int_equal(half_a.total, 10000);
    assert_memory_equal(&half_a, &whole, sizeof(whole));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_match_exact),
        cmocka_unit_test(test_single_value_error_bound),
        cmocka_unit_test(test_buckets_contiguous),
        cmocka_unit_test(test_value_within_its_bucket),
        cmocka_unit_test(test_clamping),
        cmocka_unit_test(test_empty_and_odd_q),
        cmocka_unit_test(test_count_le_at_edges),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
