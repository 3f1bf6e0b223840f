/* http1_chunked.h - the chunked transfer coding's framing (RFC 9112 7.1),
 * decoded byte by byte without allocating. */
#ifndef SY_PROXY_HTTP1_CHUNKED_H
#define SY_PROXY_HTTP1_CHUNKED_H

#include <stdint.h>
#include <sys/types.h>

#include "proxy/http1.h"

/* The decoder reads only the framing (chunk-size lines with
 * their extensions, the CRLF after each chunk's data, the last chunk and the
 * trailer section); the caller moves the chunk data itself, without copying,
 * because data_left tells how many bytes of data come next. */
enum http1_chunked_state {
    HTTP1_CHUNK_SIZE = 0, /* reading a chunk-size line */
    HTTP1_CHUNK_DATA,     /* data_left bytes of chunk data come next */
    HTTP1_CHUNK_DATA_CRLF,
    HTTP1_CHUNK_TRAILERS, /* after the last chunk: trailer fields until an empty line */
    HTTP1_CHUNK_DONE,     /* the message is complete */
};

struct http1_chunked {
    enum http1_chunked_state state;
    uint64_t data_left; /* in HTTP1_CHUNK_DATA */
    uint32_t line_len;  /* bytes of the current framing line seen so far */
    uint32_t trailer_bytes;
    uint8_t sub; /* internal scanner state */
};

#define HTTP1_CHUNK_LINE_MAX 4096 /* a chunk-size line, extensions included */
#define HTTP1_CHUNK_TRAILERS_MAX 16384

void http1_chunked_init(struct http1_chunked *c);

/* Consumes framing bytes from buf[0..len). Stops at the start of chunk data
 * (state HTTP1_CHUNK_DATA), at the end of the message (HTTP1_CHUNK_DONE) or at
 * the end of buf. Returns the number of bytes consumed (>= 0), or HTTP1_BAD on
 * malformed framing: a size that is not hex or overflows 2^63, bad extension
 * syntax, a missing CRLF after data, bare LF, an oversized line or trailer. */
ssize_t http1_chunked_parse(struct http1_chunked *c, const char *buf, size_t len);

/* Records that n (<= data_left) bytes of chunk data went by. */
void http1_chunked_data_done(struct http1_chunked *c, uint64_t n);

#endif
