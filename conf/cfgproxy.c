/* cfgproxy.c - the config sections the data plane runs on: listen, admin,
 * pools and routing. */
#include "conf/cfgproxy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define SERVER_NAME_MAX 64
#define DEFAULT_OVERRIDE_HEADER "X-Switchyard-Pool"
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static const char *const default_allow_from[] = {"127.0.0.1/32", "::1/128"};

/* One value that must be unique, remembered with where it was written. */
struct seen {
    const void *key;
    size_t len;
    size_t order; /* position in the file, since qsort is not stable */
    char path[CFGWALK_PATH_MAX];
};

static int seen_cmp(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);

    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Reports every entry of s (in file order) that repeats an earlier key, at
 * its own path. Sorting keeps this O(n log n) for any number of entries. */
static void report_duplicates(struct cfgwalk *w, struct seen *s, size_t n, const char *what,
                              bool show_path_key)
{
    if (n < 2)
        return;
    qsort(s, n, sizeof(*s), seen_cmp);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (s[i].len != s[first].len || memcmp(s[i].key, s[first].key, s[i].len) != 0) {
            first = i;
            continue;
        }
        if (show_path_key) {
            char shown[96];
            cfgwalk_error(w, s[i].path, false, "duplicate %s %s (first used at %s)", what,
                          cfgwalk_quote(shown, sizeof(shown), s[i].key), s[first].path);
        } else {
            cfgwalk_error(w, s[i].path, false, "duplicate %s (also at %s)", what, s[first].path);
        }
    }
}

static void parse_tls_version(struct cfgwalk *w, const json_t *obj, const char *path,
                              struct conf_tls *t)
{
    char p[CFGWALK_PATH_MAX], shown[96];
    json_t *v = cfgwalk_member(w, obj, path, "min_version", CFGWALK_STRING, false, p, sizeof(p));
    const char *s = v ? json_string_value(v) : NULL;

    if (!s)
        return;
    if (strcmp(s, "1.2") == 0)
        t->min_version = CONF_TLS_1_2;
    else if (strcmp(s, "1.3") == 0)
        t->min_version = CONF_TLS_1_3;
    else
        cfgwalk_error(w, p, false, "must be \"1.2\" or \"1.3\" (got %s)",
                      cfgwalk_quote(shown, sizeof(shown), s));
}

/* Reports at path.key why OpenSSL refused it, and empties OpenSSL's error
 * queue, which would otherwise confuse the next OpenSSL call. */
static void tls_error(struct cfgwalk *w, const char *path, const char *key, const char *what)
{
    char p[CFGWALK_PATH_MAX];
    const char *reason = ERR_reason_error_string(ERR_peek_error());

    cfgwalk_path_key(p, sizeof(p), path, key);
    cfgwalk_error(w, p, false, "%s: %s", what, reason ? reason : "unknown OpenSSL error");
    ERR_clear_error();
}

/* OpenSSL would only say "system lib" for a file it cannot open. */
static bool tls_file_readable(struct cfgwalk *w, const char *path, const char *key,
                              const char *file)
{
    char p[CFGWALK_PATH_MAX];
    FILE *f = fopen(file, "r");

    if (f) {
        fclose(f);
        return true;
    }
    cfgwalk_path_key(p, sizeof(p), path, key);
    cfgwalk_error(w, p, false, "cannot read %s: %s", file, strerror(errno));
    return false;
}

/* True when the leaf certificate names a host SNI can match: a
 * subjectAltName DNS entry or, without any, a CN. */
static bool tls_cert_has_name(SSL_CTX *ctx)
{
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    GENERAL_NAMES *sans = leaf ? X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL) : NULL;
    bool found = false;

    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && !found; i++)
        found = sk_GENERAL_NAME_value(sans, i)->type == GEN_DNS;
    if (sans == NULL && leaf)
        found = X509_NAME_get_index_by_NID(X509_get_subject_name(leaf), NID_commonName, -1) >= 0;
    GENERAL_NAMES_free(sans);
    return found;
}

/* Loads cert and key into ctx the way the proxy will: readable files, a
 * PEM chain, a key that matches it, and with sni a certificate with a name
 * to match the SNI against. Reports at path.cert or path.key. */
