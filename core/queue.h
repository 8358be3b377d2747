/*
 * queue.h - the durable sending queue every queued exporter shares.
 *
 * An exporter appends opaque records (for the respan exporter, lines of
 * request-log JSON); its senders take the oldest records, deliver them, and
 * mark them done. The receiver's acknowledgement waits for the append, so
 * what a client was told was accepted is on disk before it is told so.
 *
 * On disk (durability fsync or async) a queue is a directory of segment
 * files, NNNNNNNNNNNNNNNN.seg (16 hex digits, a sequence number that a
 * failed create does not use up), written append-only; a new one is started
 * when the next record would take the active one past segment_bytes. Each
 * record is a 16-byte header (magic "RCQ2", length, weight, CRC-32C over
 * length, weight and payload XORed with a CRC-32C of the segment's
 * sequence number; "RCQ1" records, unsalted, are still read) and its
 * payload. Delivered records are listed, by offset, in the segment's .ack
 * file; once every record of a segment is delivered its .ack file is
 * deleted and the segment is renamed NNNNNNNNNNNNNNNN.del and emptied, and
 * that empty file is deleted at the next write of the manifest. Up to two
 * such files are not emptied but kept, while their pages are in the page
 * cache, and written over by later segments (renamed to the new segment's
 * name): far cheaper than growing new files. A reused file keeps an end
 * mark (magic "RCQE", zero length and weight, the salt) after its last
 * record, and its older records never pass a salted checksum; spares are
 * deleted at close.
 *
 * MANIFEST lists the segments that must be there, so that one that goes
 * missing is noticed with the records it took along. All integers little
 * endian: "RCQM" (u32 0x4d514352), version u32 (1), the next sequence
 * number u64, the entry count n u32, 0 u32; n entries of {sequence u64,
 * records u64: how many were written to it, UINT64_MAX for the segment
 * being written}, in sequence order; CRC-32C u32 over all that. It is
 * replaced whole (MANIFEST.tmp renamed over it; with fsync both synced)
 * when a segment is created, at open and at close, never per record, so
 * appends pay nothing for it but one small file per segment. A segment it
 * lists is on disk as .seg or as .del unless something else removed it.
 *
 * On open the queue is recovered: records not listed as delivered are
 * queued again, in order; a torn or corrupt tail is cut off and logged
 * with the number of records lost; a segment the manifest lists that is
 * neither .seg nor .del is logged as missing ("queue DIR: N records lost:
 * segment NNNNNNNNNNNNNNNN.seg is missing"), N being its records less those
 * its leftover .ack file lists as delivered, or with its count unknown
 * when it was being written at a crash; a segment holding fewer whole
 * records than the manifest says is logged too. Every such record, and
 * every record dropped later for failing its checksum, is counted in
 * respan_queue_lost_records{queue="<name>"}, every missing segment in
 * respan_queue_missing_segments{queue="<name>"}. A directory without a
 * MANIFEST (written before there was one) or with an unreadable one is
 * read as before, with a warning that missing segments cannot be detected
 * this time; the manifest is written from then on. Older versions ignore
 * MANIFEST and .del files, but cannot read "RCQ2" records: a queue is not
 * carried back to a version before them.
 *
 *   fsync  append returns once the records are fsync'd. Concurrent appends
 *          share one fdatasync (group commit): whoever finds no sync running
 *          syncs everything written so far and wakes the others.
 *   async  append returns once the records are written to the page cache:
 *          they survive the process being killed, not a power cut.
 *   memory no files: records live in memory and are lost with the process.
 *
 * On disk, each appended record is also kept in memory, as long as the
 * copies fit memory_bytes, and takers are handed that copy: in the common
 * case (senders keep up) a record is written once and never read back.
 * The copy changes nothing about durability: the record is written and
 * synced exactly as without it, and the copies are not persisted. Records
 * that did not fit (a backlog during an outage) and records recovered at
 * open are read back from their segment, and their checksum is checked.
 * Record buffers are recycled through a small pool instead of being
 * malloc'd and freed for each record (1-2 MB buffers would be mmap'd and
 * page-faulted in each time).
 *
 * Delivery is at least once: a record taken but not marked done when the
 * process dies is delivered again after restart, and only such a record.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef RC_QUEUE_H
#define RC_QUEUE_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rc_queue_durability {
    RC_QUEUE_FSYNC,
    RC_QUEUE_ASYNC,
    RC_QUEUE_MEMORY,
} rc_queue_durability;

typedef struct rc_queue_options {
    const char *name;      /* for log lines, e.g. the exporter id */
    const char *directory; /* created if missing; unused for memory */
    uint64_t max_bytes;    /* bound on the queue (segment files, or records in memory) */
    /* Roll to a new segment file past this. At most a quarter of max_bytes:
     * a segment counts until its last record is delivered, so appends go on
     * while delivery lags by up to three quarters of the queue, whatever
     * its size (a 1 MiB queue on a small disk too). 0: a quarter of
     * max_bytes, at most 16 MiB. A record larger than a segment gets one
     * of its own. */
    uint64_t segment_bytes;
    rc_queue_durability durability;
    /* Disk queues: bound on the record copies kept in memory (buffer bytes,
     * see rc_queue_memory_bytes). 0: 32 MiB, or an eighth of the process
     * memory target (rc_mem_process_limit) when that is less. At most
     * max_bytes. Free buffers kept for reuse are at most half of it (and
     * 16 MiB). Unused for memory, where every record is in memory. */
    uint64_t memory_bytes;
} rc_queue_options;

