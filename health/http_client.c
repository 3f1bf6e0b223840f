/* http_client.c - one HTTP/1.1 request, its answer judged (see http_client.h).
 *
 * One struct http_client per exchange, with an explicit phase: CONNECTING,
 * HANDSHAKE (TLS only), HEAD (waiting for the response head), BODY
 * (searching the body for expect_body), then FAILED (a failure found while
 * starting, told from the loop) or DONE. One timer, `deadline`, ends an
 * exchange that outlives its timeout; it also carries an early failure to
 * the loop with a zero delay, so that the owner never hears of the end from
 * inside the start call.
 *
 * The connection is a plain bufferevent over a socket connected here, so
 * that a refused or unreachable server is reported as such; the response
 * head goes through the HTTP/1.1 parser the data plane uses (a library of its
 * own that depends on nothing), chunked bodies through its decoder.
 *
 * Over TLS, once connected, an OpenSSL filter bufferevent wraps the socket's
 * and runs the handshake; the request waits until then. A filter rather than
 * an OpenSSL socket bufferevent, so that connect failures keep their own
 * text: a check's few bytes do not need the faster path.
 *
 * The done callback may free the client, so every path that can reach
 * finish() leaves the client alone afterwards.
 */
#include "health/http_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/http1.h"
#include "proxy/http1_chunked.h"
#include "proxy/tls_client.h"

#define HEAD_MAX 16384  /* bytes of a response head */
#define HEADERS_MAX 64  /* fields of a response head */
#define FRAMING_MAX 512 /* chunked framing bytes handed to the decoder at once */

enum http_client_phase {
    CLIENT_CONNECTING, /* connect under way; the request waits in `request` */
    CLIENT_HANDSHAKE,  /* TLS: connected, handshake under way; the request waits in the output */
    CLIENT_HEAD,       /* request sent or on its way, waiting for the response head */
    CLIENT_BODY,       /* status as expected; searching the body for expect_body */
    CLIENT_FAILED,     /* failed while starting; the deadline tells the owner */
    CLIENT_DONE,       /* the owner was told */
};

struct http_client {
    http_client_done_cb cb;
    void *cb_arg;
    enum http_client_phase phase;
    struct bufferevent *bev;  /* NULL once the exchange has ended */
    struct evbuffer *request; /* the request until it goes to the output */
    SSL *ssl;                 /* TLS: set up at the start, NULL once the handshake owns it */
    struct event *deadline;
    enum http1_method method; /* whether the answer can carry a body */
    unsigned expect_status;
    char *expect_body; /* NULL: any body */
    uint32_t timeout_ms;
    int status;              /* CLIENT_BODY: the response status */
    enum http1_body framing; /* CLIENT_BODY: how the body ends */
    uint64_t body_left;      /* HTTP1_BODY_LENGTH: bytes still to come */
    struct http1_chunked chunked;
    struct evbuffer *body; /* the body so far, at most HTTP_CLIENT_BODY_MAX bytes */
    char result[HTTP_CLIENT_TEXT_MAX];
};

static struct timeval ms_timeval(uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    return tv;
}

/* ------------------------------------------------------------------------ */
/* Outcomes */

static void close_connection(struct http_client *c)
{
    /* libevent defers the release of a bufferevent freed from its own
     * callback until the callback has returned. */
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    event_del(c->deadline);
}

/* Tells the owner the result, who may free c: the caller must not touch c
 * afterwards. */
static void report(struct http_client *c, bool passed)
{
    c->phase = CLIENT_DONE;
    c->cb(passed, c->result, c->cb_arg);
}

/* Ends the exchange and reports it (see report()). */
static void __attribute__((format(printf, 3, 4)))
finish(struct http_client *c, bool passed, const char *fmt, ...)
{
    va_list ap;

    close_connection(c);
    va_start(ap, fmt);
    vsnprintf(c->result, sizeof(c->result), fmt, ap);
    va_end(ap);
    report(c, passed);
}

/* A failure found before the loop runs: kept for the deadline to tell. */
static void __attribute__((format(printf, 2, 3)))
fail_early(struct http_client *c, const char *fmt, ...)
{
    static const struct timeval now = {0, 0};
    va_list ap;

    close_connection(c);
    va_start(ap, fmt);
    vsnprintf(c->result, sizeof(c->result), fmt, ap);
    va_end(ap);
    c->phase = CLIENT_FAILED;
    event_add(c->deadline, &now);
}

static const char *connect_error(char *buf, size_t size, int err)
{
    if (err == ECONNREFUSED)
        snprintf(buf, size, "connect refused");
    else
        snprintf(buf, size, "connect failed: %s", strerror(err));
    return buf;
}

