/* test_http1.c - the head parsers and the chunked decoder, good and bad input.
 *
 * Every input is copied into a heap block of exactly its length, so that
 * AddressSanitizer catches any read past the end of what the parser was
 * given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http1.h"
#include "proxy/http1_chunked.h"

#define OK 0 /* want: the text, minus its tail, is one complete head */
#define NONE HTTP1_BODY_NONE
#define LEN HTTP1_BODY_LENGTH
#define CHK HTTP1_BODY_CHUNKED
#define CLS HTTP1_BODY_CLOSE
#define F_CLOSE HTTP1_F_CLOSE
#define F_UPG HTTP1_F_UPGRADE
#define F_100 HTTP1_F_EXPECT_CONTINUE
#define F_HOST HTTP1_F_HAS_HOST
#define MAX_BYTES 8192
#define MAX_HEADERS 16

/* A heap copy of exactly n bytes (new: free it). */
static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n > 0 ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

/* Renders s[0..n) printable, for failure messages (borrowed static buffer). */
static const char *show(const char *s, size_t n)
{
    static char out[512];
    size_t o = 0;

    for (size_t i = 0; i < n && o + 5 < sizeof(out); i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* Fails unless p[0..n) lies within the head buf[0..head). */
static void assert_in_head(const char *buf, int head, const char *p, size_t n)
{
    assert_true(p >= buf && p <= buf + head && n <= (size_t)(buf + head - p));
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

struct req_case {
    const char *text;
    size_t len;
    int want;    /* OK, HTTP1_BAD, HTTP1_TOO_LARGE or HTTP1_INCOMPLETE */
    size_t tail; /* bytes after the head: body or the next request */
    enum http1_method method;
    const char *target;
    int minor;
    size_t nhdr;
    enum http1_body body;
    uint64_t cl;
    unsigned flags;
    const char *hname; /* when set: the first such header has value hval */
    const char *hval;
    size_t max_bytes;   /* 0: MAX_BYTES */
    size_t max_headers; /* 0: MAX_HEADERS */
};

/* Rows: OK heads with what they must say, optionally one header's value;
 * errors; errors under tighter limits. */
#define REQ_OK(s, tail, m, target, minor, nhdr, body, cl, flags)                                   \
    {                                                                                              \
        s, sizeof(s) - 1, OK, tail, m, target, minor, nhdr, body, cl, flags, NULL, NULL, 0, 0      \
    }
#define REQ_OKH(s, tail, m, target, minor, nhdr, body, cl, flags, hname, hval)                     \
    {                                                                                              \
        s, sizeof(s) - 1, OK, tail, m, target, minor, nhdr, body, cl, flags, hname, hval, 0, 0     \
    }
#define REQ_ERR(s, want)                                                                           \
    {                                                                                              \
        s, sizeof(s) - 1, want, 0, HTTP1_M_OTHER, NULL, 0, 0, NONE, 0, 0, NULL, NULL, 0, 0         \
    }
#define REQ_LIM(s, want, max_bytes, max_headers)                                                   \
    {                                                                                              \
        s, sizeof(s) - 1, want, 0, HTTP1_M_OTHER, NULL, 0, 0, NONE, 0, 0, NULL, NULL, max_bytes,   \
            max_headers                                                                            \
    }
#define GET11 "GET / HTTP/1.1\r\nHost: a\r\n"
#define POST11 "POST /p HTTP/1.1\r\nHost: a\r\n"

static const struct req_case req_cases[] = {
    /* Good requests and what they say. */
    REQ_OKH(GET11 "\r\n", 0, HTTP1_M_GET, "/", 1, 1, NONE, 0, F_HOST, "host", "a"),
    REQ_OK("\r\n\r\n" GET11 "\r\n", 0, HTTP1_M_GET, "/", 1, 1, NONE, 0, F_HOST),
    REQ_OK(POST11 "Content-Length: 5\r\n\r\nhello", 5, HTTP1_M_POST, "/p", 1, 2, LEN, 5, F_HOST),
    REQ_OK(POST11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 3,
           LEN, 5, F_HOST),
    REQ_OK(POST11 "Content-Length: 5, 5\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 2, LEN, 5, F_HOST),
    REQ_OKH(POST11 "Content-Length:   5  \r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 2, LEN, 5, F_HOST,
            "content-length", "5"),
    REQ_OK(POST11 "Content-Length: 0\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 2, LEN, 0, F_HOST),
    REQ_OK(POST11 "Content-Length: 9223372036854775807\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 2, LEN,
           INT64_MAX, F_HOST),
    REQ_OK(POST11 "Transfer-Encoding: chunked\r\n\r\n5\r\n", 3, HTTP1_M_POST, "/p", 1, 2, CHK, 0,
           F_HOST),
    REQ_OK(POST11 "transfer-encoding: ChUnKeD\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 2, CHK, 0,
           F_HOST),
    REQ_OKH(POST11 "Transfer-Encoding:\tchunked\t\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 2, CHK, 0,
            F_HOST, "transfer-encoding", "chunked"),
    REQ_OK("GET /x HTTP/1.0\r\n\r\n", 0, HTTP1_M_GET, "/x", 0, 0, NONE, 0, F_CLOSE),
    REQ_OK("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, HTTP1_M_GET, "/", 0, 1, NONE, 0,
           0),
    REQ_OK("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, HTTP1_M_GET, "/", 0, 1,
           NONE, 0, F_CLOSE),
    REQ_OK(GET11 "Connection: close\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 2, NONE, 0, F_CLOSE | F_HOST),
    REQ_OK(GET11 "Connection: keep-alive ,Upgrade\r\nUpgrade: websocket\r\n\r\n", 0, HTTP1_M_GET,
           "/", 1, 3, NONE, 0, F_UPG | F_HOST),
    REQ_OK(GET11 "Connection: upgrade\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 2, NONE, 0, F_HOST),
    REQ_OK(GET11 "Upgrade: h2c\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 2, NONE, 0, F_HOST),
    REQ_OK(POST11 "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 3,
           LEN, 3, F_100 | F_HOST),
    REQ_OK(POST11 "Expect: 100-Continue\r\n\r\n", 0, HTTP1_M_POST, "/p", 1, 2, NONE, 0,
           F_100 | F_HOST),
    REQ_OK("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, HTTP1_M_POST, "/", 0, 1, NONE, 0,
           F_CLOSE),
    REQ_OK("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, HTTP1_M_GET,
           "http://example.com/x?y", 1, 1, NONE, 0, F_HOST),
    REQ_OK("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, HTTP1_M_GET,
           "HTTPS://example.com", 1, 1, NONE, 0, F_HOST),
    REQ_OK("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_OPTIONS, "*", 1, 1, NONE, 0, F_HOST),
    REQ_OK("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 0, HTTP1_M_CONNECT,
           "example.com:443", 1, 1, NONE, 0, F_HOST),
    REQ_OK("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", 0, HTTP1_M_CONNECT,
           "[::1]:8443", 1, 1, NONE, 0, F_HOST),
    REQ_OK("get / HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_OTHER, "/", 1, 1, NONE, 0, F_HOST),
    REQ_OK("PATCH /a?b=c&d=%20 HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_OTHER, "/a?b=c&d=%20", 1, 1,
           NONE, 0, F_HOST),
    REQ_OK("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_DELETE, "/", 1, 1, NONE, 0, F_HOST),
    REQ_OK("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_HEAD, "/", 1, 1, NONE, 0, F_HOST),
    REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_PUT, "/", 1, 1, NONE, 0, F_HOST),
    REQ_OKH(GET11 "X-Latin: caf\xe9 \x80\xff\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 2, NONE, 0, F_HOST,
            "x-latin", "caf\xe9 \x80\xff"),
    REQ_OKH(GET11 "X-Empty:\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 2, NONE, 0, F_HOST, "x-empty", ""),
    REQ_OKH(GET11 "X-Inner: \t a \t b \t\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 2, NONE, 0, F_HOST,
            "X-INNER", "a \t b"),
    REQ_OKH("GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 1, NONE, 0, F_HOST, "host",
            ""),
    REQ_OK(GET11 "\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", 28, HTTP1_M_GET, "/", 1, 1, NONE, 0,
           F_HOST),
    REQ_OK("GET //x/../%7e HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_GET, "//x/../%7e", 1, 1, NONE,
           0, F_HOST),

    /* Request smuggling: framing that two parsers could read differently. */
    REQ_ERR(POST11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: 5, 6\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: 5,\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: +5\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: -1\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: 5 5\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: 0x5\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length:\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: 9223372036854775808\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length: 99999999999999999999999\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding: chunked, identity\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding: identity\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding: xchunked\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding: gzip, chunked\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding: chunked;foo\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding:\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Transfer-Encoding : chunked\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Content-Length : 5\r\n\r\n", HTTP1_BAD),
    REQ_ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "X-A: b\r\n c\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "X-A: b\r\n\tc\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP1_BAD),

    /* Line endings, control bytes and field syntax. */
    REQ_ERR("GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "\n", HTTP1_BAD),
    REQ_ERR(GET11 "X-A: a\rb\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "X-A: a\0b\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "X-A: a\x7f\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "X-\x01"
                  "A: b\r\n\r\n",
            HTTP1_BAD),
    REQ_ERR(GET11 "X(A): b\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 ": b\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "NoColon\r\n\r\n", HTTP1_BAD),
    REQ_ERR("\0GET / HTTP/1.1\r\n", HTTP1_BAD),
    REQ_ERR("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("\r\rGET / HTTP/1.1\r\n", HTTP1_BAD),

    /* The request line. */
    REQ_ERR("GET / HTTP/1.1\r\n\r\n", HTTP1_BAD),
    REQ_ERR(GET11 "Host: b\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.2\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.10\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / http/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET /\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET * HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("CONNECT user@example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Expect: foo\r\n\r\n", HTTP1_BAD),
    REQ_ERR(POST11 "Expect: 100-continue, foo\r\n\r\n", HTTP1_BAD),

    /* Limits, and errors seen before the head is complete. */
    REQ_LIM(GET11 "A: 1\r\nB: 2\r\n\r\n", HTTP1_TOO_LARGE, 0, 2),
    {GET11 "A: 1\r\n\r\n", sizeof(GET11 "A: 1\r\n\r\n") - 1, OK, 0, HTTP1_M_GET, "/", 1, 2, NONE, 0,
     F_HOST, NULL, NULL, 0, 2},
    REQ_LIM(GET11 "X-Long: 0123456789\r\n\r\n", HTTP1_TOO_LARGE, 32, 0),
    REQ_LIM(GET11 "X-Long: 0123456789", HTTP1_TOO_LARGE, 32, 0),
    REQ_ERR(GET11, HTTP1_INCOMPLETE),
    REQ_ERR(GET11 "\r", HTTP1_INCOMPLETE),
    REQ_ERR("GET / HTTP/1.1\r\nBad Header: x", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nX-A: \0", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.", HTTP1_INCOMPLETE),
    REQ_ERR("GET / HTTP/1.3", HTTP1_BAD),
    REQ_ERR("GET / HTTX", HTTP1_BAD),
    REQ_ERR("", HTTP1_INCOMPLETE),
    REQ_ERR("\r\n\r", HTTP1_INCOMPLETE),

    /* Hosts and targets that two servers could read as different places
     * (found by the smuggling integration test). */
    REQ_OKH("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 1, NONE, 0,
            F_HOST, "host", "[::1]:8080"),
    REQ_OKH("GET / HTTP/1.1\r\nHost: a-b.c_d~e%41!$&'()*+,;=:80\r\n\r\n", 0, HTTP1_M_GET, "/", 1, 1,
            NONE, 0, F_HOST, "host", "a-b.c_d~e%41!$&'()*+,;=:80"),
    REQ_OK("GET http://a.example:80?x HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP1_M_GET,
           "http://a.example:80?x", 1, 1, NONE, 0, F_HOST),
    REQ_ERR("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nHost: a/smuggled\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nHost: a#b\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET /a#/smuggled HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET /a?b#c HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET http://user@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET http://user:pw@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET http://a.example#x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET http://a\"b/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
    REQ_ERR("GET http://?x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD),
};

static size_t req_limit_bytes(const struct req_case *c)
{
    return c->max_bytes != 0 ? c->max_bytes : MAX_BYTES;
}

static size_t req_limit_headers(const struct req_case *c)
{
    return c->max_headers != 0 ? c->max_headers : MAX_HEADERS;
}

static int parse_req_copy(const struct req_case *c, size_t len, struct http1_header *hdrs,
                          struct http1_request *req)
{
    char *buf = dup_exact(c->text, len);
    int r = http1_parse_request(buf, len, req_limit_bytes(c), hdrs, req_limit_headers(c), req);
    /* The pointers must lie inside the head; rebase them onto the text,
     * as the copy is about to go. */
    if (r > 0) {
        assert_in_head(buf, r, req->method, req->method_len);
        assert_in_head(buf, r, req->target, req->target_len);
        req->method = c->text + (req->method - buf);
        req->target = c->text + (req->target - buf);
        for (size_t i = 0; i < req->num_headers; i++) {
            assert_in_head(buf, r, hdrs[i].name, hdrs[i].name_len);
            assert_in_head(buf, r, hdrs[i].value, hdrs[i].value_len);
            hdrs[i].name = c->text + (hdrs[i].name - buf);
            hdrs[i].value = c->text + (hdrs[i].value - buf);
        }
    }
    free(buf);
    return r;
}

static void check_header(const struct http1_header *hdrs, size_t n, const char *name,
                         const char *value, size_t i)
{
    const struct http1_header *h = http1_header_find(hdrs, n, name);
    if (h == NULL)
        fail_msg("request %zu: no header %s", i, name);
    if (h->value_len != strlen(value) || memcmp(h->value, value, h->value_len) != 0)
        fail_msg("request %zu: %s is \"%s\"", i, name, show(h->value, h->value_len));
}

static void check_request(const struct req_case *c, size_t i, const struct http1_request *req,
                          const struct http1_header *hdrs)
{
    assert_int_equal(req->method_id, c->method);
    assert_int_equal(req->target_len, strlen(c->target));
    assert_memory_equal(req->target, c->target, req->target_len);
    assert_int_equal(req->minor_version, c->minor);
    assert_ptr_equal(req->headers, hdrs);
    assert_int_equal(req->num_headers, c->nhdr);
    assert_int_equal(req->body, c->body);
    assert_int_equal(req->content_length, c->cl);
    if (req->flags != c->flags)
        fail_msg("request %zu: flags 0x%x, want 0x%x", i, req->flags, c->flags);
    if (c->hname != NULL)
        check_header(hdrs, req->num_headers, c->hname, c->hval, i);
}

static void test_request_table(void **state)
{
    size_t n = sizeof(req_cases) / sizeof(req_cases[0]);

    for (size_t i = 0; i < n; i++) {
        const struct req_case *c = &req_cases[i];
        struct http1_header hdrs[MAX_HEADERS];
        struct http1_request req;
        int want = c->want == OK ? (int)(c->len - c->tail) : c->want;

        int r = parse_req_copy(c, c->len, hdrs, &req);
        if (r != want)
            fail_msg("request %zu \"%s\": got %d, want %d", i, show(c->text, c->len), r, want);
        if (c->want == OK)
            check_request(c, i, &req, hdrs);
    }
}

/* Every prefix of every case is INCOMPLETE or gives the answer of the whole
 * text: complete heads only once their last byte is in, errors as soon as
 * their byte is. */
static void test_request_incremental(void **state)
{
    size_t n = sizeof(req_cases) / sizeof(req_cases[0]);

    for (size_t i = 0; i < n; i++) {
        const struct req_case *c = &req_cases[i];
        struct http1_header hdrs[MAX_HEADERS];
        struct http1_request req;
        int whole = parse_req_copy(c, c->len, hdrs, &req);

        for (size_t k = 0; k < c->len; k++) {
            int r = parse_req_copy(c, k, hdrs, &req);
            bool ok = r == HTTP1_INCOMPLETE || r == whole;
            if (c->want == OK && k < c->len - c->tail)
                ok = r == HTTP1_INCOMPLETE;
            if (!ok)
                fail_msg("request %zu, prefix %zu: got %d, whole %d", i, k, r, whole);
        }
    }
}

/* The early errors of the table are reported before the head ends. */
static void test_request_early_error(void **state)
{
    static const char prefix[] = "GET / HTTP/1.1\r\nBad Header: x";
    struct http1_header hdrs[4];
    struct http1_request req;

    assert_int_equal(http1_parse_request(prefix, 20, 8192, hdrs, 4, &req), HTTP1_BAD);
    assert_int_equal(http1_parse_request(prefix, 19, 8192, hdrs, 4, &req), HTTP1_INCOMPLETE);
    assert_int_equal(http1_parse_request("\0", 1, 8192, hdrs, 4, &req), HTTP1_BAD);
}

/* A head of exactly max_bytes is accepted, one byte more is TOO_LARGE, and
 * so is an incomplete head that already fills max_bytes. */
static void test_request_size_limit(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t len = sizeof(text) - 1;
    struct http1_header hdrs[4];
    struct http1_request req;

    assert_int_equal(http1_parse_request(text, len, len, hdrs, 4, &req), (int)len);
    assert_int_equal(http1_parse_request(text, len, len - 1, hdrs, 4, &req), HTTP1_TOO_LARGE);
    assert_int_equal(http1_parse_request(text, len - 1, len - 1, hdrs, 4, &req), HTTP1_TOO_LARGE);
    assert_int_equal(http1_parse_request(text, len - 2, len - 1, hdrs, 4, &req), HTTP1_INCOMPLETE);
    assert_int_equal(http1_parse_request(text, 0, 0, hdrs, 4, &req), HTTP1_TOO_LARGE);
    assert_int_equal(http1_parse_request("GET / HTTP/1.0\r\n\r\n", 18, 64, NULL, 0, &req), 18);
    assert_int_equal(http1_parse_request(text, len, 64, hdrs, 0, &req), HTTP1_TOO_LARGE);
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                 */

struct resp_case {
    const char *text;
    size_t len;
    enum http1_method method; /* of the request answered */
    int want;
    size_t tail;
    int status;
    const char *reason;
    int minor;
    size_t nhdr;
    enum http1_body body;
    uint64_t cl;
    unsigned flags;
};

#define RESP_OK(s, m, tail, status, reason, minor, nhdr, body, cl, flags)                          \
    {                                                                                              \
        s, sizeof(s) - 1, m, OK, tail, status, reason, minor, nhdr, body, cl, flags                \
    }
#define RESP_ERR(s, m, want)                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1, m, want, 0, 0, NULL, 0, 0, NONE, 0, 0                                    \
    }
#define M_GET HTTP1_M_GET
#define M_HEAD HTTP1_M_HEAD
#define M_CONNECT HTTP1_M_CONNECT

static const struct resp_case resp_cases[] = {
    RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", M_GET, 5, 200, "OK", 1, 1, LEN, 5,
            0),
    RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", M_GET, 0, 200, "OK", 1, 1, CHK,
            0, 0),
    RESP_OK("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody", M_GET, 4, 200, "OK", 1, 1, CLS, 0, F_CLOSE),
    RESP_OK("HTTP/1.1 204 No Content\r\n\r\n", M_GET, 0, 204, "No Content", 1, 0, NONE, 0, 0),
    RESP_OK("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", M_GET, 0, 204, "No Content", 1,
            1, NONE, 0, 0),
    RESP_OK("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", M_GET, 0, 304,
            "Not Modified", 1, 1, NONE, 0, 0),
    RESP_OK("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", M_GET, 0, 304,
            "Not Modified", 1, 1, NONE, 0, 0),
    RESP_OK("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", M_GET, 17, 100, "Continue", 1, 0,
            NONE, 0, 0),
    RESP_OK("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            M_GET, 0, 101, "Switching Protocols", 1, 2, NONE, 0, F_UPG),
    RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", M_HEAD, 0, 200, "OK", 1, 1, NONE, 0,
            0),
    RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", M_HEAD, 0, 200, "OK", 1, 1,
            NONE, 0, 0),
    RESP_OK("HTTP/1.1 404 Not Found\r\n\r\n", M_HEAD, 0, 404, "Not Found", 1, 0, NONE, 0, 0),
    RESP_OK("HTTP/1.1 200 Connection established\r\n\r\n", M_CONNECT, 0, 200,
            "Connection established", 1, 0, NONE, 0, 0),
    RESP_OK("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", M_CONNECT, 0, 407, "Auth", 1, 1, LEN,
            2, 0),
    RESP_OK("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", M_GET, 0, 200, "", 1, 1, LEN, 0, 0),
    RESP_OK("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", M_GET, 0, 200, "", 1, 1, LEN, 0, 0),
    RESP_OK("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", M_GET, 0, 200, "OK", 0, 1, LEN, 1,
            F_CLOSE),
    RESP_OK("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", M_GET, 0, 200,
            "OK", 0, 2, LEN, 1, 0),
    RESP_OK("HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", M_GET, 0, 503,
            "Busy", 1, 2, LEN, 0, F_CLOSE),
    RESP_OK("HTTP/1.1 200 Tr\xe8s \tbien\r\nContent-Length: 0\r\n\r\n", M_GET, 0, 200,
            "Tr\xe8s \tbien", 1, 1, LEN, 0, 0),
    RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", M_GET, 0, 200,
            "OK", 1, 2, LEN, 7, 0),
    RESP_OK("HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", M_GET, 0, 599, "X", 1, 1, LEN, 0, 0),
    RESP_ERR("HTTP/1.1 200 OK\r\n", M_GET, HTTP1_INCOMPLETE),

    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", M_GET,
             HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", M_HEAD, HTTP1_BAD),
    RESP_ERR("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 099 Low\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 600 High\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 2000 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 20 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 2x0 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1200 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1  200 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/2 200 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.2 200 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("http/1.1 200 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 O\0K\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("\r\nHTTP/1.1 200 OK\r\n\r\n", M_GET, HTTP1_BAD),
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", M_GET, HTTP1_BAD),
};

static int parse_resp_copy(const struct resp_case *c, size_t len, struct http1_header *hdrs,
                           struct http1_response *res)
{
    char *buf = dup_exact(c->text, len);
    int r = http1_parse_response(buf, len, MAX_BYTES, hdrs, MAX_HEADERS, c->method, res);
    if (r > 0) {
        assert_in_head(buf, r, res->reason, res->reason_len);
        for (size_t i = 0; i < res->num_headers; i++) {
            assert_in_head(buf, r, hdrs[i].name, hdrs[i].name_len);
            assert_in_head(buf, r, hdrs[i].value, hdrs[i].value_len);
        }
        res->reason = c->text + (res->reason - buf);
    }
    free(buf);
    return r;
}

static void check_response(const struct resp_case *c, size_t i, const struct http1_response *res)
{
    if (res->status != c->status || res->minor_version != c->minor)
        fail_msg("response %zu: status %d minor %d", i, res->status, res->minor_version);
    assert_int_equal(res->reason_len, strlen(c->reason));
    assert_memory_equal(res->reason, c->reason, res->reason_len);
    assert_int_equal(res->num_headers, c->nhdr);
    assert_int_equal(res->body, c->body);
    assert_int_equal(res->content_length, c->cl);
    if (res->flags != c->flags)
        fail_msg("response %zu: flags 0x%x, want 0x%x", i, res->flags, c->flags);
}

static void test_response_table(void **state)
{
    size_t n = sizeof(resp_cases) / sizeof(resp_cases[0]);

    for (size_t i = 0; i < n; i++) {
        const struct resp_case *c = &resp_cases[i];
        struct http1_header hdrs[MAX_HEADERS];
        struct http1_response res;
        int want = c->want == OK ? (int)(c->len - c->tail) : c->want;

        int r = parse_resp_copy(c, c->len, hdrs, &res);
        if (r != want)
            fail_msg("response %zu \"%s\": got %d, want %d", i, show(c->text, c->len), r, want);
        if (c->want == OK)
            check_response(c, i, &res);
    }
}

static void test_response_incremental(void **state)
{
    size_t n = sizeof(resp_cases) / sizeof(resp_cases[0]);

    for (size_t i = 0; i < n; i++) {
        const struct resp_case *c = &resp_cases[i];
        struct http1_header hdrs[MAX_HEADERS];
        struct http1_response res;
        int whole = parse_resp_copy(c, c->len, hdrs, &res);

        for (size_t k = 0; k < c->len; k++) {
            int r = parse_resp_copy(c, k, hdrs, &res);
            bool ok = r == HTTP1_INCOMPLETE || r == whole;
            if (c->want == OK && k < c->len - c->tail)
                ok = r == HTTP1_INCOMPLETE;
            if (!ok)
                fail_msg("response %zu, prefix %zu: got %d, whole %d", i, k, r, whole);
        }
    }
}

static void test_response_limits(void **state)
{
    static const char text[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    struct http1_header hdrs[3];
    struct http1_response res;

    assert_int_equal(http1_parse_response(text, sizeof(text) - 1, 8192, hdrs, 2, HTTP1_M_GET, &res),
                     HTTP1_TOO_LARGE);
    assert_int_equal(http1_parse_response(text, sizeof(text) - 1, 8192, hdrs, 3, HTTP1_M_GET, &res),
                     (int)sizeof(text) - 1);
    assert_int_equal(hdrs[2].name_len, 1);
    assert_memory_equal(hdrs[2].name, "C", 1);
    assert_memory_equal(hdrs[2].value, "3", hdrs[2].value_len);
    assert_int_equal(http1_parse_response(text, sizeof(text) - 1, 20, hdrs, 3, HTTP1_M_GET, &res),
                     HTTP1_TOO_LARGE);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static void test_list_has(void **state)
{
    static const char v[] = "Keep-Alive ,\tUPGRADE, , x-close ,close";

    assert_true(http1_list_has(v, sizeof(v) - 1, "keep-alive"));
    assert_true(http1_list_has(v, sizeof(v) - 1, "upgrade"));
    assert_true(http1_list_has(v, sizeof(v) - 1, "close"));
    assert_true(http1_list_has(v, sizeof(v) - 1, "x-close"));
    assert_false(http1_list_has(v, sizeof(v) - 1, "alive"));
    assert_false(http1_list_has(v, sizeof(v) - 1, "keep"));
    assert_false(http1_list_has(v, sizeof(v) - 1, "clos"));
    assert_false(http1_list_has(v, 4, "keep-alive"));
    assert_true(http1_list_has(v, 10, "keep-alive"));
    assert_false(http1_list_has("", 0, "close"));
    assert_true(http1_list_has("close", 5, "CLOSE"));
}

static void test_header_lookup(void **state)
{
    struct http1_header h[] = {
        {"Host", 4, "a", 1},
        {"Content-Length", 14, "5", 1},
        {"host", 4, "b", 1},
    };

    assert_true(http1_header_is(&h[0], "host"));
    assert_true(http1_header_is(&h[1], "CONTENT-LENGTH"));
    assert_false(http1_header_is(&h[0], "hos"));
    assert_false(http1_header_is(&h[0], "hostx"));
    assert_ptr_equal(http1_header_find(h, 3, "HOST"), &h[0]);
    assert_ptr_equal(http1_header_find(h, 3, "content-length"), &h[1]);
    assert_null(http1_header_find(h, 3, "content-type"));
    assert_null(http1_header_find(h, 0, "host"));
}

static void test_reason(void **state)
{
    static const int codes[] = {100, 101, 200, 201, 204, 206, 301, 302, 304, 307,
                                308, 400, 401, 403, 404, 405, 408, 413, 414, 417,
                                421, 429, 431, 500, 501, 502, 503, 504};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_string_not_equal(http1_reason(codes[i]), "Unknown");
    assert_string_equal(http1_reason(200), "OK");
    assert_string_equal(http1_reason(502), "Bad Gateway");
    assert_string_equal(http1_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http1_reason(299), "Unknown");
    assert_string_equal(http1_reason(-1), "Unknown");
}

/* ------------------------------------------------------------------------ */
/* Chunked framing                                                           */

struct chunk_case {
    const char *text;
    size_t len;
    const char *data; /* the chunk data, concatenated */
    size_t tail;      /* bytes after the body that must not be consumed */
};

#define CHUNK_OK(s, data, tail)                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1, data, tail                                                               \
    }
#define CHUNK_BAD(s)                                                                               \
    {                                                                                              \
        s, sizeof(s) - 1, NULL, 0                                                                  \
    }

static const struct chunk_case chunk_good[] = {
    CHUNK_OK("5\r\nhello\r\n0\r\n\r\n", "hello", 0),
    CHUNK_OK("0\r\n\r\n", "", 0),
    CHUNK_OK("5;ext\r\nhello\r\n0\r\n\r\n", "hello", 0),
    CHUNK_OK("5 ; a = b ;c;d=\"\"\r\nhello\r\n0;last=1\r\n\r\n", "hello", 0),
    CHUNK_OK("3;name=\"a \\\"q\\\" \\\\ b\"\r\nabc\r\n0\r\n\r\n", "abc", 0),
    CHUNK_OK("3;q=\"caf\xe9\t(x)\"\r\nabc\r\n0\r\n\r\n", "abc", 0),
    CHUNK_OK("1\r\na\r\n0\r\nX-Sum: 1\r\nX-Other:  v \r\nEmpty:\r\n\r\n", "a", 0),
    CHUNK_OK("A\r\n0123456789\r\nb\r\n0123456789a\r\n0\r\n\r\n", "01234567890123456789a", 0),
    CHUNK_OK("000000000000000a\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0),
    CHUNK_OK("2\r\n\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "\r\n", 16),
    CHUNK_OK("1\r\nx\r\n1\r\ny\r\n1\r\nz\r\n00\r\n\r\n", "xyz", 0),
};

struct chunk_run {
    char data[64];
    size_t data_len;
    size_t consumed; /* framing and data bytes */
};

/* Feeds one piece the way the relay does: framing through the parser, data
 * bytes moved by the caller. Returns the bytes of the piece used, or -1. */
static ssize_t feed_piece(struct http1_chunked *c, const char *p, size_t n, struct chunk_run *run)
{
    size_t pos = 0;

    while (pos < n && c->state != HTTP1_CHUNK_DONE) {
        if (c->state == HTTP1_CHUNK_DATA) {
            size_t k = n - pos < c->data_left ? n - pos : (size_t)c->data_left;
            assert_true(run->data_len + k <= sizeof(run->data));
            memcpy(run->data + run->data_len, p + pos, k);
            run->data_len += k;
            http1_chunked_data_done(c, k);
            pos += k;
            continue;
        }
        ssize_t r = http1_chunked_parse(c, p + pos, n - pos);
        if (r < 0)
            return -1;
        if (r == 0 && c->state != HTTP1_CHUNK_DATA && c->state != HTTP1_CHUNK_DONE)
            fail_msg("chunked parser consumed nothing in state %d", c->state);
        pos += (size_t)r;
    }
    return (ssize_t)pos;
}

/* Runs text split into pieces of at most step bytes after a first piece of
 * first bytes; every piece is an exact heap copy. Returns 0 or -1 on BAD. */
static int run_chunked(const char *text, size_t len, size_t first, size_t step,
                       struct chunk_run *run, struct http1_chunked *c)
{
    size_t pos = 0;

    memset(run, 0, sizeof(*run));
    http1_chunked_init(c);
    while (pos < len && c->state != HTTP1_CHUNK_DONE) {
        size_t n = pos == 0 ? first : step;
        if (n > len - pos)
            n = len - pos;
        char *piece = dup_exact(text + pos, n);
        ssize_t r = feed_piece(c, piece, n, run);
        free(piece);
        if (r < 0)
            return -1;
        pos += (size_t)r;
        if ((size_t)r < n)
            break; /* DONE: the rest is not ours */
    }
    run->consumed = pos;
    return 0;
}

static void check_good_run(const struct chunk_case *c, size_t i, size_t first, size_t step)
{
    struct chunk_run run;
    struct http1_chunked st;

    if (run_chunked(c->text, c->len, first, step, &run, &st) < 0)
        fail_msg("chunked %zu split %zu/%zu: BAD", i, first, step);
    if (st.state != HTTP1_CHUNK_DONE || run.consumed != c->len - c->tail)
        fail_msg("chunked %zu split %zu/%zu: state %d consumed %zu", i, first, step, st.state,
                 run.consumed);
    assert_int_equal(run.data_len, strlen(c->data));
    assert_memory_equal(run.data, c->data, run.data_len);
    assert_int_equal(http1_chunked_parse(&st, "0\r\n\r\n", 5), 0);
}

static void test_chunked_good(void **state)
{
    for (size_t i = 0; i < sizeof(chunk_good) / sizeof(chunk_good[0]); i++) {
        const struct chunk_case *c = &chunk_good[i];
        check_good_run(c, i, c->len, c->len);
        check_good_run(c, i, 1, 1);
        for (size_t k = 1; k < c->len; k++)
            check_good_run(c, i, k, c->len);
    }
}

static const struct chunk_case chunk_bad[] = {
    CHUNK_BAD("x\r\n"),
    CHUNK_BAD("\r\n"),
    CHUNK_BAD(";a\r\n"),
    CHUNK_BAD("00000000000000001\r\n"),
    CHUNK_BAD("8000000000000000\r\n"),
    CHUNK_BAD("ffffffffffffffffff\r\n"),
    CHUNK_BAD("5\r\nhelloX\r\n0\r\n\r\n"),
    CHUNK_BAD("5\r\nhello\n0\r\n\r\n"),
    CHUNK_BAD("5\r\nhello\r0\r\n\r\n"),
    CHUNK_BAD("5\nhello\r\n0\r\n\r\n"),
    CHUNK_BAD("5\rhello\r\n"),
    CHUNK_BAD("0x5\r\nhello\r\n"),
    CHUNK_BAD("-5\r\nhello\r\n"),
    CHUNK_BAD("+5\r\nhello\r\n"),
    CHUNK_BAD("5 5\r\nhello\r\n"),
    CHUNK_BAD(" 5\r\nhello\r\n"),
    CHUNK_BAD("5 \r\nhello\r\n"),
    CHUNK_BAD("5;a=b\t\r\nhello\r\n"),
    CHUNK_BAD("5;\r\nhello\r\n"),
    CHUNK_BAD("5;=x\r\nhello\r\n"),
    CHUNK_BAD("5;a=\r\nhello\r\n"),
    CHUNK_BAD("5;a b\r\nhello\r\n"),
    CHUNK_BAD("5;a\x01\r\nhello\r\n"),
    CHUNK_BAD("5;a=b\x7f\r\nhello\r\n"),
    CHUNK_BAD("5;a=\"b\x01\"\r\nhello\r\n"),
    CHUNK_BAD("5;a=\"b\\\x01\"\r\nhello\r\n"),
    CHUNK_BAD("5;a=\"b\r\nhello\r\n"),
    CHUNK_BAD("5;a=\"b\"c\r\nhello\r\n"),
    CHUNK_BAD("5;a=\"b\"\n"),
    CHUNK_BAD("5;a=(b)\r\nhello\r\n"),
    CHUNK_BAD("0\r\nX Bad: y\r\n\r\n"),
    CHUNK_BAD("0\r\nX-Bad : y\r\n\r\n"),
    CHUNK_BAD("0\r\n: y\r\n\r\n"),
    CHUNK_BAD("0\r\nNoColon\r\n\r\n"),
    CHUNK_BAD("0\r\nX: a\r\n b\r\n\r\n"),
    CHUNK_BAD("0\r\nX: a\0b\r\n\r\n"),
    CHUNK_BAD("0\r\nX: a\nY: b\r\n\r\n"),
    CHUNK_BAD("0\r\n\n"),
    CHUNK_BAD("0\r\n\r\r\n"),
};

static void test_chunked_bad(void **state)
{
    struct chunk_run run;
    struct http1_chunked st;

    for (size_t i = 0; i < sizeof(chunk_bad) / sizeof(chunk_bad[0]); i++) {
        const struct chunk_case *c = &chunk_bad[i];
        if (run_chunked(c->text, c->len, c->len, c->len, &run, &st) != -1)
            fail_msg("chunked bad %zu \"%s\": accepted", i, show(c->text, c->len));
        if (run_chunked(c->text, c->len, 1, 1, &run, &st) != -1)
            fail_msg("chunked bad %zu \"%s\": accepted byte by byte", i, show(c->text, c->len));
    }
}

/* The biggest size that fits 2^63-1 is taken, and the parser stops on data. */
static void test_chunked_sizes(void **state)
{
    static const char big[] = "7fffffffffffffff;x=y\r\nabc";
    struct http1_chunked c;

    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_parse(&c, big, sizeof(big) - 1), sizeof(big) - 4);
    assert_int_equal(c.state, HTTP1_CHUNK_DATA);
    assert_int_equal(c.data_left, INT64_MAX);
    assert_int_equal(http1_chunked_parse(&c, "abc", 3), 0);
    http1_chunked_data_done(&c, 3);
    assert_int_equal(c.data_left, (uint64_t)INT64_MAX - 3);
    assert_int_equal(c.state, HTTP1_CHUNK_DATA);

    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_parse(&c, "FfFf\r\n", 6), 6);
    assert_int_equal(c.data_left, 0xffff);
    http1_chunked_data_done(&c, 0xffff);
    assert_int_equal(c.state, HTTP1_CHUNK_DATA_CRLF);
    assert_int_equal(http1_chunked_parse(&c, "\r", 1), 1);
    assert_int_equal(http1_chunked_parse(&c, "\n", 1), 1);
    assert_int_equal(c.state, HTTP1_CHUNK_SIZE);
}

/* A chunk-size line may be HTTP1_CHUNK_LINE_MAX bytes long, CRLF included;
 * the trailer section HTTP1_CHUNK_TRAILERS_MAX. */
static void test_chunked_limits(void **state)
{
    size_t n = HTTP1_CHUNK_TRAILERS_MAX + 64;
    char *buf = malloc(n);
    struct http1_chunked c;

    assert_non_null(buf);
    memset(buf, 'a', n);
    memcpy(buf, "1;x=", 4);
    memcpy(buf + HTTP1_CHUNK_LINE_MAX - 2, "\r\n", 2);
    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_parse(&c, buf, HTTP1_CHUNK_LINE_MAX), HTTP1_CHUNK_LINE_MAX);
    assert_int_equal(c.state, HTTP1_CHUNK_DATA);
    memcpy(buf + HTTP1_CHUNK_LINE_MAX - 2, "a\r\n", 3);
    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_parse(&c, buf, HTTP1_CHUNK_LINE_MAX + 1), HTTP1_BAD);

    /* Trailers of exactly the maximum, then one byte too many. */
    memset(buf, 'a', n);
    memcpy(buf, "0\r\nX:", 5);
    memcpy(buf + 3 + HTTP1_CHUNK_TRAILERS_MAX - 4, "\r\n\r\n", 4);
    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_parse(&c, buf, 3 + HTTP1_CHUNK_TRAILERS_MAX),
                     3 + HTTP1_CHUNK_TRAILERS_MAX);
    assert_int_equal(c.state, HTTP1_CHUNK_DONE);
    memcpy(buf + 3 + HTTP1_CHUNK_TRAILERS_MAX - 4, "a\r\n\r\n", 5);
    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_parse(&c, buf, 3 + HTTP1_CHUNK_TRAILERS_MAX + 1), HTTP1_BAD);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_table),       cmocka_unit_test(test_request_incremental),
        cmocka_unit_test(test_request_early_error), cmocka_unit_test(test_request_size_limit),
        cmocka_unit_test(test_response_table),      cmocka_unit_test(test_response_incremental),
        cmocka_unit_test(test_response_limits),     cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_header_lookup),       cmocka_unit_test(test_reason),
        cmocka_unit_test(test_chunked_good),        cmocka_unit_test(test_chunked_bad),
        cmocka_unit_test(test_chunked_sizes),       cmocka_unit_test(test_chunked_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
