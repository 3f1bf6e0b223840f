/* redis_sync.c - the fleet's shared state: compare-and-set writes, adoption
 * of other instances' changes, the leader lease and the event stream. */
#include "control/redis_sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/log.h"
#include "conf/redisurl.h"
#include "control/events.h"
#include "control/redis_conn.h"
#include "control/redis_scripts.h"
#include "control/service.h"

#define WHO_SYNC "redis-sync"

struct redis_sync {
    struct event_base *base;
    struct service *svc;
    struct redis_conn *conn;
    char url_text[320]; /* redacted */
    char instance[64];
    char ns[REDIS_KEY_MAX];
    char key_state[REDIS_KEY_MAX], key_changes[REDIS_KEY_MAX], key_events[REDIS_KEY_MAX];
    uint32_t lease_ms;
    struct event *poll;
    struct event *kick; /* runs poll_cb from the loop, not from inside a hook */

    /* The state: one Redis operation at a time, so that a write's expected
     * generation is never stale because of our own previous write. */
    bool ready; /* the shared state was read (or seeded) once */
    bool busy;  /* a read or a write is under way */
    bool again; /* something changed while busy: run once more */
    bool known; /* redis_gen is what Redis held when last seen */
    uint64_t redis_gen;
    bool dirty;            /* Redis lacks a local change */
    bool dirty_rollback;   /* one of those changes is a rollback: it wins */
    uint64_t rollback_gen; /* the generation of that rollback */
    uint64_t sent_gen;     /* the generation of the write under way */
    bool write_failing;    /* logged once per run of failed writes */
    char rollback_who[STATE_WHO_MAX];
    char rollback_why[STATE_WHY_MAX];

    /* The lease. */
    struct event *lease_timer;
    bool lease_busy;
    bool stepped_down; /* shutting down: the lease is given back, not renewed */
    bool leader;
    int64_t lease_sent_ms;   /* monotonic: when the pending renewal was sent */
    int64_t leader_until_ms; /* monotonic: the lease surely holds until then */
    char holder[64];

    /* Events waiting for XADD, oldest first. */
    char **queue;
    size_t qhead, qlen;
    bool xadd_busy;
    struct events_read *reads; /* redis_sync_read_events() under way */

