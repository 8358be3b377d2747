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
#include "core/clock.h"
#include "core/component.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/worker.h"

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

    rc_worker w; /* w.mu guards pending and oldest_ms */
    rc_batch *pending;
    int64_t oldest_ms;   /* arrival of the first pending span (rc_now_ms) */
    unsigned flushing;   /* rc_processor_factory.flush callers waiting: send now */
    bool sending;        /* the loop is passing a batch on, outside w.mu */
    pthread_cond_t idle; /* signalled when pending empties and no send runs */

    rc_counter *size_triggers;
    rc_counter *timeout_triggers;
    rc_counter *failed_spans;
} batch_processor;

static void batch_destroy(void *inst)
{
    batch_processor *p = inst;
    if (!p) return;
    rc_batch_free(p->pending);
    rc_worker_destroy(&p->w);
    pthread_cond_destroy(&p->idle);
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
    rc_worker_init(&p->w);
    rc_cond_init_monotonic(&p->idle);
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

static bool due(const batch_processor *p)
{
    if (p->pending->n_spans == 0) return false;
    if (p->w.stopping || p->flushing || p->pending->n_spans >= p->send_batch_size) return true;
    return rc_now_ms() - p->oldest_ms >= (int64_t)p->timeout_ms;
}

static void *batch_loop(void *arg)
{
    batch_processor *p = arg;
    pthread_mutex_lock(&p->w.mu);
    for (;;) {
        while (!due(p) && !(p->w.stopping && p->pending->n_spans == 0))
            rc_worker_wait(&p->w, p->pending->n_spans ? p->oldest_ms + (int64_t)p->timeout_ms : -1);
        if (p->pending->n_spans == 0) break; /* stopping and drained */
        bool by_size = p->pending->n_spans >= p->send_batch_size;
        rc_batch *fresh = rc_batch_new();
        if (!fresh) { /* try again shortly rather than lose the pending spans */
            pthread_mutex_unlock(&p->w.mu);
            rc_sleep_ms(10);
            pthread_mutex_lock(&p->w.mu);
            continue;
        }
        rc_batch *out = p->pending;
        p->pending = fresh;
        p->sending = true;
        pthread_mutex_unlock(&p->w.mu);
        rc_counter_add(by_size ? p->size_triggers : p->timeout_triggers, 1);
        send_downstream(p, out, NULL);
        pthread_mutex_lock(&p->w.mu);
        p->sending = false;
        if (p->pending->n_spans == 0) pthread_cond_broadcast(&p->idle);
    }
    p->sending = false;
    pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->w.mu);
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
    if (!rc_worker_start(&p->w, batch_loop, p)) {
        rc_error_set(err, "%s: cannot start its thread", p->id);
        return RC_EIO;
    }
    return RC_OK;
}

static rc_status batch_consume(void *inst, rc_batch *batch, rc_error *err)
{
    batch_processor *p = inst;
    if (p->next->durable) return send_downstream(p, batch, err);
    rc_batch_forget_wire(batch); /* kept past this call */
    pthread_mutex_lock(&p->w.mu);
    /* The thread sleeps without a deadline while nothing waits, so the
     * first spans must wake it to arm the timeout. */
    bool was_empty = p->pending->n_spans == 0;
    if (was_empty) p->oldest_ms = rc_now_ms();
    bool moved = rc_batch_move(p->pending, batch);
    bool wake = was_empty || p->pending->n_spans >= p->send_batch_size;
    pthread_mutex_unlock(&p->w.mu);
    if (!moved) {
        rc_batch_free(batch);
        rc_error_set(err, "out of memory in %s, retry later", p->id);
        return RC_ENOMEM;
    }
    free(batch->runs); /* the runs now belong to pending */
    free(batch);
    if (wake) rc_worker_wake(&p->w);
    return RC_OK;
}

/* Sends what is pending now rather than at its timeout, and waits until it
 * has been passed on (or timeout_ms). */
static void batch_flush(void *inst, uint64_t timeout_ms)
{
    batch_processor *p = inst;
    int64_t until = rc_now_ms() + (int64_t)timeout_ms;
    pthread_mutex_lock(&p->w.mu);
    p->flushing++;
    rc_worker_wake(&p->w);
    while ((p->pending->n_spans > 0 || p->sending) && !p->w.stopping && rc_now_ms() < until)
        rc_cond_wait_until(&p->idle, &p->w.mu, until);
    p->flushing--;
    pthread_mutex_unlock(&p->w.mu);
}

static void batch_shutdown(void *inst)
{
    batch_processor *p = inst;
    rc_worker_stop(&p->w);
}

const rc_processor_factory rc_batch_processor_factory = {
    .type = "batch",
    .description = "groups spans into batches by size and time",
    .create = batch_create,
    .start = batch_start,
    .consume = batch_consume,
    .flush = batch_flush,
    .shutdown = batch_shutdown,
    .destroy = batch_destroy,
};