typedef struct rc_queue rc_queue;

/* One record to append. `weight` is the caller's unit of batching (the
 * respan exporter passes the number of logs in the record). The payload
 * is data[0..len) followed by more[0..more_len) (more may be NULL): a
 * caller with a header of its own and a large body need not copy them
 * into one buffer first. */
typedef struct rc_queue_chunk {
    const void *data;
    size_t len;
    uint32_t weight;
    const void *more;
    size_t more_len;
} rc_queue_chunk;

/* A record handed to a sender. `data` is owned by the queue: the sender
 * reads it (and must not write to it) until rc_queue_done or
 * rc_queue_release, which take it back (set it to NULL). It may be the
 * queue's in-memory copy of the record, which a release keeps for the
 * next take. */
typedef struct rc_queue_record {
    uint64_t id;
    char *data;
    size_t len;
    uint32_t weight;
} rc_queue_record;

/* Opens (and recovers) the queue. Fails when the directory cannot be
 * created or is locked by another process. */
rc_status rc_queue_open(const rc_queue_options *opts, rc_queue **out, rc_error *err);

/* Closes files and frees the queue. Records not done stay on disk and are
 * queued again by the next open. Takers must have returned and every taken
 * record been done or released. */
void rc_queue_close(rc_queue *q);

/* Appends every chunk or none. RC_ETOOBIG when the chunks could never fit;
 * RC_EBUSY when they cannot be made durable now: the queue or the disk is
 * full, a write failed (nothing of this call is kept) or the sync failed
 * (the records were written and may still be delivered: the caller's
 * client retries, so they may arrive twice, which at-least-once allows).
 * RC_EBUSY is "retry later" to every receiver (503 / UNAVAILABLE); err
 * says which it was. Returns after the records are as durable as the
 * queue's durability promises. */
rc_status rc_queue_append(rc_queue *q, const rc_queue_chunk *chunks, size_t n, rc_error *err);
/* The same, and sets *first_id to the id of the first record: the records
 * of one append have consecutive ids. It is set on RC_OK, and on RC_EBUSY
 * when the sync failed: those records were written and stay queued, so a
 * caller that tracks ids and told its client they were refused retires
 * them (rc_queue_done_id). When nothing of the call is kept it is left
 * alone (its ids may be given to the next append). */
rc_status rc_queue_append_ids(rc_queue *q, const rc_queue_chunk *chunks, size_t n,
                              uint64_t *first_id, rc_error *err);

