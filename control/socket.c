/* socket.c - the control socket server (see socket.h for what it does and
 * DESIGN.md, "Control socket", for the protocol).
 *
 * Everything runs on the main thread. A client is one bufferevent plus a
 * little state; clients are never freed inside their own callbacks: closing
 * one moves it to a dead list that a one-shot event empties from the top of
 * the loop, so a follower dropped while another client's command is being
 * applied cannot pull the ground from under anyone.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <jansson.h>

#include "conf/log.h"
#include "control/protocol.h"
#include "control/redis_sync.h"
#include "control/reload.h"
#include "control/rollout.h"
#include "control/socket.h"
#include "control/status.h"
#include "proxy/snapshot.h"

#define BACKLOG 64

/* An events request waiting for the fleet's stream. The read owns it and
 * frees it when Redis answers; closing the client only detaches it. */
struct fleet_read {
    struct client *client; /* NULL once the client is closed */
    uint64_t since;
};

struct client {
    struct ctlsock *cs;
    struct bufferevent *bev;
    char who[32];               /* "uid:<uid>", the state's updated_by */
    struct fleet_read *reading; /* a reply owed later: the next requests wait */
    bool following;             /* gets {"event":...} lines */
    bool eof;                   /* the peer half-closed: no more requests */
    bool closing;               /* no more input; closed once the output is flushed */
    bool dead;                  /* on the dead list, freed by reap_cb */
    struct client *next;
    struct client *prev;
};

/* A control client that sends nothing (or reads nothing) for this long is
 * closed: descriptors are shared with the data plane. */
static const struct timeval ctlsock_idle = {CTLSOCK_IDLE_S, 0};

struct ctlsock {
    struct event_base *base;
    struct reloader *reloader; /* the running config, and reload */
    struct service *svc;
    const struct status_sources *status; /* what status reports */
    struct evconnlistener *listener;
    struct event *reaper; /* frees the dead list */
    char *path;
    dev_t dev; /* the socket file we bound: only that one is removed at exit */
    ino_t ino;
    struct client *clients; /* live, doubly linked */
    unsigned nclients;      /* live ones */
    struct event *resume;   /* re-enables accepting after EMFILE and the like */
    struct client *dead;    /* closed, waiting for reap_cb (singly linked) */
};

/* ------------------------------------------------------------------------ */
/* Clients */

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctlsock *cs = arg;

    while (cs->dead != NULL) {
        struct client *c = cs->dead;
        cs->dead = c->next;
        bufferevent_free(c->bev);
        free(c);
    }
}

/* Unlinks c and hands it to reap_cb; safe from any callback. */
static void client_close(struct client *c, const char *why)
{
    struct ctlsock *cs = c->cs;

    if (c->dead)
        return;
    log_debug("control socket: %s: closing: %s", c->who, why);
    c->dead = true;
    if (c->reading != NULL)
        c->reading->client = NULL;
    c->reading = NULL;
    cs->nclients--;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        cs->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->next = cs->dead;
    c->prev = NULL;
    cs->dead = c;
    event_active(cs->reaper, EV_TIMEOUT, 0);
}

/* Queues j (borrowed) as one line. A client whose unsent output passes
 * CTLSOCK_OUTPUT_MAX is dropped: it is not reading, and waiting for it
 * would hold memory for as long as it likes. Returns 0, or -1 when c was
 * closed. */
static int client_send(struct client *c, const json_t *j)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc;

    if (c->dead)
        return -1;
    if (text == NULL) {
        client_close(c, "out of memory for a reply");
        return -1;
    }
    rc = evbuffer_add_printf(out, "%s\n", text);
    free(text);
    if (rc < 0) {
        client_close(c, "out of memory for a reply");
        return -1;
    }
    if (evbuffer_get_length(out) > CTLSOCK_OUTPUT_MAX) {
        client_close(c, "more than 1 MiB of unread replies: too slow");
        return -1;
    }
    return 0;
}