    struct redis_sync_stats stats;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct state *local(const struct redis_sync *rs)
{
    return service_state(rs->svc);
}

/* ------------------------------------------------------------------------ */
/* The state */

static void sync_run(struct redis_sync *rs);

static void sync_done(struct redis_sync *rs)
{
    rs->busy = false;
    if (rs->again)
        sync_run(rs);
}

/* Takes s, Redis's state, as ours. */
static void adopt(struct redis_sync *rs, const struct state *s, const char *writer, const char *how)
{
    char why[STATE_WHY_MAX + 128]; /* the state machine cuts it to size, UTF-8 whole */

    rs->known = true;
    rs->redis_gen = s->generation;
    if (s->generation == local(rs)->generation && s->phase == local(rs)->phase &&
        s->candidate_bp == local(rs)->candidate_bp && s->stable == local(rs)->stable)
        return; /* the same state: nothing to take */
    snprintf(why, sizeof(why), "%s generation %" PRIu64 " from %s: %s", how, s->generation,
             writer[0] ? writer : "an unknown instance", s->reason);
    service_adopt(rs->svc, s, WHO_SYNC, why);
    rs->stats.adopted++;
}

/* True when a rollback of ours must be applied again over theirs: they
 * still give (or are about to give) the candidate traffic. */
static bool rollback_still_needed(const struct state *theirs)
{
    return theirs->phase != STATE_ROLLED_BACK &&
           (theirs->candidate_bp > 0 || theirs->phase == STATE_PREFLIGHT ||
            theirs->phase == STATE_PROGRESSING || theirs->phase == STATE_PAUSED);
}

/* Another instance wrote first: Redis's state wins, except over a rollback
 * of ours, which is applied again on top of it. */
static void resolve_conflict(struct redis_sync *rs, const struct state *theirs, const char *writer)
{
    bool rollback = rs->dirty_rollback && rollback_still_needed(theirs);
    char why[STATE_WHY_MAX + 128]; /* the state machine cuts it to size, UTF-8 whole */
    struct state taken = *theirs;

    rs->stats.conflicts++;
    rs->dirty = false;
    rs->dirty_rollback = false;
    log_warn("redis: generation %" PRIu64 " from %s was written first; %s", theirs->generation,
             writer[0] ? writer : "another instance",
             rollback ? "our rollback is applied again on top of it"
                      : "our unwritten changes give way to it");
    if (rollback)
        taken.candidate_bp = 0; /* never route to the candidate in between */
    adopt(rs, &taken, writer, "took");
    if (!rollback)
        return;
    snprintf(why, sizeof(why), "%s (applied again over generation %" PRIu64 ")", rs->rollback_why,
             theirs->generation);
    struct state_change ch = {.op = STATE_OP_ROLLBACK, .who = rs->rollback_who, .why = why};
    struct state_error err = {0};
    if (service_apply(rs->svc, &ch, &err) < 0) /* marks us dirty again: written next */
        log_error("redis: rollback refused: %s: %s", err.code, err.message);
}

/* Redis holds generation gen, which this instance wrote or holds already:
 * what is left to write is what came after. */
static void confirmed(struct redis_sync *rs, uint64_t gen)
{
    rs->known = true;
    rs->redis_gen = gen;
    rs->dirty = local(rs)->generation != gen;
    if (gen >= rs->rollback_gen)
        rs->dirty_rollback = false;
    rs->ready = true;
    if (rs->write_failing)
        log_info("redis: generation %" PRIu64 " is written", gen);
    rs->write_failing = false;
}

/* A refused write: why Redis holds something else, and what to do. */
static void refused(struct redis_sync *rs, const struct redis_cas_result *res)
{
    struct state theirs;
    char why[256];
    json_t *j;

    if (strcmp(res->stored_instance, rs->instance) == 0 && res->stored_generation > rs->redis_gen &&
        res->stored_generation <= local(rs)->generation) {
        /* Our own earlier write, applied after its reply timed out. */
        confirmed(rs, res->stored_generation);
        return;
    }
    if (rs->known && res->stored_generation < rs->redis_gen) {
        /* Redis went back in time (restarted from an older snapshot, a
         * lagging replica promoted): what we hold is newer; write it over. */
        log_warn("redis: %s went back from generation %" PRIu64 " to %" PRIu64
                 ": writing generation %" PRIu64 " over it",
                 rs->key_state, rs->redis_gen, res->stored_generation, local(rs)->generation);
        rs->redis_gen = res->stored_generation;
        return;
    }
    j = res->stored_state ? json_loads(res->stored_state, 0, NULL) : NULL;
    if (j == NULL || state_from_shared_json(j, &theirs, why, sizeof(why)) < 0) {
        if (!rs->write_failing)
            log_error("redis: the stored state (generation %" PRIu64
                      ") is unreadable: %s; this instance is not in sync until it is replaced",
                      res->stored_generation, j == NULL ? "not JSON" : why);
        rs->write_failing = true;
        rs->known = true;
        rs->redis_gen = res->stored_generation;
        json_decref(j);
        return;
    }
    json_decref(j);
    theirs.generation = res->stored_generation;
    rs->write_failing = false; /* Redis answers: this is a conflict, not a failure */
    resolve_conflict(rs, &theirs, res->stored_instance);
    rs->ready = true;
}

static void write_cb(const redisReply *reply, const char *err, void *arg)
{
    struct redis_sync *rs = arg;
    struct redis_cas_result res = {0};
    char why[256];

    if (err != NULL || redis_cas_parse(reply, &res, why, sizeof(why)) < 0) {
        if (!rs->write_failing)
            log_warn("redis: writing generation %" PRIu64 " failed: %s; retrying every %d ms",
                     rs->sent_gen, err != NULL ? err : why, REDIS_SYNC_POLL_MS);
        rs->write_failing = true;
        sync_done(rs); /* still dirty: the next run (poll, reconnect) writes it */
        return;
    }
    if (res.applied) {
        confirmed(rs, res.stored_generation);
    } else {
        refused(rs, &res);
        /* Run again at once, except over an unreadable state: the poll
         * retries that, not a loop. */
        if (!rs->write_failing)
            rs->again = true;
    }
    redis_cas_result_clear(&res);
    sync_done(rs);
}

/* Writes the local state over what Redis held at redis_gen (or into an empty
 * Redis, seed). */
static void write_state(struct redis_sync *rs, bool seed)
{
    const struct state *s = local(rs);
    json_t *j = state_to_json(s);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    struct redis_argv av;
    struct redis_cas_args a = {
        .ns = rs->ns,
        .expect = seed ? 0 : rs->redis_gen,
        .new_generation = s->generation,
        .seed = seed,
        .state_json = text,
        .instance = rs->instance,
        .event_json = NULL, /* events go through their own queue */
        .updated_ms = s->updated_ms,
        .events_maxlen = REDIS_SYNC_EVENTS_MAXLEN,
    };

    json_decref(j);
    rs->sent_gen = s->generation;
    if (text == NULL || redis_cas_argv(&av, &a) < 0 ||
        redis_conn_command(rs->conn, 0, write_cb, rs, av.argc, av.argv, av.len) < 0) {
        log_error("redis: cannot write generation %" PRIu64 ": out of memory", s->generation);
        free(text);
        sync_done(rs);
        return;
    }
    free(text);
}

static void read_cb(const redisReply *reply, const char *err, void *arg)
{
    struct redis_sync *rs = arg;
    struct state theirs;
    uint64_t gen = 0;
    char writer[64] = "", why[256];
    int found;

    if (err != NULL) {
        log_debug("redis: reading the state failed: %s", err);
        sync_done(rs);
        return;
    }
    found = redis_state_parse(reply, &theirs, &gen, writer, sizeof(writer), why, sizeof(why));
    if (found < 0) {
        log_error("redis: %s holds an unreadable state (%s): writing ours over it", rs->key_state,
                  why);
        rs->known = true; /* the refusal tells the stored generation */
        rs->dirty = true;
        write_state(rs, false);
        return;
    }
    if (found == 0) {
        log_info("redis: %s is empty: seeding it with generation %" PRIu64, rs->key_state,
                 local(rs)->generation);
        write_state(rs, true);
        return;
    }
    theirs.generation = gen;
    if (rs->dirty && rs->known && gen == rs->redis_gen) {
        write_state(rs, false); /* a change of ours came while reading: write it */
        return;
    }
    if (!rs->dirty && gen < local(rs)->generation) {
        /* Older than ours: Redis lost writes (an older snapshot, a lagging
         * replica), or a stale instance seeded it. The higher generation
         * wins: write ours over it. */
        log_warn("redis: %s holds generation %" PRIu64 " from %s, older than ours (%" PRIu64
                 "): writing ours over it",
                 rs->key_state, gen, writer[0] ? writer : "an unknown instance",
                 local(rs)->generation);
        rs->known = true;
        rs->redis_gen = gen;
        rs->dirty = true;
        write_state(rs, false);
        return;
    }
    if (rs->dirty)
        resolve_conflict(rs, &theirs, writer);
    else
        adopt(rs, &theirs, writer, rs->ready ? "took" : "started from");
    rs->ready = true;
    sync_done(rs);
}

static void sync_run(struct redis_sync *rs)
{
    if (!redis_conn_up(rs->conn))
        return; /* the link's return runs it */
    if (rs->busy) {
        rs->again = true;
        return;
    }
    rs->busy = true;
    rs->again = false;
    if (rs->dirty && rs->known) {
        write_state(rs, false);
        return;
    }
    if (redis_conn_commandf(rs->conn, 0, read_cb, rs, "HGETALL %s", rs->key_state) < 0) {
        log_error("redis: cannot read the state: out of memory");
        rs->busy = false;
    }
}

/* "<generation> <instance>" on <ns>:changes. */
static void changes_cb(const char *channel, const char *message, size_t len, void *arg)
{
    struct redis_sync *rs = arg;
    char text[128], writer[64] = "";
    unsigned long long gen;

    (void)channel;
    if (len >= sizeof(text))
        return;
    memcpy(text, message, len);
    text[len] = '\0';
    if (sscanf(text, "%llu %63s", &gen, writer) < 1)
        return;
    if (strcmp(writer, rs->instance) == 0 || (rs->known && gen == rs->redis_gen))
        return; /* our own write, or one we have */
    sync_run(rs);
}

/* Changes published while the subscriber was away are lost: read again. */
static void subscribed_cb(bool subscribed, void *arg)
{
    if (subscribed)
        sync_run(arg);
}

/* ------------------------------------------------------------------------ */
/* Events */

static void events_flush(struct redis_sync *rs);

static void xadd_cb(const redisReply *reply, const char *err, void *arg)
{
    struct redis_sync *rs = arg;

    rs->xadd_busy = false;
    if (err != NULL || reply->type == REDIS_REPLY_ERROR) {
        log_debug("redis: XADD failed: %s", err != NULL ? err : reply->str);
        return; /* kept: the next flush tries again */
    }
    free(rs->queue[rs->qhead]);
    rs->queue[rs->qhead] = NULL;
    rs->qhead = (rs->qhead + 1) % REDIS_SYNC_EVENTS_QUEUED;
    rs->qlen--;
    events_flush(rs);
}

static void events_flush(struct redis_sync *rs)
{
    char maxlen[24];

    if (rs->xadd_busy || rs->qlen == 0 || !redis_conn_up(rs->conn))
        return;
    snprintf(maxlen, sizeof(maxlen), "%u", REDIS_SYNC_EVENTS_MAXLEN);
    if (redis_conn_commandf(rs->conn, 0, xadd_cb, rs, "XADD %s MAXLEN ~ %s * event %s instance %s",
                            rs->key_events, maxlen, rs->queue[rs->qhead], rs->instance) == 0)
        rs->xadd_busy = true;
}

static void events_queue(struct redis_sync *rs, const struct state_event *e)
{
    json_t *j = events_to_json(e);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    if (text == NULL) {
        rs->stats.events_dropped++;
        return;
    }
    if (rs->qlen == REDIS_SYNC_EVENTS_QUEUED) {
        if (rs->stats.events_dropped++ == 0)
            log_error("redis: %d events wait for Redis: dropping the oldest from now on",
                      REDIS_SYNC_EVENTS_QUEUED);
        free(rs->queue[rs->qhead]);
        rs->qhead = (rs->qhead + 1) % REDIS_SYNC_EVENTS_QUEUED;
        rs->qlen--;
    }
    rs->queue[(rs->qhead + rs->qlen) % REDIS_SYNC_EVENTS_QUEUED] = text;
    rs->qlen++;
    events_flush(rs);
}

/* Every change the service applies or records. */
static void replicate_cb(const struct state_event *e, void *arg)
{
    struct redis_sync *rs = arg;

    if (e->op == STATE_OP_SYNC)
        return; /* taken from Redis: its own event is in the stream already */
    events_queue(rs, e);
    if (e->op == STATE_OP_SERVER)
        return; /* no state change */
    rs->dirty = true;
    if (e->op == STATE_OP_ROLLBACK) {
        rs->dirty_rollback = true;
        rs->rollback_gen = e->generation;
        state_text_copy(rs->rollback_who, sizeof(rs->rollback_who), e->who);
        state_text_copy(rs->rollback_why, sizeof(rs->rollback_why), e->why);
    }
    /* From the loop: this runs inside state_apply(), before the split is
     * published. */
    event_active(rs->kick, EV_TIMEOUT, 1);
}

/* ------------------------------------------------------------------------ */
/* The lease */

static void lease_cb(const redisReply *reply, const char *err, void *arg)
{
    struct redis_sync *rs = arg;
    struct redis_lease_result res = {0};
    char why[256];
    bool was = redis_sync_leader(rs);

    rs->lease_busy = false;
    if (err != NULL || redis_lease_parse(reply, &res, why, sizeof(why)) < 0) {
        log_debug("redis: lease: %s", err != NULL ? err : why);
        return; /* the lease we had runs out by itself */
    }
    rs->leader = res.held && !rs->stepped_down;
    /* Redis starts the lease when it runs the script, after we sent it:
     * counting from the send never overstates it. */
    if (res.held)
        rs->leader_until_ms = rs->lease_sent_ms + rs->lease_ms;
    snprintf(rs->holder, sizeof(rs->holder), "%s", res.held ? rs->instance : res.holder);
    if (redis_sync_leader(rs) != was)
        log_info("redis: %s", redis_sync_leader(rs) ? "this instance leads the fleet now"
                                                    : "another instance leads the fleet");
}

static void lease_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis_sync *rs = arg;
    struct redis_argv av;

