/* rollout_report.c - finished rollouts' reports written to and read back
 * from a folder. */
#include "control/rollout_report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/log.h"
#include "control/ctl_render.h"

#define PREFIX "rollout-"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define STAMP_LEN 16 /* YYYYmmddTHHMMSSZ */
#define OUTCOME_MAX 32
#define FILE_MODE 0640 /* group-readable, for whoever collects the reports */

/* ------------------------------------------------------------------------ */
/* Names */

/* Writes the UTC second of ended ("2026-11-23T20:42:07.246Z") to stamp as
 * "20261123T204207Z". Returns -1 when ended is not such a time. */
static int stamp_from_time(const char *ended, char stamp[STAMP_LEN + 1])
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t n = 0;

    for (size_t i = 0; shape[i]; i++) {
        unsigned char c = (unsigned char)ended[i];
        if (shape[i] == 'd' && (c < '0' || c > '9'))
            return -1;
        if (shape[i] != 'd' && c != (unsigned char)shape[i])
            return -1;
        if (shape[i] == 'd' || c == 'T')
            stamp[n++] = (char)c;
    }
    stamp[n++] = 'Z';
    stamp[n] = '\0';
    return 0;
}

/* Outcomes become part of a file name: lower-case letters and '_' only. */
static bool outcome_ok(const char *s, size_t len)
{
    if (len == 0 || len > OUTCOME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if ((s[i] < 'a' || s[i] > 'z') && s[i] != '_')
            return false;
    }
    return true;
}

/* True when name is "rollout-YYYYmmddTHHMMSSZ-OUTCOME.json": temporaries
 * ("...json.tmp.PID"), the .txt files and anything else do not match. */
static bool is_report_name(const char *name)
{
    size_t len = strlen(name);
    const char *stamp = name + PREFIX_LEN;
    const char *outcome = stamp + STAMP_LEN + 1;

    if (len <= PREFIX_LEN + STAMP_LEN + 1 + 5 || strncmp(name, PREFIX, PREFIX_LEN) != 0 ||
        strcmp(name + len - 5, ".json") != 0 || stamp[STAMP_LEN] != '-')
        return false;
    for (size_t i = 0; i < STAMP_LEN; i++) {
        char want = i == 8 ? 'T' : i == STAMP_LEN - 1 ? 'Z' : '0';
        bool digit = stamp[i] >= '0' && stamp[i] <= '9';
        if (want == '0' ? !digit : stamp[i] != want)
            return false;
    }
    return outcome_ok(outcome, (size_t)(name + len - 5 - outcome));
}

/* Builds "rollout-STAMP-OUTCOME" (no extension) from report into base.
 * Returns -1 with err set when the report lacks a well-formed time or
 * outcome. */
