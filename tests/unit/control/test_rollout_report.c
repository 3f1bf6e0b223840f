/* test_rollout_report.c - rollout reports saved to a folder and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/log.h"
#include "control/ctl_render.h"
#include "control/rollout_report.h"

#define NAME_0742 "rollout-20261123T204207Z-promoted"

struct fixture {
    char dir[64];
    char err[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-rollout-report-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* A report as rollout.c builds it: two steps, ended at ended_at. */
static json_t *sample(const char *ended_at, const char *outcome)
{
    json_t *r = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:["
        "{s:i, s:f, s:s, s:s, s:s, s:{s:i, s:f, s:f, s:f}, s:{s:i, s:f, s:f, s:f}, s:s},"
        "{s:i, s:f, s:s, s:n, s:s, s:{s:i, s:f, s:f, s:f}, s:{s:i, s:f, s:f, s:f}, s:s}]}",
        "outcome", outcome, "reason", "step 2 at 100.00% held every gate", "started_at",
        "2026-11-23T20:41:54.752Z", "ended_at", ended_at, "stable", "blue", "candidate", "green",
        "steps", "step", 1, "weight", 25.0, "started_at", "2026-11-23T20:41:54.754Z", "ended_at",
        "2026-11-23T20:41:57.849Z", "gates", "time ok; window ok; traffic ok; detector ok",
        "candidate", "requests", 3460, "error_rate", 0.0, "p50_ms", 0.1, "p99_ms", 2.7, "stable",
        "requests", 64446, "error_rate", 0.001, "p50_ms", 0.1, "p99_ms", 1.0, "verdict", "ok",
        "step", 2, "weight", 100.0, "started_at", "2026-11-23T20:41:57.850Z", "ended_at", "gates",
        "time ok; window ok; traffic ok; detector ok", "candidate", "requests", 37300, "error_rate",
        0.0, "p50_ms", 0.2, "p99_ms", 4.3, "stable", "requests", 0, "error_rate", 0.0, "p50_ms",
        0.0, "p99_ms", 0.0, "verdict", "ok");

    assert_non_null(r);
    return r;
}

/* The whole file at dir/name as a new string. */
static char *read_text(const char *dir, const char *name)
{
    char path[256], *buf;
    FILE *fp;
    long len;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    len = ftell(fp);
    assert_true(len >= 0);
    rewind(fp);
    buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    return buf;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Counts the folder's entries but "." and "..": those whose name contains
 * part, or all when part is NULL. */
static int count_entries(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            (part == NULL || strstr(e->d_name, part) != NULL))
            n++;
    }
    closedir(d);
    return n;
}

