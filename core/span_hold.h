/*
 * span_hold.h - a waiting room for spans, keyed by trace, on the durable
 * queue.
 *
 * Some spans cannot be finished when they arrive: the `customer` processor
 * must wait for the span of their trace that names the customer, which an
 * SDK exports later (children end before their root). A hold keeps such
 * spans until their trace is settled, their wait runs out, or room is
 * needed, and then hands them back to its owner, on its own thread, to be
 * finished and passed on.
 *
 * What it promises:
 *   - Held means as durable as the queue under it (core/queue.h): with
 *     durability fsync, rc_hold_put returns once the spans are fsync'd, so
 *     an owner in front of a durable exporter may acknowledge them; a
 *     SIGKILL loses nothing, and the next open offers them again, with the
 *     wait they had left (deadlines are kept in wall-clock time on disk).
 *   - Only a compact index is in memory (per record 32 bytes, per waiting
 *     trace and record about 32 bytes, charged to the memory limiter); the
 *     spans themselves are encoded as OTLP protobuf in the queue's records,
 *     on disk or, with durability memory, in memory (then charged to the
 *     memory limiter too).
 *   - Nothing is dropped: spans leave only through `release` returning
 *     RC_OK. When it fails (the next stage is full) they stay and are
 *     offered again after a back-off. A record that can no longer be
 *     decoded is written to the dead-letter file `<directory>.deadletter`
 *     and counted, never silently lost.
 *   - Bounded: at most max_bytes wait. Past nine tenths of it the oldest go
 *     first (RC_HOLD_BOUND); a put that does not fit is refused (RC_EBUSY)
 *     and the caller passes its spans on at once.
 *
 * Records. A put writes one record: a header (the time it was written, how
 * many spans, the distinct trace ids they wait for, the request metadata
 * that travels with spans: receiver, transport, peer; never headers, which
 * may carry credentials) and the spans as an ExportTraceServiceRequest.
 * Notes are small opaque records of the owner's (the customer processor
 * writes what it learnt about a trace): on open they are replayed to the
 * owner before any span is offered, so what settled a trace survives a
 * crash as well as the spans waiting for it. A note stays until every
 * record older than it is done, and every record it settled is.
 *
 * Settling. The owner tells the hold when a trace's wait is over
 * (rc_hold_settle). Every record waiting for it then waits for one trace
 * fewer; one that waits for none goes (RC_HOLD_SETTLED), in settling
 * order. The owner and the hold never hold each other's locks: an owner
 * that puts spans checks its own state again after rc_hold_put returns and
 * settles what became known meanwhile; settling twice is harmless. On a
 * durable hold that recheck settles with a note of its own
 * (rc_hold_settle_noted): the note that settled the trace meanwhile is
 * older than the spans' record, may have found nothing waiting and been
 * retired already, and only a note newer than the record is sure to stay
 * until the spans go.
 *
 * Thread-safety: rc_hold_put, rc_hold_waiting, rc_hold_settle and the
 * counters may be called from any thread. The callbacks run on the hold's
 * thread (release, tick) or inside rc_hold_open (replay_note, is_settled).
 */
#ifndef RC_SPAN_HOLD_H
#define RC_SPAN_HOLD_H

#include "core/batch.h"
#include "core/error.h"
#include "core/queue.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_TRACE_ID_BYTES 16

typedef struct rc_hold rc_hold;

/* Why spans are handed back. */
typedef enum rc_hold_reason {
    RC_HOLD_SETTLED,  /* every trace they waited for was settled */
    RC_HOLD_TIMEOUT,  /* their wait ran out */
    RC_HOLD_BOUND,    /* the hold was near max_bytes: the oldest go first */
    RC_HOLD_SHUTDOWN, /* a memory hold empties when it closes */
} rc_hold_reason;

