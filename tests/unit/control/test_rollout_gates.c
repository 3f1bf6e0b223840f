/* test_rollout_gates.c - a rollout step's gates and decisions, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "control/rollout_gates.h"

#define SECOND 1000
#define STEP_START_MS 5000000 /* an arbitrary monotonic instant */

/* 1, 5, 25, 100 % with 60 s at each step. */
static const struct state_plan plan = {
    .nsteps = 4,
    .steps_bp = {100, 500, 2500, 10000},
    .step_s = 60,
};

/* Inputs where every gate holds: 60 s at the step, a window open, 100 rps
 * under a max of 500, an ok verdict over 200 requests of at least 100. */
static struct rollout_gate_inputs all_holding(void)
{
    return (struct rollout_gate_inputs){
        .now_mono_ms = STEP_START_MS + 60 * SECOND,
        .step_started_mono_ms = STEP_START_MS,
        .window_open = true,
        .window_why = "inside window mon-fri 01:00-05:00 UTC",
        .rps = 100,
        .max_rps = 500,
        .verdict = VERDICT_OK,
        .verdict_reason = "error rate 0.00%, p99 3.2 ms over 200 requests",
        .candidate_requests = 200,
        .min_requests = 100,
    };
}

/* Decides at step with in, and checks that only gate `closed` is closed
 * (ROLLOUT_GATES: none), with why containing needle. */
static struct rollout_decision decide_expect(const struct rollout_gate_inputs *in, uint32_t step,
                                             int closed, const char *needle)
{
    struct rollout_gate gates[ROLLOUT_GATES];
    struct rollout_decision d = rollout_gates_decide(in, &plan, step, gates);

    for (int g = 0; g < ROLLOUT_GATES; g++) {
        if (gates[g].ok != (g != closed))
            fail_msg("gate %s: ok %d (%s)", rollout_gate_name((enum rollout_gate_id)g), gates[g].ok,
                     gates[g].why);
    }
    if (closed < ROLLOUT_GATES && strstr(gates[closed].why, needle) == NULL)
        fail_msg("gate %s: \"%s\" does not contain \"%s\"",
                 rollout_gate_name((enum rollout_gate_id)closed), gates[closed].why, needle);
    return d;
}

static void expect_hold(const struct rollout_gate_inputs *in, int closed, const char *needle)
{
    assert_int_equal(decide_expect(in, 2, closed, needle).action, ROLLOUT_HOLD);
}

static void test_time_not_reached(void **state)
{
    struct rollout_gate_inputs in = all_holding();

    in.now_mono_ms = STEP_START_MS + 59 * SECOND + 999;
    expect_hold(&in, ROLLOUT_GATE_TIME, "at step for 59 s of 60");
}

static void test_window_closed(void **state)
{
    struct rollout_gate_inputs in = all_holding();

    in.window_open = false;
    in.window_why = "outside window mon-fri 01:00-05:00 UTC, opens in 3h12m";
    expect_hold(&in, ROLLOUT_GATE_WINDOW, "opens in 3h12m");
}

static void test_over_max_rps(void **state)
{
    struct rollout_gate_inputs in = all_holding();

    in.rps = 812;
    expect_hold(&in, ROLLOUT_GATE_TRAFFIC, "traffic 812 rps over max 500");
    in.rps = 500; /* the rate must be under max_rps, not at it */
    expect_hold(&in, ROLLOUT_GATE_TRAFFIC, "over max 500");
}

static void test_no_max_rps_is_no_gate(void **state)
{
    struct rollout_gate_inputs in = all_holding();
    struct rollout_gate gates[ROLLOUT_GATES];

    in.rps = 1e6;
    in.max_rps = 0;
    assert_int_equal(rollout_gates_decide(&in, &plan, 2, gates).action, ROLLOUT_ADVANCE);
    assert_string_equal(gates[ROLLOUT_GATE_TRAFFIC].why, "no max_rps");
}

static void test_detector_inconclusive_or_failing(void **state)
{
    struct rollout_gate_inputs in = all_holding();

    in.verdict = VERDICT_INCONCLUSIVE;
    in.verdict_reason = "stable pool quiet";
    expect_hold(&in, ROLLOUT_GATE_DETECTOR, "inconclusive: stable pool quiet");
    in.verdict = VERDICT_FAIL;
    in.verdict_reason = "p99 1200.0 ms over max_p99_ms 1000";
    expect_hold(&in, ROLLOUT_GATE_DETECTOR, "fail: p99 1200.0 ms");
}