    (void)fd;
    (void)what;
    if (rs->lease_busy || rs->stepped_down || !redis_conn_up(rs->conn))
        return;
    if (redis_lease_argv(&av, rs->ns, rs->instance, rs->lease_ms) < 0)
        return;
    rs->lease_sent_ms = mono_ms();
    if (redis_conn_command(rs->conn, rs->lease_ms / 3, lease_cb, rs, av.argc, av.argv, av.len) == 0)
        rs->lease_busy = true;
}

static void release_cb(const redisReply *reply, const char *err, void *arg)
{
    bool released = false;
    char why[256];

    (void)arg;
    if (err == NULL && redis_release_parse(reply, &released, why, sizeof(why)) == 0 && released)
        log_info("redis: the lease is given back: another instance leads from now on");
}

void redis_sync_step_down(struct redis_sync *rs)
{
    struct redis_argv av;
    bool was = redis_sync_leader(rs);

    rs->stepped_down = true;
    rs->leader = false;
    if (!was || redis_release_argv(&av, rs->ns, rs->instance) < 0)
        return;
    if (redis_conn_command(rs->conn, 0, release_cb, rs, av.argc, av.argv, av.len) < 0)
        log_warn("redis: the lease is not given back (out of memory): it runs out by itself");
}

/* ------------------------------------------------------------------------ */
/* The link */

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis_sync *rs = arg;

    (void)fd;
    (void)what;
    sync_run(rs);
    events_flush(rs);
}