typedef struct rc_hold_callbacks {
    /* Spans whose wait is over, as a batch of their own that the callee
     * owns (as rc_consumer.consume does). RC_OK: they were passed on and
     * the hold forgets them; anything else: they are kept and offered
     * again after a back-off. */
    rc_status (*release)(void *arg, rc_batch *batch, rc_hold_reason why, rc_error *err);
    /* On open, every note still held, oldest first, before anything else. */
    void (*replay_note)(void *arg, const void *data, size_t len, int64_t written_unix_ms);
    /* On open, after the notes: whether a trace waited for is settled
     * already (its records are then offered as settled). */
    bool (*is_settled)(void *arg, const uint8_t *trace_id);
    /* About once a second on the hold's thread (housekeeping); optional. */
    void (*tick)(void *arg);
    void *arg;
} rc_hold_callbacks;

typedef struct rc_hold_options {
    const char *name;      /* for log lines and metric labels, e.g. "customer" */
    const char *directory; /* durability fsync or async; locked while open */
    rc_queue_durability durability;
    uint64_t max_bytes; /* bound on what waits */
    uint64_t wait_ms;   /* how long spans wait at most */
    /* Release threads, 1 or 2 (0: 2). With two, while one waits for the
     * next stage the other prepares the next batch; batches may then
     * overlap, so records go roughly, not strictly, in order. */
    unsigned threads;
} rc_hold_options;

/* Opens (and recovers) the hold and starts its thread. Recovered notes are
 * replayed and recovered records indexed before this returns. */
rc_status rc_hold_open(const rc_hold_options *opts, const rc_hold_callbacks *cb, rc_hold **out,
                       rc_error *err);

/* Stops the thread and frees the hold. On disk, what waits stays there
 * for the next open; in memory it is first released (RC_HOLD_SHUTDOWN),
 * retried for a few seconds if the next stage refuses, and whatever is
 * still refused then is logged as lost. */
void rc_hold_close(rc_hold *h);

/* Holds every span of `spans` (the batch stays the caller's). The metadata
 * of its first run's request stands for all. RC_OK: held, as durably as
 * the hold's durability promises. RC_EBUSY: no room (the bound, a full
 * disk, a failed write or sync) and RC_ENOMEM: the memory limiter refused
 * the index; either way nothing is held and err says why. */
rc_status rc_hold_put(rc_hold *h, const rc_batch *spans, rc_error *err);

/* Writes a note (see above) and settles the given traces with it: the note
 * is written first, so what settled them is durable before any of their
 * spans leave. Memory holds keep no notes. RC_OK, or the append's error
 * (then nothing is settled and the caller should refuse its request). */
rc_status rc_hold_settle_noted(rc_hold *h, const uint8_t *trace_ids, size_t n, const void *note,
                               size_t note_len, rc_error *err);

/* Which of the n traces (16 bytes each) spans wait for: sets waited[i].
 * Returns how many. Cheap when nothing waits at all. */
size_t rc_hold_waiting(rc_hold *h, const uint8_t *trace_ids, size_t n, bool *waited);

/* Settles traces without a note: for a memory hold, or traces whose
 * settling is noted in a note newer than the records waiting for them
 * (not the owner's recheck after a put, see Settling above). */
void rc_hold_settle(rc_hold *h, const uint8_t *trace_ids, size_t n);

/* From now on nothing waits: every record held, and every one put later,
 * goes as if its wait had run out (RC_HOLD_TIMEOUT). For the end of a
 * finite input (replay), where no later span can settle a trace. Returns
 * at once; rc_hold_spans falls to 0 as the releases are passed on. */
void rc_hold_release_all(rc_hold *h);

/* Whether a put persists spans (durability fsync or async). */
bool rc_hold_durable(const rc_hold *h);
/* Spans waiting now, and bytes held (queue files, or records in memory). */
uint64_t rc_hold_spans(const rc_hold *h);
uint64_t rc_hold_bytes(const rc_hold *h);
/* Records that could not be decoded and went to the dead-letter file. */
uint64_t rc_hold_dead_letters(const rc_hold *h);

#endif
