/* accesslog.c - batched JSON lines. */
#include "proxy/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf/log.h"

#define ACCESSLOG_BATCH_BYTES 32768

struct accesslog {
    int fd;
    struct evbuffer *batch;
    struct event *timer;
    int last_errno; /* to log a failing write once, not per batch */
};

int accesslog_open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    accesslog_flush(arg);
}

struct accesslog *accesslog_new(struct event_base *base, int fd)
{
    struct accesslog *log = calloc(1, sizeof(*log));
    struct timeval second = {1, 0};

    if (log == NULL)
        return NULL;
    log->fd = fd;
    log->batch = evbuffer_new();
    log->timer = event_new(base, -1, EV_PERSIST, flush_timer_cb, log);
    if (log->batch == NULL || log->timer == NULL || event_add(log->timer, &second) < 0) {
        accesslog_free(log);
        return NULL;
    }
    return log;
}

void accesslog_free(struct accesslog *log)
{
    if (log == NULL)
        return;
    if (log->batch != NULL)
        accesslog_flush(log);
    if (log->timer != NULL)
        event_free(log->timer);
    if (log->batch != NULL)
        evbuffer_free(log->batch);
    free(log);
}

void accesslog_flush(struct accesslog *log)
{
    while (evbuffer_get_length(log->batch) > 0) {
        int n = evbuffer_write(log->batch, log->fd);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (errno != log->last_errno)
            log_error("access log: write: %s (lines dropped)", strerror(errno));
        log->last_errno = errno;
        evbuffer_drain(log->batch, evbuffer_get_length(log->batch));
        return;
    }
    log->last_errno = 0;
}

/* Appends s as a JSON string, escaping quotes, backslashes and controls. */
static void add_json_string(struct evbuffer *out, const char *s)
{
    const char *run = s;

    evbuffer_add(out, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7f)
            continue;
        evbuffer_add(out, run, (size_t)(s - run));
        evbuffer_add_printf(out, "\\u%04x", c);
        run = s + 1;
    }
    evbuffer_add(out, run, (size_t)(s - run));
    evbuffer_add(out, "\"", 1);
}

static void add_time(struct evbuffer *out)
{
    struct timespec ts;
    char when[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    log_format_time((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, when, sizeof(when));
    evbuffer_add_printf(out, "{\"time\":\"%s\"", when);
}

static void add_field(struct evbuffer *out, const char *key, const char *value)
{
    evbuffer_add_printf(out, ",\"%s\":", key);
    if (value == NULL)
        evbuffer_add(out, "null", 4);
    else
        add_json_string(out, value);
}

void accesslog_write(struct accesslog *log, const struct accesslog_entry *e)
{
    struct evbuffer *out = log->batch;

    add_time(out);
    add_field(out, "client", e->client);
    add_field(out, "method", e->method);
    add_field(out, "target", e->target);
    evbuffer_add_printf(out, ",\"status\":%d", e->status);
    add_field(out, "pool", e->pool);
    add_field(out, "server", e->server);
    evbuffer_add_printf(out, ",\"req_body_bytes\":%llu,\"resp_body_bytes\":%llu",
                        (unsigned long long)e->req_body_bytes,
                        (unsigned long long)e->resp_body_bytes);
    if (e->upstream_ms >= 0)
        evbuffer_add_printf(out, ",\"upstream_ms\":%.3f", e->upstream_ms);
    evbuffer_add_printf(out, ",\"total_ms\":%.3f", e->total_ms);
    add_field(out, "error", e->error);
    evbuffer_add(out, "}\n", 2);
    if (evbuffer_get_length(out) >= ACCESSLOG_BATCH_BYTES)
        accesslog_flush(log);
}