/* Sends j (new, consumed), then closes c once it is written. */
static void client_send_last(struct client *c, json_t *j, const char *why)
{
    int rc = client_send(c, j);

    json_decref(j);
    if (rc < 0)
        return;
    log_debug("control socket: %s: %s", c->who, why);
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        client_close(c, why);
}

/* ------------------------------------------------------------------------ */
/* Commands: one handler per command. Each gets a request protocol_parse()
 * validated (borrowed) and returns a new reply, or NULL when out of memory. */

typedef json_t *(*command_cb)(struct client *c, const struct protocol_request *req);

static json_t *cmd_status(struct client *c, const struct protocol_request *req)
{
    const struct ctlsock *cs = c->cs;

    return status_reply(cs->status);
}

/* Applies one state change on behalf of c. */
static json_t *apply_change(struct client *c, const struct protocol_request *req, enum state_op op)
{
    struct state_change ch = {
        .op = op,
        .weight_bp = req->weight_bp,
        .who = c->who,
        .why = req->reason,
        .expect_generation = req->expect_generation,
    };
    struct state_error err = {0};

    json_t *reply;

    if (service_apply(c->cs->svc, &ch, &err) < 0)
        return protocol_error_reply(protocol_code_of_state(err.code), "%s", err.message);
    reply = protocol_state_reply(service_state(c->cs->svc));
    /* false: applied and published, but the state file lags (being retried). */
    if (reply != NULL &&
        json_object_set_new(reply, "persisted", json_boolean(service_persisted(c->cs->svc))) < 0) {
        json_decref(reply);
        return NULL;
    }
    return reply;
}

static json_t *cmd_weight(struct client *c, const struct protocol_request *req)
{
    return apply_change(c, req, STATE_OP_WEIGHT);
}

static json_t *cmd_pause(struct client *c, const struct protocol_request *req)
{
    return apply_change(c, req, STATE_OP_PAUSE);
}

static json_t *cmd_resume(struct client *c, const struct protocol_request *req)
{
    return apply_change(c, req, STATE_OP_RESUME);
}

static json_t *cmd_promote(struct client *c, const struct protocol_request *req)
{
    return apply_change(c, req, STATE_OP_PROMOTE);
}

static json_t *cmd_rollback(struct client *c, const struct protocol_request *req)
{
    return apply_change(c, req, STATE_OP_ROLLBACK);
}

static int events_add_cb(const struct state_event *e, void *arg)
{
    json_t *j = events_to_json(e);

    if (j == NULL || json_array_append_new(arg, j) < 0)
        return -1;
    return 0;
}

static json_t *cmd_events(struct client *c, const struct protocol_request *req)
{
    json_t *list = json_array();

    if (list == NULL)
        return NULL;
    /* events_add_cb stops the walk when out of memory: the event it failed
     * on is counted but missing from the list. */
    size_t passed = events_foreach(service_events(c->cs->svc), req->since, events_add_cb, list);
    if (passed != json_array_size(list)) {
        json_decref(list);
        return NULL;
    }
    if (req->follow) {
        /* A follower waits for events: its only limit is not reading them. */
        c->following = true;
        bufferevent_set_timeouts(c->bev, NULL, &ctlsock_idle);
    }
    return protocol_events_reply(list, CTLSOCK_LINE_MAX);
}

/* Sets the admin state of one server in every worker at once (the state is
 * one atomic that their round-robin reads). Kept across reloads, not across
 * restarts. */
static json_t *set_server_admin(struct client *c, const struct protocol_request *req,
                                enum server_admin admin)
{
    const struct snapshot *snap = reloader_current(c->cs->reloader);
    const char *pool = conf_colour_name(req->pool);
    struct server_state *st;
    size_t i;

    if (!snapshot_find(snap, req->pool, req->server, &i))
        return protocol_error_reply("unknown_server", "pool %s has no server %s/%s", pool, pool,
                                    req->server);
    st = snap->servers[req->pool][i];
    if (server_state_admin(st) != admin) {
        char why[256];
        snprintf(why, sizeof(why), "server %s/%s: %s -> %s", pool, req->server,
                 server_admin_name(server_state_admin(st)), server_admin_name(admin));
        log_info("%s by %s", why, c->who);
        service_record(c->cs->svc, c->who, why);
    }
    atomic_store_explicit(&st->admin, admin, memory_order_relaxed);
    return protocol_server_reply(snap, req->pool, i, c->cs->status->health);
}