static void body_mismatch(struct http_client *c)
{
    finish(c, false, "status %d, body does not contain \"%.40s\"", c->status, c->expect_body);
}

/* ------------------------------------------------------------------------ */
/* The response */

/* Moves chunk data from in to the body until the body is full, in runs dry
 * or the message ends. Returns 1 when the message ended, 0 when more is to
 * come, -1 on bad framing. */
static int take_chunked(struct http_client *c, struct evbuffer *in)
{
    while (evbuffer_get_length(in) > 0 && c->chunked.state != HTTP1_CHUNK_DONE) {
        size_t avail = evbuffer_get_length(in);
        if (c->chunked.state == HTTP1_CHUNK_DATA) {
            size_t room = HTTP_CLIENT_BODY_MAX - evbuffer_get_length(c->body);
            size_t n = avail < room ? avail : room;
            if (n > c->chunked.data_left)
                n = (size_t)c->chunked.data_left;
            if (n == 0)
                return 0; /* the body is full: the caller concludes */
            evbuffer_remove_buffer(in, c->body, n);
            http1_chunked_data_done(&c->chunked, n);
            continue;
        }
        size_t n = avail < FRAMING_MAX ? avail : FRAMING_MAX;
        ssize_t used =
            http1_chunked_parse(&c->chunked, (const char *)evbuffer_pullup(in, (ssize_t)n), n);
        if (used < 0)
            return -1;
        evbuffer_drain(in, (size_t)used);
        if (used == 0)
            return 0;
    }
    return c->chunked.state == HTTP1_CHUNK_DONE;
}

/* Moves body bytes from in to c->body as the framing allows: 1 when the
 * body ended, 0 when more may come, -1 on bad framing. */
static int take_body(struct http_client *c, struct evbuffer *in)
{
    size_t room = HTTP_CLIENT_BODY_MAX - evbuffer_get_length(c->body);
    size_t n = evbuffer_get_length(in) < room ? evbuffer_get_length(in) : room;

    switch (c->framing) {
    case HTTP1_BODY_NONE:
        return 1;
    case HTTP1_BODY_LENGTH:
        if (n > c->body_left)
            n = (size_t)c->body_left;
        evbuffer_remove_buffer(in, c->body, n);
        c->body_left -= n;
        return c->body_left == 0;
    case HTTP1_BODY_CHUNKED:
        return take_chunked(c, in);
    case HTTP1_BODY_CLOSE:
        evbuffer_remove_buffer(in, c->body, n);
        return 0; /* ends at EOF */
    }
    return -1;
}

static bool body_matches(const struct http_client *c)
{
    return evbuffer_search(c->body, c->expect_body, strlen(c->expect_body), NULL).pos >= 0;
}

/* Reads the body: true while the exchange goes on, false once it ended. */
static bool read_body(struct http_client *c, struct evbuffer *in)
{
    int ended = take_body(c, in);

    if (ended < 0)
        finish(c, false, "status %d, bad chunked body", c->status);
    else if (body_matches(c))
        finish(c, true, "ok: status %d, body matches", c->status);
    else if (ended || evbuffer_get_length(c->body) >= HTTP_CLIENT_BODY_MAX)
        body_mismatch(c);
    else
        return true;
    return false;
}

/* Judges a complete head: its status, then whether the body must be read.
 * Returns true when the body is to be read, false when the exchange ended. */
static bool judge_head(struct http_client *c, const struct http1_response *res)
{
    if ((unsigned)res->status != c->expect_status) {
        finish(c, false, "status %d, expected %u", res->status, c->expect_status);
        return false;
    }
    if (c->expect_body == NULL) {
        finish(c, true, "ok: status %d", res->status);
        return false;
    }
    c->phase = CLIENT_BODY;
    c->status = res->status;
    c->framing = res->body;
    c->body_left = res->content_length;
    http1_chunked_init(&c->chunked);
    return true;
}

/* Reads the head: true while the exchange goes on, false once it ended. */
static bool read_head(struct http_client *c, struct evbuffer *in)
{
    struct http1_header headers[HEADERS_MAX];
    struct http1_response res;

    /* Interim (1xx) answers are skipped: each drains its own head, so the
     * loop ends when the input does. */
    for (;;) {
        size_t len = evbuffer_get_length(in);
        size_t n = len < HEAD_MAX ? len : HEAD_MAX;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)n);
        int r = http1_parse_response(p, n, HEAD_MAX, headers, HEADERS_MAX, c->method, &res);

        if (r == HTTP1_INCOMPLETE)
            return true;
        if (r < 0) {
            finish(c, false,
                   r == HTTP1_TOO_LARGE ? "response head too large" : "malformed response head");
            return false;
        }
        evbuffer_drain(in, (size_t)r);
        if (res.status >= 200)
            return judge_head(c, &res);
    }
}

