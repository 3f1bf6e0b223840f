/* backend_reply.c - answers: prebuilt default answers, heads, the pattern. */
#include "bench/backend_reply.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/http1.h"

/* Up to this size the default body is copied right behind its head, so that
 * one evbuffer_add moves the whole answer; larger bodies go by reference. */
#define INLINE_BODY_MAX 1024

struct prebuilt {
    char *bytes;     /* head, then the body when it is inline */
    size_t head_len; /* bytes of head */
    size_t len;      /* head_len, plus the body when inline */
};

struct backend_reply {
    char *name;
    char *body; /* the default body */
    size_t body_len;
    bool body_inline;
    struct prebuilt answers[BACKEND_REPLY_CONNS]; /* default 200, one per connection header */
};

/* The pattern, long enough that any offset modulo its length starts a run of
 * BACKEND_REPLY_CHUNK_MAX bytes: /__bytes streams reference it, never copy. */
static char pattern_block[BACKEND_REPLY_CHUNK_MAX + BACKEND_REPLY_PATTERN_LEN];
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void pattern_fill(char *dst, uint64_t off, size_t len)
{
    static const char pat[] = BACKEND_REPLY_PATTERN;
    size_t k = (size_t)(off % BACKEND_REPLY_PATTERN_LEN);

    for (size_t i = 0; i < len; i++) {
        dst[i] = pat[k];
        k = k + 1 == BACKEND_REPLY_PATTERN_LEN ? 0 : k + 1;
    }
}

static void pattern_init(void)
{
    pattern_fill(pattern_block, 0, sizeof(pattern_block));
}

static const char *conn_header(enum backend_reply_conn conn)
{
    switch (conn) {
    case BACKEND_REPLY_CLOSE:
        return "Connection: close\r\n";
    case BACKEND_REPLY_KEEP10:
        return "Connection: keep-alive\r\n";
    case BACKEND_REPLY_KEEP:
    default:
        return "";
    }
}

bool backend_reply_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > BACKEND_REPLY_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (name[i] <= ' ' || name[i] > '~')
            return false;
    }
    return true;
}

/* Builds the default answer for one Connection header variant. */
static int prebuild(struct backend_reply *r, enum backend_reply_conn conn)
{
    struct prebuilt *p = &r->answers[conn];
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     r->name, r->body_len, conn_header(conn));

    if (n < 0 || (size_t)n >= sizeof(head))
        return -1;
    p->head_len = (size_t)n;
    p->len = p->head_len + (r->body_inline ? r->body_len : 0);
    p->bytes = malloc(p->len ? p->len : 1);
    if (!p->bytes)
        return -1;
    memcpy(p->bytes, head, p->head_len);
    if (r->body_inline)
        memcpy(p->bytes + p->head_len, r->body, r->body_len);
    return 0;
}

struct backend_reply *backend_reply_new(const char *name, long long body_bytes)
{
    struct backend_reply *r;

    if (!backend_reply_name_ok(name) || body_bytes > (long long)BACKEND_REPLY_BODY_MAX)
        return NULL;
    pthread_once(&pattern_once, pattern_init);
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->name = strdup(name);
    r->body_len = body_bytes < 0 ? 3 : (size_t)body_bytes;
    r->body = malloc(r->body_len ? r->body_len : 1);
    if (!r->name || !r->body)
        goto fail;
    if (body_bytes < 0)
        memcpy(r->body, "ok\n", 3);
    else
        pattern_fill(r->body, 0, r->body_len);
    r->body_inline = r->body_len <= INLINE_BODY_MAX;
    for (int c = 0; c < BACKEND_REPLY_CONNS; c++) {
        if (prebuild(r, (enum backend_reply_conn)c) < 0)
            goto fail;
    }
    return r;
fail:
    backend_reply_free(r);
    return NULL;
}

void backend_reply_free(struct backend_reply *r)
{
    if (!r)
        return;
    for (int c = 0; c < BACKEND_REPLY_CONNS; c++)
        free(r->answers[c].bytes);
    free(r->body);
    free(r->name);
    free(r);
}

const char *backend_reply_name(const struct backend_reply *r)
{
    return r->name;
}

int backend_reply_default(const struct backend_reply *r, struct evbuffer *out,
                          enum backend_reply_conn conn, bool head_only)
{
    const struct prebuilt *p = &r->answers[conn];

    if (head_only)
        return evbuffer_add(out, p->bytes, p->head_len);
    if (evbuffer_add(out, p->bytes, p->len) < 0)
        return -1;
    if (r->body_inline || r->body_len == 0)
        return 0;
    /* The body lives as long as the process's workers: no cleanup needed. */
    return evbuffer_add_reference(out, r->body, r->body_len, NULL, NULL);
}

bool backend_reply_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

int backend_reply_head(const struct backend_reply *r, struct evbuffer *out, int status,
                       enum backend_reply_conn conn, const char *ctype, int64_t content_length,
                       const char *extra)
{
    char len_line[48] = "";

    if (content_length >= 0)
        snprintf(len_line, sizeof(len_line), "Content-Length: %" PRId64 "\r\n", content_length);
    return evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nX-Backend: %s\r\n%s%s%s%s%s%s\r\n", status,
                               http1_reason(status), r->name, ctype ? "Content-Type: " : "",
                               ctype ? ctype : "", ctype ? "\r\n" : "", len_line, conn_header(conn),
                               extra ? extra : "") < 0
               ? -1
               : 0;
}

int backend_reply_text(const struct backend_reply *r, struct evbuffer *out, int status,
                       enum backend_reply_conn conn, bool head_only, const char *ctype,
                       const char *body, size_t len)
{
    if (!backend_reply_status_has_body(status))
        return backend_reply_head(r, out, status, conn, NULL, -1, NULL);
    if (backend_reply_head(r, out, status, conn, ctype, (int64_t)len, NULL) < 0)
        return -1;
    if (head_only || len == 0)
        return 0;
    return evbuffer_add(out, body, len);
}

int backend_reply_pattern_add(struct evbuffer *out, uint64_t off, size_t len)
{
    if (len > BACKEND_REPLY_CHUNK_MAX)
        return -1;
    if (len == 0)
        return 0;
    return evbuffer_add_reference(out, pattern_block + off % BACKEND_REPLY_PATTERN_LEN, len, NULL,
                                  NULL);
}
