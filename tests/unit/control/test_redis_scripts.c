/* test_redis_scripts.c - the fleet's Lua scripts run by a real redis-server:
 * the state compare-and-set, the leader lease, and the readers of their
 * replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "control/redis_scripts.h"
#include "tests/unit/support/redis_fixture.h"

#define NS "sy:test"
#define RACE_ROUNDS 50

struct fixture {
    struct redis_fixture server;
    redisContext *c;
};

static redisContext *connect_blocking(const struct redis_fixture *server)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", server->port, tv);

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    /* A test that waits on Redis fails after 2 s rather than hangs. */
    assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

static int group_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || redis_fixture_start(&f->server, NULL) < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;

    redis_fixture_stop(&f->server);
    free(f);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = *state;
    char out[32];

    if (redis_fixture_cmd(&f->server, out, sizeof(out), "FLUSHALL") < 0)
        return -1;
    f->c = connect_blocking(&f->server);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    redisFree(f->c);
    f->c = NULL;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static redisReply *run(redisContext *c, struct redis_argv *a)
{
    redisReply *r = redisCommandArgv(c, a->argc, a->argv, a->len);

    assert_non_null(r);
    return r;
}

static struct state sample(uint64_t generation, const char *who)
{
    struct state s;

    memset(&s, 0, sizeof(s));
    s.stable = CONF_BLUE;
    s.candidate_bp = (uint32_t)(generation * 10 % 10000);
    s.phase = STATE_PROGRESSING;
    s.step = 2;
    s.generation = generation;
    snprintf(s.updated_by, sizeof(s.updated_by), "%s", who);
    snprintf(s.reason, sizeof(s.reason), "step %u", 2);
    s.updated_ms = 1795000000000LL + (int64_t)generation;
    return s;
}

/* New compact JSON of sample(generation, who). */
static char *sample_text(uint64_t generation, const char *who)
{
    struct state s = sample(generation, who);
    json_t *j = state_to_json(&s);
    char *text = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    assert_non_null(text);
    return text;
}

/* Arguments for writing generation expect + 1 (or gen with seed) as who. */
static struct redis_cas_args cas_args(uint64_t expect, uint64_t gen, bool seed, const char *who,
                                      const char *state_json, const char *event_json)
{
    struct redis_cas_args a = {
        .ns = NS,
        .expect = expect,
        .new_generation = gen,
        .seed = seed,
        .state_json = state_json,
        .instance = who,
        .event_json = event_json,
        .updated_ms = 1795000000000LL,
        .events_maxlen = 1000,
    };
    return a;
}

/* Runs one CAS writing sample(gen, who); the reply must parse. */
static void cas(redisContext *c, uint64_t expect, uint64_t gen, bool seed, const char *who,
                const char *event_json, struct redis_cas_result *res)
{
    char *text = sample_text(gen, who);
    struct redis_cas_args a = cas_args(expect, gen, seed, who, text, event_json);
    struct redis_argv argv;
    redisReply *r;
    char why[256] = "";

    assert_int_equal(redis_cas_argv(&argv, &a), 14);
    r = run(c, &argv);
    assert_int_equal(redis_cas_parse(r, res, why, sizeof(why)), 0);
    freeReplyObject(r);
    free(text);
}

/* Reads the state hash; returns redis_state_parse()'s result. */
static int read_state(redisContext *c, struct state *s, uint64_t *gen, char *instance, char *why,
                      size_t why_len)
{
    redisReply *r = redisCommand(c, "HGETALL %s", NS ":state");
    int rc;

    assert_non_null(r);
    rc = redis_state_parse(r, s, gen, instance, REDIS_INSTANCE_MAX, why, why_len);
    freeReplyObject(r);
    return rc;
}

