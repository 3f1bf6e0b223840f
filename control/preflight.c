/* preflight.c - a rollout's preflight probes (see preflight.h).
 *
 * One struct prober per candidate server walks the probes in order, one
 * http_client at a time. The preflight counts the servers still probing; the
 * last one to pass reports success, the first failure stops every other
 * server's exchange and reports. Reporting is always the last thing done, so
 * that the owner may free the preflight from inside its callback.
 *
 * A TLS pool's probes share one client context, built from the pool's
 * settings at the start: the same verification as the data plane's, read
 * from the CA file as it is when the rollout starts.
 */
#include "control/preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "conf/log.h"
#include "health/http_client.h"
#include "proxy/tls_client.h"

#define WHY_MAX 512 /* a report's text, NUL included */

/* One server's walk through the probes. */
struct prober {
    struct preflight *p;
    const struct conf_server *server; /* borrowed from the pool */
    size_t probe;                     /* index of the running (or last) probe */
    struct http_client *client;       /* the running probe, NULL when none runs */
};

struct preflight {
    struct event_base *base;
    const struct conf_probe *probes; /* borrowed */
    size_t nprobes;
    uint32_t timeout_ms;
    preflight_done_cb cb;
    void *cb_arg;
    struct prober *probers;
    size_t nprobers;
    size_t probing;                      /* probers that have not passed every probe yet */
    SSL_CTX *tls_ctx;                    /* the probes' TLS client context, NULL: plain HTTP */
    const struct conf_upstream_tls *tls; /* borrowed from the pool */
    struct event *early;                 /* reports an outcome known at the start, from the loop */
    bool early_passed;
    char early_why[WHY_MAX];
};

static void report(struct preflight *p, bool passed, const char *why)
{
    if (passed)
        log_info("preflight: %s", why);
    else
        log_warn("preflight failed: %s", why);
    p->cb(passed, why, p->cb_arg); /* may free p */
}

static void stop_all(struct preflight *p)
{
    for (size_t i = 0; i < p->nprobers; i++) {
        http_client_free(p->probers[i].client);
        p->probers[i].client = NULL;
    }
}

/* Ends the preflight at s's failing probe. result is borrowed: it may belong
 * to the client stop_all() frees, so it is copied into the report first. */
static void fail(struct prober *s, const char *result)
{
    struct preflight *p = s->p;
    const struct conf_probe *pr = &p->probes[s->probe];
    char why[WHY_MAX];

    snprintf(why, sizeof(why), "probe %zu (%s %s) on %s (%s): %s", s->probe + 1, pr->method,
             pr->path, s->server->name, s->server->addr.text, result);
    stop_all(p);
    report(p, false, why);
}

static void succeed(struct preflight *p)
{
    char why[WHY_MAX];

    snprintf(why, sizeof(why), "%zu probe%s passed on %zu server%s", p->nprobes,
             p->nprobes == 1 ? "" : "s", p->nprobers, p->nprobers == 1 ? "" : "s");
    report(p, true, why);
}

static bool has_header(const struct conf_probe *pr, const char *name)
{
    for (size_t i = 0; i < pr->nheaders; i++) {
        if (strcasecmp(pr->headers[i].name, name) == 0)
            return true;
    }
    return false;
}

static void probe_done_cb(bool passed, const char *result, void *arg);

/* Starts s's current probe. Returns 0, or -1 when out of memory. */
static int probe_start(struct prober *s)
{
    const struct preflight *p = s->p;
    const struct conf_probe *pr = &p->probes[s->probe];
    struct http_client_request req = {
        .addr = &s->server->addr,
        .method = pr->method,
        .path = pr->path,
        .headers = pr->headers,
        .nheaders = pr->nheaders,
        .user_agent = has_header(pr, "User-Agent") ? NULL : "switchyard-preflight",
        .expect_status = pr->expect_status,
        .expect_body = pr->expect_body,
        .timeout_ms = p->timeout_ms,
        .tls_ctx = p->tls_ctx,
        .tls = p->tls,
    };

    s->client = http_client_start(p->base, &req, probe_done_cb, s);
    return s->client != NULL ? 0 : -1;
}

