/* ctl_render.c - tables and lines for people; scripts use --json instead.
 *
 * The reply is switchyard's, so nothing here trusts its shape: each field is
 * looked up and type-checked before use, and optional fields that a newer or
 * older switchyard may leave out print as "-".
 */
#include "control/ctl_render.h"

#include <stdbool.h>
#include <string.h>

/* The fields of a state object that the output uses. */
struct view {
    const char *stable;
    const char *candidate;
    double percent;
    const char *phase;
    json_int_t step;
    json_int_t generation;
    const char *updated_by;
    const char *updated_at;
    const char *reason;
};

/* Returns the string at key, dflt when absent or not a string. */
static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s != NULL && s[0] != '\0' ? s : dflt;
}

static int view_get(const json_t *state, struct view *v)
{
    const json_t *pct = json_object_get(state, "candidate_percent");
    const json_t *gen = json_object_get(state, "generation");
    const json_t *step = json_object_get(state, "step");

    v->stable = str_or(state, "stable", NULL);
    v->candidate = str_or(state, "candidate", NULL);
    v->phase = str_or(state, "phase", NULL);
    if (!json_is_object(state) || v->stable == NULL || v->candidate == NULL || v->phase == NULL ||
        !json_is_number(pct) || !json_is_integer(gen))
        return -1;
    v->percent = json_number_value(pct);
    if (v->percent < 0.0 || v->percent > 100.0)
        return -1;
    v->generation = json_integer_value(gen);
    v->step = json_is_integer(step) ? json_integer_value(step) : 0;
    v->updated_by = str_or(state, "updated_by", "-");
    v->updated_at = str_or(state, "updated_at", "-");
    v->reason = str_or(state, "reason", "-");
    return 0;
}

static void print_state(FILE *out, const struct view *v)
{
    int w = (int)strlen(v->stable);

    if ((int)strlen(v->candidate) > w)
        w = (int)strlen(v->candidate);
    fprintf(out, "%-12s%-*s  %6.2f %%\n", "stable", w, v->stable, 100.0 - v->percent);
    fprintf(out, "%-12s%-*s  %6.2f %%\n", "candidate", w, v->candidate, v->percent);
    fprintf(out, "%-12s%s\n", "phase", v->phase);
    fprintf(out, "%-12s%lld\n", "step", (long long)v->step);
    fprintf(out, "%-12s%lld\n", "generation", (long long)v->generation);
    fprintf(out, "%-12s%s\n", "updated by", v->updated_by);
    fprintf(out, "%-12s%s\n", "updated at", v->updated_at);
    fprintf(out, "%-12s%s\n", "reason", v->reason);
}

/* Column widths of the server table; start at the headers' widths. */
struct widths {
    int pool, name, addr, weight, role, state, busy;
};

static int num_width(json_int_t n)
{
    char buf[32];

    return snprintf(buf, sizeof(buf), "%lld", (long long)n);
}

static void widen(int *w, int len)
{
    if (len > *w)
        *w = len;
}

/* What an operator needs to know of a server's admin state: a draining
 * server with nothing in flight is "drained", safe to stop. Servers of an
 * older switchyard have no admin field: enabled. */
static const char *server_state_text(const json_t *s)
{
    const char *admin = str_or(s, "admin", "enabled");

    if (strcmp(admin, "draining") == 0 && json_integer_value(json_object_get(s, "in_flight")) == 0)
        return "drained";
    return admin;
}

/* Walks every server of every pool: with out == NULL it measures into *w,
 * else it prints rows with *w. Returns the number of servers, or -1 when a
 * pool or server is ill-formed. */
static int walk_servers(FILE *out, const json_t *pools, struct widths *w)
{
    const char *pool;
    json_t *p;
    int count = 0;

    json_object_foreach((json_t *)pools, pool, p)
    {
        const json_t *servers = json_object_get(p, "servers");
        const char *role = str_or(p, "role", "-");
        size_t i;
        json_t *s;

        if (!json_is_object(p) || !json_is_array(servers))
            return -1;
        json_array_foreach(servers, i, s)
        {
            const char *name = str_or(s, "name", NULL);
            const char *addr = str_or(s, "addr", "-");
            const char *st = server_state_text(s);
            json_int_t weight = json_integer_value(json_object_get(s, "weight"));
            json_int_t busy = json_integer_value(json_object_get(s, "in_flight"));
            /* Servers of an older switchyard have no health field. */
            const char *health = str_or(s, "health", "-");

            if (name == NULL)
                return -1;
            count++;
            if (out == NULL) {
                widen(&w->pool, (int)strlen(pool));
                widen(&w->name, (int)strlen(name));
                widen(&w->addr, (int)strlen(addr));
                widen(&w->weight, num_width(weight));
                widen(&w->role, (int)strlen(role));
                widen(&w->state, (int)strlen(st));
                widen(&w->busy, num_width(busy));
                continue;
            }
            fprintf(out, "%-*s  %-*s  %-*s  %*lld  %-*s  %-*s  %*lld  %s\n", w->pool, pool, w->name,
                    name, w->addr, addr, w->weight, (long long)weight, w->role, role, w->state, st,
                    w->busy, (long long)busy, health);
        }
    }
    return count;
}