static long long command_int(redisContext *c, const char *cmd, const char *key)
{
    redisReply *r = redisCommand(c, "%s %s", cmd, key);
    long long v;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static void test_keys(void **state)
{
    char key[REDIS_KEY_MAX], ns[REDIS_KEY_MAX];

    (void)state;
    assert_int_equal(redis_key(key, "switchyard:prod", "state"), 0);
    assert_string_equal(key, "switchyard:prod:state");
    assert_int_equal(redis_signals_key(key, "switchyard:prod", "host-1"), 0);
    assert_string_equal(key, "switchyard:prod:signals:host-1");
    assert_int_equal(redis_key(key, "", "state"), -1);
    memset(ns, 'n', sizeof(ns) - 7);
    ns[sizeof(ns) - 7] = '\0'; /* 249 bytes + ":state" = 255: fits */
    assert_int_equal(redis_key(key, ns, "state"), 0);
    assert_int_equal(redis_key(key, ns, "leader"), -1);
    assert_int_equal(redis_signals_key(key, "ns", ""), -1);
}

static void test_seed_first_write(void **state)
{
    struct fixture *f = *state;
    struct redis_cas_result res;
    struct state s;
    uint64_t gen = 0;
    char instance[REDIS_INSTANCE_MAX], why[256] = "";
    char *first = sample_text(7, "a");

    assert_int_equal(read_state(f->c, &s, &gen, instance, why, sizeof(why)), 0);
    cas(f->c, 0, 7, true, "a", NULL, &res);
    assert_true(res.applied);
    assert_int_equal(res.stored_generation, 7);
    assert_int_equal(read_state(f->c, &s, &gen, instance, why, sizeof(why)), 1);
    assert_int_equal(gen, 7);
    assert_int_equal(s.generation, 7);
    assert_string_equal(s.updated_by, "a");
    assert_string_equal(instance, "a");
    assert_int_equal(command_int(f->c, "EXISTS", NS ":events"), 0);

    /* A second instance starting on the same Redis must not re-seed. */
    cas(f->c, 0, 9, true, "b", NULL, &res);
    assert_false(res.applied);
    assert_int_equal(res.stored_generation, 7);
    assert_string_equal(res.stored_state, first);
    assert_string_equal(res.stored_instance, "a");
    redis_cas_result_clear(&res);
    assert_null(res.stored_state);
    free(first);
}

/* Subscribes c to the changes channel and eats the confirmation. */
static void subscribe(redisContext *c)
{
    redisReply *r = redisCommand(c, "SUBSCRIBE %s", NS ":changes");

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

/* Waits (2 s at most: the context's timeout) for one published message. */
static void expect_message(redisContext *c, const char *payload)
{
    redisReply *r = NULL;

    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "message");
    assert_string_equal(r->element[1]->str, NS ":changes");
    assert_string_equal(r->element[2]->str, payload);
    freeReplyObject(r);
}

static void test_cas_applies_publishes_appends(void **state)
{
    struct fixture *f = *state;
    redisContext *sub = connect_blocking(&f->server);
    struct redis_cas_result res;
    redisReply *r;

    subscribe(sub);
    cas(f->c, 0, 1, false, "a", "{\"op\":\"weight\"}", &res);
    assert_true(res.applied);
    expect_message(sub, "1 a");
    cas(f->c, 1, 2, false, "b", "{\"op\":\"rollback\"}", &res);
    assert_true(res.applied);
    assert_int_equal(res.stored_generation, 2);
    expect_message(sub, "2 b");

    r = redisCommand(f->c, "HMGET %s generation instance updated_ms", NS ":state");
    assert_non_null(r);
    assert_string_equal(r->element[0]->str, "2");
    assert_string_equal(r->element[1]->str, "b");
    assert_string_equal(r->element[2]->str, "1795000000000");
    freeReplyObject(r);

    /* The stream holds both events, oldest first, with their writers. */
    r = redisCommand(f->c, "XRANGE %s - +", NS ":events");
    assert_non_null(r);
    assert_int_equal(r->elements, 2);
    const redisReply *fields = r->element[1]->element[1];
    assert_int_equal(fields->elements, 4);
    assert_string_equal(fields->element[0]->str, "event");
    assert_string_equal(fields->element[1]->str, "{\"op\":\"rollback\"}");
    assert_string_equal(fields->element[2]->str, "instance");
    assert_string_equal(fields->element[3]->str, "b");
    freeReplyObject(r);
    redisFree(sub);
}

/* Writes generations 1..n as "a". */
static void write_generations(redisContext *c, uint64_t n)
{
    struct redis_cas_result res;

    for (uint64_t g = 1; g <= n; g++) {
        cas(c, g - 1, g, false, "a", NULL, &res);
        assert_true(res.applied);
    }
}

static void test_stale_writer_refused(void **state)
{
    struct fixture *f = *state;
    struct redis_cas_result res;
    struct state s;
    char why[256] = "";

    write_generations(f->c, 5);
    cas(f->c, 4, 5, false, "stale", NULL, &res);
    assert_false(res.applied);
    assert_int_equal(res.stored_generation, 5);
    assert_string_equal(res.stored_instance, "a");
    /* What the refused writer gets back is a state it can re-base on. */
    json_t *j = json_loads(res.stored_state, 0, NULL);
    assert_non_null(j);
    assert_int_equal(state_from_json(j, &s, why, sizeof(why)), 0);
    assert_int_equal(s.generation, 5);
    json_decref(j);
    redis_cas_result_clear(&res);

    cas(f->c, 0, 1, false, "stale", NULL, &res);
    assert_false(res.applied);
    assert_int_equal(res.stored_generation, 5);
    redis_cas_result_clear(&res);
}

static void test_generation_never_goes_back(void **state)
{
    struct fixture *f = *state;
    struct redis_cas_result res;
    struct state s;
    uint64_t gen = 0;
    char why[256] = "";

    /* Nothing stored: only a write based on 0 applies, and the refusal
     * says "nothing". */
    cas(f->c, 0, 0, false, "a", NULL, &res);
    assert_false(res.applied);
    assert_int_equal(res.stored_generation, 0);
    assert_null(res.stored_state);
    assert_string_equal(res.stored_instance, "");
    cas(f->c, 3, 4, false, "a", NULL, &res);
    assert_false(res.applied);

    write_generations(f->c, 5);
    const uint64_t refused[][2] = {{5, 5}, {5, 4}, {6, 7}, {4, 3}, {4, 9}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        cas(f->c, refused[i][0], refused[i][1], false, "b", NULL, &res);
        assert_false(res.applied);
        assert_int_equal(res.stored_generation, 5);
        redis_cas_result_clear(&res);
    }
    assert_int_equal(read_state(f->c, &s, &gen, NULL, why, sizeof(why)), 1);
    assert_int_equal(gen, 5);
    assert_string_equal(s.updated_by, "a");

    /* Several changes made while Redis was away are written at once. */
    cas(f->c, 5, 8, false, "c", NULL, &res);
    assert_true(res.applied);
    assert_int_equal(res.stored_generation, 8);
    redis_cas_result_clear(&res);
}

/* Runs a CAS whose argument at index i was replaced by bad; it must fail
 * with an error reply and leave the state alone. */
static void expect_script_error(redisContext *c, int i, const char *bad)
{
    char *text = sample_text(6, "a");
    struct redis_cas_args a = cas_args(5, 6, false, "a", text, "{}");
    struct redis_cas_result res;
    struct redis_argv argv;
    redisReply *r;
    char why[256] = "";

    assert_int_equal(redis_cas_argv(&argv, &a), 14);
    argv.argv[i] = bad;
    argv.len[i] = strlen(bad);
    r = run(c, &argv);
    assert_int_equal(redis_cas_parse(r, &res, why, sizeof(why)), -1);
    print_message("argv[%d] = \"%s\": %s\n", i, bad, why);
    assert_non_null(strstr(why, "switchyard state_cas"));
    assert_null(res.stored_state);
    freeReplyObject(r);
    free(text);
}

static void test_garbage_argv(void **state)
{
    struct fixture *f = *state;
    /* argv: EVAL script 3 k1 k2 k3 expect gen seed state instance event ms maxlen */
    enum { EXPECT = 6, GEN = 7, SEED = 8, STATE = 9, INSTANCE = 10, MS = 12, MAXLEN = 13 };
    const char *numbers[] = {"abc", "-1", "1e3", "0x10", "01", " 1", "1.5", "", "1000000000000000"};
    char out[64];

    write_generations(f->c, 5);
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        expect_script_error(f->c, EXPECT, numbers[i]);
        expect_script_error(f->c, GEN, numbers[i]);
        expect_script_error(f->c, MS, numbers[i]);
        expect_script_error(f->c, MAXLEN, numbers[i]);
    }
    expect_script_error(f->c, SEED, "2");
    expect_script_error(f->c, SEED, "");
    expect_script_error(f->c, STATE, "");
    expect_script_error(f->c, INSTANCE, "");
    expect_script_error(f->c, INSTANCE,
                        "0123456789012345678901234567890123456789012345678901234567890123");
    expect_script_error(f->c, 2, "2"); /* too few keys */
    assert_int_equal(
        redis_fixture_cmd(&f->server, out, sizeof(out), "HGET %s generation", NS ":state"), 0);
    assert_string_equal(out, "5");
    assert_int_equal(command_int(f->c, "EXISTS", NS ":events"), 0);
}

