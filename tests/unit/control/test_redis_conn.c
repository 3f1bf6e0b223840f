/* test_redis_conn.c - the Redis link against a real redis-server: connect
 * with AUTH and SELECT, timeouts that never hold the loop, loss and return,
 * subscriptions that survive a restart, and frees at awkward moments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/log.h"
#include "conf/redisurl.h"
#include "control/redis_conn.h"
#include "tests/unit/support/redis_fixture.h"

#define WAIT_MS 3000   /* the most any awaited change may take */
#define BACKOFF_MS 20  /* first reconnect wait in these tests */
#define BACKOFF_MAX 80 /* ... and the longest */

struct reply {
    int calls;
    int type; /* REDIS_REPLY_*, or 0 for an err */
    char text[256];
    char err[128];
    int64_t at_ms;
};

struct t {
    struct event_base *base;
    struct redis_fixture fx;
    bool fx_started;
    struct redis_conn *conn;
    int ups, downs;
    char why[256];
    int sub_ups, sub_downs;
    int messages;
    char channel[64], message[128];
    int ticks;
    bool free_on_down;  /* the state callback frees the conn when it goes down */
    bool free_on_reply; /* a reply callback frees the conn */
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- callbacks that record --------------------------------------------- */

static void state_cb(bool up, const char *why, void *arg)
{
    struct t *t = arg;

    if (up)
        t->ups++;
    else
        t->downs++;
    snprintf(t->why, sizeof(t->why), "%s", why);
    if (!up && t->free_on_down) {
        redis_conn_free(t->conn);
        t->conn = NULL;
    }
}

static void sub_state_cb(bool subscribed, void *arg)
{
    struct t *t = arg;

    if (subscribed)
        t->sub_ups++;
    else
        t->sub_downs++;
}

static void message_cb(const char *channel, const char *message, size_t len, void *arg)
{
    struct t *t = arg;

    t->messages++;
    snprintf(t->channel, sizeof(t->channel), "%s", channel);
    snprintf(t->message, sizeof(t->message), "%.*s", (int)len, message);
}

static void record(struct reply *r, const redisReply *reply, const char *err)
{
    r->calls++;
    r->at_ms = now_ms();
    if (err != NULL) {
        r->type = 0;
        snprintf(r->err, sizeof(r->err), "%s", err);
        return;
    }
    r->type = reply->type;
    if (reply->type == REDIS_REPLY_INTEGER)
        snprintf(r->text, sizeof(r->text), "%lld", reply->integer);
    else if (reply->str != NULL)
        snprintf(r->text, sizeof(r->text), "%.*s", (int)reply->len, reply->str);
}

static void reply_cb(const redisReply *reply, const char *err, void *arg)
{
    record(arg, reply, err);
}

/* A reply callback that frees the conn it came from (arg: struct t). */
static struct reply freeing_reply;
static void freeing_reply_cb(const redisReply *reply, const char *err, void *arg)
{
    struct t *t = arg;

    record(&freeing_reply, reply, err);
    redis_conn_free(t->conn);
    t->conn = NULL;
}

/* ---- running the loop, always bounded --------------------------------- */

struct waiter {
    struct t *t;
    bool (*done)(struct t *t, const void *arg);
    const void *arg;
    int64_t deadline;
};

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;

    if (w->done(w->t, w->arg) || now_ms() >= w->deadline)
        event_base_loopbreak(w->t->base);
}

/* Runs the loop until done(t, arg) or ms pass; returns done(t, arg). */
static bool run_until(struct t *t, bool (*done)(struct t *, const void *), const void *arg, int ms)
{
    struct waiter w = {t, done, arg, now_ms() + ms};
    struct event *poller = event_new(t->base, -1, EV_PERSIST, poll_cb, &w);
    struct timeval tv = {0, 2000};

    assert_non_null(poller);
    event_add(poller, &tv);
    event_base_dispatch(t->base);
    event_free(poller);
    return done(t, arg);
}

