/*
 * span_hold.c - the span hold (see span_hold.h for the contract).
 *
 * The queue (core/queue.h) keeps the records; this file keeps the index
 * that says, for each record, what it waits for:
 *
 *   ring     one slot per queue record, indexed by record id (ids are
 *            consecutive: the hold is the queue's only user). A slot says
 *            whether the record waits, is ready, is being released, is a
 *            note or is done, and holds its deadline (monotonic ms), its
 *            span count and how many of its traces are still unsettled.
 *            The ring's head is the oldest record not done; done slots at
 *            the head are popped, notes there are retired (see below).
 *   waits    an open-addressing table of (trace id, record id) pairs: one
 *            per trace a waiting record waits for. Settling a trace walks
 *            its pairs, removes them and counts the records down.
 *   ready    a deque of records to release now, with their reason:
 *            settled ones in settling order, and ones whose release failed
 *            (put back at the front, so order is kept across retries).
 *
 * Everything above is under w.mu. The queue has its own lock; the hold
 * never holds w.mu across a queue call that writes or reads (appends,
 * takes), and the release callback runs with no lock held.
 *
 * Record format (little-endian), the queue's payload:
 *   u32 magic       "RCH1" spans, "RCN1" note
 *   u32 n_spans     0 for a note
 *   i64 written     wall-clock ms when the record was written
 *   u32 n_traces    distinct trace ids the spans wait for (0 for a note)
 *   u32 meta_len    receiver\0transport\0peer\0 (0 for a note)
 *   n_traces * 16   the trace ids
 *   meta_len        the metadata
 *   rest            spans: ExportTraceServiceRequest (protobuf); note: its bytes
 * Deadlines are written as wall-clock time so that a restart keeps the
 * wait a record had left; the wait itself is the current config's.
 *
 * Notes. A note records what settled some traces, for the owner to replay
 * after a crash. It must outlive every record it settled. Records older
 * than the note are covered by the rule that a note is retired only at the
 * ring's head (everything older is done); records newer than it that it
 * settled (appended while the note was being written) are counted in its
 * `covers`, and it waits for those too.
 *
 * Invariants:
 *   - a pair (T, id) is in `waits` iff record id is WAITING or TAKEN and T
 *     is one of its traces not yet settled; unsettled counts them;
 *   - a slot is in `ready` iff its state is READY;
 *   - scan_from <= the id of every WAITING record;
 *   - n_spans (the gauge) is the sum over records not done.
 */
#include "core/span_hold.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "core/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAGIC_SPANS 0x31484352u /* "RCH1" as a little-endian u32 */
#define MAGIC_NOTE 0x314e4352u  /* "RCN1" */
#define HDR_BYTES 24u
#define TID RC_TRACE_ID_BYTES
#define NO_ID UINT64_MAX
#define COPY_BYTES (4u << 20) /* record copies the queue keeps in memory */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define DRAIN_MS 5000 /* how long a closing memory hold keeps offering spans */
#define TICK_MS 1000

enum { S_FREE, S_WAITING, S_READY, S_TAKEN, S_NOTE, S_DONE, S_BAD /* recovery only */ };

typedef struct slot {
    int64_t deadline_ms; /* monotonic */
    uint64_t cover;      /* records: the newer-than-them note that settled them, or NO_ID */
    uint32_t n_spans;
    uint32_t unsettled; /* records: traces not yet settled; notes: records it covers */
    uint32_t charged;   /* memory holds: bytes charged to the memory limiter */
    uint8_t state;
    uint8_t reason; /* READY: why it goes */
} slot;

typedef struct pair {
    uint8_t tid[TID];
    uint64_t id; /* NO_ID: empty */
} pair;

struct rc_hold {
    rc_hold_options o;
    rc_hold_callbacks cb;
    char *name, *dir, *dead_letter_path;
    rc_queue *q;
    rc_worker w; /* w.mu guards everything below */

    slot *ring;
    size_t ring_cap; /* a power of two */
    uint64_t base;   /* id of ring[base & (cap-1)], the oldest tracked */
    uint64_t end;    /* one past the highest id tracked */
    uint64_t scan_from;

    pair *waits;
    size_t waits_cap; /* a power of two, or 0 */
    size_t waits_used, waits_reserved;
    size_t ring_reserved; /* slots for appends under way */

    uint64_t *ready;
    size_t ready_cap, ready_head, ready_n;

    size_t index_bytes; /* ring, waits and ready, charged to the memory limiter */
    int64_t retry_at_ms;
    int64_t backoff_ms;

    atomic_uint_fast64_t spans;        /* waiting now */
    atomic_uint_fast64_t waiting_recs; /* records WAITING: 0 makes rc_hold_waiting free */
    atomic_uint_fast64_t dead_letters;
};

/* --- little helpers -------------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_i64(unsigned char *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)v >> (8 * i));
}

static int64_t get_i64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static size_t trace_hash(const uint8_t *id)
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    /* Both halves count: some SDKs leave one half zero or repeat it. */
    uint64_t h = a * 0x9E3779B97F4A7C15ull + b;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (size_t)(h ^ (h >> 32));
}

/* A parsed record header; pointers into the record. */
typedef struct rec_view {
    uint32_t magic, n_spans, n_traces;
    int64_t written_ms;
    const uint8_t *traces;
    const char *meta;
    uint32_t meta_len;
    const uint8_t *body;
    size_t body_len;
} rec_view;

