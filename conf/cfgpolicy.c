/* cfgpolicy.c - the config sections that steer releases: health, detector,
 * rollout and redis. */
#include "conf/cfgpolicy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "conf/redisurl.h"

#define ZONEINFO "/usr/share/zoneinfo"
#define ALL_DAYS 0x7F

static const uint32_t default_steps_bp[] = {100, 500, 1000, 2500, 5000, 10000};

#define F(type, key, kind, field, lo, hi, req)                                                     \
    {                                                                                              \
        key, kind, offsetof(type, field), lo, hi, req                                              \
    }
#define CUSTOM(key, req)                                                                           \
    {                                                                                              \
        key, CFGWALK_CUSTOM, 0, 0, 0, req                                                          \
    }
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* The section object at root.key, or NULL when absent or not an object. */
static const json_t *section(struct cfgwalk *w, const json_t *root, const char *key)
{
    char path[CFGWALK_PATH_MAX];
    return cfgwalk_member(w, root, "", key, CFGWALK_OBJECT, false, path, sizeof(path));
}

/* The string at obj.key, or NULL when absent or not a string. */
static const char *string_member(struct cfgwalk *w, const json_t *obj, const char *parent,
                                 const char *key, char *path)
{
    json_t *v = cfgwalk_member(w, obj, parent, key, CFGWALK_STRING, false, path, CFGWALK_PATH_MAX);
    return v ? json_string_value(v) : NULL;
}

/* Writes a basis-point value as a percentage: 1250 -> "12.5". */
static const char *percent(char *buf, size_t size, uint32_t bp)
{
    if (bp % 100 == 0)
        snprintf(buf, size, "%u", bp / 100);
    else if (bp % 10 == 0)
        snprintf(buf, size, "%u.%u", bp / 100, bp % 100 / 10);
    else
        snprintf(buf, size, "%u.%02u", bp / 100, bp % 100);
    return buf;
}

void cfgpolicy_health(struct cfgwalk *w, const json_t *root, struct conf_health *h)
{
    static const struct cfgwalk_field fields[] = {
        F(struct conf_health, "path", CFGWALK_URLPATH, path, 0, 0, false),
        F(struct conf_health, "interval_ms", CFGWALK_U32, interval_ms, 100, 3600000, false),
        F(struct conf_health, "timeout_ms", CFGWALK_U32, timeout_ms, 10, 60000, false),
        F(struct conf_health, "rise", CFGWALK_U32, rise, 1, 100, false),
        F(struct conf_health, "fall", CFGWALK_U32, fall, 1, 100, false),
        F(struct conf_health, "expect_status", CFGWALK_U32, expect_status, 100, 599, false),
        F(struct conf_health, "expect_body", CFGWALK_TEXT, expect_body, 0, 0, false),
    };
    const json_t *obj = section(w, root, "health");

    cfgwalk_set_string(w, &h->path, "/healthz");
    h->interval_ms = 1000;
    h->timeout_ms = 500;
    h->rise = 2;
    h->fall = 3;
    h->expect_status = 200;
    if (!obj)
        return;
    h->enabled = true;
    /* A check that outlives its interval would overlap the next one. */
    if (cfgwalk_object(w, obj, "health", fields, NFIELDS(fields), h) == 0 &&
        h->timeout_ms >= h->interval_ms)
        cfgwalk_error(w, "health.timeout_ms", false,
                      "timeout_ms (%u) must be less than interval_ms (%u)", h->timeout_ms,
                      h->interval_ms);
}

void cfgpolicy_detector(struct cfgwalk *w, const json_t *root, struct conf_detector *d)
{
    static const struct cfgwalk_field fields[] = {
        F(struct conf_detector, "window_s", CFGWALK_U32, window_s, 1, 60, false),
        F(struct conf_detector, "min_requests", CFGWALK_U32, min_requests, 1, 1e9, false),
        F(struct conf_detector, "max_error_rate", CFGWALK_DOUBLE, max_error_rate, 0, 1, false),
        F(struct conf_detector, "max_error_ratio", CFGWALK_DOUBLE, max_error_ratio, 1, INFINITY,
          false),
        F(struct conf_detector, "max_p99_ms", CFGWALK_U32, max_p99_ms, 1, 3600000, false),
        F(struct conf_detector, "max_p99_ratio", CFGWALK_DOUBLE, max_p99_ratio, 1, INFINITY, false),
        CUSTOM("fast_rollback", false),
    };
    static const struct cfgwalk_field fast[] = {
        F(struct conf_detector, "consecutive_failures", CFGWALK_U32, fast_consecutive_failures, 0,
          100000, false),
    };
    const json_t *obj = section(w, root, "detector");
    char path[CFGWALK_PATH_MAX];

    d->window_s = 30;
    d->min_requests = 100;
    d->max_error_rate = 0.05;
    d->max_error_ratio = 2.0;
    d->max_p99_ms = 1000;
    d->max_p99_ratio = 2.0;
    d->fast_consecutive_failures = 10;
    if (!obj)
        return;
    d->enabled = true;
    (void)cfgwalk_object(w, obj, "detector", fields, NFIELDS(fields), d);
    json_t *fr = cfgwalk_member(w, obj, "detector", "fast_rollback", CFGWALK_OBJECT, false, path,
                                sizeof(path));
    if (fr)
        (void)cfgwalk_object(w, fr, path, fast, NFIELDS(fast), d);
}

