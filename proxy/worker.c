/* worker.c - worker threads, their listeners and their control pipe. */
#include "proxy/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "conf/log.h"
#include "proxy/accesslog.h"
#include "health/window.h"
#include "proxy/session.h"
#include "proxy/signals.h"
#include "proxy/snapshot.h"
#include "proxy/upstream.h"
#include "proxy/worker-t.h"

#define LISTEN_BACKLOG 1024
#define ACCEPT_PAUSE_MS 100 /* after EMFILE and the like: let connections close */

#define WORKER_CMD_DRAIN 'D'
#define WORKER_CMD_STOP 'S'
#define WORKER_CMD_RELOAD 'R' /* switch to worker->next */

struct proxy {
    struct proxy_shared shared;
    struct snapshot *snap; /* the current config (referenced) */
    int flip_pipe[2];      /* workers write flip notices, the control thread reads */
    struct worker *workers;
    unsigned nworkers;
    unsigned nstarted; /* threads to join */
};

static void worker_free(struct worker *w);
static void worker_switch(struct worker *w, struct snapshot *snap);

/* SO_REUSEPORT would let us share a port silently with another process of
 * the same user (a second switchyard, say) and split its traffic. So each
 * address is first bound once without it: EADDRINUSE then means someone
 * else is there. */
static int listen_probe(const struct conf_addr *addr)
{
    int fd = conf_addr_listen(addr, false, 1);

    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* Set while accept() fails (descriptors are per process, so is this): the
 * failure is logged when it starts, not at every retry. */
static _Atomic bool accept_failing;

/* The TLS context of listener l in the worker's snapshot, NULL when it is
 * plain: a new connection gets the certificates of the last reload. A short
 * scan: few listeners, and it saves a per-listener callback argument.
 * Listeners are the config's listen entries in order (a reload cannot
 * change them). */
static struct ssl_ctx_st *listener_tls(const struct worker *w, const struct evconnlistener *l,
                                       bool *has_tls)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i] == l) {
            *has_tls = w->cfg->listen[i].has_tls;
            return w->snap->listen_tls != NULL ? w->snap->listen_tls[i].ctx : NULL;
        }
    }
    *has_tls = false;
    return NULL;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct worker *w = arg;
    int one = 1;
    uint32_t n = atomic_fetch_add_explicit(&w->shared->nconns, 1, memory_order_relaxed);

    if (atomic_load_explicit(&accept_failing, memory_order_relaxed))
        atomic_store_explicit(&accept_failing, false, memory_order_relaxed);
    if (n >= w->cfg->limits.max_connections) {
        /* Over the limit: close at once rather than queue without bound. */
        atomic_fetch_sub_explicit(&w->shared->nconns, 1, memory_order_relaxed);
        if (atomic_fetch_add_explicit(&w->shared->refused, 1, memory_order_relaxed) % 1000 == 0)
            log_warn("limits.max_connections (%u) reached: refusing connections",
                     w->cfg->limits.max_connections);
        evutil_closesocket(fd);
        return;
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        log_debug("TCP_NODELAY: %s", strerror(errno));
    bool has_tls;
    struct ssl_ctx_st *tls = listener_tls(w, l, &has_tls);
    if (has_tls && tls == NULL) {
        /* Never plain HTTP on a TLS address (snapshot_load_tls fails the
         * snapshot first; this is the last line). */
        atomic_fetch_sub_explicit(&w->shared->nconns, 1, memory_order_relaxed);
        evutil_closesocket(fd);
        return;
    }
    if (session_start(w, fd, sa, salen, tls) < 0) {
        atomic_fetch_sub_explicit(&w->shared->nconns, 1, memory_order_relaxed);
        log_error("worker %u: out of memory: connection dropped", w->id);
    }
}

static void listeners_set(struct worker *w, bool on)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i] == NULL)
            continue;
        if (on)
            evconnlistener_enable(w->listeners[i]);
        else
            evconnlistener_disable(w->listeners[i]);
    }
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    if (!w->draining)
        listeners_set(w, true);
}

/* accept() failed. Out of descriptors or memory: pause the listeners briefly
 * instead of spinning on a socket that stays readable. Logged once as it
 * starts (and at most once a second, should it come and go). */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    static _Atomic time_t last_log;
    time_t now = time(NULL);
    struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};

    if (!atomic_exchange(&accept_failing, true) && atomic_exchange(&last_log, now) != now)
        log_warn("accept: %s: pausing the listeners for %d ms at a time until it works again",
                 strerror(err), ACCEPT_PAUSE_MS);
    listeners_set(w, false);
    event_base_once(w->base, -1, EV_TIMEOUT, accept_resume_cb, w, &pause);
}

