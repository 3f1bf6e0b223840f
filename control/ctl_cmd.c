/* ctl_cmd.c - switchyardctl's command line and the requests it builds.
 *
 * Global options (-s, --json, --timeout, --help) may stand anywhere; the
 * command's own options (--reason, --if-generation, --since, --follow,
 * --local, --steps, --step-s) are collected too and then checked against what the
 * command accepts, so a typo such as `pause --since 3` is a usage error
 * rather than a silently ignored word. Everything is validated here, before
 * a connection is made: a bad command line never reaches switchyard.
 */
#include "control/ctl_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char ctl_usage_text[] =
    "usage: switchyardctl [-s SOCKET] [--json] [--timeout MS] COMMAND [ARGS]\n"
    "\n"
    "Steers a running switchyard through its control socket (admin.socket in\n"
    "the config). Every change is checked by switchyard's state machine, gets a\n"
    "new generation and is written to the audit trail with who, what and why.\n"
    "\n"
    "Commands:\n"
    "  status                  stable and candidate colour with their shares, phase,\n"
    "                          step, generation, last change; every pool and server\n"
    "  weight PERCENT          set the candidate's share of traffic: 0..100 with at\n"
    "                          most two decimals (12.5, 0.01)\n"
    "  pause                   hold a rollout at its current weight\n"
    "  resume                  continue a paused rollout\n"
    "  promote                 make the candidate the new stable (100 %)\n"
    "  rollback                send all traffic back to stable now; allowed in every\n"
    "                          phase, even when the state cannot be persisted\n"
    "  events [--since N] [--follow] [--local]\n"
    "                          the recent changes, one line each (time, generation,\n"
    "                          who, op, from -> to, why); with Redis configured, the\n"
    "                          whole fleet's, each with the instance that made it;\n"
    "                          --since N shows only generations above N; --local\n"
    "                          shows this instance's own events only; --follow keeps\n"
    "                          printing this instance's new ones (changes taken from\n"
    "                          the fleet show as op \"sync\") until switchyard closes\n"
    "                          or Ctrl-C\n"
    "  server disable|enable|drain POOL/NAME\n"
    "                          change one server's admin state (e.g. blue/blue-1)\n"
    "  reload                  re-read the config file\n"
    "  rollout start [--steps LIST] [--step-s N]\n"
    "                          start a step-by-step rollout: preflight probes, then\n"
    "                          the candidate's share moves up a step whenever every\n"
    "                          gate holds; --steps (percentages, increasing, ending\n"
    "                          at 100, e.g. 1,5,25,100) and --step-s (least seconds\n"
    "                          at each step, 1..86400) override the config's rollout\n"
    "  rollout status          the plan with the current step, each gate and what\n"
    "                          the rollout waits for\n"
    "  rollout report          the report of the last finished rollout: outcome, and\n"
    "                          per step its times, gates, traffic of both pools and\n"
    "                          verdict (with --json: the report as JSON)\n"
    "  help                    this text\n"
    "\n"
    "Options of weight, pause, resume, promote, rollback and rollout start:\n"
    "  --reason TEXT           why; recorded in the state and the audit trail\n"
    "  --if-generation N       apply only if the state is still at generation N\n"
    "                          (as shown by status); refused with \"conflict\" if\n"
    "                          someone changed it in between\n"
    "\n"
    "Global options:\n"
    "  -s, --socket PATH       control socket (default: $SWITCHYARD_SOCKET, else\n"
    "                          switchyard.sock in the current folder)\n"
    "      --json              print switchyard's raw JSON reply lines (for scripts)\n"
    "      --timeout MS        wait at most MS milliseconds to connect and for the\n"
    "                          reply (default 5000); events --follow then waits for\n"
    "                          new events without a limit\n"
    "  -h, --help              this text\n"
    "\n"
    "Exit codes:\n"
    "  0  done\n"
    "  1  refused by switchyard (e.g. conflict, illegal_transition, forbidden);\n"
    "     the reason is printed as \"switchyardctl: refused: CODE: MESSAGE\"\n"
    "  2  usage error, cannot connect, no reply in time, or a reply that is not\n"
    "     valid control protocol\n"
    "\n"
    "Examples:\n"
    "  switchyardctl status\n"
    "  switchyardctl weight 12.5 --reason \"canary 2\" --if-generation 41\n"
    "  switchyardctl rollback --reason \"5xx on checkout\"\n"
    "  switchyardctl -s /run/switchyard/admin.sock --json status | jq .state\n"
    "  switchyardctl events --since 40 --follow\n"
    "  switchyardctl events --local\n"
    "  switchyardctl server drain blue/blue-1\n"
    "  switchyardctl rollout start --steps 1,5,25,100 --step-s 60 --reason \"release 42\"\n"
    "  switchyardctl rollout status\n"
    "  switchyardctl rollout report --json > report.json\n";

