/* reload.h - re-reading the config of a running switchyard (SIGHUP, or the
 * control socket's `reload`).
 *
 * The new file is loaded and validated exactly as `switchyard -t` would,
 * away from the workers. Then the changes that a running process cannot make
 * are refused, each with the key and why: listeners, worker count, the
 * control socket's path, the admin HTTP listener, the state, audit and
 * access log files, Redis. Only a config that passes both is handed to the workers;
 * anything else leaves the running config exactly as it was.
 */
#ifndef SY_CONTROL_RELOAD_H
#define SY_CONTROL_RELOAD_H

#include <stdbool.h>

#include "conf/config.h"

struct proxy;
struct service;
struct snapshot;
struct state;

/* Appends to errs one message per change from running to next that needs a
 * restart. Returns how many. */
size_t reload_check(const struct config *running, const struct config *next,
                    struct conf_errors *errs);

/* Appends to notes what a reload from running to next does that an operator
 * might not expect (live state wins over routing.*). */
void reload_notes(const struct config *running, const struct config *next, const struct state *live,
                  struct conf_errors *notes);

struct reloader;

/* What a reload re-reads and whom it tells. path is the config file (NULL:
 * the process runs on the embedded config, and there is nothing to re-read);
 * fixed_workers: -T was given, so the file's "workers" does not count. snap
 * is the running config (referenced); proxy and svc are borrowed. */
struct reloader *reloader_new(const char *path, bool fixed_workers, struct snapshot *snap,
                              struct proxy *proxy, struct service *svc);
void reloader_free(struct reloader *r);

/* The running config and its servers' states (borrowed: valid until the
 * next reload). */
struct snapshot *reloader_current(const struct reloader *r);

/* Called after each applied reload with the new running config (borrowed:
 * take a reference to keep it). */
typedef void (*reloader_applied_cb)(struct snapshot *snap, void *arg);

/* Sets the one callback told of applied reloads (NULL: none). */
void reloader_on_applied(struct reloader *r, reloader_applied_cb cb, void *arg);

/* How many reloads were applied since start. */
unsigned reloader_count(const struct reloader *r);

/* Re-reads the file and, when it is valid and applicable, switches every
 * worker to it and reopens the access and audit logs (log rotation). Returns 0 (notes may hold
 * remarks), or -1 with every problem in errs and nothing changed. Everything is logged too. */
int reloader_run(struct reloader *r, struct conf_errors *errs, struct conf_errors *notes);

#endif