static void save_ok(struct fixture *f, const char *ended_at, const char *outcome)
{
    json_t *r = sample(ended_at, outcome);
    int rc = rollout_report_save(f->dir, r, f->err, sizeof(f->err));

    if (rc != 0)
        fail_msg("save: %s", f->err);
    json_decref(r);
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    json_t *saved = sample("2026-11-23T20:42:07.246Z", "promoted");
    json_t *loaded;
    struct stat st;
    char path[256];

    assert_int_equal(rollout_report_save(f->dir, saved, f->err, sizeof(f->err)), 0);
    snprintf(path, sizeof(path), "%s/" NAME_0742 ".json", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    snprintf(path, sizeof(path), "%s/" NAME_0742 ".txt", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(count_entries(f->dir, NULL), 2); /* no temporary left */

    snprintf(f->err, sizeof(f->err), "stale");
    loaded = rollout_report_load_last(f->dir, f->err, sizeof(f->err));
    assert_non_null(loaded);
    assert_string_equal(f->err, "");
    assert_true(json_equal(saved, loaded));
    json_decref(saved);
    json_decref(loaded);
}

/* The .json is the report indented, one final newline; the .txt is exactly
 * what `switchyardctl rollout report` prints for it. */
static void test_file_contents(void **state)
{
    struct fixture *f = *state;
    json_t *report = sample("2026-11-23T20:42:07.246Z", "promoted");
    json_t *reply = json_pack("{s:b, s:O}", "ok", 1, "report", report);
    char *json = NULL, *want = NULL, *text;
    size_t len = 0;
    FILE *mem = open_memstream(&want, &len);

    assert_non_null(reply);
    assert_non_null(mem);
    assert_int_equal(ctl_render_rollout_report(mem, reply), 0);
    assert_int_equal(fclose(mem), 0);
    assert_int_equal(rollout_report_save(f->dir, report, f->err, sizeof(f->err)), 0);

    text = read_text(f->dir, NAME_0742 ".txt");
    assert_string_equal(text, want);
    assert_non_null(strstr(text, "outcome     promoted\n"));
    free(text);

    text = read_text(f->dir, NAME_0742 ".json");
    json = json_dumps(report, JSON_INDENT(2));
    assert_non_null(json);
    assert_int_equal(strlen(text), strlen(json) + 1);
    assert_memory_equal(text, json, strlen(json));
    assert_int_equal(text[strlen(json)], '\n');
    free(text);
    free(json);
    free(want);
    json_decref(reply);
    json_decref(report);
}

static void expect_outcome_at(const struct fixture *f, json_t *loaded, const char *outcome,
                              const char *ended_at)
{
    if (loaded == NULL)
        fail_msg("load: %s", f->err);
    assert_string_equal(json_string_value(json_object_get(loaded, "outcome")), outcome);
    assert_string_equal(json_string_value(json_object_get(loaded, "ended_at")), ended_at);
    json_decref(loaded);
}

/* The time in the name decides, whatever order the files were written in. */
static void test_newest_wins(void **state)
{
    struct fixture *f = *state;

    save_ok(f, "2026-11-23T20:42:07.246Z", "promoted");
    save_ok(f, "2027-01-02T03:04:05.000Z", "rolled_back");
    save_ok(f, "2026-12-31T23:59:59.999Z", "promoted");
    assert_int_equal(count_entries(f->dir, NULL), 6);
    assert_int_equal(count_entries(f->dir, "rollout-20270102T030405Z-rolled_back.json"), 1);
    expect_outcome_at(f, rollout_report_load_last(f->dir, f->err, sizeof(f->err)), "rolled_back",
                      "2027-01-02T03:04:05.000Z");
}

/* Temporaries, .txt files, other names and malformed names never count,
 * even when they would be newer. */
static void test_other_files_ignored(void **state)
{
    struct fixture *f = *state;
    static const char *const others[] = {
        "rollout-20990101T000000Z-promoted.json.tmp.1234",
        "rollout-20990101T000000Z-promoted.txt",
        "rollout-20990101T000000Z-.json",
        "rollout-20990101T000000-promoted.json",
        "rollout-2099010xT000000Z-promoted.json",
        "rollout-20990101T000000Z-Promoted.json",
        "xrollout-20990101T000000Z-promoted.json",
        "notes.json",
    };

    save_ok(f, "2026-11-23T20:42:07.246Z", "rolled_back");
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        write_text(f->dir, others[i], "{not json");
    expect_outcome_at(f, rollout_report_load_last(f->dir, f->err, sizeof(f->err)), "rolled_back",
                      "2026-11-23T20:42:07.246Z");
}

static void test_empty_folder(void **state)
{
    struct fixture *f = *state;

    snprintf(f->err, sizeof(f->err), "stale");
    assert_null(rollout_report_load_last(f->dir, f->err, sizeof(f->err)));
    assert_string_equal(f->err, "");
}

/* A missing folder is an error naming it, and is never created. */
static void test_missing_folder(void **state)
{
    struct fixture *f = *state;
    json_t *r = sample("2026-11-23T20:42:07.246Z", "promoted");
    char missing[128], want[256];
    struct stat st;

    snprintf(missing, sizeof(missing), "%s/nope", f->dir);
    snprintf(want, sizeof(want), "%s: cannot open the report folder: No such file or directory",
             missing);
    assert_int_equal(rollout_report_save(missing, r, f->err, sizeof(f->err)), -1);
    assert_string_equal(f->err, want);
    assert_int_equal(stat(missing, &st), -1);
    assert_null(rollout_report_load_last(missing, f->err, sizeof(f->err)));
    assert_string_equal(f->err, want);
    json_decref(r);
}

/* The newest report unreadable: an error naming the file, not an older one. */
static void test_corrupt_newest(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text;
        const char *why;
    } cases[] = {
        {"{\"outcome\": \"promoted\",", "invalid JSON at line 1: "},
        {"", "invalid JSON at line "},
        {"[1, 2]\n", "not a rollout report: not a JSON object"},
        {"{\"outcome\": 1, \"steps\": []}\n", "not a rollout report: no \"outcome\" string"},
        {"{\"outcome\": \"promoted\"}\n", "not a rollout report: no \"steps\" array"},
    };
    const char *name = "rollout-20300101T000000Z-promoted.json";
    char want[256];

    save_ok(f, "2026-11-23T20:42:07.246Z", "promoted");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_text(f->dir, name, cases[i].text);
        assert_null(rollout_report_load_last(f->dir, f->err, sizeof(f->err)));
        snprintf(want, sizeof(want), "%s/%s: %s", f->dir, name, cases[i].why);
        if (strncmp(f->err, want, strlen(want)) != 0)
            fail_msg("case %zu: got \"%s\", want it to start with \"%s\"", i, f->err, want);
    }
}

/* A report without a usable time or outcome cannot be named: nothing is
 * written. */
static void test_unnamable_report(void **state)
{
    struct fixture *f = *state;
    json_t *no_time = sample("soon", "promoted");
    json_t *bad_outcome = sample("2026-11-23T20:42:07.246Z", "../up");

    assert_int_equal(rollout_report_save(f->dir, no_time, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "no \"ended_at\" time"));
    assert_int_equal(rollout_report_save(f->dir, bad_outcome, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "no \"outcome\" of lower-case letters"));
    assert_int_equal(count_entries(f->dir, NULL), 0);
    json_decref(no_time);
    json_decref(bad_outcome);
}

/* A report the renderer refuses (a step without its weight) is not saved
 * half: neither file, no temporary. */
static void test_unrenderable_report(void **state)
{
    struct fixture *f = *state;
    json_t *r = sample("2026-11-23T20:42:07.246Z", "promoted");

    json_object_del(json_array_get(json_object_get(r, "steps"), 1), "weight");
    assert_int_equal(rollout_report_save(f->dir, r, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "cannot render the report"));
    assert_int_equal(count_entries(f->dir, NULL), 0);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_files_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unnamable_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrenderable_report, setup, teardown),
    };

    log_setup("test_rollout_report", LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
