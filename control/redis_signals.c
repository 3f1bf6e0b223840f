/* redis_signals.c - outcome totals to text and back. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/redis_signals.h"

#define SIGNALS_VERSION "v1"
#define SIGNALS_COUNTERS 10

/* The counters in the order of the text. */
static void counters_get(const struct window_sum *s, uint64_t c[SIGNALS_COUNTERS])
{
    const uint64_t v[SIGNALS_COUNTERS] = {s->requests, s->s1xx,  s->s2xx,           s->s3xx,
                                          s->s4xx,     s->s5xx,  s->connect_errors, s->timeouts,
                                          s->resets,   s->errors};

    memcpy(c, v, sizeof(v));
}

static void counters_set(struct window_sum *s, const uint64_t c[SIGNALS_COUNTERS])
{
    s->requests = c[0];
    s->s1xx = c[1];
    s->s2xx = c[2];
    s->s3xx = c[3];
    s->s4xx = c[4];
    s->s5xx = c[5];
    s->connect_errors = c[6];
    s->timeouts = c[7];
    s->resets = c[8];
    s->errors = c[9];
}

/* --- encoding ----------------------------------------------------------- */

static bool sum_encodable(const struct window_sum *s)
{
    uint64_t c[SIGNALS_COUNTERS];

    counters_get(s, c);
    for (size_t i = 0; i < SIGNALS_COUNTERS; i++)
        if (c[i] > REDIS_SIGNALS_COUNT_MAX)
            return false;
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        if (s->latency.counts[b] > REDIS_SIGNALS_COUNT_MAX)
            return false;
    return true;
}

static void sum_write(FILE *fp, enum conf_colour colour, const struct window_sum *s)
{
    uint64_t c[SIGNALS_COUNTERS];

    counters_get(s, c);
    fputs(conf_colour_name(colour), fp);
    for (size_t i = 0; i < SIGNALS_COUNTERS; i++)
        fprintf(fp, " %" PRIu64, c[i]);
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        if (s->latency.counts[b] != 0)
            fprintf(fp, " %zu:%" PRIu64, b, s->latency.counts[b]);
    fputc('\n', fp);
}

int redis_signals_encode(const struct window_sum sums[CONF_COLOURS], int64_t started_ms,
                         uint64_t seq, char **out, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *fp;

    if (started_ms < 0)
        return -1;
    for (int c = 0; c < CONF_COLOURS; c++)
        if (!sum_encodable(&sums[c]))
            return -1;
    fp = open_memstream(&buf, &size);
    if (fp == NULL)
        return -1;
    fprintf(fp, SIGNALS_VERSION " %" PRId64 " %" PRIu64 "\n", started_ms, seq);
    for (int c = 0; c < CONF_COLOURS; c++)
        sum_write(fp, (enum conf_colour)c, &sums[c]);
    /* A failed write (out of memory) shows in the error flag or in fclose. */
    if (ferror(fp) | fclose(fp)) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = size;
    return 0;
}

/* --- decoding ----------------------------------------------------------- */

struct reader {
    const char *p, *end;
    int line; /* 1-based, for messages */
    char *why;
    size_t why_len;
};

static int bad(struct reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct reader *rd, const char *fmt, ...)
{
    char msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(rd->why, rd->why_len, "signals line %d: %s", rd->line, msg);
    return -1;
}

static bool at(const struct reader *rd, char c)
{
    return rd->p < rd->end && *rd->p == c;
}

static int expect_char(struct reader *rd, char c, const char *what)
{
    if (!at(rd, c))
        return rd->p == rd->end
                   ? bad(rd, "truncated before %s", what)
                   : bad(rd, "unexpected byte 0x%02x before %s", (unsigned char)*rd->p, what);
    rd->p++;
    return 0;
}

static int expect_word(struct reader *rd, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(rd->end - rd->p) < n || memcmp(rd->p, word, n) != 0)
        return bad(rd, "expected \"%s\"", word);
    rd->p += n;
    return 0;
}

