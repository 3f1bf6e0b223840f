/* http1.c - strict HTTP/1.1 head parsing (RFC 9110, RFC 9112).
 *
 * The head parsers make one left-to-right pass over the bytes and decide at
 * each position from the bytes seen so far only. That is what makes them
 * safely incremental: a prefix of a head either yields HTTP1_INCOMPLETE or the
 * very answer the whole head would yield, so an error is reported as soon as
 * the byte that causes it has arrived. Heads are small (the caller bounds them
 * by max_bytes), so a call with a longer buffer simply rescans from the start.
 */
#include "proxy/http1.h"

#include <limits.h>
#include <string.h>

#include "proxy/http1_chars.h"

/* The byte classes of http1_chars.h. */
const uint8_t http1_char_class[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x1a, 0x0f, 0x06, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x0f, 0x0f, 0x0e, 0x0f, 0x0f, 0x0e,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x0e, 0x0e, 0x0e, 0x0e,
    0x0e, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x06, 0x0e, 0x0f, 0x0f,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0f, 0x0e, 0x0f, 0x00,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
};

static inline uint8_t lower(char c)
{
    uint8_t u = (uint8_t)c;
    return (u >= 'A' && u <= 'Z') ? (uint8_t)(u + ('a' - 'A')) : u;
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* True when a[0..n) equals b[0..b_len), ignoring ASCII case. */
static bool eq_nocase(const char *a, size_t n, const char *b, size_t b_len)
{
    if (n != b_len)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

#define EQ_LIT(s, n, lit) eq_nocase((s), (n), lit, sizeof(lit) - 1)

static const char *skip_class(const char *p, const char *end, uint8_t cls)
{
    while (p < end && http1_is_class(*p, cls))
        p++;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Small public helpers                                                      */

bool http1_header_is(const struct http1_header *h, const char *name)
{
    return eq_nocase(h->name, h->name_len, name, strlen(name));
}

const struct http1_header *http1_header_find(const struct http1_header *headers, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (http1_header_is(&headers[i], name))
            return &headers[i];
    }
    return NULL;
}

bool http1_list_has(const char *value, size_t len, const char *token)
{
    size_t tok_len = strlen(token);
    const char *p = value;
    const char *end = value + len;

    while (p < end) {
        p = skip_class(p, end, C_OWS);
        const char *elem = p;
        while (p < end && *p != ',')
            p++;
        const char *elem_end = p;
        while (elem_end > elem && http1_is_class(elem_end[-1], C_OWS))
            elem_end--;
        if (eq_nocase(elem, (size_t)(elem_end - elem), token, tok_len))
            return true;
        if (p < end)
            p++; /* the comma */
    }
    return false;
}

/* The table is packed by hand, a row per line would be 40 lines. */
/* clang-format off */
static const struct {
    int status;
    const char *text;
} reasons[] = {
    {100, "Continue"}, {101, "Switching Protocols"}, {103, "Early Hints"}, {200, "OK"},
    {201, "Created"}, {202, "Accepted"}, {204, "No Content"}, {206, "Partial Content"},
    {301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"}, {304, "Not Modified"},
    {307, "Temporary Redirect"}, {308, "Permanent Redirect"}, {400, "Bad Request"},
    {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
    {408, "Request Timeout"}, {409, "Conflict"}, {411, "Length Required"},
    {413, "Content Too Large"}, {414, "URI Too Long"}, {415, "Unsupported Media Type"},
    {417, "Expectation Failed"}, {421, "Misdirected Request"}, {426, "Upgrade Required"},
    {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"}, {501, "Not Implemented"}, {502, "Bad Gateway"},
    {503, "Service Unavailable"}, {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
};
/* clang-format on */

const char *http1_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status)
            return reasons[i].text;
    }
    return "Unknown";
}

/* ------------------------------------------------------------------------ */
/* Scanning primitives of the head parsers                                   */

struct cursor {
    const char *p;
    const char *end; /* never past max_bytes */
};

/* Consumes a CRLF. A CR followed by anything else, or a bare LF, is BAD. */
static int expect_crlf(struct cursor *c)
{
    if (c->p == c->end)
        return HTTP1_INCOMPLETE;
    if (*c->p != '\r')
        return HTTP1_BAD;
    if (c->p + 1 == c->end)
        return HTTP1_INCOMPLETE;
    if (c->p[1] != '\n')
        return HTTP1_BAD;
    c->p += 2;
    return 0;
}

/* Consumes the exact bytes lit[0..n); a matching prefix cut by the end of the
 * input is INCOMPLETE, any differing byte is BAD at once. */
static int expect_lit(struct cursor *c, const char *lit, size_t n)
{
    size_t avail = (size_t)(c->end - c->p);
    size_t k = avail < n ? avail : n;

    if (memcmp(c->p, lit, k) != 0)
        return HTTP1_BAD;
    if (k < n)
        return HTTP1_INCOMPLETE;
    c->p += n;
    return 0;
}

/* Reads "HTTP/1.0" or "HTTP/1.1": other versions are not ours to parse. */
static int parse_version(struct cursor *c, int *minor)
{
    int r = expect_lit(c, "HTTP/1.", 7);

    if (r != 0)
        return r;
    if (c->p == c->end)
        return HTTP1_INCOMPLETE;
    if (*c->p != '0' && *c->p != '1')
        return HTTP1_BAD;
    *minor = *c->p - '0';
    c->p++;
    return 0;
}

/* Parses one field line "name: value CRLF" into h (pointers borrowed from the
 * buffer). No whitespace may precede the colon (RFC 9112 5.1); the value
 * loses its surrounding OWS. */
static int parse_field(struct cursor *c, struct http1_header *h)
{
    const char *name = c->p;
    const char *p = skip_class(name, c->end, C_TCHAR);

    if (p == c->end)
        return HTTP1_INCOMPLETE;
    if (*p != ':' || p == name)
        return HTTP1_BAD;
    h->name = name;
    h->name_len = (size_t)(p - name);
    p = skip_class(p + 1, c->end, C_OWS);
    const char *value = p;
    p = skip_class(p, c->end, C_VALUE);
    const char *value_end = p;
    while (value_end > value && http1_is_class(value_end[-1], C_OWS))
        value_end--;
    h->value = value;
    h->value_len = (size_t)(value_end - value);
    c->p = p;
    return expect_crlf(c);
}

/* ------------------------------------------------------------------------ */
/* What the fields say about framing and the connection                      */

struct head_facts {
    bool request;
    int minor_version;
    unsigned hosts;
    bool has_cl;
    bool has_te; /* always exactly "chunked": anything else was rejected */
    bool has_upgrade;
    bool conn_close;
    bool conn_keep_alive;
    bool conn_upgrade;
    bool expect_continue;
    uint64_t content_length;
};

/* Parses a Content-Length value: a comma list of 1*DIGIT elements that must
 * all be equal (RFC 9112 6.3 lets a recipient accept "5, 5"), each at most
 * 2^63-1. Signs, inner spaces and empty elements are rejected. */
static int parse_content_length(const char *v, size_t len, uint64_t *out)
{
    const char *p = v;
    const char *end = v + len;
    bool have = false;

    for (;;) {
        const char *digits = p = skip_class(p, end, C_OWS);
        uint64_t n = 0;
        while (p < end && is_digit(*p)) {
            unsigned d = (unsigned)(*p - '0');
            if (n > ((uint64_t)INT64_MAX - d) / 10)
                return -1;
            n = n * 10 + d;
            p++;
        }
        if (p == digits || (have && n != *out))
            return -1;
        *out = n;
        have = true;
        p = skip_class(p, end, C_OWS);
        if (p == end)
            return 0;
        if (*p != ',')
            return -1;
        p++;
    }
}

static int note_content_length(struct head_facts *f, const struct http1_header *h)
{
    uint64_t n = 0;

    if (parse_content_length(h->value, h->value_len, &n) < 0)
        return -1;
    /* Several Content-Length lines must agree, and never meet a
     * Transfer-Encoding: either is a classic request smuggling vector. */
    if (f->has_te || (f->has_cl && n != f->content_length))
        return -1;
    f->has_cl = true;
    f->content_length = n;
    return 0;
}

static int note_transfer_encoding(struct head_facts *f, const struct http1_header *h)
{
    /* Only a lone "chunked" is accepted: we implement no other coding (RFC
     * 9112 6.1 would allow a 501 for those; a 400 closes just the same), a
     * second TE line would make the list "chunked, chunked", and TE beside
     * Content-Length or in an HTTP/1.0 message is faulty framing (6.1, 6.3). */
    if (f->has_te || f->has_cl || f->minor_version == 0)
        return -1;
    if (!EQ_LIT(h->value, h->value_len, "chunked"))
        return -1;
    f->has_te = true;
    return 0;
}

/* True when s[0..n) can be uri-host [ ":" port ] (RFC 3986 3.2.2): ASCII
 * letters, digits, "-._~", pct-encoding, sub-delims, and ":[]" for ports
 * and IP literals. Never "@" (userinfo: which host is meant?), "/", "?",
 * "#", whitespace or non-ASCII. */
static bool host_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
              (c != '\0' && strchr("-._~%!$&'()*+,;=:[]", c) != NULL)))
            return false;
    }
    return true;
}

