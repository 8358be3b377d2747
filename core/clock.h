/*
 * clock.h - the monotonic millisecond clock the worker threads share.
 *
 * Deadlines (linger, retry waits, propagation waits) are absolute
 * CLOCK_MONOTONIC milliseconds, so a wall-clock change never stretches or
 * cuts one short; rc_deadline_ts turns one into what
 * pthread_cond_timedwait wants on a condition variable created with
 * pthread_condattr_setclock(CLOCK_MONOTONIC), which rc_cond_init_monotonic
 * makes and rc_cond_wait_until waits on.
 */
#ifndef RC_CLOCK_H
#define RC_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline int64_t rc_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static inline void rc_sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static inline struct timespec rc_deadline_ts(int64_t deadline_ms)
{
    struct timespec t = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
    return t;
}

/* A condition variable whose timed waits count on the monotonic clock. */
static inline void rc_cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

/* Waits on c, with mu held, until signalled or deadline_ms (rc_now_ms)
 * passes; a negative deadline waits for a signal only. As with any
 * condition variable the wake-up may be spurious: callers re-check. */
static inline void rc_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu, int64_t deadline_ms)
{
    if (deadline_ms < 0) {
        pthread_cond_wait(c, mu);
        return;
    }
    struct timespec t = rc_deadline_ts(deadline_ms);
    pthread_cond_timedwait(c, mu, &t);
}

#endif