/* "12.3" or "-" for a latency that may be null. */
static const char *ms_text(const json_t *v, char *buf, size_t len)
{
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, "%.1f", json_number_value(v));
    return buf;
}

/* "redis  up, URL ns NS, instance ID (leader)" or "redis  DOWN for N s:
 * WHY; serving the last known state". */
static void print_redis_link(FILE *out, const json_t *r)
{
    const char *holder = str_or(r, "holder", NULL);
    json_int_t queued = json_integer_value(json_object_get(r, "events_queued"));

    if (!json_is_true(json_object_get(r, "up"))) {
        fprintf(out, "%-12sDOWN for %lld s: %s; serving the last known state\n", "redis",
                (long long)(json_integer_value(json_object_get(r, "down_for_ms")) / 1000),
                str_or(r, "last_error", "unreachable"));
        return;
    }
    fprintf(out, "%-12sup, %s ns %s, instance %s", "redis", str_or(r, "url", "-"),
            str_or(r, "namespace", "-"), str_or(r, "instance", "-"));
    if (json_is_true(json_object_get(r, "leader")))
        fprintf(out, " (leader)");
    else if (holder != NULL)
        fprintf(out, ", leader %s", holder);
    if (queued > 0)
        fprintf(out, ", %lld events waiting to be written", (long long)queued);
    fputc('\n', out);
}

/* The requests per second of an instance's pools together. */
static double instance_rps(const json_t *in)
{
    const char *pool;
    json_t *r;
    double sum = 0;

    json_object_foreach((json_t *)json_object_get(in, "rps"), pool, r) sum += json_number_value(r);
    return sum;
}

/* "fleet  3 instances: vm:1 (leader) 812 rps, vm:2 790 rps, ...". */
static void print_fleet(FILE *out, const json_t *instances, const char *holder)
{
    size_t i, n = json_array_size(instances);
    json_t *in;

    fprintf(out, "%-12s%zu instance%s%s", "fleet", n, n == 1 ? "" : "s", n > 0 ? ":" : "");
    json_array_foreach(instances, i, in)
    {
        const char *id = str_or(in, "id", "-");
        fprintf(out, "%s %s%s %.0f rps", i > 0 ? "," : "", id,
                holder != NULL && strcmp(id, holder) == 0 ? " (leader)" : "", instance_rps(in));
    }
    fputc('\n', out);
}

/* The Redis link and the fleet, when Redis is configured. */
static void print_redis(FILE *out, const json_t *r)
{
    const json_t *instances = json_object_get(json_object_get(r, "fleet"), "instances");

    if (!json_is_object(r))
        return;
    print_redis_link(out, r);
    if (json_is_array(instances))
        print_fleet(out, instances, str_or(r, "holder", NULL));
}

/* The detector's verdict and each pool's traffic over the window, when the
 * reply has them (an older switchyard's has not). */
static void print_traffic(FILE *out, const json_t *reply, const json_t *pools)
{
    const json_t *det = json_object_get(reply, "detector");
    const char *pool;
    json_t *p;
    bool header = false;

    if (json_is_object(det))
        fprintf(out, "%-12s%s: %s\n", "detector", str_or(det, "verdict", "-"),
                str_or(det, "reason", ""));
    print_redis(out, json_object_get(reply, "redis"));
    json_object_foreach((json_t *)pools, pool, p)
    {
        const json_t *t = json_object_get(p, "traffic");
        char p50[32], p99[32];

        if (!json_is_object(t))
            continue;
        if (!header) {
            fprintf(out, "\n%-6s  %-9s  %9s  %8s  %8s  %8s  (last %lld s)\n", "POOL", "ROLE",
                    "REQ/S", "ERRORS", "P50 MS", "P99 MS",
                    (long long)json_integer_value(json_object_get(t, "window_s")));
            header = true;
        }
        fprintf(out, "%-6s  %-9s  %9.1f  %6.2f %%  %8s  %8s\n", pool, str_or(p, "role", "-"),
                json_number_value(json_object_get(t, "rps")),
                json_number_value(json_object_get(t, "error_rate")) * 100,
                ms_text(json_object_get(t, "p50_ms"), p50, sizeof(p50)),
                ms_text(json_object_get(t, "p99_ms"), p99, sizeof(p99)));
    }
}

