/* events.h - the recent state changes of one service, and the audit log.
 *
 * A bounded ring keeps copies of the last N events for `switchyardctl events`
 * and status replies; the optional audit log file gets every event as one
 * JSON line, appended. The ring never depends on the file: a failing disk
 * loses audit lines (reported once), never the in-memory history.
 */
#ifndef SY_CONTROL_EVENTS_H
#define SY_CONTROL_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "control/state.h"

struct events;

/* Called for each event, oldest first; e is borrowed for the call. Return 0
 * to go on, anything else to stop. */
typedef int (*events_each_cb)(const struct state_event *e, void *arg);

/* Returns a new ring holding the last capacity (>= 1) events, or NULL. */
struct events *events_new(size_t capacity);

/* Frees the ring and closes the audit log; accepts NULL. */
void events_free(struct events *ev);

/* Opens (or reopens, e.g. after log rotation) the audit log at path, created
 * with mode 0640 and always appended to. Returns 0, or -1 with the old log
 * (if any) kept. */
int events_open_log(struct events *ev, const char *path) __attribute__((warn_unused_result));

/* Copies e into the ring (dropping the oldest when full) and appends it to the
 * audit log when one is open. */
void events_push(struct events *ev, const struct state_event *e);

/* Number of events held (at most the capacity). */
size_t events_count(const struct events *ev);

/* Calls cb for each held event whose generation is above since_generation
 * (0: every one; server events carry the generation of the state they
 * happened under, 0 before the first change), oldest first. Returns how
 * many were passed to cb. */
size_t events_foreach(const struct events *ev, uint64_t since_generation, events_each_cb cb,
                      void *arg);

/* Returns a new JSON object for e: time, generation, who, op, why, from, to,
 * persisted (and note when not persisted); NULL when out of memory. */
json_t *events_to_json(const struct state_event *e);

#endif
