/* test_config.c - loading and checking the JSON configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conf/cfgwalk.h"
#include "conf/config.h"
#include "conf/jsonpos.h"

#ifndef SY_SOURCE_DIR
#error "SY_SOURCE_DIR must name the source tree"
#endif

#define EXAMPLES SY_SOURCE_DIR "/conf/examples"

/* The smallest valid file, with room on line 3 for the key under test. */
#define LISTEN "\"listen\": [{\"addr\": \"127.0.0.1:8080\"}]"
#define POOLS                                                                                      \
    "\"pools\": {\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": \"127.0.0.1:9001\"}]}, "    \
    "\"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": \"127.0.0.1:9002\"}]}}"
#define WITH(line3) "{" LISTEN ",\n" POOLS ",\n" line3 "\n}\n"
#define MINIMAL "{" LISTEN ",\n" POOLS "\n}\n"
#define K10 "kkkkkkkkkk"
#define K100 K10 K10 K10 K10 K10 K10 K10 K10 K10 K10

static struct config *load(const char *text, struct conf_errors *errs)
{
    return config_load_string(text, strlen(text), "t.json", "/etc/switchyard", errs);
}

static void test_demo(void **state)
{
    struct conf_errors errs = {0};
    (void)state;

    struct config *cfg = config_load_file(EXAMPLES "/demo.json", &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_int_equal(errs.n, 0);
    assert_string_equal(cfg->path, EXAMPLES "/demo.json");
    assert_int_equal(cfg->workers, 2);
    assert_int_equal(cfg->nlisten, 1);
    assert_string_equal(cfg->listen[0].addr.text, "127.0.0.1:8080");
    assert_false(cfg->listen[0].has_tls);
    assert_int_equal(cfg->pools[CONF_BLUE].nservers, 1);
    assert_string_equal(cfg->pools[CONF_BLUE].servers[0].name, "blue-1");
    assert_string_equal(cfg->pools[CONF_BLUE].servers[0].addr.text, "127.0.0.1:9001");
    assert_int_equal(cfg->pools[CONF_BLUE].servers[0].weight, 1);
    assert_int_equal(cfg->pools[CONF_GREEN].nservers, 1);
    assert_string_equal(cfg->pools[CONF_GREEN].servers[0].name, "green-1");
    assert_string_equal(cfg->pools[CONF_GREEN].servers[0].addr.text, "127.0.0.1:9002");
    assert_int_equal(cfg->routing.stable, CONF_BLUE);
    assert_int_equal(cfg->routing.candidate_bp, 1000);
    assert_string_equal(cfg->routing.sticky_cookie, "session");
    assert_null(cfg->routing.sticky_header);
    assert_true(cfg->routing.sticky_client_addr);
    assert_string_equal(cfg->routing.override_header, "X-Switchyard-Pool");
    assert_int_equal(cfg->routing.noverride_allow, 2);
    assert_null(cfg->access_log_path);
    assert_null(cfg->state_file);
    assert_null(cfg->audit_log_path);

    config_free(cfg);
}

static void test_full(void **state)
{
    struct conf_errors errs = {0};
    char dir[PATH_MAX], want[PATH_MAX + 64];
    (void)state;

    assert_non_null(realpath(EXAMPLES, dir));
    struct config *cfg = config_load_file(EXAMPLES "/full.json", &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_string_equal(cfg->dir, dir);

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg->workers, cores < 1 ? 1 : cores > 256 ? 256 : cores);
    assert_int_equal(cfg->nlisten, 2);
    assert_string_equal(cfg->listen[1].addr.text, "[::1]:8080");

    snprintf(want, sizeof(want), "%s/switchyard.sock", dir);
    assert_string_equal(cfg->admin.socket, want);
    assert_int_equal(cfg->admin.socket_mode, 0660);
    assert_int_equal(cfg->admin.nallow_uids, 2);
    assert_int_equal(cfg->admin.allow_uids[0], 0);
    assert_int_equal(cfg->admin.allow_uids[1], 1000);
    assert_true(cfg->admin.has_http);
    assert_string_equal(cfg->admin.http.text, "127.0.0.1:9900");

    assert_int_equal(cfg->pools[CONF_BLUE].nservers, 2);
    assert_int_equal(cfg->pools[CONF_BLUE].servers[1].weight, 3);
    assert_string_equal(cfg->pools[CONF_GREEN].servers[1].name, "green-2");

    assert_int_equal(cfg->routing.candidate_bp, 0);
    assert_string_equal(cfg->routing.sticky_header, "X-User-Id");
    assert_int_equal(cfg->routing.noverride_allow, 3);
    assert_int_equal(cfg->routing.override_allow[2].prefix, 16);

    assert_int_equal(cfg->timeouts.client_header_ms, 10000);
    assert_int_equal(cfg->timeouts.drain_ms, 30000);
    assert_int_equal(cfg->limits.max_header_bytes, 32768);

    assert_true(cfg->health.enabled);
    assert_string_equal(cfg->health.expect_body, "ok");
    assert_true(cfg->detector.enabled);
    assert_true(cfg->detector.max_error_rate > 0.0499 && cfg->detector.max_error_rate < 0.0501);
    assert_int_equal(cfg->detector.fast_consecutive_failures, 10);

    const struct conf_rollout *r = &cfg->rollout;
    assert_true(r->enabled);
    assert_int_equal(r->nsteps, 6);
    assert_int_equal(r->steps_bp[0], 100);
    assert_int_equal(r->steps_bp[5], 10000);
    assert_int_equal(r->nwindows, 2);
    assert_int_equal(r->windows[0].days, 0x1F);
    assert_int_equal(r->windows[0].from_min, 60);
    assert_int_equal(r->windows[0].to_min, 300);
    assert_string_equal(r->windows[0].tz, "Europe/Berlin");
    assert_int_equal(r->windows[1].days, 0x60);
    assert_int_equal(r->windows[1].from_min, 22 * 60);
    assert_int_equal(r->windows[1].to_min, 6 * 60);
    assert_true(r->max_rps == 500);
    assert_int_equal(r->npreflight, 1);
    assert_string_equal(r->preflight[0].method, "GET");
    assert_string_equal(r->preflight[0].expect_body, "ok");
    snprintf(want, sizeof(want), "%s/rollout-reports", dir);
    assert_string_equal(r->report_dir, want);

    snprintf(want, sizeof(want), "%s/switchyard.state.json", dir);
    assert_string_equal(cfg->state_file, want);
    snprintf(want, sizeof(want), "%s/access.log", dir);
    assert_string_equal(cfg->access_log_path, want);
    assert_true(cfg->redis.enabled);
    assert_string_equal(cfg->redis.ns, "switchyard:prod");
    config_free(cfg);
}

static void test_defaults(void **state)
{
    struct conf_errors errs = {0};
    (void)state;

    struct config *cfg = load(MINIMAL, &errs);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, "t.json");
    assert_string_equal(cfg->dir, "/etc/switchyard");
    assert_true(cfg->workers >= 1);
    assert_null(cfg->admin.socket);
    assert_int_equal(cfg->admin.socket_mode, 0660);
    assert_int_equal(cfg->admin.nallow_uids, 1);
    assert_int_equal(cfg->admin.allow_uids[0], getuid());
    assert_false(cfg->admin.has_http);
    assert_int_equal(cfg->routing.stable, CONF_BLUE);
    assert_int_equal(cfg->routing.candidate_bp, 0);
    assert_null(cfg->routing.sticky_cookie);
    assert_false(cfg->routing.sticky_client_addr); /* no sticky object: random per request */
    assert_null(cfg->routing.override_header);
    assert_int_equal(cfg->timeouts.client_header_ms, 10000);
    assert_int_equal(cfg->timeouts.client_idle_ms, 60000);
    assert_int_equal(cfg->timeouts.connect_ms, 2000);
    assert_int_equal(cfg->timeouts.upstream_header_ms, 30000);
    assert_int_equal(cfg->timeouts.body_idle_ms, 60000);
    assert_int_equal(cfg->timeouts.drain_ms, 30000);
    assert_int_equal(cfg->limits.max_connections, 10000);
    assert_int_equal(cfg->limits.max_header_bytes, 32768);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_false(cfg->health.enabled);
    assert_string_equal(cfg->health.path, "/healthz");
    assert_int_equal(cfg->health.interval_ms, 1000);
    assert_int_equal(cfg->health.timeout_ms, 500);
    assert_int_equal(cfg->health.rise, 2);
    assert_int_equal(cfg->health.fall, 3);
    assert_int_equal(cfg->health.expect_status, 200);
    assert_false(cfg->detector.enabled);
    assert_int_equal(cfg->detector.window_s, 30);
    assert_int_equal(cfg->detector.min_requests, 100);
    assert_int_equal(cfg->detector.max_p99_ms, 1000);
    assert_int_equal(cfg->detector.fast_consecutive_failures, 10);
    assert_false(cfg->rollout.enabled);
    assert_int_equal(cfg->rollout.nsteps, 6);
    assert_int_equal(cfg->rollout.steps_bp[3], 2500);
    assert_int_equal(cfg->rollout.step_s, 300);
    assert_int_equal(cfg->rollout.nwindows, 0);
    assert_false(cfg->redis.enabled);
    assert_string_equal(cfg->redis.ns, "switchyard");
    assert_int_equal(cfg->redis.lease_ms, 5000);
    assert_null(cfg->state_file);
    assert_null(cfg->audit_log_path);
    config_free(cfg);
}