static void link_cb(bool up, const char *why, void *arg)
{
    struct redis_sync *rs = arg;

    if (!up) {
        log_error("redis: %s: %s; serving the last known state (generation %" PRIu64
                  "), rollouts hold until it returns",
                  rs->url_text, why, local(rs)->generation);
        rs->leader = false;
        return;
    }
    log_info("redis: %s: connected", rs->url_text);
    sync_run(rs);
    events_flush(rs);
    lease_tick_cb(-1, 0, rs);
}

/* ------------------------------------------------------------------------ */
/* Interface */

static void default_instance(char *out, size_t len)
{
    char host[64] = "";

    if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    snprintf(out, len, "%s:%ld", host, (long)getpid());
}

static int keys_make(struct redis_sync *rs)
{
    return redis_key(rs->key_state, rs->ns, "state") < 0 ||
                   redis_key(rs->key_changes, rs->ns, "changes") < 0 ||
                   redis_key(rs->key_events, rs->ns, "events") < 0
               ? -1
               : 0;
}

static int timers_start(struct redis_sync *rs)
{
    struct timeval poll = {REDIS_SYNC_POLL_MS / 1000, (REDIS_SYNC_POLL_MS % 1000) * 1000};
    uint32_t renew_ms = rs->lease_ms / 3;
    struct timeval renew = {renew_ms / 1000, (renew_ms % 1000) * 1000};

    rs->poll = event_new(rs->base, -1, EV_PERSIST, poll_cb, rs);
    rs->kick = event_new(rs->base, -1, 0, poll_cb, rs);
    rs->lease_timer = event_new(rs->base, -1, EV_PERSIST, lease_tick_cb, rs);
    if (rs->poll == NULL || rs->kick == NULL || rs->lease_timer == NULL)
        return -1;
    return event_add(rs->poll, &poll) < 0 || event_add(rs->lease_timer, &renew) < 0 ? -1 : 0;
}

