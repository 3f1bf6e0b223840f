/* test_protocol.c - the control socket's requests and replies, without a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "control/protocol.h"
#include "health/check.h"
#include "proxy/snapshot.h"

/* Parses line, which must be accepted. */
static struct protocol_request parse_ok(const char *line)
{
    struct protocol_request req;
    struct protocol_error err = {0};

    if (protocol_parse(line, strlen(line), &req, &err) != 0)
        fail_msg("%s: refused: %s: %s", line, err.code, err.message);
    return req;
}

struct bad_case {
    const char *line;
    const char *code;
    const char *message; /* NULL: any message */
};

/* Checks each case; prints every mismatch before failing. */
static void check_refused(const struct bad_case *cases, size_t n)
{
    size_t failed = 0;

    for (size_t i = 0; i < n; i++) {
        const struct bad_case *c = &cases[i];
        struct protocol_request req;
        struct protocol_error err = {0};
        int rc = protocol_parse(c->line, strlen(c->line), &req, &err);
        bool ok = rc == -1 && err.code != NULL && strcmp(err.code, c->code) == 0 &&
                  (c->message == NULL || strcmp(err.message, c->message) == 0);
        if (!ok) {
            failed++;
            print_message("%s: got %d %s \"%s\", want %s \"%s\"\n", c->line, rc,
                          rc == 0 ? "(accepted)" : err.code, rc == 0 ? "" : err.message, c->code,
                          c->message ? c->message : "*");
        }
    }
    assert_int_equal(failed, 0);
}

#define CHECK_REFUSED(cases) check_refused(cases, sizeof(cases) / sizeof(cases[0]))

/* ------------------------------------------------------------------------ */
/* Accepted requests */

static void test_every_command_parses(void **unused)
{
    static const struct {
        const char *line;
        enum protocol_cmd cmd;
    } cases[] = {
        {"{\"cmd\":\"status\"}", PROTOCOL_CMD_STATUS},
        {"{\"cmd\":\"weight\",\"percent\":10}", PROTOCOL_CMD_WEIGHT},
        {"{\"cmd\":\"pause\"}", PROTOCOL_CMD_PAUSE},
        {"{\"cmd\":\"resume\"}", PROTOCOL_CMD_RESUME},
        {"{\"cmd\":\"promote\"}", PROTOCOL_CMD_PROMOTE},
        {"{\"cmd\":\"rollback\"}", PROTOCOL_CMD_ROLLBACK},
        {"{\"cmd\":\"events\"}", PROTOCOL_CMD_EVENTS},
        {"{\"cmd\":\"server.disable\",\"server\":\"blue/b1\"}", PROTOCOL_CMD_SERVER_DISABLE},
        {"{\"cmd\":\"server.enable\",\"server\":\"blue/b1\"}", PROTOCOL_CMD_SERVER_ENABLE},
        {"{\"cmd\":\"server.drain\",\"server\":\"blue/b1\"}", PROTOCOL_CMD_SERVER_DRAIN},
        {"{\"cmd\":\"reload\"}", PROTOCOL_CMD_RELOAD},
        {"{\"cmd\":\"rollout.start\"}", PROTOCOL_CMD_ROLLOUT_START},
        {"{\"cmd\":\"rollout.status\"}", PROTOCOL_CMD_ROLLOUT_STATUS},
        {"{\"cmd\":\"rollout.report\"}", PROTOCOL_CMD_ROLLOUT_REPORT},
    };
    (void)unused;

    assert_int_equal(sizeof(cases) / sizeof(cases[0]), PROTOCOL_CMDS);
    for (size_t i = 0; i < PROTOCOL_CMDS; i++) {
        struct protocol_request req = parse_ok(cases[i].line);
        assert_int_equal(req.cmd, cases[i].cmd);
        /* protocol_cmd_name() gives the name the request used. */
        char want[64];
        snprintf(want, sizeof(want), "\"cmd\":\"%s\"", protocol_cmd_name(cases[i].cmd));
        assert_non_null(strstr(cases[i].line, want));
    }
    assert_string_equal(protocol_cmd_name(PROTOCOL_CMD_SERVER_DRAIN), "server.drain");
    assert_string_equal(protocol_cmd_name((enum protocol_cmd)PROTOCOL_CMDS), "?");
}

static void test_status_sets_nothing_else(void **unused)
{
    struct protocol_request zero;
    struct protocol_request req = parse_ok("  {\"cmd\" : \"status\"}  ");
    (void)unused;

    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&req, &zero, sizeof(req));
}

static void test_weight_boundaries(void **unused)
{
    static const struct {
        const char *percent;
        uint32_t bp;
    } cases[] = {
        {"0", 0},
        {"100", 10000},
        {"-0", 0},
        {"-0.0", 0},
        {"0.0", 0},
        {"0.01", 1},
        {"99.99", 9999},
        {"25.5", 2550},
        {"12.34", 1234},
        {"1e2", 10000},
        {"100.0", 10000},
        {"0.3", 30},
        {"33.33", 3333},
        {"1.10", 110},
        {"2.5e1", 2500},
        {"100.000", 10000},
        {"0.29", 29},
        {"57.57", 5757},
        {"1E-2", 1},
        {"50", 5000},
        /* Within a millionth of a basis point of one: rounding noise. */
        {"1e-300", 0},
    };
    (void)unused;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "{\"cmd\":\"weight\",\"percent\":%s}", cases[i].percent);
        struct protocol_request req = parse_ok(line);
        if (req.weight_bp != cases[i].bp)
            fail_msg("percent %s: got %u bp, want %u", cases[i].percent, req.weight_bp,
                     cases[i].bp);
    }
}

