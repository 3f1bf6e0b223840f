/* ctl.c - switchyardctl, the operator's client for the control socket.
 *
 * One request line out, one reply line back (or, for `events --follow`, a
 * stream of event lines until switchyard closes). Blocking I/O with poll()
 * deadlines is all a CLI needs: there is one socket and nothing else to do
 * while waiting. Command-line parsing lives in ctl_cmd.c and the human output
 * in ctl_render.c, so both are testable without a socket.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "control/ctl_cmd.h"
#include "control/ctl_render.h"

#define PROG "switchyardctl"
#define CTL_LINE_MAX 65536 /* the protocol's limit per line, newline excluded */

/* Buffered line reader over the socket; lines are NUL-terminated in place. */
struct reader {
    int fd;
    size_t start; /* first byte not yet returned */
    size_t len;   /* bytes held */
    char buf[CTL_LINE_MAX + 2];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for input until deadline (monotonic ms; -1 = none). Returns 0 when
 * readable, -1 with errno set (ETIMEDOUT when the deadline passed). */
static int wait_readable(int fd, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            int64_t d = deadline - now_ms();
            left = d > 0 ? (int)d : 0;
        }
        int n = poll(&p, 1, left);
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

/* Returns the next line in *line (borrowed until the next call, without its
 * newline): 1 with a line, 0 at a clean end of stream, -1 with errno set:
 * ETIMEDOUT, EMSGSIZE (line over the protocol's limit), EPROTO (the stream
 * ended inside a line) or the read error. */
static int reader_line(struct reader *r, int64_t deadline, char **line)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->len - r->start);
        if (nl != NULL) {
            *nl = '\0';
            *line = r->buf + r->start;
            r->start = (size_t)(nl - r->buf) + 1;
            return 1;
        }
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
        if (r->len > CTL_LINE_MAX) {
            errno = EMSGSIZE;
            return -1;
        }
        if (wait_readable(r->fd, deadline) < 0)
            return -1;
        ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0 && r->len > 0)
            errno = EPROTO;
        if (n == 0)
            return r->len > 0 ? -1 : 0;
        r->len += (size_t)n;
    }
}

/* Connects to path. SO_SNDTIMEO bounds both connect() (a listener whose
 * backlog is full would block it) and the request write. Returns the socket,
 * or -1 with errno set. */
static int connect_socket(const char *path, int timeout_ms)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved == EAGAIN ? ETIMEDOUT : saved;
        return -1;
    }
    return fd;
}

/* Writes the request as one line. request is borrowed. */
static int send_request(int fd, const json_t *request)
{
    char *text = json_dumps(request, JSON_COMPACT | JSON_REAL_PRECISION(15));
    size_t len = text ? strlen(text) : 0;
    size_t off = 0;
    int rc = 0;

    if (text == NULL) {
        errno = ENOMEM;
        return -1;
    }
    text[len] = '\n'; /* replaces the NUL: the buffer is sent by length */
    while (off < len + 1 && rc == 0) {
        ssize_t n = send(fd, text + off, len + 1 - off, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR)
            rc = -1;
        else if (n > 0)
            off += (size_t)n;
    }
    if (rc < 0 && errno == EAGAIN)
        errno = ETIMEDOUT;
    free(text);
    return rc;
}

static int bad_reply(const struct ctl_options *o, const char *why)
{
    fprintf(stderr, PROG ": bad reply from %s: %s\n", o->socket_path, why);
    return CTL_EXIT_FAIL;
}

/* Parses line into a new JSON object with a boolean "ok" or, for follow
 * lines, an "event"; NULL (reported) when it is not one. */
static json_t *reply_parse(const struct ctl_options *o, const char *line)
{
    json_error_t jerr;
    json_t *reply = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    char why[256];

    if (reply == NULL) {
        snprintf(why, sizeof(why), "not JSON (%s)", jerr.text);
        bad_reply(o, why);
        return NULL;
    }
    if (!json_is_object(reply) || (!json_is_boolean(json_object_get(reply, "ok")) &&
                                   !json_is_object(json_object_get(reply, "event")))) {
        bad_reply(o, "not a control protocol reply (no \"ok\")");
        json_decref(reply);
        return NULL;
    }
    return reply;
}

