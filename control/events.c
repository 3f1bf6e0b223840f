/* events.c - the ring of recent state changes and the append-only audit log. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/log.h"
#include "control/events.h"

struct events {
    struct state_event *ring; /* capacity slots */
    size_t capacity;
    size_t head;  /* slot of the oldest event */
    size_t count; /* events held */
    int log_fd;   /* -1 when no audit log */
    char *log_path;
    bool log_failing; /* a write failed and was reported; quiet until one succeeds */
};

struct events *events_new(size_t capacity)
{
    struct events *ev;

    if (capacity == 0)
        return NULL;
    ev = calloc(1, sizeof(*ev));
    if (!ev)
        return NULL;
    ev->ring = calloc(capacity, sizeof(*ev->ring));
    if (!ev->ring) {
        free(ev);
        return NULL;
    }
    ev->capacity = capacity;
    ev->log_fd = -1;
    return ev;
}

void events_free(struct events *ev)
{
    if (!ev)
        return;
    if (ev->log_fd >= 0)
        close(ev->log_fd);
    free(ev->log_path);
    free(ev->ring);
    free(ev);
}

int events_open_log(struct events *ev, const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    char *copy;

    if (fd < 0) {
        log_error("audit log %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    copy = strdup(path);
    if (!copy) {
        close(fd);
        log_error("audit log %s: out of memory", path);
        return -1;
    }
    if (ev->log_fd >= 0)
        close(ev->log_fd);
    free(ev->log_path);
    ev->log_fd = fd;
    ev->log_path = copy;
    ev->log_failing = false;
    return 0;
}

size_t events_count(const struct events *ev)
{
    return ev->count;
}

/* Whole percents stay integers in the log (10, not 10.0); 0.01 % steps do not. */
static json_t *percent_json(uint32_t bp)
{
    if (bp % 100 == 0)
        return json_integer((json_int_t)(bp / 100));
    return json_real(bp / 100.0);
}

static json_t *side_json(const struct state *s)
{
    return json_pack("{s:s, s:o, s:s, s:I}", "stable", conf_colour_name(s->stable),
                     "candidate_percent", percent_json(s->candidate_bp), "phase",
                     state_phase_name(s->phase), "step", (json_int_t)s->step);
}

json_t *events_to_json(const struct state_event *e)
{
    char when[96]; /* room for any int gcc can imagine in struct tm */
    json_t *j;

    log_format_time(e->time_ms, when, sizeof(when));
    if (e->op == STATE_OP_SERVER) /* no transition: no from and to */
        return json_pack("{s:s, s:I, s:s, s:s, s:s, s:b}", "time", when, "generation",
                         (json_int_t)e->generation, "who", e->who, "op", state_op_name(e->op),
                         "why", e->why, "persisted", 1);
    j = json_pack("{s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:b}", "time", when, "generation",
                  (json_int_t)e->generation, "who", e->who, "op", state_op_name(e->op), "why",
                  e->why, "from", side_json(&e->from), "to", side_json(&e->to), "persisted",
                  (int)e->persisted);
    if (j && !e->persisted && json_object_set_new(j, "note", json_string(e->note)) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int write_line(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One JSON line per event. A failure is logged once per outage so a full
 * disk does not flood the error log; the next success says it is over. */
static void log_append(struct events *ev, const struct state_event *e)
{
    json_t *j = events_to_json(e);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    char *text = NULL;
    int rc = -1;

    json_decref(j);
    errno = ENOMEM;
    if (line && asprintf(&text, "%s\n", line) >= 0)
        rc = write_line(ev->log_fd, text, strlen(text));
    if (rc < 0 && !ev->log_failing) {
        log_error("audit log %s: cannot append generation %" PRIu64 ": %s (reported once)",
                  ev->log_path, e->generation, strerror(errno));
        ev->log_failing = true;
    } else if (rc == 0 && ev->log_failing) {
        log_info("audit log %s: writing again", ev->log_path);
        ev->log_failing = false;
    }
    free(text);
    free(line);
}

void events_push(struct events *ev, const struct state_event *e)
{
    size_t slot = (ev->head + ev->count) % ev->capacity;

    ev->ring[slot] = *e;
    if (ev->count < ev->capacity)
        ev->count++;
    else
        ev->head = (ev->head + 1) % ev->capacity;
    if (ev->log_fd >= 0)
        log_append(ev, e);
}

size_t events_foreach(const struct events *ev, uint64_t since_generation, events_each_cb cb,
                      void *arg)
{
    size_t passed = 0;

    for (size_t i = 0; i < ev->count; i++) {
        const struct state_event *e = &ev->ring[(ev->head + i) % ev->capacity];
        if (since_generation != 0 && e->generation <= since_generation)
            continue;
        passed++;
        if (cb(e, arg) != 0)
            break;
    }
    return passed;
}
