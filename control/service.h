/* service.h - one service: its traffic state, where that state is kept, its
 * event history, and the split the workers read.
 *
 * service_new() decides the state a service starts from: the state file when
 * one is configured and readable (it wins over routing.candidate_percent, so
 * that a rollback or a weight set at run time survives a restart), else the
 * config. Every later change goes through service_apply(), i.e. state_apply()
 * with hooks that persist to the state file, record the event and publish
 * the new split to the workers.
 */
#ifndef SY_CONTROL_SERVICE_H
#define SY_CONTROL_SERVICE_H

#include "conf/config.h"
#include "control/events.h"
#include "control/state.h"
#include "proxy/route.h"

#define SERVICE_EVENTS_KEPT 256 /* events kept in memory */

struct service;

/* Returns a new service for cfg (borrowed: must outlive the service), or
 * NULL when out of memory. A state file that cannot be read is logged as an
 * error and the config is used: the proxy still starts. */
struct service *service_new(const struct config *cfg);
void service_free(struct service *svc);

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

/* state_apply() on this service's state machine. */
int service_apply(struct service *svc, const struct state_change *c, struct state_error *err)
    __attribute__((warn_unused_result));

#endif
