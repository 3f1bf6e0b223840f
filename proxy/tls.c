/* tls.c - server contexts for the TLS listeners. */
#include "proxy/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* Accepts http/1.1 when the client offers it. A client that offers only
 * other protocols (h2 alone) goes on without ALPN rather than failing: it
 * may still speak HTTP/1.1. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *chosen;

    if (SSL_select_next_proto(&chosen, outlen, alpn_http11, sizeof(alpn_http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* Why OpenSSL refused what, into err; empties the thread's error queue. */
static void openssl_reason(char *err, size_t len, const char *what, const char *detail)
{
    char reason[200];

    ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
    snprintf(err, len, "%s %s: %s", what, detail, reason);
    ERR_clear_error();
}

/* The error text of one context build. */
struct tls_err {
    char *buf;
    size_t len;
};

static int load_identity(SSL_CTX *ctx, const char *cert, const char *key, struct tls_err *e)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        openssl_reason(e->buf, e->len, "cannot load the certificate chain", cert);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(e->buf, e->len, "cannot use the private key", key);
        return -1;
    }
    return 0;
}

static int set_protocols(SSL_CTX *ctx, const struct conf_tls *conf, struct tls_err *e)
{
    int min = conf->min_version == CONF_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    const char *ciphers = conf->ciphers ? conf->ciphers : CONF_TLS_CIPHERS_DEFAULT;

    if (SSL_CTX_set_min_proto_version(ctx, min) != 1) {
        openssl_reason(e->buf, e->len, "cannot set the minimum version",
                       min == TLS1_3_VERSION ? "1.3" : "1.2");
        return -1;
    }
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        openssl_reason(e->buf, e->len, "cannot set the ciphers", ciphers);
        return -1;
    }
    if (conf->ciphersuites && SSL_CTX_set_ciphersuites(ctx, conf->ciphersuites) != 1) {
        openssl_reason(e->buf, e->len, "cannot set the cipher suites", conf->ciphersuites);
        return -1;
    }
    return 0;
}

/* The contexts of the certificates[] entries, hung on the default context,
 * which frees them with itself. */
struct sni_table {
    size_t n;
    SSL_CTX *ctx[];
};

static CRYPTO_ONCE sni_index_once = CRYPTO_ONCE_STATIC_INIT;
static int sni_index = -1;

static void sni_table_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    struct sni_table *table = ptr;

    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (table == NULL)
        return;
    for (size_t i = 0; i < table->n; i++)
        SSL_CTX_free(table->ctx[i]);
    free(table);
}

static void sni_index_init(void)
{
    sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_table_free);
}

/* Switches the connection to the first additional certificate whose names
 * (subjectAltName DNS entries, else the CN) match the SNI: exactly or by a
 * wildcard standing for one whole left-most label. No SNI or no match: the
 * default certificate stays. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct sni_table *table = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    (void)alert;
    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < table->n; i++) {
        X509 *leaf = SSL_CTX_get0_certificate(table->ctx[i]);
        if (X509_check_host(leaf, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1) {
            SSL_set_SSL_CTX(ssl, table->ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* One context with the listener's settings and the given identity. All share
 * one session id context, so a session resumes whichever certificate the SNI
 * picked. */
static SSL_CTX *ctx_new(const struct conf_tls *conf, const char *cert, const char *key,
                        struct tls_err *e)
{
    static const unsigned char sid_ctx[] = "switchyard";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        openssl_reason(e->buf, e->len, "cannot create a context for", cert);
        return NULL;
    }
    if (load_identity(ctx, cert, key, e) < 0 || set_protocols(ctx, conf, e) < 0)
        goto fail;
    /* No stateless tickets: their key would live as long as the process,
     * and whoever got it could read every TLS 1.2 session resumed with
     * one. Resumption goes through the server's session cache instead.
     * Renegotiation is a denial-of-service lever and HTTP/1.1 needs none.
     * The server's cipher order wins. A client that closes without
     * close_notify is an EOF: HTTP frames its own messages, so a truncated
     * request is caught there. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_TICKET);
    /* conn.c writes from its output evbuffer, whose first chunk may grow or
     * move between a write that would block and its retry. Idle keep-alive
     * connections give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read whole socket buffers, not one record header then its body. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
        openssl_reason(e->buf, e->len, "cannot set the session id context for", cert);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Builds one context per certificates[] entry, with the default's settings,
 * and has the default context pick among them by SNI. */
