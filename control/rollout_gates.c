/* rollout_gates.c - the gates of a rollout step, judged without I/O. */
#include "control/rollout_gates.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const gate_names[ROLLOUT_GATES] = {
    [ROLLOUT_GATE_TIME] = "time",
    [ROLLOUT_GATE_WINDOW] = "window",
    [ROLLOUT_GATE_TRAFFIC] = "traffic",
    [ROLLOUT_GATE_DETECTOR] = "detector",
};

const char *rollout_gate_name(enum rollout_gate_id g)
{
    return (unsigned)g < ROLLOUT_GATES ? gate_names[g] : "unknown";
}

static void gate_set(struct rollout_gate *g, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void gate_set(struct rollout_gate *g, bool ok, const char *fmt, ...)
{
    va_list ap;

    g->ok = ok;
    va_start(ap, fmt);
    vsnprintf(g->why, sizeof(g->why), fmt, ap);
    va_end(ap);
}

static void gate_time(const struct rollout_gate_inputs *in, uint32_t step_s, struct rollout_gate *g)
{
    int64_t at_step_s = (in->now_mono_ms - in->step_started_mono_ms) / 1000;

    gate_set(g, at_step_s >= (int64_t)step_s, "at step for %lld s of %u", (long long)at_step_s,
             step_s);
}

static void gate_traffic(const struct rollout_gate_inputs *in, struct rollout_gate *g)
{
    bool under = in->rps < in->max_rps;

    if (in->max_rps <= 0) {
        gate_set(g, true, "no max_rps");
        return;
    }
    gate_set(g, under, "traffic %.0f rps %s max %.0f", in->rps, under ? "under" : "over",
             in->max_rps);
}

/* The verdict must rest on enough of this step's own traffic. */
static void gate_detector(const struct rollout_gate_inputs *in, struct rollout_gate *g)
{
    const char *reason = in->verdict_reason != NULL ? in->verdict_reason : "";

    if (in->candidate_requests < in->min_requests) {
        gate_set(g, false, "waiting for %u requests at this step, have %llu", in->min_requests,
                 (unsigned long long)in->candidate_requests);
        return;
    }
    gate_set(g, in->verdict == VERDICT_OK, "%s: %s", verdict_name(in->verdict), reason);
}

struct rollout_decision rollout_gates_decide(const struct rollout_gate_inputs *in,
                                             const struct state_plan *plan, uint32_t step,
                                             struct rollout_gate gates[ROLLOUT_GATES])
{
    struct rollout_decision d = {.action = ROLLOUT_HOLD};
    bool all = true;

    gate_time(in, plan->step_s, &gates[ROLLOUT_GATE_TIME]);
    gate_set(&gates[ROLLOUT_GATE_WINDOW], in->window_open, "%s",
             in->window_why != NULL ? in->window_why : "");
    gate_traffic(in, &gates[ROLLOUT_GATE_TRAFFIC]);
    gate_detector(in, &gates[ROLLOUT_GATE_DETECTOR]);
    for (int g = 0; g < ROLLOUT_GATES; g++)
        all &= gates[g].ok;
    /* step 0 is the preflight: never a step of the plan. */
    if (!all || step == 0 || plan->nsteps == 0)
        return d;
    if (step >= plan->nsteps) {
        d.action = ROLLOUT_PROMOTE;
        return d;
    }
    d.action = ROLLOUT_ADVANCE;
    d.next_step = step + 1;
    d.weight_bp = plan->steps_bp[step];
    return d;
}

unsigned rollout_gates_rate_seconds(int64_t now_s, int64_t first_s, unsigned window_s)
{
    int64_t covered = now_s - first_s + 1;

    if (covered < 1)
        return 1;
    if (covered > (int64_t)window_s)
        return window_s > 0 ? window_s : 1;
    return (unsigned)covered;
}

void rollout_gates_text(const struct rollout_gate gates[ROLLOUT_GATES], char *buf, size_t len)
{
    size_t used = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (int g = 0; g < ROLLOUT_GATES && used < len; g++) {
        int n = snprintf(buf + used, len - used, "%s%s %s", g ? "; " : "", gate_names[g],
                         gates[g].ok ? "ok" : "waiting");
        if (n < 0)
            break;
        used += (size_t)n;
    }
}
