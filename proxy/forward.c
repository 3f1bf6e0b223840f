/* forward.c - rewriting heads on the way through. */
#include "proxy/forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

static bool name_is(const struct http1_header *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

#define NAME_IS(h, lit) name_is((h), lit, sizeof(lit) - 1)

/* True when the comma-separated list has an element equal to tok[0..len). */
static bool list_has_n(const char *v, size_t vlen, const char *tok, size_t len)
{
    size_t i = 0;

    while (i < vlen) {
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < vlen && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == len && strncasecmp(v + start, tok, len) == 0)
            return true;
    }
    return false;
}

/* Fields that describe one connection, not the message, plus those the
 * message's own Connection headers name. The framing fields and Host are
 * never dropped, whatever Connection says: we relay the body by the framing
 * we parsed, so removing Content-Length would let the next hop read the
 * body as a second request (smuggling). */
static bool is_hop_by_hop(const struct http1_header *h, const struct http1_header *all, size_t n,
                          bool upgrade)
{
    if (NAME_IS(h, "connection") || NAME_IS(h, "keep-alive") || NAME_IS(h, "proxy-connection") ||
        NAME_IS(h, "te") || NAME_IS(h, "trailer"))
        return true;
    if (NAME_IS(h, "upgrade"))
        return !upgrade;
    if (NAME_IS(h, "transfer-encoding") || NAME_IS(h, "content-length") || NAME_IS(h, "host"))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (NAME_IS(&all[i], "connection") &&
            list_has_n(all[i].value, all[i].value_len, h->name, h->name_len))
            return true;
    }
    return false;
}

static void add_field(struct evbuffer *out, const struct http1_header *h)
{
    evbuffer_add(out, h->name, h->name_len);
    evbuffer_add(out, ": ", 2);
    evbuffer_add(out, h->value, h->value_len);
    evbuffer_add(out, "\r\n", 2);
}

/* Every X-Forwarded-For value the client sent, in order, then the client. */
static void add_forwarded_for(struct evbuffer *out, const struct http1_request *req,
                              const char *client_ip)
{
    evbuffer_add(out, "X-Forwarded-For: ", 17);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (NAME_IS(h, "x-forwarded-for") && h->value_len > 0) {
            evbuffer_add(out, h->value, h->value_len);
            evbuffer_add(out, ", ", 2);
        }
    }
    evbuffer_add(out, client_ip, strlen(client_ip));
    evbuffer_add(out, "\r\n", 2);
}

/* Length of the "http://" or "https://" that starts an absolute-form
 * target (the parser accepts no other scheme); 0 for the other forms. */
static size_t absolute_scheme_len(const char *t, size_t n)
{
    if (n > 7 && strncasecmp(t, "http://", 7) == 0)
        return 7;
    if (n > 8 && strncasecmp(t, "https://", 8) == 0)
        return 8;
    return 0;
}

/* Writes the request line. An absolute-form target goes on in origin-form
 * and its authority is stored in *host (borrowed from req): RFC 9112 3.2.2
 * has us replace the client's Host with it, so that no server behind us
 * can read a Host that differs from the target. Returns true when *host
 * was set. */
static bool add_request_line(struct evbuffer *out, const struct http1_request *req,
                             struct http1_header *host)
{
    const char *t = req->target;
    size_t n = req->target_len;
    size_t skip = absolute_scheme_len(t, n);

    evbuffer_add(out, req->method, req->method_len);
    evbuffer_add(out, " ", 1);
    if (skip > 0) {
        size_t end = skip;
        while (end < n && t[end] != '/' && t[end] != '?')
            end++;
        *host = (struct http1_header){"Host", 4, t + skip, end - skip};
        t += end;
        n -= end;
        if (n == 0) /* RFC 9112 3.2.4: an empty path is "*" for OPTIONS, else "/" */
            evbuffer_add(out, req->method_id == HTTP1_M_OPTIONS ? "*" : "/", 1);
        else if (t[0] == '?')
            evbuffer_add(out, "/", 1);
    }
    evbuffer_add(out, t, n);
    /* An HTTP/1.0 client's request stays 1.0, so the upstream answers in a
     * form that client understands (no chunked), kept alive explicitly. */
    if (req->minor_version == 0)
        evbuffer_add(out, " HTTP/1.0\r\nConnection: keep-alive\r\n", 35);
    else
        evbuffer_add(out, " HTTP/1.1\r\n", 11);
    return skip > 0;
}

