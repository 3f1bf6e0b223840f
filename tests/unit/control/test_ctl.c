/* test_ctl.c - switchyardctl: command lines, human output, and the real
 * binary against a fake control socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control/ctl_cmd.h"
#include "control/ctl_render.h"

#ifndef SY_CTL_BINARY
#error "SY_CTL_BINARY must name the switchyardctl binary"
#endif

/* ---- argument parsing ---------------------------------------------------- */

#define MAX_ARGS 16

/* Parses the words of line (split on spaces; no quoting) as a command line.
 * On success *json is the request as compact JSON with sorted keys (new). */
static int parse_line(const char *line, struct ctl_options *o, char **json, char *err,
                      size_t err_len)
{
    char buf[512];
    char *argv[MAX_ARGS] = {"switchyardctl"};
    int argc = 1;
    json_t *req = NULL;
    int rc;

    snprintf(buf, sizeof(buf), "%s", line);
    for (char *save, *w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    rc = ctl_parse_args(argc, argv, o, &req, err, err_len);
    *json = NULL;
    if (rc == 0) {
        assert_non_null(req);
        *json = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    } else {
        assert_null(req);
    }
    json_decref(req);
    return rc;
}

/* Asserts that line parses into exactly the request want. */
static void expect_request(const char *line, const char *want)
{
    struct ctl_options o;
    char err[256];
    char *json;

    if (parse_line(line, &o, &json, err, sizeof(err)) != 0)
        fail_msg("\"%s\" refused: %s", line, err);
    assert_string_equal(json, want);
    free(json);
}

/* Asserts that line is a usage error whose message contains part. */
static void expect_usage_error(const char *line, const char *part)
{
    struct ctl_options o;
    char err[256];
    char *json;

    if (parse_line(line, &o, &json, err, sizeof(err)) != -1)
        fail_msg("\"%s\" accepted as %s", line, json ? json : "(help)");
    if (strstr(err, part) == NULL)
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", line, err, part);
}

static void test_percent(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint32_t bp;
    } cases[] = {
        {"0", 0, 0},       {"25", 0, 2500},      {"12.5", 0, 1250},  {"0.01", 0, 1},
        {"100", 0, 10000}, {"100.00", 0, 10000}, {"99.99", 0, 9999}, {"007", 0, 700},
        {"abc", -1, 0},    {"150", -1, 0},       {"12.345", -1, 0},  {"100.01", -1, 0},
        {"-1", -1, 0},     {"", -1, 0},          {"12.", -1, 0},     {".5", -1, 0},
        {"1e2", -1, 0},    {"25%", -1, 0},       {"101", -1, 0},     {"99999999999", -1, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t bp = 77777;
        int rc = ctl_parse_percent(cases[i].s, &bp);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].s, rc, cases[i].rc);
        if (rc == 0 && bp != cases[i].bp)
            fail_msg("\"%s\": %u bp, want %u", cases[i].s, bp, cases[i].bp);
    }
}

static void test_parse_commands(void **state)
{
    expect_request("status", "{\"cmd\":\"status\"}");
    expect_request("weight 25", "{\"cmd\":\"weight\",\"percent\":25}");
    expect_request("weight 12.34", "{\"cmd\":\"weight\",\"percent\":12.34}");
    expect_request("weight 0.5 --reason canary --if-generation 41",
                   "{\"cmd\":\"weight\",\"expect_generation\":41,\"percent\":0.5,"
                   "\"reason\":\"canary\"}");
    expect_request("weight --reason=why 7",
                   "{\"cmd\":\"weight\",\"percent\":7,\"reason\":\"why\"}");
    expect_request("pause", "{\"cmd\":\"pause\"}");
    expect_request("resume --reason go", "{\"cmd\":\"resume\",\"reason\":\"go\"}");
    expect_request("promote --if-generation 9", "{\"cmd\":\"promote\",\"expect_generation\":9}");
    expect_request("rollback --reason 5xx", "{\"cmd\":\"rollback\",\"reason\":\"5xx\"}");
    expect_request("events", "{\"cmd\":\"events\",\"follow\":false}");
    expect_request("events --since 3 --follow", "{\"cmd\":\"events\",\"follow\":true,\"since\":3}");
    expect_request("server disable blue/blue-1",
                   "{\"cmd\":\"server.disable\",\"server\":\"blue/blue-1\"}");
    expect_request("server enable green/g", "{\"cmd\":\"server.enable\",\"server\":\"green/g\"}");
    expect_request("server drain blue/b1", "{\"cmd\":\"server.drain\",\"server\":\"blue/b1\"}");
    expect_request("reload", "{\"cmd\":\"reload\"}");
    expect_request("rollout start", "{\"cmd\":\"rollout.start\"}");
    expect_request("rollout status", "{\"cmd\":\"rollout.status\"}");
    expect_request("rollout report", "{\"cmd\":\"rollout.report\"}");
}

static void test_parse_rollout(void **state)
{
    struct ctl_options o;
    char err[256];
    char *json;

    expect_request("rollout start --steps 1,5,25,100 --step-s 60 --reason r --if-generation 3",
                   "{\"cmd\":\"rollout.start\",\"expect_generation\":3,\"reason\":\"r\","
                   "\"step_s\":60,\"steps\":[1,5,25,100]}");
    expect_request("rollout start --steps=0.01,12.5,99.99,100",
                   "{\"cmd\":\"rollout.start\",\"steps\":[0.01,12.5,99.99,100]}");
    expect_request("rollout start --steps 100 --step-s=86400",
                   "{\"cmd\":\"rollout.start\",\"step_s\":86400,\"steps\":[100]}");
    expect_request("rollout start --step-s 1", "{\"cmd\":\"rollout.start\",\"step_s\":1}");
    expect_request("rollout start --steps "
                   "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,100",
                   "{\"cmd\":\"rollout.start\",\"steps\":"
                   "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,100]}");

    /* --json is global: report --json asks for the raw reply. */
    assert_int_equal(parse_line("rollout report --json", &o, &json, err, sizeof(err)), 0);
    assert_true(o.json);
    assert_string_equal(o.cmd, "rollout.report");
    free(json);
}

