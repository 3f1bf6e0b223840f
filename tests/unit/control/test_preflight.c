/* test_preflight.c - preflight probes against real loopback servers.
 *
 * Each candidate server is a tiny responder on its own listening socket,
 * run by the test's event base. It keeps every request head it gets and
 * answers by path: /ok says "all ok"; /chunked says it in chunked framing;
 * /hold answers only once every responder holds one (so a preflight passes
 * it only when it probes the servers concurrently); anything else is a 404.
 * A responder with a status set answers every request with it. A port that
 * was closed refuses; a socket that listens and never accepts stays silent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "conf/addr.h"
#include "conf/config.h"
#include "control/preflight.h"

#define SERVERS_MAX 3
#define CONNS_MAX 32
#define HEAD_MAX 4096
#define LOG_MAX 256
#define WAIT_MS 5000 /* the most any wait in a test may take */
#define STEP_MS 10

struct fixture;

struct responder {
    struct fixture *fx;
    struct evconnlistener *listener;
    int status;          /* answer every request with this status; 0: by path */
    char log[LOG_MAX];   /* request lines' paths, in order, space-separated */
    char head[HEAD_MAX]; /* the last request head */
    unsigned requests;
    unsigned closed; /* connections the prober closed */
};

struct conn {
    struct responder *r;
    struct bufferevent *bev;
    bool held; /* a /hold request waiting for the others */
};

struct fixture {
    struct event_base *base;
    struct responder responders[SERVERS_MAX];
    struct conf_server servers[SERVERS_MAX];
    struct conf_pool pool;
    struct conn conns[CONNS_MAX];
    size_t nconns;
    unsigned holding; /* /hold requests waiting */
    int silent_fd;    /* listens, never accepts */
    struct preflight *pf;
    bool keep; /* the callback leaves the preflight to the test */
    unsigned calls;
    bool passed;
    char why[512];
};

/* ------------------------------------------------------------------------ */
/* The responders */

static void answer(struct conn *c, int status, const char *body)
{
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                        status, strlen(body), body);
}

static void answer_chunked(struct conn *c)
{
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nall\r\n3\r\n ok\r\n0\r\n\r\n");
}

/* Answers every held request once each responder holds one. */
static void release_held(struct fixture *fx)
{
    if (fx->holding < fx->pool.nservers)
        return;
    for (size_t i = 0; i < fx->nconns; i++) {
        if (fx->conns[i].held)
            answer(&fx->conns[i], 200, "all ok");
        fx->conns[i].held = false;
    }
    fx->holding = 0;
}

static void route(struct conn *c, const char *path)
{
    if (c->r->status != 0) {
        answer(c, c->r->status, "down");
    } else if (strcmp(path, "/ok") == 0) {
        answer(c, 200, "all ok");
    } else if (strcmp(path, "/chunked") == 0) {
        answer_chunked(c);
    } else if (strcmp(path, "/hold") == 0) {
        c->held = true;
        c->r->fx->holding++;
        release_held(c->r->fx);
    } else {
        answer(c, 404, "not found");
    }
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct responder *r = c->r;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    char method[16], path[128];

    if (end.pos < 0 || (size_t)end.pos + 4 >= HEAD_MAX)
        return;
    evbuffer_remove(in, r->head, (size_t)end.pos + 4);
    r->head[end.pos + 4] = '\0';
    r->requests++;
    assert_int_equal(sscanf(r->head, "%15s %127s", method, path), 2);
    snprintf(r->log + strlen(r->log), LOG_MAX - strlen(r->log), "%s%s", r->log[0] ? " " : "", path);
    route(c, path);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        c->r->closed++;
        bufferevent_disable(bev, EV_READ | EV_WRITE);
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct responder *r = arg;
    struct fixture *fx = r->fx;
    struct conn *c;

    assert_true(fx->nconns < CONNS_MAX);
    c = &fx->conns[fx->nconns++];
    c->r = r;
    c->bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(c->bev);
    bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Writes "127.0.0.1:PORT" of a bound socket into addr. */
static void local_addr(int fd, struct conf_addr *addr)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char text[32];
    const char *why = NULL;

    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sin.sin_port));
    assert_int_equal(conf_addr_parse(text, addr, &why), 0);
}