/* Checks one step against the one before it (prev, 0 for none). */
static bool step_ok(struct cfgwalk *w, const char *path, uint32_t bp, uint32_t prev, bool last)
{
    char a[16], b[16];

    if (bp == 0)
        cfgwalk_error(w, path, false, "must be greater than 0");
    else if (bp <= prev)
        cfgwalk_error(w, path, false, "steps must increase: %s follows %s",
                      percent(a, sizeof(a), bp), percent(b, sizeof(b), prev));
    else if (last && bp != CONF_WEIGHT_BP_MAX)
        cfgwalk_error(w, path, false, "the last step must be 100 (got %s)",
                      percent(a, sizeof(a), bp));
    else
        return true;
    return false;
}

/* Checks the steps array; replaces r->steps_bp only when all are good. */
static void parse_steps(struct cfgwalk *w, const json_t *arr, const char *path,
                        struct conf_rollout *r)
{
    static const struct cfgwalk_field step = {"", CFGWALK_BP, 0, 0, 100, false};
    size_t n = json_array_size(arr);
    uint32_t prev = 0;
    bool ok = true;
    char p[CFGWALK_PATH_MAX];

    if (n == 0) {
        cfgwalk_error(w, path, false, "must list at least one step");
        return;
    }
    uint32_t *steps = calloc(n, sizeof(*steps));
    if (!steps) {
        w->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cfgwalk_path_index(p, sizeof(p), path, i);
        if (cfgwalk_value(w, json_array_get(arr, i), p, &step, &steps[i]) < 0) {
            ok = false;
            prev = 0; /* compare the next one with nothing rather than a guess */
            continue;
        }
        ok &= step_ok(w, p, steps[i], prev, i == n - 1);
        prev = steps[i];
    }
    if (!ok) {
        free(steps);
        return;
    }
    free(r->steps_bp);
    r->steps_bp = steps;
    r->nsteps = n;
}

int cfgpolicy_parse_time(const char *s, uint16_t *minutes)
{
    for (int i = 0; i < 5; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        if (i == 2 ? s[i] != ':' : !digit)
            return -1;
    }
    unsigned h = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
    unsigned m = (unsigned)(s[3] - '0') * 10 + (unsigned)(s[4] - '0');
    if (s[5] != '\0' || h > 23 || m > 59)
        return -1;
    *minutes = (uint16_t)(h * 60 + m);
    return 0;
}

static int day_index(const char *s, size_t n)
{
    static const char names[] = "montuewedthufrisatsun";

    if (n != 3)
        return -1;
    for (int d = 0; d < 7; d++) {
        if (strncasecmp(s, names + d * 3, 3) == 0)
            return d;
    }
    return -1;
}

/* Adds one item ("mon", "fri-mon", "daily") of a days list to *days. */
static int parse_day_item(const char *s, size_t n, uint8_t *days, const char **why)
{
    while (n && *s == ' ')
        s++, n--;
    while (n && s[n - 1] == ' ')
        n--;
    if (n == 5 && strncasecmp(s, "daily", 5) == 0) {
        *days = ALL_DAYS;
        return 0;
    }
    const char *dash = memchr(s, '-', n);
    int from = day_index(s, dash ? (size_t)(dash - s) : n);
    int to = dash ? day_index(dash + 1, n - (size_t)(dash - s) - 1) : from;
    if (from < 0 || to < 0) {
        *why = n ? "unknown day (use mon, tue, wed, thu, fri, sat, sun, a range such as "
                   "mon-fri, or daily)"
                 : "empty item in the list of days";
        return -1;
    }
    /* A range runs forward through the week and may wrap: fri-mon. */
    for (int d = from;; d = (d + 1) % 7) {
        *days |= (uint8_t)(1u << d);
        if (d == to)
            break;
    }
    return 0;
}

