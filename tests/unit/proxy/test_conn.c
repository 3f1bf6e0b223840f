/* test_conn.c - the buffered socket over real sockets: reads, EOF, batched
 * and queued writes, the low-water write callback, read backpressure, idle
 * timeouts, reading on and off, non-blocking connect, graceful shutdown,
 * write errors, and freeing the conn from inside each of its callbacks.
 *
 * Every test gets a fresh event_base. The conn's partner (the other end of a
 * socketpair, or an accepted TCP socket) is driven by events on the same
 * base, so one loop runs both sides. Callbacks only record what they saw:
 * the assertions run after the loop returns, never from inside libevent.
 * Every loop is bounded by a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/conn.h"

#define WAIT_MS 2000           /* the longest a test waits for what it expects */
#define QUIET_MS 300           /* how long a test watches for nothing to happen */
#define IDLE_MS 50             /* the idle timeout under test */
#define BIG (8u << 20)         /* more output than any socket buffer holds */
#define READ_HIGH (64u << 10)  /* the high-water mark of the backpressure tests */
#define READ_SLACK (64u << 10) /* one read may pass the mark by this much */
#define FLOOD (1u << 20)       /* what the peer sends in the backpressure tests */
#define CHUNK 16384

/* The test's side of the connection. */
struct peer {
    int fd;
    struct event *rev;    /* reads everything into got, until EOF */
    struct event *wev;    /* sends tx */
    struct evbuffer *got; /* everything read so far */
    struct evbuffer *tx;  /* what is left to send */
    int sent;             /* bytes of the trickle test */
    bool eof;
    int err; /* errno of a failed read or write */
};

struct fx {
    struct event_base *base;
    const struct timeval *idle_tv; /* the common IDLE_MS timeout */
    struct conn *c;
    int listen_fd;
    struct peer p;
    size_t want; /* bytes the peer should end up with */
    bool deadline_hit;
    struct evbuffer *collected; /* input the test drained */

    /* What the conn's callbacks saw. */
    int reads, writes, events;
    short what;     /* the first event */
    int what_errno; /* errno during the first event */
    struct timespec first_event_at;
    size_t max_in;        /* the largest input a read callback saw */
    size_t in_before;     /* the input the previous read left behind */
    int reads_over_mark;  /* reads that happened with the input at read_high */
    int reads_at_mark;    /* reads that filled the input to read_high */
    size_t max_out_at_wr; /* the largest output left at a write callback */
    bool peer_had_bytes_in_cb;

    /* What the conn's callbacks do. */
    bool free_on_read, free_on_write, free_on_event;
    bool reply_in_read;  /* add output in three parts */
    bool output_in_read; /* add 4 KiB of output */
};

/* ---- the pattern: byte i of a stream is i % 251, so a lost, doubled or
 * reordered block shows ---- */

static void pattern_add(struct evbuffer *b, size_t off, size_t len)
{
    unsigned char chunk[CHUNK];

    while (len > 0) {
        size_t n = len < sizeof(chunk) ? len : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = (unsigned char)((off + i) % 251);
        assert_int_equal(evbuffer_add(b, chunk, n), 0);
        off += n;
        len -= n;
    }
}

/* Checks that b holds exactly len bytes of the pattern. */
static void pattern_check(struct evbuffer *b, size_t len)
{
    assert_int_equal(evbuffer_get_length(b), len);

    int n = evbuffer_peek(b, -1, NULL, NULL, 0);
    struct evbuffer_iovec *v = calloc((size_t)n + 1, sizeof(*v));
    size_t off = 0;
    assert_non_null(v);
    assert_int_equal(evbuffer_peek(b, -1, NULL, v, n), n);
    for (int i = 0; i < n; i++) {
        const unsigned char *p = v[i].iov_base;
        for (size_t j = 0; j < v[i].iov_len; j++, off++) {
            if (p[j] != (unsigned char)(off % 251)) {
                free(v);
                fail_msg("byte %zu is %u, want %u", off, p[j], (unsigned)(off % 251));
            }
        }
    }
    free(v);
}

