/*
 * clock.h - the monotonic millisecond clock the worker threads share.
 *
 * Deadlines (linger, retry waits, propagation waits) are absolute
 * CLOCK_MONOTONIC milliseconds, so a wall-clock change never stretches or
 * cuts one short; rc_deadline_ts turns one into what
 * pthread_cond_timedwait wants on a condition variable created with
 * pthread_condattr_setclock(CLOCK_MONOTONIC).
 */
#ifndef RC_CLOCK_H
#define RC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t rc_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static inline struct timespec rc_deadline_ts(int64_t deadline_ms)
{
    struct timespec t = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
    return t;
}

#endif