/* A socket bound to a free loopback port, listening when backlog > 0. */
static int bound_socket(int backlog)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    if (backlog > 0)
        assert_int_equal(listen(fd, backlog), 0);
    return fd;
}

static char *server_name(size_t i)
{
    char name[16];

    snprintf(name, sizeof(name), "green-%zu", i + 1);
    return strdup(name);
}

/* Makes server i of the pool a responder. */
static void add_responder(struct fixture *fx, size_t i)
{
    struct responder *r = &fx->responders[i];
    int fd = bound_socket(16);

    r->fx = fx;
    evutil_make_socket_nonblocking(fd);
    r->listener = evconnlistener_new(fx->base, accept_cb, r,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    assert_non_null(r->listener);
    fx->servers[i].name = server_name(i);
    local_addr(fd, &fx->servers[i].addr);
    fx->pool.nservers = i + 1;
}

/* Makes server i a port that refuses: bound, then closed. */
static void add_refusing(struct fixture *fx, size_t i)
{
    int fd = bound_socket(0);

    local_addr(fd, &fx->servers[i].addr);
    close(fd);
    fx->servers[i].name = server_name(i);
    fx->pool.nservers = i + 1;
}

/* Makes server i a socket that takes connections and never answers. */
static void add_silent(struct fixture *fx, size_t i)
{
    fx->silent_fd = bound_socket(4);
    local_addr(fx->silent_fd, &fx->servers[i].addr);
    fx->servers[i].name = server_name(i);
    fx->pool.nservers = i + 1;
}

/* ------------------------------------------------------------------------ */
/* The fixture */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    fx->base = event_base_new();
    fx->pool.servers = fx->servers;
    fx->silent_fd = -1;
    *state = fx;
    return fx->base != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    preflight_free(fx->pf);
    for (size_t i = 0; i < fx->nconns; i++)
        bufferevent_free(fx->conns[i].bev);
    for (size_t i = 0; i < SERVERS_MAX; i++) {
        if (fx->responders[i].listener != NULL)
            evconnlistener_free(fx->responders[i].listener);
        free(fx->servers[i].name);
    }
    if (fx->silent_fd >= 0)
        close(fx->silent_fd);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* The owner's callback: frees the preflight from inside, as the rollout
 * controller does (before it reads why), unless the test keeps it. */
static void done_cb(bool passed, const char *why, void *arg)
{
    struct fixture *fx = arg;

    if (!fx->keep) {
        preflight_free(fx->pf);
        fx->pf = NULL;
    }
    fx->calls++;
    fx->passed = passed;
    snprintf(fx->why, sizeof(fx->why), "%s", why);
}

static bool reported(const struct fixture *fx)
{
    return fx->calls > 0;
}

/* Runs the loop in short slices until done(fx) or WAIT_MS. */
static void run_until(struct fixture *fx, bool (*done)(const struct fixture *))
{
    struct timeval slice = {0, STEP_MS * 1000};

    for (int i = 0; i < WAIT_MS / STEP_MS && !done(fx); i++) {
        event_base_loopexit(fx->base, &slice);
        event_base_dispatch(fx->base);
    }
}

/* Runs the loop for about ms, whatever happens. */
static void run_for(struct fixture *fx, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(fx->base, &tv);
    event_base_dispatch(fx->base);
}

static void start(struct fixture *fx, const struct conf_probe *probes, size_t n,
                  uint32_t timeout_ms)
{
    fx->pf = preflight_start(fx->base, probes, n, &fx->pool, timeout_ms, done_cb, fx);
    assert_non_null(fx->pf);
    assert_int_equal(fx->calls, 0); /* never from inside the start */
}

/* Starts the probes, waits for the report and checks that no second one
 * comes. */
static void run_probes(struct fixture *fx, const struct conf_probe *probes, size_t n,
                       uint32_t timeout_ms)
{
    start(fx, probes, n, timeout_ms);
    run_until(fx, reported);
    run_for(fx, 50);
    assert_int_equal(fx->calls, 1);
}

static void expect_failure(const struct fixture *fx, size_t server, const char *what)
{
    char want[512];

    snprintf(want, sizeof(want), "%s (%s): %s", fx->servers[server].name,
             fx->servers[server].addr.text, what);
    assert_false(fx->passed);
    assert_non_null(strstr(fx->why, want));
}

#define PROBE(m, p, status, body)                                                                  \
    {                                                                                              \
        .method = (m), .path = (p), .expect_status = (status), .expect_body = (body)               \
    }

/* ------------------------------------------------------------------------ */
/* Tests */

static void test_all_pass(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {
        PROBE("GET", "/ok", 200, NULL),
        PROBE("GET", "/chunked", 200, "all ok"),
        PROBE("GET", "/missing", 404, "not found"),
    };

    add_responder(fx, 0);
    add_responder(fx, 1);
    run_probes(fx, probes, 3, 2000);
    assert_true(fx->passed);
    assert_string_equal(fx->why, "3 probes passed on 2 servers");
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(fx->responders[i].log, "/ok /chunked /missing");
}

static void test_status_mismatch_stops_that_server(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, NULL), PROBE("GET", "/ok", 200, NULL)};

    add_responder(fx, 0);
    fx->responders[0].status = 503;
    run_probes(fx, probes, 2, 2000);
    expect_failure(fx, 0, "status 503, expected 200");
    assert_non_null(strstr(fx->why, "probe 1 (GET /ok) on green-1"));
    assert_string_equal(fx->responders[0].log, "/ok");
}