/* ---- the loop, always bounded ---- */

typedef bool (*cond_fn)(const struct fx *fx);

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    ((struct fx *)arg)->deadline_hit = true;
}

/* Runs the loop until cond holds or ms pass. Returns cond. */
static bool run_until(struct fx *fx, cond_fn cond, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *deadline = evtimer_new(fx->base, deadline_cb, fx);

    assert_non_null(deadline);
    fx->deadline_hit = false;
    assert_int_equal(evtimer_add(deadline, &tv), 0);
    while (!cond(fx) && !fx->deadline_hit)
        event_base_loop(fx->base, EVLOOP_ONCE);
    event_free(deadline);
    return cond(fx);
}

/* Runs the loop for ms, whatever happens. */
static void run_for(struct fx *fx, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    assert_int_equal(event_base_loopexit(fx->base, &tv), 0);
    assert_int_equal(event_base_dispatch(fx->base), 0);
}

/* The conditions run_until() waits for. */
#define FX_COND(name, expr)                                                                        \
    static bool name(const struct fx *fx)                                                          \
    {                                                                                              \
        return expr;                                                                               \
    }
FX_COND(got_read, fx->reads > 0)
FX_COND(got_event, fx->events > 0)
FX_COND(got_write_cb, fx->writes > 0)
FX_COND(conn_freed, fx->c == NULL)
FX_COND(peer_got_all, evbuffer_get_length(fx->p.got) >= fx->want)
FX_COND(peer_saw_eof, fx->p.eof || fx->p.err != 0)
FX_COND(collected_all, evbuffer_get_length(fx->collected) >= FLOOD)

static long ms_between(const struct timespec *t0, const struct timespec *t1)
{
    return (t1->tv_sec - t0->tv_sec) * 1000 + (t1->tv_nsec - t0->tv_nsec) / 1000000;
}

/* ---- the conn's callbacks: record, then do what the test asked ---- */

static void free_conn(struct fx *fx)
{
    conn_free(fx->c);
    fx->c = NULL;
}

static void on_read(struct conn *c, void *arg)
{
    struct fx *fx = arg;
    size_t len = evbuffer_get_length(conn_input(c));

    fx->reads++;
    fx->reads_over_mark += fx->in_before >= READ_HIGH;
    fx->reads_at_mark += len >= READ_HIGH;
    fx->max_in = len > fx->max_in ? len : fx->max_in;
    fx->in_before = len;
    if (fx->reply_in_read) {
        char probe;
        evbuffer_add(conn_output(c), "one ", 4);
        evbuffer_add(conn_output(c), "two ", 4);
        evbuffer_add_printf(conn_output(c), "%s", "three");
        fx->peer_had_bytes_in_cb = recv(fx->p.fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }
    if (fx->output_in_read)
        pattern_add(conn_output(c), 0, 4096);
    if (fx->free_on_read)
        free_conn(fx);
}

static void on_write(struct conn *c, void *arg)
{
    struct fx *fx = arg;
    size_t left = evbuffer_get_length(conn_output(c));

    fx->writes++;
    fx->max_out_at_wr = left > fx->max_out_at_wr ? left : fx->max_out_at_wr;
    if (fx->free_on_write)
        free_conn(fx);
}

static void on_event(struct conn *c, short what, void *arg)
{
    struct fx *fx = arg;
    int saved = errno;

    if (fx->events++ == 0) {
        fx->what = what;
        fx->what_errno = saved;
        clock_gettime(CLOCK_MONOTONIC, &fx->first_event_at);
    }
    if (fx->free_on_event)
        free_conn(fx);
}

/* ---- the peer ---- */

static void peer_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    int n = evbuffer_read(p->got, fd, -1);

    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    if (n == 0)
        p->eof = true;
    else
        p->err = errno;
    event_del(p->rev);
}

static void peer_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;

    if (evbuffer_write(p->tx, fd) < 0 && errno != EAGAIN && errno != EINTR)
        p->err = errno;
    if (evbuffer_get_length(p->tx) == 0 || p->err != 0)
        event_del(p->wev);
}

