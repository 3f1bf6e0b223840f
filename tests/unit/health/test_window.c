/* test_window.c - outcome windows: sums over seconds, slot reuse,
 * classification, totals since start, and a writer racing a reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "health/window.h"

static int setup_window(void **state)
{
    *state = window_new();
    return *state == NULL ? -1 : 0;
}

static int teardown_window(void **state)
{
    window_free(*state);
    return 0;
}

static void record_status(struct window *w, int64_t sec, int status, uint64_t latency_us, int n)
{
    struct outcome o = {OUTCOME_RESPONSE, status, latency_us};

    for (int i = 0; i < n; i++)
        window_record(w, sec, &o);
}

static void record_kind(struct window *w, int64_t sec, enum outcome_kind kind, int n)
{
    struct outcome o = {kind, 0, 123456};

    for (int i = 0; i < n; i++)
        window_record(w, sec, &o);
}

static struct window_sum *sum_of(const struct window *w, int64_t now_s, unsigned seconds)
{
    static struct window_sum sum;

    window_sum_clear(&sum);
    window_sum_add(&sum, w, now_s, seconds);
    return &sum;
}

/* Three seconds of traffic, summed over 1, 3 and 64 seconds. */
static void test_sums_over_seconds(void **state)
{
    struct window *w = *state;

    record_status(w, 100, 200, 1000, 5);
    record_status(w, 101, 200, 2000, 7);
    record_status(w, 102, 200, 3000, 11);

    struct window_sum *s = sum_of(w, 102, 1);
    assert_int_equal(s->requests, 11);
    assert_int_equal(s->latency.total, 11);
    assert_int_equal(hist_sum_quantile(&s->latency, 0.5), hist_sum_quantile(&s->latency, 1.0));

    s = sum_of(w, 102, 2);
    assert_int_equal(s->requests, 18);
    s = sum_of(w, 102, 3);
    assert_int_equal(s->requests, 23);
    assert_int_equal(s->s2xx, 23);
    assert_int_equal(s->latency.total, 23);
    s = sum_of(w, 102, WINDOW_SLOTS);
    assert_int_equal(s->requests, 23);
    s = sum_of(w, 102, 1000); /* capped at WINDOW_SLOTS */
    assert_int_equal(s->requests, 23);
    s = sum_of(w, 101, 1); /* an earlier now_s sees what was then */
    assert_int_equal(s->requests, 7);
    s = sum_of(w, 102, 0);
    assert_int_equal(s->requests, 0);
}

/* Seconds before the asked range are not counted, even while their slot
 * still holds them. */
static void test_old_seconds_outside_range(void **state)
{
    struct window *w = *state;

    record_status(w, 5, 200, 1000, 3);
    record_status(w, 50, 200, 1000, 4);
    assert_int_equal(sum_of(w, 60, 10)->requests, 0);  /* 51 .. 60 */
    assert_int_equal(sum_of(w, 60, 11)->requests, 4);  /* 50 .. 60 */
    assert_int_equal(sum_of(w, 60, 56)->requests, 7);  /* 5 .. 60 */
    assert_int_equal(sum_of(w, 60, 55)->requests, 4);  /* 6 .. 60 */
    assert_int_equal(sum_of(w, 200, 64)->requests, 0); /* long after */
}