static void test_cas_argv_refuses(void **state)
{
    struct redis_cas_args a = cas_args(0, 1, false, "a", "{}", NULL);
    struct redis_argv argv;
    char long_ns[300];

    (void)state;
    assert_int_equal(redis_cas_argv(&argv, &a), 14);
    assert_string_equal(argv.argv[11], ""); /* no event */
    a.state_json = NULL;
    assert_int_equal(redis_cas_argv(&argv, &a), -1);
    a = cas_args(0, 1, false, "", "{}", NULL);
    assert_int_equal(redis_cas_argv(&argv, &a), -1);
    a = cas_args(0, 1, false, "0123456789012345678901234567890123456789012345678901234567890123",
                 "{}", NULL);
    assert_int_equal(redis_cas_argv(&argv, &a), -1);
    a = cas_args(REDIS_GENERATION_MAX, REDIS_GENERATION_MAX + 1, false, "a", "{}", NULL);
    assert_int_equal(redis_cas_argv(&argv, &a), -1);
    a = cas_args(0, 1, false, "a", "{}", NULL);
    a.updated_ms = -1;
    assert_int_equal(redis_cas_argv(&argv, &a), -1);
    memset(long_ns, 'n', sizeof(long_ns) - 1);
    long_ns[sizeof(long_ns) - 1] = '\0';
    a = cas_args(0, 1, false, "a", "{}", NULL);
    a.ns = long_ns;
    assert_int_equal(redis_cas_argv(&argv, &a), -1);
}