static void test_too_few_requests(void **state)
{
    struct rollout_gate_inputs in = all_holding();

    in.candidate_requests = 37;
    expect_hold(&in, ROLLOUT_GATE_DETECTOR, "waiting for 100 requests at this step, have 37");
    in.candidate_requests = 100; /* exactly min_requests is enough */
    assert_int_equal(decide_expect(&in, 2, ROLLOUT_GATES, "").action, ROLLOUT_ADVANCE);
}

static void test_all_holding_advances(void **state)
{
    struct rollout_gate_inputs in = all_holding();
    struct rollout_decision d = decide_expect(&in, 2, ROLLOUT_GATES, "");

    assert_int_equal(d.action, ROLLOUT_ADVANCE);
    assert_int_equal(d.next_step, 3);
    assert_int_equal(d.weight_bp, 2500);
}

static void test_last_step_promotes(void **state)
{
    struct rollout_gate_inputs in = all_holding();

    assert_int_equal(decide_expect(&in, 4, ROLLOUT_GATES, "").action, ROLLOUT_PROMOTE);
}

/* Step 0 is the preflight and an empty plan has no step: never a move. */
static void test_no_step_no_move(void **state)
{
    struct rollout_gate_inputs in = all_holding();
    struct rollout_gate gates[ROLLOUT_GATES];
    struct state_plan none = {0};

    assert_int_equal(rollout_gates_decide(&in, &plan, 0, gates).action, ROLLOUT_HOLD);
    assert_int_equal(rollout_gates_decide(&in, &none, 1, gates).action, ROLLOUT_HOLD);
}

/* The whole plan on a fake clock ticking every 100 ms: no step ends before
 * its 60 s, each ends at exactly 60 s, and the last one promotes. */
static void test_walk_whole_plan(void **state)
{
    struct rollout_gate_inputs in = all_holding();
    struct rollout_gate gates[ROLLOUT_GATES];
    uint32_t step = 1, weight = plan.steps_bp[0];
    int64_t now = STEP_START_MS;
    int promoted_at_s = -1;

    in.step_started_mono_ms = now;
    for (int tick = 0; tick < 10 * 60 * 10 && promoted_at_s < 0; tick++, now += 100) {
        struct rollout_decision d;
        in.now_mono_ms = now;
        d = rollout_gates_decide(&in, &plan, step, gates);
        assert_int_equal(gates[ROLLOUT_GATE_TIME].ok, now - in.step_started_mono_ms >= 60 * SECOND);
        if (d.action == ROLLOUT_HOLD)
            continue;
        assert_int_equal(now - in.step_started_mono_ms, 60 * SECOND);
        if (d.action == ROLLOUT_PROMOTE) {
            promoted_at_s = (int)((now - STEP_START_MS) / SECOND);
            break;
        }
        assert_int_equal(d.next_step, step + 1);
        assert_true(d.weight_bp > weight);
        step = d.next_step;
        weight = d.weight_bp;
        in.step_started_mono_ms = now;
    }
    assert_int_equal(step, 4);
    assert_int_equal(weight, 10000);
    assert_int_equal(promoted_at_s, 4 * 60);
}

/* A process younger than the rate's window divides by the seconds it has
 * counted, never by less than 1 nor more than the window. */
static void test_rate_seconds(void **state)
{
    assert_int_equal(rollout_gates_rate_seconds(1000, 1000, 60), 1);
    assert_int_equal(rollout_gates_rate_seconds(1009, 1000, 60), 10);
    assert_int_equal(rollout_gates_rate_seconds(1059, 1000, 60), 60);
    assert_int_equal(rollout_gates_rate_seconds(5000, 1000, 60), 60);
    assert_int_equal(rollout_gates_rate_seconds(999, 1000, 60), 1); /* a clock read before start */
}

static void test_gates_text(void **state)
{
    struct rollout_gate_inputs in = all_holding();
    struct rollout_gate gates[ROLLOUT_GATES];
    char text[128], tiny[8];

    in.window_open = false;
    (void)rollout_gates_decide(&in, &plan, 1, gates);
    rollout_gates_text(gates, text, sizeof(text));
    assert_string_equal(text, "time ok; window waiting; traffic ok; detector ok");
    rollout_gates_text(gates, tiny, sizeof(tiny));
    assert_string_equal(tiny, "time ok");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_not_reached),
        cmocka_unit_test(test_window_closed),
        cmocka_unit_test(test_over_max_rps),
        cmocka_unit_test(test_no_max_rps_is_no_gate),
        cmocka_unit_test(test_detector_inconclusive_or_failing),
        cmocka_unit_test(test_too_few_requests),
        cmocka_unit_test(test_all_holding_advances),
        cmocka_unit_test(test_last_step_promotes),
        cmocka_unit_test(test_no_step_no_move),
        cmocka_unit_test(test_walk_whole_plan),
        cmocka_unit_test(test_rate_seconds),
        cmocka_unit_test(test_gates_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
