/* service.c - a service's state, persisted, recorded and published. */
#include "control/service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "conf/log.h"
#include "control/events.h"
#include "control/statefile.h"

struct service {
    char *state_file; /* NULL: memory only. Copied: a reload frees the config */
    char *audit_log;  /* NULL: no audit log */
    struct state_machine *sm;
    struct events *events;
    struct route_split split;
    service_event_cb on_event;
    void *on_event_arg;
    service_event_cb replicate; /* the fleet's copy: every event, after on_event */
    void *replicate_arg;
    bool unsaved;            /* the state file is behind the current state */
    unsigned failed_retries; /* since the state became unsaved */
    struct event *retry;     /* saves the current state again; NULL until attached */
    uint32_t retry_first_ms; /* the first wait after a failure */
    uint32_t retry_max_ms;   /* the wait doubles up to this */
    uint32_t retry_ms;       /* the next wait */
};

static void retry_arm(struct service *svc)
{
    struct timeval tv = {svc->retry_ms / 1000, (svc->retry_ms % 1000) * 1000};

    if (svc->retry != NULL)
        evtimer_add(svc->retry, &tv);
}

/* The state file now holds the current state: an outage, if any, is over. */
static void mark_saved(struct service *svc, uint64_t generation)
{
    if (!svc->unsaved)
        return;
    log_info("state: %s: saved again at generation %" PRIu64 " (%u retries failed before)",
             svc->state_file, generation, svc->failed_retries);
    svc->unsaved = false;
    svc->failed_retries = 0;
    if (svc->retry != NULL)
        evtimer_del(svc->retry);
}

/* Logged once per outage: the retries are quiet until one works. */
static void mark_unsaved(struct service *svc, uint64_t generation)
{
    if (svc->unsaved)
        return;
    svc->unsaved = true;
    svc->retry_ms = svc->retry_first_ms;
    if (svc->retry == NULL) {
        log_error("state: %s: generation %" PRIu64 " is not saved; the next change tries again",
                  svc->state_file, generation);
        return;
    }
    log_error("state: %s: generation %" PRIu64 " is not saved; retrying in %" PRIu32
              " ms, then less often (up to every %" PRIu32 " ms)",
              svc->state_file, generation, svc->retry_ms, svc->retry_max_ms);
    retry_arm(svc);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct service *svc = arg;
    const struct state *s = state_current(svc->sm);
    char why[512];

    if (statefile_save(svc->state_file, s, why, sizeof(why)) == 0) {
        mark_saved(svc, s->generation);
        return;
    }
    svc->failed_retries++;
    log_debug("state: retry %u: %s", svc->failed_retries, why);
    svc->retry_ms = svc->retry_ms > svc->retry_max_ms / 2 ? svc->retry_max_ms : svc->retry_ms * 2;
    retry_arm(svc);
}

static int persist_hook(const struct state *s, void *arg, char *why, size_t why_len)
{
    struct service *svc = arg;

    if (svc->state_file == NULL)
        return 0; /* nothing to keep it in: memory only, by configuration */
    if (statefile_save(svc->state_file, s, why, why_len) < 0)
        return -1;
    /* Only a change about to be applied (or a rollback, already applied) is
     * saved: s is the current state from here on. */
    mark_saved(svc, s->generation);
    return 0;
}

static void event_hook(const struct state_event *e, void *arg)
{
    struct service *svc = arg;

    if (!e->persisted)
        mark_unsaved(svc, e->generation);
    events_push(svc->events, e);
    if (svc->on_event != NULL)
        svc->on_event(e, svc->on_event_arg);
    if (svc->replicate != NULL)
        svc->replicate(e, svc->replicate_arg);
}

/* One atomic store: every worker routes by it from its next request on. */
static void publish_hook(const struct state *s, void *arg)
{
    struct service *svc = arg;

    route_split_set(&svc->split, s->stable, s->candidate_bp);
}

/* The next save would overwrite an unreadable state file, and with it the
 * evidence of what it held (a rollback, perhaps): it moves aside first. */
static void keep_corrupt(const char *path)
{
    char aside[4096];
    int n = snprintf(aside, sizeof(aside), "%s.corrupt", path);

    if (n < 0 || (size_t)n >= sizeof(aside))
        return;
    if (rename(path, aside) == 0)
        log_error("state: the unreadable file is kept as %s for inspection", aside);
    else if (errno != ENOENT)
        log_error("state: cannot keep %s aside as %s: %s", path, aside, strerror(errno));
}

/* The state to start from: the state file's when it has one, else the
 * config's. */
static void initial_state(const struct config *cfg, struct state *out)
{
    char why[512];

    state_from_config(cfg, out);
    if (cfg->state_file == NULL)
        return;
    switch (statefile_load(cfg->state_file, out, why, sizeof(why))) {
    case 0:
        log_info("state: %s: generation %llu, stable %s, candidate %.2f%%, phase %s (this wins "
                 "over routing.candidate_percent)",
                 cfg->state_file, (unsigned long long)out->generation,
                 conf_colour_name(out->stable), out->candidate_bp / 100.0,
                 state_phase_name(out->phase));
        return;
    case 1:
        log_info("state: %s does not exist yet: starting from the config", cfg->state_file);
        break;
    default:
        log_error("state: %s; starting from the config (stable %s, candidate %.2f%%)", why,
                  conf_colour_name(cfg->routing.stable), cfg->routing.candidate_bp / 100.0);
        keep_corrupt(cfg->state_file);
        break;
    }
    state_from_config(cfg, out);
}

