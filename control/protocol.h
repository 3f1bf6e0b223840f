/* protocol.h - the control socket's wire protocol, without the socket.
 *
 * A request is one JSON object on one line: {"cmd":"weight","percent":25}.
 * protocol_parse() checks such a line whole (JSON, the command, the keys the
 * command allows, each value's type and range) and turns it into a typed
 * struct protocol_request, or into a struct protocol_error whose code and
 * message go back to the client as they are. The reply builders return the
 * JSON objects the socket sends, in the shapes README.md documents.
 *
 * Nothing here touches a socket, the event loop or a service: the socket
 * server (control/socket.c) keeps the connections and dispatches a parsed
 * request to one handler per command.
 */
#ifndef SY_CONTROL_PROTOCOL_H
#define SY_CONTROL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/config.h"
#include "control/state.h"

struct health_checker;
struct snapshot;

/* The commands, in the order of the protocol's table. */
enum protocol_cmd {
    PROTOCOL_CMD_STATUS = 0,
    PROTOCOL_CMD_WEIGHT,
    PROTOCOL_CMD_PAUSE,
    PROTOCOL_CMD_RESUME,
    PROTOCOL_CMD_PROMOTE,
    PROTOCOL_CMD_ROLLBACK,
    PROTOCOL_CMD_EVENTS,
    PROTOCOL_CMD_SERVER_DISABLE,
    PROTOCOL_CMD_SERVER_ENABLE,
    PROTOCOL_CMD_SERVER_DRAIN,
    PROTOCOL_CMD_RELOAD,
    PROTOCOL_CMD_ROLLOUT_START,
    PROTOCOL_CMD_ROLLOUT_STATUS,
    PROTOCOL_CMD_ROLLOUT_REPORT,
};
#define PROTOCOL_CMDS 14

#define PROTOCOL_SERVER_NAME_MAX 64 /* bytes of a server name, as the config allows */
#define PROTOCOL_MESSAGE_MAX 512    /* bytes of an error message, NUL included */
#define PROTOCOL_STEPS_MAX 20       /* steps of a rollout.start plan */
#define PROTOCOL_STEP_S_MAX 86400   /* seconds at a step, as rollout.step_s allows */

/* A parsed request: a plain value, copied freely. Only the fields of cmd
 * are set; the others stay zero. */
struct protocol_request {
    enum protocol_cmd cmd;
    char reason[STATE_WHY_MAX]; /* weight..rollback, rollout.start: "" when absent; no control
                                   chars */
    uint64_t expect_generation; /* weight..rollback, rollout.start: 0 when absent, else >= 1 */
    uint32_t weight_bp;         /* weight: 0..CONF_WEIGHT_BP_MAX */
    uint64_t since;             /* events: generation to list after, 0 when absent */
    bool follow;                /* events: stream later events */
    bool local;                 /* events: this instance's own, not the fleet's stream */
    enum conf_colour pool;      /* server.*: the part of "server" before the slash */
    char server[PROTOCOL_SERVER_NAME_MAX + 1]; /* server.*: the part after it */
    uint32_t steps_bp[PROTOCOL_STEPS_MAX];     /* rollout.start: each > 0, increasing, last 10000 */
    size_t nsteps;   /* rollout.start: 0 when absent (the config's steps) */
    uint32_t step_s; /* rollout.start: 0 when absent (the config's), else 1..PROTOCOL_STEP_S_MAX */
};

/* Why a request was refused, in the protocol's words. */
struct protocol_error {
    const char *code;                   /* static: "bad_json", "bad_request", ... */
    char message[PROTOCOL_MESSAGE_MAX]; /* valid UTF-8 */
};

/* Parses one request line (len bytes, borrowed; no newline). Returns 0 with
 * *req filled, or -1 with *err filled and *req undefined. Codes: bad_json
 * (not JSON), bad_request (not an object, no or bad "cmd", a key the command
 * does not take, a missing or bad value), unknown_command. */
int protocol_parse(const char *line, size_t len, struct protocol_request *req,
                   struct protocol_error *err) __attribute__((warn_unused_result));

/* The command's name on the wire ("server.drain"); static. */
const char *protocol_cmd_name(enum protocol_cmd cmd);

/* state_apply()'s error code (static, may be NULL) as the protocol's code. */
const char *protocol_code_of_state(const char *state_code);

/* Reply builders: each returns a new object, or NULL when out of memory. */

/* {"ok":false,"error":{"code":code,"message":...}}; code is borrowed, the
 * message may quote a client's bytes: it is cut to valid UTF-8. */
json_t *protocol_error_reply(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The protocol's STATE object for s (borrowed). */
json_t *protocol_state_json(const struct state *s);

/* {"ok":true,"state":STATE} for s (borrowed). */
json_t *protocol_state_reply(const struct state *s);

/* The state reply plus "persisted" (false while the state file lags behind
 * the state: a save is being retried) and "pools": each colour's role and
 * servers (protocol_server_json()) from snap and hc (both borrowed). */
json_t *protocol_status_reply(const struct state *s, bool persisted, const struct snapshot *snap,
                              const struct health_checker *hc);

struct window_sum;

/* {"window_s":N,"requests":N,"rps":R,"errors":N,"error_rate":R,"p50_ms":R,
 * "p99_ms":R,"by_kind":{"2xx":..,"5xx":..,"connect_errors":..,...}} for a
 * sum over seconds (>= 1); latencies null without responses. */
json_t *protocol_traffic_json(const struct window_sum *sum, unsigned seconds);

/* One server of snap: {"pool":..., "name":..., "addr":..., "weight":...,
 * "admin":"enabled|draining|disabled", "in_flight":N, "health":"up|down"},
 * plus, once the health checks (hc, borrowed; NULL: none) have checked it,
 * "checked": the last check's result and "checked_at": when it ended. */
json_t *protocol_server_json(const struct snapshot *snap, enum conf_colour pool, size_t index,
                             const struct health_checker *hc);

/* {"ok":true,"server":SERVER} after a server.* command. */
json_t *protocol_server_reply(const struct snapshot *snap, enum conf_colour pool, size_t index,
                              const struct health_checker *hc);

/* {"ok":true,"reloads":N,"notes":[...]} after an applied reload; notes
 * (borrowed) say what the operator might not expect. */
json_t *protocol_reload_reply(unsigned reloads, const struct conf_errors *notes);

/* {"ok":false,"error":{"code":"bad_config","message":FIRST (and how many
 * more),"details":[EVERY PROBLEM]}} for a refused reload; errs borrowed, at
 * least one. Long lists are cut to fit the line limit. */
json_t *protocol_reload_refused(const struct conf_errors *errs);

/* {"ok":true,"events":[...],"truncated":B} from events (stolen: a JSON array
 * of events_to_json() objects, oldest first). Drops the oldest events until
 * the reply fits in a line of line_max bytes; truncated says whether any
 * was dropped. */
json_t *protocol_events_reply(json_t *events, size_t line_max);

/* Keeps the events (a JSON array, borrowed) whose generation is above
 * since, as events_foreach() does; since 0 keeps all. An event without a
 * generation is dropped: it cannot be placed. */
void protocol_events_since(json_t *events, uint64_t since);

/* {"event":EVENT} for a follower, from event (stolen). */
json_t *protocol_event_line(json_t *event);

#endif
