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
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <jansson.h>

#include "conf/log.h"
#include "control/socket.h"

#define BACKLOG 64

struct client {
    struct ctlsock *cs;
    struct bufferevent *bev;
    char who[32];   /* "uid:<uid>", the state's updated_by */
    bool following; /* gets {"event":...} lines */
    bool closing;   /* no more input; closed once the output is flushed */
    bool dead;      /* on the dead list, freed by reap_cb */
    struct client *next;
    struct client *prev;
};

/* A control client that sends nothing (or reads nothing) for this long is
 * closed: descriptors are shared with the data plane. */
static const struct timeval ctlsock_idle = {CTLSOCK_IDLE_S, 0};

struct ctlsock {
    struct event_base *base;
    const struct config *cfg;
    struct service *svc;
    struct evconnlistener *listener;
    struct event *reaper; /* frees the dead list */
    char *path;
    struct client *clients; /* live, doubly linked */
    unsigned nclients;      /* live ones */
    struct event *resume;   /* re-enables accepting after EMFILE and the like */
    struct client *dead;    /* closed, waiting for reap_cb (singly linked) */
};

/* The optional fields every state change takes, validated. */
struct request {
    const char *reason;         /* borrowed from the request; NULL when absent */
    uint64_t expect_generation; /* 0 when absent */
};

typedef json_t *(*command_cb)(struct client *c, const json_t *req);

struct command {
    const char *name;
    command_cb run;
    const char *keys; /* allowed keys besides "cmd", space separated */
    int op;           /* enum state_op for state changes, else -1 */
};

static json_t *cmd_status(struct client *c, const json_t *req);
static json_t *cmd_change(struct client *c, const json_t *req);
static json_t *cmd_events(struct client *c, const json_t *req);
static json_t *cmd_unsupported(struct client *c, const json_t *req);

static const struct command commands[] = {
    {"status", cmd_status, "", -1},
    {"weight", cmd_change, "percent reason expect_generation", STATE_OP_WEIGHT},
    {"pause", cmd_change, "reason expect_generation", STATE_OP_PAUSE},
    {"resume", cmd_change, "reason expect_generation", STATE_OP_RESUME},
    {"promote", cmd_change, "reason expect_generation", STATE_OP_PROMOTE},
    {"rollback", cmd_change, "reason expect_generation", STATE_OP_ROLLBACK},
    {"events", cmd_events, "since follow", -1},
    {"server.disable", cmd_unsupported, NULL, -1},
    {"server.enable", cmd_unsupported, NULL, -1},
    {"server.drain", cmd_unsupported, NULL, -1},
    {"reload", cmd_unsupported, NULL, -1},
    {"rollout.start", cmd_unsupported, NULL, -1},
};
#define COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Converts a percentage to basis points: 0 and *bp set when p is within
 * 0..100 with at most two decimals, else -1. */
