/* state.c - the state machine of one service: rules, then persist, event, publish. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/log.h"
#include "control/state.h"

#define PH(p) (1u << (p))
#define ALL_PHASES (PH(STATE_PHASES) - 1u)

struct state_machine {
    struct state cur;
    struct state_hooks hooks;
};

static const char *const phase_names[STATE_PHASES] = {
    [STATE_IDLE] = "idle",     [STATE_PREFLIGHT] = "preflight", [STATE_PROGRESSING] = "progressing",
    [STATE_PAUSED] = "paused", [STATE_PROMOTED] = "promoted",   [STATE_ROLLED_BACK] = "rolled_back",
};

static const char *const op_names[STATE_OPS] = {
    [STATE_OP_WEIGHT] = "weight",
    [STATE_OP_START] = "rollout.start",
    [STATE_OP_PREFLIGHT_OK] = "preflight_ok",
    [STATE_OP_ADVANCE] = "advance",
    [STATE_OP_PAUSE] = "pause",
    [STATE_OP_RESUME] = "resume",
    [STATE_OP_PROMOTE] = "promote",
    [STATE_OP_ROLLBACK] = "rollback",
    [STATE_OP_SERVER] = "server",
    [STATE_OP_SYNC] = "sync",
};

/* What an error message calls each op: "cannot <verb>: ...". */
static const char *const op_verbs[STATE_OPS] = {
    [STATE_OP_WEIGHT] = "set the weight",
    [STATE_OP_START] = "start a rollout",
    [STATE_OP_PREFLIGHT_OK] = "end preflight",
    [STATE_OP_ADVANCE] = "advance",
    [STATE_OP_PAUSE] = "pause",
    [STATE_OP_RESUME] = "resume",
    [STATE_OP_PROMOTE] = "promote",
    [STATE_OP_ROLLBACK] = "roll back",
    [STATE_OP_SERVER] = "change a server",
    [STATE_OP_SYNC] = "take the fleet's state",
};

/* The phases each op may start from. Rollback is allowed from all of them:
 * it is the one action that must always work. */
static const unsigned op_allowed[STATE_OPS] = {
    [STATE_OP_WEIGHT] =
        PH(STATE_IDLE) | PH(STATE_PAUSED) | PH(STATE_PROMOTED) | PH(STATE_ROLLED_BACK),
    [STATE_OP_START] = PH(STATE_IDLE) | PH(STATE_PROMOTED) | PH(STATE_ROLLED_BACK),
    [STATE_OP_PREFLIGHT_OK] = PH(STATE_PREFLIGHT),
    [STATE_OP_ADVANCE] = PH(STATE_PROGRESSING),
    [STATE_OP_PAUSE] = PH(STATE_PREFLIGHT) | PH(STATE_PROGRESSING),
    [STATE_OP_RESUME] = PH(STATE_PAUSED),
    [STATE_OP_PROMOTE] = PH(STATE_PROGRESSING) | PH(STATE_PAUSED) | PH(STATE_IDLE),
    [STATE_OP_ROLLBACK] = ALL_PHASES,
    [STATE_OP_SERVER] = 0, /* never a transition: see service_record() */
    [STATE_OP_SYNC] = 0,   /* never a transition: see state_adopt() */
};

const char *state_phase_name(enum state_phase p)
{
    if ((unsigned)p >= STATE_PHASES)
        return "unknown";
    return phase_names[p];
}

int state_phase_parse(const char *name, enum state_phase *out)
{
    for (unsigned i = 0; name && i < STATE_PHASES; i++) {
        if (strcmp(name, phase_names[i]) == 0) {
            *out = (enum state_phase)i;
            return 0;
        }
    }
    return -1;
}

const char *state_op_name(enum state_op op)
{
    if ((unsigned)op >= STATE_OPS)
        return "unknown";
    return op_names[op];
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one.
 * Stops at a NUL, which is never a continuation byte. */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned char c = s[0];
    uint32_t cp;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (n == 3 && (cp < 0x800u || (cp >= 0xd800u && cp <= 0xdfffu)))
        return 0; /* overlong or a UTF-16 surrogate */
    if (n == 4 && (cp < 0x10000u || cp > 0x10ffffu))
        return 0;
    return n;
}