static void peer_start_reading(struct fx *fx)
{
    fx->p.rev = event_new(fx->base, fx->p.fd, EV_READ | EV_PERSIST, peer_read_cb, &fx->p);
    assert_non_null(fx->p.rev);
    assert_int_equal(event_add(fx->p.rev, NULL), 0);
}

static void peer_start_writing(struct fx *fx, size_t total)
{
    pattern_add(fx->p.tx, 0, total);
    fx->p.wev = event_new(fx->base, fx->p.fd, EV_WRITE | EV_PERSIST, peer_write_cb, &fx->p);
    assert_non_null(fx->p.wev);
    assert_int_equal(event_add(fx->p.wev, NULL), 0);
}

static void peer_send(struct fx *fx, const char *s)
{
    assert_int_equal(send(fx->p.fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static void peer_close(struct fx *fx)
{
    if (fx->p.rev != NULL)
        event_del(fx->p.rev);
    if (fx->p.wev != NULL)
        event_del(fx->p.wev);
    if (fx->p.fd >= 0)
        close(fx->p.fd);
    fx->p.fd = -1;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct timeval tv = {0, IDLE_MS * 1000};

    assert_non_null(fx);
    fx->p.fd = fx->listen_fd = -1;
    assert_non_null(fx->base = event_base_new());
    assert_non_null(fx->p.got = evbuffer_new());
    assert_non_null(fx->p.tx = evbuffer_new());
    assert_non_null(fx->collected = evbuffer_new());
    assert_non_null(fx->idle_tv = event_base_init_common_timeout(fx->base, &tv));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    conn_free(fx->c);
    peer_close(fx);
    if (fx->p.rev != NULL)
        event_free(fx->p.rev);
    if (fx->p.wev != NULL)
        event_free(fx->p.wev);
    if (fx->listen_fd >= 0)
        close(fx->listen_fd);
    evbuffer_free(fx->p.got);
    evbuffer_free(fx->p.tx);
    evbuffer_free(fx->collected);
    event_base_free(fx->base);
    free(fx);
    *state = NULL;
    return 0;
}

/* For a test that tries a second case on a clean slate. */
static struct fx *restart(void **state)
{
    teardown(state);
    assert_int_equal(setup(state), 0);
    return *state;
}

/* A socketpair of the given type: a conn with the recording callbacks on
 * one end (fx->c), the peer on the other. */
static void open_pair_type(struct fx *fx, int type)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    fx->p.fd = sv[1];
    fx->c = conn_new(fx->base, sv[0]); /* steals sv[0] */
    if (fx->c == NULL)
        close(sv[0]);
    assert_non_null(fx->c);
    conn_set_callbacks(fx->c, on_read, on_write, on_event, fx);
}

static void open_pair(struct fx *fx)
{
    open_pair_type(fx, SOCK_STREAM);
}

/* A conn connecting to a TCP socket on 127.0.0.1 (a free port), which is
 * listening or only bound (so that nobody else takes the port). */
static void open_connect(struct fx *fx, bool listening)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fx->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fx->listen_fd >= 0);
    assert_int_equal(bind(fx->listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    if (listening)
        assert_int_equal(listen(fx->listen_fd, 8), 0);
    assert_int_equal(getsockname(fx->listen_fd, (struct sockaddr *)&sin, &len), 0);
    fx->c = conn_connect(fx->base, (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(fx->c);
    conn_set_callbacks(fx->c, on_read, on_write, on_event, fx);
}

/* Accepts the pending connection as the peer. */
static void accept_peer(struct fx *fx)
{
    fx->p.fd = accept4(fx->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fx->p.fd >= 0);
}

/* Fills the output with n pattern bytes, outside any callback. */
static void queue_pattern(struct fx *fx, size_t n)
{
    pattern_add(conn_output(fx->c), 0, n);
    fx->want = n;
}

/* ---- read ---- */

/* Bytes from the peer land in conn_input and the read callback runs. */
static void test_read_delivers(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    peer_send(fx, "hello, conn");
    assert_true(run_until(fx, got_read, WAIT_MS));
    assert_int_equal(evbuffer_get_length(conn_input(fx->c)), 11);
    assert_memory_equal(evbuffer_pullup(conn_input(fx->c), -1), "hello, conn", 11);
    assert_int_equal(fx->events, 0);

    /* More bytes go after what the callback left in the input. */
    fx->reads = 0;
    peer_send(fx, "!");
    assert_true(run_until(fx, got_read, WAIT_MS));
    assert_memory_equal(evbuffer_pullup(conn_input(fx->c), -1), "hello, conn!", 12);
}

/* EOF comes once, as EOF | READING, after the last bytes; then the conn
 * reads no more, even when asked to. */
static void test_read_eof_once(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    peer_send(fx, "last words");
    assert_int_equal(shutdown(fx->p.fd, SHUT_WR), 0);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_EOF | CONN_EV_READING);
    assert_int_equal(fx->reads, 1);
    assert_memory_equal(evbuffer_pullup(conn_input(fx->c), -1), "last words", 10);

    conn_read_enable(fx->c, true);
    run_for(fx, QUIET_MS);
    assert_int_equal(fx->events, 1);
    assert_int_equal(fx->reads, 1);
}

/* Reading off: no read callback while the peer sends. Back on: what arrived
 * meanwhile is delivered. */
static void test_read_enable(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    conn_read_enable(fx->c, false);
    peer_send(fx, "while ");
    peer_send(fx, "away");
    run_for(fx, 100);
    assert_int_equal(fx->reads, 0);
    assert_int_equal(evbuffer_get_length(conn_input(fx->c)), 0);

    conn_read_enable(fx->c, true);
    assert_true(run_until(fx, got_read, WAIT_MS));
    assert_memory_equal(evbuffer_pullup(conn_input(fx->c), -1), "while away", 10);
}

/* ---- write ---- */

/* Three adds inside a read callback go out after the callback, in ONE
 * write: over SOCK_SEQPACKET every write is a message of its own, so the
 * peer must find exactly one message holding all three parts. */
static void test_write_batched(void **state)
{
    struct fx *fx = *state;
    char msg[64];

    open_pair_type(fx, SOCK_SEQPACKET);
    fx->reply_in_read = true;
    peer_send(fx, "go");
    assert_true(run_until(fx, got_write_cb, WAIT_MS));
    assert_false(fx->peer_had_bytes_in_cb); /* nothing went out during the callback */
    assert_int_equal(recv(fx->p.fd, msg, sizeof(msg), MSG_DONTWAIT), 13);
    assert_memory_equal(msg, "one two three", 13);
    assert_int_equal(recv(fx->p.fd, msg, sizeof(msg), MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(fx->writes, 1); /* drained to the low-water mark, 0 */

    /* The same for output added outside any callback, once the loop runs. */
    evbuffer_add(conn_output(fx->c), "alpha ", 6);
    evbuffer_add(conn_output(fx->c), "beta", 4);
    assert_int_equal(recv(fx->p.fd, msg, sizeof(msg), MSG_DONTWAIT), -1);
    fx->writes = 0;
    assert_true(run_until(fx, got_write_cb, WAIT_MS));
    assert_int_equal(recv(fx->p.fd, msg, sizeof(msg), MSG_DONTWAIT), 10);
    assert_memory_equal(msg, "alpha beta", 10);
    assert_int_equal(recv(fx->p.fd, msg, sizeof(msg), MSG_DONTWAIT), -1);
}

/* conn_flush() writes at once, without the loop; the deferred flush that
 * follows finds nothing left and neither sends twice nor reports anything.
 * An empty output is no error either, whatever errno held before. */
static void test_flush(void **state)
{
    struct fx *fx = *state;
    char msg[16];

    open_pair(fx);
    evbuffer_add(conn_output(fx->c), "now", 3);
    conn_flush(fx->c);
    assert_int_equal(recv(fx->p.fd, msg, sizeof(msg), MSG_DONTWAIT), 3);
    assert_memory_equal(msg, "now", 3);
    assert_int_equal(fx->writes, 1);
    errno = EIO;
    run_for(fx, 20);
    assert_int_equal(recv(fx->p.fd, msg, sizeof(msg), MSG_DONTWAIT), -1);
    errno = EIO;
    conn_flush(fx->c);
    assert_int_equal(fx->writes, 1);
    assert_int_equal(fx->events, 0);
}

/* 8 MiB to a peer that does not read: the loop keeps running (nothing
 * blocks) and the rest stays queued. Once the peer reads, the write
 * callback runs as soon as a write leaves at most the low-water mark queued
 * (never while more is), and every byte arrives in order. */
static void test_write_large_queues(void **state)
{
    struct fx *fx = *state;
    const size_t low = 256u << 10;
    struct timespec t0, t1;

    open_pair(fx);
    conn_set_write_low(fx->c, low);
    queue_pattern(fx, BIG);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_for(fx, 100);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(ms_between(&t0, &t1) < 1000);
    size_t left = evbuffer_get_length(conn_output(fx->c));
    assert_true(left > low && left < BIG); /* the socket took what it could */
    assert_int_equal(fx->writes, 0);

    peer_start_reading(fx);
    assert_true(run_until(fx, peer_got_all, WAIT_MS * 5));
    pattern_check(fx->p.got, BIG);
    assert_int_equal(evbuffer_get_length(conn_output(fx->c)), 0);
    assert_true(fx->writes > 0);
    assert_true(fx->max_out_at_wr <= low);
    assert_int_equal(fx->events, 0);
}

/* ---- backpressure ---- */

/* Takes all input every few milliseconds, so in between it sits at the
 * high-water mark. */
static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fx *fx = arg;
    struct evbuffer *in = conn_input(fx->c);

    evbuffer_remove_buffer(in, fx->collected, evbuffer_get_length(in));
    fx->in_before = 0;
}

/* A peer sends 1 MiB against read_high 64 KiB: the input never grows past
 * the mark plus one read, nothing is read while the input is at the mark,
 * reading resumes each time the test drains, and every byte arrives in
 * order. */
static void test_backpressure(void **state)
{
    struct fx *fx = *state;
    struct timeval every = {0, 5000};

    open_pair(fx);
    conn_set_read_high(fx->c, READ_HIGH);
    struct event *drain = event_new(fx->base, -1, EV_PERSIST, drain_cb, fx);
    assert_non_null(drain);
    assert_int_equal(event_add(drain, &every), 0);
    peer_start_writing(fx, FLOOD);
    bool all = run_until(fx, collected_all, WAIT_MS * 5);
    event_free(drain);

    assert_true(all);
    assert_int_equal(fx->p.err, 0);
    assert_true(fx->max_in <= READ_HIGH + READ_SLACK);
    assert_int_equal(fx->reads_over_mark, 0);
    assert_true(fx->reads_at_mark > 0); /* the mark was reached, so it was tested */
    pattern_check(fx->collected, FLOOD);
}

/* ---- timeouts ---- */

/* A silent peer: the read timeout fires, as TIMEOUT | READING, after about
 * IDLE_MS. It runs only while reading is on: set while reading is off, it
 * waits for reading to resume. */
static void test_read_timeout(void **state)
{
    struct fx *fx = *state;
    struct timespec t0;

    open_pair(fx);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    conn_set_timeouts(fx->c, fx->idle_tv, NULL);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_TIMEOUT | CONN_EV_READING);
    long waited = ms_between(&t0, &fx->first_event_at);
    assert_true(waited >= IDLE_MS - 10 && waited < IDLE_MS + 500);
    assert_int_equal(fx->reads, 0);

    fx = restart(state);
    open_pair(fx);
    conn_read_enable(fx->c, false);
    conn_set_timeouts(fx->c, fx->idle_tv, NULL);
    run_for(fx, QUIET_MS);
    assert_int_equal(fx->events, 0);
    conn_read_enable(fx->c, true);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_TIMEOUT | CONN_EV_READING);
}

static void trickle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fx *fx = arg;

    if (fx->p.sent < 15 && send(fx->p.fd, "x", 1, MSG_NOSIGNAL) == 1)
        fx->p.sent++;
}

/* A byte every 20 ms keeps a 1 s read timeout from firing; once the peer
 * falls silent, it fires. The sender runs on the conn's own loop, so a
 * stall of the whole process as long as the timeout (a loaded machine,
 * the sanitizer build) would fire it: 1 s leaves a wide margin. */
static void test_read_timeout_reset_by_input(void **state)
{
    struct fx *fx = *state;
    struct timeval every = {0, 20000}, idle = {1, 0};
    const struct timeval *tv = event_base_init_common_timeout(fx->base, &idle);

    open_pair(fx);
    conn_set_timeouts(fx->c, tv, NULL);
    struct event *trickle = event_new(fx->base, -1, EV_PERSIST, trickle_cb, fx);
    assert_non_null(trickle);
    assert_int_equal(event_add(trickle, &every), 0);
    run_for(fx, 280); /* 14 bytes, each within 20 ms of the last */
    int events = fx->events;
    size_t got = evbuffer_get_length(conn_input(fx->c));
    bool fired = run_until(fx, got_event, WAIT_MS);
    event_free(trickle);

    assert_int_equal(events, 0);
    assert_true(got >= 10);
    assert_true(fired);
    assert_int_equal(fx->what, CONN_EV_TIMEOUT | CONN_EV_READING);
}

/* Output queued to a peer that does not read: the write timeout fires, as
 * TIMEOUT | WRITING. Output that went out at once arms no timeout. */
static void test_write_timeout(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    conn_set_timeouts(fx->c, NULL, fx->idle_tv);
    evbuffer_add(conn_output(fx->c), "small", 5);
    run_for(fx, QUIET_MS);
    assert_int_equal(fx->events, 0);
    assert_int_equal(fx->writes, 1);

    queue_pattern(fx, BIG);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_TIMEOUT | CONN_EV_WRITING);
    assert_true(evbuffer_get_length(conn_output(fx->c)) > 0);
}