static void test_parse_rollout_errors(void **state)
{
    static const char bad_step[] = "--steps: expected percentages 0.01..100 with at most two "
                                   "decimals, separated by commas (e.g. 1,5,25,100), got ";

    expect_usage_error("rollout",
                       "rollout: missing sub-command (expected start, status or report)");
    expect_usage_error("rollout stop",
                       "rollout: unknown sub-command \"stop\" (expected start, status or report)");
    expect_usage_error("rollout start now", "rollout: unexpected argument \"now\"");
    expect_usage_error("rollout start --steps 5,1,100",
                       "--steps: steps must increase: 1 follows 5");
    expect_usage_error("rollout start --steps 5,5,100",
                       "--steps: steps must increase: 5 follows 5");
    expect_usage_error("rollout start --steps 1,5,25",
                       "--steps: the last step must be 100, got 25");
    expect_usage_error("rollout start --steps 100,100", "steps must increase: 100 follows 100");
    expect_usage_error("rollout start --steps 0,100", bad_step);
    expect_usage_error("rollout start --steps 0,100", "got \"0\"");
    expect_usage_error("rollout start --steps 1,,100", "got \"\"");
    expect_usage_error("rollout start --steps 1,100,", "got \"\"");
    expect_usage_error("rollout start --steps=", "got \"\"");
    expect_usage_error("rollout start --steps 1,abc,100", "got \"abc\"");
    expect_usage_error("rollout start --steps 1,150", "got \"150\"");
    expect_usage_error("rollout start --steps 1.005,100", "got \"1.005\"");
    expect_usage_error("rollout start --steps 1;5;100", "got \"1;5;100\"");
    expect_usage_error("rollout start --steps 1,12345678901234567890,100",
                       "got \"12345678901234567890\"");
    expect_usage_error("rollout start --steps "
                       "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,100",
                       "--steps: at most 20 steps");
    expect_usage_error("rollout start --steps", "--steps needs a value");
    expect_usage_error("rollout start --step-s 0",
                       "--step-s: expected 1..86400 seconds, got \"0\"");
    expect_usage_error("rollout start --step-s 86401", "--step-s: expected 1..86400 seconds");
    expect_usage_error("rollout start --step-s 1m", "--step-s: expected 1..86400 seconds");
    expect_usage_error("rollout start --if-generation 0", "--if-generation");
    expect_usage_error("rollout start --since 3",
                       "rollout start: --since is not an option of this command");
    expect_usage_error("rollout status --steps 1,100",
                       "rollout status: --steps is not an option of this command");
    expect_usage_error("rollout report --reason x",
                       "rollout report: --reason is not an option of this command");
    expect_usage_error("weight 5 --step-s 60", "weight: --step-s is not an option of this command");
    expect_usage_error("server drain blue/b1 --steps 100",
                       "server drain: --steps is not an option");
}

static void test_parse_reason_with_spaces(void **state)
{
    char *argv[] = {"switchyardctl", "rollback", "--reason", "5xx on checkout", NULL};
    struct ctl_options o;
    json_t *req;
    char err[128];

    assert_int_equal(ctl_parse_args(4, argv, &o, &req, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(req, "reason")), "5xx on checkout");
    assert_string_equal(o.cmd, "rollback");
    json_decref(req);
}

static void test_parse_options(void **state)
{
    struct ctl_options o;
    char err[256];
    char *json;

    unsetenv("SWITCHYARD_SOCKET");
    assert_int_equal(parse_line("status", &o, &json, err, sizeof(err)), 0);
    assert_string_equal(o.socket_path, CTL_DEFAULT_SOCKET);
    assert_int_equal(o.timeout_ms, CTL_DEFAULT_TIMEOUT_MS);
    assert_false(o.json);
    assert_false(o.follow);
    free(json);

    setenv("SWITCHYARD_SOCKET", "/run/sy.sock", 1);
    assert_int_equal(parse_line("status", &o, &json, err, sizeof(err)), 0);
    assert_string_equal(o.socket_path, "/run/sy.sock");
    free(json);

    /* -s beats the environment; global options may follow the command */
    assert_int_equal(parse_line("-s /tmp/x.sock events --follow --json --timeout 250", &o, &json,
                                err, sizeof(err)),
                     0);
    unsetenv("SWITCHYARD_SOCKET");
    assert_string_equal(o.socket_path, "/tmp/x.sock");
    assert_true(o.json);
    assert_true(o.follow);
    assert_int_equal(o.timeout_ms, 250);
    assert_string_equal(o.cmd, "events");
    free(json);

    assert_int_equal(parse_line("--help", &o, &json, err, sizeof(err)), CTL_PARSE_HELP);
    assert_int_equal(parse_line("help", &o, &json, err, sizeof(err)), CTL_PARSE_HELP);
    assert_int_equal(parse_line("weight 5 -h", &o, &json, err, sizeof(err)), CTL_PARSE_HELP);
    assert_non_null(strstr(ctl_usage_text, "Exit codes:"));
    assert_non_null(strstr(ctl_usage_text, "Examples:"));
}

static void test_parse_errors(void **state)
{
    expect_usage_error("", "missing COMMAND");
    expect_usage_error("launch", "unknown command \"launch\"");
    expect_usage_error("status --bogus", "unknown option \"--bogus\"");
    expect_usage_error("status extra", "unexpected argument \"extra\"");
    expect_usage_error("weight", "missing PERCENT");
    expect_usage_error("weight abc", "expected a percentage");
    expect_usage_error("weight 150", "expected a percentage");
    expect_usage_error("weight 12.345", "expected a percentage");
    expect_usage_error("weight -5", "expected a percentage");
    expect_usage_error("weight 5 6", "unexpected argument \"6\"");
    expect_usage_error("weight 5 --if-generation 0", "--if-generation");
    expect_usage_error("weight 5 --if-generation x", "--if-generation");
    expect_usage_error("weight 5 --reason", "--reason needs a value");
    expect_usage_error("pause --since 3", "--since is not an option");
    expect_usage_error("status --reason x", "--reason is not an option");
    expect_usage_error("events --if-generation 3", "--if-generation is not an option");
    expect_usage_error("events --since -1", "--since");
    expect_usage_error("rollback --follow", "--follow is not an option");
    expect_usage_error("server", "server: missing sub-command (expected disable, enable or drain)");
    expect_usage_error("server drain", "missing POOL/NAME");
    expect_usage_error("server explode blue/b1", "unknown sub-command \"explode\"");
    expect_usage_error("server drain blue", "expected POOL/NAME");
    expect_usage_error("server drain /b1", "expected POOL/NAME");
    expect_usage_error("server drain blue/", "expected POOL/NAME");
    expect_usage_error("server drain a/b/c", "expected POOL/NAME");
    expect_usage_error("--timeout 0 status", "--timeout");
    expect_usage_error("--timeout soon status", "--timeout");
    expect_usage_error("status -s", "-s needs a value");
}

