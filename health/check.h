/* check.h - active health checks: one HTTP GET per server per interval.
 *
 * Each server gets `GET health.path` with `Host: <its address>` and
 * `Connection: close` every health.interval_ms, over a fresh non-blocking
 * connection, the whole check bounded by health.timeout_ms. A check passes
 * when the status is health.expect_status and, with health.expect_body, the
 * first HEALTH_CHECK_BODY_MAX bytes of the body contain it. A server of a
 * pool with "tls" is checked over TLS, verified as the data plane verifies
 * it; a failed handshake is a failed check. health.fall failures in a row
 * mark a server down, health.rise passes in a row mark it up again; each
 * change is logged once (down at warn, up at info) with the last check's
 * result, and told to the owner through a callback.
 *
 * Everything runs on one event base (the control thread's). The checker
 * knows servers by pool and name only: what a server's health flag is, and
 * where it lives, is the caller's business (control/ writes the flag the
 * workers read).
 */
#ifndef SY_HEALTH_CHECK_H
#define SY_HEALTH_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "conf/config.h"
#include "health/http_client.h"

#define HEALTH_CHECK_BODY_MAX HTTP_CLIENT_BODY_MAX /* body bytes searched for expect_body */
#define HEALTH_CHECK_TEXT_MAX HTTP_CLIENT_TEXT_MAX /* a check's result text, NUL included */

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* One server to check. */
struct health_target {
    enum conf_colour pool;
    const struct conf_server *server; /* borrowed: name and address are copied */
    void *handle;                     /* the caller's; handed back to the change callback */
    /* The pool's TLS client context (tls_client_ctx_new()), NULL for plain
     * HTTP. With it, tls holds the SNI and the name to verify. Both are
     * borrowed, valid as long as the handle. */
    struct ssl_ctx_st *tls_ctx;
    const struct conf_upstream_tls *tls;
};

/* What the checks know of one server: a plain value. */
struct health_status {
    bool up;                          /* servers start up: no traffic is held back at start */
    bool checked;                     /* at least one check has finished */
    bool passing;                     /* the last check passed */
    unsigned streak;                  /* checks in a row with the last one's outcome */
    char last[HEALTH_CHECK_TEXT_MAX]; /* "ok", "status 503, expected 200", "connect refused" */
    int64_t last_ms;                  /* when the last check ended, unix ms */
};

/* Told once per change of a server between up and down, with why (borrowed,
 * e.g. "server blue/blue-2 down: 3 checks failed in a row, last: status
 * 503"), and once per target at each health_checker_set(), with why NULL,
 * so that the caller's flag agrees with the checker. handle is the
 * target's. */
typedef void (*health_change_cb)(void *handle, bool up, const char *why, void *arg);

struct health_checker;

/* A checker with nothing to check yet. base is borrowed and must outlive it;
 * cb (with arg) is called from base's loop and from health_checker_set().
 * Returns NULL when out of memory. */
struct health_checker *health_checker_new(struct event_base *base, health_change_cb cb, void *arg);

/* Frees hc and every running check (NULL is fine). Servers keep the health
 * they last had. */
void health_checker_free(struct health_checker *hc);

/* Checks the n targets (borrowed; copied) with the settings of conf
 * (borrowed; copied), instead of whatever was checked before. A server
 * already checked under the same pool and name keeps its state and counters;
 * a new one starts up, its first check at a random point of the first
 * interval so that many servers are not checked in the same millisecond; one
 * that is gone stops being checked. With conf->enabled false nothing is
 * checked and every target is up. The handles and TLS settings must stay
 * valid until the next call or health_checker_free(). Returns 0, or -1 when
 * out of memory: then the checks run as before. */
int health_checker_set(struct health_checker *hc, const struct conf_health *conf,
                       const struct health_target *targets, size_t n)
    __attribute__((warn_unused_result));

/* The state of the server called name in pool (borrowed: valid until the
 * next health_checker_set()), or NULL when it is not checked. */
const struct health_status *health_checker_status(const struct health_checker *hc,
                                                  enum conf_colour pool, const char *name);

#endif