/* A request's tried servers are one 64-bit mask: 64 servers at most. */
static void test_pool_size_limit(void **state)
{
    char text[16384];
    size_t used;
    struct conf_errors errs = {0};
    struct config *cfg;

    for (int n = 64; n <= 65; n++) {
        used = (size_t)snprintf(text, sizeof(text),
                                "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}], \"pools\": "
                                "{\"green\": {\"servers\": [{\"name\": \"g\", \"addr\": "
                                "\"127.0.0.1:9\"}]}, \"blue\": {\"servers\": [");
        for (int i = 0; i < n; i++)
            used += (size_t)snprintf(text + used, sizeof(text) - used,
                                     "%s{\"name\": \"b%d\", \"addr\": \"127.0.0.1:%d\"}",
                                     i ? ", " : "", i, 10000 + i);
        snprintf(text + used, sizeof(text) - used, "]}}}");
        cfg = config_load_string(text, strlen(text), "t.json", "/", &errs);
        if (n == 64) {
            assert_non_null(cfg);
            config_free(cfg);
            continue;
        }
        assert_null(cfg);
        assert_int_equal(errs.n, 1);
        assert_non_null(strstr(errs.msgs[0], "pools.blue.servers: at most 64 servers per pool "
                                             "(got 65)"));
        conf_errors_clear(&errs);
    }
}

