/* snapshot.c - refcounted configs and the server states they share. */
#include "proxy/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "health/window.h"
#include "proxy/tls.h"
#include "proxy/tls_client.h"

const char *server_admin_name(enum server_admin a)
{
    switch (a) {
    case SERVER_ENABLED:
        return "enabled";
    case SERVER_DRAINING:
        return "draining";
    case SERVER_DISABLED:
        return "disabled";
    }
    return "unknown";
}

const char *server_health_name(enum server_health h)
{
    switch (h) {
    case SERVER_UP:
        return "up";
    case SERVER_DOWN:
        return "down";
    }
    return "unknown";
}

static struct server_state *server_state_new(unsigned nworkers)
{
    struct server_state *st;
    size_t size = sizeof(*st) + nworkers * sizeof(st->busy[0]);

    /* The per-worker counters must really sit on their own cache lines. */
    if (posix_memalign((void **)&st, _Alignof(struct server_state), size) != 0)
        return NULL;
    memset(st, 0, size);
    atomic_init(&st->refs, 1);
    atomic_init(&st->admin, SERVER_ENABLED);
    atomic_init(&st->health, SERVER_UP);
    st->nworkers = nworkers;
    return st;
}

static void server_state_unref(struct server_state *st)
{
    if (st == NULL || atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (unsigned i = 0; i < st->nworkers; i++)
        window_free(atomic_load_explicit(&st->busy[i].win, memory_order_acquire));
    free(st);
}

struct window *server_state_window(struct server_state *st, unsigned worker)
{
    struct window *w = atomic_load_explicit(&st->busy[worker].win, memory_order_relaxed);

    if (w == NULL && (w = window_new()) != NULL)
        atomic_store_explicit(&st->busy[worker].win, w, memory_order_release);
    return w;
}

void server_state_sum(const struct server_state *st, int64_t now_s, unsigned seconds,
                      struct window_sum *sum)
{
    for (unsigned i = 0; i < st->nworkers; i++) {
        const struct window *w = atomic_load_explicit(&st->busy[i].win, memory_order_acquire);
        if (w != NULL)
            window_sum_add(sum, w, now_s, seconds);
    }
}

void server_state_totals(const struct server_state *st, struct window_sum *sum)
{
    for (unsigned i = 0; i < st->nworkers; i++) {
        const struct window *w = atomic_load_explicit(&st->busy[i].win, memory_order_acquire);
        if (w != NULL)
            window_totals_add(sum, w);
    }
}

uint32_t server_state_busy(const struct server_state *st)
{
    uint32_t n = 0;

    for (unsigned i = 0; i < st->nworkers; i++)
        n += atomic_load_explicit(&st->busy[i].n, memory_order_relaxed);
    return n;
}

/* The state of name in either pool of prev: names are unique across pools,
 * and a server moved from one pool to the other keeps what the operator set. */
static struct server_state *find_any(const struct snapshot *prev, const char *name)
{
    for (int c = 0; prev != NULL && c < CONF_COLOURS; c++) {
        struct server_state *st = snapshot_server(prev, (enum conf_colour)c, name);
        if (st != NULL)
            return st;
    }
    return NULL;
}

/* Drops the snapshot's references to the states of cfg's servers. */
static void servers_release(struct snapshot *snap, const struct config *cfg)
{
    for (int c = 0; c < CONF_COLOURS; c++) {
        for (size_t i = 0; snap->servers[c] != NULL && i < cfg->pools[c].nservers; i++)
            server_state_unref(snap->servers[c][i]); /* NULL past a failure */
        free(snap->servers[c]);
    }
}

struct snapshot *snapshot_new(struct config *cfg, unsigned nworkers, const struct snapshot *prev)
{
    struct snapshot *snap = calloc(1, sizeof(*snap));

    if (snap == NULL)
        return NULL;
    atomic_init(&snap->refs, 1);
    snap->nworkers = nworkers;
    for (int c = 0; c < CONF_COLOURS; c++) {
        const struct conf_pool *pool = &cfg->pools[c];
        snap->servers[c] = calloc(pool->nservers, sizeof(*snap->servers[c]));
        if (snap->servers[c] == NULL)
            goto fail;
        for (size_t i = 0; i < pool->nservers; i++) {
            struct server_state *st = find_any(prev, pool->servers[i].name);
            if (st != NULL)
                atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
            else if ((st = server_state_new(nworkers)) == NULL)
                goto fail;
            snap->servers[c][i] = st;
        }
    }
    snap->cfg = cfg;
    return snap;
fail:
    servers_release(snap, cfg);
    free(snap);
    return NULL;
}

/* Gives listener i of snap its context: prev's when the settings and the
 * files' contents are the same, else a new one. A new context is stamped
 * with the digest only when the files read the same before and after it was
 * built, so that a file replaced meanwhile is never taken for unchanged. */
static int listen_tls_load(struct snapshot *snap, size_t i, const struct snapshot *prev, char *why,
                           size_t len)
{
    const struct conf_tls *conf = &snap->cfg->listen[i].tls;
    struct snapshot_listen_tls *t = &snap->listen_tls[i];
    unsigned char after[32];
    bool read = tls_files_digest(conf, t->digest) == 0;

    if (read && prev != NULL && prev->listen_tls != NULL && i < prev->cfg->nlisten &&
        prev->listen_tls[i].stamped && prev->listen_tls[i].ctx != NULL &&
        tls_conf_same(&prev->cfg->listen[i].tls, conf) &&
        memcmp(prev->listen_tls[i].digest, t->digest, sizeof(t->digest)) == 0 &&
        SSL_CTX_up_ref(prev->listen_tls[i].ctx) == 1) {
        t->ctx = prev->listen_tls[i].ctx;
        t->stamped = true;
        return 0;
    }
    if ((t->ctx = tls_ctx_new(conf, why, len)) == NULL)
        return -1;
    t->stamped =
        read && tls_files_digest(conf, after) == 0 && memcmp(after, t->digest, sizeof(after)) == 0;
    return 0;
}

int snapshot_load_tls(struct snapshot *snap, const struct snapshot *prev, struct conf_errors *errs)
{
    const struct config *cfg = snap->cfg;
    bool failed = false; /* not errs->n: a message may be lost to no memory */
    char why[512];

    /* One entry more than needed: calloc(0) may be NULL. */
    if ((snap->listen_tls = calloc(cfg->nlisten + 1, sizeof(*snap->listen_tls))) == NULL) {
        conf_errors_add(errs, "TLS: out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        if (cfg->listen[i].has_tls && listen_tls_load(snap, i, prev, why, sizeof(why)) < 0) {
            conf_errors_add(errs, "%s: listen[%zu].tls: %s", cfg->path, i, why);
            failed = true;
        }
    }
    for (int c = 0; c < CONF_COLOURS; c++) {
        const struct conf_upstream_tls *t = &cfg->pools[c].tls;
        if (t->enabled && (snap->pool_tls[c] = tls_client_ctx_new(t, snap->pool_ca_digest[c], why,
                                                                  sizeof(why))) == NULL) {
            conf_errors_add(errs, "%s: pools.%s.tls: %s", cfg->path,
                            conf_colour_name((enum conf_colour)c), why);
            failed = true;
        }
    }
    return failed ? -1 : 0;
}

bool snapshot_same_pool_tls(const struct snapshot *a, const struct snapshot *b,
                            enum conf_colour colour)
{
    const struct conf_upstream_tls *x = &a->cfg->pools[colour].tls, *y = &b->cfg->pools[colour].tls;

    if (!x->enabled || !y->enabled)
        return x->enabled == y->enabled;
    /* The system's trust store has no digest here: it may have changed. */
    if (x->verify && x->ca == NULL)
        return false;
    return x->verify == y->verify && conf_same_str(x->ca, y->ca) && conf_same_str(x->sni, y->sni) &&
           memcmp(a->pool_ca_digest[colour], b->pool_ca_digest[colour],
                  sizeof(a->pool_ca_digest[colour])) == 0;
}

static void tls_release(struct snapshot *snap)
{
    for (size_t i = 0; snap->listen_tls != NULL && i < snap->cfg->nlisten; i++)
        tls_ctx_free(snap->listen_tls[i].ctx);
    free(snap->listen_tls);
    for (int c = 0; c < CONF_COLOURS; c++)
        tls_ctx_free(snap->pool_tls[c]);
}

struct snapshot *snapshot_ref(struct snapshot *snap)
{
    atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    return snap;
}

void snapshot_unref(struct snapshot *snap)
{
    if (snap == NULL || atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) != 1)
        return;
    servers_release(snap, snap->cfg);
    tls_release(snap);
    config_free(snap->cfg);
    free(snap);
}

bool snapshot_find(const struct snapshot *snap, enum conf_colour colour, const char *name,
                   size_t *index)
{
    const struct conf_pool *pool = &snap->cfg->pools[colour];

    for (size_t i = 0; i < pool->nservers; i++) {
        if (strcmp(pool->servers[i].name, name) == 0) {
            *index = i;
            return true;
        }
    }
    return false;
}

struct server_state *snapshot_server(const struct snapshot *snap, enum conf_colour colour,
                                     const char *name)
{
    size_t i;

    return snapshot_find(snap, colour, name, &i) ? snap->servers[colour][i] : NULL;
}
