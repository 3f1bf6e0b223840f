/* rollout_tz.h - time-zone rules read from the system's zoneinfo files.
 *
 * The rollout windows need the local time of several zones at once, from
 * the control thread, while workers log. setenv("TZ") + tzset() would change
 * the whole process's local time and is not thread-safe, so the TZif files
 * (RFC 8536, version 2 or later) are parsed here instead: the 64-bit
 * transitions, and the POSIX TZ rule of the footer for instants past the last
 * one. A loaded zone is immutable and may be read from any thread.
 */
#ifndef SY_CONTROL_ROLLOUT_TZ_H
#define SY_CONTROL_ROLLOUT_TZ_H

#include <stddef.h>
#include <stdint.h>

#define ROLLOUT_TZ_DIR "/usr/share/zoneinfo"

struct rollout_tz;

/* Loads the zone name ("Europe/Berlin") from ROLLOUT_TZ_DIR into a new zone
 * (*out, caller frees with rollout_tz_free). "UTC" works without zone files.
 * Names that are empty, absolute or contain ".." are refused, as are missing
 * and malformed files. Returns 0, or -1 with the reason in why. */
int rollout_tz_load(const char *name, struct rollout_tz **out, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* Same from the len bytes of a TZif file at data (borrowed); name is copied
 * and only used in messages and by rollout_tz_name. */
int rollout_tz_parse(const char *name, const uint8_t *data, size_t len, struct rollout_tz **out,
                     char *why, size_t why_len) __attribute__((warn_unused_result));

void rollout_tz_free(struct rollout_tz *tz); /* NULL is fine */

/* The name the zone was loaded with (borrowed, lives as long as tz). */
const char *rollout_tz_name(const struct rollout_tz *tz);

/* Seconds east of UTC in effect at the unix time t (local = t + offset). */
int32_t rollout_tz_offset(const struct rollout_tz *tz, int64_t t);

/* The unix time at which the local clock first reads local (seconds since
 * 1970-01-01 00:00 of the local calendar). A local time skipped by a
 * forward change (02:30 on a spring-forward night) maps to the instant of
 * that change, the first at which the clock has passed it; a repeated one
 * (fall-back) maps to its first occurrence. */
int64_t rollout_tz_to_utc(const struct rollout_tz *tz, int64_t local);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12), and
 * the weekday of such a day, 0 = Monday .. 6 = Sunday. */
int64_t rollout_tz_days_from_civil(int64_t year, unsigned month, unsigned day);
unsigned rollout_tz_weekday(int64_t days);

#endif
