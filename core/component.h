/*
 * component.h - the four kinds of pipeline component and the consumer that
 * links them.
 *
 * Like the OpenTelemetry Collector's factories and Fluent Bit's plugins,
 * every receiver, processor, exporter and extension is one struct of
 * callbacks with a type name, registered in one table (core/registry.c).
 * The service looks components up by the type in their config id
 * ("batch" in "batch/fast") and never switches on names.
 *
 * Life cycle, for every kind:
 *   create   parses and validates the component's own config section (a
 *            map, or a null node for an empty section: the getters read
 *            both, and an error about either can name its place). It
 *            has no side effects (no sockets, no threads, no files), so
 *            `validate` runs it too. NULL with err filled on a bad config.
 *   start    acquires resources and begins work.
 *   shutdown finishes work: receivers stop accepting and wait for requests
 *            in flight; processors flush what they hold into `next`;
 *            exporters deliver or persist what they hold.
 *   destroy  frees the instance. Called after shutdown, or after a failed
 *            create/start.
 *
 * Data moves as rc_batch (core/batch.h) through rc_consumer. consume() takes
 * ownership of the batch whatever it returns. Its return value is what the
 * receiver tells the client: RC_OK accepted; RC_EBUSY or RC_ENOMEM
 * backpressure, retry later; RC_EINVAL rejected for good.
 */
#ifndef RC_COMPONENT_H
#define RC_COMPONENT_H

#include "core/batch.h"
#include "core/config.h"
#include "core/error.h"

typedef struct rc_consumer {
    rc_status (*consume)(void *self, rc_batch *batch, rc_error *err);
    void *self;
    /* Set by the service: somewhere downstream an exporter acknowledges
     * only what it has persisted. A processor in front of it must then not
     * answer RC_OK for spans it merely holds in memory (batch passes them
     * straight on; customer does not hold spans back), or a crash would
     * lose spans a client was told were accepted. */
    bool durable;
} rc_consumer;

static inline rc_status rc_consume(const rc_consumer *c, rc_batch *batch, rc_error *err)
{
    return c->consume(c->self, batch, err);
}

/* What every factory's create() is told about the instance it makes. */
typedef struct rc_component_id {
    const char *id;       /* full id from the config, e.g. "batch/fast" */
    const char *type;     /* "batch" */
    const char *pipeline; /* processors: the pipeline's id ("traces/llm"); else NULL */
} rc_component_id;

typedef struct rc_receiver_factory {
    const char *type;
    const char *description;
    void *(*create)(const rc_component_id *id, rc_cfg *cfg, rc_error *err);
    /* `next` stays valid until shutdown returns. */
    rc_status (*start)(void *inst, const rc_consumer *next, rc_error *err);
    void (*shutdown)(void *inst);
    void (*destroy)(void *inst);
    /* Optional. SIGHUP with an unchanged config: read the files the config
     * names (certificates, token files) again and use them from now on,
     * keeping established connections. On failure the old ones stay. */
    rc_status (*reload_files)(void *inst, rc_error *err);
} rc_receiver_factory;

typedef struct rc_processor_factory {
    const char *type;
    const char *description;
    void *(*create)(const rc_component_id *id, rc_cfg *cfg, rc_error *err);
    rc_status (*start)(void *inst, const rc_consumer *next, rc_error *err);
    /* Processes the batch and passes it on to `next`, now or later. */
    rc_status (*consume)(void *inst, rc_batch *batch, rc_error *err);
    /* Optional. The input has ended (`replay` read its last span): hand
     * on everything held for later now, and return once it has been
     * passed to `next` (or is still refused by it after trying for about
     * timeout_ms). A processor that holds nothing leaves it NULL. */
    void (*flush)(void *inst, uint64_t timeout_ms);
    void (*shutdown)(void *inst);
    void (*destroy)(void *inst);
} rc_processor_factory;

typedef struct rc_exporter_factory {
    const char *type;
    const char *description;
    void *(*create)(const rc_component_id *id, rc_cfg *cfg, rc_error *err);
    rc_status (*start)(void *inst, rc_error *err);
    /* Delivers (or durably queues) the batch. The batch stays the caller's.
     * May be called from several threads at once. */
    rc_status (*export_batch)(void *inst, const rc_batch *batch, rc_error *err);
    /* Optional. True when export_batch returns only once the spans are
     * persisted, which makes the pipeline durable (rc_consumer.durable).
     * `queued`: the exporter delivers through a sending queue and counts
     * sent / send_failed itself; the service counts only what the queue
     * refused (otelcol_exporter_enqueue_failed_spans). Exporters on the
     * shared queued-delivery module get both from it: exporter/delivery.h
     * states what they promise. */
    bool (*persists)(const void *inst);
    bool queued;
    /* Optional, for queued exporters: records accepted and not yet
     * delivered or dead-lettered; after shutdown, those left when it
     * stopped. `replay` waits for it to reach 0 and reports what is left. */
    uint64_t (*pending)(const void *inst);
    /* Optional: appends to `out`, as text lines, what export_batch would
     * send for this batch, without sending or queueing it (`replay
     * --dry-run`). Callable on an instance that was created, not started. */
    rc_status (*preview)(void *inst, const rc_batch *batch, rc_buf *out, rc_error *err);
    void (*shutdown)(void *inst);
    void (*destroy)(void *inst);
} rc_exporter_factory;

typedef struct rc_extension_factory {
    const char *type;
    const char *description;
    void *(*create)(const rc_component_id *id, rc_cfg *cfg, rc_error *err);
    rc_status (*start)(void *inst, rc_error *err);
    void (*shutdown)(void *inst);
    void (*destroy)(void *inst);
    rc_status (*reload_files)(void *inst, rc_error *err); /* optional, as a receiver's */
} rc_extension_factory;

/* The registry (core/registry.c): NULL when no component has that type. */
const rc_receiver_factory *rc_find_receiver(const char *type);
const rc_processor_factory *rc_find_processor(const char *type);
const rc_exporter_factory *rc_find_exporter(const char *type);
const rc_extension_factory *rc_find_extension(const char *type);
/* Comma-separated type names of a kind, for error messages and --help. */
const char *rc_list_types(char kind /* 'r', 'p', 'e', 'x' */);

/* Service state, for the health check: true from the moment every pipeline
 * has started until shutdown begins. */
bool rc_service_is_ready(void);

#endif