enum {
    OPT_REASON = 1u << 0,
    OPT_GENERATION = 1u << 1,
    OPT_SINCE = 1u << 2,
    OPT_FOLLOW = 1u << 3,
    OPT_STEPS = 1u << 4,
    OPT_STEP_S = 1u << 5,
    OPT_LOCAL = 1u << 6,
};

#define MAX_WORDS 4
#define FULL_BP 10000 /* 100 % in basis points: a plan's last step */

/* The command line split into words and options, before any checking. */
struct words {
    const char *word[MAX_WORDS]; /* borrowed from argv: command and its arguments */
    int nword;
    const char *reason;
    const char *generation;
    const char *since;
    const char *steps;
    const char *step_s;
    bool follow;
    bool local;
    unsigned seen; /* OPT_* given */
    bool help;
};

struct command {
    const char *name;
    const char *proto; /* protocol name; NULL = built from a sub-command */
    int nargs;         /* words after the command */
    unsigned opts;     /* OPT_* accepted; for sub-commands, see subcommands[] */
};

/* The sub-commands of commands whose proto is NULL; the protocol's name is
 * "COMMAND.SUB". */
struct subcommand {
    const char *command;
    const char *name;
    unsigned opts; /* OPT_* accepted */
};

static const struct command commands[] = {
    {"status", "status", 0, 0},
    {"weight", "weight", 1, OPT_REASON | OPT_GENERATION},
    {"pause", "pause", 0, OPT_REASON | OPT_GENERATION},
    {"resume", "resume", 0, OPT_REASON | OPT_GENERATION},
    {"promote", "promote", 0, OPT_REASON | OPT_GENERATION},
    {"rollback", "rollback", 0, OPT_REASON | OPT_GENERATION},
    {"events", "events", 0, OPT_SINCE | OPT_FOLLOW | OPT_LOCAL},
    {"server", NULL, 2, 0},
    {"reload", "reload", 0, 0},
    {"rollout", NULL, 1, 0},
};

static const struct subcommand subcommands[] = {
    {"server", "disable", 0},
    {"server", "enable", 0},
    {"server", "drain", 0},
    {"rollout", "start", OPT_REASON | OPT_GENERATION | OPT_STEPS | OPT_STEP_S},
    {"rollout", "status", 0},
    {"rollout", "report", 0},
};

/* Indexed by the bit number of OPT_*. */
static const char *const opt_names[] = {"--reason", "--if-generation", "--since", "--follow",
                                        "--steps",  "--step-s",        "--local"};

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

int ctl_parse_percent(const char *s, uint32_t *bp)
{
    uint32_t whole = 0, frac = 0;
    int ndigits = 0, ndec = 0;

    for (; *s >= '0' && *s <= '9'; s++, ndigits++) {
        if (whole > 100)
            return -1;
        whole = whole * 10 + (uint32_t)(*s - '0');
    }
    if (ndigits == 0)
        return -1;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, ndec++) {
            if (ndec == 2)
                return -1;
            frac = frac * 10 + (uint32_t)(*s - '0');
        }
        if (ndec == 0)
            return -1; /* "12." is more likely a typo than 12 */
    }
    if (*s != '\0')
        return -1;
    if (ndec == 1)
        frac *= 10;
    if (whole > 100 || (whole == 100 && frac > 0))
        return -1;
    *bp = whole * 100 + frac;
    return 0;
}

/* Parses a decimal integer in min..max; 0 or -1. */
static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1; /* strtoull would accept " 1", "+1" and "-1" */
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Matches argv[*i] against option name, as "--name VALUE" or "--name=VALUE".
 * Returns 1 with *value set (borrowed) and *i moved past the value, 0 when it
 * is another word, -1 when the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

enum value_kind { V_SOCKET, V_TIMEOUT, V_REASON, V_GENERATION, V_SINCE, V_STEPS, V_STEP_S };

static const struct {
    const char *name;
    enum value_kind kind;
} value_opts[] = {
    {"--socket", V_SOCKET}, {"-s", V_SOCKET},       {"--timeout", V_TIMEOUT},
    {"--reason", V_REASON}, {"--since", V_SINCE},   {"--if-generation", V_GENERATION},
    {"--steps", V_STEPS},   {"--step-s", V_STEP_S},
};