static void check_identity(struct cfgwalk *w, const char *path, SSL_CTX *ctx, const char *cert,
                           const char *key, bool sni)
{
    bool cert_ok = cert && tls_file_readable(w, path, "cert", cert);
    bool key_ok = key && tls_file_readable(w, path, "key", key);

    if (cert_ok && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        tls_error(w, path, "cert", "not a PEM certificate chain");
    else if (cert_ok && sni && !tls_cert_has_name(ctx))
        tls_error(w, path, "cert", "no subjectAltName DNS entry nor CN to match the SNI against");
    else if (cert_ok && key_ok && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        tls_error(w, path, "key", "not a PEM private key for the certificate");
}

/* Checks one certificates[] entry (see check_identity). */
static void check_tls_cert(struct cfgwalk *w, const char *path, const struct conf_tls_cert *c)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        w->oom = true;
        return;
    }
    check_identity(w, path, ctx, c->cert, c->key, true);
    SSL_CTX_free(ctx);
}

static void parse_tls_certs(struct cfgwalk *w, const json_t *obj, const char *path,
                            struct conf_tls *t)
{
    static const struct cfgwalk_field fields[] = {
        {"cert", CFGWALK_FILE, offsetof(struct conf_tls_cert, cert), 0, 0, true},
        {"key", CFGWALK_FILE, offsetof(struct conf_tls_cert, key), 0, 0, true},
    };
    char p[CFGWALK_PATH_MAX];
    json_t *arr = cfgwalk_member(w, obj, path, "certificates", CFGWALK_ARRAY, false, p, sizeof(p));
    size_t n = json_array_size(arr);

    if (!n)
        return;
    if (n > CONF_TLS_CERTS_MAX) {
        cfgwalk_error(w, p, false, "at most %d certificates (got %zu)", CONF_TLS_CERTS_MAX, n);
        return;
    }
    t->certs = calloc(n, sizeof(*t->certs));
    if (!t->certs) {
        w->oom = true;
        return;
    }
    t->ncerts = n;
    for (size_t i = 0; i < n; i++) {
        char ip[CFGWALK_PATH_MAX];
        json_t *v = json_array_get(arr, i);
        cfgwalk_path_index(ip, sizeof(ip), p, i);
        if (!cfgwalk_expect(w, v, ip, CFGWALK_OBJECT))
            continue;
        (void)cfgwalk_object(w, v, ip, fields, NFIELDS(fields), &t->certs[i]);
        check_tls_cert(w, ip, &t->certs[i]);
    }
}

/* Loads the certificate chain and the key and sets the cipher lists the way
 * the proxy will at start, so that a file that is missing, unreadable,
 * malformed or a key that does not match is a config error (`switchyard -t`
 * reports it) and never a failure once serving. */
static void check_tls(struct cfgwalk *w, const char *path, const struct conf_tls *t)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        w->oom = true;
        return;
    }
    check_identity(w, path, ctx, t->cert, t->key, false);
    if (t->ciphers && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1)
        tls_error(w, path, "ciphers", "no usable cipher");
    if (t->ciphersuites && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1)
        tls_error(w, path, "ciphersuites", "not a valid TLS 1.3 cipher suite list");
    SSL_CTX_free(ctx);
}

static void parse_tls(struct cfgwalk *w, const json_t *obj, const char *path, struct conf_listen *l)
{
    static const struct cfgwalk_field fields[] = {
        {"cert", CFGWALK_FILE, offsetof(struct conf_tls, cert), 0, 0, true},
        {"key", CFGWALK_FILE, offsetof(struct conf_tls, key), 0, 0, true},
        {"min_version", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"ciphers", CFGWALK_WORD, offsetof(struct conf_tls, ciphers), 0, 0, false},
        {"ciphersuites", CFGWALK_WORD, offsetof(struct conf_tls, ciphersuites), 0, 0, false},
        {"certificates", CFGWALK_CUSTOM, 0, 0, 0, false},
    };

    l->has_tls = true;
    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), &l->tls);
    parse_tls_version(w, obj, path, &l->tls);
    check_tls(w, path, &l->tls);
    parse_tls_certs(w, obj, path, &l->tls);
}

static void parse_listen_entry(struct cfgwalk *w, const json_t *obj, const char *path,
                               struct conf_listen *l)
{
    static const struct cfgwalk_field fields[] = {
        {"addr", CFGWALK_ADDR, offsetof(struct conf_listen, addr), 0, 0, true},
        {"tls", CFGWALK_CUSTOM, 0, 0, 0, false},
    };
    char p[CFGWALK_PATH_MAX];

    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), l);
    json_t *tls = cfgwalk_member(w, obj, path, "tls", CFGWALK_OBJECT, false, p, sizeof(p));
    if (tls)
        parse_tls(w, tls, p, l);
}

