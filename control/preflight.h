/* preflight.h - a rollout's preflight: every probe against every candidate
 * server, before any user traffic moves.
 *
 * Each server gets the probes in order, one at a time (a later probe may
 * rely on what an earlier one checked); the servers run concurrently. Each
 * probe is one HTTP/1.1 request (health/http_client.h) with the probe's
 * method, path and header fields, `Host: <server address>`, `Connection:
 * close` and, unless the probe sets one, `User-Agent: switchyard-preflight`,
 * bounded by timeout_ms. The first failure ends the whole preflight. A pool
 * with "tls" is probed over TLS, verified as the data plane verifies it.
 */
#ifndef SY_CONTROL_PREFLIGHT_H
#define SY_CONTROL_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "conf/config.h"

struct preflight;

/* Called once, from the event loop, when every probe passed on every server
 * (passed true, why "3 probes passed on 2 servers") or at the first failure
 * (passed false, why e.g. "probe 2 (GET /healthz) on green-1 (127.0.0.1:9002):
 * status 503, expected 200", "... : timeout after 2000 ms", "... : connect
 * refused", "... : status 200, body does not contain \"ok\"", "... :
 * certificate verify failed: self-signed certificate", or "cannot set up TLS
 * to the candidate servers: cannot load the CA bundle ..."). why is borrowed
 * for the call. */
typedef void (*preflight_done_cb)(bool passed, const char *why, void *arg);

/* Starts running probes[0..nprobes) against every server of pool (borrowed:
 * both must outlive the preflight or preflight_free() be called first).
 * timeout_ms bounds each probe. Returns NULL when out of memory. With no
 * probes, or no servers, the callback runs (passed true) from the loop, never
 * from inside this call; so does it (passed false) when the pool's TLS
 * settings cannot be loaded. */
struct preflight *preflight_start(struct event_base *base, const struct conf_probe *probes,
                                  size_t nprobes, const struct conf_pool *pool, uint32_t timeout_ms,
                                  preflight_done_cb cb, void *arg);

/* Stops everything and frees; the callback is not called after. NULL is
 * fine. Safe from inside the callback. */
void preflight_free(struct preflight *p);

#endif
