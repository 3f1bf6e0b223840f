/* check.c - active health checks (see check.h).
 *
 * One struct check per server, with an explicit phase: IDLE between checks,
 * CONNECTING, HEAD (waiting for the response head), BODY (searching the body
 * for expect_body). Two timers per server: `tick` starts a check every
 * interval, `deadline` ends one that outlives timeout_ms. The config makes
 * timeout_ms shorter than interval_ms, so checks of one server never overlap.
 *
 * The connection is a plain bufferevent over a socket connected here, so
 * that a refused or unreachable server is reported as such; the response
 * head goes through the HTTP/1.1 parser the data plane uses (a library of its
 * own that depends on nothing), chunked bodies through its decoder.
 */
#include "health/check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/util.h>

#include "conf/log.h"
#include "proxy/http1.h"
#include "proxy/http1_chunked.h"

#define HEAD_MAX 16384  /* bytes of a response head */
#define HEADERS_MAX 64  /* fields of a response head */
#define FRAMING_MAX 512 /* chunked framing bytes handed to the decoder at once */

enum check_phase {
    CHECK_IDLE,       /* between checks */
    CHECK_CONNECTING, /* connect under way; the request waits in the output buffer */
    CHECK_HEAD,       /* connected, waiting for the response head */
    CHECK_BODY,       /* status as expected; searching the body for expect_body */
};

struct check {
    struct health_checker *hc;
    struct check *next;
    enum conf_colour pool;
    char *name;
    struct conf_addr addr;
    void *handle;
    bool wanted; /* health_checker_set(): still a target */
    enum check_phase phase;
    struct event *tick;      /* starts the next check */
    struct event *deadline;  /* ends the running check */
    struct bufferevent *bev; /* the running check's connection, NULL when IDLE */
    int status;              /* the running check's response status */
    enum http1_body framing; /* CHECK_BODY: how the body ends */
    uint64_t body_left;      /* HTTP1_BODY_LENGTH: bytes still to come */
    struct http1_chunked chunked;
    struct evbuffer *body; /* the body so far, at most HEALTH_CHECK_BODY_MAX bytes */
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

/* Closes the running check's connection, if any, and goes back to IDLE.
 * libevent allows freeing a bufferevent from its own callback: it defers
 * the release until the callback has returned. */
static void check_close(struct check *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    event_del(c->deadline);
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    c->phase = CHECK_IDLE;
}

/* Ends the running check: passed or not, with the result text. */
static void __attribute__((format(printf, 3, 4)))
check_done(struct check *c, bool passed, const char *fmt, ...)
{
    va_list ap;

    check_close(c);
    va_start(ap, fmt);
    vsnprintf(c->st.last, sizeof(c->st.last), fmt, ap);
    va_end(ap);
    c->st.last_ms = now_unix_ms();
    count(c, passed);
}

static void connect_failed(struct check *c, int err)
{
    if (err == ECONNREFUSED)
        check_done(c, false, "connect refused");
    else
        check_done(c, false, "connect failed: %s", strerror(err));
}

static void body_mismatch(struct check *c)
{
    check_done(c, false, "status %d, body does not contain \"%.40s\"", c->status,
               c->hc->conf.expect_body);
}

/* ------------------------------------------------------------------------ */
/* The response */

/* Moves chunk data from in to the body until the body is full, in runs dry
 * or the message ends. Returns 1 when the message ended, 0 when more is to
 * come, -1 on bad framing. */
static int take_chunked(struct check *c, struct evbuffer *in)
{
    while (evbuffer_get_length(in) > 0 && c->chunked.state != HTTP1_CHUNK_DONE) {
        size_t avail = evbuffer_get_length(in);
        if (c->chunked.state == HTTP1_CHUNK_DATA) {
            size_t room = HEALTH_CHECK_BODY_MAX - evbuffer_get_length(c->body);
            size_t n = avail < room ? avail : room;
            if (n > c->chunked.data_left)
                n = (size_t)c->chunked.data_left;
            if (n == 0)
                return 0; /* the body is full: the caller concludes */
            evbuffer_remove_buffer(in, c->body, n);
            http1_chunked_data_done(&c->chunked, n);
            continue;
        }
        size_t n = avail < FRAMING_MAX ? avail : FRAMING_MAX;
        ssize_t used =
            http1_chunked_parse(&c->chunked, (const char *)evbuffer_pullup(in, (ssize_t)n), n);
        if (used < 0)
            return -1;
        evbuffer_drain(in, (size_t)used);
        if (used == 0)
            return 0;
    }
    return c->chunked.state == HTTP1_CHUNK_DONE;
}

/* Moves body bytes from in to c->body as the framing allows: 1 when the
 * body ended, 0 when more may come, -1 on bad framing. */
static int take_body(struct check *c, struct evbuffer *in)
{
    size_t room = HEALTH_CHECK_BODY_MAX - evbuffer_get_length(c->body);
    size_t n = evbuffer_get_length(in) < room ? evbuffer_get_length(in) : room;

    switch (c->framing) {
    case HTTP1_BODY_NONE:
        return 1;
    case HTTP1_BODY_LENGTH:
        if (n > c->body_left)
            n = (size_t)c->body_left;
        evbuffer_remove_buffer(in, c->body, n);
        c->body_left -= n;
        return c->body_left == 0;
    case HTTP1_BODY_CHUNKED:
        return take_chunked(c, in);
    case HTTP1_BODY_CLOSE:
        evbuffer_remove_buffer(in, c->body, n);
        return 0; /* ends at EOF */
    }
    return -1;
}

static bool body_matches(const struct check *c)
{
    const char *want = c->hc->conf.expect_body;

    return evbuffer_search(c->body, want, strlen(want), NULL).pos >= 0;
}

static void read_body(struct check *c, struct evbuffer *in)
{
    int ended = take_body(c, in);

    if (ended < 0)
        check_done(c, false, "status %d, bad chunked body", c->status);
    else if (body_matches(c))
        check_done(c, true, "ok: status %d, body matches", c->status);
    else if (ended || evbuffer_get_length(c->body) >= HEALTH_CHECK_BODY_MAX)
        body_mismatch(c);
}

/* Judges a complete head: its status, then whether the body must be read. */
static void judge_head(struct check *c, const struct http1_response *res)
{
    const struct conf_health *h = &c->hc->conf;

    c->status = res->status;
    if ((unsigned)res->status != h->expect_status) {
        check_done(c, false, "status %d, expected %u", res->status, h->expect_status);
        return;
    }
    if (h->expect_body == NULL) {
        check_done(c, true, "ok: status %d", res->status);
        return;
    }
    c->phase = CHECK_BODY;
    c->framing = res->body;
    c->body_left = res->content_length;
    http1_chunked_init(&c->chunked);
}

static void read_head(struct check *c, struct evbuffer *in)
{
    struct http1_header headers[HEADERS_MAX];
    struct http1_response res;

    /* Interim (1xx) answers are skipped: each drains its own head. */
    while (c->phase == CHECK_HEAD) {
        size_t len = evbuffer_get_length(in);
        size_t n = len < HEAD_MAX ? len : HEAD_MAX;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)n);
        int r = http1_parse_response(p, n, HEAD_MAX, headers, HEADERS_MAX, HTTP1_M_GET, &res);

