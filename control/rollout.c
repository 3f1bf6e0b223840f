/* rollout.c - the rollout controller: preflight, gated steps, promotion,
 * and the report. */
#include "control/rollout.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/log.h"
#include "control/guard.h"
#include "control/preflight.h"
#include "control/reload.h"
#include "control/rollout_window.h"
#include "control/service.h"
#include "health/window.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

#define WHO "rollout"
#define PROBE_TIMEOUT_MS 5000
#define RATE_WINDOW_S 60 /* max_rps is judged over the last minute */

enum gate_id { GATE_TIME, GATE_WINDOW, GATE_TRAFFIC, GATE_DETECTOR, GATES };

static const char *const gate_names[GATES] = {"time", "window", "traffic", "detector"};

struct gate {
    bool ok;
    char why[192];
};

/* One step as the report tells it. */
struct step_record {
    uint32_t weight_bp;
    int64_t started_ms, ended_ms;
    char gates[256]; /* the gates when it ended */
    struct detect_pool candidate, stable;
    enum verdict verdict;
};

struct rollout {
    struct service *svc;
    struct reloader *rl;
    const struct proxy *proxy;
    struct guard *guard;
    struct event *tick;
    rollout_clock clock;
    void *clock_arg;

    bool active;
    struct rollout_plan plan;
    enum conf_colour stable; /* at the start: a promotion swaps the state's */
    int64_t started_ms;
    int64_t step_started_ms;
    struct step_record steps[ROLLOUT_STEPS_MAX];
    size_t nrecorded; /* steps begun */
    struct preflight *preflight;
    struct snapshot *preflight_snap; /* the config its probes and servers live in */
    bool preflight_started;
    struct gate gates[GATES];

    unsigned zones_for; /* the reload count whose windows' zones are loaded, + 1 */
    struct rollout_tz **zones;
    size_t nzones;
    char zones_error[256];

    json_t *report;                /* the last finished rollout's */
    char last[STATE_WHY_MAX + 96]; /* "promoted at TIME: REASON", for status */
};

static void preflight_stop(struct rollout *r);

static int64_t realtime_ms(void *arg)
{
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct rollout *r)
{
    return r->clock(r->clock_arg);
}

static const struct config *running(const struct rollout *r)
{
    return reloader_current(r->rl)->cfg;
}

static enum conf_colour candidate_of(const struct state *st)
{
    return st->stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE;
}

