/*
 * delivery.h - queued delivery, shared by every exporter with a sending
 * queue (respan, otlp, otlphttp): the contract for exporter authors.
 *
 * Like the OpenTelemetry Collector's exporterhelper, this module owns
 * everything about getting queued data to a destination that is not about
 * the destination's protocol:
 *   - the shared config keys: sending_queue {directory, max_size_mib,
 *     durability}, retry_on_failure {initial_interval, max_interval,
 *     max_elapsed_time}, num_consumers, flush_interval, timeout,
 *     dead_letter_file (rc_delivery_parse);
 *   - the durable queue (core/queue.h) and the append that the receiver's
 *     answer waits for (rc_delivery_enqueue);
 *   - num_consumers sender threads that take batches of records, and retry
 *     them with exponential backoff and jitter, honour the waits a
 *     server asks for, bisect batches a server refuses until the items it
 *     refuses are isolated, and write those to the dead-letter file;
 *   - the drain at shutdown;
 *   - the standard metrics, labelled exporter="<id>":
 *     otelcol_exporter_sent_spans, otelcol_exporter_send_failed_spans,
 *     otelcol_exporter_queue_size, otelcol_exporter_queue_capacity,
 *     respan_exporter_retries, respan_exporter_dead_letter_spans,
 *     respan_exporter_partial_rejected_spans.
 *
 * An exporter keeps its encoding and its reading of the server's answer,
 * and plugs in with rc_delivery_ops:
 *   export_batch (pipeline threads): encode the batch into items, appended
 *       to one rc_buf in the exporter's framing, then rc_delivery_enqueue.
 *   frame:  reads one item back from a record (records are opaque bytes:
 *       JSON lines, length-prefixed protobuf, anything self-delimiting).
 *   send:   sends n items as one request and says what came of it
 *       (rc_send_result). Runs on a sender thread, with that thread's own
 *       transport state (sender_new); may block up to `timeout`, and should
 *       return early when rc_delivery_aborting() turns true.
 *   dead_letter_entry: the line written to the dead-letter file for an item
 *       refused for good.
 *
 * What the service relies on (core/component.h): an exporter on this module
 * sets `queued` in its factory, so the service counts what the queue refused
 * as otelcol_exporter_enqueue_failed_spans and leaves sent / send_failed to
 * this module; its `persists` is rc_delivery_persists: true unless the
 * queue is in memory, and then export_batch returns only once the items are
 * on disk (fsync: synced; async: in the page cache).
 *
 * Delivery is at least once. An item is marked done only when the server
 * took it or it was dead-lettered; anything else (a stop mid-retry, a
 * crash) leaves it queued for the next sender or the next start.
 */
#ifndef RC_DELIVERY_H
#define RC_DELIVERY_H

#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One item of a record: what send() sends and dead_letter_entry() writes.
 * Points into the taken record; valid during the send call only. */
typedef struct rc_delivery_item {
    const char *p;
    size_t len;
    uint32_t spans; /* how many spans it carries, for the metrics */
} rc_delivery_item;

/* What came of a send, decided by the exporter from the server's answer. */
typedef enum rc_verdict {
    /* Accepted. Items listed in `failed` (batch APIs with per-item results)
     * are sent again alone; rejected_spans (OTLP partial_success) are
     * counted as failed and logged, never as sent. */
    RC_VERDICT_OK,
    /* Transient (5xx, UNAVAILABLE, a timeout, no connection): back off and
     * send again; after max_elapsed_time (when not 0) dead-letter. */
    RC_VERDICT_RETRY,
    /* The server asked to slow down (429, RESOURCE_EXHAUSTED with
     * RetryInfo): wait retry_after_ms, or back off; never gives up. */
    RC_VERDICT_THROTTLE,
    /* The request as a whole was refused, maybe for one bad item (400, 413,
     * INVALID_ARGUMENT): send each half again; a single item refused so is
     * dead-lettered. */
    RC_VERDICT_SPLIT,
    /* Refused for good, whatever the split: dead-letter every item. */
    RC_VERDICT_DROP,
    /* Our credentials or endpoint are wrong (401, 403, 404): keep every
     * item queued, log once, retry every max_interval until a reload fixes
     * the config. Nothing is dropped for a misconfiguration. detail heads
     * the log line, so it says what was refused ("Respan refused the API
     * key (HTTP 401: ...)"). */
    RC_VERDICT_REFUSED,
} rc_verdict;