        if (r == HTTP1_INCOMPLETE)
            return;
        if (r < 0) {
            check_done(c, false,
                       r == HTTP1_TOO_LARGE ? "response head too large"
                                            : "malformed response head");
            return;
        }
        evbuffer_drain(in, (size_t)r);
        if (res.status >= 200)
            judge_head(c, &res);
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct check *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (c->phase == CHECK_HEAD)
        read_head(c, in);
    if (c->phase == CHECK_BODY)
        read_body(c, in);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct check *c = arg;
    int err = EVUTIL_SOCKET_ERROR(); /* read before anything else can change it */

    if (what & BEV_EVENT_CONNECTED) {
        c->phase = CHECK_HEAD;
        return;
    }
    switch (c->phase) {
    case CHECK_CONNECTING:
        connect_failed(c, err);
        break;
    case CHECK_HEAD:
        if (what & BEV_EVENT_EOF)
            check_done(c, false, "connection closed before the response head");
        else
            check_done(c, false, "read failed: %s", strerror(err));
        break;
    case CHECK_BODY:
        /* The body ended early or at EOF: what came holds no match. */
        body_mismatch(c);
        break;
    case CHECK_IDLE:
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Running a check */

static int send_request(struct check *c)
{
    int n = evbuffer_add_printf(bufferevent_get_output(c->bev),
                                "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                                "User-Agent: switchyard-health\r\n\r\n",
                                c->hc->conf.path, c->addr.text);

    return n < 0 ? -1 : 0;
}

/* Connects here rather than in libevent so that a refusal on the spot is
 * reported with its errno; a connect in progress is handed to the
 * bufferevent, which reports its end as CONNECTED or ERROR. */
static void check_start(struct check *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->addr.ss;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct timeval timeout = ms_timeval(c->hc->conf.timeout_ms);

    if (fd < 0) {
        check_done(c, false, "socket: %s", strerror(errno));
        return;
    }
    if (connect(fd, sa, c->addr.len) < 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        connect_failed(c, err);
        return;
    }
    c->bev = bufferevent_socket_new(c->hc->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        check_done(c, false, "out of memory");
        return;
    }
    c->phase = CHECK_CONNECTING;
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    if (bufferevent_socket_connect(c->bev, NULL, 0) < 0 || send_request(c) < 0 ||
        bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0) {
        check_done(c, false, "out of memory");
        return;
    }
    event_add(c->deadline, &timeout);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct check *c = arg;
    struct timeval interval = ms_timeval(c->hc->conf.interval_ms);

    event_add(c->tick, &interval);
    if (c->phase == CHECK_IDLE)
        check_start(c);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct check *c = arg;

    if (c->phase != CHECK_IDLE)
        check_done(c, false, "timeout after %u ms", c->hc->conf.timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* The set of servers */

static void check_free(struct check *c)
{
    if (c == NULL)
        return;
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->tick != NULL)
        event_free(c->tick);
    if (c->deadline != NULL)
        event_free(c->deadline);
    if (c->body != NULL)
        evbuffer_free(c->body);
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
    c->st.up = true;
    c->name = strdup(t->server->name);
    c->tick = evtimer_new(hc->base, tick_cb, c);
    c->deadline = evtimer_new(hc->base, deadline_cb, c);
    c->body = evbuffer_new();
    if (c->name == NULL || c->tick == NULL || c->deadline == NULL || c->body == NULL) {
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

static bool same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* True when a check started under a would be judged the same under b. */
static bool same_check(const struct conf_health *a, const struct conf_health *b)
{
    return same_str(a->path, b->path) && same_str(a->expect_body, b->expect_body) &&
           a->expect_status == b->expect_status && a->timeout_ms == b->timeout_ms;
}

/* Drops every running check without counting it: it was started under
 * settings that no longer hold. The next tick starts a fresh one. */
static void abort_running(struct health_checker *hc)
{
    for (struct check *c = hc->checks; c != NULL; c = c->next) {
        if (c->phase != CHECK_IDLE)
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