static void worker_maybe_exit(struct worker *w)
{
    if (w->draining && w->nsessions == 0)
        event_base_loopexit(w->base, NULL);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    session_reap(w);
    worker_maybe_exit(w);
}

static void worker_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i] != NULL)
            evconnlistener_free(w->listeners[i]);
        w->listeners[i] = NULL;
    }
    session_drain_all(w);
    worker_maybe_exit(w);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    char cmds[16];
    ssize_t n = read(fd, cmds, sizeof(cmds));

    for (ssize_t i = 0; i < n; i++) {
        if (cmds[i] == WORKER_CMD_DRAIN) {
            worker_drain(w);
        } else if (cmds[i] == WORKER_CMD_RELOAD) {
            struct snapshot *snap = atomic_exchange(&w->next, NULL);
            if (snap != NULL)
                worker_switch(w, snap);
        } else if (cmds[i] == WORKER_CMD_STOP) {
            worker_drain(w);
            session_close_all(w);
            session_reap(w);
            event_base_loopbreak(w->base);
        }
    }
}

static int worker_listen(struct worker *w, const struct config *cfg)
{
    w->listeners = calloc(cfg->nlisten, sizeof(*w->listeners));
    if (w->listeners == NULL)
        return -1;
    w->nlisteners = cfg->nlisten;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct conf_addr *addr = &cfg->listen[i].addr;
        /* One socket per worker on the same address: the kernel spreads
         * the connections. */
        int fd = conf_addr_listen(addr, true, LISTEN_BACKLOG);
        if (fd < 0) {
            log_error("listen %s: %s", addr->text, strerror(errno));
            return -1;
        }
        w->listeners[i] = evconnlistener_new(w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE, -1, fd);
        if (w->listeners[i] == NULL) {
            close(fd);
            return -1;
        }
        evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
    }
    return 0;
}

/* A common timeout of base for ms, or, when the base has used up its common
 * timeouts (libevent allows 256; only many reloads with ever new values get
 * there), the plain timeval *plain: slower to arm, just as right. */
static const struct timeval *timeout_of(struct event_base *base, uint32_t ms, struct timeval *plain)
{
    const struct timeval *common;

    plain->tv_sec = (time_t)(ms / 1000);
    plain->tv_usec = (suseconds_t)((ms % 1000) * 1000);
    common = event_base_init_common_timeout(base, plain);
    return common != NULL ? common : plain;
}

/* (Re)computes every timeout from w->cfg. Sessions keep nothing of the old
 * ones: libevent copies a timeout when an event is armed. */
static void worker_timeouts_init(struct worker *w)
{
    const struct conf_timeouts *t = &w->cfg->timeouts;
    struct worker_timeouts *tv = &w->tv;
    struct timeval *plain = w->tv_plain;

    tv->client_header = timeout_of(w->base, t->client_header_ms, &plain[0]);
    tv->client_idle = timeout_of(w->base, t->client_idle_ms, &plain[1]);
    tv->connect = timeout_of(w->base, t->connect_ms, &plain[2]);
    tv->upstream_header = timeout_of(w->base, t->upstream_header_ms, &plain[3]);
    tv->body_idle = timeout_of(w->base, t->body_idle_ms, &plain[4]);
    tv->linger = timeout_of(w->base, WORKER_LINGER_MS, &plain[5]);
    tv->upstream_idle = timeout_of(w->base, UPSTREAM_IDLE_TIMEOUT_MS, &plain[6]);
}

/* Parser scratch for limits.max_headers entries. It only grows: a session
 * uses it within one callback, and this runs between callbacks. */
static int worker_hdrs_fit(struct worker *w)
{
    uint32_t want = w->cfg->limits.max_headers;
    struct http1_header *h;

    if (want <= w->nhdrs)
        return 0;
    h = realloc(w->hdrs, want * sizeof(*h));
    if (h == NULL)
        return -1;
    w->hdrs = h;
    w->nhdrs = want;
    return 0;
}

/* Builds this worker's pools for snap into pools[]. Returns 0, or -1 with
 * nothing built. */
static int pools_new(struct worker *w, struct snapshot *snap,
                     struct upstream_pool *pools[CONF_COLOURS])
{
    for (int c = 0; c < CONF_COLOURS; c++) {
        pools[c] =
            upstream_pool_new(w->base, snap, (enum conf_colour)c, w->id, w->tv.upstream_idle);
        if (pools[c] == NULL) {
            while (c-- > 0)
                upstream_pool_retire(pools[c], NULL);
            return -1;
        }
    }
    return 0;
}