static int note_host(struct head_facts *f, const struct http1_header *h)
{
    /* An invalid Host is a 400 (RFC 9112 3.2), so is a repeated one, which
     * is counted here. */
    if (!host_ok(h->value, h->value_len))
        return -1;
    f->hosts++;
    return f->hosts > 1 ? -1 : 0;
}

static void note_connection(struct head_facts *f, const struct http1_header *h)
{
    f->conn_close |= http1_list_has(h->value, h->value_len, "close");
    f->conn_keep_alive |= http1_list_has(h->value, h->value_len, "keep-alive");
    f->conn_upgrade |= http1_list_has(h->value, h->value_len, "upgrade");
}

/* Folds one field into the facts; -1 when the field makes the message BAD.
 * Dispatching on the name length first keeps unrelated fields cheap. */
static int note_field(struct head_facts *f, const struct http1_header *h)
{
    switch (h->name_len) {
    case 4:
        if (f->request && EQ_LIT(h->name, 4, "host"))
            return note_host(f, h);
        break;
    case 6:
        if (f->request && EQ_LIT(h->name, 6, "expect")) {
            /* The only expectation there is; we cannot meet any other
             * (RFC 9110 10.1.1 says 417, a 400 serves as well here). */
            if (!EQ_LIT(h->value, h->value_len, "100-continue"))
                return -1;
            f->expect_continue = true;
        }
        break;
    case 7:
        if (EQ_LIT(h->name, 7, "upgrade"))
            f->has_upgrade = true;
        break;
    case 10:
        if (EQ_LIT(h->name, 10, "connection"))
            note_connection(f, h);
        break;
    case 14:
        if (EQ_LIT(h->name, 14, "content-length"))
            return note_content_length(f, h);
        break;
    case 17:
        if (EQ_LIT(h->name, 17, "transfer-encoding"))
            return note_transfer_encoding(f, h);
        break;
    }
    return 0;
}

