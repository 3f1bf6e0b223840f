/* state.h - one service's traffic state and the only function that changes it.
 *
 * The state says which colour is stable, how much traffic the candidate gets
 * (basis points) and where a rollout stands (phase and step). Operators,
 * rollout policies and Redis updates all go through state_apply(), which
 * refuses what the current phase does not allow, bumps the generation and then
 * calls the registered hooks in a fixed order: persist, event, publish. A
 * change that cannot be persisted is refused, except a rollback: taking
 * traffic off a bad candidate must never wait for a disk, so a rollback
 * publishes first, then persists (a failure is recorded, not refused), then
 * records its event.
 */
#ifndef SY_CONTROL_STATE_H
#define SY_CONTROL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/config.h"

#define STATE_WHO_MAX 64            /* bytes of updated_by, NUL included */
#define STATE_WHY_MAX 256           /* bytes of reason, NUL included */
#define STATE_NOTE_MAX 320          /* bytes of an event's note, NUL included */
#define STATE_PLAN_STEPS_MAX 20     /* steps of a rollout's plan */
#define STATE_PLAN_STEP_S_MAX 86400 /* seconds at a step, as rollout.step_s allows */

enum state_phase {
    STATE_IDLE = 0,    /* no rollout: the weight is whatever an operator set */
    STATE_PREFLIGHT,   /* rollout started, probing the candidate at weight 0 */
    STATE_PROGRESSING, /* rollout moving through its steps */
    STATE_PAUSED,      /* rollout held by an operator */
    STATE_PROMOTED,    /* the candidate became stable */
    STATE_ROLLED_BACK, /* all traffic back on stable */
};
#define STATE_PHASES 6

/* A rollout's plan: the weights of its steps (each above 0, increasing, the
 * last CONF_WEIGHT_BP_MAX) and the least seconds at each. nsteps 0 = none. */
struct state_plan {
    uint32_t nsteps;
    uint32_t steps_bp[STATE_PLAN_STEPS_MAX];
    uint32_t step_s; /* 1..STATE_PLAN_STEP_S_MAX */
};

/* A plain value: copy it freely. */
struct state {
    enum conf_colour stable;
    uint32_t candidate_bp; /* 0..CONF_WEIGHT_BP_MAX */
    enum state_phase phase;
    uint32_t step;       /* 0 outside a rollout; 1.. while progressing */
    uint64_t generation; /* +1 at every applied change */
    char updated_by[STATE_WHO_MAX];
    char reason[STATE_WHY_MAX];
    int64_t updated_ms; /* wall clock, ms since the epoch */
    /* The last rollout's plan: set by START, kept unchanged until the next
     * START (status and the report still show it after the rollout). */
    struct state_plan plan;
};

enum state_op {
    STATE_OP_WEIGHT = 0,   /* operator sets the candidate weight */
    STATE_OP_START,        /* a rollout starts: preflight at weight 0 */
    STATE_OP_PREFLIGHT_OK, /* preflight passed: step 1 at weight_bp */
    STATE_OP_ADVANCE,      /* next step at a higher weight */
    STATE_OP_PAUSE,
    STATE_OP_RESUME,
    STATE_OP_PROMOTE, /* roles swap: the candidate becomes stable */
    STATE_OP_ROLLBACK,
    STATE_OP_SERVER, /* an event only: a server's health or admin state changed */
    STATE_OP_SYNC,   /* another instance's state taken from Redis: see state_adopt() */
};
#define STATE_OPS 10

struct state_change {
    enum state_op op;
    uint32_t weight_bp;            /* WEIGHT, PREFLIGHT_OK, ADVANCE */
    uint32_t step;                 /* ADVANCE: the step being entered */
    const char *who;               /* borrowed; NULL = "unknown" */
    const char *why;               /* borrowed; NULL = "" */
    uint64_t expect_generation;    /* 0 = any */
    const struct state_plan *plan; /* START: required, checked, copied; borrowed */
};

/* Why state_apply() refused. code is a static string: "conflict",
 * "illegal_transition", "bad_argument" or "persist_failed". */
