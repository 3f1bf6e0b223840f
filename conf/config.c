/* config.c - loading switchyard's JSON configuration.
 *
 * The text is parsed once by jansson (which rejects duplicate keys) and
 * indexed once by jsonpos for positions; then every section is checked with
 * a struct cfgwalk that collects all problems before deciding. A config is
 * returned only when no problem was found, so the rest of the program never
 * sees a half-valid one.
 */
#include "conf/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/cfgpolicy.h"
#include "conf/cfgproxy.h"
#include "conf/cfguser.h"
#include "conf/cfgwalk.h"
#include "conf/jsonpos.h"

/* No sane config comes near this; a bigger file is a mistake (a log, a dump). */
#define CONFIG_MAX_BYTES (4u << 20)

const char *conf_colour_name(enum conf_colour c)
{
    switch (c) {
    case CONF_BLUE:
        return "blue";
    case CONF_GREEN:
        return "green";
    }
    return "unknown";
}

void conf_errors_add(struct conf_errors *errs, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *msg = malloc((size_t)n + 1);
    char **msgs = msg ? realloc(errs->msgs, (errs->n + 1) * sizeof(*msgs)) : NULL;
    if (!msgs) {
        /* Nothing sensible is left to do with a message we cannot store. */
        free(msg);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    errs->msgs = msgs;
    errs->msgs[errs->n++] = msg;
}

void conf_errors_print(const struct conf_errors *errs, FILE *out)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(out, "%s\n", errs->msgs[i]);
}