static bool never(struct t *t, const void *arg)
{
    return false;
}

static void run_for(struct t *t, int ms)
{
    run_until(t, never, NULL, ms);
}

static bool is_up(struct t *t, const void *arg)
{
    return redis_conn_up(t->conn);
}

static bool ups_reach(struct t *t, const void *arg)
{
    return t->ups >= *(const int *)arg;
}

static bool downs_reach(struct t *t, const void *arg)
{
    return t->downs >= *(const int *)arg;
}

static bool answered(struct t *t, const void *arg)
{
    return ((const struct reply *)arg)->calls > 0;
}

static bool subscribed(struct t *t, const void *arg)
{
    return t->conn != NULL && redis_conn_subscribed(t->conn);
}

static bool not_subscribed(struct t *t, const void *arg)
{
    return !subscribed(t, arg);
}

static bool has_message(struct t *t, const void *arg)
{
    return t->messages > 0;
}

/* ---- set-up ------------------------------------------------------------ */

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -1;
    log_setup("test_redis_conn", LOG_ERROR);
    t->base = event_base_new();
    *state = t;
    return t->base ? 0 : -1;
}

static int teardown(void **state)
{
    struct t *t = *state;

    redis_conn_free(t->conn);
    if (t->fx_started)
        redis_fixture_stop(&t->fx);
    event_base_free(t->base);
    free(t);
    return 0;
}

static void start_redis(struct t *t, const char *password)
{
    assert_int_equal(redis_fixture_start(&t->fx, password), 0);
    t->fx_started = true;
}

static struct redis_conn *connect_url(struct t *t, const char *url_text, uint32_t connect_ms)
{
    struct redis_url url;
    char why[160];
    struct redis_conn_opts opts = {
        .connect_timeout_ms = connect_ms,
        .command_timeout_ms = 2000,
        .backoff_first_ms = BACKOFF_MS,
        .backoff_max_ms = BACKOFF_MAX,
        .client_name = "sy-test",
    };

    if (redis_url_parse(url_text, &url, why, sizeof(why)) != 0)
        fail_msg("%s: %s", url_text, why);
    t->conn = redis_conn_new(t->base, &url, &opts, state_cb, t);
    assert_non_null(t->conn);
    redis_conn_set_sub_state_cb(t->conn, sub_state_cb, t);
    return t->conn;
}

static void drop_conn(struct t *t)
{
    redis_conn_free(t->conn);
    t->conn = NULL;
}

static void connect_and_wait(struct t *t, const char *url_text)
{
    connect_url(t, url_text, 1000);
    assert_true(run_until(t, is_up, NULL, WAIT_MS));
}

/* Sends argv-style words on t->conn and waits for the answer. */
static void command_wait(struct t *t, struct reply *r, uint32_t timeout_ms, int argc,
                         const char **argv)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(redis_conn_command(t->conn, timeout_ms, reply_cb, r, argc, argv, NULL), 0);
    assert_true(run_until(t, answered, r, WAIT_MS));
}

