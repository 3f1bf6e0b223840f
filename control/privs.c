/* privs.c - setgroups, setgid, setuid, each checked and then verified; then
 * a look at what the new user must still be able to do. */
#include "control/privs.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/log.h"

/* Not root: the only "drop" possible is to the ids already held. */
static int check_unprivileged(const struct conf_run_as *r)
{
    if (getuid() == r->uid && geteuid() == r->uid && getgid() == r->gid && getegid() == r->gid) {
        log_info("user %s: already running as uid %u, gid %u: no privileges to drop", r->user,
                 r->uid, r->gid);
        return 0;
    }
    log_error("user %s (uid %u, gid %u): switchyard runs as uid %u, gid %u, and only root can "
              "change user: start it as root, or remove \"user\" and \"group\" from the config",
              r->user, r->uid, r->gid, (unsigned)geteuid(), (unsigned)getegid());
    return -1;
}

/* Groups first and the uid last: once the uid is gone, so is the right to
 * change the others. Only the one group is kept: root's supplementary
 * groups must not survive, and the user's own are not needed. */
static int change_ids(const struct conf_run_as *r)
{
    gid_t gid = (gid_t)r->gid;

    if (setgroups(1, &gid) < 0) {
        log_error("cannot drop privileges: setgroups([%u]): %s", r->gid, strerror(errno));
        return -1;
    }
    if (setgid(gid) < 0) {
        log_error("cannot drop privileges: setgid(%u): %s", r->gid, strerror(errno));
        return -1;
    }
    if (setuid((uid_t)r->uid) < 0) {
        log_error("cannot drop privileges: setuid(%u): %s", r->uid, strerror(errno));
        return -1;
    }
    return 0;
}

/* A drop that half worked (a security policy refusing one call quietly)
 * must not leave a process that serves with root's rights. */
static int verify_ids(const struct conf_run_as *r)
{
    uid_t ru = (uid_t)-1, eu = (uid_t)-1, su = (uid_t)-1;
    gid_t rg = (gid_t)-1, eg = (gid_t)-1, sg = (gid_t)-1, groups[2];

    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != r->uid ||
        eu != r->uid || su != r->uid || rg != r->gid || eg != r->gid || sg != r->gid) {
        log_error("privilege drop incomplete: still uid %u/%u/%u, gid %u/%u/%u (real, "
                  "effective, saved): refusing to run",
                  (unsigned)ru, (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg,
                  (unsigned)sg);
        return -1;
    }
    if (getgroups(2, groups) != 1 || groups[0] != r->gid) {
        log_error("privilege drop incomplete: supplementary groups other than %u remain: "
                  "refusing to run",
                  r->gid);
        return -1;
    }
    if (r->uid != 0 && setuid(0) == 0) {
        log_error("privilege drop incomplete: setuid(0) still works: refusing to run");
        return -1;
    }
    return 0;
}

/* Warns when the user cannot do mode (R_OK or W_OK) on path, an existing
 * file or folder switchyard uses again later. */
static void warn_unless(const char *what, const char *path, int mode, const char *user,
                        const char *then)
{
    if (path == NULL || access(path, mode) == 0)
        return;
    log_warn("%s %s: user %s cannot %s it (%s): %s", what, path, user,
             mode == R_OK ? "read" : "write to", strerror(errno), then);
}

/* The state is saved with a rename() into its folder: a user who cannot
 * create files there could not save a single change, which the control
 * socket would then refuse. Better to say so now than at the first switch. */
static int check_state_folder(const char *state_file, const char *user)
{
    char copy[PATH_MAX];

    if (state_file == NULL || snprintf(copy, sizeof(copy), "%s", state_file) >= (int)sizeof(copy))
        return 0;
    const char *dir = dirname(copy);
    if (access(dir, W_OK | X_OK) == 0)
        return 0;
    log_error("state.file %s: user %s cannot write to its folder %s (%s): the state is saved "
              "there with a rename(); make the folder writable by %s, or move state.file",
              state_file, user, dir, strerror(errno), user);
    return -1;
}

/* Every reload reads the TLS files again (a renewal is a reload). */
static void check_tls_files(const struct config *cfg, const char *user)
{
    static const char *const then = "reloads will fail; make it readable by that user's group";

    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct conf_tls *t = &cfg->listen[i].tls;
        if (!cfg->listen[i].has_tls)
            continue;
        warn_unless("listen tls.cert", t->cert, R_OK, user, then);
        warn_unless("listen tls.key", t->key, R_OK, user, then);
        for (size_t j = 0; j < t->ncerts; j++) {
            warn_unless("listen tls.certificates cert", t->certs[j].cert, R_OK, user, then);
            warn_unless("listen tls.certificates key", t->certs[j].key, R_OK, user, then);
        }
    }
    for (int c = 0; c < CONF_COLOURS; c++)
        warn_unless("pools tls.ca", cfg->pools[c].tls.ca, R_OK, user, then);
}

static void check_later_use(const struct config *cfg, const char *config_path)
{
    const char *user = cfg->run_as.user;

    warn_unless("config", config_path, R_OK, user, "reloads will fail");
    check_tls_files(cfg, user);
    warn_unless("access_log.path", cfg->access_log_path, W_OK, user,
                "reopening it at reload (log rotation) will fail, the old file stays in use");
    warn_unless("state.audit_log", cfg->audit_log_path, W_OK, user,
                "reopening it at reload (log rotation) will fail, the old file stays in use");
    warn_unless("rollout.report_dir", cfg->rollout.report_dir, W_OK | X_OK, user,
                "rollout reports will not be saved");
}

int privs_drop(const struct config *cfg, const char *config_path)
{
    const struct conf_run_as *r = &cfg->run_as;

    if (r->user == NULL)
        return 0;
    if (geteuid() != 0) {
        if (check_unprivileged(r) < 0)
            return -1;
    } else {
        if (change_ids(r) < 0 || verify_ids(r) < 0)
            return -1;
        log_info("privileges dropped: now user %s (uid %u), gid %u (%s%s)", r->user, r->uid, r->gid,
                 r->group != NULL ? "group " : "the user's primary group",
                 r->group != NULL ? r->group : "");
    }
    check_later_use(cfg, config_path);
    return check_state_folder(cfg->state_file, r->user);
}
