/* service.h - one service: its traffic state, where that state is kept, its
 * event history, and the split the workers read.
 *
 * service_new() decides the state a service starts from: the state file when
 * one is configured and readable (it wins over routing.candidate_percent, so
 * that a rollback or a weight set at run time survives a restart), else the
 * config. Every later change goes through service_apply(), i.e. state_apply()
 * with hooks that persist to the state file, record the event (in the ring
 * and, when state.audit_log is set, as one JSON line in the audit log) and
 * publish the new split to the workers.
 *
 * A change that could not be saved (only a rollback is applied anyway) leaves
 * the service unsaved: once attached to an event base it saves the current
 * state again after SERVICE_RETRY_FIRST_MS, doubling the wait up to
 * SERVICE_RETRY_MAX_MS, until a save (a retry's or a later change's) works.
 */
#ifndef SY_CONTROL_SERVICE_H
#define SY_CONTROL_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/config.h"
#include "control/events.h"
#include "control/state.h"
#include "proxy/route.h"

#define SERVICE_EVENTS_KEPT 256     /* events kept in memory */
#define SERVICE_RETRY_FIRST_MS 1000 /* first retry of an unsaved state */
#define SERVICE_RETRY_MAX_MS 30000  /* the wait between retries stops doubling here */

struct event_base;
struct service;

/* Returns a new service for cfg, or NULL when out of memory. cfg is
 * borrowed for the call only: the paths it names are copied. A state file
 * that cannot be read is logged as an error and the config is used; an audit
 * log that cannot be opened is logged and events stay in memory only: the
 * proxy still starts. */
struct service *service_new(const struct config *cfg);

/* Tries a last save when the state is unsaved, then frees; accepts NULL. */
void service_free(struct service *svc);

/* Runs the save retries on base (borrowed: must outlive the service). Without
 * it an unsaved state waits for the next change that saves. Returns 0, or -1
 * when out of memory. */
int service_attach(struct service *svc, struct event_base *base)
    __attribute__((warn_unused_result));

/* Overrides the retry waits (defaults above): first_ms (at least 1), doubling
 * up to max_ms (at least first_ms). Takes effect from the next failure on. */
void service_set_retry_ms(struct service *svc, uint32_t first_ms, uint32_t max_ms);

/* True when the state file holds the current state, or no state file is
 * configured; false while a rollback that could not be saved waits for a
 * retry. */
bool service_persisted(const struct service *svc);

/* Reopens the audit log at state.audit_log (after rotation: the old file was
 * renamed, the next line goes to a new one). Returns 0, also when no audit
 * log is configured, or -1 with the reason logged and the old file kept. */
int service_reopen_audit_log(struct service *svc) __attribute__((warn_unused_result));

/* The split the workers read (borrowed, lives as long as the service). */
struct route_split *service_split(struct service *svc);

/* The current state (borrowed: valid until the next change). */
const struct state *service_state(const struct service *svc);

/* The recent events (borrowed). */
const struct events *service_events(const struct service *svc);

/* Called after every applied change, once the event is recorded and before
 * the split is published; e is borrowed for the call. One listener (the
 * control socket, to stream events); NULL removes it. */
typedef void (*service_event_cb)(const struct state_event *e, void *arg);
void service_on_event(struct service *svc, service_event_cb cb, void *arg);

/* Records an event that changes no state (a server went down, an operator
 * drained one): into the ring, the audit log and to the event listener, at
 * the current generation, with op "server". who and why are copied. */
void service_record(struct service *svc, const char *who, const char *why);

/* The fleet's replicator (control/redis_sync.c): called for every event,
 * applied or recorded, after the listener above; NULL removes it. */
void service_set_replicator(struct service *svc, service_event_cb cb, void *arg);

/* Takes s, a state another instance of the fleet applied, as this service's
 * (state_adopt()): routed by at once, persisted, recorded with op "sync". */
void service_adopt(struct service *svc, const struct state *s, const char *who, const char *why);

/* state_apply() on this service's state machine. */
int service_apply(struct service *svc, const struct state_change *c, struct state_error *err)
    __attribute__((warn_unused_result));

#endif
