/* window.c - the ring of one-second slots, its single writer and its readers. */
#include "health/window.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* A slot's counters, one per kind of outcome; requests is their sum, so a
 * reader can never see a class count above the request count. */
enum slot_counter {
    SLOT_1XX,
    SLOT_2XX,
    SLOT_3XX,
    SLOT_4XX,
    SLOT_5XX,
    SLOT_CONNECT_ERROR,
    SLOT_TIMEOUT,
    SLOT_RESET,
    SLOT_COUNTERS
};

struct slot {
    _Atomic int64_t sec; /* the second counted here; -1 when empty or being reset */
    _Atomic uint32_t counters[SLOT_COUNTERS];
    struct histogram latency; /* upstream latency of the responses */
};

/* Every outcome since the window was made, for monotonic counters
 * (Prometheus). Never reset, so a reader needs no sequence check; 64 bits,
 * so a busy worker never wraps one. */
struct window_totals {
    _Atomic uint64_t counters[SLOT_COUNTERS];
    _Atomic uint64_t latency[HIST_BUCKETS]; /* by histogram bucket */
};

struct window {
    struct slot slots[WINDOW_SLOTS];
    struct window_totals totals;
};

/* A reader's private copy of one slot, taken before it knows the copy is whole. */
struct slot_copy {
    uint64_t counters[SLOT_COUNTERS];
    uint32_t latency[HIST_BUCKETS];
};

static void slot_init(struct slot *s)
{
    atomic_init(&s->sec, -1);
    for (size_t i = 0; i < SLOT_COUNTERS; i++)
        atomic_init(&s->counters[i], 0);
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        atomic_init(&s->latency.counts[b], 0);
}

struct window *window_new(void)
{
    struct window *w = malloc(sizeof(*w));

    if (w == NULL)
        return NULL;
    for (size_t i = 0; i < WINDOW_SLOTS; i++)
        slot_init(&w->slots[i]);
    for (size_t i = 0; i < SLOT_COUNTERS; i++)
        atomic_init(&w->totals.counters[i], 0);
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        atomic_init(&w->totals.latency[b], 0);
    return w;
}

void window_free(struct window *w)
{
    free(w);
}

static size_t slot_index(int64_t sec)
{
    return (size_t)((uint64_t)sec % WINDOW_SLOTS);
}

/* The writer's side of the sequence check: sec goes to -1 before any count
 * is cleared and to the new second only after all are. The release fence
 * keeps the clearing stores from being seen before the -1 (a release store
 * alone orders only what comes before it). */
static void slot_reset(struct slot *s, int64_t sec)
{
    atomic_store_explicit(&s->sec, -1, memory_order_release);
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < SLOT_COUNTERS; i++)
        atomic_store_explicit(&s->counters[i], 0, memory_order_relaxed);
    hist_clear(&s->latency);
    atomic_store_explicit(&s->sec, sec, memory_order_release);
}

