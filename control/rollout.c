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
#include "control/rollout_gates.h"
#include "control/rollout_report.h"
#include "control/rollout_window.h"
#include "control/service.h"
#include "health/window.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

#define WHO "rollout"
#define PROBE_TIMEOUT_MS 5000
#define RATE_WINDOW_S 60 /* max_rps is judged over the last minute */

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
    struct rollout_clock clock;
    rollout_leads_fn leads; /* NULL: this instance alone drives rollouts */
    void *leads_arg;
    pool_sum_fn rate_sum; /* NULL: the proxy's own windows */
    void *rate_sum_arg;
    int64_t born_s;         /* window_now_s() when made: the traffic windows' first second */
    struct window_sum *sum; /* the traffic gate's, kept: it holds a histogram */

    bool active;
    bool drove;                    /* this controller moved the rollout under way at least once */
    uint32_t step_seen;            /* the state's step when this controller last looked */
    struct state_plan legacy_plan; /* the config's, for a state saved without a plan */
    enum conf_colour stable;       /* at the start: a promotion swaps the state's */
    int64_t started_ms;
    int64_t step_started_ms;      /* wall clock: for status and the report */
    int64_t step_started_mono_ms; /* monotonic: for the time gate */
    int64_t step_started_s;       /* window_now_s(): the step's first second of traffic */
    struct step_record steps[ROLLOUT_STEPS_MAX];
    size_t nrecorded; /* steps begun */
    struct preflight *preflight;
    struct snapshot *preflight_snap; /* the config its probes and servers live in */
    bool preflight_started;
    struct rollout_gate gates[ROLLOUT_GATES];

    unsigned zones_for; /* the reload count whose windows' zones are loaded, + 1 */
    struct rollout_tz **zones;
    size_t nzones;
    char zones_error[256];

    json_t *report;                /* the last finished rollout's */
    char last[STATE_WHY_MAX + 96]; /* "promoted at TIME: REASON", for status */
};

static void preflight_stop(struct rollout *r);
static void resume_under_way(struct rollout *r, const struct state *st);

static int64_t clock_read_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t realtime_ms(void *arg)
{
    (void)arg;
    return clock_read_ms(CLOCK_REALTIME);
}

static int64_t monotonic_ms(void *arg)
{
    (void)arg;
    return clock_read_ms(CLOCK_MONOTONIC);
}

/* Wall clock: windows, and the times status and the report show. */
static int64_t now_ms(const struct rollout *r)
{
    return r->clock.wall_ms(r->clock.arg);
}

/* Monotonic clock: the time at a step, which must not jump with the wall
 * clock (an NTP step, a date set by hand). */
static int64_t mono_ms(const struct rollout *r)
{
    return r->clock.mono_ms(r->clock.arg);
}

static bool leads(const struct rollout *r)
{
    return r->leads == NULL || r->leads(r->leads_arg);
}

static const struct config *running(const struct rollout *r)
{
    return reloader_current(r->rl)->cfg;
}

/* The plan of the rollout under way: the state's (it survives a restart),
 * or the config's when the state was saved by a version without plans. */