/* Parses the field lines and the empty line that ends the head. Returns 0
 * with *n fields stored in headers[], or a parser result. */
static int parse_fields(struct cursor *c, struct http1_header *headers, size_t max_headers,
                        size_t *n, struct head_facts *f)
{
    *n = 0;
    for (;;) {
        if (c->p == c->end)
            return HTTP1_INCOMPLETE;
        if (*c->p == '\r')
            return expect_crlf(c);
        /* A line starting with whitespace is obs-fold (or whitespace between
         * the start-line and the first field): both are rejected (5.2, 2.2). */
        if (http1_is_class(*c->p, C_OWS))
            return HTTP1_BAD;
        if (*n == max_headers)
            return HTTP1_TOO_LARGE;
        int r = parse_field(c, &headers[*n]);
        if (r != 0)
            return r;
        if (note_field(f, &headers[*n]) < 0)
            return HTTP1_BAD;
        (*n)++;
    }
}

static unsigned connection_flags(const struct head_facts *f)
{
    unsigned flags = 0;

    if (f->conn_close || (f->minor_version == 0 && !f->conn_keep_alive))
        flags |= HTTP1_F_CLOSE;
    if (f->conn_upgrade && f->has_upgrade)
        flags |= HTTP1_F_UPGRADE;
    return flags;
}

/* Turns a scan status into the parsers' result. The scan never looks past
 * max_bytes, so running out of input there means the head is too large. */
static int head_result(int r, const struct cursor *c, const char *buf, size_t len, size_t max)
{
    if (r == HTTP1_INCOMPLETE && len >= max)
        return HTTP1_TOO_LARGE;
    if (r < 0)
        return r;
    return (int)(c->p - buf);
}

static struct cursor head_cursor(const char *buf, size_t len, size_t *max_bytes)
{
    struct cursor c;

