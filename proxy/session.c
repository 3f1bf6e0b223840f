/* session.c - one client connection: its life cycle and its client side.
 *
 *   HEAD ------> CONNECT ------> EXCHANGE ------> HEAD (keep-alive)
 *     |   (idle conn: straight      |   \
 *     |    to EXCHANGE)             |    +------> TUNNEL (after 101)
 *     +-----------------------------+-----------> FLUSH -> LINGER -> CLOSED
 *
 * This file reads request heads, routes them, relays request bodies up,
 * answers errors, and closes (flush, linger, reap). The upstream side
 * (CONNECT, the response, the TUNNEL) is exchange.c's.
 *
 * Bodies move with relay_body_move() between the two conns.
 * Backpressure needs no enabling or disabling of events: a body is moved
 * only while the destination holds less than RELAY_OUT_HIGH, and the
 * source's read high-water mark makes libevent stop reading once its input
 * is full. The destination's write callback (low-water mark RELAY_OUT_LOW)
 * moves more when it has drained.
 */
#include "proxy/session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "conf/log.h"
#include "proxy/accesslog.h"
#include "proxy/conn.h"
#include "proxy/exchange.h"
#include "proxy/forward.h"
#include "proxy/relay.h"
#include "proxy/route.h"
#include "proxy/session-t.h"
#include "proxy/upstream.h"
#include "proxy/worker-t.h"

#define SESSION_FREE_MAX 1024 /* recycled session structs kept per worker */

static const char *const state_names[] = {"head",  "connect", "exchange", "tunnel",
                                          "flush", "linger",  "closed"};

