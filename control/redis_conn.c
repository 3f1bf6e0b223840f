/* redis_conn.c - a Redis link on the main event loop that keeps itself up.
 *
 * Ownership with hiredis 0.14, which frees an async context itself after an
 * error or a failed connect: link->ac is set only while the context is ours
 * to free, and ac->data points back at the link only while the link still
 * wants its callbacks. Whoever ends a context (we, or hiredis when the
 * connection breaks) clears both first, so a callback that arrives for a
 * context being torn down finds ac->data NULL and does nothing.
 *
 * A command is a struct pending with its own timer. It sits on the conn's
 * list until answered (reply, timeout, loss or "not connected"); once sent,
 * hiredis holds it until it calls back (reply or NULL at teardown), which is
 * when it is freed, even if its caller was answered long before.
 *
 * Every user callback is the last thing its path does with the conn, so a
 * callback may free the conn: records already answered are off its list,
 * and a context freed from inside one of its own reply callbacks is only
 * marked by hiredis and freed when the callback returns.
 */
#include "control/redis_conn.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>

#include "conf/log.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DEFAULT_COMMAND_TIMEOUT_MS 500
#define DEFAULT_BACKOFF_FIRST_MS 100
#define DEFAULT_BACKOFF_MAX_MS 5000
#define WHY_MAX 256

enum link_state {
    LINK_WAITING,    /* no context; the timer starts the next try */
    LINK_CONNECTING, /* TCP/unix connect in progress; the timer is the deadline */
    LINK_HANDSHAKE,  /* AUTH, SELECT, SETNAME, PING sent; same deadline */
    LINK_UP,
};

/* What the connect sequence sends, in order; each reply must not be an error. */
enum handshake_step {
    HS_AUTH,
    HS_SELECT,
    HS_SETNAME,
    HS_PING,
};

static const char *const step_names[] = {"AUTH", "SELECT", "CLIENT SETNAME", "PING"};

struct link {
    struct redis_conn *conn;
    const char *name; /* "commands" or "subscriber", for logs */
    bool is_sub;      /* the pub/sub connection */
    bool started;     /* the subscriber starts with the first channel */
    enum link_state state;
    redisAsyncContext *ac;  /* set while ours to free */
    struct event *timer;    /* connect deadline, or the wait before the next try */
    uint32_t backoff_ms;    /* the next wait */
    unsigned handshake_due; /* replies still due before up */
    const char *abort_why;  /* set to fail the handshake from the timer */
    bool reported_down;     /* this outage is logged (and, for commands, reported) */
};

struct channel {
    char *name;
    redis_message_cb cb;
    void *arg;
    bool subscribed; /* confirmed on the current subscriber connection */
};

struct pending {
    struct redis_conn *conn; /* NULL once answered or orphaned */
    struct pending *prev, *next;
    struct event *timer; /* the deadline, or the immediate "not connected" */
    redis_reply_cb cb;
    void *arg;
    uint32_t timeout_ms;
    const char *early_err; /* answered from the loop without Redis */
    bool answered;
    bool in_hiredis; /* hiredis will call back with it (and then it is freed) */
};

struct redis_conn {
    struct event_base *base;
    struct redis_url url;
    char url_text[512]; /* redacted, for logs */
    struct redis_conn_opts opts;
    char *client_name;
    redis_conn_state_cb state_cb;
    void *state_arg;
    redis_sub_state_cb sub_cb;
    void *sub_arg;
    struct link cmd, sub;
    struct pending *pending; /* unanswered commands */
    struct channel channels[REDIS_CONN_MAX_CHANNELS];
    size_t nchannels;
    bool sub_reported; /* the last sub_cb said subscribed */
    char last_error[WHY_MAX];
    int64_t down_since_ms;
    uint64_t connects;
};

