/* status.h - the status of a running switchyard, as one JSON object: the
 * traffic state, both pools and their servers (admin state, health, in
 * flight), the traffic each saw over the detector's window, and the
 * detector's last verdict. `switchyardctl status` and GET /api/status
 * give the same object.
 */
#ifndef SY_CONTROL_STATUS_H
#define SY_CONTROL_STATUS_H

#include <stdint.h>

#include <jansson.h>

struct guard;
struct health_checker;
struct proxy;
struct redis_fleet;
struct redis_sync;
struct reloader;
struct rollout;
struct service;

/* Where the status comes from; all borrowed, living as long as the
 * process's control loop. */
struct status_sources {
    struct service *svc;
    struct reloader *reloader;
    const struct health_checker *health; /* NULL: no check results */
    const struct proxy *proxy;           /* NULL: no traffic figures */
    const struct guard *guard;           /* NULL: no verdict */
    struct rollout *rollout;             /* NULL: no rollout commands */
    struct redis_sync *sync;             /* NULL: no Redis configured; events reads it */
    const struct redis_fleet *fleet;     /* NULL: no Redis configured */
    int64_t started_s;                   /* window_now_s() at start */
};

/* {"ok":true,"state":...,"persisted":...,"pools":...,"detector":...,
 * "redis":... (with a fleet only)}; a
 * new object, or NULL when out of memory. */
json_t *status_reply(const struct status_sources *src);

/* The seconds of traffic the figures cover now: the detector's window, or
 * less while the process is younger than that. */
unsigned status_window_s(const struct status_sources *src, int64_t now_s);

#endif
