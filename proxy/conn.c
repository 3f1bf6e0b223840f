/* conn.c - buffered sockets with speculative writes and batched flushes. */
#include "proxy/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/tls_client.h"

#define CONN_READ_MIN 16384 /* space offered to one recv */
#define CONN_READ_MAX 65536
#define CONN_TLS_RECORD 16384 /* plaintext per SSL_write: one full TLS record */

#define CONN_FL_READ_ON 0x01     /* the user wants input */
#define CONN_FL_READ_ARMED 0x02  /* rev is added */
#define CONN_FL_WRITE_ARMED 0x04 /* wev is added: the socket would block */
#define CONN_FL_CONNECTING 0x08
#define CONN_FL_EOF 0x10                /* read returned 0: never read again */
#define CONN_FL_FLUSH_QUEUED 0x20       /* flush_ev is active */
#define CONN_FL_SHUT_PENDING 0x40       /* shutdown(SHUT_WR) once the output is out */
#define CONN_FL_FAILED 0x80             /* a write failed: the event callback was told */
#define CONN_FL_TLS_HANDSHAKE 0x100     /* SSL_accept not done: no application bytes yet */
#define CONN_FL_TLS_READ_BLOCKED 0x200  /* SSL_read waits for the socket to be writable */
#define CONN_FL_TLS_WRITE_BLOCKED 0x400 /* SSL_write waits for the socket to be readable */
#define CONN_FL_TLS_FATAL 0x800         /* OpenSSL failed: no more SSL calls, no close_notify */
#define CONN_FL_WR_SHUT 0x1000          /* our FIN went out */
#define CONN_FL_TLS_MORE 0x2000         /* OpenSSL may hold input no poll will signal */
#define CONN_FL_TLS_HS_WRITE 0x4000     /* the handshake waits for the socket to be writable */
#define CONN_FL_TLS_CLIENT_HS 0x8000    /* our client handshake runs: it ends the connect */

