/* conn.c - buffered sockets with speculative writes and batched flushes. */
#include "proxy/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#define CONN_READ_MIN 16384 /* space offered to one recv */
#define CONN_READ_MAX 65536

#define CONN_FL_READ_ON 0x01     /* the user wants input */
#define CONN_FL_READ_ARMED 0x02  /* rev is added */
#define CONN_FL_WRITE_ARMED 0x04 /* wev is added: the socket would block */
#define CONN_FL_CONNECTING 0x08
#define CONN_FL_EOF 0x10          /* read returned 0: never read again */
#define CONN_FL_FLUSH_QUEUED 0x20 /* flush_ev is active */
#define CONN_FL_SHUT_PENDING 0x40 /* shutdown(SHUT_WR) once the output is out */
#define CONN_FL_FAILED 0x80       /* a write failed: the event callback was told */

struct conn {
    int fd;
    unsigned flags;
    struct event rev;      /* EV_READ | EV_PERSIST */
    struct event wev;      /* EV_WRITE | EV_PERSIST: connect, or output that would block */
    struct event flush_ev; /* activated by hand: writes a callback's output in one go */
    struct evbuffer *in, *out;
    size_t read_high, write_low;
    const struct timeval *rd_tv, *wr_tv;
    conn_read_cb rd;
    conn_write_cb wr;
    conn_event_cb ev;
    void *arg;
};

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(evutil_socket_t fd, short what, void *arg);
static void flush_cb(evutil_socket_t fd, short what, void *arg);

/* A persistent event remembers its last timeout across event_del() and
 * event_add(ev, NULL); only event_remove_timer() forgets it. */
static void disarm(struct event *ev)
{
    event_remove_timer(ev);
    event_del(ev);
}

/* Changes the timeout of an armed event; NULL removes it. */
static void retime(struct event *ev, const struct timeval *tv)
{
    if (tv != NULL)
        event_add(ev, tv);
    else
        event_remove_timer(ev);
}

/* Adds or removes rev so that it is armed exactly when reading is wanted,
 * possible (no EOF) and allowed (input under the high-water mark). */
static void read_update(struct conn *c)
{
    bool want =
        (c->flags & (CONN_FL_READ_ON | CONN_FL_EOF | CONN_FL_CONNECTING)) == CONN_FL_READ_ON &&
        (c->read_high == 0 || evbuffer_get_length(c->in) < c->read_high);

    if (want && !(c->flags & CONN_FL_READ_ARMED)) {
        event_add(&c->rev, c->rd_tv);
        c->flags |= CONN_FL_READ_ARMED;
    } else if (!want && (c->flags & CONN_FL_READ_ARMED)) {
        disarm(&c->rev);
        c->flags &= ~CONN_FL_READ_ARMED;
    }
}

/* Input drained by the consumer: maybe resume reading. */
static void input_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;

    if (info->n_deleted > 0 && !(c->flags & CONN_FL_READ_ARMED))
        read_update(c);
}

/* Output added: write it right after the current callback, in one go. */
static void output_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;

    if (info->n_added == 0 ||
        (c->flags & (CONN_FL_FLUSH_QUEUED | CONN_FL_WRITE_ARMED | CONN_FL_CONNECTING)))
        return;
    c->flags |= CONN_FL_FLUSH_QUEUED;
    event_active(&c->flush_ev, EV_WRITE, 0);
}

static struct conn *conn_alloc(struct event_base *base, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (c->in == NULL || c->out == NULL || evbuffer_add_cb(c->in, input_changed, c) == NULL ||
        evbuffer_add_cb(c->out, output_changed, c) == NULL) {
        evbuffer_free(c->in);
        evbuffer_free(c->out);
        free(c);
        return NULL;
    }
    event_assign(&c->rev, base, fd, EV_READ | EV_PERSIST, read_cb, c);
    event_assign(&c->wev, base, fd, EV_WRITE | EV_PERSIST, write_cb, c);
    event_assign(&c->flush_ev, base, -1, 0, flush_cb, c);
    c->flags = CONN_FL_READ_ON;
    return c;
}

struct conn *conn_new(struct event_base *base, int fd)
{
    struct conn *c = conn_alloc(base, fd);

    if (c != NULL)
        read_update(c);
    return c;
}

struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t len)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct conn *c;

    if (fd < 0)
        return NULL;
    /* Heads and small answers must not wait for Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    c = conn_alloc(base, fd);
    if (c == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    /* Even an immediate success is reported from the loop, never from here. */
    c->flags |= CONN_FL_CONNECTING | CONN_FL_WRITE_ARMED;
    event_add(&c->wev, c->wr_tv);
    return c;
}

void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->flush_ev);
    close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free(c);
}

void conn_set_callbacks(struct conn *c, conn_read_cb rd, conn_write_cb wr, conn_event_cb ev,
                        void *arg)
{
    c->rd = rd;
    c->wr = wr;
    c->ev = ev;
    c->arg = arg;
}

void conn_set_read_high(struct conn *c, size_t high)
{
    c->read_high = high;
    read_update(c);
}

void conn_set_write_low(struct conn *c, size_t low)
{
    c->write_low = low;
}

void conn_set_timeouts(struct conn *c, const struct timeval *rd, const struct timeval *wr)
{
    if (c->rd_tv != rd) {
        c->rd_tv = rd;
        if (c->flags & CONN_FL_READ_ARMED)
            retime(&c->rev, rd);
    }
    if (c->wr_tv != wr) {
        c->wr_tv = wr;
        if (c->flags & CONN_FL_WRITE_ARMED)
            retime(&c->wev, wr);
    }
}