    /* The result is an int: a head cannot be longer than INT_MAX. */
    if (*max_bytes > INT_MAX)
        *max_bytes = INT_MAX;
    c.p = buf;
    c.end = buf + (len < *max_bytes ? len : *max_bytes);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static enum http1_method method_id(const char *m, size_t n)
{
    static const struct {
        const char *name;
        size_t len;
        enum http1_method id;
    } methods[] = {
        {"GET", 3, HTTP1_M_GET},         {"HEAD", 4, HTTP1_M_HEAD},
        {"POST", 4, HTTP1_M_POST},       {"PUT", 3, HTTP1_M_PUT},
        {"DELETE", 6, HTTP1_M_DELETE},   {"OPTIONS", 7, HTTP1_M_OPTIONS},
        {"CONNECT", 7, HTTP1_M_CONNECT},
    };

    /* Method names are case-sensitive (RFC 9110 9.1): "get" is another one. */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (n == methods[i].len && memcmp(m, methods[i].name, n) == 0)
            return methods[i].id;
    }
    return HTTP1_M_OTHER;
}

/* authority-form (RFC 9112 3.2.3): uri-host ":" port, no userinfo, no path. */
static bool authority_form_ok(const char *t, size_t n)
{
    size_t colon = n;

    while (colon > 0 && t[colon - 1] != ':')
        colon--;
    if (colon < 2 || n - colon < 1 || n - colon > 5)
        return false; /* no colon, empty host, or no or too long a port */
    for (size_t i = colon; i < n; i++) {
        if (!is_digit(t[i]))
            return false;
    }
    for (size_t i = 0; i < colon - 1; i++) {
        if (t[i] == '/' || t[i] == '?' || t[i] == '#' || t[i] == '@')
            return false;
    }
    return true;
}

/* absolute-form (3.2.2), limited to the schemes a web proxy serves, with a
 * non-empty authority that is a plain host: userinfo is refused (RFC 9110
 * 4.2.4), the authority becomes the Host the server sees. */
static bool absolute_form_ok(const char *t, size_t n)
{
    size_t skip, end;

    if (n > 7 && EQ_LIT(t, 7, "http://"))
        skip = 7;
    else if (n > 8 && EQ_LIT(t, 8, "https://"))
        skip = 8;
    else
        return false;
    end = skip;
    while (end < n && t[end] != '/' && t[end] != '?')
        end++;
    return end > skip && host_ok(t + skip, end - skip);
}

/* Each request-target form belongs to its methods (RFC 9112 3.2). */
static bool target_form_ok(enum http1_method m, const char *t, size_t n)
{
    /* No form has a fragment: it is the client's alone, and servers differ
     * on whether "/a#/b" names /a or /a#/b. */
    if (memchr(t, '#', n) != NULL)
        return false;
    if (m == HTTP1_M_CONNECT)
        return authority_form_ok(t, n);
    if (t[0] == '/')
        return true;
    if (n == 1 && t[0] == '*')
        return m == HTTP1_M_OPTIONS;
    return absolute_form_ok(t, n);
}

static int parse_request_line(struct cursor *c, struct http1_request *req)
{
    /* RFC 9112 2.2: a server SHOULD ignore empty lines before the request. */
    while (c->p < c->end && *c->p == '\r') {
        int r = expect_crlf(c);
        if (r != 0)
            return r;
    }
    req->method = c->p;
    const char *p = skip_class(c->p, c->end, C_TCHAR);
    if (p == c->end)
        return HTTP1_INCOMPLETE;
    if (*p != ' ' || p == req->method)
        return HTTP1_BAD;
    req->method_len = (size_t)(p - req->method);
    req->method_id = method_id(req->method, req->method_len);
    req->target = ++p;
    p = skip_class(p, c->end, C_VCHAR);
    if (p == c->end)
        return HTTP1_INCOMPLETE;
    req->target_len = (size_t)(p - req->target);
    if (*p != ' ' || req->target_len == 0 ||
        !target_form_ok(req->method_id, req->target, req->target_len))
        return HTTP1_BAD;
    c->p = p + 1;
    int r = parse_version(c, &req->minor_version);
    return r != 0 ? r : expect_crlf(c);
}

