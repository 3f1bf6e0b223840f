/* check.c - active health checks (see check.h).
 *
 * One struct check per server. Its `tick` timer starts a check every
 * interval; the check itself is one http_client exchange (connect, TLS
 * handshake for a TLS pool, request, response judged, all bounded by
 * timeout_ms), NULL between checks. The config makes timeout_ms shorter than
 * interval_ms, so checks of one server never overlap.
 */
#include "health/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/util.h>

#include "conf/log.h"
#include "health/http_client.h"

struct check {
    struct health_checker *hc;
    struct check *next;
    enum conf_colour pool;
    char *name;
    struct conf_addr addr;
    void *handle;
    struct ssl_ctx_st *tls_ctx;          /* borrowed, NULL: plain HTTP */
    const struct conf_upstream_tls *tls; /* borrowed, with tls_ctx */
    bool wanted;                         /* health_checker_set(): still a target */
    struct event *tick;                  /* starts the next check */
    struct http_client *running;         /* the running check, NULL between checks */
    struct health_status st;
};

struct health_checker {
    struct event_base *base;
    health_change_cb cb;
    void *cb_arg;
    struct conf_health conf; /* path and expect_body owned */
    struct check *checks;
};

static int64_t now_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_timeval(uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    return tv;
}

/* ------------------------------------------------------------------------ */
/* Outcomes */

static void set_up(struct check *c, bool up)
{
    const char *pool = conf_colour_name(c->pool);
    const char *s = c->st.streak == 1 ? "" : "s";
    char why[256 + HEALTH_CHECK_TEXT_MAX];

    c->st.up = up;
    if (up)
        snprintf(why, sizeof(why), "server %s/%s up: %u check%s passed in a row", pool, c->name,
                 c->st.streak, s);
    else
        snprintf(why, sizeof(why), "server %s/%s down: %u check%s failed in a row, last: %s", pool,
                 c->name, c->st.streak, s, c->st.last);
    if (up)
        log_info("%s", why);
    else
        log_warn("%s", why);
    c->hc->cb(c->handle, up, why, c->hc->cb_arg);
}

/* Counts one finished check toward rise or fall. */
static void count(struct check *c, bool passed)
{
    const struct conf_health *h = &c->hc->conf;

    if (c->st.checked && passed == c->st.passing) {
        c->st.streak++;
    } else {
        c->st.passing = passed;
        c->st.streak = 1;
    }
    c->st.checked = true;
    if (c->st.up && !passed && c->st.streak >= h->fall)
        set_up(c, false);
    else if (!c->st.up && passed && c->st.streak >= h->rise)
        set_up(c, true);
}

/* Stops the running check, if any, without counting it. The client allows
 * this from inside its own callback. */
static void check_close(struct check *c)
{
    http_client_free(c->running);
    c->running = NULL;
}

/* Ends the running check: passed or not, with the result text (borrowed;
 * copied before the client that owns it is freed). */
static void check_done(struct check *c, bool passed, const char *result)
{
    snprintf(c->st.last, sizeof(c->st.last), "%s", result);
    check_close(c);
    c->st.last_ms = now_unix_ms();
    count(c, passed);
}

static void client_done_cb(bool passed, const char *result, void *arg)
{
    check_done(arg, passed, result);
}

/* ------------------------------------------------------------------------ */
/* Running a check */

static void check_start(struct check *c)
{
    const struct conf_health *h = &c->hc->conf;
    struct http_client_request req = {
        .addr = &c->addr,
        .method = "GET",
        .path = h->path,
        .user_agent = "switchyard-health",
        .expect_status = h->expect_status,
        .expect_body = h->expect_body,
        .timeout_ms = h->timeout_ms,
        .tls_ctx = c->tls_ctx,
        .tls = c->tls,
    };

    c->running = http_client_start(c->hc->base, &req, client_done_cb, c);
    if (c->running == NULL)
        check_done(c, false, "out of memory");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct check *c = arg;
    struct timeval interval = ms_timeval(c->hc->conf.interval_ms);

    event_add(c->tick, &interval);
    if (c->running == NULL)
        check_start(c);
}

/* ------------------------------------------------------------------------ */
/* The set of servers */

static void check_free(struct check *c)
{
    if (c == NULL)
        return;
    http_client_free(c->running);
    if (c->tick != NULL)
        event_free(c->tick);
    free(c->name);
    free(c);
}

/* A new check of t, up, its first tick at a random point of the first
 * interval; NULL when out of memory. */
static struct check *check_new(struct health_checker *hc, const struct health_target *t,
                               uint32_t interval_ms)
{
    struct check *c = calloc(1, sizeof(*c));
    uint32_t jitter;

    if (c == NULL)
        return NULL;
    c->hc = hc;
    c->pool = t->pool;
    c->addr = t->server->addr;
    c->handle = t->handle;
    c->tls_ctx = t->tls_ctx;
    c->tls = t->tls;
    c->st.up = true;
    c->name = strdup(t->server->name);
    c->tick = evtimer_new(hc->base, tick_cb, c);
    if (c->name == NULL || c->tick == NULL) {
        check_free(c);
        return NULL;
    }
    evutil_secure_rng_get_bytes(&jitter, sizeof(jitter));
    struct timeval first = ms_timeval(jitter % interval_ms);
    event_add(c->tick, &first);
    return c;
}

