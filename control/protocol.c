/* protocol.c - the control socket's requests and replies (see protocol.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/cfgproxy.h"
#include "conf/log.h"
#include "control/protocol.h"
#include "health/check.h"
#include "health/window.h"
#include "proxy/snapshot.h"

/* Events replies leave this much of a line for {"ok":true,"events":[],...}. */
#define EVENTS_ENVELOPE 64
/* Bytes of a reply's list of problems or notes: well inside a 64 KiB line. */
#define PROTOCOL_LIST_BUDGET (32 * 1024)

typedef int (*parse_cb)(const json_t *obj, struct protocol_request *req,
                        struct protocol_error *err);

struct command {
    const char *name;
    const char *keys; /* allowed keys besides "cmd", space separated; NULL: not checked */
    parse_cb parse;   /* fills the command's fields of the request */
};

static int parse_nothing(const json_t *obj, struct protocol_request *req,
                         struct protocol_error *err);
static int parse_change(const json_t *obj, struct protocol_request *req,
                        struct protocol_error *err);
static int parse_weight(const json_t *obj, struct protocol_request *req,
                        struct protocol_error *err);
static int parse_events(const json_t *obj, struct protocol_request *req,
                        struct protocol_error *err);
static int parse_server(const json_t *obj, struct protocol_request *req,
                        struct protocol_error *err);
static int parse_rollout_start(const json_t *obj, struct protocol_request *req,
                               struct protocol_error *err);

/* Indexed by enum protocol_cmd. */
static const struct command commands[PROTOCOL_CMDS] = {
    [PROTOCOL_CMD_STATUS] = {"status", "", parse_nothing},
    [PROTOCOL_CMD_WEIGHT] = {"weight", "percent reason expect_generation", parse_weight},
    [PROTOCOL_CMD_PAUSE] = {"pause", "reason expect_generation", parse_change},
    [PROTOCOL_CMD_RESUME] = {"resume", "reason expect_generation", parse_change},
    [PROTOCOL_CMD_PROMOTE] = {"promote", "reason expect_generation", parse_change},
    [PROTOCOL_CMD_ROLLBACK] = {"rollback", "reason expect_generation", parse_change},
    [PROTOCOL_CMD_EVENTS] = {"events", "since follow local", parse_events},
    [PROTOCOL_CMD_SERVER_DISABLE] = {"server.disable", "server", parse_server},
    [PROTOCOL_CMD_SERVER_ENABLE] = {"server.enable", "server", parse_server},
    [PROTOCOL_CMD_SERVER_DRAIN] = {"server.drain", "server", parse_server},
    [PROTOCOL_CMD_RELOAD] = {"reload", "", parse_nothing},
    [PROTOCOL_CMD_ROLLOUT_START] = {"rollout.start", "steps step_s reason expect_generation",
                                    parse_rollout_start},
    [PROTOCOL_CMD_ROLLOUT_STATUS] = {"rollout.status", "", parse_nothing},
    [PROTOCOL_CMD_ROLLOUT_REPORT] = {"rollout.report", "", parse_nothing},
};

const char *protocol_cmd_name(enum protocol_cmd cmd)
{
    return (unsigned)cmd < PROTOCOL_CMDS ? commands[cmd].name : "?";
}

