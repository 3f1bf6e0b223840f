/* backend_route.c - request classification and answers of sy-backend. */
#include "bench/backend_route.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "bench/backend_fault.h"
#include "bench/backend_worker.h"

#define M(m) (1u << (m))
#define METHODS_READ (M(HTTP1_M_GET) | M(HTTP1_M_HEAD))
#define UPGRADE_VALUE_MAX 512 /* longer Upgrade values get 400: no protocol name is that long */

static const char *const route_names[] = {
    [BACKEND_ROUTE_DEFAULT] = "default", [BACKEND_ROUTE_HEALTHZ] = "healthz",
    [BACKEND_ROUTE_FAULT] = "fault",     [BACKEND_ROUTE_STATS] = "stats",
    [BACKEND_ROUTE_SINK] = "sink",       [BACKEND_ROUTE_BYTES] = "bytes",
    [BACKEND_ROUTE_ECHO] = "echo",       [BACKEND_ROUTE_CLOSE] = "close",
    [BACKEND_ROUTE_STATUS] = "status",   [BACKEND_ROUTE_UPGRADE] = "upgrade",
    [BACKEND_ROUTE_ERROR] = "error",
};

const char *backend_route_name(enum backend_route_id id)
{
    return (unsigned)id < sizeof(route_names) / sizeof(route_names[0]) ? route_names[id] : "?";
}

static bool path_is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);

    return n == l && memcmp(p, lit, l) == 0;
}

static void refuse(struct backend_route *out, int status, const char *why, const char *allow)
{
    out->id = BACKEND_ROUTE_ERROR;
    out->status = status;
    out->error = why;
    out->allow = allow;
    out->body_use = BACKEND_BODY_DISCARD;
}

/* Keeps out's route when method is in mask, else turns it into a 405. */
static void allow_methods(struct backend_route *out, enum http1_method method, unsigned mask,
                          const char *allow)
{
    if (!(M(method) & mask))
        refuse(out, 405, "method not allowed on this path", allow);
}

/* Parses the decimal digits p[0..n) into *v, at most max. */
static int parse_u64(const char *p, size_t n, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;

    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(p[i] - '0');
        if (x > max)
            return -1;
    }
    *v = x;
    return 0;
}

/* Reads /__bytes's query q[0..n): n=BYTES and optionally chunked=0|1 and
 * close=0|1.
 * Returns NULL, or a static message naming what is wrong. */
static const char *bytes_query(const char *q, size_t n, struct backend_route *out)
{
    bool have_n = false;

    while (n > 0) {
        const char *amp = memchr(q, '&', n);
        size_t len = amp ? (size_t)(amp - q) : n;

        if (len >= 2 && memcmp(q, "n=", 2) == 0) {
            if (parse_u64(q + 2, len - 2, BACKEND_ROUTE_BYTES_MAX, &out->bytes_n) < 0)
                return "n must be a decimal number of bytes from 0 to 1099511627776";
            have_n = true;
        } else if (len == 9 && memcmp(q, "chunked=", 8) == 0 && (q[8] == '0' || q[8] == '1')) {
            out->bytes_chunked = q[8] == '1';
        } else if (len == 7 && memcmp(q, "close=", 6) == 0 && (q[6] == '0' || q[6] == '1')) {
            out->bytes_close = q[6] == '1';
        } else if (len > 0) {
            return "unknown query parameter (known: n=BYTES, chunked=0|1, close=0|1)";
        }
        q += len + (amp ? 1 : 0);
        n -= len + (amp ? 1 : 0);
    }
    return have_n ? NULL : "missing n=BYTES";
}

