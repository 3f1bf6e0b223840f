/* tls_client.c - client contexts for the pools whose servers speak TLS. */
#include "proxy/tls_client.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
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

struct ssl_ctx_st *tls_client_ctx_new(const struct conf_upstream_tls *conf, char *err,
                                      size_t err_len)
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
    if (conf->ca != NULL ? SSL_CTX_load_verify_locations(ctx, conf->ca, NULL) != 1
                         : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        openssl_reason(err, err_len, "cannot load the CA bundle",
                       conf->ca ? conf->ca : "(the system's)");
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
