/* guard.c - the instant flip's notices and the detector's tick. */
#include "control/guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "control/reload.h"
#include "control/service.h"
#include "proxy/route.h"
#include "proxy/signals.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

struct guard {
    struct proxy *proxy;
    pool_sum_fn sum; /* NULL: the proxy's own windows */
    void *sum_arg;
    struct service *svc;
    struct reloader *rl;
    struct event *flips;
    struct event *tick;
    bool armed; /* the candidate gets traffic; since_s is when it began */
    int64_t since_s;
    enum conf_colour stable; /* a promotion re-arms */
    /* What second since_s held when the guard armed: it is taken out of the
     * sums while that second is in the window, so that failures from before
     * (those that caused the last rollback, say) never count again. */
    struct window_sum before[2]; /* [0] candidate, [1] stable */
    struct window_sum sums[2];   /* this tick's */
    struct detect_result last;
    unsigned last_seconds;
    bool flip_unrecorded; /* last tick saw the split flipped and the state not */
};

static void roll_back(struct guard *g, const char *who, const char *why)
{
    struct state_change ch = {.op = STATE_OP_ROLLBACK, .who = who, .why = why};
    struct state_error err = {0};

    if (service_apply(g->svc, &ch, &err) < 0)
        log_error("%s: rollback refused: %s: %s", who, err.code, err.message);
}

static void flips_cb(evutil_socket_t fd, short what, void *arg)
{
    struct guard *g = arg;
    struct flip_notice n;

    while (proxy_read_flip(g->proxy, &n) == 1) {
        const struct state *st = service_state(g->svc);
        char why[2 * STATE_WHY_MAX]; /* the state keeps what fits */

        n.last[sizeof(n.last) - 1] = '\0';
        if (st->candidate_bp == 0 || st->stable == n.candidate)
            continue; /* rolled back (or promoted) meanwhile: nothing left to record */
        snprintf(why, sizeof(why),
                 "worker %u saw %u failures in a row from candidate %s (last: %s)", n.worker,
                 n.failures, conf_colour_name(n.candidate), n.last);
        roll_back(g, "fast-flip", why);
    }
}

/* True when a worker's instant flip took the candidate out of the split
 * while the state still gives it traffic. */
static bool flip_unrecorded(const struct guard *g, const struct state *st)
{
    struct route_view v = route_split_get(service_split(g->svc));

    return st->candidate_bp > 0 && v.candidate_bp == 0 && v.stable == st->stable;
}

/* A flip whose notice never arrived (the workers' notice pipe was full, or
 * the notice was lost) would leave the state saying the candidate gets
 * traffic while it gets none, and a rollout free to advance. Seen on two
 * ticks in a row (not to race a notice still in the pipe), the rollback is
 * recorded here. Returns true when it did. */
static bool record_lost_flip(struct guard *g, const struct state *st)
{
    char why[STATE_WHY_MAX];

    if (!flip_unrecorded(g, st)) {
        g->flip_unrecorded = false;
        return false;
    }
    if (!g->flip_unrecorded) {
        g->flip_unrecorded = true;
        return false;
    }
    g->flip_unrecorded = false;
    snprintf(why, sizeof(why),
             "a worker's instant flip took candidate %s out but its notice was lost: rollback "
             "recorded by the guard",
             conf_colour_name(st->stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE));
    log_warn("fast-flip: %s", why);
    g->armed = false;
    roll_back(g, "fast-flip", why);
    return true;
}

static void pool_sum(struct guard *g, enum conf_colour c, int64_t now, unsigned seconds,
                     struct window_sum *out)
{
    if (g->sum != NULL)
        g->sum(g->sum_arg, c, now, seconds, out);
    else
        proxy_pool_sum(g->proxy, c, now, seconds, out);
}

