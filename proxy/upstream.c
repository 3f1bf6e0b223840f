/* upstream.c - per-worker pools, smooth weighted round-robin, idle lists. */
#include "proxy/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "conf/log.h"
#include "proxy/conn.h"
#include "proxy/snapshot.h"
#include "proxy/tls_client.h"

struct upstream_conn {
    struct conn *sock;
    struct upstream_server *srv;
    TAILQ_ENTRY(upstream_conn) idle_link; /* on srv->idle while idle */
    bool idle;
    bool busy; /* counted in its server's in-flight exchanges */
    bool reused;
};

TAILQ_HEAD(conn_list, upstream_conn);

struct upstream_server {
    const struct conf_server *conf;
    struct server_state *state; /* shared with the other workers */
    struct upstream_pool *pool;
    unsigned index;
    int64_t current; /* smooth WRR running weight */
    struct conn_list idle;
    unsigned nidle;
    SSL_SESSION *tls_session; /* TLS pools: the last session, offered to the next connection */
};

struct upstream_pool {
    struct event_base *base;
    const struct timeval *idle_tv;
    struct snapshot *snap; /* holds the conf of the servers */
    SSL_CTX *tls_ctx;      /* borrowed from snap; NULL for a plain pool */
    const struct conf_upstream_tls *tls;
    enum conf_colour colour;
    unsigned worker;
    unsigned refs; /* the worker's while current, each session's, each connection's */
    bool retired;  /* replaced by a reload: finishes what it has, takes nothing back */
    struct upstream_server *servers;
    size_t n;
};

struct upstream_pool *upstream_pool_new(struct event_base *base, struct snapshot *snap,
                                        enum conf_colour colour, unsigned worker,
                                        const struct timeval *idle_tv)
{
    const struct conf_pool *conf = &snap->cfg->pools[colour];
    struct upstream_pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL || conf->nservers > 64)
        goto fail;
    pool->servers = calloc(conf->nservers, sizeof(*pool->servers));
    if (pool->servers == NULL)
        goto fail;
    pool->base = base;
    pool->idle_tv = idle_tv;
    pool->snap = snapshot_ref(snap);
    pool->tls_ctx = snap->pool_tls[colour];
    pool->tls = &conf->tls;
    pool->colour = colour;
    pool->worker = worker;
    pool->refs = 1;
    pool->n = conf->nservers;
    for (size_t i = 0; i < pool->n; i++) {
        struct upstream_server *srv = &pool->servers[i];
        srv->conf = &conf->servers[i];
        srv->state = snap->servers[colour][i];
        srv->pool = pool;
        srv->index = (unsigned)i;
        TAILQ_INIT(&srv->idle);
    }
    return pool;
fail:
    free(pool);
    return NULL;
}

void upstream_pool_ref(struct upstream_pool *pool)
{
    pool->refs++;
}

void upstream_pool_unref(struct upstream_pool *pool)
{
    if (pool == NULL || --pool->refs > 0)
        return;
    for (size_t i = 0; i < pool->n; i++)
        SSL_SESSION_free(pool->servers[i].tls_session);
    free(pool->servers);
    snapshot_unref(pool->snap);
    free(pool);
}

/* The server of pool that is srv under a new config: same name and address,
 * so that its idle connections are still good. Over TLS, only when the pool
 * trusts the same CA bytes and verifies the same name: a connection
 * verified under the old config must not slip past a new one. */
static struct upstream_server *same_server(struct upstream_pool *pool,
                                           const struct upstream_server *srv)
{
    const struct conf_addr *a = &srv->conf->addr;

    if (pool == NULL || !snapshot_same_pool_tls(pool->snap, srv->pool->snap, pool->colour))
        return NULL;
    for (size_t i = 0; i < pool->n; i++) {
        const struct conf_server *c = pool->servers[i].conf;
        if (strcmp(c->name, srv->conf->name) == 0 && c->addr.len == a->len &&
            memcmp(&c->addr.ss, &a->ss, a->len) == 0)
            return &pool->servers[i];
    }
    return NULL;
}