/* ---- rendering ----------------------------------------------------------- */

static const char sample_state[] =
    "{\"stable\":\"blue\",\"candidate\":\"green\",\"candidate_percent\":10.0,"
    "\"phase\":\"progressing\",\"step\":2,\"generation\":42,\"updated_by\":\"uid:1000\","
    "\"reason\":\"canary 2\",\"updated_at\":\"2026-11-23T18:20:00.123Z\"}";

static const char sample_pools[] = "{\"blue\":{\"role\":\"stable\",\"servers\":["
                                   "{\"name\":\"blue-1\",\"addr\":\"127.0.0.1:9001\",\"weight\":1,"
                                   "\"admin\":\"enabled\",\"in_flight\":3,\"health\":\"up\"},"
                                   "{\"name\":\"blue-2\",\"addr\":\"127.0.0.1:9011\",\"weight\":10,"
                                   "\"admin\":\"draining\",\"in_flight\":2,\"health\":\"up\"},"
                                   "{\"name\":\"blue-3\",\"addr\":\"127.0.0.1:9021\",\"weight\":1,"
                                   "\"admin\":\"draining\",\"in_flight\":0,\"health\":\"down\","
                                   "\"checked\":\"connect refused\"}]},"
                                   "\"green\":{\"role\":\"candidate\",\"servers\":["
                                   "{\"name\":\"green-1\",\"addr\":\"[::1]:9002\",\"weight\":1,"
                                   "\"admin\":\"disabled\",\"in_flight\":0}]}}";

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);

    if (j == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    return j;
}

/* Runs a render function into a memory stream; *text is new. */
#define RENDER(text, rc, call)                                                                     \
    do {                                                                                           \
        size_t size_;                                                                              \
        FILE *out = open_memstream(&(text), &size_);                                               \
        assert_non_null(out);                                                                      \
        (rc) = (call);                                                                             \
        fclose(out);                                                                               \
    } while (0)

static void test_render_status(void **state)
{
    char buf[2048];
    json_t *reply;
    char *text;
    int rc;

    snprintf(buf, sizeof(buf), "{\"ok\":true,\"state\":%s,\"pools\":%s}", sample_state,
             sample_pools);
    reply = load(buf);
    RENDER(text, rc, ctl_render_status(out, reply));
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "stable      blue    90.00 %\n"));
    assert_non_null(strstr(text, "candidate   green   10.00 %\n"));
    assert_non_null(strstr(text, "phase       progressing\n"));
    assert_non_null(strstr(text, "step        2\n"));
    assert_non_null(strstr(text, "generation  42\n"));
    assert_non_null(strstr(text, "updated by  uid:1000\n"));
    assert_non_null(strstr(text, "updated at  2026-11-23T18:20:00.123Z\n"));
    assert_non_null(strstr(text, "reason      canary 2\n"));
    assert_non_null(strstr(text, "\nPOOL   SERVER   ADDR            WEIGHT  ROLE       STATE     "
                                 "IN FLIGHT  HEALTH\n"));
    assert_non_null(strstr(
        text, "\nblue   blue-1   127.0.0.1:9001       1  stable     enabled           3  up\n"));
    assert_non_null(strstr(
        text, "\nblue   blue-2   127.0.0.1:9011      10  stable     draining          2  up\n"));
    assert_non_null(strstr(
        text, "\nblue   blue-3   127.0.0.1:9021       1  stable     drained           0  down\n"));
    /* A server of an older switchyard, without a health field. */
    assert_non_null(strstr(
        text, "\ngreen  green-1  [::1]:9002           1  candidate  disabled          0  -\n"));
    free(text);
    json_decref(reply);
}

/* The detector line and the traffic table, when the reply has them. */
static void test_render_status_traffic(void **state)
{
    char buf[4096];
    json_t *reply;
    char *text;
    int rc;

    snprintf(buf, sizeof(buf),
             "{\"ok\":true,\"state\":%s,\"detector\":{\"verdict\":\"ok\",\"reason\":\"error "
             "rate 0.10%%, p99 2.0 ms over 1000 requests\",\"window_s\":30},\"pools\":{"
             "\"blue\":{\"role\":\"stable\",\"traffic\":{\"window_s\":30,\"rps\":812.25,"
             "\"error_rate\":0.0012,\"p50_ms\":0.41,\"p99_ms\":1.96},\"servers\":[]},"
             "\"green\":{\"role\":\"candidate\",\"traffic\":{\"window_s\":30,\"rps\":0,"
             "\"error_rate\":0,\"p50_ms\":null,\"p99_ms\":null},\"servers\":[]}}}",
             sample_state);
    reply = load(buf);
    RENDER(text, rc, ctl_render_status(out, reply));
    assert_int_equal(rc, 0);
    assert_non_null(
        strstr(text, "detector    ok: error rate 0.10%, p99 2.0 ms over 1000 requests\n"));
    assert_non_null(strstr(text, "\nPOOL    ROLE           REQ/S    ERRORS    P50 MS    P99 MS  "
                                 "(last 30 s)\n"));
    assert_non_null(strstr(text, "\nblue    stable         812.2    0.12 %       0.4       2.0\n"));
    assert_non_null(strstr(text, "\ngreen   candidate        0.0    0.00 %         -         -\n"));
    free(text);
    json_decref(reply);
}