void state_text_copy(char *dst, size_t size, const char *src)
{
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    size_t o = 0;

    if (size == 0)
        return;
    while (*s) {
        size_t n = utf8_seq_len(s);
        if (o + (n ? n : 1) >= size)
            break;
        if (n == 0) {
            dst[o++] = '?';
            s++;
            continue;
        }
        memcpy(dst + o, s, n);
        o += n;
        s += n;
    }
    dst[o] = '\0';
}

bool state_plan_valid(const struct state_plan *p, char *why, size_t why_len)
{
    if (p->nsteps == 0 || p->nsteps > STATE_PLAN_STEPS_MAX) {
        snprintf(why, why_len, "a plan has 1..%d steps, not %" PRIu32, STATE_PLAN_STEPS_MAX,
                 p->nsteps);
        return false;
    }
    for (uint32_t i = 0; i < p->nsteps; i++) {
        if (p->steps_bp[i] == 0 || (i > 0 && p->steps_bp[i] <= p->steps_bp[i - 1])) {
            snprintf(why, why_len,
                     "step %" PRIu32 " (%" PRIu32 " bp): steps must be above 0 and "
                     "increasing",
                     i + 1, p->steps_bp[i]);
            return false;
        }
    }
    if (p->steps_bp[p->nsteps - 1] != CONF_WEIGHT_BP_MAX) {
        snprintf(why, why_len, "the last step must be %u bp (100 %%), not %" PRIu32,
                 CONF_WEIGHT_BP_MAX, p->steps_bp[p->nsteps - 1]);
        return false;
    }
    if (p->step_s == 0 || p->step_s > STATE_PLAN_STEP_S_MAX) {
        snprintf(why, why_len, "step_s must be 1..%d s, not %" PRIu32, STATE_PLAN_STEP_S_MAX,
                 p->step_s);
        return false;
    }
    return true;
}

static int64_t wall_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void state_from_config(const struct config *cfg, struct state *out)
{
    memset(out, 0, sizeof(*out));
    out->stable = cfg->routing.stable;
    out->candidate_bp = cfg->routing.candidate_bp;
    out->phase = STATE_IDLE;
    state_text_copy(out->updated_by, sizeof(out->updated_by), "config");
    state_text_copy(out->reason, sizeof(out->reason), "routing section of the configuration");
    out->updated_ms = wall_clock_ms();
}

struct state_machine *state_machine_new(const struct state *initial,
                                        const struct state_hooks *hooks)
{
    struct state_machine *sm = calloc(1, sizeof(*sm));

    if (!sm)
        return NULL;
    sm->cur = *initial;
    if (hooks)
        sm->hooks = *hooks;
    return sm;
}

void state_machine_free(struct state_machine *sm)
{
    free(sm);
}

const struct state *state_current(const struct state_machine *sm)
{
    return &sm->cur;
}

