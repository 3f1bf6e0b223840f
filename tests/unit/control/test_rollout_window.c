/* test_rollout_window.c - zone files and rollout windows.
 *
 * The expected instants were computed with the C library, e.g.
 * `TZ=Europe/Berlin date -d '2026-03-29 03:00' +%s`, and are hard-coded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/cfgpolicy.h"
#include "control/rollout_window.h"

#define HOUR 3600
#define MINUTE 60

static const char *const zones_under_test[] = {
    "UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
};

static struct rollout_tz *load(const char *name)
{
    struct rollout_tz *tz = NULL;
    char why[256] = "";

    if (rollout_tz_load(name, &tz, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    return tz;
}

/* A window as the config would hold it; tz is borrowed. */
static struct conf_window window(const char *days, const char *from, const char *to, const char *tz)
{
    struct conf_window w = {.tz = (char *)tz};
    const char *why = NULL;

    assert_int_equal(cfgpolicy_parse_days(days, &w.days, &why), 0);
    assert_int_equal(cfgpolicy_parse_time(from, &w.from_min), 0);
    assert_int_equal(cfgpolicy_parse_time(to, &w.to_min), 0);
    return w;
}

/* Evaluates the single window w at now; returns its info. */
static struct rollout_window_info eval1(const struct conf_window *w, int64_t now)
{
    struct rollout_tz *tz = load(w->tz);
    struct rollout_window_info info;
    bool open = rollout_window_open(w, 1, &tz, now, &info);

    assert_int_equal(open, info.open);
    rollout_tz_free(tz);
    return info;
}

static void assert_open_until(const struct conf_window *w, int64_t now, int64_t close)
{
    struct rollout_window_info info = eval1(w, now);

    assert_true(info.open);
    assert_int_equal(info.index, 0);
    assert_int_equal(info.until, close);
}

static void assert_closed_until(const struct conf_window *w, int64_t now, int64_t opens)
{
    struct rollout_window_info info = eval1(w, now);

    assert_false(info.open);
    assert_int_equal(info.index, 0);
    assert_int_equal(info.until, opens);
}

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13; /* xorshift64: reproducible across runs */
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The oracle: the C library's offset at t in zone (the test is single-threaded). */
static long libc_offset(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    assert_non_null(localtime_r(&tt, &tm));
    return tm.tm_gmtoff;
}

static void check_zone_against_libc(const char *zone)
{
    const int64_t end_2099 = 4102444800LL; /* 2100-01-01 00:00 UTC */
    struct rollout_tz *tz = load(zone);
    uint64_t seed = 0x9e3779b97f4a7c15ULL;

    assert_int_equal(setenv("TZ", zone, 1), 0);
    tzset();
    for (int i = 0; i < 10000; i++) {
        int64_t t = (int64_t)(next_random(&seed) % (uint64_t)end_2099);
        int32_t off = rollout_tz_offset(tz, t);
        if (off != libc_offset(t))
            fail_msg("%s at %lld: offset %d, C library says %ld", zone, (long long)t, (int)off,
                     libc_offset(t));
        /* Back from local time: the instant itself, or an earlier one
         * showing the same clock (the first pass of a repeated hour). */
        int64_t back = rollout_tz_to_utc(tz, t + off);
        assert_true(back <= t && back > t - 2 * HOUR);
        assert_int_equal(back + rollout_tz_offset(tz, back), t + off);
    }
    rollout_tz_free(tz);
}

static void test_offsets_match_libc(void **unused)
{
    (void)unused;
    for (size_t i = 0; i < sizeof(zones_under_test) / sizeof(zones_under_test[0]); i++)
        check_zone_against_libc(zones_under_test[i]);
    unsetenv("TZ");
    tzset();
}

static void test_offsets_at_2026_changes(void **unused)
{
    struct rollout_tz *berlin = load("Europe/Berlin"), *ny = load("America/New_York");
    (void)unused;

    /* Berlin: 2026-03-29 02:00 CET -> 03:00 CEST, 2026-10-25 03:00 CEST -> 02:00 CET. */
    assert_int_equal(rollout_tz_offset(berlin, 1774745999), 1 * HOUR);
    assert_int_equal(rollout_tz_offset(berlin, 1774746000), 2 * HOUR);
    assert_int_equal(rollout_tz_offset(berlin, 1792889999), 2 * HOUR);
    assert_int_equal(rollout_tz_offset(berlin, 1792890000), 1 * HOUR);
    /* New York: 2026-03-08 07:00 UTC and 2026-11-01 06:00 UTC. */
    assert_int_equal(rollout_tz_offset(ny, 1772953199), -5 * HOUR);
    assert_int_equal(rollout_tz_offset(ny, 1772953200), -4 * HOUR);
    assert_int_equal(rollout_tz_offset(ny, 1793512799), -4 * HOUR);
    assert_int_equal(rollout_tz_offset(ny, 1793512800), -5 * HOUR);
    /* 02:30 does not exist on Berlin's spring-forward day: the change itself. */
    assert_int_equal(rollout_tz_to_utc(berlin, 1774751400), 1774746000);
    rollout_tz_free(berlin);
    rollout_tz_free(ny);
}