static struct check *find(const struct health_checker *hc, enum conf_colour pool, const char *name)
{
    for (struct check *c = hc->checks; c != NULL; c = c->next) {
        if (c->pool == pool && strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

static void conf_clear(struct conf_health *h)
{
    free(h->path);
    free(h->expect_body);
    memset(h, 0, sizeof(*h));
}

/* True when a check started under a would be judged the same under b. */
static bool same_check(const struct conf_health *a, const struct conf_health *b)
{
    return conf_same_str(a->path, b->path) && conf_same_str(a->expect_body, b->expect_body) &&
           a->expect_status == b->expect_status && a->timeout_ms == b->timeout_ms;
}

/* Drops every running check without counting it: it was started under
 * settings that no longer hold. The next tick starts a fresh one. */
static void abort_running(struct health_checker *hc)
{
    for (struct check *c = hc->checks; c != NULL; c = c->next) {
        check_close(c);
    }
}

static int conf_copy(struct conf_health *dst, const struct conf_health *src)
{
    *dst = *src;
    dst->path = strdup(src->path != NULL ? src->path : "/");
    dst->expect_body = src->expect_body != NULL ? strdup(src->expect_body) : NULL;
    if (dst->path == NULL || (src->expect_body != NULL && dst->expect_body == NULL)) {
        conf_clear(dst);
        return -1;
    }
    return 0;
}

/* Frees every check not marked wanted. With the checks turned off, a server
 * they held down goes back up: that is logged. */
static void sweep(struct health_checker *hc)
{
    struct check **link = &hc->checks;

    while (*link != NULL) {
        struct check *c = *link;
        if (c->wanted) {
            c->wanted = false;
            link = &c->next;
            continue;
        }
        if (!c->st.up && !hc->conf.enabled)
            log_info("server %s/%s up: health checks are off", conf_colour_name(c->pool), c->name);
        *link = c->next;
        check_free(c);
    }
}

/* Makes a check for every target without one, onto *fresh. */
static int add_missing(struct health_checker *hc, const struct conf_health *conf,
                       const struct health_target *targets, size_t n, struct check **fresh)
{
    for (size_t i = 0; i < n; i++) {
        const struct health_target *t = &targets[i];
        if (find(hc, t->pool, t->server->name) != NULL)
            continue;
        struct check *c = check_new(hc, t, conf->interval_ms);
        if (c == NULL)
            return -1;
        c->next = *fresh;
        *fresh = c;
    }
    return 0;
}

int health_checker_set(struct health_checker *hc, const struct conf_health *conf,
                       const struct health_target *targets, size_t n)
{
    struct conf_health copy;
    struct check *fresh = NULL;

    if (conf_copy(&copy, conf) < 0)
        return -1;
    if (conf->enabled && add_missing(hc, conf, targets, n, &fresh) < 0) {
        while (fresh != NULL) {
            struct check *next = fresh->next;
            check_free(fresh);
            fresh = next;
        }
        conf_clear(&copy);
        return -1;
    }
    if (!same_check(&hc->conf, &copy))
        abort_running(hc);
    conf_clear(&hc->conf);
    hc->conf = copy;
    for (size_t i = 0; conf->enabled && i < n; i++) {
        struct check *c = find(hc, targets[i].pool, targets[i].server->name);
        if (c != NULL) {
            c->handle = targets[i].handle;
            c->addr = targets[i].server->addr; /* counters stay; the next check goes there */
            c->tls_ctx = targets[i].tls_ctx;   /* and speaks TLS, or not, as the pool now does */
            c->tls = targets[i].tls;
            c->wanted = true;
        }
    }
    sweep(hc);
    while (fresh != NULL) {
        struct check *next = fresh->next;
        fresh->next = hc->checks;
        hc->checks = fresh;
        fresh = next;
    }
    for (size_t i = 0; i < n; i++) {
        const struct health_status *st =
            health_checker_status(hc, targets[i].pool, targets[i].server->name);
        hc->cb(targets[i].handle, st == NULL || st->up, NULL, hc->cb_arg);
    }
    return 0;
}

const struct health_status *health_checker_status(const struct health_checker *hc,
                                                  enum conf_colour pool, const char *name)
{
    const struct check *c = find(hc, pool, name);

    return c != NULL ? &c->st : NULL;
}

struct health_checker *health_checker_new(struct event_base *base, health_change_cb cb, void *arg)
{
    struct health_checker *hc = calloc(1, sizeof(*hc));

    if (hc == NULL)
        return NULL;
    hc->base = base;
    hc->cb = cb;
    hc->cb_arg = arg;
    return hc;
}

void health_checker_free(struct health_checker *hc)
{
    if (hc == NULL)
        return;
    while (hc->checks != NULL) {
        struct check *next = hc->checks->next;
        check_free(hc->checks);
        hc->checks = next;
    }
    conf_clear(&hc->conf);
    free(hc);
}