int ctl_render_status(FILE *out, const json_t *reply)
{
    const json_t *pools = json_object_get(reply, "pools");
    /* POOL, SERVER, ADDR, WEIGHT, ROLE, STATE, IN FLIGHT */
    struct widths w = {4, 6, 4, 6, 4, 5, 9};
    struct view v;

    if (view_get(json_object_get(reply, "state"), &v) < 0)
        return -1;
    if (pools != NULL && !json_is_object(pools))
        return -1;
    if (pools != NULL && walk_servers(NULL, pools, &w) < 0)
        return -1;
    print_state(out, &v);
    if (pools == NULL || json_object_size(pools) == 0)
        return 0;
    print_traffic(out, reply, pools);
    fprintf(out, "\n%-*s  %-*s  %-*s  %*s  %-*s  %-*s  %*s  %s\n", w.pool, "POOL", w.name, "SERVER",
            w.addr, "ADDR", w.weight, "WEIGHT", w.role, "ROLE", w.state, "STATE", w.busy,
            "IN FLIGHT", "HEALTH");
    return walk_servers(out, pools, &w) < 0 ? -1 : 0;
}

int ctl_render_change(FILE *out, const char *cmd, const json_t *reply)
{
    struct view v;

    if (view_get(json_object_get(reply, "state"), &v) < 0)
        return -1;
    if (strcmp(cmd, "weight") == 0) {
        fprintf(out, "weight: %s %.2f %% (generation %lld)\n", v.candidate, v.percent,
                (long long)v.generation);
        return 0;
    }
    fprintf(out, "%s: stable %s, candidate %s %.2f %%, phase %s (generation %lld)\n", cmd, v.stable,
            v.candidate, v.percent, v.phase, (long long)v.generation);
    return 0;
}

/* Formats one side of a change, e.g. "10.00 % idle"; the stable colour is
 * named only when the change swaps it (a promotion), where it is the news. */
static int side_format(const json_t *side, bool name_stable, char *buf, size_t len)
{
    const json_t *pct = json_object_get(side, "candidate_percent");
    const char *stable = str_or(side, "stable", NULL);
    const char *phase = str_or(side, "phase", NULL);

    if (!json_is_number(pct) || stable == NULL || phase == NULL)
        return -1;
    if (name_stable)
        snprintf(buf, len, "stable %s, %.2f %% %s", stable, json_number_value(pct), phase);
    else
        snprintf(buf, len, "%.2f %% %s", json_number_value(pct), phase);
    return 0;
}

int ctl_render_event(FILE *out, const json_t *event)
{
    const json_t *from = json_object_get(event, "from");
    const json_t *to = json_object_get(event, "to");
    const json_t *gen = json_object_get(event, "generation");
    const char *time = str_or(event, "time", "-");
    const char *who = str_or(event, "who", "-");
    const char *op = str_or(event, "op", NULL);
    /* The fleet's stream says which instance made it; this one's ring not. */
    const char *instance = str_or(event, "instance", NULL);
    bool server = from == NULL && to == NULL; /* a server's change: no transition */
    bool swapped = strcmp(str_or(from, "stable", ""), str_or(to, "stable", "")) != 0;
    char a[128], b[128];

    if (!json_is_integer(gen) || op == NULL)
        return -1;
    if (!server && (side_format(from, swapped, a, sizeof(a)) < 0 ||
                    side_format(to, swapped, b, sizeof(b)) < 0))
        return -1;
    fprintf(out, "%s  %lld  ", time, (long long)json_integer_value(gen));
    if (instance != NULL)
        fprintf(out, "%s  ", instance);
    if (server) {
        fprintf(out, "%s  %s  %s\n", who, op, str_or(event, "why", "-"));
        return 0;
    }
    fprintf(out, "%s  %s  %s \u2192 %s  %s", who, op, a, b, str_or(event, "why", "-"));
    if (json_is_false(json_object_get(event, "persisted")))
        fprintf(out, " (%s)", str_or(event, "note", "not persisted"));
    fputc('\n', out);
    return 0;
}

