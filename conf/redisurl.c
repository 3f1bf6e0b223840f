/* redisurl.c - the Redis server's address as written in redis.url.
 *
 * Hosts are numeric (or "localhost"), as in addr.c, and for one more reason:
 * hiredis resolves a name with a blocking getaddrinfo() on every reconnect,
 * on the control plane's loop, just when the network is misbehaving.
 */
#include "conf/redisurl.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/hexdigit.h"

#define TCP_PREFIX "redis://"
#define UNIX_PREFIX "unix://"

/* A span of the URL: parts are parsed in place, never copied twice. */
struct span {
    const char *p;
    size_t n;
};

static int fail(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (len > 0) {
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Percent-decodes s into out (size out_len, NUL-terminated). what names the
 * part in errors. */
static int decode(struct span s, char *out, size_t out_len, const char *what, char *why,
                  size_t why_len)
{
    size_t n = 0;

    for (size_t i = 0; i < s.n; i++) {
        int c = (unsigned char)s.p[i];

        if (c == '%') {
            int hi = i + 2 < s.n ? hex_digit_value(s.p[i + 1]) : -1;
            int lo = i + 2 < s.n ? hex_digit_value(s.p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return fail(why, why_len, "%s has a bad percent-escape (write %%25 for '%%')",
                            what);
            c = hi * 16 + lo;
            if (c == 0)
                return fail(why, why_len, "%s must not contain %%00", what);
            i += 2;
        }
        if (n + 1 >= out_len)
            return fail(why, why_len, "%s is longer than %zu bytes", what, out_len - 1);
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return 0;
}

/* A whole span of decimal digits as a number in lo..hi; -1 when it is not. */
static long parse_number(struct span s, long lo, long hi)
{
    long v = 0;

    if (s.n == 0)
        return -1;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
        if (v > hi)
            return -1;
    }
    return v < lo ? -1 : v;
}

static int parse_db(struct span s, struct redis_url *out, char *why, size_t why_len)
{
    long db = parse_number(s, 0, INT_MAX);

    if (db < 0)
        return fail(why, why_len, "database must be a number 0..%d, as in /3", INT_MAX);
    out->db = (int)db;
    return 0;
}

/* "[USER]:PASSWORD", the part before the last '@'. */
static int parse_credentials(struct span s, struct redis_url *out, char *why, size_t why_len)
{
    const char *colon = memchr(s.p, ':', s.n);

    if (colon == NULL)
        return fail(why, why_len,
                    "credentials must be written \":PASSWORD@\" or \"USER:PASSWORD@\"");
    struct span user = {s.p, (size_t)(colon - s.p)};
    struct span pass = {colon + 1, s.n - user.n - 1};
    if (pass.n == 0)
        return fail(why, why_len, "empty password (leave out the \"@\" part for no AUTH)");
    if (decode(user, out->user, sizeof(out->user), "user", why, why_len) < 0)
        return -1;
    return decode(pass, out->password, sizeof(out->password), "password", why, why_len);
}

static int store_host(struct span s, bool bracketed, struct redis_url *out, char *why,
                      size_t why_len)
{
    unsigned char addr[16];

    if (s.n == 0)
        return fail(why, why_len, "missing host after \"redis://\"");
    if (s.n >= sizeof(out->host))
        return fail(why, why_len, "host is longer than %zu bytes", sizeof(out->host) - 1);
    memcpy(out->host, s.p, s.n);
    out->host[s.n] = '\0';
    if (bracketed) {
        if (inet_pton(AF_INET6, out->host, addr) != 1)
            return fail(why, why_len, "\"[%s]\" is not an IPv6 address", out->host);
        return 0;
    }
    if (strcmp(out->host, "localhost") == 0 || inet_pton(AF_INET, out->host, addr) == 1)
        return 0;
    return fail(why, why_len, "host must be an IPv4 address, [IPv6] or localhost (got \"%s\")",
                out->host);
}

static size_t colons_before_slash(const char *s)
{
    size_t n = 0;

    for (; *s && *s != '/'; s++)
        n += *s == ':';
    return n;
}

/* "HOST[:PORT]": sets the host and port; *rest is what follows. */
static int parse_host_port(const char *s, struct redis_url *out, const char **rest, char *why,
                           size_t why_len)
{
    struct span host = {s, strcspn(s, ":/")};
    bool bracketed = s[0] == '[';

    if (bracketed) {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return fail(why, why_len, "missing ']' after the IPv6 address");
        host = (struct span){s + 1, (size_t)(close - s - 1)};
        s = close + 1;
        if (*s != '\0' && *s != ':' && *s != '/')
            return fail(why, why_len, "unexpected text after ']'");
    } else if (colons_before_slash(s) > 1) {
        return fail(why, why_len, "write an IPv6 address in brackets, as in redis://[::1]:6379");
    } else {
        s += host.n;
    }
    if (store_host(host, bracketed, out, why, why_len) < 0)
        return -1;
    if (*s == ':') {
        struct span port = {s + 1, strcspn(s + 1, "/")};
        long v = parse_number(port, 1, 65535);
        if (port.n == 0)
            return fail(why, why_len, "missing port after ':'");
        if (v < 0)
            return fail(why, why_len, "port must be 1..65535");
        out->port = (int)v;
        s = port.p + port.n;
    }
    *rest = s;
    return 0;
}

static int parse_tcp(const char *s, struct redis_url *out, char *why, size_t why_len)
{
    /* The last '@': a password may hold a raw '@' or '/'; a host or db never does. */
    const char *at = strrchr(s, '@');
    const char *rest = NULL;

    if (at != NULL) {
        if (parse_credentials((struct span){s, (size_t)(at - s)}, out, why, why_len) < 0)
            return -1;
        s = at + 1;
    }
    if (parse_host_port(s, out, &rest, why, why_len) < 0)
        return -1;
    if (*rest == '/' && rest[1] != '\0')
        return parse_db((struct span){rest + 1, strlen(rest + 1)}, out, why, why_len);
    return 0;
}

/* One "key=value" of a unix URL's query. */
static int parse_param(struct span kv, struct redis_url *out, char *why, size_t why_len)
{
    const char *eq = memchr(kv.p, '=', kv.n);
    size_t klen = eq ? (size_t)(eq - kv.p) : kv.n;
    struct span v = {eq ? eq + 1 : kv.p + kv.n, eq ? kv.n - klen - 1 : 0};

    if (klen == 2 && memcmp(kv.p, "db", 2) == 0)
        return parse_db(v, out, why, why_len);
    if (klen == 4 && memcmp(kv.p, "user", 4) == 0)
        return decode(v, out->user, sizeof(out->user), "user", why, why_len);
    if (klen == 8 && memcmp(kv.p, "password", 8) == 0) {
        if (v.n == 0)
            return fail(why, why_len, "empty password (leave out password= for no AUTH)");
        return decode(v, out->password, sizeof(out->password), "password", why, why_len);
    }
    return fail(why, why_len, "unknown parameter \"%.*s\" (expected db, user or password)",
                (int)(klen > 32 ? 32 : klen), kv.p);
}

static int parse_unix(const char *s, struct redis_url *out, char *why, size_t why_len)
{
    size_t plen = strcspn(s, "?");

    if (s[0] != '/' || plen < 2)
        return fail(why, why_len, "needs an absolute socket path, as in unix:///run/redis.sock");
    if (plen >= sizeof(out->path))
        return fail(why, why_len, "socket path is longer than %zu bytes", sizeof(out->path) - 1);
    memcpy(out->path, s, plen);
    out->path[plen] = '\0';
    out->unix_socket = true;
    for (const char *q = s + plen; *q != '\0';) {
        struct span kv = {q + 1, strcspn(q + 1, "&")};
        if (parse_param(kv, out, why, why_len) < 0)
            return -1;
        q = kv.p + kv.n;
    }
    if (out->user[0] != '\0' && out->password[0] == '\0')
        return fail(why, why_len, "user given without a password");
    return 0;
}

int redis_url_parse(const char *url, struct redis_url *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    out->port = REDIS_URL_DEFAULT_PORT;
    if (why_len > 0)
        why[0] = '\0';
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return fail(why, why_len, "must not contain spaces or control characters");
    }
    if (strncmp(url, TCP_PREFIX, strlen(TCP_PREFIX)) == 0)
        return parse_tcp(url + strlen(TCP_PREFIX), out, why, why_len);
    if (strncmp(url, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0)
        return parse_unix(url + strlen(UNIX_PREFIX), out, why, why_len);
    return fail(why, why_len, "must start with \"redis://\" or \"unix://\"");
}

/* The unix URL's query: "?db=2&user=u&password=***", or "" when all are defaults. */
static void unix_query(const struct redis_url *u, char *q, size_t len)
{
    char sep = '?';
    size_t n = 0;

    q[0] = '\0';
    if (u->db != 0) {
        n += (size_t)snprintf(q + n, len - n, "%cdb=%d", sep, u->db);
        sep = '&';
    }
    if (u->user[0] != '\0') {
        n += (size_t)snprintf(q + n, len - n, "%cuser=%s", sep, u->user);
        sep = '&';
    }
    if (u->password[0] != '\0')
        snprintf(q + n, len - n, "%cpassword=***", sep);
}

void redis_url_redacted(const struct redis_url *u, char *out, size_t len)
{
    /* db (11), user (127), password (3) and their keys always fit */
    char q[sizeof(u->user) + 48];
    bool v6 = strchr(u->host, ':') != NULL;

    if (len == 0)
        return;
    if (u->unix_socket) {
        unix_query(u, q, sizeof(q));
        snprintf(out, len, "unix://%s%s", u->path, q);
        return;
    }
    snprintf(out, len, "redis://%s%s%s%s%s:%d/%d", u->user, u->password[0] ? ":***@" : "",
             v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, u->db);
}