/* Fills err; returns -1 for the caller to pass on. */
static int fail(struct protocol_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct protocol_error *err, const char *code, const char *fmt, ...)
{
    char msg[PROTOCOL_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Quoted client bytes may have been cut inside a UTF-8 sequence. */
    state_text_copy(err->message, sizeof(err->message), msg);
    err->code = code;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Values */

/* A reason or a server name ends up in logs, event lines and operators'
 * terminals: no NUL, no line breaks that forge lines, no escape sequences. */
static bool has_control_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

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

static int parse_reason(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    const json_t *v = json_object_get(obj, "reason");

    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return fail(err, "bad_request", "reason: expected a string");
    size_t len = json_string_length(v);
    if (len >= STATE_WHY_MAX)
        return fail(err, "bad_request", "reason: at most %d bytes", STATE_WHY_MAX - 1);
    if (has_control_chars(json_string_value(v), len))
        return fail(err, "bad_request",
                    "reason: must not contain control characters (NUL, newline, ESC...)");
    memcpy(req->reason, json_string_value(v), len + 1);
    return 0;
}

static int parse_expect_generation(const json_t *obj, struct protocol_request *req,
                                   struct protocol_error *err)
{
    const json_t *v = json_object_get(obj, "expect_generation");

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return fail(err, "bad_request", "expect_generation: expected an integer >= 1");
    req->expect_generation = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_percent(const json_t *obj, struct protocol_request *req,
                         struct protocol_error *err)
{
    const json_t *v = json_object_get(obj, "percent");

    if (v == NULL)
        return fail(err, "bad_request", "percent: required");
    if (!json_is_number(v))
        return fail(err, "bad_request", "percent: expected a number");
    double p = json_number_value(v);
    if (!(p >= 0 && p <= 100))
        return fail(err, "bad_request", "percent: expected 0..100, got %g", p);
    if (percent_bp(p, &req->weight_bp) < 0)
        return fail(err, "bad_request", "percent: at most two decimals (got %.17g)", p);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Commands' arguments: each returns 0, or -1 with err filled. */

static int parse_nothing(const json_t *obj, struct protocol_request *req,
                         struct protocol_error *err)
{
    return 0;
}

/* The optional fields every state change takes. */
static int parse_change(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    if (parse_reason(obj, req, err) < 0 || parse_expect_generation(obj, req, err) < 0)
        return -1;
    return 0;
}

static int parse_weight(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    if (parse_change(obj, req, err) < 0 || parse_percent(obj, req, err) < 0)
        return -1;
    return 0;
}

static int parse_events(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    const json_t *since = json_object_get(obj, "since");
    const json_t *follow = json_object_get(obj, "follow");
    const json_t *local = json_object_get(obj, "local");

    if (since != NULL && (!json_is_integer(since) || json_integer_value(since) < 0))
        return fail(err, "bad_request", "since: expected an integer >= 0");
    if (follow != NULL && !json_is_boolean(follow))
        return fail(err, "bad_request", "follow: expected true or false");
    if (local != NULL && !json_is_boolean(local))
        return fail(err, "bad_request", "local: expected true or false");
    req->since = since != NULL ? (uint64_t)json_integer_value(since) : 0;
    req->follow = json_is_true(follow);
    req->local = json_is_true(local);
    return 0;
}

/* "server" is POOL/NAME: POOL blue or green, NAME one the config could
 * hold (so the name fits req->server and is safe to log). */
static int parse_server(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    const json_t *v = json_object_get(obj, "server");

    if (v == NULL)
        return fail(err, "bad_request", "server: required (POOL/NAME, e.g. blue/blue-1)");
    if (!json_is_string(v))
        return fail(err, "bad_request", "server: expected a string POOL/NAME");
    const char *s = json_string_value(v);
    const char *slash = strchr(s, '/');
    if (has_control_chars(s, json_string_length(v)) || slash == NULL)
        return fail(err, "bad_request", "server: expected POOL/NAME (e.g. blue/blue-1), got \"%s\"",
                    s);
    if (slash - s == 4 && memcmp(s, "blue", 4) == 0)
        req->pool = CONF_BLUE;
    else if (slash - s == 5 && memcmp(s, "green", 5) == 0)
        req->pool = CONF_GREEN;
    else
        return fail(err, "bad_request", "server: the pool must be blue or green, got \"%.*s\"",
                    (int)(slash - s), s);
    if (!cfgproxy_server_name_ok(slash + 1))
        return fail(err, "bad_request",
                    "server: the name must be 1..%d letters, digits, '.', '_' or '-', got \"%s\"",
                    PROTOCOL_SERVER_NAME_MAX, slash + 1);
    snprintf(req->server, sizeof(req->server), "%s", slash + 1);
    return 0;
}

/* One step of a plan: a percentage by the rules of "percent", above 0. */
static int parse_step(const json_t *v, size_t i, uint32_t *bp, struct protocol_error *err)
{
    if (!json_is_number(v))
        return fail(err, "bad_request", "steps[%zu]: expected a number", i);
    double p = json_number_value(v);
    if (!(p > 0 && p <= 100))
        return fail(err, "bad_request", "steps[%zu]: expected more than 0 and at most 100, got %g",
                    i, p);
    if (percent_bp(p, bp) < 0)
        return fail(err, "bad_request", "steps[%zu]: at most two decimals (got %.17g)", i, p);
    if (*bp == 0) /* a tiny p rounds to 0 basis points */
        return fail(err, "bad_request", "steps[%zu]: expected at least 0.01, got %g", i, p);
    return 0;
}

/* "steps" is the plan the rollout walks: the same rules as rollout.steps
 * in the config, and few enough to fit the request. */
static int parse_steps(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    const json_t *arr = json_object_get(obj, "steps");
    size_t n = json_array_size(arr);

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return fail(err, "bad_request",
                    "steps: expected an array of percentages, e.g. [1,5,25,100]");
    if (n == 0 || n > PROTOCOL_STEPS_MAX)
        return fail(err, "bad_request", "steps: expected 1..%d steps, got %zu", PROTOCOL_STEPS_MAX,
                    n);
    for (size_t i = 0; i < n; i++) {
        uint32_t bp = 0, prev = i > 0 ? req->steps_bp[i - 1] : 0;
        if (parse_step(json_array_get(arr, i), i, &bp, err) < 0)
            return -1;
        if (bp <= prev)
            return fail(err, "bad_request", "steps[%zu]: steps must increase: %g follows %g", i,
                        bp / 100.0, prev / 100.0);
        req->steps_bp[i] = bp;
    }
    if (req->steps_bp[n - 1] != CONF_WEIGHT_BP_MAX)
        return fail(err, "bad_request", "steps: the last step must be 100 (got %g)",
                    req->steps_bp[n - 1] / 100.0);
    req->nsteps = n;
    return 0;
}

static int parse_step_s(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    const json_t *v = json_object_get(obj, "step_s");

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > PROTOCOL_STEP_S_MAX)
        return fail(err, "bad_request", "step_s: expected an integer 1..%d (seconds)",
                    PROTOCOL_STEP_S_MAX);
    req->step_s = (uint32_t)json_integer_value(v);
    return 0;
}

/* Checked in the order: reason, expect_generation, steps, step_s. */
static int parse_rollout_start(const json_t *obj, struct protocol_request *req,
                               struct protocol_error *err)
{
    if (parse_change(obj, req, err) < 0 || parse_steps(obj, req, err) < 0 ||
        parse_step_s(obj, req, err) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Requests */

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

/* Returns the first key of obj that is neither "cmd" nor in keys, or NULL. */
static const char *unknown_key(const json_t *obj, const char *keys)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)obj, k, v)
    {
        if (strcmp(k, "cmd") != 0 && !key_in_list(keys, k))
            return k;
    }
    return NULL;
}

static int command_find(const char *name, enum protocol_cmd *cmd)
{
    for (unsigned i = 0; i < PROTOCOL_CMDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            *cmd = (enum protocol_cmd)i;
            return 0;
        }
    }
    return -1;
}

/* Checks a parsed object (borrowed) and fills req from it. */
static int parse_object(const json_t *obj, struct protocol_request *req, struct protocol_error *err)
{
    const json_t *cmd = json_object_get(obj, "cmd");
    const char *bad;

    if (!json_is_object(obj))
        return fail(err, "bad_request", "expected a JSON object");
    if (cmd == NULL)
        return fail(err, "bad_request", "cmd: required");
    if (!json_is_string(cmd))
        return fail(err, "bad_request", "cmd: expected a string");
    if (command_find(json_string_value(cmd), &req->cmd) < 0)
        return fail(err, "unknown_command", "unknown command \"%s\"", json_string_value(cmd));
    const struct command *c = &commands[req->cmd];
    if (c->keys != NULL && (bad = unknown_key(obj, c->keys)) != NULL)
        return fail(err, "bad_request", "%s: unknown key for %s", bad, c->name);
    return c->parse(obj, req, err);
}

int protocol_parse(const char *line, size_t len, struct protocol_request *req,
                   struct protocol_error *err)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);

    memset(req, 0, sizeof(*req));
    if (obj == NULL)
        return fail(err, "bad_json", "column %d: %s", jerr.column, jerr.text);
    int rc = parse_object(obj, req, err);
    json_decref(obj);
    return rc;
}