static int add_sni_certs(SSL_CTX *ctx, const struct conf_tls *conf, struct tls_err *e)
{
    struct sni_table *table;

    if (conf->ncerts == 0)
        return 0;
    if (!CRYPTO_THREAD_run_once(&sni_index_once, sni_index_init) || sni_index < 0) {
        openssl_reason(e->buf, e->len, "cannot register the SNI table for", conf->cert);
        return -1;
    }
    table = calloc(1, sizeof(*table) + conf->ncerts * sizeof(table->ctx[0]));
    if (table == NULL) {
        snprintf(e->buf, e->len, "out of memory for the certificates of %s", conf->cert);
        return -1;
    }
    if (SSL_CTX_set_ex_data(ctx, sni_index, table) != 1) {
        free(table);
        openssl_reason(e->buf, e->len, "cannot attach the SNI table to", conf->cert);
        return -1;
    }
    for (; table->n < conf->ncerts; table->n++) {
        const struct conf_tls_cert *c = &conf->certs[table->n];
        table->ctx[table->n] = ctx_new(conf, c->cert, c->key, e);
        if (table->ctx[table->n] == NULL)
            return -1;
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, table);
    return 0;
}

struct ssl_ctx_st *tls_ctx_new(const struct conf_tls *conf, char *err, size_t err_len)
{
    struct tls_err e = {err, err_len};
    SSL_CTX *ctx;

    err[0] = '\0';
    ctx = ctx_new(conf, conf->cert, conf->key, &e);
    if (ctx && add_sni_certs(ctx, conf, &e) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

/* Adds the bytes of path, then their count, to md. Returns 0, or -1 when
 * it cannot be read. */
static int digest_file(EVP_MD_CTX *md, const char *path)
{
    unsigned char buf[16384];
    uint64_t total = 0;
    size_t n;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return -1;
    int failed = 0;
    while (!failed && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        failed = EVP_DigestUpdate(md, buf, n) != 1;
        total += n;
    }
    failed |= ferror(f);
    fclose(f);
    /* The count keeps the files apart: "ab" + "c" is not "a" + "bc". */
    return failed || EVP_DigestUpdate(md, &total, sizeof(total)) != 1 ? -1 : 0;
}

int tls_files_digest(const struct conf_tls *conf, unsigned char digest[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
                     digest_file(md, conf->cert) == 0 && digest_file(md, conf->key) == 0
                 ? 0
                 : -1;

    for (size_t i = 0; rc == 0 && i < conf->ncerts; i++) {
        if (digest_file(md, conf->certs[i].cert) < 0 || digest_file(md, conf->certs[i].key) < 0)
            rc = -1;
    }
    if (rc == 0 && EVP_DigestFinal_ex(md, digest, NULL) != 1)
        rc = -1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return rc;
}

bool tls_conf_same(const struct conf_tls *a, const struct conf_tls *b)
{
    if (a->ncerts != b->ncerts)
        return false;
    for (size_t i = 0; i < a->ncerts; i++) {
        if (!conf_same_str(a->certs[i].cert, b->certs[i].cert) ||
            !conf_same_str(a->certs[i].key, b->certs[i].key))
            return false;
    }
    return conf_same_str(a->cert, b->cert) && conf_same_str(a->key, b->key) &&
           a->min_version == b->min_version && conf_same_str(a->ciphers, b->ciphers) &&
           conf_same_str(a->ciphersuites, b->ciphersuites);
}