struct conn {
    int fd;
    unsigned flags;
    SSL *ssl;              /* NULL on plain connections */
    char *tls_failure;     /* why our client handshake failed; NULL while it did not */
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

/* A client handshake is part of the connect: the write timeout, which
 * bounds the connect, bounds its waits for the server as well. */
static const struct timeval *read_timeout(const struct conn *c)
{
    return (c->flags & CONN_FL_TLS_CLIENT_HS) ? c->wr_tv : c->rd_tv;
}

/* Adds or removes rev so that it is armed exactly when reading is wanted,
 * possible (no EOF) and allowed (input under the high-water mark). */
static void read_update(struct conn *c)
{
    /* rev is level-triggered: while OpenSSL waits for the socket to be
     * writable (a read or a handshake that must send first), a readable
     * socket would wake the loop for nothing, again and again. */
    bool want =
        ((c->flags & (CONN_FL_READ_ON | CONN_FL_EOF | CONN_FL_CONNECTING |
                      CONN_FL_TLS_READ_BLOCKED | CONN_FL_TLS_HS_WRITE)) == CONN_FL_READ_ON &&
         (c->read_high == 0 || evbuffer_get_length(c->in) < c->read_high)) ||
        (c->flags & (CONN_FL_TLS_HANDSHAKE | CONN_FL_TLS_HS_WRITE | CONN_FL_CONNECTING)) ==
            CONN_FL_TLS_HANDSHAKE ||
        (c->flags & CONN_FL_TLS_WRITE_BLOCKED);

    if (want && !(c->flags & CONN_FL_READ_ARMED)) {
        event_add(&c->rev, read_timeout(c));
        c->flags |= CONN_FL_READ_ARMED;
    } else if (!want && (c->flags & CONN_FL_READ_ARMED)) {
        disarm(&c->rev);
        c->flags &= ~CONN_FL_READ_ARMED;
    }
    /* Bytes OpenSSL already took off the socket wake no poll: come back for
     * them from the loop. */
    if (want && (c->flags & CONN_FL_TLS_MORE))
        event_active(&c->rev, EV_READ, 0);
}

/* Adds or removes wev. */
static void write_arm(struct conn *c, bool on)
{
    if (on && !(c->flags & CONN_FL_WRITE_ARMED)) {
        event_add(&c->wev, c->wr_tv);
        c->flags |= CONN_FL_WRITE_ARMED;
    } else if (!on && (c->flags & CONN_FL_WRITE_ARMED)) {
        disarm(&c->wev);
        c->flags &= ~CONN_FL_WRITE_ARMED;
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

int conn_accept_tls(struct conn *c, struct ssl_ctx_st *ctx)
{
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
        errno = ENOMEM;
        return -1;
    }
    SSL_set_accept_state(c->ssl);
    c->flags |= CONN_FL_TLS_HANDSHAKE;
    read_update(c);
    return 0;
}

int conn_connect_tls(struct conn *c, struct ssl_st *ssl)
{
    if (SSL_set_fd(ssl, c->fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        errno = ENOMEM;
        return -1;
    }
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    /* read_update() leaves rev alone until the connect is done. */
    c->flags |= CONN_FL_TLS_HANDSHAKE | CONN_FL_TLS_CLIENT_HS;
    return 0;
}

bool conn_is_tls(const struct conn *c)
{
    return c->ssl != NULL;
}

const char *conn_tls_failure(const struct conn *c)
{
    return c->tls_failure;
}

struct ssl_session_st *conn_tls_session(const struct conn *c)
{
    SSL_SESSION *sess;

    if (c->ssl == NULL || (c->flags & (CONN_FL_TLS_HANDSHAKE | CONN_FL_TLS_FATAL)))
        return NULL;
    sess = SSL_get_session(c->ssl);
    /* Under TLS 1.3 the session becomes resumable with the server's first
     * ticket, which comes after the handshake. */
    return sess != NULL && SSL_SESSION_is_resumable(sess) ? sess : NULL;
}

/* Sends close_notify when the TLS session is sound and we have not sent it
 * yet: the client learns the close is deliberate, and OpenSSL keeps the
 * session in its cache only after a clean shutdown. Best effort: one
 * non-blocking write. */
static void tls_close_notify(struct conn *c)
{
    if (c->flags & (CONN_FL_TLS_HANDSHAKE | CONN_FL_TLS_FATAL | CONN_FL_FAILED | CONN_FL_WR_SHUT))
        return;
    ERR_clear_error();
    if (SSL_shutdown(c->ssl) < 0)
        ERR_clear_error();
}

void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->flush_ev);
    if (c->ssl != NULL) {
        tls_close_notify(c);
        SSL_free(c->ssl);
    }
    free(c->tls_failure);
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
    bool rd_changed = c->rd_tv != rd, wr_changed = c->wr_tv != wr;

    c->rd_tv = rd;
    c->wr_tv = wr;
    if ((rd_changed || (wr_changed && (c->flags & CONN_FL_TLS_CLIENT_HS))) &&
        (c->flags & CONN_FL_READ_ARMED))
        retime(&c->rev, read_timeout(c));
    if (wr_changed && (c->flags & CONN_FL_WRITE_ARMED))
        retime(&c->wev, wr);
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

/* How much input one read event may take: up to the high-water mark. */
static size_t read_size(const struct conn *c)
{
    size_t room;

    if (c->read_high == 0)
        return CONN_READ_MIN;
    room = c->read_high - evbuffer_get_length(c->in);
    return room < CONN_READ_MIN ? CONN_READ_MIN : room > CONN_READ_MAX ? CONN_READ_MAX : room;
}

static void read_eof(struct conn *c)
{
    c->flags |= CONN_FL_EOF;
    read_update(c);
    call_event(c, CONN_EV_EOF | CONN_EV_READING);
}

/* Keeps only the first n bytes of the reserved vec[0..nvec) and commits. */
static void commit_read(struct conn *c, struct evbuffer_iovec *vec, int nvec, size_t n)
{
    for (int i = 0; i < nvec; i++) {
        size_t part = n < vec[i].iov_len ? n : vec[i].iov_len;
        vec[i].iov_len = part;
        n -= part;
    }
    evbuffer_commit_space(c->in, vec, nvec);
}

static void tls_read_event(struct conn *c);

/* One recv into reserved space: no FIONREAD ioctl first, as evbuffer_read
 * would do. */
static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct evbuffer_iovec vec[2];
    ssize_t n;

    if (what & EV_TIMEOUT) {
        /* A client handshake that waits for the server is still a connect. */
        call_event(c, CONN_EV_TIMEOUT |
                          ((c->flags & CONN_FL_TLS_CLIENT_HS) ? CONN_EV_WRITING : CONN_EV_READING));
        return;
    }
    if (c->ssl != NULL) {
        tls_read_event(c);
        return;
    }
    int nvec = evbuffer_reserve_space(c->in, (ev_ssize_t)read_size(c), vec, 2);
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
        read_eof(c);
        return;
    }
    commit_read(c, vec, nvec, (size_t)n);
    read_update(c); /* pause when over the high-water mark */
    if (c->rd != NULL)
        c->rd(c, c->arg);
}