const char *protocol_code_of_state(const char *state_code)
{
    if (state_code == NULL || strcmp(state_code, "bad_argument") == 0)
        return "bad_request";
    return state_code;
}

/* ------------------------------------------------------------------------ */
/* Replies */

json_t *protocol_error_reply(const char *code, const char *fmt, ...)
{
    char msg[PROTOCOL_MESSAGE_MAX];
    char clean[PROTOCOL_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    state_text_copy(clean, sizeof(clean), msg);
    return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", clean);
}

json_t *protocol_state_json(const struct state *s)
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

json_t *protocol_state_reply(const struct state *s)
{
    json_t *st = protocol_state_json(s);

    if (st == NULL)
        return NULL;
    return json_pack("{s:b, s:o}", "ok", 1, "state", st);
}

/* Adds "checked" and "checked_at" to srv (stolen: freed on failure) when
 * the checks have results for it. */
static json_t *add_check_result(json_t *srv, const struct health_status *hs)
{
    char when[96];

    if (srv == NULL || hs == NULL || !hs->checked)
        return srv;
    log_format_time(hs->last_ms, when, sizeof(when));
    if (json_object_set_new(srv, "checked", json_string(hs->last)) < 0 ||
        json_object_set_new(srv, "checked_at", json_string(when)) < 0) {
        json_decref(srv);
        return NULL;
    }
    return srv;
}

json_t *protocol_server_json(const struct snapshot *snap, enum conf_colour pool, size_t index,
                             const struct health_checker *hc)
{
    const struct conf_server *srv = &snap->cfg->pools[pool].servers[index];
    const struct server_state *st = snap->servers[pool][index];
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:I, s:s}", "pool", conf_colour_name(pool), "name", srv->name,
        "addr", srv->addr.text, "weight", (json_int_t)srv->weight, "admin",
        server_admin_name(server_state_admin(st)), "in_flight", (json_int_t)server_state_busy(st),
        "health", server_health_name(server_state_health(st)));

    return add_check_result(j, hc != NULL ? health_checker_status(hc, pool, srv->name) : NULL);
}

