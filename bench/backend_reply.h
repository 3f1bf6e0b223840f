/* backend_reply.h - sy-backend's answers: prebuilt default answers, answer
 * heads, and the "switchyard\n" body pattern.
 *
 * A struct backend_reply is built once at start-up and then only read, by
 * every worker thread at once.
 */
#ifndef SY_BENCH_BACKEND_REPLY_H
#define SY_BENCH_BACKEND_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define BACKEND_REPLY_PATTERN "switchyard\n"
#define BACKEND_REPLY_PATTERN_LEN 11
#define BACKEND_REPLY_CHUNK_MAX 65536      /* longest pattern run one call adds */
#define BACKEND_REPLY_BODY_MAX (64u << 20) /* --body-bytes limit: the body is prebuilt */
#define BACKEND_REPLY_NAME_MAX 128         /* --name limit */

/* What an answer says about the connection. */
enum backend_reply_conn {
    BACKEND_REPLY_KEEP = 0, /* HTTP/1.1 keep-alive: no Connection header */
    BACKEND_REPLY_CLOSE,    /* "Connection: close" */
    BACKEND_REPLY_KEEP10,   /* HTTP/1.0 client that asked for keep-alive */
};
#define BACKEND_REPLY_CONNS 3

struct backend_reply;

/* Returns new prebuilt answers for a backend called name (borrowed, copied)
 * whose default body is "ok\n" when body_bytes < 0, else body_bytes bytes of
 * the pattern. NULL when out of memory or when name or body_bytes is not
 * acceptable (see backend_reply_name_ok and BACKEND_REPLY_BODY_MAX). */
struct backend_reply *backend_reply_new(const char *name, long long body_bytes)
    __attribute__((warn_unused_result));

void backend_reply_free(struct backend_reply *r);

/* True when name can go into a header and a log line as it is: 1 to
 * BACKEND_REPLY_NAME_MAX visible ASCII characters. */
bool backend_reply_name_ok(const char *name);

/* The backend's name (borrowed: valid as long as r). */
const char *backend_reply_name(const struct backend_reply *r);

/* Appends the default 200 answer; head_only leaves out the body (HEAD).
 * Returns 0 or -1 when out of memory. */
int backend_reply_default(const struct backend_reply *r, struct evbuffer *out,
                          enum backend_reply_conn conn, bool head_only)
    __attribute__((warn_unused_result));

/* Appends an answer head: status line, X-Backend, Content-Type when ctype is
 * not NULL, Content-Length when content_length >= 0, the Connection header
 * conn calls for, extra when not NULL (whole header lines, each ending in
 * CRLF), and the empty line. Returns 0 or -1. */
int backend_reply_head(const struct backend_reply *r, struct evbuffer *out, int status,
                       enum backend_reply_conn conn, const char *ctype, int64_t content_length,
                       const char *extra) __attribute__((warn_unused_result));

/* Appends a whole answer with body[0..len) (borrowed, copied) and its
 * Content-Length. Statuses that carry no body (204, 304) get neither; a
 * HEAD answer (head_only) gets the length without the body. Returns 0 or -1. */
int backend_reply_text(const struct backend_reply *r, struct evbuffer *out, int status,
                       enum backend_reply_conn conn, bool head_only, const char *ctype,
                       const char *body, size_t len) __attribute__((warn_unused_result));

/* False for the statuses whose answers never have a body: 1xx, 204, 304. */
bool backend_reply_status_has_body(int status);

/* Appends len (<= BACKEND_REPLY_CHUNK_MAX) bytes of the endless pattern
 * stream, starting at stream offset off, by reference to static memory (no
 * copy). Returns 0 or -1. */
int backend_reply_pattern_add(struct evbuffer *out, uint64_t off, size_t len)
    __attribute__((warn_unused_result));

#endif
