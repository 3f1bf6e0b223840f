/* exchange.h - the upstream side of a session's exchange.
 *
 * session.c hands a routed request over with exchange_start(); from there
 * exchange.c owns the upstream connection: it connects (another server of
 * the pool on failure, the stable pool once when the candidate is
 * unreachable), sends the request, replays it once when that is safe,
 * relays the response and, after a 101, the tunnel. The session passed in
 * is always borrowed, and any of these calls may end it (its state is then
 * SESSION_FLUSH or SESSION_CLOSED): a caller must not assume its state
 * afterwards.
 */
#ifndef SY_PROXY_EXCHANGE_H
#define SY_PROXY_EXCHANGE_H

struct session;

/* Sends the request whose head waits in s->req_head to a server of s->pool:
 * at once on an idle connection (state EXCHANGE), or after a new connection
 * is made (state CONNECT). With no server left to try, answers 502 (503
 * when none was in rotation). */
void exchange_start(struct session *s);

/* The connection attempt of s (state CONNECT) failed, for the reason why
 * (borrowed, only logged): marks the server tried and goes on with the next
 * one, as exchange_start() does. */
void exchange_connect_failed(struct session *s, const char *why);

/* No response head within timeouts_ms.upstream_header (state EXCHANGE):
 * counts a timeout against the server and answers 504. */
void exchange_timed_out(struct session *s);

/* Relays what the upstream sent: response heads, then the body. Finishes
 * the exchange when the body went down whole. For state EXCHANGE. */
void exchange_pump_response(struct session *s);

/* Relays tunnel bytes both ways, passes each side's FIN on, and closes the
 * session once both directions are done. For state TUNNEL. */
void exchange_tunnel_pump(struct session *s);

#endif