static json_t *cmd_server_disable(struct client *c, const struct protocol_request *req)
{
    return set_server_admin(c, req, SERVER_DISABLED);
}

static json_t *cmd_server_enable(struct client *c, const struct protocol_request *req)
{
    return set_server_admin(c, req, SERVER_ENABLED);
}

static json_t *cmd_server_drain(struct client *c, const struct protocol_request *req)
{
    return set_server_admin(c, req, SERVER_DRAINING);
}

static json_t *cmd_reload(struct client *c, const struct protocol_request *req)
{
    struct conf_errors errs = {0}, notes = {0};
    json_t *reply;

    log_info("reload requested by %s", c->who);
    if (reloader_run(c->cs->reloader, &errs, &notes) < 0)
        reply = protocol_reload_refused(&errs);
    else
        reply = protocol_reload_reply(reloader_count(c->cs->reloader), &notes);
    conf_errors_clear(&errs);
    conf_errors_clear(&notes);
    return reply;
}

_Static_assert(PROTOCOL_STEPS_MAX == ROLLOUT_STEPS_MAX, "a plan on the wire fits a rollout's");

static json_t *cmd_rollout_start(struct client *c, const struct protocol_request *req)
{
    struct state_plan plan = {.nsteps = (uint32_t)req->nsteps, .step_s = req->step_s};
    struct state_error err = {0};
    json_t *reply;

    memcpy(plan.steps_bp, req->steps_bp, req->nsteps * sizeof(plan.steps_bp[0]));
    if (rollout_start(c->cs->status->rollout, &plan, c->who, req->reason, req->expect_generation,
                      &err) < 0)
        return protocol_error_reply(protocol_code_of_state(err.code), "%s", err.message);
    reply = protocol_state_reply(service_state(c->cs->svc));
    if (reply != NULL &&
        json_object_set_new(reply, "rollout", rollout_status_json(c->cs->status->rollout)) < 0) {
        json_decref(reply);
        return NULL;
    }
    return reply;
}

static json_t *cmd_rollout_status(struct client *c, const struct protocol_request *req)
{
    json_t *st = rollout_status_json(c->cs->status->rollout);

    return st != NULL ? json_pack("{s:b, s:o}", "ok", 1, "rollout", st) : NULL;
}

static json_t *cmd_rollout_report(struct client *c, const struct protocol_request *req)
{
    json_t *report = rollout_report_json(c->cs->status->rollout);

    if (report == NULL)
        return protocol_error_reply("not_found",
                                    "no rollout has finished since switchyard started");
    return json_pack("{s:b, s:o}", "ok", 1, "report", report);
}

/* Commands whose arguments are checked but which this version does not
 * carry out yet. */
static json_t *cmd_unsupported(struct client *c, const struct protocol_request *req)
{
    return protocol_error_reply("not_supported", "%s is not supported in this version",
                                protocol_cmd_name(req->cmd));
}

/* Indexed by enum protocol_cmd; a NULL entry answers not_supported. */
static const command_cb handlers[PROTOCOL_CMDS] = {
    [PROTOCOL_CMD_STATUS] = cmd_status,
    [PROTOCOL_CMD_WEIGHT] = cmd_weight,
    [PROTOCOL_CMD_PAUSE] = cmd_pause,
    [PROTOCOL_CMD_RESUME] = cmd_resume,
    [PROTOCOL_CMD_PROMOTE] = cmd_promote,
    [PROTOCOL_CMD_ROLLBACK] = cmd_rollback,
    [PROTOCOL_CMD_EVENTS] = cmd_events,
    [PROTOCOL_CMD_SERVER_DISABLE] = cmd_server_disable,
    [PROTOCOL_CMD_SERVER_ENABLE] = cmd_server_enable,
    [PROTOCOL_CMD_SERVER_DRAIN] = cmd_server_drain,
    [PROTOCOL_CMD_RELOAD] = cmd_reload,
    [PROTOCOL_CMD_ROLLOUT_START] = cmd_rollout_start,
    [PROTOCOL_CMD_ROLLOUT_STATUS] = cmd_rollout_status,
    [PROTOCOL_CMD_ROLLOUT_REPORT] = cmd_rollout_report,
};