void cfgproxy_listen(struct cfgwalk *w, const json_t *root, struct config *cfg)
{
    char p[CFGWALK_PATH_MAX];
    json_t *arr = cfgwalk_member(w, root, "", "listen", CFGWALK_ARRAY, false, p, sizeof(p));
    size_t n = json_array_size(arr), nseen = 0;

    if (!arr)
        return;
    if (!n) {
        cfgwalk_error(w, p, false, "must have at least one entry");
        return;
    }
    cfg->listen = calloc(n, sizeof(*cfg->listen));
    struct seen *seen = calloc(n, sizeof(*seen));
    if (!cfg->listen || !seen) {
        w->oom = true;
        free(seen);
        return;
    }
    cfg->nlisten = n;
    for (size_t i = 0; i < n; i++) {
        struct conf_listen *l = &cfg->listen[i];
        json_t *v = json_array_get(arr, i);
        cfgwalk_path_index(p, sizeof(p), "listen", i);
        if (!cfgwalk_expect(w, v, p, CFGWALK_OBJECT))
            continue;
        parse_listen_entry(w, v, p, l);
        if (!l->addr.len)
            continue;
        seen[nseen].key = &l->addr.ss;
        seen[nseen].len = l->addr.len;
        seen[nseen].order = nseen;
        cfgwalk_path_key(seen[nseen++].path, CFGWALK_PATH_MAX, p, "addr");
    }
    /* Two listeners on one address would both bind (SO_REUSEPORT) and
     * silently share the traffic: almost certainly a copy-paste slip. */
    report_duplicates(w, seen, nseen, "listen address", false);
    free(seen);
}

/* Parses socket_mode: a string of octal digits, 0..0777. */
static void parse_socket_mode(struct cfgwalk *w, const json_t *obj, struct conf_admin *a)
{
    char p[CFGWALK_PATH_MAX], shown[96];
    json_t *v = json_object_get(obj, "socket_mode");

    cfgwalk_path_key(p, sizeof(p), "admin", "socket_mode");
    if (v && json_is_integer(v)) {
        /* A bare 0660 is not JSON and 660 is not the mode the writer meant. */
        cfgwalk_error(w, p, false, "expected a string of octal digits such as \"0660\", got %s",
                      cfgwalk_literal(w, p, v, shown, sizeof(shown)));
        return;
    }
    if (!v || !cfgwalk_expect(w, v, p, CFGWALK_STRING))
        return;
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n < 1 || n > 4 || strspn(s, "01234567") != n) {
        cfgwalk_error(w, p, false, "cannot parse %s: expected octal digits such as \"0660\"",
                      cfgwalk_quote(shown, sizeof(shown), s));
        return;
    }
    unsigned long mode = strtoul(s, NULL, 8);
    if (mode > 0777) {
        cfgwalk_error(w, p, false, "out of range 0..0777 (got %s)",
                      cfgwalk_quote(shown, sizeof(shown), s));
        return;
    }
    a->socket_mode = (unsigned)mode;
}

/* Reads arr[i] (path names arr) as a uid or gid into *id. Returns false,
 * with the problem recorded, when it is not one. */
static bool parse_id(struct cfgwalk *w, const json_t *arr, const char *path, size_t i, uint32_t *id)
{
    /* (uid_t)-1 and (gid_t)-1 mean "none" to the kernel: never a peer's. */
    static const struct cfgwalk_field field = {"", CFGWALK_U32, 0, 0, 4294967294.0, false};
    char p[CFGWALK_PATH_MAX];

    cfgwalk_path_index(p, sizeof(p), path, i);
    return cfgwalk_value(w, json_array_get(arr, i), p, &field, id) == 0;
}

/* An array of uids or gids into a new array (*n entries; NULL when empty).
 * Returns -1 when an entry is bad (reported) or memory ran out. */
