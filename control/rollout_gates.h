/* rollout_gates.h - a rollout step's gates and what to do about them.
 *
 * Pure: the caller measures (clocks, the window gate, the traffic, the
 * detector) and this module judges, so every gate and every decision can be
 * tested with made-up numbers and a fake clock. The gates:
 *   - time: at least step_s seconds at the step, on the monotonic clock (a
 *     wall clock set back or forward neither stalls nor rushes a step);
 *   - window: inside a rollout window (judged by the caller);
 *   - traffic: the measured request rate under max_rps (0 = no gate);
 *   - detector: the verdict ok, with at least min_requests candidate
 *     requests at this step.
 * All holding: advance to the next step of the plan, or promote at the last.
 */
#ifndef SY_CONTROL_ROLLOUT_GATES_H
#define SY_CONTROL_ROLLOUT_GATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/state.h"
#include "health/detect.h"

#define ROLLOUT_GATE_WHY_MAX 192

enum rollout_gate_id {
    ROLLOUT_GATE_TIME,
    ROLLOUT_GATE_WINDOW,
    ROLLOUT_GATE_TRAFFIC,
    ROLLOUT_GATE_DETECTOR,
};
#define ROLLOUT_GATES 4

struct rollout_gate {
    bool ok;
    char why[ROLLOUT_GATE_WHY_MAX];
};

/* What the step under way measured; the strings are borrowed. */
struct rollout_gate_inputs {
    int64_t now_mono_ms;          /* monotonic clock, ms */
    int64_t step_started_mono_ms; /* the same clock when the step began */
    bool window_open;
    const char *window_why; /* "inside window ...", "outside window ..., opens in ..." */
    double rps;             /* the measured request rate, both pools */
    double max_rps;         /* 0 = no traffic gate */
    enum verdict verdict;
    const char *verdict_reason;
    uint64_t candidate_requests; /* at this step, as the detector counted them */
    uint32_t min_requests;
};

enum rollout_action {
    ROLLOUT_HOLD,    /* a gate is closed: stay at this step */
    ROLLOUT_ADVANCE, /* on to step next_step at weight_bp */
    ROLLOUT_PROMOTE, /* the last step held every gate */
};

struct rollout_decision {
    enum rollout_action action;
    uint32_t next_step; /* ADVANCE: 1-based, the step being entered */
    uint32_t weight_bp; /* ADVANCE: its weight */
};

const char *rollout_gate_name(enum rollout_gate_id g);

/* Fills gates[] from in and decides for step (1-based) of plan (borrowed):
 * HOLD unless every gate holds. */
struct rollout_decision rollout_gates_decide(const struct rollout_gate_inputs *in,
                                             const struct state_plan *plan, uint32_t step,
                                             struct rollout_gate gates[ROLLOUT_GATES]);

/* The seconds a rate over the last window_s seconds must be divided by: those
 * that had data since first_s (the first second counted), at least 1, at most
 * window_s. All in window_now_s() seconds. */
unsigned rollout_gates_rate_seconds(int64_t now_s, int64_t first_s, unsigned window_s);

/* "time ok; window waiting; ..." into buf (always terminated). */
void rollout_gates_text(const struct rollout_gate gates[ROLLOUT_GATES], char *buf, size_t len);

#endif