static void test_change_fields(void **unused)
{
    struct protocol_request req;
    (void)unused;

    req = parse_ok("{\"cmd\":\"weight\",\"percent\":25,\"reason\":\"more green\","
                   "\"expect_generation\":41}");
    assert_int_equal(req.cmd, PROTOCOL_CMD_WEIGHT);
    assert_int_equal(req.weight_bp, 2500);
    assert_string_equal(req.reason, "more green");
    assert_int_equal(req.expect_generation, 41);

    req = parse_ok("{\"cmd\":\"rollback\"}");
    assert_string_equal(req.reason, "");
    assert_int_equal(req.expect_generation, 0);

    req = parse_ok("{\"cmd\":\"pause\",\"expect_generation\":1,\"reason\":\"\"}");
    assert_int_equal(req.expect_generation, 1);
    assert_string_equal(req.reason, "");

    req = parse_ok("{\"cmd\":\"promote\",\"expect_generation\":9223372036854775807}");
    assert_true(req.expect_generation == 9223372036854775807ULL);

    /* UTF-8 and a tab-free, printable reason are kept byte for byte. */
    req = parse_ok("{\"cmd\":\"resume\",\"reason\":\"gr\\u00fcn \\u2713 ok\"}");
    assert_string_equal(req.reason, "gr\xc3\xbcn \xe2\x9c\x93 ok");
}

static void test_reason_length_limit(void **unused)
{
    char line[STATE_WHY_MAX + 64];
    char reason[STATE_WHY_MAX];
    struct protocol_request req;
    struct protocol_error err = {0};
    (void)unused;

    memset(reason, 'r', STATE_WHY_MAX - 1);
    reason[STATE_WHY_MAX - 1] = '\0';
    snprintf(line, sizeof(line), "{\"cmd\":\"rollback\",\"reason\":\"%s\"}", reason);
    req = parse_ok(line);
    assert_int_equal(strlen(req.reason), STATE_WHY_MAX - 1);

    snprintf(line, sizeof(line), "{\"cmd\":\"rollback\",\"reason\":\"%sr\"}", reason);
    assert_int_equal(protocol_parse(line, strlen(line), &req, &err), -1);
    assert_string_equal(err.code, "bad_request");
    assert_string_equal(err.message, "reason: at most 255 bytes");
}

static void test_events_fields(void **unused)
{
    struct protocol_request req;
    (void)unused;

    req = parse_ok("{\"cmd\":\"events\"}");
    assert_int_equal(req.since, 0);
    assert_false(req.follow);
    req = parse_ok("{\"cmd\":\"events\",\"since\":0,\"follow\":false}");
    assert_int_equal(req.since, 0);
    assert_false(req.follow);
    req = parse_ok("{\"cmd\":\"events\",\"since\":42,\"follow\":true}");
    assert_int_equal(req.since, 42);
    assert_true(req.follow);
}

static void test_server_fields(void **unused)
{
    char line[256];
    char name[PROTOCOL_SERVER_NAME_MAX + 1];
    struct protocol_request req;
    (void)unused;

    req = parse_ok("{\"cmd\":\"server.drain\",\"server\":\"blue/blue-1\"}");
    assert_int_equal(req.pool, CONF_BLUE);
    assert_string_equal(req.server, "blue-1");
    req = parse_ok("{\"cmd\":\"server.enable\",\"server\":\"green/g.2_x-Y\"}");
    assert_int_equal(req.pool, CONF_GREEN);
    assert_string_equal(req.server, "g.2_x-Y");

    /* The longest name the config accepts fits. */
    memset(name, 'n', PROTOCOL_SERVER_NAME_MAX);
    name[PROTOCOL_SERVER_NAME_MAX] = '\0';
    snprintf(line, sizeof(line), "{\"cmd\":\"server.disable\",\"server\":\"green/%s\"}", name);
    req = parse_ok(line);
    assert_string_equal(req.server, name);
}

static void test_rollout_start_fields(void **unused)
{
    struct protocol_request req;
    (void)unused;

    req = parse_ok("{\"cmd\":\"rollout.start\"}");
    assert_int_equal(req.nsteps, 0);
    assert_int_equal(req.step_s, 0);
    assert_string_equal(req.reason, "");
    assert_int_equal(req.expect_generation, 0);

    req = parse_ok("{\"cmd\":\"rollout.start\",\"steps\":[1,5,25,100],\"step_s\":60,"
                   "\"reason\":\"release 42\",\"expect_generation\":7}");
    assert_int_equal(req.nsteps, 4);
    assert_int_equal(req.steps_bp[0], 100);
    assert_int_equal(req.steps_bp[1], 500);
    assert_int_equal(req.steps_bp[2], 2500);
    assert_int_equal(req.steps_bp[3], 10000);
    assert_int_equal(req.step_s, 60);
    assert_string_equal(req.reason, "release 42");
    assert_int_equal(req.expect_generation, 7);

    /* 0.01 steps, a single step, and the limits of step_s. */
    req = parse_ok("{\"cmd\":\"rollout.start\",\"steps\":[0.01,12.5,100.0],\"step_s\":1}");
    assert_int_equal(req.nsteps, 3);
    assert_int_equal(req.steps_bp[0], 1);
    assert_int_equal(req.steps_bp[1], 1250);
    assert_int_equal(req.steps_bp[2], 10000);
    assert_int_equal(req.step_s, 1);
    req = parse_ok("{\"cmd\":\"rollout.start\",\"steps\":[100],\"step_s\":86400}");
    assert_int_equal(req.nsteps, 1);
    assert_int_equal(req.steps_bp[0], 10000);
    assert_int_equal(req.step_s, 86400);
}