struct redis_sync *redis_sync_new(struct event_base *base, struct service *svc,
                                  const struct conf_redis *cfg, const char *instance)
{
    struct redis_sync *rs = calloc(1, sizeof(*rs));
    struct redis_url url;
    struct redis_conn_opts opts = {.client_name = NULL};
    char why[256];

    if (rs == NULL)
        return NULL;
    rs->base = base;
    rs->svc = svc;
    rs->lease_ms = cfg->lease_ms;
    if (instance != NULL)
        snprintf(rs->instance, sizeof(rs->instance), "%s", instance);
    else
        default_instance(rs->instance, sizeof(rs->instance));
    snprintf(rs->ns, sizeof(rs->ns), "%s", cfg->ns);
    if (redis_url_parse(cfg->url, &url, why, sizeof(why)) < 0) {
        log_error("redis: %s: %s", cfg->url, why); /* the config check lets none through */
        free(rs);
        return NULL;
    }
    redis_url_redacted(&url, rs->url_text, sizeof(rs->url_text));
    opts.client_name = rs->instance;
    rs->queue = calloc(REDIS_SYNC_EVENTS_QUEUED, sizeof(*rs->queue));
    if (rs->queue == NULL || keys_make(rs) < 0 || timers_start(rs) < 0) {
        redis_sync_free(rs);
        return NULL;
    }
    rs->conn = redis_conn_new(base, &url, &opts, link_cb, rs);
    if (rs->conn == NULL || redis_conn_subscribe(rs->conn, rs->key_changes, changes_cb, rs) < 0) {
        redis_sync_free(rs);
        return NULL;
    }
    redis_conn_set_sub_state_cb(rs->conn, subscribed_cb, rs);
    service_set_replicator(svc, replicate_cb, rs);
    log_info("redis: %s, namespace %s, this instance is %s", rs->url_text, rs->ns, rs->instance);
    return rs;
}

