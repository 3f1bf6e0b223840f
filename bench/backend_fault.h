/* backend_fault.h - sy-backend's fault mode, shared by every worker thread.
 *
 * One writer at a time (the worker that serves POST /__fault) replaces the
 * whole mode under a mutex and bumps a generation. Readers keep their own
 * copy and compare generations on each request: the request path costs one
 * atomic load and takes the mutex only after a change.
 */
#ifndef SY_BENCH_BACKEND_FAULT_H
#define SY_BENCH_BACKEND_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BACKEND_FAULT_LATENCY_MAX_MS 3600000u /* one hour */

/* A fault mode: a plain value, copied freely. */
struct backend_fault {
    double fail_rate;    /* 0..1: share of requests answered with fail_status */
    int fail_status;     /* 200..599, default 500 */
    uint32_t latency_ms; /* delay before each answer */
    double reset_rate;   /* 0..1: share of requests answered by a TCP reset */
    bool hang;           /* read requests, never answer them */
    int health_status;   /* status of GET /healthz, default 200 */
};

struct backend_fault_state;

/* Fills m with the defaults: no faults, fail_status 500, health_status 200. */
void backend_fault_default(struct backend_fault *m);

/* Checks every field's range. Returns 0, or -1 with *why set to a static
 * message naming the field. */
int backend_fault_check(const struct backend_fault *m, const char **why)
    __attribute__((warn_unused_result));

/* Returns a new state holding initial (borrowed, copied) as both the current
 * mode and the one DELETE /__fault restores; NULL when out of memory. */
struct backend_fault_state *backend_fault_state_new(const struct backend_fault *initial)
    __attribute__((warn_unused_result));

void backend_fault_state_free(struct backend_fault_state *s);

/* Refreshes *copy when the shared mode changed since *gen was taken. The
 * common case is one atomic load and no lock. */
void backend_fault_state_sync(struct backend_fault_state *s, struct backend_fault *copy,
                              uint64_t *gen);

/* The generation of the shared mode: it moves on each POST or DELETE of
 * /__fault, whether or not the mode differs. */
uint64_t backend_fault_state_gen(struct backend_fault_state *s);

/* Applies a JSON object (json[0..len), borrowed) whose keys are any subset of
 * the backend_fault fields. Nothing changes unless every key is known and in
 * range. Returns 0 with the resulting mode in *out, or -1 with a message in
 * err (always NUL-terminated). */
int backend_fault_state_apply_json(struct backend_fault_state *s, const char *json, size_t len,
                                   struct backend_fault *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Puts back the mode the state was created with; *out receives it. */
void backend_fault_state_restore(struct backend_fault_state *s, struct backend_fault *out);

/* Returns the mode as a new NUL-terminated JSON object (caller frees with
 * free()), or NULL when out of memory. */
char *backend_fault_to_json(const struct backend_fault *m) __attribute__((warn_unused_result));

#endif
