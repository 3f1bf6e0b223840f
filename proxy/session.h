/* session.h - one client connection and the exchanges it carries.
 *
 * A session owns the client connection and, during an exchange, one
 * upstream connection. It parses each request head, picks the pool and the
 * server, relays the bodies both ways without copying them, and returns the
 * upstream connection to the idle pool when the exchange ends cleanly. Every
 * change of state goes through session_set_state(); every close has a reason.
 *
 * The upstream half of each exchange is exchange.c's (exchange.h); the
 * types both halves share are in session-t.h.
 */
#ifndef SY_PROXY_SESSION_H
#define SY_PROXY_SESSION_H

#include <event2/util.h>
#include <sys/socket.h>

#include "proxy/session-t.h" /* enum session_state, for session_set_state() */

struct worker;
struct session;
struct ssl_ctx_st;

/* Takes the accepted socket fd (stolen) and starts reading its first
 * request, after a TLS handshake with tls (borrowed) unless it is NULL.
 * Returns 0, or -1 when the session could not be made (fd closed). */
int session_start(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen,
                  struct ssl_ctx_st *tls);

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

/* ------------------------------------------------------------------------ */
/* For exchange.c: the session's half of the state machine that the upstream
 * side drives. s is always borrowed. Text arguments (reason, detail) are kept
 * in s->error for the access log until the next exchange begins, so they must
 * be static strings. */

/* The one place a session changes state (logged at debug level). */
void session_set_state(struct session *s, enum session_state next);

/* Ends the session at once; reason is logged and, when no error was
 * recorded before, becomes the exchange's error. Safe from inside any of
 * the session's callbacks: the struct itself goes to the reaper. */
void session_close(struct session *s, const char *reason);

/* Drops the upstream connection, sends what is queued for the client, then
 * closes gracefully (state FLUSH, then LINGER). */
void session_flush_and_close(struct session *s);

/* Answers status with detail in the body and closes the connection; when
 * the client already has a response head, just cuts the connection. */
void session_respond_error(struct session *s, int status, const char *detail);

/* The same, with log_detail rather than detail in the log and the access
 * log: for what the client has no business reading (the upstream side's
 * TLS failures, say). */
void session_respond_error_logged(struct session *s, int status, const char *detail,
                                  const char *log_detail);

/* Writes the access-log line of the current exchange, once: later calls
 * for the same exchange do nothing. */
void session_log_exchange(struct session *s);

/* Waits for, or starts on, the next request of a kept-alive connection. */
void session_next_request(struct session *s);

/* Moves request body bytes from the client up (state EXCHANGE); once the
 * body went up whole, the upstream_header deadline starts. */
void session_pump_request(struct session *s);

#endif
