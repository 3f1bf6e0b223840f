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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "control/pool_sum.h"
#include "control/state.h"

#define ROLLOUT_STEPS_MAX STATE_PLAN_STEPS_MAX
#define ROLLOUT_TICK_MS 100

struct guard;
struct proxy;
struct reloader;
struct rollout;
struct service;

/* The controller's clocks, each in ms and given arg: wall_ms since the
 * epoch (windows, and the times status and the report show), mono_ms on a
 * clock that never jumps (the time at a step). NULL = the real one
 * (CLOCK_REALTIME, CLOCK_MONOTONIC). */
struct rollout_clock {
    int64_t (*wall_ms)(void *arg);
    int64_t (*mono_ms)(void *arg);
    void *arg;
};

/* Starts the controller's tick on base. Everything is borrowed and must
 * outlive it. Returns NULL when out of memory. */
struct rollout *rollout_new(struct event_base *base, struct service *svc, struct reloader *rl,
                            const struct proxy *proxy, struct guard *guard);
void rollout_free(struct rollout *r); /* NULL is fine */

/* Replaces the clocks (clock is copied; NULL = the real ones). */
void rollout_set_clock(struct rollout *r, const struct rollout_clock *clock);

/* In a fleet, only the instance that leads advances a rollout (the others
 * follow the shared state, keep their step clocks and the report in step,
 * and take over when they lead). leads(arg) answers; NULL: always leads. */
typedef bool (*rollout_leads_fn)(void *arg);
void rollout_set_leader(struct rollout *r, rollout_leads_fn leads, void *arg);

/* Where the max_rps gate reads both pools' recent requests: fn(arg), or
 * the proxy's own windows when fn is NULL (the default). In a fleet: the
 * fleet's sums (redis_fleet_pool_sum), since max_rps caps the fleet's
 * traffic, not one instance's share of it. */
void rollout_set_source(struct rollout *r, pool_sum_fn fn, void *arg);

/* Starts a rollout by who for why, with plan (NULL: rollout.steps and
 * step_s of the running config; zeros in it: the config's too). Returns 0,
 * or -1 with *err filled (no rollout section, a bad plan, a refused
 * transition) and nothing changed. */
int rollout_start(struct rollout *r, const struct state_plan *plan, const char *who,
                  const char *why, uint64_t expect_generation, struct state_error *err);

/* {"active":bool,...}: the plan, the step, each gate with why, what it
 * waits for. A new object, or NULL when out of memory. */
json_t *rollout_status_json(struct rollout *r);

/* The last finished rollout's report (a new reference), or NULL when none
 * has finished since start. */
json_t *rollout_report_json(struct rollout *r);

#endif
