/* rollout_window.c - rollout windows evaluated in their own time zones. */
#include "control/rollout_window.h"

#include <stdio.h>
#include <string.h>

#define DAY_S 86400
#define ALL_DAYS 0x7f

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* One occurrence of a window, as unix times: open <= t < close. */
struct occurrence {
    int64_t open;
    int64_t close;
};

enum scan_result {
    SCAN_OPEN, /* now is inside the occurrence */
    SCAN_NEXT, /* the occurrence is the next to open */
    SCAN_NONE, /* nothing within the horizon */
};

int rollout_window_zones_load(const struct conf_window *w, size_t n, struct rollout_tz **zones,
                              char *why, size_t why_len)
{
    for (size_t i = 0; i < n; i++)
        zones[i] = NULL;
    for (size_t i = 0; i < n; i++) {
        if (rollout_tz_load(w[i].tz ? w[i].tz : "UTC", &zones[i], why, why_len) < 0) {
            rollout_window_zones_clear(zones, n);
            return -1;
        }
    }
    return 0;
}

void rollout_window_zones_clear(struct rollout_tz **zones, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rollout_tz_free(zones[i]);
        zones[i] = NULL;
    }
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

/* The occurrence of w that opens on the local day `day` (days since
 * 1970-01-01). False when w is not open that day, or when a clock change
 * swallows the whole occurrence. */
static bool occurrence_on(const struct conf_window *w, const struct rollout_tz *tz, int64_t day,
                          struct occurrence *o)
{
    int64_t close_day = w->to_min <= w->from_min ? day + 1 : day;

    if (!(w->days & (1u << rollout_tz_weekday(day))))
        return false;
    o->open = rollout_tz_to_utc(tz, day * DAY_S + (int64_t)w->from_min * 60);
    o->close = rollout_tz_to_utc(tz, close_day * DAY_S + (int64_t)w->to_min * 60);
    return o->open < o->close;
}

/* The occurrence of w that holds now, or else the next to open. Occurrences
 * never overlap (each closes before the next day's opens), so the first one
 * that has not closed yet is the answer. */
static enum scan_result scan_window(const struct conf_window *w, const struct rollout_tz *tz,
                                    int64_t now, struct occurrence *o)
{
    int64_t today = floor_div(now + rollout_tz_offset(tz, now), DAY_S);

    /* From yesterday: an occurrence opened then may cross midnight. */
    for (int64_t day = today - 1; day <= today + ROLLOUT_WINDOW_HORIZON_DAYS; day++) {
        if (!occurrence_on(w, tz, day, o) || o->close <= now)
            continue;
        return o->open <= now ? SCAN_OPEN : SCAN_NEXT;
    }
    return SCAN_NONE;
}

bool rollout_window_open(const struct conf_window *w, size_t n, struct rollout_tz *const *zones,
                         int64_t now, struct rollout_window_info *info)
{
    struct rollout_window_info best = {
        .open = n == 0, .index = ROLLOUT_WINDOW_NONE, .until = INT64_MAX};
    struct occurrence o;

    for (size_t i = 0; i < n; i++) {
        switch (scan_window(&w[i], zones[i], now, &o)) {
        case SCAN_OPEN:
            if (!best.open || o.close > best.until)
                best = (struct rollout_window_info){.open = true, .index = i, .until = o.close};
            break;
        case SCAN_NEXT:
            if (!best.open && o.open < best.until)
                best = (struct rollout_window_info){.open = false, .index = i, .until = o.open};
            break;
        case SCAN_NONE:
            break;
        }
    }
    if (info)
        *info = best;
    return best.open;
}

/* Appends to buf[*used..len) like snprintf; output past len is cut. */
static void append(char *buf, size_t len, size_t *used, const char *s)
{
    int n = snprintf(buf + *used, len - *used, "%s", s);

    if (n > 0)
        *used += (size_t)n < len - *used ? (size_t)n : len - *used - 1;
}

void rollout_window_format_days(uint8_t days, char *buf, size_t len)
{
    size_t used = 0;
    int start = 0;

    if (!len)
        return;
    buf[0] = '\0';
    if ((days & ALL_DAYS) == ALL_DAYS) {
        append(buf, len, &used, "daily");
        return;
    }
    /* Runs of days start after an excluded day, so fri-mon stays one run. */
    while (start < 7 && (days & (1u << ((start + 6) % 7))))
        start++;
    for (int i = 0; i < 7; i++) {
        int d = (start + i) % 7, run = 0;
        if (!(days & (1u << d)) || (i > 0 && (days & (1u << ((d + 6) % 7)))))
            continue; /* not the first day of a run */
        while (run < 7 && (days & (1u << ((d + run + 1) % 7))))
            run++;
        append(buf, len, &used, used ? "," : "");
        append(buf, len, &used, day_names[d]);
        if (run) { /* two days read better as "sat,sun" than "sat-sun" */
            append(buf, len, &used, run == 1 ? "," : "-");
            append(buf, len, &used, day_names[(d + run) % 7]);
        }
    }
}

/* "3h05m"; rounded up to the minute so that "0m" never means "soon". */
static void format_duration(int64_t seconds, char *buf, size_t len)
{
    int64_t minutes = seconds > 0 ? (seconds + 59) / 60 : 0;

    if (minutes >= 24 * 60)
        snprintf(buf, len, "%lldd%lldh", (long long)(minutes / (24 * 60)),
                 (long long)(minutes % (24 * 60) / 60));
    else if (minutes >= 60)
        snprintf(buf, len, "%lldh%02lldm", (long long)(minutes / 60), (long long)(minutes % 60));
    else
        snprintf(buf, len, "%lldm", (long long)minutes);
}

void rollout_window_describe(const struct conf_window *w, size_t n,
                             const struct rollout_window_info *info, int64_t now, char *buf,
                             size_t len)
{
    char days[40], in[24];

    if (n == 0) {
        snprintf(buf, len, "no rollout windows: always open");
        return;
    }
    if (info->index >= n) {
        snprintf(buf, len, "outside every window, none opens within %d days",
                 ROLLOUT_WINDOW_HORIZON_DAYS);
        return;
    }
    const struct conf_window *win = &w[info->index];
    rollout_window_format_days(win->days, days, sizeof(days));
    format_duration(info->until - now, in, sizeof(in));
    snprintf(buf, len, "%s window %s %02u:%02u-%02u:%02u %s, %s in %s",
             info->open ? "inside" : "outside", days, win->from_min / 60u, win->from_min % 60u,
             win->to_min / 60u, win->to_min % 60u, win->tz ? win->tz : "UTC",
             info->open ? "closes" : "opens", in);
}
