/* test_state.c - the state machine's rules, hooks and JSON form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "control/state.h"

#define NOW_MS 1795000000123LL

/* 1, 5, 25, 100 % with 60 s at each: what a rollout.start carries. */
static const struct state_plan test_plan = {4, {100, 500, 2500, 10000}, 60};

/* Records what the hooks saw, in order. */
struct recorder {
    char calls[128];
    int persists, events, publishes;
    bool fail_persist;
    struct state persisted;
    struct state_event event;
    struct state published;
    const struct state_machine *sm; /* to check what state_current says during hooks */
    uint64_t current_gen_at_event;
};

static void note_call(struct recorder *r, const char *name)
{
    size_t len = strlen(r->calls);
    snprintf(r->calls + len, sizeof(r->calls) - len, "%s%s", len ? " " : "", name);
}

static int rec_persist(const struct state *s, void *arg, char *why, size_t why_len)
{
    struct recorder *r = arg;

    note_call(r, "persist");
    r->persists++;
    if (r->fail_persist) {
        snprintf(why, why_len, "disk full");
        return -1;
    }
    r->persisted = *s;
    return 0;
}

static void rec_event(const struct state_event *e, void *arg)
{
    struct recorder *r = arg;

    note_call(r, "event");
    r->events++;
    r->event = *e;
    if (r->sm)
        r->current_gen_at_event = state_current(r->sm)->generation;
}

static void rec_publish(const struct state *s, void *arg)
{
    struct recorder *r = arg;

    note_call(r, "publish");
    r->publishes++;
    r->published = *s;
}

static int64_t fixed_now(void *arg)
{
    (void)arg;
    return NOW_MS;
}

static struct state base_state(enum state_phase phase, uint32_t bp, uint32_t step)
{
    struct state s;

    memset(&s, 0, sizeof(s));
    s.stable = CONF_BLUE;
    s.candidate_bp = bp;
    s.phase = phase;
    s.step = step;
    s.generation = 7;
    snprintf(s.updated_by, sizeof(s.updated_by), "test");
    snprintf(s.reason, sizeof(s.reason), "setup");
    s.updated_ms = 1000;
    return s;
}

static struct state_machine *machine(const struct state *s, struct recorder *r)
{
    struct state_hooks h = {rec_persist, rec_event, rec_publish, r, fixed_now};
    struct state_machine *sm;

    memset(r, 0, sizeof(*r));
    sm = state_machine_new(s, &h);
    assert_non_null(sm);
    r->sm = sm;
    return sm;
}

struct row {
    enum state_op op;
    enum state_phase from;
    bool legal;
    enum state_phase to;
    uint32_t bp;
    enum conf_colour stable;
    uint32_t step;
};

#define B CONF_BLUE
#define G CONF_GREEN
#define NO false, 0, 0, 0, 0
#define OK(ph, bp, st, step) true, ph, bp, st, step

