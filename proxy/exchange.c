/* exchange.c - the upstream side of a session's exchange.
 *
 * Picks a server (another one of the same pool when a connection attempt
 * fails, the stable pool once when the candidate has no reachable server),
 * sends the request head, replays it once on a fresh connection when a
 * reused one closed before answering, relays interim and final response
 * heads and the response body to the client, and after a 101 carries the
 * tunnel both ways. The client side and the life cycle are session.c's; the
 * state diagram and the backpressure rules are explained there.
 */
#include "proxy/exchange.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "conf/log.h"
#include "proxy/conn.h"
#include "proxy/forward.h"
#include "proxy/http1.h"
#include "proxy/relay.h"
#include "proxy/route.h"
#include "proxy/session-t.h"
#include "proxy/session.h"
#include "proxy/signals.h"
#include "proxy/upstream.h"
#include "proxy/worker-t.h"

static void up_read_cb(struct conn *c, void *arg);
static void up_write_cb(struct conn *c, void *arg);
static void up_event_cb(struct conn *c, short what, void *arg);

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
    /* A connect deadline may still run from a server tried before. */
    evtimer_del(&s->timer);
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
        session_pump_request(s);
        /* A malformed body already waiting ends the exchange (s->up is gone). */
        if (s->state != SESSION_EXCHANGE)
            return;
    }
    /* A pipelined or early answer may already be waiting. */
    if (evbuffer_get_length(up_in(s)) > 0)
        exchange_pump_response(s);
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
    session_route_to(s, s->w->pools[v.stable]);
    s->tried = 0;
    return true;
}

void exchange_start(struct session *s)
{
    static const char *const unreachable[CONF_COLOURS] = {
        [CONF_BLUE] = "no server of pool blue could be reached",
        [CONF_GREEN] = "no server of pool green could be reached",
    };
    static const char *const unavailable[CONF_COLOURS] = {
        [CONF_BLUE] = "no server of pool blue is in rotation",
        [CONF_GREEN] = "no server of pool green is in rotation",
    };

    for (;;) {
        struct upstream_server *srv = upstream_pool_pick(s->pool, s->tried);
        struct upstream_conn *conn;

        if (srv == NULL && fall_back_to_stable(s))
            continue;
        if (srv == NULL && s->tried != 0) {
            /* A TLS failure is for the logs: the client learns only that
             * no server could be reached. */
            const char *why = unreachable[upstream_pool_colour(s->pool)];
            session_respond_error_logged(s, 502, why, s->up_error[0] != '\0' ? s->up_error : why);
            return;
        }
        if (srv == NULL) { /* every server disabled or draining: nothing was tried */
            session_respond_error(s, 503, unavailable[upstream_pool_colour(s->pool)]);
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
            s->up_error[0] = '\0';
            continue;
        }
        attach_upstream(s, conn);
        session_set_state(s, SESSION_CONNECT);
        timer_arm(s, s->w->tv.connect);
        return;
    }
}

/* One attempt on the current upstream server ended: into the worker's
 * windows, and the instant flip's count. why (may be NULL) names a failure. */
static void record(struct session *s, enum outcome_kind kind, int status, const char *why)
{
    struct outcome o = {.kind = kind, .status = status};
    double ms = s->upstream_ms >= 0 ? s->upstream_ms : ms_since(&s->t_sent);

    /* A replay whose new connection could not even be made left no server
     * to blame: the failure was ours (descriptors, ports). */
    if (s->up == NULL)
        return;
    if (kind == OUTCOME_RESPONSE)
        o.latency_us = (uint64_t)(ms * 1000.0);
    signals_record(s->w, upstream_conn_server(s->up), &o, why);
}

/* The connection attempt failed: try the next server of the same pool.
 * Nothing was sent yet, so this is always safe. */