/* The longest plan fits; one more step is refused. */
static void test_rollout_start_step_count(void **unused)
{
    char line[512];
    size_t len;
    struct protocol_request req;
    struct protocol_error err = {0};
    (void)unused;

    len = (size_t)snprintf(line, sizeof(line), "{\"cmd\":\"rollout.start\",\"steps\":[");
    for (int i = 1; i < PROTOCOL_STEPS_MAX; i++)
        len += (size_t)snprintf(line + len, sizeof(line) - len, "%d,", i);
    snprintf(line + len, sizeof(line) - len, "100]}");
    req = parse_ok(line);
    assert_int_equal(req.nsteps, PROTOCOL_STEPS_MAX);
    assert_int_equal(req.steps_bp[PROTOCOL_STEPS_MAX - 2], (PROTOCOL_STEPS_MAX - 1) * 100);
    assert_int_equal(req.steps_bp[PROTOCOL_STEPS_MAX - 1], 10000);

    snprintf(line + len, sizeof(line) - len, "99.5,100]}");
    assert_int_equal(protocol_parse(line, strlen(line), &req, &err), -1);
    assert_string_equal(err.code, "bad_request");
    assert_string_equal(err.message, "steps: expected 1..20 steps, got 21");
}

static void test_duplicates_whitespace_and_order(void **unused)
{
    struct protocol_request req;
    (void)unused;

    /* Keys in any order; "cmd" need not come first. */
    req = parse_ok("{\"percent\":5,\"cmd\":\"weight\"}");
    assert_int_equal(req.weight_bp, 500);
    req = parse_ok("\t{ \"cmd\": \"weight\", \"percent\": 5 }\r");
    assert_int_equal(req.weight_bp, 500);
    req = parse_ok("{\"step_s\":5,\"steps\":[50,100],\"cmd\":\"rollout.start\"}");
    assert_int_equal(req.cmd, PROTOCOL_CMD_ROLLOUT_START);
    assert_int_equal(req.nsteps, 2);
    assert_int_equal(req.step_s, 5);
}

/* ------------------------------------------------------------------------ */
/* Refused requests */