/* A slot reused 64 s later holds only the new second. */
static void test_slot_reuse(void **state)
{
    struct window *w = *state;

    record_status(w, 10, 503, 500000, 9);
    record_status(w, 10 + WINDOW_SLOTS, 200, 100, 2);

    struct window_sum *s = sum_of(w, 10 + WINDOW_SLOTS, 1);
    assert_int_equal(s->requests, 2);
    assert_int_equal(s->s2xx, 2);
    assert_int_equal(s->s5xx, 0);
    assert_int_equal(s->latency.total, 2);
    assert_int_equal(hist_sum_quantile(&s->latency, 1.0), 100);
    assert_int_equal(sum_of(w, 10, 1)->requests, 0); /* the slot no longer holds 10 */

    /* An outcome for a second older than its slot's is dropped, not mixed in. */
    record_status(w, 10, 503, 500000, 1);
    assert_int_equal(sum_of(w, 10 + WINDOW_SLOTS, 1)->requests, 2);
    assert_int_equal(sum_of(w, 10, 1)->requests, 0);

    /* So is one with a negative second. */
    record_status(w, -1, 200, 100, 1);
    assert_int_equal(sum_of(w, 0, 1)->requests, 0);
}

/* 4xx is the client's fault; 5xx, connect errors, timeouts and resets are errors. */
static void test_classification(void **state)
{
    struct window *w = *state;

    record_status(w, 7, 101, 10, 1);
    record_status(w, 7, 204, 10, 2);
    record_status(w, 7, 302, 10, 3);
    record_status(w, 7, 404, 10, 4);
    record_status(w, 7, 599, 10, 5);
    record_status(w, 7, 600, 10, 1); /* not a status: the upstream's fault */
    record_kind(w, 7, OUTCOME_CONNECT_ERROR, 6);
    record_kind(w, 7, OUTCOME_TIMEOUT, 7);
    record_kind(w, 7, OUTCOME_RESET, 8);

    struct window_sum *s = sum_of(w, 7, 1);
    assert_int_equal(s->s1xx, 1);
    assert_int_equal(s->s2xx, 2);
    assert_int_equal(s->s3xx, 3);
    assert_int_equal(s->s4xx, 4);
    assert_int_equal(s->s5xx, 6);
    assert_int_equal(s->connect_errors, 6);
    assert_int_equal(s->timeouts, 7);
    assert_int_equal(s->resets, 8);
    assert_int_equal(s->requests, 37);
    assert_int_equal(s->errors, 6 + 6 + 7 + 8);
    assert_int_equal(s->latency.total, 16); /* responses only */
    assert_true(fabs(window_sum_error_rate(s) - 27.0 / 37.0) < 1e-12);
}

static void test_merge_and_rate(void **state)
{
    struct window *w = *state;
    struct window *other = window_new();
    static struct window_sum a, b;

    assert_non_null(other);
    window_sum_clear(&a);
    assert_true(window_sum_error_rate(&a) == 0.0);

    record_status(w, 3, 200, 1000, 3);
    record_kind(other, 3, OUTCOME_TIMEOUT, 1);
    window_sum_add(&a, w, 3, 1);
    window_sum_clear(&b);
    window_sum_add(&b, other, 3, 1);
    window_sum_merge(&a, &b);
    assert_int_equal(a.requests, 4);
    assert_int_equal(a.errors, 1);
    assert_int_equal(a.timeouts, 1);
    assert_int_equal(a.latency.total, 3);
    assert_true(window_sum_error_rate(&a) == 0.25);
    window_free(other);
    window_free(NULL);
}

static struct window_sum *totals_of(const struct window *w)
{
    static struct window_sum sum;

    window_sum_clear(&sum);
    window_totals_add(&sum, w);
    return &sum;
}

/* The totals keep what the slots forget: a reused slot, an outcome too late
 * for its slot, one with a negative second. */
static void test_totals_survive_slot_reuse(void **state)
{
    struct window *w = *state;

    record_status(w, 10, 503, 500000, 9);
    record_status(w, 10 + WINDOW_SLOTS, 200, 100, 2);
    record_status(w, 10, 503, 500000, 1); /* too late for its slot */
    record_kind(w, -1, OUTCOME_TIMEOUT, 1);
    assert_int_equal(sum_of(w, 10 + WINDOW_SLOTS, WINDOW_SLOTS)->requests, 2);

    struct window_sum *t = totals_of(w);
    assert_int_equal(t->requests, 13);
    assert_int_equal(t->s5xx, 10);
    assert_int_equal(t->s2xx, 2);
    assert_int_equal(t->timeouts, 1);
    assert_int_equal(t->errors, 11);
    assert_int_equal(t->latency.total, 12); /* responses only */
    assert_int_equal(t->latency.counts[hist_bucket_of(500000)], 10);
    assert_int_equal(t->latency.counts[hist_bucket_of(100)], 2);
    assert_int_equal(hist_sum_count_le(&t->latency, hist_bucket_high(hist_bucket_of(100))), 2);
}

