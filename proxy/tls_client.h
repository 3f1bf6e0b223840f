/* tls_client.h - the OpenSSL client contexts for pools whose servers speak
 * TLS (pools.<colour>.tls).
 *
 * One SSL_CTX per pool and snapshot, shared by every worker and by the
 * health checks: it holds the trust store, which is costly to load, and the
 * settings. What differs per connection (the SNI, the name or address to
 * verify) is set on each SSL by tls_client_prepare().
 */
#ifndef SY_PROXY_TLS_CLIENT_H
#define SY_PROXY_TLS_CLIENT_H

#include <stddef.h>

#include "conf/config.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct ssl_st;     /* OpenSSL's SSL */

/* Builds the client context of conf: TLS 1.2 at least, the verification
 * conf asks for against conf->ca (else the system's trust store), ALPN
 * http/1.1. With verification and a ca file, the SHA-256 of the bytes read
 * goes to ca_digest[32] when it is not NULL (left alone otherwise). Returns
 * a new context, or NULL with why in err (err_len bytes, always
 * terminated). */
struct ssl_ctx_st *tls_client_ctx_new(const struct conf_upstream_tls *conf,
                                      unsigned char *ca_digest, char *err, size_t err_len);

/* Readies ssl, made from a tls_client_ctx_new() context, for one connection
 * to server: SNI conf->sni when set, and the identity to verify, conf->sni
 * or else server's IP address. Returns 0, or -1 (no memory). */
int tls_client_prepare(struct ssl_st *ssl, const struct conf_upstream_tls *conf,
                       const struct conf_addr *server);

/* Why the handshake on ssl failed, for logs and the access log: the
 * verification error when there is one ("certificate verify failed:
 * self-signed certificate"), else OpenSSL's last reason. Empties the
 * thread's OpenSSL error queue. Returns buf. */
const char *tls_client_failure(const struct ssl_st *ssl, char *buf, size_t len);

#endif
