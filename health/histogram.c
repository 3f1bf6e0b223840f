/* histogram.c - bucket arithmetic, recording and quantiles. */
#include "health/histogram.h"

#include <math.h>
#include <string.h>

/* HIST_TOP_SHIFT must be the shift of HIST_MAX_US's power of two. */
_Static_assert((HIST_MAX_US >> HIST_TOP_SHIFT) >= HIST_SUB_BUCKETS &&
                   (HIST_MAX_US >> HIST_TOP_SHIFT) < 2 * HIST_SUB_BUCKETS,
               "HIST_TOP_SHIFT does not match HIST_MAX_US");

/* How far a value's power of two is shifted to get its sub-bucket: 0 below
 * 2 * HIST_SUB_BUCKETS, where every value has its own bucket. */
static unsigned shift_of(uint64_t v)
{
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);

    return msb > HIST_SUB_BITS ? msb - HIST_SUB_BITS : 0;
}

/* Bucket index + 1 is shift * 32 + (v >> shift): the values 1..63 map to
 * 0..62, and each further power of two adds 32 buckets. */
size_t hist_bucket_of(uint64_t us)
{
    uint64_t v = us < HIST_MIN_US ? HIST_MIN_US : us > HIST_MAX_US ? HIST_MAX_US : us;
    unsigned shift = shift_of(v);

    return (size_t)shift * HIST_SUB_BUCKETS + (size_t)(v >> shift) - 1;
}

static unsigned bucket_shift(size_t b)
{
    size_t i = b + 1;

    return i < 2 * HIST_SUB_BUCKETS ? 0 : (unsigned)(i / HIST_SUB_BUCKETS - 1);
}

uint64_t hist_bucket_low(size_t b)
{
    if (b >= HIST_BUCKETS)
        b = HIST_BUCKETS - 1;
    unsigned shift = bucket_shift(b);

    return (uint64_t)(b + 1 - (size_t)shift * HIST_SUB_BUCKETS) << shift;
}

uint64_t hist_bucket_high(size_t b)
{
    if (b >= HIST_BUCKETS)
        b = HIST_BUCKETS - 1;
    return hist_bucket_low(b) + (UINT64_C(1) << bucket_shift(b)) - 1;
}

void hist_record(struct histogram *h, uint64_t us)
{
    _Atomic uint32_t *c = &h->counts[hist_bucket_of(us)];

    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void hist_clear(struct histogram *h)
{
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        atomic_store_explicit(&h->counts[b], 0, memory_order_relaxed);
}

void hist_sum_clear(struct hist_sum *s)
{
    memset(s, 0, sizeof(*s));
}

void hist_sum_add(struct hist_sum *s, const struct histogram *h)
{
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        uint32_t n = atomic_load_explicit(&h->counts[b], memory_order_relaxed);
        s->counts[b] += n;
        s->total += n;
    }
}

void hist_sum_merge(struct hist_sum *into, const struct hist_sum *from)
{
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        into->counts[b] += from->counts[b];
    into->total += from->total;
}

static uint64_t minus(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

void hist_sum_subtract(struct hist_sum *from, const struct hist_sum *part)
{
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        from->counts[b] = minus(from->counts[b], part->counts[b]);
    from->total = minus(from->total, part->total);
}

/* The 1-based rank of the q-quantile among total values. */
static uint64_t quantile_rank(uint64_t total, double q)
{
    if (!(q > 0.0))
        return 1;
    if (q >= 1.0)
        return total;
    double rank = ceil(q * (double)total);

    return rank < 1.0 ? 1 : rank > (double)total ? total : (uint64_t)rank;
}

uint64_t hist_sum_quantile(const struct hist_sum *s, double q)
{
    if (s->total == 0)
        return 0;
    uint64_t rank = quantile_rank(s->total, q);
    uint64_t seen = 0;

    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += s->counts[b];
        if (seen >= rank)
            return hist_bucket_low(b) + (hist_bucket_high(b) - hist_bucket_low(b)) / 2;
    }
    /* Only reached when total disagrees with the counts (a caller's edit). */
    return hist_bucket_high(HIST_BUCKETS - 1);
}

uint64_t hist_sum_count_le(const struct hist_sum *s, uint64_t us)
{
    uint64_t n = 0;

    for (size_t b = 0; b < HIST_BUCKETS && hist_bucket_high(b) <= us; b++)
        n += s->counts[b];
    return n;
}
