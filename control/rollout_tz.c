/* rollout_tz.c - TZif files and POSIX TZ rules, without the C library's TZ. */
#include "control/rollout_tz.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY_S 86400
#define TZIF_HEADER_LEN 44
#define TZIF_MAX_FILE (1 << 20) /* real zone files are under 10 KB */
#define TZIF_MAX_UTOFF (26 * 3600)
#define RULE_MAX_HOURS 167 /* RFC 8536 3.3.1: a rule's time may be -167..167 h */

/* One change date of a POSIX TZ rule: "Jn", "n" or "Mm.w.d", then "/time". */
struct tz_rule {
    char kind;      /* 'J' (1..365, no Feb 29), 'D' (0..365), 'M' (month.week.weekday) */
    unsigned day;   /* 'J', 'D' */
    unsigned month; /* 'M': 1..12 */
    unsigned week;  /* 'M': 1..5, 5 = the last */
    unsigned wday;  /* 'M': 0 = Sunday */
    int32_t time_s; /* local time of the change, seconds after midnight */
};

/* The footer's rule, for instants past the last transition. */
struct posix_tz {
    int32_t std_utoff; /* seconds east of UTC */
    int32_t dst_utoff;
    bool has_dst;
    struct tz_rule start, end; /* start in standard time, end in daylight time */
};

struct rollout_tz {
    char *name;
    int64_t *trans; /* transition instants, increasing */
    uint8_t *idx;   /* type in effect from trans[i] on */
    size_t ntrans;
    int32_t *utoff; /* per type: seconds east of UTC */
    bool has_rule;  /* footer present and not empty */
    struct posix_tz rule;
};

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