void conf_errors_clear(struct conf_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

/* Reports a jansson parse failure. jansson counts columns in characters;
 * the line and byte position it also gives are turned into a byte column so
 * that every message of this module counts the same way. */
static void syntax_error(const char *name, const char *text, size_t len, const json_error_t *je,
                         struct conf_errors *errs)
{
    size_t pos = je->position > 0 ? (size_t)je->position : 0;
    int line = je->line > 0 ? je->line : 1;
    size_t start = 0;

    if (pos > len)
        pos = len;
    for (int l = 1; l < line && start < pos; start++) {
        if (text[start] == '\n')
            l++;
    }
    size_t col = pos > start ? pos - start : 1;
    /* jansson quotes the input it stopped at, which may hold control bytes
     * (terminal escapes): escape them like every other quoted value. */
    char shown[4 * JSON_ERROR_TEXT_LENGTH];
    conf_errors_add(errs, "%s:%d:%zu: invalid JSON: %s", name, line, col,
                    cfgwalk_escape(shown, sizeof(shown), je->text));
}

/* Returns a new absolute form of dir (NULL: the current folder). */
static char *absolute_dir(const char *dir)
{
    char buf[PATH_MAX];

    if (!dir || !*dir)
        dir = ".";
    if (realpath(dir, buf))
        return strdup(buf);
    if (dir[0] == '/' || !getcwd(buf, sizeof(buf)))
        return strdup(dir);
    size_t n = strlen(buf) + strlen(dir) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", buf, dir);
    return out;
}

static void set_defaults(struct cfgwalk *w, struct config *cfg)
{
    struct conf_timeouts *t = &cfg->timeouts;

    t->client_header_ms = 10000;
    t->client_idle_ms = 60000;
    t->connect_ms = 2000;
    t->upstream_header_ms = 30000;
    t->body_idle_ms = 60000;
    t->drain_ms = 30000;
    cfg->limits.max_connections = 10000;
    cfg->limits.max_header_bytes = 32768;
    cfg->limits.max_headers = 100;
    cfg->routing.stable = CONF_BLUE;
    cfg->admin.socket_mode = 0660;
    cfg->admin.allow_uids = malloc(sizeof(*cfg->admin.allow_uids));
    if (!cfg->admin.allow_uids) {
        w->oom = true;
        return;
    }
    /* The uid that started the process, still the same after "user" dropped
     * privileges: a reload must not hand the control socket to that user. */
    cfg->admin.allow_uids[0] = (uint32_t)getauxval(AT_UID);
    cfg->admin.nallow_uids = 1;
}

/* 0 workers means one per online core, capped like an explicit number. */
static unsigned resolve_workers(unsigned workers)
{
    if (workers)
        return workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > 256 ? 256 : (unsigned)n;
}

/* One file-valued key of a small section, stored as a char * in struct config. */
struct file_key {
    const char *key;
    size_t off;       /* offsetof(struct config, ...) */
    const char *dflt; /* when the section is present without the key; NULL: stays absent */
};
#define FILE_KEYS_MAX 2

/* A small section of n (<= FILE_KEYS_MAX) file paths, e.g. "state": {"file": ...,
 * "audit_log": ...}. Absent section: every path stays NULL. */
static void parse_file_section(struct cfgwalk *w, const json_t *root, const char *section,
                               const struct file_key *keys, size_t n, struct config *cfg)
{
    struct cfgwalk_field fields[FILE_KEYS_MAX];
    char p[CFGWALK_PATH_MAX];
    json_t *obj = cfgwalk_member(w, root, "", section, CFGWALK_OBJECT, false, p, sizeof(p));

    if (!obj)
        return;
    for (size_t i = 0; i < n; i++) {
        fields[i] = (struct cfgwalk_field){keys[i].key, CFGWALK_FILE, keys[i].off, 0, 0, false};
        if (keys[i].dflt)
            *(char **)((char *)cfg + keys[i].off) = cfgwalk_resolve(w, keys[i].dflt);
    }
    (void)cfgwalk_object(w, obj, section, fields, n, cfg);
}

static void parse_files(struct cfgwalk *w, const json_t *root, struct config *cfg)
{
    static const struct file_key state[] = {
        {"file", offsetof(struct config, state_file), "switchyard.state.json"},
        {"audit_log", offsetof(struct config, audit_log_path), NULL},
    };
    static const struct file_key access_log[] = {
        {"path", offsetof(struct config, access_log_path), "access.log"},
    };

    _Static_assert(sizeof(state) / sizeof(state[0]) <= FILE_KEYS_MAX, "raise FILE_KEYS_MAX");
    parse_file_section(w, root, "state", state, sizeof(state) / sizeof(state[0]), cfg);
    parse_file_section(w, root, "access_log", access_log, 1, cfg);
}

static void parse_timeouts_limits(struct cfgwalk *w, const json_t *root, struct config *cfg)
{
#define T(key, field)                                                                              \
    {                                                                                              \
        key, CFGWALK_U32, offsetof(struct conf_timeouts, field), 1, 86400000, false                \
    }
    static const struct cfgwalk_field timeouts[] = {
        T("client_header", client_header_ms),
        T("client_idle", client_idle_ms),
        T("connect", connect_ms),
        T("upstream_header", upstream_header_ms),
        T("body_idle", body_idle_ms),
        T("drain", drain_ms),
    };
#undef T
    static const struct cfgwalk_field limits[] = {
        {"max_connections", CFGWALK_U32, offsetof(struct conf_limits, max_connections), 1, 1000000,
         false},
        {"max_header_bytes", CFGWALK_U32, offsetof(struct conf_limits, max_header_bytes), 1024,
         1048576, false},
        {"max_headers", CFGWALK_U32, offsetof(struct conf_limits, max_headers), 1, 1000, false},
    };
    char p[CFGWALK_PATH_MAX];
    json_t *v;

    if ((v = cfgwalk_member(w, root, "", "timeouts_ms", CFGWALK_OBJECT, false, p, sizeof(p))))
        (void)cfgwalk_object(w, v, p, timeouts, sizeof(timeouts) / sizeof(timeouts[0]),
                             &cfg->timeouts);
    if ((v = cfgwalk_member(w, root, "", "limits", CFGWALK_OBJECT, false, p, sizeof(p))))
        (void)cfgwalk_object(w, v, p, limits, sizeof(limits) / sizeof(limits[0]), &cfg->limits);
}

static void parse_root(struct cfgwalk *w, const json_t *root, struct config *cfg)
{
    static const struct cfgwalk_field fields[] = {
        {"workers", CFGWALK_U32, offsetof(struct config, workers), 0, 256, false},
        {"listen", CFGWALK_CUSTOM, 0, 0, 0, true},
        {"admin", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"pools", CFGWALK_CUSTOM, 0, 0, 0, true},
        {"routing", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"timeouts_ms", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"limits", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"health", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"detector", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"rollout", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"state", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"redis", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"access_log", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"user", CFGWALK_CUSTOM, 0, 0, 0, false},
        {"group", CFGWALK_CUSTOM, 0, 0, 0, false},
    };

    (void)cfgwalk_object(w, root, "", fields, sizeof(fields) / sizeof(fields[0]), cfg);
    cfg->workers = resolve_workers(cfg->workers);
    cfgproxy_listen(w, root, cfg);
    cfgproxy_admin(w, root, &cfg->admin);
    cfgproxy_pools(w, root, cfg->pools);
    cfgproxy_routing(w, root, &cfg->routing);
    parse_timeouts_limits(w, root, cfg);
    cfgpolicy_health(w, root, &cfg->health);
    cfgpolicy_detector(w, root, &cfg->detector);
    cfgpolicy_rollout(w, root, &cfg->rollout);
    cfgpolicy_redis(w, root, &cfg->redis);
    parse_files(w, root, cfg);
    cfguser_parse(w, root, &cfg->run_as);
}

/* Checks the parsed document; returns the number of problems recorded. */
static size_t check(const char *name, const char *text, size_t len, const json_t *root,
                    struct config *cfg, struct conf_errors *errs)
{
    struct jsonpos *pos = jsonpos_scan(text, len);
    struct cfgwalk w;

    cfgwalk_init(&w, name, cfg->dir, pos);
    w.oom = !pos || !cfg->path || !cfg->dir;
    if (!w.oom) {
        set_defaults(&w, cfg);
        if (json_is_object(root))
            parse_root(&w, root, cfg);
        else
            cfgwalk_error(&w, "", false, "expected an object at the top level, got an array");
    }
    size_t n = cfgwalk_flush(&w, errs);
    jsonpos_free(pos);
    return n;
}

struct config *config_load_string(const char *text, size_t len, const char *name, const char *dir,
                                  struct conf_errors *errs)
{
    struct conf_errors sink = {0};
    json_error_t je;

    if (!errs)
        errs = &sink; /* the caller only wants a yes or no */
    if (!name)
        name = "<embedded>";
    if (!text) {
        text = "";
        len = 0;
    }
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        syntax_error(name, text, len, &je, errs);
        conf_errors_clear(&sink);
        return NULL;
    }
    struct config *cfg = calloc(1, sizeof(*cfg));
    size_t nerr = 1;
    if (cfg) {
        cfg->path = strdup(name);
        cfg->dir = absolute_dir(dir);
        nerr = check(name, text, len, root, cfg, errs);
    } else {
        conf_errors_add(errs, "%s: out of memory while loading the configuration", name);
    }
    json_decref(root);
    conf_errors_clear(&sink);
    if (nerr) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* Reads the whole file into a new NUL-terminated buffer. Returns 0, or -1
 * with errno set (EFBIG for an oversized file). */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0, cap = 0;
    char *buf = NULL;
    int err = 0;

    if (fd < 0)
        return -1;
    for (;;) {
        if (cap - n < 2) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                err = ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : 0;
            break;
        }
        n += (size_t)r;
        if (n > CONFIG_MAX_BYTES) {
            err = EFBIG;
            break;
        }
    }
    close(fd);
    if (err) {
        free(buf);
        errno = err;
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* The folder part of path ("." when it has none), as a new string. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

struct config *config_load_file(const char *path, struct conf_errors *errs)
{
    char *text = NULL;
    size_t len = 0;

    if (read_file(path, &text, &len) < 0) {
        if (errs && errno == EFBIG)
            conf_errors_add(errs, "%s: cannot read: larger than %u MiB", path,
                            CONFIG_MAX_BYTES >> 20);
        else if (errs)
            conf_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *dir = dir_of(path);
    struct config *cfg = NULL;
    if (dir)
        cfg = config_load_string(text, len, path, dir, errs);
    else if (errs)
        conf_errors_add(errs, "%s: out of memory while loading the configuration", path);
    free(dir);
    free(text);
    return cfg;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    cfgproxy_free(cfg);
    cfgpolicy_free(cfg);
    cfguser_free(&cfg->run_as);
    free(cfg->state_file);
    free(cfg->audit_log_path);
    free(cfg->access_log_path);
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}
