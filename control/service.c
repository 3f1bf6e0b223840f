/* service.c - a service's state, persisted, recorded and published. */
#include "control/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "control/events.h"
#include "control/statefile.h"

struct service {
    const struct config *cfg;
    struct state_machine *sm;
    struct events *events;
    struct route_split split;
    service_event_cb on_event;
    void *on_event_arg;
};

static int persist_hook(const struct state *s, void *arg, char *why, size_t why_len)
{
    struct service *svc = arg;

    if (svc->cfg->state_file == NULL)
        return 0; /* nothing to keep it in: memory only, by configuration */
    return statefile_save(svc->cfg->state_file, s, why, why_len);
}

static void event_hook(const struct state_event *e, void *arg)
{
    struct service *svc = arg;

    events_push(svc->events, e);
    if (svc->on_event != NULL)
        svc->on_event(e, svc->on_event_arg);
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

struct service *service_new(const struct config *cfg)
{
    struct service *svc = calloc(1, sizeof(*svc));
    struct state initial;

    if (svc == NULL)
        return NULL;
    svc->cfg = cfg;
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
    if (svc->events == NULL || svc->sm == NULL) {
        service_free(svc);
        return NULL;
    }
    return svc;
}

void service_free(struct service *svc)
{
    if (svc == NULL)
        return;
    state_machine_free(svc->sm);
    events_free(svc->events);
    free(svc);
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

void service_on_event(struct service *svc, service_event_cb cb, void *arg)
{
    svc->on_event = cb;
    svc->on_event_arg = arg;
}

int service_apply(struct service *svc, const struct state_change *c, struct state_error *err)
{
    return state_apply(svc->sm, c, err);
}