/* Copies the paths the service keeps using (audit log opened when set). */
static int take_paths(struct service *svc, const struct config *cfg)
{
    if (cfg->state_file != NULL && (svc->state_file = strdup(cfg->state_file)) == NULL)
        return -1;
    if (cfg->audit_log_path == NULL)
        return 0;
    if ((svc->audit_log = strdup(cfg->audit_log_path)) == NULL)
        return -1;
    if (events_open_log(svc->events, svc->audit_log) < 0)
        log_warn("audit log %s: not written; events are kept in memory only", svc->audit_log);
    return 0;
}

struct service *service_new(const struct config *cfg)
{
    struct service *svc = calloc(1, sizeof(*svc));
    struct state initial;

    if (svc == NULL)
        return NULL;
    svc->retry_first_ms = SERVICE_RETRY_FIRST_MS;
    svc->retry_max_ms = SERVICE_RETRY_MAX_MS;
    initial_state(cfg, &initial);
    route_split_init(&svc->split, initial.stable, initial.candidate_bp);
    struct state_hooks hooks = {
        .persist = persist_hook,
        .event = event_hook,
        .publish = publish_hook,
        .arg = svc,
    };
    svc->events = events_new(SERVICE_EVENTS_KEPT);
    svc->sm = state_machine_new(&initial, &hooks);
    if (svc->events == NULL || svc->sm == NULL || take_paths(svc, cfg) < 0) {
        service_free(svc);
        return NULL;
    }
    return svc;
}

/* A rollback still unsaved at exit would be undone by the next start: one
 * last try, and an error that says so when it fails. */
static void save_before_exit(struct service *svc)
{
    const struct state *s = state_current(svc->sm);
    char why[512];

    if (statefile_save(svc->state_file, s, why, sizeof(why)) == 0)
        mark_saved(svc, s->generation);
    else
        log_error("state: generation %" PRIu64 " is lost at exit (the next start uses the "
                  "older state file): %s",
                  s->generation, why);
}

void service_free(struct service *svc)
{
    if (svc == NULL)
        return;
    if (svc->unsaved)
        save_before_exit(svc);
    if (svc->retry != NULL)
        event_free(svc->retry);
    state_machine_free(svc->sm);
    events_free(svc->events);
    free(svc->state_file);
    free(svc->audit_log);
    free(svc);
}

int service_attach(struct service *svc, struct event_base *base)
{
    struct event *retry = evtimer_new(base, retry_cb, svc);

    if (retry == NULL)
        return -1;
    if (svc->retry != NULL)
        event_free(svc->retry);
    svc->retry = retry;
    if (svc->unsaved)
        retry_arm(svc);
    return 0;
}

void service_set_retry_ms(struct service *svc, uint32_t first_ms, uint32_t max_ms)
{
    svc->retry_first_ms = first_ms > 0 ? first_ms : 1;
    svc->retry_max_ms = max_ms > svc->retry_first_ms ? max_ms : svc->retry_first_ms;
}

bool service_persisted(const struct service *svc)
{
    return !svc->unsaved;
}

int service_reopen_audit_log(struct service *svc)
{
    if (svc->audit_log == NULL)
        return 0;
    return events_open_log(svc->events, svc->audit_log);
}

struct route_split *service_split(struct service *svc)
{
    return &svc->split;
}

const struct state *service_state(const struct service *svc)
{
    return state_current(svc->sm);
}

const struct events *service_events(const struct service *svc)
{
    return svc->events;
}

static int64_t wall_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void service_record(struct service *svc, const char *who, const char *why)
{
    const struct state *now = state_current(svc->sm);
    struct state_event e = {
        .generation = now->generation,
        .time_ms = wall_clock_ms(),
        .op = STATE_OP_SERVER,
        .from = *now,
        .to = *now,
        .persisted = true, /* nothing of the state changed */
    };

    state_text_copy(e.who, sizeof(e.who), who);
    state_text_copy(e.why, sizeof(e.why), why);
    events_push(svc->events, &e);
    if (svc->on_event != NULL)
        svc->on_event(&e, svc->on_event_arg);
    if (svc->replicate != NULL)
        svc->replicate(&e, svc->replicate_arg);
}

void service_on_event(struct service *svc, service_event_cb cb, void *arg)
{
    svc->on_event = cb;
    svc->on_event_arg = arg;
}

void service_set_replicator(struct service *svc, service_event_cb cb, void *arg)
{
    svc->replicate = cb;
    svc->replicate_arg = arg;
}

int service_apply(struct service *svc, const struct state_change *c, struct state_error *err)
{
    return state_apply(svc->sm, c, err);
}

void service_adopt(struct service *svc, const struct state *s, const char *who, const char *why)
{
    state_adopt(svc->sm, s, who, why);
}