/* Start: blue stable, candidate at 500 bp, step 2. Changes carry 2000 bp, step 3. */
static const struct row table[] = {
    {STATE_OP_WEIGHT, STATE_IDLE, OK(STATE_IDLE, 2000, B, 0)},
    {STATE_OP_WEIGHT, STATE_PREFLIGHT, NO},
    {STATE_OP_WEIGHT, STATE_PROGRESSING, NO},
    {STATE_OP_WEIGHT, STATE_PAUSED, OK(STATE_IDLE, 2000, B, 0)},
    {STATE_OP_WEIGHT, STATE_PROMOTED, OK(STATE_IDLE, 2000, B, 0)},
    {STATE_OP_WEIGHT, STATE_ROLLED_BACK, OK(STATE_IDLE, 2000, B, 0)},
    {STATE_OP_START, STATE_IDLE, OK(STATE_PREFLIGHT, 0, B, 0)},
    {STATE_OP_START, STATE_PREFLIGHT, NO},
    {STATE_OP_START, STATE_PROGRESSING, NO},
    {STATE_OP_START, STATE_PAUSED, NO},
    {STATE_OP_START, STATE_PROMOTED, OK(STATE_PREFLIGHT, 0, B, 0)},
    {STATE_OP_START, STATE_ROLLED_BACK, OK(STATE_PREFLIGHT, 0, B, 0)},
    {STATE_OP_PREFLIGHT_OK, STATE_IDLE, NO},
    {STATE_OP_PREFLIGHT_OK, STATE_PREFLIGHT, OK(STATE_PROGRESSING, 2000, B, 1)},
    {STATE_OP_PREFLIGHT_OK, STATE_PROGRESSING, NO},
    {STATE_OP_PREFLIGHT_OK, STATE_PAUSED, NO},
    {STATE_OP_PREFLIGHT_OK, STATE_PROMOTED, NO},
    {STATE_OP_PREFLIGHT_OK, STATE_ROLLED_BACK, NO},
    {STATE_OP_ADVANCE, STATE_IDLE, NO},
    {STATE_OP_ADVANCE, STATE_PREFLIGHT, NO},
    {STATE_OP_ADVANCE, STATE_PROGRESSING, OK(STATE_PROGRESSING, 2000, B, 3)},
    {STATE_OP_ADVANCE, STATE_PAUSED, NO},
    {STATE_OP_ADVANCE, STATE_PROMOTED, NO},
    {STATE_OP_ADVANCE, STATE_ROLLED_BACK, NO},
    {STATE_OP_PAUSE, STATE_IDLE, NO},
    {STATE_OP_PAUSE, STATE_PREFLIGHT, OK(STATE_PAUSED, 500, B, 2)},
    {STATE_OP_PAUSE, STATE_PROGRESSING, OK(STATE_PAUSED, 500, B, 2)},
    {STATE_OP_PAUSE, STATE_PAUSED, NO},
    {STATE_OP_PAUSE, STATE_PROMOTED, NO},
    {STATE_OP_PAUSE, STATE_ROLLED_BACK, NO},
    {STATE_OP_RESUME, STATE_IDLE, NO},
    {STATE_OP_RESUME, STATE_PREFLIGHT, NO},
    {STATE_OP_RESUME, STATE_PROGRESSING, NO},
    {STATE_OP_RESUME, STATE_PAUSED, OK(STATE_PROGRESSING, 500, B, 2)},
    {STATE_OP_RESUME, STATE_PROMOTED, NO},
    {STATE_OP_RESUME, STATE_ROLLED_BACK, NO},
    {STATE_OP_PROMOTE, STATE_IDLE, OK(STATE_PROMOTED, 0, G, 0)},
    {STATE_OP_PROMOTE, STATE_PREFLIGHT, NO},
    {STATE_OP_PROMOTE, STATE_PROGRESSING, OK(STATE_PROMOTED, 0, G, 0)},
    {STATE_OP_PROMOTE, STATE_PAUSED, OK(STATE_PROMOTED, 0, G, 0)},
    {STATE_OP_PROMOTE, STATE_PROMOTED, NO},
    {STATE_OP_PROMOTE, STATE_ROLLED_BACK, NO},
    {STATE_OP_ROLLBACK, STATE_IDLE, OK(STATE_ROLLED_BACK, 0, B, 0)},
    {STATE_OP_ROLLBACK, STATE_PREFLIGHT, OK(STATE_ROLLED_BACK, 0, B, 0)},
    {STATE_OP_ROLLBACK, STATE_PROGRESSING, OK(STATE_ROLLED_BACK, 0, B, 0)},
    {STATE_OP_ROLLBACK, STATE_PAUSED, OK(STATE_ROLLED_BACK, 0, B, 0)},
    {STATE_OP_ROLLBACK, STATE_PROMOTED, OK(STATE_ROLLED_BACK, 0, B, 0)},
    {STATE_OP_ROLLBACK, STATE_ROLLED_BACK, OK(STATE_ROLLED_BACK, 0, B, 0)},
    /* An event kind only (service_record()), never a transition. */
    {STATE_OP_SERVER, STATE_IDLE, NO},
    {STATE_OP_SERVER, STATE_PREFLIGHT, NO},
    {STATE_OP_SERVER, STATE_PROGRESSING, NO},
    {STATE_OP_SERVER, STATE_PAUSED, NO},
    {STATE_OP_SERVER, STATE_PROMOTED, NO},
    {STATE_OP_SERVER, STATE_ROLLED_BACK, NO},
    {STATE_OP_SYNC, STATE_IDLE, NO}, /* only through state_adopt() */
    {STATE_OP_SYNC, STATE_PREFLIGHT, NO},
    {STATE_OP_SYNC, STATE_PROGRESSING, NO},
    {STATE_OP_SYNC, STATE_PAUSED, NO},
    {STATE_OP_SYNC, STATE_PROMOTED, NO},
    {STATE_OP_SYNC, STATE_ROLLED_BACK, NO},
};

static void check_row(const struct row *t)
{
    struct state s = base_state(t->from, 500, 2);
    struct state_change c = {t->op, 2000, 3, "uid:1000", "table", 0, &test_plan};
    struct state_error err = {0};
    struct recorder r;
    struct state_machine *sm = machine(&s, &r);
    int rc = state_apply(sm, &c, &err);
    const struct state *now = state_current(sm);

    print_message("%s from %s\n", state_op_name(t->op), state_phase_name(t->from));
    if (!t->legal) {
        assert_int_equal(rc, -1);
        assert_string_equal(err.code, "illegal_transition");
        assert_non_null(strstr(err.message, state_phase_name(t->from)));
        assert_memory_equal(now, &s, sizeof(s));
        assert_string_equal(r.calls, "");
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(now->phase, t->to);
        assert_int_equal(now->candidate_bp, t->bp);
        assert_int_equal(now->stable, t->stable);
        assert_int_equal(now->step, t->step);
        assert_int_equal(now->generation, 8);
        assert_string_equal(r.calls, t->op == STATE_OP_ROLLBACK ? "publish persist event"
                                                                : "persist event publish");
    }
    state_machine_free(sm);
}