void exchange_connect_failed(struct session *s, const char *why)
{
    struct upstream_server *srv = upstream_conn_server(s->up);
    static _Thread_local time_t last_warn;
    time_t now = time(NULL);

    /* The access log names the last failure only when it was a TLS one. */
    if (why != s->up_error)
        s->up_error[0] = '\0';
    /* A dead server fails every request sent its way: say so once a second. */
    if (now != last_warn)
        log_warn("upstream %s (%s): %s", upstream_server_conf(srv)->name,
                 upstream_server_conf(srv)->addr.text, why);
    last_warn = now;
    record(s, OUTCOME_CONNECT_ERROR, 0, why);
    s->tried |= upstream_server_bit(srv);
    drop_upstream(s);
    exchange_start(s);
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

/* The server broke its response after the head went down: cut short,
 * malformed chunks, or bytes past its end. The status was counted when the
 * head came; the break counts as well (as HAProxy's srv_abrt beside its
 * hrsp_2xx), or a server that fails mid-body would look all 2xx. */
static void record_broken_response(struct session *s, const char *why)
{
    s->flags |= SESSION_FL_UP_CLOSE;
    s->error = why;
    record(s, OUTCOME_RESET, 0, why);
}

/* Ends an exchange whose response went down whole. */
static void finish_exchange(struct session *s)
{
    /* Bytes after the end of a response answer no request: the framing was
     * wrong (a Content-Length too small), and the rest is not forwarded. */
    if (evbuffer_get_length(up_in(s)) > 0)
        record_broken_response(s, "upstream sent bytes past the end of its response");
    bool reusable = (s->flags & SESSION_FL_REQ_DONE) && !(s->flags & SESSION_FL_UP_CLOSE) &&
                    s->resp.kind != HTTP1_BODY_CLOSE && evbuffer_get_length(up_out(s)) == 0;

    session_log_exchange(s);
    if (reusable)
        upstream_conn_release(s->up);
    else
        upstream_conn_free(s->up);
    s->up = NULL;
    if ((s->flags & SESSION_FL_CLIENT_CLOSE) || s->w->draining) {
        session_flush_and_close(s);
        return;
    }
    session_next_request(s);
}

static void start_tunnel(struct session *s)
{
    evtimer_del(&s->timer);
    session_log_exchange(s);
    session_set_state(s, SESSION_TUNNEL);
    conn_set_timeouts(s->client, s->w->tv.client_idle, s->w->tv.client_idle);
    conn_set_timeouts(upstream_conn_socket(s->up), s->w->tv.client_idle, s->w->tv.client_idle);
    s->req.kind = HTTP1_BODY_CLOSE;
    s->resp.kind = HTTP1_BODY_CLOSE;
    exchange_tunnel_pump(s);
}

/* Moves bytes both ways. Each direction ends on its own: when its sender
 * closed and everything it sent went across, our FIN follows. The tunnel
 * closes when both directions are done and written out. */
void exchange_tunnel_pump(struct session *s)
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
        record(s, OUTCOME_RESPONSE, 502, "switched protocols unasked");
        session_respond_error(s, 502, "upstream switched protocols unasked");
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
    if (s->sticky.set) {
        fo.cookie_name = s->w->cfg->routing.sticky_cookie;
        fo.cookie_value = s->sticky.value;
        fo.cookie_value_len = sizeof(s->sticky.value);
    }
    s->status = res->status;
    s->upstream_ms = ms_since(&s->t_sent);
    record(s, OUTCOME_RESPONSE, res->status, NULL);
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
    const char *why = (s->flags & SESSION_FL_UP_BYTES)
                          ? "upstream closed the connection in the middle of its response head"
                          : "upstream closed the connection without answering";

    if (try_replay(s))
        return;
    record(s, OUTCOME_RESET, 0, why);
    session_respond_error(s, 502, why);
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
            const char *why = r == HTTP1_TOO_LARGE ? "upstream response head too large"
                                                   : "malformed upstream response";
            /* The server broke the protocol: an error of that server. */
            record(s, OUTCOME_RESPONSE, 502, why);
            session_respond_error(s, 502, why);
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

void exchange_pump_response(struct session *s)
{
    if (!pump_response_head(s))
        return;
    if (s->state != SESSION_EXCHANGE || (s->flags & SESSION_FL_RESP_DONE))
        return;
    int r = relay_body_move(up_in(s), client_out(s), &s->resp);
    if (r < 0) {
        record_broken_response(s, "malformed chunked response body");
        session_close(s, s->error);
        return;
    }
    if (r == 0 && (s->flags & SESSION_FL_UP_EOF) && evbuffer_get_length(up_in(s)) == 0) {
        /* Everything the server sent went down: a close-delimited body ends
         * here, any other is cut short. */
        if (s->resp.kind != HTTP1_BODY_CLOSE) {
            record_broken_response(s, "upstream closed the connection mid-response");
            session_close(s, s->error);
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

static void up_read_cb(struct conn *c, void *arg)
{
    struct session *s = arg;

    if (s->state == SESSION_EXCHANGE)
        exchange_pump_response(s);
    else if (s->state == SESSION_TUNNEL)
        exchange_tunnel_pump(s);
}

static void up_write_cb(struct conn *c, void *arg)
{
    struct session *s = arg;

    if (s->state == SESSION_EXCHANGE)
        session_pump_request(s);
    else if (s->state == SESSION_TUNNEL)
        exchange_tunnel_pump(s);
}

/* A socket error or an idle timeout on the upstream during an exchange.
 * After the head, the status is counted already; a body that breaks or
 * stalls counts too. A server that answered and then stops reading the
 * rest of the request has had its say: that is no fault of its. */
static void upstream_failed(struct session *s, short what)
{
    bool answered = s->flags & SESSION_FL_RESP_HEAD;

    if (!answered && (what & CONN_EV_ERROR) && try_replay(s))
        return;
    if (what & CONN_EV_TIMEOUT) {
        const char *why = (what & CONN_EV_READING) ? "upstream stopped sending"
                                                   : "upstream stopped reading the request";
        if (!answered || (what & CONN_EV_READING))
            record(s, OUTCOME_TIMEOUT, 0, why);
        session_respond_error(s, 504, why);
        return;
    }
    const char *why =
        answered ? "upstream connection failed mid-response" : "upstream connection failed";
    if (!answered || (what & CONN_EV_READING))
        record(s, OUTCOME_RESET, 0, why);
    session_respond_error(s, 502, why);
}

void exchange_timed_out(struct session *s)
{
    record(s, OUTCOME_TIMEOUT, 0, "no answer within timeouts_ms.upstream_header");
    session_respond_error(s, 504, "upstream did not answer in time");
}

/* Why the connect on c failed: a timeout, the TLS handshake's reason (kept
 * in s->up_error for the access log), or the connect's
 * SO_ERROR, which conn leaves in errno. */
static const char *connect_failure(struct session *s, struct conn *c, short what)
{
    const char *tls = conn_tls_failure(c);

    if (what & CONN_EV_TIMEOUT)
        return "connect timed out";
    if (tls != NULL) {
        snprintf(s->up_error, sizeof(s->up_error), "upstream TLS: %s", tls);
        return s->up_error;
    }
    return evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
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
        exchange_connect_failed(s, connect_failure(s, c, what));
        return;
    }
    s->flags |= SESSION_FL_UP_CLOSE;
    if (what & CONN_EV_EOF) {
        /* What came before the FIN is still to be relayed: the pumps finish
         * the exchange (or the tunnel direction) once it has gone down. */
        s->flags |= SESSION_FL_UP_EOF;
        if (s->state == SESSION_EXCHANGE)
            exchange_pump_response(s);
        else if (s->state == SESSION_TUNNEL)
            exchange_tunnel_pump(s);
        return;
    }
    if (s->state == SESSION_EXCHANGE)
        upstream_failed(s, what);
    else if (s->state == SESSION_TUNNEL)
        session_close(s, "upstream connection failed in the tunnel");
}