int64_t rollout_tz_days_from_civil(int64_t year, unsigned month, unsigned day)
{
    /* H. Hinnant's days_from_civil: years start in March so Feb 29 is last. */
    int64_t y = year - (month <= 2);
    int64_t era = floor_div(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t year_of_day(int64_t days)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153; /* 0 = March */
    return (int64_t)yoe + era * 400 + (mp >= 10);
}

unsigned rollout_tz_weekday(int64_t days)
{
    return (unsigned)(((days % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday */
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t year, unsigned month)
{
    static const unsigned len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return len[month - 1] + (month == 2 && is_leap(year));
}

/* The day (since 1970-01-01) on which rule r changes the clock in year. */
static int64_t rule_day(const struct tz_rule *r, int64_t year)
{
    int64_t jan1 = rollout_tz_days_from_civil(year, 1, 1);

    if (r->kind == 'J')
        return jan1 + r->day - 1 + (is_leap(year) && r->day >= 60);
    if (r->kind == 'D')
        return jan1 + r->day;
    int64_t first = rollout_tz_days_from_civil(year, r->month, 1);
    unsigned first_wday = (rollout_tz_weekday(first) + 1) % 7; /* 0 = Sunday here */
    int64_t d = first + (r->wday + 7 - first_wday) % 7 + 7 * (r->week - 1);
    while (d >= first + month_days(year, r->month))
        d -= 7; /* week 5 means the last such weekday */
    return d;
}

static int32_t rule_offset(const struct posix_tz *p, int64_t t)
{
    if (!p->has_dst)
        return p->std_utoff;
    int64_t year = year_of_day(floor_div(t + p->std_utoff, DAY_S));
    int64_t start = rule_day(&p->start, year) * DAY_S + p->start.time_s - p->std_utoff;
    int64_t end = rule_day(&p->end, year) * DAY_S + p->end.time_s - p->dst_utoff;
    /* In the southern hemisphere daylight time spans the new year. */
    bool dst = start < end ? t >= start && t < end : t >= start || t < end;
    return dst ? p->dst_utoff : p->std_utoff;
}

int32_t rollout_tz_offset(const struct rollout_tz *tz, int64_t t)
{
    /* RFC 8536 3.2: type 0 before the first transition, the footer after the
     * last one (or always, without transitions). */
    if (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1]) {
        if (tz->has_rule)
            return rule_offset(&tz->rule, t);
        return tz->utoff[tz->ntrans ? tz->idx[tz->ntrans - 1] : 0];
    }
    if (t < tz->trans[0])
        return tz->utoff[0];
    size_t lo = 0, hi = tz->ntrans - 1; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->utoff[tz->idx[lo]];
}

int64_t rollout_tz_to_utc(const struct rollout_tz *tz, int64_t local)
{
    /* Offsets run from -12 h to +14 h, so a day either side is before and
     * after any change that could make local ambiguous or skipped. */
    int32_t before = rollout_tz_offset(tz, local - DAY_S);
    int32_t after = rollout_tz_offset(tz, local + DAY_S);
    int64_t t1 = local - before, t2 = local - after;
    bool ok1 = rollout_tz_offset(tz, t1) == before, ok2 = rollout_tz_offset(tz, t2) == after;

    if (ok1 && ok2)
        return t1 < t2 ? t1 : t2; /* repeated: the first time the clock reads it */
    if (ok1 || ok2)
        return ok1 ? t1 : t2;
    /* Skipped: the instant of the change, between the two candidates. */
    int64_t lo = t1 < t2 ? t1 : t2, hi = t1 < t2 ? t2 : t1;
    int32_t lo_off = rollout_tz_offset(tz, lo);
    if (rollout_tz_offset(tz, hi) == lo_off)
        return t1; /* two changes within two days: no zone does that */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (rollout_tz_offset(tz, mid) == lo_off)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

/* ---- POSIX TZ strings (the footer) ---- */

/* Reads an unsigned number of at most 3 digits up to max. */
static bool parse_uint(const char **s, unsigned max, unsigned *out)
{
    const char *p = *s;
    unsigned v = 0, digits = 0;

    for (; isdigit((unsigned char)*p) && digits < 3; p++, digits++)
        v = v * 10 + (unsigned)(*p - '0');
    if (!digits || isdigit((unsigned char)*p) || v > max)
        return false;
    *s = p;
    *out = v;
    return true;
}

/* Reads ":nn" (0..59) into *out when it comes next. */
static bool parse_sixty(const char **s, unsigned *out)
{
    if (**s != ':')
        return true;
    (*s)++;
    return parse_uint(s, 59, out);
}

/* Reads [+-]hh[:mm[:ss]] into seconds. */
static bool parse_hms(const char **s, unsigned max_hours, int32_t *out)
{
    const char *p = *s;
    int32_t sign = *p == '-' ? -1 : 1;
    unsigned h, m = 0, sec = 0;

    if (*p == '+' || *p == '-')
        p++;
    /* ":ss" can only follow ":mm": without minutes no colon is left. */
    if (!parse_uint(&p, max_hours, &h) || !parse_sixty(&p, &m) || !parse_sixty(&p, &sec))
        return false;
    *s = p;
    *out = sign * (int32_t)(h * 3600 + m * 60 + sec);
    return true;
}

/* Skips a zone abbreviation: three or more letters, or <...> quoted. */
static bool parse_abbr(const char **s)
{
    const char *p = *s;
    size_t n = 0;

    if (*p == '<') {
        const char *end = strchr(p, '>');
        if (!end || end - p < 4)
            return false;
        *s = end + 1;
        return true;
    }
    while (isalpha((unsigned char)p[n]))
        n++;
    *s = p + n;
    return n >= 3;
}

static bool parse_rule(const char **s, struct tz_rule *r)
{
    const char *p = *s;

    memset(r, 0, sizeof(*r));
    r->time_s = 7200; /* POSIX: 02:00 when absent */
    if (*p == 'M') {
        r->kind = 'M';
        p++;
        if (!parse_uint(&p, 12, &r->month) || r->month < 1 || *p++ != '.' ||
            !parse_uint(&p, 5, &r->week) || r->week < 1 || *p++ != '.' ||
            !parse_uint(&p, 6, &r->wday))
            return false;
    } else if (*p == 'J') {
        r->kind = 'J';
        p++;
        if (!parse_uint(&p, 365, &r->day) || r->day < 1)
            return false;
    } else {
        r->kind = 'D';
        if (!parse_uint(&p, 365, &r->day))
            return false;
    }
    if (*p == '/') {
        p++;
        if (!parse_hms(&p, RULE_MAX_HOURS, &r->time_s))
            return false;
    }
    *s = p;
    return true;
}

/* Parses "CET-1CEST,M3.5.0,M10.5.0/3" (POSIX offsets count west of UTC). */
static bool parse_posix_tz(const char *s, struct posix_tz *p)
{
    int32_t west;

    memset(p, 0, sizeof(*p));
    if (!parse_abbr(&s) || !parse_hms(&s, 24, &west))
        return false;
    p->std_utoff = -west;
    if (!*s)
        return true;
    if (!parse_abbr(&s))
        return false;
    p->has_dst = true;
    p->dst_utoff = p->std_utoff + 3600;
    if (*s != ',' && *s && parse_hms(&s, 24, &west))
        p->dst_utoff = -west;
    /* Footers always carry the rule; the C library's default is a guess. */
    return *s++ == ',' && parse_rule(&s, &p->start) && *s++ == ',' && parse_rule(&s, &p->end) &&
           !*s;
}

/* ---- TZif ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool read_counts(const uint8_t *p, size_t len, struct tzif_counts *c)
{
    if (len < TZIF_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
        return false;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return true;
}

/* Bytes of the data block after a header; time_size is 4 (v1) or 8. */
static uint64_t block_len(const struct tzif_counts *c, unsigned time_size)
{
    return (uint64_t)c->time * (time_size + 1) + (uint64_t)c->type * 6 + c->chars +
           (uint64_t)c->leap * (time_size + 4) + c->isstd + c->isut;
}

static const char *check_counts(const struct tzif_counts *c)
{
    if (c->type == 0 || c->type > 256)
        return "bad number of local time types";
    if (c->leap)
        return "leap-second zone files (\"right/...\") are not supported";
    if ((c->isstd && c->isstd != c->type) || (c->isut && c->isut != c->type))
        return "bad standard/UT indicator counts";
    return NULL;
}

/* Copies the transitions and types of one data block (length checked). */
static const char *read_block(struct rollout_tz *tz, const uint8_t *p, const struct tzif_counts *c,
                              unsigned time_size)
{
    tz->trans = calloc(c->time ? c->time : 1, sizeof(*tz->trans));
    tz->idx = calloc(c->time ? c->time : 1, 1);
    tz->utoff = calloc(c->type, sizeof(*tz->utoff));
    if (!tz->trans || !tz->idx || !tz->utoff)
        return "out of memory";
    tz->ntrans = c->time;
    for (size_t i = 0; i < c->time; i++, p += time_size) {
        tz->trans[i] = time_size == 8 ? be64(p) : (int32_t)be32(p);
        if (i && tz->trans[i] <= tz->trans[i - 1])
            return "transition times are not increasing";
    }
    for (size_t i = 0; i < c->time; i++, p++) {
        if (*p >= c->type)
            return "transition to an unknown local time type";
        tz->idx[i] = *p;
    }
    for (size_t i = 0; i < c->type; i++, p += 6) {
        int32_t off = (int32_t)be32(p);
        if (off < -TZIF_MAX_UTOFF || off > TZIF_MAX_UTOFF)
            return "UTC offset out of range";
        tz->utoff[i] = off;
    }
    return NULL;
}

/* The footer: "\n" TZ-string "\n", the rest of the file. */
static const char *read_footer(struct rollout_tz *tz, const uint8_t *p, size_t len)
{
    char rule[128];

    if (len < 2 || p[0] != '\n' || p[len - 1] != '\n' || len - 2 >= sizeof(rule) ||
        memchr(p + 1, '\n', len - 2) || memchr(p + 1, '\0', len - 2))
        return "bad footer";
    memcpy(rule, p + 1, len - 2);
    rule[len - 2] = '\0';
    tz->has_rule = rule[0] != '\0';
    if (tz->has_rule && !parse_posix_tz(rule, &tz->rule))
        return "cannot parse the footer's TZ rule";
    return NULL;
}

static const char *parse_tzif(struct rollout_tz *tz, const uint8_t *p, size_t len)
{
    struct tzif_counts c;
    const char *problem;

    if (!read_counts(p, len, &c))
        return "not a TZif file";
    if (p[4] == '\0') { /* version 1: 32-bit times, no footer */
        if ((problem = check_counts(&c)) != NULL)
            return problem;
        if (len - TZIF_HEADER_LEN < block_len(&c, 4))
            return "truncated";
        return read_block(tz, p + TZIF_HEADER_LEN, &c, 4);
    }
    uint64_t v1 = TZIF_HEADER_LEN + block_len(&c, 4);
    if (len < v1 || !read_counts(p + v1, len - v1, &c))
        return "truncated";
    if ((problem = check_counts(&c)) != NULL)
        return problem;
    uint64_t data = v1 + TZIF_HEADER_LEN, footer = data + block_len(&c, 8);
    if (len < footer)
        return "truncated";
    if ((problem = read_block(tz, p + data, &c, 8)) != NULL)
        return problem;
    return read_footer(tz, p + footer, len - footer);
}

void rollout_tz_free(struct rollout_tz *tz)
{
    if (!tz)
        return;
    free(tz->name);
    free(tz->trans);
    free(tz->idx);
    free(tz->utoff);
    free(tz);
}

const char *rollout_tz_name(const struct rollout_tz *tz)
{
    return tz->name;
}

static struct rollout_tz *tz_new(const char *name)
{
    struct rollout_tz *tz = calloc(1, sizeof(*tz));

    if (tz && !(tz->name = strdup(name))) {
        free(tz);
        return NULL;
    }
    return tz;
}

int rollout_tz_parse(const char *name, const uint8_t *data, size_t len, struct rollout_tz **out,
                     char *why, size_t why_len)
{
    struct rollout_tz *tz = tz_new(name);
    const char *problem = tz ? parse_tzif(tz, data, len) : "out of memory";

    *out = NULL;
    if (problem) {
        snprintf(why, why_len, "time zone \"%s\": %s", name, problem);
        rollout_tz_free(tz);
        return -1;
    }
    *out = tz;
    return 0;
}

/* Zone names become paths: they must stay inside ROLLOUT_TZ_DIR. */
static bool name_ok(const char *name, char *why, size_t why_len)
{
    if (!*name)
        snprintf(why, why_len, "time zone name is empty");
    else if (name[0] == '/' || strstr(name, ".."))
        snprintf(why, why_len,
                 "time zone \"%s\": must be an IANA zone name such as \"Europe/Berlin\", not a "
                 "path",
                 name);
    else
        return true;
    return false;
}

/* Reads the regular file at path into a new buffer (caller frees).
 * Returns 0, or -1 with errno set. */
static int read_small_file(const char *path, uint8_t **data, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = 0;
    int err;

    *data = NULL;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode) || st.st_size > TZIF_MAX_FILE) {
        errno = S_ISREG(st.st_mode) ? EFBIG : ENOENT; /* a folder such as "Europe" */
        goto fail;
    }
    *data = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!*data)
        goto fail;
    for (*len = 0; *len < (size_t)st.st_size; *len += (size_t)n) {
        n = read(fd, *data + *len, (size_t)st.st_size - *len);
        if (n <= 0) {
            errno = n == 0 ? EIO : errno; /* shrank while reading */
            goto fail;
        }
    }
    close(fd);
    return 0;
fail:
    err = errno; /* close() must not hide why */
    free(*data);
    *data = NULL;
    close(fd);
    errno = err;
    return -1;
}

/* UTC is known without zone files, as the config check allows. */
static int utc_zone(struct rollout_tz **out, char *why, size_t why_len)
{
    struct rollout_tz *tz = tz_new("UTC");

    if (!tz || !(tz->utoff = calloc(1, sizeof(*tz->utoff)))) {
        rollout_tz_free(tz);
        snprintf(why, why_len, "time zone \"UTC\": out of memory");
        return -1;
    }
    *out = tz;
    return 0;
}

int rollout_tz_load(const char *name, struct rollout_tz **out, char *why, size_t why_len)
{
    char path[512];
    uint8_t *data;
    size_t len;

    *out = NULL;
    if (!name_ok(name, why, why_len))
        return -1;
    int n = snprintf(path, sizeof(path), "%s/%s", ROLLOUT_TZ_DIR, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        snprintf(why, why_len, "time zone name is too long");
        return -1;
    }
    if (read_small_file(path, &data, &len) < 0) {
        if (strcmp(name, "UTC") == 0)
            return utc_zone(out, why, why_len);
        if (errno == ENOENT || errno == ENOTDIR)
            snprintf(why, why_len, "unknown time zone \"%s\" (not found under %s)", name,
                     ROLLOUT_TZ_DIR);
        else
            snprintf(why, why_len, "time zone \"%s\": cannot read %s: %s", name, path,
                     strerror(errno));
        return -1;
    }
    int rc = rollout_tz_parse(name, data, len, out, why, why_len);
    free(data);
    return rc;
}