/* Fields the proxy writes itself rather than passing on. Content-Length
 * goes once, as the number we parsed: "5, 5", two equal lines or "005"
 * are valid but a laxer next hop might read them otherwise. */
static bool is_rewritten(const struct http1_header *h, bool host_from_target)
{
    return NAME_IS(h, "x-forwarded-for") || NAME_IS(h, "x-forwarded-proto") ||
           NAME_IS(h, "content-length") || (host_from_target && NAME_IS(h, "host"));
}

int forward_request_head(struct evbuffer *out, const struct http1_request *req,
                         const struct forward_request_opts *opts)
{
    size_t before = evbuffer_get_length(out);
    struct http1_header host;
    bool host_from_target = add_request_line(out, req, &host);

    if (host_from_target)
        add_field(out, &host);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (is_hop_by_hop(h, req->headers, req->num_headers, opts->upgrade) ||
            is_rewritten(h, host_from_target))
            continue;
        add_field(out, h);
    }
    if (req->body == HTTP1_BODY_LENGTH)
        evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", req->content_length);
    if (opts->upgrade)
        evbuffer_add(out, "Connection: upgrade\r\n", 21);
    add_forwarded_for(out, req, opts->client_ip);
    evbuffer_add(out, "X-Forwarded-Proto: ", 19);
    evbuffer_add(out, opts->proto, strlen(opts->proto));
    evbuffer_add(out, "\r\n\r\n", 4);
    /* evbuffer_add fails only without memory; checking once at the end is
     * enough because a failed add leaves the buffer shorter, never corrupt. */
    return evbuffer_get_length(out) > before ? 0 : -1;
}

/* True when the response already sets cookie name: the application's own
 * value wins, and two Set-Cookie of one name would leave the browser to
 * pick. */
static bool response_sets_cookie(const struct http1_response *res, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < res->num_headers; i++) {
        const struct http1_header *h = &res->headers[i];
        const char *v = h->value;
        size_t vl = h->value_len;
        if (!NAME_IS(h, "set-cookie"))
            continue;
        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        if (vl > len && v[len] == '=' && memcmp(v, name, len) == 0)
            return true;
    }
    return false;
}

static void add_sticky_cookie(struct evbuffer *out, const struct http1_response *res,
                              const struct forward_response_opts *opts)
{
    if (opts->cookie_name == NULL || res->status < 200 ||
        response_sets_cookie(res, opts->cookie_name))
        return;
    evbuffer_add(out, "Set-Cookie: ", 12);
    evbuffer_add(out, opts->cookie_name, strlen(opts->cookie_name));
    evbuffer_add(out, "=", 1);
    evbuffer_add(out, opts->cookie_value, opts->cookie_value_len);
    evbuffer_add(out, FORWARD_COOKIE_ATTRS "\r\n", sizeof(FORWARD_COOKIE_ATTRS "\r\n") - 1);
}

int forward_response_head(struct evbuffer *out, const struct http1_response *res,
                          const struct forward_response_opts *opts)
{
    char line[13] = "HTTP/1.1 000 ";

    /* The parser guarantees 100..599. */
    line[9] = (char)('0' + res->status / 100);
    line[10] = (char)('0' + res->status / 10 % 10);
    line[11] = (char)('0' + res->status % 10);
    evbuffer_add(out, line, sizeof(line));
    evbuffer_add(out, res->reason, res->reason_len);
    evbuffer_add(out, "\r\n", 2);
    for (size_t i = 0; i < res->num_headers; i++) {
        const struct http1_header *h = &res->headers[i];
        if (!is_hop_by_hop(h, res->headers, res->num_headers, opts->upgrade))
            add_field(out, h);
    }
    add_sticky_cookie(out, res, opts);
    if (opts->upgrade)
        evbuffer_add(out, "Connection: upgrade\r\n", 21);
    else if (opts->close)
        evbuffer_add(out, "Connection: close\r\n", 19);
    else if (opts->keepalive_10)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    return evbuffer_add(out, "\r\n", 2);
}

int forward_error_response(struct evbuffer *out, int status, const char *detail)
{
    const char *reason = http1_reason(status);

    return evbuffer_add_printf(out,
                               "HTTP/1.1 %d %s\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: %zu\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "%d %s: %s\n",
                               status, reason,
                               strlen(detail) + strlen(reason) + 7, /* "NNN " + ": " + "\n" */
                               status, reason, detail) < 0
               ? -1
               : 0;
}