static void test_transition_table(void **unused)
{
    (void)unused;
    assert_int_equal(sizeof(table) / sizeof(table[0]), STATE_OPS * STATE_PHASES);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        check_row(&table[i]);
}

static void test_metadata(void **unused)
{
    struct state s = base_state(STATE_IDLE, 0, 0);
    struct recorder r;
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_WEIGHT, 1000, 0, "uid:1000", "canary for #42", 0, NULL};
    char longwhy[600];
    (void)unused;

    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_int_equal(state_current(sm)->generation, 8);
    assert_string_equal(state_current(sm)->updated_by, "uid:1000");
    assert_string_equal(state_current(sm)->reason, "canary for #42");
    assert_int_equal(state_current(sm)->updated_ms, NOW_MS);
    assert_int_equal(r.event.generation, 8);
    assert_int_equal(r.event.time_ms, NOW_MS);
    assert_int_equal(r.event.op, STATE_OP_WEIGHT);
    assert_string_equal(r.event.who, "uid:1000");
    assert_int_equal(r.event.from.candidate_bp, 0);
    assert_int_equal(r.event.to.candidate_bp, 1000);
    assert_true(r.event.persisted);

    /* No who, an over-long why with a multi-byte character across the cut,
     * and bytes that are not UTF-8. */
    memset(longwhy, 'a', sizeof(longwhy));
    memcpy(longwhy + 254, "\xc3\xa9", 2);
    longwhy[sizeof(longwhy) - 1] = '\0';
    c = (struct state_change){STATE_OP_WEIGHT, 2000, 0, NULL, longwhy, 8, NULL};
    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_string_equal(state_current(sm)->updated_by, "unknown");
    assert_int_equal(strlen(state_current(sm)->reason), 254);
    c = (struct state_change){STATE_OP_WEIGHT, 3000, 0, "bad\xff\xfe", NULL, 9, NULL};
    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_string_equal(state_current(sm)->updated_by, "bad??");
    assert_string_equal(state_current(sm)->reason, "");
    assert_int_equal(state_current(sm)->generation, 10);
    state_machine_free(sm);
}

static void test_conflict(void **unused)
{
    struct state s = base_state(STATE_PROGRESSING, 500, 2);
    struct recorder r;
    struct state_machine *sm = machine(&s, &r);
    struct state_error err = {0};
    struct state_change c = {STATE_OP_PAUSE, 0, 0, "uid:0", "stale", 6, NULL};
    (void)unused;

    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.code, "conflict");
    assert_non_null(strstr(err.message, "generation 6"));
    assert_int_equal(state_current(sm)->phase, STATE_PROGRESSING);
    assert_string_equal(r.calls, "");

    c.expect_generation = 7;
    assert_int_equal(state_apply(sm, &c, &err), 0);
    assert_int_equal(state_current(sm)->phase, STATE_PAUSED);
    /* The same expectation is stale now. */
    c.op = STATE_OP_RESUME;
    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.code, "conflict");

    /* A rollback is never refused as stale: taking traffic off a candidate
     * is right whatever changed in between. */
    c.op = STATE_OP_ROLLBACK;
    assert_int_equal(state_apply(sm, &c, &err), 0);
    assert_int_equal(state_current(sm)->phase, STATE_ROLLED_BACK);
    assert_int_equal(state_current(sm)->candidate_bp, 0);
    state_machine_free(sm);
}

static void expect_bad(struct state_machine *sm, struct recorder *r, enum state_op op, uint32_t bp,
                       uint32_t step, const char *needle)
{
    struct state before = *state_current(sm);
    struct state_change c = {op, bp, step, "uid:0", "bad", 0, NULL};
    struct state_error err = {0};

    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.code, "bad_argument");
    assert_non_null(strstr(err.message, needle));
    assert_memory_equal(state_current(sm), &before, sizeof(before));
    assert_string_equal(r->calls, "");
}

static void test_bad_arguments(void **unused)
{
    struct recorder r;
    struct state s = base_state(STATE_IDLE, 0, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_WEIGHT, 10000, 0, "uid:0", "all in", 0, NULL};
    struct state_error err = {0};
    (void)unused;

    expect_bad(sm, &r, STATE_OP_WEIGHT, 10001, 0, "10001");
    expect_bad(sm, &r, STATE_OP_WEIGHT, UINT32_MAX, 0, "outside 0..10000");
    expect_bad(sm, &r, (enum state_op)99, 0, 0, "unknown operation");
    assert_int_equal(state_apply(sm, &c, &err), 0);
    assert_int_equal(state_current(sm)->candidate_bp, 10000);
    state_machine_free(sm);

    s = base_state(STATE_PREFLIGHT, 0, 0);
    sm = machine(&s, &r);
    expect_bad(sm, &r, STATE_OP_PREFLIGHT_OK, 10001, 0, "10001");
    state_machine_free(sm);

    s = base_state(STATE_PROGRESSING, 500, 2);
    sm = machine(&s, &r);
    expect_bad(sm, &r, STATE_OP_ADVANCE, 10001, 3, "10001");
    expect_bad(sm, &r, STATE_OP_ADVANCE, 1000, 4, "the next step is 3, not 4");
    expect_bad(sm, &r, STATE_OP_ADVANCE, 1000, 2, "the next step is 3, not 2");
    expect_bad(sm, &r, STATE_OP_ADVANCE, 500, 3, "must be higher");
    expect_bad(sm, &r, STATE_OP_ADVANCE, 100, 3, "must be higher");
    state_machine_free(sm);
}