static void test_berlin_spring_forward(void **unused)
{
    struct conf_window gone = window("daily", "02:00", "03:00", "Europe/Berlin");
    struct conf_window night = window("daily", "01:00", "05:00", "Europe/Berlin");
    (void)unused;

    /* 2026-03-29 01:30 CET: the 02:00-03:00 of that day never happens; the
     * next is 2026-03-30 02:00 CEST. */
    assert_closed_until(&gone, 1774744200, 1774828800);
    /* 01:00 CET to 05:00 CEST: three hours of real time. */
    assert_open_until(&night, 1774742400, 1774753200);
    assert_open_until(&night, 1774746000, 1774753200);
}

static void test_berlin_fall_back(void **unused)
{
    struct conf_window night = window("daily", "01:00", "05:00", "Europe/Berlin");
    struct conf_window late = window("sun", "02:30", "03:00", "Europe/Berlin");
    (void)unused;

    /* 2026-10-25 01:00 CEST to 05:00 CET: five hours, open through both
     * passes of 02:00-03:00. */
    assert_closed_until(&night, 1792882800 - 1, 1792882800);
    assert_open_until(&night, 1792882800, 1792900800);
    assert_open_until(&night, 1792891800, 1792900800); /* 02:30 CET, second pass */
    /* From the first 02:30 (CEST) to 03:00 (CET). */
    assert_open_until(&late, 1792888200, 1792893600);
}

static void test_new_york_changes(void **unused)
{
    struct conf_window night = window("sun", "01:00", "05:00", "America/New_York");
    struct conf_window gone = window("daily", "02:00", "03:00", "America/New_York");
    struct conf_window repeated = window("daily", "01:30", "01:45", "America/New_York");
    (void)unused;

    /* 2026-03-08: 01:00 EST to 05:00 EDT, three hours. */
    assert_open_until(&night, 1772949600, 1772960400);
    assert_closed_until(&gone, 1772951400, 1773036000); /* 01:30 EST: next is 03-09 02:00 */
    /* 2026-11-01: 01:00 EDT to 05:00 EST, five hours. */
    assert_open_until(&night, 1793509200, 1793527200);
    /* A window inside the repeated hour runs on its first pass only. */
    assert_open_until(&repeated, 1793511000, 1793511900);
    assert_closed_until(&repeated, 1793514900, 1793601000); /* 01:35 EST */
}

static void test_sydney_southern_hemisphere(void **unused)
{
    struct conf_window weekdays = window("mon-fri", "01:00", "05:00", "Australia/Sydney");
    struct conf_window sunday = window("sun", "02:00", "03:00", "Australia/Sydney");
    (void)unused;

    /* Daylight time in January (+11), standard time in July (+10). */
    assert_open_until(&weekdays, 1768140000, 1768140000 + 4 * HOUR);
    assert_open_until(&weekdays, 1783868400, 1783868400 + 4 * HOUR);
    /* 2026-04-05, clocks go back at 03:00 AEDT: 02:00 AEDT to 03:00 AEST. */
    assert_open_until(&sunday, 1775314800, 1775322000);
    /* 2026-10-04, clocks go forward at 02:00: no window until the 11th. */
    assert_closed_until(&sunday, 1791039600, 1791644400);
}

static void test_kolkata_half_hour(void **unused)
{
    struct conf_window office = window("daily", "09:00", "17:00", "Asia/Kolkata");
    struct rollout_window_info info;
    char text[128];
    (void)unused;

    assert_open_until(&office, 1781062200, 1781091000); /* 2026-06-10 03:30 UTC */
    info = eval1(&office, 1781062200 - 1);
    assert_false(info.open);
    assert_int_equal(info.until, 1781062200);
    rollout_window_describe(&office, 1, &info, 1781062200 - 1, text, sizeof(text));
    assert_string_equal(text, "outside window daily 09:00-17:00 Asia/Kolkata, opens in 1m");
}