void conn_read_enable(struct conn *c, bool on)
{
    if (on)
        c->flags |= CONN_FL_READ_ON;
    else
        c->flags &= ~CONN_FL_READ_ON;
    read_update(c);
}

struct evbuffer *conn_input(struct conn *c)
{
    return c->in;
}

struct evbuffer *conn_output(struct conn *c)
{
    return c->out;
}

int conn_fd(const struct conn *c)
{
    return c->fd;
}

static void call_event(struct conn *c, short what)
{
    if (c->ev != NULL)
        c->ev(c, what, c->arg);
}

/* One recv into reserved space: no FIONREAD ioctl first, as evbuffer_read
 * would do. */
static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct evbuffer_iovec vec[2];
    size_t want = CONN_READ_MIN;
    ssize_t n;

    if (what & EV_TIMEOUT) {
        call_event(c, CONN_EV_TIMEOUT | CONN_EV_READING);
        return;
    }
    if (c->read_high > 0) {
        size_t room = c->read_high - evbuffer_get_length(c->in);
        want = room < CONN_READ_MIN ? CONN_READ_MIN : room > CONN_READ_MAX ? CONN_READ_MAX : room;
    }
    int nvec = evbuffer_reserve_space(c->in, (ev_ssize_t)want, vec, 2);
    if (nvec < 1) {
        errno = ENOMEM;
        call_event(c, CONN_EV_ERROR | CONN_EV_READING);
        return;
    }
    n = readv(c->fd, (struct iovec *)vec, nvec);
    if (n < 0) {
        evbuffer_commit_space(c->in, vec, 0);
        if (errno == EAGAIN || errno == EINTR)
            return;
        call_event(c, CONN_EV_ERROR | CONN_EV_READING);
        return;
    }
    if (n == 0) {
        evbuffer_commit_space(c->in, vec, 0);
        c->flags |= CONN_FL_EOF;
        read_update(c);
        call_event(c, CONN_EV_EOF | CONN_EV_READING);
        return;
    }
    for (int i = 0; i < nvec; i++) {
        size_t part = (size_t)n < vec[i].iov_len ? (size_t)n : vec[i].iov_len;
        vec[i].iov_len = part;
        n -= (ssize_t)part;
    }
    evbuffer_commit_space(c->in, vec, nvec);
    read_update(c); /* pause when over the high-water mark */
    if (c->rd != NULL)
        c->rd(c, c->arg);
}

/* Writes what the socket takes; arms or disarms wev to match. The write
 * callback goes last because it may free the conn. */
static void do_write(struct conn *c)
{
    /* evbuffer_write() returns -1 for an empty buffer, errno untouched. */
    int n = evbuffer_get_length(c->out) > 0 ? evbuffer_write(c->out, c->fd) : 0;

    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        if (c->flags & CONN_FL_WRITE_ARMED)
            disarm(&c->wev);
        c->flags = (c->flags & ~CONN_FL_WRITE_ARMED) | CONN_FL_FAILED;
        call_event(c, CONN_EV_ERROR | CONN_EV_WRITING);
        return;
    }
    size_t left = evbuffer_get_length(c->out);
    if (left == 0 && (c->flags & CONN_FL_WRITE_ARMED)) {
        disarm(&c->wev);
        c->flags &= ~CONN_FL_WRITE_ARMED;
    } else if (left > 0 && !(c->flags & CONN_FL_WRITE_ARMED)) {
        event_add(&c->wev, c->wr_tv);
        c->flags |= CONN_FL_WRITE_ARMED;
    }
    if (left == 0 && (c->flags & CONN_FL_SHUT_PENDING)) {
        c->flags &= ~CONN_FL_SHUT_PENDING;
        shutdown(c->fd, SHUT_WR);
    }
    if (n > 0 && left <= c->write_low && c->wr != NULL)
        c->wr(c, c->arg);
}

static void connect_done(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS)
        return; /* spurious wake-up */
    disarm(&c->wev);
    c->flags &= ~(CONN_FL_CONNECTING | CONN_FL_WRITE_ARMED);
    if (err != 0) {
        errno = err;
        call_event(c, CONN_EV_ERROR | CONN_EV_WRITING);
        return;
    }
    read_update(c);
    if ((evbuffer_get_length(c->out) > 0 || (c->flags & CONN_FL_SHUT_PENDING)) &&
        !(c->flags & CONN_FL_FLUSH_QUEUED)) {
        c->flags |= CONN_FL_FLUSH_QUEUED;
        event_active(&c->flush_ev, EV_WRITE, 0);
    }
    call_event(c, CONN_EV_CONNECTED);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (what & EV_TIMEOUT) {
        call_event(c, CONN_EV_TIMEOUT | CONN_EV_WRITING);
        return;
    }
    if (c->flags & CONN_FL_CONNECTING) {
        connect_done(c);
        return;
    }
    do_write(c);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    c->flags &= ~CONN_FL_FLUSH_QUEUED;
    if (!(c->flags & (CONN_FL_WRITE_ARMED | CONN_FL_CONNECTING | CONN_FL_FAILED)))
        do_write(c);
}

void conn_flush(struct conn *c)
{
    if (!(c->flags & (CONN_FL_WRITE_ARMED | CONN_FL_CONNECTING | CONN_FL_FAILED)))
        do_write(c);
}

void conn_shutdown_write(struct conn *c)
{
    if (evbuffer_get_length(c->out) == 0 && !(c->flags & CONN_FL_CONNECTING))
        shutdown(c->fd, SHUT_WR);
    else
        c->flags |= CONN_FL_SHUT_PENDING;
}
