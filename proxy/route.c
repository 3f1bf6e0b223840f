/* route.c - buckets, the atomic split, and cookie lookup. */
#include "proxy/route.h"

#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#define SPLIT_STABLE_BIT 0x80000000u
#define SPLIT_BP_MASK 0x3fffu

static uint32_t split_pack(enum conf_colour stable, uint32_t candidate_bp)
{
    if (candidate_bp > CONF_WEIGHT_BP_MAX)
        candidate_bp = CONF_WEIGHT_BP_MAX;
    return (stable == CONF_GREEN ? SPLIT_STABLE_BIT : 0) | candidate_bp;
}

void route_split_init(struct route_split *rs, enum conf_colour stable, uint32_t candidate_bp)
{
    atomic_init(&rs->word, split_pack(stable, candidate_bp));
}

void route_split_set(struct route_split *rs, enum conf_colour stable, uint32_t candidate_bp)
{
    atomic_store_explicit(&rs->word, split_pack(stable, candidate_bp), memory_order_release);
}

bool route_split_drop_candidate(struct route_split *rs, enum conf_colour stable)
{
    uint32_t w = atomic_load_explicit(&rs->word, memory_order_acquire);
    uint32_t dropped = split_pack(stable, 0);

    /* A failed swap reloads w: retry while the same stable still sends the
     * candidate something (a concurrent weight change), give up otherwise. */
    while ((w & ~SPLIT_BP_MASK) == dropped && (w & SPLIT_BP_MASK) != 0) {
        if (atomic_compare_exchange_weak_explicit(&rs->word, &w, dropped, memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
    return false;
}

struct route_view route_split_get(const struct route_split *rs)
{
    uint32_t w = atomic_load_explicit(&rs->word, memory_order_acquire);
    struct route_view v;

    v.stable = (w & SPLIT_STABLE_BIT) ? CONF_GREEN : CONF_BLUE;
    v.candidate = v.stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE;
    v.candidate_bp = w & SPLIT_BP_MASK;
    return v;
}

/* FNV-1a over the bytes, then the murmur3 finaliser: FNV alone mixes the last
 * bytes poorly, and session ids often differ only there. */
static uint64_t hash_bytes(const unsigned char *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint32_t route_bucket_of_key(const char *key, size_t len)
{
    return (uint32_t)(hash_bytes((const unsigned char *)key, len) % ROUTE_BUCKETS);
}

uint32_t route_bucket_of_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return route_bucket_of_key((const char *)&in->sin_addr, sizeof(in->sin_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return route_bucket_of_key((const char *)&in6->sin6_addr, sizeof(in6->sin6_addr));
    }
    return 0;
}

/* One step of xorshift64*; state must not be 0. The high bits of the result
 * are the good ones. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint32_t route_bucket_random(uint64_t *state)
{
    return (uint32_t)((rng_next(state) >> 32) % ROUTE_BUCKETS);
}

void route_token_draw(uint64_t *rng, char out[ROUTE_TOKEN_LEN])
{
    static const char b64url[64] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /* Eight characters from the high 48 bits of each of two draws. */
    for (size_t half = 0; half < 2; half++) {
        uint64_t x = rng_next(rng);
        for (size_t i = 0; i < ROUTE_TOKEN_LEN / 2; i++)
            out[half * (ROUTE_TOKEN_LEN / 2) + i] = b64url[(x >> (58 - 6 * i)) & 63];
    }
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool route_cookie_find(const char *value, size_t len, const char *name, const char **val,
                       size_t *val_len)
{
    size_t name_len = strlen(name);
    size_t i = 0;

    while (i < len) {
        while (i < len && (is_ows(value[i]) || value[i] == ';'))
            i++;
        size_t start = i;
        while (i < len && value[i] != ';')
            i++;
        /* value[start..i) is one "name=value" pair. */
        size_t pair_len = i - start;
        if (pair_len > name_len && value[start + name_len] == '=' &&
            memcmp(value + start, name, name_len) == 0) {
            const char *v = value + start + name_len + 1;
            size_t vl = pair_len - name_len - 1;
            while (vl > 0 && is_ows(v[vl - 1]))
                vl--;
            if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
                v++;
                vl -= 2;
            }
            *val = v;
            *val_len = vl;
            return true;
        }
    }
    return false;
}

/* The colour named by a trusted override header, or -1. */
static int override_colour(const struct conf_routing *r, const struct http1_request *req,
                           const struct sockaddr *peer, const struct route_view *v)
{
    const struct http1_header *h;
    bool trusted = false;

    if (r->override_header == NULL)
        return -1;
    h = http1_header_find(req->headers, req->num_headers, r->override_header);
    if (h == NULL)
        return -1;
    for (size_t i = 0; i < r->noverride_allow && !trusted; i++)
        trusted = conf_cidr_match(&r->override_allow[i], peer);
    if (!trusted)
        return -1;
    if (h->value_len == 4 && strncasecmp(h->value, "blue", 4) == 0)
        return CONF_BLUE;
    if (h->value_len == 5 && strncasecmp(h->value, "green", 5) == 0)
        return CONF_GREEN;
    if (h->value_len == 6 && strncasecmp(h->value, "stable", 6) == 0)
        return (int)v->stable;
    if (h->value_len == 9 && strncasecmp(h->value, "candidate", 9) == 0)
        return (int)v->candidate;
    return -1;
}

/* The value of the request's sticky cookie, when it has one. */
static bool request_cookie(const struct conf_routing *r, const struct http1_request *req,
                           const char **val, size_t *len)
{
    if (r->sticky_cookie == NULL)
        return false;
    for (size_t i = 0; i < req->num_headers; i++) {
        if (http1_header_is(&req->headers[i], "cookie") &&
            route_cookie_find(req->headers[i].value, req->headers[i].value_len, r->sticky_cookie,
                              val, len))
            return true;
    }
    return false;
}

static const struct http1_header *request_sticky_header(const struct conf_routing *r,
                                                        const struct http1_request *req)
{
    if (r->sticky_header == NULL)
        return NULL;
    return http1_header_find(req->headers, req->num_headers, r->sticky_header);
}

/* A few draws find a token in any pool that has at least a few percent of
 * the buckets; a pool of 0.01 % would need thousands, which the hot path
 * does not spend. */
#define TOKEN_TRIES 64

/* Draws a token whose bucket goes to the same pool as bucket under v. Once
 * the user carries it, raising the weight moves them only from stable to
 * the candidate, as the address would have. */
static bool token_for_pool(const struct route_view *v, uint32_t bucket, uint64_t *rng, char *tok)
{
    enum conf_colour want = route_colour_for(v, bucket);

    for (int i = 0; i < TOKEN_TRIES; i++) {
        route_token_draw(rng, tok);
        if (route_colour_for(v, route_bucket_of_key(tok, ROUTE_TOKEN_LEN)) == want)
            return true;
    }
    return false;
}

/* A request with neither the cookie nor the header, whose response will set
 * the cookie. When the address decides, the token is drawn to agree with
 * it; otherwise the token's own bucket is the random draw (no search). */
static enum conf_colour pick_setting_cookie(const struct conf_routing *r,
                                            const struct route_view *v, const struct sockaddr *peer,
                                            uint64_t *rng, struct route_token *tok)
{
    uint32_t bucket;

    if (r->sticky_client_addr) {
        bucket = route_bucket_of_addr(peer);
        tok->set = token_for_pool(v, bucket, rng, tok->value);
        return route_colour_for(v, bucket);
    }
    route_token_draw(rng, tok->value);
    tok->set = true;
    return route_colour_for(v, route_bucket_of_key(tok->value, ROUTE_TOKEN_LEN));
}

/* At 0 and 100 % every bucket gives the same answer: no need to hash. */
static bool split_is_uniform(const struct route_view *v)
{
    return v->candidate_bp == 0 || v->candidate_bp >= ROUTE_BUCKETS;
}

static enum conf_colour colour_of_key(const struct route_view *v, const char *key, size_t len)
{
    return route_colour_for(v, split_is_uniform(v) ? 0 : route_bucket_of_key(key, len));
}

enum conf_colour route_pick(const struct conf_routing *r, const struct route_split *split,
                            const struct http1_request *req, const struct sockaddr *peer,
                            uint64_t *rng, struct route_token *tok)
{
    struct route_view v = route_split_get(split);
    int forced = override_colour(r, req, peer, &v);
    const struct http1_header *h;
    const char *key;
    size_t len;

    if (tok != NULL)
        tok->set = false;
    if (forced >= 0)
        return (enum conf_colour)forced;
    if (request_cookie(r, req, &key, &len))
        return colour_of_key(&v, key, len);
    /* The header is a key the operator chose (it may name a user on every
     * device): it keeps deciding, and no cookie competes with it. */
    if ((h = request_sticky_header(r, req)) != NULL)
        return colour_of_key(&v, h->value, h->value_len);
    if (tok != NULL && r->sticky_set_cookie && r->sticky_cookie != NULL)
        return pick_setting_cookie(r, &v, peer, rng, tok);
    if (split_is_uniform(&v))
        return route_colour_for(&v, 0);
    return route_colour_for(&v, r->sticky_client_addr ? route_bucket_of_addr(peer)
                                                      : route_bucket_random(rng));
}