static void test_midnight_crossing_belongs_to_start_day(void **unused)
{
    struct conf_window friday_night = window("fri", "22:00", "02:00", "UTC");
    (void)unused;

    assert_open_until(&friday_night, 1781301600, 1781316000);   /* Fri 2026-06-12 22:00 */
    assert_open_until(&friday_night, 1781312400, 1781316000);   /* Sat 01:00 */
    assert_closed_until(&friday_night, 1781316000, 1781906400); /* Sat 02:00: next Friday */
    /* Friday 01:00 is not inside: Thursday night is not in the window. */
    assert_closed_until(&friday_night, 1781226000, 1781301600);
}

static void test_day_lists(void **unused)
{
    struct conf_window weekdays = window("mon-fri", "10:00", "11:00", "UTC");
    struct conf_window weekend = window("sat,sun", "10:00", "11:00", "UTC");
    struct conf_window daily = window("daily", "10:00", "11:00", "UTC");
    const int64_t monday = 1781481600; /* 2026-06-15 00:00 UTC */
    (void)unused;

    for (int day = 0; day < 7; day++) {
        int64_t ten = monday + day * 24 * HOUR + 10 * HOUR;
        assert_int_equal(eval1(&weekdays, ten).open, day < 5);
        assert_int_equal(eval1(&weekend, ten).open, day >= 5);
        assert_true(eval1(&daily, ten).open);
        assert_false(eval1(&daily, ten + HOUR).open);
    }
    /* Friday 11:00: the weekdays window next opens on Monday. */
    assert_closed_until(&weekdays, monday + 4 * 24 * HOUR + 11 * HOUR,
                        monday + 7 * 24 * HOUR + 10 * HOUR);
}

static void test_format_days(void **unused)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"daily", "daily"},     {"mon-fri", "mon-fri"},
        {"sat,sun", "sat,sun"}, {"sun,sat", "sat,sun"},
        {"fri-mon", "fri-mon"}, {"mon,wed-fri", "mon,wed-fri"},
        {"mon-sun", "daily"},   {"wed", "wed"},
        {"sun,mon", "sun,mon"}, {"mon,wed,fri", "mon,wed,fri"},
    };
    char text[40];
    (void)unused;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t days = 0;
        const char *why = NULL;
        assert_int_equal(cfgpolicy_parse_days(cases[i].in, &days, &why), 0);
        rollout_window_format_days(days, text, sizeof(text));
        assert_string_equal(text, cases[i].out);
    }
}

static void test_describe(void **unused)
{
    struct conf_window nights = window("mon-fri", "01:00", "05:00", "Europe/Berlin");
    const int64_t opens = 1781478000, closes = 1781492400; /* Mon 2026-06-15 01:00-05:00 CEST */
    struct rollout_window_info info;
    char text[128];
    (void)unused;

    info = eval1(&nights, opens - 3 * HOUR - 12 * MINUTE);
    rollout_window_describe(&nights, 1, &info, opens - 3 * HOUR - 12 * MINUTE, text, sizeof(text));
    assert_string_equal(text, "outside window mon-fri 01:00-05:00 Europe/Berlin, opens in 3h12m");
    info = eval1(&nights, closes - 42 * MINUTE);
    rollout_window_describe(&nights, 1, &info, closes - 42 * MINUTE, text, sizeof(text));
    assert_string_equal(text, "inside window mon-fri 01:00-05:00 Europe/Berlin, closes in 42m");
    info = eval1(&nights, 1781337600); /* Saturday 10:00 CEST */
    rollout_window_describe(&nights, 1, &info, 1781337600, text, sizeof(text));
    assert_string_equal(text, "outside window mon-fri 01:00-05:00 Europe/Berlin, opens in 1d15h");
}

static void test_several_windows(void **unused)
{
    struct conf_window w[] = {
        window("daily", "01:00", "05:00", "Europe/Berlin"),
        window("daily", "12:00", "13:00", "UTC"),
        window("daily", "11:30", "14:00", "UTC"),
    };
    struct rollout_tz *zones[3];
    struct rollout_window_info info;
    char why[256];
    const int64_t noon = 1781265600; /* 2026-06-12 12:00 UTC */
    (void)unused;

    assert_int_equal(rollout_window_zones_load(w, 3, zones, why, sizeof(why)), 0);
    /* Two are open: the one that stays open longer is named. */
    assert_true(rollout_window_open(w, 3, zones, noon, &info));
    assert_int_equal(info.index, 2);
    assert_int_equal(info.until, noon + 2 * HOUR);
    /* At 15:00 UTC all are closed: the next to open is Berlin's 01:00 CEST. */
    assert_false(rollout_window_open(w, 3, zones, noon + 3 * HOUR, &info));
    assert_int_equal(info.index, 0);
    assert_int_equal(info.until, noon + 11 * HOUR);
    rollout_window_zones_clear(zones, 3);
    assert_null(zones[0]);
}