int cfgpolicy_parse_days(const char *s, uint8_t *days, const char **why)
{
    uint8_t set = 0;

    for (;;) {
        size_t n = strcspn(s, ",");
        if (parse_day_item(s, n, &set, why) < 0)
            return -1;
        if (!s[n])
            break;
        s += n + 1;
    }
    *days = set;
    return 0;
}

/* Checks that tz names a zone this host knows; records the problem if not. */
static bool tz_ok(struct cfgwalk *w, const char *path, const char *tz)
{
    char file[512], shown[96];
    struct stat st;

    cfgwalk_quote(shown, sizeof(shown), tz);
    if (!*tz) {
        cfgwalk_error(w, path, false, "must not be empty");
        return false;
    }
    /* The name becomes a file path: it must not climb out of the zone folder. */
    if (tz[0] == '/' || strstr(tz, "..")) {
        cfgwalk_error(w, path, false,
                      "must be an IANA zone name such as \"Europe/Berlin\", not a path (got %s)",
                      shown);
        return false;
    }
    if (strcmp(tz, "UTC") == 0)
        return true; /* the C library knows it even without zone files */
    int n = snprintf(file, sizeof(file), "%s/%s", ZONEINFO, tz);
    if (n < 0 || (size_t)n >= sizeof(file) || stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        cfgwalk_error(w, path, false, "unknown time zone %s (not found under " ZONEINFO ")", shown);
        return false;
    }
    return true;
}

static void parse_window_days(struct cfgwalk *w, const json_t *obj, const char *path,
                              struct conf_window *win)
{
    char p[CFGWALK_PATH_MAX], shown[96];
    const char *why;
    const char *s = string_member(w, obj, path, "days", p);

    if (s && cfgpolicy_parse_days(s, &win->days, &why) < 0)
        cfgwalk_error(w, p, false, "cannot parse %s: %s", cfgwalk_quote(shown, sizeof(shown), s),
                      why);
}

static void parse_window(struct cfgwalk *w, const json_t *obj, const char *path,
                         struct conf_window *win)
{
    static const struct cfgwalk_field fields[] = {
        CUSTOM("days", false),
        CUSTOM("from", true),
        CUSTOM("to", true),
        CUSTOM("tz", false),
    };
    static const char *const keys[] = {"from", "to"};
    uint16_t *mins[] = {&win->from_min, &win->to_min};
    bool have[2] = {false, false};
    char p[CFGWALK_PATH_MAX], shown[96];

    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), NULL);
    parse_window_days(w, obj, path, win);
    for (int i = 0; i < 2; i++) {
        const char *s = string_member(w, obj, path, keys[i], p);
        if (!s)
            continue;
        have[i] = cfgpolicy_parse_time(s, mins[i]) == 0;
        if (!have[i])
            cfgwalk_error(w, p, false, "cannot parse %s: expected HH:MM from 00:00 to 23:59",
                          cfgwalk_quote(shown, sizeof(shown), s));
    }
    if (have[0] && have[1] && win->from_min == win->to_min) {
        cfgwalk_path_key(p, sizeof(p), path, "to");
        cfgwalk_error(w, p, false, "must differ from \"from\": a window cannot be empty");
    }
    const char *tz = string_member(w, obj, path, "tz", p);
    if (tz && tz_ok(w, p, tz))
        cfgwalk_set_string(w, &win->tz, tz);
}

/* True for the fields a probe writes itself: a second copy from the config
 * would make the request ambiguous or its framing wrong. */
static bool probe_sets_header(const char *name)
{
    static const char *const own[] = {"Host", "Connection", "Content-Length", "Transfer-Encoding"};

    for (size_t i = 0; i < NFIELDS(own); i++) {
        if (strcasecmp(name, own[i]) == 0)
            return true;
    }
    return false;
}

/* A header value goes on the wire verbatim: CR or LF would end the field
 * early, and the data plane's parser refuses NUL and other control bytes. */
static bool header_value_ok(const json_t *v)
{
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    size_t n = json_string_length(v);

    for (size_t i = 0; i < n; i++) {
        if ((s[i] < ' ' && s[i] != '\t') || s[i] == 0x7f)
            return false;
    }
    return true;
}

