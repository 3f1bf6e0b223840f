/* ctl_cmd.h - switchyardctl's command line: options, commands and the
 * control protocol request each command sends.
 *
 * Parsing is kept apart from the socket so that every accepted and every
 * refused command line can be tested without a running switchyard.
 */
#ifndef SY_CONTROL_CTL_CMD_H
#define SY_CONTROL_CTL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Exit codes, documented in the usage text. */
enum ctl_exit {
    CTL_EXIT_OK = 0,      /* done */
    CTL_EXIT_REFUSED = 1, /* switchyard answered ok:false */
    CTL_EXIT_FAIL = 2,    /* usage error, cannot connect, timeout, bad reply */
};

#define CTL_DEFAULT_SOCKET "switchyard.sock"
#define CTL_DEFAULT_TIMEOUT_MS 5000
#define CTL_MAX_TIMEOUT_MS 3600000
#define CTL_CMD_MAX 32
#define CTL_STEPS_MAX 20     /* steps of rollout start --steps, as the protocol allows */
#define CTL_STEP_S_MAX 86400 /* rollout start --step-s, as rollout.step_s allows */

/* ctl_parse_args() results besides 0 and -1. */
#define CTL_PARSE_HELP 1

struct ctl_options {
    const char *socket_path; /* borrowed from argv or the environment */
    bool json;               /* print raw reply lines */
    int timeout_ms;          /* for connecting and for the first reply */
    bool follow;             /* events --follow: read until the server closes */
    char cmd[CTL_CMD_MAX];   /* protocol command name, e.g. "server.drain" */
};

/* The usage text printed by --help and `help`. */
extern const char ctl_usage_text[];

/* Parses a percentage with at most two decimals ("25", "12.5", "0.01") in
 * 0..100 into basis points. Returns 0, or -1 for anything else ("abc", "150",
 * "12.345", "-1", "1e2", ""). */
int ctl_parse_percent(const char *s, uint32_t *bp) __attribute__((warn_unused_result));

/* Parses argv (argv[0] is the program name) into *o and a new request object
 * in *request (caller frees with json_decref). The socket defaults to
 * $SWITCHYARD_SOCKET, else CTL_DEFAULT_SOCKET. Returns 0; CTL_PARSE_HELP when
 * help was asked for (*request stays NULL); or -1 with a one-line message in
 * err (no program name, no newline) and *request NULL. */
int ctl_parse_args(int argc, char **argv, struct ctl_options *o, json_t **request, char *err,
                   size_t err_len) __attribute__((warn_unused_result));

#endif