/* Reads a canonical decimal (no sign, no leading zero) not above max. */
static int read_uint(struct reader *rd, uint64_t max, const char *what, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = rd->p;

    while (rd->p < rd->end && *rd->p >= '0' && *rd->p <= '9') {
        unsigned d = (unsigned)(*rd->p - '0');
        if (d > max || v > (max - d) / 10)
            return bad(rd, "%s above %" PRIu64, what, max);
        v = v * 10 + d;
        rd->p++;
    }
    if (rd->p == start)
        return rd->p == rd->end ? bad(rd, "truncated before %s", what)
                                : bad(rd, "%s is not a number", what);
    if (rd->p - start > 1 && *start == '0')
        return bad(rd, "%s has a leading zero", what);
    *out = v;
    return 0;
}

static int read_header(struct reader *rd, int64_t *started_ms, uint64_t *seq)
{
    uint64_t started;

    if (expect_word(rd, SIGNALS_VERSION) < 0 || expect_char(rd, ' ', "started_ms") < 0 ||
        read_uint(rd, INT64_MAX, "started_ms", &started) < 0 || expect_char(rd, ' ', "seq") < 0 ||
        read_uint(rd, UINT64_MAX, "seq", seq) < 0 ||
        expect_char(rd, '\n', "the end of the line") < 0)
        return -1;
    *started_ms = (int64_t)started;
    return 0;
}

/* Reads " <bucket>:<count>" pairs up to the end of the line. */
static int read_histogram(struct reader *rd, struct hist_sum *h)
{
    uint64_t next = 0; /* the least bucket index allowed next */

    while (at(rd, ' ')) {
        uint64_t b, count;
        rd->p++;
        if (read_uint(rd, HIST_BUCKETS - 1, "a bucket index", &b) < 0)
            return -1;
        if (b < next)
            return bad(rd, "bucket %" PRIu64 " out of order", b);
        if (expect_char(rd, ':', "a bucket count") < 0 ||
            read_uint(rd, REDIS_SIGNALS_COUNT_MAX, "a bucket count", &count) < 0)
            return -1;
        if (count == 0)
            return bad(rd, "bucket %" PRIu64 " has a zero count", b);
        h->counts[b] = count;
        h->total += count;
        next = b + 1;
    }
    return expect_char(rd, '\n', "the end of the line");
}

static int read_sum(struct reader *rd, enum conf_colour colour, struct window_sum *s)
{
    uint64_t c[SIGNALS_COUNTERS];

    window_sum_clear(s);
    if (expect_word(rd, conf_colour_name(colour)) < 0)
        return -1;
    for (size_t i = 0; i < SIGNALS_COUNTERS; i++)
        if (expect_char(rd, ' ', "a counter") < 0 ||
            read_uint(rd, REDIS_SIGNALS_COUNT_MAX, "a counter", &c[i]) < 0)
            return -1;
    counters_set(s, c);
    return read_histogram(rd, &s->latency);
}

int redis_signals_decode(const char *text, size_t len, struct window_sum sums[CONF_COLOURS],
                         int64_t *started_ms, uint64_t *seq, char *why, size_t why_len)
{
    struct reader rd = {text, text + len, 1, why, why_len};
    struct window_sum *tmp = malloc(CONF_COLOURS * sizeof(*tmp));
    int64_t started;
    uint64_t n;

    if (tmp == NULL) {
        snprintf(why, why_len, "signals: out of memory");
        return -1;
    }
    if (read_header(&rd, &started, &n) < 0)
        goto fail;
    for (int c = 0; c < CONF_COLOURS; c++) {
        rd.line++;
        if (read_sum(&rd, (enum conf_colour)c, &tmp[c]) < 0)
            goto fail;
    }
    if (rd.p != rd.end) {
        rd.line++;
        bad(&rd, "trailing bytes after the last pool");
        goto fail;
    }
    memcpy(sums, tmp, CONF_COLOURS * sizeof(*tmp));
    *started_ms = started;
    *seq = n;
    free(tmp);
    return 0;

fail:
    free(tmp);
    return -1;
}