/* Returns a new reply to a request (borrowed), or NULL when out of memory. */
static json_t *dispatch(struct client *c, const struct protocol_request *req)
{
    if (handlers[req->cmd] == NULL)
        return cmd_unsupported(c, req);
    return handlers[req->cmd](c, req);
}

/* Sends reply (new, consumed; NULL: out of memory, which closes c). */
static void send_reply(struct client *c, json_t *reply)
{
    if (reply == NULL) {
        client_close(c, "out of memory");
        return;
    }
    if (json_is_false(json_object_get(reply, "ok")))
        log_debug("control socket: %s: %s", c->who,
                  json_string_value(json_object_get(json_object_get(reply, "error"), "code")));
    (void)client_send(c, reply);
    json_decref(reply);
}

/* ------------------------------------------------------------------------ */
/* The fleet's events: a reply that comes when Redis answers */

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_end_input(struct client *c);

/* With Redis, events lists the fleet's stream. --local, and --follow (a
 * follower streams this instance's ring, where changes taken from the fleet
 * show as op "sync"), stay with this instance. */
static bool events_from_fleet(const struct client *c, const struct protocol_request *req)
{
    return req->cmd == PROTOCOL_CMD_EVENTS && c->cs->status->sync != NULL && !req->local &&
           !req->follow;
}

/* Returns a new reply to the stream's events (stolen) or to err. */
static json_t *fleet_events_reply(json_t *events, const char *err, uint64_t since)
{
    if (events == NULL)
        return protocol_error_reply(
            "redis_unavailable",
            "%s; `switchyardctl events --local` shows this instance's own events", err);
    protocol_events_since(events, since);
    return protocol_events_reply(events, CTLSOCK_LINE_MAX);
}

static void fleet_events_cb(json_t *events, const char *err, void *arg)
{
    struct fleet_read *fr = arg;
    struct client *c = fr->client;
    uint64_t since = fr->since;

    free(fr);
    if (c == NULL) { /* gone while Redis was asked */
        json_decref(events);
        return;
    }
    c->reading = NULL;
    send_reply(c, fleet_events_reply(events, err, since));
    /* The requests that came meanwhile are next. */
    client_read_cb(c->bev, c);
    if (!c->dead && c->eof && c->reading == NULL)
        client_end_input(c);
}

/* Asks Redis for the fleet's events on behalf of c, which takes no other
 * request until the reply went out. Returns 0, or -1 when out of memory. */
static int fleet_events_start(struct client *c, const struct protocol_request *req)
{
    struct fleet_read *fr = calloc(1, sizeof(*fr));

    if (fr == NULL)
        return -1;
    *fr = (struct fleet_read){.client = c, .since = req->since};
    if (redis_sync_read_events(c->cs->status->sync, CTLSOCK_FLEET_EVENTS_MS, fleet_events_cb, fr) <
        0) {
        free(fr);
        return -1;
    }
    c->reading = fr;
    return 0;
}

/* Parses and answers one line (borrowed, len bytes, no newline). */
static void handle_line(struct client *c, const char *line, size_t len)
{
    struct protocol_request req;
    struct protocol_error err;

    if (protocol_parse(line, len, &req, &err) < 0) {
        send_reply(c, protocol_error_reply(err.code, "%s", err.message));
    } else if (!events_from_fleet(c, &req)) {
        send_reply(c, dispatch(c, &req));
    } else if (fleet_events_start(c, &req) < 0) {
        client_close(c, "out of memory");
    }
}

/* ------------------------------------------------------------------------ */
/* Client callbacks */