static bool parse_record(const char *data, size_t len, rec_view *v)
{
    const unsigned char *p = (const unsigned char *)data;
    if (len < HDR_BYTES) return false;
    v->magic = get_u32(p);
    v->n_spans = get_u32(p + 4);
    v->written_ms = get_i64(p + 8);
    v->n_traces = get_u32(p + 16);
    v->meta_len = get_u32(p + 20);
    if (v->magic != MAGIC_SPANS && v->magic != MAGIC_NOTE) return false;
    uint64_t need = HDR_BYTES + (uint64_t)v->n_traces * TID + v->meta_len;
    if (need > len) return false;
    v->traces = p + HDR_BYTES;
    v->meta = (const char *)v->traces + (size_t)v->n_traces * TID;
    v->body = (const uint8_t *)v->meta + v->meta_len;
    v->body_len = len - (size_t)need;
    return true;
}

/* --- the ring -------------------------------------------------------------------- */

static slot *slot_of(rc_hold *h, uint64_t id)
{
    return &h->ring[id & (h->ring_cap - 1)];
}

static bool tracked(const rc_hold *h, uint64_t id)
{
    return id >= h->base && id < h->end;
}

/* A zeroed array of new_bytes charged to the memory limiter, to replace
 * one of old_bytes (whose charge is given back: the caller frees it once
 * it has copied what it needs). NULL when refused. Under mu. */
static void *grow_charged(rc_hold *h, size_t old_bytes, size_t new_bytes)
{
    if (!rc_mem_try_charge(new_bytes)) return NULL;
    void *n = calloc(1, new_bytes);
    if (!n) {
        rc_mem_release(new_bytes);
        return NULL;
    }
    h->index_bytes += new_bytes - old_bytes;
    rc_mem_release(old_bytes);
    return n;
}

/* Grows the ring to hold at least `need` slots from base. Under mu. */
static bool ring_room(rc_hold *h, uint64_t need)
{
    if (need <= h->ring_cap) return true;
    size_t cap = h->ring_cap ? h->ring_cap : 1024;
    while (need > cap)
        cap *= 2;
    slot *n = grow_charged(h, h->ring_cap * sizeof *n, cap * sizeof *n);
    if (!n) return false;
    for (uint64_t i = h->base; i < h->end; i++)
        n[i & (cap - 1)] = *slot_of(h, i);
    free(h->ring);
    h->ring = n;
    h->ring_cap = cap;
    return true;
}

/* Makes the ring reach id (slots in between are FREE); room for it was
 * reserved, or (recovery) is made now. Under mu. */
static bool ring_reach(rc_hold *h, uint64_t id)
{
    if (id < h->end) return true;
    if (!ring_room(h, id - h->base + 1)) return false;
    for (uint64_t i = h->end; i <= id; i++)
        *slot_of(h, i) = (slot){0, NO_ID, 0, 0, 0, S_FREE, 0};
    h->end = id + 1;
    return true;
}

/* --- the waits table ---------------------------------------------------------------- */

static bool waits_grow(rc_hold *h, size_t need)
{
    size_t cap = h->waits_cap ? h->waits_cap : 1024;
    while (need > cap / 4 * 3)
        cap *= 2;
    if (cap == h->waits_cap) return true;
    pair *n = grow_charged(h, h->waits_cap * sizeof *n, cap * sizeof *n);
    if (!n) return false;
    for (size_t i = 0; i < cap; i++)
        n[i].id = NO_ID;
    for (size_t i = 0; i < h->waits_cap; i++) {
        if (h->waits[i].id == NO_ID) continue;
        size_t k = trace_hash(h->waits[i].tid) & (cap - 1);
        while (n[k].id != NO_ID)
            k = (k + 1) & (cap - 1);
        n[k] = h->waits[i];
    }
    free(h->waits);
    h->waits = n;
    h->waits_cap = cap;
    return true;
}

/* Room was reserved (waits_reserved) before the record was written. */
static void waits_insert(rc_hold *h, const uint8_t *tid, uint64_t id)
{
    size_t k = trace_hash(tid) & (h->waits_cap - 1);
    while (h->waits[k].id != NO_ID)
        k = (k + 1) & (h->waits_cap - 1);
    memcpy(h->waits[k].tid, tid, TID);
    h->waits[k].id = id;
    h->waits_used++;
}

/* Removes slot k, shifting back the entries after it that it displaced
 * (linear probing's deletion without tombstones). */
static void waits_delete_at(rc_hold *h, size_t k)
{
    size_t mask = h->waits_cap - 1;
    h->waits[k].id = NO_ID;
    h->waits_used--;
    for (size_t j = (k + 1) & mask; h->waits[j].id != NO_ID; j = (j + 1) & mask) {
        size_t home = trace_hash(h->waits[j].tid) & mask;
        /* Entry j may move to the hole at k if its home is not in (k, j]. */
        bool stays = k <= j ? (home > k && home <= j) : (home > k || home <= j);
        if (stays) continue;
        h->waits[k] = h->waits[j];
        h->waits[j].id = NO_ID;
        k = j;
    }
}

/* Calls fn for every pair of trace tid, removing it when fn returns true. */
static void waits_each(rc_hold *h, const uint8_t *tid, bool (*fn)(rc_hold *, uint64_t, void *),
                       void *arg)
{
    if (!h->waits_cap || !h->waits_used) return;
    size_t mask = h->waits_cap - 1;
    size_t k = trace_hash(tid) & mask;
    while (h->waits[k].id != NO_ID) {
        if (memcmp(h->waits[k].tid, tid, TID) == 0 && fn(h, h->waits[k].id, arg)) {
            waits_delete_at(h, k);
            continue; /* slot k now holds the next candidate */
        }
        k = (k + 1) & mask;
    }
}

