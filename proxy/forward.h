/* forward.h - the heads switchyard sends on: a request head for the upstream
 * and a response head for the client, each rewritten from the parsed one.
 *
 * Hop-by-hop fields (Connection and the fields it names, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Upgrade unless upgrading) are dropped;
 * Transfer-Encoding is kept because chunked bodies are relayed with their
 * framing. X-Forwarded-For gains the client address and X-Forwarded-Proto is
 * set by us, never taken from the client. An absolute-form target goes on
 * in origin-form, its authority replacing the client's Host; Content-Length
 * goes as one plain number.
 */
#ifndef SY_PROXY_FORWARD_H
#define SY_PROXY_FORWARD_H

#include <stdbool.h>

#include "proxy/http1.h"

struct evbuffer;

struct forward_request_opts {
    const char *client_ip; /* text form of the client address */
    const char *proto;     /* "http" or "https" */
    bool upgrade;          /* keep Upgrade and ask the upstream to switch */
};

/* Appends the upstream request head for req to out. Returns 0 or -1 (no
 * memory). */
int forward_request_head(struct evbuffer *out, const struct http1_request *req,
                         const struct forward_request_opts *opts)
    __attribute__((warn_unused_result));

struct forward_response_opts {
    bool close;        /* tell the client this connection closes */
    bool keepalive_10; /* HTTP/1.0 client kept alive: say so */
    bool upgrade;      /* a 101 that switches the connection */
    /* Sticky cookie to set on a final response (not on 1xx, not when res
     * sets a cookie of that name itself); NULL: none. Both borrowed. */
    const char *cookie_name;
    const char *cookie_value; /* cookie_value_len URL-safe characters */
    size_t cookie_value_len;
};

/* The attributes of the sticky cookie: a year, the whole site, out of
 * scripts' reach, and sent on top-level navigation from other sites. */
#define FORWARD_COOKIE_ATTRS "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"

/* Appends the client response head for res to out. Returns 0 or -1. */
int forward_response_head(struct evbuffer *out, const struct http1_response *res,
                          const struct forward_response_opts *opts)
    __attribute__((warn_unused_result));

/* Appends a complete generated answer (status, short text body, closing the
 * connection) to out. Returns 0 or -1. */
int forward_error_response(struct evbuffer *out, int status, const char *detail)
    __attribute__((warn_unused_result));

#endif
