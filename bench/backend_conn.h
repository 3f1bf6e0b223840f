/* backend_conn.h - one client connection of sy-backend: reads requests with
 * the project's HTTP/1.1 parser (keep-alive, pipelining, Content-Length and
 * chunked bodies) and answers them, applying the fault mode.
 *
 * Paths (see bench/README.md for the full reference):
 *   any            200 with the default body
 *   /healthz       health_status, "ok\n"
 *   /__fault       GET shows, POST changes, DELETE restores the fault mode
 *   /__stats       connection and request counters as JSON
 *   /__sink        hashes the request body: {"bytes":N,"sha256":"..."}
 *   /__bytes?n=N   N bytes of the pattern, streamed (&chunked=1: chunked)
 *   /__echo        the request head as received, then the request body
 *   /__close       "bye\n" delimited by closing the connection
 *   /__status/NNN  an answer with that status
 *   Upgrade        101, then every byte received is sent back
 *
 * With --tls-cert every connection speaks TLS, and every answer to a request
 * carries X-TLS-SNI (the server name the client sent, "-" for none) and
 * X-TLS-Resumed (yes|no).
 */
#ifndef SY_BENCH_BACKEND_CONN_H
#define SY_BENCH_BACKEND_CONN_H

#include <event2/util.h>

#include "bench/backend_worker-t.h"

/* Serves a freshly accepted, non-blocking socket fd (stolen: closed on
 * failure too) on w's loop. Returns 0, or -1 when out of memory. */
int backend_conn_accept(struct backend_worker *w, evutil_socket_t fd)
    __attribute__((warn_unused_result));

/* Closes every connection of w and frees the ones kept for reuse. */
void backend_conn_free_all(struct backend_worker *w);

#endif