/* --- the ready deque ------------------------------------------------------------- */

static bool ready_room(rc_hold *h)
{
    if (h->ready_n < h->ready_cap) return true;
    size_t cap = h->ready_cap ? h->ready_cap * 2 : 256;
    uint64_t *n = grow_charged(h, h->ready_cap * sizeof *n, cap * sizeof *n);
    if (!n) return false;
    for (size_t i = 0; i < h->ready_n; i++)
        n[i] = h->ready[(h->ready_head + i) % h->ready_cap];
    free(h->ready);
    h->ready = n;
    h->ready_cap = cap;
    h->ready_head = 0;
    return true;
}

/* Marks record id READY and queues it, at the back or (a retry) the front.
 * When the deque cannot grow the record simply stays WAITING: its deadline
 * still releases it. */
static void make_ready(rc_hold *h, uint64_t id, rc_hold_reason why, bool front)
{
    slot *s = slot_of(h, id);
    if (!ready_room(h)) {
        if (s->state == S_TAKEN) {
            s->state = S_WAITING;
            atomic_fetch_add(&h->waiting_recs, 1);
        }
        if (id < h->scan_from) h->scan_from = id;
        return;
    }
    if (s->state == S_WAITING) atomic_fetch_sub(&h->waiting_recs, 1);
    s->state = S_READY;
    s->reason = (uint8_t)why;
    if (front) {
        h->ready_head = (h->ready_head + h->ready_cap - 1) % h->ready_cap;
        h->ready[h->ready_head] = id;
    } else {
        h->ready[(h->ready_head + h->ready_n) % h->ready_cap] = id;
    }
    h->ready_n++;
}

static uint64_t ready_pop(rc_hold *h)
{
    uint64_t id = h->ready[h->ready_head];
    h->ready_head = (h->ready_head + 1) % h->ready_cap;
    h->ready_n--;
    return id;
}

/* --- settling ---------------------------------------------------------------------- */

typedef struct settle_ctx {
    uint64_t note; /* NO_ID without a note */
} settle_ctx;

/* A pair of the trace being settled: its record waits for one trace fewer. */
static bool settle_pair(rc_hold *h, uint64_t id, void *arg)
{
    const settle_ctx *c = arg;
    slot *s = slot_of(h, id);
    s->unsettled--;
    if (c->note != NO_ID && id > c->note && s->cover == NO_ID) {
        s->cover = c->note;
        slot_of(h, c->note)->unsettled++;
    }
    if (s->unsettled == 0 && s->state == S_WAITING) make_ready(h, id, RC_HOLD_SETTLED, false);
    return true;
}

static void settle_locked(rc_hold *h, const uint8_t *ids, size_t n, uint64_t note)
{
    settle_ctx c = {note};
    for (size_t i = 0; i < n; i++)
        waits_each(h, ids + i * TID, settle_pair, &c);
}

static bool pair_of_record(rc_hold *h, uint64_t id, void *arg)
{
    return id == *(const uint64_t *)arg;
}

/* Removes the pairs a record still has (it leaves before its traces are
 * settled). Under mu. */
static void forget_waits(rc_hold *h, uint64_t id, const rec_view *v)
{
    slot *s = slot_of(h, id);
    for (uint32_t i = 0; i < v->n_traces && s->unsettled; i++) {
        size_t before = h->waits_used;
        waits_each(h, v->traces + (size_t)i * TID, pair_of_record, &id);
        s->unsettled -= (uint32_t)(before - h->waits_used);
    }
}

/* The same for a record whose bytes are gone (the queue dropped it as
 * corrupt, or it is not a span record): its traces are unknown, so the
 * whole table is walked for its pairs, on this rare path only. A deletion
 * shifts later entries back into slot k, so k is looked at again; entries
 * shifted into slots already passed were passed already. Under mu. */
static void forget_waits_unread(rc_hold *h, uint64_t id)
{
    slot *s = slot_of(h, id);
    for (size_t k = 0; k < h->waits_cap && s->unsettled;) {
        if (h->waits[k].id != id) {
            k++;
            continue;
        }
        waits_delete_at(h, k);
        s->unsettled--;
    }
}

/* --- retiring ------------------------------------------------------------------------ */

/* Pops done slots off the ring's head and retires a note that has reached
 * it with nothing left to cover. Under mu. */
static void pop_head(rc_hold *h)
{
    while (h->base < h->end) {
        slot *s = slot_of(h, h->base);
        if (s->state == S_NOTE && s->unsettled == 0 && rc_queue_done_id(h->q, h->base))
            s->state = S_DONE;
        if (s->state != S_DONE) break;
        h->base++;
    }
    if (h->scan_from < h->base) h->scan_from = h->base;
}

/* A record left for good. Under mu. */
static void record_done(rc_hold *h, uint64_t id)
{
    slot *s = slot_of(h, id);
    atomic_fetch_sub(&h->spans, s->n_spans);
    if (s->charged) rc_mem_release(s->charged);
    if (s->cover != NO_ID && tracked(h, s->cover)) slot_of(h, s->cover)->unsettled--;
    s->state = S_DONE;
    pop_head(h);
}

/* --- dead letters ------------------------------------------------------------------- */

/* A record that can never be decoded: its bytes go to the dead-letter file
 * (a 4-byte little-endian length, then the record) for someone to look at. */