json_t *protocol_server_reply(const struct snapshot *snap, enum conf_colour pool, size_t index,
                              const struct health_checker *hc)
{
    json_t *srv = protocol_server_json(snap, pool, index, hc);

    return srv != NULL ? json_pack("{s:b, s:o}", "ok", 1, "server", srv) : NULL;
}

/* Returns a new {"role":..., "servers":[...]} for one pool of snap. */
static json_t *pool_json(const struct snapshot *snap, enum conf_colour pool, bool stable,
                         const struct health_checker *hc)
{
    json_t *servers = json_array();

    for (size_t i = 0; servers != NULL && i < snap->cfg->pools[pool].nservers; i++) {
        if (json_array_append_new(servers, protocol_server_json(snap, pool, i, hc)) < 0) {
            json_decref(servers);
            return NULL;
        }
    }
    if (servers == NULL)
        return NULL;
    return json_pack("{s:s, s:o}", "role", stable ? "stable" : "candidate", "servers", servers);
}

json_t *protocol_status_reply(const struct state *s, bool persisted, const struct snapshot *snap,
                              const struct health_checker *hc)
{
    json_t *reply = protocol_state_reply(s);
    json_t *all = json_object();

    if (reply == NULL || all == NULL ||
        json_object_set_new(reply, "persisted", json_boolean(persisted)) < 0)
        goto fail;
    for (int i = 0; i < CONF_COLOURS; i++) {
        enum conf_colour colour = (enum conf_colour)i;
        json_t *p = pool_json(snap, colour, colour == s->stable, hc);
        if (p == NULL || json_object_set_new(all, conf_colour_name(colour), p) < 0)
            goto fail;
    }
    if (json_object_set_new(reply, "pools", all) < 0) {
        all = NULL; /* set_new consumed it even on failure */
        goto fail;
    }
    return reply;
fail:
    json_decref(all);
    json_decref(reply);
    return NULL;
}

