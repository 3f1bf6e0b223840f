/* fuzz_http1_chunked.c - libFuzzer driver for the chunked framing decoder.
 *
 * The input is a chunked body. It is decoded the way the relay does it
 * (framing through the parser, data skipped by the caller using data_left)
 * three times: whole, cut in two at a point chosen from the input, and one
 * byte at a time. All three must agree on the outcome, the bytes consumed
 * and the data seen, else the decoder is not safely incremental.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1_chunked.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    int bad;
    enum http1_chunked_state state;
    size_t consumed;
    size_t data_bytes;
    uint32_t data_hash; /* FNV-1a of the chunk data */
};

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Feeds one piece; returns how much of it belongs to the body, or -1. */
static ssize_t feed(struct http1_chunked *c, const uint8_t *p, size_t n, struct outcome *o)
{
    size_t pos = 0;

    while (pos < n && c->state != HTTP1_CHUNK_DONE) {
        if (c->state == HTTP1_CHUNK_DATA) {
            size_t k = n - pos < c->data_left ? n - pos : (size_t)c->data_left;
            o->data_hash = fnv(o->data_hash, p + pos, k);
            o->data_bytes += k;
            http1_chunked_data_done(c, k);
            pos += k;
            continue;
        }
        ssize_t r = http1_chunked_parse(c, (const char *)p + pos, n - pos);
        if (r < 0)
            return -1;
        if ((size_t)r > n - pos ||
            (r == 0 && c->state != HTTP1_CHUNK_DATA && c->state != HTTP1_CHUNK_DONE))
            abort(); /* overran the piece, or stalled */
        pos += (size_t)r;
    }
    return (ssize_t)pos;
}

/* Decodes data[0..size) in pieces of step bytes after a first piece of
 * first bytes, each piece an exact heap copy so over-reads are caught. */
static void run(const uint8_t *data, size_t size, size_t first, size_t step, struct outcome *o)
{
    struct http1_chunked c;
    size_t pos = 0;

    memset(o, 0, sizeof(*o));
    o->data_hash = 2166136261u;
    http1_chunked_init(&c);
    while (pos < size && c.state != HTTP1_CHUNK_DONE) {
        size_t n = pos == 0 ? first : step;
        if (n == 0 || n > size - pos)
            n = size - pos;
        uint8_t *piece = malloc(n);
        if (piece == NULL)
            abort();
        memcpy(piece, data + pos, n);
        ssize_t r = feed(&c, piece, n, o);
        free(piece);
        if (r < 0) {
            o->bad = 1;
            return;
        }
        pos += (size_t)r;
    }
    o->state = c.state;
    o->consumed = pos;
}

static int same(const struct outcome *a, const struct outcome *b)
{
    if (a->bad || b->bad)
        return a->bad == b->bad;
    return a->state == b->state && a->consumed == b->consumed && a->data_bytes == b->data_bytes &&
           a->data_hash == b->data_hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole, split, bytes;

    run(data, size, size, size, &whole);
    size_t cut = size == 0 ? 0 : fnv(2166136261u, data, size) % (size + 1);
    run(data, size, cut, size, &split);
    if (!same(&whole, &split))
        abort();
    if (size <= 4096) {
        run(data, size, 1, 1, &bytes);
        if (!same(&whole, &bytes))
            abort();
    }
    return 0;
}