static void dead_letter(rc_hold *h, const char *data, size_t len, const char *why)
{
    atomic_fetch_add(&h->dead_letters, 1);
    int fd = h->dead_letter_path
                 ? open(h->dead_letter_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)
                 : -1;
    unsigned char n[4];
    put_u32(n, (uint32_t)len);
    bool ok = fd >= 0 && write(fd, n, 4) == 4 && write(fd, data, len) == (ssize_t)len &&
              fdatasync(fd) == 0;
    if (fd >= 0) close(fd);
    if (ok)
        rc_error_log(h->name, "a held record (%zu bytes) cannot be decoded (%s); written to %s",
                     len, why, h->dead_letter_path);
    else
        rc_error_log(h->name,
                     "a held record (%zu bytes) cannot be decoded (%s) and could not be "
                     "written to %s (%s): it is lost",
                     len, why, h->dead_letter_path ? h->dead_letter_path : "(none)",
                     strerror(errno));
}

/* --- releasing -------------------------------------------------------------------- */

/* The spans of a record as a batch of their own; NULL with *st RC_ENOMEM
 * (retry later) or RC_EINVAL (undecodable). */
static rc_batch *decode_record(const rec_view *v, rc_status *st, rc_error *err)
{
    rc_arena *arena = rc_arena_new(v->body_len * 2 + 1024);
    rc_request *req = arena ? rc_request_new(arena) : NULL;
    if (!req) {
        *st = RC_ENOMEM;
        rc_error_set(err, "memory limit reached");
        return NULL;
    }
    *st = otlp_proto_decode(v->body, v->body_len, arena, &req->data, err);
    const char *m = v->meta, *end = v->meta + v->meta_len;
    const char *fields[3] = {"", "", ""};
    for (int i = 0; i < 3 && m < end; i++) {
        const char *z = memchr(m, '\0', (size_t)(end - m));
        if (!z) break;
        fields[i] = m;
        m = z + 1;
    }
    rc_request_meta meta = {fields[0], fields[1], fields[2], 0, NULL};
    if (*st == RC_OK && !rc_request_set_meta(req, &meta)) {
        *st = RC_ENOMEM;
        rc_error_set(err, "memory limit reached");
    }
    if (*st != RC_OK) {
        rc_request_unref(req);
        return NULL;
    }
    req->n_spans = otlp_count_spans(req->data);
    rc_batch *b = rc_batch_from_request(req);
    if (!b) *st = RC_ENOMEM;
    return b;
}

typedef enum { GONE, KEPT } release_result;

/* Offers record id (TAKEN, chosen by pick) to the owner. No lock held. */
static release_result release_one(rc_hold *h, uint64_t id, rc_hold_reason why)
{
    rc_queue_record r;
    rc_status st = rc_queue_take_id(h->q, id, &r);
    if (st == RC_EIO) return KEPT;
    rec_view v;
    bool parsed = st == RC_OK && parse_record(r.data, r.len, &v) && v.magic == MAGIC_SPANS;
    /* Whatever happens next the record no longer waits: a pair left
     * behind would count down whichever record reuses its slot. */
    pthread_mutex_lock(&h->w.mu);
    if (parsed)
        forget_waits(h, id, &v);
    else
        forget_waits_unread(h, id);
    pthread_mutex_unlock(&h->w.mu);
    if (st == RC_EBUSY)
        rc_warn(h->name, "held record %" PRIu64 " was not waiting in the queue; index repaired",
                id);
    if (st != RC_OK) return GONE; /* RC_EINVAL: dropped by the queue as corrupt (it logged it) */
    if (!parsed) {
        dead_letter(h, r.data, r.len, "unknown record header");
        rc_queue_done(h->q, &r);
        return GONE;
    }
    rc_error err = {{0}};
    rc_batch *b = decode_record(&v, &st, &err);
    if (!b && st == RC_EINVAL) {
        dead_letter(h, r.data, r.len, err.msg);
        rc_queue_done(h->q, &r);
        return GONE;
    }
    if (b) st = h->cb.release(h->cb.arg, b, why, &err);
    if (st != RC_OK) {
        rc_debug(h->name, "%u held spans could not go on yet (%s); retrying", v.n_spans, err.msg);
        rc_queue_release(h->q, &r);
        return KEPT;
    }
    rc_queue_done(h->q, &r);
    return GONE;
}

/* The first WAITING record at or after scan_from, or NO_ID. Under mu. */
static uint64_t first_waiting(rc_hold *h)
{
    for (uint64_t id = h->scan_from; id < h->end; id++) {
        uint8_t st = slot_of(h, id)->state;
        if (st == S_WAITING) return id;
        /* Only done, taken, ready and note slots are passed for good; a
         * FREE one (being registered) lowers scan_from when it registers. */
        if (id == h->scan_from && st != S_FREE) h->scan_from = id + 1;
    }
    return NO_ID;
}

static bool over_bound(rc_hold *h)
{
    return rc_queue_bytes(h->q) > h->o.max_bytes / 10 * 9;
}

/* Chooses the next record to release, marks it TAKEN; or returns NO_ID and
 * lowers *wake_at to when there may be one. Under mu. */
static uint64_t pick(rc_hold *h, int64_t now, int64_t *wake_at, rc_hold_reason *why)
{
    bool draining = h->w.stopping;
    uint64_t id = NO_ID;
    if (h->ready_n) {
        id = ready_pop(h);
        *why = (rc_hold_reason)slot_of(h, id)->reason;
    } else if ((id = first_waiting(h)) != NO_ID) {
        slot *s = slot_of(h, id);
        if (draining)
            *why = RC_HOLD_SHUTDOWN;
        else if (s->deadline_ms <= now)
            *why = RC_HOLD_TIMEOUT;
        else if (over_bound(h))
            *why = RC_HOLD_BOUND;
        else {
            if (s->deadline_ms < *wake_at) *wake_at = s->deadline_ms;
            return NO_ID;
        }
        atomic_fetch_sub(&h->waiting_recs, 1);
    }
    if (id != NO_ID) slot_of(h, id)->state = S_TAKEN;
    return id;
}