static void test_bad_json(void **unused)
{
    static const struct bad_case cases[] = {
        {"", "bad_json", NULL},
        {"{\"cmd\":\"status\"", "bad_json", NULL},
        {"not json at all", "bad_json", NULL},
        {"\"status\"", "bad_json", NULL},
        {"42", "bad_json", NULL},
        {"{\"cmd\":\"status\"} {}", "bad_json", NULL},
        {"{\"cmd\":\"status\",\"cmd\":\"status\"}", "bad_json", NULL},
        {"{\"cmd\":\"weight\",\"percent\":1e999}", "bad_json", NULL},
        {"{\"cmd\":\"weight\",\"percent\":NaN}", "bad_json", NULL},
        {"{\"cmd\":\"rollback\",\"expect_generation\":9223372036854775808}", "bad_json", NULL},
        {"{\"cmd\":\"status\",}", "bad_json", NULL},
        {"{'cmd':'status'}", "bad_json", NULL},
        {"{\"cmd\":\"\xff\"}", "bad_json", NULL},
        /* jansson refuses an escaped NUL itself: no C string is ever cut short. */
        {"{\"cmd\":\"stat\\u0000us\"}", "bad_json", NULL},
        {"{\"cmd\":\"rollback\",\"reason\":\"cut\\u0000here\"}", "bad_json", NULL},
        {"{\"cmd\":\"server.drain\",\"server\":\"blue/b\\u0000x\"}", "bad_json", NULL},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_bad_json_names_the_column(void **unused)
{
    struct protocol_request req;
    struct protocol_error err = {0};
    const char *line = "{\"cmd\":\"status\"";
    (void)unused;

    assert_int_equal(protocol_parse(line, strlen(line), &req, &err), -1);
    assert_string_equal(err.code, "bad_json");
    assert_true(strncmp(err.message, "column ", 7) == 0);
}

/* An embedded NUL does not end the line early: the whole length counts. */
static void test_nul_in_line(void **unused)
{
    static const char line[] = "{\"cmd\":\"status\"}\0garbage";
    struct protocol_request req;
    struct protocol_error err = {0};
    (void)unused;

    assert_int_equal(protocol_parse(line, sizeof(line) - 1, &req, &err), -1);
    assert_string_equal(err.code, "bad_json");
}

static void test_bad_cmd(void **unused)
{
    static const struct bad_case cases[] = {
        {"[1,2]", "bad_request", "expected a JSON object"},
        {"[]", "bad_request", "expected a JSON object"},
        {"{}", "bad_request", "cmd: required"},
        {"{\"percent\":10}", "bad_request", "cmd: required"},
        {"{\"cmd\":1}", "bad_request", "cmd: expected a string"},
        {"{\"cmd\":null}", "bad_request", "cmd: expected a string"},
        {"{\"cmd\":[\"status\"]}", "bad_request", "cmd: expected a string"},
        {"{\"cmd\":\"fly\"}", "unknown_command", "unknown command \"fly\""},
        {"{\"cmd\":\"Status\"}", "unknown_command", "unknown command \"Status\""},
        {"{\"cmd\":\"\"}", "unknown_command", "unknown command \"\""},
        {"{\"cmd\":\"server\"}", "unknown_command", "unknown command \"server\""},
        {"{\"cmd\":\"status \"}", "unknown_command", "unknown command \"status \""},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_unknown_keys(void **unused)
{
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"status\",\"verbose\":true}", "bad_request", "verbose: unknown key for status"},
        {"{\"cmd\":\"status\",\"\":1}", "bad_request", ": unknown key for status"},
        {"{\"cmd\":\"weight\",\"\":1,\"percent\":5}", "bad_request", ": unknown key for weight"},
        {"{\"cmd\":\"weight\",\"percent\":10,\"colour\":\"green\"}", "bad_request",
         "colour: unknown key for weight"},
        /* Whole words only: neither a prefix nor an extension matches. */
        {"{\"cmd\":\"weight\",\"per\":10}", "bad_request", "per: unknown key for weight"},
        {"{\"cmd\":\"weight\",\"percents\":10}", "bad_request", "percents: unknown key for weight"},
        {"{\"cmd\":\"weight\",\"percent reason\":10}", "bad_request",
         "percent reason: unknown key for weight"},
        {"{\"cmd\":\"weight\",\"Percent\":10}", "bad_request", "Percent: unknown key for weight"},
        {"{\"cmd\":\"pause\",\"percent\":10}", "bad_request", "percent: unknown key for pause"},
        {"{\"cmd\":\"rollback\",\"since\":1}", "bad_request", "since: unknown key for rollback"},
        {"{\"cmd\":\"events\",\"reason\":\"x\"}", "bad_request", "reason: unknown key for events"},
        {"{\"cmd\":\"server.drain\",\"server\":\"blue/b1\",\"reason\":\"x\"}", "bad_request",
         "reason: unknown key for server.drain"},
        {"{\"cmd\":\"reload\",\"force\":true}", "bad_request", "force: unknown key for reload"},
        {"{\"cmd\":\"reload\",\"reason\":\"x\"}", "bad_request", "reason: unknown key for reload"},
        {"{\"cmd\":\"rollout.start\",\"step\":60}", "bad_request",
         "step: unknown key for rollout.start"},
        {"{\"cmd\":\"rollout.start\",\"percent\":5}", "bad_request",
         "percent: unknown key for rollout.start"},
        {"{\"cmd\":\"rollout.status\",\"verbose\":true}", "bad_request",
         "verbose: unknown key for rollout.status"},
        {"{\"cmd\":\"rollout.report\",\"json\":true}", "bad_request",
         "json: unknown key for rollout.report"},
        {"{\"cmd\":\"rollout.report\",\"reason\":\"x\"}", "bad_request",
         "reason: unknown key for rollout.report"},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_bad_percent(void **unused)
{
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"weight\"}", "bad_request", "percent: required"},
        {"{\"cmd\":\"weight\",\"percent\":\"25\"}", "bad_request", "percent: expected a number"},
        {"{\"cmd\":\"weight\",\"percent\":null}", "bad_request", "percent: expected a number"},
        {"{\"cmd\":\"weight\",\"percent\":true}", "bad_request", "percent: expected a number"},
        {"{\"cmd\":\"weight\",\"percent\":[25]}", "bad_request", "percent: expected a number"},
        {"{\"cmd\":\"weight\",\"percent\":100.001}", "bad_request",
         "percent: expected 0..100, got 100.001"},
        {"{\"cmd\":\"weight\",\"percent\":100.01}", "bad_request",
         "percent: expected 0..100, got 100.01"},
        {"{\"cmd\":\"weight\",\"percent\":101}", "bad_request",
         "percent: expected 0..100, got 101"},
        {"{\"cmd\":\"weight\",\"percent\":-1}", "bad_request", "percent: expected 0..100, got -1"},
        {"{\"cmd\":\"weight\",\"percent\":-0.01}", "bad_request",
         "percent: expected 0..100, got -0.01"},
        {"{\"cmd\":\"weight\",\"percent\":1e308}", "bad_request",
         "percent: expected 0..100, got 1e+308"},
        {"{\"cmd\":\"weight\",\"percent\":-1e308}", "bad_request",
         "percent: expected 0..100, got -1e+308"},
        {"{\"cmd\":\"weight\",\"percent\":12.345}", "bad_request",
         "percent: at most two decimals (got 12.345000000000001)"},
        {"{\"cmd\":\"weight\",\"percent\":0.001}", "bad_request",
         "percent: at most two decimals (got 0.001)"},
        {"{\"cmd\":\"weight\",\"percent\":99.999}", "bad_request",
         "percent: at most two decimals (got 99.998999999999995)"},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_bad_reason(void **unused)
{
    static const char control[] =
        "reason: must not contain control characters (NUL, newline, ESC...)";
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"rollback\",\"reason\":5}", "bad_request", "reason: expected a string"},
        {"{\"cmd\":\"rollback\",\"reason\":null}", "bad_request", "reason: expected a string"},
        {"{\"cmd\":\"rollback\",\"reason\":[\"x\"]}", "bad_request", "reason: expected a string"},
        {"{\"cmd\":\"rollback\",\"reason\":\"ok\\n2026 fake event\"}", "bad_request", control},
        {"{\"cmd\":\"rollback\",\"reason\":\"a\\rb\"}", "bad_request", control},
        {"{\"cmd\":\"rollback\",\"reason\":\"a\\tb\"}", "bad_request", control},
        {"{\"cmd\":\"rollback\",\"reason\":\"\\u001b[31mred\"}", "bad_request", control},
        {"{\"cmd\":\"rollback\",\"reason\":\"del\\u007f\"}", "bad_request", control},
        {"{\"cmd\":\"rollback\",\"reason\":\"\\u0001\"}", "bad_request", control},
        {"{\"cmd\":\"weight\",\"percent\":5,\"reason\":\"x\\n\"}", "bad_request", control},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_bad_expect_generation(void **unused)
{
    static const char want[] = "expect_generation: expected an integer >= 1";
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"rollback\",\"expect_generation\":0}", "bad_request", want},
        {"{\"cmd\":\"rollback\",\"expect_generation\":-1}", "bad_request", want},
        {"{\"cmd\":\"rollback\",\"expect_generation\":-9223372036854775808}", "bad_request", want},
        {"{\"cmd\":\"rollback\",\"expect_generation\":1.0}", "bad_request", want},
        {"{\"cmd\":\"rollback\",\"expect_generation\":1.5}", "bad_request", want},
        {"{\"cmd\":\"rollback\",\"expect_generation\":\"3\"}", "bad_request", want},
        {"{\"cmd\":\"rollback\",\"expect_generation\":null}", "bad_request", want},
        {"{\"cmd\":\"weight\",\"percent\":10,\"expect_generation\":0}", "bad_request", want},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

/* Fields are checked in a fixed order: reason, expect_generation, percent. */
static void test_first_problem_wins(void **unused)
{
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"weight\",\"percent\":500,\"reason\":1,\"expect_generation\":0}", "bad_request",
         "reason: expected a string"},
        {"{\"cmd\":\"weight\",\"percent\":500,\"expect_generation\":0}", "bad_request",
         "expect_generation: expected an integer >= 1"},
        {"{\"cmd\":\"weight\",\"percent\":500,\"bogus\":1}", "bad_request",
         "bogus: unknown key for weight"},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_bad_events(void **unused)
{
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"events\",\"since\":-1}", "bad_request", "since: expected an integer >= 0"},
        {"{\"cmd\":\"events\",\"since\":1.0}", "bad_request", "since: expected an integer >= 0"},
        {"{\"cmd\":\"events\",\"since\":\"1\"}", "bad_request", "since: expected an integer >= 0"},
        {"{\"cmd\":\"events\",\"follow\":\"yes\"}", "bad_request",
         "follow: expected true or false"},
        {"{\"cmd\":\"events\",\"follow\":1}", "bad_request", "follow: expected true or false"},
        {"{\"cmd\":\"events\",\"follow\":null}", "bad_request", "follow: expected true or false"},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_bad_rollout_start(void **unused)
{
    static const char step_s[] = "step_s: expected an integer 1..86400 (seconds)";
    static const char not_array[] = "steps: expected an array of percentages, e.g. [1,5,25,100]";
#define START "{\"cmd\":\"rollout.start\","
    static const struct bad_case cases[] = {
        {START "\"steps\":[1,5,5,100]}", "bad_request",
         "steps[2]: steps must increase: 5 follows 5"},
        {START "\"steps\":[25,5,100]}", "bad_request",
         "steps[1]: steps must increase: 5 follows 25"},
        {START "\"steps\":[0.5,0.25,100]}", "bad_request",
         "steps[1]: steps must increase: 0.25 follows 0.5"},
        {START "\"steps\":[1,5,25]}", "bad_request", "steps: the last step must be 100 (got 25)"},
        {START "\"steps\":[99.99]}", "bad_request", "steps: the last step must be 100 (got 99.99)"},
        {START "\"steps\":[0,100]}", "bad_request",
         "steps[0]: expected more than 0 and at most 100, got 0"},
        {START "\"steps\":[-5,100]}", "bad_request",
         "steps[0]: expected more than 0 and at most 100, got -5"},
        {START "\"steps\":[5,101]}", "bad_request",
         "steps[1]: expected more than 0 and at most 100, got 101"},
        {START "\"steps\":[5,100.01]}", "bad_request",
         "steps[1]: expected more than 0 and at most 100, got 100.01"},
        {START "\"steps\":[1.005,100]}", "bad_request",
         "steps[0]: at most two decimals (got 1.0049999999999999)"},
        {START "\"steps\":[1e-300,100]}", "bad_request",
         "steps[0]: expected at least 0.01, got 1e-300"},
        {START "\"steps\":[]}", "bad_request", "steps: expected 1..20 steps, got 0"},
        {START "\"steps\":[\"1\",100]}", "bad_request", "steps[0]: expected a number"},
        {START "\"steps\":[1,null]}", "bad_request", "steps[1]: expected a number"},
        {START "\"steps\":[1,[5],100]}", "bad_request", "steps[1]: expected a number"},
        {START "\"steps\":\"1,5,100\"}", "bad_request", not_array},
        {START "\"steps\":100}", "bad_request", not_array},
        {START "\"steps\":null}", "bad_request", not_array},
        {START "\"steps\":{\"0\":100}}", "bad_request", not_array},
        {START "\"step_s\":0}", "bad_request", step_s},
        {START "\"step_s\":-1}", "bad_request", step_s},
        {START "\"step_s\":86401}", "bad_request", step_s},
        {START "\"step_s\":1.5}", "bad_request", step_s},
        {START "\"step_s\":60.0}", "bad_request", step_s},
        {START "\"step_s\":\"60\"}", "bad_request", step_s},
        {START "\"step_s\":null}", "bad_request", step_s},
        {START "\"reason\":5}", "bad_request", "reason: expected a string"},
        {START "\"reason\":\"a\\nb\"}", "bad_request",
         "reason: must not contain control characters (NUL, newline, ESC...)"},
        {START "\"expect_generation\":0}", "bad_request",
         "expect_generation: expected an integer >= 1"},
        /* Checked in a fixed order: reason, expect_generation, steps, step_s. */
        {START "\"step_s\":0,\"steps\":[5],\"expect_generation\":0}", "bad_request",
         "expect_generation: expected an integer >= 1"},
        {START "\"step_s\":0,\"steps\":[5]}", "bad_request",
         "steps: the last step must be 100 (got 5)"},
    };
#undef START
    (void)unused;

    CHECK_REFUSED(cases);
}

static void test_bad_server(void **unused)
{
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"server.drain\"}", "bad_request",
         "server: required (POOL/NAME, e.g. blue/blue-1)"},
        {"{\"cmd\":\"server.disable\",\"server\":5}", "bad_request",
         "server: expected a string POOL/NAME"},
        {"{\"cmd\":\"server.enable\",\"server\":null}", "bad_request",
         "server: expected a string POOL/NAME"},
        {"{\"cmd\":\"server.drain\",\"server\":\"blue-1\"}", "bad_request",
         "server: expected POOL/NAME (e.g. blue/blue-1), got \"blue-1\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"\"}", "bad_request",
         "server: expected POOL/NAME (e.g. blue/blue-1), got \"\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"blue/b\\n1\"}", "bad_request",
         "server: expected POOL/NAME (e.g. blue/blue-1), got \"blue/b\n1\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"red/r1\"}", "bad_request",
         "server: the pool must be blue or green, got \"red\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"/b1\"}", "bad_request",
         "server: the pool must be blue or green, got \"\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"Blue/b1\"}", "bad_request",
         "server: the pool must be blue or green, got \"Blue\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"bluegreen/b1\"}", "bad_request",
         "server: the pool must be blue or green, got \"bluegreen\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"blu/b1\"}", "bad_request",
         "server: the pool must be blue or green, got \"blu\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"blue/\"}", "bad_request",
         "server: the name must be 1..64 letters, digits, '.', '_' or '-', got \"\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"blue/a/b\"}", "bad_request",
         "server: the name must be 1..64 letters, digits, '.', '_' or '-', got \"a/b\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"green/a b\"}", "bad_request",
         "server: the name must be 1..64 letters, digits, '.', '_' or '-', got \"a b\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"green/gr\\u00fcn\"}", "bad_request",
         "server: the name must be 1..64 letters, digits, '.', '_' or '-', got \"gr\xc3\xbcn\""},
        {"{\"cmd\":\"server.drain\",\"server\":\"green/"
         "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\"}",
         "bad_request",
         "server: the name must be 1..64 letters, digits, '.', '_' or '-', got "
         "\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\""},
    };
    (void)unused;

    CHECK_REFUSED(cases);
}

/* A message quoting a huge or odd client string stays bounded and valid
 * UTF-8, even when the cut lands inside a multi-byte character. */
static void test_long_quoted_message(void **unused)
{
    size_t n = 3000;
    char *line = malloc(n * 2 + 32);
    struct protocol_request req;
    struct protocol_error err = {0};
    (void)unused;

    assert_non_null(line);
    size_t len = (size_t)sprintf(line, "{\"cmd\":\"x");
    for (size_t i = 0; i < n; i++) {
        line[len++] = '\xc3';
        line[len++] = '\xa9'; /* é */
    }
    len += (size_t)sprintf(line + len, "\"}");
    assert_int_equal(protocol_parse(line, len, &req, &err), -1);
    assert_string_equal(err.code, "unknown_command");
    assert_true(strlen(err.message) < PROTOCOL_MESSAGE_MAX);
    json_t *s = json_string(err.message);
    assert_non_null(s); /* jansson refuses invalid UTF-8 */
    json_decref(s);
    free(line);
}

/* ------------------------------------------------------------------------ */
/* Replies */

static char *dump(json_t *j)
{
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    assert_non_null(text);
    return text;
}

static void test_error_reply(void **unused)
{
    (void)unused;

    char *text = dump(protocol_error_reply("conflict", "expected generation %d", 7));
    assert_string_equal(text, "{\"error\":{\"code\":\"conflict\",\"message\":\"expected "
                              "generation 7\"},\"ok\":false}");
    free(text);
    /* Invalid UTF-8 from a caller's bytes becomes '?' instead of no reply. */
    text = dump(protocol_error_reply("bad_request", "got \"%s\"",
                                     "a\xff"
                                     "b"));
    assert_string_equal(text,
                        "{\"error\":{\"code\":\"bad_request\",\"message\":\"got \\\"a?b\\\"\"},"
                        "\"ok\":false}");
    free(text);
}

static struct state sample_state(void)
{
    struct state s;

    memset(&s, 0, sizeof(s));
    s.stable = CONF_GREEN;
    s.candidate_bp = 2550;
    s.phase = STATE_PAUSED;
    s.step = 3;
    s.generation = 42;
    snprintf(s.updated_by, sizeof(s.updated_by), "uid:1000");
    snprintf(s.reason, sizeof(s.reason), "hold");
    s.updated_ms = 1795000000123LL;
    return s;
}

static void test_state_reply(void **unused)
{
    struct state s = sample_state();
    (void)unused;

    char *text = dump(protocol_state_reply(&s));
    assert_string_equal(text, "{\"ok\":true,\"state\":{\"candidate\":\"blue\","
                              "\"candidate_percent\":25.5,\"generation\":42,\"phase\":\"paused\","
                              "\"reason\":\"hold\",\"stable\":\"green\",\"step\":3,"
                              "\"updated_at\":\"2026-11-18T11:06:40.123Z\","
                              "\"updated_by\":\"uid:1000\"}}");
    free(text);
}

/* A snapshot of blue b1 (weight 3) and green g1, g2 (weights 1, 2). */
static struct snapshot *sample_snapshot(void)
{
    static const char text[] =
        "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}], \"pools\": {"
        "\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": \"127.0.0.1:9001\", "
        "\"weight\": 3}]}, "
        "\"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": \"127.0.0.1:9002\"}, "
        "{\"name\": \"g2\", \"addr\": \"127.0.0.1:9003\", \"weight\": 2}]}}}";
    struct conf_errors errs = {0};
    struct config *cfg = config_load_string(text, sizeof(text) - 1, "t.json", "/", &errs);
    struct snapshot *snap;

    conf_errors_clear(&errs);
    assert_non_null(cfg);
    snap = snapshot_new(cfg, 2, NULL);
    assert_non_null(snap);
    return snap;
}

static void test_status_reply(void **unused)
{
    struct state s = sample_state();
    struct snapshot *snap = sample_snapshot();
    struct server_state *g2 = snapshot_server(snap, CONF_GREEN, "g2");
    (void)unused;

    atomic_store(&g2->admin, SERVER_DRAINING);
    atomic_store(&g2->health, SERVER_DOWN);
    server_state_busy_add(g2, 0, 2);
    server_state_busy_add(g2, 1, 1);
    json_t *r = protocol_status_reply(&s, false, snap, NULL);
    assert_non_null(r);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_true(json_is_false(json_object_get(r, "persisted")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "state"), "generation")),
                     42);
    char *text = dump(json_incref(json_object_get(r, "pools")));
    assert_string_equal(
        text, "{\"blue\":{\"role\":\"candidate\",\"servers\":[{\"addr\":\"127.0.0.1:9001\","
              "\"admin\":\"enabled\",\"health\":\"up\",\"in_flight\":0,\"name\":\"b1\","
              "\"pool\":\"blue\",\"weight\":3}]},\"green\":{\"role\":\"stable\",\"servers\":[{"
              "\"addr\":\"127.0.0.1:9002\",\"admin\":\"enabled\",\"health\":\"up\","
              "\"in_flight\":0,\"name\":\"g1\",\"pool\":\"green\",\"weight\":1},{\"addr\":"
              "\"127.0.0.1:9003\",\"admin\":\"draining\",\"health\":\"down\",\"in_flight\":3,"
              "\"name\":\"g2\",\"pool\":\"green\",\"weight\":2}]}}");
    free(text);
    json_decref(r);
    server_state_busy_add(g2, 0, -2);
    server_state_busy_add(g2, 1, -1);
    text = dump(protocol_server_reply(snap, CONF_GREEN, 1, NULL));
    assert_string_equal(text, "{\"ok\":true,\"server\":{\"addr\":\"127.0.0.1:9003\",\"admin\":"
                              "\"draining\",\"health\":\"down\",\"in_flight\":0,\"name\":"
                              "\"g2\",\"pool\":\"green\",\"weight\":2}}");
    free(text);
    snapshot_unref(snap);
}