static int report_base_name(const json_t *report, char *base, size_t len, char *err, size_t err_len)
{
    const char *ended = json_string_value(json_object_get(report, "ended_at"));
    const char *outcome = json_string_value(json_object_get(report, "outcome"));
    char stamp[STAMP_LEN + 1];

    if (ended == NULL || stamp_from_time(ended, stamp) < 0) {
        snprintf(err, err_len, "the report has no \"ended_at\" time");
        return -1;
    }
    if (outcome == NULL || !outcome_ok(outcome, strlen(outcome))) {
        snprintf(err, err_len, "the report has no \"outcome\" of lower-case letters");
        return -1;
    }
    snprintf(base, len, PREFIX "%s-%s", stamp, outcome);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Saving */

/* The .json file's text (indented, with a final newline) or the .txt
 * file's (what `switchyardctl rollout report` prints). A new string, or
 * NULL when out of memory or the report cannot be rendered. */
static char *report_text(const json_t *report, bool as_json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    /* The renderer reads a rollout.report reply; json_pack only adds a
     * reference to report, it never changes it. */
    json_t *reply = json_pack("{s:b, s:O}", "ok", 1, "report", (json_t *)report);
    int rc = -1;

    if (f != NULL && reply != NULL) {
        if (as_json)
            rc = json_dumpf(report, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF ? 0 : -1;
        else
            rc = ctl_render_rollout_report(f, reply);
    }
    json_decref(reply);
    if (f != NULL && fclose(f) != 0)
        rc = -1;
    if (rc < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes text to the new file tmp in dirfd and makes it durable; -1 with
 * err naming dir/tmp. The mode is set explicitly: a umask must not make
 * the reports unreadable to their group. */
static int write_temp(int dirfd, const char *dir, const char *tmp, const char *text, char *err,
                      size_t err_len)
{
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, FILE_MODE);
    const char *what = "fchmod";

    if (fd < 0) {
        snprintf(err, err_len, "%s/%s: cannot create: %s", dir, tmp, strerror(errno));
        return -1;
    }
    errno = 0;
    if (fchmod(fd, FILE_MODE) < 0)
        goto fail;
    what = "write";
    if (write_all(fd, text, strlen(text)) < 0)
        goto fail;
    what = "fsync";
    if (fsync(fd) < 0)
        goto fail;
    what = "close";
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    return 0;

fail:
    /* A short write with errno untouched is a full disk in practice. */
    snprintf(err, err_len, "%s/%s: %s failed: %s", dir, tmp, what,
             errno ? strerror(errno) : "no space");
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Writes text to dir/name through a temporary file renamed over it. */
static int write_file(int dirfd, const char *dir, const char *name, const char *text, char *err,
                      size_t err_len)
{
    char tmp[NAME_MAX + 1];

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", name, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, err_len, "%s/%s: name too long", dir, name);
        return -1;
    }
    if (write_temp(dirfd, dir, tmp, text, err, err_len) < 0) {
        unlinkat(dirfd, tmp, 0);
        return -1;
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        snprintf(err, err_len, "%s/%s: cannot rename %s over it: %s", dir, name, tmp,
                 strerror(errno));
        unlinkat(dirfd, tmp, 0);
        return -1;
    }
    return 0;
}

/* Writes both files of report, the .txt first: a .json always has its
 * .txt, and the .json is what rollout_report_load_last() looks for. */
static int write_both(int dirfd, const char *dir, const char *base, const json_t *report, char *err,
                      size_t err_len)
{
    char *text = report_text(report, false);
    char *json = report_text(report, true);
    char name[NAME_MAX + 1];
    int rc = -1;

    if (text == NULL || json == NULL) {
        snprintf(err, err_len,
                 "%s/%s: cannot render the report (out of memory, or a "
                 "step without its number or weight)",
                 dir, base);
        goto out;
    }
    snprintf(name, sizeof(name), "%s.txt", base);
    if (write_file(dirfd, dir, name, text, err, err_len) < 0)
        goto out;
    snprintf(name, sizeof(name), "%s.json", base);
    rc = write_file(dirfd, dir, name, json, err, err_len);
out:
    free(text);
    free(json);
    return rc;
}

int rollout_report_save(const char *dir, const json_t *report, char *err, size_t err_len)
{
    char base[PREFIX_LEN + STAMP_LEN + 1 + OUTCOME_MAX + 1];
    char why[256];
    int dirfd, rc;

    if (report_base_name(report, base, sizeof(base), why, sizeof(why)) < 0) {
        snprintf(err, err_len, "%s: %s", dir, why);
        return -1;
    }
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(err, err_len, "%s: cannot open the report folder: %s", dir, strerror(errno));
        return -1;
    }
    rc = write_both(dirfd, dir, base, report, err, err_len);
    /* Only logged: both files are in place and readable already. */
    if (rc == 0 && fsync(dirfd) < 0)
        log_warn("rollout report: cannot sync the folder %s: %s", dir, strerror(errno));
    close(dirfd);
    if (rc == 0)
        log_info("rollout report: wrote %s/%s.json and %s.txt", dir, base, base);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Loading */

/* True when report name a is newer than b: by the time in the name, then
 * by the whole name so that the choice never depends on the folder's order. */
static bool newer_name(const char *a, const char *b)
{
    int by_time = strncmp(a + PREFIX_LEN, b + PREFIX_LEN, STAMP_LEN);

    return by_time > 0 || (by_time == 0 && strcmp(a, b) > 0);
}

/* Finds the newest report's name in dir. Returns 1 with best filled, 0 when
 * there is none, -1 with err set when the folder cannot be read. */
static int find_newest(const char *dir, char best[NAME_MAX + 1], char *err, size_t err_len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;

    if (d == NULL) {
        snprintf(err, err_len, "%s: cannot open the report folder: %s", dir, strerror(errno));
        return -1;
    }
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
        if (is_report_name(e->d_name) && (!found || newer_name(e->d_name, best))) {
            snprintf(best, NAME_MAX + 1, "%s", e->d_name);
            found = 1;
        }
    }
    if (errno != 0) {
        snprintf(err, err_len, "%s: cannot read the report folder: %s", dir, strerror(errno));
        found = -1;
    }
    closedir(d);
    return found;
}

/* Checks the little a reader of a report relies on; NULL or what is missing. */
static const char *report_problem(const json_t *j)
{
    if (!json_is_object(j))
        return "not a JSON object";
    if (!json_is_string(json_object_get(j, "outcome")))
        return "no \"outcome\" string";
    if (!json_is_array(json_object_get(j, "steps")))
        return "no \"steps\" array";
    return NULL;
}

/* Reads and checks the report at path: a new reference, or NULL with err. */
static json_t *load_file(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    json_error_t jerr;
    struct stat st;
    json_t *j = NULL;
    const char *why;

    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        snprintf(err, err_len, "%s: not a regular file", path);
    else if (st.st_size > ROLLOUT_REPORT_MAX_BYTES)
        snprintf(err, err_len, "%s: larger than %d bytes: not a report", path,
                 ROLLOUT_REPORT_MAX_BYTES);
    else if ((j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        snprintf(err, err_len, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
    else if ((why = report_problem(j)) != NULL) {
        snprintf(err, err_len, "%s: not a rollout report: %s", path, why);
        json_decref(j);
        j = NULL;
    }
    close(fd);
    return j;
}

json_t *rollout_report_load_last(const char *dir, char *err, size_t err_len)
{
    char name[NAME_MAX + 1], path[PATH_MAX];

    if (err_len > 0)
        err[0] = '\0';
    if (find_newest(dir, name, err, err_len) <= 0)
        return NULL;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        snprintf(err, err_len, "%s/%s: path too long", dir, name);
        return NULL;
    }
    return load_file(path, err, err_len);
}
