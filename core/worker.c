/*
 * worker.c - a background thread with its lock and wake-up (see worker.h).
 */
#include "core/worker.h"

void rc_worker_init(rc_worker *w)
{
    pthread_mutex_init(&w->mu, NULL);
    rc_cond_init_monotonic(&w->wake);
    w->started = false;
    w->stopping = false;
}

void rc_worker_destroy(rc_worker *w)
{
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
}

bool rc_worker_start(rc_worker *w, void *(*loop)(void *), void *arg)
{
    w->stopping = false;
    if (pthread_create(&w->thread, NULL, loop, arg) != 0) return false;
    w->started = true;
    return true;
}

void rc_worker_stop(rc_worker *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_mutex_unlock(&w->mu);
    pthread_cond_signal(&w->wake);
    pthread_join(w->thread, NULL);
    w->started = false;
}