static int parse_id_list(struct cfgwalk *w, const json_t *arr, const char *path, uint32_t **out,
                         size_t *n)
{
    bool ok = true;

    *out = NULL;
    *n = json_array_size(arr);
    if (*n == 0)
        return 0;
    uint32_t *ids = calloc(*n, sizeof(*ids));
    if (!ids) {
        w->oom = true;
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        ok &= parse_id(w, arr, path, i, &ids[i]);
    if (!ok) {
        free(ids);
        return -1;
    }
    *out = ids;
    return 0;
}

static void parse_allow_uids(struct cfgwalk *w, const json_t *arr, const char *path,
                             struct conf_admin *a)
{
    uint32_t *ids;
    size_t n;

    if (json_array_size(arr) == 0) {
        cfgwalk_error(w, path, false, "must list at least one uid");
        return;
    }
    if (parse_id_list(w, arr, path, &ids, &n) < 0)
        return;
    free(a->allow_uids);
    a->allow_uids = ids;
    a->nallow_uids = n;
}

/* Unlike allow_uids, an empty list is fine: it is the default. */
static void parse_allow_gids(struct cfgwalk *w, const json_t *arr, const char *path,
                             struct conf_admin *a)
{
    uint32_t *ids;
    size_t n;

    if (parse_id_list(w, arr, path, &ids, &n) < 0)
        return;
    free(a->allow_gids);
    a->allow_gids = ids;
    a->nallow_gids = n;
}

void cfgproxy_admin(struct cfgwalk *w, const json_t *root, struct conf_admin *a)
{
    static const struct cfgwalk_field fields[] = {
        {"socket", CFGWALK_FILE, offsetof(struct conf_admin, socket), 0, 0, false},
        {"socket_mode", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"allow_uids", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"allow_gids", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"http", CFGWALK_ADDR, offsetof(struct conf_admin, http), 0, 0, false},
    };
    char p[CFGWALK_PATH_MAX], shown[160];
    json_t *obj = cfgwalk_member(w, root, "", "admin", CFGWALK_OBJECT, false, p, sizeof(p));

    if (!obj)
        return;
    (void)cfgwalk_object(w, obj, "admin", fields, NFIELDS(fields), a);
    a->has_http = a->http.len != 0;
    if (a->socket && strlen(a->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        cfgwalk_error(w, "admin.socket", false,
                      "socket path too long once made absolute (%zu bytes, at most %zu): %s",
                      strlen(a->socket), sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
                      cfgwalk_quote(shown, sizeof(shown), a->socket));
    parse_socket_mode(w, obj, a);
    json_t *uids =
        cfgwalk_member(w, obj, "admin", "allow_uids", CFGWALK_ARRAY, false, p, sizeof(p));
    if (uids)
        parse_allow_uids(w, uids, p, a);
    json_t *gids =
        cfgwalk_member(w, obj, "admin", "allow_gids", CFGWALK_ARRAY, false, p, sizeof(p));
    if (gids)
        parse_allow_gids(w, gids, p, a);
}

bool cfgproxy_server_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= SERVER_NAME_MAX &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static void parse_server(struct cfgwalk *w, const json_t *obj, const char *path,
                         struct conf_server *s)
{
    static const struct cfgwalk_field fields[] = {
        {"name", CFGWALK_CUSTOM, 0, 0, 0, true},
        {"addr", CFGWALK_ADDR, offsetof(struct conf_server, addr), 0, 0, true},
        {"weight", CFGWALK_U32, offsetof(struct conf_server, weight), 1, 1000, false},
    };
    char p[CFGWALK_PATH_MAX], shown[96];

    s->weight = 1;
    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), s);
    json_t *v = cfgwalk_member(w, obj, path, "name", CFGWALK_STRING, false, p, sizeof(p));
    if (!v)
        return;
    const char *name = json_string_value(v);
    if (!*name)
        cfgwalk_error(w, p, false, "must not be empty");
    else if (!cfgproxy_server_name_ok(name))
        cfgwalk_error(w, p, false, "must be at most 64 characters from A-Z a-z 0-9 . _ - (got %s)",
                      cfgwalk_quote(shown, sizeof(shown), name));
    else
        cfgwalk_set_string(w, &s->name, name);
}

/* A DNS name as SNI carries it: dot-separated labels of letters, digits
 * and inner hyphens, no IP address (RFC 6066 forbids those in SNI). */
static bool sni_name_ok(const char *name)
{
    size_t n = strlen(name), label = 0;

    if (n == 0 || n > 253 || strspn(name, "0123456789.") == n)
        return false;
    for (const char *c = name; *c; c++) {
        bool starts = label == 0, ends = c[1] == '\0' || c[1] == '.';
        if (*c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((isalnum((unsigned char)*c) || (*c == '-' && !starts && !ends)) &&
                   ++label <= 63) {
            continue;
        } else {
            return false;
        }
    }
    return label > 0;
}

/* Loads the CA bundle the way the proxy will, so that a missing file or one
 * without a single certificate is a config error. */
static int store_certificates(X509_STORE *store)
{
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
    int n = 0;

    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++)
        n += X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) == X509_LU_X509;
    return n;
}