int ctl_render_events(FILE *out, const json_t *reply)
{
    const json_t *events = json_object_get(reply, "events");
    size_t i;
    json_t *e;

    if (!json_is_array(events))
        return -1;
    json_array_foreach(events, i, e)
    {
        if (ctl_render_event(out, e) < 0)
            return -1;
    }
    return 0;
}

/* Prints each string of an array (NULL: none) as "  STRING" lines. */
static void print_list(FILE *out, const json_t *list)
{
    size_t i;
    json_t *item;

    json_array_foreach(list, i, item)
    {
        if (json_is_string(item))
            fprintf(out, "  %s\n", json_string_value(item));
    }
}

int ctl_render_refusal(FILE *out, const json_t *reply)
{
    const json_t *error = json_object_get(reply, "error");
    const char *code = str_or(error, "code", NULL);
    const char *message = str_or(error, "message", NULL);

    if (code == NULL)
        return -1;
    if (message != NULL)
        fprintf(out, "switchyardctl: refused: %s: %s\n", code, message);
    else
        fprintf(out, "switchyardctl: refused: %s\n", code);
    /* One problem is the message already. */
    if (json_array_size(json_object_get(error, "details")) > 1)
        print_list(out, json_object_get(error, "details"));
    return 0;
}

int ctl_render_server(FILE *out, const char *cmd, const json_t *reply)
{
    const json_t *srv = json_object_get(reply, "server");
    const char *pool = str_or(srv, "pool", NULL);
    const char *name = str_or(srv, "name", NULL);
    const json_t *busy = json_object_get(srv, "in_flight");

    if (pool == NULL || name == NULL || !json_is_integer(busy))
        return -1;
    fprintf(out, "%s: %s/%s %s, %lld in flight\n", cmd, pool, name, server_state_text(srv),
            (long long)json_integer_value(busy));
    return 0;
}

