/*
 * batch.c - the `batch` processor: groups spans into larger batches.
 *
 * Config (processors.batch, as in the OpenTelemetry Collector):
 *   send_batch_size: 8192     send once this many spans are waiting
 *   timeout: 200ms            ... or once the oldest has waited this long
 *   send_batch_max_size: 0    split what is sent into batches of at most
 *                             this many spans (0: no upper bound)
 *
 * consume() only moves the incoming runs onto the pending batch under a
 * mutex (no span is copied), so receivers are answered in microseconds. One
 * thread per instance sends batches downstream. The processor holds no
 * memory of its own: what waits here is still charged to the memory limiter
 * through the requests' arenas, so when exporters fall behind, receivers
 * push back instead of this buffer growing without bound.
 *
 * On shutdown everything pending is sent before the thread exits.
 *
 * In front of an exporter that persists what it accepts (the respan
 * exporter's durable queue; rc_consumer.durable), holding spans here would
 * acknowledge data that is only in memory. There the processor passes each
 * incoming batch straight on, in the caller's thread, still split by
 * send_batch_max_size, and returns the exporter's answer: the exporter
 * forms its own batches from its queue (max_batch_logs, flush_interval).
 */
#include "core/component.h"
#include "core/log.h"
#include "core/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct batch_processor {
    char *id;
    uint64_t send_batch_size;
    uint64_t send_batch_max_size;
    uint64_t timeout_ms;
    const rc_consumer *next;

    pthread_mutex_t mu;
    pthread_cond_t wake;
    rc_batch *pending;
    struct timespec oldest; /* arrival of the first pending span */
    bool stopping;
    bool thread_started;
    pthread_t thread;

    rc_counter *size_triggers;
    rc_counter *timeout_triggers;
    rc_counter *failed_spans;
} batch_processor;

static void batch_destroy(void *inst)
{
    batch_processor *p = inst;
    if (!p) return;
    rc_batch_free(p->pending);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->id);
    free(p);
}

static rc_status parse_config(batch_processor *p, rc_cfg *cfg, rc_error *err)
{
    const uint64_t max = 1u << 30;
    if (rc_cfg_uint(cfg, "send_batch_size", 8192, 1, max, &p->send_batch_size, err) ||
        rc_cfg_uint(cfg, "send_batch_max_size", 0, 0, max, &p->send_batch_max_size, err) ||
        rc_cfg_duration_ms(cfg, "timeout", 200, &p->timeout_ms, err))
        return RC_EINVAL;
    if (p->send_batch_max_size && p->send_batch_max_size < p->send_batch_size)
        return rc_cfg_error(
            err, rc_cfg_get(cfg, "send_batch_max_size"),
            "send_batch_max_size (%llu) must be 0 or at least send_batch_size (%llu)",
            (unsigned long long)p->send_batch_max_size, (unsigned long long)p->send_batch_size);
    return rc_cfg_reject_unknown(cfg, err);
}

static void *batch_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    batch_processor *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (!(p->id = strdup(id->id)) || !(p->pending = rc_batch_new())) goto oom;
    if (parse_config(p, cfg, err) != RC_OK) {
        batch_destroy(p);
        return NULL;
    }
    return p;
oom:
    rc_error_set(err, "out of memory");
    batch_destroy(p);
    return NULL;
}

/* Sends one batch downstream, in pieces of at most send_batch_max_size.
 * Returns the first failure (with its message in err). */
static rc_status send_downstream(batch_processor *p, rc_batch *b, rc_error *err)
{
    rc_status first = RC_OK;
    while (b->n_spans) {
        rc_batch *piece = b;
        if (p->send_batch_max_size && b->n_spans > p->send_batch_max_size) {
            piece = rc_batch_take(b, p->send_batch_max_size);
            if (!piece) piece = b; /* cannot split: send it whole */
        }
        size_t n = piece->n_spans;
        rc_error perr = {{0}};
        rc_status st = rc_consume(p->next, piece, &perr);
        if (st != RC_OK && first == RC_OK) {
            first = st;
            if (err) *err = perr;
        }
        if (st != RC_OK && !p->next->durable) {
            rc_counter_add(p->failed_spans, n);
            rc_warn(p->id, "could not pass %zu spans on: %s", n, perr.msg);
        }
        if (piece == b) return first; /* consumed, with the whole of b */
    }
    rc_batch_free(b);
    return first;
}

