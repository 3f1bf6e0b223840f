/* route.h - which pool a request goes to.
 *
 * Every request gets a bucket 0..9999: a hash of its sticky key (cookie,
 * header, client address) or a fresh random draw. It goes to the candidate
 * pool iff bucket < candidate weight (basis points). A key's bucket never
 * changes, so raising the weight only ever moves users from stable to
 * candidate, never back.
 *
 * The split (stable colour + candidate weight) is one 32-bit atomic word so
 * that a worker reads both consistently with one relaxed load, and a change
 * reaches every worker on its next request without any lock.
 */
#ifndef SY_PROXY_ROUTE_H
#define SY_PROXY_ROUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/config.h"
#include "proxy/http1.h"

#define ROUTE_BUCKETS 10000u

/* The current split of one service: written by the control thread, read by
 * every worker. */
struct route_split {
    _Atomic uint32_t word; /* bit 31: stable colour; bits 0..13: candidate bp */
};

struct route_view {
    enum conf_colour stable;
    enum conf_colour candidate;
    uint32_t candidate_bp;
};

void route_split_init(struct route_split *rs, enum conf_colour stable, uint32_t candidate_bp);
void route_split_set(struct route_split *rs, enum conf_colour stable, uint32_t candidate_bp);
struct route_view route_split_get(const struct route_split *rs);

/* The instant flip: sets the candidate weight to 0 if stable is still the
 * stable colour and the candidate still gets traffic. Returns true when this
 * call made the change (safe from any thread: one compare-and-swap). */
bool route_split_drop_candidate(struct route_split *rs, enum conf_colour stable);

/* The bucket of a sticky key (any bytes). */
uint32_t route_bucket_of_key(const char *key, size_t len);

/* The bucket of a client address (the IP only: the port changes per connection). */
uint32_t route_bucket_of_addr(const struct sockaddr *sa);

/* A fresh random bucket from the worker's generator state (xorshift64*; state
 * must not be 0). */
uint32_t route_bucket_random(uint64_t *state);

/* The colour for a bucket under a split. */
static inline enum conf_colour route_colour_for(const struct route_view *v, uint32_t bucket)
{
    return bucket < v->candidate_bp ? v->candidate : v->stable;
}

/* Finds cookie name in a Cookie header value ("a=1; b=2"). On success sets
 * *val (borrowed, points into value) and *val_len and returns true. */
bool route_cookie_find(const char *value, size_t len, const char *name, const char **val,
                       size_t *val_len);

/* Length of a sticky cookie value the proxy makes up. 16 base64url
 * characters are 96 random bits: enough that two browsers never share one. */
#define ROUTE_TOKEN_LEN 16

/* The sticky cookie a response must set, if any. */
struct route_token {
    bool set;                    /* add Set-Cookie: <sticky_cookie>=<value> */
    char value[ROUTE_TOKEN_LEN]; /* base64url characters, not NUL-terminated */
};

/* Fills out with ROUTE_TOKEN_LEN random base64url characters from *rng. Not
 * secret: the cookie only places a user, and a user may pick any value. */
void route_token_draw(uint64_t *rng, char out[ROUTE_TOKEN_LEN]);

/* Picks the pool for a request: a trusted override header first (values
 * blue, green, stable, candidate), then the split over the request's bucket:
 * sticky cookie, else sticky header, else the client address when
 * r->sticky_client_addr, else a random draw from *rng.
 *
 * tok (may be NULL: never set a cookie) tells whether the response must set
 * the sticky cookie: when r->sticky_set_cookie and the request has neither
 * the cookie, nor the sticky header, nor an override. Its value then routes
 * the next requests to the pool this one got: with a random draw the
 * token's own bucket is the draw; when the address decided, the token is
 * drawn to fall in the same pool at the current weight (tok->set stays
 * false if a few draws do not find one: the address still keeps the user,
 * and the next request tries again). */
enum conf_colour route_pick(const struct conf_routing *r, const struct route_split *split,
                            const struct http1_request *req, const struct sockaddr *peer,
                            uint64_t *rng, struct route_token *tok);

#endif
