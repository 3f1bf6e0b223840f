/* session.c - the exchange state machine of one client connection.
 *
 *   HEAD ------> CONNECT ------> EXCHANGE ------> HEAD (keep-alive)
 *     |   (idle conn: straight      |   \
 *     |    to EXCHANGE)             |    +------> TUNNEL (after 101)
 *     +-----------------------------+-----------> FLUSH -> LINGER -> CLOSED
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
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "conf/log.h"
#include "proxy/accesslog.h"
#include "proxy/conn.h"
#include "proxy/forward.h"
#include "proxy/relay.h"
#include "proxy/upstream.h"
#include "proxy/worker-t.h"

#define SESSION_FREE_MAX 1024 /* recycled session structs kept per worker */

enum session_state {
    SESSION_HEAD,     /* waiting for a request head */
    SESSION_CONNECT,  /* a new upstream connection is being made */
    SESSION_EXCHANGE, /* request going up, response coming down */
    SESSION_TUNNEL,   /* after 101: raw bytes both ways */
    SESSION_FLUSH,    /* last bytes going to the client, then close */
    SESSION_LINGER,   /* our side shut: drop what the client still sends */
    SESSION_CLOSED,   /* waiting for the reaper */
};

static const char *const state_names[] = {"head",  "connect", "exchange", "tunnel",
                                          "flush", "linger",  "closed"};

#define SESSION_FL_HEAD_TIMER 0x001   /* the request-head deadline is armed */
#define SESSION_FL_CLIENT_CLOSE 0x002 /* close the client after this exchange */
#define SESSION_FL_REQ_DONE 0x004     /* the request body went up whole */
#define SESSION_FL_RESP_HEAD 0x008    /* the final response head went down */
#define SESSION_FL_RESP_DONE 0x010    /* the response body went down whole */
#define SESSION_FL_UPGRADE 0x020      /* the client asked to switch protocols */
#define SESSION_FL_REPLAYED 0x040     /* the request was sent again on a new connection */
#define SESSION_FL_UP_BYTES 0x080     /* the upstream sent something for this request */
#define SESSION_FL_REQ_LIVE 0x100     /* a request is being handled (for the log) */
#define SESSION_FL_UP_CLOSE 0x200     /* the upstream connection must not be reused */
#define SESSION_FL_UP_EOF 0x400       /* the upstream closed its side; its input still counts */
#define SESSION_FL_CLIENT_EOF 0x800   /* the client closed its side; its input still counts */
#define SESSION_FL_UP_SHUT 0x1000     /* tunnel: our FIN went to the upstream */
#define SESSION_FL_CLIENT_SHUT 0x2000 /* tunnel: our FIN went to the client */
#define SESSION_FL_FALLBACK 0x4000    /* the candidate was unreachable: sent to stable */

/* Flags that outlive one exchange on a kept-alive connection. */
#define SESSION_FL_CONNECTION (SESSION_FL_CLIENT_CLOSE | SESSION_FL_CLIENT_EOF)

struct session {
    TAILQ_ENTRY(session) link; /* on worker->sessions, or worker->reap */
    struct worker *w;
    struct conn *client;
    struct upstream_conn *up; /* during CONNECT, EXCHANGE and TUNNEL */
    struct upstream_pool *pool;
    enum session_state state;
    unsigned flags;
    struct event timer; /* head, connect and upstream-header deadlines */
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];
    enum http1_method method;
    int client_minor;
    uint64_t tried;            /* servers of pool that failed this request */
    struct evbuffer *req_head; /* kept until the upstream answers: a replay needs it */
    struct relay_body req, resp;
    int status;
    struct timespec t_start, t_sent;
    double upstream_ms;
    const char *error;
    char log_method[16];
    char log_target[256];
    struct session *next_free;
};