/* conn_set_timeouts(NULL, NULL) turns both timeouts off while both are
 * armed: a silent peer that reads nothing causes no event. The timeouts
 * are armed only once the output is stuck, and turned off before the loop
 * runs again: on a loaded machine the loop may otherwise stay away longer
 * than IDLE_MS and let one fire before it is turned off. */
static void test_timeouts_disarm(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    queue_pattern(fx, BIG);
    run_for(fx, 10); /* the output is stuck now: the write event is armed */
    assert_true(evbuffer_get_length(conn_output(fx->c)) > 0);
    conn_set_timeouts(fx->c, fx->idle_tv, fx->idle_tv);
    conn_set_timeouts(fx->c, NULL, NULL);
    run_for(fx, QUIET_MS);
    assert_int_equal(fx->events, 0);
}

/* A timeout turned off while reading is paused stays off once reading
 * resumes and bytes flow again. */
static void test_timeouts_disarm_while_paused(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    conn_set_timeouts(fx->c, fx->idle_tv, NULL);
    conn_read_enable(fx->c, false);
    conn_set_timeouts(fx->c, NULL, NULL);
    conn_read_enable(fx->c, true);
    peer_send(fx, "wake");
    assert_true(run_until(fx, got_read, WAIT_MS));
    run_for(fx, QUIET_MS);
    assert_int_equal(fx->events, 0);
}