static void client_read_cb(struct conn *c, void *arg);
static void client_write_cb(struct conn *c, void *arg);
static void client_event_cb(struct conn *c, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void on_request_head(struct session *s);

void session_set_state(struct session *s, enum session_state next)
{
    log_debug("session %p: %s -> %s", (void *)s, state_names[s->state], state_names[next]);
    s->state = next;
}

static const char *server_name(struct session *s)
{
    return s->up ? upstream_server_conf(upstream_conn_server(s->up))->name : NULL;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

void session_log_exchange(struct session *s)
{
    if (!(s->flags & SESSION_FL_REQ_LIVE))
        return;
    s->flags &= ~SESSION_FL_REQ_LIVE;
    if (s->w->alog == NULL)
        return;
    struct accesslog_entry e = {
        .client = s->peer_ip,
        .method = s->log_method,
        .target = s->log_target,
        .status = s->status,
        .pool = s->pool ? conf_colour_name(upstream_pool_colour(s->pool)) : NULL,
        .server = server_name(s),
        .req_body_bytes = s->req.bytes,
        .resp_body_bytes = s->resp.bytes,
        .upstream_ms = s->upstream_ms,
        .total_ms = ms_since(&s->t_start),
        .error = s->error,
    };
    accesslog_write(s->w->alog, &e);
}

/* Ends the session. Safe from inside any of its callbacks: the conns go now
 * (they never touch themselves after calling back), the struct goes to the
 * reaper. */
void session_close(struct session *s, const char *reason)
{
    struct worker *w = s->w;

    if (s->state == SESSION_CLOSED)
        return;
    log_debug("session %p (%s): close in %s: %s", (void *)s, s->peer_ip, state_names[s->state],
              reason);
    if (s->error == NULL)
        s->error = reason;
    session_log_exchange(s);
    session_set_state(s, SESSION_CLOSED);
    evtimer_del(&s->timer);
    drop_upstream(s);
    session_route_to(s, NULL);
    conn_free(s->client);
    s->client = NULL;
    TAILQ_REMOVE(&w->sessions, s, link);
    TAILQ_INSERT_TAIL(&w->reap, s, link);
    event_active(w->reap_ev, EV_TIMEOUT, 0);
}

/* Sends what is queued for the client, then closes gracefully. */
void session_flush_and_close(struct session *s)
{
    drop_upstream(s);
    evtimer_del(&s->timer);
    session_set_state(s, SESSION_FLUSH);
    conn_read_enable(s->client, false);
    if (evbuffer_get_length(client_out(s)) == 0)
        client_write_cb(s->client, s);
}

/* A generated answer (400, 502, ...) ends the connection: after an error we
 * cannot be sure where the next request would start. */
void session_respond_error(struct session *s, int status, const char *detail)
{
    session_respond_error_logged(s, status, detail, detail);
}

void session_respond_error_logged(struct session *s, int status, const char *detail,
                                  const char *log_detail)
{
    if (s->flags & SESSION_FL_RESP_HEAD) {
        /* The client already has a head: all we can do is cut it off. */
        session_close(s, log_detail);
        return;
    }
    log_debug("session %p (%s): %d: %s", (void *)s, s->peer_ip, status, log_detail);
    if (!(s->flags & SESSION_FL_REQ_LIVE)) {
        /* Refused before a request began (bad head, head timeout): it is
         * still an exchange for the access log. */
        s->flags |= SESSION_FL_REQ_LIVE;
        session_route_to(s, NULL);
        s->upstream_ms = -1;
        relay_body_init(&s->req, HTTP1_BODY_NONE, 0);
        relay_body_init(&s->resp, HTTP1_BODY_NONE, 0);
        clock_gettime(CLOCK_MONOTONIC, &s->t_start);
        memcpy(s->log_method, "-", 2);
        memcpy(s->log_target, "-", 2);
    }
    s->status = status;
    s->error = log_detail;
    s->flags |= SESSION_FL_RESP_HEAD;
    if (forward_error_response(client_out(s), status, detail) < 0) {
        session_close(s, "out of memory");
        return;
    }
    session_log_exchange(s);
    session_flush_and_close(s);
}

static struct session *session_alloc(struct worker *w)
{
    struct session *s = w->free_list;

    if (s != NULL) {
        w->free_list = s->next_free;
        w->nfree--;
        struct evbuffer *keep = s->req_head;
        memset(s, 0, sizeof(*s));
        s->req_head = keep;
        return s;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->req_head = evbuffer_new();
    if (s->req_head == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

static void session_release(struct worker *w, struct session *s)
{
    if (w->nfree >= SESSION_FREE_MAX) {
        evbuffer_free(s->req_head);
        free(s);
        return;
    }
    evbuffer_drain(s->req_head, evbuffer_get_length(s->req_head));
    s->next_free = w->free_list;
    w->free_list = s;
    w->nfree++;
}

static void peer_text(struct session *s)
{
    const void *addr = NULL;

    if (s->peer.ss_family == AF_INET)
        addr = &((struct sockaddr_in *)&s->peer)->sin_addr;
    else if (s->peer.ss_family == AF_INET6)
        addr = &((struct sockaddr_in6 *)&s->peer)->sin6_addr;
    if (addr == NULL || inet_ntop(s->peer.ss_family, addr, s->peer_ip, sizeof(s->peer_ip)) == NULL)
        memcpy(s->peer_ip, "unknown", 8);
}

int session_start(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen,
                  struct ssl_ctx_st *tls)
{
    struct session *s = session_alloc(w);

    if (s == NULL) {
        evutil_closesocket(fd);
        return -1;
    }
    s->w = w;
    s->client = conn_new(w->base, fd);
    if (s->client == NULL || (tls != NULL && conn_accept_tls(s->client, tls) < 0)) {
        if (s->client != NULL)
            conn_free(s->client); /* closes fd */
        else
            evutil_closesocket(fd);
        s->client = NULL;
        session_release(w, s);
        return -1;
    }
    if ((size_t)salen <= sizeof(s->peer))
        memcpy(&s->peer, sa, (size_t)salen);
    peer_text(s);
    event_assign(&s->timer, w->base, -1, 0, timer_cb, s);
    conn_set_callbacks(s->client, client_read_cb, client_write_cb, client_event_cb, s);
    setup_conn(w, s->client);
    TAILQ_INSERT_TAIL(&w->sessions, s, link);
    w->nsessions++;
    session_set_state(s, SESSION_HEAD);
    /* The first request must come within the header timeout. */
    s->flags |= SESSION_FL_HEAD_TIMER;
    timer_arm(s, w->tv.client_header);
    return 0;
}

void session_reap(struct worker *w)
{
    struct session *s;

    while ((s = TAILQ_FIRST(&w->reap)) != NULL) {
        TAILQ_REMOVE(&w->reap, s, link);
        w->nsessions--;
        atomic_fetch_sub_explicit(&w->shared->nconns, 1, memory_order_relaxed);
        session_release(w, s);
    }
}

void session_cache_clear(struct worker *w)
{
    w->nfree = 0; /* session_release frees once the cache is "full" */
    struct session *s = w->free_list;
    while (s != NULL) {
        struct session *next = s->next_free;
        evbuffer_free(s->req_head);
        free(s);
        s = next;
    }
    w->free_list = NULL;
}

void session_drain_all(struct worker *w)
{
    struct session *s, *next;

    for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->state == SESSION_HEAD && evbuffer_get_length(client_in(s)) == 0)
            session_flush_and_close(s); /* the last answer may still be going out */
        else
            s->flags |= SESSION_FL_CLIENT_CLOSE;
    }
}

void session_close_all(struct worker *w)
{
    struct session *s;

    while ((s = TAILQ_FIRST(&w->sessions)) != NULL)
        session_close(s, "drain timeout: connection cut");
}

/* ------------------------------------------------------------------------ */
/* Request side                                                              */

struct req_ctx {
    struct worker *w;
    struct http1_request *req;
};

static int parse_req(const char *buf, size_t len, void *arg)
{
    struct req_ctx *c = arg;
    const struct conf_limits *lim = &c->w->cfg->limits;

    return http1_parse_request(buf, len, lim->max_header_bytes, c->w->hdrs, lim->max_headers,
                               c->req);
}

static void copy_text(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void begin_exchange(struct session *s, const struct http1_request *req)
{
    s->flags &= SESSION_FL_CONNECTION;
    s->flags |= SESSION_FL_REQ_LIVE;
    s->method = req->method_id;
    s->client_minor = req->minor_version;
    s->tried = 0;
    s->status = 0;
    s->error = NULL;
    s->upstream_ms = -1;
    relay_body_init(&s->req, req->body, req->content_length);
    relay_body_init(&s->resp, HTTP1_BODY_NONE, 0);
    clock_gettime(CLOCK_MONOTONIC, &s->t_start);
    if (s->w->alog != NULL) {
        copy_text(s->log_method, sizeof(s->log_method), req->method, req->method_len);
        copy_text(s->log_target, sizeof(s->log_target), req->target, req->target_len);
    }
    if (req->flags & HTTP1_F_CLOSE)
        s->flags |= SESSION_FL_CLIENT_CLOSE;
    if (req->flags & HTTP1_F_UPGRADE)
        s->flags |= SESSION_FL_UPGRADE;
    if (req->body == HTTP1_BODY_NONE)
        s->flags |= SESSION_FL_REQ_DONE;
}

static void on_request_head(struct session *s)
{
    struct http1_request req;
    struct req_ctx ctx = {s->w, &req};
    const char *head;
    size_t max = s->w->cfg->limits.max_header_bytes;

    /* A client that pipelines without reading gets its next answer only once
     * the previous ones have drained: its input then fills and we stop
     * reading it. */
    if (evbuffer_get_length(client_in(s)) == 0 ||
        evbuffer_get_length(client_out(s)) >= RELAY_OUT_HIGH)
        return;
    if (!(s->flags & SESSION_FL_HEAD_TIMER)) {
        /* First byte of a kept-alive request: the idle wait becomes the
         * head deadline, so a trickled head cannot hold us forever. */
        s->flags |= SESSION_FL_HEAD_TIMER;
        timer_arm(s, s->w->tv.client_header);
    }
    int r = relay_head_parse(client_in(s), max, &head, parse_req, &ctx);
    if (r == HTTP1_INCOMPLETE)
        return;
    evtimer_del(&s->timer);
    s->flags &= ~SESSION_FL_HEAD_TIMER;
    if (r == HTTP1_TOO_LARGE) {
        session_respond_error(s, 431, "request head too large");
        return;
    }
    if (r < 0) {
        session_respond_error(s, 400, "malformed request");
        return;
    }
    if (req.method_id == HTTP1_M_CONNECT) {
        session_respond_error(s, 405, "CONNECT is not supported");
        return;
    }
    begin_exchange(s, &req);
    enum conf_colour colour = route_pick(&s->w->cfg->routing, s->w->shared->split, &req,
                                         (struct sockaddr *)&s->peer, &s->w->rng, &s->sticky);
    session_route_to(s, s->w->pools[colour]);
    struct forward_request_opts fo = {s->peer_ip, conn_is_tls(s->client) ? "https" : "http",
                                      (s->flags & SESSION_FL_UPGRADE) != 0};
    if (forward_request_head(s->req_head, &req, &fo) < 0) {
        session_close(s, "out of memory");
        return;
    }
    evbuffer_drain(client_in(s), (size_t)r);
    exchange_start(s);
}

/* The whole request went up: the client may now be silent until the answer
 * comes, and the upstream_header deadline starts (not before: a long upload
 * is not a slow server). */
static void request_complete(struct session *s)
{
    s->flags |= SESSION_FL_REQ_DONE;
    conn_set_timeouts(s->client, NULL, s->w->tv.body_idle);
    if (!(s->flags & SESSION_FL_RESP_HEAD))
        timer_arm(s, s->w->tv.upstream_header);
}

/* Moves request body bytes up. */
void session_pump_request(struct session *s)
{
    if ((s->flags & SESSION_FL_REQ_DONE) || s->up == NULL || s->state != SESSION_EXCHANGE)
        return;
    int r = relay_body_move(client_in(s), up_out(s), &s->req);
    if (r < 0) {
        session_respond_error(s, 400, "malformed chunked request body");
        return;
    }
    if (r == 1)
        request_complete(s);
}

/* Waits for, or starts on, the next request of a kept-alive connection. */
void session_next_request(struct session *s)
{
    /* A reload may have raised limits.max_header_bytes since the last one. */
    conn_set_read_high(s->client, worker_read_high(s->w));
    /* The last answer is whole: a refusal of the next head (400, 408) is a
     * fresh answer, not a response cut short. */
    s->flags &= ~SESSION_FL_RESP_HEAD;
    session_set_state(s, SESSION_HEAD);
    on_request_head(s); /* pipelined already? */
    if (s->state != SESSION_HEAD)
        return;
    if ((s->flags & SESSION_FL_CLIENT_EOF) && evbuffer_get_length(client_out(s)) < RELAY_OUT_HIGH) {
        /* The client said all it had to say and no complete request is left. */
        session_flush_and_close(s);
        return;
    }
    if (!(s->flags & SESSION_FL_HEAD_TIMER))
        timer_arm(s, s->w->tv.client_idle);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */

static void client_read_cb(struct conn *c, void *arg)
{
    struct session *s = arg;

    switch (s->state) {
    case SESSION_HEAD:
        on_request_head(s);
        break;
    case SESSION_EXCHANGE:
        session_pump_request(s);
        break;
    case SESSION_TUNNEL:
        exchange_tunnel_pump(s);
        break;
    case SESSION_LINGER:
        evbuffer_drain(client_in(s), evbuffer_get_length(client_in(s)));
        break;
    case SESSION_CONNECT: /* the body waits until the server is connected */
    case SESSION_FLUSH:
    case SESSION_CLOSED:
        break;
    }
}

static void start_linger(struct session *s)
{
    /* Closing with unread input would reset the connection and could destroy
     * the answer we just sent before the client reads it. So: FIN first,
     * then read and drop for a while. */
    if ((s->flags & SESSION_FL_CLIENT_EOF) || conn_shutdown_write_now(s->client) < 0) {
        session_close(s, "closed");
        return;
    }
    session_set_state(s, SESSION_LINGER);
    evbuffer_drain(client_in(s), evbuffer_get_length(client_in(s)));
    conn_set_read_high(s->client, 0);
    conn_set_timeouts(s->client, NULL, NULL);
    conn_read_enable(s->client, true);
    timer_arm(s, s->w->tv.linger);
}

static void client_write_cb(struct conn *c, void *arg)
{
    struct session *s = arg;

    switch (s->state) {
    case SESSION_HEAD:
        /* Pipelined requests wait for the answers before them to drain. */
        if (evbuffer_get_length(client_in(s)) > 0 || (s->flags & SESSION_FL_CLIENT_EOF))
            session_next_request(s);
        break;
    case SESSION_EXCHANGE:
        exchange_pump_response(s);
        break;
    case SESSION_TUNNEL:
        exchange_tunnel_pump(s);
        break;
    case SESSION_FLUSH:
        if (evbuffer_get_length(client_out(s)) == 0)
            start_linger(s);
        break;
    default:
        break;
    }
}

/* The client closed its sending side. What it sent before still counts:
 * complete requests are answered (pipelined ones too), a tunnel carries on
 * in the other direction. */
static void client_eof(struct session *s)
{
    s->flags |= SESSION_FL_CLIENT_EOF;
    switch (s->state) {
    case SESSION_HEAD:
        session_next_request(s);
        break;
    case SESSION_CONNECT:
    case SESSION_EXCHANGE:
        if (!(s->flags & SESSION_FL_REQ_DONE))
            session_close(s, "client closed in the middle of its request");
        break;
    case SESSION_TUNNEL:
        exchange_tunnel_pump(s);
        break;
    case SESSION_LINGER:
        session_close(s, "closed");
        break;
    case SESSION_FLUSH:
    case SESSION_CLOSED:
        break;
    }
}

static void client_event_cb(struct conn *c, short what, void *arg)
{
    struct session *s = arg;

    if (what & CONN_EV_TIMEOUT) {
        if (s->state == SESSION_EXCHANGE && !(s->flags & SESSION_FL_REQ_DONE) &&
            (what & CONN_EV_READING))
            session_respond_error(s, 408, "client stopped sending the request body");
        else
            session_close(s, (what & CONN_EV_READING) ? "client idle" : "client stopped reading");
    } else if (what & CONN_EV_ERROR) {
        session_close(s, "client connection error");
    } else if (what & CONN_EV_EOF) {
        client_eof(s);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    switch (s->state) {
    case SESSION_HEAD:
        if (evbuffer_get_length(client_in(s)) == 0)
            session_close(s, "client idle");
        else
            session_respond_error(s, 408, "request head not received in time");
        break;
    case SESSION_CONNECT:
        exchange_connect_failed(s, "connect timed out");
        break;
    case SESSION_EXCHANGE:
        exchange_timed_out(s);
        break;
    case SESSION_LINGER:
        session_close(s, "closed");
        break;
    case SESSION_TUNNEL:
    case SESSION_FLUSH:
    case SESSION_CLOSED:
        break;
    }
}
