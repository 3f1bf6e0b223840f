/* upstream.h - one worker's view of a pool: its servers, smooth weighted
 * round-robin among them, and each server's idle keep-alive connections.
 *
 * Everything here belongs to one worker thread: no locks. The connections of
 * one server are reused LIFO, so the warmest one goes out first and the
 * coldest ones time out.
 */
#ifndef SY_PROXY_UPSTREAM_H
#define SY_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

struct event_base;
struct conn;
struct timeval;
struct upstream_pool;
struct upstream_server;
struct upstream_conn;
struct snapshot;

/* An idle connection that nobody has used for this long is closed. Shorter
 * than the keep-alive timeouts of common servers (nginx 75 s, Apache 5 s is the
 * exception), so that we close first and seldom meet a half-closed socket. */
#define UPSTREAM_IDLE_TIMEOUT_MS 10000
/* At most this many idle connections per server and worker. */
#define UPSTREAM_IDLE_MAX 256

/* Returns a new pool (one reference, the worker's) for the servers of pool
 * colour in snap, which it references, run by worker number `worker`.
 * idle_tv (borrowed) bounds how long a connection stays idle. */
struct upstream_pool *upstream_pool_new(struct event_base *base, struct snapshot *snap,
                                        enum conf_colour colour, unsigned worker,
                                        const struct timeval *idle_tv);

/* A pool lives as long as anything uses it: the worker while it is current,
 * each session routed to it, each of its connections. */
void upstream_pool_ref(struct upstream_pool *pool);
void upstream_pool_unref(struct upstream_pool *pool); /* NULL is fine */

/* Drops the worker's reference to a pool that a reload replaced (NULL is
 * fine): its idle connections move to the server of the same name and
 * address in successor (may be NULL), or close (TLS pools: unless the pool
 * keeps its settings and CA file contents); connections in use finish
 * their exchange and close; the pool goes with the last of them. */
void upstream_pool_retire(struct upstream_pool *pool, struct upstream_pool *successor);

enum conf_colour upstream_pool_colour(const struct upstream_pool *pool);

/* Picks a server by smooth weighted round-robin, skipping those an operator
 * took out of rotation or the health checks marked down, and those whose index bit is set in
 * exclude (servers already tried for this request). Returns the server (borrowed) or NULL when none
 * is left. */
struct upstream_server *upstream_pool_pick(struct upstream_pool *pool, uint64_t exclude);

/* The bit of a server in an exclude mask. Pools have at most 64 servers. */
uint64_t upstream_server_bit(const struct upstream_server *srv);
const struct conf_server *upstream_server_conf(const struct upstream_server *srv);
enum conf_colour upstream_server_colour(const struct upstream_server *srv);
/* The state the server shares with the other workers (borrowed). */
struct server_state *upstream_server_state(const struct upstream_server *srv);

/* Returns an idle connection to srv, ready for a new request, or NULL when
 * there is none. The caller owns it (new) and sets the callbacks. */
struct upstream_conn *upstream_conn_take_idle(struct upstream_server *srv);

/* Starts a new connection to srv. Returns it (new) with the connect under
 * way, or NULL when even the socket could not be made (errno set). Completion
 * is reported to the socket's event callback as CONN_EV_CONNECTED or an error.
 * In a pool with tls, the TLS handshake is part of the connect (see
 * conn_connect_tls; conn_tls_failure says why it failed), and it offers the
 * session of the server's last connection for resumption. */
struct upstream_conn *upstream_conn_connect(struct upstream_server *srv);

/* Gives a connection whose last exchange ended cleanly back to its server's
 * idle list (stolen); it is closed instead when the server is out of
 * rotation or its pool retired. */
void upstream_conn_release(struct upstream_conn *conn);

/* Closes and frees a connection; NULL is fine. */
void upstream_conn_free(struct upstream_conn *conn);

/* The connection's socket (borrowed: owned by conn). */
struct conn *upstream_conn_socket(const struct upstream_conn *conn);
struct upstream_server *upstream_conn_server(const struct upstream_conn *conn);
/* True when the connection has carried an exchange before this one. */
bool upstream_conn_reused(const struct upstream_conn *conn);

#endif
