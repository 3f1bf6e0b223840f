/* session-t.h - the session struct, its states and flags, and the small
 * helpers that both halves of the exchange state machine use: session.c (the
 * client side and the life cycle) and exchange.c (the upstream side).
 */
#ifndef SY_PROXY_SESSION_T_H
#define SY_PROXY_SESSION_T_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "proxy/conn.h"
#include "proxy/http1.h"
#include "proxy/relay.h"
#include "proxy/route.h"
#include "proxy/upstream.h"
#include "proxy/worker-t.h"

enum session_state {
    SESSION_HEAD,     /* waiting for a request head */
    SESSION_CONNECT,  /* a new upstream connection is being made */
    SESSION_EXCHANGE, /* request going up, response coming down */
    SESSION_TUNNEL,   /* after 101: raw bytes both ways */
    SESSION_FLUSH,    /* last bytes going to the client, then close */
    SESSION_LINGER,   /* our side shut: drop what the client still sends */
    SESSION_CLOSED,   /* waiting for the reaper */
};

#define SESSION_FL_HEAD_TIMER 0x001   /* the request-head deadline is armed */
#define SESSION_FL_CLIENT_CLOSE 0x002 /* close the client after this exchange */
#define SESSION_FL_REQ_DONE 0x004     /* the request body went up whole */
#define SESSION_FL_RESP_HEAD 0x008    /* the final response head went down */
#define SESSION_FL_RESP_DONE 0x010    /* the response body went down whole */
#define SESSION_FL_UPGRADE 0x020      /* the client asked to switch protocols */
#define SESSION_FL_REPLAYED 0x040     /* the request was sent again on a new connection */
#define SESSION_FL_UP_BYTES 0x080     /* the upstream sent something for this request */
#define SESSION_FL_REQ_LIVE 0x100     /* a request is being handled (for the log) */
#define SESSION_FL_UP_CLOSE 0x200     /* the upstream connection must not be reused */
#define SESSION_FL_UP_EOF 0x400       /* the upstream closed its side; its input still counts */
#define SESSION_FL_CLIENT_EOF 0x800   /* the client closed its side; its input still counts */
#define SESSION_FL_UP_SHUT 0x1000     /* tunnel: our FIN went to the upstream */
#define SESSION_FL_CLIENT_SHUT 0x2000 /* tunnel: our FIN went to the client */
#define SESSION_FL_FALLBACK 0x4000    /* the candidate was unreachable: sent to stable */

/* Flags that outlive one exchange on a kept-alive connection. */
#define SESSION_FL_CONNECTION (SESSION_FL_CLIENT_CLOSE | SESSION_FL_CLIENT_EOF)

struct session {
    TAILQ_ENTRY(session) link; /* on worker->sessions, or worker->reap */
    struct worker *w;
    struct conn *client;
    struct upstream_conn *up; /* during CONNECT, EXCHANGE and TUNNEL */
    struct upstream_pool *pool; /* referenced: set with session_route_to() */
    enum session_state state;
    unsigned flags;
    struct event timer; /* head, connect and upstream-header deadlines */
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];
    enum http1_method method;
    int client_minor;
    uint64_t tried;            /* servers of pool that failed this request */
    struct evbuffer *req_head; /* kept until the upstream answers: a replay needs it */
    struct relay_body req, resp;
    struct route_token sticky; /* the cookie this request's response sets, if any */
    int status;
    struct timespec t_start, t_sent;
    double upstream_ms;
    const char *error;
    char up_error[200]; /* a failed TLS handshake's reason: says more than a static error */
    char log_method[16];
    char log_target[256];
    struct session *next_free;
};

static inline double ms_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* tv comes from the worker's common timeouts: arming it is O(1). */
static inline void timer_arm(struct session *s, const struct timeval *tv)
{
    evtimer_add(&s->timer, tv);
}

static inline struct evbuffer *client_in(struct session *s)
{
    return conn_input(s->client);
}

static inline struct evbuffer *client_out(struct session *s)
{
    return conn_output(s->client);
}

static inline struct evbuffer *up_in(struct session *s)
{
    return conn_input(upstream_conn_socket(s->up));
}

static inline struct evbuffer *up_out(struct session *s)
{
    return conn_output(upstream_conn_socket(s->up));
}

/* The watermarks and idle timeouts every relayed connection starts with,
 * client or upstream. */
static inline void setup_conn(struct worker *w, struct conn *c)
{
    conn_set_read_high(c, worker_read_high(w));
    conn_set_write_low(c, RELAY_OUT_LOW);
    conn_set_timeouts(c, NULL, w->tv.body_idle);
}

/* Sends the exchange to pool (NULL: none). The session holds the pool so
 * that a reload cannot free it under a request. */
static inline void session_route_to(struct session *s, struct upstream_pool *pool)
{
    if (pool != NULL)
        upstream_pool_ref(pool);
    upstream_pool_unref(s->pool);
    s->pool = pool;
}

/* Closes the upstream connection without returning it to the idle pool. */
static inline void drop_upstream(struct session *s)
{
    upstream_conn_free(s->up);
    s->up = NULL;
}

#endif