static void link_failed(struct link *l, const char *why);

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_tv(uint32_t ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static uint32_t or_default(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

/* Why ac's connection ended, in lower case ("closed by server",
 * "connection reset by peer"). */
static void describe_error(const redisAsyncContext *ac, char *out, size_t len)
{
    if (ac->c.err == REDIS_ERR_EOF)
        snprintf(out, len, "closed by server");
    else if (ac->c.errstr[0] == '\0')
        snprintf(out, len, "connection lost");
    else
        snprintf(out, len, "%c%s", tolower((unsigned char)ac->c.errstr[0]), ac->c.errstr + 1);
}

/* ---- commands -------------------------------------------------------- */

static void pending_unlink(struct pending *p)
{
    struct redis_conn *c = p->conn;

    if (c == NULL)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        c->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->conn = NULL;
}

static void pending_free(struct pending *p)
{
    pending_unlink(p);
    event_free(p->timer);
    free(p);
}

/* Takes p off the list and calls its callback; p stays allocated. */
static void pending_answer(struct pending *p, const redisReply *reply, const char *err)
{
    p->answered = true;
    pending_unlink(p);
    p->cb(reply, err, p->arg);
}

static void pending_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    char why[64];

    if (p->answered)
        return;
    if (p->early_err) {
        pending_answer(p, NULL, p->early_err);
        pending_free(p);
        return;
    }
    /* hiredis still holds p: the late reply, if any, frees it. */
    snprintf(why, sizeof(why), "timed out after %u ms", (unsigned)p->timeout_ms);
    pending_answer(p, NULL, why);
}

static void reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct pending *p = privdata;
    struct link *l = ac->data;

    /* A NULL reply on a live link: hiredis is tearing the connection down.
     * Mark the link down before answering, so that the answer's callback
     * sees it down (and may free the conn: p, held by hiredis, survives). */
    if (r == NULL && l != NULL && !p->answered) {
        char why[WHY_MAX];
        describe_error(ac, why, sizeof(why));
        ac->data = NULL;
        l->ac = NULL;
        link_failed(l, why);
    }
    p->in_hiredis = false;
    if (!p->answered)
        pending_answer(p, r, r ? NULL : "connection lost");
    pending_free(p);
}

static struct pending *pending_new(struct redis_conn *c, uint32_t timeout_ms, redis_reply_cb cb,
                                   void *arg)
{
    struct pending *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->timer = evtimer_new(c->base, pending_timer_cb, p);
    if (p->timer == NULL) {
        free(p);
        return NULL;
    }
    p->cb = cb;
    p->arg = arg;
    p->timeout_ms = or_default(timeout_ms, c->opts.command_timeout_ms);
    p->conn = c;
    p->next = c->pending;
    if (c->pending)
        c->pending->prev = p;
    c->pending = p;
    return p;
}

/* Answers p from the loop, never from inside the caller's call. */
static void pending_fail_soon(struct pending *p, const char *err)
{
    p->early_err = err;
    event_active(p->timer, EV_TIMEOUT, 0);
}

static int send_formatted(struct redis_conn *c, uint32_t timeout_ms, redis_reply_cb cb, void *arg,
                          const char *cmd, int len)
{
    struct pending *p = pending_new(c, timeout_ms, cb, arg);
    struct timeval tv;

    if (p == NULL)
        return -1;
    if (c->cmd.state != LINK_UP) {
        pending_fail_soon(p, "not connected");
        return 0;
    }
    if (redisAsyncFormattedCommand(c->cmd.ac, reply_cb, p, cmd, (size_t)len) != REDIS_OK) {
        pending_fail_soon(p, "connection lost"); /* it is being torn down */
        return 0;
    }
    p->in_hiredis = true;
    tv = ms_tv(p->timeout_ms);
    evtimer_add(p->timer, &tv);
    return 0;
}

