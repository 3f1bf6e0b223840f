/* relay.c - heads parsed in place, bodies moved through their framing. */
#include "proxy/relay.h"

#include <event2/buffer.h>

void relay_body_init(struct relay_body *b, enum http1_body kind, uint64_t length)
{
    b->kind = kind;
    b->left = length;
    b->bytes = 0;
    http1_chunked_init(&b->chunk);
}

static void move_bytes(struct evbuffer *src, struct evbuffer *dst, struct relay_body *b, size_t n)
{
    evbuffer_remove_buffer(src, dst, n);
    b->bytes += n;
}

/* Chunked framing is checked byte by byte as it passes; the chunk data is
 * moved without being looked at. */
static int move_chunked(struct evbuffer *src, struct evbuffer *dst, struct relay_body *b,
                        size_t room)
{
    while (room > 0 && b->chunk.state != HTTP1_CHUNK_DONE) {
        size_t avail = evbuffer_get_length(src);
        if (avail == 0)
            return 0;
        if (b->chunk.state == HTTP1_CHUNK_DATA) {
            size_t n = avail < room ? avail : room;
            if (n > b->chunk.data_left)
                n = (size_t)b->chunk.data_left;
            move_bytes(src, dst, b, n);
            http1_chunked_data_done(&b->chunk, n);
            room -= n;
            continue;
        }
        struct evbuffer_iovec seg;
        if (evbuffer_peek(src, -1, NULL, &seg, 1) < 1)
            return 0;
        ssize_t used = http1_chunked_parse(&b->chunk, seg.iov_base, seg.iov_len);
        if (used < 0)
            return -1;
        move_bytes(src, dst, b, (size_t)used);
        room = (size_t)used < room ? room - (size_t)used : 0;
    }
    return b->chunk.state == HTTP1_CHUNK_DONE ? 1 : 0;
}

int relay_body_move(struct evbuffer *src, struct evbuffer *dst, struct relay_body *b)
{
    size_t queued = evbuffer_get_length(dst);
    size_t room = queued < RELAY_OUT_HIGH ? RELAY_OUT_HIGH - queued : 0;
    size_t avail = evbuffer_get_length(src);
    size_t n = avail < room ? avail : room;

    switch (b->kind) {
    case HTTP1_BODY_NONE:
        return 1;
    case HTTP1_BODY_LENGTH:
        if (n > b->left)
            n = (size_t)b->left;
        move_bytes(src, dst, b, n);
        b->left -= n;
        return b->left == 0 ? 1 : 0;
    case HTTP1_BODY_CHUNKED:
        return move_chunked(src, dst, b, room);
    case HTTP1_BODY_CLOSE:
        move_bytes(src, dst, b, n);
        return 0;
    }
    return -1;
}

int relay_head_parse(struct evbuffer *in, size_t max, const char **head, relay_parse_cb parse,
                     void *arg)
{
    size_t len = evbuffer_get_length(in);
    struct evbuffer_iovec seg;
    int r;

    if (evbuffer_peek(in, -1, NULL, &seg, 1) < 1)
        return HTTP1_INCOMPLETE;
    *head = seg.iov_base;
    r = parse(seg.iov_base, seg.iov_len, arg);
    if (r == HTTP1_INCOMPLETE && seg.iov_len < len) {
        size_t want = len < max + 1 ? len : max + 1;
        *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
        if (*head == NULL)
            return HTTP1_BAD;
        r = parse(*head, want, arg);
    }
    if (r == HTTP1_INCOMPLETE && len > max)
        return HTTP1_TOO_LARGE;
    return r;
}
