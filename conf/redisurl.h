/* redisurl.h - the Redis server's address as written in redis.url. */
#ifndef SY_CONF_REDISURL_H
#define SY_CONF_REDISURL_H

#include <stdbool.h>
#include <stddef.h>

#define REDIS_URL_DEFAULT_PORT 6379

struct redis_url {
    bool unix_socket;
    char host[256];     /* "127.0.0.1", "::1" (written [::1] in the URL) or "localhost" */
    int port;           /* default 6379 */
    char path[108];     /* the unix socket's path when unix_socket */
    char password[256]; /* "" = no AUTH; percent-decoded */
    char user[128];     /* "" = none (AUTH with the password only); percent-decoded */
    int db;             /* >= 0; default 0 */
};

/* Parses "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]" and
 * "unix:///ABS/PATH[?db=N][&user=USER][&password=PASSWORD]" into *out.
 * HOST is an IPv4 address, a bracketed IPv6 address or "localhost". USER and
 * PASSWORD are percent-decoded ("%40" for '@'). Returns 0, or -1 with why
 * (at most why_len bytes, NUL-terminated) saying what is wrong. */
int redis_url_parse(const char *url, struct redis_url *out, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* Writes u as a URL whose password, if any, reads "***" (for logs and
 * status): "redis://:***@127.0.0.1:6379/0", "unix:///run/redis.sock?db=2".
 * Truncates to fit len bytes. */
void redis_url_redacted(const struct redis_url *u, char *out, size_t len);

#endif