static void idle_push(struct upstream_server *srv, struct upstream_conn *conn);

void upstream_pool_retire(struct upstream_pool *pool, struct upstream_pool *successor)
{
    if (pool == NULL)
        return;
    /* The owner's reference, dropped last, keeps the pool alive meanwhile. */
    pool->retired = true;
    for (size_t i = 0; i < pool->n; i++) {
        struct upstream_server *srv = &pool->servers[i];
        struct upstream_server *heir = same_server(successor, srv);
        struct upstream_conn *c;
        while ((c = TAILQ_FIRST(&srv->idle)) != NULL) {
            if (heir == NULL || heir->nidle >= UPSTREAM_IDLE_MAX ||
                !server_state_in_rotation(heir->state)) {
                upstream_conn_free(c);
                continue;
            }
            /* A reload must not cost the backends a reconnect storm. */
            TAILQ_REMOVE(&srv->idle, c, idle_link);
            srv->nidle--;
            c->srv = heir;
            upstream_pool_ref(heir->pool);
            idle_push(heir, c);
            upstream_pool_unref(pool);
        }
    }
    upstream_pool_unref(pool);
}

enum conf_colour upstream_pool_colour(const struct upstream_pool *pool)
{
    return pool->colour;
}

/* nginx's smooth weighted round-robin: every eligible server gains its weight,
 * the richest wins and pays the total. Spreads a 9:1 pool as 9 1-in-10 slots
 * rather than nine in a row. */
struct upstream_server *upstream_pool_pick(struct upstream_pool *pool, uint64_t exclude)
{
    struct upstream_server *best = NULL;
    int64_t total = 0;

    for (size_t i = 0; i < pool->n; i++) {
        struct upstream_server *srv = &pool->servers[i];
        if ((exclude & upstream_server_bit(srv)) || !server_state_in_rotation(srv->state))
            continue;
        srv->current += srv->conf->weight;
        total += srv->conf->weight;
        if (best == NULL || srv->current > best->current)
            best = srv;
    }
    if (best != NULL)
        best->current -= total;
    return best;
}

uint64_t upstream_server_bit(const struct upstream_server *srv)
{
    return 1ull << srv->index;
}

const struct conf_server *upstream_server_conf(const struct upstream_server *srv)
{
    return srv->conf;
}

enum conf_colour upstream_server_colour(const struct upstream_server *srv)
{
    return srv->pool->colour;
}

struct server_state *upstream_server_state(const struct upstream_server *srv)
{
    return srv->state;
}

static void idle_unlink(struct upstream_conn *conn)
{
    if (!conn->idle)
        return;
    TAILQ_REMOVE(&conn->srv->idle, conn, idle_link);
    conn->srv->nidle--;
    conn->idle = false;
}

/* An idle connection that becomes readable was closed by the server (or sent
 * bytes nobody asked for): either way it cannot be reused. */
static void idle_read_cb(struct conn *c, void *arg)
{
    upstream_conn_free(arg);
}

static void idle_event_cb(struct conn *c, short what, void *arg)
{
    upstream_conn_free(arg);
}

static void busy_set(struct upstream_conn *conn, bool busy)
{
    if (conn->busy == busy)
        return;
    conn->busy = busy;
    server_state_busy_add(conn->srv->state, conn->srv->pool->worker, busy ? 1 : -1);
}

struct upstream_conn *upstream_conn_take_idle(struct upstream_server *srv)
{
    struct upstream_conn *conn = TAILQ_FIRST(&srv->idle);

    if (conn == NULL)
        return NULL;
    idle_unlink(conn);
    busy_set(conn, true);
    conn_set_callbacks(conn->sock, NULL, NULL, NULL, NULL);
    conn_set_timeouts(conn->sock, NULL, NULL);
    conn->reused = true;
    return conn;
}

/* Readies the client side of TLS on sock, a connect to srv under way:
 * the pool's context, SNI and identity, and srv's last session to resume.
 * Returns 0, or -1 with errno ENOMEM. */