/* Prints a successful reply for people. reply is borrowed. */
static int render_ok(const struct ctl_options *o, const json_t *reply)
{
    int rc;

    if (strcmp(o->cmd, "status") == 0)
        rc = ctl_render_status(stdout, reply);
    else if (strcmp(o->cmd, "events") == 0)
        rc = ctl_render_events(stdout, reply);
    else if (strncmp(o->cmd, "server.", 7) == 0)
        rc = ctl_render_server(stdout, o->cmd, reply);
    else if (strcmp(o->cmd, "reload") == 0)
        rc = ctl_render_reload(stdout, reply);
    else if (strcmp(o->cmd, "rollout.report") == 0)
        rc = ctl_render_rollout_report(stdout, reply);
    else if (strcmp(o->cmd, "rollout.status") == 0 || json_object_get(reply, "rollout") != NULL)
        rc = ctl_render_rollout_status(stdout, reply); /* rollout.start may answer with it */
    else if (json_object_get(reply, "state") == NULL)
        rc = printf("%s: done\n", o->cmd) < 0 ? -1 : 0;
    else
        rc = ctl_render_change(stdout, o->cmd, reply);
    if (rc < 0)
        return bad_reply(o, "fields missing or ill-typed");
    return CTL_EXIT_OK;
}

/* Handles one reply line: prints it and returns the exit code it implies. */
static int handle_line(const struct ctl_options *o, const char *line, bool is_follow)
{
    json_t *reply = reply_parse(o, line);
    const json_t *event;
    int rc = CTL_EXIT_OK;

    if (reply == NULL)
        return CTL_EXIT_FAIL;
    event = json_object_get(reply, "event");
    if (json_is_false(json_object_get(reply, "ok"))) {
        if (o->json)
            puts(line);
        else if (ctl_render_refusal(stderr, reply) < 0)
            rc = bad_reply(o, "ok:false without an error code");
        rc = rc == CTL_EXIT_OK ? CTL_EXIT_REFUSED : rc;
    } else if (is_follow != (event != NULL)) {
        rc = bad_reply(o, is_follow ? "expected an event line" : "expected \"ok\"");
    } else if (o->json) {
        puts(line);
    } else if (is_follow && ctl_render_event(stdout, event) < 0) {
        rc = bad_reply(o, "event fields missing or ill-typed");
    } else if (!is_follow) {
        rc = render_ok(o, reply);
    }
    json_decref(reply);
    return rc;
}

/* Reports why no line came (n is reader_line()'s 0 or -1 with errno). */
static int read_failed(const struct ctl_options *o, int n)
{
    if (n == 0)
        return bad_reply(o, "connection closed without a reply");
    if (errno == EMSGSIZE)
        return bad_reply(o, "line longer than 65536 bytes");
    if (errno == EPROTO)
        return bad_reply(o, "connection closed inside a line");
    if (errno == ETIMEDOUT)
        fprintf(stderr, PROG ": no reply from %s within %d ms\n", o->socket_path, o->timeout_ms);
    else
        fprintf(stderr, PROG ": reading from %s: %s\n", o->socket_path, strerror(errno));
    return CTL_EXIT_FAIL;
}

/* Reads the reply line and, with --follow, event lines until switchyard
 * closes the stream, which ends a follow normally. */
static int exchange(const struct ctl_options *o, struct reader *r)
{
    char *line;
    int n = reader_line(r, now_ms() + o->timeout_ms, &line);
    int rc;

    if (n <= 0)
        return read_failed(o, n);
    rc = handle_line(o, line, false);
    if (rc != CTL_EXIT_OK || !o->follow)
        return rc;
    for (;;) {
        fflush(stdout);                /* a follower is often piped into grep or a log */
        n = reader_line(r, -1, &line); /* events come when they come: no deadline */
        if (n == 0)
            return CTL_EXIT_OK;
        if (n < 0)
            return read_failed(o, n);
        rc = handle_line(o, line, true);
        if (rc != CTL_EXIT_OK)
            return rc;
    }
}

static const char connect_hint[] = "is switchyard running with admin.socket set?";

int main(int argc, char **argv)
{
    struct ctl_options o;
    struct reader *r;
    json_t *request;
    char err[512];
    int rc = ctl_parse_args(argc, argv, &o, &request, err, sizeof(err));
    int fd;

    if (rc == CTL_PARSE_HELP) {
        fputs(ctl_usage_text, stdout);
        return CTL_EXIT_OK;
    }
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return CTL_EXIT_FAIL;
    }
    fd = connect_socket(o.socket_path, o.timeout_ms);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot connect to %s: %s (%s)\n", o.socket_path,
                errno == ETIMEDOUT ? "timed out" : strerror(errno), connect_hint);
        json_decref(request);
        return CTL_EXIT_FAIL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = CTL_EXIT_FAIL;
    } else if (send_request(fd, request) < 0) {
        fprintf(stderr, PROG ": cannot send to %s: %s\n", o.socket_path,
                errno == ETIMEDOUT ? "timed out" : strerror(errno));
        rc = CTL_EXIT_FAIL;
    } else {
        r->fd = fd;
        rc = exchange(&o, r);
    }
    free(r);
    close(fd);
    json_decref(request);
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK) {
        fprintf(stderr, PROG ": writing the output: %s\n", strerror(errno));
        rc = CTL_EXIT_FAIL;
    }
    return rc;
}
