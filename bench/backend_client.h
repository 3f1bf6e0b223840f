/* backend_client.h - a small blocking HTTP/1.1 client for sy-backend's
 * tests. Every function asserts (cmocka) instead of returning errors, except
 * where it says otherwise. Sockets time out after 5 s: no test hangs.
 */
#ifndef SY_BENCH_BACKEND_CLIENT_H
#define SY_BENCH_BACKEND_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define BACKEND_CLIENT_BUF_MAX (4u << 20)

struct backend_client {
    int fd;
    char *buf; /* bytes read but not yet consumed */
    size_t len;
};

struct backend_client_resp {
    int status;
    char head[8192]; /* status line and headers through the empty line, NUL-terminated */
    char *body;      /* NUL-terminated; freed by backend_client_resp_clear */
    size_t body_len;
};

/* Connects to 127.0.0.1:port. */
void backend_client_open(struct backend_client *c, int port);

/* Closes the socket and frees the buffer. */
void backend_client_close(struct backend_client *c);

void backend_client_send(struct backend_client *c, const void *p, size_t n);
void backend_client_send_str(struct backend_client *c, const char *s);

/* Reads more into c->buf. Returns the bytes read, 0 on EOF, or -1 on an
 * error or a timeout (errno tells which). */
ssize_t backend_client_fill(struct backend_client *c);

/* Drops the first n buffered bytes. */
void backend_client_consume(struct backend_client *c, size_t n);

/* Reads one answer into *r (its body is new). head_only: the request was HEAD. */
void backend_client_read(struct backend_client *c, struct backend_client_resp *r, bool head_only);

void backend_client_resp_clear(struct backend_client_resp *r);

/* Copies the value of header name (case-insensitive) found in head into out;
 * false when absent. */
bool backend_client_header(const char *head, const char *name, char *out, size_t cap);

/* True when the server closed: recv sees EOF or a reset within the timeout. */
bool backend_client_closed(struct backend_client *c);

/* One request on a fresh connection to port; the answer goes to *r. */
void backend_client_exchange(int port, const char *req, struct backend_client_resp *r);

#endif