static void test_messages(void **unused)
{
    struct recorder r;
    struct state s = base_state(STATE_IDLE, 0, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_RESUME, 0, 0, "uid:0", "", 0, NULL};
    struct state_error err = {0};
    (void)unused;

    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.message, "cannot resume: the phase is idle, not paused");
    c.op = STATE_OP_PAUSE;
    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.message,
                        "cannot pause: the phase is idle, not preflight or progressing");
    c.op = STATE_OP_PROMOTE; /* idle at weight 0: nothing to promote */
    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.code, "illegal_transition");
    assert_non_null(strstr(err.message, "weight 0"));
    state_machine_free(sm);

    s = base_state(STATE_PROGRESSING, 500, 2);
    sm = machine(&s, &r);
    c.op = STATE_OP_WEIGHT;
    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_non_null(strstr(err.message, "a rollout is running"));
    assert_non_null(strstr(err.message, "pause it first"));
    state_machine_free(sm);
}

static void test_resume_before_step_one(void **unused)
{
    struct recorder r;
    struct state s = base_state(STATE_PREFLIGHT, 0, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change pause = {STATE_OP_PAUSE, 0, 0, "uid:0", "", 0, NULL};
    struct state_change resume = {STATE_OP_RESUME, 0, 0, "uid:0", "", 0, NULL};
    (void)unused;

    assert_int_equal(state_apply(sm, &pause, NULL), 0);
    assert_int_equal(state_apply(sm, &resume, NULL), 0);
    assert_int_equal(state_current(sm)->phase, STATE_PREFLIGHT);
    assert_int_equal(state_current(sm)->step, 0);
    state_machine_free(sm);
}

static void test_promote_swaps_roles(void **unused)
{
    struct recorder r;
    struct state s = base_state(STATE_IDLE, 5000, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_PROMOTE, 0, 0, "uid:0", "green is good", 0, NULL};
    (void)unused;

    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_int_equal(state_current(sm)->stable, CONF_GREEN);
    assert_int_equal(state_current(sm)->candidate_bp, 0);
    assert_int_equal(state_current(sm)->phase, STATE_PROMOTED);
    assert_int_equal(r.published.stable, CONF_GREEN);
    assert_int_equal(r.event.from.stable, CONF_BLUE);
    assert_int_equal(r.event.from.candidate_bp, 5000);

    /* The next release goes the other way: blue is the candidate now. */
    c = (struct state_change){STATE_OP_WEIGHT, 100, 0, "uid:0", "", 0, NULL};
    assert_int_equal(state_apply(sm, &c, NULL), 0);
    c = (struct state_change){STATE_OP_PROMOTE, 0, 0, "uid:0", "", 0, NULL};
    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_int_equal(state_current(sm)->stable, CONF_BLUE);
    state_machine_free(sm);
}

static void test_rollback_every_phase(void **unused)
{
    (void)unused;
    for (unsigned p = 0; p < STATE_PHASES; p++) {
        struct recorder r;
        struct state s = base_state((enum state_phase)p, 2500, p == STATE_PROGRESSING ? 3 : 0);
        struct state_machine *sm = machine(&s, &r);
        struct state_change c = {STATE_OP_ROLLBACK, 0, 0, NULL, NULL, 0, NULL};

        assert_int_equal(state_apply(sm, &c, NULL), 0);
        assert_int_equal(state_current(sm)->phase, STATE_ROLLED_BACK);
        assert_int_equal(state_current(sm)->candidate_bp, 0);
        assert_int_equal(state_current(sm)->stable, CONF_BLUE);
        assert_int_equal(r.published.candidate_bp, 0);
        state_machine_free(sm);
    }
}

static void test_persist_failure_refuses(void **unused)
{
    struct recorder r;
    struct state s = base_state(STATE_IDLE, 100, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_WEIGHT, 5000, 0, "uid:0", "", 0, NULL};
    struct state_error err = {0};
    (void)unused;

    r.fail_persist = true;
    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.code, "persist_failed");
    assert_non_null(strstr(err.message, "disk full"));
    assert_memory_equal(state_current(sm), &s, sizeof(s));
    assert_string_equal(r.calls, "persist");
    assert_int_equal(r.events, 0);
    assert_int_equal(r.publishes, 0);

    c.op = STATE_OP_START;
    c.plan = &test_plan;
    assert_int_equal(state_apply(sm, &c, &err), -1);
    assert_string_equal(err.code, "persist_failed");
    assert_int_equal(state_current(sm)->generation, 7);
    state_machine_free(sm);
}