static int percent_bp(double p, uint32_t *bp)
{
    /* The request was parsed to a double already, so the config's rule on
     * the literal's digits does not apply: 12.345 * 100 lands half a basis
     * point away from any integer, 25.5 * 100 within rounding noise. */
    if (!isfinite(p) || p < 0 || p > 100)
        return -1;
    double scaled = nearbyint(p * 100);
    if (fabs(p * 100 - scaled) >= 1e-6)
        return -1;
    *bp = (uint32_t)scaled;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Replies */

/* Returns a new error reply. */
static json_t *error_reply(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *error_reply(const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* The message may quote a client's bytes: keep it valid UTF-8. */
    char clean[512];
    state_text_copy(clean, sizeof(clean), msg);
    return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", clean);
}

/* Returns a new STATE object of the protocol for s (borrowed). */
static json_t *state_reply_json(const struct state *s)
{
    char when[96];
    enum conf_colour cand = s->stable == CONF_BLUE ? CONF_GREEN : CONF_BLUE;

    log_format_time(s->updated_ms, when, sizeof(when));
    return json_pack("{s:s, s:s, s:f, s:s, s:I, s:I, s:s, s:s, s:s}", "stable",
                     conf_colour_name(s->stable), "candidate", conf_colour_name(cand),
                     "candidate_percent", s->candidate_bp / 100.0, "phase",
                     state_phase_name(s->phase), "step", (json_int_t)s->step, "generation",
                     (json_int_t)s->generation, "updated_by", s->updated_by, "reason", s->reason,
                     "updated_at", when);
}

/* Returns a new {"ok":true,"state":...} for the service's current state. */
static json_t *state_reply(const struct ctlsock *cs)
{
    json_t *st = state_reply_json(service_state(cs->svc));

    if (st == NULL)
        return NULL;
    return json_pack("{s:b, s:o}", "ok", 1, "state", st);
}

/* Returns a new {"role":..., "servers":[...]} for one pool. */
static json_t *pool_json(const struct conf_pool *p, bool stable)
{
    json_t *servers = json_array();

    for (size_t i = 0; servers != NULL && i < p->nservers; i++) {
        const struct conf_server *s = &p->servers[i];
        json_t *o = json_pack("{s:s, s:s, s:I}", "name", s->name, "addr", s->addr.text, "weight",
                              (json_int_t)s->weight);
        if (o == NULL || json_array_append_new(servers, o) < 0) {
            json_decref(servers);
            return NULL;
        }
    }
    if (servers == NULL)
        return NULL;
    return json_pack("{s:s, s:o}", "role", stable ? "stable" : "candidate", "servers", servers);
}

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
/* Request validation */

/* True when every key of req is "cmd" or one of keys (space separated). */
/* True when k is one of the space-separated words of list. Compares whole
 * words, so neither a prefix nor the empty key matches. */
static bool key_in_list(const char *list, const char *k)
{
    size_t n = strlen(k);

    while (*list != '\0') {
        const char *end = strchr(list, ' ');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len == n && n > 0 && memcmp(list, k, n) == 0)
            return true;
        list += len;
        while (*list == ' ')
            list++;
    }
    return false;
}

static bool keys_allowed(const json_t *req, const char *keys, const char **bad)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)req, k, v)
    {
        if (strcmp(k, "cmd") == 0)
            continue;
        if (!key_in_list(keys, k)) {
            *bad = k;
            return false;
        }
    }
    return true;
}

/* A reason ends up in logs, event lines and operators' terminals: no NUL,
 * no line breaks that forge lines, no escape sequences. */
static bool has_control_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* Fills r's optional reason and expect_generation; returns NULL or a new error. */
static json_t *parse_change_fields(const json_t *req, struct request *r)
{
    const json_t *v = json_object_get(req, "reason");

    if (v != NULL) {
        if (!json_is_string(v))
            return error_reply("bad_request", "reason: expected a string");
        if (json_string_length(v) >= STATE_WHY_MAX)
            return error_reply("bad_request", "reason: at most %d bytes", STATE_WHY_MAX - 1);
        if (has_control_chars(json_string_value(v), json_string_length(v)))
            return error_reply(
                "bad_request",
                "reason: must not contain control characters (NUL, newline, ESC...)");
        r->reason = json_string_value(v);
    }
    v = json_object_get(req, "expect_generation");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return error_reply("bad_request", "expect_generation: expected an integer >= 1");
        r->expect_generation = (uint64_t)json_integer_value(v);
    }
    return NULL;
}

