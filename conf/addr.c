/* addr.c - socket addresses and CIDR ranges as written in the config.
 *
 * Only numeric hosts (and "localhost") are accepted: a proxy that resolves
 * names at start-up silently pins whatever DNS said that day, which is worse
 * than asking for the address.
 */
#include "conf/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

/* Longest host text worth trying: a full IPv6 address with an IPv4 tail. */
#define HOST_MAX 64

/* Parses a decimal port 1..65535 from s (the whole string). */
static int parse_port(const char *s, uint16_t *out, const char **why)
{
    unsigned long v = 0;

    if (!*s) {
        *why = "missing port after ':'";
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            *why = "port must be a decimal number";
            return -1;
        }
        if (v <= 65535)
            v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v < 1 || v > 65535) {
        *why = "port out of range 1..65535";
        return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

/* Copies [s, s + n) into buf as a C string; fails when it does not fit. */
static int copy_host(char *buf, size_t size, const char *s, size_t n)
{
    if (n >= size)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int parse_v6_host(const char *s, const char **rest, struct in6_addr *a, const char **why)
{
    char host[HOST_MAX];
    const char *close = strchr(s, ']');

    if (!close) {
        *why = "missing ']' after IPv6 address";
        return -1;
    }
    if (copy_host(host, sizeof(host), s + 1, (size_t)(close - s - 1)) < 0 ||
        inet_pton(AF_INET6, host, a) != 1) {
        *why = "bad IPv6 address";
        return -1;
    }
    if (close[1] != ':') {
        *why =
            close[1] ? "expected ':' and a port after ']'" : "missing port (expected [IPV6]:PORT)";
        return -1;
    }
    *rest = close + 2;
    return 0;
}

static int parse_v4_host(const char *s, const char **rest, struct in_addr *a, const char **why)
{
    char host[HOST_MAX];
    const char *colon = strrchr(s, ':');

    if (!colon) {
        *why = "missing port (expected HOST:PORT)";
        return -1;
    }
    if (memchr(s, ':', (size_t)(colon - s))) {
        *why = "an IPv6 address must be in brackets, as in [::1]:8080";
        return -1;
    }
    if (colon == s) {
        *why = "missing host before ':'";
        return -1;
    }
    if (copy_host(host, sizeof(host), s, (size_t)(colon - s)) < 0) {
        *why = "host must be an IPv4 address, a bracketed IPv6 address or localhost";
        return -1;
    }
    if (strcmp(host, "localhost") == 0) {
        a->s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, a) != 1) {
        *why = "host must be an IPv4 address, a bracketed IPv6 address or localhost";
        return -1;
    }
    *rest = colon + 1;
    return 0;
}

int conf_addr_parse(const char *s, struct conf_addr *out, const char **why)
{
    const char *rest = NULL;
    char host[INET6_ADDRSTRLEN];
    uint16_t port;

    memset(out, 0, sizeof(*out));
    if (!s || !*s) {
        *why = "empty address";
        return -1;
    }
    if (s[0] == '[') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
        if (parse_v6_host(s, &rest, &sin6->sin6_addr, why) < 0 || parse_port(rest, &port, why) < 0)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        out->len = sizeof(*sin6);
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(out->text, sizeof(out->text), "[%s]:%u", host, (unsigned)port);
        return 0;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    if (parse_v4_host(s, &rest, &sin->sin_addr, why) < 0 || parse_port(rest, &port, why) < 0)
        return -1;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    out->len = sizeof(*sin);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    snprintf(out->text, sizeof(out->text), "%s:%u", host, (unsigned)port);
    return 0;
}

/* Parses the prefix length after '/' (the whole string), at most max. */
static int parse_prefix(const char *s, unsigned max, uint8_t *out, const char **why)
{
    unsigned v = 0;

    if (!*s) {
        *why = "missing prefix length after '/'";
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            *why = "prefix length must be a decimal number";
            return -1;
        }
        if (v <= max)
            v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > max) {
        *why = max == 32 ? "prefix length out of range 0..32" : "prefix length out of range 0..128";
        return -1;
    }
    *out = (uint8_t)v;
    return 0;
}

/* Clears the bits of addr beyond the first prefix bits. */
static void clear_host_bits(uint8_t *addr, size_t nbytes, unsigned prefix)
{
    for (size_t i = 0; i < nbytes; i++) {
        unsigned first = (unsigned)i * 8;
        if (prefix >= first + 8)
            continue;
        addr[i] = prefix <= first ? 0 : (uint8_t)(addr[i] & (0xFF << (8 - (prefix - first))));
    }
}

int conf_cidr_parse(const char *s, struct conf_cidr *out, const char **why)
{
    char host[HOST_MAX];

    memset(out, 0, sizeof(*out));
    if (!s || !*s) {
        *why = "empty address range";
        return -1;
    }
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    if (copy_host(host, sizeof(host), s, hlen) < 0) {
        *why = "bad address";
        return -1;
    }
    bool v6 = strchr(host, ':') != NULL;
    unsigned max = v6 ? 128 : 32;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, out->addr) != 1) {
        *why = v6 ? "bad IPv6 address" : "bad IPv4 address";
        return -1;
    }
    out->family = v6 ? AF_INET6 : AF_INET;
    out->prefix = (uint8_t)max;
    if (slash && parse_prefix(slash + 1, max, &out->prefix, why) < 0)
        return -1;
    clear_host_bits(out->addr, v6 ? 16 : 4, out->prefix);
    return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    size_t whole = prefix / 8;
    unsigned bits = prefix % 8;

    if (memcmp(a, b, whole) != 0)
        return false;
    if (!bits)
        return true;
    uint8_t mask = (uint8_t)(0xFF << (8 - bits));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool conf_cidr_match(const struct conf_cidr *c, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    uint8_t v6[16];
    const uint8_t *v4 = NULL;

    if (!c || !sa)
        return false;
    if (sa->sa_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        memcpy(v6, mapped, sizeof(mapped));
        memcpy(v6 + 12, v4, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        if (memcmp(v6, mapped, sizeof(mapped)) == 0)
            v4 = v6 + 12; /* a v4 client on a dual-stack socket */
    } else {
        return false;
    }
    if (c->family == AF_INET)
        return v4 && prefix_equal(v4, c->addr, c->prefix);
    if (c->family == AF_INET6)
        return prefix_equal(v6, c->addr, c->prefix);
    return false;
}

int conf_addr_listen(const struct conf_addr *addr, bool reuseport, int backlog)
{
    int one = 1;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        (addr->ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
