/* tls_client.c - client contexts for the pools whose servers speak TLS. */
#include "proxy/tls_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* OpenSSL's reason for the last failure, then an empty error queue. */
static void openssl_reason(char *err, size_t len, const char *what, const char *detail)
{
    char reason[200];

    ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
    snprintf(err, len, "%s %s: %s", what, detail, reason);
    ERR_clear_error();
}

/* The whole of path, a regular file of at most CONF_TLS_CA_MAX bytes, in a
 * new buffer; NULL with why in err. */
static char *read_ca_file(const char *path, size_t *len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *buf = NULL;

    if (f == NULL || fstat(fileno(f), &st) < 0)
        snprintf(err, err_len, "cannot read the CA bundle %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(err, err_len, "the CA bundle %s is not a regular file", path);
    else if (st.st_size > CONF_TLS_CA_MAX)
        snprintf(err, err_len, "the CA bundle %s is over %d bytes", path, CONF_TLS_CA_MAX);
    else if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        snprintf(err, err_len, "out of memory for the CA bundle %s", path);
    else if ((*len = fread(buf, 1, (size_t)st.st_size + 1, f)) != (size_t)st.st_size) {
        snprintf(err, err_len, "cannot read the CA bundle %s: it changed while read", path);
        free(buf);
        buf = NULL;
    }
    if (f != NULL)
        fclose(f);
    return buf;
}

/* Trusts the certificates of the PEM bundle at path (its CRLs are loaded
 * too, though nothing turns CRL checks on), and leaves the SHA-256 of the
 * bytes it read in digest (may be NULL): one read, so that the digest
 * describes exactly what is trusted. Returns 0, or -1 with why in err. */
static int load_ca(SSL_CTX *ctx, const char *path, unsigned char *digest, char *err, size_t err_len)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_INFO) *infos = NULL;
    size_t len = 0;
    int ncerts = 0;
    bool failed = false;
    char *buf = read_ca_file(path, &len, err, err_len);
    BIO *mem = buf != NULL ? BIO_new_mem_buf(buf, (int)len) : NULL;

    if (buf == NULL)
        return -1;
    if (mem == NULL || (infos = PEM_X509_INFO_read_bio(mem, NULL, NULL, NULL)) == NULL) {
        openssl_reason(err, err_len, "cannot parse the CA bundle", path);
        failed = true;
    }
    for (int i = 0; !failed && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if ((info->x509 != NULL && X509_STORE_add_cert(store, info->x509) != 1) ||
            (info->crl != NULL && X509_STORE_add_crl(store, info->crl) != 1)) {
            openssl_reason(err, err_len, "cannot trust the CA bundle", path);
            failed = true;
        }
        ncerts += info->x509 != NULL;
    }
    if (!failed && ncerts == 0) {
        snprintf(err, err_len, "the CA bundle %s holds no certificate", path);
        failed = true;
    }
    if (!failed && digest != NULL && EVP_Digest(buf, len, digest, NULL, EVP_sha256(), NULL) != 1) {
        openssl_reason(err, err_len, "cannot digest the CA bundle", path);
        failed = true;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(mem);
    free(buf);
    ERR_clear_error();
    return failed ? -1 : 0;
}

struct ssl_ctx_st *tls_client_ctx_new(const struct conf_upstream_tls *conf,
                                      unsigned char *ca_digest, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    err[0] = '\0';
    if (ctx == NULL) {
        openssl_reason(err, err_len, "cannot create", "a client context");
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof(alpn_http11) - 1) != 0) {
        openssl_reason(err, err_len, "cannot set", "the protocol versions or ALPN");
        goto fail;
    }
    /* Same reasons as the server side (tls.c): no renegotiation, no
     * compression; an EOF without close_notify is HTTP's to judge. conn.c's
     * output may move between a blocked write and its retry. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (!conf->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (conf->ca != NULL) {
        if (load_ca(ctx, conf->ca, ca_digest, err, err_len) < 0)
            goto fail;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        openssl_reason(err, err_len, "cannot load the CA bundle", "(the system's)");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* server's IP address, in network byte order, into ip[16]; returns its
 * length (4 or 16), 0 for another family. */
static size_t addr_ip(const struct conf_addr *server, unsigned char ip[16])
{
    if (server->ss.ss_family == AF_INET) {
        memcpy(ip, &((const struct sockaddr_in *)&server->ss)->sin_addr, 4);
        return 4;
    }
    if (server->ss.ss_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)&server->ss)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

int tls_client_prepare(struct ssl_st *ssl, const struct conf_upstream_tls *conf,
                       const struct conf_addr *server)
{
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    unsigned char ip[16];
    size_t iplen;

    if (conf->sni != NULL && SSL_set_tlsext_host_name(ssl, conf->sni) != 1)
        goto fail;
    if (!conf->verify)
        return 0;
    /* The name must match exactly or by a wildcard for one whole label. */
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (conf->sni != NULL ? X509_VERIFY_PARAM_set1_host(param, conf->sni, 0) != 1
                          : (iplen = addr_ip(server, ip)) == 0 ||
                                X509_VERIFY_PARAM_set1_ip(param, ip, iplen) != 1)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    return -1;
}

const char *tls_client_failure(const struct ssl_st *ssl, char *buf, size_t len)
{
    /* OpenSSL records a verification result with SSL_VERIFY_NONE too: it
     * explains a failure only when verification was asked for. */
    long verify =
        (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) ? SSL_get_verify_result(ssl) : X509_V_OK;
    const char *reason = ERR_reason_error_string(ERR_peek_last_error());

    if (verify != X509_V_OK)
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
    else if (reason != NULL)
        snprintf(buf, len, "TLS handshake failed: %s", reason);
    else
        snprintf(buf, len, "TLS handshake failed");
    ERR_clear_error();
    return buf;
}
