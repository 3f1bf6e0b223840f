/* redis_fleet.c - publishes this instance's totals every second and feeds
 * the fleet's into a fleet_ring. */
#include "control/redis_fleet.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/log.h"
#include "control/redis_conn.h"
#include "control/redis_scripts.h"
#include "control/redis_signals.h"

_Static_assert(FLEET_ID_MAX == REDIS_INSTANCE_MAX, "the ring follows any instance id");

struct redis_fleet {
    struct event_base *base;
    struct redis_conn *conn;
    fleet_totals_fn totals;
    void *totals_arg;
    struct event *tick;
    char ns[REDIS_KEY_MAX];
    char instance[REDIS_INSTANCE_MAX];
    char key_signals[REDIS_KEY_MAX]; /* ours */
    char key_instances[REDIS_KEY_MAX];
    int64_t started_ms;
    uint64_t seq; /* publications made */

    /* One round at a time: the tick skips while one is under way. */
    unsigned pending;   /* commands of this round not yet answered */
    int64_t read_ok_ms; /* monotonic: the last round that read the fleet; 0 = never */
    bool round_bad;     /* a command of this round failed */
    bool failing;       /* rounds fail (logged once until one succeeds) */
    char last_error[160];

    /* The round's MGET: who was asked, in order. */
    size_t nasked;
    char asked[FLEET_PEERS_MAX][REDIS_INSTANCE_MAX];
    char asked_keys[FLEET_PEERS_MAX][REDIS_KEY_MAX];
    const char *mget_argv[FLEET_PEERS_MAX + 1];

    /* Instances whose publication did not decode, logged once each until
     * one of theirs decodes again. */
    size_t nbad;
    char bad[FLEET_PEERS_MAX][REDIS_INSTANCE_MAX];

    struct window_sum sums[CONF_COLOURS]; /* scratch: ours to publish, theirs decoded */
    struct fleet_ring *ring;
};

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* This process's start, the same for every fleet object it makes: a fleet
 * made again (a reload) must not look like a restarted instance, whose
 * whole totals would count as one second's traffic. */
static int64_t process_started_ms(void)
{
    static int64_t started;

    if (started == 0)
        started = clock_ms(CLOCK_REALTIME);
    return started;
}

/* ------------------------------------------------------------------------ */
/* Round bookkeeping */

/* Notes a failure of this round; logged once until a round succeeds. */
static void round_failed(struct redis_fleet *f, const char *what, const char *why)
{
    snprintf(f->last_error, sizeof(f->last_error), "%s: %s", what, why);
    f->round_bad = true;
    if (!f->failing)
        log_warn("redis fleet: %s; the fleet's signals are stale until it works again",
                 f->last_error);
    f->failing = true;
}

/* One command of the round answered (after its failure, if any, was
 * noted); the last one says whether the round as a whole worked. */
static void command_done(struct redis_fleet *f)
{
    if (--f->pending > 0 || f->round_bad || !f->failing)
        return;
    log_info("redis fleet: publishing and reading the fleet's signals again");
    f->failing = false;
}

/* Sends one command of the round. */
static int send_argv(struct redis_fleet *f, redis_reply_cb cb, int argc, const char **argv)
{
    if (redis_conn_command(f->conn, REDIS_FLEET_TIMEOUT_MS, cb, f, argc, argv, NULL) < 0)
        return -1;
    f->pending++;
    return 0;
}

/* Reads a reply: NULL when it is fine, else why not (borrowed). */
static const char *reply_error(const redisReply *reply, const char *err, int want_type)
{
    if (err != NULL)
        return err;
    if (reply->type == REDIS_REPLY_ERROR)
        return reply->str;
    return reply->type == want_type ? NULL : "unexpected reply type";
}

/* ------------------------------------------------------------------------ */
/* Decoding the fleet's publications */

static bool bad_known(const struct redis_fleet *f, const char *id, size_t *at)
{
    for (size_t i = 0; i < f->nbad; i++)
        if (strcmp(f->bad[i], id) == 0) {
            *at = i;
            return true;
        }
    return false;
}

/* Logs id's bad publication, once until it publishes a good one. */
static void bad_note(struct redis_fleet *f, const char *id, const char *why)
{
    size_t at;

    if (bad_known(f, id, &at) || f->nbad == FLEET_PEERS_MAX)
        return;
    log_warn("redis fleet: skipping instance %s: its signals do not decode: %s", id, why);
    memcpy(f->bad[f->nbad++], id, strlen(id) + 1);
}

static void bad_clear(struct redis_fleet *f, const char *id)
{
    size_t at;

    if (!bad_known(f, id, &at))
        return;
    memmove(f->bad[at], f->bad[--f->nbad], sizeof(f->bad[at]));
}