/* Loads the CA bundle as the proxy will (proxy/tls_client.c): a regular
 * file of at most CONF_TLS_CA_MAX bytes holding at least one certificate. */
static void check_upstream_ca(struct cfgwalk *w, const char *path, const char *ca)
{
    char p[CFGWALK_PATH_MAX];
    struct stat st;
    SSL_CTX *ctx;

    if (!tls_file_readable(w, path, "ca", ca))
        return;
    cfgwalk_path_key(p, sizeof(p), path, "ca");
    if (stat(ca, &st) == 0 && !S_ISREG(st.st_mode)) {
        cfgwalk_error(w, p, false, "%s is not a regular file", ca);
        return;
    }
    if (stat(ca, &st) == 0 && st.st_size > CONF_TLS_CA_MAX) {
        cfgwalk_error(w, p, false, "%s is over %d bytes", ca, CONF_TLS_CA_MAX);
        return;
    }
    if (!(ctx = SSL_CTX_new(TLS_client_method()))) {
        w->oom = true;
        return;
    }
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        tls_error(w, path, "ca", "not a PEM certificate bundle");
    else if (store_certificates(SSL_CTX_get_cert_store(ctx)) == 0)
        cfgwalk_error(w, p, false, "%s holds no certificate", ca);
    SSL_CTX_free(ctx);
}

static void parse_upstream_tls(struct cfgwalk *w, const json_t *obj, const char *path,
                               struct conf_upstream_tls *t)
{
    static const struct cfgwalk_field fields[] = {
        {"verify", CFGWALK_BOOL, offsetof(struct conf_upstream_tls, verify), 0, 0, false},
        {"ca", CFGWALK_FILE, offsetof(struct conf_upstream_tls, ca), 0, 0, false},
        {"sni", CFGWALK_WORD, offsetof(struct conf_upstream_tls, sni), 0, 0, false},
    };
    char p[CFGWALK_PATH_MAX], shown[96];

    t->enabled = true;
    t->verify = true;
    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), t);
    if (t->sni && !sni_name_ok(t->sni)) {
        cfgwalk_path_key(p, sizeof(p), path, "sni");
        cfgwalk_error(w, p, false, "must be a DNS name such as \"api.internal\" (got %s)",
                      cfgwalk_quote(shown, sizeof(shown), t->sni));
    }
    if (t->ca)
        check_upstream_ca(w, path, t->ca);
    if (t->ca && !t->verify) {
        cfgwalk_path_key(p, sizeof(p), path, "ca");
        cfgwalk_error(w, p, false, "is unused with \"verify\": false; remove one of them");
    }
}

static void parse_pool(struct cfgwalk *w, const json_t *obj, const char *path,
                       struct conf_pool *pool)
{
    static const struct cfgwalk_field fields[] = {
        {"servers", CFGWALK_CUSTOM, 0, 0, 0, true},
        {"tls", CFGWALK_CUSTOM, 0, 0, 0, false},
    };
    char p[CFGWALK_PATH_MAX], sp[CFGWALK_PATH_MAX];

    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), pool);
    json_t *tls = cfgwalk_member(w, obj, path, "tls", CFGWALK_OBJECT, false, p, sizeof(p));
    if (tls)
        parse_upstream_tls(w, tls, p, &pool->tls);
    json_t *arr = cfgwalk_member(w, obj, path, "servers", CFGWALK_ARRAY, false, p, sizeof(p));
    size_t n = json_array_size(arr);
    if (!arr)
        return;
    if (!n) {
        cfgwalk_error(w, p, false, "must have at least one server");
        return;
    }
    /* A request's tried servers are one 64-bit mask. */
    if (n > CONF_POOL_SERVERS_MAX) {
        cfgwalk_error(w, p, false, "at most %d servers per pool (got %zu)", CONF_POOL_SERVERS_MAX,
                      n);
        return;
    }
    pool->servers = calloc(n, sizeof(*pool->servers));
    if (!pool->servers) {
        w->oom = true;
        return;
    }
    pool->nservers = n;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        cfgwalk_path_index(sp, sizeof(sp), p, i);
        if (cfgwalk_expect(w, v, sp, CFGWALK_OBJECT))
            parse_server(w, v, sp, &pool->servers[i]);
    }
}

