/* socket.h - the control socket: operators' commands, one JSON object per line.
 *
 * A Unix stream socket at admin.socket, served on the main thread's event
 * base. Each peer is checked against admin.allow_uids and admin.allow_gids
 * (SO_PEERCRED), then sends requests such as {"cmd":"weight","percent":25}
 * and gets one reply line each (the protocol itself is control/protocol.c);
 * {"cmd":"events","follow":true} turns a client into a follower that receives every later state
 * change as {"event":...} lines. With Redis configured, {"cmd":"events"}
 * answers from the fleet's stream (<ns>:events) once Redis replies, and
 * that client's next requests wait for it; "local":true, and a follower,
 * read this instance's own ring. A client that lets more than CTLSOCK_OUTPUT_MAX bytes of replies
 * pile up is dropped: the control thread never waits for anyone.
 */
#ifndef SY_CONTROL_SOCKET_H
#define SY_CONTROL_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "conf/config.h"
#include "control/service.h"

#define CTLSOCK_LINE_MAX 65536           /* bytes of a request line, newline excluded */
#define CTLSOCK_OUTPUT_MAX (1024 * 1024) /* unsent bytes before a client is dropped */
#define CTLSOCK_CLIENTS_MAX 64           /* clients at once; more get "busy" */
#define CTLSOCK_IDLE_S 60                /* a silent (or non-reading) client is closed */
#define CTLSOCK_ACCEPT_PAUSE_MS 100      /* after EMFILE and the like */
#define CTLSOCK_FLEET_EVENTS_MS 1000     /* events waits this long for the fleet's stream */

struct ctlsock;

struct status_sources;

/* Starts listening on admin.socket of the running config (must be set). A
 * stale socket file (nothing answers on it) is replaced; a live one, or a
 * path that is not a socket, is refused. base and status (the service, the
 * running config through its reloader, which `reload` uses, and what
 * `status` reports) are borrowed and must outlive the server. Returns a new
 * server, or NULL with the reason logged. Registers itself as the service's
 * event listener. */
struct ctlsock *ctlsock_new(struct event_base *base, const struct status_sources *status);

/* Closes every client and the listener, removes the socket file (only when
 * it is still the one this server bound) and the event listener. Accepts
 * NULL. */
void ctlsock_free(struct ctlsock *cs);

#endif
