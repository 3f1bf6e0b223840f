/* backend_worker.h - sy-backend's worker threads: one event_base and one
 * listening socket each, connections spread by the kernel (SO_REUSEPORT).
 */
#ifndef SY_BENCH_BACKEND_WORKER_H
#define SY_BENCH_BACKEND_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/backend_worker-t.h"
#include "conf/addr.h"

/* Totals over every worker, as /__stats shows them. */
struct backend_stats {
    uint64_t connections;        /* accepted since start */
    uint64_t requests;           /* answered since start */
    uint64_t active_connections; /* open now */
    uint64_t last_request_ms;    /* CLOCK_REALTIME of the last request taken; 0: none */
    uint64_t first_fault_ms;     /* of the first faulted answer under the current mode; 0: none */
};

/* Sets up w (zeroed by the caller): its event_base and a listening socket on
 * *addr. reuseport lets several workers listen on the same address. When the
 * port in *addr is 0, it is replaced by the port the kernel chose. shared is
 * borrowed and must outlive w. Returns 0, or -1 with a message logged. */
int backend_worker_init(struct backend_worker *w, struct backend_shared *shared, unsigned id,
                        struct conf_addr *addr, bool reuseport) __attribute__((warn_unused_result));

/* Closes every connection, the listener and the base. Accepts a worker that
 * backend_worker_init failed on or never saw (all zero). */
void backend_worker_clear(struct backend_worker *w);

/* Runs w's loop on a new thread. Returns 0 or -1. */
int backend_worker_start(struct backend_worker *w) __attribute__((warn_unused_result));

/* Runs w's loop on the calling thread until backend_worker_stop. Returns 0,
 * or -1 when the loop failed. */
int backend_worker_run(struct backend_worker *w) __attribute__((warn_unused_result));

/* Asks w's loop to return; safe from any thread. */
void backend_worker_stop(struct backend_worker *w);

/* Waits for a thread started by backend_worker_start. */
void backend_worker_join(struct backend_worker *w);

/* Sums the counters of every worker in shared. The figures are a moment's
 * picture: other threads keep counting while it adds. */
void backend_stats_sum(const struct backend_shared *shared, struct backend_stats *out);

/* CLOCK_REALTIME in milliseconds: comparable with other processes' clocks. */
uint64_t backend_clock_ms(void);

/* Notes the time of a request w took that the fault mode applies to (the
 * control paths are left out, so that polling /__stats moves nothing). Only
 * w's thread may call it. */
static inline void backend_worker_note_request(struct backend_worker *w)
{
    atomic_store_explicit(&w->counters.last_request_ms, backend_clock_ms(), memory_order_relaxed);
}

/* Notes a request that the fault mode of generation gen touched, when its
 * fate is sealed: answered with fail_status or late, reset, or left hanging.
 * The first one per generation keeps its time. Only w's thread may call it. */
void backend_worker_note_fault(struct backend_worker *w, uint64_t gen);

/* Bumps a counter of the worker that owns it (only that thread may). */
static inline void backend_counter_bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

#endif
