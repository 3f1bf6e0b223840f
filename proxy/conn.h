/* conn.h - a buffered non-blocking socket, leaner than a bufferevent.
 *
 * The data plane's connections (client and upstream) need fewer syscalls
 * than libevent's bufferevents make: a bufferevent asks FIONREAD before each
 * read and adds and removes its write event around every write (two
 * epoll_ctl per response). A conn instead
 *   - reads with one recv() into space reserved in the input evbuffer;
 *   - writes speculatively: output added during a callback is written once,
 *     right after the callback (a deferred "flush" of the whole batch), and
 *     the write event is armed only when the socket would block;
 *   - keeps its read event armed (EV_PERSIST) for its whole life, except
 *     while the input is over its high-water mark (backpressure) or after EOF;
 *   - takes its idle timeouts from the worker's common timeouts, so arming
 *     one is O(1).
 *
 * A conn may also carry TLS, as the server (conn_accept_tls) or the client
 * (conn_connect_tls): it then reads with SSL_read and writes with SSL_write
 * on the same socket and events, and its input and output hold plaintext.
 * Plain conns take none of those branches.
 *
 * Everything belongs to one event loop thread. A conn may be freed from
 * inside any of its own callbacks: after calling back, conn code never
 * touches the conn again.
 */
#ifndef SY_PROXY_CONN_H
#define SY_PROXY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>

struct event_base;
struct evbuffer;
struct conn;
struct ssl_ctx_st;     /* OpenSSL's SSL_CTX */
struct ssl_st;         /* OpenSSL's SSL */
struct ssl_session_st; /* OpenSSL's SSL_SESSION */

/* What happened, for the event callback. */
#define CONN_EV_CONNECTED 0x01 /* conn_connect() succeeded */
#define CONN_EV_EOF 0x02       /* the peer closed its sending side */
#define CONN_EV_ERROR 0x04     /* a socket error: errno holds it */
#define CONN_EV_TIMEOUT 0x08   /* an idle timeout ran out */
#define CONN_EV_READING 0x10   /* ... while reading */
#define CONN_EV_WRITING 0x20   /* ... while writing (or connecting) */

/* New input arrived (it is in conn_input()). */
typedef void (*conn_read_cb)(struct conn *c, void *arg);
/* The output drained to the low-water mark (0 unless set) after a write. */
typedef void (*conn_write_cb)(struct conn *c, void *arg);
/* A CONN_EV_* combination. */
typedef void (*conn_event_cb)(struct conn *c, short what, void *arg);

/* Wraps the connected non-blocking socket fd (stolen: closed by conn_free).
 * Reading starts at once. Returns the new conn or NULL (fd not closed). */
struct conn *conn_new(struct event_base *base, int fd);

/* Starts a non-blocking connect to sa. Returns a new conn whose event
 * callback will get CONN_EV_CONNECTED, or an error (CONN_EV_ERROR |
 * CONN_EV_WRITING, or a timeout), or NULL when not even the socket could be
 * made (errno set). */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t len);

/* Closes the socket and frees everything; NULL is fine. Pending output is
 * dropped. */
void conn_free(struct conn *c);

/* Makes c, just made by conn_new() and with no output yet, the server side
 * of a TLS connection with ctx (c's SSL holds a reference to it: c may
 * outlive the caller's, as across a reload). The handshake
 * runs from c's events; the read callback gets the first plaintext. A
 * handshake that fails is a CONN_EV_ERROR with errno EPROTO (or the socket's
 * error); the caller's own timers bound its duration. Returns 0, or -1 with
 * c unchanged (no memory). */
int conn_accept_tls(struct conn *c, struct ssl_ctx_st *ctx) __attribute__((warn_unused_result));

/* Makes c, just returned by conn_connect() and with no output yet, the
 * client side of a TLS connection over ssl (stolen, even on failure), which
 * the caller readied: SNI, what to verify, a session to resume. Once the TCP
 * connect is done the handshake runs from c's events, and CONN_EV_CONNECTED
 * comes only after it succeeded. A failed handshake (a failed verification
 * too) is a failed connect: CONN_EV_ERROR | CONN_EV_WRITING, errno EPROTO
 * (or the socket's error), and conn_tls_failure() says why. The write
 * timeout, which bounds the connect, bounds each wait of the handshake as
 * well (CONN_EV_TIMEOUT | CONN_EV_WRITING). Returns 0, or -1 (no memory). */
int conn_connect_tls(struct conn *c, struct ssl_st *ssl) __attribute__((warn_unused_result));

bool conn_is_tls(const struct conn *c);

/* Why the client handshake of c failed, for logs ("certificate verify
 * failed: self-signed certificate"); NULL when it did not fail (or no
 * memory was left to say why). Borrowed: valid as long as c. */
const char *conn_tls_failure(const struct conn *c);

/* The TLS session of c that a later connection to the same server may
 * resume (borrowed: SSL_SESSION_up_ref() to keep it), or NULL: plain, the
 * handshake not done or failed, or nothing resumable (yet). */
struct ssl_session_st *conn_tls_session(const struct conn *c);

void conn_set_callbacks(struct conn *c, conn_read_cb rd, conn_write_cb wr, conn_event_cb ev,
                        void *arg);

/* Input is not read while it holds high bytes or more (0 = no limit);
 * reading resumes by itself once the consumer drained it below that. */
void conn_set_read_high(struct conn *c, size_t high);
/* The write callback runs when a write leaves at most low bytes queued. */
void conn_set_write_low(struct conn *c, size_t low);

/* Idle timeouts: no byte read for *rd (while reading is on), no byte written
 * for *wr (while output is queued). NULL turns one off. The timevals should
 * come from event_base_init_common_timeout() for O(1) arming; they are
 * borrowed and must outlive the conn. */
void conn_set_timeouts(struct conn *c, const struct timeval *rd, const struct timeval *wr);

/* Turns reading on or off (input already buffered stays). */
void conn_read_enable(struct conn *c, bool on);

struct evbuffer *conn_input(struct conn *c);
/* Add to it freely during a callback: everything added is written in one go
 * right after. */
struct evbuffer *conn_output(struct conn *c);

/* Writes the output now, as far as the socket takes it. */
void conn_flush(struct conn *c);

/* Shuts down the sending side once the output has been written (for a
 * graceful close: our FIN goes after our last byte). */
void conn_shutdown_write(struct conn *c);

/* Shuts down the sending side now, whatever output is queued (TLS: after
 * close_notify). Returns 0, or -1 with errno as shutdown(2) sets it. */
int conn_shutdown_write_now(struct conn *c);

int conn_fd(const struct conn *c);

#endif