/* As switchyard does: the checks write the server's health flag. */
static void set_health_cb(void *handle, bool up, const char *why, void *arg)
{
    struct server_state *st = handle;

    atomic_store(&st->health, up ? SERVER_UP : SERVER_DOWN);
}

/* A loopback address nothing listens on: a port bound, then let go. */
static struct conf_addr closed_addr(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    char text[32];
    struct conf_addr addr;
    const char *why;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sin.sin_port));
    assert_int_equal(conf_addr_parse(text, &addr, &why), 0);
    return addr;
}

/* A server the checks have seen gets "checked" and "checked_at"; one they
 * have not, neither. */
static void test_server_check_result(void **unused)
{
    struct snapshot *snap = sample_snapshot();
    struct event_base *base = event_base_new();
    struct health_checker *hc = health_checker_new(base, set_health_cb, NULL);
    struct conf_server g1 = snap->cfg->pools[CONF_GREEN].servers[0];
    struct conf_health h = {.enabled = true,
                            .path = "/healthz",
                            .interval_ms = 100,
                            .timeout_ms = 50,
                            .rise = 1,
                            .fall = 1,
                            .expect_status = 200};
    struct health_target t = {
        .pool = CONF_GREEN, .server = &g1, .handle = snap->servers[CONF_GREEN][0]};
    const struct health_status *st;
    (void)unused;

    assert_non_null(hc);
    g1.addr = closed_addr();
    assert_int_equal(health_checker_set(hc, &h, &t, 1), 0);
    st = health_checker_status(hc, CONF_GREEN, "g1");
    assert_non_null(st);
    for (int i = 0; i < 200 && !st->checked; i++) { /* at most 2 s */
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    json_t *g = protocol_server_json(snap, CONF_GREEN, 0, hc);
    assert_string_equal(json_string_value(json_object_get(g, "health")), "down");
    assert_string_equal(json_string_value(json_object_get(g, "checked")), "connect refused");
    assert_true(json_is_string(json_object_get(g, "checked_at")));
    json_decref(g);
    json_t *b = protocol_server_json(snap, CONF_BLUE, 0, hc);
    assert_string_equal(json_string_value(json_object_get(b, "health")), "up");
    assert_null(json_object_get(b, "checked"));
    json_decref(b);
    health_checker_free(hc);
    event_base_free(base);
    snapshot_unref(snap);
}

static void test_reload_replies(void **unused)
{
    struct conf_errors list = {0};
    char *text;
    (void)unused;

    text = dump(protocol_reload_reply(3, &list));
    assert_string_equal(text, "{\"notes\":[],\"ok\":true,\"reloads\":3}");
    free(text);
    conf_errors_add(&list, "a.json:1:2: bogus: unknown key");
    text = dump(protocol_reload_refused(&list));
    assert_string_equal(text, "{\"error\":{\"code\":\"bad_config\",\"details\":[\"a.json:1:2: "
                              "bogus: unknown key\"],\"message\":\"a.json:1:2: bogus: unknown "
                              "key\"},\"ok\":false}");
    free(text);
    conf_errors_add(&list, "a.json: listen: changed \xff\xfe");
    text = dump(protocol_reload_refused(&list));
    assert_non_null(strstr(text, "\"message\":\"a.json:1:2: bogus: unknown key (and 1 more)\""));
    assert_non_null(strstr(text, "\"a.json: listen: changed ??\"]")); /* valid UTF-8 only */
    free(text);
    /* A thousand problems still fit in one line. */
    for (int i = 0; i < 1000; i++)
        conf_errors_add(&list, "a.json:%d:1: k%d: %0400d", i, i, 0);
    text = dump(protocol_reload_refused(&list));
    assert_true(strlen(text) < 65536);
    assert_non_null(strstr(text, "(and 1001 more)"));
    free(text);
    conf_errors_clear(&list);
}

static json_t *numbered_events(size_t n)
{
    json_t *list = json_array();

    for (size_t i = 1; i <= n; i++)
        json_array_append_new(list, json_pack("{s:I, s:s}", "generation", (json_int_t)i, "pad",
                                              "................................"));
    return list;
}

static void test_events_reply_fits_a_line(void **unused)
{
    (void)unused;

    char *text = dump(protocol_events_reply(json_array(), 65536));
    assert_string_equal(text, "{\"events\":[],\"ok\":true,\"truncated\":false}");
    free(text);

    json_t *r = protocol_events_reply(numbered_events(3), 65536);
    assert_false(json_is_true(json_object_get(r, "truncated")));
    assert_int_equal(json_array_size(json_object_get(r, "events")), 3);
    json_decref(r);

    /* 100 events of ~50 bytes in a 1000-byte line: the newest that fit. */
    r = protocol_events_reply(numbered_events(100), 1000);
    json_t *list = json_object_get(r, "events");
    assert_true(json_is_true(json_object_get(r, "truncated")));
    assert_true(json_array_size(list) > 0 && json_array_size(list) < 100);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(list, json_array_size(list) - 1), "generation")),
                     100);
    text = dump(r);
    assert_true(strlen(text) <= 1000);
    free(text);

    assert_null(protocol_events_reply(NULL, 1000));
}

