/* main.c - the switchyard proxy: load the config, start the workers, run the
 * control loop until SIGTERM, then drain. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/config.h"
#include "conf/log.h"
#include "control/admin_http.h"
#include "control/embedded_config.h"
#include "control/guard.h"
#include "control/privs.h"
#include "control/redis_fleet.h"
#include "control/redis_sync.h"
#include "control/rollout.h"
#include "control/status.h"
#include "health/window.h"
#include "control/reload.h"
#include "control/service.h"
#include "control/socket.h"
#include "health/check.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

#define SY_VERSION "0.1.0"
#define DRAIN_POLL_MS 20
#define STARTUP_SYNC_MS 3000 /* the longest start-up waits for the fleet's state */

static const char usage_text[] =
    "usage: switchyard [-c FILE] [-t] [-T THREADS] [-d] [-h] [-V]\n"
    "\n"
    "A blue/green traffic-switching HTTP/1.1 reverse proxy.\n"
    "\n"
    "  -c, --config FILE    load FILE (JSON); without it the embedded demo config\n"
    "                       (conf/examples/demo.json) is served\n"
    "  -t, --test           check the config, print every problem as\n"
    "                       FILE:LINE:COL: key.path: message, exit 0 or 1\n"
    "  -T, --threads N      worker threads (overrides \"workers\"; 0 = one per core)\n"
    "  -d, --debug          log every connection state change (verbose)\n"
    "  -h, --help           this text\n"
    "  -V, --version        print the version\n"
    "\n"
    "Signals: SIGTERM or SIGINT drain (stop accepting, finish in-flight requests,\n"
    "exit 0 within timeouts_ms.drain); a second one cuts the drain short. SIGHUP\n"
    "re-reads the config file (like `switchyardctl reload`): a config with errors,\n"
    "or one that changes what needs a restart (listen, workers, admin.socket, ...),\n"
    "is refused and the running config stays; the access log is reopened.\n"
    "\n"
    "Examples:\n"
    "  switchyard -t -c /etc/switchyard/prod.json\n"
    "  switchyard -c /etc/switchyard/prod.json\n";

struct options {
    const char *config_path;
    bool test_only;
    int threads; /* -1 = from the config */
    bool debug;
};

struct control {
    struct event_base *base;
    struct proxy *proxy;
    struct reloader *reloader;
    struct guard *guard;
    struct rollout *rollout;
    struct redis_sync *sync;   /* NULL without a redis section */
    struct redis_fleet *fleet; /* the fleet's signals; NULL without one */
    struct event *fleet_role;  /* who judges on the fleet's signals */
    bool judges_fleet;
    struct status_sources status; /* for the control socket and admin.http */
    struct health_checker *checker;
    struct snapshot *checked; /* the config the checks run on (referenced) */
    struct event *drain_poll;
    struct event *drain_deadline;
    bool draining;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"threads", required_argument, NULL, 'T'},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->threads = -1;
    while ((c = getopt_long(argc, argv, "c:tT:dhV", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 't':
            o->test_only = true;
            break;
        case 'T':
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || n < 0 || n > 256) {
                fprintf(stderr, "switchyard: -T: expected 0..256, got \"%s\"\n", optarg);
                return -1;
            }
            o->threads = (int)n;
            break;
        case 'd':
            o->debug = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case 'V':
            puts("switchyard " SY_VERSION);
            exit(0);
        default:
            fputs(usage_text, stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "switchyard: unexpected argument \"%s\"\n%s", argv[optind], usage_text);
        return -1;
    }
    return 0;
}

static struct config *load_config(const struct options *o)
{
    struct conf_errors errs = {0};
    struct config *cfg;

    if (o->config_path != NULL) {
        cfg = config_load_file(o->config_path, &errs);
    } else {
        char cwd[4096];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            memcpy(cwd, "/", 2);
        cfg = config_load_string(embedded_config_json, embedded_config_len, "<embedded demo.json>",
                                 cwd, &errs);
    }
    conf_errors_print(&errs, stderr);
    conf_errors_clear(&errs);
    return cfg;
}