/* Decodes id's publication and feeds it to the ring. */
static void feed_one(struct redis_fleet *f, const char *id, const redisReply *r, int64_t now_ms)
{
    int64_t started_ms;
    uint64_t seq;
    char why[160];

    if (r->type == REDIS_REPLY_NIL)
        return; /* expired between the two reads: gone */
    if (r->type != REDIS_REPLY_STRING) {
        bad_note(f, id, "not a string");
        return;
    }
    if (redis_signals_decode(r->str, r->len, f->sums, &started_ms, &seq, why, sizeof(why)) < 0) {
        bad_note(f, id, why);
        return;
    }
    bad_clear(f, id);
    if (fleet_ring_feed(f->ring, now_ms, id, started_ms, seq, f->sums) < 0)
        log_debug("redis fleet: instance %s not followed (%d at most)", id, FLEET_PEERS_MAX);
}

static void mget_cb(const redisReply *reply, const char *err, void *arg)
{
    struct redis_fleet *f = arg;
    const char *bad = reply_error(reply, err, REDIS_REPLY_ARRAY);
    int64_t now_ms = clock_ms(CLOCK_MONOTONIC);

    if (bad == NULL && reply->elements != f->nasked)
        bad = "MGET answered a different number of keys";
    if (bad != NULL) {
        round_failed(f, "MGET of the signals", bad);
    } else {
        for (size_t i = 0; i < f->nasked; i++)
            feed_one(f, f->asked[i], reply->element[i], now_ms);
        f->read_ok_ms = now_ms;
    }
    command_done(f);
}

/* Keeps the ids of members (those that make a key) and their keys, for
 * the MGET. */
static void asked_fill(struct redis_fleet *f, const redisReply *members)
{
    f->nasked = 0;
    for (size_t i = 0; i < members->elements && f->nasked < FLEET_PEERS_MAX; i++) {
        const redisReply *m = members->element[i];
        size_t n = f->nasked;

        if (m->type != REDIS_REPLY_STRING || m->len == 0 || m->len >= REDIS_INSTANCE_MAX ||
            memchr(m->str, '\0', m->len) != NULL)
            continue; /* not a name any instance can have */
        memcpy(f->asked[n], m->str, m->len + 1);
        if (redis_signals_key(f->asked_keys[n], f->ns, f->asked[n]) < 0)
            continue;
        f->mget_argv[n + 1] = f->asked_keys[n];
        f->nasked++;
    }
}

/* MGETs the signals of the instances in members. */
static void ask_signals(struct redis_fleet *f, const redisReply *members)
{
    asked_fill(f, members);
    if (f->nasked == 0) { /* not even ours: its ZADD failed */
        f->read_ok_ms = clock_ms(CLOCK_MONOTONIC);
        return;
    }
    f->mget_argv[0] = "MGET";
    if (send_argv(f, mget_cb, (int)f->nasked + 1, f->mget_argv) < 0)
        round_failed(f, "MGET of the signals", "out of memory");
}

static void members_cb(const redisReply *reply, const char *err, void *arg)
{
    struct redis_fleet *f = arg;
    const char *bad = reply_error(reply, err, REDIS_REPLY_ARRAY);

    if (bad != NULL)
        round_failed(f, "reading the instances", bad);
    else
        ask_signals(f, reply);
    command_done(f);
}

/* ------------------------------------------------------------------------ */
/* The round */

/* A publishing command's answer: only a failure matters. */
static void publish_cb(const redisReply *reply, const char *err, void *arg)
{
    struct redis_fleet *f = arg;
    const char *bad = err != NULL ? err : reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;

    if (bad != NULL)
        round_failed(f, "publishing our signals", bad);
    command_done(f);
}

/* SET of our signals key with our totals. */
static int publish_signals(struct redis_fleet *f)
{
    char px[24], *text;
    size_t len;
    int rc;

    for (int c = 0; c < CONF_COLOURS; c++) {
        window_sum_clear(&f->sums[c]);
        f->totals(f->totals_arg, (enum conf_colour)c, &f->sums[c]);
    }
    if (redis_signals_encode(f->sums, f->started_ms, f->seq + 1, &text, &len) < 0) {
        round_failed(f, "encoding our signals", "out of memory or a counter out of range");
        return -1;
    }
    f->seq++;
    snprintf(px, sizeof(px), "%d", REDIS_FLEET_SIGNALS_PX);
    const char *argv[] = {"SET", f->key_signals, text, "PX", px};
    rc = send_argv(f, publish_cb, 5, argv);
    free(text);
    return rc;
}