static void test_event_line(void **unused)
{
    (void)unused;

    char *text = dump(protocol_event_line(json_pack("{s:i}", "generation", 3)));
    assert_string_equal(text, "{\"event\":{\"generation\":3}}");
    free(text);
    assert_null(protocol_event_line(NULL));
}

static void test_state_codes(void **unused)
{
    (void)unused;

    assert_string_equal(protocol_code_of_state("bad_argument"), "bad_request");
    assert_string_equal(protocol_code_of_state(NULL), "bad_request");
    assert_string_equal(protocol_code_of_state("conflict"), "conflict");
    assert_string_equal(protocol_code_of_state("illegal_transition"), "illegal_transition");
    assert_string_equal(protocol_code_of_state("persist_failed"), "persist_failed");
}

static void test_events_local(void **unused)
{
    static const struct bad_case cases[] = {
        {"{\"cmd\":\"events\",\"local\":\"yes\"}", "bad_request", "local: expected true or false"},
        {"{\"cmd\":\"events\",\"local\":1}", "bad_request", "local: expected true or false"},
        {"{\"cmd\":\"status\",\"local\":true}", "bad_request", "local: unknown key for status"},
    };
    struct protocol_request req;
    (void)unused;

    req = parse_ok("{\"cmd\":\"events\"}");
    assert_false(req.local);
    req = parse_ok("{\"cmd\":\"events\",\"local\":false}");
    assert_false(req.local);
    req = parse_ok("{\"cmd\":\"events\",\"local\":true,\"since\":7,\"follow\":true}");
    assert_true(req.local);
    assert_true(req.follow);
    assert_int_equal(req.since, 7);
    CHECK_REFUSED(cases);
}