/* Classifies the control and test paths; anything else stays DEFAULT. */
static void classify_path(const struct http1_request *req, const char *p, size_t n, const char *q,
                          size_t qn, struct backend_route *out)
{
    enum http1_method m = req->method_id;
    uint64_t status;
    const char *why;

    if (path_is(p, n, "/healthz")) {
        out->id = BACKEND_ROUTE_HEALTHZ;
        out->fail_exempt = true;
        allow_methods(out, m, METHODS_READ, "GET, HEAD");
    } else if (path_is(p, n, "/__fault")) {
        out->id = BACKEND_ROUTE_FAULT;
        out->control = true;
        out->body_use = BACKEND_BODY_COLLECT;
        out->collect_max = BACKEND_ROUTE_FAULT_MAX;
        allow_methods(out, m, METHODS_READ | M(HTTP1_M_POST) | M(HTTP1_M_DELETE),
                      "GET, HEAD, POST, DELETE");
    } else if (path_is(p, n, "/__stats")) {
        out->id = BACKEND_ROUTE_STATS;
        out->control = true;
        allow_methods(out, m, METHODS_READ, "GET, HEAD");
    } else if (path_is(p, n, "/__sink")) {
        out->id = BACKEND_ROUTE_SINK;
        out->body_use = BACKEND_BODY_HASH;
        allow_methods(out, m, M(HTTP1_M_POST) | M(HTTP1_M_PUT), "POST, PUT");
    } else if (path_is(p, n, "/__bytes")) {
        out->id = BACKEND_ROUTE_BYTES;
        if ((why = bytes_query(q, qn, out)) != NULL)
            refuse(out, 400, why, NULL);
        else
            allow_methods(out, m, METHODS_READ, "GET, HEAD");
    } else if (path_is(p, n, "/__echo")) {
        out->id = BACKEND_ROUTE_ECHO;
        out->body_use = BACKEND_BODY_COLLECT;
        out->collect_max = BACKEND_ROUTE_ECHO_MAX;
    } else if (path_is(p, n, "/__close")) {
        out->id = BACKEND_ROUTE_CLOSE;
    } else if (n > 10 && memcmp(p, "/__status/", 10) == 0) {
        if (n != 13 || parse_u64(p + 10, 3, 599, &status) < 0 || status < 200)
            refuse(out, 400, "/__status/NNN takes a status from 200 to 599", NULL);
        else
            *out = (struct backend_route){.id = BACKEND_ROUTE_STATUS, .status = (int)status};
    }
}