static const struct state_plan *plan_of(const struct rollout *r)
{
    const struct state_plan *p = &service_state(r->svc)->plan;

    return p->nsteps > 0 ? p : &r->legacy_plan;
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

    if (service_apply(r->svc, &ch, &err) == 0) {
        r->drove = true;
        return 0;
    }
    log_error("rollout: %s refused: %s: %s", state_op_name(op), err.code, err.message);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Steps and the report */

static void begin_step(struct rollout *r, uint32_t weight_bp)
{
    struct step_record *s;

    r->step_started_ms = now_ms(r);
    r->step_started_mono_ms = mono_ms(r);
    r->step_started_s = window_now_s();
    r->step_seen = service_state(r->svc)->step;
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

/* Adds colour's traffic of the last seconds to *out, from the fleet when
 * it is the source, else from this instance's windows. */
static void pool_sum(struct rollout *r, enum conf_colour c, int64_t now, unsigned seconds,
                     struct window_sum *out)
{
    if (r->rate_sum != NULL)
        r->rate_sum(r->rate_sum_arg, c, now, seconds, out);
    else
        proxy_pool_sum(r->proxy, c, now, seconds, out);
}

/* The step's own numbers at its end, judged as the detector would: the
 * detector's last verdict may predate what ended the step (an instant
 * flip's failures, within the last tick). Over the step's seconds, at most
 * the windows' 64. */
static void judge_step(struct rollout *r, struct step_record *s)
{
    enum conf_colour cand = r->stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE;
    int64_t now = window_now_s();
    unsigned seconds = (unsigned)(now - r->step_started_s + 1);
    struct window_sum *sums = calloc(2, sizeof(*sums)); /* histograms: not for the stack */
    struct detect_result res;

    if (sums == NULL)
        return;
    pool_sum(r, cand, now, seconds < WINDOW_SLOTS ? seconds : WINDOW_SLOTS, &sums[0]);
    pool_sum(r, r->stable, now, seconds < WINDOW_SLOTS ? seconds : WINDOW_SLOTS, &sums[1]);
    detect_judge(&running(r)->detector, &sums[0], &sums[1], &res);
    free(sums);
    if (res.candidate.requests == 0)
        return;
    s->candidate = res.candidate;
    s->stable = res.stable;
    s->verdict = res.verdict;
}

static void end_step(struct rollout *r)
{
    struct step_record *s = current_step(r);

    if (s == NULL || s->ended_ms != 0)
        return;
    judge_step(r, s);
    s->ended_ms = now_ms(r);
    rollout_gates_text(r->gates, s->gates, sizeof(s->gates));
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

/* Writes the report to rollout.report_dir when set. A failure is only
 * logged: the rollout has ended either way. */
static void save_report(const struct rollout *r)
{
    const char *dir = running(r)->rollout.report_dir;
    char err[512];

    if (dir != NULL && r->report != NULL &&
        rollout_report_save(dir, r->report, err, sizeof(err)) < 0)
        log_error("rollout: report not saved: %s", err);
}

/* The rollout ended (promoted, rolled back, or stopped by hand): the report
 * is kept for `rollout report`, saved and logged. */
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
    /* One report per fleet: the leader's, or that of whoever drove the
     * rollout (a rollout may end while no instance can prove it leads). */
    if (leads(r) || r->drove)
        save_report(r);
    log_format_time(end, when, sizeof(when));
    snprintf(r->last, sizeof(r->last), "%s at %s: %s", state_phase_name(st->phase), when,
             st->reason);
    log_info("rollout: ended %s after %zu step%s: %s", state_phase_name(st->phase), r->nrecorded,
             r->nrecorded == 1 ? "" : "s", st->reason);
    preflight_stop(r);
    r->preflight_started = false;
    r->active = false;
}

/* ------------------------------------------------------------------------ */
/* Gates */

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

/* Whether a window is open at wall time now (ms), with why. */
static bool window_open(struct rollout *r, const struct config *cfg, int64_t now, char *why,
                        size_t why_len)
{
    struct rollout_window_info info;
    bool open;

    zones_fit(r, cfg);
    if (r->zones_error[0] != '\0') {
        snprintf(why, why_len, "time zones: %.160s", r->zones_error);
        return false;
    }
    open = rollout_window_open(cfg->rollout.windows, cfg->rollout.nwindows, r->zones, now / 1000,
                               &info);
    rollout_window_describe(cfg->rollout.windows, cfg->rollout.nwindows, &info, now / 1000, why,
                            why_len);
    return open;
}

/* The measured request rate of both pools over the last minute, or over
 * the seconds this process has been counting when it is younger: divided
 * by 60, a fresh process would always look quiet. 0 when there is no
 * max_rps to judge it against. */
static double measured_rps(struct rollout *r, const struct config *cfg)
{
    int64_t now = window_now_s();
    unsigned seconds = rollout_gates_rate_seconds(now, r->born_s, RATE_WINDOW_S);

    if (cfg->rollout.max_rps <= 0)
        return 0;
    window_sum_clear(r->sum);
    for (int c = 0; c < CONF_COLOURS; c++)
        pool_sum(r, (enum conf_colour)c, now, seconds, r->sum);
    return (double)r->sum->requests / seconds;
}

/* Fills r->gates for the step under way and says what to do. */
static struct rollout_decision gates_eval(struct rollout *r, const struct state *st)
{
    const struct config *cfg = running(r);
    const struct detect_result *d = guard_last(r->guard, NULL);
    char window_why[ROLLOUT_GATE_WHY_MAX];
    struct rollout_gate_inputs in = {
        .now_mono_ms = mono_ms(r),
        .step_started_mono_ms = r->step_started_mono_ms,
        .window_why = window_why,
        .max_rps = cfg->rollout.max_rps,
        .verdict = d->verdict,
        .verdict_reason = d->reason,
        .candidate_requests = d->candidate.requests,
        .min_requests = cfg->detector.min_requests,
    };

    in.window_open = window_open(r, cfg, now_ms(r), window_why, sizeof(window_why));
    in.rps = measured_rps(r, cfg);
    return rollout_gates_decide(&in, plan_of(r), st->step, r->gates);
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
    uint32_t first_bp = plan_of(r)->steps_bp[0];

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
    if (apply(r, STATE_OP_PREFLIGHT_OK, first_bp, 1, reason) == 0)
        begin_step(r, first_bp);
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
static void step_done(struct rollout *r, const struct state *st, struct rollout_decision d)
{
    const char *detector = r->gates[ROLLOUT_GATE_DETECTOR].why;
    char why[STATE_WHY_MAX];

    /* A worker's instant flip already took the candidate out (its rollback
     * is on its way to the state): never advance or promote over it. */
    if (route_split_get(service_split(r->svc)).candidate_bp != st->candidate_bp)
        return;
    end_step(r);
    if (d.action == ROLLOUT_PROMOTE) {
        snprintf(why, sizeof(why), "step %u at %.2f%% held every gate (%s)", st->step,
                 st->candidate_bp / 100.0, detector);
        (void)apply(r, STATE_OP_PROMOTE, 0, 0, why);
        return;
    }
    snprintf(why, sizeof(why), "step %u held every gate for %lld s (%s)", st->step,
             (long long)((mono_ms(r) - r->step_started_mono_ms) / 1000), detector);
    if (apply(r, STATE_OP_ADVANCE, d.weight_bp, d.next_step, why) == 0)
        begin_step(r, d.weight_bp);
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

/* The section of the running config a moving rollout lacks, or NULL. */
static const char *missing_section(const struct rollout *r)
{
    const struct config *cfg = running(r);

    if (!cfg->rollout.enabled)
        return "rollout";
    if (!cfg->detector.enabled)
        return "detector";
    return NULL;
}

/* A rollout the running config cannot drive (restarted or reloaded without
 * its rollout or detector section) is paused rather than left moving with
 * nobody to advance it or judge it. Returns true when it paused it. */
static bool pause_if_unconfigured(struct rollout *r)
{
    const char *missing = missing_section(r);
    char why[STATE_WHY_MAX];

    if (missing == NULL)
        return false;
    snprintf(why, sizeof(why),
             "the config has no %s section: the rollout cannot go on without it; paused", missing);
    log_warn("rollout: %s", why);
    (void)apply(r, STATE_OP_PAUSE, 0, 0, why);
    preflight_stop(r);
    r->preflight_started = false;
    return true;
}

static bool under_way(enum state_phase p)
{
    return p == STATE_PREFLIGHT || p == STATE_PROGRESSING || p == STATE_PAUSED;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rollout *r = arg;
    const struct state *st = service_state(r->svc);
    struct rollout_decision d;

    if (!r->active) {
        if (!under_way(st->phase))
            return;
        resume_under_way(r, st); /* another instance's, taken from the fleet */
    }
    if (under_way(st->phase) && st->step != r->step_seen && st->step >= 1)
        begin_step(r, st->candidate_bp); /* another instance advanced it */
    if (under_way(st->phase) && !leads(r)) {
        /* A follower: the leader drives; probes of ours stop. */
        preflight_stop(r);
        r->preflight_started = false;
        return;
    }
    if ((st->phase == STATE_PREFLIGHT || st->phase == STATE_PROGRESSING) &&
        pause_if_unconfigured(r))
        return;
    switch (st->phase) {
    case STATE_PREFLIGHT:
        if (!r->preflight_started)
            run_preflight(r, st);
        return;
    case STATE_PROGRESSING:
        note_numbers(r);
        d = gates_eval(r, st);
        if (d.action != ROLLOUT_HOLD)
            step_done(r, st, d);
        return;
    case STATE_PAUSED:
        if (st->step >= 1) {         /* paused at a step */
            (void)gates_eval(r, st); /* for status only */
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

/* After a restart, the last report saved in rollout.report_dir is the one
 * `rollout report` shows and `rollout status` names. */
static void load_report(struct rollout *r)
{
    const char *dir = running(r)->rollout.report_dir;
    const char *ended, *reason;
    char err[512];

    if (dir == NULL)
        return;
    r->report = rollout_report_load_last(dir, err, sizeof(err));
    if (r->report == NULL) {
        if (err[0] != '\0')
            log_warn("rollout: the last report is not shown: %s", err);
        return;
    }
    ended = json_string_value(json_object_get(r->report, "ended_at"));
    reason = json_string_value(json_object_get(r->report, "reason"));
    snprintf(r->last, sizeof(r->last), "%s at %s: %s",
             json_string_value(json_object_get(r->report, "outcome")), ended ? ended : "-",
             reason ? reason : "-");
}

/* A rollout under way when the process stopped goes on by the state's plan:
 * its step starts again. */
static void resume_under_way(struct rollout *r, const struct state *st)
{
    const struct conf_rollout *c = &running(r)->rollout;

    memset(&r->legacy_plan, 0, sizeof(r->legacy_plan));
    if (st->plan.nsteps == 0 && c->enabled) {
        /* Saved by a version that kept no plan: the config's is the best guess. */
        r->legacy_plan.nsteps =
            (uint32_t)(c->nsteps < ROLLOUT_STEPS_MAX ? c->nsteps : ROLLOUT_STEPS_MAX);
        memcpy(r->legacy_plan.steps_bp, c->steps_bp, r->legacy_plan.nsteps * sizeof(*c->steps_bp));
        r->legacy_plan.step_s = c->step_s;
    }
    /* What a previous rollout left here must not leak into this one. */
    preflight_stop(r);
    r->preflight_started = false;
    r->nrecorded = 0;
    r->step_seen = 0;
    r->drove = false;
    r->active = true;
    r->started_ms = now_ms(r);
    r->stable = st->stable;
    if (st->step >= 1)
        begin_step(r, st->candidate_bp);
    log_info("rollout: resuming the rollout under way (phase %s, step %u, %u steps of %u s)",
             state_phase_name(st->phase), st->step, plan_of(r)->nsteps, plan_of(r)->step_s);
}

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
    rollout_set_clock(r, NULL);
    r->born_s = window_now_s();
    snprintf(r->last, sizeof(r->last), "none since switchyard started");
    load_report(r);
    r->sum = calloc(1, sizeof(*r->sum));
    r->tick = event_new(base, -1, EV_PERSIST, tick_cb, r);
    if (r->sum == NULL || r->tick == NULL || event_add(r->tick, &tick) < 0) {
        rollout_free(r);
        return NULL;
    }
    if (under_way(st->phase))
        resume_under_way(r, st);
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
    free(r->sum);
    free(r);
}

void rollout_set_source(struct rollout *r, pool_sum_fn fn, void *arg)
{
    r->rate_sum = fn;
    r->rate_sum_arg = arg;
}

void rollout_set_leader(struct rollout *r, rollout_leads_fn fn, void *arg)
{
    r->leads = fn;
    r->leads_arg = arg;
}

void rollout_set_clock(struct rollout *r, const struct rollout_clock *clock)
{
    r->clock = clock != NULL ? *clock : (struct rollout_clock){0};
    if (r->clock.wall_ms == NULL)
        r->clock.wall_ms = realtime_ms;
    if (r->clock.mono_ms == NULL)
        r->clock.mono_ms = monotonic_ms;
}

static int refuse(struct state_error *err, const char *code, const char *msg)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
    return -1;
}

/* The plan of this rollout: the request's, with the config's for what it
 * leaves out. The state machine checks it. */
static void plan_make(const struct conf_rollout *c, const struct state_plan *asked,
                      struct state_plan *out)
{
    memset(out, 0, sizeof(*out));
    if (asked != NULL && asked->nsteps > 0) {
        *out = *asked;
    } else {
        out->nsteps = (uint32_t)(c->nsteps < ROLLOUT_STEPS_MAX ? c->nsteps : ROLLOUT_STEPS_MAX);
        memcpy(out->steps_bp, c->steps_bp, out->nsteps * sizeof(*out->steps_bp));
    }
    out->step_s = asked != NULL && asked->step_s > 0 ? asked->step_s : c->step_s;
}

int rollout_start(struct rollout *r, const struct state_plan *plan, const char *who,
                  const char *why, uint64_t expect_generation, struct state_error *err)
{
    const struct conf_rollout *c = &running(r)->rollout;
    struct state_plan p;
    struct state_change ch = {.op = STATE_OP_START,
                              .who = who,
                              .why = why,
                              .expect_generation = expect_generation,
                              .plan = &p};

    settle(r); /* a rollback that landed since the last tick ends the old one first */
    if (!c->enabled)
        return refuse(err, "bad_argument",
                      "cannot start a rollout: the config has no rollout section");
    if (!running(r)->detector.enabled)
        return refuse(err, "bad_argument",
                      "cannot start a rollout: the config has no detector section (its verdict "
                      "gates every step)");
    plan_make(c, plan, &p);
    if (service_apply(r->svc, &ch, err) < 0)
        return -1;
    memset(&r->legacy_plan, 0, sizeof(r->legacy_plan));
    r->active = true;
    r->stable = service_state(r->svc)->stable;
    r->started_ms = now_ms(r);
    r->nrecorded = 0;
    r->drove = false;
    preflight_stop(r);
    r->preflight_started = false;
    event_active(r->tick, EV_TIMEOUT, 0); /* preflight now, not at the next tick */
    return 0;
}

static json_t *plan_json(const struct state_plan *p)
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
                         state_phase_name(st->phase), "steps", plan_json(plan_of(r)), "step",
                         (json_int_t)0, "weight", 0.0, "step_s", (json_int_t)plan_of(r)->step_s,
                         "gates", "waiting_for", "the preflight probes");
    (void)gates_eval(r, st);
    gates = json_array();
    for (int g = 0; gates != NULL && g < ROLLOUT_GATES; g++) {
        const char *name = rollout_gate_name((enum rollout_gate_id)g);
        json_array_append_new(gates, json_pack("{s:s, s:b, s:s}", "name", name, "ok",
                                               r->gates[g].ok, "why", r->gates[g].why));
        if (!r->gates[g].ok) {
            size_t used = strlen(waiting);
            snprintf(waiting + used, sizeof(waiting) - used, "%s%s", used ? ", " : "", name);
        }
    }
    out = json_pack("{s:b, s:s, s:o, s:I, s:f, s:o, s:I, s:o, s:s}", "active", 1, "phase",
                    state_phase_name(st->phase), "steps", plan_json(plan_of(r)), "step",
                    (json_int_t)st->step, "weight", st->candidate_bp / 100.0, "step_started_at",
                    time_json(r->step_started_ms), "step_s", (json_int_t)plan_of(r)->step_s,
                    "gates", gates, "waiting_for",
                    !leads(r)    ? "the fleet's leader (another instance) to advance it"
                    : waiting[0] ? waiting
                                 : "nothing: advancing");
    return out;
}

json_t *rollout_report_json(struct rollout *r)
{
    settle(r);
    return r->report != NULL ? json_incref(r->report) : NULL;
}