static void drain_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct control *ctl = arg;

    if (proxy_running(ctl->proxy) == 0)
        event_base_loopexit(ctl->base, NULL);
}

static const struct config *running_config(const struct control *ctl)
{
    return reloader_current(ctl->reloader)->cfg;
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct control *ctl = arg;

    log_warn("drain: timeouts_ms.drain (%u ms) is over: cutting the remaining connections",
             running_config(ctl)->timeouts.drain_ms);
    proxy_stop(ctl->proxy);
}

static void stop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct control *ctl = arg;
    uint32_t drain_ms = running_config(ctl)->timeouts.drain_ms;
    struct timeval poll = {0, DRAIN_POLL_MS * 1000};
    struct timeval deadline = {drain_ms / 1000, (drain_ms % 1000) * 1000};

    if (ctl->draining) {
        log_warn("%s again: stopping now", strsignal((int)sig));
        proxy_stop(ctl->proxy);
        return;
    }
    ctl->draining = true;
    log_info("%s: draining (at most %u ms)", strsignal((int)sig), drain_ms);
    if (ctl->sync != NULL)
        redis_sync_step_down(ctl->sync);
    proxy_drain(ctl->proxy);
    event_add(ctl->drain_poll, &poll);
    event_add(ctl->drain_deadline, &deadline);
}

/* reloader_run() logs every error and note itself. */
static void hup_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct control *ctl = arg;
    struct conf_errors errs = {0}, notes = {0};

    log_info("SIGHUP: reloading");
    (void)reloader_run(ctl->reloader, &errs, &notes);
    conf_errors_clear(&errs);
    conf_errors_clear(&notes);
}

/* The checks write a server's health flag, which every worker's round-robin
 * reads; a change is an event. */
static void server_health_cb(void *handle, bool up, const char *why, void *arg)
{
    struct server_state *st = handle;
    struct service *svc = arg;

    atomic_store_explicit(&st->health, up ? SERVER_UP : SERVER_DOWN, memory_order_relaxed);
    if (why != NULL)
        service_record(svc, "health-check", why);
}

/* Points the health checks at snap's servers. ctl->checked keeps snap, and
 * so the server states the checks write and the pools' TLS contexts, alive.
 * Returns 0 or -1 (out of memory: the checks run as before). */
static int checks_retarget(struct control *ctl, struct snapshot *snap)
{
    const struct config *cfg = snap->cfg;
    size_t n = cfg->pools[CONF_BLUE].nservers + cfg->pools[CONF_GREEN].nservers, k = 0;
    struct health_target *targets = calloc(n, sizeof(*targets));

    if (targets == NULL)
        return -1;
    for (int c = 0; c < CONF_COLOURS; c++) {
        for (size_t i = 0; i < cfg->pools[c].nservers; i++)
            targets[k++] =
                (struct health_target){(enum conf_colour)c, &cfg->pools[c].servers[i],
                                       snap->servers[c][i], snap->pool_tls[c], &cfg->pools[c].tls};
    }
    int rc = health_checker_set(ctl->checker, &cfg->health, targets, n);
    free(targets);
    if (rc < 0)
        return -1;
    snapshot_unref(ctl->checked);
    ctl->checked = snapshot_ref(snap);
    return 0;
}

static void reload_applied_cb(struct snapshot *snap, void *arg)
{
    if (checks_retarget(arg, snap) < 0)
        log_error("health checks: out of memory: they keep checking the previous config's "
                  "servers");
}

static void log_start(const struct config *cfg, const struct route_split *split)
{
    struct route_view v = route_split_get(split);

    for (size_t i = 0; i < cfg->nlisten; i++)
        log_info("listening on %s", cfg->listen[i].addr.text);
    log_info("%u workers; stable %s %.2f%%, candidate %s %.2f%%", cfg->workers,
             conf_colour_name(v.stable), (CONF_WEIGHT_BP_MAX - v.candidate_bp) / 100.0,
             conf_colour_name(v.candidate), v.candidate_bp / 100.0);
}