static void set_node_entries(const struct redis_fixture *server, const char *n)
{
    char out[32];

    assert_int_equal(
        redis_fixture_cmd(server, out, sizeof(out), "CONFIG SET stream-node-max-entries %s", n), 0);
    assert_string_equal(out, "OK");
}

/* Writes n more generations after from, each with an event, trimmed at maxlen. */
static void write_events(redisContext *c, uint64_t from, uint64_t n, uint32_t maxlen)
{
    for (uint64_t g = from + 1; g <= from + n; g++) {
        char *text = sample_text(g, "a");
        struct redis_cas_args a = cas_args(g - 1, g, false, "a", text, "{\"op\":\"weight\"}");
        struct redis_cas_result res;
        struct redis_argv argv;
        char why[256] = "";
        redisReply *r;

        a.events_maxlen = maxlen;
        assert_int_equal(redis_cas_argv(&argv, &a), 14);
        r = run(c, &argv);
        assert_int_equal(redis_cas_parse(r, &res, why, sizeof(why)), 0);
        assert_true(res.applied);
        freeReplyObject(r);
        free(text);
    }
}

static void test_maxlen_trims(void **state)
{
    struct fixture *f = *state;
    long long len;

    /* MAXLEN ~ trims whole stream nodes: small nodes make it visible. */
    set_node_entries(&f->server, "4");
    write_events(f->c, 0, 60, 8);
    len = command_int(f->c, "XLEN", NS ":events");
    print_message("60 events with MAXLEN ~ 8: %lld kept\n", len);
    assert_in_range(len, 8, 8 + 4);

    /* 0: no cap. */
    write_events(f->c, 60, 20, 0);
    assert_int_equal(command_int(f->c, "XLEN", NS ":events"), len + 20);
    set_node_entries(&f->server, "100");
}