static int refuse(struct state_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct state_error *err, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* Names the phases in mask for a message: "preflight or progressing". */
static void phase_list(unsigned mask, char *buf, size_t len)
{
    size_t o = 0;
    unsigned left = (unsigned)__builtin_popcount(mask);

    buf[0] = '\0';
    for (unsigned p = 0; p < STATE_PHASES && o < len; p++) {
        if (!(mask & PH(p)))
            continue;
        left--;
        int n = snprintf(buf + o, len - o, "%s%s", phase_names[p],
                         left == 0 ? "" : (left == 1 ? " or " : ", "));
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

static int check_phase(const struct state *cur, const struct state_change *c,
                       struct state_error *err)
{
    const char *verb = op_verbs[c->op];
    char allowed[96];

    if (op_allowed[c->op] & PH(cur->phase))
        return 0;
    if (c->op == STATE_OP_WEIGHT)
        return refuse(err, "illegal_transition",
                      "cannot %s: a rollout is running (phase %s): pause it first", verb,
                      state_phase_name(cur->phase));
    phase_list(op_allowed[c->op], allowed, sizeof(allowed));
    return refuse(err, "illegal_transition", "cannot %s: the phase is %s, not %s", verb,
                  state_phase_name(cur->phase), allowed);
}

/* The op's own arguments, once the phase allows it. */
static int check_arguments(const struct state *cur, const struct state_change *c,
                           struct state_error *err)
{
    const char *verb = op_verbs[c->op];
    char why[160];
    bool weighted =
        c->op == STATE_OP_WEIGHT || c->op == STATE_OP_PREFLIGHT_OK || c->op == STATE_OP_ADVANCE;

    if (weighted && c->weight_bp > CONF_WEIGHT_BP_MAX)
        return refuse(err, "bad_argument", "cannot %s: a weight of %" PRIu32 " bp is outside 0..%u",
                      verb, c->weight_bp, CONF_WEIGHT_BP_MAX);
    if (c->op == STATE_OP_ADVANCE && c->step != cur->step + 1)
        return refuse(err, "bad_argument",
                      "cannot advance: the next step is %" PRIu32 ", not %" PRIu32, cur->step + 1,
                      c->step);
    if (c->op == STATE_OP_ADVANCE && c->weight_bp <= cur->candidate_bp)
        return refuse(err, "bad_argument",
                      "cannot advance: the new weight (%" PRIu32 " bp) must be higher than "
                      "the current one (%" PRIu32 " bp)",
                      c->weight_bp, cur->candidate_bp);
    if (c->op == STATE_OP_START && c->plan == NULL)
        return refuse(err, "bad_argument", "cannot start a rollout: no plan");
    if (c->op == STATE_OP_START && !state_plan_valid(c->plan, why, sizeof(why)))
        return refuse(err, "bad_argument", "cannot start a rollout: %s", why);
    if (c->op == STATE_OP_PROMOTE && cur->candidate_bp == 0)
        return refuse(err, "illegal_transition",
                      "cannot promote: the candidate gets no traffic (weight 0, phase %s)",
                      state_phase_name(cur->phase));
    return 0;
}

static int validate(const struct state *cur, const struct state_change *c, struct state_error *err)
{
    if ((unsigned)c->op >= STATE_OPS)
        return refuse(err, "bad_argument", "unknown operation %d", (int)c->op);
    /* A rollback is never refused as stale: taking traffic off a candidate
     * is right whatever changed in between (DESIGN: by anyone, at any time). */
    if (c->expect_generation != 0 && c->expect_generation != cur->generation &&
        c->op != STATE_OP_ROLLBACK)
        return refuse(err, "conflict",
                      "cannot %s: expected generation %" PRIu64 " but the state is at %" PRIu64,
                      op_verbs[c->op], c->expect_generation, cur->generation);
    if (check_phase(cur, c, err) < 0)
        return -1;
    return check_arguments(cur, c, err);
}

/* The new phase, weight, stable colour and step; the rules are checked. */
static void transition(const struct state *cur, const struct state_change *c, struct state *next)
{
    *next = *cur;
    switch (c->op) {
    case STATE_OP_WEIGHT:
        next->phase = STATE_IDLE;
        next->candidate_bp = c->weight_bp;
        next->step = 0;
        break;
    case STATE_OP_START:
        next->phase = STATE_PREFLIGHT;
        next->candidate_bp = 0;
        next->step = 0;
        next->plan = *c->plan;
        break;
    case STATE_OP_PREFLIGHT_OK:
        next->phase = STATE_PROGRESSING;
        next->candidate_bp = c->weight_bp;
        next->step = 1;
        break;
    case STATE_OP_ADVANCE:
        next->candidate_bp = c->weight_bp;
        next->step = c->step;
        break;
    case STATE_OP_PAUSE:
        next->phase = STATE_PAUSED;
        break;
    case STATE_OP_RESUME:
        /* Paused during preflight: the probes have not passed yet. */
        next->phase = cur->step >= 1 ? STATE_PROGRESSING : STATE_PREFLIGHT;
        break;
    case STATE_OP_PROMOTE:
        next->phase = STATE_PROMOTED;
        next->stable = cur->stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE;
        next->candidate_bp = 0;
        next->step = 0;
        break;
    case STATE_OP_ROLLBACK:
        next->phase = STATE_ROLLED_BACK;
        next->candidate_bp = 0;
        next->step = 0;
        break;
    case STATE_OP_SERVER: /* allowed from no phase: never gets here */
    case STATE_OP_SYNC:
        break;
    }
}

static void event_init(struct state_event *e, const struct state *from, const struct state *to,
                       enum state_op op)
{
    memset(e, 0, sizeof(*e));
    e->generation = to->generation;
    e->time_ms = to->updated_ms;
    e->op = op;
    memcpy(e->who, to->updated_by, sizeof(e->who));
    memcpy(e->why, to->reason, sizeof(e->why));
    e->from = *from;
    e->to = *to;
    e->persisted = true;
}

static void log_change(const struct state_event *e)
{
    log_info("state: generation %" PRIu64 ": %s by %s (%s): %s %s %" PRIu32 " bp step %" PRIu32
             " -> %s %s %" PRIu32 " bp step %" PRIu32 "%s%s",
             e->generation, state_op_name(e->op), e->who, e->why[0] ? e->why : "no reason given",
             conf_colour_name(e->from.stable), state_phase_name(e->from.phase),
             e->from.candidate_bp, e->from.step, conf_colour_name(e->to.stable),
             state_phase_name(e->to.phase), e->to.candidate_bp, e->to.step,
             e->persisted ? "" : "; ", e->note);
}

/* Runs persist; returns -1 when the change must be refused. A rollback goes
 * ahead anyway, marked as not persisted, because refusing it would leave
 * traffic on a candidate someone has judged bad. */
static int persist(struct state_machine *sm, const struct state *next, struct state_event *e,
                   struct state_error *err)
{
    char why[256] = "";

    if (!sm->hooks.persist || sm->hooks.persist(next, sm->hooks.arg, why, sizeof(why)) == 0)
        return 0;
    if (!why[0])
        state_text_copy(why, sizeof(why), "unknown error");
    if (e->op != STATE_OP_ROLLBACK && e->op != STATE_OP_SYNC)
        return refuse(err, "persist_failed", "cannot %s: the state could not be saved: %s",
                      op_verbs[e->op], why);
    e->persisted = false;
    snprintf(e->note, sizeof(e->note), "not persisted: %s", why);
    log_error("state: %s to generation %" PRIu64 " applied but not persisted: %s", op_names[e->op],
              next->generation, why);
    return 0;
}

int state_apply(struct state_machine *sm, const struct state_change *c, struct state_error *err)
{
    struct state next;
    struct state_event e;

    if (validate(&sm->cur, c, err) < 0)
        return -1;
    transition(&sm->cur, c, &next);
    next.generation = sm->cur.generation + 1;
    state_text_copy(next.updated_by, sizeof(next.updated_by),
                    c->who && c->who[0] ? c->who : "unknown");
    state_text_copy(next.reason, sizeof(next.reason), c->why);
    next.updated_ms = sm->hooks.now_ms ? sm->hooks.now_ms(sm->hooks.arg) : wall_clock_ms();
    event_init(&e, &sm->cur, &next, c->op);
    if (c->op == STATE_OP_ROLLBACK) {
        /* Traffic leaves the candidate first; the disk comes after, so a
         * slow or failing fsync can delay the record, never the rollback. */
        sm->cur = next;
        if (sm->hooks.publish)
            sm->hooks.publish(&sm->cur, sm->hooks.arg);
        (void)persist(sm, &next, &e, err); /* a rollback is never refused */
    } else {
        if (persist(sm, &next, &e, err) < 0)
            return -1;
        sm->cur = next;
    }
    log_change(&e);
    if (sm->hooks.event)
        sm->hooks.event(&e, sm->hooks.arg);
    if (c->op != STATE_OP_ROLLBACK && sm->hooks.publish)
        sm->hooks.publish(&sm->cur, sm->hooks.arg);
    return 0;
}

void state_adopt(struct state_machine *sm, const struct state *s, const char *who, const char *why)
{
    struct state_event e;

    event_init(&e, &sm->cur, s, STATE_OP_SYNC);
    state_text_copy(e.who, sizeof(e.who), who && who[0] ? who : "unknown");
    state_text_copy(e.why, sizeof(e.why), why);
    e.time_ms = sm->hooks.now_ms ? sm->hooks.now_ms(sm->hooks.arg) : wall_clock_ms();
    sm->cur = *s;
    if (sm->hooks.publish)
        sm->hooks.publish(&sm->cur, sm->hooks.arg);
    (void)persist(sm, s, &e, NULL);
    log_change(&e);
    if (sm->hooks.event)
        sm->hooks.event(&e, sm->hooks.arg);
}

/* {"steps_bp":[...],"step_s":N}, or null when there is no plan. */
static json_t *plan_to_json(const struct state_plan *p)
{
    json_t *steps;

    if (p->nsteps == 0)
        return json_null();
    steps = json_array();
    for (uint32_t i = 0; steps != NULL && i < p->nsteps && i < STATE_PLAN_STEPS_MAX; i++) {
        if (json_array_append_new(steps, json_integer(p->steps_bp[i])) < 0) {
            json_decref(steps);
            return NULL;
        }
    }
    return json_pack("{s:o, s:I}", "steps_bp", steps, "step_s", (json_int_t)p->step_s);
}

json_t *state_to_json(const struct state *s)
{
    return json_pack("{s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:I, s:o}", "stable",
                     conf_colour_name(s->stable), "candidate_bp", (json_int_t)s->candidate_bp,
                     "phase", state_phase_name(s->phase), "step", (json_int_t)s->step, "generation",
                     (json_int_t)s->generation, "updated_by", s->updated_by, "reason", s->reason,
                     "updated_ms", (json_int_t)s->updated_ms, "plan", plan_to_json(&s->plan));
}

enum json_field_kind { FIELD_COLOUR, FIELD_PHASE, FIELD_UINT, FIELD_TEXT };

struct json_field {
    const char *key;
    enum json_field_kind kind;
    json_int_t max; /* FIELD_UINT: largest value; FIELD_TEXT: buffer size */
};

static const struct json_field json_fields[] = {
    {"stable", FIELD_COLOUR, 0},
    {"candidate_bp", FIELD_UINT, CONF_WEIGHT_BP_MAX},
    {"phase", FIELD_PHASE, 0},
    {"step", FIELD_UINT, UINT32_MAX},
    {"generation", FIELD_UINT, INT64_MAX},
    {"updated_by", FIELD_TEXT, STATE_WHO_MAX},
    {"reason", FIELD_TEXT, STATE_WHY_MAX},
    {"updated_ms", FIELD_UINT, INT64_MAX},
};
#define JSON_FIELDS (sizeof(json_fields) / sizeof(json_fields[0]))

static int bad_field(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad_field(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Checks one field's type and range; -1 with err naming the key. */
static int field_check(const struct json_field *f, const json_t *v, char *err, size_t err_len)
{
    const char *text = json_string_value(v);
    json_int_t n = json_integer_value(v);
    enum state_phase phase;

    switch (f->kind) {
    case FIELD_COLOUR:
        if (!text || (strcmp(text, "blue") != 0 && strcmp(text, "green") != 0))
            return bad_field(err, err_len, "%s: expected \"blue\" or \"green\"", f->key);
        return 0;
    case FIELD_PHASE:
        if (!text || state_phase_parse(text, &phase) < 0)
            return bad_field(err, err_len,
                             "%s: expected a phase name (idle, preflight, progressing, paused, "
                             "promoted, rolled_back)",
                             f->key);
        return 0;
    case FIELD_UINT:
        if (!json_is_integer(v))
            return bad_field(err, err_len, "%s: expected an integer", f->key);
        if (n < 0 || n > f->max)
            return bad_field(err, err_len,
                             "%s: %" JSON_INTEGER_FORMAT " is outside 0..%" JSON_INTEGER_FORMAT,
                             f->key, n, f->max);
        return 0;
    case FIELD_TEXT:
        if (!text)
            return bad_field(err, err_len, "%s: expected a string", f->key);
        /* A \u0000 inside would silently cut the text short. */
        if (json_string_length(v) >= (size_t)f->max || strlen(text) != json_string_length(v))
            return bad_field(err, err_len, "%s: longer than %d bytes or holds a NUL", f->key,
                             (int)f->max - 1);
        return 0;
    }
    return 0;
}

/* Stores every field once all of them have been checked. */
static void fields_store(const json_t *j, struct state *s)
{
    const char *stable = json_string_value(json_object_get(j, "stable"));
    enum state_phase phase = STATE_IDLE;

    if (state_phase_parse(json_string_value(json_object_get(j, "phase")), &phase) < 0)
        phase = STATE_IDLE; /* not reached: field_check() accepted the name */
    s->stable = strcmp(stable, "blue") == 0 ? CONF_BLUE : CONF_GREEN;
    s->phase = phase;
    s->candidate_bp = (uint32_t)json_integer_value(json_object_get(j, "candidate_bp"));
    s->step = (uint32_t)json_integer_value(json_object_get(j, "step"));
    s->generation = (uint64_t)json_integer_value(json_object_get(j, "generation"));
    s->updated_ms = (int64_t)json_integer_value(json_object_get(j, "updated_ms"));
    state_text_copy(s->updated_by, sizeof(s->updated_by),
                    json_string_value(json_object_get(j, "updated_by")));
    state_text_copy(s->reason, sizeof(s->reason), json_string_value(json_object_get(j, "reason")));
}

/* Reads "plan" (NULL when missing: written before plans were kept). */
static int plan_from_json(const json_t *v, struct state_plan *p, char *err, size_t err_len)
{
    const json_t *steps = json_object_get(v, "steps_bp");
    const json_t *step_s = json_object_get(v, "step_s");
    char why[160];

    memset(p, 0, sizeof(*p));
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) != 2 || !json_is_array(steps) ||
        !json_is_integer(step_s))
        return bad_field(err, err_len,
                         "plan: expected null or {\"steps_bp\": [integers], \"step_s\": integer}");
    if (json_array_size(steps) == 0 || json_array_size(steps) > STATE_PLAN_STEPS_MAX)
        return bad_field(err, err_len, "plan: steps_bp: expected 1..%d steps",
                         STATE_PLAN_STEPS_MAX);
    for (size_t i = 0; i < json_array_size(steps); i++) {
        json_int_t bp = json_integer_value(json_array_get(steps, i));
        if (!json_is_integer(json_array_get(steps, i)) || bp < 0 || bp > CONF_WEIGHT_BP_MAX)
            return bad_field(err, err_len, "plan: steps_bp[%zu]: expected an integer 0..%u", i,
                             CONF_WEIGHT_BP_MAX);
        p->steps_bp[i] = (uint32_t)bp;
    }
    p->nsteps = (uint32_t)json_array_size(steps);
    if (json_integer_value(step_s) < 0 || json_integer_value(step_s) > STATE_PLAN_STEP_S_MAX)
        return bad_field(err, err_len, "plan: step_s: expected an integer 1..%d",
                         STATE_PLAN_STEP_S_MAX);
    p->step_s = (uint32_t)json_integer_value(step_s);
    if (!state_plan_valid(p, why, sizeof(why)))
        return bad_field(err, err_len, "plan: %s", why);
    return 0;
}

/* strict: a key this version does not know is an error (a state file is
 * this process's own); else it is skipped (a fleet's copy may come from a
 * newer version, in the middle of a rolling upgrade). */
static int from_json(const json_t *j, struct state *out, bool strict, char *err, size_t err_len)
{
    struct state s;
    const char *key;
    json_t *v;

    memset(&s, 0, sizeof(s));
    if (!json_is_object(j)) {
        snprintf(err, err_len, "expected a JSON object");
        return -1;
    }
    for (size_t i = 0; i < JSON_FIELDS; i++) {
        const json_t *fv = json_object_get(j, json_fields[i].key);
        if (!fv) {
            snprintf(err, err_len, "%s: missing", json_fields[i].key);
            return -1;
        }
        if (field_check(&json_fields[i], fv, err, err_len) < 0)
            return -1;
    }
    json_object_foreach((json_t *)j, key, v)
    {
        size_t i = 0;
        while (i < JSON_FIELDS && strcmp(key, json_fields[i].key) != 0)
            i++;
        if (strict && i == JSON_FIELDS && strcmp(key, "plan") != 0) {
            snprintf(err, err_len, "%s: unknown key", key);
            return -1;
        }
    }
    if (plan_from_json(json_object_get(j, "plan"), &s.plan, err, err_len) < 0)
        return -1;
    fields_store(j, &s);
    *out = s;
    return 0;
}

int state_from_json(const json_t *j, struct state *out, char *err, size_t err_len)
{
    return from_json(j, out, true, err, err_len);
}

int state_from_shared_json(const json_t *j, struct state *out, char *err, size_t err_len)
{
    return from_json(j, out, false, err, err_len);
}
