/* backend_client.c - a small blocking HTTP/1.1 client for sy-backend's
 * tests: it reads answers byte-exact (Content-Length, chunked, or until the
 * close) and fails the running cmocka test on any surprise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bench/backend_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 5000

void backend_client_open(struct backend_client *c, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000};
    int one = 1;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    c->buf = malloc(BACKEND_CLIENT_BUF_MAX);
    assert_non_null(c->buf);
    c->len = 0;
}

void backend_client_close(struct backend_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

void backend_client_send(struct backend_client *c, const void *p, size_t n)
{
    const char *b = p;

    while (n > 0) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

void backend_client_send_str(struct backend_client *c, const char *s)
{
    backend_client_send(c, s, strlen(s));
}

/* Reads more into c->buf. Returns bytes read, 0 on EOF, -1 on error or
 * timeout (errno tells which). */
ssize_t backend_client_fill(struct backend_client *c)
{
    ssize_t r;

    if (c->len >= BACKEND_CLIENT_BUF_MAX)
        return -1;
    r = recv(c->fd, c->buf + c->len, BACKEND_CLIENT_BUF_MAX - c->len, 0);
    if (r > 0)
        c->len += (size_t)r;
    return r;
}

void backend_client_consume(struct backend_client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Finds header name's value in a head; copies it into out. */
bool backend_client_header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            const char *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(e ? e - v : (ptrdiff_t)strlen(v)), v);
            return true;
        }
    }
    return false;
}

static void body_append(struct backend_client_resp *r, const char *p, size_t n)
{
    r->body = realloc(r->body, r->body_len + n + 1);
    assert_non_null(r->body);
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* Reads exactly n body bytes. */
static void read_exact(struct backend_client *c, struct backend_client_resp *r, size_t n)
{
    while (c->len < n)
        assert_true(backend_client_fill(c) > 0);
    body_append(r, c->buf, n);
    backend_client_consume(c, n);
}

static size_t read_line(struct backend_client *c, char *line, size_t cap)
{
    char *e;

    while (!(e = memchr(c->buf, '\n', c->len)))
        assert_true(backend_client_fill(c) > 0);
    size_t n = (size_t)(e - c->buf) + 1;
    assert_true(n < cap);
    memcpy(line, c->buf, n);
    line[n] = '\0';
    backend_client_consume(c, n);
    return n;
}

static void read_chunked(struct backend_client *c, struct backend_client_resp *r)
{
    char line[128];

    for (;;) {
        read_line(c, line, sizeof(line));
        size_t n = strtoul(line, NULL, 16);
        if (n == 0)
            break;
        read_exact(c, r, n);
        read_line(c, line, sizeof(line));
        assert_string_equal(line, "\r\n");
    }
    read_line(c, line, sizeof(line)); /* no trailers: the empty line */
    assert_string_equal(line, "\r\n");
}

/* Reads one answer. head_only: the request was HEAD. */
void backend_client_read(struct backend_client *c, struct backend_client_resp *r, bool head_only)
{
    char v[64];
    char *end;

    memset(r, 0, sizeof(*r));
    r->body = calloc(1, 1);
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(backend_client_fill(c) > 0);
    size_t hl = (size_t)(end - c->buf) + 4;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    backend_client_consume(c, hl);
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    if (head_only || r->status == 204 || r->status == 304 || r->status < 200)
        return;
    if (backend_client_header(r->head, "Content-Length", v, sizeof(v))) {
        read_exact(c, r, strtoull(v, NULL, 10));
    } else if (backend_client_header(r->head, "Transfer-Encoding", v, sizeof(v))) {
        assert_string_equal(v, "chunked");
        read_chunked(c, r);
    } else {
        while (backend_client_fill(c) > 0)
            ;
        body_append(r, c->buf, c->len);
        backend_client_consume(c, c->len);
    }
}

void backend_client_resp_clear(struct backend_client_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* True when the server closed: recv sees EOF (or a reset) within the timeout. */
bool backend_client_closed(struct backend_client *c)
{
    ssize_t r = backend_client_fill(c);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* One request on a fresh connection; returns the answer in *r. */
void backend_client_exchange(int port, const char *req, struct backend_client_resp *r)
{
    struct backend_client c;

    backend_client_open(&c, port);
    backend_client_send_str(&c, req);
    backend_client_read(&c, r, strncmp(req, "HEAD ", 5) == 0);
    backend_client_close(&c);
}
