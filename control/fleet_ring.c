/* fleet_ring.c - per-second deltas of the fleet's published totals. */
#include "control/fleet_ring.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One second of the fleet's outcomes. */
struct fleet_slot {
    int64_t sec; /* the second it counts; -1 when never used */
    struct window_sum sums[CONF_COLOURS];
};

/* One instance's requests of one second, for its rate. */
struct fleet_recent {
    int64_t sec; /* -1 when never used */
    uint64_t requests[CONF_COLOURS];
};

struct fleet_peer {
    char id[FLEET_ID_MAX];
    int64_t started_ms;
    uint64_t seq;
    int64_t first_s;   /* the second it was first fed: its deltas begin after it */
    int64_t seen_ms;   /* when it was last fed */
    int64_t report_ms; /* when it was last fed a new publication */
    struct window_sum last[CONF_COLOURS];
    struct fleet_recent recent[FLEET_RATE_S];
};

struct fleet_ring {
    struct fleet_slot slots[FLEET_RING_SLOTS];
    struct fleet_peer *peers[FLEET_PEERS_MAX];
    size_t npeers;
    struct window_sum delta; /* scratch: too big for a small stack */
};

struct fleet_ring *fleet_ring_new(void)
{
    struct fleet_ring *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    for (size_t i = 0; i < FLEET_RING_SLOTS; i++)
        r->slots[i].sec = -1;
    return r;
}

void fleet_ring_free(struct fleet_ring *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->npeers; i++)
        free(r->peers[i]);
    free(r);
}

/* The slot of second sec, emptied first when it last held an older one. */
static struct fleet_slot *slot_for(struct fleet_ring *r, int64_t sec)
{
    struct fleet_slot *s = &r->slots[sec % FLEET_RING_SLOTS];

    if (s->sec != sec) {
        for (int c = 0; c < CONF_COLOURS; c++)
            window_sum_clear(&s->sums[c]);
        s->sec = sec;
    }
    return s;
}

static struct fleet_peer *peer_find(const struct fleet_ring *r, const char *id)
{
    for (size_t i = 0; i < r->npeers; i++)
        if (strcmp(r->peers[i]->id, id) == 0)
            return r->peers[i];
    return NULL;
}

/* A new peer holding totals as its last (its first sighting), or NULL. */
static struct fleet_peer *peer_add(struct fleet_ring *r, int64_t now_ms, const char *id,
                                   int64_t started_ms, uint64_t seq,
                                   const struct window_sum totals[CONF_COLOURS])
{
    struct fleet_peer *p;

    if (r->npeers == FLEET_PEERS_MAX || (p = calloc(1, sizeof(*p))) == NULL)
        return NULL;
    memcpy(p->id, id, strlen(id) + 1);
    p->started_ms = started_ms;
    p->seq = seq;
    p->first_s = now_ms / 1000;
    p->seen_ms = now_ms;
    p->report_ms = now_ms;
    memcpy(p->last, totals, sizeof(p->last));
    for (size_t i = 0; i < FLEET_RATE_S; i++)
        p->recent[i].sec = -1;
    r->peers[r->npeers++] = p;
    return p;
}

/* True when some counter of cur is below last's: totals only grow while a
 * process lives, so the instance restarted (with the same started_ms only
 * if its clock went back). */
static bool went_backwards(const struct window_sum *cur, const struct window_sum *last)
{
    return cur->requests < last->requests || cur->s1xx < last->s1xx || cur->s2xx < last->s2xx ||
           cur->s3xx < last->s3xx || cur->s4xx < last->s4xx || cur->s5xx < last->s5xx ||
           cur->connect_errors < last->connect_errors || cur->timeouts < last->timeouts ||
           cur->resets < last->resets || cur->errors < last->errors ||
           cur->latency.total < last->latency.total;
}

static bool restarted(const struct fleet_peer *p, int64_t started_ms,
                      const struct window_sum totals[CONF_COLOURS])
{
    if (p->started_ms != started_ms)
        return true;
    for (int c = 0; c < CONF_COLOURS; c++)
        if (went_backwards(&totals[c], &p->last[c]))
            return true;
    return false;
}