/* A loopback port nobody listens on. */
static int unused_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- the cases ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
    struct t *t = *state;
    const char *set[] = {"SET", "greeting", "hello"};
    const char *get[] = {"GET", "greeting"};
    struct reply r;
    char out[1024];

    start_redis(t, NULL);
    connect_and_wait(t, t->fx.url);
    assert_int_equal(t->ups, 1);
    assert_int_equal(t->downs, 0);
    assert_int_equal(redis_conn_connects(t->conn), 1);
    assert_string_equal(redis_conn_last_error(t->conn), "");
    assert_int_equal(redis_conn_down_since_ms(t->conn), 0);

    command_wait(t, &r, 0, 3, set);
    assert_int_equal(r.type, REDIS_REPLY_STATUS);
    assert_string_equal(r.text, "OK");
    command_wait(t, &r, 0, 2, get);
    assert_int_equal(r.type, REDIS_REPLY_STRING);
    assert_string_equal(r.text, "hello");

    /* Binary-safe arguments, and the format form. */
    const char bin[] = {'a', '\0', 'b'};
    const char *setb[] = {"SET", "bin", bin};
    const size_t lens[] = {3, 3, sizeof(bin)};
    memset(&r, 0, sizeof(r));
    assert_int_equal(redis_conn_command(t->conn, 0, reply_cb, &r, 3, setb, lens), 0);
    assert_true(run_until(t, answered, &r, WAIT_MS));
    memset(&r, 0, sizeof(r));
    assert_int_equal(redis_conn_commandf(t->conn, 0, reply_cb, &r, "STRLEN %s", "bin"), 0);
    assert_int_equal(r.calls, 0); /* never from inside the call */
    assert_true(run_until(t, answered, &r, WAIT_MS));
    assert_int_equal(r.type, REDIS_REPLY_INTEGER);
    assert_string_equal(r.text, "3");

    /* An error reply is a reply, not an err. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(redis_conn_commandf(t->conn, 0, reply_cb, &r, "INCR %s", "greeting"), 0);
    assert_true(run_until(t, answered, &r, WAIT_MS));
    assert_int_equal(r.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r.text, "not an integer"));

    assert_int_equal(redis_fixture_cmd(&t->fx, out, sizeof(out), "CLIENT LIST"), 0);
    assert_non_null(strstr(out, "name=sy-test"));
}

static void test_auth(void **state)
{
    struct t *t = *state;
    const char *get[] = {"GET", "k"};
    char url[256];
    struct reply r;
    int one = 1;

    start_redis(t, "s3cret");
    connect_and_wait(t, t->fx.url);
    command_wait(t, &r, 0, 2, get);
    assert_int_equal(r.type, REDIS_REPLY_NIL);
    drop_conn(t);

    /* An ACL user (Redis 6+): the default user holds the password. */
    snprintf(url, sizeof(url), "redis://default:s3cret@127.0.0.1:%d", t->fx.port);
    connect_and_wait(t, url);
    drop_conn(t);

    /* A wrong password: down once, with Redis's reason, not once per retry. */
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", t->fx.port);
    t->ups = t->downs = 0;
    connect_url(t, url, 1000);
    assert_true(run_until(t, downs_reach, &one, WAIT_MS));
    assert_string_equal(t->why, "AUTH failed: WRONGPASS invalid username-password pair or user "
                                "is disabled.");
    run_for(t, 5 * BACKOFF_MAX); /* several retries */
    assert_int_equal(t->downs, 1);
    assert_int_equal(t->ups, 0);
    assert_false(redis_conn_up(t->conn));
    assert_string_equal(redis_conn_last_error(t->conn), t->why);
    assert_true(redis_conn_down_since_ms(t->conn) > 0);
    drop_conn(t);

    /* No password at all against a server that wants one. */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", t->fx.port);
    t->downs = 0;
    connect_url(t, url, 1000);
    assert_true(run_until(t, downs_reach, &one, WAIT_MS));
    assert_non_null(strstr(t->why, "NOAUTH"));
}

/* The value of key in database db, seen by the fixture. */
static void get_in_db(struct t *t, int db, const char *key, char *out, size_t len)
{
    assert_int_equal(redis_fixture_cmd(&t->fx, out, len, "EVAL %s 1 %s %d",
                                       "redis.call('SELECT', ARGV[1]); "
                                       "return redis.call('GET', KEYS[1])",
                                       key, db),
                     0);
}

static void test_select_db(void **state)
{
    struct t *t = *state;
    const char *set[] = {"SET", "where", "db3"};
    char url[256], out[64];
    struct reply r;

    start_redis(t, NULL);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/3", t->fx.port);
    connect_and_wait(t, url);
    command_wait(t, &r, 0, 3, set);
    assert_string_equal(r.text, "OK");
    get_in_db(t, 3, "where", out, sizeof(out));
    assert_string_equal(out, "db3");
    get_in_db(t, 0, "where", out, sizeof(out));
    assert_string_equal(out, "(nil)");
}