/* Writes what the socket takes; arms or disarms wev to match. The write
 * callback goes last because it may free the conn. */
static int tls_write(struct conn *c);
static int shut_write(struct conn *c);

/* Application bytes cannot go while the handshake runs or while SSL_write
 * waits for the socket to be readable: the events that end those resume
 * the writing. */
#define CONN_FL_WRITE_HELD (CONN_FL_TLS_HANDSHAKE | CONN_FL_TLS_WRITE_BLOCKED | CONN_FL_TLS_FATAL)

static void do_write(struct conn *c)
{
    if (c->flags & CONN_FL_WRITE_HELD)
        return;
    /* evbuffer_write() returns -1 for an empty buffer, errno untouched. */
    int n = evbuffer_get_length(c->out) == 0 ? 0
            : c->ssl != NULL                 ? tls_write(c)
                                             : evbuffer_write(c->out, c->fd);

    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        write_arm(c, false);
        c->flags |= CONN_FL_FAILED;
        call_event(c, CONN_EV_ERROR | CONN_EV_WRITING);
        return;
    }
    size_t left = evbuffer_get_length(c->out);
    write_arm(c, (left > 0 && !(c->flags & CONN_FL_TLS_WRITE_BLOCKED)) ||
                     (c->flags & CONN_FL_TLS_READ_BLOCKED));
    if (left == 0 && (c->flags & CONN_FL_SHUT_PENDING)) {
        c->flags &= ~CONN_FL_SHUT_PENDING;
        shut_write(c);
    }
    if (n > 0 && left <= c->write_low && c->wr != NULL)
        c->wr(c, c->arg);
}

/* The connection is up (and through its client handshake, on TLS): output
 * queued meanwhile goes, then the user hears of it. */
static void connected(struct conn *c)
{
    read_update(c);
    if ((evbuffer_get_length(c->out) > 0 || (c->flags & CONN_FL_SHUT_PENDING)) &&
        !(c->flags & CONN_FL_FLUSH_QUEUED)) {
        c->flags |= CONN_FL_FLUSH_QUEUED;
        event_active(&c->flush_ev, EV_WRITE, 0);
    }
    call_event(c, CONN_EV_CONNECTED);
}

static void tls_handshake(struct conn *c);

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
    if (c->flags & CONN_FL_TLS_CLIENT_HS)
        tls_handshake(c); /* ends in connected() or a connect error */
    else
        connected(c);
}

static bool tls_write_event(struct conn *c);

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
    if (c->ssl != NULL && tls_write_event(c))
        return;
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

/* close_notify first on TLS, so that the FIN reads as a deliberate end. */
static int shut_write(struct conn *c)
{
    if (c->ssl != NULL)
        tls_close_notify(c);
    c->flags |= CONN_FL_WR_SHUT;
    return shutdown(c->fd, SHUT_WR);
}

void conn_shutdown_write(struct conn *c)
{
    if (evbuffer_get_length(c->out) == 0 && !(c->flags & (CONN_FL_CONNECTING | CONN_FL_WRITE_HELD)))
        shut_write(c);
    else
        c->flags |= CONN_FL_SHUT_PENDING;
}

int conn_shutdown_write_now(struct conn *c)
{
    return shut_write(c);
}

/* ------------------------------------------------------------------------ */
/* TLS: SSL_read and SSL_write on the socket itself, driven by rev and wev.  */

/* OpenSSL failed for good: no SSL call may follow, not even SSL_shutdown,
 * and no event may fire again. Sets errno: the socket's error, or EPROTO
 * for a TLS error. */
