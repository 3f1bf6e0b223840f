/* backend_conn.c - sy-backend's client connections: the I/O state machine.
 *
 * One struct backend_conn per client. Requests are read in order (pipelined
 * ones wait in the input buffer); answers are written straight to the socket
 * when it takes them, and through the bufferevent's write event only when it
 * does not, so that a keep-alive exchange costs a read, a write and a share
 * of one epoll_wait.
 *
 * With --tls-cert the bufferevent is an OpenSSL one: it runs the handshake
 * and encrypts, so every write goes through it (no direct writes then).
 */
#include "bench/backend_conn.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "bench/backend_route.h"
#include "bench/backend_worker.h"
#include "conf/log.h"
#include "proxy/http1.h"
#include "proxy/http1_chunked.h"

#define HEAD_MAX 65536           /* request head limit, else 431 */
#define HEADERS_MAX 100          /* header fields, else 431 */
#define READ_MAX (128 * 1024)    /* one read() at most: big uploads need few calls */
#define IN_HIGH (256 * 1024)     /* unprocessed input that stops reading */
#define OUT_HIGH (1024 * 1024)   /* unsent output that stops reading */
#define STREAM_HIGH (256 * 1024) /* /__bytes fills the output up to this */
#define STREAM_LOW (64 * 1024)   /* and refills once it drained below this */
#define RUN_ROUNDS 8             /* conn_run steps before it lets others run */
#define LINGER_SEC 2             /* wait for the client's FIN after ours */
#define SPARE_MAX 1024           /* freed connections kept for reuse per worker */
#define VERBOSE_LINE 160

enum conn_state {
    CONN_HEAD,    /* between requests: waiting for a complete head */
    CONN_BODY,    /* reading the request body */
    CONN_DELAY,   /* the answer waits in held for the latency timer */
    CONN_STREAM,  /* sending a /__bytes body as the output drains */
    CONN_TUNNEL,  /* after 101: every byte read goes back */
    CONN_HANG,    /* the fault mode said never answer: input is discarded */
    CONN_CLOSING, /* the output flushes, then our FIN */
    CONN_LINGER,  /* FIN sent: reading and discarding until the client's FIN */
};

static const char *const state_names[] = {"head",   "body", "delay",   "stream",
                                          "tunnel", "hang", "closing", "linger"};

#define CONN_F_EOF 0x01     /* the client sent its FIN */
#define CONN_F_WRITING 0x02 /* the bufferevent's write event is enabled */
#define CONN_F_PAUSED 0x04  /* reading stopped until the output drains */
#define CONN_F_RESET 0x08   /* close with a TCP reset (SO_LINGER 0) */
#define CONN_F_TLS 0x10     /* bev is an OpenSSL bufferevent */

struct backend_conn {
    struct backend_worker *w;
    struct bufferevent *bev;
    evutil_socket_t fd;
    enum conn_state state;
    unsigned flags;
    struct event timer; /* latency delay, then lingering close */
    struct backend_conn *prev, *next;