/* Totals add up across windows (the workers of one pool) and onto what the
 * sum already held. */
static void test_totals_add_across_windows(void **state)
{
    struct window *w = *state;
    struct window *other = window_new();
    static struct window_sum t;

    assert_non_null(other);
    window_sum_clear(&t);
    window_totals_add(&t, w);
    assert_int_equal(t.requests, 0);
    assert_int_equal(t.latency.total, 0);

    record_status(w, 1, 204, 2000, 3);
    record_status(w, 200, 404, 3000, 4);
    record_status(other, 5, 302, 2000, 5);
    record_kind(other, 6, OUTCOME_CONNECT_ERROR, 6);
    record_kind(other, 7, OUTCOME_RESET, 7);
    window_totals_add(&t, w);
    window_totals_add(&t, other);
    assert_int_equal(t.requests, 3 + 4 + 5 + 6 + 7);
    assert_int_equal(t.s2xx, 3);
    assert_int_equal(t.s3xx, 5);
    assert_int_equal(t.s4xx, 4);
    assert_int_equal(t.connect_errors, 6);
    assert_int_equal(t.resets, 7);
    assert_int_equal(t.errors, 13);
    assert_int_equal(t.latency.total, 12);
    assert_int_equal(t.latency.counts[hist_bucket_of(2000)], 8);

    window_totals_add(&t, other); /* adds again: a reader clears first */
    assert_int_equal(t.requests, 25 + 18);
    window_free(other);
}

static void test_now_s_is_monotonic(void **state)
{
    int64_t first = window_now_s();

    assert_true(first >= 0);
    assert_true(window_now_s() >= first);
}

/* The cost of one record, printed for the README (not judged: machines differ). */
static void test_record_cost(void **state)
{
    enum { RECORDS = 10000000, PER_SECOND = 1000000 };
    struct window *w = *state;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t i = 0; i < RECORDS; i++) {
        struct outcome o = {OUTCOME_RESPONSE, i % 16 ? 200 : 503, 200 + (i * 7919u) % 400000};
        window_record(w, 1000 + i / PER_SECOND, &o);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    print_message("window_record: %.2f ns per record\n", ns / RECORDS);

    struct window_sum *s = sum_of(w, 1000 + RECORDS / PER_SECOND - 1, RECORDS / PER_SECOND);
    assert_int_equal(s->requests, RECORDS);
    assert_int_equal(s->s5xx, RECORDS / 16);
}

/* --- a writer racing a reader ------------------------------------------ */

#define RACE_PER_SECOND 100     /* records per injected second: resets come often */
#define RACE_MIN_SECONDS 200    /* enough to reuse every slot a few times */
#define RACE_RUN_NS 300000000LL /* the writer's run time once it has the minimum */
#define RACE_MAX_NS 5000000000LL
#define RACE_MAX_READS 10000000

struct race {
    struct window *w;
    _Atomic int64_t writer_sec; /* the second the writer is in */
    _Atomic bool done;
    int64_t last_sec;     /* the writer's last second, read after join */
    uint32_t last_in_sec; /* records in that second */
    uint64_t reads;       /* slot reads that found the slot whole */
    uint64_t last_total;  /* the reader's last read of the totals' request count */
    char failure[160];    /* the reader's first complaint; empty when none */
};