/* admin.allow_gids: none by default, any number of gids, each like a uid. */
static void test_allow_gids(void **state)
{
    struct conf_errors errs = {0};
    (void)state;

    struct config *cfg = load(MINIMAL, &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->admin.nallow_gids, 0);
    assert_null(cfg->admin.allow_gids);
    config_free(cfg);

    cfg = load(WITH("\"admin\": {\"allow_uids\": [0], \"allow_gids\": [0, 4294967294]}"), &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_int_equal(cfg->admin.nallow_uids, 1);
    assert_int_equal(cfg->admin.nallow_gids, 2);
    assert_int_equal(cfg->admin.allow_gids[0], 0);
    assert_int_equal(cfg->admin.allow_gids[1], 4294967294u);
    config_free(cfg);

    cfg = load(WITH("\"admin\": {\"allow_gids\": []}"), &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->admin.nallow_gids, 0);
    config_free(cfg);
}

static void test_section_defaults(void **state)
{
    struct conf_errors errs = {0};
    (void)state;

    struct config *cfg =
        load(WITH("\"routing\": {\"sticky\": {}, \"override\": {}},\n"
                  "\"rollout\": {\"windows\": [{\"from\": \"23:30\", \"to\": \"00:30\"}],"
                  " \"preflight\": [{\"path\": \"/ready\"}]},\n"
                  "\"redis\": {}, \"state\": {}, \"access_log\": {}"),
             &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_true(cfg->routing.sticky_client_addr);
    assert_string_equal(cfg->routing.override_header, "X-Switchyard-Pool");
    assert_int_equal(cfg->routing.noverride_allow, 2);
    assert_int_equal(cfg->routing.override_allow[0].family, AF_INET);
    assert_int_equal(cfg->routing.override_allow[1].family, AF_INET6);
    assert_int_equal(cfg->rollout.windows[0].days, 0x7F);
    assert_string_equal(cfg->rollout.windows[0].tz, "UTC");
    assert_int_equal(cfg->rollout.windows[0].from_min, 23 * 60 + 30);
    assert_int_equal(cfg->rollout.windows[0].to_min, 30);
    assert_string_equal(cfg->rollout.preflight[0].method, "GET");
    assert_int_equal(cfg->rollout.preflight[0].expect_status, 200);
    assert_null(cfg->rollout.preflight[0].expect_body);
    assert_string_equal(cfg->redis.url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg->state_file, "/etc/switchyard/switchyard.state.json");
    assert_null(cfg->audit_log_path); /* no default: an audit log is asked for */
    assert_string_equal(cfg->access_log_path, "/etc/switchyard/access.log");
    config_free(cfg);
}

static void test_values(void **state)
{
    struct conf_errors errs = {0};
    (void)state;

    struct config *cfg = load(
        WITH("\"workers\": 7, \"routing\": {\"stable\": \"green\", \"candidate_percent\": 12.34},\n"
             "\"rollout\": {\"steps\": [0.5, 2.25, 1e1, 100.00],"
             " \"windows\": [{\"days\": \"mon,wed-fri\", \"from\": \"01:00\", \"to\": \"02:00\"},"
             " {\"days\": \"fri-mon\", \"from\": \"01:00\", \"to\": \"02:00\"},"
             " {\"days\": \"daily\", \"from\": \"00:00\", \"to\": \"23:59\"}]},\n"
             "\"admin\": {\"socket\": \"/run/sy.sock\", \"socket_mode\": \"600\"},\n"
             "\"state\": {\"file\": \"./state/s.json\", \"audit_log\": \"audit/events.jsonl\"},"
             " \"access_log\": {\"path\": \"/var/log/a\"}"),
        &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_int_equal(cfg->workers, 7);
    assert_int_equal(cfg->routing.stable, CONF_GREEN);
    assert_int_equal(cfg->routing.candidate_bp, 1234);
    assert_int_equal(cfg->rollout.nsteps, 4);
    assert_int_equal(cfg->rollout.steps_bp[0], 50);
    assert_int_equal(cfg->rollout.steps_bp[1], 225);
    assert_int_equal(cfg->rollout.steps_bp[2], 1000);
    assert_int_equal(cfg->rollout.steps_bp[3], 10000);
    assert_int_equal(cfg->rollout.windows[0].days, 0x1D); /* mon, wed, thu, fri */
    assert_int_equal(cfg->rollout.windows[1].days, 0x71); /* fri, sat, sun, mon */
    assert_int_equal(cfg->rollout.windows[2].days, 0x7F);
    assert_int_equal(cfg->rollout.windows[2].to_min, 23 * 60 + 59);
    assert_string_equal(cfg->admin.socket, "/run/sy.sock");
    assert_int_equal(cfg->admin.socket_mode, 0600);
    assert_string_equal(cfg->state_file, "/etc/switchyard/state/s.json");
    assert_string_equal(cfg->audit_log_path, "/etc/switchyard/audit/events.jsonl");
    assert_string_equal(cfg->access_log_path, "/var/log/a");
    config_free(cfg);
}

struct bad_case {
    const char *name;
    const char *text;
    const char *want[6]; /* every message, in order; NULL-terminated */
};

static const struct bad_case bad_cases[] = {
    {"unknown top-level key",
     WITH("\"worker\": 2"),
     {"t.json:3:1: worker: unknown key (did you mean \"workers\"?)"}},
    {"unknown nested key",
     WITH("\"health\": {\"interval\": 1000}"),
     {"t.json:3:12: health.interval: unknown key (did you mean \"interval_ms\"?)"}},
    {"unknown deep key without a near match",
     WITH("\"detector\": {\"fast_rollback\": {\"failures\": 3}}"),
     {"t.json:3:32: detector.fast_rollback.failures: unknown key"}},
    {"detector window longer than the windows keep",
     WITH("\"detector\": {\"window_s\": 61}"),
     {"t.json:3:26: detector.window_s: out of range 1..60 (got 61)"}},
    {"unknown key with control characters",
     WITH("\"a\\nb\": 1"),
     {"t.json:3:1: a\\nb: unknown key"}},
    {"string for an integer",
     WITH("\"workers\": \"4\""),
     {"t.json:3:12: workers: expected an integer, got \"4\""}},
    {"fraction for an integer",
     WITH("\"workers\": 2.5"),
     {"t.json:3:12: workers: expected an integer, got 2.5"}},
    {"object for an array",
     WITH("\"rollout\": {\"steps\": {}}"),
     {"t.json:3:22: rollout.steps: expected an array, got an object"}},
    {"workers out of range",
     WITH("\"workers\": 300"),
     {"t.json:3:12: workers: out of range 0..256 (got 300)"}},
    {"timeout out of range",
     WITH("\"timeouts_ms\": {\"connect\": 0}"),
     {"t.json:3:28: timeouts_ms.connect: out of range 1..86400000 (got 0)"}},
    {"limit out of range",
     WITH("\"limits\": {\"max_header_bytes\": 512}"),
     {"t.json:3:32: limits.max_header_bytes: out of range 1024..1048576 (got 512)"}},
    {"error rate out of range",
     WITH("\"detector\": {\"max_error_rate\": 1.5}"),
     {"t.json:3:32: detector.max_error_rate: out of range 0..1 (got 1.5)"}},
    {"ratio below one",
     WITH("\"detector\": {\"max_p99_ratio\": 0.5}"),
     {"t.json:3:31: detector.max_p99_ratio: must be at least 1 (got 0.5)"}},
    {"duplicate server name across pools",
     "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}],\n"
     " \"pools\": {\n"
     "  \"blue\": {\"servers\": [{\"name\": \"web-1\", \"addr\": \"127.0.0.1:9001\"}]},\n"
     "  \"green\": {\"servers\": [{\"name\": \"web-1\", \"addr\": \"127.0.0.1:9002\"}]}}}\n",
     {"t.json:4:34: pools.green.servers[0].name: duplicate server name \"web-1\" "
      "(first used at pools.blue.servers[0].name)"}},
    {"bad port",
     "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}],\n"
     " \"pools\": {\n"
     "  \"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": \"127.0.0.1:99999\"}]},\n"
     "  \"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": \"127.0.0.1:9002\"}]}}}\n",
     {"t.json:3:47: pools.blue.servers[0].addr: cannot parse \"127.0.0.1:99999\": "
      "port out of range 1..65535"}},
    {"bad address",
     "{\"listen\": [{\"addr\": \"example.com:80\"}],\n" POOLS "}",
     {"t.json:1:22: listen[0].addr: cannot parse \"example.com:80\": host must be an IPv4 "
      "address, a bracketed IPv6 address or localhost"}},
    {"bad server name and weight",
     "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}],\n"
     " \"pools\": {\n"
     "  \"blue\": {\"servers\": [{\"name\": \"b 1\", \"addr\": \"127.0.0.1:9001\", \"weight\": "
     "0}]},\n"
     "  \"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": \"127.0.0.1:9002\"}]}}}\n",
     {"t.json:3:33: pools.blue.servers[0].name: must be at most 64 characters from A-Z a-z 0-9 . _ "
      "- (got \"b 1\")",
      "t.json:3:76: pools.blue.servers[0].weight: out of range 1..1000 (got 0)"}},
    {"bad CIDR",
     WITH("\"routing\": {\"override\": {\"allow_from\": [\"127.0.0.1/32\", \"10.0.0.0/33\"]}}"),
     {"t.json:3:57: routing.override.allow_from[1]: cannot parse \"10.0.0.0/33\": prefix length "
      "out of range 0..32"}},
    {"bad window days",
     WITH("\"rollout\": {\"windows\": [{\"days\": \"mon-fry\", \"from\": \"01:00\", \"to\": "
          "\"05:00\"}]}"),
     {"t.json:3:34: rollout.windows[0].days: cannot parse \"mon-fry\": unknown day (use mon, tue, "
      "wed, thu, fri, sat, sun, a range such as mon-fri, or daily)"}},
    {"bad window time",
     WITH("\"rollout\": {\"windows\": [{\"from\": \"25:00\", \"to\": \"05:00\"}]}"),
     {"t.json:3:34: rollout.windows[0].from: cannot parse \"25:00\": expected HH:MM from 00:00 "
      "to 23:59"}},
    {"unknown time zone",
     WITH("\"rollout\": {\"windows\": [{\"from\": \"01:00\", \"to\": \"05:00\", \"tz\": "
          "\"Mars/Olympus\"}]}"),
     {"t.json:3:64: rollout.windows[0].tz: unknown time zone \"Mars/Olympus\" (not found under "
      "/usr/share/zoneinfo)"}},
    {"time zone that climbs out of the zone folder",
     WITH("\"rollout\": {\"windows\": [{\"from\": \"01:00\", \"to\": \"05:00\", \"tz\": "
          "\"../../etc/passwd\"}]}"),
     {"t.json:3:64: rollout.windows[0].tz: must be an IANA zone name such as \"Europe/Berlin\", "
      "not a path (got \"../../etc/passwd\")"}},
    {"empty window",
     WITH("\"rollout\": {\"windows\": [{\"from\": \"01:00\", \"to\": \"01:00\"}]}"),
     {"t.json:3:49: rollout.windows[0].to: must differ from \"from\": a window cannot be empty"}},
    {"window without from",
     WITH("\"rollout\": {\"windows\": [{\"to\": \"05:00\"}]}"),
     {"t.json:3:25: rollout.windows[0].from: missing required key"}},
    {"steps not increasing",
     WITH("\"rollout\": {\"steps\": [1, 5, 5, 100]}"),
     {"t.json:3:29: rollout.steps[2]: steps must increase: 5 follows 5"}},
    {"last step not 100",
     WITH("\"rollout\": {\"steps\": [1, 50]}"),
     {"t.json:3:26: rollout.steps[1]: the last step must be 100 (got 50)"}},
    {"zero step",
     WITH("\"rollout\": {\"steps\": [0, 100]}"),
     {"t.json:3:23: rollout.steps[0]: must be greater than 0"}},
    {"step with three decimals",
     WITH("\"rollout\": {\"steps\": [0.125, 100]}"),
     {"t.json:3:23: rollout.steps[0]: at most two decimals (got 0.125)"}},
    {"candidate percent with three decimals",
     WITH("\"routing\": {\"candidate_percent\": 12.345}"),
     {"t.json:3:34: routing.candidate_percent: at most two decimals (got 12.345)"}},
    {"candidate percent out of range",
     WITH("\"routing\": {\"candidate_percent\": 101}"),
     {"t.json:3:34: routing.candidate_percent: out of range 0..100 (got 101)"}},
    {"JSON syntax error",
     "{\"workers\": 2,\n}",
     {"t.json:2:1: invalid JSON: string or '}' expected near '}'"}},
    {"duplicate JSON key",
     "{\"workers\": 2,\n \"workers\": 3}",
     {"t.json:2:10: invalid JSON: duplicate object key near '\"workers\"'"}},
    {"empty file", "", {"t.json:1:1: invalid JSON: '[' or '{' expected near end of file"}},
    /* Found by fuzz_config: jansson quotes the bytes it stopped at, and a
     * control byte there reached the terminal showing the message. */
    {"control byte before the top level",
     "\x1b[31m{}",
     {"t.json:1:1: invalid JSON: '[' or '{' expected near '\\x1b'"}},
    {"socket path too long",
     WITH("\"admin\": {\"socket\": \"s" K100 "\"}"),
     {"t.json:3:21: admin.socket: socket path too long once made absolute (117 bytes, at most "
      "107): \"/etc/switchyard/s" K100 "\""}},
    {"a path with a control byte",
     WITH("\"admin\": {\"socket\": \"s\\u007fk\"}"),
     {"t.json:3:21: admin.socket: must not contain control characters (got \"s\\x7fk\")"}},
    {"control byte as a value",
     "{\"workers\": \x1b[2J}",
     {"t.json:1:13: invalid JSON: invalid token near '\\x1b'"}},
    {"top level is an array",
     "[1, 2]",
     {"t.json:1:1: expected an object at the top level, got an array"}},
    {"missing listen and pools",
     "{\"workers\": 1}",
     {"t.json:1:1: listen: missing required key", "t.json:1:1: pools: missing required key"}},
    {"empty listen",
     "{\"listen\": [],\n" POOLS "}",
     {"t.json:1:12: listen: must have at least one entry"}},
    {"listen with TLS files that are not there",
     "{\"listen\": [{\"addr\": \"127.0.0.1:8443\", \"tls\": {\"cert\": \"c.pem\", \"key\": "
     "\"k.pem\"}}],\n" POOLS "}",
     {"t.json:1:56: listen[0].tls.cert: cannot read /etc/switchyard/c.pem: No such file or "
      "directory",
      "t.json:1:72: listen[0].tls.key: cannot read /etc/switchyard/k.pem: No such file or "
      "directory"}},
    {"duplicate listen address",
     "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}, {\"addr\": \"localhost:8080\"}],\n" POOLS "}",
     {"t.json:1:50: listen[1].addr: duplicate listen address (also at listen[0].addr)"}},
    {"missing pool",
     "{" LISTEN ",\n"
     "\"pools\": {\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": \"127.0.0.1:9001\"}]}}}",
     {"t.json:2:10: pools.green: missing required key"}},
    {"empty servers",
     "{" LISTEN ",\n"
     "\"pools\": {\"blue\": {\"servers\": []}, \"green\": {\"servers\": [{\"name\": \"g1\", "
     "\"addr\": \"127.0.0.1:9002\"}]}}}",
     {"t.json:2:31: pools.blue.servers: must have at least one server"}},
    {"third pool",
     "{" LISTEN ",\n"
     "\"pools\": {\"red\": {}, \"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": "
     "\"127.0.0.1:9001\"}]}, \"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": "
     "\"127.0.0.1:9002\"}]}}}",
     {"t.json:2:11: pools.red: unknown key"}},
    {"bad stable colour",
     WITH("\"routing\": {\"stable\": \"red\"}"),
     {"t.json:3:23: routing.stable: must be \"blue\" or \"green\" (got \"red\")"}},
    {"cookie name that is not a token",
     WITH("\"routing\": {\"sticky\": {\"cookie\": \"my cookie\"}}"),
     {"t.json:3:34: routing.sticky.cookie: must be an HTTP token (letters, digits and "
      "!#$%&'*+-.^_`|~) (got \"my cookie\")"}},
    {"set_cookie without a cookie name",
     WITH("\"routing\": {\"sticky\": {\"header\": \"X-User\", \"set_cookie\": true}}"),
     {"t.json:3:58: routing.sticky.set_cookie: needs routing.sticky.cookie (the name to set)"}},
    {"string for a boolean",
     WITH("\"routing\": {\"sticky\": {\"client_addr\": \"yes\"}}"),
     {"t.json:3:39: routing.sticky.client_addr: expected a boolean, got \"yes\""}},
    {"health timeout not below interval",
     WITH("\"health\": {\"interval_ms\": 500, \"timeout_ms\": 500}"),
     {"t.json:3:46: health.timeout_ms: timeout_ms (500) must be less than interval_ms (500)"}},
    {"health path without slash",
     WITH("\"health\": {\"path\": \"healthz\"}"),
     {"t.json:3:20: health.path: must start with \"/\" (got \"healthz\")"}},
    {"socket mode as a number",
     WITH("\"admin\": {\"socket_mode\": 660}"),
     {"t.json:3:26: admin.socket_mode: expected a string of octal digits such as \"0660\", got "
      "660"}},
    {"socket mode with a non-octal digit",
     WITH("\"admin\": {\"socket_mode\": \"0999\"}"),
     {"t.json:3:26: admin.socket_mode: cannot parse \"0999\": expected octal digits such as "
      "\"0660\""}},
    {"negative uid",
     WITH("\"admin\": {\"allow_uids\": [0, -1]}"),
     {"t.json:3:29: admin.allow_uids[1]: out of range 0..4294967294 (got -1)"}},
    {"gid (gid_t)-1",
     WITH("\"admin\": {\"allow_gids\": [4294967295]}"),
     {"t.json:3:26: admin.allow_gids[0]: out of range 0..4294967294 (got 4294967295)"}},
    {"gid as a string",
     WITH("\"admin\": {\"allow_gids\": [\"wheel\"]}"),
     {"t.json:3:26: admin.allow_gids[0]: expected an integer, got \"wheel\""}},
    {"gids not an array",
     WITH("\"admin\": {\"allow_gids\": 10}"),
     {"t.json:3:25: admin.allow_gids: expected an array, got 10"}},
    {"redis URL scheme",
     WITH("\"redis\": {\"url\": \"http://127.0.0.1\"}"),
     {"t.json:3:18: redis.url: must start with \"redis://\" or \"unix://\" (got "
      "\"http://127.0.0.1\")"}},
    {"redis lease out of range",
     WITH("\"redis\": {\"lease_ms\": 50}"),
     {"t.json:3:23: redis.lease_ms: out of range 100..600000 (got 50)"}},
    {"audit log that is not a string",
     WITH("\"state\": {\"audit_log\": 5}"),
     {"t.json:3:24: state.audit_log: expected a string, got 5"}},
    {"empty audit log path",
     WITH("\"state\": {\"audit_log\": \"\"}"),
     {"t.json:3:24: state.audit_log: must not be empty"}},
    {"audit log misspelt",
     WITH("\"state\": {\"auditlog\": \"a.jsonl\"}"),
     {"t.json:3:11: state.auditlog: unknown key (did you mean \"audit_log\"?)"}},
    {"preflight without path",
     WITH("\"rollout\": {\"preflight\": [{\"method\": \"GET\"}]}"),
     {"t.json:3:27: rollout.preflight[0].path: missing required key"}},
    {"probe header the probe sets itself",
     WITH("\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": {\"host\": \"a\"}}]}"),
     {"t.json:3:53: rollout.preflight[0].headers.host: \"host\" cannot be set: the probe sends "
      "Host, Connection, Content-Length and Transfer-Encoding itself"}},
    {"probe header name that is not a token",
     WITH("\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": {\"X Y\": \"a\"}}]}"),
     {"t.json:3:53: rollout.preflight[0].headers.X Y: header name must be an HTTP token "
      "(letters, digits and !#$%&'*+-.^_`|~) (got \"X Y\")"}},
    {"probe header value with CR LF",
     WITH("\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": {\"X-A\": \"a\\r\\nB: "
          "c\"}}]}"),
     {"t.json:3:60: rollout.preflight[0].headers.X-A: must not contain control characters "
      "such as CR, LF or NUL (got \"a\\r\\nB: c\")"}},
    {"probe header value with NUL",
     WITH(
         "\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": {\"X-A\": \"a\\u0000\"}}]}"),
     {"t.json:3:68: invalid JSON: \\u0000 is not allowed without JSON_ALLOW_NUL near "
      "'\"a\\u0000\"'"}},
    {"probe header value not a string",
     WITH("\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": {\"X-A\": 1}}]}"),
     {"t.json:3:60: rollout.preflight[0].headers.X-A: expected a string, got 1"}},
    {"probe headers not an object",
     WITH("\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": [\"X-A: 1\"]}]}"),
     {"t.json:3:52: rollout.preflight[0].headers: expected an object, got an array"}},
    {"several errors in one file",
     "{\"workers\": -1,\n"
     " \"listen\": [{\"addr\": \"127.0.0.1:80800\"}],\n"
     " \"pools\": {\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": \"127.0.0.1:9001\", "
     "\"wieght\": 2}]},\n"
     "           \"green\": {\"servers\": []}},\n"
     " \"routing\": {\"candidate_percent\": 5.555}}\n",
     {"t.json:1:13: workers: out of range 0..256 (got -1)",
      "t.json:2:22: listen[0].addr: cannot parse \"127.0.0.1:80800\": port out of range 1..65535",
      "t.json:3:74: pools.blue.servers[0].wieght: unknown key (did you mean \"weight\"?)",
      "t.json:4:33: pools.green.servers: must have at least one server",
      "t.json:5:35: routing.candidate_percent: at most two decimals (got 5.555)"}},
};

static void test_bad_configs(void **state)
{
    size_t failed = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct conf_errors errs = {0};
        struct config *cfg = load(c->text, &errs);
        size_t nwant = 0;
        while (nwant < 6 && c->want[nwant])
            nwant++;
        bool ok = cfg == NULL && errs.n == nwant;
        for (size_t k = 0; ok && k < nwant; k++)
            ok = strcmp(errs.msgs[k], c->want[k]) == 0;
        if (!ok) {
            failed++;
            print_message("case \"%s\": got %zu message(s):\n", c->name, errs.n);
            for (size_t k = 0; k < errs.n; k++)
                print_message("  %s\n", errs.msgs[k]);
            for (size_t k = 0; k < nwant; k++)
                print_message("  want: %s\n", c->want[k]);
        }
        config_free(cfg);
        conf_errors_clear(&errs);
    }
    assert_int_equal(failed, 0);
}

static void test_bad_config_needs_no_error_list(void **state)
{
    (void)state;
    assert_null(load(WITH("\"workers\": 300"), NULL));
    assert_null(load("{", NULL));
}

static void test_errors_accumulate(void **state)
{
    struct conf_errors errs = {0};
    (void)state;

    conf_errors_add(&errs, "first %d", 1);
    assert_null(load(WITH("\"workers\": 300"), &errs));
    assert_int_equal(errs.n, 2);
    assert_string_equal(errs.msgs[0], "first 1");
    conf_errors_clear(&errs);
    assert_int_equal(errs.n, 0);
    assert_null(errs.msgs);
    conf_errors_clear(&errs);
}

static void test_missing_file(void **state)
{
    struct conf_errors errs = {0};
    (void)state;

    assert_null(config_load_file("/nonexistent/switchyard.json", &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msgs[0],
                        "/nonexistent/switchyard.json: cannot read: No such file or directory");
    conf_errors_clear(&errs);
}

static void test_colour_names(void **state)
{
    (void)state;
    assert_string_equal(conf_colour_name(CONF_BLUE), "blue");
    assert_string_equal(conf_colour_name(CONF_GREEN), "green");
}

static void test_jsonpos_paths(void **state)
{
    const char *text = "{\"a\": 1,\n"
                       "\t\"b\": [10, {\"c\": \"x\"}],\n"
                       "  \"d.e\": {\"f\\u0067\": true}, \"\": null}";
    struct jsonpos_loc loc;
    (void)state;

    struct jsonpos *jp = jsonpos_scan(text, strlen(text));
    assert_non_null(jp);
    assert_int_equal(jsonpos_find(jp, "", &loc), 0);
    assert_int_equal(loc.line, 1);
    assert_int_equal(loc.col, 1);
    assert_int_equal(loc.len, strlen(text));

    assert_int_equal(jsonpos_find(jp, "a", &loc), 0);
    assert_int_equal(loc.key_line, 1);
    assert_int_equal(loc.key_col, 2);
    assert_int_equal(loc.col, 7);
    assert_int_equal(loc.len, 1);

    assert_int_equal(jsonpos_find(jp, "b", &loc), 0); /* a tab counts as one column */
    assert_int_equal(loc.key_line, 2);
    assert_int_equal(loc.key_col, 2);
    assert_int_equal(loc.col, 7);
    assert_int_equal(jsonpos_find(jp, "b[1].c", &loc), 0);
    assert_int_equal(loc.col, 18);
    assert_memory_equal(loc.text, "\"x\"", 3);
    assert_int_equal(jsonpos_find(jp, "b[0]", &loc), 0);
    assert_int_equal(loc.key_col, loc.col);

    assert_int_equal(jsonpos_find(jp, "d.e.fg", &loc), 0); /* decoded key, dotted parent */
    assert_int_equal(loc.key_line, 3);
    assert_int_equal(loc.key_col, 11);
    assert_int_equal(jsonpos_find(jp, ".", &loc), -1);
    assert_int_equal(jsonpos_find(jp, "", &loc), 0);

    assert_int_equal(jsonpos_find(jp, "b[2]", &loc), -1);
    assert_int_equal(jsonpos_find(jp, "a.x", &loc), -1);
    assert_int_equal(jsonpos_find(jp, "b.c", &loc), -1);
    assert_int_equal(jsonpos_find(jp, "zz", &loc), -1);
    assert_int_equal(jsonpos_find(jp, "b[x]", &loc), -1);
    assert_int_equal(jsonpos_count(jp), 9);
    jsonpos_free(jp);
}

/* Found by fuzz_config: in a document whose only keys are empty there is no
 * key buffer at all, and the empty key was hashed as if it were [0]. */
static void test_jsonpos_only_empty_keys(void **state)
{
    const char *text = "{\"\": [5]}";
    struct jsonpos_loc loc;
    (void)state;

    struct jsonpos *jp = jsonpos_scan(text, strlen(text));
    assert_non_null(jp);
    assert_int_equal(jsonpos_find(jp, "[0]", &loc), 0);
    assert_int_equal(loc.col, 7);
    assert_int_equal(loc.len, 1);
    jsonpos_free(jp);
}

static void test_jsonpos_bad_input(void **state)
{
    static const char *const texts[] = {
        "",    "   ",       "{",      "{\"a",       "{\"a\":", "{\"a\": [1, 2", "[\"\\u12", "{\"\\",
        "}}}", "{\"a\" 1}", "[1,,2]", "{\"a\":1,}", "\"abc",   "nul",           "[[[[[[[[",
    };
    struct jsonpos_loc loc;
    (void)state;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        /* A copy without a terminating NUL lets ASan catch any over-read. */
        size_t n = strlen(texts[i]);
        char *copy = malloc(n ? n : 1);
        memcpy(copy, texts[i], n);
        struct jsonpos *jp = jsonpos_scan(copy, n);
        assert_non_null(jp);
        int rc = jsonpos_find(jp, "a", &loc);
        assert_true(rc == 0 || rc == -1);
        rc = jsonpos_find(jp, "[0]", &loc);
        assert_true(rc == 0 || rc == -1);
        jsonpos_free(jp);
        free(copy);
    }

    /* Deep nesting must not exhaust the stack. */
    size_t depth = 200000;
    char *deep = malloc(depth);
    memset(deep, '[', depth);
    struct jsonpos *jp = jsonpos_scan(deep, depth);
    assert_non_null(jp);
    assert_int_equal(jsonpos_count(jp), depth);
    assert_int_equal(jsonpos_find(jp, "[0][0][0]", &loc), 0);
    assert_int_equal(loc.col, 4);
    jsonpos_free(jp);
    free(deep);
    jsonpos_free(NULL);
}

static void test_parse_bp(void **state)
{
    static const struct {
        const char *text;
        int rc;
        uint32_t bp;
    } cases[] = {
        {"0", 0, 0},
        {"10", 0, 1000},
        {"12.34", 0, 1234},
        {"12.3", 0, 1230},
        {"100.00", 0, 10000},
        {"1e1", 0, 1000},
        {"1.5E+1", 0, 1500},
        {"1200e-4", 0, 12},
        {"0.000e5", 0, 0},
        {"-0", 0, 0},
        {"12.345", -1, 0},
        {"0.001", -1, 0},
        {"1e-3", -1, 0},
        {"12.3400000001", -1, 0},
        {"-1", -2, 0},
        {"1e10", -2, 0},
        {"42949672.96", -2, 0},
        {"42949672.95", 0, UINT32_MAX},
        {"", -2, 0},
        {"1x", -2, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t bp = 0;
        int rc = cfgwalk_parse_bp(cases[i].text, strlen(cases[i].text), &bp);
        if (rc != cases[i].rc || (rc == 0 && bp != cases[i].bp))
            fail_msg("\"%s\": rc %d bp %u, want rc %d bp %u", cases[i].text, rc, bp, cases[i].rc,
                     cases[i].bp);
    }
}

/* routing.sticky.set_cookie follows the cookie unless it is turned off. */
static void test_sticky_set_cookie(void **state)
{
    static const struct {
        const char *text;
        bool want;
    } cases[] = {
        {WITH("\"routing\": {\"sticky\": {\"cookie\": \"sy\"}}"), true},
        {WITH("\"routing\": {\"sticky\": {\"cookie\": \"sy\", \"set_cookie\": false}}"), false},
        {WITH("\"routing\": {\"sticky\": {\"header\": \"X-User\"}}"), false},
        {WITH("\"routing\": {\"sticky\": {\"header\": \"X-User\", \"set_cookie\": false}}"), false},
        {WITH("\"routing\": {\"candidate_percent\": 5}"), false},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_errors errs = {0};
        struct config *cfg = load(cases[i].text, &errs);
        conf_errors_print(&errs, stderr);
        assert_non_null(cfg);
        if (cfg->routing.sticky_set_cookie != cases[i].want)
            fail_msg("case %zu: set_cookie %d, want %d", i, cfg->routing.sticky_set_cookie,
                     cases[i].want);
        config_free(cfg);
    }
}

/* rollout.preflight[].headers: kept in order; at most CONF_PROBE_HEADERS_MAX. */
static void test_probe_headers(void **state)
{
    struct conf_errors errs = {0};
    char many[2048], text[4096];
    size_t len = 0;
    (void)state;

    struct config *cfg =
        load(WITH("\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": "
                  "{\"X-Token\": \"s3cret\", \"Accept\": \"*/*\", \"X-Empty\": \"\"}}]}"),
             &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    const struct conf_probe *pr = &cfg->rollout.preflight[0];
    assert_int_equal(pr->nheaders, 3);
    assert_string_equal(pr->headers[0].name, "X-Token");
    assert_string_equal(pr->headers[0].value, "s3cret");
    assert_string_equal(pr->headers[1].name, "Accept");
    assert_string_equal(pr->headers[2].value, "");
    config_free(cfg);

    for (int i = 0; i <= CONF_PROBE_HEADERS_MAX; i++)
        len +=
            (size_t)snprintf(many + len, sizeof(many) - len, "%s\"X-%d\": \"v\"", i ? ", " : "", i);
    snprintf(text, sizeof(text),
             WITH("\"rollout\": {\"preflight\": [{\"path\": \"/\", \"headers\": {%s}}]}"), many);
    assert_null(load(text, &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msgs[0],
                        "t.json:3:52: rollout.preflight[0].headers: at most 32 headers "
                        "(got 33)");
    conf_errors_clear(&errs);
}

/* rollout.report_dir: a folder resolved like state.file; absent = none. */
static void test_rollout_report_dir(void **state)
{
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {WITH("\"rollout\": {\"report_dir\": \"\"}"),
         "t.json:3:27: rollout.report_dir: must not be empty"},
        {WITH("\"rollout\": {\"report_dir\": 5}"),
         "t.json:3:27: rollout.report_dir: expected a string, got 5"},
    };
    struct conf_errors errs = {0};
    struct config *cfg;
    (void)state;

    cfg = load(WITH("\"rollout\": {\"report_dir\": \"./reports\"}"), &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_string_equal(cfg->rollout.report_dir, "/etc/switchyard/reports");
    config_free(cfg);
    cfg = load(WITH("\"rollout\": {\"report_dir\": \"/var/lib/switchyard/reports\"}"), &errs);
    assert_non_null(cfg);
    assert_string_equal(cfg->rollout.report_dir, "/var/lib/switchyard/reports");
    config_free(cfg);
    cfg = load(WITH("\"rollout\": {}"), &errs);
    assert_non_null(cfg);
    assert_null(cfg->rollout.report_dir);
    config_free(cfg);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(load(bad[i].text, &errs));
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.msgs[0], bad[i].want);
        conf_errors_clear(&errs);
    }
}

/* "user" and "group": names or numeric ids, resolved at load; root is the one
 * account every system has. */
static void test_run_as(void **state)
{
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {WITH("\"user\": \"no-such-user-sy\""),
         "t.json:3:9: user: no such user \"no-such-user-sy\""},
        {WITH("\"user\": \"root\", \"group\": \"no-such-group-sy\""),
         "t.json:3:26: group: no such group \"no-such-group-sy\""},
        {WITH("\"group\": \"root\""),
         "t.json:3:1: group: needs \"user\" too: privileges are dropped to both"},
        {WITH("\"user\": \"4000000001\""),
         "t.json:3:9: user: uid 4000000001 is not in the user database, so it has no primary "
         "group: set \"group\" too"},
        {WITH("\"user\": 0"), "t.json:3:9: user: expected a string, got 0"},
        {WITH("\"user\": \"\""), "t.json:3:9: user: must not be empty"},
    };
    struct conf_errors errs = {0};
    struct config *cfg;
    (void)state;

    cfg = load(MINIMAL, &errs);
    assert_non_null(cfg);
    assert_null(cfg->run_as.user);
    config_free(cfg);
    cfg = load(WITH("\"user\": \"root\""), &errs);
    assert_non_null(cfg);
    assert_string_equal(cfg->run_as.user, "root");
    assert_null(cfg->run_as.group);
    assert_int_equal(cfg->run_as.uid, 0);
    assert_int_equal(cfg->run_as.gid, 0);
    config_free(cfg);
    cfg = load(WITH("\"user\": \"4000000001\", \"group\": \"4000000002\""), &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_int_equal(cfg->run_as.uid, 4000000001u);
    assert_int_equal(cfg->run_as.gid, 4000000002u);
    config_free(cfg);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(load(bad[i].text, &errs));
        if (errs.n != 1 || strcmp(errs.msgs[0], bad[i].want) != 0)
            conf_errors_print(&errs, stderr);
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.msgs[0], bad[i].want);
        conf_errors_clear(&errs);
    }
}

/* ------------------------------------------------------------------------ */
/* listen[].tls: the files are loaded at config time, so each test gets a
 * fresh folder with a self-signed certificate, its key and a stray key. */

struct tls_files {
    char dir[64];
};

static EVP_PKEY *write_key(const char *dir, const char *name)
{
    char path[128];
    EVP_PKEY *key = EVP_EC_gen("P-256");
    FILE *f;

    assert_non_null(key);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    return key;
}

static void write_cert(const char *dir, EVP_PKEY *key)
{
    char path[128];
    X509 *x = X509_new();
    X509_NAME *name;
    FILE *f;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    X509_free(x);
}

static int tls_setup(void **state)
{
    struct tls_files *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/sy-test-tls.XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    EVP_PKEY *key = write_key(t->dir, "key.pem");
    write_cert(t->dir, key);
    EVP_PKEY_free(key);
    EVP_PKEY_free(write_key(t->dir, "other.pem"));
    *state = t;
    return 0;
}

static int tls_teardown(void **state)
{
    struct tls_files *t = *state;
    static const char *const names[] = {"cert.pem", "key.pem", "other.pem"};
    char path[128];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", t->dir, names[i]);
        unlink(path);
    }
    rmdir(t->dir);
    free(t);
    return 0;
}

/* A config whose listener has cert.pem, the key named key and the members
 * extra (", ..." or ""). */
static struct config *load_tls(const struct tls_files *t, const char *key, const char *extra,
                               struct conf_errors *errs)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "{\"listen\": [{\"addr\": \"127.0.0.1:8443\", \"tls\": {\"cert\": \"%s/cert.pem\", "
             "\"key\": \"%s/%s\"%s}}],\n" POOLS "}",
             t->dir, t->dir, key, extra);
    return load(text, errs);
}

static void test_tls(void **state)
{
    const struct tls_files *t = *state;
    struct conf_errors errs = {0};
    struct config *cfg = load_tls(t, "key.pem", "", &errs);

    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_true(cfg->listen[0].has_tls);
    assert_int_equal(cfg->listen[0].tls.min_version, CONF_TLS_1_2);
    assert_null(cfg->listen[0].tls.ciphers);
    assert_null(cfg->listen[0].tls.ciphersuites);
    config_free(cfg);

    cfg = load_tls(t, "key.pem",
                   ", \"min_version\": \"1.3\", \"ciphers\": \"ECDHE+AESGCM\", "
                   "\"ciphersuites\": \"TLS_AES_256_GCM_SHA384\"",
                   &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_int_equal(cfg->listen[0].tls.min_version, CONF_TLS_1_3);
    assert_string_equal(cfg->listen[0].tls.ciphers, "ECDHE+AESGCM");
    assert_string_equal(cfg->listen[0].tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
    config_free(cfg);
}

static void test_tls_bad(void **state)
{
    static const struct {
        const char *key, *extra, *want; /* want: the message after "t.json:1:COL: " */
    } bad[] = {
        {"other.pem", "",
         "listen[0].tls.key: not a PEM private key for the certificate: key values mismatch"},
        {"nokey.pem", "", "listen[0].tls.key: cannot read %s/nokey.pem: No such file or directory"},
        {"cert.pem", "",
         "listen[0].tls.key: not a PEM private key for the certificate: unsupported"},
        {"key.pem", ", \"min_version\": \"1.1\"",
         "listen[0].tls.min_version: must be \"1.2\" or \"1.3\" (got \"1.1\")"},
        {"key.pem", ", \"min_version\": 1.3",
         "listen[0].tls.min_version: expected a string, got 1.3"},
        {"key.pem", ", \"ciphers\": \"NO-SUCH-CIPHER\"",
         "listen[0].tls.ciphers: no usable cipher: no cipher match"},
        {"key.pem", ", \"ciphersuites\": \"TLS_NO_SUCH\"",
         "listen[0].tls.ciphersuites: not a valid TLS 1.3 cipher suite list: no cipher match"},
    };
    const struct tls_files *t = *state;
    struct conf_errors errs = {0};
    char want[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(load_tls(t, bad[i].key, bad[i].extra, &errs));
        if (errs.n != 1)
            conf_errors_print(&errs, stderr);
        assert_int_equal(errs.n, 1);
        snprintf(want, sizeof(want), bad[i].want, t->dir);
        const char *msg = errs.msgs[0], *at = strstr(msg, ": listen[0]");
        assert_non_null(at);
        assert_true(strncmp(msg, "t.json:1:", 9) == 0);
        assert_string_equal(at + 2, want);
        conf_errors_clear(&errs);
    }
}

/* listen[].tls.certificates: the SNI certificates, checked like the default
 * one. */
static struct config *load_tls_certs(const struct tls_files *t, const char *certs,
                                     struct conf_errors *errs)
{
    char extra[640];

    snprintf(extra, sizeof(extra), ", \"certificates\": %s", certs);
    return load_tls(t, "key.pem", extra, errs);
}

static void test_tls_certs(void **state)
{
    const struct tls_files *t = *state;
    struct conf_errors errs = {0};
    char certs[256], want[256];

    snprintf(certs, sizeof(certs), "[{\"cert\": \"%s/cert.pem\", \"key\": \"%s/key.pem\"}]", t->dir,
             t->dir);
    struct config *cfg = load_tls_certs(t, certs, &errs);
    if (cfg == NULL)
        conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_int_equal(cfg->listen[0].tls.ncerts, 1);
    snprintf(want, sizeof(want), "%s/cert.pem", t->dir);
    assert_string_equal(cfg->listen[0].tls.certs[0].cert, want);
    snprintf(want, sizeof(want), "%s/key.pem", t->dir);
    assert_string_equal(cfg->listen[0].tls.certs[0].key, want);
    config_free(cfg);
}

static void expect_tls_certs_error(const struct tls_files *t, const char *certs, const char *want)
{
    struct conf_errors errs = {0};

    assert_null(load_tls_certs(t, certs, &errs));
    if (errs.n != 1)
        conf_errors_print(&errs, stderr);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], want));
    conf_errors_clear(&errs);
}

static void test_tls_certs_bad(void **state)
{
    const struct tls_files *t = *state;
    char certs[512];
    size_t len = 0;

    snprintf(certs, sizeof(certs), "[{\"cert\": \"%s/cert.pem\", \"key\": \"%s/other.pem\"}]",
             t->dir, t->dir);
    expect_tls_certs_error(t, certs,
                           "listen[0].tls.certificates[0].key: not a PEM private key for the "
                           "certificate: key values mismatch");
    expect_tls_certs_error(t, "{}", "listen[0].tls.certificates: expected an array");
    snprintf(certs, sizeof(certs), "[{\"cert\": \"%s/cert.pem\"}]", t->dir);
    expect_tls_certs_error(t, certs, "listen[0].tls.certificates[0].key: missing required key");
    len += (size_t)snprintf(certs + len, sizeof(certs) - len, "[{}");
    for (int i = 1; i <= CONF_TLS_CERTS_MAX; i++)
        len += (size_t)snprintf(certs + len, sizeof(certs) - len, ", {}");
    snprintf(certs + len, sizeof(certs) - len, "]");
    expect_tls_certs_error(t, certs,
                           "listen[0].tls.certificates: at most 64 certificates (got 65)");
}

/* ------------------------------------------------------------------------ */
/* pools.<colour>.tls: TLS to the servers. The CA bundle is loaded at config
 * time too, so these use the same fixture folder (cert.pem as the CA). */

/* A config whose green pool has "tls": tls (printf format, %s: the fixture
 * folder), on line 3 from column 8. */
static struct config *load_pool_tls(const struct tls_files *t, const char *tls,
                                    struct conf_errors *errs)
{
    char member[512], text[1024];

    snprintf(member, sizeof(member), tls, t->dir);
    snprintf(text, sizeof(text),
             "{" LISTEN ",\n\"pools\": {\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": "
             "\"127.0.0.1:9001\"}]}, \"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": "
             "\"127.0.0.1:9002\"}],\n\"tls\": %s}}}\n",
             member);
    return load(text, errs);
}

static void test_pool_tls(void **state)
{
    const struct tls_files *t = *state;
    struct conf_errors errs = {0};
    char want[128];
    struct config *cfg = load_pool_tls(t, "{}", &errs);

    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_false(cfg->pools[CONF_BLUE].tls.enabled);
    assert_true(cfg->pools[CONF_GREEN].tls.enabled);
    assert_true(cfg->pools[CONF_GREEN].tls.verify);
    assert_null(cfg->pools[CONF_GREEN].tls.ca);
    assert_null(cfg->pools[CONF_GREEN].tls.sni);
    config_free(cfg);

    cfg = load_pool_tls(t, "{\"ca\": \"%s/cert.pem\", \"sni\": \"green-1.internal\"}", &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    snprintf(want, sizeof(want), "%s/cert.pem", t->dir);
    assert_string_equal(cfg->pools[CONF_GREEN].tls.ca, want);
    assert_string_equal(cfg->pools[CONF_GREEN].tls.sni, "green-1.internal");
    config_free(cfg);

    cfg = load_pool_tls(t, "{\"verify\": false}", &errs);
    conf_errors_print(&errs, stderr);
    assert_non_null(cfg);
    assert_false(cfg->pools[CONF_GREEN].tls.verify);
    config_free(cfg);
}

static void test_pool_tls_bad(void **state)
{
    static const struct {
        const char *tls, *want; /* both printf formats: %s is the fixture folder */
    } bad[] = {
        {"{\"sni\": \"bad_name\"}",
         "t.json:3:16: pools.green.tls.sni: must be a DNS name such as \"api.internal\" (got "
         "\"bad_name\")"},
        {"{\"sni\": \"10.0.0.1\"}",
         "t.json:3:16: pools.green.tls.sni: must be a DNS name such as \"api.internal\" (got "
         "\"10.0.0.1\")"},
        {"{\"sni\": \"a..b\"}",
         "t.json:3:16: pools.green.tls.sni: must be a DNS name such as \"api.internal\" (got "
         "\"a..b\")"},
        {"{\"sni\": \"-a.internal\"}",
         "t.json:3:16: pools.green.tls.sni: must be a DNS name such as \"api.internal\" (got "
         "\"-a.internal\")"},
        {"{\"sni\": \"a-.internal\"}",
         "t.json:3:16: pools.green.tls.sni: must be a DNS name such as \"api.internal\" (got "
         "\"a-.internal\")"},
        {"{\"ca\": \"ca.pem\"}",
         "t.json:3:15: pools.green.tls.ca: cannot read /etc/switchyard/ca.pem: No such file or "
         "directory"},
        {"{\"ca\": \"" EXAMPLES "/demo.json\"}",
         "t.json:3:15: pools.green.tls.ca: not a PEM certificate bundle: no certificate or crl "
         "found"},
        {"{\"ca\": \"%s/key.pem\"}",
         "t.json:3:15: pools.green.tls.ca: not a PEM certificate bundle: no certificate or crl "
         "found"},
        {"{\"ca\": \"%s\"}", "t.json:3:15: pools.green.tls.ca: %s is not a regular file"},
        /* Found by fuzz_config: the path went into the message, newline and all. */
        {"{\"ca\": \"ca.pem\\n\"}",
         "t.json:3:15: pools.green.tls.ca: must not contain control characters (got "
         "\"ca.pem\\n\")"},
        {"{\"ca\": \"/dev/null\"}",
         "t.json:3:15: pools.green.tls.ca: /dev/null is not a regular file"},
        {"{\"ca\": \"%s/cert.pem\", \"verify\": false}",
         "t.json:3:15: pools.green.tls.ca: is unused with \"verify\": false; remove one of them"},
        {"{\"cert\": \"c.pem\"}", "t.json:3:9: pools.green.tls.cert: unknown key"},
        {"{\"verify\": \"yes\"}",
         "t.json:3:19: pools.green.tls.verify: expected a boolean, got \"yes\""},
        {"true", "t.json:3:8: pools.green.tls: expected an object, got true"},
    };
    const struct tls_files *t = *state;
    struct conf_errors errs = {0};
    char want[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(load_pool_tls(t, bad[i].tls, &errs));
        if (errs.n != 1)
            conf_errors_print(&errs, stderr);
        assert_int_equal(errs.n, 1);
        snprintf(want, sizeof(want), bad[i].want, t->dir);
        assert_string_equal(errs.msgs[0], want);
        conf_errors_clear(&errs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_allow_gids),
        cmocka_unit_test(test_pool_size_limit),
        cmocka_unit_test(test_section_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_bad_config_needs_no_error_list),
        cmocka_unit_test(test_errors_accumulate),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_colour_names),
        cmocka_unit_test(test_jsonpos_paths),
        cmocka_unit_test(test_jsonpos_only_empty_keys),
        cmocka_unit_test(test_jsonpos_bad_input),
        cmocka_unit_test(test_parse_bp),
        cmocka_unit_test(test_sticky_set_cookie),
        cmocka_unit_test(test_probe_headers),
        cmocka_unit_test(test_rollout_report_dir),
        cmocka_unit_test(test_run_as),
        cmocka_unit_test_setup_teardown(test_tls, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_bad, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_certs, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_certs_bad, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_pool_tls, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_pool_tls_bad, tls_setup, tls_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