/* Takes one complete line off input into a new string, or returns NULL when
 * no line is complete. *too_long is set when a line passes the limit. */
static char *next_line(struct evbuffer *in, size_t *len, bool *too_long)
{
    size_t eol_len = 0;
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);

    *too_long = false;
    if (eol.pos < 0) {
        *too_long = evbuffer_get_length(in) > CTLSOCK_LINE_MAX;
        return NULL;
    }
    if ((size_t)eol.pos > CTLSOCK_LINE_MAX) {
        *too_long = true;
        return NULL;
    }
    return evbuffer_readln(in, len, EVBUFFER_EOL_LF);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (!c->dead && !c->closing && c->reading == NULL) {
        size_t len = 0;
        bool too_long;
        char *line = next_line(in, &len, &too_long);
        if (too_long) {
            client_send_last(c,
                             protocol_error_reply("line_too_long",
                                                  "a request line is at most %d bytes",
                                                  CTLSOCK_LINE_MAX),
                             "line too long");
            return;
        }
        if (line == NULL)
            return;
        if (c->following) {
            /* A follower only listens; what it sends is not a request. */
            free(line);
            continue;
        }
        handle_line(c, line, len);
        free(line);
    }
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;

    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        client_close(c, "closed after the last reply");
}

/* The peer sends no more requests: c closes once its replies went out. */
static void client_end_input(struct client *c)
{
    c->closing = true;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        client_close(c, "client closed");
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *c = arg;

    if (what & BEV_EVENT_EOF) {
        /* A half-close means "no more requests", not "stop answering": the
         * replies already queued, and one Redis still owes, go out first. A
         * follower is closed too: a peer that went away would otherwise hold
         * its slot until an event happened to fail a write, and one that
         * only half-closed has said it is done. */
        bufferevent_disable(bev, EV_READ);
        c->eof = true;
        if (c->reading == NULL)
            client_end_input(c);
    } else if (what & BEV_EVENT_ERROR) {
        client_close(c, strerror(EVUTIL_SOCKET_ERROR()));
    } else if (what & BEV_EVENT_TIMEOUT) {
        client_close(c, (what & BEV_EVENT_READING) ? "idle" : "not reading its replies");
    }
}

/* ------------------------------------------------------------------------ */
/* Accepting */

/* A peer may steer when its uid is in allow_uids or its gid (the primary
 * one: SO_PEERCRED reports no other) is in allow_gids. */
static bool peer_allowed(const struct conf_admin *a, const struct ucred *cred)
{
    for (size_t i = 0; i < a->nallow_uids; i++) {
        if (a->allow_uids[i] == cred->uid)
            return true;
    }
    for (size_t i = 0; i < a->nallow_gids; i++) {
        if (a->allow_gids[i] == cred->gid)
            return true;
    }
    return false;
}

/* Returns a new client on fd (stolen), linked into cs, or NULL. */
static struct client *client_new(struct ctlsock *cs, evutil_socket_t fd)
{
    struct client *c = calloc(1, sizeof(*c));

    if (c != NULL)
        c->bev = bufferevent_socket_new(cs->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c == NULL || c->bev == NULL) {
        free(c);
        evutil_closesocket(fd);
        return NULL;
    }
    c->cs = cs;
    cs->nclients++;
    c->next = cs->clients;
    if (cs->clients != NULL)
        cs->clients->prev = c;
    cs->clients = c;
    /* Reading pauses at one line past the limit: enough to tell "too long". */
    bufferevent_setwatermark(c->bev, EV_READ, 0, CTLSOCK_LINE_MAX + 2);
    bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    return c;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct ctlsock *cs = arg;
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    bool known = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0;
    struct client *c = client_new(cs, fd);