static void parse_probe_header(struct cfgwalk *w, const char *name, const json_t *v,
                               const char *path, struct conf_header *h)
{
    char shown[96];

    if (!cfgwalk_is_token(name)) {
        cfgwalk_error(w, path, true,
                      "header name must be an HTTP token (letters, digits and "
                      "!#$%%&'*+-.^_`|~) (got %s)",
                      cfgwalk_quote(shown, sizeof(shown), name));
    } else if (probe_sets_header(name)) {
        cfgwalk_error(w, path, true,
                      "%s cannot be set: the probe sends Host, Connection, Content-Length and "
                      "Transfer-Encoding itself",
                      cfgwalk_quote(shown, sizeof(shown), name));
    } else if (cfgwalk_expect(w, v, path, CFGWALK_STRING)) {
        if (!header_value_ok(v)) {
            cfgwalk_error(w, path, false,
                          "must not contain control characters such as CR, LF or NUL (got %s)",
                          cfgwalk_quote(shown, sizeof(shown), json_string_value(v)));
            return;
        }
        cfgwalk_set_string(w, &h->name, name);
        cfgwalk_set_string(w, &h->value, json_string_value(v));
    }
}

static void parse_probe_headers(struct cfgwalk *w, const json_t *obj, const char *path,
                                struct conf_probe *pr)
{
    size_t n = json_object_size(obj), i = 0;
    char p[CFGWALK_PATH_MAX];
    const char *name;
    json_t *v;

    if (n > CONF_PROBE_HEADERS_MAX) {
        cfgwalk_error(w, path, false, "at most %d headers (got %zu)", CONF_PROBE_HEADERS_MAX, n);
        return;
    }
    if (!n)
        return;
    pr->headers = calloc(n, sizeof(*pr->headers));
    if (!pr->headers) {
        w->oom = true;
        return;
    }
    pr->nheaders = n;
    json_object_foreach((json_t *)obj, name, v)
    {
        cfgwalk_path_key(p, sizeof(p), path, name);
        parse_probe_header(w, name, v, p, &pr->headers[i++]);
    }
}

static void parse_probe(struct cfgwalk *w, const json_t *obj, const char *path,
                        struct conf_probe *pr)
{
    static const struct cfgwalk_field fields[] = {
        F(struct conf_probe, "method", CFGWALK_TOKEN, method, 0, 0, false),
        F(struct conf_probe, "path", CFGWALK_URLPATH, path, 0, 0, true),
        F(struct conf_probe, "expect_status", CFGWALK_U32, expect_status, 100, 599, false),
        F(struct conf_probe, "expect_body", CFGWALK_TEXT, expect_body, 0, 0, false),
        CUSTOM("headers", false),
    };
    char p[CFGWALK_PATH_MAX];
    json_t *v;

    (void)cfgwalk_object(w, obj, path, fields, NFIELDS(fields), pr);
    if ((v = cfgwalk_member(w, obj, path, "headers", CFGWALK_OBJECT, false, p, sizeof(p))))
        parse_probe_headers(w, v, p, pr);
}

static void parse_windows(struct cfgwalk *w, const json_t *arr, const char *path,
                          struct conf_rollout *r)
{
    size_t n = json_array_size(arr);
    char p[CFGWALK_PATH_MAX];

    if (!n)
        return;
    r->windows = calloc(n, sizeof(*r->windows));
    if (!r->windows) {
        w->oom = true;
        return;
    }
    r->nwindows = n;
    for (size_t i = 0; i < n; i++) {
        struct conf_window *win = &r->windows[i];
        json_t *v = json_array_get(arr, i);
        win->days = ALL_DAYS;
        cfgwalk_set_string(w, &win->tz, "UTC");
        cfgwalk_path_index(p, sizeof(p), path, i);
        if (cfgwalk_expect(w, v, p, CFGWALK_OBJECT))
            parse_window(w, v, p, win);
    }
}

static void parse_preflight(struct cfgwalk *w, const json_t *arr, const char *path,
                            struct conf_rollout *r)
{
    size_t n = json_array_size(arr);
    char p[CFGWALK_PATH_MAX];

    if (!n)
        return;
    r->preflight = calloc(n, sizeof(*r->preflight));
    if (!r->preflight) {
        w->oom = true;
        return;
    }
    r->npreflight = n;
    for (size_t i = 0; i < n; i++) {
        struct conf_probe *pr = &r->preflight[i];
        json_t *v = json_array_get(arr, i);
        cfgwalk_set_string(w, &pr->method, "GET");
        pr->expect_status = 200;
        cfgwalk_path_index(p, sizeof(p), path, i);
        if (cfgwalk_expect(w, v, p, CFGWALK_OBJECT))
            parse_probe(w, v, p, pr);
    }
}