static void events_reads_abort(struct redis_sync *rs);

void redis_sync_free(struct redis_sync *rs)
{
    if (rs == NULL)
        return;
    events_reads_abort(rs); /* redis_conn_free() drops their replies */
    if (rs->svc != NULL)
        service_set_replicator(rs->svc, NULL, NULL);
    redis_conn_free(rs->conn);
    if (rs->poll != NULL)
        event_free(rs->poll);
    if (rs->kick != NULL)
        event_free(rs->kick);
    if (rs->lease_timer != NULL)
        event_free(rs->lease_timer);
    for (size_t i = 0; rs->queue != NULL && i < rs->qlen; i++)
        free(rs->queue[(rs->qhead + i) % REDIS_SYNC_EVENTS_QUEUED]);
    free(rs->queue);
    free(rs);
}

static void ready_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    bool *expired = arg;

    (void)fd;
    (void)what;
    *expired = true;
}

bool redis_sync_wait_ready(struct redis_sync *rs, uint32_t timeout_ms)
{
    bool expired = false;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct event *deadline = evtimer_new(rs->base, ready_deadline_cb, &expired);

    if (deadline == NULL || evtimer_add(deadline, &tv) < 0) {
        if (deadline != NULL)
            event_free(deadline);
        return rs->ready;
    }
    while (!rs->ready && !expired)
        event_base_loop(rs->base, EVLOOP_ONCE);
    event_free(deadline);
    if (!rs->ready)
        log_error("redis: %s did not answer within %u ms: starting from the local state "
                  "(generation %" PRIu64 "); it is read and reconciled when Redis answers",
                  rs->url_text, timeout_ms, local(rs)->generation);
    return rs->ready;
}

struct redis_conn *redis_sync_conn(struct redis_sync *rs)
{
    return rs->conn;
}

const char *redis_sync_instance(const struct redis_sync *rs)
{
    return rs->instance;
}

bool redis_sync_leader(const struct redis_sync *rs)
{
    return rs->leader && mono_ms() < rs->leader_until_ms;
}

void redis_sync_stats(const struct redis_sync *rs, struct redis_sync_stats *out)
{
    *out = rs->stats;
    out->up = redis_conn_up(rs->conn);
    out->leader = redis_sync_leader(rs);
    out->synced = out->up && rs->known && !rs->dirty && rs->redis_gen == local(rs)->generation;
    out->connects = redis_conn_connects(rs->conn);
    out->events_queued = rs->qlen;
}

json_t *redis_sync_status_json(const struct redis_sync *rs)
{
    struct redis_sync_stats st;
    int64_t down = redis_conn_down_since_ms(rs->conn);

    redis_sync_stats(rs, &st);
    return json_pack("{s:s, s:s, s:s, s:b, s:s, s:I, s:b, s:s?, s:b, s:I, s:I, s:I, s:I}", "url",
                     rs->url_text, "namespace", rs->ns, "instance", rs->instance, "up", st.up,
                     "last_error", redis_conn_last_error(rs->conn), "down_for_ms",
                     (json_int_t)(down > 0 ? mono_ms() - down : 0), "leader", st.leader, "holder",
                     rs->holder[0] ? rs->holder : NULL, "synced", st.synced, "redis_generation",
                     (json_int_t)rs->redis_gen, "conflicts", (json_int_t)st.conflicts,
                     "events_queued", (json_int_t)st.events_queued, "events_dropped",
                     (json_int_t)st.events_dropped);
}

