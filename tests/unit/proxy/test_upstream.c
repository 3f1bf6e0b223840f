/* test_upstream.c - smooth weighted round-robin, server exclusion, admin
 * states, in-flight counts and pools retired by a reload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <event2/event.h>

#include "proxy/snapshot.h"
#include "proxy/upstream.h"

struct fixture {
    struct event_base *base;
    struct snapshot *snap;
    int listen_fd; /* every server's address: connects succeed */
    unsigned port;
};

static int listen_any(unsigned *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, len) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || (f->base = event_base_new()) == NULL ||
        (f->listen_fd = listen_any(&f->port)) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    snapshot_unref(f->snap);
    close(f->listen_fd);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* A snapshot whose blue pool has servers a, b, c... with the given weights,
 * all at the fixture's listening address. */
static struct snapshot *snapshot_of(const struct fixture *f, const unsigned *weights, size_t n,
                                    const struct snapshot *prev)
{
    char text[2048], servers[1024] = "";
    struct conf_errors errs = {0};
    struct config *cfg;
    struct snapshot *snap;

    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(servers);
        snprintf(servers + len, sizeof(servers) - len,
                 "%s{\"name\": \"%c\", \"addr\": \"127.0.0.1:%u\", \"weight\": %u}",
                 i ? ", " : "", (char)('a' + i), f->port, weights[i]);
    }
    snprintf(text, sizeof(text),
             "{\"listen\": [{\"addr\": \"127.0.0.1:1\"}], \"pools\": {"
             "\"blue\": {\"servers\": [%s]}, "
             "\"green\": {\"servers\": [{\"name\": \"g\", \"addr\": \"127.0.0.1:9\"}]}}}",
             servers);
    cfg = config_load_string(text, strlen(text), "<test>", "/", &errs);
    conf_errors_print(&errs, stderr);
    conf_errors_clear(&errs);
    assert_non_null(cfg);
    snap = snapshot_new(cfg, 1, prev);
    assert_non_null(snap);
    return snap;
}

static struct upstream_pool *pool_of(struct fixture *f, const unsigned *weights, size_t n)
{
    snapshot_unref(f->snap);
    f->snap = snapshot_of(f, weights, n, NULL);
    return upstream_pool_new(f->base, f->snap, CONF_BLUE, 0, NULL);
}

static void set_admin(struct snapshot *snap, const char *name, enum server_admin a)
{
    struct server_state *st = snapshot_server(snap, CONF_BLUE, name);

    assert_non_null(st);
    atomic_store(&st->admin, a);
}

static char pick_name(struct upstream_pool *pool, uint64_t exclude)
{
    struct upstream_server *srv = upstream_pool_pick(pool, exclude);
    return srv == NULL ? '-' : upstream_server_conf(srv)->name[0];
}

/* nginx's example: weights 5, 1, 1 give a a b a c a a, then repeat. */
static void test_smooth_sequence(void **state)
{
    static const unsigned weights[] = {5, 1, 1};
    struct upstream_pool *pool = pool_of(*state, weights, 3);
    char seq[15];

    assert_non_null(pool);
    for (int i = 0; i < 14; i++)
        seq[i] = pick_name(pool, 0);
    seq[14] = '\0';
    assert_string_equal(seq, "aabacaaaabacaa");
    upstream_pool_retire(pool, NULL);
}

/* Over many picks each server gets its weight's share exactly, and a
 * heavy server never takes more than its share in a row. */
static void test_shares_and_spread(void **state)
{
    static const unsigned weights[] = {9, 1};
    struct upstream_pool *pool = pool_of(*state, weights, 2);
    unsigned count[2] = {0}, run = 0, longest = 0;

    for (int i = 0; i < 1000; i++) {
        char c = pick_name(pool, 0);
        assert_true(c == 'a' || c == 'b');
        count[c == 'b']++;
        run = c == 'a' ? run + 1 : 0;
        longest = run > longest ? run : longest;
    }
    assert_int_equal(count[0], 900);
    assert_int_equal(count[1], 100);
    assert_true(longest <= 9);
    upstream_pool_retire(pool, NULL);
}

static void test_exclude(void **state)
{
    static const unsigned weights[] = {1, 1, 1};
    struct upstream_pool *pool = pool_of(*state, weights, 3);
    struct upstream_server *a = upstream_pool_pick(pool, 0);
    uint64_t tried = upstream_server_bit(a);

    /* The retry never returns a server that already failed this request. */
    for (int i = 0; i < 30; i++) {
        struct upstream_server *s = upstream_pool_pick(pool, tried);
        assert_non_null(s);
        assert_true(s != a);
    }
    tried = (1u << 3) - 1;
    assert_null(upstream_pool_pick(pool, tried));
    upstream_pool_retire(pool, NULL);
}