static void tls_mark_fatal(struct conn *c, int err, int sys_errno)
{
    c->flags = (c->flags | CONN_FL_TLS_FATAL | CONN_FL_EOF) &
               ~(CONN_FL_TLS_HANDSHAKE | CONN_FL_TLS_READ_BLOCKED | CONN_FL_TLS_WRITE_BLOCKED);
    read_update(c);
    write_arm(c, false);
    ERR_clear_error();
    errno = err == SSL_ERROR_SYSCALL && sys_errno != 0 ? sys_errno : EPROTO;
}

static void tls_fail(struct conn *c, int err, int sys_errno, short dir)
{
    tls_mark_fatal(c, err, sys_errno);
    call_event(c, CONN_EV_ERROR | dir);
}

static void tls_handshake_done(struct conn *c)
{
    bool client = c->flags & CONN_FL_TLS_CLIENT_HS;

    c->flags &= ~(CONN_FL_TLS_HANDSHAKE | CONN_FL_TLS_HS_WRITE | CONN_FL_TLS_CLIENT_HS);
    if (SSL_has_pending(c->ssl))
        c->flags |= CONN_FL_TLS_MORE;
    write_arm(c, false);
    if (client) {
        /* rev waited with the connect's timeout: the read timeout again. */
        if (c->flags & CONN_FL_READ_ARMED)
            retime(&c->rev, c->rd_tv);
        connected(c);
        return;
    }
    read_update(c); /* and come back for a request read with the handshake */
    if (evbuffer_get_length(c->out) > 0 || (c->flags & CONN_FL_SHUT_PENDING))
        do_write(c);
}

/* Keeps why our client handshake failed, for conn_tls_failure(). Runs
 * before tls_mark_fatal(), which empties OpenSSL's error queue. */
static void tls_note_failure(struct conn *c, int err, int sys_errno)
{
    char buf[256];
    const char *why = buf;

    if (err == SSL_ERROR_ZERO_RETURN)
        why = "the server closed the connection during the TLS handshake";
    else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && sys_errno != 0)
        snprintf(buf, sizeof(buf), "TLS handshake failed: %s", strerror(sys_errno));
    else
        tls_client_failure(c->ssl, buf, sizeof(buf));
    free(c->tls_failure);
    c->tls_failure = strdup(why); /* NULL when out of memory: the caller says less */
}

/* The client's failure is a connect error; the server's, a read error (or
 * an EOF when the client left). */
static void tls_handshake_failed(struct conn *c, int err, int sys_errno)
{
    if (c->flags & CONN_FL_TLS_CLIENT_HS) {
        tls_note_failure(c, err, sys_errno);
        tls_fail(c, err, sys_errno, CONN_EV_WRITING);
    } else if (err == SSL_ERROR_ZERO_RETURN) { /* nothing to close cleanly */
        tls_mark_fatal(c, err, sys_errno);
        call_event(c, CONN_EV_EOF | CONN_EV_READING);
    } else {
        tls_fail(c, err, sys_errno, CONN_EV_READING);
    }
}

static void tls_handshake(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    int saved = errno;
    int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);

    switch (err) {
    case SSL_ERROR_NONE:
        tls_handshake_done(c);
        break;
    case SSL_ERROR_WANT_READ:
        c->flags &= ~CONN_FL_TLS_HS_WRITE;
        write_arm(c, false);
        read_update(c);
        break;
    case SSL_ERROR_WANT_WRITE:
        c->flags |= CONN_FL_TLS_HS_WRITE;
        write_arm(c, true);
        read_update(c);
        break;
    default:
        tls_handshake_failed(c, err, saved);
        break;
    }
}

/* Fills vec with plaintext. Returns SSL_ERROR_NONE when vec is full, the
 * SSL error that stopped it otherwise. SSL_ERROR_WANT_READ also means "no
 * more now" once OpenSSL holds nothing more: trying again would cost a recv
 * that finds the socket empty. */
static int tls_fill(struct conn *c, struct evbuffer_iovec *vec, int *sys_errno)
{
    size_t used = 0, n;

    while (used < vec->iov_len) {
        ERR_clear_error();
        if (SSL_read_ex(c->ssl, (char *)vec->iov_base + used, vec->iov_len - used, &n) != 1) {
            *sys_errno = errno;
            vec->iov_len = used;
            return SSL_get_error(c->ssl, 0);
        }
        used += n;
        if (used < vec->iov_len && !SSL_has_pending(c->ssl)) {
            vec->iov_len = used;
            return SSL_ERROR_WANT_READ;
        }
    }
    return SSL_ERROR_NONE;
}