/* Server names identify servers in metrics, logs and commands, in both pools. */
static void check_server_names(struct cfgwalk *w, const struct conf_pool *pools)
{
    size_t total = pools[CONF_BLUE].nservers + pools[CONF_GREEN].nservers, n = 0;
    struct seen *seen = total ? calloc(total, sizeof(*seen)) : NULL;

    if (total && !seen) {
        w->oom = true;
        return;
    }
    for (int c = 0; c < CONF_COLOURS; c++) {
        for (size_t i = 0; i < pools[c].nservers; i++) {
            const char *name = pools[c].servers[i].name;
            if (!name)
                continue;
            seen[n].key = name;
            seen[n].len = strlen(name) + 1;
            seen[n].order = n;
            snprintf(seen[n++].path, CFGWALK_PATH_MAX, "pools.%s.servers[%zu].name",
                     conf_colour_name((enum conf_colour)c), i);
        }
    }
    report_duplicates(w, seen, n, "server name", true);
    free(seen);
}

void cfgproxy_pools(struct cfgwalk *w, const json_t *root, struct conf_pool *pools)
{
    static const char *const colours[] = {"blue", "green", NULL};
    char p[CFGWALK_PATH_MAX];
    json_t *obj = cfgwalk_member(w, root, "", "pools", CFGWALK_OBJECT, false, p, sizeof(p));

    if (!obj)
        return;
    cfgwalk_check_keys(w, obj, "pools", colours);
    for (int c = 0; c < CONF_COLOURS; c++) {
        json_t *pool =
            cfgwalk_member(w, obj, "pools", colours[c], CFGWALK_OBJECT, true, p, sizeof(p));
        if (pool)
            parse_pool(w, pool, p, &pools[c]);
    }
    check_server_names(w, pools);
}

static void parse_stable(struct cfgwalk *w, const json_t *obj, struct conf_routing *r)
{
    char p[CFGWALK_PATH_MAX], shown[96];
    json_t *v = cfgwalk_member(w, obj, "routing", "stable", CFGWALK_STRING, false, p, sizeof(p));
    const char *s = v ? json_string_value(v) : NULL;

    if (!s)
        return;
    if (strcmp(s, "blue") == 0)
        r->stable = CONF_BLUE;
    else if (strcmp(s, "green") == 0)
        r->stable = CONF_GREEN;
    else
        cfgwalk_error(w, p, false, "must be \"blue\" or \"green\" (got %s)",
                      cfgwalk_quote(shown, sizeof(shown), s));
}

static void parse_sticky(struct cfgwalk *w, const json_t *obj, const char *path,
                         struct conf_routing *r)
{
    static const struct cfgwalk_field fields[] = {
        {"cookie", CFGWALK_TOKEN, offsetof(struct conf_routing, sticky_cookie), 0, 0, false},
        {"header", CFGWALK_TOKEN, offsetof(struct conf_routing, sticky_header), 0, 0, false},
        {"client_addr", CFGWALK_BOOL, offsetof(struct conf_routing, sticky_client_addr), 0, 0,
         false},
        {"set_cookie", CFGWALK_BOOL, offsetof(struct conf_routing, sticky_set_cookie), 0, 0, false},
    };
    char p[CFGWALK_PATH_MAX];

    r->sticky_client_addr = true;
    r->sticky_set_cookie = true;
    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), r);
    /* Without a cookie name there is nothing to set: only an explicit true
     * is a mistake, the default quietly follows the cookie. */
    if (r->sticky_cookie == NULL && r->sticky_set_cookie) {
        if (json_is_true(json_object_get(obj, "set_cookie"))) {
            cfgwalk_path_key(p, sizeof(p), path, "set_cookie");
            cfgwalk_error(w, p, false, "needs routing.sticky.cookie (the name to set)");
        }
        r->sticky_set_cookie = false;
    }
}

