/* test_route.c - buckets, the split, stickiness and the override header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy/route.h"

#define KEYS 100000

static uint32_t key_bucket(unsigned i)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "session-%u", i);
    return route_bucket_of_key(key, (size_t)n);
}

/* Over 100 000 keys the candidate's share is within one percentage point of
 * the weight, for several weights. */
static void test_split_share(void **state)
{
    static const uint32_t weights[] = {100, 500, 1000, 3000, 5000, 9000, 9900};

    for (size_t w = 0; w < sizeof(weights) / sizeof(weights[0]); w++) {
        struct route_split rs;
        route_split_init(&rs, CONF_BLUE, weights[w]);
        struct route_view v = route_split_get(&rs);
        unsigned candidate = 0;
        for (unsigned i = 0; i < KEYS; i++)
            candidate += route_colour_for(&v, key_bucket(i)) == CONF_GREEN;
        double share = 100.0 * candidate / KEYS;
        double want = weights[w] / 100.0;
        if (share < want - 1.0 || share > want + 1.0)
            fail_msg("weight %.2f%%: candidate got %.2f%%", want, share);
    }
}

/* Raising the weight never moves a key from the candidate back to stable. */
static void test_split_monotonic(void **state)
{
    static const uint32_t steps[] = {0, 1, 100, 500, 1000, 2500, 5000, 7500, 9999, 10000};

    for (unsigned i = 0; i < KEYS; i++) {
        uint32_t b = key_bucket(i);
        bool was_candidate = false;
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            struct route_split rs;
            route_split_init(&rs, CONF_GREEN, steps[s]);
            struct route_view v = route_split_get(&rs);
            bool is_candidate = route_colour_for(&v, b) == CONF_BLUE;
            if (was_candidate && !is_candidate)
                fail_msg("key %u went back to stable at %u bp", i, steps[s]);
            was_candidate = is_candidate;
        }
        assert_true(was_candidate); /* at 100 % everyone is on the candidate */
    }
}

static void test_split_word(void **state)
{
    struct route_split rs;
    struct route_view v;

    route_split_init(&rs, CONF_GREEN, 1234);
    v = route_split_get(&rs);
    assert_int_equal(v.stable, CONF_GREEN);
    assert_int_equal(v.candidate, CONF_BLUE);
    assert_int_equal(v.candidate_bp, 1234);
    route_split_set(&rs, CONF_BLUE, 10000);
    v = route_split_get(&rs);
    assert_int_equal(v.stable, CONF_BLUE);
    assert_int_equal(v.candidate, CONF_GREEN);
    assert_int_equal(v.candidate_bp, 10000);
    route_split_set(&rs, CONF_BLUE, 20000); /* clamped */
    assert_int_equal(route_split_get(&rs).candidate_bp, 10000);
}

/* The instant flip: only while the same stable colour still gives the
 * candidate traffic, and only once. */
static void test_drop_candidate(void **state)
{
    struct route_split rs;
    struct route_view v;

    route_split_init(&rs, CONF_BLUE, 1000);
    assert_false(route_split_drop_candidate(&rs, CONF_GREEN)); /* promoted meanwhile */
    assert_int_equal(route_split_get(&rs).candidate_bp, 1000);
    assert_true(route_split_drop_candidate(&rs, CONF_BLUE));
    v = route_split_get(&rs);
    assert_int_equal(v.stable, CONF_BLUE);
    assert_int_equal(v.candidate_bp, 0);
    assert_false(route_split_drop_candidate(&rs, CONF_BLUE)); /* another worker was first */
    route_split_set(&rs, CONF_GREEN, 10000);
    assert_true(route_split_drop_candidate(&rs, CONF_GREEN));
    v = route_split_get(&rs);
    assert_int_equal(v.stable, CONF_GREEN);
    assert_int_equal(v.candidate_bp, 0);
}

static void test_random_buckets(void **state)
{
    uint64_t rng = 42;
    unsigned below = 0;

    for (unsigned i = 0; i < KEYS; i++) {
        uint32_t b = route_bucket_random(&rng);
        assert_true(b < ROUTE_BUCKETS);
        below += b < 2500;
    }
    assert_in_range(below, KEYS / 4 - KEYS / 100, KEYS / 4 + KEYS / 100);
}

