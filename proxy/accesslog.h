/* accesslog.h - one JSON line per finished exchange.
 *
 * Each worker has its own accesslog that batches lines in memory and writes
 * them to the shared file descriptor (O_APPEND) when the batch is large or a
 * second old, so logging costs no syscall per request and no lock.
 */
#ifndef SY_PROXY_ACCESSLOG_H
#define SY_PROXY_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct accesslog;

struct accesslog_entry {
    const char *client; /* client address text */
    const char *method; /* NUL-terminated, may be truncated */
    const char *target; /* NUL-terminated, may be truncated */
    int status;         /* status sent to the client; 0 when none */
    const char *pool;   /* "blue", "green" or NULL */
    const char *server; /* server name or NULL */
    uint64_t req_body_bytes;
    uint64_t resp_body_bytes;
    double upstream_ms; /* request sent -> response head; < 0 when none */
    double total_ms;    /* request head -> response end */
    const char *error;  /* why the exchange failed, NULL when it did not */
};

/* Opens path for appending (mode 0640). Returns the fd or -1 with errno set. */
int accesslog_open_file(const char *path);

/* Returns a new per-worker log writing to fd (borrowed), flushed at least
 * once a second from base. */
struct accesslog *accesslog_new(struct event_base *base, int fd);

/* Writes what is batched and frees the log; NULL is fine. */
void accesslog_free(struct accesslog *log);

void accesslog_write(struct accesslog *log, const struct accesslog_entry *e);

/* Writes what is batched now. */
void accesslog_flush(struct accesslog *log);

#endif
