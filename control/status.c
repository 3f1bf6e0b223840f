/* status.c - the status object, with the traffic figures. */
#include "control/status.h"

#include <stdlib.h>

#include "control/guard.h"
#include "control/protocol.h"
#include "control/redis_fleet.h"
#include "control/redis_sync.h"
#include "control/reload.h"
#include "control/service.h"
#include "health/window.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

unsigned status_window_s(const struct status_sources *src, int64_t now_s)
{
    unsigned window = reloader_current(src->reloader)->cfg->detector.window_s;
    int64_t age = now_s - src->started_s + 1;

    return age < (int64_t)window ? (unsigned)(age > 0 ? age : 1) : window;
}

/* Adds "traffic" to obj (a pool or a server) from sum over seconds. */
static int add_traffic(json_t *obj, const struct window_sum *sum, unsigned seconds)
{
    json_t *t = protocol_traffic_json(sum, seconds);

    return t != NULL ? json_object_set_new(obj, "traffic", t) : -1;
}

static int add_pool_traffic(const struct status_sources *src, json_t *pools, int64_t now,
                            unsigned seconds, struct window_sum *sum)
{
    const struct snapshot *snap = reloader_current(src->reloader);

    for (int c = 0; c < CONF_COLOURS; c++) {
        json_t *pool = json_object_get(pools, conf_colour_name((enum conf_colour)c));
        json_t *servers = json_object_get(pool, "servers");

        window_sum_clear(sum);
        proxy_pool_sum(src->proxy, (enum conf_colour)c, now, seconds, sum);
        if (add_traffic(pool, sum, seconds) < 0)
            return -1;
        /* protocol_status_reply() lists the servers in config order. */
        for (size_t i = 0; i < snap->cfg->pools[c].nservers; i++) {
            window_sum_clear(sum);
            server_state_sum(snap->servers[c][i], now, seconds, sum);
            if (add_traffic(json_array_get(servers, i), sum, seconds) < 0)
                return -1;
        }
    }
    return 0;
}

static int add_detector(const struct status_sources *src, json_t *reply)
{
    unsigned seconds;
    const struct detect_result *r = guard_last(src->guard, &seconds);
    json_t *d = json_pack("{s:s, s:s, s:I}", "verdict", verdict_name(r->verdict), "reason",
                          r->reason, "window_s", (json_int_t)seconds);

    return d != NULL ? json_object_set_new(reply, "detector", d) : -1;
}

/* "redis": the link, the lease, and the fleet's instances as seen here. */
static int add_redis(const struct status_sources *src, json_t *reply)
{
    json_t *r = redis_sync_status_json(src->sync);

    if (r == NULL)
        return -1;
    if (src->fleet != NULL)
        json_object_set_new(r, "fleet", redis_fleet_status_json(src->fleet));
    return json_object_set_new(reply, "redis", r);
}

json_t *status_reply(const struct status_sources *src)
{
    json_t *reply = protocol_status_reply(service_state(src->svc), service_persisted(src->svc),
                                          reloader_current(src->reloader), src->health);
    /* A sum holds a histogram: not for the stack. */
    struct window_sum *sum = malloc(sizeof(*sum));
    int64_t now = window_now_s();

    if (reply == NULL || sum == NULL)
        goto fail;
    if (src->proxy != NULL && add_pool_traffic(src, json_object_get(reply, "pools"), now,
                                               status_window_s(src, now), sum) < 0)
        goto fail;
    if (src->guard != NULL && add_detector(src, reply) < 0)
        goto fail;
    if (src->sync != NULL && add_redis(src, reply) < 0)
        goto fail;
    free(sum);
    return reply;
fail:
    free(sum);
    json_decref(reply);
    return NULL;
}