struct state_error {
    const char *code;
    char message[256];
};

/* One applied change, as the event log keeps it (a value, copied freely). */
struct state_event {
    uint64_t generation; /* the new state's */
    int64_t time_ms;
    enum state_op op;
    char who[STATE_WHO_MAX];
    char why[STATE_WHY_MAX];
    struct state from;
    struct state to;
    bool persisted;
    char note[STATE_NOTE_MAX]; /* "not persisted: <why>" when !persisted */
};

/* Every hook may be NULL. arg is passed to each of them. */
struct state_hooks {
    /* Stores s durably; returns 0, or -1 with why filled. */
    int (*persist)(const struct state *s, void *arg, char *why, size_t why_len);
    /* e is borrowed for the duration of the call. */
    void (*event)(const struct state_event *e, void *arg);
    /* s is borrowed for the duration of the call. */
    void (*publish)(const struct state *s, void *arg);
    void *arg;
    int64_t (*now_ms)(void *arg); /* NULL = the real wall clock */
};

struct state_machine;

const char *state_phase_name(enum state_phase p);
/* Returns 0 and sets *out for a name state_phase_name() gives, else -1. */
int state_phase_parse(const char *name, enum state_phase *out) __attribute__((warn_unused_result));
const char *state_op_name(enum state_op op);

/* The state a service starts with when nothing was persisted: routing.stable
 * and routing.candidate_percent, phase idle, generation 0, by "config". */
void state_from_config(const struct config *cfg, struct state *out);

/* Returns a new machine holding a copy of *initial and of *hooks (hooks may
 * be NULL), or NULL when out of memory. */
struct state_machine *state_machine_new(const struct state *initial,
                                        const struct state_hooks *hooks);
void state_machine_free(struct state_machine *sm);

/* Borrowed: valid until the next state_apply() or state_machine_free(). */
const struct state *state_current(const struct state_machine *sm);

/* Applies one change: 0 when applied (the hooks ran), -1 when refused (no hook
 * ran, nothing changed, *err says why; err may be NULL). c and its strings are
 * borrowed. Hooks must not call state_apply() themselves: a nested change
 * would publish before the outer one. */
int state_apply(struct state_machine *sm, const struct state_change *c, struct state_error *err)
    __attribute__((warn_unused_result));

/* Takes s, a state another instance of the fleet applied, as the current
 * state, generation included (it may be below ours when that instance's
 * change won a conflict). No transition is checked: the fleet already routes
 * by s. The hooks run as for a rollback: publish first, then persist (a
 * failure is recorded, never refused), then the event, with op
 * STATE_OP_SYNC, who and why (borrowed). */
void state_adopt(struct state_machine *sm, const struct state *s, const char *who, const char *why);

/* Returns a new JSON object with every field of s, or NULL when out of memory
 * or when a text field is not UTF-8 (state_apply() never stores one). */
json_t *state_to_json(const struct state *s);

/* Reads what state_to_json() wrote, strictly: every key present, no other key,
 * types and ranges checked. "plan" alone may be missing (files written before
 * it existed): no plan then; when present it must be null or a valid plan.
 * Returns 0, or -1 with err naming the key. */
int state_from_json(const json_t *j, struct state *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The same for a copy another instance wrote (the fleet's, in Redis): keys
 * this version does not know are skipped, so that a newer version's state
 * stays readable during a rolling upgrade. */
int state_from_shared_json(const json_t *j, struct state *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* True when p is a plan a rollout can walk: 1..STATE_PLAN_STEPS_MAX steps,
 * each above 0 and above the one before, the last CONF_WEIGHT_BP_MAX, and
 * step_s 1..STATE_PLAN_STEP_S_MAX. Else false with why filled. */
bool state_plan_valid(const struct state_plan *p, char *why, size_t why_len);

/* Copies src into dst (size bytes, NUL included) without splitting a UTF-8
 * sequence; invalid bytes become '?', so the result is always valid JSON text. */
void state_text_copy(char *dst, size_t size, const char *src);

#endif