static int store_value(enum value_kind kind, const char *v, struct ctl_options *o, struct words *w,
                       char *err, size_t err_len)
{
    uint64_t n;

    switch (kind) {
    case V_SOCKET:
        if (*v == '\0')
            return fail(err, err_len, "-s: the socket path is empty");
        o->socket_path = v;
        return 0;
    case V_TIMEOUT:
        if (parse_uint(v, 1, CTL_MAX_TIMEOUT_MS, &n) < 0)
            return fail(err, err_len, "--timeout: expected 1..%d milliseconds, got \"%s\"",
                        CTL_MAX_TIMEOUT_MS, v);
        o->timeout_ms = (int)n;
        return 0;
    case V_REASON:
        w->reason = v;
        w->seen |= OPT_REASON;
        return 0;
    case V_GENERATION:
        w->generation = v;
        w->seen |= OPT_GENERATION;
        return 0;
    case V_SINCE:
        w->since = v;
        w->seen |= OPT_SINCE;
        return 0;
    case V_STEPS:
        w->steps = v;
        w->seen |= OPT_STEPS;
        return 0;
    case V_STEP_S:
        w->step_s = v;
        w->seen |= OPT_STEP_S;
        return 0;
    }
    return fail(err, err_len, "internal error: option kind %d", (int)kind);
}

/* Handles the option at argv[*i]: 0 when taken, -1 with err set. */
static int take_option(int argc, char **argv, int *i, struct ctl_options *o, struct words *w,
                       char *err, size_t err_len)
{
    const char *arg = argv[*i];
    const char *v;

    if (strcmp(arg, "--json") == 0) {
        o->json = true;
        return 0;
    }
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        w->help = true;
        return 0;
    }
    if (strcmp(arg, "--follow") == 0) {
        w->follow = true;
        w->seen |= OPT_FOLLOW;
        return 0;
    }
    if (strcmp(arg, "--local") == 0) {
        w->local = true;
        w->seen |= OPT_LOCAL;
        return 0;
    }
    for (size_t k = 0; k < sizeof(value_opts) / sizeof(value_opts[0]); k++) {
        int r = opt_value(argc, argv, i, value_opts[k].name, &v);
        if (r < 0)
            return fail(err, err_len, "%s needs a value", value_opts[k].name);
        if (r > 0)
            return store_value(value_opts[k].kind, v, o, w, err, err_len);
    }
    return fail(err, err_len, "unknown option \"%s\"", arg);
}

/* Sorts argv into options and words. A "-" followed by a digit is a word, so
 * that `weight -5` is told that 0..100 is the range, not that -5 is no option. */
static int split_words(int argc, char **argv, struct ctl_options *o, struct words *w, char *err,
                       size_t err_len)
{
    bool options_done = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool is_word =
            options_done || arg[0] != '-' || arg[1] == '\0' || (arg[1] >= '0' && arg[1] <= '9');

        if (!is_word && strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!is_word) {
            if (take_option(argc, argv, &i, o, w, err, err_len) < 0)
                return -1;
            continue;
        }
        if (w->nword == MAX_WORDS)
            return fail(err, err_len, "unexpected argument \"%s\"", arg);
        w->word[w->nword++] = arg;
    }
    return 0;
}

static const struct command *command_find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

/* Writes the sub-commands of command into buf as "a, b or c". */
static void subcommand_list(const char *command, char *buf, size_t len)
{
    size_t n = sizeof(subcommands) / sizeof(subcommands[0]), used = 0, last = n;
    const char *sep = "";

    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(subcommands[i].command, command) == 0)
            last = i;
    }
    for (size_t i = 0; i < n && used < len; i++) {
        if (strcmp(subcommands[i].command, command) != 0)
            continue;
        used += (size_t)snprintf(buf + used, len - used, "%s%s", sep, subcommands[i].name);
        sep = i + 1 < last ? ", " : " or ";
    }
}

/* Returns the sub-command sub of command, or NULL with err set. */
static const struct subcommand *subcommand_find(const char *command, const char *sub, char *err,
                                                size_t err_len)
{
    char list[64];

    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        if (strcmp(subcommands[i].command, command) == 0 && strcmp(subcommands[i].name, sub) == 0)
            return &subcommands[i];
    }
    subcommand_list(command, list, sizeof(list));
    fail(err, err_len, "%s: unknown sub-command \"%s\" (expected %s)", command, sub, list);
    return NULL;
}

/* Sets o->cmd to the protocol's name for the command and *opts to the
 * options it accepts, checking sub-commands. */