/* Says we are alive in <ns>:instances, trims the dead, asks who is alive. */
static int publish_and_ask(struct redis_fleet *f, int64_t wall_ms)
{
    char now[24], old[24], live[24], limit[24];

    snprintf(now, sizeof(now), "%" PRId64, wall_ms);
    snprintf(old, sizeof(old), "(%" PRId64, wall_ms - REDIS_FLEET_KEEP_MS);
    snprintf(live, sizeof(live), "%" PRId64, wall_ms - REDIS_FLEET_LIVE_MS);
    snprintf(limit, sizeof(limit), "%d", FLEET_PEERS_MAX);
    const char *zadd[] = {"ZADD", f->key_instances, now, f->instance};
    const char *trim[] = {"ZREMRANGEBYSCORE", f->key_instances, "-inf", old};
    const char *ask[] = {"ZRANGEBYSCORE", f->key_instances, live, "+inf", "LIMIT", "0", limit};
    if (send_argv(f, publish_cb, 4, zadd) < 0 || send_argv(f, publish_cb, 4, trim) < 0 ||
        send_argv(f, members_cb, 7, ask) < 0)
        return -1;
    return 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis_fleet *f = arg;

    (void)fd;
    (void)what;
    fleet_ring_expire(f->ring, clock_ms(CLOCK_MONOTONIC));
    if (f->pending > 0)
        return; /* the last round is still under way (bounded by its timeouts) */
    f->round_bad = false;
    if (!redis_conn_up(f->conn)) {
        round_failed(f, "no link to Redis", redis_conn_last_error(f->conn));
        return;
    }
    /* A failed SET still lets the read go on: the others' signals count. */
    (void)publish_signals(f);
    if (publish_and_ask(f, clock_ms(CLOCK_REALTIME)) < 0)
        round_failed(f, "sending the round", "out of memory");
}

/* ------------------------------------------------------------------------ */
/* Life */

struct redis_fleet *redis_fleet_new(struct event_base *base, struct redis_conn *conn,
                                    const char *ns, const char *instance, fleet_totals_fn totals,
                                    void *arg)
{
    struct redis_fleet *f = calloc(1, sizeof(*f));
    struct timeval every = {REDIS_FLEET_TICK_MS / 1000, (REDIS_FLEET_TICK_MS % 1000) * 1000};

    if (f == NULL) {
        log_error("redis fleet: out of memory");
        return NULL;
    }
    if (redis_signals_key(f->key_signals, ns, instance) < 0 ||
        redis_key(f->key_instances, ns, "instances") < 0 || strlen(ns) >= sizeof(f->ns)) {
        log_error("redis fleet: namespace \"%s\" and instance \"%s\" make no valid key", ns,
                  instance);
        free(f);
        return NULL;
    }
    memcpy(f->ns, ns, strlen(ns) + 1);
    memcpy(f->instance, instance, strlen(instance) + 1);
    f->base = base;
    f->conn = conn;
    f->totals = totals;
    f->totals_arg = arg;
    f->started_ms = process_started_ms();
    f->ring = fleet_ring_new();
    f->tick = event_new(base, -1, EV_PERSIST, tick_cb, f);
    if (f->ring == NULL || f->tick == NULL || event_add(f->tick, &every) < 0) {
        log_error("redis fleet: out of memory");
        redis_fleet_free(f);
        return NULL;
    }
    return f;
}

void redis_fleet_free(struct redis_fleet *f)
{
    if (f == NULL)
        return;
    if (f->tick != NULL)
        event_free(f->tick);
    fleet_ring_free(f->ring);
    free(f);
}

bool redis_fleet_fresh(const struct redis_fleet *f)
{
    return redis_conn_up(f->conn) && f->read_ok_ms > 0 &&
           clock_ms(CLOCK_MONOTONIC) - f->read_ok_ms < REDIS_FLEET_FRESH_MS;
}

const struct fleet_ring *redis_fleet_ring(const struct redis_fleet *f)
{
    return f->ring;
}

void redis_fleet_pool_sum(void *fleet, enum conf_colour c, int64_t now_s, unsigned seconds,
                          struct window_sum *out)
{
    const struct redis_fleet *f = fleet;

    fleet_ring_sum(f->ring, c, now_s, seconds, out);
}

static json_t *instance_json(const struct fleet_instance *in)
{
    return json_pack("{s:s, s:{s:f, s:f}, s:I, s:I, s:I}", "id", in->id, "rps",
                     conf_colour_name(CONF_BLUE), in->rps[CONF_BLUE], conf_colour_name(CONF_GREEN),
                     in->rps[CONF_GREEN], "report_age_ms", (json_int_t)in->report_age_ms,
                     "started_ms", (json_int_t)in->started_ms, "seq", (json_int_t)in->seq);
}

json_t *redis_fleet_status_json(const struct redis_fleet *f)
{
    int64_t now_ms = clock_ms(CLOCK_MONOTONIC);
    json_t *list = json_array();
    struct fleet_instance in;

    for (size_t i = 0; list != NULL && i < fleet_ring_count(f->ring); i++) {
        fleet_ring_instance(f->ring, i, now_ms, &in);
        if (json_array_append_new(list, instance_json(&in)) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    if (list == NULL)
        return NULL;
    return json_pack("{s:b, s:s, s:I, s:s, s:o}", "fresh", redis_fleet_fresh(f), "instance",
                     f->instance, "published", (json_int_t)f->seq, "last_error", f->last_error,
                     "instances", list);
}