static void test_persist_failure_rollback_applies(void **unused)
{
    struct recorder r;
    struct state s = base_state(STATE_PROGRESSING, 2500, 4);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_ROLLBACK, 0, 0, "detector", "p99 ratio 3.1", 0, NULL};
    struct state_error err = {0};
    (void)unused;

    r.fail_persist = true;
    assert_int_equal(state_apply(sm, &c, &err), 0);
    /* Traffic moved before the disk was even asked. */
    assert_string_equal(r.calls, "publish persist event");
    assert_int_equal(state_current(sm)->phase, STATE_ROLLED_BACK);
    assert_int_equal(state_current(sm)->generation, 8);
    assert_false(r.event.persisted);
    assert_string_equal(r.event.note, "not persisted: disk full");
    assert_int_equal(r.published.candidate_bp, 0);
    state_machine_free(sm);
}

static void test_hook_order(void **unused)
{
    struct recorder r;
    struct state s = base_state(STATE_IDLE, 0, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_START, 0, 0, "uid:0", "", 7, &test_plan};
    (void)unused;

    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_string_equal(r.calls, "persist event publish");
    assert_int_equal(r.persisted.generation, 8);
    assert_int_equal(r.persisted.phase, STATE_PREFLIGHT);
    assert_int_equal(r.current_gen_at_event, 8);
    assert_memory_equal(&r.published, state_current(sm), sizeof(struct state));
    assert_memory_equal(&r.event.to, state_current(sm), sizeof(struct state));
    state_machine_free(sm);

    /* No hooks at all is fine too. */
    sm = state_machine_new(&s, NULL);
    assert_non_null(sm);
    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_int_equal(state_current(sm)->phase, STATE_PREFLIGHT);
    state_machine_free(sm);
}

static void test_names(void **unused)
{
    enum state_phase p;
    (void)unused;

    for (unsigned i = 0; i < STATE_PHASES; i++) {
        assert_int_equal(state_phase_parse(state_phase_name((enum state_phase)i), &p), 0);
        assert_int_equal(p, i);
    }
    assert_string_equal(state_phase_name(STATE_ROLLED_BACK), "rolled_back");
    assert_int_equal(state_phase_parse("Idle", &p), -1);
    assert_int_equal(state_phase_parse("", &p), -1);
    assert_int_equal(state_phase_parse(NULL, &p), -1);
    assert_string_equal(state_phase_name((enum state_phase)42), "unknown");
    assert_string_equal(state_op_name(STATE_OP_START), "rollout.start");
    assert_string_equal(state_op_name(STATE_OP_ROLLBACK), "rollback");
}

static void test_json_round_trip(void **unused)
{
    struct state s = base_state(STATE_PAUSED, 1234, 3);
    struct state back;
    char err[128] = "";
    json_t *j;
    (void)unused;

    s.stable = CONF_GREEN;
    s.generation = 9007199254740993ULL;
    s.updated_ms = NOW_MS;
    snprintf(s.reason, sizeof(s.reason), "quotes \" and \\ and caf\xc3\xa9");
    j = state_to_json(&s);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "phase")), "paused");
    assert_string_equal(json_string_value(json_object_get(j, "stable")), "green");
    memset(&back, 0x55, sizeof(back));
    assert_int_equal(state_from_json(j, &back, err, sizeof(err)), 0);
    assert_int_equal(back.stable, s.stable);
    assert_int_equal(back.candidate_bp, 1234);
    assert_int_equal(back.phase, STATE_PAUSED);
    assert_int_equal(back.step, 3);
    assert_true(back.generation == s.generation);
    assert_int_equal(back.updated_ms, NOW_MS);
    assert_string_equal(back.updated_by, s.updated_by);
    assert_string_equal(back.reason, s.reason);

    /* A NUL inside a string (possible when built in memory) is refused. */
    assert_int_equal(json_object_set_new(j, "reason", json_stringn("a\0b", 3)), 0);
    assert_int_equal(state_from_json(j, &back, err, sizeof(err)), -1);
    assert_string_equal(err, "reason: longer than 255 bytes or holds a NUL");
    json_decref(j);
}

/* Loads text, expects state_from_json to refuse it with needle in the error. */
static void expect_rejected(const char *text, const char *needle)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    struct state out = base_state(STATE_IDLE, 77, 0);
    struct state before = out;
    char err[256] = "";

    print_message("%s\n", text);
    assert_non_null(j);
    assert_int_equal(state_from_json(j, &out, err, sizeof(err)), -1);
    print_message("  -> %s\n", err);
    assert_non_null(strstr(err, needle));
    assert_memory_equal(&out, &before, sizeof(out));
    json_decref(j);
}