/* Sends c's queued commands without waiting for the reply. */
static void flush(redisContext *c)
{
    int done = 0;

    for (int i = 0; i < 100 && !done; i++)
        assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);
    assert_true(done);
}

static void queue_cas(redisContext *c, uint64_t expect, const char *who, char **text)
{
    struct redis_cas_args a;
    struct redis_argv argv;

    *text = sample_text(expect + 1, who);
    a = cas_args(expect, expect + 1, false, who, *text, "{}");
    assert_int_equal(redis_cas_argv(&argv, &a), 14);
    assert_int_equal(redisAppendCommandArgv(c, argv.argc, argv.argv, argv.len), REDIS_OK);
}

static void read_cas(redisContext *c, struct redis_cas_result *res)
{
    redisReply *r = NULL;
    char why[256] = "";

    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_int_equal(redis_cas_parse(r, res, why, sizeof(why)), 0);
    freeReplyObject(r);
}

/* Two writers based on the same generation, both in flight at once: exactly
 * one wins, and the loser learns who did. */
static void test_race_one_wins(void **state)
{
    struct fixture *f = *state;
    redisContext *c[2] = {f->c, connect_blocking(&f->server)};
    const char *who[2] = {"a", "b"};
    int wins[2] = {0, 0};

    for (uint64_t g = 0; g < RACE_ROUNDS; g++) {
        struct redis_cas_result res[2];
        char *text[2];
        int first = (int)(g % 2);
        for (int i = 0; i < 2; i++)
            queue_cas(c[i], g, who[i], &text[i]);
        flush(c[first]);
        flush(c[1 - first]);
        read_cas(c[0], &res[0]);
        read_cas(c[1], &res[1]);
        assert_int_equal(res[0].applied + res[1].applied, 1);
        int winner = res[0].applied ? 0 : 1;
        wins[winner]++;
        assert_int_equal(res[1 - winner].stored_generation, g + 1);
        assert_string_equal(res[1 - winner].stored_instance, who[winner]);
        for (int i = 0; i < 2; i++) {
            redis_cas_result_clear(&res[i]);
            free(text[i]);
        }
    }
    print_message("wins: a %d, b %d\n", wins[0], wins[1]);
    assert_int_equal(command_int(f->c, "XLEN", NS ":events"), RACE_ROUNDS);
    redisFree(c[1]);
}

static void lease(redisContext *c, const char *who, uint32_t ms, struct redis_lease_result *out)
{
    struct redis_argv argv;
    char why[256] = "";
    redisReply *r;

    assert_int_equal(redis_lease_argv(&argv, NS, who, ms), 6);
    r = run(c, &argv);
    assert_int_equal(redis_lease_parse(r, out, why, sizeof(why)), 0);
    freeReplyObject(r);
}

static bool release(redisContext *c, const char *who)
{
    struct redis_argv argv;
    bool released = false;
    char why[256] = "";
    redisReply *r;

    assert_int_equal(redis_release_argv(&argv, NS, who), 5);
    r = run(c, &argv);
    assert_int_equal(redis_release_parse(r, &released, why, sizeof(why)), 0);
    freeReplyObject(r);
    return released;
}

