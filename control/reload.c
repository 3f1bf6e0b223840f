/* reload.c - validating a new config against the running one, and switching. */
#include "control/reload.h"

#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "control/service.h"
#include "control/state.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

struct reloader {
    char *path;
    bool fixed_workers;
    struct snapshot *snap;
    struct proxy *proxy;
    struct service *svc;
    unsigned count;
    reloader_applied_cb on_applied; /* NULL: nobody to tell */
    void *on_applied_arg;
};

static bool same_addr(const struct conf_addr *a, const struct conf_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Listening sockets stay for the process's life. What they speak is
 * per connection: each reload reads the TLS files again (snapshot_load_tls),
 * so certificates and TLS settings may change, and TLS may even be turned
 * on or off. */
static bool same_listeners(const struct config *a, const struct config *b)
{
    if (a->nlisten != b->nlisten)
        return false;
    for (size_t i = 0; i < a->nlisten; i++) {
        if (!same_addr(&a->listen[i].addr, &b->listen[i].addr))
            return false;
    }
    return true;
}

/* "127.0.0.1:8080, [::1]:8080" into buf. */
static const char *listeners_text(const struct config *cfg, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < cfg->nlisten && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", cfg->listen[i].addr.text);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

static bool same_admin_http(const struct conf_admin *a, const struct conf_admin *b)
{
    return a->has_http == b->has_http && (!a->has_http || same_addr(&a->http, &b->http));
}

static bool same_redis(const struct conf_redis *a, const struct conf_redis *b)
{
    return a->enabled == b->enabled && conf_same_str(a->url, b->url) &&
           conf_same_str(a->ns, b->ns) && a->lease_ms == b->lease_ms;
}

#define RESTART "needs a restart; the running config stays"

size_t reload_check(const struct config *running, const struct config *next,
                    struct conf_errors *errs)
{
    size_t before = errs->n;
    const char *f = next->path;

    if (!same_listeners(running, next)) {
        char was[512], now[512];
        conf_errors_add(errs, "%s: listen: changed from [%s] to [%s]: " RESTART, f,
                        listeners_text(running, was, sizeof(was)),
                        listeners_text(next, now, sizeof(now)));
    }
    if (running->workers != next->workers)
        conf_errors_add(errs, "%s: workers: changed from %u to %u: " RESTART, f, running->workers,
                        next->workers);
    if (!conf_same_str(running->admin.socket, next->admin.socket))
        conf_errors_add(errs, "%s: admin.socket: changed from %s to %s: " RESTART, f,
                        running->admin.socket ? running->admin.socket : "(none)",
                        next->admin.socket ? next->admin.socket : "(none)");
    if (!same_admin_http(&running->admin, &next->admin))
        conf_errors_add(errs, "%s: admin.http: changed: " RESTART, f);
    if (!conf_same_str(running->state_file, next->state_file))
        conf_errors_add(errs, "%s: state.file: changed from %s to %s: " RESTART, f,
                        running->state_file ? running->state_file : "(none)",
                        next->state_file ? next->state_file : "(none)");
    if (!conf_same_str(running->audit_log_path, next->audit_log_path))
        conf_errors_add(errs, "%s: state.audit_log: changed from %s to %s: " RESTART, f,
                        running->audit_log_path ? running->audit_log_path : "(none)",
                        next->audit_log_path ? next->audit_log_path : "(none)");
    if (!conf_same_str(running->access_log_path, next->access_log_path))
        conf_errors_add(errs, "%s: access_log.path: changed from %s to %s: " RESTART, f,
                        running->access_log_path ? running->access_log_path : "(none)",
                        next->access_log_path ? next->access_log_path : "(none)");
    if (!same_redis(&running->redis, &next->redis))
        conf_errors_add(errs, "%s: redis: changed: " RESTART, f);
    /* Privileges are dropped once at start-up: there is no way back to root. */
    if (!conf_same_str(running->run_as.user, next->run_as.user) ||
        running->run_as.uid != next->run_as.uid)
        conf_errors_add(errs, "%s: user: changed from %s to %s: " RESTART, f,
                        running->run_as.user ? running->run_as.user : "(none)",
                        next->run_as.user ? next->run_as.user : "(none)");
    if (!conf_same_str(running->run_as.group, next->run_as.group) ||
        running->run_as.gid != next->run_as.gid)
        conf_errors_add(errs, "%s: group: changed from gid %u to gid %u: " RESTART, f,
                        running->run_as.gid, next->run_as.gid);
    return errs->n - before;
}

void reload_notes(const struct config *running, const struct config *next, const struct state *live,
                  struct conf_errors *notes)
{
    const struct conf_routing *was = &running->routing, *now = &next->routing;

    /* The config only seeds the state at first start: after that the state
     * machine owns the split, and a reload must not move traffic behind the
     * operator's back. */
    if (was->stable != now->stable || was->candidate_bp != now->candidate_bp)
        conf_errors_add(notes,
                        "%s: routing.stable/candidate_percent: not applied: the live state "
                        "(stable %s, candidate %.2f%%) stays; change it with switchyardctl "
                        "weight, promote or rollback",
                        next->path, conf_colour_name(live->stable), live->candidate_bp / 100.0);
}

struct reloader *reloader_new(const char *path, bool fixed_workers, struct snapshot *snap,
                              struct proxy *proxy, struct service *svc)
{
    struct reloader *r = calloc(1, sizeof(*r));

    if (r == NULL || (path != NULL && (r->path = strdup(path)) == NULL)) {
        free(r);
        return NULL;
    }
    r->fixed_workers = fixed_workers;
    r->snap = snapshot_ref(snap);
    r->proxy = proxy;
    r->svc = svc;
    return r;
}

void reloader_free(struct reloader *r)
{
    if (r == NULL)
        return;
    snapshot_unref(r->snap);
    free(r->path);
    free(r);
}

struct snapshot *reloader_current(const struct reloader *r)
{
    return r->snap;
}

void reloader_on_applied(struct reloader *r, reloader_applied_cb cb, void *arg)
{
    r->on_applied = cb;
    r->on_applied_arg = arg;
}

unsigned reloader_count(const struct reloader *r)
{
    return r->count;
}

static void log_all(const struct conf_errors *list, const char *prefix)
{
    for (size_t i = 0; i < list->n; i++)
        log_warn("%s%s", prefix, list->msgs[i]);
}

int reloader_run(struct reloader *r, struct conf_errors *errs, struct conf_errors *notes)
{
    const struct config *running = r->snap->cfg;
    struct config *next;
    struct snapshot *snap;

    if (r->path == NULL) {
        conf_errors_add(errs, "reload: started without -c: the embedded config has nothing to "
                              "re-read");
        log_all(errs, "");
        return -1;
    }
    next = config_load_file(r->path, errs);
    if (next != NULL && r->fixed_workers)
        next->workers = running->workers;
    if (next == NULL || reload_check(running, next, errs) > 0) {
        config_free(next);
        log_all(errs, "reload refused: ");
        return -1;
    }
    snap = snapshot_new(next, r->snap->nworkers, r->snap);
    if (snap == NULL) {
        config_free(next);
        conf_errors_add(errs, "reload: out of memory; the running config stays");
        log_all(errs, "");
        return -1;
    }
    /* The certificates as they are now on disk: a renewed one is taken up
     * here. One that cannot be loaded keeps the running config, whose
     * contexts stay. */
    if (snapshot_load_tls(snap, r->snap, errs) < 0) {
        snapshot_unref(snap);
        log_all(errs, "reload refused: ");
        return -1;
    }
    reload_notes(running, next, service_state(r->svc), notes);
    log_all(notes, "reload: ");
    proxy_reload(r->proxy, snap);
    /* Reload doubles as the log rotation signal, as for most daemons. */
    int reopen_failed = proxy_reopen_access_log(r->proxy) < 0;
    reopen_failed |= service_reopen_audit_log(r->svc) < 0;
    if (reopen_failed)
        conf_errors_add(notes, "reload: a log file could not be reopened: the old one stays "
                               "in use (see the log)");
    snapshot_unref(r->snap);
    r->snap = snap;
    r->count++;
    log_info("reload %u: %s applied", r->count, r->path);
    if (r->on_applied != NULL)
        r->on_applied(snap, r->on_applied_arg);
    return 0;
}
