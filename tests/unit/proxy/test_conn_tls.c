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
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy/conn.h"

#define SAN_NAMES 600 /* makes the certificate about 14 KB: more than the socket takes */

/* A self-signed P-256 certificate whose subjectAltName lists SAN_NAMES
 * names, and its key, in ctx. */
static void use_big_certificate(SSL_CTX *ctx)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    char *san = malloc(SAN_NAMES * 32);
    size_t used = 0;

    assert_non_null(key);
    assert_non_null(x);
    assert_non_null(san);
    for (int i = 0; i < SAN_NAMES; i++)
        used += (size_t)sprintf(san + used, "%sDNS:host%d.example.test", i ? "," : "", i);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
    free(san);
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