static void test_render_status_bad(void **state)
{
    static const char *const bad[] = {
        "{\"ok\":true}",
        "{\"ok\":true,\"state\":{\"stable\":\"blue\",\"candidate\":\"green\"}}",
        "{\"ok\":true,\"state\":{\"stable\":\"blue\",\"candidate\":\"green\",\"phase\":\"idle\","
        "\"candidate_percent\":\"10\",\"generation\":1}}",
        "{\"ok\":true,\"state\":{\"stable\":\"blue\",\"candidate\":\"green\",\"phase\":\"idle\","
        "\"candidate_percent\":101,\"generation\":1}}",
        "{\"ok\":true,\"state\":{\"stable\":\"blue\",\"candidate\":\"green\",\"phase\":\"idle\","
        "\"candidate_percent\":1,\"generation\":1},\"pools\":{\"blue\":{\"servers\":[{}]}}}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *reply = load(bad[i]);
        char *text;
        int rc;

        RENDER(text, rc, ctl_render_status(out, reply));
        if (rc != -1)
            fail_msg("accepted %s as:\n%s", bad[i], text);
        free(text);
        json_decref(reply);
    }
}

static void test_render_change(void **state)
{
    char buf[1024];
    json_t *reply;
    char *text;
    int rc;

    snprintf(buf, sizeof(buf), "{\"ok\":true,\"state\":%s}", sample_state);
    reply = load(buf);
    json_object_set_new(json_object_get(reply, "state"), "candidate_percent", json_real(25.0));
    RENDER(text, rc, ctl_render_change(out, "weight", reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "weight: green 25.00 % (generation 42)\n");
    free(text);
    RENDER(text, rc, ctl_render_change(out, "pause", reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "pause: stable blue, candidate green 25.00 %, phase progressing "
                              "(generation 42)\n");
    free(text);
    json_decref(reply);
}

static void test_render_events(void **state)
{
    json_t *reply =
        load("{\"ok\":true,\"events\":["
             "{\"time\":\"2026-11-23T18:20:00.123Z\",\"generation\":42,\"who\":\"uid:1000\","
             "\"op\":\"weight\",\"why\":\"canary 2\",\"persisted\":true,"
             "\"from\":{\"stable\":\"blue\",\"candidate_percent\":10,\"phase\":\"progressing\","
             "\"step\":1},"
             "\"to\":{\"stable\":\"blue\",\"candidate_percent\":25.5,\"phase\":\"progressing\","
             "\"step\":2}},"
             "{\"time\":\"2026-11-23T18:30:00.000Z\",\"generation\":43,\"who\":\"detector\","
             "\"op\":\"promote\",\"why\":\"\",\"persisted\":false,\"note\":\"not persisted: EIO\","
             "\"from\":{\"stable\":\"blue\",\"candidate_percent\":100,\"phase\":\"progressing\","
             "\"step\":5},"
             "\"to\":{\"stable\":\"green\",\"candidate_percent\":0,\"phase\":\"promoted\",\"step\":"
             "0}}]}");
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_events(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text,
                        "2026-11-23T18:20:00.123Z  42  uid:1000  weight  10.00 % progressing "
                        "\u2192 25.50 % progressing  canary 2\n"
                        "2026-11-23T18:30:00.000Z  43  detector  promote  stable blue, 100.00 % "
                        "progressing \u2192 stable green, 0.00 % promoted  - (not persisted: "
                        "EIO)\n");
    free(text);
    json_object_del(json_object_get(json_array_get(json_object_get(reply, "events"), 0), "to"),
                    "phase");
    RENDER(text, rc, ctl_render_events(out, reply));
    assert_int_equal(rc, -1);
    free(text);
    json_decref(reply);
}

static void test_render_refusal(void **state)
{
    json_t *reply = load("{\"ok\":false,\"error\":{\"code\":\"conflict\",\"message\":\"the state "
                         "is at generation 43, not 41\"}}");
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_refusal(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(
        text, "switchyardctl: refused: conflict: the state is at generation 43, not 41\n");
    free(text);
    json_decref(reply);
    reply = load("{\"ok\":false}");
    RENDER(text, rc, ctl_render_refusal(out, reply));
    assert_int_equal(rc, -1);
    free(text);
    json_decref(reply);
}

/* A server's change has no transition: its line says what happened. */
static void test_render_server_event(void **state)
{
    json_t *e = load("{\"time\":\"2026-11-23T18:20:00.123Z\",\"generation\":4,\"who\":"
                     "\"health-check\",\"op\":\"server\",\"why\":\"server blue/b1 down: 3 "
                     "checks failed in a row, last: connect refused\",\"persisted\":true}");
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_event(out, e));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "2026-11-23T18:20:00.123Z  4  health-check  server  server blue/b1 "
                              "down: 3 checks failed in a row, last: connect refused\n");
    free(text);
    json_decref(e);
}

/* A refused reload lists every problem under the message. */
static void test_render_refusal_details(void **state)
{
    json_t *reply = load("{\"ok\":false,\"error\":{\"code\":\"bad_config\",\"message\":\"2 "
                         "problems\",\"details\":[\"a.json:3:5: pools: bad\",\"a.json: listen: "
                         "changed\"]}}");
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_refusal(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "switchyardctl: refused: bad_config: 2 problems\n"
                              "  a.json:3:5: pools: bad\n"
                              "  a.json: listen: changed\n");
    free(text);
    json_decref(reply);
}

static void test_render_server(void **state)
{
    static const char *const replies[][2] = {
        {"{\"pool\":\"blue\",\"name\":\"b1\",\"admin\":\"draining\",\"in_flight\":2}",
         "server.drain: blue/b1 draining, 2 in flight\n"},
        {"{\"pool\":\"blue\",\"name\":\"b1\",\"admin\":\"draining\",\"in_flight\":0}",
         "server.drain: blue/b1 drained, 0 in flight\n"},
        {"{\"pool\":\"green\",\"name\":\"g\",\"admin\":\"enabled\",\"in_flight\":7}",
         "server.drain: green/g enabled, 7 in flight\n"},
    };
    char buf[512];
    char *text;
    json_t *reply;
    int rc;

    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        snprintf(buf, sizeof(buf), "{\"ok\":true,\"server\":%s}", replies[i][0]);
        reply = load(buf);
        RENDER(text, rc, ctl_render_server(out, "server.drain", reply));
        assert_int_equal(rc, 0);
        assert_string_equal(text, replies[i][1]);
        free(text);
        json_decref(reply);
    }
    reply = load("{\"ok\":true,\"server\":{\"pool\":\"blue\",\"name\":\"b1\"}}");
    RENDER(text, rc, ctl_render_server(out, "server.drain", reply));
    assert_int_equal(rc, -1);
    free(text);
    json_decref(reply);
}

