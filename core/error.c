/*
 * error.c - formatting of rc_error messages (see error.h).
 */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

void rc_error_setv(rc_error *err, const char *fmt, va_list ap)
{
    if (!err) return;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

void rc_error_set(rc_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_error_setv(err, fmt, ap);
    va_end(ap);
}

void rc_error_prefix(rc_error *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[256];
    char old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is fine: the prefix matters most, and both fit usually. */
    size_t n = strnlen(prefix, sizeof prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3;
    size_t m = strnlen(old, sizeof old);
    if (m > room) m = room;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
}