static int command_name(const struct command *c, const struct words *w, struct ctl_options *o,
                        unsigned *opts, char *err, size_t err_len)
{
    const struct subcommand *sub;

    if (c->proto != NULL) {
        snprintf(o->cmd, sizeof(o->cmd), "%s", c->proto);
        *opts = c->opts;
        return 0;
    }
    sub = subcommand_find(c->name, w->word[1], err, err_len);
    if (sub == NULL)
        return -1;
    snprintf(o->cmd, sizeof(o->cmd), "%s.%s", c->name, sub->name);
    *opts = sub->opts;
    return 0;
}

/* Checks the number of arguments. */
static int command_check(const struct command *c, const struct words *w, char *err, size_t err_len)
{
    int nargs = w->nword - 1;
    char list[64];

    if (nargs < c->nargs) {
        if (strcmp(c->name, "weight") == 0)
            return fail(err, err_len, "weight: missing PERCENT (0..100, e.g. 12.5)");
        if (strcmp(c->name, "server") == 0 && nargs == 1)
            return fail(err, err_len, "server %s: missing POOL/NAME", w->word[1]);
        subcommand_list(c->name, list, sizeof(list));
        return fail(err, err_len, "%s: missing sub-command (expected %s)", c->name, list);
    }
    if (nargs > c->nargs)
        return fail(err, err_len, "%s: unexpected argument \"%s\"", c->name, w->word[c->nargs + 1]);
    return 0;
}

/* Checks that every option given is one the command accepts (opts). */
static int options_check(const struct command *c, const struct words *w, unsigned opts, char *err,
                         size_t err_len)
{
    unsigned extra = w->seen & ~opts;
    const char *sub = c->proto == NULL ? w->word[1] : "";

    for (unsigned k = 0; extra != 0; k++, extra >>= 1) {
        if (extra & 1u)
            return fail(err, err_len, "%s%s%s: %s is not an option of this command", c->name,
                        sub[0] != '\0' ? " " : "", sub, opt_names[k]);
    }
    return 0;
}