/* Runs the reload's snapshot from the next request on. Exchanges under way
 * finish on the pools they started with; idle upstream connections move to
 * the same servers of the new pools. */
static void worker_switch(struct worker *w, struct snapshot *snap)
{
    struct upstream_pool *pools[CONF_COLOURS];
    const struct config *old_cfg = w->cfg;

    w->cfg = snap->cfg;
    if (worker_hdrs_fit(w) < 0 || pools_new(w, snap, pools) < 0) {
        w->cfg = old_cfg;
        log_error("worker %u: out of memory: reload not applied; the old config stays", w->id);
        snapshot_unref(snap);
        return;
    }
    worker_timeouts_init(w);
    for (int c = 0; c < CONF_COLOURS; c++) {
        upstream_pool_retire(w->pools[c], pools[c]);
        w->pools[c] = pools[c];
    }
    snapshot_unref(w->snap);
    w->snap = snap;
}

static int worker_init(struct worker *w, unsigned id, struct proxy_shared *shared,
                       struct snapshot *snap)
{
    const struct config *cfg = snap->cfg;
    struct event_config *ec = event_config_new();

    w->id = id;
    w->shared = shared;
    w->snap = snapshot_ref(snap);
    w->cfg = cfg;
    atomic_init(&w->next, NULL);
    w->notify_pipe[0] = w->notify_pipe[1] = -1;
    TAILQ_INIT(&w->sessions);
    TAILQ_INIT(&w->reap);
    atomic_init(&w->running, false);
    if (ec == NULL)
        return -1;
    /* Only this worker's thread ever touches its base. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL)
        return -1;
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
        w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)id << 32) ^ (uint64_t)time(NULL);
    worker_timeouts_init(w);
    if (worker_hdrs_fit(w) < 0 || pools_new(w, snap, w->pools) < 0)
        return -1;
    for (int c = 0; c < CONF_COLOURS; c++) {
        if ((w->pool_win[c] = window_new()) == NULL)
            return -1;
    }
    if (pipe2(w->notify_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    w->notify_ev = event_new(w->base, w->notify_pipe[0], EV_READ | EV_PERSIST, notify_cb, w);
    w->reap_ev = event_new(w->base, -1, 0, reap_cb, w);
    if (w->notify_ev == NULL || w->reap_ev == NULL || event_add(w->notify_ev, NULL) < 0)
        return -1;
    if (shared->access_log_fd >= 0 &&
        (w->alog = accesslog_new(w->base, shared->access_log_fd)) == NULL)
        return -1;
    return worker_listen(w, cfg);
}

static void worker_free(struct worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i] != NULL)
            evconnlistener_free(w->listeners[i]);
    }
    free(w->listeners);
    if (w->base != NULL) {
        session_close_all(w);
        session_reap(w);
        session_cache_clear(w);
    }
    accesslog_free(w->alog);
    for (int c = 0; c < CONF_COLOURS; c++)
        upstream_pool_retire(w->pools[c], NULL);
    snapshot_unref(atomic_exchange(&w->next, NULL));
    snapshot_unref(w->snap);
    for (int c = 0; c < CONF_COLOURS; c++)
        window_free(w->pool_win[c]);
    if (w->notify_ev != NULL)
        event_free(w->notify_ev);
    if (w->reap_ev != NULL)
        event_free(w->reap_ev);
    for (int i = 0; i < 2; i++) {
        if (w->notify_pipe[i] >= 0)
            close(w->notify_pipe[i]);
    }
    free(w->hdrs);
    if (w->base != NULL)
        event_base_free(w->base);
}

struct proxy *proxy_new(struct snapshot *snap, struct route_split *split)
{
    const struct config *cfg = snap->cfg;
    struct proxy *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->snap = snapshot_ref(snap);
    p->shared.split = split;
    p->shared.access_log_fd = -1;
    p->flip_pipe[0] = p->flip_pipe[1] = -1;
    /* Non-blocking both ends: a worker never waits on the control thread. */
    if (pipe2(p->flip_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_error("pipe: %s", strerror(errno));
        goto fail;
    }
    p->shared.flip_fd = p->flip_pipe[1];
    if (cfg->access_log_path != NULL) {
        p->shared.access_log_fd = accesslog_open_file(cfg->access_log_path);
        if (p->shared.access_log_fd < 0) {
            log_error("access_log.path %s: %s", cfg->access_log_path, strerror(errno));
            goto fail;
        }
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        if (listen_probe(&cfg->listen[i].addr) < 0) {
            log_error("listen %s: %s", cfg->listen[i].addr.text, strerror(errno));
            goto fail;
        }
    }
    p->workers = calloc(cfg->workers, sizeof(*p->workers));
    if (p->workers == NULL)
        goto fail;
    p->nworkers = cfg->workers;
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (worker_init(&p->workers[i], i, &p->shared, snap) < 0) {
            if (errno == ENOMEM)
                log_error("worker %u: out of memory", i);
            goto fail;
        }
    }
    return p;
fail:
    proxy_free(p);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_dispatch(w->base);
    session_close_all(w);
    session_reap(w);
    if (w->alog != NULL)
        accesslog_flush(w->alog);
    atomic_store(&w->running, false);
    return NULL;
}