static void tls_read(struct conn *c)
{
    struct evbuffer_iovec vec[2];
    int err = SSL_ERROR_NONE, sys_errno = 0, nvec;
    size_t got = 0;

    c->flags &= ~CONN_FL_TLS_MORE;
    nvec = evbuffer_reserve_space(c->in, (ev_ssize_t)read_size(c), vec, 2);
    if (nvec < 1) {
        errno = ENOMEM;
        call_event(c, CONN_EV_ERROR | CONN_EV_READING);
        return;
    }
    for (int i = 0; i < nvec; i++) {
        if (err == SSL_ERROR_NONE)
            err = tls_fill(c, &vec[i], &sys_errno);
        else
            vec[i].iov_len = 0;
        got += vec[i].iov_len;
    }
    evbuffer_commit_space(c->in, vec, nvec);
    if (err == SSL_ERROR_WANT_WRITE) {
        c->flags |= CONN_FL_TLS_READ_BLOCKED;
        write_arm(c, true);
        read_update(c);
    } else if (err == SSL_ERROR_ZERO_RETURN && got == 0) {
        read_eof(c);
        return;
    } else if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ &&
               err != SSL_ERROR_ZERO_RETURN) {
        tls_fail(c, err, sys_errno, CONN_EV_READING);
        return;
    }
    /* Come back when the space ran out before OpenSSL's buffer did (not
     * for a partial record: that waits for the socket), or for the EOF of
     * a close_notify that came after this data (OpenSSL repeats it). */
    if ((err == SSL_ERROR_NONE && SSL_has_pending(c->ssl)) || err == SSL_ERROR_ZERO_RETURN)
        c->flags |= CONN_FL_TLS_MORE;
    read_update(c); /* pause when over the high-water mark */
    if (got > 0 && c->rd != NULL)
        c->rd(c, c->arg);
}

static void tls_read_event(struct conn *c)
{
    if (c->flags & CONN_FL_TLS_HANDSHAKE) {
        tls_handshake(c);
    } else if (c->flags & CONN_FL_TLS_WRITE_BLOCKED) {
        c->flags &= ~CONN_FL_TLS_WRITE_BLOCKED;
        read_update(c);
        do_write(c);
    } else if (!(c->flags & CONN_FL_TLS_FATAL)) {
        tls_read(c);
    }
}

/* wev fired for the TLS layer rather than for our output. Returns true
 * when it was handled. */
static bool tls_write_event(struct conn *c)
{
    if (c->flags & CONN_FL_TLS_HANDSHAKE) {
        tls_handshake(c);
        return true;
    }
    if (c->flags & CONN_FL_TLS_READ_BLOCKED) {
        c->flags &= ~CONN_FL_TLS_READ_BLOCKED;
        write_arm(c, evbuffer_get_length(c->out) > 0);
        tls_read(c);
        return true;
    }
    return false;
}

/* Writes the output through OpenSSL, one full record at a time (fewer
 * records and sends than one per evbuffer chunk). Returns the bytes written,
 * or -1 with errno (EAGAIN: the socket would block). */
static int tls_write(struct conn *c)
{
    size_t len, n, total = 0;

    while ((len = evbuffer_get_length(c->out)) > 0 && total < INT_MAX / 2) {
        size_t chunk = len < CONN_TLS_RECORD ? len : CONN_TLS_RECORD;
        unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)chunk);
        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        ERR_clear_error();
        if (SSL_write_ex(c->ssl, p, chunk, &n) == 1) {
            evbuffer_drain(c->out, n);
            total += n;
            continue;
        }
        int saved = errno, err = SSL_get_error(c->ssl, 0);
        if (err == SSL_ERROR_WANT_READ) {
            c->flags |= CONN_FL_TLS_WRITE_BLOCKED;
            read_update(c);
        } else if (err != SSL_ERROR_WANT_WRITE) {
            tls_mark_fatal(c, err, saved);
            return -1;
        }
        break;
    }
    if (total == 0)
        errno = EAGAIN;
    return total > 0 ? (int)total : -1;
}