static int tls_start(struct upstream_server *srv, struct conn *sock)
{
    SSL *ssl = SSL_new(srv->pool->tls_ctx);

    if (ssl == NULL || tls_client_prepare(ssl, srv->pool->tls, &srv->conf->addr) < 0 ||
        (srv->tls_session != NULL && SSL_set_session(ssl, srv->tls_session) != 1)) {
        SSL_free(ssl);
        errno = ENOMEM;
        return -1;
    }
    return conn_connect_tls(sock, ssl);
}

struct upstream_conn *upstream_conn_connect(struct upstream_server *srv)
{
    struct upstream_conn *conn = calloc(1, sizeof(*conn));
    const struct conf_addr *addr = &srv->conf->addr;

    if (conn == NULL)
        return NULL;
    conn->srv = srv;
    /* Never plaintext to a TLS pool (snapshot_load_tls fails the snapshot
     * first; this is the last line). */
    if (srv->pool->tls->enabled && srv->pool->tls_ctx == NULL) {
        free(conn);
        errno = EPROTO;
        return NULL;
    }
    conn->sock = conn_connect(srv->pool->base, (const struct sockaddr *)&addr->ss, addr->len);
    if (conn->sock != NULL && srv->pool->tls_ctx != NULL && tls_start(srv, conn->sock) < 0) {
        conn_free(conn->sock);
        conn->sock = NULL;
        errno = ENOMEM;
    }
    if (conn->sock == NULL) {
        int saved = errno;
        free(conn);
        errno = saved;
        return NULL;
    }
    upstream_pool_ref(srv->pool);
    busy_set(conn, true);
    return conn;
}

static void idle_push(struct upstream_server *srv, struct upstream_conn *conn)
{
    conn_set_callbacks(conn->sock, idle_read_cb, NULL, idle_event_cb, conn);
    conn_set_timeouts(conn->sock, srv->pool->idle_tv, NULL);
    TAILQ_INSERT_HEAD(&srv->idle, conn, idle_link);
    srv->nidle++;
    conn->idle = true;
}

/* Keeps the session of conn for srv's next connection, or forgets srv's
 * session when conn's handshake failed: the next attempt starts afresh
 * rather than offer again what may have been the cause. */
static void tls_session_keep(struct upstream_conn *conn)
{
    struct upstream_server *srv = conn->srv;
    SSL_SESSION *sess;

    if (conn_tls_failure(conn->sock) != NULL) {
        SSL_SESSION_free(srv->tls_session);
        srv->tls_session = NULL;
        return;
    }
    sess = conn_tls_session(conn->sock);
    if (sess == NULL || sess == srv->tls_session || SSL_SESSION_up_ref(sess) != 1)
        return;
    SSL_SESSION_free(srv->tls_session);
    srv->tls_session = sess;
}

void upstream_conn_release(struct upstream_conn *conn)
{
    struct upstream_server *srv = conn->srv;

    if (conn_is_tls(conn->sock))
        tls_session_keep(conn);
    busy_set(conn, false);
    /* A server taken out of rotation keeps no connections open to it. */
    if (srv->nidle >= UPSTREAM_IDLE_MAX || srv->pool->retired ||
        !server_state_in_rotation(srv->state)) {
        upstream_conn_free(conn);
        return;
    }
    idle_push(srv, conn);
}

void upstream_conn_free(struct upstream_conn *conn)
{
    struct upstream_pool *pool;

    if (conn == NULL)
        return;
    pool = conn->srv->pool;
    if (conn_is_tls(conn->sock))
        tls_session_keep(conn);
    busy_set(conn, false);
    idle_unlink(conn);
    conn_free(conn->sock);
    free(conn);
    upstream_pool_unref(pool);
}

struct conn *upstream_conn_socket(const struct upstream_conn *conn)
{
    return conn->sock;
}

struct upstream_server *upstream_conn_server(const struct upstream_conn *conn)
{
    return conn->srv;
}

bool upstream_conn_reused(const struct upstream_conn *conn)
{
    return conn->reused;
}