static void probe_done_cb(bool passed, const char *result, void *arg)
{
    struct prober *s = arg;
    struct preflight *p = s->p;

    if (!passed) {
        fail(s, result);
        return;
    }
    log_debug("preflight: probe %zu on %s: %s", s->probe + 1, s->server->name, result);
    http_client_free(s->client);
    s->client = NULL;
    if (++s->probe < p->nprobes) {
        if (probe_start(s) < 0)
            fail(s, "out of memory");
        return;
    }
    if (--p->probing == 0)
        succeed(p);
}

static void early_cb(evutil_socket_t fd, short what, void *arg)
{
    struct preflight *p = arg;
    char why[WHY_MAX];

    /* Copied: the owner may free p, and the text with it, before reading it. */
    snprintf(why, sizeof(why), "%s", p->early_why);
    report(p, p->early_passed, why);
}

/* Ends the preflight before any probe runs: the outcome is told from the
 * loop, never from inside preflight_start(). Returns 0, or -1 when out of
 * memory. */
static int end_early(struct preflight *p, bool passed, const char *why)
{
    static const struct timeval now = {0, 0};

    p->early_passed = passed;
    snprintf(p->early_why, sizeof(p->early_why), "%s", why);
    p->early = evtimer_new(p->base, early_cb, p);
    return p->early != NULL && event_add(p->early, &now) == 0 ? 0 : -1;
}

/* Builds the TLS client context of a pool with "tls". Returns 0, or -1 with
 * why in err. */
static int tls_setup(struct preflight *p, const struct conf_pool *pool, char *err, size_t len)
{
    char reason[WHY_MAX - 64];

    if (!pool->tls.enabled)
        return 0;
    p->tls = &pool->tls;
    p->tls_ctx = tls_client_ctx_new(&pool->tls, NULL, reason, sizeof(reason));
    if (p->tls_ctx == NULL) {
        snprintf(err, len, "cannot set up TLS to the candidate servers: %s", reason);
        return -1;
    }
    return 0;
}

/* Starts the first probe on every server. Returns 0, or -1 when out of
 * memory. */
static int start_probers(struct preflight *p, const struct conf_pool *pool)
{
    p->probers = calloc(pool->nservers, sizeof(*p->probers));
    if (p->probers == NULL)
        return -1;
    p->nprobers = pool->nservers;
    p->probing = pool->nservers;
    for (size_t i = 0; i < pool->nservers; i++) {
        p->probers[i].p = p;
        p->probers[i].server = &pool->servers[i];
        if (probe_start(&p->probers[i]) < 0)
            return -1;
    }
    return 0;
}

struct preflight *preflight_start(struct event_base *base, const struct conf_probe *probes,
                                  size_t nprobes, const struct conf_pool *pool, uint32_t timeout_ms,
                                  preflight_done_cb cb, void *arg)
{
    struct preflight *p = calloc(1, sizeof(*p));
    char why[WHY_MAX];
    int rc;

    if (p == NULL)
        return NULL;
    p->base = base;
    p->probes = probes;
    p->nprobes = nprobes;
    p->timeout_ms = timeout_ms;
    p->cb = cb;
    p->cb_arg = arg;
    if (nprobes == 0)
        rc = end_early(p, true, "no probes to run");
    else if (pool->nservers == 0)
        rc = end_early(p, true, "no candidate servers to probe");
    else if (tls_setup(p, pool, why, sizeof(why)) < 0)
        rc = end_early(p, false, why);
    else
        rc = start_probers(p, pool);
    if (rc < 0) {
        preflight_free(p);
        return NULL;
    }
    return p;
}

void preflight_free(struct preflight *p)
{
    if (p == NULL)
        return;
    if (p->probers != NULL)
        stop_all(p);
    if (p->early != NULL)
        event_free(p->early);
    SSL_CTX_free(p->tls_ctx);
    free(p->probers);
    free(p);
}
