/* test_upstream.c - smooth weighted round-robin and server exclusion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <event2/event.h>

#include "proxy/upstream.h"

static int setup(void **state)
{
    *state = event_base_new();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    event_base_free(*state);
    return 0;
}

/* A pool of n servers with the given weights (addresses are never used). */
static struct upstream_pool *pool_of(struct event_base *base, struct conf_server *servers,
                                     const unsigned *weights, size_t n, struct conf_pool *conf)
{
    static char names[8][8];

    for (size_t i = 0; i < n; i++) {
        memset(&servers[i], 0, sizeof(servers[i]));
        names[i][0] = (char)('a' + i);
        servers[i].name = names[i];
        servers[i].weight = weights[i];
    }
    conf->servers = servers;
    conf->nservers = n;
    return upstream_pool_new(base, conf, CONF_BLUE, NULL);
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
    struct conf_server servers[3];
    struct conf_pool conf;
    struct upstream_pool *pool = pool_of(*state, servers, weights, 3, &conf);
    char seq[15];

    assert_non_null(pool);
    for (int i = 0; i < 14; i++)
        seq[i] = pick_name(pool, 0);
    seq[14] = '\0';
    assert_string_equal(seq, "aabacaaaabacaa");
    upstream_pool_free(pool);
}

/* Over many picks each server gets its weight's share exactly, and a
 * heavy server never takes more than its share in a row. */
static void test_shares_and_spread(void **state)
{
    static const unsigned weights[] = {9, 1};
    struct conf_server servers[2];
    struct conf_pool conf;
    struct upstream_pool *pool = pool_of(*state, servers, weights, 2, &conf);
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
    upstream_pool_free(pool);
}

static void test_exclude(void **state)
{
    static const unsigned weights[] = {1, 1, 1};
    struct conf_server servers[3];
    struct conf_pool conf;
    struct upstream_pool *pool = pool_of(*state, servers, weights, 3, &conf);
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
    upstream_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_smooth_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shares_and_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclude, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