static int apply(struct rollout *r, enum state_op op, uint32_t weight_bp, uint32_t step,
                 const char *why)
{
    struct state_change ch = {
        .op = op, .weight_bp = weight_bp, .step = step, .who = WHO, .why = why};
    struct state_error err = {0};

    if (service_apply(r->svc, &ch, &err) == 0)
        return 0;
    log_error("rollout: %s refused: %s: %s", state_op_name(op), err.code, err.message);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Steps and the report */

static void begin_step(struct rollout *r, uint32_t weight_bp)
{
    struct step_record *s;

    r->step_started_ms = now_ms(r);
    /* The detector's verdict must rest on this step's traffic. */
    guard_rearm(r->guard);
    if (r->nrecorded >= ROLLOUT_STEPS_MAX)
        return;
    s = &r->steps[r->nrecorded++];
    memset(s, 0, sizeof(*s));
    s->weight_bp = weight_bp;
    s->started_ms = r->step_started_ms;
    s->verdict = VERDICT_INCONCLUSIVE;
}

static struct step_record *current_step(struct rollout *r)
{
    return r->nrecorded > 0 ? &r->steps[r->nrecorded - 1] : NULL;
}

/* Keeps the detector's latest numbers for the step under way. */
static void note_numbers(struct rollout *r)
{
    struct step_record *s = current_step(r);
    const struct detect_result *d = guard_last(r->guard, NULL);

    if (s == NULL || s->ended_ms != 0 || d->candidate.requests == 0)
        return;
    s->candidate = d->candidate;
    s->stable = d->stable;
    s->verdict = d->verdict;
}

static void gates_text(const struct rollout *r, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int g = 0; g < GATES && used < len; g++) {
        int n = snprintf(buf + used, len - used, "%s%s %s", g ? "; " : "", gate_names[g],
                         r->gates[g].ok ? "ok" : "waiting");
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static void end_step(struct rollout *r)
{
    struct step_record *s = current_step(r);

    if (s == NULL || s->ended_ms != 0)
        return;
    note_numbers(r);
    s->ended_ms = now_ms(r);
    gates_text(r, s->gates, sizeof(s->gates));
}

static json_t *time_json(int64_t ms)
{
    char buf[64];

    if (ms == 0)
        return json_null();
    log_format_time(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *pool_numbers_json(const struct detect_pool *p)
{
    return json_pack("{s:I, s:f, s:f, s:f}", "requests", (json_int_t)p->requests, "error_rate",
                     p->error_rate, "p50_ms", p->p50_us / 1000.0, "p99_ms", p->p99_us / 1000.0);
}

static json_t *step_json(const struct step_record *s, size_t i)
{
    return json_pack("{s:I, s:f, s:o, s:o, s:s, s:o, s:o, s:s}", "step", (json_int_t)(i + 1),
                     "weight", s->weight_bp / 100.0, "started_at", time_json(s->started_ms),
                     "ended_at", time_json(s->ended_ms), "gates", s->gates, "candidate",
                     pool_numbers_json(&s->candidate), "stable", pool_numbers_json(&s->stable),
                     "verdict", verdict_name(s->verdict));
}

/* The rollout ended (promoted, rolled back, or stopped by hand): the report
 * is kept for `rollout report` and logged. */
static void finish(struct rollout *r, const struct state *st)
{
    json_t *steps = json_array();
    json_t *report;
    int64_t end = now_ms(r);
    char when[64];

    end_step(r);
    for (size_t i = 0; steps != NULL && i < r->nrecorded; i++)
        json_array_append_new(steps, step_json(&r->steps[i], i));
    report = json_pack(
        "{s:s, s:s, s:o, s:o, s:s, s:s, s:o}", "outcome", state_phase_name(st->phase), "reason",
        st->reason, "started_at", time_json(r->started_ms), "ended_at", time_json(end), "stable",
        conf_colour_name(r->stable), "candidate",
        conf_colour_name(r->stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE), "steps", steps);
    if (report == NULL)
        log_error("rollout: out of memory: no report for this rollout");
    json_decref(r->report);
    r->report = report;
    log_format_time(end, when, sizeof(when));
    snprintf(r->last, sizeof(r->last), "%s at %s: %s", state_phase_name(st->phase), when,
             st->reason);
    log_info("rollout: ended %s after %zu step%s: %s", state_phase_name(st->phase), r->nrecorded,
             r->nrecorded == 1 ? "" : "s", st->reason);
    preflight_stop(r);
    r->active = false;
}

/* ------------------------------------------------------------------------ */
/* Gates */

static void gate_set(struct gate *g, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void gate_set(struct gate *g, bool ok, const char *fmt, ...)
{
    va_list ap;

    g->ok = ok;
    va_start(ap, fmt);
    vsnprintf(g->why, sizeof(g->why), fmt, ap);
    va_end(ap);
}

/* The zones of the running config's windows, loaded once per config. */
static void zones_fit(struct rollout *r, const struct config *cfg)
{
    /* By reload count, not address: a new config may reuse a freed one's. */
    unsigned generation = reloader_count(r->rl) + 1;

    if (r->zones_for == generation)
        return;
    rollout_window_zones_clear(r->zones, r->nzones);
    free(r->zones);
    r->zones = NULL;
    r->nzones = 0;
    r->zones_error[0] = '\0';
    r->zones_for = generation;
    if (cfg->rollout.nwindows == 0)
        return;
    r->zones = calloc(cfg->rollout.nwindows, sizeof(*r->zones));
    if (r->zones == NULL) {
        snprintf(r->zones_error, sizeof(r->zones_error), "out of memory");
        return;
    }
    r->nzones = cfg->rollout.nwindows;
    if (rollout_window_zones_load(cfg->rollout.windows, cfg->rollout.nwindows, r->zones,
                                  r->zones_error, sizeof(r->zones_error)) < 0)
        log_error("rollout: %s: the window gate stays closed", r->zones_error);
}

static void gate_window(struct rollout *r, const struct config *cfg, int64_t now)
{
    struct rollout_window_info info;
    bool open;
    char text[160];

    zones_fit(r, cfg);
    if (r->zones_error[0] != '\0') {
        gate_set(&r->gates[GATE_WINDOW], false, "time zones: %s", r->zones_error);
        return;
    }
    open = rollout_window_open(cfg->rollout.windows, cfg->rollout.nwindows, r->zones, now / 1000,
                               &info);
    rollout_window_describe(cfg->rollout.windows, cfg->rollout.nwindows, &info, now / 1000, text,
                            sizeof(text));
    gate_set(&r->gates[GATE_WINDOW], open, "%s", text);
}

/* The measured request rate of both pools over the last minute. */
static void gate_traffic(struct rollout *r, const struct config *cfg)
{
    struct window_sum *sum;
    double rps;

    if (cfg->rollout.max_rps <= 0) {
        gate_set(&r->gates[GATE_TRAFFIC], true, "no max_rps");
        return;
    }
    sum = calloc(1, sizeof(*sum)); /* holds a histogram: not for the stack */
    if (sum == NULL) {
        gate_set(&r->gates[GATE_TRAFFIC], false, "out of memory");
        return;
    }
    for (int c = 0; c < CONF_COLOURS; c++)
        proxy_pool_sum(r->proxy, (enum conf_colour)c, window_now_s(), RATE_WINDOW_S, sum);
    rps = (double)sum->requests / RATE_WINDOW_S;
    free(sum);
    gate_set(&r->gates[GATE_TRAFFIC], rps < cfg->rollout.max_rps, "traffic %.0f rps %s max %.0f",
             rps, rps < cfg->rollout.max_rps ? "under" : "over", cfg->rollout.max_rps);
}

/* Fills r->gates for the step under way; returns true when all hold. */
static bool gates_eval(struct rollout *r, int64_t now)
{
    const struct config *cfg = running(r);
    const struct detect_result *d = guard_last(r->guard, NULL);
    int64_t at_step_s = (now - r->step_started_ms) / 1000;
    bool all = true;

    gate_set(&r->gates[GATE_TIME], at_step_s >= r->plan.step_s, "at step for %lld s of %u",
             (long long)at_step_s, r->plan.step_s);
    gate_window(r, cfg, now);
    gate_traffic(r, cfg);
    gate_set(&r->gates[GATE_DETECTOR], d->verdict == VERDICT_OK, "%s: %s", verdict_name(d->verdict),
             d->reason);
    for (int g = 0; g < GATES; g++)
        all &= r->gates[g].ok;
    return all;
}

/* ------------------------------------------------------------------------ */
/* The tick */

/* Stops the probes (if running) and lets the config they read go. */
static void preflight_stop(struct rollout *r)
{
    preflight_free(r->preflight);
    r->preflight = NULL;
    snapshot_unref(r->preflight_snap);
    r->preflight_snap = NULL;
}

static void preflight_done(bool passed, const char *why, void *arg)
{
    struct rollout *r = arg;
    char reason[STATE_WHY_MAX];

    preflight_stop(r);
    if (service_state(r->svc)->phase != STATE_PREFLIGHT) {
        /* Rolled back, or paused: a resume runs the probes again. */
        r->preflight_started = false;
        return;
    }
    snprintf(reason, sizeof(reason), "preflight %s: %s", passed ? "passed" : "failed", why);
    if (!passed) {
        log_warn("rollout: %s", reason);
        (void)apply(r, STATE_OP_ROLLBACK, 0, 0, reason);
        return;
    }
    if (apply(r, STATE_OP_PREFLIGHT_OK, r->plan.steps_bp[0], 1, reason) == 0)
        begin_step(r, r->plan.steps_bp[0]);
}

static void run_preflight(struct rollout *r, const struct state *st)
{
    /* A reload while probing must not free what the probes read. */
    struct snapshot *snap = snapshot_ref(reloader_current(r->rl));
    const struct config *cfg = snap->cfg;

    r->preflight_snap = snap;
    r->preflight_started = true;
    r->preflight =
        preflight_start(event_get_base(r->tick), cfg->rollout.preflight, cfg->rollout.npreflight,
                        &cfg->pools[candidate_of(st)], PROBE_TIMEOUT_MS, preflight_done, r);
    if (r->preflight == NULL)
        (void)apply(r, STATE_OP_ROLLBACK, 0, 0, "preflight: out of memory");
}

/* Every gate held at the step under way: on to the next, or promote. */
static void step_done(struct rollout *r, const struct state *st)
{
    char why[STATE_WHY_MAX];
    size_t i = st->step; /* the next step's index in the plan */

    /* A worker's instant flip already took the candidate out (its rollback
     * is on its way to the state): never advance or promote over it. */
    if (route_split_get(service_split(r->svc)).candidate_bp != st->candidate_bp)
        return;
    end_step(r);
    if (i >= r->plan.nsteps) {
        snprintf(why, sizeof(why), "step %u at %.2f%% held every gate (%s)", st->step,
                 st->candidate_bp / 100.0, r->gates[GATE_DETECTOR].why);
        (void)apply(r, STATE_OP_PROMOTE, 0, 0, why);
        return;
    }
    snprintf(why, sizeof(why), "step %u held every gate for %lld s (%s)", st->step,
             (long long)((now_ms(r) - r->step_started_ms) / 1000), r->gates[GATE_DETECTOR].why);
    if (apply(r, STATE_OP_ADVANCE, r->plan.steps_bp[i], st->step + 1, why) == 0)
        begin_step(r, r->plan.steps_bp[i]);
}

/* Ends the rollout now if the state already left it (a rollback lands
 * between two ticks; whoever asks right after must see its report). */
static void settle(struct rollout *r)
{
    const struct state *st = service_state(r->svc);

    if (r->active &&
        (st->phase == STATE_IDLE || st->phase == STATE_PROMOTED || st->phase == STATE_ROLLED_BACK))
        finish(r, st);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rollout *r = arg;
    const struct state *st = service_state(r->svc);

    if (!r->active)
        return;
    switch (st->phase) {
    case STATE_PREFLIGHT:
        if (!r->preflight_started)
            run_preflight(r, st);
        return;
    case STATE_PROGRESSING:
        note_numbers(r);
        if (gates_eval(r, now_ms(r)))
            step_done(r, st);
        return;
    case STATE_PAUSED:
        if (st->step >= 1) {                /* paused at a step */
            (void)gates_eval(r, now_ms(r)); /* for status only */
            return;
        }
        /* Paused in preflight: the probes run again on resume. */
        preflight_stop(r);
        r->preflight_started = false;
        return;
    case STATE_IDLE:
    case STATE_PROMOTED:
    case STATE_ROLLED_BACK:
        finish(r, st);
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* Interface */

struct rollout *rollout_new(struct event_base *base, struct service *svc, struct reloader *rl,
                            const struct proxy *proxy, struct guard *guard)
{
    struct rollout *r = calloc(1, sizeof(*r));
    struct timeval tick = {0, ROLLOUT_TICK_MS * 1000};
    const struct state *st = service_state(svc);

    if (r == NULL)
        return NULL;
    r->svc = svc;
    r->rl = rl;
    r->proxy = proxy;
    r->guard = guard;
    r->clock = realtime_ms;
    snprintf(r->last, sizeof(r->last), "none since switchyard started");
    r->tick = event_new(base, -1, EV_PERSIST, tick_cb, r);
    if (r->tick == NULL || event_add(r->tick, &tick) < 0) {
        rollout_free(r);
        return NULL;
    }
    /* A rollout under way when the process stopped goes on, by the
     * config's plan: its step starts again. */
    if (st->phase == STATE_PREFLIGHT || st->phase == STATE_PROGRESSING ||
        st->phase == STATE_PAUSED) {
        const struct conf_rollout *c = &running(r)->rollout;
        r->plan.nsteps = c->nsteps < ROLLOUT_STEPS_MAX ? c->nsteps : ROLLOUT_STEPS_MAX;
        memcpy(r->plan.steps_bp, c->steps_bp, r->plan.nsteps * sizeof(*c->steps_bp));
        r->plan.step_s = c->step_s;
        r->active = c->enabled && r->plan.nsteps > 0;
        r->started_ms = now_ms(r);
        r->stable = st->stable;
        if (r->active && st->step >= 1)
            begin_step(r, st->candidate_bp);
        log_info("rollout: resuming the rollout under way (phase %s, step %u)",
                 state_phase_name(st->phase), st->step);
    }
    return r;
}

void rollout_free(struct rollout *r)
{
    if (r == NULL)
        return;
    if (r->tick != NULL)
        event_free(r->tick);
    preflight_stop(r);
    rollout_window_zones_clear(r->zones, r->nzones);
    free(r->zones);
    json_decref(r->report);
    free(r);
}

void rollout_set_clock(struct rollout *r, rollout_clock clock, void *arg)
{
    r->clock = clock != NULL ? clock : realtime_ms;
    r->clock_arg = arg;
}

static int refuse(struct state_error *err, const char *code, const char *msg)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
    return -1;
}

/* The plan of this rollout: the request's, with the config's for what it
 * leaves out. */
static int plan_make(const struct conf_rollout *c, const struct rollout_plan *asked,
                     struct rollout_plan *out, struct state_error *err)
{
    memset(out, 0, sizeof(*out));
    if (asked != NULL && asked->nsteps > 0) {
        if (asked->nsteps > ROLLOUT_STEPS_MAX)
            return refuse(err, "bad_argument", "cannot start a rollout: too many steps");
        for (size_t i = 0; i < asked->nsteps; i++) {
            if (asked->steps_bp[i] == 0 || (i > 0 && asked->steps_bp[i] <= asked->steps_bp[i - 1]))
                return refuse(err, "bad_argument",
                              "cannot start a rollout: steps must be above 0 and increasing");
        }
        if (asked->steps_bp[asked->nsteps - 1] != CONF_WEIGHT_BP_MAX)
            return refuse(err, "bad_argument", "cannot start a rollout: the last step must be 100");
        memcpy(out->steps_bp, asked->steps_bp, asked->nsteps * sizeof(*out->steps_bp));
        out->nsteps = asked->nsteps;
    } else {
        out->nsteps = c->nsteps < ROLLOUT_STEPS_MAX ? c->nsteps : ROLLOUT_STEPS_MAX;
        memcpy(out->steps_bp, c->steps_bp, out->nsteps * sizeof(*out->steps_bp));
    }
    out->step_s = asked != NULL && asked->step_s > 0 ? asked->step_s : c->step_s;
    return 0;
}

int rollout_start(struct rollout *r, const struct rollout_plan *plan, const char *who,
                  const char *why, uint64_t expect_generation, struct state_error *err)
{
    const struct conf_rollout *c = &running(r)->rollout;
    struct rollout_plan p;
    struct state_change ch = {
        .op = STATE_OP_START, .who = who, .why = why, .expect_generation = expect_generation};

    settle(r); /* a rollback that landed since the last tick ends the old one first */
    if (!c->enabled)
        return refuse(err, "bad_argument",
                      "cannot start a rollout: the config has no rollout section");
    if (!running(r)->detector.enabled)
        return refuse(err, "bad_argument",
                      "cannot start a rollout: the config has no detector section (its verdict "
                      "gates every step)");
    if (plan_make(c, plan, &p, err) < 0)
        return -1;
    if (service_apply(r->svc, &ch, err) < 0)
        return -1;
    r->plan = p;
    r->active = true;
    r->stable = service_state(r->svc)->stable;
    r->started_ms = now_ms(r);
    r->nrecorded = 0;
    preflight_stop(r);
    r->preflight_started = false;
    event_active(r->tick, EV_TIMEOUT, 0); /* preflight now, not at the next tick */
    return 0;
}

static json_t *plan_json(const struct rollout_plan *p)
{
    json_t *steps = json_array();

    for (size_t i = 0; steps != NULL && i < p->nsteps; i++)
        json_array_append_new(steps, json_real(p->steps_bp[i] / 100.0));
    return steps;
}

json_t *rollout_status_json(struct rollout *r)
{
    const struct state *st = service_state(r->svc);
    json_t *gates, *out;
    char waiting[128] = "";

    settle(r);
    if (!r->active)
        return json_pack("{s:b, s:s}", "active", 0, "last", r->last);
    if (st->phase == STATE_PREFLIGHT || st->step == 0) /* probing, or paused while probing */
        return json_pack("{s:b, s:s, s:o, s:I, s:f, s:I, s:[], s:s}", "active", 1, "phase",
                         state_phase_name(st->phase), "steps", plan_json(&r->plan), "step",
                         (json_int_t)0, "weight", 0.0, "step_s", (json_int_t)r->plan.step_s,
                         "gates", "waiting_for", "the preflight probes");
    (void)gates_eval(r, now_ms(r));
    gates = json_array();
    for (int g = 0; gates != NULL && g < GATES; g++) {
        json_array_append_new(gates, json_pack("{s:s, s:b, s:s}", "name", gate_names[g], "ok",
                                               r->gates[g].ok, "why", r->gates[g].why));
        if (!r->gates[g].ok) {
            size_t used = strlen(waiting);
            snprintf(waiting + used, sizeof(waiting) - used, "%s%s", used ? ", " : "",
                     gate_names[g]);
        }
    }
    out = json_pack("{s:b, s:s, s:o, s:I, s:f, s:o, s:I, s:o, s:s}", "active", 1, "phase",
                    state_phase_name(st->phase), "steps", plan_json(&r->plan), "step",
                    (json_int_t)st->step, "weight", st->candidate_bp / 100.0, "step_started_at",
                    time_json(r->step_started_ms), "step_s", (json_int_t)r->plan.step_s, "gates",
                    gates, "waiting_for", waiting[0] ? waiting : "nothing: advancing");
    return out;
}

json_t *rollout_report_json(struct rollout *r)
{
    settle(r);
    return r->report != NULL ? json_incref(r->report) : NULL;
}