    /* the request being read and answered */
    struct backend_exchange x;
    enum http1_body body;
    uint64_t body_left; /* HTTP1_BODY_LENGTH: bytes still to come */
    struct http1_chunked chunked;
    bool hang;
    uint32_t latency_ms;
    uint64_t fault_gen; /* the fault mode's generation when it touched this request; 0: not */
    EVP_MD_CTX *md;     /* made on the first /__sink, then reused */
    struct evbuffer *collect;
    struct evbuffer *held;         /* a delayed answer */
    enum backend_route_next after; /* what follows the held answer */
    uint64_t stream_left;
    uint64_t stream_off;
    char line[VERBOSE_LINE]; /* --verbose: "METHOD TARGET" */
    struct evbuffer *record; /* --record: "METHOD TARGET" until the body is read; made lazily */
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

/* The one place where the state changes. */
static void conn_set_state(struct backend_conn *c, enum conn_state s)
{
    log_debug("conn %d: %s -> %s", (int)c->fd, state_names[c->state], state_names[s]);
    c->state = s;
}

static struct evbuffer *conn_in(const struct backend_conn *c)
{
    return bufferevent_get_input(c->bev);
}

static struct evbuffer *conn_out(const struct backend_conn *c)
{
    return bufferevent_get_output(c->bev);
}

/* Draws true with probability rate from the worker's xorshift64* stream. */
static bool conn_draw(struct backend_worker *w, double rate)
{
    if (rate <= 0.0)
        return false;
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (double)((w->rng * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53 < rate;
}

/* Returns a spare connection of w or a new one; NULL when out of memory. */
static struct backend_conn *conn_get(struct backend_worker *w)
{
    struct backend_conn *c = w->spare;

    if (c) {
        w->spare = c->next;
        w->nspare--;
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->collect = evbuffer_new();
    c->held = evbuffer_new();
    if (!c->collect || !c->held || evtimer_assign(&c->timer, w->base, conn_timer_cb, c) < 0) {
        evbuffer_free(c->collect);
        evbuffer_free(c->held);
        free(c);
        return NULL;
    }
    return c;
}

static void conn_destroy(struct backend_conn *c)
{
    evbuffer_free(c->collect);
    evbuffer_free(c->held);
    if (c->record)
        evbuffer_free(c->record);
    EVP_MD_CTX_free(c->md);
    free(c);
}

/* Closes the connection and keeps the struct for reuse. Called only at the
 * end of a callback: nothing touches c after it. */
static void conn_free(struct backend_conn *c)
{
    struct backend_worker *w = c->w;

    evtimer_del(&c->timer);
    if (c->flags & CONN_F_RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        /* Best effort: if it fails the client sees a FIN, still no answer. */
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    backend_counter_bump(&w->counters.closed);
    evbuffer_drain(c->collect, evbuffer_get_length(c->collect));
    evbuffer_drain(c->held, evbuffer_get_length(c->held));
    if (c->record)
        evbuffer_drain(c->record, evbuffer_get_length(c->record));
    if (w->nspare >= SPARE_MAX) {
        conn_destroy(c);
        return;
    }
    c->next = w->spare;
    w->spare = c;
    w->nspare++;
}

/* The bufferevent of fd: plain, or with --tls-cert an OpenSSL one that
 * starts with the server handshake. Returns NULL when out of memory (fd
 * not closed). */
static struct bufferevent *conn_bev_new(struct backend_worker *w, evutil_socket_t fd)
{
    struct bufferevent *bev;
    SSL *ssl;

    if (!w->shared->tls)
        return bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    ssl = SSL_new(w->shared->tls);
    if (!ssl)
        return NULL;
    /* Freeing bev then frees ssl and closes fd; failing, it leaves both. */
    bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* The proxy may close an idle connection without close_notify: an EOF. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int backend_conn_accept(struct backend_worker *w, evutil_socket_t fd)
{
    int one = 1;
    struct backend_conn *c = conn_get(w);

    if (!c) {
        evutil_closesocket(fd);
        return -1;
    }
    /* Answers are whole when written: waiting for more to coalesce only adds latency. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = conn_bev_new(w, fd);
    if (!c->bev) {
        evutil_closesocket(fd);
        c->next = w->spare;
        w->spare = c;
        w->nspare++;
        return -1;
    }
    c->w = w;
    c->fd = fd;
    c->state = CONN_HEAD;
    c->flags = w->shared->tls ? CONN_F_TLS : 0;
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    backend_counter_bump(&w->counters.accepted);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, IN_HIGH);
    bufferevent_set_max_single_read(c->bev, READ_MAX);
    /* Writes go straight to the socket (conn_flush): the write event is
     * only for what the socket did not take. */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    return 0;
}

void backend_conn_free_all(struct backend_worker *w)
{
    while (w->conns)
        conn_free(w->conns);
    while (w->spare) {
        struct backend_conn *c = w->spare;
        w->spare = c->next;
        conn_destroy(c);
    }
    w->nspare = 0;
}

/* --record: starts the line of the request req (borrowed) with its method
 * and target; conn_record_request ends it once the body is read. Returns 0
 * or -1 when out of memory. */
static int conn_record_begin(struct backend_conn *c, const struct http1_request *req)
{
    if (!c->record && !(c->record = evbuffer_new()))
        return -1;
    evbuffer_drain(c->record, evbuffer_get_length(c->record));
    return evbuffer_add_printf(c->record, "%.*s %.*s", (int)req->method_len, req->method,
                               (int)req->target_len, req->target) < 0
               ? -1
               : 0;
}

/* --record: writes the finished line of the request just read. The file is
 * line-buffered, so the line is out before the answer. Returns 0 or -1 (the
 * record would lie: better to fail the connection than to miss a line). */
static int conn_record_request(struct backend_conn *c)
{
    FILE *f = c->w->shared->record;
    size_t n;
    const void *line;
    bool ok;

    if (evbuffer_add_printf(c->record, " %" PRIu64 "\n", c->x.body_bytes) < 0)
        return -1;
    n = evbuffer_get_length(c->record);
    line = evbuffer_pullup(c->record, -1);
    ok = line && fwrite(line, 1, n, f) == n;
    evbuffer_drain(c->record, n);
    if (!ok)
        log_error("--record: cannot write: %s", strerror(errno));
    return ok ? 0 : -1;
}

/* --record: a refused request is written "! STATUS". */
static void conn_record_refusal(struct backend_conn *c, int status)
{
    if (fprintf(c->w->shared->record, "! %d\n", status) < 0)
        log_error("--record: cannot write: %s", strerror(errno));
}

/* Answers a request this connection cannot go on after (400, 413, 431) and
 * closes once that is sent. Returns 1: the caller goes on (and stops, since
 * the state is CLOSING now), or -1 when out of memory. */
static int conn_refuse(struct backend_conn *c, int status, const char *why)
{
    const struct backend_reply *r = c->w->shared->reply;

    c->x.status = status;
    if (c->w->shared->record)
        conn_record_refusal(c, status);
    if (backend_reply_text(r, conn_out(c), status, BACKEND_REPLY_CLOSE, false, "text/plain", why,
                           strlen(why)) < 0)
        return -1;
    backend_counter_bump(&c->w->counters.answered);
    if (c->w->shared->verbose)
        log_info("%s: %d %s", backend_reply_name(r), status, http1_reason(status));
    conn_set_state(c, CONN_CLOSING);
    return 1;
}

/* Parses the head at the start of in. Tries the first contiguous segment
 * before linearizing: most heads arrive in one read. */
static int conn_parse_head(struct backend_conn *c, struct http1_header *hdrs,
                           struct http1_request *req)
{
    struct evbuffer *in = conn_in(c);
    size_t len = evbuffer_get_length(in);
    struct evbuffer_iovec v;
    int n;

    if (len == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
        return HTTP1_INCOMPLETE;
    n = http1_parse_request(v.iov_base, v.iov_len, HEAD_MAX, hdrs, HEADERS_MAX, req);
    if (n != HTTP1_INCOMPLETE || v.iov_len == len || v.iov_len > HEAD_MAX)
        goto out;
    /* One byte over the limit lets the parser see that the head is too long. */
    len = len > HEAD_MAX ? HEAD_MAX + 1 : len;
    v.iov_base = evbuffer_pullup(in, (ev_ssize_t)len);
    if (!v.iov_base)
        return HTTP1_TOO_LARGE; /* out of memory: refuse rather than wait */
    v.iov_len = len;
    n = http1_parse_request(v.iov_base, v.iov_len, HEAD_MAX, hdrs, HEADERS_MAX, req);
out:
    if (n == HTTP1_INCOMPLETE && v.iov_len > HEAD_MAX)
        n = HTTP1_TOO_LARGE;
    return n;
}

/* Sets up the exchange for a fresh head and draws the faults. Returns 0, or
 * -1 when the connection must go now (a drawn reset). */
static int conn_begin(struct backend_conn *c, const struct http1_request *req)
{
    struct backend_worker *w = c->w;
    struct backend_exchange *x = &c->x;

    memset(x, 0, sizeof(*x));
    x->w = w;
    x->collect = c->collect;
    backend_route_classify(req, &x->route);
    x->method = req->method_id;
    x->minor_version = req->minor_version;
    x->head_only = req->method_id == HTTP1_M_HEAD;
    x->conn = (req->flags & HTTP1_F_CLOSE) ? BACKEND_REPLY_CLOSE
              : req->minor_version == 0    ? BACKEND_REPLY_KEEP10
                                           : BACKEND_REPLY_KEEP;
    c->hang = false;
    c->latency_ms = 0;
    c->fault_gen = 0;
    if (!x->route.control) {
        backend_worker_note_request(w);
        backend_fault_state_sync(w->shared->fault, &w->fault, &w->fault_gen);
        if (conn_draw(w, w->fault.reset_rate)) {
            backend_worker_note_fault(w, w->fault_gen);
            c->flags |= CONN_F_RESET;
            return -1;
        }
        c->hang = w->fault.hang;
        c->latency_ms = w->fault.latency_ms;
        x->fail = conn_draw(w, w->fault.fail_rate);
        if (c->hang || c->latency_ms > 0 || (x->fail && !x->route.fail_exempt))
            c->fault_gen = w->fault_gen;
    }
    c->body = req->body;
    c->body_left = req->content_length;
    http1_chunked_init(&c->chunked);
    if (w->shared->verbose)
        snprintf(c->line, sizeof(c->line), "%.*s %.*s", (int)req->method_len, req->method,
                 (int)(req->target_len < 100 ? req->target_len : 100), req->target);
    if (w->shared->record)
        return conn_record_begin(c, req);
    return 0;
}

/* Takes what the route needs from the head, then drops the head from the
 * input. Returns 0, 1 when refused (CLOSING now) or -1. */
static int conn_take_head_bytes(struct backend_conn *c, const struct http1_request *req,
                                const struct http1_header *hdrs, size_t head_len)
{
    struct backend_exchange *x = &c->x;
    struct evbuffer *in = conn_in(c);
    bool has_body = req->body != HTTP1_BODY_NONE &&
                    !(req->body == HTTP1_BODY_LENGTH && req->content_length == 0);

    if (x->route.body_use == BACKEND_BODY_COLLECT && req->body == HTTP1_BODY_LENGTH &&
        req->content_length > x->route.collect_max)
        return conn_refuse(c, 413, "request body too large for this path\n");
    if (x->route.id == BACKEND_ROUTE_UPGRADE) {
        const struct http1_header *u = http1_header_find(hdrs, req->num_headers, "Upgrade");
        if (u && evbuffer_add(c->collect, u->value, u->value_len) < 0)
            return -1;
    }
    if (x->route.id == BACKEND_ROUTE_ECHO) {
        x->head_len = head_len;
        if (evbuffer_remove_buffer(in, c->collect, head_len) != (int)head_len)
            return -1;
    } else if (evbuffer_drain(in, head_len) < 0) {
        return -1;
    }
    if (x->route.body_use == BACKEND_BODY_HASH) {
        if (!c->md && !(c->md = EVP_MD_CTX_new()))
            return -1;
        if (!EVP_DigestInit_ex(c->md, EVP_sha256(), NULL))
            return -1;
    }
    /* Without it, curl and others wait a second before sending the body. */
    if ((req->flags & HTTP1_F_EXPECT_CONTINUE) && has_body && req->minor_version == 1 && !c->hang &&
        evbuffer_add(conn_out(c), "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
        return -1;
    return 0;
}

/* Returns 1 when a head was taken (or refused), 0 when more bytes are
 * needed, -1 when the connection must go. */
static int conn_take_head(struct backend_conn *c)
{
    struct http1_header hdrs[HEADERS_MAX];
    struct http1_request req;
    int n = conn_parse_head(c, hdrs, &req);
    int rc;

    if (n == HTTP1_INCOMPLETE)
        return 0;
    if (n == HTTP1_BAD)
        return conn_refuse(c, 400, "malformed request\n");
    if (n < 0)
        return conn_refuse(c, 431, "request head too large\n");
    if (conn_begin(c, &req) < 0)
        return -1;
    rc = conn_take_head_bytes(c, &req, hdrs, (size_t)n);
    if (rc != 0)
        return rc;
    conn_set_state(c, CONN_BODY);
    return 1;
}

/* Moves n body bytes out of the input the way the route wants them. */
static int conn_consume(struct backend_conn *c, size_t n)
{
    struct evbuffer *in = conn_in(c);
    struct backend_exchange *x = &c->x;

    x->body_bytes += n;
    switch (x->route.body_use) {
    case BACKEND_BODY_HASH: {
        struct evbuffer_iovec v[16];
        size_t left = n;
        while (left > 0) {
            int k = evbuffer_peek(in, (ev_ssize_t)left, NULL, v, 16);
            size_t done = 0;
            for (int i = 0; i < k && i < 16 && done < left; i++) {
                size_t take = v[i].iov_len < left - done ? v[i].iov_len : left - done;
                if (!EVP_DigestUpdate(c->md, v[i].iov_base, take))
                    return -1;
                done += take;
            }
            if (done == 0)
                return -1; /* n was more than the input holds: a caller bug */
            evbuffer_drain(in, done);
            left -= done;
        }
        return 0;
    }
    case BACKEND_BODY_COLLECT:
        if (x->body_bytes > x->route.collect_max)
            return conn_refuse(c, 413, "request body too large for this path\n") < 0 ? -1 : 0;
        return evbuffer_remove_buffer(in, c->collect, n) == (int)n ? 0 : -1;
    case BACKEND_BODY_DISCARD:
    default:
        return evbuffer_drain(in, n);
    }
}

/* Reads chunked framing and data. Returns 1 when the body is complete, 0
 * when more is needed (or the request was refused), -1 to close. */
static int conn_take_chunked(struct backend_conn *c)
{
    struct evbuffer *in = conn_in(c);
    struct evbuffer_iovec v;

    while (c->state == CONN_BODY) {
        size_t len = evbuffer_get_length(in);
        ssize_t r;

        if (c->chunked.state == HTTP1_CHUNK_DONE)
            return 1;
        if (len == 0)
            return 0;
        if (c->chunked.state == HTTP1_CHUNK_DATA) {
            size_t n = c->chunked.data_left < len ? (size_t)c->chunked.data_left : len;
            if (conn_consume(c, n) < 0)
                return -1;
            http1_chunked_data_done(&c->chunked, n);
            continue;
        }
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return 0;
        r = http1_chunked_parse(&c->chunked, v.iov_base, v.iov_len);
        if (r < 0)
            return conn_refuse(c, 400, "malformed chunked body\n") < 0 ? -1 : 0;
        if (r == 0 && c->chunked.state != HTTP1_CHUNK_DATA && c->chunked.state != HTTP1_CHUNK_DONE)
            return -1; /* the decoder would spin: cannot happen with a sound decoder */
        evbuffer_drain(in, (size_t)r);
    }
    return 0;
}

static void conn_log_answer(const struct backend_conn *c)
{
    log_info("%s: %s -> %d (%s)", backend_reply_name(c->w->shared->reply), c->line, c->x.status,
             backend_route_name(c->x.route.id));
}

/* The answer is in the output: count it and move on to what follows. */
static int conn_after(struct backend_conn *c, enum backend_route_next next)
{
    backend_counter_bump(&c->w->counters.answered);
    if (c->fault_gen != 0)
        backend_worker_note_fault(c->w, c->fault_gen);
    if (c->w->shared->verbose)
        conn_log_answer(c);
    switch (next) {
    case BACKEND_NEXT_STREAM:
        c->stream_left = c->x.stream_len;
        c->stream_off = 0;
        bufferevent_setwatermark(c->bev, EV_WRITE, STREAM_LOW, 0);
        conn_set_state(c, CONN_STREAM);
        break;
    case BACKEND_NEXT_TUNNEL:
        conn_set_state(c, CONN_TUNNEL);
        break;
    case BACKEND_NEXT_CLOSE:
        conn_set_state(c, CONN_CLOSING);
        break;
    case BACKEND_NEXT_KEEP:
    default:
        conn_set_state(c, c->x.conn == BACKEND_REPLY_CLOSE ? CONN_CLOSING : CONN_HEAD);
        break;
    }
    return 1;
}

/* A TLS server name as a header value: visible ASCII only. */
static const char *conn_sni_shown(const char *sni)
{
    if (!sni || !*sni)
        return "-";
    for (const char *p = sni; *p; p++) {
        if (*p <= ' ' || *p > '~')
            return "?";
    }
    return sni;
}

/* Appends the answer to dst; on TLS connections with X-TLS-SNI and
 * X-TLS-Resumed right after the status line, so that a test sees what the
 * client offered. Returns what backend_route_answer returns. */
static int conn_route_answer(struct backend_conn *c, struct evbuffer *dst)
{
    SSL *ssl = (c->flags & CONN_F_TLS) ? bufferevent_openssl_get_ssl(c->bev) : NULL;
    struct evbuffer *tmp;
    struct evbuffer_ptr eol;
    size_t eol_len = 0;
    int next;

    if (!ssl)
        return backend_route_answer(&c->x, dst);
    if (!(tmp = evbuffer_new()))
        return -1;
    next = backend_route_answer(&c->x, tmp);
    eol = evbuffer_search_eol(tmp, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
    if (next < 0 || eol.pos < 0 ||
        evbuffer_remove_buffer(tmp, dst, (size_t)eol.pos + eol_len) < 0 ||
        evbuffer_add_printf(dst, "X-TLS-SNI: %s\r\nX-TLS-Resumed: %s\r\n",
                            conn_sni_shown(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)),
                            SSL_session_reused(ssl) ? "yes" : "no") < 0 ||
        evbuffer_add_buffer(dst, tmp) < 0)
        next = -1;
    evbuffer_free(tmp);
    return next;
}

/* The request is complete: answer it now, later, or never. */
static int conn_answer(struct backend_conn *c)
{
    struct backend_exchange *x = &c->x;
    int next;

    if (x->route.body_use == BACKEND_BODY_HASH && !EVP_DigestFinal_ex(c->md, x->sha256, NULL))
        return -1;
    if (c->w->shared->record && conn_record_request(c) < 0)
        return -1;
    if (c->hang) {
        backend_worker_note_fault(c->w, c->fault_gen);
        evbuffer_drain(c->collect, evbuffer_get_length(c->collect));
        conn_set_state(c, CONN_HANG);
        return 1;
    }
    if (c->latency_ms == 0) {
        next = conn_route_answer(c, conn_out(c));
        return next < 0 ? -1 : conn_after(c, (enum backend_route_next)next);
    }
    next = conn_route_answer(c, c->held);
    if (next < 0)
        return -1;
    struct timeval tv = {.tv_sec = c->latency_ms / 1000, .tv_usec = (c->latency_ms % 1000) * 1000};
    c->after = (enum backend_route_next)next;
    conn_set_state(c, CONN_DELAY);
    return evtimer_add(&c->timer, &tv) < 0 ? -1 : 1;
}

/* Returns 1 when the request was answered (or refused), 0 when more body is
 * needed, -1 to close. */
static int conn_take_body(struct backend_conn *c)
{
    struct evbuffer *in = conn_in(c);
    int rc;

    switch (c->body) {
    case HTTP1_BODY_LENGTH: {
        size_t len = evbuffer_get_length(in);
        size_t n = c->body_left < len ? (size_t)c->body_left : len;
        if (n > 0 && conn_consume(c, n) < 0)
            return -1;
        c->body_left -= n;
        if (c->state != CONN_BODY)
            return 1;
        if (c->body_left > 0)
            return 0;
        break;
    }
    case HTTP1_BODY_CHUNKED:
        rc = conn_take_chunked(c);
        if (rc <= 0 || c->state != CONN_BODY)
            return rc < 0 ? -1 : c->state != CONN_BODY;
        break;
    default:
        break;
    }
    return conn_answer(c);
}

/* Reads and answers every complete request in the input, in order. */
static int conn_process(struct backend_conn *c)
{
    while (c->state == CONN_HEAD || c->state == CONN_BODY) {
        int rc = c->state == CONN_HEAD ? conn_take_head(c) : conn_take_body(c);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
    }
    if (c->flags & CONN_F_EOF) {
        /* Nothing more will come: a request cut short cannot be answered. */
        if (c->state == CONN_BODY)
            return -1;
        if (c->state == CONN_HEAD)
            conn_set_state(c, CONN_CLOSING);
    }
    return 0;
}

/* Adds /__bytes data until the output holds STREAM_HIGH or the body ends. */
static int conn_stream_fill(struct backend_conn *c)
{
    struct evbuffer *out = conn_out(c);
    bool chunked = c->x.stream_chunked;

    while (c->stream_left > 0 && evbuffer_get_length(out) < STREAM_HIGH) {
        size_t n = c->stream_left < BACKEND_REPLY_CHUNK_MAX ? (size_t)c->stream_left
                                                            : BACKEND_REPLY_CHUNK_MAX;
        if (chunked && evbuffer_add_printf(out, "%zx\r\n", n) < 0)
            return -1;
        if (backend_reply_pattern_add(out, c->stream_off, n) < 0)
            return -1;
        if (chunked && evbuffer_add(out, "\r\n", 2) < 0)
            return -1;
        c->stream_off += n;
        c->stream_left -= n;
    }
    if (c->stream_left > 0)
        return 0;
    if (chunked && evbuffer_add(out, "0\r\n\r\n", 5) < 0)
        return -1;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    conn_set_state(c, c->x.conn == BACKEND_REPLY_CLOSE ? CONN_CLOSING : CONN_HEAD);
    return 0;
}

/* Does what the state calls for with the input at hand. */
static int conn_step(struct backend_conn *c)
{
    struct evbuffer *in = conn_in(c);

    switch (c->state) {
    case CONN_HEAD:
    case CONN_BODY:
        return conn_process(c);
    case CONN_STREAM:
        return conn_stream_fill(c);
    case CONN_TUNNEL:
        if (evbuffer_add_buffer(conn_out(c), in) < 0)
            return -1;
        if (c->flags & CONN_F_EOF)
            conn_set_state(c, CONN_CLOSING);
        return 0;
    case CONN_DELAY:
        return 0;
    case CONN_HANG:
    case CONN_CLOSING:
    case CONN_LINGER:
    default:
        return evbuffer_drain(in, evbuffer_get_length(in));
    }
}

/* Writes the output straight to the socket unless the write event already
 * waits for room; arms the write event for what the socket did not take. */
static int conn_flush(struct backend_conn *c)
{
    struct evbuffer *out = conn_out(c);
    int n, err;

    if (evbuffer_get_length(out) == 0 || (c->flags & CONN_F_WRITING))
        return 0;
    if (c->flags & CONN_F_TLS) {
        /* Only the bufferevent can encrypt: its write event does the writing. */
        c->flags |= CONN_F_WRITING;
        return bufferevent_enable(c->bev, EV_WRITE);
    }
    /* A socket bufferevent freezes its output's start so that only it
     * drains it; this write is its writecb's, done earlier. */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, c->fd);
    err = errno;
    evbuffer_freeze(out, 1);
    if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
        return -1; /* the client is gone (EPIPE, ECONNRESET) */
    if (evbuffer_get_length(out) > 0) {
        c->flags |= CONN_F_WRITING;
        return bufferevent_enable(c->bev, EV_WRITE);
    }
    return 0;
}

static void conn_pause(struct backend_conn *c)
{
    if ((c->flags & CONN_F_PAUSED) || evbuffer_get_length(conn_out(c)) <= OUT_HIGH)
        return;
    c->flags |= CONN_F_PAUSED;
    bufferevent_disable(c->bev, EV_READ);
}

static void conn_resume(struct backend_conn *c)
{
    if (!(c->flags & CONN_F_PAUSED))
        return;
    c->flags &= ~CONN_F_PAUSED;
    if (!(c->flags & CONN_F_EOF))
        bufferevent_enable(c->bev, EV_READ);
}

/* Everything is sent: send our FIN and wait (bounded) for the client's, so
 * that its unread bytes do not turn our close into a reset that could
 * destroy the answer before the client read it. */
static int conn_linger(struct backend_conn *c)
{
    struct timeval tv = {.tv_sec = LINGER_SEC, .tv_usec = 0};

    if (c->flags & CONN_F_EOF)
        return -1;
    /* close_notify first, so that a body delimited by the close reads as
     * whole. Best effort: the output is empty, so the alert goes straight
     * out, and one that does not fit is no worse than none. */
    if ((c->flags & CONN_F_TLS) && SSL_shutdown(bufferevent_openssl_get_ssl(c->bev)) < 0)
        ERR_clear_error();
    if (shutdown(c->fd, SHUT_WR) < 0)
        return -1;
    conn_set_state(c, CONN_LINGER);
    conn_resume(c);
    return evtimer_add(&c->timer, &tv);
}

/* Advances the connection as far as it goes without waiting. Returns -1
 * when it must be freed. */
static int conn_run(struct backend_conn *c)
{
    struct evbuffer *out = conn_out(c);

    for (int round = 0; round < RUN_ROUNDS; round++) {
        enum conn_state before = c->state;

        if (conn_step(c) < 0 || conn_flush(c) < 0)
            return -1;
        if (evbuffer_get_length(out) > 0) {
            conn_pause(c);
            return 0; /* conn_write_cb goes on */
        }
        conn_resume(c);
        if (c->state == CONN_CLOSING)
            return conn_linger(c);
        if (c->state != CONN_STREAM && c->state == before)
            return 0;
    }
    /* A fast reader of a long stream: give the other connections a turn. */
    bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    return 0;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct backend_conn *c = arg;

    if (conn_run(c) < 0)
        conn_free(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct backend_conn *c = arg;

    if ((c->flags & CONN_F_WRITING) && evbuffer_get_length(conn_out(c)) == 0) {
        c->flags &= ~CONN_F_WRITING;
        bufferevent_disable(bev, EV_WRITE);
    }
    if (conn_run(c) < 0)
        conn_free(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct backend_conn *c = arg;

    if (what & BEV_EVENT_ERROR) {
        log_debug("conn %d: %s", (int)c->fd, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        conn_free(c);
        return;
    }
    if (!(what & BEV_EVENT_EOF))
        return;
    c->flags |= CONN_F_EOF;
    if (c->state == CONN_HANG || c->state == CONN_LINGER) {
        conn_free(c);
        return;
    }
    if (conn_run(c) < 0)
        conn_free(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct backend_conn *c = arg;

    if (c->state == CONN_LINGER) {
        conn_free(c);
        return;
    }
    if (c->state == CONN_DELAY &&
        (evbuffer_add_buffer(conn_out(c), c->held) < 0 || conn_after(c, c->after) < 0)) {
        conn_free(c);
        return;
    }
    if (conn_run(c) < 0)
        conn_free(c);
}
