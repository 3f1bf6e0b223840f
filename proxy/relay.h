/* relay.h - moving HTTP messages from one evbuffer to another.
 *
 * Heads are parsed in place at the front of an input buffer; bodies move
 * through their framing with evbuffer_remove_buffer, so that the bytes are
 * handed over, not copied (a partial chunk of the buffer is the only copy).
 */
#ifndef SY_PROXY_RELAY_H
#define SY_PROXY_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/http1_chunked.h"

struct evbuffer;

/* Stop moving into a destination holding this many bytes: its write
 * callback (low-water mark RELAY_OUT_LOW) asks for more once it drained. */
#define RELAY_OUT_HIGH (256 * 1024)
#define RELAY_OUT_LOW (64 * 1024)

/* Progress of one body through its framing. */
struct relay_body {
    enum http1_body kind;
    uint64_t left; /* HTTP1_BODY_LENGTH: bytes still to come */
    struct http1_chunked chunk;
    uint64_t bytes; /* moved so far, framing included */
};

void relay_body_init(struct relay_body *b, enum http1_body kind, uint64_t length);

/* Moves what src holds of the body to dst, keeping at most RELAY_OUT_HIGH
 * queued in dst. Returns 1 when the body is complete, 0 when more must come,
 * -1 on bad chunked framing. A close-delimited body never completes here:
 * the sender's EOF ends it. */
int relay_body_move(struct evbuffer *src, struct evbuffer *dst, struct relay_body *b);

/* A head parser over contiguous bytes, such as http1_parse_request wrapped
 * with its limits: returns what the http1 parsers return. */
typedef int (*relay_parse_cb)(const char *buf, size_t len, void *arg);

/* Runs parse over the head at the start of in. *head is set to the bytes
 * parsed (borrowed from in): the first contiguous segment when the head fits
 * in it, else the first max + 1 bytes made contiguous, never the body behind
 * them. Returns parse's result, HTTP1_TOO_LARGE for an incomplete head already
 * longer than max. */
int relay_head_parse(struct evbuffer *in, size_t max, const char **head, relay_parse_cb parse,
                     void *arg);

#endif
