/* statefile.c - atomic save and careful load of the local state file. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/log.h"
#include "control/statefile.h"

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

/* Writes text to a new file at tmp and makes it durable; -1 with why set. */
static int write_temp(const char *tmp, const char *text, char *why, size_t why_len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    const char *what = "write";

    if (fd < 0) {
        snprintf(why, why_len, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
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
    snprintf(why, why_len, "%s: %s failed: %s", tmp, what, errno ? strerror(errno) : "no space");
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Makes the rename durable. A failure is only logged: the new file is already
 * in place and is what every reader sees, so refusing the change now would
 * leave memory and disk disagreeing. */
static void sync_folder(const char *path)
{
    char copy[PATH_MAX];
    int fd;

    if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
        return;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        log_warn("state file %s: cannot sync its folder: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

int statefile_save(const char *path, const struct state *s, char *why, size_t why_len)
{
    char tmp[PATH_MAX];
    json_t *j = state_to_json(s);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    int rc = -1;

    json_decref(j);
    if (!text) {
        snprintf(why, why_len, "%s: cannot encode the state as JSON", path);
        return -1;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(why, why_len, "%s: path too long", path);
        goto out;
    }
    errno = 0;
    if (write_temp(tmp, text, why, why_len) < 0) {
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        snprintf(why, why_len, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    sync_folder(path);
    rc = 0;
out:
    free(text);
    return rc;
}

/* Reads at most STATEFILE_MAX_BYTES + 1 bytes of fd into buf; returns the
 * length or -1. */
static ssize_t read_capped(int fd, char *buf)
{
    size_t len = 0;

    while (len <= STATEFILE_MAX_BYTES) {
        ssize_t n = read(fd, buf + len, STATEFILE_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    return (ssize_t)len;
}

/* Parses len bytes of buf as a state; -1 with why naming path. */
static int parse_state(const char *path, const char *buf, size_t len, struct state *out, char *why,
                       size_t why_len)
{
    json_error_t jerr;
    char err[256];
    json_t *j;
    int rc;

    if (len == 0) {
        snprintf(why, why_len, "%s: empty file (an interrupted write?)", path);
        return -1;
    }
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        snprintf(why, why_len, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    rc = state_from_json(j, out, err, sizeof(err));
    json_decref(j);
    if (rc < 0)
        snprintf(why, why_len, "%s: %s", path, err);
    return rc;
}

int statefile_load(const char *path, struct state *out, char *why, size_t why_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    ssize_t len;
    int rc = -1;

    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0) {
        snprintf(why, why_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "%s: not a regular file", path);
        goto out;
    }
    buf = malloc(STATEFILE_MAX_BYTES + 1);
    if (!buf) {
        snprintf(why, why_len, "%s: out of memory", path);
        goto out;
    }
    len = read_capped(fd, buf);
    if (len < 0)
        snprintf(why, why_len, "%s: cannot read: %s", path, strerror(errno));
    else if (len > STATEFILE_MAX_BYTES)
        snprintf(why, why_len, "%s: larger than %d bytes: not a state file", path,
                 STATEFILE_MAX_BYTES);
    else
        rc = parse_state(path, buf, (size_t)len, out, why, why_len);
out:
    free(buf);
    close(fd);
    return rc;
}