/* ------------------------------------------------------------------------ */
/* Reading the stream */

struct events_read {
    struct redis_sync *rs;
    uint32_t timeout_ms;
    redis_events_cb cb;
    void *arg;
    struct events_read *next; /* rs->reads */
};

static void events_read_unlink(struct events_read *r)
{
    struct events_read **p = &r->rs->reads;

    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
}

/* The value of field name in an entry's [field, value, ...] array. */
static const char *entry_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(f->str, name) == 0)
            return v->str;
    }
    return NULL;
}

/* One XREVRANGE entry, [id, [field, value, ...]], as the stored event plus
 * "instance": a new object, or NULL when it is not one of ours. */
static json_t *entry_event(const redisReply *entry)
{
    const redisReply *fields;
    const char *text, *instance;
    json_t *e;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    fields = entry->element[1];
    text = entry_field(fields, "event");
    instance = entry_field(fields, "instance");
    e = text != NULL ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(e) || instance == NULL ||
        json_object_set_new(e, "instance", json_string(instance)) < 0) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* XREVRANGE gives the newest first: the list is built the other way round.
 * Entries that are not events are skipped. Returns a new array, or NULL
 * when out of memory. */
static json_t *events_from_reply(const redisReply *reply)
{
    json_t *list = json_array();

    for (size_t i = reply->elements; list != NULL && i > 0; i--) {
        json_t *e = entry_event(reply->element[i - 1]);
        if (e == NULL) {
            log_debug("redis: an entry of the events stream is not an event: skipped");
            continue;
        }
        if (json_array_append_new(list, e) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

static void events_read_cb(const redisReply *reply, const char *err, void *arg)
{
    struct events_read *r = arg;
    char why[512];
    json_t *list = NULL;

    events_read_unlink(r);
    if (err != NULL && strncmp(err, "timed out", 9) == 0)
        snprintf(why, sizeof(why), "Redis did not answer within %u ms", r->timeout_ms);
    else if (err != NULL)
        snprintf(why, sizeof(why), "Redis is unreachable: %s%s%s", err,
                 redis_conn_last_error(r->rs->conn)[0] ? ": " : "",
                 redis_conn_last_error(r->rs->conn));
    else if (reply->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof(why), "Redis refused XREVRANGE: %s", reply->str);
    else if (reply->type != REDIS_REPLY_ARRAY)
        snprintf(why, sizeof(why), "Redis answered XREVRANGE with a reply of type %d", reply->type);
    else if ((list = events_from_reply(reply)) == NULL)
        snprintf(why, sizeof(why), "out of memory for the events");
    r->cb(list, list != NULL ? NULL : why, r->arg);
    free(r);
}

int redis_sync_read_events(struct redis_sync *rs, uint32_t timeout_ms, redis_events_cb cb,
                           void *arg)
{
    struct events_read *r = calloc(1, sizeof(*r));
    char count[24];

    if (r == NULL)
        return -1;
    *r = (struct events_read){.rs = rs, .timeout_ms = timeout_ms, .cb = cb, .arg = arg};
    snprintf(count, sizeof(count), "%d", REDIS_SYNC_EVENTS_READ);
    if (redis_conn_commandf(rs->conn, timeout_ms, events_read_cb, r, "XREVRANGE %s + - COUNT %s",
                            rs->key_events, count) < 0) {
        free(r);
        return -1;
    }
    r->next = rs->reads;
    rs->reads = r;
    return 0;
}

/* rs goes away with reads under way: each still gets its one answer. */
static void events_reads_abort(struct redis_sync *rs)
{
    while (rs->reads != NULL) {
        struct events_read *r = rs->reads;
        rs->reads = r->next;
        r->cb(NULL, "switchyard is shutting down", r->arg);
        free(r);
    }
}