static void recent_add(struct fleet_peer *p, int64_t sec, enum conf_colour c, uint64_t requests)
{
    struct fleet_recent *e = &p->recent[sec % FLEET_RATE_S];

    if (e->sec != sec) {
        memset(e->requests, 0, sizeof(e->requests));
        e->sec = sec;
    }
    e->requests[c] += requests;
}

/* Adds what p's totals grew by (all of them after a restart) to second
 * sec, and keeps them as p's last. */
static void count_delta(struct fleet_ring *r, struct fleet_peer *p, int64_t sec, bool restart,
                        const struct window_sum totals[CONF_COLOURS])
{
    struct fleet_slot *s = slot_for(r, sec);

    for (int c = 0; c < CONF_COLOURS; c++) {
        r->delta = totals[c];
        if (!restart)
            window_sum_subtract(&r->delta, &p->last[c]);
        window_sum_merge(&s->sums[c], &r->delta);
        recent_add(p, sec, (enum conf_colour)c, r->delta.requests);
        p->last[c] = totals[c];
    }
}

int fleet_ring_feed(struct fleet_ring *r, int64_t now_ms, const char *instance, int64_t started_ms,
                    uint64_t seq, const struct window_sum totals[CONF_COLOURS])
{
    size_t len = strlen(instance);
    struct fleet_peer *p;
    bool restart;

    if (len == 0 || len >= FLEET_ID_MAX || now_ms < 0)
        return -1;
    p = peer_find(r, instance);
    if (p == NULL)
        return peer_add(r, now_ms, instance, started_ms, seq, totals) != NULL ? 0 : -1;
    restart = restarted(p, started_ms, totals);
    count_delta(r, p, now_ms / 1000, restart, totals);
    if (restart || seq != p->seq)
        p->report_ms = now_ms;
    p->started_ms = started_ms;
    p->seq = seq;
    p->seen_ms = now_ms;
    return 0;
}

size_t fleet_ring_expire(struct fleet_ring *r, int64_t now_ms)
{
    size_t forgotten = 0;

    for (size_t i = 0; i < r->npeers;) {
        if (now_ms - r->peers[i]->seen_ms < FLEET_FORGET_MS) {
            i++;
            continue;
        }
        free(r->peers[i]);
        r->peers[i] = r->peers[--r->npeers]; /* order does not matter */
        forgotten++;
    }
    return forgotten;
}

void fleet_ring_sum(const struct fleet_ring *r, enum conf_colour c, int64_t now_s, unsigned seconds,
                    struct window_sum *out)
{
    if (seconds > FLEET_RING_SLOTS)
        seconds = FLEET_RING_SLOTS;
    for (unsigned i = 0; i < seconds && now_s - (int64_t)i >= 0; i++) {
        int64_t sec = now_s - (int64_t)i;
        const struct fleet_slot *s = &r->slots[sec % FLEET_RING_SLOTS];

        if (s->sec == sec)
            window_sum_merge(out, &s->sums[c]);
    }
}

size_t fleet_ring_count(const struct fleet_ring *r)
{
    return r->npeers;
}

/* p's requests/s of pool c over the last FLEET_RATE_S seconds, or over the
 * seconds since its first sighting when fewer. */
static double peer_rps(const struct fleet_peer *p, enum conf_colour c, int64_t now_s)
{
    int64_t span = now_s - p->first_s;
    uint64_t requests = 0;

    for (size_t i = 0; i < FLEET_RATE_S; i++) {
        const struct fleet_recent *e = &p->recent[i];

        if (e->sec >= 0 && e->sec > now_s - FLEET_RATE_S && e->sec <= now_s)
            requests += e->requests[c];
    }
    if (span > FLEET_RATE_S)
        span = FLEET_RATE_S;
    return span < 1 ? 0.0 : (double)requests / (double)span;
}

void fleet_ring_instance(const struct fleet_ring *r, size_t i, int64_t now_ms,
                         struct fleet_instance *out)
{
    const struct fleet_peer *p = r->peers[i];

    out->id = p->id;
    out->started_ms = p->started_ms;
    out->seq = p->seq;
    for (int c = 0; c < CONF_COLOURS; c++)
        out->rps[c] = peer_rps(p, (enum conf_colour)c, now_ms / 1000);
    out->report_age_ms = now_ms - p->report_ms;
}
