/* test_conn_tls.c - conn.c's TLS server side, over a socketpair, against an
 * OpenSSL client driven by hand. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "proxy/conn.h"
#include "tests/unit/support/test_cert.h"

#define SAN_NAMES 600 /* makes the certificate about 14 KB: more than the socket takes */

/* A self-signed certificate of SAN_NAMES names, and its key, in ctx. */
static void use_big_certificate(SSL_CTX *ctx)
{
    X509 *x;
    EVP_PKEY *key;

    assert_int_equal(test_cert_make("localhost", SAN_NAMES, &x, &key), 0);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int events_seen;

static void count_events(struct conn *c, short what, void *arg)
{
    (void)c, (void)what, (void)arg;
    events_seen++;
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The server's first flight does not fit in the socket: its handshake waits
 * for the socket to be writable. A client that then sends bytes and reads
 * nothing makes the socket readable too; the loop must sleep all the same
 * (level-triggered read event off while OpenSSL waits to write), not spin
 * through SSL_do_handshake until a timeout. */
static void test_handshake_waiting_to_write_does_not_spin(void **state)
{
    static const struct timeval idle = {5, 0};
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    struct event_base *base = event_base_new();
    int sv[2], small = 1;
    struct conn *c;
    SSL *client;
    long turns = 0;

    (void)state;
    assert_non_null(sctx);
    assert_non_null(cctx);
    assert_non_null(base);
    use_big_certificate(sctx);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));

    c = conn_new(base, sv[0]);
    assert_non_null(c);
    assert_int_equal(conn_accept_tls(c, sctx), 0);
    conn_set_timeouts(c, &idle, &idle);
    conn_set_callbacks(c, NULL, NULL, count_events, NULL);

    client = SSL_new(cctx);
    assert_non_null(client);
    SSL_set_fd(client, sv[1]);
    SSL_set_connect_state(client);
    assert_int_equal(SSL_do_handshake(client), -1); /* the ClientHello went; it waits */
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK); /* the server answers until blocked */
    assert_int_equal(write(sv[1], "\x16\x03\x03", 3), 3);

    double t0 = now_s();
    while (now_s() - t0 < 0.3) {
        struct timeval tick = {0, 50000};
        event_base_loopexit(base, &tick);
        event_base_loop(base, EVLOOP_ONCE);
        turns++;
    }
    /* Asleep: one turn per 50 ms tick. Spinning: tens of thousands. */
    assert_in_range(turns, 1, 100);
    assert_int_equal(events_seen, 0);

    SSL_free(client);
    close(sv[1]);
    conn_free(c);
    event_base_free(base);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_waiting_to_write_does_not_spin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
