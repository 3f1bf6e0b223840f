/* tls.h - the OpenSSL server contexts of the TLS listeners.
 *
 * One SSL_CTX per TLS listener and snapshot (snapshot.h), shared by every
 * worker: OpenSSL lets several threads create SSL objects from one context,
 * and sharing it is what makes resumption work whichever worker's
 * SO_REUSEPORT socket the kernel hands the next connection to (the session
 * cache lives in the context). A reload builds new contexts from the
 * files as they are then, unless a listener's settings and file contents
 * did not change: it then keeps its context, session cache included. Each
 * connection holds a reference to the context it was accepted with, so
 * connections already open go on with the old certificate.
 */
#ifndef SY_PROXY_TLS_H
#define SY_PROXY_TLS_H

#include <stdbool.h>

#include "conf/config.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* Builds the server context of conf: certificate chain and key, minimum
 * version, cipher lists, ALPN http/1.1, session cache, no tickets, no
 * renegotiation. Each conf->certs entry gets a context of its own with the
 * same settings, owned by the returned one, which switches a connection to
 * it when the SNI matches the entry's certificate. Returns a new context,
 * or NULL with why in err (err_len bytes, always terminated). */
struct ssl_ctx_st *tls_ctx_new(const struct conf_tls *conf, char *err, size_t err_len);

/* NULL is fine. */
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* SHA-256 over the contents of the files conf names (cert and key, then
 * each certificates[] pair), each after its length. Returns 0, or -1 when
 * one cannot be read. */
int tls_files_digest(const struct conf_tls *conf, unsigned char digest[32]);

/* True when a and b name the same files with the same settings. */
bool tls_conf_same(const struct conf_tls *a, const struct conf_tls *b);

#endif