static void test_no_windows_always_open(void **unused)
{
    struct rollout_window_info info;
    char text[64];
    (void)unused;

    assert_true(rollout_window_open(NULL, 0, NULL, 1781265600, &info));
    assert_int_equal(info.index, ROLLOUT_WINDOW_NONE);
    rollout_window_describe(NULL, 0, &info, 1781265600, text, sizeof(text));
    assert_string_equal(text, "no rollout windows: always open");
}

static void assert_load_fails(const char *name, const char *expect)
{
    struct rollout_tz *tz = (struct rollout_tz *)&tz;
    char why[256] = "";

    assert_int_equal(rollout_tz_load(name, &tz, why, sizeof(why)), -1);
    assert_null(tz);
    if (!strstr(why, expect))
        fail_msg("loading \"%s\": \"%s\" does not say \"%s\"", name, why, expect);
}

static void test_bad_zone_names(void **unused)
{
    struct conf_window w[] = {window("daily", "01:00", "02:00", "UTC"),
                              window("daily", "01:00", "02:00", "Mars/Olympus_Mons")};
    struct rollout_tz *zones[2];
    char why[256];
    (void)unused;

    assert_load_fails("Mars/Olympus_Mons", "unknown time zone \"Mars/Olympus_Mons\"");
    assert_load_fails("Europe", "unknown time zone \"Europe\""); /* a folder */
    assert_load_fails("../../etc/passwd", "not a path");
    assert_load_fails("Europe/../../etc/passwd", "not a path");
    assert_load_fails("/etc/localtime", "not a path");
    assert_load_fails("", "empty");
    assert_int_equal(rollout_window_zones_load(w, 2, zones, why, sizeof(why)), -1);
    assert_null(zones[0]);
    assert_null(zones[1]);
    assert_non_null(strstr(why, "Mars/Olympus_Mons"));
}

static void test_damaged_files(void **unused)
{
    FILE *f = fopen(ROLLOUT_TZ_DIR "/Europe/Berlin", "rb");
    static uint8_t data[1 << 16];
    struct rollout_tz *tz = NULL;
    char why[256];
    size_t len;
    (void)unused;

    assert_non_null(f);
    len = fread(data, 1, sizeof(data), f);
    fclose(f);
    assert_int_equal(rollout_tz_parse("Europe/Berlin", data, len, &tz, why, sizeof(why)), 0);
    rollout_tz_free(tz);
    /* Every cut is refused (the footer ends the file), none is read past. */
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(rollout_tz_parse("cut", data, cut, &tz, why, sizeof(why)), -1);
        assert_null(tz);
    }
    assert_int_equal(rollout_tz_parse("x", (const uint8_t *)"TZjf", 4, &tz, why, sizeof(why)), -1);
    assert_string_equal(why, "time zone \"x\": not a TZif file");
    /* Version 1 (32-bit times, no footer): the same rules up to 2037. */
    data[4] = '\0';
    assert_int_equal(rollout_tz_parse("v1", data, len, &tz, why, sizeof(why)), 0);
    assert_int_equal(rollout_tz_offset(tz, 1774745999), 1 * HOUR);
    assert_int_equal(rollout_tz_offset(tz, 1774746000), 2 * HOUR);
    rollout_tz_free(tz);
    data[4] = '2';
    /* A footer rule that does not parse. */
    data[len - 3] = '?';
    assert_int_equal(rollout_tz_parse("bad", data, len, &tz, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "TZ rule"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets_match_libc),
        cmocka_unit_test(test_offsets_at_2026_changes),
        cmocka_unit_test(test_berlin_spring_forward),
        cmocka_unit_test(test_berlin_fall_back),
        cmocka_unit_test(test_new_york_changes),
        cmocka_unit_test(test_sydney_southern_hemisphere),
        cmocka_unit_test(test_kolkata_half_hour),
        cmocka_unit_test(test_midnight_crossing_belongs_to_start_day),
        cmocka_unit_test(test_day_lists),
        cmocka_unit_test(test_format_days),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_several_windows),
        cmocka_unit_test(test_no_windows_always_open),
        cmocka_unit_test(test_bad_zone_names),
        cmocka_unit_test(test_damaged_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