/* ---- connect ---- */

/* Connecting to a listener: CONNECTED, and output queued before the
 * connect completed goes out after it. */
static void test_connect_ok(void **state)
{
    struct fx *fx = *state;

    open_connect(fx, true);
    queue_pattern(fx, 100000);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_CONNECTED);

    accept_peer(fx);
    peer_start_reading(fx);
    assert_true(run_until(fx, peer_got_all, WAIT_MS));
    pattern_check(fx->p.got, 100000);

    /* And the conn reads what the server answers. */
    peer_send(fx, "answer");
    assert_true(run_until(fx, got_read, WAIT_MS));
    assert_memory_equal(evbuffer_pullup(conn_input(fx->c), -1), "answer", 6);
    assert_int_equal(fx->events, 1);
}

/* Connecting to a port where nobody listens: ERROR | WRITING with errno
 * ECONNREFUSED, reported from the loop. */
static void test_connect_refused(void **state)
{
    struct fx *fx = *state;

    open_connect(fx, false);
    evbuffer_add(conn_output(fx->c), "lost", 4);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_ERROR | CONN_EV_WRITING);
    assert_int_equal(fx->what_errno, ECONNREFUSED);
    run_for(fx, 50);
    assert_int_equal(fx->events, 1);
    assert_int_equal(fx->reads + fx->writes, 0);
}

