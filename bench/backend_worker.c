/* backend_worker.c - sy-backend's worker threads and their listeners. */
#include "bench/backend_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "bench/backend_conn.h"
#include "conf/log.h"

#define LISTEN_BACKLOG 4096
#define ACCEPT_PAUSE_MS 100 /* after EMFILE and the like: let connections close first */

/* After binding port 0: puts the port the kernel chose into *addr. */
static int learn_port(int fd, struct conf_addr *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    unsigned port;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&addr->ss;
        s6->sin6_port = ((struct sockaddr_in6 *)&ss)->sin6_port;
        port = ntohs(s6->sin6_port);
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(addr->text, sizeof(addr->text), "[%s]:%u", host, port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&addr->ss;
        s4->sin_port = ((struct sockaddr_in *)&ss)->sin_port;
        port = ntohs(s4->sin_port);
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(addr->text, sizeof(addr->text), "%s:%u", host, port);
    }
    return 0;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct backend_worker *w = arg;

    if (backend_conn_accept(w, fd) < 0)
        log_warn("worker %u: out of memory: connection dropped", w->id);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct backend_worker *w = arg;

    if (evconnlistener_enable(w->listener) < 0)
        log_error("worker %u: cannot resume accepting", w->id);
}

/* accept() failed for a reason that will not go away by itself at once
 * (EMFILE, ENFILE, ENOBUFS): retrying at once would spin, so pause. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct backend_worker *w = arg;
    struct timeval tv = {.tv_sec = 0, .tv_usec = ACCEPT_PAUSE_MS * 1000};
    int err = EVUTIL_SOCKET_ERROR();

    log_warn("worker %u: accept: %s: pausing %d ms", w->id, evutil_socket_error_to_string(err),
             ACCEPT_PAUSE_MS);
    evconnlistener_disable(l);
    if (evtimer_add(w->accept_pause, &tv) < 0)
        log_error("worker %u: cannot arm the accept timer", w->id);
}

static uint64_t seed(unsigned id)
{
    uint64_t s = 0;

    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
        s = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL;
    s ^= (uint64_t)(id + 1) * 0xBF58476D1CE4E5B9ULL;
    return s ? s : 0x853C49E6748FEA9BULL; /* xorshift must not start at zero */
}

static struct event_base *base_new(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (!cfg)
        return NULL;
    /* Enabling and disabling the write event within one loop turn then
     * costs no epoll_ctl at all. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

int backend_worker_init(struct backend_worker *w, struct backend_shared *shared, unsigned id,
                        struct conf_addr *addr, bool reuseport)
{
    bool port0 = addr->ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr->ss)->sin6_port == 0
                                                : ((struct sockaddr_in *)&addr->ss)->sin_port == 0;
    int fd;

    w->id = id;
    w->shared = shared;
    w->rng = seed(id);
    backend_fault_state_sync(shared->fault, &w->fault, &w->fault_gen);
    w->base = base_new();
    if (!w->base) {
        log_error("worker %u: cannot make an event base", id);
        return -1;
    }
    /* Without reuseport the bind is exclusive, so a second backend started
     * on a port in use fails instead of silently sharing it. */
    fd = conf_addr_listen(addr, reuseport, LISTEN_BACKLOG);
    if (fd < 0) {
        log_error("cannot listen on %s: %s", addr->text, strerror(errno));
        return -1;
    }
    if (port0 && learn_port(fd, addr) < 0) {
        log_error("cannot read the port of %s: %s", addr->text, strerror(errno));
        close(fd);
        return -1;
    }
    w->listener = evconnlistener_new(w->base, accept_cb, w,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!w->listener) {
        close(fd);
        log_error("worker %u: cannot make a listener", id);
        return -1;
    }
    evconnlistener_set_error_cb(w->listener, accept_error_cb);
    w->accept_pause = evtimer_new(w->base, accept_resume_cb, w);
    return w->accept_pause ? 0 : -1;
}

void backend_worker_clear(struct backend_worker *w)
{
    backend_conn_free_all(w);
    if (w->accept_pause)
        event_free(w->accept_pause);
    w->accept_pause = NULL;
    if (w->listener)
        evconnlistener_free(w->listener);
    w->listener = NULL;
    if (w->base)
        event_base_free(w->base);
    w->base = NULL;
}

static void *worker_main(void *arg)
{
    struct backend_worker *w = arg;

    if (backend_worker_run(w) < 0)
        log_error("worker %u: event loop failed", w->id);
    return NULL;
}

int backend_worker_start(struct backend_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);

    if (rc != 0) {
        log_error("worker %u: cannot start a thread: %s", w->id, strerror(rc));
        return -1;
    }
    w->started = true;
    return 0;
}

int backend_worker_run(struct backend_worker *w)
{
    return event_base_dispatch(w->base) < 0 ? -1 : 0;
}

void backend_worker_stop(struct backend_worker *w)
{
    if (w->base)
        event_base_loopbreak(w->base);
}

void backend_worker_join(struct backend_worker *w)
{
    if (!w->started)
        return;
    pthread_join(w->thread, NULL);
    w->started = false;
}

uint64_t backend_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void backend_worker_note_fault(struct backend_worker *w, uint64_t gen)
{
    struct backend_counters *c = &w->counters;

    /* A delayed answer may go out after this worker saw a newer mode: it
     * must not count as that mode's first. */
    if (gen <= atomic_load_explicit(&c->fault_gen, memory_order_relaxed))
        return;
    atomic_store_explicit(&c->first_fault_ms, backend_clock_ms(), memory_order_relaxed);
    atomic_store_explicit(&c->fault_gen, gen, memory_order_release);
}

/* The earliest first fault among the workers under generation gen; 0: none. */
static uint64_t first_fault_ms(const struct backend_shared *shared, uint64_t gen)
{
    uint64_t first = 0;

    for (size_t i = 0; i < shared->nworkers; i++) {
        const struct backend_counters *c = &shared->workers[i].counters;
        uint64_t ms;

        if (atomic_load_explicit(&c->fault_gen, memory_order_acquire) != gen)
            continue;
        ms = atomic_load_explicit(&c->first_fault_ms, memory_order_relaxed);
        if (first == 0 || ms < first)
            first = ms;
    }
    return first;
}

void backend_stats_sum(const struct backend_shared *shared, struct backend_stats *out)
{
    uint64_t accepted = 0, closed = 0, answered = 0, last = 0;

    for (size_t i = 0; i < shared->nworkers; i++) {
        const struct backend_counters *c = &shared->workers[i].counters;
        uint64_t ms = atomic_load_explicit(&c->last_request_ms, memory_order_relaxed);

        accepted += atomic_load_explicit(&c->accepted, memory_order_relaxed);
        closed += atomic_load_explicit(&c->closed, memory_order_relaxed);
        answered += atomic_load_explicit(&c->answered, memory_order_relaxed);
        last = ms > last ? ms : last;
    }
    out->connections = accepted;
    out->requests = answered;
    out->last_request_ms = last;
    out->first_fault_ms = first_fault_ms(shared, backend_fault_state_gen(shared->fault));
    /* Read apart, closed may run ahead of accepted by a few: never show that. */
    out->active_connections = accepted > closed ? accepted - closed : 0;
}