void cfgpolicy_rollout(struct cfgwalk *w, const json_t *root, struct conf_rollout *r)
{
    static const struct cfgwalk_field fields[] = {
        CUSTOM("steps", false),
        F(struct conf_rollout, "step_s", CFGWALK_U32, step_s, 1, 86400, false),
        CUSTOM("windows", false),
        F(struct conf_rollout, "max_rps", CFGWALK_DOUBLE, max_rps, 0, INFINITY, false),
        CUSTOM("preflight", false),
        F(struct conf_rollout, "report_dir", CFGWALK_FILE, report_dir, 0, 0, false),
    };
    const json_t *obj = section(w, root, "rollout");
    char p[CFGWALK_PATH_MAX];
    json_t *v;

    r->steps_bp = malloc(sizeof(default_steps_bp));
    if (!r->steps_bp) {
        w->oom = true;
        return;
    }
    memcpy(r->steps_bp, default_steps_bp, sizeof(default_steps_bp));
    r->nsteps = NFIELDS(default_steps_bp);
    r->step_s = 300;
    if (!obj)
        return;
    r->enabled = true;
    (void)cfgwalk_object(w, obj, "rollout", fields, NFIELDS(fields), r);
    if ((v = cfgwalk_member(w, obj, "rollout", "steps", CFGWALK_ARRAY, false, p, sizeof(p))))
        parse_steps(w, v, p, r);
    if ((v = cfgwalk_member(w, obj, "rollout", "windows", CFGWALK_ARRAY, false, p, sizeof(p))))
        parse_windows(w, v, p, r);
    if ((v = cfgwalk_member(w, obj, "rollout", "preflight", CFGWALK_ARRAY, false, p, sizeof(p))))
        parse_preflight(w, v, p, r);
}

/* Checks a Redis URL with the parser the connection uses. Returns NULL, or
 * why (size len) holding what is wrong. */
static const char *redis_url_problem(const char *url, char *why, size_t len)
{
    struct redis_url parsed;

    return redis_url_parse(url, &parsed, why, len) < 0 ? why : NULL;
}

void cfgpolicy_redis(struct cfgwalk *w, const json_t *root, struct conf_redis *r)
{
    static const struct cfgwalk_field fields[] = {
        CUSTOM("url", false),
        F(struct conf_redis, "namespace", CFGWALK_WORD, ns, 0, 0, false),
        F(struct conf_redis, "lease_ms", CFGWALK_U32, lease_ms, 100, 600000, false),
    };
    const json_t *obj = section(w, root, "redis");
    char p[CFGWALK_PATH_MAX], shown[96], problem[160];

    cfgwalk_set_string(w, &r->ns, "switchyard");
    r->lease_ms = 5000;
    if (!obj)
        return;
    r->enabled = true;
    cfgwalk_set_string(w, &r->url, "redis://127.0.0.1:6379/0");
    (void)cfgwalk_object(w, obj, "redis", fields, NFIELDS(fields), r);
    const char *url = string_member(w, obj, "redis", "url", p);
    const char *why = url ? redis_url_problem(url, problem, sizeof(problem)) : NULL;
    if (why)
        cfgwalk_error(w, p, false, "%s (got %s)", why, cfgwalk_quote(shown, sizeof(shown), url));
    else if (url)
        cfgwalk_set_string(w, &r->url, url);
}

void cfgpolicy_free(struct config *cfg)
{
    struct conf_rollout *r = &cfg->rollout;

    free(cfg->health.path);
    free(cfg->health.expect_body);
    free(r->steps_bp);
    for (size_t i = 0; i < r->nwindows; i++)
        free(r->windows[i].tz);
    free(r->windows);
    for (size_t i = 0; i < r->npreflight; i++) {
        free(r->preflight[i].method);
        free(r->preflight[i].path);
        free(r->preflight[i].expect_body);
        for (size_t k = 0; k < r->preflight[i].nheaders; k++) {
            free(r->preflight[i].headers[k].name);
            free(r->preflight[i].headers[k].value);
        }
        free(r->preflight[i].headers);
    }
    free(r->preflight);
    free(r->report_dir);
    free(cfg->redis.url);
    free(cfg->redis.ns);
}