/* ---- shutdown ---- */

/* The peer reads every queued byte before it sees EOF; the conn goes on
 * reading. With nothing queued, the FIN goes at once. */
static void test_shutdown_write(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    queue_pattern(fx, 2u << 20);
    conn_shutdown_write(fx->c);
    run_for(fx, 20);
    assert_true(evbuffer_get_length(conn_output(fx->c)) > 0); /* still queued */
    peer_start_reading(fx);
    assert_true(run_until(fx, peer_saw_eof, WAIT_MS * 5));
    assert_int_equal(fx->p.err, 0);
    pattern_check(fx->p.got, 2u << 20);
    peer_send(fx, "still here");
    assert_true(run_until(fx, got_read, WAIT_MS));
    assert_int_equal(fx->events, 0);

    fx = restart(state);
    open_pair(fx);
    conn_shutdown_write(fx->c);
    peer_start_reading(fx);
    assert_true(run_until(fx, peer_saw_eof, WAIT_MS));
    assert_int_equal(evbuffer_get_length(fx->p.got), 0);
}

/* Asked for while the connect is in flight, with nothing queued: the FIN
 * goes once connected. */
static void test_shutdown_while_connecting(void **state)
{
    struct fx *fx = *state;

    open_connect(fx, true);
    conn_shutdown_write(fx->c);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_CONNECTED);
    accept_peer(fx);
    peer_start_reading(fx);
    assert_true(run_until(fx, peer_saw_eof, WAIT_MS));
    assert_int_equal(fx->p.err, 0);
    assert_int_equal(evbuffer_get_length(fx->p.got), 0);
}

