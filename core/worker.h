/*
 * worker.h - a background thread with the lock and the wake-up it works under.
 *
 * The batch and customer processors each run one thread that sleeps until
 * it has work or a deadline passes, under a mutex the pipeline's threads
 * take to hand it that work. rc_worker is that pattern once: the mutex, a
 * condition variable on the monotonic clock (deadlines do not move with the
 * wall clock), the thread, and the stop sequence - `stopping` set under the
 * lock, a wake-up, a join - that lets the loop drain before it returns.
 *
 * The owner embeds an rc_worker, guards its own state with w.mu, and its
 * loop checks w.stopping (under w.mu) each time it wakes.
 */
#ifndef RC_WORKER_H
#define RC_WORKER_H

#include "core/clock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct rc_worker {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    bool started;
    bool stopping; /* under mu; set by rc_worker_stop */
} rc_worker;

void rc_worker_init(rc_worker *w);
/* The thread must not be running (never started, or stopped). */
void rc_worker_destroy(rc_worker *w);
/* Runs loop(arg) on a new thread; false when the thread cannot be made. */
bool rc_worker_start(rc_worker *w, void *(*loop)(void *), void *arg);
/* Sets stopping, wakes the loop and waits for it to return. Idempotent. */
void rc_worker_stop(rc_worker *w);

/* With w->mu held: sleeps until woken or deadline_ms (rc_now_ms) passes;
 * a negative deadline sleeps until woken. */
static inline void rc_worker_wait(rc_worker *w, int64_t deadline_ms)
{
    rc_cond_wait_until(&w->wake, &w->mu, deadline_ms);
}

static inline void rc_worker_wake(rc_worker *w)
{
    pthread_cond_signal(&w->wake);
}

#endif