/* Leading needs both the lease and fresh fleet signals: a stale ring reads
 * as no traffic, which no gate may take for a quiet fleet. */
static bool leads_fleet(const struct control *ctl)
{
    return redis_sync_leader(ctl->sync) && redis_fleet_fresh(ctl->fleet);
}

static bool leads_cb(void *arg)
{
    return leads_fleet(arg);
}

static void fleet_totals_cb(void *arg, enum conf_colour c, struct window_sum *out)
{
    proxy_pool_totals(arg, c, out);
}

/* The leader's detector judges the whole fleet's traffic; the others (and
 * everyone while Redis is away) judge their own, and every worker's instant
 * flip acts locally whatever the role. */
static void fleet_role_cb(evutil_socket_t fd, short what, void *arg)
{
    struct control *ctl = arg;
    bool judges = leads_fleet(ctl);

    if (judges == ctl->judges_fleet)
        return;
    ctl->judges_fleet = judges;
    guard_set_source(ctl->guard, judges ? redis_fleet_pool_sum : NULL, judges ? ctl->fleet : NULL);
    log_info("detector: judging %s",
             judges ? "the fleet's traffic (this instance leads)" : "this instance's traffic");
}

static int start_fleet(struct control *ctl, const struct config *cfg)
{
    struct timeval tick = {0, GUARD_TICK_MS * 1000};

    ctl->fleet = redis_fleet_new(ctl->base, redis_sync_conn(ctl->sync), cfg->redis.ns,
                                 redis_sync_instance(ctl->sync), fleet_totals_cb, ctl->proxy);
    ctl->fleet_role = event_new(ctl->base, -1, EV_PERSIST, fleet_role_cb, ctl);
    if (ctl->fleet == NULL || ctl->fleet_role == NULL || event_add(ctl->fleet_role, &tick) < 0)
        return -1;
    rollout_set_leader(ctl->rollout, leads_cb, ctl);
    rollout_set_source(ctl->rollout, redis_fleet_pool_sum, ctl->fleet);
    return 0;
}

/* Joins the fleet: the shared state is read (or this instance's seeds an
 * empty Redis) before any listener accepts, within a bound: a Redis that
 * does not answer must not keep the proxy from serving. */
static int start_sync(struct control *ctl, struct service *svc, const struct config *cfg)
{
    ctl->sync = redis_sync_new(ctl->base, svc, &cfg->redis, NULL);
    if (ctl->sync == NULL)
        return -1;
    (void)redis_sync_wait_ready(ctl->sync, STARTUP_SYNC_MS);
    return 0;
}