static int finish_request(struct http1_request *req, const struct head_facts *f)
{
    if (f->minor_version == 1 && f->hosts != 1)
        return HTTP1_BAD; /* RFC 9112 3.2: Host is mandatory in 1.1 */
    req->body = HTTP1_BODY_NONE;
    req->content_length = 0;
    if (f->has_te) {
        req->body = HTTP1_BODY_CHUNKED;
    } else if (f->has_cl) {
        req->body = HTTP1_BODY_LENGTH;
        req->content_length = f->content_length;
    }
    req->flags = connection_flags(f);
    /* 100-continue in an HTTP/1.0 request MUST be ignored (RFC 9110 10.1.1). */
    if (f->expect_continue && f->minor_version == 1)
        req->flags |= HTTP1_F_EXPECT_CONTINUE;
    if (f->hosts == 1)
        req->flags |= HTTP1_F_HAS_HOST;
    return 0;
}

int http1_parse_request(const char *buf, size_t len, size_t max_bytes, struct http1_header *headers,
                        size_t max_headers, struct http1_request *req)
{
    struct cursor c = head_cursor(buf, len, &max_bytes);
    struct head_facts f = {.request = true};

    req->headers = headers;
    req->num_headers = 0;
    int r = parse_request_line(&c, req);
    if (r == 0) {
        f.minor_version = req->minor_version;
        r = parse_fields(&c, headers, max_headers, &req->num_headers, &f);
    }
    if (r == 0)
        r = finish_request(req, &f);
    return head_result(r, &c, buf, len, max_bytes);
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                 */

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF. The
 * " reason" part is also accepted absent, as many servers send it so. */
static int parse_status_line(struct cursor *c, struct http1_response *res)
{
    int r = parse_version(c, &res->minor_version);

    if (r != 0)
        return r;
    if ((r = expect_lit(c, " ", 1)) != 0)
        return r;
    res->status = 0;
    for (int i = 0; i < 3; i++, c->p++) {
        if (c->p == c->end)
            return HTTP1_INCOMPLETE;
        if (!is_digit(*c->p))
            return HTTP1_BAD;
        res->status = res->status * 10 + (*c->p - '0');
    }
    if (res->status < 100 || res->status > 599)
        return HTTP1_BAD;
    if (c->p == c->end)
        return HTTP1_INCOMPLETE;
    res->reason = c->p;
    res->reason_len = 0;
    if (*c->p == ' ') {
        res->reason = ++c->p;
        c->p = skip_class(c->p, c->end, C_VALUE);
        res->reason_len = (size_t)(c->p - res->reason);
    }
    return expect_crlf(c);
}

/* Decides the body of a response (RFC 9112 6.3). */
static int finish_response(struct http1_response *res, const struct head_facts *f,
                           enum http1_method request_method)
{
    bool no_content = res->status < 200 || res->status == 204;

    /* 1xx and 204 must not carry framing (RFC 9112 6.1, RFC 9110 8.6); one
     * that does is confused about its own messages and is not trusted. */
    if (no_content && (f->has_te || (f->has_cl && f->content_length != 0)))
        return HTTP1_BAD;
    res->body = HTTP1_BODY_NONE;
    res->content_length = 0;
    res->flags = connection_flags(f);
    if (no_content || res->status == 304 || request_method == HTTP1_M_HEAD ||
        (request_method == HTTP1_M_CONNECT && res->status < 300))
        return 0;
    if (f->has_te) {
        res->body = HTTP1_BODY_CHUNKED;
    } else if (f->has_cl) {
        res->body = HTTP1_BODY_LENGTH;
        res->content_length = f->content_length;
    } else {
        res->body = HTTP1_BODY_CLOSE;
        res->flags |= HTTP1_F_CLOSE; /* the close is what ends this body */
    }
    return 0;
}

int http1_parse_response(const char *buf, size_t len, size_t max_bytes,
                         struct http1_header *headers, size_t max_headers,
                         enum http1_method request_method, struct http1_response *res)
{
    struct cursor c = head_cursor(buf, len, &max_bytes);
    struct head_facts f = {.request = false};

    res->headers = headers;
    res->num_headers = 0;
    /* Unlike a request, a response gets no leniency for leading empty
     * lines: they would mean the previous body's framing was wrong. */
    int r = parse_status_line(&c, res);
    if (r == 0) {
        f.minor_version = res->minor_version;
        r = parse_fields(&c, headers, max_headers, &res->num_headers, &f);
    }
    if (r == 0)
        r = finish_response(res, &f, request_method);
    return head_result(r, &c, buf, len, max_bytes);
}