/* A drained or disabled server gets nothing new; enabled again, it is back. */
static void test_admin_states(void **state)
{
    static const unsigned weights[] = {1, 1, 1};
    struct fixture *f = *state;
    struct upstream_pool *pool = pool_of(f, weights, 3);

    set_admin(f->snap, "a", SERVER_DISABLED);
    set_admin(f->snap, "b", SERVER_DRAINING);
    for (int i = 0; i < 30; i++)
        assert_int_equal(pick_name(pool, 0), 'c');
    set_admin(f->snap, "c", SERVER_DRAINING);
    assert_int_equal(pick_name(pool, 0), '-');
    set_admin(f->snap, "a", SERVER_ENABLED);
    assert_int_equal(pick_name(pool, 0), 'a');
    upstream_pool_retire(pool, NULL);
}

/* A connection counts as in flight from connect (or reuse) to its release. */
static void test_busy_count(void **state)
{
    static const unsigned weights[] = {1};
    struct fixture *f = *state;
    struct upstream_pool *pool = pool_of(f, weights, 1);
    struct server_state *st = snapshot_server(f->snap, CONF_BLUE, "a");
    struct upstream_server *srv = upstream_pool_pick(pool, 0);
    struct upstream_conn *c1 = upstream_conn_connect(srv);
    struct upstream_conn *c2 = upstream_conn_connect(srv);

    assert_non_null(c1);
    assert_non_null(c2);
    assert_int_equal(server_state_busy(st), 2);
    upstream_conn_release(c1); /* idle: no longer in flight */
    assert_int_equal(server_state_busy(st), 1);
    c1 = upstream_conn_take_idle(srv);
    assert_non_null(c1);
    assert_int_equal(server_state_busy(st), 2);
    upstream_conn_free(c1);
    upstream_conn_free(c2);
    assert_int_equal(server_state_busy(st), 0);
    upstream_pool_retire(pool, NULL);
}

/* Released to a server out of rotation, a connection closes: nothing is
 * kept open to a server being drained. */
static void test_release_to_drained_closes(void **state)
{
    static const unsigned weights[] = {1};
    struct fixture *f = *state;
    struct upstream_pool *pool = pool_of(f, weights, 1);
    struct upstream_server *srv = upstream_pool_pick(pool, 0);
    struct upstream_conn *c = upstream_conn_connect(srv);

    assert_non_null(c);
    set_admin(f->snap, "a", SERVER_DRAINING);
    upstream_conn_release(c);
    assert_null(upstream_conn_take_idle(srv));
    upstream_pool_retire(pool, NULL);
}

/* A reload: idle connections move to the same server of the new pool, a
 * busy one keeps the old pool alive until it is freed (ASan checks that
 * nothing is used after free or leaked), and the server's state is shared. */
static void test_retire(void **state)
{
    static const unsigned weights[] = {1, 1};
    static const unsigned new_weights[] = {3, 1, 1};
    struct fixture *f = *state;
    struct upstream_pool *old = pool_of(f, weights, 2);
    struct snapshot *snap2 = snapshot_of(f, new_weights, 3, f->snap);
    struct upstream_pool *cur = upstream_pool_new(f->base, snap2, CONF_BLUE, 0, NULL);
    struct upstream_server *a = upstream_pool_pick(old, 0);
    struct upstream_conn *idle = upstream_conn_connect(a);
    struct upstream_conn *busy = upstream_conn_connect(a);
    struct upstream_server *a2;

    assert_string_equal(upstream_server_conf(a)->name, "a");
    assert_ptr_equal(snapshot_server(snap2, CONF_BLUE, "a"),
                     snapshot_server(f->snap, CONF_BLUE, "a"));
    upstream_conn_release(idle);
    snapshot_unref(f->snap); /* the pools hold their own references */
    f->snap = snap2;
    upstream_pool_retire(old, cur);
    a2 = upstream_pool_pick(cur, 0);
    assert_string_equal(upstream_server_conf(a2)->name, "a");
    assert_ptr_equal(upstream_conn_take_idle(a2), idle);
    assert_ptr_equal(upstream_conn_server(idle), a2);
    assert_int_equal(server_state_busy(snapshot_server(snap2, CONF_BLUE, "a")), 2);
    upstream_conn_free(idle);
    upstream_conn_release(busy); /* old pool retired: closes, and frees the pool */
    assert_int_equal(server_state_busy(snapshot_server(snap2, CONF_BLUE, "a")), 0);
    upstream_pool_retire(cur, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_smooth_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shares_and_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclude, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_to_drained_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
