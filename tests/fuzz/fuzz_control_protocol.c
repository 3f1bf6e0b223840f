/* fuzz_control_protocol.c - libFuzzer driver for the control socket's
 * protocol: protocol_parse() and the reply builders.
 *
 * The input is one request line. A refusal must carry a known code and a
 * message that makes a valid error reply; an accepted request must hold
 * what protocol.h promises (ranges, no control characters, a server name
 * the config could hold), and the replies built from its values must dump
 * to one line of JSON that parses back. Anything else aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/cfgproxy.h"
#include "control/protocol.h"
#include "proxy/snapshot.h"

#define FUZZ_MAX_BYTES 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static int no_control_chars(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int known_code(const char *code)
{
    static const char *const codes[] = {"bad_json", "bad_request", "unknown_command"};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (code != NULL && strcmp(code, codes[i]) == 0)
            return 1;
    }
    return 0;
}

/* Dumps reply (new, consumed) as one line and parses it back. */
static void check_reply(json_t *reply)
{
    check(reply != NULL);
    char *text = json_dumps(reply, JSON_COMPACT);
    check(text != NULL && strchr(text, '\n') == NULL);
    json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    check(back != NULL && json_is_object(back));
    json_decref(back);
    free(text);
    json_decref(reply);
}

/* A plan is only ever a rollout.start's, and always one rollout.steps
 * could hold: above 0, increasing, ending at 100 %. */
static void check_plan(const struct protocol_request *req)
{
    check(req->nsteps <= PROTOCOL_STEPS_MAX);
    check(req->step_s <= PROTOCOL_STEP_S_MAX);
    if (req->cmd != PROTOCOL_CMD_ROLLOUT_START)
        check(req->nsteps == 0 && req->step_s == 0);
    for (size_t i = 0; i < req->nsteps; i++)
        check(req->steps_bp[i] > (i > 0 ? req->steps_bp[i - 1] : 0));
    if (req->nsteps > 0)
        check(req->steps_bp[req->nsteps - 1] == CONF_WEIGHT_BP_MAX);
    for (size_t i = req->nsteps; i < PROTOCOL_STEPS_MAX; i++)
        check(req->steps_bp[i] == 0);
}

static void check_accepted(const struct protocol_request *req)
{
    check((unsigned)req->cmd < PROTOCOL_CMDS);
    check(req->weight_bp <= CONF_WEIGHT_BP_MAX);
    check(strlen(req->reason) < STATE_WHY_MAX && no_control_chars(req->reason));
    check(req->expect_generation <= (uint64_t)INT64_MAX);
    check(req->since <= (uint64_t)INT64_MAX);
    if (req->cmd >= PROTOCOL_CMD_SERVER_DISABLE && req->cmd <= PROTOCOL_CMD_SERVER_DRAIN)
        check(cfgproxy_server_name_ok(req->server) &&
              (req->pool == CONF_BLUE || req->pool == CONF_GREEN));
    else
        check(req->server[0] == '\0');
    check_plan(req);
}

/* One snapshot of one server per pool, made once. */
static const struct snapshot *sample_snapshot(void)
{
    static const char text[] =
        "{\"listen\": [{\"addr\": \"127.0.0.1:1\"}], \"pools\": {"
        "\"blue\": {\"servers\": [{\"name\": \"s\", \"addr\": \"127.0.0.1:1\"}]},"
        "\"green\": {\"servers\": [{\"name\": \"t\", \"addr\": \"127.0.0.1:2\"}]}}}";
    static struct snapshot *snap;
    struct conf_errors errs = {0};

    if (snap == NULL) {
        struct config *cfg = config_load_string(text, sizeof(text) - 1, "f.json", "/", &errs);
        check(cfg != NULL);
        snap = snapshot_new(cfg, 1, NULL);
        check(snap != NULL);
        conf_errors_clear(&errs);
    }
    return snap;
}

/* Builds every reply from the request's values, as a handler would. */
static void build_replies(const struct protocol_request *req)
{
    struct state s;

    memset(&s, 0, sizeof(s));
    s.stable = req->pool;
    s.candidate_bp = req->weight_bp;
    s.phase = (enum state_phase)(req->cmd % STATE_PHASES);
    s.generation = req->expect_generation;
    s.updated_ms = (int64_t)req->since;
    memcpy(s.reason, req->reason, sizeof(s.reason));
    memcpy(s.updated_by, "uid:0", sizeof("uid:0"));
    check_reply(protocol_state_reply(&s));
    check_reply(protocol_status_reply(&s, req->follow, sample_snapshot(), NULL));
    check_reply(protocol_server_reply(sample_snapshot(), req->pool, 0, NULL));

    struct conf_errors notes = {0};
    conf_errors_add(&notes, "%s", req->reason);
    conf_errors_add(&notes, "%s", req->server);
    check_reply(protocol_reload_reply(req->weight_bp, &notes));
    check_reply(protocol_reload_refused(&notes));
    conf_errors_clear(&notes);

    json_t *events = json_array();
    check(events != NULL);
    for (uint32_t i = 0; i < req->weight_bp % 8; i++)
        json_array_append_new(events, json_pack("{s:s}", "why", req->reason));
    check_reply(protocol_events_reply(events, req->weight_bp));
    check_reply(protocol_event_line(json_pack("{s:s}", "why", req->reason)));
    check_reply(protocol_error_reply("not_supported", "%s is not supported in this version",
                                     protocol_cmd_name(req->cmd)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct protocol_request req;
    struct protocol_error err;

    if (size > FUZZ_MAX_BYTES)
        return 0;
    /* An exact copy, so that a read past size is caught by ASan. */
    char *line = malloc(size > 0 ? size : 1);
    check(line != NULL);
    if (size > 0)
        memcpy(line, data, size);
    if (protocol_parse(line, size, &req, &err) < 0) {
        check(known_code(err.code));
        check(strlen(err.message) < PROTOCOL_MESSAGE_MAX);
        check_reply(protocol_error_reply(err.code, "%s", err.message));
    } else {
        check_accepted(&req);
        build_replies(&req);
    }
    free(line);
    return 0;
}
