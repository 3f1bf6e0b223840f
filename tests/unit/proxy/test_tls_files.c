/* test_tls_files.c - what a reload compares to keep a TLS context:
 * tls_files_digest() over a listener's files, and the CA bundle of a pool
 * as tls_client_ctx_new() reads and digests it. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "proxy/tls.h"
#include "proxy/tls_client.h"
#include "tests/unit/support/test_cert.h"

struct fx {
    char dir[64];
    char path[6][PATH_MAX]; /* cert, key, a.pem, a.key, ca.pem, spare */
};

enum { CERT, KEY, A_CERT, A_KEY, CA, SPARE };

/* Writes a new certificate (and its key, to key_path when not NULL). */
static void write_new_cert(const char *cert_path, const char *key_path, const char *cn)
{
    X509 *x;
    EVP_PKEY *key;

    assert_int_equal(test_cert_make(cn, 1, &x, &key), 0);
    assert_int_equal(test_cert_write(cert_path, x, NULL), 0);
    if (key_path != NULL)
        assert_int_equal(test_cert_write(key_path, NULL, key), 0);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int setup(void **state)
{
    static const char *const names[] = {"cert.pem", "key.pem", "a.pem", "a.key", "ca.pem", "x"};
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/sy-tls-files.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    for (int i = 0; i < 6; i++)
        snprintf(fx->path[i], sizeof(fx->path[i]), "%s/%s", fx->dir, names[i]);
    write_new_cert(fx->path[CERT], fx->path[KEY], "localhost");
    write_new_cert(fx->path[A_CERT], fx->path[A_KEY], "a.test");
    write_new_cert(fx->path[CA], NULL, "test CA");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    for (int i = 0; i < 6; i++)
        unlink(fx->path[i]);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    size_t n;

    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void digest_of(struct fx *fx, unsigned char out[32])
{
    struct conf_tls_cert certs[] = {{fx->path[A_CERT], fx->path[A_KEY]}};
    struct conf_tls conf = {
        .cert = fx->path[CERT], .key = fx->path[KEY], .certs = certs, .ncerts = 1};

    assert_int_equal(tls_files_digest(&conf, out), 0);
}

/* Every file counts, by its bytes: the same bytes written again change
 * nothing, a new key or a renewed SNI certificate changes the digest. */
static void test_files_digest(void **state)
{
    struct fx *fx = *state;
    unsigned char first[32], again[32], changed[32];

    digest_of(fx, first);
    copy_file(fx->path[KEY], fx->path[SPARE]);
    copy_file(fx->path[SPARE], fx->path[KEY]);
    digest_of(fx, again);
    assert_memory_equal(first, again, 32);

    write_new_cert(fx->path[SPARE], fx->path[KEY], "localhost"); /* a new key only */
    digest_of(fx, changed);
    assert_memory_not_equal(first, changed, 32);

    memcpy(first, changed, 32);
    write_new_cert(fx->path[A_CERT], NULL, "a.test"); /* the SNI entry's certificate */
    digest_of(fx, changed);
    assert_memory_not_equal(first, changed, 32);

    memcpy(first, changed, 32);
    write_new_cert(fx->path[SPARE], fx->path[A_KEY], "a.test"); /* the SNI entry's key */
    digest_of(fx, changed);
    assert_memory_not_equal(first, changed, 32);
}

static void test_files_digest_unreadable(void **state)
{
    struct fx *fx = *state;
    struct conf_tls conf = {.cert = fx->path[CERT], .key = "/nonexistent/key.pem"};
    unsigned char d[32];

    assert_int_equal(tls_files_digest(&conf, d), -1);
}

/* tls_client_ctx_new() on ca: 0 or the context, with why on failure. */
static SSL_CTX *client_ctx(const char *ca, unsigned char digest[32], char *why, size_t len)
{
    struct conf_upstream_tls conf = {.enabled = true, .verify = true, .ca = (char *)ca};

    return tls_client_ctx_new(&conf, digest, why, len);
}

/* The CA bundle's digest follows its bytes, and a bundle that trusts
 * nothing is refused with a reason a person can act on. */
static void test_ca_bundle(void **state)
{
    struct fx *fx = *state;
    unsigned char d1[32], d2[32];
    char why[512];
    SSL_CTX *ctx;
    FILE *f;

    assert_non_null(ctx = client_ctx(fx->path[CA], d1, why, sizeof(why)));
    SSL_CTX_free(ctx);
    copy_file(fx->path[CA], fx->path[SPARE]);
    assert_non_null(ctx = client_ctx(fx->path[SPARE], d2, why, sizeof(why)));
    SSL_CTX_free(ctx);
    assert_memory_equal(d1, d2, 32);

    write_new_cert(fx->path[SPARE], NULL, "another CA");
    assert_non_null(ctx = client_ctx(fx->path[SPARE], d2, why, sizeof(why)));
    SSL_CTX_free(ctx);
    assert_memory_not_equal(d1, d2, 32);

    assert_non_null(f = fopen(fx->path[SPARE], "w"));
    fclose(f);
    assert_null(client_ctx(fx->path[SPARE], d2, why, sizeof(why)));
    assert_non_null(strstr(why, "holds no certificate"));

    copy_file(fx->path[KEY], fx->path[SPARE]);
    assert_null(client_ctx(fx->path[SPARE], d2, why, sizeof(why)));
    assert_non_null(strstr(why, "holds no certificate"));

    assert_null(client_ctx(fx->dir, d2, why, sizeof(why)));
    assert_non_null(strstr(why, "is not a regular file"));

    assert_null(client_ctx("/nonexistent/ca.pem", d2, why, sizeof(why)));
    assert_non_null(strstr(why, "cannot read the CA bundle /nonexistent/ca.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_files_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_digest_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_bundle, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