/* ---- errors ---- */

/* Output stuck behind the armed write event when the peer goes away:
 * ERROR | WRITING with errno EPIPE or ECONNRESET, reported once, not at
 * every wake-up nor for more output. (The flush path's error:
 * test_free_in_event_cb.) */
static void test_write_error_while_blocked(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    conn_read_enable(fx->c, false); /* only the write side reports */
    queue_pattern(fx, BIG);
    run_for(fx, 20);
    assert_true(evbuffer_get_length(conn_output(fx->c)) > 0);
    peer_close(fx);
    assert_true(run_until(fx, got_event, WAIT_MS));
    assert_int_equal(fx->what, CONN_EV_ERROR | CONN_EV_WRITING);
    assert_true(fx->what_errno == EPIPE || fx->what_errno == ECONNRESET);
    evbuffer_add(conn_output(fx->c), "more", 4);
    run_for(fx, 50);
    assert_int_equal(fx->events, 1);
    assert_int_equal(fx->writes, 0);
}

/* ---- freeing from inside the callbacks (ASan catches a use after free) ---- */

/* With output added first, so a flush is pending when the conn goes: the
 * socket closes and the output is dropped. */
static void test_free_in_read_cb(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    fx->free_on_read = fx->output_in_read = true;
    peer_send(fx, "bye");
    assert_true(run_until(fx, conn_freed, WAIT_MS));
    run_for(fx, 50);
    assert_int_equal(fx->reads, 1);
    assert_int_equal(fx->events, 0);
    peer_start_reading(fx);
    assert_true(run_until(fx, peer_saw_eof, WAIT_MS));
    assert_int_equal(evbuffer_get_length(fx->p.got), 0);
}

