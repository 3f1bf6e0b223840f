/* test_route.c - buckets, the split, stickiness and the override header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>

#include "proxy/forward.h"
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
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng, NULL), CONF_GREEN);
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng, NULL), CONF_BLUE);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nX-Switchyard-Pool: candidate\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng, NULL), CONF_GREEN);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nX-Switchyard-Pool: purple\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng, NULL), CONF_BLUE);

    /* At 50 % a cookie decides, always the same way for the same value. */
    route_split_init(&rs, CONF_BLUE, 5000);
    unsigned green = 0;
    for (unsigned i = 0; i < 1000; i++) {
        char text[128];
        snprintf(text, sizeof(text),
                 "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b; session=u%u\r\n\r\n", i);
        parse(&p, text);
        enum conf_colour c = route_pick(&r, &rs, &p.req, (struct sockaddr *)&lo, &rng, NULL);
        for (int again = 0; again < 3; again++)
            assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng, NULL), c);
        green += c == CONF_GREEN;
    }
    assert_in_range(green, 400, 600);

    /* No cookie: the client address decides, the same for every request. */
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    enum conf_colour first = route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng, NULL);
    for (int i = 0; i < 100; i++)
        assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng, NULL), first);

    /* Neither sticky key nor address: random, so both colours show up. */
    r.sticky_client_addr = false;
    green = 0;
    for (int i = 0; i < 1000; i++)
        green += route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng, NULL) == CONF_GREEN;
    assert_in_range(green, 400, 600);

    /* 100 %: all candidate. */
    route_split_set(&rs, CONF_BLUE, 10000);
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&far, &rng, NULL), CONF_GREEN);
}

/* Tokens are URL-safe, differ from draw to draw, and their buckets spread
 * evenly: a made-up cookie places users like a random draw would. */
static void test_token_draw(void **state)
{
    static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char prev[ROUTE_TOKEN_LEN] = {0}, tok[ROUTE_TOKEN_LEN];
    uint64_t rng = 99;
    unsigned below = 0;

    for (unsigned i = 0; i < KEYS; i++) {
        route_token_draw(&rng, tok);
        for (size_t c = 0; c < ROUTE_TOKEN_LEN; c++)
            assert_non_null(memchr(safe, tok[c], sizeof(safe) - 1));
        assert_memory_not_equal(tok, prev, ROUTE_TOKEN_LEN);
        memcpy(prev, tok, ROUTE_TOKEN_LEN);
        below += route_bucket_of_key(tok, ROUTE_TOKEN_LEN) < 1000;
    }
    assert_in_range(below, KEYS / 10 - KEYS / 100, KEYS / 10 + KEYS / 100);
}

static const struct conf_routing cookie_routing = {
    .stable = CONF_BLUE,
    .sticky_cookie = "session",
    .sticky_header = "X-User-Id",
    .sticky_set_cookie = true,
};

/* The colour of a request that carries tok as its sticky cookie. */
static enum conf_colour colour_with_cookie(const struct conf_routing *r,
                                           const struct route_split *rs,
                                           const struct route_token *tok,
                                           const struct sockaddr *peer)
{
    char text[160];
    struct parsed p;
    struct route_token again;
    uint64_t rng = 5;

    snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b; session=%.*s\r\n\r\n",
             ROUTE_TOKEN_LEN, tok->value);
    parse(&p, text);
    enum conf_colour c = route_pick(r, rs, &p.req, peer, &rng, &again);
    assert_false(again.set); /* the cookie is there: not set again */
    return c;
}

/* Without the cookie (and no address rule) the request gets a random
 * bucket and a cookie that leads back to it; a user who reached the
 * candidate stays there at every later step. */