static void pool_sums(struct guard *g, enum conf_colour candidate, enum conf_colour stable,
                      int64_t now, unsigned seconds, struct window_sum out[2])
{
    window_sum_clear(&out[0]);
    window_sum_clear(&out[1]);
    pool_sum(g, candidate, now, seconds, &out[0]);
    pool_sum(g, stable, now, seconds, &out[1]);
}

static void set_idle(struct guard *g, const char *why)
{
    memset(&g->last, 0, sizeof(g->last));
    g->last.verdict = VERDICT_INCONCLUSIVE;
    snprintf(g->last.reason, sizeof(g->last.reason), "%s", why);
    g->last_seconds = 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct guard *g = arg;
    const struct conf_detector *d = &reloader_current(g->rl)->cfg->detector;
    const struct state *st = service_state(g->svc);
    enum conf_colour candidate = st->stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE;
    int64_t now = window_now_s();

    if (record_lost_flip(g, st))
        return;
    if (!d->enabled) {
        set_idle(g, "detector off (no detector section)");
        return;
    }
    if (st->candidate_bp == 0) {
        g->armed = false;
        set_idle(g, "the candidate gets no traffic");
        return;
    }
    if (!g->armed || g->stable != st->stable) {
        g->armed = true;
        g->since_s = now;
        g->stable = st->stable;
        pool_sums(g, candidate, st->stable, now, 1, g->before);
    }
    g->last_seconds = (unsigned)(now - g->since_s + 1);
    if (g->last_seconds > d->window_s)
        g->last_seconds = d->window_s;
    pool_sums(g, candidate, st->stable, now, g->last_seconds, g->sums);
    if (now - g->last_seconds < g->since_s) { /* since_s is still in the window */
        window_sum_subtract(&g->sums[0], &g->before[0]);
        window_sum_subtract(&g->sums[1], &g->before[1]);
    }
    detect_judge(d, &g->sums[0], &g->sums[1], &g->last);
    if (g->last.verdict == VERDICT_FAIL) {
        char why[2 * STATE_WHY_MAX]; /* the state keeps what fits */
        snprintf(why, sizeof(why), "candidate %s over the last %u s: %s",
                 conf_colour_name(candidate), g->last_seconds, g->last.reason);
        log_warn("detector: %s: rolling back", why);
        g->armed = false;
        roll_back(g, "detector", why);
    }
}

struct guard *guard_new(struct event_base *base, struct proxy *proxy, struct service *svc,
                        struct reloader *rl)
{
    struct guard *g = calloc(1, sizeof(*g));
    struct timeval tick = {0, GUARD_TICK_MS * 1000};

    if (g == NULL)
        return NULL;
    g->proxy = proxy;
    g->svc = svc;
    g->rl = rl;
    set_idle(g, "starting");
    g->flips = event_new(base, proxy_flip_fd(proxy), EV_READ | EV_PERSIST, flips_cb, g);
    g->tick = event_new(base, -1, EV_PERSIST, tick_cb, g);
    if (g->flips == NULL || g->tick == NULL || event_add(g->flips, NULL) < 0 ||
        event_add(g->tick, &tick) < 0) {
        guard_free(g);
        return NULL;
    }
    return g;
}

void guard_free(struct guard *g)
{
    if (g == NULL)
        return;
    if (g->flips != NULL)
        event_free(g->flips);
    if (g->tick != NULL)
        event_free(g->tick);
    free(g);
}

void guard_set_source(struct guard *g, pool_sum_fn fn, void *arg)
{
    if (g->sum != fn || g->sum_arg != arg)
        guard_rearm(g); /* the armed second's counts came from the other source */
    g->sum = fn;
    g->sum_arg = arg;
}

void guard_rearm(struct guard *g)
{
    g->armed = false;
    set_idle(g, "re-armed: judging new traffic only");
}

const struct detect_result *guard_last(const struct guard *g, unsigned *seconds)
{
    if (seconds != NULL)
        *seconds = g->last_seconds;
    return &g->last;
}
