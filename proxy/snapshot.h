/* snapshot.h - a config as the workers run it, and the shared state of its
 * servers.
 *
 * A reload builds a new snapshot and hands it to every worker; each worker
 * switches at its next loop turn while exchanges already under way finish on
 * the old one. Snapshots are therefore refcounted: the control thread holds
 * the current one, each worker holds the one it runs, and a worker's retired
 * pool holds its own until its last connection is gone. The last unref frees
 * the config, from whichever thread drops it.
 *
 * A server's state (operator admin state, in-flight exchanges) belongs to its
 * name, not to a snapshot: a new snapshot shares the state object of every
 * server whose name it keeps, so a drained server stays drained across a
 * reload and its in-flight count stays whole.
 */
#ifndef SY_PROXY_SNAPSHOT_H
#define SY_PROXY_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

/* What an operator allows a server to get. Anything but enabled: no new
 * exchanges; those under way finish. */
enum server_admin {
    SERVER_ENABLED,
    SERVER_DRAINING, /* being emptied: its in-flight count says when it is done */
    SERVER_DISABLED, /* out of rotation until enabled */
};

const char *server_admin_name(enum server_admin a);

struct window;
struct window_sum;

/* One worker's view of a server, on its own cache line and written only by
 * that worker: counting costs no shared read-modify-write on the request
 * path. */
struct server_busy {
    _Alignas(64) _Atomic uint32_t n; /* exchanges in flight */
    _Atomic(struct window *) win;    /* outcomes; made at the first one */
};

/* What the active health checks last concluded (health/check.c). A server
 * starts up: traffic is not held back while the first checks run. */
enum server_health {
    SERVER_UP,
    SERVER_DOWN,
};

const char *server_health_name(enum server_health h);

struct server_state {
    _Atomic unsigned refs;
    _Atomic int admin;  /* enum server_admin; written by the control thread */
    _Atomic int health; /* enum server_health; written by the control thread */
    unsigned nworkers;
    struct server_busy busy[]; /* [nworkers] */
};

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

struct snapshot_listen_tls {
    struct ssl_ctx_st *ctx;   /* NULL on a plain listener */
    bool stamped;             /* digest holds what ctx was built from */
    unsigned char digest[32]; /* tls_files_digest() of the listener's files */
};

struct snapshot {
    _Atomic unsigned refs;
    struct config *cfg;                          /* owned */
    struct server_state **servers[CONF_COLOURS]; /* parallel to cfg->pools[c].servers */
    unsigned nworkers;
    /* Set by snapshot_load_tls(), NULL before. Owned; a connection made
     * from one holds its own reference, so it outlives a reload. */
    struct snapshot_listen_tls *listen_tls;    /* [cfg->nlisten] */
    struct ssl_ctx_st *pool_tls[CONF_COLOURS]; /* NULL for a pool without "tls" */
    /* SHA-256 of each pool's CA file as it was read: tells a reload whose
     * CA changed under the same path from one whose did not. */
    unsigned char pool_ca_digest[CONF_COLOURS][32];
};

/* Returns a new snapshot (one reference) of cfg for nworkers workers, or NULL
 * when out of memory. cfg is stolen on success only. Servers whose name prev
 * (may be NULL) knows share its state objects. */
struct snapshot *snapshot_new(struct config *cfg, unsigned nworkers, const struct snapshot *prev);

/* Builds the TLS contexts of snap's config from the certificate, key and CA
 * files as they are now: the start, and each reload, reads them again. A
 * listener whose settings and file contents are those of its context in
 * prev (may be NULL) shares that context instead, and so its session cache:
 * clients resume across a reload that did not touch their certificate.
 * Returns 0, or -1 with one message per failure in errs (the caller drops
 * the snapshot). */
int snapshot_load_tls(struct snapshot *snap, const struct snapshot *prev, struct conf_errors *errs)
    __attribute__((warn_unused_result));

/* True when pool colour of a and b speaks TLS with the same settings and
 * the same CA file contents, or when neither speaks TLS: a connection
 * verified under one is as good under the other. */
bool snapshot_same_pool_tls(const struct snapshot *a, const struct snapshot *b,
                            enum conf_colour colour);

struct snapshot *snapshot_ref(struct snapshot *snap);
/* Drops a reference; the last one frees. NULL is fine. */
void snapshot_unref(struct snapshot *snap);

/* Finds the server called name in pool colour: true with *index set. */
bool snapshot_find(const struct snapshot *snap, enum conf_colour colour, const char *name,
                   size_t *index);

/* The state of the server called name in pool colour, or NULL. */
struct server_state *snapshot_server(const struct snapshot *snap, enum conf_colour colour,
                                     const char *name);

static inline enum server_admin server_state_admin(const struct server_state *st)
{
    return (enum server_admin)atomic_load_explicit(&st->admin, memory_order_relaxed);
}

static inline enum server_health server_state_health(const struct server_state *st)
{
    return (enum server_health)atomic_load_explicit(&st->health, memory_order_relaxed);
}

/* True when the server may get new exchanges: enabled by the operator and
 * not marked down by the health checks. */
static inline bool server_state_in_rotation(const struct server_state *st)
{
    return server_state_admin(st) == SERVER_ENABLED && server_state_health(st) == SERVER_UP;
}

/* Called by the worker that owns counter `worker` only. */
static inline void server_state_busy_add(struct server_state *st, unsigned worker, int delta)
{
    _Atomic uint32_t *n = &st->busy[worker].n;

    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + (uint32_t)delta,
                          memory_order_relaxed);
}

/* Exchanges in flight on the server, all workers (a moment's view). */
uint32_t server_state_busy(const struct server_state *st);

/* The outcome window of worker `worker` for the server, made on first use
 * (by that worker only). NULL when out of memory. */
struct window *server_state_window(struct server_state *st, unsigned worker);

/* Adds every worker's outcomes of the last `seconds` up to now_s to *sum. */
void server_state_sum(const struct server_state *st, int64_t now_s, unsigned seconds,
                      struct window_sum *sum);

/* Adds every worker's outcomes since the state was made to *sum (totals that
 * only grow; kept across reloads with the state). */
void server_state_totals(const struct server_state *st, struct window_sum *sum);

#endif