static void test_render_reload(void **state)
{
    json_t *reply = load("{\"ok\":true,\"reloads\":3,\"notes\":[\"a.json: routing: kept\"]}");
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_reload(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "reload: applied (reload 3 since start)\n  a.json: routing: kept\n");
    free(text);
    json_decref(reply);
    reply = load("{\"ok\":true}");
    RENDER(text, rc, ctl_render_reload(out, reply));
    assert_int_equal(rc, -1);
    free(text);
    json_decref(reply);
}

static const char rollout_status_reply[] =
    "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"steps\":[1,5,25,"
    "100],\"step\":2,\"weight\":5,\"step_started_at\":\"2026-11-23T18:20:00.000Z\",\"step_s\":60,"
    "\"gates\":[{\"name\":\"time\",\"ok\":false,\"why\":\"at step for 12 s of 60\"},"
    "{\"name\":\"window\",\"ok\":true,\"why\":\"inside window mon-fri 01:00-05:00 "
    "Europe/Berlin, closes in 2h03m\"},"
    "{\"name\":\"traffic\",\"ok\":true,\"why\":\"traffic 312 rps under max 500\"},"
    "{\"name\":\"detector\",\"ok\":false,\"why\":\"waiting for 100 requests, have 37\"}],"
    "\"waiting_for\":\"time, detector\"}}";

static const char rollout_status_text[] =
    "rollout     progressing\n"
    "step        2 of 4: 5 % since 2026-11-23T18:20:00.000Z, at least 60 s a step\n"
    "plan        1 % \u2192 [5 %] \u2192 25 % \u2192 100 %\n"
    "gates       time      waiting  at step for 12 s of 60\n"
    "            window    ok       inside window mon-fri 01:00-05:00 Europe/Berlin, closes in "
    "2h03m\n"
    "            traffic   ok       traffic 312 rps under max 500\n"
    "            detector  waiting  waiting for 100 requests, have 37\n"
    "waiting for time, detector\n";

