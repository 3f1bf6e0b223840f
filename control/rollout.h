/* rollout.h - automated rollouts: preflight, then steps that advance only
 * when every gate holds, then promotion; a report at the end.
 *
 * The controller drives the state machine of control/state.c and nothing
 * else: start (phase preflight, weight 0), preflight_ok (step 1), advance
 * (the next step), promote at the last step. Gates, all re-checked every
 * tick: time at the step >= step_s; inside a rollout window (none = always);
 * the measured request rate of the last minute under rollout.max_rps (none =
 * no gate); the detector's verdict ok, with at least min_requests candidate
 * requests since this step began. Outside a window or over max_rps the
 * rollout holds its weight; the detector and the instant flip stay armed
 * all the time, and any rollback (theirs, an operator's) ends the rollout:
 * no automatic retry.
 *
 * The clock is injectable so that tests do not sleep through windows.
 */
#ifndef SY_CONTROL_ROLLOUT_H
#define SY_CONTROL_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "control/state.h"

#define ROLLOUT_STEPS_MAX 20
#define ROLLOUT_TICK_MS 100

struct guard;
struct proxy;
struct reloader;
struct rollout;
struct service;

/* One rollout's plan: the weights of its steps (increasing, the last
 * 10000) and the least time at each. */
struct rollout_plan {
    uint32_t steps_bp[ROLLOUT_STEPS_MAX];
    size_t nsteps;
    uint32_t step_s;
};

/* Wall clock in ms since the epoch (the default reads CLOCK_REALTIME). */
typedef int64_t (*rollout_clock)(void *arg);

/* Starts the controller's tick on base. Everything is borrowed and must
 * outlive it. Returns NULL when out of memory. */
struct rollout *rollout_new(struct event_base *base, struct service *svc, struct reloader *rl,
                            const struct proxy *proxy, struct guard *guard);
void rollout_free(struct rollout *r); /* NULL is fine */

void rollout_set_clock(struct rollout *r, rollout_clock clock, void *arg);

/* Starts a rollout by who for why, with plan (NULL: rollout.steps and
 * step_s of the running config; zeros in it: the config's too). Returns 0,
 * or -1 with *err filled (no rollout section, a bad plan, a refused
 * transition) and nothing changed. */
int rollout_start(struct rollout *r, const struct rollout_plan *plan, const char *who,
                  const char *why, uint64_t expect_generation, struct state_error *err);

/* {"active":bool,...}: the plan, the step, each gate with why, what it
 * waits for. A new object, or NULL when out of memory. */
json_t *rollout_status_json(struct rollout *r);

/* The last finished rollout's report (a new reference), or NULL when none
 * has finished since start. */
json_t *rollout_report_json(struct rollout *r);

#endif