static void test_unix_socket(void **state)
{
    struct t *t = *state;
    const char *set[] = {"SET", "via", "unix"};
    char url[256], out[64];
    struct reply r;

    start_redis(t, NULL);
    snprintf(url, sizeof(url), "unix://%s?db=2", t->fx.sock);
    connect_and_wait(t, url);
    command_wait(t, &r, 0, 3, set);
    assert_string_equal(r.text, "OK");
    get_in_db(t, 2, "via", out, sizeof(out));
    assert_string_equal(out, "unix");

    /* A socket that is not there: refused at once, reported once. */
    int one = 1;
    drop_conn(t);
    t->downs = 0;
    snprintf(url, sizeof(url), "unix://%s/none.sock", t->fx.dir);
    connect_url(t, url, 1000);
    assert_true(run_until(t, downs_reach, &one, WAIT_MS));
    assert_string_equal(t->why, "no such file or directory");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    ((struct t *)arg)->ticks++;
}

static void test_command_timeout(void **state)
{
    struct t *t = *state;
    const char *sleep1[] = {"DEBUG", "SLEEP", "1"};
    const char *get[] = {"GET", "k"};
    struct reply slow = {0}, late = {0}, after;
    struct event *tick;
    struct timeval every = {0, 10000};

    start_redis(t, NULL);
    connect_and_wait(t, t->fx.url);
    tick = event_new(t->base, -1, EV_PERSIST, tick_cb, t);
    event_add(tick, &every);

    /* Redis sleeps 1 s; the GET behind it gives up after 200 ms while the
     * loop keeps ticking. */
    int64_t start = now_ms();
    assert_int_equal(redis_conn_command(t->conn, 3000, reply_cb, &slow, 3, sleep1, NULL), 0);
    assert_int_equal(redis_conn_command(t->conn, 200, reply_cb, &late, 2, get, NULL), 0);
    assert_true(run_until(t, answered, &late, WAIT_MS));
    assert_string_equal(late.err, "timed out after 200 ms");
    assert_in_range(late.at_ms - start, 190, 700);
    assert_int_equal(slow.calls, 0);
    int ticks_during = t->ticks;
    assert_true(ticks_during >= 10);
    assert_true(redis_conn_up(t->conn)); /* slow is not down */

    /* The sleep ends; the GET's late reply arrives and is dropped. */
    assert_true(run_until(t, answered, &slow, WAIT_MS));
    assert_int_equal(slow.type, REDIS_REPLY_STATUS);
    command_wait(t, &after, 0, 2, get);
    assert_int_equal(after.type, REDIS_REPLY_NIL);
    assert_int_equal(late.calls, 1);
    event_free(tick);
}

static void test_kill_and_restart(void **state)
{
    struct t *t = *state;
    const char *blpop[] = {"BLPOP", "never", "0"};
    const char *ping[] = {"PING"};
    struct reply blocked = {0}, early = {0}, r;
    int one = 1, two = 2;

    start_redis(t, NULL);
    connect_and_wait(t, t->fx.url);
    assert_int_equal(redis_conn_command(t->conn, 5000, reply_cb, &blocked, 3, blpop, NULL), 0);
    run_for(t, 50); /* BLPOP reaches the server */

    redis_fixture_kill(&t->fx);
    assert_true(run_until(t, downs_reach, &one, WAIT_MS));
    assert_false(redis_conn_up(t->conn));
    assert_true(t->why[0] != '\0');
    assert_true(redis_conn_down_since_ms(t->conn) > 0);
    assert_true(run_until(t, answered, &blocked, WAIT_MS));
    assert_string_equal(blocked.err, "connection lost");

    /* While down: "not connected" from the loop, at once. */
    int64_t start = now_ms();
    assert_int_equal(redis_conn_command(t->conn, 0, reply_cb, &early, 1, ping, NULL), 0);
    assert_int_equal(early.calls, 0);
    assert_true(run_until(t, answered, &early, WAIT_MS));
    assert_string_equal(early.err, "not connected");
    assert_true(early.at_ms - start < 50);

    run_for(t, 3 * BACKOFF_MAX); /* retries, all refused */
    assert_int_equal(t->downs, 1);
    assert_int_equal(redis_fixture_restart(&t->fx), 0);
    int64_t back = now_ms();
    assert_true(run_until(t, ups_reach, &two, WAIT_MS));
    assert_true(now_ms() - back < BACKOFF_MAX + 500);
    assert_int_equal(t->downs, 1);
    assert_int_equal(redis_conn_connects(t->conn), 2);
    assert_int_equal(redis_conn_down_since_ms(t->conn), 0);
    command_wait(t, &r, 0, 1, ping);
    assert_string_equal(r.text, "PONG");
}