/* Each second holds one kind of outcome and one latency, both set by the
 * second and different from those of the second 64 s before (64 is 1 mod 3
 * and 1 mod 63): a slot read across a reset shows a mix. */
static struct outcome race_outcome(int64_t sec)
{
    static const struct outcome kinds[] = {
        {OUTCOME_RESPONSE, 200, 0},
        {OUTCOME_RESPONSE, 503, 0},
        {OUTCOME_TIMEOUT, 0, 0},
    };
    struct outcome o = kinds[sec % 3];

    o.latency_us = 1 + (uint64_t)(sec % 63);
    return o;
}

static int64_t elapsed_ns(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000000000LL + (now.tv_nsec - since->tv_nsec);
}

static bool writer_should_stop(const struct timespec *start, int64_t sec)
{
    int64_t ns = elapsed_ns(start);

    return ns > RACE_MAX_NS || (ns > RACE_RUN_NS && sec >= RACE_MIN_SECONDS);
}

static void *race_writer(void *arg)
{
    struct race *r = arg;
    struct timespec start;
    int64_t sec = 0;
    uint32_t in_sec = 0;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (uint64_t i = 0;; i++) {
        if ((i & 1023) == 0 && writer_should_stop(&start, sec))
            break;
        if (in_sec == RACE_PER_SECOND) {
            sec++;
            in_sec = 0;
            atomic_store_explicit(&r->writer_sec, sec, memory_order_relaxed);
        }
        struct outcome o = race_outcome(sec);
        window_record(r->w, sec, &o);
        in_sec++;
    }
    r->last_sec = sec;
    r->last_in_sec = in_sec;
    atomic_store_explicit(&r->done, true, memory_order_release);
    return NULL;
}

static void race_fail(struct race *r, const char *what, int64_t sec, uint64_t value)
{
    if (r->failure[0] == '\0')
        snprintf(r->failure, sizeof(r->failure), "second %lld: %s (%llu)", (long long)sec, what,
                 (unsigned long long)value);
}

/* One second's slot, as the reader saw it, must hold that second only. */
static void race_check_second(struct race *r, int64_t sec)
{
    static struct window_sum s;
    struct outcome o = race_outcome(sec);

    window_sum_clear(&s);
    window_sum_add(&s, r->w, sec, 1);
    if (s.requests == 0)
        return;
    r->reads++;
    uint64_t of_kind = o.kind == OUTCOME_TIMEOUT ? s.timeouts : o.status == 200 ? s.s2xx : s.s5xx;
    if (s.requests > RACE_PER_SECOND)
        race_fail(r, "more requests than written", sec, s.requests);
    if (of_kind != s.requests)
        race_fail(r, "outcomes of another second", sec, s.requests - of_kind);
    size_t bucket = hist_bucket_of(o.latency_us);
    if (s.latency.counts[bucket] != s.latency.total)
        race_fail(r, "latencies of another second", sec, s.latency.total);
    if (s.latency.total > RACE_PER_SECOND)
        race_fail(r, "more latencies than written", sec, s.latency.total);
}

/* The whole window's sum is coherent too. */
static void race_check_window(struct race *r, int64_t now)
{
    static struct window_sum s;

    window_sum_clear(&s);
    window_sum_add(&s, r->w, now, WINDOW_SLOTS);
    if (s.requests > (uint64_t)WINDOW_SLOTS * RACE_PER_SECOND)
        race_fail(r, "window holds more than 64 s of records", now, s.requests);
    if (s.s2xx > s.requests || s.errors > s.requests)
        race_fail(r, "a class above the request count", now, s.requests);
    if (s.s2xx + s.s5xx + s.timeouts != s.requests)
        race_fail(r, "classes do not add up", now, s.requests);
}

/* The totals never go backwards. */
static void race_check_totals(struct race *r, int64_t now)
{
    static struct window_sum s;

    window_sum_clear(&s);
    window_totals_add(&s, r->w);
    if (s.requests < r->last_total)
        race_fail(r, "totals went backwards", now, r->last_total - s.requests);
    r->last_total = s.requests;
}