typedef struct rc_send_result {
    rc_verdict verdict;
    long status;             /* HTTP status or gRPC code for logs; 0: no answer */
    int64_t retry_after_ms;  /* the wait the server asked for; -1: none */
    uint64_t rejected_spans; /* OK: spans the server said it rejected */
    char detail[320];        /* why, for logs and dead letters; no secrets */
    /* OK: indices of the items the server refused, ascending. The module
     * provides the array (room for n); send() fills it and sets n_failed. */
    size_t *failed;
    size_t n_failed;
} rc_send_result;

struct rc_delivery;

typedef struct rc_delivery_ops {
    /* Transport state for one sender thread (a libcurl handle, a gRPC
     * channel); NULL with err set when it cannot be made. */
    void *(*sender_new)(void *exporter, const struct rc_delivery *d, rc_error *err);
    void (*sender_free)(void *sender);
    /* Sends items[0..n), n >= 1, as one request; fills *r (zeroed, failed
     * provided, retry_after_ms -1). */
    void (*send)(void *sender, const rc_delivery_item *items, size_t n, rc_send_result *r);
    /* Reads the item at the start of data[0..len) into *item; returns the
     * bytes it takes in the record, 0 when the bytes are not an item (the
     * rest of the record is then skipped and logged). */
    size_t (*frame)(const char *data, size_t len, rc_delivery_item *item);
    /* Appends to out one line (no newline) for the dead-letter file: the
     * item, refused for good with status and detail. */
    void (*dead_letter_entry)(void *exporter, const rc_delivery_item *item, long status,
                              const char *detail, rc_buf *out);
} rc_delivery_ops;

/* The shared keys, parsed by rc_delivery_parse. */
typedef struct rc_delivery_config {
    uint64_t max_batch_spans; /* set by the exporter, before parse */
    uint64_t max_batch_bytes; /* set by the exporter, before parse */
    uint64_t flush_ms, timeout_ms, num_consumers;
    uint64_t retry_initial_ms, retry_max_ms, retry_elapsed_ms;
    uint64_t queue_bytes;
    int durability;         /* rc_queue_durability */
    char *queue_dir;        /* owned */
    char *dead_letter_path; /* owned */
} rc_delivery_config;

/* Reads the shared keys of an exporter's section into c (whose batch limits
 * the exporter has set). The exporter reads its own keys and then calls
 * rc_cfg_reject_unknown. Errors name the file, line and key. Defaults:
 * flush_interval 1s, timeout 30s, num_consumers 4, queue ./data/queue/<id> of 1024 MiB with fsync,
 * retries from 1s to 30s with no max_elapsed_time, dead letters in <queue dir>.deadletter.jsonl. */
rc_status rc_delivery_parse(const char *id, rc_cfg *cfg, rc_delivery_config *c, rc_error *err);
void rc_delivery_config_free(rc_delivery_config *c);

typedef struct rc_delivery rc_delivery;

/* Opens the queue, registers the metrics and starts the senders. Takes
 * over c's strings (c is left empty). `exporter` is passed to the ops. */
rc_status rc_delivery_start(const char *id, rc_delivery_config *c, const rc_delivery_ops *ops,
                            void *exporter, rc_delivery **out, rc_error *err);
/* Delivers what is queued for up to a few seconds (one attempt per batch),
 * cuts transfers still running short, joins the senders, closes the queue
 * (what is left stays on disk for the next start) and frees d. Returns the
 * records left undelivered (lost with a memory queue). NULL is a no-op. */
uint64_t rc_delivery_stop(rc_delivery *d);

/* Cuts items (a buffer of items in the exporter's framing) into records of
 * at most max_batch_spans spans and max_batch_bytes bytes (an item larger
 * than that is a record of its own), and appends them to the queue; returns once they are as
 * durable as the queue promises. RC_EBUSY: the queue or the disk is full, or the write failed:
 * "retry later". */
rc_status rc_delivery_enqueue(rc_delivery *d, const rc_buf *items, rc_error *err);

/* The same, for a caller that knows how many spans the items carry: when
 * they fit one record they are appended without being walked. */
rc_status rc_delivery_enqueue_counted(rc_delivery *d, const rc_buf *items, uint64_t spans,
                                      rc_error *err);

/* True when the queue is on disk: see the contract above. Valid before
 * start, from the parsed config. */
bool rc_delivery_config_persists(const rc_delivery_config *c);

/* For send(): true once the stop's drain time is over; a transfer still
 * running should then be cut short (its items stay queued). */
bool rc_delivery_aborting(const rc_delivery *d);
/* Records queued and not yet delivered or dead-lettered (0 before start). */
uint64_t rc_delivery_pending(const rc_delivery *d);

#endif