int ctl_render_reload(FILE *out, const json_t *reply)
{
    const json_t *n = json_object_get(reply, "reloads");

    if (!json_is_integer(n))
        return -1;
    fprintf(out, "reload: applied (reload %lld since start)\n", (long long)json_integer_value(n));
    print_list(out, json_object_get(reply, "notes"));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Rollouts */

/* "5 %", "0.5 %": a plan's percentages as an operator wrote them. */
static const char *percent_text(const json_t *v, char *buf, size_t len)
{
    snprintf(buf, len, "%g %%", json_number_value(v));
    return buf;
}

/* True when steps is an array of numbers. */
static bool is_number_array(const json_t *steps)
{
    size_t i;
    json_t *v;

    if (!json_is_array(steps))
        return false;
    json_array_foreach(steps, i, v)
    {
        if (!json_is_number(v))
            return false;
    }
    return true;
}

/* True when gates is an array of {"name":S,"ok":B,...}; measures the
 * longest name into *width. */
static bool gates_ok(const json_t *gates, int *width)
{
    size_t i;
    json_t *g;

    if (!json_is_array(gates))
        return false;
    json_array_foreach(gates, i, g)
    {
        const char *name = str_or(g, "name", NULL);
        if (name == NULL || !json_is_boolean(json_object_get(g, "ok")))
            return false;
        widen(width, (int)strlen(name));
    }
    return true;
}

/* "2 of 4: 5 % since T, at least 60 s a step"; the parts the reply lacks
 * are left out. */
static void print_step(FILE *out, const json_t *r, json_int_t step, const json_t *steps)
{
    const json_t *weight = json_object_get(r, "weight");
    const json_t *step_s = json_object_get(r, "step_s");
    char pct[32];

    if (!json_is_number(weight) && step >= 1 && (size_t)step <= json_array_size(steps))
        weight = json_array_get(steps, (size_t)step - 1);
    fprintf(out, "%-12s%lld of %zu", "step", (long long)step, json_array_size(steps));
    if (json_is_number(weight))
        fprintf(out, ": %s since %s", percent_text(weight, pct, sizeof(pct)),
                str_or(r, "step_started_at", "-"));
    if (json_is_integer(step_s))
        fprintf(out, ", at least %lld s a step", (long long)json_integer_value(step_s));
    fputc('\n', out);
}

/* "1 % → [5 %] → 25 % → 100 %": the plan, the current step in brackets. */
static void print_plan(FILE *out, const json_t *steps, json_int_t step)
{
    size_t i;
    json_t *v;
    char pct[32];

    fprintf(out, "%-12s", "plan");
    json_array_foreach(steps, i, v)
    {
        bool current = (json_int_t)i + 1 == step;
        fprintf(out, "%s%s%s%s", i > 0 ? " \u2192 " : "", current ? "[" : "",
                percent_text(v, pct, sizeof(pct)), current ? "]" : "");
    }
    fputc('\n', out);
}

static void print_gates(FILE *out, const json_t *gates, int width)
{
    size_t i;
    json_t *g;

    json_array_foreach(gates, i, g)
    {
        fprintf(out, "%-12s%-*s  %-7s  %s\n", i == 0 ? "gates" : "", width, str_or(g, "name", "-"),
                json_is_true(json_object_get(g, "ok")) ? "ok" : "waiting", str_or(g, "why", "-"));
    }
}

/* What the rollout waits for: "nothing" once every gate holds. */
static const char *waiting_text(const json_t *v)
{
    const char *s = json_string_value(v);

    if (s == NULL)
        return "-";
    return s[0] != '\0' ? s : "nothing";
}

int ctl_render_rollout_status(FILE *out, const json_t *reply)
{
    const json_t *r = json_object_get(reply, "rollout");
    const json_t *active = json_object_get(r, "active");
    const json_t *steps = json_object_get(r, "steps");
    const json_t *step = json_object_get(r, "step");
    const json_t *gates = json_object_get(r, "gates");
    const char *phase = str_or(r, "phase", NULL);
    int width = 4;

    if (!json_is_object(r) || !json_is_boolean(active))
        return -1;
    if (json_is_false(active)) {
        fprintf(out, "%-12snone running\n%-12s%s\n", "rollout", "last", str_or(r, "last", "-"));
        return 0;
    }
    if (phase == NULL || !is_number_array(steps) || !json_is_integer(step) ||
        !gates_ok(gates, &width))
        return -1;
    fprintf(out, "%-12s%s\n", "rollout", phase);
    print_step(out, r, json_integer_value(step), steps);
    print_plan(out, steps, json_integer_value(step));
    print_gates(out, gates, width);
    fprintf(out, "%-12s%s\n", "waiting for", waiting_text(json_object_get(r, "waiting_for")));
    return 0;
}

/* The columns of a report's step table. */
enum report_col {
    RC_STEP,
    RC_WEIGHT,
    RC_STARTED,
    RC_ENDED,
    RC_CAND_REQ,
    RC_CAND_ERR,
    RC_CAND_P50,
    RC_CAND_P99,
    RC_STABLE_REQ,
    RC_STABLE_ERR,
    RC_STABLE_P50,
    RC_STABLE_P99,
    RC_VERDICT,
    RC_GATES, /* last: free text, not padded */
    RC_COLS
};

static const char *const report_headers[RC_COLS] = {
    "STEP",     "WEIGHT",     "STARTED",    "ENDED",      "CAND REQ",   "CAND ERR", "CAND P50",
    "CAND P99", "STABLE REQ", "STABLE ERR", "STABLE P50", "STABLE P99", "VERDICT",  "GATES",
};

/* Left-aligned columns; the others are numbers, right-aligned. */
static bool report_col_left(enum report_col c)
{
    return c == RC_STARTED || c == RC_ENDED || c == RC_VERDICT || c == RC_GATES;
}

struct report_row {
    char cell[RC_COLS][128];
};

/* "0.4 ms", or "-" when not measured. */
static void ms_cell(char *cell, size_t len, const json_t *v)
{
    if (json_is_number(v))
        snprintf(cell, len, "%.1f ms", json_number_value(v));
    else
        snprintf(cell, len, "-");
}

/* Fills the four cells from first of one pool's traffic at a step. */
static void pool_cells(struct report_row *row, enum report_col first, const json_t *pool)
{
    const json_t *reqs = json_object_get(pool, "requests");
    const json_t *rate = json_object_get(pool, "error_rate");

    if (json_is_integer(reqs))
        snprintf(row->cell[first], sizeof(row->cell[first]), "%lld",
                 (long long)json_integer_value(reqs));
    else
        snprintf(row->cell[first], sizeof(row->cell[first]), "-");
    if (json_is_number(rate))
        snprintf(row->cell[first + 1], sizeof(row->cell[first + 1]), "%.2f %%",
                 json_number_value(rate) * 100);
    else
        snprintf(row->cell[first + 1], sizeof(row->cell[first + 1]), "-");
    ms_cell(row->cell[first + 2], sizeof(row->cell[first + 2]), json_object_get(pool, "p50_ms"));
    ms_cell(row->cell[first + 3], sizeof(row->cell[first + 3]), json_object_get(pool, "p99_ms"));
}

/* Fills row from one step of a report; -1 without its step and weight. */
static int report_row_fill(struct report_row *row, const json_t *st)
{
    const json_t *step = json_object_get(st, "step");
    const json_t *weight = json_object_get(st, "weight");

    if (!json_is_integer(step) || !json_is_number(weight))
        return -1;
    snprintf(row->cell[RC_STEP], sizeof(row->cell[RC_STEP]), "%lld",
             (long long)json_integer_value(step));
    percent_text(weight, row->cell[RC_WEIGHT], sizeof(row->cell[RC_WEIGHT]));
    snprintf(row->cell[RC_STARTED], sizeof(row->cell[RC_STARTED]), "%s",
             str_or(st, "started_at", "-"));
    snprintf(row->cell[RC_ENDED], sizeof(row->cell[RC_ENDED]), "%s", str_or(st, "ended_at", "-"));
    pool_cells(row, RC_CAND_REQ, json_object_get(st, "candidate"));
    pool_cells(row, RC_STABLE_REQ, json_object_get(st, "stable"));
    snprintf(row->cell[RC_VERDICT], sizeof(row->cell[RC_VERDICT]), "%s",
             str_or(st, "verdict", "-"));
    snprintf(row->cell[RC_GATES], sizeof(row->cell[RC_GATES]), "%s", str_or(st, "gates", "-"));
    return 0;
}

/* Prints cells (RC_COLS strings) padded to widths, two spaces apart. */
static void report_line(FILE *out, const char *const *cells, const int *widths)
{
    for (int c = 0; c < RC_COLS; c++) {
        const char *sep = c > 0 ? "  " : "";
        if (c == RC_GATES)
            fprintf(out, "%s%s\n", sep, cells[c]);
        else if (report_col_left((enum report_col)c))
            fprintf(out, "%s%-*s", sep, widths[c], cells[c]);
        else
            fprintf(out, "%s%*s", sep, widths[c], cells[c]);
    }
}

/* Walks the steps: with out == NULL it measures into widths, else it
 * prints rows. Returns 0, or -1 when a step is ill-formed. */
static int walk_report_steps(FILE *out, const json_t *steps, int *widths)
{
    struct report_row row;
    const char *cells[RC_COLS];
    size_t i;
    json_t *st;

    for (int c = 0; c < RC_COLS; c++)
        cells[c] = row.cell[c];
    json_array_foreach(steps, i, st)
    {
        if (report_row_fill(&row, st) < 0)
            return -1;
        for (int c = 0; out == NULL && c < RC_COLS; c++)
            widen(&widths[c], (int)strlen(row.cell[c]));
        if (out != NULL)
            report_line(out, cells, widths);
    }
    return 0;
}

int ctl_render_rollout_report(FILE *out, const json_t *reply)
{
    const json_t *rep = json_object_get(reply, "report");
    const json_t *steps = json_object_get(rep, "steps");
    const char *outcome = str_or(rep, "outcome", NULL);
    int widths[RC_COLS];

    for (int c = 0; c < RC_COLS; c++)
        widths[c] = (int)strlen(report_headers[c]);
    if (outcome == NULL || !json_is_array(steps) || walk_report_steps(NULL, steps, widths) < 0)
        return -1;
    fprintf(out, "%-12s%s\n", "outcome", outcome);
    fprintf(out, "%-12s%s\n", "reason", str_or(rep, "reason", "-"));
    fprintf(out, "%-12s%s\n", "stable", str_or(rep, "stable", "-"));
    fprintf(out, "%-12s%s\n", "candidate", str_or(rep, "candidate", "-"));
    fprintf(out, "%-12s%s\n", "started at", str_or(rep, "started_at", "-"));
    fprintf(out, "%-12s%s\n", "ended at", str_or(rep, "ended_at", "-"));
    if (json_array_size(steps) == 0)
        return 0;
    fputc('\n', out);
    report_line(out, report_headers, widths);
    return walk_report_steps(out, steps, widths);
}
