/*
 * log.h - one line per event on stderr.
 *
 * Format: "2026-11-24T03:49:44.123Z info  component: message". Lines are
 * written with a single write(2) so concurrent threads never interleave
 * inside a line. The level is set once from service.telemetry.logs.level.
 */
#ifndef RC_LOG_H
#define RC_LOG_H

#include <stdbool.h>

typedef enum rc_log_level {
    RC_LOG_DEBUG = 0,
    RC_LOG_INFO = 1,
    RC_LOG_WARN = 2,
    RC_LOG_ERROR = 3,
} rc_log_level;

void rc_log_set_level(rc_log_level level);
bool rc_log_enabled(rc_log_level level);
/* Parses "debug", "info", "warn" (or "warning") and "error". */
bool rc_log_parse_level(const char *text, rc_log_level *out);

void rc_log(rc_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define rc_debug(comp, ...)                                                                        \
    do {                                                                                           \
        if (rc_log_enabled(RC_LOG_DEBUG)) rc_log(RC_LOG_DEBUG, comp, __VA_ARGS__);                 \
    } while (0)
#define rc_info(comp, ...) rc_log(RC_LOG_INFO, comp, __VA_ARGS__)
#define rc_warn(comp, ...) rc_log(RC_LOG_WARN, comp, __VA_ARGS__)
#define rc_error_log(comp, ...) rc_log(RC_LOG_ERROR, comp, __VA_ARGS__)

#endif
