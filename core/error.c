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
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}
