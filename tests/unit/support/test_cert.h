/* test_cert.h - self-signed certificates made in memory, for TLS tests. */
#ifndef SY_TEST_CERT_H
#define SY_TEST_CERT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

/* A new P-256 key and a certificate for it, self-signed, valid for an
 * hour, CN cn, with a subjectAltName of san_names DNS names (0: none; many
 * make a large certificate). Returns 0, or -1 when OpenSSL failed. */
int test_cert_make(const char *cn, int san_names, X509 **cert, EVP_PKEY **key);

/* Writes cert and key, each when not NULL, as PEM to path. Returns 0 or
 * -1. */
int test_cert_write(const char *path, X509 *cert, EVP_PKEY *key);

#endif
