/*
 * error.h - status codes and error messages shared by every module.
 *
 * A function that can fail returns an rc_status and, when it fails, fills the
 * caller's rc_error with one human sentence naming the input at fault. The
 * message is what ends up in a log line, an HTTP error body or a gRPC status,
 * so it never contains secrets and never needs to be freed.
 */
#ifndef RC_ERROR_H
#define RC_ERROR_H

#include <stdarg.h>

typedef enum rc_status {
    RC_OK = 0,
    RC_EINVAL = 1,  /* the input is malformed: permanent, do not retry */
    RC_EBUSY = 2,   /* backpressure: the same input may succeed later */
    RC_ETOOBIG = 3, /* the input exceeds a configured size limit */
    RC_ENOMEM = 4,  /* the memory limit refused an allocation */
    RC_EIO = 5,     /* an operating-system call failed */
    RC_ELIMIT = 6,  /* a rate limit: the same input may succeed after a delay */
} rc_status;

typedef struct rc_error {
    char msg[512];
} rc_error;

/* Formats the message into err (when err is not NULL). */
void rc_error_set(rc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rc_error_setv(rc_error *err, const char *fmt, va_list ap);

/* Prepends "prefix: " to an existing message, to add context on the way up. */
void rc_error_prefix(rc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