static void test_subscribe(void **state)
{
    struct t *t = *state;
    char out[64];

    start_redis(t, NULL);
    connect_and_wait(t, t->fx.url);
    assert_false(redis_conn_subscribed(t->conn));
    assert_int_equal(redis_conn_subscribe(t->conn, "sy:changes", message_cb, t), 0);
    assert_true(run_until(t, subscribed, NULL, WAIT_MS));
    assert_int_equal(t->sub_ups, 1);
    assert_int_equal(redis_fixture_cmd(&t->fx, out, sizeof(out), "PUBLISH sy:changes %s", "g=7"),
                     0);
    assert_string_equal(out, "1");
    assert_true(run_until(t, has_message, NULL, WAIT_MS));
    assert_string_equal(t->channel, "sy:changes");
    assert_string_equal(t->message, "g=7");
    assert_int_equal(t->messages, 1);

    /* At most REDIS_CONN_MAX_CHANNELS. */
    for (int i = 1; i < REDIS_CONN_MAX_CHANNELS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        assert_int_equal(redis_conn_subscribe(t->conn, name, message_cb, t), 0);
    }
    assert_int_equal(redis_conn_subscribe(t->conn, "one-too-many", message_cb, t), -1);
    assert_true(run_until(t, subscribed, NULL, WAIT_MS));
}

static void test_resubscribe_after_restart(void **state)
{
    struct t *t = *state;
    char out[64];
    int two = 2;

    start_redis(t, NULL);
    connect_and_wait(t, t->fx.url);
    assert_int_equal(redis_conn_subscribe(t->conn, "sy:changes", message_cb, t), 0);
    assert_true(run_until(t, subscribed, NULL, WAIT_MS));

    redis_fixture_kill(&t->fx);
    assert_true(run_until(t, not_subscribed, NULL, WAIT_MS));
    assert_int_equal(t->sub_downs, 1);
    assert_int_equal(redis_fixture_restart(&t->fx), 0);
    assert_true(run_until(t, subscribed, NULL, WAIT_MS));
    assert_true(run_until(t, ups_reach, &two, WAIT_MS));
    assert_int_equal(t->sub_ups, 2);
    assert_int_equal(redis_fixture_cmd(&t->fx, out, sizeof(out), "PUBLISH sy:changes %s", "back"),
                     0);
    assert_string_equal(out, "1");
    assert_true(run_until(t, has_message, NULL, WAIT_MS));
    assert_string_equal(t->message, "back");
}