int redis_conn_command(struct redis_conn *c, uint32_t timeout_ms, redis_reply_cb cb, void *arg,
                       int argc, const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    int rc;

    if (len < 0)
        return -1;
    rc = send_formatted(c, timeout_ms, cb, arg, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

int redis_conn_commandf(struct redis_conn *c, uint32_t timeout_ms, redis_reply_cb cb, void *arg,
                        const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len, rc;

    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -1;
    rc = send_formatted(c, timeout_ms, cb, arg, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

/* ---- subscriptions --------------------------------------------------- */

static bool all_subscribed(const struct redis_conn *c)
{
    if (c->sub.state != LINK_UP || c->nchannels == 0)
        return false;
    for (size_t i = 0; i < c->nchannels; i++) {
        if (!c->channels[i].subscribed)
            return false;
    }
    return true;
}

/* Tells the owner when redis_conn_subscribed() changes; the last thing done. */
static void report_subscribed(struct redis_conn *c)
{
    bool now = all_subscribed(c);

    if (now == c->sub_reported)
        return;
    c->sub_reported = now;
    if (c->sub_cb)
        c->sub_cb(now, c->sub_arg);
}

static void message_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct link *l = ac->data;
    struct channel *ch = privdata;
    const redisReply *reply = r;

    if (l == NULL || reply == NULL) /* torn down: the disconnect callback follows */
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "subscribe") == 0) {
        ch->subscribed = true;
        report_subscribed(l->conn);
    } else if (strcmp(reply->element[0]->str, "message") == 0 &&
               reply->element[2]->type == REDIS_REPLY_STRING) {
        ch->cb(ch->name, reply->element[2]->str, reply->element[2]->len, ch->arg);
    }
}

static void send_subscribe(struct link *l, struct channel *ch)
{
    if (redisAsyncCommand(l->ac, message_cb, ch, "SUBSCRIBE %s", ch->name) != REDIS_OK)
        log_warn("redis: %s: cannot subscribe to %s now; retried on reconnect", l->name, ch->name);
}

/* ---- the connect sequence -------------------------------------------- */

static void link_schedule_retry(struct link *l)
{
    const struct redis_conn_opts *o = &l->conn->opts;
    struct timeval tv = ms_tv(l->backoff_ms);

    l->state = LINK_WAITING;
    evtimer_add(l->timer, &tv);
    l->backoff_ms = l->backoff_ms >= o->backoff_max_ms / 2 ? o->backoff_max_ms : l->backoff_ms * 2;
}

static void report_down(struct link *l, const char *why, bool was_up)
{
    struct redis_conn *c = l->conn;

    if (was_up)
        log_warn("redis: %s connection to %s lost: %s; reconnecting", l->name, c->url_text, why);
    else
        log_warn("redis: %s connection to %s failed: %s; retrying every %u ms at most", l->name,
                 c->url_text, why, (unsigned)c->opts.backoff_max_ms);
}

/* The link's context is gone (freed by us or by hiredis, and detached):
 * waits for the next try, and reports the change once. */
static void link_failed(struct link *l, const char *why)
{
    struct redis_conn *c = l->conn;
    bool was_up = l->state == LINK_UP;
    bool report = was_up || !l->reported_down;

    evtimer_del(l->timer);
    l->abort_why = NULL;
    link_schedule_retry(l);
    if (l->is_sub) {
        for (size_t i = 0; i < c->nchannels; i++)
            c->channels[i].subscribed = false;
        if (report)
            report_down(l, why, was_up);
        l->reported_down = true;
        report_subscribed(c);
        return;
    }
    snprintf(c->last_error, sizeof(c->last_error), "%s", why);
    if (!report)
        return;
    report_down(l, why, was_up);
    l->reported_down = true;
    c->down_since_ms = now_ms();
    if (c->state_cb)
        c->state_cb(false, c->last_error, c->state_arg);
}

/* Ends a context that is ours (connect or handshake still running). */
static void link_drop(struct link *l, const char *why)
{
    redisAsyncContext *ac = l->ac;

    l->ac = NULL;
    if (ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac); /* from inside its own callback, hiredis defers it */
    }
    link_failed(l, why);
}

static void link_up(struct link *l)
{
    struct redis_conn *c = l->conn;

    evtimer_del(l->timer);
    l->state = LINK_UP;
    l->backoff_ms = c->opts.backoff_first_ms;
    log_info("redis: %s connection to %s is up", l->name, c->url_text);
    l->reported_down = false;
    if (l->is_sub) {
        for (size_t i = 0; i < c->nchannels; i++)
            send_subscribe(l, &c->channels[i]);
        return;
    }
    c->connects++;
    c->down_since_ms = 0;
    c->last_error[0] = '\0';
    if (c->state_cb)
        c->state_cb(true, "", c->state_arg);
}

