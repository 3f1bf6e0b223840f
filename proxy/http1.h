/* http1.h - a strict HTTP/1.1 message head parser.
 *
 * Nothing here allocates. The head parsers take a caller's buffer and fill
 * caller-provided structs with pointers into that buffer (borrowed: valid as
 * long as the buffer is). They follow RFC 9112 strictly, with the request
 * smuggling rules: anything ambiguous is an error, never a guess.
 *
 * The parsers are incremental in the picohttpparser sense: call again with
 * more bytes (the same prefix, longer) until the result is not
 * HTTP1_INCOMPLETE. An error that is visible in a prefix is reported as soon as
 * it is seen, without waiting for the end of the head.
 */
#ifndef SY_PROXY_HTTP1_H
#define SY_PROXY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results of the parsers; a complete head returns its length (> 0). */
#define HTTP1_INCOMPLETE (-2) /* the head is not complete yet: read more */
#define HTTP1_BAD (-1)        /* malformed or ambiguous: answer 400 and close */
#define HTTP1_TOO_LARGE (-3)  /* over max_bytes or over max_headers: 431 and close */

struct http1_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
};

enum http1_body {
    HTTP1_BODY_NONE,    /* no body at all */
    HTTP1_BODY_LENGTH,  /* content_length bytes follow */
    HTTP1_BODY_CHUNKED, /* chunked framing follows */
    HTTP1_BODY_CLOSE,   /* responses only: the body runs until the server closes */
};

enum http1_method {
    HTTP1_M_OTHER = 0,
    HTTP1_M_GET,
    HTTP1_M_HEAD,
    HTTP1_M_POST,
    HTTP1_M_PUT,
    HTTP1_M_DELETE,
    HTTP1_M_OPTIONS,
    HTTP1_M_CONNECT,
};

/* Flags read from the head (both messages unless said otherwise). */
#define HTTP1_F_CLOSE                                                                              \
    0x01                             /* the sender closes after this message: "Connection: close", \
                                        or HTTP/1.0 without "Connection: keep-alive" */
#define HTTP1_F_UPGRADE 0x02         /* "Connection: upgrade" together with an Upgrade header */
#define HTTP1_F_EXPECT_CONTINUE 0x04 /* requests: "Expect: 100-continue" */
#define HTTP1_F_HAS_HOST 0x08        /* requests: exactly one Host header */

struct http1_request {
    const char *method;
    size_t method_len;
    enum http1_method method_id;
    const char *target;
    size_t target_len;
    int minor_version;            /* 0 or 1; HTTP/2+ on this parser is HTTP1_BAD */
    struct http1_header *headers; /* the caller's array, filled in order */
    size_t num_headers;
    enum http1_body body; /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    unsigned flags;
};

struct http1_response {
    int minor_version;
    int status; /* 100..599 */
    const char *reason;
    size_t reason_len;
    struct http1_header *headers;
    size_t num_headers;
    enum http1_body body; /* any; NONE for HEAD answers, 1xx, 204 and 304 */
    uint64_t content_length;
    unsigned flags;
};

/* Parses a request head (request line, header fields, empty line) at the
 * start of buf[0..len). headers is the caller's array of max_headers entries.
 * Returns the head's length in bytes when complete, HTTP1_INCOMPLETE,
 * HTTP1_BAD, or HTTP1_TOO_LARGE when the head is (or must become) longer than
 * max_bytes or has more than max_headers fields. Rejected, among others:
 * Transfer-Encoding with Content-Length; several differing or malformed
 * Content-Length values; a Transfer-Encoding other than a final "chunked";
 * Transfer-Encoding on HTTP/1.0; obs-fold; whitespace before a colon; bare LF;
 * NUL and other CTLs in fields; a missing or repeated Host on HTTP/1.1; a
 * Host that is not uri-host [":" port]; a fragment, or userinfo, in the
 * target. */
int http1_parse_request(const char *buf, size_t len, size_t max_bytes, struct http1_header *headers,
                        size_t max_headers, struct http1_request *req);

/* Parses a response head the same way. request_method tells whether the
 * answer can carry a body (HEAD and a 2xx answer to CONNECT cannot). */
int http1_parse_response(const char *buf, size_t len, size_t max_bytes,
                         struct http1_header *headers, size_t max_headers,
                         enum http1_method request_method, struct http1_response *res);

/* Case-insensitive comparison of a header name with a NUL-terminated name. */
bool http1_header_is(const struct http1_header *h, const char *name);

/* Finds the first header with that name; NULL when absent. */
const struct http1_header *http1_header_find(const struct http1_header *headers, size_t n,
                                             const char *name);

/* True when the comma-separated list value contains token (case-insensitive),
 * e.g. http1_list_has(connection_value, len, "close"). */
bool http1_list_has(const char *value, size_t len, const char *token);

/* The standard reason phrase for a status code ("Bad Gateway"), or "Unknown". */
const char *http1_reason(int status);

#endif