static void test_free_with_commands_pending(void **state)
{
    struct t *t = *state;
    const char *nap[] = {"DEBUG", "SLEEP", "0.2"};
    const char *ping[] = {"PING"};
    struct reply a = {0}, b = {0}, c = {0};

    start_redis(t, NULL);
    /* Before it is up: the "not connected" answer is queued, then dropped. */
    connect_url(t, t->fx.url, 1000);
    assert_int_equal(redis_conn_command(t->conn, 0, reply_cb, &c, 1, ping, NULL), 0);
    drop_conn(t);
    run_for(t, 50);
    assert_int_equal(c.calls, 0);

    /* Up, with one command in Redis and one behind it. */
    connect_and_wait(t, t->fx.url);
    assert_int_equal(redis_conn_command(t->conn, 1000, reply_cb, &a, 3, nap, NULL), 0);
    assert_int_equal(redis_conn_command(t->conn, 1000, reply_cb, &b, 1, ping, NULL), 0);
    run_for(t, 20);
    drop_conn(t);
    run_for(t, 400);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 0);
}

static void test_free_from_callbacks(void **state)
{
    struct t *t = *state;
    const char *ping[] = {"PING"};
    struct reply other = {0};
    int one = 1;

    start_redis(t, NULL);
    connect_and_wait(t, t->fx.url);
    /* A reply callback frees the conn with another command still in flight. */
    memset(&freeing_reply, 0, sizeof(freeing_reply));
    assert_int_equal(redis_conn_command(t->conn, 0, freeing_reply_cb, t, 1, ping, NULL), 0);
    assert_int_equal(redis_conn_command(t->conn, 0, reply_cb, &other, 1, ping, NULL), 0);
    run_for(t, 200);
    assert_int_equal(freeing_reply.calls, 1);
    assert_string_equal(freeing_reply.text, "PONG");
    assert_int_equal(other.calls, 0);
    assert_null(t->conn);

    /* The state callback frees it when Redis dies under a pending command. */
    connect_and_wait(t, t->fx.url);
    assert_int_equal(redis_conn_subscribe(t->conn, "ch", message_cb, t), 0);
    assert_true(run_until(t, subscribed, NULL, WAIT_MS));
    const char *blpop[] = {"BLPOP", "never", "0"};
    memset(&other, 0, sizeof(other));
    assert_int_equal(redis_conn_command(t->conn, 5000, reply_cb, &other, 3, blpop, NULL), 0);
    run_for(t, 50);
    t->free_on_down = true;
    t->downs = 0;
    redis_fixture_kill(&t->fx);
    assert_true(run_until(t, downs_reach, &one, WAIT_MS));
    run_for(t, 100);
    assert_null(t->conn);
    assert_int_equal(other.calls, 0); /* freed before its "connection lost" */
}

static void test_connect_timeout(void **state)
{
    struct t *t = *state;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[128];
    int one = 1;

    /* Listens (the kernel completes the TCP handshake) but never answers. */
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(a.sin_port));

    int64_t start = now_ms();
    connect_url(t, url, 100);
    assert_true(run_until(t, downs_reach, &one, WAIT_MS));
    assert_string_equal(t->why, "timed out connecting after 100 ms");
    assert_in_range(now_ms() - start, 95, 900);
    run_for(t, 300); /* retried, still down, not reported again */
    assert_int_equal(t->downs, 1);
    assert_string_equal(redis_conn_last_error(t->conn), "timed out connecting after 100 ms");
    close(fd);
}

static void test_connection_refused(void **state)
{
    struct t *t = *state;
    char url[128];
    int one = 1;

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", unused_port());
    connect_url(t, url, 1000);
    assert_false(redis_conn_up(t->conn));
    assert_int_equal(redis_conn_down_since_ms(t->conn), 0); /* no attempt yet */
    assert_true(run_until(t, downs_reach, &one, WAIT_MS));
    assert_string_equal(t->why, "connection refused");
    assert_true(redis_conn_down_since_ms(t->conn) > 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip),
        T(test_auth),
        T(test_select_db),
        T(test_unix_socket),
        T(test_command_timeout),
        T(test_kill_and_restart),
        T(test_subscribe),
        T(test_resubscribe_after_restart),
        T(test_free_with_commands_pending),
        T(test_free_from_callbacks),
        T(test_connect_timeout),
        T(test_connection_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