/* Only the writer stores a counter, so load + store needs no atomic add. */
static void counter_bump(_Atomic uint32_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void total_bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static enum slot_counter counter_of(const struct outcome *o)
{
    switch (o->kind) {
    case OUTCOME_RESPONSE:
        /* A status outside 100..599 is the upstream misbehaving: a 5xx. */
        if (o->status < 100 || o->status > 599)
            return SLOT_5XX;
        return (enum slot_counter)(SLOT_1XX + o->status / 100 - 1);
    case OUTCOME_CONNECT_ERROR:
        return SLOT_CONNECT_ERROR;
    case OUTCOME_TIMEOUT:
        return SLOT_TIMEOUT;
    case OUTCOME_RESET:
        return SLOT_RESET;
    }
    return SLOT_RESET; /* not a kind we know: the exchange broke somehow */
}

/* The slot of second now_s, reset first when it held an older second; NULL
 * when the outcome is too late for it (or now_s is not a second). */
static struct slot *slot_for(struct window *w, int64_t now_s)
{
    if (now_s < 0)
        return NULL;
    struct slot *s = &w->slots[slot_index(now_s)];
    int64_t held = atomic_load_explicit(&s->sec, memory_order_relaxed);

    if (held != now_s) {
        if (held > now_s)
            return NULL;
        slot_reset(s, now_s);
    }
    return s;
}

void window_record(struct window *w, int64_t now_s, const struct outcome *o)
{
    enum slot_counter counter = counter_of(o);
    struct slot *s = slot_for(w, now_s);
    /* The bucket is found once for both histograms. */
    size_t bucket = o->kind == OUTCOME_RESPONSE ? hist_bucket_of(o->latency_us) : HIST_BUCKETS;

    total_bump(&w->totals.counters[counter]);
    if (bucket < HIST_BUCKETS)
        total_bump(&w->totals.latency[bucket]);
    if (s == NULL)
        return;
    counter_bump(&s->counters[counter]);
    if (bucket < HIST_BUCKETS)
        counter_bump(&s->latency.counts[bucket]);
}

/* The reader's side: copies the slot when it holds second sec, and keeps the
 * copy only when sec did not change meanwhile. The acquire fence keeps the
 * copy's loads from being moved after the second look at sec. */
static bool slot_read(const struct slot *s, int64_t sec, struct slot_copy *copy)
{
    if (atomic_load_explicit(&s->sec, memory_order_acquire) != sec)
        return false;
    for (size_t i = 0; i < SLOT_COUNTERS; i++)
        copy->counters[i] = atomic_load_explicit(&s->counters[i], memory_order_relaxed);
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        copy->latency[b] = atomic_load_explicit(&s->latency.counts[b], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&s->sec, memory_order_relaxed) == sec;
}

/* Adds one counter of each kind (a slot's or the totals') to *s. */
static void sum_add_counters(struct window_sum *s, const uint64_t n[SLOT_COUNTERS])
{
    s->s1xx += n[SLOT_1XX];
    s->s2xx += n[SLOT_2XX];
    s->s3xx += n[SLOT_3XX];
    s->s4xx += n[SLOT_4XX];
    s->s5xx += n[SLOT_5XX];
    s->connect_errors += n[SLOT_CONNECT_ERROR];
    s->timeouts += n[SLOT_TIMEOUT];
    s->resets += n[SLOT_RESET];
    for (size_t i = 0; i < SLOT_COUNTERS; i++)
        s->requests += n[i];
    s->errors += n[SLOT_5XX] + n[SLOT_CONNECT_ERROR] + n[SLOT_TIMEOUT] + n[SLOT_RESET];
}

static void sum_add_copy(struct window_sum *s, const struct slot_copy *c)
{
    sum_add_counters(s, c->counters);
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        s->latency.counts[b] += c->latency[b];
        s->latency.total += c->latency[b];
    }
}

void window_sum_clear(struct window_sum *s)
{
    *s = (struct window_sum){0};
}

void window_sum_add(struct window_sum *s, const struct window *w, int64_t now_s, unsigned seconds)
{
    struct slot_copy copy;

    if (seconds > WINDOW_SLOTS)
        seconds = WINDOW_SLOTS;
    for (unsigned i = 0; i < seconds && now_s - (int64_t)i >= 0; i++) {
        int64_t sec = now_s - (int64_t)i;
        if (slot_read(&w->slots[slot_index(sec)], sec, &copy))
            sum_add_copy(s, &copy);
    }
}

void window_totals_add(struct window_sum *into, const struct window *w)
{
    uint64_t n[SLOT_COUNTERS];

    for (size_t i = 0; i < SLOT_COUNTERS; i++)
        n[i] = atomic_load_explicit(&w->totals.counters[i], memory_order_relaxed);
    sum_add_counters(into, n);
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        uint64_t count = atomic_load_explicit(&w->totals.latency[b], memory_order_relaxed);
        into->latency.counts[b] += count;
        into->latency.total += count;
    }
}

void window_sum_merge(struct window_sum *into, const struct window_sum *from)
{
    into->requests += from->requests;
    into->s1xx += from->s1xx;
    into->s2xx += from->s2xx;
    into->s3xx += from->s3xx;
    into->s4xx += from->s4xx;
    into->s5xx += from->s5xx;
    into->connect_errors += from->connect_errors;
    into->timeouts += from->timeouts;
    into->resets += from->resets;
    into->errors += from->errors;
    hist_sum_merge(&into->latency, &from->latency);
}

static void take(uint64_t *from, uint64_t part)
{
    *from = *from > part ? *from - part : 0;
}

void window_sum_subtract(struct window_sum *from, const struct window_sum *part)
{
    take(&from->requests, part->requests);
    take(&from->s1xx, part->s1xx);
    take(&from->s2xx, part->s2xx);
    take(&from->s3xx, part->s3xx);
    take(&from->s4xx, part->s4xx);
    take(&from->s5xx, part->s5xx);
    take(&from->connect_errors, part->connect_errors);
    take(&from->timeouts, part->timeouts);
    take(&from->resets, part->resets);
    take(&from->errors, part->errors);
    hist_sum_subtract(&from->latency, &part->latency);
}

double window_sum_error_rate(const struct window_sum *s)
{
    return s->requests == 0 ? 0.0 : (double)s->errors / (double)s->requests;
}

int64_t window_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}
