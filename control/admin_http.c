/* admin_http.c - the admin HTTP listener: its limits, its two routes, its
 * replies. */
#include "control/admin_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include "conf/log.h"
#include "control/metrics.h"
#include "control/status.h"

#define ACCEPT_PAUSE_MS 100 /* after EMFILE and the like: let connections close */
#define HTTP_METHOD_NOT_ALLOWED 405

/* Every method evhttp parses: the handler answers each (405 for all but GET
 * and HEAD) instead of evhttp's 501 for the ones it was not told about. */
#define EVERY_METHOD                                                                               \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

struct admin_http {
    struct evhttp *http;
    const struct status_sources *status;
};

/* Answers one request to a known path. */
typedef void (*admin_serve_cb)(struct admin_http *ah, struct evhttp_request *req);

static void set_content_type(struct evhttp_request *req, const char *type)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
}

/* Sends the reply with the request's output buffer as its body. evhttp
 * (2.1) would send a body after HEAD too: a HEAD reply gets only its
 * length. */
static void send_reply(struct evhttp_request *req, int code, const char *reason)
{
    struct evbuffer *body = evhttp_request_get_output_buffer(req);

    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char length[32];
        snprintf(length, sizeof(length), "%zu", evbuffer_get_length(body));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", length);
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    evhttp_send_reply(req, code, reason, NULL);
}

/* A short text reply (errors), in place of anything written before. */
static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *body = evhttp_request_get_output_buffer(req);

    evbuffer_drain(body, evbuffer_get_length(body));
    set_content_type(req, "text/plain; charset=utf-8");
    if (evbuffer_add(body, text, strlen(text)) < 0)
        log_warn("admin.http: out of memory for a %d reply", code);
    send_reply(req, code, reason);
}

static void serve_metrics(struct admin_http *ah, struct evhttp_request *req)
{
    struct metrics_input in;

    if (metrics_collect(ah->status, &in) < 0) {
        reply_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
        return;
    }
    int rc = metrics_render(&in, evhttp_request_get_output_buffer(req));
    metrics_input_clear(&in);
    if (rc < 0) {
        reply_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
        return;
    }
    set_content_type(req, METRICS_CONTENT_TYPE);
    send_reply(req, HTTP_OK, "OK");
}

static void serve_status(struct admin_http *ah, struct evhttp_request *req)
{
    json_t *reply = status_reply(ah->status);
    char *text = reply != NULL ? json_dumps(reply, JSON_COMPACT) : NULL;
    struct evbuffer *body = evhttp_request_get_output_buffer(req);

    json_decref(reply);
    if (text == NULL || evbuffer_add_printf(body, "%s\n", text) < 0) {
        free(text);
        reply_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
        return;
    }
    free(text);
    set_content_type(req, "application/json");
    send_reply(req, HTTP_OK, "OK");
}

static admin_serve_cb route_of(const char *path)
{
    static const struct {
        const char *path;
        admin_serve_cb serve;
    } routes[] = {
        {"/metrics", serve_metrics},
        {"/api/status", serve_status},
    };

    for (size_t i = 0; path != NULL && i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) == 0)
            return routes[i].serve;
    }
    return NULL;
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    admin_serve_cb serve = route_of(path);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);

    if (serve == NULL) {
        reply_text(req, HTTP_NOTFOUND, "Not Found", "not found: try /metrics or /api/status\n");
        return;
    }
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_text(req, HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed",
                   "method not allowed: use GET or HEAD\n");
        return;
    }
    serve(arg, req);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    evconnlistener_enable(arg);
}

/* accept() failed. Out of descriptors or memory: pause rather than spin on
 * a socket that stays readable, as the control socket does. (arg is evhttp's
 * own: the listener's callbacks share it.) The pause is a one-shot event of
 * the base: it cannot outlive the listener, which is freed only once the
 * loop no longer runs. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};

    log_warn("admin.http: accept: %s: pausing for %d ms",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), ACCEPT_PAUSE_MS);
    evconnlistener_disable(l);
    if (event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, accept_resume_cb, l, &pause) <
        0)
        evconnlistener_enable(l);
}

/* Listens on addr and hands the socket to ah->http. Returns 0, or -1 with
 * the reason logged. */
static int admin_http_listen(struct admin_http *ah, struct event_base *base,
                             const struct conf_addr *addr)
{
    int fd = conf_addr_listen(addr, false, ADMIN_HTTP_BACKLOG);
    struct evconnlistener *l;

    if (fd < 0) {
        log_error("admin.http: cannot listen on %s: %s", addr->text, strerror(errno));
        return -1;
    }
    /* Backlog 0: conf_addr_listen() already listens. */
    if ((l = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, 0, fd)) == NULL) {
        close(fd);
        log_error("admin.http: out of memory");
        return -1;
    }
    if (evhttp_bind_listener(ah->http, l) == NULL) {
        evconnlistener_free(l);
        log_error("admin.http: out of memory");
        return -1;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    return 0;
}

static void admin_http_limit(struct evhttp *http)
{
    evhttp_set_max_headers_size(http, ADMIN_HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(http, ADMIN_HTTP_MAX_BODY);
    evhttp_set_timeout(http, ADMIN_HTTP_TIMEOUT_S);
    evhttp_set_allowed_methods(http, EVERY_METHOD);
}

struct admin_http *admin_http_new(struct event_base *base, const struct conf_addr *addr,
                                  const struct status_sources *status)
{
    struct admin_http *ah = calloc(1, sizeof(*ah));

    if (ah == NULL || (ah->http = evhttp_new(base)) == NULL) {
        log_error("admin.http: out of memory");
        goto fail;
    }
    ah->status = status;
    admin_http_limit(ah->http);
    evhttp_set_gencb(ah->http, request_cb, ah);
    if (admin_http_listen(ah, base, addr) < 0)
        goto fail;
    log_info("admin http on %s (/metrics, /api/status)", addr->text);
    return ah;
fail:
    admin_http_free(ah);
    return NULL;
}

void admin_http_free(struct admin_http *ah)
{
    if (ah == NULL)
        return;
    if (ah->http != NULL)
        evhttp_free(ah->http); /* and its listener */
    free(ah);
}