/* A server is named POOL/NAME: both parts non-empty, exactly one slash. */
static int check_server_name(const char *s, char *err, size_t err_len)
{
    const char *slash = strchr(s, '/');

    if (slash == NULL || slash == s || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
        return fail(err, err_len, "server: expected POOL/NAME (e.g. blue/blue-1), got \"%s\"", s);
    return 0;
}

/* Whole percents go out as integers and 0.01 steps as reals; the request is
 * dumped with 15 significant digits so 12.34 reads "12.34", not
 * "12.339999999999999". */
static json_t *percent_json(uint32_t bp)
{
    if (bp % 100 == 0)
        return json_integer((json_int_t)(bp / 100));
    return json_real(bp / 100.0);
}

static int set_new(json_t *req, const char *key, json_t *value, char *err, size_t err_len)
{
    if (json_object_set_new(req, key, value) < 0)
        return fail(err, err_len, "out of memory");
    return 0;
}

/* Parses one step of --steps (len bytes of s) into *bp: above prev. */
static int parse_step(const char *s, size_t len, uint32_t prev, uint32_t *bp, char *err,
                      size_t err_len)
{
    char word[16];

    if (len < sizeof(word)) {
        memcpy(word, s, len);
        word[len] = '\0';
    }
    if (len >= sizeof(word) || ctl_parse_percent(word, bp) < 0 || *bp == 0)
        return fail(err, err_len,
                    "--steps: expected percentages 0.01..100 with at most two decimals, "
                    "separated by commas (e.g. 1,5,25,100), got \"%.*s\"",
                    (int)len, s);
    if (*bp <= prev)
        return fail(err, err_len, "--steps: steps must increase: %g follows %g", *bp / 100.0,
                    prev / 100.0);
    return 0;
}

/* Parses --steps "1,5,25,100" into a new array of percentages, or NULL
 * with err set. */
static json_t *steps_json(const char *s, char *err, size_t err_len)
{
    json_t *arr = json_array();
    uint32_t bp = 0;

    if (arr == NULL) {
        fail(err, err_len, "out of memory");
        return NULL;
    }
    for (size_t n = 0;; n++) {
        size_t len = strcspn(s, ",");
        uint32_t prev = bp;
        if (n == CTL_STEPS_MAX) {
            fail(err, err_len, "--steps: at most %d steps", CTL_STEPS_MAX);
            goto fail;
        }
        if (parse_step(s, len, prev, &bp, err, err_len) < 0)
            goto fail;
        if (json_array_append_new(arr, percent_json(bp)) < 0) {
            fail(err, err_len, "out of memory");
            goto fail;
        }
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    if (bp == FULL_BP)
        return arr;
    fail(err, err_len, "--steps: the last step must be 100, got %g", bp / 100.0);
fail:
    json_decref(arr);
    return NULL;
}

/* Adds rollout start's --steps and --step-s to req. */
static int add_plan(const struct words *w, json_t *req, char *err, size_t err_len)
{
    uint64_t n;

    if (w->steps != NULL) {
        json_t *steps = steps_json(w->steps, err, err_len);
        if (steps == NULL || set_new(req, "steps", steps, err, err_len) < 0)
            return -1;
    }
    if (w->step_s != NULL) {
        if (parse_uint(w->step_s, 1, CTL_STEP_S_MAX, &n) < 0)
            return fail(err, err_len, "--step-s: expected 1..%d seconds, got \"%s\"",
                        CTL_STEP_S_MAX, w->step_s);
        if (set_new(req, "step_s", json_integer((json_int_t)n), err, err_len) < 0)
            return -1;
    }
    return 0;
}

/* Adds the command's own fields to req, validating each value. */
static int add_fields(const struct command *c, const struct words *w, json_t *req, char *err,
                      size_t err_len)
{
    uint32_t bp;
    uint64_t n;

    if (strcmp(c->name, "weight") == 0) {
        if (ctl_parse_percent(w->word[1], &bp) < 0)
            return fail(err, err_len,
                        "weight: expected a percentage 0..100 with at most two decimals, got "
                        "\"%s\"",
                        w->word[1]);
        if (set_new(req, "percent", percent_json(bp), err, err_len) < 0)
            return -1;
    }
    if (strcmp(c->name, "server") == 0) {
        if (check_server_name(w->word[2], err, err_len) < 0 ||
            set_new(req, "server", json_string(w->word[2]), err, err_len) < 0)
            return -1;
    }
    if (w->reason != NULL && set_new(req, "reason", json_string(w->reason), err, err_len) < 0)
        return -1;
    if (w->generation != NULL) {
        if (parse_uint(w->generation, 1, (uint64_t)INT64_MAX, &n) < 0)
            return fail(err, err_len, "--if-generation: expected a generation >= 1, got \"%s\"",
                        w->generation);
        if (set_new(req, "expect_generation", json_integer((json_int_t)n), err, err_len) < 0)
            return -1;
    }
    if (w->since != NULL) {
        if (parse_uint(w->since, 0, (uint64_t)INT64_MAX, &n) < 0)
            return fail(err, err_len, "--since: expected a generation >= 0, got \"%s\"", w->since);
        if (set_new(req, "since", json_integer((json_int_t)n), err, err_len) < 0)
            return -1;
    }
    if ((c->opts & OPT_FOLLOW) && set_new(req, "follow", json_boolean(w->follow), err, err_len) < 0)
        return -1;
    /* Only when asked: a switchyard older than the option refuses the key. */
    if (w->local && set_new(req, "local", json_true(), err, err_len) < 0)
        return -1;
    return add_plan(w, req, err, err_len);
}

static int build_request(const struct words *w, struct ctl_options *o, json_t **request, char *err,
                         size_t err_len)
{
    const struct command *c = command_find(w->word[0]);
    unsigned opts;
    json_t *req;

    if (c == NULL)
        return fail(err, err_len, "unknown command \"%s\" (see switchyardctl --help)", w->word[0]);
    if (command_check(c, w, err, err_len) < 0 || command_name(c, w, o, &opts, err, err_len) < 0 ||
        options_check(c, w, opts, err, err_len) < 0)
        return -1;
    req = json_object();
    if (req == NULL || set_new(req, "cmd", json_string(o->cmd), err, err_len) < 0 ||
        add_fields(c, w, req, err, err_len) < 0) {
        if (req == NULL)
            fail(err, err_len, "out of memory");
        json_decref(req);
        return -1;
    }
    o->follow = w->follow;
    *request = req;
    return 0;
}

int ctl_parse_args(int argc, char **argv, struct ctl_options *o, json_t **request, char *err,
                   size_t err_len)
{
    struct words w;
    const char *env = getenv("SWITCHYARD_SOCKET");

    memset(&w, 0, sizeof(w));
    memset(o, 0, sizeof(*o));
    *request = NULL;
    err[0] = '\0';
    o->socket_path = env != NULL && env[0] != '\0' ? env : CTL_DEFAULT_SOCKET;
    o->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    if (split_words(argc, argv, o, &w, err, err_len) < 0)
        return -1;
    if (w.help || (w.nword > 0 && strcmp(w.word[0], "help") == 0))
        return CTL_PARSE_HELP;
    if (w.nword == 0)
        return fail(err, err_len, "missing COMMAND (see switchyardctl --help)");
    return build_request(&w, o, request, err, err_len);
}
