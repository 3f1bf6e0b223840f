/* tls.h - the OpenSSL server contexts of the TLS listeners.
 *
 * One SSL_CTX per TLS listener, built once when the proxy starts and shared
 * by every worker: OpenSSL lets several threads create SSL objects from one
 * context, and sharing it is what makes resumption work whichever worker's
 * SO_REUSEPORT socket the kernel hands the next connection to (the session
 * cache and the ticket keys live in the context).
 */
#ifndef SY_PROXY_TLS_H
#define SY_PROXY_TLS_H

#include "conf/config.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* Builds the server context of conf: certificate chain and key, minimum
 * version, cipher lists, ALPN http/1.1, session cache and tickets, no
 * renegotiation. Each conf->certs entry gets a context of its own with the
 * same settings, owned by the returned one, which switches a connection to
 * it when the SNI matches the entry's certificate. Returns a new context,
 * or NULL after logging why (the config check loaded the same files, so
 * only a file changed since or no memory gets here). */
struct ssl_ctx_st *tls_ctx_new(const struct conf_tls *conf);

/* NULL is fine. */
void tls_ctx_free(struct ssl_ctx_st *ctx);

#endif