/* Reads "percent" as basis points into *bp; returns NULL or a new error. */
static json_t *parse_percent(const json_t *req, uint32_t *bp)
{
    const json_t *v = json_object_get(req, "percent");

    if (v == NULL)
        return error_reply("bad_request", "percent: required");
    if (!json_is_number(v))
        return error_reply("bad_request", "percent: expected a number");
    double p = json_number_value(v);
    if (!(p >= 0 && p <= 100))
        return error_reply("bad_request", "percent: expected 0..100, got %g", p);
    if (percent_bp(p, bp) < 0)
        return error_reply("bad_request", "percent: at most two decimals (got %.17g)", p);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Commands: each returns a new reply, or NULL when out of memory. */

static json_t *cmd_status(struct client *c, const json_t *req)
{
    const struct ctlsock *cs = c->cs;
    enum conf_colour stable = service_state(cs->svc)->stable;
    json_t *reply = state_reply(cs);
    json_t *pools = json_object();

    if (reply == NULL || pools == NULL)
        goto fail;
    for (int i = 0; i < CONF_COLOURS; i++) {
        json_t *p = pool_json(&cs->cfg->pools[i], (enum conf_colour)i == stable);
        if (p == NULL || json_object_set_new(pools, conf_colour_name((enum conf_colour)i), p) < 0)
            goto fail;
    }
    if (json_object_set_new(reply, "pools", pools) < 0) {
        pools = NULL;
        goto fail;
    }
    return reply;
fail:
    json_decref(pools);
    json_decref(reply);
    return NULL;
}

/* state_apply()'s codes, in the protocol's words. */
static const char *protocol_code(const char *state_code)
{
    if (state_code == NULL || strcmp(state_code, "bad_argument") == 0)
        return "bad_request";
    return state_code;
}

static const struct command *command_find(const char *name)
{
    for (size_t i = 0; i < COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

static json_t *cmd_change(struct client *c, const json_t *req)
{
    const struct command *cmd = command_find(json_string_value(json_object_get(req, "cmd")));
    struct state_change ch = {.op = (enum state_op)cmd->op, .who = c->who};
    struct state_error err = {0};
    struct request r = {0};
    json_t *bad = parse_change_fields(req, &r);

    if (bad == NULL && ch.op == STATE_OP_WEIGHT)
        bad = parse_percent(req, &ch.weight_bp);
    if (bad != NULL)
        return bad;
    ch.why = r.reason;
    ch.expect_generation = r.expect_generation;
    if (service_apply(c->cs->svc, &ch, &err) < 0)
        return error_reply(protocol_code(err.code), "%s", err.message);
    return state_reply(c->cs);
}

struct events_walk {
    json_t *list;
    int rc;
};

static int events_add_cb(const struct state_event *e, void *arg)
{
    struct events_walk *w = arg;
    json_t *j = events_to_json(e);

    if (j == NULL || json_array_append_new(w->list, j) < 0) {
        w->rc = -1;
        return 1;
    }
    return 0;
}

/* A reply is one line, and clients read lines of at most CTLSOCK_LINE_MAX:
 * drops the oldest events until the list fits in budget bytes. Returns true
 * when any was dropped. */
static bool keep_newest_fitting(json_t *list, size_t budget)
{
    size_t total = 0;
    bool dropped = false;

    for (size_t i = 0; i < json_array_size(list); i++)
        total += json_dumpb(json_array_get(list, i), NULL, 0, JSON_COMPACT) + 1;
    while (total > budget && json_array_size(list) > 0) {
        total -= json_dumpb(json_array_get(list, 0), NULL, 0, JSON_COMPACT) + 1;
        json_array_remove(list, 0);
        dropped = true;
    }
    return dropped;
}

static json_t *cmd_events(struct client *c, const json_t *req)
{
    const json_t *since = json_object_get(req, "since");
    const json_t *follow = json_object_get(req, "follow");
    struct events_walk w = {0};

    if (since != NULL && (!json_is_integer(since) || json_integer_value(since) < 0))
        return error_reply("bad_request", "since: expected an integer >= 0");
    if (follow != NULL && !json_is_boolean(follow))
        return error_reply("bad_request", "follow: expected true or false");
    w.list = json_array();
    if (w.list == NULL)
        return NULL;
    events_foreach(service_events(c->cs->svc),
                   since != NULL ? (uint64_t)json_integer_value(since) : 0, events_add_cb, &w);
    if (w.rc < 0) {
        json_decref(w.list);
        return NULL;
    }
    if (json_is_true(follow)) {
        /* A follower waits for events: its only limit is not reading them. */
        c->following = true;
        bufferevent_set_timeouts(c->bev, NULL, &ctlsock_idle);
    }
    bool truncated = keep_newest_fitting(w.list, CTLSOCK_LINE_MAX - 64);
    return json_pack("{s:b, s:o, s:b}", "ok", 1, "events", w.list, "truncated", truncated);
}

static json_t *cmd_unsupported(struct client *c, const json_t *req)
{
    const char *name = json_string_value(json_object_get(req, "cmd"));

    return error_reply("not_supported", "%s is not supported in this version", name);
}

/* Returns a new reply for one parsed request (borrowed). */
static json_t *dispatch(struct client *c, const json_t *req)
{
    const json_t *cmd = json_object_get(req, "cmd");
    const struct command *found;
    const char *bad = NULL;

    if (!json_is_object(req))
        return error_reply("bad_request", "expected a JSON object");
    if (cmd == NULL)
        return error_reply("bad_request", "cmd: required");
    if (!json_is_string(cmd))
        return error_reply("bad_request", "cmd: expected a string");
    found = command_find(json_string_value(cmd));
    if (found == NULL)
        return error_reply("unknown_command", "unknown command \"%s\"", json_string_value(cmd));
    if (found->keys != NULL && !keys_allowed(req, found->keys, &bad))
        return error_reply("bad_request", "%s: unknown key for %s", bad, found->name);
    return found->run(c, req);
}

/* Parses and answers one line (borrowed, len bytes, no newline). */
static void handle_line(struct client *c, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *reply;

    if (req == NULL) {
        log_debug("control socket: %s: bad JSON: %s", c->who, jerr.text);
        reply = error_reply("bad_json", "column %d: %s", jerr.column, jerr.text);
    } else {
        reply = dispatch(c, req);
        json_decref(req);
    }
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

    while (!c->dead && !c->closing) {
        size_t len = 0;
        bool too_long;
        char *line = next_line(in, &len, &too_long);
        if (too_long) {
            client_send_last(c,
                             error_reply("line_too_long", "a request line is at most %d bytes",
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

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *c = arg;

    if (what & BEV_EVENT_EOF) {
        /* A half-close means "no more requests", not "stop answering": the
         * replies already queued go out first, and a follower keeps
         * following until a write fails. */
        bufferevent_disable(bev, EV_READ);
        if (c->following)
            return;
        c->closing = true;
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            client_close(c, "client closed");
    } else if (what & BEV_EVENT_ERROR) {
        client_close(c, strerror(EVUTIL_SOCKET_ERROR()));
    } else if (what & BEV_EVENT_TIMEOUT) {
        client_close(c, (what & BEV_EVENT_READING) ? "idle" : "not reading its replies");
    }
}

/* ------------------------------------------------------------------------ */
/* Accepting */

static bool uid_allowed(const struct config *cfg, uid_t uid)
{
    for (size_t i = 0; i < cfg->admin.nallow_uids; i++) {
        if (cfg->admin.allow_uids[i] == uid)
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
    if (!known || !uid_allowed(cs->cfg, cred.uid)) {
        client_send_last(c, error_reply("forbidden", "%s is not in admin.allow_uids", c->who),
                         "forbidden");
        return;
    }
    /* The descriptors are the data plane's too: a bounded number of
     * clients, and none may sit idle for ever. */
    if (cs->nclients > CTLSOCK_CLIENTS_MAX) {
        client_send_last(
            c, error_reply("busy", "more than %d control clients", CTLSOCK_CLIENTS_MAX), "busy");
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
    json_t *ev = events_to_json(e);
    json_t *line = ev != NULL ? json_pack("{s:o}", "event", ev) : NULL;
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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("control socket: socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int err = errno;
    close(fd);
    if (rc == 0) {
        log_error("control socket: %s: another process is listening there", path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        log_error("control socket: %s: cannot tell whether it is in use: %s", path, strerror(err));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        log_error("control socket: cannot remove the stale %s: %s", path, strerror(errno));
        return -1;
    }
    log_info("control socket: removed the stale socket file %s", path);
    return 0;
}

/* Returns a new listening-ready bound socket at path, or -1. */
static evutil_socket_t bind_socket(const char *path, unsigned mode)
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
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        log_error("control socket: bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* Before listen(): nobody can connect while the mode is still umask's. */
    if (chmod(path, (mode_t)mode) < 0) {
        log_error("control socket: chmod %s %04o: %s", path, mode, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

struct ctlsock *ctlsock_new(struct event_base *base, const struct config *cfg, struct service *svc)
{
    struct ctlsock *cs = calloc(1, sizeof(*cs));
    evutil_socket_t fd = -1;

    if (cs == NULL || (cs->path = strdup(cfg->admin.socket)) == NULL)
        goto nomem;
    cs->base = base;
    cs->cfg = cfg;
    cs->svc = svc;
    cs->reaper = event_new(base, -1, 0, reap_cb, cs);
    cs->resume = event_new(base, -1, 0, accept_resume_cb, cs);
    if (cs->reaper == NULL || cs->resume == NULL)
        goto nomem;
    fd = bind_socket(cs->path, cfg->admin.socket_mode);
    if (fd < 0)
        goto fail;
    cs->listener = evconnlistener_new(base, accept_cb, cs, LEV_OPT_CLOSE_ON_FREE, BACKLOG, fd);
    if (cs->listener == NULL) {
        log_error("control socket: listen %s: %s", cs->path, strerror(errno));
        unlink(cs->path);
        close(fd);
        goto fail;
    }
    evconnlistener_set_error_cb(cs->listener, accept_error_cb);
    service_on_event(svc, followers_feed_cb, cs);
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
    if (unlink(cs->path) < 0 && errno != ENOENT)
        log_warn("control socket: cannot remove %s: %s", cs->path, strerror(errno));
    event_free(cs->reaper);
    event_free(cs->resume);
    free(cs->path);
    free(cs);
}