static void after_release(rc_hold *h, uint64_t id, rc_hold_reason why, release_result r,
                          int64_t now)
{
    if (r == GONE) {
        record_done(h, id);
        h->backoff_ms = 0;
        return;
    }
    make_ready(h, id, why, true);
    h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (h->backoff_ms > BACKOFF_MAX_MS) h->backoff_ms = BACKOFF_MAX_MS;
    h->retry_at_ms = now + h->backoff_ms;
}

static void *hold_loop(void *arg)
{
    rc_hold *h = arg;
    int64_t next_tick = rc_now_ms() + TICK_MS, drain_until = -1;
    pthread_mutex_lock(&h->w.mu);
    for (;;) {
        int64_t now = rc_now_ms();
        /* next_tick moves on whether or not there is a tick to call: it is
         * also the loop's latest wake-up, which must not stay in the past. */
        if (now >= next_tick) {
            next_tick = now + TICK_MS;
            if (h->cb.tick) {
                pthread_mutex_unlock(&h->w.mu);
                h->cb.tick(h->cb.arg);
                pthread_mutex_lock(&h->w.mu);
                continue;
            }
        }
        if (h->w.stopping) {
            /* On disk what waits stays for the next start; a memory hold
             * offers everything to the next stage before it goes. */
            if (h->o.durability != RC_QUEUE_MEMORY) break;
            if (drain_until < 0) drain_until = now + DRAIN_MS;
            if (now >= drain_until || atomic_load(&h->spans) == 0) break;
        }
        int64_t wake_at = next_tick;
        rc_hold_reason why = RC_HOLD_TIMEOUT;
        uint64_t id = now >= h->retry_at_ms ? pick(h, now, &wake_at, &why) : NO_ID;
        if (id == NO_ID) {
            if (now < h->retry_at_ms && h->retry_at_ms < wake_at) wake_at = h->retry_at_ms;
            if (drain_until >= 0 && drain_until < wake_at) wake_at = drain_until;
            rc_worker_wait(&h->w, wake_at);
            continue;
        }
        pthread_mutex_unlock(&h->w.mu);
        release_result r = release_one(h, id, why);
        pthread_mutex_lock(&h->w.mu);
        after_release(h, id, why, r, rc_now_ms());
    }
    pthread_mutex_unlock(&h->w.mu);
    return NULL;
}

/* --- putting ------------------------------------------------------------------------ */

/* The distinct trace ids of the batch's spans, appended to out (16 bytes
 * each); returns how many, or SIZE_MAX when out of memory. */
static size_t distinct_traces(const rc_batch *b, rc_buf *out)
{
    size_t cap = 16;
    while (cap < b->n_spans * 2)
        cap *= 2;
    const uint8_t **set = calloc(cap, sizeof *set);
    if (!set) return SIZE_MAX;
    size_t n = 0;
    for (size_t r = 0; r < b->n_runs; r++)
        for (size_t i = 0; i < b->runs[r].n_spans; i++) {
            const otlp_span *s = b->runs[r].spans[i];
            if (s->trace_id.len != TID) continue;
            size_t k = trace_hash(s->trace_id.data) & (cap - 1);
            while (set[k] && memcmp(set[k], s->trace_id.data, TID) != 0)
                k = (k + 1) & (cap - 1);
            if (set[k]) continue;
            set[k] = s->trace_id.data;
            rc_buf_append(out, set[k], TID);
            n++;
        }
    free(set);
    return out->failed ? SIZE_MAX : n;
}

static void put_meta(rc_buf *b, const rc_request_meta *m)
{
    const char *f[3] = {m->receiver, m->transport, m->peer};
    for (int i = 0; i < 3; i++) {
        rc_buf_puts(b, f[i] ? f[i] : "");
        rc_buf_putc(b, '\0');
    }
}

/* Builds the record of a put in out; false when out of memory. */
static bool build_record(const rc_batch *spans, rc_buf *out, uint32_t *n_traces)
{
    unsigned char hdr[HDR_BYTES] = {0};
    rc_buf_append(out, hdr, HDR_BYTES);
    size_t n = distinct_traces(spans, out);
    size_t meta_at = out->len;
    put_meta(out, &spans->runs[0].owner->meta);
    size_t meta_len = out->len - meta_at;
    rc_arena *scratch = rc_arena_new_scratch(16 * 1024);
    otlp_export_request *view = scratch ? rc_batch_view(spans, scratch) : NULL;
    if (view) otlp_proto_encode(view, out);
    rc_arena_free(scratch);
    if (!view || n == SIZE_MAX || out->failed) return false;
    unsigned char *p = (unsigned char *)out->data;
    put_u32(p, MAGIC_SPANS);
    put_u32(p + 4, (uint32_t)spans->n_spans);
    put_i64(p + 8, wall_ms());
    put_u32(p + 16, (uint32_t)n);
    put_u32(p + 20, (uint32_t)meta_len);
    *n_traces = (uint32_t)n;
    return true;
}

/* Reserves index room, before it is written, for a record waiting on n
 * traces (n = 0 for a note): its ring slot and its pairs. Records under
 * way are all reserved, so the highest id the queue can hand out is below
 * end + ring_reserved and ring_reach never has to grow for them. Under mu. */