static void test_render_rollout_status(void **state)
{
    json_t *reply = load(rollout_status_reply);
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_rollout_status(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, rollout_status_text);
    free(text);
    json_decref(reply);

    reply = load("{\"ok\":true,\"rollout\":{\"active\":false,\"last\":\"promoted at "
                 "2026-11-23T18:40:00.000Z\"}}");
    RENDER(text, rc, ctl_render_rollout_status(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "rollout     none running\n"
                              "last        promoted at 2026-11-23T18:40:00.000Z\n");
    free(text);
    json_decref(reply);

    /* Preflight: no step yet, nothing marked; every gate holds. */
    reply = load("{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"preflight\","
                 "\"steps\":[50,100],\"step\":0,\"gates\":[],\"waiting_for\":\"\"}}");
    RENDER(text, rc, ctl_render_rollout_status(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "rollout     preflight\n"
                              "step        0 of 2\n"
                              "plan        50 % \u2192 100 %\n"
                              "waiting for nothing\n");
    free(text);
    json_decref(reply);
}

static void test_render_rollout_status_bad(void **state)
{
    static const char *const bad[] = {
        "{\"ok\":true}",
        "{\"ok\":true,\"rollout\":[]}",
        "{\"ok\":true,\"rollout\":{}}",
        "{\"ok\":true,\"rollout\":{\"active\":\"yes\"}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"steps\":[1,100],\"step\":1,\"gates\":[]}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"step\":1,"
        "\"gates\":[]}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"steps\":[1,"
        "\"100\"],\"step\":1,\"gates\":[]}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"steps\":[1,100],"
        "\"step\":\"1\",\"gates\":[]}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"steps\":[1,100],"
        "\"step\":1}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"steps\":[1,100],"
        "\"step\":1,\"gates\":[{\"name\":\"time\"}]}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"steps\":[1,100],"
        "\"step\":1,\"gates\":[{\"ok\":true}]}}",
        "{\"ok\":true,\"rollout\":{\"active\":true,\"phase\":\"progressing\",\"steps\":[1,100],"
        "\"step\":1,\"gates\":[\"time\"]}}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *reply = load(bad[i]);
        char *text;
        int rc;

        RENDER(text, rc, ctl_render_rollout_status(out, reply));
        if (rc != -1)
            fail_msg("accepted %s as:\n%s", bad[i], text);
        free(text);
        json_decref(reply);
    }
}

static const char rollout_report_reply[] =
    "{\"ok\":true,\"report\":{\"outcome\":\"rolled_back\",\"reason\":\"detector: candidate "
    "error rate 12.00% over 0.10% of stable\",\"started_at\":\"2026-11-23T18:00:00.000Z\","
    "\"ended_at\":\"2026-11-23T18:03:10.500Z\",\"stable\":\"blue\",\"candidate\":\"green\","
    "\"steps\":["
    "{\"step\":1,\"weight\":1,\"started_at\":\"2026-11-23T18:00:01.000Z\","
    "\"ended_at\":\"2026-11-23T18:01:01.000Z\",\"gates\":\"all held\","
    "\"candidate\":{\"requests\":120,\"error_rate\":0,\"p50_ms\":0.42,\"p99_ms\":2.5},"
    "\"stable\":{\"requests\":11880,\"error_rate\":0.001,\"p50_ms\":0.4,\"p99_ms\":2.25},"
    "\"verdict\":\"ok\"},"
    "{\"step\":2,\"weight\":12.5,\"started_at\":\"2026-11-23T18:01:01.000Z\","
    "\"ended_at\":\"2026-11-23T18:03:10.500Z\",\"gates\":\"held at window\","
    "\"candidate\":{\"requests\":1500,\"error_rate\":0.12,\"p50_ms\":31.05,\"p99_ms\":"
    "1200},\"stable\":{\"requests\":10500,\"error_rate\":0.001,\"p50_ms\":null,"
    "\"p99_ms\":null},\"verdict\":\"rollback\"}]}}";

static const char rollout_report_text[] =
    "outcome     rolled_back\n"
    "reason      detector: candidate error rate 12.00% over 0.10% of stable\n"
    "stable      blue\n"
    "candidate   green\n"
    "started at  2026-11-23T18:00:00.000Z\n"
    "ended at    2026-11-23T18:03:10.500Z\n"
    "\n"
    "STEP  WEIGHT  STARTED                   ENDED                     CAND REQ  CAND ERR  CAND "
    "P50 "
    "  CAND P99  STABLE REQ  STABLE ERR  STABLE P50  STABLE P99  VERDICT   GATES\n"
    "   1     1 %  2026-11-23T18:00:01.000Z  2026-11-23T18:01:01.000Z       120    0.00 %    0.4 "
    "ms "
    "    2.5 ms       11880      0.10 %      0.4 ms      2.2 ms  ok        all held\n"
    "   2  12.5 %  2026-11-23T18:01:01.000Z  2026-11-23T18:03:10.500Z      1500   12.00 %   31.1 "
    "ms "
    " 1200.0 ms       10500      0.10 %           -           -  rollback  held at window\n";

static void test_render_rollout_report(void **state)
{
    json_t *reply = load(rollout_report_reply);
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_rollout_report(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, rollout_report_text);
    free(text);
    json_decref(reply);

    /* Failed in preflight: no step, no table; absent fields print as "-". */
    reply = load("{\"ok\":true,\"report\":{\"outcome\":\"rolled_back\",\"reason\":\"preflight: "
                 "green/green-1 GET /health: status 503, expected 200\",\"steps\":[]}}");
    RENDER(text, rc, ctl_render_rollout_report(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "outcome     rolled_back\n"
                              "reason      preflight: green/green-1 GET /health: status 503, "
                              "expected 200\n"
                              "stable      -\n"
                              "candidate   -\n"
                              "started at  -\n"
                              "ended at    -\n");
    free(text);
    json_decref(reply);
}

static void test_render_rollout_report_bad(void **state)
{
    static const char *const bad[] = {
        "{\"ok\":true}",
        "{\"ok\":true,\"report\":{\"steps\":[]}}",
        "{\"ok\":true,\"report\":{\"outcome\":5,\"steps\":[]}}",
        "{\"ok\":true,\"report\":{\"outcome\":\"promoted\"}}",
        "{\"ok\":true,\"report\":{\"outcome\":\"promoted\",\"steps\":{}}}",
        "{\"ok\":true,\"report\":{\"outcome\":\"promoted\",\"steps\":[{\"weight\":1}]}}",
        "{\"ok\":true,\"report\":{\"outcome\":\"promoted\",\"steps\":[{\"step\":1}]}}",
        "{\"ok\":true,\"report\":{\"outcome\":\"promoted\",\"steps\":[{\"step\":1,"
        "\"weight\":\"1\"}]}}",
        "{\"ok\":true,\"report\":{\"outcome\":\"promoted\",\"steps\":[{\"step\":1,"
        "\"weight\":1},7]}}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *reply = load(bad[i]);
        char *text;
        int rc;

        RENDER(text, rc, ctl_render_rollout_report(out, reply));
        if (rc != -1)
            fail_msg("accepted %s as:\n%s", bad[i], text);
        if (text[0] != '\0')
            fail_msg("printed half of %s:\n%s", bad[i], text);
        free(text);
        json_decref(reply);
    }
}

/* ---- the real binary against a fake control socket ----------------------- */

struct fixture {
    char dir[64];  /* temp folder holding the socket and captured output */
    char sock[96]; /* its control socket */
    pid_t server;  /* fake server process, or 0 */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-ctl-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->sock, sizeof(f->sock), "%s/sy.sock", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[192];

    if (f->server > 0) {
        kill(f->server, SIGKILL);
        waitpid(f->server, NULL, 0);
    }
    static const char *const names[] = {"sy.sock", "out", "err"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, names[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The fake server's side: reads one request line, answers reply unless it
 * is NULL (then it never answers), and exits 0 only if the line was expect. */
static void fake_serve(int lfd, const char *expect, const char *reply)
{
    char line[4096];
    size_t len = 0;
    int fd = accept(lfd, NULL, NULL);

    if (fd < 0)
        _exit(10);
    while (len < sizeof(line) - 1 && (len == 0 || line[len - 1] != '\n')) {
        ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            _exit(11);
        len += (size_t)n;
    }
    line[len] = '\0';
    if (reply == NULL)
        pause();
    if (write(fd, reply, strlen(reply)) != (ssize_t)strlen(reply))
        _exit(12);
    close(fd);
    _exit(strcmp(line, expect) == 0 ? 0 : 13);
}

/* Listens on f->sock before forking, so the client can never come too early. */
static void fake_start(struct fixture *f, const char *expect, const char *reply)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(lfd >= 0);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    f->server = fork();
    assert_true(f->server >= 0);
    if (f->server == 0)
        fake_serve(lfd, expect, reply);
    close(lfd);
}

/* Asserts the fake server saw the expected request. */
static void fake_check(struct fixture *f)
{
    int status;

    assert_int_equal(waitpid(f->server, &status, 0), f->server);
    f->server = 0;
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("fake server: exit %d (13: the request line differed)", WEXITSTATUS(status));
}

static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *in = fopen(path, "r");
    size_t n;

    assert_non_null(in);
    n = fread(buf, 1, sizeof(buf) - 1, in);
    buf[n] = '\0';
    fclose(in);
    return buf;
}

/* Runs switchyardctl -s SOCK args... with stdout and stderr captured into
 * out and err (static buffers, valid until the next run). Returns its exit
 * code. */
static int run_ctl(struct fixture *f, const char *sock, const char *const *args, char **out,
                   char **err)
{
    static char outs[8192], errs[8192];
    char out_path[192], err_path[192];
    char *argv[MAX_ARGS] = {"switchyardctl", "-s", (char *)sock};
    int argc = 3, status;
    pid_t pid;

    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    snprintf(out_path, sizeof(out_path), "%s/out", f->dir);
    snprintf(err_path, sizeof(err_path), "%s/err", f->dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(99);
        execv(SY_CTL_BINARY, argv);
        _exit(98);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    snprintf(outs, sizeof(outs), "%s", slurp(out_path));
    snprintf(errs, sizeof(errs), "%s", slurp(err_path));
    *out = outs;
    *err = errs;
    return WEXITSTATUS(status);
}

static const char weight_reply[] =
    "{\"ok\":true,\"state\":{\"stable\":\"blue\",\"candidate\":\"green\",\"candidate_percent\":25,"
    "\"phase\":\"progressing\",\"step\":0,\"generation\":42,\"updated_by\":\"uid:1000\","
    "\"reason\":\"\",\"updated_at\":\"2026-11-23T18:20:00.123Z\"}}\n";

static void test_e2e_ok(void **state)
{
    struct fixture *f = *state;
    const char *args[] = {"weight", "25", NULL};
    char *out, *err;

    fake_start(f, "{\"cmd\":\"weight\",\"percent\":25}\n", weight_reply);
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 0);
    assert_string_equal(out, "weight: green 25.00 % (generation 42)\n");
    assert_string_equal(err, "");
    fake_check(f);
}

static void test_e2e_json(void **state)
{
    struct fixture *f = *state;
    const char *args[] = {"--json", "weight", "12.34", "--reason", "canary 2", NULL};
    char *out, *err;

    fake_start(f, "{\"cmd\":\"weight\",\"percent\":12.34,\"reason\":\"canary 2\"}\n", weight_reply);
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 0);
    assert_string_equal(out, weight_reply);
    fake_check(f);
}

static void test_e2e_refused(void **state)
{
    struct fixture *f = *state;
    const char *args[] = {"pause", "--if-generation", "41", NULL};
    char *out, *err;

    fake_start(f, "{\"cmd\":\"pause\",\"expect_generation\":41}\n",
               "{\"ok\":false,\"error\":{\"code\":\"conflict\",\"message\":\"the state is at "
               "generation 43, not 41\"}}\n");
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 1);
    assert_string_equal(out, "");
    assert_string_equal(
        err, "switchyardctl: refused: conflict: the state is at generation 43, not 41\n");
    fake_check(f);
}

static void test_e2e_follow(void **state)
{
    struct fixture *f = *state;
    const char *args[] = {"events", "--since", "41", "--follow", NULL};
    char *out, *err;

    fake_start(f, "{\"cmd\":\"events\",\"since\":41,\"follow\":true}\n",
               "{\"ok\":true,\"events\":[]}\n"
               "{\"event\":{\"time\":\"T1\",\"generation\":42,\"who\":\"uid:0\",\"op\":\"pause\","
               "\"why\":\"lunch\",\"persisted\":true,"
               "\"from\":{\"stable\":\"blue\",\"candidate_percent\":5,\"phase\":\"progressing\"},"
               "\"to\":{\"stable\":\"blue\",\"candidate_percent\":5,\"phase\":\"paused\"}}}\n");
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 0);
    assert_string_equal(out, "T1  42  uid:0  pause  5.00 % progressing \u2192 5.00 % paused  "
                             "lunch\n");
    fake_check(f);
}

static void test_e2e_bad_replies(void **state)
{
    struct fixture *f = *state;
    const char *args[] = {"status", NULL};
    char *out, *err;

    fake_start(f, "{\"cmd\":\"status\"}\n", "<html>oops</html>\n");
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 2);
    assert_non_null(strstr(err, "bad reply from"));
    assert_non_null(strstr(err, "not JSON"));
    fake_check(f);
    unlink(f->sock);

    fake_start(f, "{\"cmd\":\"status\"}\n", "{\"ok\":true}\n");
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 2);
    assert_non_null(strstr(err, "fields missing"));
    fake_check(f);
    unlink(f->sock);

    fake_start(f, "{\"cmd\":\"status\"}\n", "{\"ok\":true,");
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 2);
    assert_non_null(strstr(err, "closed inside a line"));
    fake_check(f);
}