    if (c == NULL) {
        log_warn("control socket: out of memory for a client");
        return;
    }
    if (known)
        snprintf(c->who, sizeof(c->who), "uid:%lu", (unsigned long)cred.uid);
    else
        snprintf(c->who, sizeof(c->who), "uid:unknown");
    if (!known || !peer_allowed(&reloader_current(cs->reloader)->cfg->admin, &cred)) {
        client_send_last(c,
                         protocol_error_reply("forbidden",
                                              "%s (gid %ld) is in neither admin.allow_uids "
                                              "nor admin.allow_gids",
                                              c->who, known ? (long)cred.gid : -1L),
                         "forbidden");
        return;
    }
    /* The descriptors are the data plane's too: a bounded number of
     * clients, and none may sit idle for ever. */
    if (cs->nclients > CTLSOCK_CLIENTS_MAX) {
        client_send_last(
            c, protocol_error_reply("busy", "more than %d control clients", CTLSOCK_CLIENTS_MAX),
            "busy");
        return;
    }
    bufferevent_set_timeouts(c->bev, &ctlsock_idle, &ctlsock_idle);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
        client_close(c, "cannot enable the connection");
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctlsock *cs = arg;

    evconnlistener_enable(cs->listener);
}

/* Out of descriptors and the like: pause accepting for a moment instead of
 * spinning on a listener that stays readable, and say so once. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct ctlsock *cs = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval pause = {0, CTLSOCK_ACCEPT_PAUSE_MS * 1000};

    log_warn("control socket: accept: %s: pausing for %d ms", evutil_socket_error_to_string(err),
             CTLSOCK_ACCEPT_PAUSE_MS);
    evconnlistener_disable(l);
    event_add(cs->resume, &pause);
}

/* Feeds followers; the service calls it after every applied change. */
static void followers_feed_cb(const struct state_event *e, void *arg)
{
    struct ctlsock *cs = arg;
    json_t *line = protocol_event_line(events_to_json(e));
    struct client *c = cs->clients;

    while (c != NULL) {
        struct client *next = c->next; /* client_send may unlink c */
        if (c->following && !c->closing) {
            if (line == NULL)
                client_close(c, "out of memory for an event");
            else
                (void)client_send(c, line);
        }
        c = next;
    }
    json_decref(line);
}

/* ------------------------------------------------------------------------ */
/* The socket file */

/* Asks whether a server listens on sun without ever waiting for it: a
 * blocking connect() to a live server whose backlog is full (a wedged
 * process, say) would hang start-up for as long as that lasts. Returns 1
 * when something listens, 0 when nothing does, -1 with errno when it cannot
 * tell. */
static int probe_listener(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int err = errno;
    close(fd);
    errno = err;
    if (rc == 0)
        return 1;
    /* A Unix socket answers a full backlog with EAGAIN, not EINPROGRESS;
     * either way someone is there. */
    if (err == EAGAIN || err == EINPROGRESS)
        return 1;
    if (err == ECONNREFUSED)
        return 0;
    return -1;
}

/* Removes a socket file nothing answers on; refuses a live socket or a
 * file that is not a socket. Returns 0 when path is free to bind. */
static int clear_stale(const char *path, const struct sockaddr_un *sun)
{
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        log_error("control socket: %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("control socket: %s exists and is not a socket: refusing to replace it", path);
        return -1;
    }
    int live = probe_listener(sun);
    if (live == 1) {
        log_error("control socket: %s: another process is listening there", path);
        return -1;
    }
    if (live < 0) {
        log_error("control socket: %s: cannot tell whether it is in use: %s", path,
                  strerror(errno));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        log_error("control socket: cannot remove the stale %s: %s", path, strerror(errno));
        return -1;
    }
    log_info("control socket: removed the stale socket file %s", path);
    return 0;
}

/* Binds fd to sun with the file mode mode, never more open than that. On
 * Linux the file bind() creates takes the socket inode's mode masked by the
 * umask, so an fchmod() before bind() makes the file appear with at most
 * mode's bits, without a window and without umask(), which is process-wide
 * and would race files other threads create. The chmod() after it adds
 * what the umask took away (and is the whole fix where fchmod() on a
 * socket does nothing); nobody can connect before listen() anyway. */
