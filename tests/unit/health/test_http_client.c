/* test_http_client.c - the health checks' and preflight probes' HTTP client
 * over TLS, against in-process loopback servers.
 *
 * The certificates are made in memory once per run: a CA, a server
 * certificate it signed for 127.0.0.1 and api.internal, another CA that
 * signed nothing here, and a self-signed server certificate. The client
 * trusts a CA through a PEM file, as a pool's "tls.ca" does.
 *
 * Each test gets a fresh event_base, running both the client and the
 * server: a TLS server (bufferevent_openssl) that answers every request
 * head with 200 "all ok" and closes, a plain HTTP server that answers whatever comes
 * with a 400, or a socket that listens and never accepts. Callbacks only
 * record; assertions run after the loop. Every loop is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf/addr.h"
#include "conf/config.h"
#include "health/http_client.h"
#include "proxy/tls_client.h"

#define WAIT_MS 5000 /* the most any wait in a test may take */
#define STEP_MS 10
#define TIMEOUT_MS 2000 /* the client's timeout, unless a test needs a short one */
#define CONNS_MAX 8
#define HEAD_MAX 4096

/* ------------------------------------------------------------------------ */
/* Certificates, made once */

struct pki {
    EVP_PKEY *ca_key, *other_ca_key, *server_key, *self_key;
    X509 *ca, *other_ca, *server, *self_signed;
    char ca_file[64];       /* PEM of ca */
    char other_ca_file[64]; /* PEM of other_ca */
};

static struct pki pki;

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A new certificate of key named cn, signed by issuer (NULL: by itself). With
 * san it is a server's, else a CA's. */