/* Stores the CIDR list; on any bad entry the list stays as it was. */
static void parse_allow_from(struct cfgwalk *w, const json_t *arr, const char *path,
                             struct conf_routing *r)
{
    size_t n = json_array_size(arr);
    struct conf_cidr *list = n ? calloc(n, sizeof(*list)) : NULL;
    char p[CFGWALK_PATH_MAX], shown[96];
    bool ok = true;

    if (n && !list) {
        w->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        const char *why;
        cfgwalk_path_index(p, sizeof(p), path, i);
        if (!cfgwalk_expect(w, v, p, CFGWALK_STRING)) {
            ok = false;
        } else if (conf_cidr_parse(json_string_value(v), &list[i], &why) < 0) {
            cfgwalk_error(w, p, false, "cannot parse %s: %s",
                          cfgwalk_quote(shown, sizeof(shown), json_string_value(v)), why);
            ok = false;
        }
    }
    if (!ok) {
        free(list);
        return;
    }
    free(r->override_allow);
    r->override_allow = list;
    r->noverride_allow = n;
}

static void parse_override(struct cfgwalk *w, const json_t *obj, const char *path,
                           struct conf_routing *r)
{
    static const struct cfgwalk_field fields[] = {
        {"header", CFGWALK_TOKEN, offsetof(struct conf_routing, override_header), 0, 0, false},
        {"allow_from", CFGWALK_CUSTOM, 0, 0, 0, false},
    };
    const size_t ndef = NFIELDS(default_allow_from);
    char p[CFGWALK_PATH_MAX];
    const char *why;

    cfgwalk_set_string(w, &r->override_header, DEFAULT_OVERRIDE_HEADER);
    r->override_allow = calloc(ndef, sizeof(*r->override_allow));
    if (!r->override_allow) {
        w->oom = true;
        return;
    }
    r->noverride_allow = ndef;
    for (size_t i = 0; i < ndef; i++)
        (void)conf_cidr_parse(default_allow_from[i], &r->override_allow[i], &why);
    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), r);
    json_t *arr = cfgwalk_member(w, obj, path, "allow_from", CFGWALK_ARRAY, false, p, sizeof(p));
    if (arr)
        parse_allow_from(w, arr, p, r);
}

void cfgproxy_routing(struct cfgwalk *w, const json_t *root, struct conf_routing *r)
{
    static const struct cfgwalk_field fields[] = {
        {"stable", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"candidate_percent", CFGWALK_BP, offsetof(struct conf_routing, candidate_bp), 0, 100,
         false},
        {"sticky", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"override", CFGWALK_CUSTOM, 0, 0, 0, false},
    };
    char p[CFGWALK_PATH_MAX];
    json_t *obj = cfgwalk_member(w, root, "", "routing", CFGWALK_OBJECT, false, p, sizeof(p));
    json_t *v;

    if (!obj)
        return;
    (void)cfgwalk_object(w, obj, "routing", fields, NFIELDS(fields), r);
    parse_stable(w, obj, r);
    if ((v = cfgwalk_member(w, obj, "routing", "sticky", CFGWALK_OBJECT, false, p, sizeof(p))))
        parse_sticky(w, v, p, r);
    if ((v = cfgwalk_member(w, obj, "routing", "override", CFGWALK_OBJECT, false, p, sizeof(p))))
        parse_override(w, v, p, r);
}

void cfgproxy_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nlisten; i++) {
        free(cfg->listen[i].tls.cert);
        free(cfg->listen[i].tls.key);
        free(cfg->listen[i].tls.ciphers);
        free(cfg->listen[i].tls.ciphersuites);
        for (size_t j = 0; j < cfg->listen[i].tls.ncerts; j++) {
            free(cfg->listen[i].tls.certs[j].cert);
            free(cfg->listen[i].tls.certs[j].key);
        }
        free(cfg->listen[i].tls.certs);
    }
    free(cfg->listen);
    free(cfg->admin.socket);
    free(cfg->admin.allow_uids);
    free(cfg->admin.allow_gids);
    for (int c = 0; c < CONF_COLOURS; c++) {
        for (size_t i = 0; i < cfg->pools[c].nservers; i++)
            free(cfg->pools[c].servers[i].name);
        free(cfg->pools[c].servers);
        free(cfg->pools[c].tls.ca);
        free(cfg->pools[c].tls.sni);
    }
    free(cfg->routing.sticky_cookie);
    free(cfg->routing.sticky_header);
    free(cfg->routing.override_header);
    free(cfg->routing.override_allow);
}