static uint64_t ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
    return ms < 0 ? 0 : (uint64_t)ms;
}

static struct timespec deadline_of(const batch_processor *p)
{
    struct timespec d = p->oldest;
    d.tv_sec += (time_t)(p->timeout_ms / 1000);
    d.tv_nsec += (long)(p->timeout_ms % 1000) * 1000000;
    if (d.tv_nsec >= 1000000000) {
        d.tv_sec++;
        d.tv_nsec -= 1000000000;
    }
    return d;
}

static bool due(const batch_processor *p)
{
    if (p->pending->n_spans == 0) return false;
    if (p->stopping || p->pending->n_spans >= p->send_batch_size) return true;
    return ms_since(&p->oldest) >= p->timeout_ms;
}

static void *batch_loop(void *arg)
{
    batch_processor *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!due(p) && !(p->stopping && p->pending->n_spans == 0)) {
            if (p->pending->n_spans == 0) {
                pthread_cond_wait(&p->wake, &p->mu);
            } else {
                struct timespec d = deadline_of(p);
                pthread_cond_timedwait(&p->wake, &p->mu, &d);
            }
        }
        if (p->pending->n_spans == 0) break; /* stopping and drained */
        bool by_size = p->pending->n_spans >= p->send_batch_size;
        rc_batch *fresh = rc_batch_new();
        if (!fresh) { /* try again shortly rather than lose the pending spans */
            pthread_mutex_unlock(&p->mu);
            nanosleep(&(struct timespec){0, 10000000}, NULL);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        rc_batch *out = p->pending;
        p->pending = fresh;
        pthread_mutex_unlock(&p->mu);
        rc_counter_add(by_size ? p->size_triggers : p->timeout_triggers, 1);
        send_downstream(p, out, NULL);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static rc_status batch_start(void *inst, const rc_consumer *next, rc_error *err)
{
    batch_processor *p = inst;
    char labels[200];
    snprintf(labels, sizeof labels, "processor=\"%s\"", p->id);
    p->next = next;
    p->size_triggers =
        rc_counter_register("otelcol_processor_batch_batch_size_trigger_send",
                            "Number of times the batch was sent due to a size trigger.", labels);
    p->timeout_triggers =
        rc_counter_register("otelcol_processor_batch_timeout_trigger_send",
                            "Number of times the batch was sent due to a timeout trigger.", labels);
    p->failed_spans = rc_counter_register(
        "otelcol_processor_batch_send_failed_spans",
        "Spans the next pipeline stage refused after the batch processor accepted them.", labels);
    if (pthread_create(&p->thread, NULL, batch_loop, p) != 0) {
        rc_error_set(err, "%s: cannot start its thread", p->id);
        return RC_EIO;
    }
    p->thread_started = true;
    return RC_OK;
}

static rc_status batch_consume(void *inst, rc_batch *batch, rc_error *err)
{
    batch_processor *p = inst;
    if (p->next->durable) return send_downstream(p, batch, err);
    pthread_mutex_lock(&p->mu);
    /* The thread sleeps without a deadline while nothing waits, so the
     * first spans must wake it to arm the timeout. */
    bool was_empty = p->pending->n_spans == 0;
    if (was_empty) clock_gettime(CLOCK_MONOTONIC, &p->oldest);
    bool moved = rc_batch_move(p->pending, batch);
    bool wake = was_empty || p->pending->n_spans >= p->send_batch_size;
    pthread_mutex_unlock(&p->mu);
    if (!moved) {
        rc_batch_free(batch);
        rc_error_set(err, "out of memory in %s, retry later", p->id);
        return RC_ENOMEM;
    }
    free(batch->runs); /* the runs now belong to pending */
    free(batch);
    if (wake) pthread_cond_signal(&p->wake);
    return RC_OK;
}

static void batch_shutdown(void *inst)
{
    batch_processor *p = inst;
    if (!p->thread_started) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_signal(&p->wake);
    pthread_join(p->thread, NULL);
    p->thread_started = false;
}

const rc_processor_factory rc_batch_processor_factory = {
    .type = "batch",
    .description = "groups spans into batches by size and time",
    .create = batch_create,
    .start = batch_start,
    .consume = batch_consume,
    .shutdown = batch_shutdown,
    .destroy = batch_destroy,
};
