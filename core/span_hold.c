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
 *   traces   an open-addressing table with a slot per trace that records
 *            wait for, each heading a list (in record order) of nodes, one
 *            per record waiting for it. Settling a trace walks its list and
 *            counts its records down. A record that leaves unsettled (its
 *            deadline, the bound) is the oldest on each of its traces'
 *            lists - records leave in order unless all their traces are
 *            settled - so it is popped from their heads.
 *   ready    a deque of records to release now, with their reason:
 *            settled ones in settling order, and ones whose release failed
 *            (put back at the front, so order is kept across retries).
 *
 * Everything above is under mu. The queue has its own lock; the hold never
 * holds mu across a queue call that writes or reads (appends, takes), and
 * the release callback runs with no lock held. Two release threads take
 * turns: while one waits for the next stage (an exporter's fsync), the
 * other decodes the next batch. Each hands the owner a batch of up to
 * RELEASE_SPANS spans from records released for the same reason, so a
 * durable next stage syncs once per batch, not once per record.
 *
 * Record format (little-endian), the queue's payload:
 *   u32 magic       "RCH1" spans, "RCN1" note
 *   u32 n_spans     0 for a note
 *   i64 written     wall-clock ms when the record was written
 *   u32 n_traces    distinct trace ids the spans wait for (0 for a note)
 *   u32 meta_len    receiver\0transport\0peer\0 then, when the request had a
 *                   tenant, tenant\0customer\0environment\0 (0 for a note)
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
 *   - record id is on trace T's list iff it is WAITING or TAKEN and T is
 *     one of its traces not yet settled; unsettled counts them;
 *   - a slot is in `ready` iff its state is READY;
 *   - scan_from <= the id of every WAITING record;
 *   - n_spans (the gauge) is the sum over records not done.
 */
#include "core/span_hold.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/memlimit.h"

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
#define META_FIELDS 6      /* rc_request_meta's strings, tenant's included */
#define RELEASERS 2        /* release threads, and the most a hold may have */
#define RELEASE_RECORDS 64 /* records handed to the owner at once, at most */
#define RELEASE_SPANS 8192 /* and spans; and bytes: see release_bytes */
#define NO_NODE UINT32_MAX
#define BUF_MAX_KEPT (16u << 20) /* larger put buffers are not kept */
#define RECOVER_HEAD (64u << 10) /* what recovery reads of a record first */

enum { S_FREE, S_WAITING, S_READY, S_TAKEN, S_NOTE, S_DONE, S_BAD /* recovery only */ };

typedef struct slot {
    int64_t deadline_ms; /* monotonic */
    uint64_t cover;      /* records: the newer-than-them note that settled them, or NO_ID */
    uint32_t n_spans;
    uint32_t unsettled; /* records: traces not yet settled; notes: records it covers */
    uint32_t bytes;     /* the record's; a memory hold charges them to the limiter */
    uint8_t state;
    uint8_t reason; /* READY: why it goes */
} slot;

/* A trace that records wait for: the head and tail of its list of nodes,
 * and how many there are (0: an empty slot). */
typedef struct tslot {
    uint8_t tid[TID];
    uint32_t head, tail, count, pad_;
} tslot;

/* One record waiting for one trace. */
typedef struct wnode {
    uint64_t id;
    uint32_t next;
    uint32_t pad_;
} wnode;

struct rc_hold {
    rc_hold_options o;
    rc_hold_callbacks cb;
    char *name, *dir, *dead_letter_path;
    rc_queue *q;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t wake;
    pthread_t threads[RELEASERS];
    int n_threads;
    bool stopping;
    bool expire_all; /* rc_hold_release_all: every wait counts as run out */

    slot *ring;
    size_t ring_cap; /* a power of two */
    uint64_t base;   /* id of ring[base & (cap-1)], the oldest tracked */
    uint64_t end;    /* one past the highest id tracked */
    uint64_t scan_from;

    pthread_mutex_t pool_mu; /* guards bufs */
    rc_buf *bufs[4];
    size_t n_bufs;

    tslot *traces;
    size_t traces_cap; /* a power of two, or 0 */
    size_t traces_used;
    wnode *nodes;
    uint32_t nodes_cap, nodes_used, free_node;
    size_t pairs_reserved; /* trace slots and nodes for appends under way */
    size_t ring_reserved;  /* ring slots for appends under way */

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

/* --- the traces table and its lists ---------------------------------------------- */

static bool traces_grow(rc_hold *h, size_t need)
{
    size_t cap = h->traces_cap ? h->traces_cap : 1024;
    while (need > cap / 4 * 3)
        cap *= 2;
    if (cap == h->traces_cap) return true;
    tslot *n = grow_charged(h, h->traces_cap * sizeof *n, cap * sizeof *n);
    if (!n) return false;
    for (size_t i = 0; i < h->traces_cap; i++) {
        if (!h->traces[i].count) continue;
        size_t k = trace_hash(h->traces[i].tid) & (cap - 1);
        while (n[k].count)
            k = (k + 1) & (cap - 1);
        n[k] = h->traces[i];
    }
    free(h->traces);
    h->traces = n;
    h->traces_cap = cap;
    return true;
}

static bool nodes_grow(rc_hold *h, size_t need)
{
    if (need <= h->nodes_cap) return true;
    size_t cap = h->nodes_cap ? h->nodes_cap : 1024;
    while (need > cap)
        cap *= 2;
    if (cap >= NO_NODE) return false;
    wnode *n = grow_charged(h, h->nodes_cap * sizeof *n, cap * sizeof *n);
    if (!n) return false;
    if (h->nodes_cap) memcpy(n, h->nodes, h->nodes_cap * sizeof *n);
    /* The new nodes join the free list. */
    for (size_t i = h->nodes_cap; i < cap; i++)
        n[i].next = i + 1 < cap ? (uint32_t)(i + 1) : h->free_node;
    h->free_node = (uint32_t)h->nodes_cap;
    free(h->nodes);
    h->nodes = n;
    h->nodes_cap = (uint32_t)cap;
    return true;
}

/* Trace tid's slot, or NULL. */
static tslot *trace_find(rc_hold *h, const uint8_t *tid)
{
    if (!h->traces_used) return NULL;
    size_t mask = h->traces_cap - 1;
    for (size_t k = trace_hash(tid) & mask; h->traces[k].count; k = (k + 1) & mask)
        if (memcmp(h->traces[k].tid, tid, TID) == 0) return &h->traces[k];
    return NULL;
}

/* Removes an emptied slot, shifting back the slots after it that it
 * displaced (linear probing's deletion without tombstones). */
static void trace_delete(rc_hold *h, tslot *t)
{
    size_t mask = h->traces_cap - 1, k = (size_t)(t - h->traces);
    h->traces[k].count = 0;
    h->traces_used--;
    for (size_t j = (k + 1) & mask; h->traces[j].count; j = (j + 1) & mask) {
        size_t home = trace_hash(h->traces[j].tid) & mask;
        /* Slot j may move to the hole at k if its home is not in (k, j]. */
        bool stays = k <= j ? (home > k && home <= j) : (home > k || home <= j);
        if (stays) continue;
        h->traces[k] = h->traces[j];
        h->traces[j].count = 0;
        k = j;
    }
}

/* Puts record id at the end of trace tid's list; room was reserved. */
static void wait_add(rc_hold *h, const uint8_t *tid, uint64_t id)
{
    uint32_t n = h->free_node;
    h->free_node = h->nodes[n].next;
    h->nodes_used++;
    h->nodes[n] = (wnode){id, NO_NODE, 0};
    tslot *t = trace_find(h, tid);
    if (t) {
        h->nodes[t->tail].next = n;
        t->tail = n;
        t->count++;
        return;
    }
    size_t mask = h->traces_cap - 1, k = trace_hash(tid) & mask;
    while (h->traces[k].count)
        k = (k + 1) & mask;
    memcpy(h->traces[k].tid, tid, TID);
    h->traces[k].head = h->traces[k].tail = n;
    h->traces[k].count = 1;
    h->traces_used++;
}

static void node_free(rc_hold *h, uint32_t n)
{
    h->nodes[n].next = h->free_node;
    h->free_node = n;
    h->nodes_used--;
}

/* Takes record id off trace tid's list, if it is there: from the head,
 * where a record leaving unsettled is. Returns whether it was. */
static bool wait_remove(rc_hold *h, const uint8_t *tid, uint64_t id)
{
    tslot *t = trace_find(h, tid);
    if (!t) return false;
    uint32_t prev = NO_NODE, n = t->head;
    while (n != NO_NODE && h->nodes[n].id != id) {
        prev = n;
        n = h->nodes[n].next;
    }
    if (n == NO_NODE) return false;
    if (prev == NO_NODE)
        t->head = h->nodes[n].next;
    else
        h->nodes[prev].next = h->nodes[n].next;
    if (t->tail == n) t->tail = prev;
    node_free(h, n);
    if (--t->count == 0) trace_delete(h, t);
    return true;
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

/* Record id waits for one trace fewer; `note` (or NO_ID) is what settled
 * it. Under mu. */
static void settle_record(rc_hold *h, uint64_t id, uint64_t note)
{
    slot *s = slot_of(h, id);
    s->unsettled--;
    if (note != NO_ID && id > note && s->cover == NO_ID) {
        s->cover = note;
        slot_of(h, note)->unsettled++;
    }
    if (s->unsettled == 0 && s->state == S_WAITING) make_ready(h, id, RC_HOLD_SETTLED, false);
}

static void settle_locked(rc_hold *h, const uint8_t *ids, size_t n, uint64_t note)
{
    for (size_t i = 0; i < n; i++) {
        tslot *t = trace_find(h, ids + i * TID);
        if (!t) continue;
        for (uint32_t k = t->head, next; k != NO_NODE; k = next) {
            next = h->nodes[k].next;
            settle_record(h, h->nodes[k].id, note);
            node_free(h, k);
        }
        trace_delete(h, t);
    }
}

/* Takes a record that leaves before its traces are settled off their
 * lists. Under mu. */
static void forget_waits(rc_hold *h, uint64_t id, const rec_view *v)
{
    slot *s = slot_of(h, id);
    for (uint32_t i = 0; i < v->n_traces && s->unsettled; i++)
        if (wait_remove(h, v->traces + (size_t)i * TID, id)) s->unsettled--;
}

/* The same for a record whose bytes are gone (the queue dropped it as
 * corrupt, or it is not a span record): its traces are unknown, so every
 * list is walked for it, on this rare path only. A node left behind would
 * count down whichever record reuses its id's slot. Under mu. */
static void forget_waits_unread(rc_hold *h, uint64_t id)
{
    slot *s = slot_of(h, id);
    for (size_t k = 0; k < h->traces_cap && s->unsettled;) {
        tslot *t = &h->traces[k];
        uint8_t tid[TID];
        bool found = false;
        for (uint32_t n = t->count ? t->head : NO_NODE; n != NO_NODE; n = h->nodes[n].next)
            if (h->nodes[n].id == id) found = true;
        if (!found) {
            k++;
            continue;
        }
        memcpy(tid, t->tid, TID);
        wait_remove(h, tid, id); /* may shift another slot into k: look again */
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
    if (h->o.durability == RC_QUEUE_MEMORY) rc_mem_release(s->bytes);
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
    const char *fields[META_FIELDS] = {"", "", ""};
    for (int i = 0; i < META_FIELDS && m < end; i++) {
        const char *z = memchr(m, '\0', (size_t)(end - m));
        if (!z) break;
        fields[i] = i < 3 || *m ? m : NULL; /* a tenant field: "" is none */
        m = z + 1;
    }
    rc_request_meta meta = {fields[0], fields[1], fields[2], 0,
                            NULL,      fields[3], fields[4], fields[5]};
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

/* Records taken together, to be offered to the owner as one batch. They
 * are read (rc_queue_read), not taken from the queue: the index is what
 * says they are being released, and they are retired by id once the owner
 * has them. */
typedef struct taken {
    uint64_t id[RELEASE_RECORDS];
    bool loaded[RELEASE_RECORDS]; /* in the batch */
    bool gone[RELEASE_RECORDS];   /* left for good (delivered, dead letter, corrupt) */
    size_t n;
    rc_hold_reason why;
    rc_buf read; /* the release thread's own, reused for every record */
} taken;

/* Reads, unlinks and decodes record i of t into batch b; marks it gone when
 * it can never be delivered. Returns RC_ENOMEM when it cannot be decoded
 * now, RC_EIO when it cannot be read now. No lock held. */
static rc_status load_record(rc_hold *h, taken *t, size_t i, rc_batch *b)
{
    uint64_t id = t->id[i];
    rc_status st = rc_queue_read(h->q, id, &t->read);
    if (st == RC_EIO || st == RC_ENOMEM) return st;
    rec_view v;
    bool parsed =
        st == RC_OK && parse_record(t->read.data, t->read.len, &v) && v.magic == MAGIC_SPANS;
    /* Whatever happens next the record no longer waits. */
    pthread_mutex_lock(&h->mu);
    if (parsed)
        forget_waits(h, id, &v);
    else
        forget_waits_unread(h, id);
    pthread_mutex_unlock(&h->mu);
    if (st != RC_OK) { /* RC_EINVAL: dropped by the queue as corrupt (it logged it) */
        if (st == RC_EBUSY)
            rc_warn(h->name, "held record %" PRIu64 " was not waiting in the queue", id);
        t->gone[i] = true;
        return RC_OK;
    }
    rc_error err = {{0}};
    rc_batch *one = parsed ? decode_record(&v, &st, &err) : NULL;
    if (!parsed || (!one && st == RC_EINVAL)) {
        dead_letter(h, t->read.data, t->read.len, parsed ? err.msg : "unknown record header");
        rc_queue_done_id(h->q, id);
        t->gone[i] = true;
        return RC_OK;
    }
    bool moved = one && rc_batch_move(b, one);
    rc_batch_free(one);
    if (!moved) return RC_ENOMEM;
    t->loaded[i] = true;
    return RC_OK;
}

/* Offers the records of t (TAKEN, chosen by pick) to the owner as one
 * batch; sets gone[] for those that left for good. Returns whether the
 * others were kept (to be offered again) because the owner or the disk
 * refused them. No lock held. */
static bool release_taken(rc_hold *h, taken *t)
{
    rc_batch *b = rc_batch_new();
    rc_status st = b ? RC_OK : RC_ENOMEM;
    for (size_t i = 0; i < t->n; i++)
        t->loaded[i] = t->gone[i] = false;
    for (size_t i = 0; i < t->n && st == RC_OK; i++)
        st = load_record(h, t, i, b);
    /* Memory ran short part of the way: what was loaded goes now and the
     * rest is offered again, with no back-off (nothing was refused). */
    bool partial = st == RC_ENOMEM && b && b->n_spans > 0;
    if (partial) st = RC_OK;
    rc_error err = {{0}};
    if (st == RC_OK && b->n_spans)
        st = h->cb.release(h->cb.arg, b, t->why, &err);
    else
        rc_batch_free(b);
    for (size_t i = 0; i < t->n && st == RC_OK; i++)
        if (t->loaded[i]) {
            rc_queue_done_id(h->q, t->id[i]);
            t->gone[i] = true;
        }
    if (st != RC_OK)
        rc_debug(h->name, "held spans could not go on yet (%s); retrying",
                 err.msg[0] ? err.msg : "out of memory or a failed read");
    return st != RC_OK;
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

/* Whether the hold is past nine tenths of its bound, not counting `going`
 * bytes of records already taken to go. On disk a segment's bytes come back
 * only when all of its records are done, so releasing by the bound frees
 * about a segment (max_bytes / 4) at a time. */
static bool over_bound(rc_hold *h, uint64_t going)
{
    uint64_t held = rc_queue_bytes(h->q);
    return held > going && held - going > h->o.max_bytes / 10 * 9;
}

/* Why the first waiting record would go now, or false (then *wake_at is
 * lowered to its deadline). Under mu. */
static bool due(rc_hold *h, uint64_t id, int64_t now, uint64_t going, int64_t *wake_at,
                rc_hold_reason *why)
{
    slot *s = slot_of(h, id);
    if (h->stopping)
        *why = RC_HOLD_SHUTDOWN;
    else if (s->deadline_ms <= now || h->expire_all)
        *why = RC_HOLD_TIMEOUT;
    else if (over_bound(h, going))
        *why = RC_HOLD_BOUND;
    else {
        if (s->deadline_ms < *wake_at) *wake_at = s->deadline_ms;
        return false;
    }
    return true;
}

/* How many record bytes one release takes at most: decoded, a batch takes
 * two to three times that of the in-flight budget, and two threads may
 * hold one each while receivers need the rest. */
static uint64_t release_bytes(void)
{
    uint64_t b = rc_mem_limit() / 32;
    return b < (256u << 10) ? 256u << 10 : b > (16u << 20) ? 16u << 20 : b;
}

typedef struct budget {
    uint32_t spans;
    uint64_t bytes, max_bytes;
} budget;

static bool room_left(const taken *t, const budget *b)
{
    return t->n < RELEASE_RECORDS && b->spans < RELEASE_SPANS && b->bytes < b->max_bytes;
}

static void take_one(rc_hold *h, taken *t, uint64_t id, budget *b)
{
    slot *s = slot_of(h, id);
    s->state = S_TAKEN;
    b->spans += s->n_spans;
    b->bytes += s->bytes;
    t->id[t->n] = id;
    t->gone[t->n] = false;
    t->n++;
}

/* Chooses records to release together, all for the same reason, and marks
 * them TAKEN: settled ones (and retries) first, then those whose wait ran
 * out, or the oldest past the bound. Sets t->n to 0 and lowers *wake_at
 * when there are none. Under mu. */
static void pick(rc_hold *h, int64_t now, int64_t *wake_at, taken *t)
{
    budget b = {0, 0, release_bytes()};
    t->n = 0;
    if (h->ready_n) {
        t->why = (rc_hold_reason)slot_of(h, h->ready[h->ready_head])->reason;
        while (h->ready_n && room_left(t, &b) &&
               slot_of(h, h->ready[h->ready_head])->reason == t->why)
            take_one(h, t, ready_pop(h), &b);
        return;
    }
    uint64_t id;
    rc_hold_reason why;
    while (room_left(t, &b) && (id = first_waiting(h)) != NO_ID &&
           due(h, id, now, b.bytes, wake_at, &why) && (t->n == 0 || why == t->why)) {
        t->why = why;
        atomic_fetch_sub(&h->waiting_recs, 1);
        take_one(h, t, id, &b);
    }
}

/* What follows a release: records gone are done; the others go back to
 * the front of the ready deque, in their order, after a back-off. */
static void after_release(rc_hold *h, const taken *t, bool kept, int64_t now)
{
    for (size_t i = t->n; i-- > 0;) /* backwards: make_ready puts each at the front */
        if (t->gone[i])
            record_done(h, t->id[i]);
        else
            make_ready(h, t->id[i], t->why, true);
    if (!kept) {
        h->backoff_ms = 0;
        return;
    }
    h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (h->backoff_ms > BACKOFF_MAX_MS) h->backoff_ms = BACKOFF_MAX_MS;
    h->retry_at_ms = now + h->backoff_ms;
}

/* Whether a release thread should stop now. Under mu. */
static bool loop_over(rc_hold *h, int64_t now, int64_t *drain_until)
{
    if (!h->stopping) return false;
    /* On disk what waits stays for the next start; a memory hold offers
     * everything to the next stage before it goes. */
    if (h->o.durability != RC_QUEUE_MEMORY) return true;
    if (*drain_until < 0) *drain_until = now + DRAIN_MS;
    return now >= *drain_until || atomic_load(&h->spans) == 0;
}

typedef struct releaser {
    rc_hold *h;
    bool ticks; /* the first thread also calls the owner's tick */
} releaser;

static void *hold_loop(void *arg)
{
    const releaser *me = arg;
    rc_hold *h = me->h;
    int64_t next_tick = rc_now_ms() + TICK_MS, drain_until = -1;
    taken *t = calloc(1, sizeof *t);
    pthread_mutex_lock(&h->mu);
    while (t) {
        int64_t now = rc_now_ms();
        if (now >= next_tick) { /* both threads wake for it; one ticks */
            next_tick = now + TICK_MS;
            if (me->ticks && h->cb.tick) {
                pthread_mutex_unlock(&h->mu);
                h->cb.tick(h->cb.arg);
                pthread_mutex_lock(&h->mu);
                continue;
            }
        }
        if (loop_over(h, now, &drain_until)) break;
        int64_t wake_at = next_tick;
        t->n = 0;
        if (now >= h->retry_at_ms) pick(h, now, &wake_at, t);
        if (t->n == 0) {
            if (now < h->retry_at_ms && h->retry_at_ms < wake_at) wake_at = h->retry_at_ms;
            if (drain_until >= 0 && drain_until < wake_at) wake_at = drain_until;
            rc_cond_wait_until(&h->wake, &h->mu, wake_at);
            continue;
        }
        pthread_mutex_unlock(&h->mu);
        bool kept = release_taken(h, t);
        pthread_mutex_lock(&h->mu);
        after_release(h, t, kept, rc_now_ms());
        pthread_cond_broadcast(&h->wake); /* the other thread may have been held off */
    }
    pthread_mutex_unlock(&h->mu);
    if (t) rc_buf_free(&t->read);
    free(t);
    free((void *)me);
    return NULL;
}

static bool start_threads(rc_hold *h)
{
    int n = h->o.threads ? (int)h->o.threads : RELEASERS;
    if (n > RELEASERS) n = RELEASERS;
    for (int i = 0; i < n; i++) {
        releaser *r = malloc(sizeof *r);
        if (!r) return false;
        *r = (releaser){h, i == 0};
        if (pthread_create(&h->threads[i], NULL, hold_loop, r) != 0) {
            free(r);
            return false;
        }
        h->n_threads++;
    }
    return true;
}

static void stop_threads(rc_hold *h)
{
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->n_threads; i++)
        pthread_join(h->threads[i], NULL);
    h->n_threads = 0;
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
    const char *f[META_FIELDS] = {m->receiver, m->transport,       m->peer,
                                  m->tenant,   m->tenant_customer, m->tenant_environment};
    int n = m->tenant ? META_FIELDS : 3;
    for (int i = 0; i < n; i++) {
        rc_buf_puts(b, f[i] ? f[i] : "");
        rc_buf_putc(b, '\0');
    }
}

/* The bytes a request came in as, when `spans` is that whole request and
 * nothing has changed it since (rc_request.wire): the hold can store them
 * as they are, sparing an encode of what was just decoded. */
static const rc_request *whole_unchanged_request(const rc_batch *spans)
{
    const rc_request *owner = spans->runs[0].owner;
    if (!owner->wire || spans->n_spans != owner->n_spans) return NULL;
    for (size_t i = 1; i < spans->n_runs; i++)
        if (spans->runs[i].owner != owner) return NULL;
    return owner;
}

/* Appends the spans' protobuf to out; or, when they are one request
 * unchanged, points *wire at its bytes instead: the queue writes them from
 * there (a request is a megabyte or so, not worth a copy). */
static bool encode_spans(const rc_batch *spans, rc_buf *out, rc_queue_chunk *wire)
{
    const rc_request *whole = whole_unchanged_request(spans);
    if (whole) {
        wire->more = whole->wire;
        wire->more_len = whole->wire_len;
        return true;
    }
    rc_arena *scratch = rc_arena_new_scratch(16 * 1024);
    otlp_export_request *view = scratch ? rc_batch_view(spans, scratch) : NULL;
    if (view) otlp_proto_encode(view, out);
    rc_arena_free(scratch);
    return view != NULL;
}

/* Builds the record of a put in out, and in wire->more when its body is
 * a request's bytes as received; false when out of memory. */
static bool build_record(const rc_batch *spans, rc_buf *out, rc_queue_chunk *wire,
                         uint32_t *n_traces)
{
    unsigned char hdr[HDR_BYTES] = {0};
    rc_buf_append(out, hdr, HDR_BYTES);
    size_t n = distinct_traces(spans, out);
    size_t meta_at = out->len;
    put_meta(out, &spans->runs[0].owner->meta);
    size_t meta_len = out->len - meta_at;
    if (!encode_spans(spans, out, wire) || n == SIZE_MAX || out->failed) return false;
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
    if (!traces_grow(h, h->traces_used + h->pairs_reserved + n) ||
        !nodes_grow(h, h->nodes_used + h->pairs_reserved + n) ||
        !ring_room(h, h->end - h->base + h->ring_reserved + 1))
        return false;
    h->pairs_reserved += n;
    h->ring_reserved++;
    return true;
}

static void unreserve_index(rc_hold *h, uint32_t n)
{
    h->pairs_reserved -= n;
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
                            uint32_t bytes)
{
    ring_reach(h, id); /* cannot fail: reserved */
    unreserve_index(h, v->n_traces);
    atomic_fetch_add(&h->spans, v->n_spans);
    slot *s = slot_of(h, id);
    *s = (slot){deadline, NO_ID, v->n_spans, v->n_traces, bytes, S_WAITING, 0};
    atomic_fetch_add(&h->waiting_recs, 1);
    for (uint32_t i = 0; i < v->n_traces; i++)
        wait_add(h, v->traces + (size_t)i * TID, id);
    if (id < h->scan_from) h->scan_from = id;
    if (v->n_traces == 0) make_ready(h, id, RC_HOLD_SETTLED, false);
    pthread_cond_signal(&h->wake);
}

/* Record buffers for puts, kept between calls: a request's record is a
 * megabyte or so, which malloc would map and page-fault in afresh each
 * time. */
static rc_buf *buf_get(rc_hold *h)
{
    rc_buf *b = NULL;
    pthread_mutex_lock(&h->pool_mu);
    if (h->n_bufs) b = h->bufs[--h->n_bufs];
    pthread_mutex_unlock(&h->pool_mu);
    return b ? b : calloc(1, sizeof *b);
}

static void buf_put(rc_hold *h, rc_buf *b)
{
    if (!b) return;
    rc_buf_reset(b);
    pthread_mutex_lock(&h->pool_mu);
    bool keep = b->cap <= BUF_MAX_KEPT && h->n_bufs < sizeof h->bufs / sizeof *h->bufs;
    if (keep) h->bufs[h->n_bufs++] = b;
    pthread_mutex_unlock(&h->pool_mu);
    if (!keep) {
        rc_buf_free(b);
        free(b);
    }
}

rc_status rc_hold_put(rc_hold *h, const rc_batch *spans, rc_error *err)
{
    if (spans->n_spans == 0) return RC_OK;
    rc_buf *recp = buf_get(h);
    uint32_t n_traces = 0, charged = 0;
    rc_status st = RC_OK;
    rc_queue_chunk c = {NULL, 0, (uint32_t)spans->n_spans, NULL, 0};
    if (!recp || !build_record(spans, recp, &c, &n_traces)) {
        rc_error_set(err, "%s: out of memory holding %zu spans", h->name, spans->n_spans);
        buf_put(h, recp);
        return RC_ENOMEM;
    }
    const rc_buf rec = *recp;
    c.data = rec.data;
    c.len = rec.len;
    size_t rec_len = rec.len + c.more_len;
    if (h->o.durability == RC_QUEUE_MEMORY) {
        if (!rc_mem_try_charge(rec_len)) {
            rc_error_set(err, "%s: memory limit reached holding %zu spans", h->name,
                         spans->n_spans);
            buf_put(h, recp);
            return RC_ENOMEM;
        }
        charged = (uint32_t)rec_len;
    }
    pthread_mutex_lock(&h->mu);
    bool room = reserve_index(h, n_traces);
    pthread_mutex_unlock(&h->mu);
    if (!room) {
        rc_error_set(err, "%s: memory limit reached indexing %zu held spans", h->name,
                     spans->n_spans);
        st = RC_ENOMEM;
        goto out;
    }
    uint64_t id = NO_ID;
    st = rc_queue_append_ids(h->q, &c, 1, &id, err);
    if (st == RC_ETOOBIG) st = RC_EBUSY; /* the caller passes the spans on at once */
    rec_view v;
    parse_record(rec.data, rec.len, &v);
    pthread_mutex_lock(&h->mu);
    if (st == RC_OK) {
        register_record(h, id, &v, rc_now_ms() + (int64_t)h->o.wait_ms, (uint32_t)rec_len);
        charged = 0; /* the slot holds the charge now */
    } else {
        forget_refused(h, id);
        unreserve_index(h, n_traces);
    }
    pthread_mutex_unlock(&h->mu);
out:
    if (charged) rc_mem_release(charged);
    buf_put(h, recp);
    return st;
}

/* --- settling, from the owner ---------------------------------------------------- */

size_t rc_hold_waiting(rc_hold *h, const uint8_t *trace_ids, size_t n, bool *waited)
{
    memset(waited, 0, n * sizeof *waited);
    if (atomic_load(&h->waiting_recs) == 0) return 0;
    size_t count = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < n; i++)
        if ((waited[i] = trace_find(h, trace_ids + i * TID) != NULL)) count++;
    pthread_mutex_unlock(&h->mu);
    return count;
}

void rc_hold_settle(rc_hold *h, const uint8_t *trace_ids, size_t n)
{
    if (n == 0 || atomic_load(&h->waiting_recs) == 0) return;
    pthread_mutex_lock(&h->mu);
    settle_locked(h, trace_ids, n, NO_ID);
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mu);
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
    pthread_mutex_lock(&h->mu);
    bool room = reserve_index(h, 0);
    pthread_mutex_unlock(&h->mu);
    uint64_t id = NO_ID;
    rc_status st = RC_ENOMEM;
    if (rec.failed || !room)
        rc_error_set(err, "%s: memory limit reached writing a note", h->name);
    else
        st = rc_queue_append_ids(h->q, &(rc_queue_chunk){.data = rec.data, .len = rec.len}, 1, &id,
                                 err);
    rc_buf_free(&rec);
    pthread_mutex_lock(&h->mu);
    if (st != RC_OK) {
        if (room) {
            forget_refused(h, id);
            unreserve_index(h, 0);
        }
        pthread_mutex_unlock(&h->mu);
        return st == RC_ETOOBIG ? RC_EBUSY : st;
    }
    ring_reach(h, id); /* cannot fail: reserved */
    unreserve_index(h, 0);
    *slot_of(h, id) = (slot){0, NO_ID, 0, 0, 0, S_NOTE, 0};
    settle_locked(h, trace_ids, n, id);
    pop_head(h);
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mu);
    return RC_OK;
}

/* --- open and close ---------------------------------------------------------------- */

/* What recovery learns in its first pass: span records, to index once the
 * notes have been replayed. */
typedef struct recovered {
    uint64_t id;
    int64_t written_ms;
    uint32_t n_spans, n_traces, len;
    size_t traces_at; /* offset into the recovery's trace buffer */
} recovered;

typedef struct recovery {
    rc_hold *h;
    recovered *recs;
    size_t n, cap;
    rc_buf traces;
    rc_buf whole; /* a record read whole */
    uint64_t notes, bad;
    bool oom;
} recovery;

/* Whether the first `have` bytes of a record of `len` are all recovery
 * needs: a span record's header, trace ids and metadata (not its spans). */
static bool head_suffices(const char *head, size_t have, size_t len)
{
    if (have == len) return true;
    if (have < HDR_BYTES) return false;
    const unsigned char *p = (const unsigned char *)head;
    uint64_t need = HDR_BYTES + (uint64_t)get_u32(p + 16) * TID + get_u32(p + 20);
    return get_u32(p) == MAGIC_SPANS && need <= have;
}

static bool recover_one(void *arg, uint64_t id, const char *head, size_t have, size_t len)
{
    recovery *r = arg;
    rc_hold *h = r->h;
    rec_view v;
    if (!ring_reach(h, id)) {
        r->oom = true;
        return false;
    }
    const char *data = head;
    if (!head_suffices(head, have, len)) { /* a note, or a long head: read it whole */
        if (rc_queue_read(h->q, id, &r->whole) != RC_OK) return true; /* see index_unread */
        data = r->whole.data;
        have = r->whole.len;
    }
    /* A span record's head is parsed as if it were all of it: only the
     * header, trace ids and metadata are looked at. */
    if (!parse_record(data, have, &v)) {
        /* Marked done after the scan. */
        dead_letter(h, data, have, "unknown record header");
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
    r->recs[r->n++] =
        (recovered){id, v.written_ms, v.n_spans, v.n_traces, (uint32_t)len, r->traces.len};
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
        h->pairs_reserved -= rr->n_traces - open;
        v.n_traces = open;
        v.traces = keep;
        /* What is left of the wait, and never more than a new record
         * gets: a record written "in the future" (the wall clock has been
         * set back since) would otherwise wait that much longer, and hold
         * up the deadlines of every record behind it. */
        int64_t wait = (int64_t)h->o.wait_ms, left = rr->written_ms + wait - now_wall;
        if (left > wait) left = wait;
        register_record(h, rr->id, &v, now + (left > 0 ? left : 0), rr->len);
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
    recovery r = {h, NULL, 0, 0, RC_BUF_INIT, RC_BUF_INIT, 0, 0, false};
    h->base = h->end = h->scan_from = 0;
    /* A queue just opened numbers its records from 0 (as base assumes). */
    uint64_t count = rc_queue_records(h->q);
    rc_queue_scan_heads(h->q, RECOVER_HEAD, recover_one, &r);
    pthread_mutex_lock(&h->mu);
    for (uint64_t id = h->base; id < h->end; id++)
        if (slot_of(h, id)->state == S_BAD) {
            rc_queue_done_id(h->q, id);
            slot_of(h, id)->state = S_DONE;
        }
    bool ok = !r.oom && index_recovered(h, &r) && index_unread(h, count);
    pop_head(h);
    pthread_mutex_unlock(&h->mu);
    if (ok && (r.n || r.notes))
        rc_info(h->name,
                "%s: %" PRIu64 " held spans in %zu records wait again for their traces (%" PRIu64
                " notes replayed, %zu records settled already)",
                h->dir, (uint64_t)atomic_load(&h->spans), r.n, r.notes, h->ready_n);
    free(r.recs);
    rc_buf_free(&r.traces);
    rc_buf_free(&r.whole);
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
        if (h->o.durability == RC_QUEUE_MEMORY && s->state != S_DONE && s->state != S_FREE)
            rc_mem_release(s->bytes);
    }
    rc_mem_release(h->index_bytes);
    free(h->ring);
    free(h->traces);
    free(h->nodes);
    free(h->ready);
    rc_queue_close(h->q);
    for (size_t i = 0; i < h->n_bufs; i++) {
        rc_buf_free(h->bufs[i]);
        free(h->bufs[i]);
    }
    pthread_mutex_destroy(&h->pool_mu);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->mu);
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
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->pool_mu, NULL);
    h->free_node = NO_NODE; /* the free list ends here */
    rc_cond_init_monotonic(&h->wake);
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
    if (st == RC_OK && !start_threads(h)) {
        stop_threads(h);
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
    stop_threads(h);
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

void rc_hold_release_all(rc_hold *h)
{
    pthread_mutex_lock(&h->mu);
    h->expire_all = true;
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->mu);
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