static void test_lease_acquire_renew_refuse(void **state)
{
    struct fixture *f = *state;
    struct redis_lease_result l;
    char out[32];

    lease(f->c, "a", 5000, &l);
    assert_true(l.held);
    assert_string_equal(l.holder, "a");
    assert_int_equal(l.pttl_ms, 5000);
    assert_in_range(command_int(f->c, "PTTL", NS ":leader"), 1, 5000);

    /* A renewal pushes the expiry out again. */
    assert_int_equal(
        redis_fixture_cmd(&f->server, out, sizeof(out), "PEXPIRE %s 300", NS ":leader"), 0);
    lease(f->c, "a", 5000, &l);
    assert_true(l.held);
    assert_in_range(command_int(f->c, "PTTL", NS ":leader"), 1000, 5000);

    lease(f->c, "b", 5000, &l);
    assert_false(l.held);
    assert_string_equal(l.holder, "a");
    assert_in_range(l.pttl_ms, 1, 5000);
}

static void test_lease_expiry_hands_over(void **state)
{
    struct fixture *f = *state;
    struct redis_lease_result l;

    lease(f->c, "a", 100, &l);
    assert_true(l.held);
    lease(f->c, "b", 100, &l);
    assert_false(l.held);
    sleep_ms(150);
    lease(f->c, "b", 5000, &l);
    assert_true(l.held);
    assert_string_equal(l.holder, "b");
    lease(f->c, "a", 5000, &l);
    assert_false(l.held);
    assert_string_equal(l.holder, "b");
}

static void test_release_only_by_holder(void **state)
{
    struct fixture *f = *state;
    struct redis_lease_result l;

    assert_false(release(f->c, "a")); /* nothing held */
    lease(f->c, "a", 5000, &l);
    assert_false(release(f->c, "b"));
    assert_int_equal(command_int(f->c, "EXISTS", NS ":leader"), 1);
    assert_true(release(f->c, "a"));
    assert_int_equal(command_int(f->c, "EXISTS", NS ":leader"), 0);
    lease(f->c, "b", 5000, &l);
    assert_true(l.held);
}

static void test_lease_garbage(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {"0", "abc", "-5", "01", "99999999999", ""};
    struct redis_lease_result l;
    struct redis_argv argv;

    assert_int_equal(redis_lease_argv(&argv, NS, "a", 0), -1);
    assert_int_equal(redis_lease_argv(&argv, NS, "", 100), -1);
    assert_int_equal(redis_release_argv(&argv, "", "a"), -1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[256] = "";
        redisReply *r;
        assert_int_equal(redis_lease_argv(&argv, NS, "a", 100), 6);
        argv.argv[5] = bad[i];
        argv.len[5] = strlen(bad[i]);
        r = run(f->c, &argv);
        assert_int_equal(redis_lease_parse(r, &l, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "switchyard lease"));
        freeReplyObject(r);
    }
    assert_int_equal(command_int(f->c, "EXISTS", NS ":leader"), 0);
}

/* Expects the HGETALL reader to refuse the hash with needle in its reason. */
static void expect_state_refused(redisContext *c, const char *needle)
{
    struct state s;
    uint64_t gen = 0;
    char instance[REDIS_INSTANCE_MAX], why[256] = "";

    assert_int_equal(read_state(c, &s, &gen, instance, why, sizeof(why)), -1);
    print_message("why: %s\n", why);
    assert_non_null(strstr(why, needle));
}

static void hset(struct fixture *f, const char *field, const char *value)
{
    char out[32];

    assert_int_equal(
        redis_fixture_cmd(&f->server, out, sizeof(out), "HSET %s %s %s", NS ":state", field, value),
        0);
}