/* Judges what came in: true while the exchange goes on, false once it
 * ended (c may be gone then). */
static bool take_input(struct http_client *c, struct evbuffer *in)
{
    if (c->phase == CLIENT_HEAD && !read_head(c, in))
        return false;
    return c->phase != CLIENT_BODY || read_body(c, in);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)take_input(arg, bufferevent_get_input(bev));
}

/* ------------------------------------------------------------------------ */
/* TLS */

/* Why the handshake failed. libevent has moved OpenSSL's error queue into
 * the bufferevent by now; a failed verification is still on the SSL. With
 * verification off, its result says nothing about the failure. */
static const char *handshake_failure(struct http_client *c, short what, int err, char *buf,
                                     size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    unsigned long tls_err = bufferevent_get_openssl_error(c->bev);
    const char *reason = tls_err != 0 ? ERR_reason_error_string(tls_err) : NULL;

    if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) && SSL_get_verify_result(ssl) != X509_V_OK)
        return tls_client_failure(ssl, buf, len);
    if (reason != NULL)
        snprintf(buf, len, "TLS handshake failed: %s", reason);
    else if ((what & BEV_EVENT_EOF) || err == 0)
        snprintf(buf, len, "connection closed during the TLS handshake");
    else
        snprintf(buf, len, "TLS handshake failed: %s", strerror(err));
    return buf;
}

/* Why a read failed: OpenSSL's reason over TLS when it has one, else the
 * socket's. */
static const char *read_failure(struct http_client *c, int err)
{
    unsigned long tls_err = bufferevent_get_openssl_error(c->bev); /* 0 on a plain one */
    const char *reason = tls_err != 0 ? ERR_reason_error_string(tls_err) : NULL;

    return reason != NULL ? reason : strerror(err);
}

static void event_cb(struct bufferevent *bev, short what, void *arg);

/* Wraps the connected socket's bufferevent in TLS; the request waits in the
 * new output until the handshake is done. Returns 0, or -1 when out of
 * memory. */
