/* rollout_window.h - is now inside a rollout window, and when does the next
 * one open?
 *
 * A window (struct conf_window) is a daily interval of local time in its own
 * zone, on the days of its mask. How one is evaluated:
 * - It belongs to the day it opens on: "fri 22:00-02:00" is open from Friday
 *   22:00 to Saturday 02:00, and not from Thursday night into Friday. to <=
 *   from crosses midnight.
 * - An occurrence opens the first time the local clock reads `from` on an
 *   included day and closes the first time it then reads `to`. A time the
 *   clock skips (spring forward) counts as reached at the change, so on
 *   Europe/Berlin's spring-forward day 02:00-03:00 does not happen at all and
 *   01:00-05:00 lasts 3 hours; on the fall-back day 01:00-05:00 lasts 5
 *   hours of real time and 02:30-03:00 runs from the first 02:30 to 03:00.
 * - No windows = always open. Several: open when any is.
 * Every function takes the time explicitly, so tests and the rollout
 * controller choose the clock.
 */
#ifndef SY_CONTROL_ROLLOUT_WINDOW_H
#define SY_CONTROL_ROLLOUT_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "control/rollout_tz.h"

#define ROLLOUT_WINDOW_HORIZON_DAYS 8 /* how far ahead the next opening is looked for */
#define ROLLOUT_WINDOW_NONE SIZE_MAX

struct rollout_window_info {
    bool open;
    /* open: the open window (of several, the one closing last); closed: the
     * one opening next; ROLLOUT_WINDOW_NONE with no windows, or when none
     * opens within the horizon. */
    size_t index;
    int64_t until; /* unix s: open, when it closes; closed, when it opens; else INT64_MAX */
};

/* Loads the zone of each of the n windows into zones[i] (an array of n the
 * caller provides; each entry new, free with rollout_window_zones_clear).
 * Returns 0, or -1 with the reason in why and every entry NULL. */
int rollout_window_zones_load(const struct conf_window *w, size_t n, struct rollout_tz **zones,
                              char *why, size_t why_len) __attribute__((warn_unused_result));

/* Frees zones[0..n) and sets them to NULL. */
void rollout_window_zones_clear(struct rollout_tz **zones, size_t n);

/* Whether the unix time now is inside any of the n windows w, zones[i] being
 * the loaded zone of w[i] (all borrowed). Fills *info unless it is NULL. */
bool rollout_window_open(const struct conf_window *w, size_t n, struct rollout_tz *const *zones,
                         int64_t now, struct rollout_window_info *info);

/* Writes what info (from rollout_window_open at now) means for people:
 * "inside window mon-fri 01:00-05:00 Europe/Berlin, closes in 42m",
 * "outside window sat,sun 22:00-02:00 UTC, opens in 1d3h". */
void rollout_window_describe(const struct conf_window *w, size_t n,
                             const struct rollout_window_info *info, int64_t now, char *buf,
                             size_t len);

/* Writes a days mask as the config spells it: "daily", "mon-fri",
 * "sat,sun", "mon,wed-fri", "fri-mon". */
void rollout_window_format_days(uint8_t days, char *buf, size_t len);

#endif
