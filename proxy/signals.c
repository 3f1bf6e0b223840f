/* signals.c - outcomes into windows, and the instant flip. */
#include "proxy/signals.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/log.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"
#include "proxy/upstream.h"
#include "proxy/worker-t.h"

/* As DESIGN.md counts errors: a 4xx is the client's fault. */
static bool is_failure(const struct outcome *o)
{
    return o->kind != OUTCOME_RESPONSE || o->status >= 500;
}

static void describe(const struct upstream_server *srv, const struct outcome *o, const char *why,
                     char *buf, size_t len)
{
    const char *name = upstream_server_conf(srv)->name;

    if (o->kind == OUTCOME_RESPONSE && why == NULL)
        snprintf(buf, len, "%s: status %d", name, o->status);
    else
        snprintf(buf, len, "%s: %s", name, why != NULL ? why : "failed");
}

static void tell_control(struct worker *w, const struct flip_notice *n)
{
    if (write(w->shared->flip_fd, n, sizeof(*n)) != (ssize_t)sizeof(*n))
        log_error("worker %u: cannot report the instant flip to the control thread: %s", w->id,
                  strerror(errno));
}

/* Counts a candidate's outcome into the worker's run of failures; at the
 * limit, takes the candidate out of the split. */
static void watch_candidate(struct worker *w, struct upstream_server *srv, const struct outcome *o,
                            const char *why)
{
    const struct conf_detector *d = &w->cfg->detector;
    enum conf_colour colour = upstream_server_colour(srv);
    struct route_view v = route_split_get(w->shared->split);
    struct flip_notice n = {.worker = w->id, .candidate = colour};

    if (colour != v.candidate)
        return;
    /* A run counts under one split only: a new weight starts afresh. */
    if (!is_failure(o) || v.candidate_bp != w->failures_bp) {
        w->candidate_failures = 0;
        w->failures_bp = v.candidate_bp;
        if (!is_failure(o))
            return;
    }
    if (!d->enabled || d->fast_consecutive_failures == 0 ||
        ++w->candidate_failures < d->fast_consecutive_failures)
        return;
    n.failures = w->candidate_failures;
    w->candidate_failures = 0;
    /* Only the worker whose swap lands reports: the others find 0 already. */
    if (!route_split_drop_candidate(w->shared->split, v.stable))
        return;
    describe(srv, o, why, n.last, sizeof(n.last));
    log_warn("worker %u: %u failures in a row from candidate pool %s (last: %s): its weight is "
             "now 0",
             w->id, n.failures, conf_colour_name(colour), n.last);
    tell_control(w, &n);
}

void signals_record(struct worker *w, struct upstream_server *srv, const struct outcome *o,
                    const char *why)
{
    int64_t now = window_now_s();
    struct window *win = server_state_window(upstream_server_state(srv), w->id);

    if (win != NULL)
        window_record(win, now, o);
    window_record(w->pool_win[upstream_server_colour(srv)], now, o);
    watch_candidate(w, srv, o, why);
}