static bool reserve_index(rc_hold *h, uint32_t n)
{
    if (!waits_grow(h, h->waits_used + h->waits_reserved + n) ||
        !ring_room(h, h->end - h->base + h->ring_reserved + 1))
        return false;
    h->waits_reserved += n;
    h->ring_reserved++;
    return true;
}

static void unreserve_index(rc_hold *h, uint32_t n)
{
    h->waits_reserved -= n;
    h->ring_reserved--;
}

/* An append refused after its record was written (its sync failed) leaves
 * the record queued (core/queue.h) under an id the hold never registers:
 * retire it, as its caller was told nothing is held, and mark its slot
 * done. Left FREE, the slot would stop the ring's head for good, and with
 * it every later note's retirement. Before unreserve_index: its room was
 * reserved. Under mu. */
static void forget_refused(rc_hold *h, uint64_t id)
{
    if (id == NO_ID) return;
    rc_queue_done_id(h->q, id);
    ring_reach(h, id);
    *slot_of(h, id) = (slot){0, NO_ID, 0, 0, 0, S_DONE, 0};
    pop_head(h);
}

/* Indexes a record the queue now holds; its room was reserved. Under mu. */
static void register_record(rc_hold *h, uint64_t id, const rec_view *v, int64_t deadline,
                            uint32_t charged)
{
    ring_reach(h, id); /* cannot fail: reserved */
    unreserve_index(h, v->n_traces);
    atomic_fetch_add(&h->spans, v->n_spans);
    slot *s = slot_of(h, id);
    *s = (slot){deadline, NO_ID, v->n_spans, v->n_traces, charged, S_WAITING, 0};
    atomic_fetch_add(&h->waiting_recs, 1);
    for (uint32_t i = 0; i < v->n_traces; i++)
        waits_insert(h, v->traces + (size_t)i * TID, id);
    if (id < h->scan_from) h->scan_from = id;
    if (v->n_traces == 0) make_ready(h, id, RC_HOLD_SETTLED, false);
    rc_worker_wake(&h->w);
}

rc_status rc_hold_put(rc_hold *h, const rc_batch *spans, rc_error *err)
{
    if (spans->n_spans == 0) return RC_OK;
    rc_buf rec = RC_BUF_INIT;
    uint32_t n_traces = 0, charged = 0;
    rc_status st = RC_OK;
    if (!build_record(spans, &rec, &n_traces)) {
        rc_error_set(err, "%s: out of memory holding %zu spans", h->name, spans->n_spans);
        rc_buf_free(&rec);
        return RC_ENOMEM;
    }
    if (h->o.durability == RC_QUEUE_MEMORY) {
        if (!rc_mem_try_charge(rec.len)) {
            rc_error_set(err, "%s: memory limit reached holding %zu spans", h->name,
                         spans->n_spans);
            rc_buf_free(&rec);
            return RC_ENOMEM;
        }
        charged = (uint32_t)rec.len;
    }
    pthread_mutex_lock(&h->w.mu);
    bool room = reserve_index(h, n_traces);
    pthread_mutex_unlock(&h->w.mu);
    if (!room) {
        rc_error_set(err, "%s: memory limit reached indexing %zu held spans", h->name,
                     spans->n_spans);
        st = RC_ENOMEM;
        goto out;
    }
    uint64_t id = NO_ID;
    rc_queue_chunk c = {rec.data, rec.len, (uint32_t)spans->n_spans};
    st = rc_queue_append_ids(h->q, &c, 1, &id, err);
    if (st == RC_ETOOBIG) st = RC_EBUSY; /* the caller passes the spans on at once */
    rec_view v;
    parse_record(rec.data, rec.len, &v);
    pthread_mutex_lock(&h->w.mu);
    if (st == RC_OK) {
        register_record(h, id, &v, rc_now_ms() + (int64_t)h->o.wait_ms, charged);
        charged = 0;
    } else {
        forget_refused(h, id);
        unreserve_index(h, n_traces);
    }
    pthread_mutex_unlock(&h->w.mu);
out:
    if (charged) rc_mem_release(charged);
    rc_buf_free(&rec);
    return st;
}

/* --- settling, from the owner ---------------------------------------------------- */

size_t rc_hold_waiting(rc_hold *h, const uint8_t *trace_ids, size_t n, bool *waited)
{
    memset(waited, 0, n * sizeof *waited);
    if (atomic_load(&h->waiting_recs) == 0) return 0;
    size_t count = 0;
    pthread_mutex_lock(&h->w.mu);
    size_t mask = h->waits_cap ? h->waits_cap - 1 : 0;
    for (size_t i = 0; i < n && h->waits_used; i++) {
        const uint8_t *tid = trace_ids + i * TID;
        for (size_t k = trace_hash(tid) & mask; h->waits[k].id != NO_ID; k = (k + 1) & mask)
            if (memcmp(h->waits[k].tid, tid, TID) == 0) {
                waited[i] = true;
                count++;
                break;
            }
    }
    pthread_mutex_unlock(&h->w.mu);
    return count;
}

void rc_hold_settle(rc_hold *h, const uint8_t *trace_ids, size_t n)
{
    if (n == 0 || atomic_load(&h->waiting_recs) == 0) return;
    pthread_mutex_lock(&h->w.mu);
    settle_locked(h, trace_ids, n, NO_ID);
    rc_worker_wake(&h->w);
    pthread_mutex_unlock(&h->w.mu);
}