static void test_events_since_filter(void **unused)
{
    json_t *list = numbered_events(5);
    (void)unused;

    /* Events of the fleet's stream come with an instance; one lacks a
     * generation: it cannot be placed after any. */
    json_array_insert_new(list, 2, json_pack("{s:s}", "instance", "vm:1"));
    protocol_events_since(list, 0);
    assert_int_equal(json_array_size(list), 6);
    protocol_events_since(list, 3);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "generation")), 4);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "generation")), 5);
    protocol_events_since(list, 5);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command_parses),
        cmocka_unit_test(test_status_sets_nothing_else),
        cmocka_unit_test(test_weight_boundaries),
        cmocka_unit_test(test_change_fields),
        cmocka_unit_test(test_reason_length_limit),
        cmocka_unit_test(test_events_fields),
        cmocka_unit_test(test_server_fields),
        cmocka_unit_test(test_rollout_start_fields),
        cmocka_unit_test(test_rollout_start_step_count),
        cmocka_unit_test(test_duplicates_whitespace_and_order),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_json_names_the_column),
        cmocka_unit_test(test_nul_in_line),
        cmocka_unit_test(test_bad_cmd),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_bad_percent),
        cmocka_unit_test(test_bad_reason),
        cmocka_unit_test(test_bad_expect_generation),
        cmocka_unit_test(test_first_problem_wins),
        cmocka_unit_test(test_bad_events),
        cmocka_unit_test(test_bad_rollout_start),
        cmocka_unit_test(test_bad_server),
        cmocka_unit_test(test_long_quoted_message),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_state_reply),
        cmocka_unit_test(test_status_reply),
        cmocka_unit_test(test_server_check_result),
        cmocka_unit_test(test_reload_replies),
        cmocka_unit_test(test_events_reply_fits_a_line),
        cmocka_unit_test(test_event_line),
        cmocka_unit_test(test_state_codes),
        cmocka_unit_test(test_events_local),
        cmocka_unit_test(test_events_since_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
