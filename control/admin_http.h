/* admin_http.h - the admin HTTP listener (admin.http): GET /metrics (the
 * Prometheus text, control/metrics.h) and GET /api/status (the object
 * `switchyardctl --json status` prints, control/status.h).
 *
 * libevent's evhttp on the control thread's event base. It is read-only and
 * small by design: GET and HEAD only (anything else is 405), no request
 * body, short heads, and a connection idle for ADMIN_HTTP_TIMEOUT_S is
 * closed. It has no access control of its own: bind it to loopback or a
 * private address.
 */
#ifndef SY_CONTROL_ADMIN_HTTP_H
#define SY_CONTROL_ADMIN_HTTP_H

#include <event2/event.h>

#include "conf/addr.h"

#define ADMIN_HTTP_MAX_HEADERS 8192 /* bytes of a request's head */
#define ADMIN_HTTP_MAX_BODY 1024    /* bytes of a request's body: these endpoints take none */
#define ADMIN_HTTP_TIMEOUT_S 10     /* read and write timeout of a connection */
#define ADMIN_HTTP_BACKLOG 64

struct admin_http;
struct status_sources;

/* Listens on addr (borrowed for the call) and serves on base. base and
 * status are borrowed and must outlive the listener. Returns a new
 * listener, or NULL with the reason logged (address in use, no memory). */
struct admin_http *admin_http_new(struct event_base *base, const struct conf_addr *addr,
                                  const struct status_sources *status);

/* Closes the listener and every connection; NULL is fine. */
void admin_http_free(struct admin_http *ah);

#endif