static void test_pick_sets_cookie(void **state)
{
    static const uint32_t steps[] = {2500, 5000, 10000};
    struct sockaddr_in far = addr_v4("192.0.2.7");
    struct sockaddr *peer = (struct sockaddr *)&far;
    struct route_split rs, later;
    struct route_token tok;
    struct parsed p;
    uint64_t rng = 11;
    unsigned green = 0;

    route_split_init(&rs, CONF_BLUE, 1000);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nCookie: sessionid=1\r\n\r\n");
    for (unsigned i = 0; i < 2000; i++) {
        enum conf_colour c = route_pick(&cookie_routing, &rs, &p.req, peer, &rng, &tok);
        assert_true(tok.set);
        assert_int_equal(colour_with_cookie(&cookie_routing, &rs, &tok, peer), c);
        green += c == CONF_GREEN;
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]) && c == CONF_GREEN; s++) {
            route_split_init(&later, CONF_BLUE, steps[s]);
            assert_int_equal(colour_with_cookie(&cookie_routing, &later, &tok, peer), CONF_GREEN);
        }
    }
    assert_in_range(green, 150, 250); /* 10 % of 2000, +-3.5 sigma */

    /* At 0 % users are placed already, so the rollout starts with cookies. */
    route_split_set(&rs, CONF_BLUE, 0);
    assert_int_equal(route_pick(&cookie_routing, &rs, &p.req, peer, &rng, &tok), CONF_BLUE);
    assert_true(tok.set);
}

/* No cookie is set when the request has it, when the sticky header decides,
 * when the override forced the pool, or when set_cookie is off. */
static void test_pick_cookie_not_set(void **state)
{
    struct conf_cidr any = {.family = AF_INET, .prefix = 0};
    struct conf_routing r = cookie_routing;
    struct sockaddr_in far = addr_v4("192.0.2.7");
    struct sockaddr *peer = (struct sockaddr *)&far;
    struct route_split rs;
    struct route_token tok = {.set = true};
    struct parsed p;
    uint64_t rng = 3;

    r.override_header = "X-Switchyard-Pool";
    r.override_allow = &any;
    r.noverride_allow = 1;
    route_split_init(&rs, CONF_BLUE, 5000);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nCookie: session=known\r\n\r\n");
    (void)route_pick(&r, &rs, &p.req, peer, &rng, &tok);
    assert_false(tok.set);
    tok.set = true;
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nX-User-Id: 42\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, peer, &rng, &tok),
                     route_colour_for(&(struct route_view){CONF_BLUE, CONF_GREEN, 5000},
                                      route_bucket_of_key("42", 2)));
    assert_false(tok.set);
    tok.set = true;
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\nX-Switchyard-Pool: green\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, peer, &rng, &tok), CONF_GREEN);
    assert_false(tok.set);
    tok.set = true;
    r.sticky_set_cookie = false;
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    (void)route_pick(&r, &rs, &p.req, peer, &rng, &tok);
    assert_false(tok.set);
}

/* With sticky.client_addr the address still decides the first request,
 * and the cookie set with it leads to the same pool. */
static void test_pick_cookie_follows_addr(void **state)
{
    struct conf_routing r = cookie_routing;
    struct route_split rs;
    struct route_token tok;
    struct parsed p;
    uint64_t rng = 17;
    unsigned green = 0;

    r.sticky_client_addr = true;
    route_split_init(&rs, CONF_BLUE, 3000);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    for (unsigned i = 0; i < 500; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        struct sockaddr *peer = (struct sockaddr *)&a;
        enum conf_colour by_addr = route_pick(&r, &rs, &p.req, peer, &rng, NULL);
        assert_int_equal(route_pick(&r, &rs, &p.req, peer, &rng, &tok), by_addr);
        assert_true(tok.set); /* 64 draws at 30 % or 70 %: a miss is below 1e-9 */
        assert_int_equal(colour_with_cookie(&r, &rs, &tok, peer), by_addr);
        green += by_addr == CONF_GREEN;
    }
    assert_in_range(green, 100, 200); /* the addresses do spread over both */
}

/* When the address's pool holds almost no bucket, the proxy gives up after
 * a few draws rather than spend the hot path: no cookie, the address still
 * routes. */
