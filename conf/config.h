/* config.h - switchyard's configuration: one JSON file, validated as a whole.
 *
 * config_load_file() parses and checks the file and returns a fully validated,
 * immutable struct config, or NULL with every problem found appended to a
 * struct conf_errors as "FILE:LINE:COL: key.path: message". Unknown keys are
 * errors; every key has a documented default (README.md, "Configuration").
 * Relative paths resolve against the config file's folder.
 */
#ifndef SY_CONF_CONFIG_H
#define SY_CONF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conf/addr.h"

/* The two colours. Each is a pool; which one is stable swaps at promotion. */
enum conf_colour {
    CONF_BLUE = 0,
    CONF_GREEN = 1,
};
#define CONF_COLOURS 2

const char *conf_colour_name(enum conf_colour c);

/* True when two optional strings of a config are equal (both NULL too):
 * how a reload tells what changed. */
static inline bool conf_same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The candidate's share is kept in basis points: 10000 = 100 %. */
#define CONF_WEIGHT_BP_MAX 10000u

struct conf_server {
    char *name;            /* unique across both pools */
    struct conf_addr addr; /* resolved numeric address */
    unsigned weight;       /* 1..1000, default 1 */
};

#define CONF_POOL_SERVERS_MAX 64

/* A pool's "ca" bundle is read whole into memory: larger is a mistake. */
#define CONF_TLS_CA_MAX (16 * 1024 * 1024)

/* pools.<colour>.tls: the proxy speaks TLS to the pool's servers. */
struct conf_upstream_tls {
    bool enabled; /* "tls" is present */
    bool verify;  /* default true: the chain up to ca, and the name (sni, else the IP) */
    char *ca;     /* absolute path of a PEM bundle; NULL: the system's trust store */
    char *sni;    /* the server name sent and verified; NULL: no SNI, the address is verified */
};

struct conf_pool {
    struct conf_server *servers;
    size_t nservers; /* >= 1 */
    struct conf_upstream_tls tls;
};

enum conf_tls_version {
    CONF_TLS_1_2, /* the default */
    CONF_TLS_1_3,
};

/* TLS 1.2 ciphers when "ciphers" is absent: forward-secret AEAD only. */
#define CONF_TLS_CIPHERS_DEFAULT                                                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* At most this many entries in listen[].tls.certificates. */
#define CONF_TLS_CERTS_MAX 64

/* An additional certificate, served to clients whose SNI matches one of its
 * names (subjectAltName DNS entries, else the CN). */
struct conf_tls_cert {
    char *cert; /* absolute path: PEM, the chain after the leaf */
    char *key;  /* absolute path: PEM */
};

struct conf_tls {
    char *cert;                        /* absolute path: PEM, the chain after the leaf */
    char *key;                         /* absolute path: PEM */
    struct conf_tls_cert *certs;       /* "certificates", chosen by SNI, in file order */
    size_t ncerts;                     /* <= CONF_TLS_CERTS_MAX */
    enum conf_tls_version min_version; /* default CONF_TLS_1_2 */
    char *ciphers;                     /* TLS <= 1.2 list; NULL: CONF_TLS_CIPHERS_DEFAULT */
    char *ciphersuites;                /* TLS 1.3 list; NULL: OpenSSL's default */
};

struct conf_listen {
    struct conf_addr addr;
    bool has_tls;
    struct conf_tls tls;
};

struct conf_admin {
    char *socket;         /* absolute path, NULL when absent */
    unsigned socket_mode; /* default 0660 */
    uint32_t *allow_uids; /* uids; default: the uid that runs switchyard */
    size_t nallow_uids;
    uint32_t *allow_gids; /* peers with one of these (primary) gids too; default none */
    size_t nallow_gids;
    bool has_http;
    struct conf_addr http;
};

struct conf_routing {
    enum conf_colour stable; /* default blue */
    uint32_t candidate_bp;   /* candidate_percent * 100, default 0 */
    char *sticky_cookie;     /* NULL when absent */
    char *sticky_header;     /* NULL when absent */
    bool sticky_client_addr; /* hash the client address when no key; default true with sticky */
    bool sticky_set_cookie;  /* the proxy sets sticky_cookie when absent; default true with it */
    char *override_header;   /* NULL when absent */
    struct conf_cidr *override_allow;
    size_t noverride_allow;
};