#define F_STABLE "\"stable\":\"blue\""
#define F_BP "\"candidate_bp\":100"
#define F_PHASE "\"phase\":\"idle\""
#define F_STEP "\"step\":0"
#define F_GEN "\"generation\":3"
#define F_BY "\"updated_by\":\"x\""
#define F_WHY "\"reason\":\"y\""
#define F_MS "\"updated_ms\":5"
#define FULL(a, b, c, d, e, f, g, h) "{" a "," b "," c "," d "," e "," f "," g "," h "}"

static void test_from_json_rejects(void **unused)
{
    (void)unused;
    /* Each key missing. */
    expect_rejected("{" F_BP "," F_PHASE "," F_STEP "," F_GEN "," F_BY "," F_WHY "," F_MS "}",
                    "stable: missing");
    expect_rejected("{" F_STABLE "," F_PHASE "," F_STEP "," F_GEN "," F_BY "," F_WHY "," F_MS "}",
                    "candidate_bp: missing");
    expect_rejected("{" F_STABLE "," F_BP "," F_STEP "," F_GEN "," F_BY "," F_WHY "," F_MS "}",
                    "phase: missing");
    expect_rejected("{" F_STABLE "," F_BP "," F_PHASE "," F_GEN "," F_BY "," F_WHY "," F_MS "}",
                    "step: missing");
    expect_rejected("{" F_STABLE "," F_BP "," F_PHASE "," F_STEP "," F_BY "," F_WHY "," F_MS "}",
                    "generation: missing");
    expect_rejected("{" F_STABLE "," F_BP "," F_PHASE "," F_STEP "," F_GEN "," F_WHY "," F_MS "}",
                    "updated_by: missing");
    expect_rejected("{" F_STABLE "," F_BP "," F_PHASE "," F_STEP "," F_GEN "," F_BY "," F_MS "}",
                    "reason: missing");
    expect_rejected("{" F_STABLE "," F_BP "," F_PHASE "," F_STEP "," F_GEN "," F_BY "," F_WHY "}",
                    "updated_ms: missing");
    /* Each key with a wrong type or value. */
    expect_rejected(FULL("\"stable\":\"red\"", F_BP, F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, F_MS),
                    "stable: expected \"blue\" or \"green\"");
    expect_rejected(FULL("\"stable\":0", F_BP, F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, F_MS),
                    "stable: expected");
    expect_rejected(
        FULL(F_STABLE, "\"candidate_bp\":\"100\"", F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, F_MS),
        "candidate_bp: expected an integer");
    expect_rejected(
        FULL(F_STABLE, "\"candidate_bp\":1.5", F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, F_MS),
        "candidate_bp: expected an integer");
    expect_rejected(
        FULL(F_STABLE, "\"candidate_bp\":10001", F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, F_MS),
        "candidate_bp: 10001 is outside 0..10000");
    expect_rejected(
        FULL(F_STABLE, "\"candidate_bp\":-1", F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, F_MS),
        "candidate_bp: -1 is outside");
    expect_rejected(FULL(F_STABLE, F_BP, "\"phase\":\"running\"", F_STEP, F_GEN, F_BY, F_WHY, F_MS),
                    "phase: expected a phase name");
    expect_rejected(FULL(F_STABLE, F_BP, "\"phase\":null", F_STEP, F_GEN, F_BY, F_WHY, F_MS),
                    "phase: expected a phase name");
    expect_rejected(FULL(F_STABLE, F_BP, F_PHASE, "\"step\":4294967296", F_GEN, F_BY, F_WHY, F_MS),
                    "step: 4294967296 is outside");
    expect_rejected(FULL(F_STABLE, F_BP, F_PHASE, "\"step\":true", F_GEN, F_BY, F_WHY, F_MS),
                    "step: expected an integer");
    expect_rejected(
        FULL(F_STABLE, F_BP, F_PHASE, F_STEP, "\"generation\":\"3\"", F_BY, F_WHY, F_MS),
        "generation: expected an integer");
    expect_rejected(FULL(F_STABLE, F_BP, F_PHASE, F_STEP, "\"generation\":-2", F_BY, F_WHY, F_MS),
                    "generation: -2 is outside");
    expect_rejected(FULL(F_STABLE, F_BP, F_PHASE, F_STEP, F_GEN, "\"updated_by\":7", F_WHY, F_MS),
                    "updated_by: expected a string");
    expect_rejected(FULL(F_STABLE, F_BP, F_PHASE, F_STEP, F_GEN,
                         "\"updated_by\":\"0123456789012345678901234567890123456789012345678901"
                         "234567890123\"",
                         F_WHY, F_MS),
                    "updated_by: longer than 63 bytes");
    expect_rejected(FULL(F_STABLE, F_BP, F_PHASE, F_STEP, F_GEN, F_BY, "\"reason\":[]", F_MS),
                    "reason: expected a string");
    expect_rejected(FULL(F_STABLE, F_BP, F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, "\"updated_ms\":{}"),
                    "updated_ms: expected an integer");
    /* Extra keys and a non-object. */
    expect_rejected("{" F_STABLE "," F_BP "," F_PHASE "," F_STEP "," F_GEN "," F_BY "," F_WHY
                    "," F_MS ",\"weight\":3}",
                    "weight: unknown key");
    expect_rejected("[1,2]", "expected a JSON object");
}