/* Mostly reads the oldest second, the slot the writer resets next; now and
 * then every second and the whole window. */
static void *race_reader(void *arg)
{
    struct race *r = arg;

    for (uint64_t n = 0; n < RACE_MAX_READS; n++) {
        if (atomic_load_explicit(&r->done, memory_order_acquire))
            break;
        int64_t now = atomic_load_explicit(&r->writer_sec, memory_order_relaxed);
        int64_t oldest = now - WINDOW_SLOTS + 1;
        if (n % 64 != 0) {
            if (oldest >= 0)
                race_check_second(r, oldest);
            continue;
        }
        for (int64_t sec = oldest < 0 ? 0 : oldest; sec <= now; sec++)
            race_check_second(r, sec);
        race_check_window(r, now);
        race_check_totals(r, now);
    }
    return NULL;
}

/* What the writer wrote into the last 64 seconds, rebuilt from the pattern. */
static void race_expected(const struct race *r, struct window_sum *want)
{
    window_sum_clear(want);
    for (int64_t sec = r->last_sec; sec > r->last_sec - WINDOW_SLOTS && sec >= 0; sec--) {
        uint32_t n = sec == r->last_sec ? r->last_in_sec : RACE_PER_SECOND;
        struct outcome o = race_outcome(sec);
        want->requests += n;
        if (o.kind == OUTCOME_TIMEOUT) {
            want->timeouts += n;
        } else {
            *(o.status == 200 ? &want->s2xx : &want->s5xx) += n;
            want->latency.counts[hist_bucket_of(o.latency_us)] += n;
            want->latency.total += n;
        }
        want->errors += o.status == 200 ? 0 : n;
    }
}

static void test_writer_races_reader(void **state)
{
    static struct race r;
    static struct window_sum want, got;
    pthread_t writer, reader;

    memset(&r, 0, sizeof(r));
    r.w = *state;
    atomic_init(&r.writer_sec, 0);
    atomic_init(&r.done, false);
    assert_int_equal(pthread_create(&writer, NULL, race_writer, &r), 0);
    assert_int_equal(pthread_create(&reader, NULL, race_reader, &r), 0);
    pthread_join(writer, NULL);
    pthread_join(reader, NULL);

    if (r.failure[0] != '\0')
        fail_msg("reader: %s", r.failure);
    assert_true(r.last_sec >= RACE_MIN_SECONDS);
    assert_true(r.reads > 0);
    race_expected(&r, &want);
    window_sum_clear(&got);
    window_sum_add(&got, r.w, r.last_sec, WINDOW_SLOTS);
    assert_memory_equal(&got, &want, sizeof(want));
    assert_int_equal(totals_of(r.w)->requests,
                     (uint64_t)r.last_sec * RACE_PER_SECOND + r.last_in_sec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sums_over_seconds, setup_window, teardown_window),
        cmocka_unit_test_setup_teardown(test_old_seconds_outside_range, setup_window,
                                        teardown_window),
        cmocka_unit_test_setup_teardown(test_slot_reuse, setup_window, teardown_window),
        cmocka_unit_test_setup_teardown(test_classification, setup_window, teardown_window),
        cmocka_unit_test_setup_teardown(test_merge_and_rate, setup_window, teardown_window),
        cmocka_unit_test_setup_teardown(test_totals_survive_slot_reuse, setup_window,
                                        teardown_window),
        cmocka_unit_test_setup_teardown(test_totals_add_across_windows, setup_window,
                                        teardown_window),
        cmocka_unit_test(test_now_s_is_monotonic),
        cmocka_unit_test_setup_teardown(test_record_cost, setup_window, teardown_window),
        cmocka_unit_test_setup_teardown(test_writer_races_reader, setup_window, teardown_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
