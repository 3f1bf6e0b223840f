/* backend_worker-t.h - the types of sy-backend's worker threads. */
#ifndef SY_BENCH_BACKEND_WORKER_T_H
#define SY_BENCH_BACKEND_WORKER_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/backend_fault.h"

struct backend_reply;
struct backend_conn;
struct event;
struct event_base;
struct evconnlistener;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* What every worker shares: built before the threads start, then read-only
 * (the fault state has its own lock). */
struct backend_shared {
    const struct backend_reply *reply;
    struct backend_fault_state *fault;
    struct backend_worker *workers; /* all of them, for /__stats */
    size_t nworkers;
    bool verbose;           /* one log line per answer */
    FILE *record;           /* --record: one line per request, line-buffered; NULL: off */
    struct ssl_ctx_st *tls; /* --tls-cert: every connection speaks TLS; NULL: plain */
};

/* Counters with a single writer (the owning worker) and any number of
 * readers: the writer needs no atomic read-modify-write, only a store that a
 * reader on another thread cannot see torn. */
struct backend_counters {
    _Atomic uint64_t accepted;        /* connections accepted */
    _Atomic uint64_t closed;          /* connections closed */
    _Atomic uint64_t answered;        /* requests answered */
    _Atomic uint64_t last_request_ms; /* CLOCK_REALTIME of the last request taken; 0: none */
    /* The first answer the fault mode touched under generation fault_gen:
     * first_fault_ms is stored before fault_gen (release), so a reader that
     * sees the generation it wants (acquire) also sees its time. */
    _Atomic uint64_t first_fault_ms;
    _Atomic uint64_t fault_gen; /* 0: no faulted answer yet */
};

struct backend_worker {
    unsigned id;
    struct backend_shared *shared;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *accept_pause; /* re-enables the listener after EMFILE and the like */
    pthread_t thread;
    bool started; /* thread is running and must be joined */

    struct backend_fault fault; /* this thread's copy of the shared fault mode */
    uint64_t fault_gen;         /* generation of that copy */
    uint64_t rng;               /* xorshift state for fault draws */

    struct backend_conn *conns; /* live connections, for shutdown */
    struct backend_conn *spare; /* freed connections kept for reuse */
    size_t nspare;

    struct backend_counters counters;
};

#endif