rc_status rc_hold_settle_noted(rc_hold *h, const uint8_t *trace_ids, size_t n, const void *note,
                               size_t note_len, rc_error *err)
{
    if (n == 0) return RC_OK;
    if (h->o.durability == RC_QUEUE_MEMORY) {
        rc_hold_settle(h, trace_ids, n);
        return RC_OK;
    }
    rc_buf rec = RC_BUF_INIT;
    unsigned char hdr[HDR_BYTES] = {0};
    put_u32(hdr, MAGIC_NOTE);
    put_i64(hdr + 8, wall_ms());
    rc_buf_append(&rec, hdr, HDR_BYTES);
    rc_buf_append(&rec, note, note_len);
    pthread_mutex_lock(&h->w.mu);
    bool room = reserve_index(h, 0);
    pthread_mutex_unlock(&h->w.mu);
    uint64_t id = NO_ID;
    rc_status st = RC_ENOMEM;
    if (rec.failed || !room)
        rc_error_set(err, "%s: memory limit reached writing a note", h->name);
    else
        st = rc_queue_append_ids(h->q, &(rc_queue_chunk){rec.data, rec.len, 0}, 1, &id, err);
    rc_buf_free(&rec);
    pthread_mutex_lock(&h->w.mu);
    if (st != RC_OK) {
        if (room) {
            forget_refused(h, id);
            unreserve_index(h, 0);
        }
        pthread_mutex_unlock(&h->w.mu);
        return st == RC_ETOOBIG ? RC_EBUSY : st;
    }
    ring_reach(h, id); /* cannot fail: reserved */
    unreserve_index(h, 0);
    *slot_of(h, id) = (slot){0, NO_ID, 0, 0, 0, S_NOTE, 0};
    settle_locked(h, trace_ids, n, id);
    pop_head(h);
    rc_worker_wake(&h->w);
    pthread_mutex_unlock(&h->w.mu);
    return RC_OK;
}

/* --- open and close ---------------------------------------------------------------- */

/* What recovery learns in its first pass: span records, to index once the
 * notes have been replayed. */
typedef struct recovered {
    uint64_t id;
    int64_t written_ms;
    uint32_t n_spans, n_traces;
    size_t traces_at; /* offset into the recovery's trace buffer */
} recovered;

typedef struct recovery {
    rc_hold *h;
    recovered *recs;
    size_t n, cap;
    rc_buf traces;
    uint64_t notes, bad;
    bool oom;
} recovery;

static bool recover_one(void *arg, uint64_t id, const char *data, size_t len, uint32_t weight)
{
    recovery *r = arg;
    rc_hold *h = r->h;
    rec_view v;
    if (!ring_reach(h, id)) {
        r->oom = true;
        return false;
    }
    if (!parse_record(data, len, &v)) {
        /* The scan has the record taken: it is marked done after. */
        dead_letter(h, data, len, "unknown record header");
        *slot_of(h, id) = (slot){0, NO_ID, 0, 0, 0, S_BAD, 0};
        r->bad++;
        return true;
    }
    if (v.magic == MAGIC_NOTE) {
        /* Recovered notes cover nothing they can count: they stay until
         * everything older is done, and the newer records they settled
         * are settled again by the owner's is_settled below. */
        *slot_of(h, id) = (slot){0, NO_ID, 0, 0, 0, S_NOTE, 0};
        if (h->cb.replay_note) h->cb.replay_note(h->cb.arg, v.body, v.body_len, v.written_ms);
        r->notes++;
        return true;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        recovered *n = realloc(r->recs, cap * sizeof *n);
        if (!n) {
            r->oom = true;
            return false;
        }
        r->recs = n;
        r->cap = cap;
    }
    r->recs[r->n++] = (recovered){id, v.written_ms, v.n_spans, v.n_traces, r->traces.len};
    rc_buf_append(&r->traces, v.traces, (size_t)v.n_traces * TID);
    *slot_of(h, id) = (slot){0, NO_ID, 0, 0, 0, S_FREE, 0};
    return !r->traces.failed;
}

/* Indexes the recovered span records, now that the owner knows what the
 * notes said. */
static bool index_recovered(rc_hold *h, recovery *r)
{
    int64_t now_wall = wall_ms(), now = rc_now_ms();
    for (size_t i = 0; i < r->n; i++) {
        const recovered *rr = &r->recs[i];
        const uint8_t *traces = (const uint8_t *)r->traces.data + rr->traces_at;
        uint32_t open = 0;
        if (!reserve_index(h, rr->n_traces)) return false;
        rec_view v = {MAGIC_SPANS, rr->n_spans, 0, rr->written_ms, NULL, NULL, 0, NULL, 0};
        /* Keep only the traces not settled yet, packed at the front. */
        uint8_t *keep = (uint8_t *)r->traces.data + rr->traces_at;
        for (uint32_t k = 0; k < rr->n_traces; k++) {
            const uint8_t *t = traces + (size_t)k * TID;
            if (h->cb.is_settled && h->cb.is_settled(h->cb.arg, t)) continue;
            memmove(keep + (size_t)open * TID, t, TID);
            open++;
        }
        h->waits_reserved -= rr->n_traces - open;
        v.n_traces = open;
        v.traces = keep;
        /* What is left of the wait, and never more than a new record
         * gets: a record written "in the future" (the wall clock has been
         * set back since) would otherwise wait that much longer, and hold
         * up the deadlines of every record behind it. */
        int64_t wait = (int64_t)h->o.wait_ms, left = rr->written_ms + wait - now_wall;
        if (left > wait) left = wait;
        register_record(h, rr->id, &v, now + (left > 0 ? left : 0), 0);
    }
    return true;
}