static int run(struct snapshot *snap, const struct options *o)
{
    const struct config *cfg = snap->cfg;
    struct control ctl = {0};
    struct service *svc = service_new(cfg);
    struct ctlsock *sock = NULL;
    struct admin_http *admin = NULL;
    struct event *sigs[3] = {NULL};
    int rc = 1;

    ctl.base = event_base_new();
    if (ctl.base == NULL || svc == NULL || service_attach(svc, ctl.base) < 0)
        goto out;
    if (cfg->redis.enabled && start_sync(&ctl, svc, cfg) < 0)
        goto out;
    ctl.proxy = proxy_new(snap, service_split(svc));
    if (ctl.proxy == NULL)
        goto out;
    ctl.reloader = reloader_new(o->config_path, o->threads >= 0, snap, ctl.proxy, svc);
    if (ctl.reloader == NULL)
        goto out;
    ctl.guard = guard_new(ctl.base, ctl.proxy, svc, ctl.reloader);
    if (ctl.guard == NULL)
        goto out;
    ctl.rollout = rollout_new(ctl.base, svc, ctl.reloader, ctl.proxy, ctl.guard);
    if (ctl.rollout == NULL)
        goto out;
    if (ctl.sync != NULL && start_fleet(&ctl, cfg) < 0)
        goto out;
    ctl.checker = health_checker_new(ctl.base, server_health_cb, svc);
    if (ctl.checker == NULL || checks_retarget(&ctl, snap) < 0)
        goto out;
    reloader_on_applied(ctl.reloader, reload_applied_cb, &ctl);
    /* Before the workers start: a socket that cannot be had is a start-up error. */
    ctl.status = (struct status_sources){
        .svc = svc,
        .reloader = ctl.reloader,
        .health = ctl.checker,
        .proxy = ctl.proxy,
        .guard = ctl.guard,
        .rollout = ctl.rollout,
        .sync = ctl.sync,
        .fleet = ctl.fleet,
        .started_s = window_now_s(),
    };
    if (cfg->admin.socket != NULL && (sock = ctlsock_new(ctl.base, &ctl.status)) == NULL)
        goto out;
    if (cfg->admin.has_http &&
        (admin = admin_http_new(ctl.base, &cfg->admin.http, &ctl.status)) == NULL)
        goto out;
    ctl.drain_poll = event_new(ctl.base, -1, EV_PERSIST, drain_poll_cb, &ctl);
    ctl.drain_deadline = event_new(ctl.base, -1, 0, drain_deadline_cb, &ctl);
    sigs[0] = evsignal_new(ctl.base, SIGTERM, stop_signal_cb, &ctl);
    sigs[1] = evsignal_new(ctl.base, SIGINT, stop_signal_cb, &ctl);
    sigs[2] = evsignal_new(ctl.base, SIGHUP, hup_signal_cb, &ctl);
    for (int i = 0; i < 3; i++) {
        if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) < 0)
            goto out;
    }
    /* Last thing before the workers serve: proxy_new() bound the listeners,
     * and the control socket, admin.http and every log are open. */
    if (privs_drop(cfg, o->config_path) < 0)
        goto out;
    if (ctl.drain_poll == NULL || ctl.drain_deadline == NULL || proxy_start(ctl.proxy) < 0)
        goto out;
    log_start(cfg, service_split(svc));
    event_base_dispatch(ctl.base);
    log_info("all workers stopped; exiting");
    rc = 0;
out:
    admin_http_free(admin);
    ctlsock_free(sock);
    rollout_free(ctl.rollout);
    if (ctl.fleet_role != NULL)
        event_free(ctl.fleet_role);
    redis_sync_free(ctl.sync); /* first: its link may hold replies meant for the fleet */
    redis_fleet_free(ctl.fleet);
    guard_free(ctl.guard);
    health_checker_free(ctl.checker);
    snapshot_unref(ctl.checked);
    reloader_free(ctl.reloader);
    proxy_free(ctl.proxy);
    service_free(svc);
    for (int i = 0; i < 3; i++) {
        if (sigs[i] != NULL)
            event_free(sigs[i]);
    }
    if (ctl.drain_poll != NULL)
        event_free(ctl.drain_poll);
    if (ctl.drain_deadline != NULL)
        event_free(ctl.drain_deadline);
    if (ctl.base != NULL)
        event_base_free(ctl.base);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    struct conf_errors errs = {0};
    struct config *cfg;
    struct snapshot *snap;
    int rc;

    if (parse_options(argc, argv, &o) < 0)
        return 2;
    log_setup("switchyard", o.debug ? LOG_DEBUG : LOG_INFO);
    cfg = load_config(&o);
    if (cfg == NULL)
        return 1;
    if (o.test_only) {
        printf("%s: configuration ok\n", cfg->path);
        config_free(cfg);
        return 0;
    }
    if (o.threads == 0)
        cfg->workers = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    else if (o.threads > 0)
        cfg->workers = (unsigned)o.threads;
    /* A client that goes away mid-write must cost an error code, not the process. */
    signal(SIGPIPE, SIG_IGN);
    snap = snapshot_new(cfg, cfg->workers, NULL);
    if (snap == NULL) {
        log_error("out of memory");
        config_free(cfg);
        return 1;
    }
    /* The config check loaded the same files: only a file changed since,
     * or no memory, fails here. */
    if (snapshot_load_tls(snap, NULL, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            log_error("%s", errs.msgs[i]);
        conf_errors_clear(&errs);
        snapshot_unref(snap);
        return 1;
    }
    rc = run(snap, &o);
    snapshot_unref(snap);
    return rc;
}