static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                      const char *san)
{
    static long serial = 1;
    X509 *cert = X509_new();
    X509_NAME *name = X509_get_subject_name(cert);

    assert_non_null(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name);
    add_ext(cert, issuer != NULL ? issuer : cert, NID_basic_constraints,
            san != NULL ? "critical,CA:FALSE" : "critical,CA:TRUE");
    if (san != NULL)
        add_ext(cert, issuer != NULL ? issuer : cert, NID_subject_alt_name, san);
    else
        add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    assert_true(X509_sign(cert, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return cert;
}

static void write_pem(X509 *cert, char *path, size_t len)
{
    int fd;
    FILE *f;

    snprintf(path, len, "/tmp/sy-test-ca-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, cert), 1);
    assert_int_equal(fclose(f), 0);
}

static int pki_setup(void **state)
{
    static const char *san = "IP:127.0.0.1,DNS:api.internal";

    /* A write to a peer that went away must fail, not kill the test: as in
     * switchyard itself. */
    signal(SIGPIPE, SIG_IGN);

    pki.ca_key = EVP_EC_gen("P-256");
    pki.other_ca_key = EVP_EC_gen("P-256");
    pki.server_key = EVP_EC_gen("P-256");
    pki.self_key = EVP_EC_gen("P-256");
    if (pki.ca_key == NULL || pki.other_ca_key == NULL || pki.server_key == NULL ||
        pki.self_key == NULL)
        return -1;
    pki.ca = cert_new(pki.ca_key, "test CA", NULL, NULL, NULL);
    pki.other_ca = cert_new(pki.other_ca_key, "other CA", NULL, NULL, NULL);
    pki.server = cert_new(pki.server_key, "api.internal", pki.ca, pki.ca_key, san);
    pki.self_signed = cert_new(pki.self_key, "api.internal", NULL, NULL, san);
    write_pem(pki.ca, pki.ca_file, sizeof(pki.ca_file));
    write_pem(pki.other_ca, pki.other_ca_file, sizeof(pki.other_ca_file));
    return 0;
}

static int pki_teardown(void **state)
{
    unlink(pki.ca_file);
    unlink(pki.other_ca_file);
    X509_free(pki.ca);
    X509_free(pki.other_ca);
    X509_free(pki.server);
    X509_free(pki.self_signed);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.other_ca_key);
    EVP_PKEY_free(pki.server_key);
    EVP_PKEY_free(pki.self_key);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The servers */

enum server_kind {
    SERVER_TLS,   /* TLS, answers 200 "all ok" */
    SERVER_PLAIN, /* plain HTTP, answers anything with a 400 */
};

struct fixture;

struct server_conn {
    struct fixture *fx;
    struct bufferevent *bev;
    bool answered; /* closes its side once the answer is out */
};

struct fixture {
    struct event_base *base;
    enum server_kind kind;
    SSL_CTX *server_ctx;
    struct evconnlistener *listener;
    int silent_fd; /* listens, never accepts */
    struct conf_addr addr;
    struct server_conn conns[CONNS_MAX];
    size_t nconns;
    char head[HEAD_MAX]; /* the last request head the server got */
    char sni[64];        /* the server name the last TLS client sent */
    struct conf_upstream_tls tls;
    SSL_CTX *client_ctx;
    struct http_client *client;
    unsigned calls;
    bool passed;
    char result[HTTP_CLIENT_TEXT_MAX];
};

static void server_read_cb(struct bufferevent *bev, void *arg)
{
    struct server_conn *sc = arg;
    struct fixture *fx = sc->fx;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    struct evbuffer_ptr end;

    if (fx->kind == SERVER_PLAIN) {
        evbuffer_drain(in, evbuffer_get_length(in));
        evbuffer_add_printf(out, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0 || (size_t)end.pos + 4 >= HEAD_MAX)
        return;
    evbuffer_remove(in, fx->head, (size_t)end.pos + 4);
    fx->head[end.pos + 4] = '\0';
    /* Two records, then close_notify and FIN (server_write_cb), as a
     * backend that closes after its answer sends them: the client may read
     * them all at once, and must still judge the answer. */
    evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n");
    evbuffer_add_printf(out, "Content-Length: 6\r\nConnection: close\r\n\r\nall ok");
    sc->answered = true;
}

static void server_write_cb(struct bufferevent *bev, void *arg)
{
    struct server_conn *sc = arg;

    if (!sc->answered || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
    SSL_shutdown(bufferevent_openssl_get_ssl(bev)); /* close_notify, straight out */
    shutdown(bufferevent_getfd(bev), SHUT_WR);
    sc->answered = false;
}

static void server_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct server_conn *sc = arg;
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    const char *sni = ssl != NULL ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;

    if (what & BEV_EVENT_CONNECTED)
        snprintf(sc->fx->sni, sizeof(sc->fx->sni), "%s", sni != NULL ? sni : "");
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_disable(bev, EV_READ | EV_WRITE);
}

static struct bufferevent *server_bev(struct fixture *fx, evutil_socket_t fd)
{
    SSL *ssl;

    if (fx->kind == SERVER_PLAIN)
        return bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
    ssl = SSL_new(fx->server_ctx);
    assert_non_null(ssl);
    return bufferevent_openssl_socket_new(fx->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct fixture *fx = arg;
    struct server_conn *sc;

    assert_true(fx->nconns < CONNS_MAX);
    sc = &fx->conns[fx->nconns++];
    sc->fx = fx;
    sc->bev = server_bev(fx, fd);
    assert_non_null(sc->bev);
    bufferevent_setcb(sc->bev, server_read_cb, server_write_cb, server_event_cb, sc);
    bufferevent_enable(sc->bev, EV_READ | EV_WRITE);
}

/* A socket bound to a free loopback port, listening; its address in addr. */
static int listening_socket(struct conf_addr *addr)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const char *why = NULL;
    char text[32];

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sin.sin_port));
    assert_int_equal(conf_addr_parse(text, addr, &why), 0);
    return fd;
}

/* Starts a server of kind; a TLS one presents cert. */
static void serve(struct fixture *fx, enum server_kind kind, X509 *cert, EVP_PKEY *key)
{
    int fd = listening_socket(&fx->addr);

    fx->kind = kind;
    if (kind == SERVER_TLS) {
        fx->server_ctx = SSL_CTX_new(TLS_server_method());
        assert_non_null(fx->server_ctx);
        assert_int_equal(SSL_CTX_use_certificate(fx->server_ctx, cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(fx->server_ctx, key), 1);
    }
    evutil_make_socket_nonblocking(fd);
    fx->listener = evconnlistener_new(fx->base, accept_cb, fx,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    assert_non_null(fx->listener);
}

/* A port that takes connections into its backlog and never answers. */
static void serve_silence(struct fixture *fx)
{
    fx->silent_fd = listening_socket(&fx->addr);
}

/* A port that refuses: bound, then closed. */
static void serve_refusal(struct fixture *fx)
{
    close(listening_socket(&fx->addr));
}

/* ------------------------------------------------------------------------ */
/* The fixture */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    fx->base = event_base_new();
    fx->silent_fd = -1;
    fx->tls = (struct conf_upstream_tls){.enabled = true, .verify = true, .ca = pki.ca_file};
    *state = fx;
    return fx->base != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    http_client_free(fx->client);
    SSL_CTX_free(fx->client_ctx);
    for (size_t i = 0; i < fx->nconns; i++)
        bufferevent_free(fx->conns[i].bev);
    if (fx->listener != NULL)
        evconnlistener_free(fx->listener);
    SSL_CTX_free(fx->server_ctx);
    if (fx->silent_fd >= 0)
        close(fx->silent_fd);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* Frees the client from inside, as the health checks do. */
static void done_cb(bool passed, const char *result, void *arg)
{
    struct fixture *fx = arg;

    fx->calls++;
    fx->passed = passed;
    snprintf(fx->result, sizeof(fx->result), "%s", result);
    http_client_free(fx->client);
    fx->client = NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop in short slices until the client reported or WAIT_MS. */
static void run_until_reported(struct fixture *fx)
{
    struct timeval slice = {0, STEP_MS * 1000};

    for (int i = 0; i < WAIT_MS / STEP_MS && fx->calls == 0; i++) {
        event_base_loopexit(fx->base, &slice);
        event_base_dispatch(fx->base);
    }
}

/* Sends GET /healthz over TLS with fx->tls and waits for the report.
 * Returns how long the exchange took, in ms. */
static int64_t exchange(struct fixture *fx, const char *expect_body, uint32_t timeout_ms)
{
    char err[256];
    struct http_client_request req = {
        .addr = &fx->addr,
        .method = "GET",
        .path = "/healthz",
        .user_agent = "switchyard-health",
        .expect_status = 200,
        .expect_body = expect_body,
        .timeout_ms = timeout_ms,
        .tls = &fx->tls,
    };
    int64_t start = now_ms();

    fx->client_ctx = tls_client_ctx_new(&fx->tls, NULL, err, sizeof(err));
    assert_non_null(fx->client_ctx);
    req.tls_ctx = fx->client_ctx;
    fx->client = http_client_start(fx->base, &req, done_cb, fx);
    assert_non_null(fx->client);
    assert_int_equal(fx->calls, 0); /* never from inside the start */
    run_until_reported(fx);
    assert_int_equal(fx->calls, 1);
    return now_ms() - start;
}

static void expect_failure(const struct fixture *fx, const char *result)
{
    assert_false(fx->passed);
    assert_string_equal(fx->result, result);
}

/* ------------------------------------------------------------------------ */
/* Tests */

static void test_verified_by_ip(void **state)
{
    struct fixture *fx = *state;

    serve(fx, SERVER_TLS, pki.server, pki.server_key);
    exchange(fx, "all ok", TIMEOUT_MS);
    assert_true(fx->passed);
    assert_string_equal(fx->result, "ok: status 200, body matches");
    assert_non_null(strstr(fx->head, "GET /healthz HTTP/1.1\r\n"));
    assert_string_equal(fx->sni, ""); /* no SNI without tls.sni: an IP is no server name */
}

static void test_verified_by_sni(void **state)
{
    struct fixture *fx = *state;

    fx->tls.sni = "api.internal";
    serve(fx, SERVER_TLS, pki.server, pki.server_key);
    exchange(fx, NULL, TIMEOUT_MS);
    assert_true(fx->passed);
    assert_string_equal(fx->result, "ok: status 200");
    assert_string_equal(fx->sni, "api.internal");
}

static void test_wrong_ca(void **state)
{
    struct fixture *fx = *state;

    fx->tls.ca = pki.other_ca_file;
    serve(fx, SERVER_TLS, pki.server, pki.server_key);
    exchange(fx, NULL, TIMEOUT_MS);
    expect_failure(fx, "certificate verify failed: unable to get local issuer certificate");
    assert_string_equal(fx->head, ""); /* the request never left */
}

static void test_self_signed(void **state)
{
    struct fixture *fx = *state;

    serve(fx, SERVER_TLS, pki.self_signed, pki.self_key);
    exchange(fx, NULL, TIMEOUT_MS);
    expect_failure(fx, "certificate verify failed: self-signed certificate");
}

static void test_sni_mismatch(void **state)
{
    struct fixture *fx = *state;

    fx->tls.sni = "other.internal";
    serve(fx, SERVER_TLS, pki.server, pki.server_key);
    exchange(fx, NULL, TIMEOUT_MS);
    expect_failure(fx, "certificate verify failed: hostname mismatch");
    assert_string_equal(fx->sni, "");
}

static void test_unverified(void **state)
{
    struct fixture *fx = *state;

    fx->tls.verify = false;
    fx->tls.ca = pki.other_ca_file;
    serve(fx, SERVER_TLS, pki.self_signed, pki.self_key);
    exchange(fx, NULL, TIMEOUT_MS);
    assert_true(fx->passed);
}

static void test_plain_server(void **state)
{
    struct fixture *fx = *state;
    int64_t took;

    serve(fx, SERVER_PLAIN, NULL, NULL);
    took = exchange(fx, NULL, TIMEOUT_MS);
    assert_false(fx->passed);
    assert_non_null(strstr(fx->result, "TLS handshake failed: "));
    assert_true(took < TIMEOUT_MS);
}

static void test_silent_server(void **state)
{
    struct fixture *fx = *state;

    serve_silence(fx);
    exchange(fx, NULL, 200);
    expect_failure(fx, "timeout after 200 ms in the TLS handshake");
}

static void test_connect_refused(void **state)
{
    struct fixture *fx = *state;

    serve_refusal(fx);
    exchange(fx, NULL, TIMEOUT_MS);
    expect_failure(fx, "connect refused");
}

/* Freed while the handshake is under way: nothing leaks, nothing is told. */
static void test_free_midway(void **state)
{
    struct fixture *fx = *state;
    struct timeval midway = {0, 50 * 1000};
    char err[256];
    struct http_client_request req = {
        .addr = &fx->addr,
        .method = "GET",
        .path = "/",
        .expect_status = 200,
        .timeout_ms = TIMEOUT_MS,
        .tls = &fx->tls,
    };

    serve_silence(fx); /* connects at once, then the ClientHello waits */
    fx->client_ctx = tls_client_ctx_new(&fx->tls, NULL, err, sizeof(err));
    req.tls_ctx = fx->client_ctx;
    fx->client = http_client_start(fx->base, &req, done_cb, fx);
    assert_non_null(fx->client);
    event_base_loopexit(fx->base, &midway);
    event_base_dispatch(fx->base);
    http_client_free(fx->client);
    fx->client = NULL;
    event_base_loopexit(fx->base, &midway);
    event_base_dispatch(fx->base);
    assert_int_equal(fx->calls, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_verified_by_ip), T(test_verified_by_sni), T(test_wrong_ca),
        T(test_self_signed),    T(test_sni_mismatch),    T(test_unverified),
        T(test_plain_server),   T(test_silent_server),   T(test_connect_refused),
        T(test_free_midway),
    };
#undef T
    return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