static void handshake_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct link *l = ac->data;
    const redisReply *reply = r;
    enum handshake_step step = (enum handshake_step)(uintptr_t)privdata;
    char why[WHY_MAX];

    if (l == NULL)
        return;
    if (reply == NULL) { /* hiredis is freeing the context */
        describe_error(ac, why, sizeof(why));
        ac->data = NULL;
        l->ac = NULL;
        link_failed(l, why);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s failed: %s", step_names[step], reply->str);
        link_drop(l, why);
    } else if (--l->handshake_due == 0) {
        link_up(l);
    }
}

static int handshake_send(struct link *l, enum handshake_step step, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = redisvAsyncCommand(l->ac, handshake_cb, (void *)(uintptr_t)step, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK)
        return -1;
    l->handshake_due++;
    return 0;
}

/* Sends the whole sequence at once; the PING at the end proves that a
 * server answers even when nothing else is needed. */
static int handshake_start(struct link *l)
{
    const struct redis_conn *c = l->conn;
    const struct redis_url *u = &c->url;
    int rc = 0;

    l->handshake_due = 0;
    if (u->password[0] != '\0' && u->user[0] != '\0')
        rc |= handshake_send(l, HS_AUTH, "AUTH %s %s", u->user, u->password);
    else if (u->password[0] != '\0')
        rc |= handshake_send(l, HS_AUTH, "AUTH %s", u->password);
    if (u->db != 0 && !l->is_sub) /* channels are not per database */
        rc |= handshake_send(l, HS_SELECT, "SELECT %d", u->db);
    if (c->client_name != NULL)
        rc |= handshake_send(l, HS_SETNAME, "CLIENT SETNAME %s", c->client_name);
    rc |= handshake_send(l, HS_PING, "PING");
    return rc;
}

/* hiredis calls this once connect(2) has finished. Freeing the context here
 * is not allowed (0.14 goes on using it), so a failure is left to the timer. */
static void connect_cb(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct link *l = ac->data;
    char why[WHY_MAX];

    if (l == NULL)
        return;
    if (status != REDIS_OK) { /* hiredis frees ac when this returns */
        describe_error(ac, why, sizeof(why));
        ac->data = NULL;
        l->ac = NULL;
        link_failed(l, why);
        return;
    }
    l->state = LINK_HANDSHAKE;
    if (!l->conn->url.unix_socket)
        (void)redisEnableKeepAlive(&ac->c); /* notices a peer that vanished without a word */
    if (handshake_start(l) < 0) {
        l->abort_why = "out of memory";
        event_active(l->timer, EV_TIMEOUT, 0);
    }
}

static void disconnect_cb(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct link *l = ac->data;
    char why[WHY_MAX];

    if (l == NULL)
        return;
    describe_error(ac, why, sizeof(why));
    ac->data = NULL;
    l->ac = NULL; /* hiredis frees it when this returns */
    link_failed(l, why);
}

static redisAsyncContext *open_context(const struct redis_url *u)
{
    if (u->unix_socket)
        return redisAsyncConnectUnix(u->path);
    return redisAsyncConnect(u->host, u->port);
}

static void link_try(struct link *l)
{
    const struct redis_conn *c = l->conn;
    redisAsyncContext *ac = open_context(&c->url);
    struct timeval tv = ms_tv(c->opts.connect_timeout_ms);
    char why[WHY_MAX];

    if (ac == NULL) {
        link_failed(l, "out of memory");
        return;
    }
    if (ac->err) { /* refused at once, no such socket, ... */
        describe_error(ac, why, sizeof(why));
        redisAsyncFree(ac);
        link_failed(l, why);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->state = LINK_CONNECTING;
    redisLibeventAttach(ac, c->base);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    evtimer_add(l->timer, &tv);
}

static void link_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct link *l = arg;
    char why[64];

    switch (l->state) {
    case LINK_WAITING:
        link_try(l);
        break;
    case LINK_CONNECTING:
    case LINK_HANDSHAKE:
        snprintf(why, sizeof(why), "timed out connecting after %u ms",
                 (unsigned)l->conn->opts.connect_timeout_ms);
        link_drop(l, l->abort_why ? l->abort_why : why);
        break;
    case LINK_UP:
        break;
    }
}