static void test_from_config(void **unused)
{
    static const char text[] =
        "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}],\n"
        "\"pools\": {\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": \"127.0.0.1:9001\"}]}, "
        "\"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": \"127.0.0.1:9002\"}]}},\n"
        "\"routing\": {\"stable\": \"green\", \"candidate_percent\": 12.5}\n}\n";
    struct conf_errors errs = {0};
    struct config *cfg = config_load_string(text, strlen(text), "t.json", "/tmp", &errs);
    struct state s;
    (void)unused;

    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    state_from_config(cfg, &s);
    assert_int_equal(s.stable, CONF_GREEN);
    assert_int_equal(s.candidate_bp, 1250);
    assert_int_equal(s.phase, STATE_IDLE);
    assert_int_equal(s.step, 0);
    assert_int_equal(s.generation, 0);
    assert_string_equal(s.updated_by, "config");
    config_free(cfg);
    conf_errors_clear(&errs);
}

/* START stores the plan; every later change keeps it, through the end of
 * the rollout; the next START replaces it. */
static void test_plan_kept_from_start_to_start(void **unused)
{
    static const struct state_plan other = {2, {5000, 10000}, 5};
    static const enum state_op ops[] = {STATE_OP_PREFLIGHT_OK, STATE_OP_ADVANCE, STATE_OP_PAUSE,
                                        STATE_OP_RESUME,       STATE_OP_PROMOTE, STATE_OP_WEIGHT};
    static const uint32_t bps[] = {100, 500, 0, 0, 0, 300};
    struct recorder r;
    struct state s = base_state(STATE_IDLE, 0, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_START, 0, 0, "uid:0", "", 0, &test_plan};
    (void)unused;

    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_memory_equal(&state_current(sm)->plan, &test_plan, sizeof(test_plan));
    assert_memory_equal(&r.persisted.plan, &test_plan, sizeof(test_plan));
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        c = (struct state_change){ops[i], bps[i], 2, "rollout", "", 0, NULL};
        assert_int_equal(state_apply(sm, &c, NULL), 0);
        assert_memory_equal(&state_current(sm)->plan, &test_plan, sizeof(test_plan));
    }
    c = (struct state_change){STATE_OP_START, 0, 0, "uid:0", "", 0, &other};
    assert_int_equal(state_apply(sm, &c, NULL), 0);
    assert_memory_equal(&state_current(sm)->plan, &other, sizeof(other));
    state_machine_free(sm);
}

static void expect_plan_refused(const struct state_plan *plan, const char *needle)
{
    struct recorder r;
    struct state s = base_state(STATE_IDLE, 0, 0);
    struct state_machine *sm = machine(&s, &r);
    struct state_change c = {STATE_OP_START, 0, 0, "uid:0", "", 0, plan};
    struct state_error err = {0};

    assert_int_equal(state_apply(sm, &c, &err), -1);
    print_message("  -> %s\n", err.message);
    assert_string_equal(err.code, "bad_argument");
    assert_non_null(strstr(err.message, needle));
    assert_string_equal(r.calls, "");
    state_machine_free(sm);
}

static void test_start_refuses_bad_plans(void **unused)
{
    struct state_plan p = {0};
    (void)unused;

    expect_plan_refused(NULL, "cannot start a rollout: no plan");
    expect_plan_refused(&p, "a plan has 1..20 steps, not 0");
    p = (struct state_plan){2, {500, 500}, 60};
    expect_plan_refused(&p, "step 2 (500 bp): steps must be above 0 and increasing");
    p = (struct state_plan){2, {0, 10000}, 60};
    expect_plan_refused(&p, "step 1 (0 bp)");
    p = (struct state_plan){2, {500, 9000}, 60};
    expect_plan_refused(&p, "the last step must be 10000 bp");
    p = (struct state_plan){1, {10000}, 0};
    expect_plan_refused(&p, "step_s must be 1..86400 s, not 0");
    p = (struct state_plan){STATE_PLAN_STEPS_MAX + 1, {10000}, 1};
    expect_plan_refused(&p, "not 21");
}

/* "plan" round-trips, is null without one, may be missing (older files),
 * and is checked strictly when present. */
