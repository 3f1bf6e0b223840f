/* test_cert.c - self-signed certificates made in memory, for TLS tests. */
#include "tests/unit/support/test_cert.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int add_san(X509 *x, int san_names)
{
    char *san = malloc((size_t)san_names * 32 + 1);
    size_t used = 0;
    X509_EXTENSION *ext;

    if (san == NULL)
        return -1;
    for (int i = 0; i < san_names; i++)
        used += (size_t)sprintf(san + used, "%sDNS:host%d.example.test", i ? "," : "", i);
    ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    free(san);
    if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
        X509_EXTENSION_free(ext);
        return -1;
    }
    X509_EXTENSION_free(ext);
    return 0;
}

int test_cert_make(const char *cn, int san_names, X509 **cert, EVP_PKEY **key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();

    if (k == NULL || x == NULL || X509_set_version(x, 2) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_set_pubkey(x, k) != 1 ||
        (san_names > 0 && add_san(x, san_names) < 0) || X509_sign(x, k, EVP_sha256()) <= 0) {
        X509_free(x);
        EVP_PKEY_free(k);
        return -1;
    }
    *cert = x;
    *key = k;
    return 0;
}

int test_cert_write(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    int ok = f != NULL && (cert == NULL || PEM_write_X509(f, cert) == 1) &&
             (key == NULL || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);

    if (f != NULL && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}
