/* ctl_render.h - switchyardctl's human output for control protocol replies.
 *
 * Every function takes a parsed reply (borrowed) and checks the fields it
 * prints: a reply that lacks them is reported as -1 so the caller can exit 2
 * ("bad reply") instead of printing half a table.
 */
#ifndef SY_CONTROL_CTL_RENDER_H
#define SY_CONTROL_CTL_RENDER_H

#include <stdio.h>

#include <jansson.h>

/* Prints a status reply ({"ok":true,"state":{...},"pools":{...}}) as an
 * aligned table: the state, one line per field, the detector's verdict,
 * with Redis the link ("redis  up, URL ns NS, instance ID (leader)" or
 * "redis  DOWN for N s: WHY; ...") and the fleet's instances, then one line
 * per server.
 * Returns 0, or -1 when state fields are missing or ill-typed. */
int ctl_render_status(FILE *out, const json_t *reply) __attribute__((warn_unused_result));

/* Prints the one-line result of a state-changing command cmd (protocol name,
 * e.g. "weight"), e.g. "weight: green 25.00 % (generation 42)". Returns 0 or
 * -1 as ctl_render_status(). */
int ctl_render_change(FILE *out, const char *cmd, const json_t *reply)
    __attribute__((warn_unused_result));

/* Prints one event (as events_to_json() gives it) on one line: time,
 * generation, the instance (events from the fleet's stream have one), who,
 * op, from -> to, why. Returns 0, or -1 when a field is
 * missing. */
int ctl_render_event(FILE *out, const json_t *event) __attribute__((warn_unused_result));

/* Prints every event of an events reply ({"ok":true,"events":[...]}), one
 * line each. Returns 0, or -1 when "events" is not an array of events. */
int ctl_render_events(FILE *out, const json_t *reply) __attribute__((warn_unused_result));

/* Prints the result of a server.* command ({"ok":true,"server":{...}}), e.g.
 * "server.drain: blue/blue-1 draining, 2 in flight". Returns 0 or -1. */
int ctl_render_server(FILE *out, const char *cmd, const json_t *reply)
    __attribute__((warn_unused_result));

/* Prints the result of a reload ({"ok":true,"reloads":N,"notes":[...]}):
 * "reload: applied (reload N)", then each note. Returns 0 or -1. */
int ctl_render_reload(FILE *out, const json_t *reply) __attribute__((warn_unused_result));

/* Prints "switchyardctl: refused: CODE: MESSAGE" for an ok:false reply, then,
 * when there are several, each string of the error's "details" (a refused
 * reload lists every problem there) on its own indented line. Returns 0, or -1 when the error
 * object is missing or ill-typed. */
int ctl_render_refusal(FILE *out, const json_t *reply) __attribute__((warn_unused_result));

/* Prints a rollout.status reply ({"ok":true,"rollout":{...}}): the phase,
 * the step, the plan with the current step in brackets, each gate (ok or
 * waiting, and why) and what the rollout waits for; when none is running,
 * the last one's outcome. Returns 0, or -1 when "active" is missing or an
 * active rollout lacks its phase, steps, step or well-formed gates. */
int ctl_render_rollout_status(FILE *out, const json_t *reply) __attribute__((warn_unused_result));

/* Prints a rollout.report reply ({"ok":true,"report":{...}}): a header
 * (outcome, reason, colours, times), then an aligned table, one row per
 * step: weight, times, both pools' requests, error rate and p50/p99,
 * verdict and gates. Returns 0, or -1 when the outcome or the steps are
 * missing, or a step lacks its number or weight. */
int ctl_render_rollout_report(FILE *out, const json_t *reply) __attribute__((warn_unused_result));

#endif