/* A latency in ms, or null when nothing was measured. */
static json_t *ms_or_null(const struct window_sum *sum, double q)
{
    if (sum->latency.total == 0)
        return json_null();
    return json_real((double)hist_sum_quantile(&sum->latency, q) / 1000.0);
}

json_t *protocol_traffic_json(const struct window_sum *sum, unsigned seconds)
{
    return json_pack(
        "{s:I, s:I, s:f, s:I, s:f, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
        "window_s", (json_int_t)seconds, "requests", (json_int_t)sum->requests, "rps",
        (double)sum->requests / (seconds ? seconds : 1), "errors", (json_int_t)sum->errors,
        "error_rate", window_sum_error_rate(sum), "p50_ms", ms_or_null(sum, 0.50), "p99_ms",
        ms_or_null(sum, 0.99), "by_kind", "1xx", (json_int_t)sum->s1xx, "2xx",
        (json_int_t)sum->s2xx, "3xx", (json_int_t)sum->s3xx, "4xx", (json_int_t)sum->s4xx, "5xx",
        (json_int_t)sum->s5xx, "connect_errors", (json_int_t)sum->connect_errors, "timeouts",
        (json_int_t)sum->timeouts, "resets", (json_int_t)sum->resets);
}

/* A new array of list's messages, cut to valid UTF-8 (a config file's bytes
 * may be quoted in them), keeping to budget bytes in all. */
static json_t *messages_json(const struct conf_errors *list, size_t budget)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i < list->n; i++) {
        char clean[PROTOCOL_MESSAGE_MAX];
        size_t len;

        state_text_copy(clean, sizeof(clean), list->msgs[i]);
        len = strlen(clean) + 8; /* quotes, comma, escapes of a few characters */
        if (len > budget)
            break;
        budget -= len;
        if (json_array_append_new(arr, json_string(clean)) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *protocol_reload_reply(unsigned reloads, const struct conf_errors *notes)
{
    json_t *list = messages_json(notes, PROTOCOL_LIST_BUDGET);

    return list != NULL ? json_pack("{s:b, s:I, s:o}", "ok", 1, "reloads", (json_int_t)reloads,
                                    "notes", list)
                        : NULL;
}

json_t *protocol_reload_refused(const struct conf_errors *errs)
{
    json_t *reply = errs->n > 1 ? protocol_error_reply("bad_config", "%s (and %zu more)",
                                                       errs->msgs[0], errs->n - 1)
                                : protocol_error_reply("bad_config", "%s", errs->msgs[0]);
    json_t *list = messages_json(errs, PROTOCOL_LIST_BUDGET);

    if (reply == NULL || list == NULL ||
        json_object_set_new(json_object_get(reply, "error"), "details", list) < 0) {
        json_decref(reply);
        return NULL;
    }
    return reply;
}

/* A reply is one line, and clients read lines of at most line_max bytes:
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

json_t *protocol_events_reply(json_t *events, size_t line_max)
{
    if (events == NULL)
        return NULL;
    size_t budget = line_max > EVENTS_ENVELOPE ? line_max - EVENTS_ENVELOPE : 0;
    bool truncated = keep_newest_fitting(events, budget);
    return json_pack("{s:b, s:o, s:b}", "ok", 1, "events", events, "truncated", truncated);
}

void protocol_events_since(json_t *events, uint64_t since)
{
    size_t i = 0;

    if (since == 0)
        return;
    while (i < json_array_size(events)) {
        const json_t *gen = json_object_get(json_array_get(events, i), "generation");
        if (!json_is_integer(gen) || json_integer_value(gen) < 0 ||
            (uint64_t)json_integer_value(gen) <= since)
            json_array_remove(events, i);
        else
            i++;
    }
}

json_t *protocol_event_line(json_t *event)
{
    if (event == NULL)
        return NULL;
    return json_pack("{s:o}", "event", event);
}