static void client_read_cb(struct conn *c, void *arg);
static void client_write_cb(struct conn *c, void *arg);
static void client_event_cb(struct conn *c, short what, void *arg);
static void up_read_cb(struct conn *c, void *arg);
static void up_write_cb(struct conn *c, void *arg);
static void up_event_cb(struct conn *c, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void on_request_head(struct session *s);
static void connect_upstream(struct session *s);
static void pump_response(struct session *s);
static void next_request(struct session *s);
static void tunnel_pump(struct session *s);

static double ms_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* tv comes from the worker's common timeouts: arming it is O(1). */
static void timer_arm(struct session *s, const struct timeval *tv)
{
    evtimer_add(&s->timer, tv);
}

static void session_set_state(struct session *s, enum session_state next)
{
    log_debug("session %p: %s -> %s", (void *)s, state_names[s->state], state_names[next]);
    s->state = next;
}

static struct evbuffer *client_in(struct session *s)
{
    return conn_input(s->client);
}

static struct evbuffer *client_out(struct session *s)
{
    return conn_output(s->client);
}

static struct evbuffer *up_in(struct session *s)
{
    return conn_input(upstream_conn_socket(s->up));
}

static struct evbuffer *up_out(struct session *s)
{
    return conn_output(upstream_conn_socket(s->up));
}

static const char *server_name(struct session *s)
{
    return s->up ? upstream_server_conf(upstream_conn_server(s->up))->name : NULL;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

static void log_exchange(struct session *s)
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

static void drop_upstream(struct session *s)
{
    upstream_conn_free(s->up);
    s->up = NULL;
}

/* Ends the session. Safe from inside any of its callbacks: the conns go now
 * (they never touch themselves after calling back), the struct goes to the
 * reaper. */
static void session_close(struct session *s, const char *reason)
{
    struct worker *w = s->w;

    if (s->state == SESSION_CLOSED)
        return;
    log_debug("session %p (%s): close in %s: %s", (void *)s, s->peer_ip, state_names[s->state],
              reason);
    if (s->error == NULL)
        s->error = reason;
    log_exchange(s);
    session_set_state(s, SESSION_CLOSED);
    evtimer_del(&s->timer);
    drop_upstream(s);
    conn_free(s->client);
    s->client = NULL;
    TAILQ_REMOVE(&w->sessions, s, link);
    TAILQ_INSERT_TAIL(&w->reap, s, link);
    event_active(w->reap_ev, EV_TIMEOUT, 0);
}

/* Sends what is queued for the client, then closes gracefully. */
static void session_flush_and_close(struct session *s)
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
static void respond_error(struct session *s, int status, const char *detail)
{
    if (s->flags & SESSION_FL_RESP_HEAD) {
        /* The client already has a head: all we can do is cut it off. */
        session_close(s, detail);
        return;
    }
    log_debug("session %p (%s): %d: %s", (void *)s, s->peer_ip, status, detail);
    if (!(s->flags & SESSION_FL_REQ_LIVE)) {
        /* Refused before a request began (bad head, head timeout): it is
         * still an exchange for the access log. */
        s->flags |= SESSION_FL_REQ_LIVE;
        s->pool = NULL;
        s->upstream_ms = -1;
        relay_body_init(&s->req, HTTP1_BODY_NONE, 0);
        relay_body_init(&s->resp, HTTP1_BODY_NONE, 0);
        clock_gettime(CLOCK_MONOTONIC, &s->t_start);
        memcpy(s->log_method, "-", 2);
        memcpy(s->log_target, "-", 2);
    }
    s->status = status;
    s->error = detail;
    s->flags |= SESSION_FL_RESP_HEAD;
    if (forward_error_response(client_out(s), status, detail) < 0) {
        session_close(s, "out of memory");
        return;
    }
    log_exchange(s);
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

static void setup_conn(struct worker *w, struct conn *c)
{
    conn_set_read_high(c, w->in_high);
    conn_set_write_low(c, RELAY_OUT_LOW);
    conn_set_timeouts(c, NULL, w->tv.body_idle);
}

int session_start(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct session *s = session_alloc(w);

    if (s == NULL) {
        evutil_closesocket(fd);
        return -1;
    }
    s->w = w;
    s->client = conn_new(w->base, fd);
    if (s->client == NULL) {
        evutil_closesocket(fd);
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
        respond_error(s, 431, "request head too large");
        return;
    }
    if (r < 0) {
        respond_error(s, 400, "malformed request");
        return;
    }
    if (req.method_id == HTTP1_M_CONNECT) {
        respond_error(s, 405, "CONNECT is not supported");
        return;
    }
    begin_exchange(s, &req);
    s->pool = s->w->pools[route_pick(&s->w->cfg->routing, s->w->shared->split, &req,
                                     (struct sockaddr *)&s->peer, &s->w->rng)];
    struct forward_request_opts fo = {s->peer_ip, "http", (s->flags & SESSION_FL_UPGRADE) != 0};
    if (forward_request_head(s->req_head, &req, &fo) < 0) {
        session_close(s, "out of memory");
        return;
    }
    evbuffer_drain(client_in(s), (size_t)r);
    connect_upstream(s);
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
static void pump_request(struct session *s)
{
    if ((s->flags & SESSION_FL_REQ_DONE) || s->up == NULL || s->state != SESSION_EXCHANGE)
        return;
    int r = relay_body_move(client_in(s), up_out(s), &s->req);
    if (r < 0) {
        respond_error(s, 400, "malformed chunked request body");
        return;
    }
    if (r == 1)
        request_complete(s);
}

/* ------------------------------------------------------------------------ */
/* Upstream side                                                             */

static void attach_upstream(struct session *s, struct upstream_conn *conn)
{
    struct conn *c = upstream_conn_socket(conn);

    s->up = conn;
    s->flags &= ~(SESSION_FL_UP_CLOSE | SESSION_FL_UP_EOF | SESSION_FL_UP_BYTES);
    conn_set_callbacks(c, up_read_cb, up_write_cb, up_event_cb, s);
    setup_conn(s->w, c);
}

/* Sends the head (kept for a replay when the connection was idle before:
 * the server may have closed it just now) and starts relaying the body. */
static void send_request(struct session *s)
{
    session_set_state(s, SESSION_EXCHANGE);
    if (upstream_conn_reused(s->up)) {
        size_t len = evbuffer_get_length(s->req_head);
        evbuffer_add(up_out(s), evbuffer_pullup(s->req_head, -1), len);
    } else {
        evbuffer_add_buffer(up_out(s), s->req_head);
    }
    clock_gettime(CLOCK_MONOTONIC, &s->t_sent);
    if (s->flags & SESSION_FL_REQ_DONE)
        timer_arm(s, s->w->tv.upstream_header);
    else {
        conn_set_timeouts(s->client, s->w->tv.body_idle, s->w->tv.body_idle);
        pump_request(s);
    }
    /* A pipelined or early answer may already be waiting. */
    if (evbuffer_get_length(up_in(s)) > 0)
        pump_response(s);
}

/* No server of the candidate pool could be reached: nothing was sent yet,
 * so the request goes to the stable pool instead, once. */
static bool fall_back_to_stable(struct session *s)
{
    struct route_view v = route_split_get(s->w->shared->split);
    static _Thread_local time_t last_warn;
    time_t now = time(NULL);

    if ((s->flags & SESSION_FL_FALLBACK) || upstream_pool_colour(s->pool) != v.candidate)
        return false;
    if (now != last_warn)
        log_warn("candidate pool %s unreachable: requests go to stable pool %s",
                 conf_colour_name(v.candidate), conf_colour_name(v.stable));
    last_warn = now;
    s->flags |= SESSION_FL_FALLBACK;
    s->pool = s->w->pools[v.stable];
    s->tried = 0;
    return true;
}

static void connect_upstream(struct session *s)
{
    static const char *const unreachable[CONF_COLOURS] = {
        [CONF_BLUE] = "no server of pool blue could be reached",
        [CONF_GREEN] = "no server of pool green could be reached",
    };

    for (;;) {
        struct upstream_server *srv = upstream_pool_pick(s->pool, s->tried);
        struct upstream_conn *conn;

        if (srv == NULL && fall_back_to_stable(s))
            continue;
        if (srv == NULL) {
            respond_error(s, 502, unreachable[upstream_pool_colour(s->pool)]);
            return;
        }
        conn = upstream_conn_take_idle(srv);
        if (conn != NULL) {
            attach_upstream(s, conn);
            send_request(s);
            return;
        }
        conn = upstream_conn_connect(srv);
        if (conn == NULL) {
            log_warn("upstream %s: cannot connect: %s", upstream_server_conf(srv)->name,
                     strerror(errno));
            s->tried |= upstream_server_bit(srv);
            continue;
        }
        attach_upstream(s, conn);
        session_set_state(s, SESSION_CONNECT);
        timer_arm(s, s->w->tv.connect);
        return;
    }
}

/* The connection attempt failed: try the next server of the same pool.
 * Nothing was sent yet, so this is always safe. */
static void connect_failed(struct session *s, const char *why)
{
    struct upstream_server *srv = upstream_conn_server(s->up);
    static _Thread_local time_t last_warn;
    time_t now = time(NULL);

    /* A dead server fails every request sent its way: say so once a second. */
    if (now != last_warn)
        log_warn("upstream %s (%s): %s", upstream_server_conf(srv)->name,
                 upstream_server_conf(srv)->addr.text, why);
    last_warn = now;
    s->tried |= upstream_server_bit(srv);
    drop_upstream(s);
    connect_upstream(s);
}

static bool idempotent(enum http1_method m)
{
    return m == HTTP1_M_GET || m == HTTP1_M_HEAD || m == HTTP1_M_OPTIONS || m == HTTP1_M_PUT ||
           m == HTTP1_M_DELETE;
}

/* Sends the same request on a fresh connection to the same server: allowed
 * once, when a reused connection closed before answering, the request had
 * no body (so it is all still in req_head) and is idempotent (RFC 9110
 * 9.2.2: the server may have acted on it before closing). */
static bool try_replay(struct session *s)
{
    struct upstream_server *srv;
    struct upstream_conn *conn;

    if (!upstream_conn_reused(s->up) || (s->flags & (SESSION_FL_REPLAYED | SESSION_FL_UP_BYTES)) ||
        s->req.kind != HTTP1_BODY_NONE || !idempotent(s->method))
        return false;
    srv = upstream_conn_server(s->up);
    drop_upstream(s);
    s->flags |= SESSION_FL_REPLAYED;
    conn = upstream_conn_connect(srv);
    if (conn == NULL)
        return false;
    attach_upstream(s, conn);
    session_set_state(s, SESSION_CONNECT);
    timer_arm(s, s->w->tv.connect);
    return true;
}

struct resp_ctx {
    struct worker *w;
    enum http1_method method;
    struct http1_response *res;
};

static int parse_resp(const char *buf, size_t len, void *arg)
{
    struct resp_ctx *c = arg;
    const struct conf_limits *lim = &c->w->cfg->limits;

    return http1_parse_response(buf, len, lim->max_header_bytes, c->w->hdrs, lim->max_headers,
                                c->method, c->res);
}

/* Waits for, or starts on, the next request of a kept-alive connection. */
static void next_request(struct session *s)
{
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

/* Ends an exchange whose response went down whole. */
static void finish_exchange(struct session *s)
{
    bool reusable = (s->flags & SESSION_FL_REQ_DONE) && !(s->flags & SESSION_FL_UP_CLOSE) &&
                    s->resp.kind != HTTP1_BODY_CLOSE && evbuffer_get_length(up_in(s)) == 0 &&
                    evbuffer_get_length(up_out(s)) == 0;

    log_exchange(s);
    if (reusable)
        upstream_conn_release(s->up);
    else
        upstream_conn_free(s->up);
    s->up = NULL;
    if ((s->flags & SESSION_FL_CLIENT_CLOSE) || s->w->draining) {
        session_flush_and_close(s);
        return;
    }
    next_request(s);
}

static void start_tunnel(struct session *s)
{
    evtimer_del(&s->timer);
    log_exchange(s);
    session_set_state(s, SESSION_TUNNEL);
    conn_set_timeouts(s->client, s->w->tv.client_idle, s->w->tv.client_idle);
    conn_set_timeouts(upstream_conn_socket(s->up), s->w->tv.client_idle, s->w->tv.client_idle);
    s->req.kind = HTTP1_BODY_CLOSE;
    s->resp.kind = HTTP1_BODY_CLOSE;
    tunnel_pump(s);
}

/* Moves bytes both ways. Each direction ends on its own: when its sender
 * closed and everything it sent went across, our FIN follows. The tunnel
 * closes when both directions are done and written out. */
static void tunnel_pump(struct session *s)
{
    struct conn *up = upstream_conn_socket(s->up);

    relay_body_move(client_in(s), up_out(s), &s->req);
    relay_body_move(up_in(s), client_out(s), &s->resp);
    if ((s->flags & (SESSION_FL_CLIENT_EOF | SESSION_FL_UP_SHUT)) == SESSION_FL_CLIENT_EOF &&
        evbuffer_get_length(client_in(s)) == 0) {
        s->flags |= SESSION_FL_UP_SHUT;
        conn_shutdown_write(up);
    }
    if ((s->flags & (SESSION_FL_UP_EOF | SESSION_FL_CLIENT_SHUT)) == SESSION_FL_UP_EOF &&
        evbuffer_get_length(up_in(s)) == 0) {
        s->flags |= SESSION_FL_CLIENT_SHUT;
        conn_shutdown_write(s->client);
    }
    if ((s->flags & SESSION_FL_UP_SHUT) && (s->flags & SESSION_FL_CLIENT_SHUT) &&
        evbuffer_get_length(up_out(s)) == 0 && evbuffer_get_length(client_out(s)) == 0)
        session_close(s, "tunnel closed by both sides");
}

/* Handles one response head. Returns 1 when it was the final one, 0 when it
 * was an interim 1xx (parse again), -1 when the session ended. */
static int on_response_head(struct session *s, const struct http1_response *res, size_t len)
{
    bool upgrade = res->status == 101;
    struct forward_response_opts fo = {0};

    if (upgrade && !(s->flags & SESSION_FL_UPGRADE)) {
        respond_error(s, 502, "upstream switched protocols unasked");
        return -1;
    }
    if (res->status < 200 && !upgrade) {
        /* Interim answers (100 Continue, 103) go to 1.1 clients only. */
        if (s->client_minor == 1 && forward_response_head(client_out(s), res, &fo) < 0) {
            session_close(s, "out of memory");
            return -1;
        }
        evbuffer_drain(up_in(s), len);
        return 0;
    }
    /* Close the client after this answer when its body runs to the
     * server's close, when the server answered before the whole request
     * body came (the rest cannot be told from a next request), when the
     * client has closed its side and sent nothing more, or when draining. */
    if (res->body == HTTP1_BODY_CLOSE || !(s->flags & SESSION_FL_REQ_DONE) || s->w->draining ||
        ((s->flags & SESSION_FL_CLIENT_EOF) && evbuffer_get_length(client_in(s)) == 0))
        s->flags |= SESSION_FL_CLIENT_CLOSE;
    fo.upgrade = upgrade;
    fo.close = !upgrade && (s->flags & SESSION_FL_CLIENT_CLOSE);
    fo.keepalive_10 = s->client_minor == 0 && !fo.close;
    s->status = res->status;
    s->upstream_ms = ms_since(&s->t_sent);
    s->flags |= SESSION_FL_RESP_HEAD;
    relay_body_init(&s->resp, res->body, res->content_length);
    if (forward_response_head(client_out(s), res, &fo) < 0) {
        session_close(s, "out of memory");
        return -1;
    }
    evbuffer_drain(up_in(s), len);
    evbuffer_drain(s->req_head, evbuffer_get_length(s->req_head));
    if (res->flags & HTTP1_F_CLOSE)
        s->flags |= SESSION_FL_UP_CLOSE;
    return 1;
}

/* The upstream closed before a whole response head came. */
static void upstream_gone(struct session *s)
{
    if (try_replay(s))
        return;
    respond_error(s, 502,
                  (s->flags & SESSION_FL_UP_BYTES)
                      ? "upstream closed the connection in the middle of its response head"
                      : "upstream closed the connection without answering");
}

/* Parses response heads until the final one went to the client. Returns
 * true when the body may follow. */
static bool pump_response_head(struct session *s)
{
    while (!(s->flags & SESSION_FL_RESP_HEAD)) {
        struct http1_response res;
        struct resp_ctx ctx = {s->w, s->method, &res};
        const char *head;
        int r = HTTP1_INCOMPLETE;

        if (evbuffer_get_length(up_in(s)) > 0) {
            s->flags |= SESSION_FL_UP_BYTES;
            r = relay_head_parse(up_in(s), s->w->cfg->limits.max_header_bytes, &head, parse_resp,
                                 &ctx);
        }
        if (r == HTTP1_INCOMPLETE) {
            if (s->flags & SESSION_FL_UP_EOF)
                upstream_gone(s);
            return false;
        }
        if (r < 0) {
            respond_error(s, 502,
                          r == HTTP1_TOO_LARGE ? "upstream response head too large"
                                               : "malformed upstream response");
            return false;
        }
        int done = on_response_head(s, &res, (size_t)r);
        if (done < 0)
            return false;
        if (done == 0)
            continue;
        evtimer_del(&s->timer);
        if (s->status == 101) {
            start_tunnel(s);
            return false;
        }
        conn_set_timeouts(upstream_conn_socket(s->up), s->w->tv.body_idle, s->w->tv.body_idle);
    }
    return true;
}

static void pump_response(struct session *s)
{
    if (!pump_response_head(s))
        return;
    if (s->state != SESSION_EXCHANGE || (s->flags & SESSION_FL_RESP_DONE))
        return;
    int r = relay_body_move(up_in(s), client_out(s), &s->resp);
    if (r < 0) {
        session_close(s, "malformed chunked response body");
        return;
    }
    if (r == 0 && (s->flags & SESSION_FL_UP_EOF) && evbuffer_get_length(up_in(s)) == 0) {
        /* Everything the server sent went down: a close-delimited body ends
         * here, any other is cut short. */
        if (s->resp.kind != HTTP1_BODY_CLOSE) {
            session_close(s, "upstream closed the connection mid-response");
            return;
        }
        r = 1;
    }
    if (r == 1) {
        s->flags |= SESSION_FL_RESP_DONE;
        finish_exchange(s);
    }
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
        pump_request(s);
        break;
    case SESSION_TUNNEL:
        tunnel_pump(s);
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
    int fd = conn_fd(s->client);

    /* Closing with unread input would reset the connection and could destroy
     * the answer we just sent before the client reads it. So: FIN first,
     * then read and drop for a while. */
    if ((s->flags & SESSION_FL_CLIENT_EOF) || shutdown(fd, SHUT_WR) < 0) {
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
            next_request(s);
        break;
    case SESSION_EXCHANGE:
        pump_response(s);
        break;
    case SESSION_TUNNEL:
        tunnel_pump(s);
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
        next_request(s);
        break;
    case SESSION_CONNECT:
    case SESSION_EXCHANGE:
        if (!(s->flags & SESSION_FL_REQ_DONE))
            session_close(s, "client closed in the middle of its request");
        break;
    case SESSION_TUNNEL:
        tunnel_pump(s);
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
            respond_error(s, 408, "client stopped sending the request body");
        else
            session_close(s, (what & CONN_EV_READING) ? "client idle" : "client stopped reading");
    } else if (what & CONN_EV_ERROR) {
        session_close(s, "client connection error");
    } else if (what & CONN_EV_EOF) {
        client_eof(s);
    }
}

static void up_read_cb(struct conn *c, void *arg)
{
    struct session *s = arg;

    if (s->state == SESSION_EXCHANGE)
        pump_response(s);
    else if (s->state == SESSION_TUNNEL)
        tunnel_pump(s);
}

static void up_write_cb(struct conn *c, void *arg)
{
    struct session *s = arg;

    if (s->state == SESSION_EXCHANGE)
        pump_request(s);
    else if (s->state == SESSION_TUNNEL)
        tunnel_pump(s);
}

/* A socket error or an idle timeout on the upstream during an exchange. */
static void upstream_failed(struct session *s, short what)
{
    if (!(s->flags & SESSION_FL_RESP_HEAD) && (what & CONN_EV_ERROR) && try_replay(s))
        return;
    if (what & CONN_EV_TIMEOUT)
        respond_error(s, 504,
                      (what & CONN_EV_READING) ? "upstream stopped sending"
                                               : "upstream stopped reading the request");
    else
        respond_error(s, 502, "upstream connection failed");
}

static void up_event_cb(struct conn *c, short what, void *arg)
{
    struct session *s = arg;

    if (what & CONN_EV_CONNECTED) {
        evtimer_del(&s->timer);
        send_request(s);
        return;
    }
    if (s->state == SESSION_CONNECT) {
        /* conn leaves the connect's SO_ERROR in errno. */
        connect_failed(s, (what & CONN_EV_TIMEOUT)
                              ? "connect timed out"
                              : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return;
    }
    s->flags |= SESSION_FL_UP_CLOSE;
    if (what & CONN_EV_EOF) {
        /* What came before the FIN is still to be relayed: the pumps finish
         * the exchange (or the tunnel direction) once it has gone down. */
        s->flags |= SESSION_FL_UP_EOF;
        if (s->state == SESSION_EXCHANGE)
            pump_response(s);
        else if (s->state == SESSION_TUNNEL)
            tunnel_pump(s);
        return;
    }
    if (s->state == SESSION_EXCHANGE)
        upstream_failed(s, what);
    else if (s->state == SESSION_TUNNEL)
        session_close(s, "upstream connection failed in the tunnel");
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    switch (s->state) {
    case SESSION_HEAD:
        if (evbuffer_get_length(client_in(s)) == 0)
            session_close(s, "client idle");
        else
            respond_error(s, 408, "request head not received in time");
        break;
    case SESSION_CONNECT:
        connect_failed(s, "connect timed out");
        break;
    case SESSION_EXCHANGE:
        respond_error(s, 504, "upstream did not answer in time");
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
