/*
 * customer_traces.h - what the `customer` processor knows about each trace.
 *
 * A trace's attribution is named once, on one of its spans (the Respan and
 * Keywords AI SDKs, Traceloop association properties and gateways put it on
 * the workflow or root span), and applies to all of them. This module keeps,
 * per trace, what its spans have named so far:
 *   - the customer, with its customer_params;
 *   - the thread, session, custom and trace-group identifiers and the
 *     workflow's name;
 *   - whether its root span (no parent) has arrived.
 * A trace is *settled* once it has a customer or its root has arrived: no
 * span of it need wait any longer.
 *
 * Merging, when several spans name facts: the first customer named stays,
 * except that the root's replaces one a child named (the root is the
 * workflow: it speaks for the trace); a span naming the same customer adds
 * the params the record lacks; an identifier is the first named, the root's
 * winning likewise. Records are interned: traces with the same facts (the
 * traces of one thread of one customer) share one, so an entry is a trace
 * id, a pointer and list links.
 *
 * The map is bounded by max_traces and max_bytes and forgets the least
 * recently updated trace first; entries also expire ttl after their last
 * update. Its heap is charged to the memory limiter; what the limiter
 * refuses is simply not remembered. None of this is thread-safe: the
 * processor calls it under its lock.
 *
 * Roots seen. A root that names nothing would need an entry per trace of
 * all traffic (every HTTP server span is a root). Instead a small lossy
 * cache (64k slots of a 64-bit fingerprint, lock-free) remembers recent
 * roots, so that children exported after their root (another service, a
 * later SDK batch) do not wait for it in vain. A slot overwritten by a
 * later root only costs a child its early release.
 *
 * Notes. What settled a trace is written to the span hold before the spans
 * waiting for it leave (core/span_hold.h), encoded by ct_note_* below, so
 * that after a crash they are attributed as they would have been.
 */
#ifndef RC_CUSTOMER_TRACES_H
#define RC_CUSTOMER_TRACES_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CT_TRACE_ID_BYTES 16

/* Which optional fields a customer carries. */
enum {
    CV_NAME = 1 << 0,
    CV_EMAIL = 1 << 1,
    CV_BUDGET_DURATION = 1 << 2,
    CV_PERIOD_BUDGET = 1 << 3,
    CV_TOTAL_BUDGET = 1 << 4,
    CV_PERIOD_START = 1 << 5,
    CV_PERIOD_END = 1 << 6,
    CV_MARKUP = 1 << 7,
    CV_RATE_LIMIT = 1 << 8,
    CV_ID = 1 << 9,
};

/* A customer, validated. Borrowed: from a span's facts or a record.
 * Strings are NUL-terminated except id, which is id_len bytes (truncated
 * to 120 characters); budget_duration points at a static literal. */
typedef struct ct_customer {
    const char *id;
    size_t id_len;
    const char *name, *email, *budget_duration, *period_start, *period_end;
    double period_budget, total_budget, markup;
    int64_t rate_limit;
    unsigned have; /* CV_* */
} ct_customer;

/* The trace-level identifiers, in the order the processor writes them; the
 * workflow's name is one too (Traceloop names it on every span of the
 * workflow, other SDKs on some). */
enum { CT_THREAD, CT_SESSION, CT_CUSTOM, CT_TRACE_GROUP, CT_WORKFLOW, CT_N_IDS };

/* What a span (or a trace) names. Borrowed strings; ids[k] is NULL when
 * identifier k is not named, else id_lens[k] bytes (already truncated). */
typedef struct ct_facts {
    ct_customer c; /* c.have & CV_ID: names a customer */
    const char *ids[CT_N_IDS];
    size_t id_lens[CT_N_IDS];
} ct_facts;

static inline bool ct_facts_empty(const ct_facts *f)
{
    for (int k = 0; k < CT_N_IDS; k++)
        if (f->ids[k]) return false;
    return f->c.have == 0;
}

/* A trace's entry, as found: facts (valid until the map is next changed;
 * copy what you keep) and whether its root arrived. */
typedef struct ct_trace {
    const ct_facts *facts;
    bool root_seen;
} ct_trace;

typedef struct ct_map ct_map;

typedef struct ct_map_limits {
    uint64_t ttl_ms, max_traces, max_bytes;
} ct_map_limits;

ct_map *ct_map_new(const ct_map_limits *limits);
void ct_map_free(ct_map *m);

/* Merges what a span of trace `tid` names (f, possibly empty) and whether it
 * is the root, at time now (monotonic ms; a replayed note passes the time
 * it was written, so its entry expires when it would have). Returns true
 * when this settled the trace: it had no customer and now has one, or its
 * root had not arrived and now has. */
bool ct_map_merge(ct_map *m, const uint8_t *tid, const ct_facts *f, bool is_root, int64_t now);

/* The trace's live entry; false when the map does not know it. */
bool ct_map_find(ct_map *m, const uint8_t *tid, int64_t now, ct_trace *out);

/* Drops expired entries, then the least recently updated ones while a
 * bound is passed (merging trims too, before it adds a trace). */
void ct_map_trim(ct_map *m, int64_t now);
/* Traces dropped for a bound since the last call. */
size_t ct_map_take_evictions(ct_map *m);

size_t ct_map_entries(const ct_map *m);
size_t ct_map_bytes(const ct_map *m);

/* --- roots seen (thread-safe, lossy) ---------------------------------------- */

typedef struct ct_roots ct_roots;
ct_roots *ct_roots_new(void);
void ct_roots_free(ct_roots *r);
void ct_roots_add(ct_roots *r, const uint8_t *tid);
bool ct_roots_seen(const ct_roots *r, const uint8_t *tid);

/* --- notes -------------------------------------------------------------------- */

/* Appends one trace's entry (its facts, possibly empty, and whether its root
 * arrived) to a note. */
void ct_note_add(rc_buf *note, const uint8_t *tid, const ct_facts *f, bool root_seen);

/* Calls fn for each entry of a note; false when the note is malformed
 * (entries before the fault were delivered). Strings point into the note. */
bool ct_note_each(const void *note, size_t len,
                  void (*fn)(void *arg, const uint8_t *tid, const ct_facts *f, bool root_seen),
                  void *arg);

#endif
