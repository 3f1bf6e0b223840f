/* cfguser.c - "user" and "group": a name or a numeric id each, resolved at
 * load through the system's user and group databases (NSS). */
#include "conf/cfguser.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

/* A group with thousands of members needs far more than the usual 1 KiB;
 * an entry past the cap is a broken database, not a config to run with. */
#define LOOKUP_BUF_FIRST 4096
#define LOOKUP_BUF_MAX (1u << 20)

enum lookup {
    LOOKUP_FOUND,
    LOOKUP_MISSING,
    LOOKUP_FAILED, /* errno set */
};

/* True with *id set when s is a decimal id ("65534"). (uid_t)-1 is no id:
 * setuid() and setgid() read it as "leave unchanged". */
static bool parse_id(const char *s, uint32_t *id)
{
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v >= UINT32_MAX)
        return false;
    *id = (uint32_t)v;
    return true;
}

/* What a getpw*_r() or getgr*_r() call said: the codes their manual lists
 * for "not found" count as missing, any other as a failure. */
static enum lookup settle(bool found, int rc)
{
    if (found)
        return LOOKUP_FOUND;
    if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
        return LOOKUP_MISSING;
    errno = rc;
    return LOOKUP_FAILED;
}

/* One getpw*_r() or getgr*_r() call into buf of size bytes: its error
 * code, *found set when the entry was there. */
typedef int (*lookup_call)(const char *name, void *entry, char *buf, size_t size, bool *found);

/* Runs call with a buffer that doubles while the entry does not fit (up to
 * LOOKUP_BUF_MAX). The entry's strings point into the buffer, freed here:
 * callers read its ids only. */
static enum lookup lookup(lookup_call call, const char *name, void *entry)
{
    size_t size = LOOKUP_BUF_FIRST;
    char *buf = NULL;
    bool found = false;
    int rc;

    do {
        char *nb = realloc(buf, size);
        if (nb == NULL) {
            free(buf);
            errno = ENOMEM;
            return LOOKUP_FAILED;
        }
        buf = nb;
        rc = call(name, entry, buf, size, &found);
        size *= 2;
    } while (rc == ERANGE && size <= LOOKUP_BUF_MAX);
    free(buf);
    return settle(found, rc);
}

static int call_user(const char *name, void *entry, char *buf, size_t size, bool *found)
{
    struct passwd *res = NULL;
    uint32_t id;
    int rc = parse_id(name, &id) ? getpwuid_r((uid_t)id, entry, buf, size, &res)
                                 : getpwnam_r(name, entry, buf, size, &res);

    *found = res != NULL;
    return rc;
}

static int call_group(const char *name, void *entry, char *buf, size_t size, bool *found)
{
    struct group *res = NULL;
    uint32_t id;
    int rc = parse_id(name, &id) ? getgrgid_r((gid_t)id, entry, buf, size, &res)
                                 : getgrnam_r(name, entry, buf, size, &res);

    *found = res != NULL;
    return rc;
}

/* Looks name up in the user database, by uid when it is numeric. */
static enum lookup find_user(const char *name, uint32_t *uid, uint32_t *gid)
{
    struct passwd pw;
    enum lookup r = lookup(call_user, name, &pw);

    if (r == LOOKUP_FOUND) {
        *uid = pw.pw_uid;
        *gid = pw.pw_gid;
    }
    return r;
}

/* Looks name up in the group database, by gid when it is numeric. */
static enum lookup find_group(const char *name, uint32_t *gid)
{
    struct group gr;
    enum lookup r = lookup(call_group, name, &gr);

    if (r == LOOKUP_FOUND)
        *gid = gr.gr_gid;
    return r;
}

/* Resolves r->user. Returns 1 when its primary group is known too, 0 for a
 * bare uid the database does not know (fine with "group"), -1 after
 * recording the problem. */
static int resolve_user(struct cfgwalk *w, struct conf_run_as *r)
{
    char shown[96];
    uint32_t id;

    switch (find_user(r->user, &r->uid, &r->gid)) {
    case LOOKUP_FOUND:
        return 1;
    case LOOKUP_MISSING:
        if (parse_id(r->user, &id)) {
            r->uid = id;
            return 0;
        }
        cfgwalk_error(w, "user", false, "no such user %s",
                      cfgwalk_quote(shown, sizeof(shown), r->user));
        return -1;
    case LOOKUP_FAILED:
        break;
    }
    cfgwalk_error(w, "user", false, "cannot look up user %s: %s",
                  cfgwalk_quote(shown, sizeof(shown), r->user), strerror(errno));
    return -1;
}

static void resolve_group(struct cfgwalk *w, struct conf_run_as *r)
{
    char shown[96];

    switch (find_group(r->group, &r->gid)) {
    case LOOKUP_FOUND:
        return;
    case LOOKUP_MISSING:
        if (parse_id(r->group, &r->gid))
            return;
        cfgwalk_error(w, "group", false, "no such group %s",
                      cfgwalk_quote(shown, sizeof(shown), r->group));
        return;
    case LOOKUP_FAILED:
        cfgwalk_error(w, "group", false, "cannot look up group %s: %s",
                      cfgwalk_quote(shown, sizeof(shown), r->group), strerror(errno));
        return;
    }
}

void cfguser_parse(struct cfgwalk *w, const json_t *root, struct conf_run_as *r)
{
    static const struct cfgwalk_field user = {"user", CFGWALK_WORD, 0, 0, 0, false};
    static const struct cfgwalk_field group = {"group", CFGWALK_WORD, 0, 0, 0, false};
    char p[CFGWALK_PATH_MAX];
    json_t *u = cfgwalk_member(w, root, "", "user", CFGWALK_STRING, false, p, sizeof(p));
    json_t *g = cfgwalk_member(w, root, "", "group", CFGWALK_STRING, false, p, sizeof(p));
    int primary_known = -1;

    /* Dropping the group alone would leave root's uid: no protection at all. */
    if (json_object_get(root, "group") != NULL && json_object_get(root, "user") == NULL)
        cfgwalk_error(w, "group", true, "needs \"user\" too: privileges are dropped to both");
    if (u != NULL && cfgwalk_value(w, u, "user", &user, &r->user) == 0)
        primary_known = resolve_user(w, r);
    if (g != NULL && cfgwalk_value(w, g, "group", &group, &r->group) == 0)
        resolve_group(w, r);
    else if (primary_known == 0)
        cfgwalk_error(w, "user", false,
                      "uid %u is not in the user database, so it has no primary group: "
                      "set \"group\" too",
                      r->uid);
}

void cfguser_free(struct conf_run_as *r)
{
    free(r->user);
    free(r->group);
    r->user = r->group = NULL;
}