/* rollout status and report reach their renderers; report --json prints
 * the reply as it came. */
static void test_e2e_rollout(void **state)
{
    struct fixture *f = *state;
    const char *status[] = {"rollout", "status", NULL};
    const char *report[] = {"rollout", "report", "--json", NULL};
    char reply[2048];
    char *out, *err;

    snprintf(reply, sizeof(reply), "%s\n", rollout_status_reply);
    fake_start(f, "{\"cmd\":\"rollout.status\"}\n", reply);
    assert_int_equal(run_ctl(f, f->sock, status, &out, &err), 0);
    assert_string_equal(out, rollout_status_text);
    assert_string_equal(err, "");
    fake_check(f);
    unlink(f->sock);

    snprintf(reply, sizeof(reply), "%s\n", rollout_report_reply);
    fake_start(f, "{\"cmd\":\"rollout.report\"}\n", reply);
    assert_int_equal(run_ctl(f, f->sock, report, &out, &err), 0);
    assert_string_equal(out, reply);
    fake_check(f);
    unlink(f->sock);

    /* A status reply without its rollout is a bad reply, not "done". */
    fake_start(f, "{\"cmd\":\"rollout.status\"}\n", "{\"ok\":true}\n");
    assert_int_equal(run_ctl(f, f->sock, status, &out, &err), 2);
    assert_non_null(strstr(err, "fields missing"));
    fake_check(f);
}

static void test_e2e_timeout(void **state)
{
    struct fixture *f = *state;
    const char *args[] = {"--timeout", "200", "status", NULL};
    char *out, *err;

    fake_start(f, "{\"cmd\":\"status\"}\n", NULL);
    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 2);
    assert_non_null(strstr(err, "no reply from"));
    assert_non_null(strstr(err, "within 200 ms"));
}

static void test_e2e_no_server(void **state)
{
    struct fixture *f = *state;
    const char *args[] = {"status", NULL};
    char *out, *err;

    assert_int_equal(run_ctl(f, f->sock, args, &out, &err), 2);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "switchyardctl: cannot connect to "));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_non_null(strstr(err, "admin.socket"));
}

static void test_e2e_usage(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {"weight", "abc", NULL};
    const char *help[] = {"--help", NULL};
    char *out, *err;

    assert_int_equal(run_ctl(f, f->sock, bad, &out, &err), 2);
    assert_non_null(strstr(err, "switchyardctl: weight: expected a percentage"));
    assert_int_equal(run_ctl(f, f->sock, help, &out, &err), 0);
    assert_non_null(strstr(out, "usage: switchyardctl"));
}

/* ---- the fleet ------------------------------------------------------------ */

