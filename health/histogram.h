/* histogram.h - log-linear latency histograms in microseconds.
 *
 * Layout (HdrHistogram style): values below 64 µs have a bucket each; above,
 * every power of two [2^k, 2^(k+1)) is cut into HIST_SUB_BUCKETS = 32 equal
 * buckets of width 2^(k-5). A bucket's width is thus at most 1/32 of its
 * smallest value, and reporting its midpoint is off by at most 1/64 (1.6 %)
 * of the true value. The range is 1 µs .. 60 s; values outside are clamped
 * into the first or last bucket. 697 buckets, 2788 bytes per histogram.
 *
 * A struct histogram has one writer (a worker) and readers on other threads:
 * the writer bumps a count with a relaxed load and a relaxed store (no
 * read-modify-write is needed when only one thread writes), readers load
 * relaxed and sum into a struct hist_sum, which is plain memory of their own.
 */
#ifndef SY_HEALTH_HISTOGRAM_H
#define SY_HEALTH_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB_BUCKETS (1u << HIST_SUB_BITS) /* buckets per power of two */
#define HIST_MIN_US 1u
#define HIST_MAX_US 60000000u /* 60 s */
/* The shift of the power of two holding HIST_MAX_US: 2^25 <= 60 s < 2^26,
 * so its buckets are 2^(25 - 5) µs wide. histogram.c checks this. */
#define HIST_TOP_SHIFT 20u
#define HIST_BUCKETS (HIST_TOP_SHIFT * HIST_SUB_BUCKETS + (HIST_MAX_US >> HIST_TOP_SHIFT))

struct histogram {
    _Atomic uint32_t counts[HIST_BUCKETS];
};

/* Counts one value (writer only). */
void hist_record(struct histogram *h, uint64_t us);

/* Zeroes every count (writer only). */
void hist_clear(struct histogram *h);

/* The bucket of a value, after clamping it into HIST_MIN_US..HIST_MAX_US. */
size_t hist_bucket_of(uint64_t us);

/* The smallest and the largest value of bucket b (b < HIST_BUCKETS; a larger
 * b is read as the last bucket). */
uint64_t hist_bucket_low(size_t b);
uint64_t hist_bucket_high(size_t b);

/* A reader's sum of histograms (plain integers, not shared). */
struct hist_sum {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
};

void hist_sum_clear(struct hist_sum *s);

/* Adds h's counts (relaxed reads: h may be written meanwhile) to *s. */
void hist_sum_add(struct hist_sum *s, const struct histogram *h);

void hist_sum_merge(struct hist_sum *into, const struct hist_sum *from);
/* Takes part (a sum of earlier reads of the same histograms) out of *from;
 * counts never go below 0. */
void hist_sum_subtract(struct hist_sum *from, const struct hist_sum *part);

/* The q-quantile (0 < q <= 1) in µs: the value at rank ceil(q * total),
 * reported as the midpoint of its bucket (so the relative error is at most
 * half a bucket's width); 0 when empty. q outside (0, 1] is clamped. */
uint64_t hist_sum_quantile(const struct hist_sum *s, double q);

/* How many recorded values are <= us, counting whole buckets whose high is
 * <= us (for Prometheus `le` buckets: exact when us is a bucket's high). */
uint64_t hist_sum_count_le(const struct hist_sum *s, uint64_t us);

#endif