static int bind_with_mode(int fd, const struct sockaddr_un *sun, unsigned mode)
{
    const char *path = sun->sun_path;

    if (fchmod(fd, (mode_t)mode) < 0)
        log_debug("control socket: fchmod before bind: %s", strerror(errno));
    if (bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) < 0) {
        log_error("control socket: bind %s: %s", path, strerror(errno));
        return -1;
    }
    if (chmod(path, (mode_t)mode) < 0) {
        log_error("control socket: chmod %s %04o: %s", path, mode, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

/* Returns a new bound socket at path, ready to listen, or -1; *bound gets
 * the socket file's identity. */
static evutil_socket_t bind_socket(const char *path, unsigned mode, struct stat *bound)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    if (strlen(path) >= sizeof(sun.sun_path)) {
        log_error("control socket: %s: path longer than %zu bytes", path, sizeof(sun.sun_path) - 1);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (clear_stale(path, &sun) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("control socket: socket: %s", strerror(errno));
        return -1;
    }
    if (bind_with_mode(fd, &sun, mode) < 0) {
        close(fd);
        return -1;
    }
    if (lstat(path, bound) < 0) {
        log_error("control socket: %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Removes the socket file when it is still the one we bound: after an
 * operator removed ours and started a second switchyard on the same path,
 * the file there is that one's, and removing it would cut it off. */
static void unlink_own_socket(const struct ctlsock *cs)
{
    struct stat st;

    if (lstat(cs->path, &st) < 0) {
        if (errno != ENOENT)
            log_warn("control socket: %s: %s", cs->path, strerror(errno));
        return;
    }
    if (st.st_dev != cs->dev || st.st_ino != cs->ino) {
        log_info("control socket: %s is no longer ours: left in place", cs->path);
        return;
    }
    if (unlink(cs->path) < 0 && errno != ENOENT)
        log_warn("control socket: cannot remove %s: %s", cs->path, strerror(errno));
}

struct ctlsock *ctlsock_new(struct event_base *base, const struct status_sources *status)
{
    const struct config *cfg = reloader_current(status->reloader)->cfg;
    struct ctlsock *cs = calloc(1, sizeof(*cs));
    evutil_socket_t fd = -1;
    struct stat bound;

    if (cs == NULL || (cs->path = strdup(cfg->admin.socket)) == NULL)
        goto nomem;
    cs->base = base;
    cs->reloader = status->reloader;
    cs->svc = status->svc;
    cs->status = status;
    cs->reaper = event_new(base, -1, 0, reap_cb, cs);
    cs->resume = event_new(base, -1, 0, accept_resume_cb, cs);
    if (cs->reaper == NULL || cs->resume == NULL)
        goto nomem;
    fd = bind_socket(cs->path, cfg->admin.socket_mode, &bound);
    if (fd < 0)
        goto fail;
    cs->dev = bound.st_dev;
    cs->ino = bound.st_ino;
    cs->listener = evconnlistener_new(base, accept_cb, cs, LEV_OPT_CLOSE_ON_FREE, BACKLOG, fd);
    if (cs->listener == NULL) {
        log_error("control socket: listen %s: %s", cs->path, strerror(errno));
        unlink(cs->path);
        close(fd);
        goto fail;
    }
    evconnlistener_set_error_cb(cs->listener, accept_error_cb);
    service_on_event(cs->svc, followers_feed_cb, cs);
    log_info("control socket on %s (mode %04o)", cs->path, cfg->admin.socket_mode);
    return cs;
nomem:
    log_error("control socket: out of memory");
fail:
    if (cs != NULL) {
        if (cs->reaper != NULL)
            event_free(cs->reaper);
        if (cs->resume != NULL)
            event_free(cs->resume);
        free(cs->path);
        free(cs);
    }
    return NULL;
}

void ctlsock_free(struct ctlsock *cs)
{
    if (cs == NULL)
        return;
    service_on_event(cs->svc, NULL, NULL);
    while (cs->clients != NULL)
        client_close(cs->clients, "shutting down");
    reap_cb(-1, 0, cs);
    evconnlistener_free(cs->listener);
    unlink_own_socket(cs);
    event_free(cs->reaper);
    event_free(cs->resume);
    free(cs->path);
    free(cs);
}