static void test_parse_events_local(void **state)
{
    expect_request("events --local", "{\"cmd\":\"events\",\"follow\":false,\"local\":true}");
    expect_request("events --since 7 --local",
                   "{\"cmd\":\"events\",\"follow\":false,\"local\":true,\"since\":7}");
    expect_request("events --local --follow",
                   "{\"cmd\":\"events\",\"follow\":true,\"local\":true}");
    expect_usage_error("status --local", "--local is not an option");
    expect_usage_error("rollback --local", "--local is not an option");
}

/* The redis line and the fleet line follow the detector line. */
static void test_render_status_redis(void **state)
{
    char buf[4096];
    json_t *reply;
    char *text;
    int rc;

    snprintf(buf, sizeof(buf),
             "{\"ok\":true,\"state\":%s,\"detector\":{\"verdict\":\"ok\",\"reason\":\"fine\"},"
             "\"pools\":%s,\"redis\":{\"url\":\"redis://127.0.0.1:6379/0\",\"namespace\":"
             "\"switchyard:prod\",\"instance\":\"vm:1\",\"up\":true,\"last_error\":\"\","
             "\"down_for_ms\":0,\"leader\":true,\"holder\":\"vm:1\",\"synced\":true,"
             "\"events_queued\":0,\"fleet\":{\"fresh\":true,\"instances\":["
             "{\"id\":\"vm:1\",\"rps\":{\"blue\":800.2,\"green\":12}},"
             "{\"id\":\"vm:2\",\"rps\":{\"blue\":790,\"green\":0.4}},"
             "{\"id\":\"vm:3\",\"rps\":{}}]}}}",
             sample_state, sample_pools);
    reply = load(buf);
    RENDER(text, rc, ctl_render_status(out, reply));
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "detector    ok: fine\n"
                                 "redis       up, redis://127.0.0.1:6379/0 ns switchyard:prod, "
                                 "instance vm:1 (leader)\n"
                                 "fleet       3 instances: vm:1 (leader) 812 rps, vm:2 790 rps, "
                                 "vm:3 0 rps\n"));
    free(text);
    json_decref(reply);
}

static void test_render_status_redis_down(void **state)
{
    char buf[4096];
    json_t *reply;
    char *text;
    int rc;

    snprintf(buf, sizeof(buf),
             "{\"ok\":true,\"state\":%s,\"pools\":%s,\"redis\":{\"url\":\"redis://h:1/0\","
             "\"namespace\":\"ns\",\"instance\":\"vm:2\",\"up\":false,\"last_error\":"
             "\"connection refused\",\"down_for_ms\":12345,\"leader\":false,\"events_queued\":3,"
             "\"fleet\":{\"fresh\":false,\"instances\":[]}}}",
             sample_state, sample_pools);
    reply = load(buf);
    RENDER(text, rc, ctl_render_status(out, reply));
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "\nredis       DOWN for 12 s: connection refused; serving the "
                                 "last known state\nfleet       0 instances\n"));
    free(text);
    json_decref(reply);

    /* Up, another instance leads, events still wait to be written. */
    snprintf(buf, sizeof(buf),
             "{\"ok\":true,\"state\":%s,\"pools\":%s,\"redis\":{\"url\":\"redis://h:1/0\","
             "\"namespace\":\"ns\",\"instance\":\"vm:2\",\"up\":true,\"leader\":false,"
             "\"holder\":\"vm:1\",\"events_queued\":3}}",
             sample_state, sample_pools);
    reply = load(buf);
    RENDER(text, rc, ctl_render_status(out, reply));
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "\nredis       up, redis://h:1/0 ns ns, instance vm:2, leader "
                                 "vm:1, 3 events waiting to be written\n"));
    assert_null(strstr(text, "fleet "));
    free(text);
    json_decref(reply);
}

/* Events from the fleet's stream name the instance that made them. */
static void test_render_fleet_events(void **state)
{
    json_t *reply = load(
        "{\"ok\":true,\"events\":["
        "{\"time\":\"T1\",\"generation\":7,\"who\":\"uid:0\",\"op\":\"rollback\",\"why\":\"5xx\","
        "\"persisted\":true,\"instance\":\"vm:2\","
        "\"from\":{\"stable\":\"blue\",\"candidate_percent\":10,\"phase\":\"progressing\"},"
        "\"to\":{\"stable\":\"blue\",\"candidate_percent\":0,\"phase\":\"rolled_back\"}},"
        "{\"time\":\"T2\",\"generation\":7,\"who\":\"uid:0\",\"op\":\"server\",\"why\":\"drain\","
        "\"instance\":\"vm:3\"}]}");
    char *text;
    int rc;

    RENDER(text, rc, ctl_render_events(out, reply));
    assert_int_equal(rc, 0);
    assert_string_equal(text, "T1  7  vm:2  uid:0  rollback  10.00 % progressing \u2192 0.00 % "
                              "rolled_back  5xx\n"
                              "T2  7  vm:3  uid:0  server  drain\n");
    free(text);
    json_decref(reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent),
        cmocka_unit_test(test_parse_commands),
        cmocka_unit_test(test_parse_reason_with_spaces),
        cmocka_unit_test(test_parse_options),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_rollout),
        cmocka_unit_test(test_parse_rollout_errors),
        cmocka_unit_test(test_render_status),
        cmocka_unit_test(test_render_status_traffic),
        cmocka_unit_test(test_render_status_bad),
        cmocka_unit_test(test_render_change),
        cmocka_unit_test(test_render_events),
        cmocka_unit_test(test_render_refusal),
        cmocka_unit_test(test_render_refusal_details),
        cmocka_unit_test(test_render_server_event),
        cmocka_unit_test(test_render_server),
        cmocka_unit_test(test_render_reload),
        cmocka_unit_test(test_render_rollout_status),
        cmocka_unit_test(test_render_rollout_status_bad),
        cmocka_unit_test(test_render_rollout_report),
        cmocka_unit_test(test_render_rollout_report_bad),
        cmocka_unit_test_setup_teardown(test_e2e_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_bad_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_rollout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_no_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_usage, setup, teardown),
        cmocka_unit_test(test_parse_events_local),
        cmocka_unit_test(test_render_status_redis),
        cmocka_unit_test(test_render_status_redis_down),
        cmocka_unit_test(test_render_fleet_events),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