void backend_route_classify(const struct http1_request *req, struct backend_route *out)
{
    const char *t = req->target;
    const char *q = memchr(t, '?', req->target_len);
    size_t n = q ? (size_t)(q - t) : req->target_len;
    size_t qn = q ? req->target_len - n - 1 : 0;

    memset(out, 0, sizeof(*out));
    if (req->method_id == HTTP1_M_CONNECT) {
        refuse(out, 405, "CONNECT is not served here", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        return;
    }
    classify_path(req, t, n, q ? q + 1 : NULL, qn, out);
    /* A protocol switch needs the connection to itself: with a body in the
     * way, the request is served as a plain one (RFC 9110 lets a server
     * ignore Upgrade). */
    if ((req->flags & HTTP1_F_UPGRADE) && req->body == HTTP1_BODY_NONE && !out->control &&
        out->id != BACKEND_ROUTE_ERROR)
        *out = (struct backend_route){.id = BACKEND_ROUTE_UPGRADE};
}

static int text(struct backend_exchange *x, struct evbuffer *out, int status, const char *body)
{
    x->status = status;
    return backend_reply_text(x->w->shared->reply, out, status, x->conn, x->head_only, "text/plain",
                              body, strlen(body));
}

/* Answers with a JSON document (new, freed here). */
static int json_answer(struct backend_exchange *x, struct evbuffer *out, char *doc)
{
    int rc;

    if (!doc)
        return -1;
    x->status = 200;
    rc = backend_reply_text(x->w->shared->reply, out, 200, x->conn, x->head_only,
                            "application/json", doc, strlen(doc));
    free(doc);
    return rc;
}

/* The refusal's reason as the body, with "Allow" on a 405. */
static int answer_error(struct backend_exchange *x, struct evbuffer *out)
{
    const struct backend_route *r = &x->route;
    char extra[128] = "";
    size_t len = strlen(r->error);

    x->status = r->status;
    if (r->allow)
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", r->allow);
    if (backend_reply_head(x->w->shared->reply, out, r->status, x->conn, "text/plain",
                           (int64_t)len + 1, extra) < 0)
        return -1;
    if (x->head_only)
        return 0;
    return evbuffer_add(out, r->error, len) < 0 || evbuffer_add(out, "\n", 1) < 0 ? -1 : 0;
}

/* GET shows the fault mode, POST changes it, DELETE restores the start-up one. */
static int answer_fault(struct backend_exchange *x, struct evbuffer *out)
{
    struct backend_worker *w = x->w;
    struct backend_fault_state *fs = w->shared->fault;
    struct backend_fault m;
    size_t len = evbuffer_get_length(x->collect);
    char err[256];

    if (x->method == HTTP1_M_POST) {
        const char *json = len ? (const char *)evbuffer_pullup(x->collect, -1) : "";
        int rc = json ? backend_fault_state_apply_json(fs, json, len, &m, err, sizeof(err)) : -1;

        evbuffer_drain(x->collect, len);
        if (!json)
            return -1;
        if (rc < 0) {
            size_t el = strlen(err);
            snprintf(err + el, sizeof(err) - el, "\n");
            return text(x, out, 400, err);
        }
    } else if (x->method == HTTP1_M_DELETE) {
        backend_fault_state_restore(fs, &m);
    }
    /* This worker sees its own change at once; the others at their next request. */
    backend_fault_state_sync(fs, &w->fault, &w->fault_gen);
    return json_answer(x, out, backend_fault_to_json(&w->fault));
}

/* A CLOCK_REALTIME time in ms as JSON (new): null when 0, that is never. */
static json_t *json_time_ms(uint64_t ms)
{
    return ms ? json_integer((json_int_t)ms) : json_null();
}

static int answer_stats(struct backend_exchange *x, struct evbuffer *out)
{
    struct backend_stats st;
    json_t *o;
    char *doc;

    backend_stats_sum(x->w->shared, &st);
    /* "o" steals the values, and frees them when the pack fails. */
    o = json_pack("{s:s, s:I, s:I, s:I, s:o, s:o}", "name", backend_reply_name(x->w->shared->reply),
                  "connections", (json_int_t)st.connections, "requests", (json_int_t)st.requests,
                  "active_connections", (json_int_t)st.active_connections, "first_fault_ms",
                  json_time_ms(st.first_fault_ms), "last_request_ms",
                  json_time_ms(st.last_request_ms));
    if (!o)
        return -1;
    doc = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return json_answer(x, out, doc);
}

static int answer_sink(struct backend_exchange *x, struct evbuffer *out)
{
    static const char hex[] = "0123456789abcdef";
    char digest[2 * BACKEND_ROUTE_SHA256_LEN + 1];
    char doc[160];

    for (size_t i = 0; i < BACKEND_ROUTE_SHA256_LEN; i++) {
        digest[2 * i] = hex[x->sha256[i] >> 4];
        digest[2 * i + 1] = hex[x->sha256[i] & 15];
    }
    digest[2 * BACKEND_ROUTE_SHA256_LEN] = '\0';
    snprintf(doc, sizeof(doc), "{\"bytes\":%" PRIu64 ",\"sha256\":\"%s\"}", x->body_bytes, digest);
    return json_answer(x, out, strdup(doc));
}

static int answer_bytes(struct backend_exchange *x, struct evbuffer *out)
{
    /* HTTP/1.0 has no chunked framing: such a client gets a length. */
    bool chunked = x->route.bytes_chunked && x->minor_version >= 1;
    int64_t len = chunked ? -1 : (int64_t)x->route.bytes_n;

    x->status = 200;
    if (x->route.bytes_close)
        x->conn = BACKEND_REPLY_CLOSE; /* a server that closes right after its answer */
    x->stream_len = x->route.bytes_n;
    x->stream_chunked = chunked;
    if (backend_reply_head(x->w->shared->reply, out, 200, x->conn, "text/plain", len,
                           chunked ? "Transfer-Encoding: chunked\r\n" : NULL) < 0)
        return -1;
    return x->head_only ? BACKEND_NEXT_KEEP : BACKEND_NEXT_STREAM;
}

/* The head as received (through its empty line), then the body. */
static int answer_echo(struct backend_exchange *x, struct evbuffer *out)
{
    size_t total = evbuffer_get_length(x->collect);
    char extra[96];

    x->status = 200;
    snprintf(extra, sizeof(extra), "X-Head-Bytes: %zu\r\nX-Body-Bytes: %" PRIu64 "\r\n",
             x->head_len, x->body_bytes);
    if (backend_reply_head(x->w->shared->reply, out, 200, x->conn, "application/octet-stream",
                           (int64_t)total, extra) < 0)
        return -1;
    if (x->head_only)
        return evbuffer_drain(x->collect, total);
    return evbuffer_add_buffer(out, x->collect);
}

/* "bye\n" with neither a length nor chunks: the close ends the body. */
static int answer_close(struct backend_exchange *x, struct evbuffer *out)
{
    x->status = 200;
    if (backend_reply_head(x->w->shared->reply, out, 200, BACKEND_REPLY_CLOSE, "text/plain", -1,
                           NULL) < 0)
        return -1;
    if (!x->head_only && evbuffer_add(out, "bye\n", 4) < 0)
        return -1;
    return BACKEND_NEXT_CLOSE;
}

static int answer_upgrade(struct backend_exchange *x, struct evbuffer *out)
{
    size_t len = evbuffer_get_length(x->collect);
    const char *value = len ? (const char *)evbuffer_pullup(x->collect, -1) : NULL;
    char extra[UPGRADE_VALUE_MAX + 48];
    int rc;

    if (!value || len > UPGRADE_VALUE_MAX) {
        evbuffer_drain(x->collect, len);
        return text(x, out, 400, "Upgrade value missing or too long\n");
    }
    snprintf(extra, sizeof(extra), "Connection: Upgrade\r\nUpgrade: %.*s\r\n", (int)len, value);
    evbuffer_drain(x->collect, len);
    x->status = 101;
    /* KEEP: the Connection header is the one in extra. */
    rc = backend_reply_head(x->w->shared->reply, out, 101, BACKEND_REPLY_KEEP, NULL, -1, extra);
    return rc < 0 ? -1 : BACKEND_NEXT_TUNNEL;
}

static int answer_status(struct backend_exchange *x, struct evbuffer *out)
{
    char body[64];

    snprintf(body, sizeof(body), "%d %s\n", x->route.status, http1_reason(x->route.status));
    return text(x, out, x->route.status, body);
}

int backend_route_answer(struct backend_exchange *x, struct evbuffer *out)
{
    const struct backend_fault *f = &x->w->fault;
    int rc;

    if (x->fail && !x->route.control && !x->route.fail_exempt) {
        evbuffer_drain(x->collect, evbuffer_get_length(x->collect));
        rc = text(x, out, f->fail_status, "injected failure\n");
        return rc < 0 ? -1 : BACKEND_NEXT_KEEP;
    }
    switch (x->route.id) {
    case BACKEND_ROUTE_DEFAULT:
        x->status = 200;
        rc = backend_reply_default(x->w->shared->reply, out, x->conn, x->head_only);
        break;
    case BACKEND_ROUTE_HEALTHZ:
        rc = text(x, out, f->health_status, "ok\n");
        break;
    case BACKEND_ROUTE_FAULT:
        rc = answer_fault(x, out);
        break;
    case BACKEND_ROUTE_STATS:
        rc = answer_stats(x, out);
        break;
    case BACKEND_ROUTE_SINK:
        rc = answer_sink(x, out);
        break;
    case BACKEND_ROUTE_BYTES:
        return answer_bytes(x, out);
    case BACKEND_ROUTE_ECHO:
        rc = answer_echo(x, out);
        break;
    case BACKEND_ROUTE_CLOSE:
        return answer_close(x, out);
    case BACKEND_ROUTE_STATUS:
        rc = answer_status(x, out);
        break;
    case BACKEND_ROUTE_UPGRADE:
        return answer_upgrade(x, out);
    case BACKEND_ROUTE_ERROR:
    default:
        rc = answer_error(x, out);
        break;
    }
    return rc < 0 ? -1 : BACKEND_NEXT_KEEP;
}
