/*
 * log.c - the stderr logger (see log.h).
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = RC_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rc_log_set_level(rc_log_level level)
{
    atomic_store(&g_level, (int)level);
}

bool rc_log_enabled(rc_log_level level)
{
    return (int)level >= atomic_load_explicit(&g_level, memory_order_relaxed);
}

bool rc_log_parse_level(const char *text, rc_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (rc_log_level)i;
            return true;
        }
    }
    if (strcmp(text, "warning") == 0) {
        *out = RC_LOG_WARN;
        return true;
    }
    return false;
}

void rc_log(rc_log_level level, const char *component, const char *fmt, ...)
{
    if (!rc_log_enabled(level)) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], component);
    /* A very long component name must not push the message past the buffer. */
    if (n < 0) n = 0;
    if ((size_t)n > sizeof line - 2) n = (int)(sizeof line - 2);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    /* One event, one line: a message must not break the line structure. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