static void test_pick_cookie_gives_up(void **state)
{
    struct conf_routing r = cookie_routing;
    struct route_split rs;
    struct route_token tok;
    struct parsed p;
    struct sockaddr_in a = {.sin_family = AF_INET};
    uint64_t rng = 23;
    uint32_t i = 0;

    r.sticky_client_addr = true;
    /* An address whose bucket is the only one left on stable at 99.99 %. */
    do
        a.sin_addr.s_addr = htonl(0x0a000000u + i++);
    while (route_bucket_of_addr((struct sockaddr *)&a) != ROUTE_BUCKETS - 1 && i < (1u << 22));
    assert_int_equal(route_bucket_of_addr((struct sockaddr *)&a), ROUTE_BUCKETS - 1);
    route_split_init(&rs, CONF_BLUE, ROUTE_BUCKETS - 1);
    parse(&p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(route_pick(&r, &rs, &p.req, (struct sockaddr *)&a, &rng, &tok), CONF_BLUE);
    assert_false(tok.set);
}

/* Forwards a response head with the sticky cookie option; returns the head
 * sent to the client, as a new string. */
static char *forwarded_head(const char *upstream_head)
{
    struct http1_header hdrs[16];
    struct http1_response res;
    struct forward_response_opts fo = {
        .cookie_name = "session",
        .cookie_value = "AbC-_0123456789x",
        .cookie_value_len = ROUTE_TOKEN_LEN,
    };
    struct evbuffer *out = evbuffer_new();

    assert_int_equal(http1_parse_response(upstream_head, strlen(upstream_head), 8192, hdrs, 16,
                                          HTTP1_M_GET, &res),
                     (int)strlen(upstream_head));
    assert_int_equal(forward_response_head(out, &res, &fo), 0);
    size_t len = evbuffer_get_length(out);
    char *text = calloc(1, len + 1);
    assert_non_null(text);
    evbuffer_remove(out, text, len);
    evbuffer_free(out);
    return text;
}

static unsigned count_of(const char *hay, const char *needle)
{
    unsigned n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_forward_sets_cookie(void **state)
{
    char *head = forwarded_head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_string_equal(head, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                              "Set-Cookie: session=AbC-_0123456789x; Path=/; Max-Age=31536000; "
                              "HttpOnly; SameSite=Lax\r\n\r\n");
    free(head);

    /* Another cookie of the application does not stop ours... */
    head = forwarded_head("HTTP/1.1 404 Not Found\r\nSet-Cookie: sessionid=9\r\n"
                          "Content-Length: 0\r\n\r\n");
    assert_int_equal(count_of(head, "Set-Cookie: session=AbC"), 1);
    free(head);
    /* ...but its own value for our cookie wins. */
    head = forwarded_head("HTTP/1.1 200 OK\r\nset-cookie:  session=app; Path=/\r\n"
                          "Content-Length: 0\r\n\r\n");
    assert_int_equal(count_of(head, "session="), 1);
    assert_non_null(strstr(head, "session=app"));
    free(head);
    /* Interim and protocol-switching answers carry no cookie. */
    head = forwarded_head("HTTP/1.1 100 Continue\r\n\r\n");
    assert_null(strstr(head, "Set-Cookie"));
    free(head);
    head = forwarded_head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert_null(strstr(head, "Set-Cookie"));
    free(head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_share),
        cmocka_unit_test(test_split_monotonic),
        cmocka_unit_test(test_split_word),
        cmocka_unit_test(test_drop_candidate),
        cmocka_unit_test(test_random_buckets),
        cmocka_unit_test(test_addr_bucket_ignores_port),
        cmocka_unit_test(test_cookie_find),
        cmocka_unit_test(test_pick_sticky_and_override),
        cmocka_unit_test(test_token_draw),
        cmocka_unit_test(test_pick_sets_cookie),
        cmocka_unit_test(test_pick_cookie_not_set),
        cmocka_unit_test(test_pick_cookie_follows_addr),
        cmocka_unit_test(test_pick_cookie_gives_up),
        cmocka_unit_test(test_forward_sets_cookie),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
