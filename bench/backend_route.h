/* backend_route.h - what sy-backend does with a request: which path it hit,
 * what to do with its body, and the answer once the body is in.
 *
 * backend_route_classify looks only at the head; backend_route_answer builds
 * the answer from the head's facts plus whatever the connection gathered
 * from the body. Neither does any I/O.
 */
#ifndef SY_BENCH_BACKEND_ROUTE_H
#define SY_BENCH_BACKEND_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/backend_reply.h"
#include "bench/backend_worker-t.h"
#include "proxy/http1.h"

struct evbuffer;

#define BACKEND_ROUTE_ECHO_MAX (1u << 20)    /* /__echo bodies, else 413 */
#define BACKEND_ROUTE_FAULT_MAX (64u << 10)  /* /__fault bodies, else 413 */
#define BACKEND_ROUTE_BYTES_MAX (1ull << 40) /* /__bytes?n= limit */
#define BACKEND_ROUTE_SHA256_LEN 32

enum backend_route_id {
    BACKEND_ROUTE_DEFAULT = 0,
    BACKEND_ROUTE_HEALTHZ,
    BACKEND_ROUTE_FAULT,
    BACKEND_ROUTE_STATS,
    BACKEND_ROUTE_SINK,
    BACKEND_ROUTE_BYTES,
    BACKEND_ROUTE_ECHO,
    BACKEND_ROUTE_CLOSE,
    BACKEND_ROUTE_STATUS,
    BACKEND_ROUTE_UPGRADE,
    BACKEND_ROUTE_ERROR, /* a well-formed request this backend refuses (bad query, method) */
};

/* What the connection does with the request body while it reads it. */
enum backend_route_body {
    BACKEND_BODY_DISCARD = 0,
    BACKEND_BODY_HASH,    /* SHA-256 as it streams by (/__sink) */
    BACKEND_BODY_COLLECT, /* kept, up to collect_max bytes, else 413 */
};

/* What comes after the answer. */
enum backend_route_next {
    BACKEND_NEXT_KEEP = 0, /* the next request (or close, if the answer said so) */
    BACKEND_NEXT_CLOSE,    /* close once the answer is sent */
    BACKEND_NEXT_STREAM,   /* stream stream_len pattern bytes (/__bytes) */
    BACKEND_NEXT_TUNNEL,   /* echo raw bytes (after 101) */
};

/* The facts taken from a request head. A plain value. */
struct backend_route {
    enum backend_route_id id;
    enum backend_route_body body_use;
    size_t collect_max; /* with BACKEND_BODY_COLLECT */
    bool control;       /* /__fault and /__stats: never faulted */
    bool fail_exempt;   /* /healthz answers health_status, never fail_status */
    int status;         /* STATUS: the status asked for; ERROR: 400 or 405 */
    const char *error;  /* ERROR: why (static) */
    const char *allow;  /* ERROR 405: the methods the path takes (static) */
    uint64_t bytes_n;   /* BYTES */
    bool bytes_chunked; /* BYTES */
    bool bytes_close;   /* BYTES: close the connection after the body */
};

/* One request on its way to an answer. The connection fills the inputs;
 * backend_route_answer fills the outputs. */
struct backend_exchange {
    /* inputs */
    struct backend_worker *w; /* borrowed: the worker serving the request */
    struct backend_route route;
    enum http1_method method;
    int minor_version;
    enum backend_reply_conn conn; /* the Connection header the answer carries */
    bool head_only;               /* HEAD: no body in the answer */
    bool fail;                    /* the fault draw says: answer fail_status */
    struct evbuffer *collect;     /* borrowed: ECHO head+body, FAULT body, UPGRADE value */
    size_t head_len;              /* ECHO: bytes of head at the start of collect */
    uint64_t body_bytes;          /* request body bytes read */
    unsigned char sha256[BACKEND_ROUTE_SHA256_LEN]; /* SINK: digest of the body */
    /* outputs */
    int status;          /* status of the answer, for logs */
    uint64_t stream_len; /* BACKEND_NEXT_STREAM: pattern bytes to send */
    bool stream_chunked; /* BACKEND_NEXT_STREAM: in chunked framing */
};

/* Fills *out from a parsed request head (borrowed). */
void backend_route_classify(const struct http1_request *req, struct backend_route *out);

/* Appends the answer to x to out and returns what comes next (an enum
 * backend_route_next), or -1 when out of memory. Drains x->collect. */
int backend_route_answer(struct backend_exchange *x, struct evbuffer *out)
    __attribute__((warn_unused_result));

/* A short name for logs ("default", "sink", ...). */
const char *backend_route_name(enum backend_route_id id);

#endif