static int start_tls(struct http_client *c)
{
    SSL *ssl = c->ssl;
    struct bufferevent *tls;

    c->ssl = NULL; /* BEV_OPT_CLOSE_ON_FREE: taken, even when no filter is made */
    tls = bufferevent_openssl_filter_new(bufferevent_get_base(c->bev), c->bev, ssl,
                                         BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (tls == NULL)
        return -1;
    c->bev = tls; /* frees the socket's bufferevent with its own */
    c->phase = CLIENT_HANDSHAKE;
    /* A server that closes without close_notify after its answer is
     * HTTP's to judge, as on a plain connection. */
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    bufferevent_setcb(tls, read_cb, NULL, event_cb, c);
    if (evbuffer_add_buffer(bufferevent_get_output(tls), c->request) < 0 ||
        bufferevent_enable(tls, EV_READ | EV_WRITE) < 0)
        return -1;
    return 0;
}

/* A new SSL for req's server, its SNI and name to verify set; NULL when out
 * of memory. */
static SSL *tls_new(const struct http_client_request *req)
{
    SSL *ssl = SSL_new(req->tls_ctx);

    if (ssl != NULL && tls_client_prepare(ssl, req->tls, req->addr) < 0) {
        SSL_free(ssl);
        ssl = NULL;
    }
    if (ssl == NULL)
        ERR_clear_error();
    return ssl;
}

/* ------------------------------------------------------------------------ */
/* Events */

/* The socket connected (a TLS handshake starts) or the handshake ended well
 * (the request goes out). */
static void connected(struct http_client *c)
{
    if (c->phase == CLIENT_CONNECTING && c->ssl != NULL) {
        if (start_tls(c) < 0)
            finish(c, false, "out of memory");
        return;
    }
    c->phase = CLIENT_HEAD;
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct http_client *c = arg;
    int err = EVUTIL_SOCKET_ERROR(); /* read before anything else can change it */
    char text[HTTP_CLIENT_TEXT_MAX];

    if (what & BEV_EVENT_CONNECTED) {
        connected(c);
        return;
    }
    /* An OpenSSL bufferevent that reads the last records and the close in
     * one go tells of the close before it calls the read callback for them. */
    if (!take_input(c, bufferevent_get_input(bev)))
        return;
    switch (c->phase) {
    case CLIENT_CONNECTING:
        finish(c, false, "%s", connect_error(text, sizeof(text), err));
        break;
    case CLIENT_HANDSHAKE:
        finish(c, false, "%s", handshake_failure(c, what, err, text, sizeof(text)));
        break;
    case CLIENT_HEAD:
        if (what & BEV_EVENT_EOF)
            finish(c, false, "connection closed before the response head");
        else
            finish(c, false, "read failed: %s", read_failure(c, err));
        break;
    case CLIENT_BODY:
        /* The body ended early or at EOF: what came holds no match. */
        body_mismatch(c);
        break;
    case CLIENT_FAILED:
    case CLIENT_DONE:
        break;
    }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_client *c = arg;

    if (c->phase == CLIENT_FAILED)
        report(c, false);
    else if (c->phase == CLIENT_HANDSHAKE)
        finish(c, false, "timeout after %u ms in the TLS handshake", c->timeout_ms);
    else if (c->phase != CLIENT_DONE)
        finish(c, false, "timeout after %u ms", c->timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* Starting */

/* Writes req's request head into out. Returns 0, or -1 when out of memory. */
static int compose_request(struct evbuffer *out, const struct http_client_request *req)
{
    int n = evbuffer_add_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n",
                                req->method, req->path, req->addr->text);

    for (size_t i = 0; n >= 0 && i < req->nheaders; i++)
        n = evbuffer_add_printf(out, "%s: %s\r\n", req->headers[i].name, req->headers[i].value);
    if (n >= 0 && req->user_agent != NULL)
        n = evbuffer_add_printf(out, "User-Agent: %s\r\n", req->user_agent);
    return n < 0 || evbuffer_add(out, "\r\n", 2) < 0 ? -1 : 0;
}

/* Connects here rather than in libevent so that a refusal on the spot is
 * reported with its errno; a connect in progress is handed to the
 * bufferevent, which reports its end as CONNECTED or ERROR. A plain request
 * waits in the output for the connect, a TLS one for the handshake. */
static void connect_and_send(struct http_client *c, struct event_base *base,
                             const struct http_client_request *req)
{
    const struct sockaddr *sa = (const struct sockaddr *)&req->addr->ss;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    char text[HTTP_CLIENT_TEXT_MAX];

    if (fd < 0) {
        fail_early(c, "socket: %s", strerror(errno));
        return;
    }
    if (connect(fd, sa, req->addr->len) < 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        fail_early(c, "%s", connect_error(text, sizeof(text), err));
        return;
    }
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        fail_early(c, "out of memory");
        return;
    }
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    if (bufferevent_socket_connect(c->bev, NULL, 0) < 0 ||
        (c->ssl == NULL && evbuffer_add_buffer(bufferevent_get_output(c->bev), c->request) < 0) ||
        bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
        fail_early(c, "out of memory");
}

/* The parser must know a HEAD answer: it has a length but no body. */
static enum http1_method method_of(const char *method)
{
    if (strcmp(method, "HEAD") == 0)
        return HTTP1_M_HEAD;
    if (strcmp(method, "CONNECT") == 0)
        return HTTP1_M_CONNECT;
    return strcmp(method, "GET") == 0 ? HTTP1_M_GET : HTTP1_M_OTHER;
}

/* Everything an exchange needs before it connects. Returns 0, or -1 when out
 * of memory. */
static int client_init(struct http_client *c, struct event_base *base,
                       const struct http_client_request *req)
{
    c->phase = CLIENT_CONNECTING;
    c->method = method_of(req->method);
    c->expect_status = req->expect_status;
    c->timeout_ms = req->timeout_ms;
    c->deadline = evtimer_new(base, deadline_cb, c);
    c->body = evbuffer_new();
    c->request = evbuffer_new();
    c->expect_body = req->expect_body != NULL ? strdup(req->expect_body) : NULL;
    if (c->deadline == NULL || c->body == NULL || c->request == NULL ||
        (req->expect_body != NULL && c->expect_body == NULL) ||
        compose_request(c->request, req) < 0)
        return -1;
    if (req->tls_ctx != NULL && (c->ssl = tls_new(req)) == NULL)
        return -1;
    return 0;
}

struct http_client *http_client_start(struct event_base *base,
                                      const struct http_client_request *req, http_client_done_cb cb,
                                      void *arg)
{
    struct http_client *c = calloc(1, sizeof(*c));
    struct timeval timeout = ms_timeval(req->timeout_ms);

    if (c == NULL)
        return NULL;
    c->cb = cb;
    c->cb_arg = arg;
    if (client_init(c, base, req) < 0) {
        http_client_free(c);
        return NULL;
    }
    event_add(c->deadline, &timeout);
    connect_and_send(c, base, req);
    return c;
}

void http_client_free(struct http_client *c)
{
    if (c == NULL)
        return;
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    SSL_free(c->ssl); /* NULL once the handshake took it */
    if (c->deadline != NULL)
        event_free(c->deadline);
    if (c->body != NULL)
        evbuffer_free(c->body);
    if (c->request != NULL)
        evbuffer_free(c->request);
    free(c->expect_body);
    free(c);
}