/* Records the scan could not read (it skips them and logs why) are in
 * the queue with traces the hold does not know: nothing would settle
 * them, and their FREE slots would stop the ring's head for good. They go
 * as soon as they can be read, as records whose wait ran out; one the
 * queue dropped as corrupt is forgotten when its take says it is gone.
 * Under mu. */
static bool index_unread(rc_hold *h, uint64_t count)
{
    if (count > h->end && !ring_reach(h, count - 1)) return false;
    for (uint64_t id = h->base; id < count; id++) {
        slot *s = slot_of(h, id);
        if (s->state != S_FREE) continue;
        *s = (slot){rc_now_ms(), NO_ID, 0, 0, 0, S_WAITING, 0};
        atomic_fetch_add(&h->waiting_recs, 1);
        if (id < h->scan_from) h->scan_from = id;
        make_ready(h, id, RC_HOLD_TIMEOUT, false);
    }
    return true;
}

static rc_status recover(rc_hold *h, rc_error *err)
{
    recovery r = {h, NULL, 0, 0, RC_BUF_INIT, 0, 0, false};
    h->base = h->end = h->scan_from = 0;
    /* A queue just opened numbers its records from 0 (as base assumes). */
    uint64_t count = rc_queue_records(h->q);
    rc_queue_scan(h->q, recover_one, &r);
    pthread_mutex_lock(&h->w.mu);
    for (uint64_t id = h->base; id < h->end; id++)
        if (slot_of(h, id)->state == S_BAD) {
            rc_queue_done_id(h->q, id);
            slot_of(h, id)->state = S_DONE;
        }
    bool ok = !r.oom && index_recovered(h, &r) && index_unread(h, count);
    pop_head(h);
    pthread_mutex_unlock(&h->w.mu);
    if (ok && (r.n || r.notes))
        rc_info(h->name,
                "%s: %" PRIu64 " held spans in %zu records wait again for their traces (%" PRIu64
                " notes replayed, %zu records settled already)",
                h->dir, (uint64_t)atomic_load(&h->spans), r.n, r.notes, h->ready_n);
    free(r.recs);
    rc_buf_free(&r.traces);
    if (!ok) {
        rc_error_set(err, "%s: out of memory indexing the held spans in %s", h->name, h->dir);
        return RC_ENOMEM;
    }
    return RC_OK;
}

static void hold_free(rc_hold *h)
{
    if (!h) return;
    for (uint64_t id = h->base; id < h->end; id++) {
        slot *s = slot_of(h, id);
        if (s->charged && s->state != S_DONE) rc_mem_release(s->charged);
    }
    rc_mem_release(h->index_bytes);
    free(h->ring);
    free(h->waits);
    free(h->ready);
    rc_queue_close(h->q);
    rc_worker_destroy(&h->w);
    free(h->name);
    free(h->dir);
    free(h->dead_letter_path);
    free(h);
}

rc_status rc_hold_open(const rc_hold_options *opts, const rc_hold_callbacks *cb, rc_hold **out,
                       rc_error *err)
{
    *out = NULL;
    rc_hold *h = calloc(1, sizeof *h);
    if (!h) {
        rc_error_set(err, "out of memory opening a span hold");
        return RC_ENOMEM;
    }
    rc_worker_init(&h->w);
    h->o = *opts;
    h->cb = *cb;
    h->name = strdup(opts->name ? opts->name : "hold");
    h->dir = strdup(opts->directory ? opts->directory : "");
    bool disk = opts->durability != RC_QUEUE_MEMORY;
    if (!h->name || !h->dir ||
        (disk && asprintf(&h->dead_letter_path, "%s.deadletter", h->dir) < 0)) {
        h->dead_letter_path = NULL;
        hold_free(h);
        rc_error_set(err, "out of memory opening a span hold");
        return RC_ENOMEM;
    }
    rc_queue_options qo = {h->name, h->dir, opts->max_bytes, 0, opts->durability, COPY_BYTES};
    rc_status st = rc_queue_open(&qo, &h->q, err);
    if (st == RC_OK) st = recover(h, err);
    if (st == RC_OK && !rc_worker_start(&h->w, hold_loop, h)) {
        rc_error_set(err, "%s: cannot start the hold's thread", h->name);
        st = RC_EIO;
    }
    if (st != RC_OK) {
        hold_free(h);
        return st;
    }
    *out = h;
    return RC_OK;
}

void rc_hold_close(rc_hold *h)
{
    if (!h) return;
    rc_worker_stop(&h->w);
    uint64_t left = atomic_load(&h->spans);
    if (left && h->o.durability == RC_QUEUE_MEMORY)
        rc_error_log(h->name,
                     "stopping with %" PRIu64 " held spans the next stage did not take: they "
                     "are lost (the hold is in memory)",
                     left);
    else if (left)
        rc_info(h->name, "%" PRIu64 " held spans stay in %s and wait again at the next start", left,
                h->dir);
    hold_free(h);
}

bool rc_hold_durable(const rc_hold *h)
{
    return h->o.durability != RC_QUEUE_MEMORY;
}

uint64_t rc_hold_spans(const rc_hold *h)
{
    return atomic_load(&((rc_hold *)h)->spans);
}

uint64_t rc_hold_bytes(const rc_hold *h)
{
    return rc_queue_bytes(h->q);
}

uint64_t rc_hold_dead_letters(const rc_hold *h)
{
    return atomic_load(&((rc_hold *)h)->dead_letters);
}