static void test_addr_bucket_ignores_port(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1000)};
    struct sockaddr_in b = a;

    inet_pton(AF_INET, "10.1.2.3", &a.sin_addr);
    inet_pton(AF_INET, "10.1.2.3", &b.sin_addr);
    b.sin_port = htons(2000);
    assert_int_equal(route_bucket_of_addr((struct sockaddr *)&a),
                     route_bucket_of_addr((struct sockaddr *)&b));
}

static void check_cookie(const char *header, const char *name, const char *want)
{
    const char *v;
    size_t len;
    bool found = route_cookie_find(header, strlen(header), name, &v, &len);

    if (want == NULL) {
        assert_false(found);
        return;
    }
    assert_true(found);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
}

static void test_cookie_find(void **state)
{
    check_cookie("session=abc", "session", "abc");
    check_cookie("a=1; session=abc; b=2", "session", "abc");
    check_cookie("a=1;session=abc", "session", "abc");
    check_cookie("xsession=abc; session=def", "session", "def");
    check_cookie("session2=abc", "session", NULL);
    check_cookie("session=\"quoted\"", "session", "quoted");
    check_cookie("session=", "session", "");
    check_cookie("", "session", NULL);
    check_cookie("session", "session", NULL);
    check_cookie("a=1; session=abc  ", "session", "abc");
}

/* A request with the given headers, parsed by the real parser. */
struct parsed {
    struct http1_header hdrs[16];
    struct http1_request req;
};

static void parse(struct parsed *p, const char *text)
{
    int r = http1_parse_request(text, strlen(text), 8192, p->hdrs, 16, &p->req);
    assert_int_equal(r, (int)strlen(text));
}

static struct sockaddr_in addr_v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void test_pick_sticky_and_override(void **state)
{
    struct conf_cidr local = {.family = AF_INET, .addr = {127, 0, 0, 0}, .prefix = 8};
    struct conf_routing r = {
        .stable = CONF_BLUE,
        .sticky_cookie = "session",
        .sticky_client_addr = true,
        .override_header = "X-Switchyard-Pool",
        .override_allow = &local,
        .noverride_allow = 1,
    };
    struct route_split rs;
    struct sockaddr_in lo = addr_v4("127.0.0.1"), far = addr_v4("192.0.2.7");
    struct parsed p;
    uint64_t rng = 7;

    /* At 0 % only the override reaches the candidate, and only from a trusted address. */
    route_split_init(&rs, CONF_BLUE, 0);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nX-Switchyard-Pool: green\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng), CONF_GREEN);
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng), CONF_BLUE);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nX-Switchyard-Pool: candidate\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng), CONF_GREEN);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nX-Switchyard-Pool: purple\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng), CONF_BLUE);

    /* At 50 % a cookie decides, always the same way for the same value. */
    route_split_init(&rs, CONF_BLUE, 5000);
    unsigned green = 0;
    for (unsigned i = 0; i < 1000; i++) {
        char text[128];
        snprintf(text, sizeof(text),
                 "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b; session=u%u\r\n\r\n", i);
        parse(&p, text);
        enum conf_colour c = route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng);
        for (int again = 0; again < 3; again++)
            assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng), c);
        green += c == CONF_GREEN;
    }
    assert_in_range(green, 400, 600);

    /* No cookie: the client address decides, the same for every request. */
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    enum conf_colour first = route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng);
    for (int i = 0; i < 100; i++)
        assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng), first);

    /* Neither sticky key nor address: random, so both colours show up. */
    r.sticky_client_addr = false;
    green = 0;
    for (int i = 0; i < 1000; i++)
        green += route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng) == CONF_GREEN;
    assert_in_range(green, 400, 600);

    /* 100 %: all candidate. */
    route_split_set(&rs, CONF_BLUE, 10000);
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng), CONF_GREEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_share),    cmocka_unit_test(test_split_monotonic),
        cmocka_unit_test(test_split_word),     cmocka_unit_test(test_drop_candidate),
        cmocka_unit_test(test_random_buckets), cmocka_unit_test(test_addr_bucket_ignores_port),
        cmocka_unit_test(test_cookie_find),    cmocka_unit_test(test_pick_sticky_and_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