struct conf_timeouts {
    uint32_t client_header_ms;   /* 10000 */
    uint32_t client_idle_ms;     /* 60000 */
    uint32_t connect_ms;         /* 2000 */
    uint32_t upstream_header_ms; /* 30000 */
    uint32_t body_idle_ms;       /* 60000 */
    uint32_t drain_ms;           /* 30000 */
};

struct conf_limits {
    uint32_t max_connections;  /* 10000, per process */
    uint32_t max_header_bytes; /* 32768 */
    uint32_t max_headers;      /* 100 */
};

struct conf_health {
    bool enabled; /* section present */
    char *path;   /* "/healthz" */
    uint32_t interval_ms;
    uint32_t timeout_ms;
    uint32_t rise, fall;
    unsigned expect_status;
    char *expect_body; /* NULL when absent */
};

struct conf_detector {
    bool enabled; /* section present */
    uint32_t window_s;
    uint32_t min_requests;
    double max_error_rate;
    double max_error_ratio;
    uint32_t max_p99_ms;
    double max_p99_ratio;
    uint32_t fast_consecutive_failures; /* 0 = fast rollback off */
};

struct conf_window {
    uint8_t days;      /* bit 0 = Monday .. bit 6 = Sunday */
    uint16_t from_min; /* minutes after midnight */
    uint16_t to_min;   /* may be < from_min: crosses midnight */
    char *tz;          /* IANA zone name */
};

#define CONF_PROBE_HEADERS_MAX 32

struct conf_header {
    char *name;  /* an HTTP token, never a field the probe sets itself */
    char *value; /* no control characters but tab */
};

struct conf_probe {
    char *method; /* "GET" */
    char *path;
    unsigned expect_status;
    char *expect_body;           /* NULL when absent */
    struct conf_header *headers; /* sent in this order; NULL when none */
    size_t nheaders;             /* at most CONF_PROBE_HEADERS_MAX */
};

struct conf_rollout {
    bool enabled;       /* section present */
    uint32_t *steps_bp; /* increasing, last = 10000 */
    size_t nsteps;
    uint32_t step_s;
    struct conf_window *windows;
    size_t nwindows;
    double max_rps; /* 0 = no gate */
    struct conf_probe *preflight;
    size_t npreflight;
    char *report_dir; /* absolute path; NULL: reports stay in memory */
};

struct conf_redis {
    bool enabled;
    char *url;
    char *ns; /* "namespace" in the file */
    uint32_t lease_ms;
};

/* "user" and "group": whom switchyard runs as once its sockets are bound. */
struct conf_run_as {
    char *user;   /* as written; NULL: no privilege drop */
    char *group;  /* as written; NULL: the user's primary group */
    uint32_t uid; /* resolved at load */
    uint32_t gid; /* resolved at load */
};

struct config {
    char *path;       /* the file as given, or "<embedded>" */
    char *dir;        /* folder relative paths resolve against */
    unsigned workers; /* 0 in the file = one per core; resolved at load */
    struct conf_listen *listen;
    size_t nlisten;
    struct conf_admin admin;
    struct conf_pool pools[CONF_COLOURS];
    struct conf_routing routing;
    struct conf_timeouts timeouts;
    struct conf_limits limits;
    struct conf_health health;
    struct conf_detector detector;
    struct conf_rollout rollout;
    char *state_file;     /* absolute path, NULL when absent */
    char *audit_log_path; /* state.audit_log: absolute path, NULL when absent */
    struct conf_redis redis;
    char *access_log_path; /* absolute path, NULL when absent */
    struct conf_run_as run_as;
};

/* A list of problems, each one formatted "FILE:LINE:COL: key.path: message". */
struct conf_errors {
    char **msgs;
    size_t n;
};

void conf_errors_add(struct conf_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conf_errors_print(const struct conf_errors *errs, FILE *out);
void conf_errors_clear(struct conf_errors *errs);

/* Loads and validates the file at path. Returns a new config (caller frees with
 * config_free) or NULL, with every problem found appended to errs. */
struct config *config_load_file(const char *path, struct conf_errors *errs)
    __attribute__((warn_unused_result));

/* The same for text held in memory: name is used in messages, dir resolves
 * relative paths. */
struct config *config_load_string(const char *text, size_t len, const char *name, const char *dir,
                                  struct conf_errors *errs) __attribute__((warn_unused_result));

void config_free(struct config *cfg);

#endif