static int link_init(struct redis_conn *c, struct link *l, const char *name, bool is_sub)
{
    l->conn = c;
    l->name = name;
    l->is_sub = is_sub;
    l->state = LINK_WAITING;
    l->backoff_ms = c->opts.backoff_first_ms;
    l->timer = evtimer_new(c->base, link_timer_cb, l);
    return l->timer ? 0 : -1;
}

/* Starts the first try from the loop. */
static void link_start(struct link *l)
{
    l->started = true;
    event_active(l->timer, EV_TIMEOUT, 0);
}

static void link_close(struct link *l)
{
    redisAsyncContext *ac = l->ac;

    l->ac = NULL;
    if (ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    event_free(l->timer);
    l->timer = NULL;
}

/* ---- the conn -------------------------------------------------------- */

static void copy_opts(struct redis_conn *c, const struct redis_conn_opts *o)
{
    struct redis_conn_opts none = {0};

    if (o == NULL)
        o = &none;
    c->opts.connect_timeout_ms = or_default(o->connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    c->opts.command_timeout_ms = or_default(o->command_timeout_ms, DEFAULT_COMMAND_TIMEOUT_MS);
    c->opts.backoff_first_ms = or_default(o->backoff_first_ms, DEFAULT_BACKOFF_FIRST_MS);
    c->opts.backoff_max_ms = or_default(o->backoff_max_ms, DEFAULT_BACKOFF_MAX_MS);
    if (c->opts.backoff_max_ms < c->opts.backoff_first_ms)
        c->opts.backoff_max_ms = c->opts.backoff_first_ms;
    c->opts.client_name = NULL;
}

struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  const struct redis_conn_opts *opts, redis_conn_state_cb cb,
                                  void *arg)
{
    struct redis_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->base = base;
    c->url = *url;
    redis_url_redacted(url, c->url_text, sizeof(c->url_text));
    copy_opts(c, opts);
    c->state_cb = cb;
    c->state_arg = arg;
    if (opts != NULL && opts->client_name != NULL &&
        (c->client_name = strdup(opts->client_name)) == NULL)
        goto fail;
    if (link_init(c, &c->cmd, "commands", false) < 0 ||
        link_init(c, &c->sub, "subscriber", true) < 0)
        goto fail;
    link_start(&c->cmd);
    return c;
fail:
    redis_conn_free(c);
    return NULL;
}

void redis_conn_free(struct redis_conn *c)
{
    if (c == NULL)
        return;
    /* Orphan the commands first: closing the context below makes hiredis
     * call back for each, and those calls must find them answered. */
    while (c->pending != NULL) {
        struct pending *p = c->pending;
        p->answered = true;
        pending_unlink(p);
        if (p->in_hiredis)
            evtimer_del(p->timer);
        else
            pending_free(p);
    }
    link_close(&c->cmd);
    link_close(&c->sub);
    for (size_t i = 0; i < c->nchannels; i++)
        free(c->channels[i].name);
    free(c->client_name);
    free(c);
}

int redis_conn_subscribe(struct redis_conn *c, const char *channel, redis_message_cb cb, void *arg)
{
    struct channel *ch;

    if (c->nchannels == REDIS_CONN_MAX_CHANNELS)
        return -1;
    ch = &c->channels[c->nchannels];
    ch->name = strdup(channel);
    if (ch->name == NULL)
        return -1;
    ch->cb = cb;
    ch->arg = arg;
    ch->subscribed = false;
    c->nchannels++;
    if (!c->sub.started)
        link_start(&c->sub);
    else if (c->sub.state == LINK_UP)
        send_subscribe(&c->sub, ch);
    return 0;
}

void redis_conn_set_sub_state_cb(struct redis_conn *c, redis_sub_state_cb cb, void *arg)
{
    c->sub_cb = cb;
    c->sub_arg = arg;
}

bool redis_conn_up(const struct redis_conn *c)
{
    return c != NULL && c->cmd.state == LINK_UP;
}

bool redis_conn_subscribed(const struct redis_conn *c)
{
    return c != NULL && all_subscribed(c);
}

const char *redis_conn_last_error(const struct redis_conn *c)
{
    return c->last_error;
}

int64_t redis_conn_down_since_ms(const struct redis_conn *c)
{
    return c->down_since_ms;
}

uint64_t redis_conn_connects(const struct redis_conn *c)
{
    return c->connects;
}
