/* http_client.h - one HTTP/1.1 request to a server, its answer judged.
 *
 * Shared by the active health checks and the rollout's preflight probes:
 * connect (non-blocking) to an address, send `METHOD PATH HTTP/1.1` with
 * `Host: <the address>` and `Connection: close` and the caller's header
 * fields, read the response head with the data plane's HTTP/1.1 parser and,
 * when a body substring is expected, the first HTTP_CLIENT_BODY_MAX bytes of
 * the body. The whole exchange is bounded by a timeout. The answer passes
 * when its status is the expected one and, with an expected substring, the
 * body contains it.
 *
 * With a TLS context (a pool's, proxy/tls_client.h), the request goes over
 * TLS with the verification the context and the pool's settings ask for: a
 * failed handshake fails the exchange, its reason in the result.
 */
#ifndef SY_HEALTH_HTTP_CLIENT_H
#define SY_HEALTH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "conf/addr.h"
#include "conf/config.h"

#define HTTP_CLIENT_BODY_MAX (64 * 1024) /* body bytes searched for expect_body */
#define HTTP_CLIENT_TEXT_MAX 128         /* a result text, NUL included */

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* What to send and how to judge the answer. Everything is borrowed for the
 * http_client_start() call only. */
struct http_client_request {
    const struct conf_addr *addr;      /* where to connect; its text is the Host */
    const char *method;                /* "GET", "HEAD", ... */
    const char *path;                  /* "/healthz" */
    const struct conf_header *headers; /* more fields, in order; none may be Host or
                                          Connection */
    size_t nheaders;
    const char *user_agent; /* NULL: no User-Agent field */
    unsigned expect_status;
    const char *expect_body; /* NULL: any body */
    uint32_t timeout_ms;     /* bounds connect, request and answer together */
    /* NULL: plain HTTP. Else TLS, with a connection made from this client
     * context (tls_client_ctx_new()); the exchange holds its own reference. */
    struct ssl_ctx_st *tls_ctx;
    const struct conf_upstream_tls *tls; /* with tls_ctx: the SNI and the name to verify */
};

/* Told once when the exchange ends, always from the loop (never from inside
 * http_client_start()): passed, and a result text (borrowed for the call)
 * such as "ok: status 200", "status 503, expected 200", "connect refused",
 * "timeout after 2000 ms", "status 200, body does not contain \"ok\"" and,
 * over TLS, "certificate verify failed: self-signed certificate", "TLS
 * handshake failed: wrong version number", "timeout after 2000 ms in the TLS
 * handshake". The callback may free the client. */
typedef void (*http_client_done_cb)(bool passed, const char *result, void *arg);

struct http_client;

/* Starts one exchange on base (borrowed; must outlive the client). Returns
 * a new client, or NULL when out of memory (then cb is never called). */
struct http_client *http_client_start(struct event_base *base,
                                      const struct http_client_request *req, http_client_done_cb cb,
                                      void *arg);

/* Stops the exchange if it still runs (cb is not called after) and frees c.
 * NULL is fine; so is a call from inside cb. */
void http_client_free(struct http_client *c);

#endif