/* Takes the oldest untaken records, in order, for delivery. Waits until the
 * untaken records reach max_weight or max_bytes, or the oldest of them has
 * waited linger_ms, or rc_queue_wake is called. Takes at least one record
 * when any is available and never more than max_records; beyond the first,
 * never more than max_weight and max_bytes in total. Returns how many were
 * taken (0 when woken with nothing there, or when a read failed). */
size_t rc_queue_take(rc_queue *q, rc_queue_record *out, size_t max_records, uint64_t max_weight,
                     size_t max_bytes, uint64_t linger_ms);

/* Takes one record by id, whatever its place in the queue, for a caller
 * that decides the order itself (the span hold, core/span_hold.h). RC_OK:
 * *out is the record, taken as by rc_queue_take. RC_EBUSY: the id is not
 * waiting (taken, done, or not yet appended). RC_EIO: it could not be read
 * now and stays queued. RC_EINVAL: it no longer matches its checksum and
 * was dropped (logged), as rc_queue_take drops such a record. */
rc_status rc_queue_take_id(rc_queue *q, uint64_t id, rc_queue_record *out);

/* Copies the payload of a record that is waiting (not taken) into *out
 * (replacing its contents) without taking it, for a caller that tracks
 * records by id itself and retires them with rc_queue_done_id: its buffer,
 * reused from call to call, spares a buffer per record. The caller must not
 * retire the record while the call runs. RC_OK; RC_EBUSY: the id is not
 * waiting; RC_EIO: it could not be read now; RC_EINVAL: it no longer
 * matches its checksum and was dropped (logged); RC_ENOMEM. */
struct rc_buf;
rc_status rc_queue_read(rc_queue *q, uint64_t id, struct rc_buf *out);

/* Calls fn for every record not yet done, in order, with its payload (read
 * back when it is not in memory; records that cannot be read are skipped
 * and logged), then leaves it queued. For recovery: run it after open and
 * before any taker starts. Stops early when fn returns false. */
void rc_queue_scan(rc_queue *q,
                   bool (*fn)(void *arg, uint64_t id, const char *data, size_t len,
                              uint32_t weight),
                   void *arg);

/* Like rc_queue_scan, but reads at most the first max_len bytes of each
 * payload (fn gets them and the record's whole length), and reads them
 * without taking the record or checking its checksum again: for recovery
 * right after open, which checked every record, when a record's head says
 * what is needed (the span hold's index) and reading the rest would read
 * the whole queue a second time. Records that cannot be read are skipped
 * and logged. */
void rc_queue_scan_heads(rc_queue *q, size_t max_len,
                         bool (*fn)(void *arg, uint64_t id, const char *head, size_t head_len,
                                    size_t len),
                         void *arg);

/* The record was delivered (or dead-lettered): it is removed for good.
 * Takes r->data back. */
void rc_queue_done(rc_queue *q, rc_queue_record *r);

/* Marks a record that is waiting (not taken) done without reading it, for
 * a caller that no longer needs it. False when the id is not waiting. */
bool rc_queue_done_id(rc_queue *q, uint64_t id);

/* Gives a taken record back, to be taken again first. Takes r->data back. */
void rc_queue_release(rc_queue *q, rc_queue_record *r);

/* Stops takers waiting, for good: from now on rc_queue_take returns at
 * once with whatever is there, 0 when nothing is (senders drain, then stop). */
void rc_queue_wake(rc_queue *q);

/* Bytes the queue holds (segment files, or records in memory) and its bound. */
uint64_t rc_queue_bytes(const rc_queue *q);
uint64_t rc_queue_capacity(const rc_queue *q);
/* Records not yet done. */
uint64_t rc_queue_records(const rc_queue *q);
/* Bytes of record buffers the queue holds for records not yet done: on
 * disk, the copies served without a read (at most memory_bytes); in
 * memory, every record. Buffer bytes, so a little above the payloads'
 * (large buffers are rounded up to be reusable); the pool of free buffers
 * (at most 16 MiB) is not counted. */
uint64_t rc_queue_memory_bytes(const rc_queue *q);

#endif
