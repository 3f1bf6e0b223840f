/* log.c - timestamped lines on stderr. */
#include "conf/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "switchyard";
static enum log_level log_max = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_setup(const char *prog, enum log_level max)
{
    log_prog = prog;
    log_max = max;
}

bool log_enabled(enum log_level level)
{
    return level <= log_max;
}

void log_format_time(int64_t unix_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(unix_ms / 1000);
    int frac = (int)(unix_ms % 1000);
    struct tm tm;

    if (frac < 0) {
        frac += 1000;
        secs--;
    }
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[1024];
    char when[32];
    struct timespec ts;
    va_list ap;
    int n;

    if (!log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    log_format_time((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, when, sizeof(when));
    n = snprintf(line, sizeof(line), "%s %s[%d] %s: ", when, log_prog, (int)getpid(),
                 level_names[level]);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep the newline */
    line[len++] = '\n';
    /* One write per line so that threads never interleave inside a line. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