static void test_later_probe_named(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, NULL),
                                  PROBE("GET", "/healthz", 200, NULL)};

    add_responder(fx, 0);
    run_probes(fx, probes, 2, 2000);
    expect_failure(fx, 0, "status 404, expected 200");
    assert_non_null(strstr(fx->why, "probe 2 (GET /healthz) on green-1"));
}

static void test_body_mismatch(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, "healthy")};

    add_responder(fx, 0);
    run_probes(fx, probes, 1, 2000);
    expect_failure(fx, 0, "status 200, body does not contain \"healthy\"");
}

static void test_connect_refused(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, NULL)};

    add_refusing(fx, 0);
    run_probes(fx, probes, 1, 2000);
    expect_failure(fx, 0, "connect refused");
}

static void test_timeout(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, NULL)};

    add_silent(fx, 0);
    run_probes(fx, probes, 1, 100);
    expect_failure(fx, 0, "timeout after 100 ms");
}

static void test_headers_sent(void **state)
{
    struct fixture *fx = *state;
    struct conf_header headers[] = {{"X-Token", "secret"}, {"X-Empty", ""}};
    struct conf_header agent[] = {{"user-agent", "probe/2"}};
    struct conf_probe probes[] = {PROBE("POST", "/ok", 200, NULL), PROBE("GET", "/ok", 200, NULL)};
    const char *head = fx->responders[0].head;
    char host[96];

    probes[0].headers = headers;
    probes[0].nheaders = 2;
    add_responder(fx, 0);
    snprintf(host, sizeof(host), "\r\nHost: %s\r\n", fx->servers[0].addr.text);
    start(fx, probes, 1, 2000);
    run_until(fx, reported);
    assert_true(fx->passed);
    assert_non_null(strstr(head, "POST /ok HTTP/1.1\r\n"));
    assert_non_null(strstr(head, host));
    assert_non_null(strstr(head, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(head, "\r\nX-Token: secret\r\nX-Empty: \r\n")); /* in order */
    assert_non_null(strstr(head, "\r\nUser-Agent: switchyard-preflight\r\n"));

    /* A probe's own User-Agent replaces the default one. */
    fx->calls = 0;
    probes[1].headers = agent;
    probes[1].nheaders = 1;
    start(fx, &probes[1], 1, 2000);
    run_until(fx, reported);
    assert_true(fx->passed);
    assert_non_null(strstr(head, "\r\nuser-agent: probe/2\r\n"));
    assert_null(strstr(head, "switchyard-preflight"));
}

static void test_servers_in_parallel(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/hold", 200, "all ok"),
                                  PROBE("GET", "/ok", 200, NULL)};

    for (size_t i = 0; i < SERVERS_MAX; i++)
        add_responder(fx, i);
    fx->keep = true; /* freed by the teardown, after the report */
    run_probes(fx, probes, 2, 2000);
    assert_true(fx->passed);
    assert_string_equal(fx->why, "2 probes passed on 3 servers");
    for (size_t i = 0; i < SERVERS_MAX; i++)
        assert_string_equal(fx->responders[i].log, "/hold /ok");
}

