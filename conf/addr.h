/* addr.h - socket addresses and CIDR ranges as written in the config. */
#ifndef SY_CONF_ADDR_H
#define SY_CONF_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct conf_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64]; /* as "1.2.3.4:80" or "[::1]:80", for logs and headers */
};

struct conf_cidr {
    sa_family_t family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];   /* network byte order, host bits zeroed */
    uint8_t prefix;     /* 0..32 or 0..128 */
};

/* Parses "HOST:PORT" where HOST is an IPv4 address, a bracketed IPv6 address
 * ("[::1]:8080") or "localhost", and PORT is 1..65535. Returns 0, or -1 with
 * *why set to a static message. */
int conf_addr_parse(const char *s, struct conf_addr *out, const char **why);

/* Parses "ADDR/PREFIX" or a bare address (a /32 or /128). Returns 0 or -1 with
 * *why set to a static message. */
int conf_cidr_parse(const char *s, struct conf_cidr *out, const char **why);

/* True when sa (AF_INET or AF_INET6; a v4-mapped v6 address counts as v4)
 * lies inside c. */
bool conf_cidr_match(const struct conf_cidr *c, const struct sockaddr *sa);

/* Makes a non-blocking, close-on-exec TCP socket listening on addr (with
 * SO_REUSEADDR; IPv6 sockets are v6-only; SO_REUSEPORT when reuseport, so
 * that several sockets can share the address). Returns the new fd, or -1
 * with errno set (EADDRINUSE when another socket holds the address and
 * either side did not ask for reuseport). */
int conf_addr_listen(const struct conf_addr *addr, bool reuseport, int backlog);

#endif
