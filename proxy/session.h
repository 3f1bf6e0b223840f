/* session.h - one client connection and the exchanges it carries.
 *
 * A session owns the client connection and, during an exchange, one
 * upstream connection. It parses each request head, picks the pool and the
 * server, relays the bodies both ways without copying them, and returns the
 * upstream connection to the idle pool when the exchange ends cleanly. Every
 * change of state goes through session_set_state(); every close has a reason.
 */
#ifndef SY_PROXY_SESSION_H
#define SY_PROXY_SESSION_H

#include <event2/util.h>
#include <sys/socket.h>

struct worker;
struct session;

/* Takes the accepted socket fd (stolen) and starts reading its first
 * request. Returns 0, or -1 when the session could not be made (fd closed). */
int session_start(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen);

/* The worker drains: idle sessions close now, busy ones after their current
 * exchange. */
void session_drain_all(struct worker *w);

/* Closes every session now (the drain time is over). */
void session_close_all(struct worker *w);

/* Frees the sessions closed since the last call. Runs from the worker's
 * reap event, outside every session callback. */
void session_reap(struct worker *w);

/* Frees the worker's cache of recycled session structs. */
void session_cache_clear(struct worker *w);

#endif