/* After the deferred flush, then after a write from the armed write event. */
static void test_free_in_write_cb(void **state)
{
    struct fx *fx = *state;

    open_pair(fx);
    fx->free_on_write = true;
    evbuffer_add(conn_output(fx->c), "small", 5);
    assert_true(run_until(fx, conn_freed, WAIT_MS));
    run_for(fx, 20);
    assert_int_equal(fx->writes, 1);

    fx = restart(state);
    open_pair(fx);
    fx->free_on_write = true;
    queue_pattern(fx, BIG);
    peer_start_reading(fx);
    assert_true(run_until(fx, conn_freed, WAIT_MS * 5));
    assert_true(run_until(fx, peer_saw_eof, WAIT_MS));
    pattern_check(fx->p.got, BIG);
    assert_int_equal(fx->writes, 1);
}

/* Runs until the event callback freed the conn; checks it was told what,
 * and nothing after. */
static void expect_freed_by_event(struct fx *fx, short what)
{
    fx->free_on_event = true;
    assert_true(run_until(fx, conn_freed, WAIT_MS));
    assert_int_equal(fx->what, what);
    run_for(fx, 100);
    assert_int_equal(fx->events, 1);
}

static void test_free_in_event_cb(void **state)
{
    struct fx *fx = *state;

    open_pair(fx); /* EOF, with output pending */
    evbuffer_add(conn_output(fx->c), "pending", 7);
    assert_int_equal(shutdown(fx->p.fd, SHUT_WR), 0);
    expect_freed_by_event(fx, CONN_EV_EOF | CONN_EV_READING);

    fx = restart(state);
    open_pair(fx);
    conn_set_timeouts(fx->c, fx->idle_tv, NULL);
    expect_freed_by_event(fx, CONN_EV_TIMEOUT | CONN_EV_READING);

    fx = restart(state);
    open_pair(fx);
    conn_set_timeouts(fx->c, NULL, fx->idle_tv);
    queue_pattern(fx, BIG);
    expect_freed_by_event(fx, CONN_EV_TIMEOUT | CONN_EV_WRITING);

    fx = restart(state);
    open_pair(fx);
    conn_read_enable(fx->c, false);
    peer_close(fx);
    evbuffer_add(conn_output(fx->c), "into the void", 13);
    expect_freed_by_event(fx, CONN_EV_ERROR | CONN_EV_WRITING);
    assert_true(fx->what_errno == EPIPE || fx->what_errno == ECONNRESET);
}

/* From the event callback of a connect: a good one (with output queued, so
 * a flush is pending) and a refused one. */
static void test_free_in_event_cb_connect(void **state)
{
    struct fx *fx = *state;

    open_connect(fx, true);
    evbuffer_add(conn_output(fx->c), "queued", 6);
    expect_freed_by_event(fx, CONN_EV_CONNECTED);
    assert_int_equal(fx->writes, 0);

    fx = restart(state);
    open_connect(fx, false);
    expect_freed_by_event(fx, CONN_EV_ERROR | CONN_EV_WRITING);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_read_delivers),
        T(test_read_eof_once),
        T(test_read_enable),
        T(test_write_batched),
        T(test_flush),
        T(test_write_large_queues),
        T(test_backpressure),
        T(test_read_timeout),
        T(test_read_timeout_reset_by_input),
        T(test_write_timeout),
        T(test_timeouts_disarm),
        T(test_timeouts_disarm_while_paused),
        T(test_connect_ok),
        T(test_connect_refused),
        T(test_shutdown_write),
        T(test_shutdown_while_connecting),
        T(test_write_error_while_blocked),
        T(test_free_in_read_cb),
        T(test_free_in_write_cb),
        T(test_free_in_event_cb),
        T(test_free_in_event_cb_connect),
    };

    /* A write to a closed peer must come back as EPIPE, not end the run. */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
