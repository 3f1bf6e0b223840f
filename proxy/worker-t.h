/* worker-t.h - the types shared by a worker and the sessions it runs. */
#ifndef SY_PROXY_WORKER_T_H
#define SY_PROXY_WORKER_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>

#include "conf/config.h"
#include "proxy/http1.h"
#include "proxy/route.h"

struct event;
struct event_base;
struct evconnlistener;
struct upstream_pool;
struct accesslog;
struct session;
struct snapshot;
struct window;

TAILQ_HEAD(session_list, session);

/* What all workers of one process share. Written before the workers start,
 * then read-only except for the atomics. */
struct proxy_shared {
    struct route_split *split;
    _Atomic uint32_t nconns;  /* client connections open, all workers */
    _Atomic uint32_t refused; /* connections refused over max_connections */
    int access_log_fd;        /* -1 when off */
    int flip_fd;              /* write end: instant flips go to the control thread */
};

/* Lingering close: how long we read and drop after our FIN. */
#define WORKER_LINGER_MS 2000

/* Every timeout a worker arms, as common timeouts of its base: arming one
 * is O(1) because all events with the same duration share a queue. */
struct worker_timeouts {
    const struct timeval *client_header;
    const struct timeval *client_idle;
    const struct timeval *connect;
    const struct timeval *upstream_header;
    const struct timeval *body_idle;
    const struct timeval *linger;
    const struct timeval *upstream_idle;
};

#define WORKER_TIMEOUTS 7 /* the members of struct worker_timeouts */

struct worker {
    unsigned id;
    pthread_t thread;
    struct event_base *base;
    struct proxy_shared *shared;
    struct snapshot *snap;           /* the config this worker runs (referenced) */
    const struct config *cfg;        /* snap->cfg, for short */
    _Atomic(struct snapshot *) next; /* a reload's, until the worker switches */
    struct upstream_pool *pools[CONF_COLOURS];
    struct evconnlistener **listeners;
    size_t nlisteners;
    int notify_pipe[2]; /* the control thread writes commands here */
    struct event *notify_ev;
    struct event *reap_ev;        /* frees closed sessions outside their callbacks */
    struct session_list sessions; /* every live session */
    struct session_list reap;     /* closed, waiting for reap_ev */
    struct session *free_list;    /* recycled session structs */
    unsigned nsessions;
    unsigned nfree;
    uint64_t rng;              /* xorshift state for random buckets */
    struct http1_header *hdrs; /* parser scratch: limits.max_headers entries */
    uint32_t nhdrs;            /* entries in hdrs */
    struct worker_timeouts tv;
    struct timeval tv_plain[WORKER_TIMEOUTS]; /* when a base has no common timeout left */
    struct accesslog *alog;                   /* NULL when off */
    struct window *pool_win[CONF_COLOURS];    /* this worker's outcomes per pool */
    uint32_t candidate_failures;              /* in a row, for the instant flip */
    uint32_t failures_bp;                     /* the candidate weight they came under */
    bool draining;
    _Atomic bool running;
};

/* Read high-water mark of every connection: a whole head must fit. */
static inline size_t worker_read_high(const struct worker *w)
{
    size_t head = (size_t)w->cfg->limits.max_header_bytes + 1;

    return head > 65536 ? head : 65536;
}

#endif
