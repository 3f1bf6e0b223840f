/* log.h - one printf-checked logging family for every layer.
 *
 * Lines go to stderr, one write each, as
 * "2026-11-23T16:50:00.123Z switchyard[PID] LEVEL: message". The data plane
 * logs only what an operator must see (closes with a reason are logged at
 * debug level, which is off unless asked for).
 */
#ifndef SY_CONF_LOG_H
#define SY_CONF_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
};

/* Sets the program name shown in each line and the most verbose level kept. */
void log_setup(const char *prog, enum log_level max);

bool log_enabled(enum log_level level);

/* Writes unix_ms as "2026-11-23T16:50:00.123Z" (UTC) into buf; 25 bytes
 * hold it. */
void log_format_time(int64_t unix_ms, char *buf, size_t len);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