static void test_plan_json(void **unused)
{
    struct state s = base_state(STATE_PROGRESSING, 500, 2);
    struct state back;
    char err[256] = "";
    json_t *j;
    (void)unused;

    s.plan = test_plan;
    j = state_to_json(&s);
    assert_non_null(j);
    assert_int_equal(state_from_json(j, &back, err, sizeof(err)), 0);
    assert_memory_equal(&back.plan, &test_plan, sizeof(test_plan));
    json_decref(j);

    memset(&s.plan, 0, sizeof(s.plan));
    j = state_to_json(&s);
    assert_true(json_is_null(json_object_get(j, "plan")));
    back.plan = test_plan;
    assert_int_equal(state_from_json(j, &back, err, sizeof(err)), 0);
    assert_int_equal(back.plan.nsteps, 0);
    assert_int_equal(json_object_del(j, "plan"), 0);
    back.plan = test_plan;
    assert_int_equal(state_from_json(j, &back, err, sizeof(err)), 0);
    assert_int_equal(back.plan.nsteps, 0);
    json_decref(j);

#define WITH_PLAN(p) FULL(F_STABLE, F_BP, F_PHASE, F_STEP, F_GEN, F_BY, F_WHY, F_MS ",\"plan\":" p)
    expect_rejected(WITH_PLAN("[]"), "plan: expected null or");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[10000]}"), "plan: expected null or");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[10000],\"step_s\":1,\"x\":1}"),
                    "plan: expected null or");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[],\"step_s\":1}"), "plan: steps_bp: expected 1..20");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[\"1\",10000],\"step_s\":1}"),
                    "plan: steps_bp[0]: expected an integer");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[100,10001],\"step_s\":1}"),
                    "plan: steps_bp[1]: expected an integer 0..10000");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[500,100,10000],\"step_s\":1}"),
                    "plan: step 2 (100 bp): steps must be above 0 and increasing");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[100,10000],\"step_s\":0}"),
                    "plan: step_s must be 1..86400");
    expect_rejected(WITH_PLAN("{\"steps_bp\":[100,10000],\"step_s\":86401}"), "plan: step_s");
#undef WITH_PLAN
}

/* Another instance's state is taken as it is, generation included (even a
 * lower one), published before the disk, and kept even when the disk fails. */
static void test_adopt(void **unused)
{
    struct state mine = base_state(STATE_PROGRESSING, 2500, 2);
    struct state theirs = base_state(STATE_ROLLED_BACK, 0, 0);
    struct recorder r;
    struct state_machine *sm;

    (void)unused;
    mine.generation = 9;
    theirs.generation = 8;
    snprintf(theirs.updated_by, sizeof(theirs.updated_by), "detector");
    sm = machine(&mine, &r);
    r.fail_persist = true;
    state_adopt(sm, &theirs, "redis-sync", "took generation 8 from b:42");
    assert_memory_equal(state_current(sm), &theirs, sizeof(theirs));
    assert_string_equal(r.calls, "publish persist event");
    assert_int_equal(r.published.candidate_bp, 0);
    assert_int_equal(r.event.op, STATE_OP_SYNC);
    assert_string_equal(r.event.who, "redis-sync");
    assert_string_equal(r.event.why, "took generation 8 from b:42");
    assert_int_equal(r.event.from.generation, 9);
    assert_int_equal(r.event.to.generation, 8);
    assert_false(r.event.persisted);
    assert_non_null(strstr(r.event.note, "disk full"));
    assert_string_equal(state_op_name(STATE_OP_SYNC), "sync");
    state_machine_free(sm);
}

/* A state file is read strictly; the fleet's copy skips keys a newer
 * version added, and still checks the ones it knows. */
static void test_shared_json(void **unused)
{
    struct state s = base_state(STATE_IDLE, 500, 0), back;
    json_t *j = state_to_json(&s);
    char err[128] = "";

    (void)unused;
    assert_non_null(j);
    json_object_set_new(j, "added_later", json_integer(1));
    assert_int_equal(state_from_json(j, &back, err, sizeof(err)), -1);
    assert_string_equal(err, "added_later: unknown key");
    assert_int_equal(state_from_shared_json(j, &back, err, sizeof(err)), 0);
    assert_int_equal(back.candidate_bp, 500);
    json_object_set_new(j, "candidate_bp", json_string("lots"));
    assert_int_equal(state_from_shared_json(j, &back, err, sizeof(err)), -1);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_conflict),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_resume_before_step_one),
        cmocka_unit_test(test_promote_swaps_roles),
        cmocka_unit_test(test_rollback_every_phase),
        cmocka_unit_test(test_persist_failure_refuses),
        cmocka_unit_test(test_persist_failure_rollback_applies),
        cmocka_unit_test(test_hook_order),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_from_json_rejects),
        cmocka_unit_test(test_from_config),
        cmocka_unit_test(test_plan_kept_from_start_to_start),
        cmocka_unit_test(test_start_refuses_bad_plans),
        cmocka_unit_test(test_plan_json),
        cmocka_unit_test(test_adopt),
        cmocka_unit_test(test_shared_json),
    };

    log_setup("test_state", LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