static void test_state_parse(void **state)
{
    struct fixture *f = *state;
    struct state s;
    uint64_t gen = 0;
    char instance[REDIS_INSTANCE_MAX], why[256] = "";
    char *text = sample_text(3, "a");
    char out[32];

    assert_int_equal(read_state(f->c, &s, &gen, instance, why, sizeof(why)), 0);
    write_generations(f->c, 3);
    assert_int_equal(read_state(f->c, &s, &gen, instance, why, sizeof(why)), 1);
    struct state expected = sample(3, "a");
    assert_memory_equal(&s, &expected, sizeof(s));

    hset(f, "state", "{");
    expect_state_refused(f->c, "the state field is not JSON");
    hset(f, "state", "{\"stable\":\"blue\"}");
    expect_state_refused(f->c, "the state field: candidate_bp: missing");
    hset(f, "state", text);
    hset(f, "generation", "4");
    expect_state_refused(f->c, "the state says generation 3 but the hash 4");
    hset(f, "generation", "x");
    expect_state_refused(f->c, "no readable generation");
    assert_int_equal(
        redis_fixture_cmd(&f->server, out, sizeof(out), "HDEL %s generation", NS ":state"), 0);
    expect_state_refused(f->c, "no readable generation");
    assert_int_equal(redis_fixture_cmd(&f->server, out, sizeof(out), "DEL %s", NS ":state"), 0);
    assert_int_equal(redis_fixture_cmd(&f->server, out, sizeof(out), "SET %s x", NS ":state"), 0);
    expect_state_refused(f->c, "WRONGTYPE");
    free(text);
}

/* Replies of the wrong shape, as a broken or foreign script would give. */
static void test_reply_shapes(void **state)
{
    struct fixture *f = *state;
    const char *cas_replies[] = {
        "return 'x'",
        "return {1}",
        "return {2, '1'}",
        "return {1, 'x'}",
        "return {1, '01'}",
        "return {0, 'abc', false, false}",
        "return {0, '1', 5, false}",
        "return {0, '1', false, "
        "'this-instance-name-is-far-too-long-for-the-64-byte-field-it-goes-in'}",
        "return {0, '1', false}",
    };
    const char *lease_replies[] = {"return {1, 'a'}", "return {2, 'a', 5}", "return {1, 5, 5}",
                                   "return 1"};
    struct redis_cas_result res;
    struct redis_lease_result l;
    bool released;
    char why[256];

    assert_int_equal(redis_cas_parse(NULL, &res, why, sizeof(why)), -1);
    assert_string_equal(why, "state_cas: no reply");
    for (size_t i = 0; i < sizeof(cas_replies) / sizeof(cas_replies[0]); i++) {
        redisReply *r = redisCommand(f->c, "EVAL %s 0", cas_replies[i]);
        assert_non_null(r);
        assert_int_equal(redis_cas_parse(r, &res, why, sizeof(why)), -1);
        print_message("%s: %s\n", cas_replies[i], why);
        assert_null(res.stored_state);
        freeReplyObject(r);
    }
    for (size_t i = 0; i < sizeof(lease_replies) / sizeof(lease_replies[0]); i++) {
        redisReply *r = redisCommand(f->c, "EVAL %s 0", lease_replies[i]);
        assert_non_null(r);
        assert_int_equal(redis_lease_parse(r, &l, why, sizeof(why)), -1);
        freeReplyObject(r);
    }
    redisReply *r = redisCommand(f->c, "EVAL %s 0", "return 'x'");
    assert_int_equal(redis_release_parse(r, &released, why, sizeof(why)), -1);
    freeReplyObject(r);
}

#define REDIS_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_cas_argv_refuses),
        REDIS_TEST(test_seed_first_write),
        REDIS_TEST(test_cas_applies_publishes_appends),
        REDIS_TEST(test_stale_writer_refused),
        REDIS_TEST(test_generation_never_goes_back),
        REDIS_TEST(test_garbage_argv),
        REDIS_TEST(test_maxlen_trims),
        REDIS_TEST(test_race_one_wins),
        REDIS_TEST(test_lease_acquire_renew_refuse),
        REDIS_TEST(test_lease_expiry_hands_over),
        REDIS_TEST(test_release_only_by_holder),
        REDIS_TEST(test_lease_garbage),
        REDIS_TEST(test_state_parse),
        REDIS_TEST(test_reply_shapes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