int proxy_start(struct proxy *p)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        atomic_store(&w->running, true);
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err != 0) {
            atomic_store(&w->running, false);
            log_error("worker %u: cannot start thread: %s", i, strerror(err));
            proxy_stop(p);
            return -1;
        }
        p->nstarted++;
    }
    return 0;
}

static void proxy_tell(struct proxy *p, char cmd)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (atomic_load(&p->workers[i].running) &&
            write(p->workers[i].notify_pipe[1], &cmd, 1) != 1)
            log_error("worker %u: cannot notify: %s", i, strerror(errno));
    }
}

void proxy_reload(struct proxy *p, struct snapshot *snap)
{
    snapshot_unref(p->snap);
    p->snap = snapshot_ref(snap);
    for (unsigned i = 0; i < p->nworkers; i++) {
        /* A worker that has not switched to the previous reload yet skips it. */
        snapshot_unref(atomic_exchange(&p->workers[i].next, snapshot_ref(snap)));
    }
    proxy_tell(p, WORKER_CMD_RELOAD);
}

int proxy_reopen_access_log(struct proxy *p)
{
    const char *path = p->snap->cfg->access_log_path;
    int fd;

    if (p->shared.access_log_fd < 0 || path == NULL)
        return 0;
    fd = accesslog_open_file(path);
    if (fd < 0) {
        log_error("access_log.path %s: %s: still writing to the old file", path, strerror(errno));
        return -1;
    }
    /* Workers write to the shared descriptor number: dup2 swaps the file
     * under it atomically (dup3, to keep close-on-exec), with no line lost. */
    if (dup3(fd, p->shared.access_log_fd, O_CLOEXEC) < 0) {
        log_error("access_log.path %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int proxy_flip_fd(const struct proxy *p)
{
    return p->flip_pipe[0];
}

int proxy_read_flip(struct proxy *p, struct flip_notice *n)
{
    ssize_t r = read(p->flip_pipe[0], n, sizeof(*n));

    return r == (ssize_t)sizeof(*n) ? 1 : 0;
}

void proxy_pool_sum(const struct proxy *p, enum conf_colour colour, int64_t now_s, unsigned seconds,
                    struct window_sum *sum)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (p->workers[i].pool_win[colour] != NULL)
            window_sum_add(sum, p->workers[i].pool_win[colour], now_s, seconds);
    }
}

void proxy_pool_totals(const struct proxy *p, enum conf_colour colour, struct window_sum *sum)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (p->workers[i].pool_win[colour] != NULL)
            window_totals_add(sum, p->workers[i].pool_win[colour]);
    }
}

uint32_t proxy_connections(const struct proxy *p)
{
    return atomic_load_explicit(&p->shared.nconns, memory_order_relaxed);
}

uint32_t proxy_connections_refused(const struct proxy *p)
{
    return atomic_load_explicit(&p->shared.refused, memory_order_relaxed);
}

void proxy_drain(struct proxy *p)
{
    proxy_tell(p, WORKER_CMD_DRAIN);
}

void proxy_stop(struct proxy *p)
{
    proxy_tell(p, WORKER_CMD_STOP);
}

unsigned proxy_running(const struct proxy *p)
{
    unsigned n = 0;

    for (unsigned i = 0; i < p->nworkers; i++)
        n += atomic_load(&p->workers[i].running) ? 1 : 0;
    return n;
}

void proxy_free(struct proxy *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        if (i < p->nstarted)
            pthread_join(w->thread, NULL);
        worker_free(w);
    }
    free(p->workers);
    if (p->shared.access_log_fd >= 0)
        close(p->shared.access_log_fd);
    snapshot_unref(p->snap);
    for (int i = 0; i < 2; i++) {
        if (p->flip_pipe[i] >= 0)
            close(p->flip_pipe[i]);
    }
    free(p);
}