static bool other_closed(const struct fixture *fx)
{
    return fx->responders[1].closed > 0;
}

static void test_first_failure_stops_the_others(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/hold", 200, NULL)};

    add_responder(fx, 0);
    add_responder(fx, 1);
    fx->responders[0].status = 500;
    run_probes(fx, probes, 1, 2000);
    expect_failure(fx, 0, "status 500, expected 200");
    run_until(fx, other_closed); /* green-2's held probe is dropped */
    assert_int_equal(fx->responders[1].closed, 1);
    assert_true(fx->responders[1].requests <= 1);
}

static bool both_holding(const struct fixture *fx)
{
    return fx->responders[0].requests > 0 && fx->responders[1].requests > 0;
}

static bool both_closed(const struct fixture *fx)
{
    return fx->responders[0].closed > 0 && fx->responders[1].closed > 0;
}

static void test_cancel_midway(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/hold", 200, NULL)};

    add_responder(fx, 0);
    add_responder(fx, 1);
    add_silent(fx, 2);
    fx->pool.nservers = 3; /* green-3 never answers: /hold never gets its quorum */
    start(fx, probes, 1, 2000);
    run_until(fx, both_holding);
    assert_true(both_holding(fx));
    preflight_free(fx->pf);
    fx->pf = NULL;
    run_until(fx, both_closed);
    assert_true(both_closed(fx));
    assert_int_equal(fx->calls, 0);
}

static void test_nothing_to_probe(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, NULL)};

    add_responder(fx, 0);
    run_probes(fx, probes, 0, 2000);
    assert_true(fx->passed);
    assert_string_equal(fx->why, "no probes to run");

    fx->calls = 0;
    fx->pool.nservers = 0;
    run_probes(fx, probes, 1, 2000);
    assert_true(fx->passed);
    assert_string_equal(fx->why, "no candidate servers to probe");
    assert_int_equal(fx->responders[0].requests, 0);
}

static void test_tls_probes_a_plain_server(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, NULL)};

    fx->pool.tls = (struct conf_upstream_tls){.enabled = true, .verify = true};
    add_responder(fx, 0);
    run_probes(fx, probes, 1, 200);
    /* The responder waits for a request head that never comes. */
    expect_failure(fx, 0, "timeout after 200 ms in the TLS handshake");
    assert_int_equal(fx->responders[0].requests, 0);
}

static void test_tls_settings_unusable(void **state)
{
    struct fixture *fx = *state;
    struct conf_probe probes[] = {PROBE("GET", "/ok", 200, NULL)};

    fx->pool.tls =
        (struct conf_upstream_tls){.enabled = true, .verify = true, .ca = "/nonexistent/ca.pem"};
    add_responder(fx, 0);
    run_probes(fx, probes, 1, 2000);
    assert_false(fx->passed);
    assert_non_null(strstr(fx->why, "cannot set up TLS to the candidate servers: cannot read "
                                    "the CA bundle /nonexistent/ca.pem: No such file"));
    assert_int_equal(fx->responders[0].requests, 0);
}

static void test_free_null(void **state)
{
    (void)state;
    preflight_free(NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_all_pass),
        T(test_status_mismatch_stops_that_server),
        T(test_later_probe_named),
        T(test_body_mismatch),
        T(test_connect_refused),
        T(test_timeout),
        T(test_headers_sent),
        T(test_servers_in_parallel),
        T(test_first_failure_stops_the_others),
        T(test_cancel_midway),
        T(test_nothing_to_probe),
        T(test_tls_probes_a_plain_server),
        T(test_tls_settings_unusable),
        T(test_free_null),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
