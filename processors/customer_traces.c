/*
 * customer_traces.c - the customer processor's trace map, roots cache and
 * notes (see customer_traces.h).
 *
 * Records. A record is one distinct set of trace facts with its strings
 * packed after it, in a hash table of its own, reference-counted by the
 * entries that point at it. Merging a span into a trace builds the merged
 * view (borrowing strings from the old record and the span) and interns it;
 * the old record is released after, so borrowed strings stay valid while
 * the new one is made.
 *
 * Entries. A trace id, its record, its expiry and two flags, in a chained
 * hash table and a list in update order (oldest first), which is both the
 * expiry order and the eviction order.
 *
 * Memory is counted as the heap really takes it (glibc: 16-byte granules
 * and an 8-byte header), so the byte bound and gauge track the heap.
 */
#include "processors/customer_traces.h"

#include "core/memlimit.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ROOTS_SLOTS (1u << 16)

enum { F_ROOT_SEEN = 1, F_CUSTOMER_FROM_ROOT = 2 };

typedef struct frec frec;
struct frec {
    frec *next; /* hash chain */
    uint64_t hash;
    size_t refs, bytes;
    ct_facts f; /* strings point into data */
    char data[];
};

/* 56 bytes, 64 on the heap: the flags live in the low bits of the record
 * pointer (records are malloc'd, so 16-byte aligned) rather than in a byte
 * of their own that would cost a 16-byte granule per trace. */
typedef struct trace_ent trace_ent;
struct trace_ent {
    trace_ent *next;          /* hash chain */
    trace_ent *older, *newer; /* update order */
    uintptr_t rec_flags;      /* frec * | F_* */
    int64_t expires_ms;
    uint8_t id[CT_TRACE_ID_BYTES];
};

#define FLAG_MASK ((uintptr_t)3)

static frec *rec_of(const trace_ent *e)
{
    return (frec *)(e->rec_flags & ~FLAG_MASK);
}

static uint8_t flags_of(const trace_ent *e)
{
    return (uint8_t)(e->rec_flags & FLAG_MASK);
}

static void set_entry(trace_ent *e, frec *r, uint8_t flags)
{
    e->rec_flags = (uintptr_t)r | (flags & FLAG_MASK);
}

struct ct_map {
    ct_map_limits lim;
    trace_ent **buckets;
    size_t n_buckets, n_entries;
    trace_ent *oldest, *newest;
    frec **rbuckets;
    size_t n_rbuckets, n_recs;
    size_t bytes;
    size_t evicted;
};

static size_t heap_size(size_t n)
{
    return (n + 8 + 15) & ~(size_t)15;
}

#define ENTRY_BYTES heap_size(sizeof(trace_ent))

/* --- hashing and comparing facts ------------------------------------------------ */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_str(uint64_t h, const char *s, size_t n)
{
    return s ? hash_bytes(h, s, n + 1) : hash_bytes(h, "", 1);
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

static uint64_t hash_facts(const ct_facts *f)
{
    const ct_customer *c = &f->c;
    uint64_t h = hash_bytes(14695981039346656037ull, c->id ? c->id : "", c->id_len);
    h = hash_bytes(h, &c->have, sizeof c->have);
    h = hash_str(h, c->name, slen(c->name));
    h = hash_str(h, c->email, slen(c->email));
    h = hash_str(h, c->budget_duration, slen(c->budget_duration));
    h = hash_str(h, c->period_start, slen(c->period_start));
    h = hash_str(h, c->period_end, slen(c->period_end));
    double nums[3] = {c->period_budget, c->total_budget, c->markup};
    h = hash_bytes(h, nums, sizeof nums);
    h = hash_bytes(h, &c->rate_limit, sizeof c->rate_limit);
    for (int k = 0; k < CT_N_IDS; k++)
        h = hash_str(h, f->ids[k], f->id_lens[k]);
    return h;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    return (!a && !b) || (a && b && an == bn && memcmp(a, b, an) == 0);
}

static bool same_customer(const ct_customer *a, const ct_customer *b)
{
    return a->have == b->have && same_bytes(a->id, a->id_len, b->id, b->id_len) &&
           same_str(a->name, b->name) && same_str(a->email, b->email) &&
           same_str(a->budget_duration, b->budget_duration) &&
           same_str(a->period_start, b->period_start) && same_str(a->period_end, b->period_end) &&
           a->period_budget == b->period_budget && a->total_budget == b->total_budget &&
           a->markup == b->markup && a->rate_limit == b->rate_limit;
}

static bool same_facts(const ct_facts *a, const ct_facts *b)
{
    if (!same_customer(&a->c, &b->c)) return false;
    for (int k = 0; k < CT_N_IDS; k++)
        if (!same_bytes(a->ids[k], a->id_lens[k], b->ids[k], b->id_lens[k])) return false;
    return true;
}

/* --- interned records ------------------------------------------------------------- */

static const char *pack(char *data, size_t *at, const char *s, size_t n)
{
    if (!s) return NULL;
    char *d = data + *at;
    memcpy(d, s, n);
    d[n] = 0;
    *at += n + 1;
    return d;
}

static size_t packed_len(const char *s, size_t n)
{
    return s ? n + 1 : 0;
}

static bool grow_rbuckets(ct_map *m)
{
    size_t n = m->n_rbuckets ? m->n_rbuckets * 2 : 256;
    frec **b = calloc(n, sizeof *b);
    if (!b) return false;
    for (size_t i = 0; i < m->n_rbuckets; i++)
        for (frec *r = m->rbuckets[i], *nx; r; r = nx) {
            nx = r->next;
            r->next = b[r->hash & (n - 1)];
            b[r->hash & (n - 1)] = r;
        }
    m->bytes +=
        heap_size(n * sizeof *b) - (m->n_rbuckets ? heap_size(m->n_rbuckets * sizeof *b) : 0);
    free(m->rbuckets);
    m->rbuckets = b;
    m->n_rbuckets = n;
    return true;
}

/* The record equal to f with one more reference, made when new; NULL when
 * the memory limiter or the heap refuses. */
static frec *intern(ct_map *m, const ct_facts *f)
{
    uint64_t h = hash_facts(f);
    if (m->n_rbuckets)
        for (frec *r = m->rbuckets[h & (m->n_rbuckets - 1)]; r; r = r->next)
            if (r->hash == h && same_facts(&r->f, f)) {
                r->refs++;
                return r;
            }
    if (m->n_recs >= m->n_rbuckets && !grow_rbuckets(m)) return NULL;
    const ct_customer *c = &f->c;
    size_t data = packed_len(c->id, c->id_len) + packed_len(c->name, slen(c->name)) +
                  packed_len(c->email, slen(c->email)) +
                  packed_len(c->period_start, slen(c->period_start)) +
                  packed_len(c->period_end, slen(c->period_end));
    for (int k = 0; k < CT_N_IDS; k++)
        data += packed_len(f->ids[k], f->id_lens[k]);
    size_t bytes = heap_size(sizeof(frec) + data);
    if (!rc_mem_try_charge(bytes)) return NULL;
    frec *r = malloc(sizeof(frec) + data);
    if (!r) {
        rc_mem_release(bytes);
        return NULL;
    }
    size_t at = 0;
    r->f = *f;
    ct_customer *rc = &r->f.c;
    rc->id = pack(r->data, &at, c->id, c->id_len);
    rc->name = pack(r->data, &at, c->name, slen(c->name));
    rc->email = pack(r->data, &at, c->email, slen(c->email));
    rc->period_start = pack(r->data, &at, c->period_start, slen(c->period_start));
    rc->period_end = pack(r->data, &at, c->period_end, slen(c->period_end));
    for (int k = 0; k < CT_N_IDS; k++)
        r->f.ids[k] = pack(r->data, &at, f->ids[k], f->id_lens[k]);
    r->hash = h;
    r->refs = 1;
    r->bytes = bytes;
    r->next = m->rbuckets[h & (m->n_rbuckets - 1)];
    m->rbuckets[h & (m->n_rbuckets - 1)] = r;
    m->n_recs++;
    m->bytes += bytes;
    return r;
}

static void unref_rec(ct_map *m, frec *r)
{
    if (--r->refs) return;
    frec **pp = &m->rbuckets[r->hash & (m->n_rbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    m->n_recs--;
    m->bytes -= r->bytes;
    rc_mem_release(r->bytes);
    free(r);
}

/* --- merging ----------------------------------------------------------------------- */

static bool same_id(const ct_customer *a, const ct_customer *b)
{
    return (a->have & CV_ID) && (b->have & CV_ID) && a->id_len == b->id_len &&
           memcmp(a->id, b->id, a->id_len) == 0;
}

/* Copies the fields of `from` named in `take` into `to`. */
static void take_params(ct_customer *to, const ct_customer *from, unsigned take)
{
    if (take & CV_NAME) to->name = from->name;
    if (take & CV_EMAIL) to->email = from->email;
    if (take & CV_BUDGET_DURATION) to->budget_duration = from->budget_duration;
    if (take & CV_PERIOD_START) to->period_start = from->period_start;
    if (take & CV_PERIOD_END) to->period_end = from->period_end;
    if (take & CV_PERIOD_BUDGET) to->period_budget = from->period_budget;
    if (take & CV_TOTAL_BUDGET) to->total_budget = from->total_budget;
    if (take & CV_MARKUP) to->markup = from->markup;
    if (take & CV_RATE_LIMIT) to->rate_limit = from->rate_limit;
    to->have |= take;
}

/* The trace's customer after a span named f->c (see the header for why the
 * root wins). Params without a customer id belong to no one and are left. */
static void merge_customer(ct_customer *out, uint8_t *flags, const ct_customer *f, bool is_root)
{
    if (!(f->have & CV_ID)) return;
    bool from_root = *flags & F_CUSTOMER_FROM_ROOT;
    if (!(out->have & CV_ID) || (!same_id(out, f) && is_root && !from_root)) {
        *out = *f;
        *flags = (uint8_t)((*flags & ~F_CUSTOMER_FROM_ROOT) | (is_root ? F_CUSTOMER_FROM_ROOT : 0));
        return;
    }
    if (!same_id(out, f)) return;
    take_params(out, f, is_root ? f->have & ~CV_ID : f->have & ~out->have);
    if (is_root) *flags |= F_CUSTOMER_FROM_ROOT;
}

static void merge_facts(ct_facts *out, uint8_t *flags, const ct_facts *f, bool is_root)
{
    merge_customer(&out->c, flags, &f->c, is_root);
    for (int k = 0; k < CT_N_IDS; k++)
        if (f->ids[k] && (!out->ids[k] || is_root)) {
            out->ids[k] = f->ids[k];
            out->id_lens[k] = f->id_lens[k];
        }
    if (is_root) *flags |= F_ROOT_SEEN;
}

/* --- the map ----------------------------------------------------------------------- */

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

static trace_ent **slot_of(ct_map *m, const uint8_t *id)
{
    trace_ent **pp = &m->buckets[trace_hash(id) & (m->n_buckets - 1)];
    while (*pp && memcmp((*pp)->id, id, CT_TRACE_ID_BYTES) != 0)
        pp = &(*pp)->next;
    return pp;
}

static trace_ent *find(ct_map *m, const uint8_t *id)
{
    return m->n_buckets ? *slot_of(m, id) : NULL;
}

static void unlink_order(ct_map *m, trace_ent *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        m->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        m->newest = e->older;
    e->older = e->newer = NULL;
}

/* Links e as the most recently updated, keeping the list in expiry order
 * (a replayed note may carry an earlier expiry than the newest's). */
static void link_by_expiry(ct_map *m, trace_ent *e)
{
    trace_ent *after = m->newest;
    while (after && after->expires_ms > e->expires_ms)
        after = after->older;
    e->older = after;
    e->newer = after ? after->newer : m->oldest;
    if (e->newer)
        e->newer->older = e;
    else
        m->newest = e;
    if (after)
        after->newer = e;
    else
        m->oldest = e;
}

static void remove_entry(ct_map *m, trace_ent *e)
{
    trace_ent **pp = slot_of(m, e->id);
    *pp = e->next;
    unlink_order(m, e);
    unref_rec(m, rec_of(e));
    m->n_entries--;
    m->bytes -= ENTRY_BYTES;
    rc_mem_release(ENTRY_BYTES);
    free(e);
}

static void trim(ct_map *m, int64_t now, size_t room)
{
    while (m->oldest && m->oldest->expires_ms <= now)
        remove_entry(m, m->oldest);
    while (m->oldest && (m->n_entries + room > m->lim.max_traces ||
                         m->bytes + room * ENTRY_BYTES > m->lim.max_bytes)) {
        remove_entry(m, m->oldest);
        m->evicted++;
    }
}

void ct_map_trim(ct_map *m, int64_t now)
{
    trim(m, now, 0);
}

size_t ct_map_take_evictions(ct_map *m)
{
    size_t n = m->evicted;
    m->evicted = 0;
    return n;
}

static bool grow_buckets(ct_map *m)
{
    size_t n = m->n_buckets ? m->n_buckets * 2 : 1024;
    trace_ent **b = calloc(n, sizeof *b);
    if (!b) return false;
    for (size_t i = 0; i < m->n_buckets; i++)
        for (trace_ent *e = m->buckets[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[trace_hash(e->id) & (n - 1)];
            b[trace_hash(e->id) & (n - 1)] = e;
        }
    m->bytes += heap_size(n * sizeof *b) - (m->n_buckets ? heap_size(m->n_buckets * sizeof *b) : 0);
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
    return true;
}

/* A new entry for trace id with record r (whose reference it takes over);
 * NULL, and r released, when it cannot be kept. */
static trace_ent *add_entry(ct_map *m, const uint8_t *id, frec *r, uint8_t flags, int64_t expires)
{
    /* Load factor at most 1; a failed growth only makes chains longer. */
    if (m->n_entries >= m->n_buckets && m->n_buckets < (size_t)1 << 30 && !grow_buckets(m) &&
        m->n_buckets == 0)
        goto refused;
    if (!rc_mem_try_charge(ENTRY_BYTES)) goto refused;
    trace_ent *e = calloc(1, sizeof *e);
    if (!e) {
        rc_mem_release(ENTRY_BYTES);
        goto refused;
    }
    memcpy(e->id, id, CT_TRACE_ID_BYTES);
    set_entry(e, r, flags);
    e->expires_ms = expires;
    *slot_of(m, id) = e;
    link_by_expiry(m, e);
    m->n_entries++;
    m->bytes += ENTRY_BYTES;
    return e;
refused:
    unref_rec(m, r);
    return NULL;
}

bool ct_map_merge(ct_map *m, const uint8_t *tid, const ct_facts *f, bool is_root, int64_t now)
{
    int64_t expires = now + (int64_t)m->lim.ttl_ms;
    trace_ent *e = find(m, tid);
    if (e && e->expires_ms <= now) { /* expired: as if unknown */
        remove_entry(m, e);
        e = NULL;
    }
    static const ct_facts none;
    const ct_facts *old = e ? &rec_of(e)->f : &none;
    uint8_t old_flags = e ? flags_of(e) : 0, flags = old_flags;
    ct_facts merged = *old;
    merge_facts(&merged, &flags, f, is_root);
    bool had_customer = old->c.have & CV_ID, has_customer = merged.c.have & CV_ID;
    bool settled = (!had_customer && has_customer) || (is_root && !(old_flags & F_ROOT_SEEN));
    if (!e && ct_facts_empty(&merged)) return settled; /* a bare root: the roots cache's job */
    if (!e) {
        if (m->lim.max_traces == 0) return settled;
        trim(m, now, 1);
        frec *r = intern(m, &merged);
        if (r) add_entry(m, tid, r, flags, expires);
        return settled;
    }
    frec *r = rec_of(e);
    if (!same_facts(&merged, old)) {
        frec *n = intern(m, &merged);
        if (n) { /* when refused the trace keeps what it had */
            unref_rec(m, r);
            r = n;
        }
    }
    set_entry(e, r, flags);
    if (expires > e->expires_ms) {
        e->expires_ms = expires;
        unlink_order(m, e);
        link_by_expiry(m, e);
    }
    return settled;
}

bool ct_map_find(ct_map *m, const uint8_t *tid, int64_t now, ct_trace *out)
{
    trace_ent *e = find(m, tid);
    if (!e || e->expires_ms <= now) return false;
    out->facts = &rec_of(e)->f;
    out->root_seen = flags_of(e) & F_ROOT_SEEN;
    return true;
}

size_t ct_map_entries(const ct_map *m)
{
    return m->n_entries;
}

size_t ct_map_bytes(const ct_map *m)
{
    return m->bytes;
}

ct_map *ct_map_new(const ct_map_limits *limits)
{
    ct_map *m = calloc(1, sizeof *m);
    if (m) m->lim = *limits;
    return m;
}

void ct_map_free(ct_map *m)
{
    if (!m) return;
    while (m->oldest)
        remove_entry(m, m->oldest);
    free(m->buckets);
    free(m->rbuckets);
    free(m);
}

/* --- roots seen --------------------------------------------------------------------- */

struct ct_roots {
    _Atomic uint64_t slot[ROOTS_SLOTS];
};

/* A fingerprint from the other bits of the trace id than the slot's, never
 * 0 (an empty slot). */
static uint64_t fingerprint(const uint8_t *tid)
{
    uint64_t a, b;
    memcpy(&a, tid, 8);
    memcpy(&b, tid + 8, 8);
    uint64_t h = (a ^ (b * 0xC2B2AE3D27D4EB4Full)) * 0x165667B19E3779F9ull;
    return h ? h : 1;
}

ct_roots *ct_roots_new(void)
{
    return calloc(1, sizeof(ct_roots));
}

void ct_roots_free(ct_roots *r)
{
    free(r);
}

void ct_roots_add(ct_roots *r, const uint8_t *tid)
{
    atomic_store_explicit(&r->slot[trace_hash(tid) & (ROOTS_SLOTS - 1)], fingerprint(tid),
                          memory_order_relaxed);
}

bool ct_roots_seen(const ct_roots *r, const uint8_t *tid)
{
    return atomic_load_explicit(&((ct_roots *)r)->slot[trace_hash(tid) & (ROOTS_SLOTS - 1)],
                                memory_order_relaxed) == fingerprint(tid);
}

/* --- notes --------------------------------------------------------------------------
 * An entry: the trace id, a flags byte (1: root seen), the customer's `have`
 * bits (u16), then each string as a u32 length (0xFFFFFFFF: absent) and its
 * bytes, in the order id, name, email, budget_duration, period_start,
 * period_end, thread, session, custom, trace group, then the three amounts
 * and the rate limit as 8 bytes each. Host byte order: a note is read back
 * only by the process that wrote it, or its successor on the same machine. */

#define ABSENT 0xFFFFFFFFu

static void note_str(rc_buf *b, const char *s, size_t n)
{
    uint32_t len = s ? (uint32_t)n : ABSENT;
    rc_buf_append(b, &len, 4);
    if (s) rc_buf_append(b, s, n);
}

void ct_note_add(rc_buf *note, const uint8_t *tid, const ct_facts *f, bool root_seen)
{
    const ct_customer *c = &f->c;
    uint8_t flags = root_seen ? 1 : 0;
    uint16_t have = (uint16_t)c->have;
    rc_buf_append(note, tid, CT_TRACE_ID_BYTES);
    rc_buf_append(note, &flags, 1);
    rc_buf_append(note, &have, 2);
    note_str(note, c->have & CV_ID ? c->id : NULL, c->id_len);
    note_str(note, c->name, slen(c->name));
    note_str(note, c->email, slen(c->email));
    note_str(note, c->budget_duration, slen(c->budget_duration));
    note_str(note, c->period_start, slen(c->period_start));
    note_str(note, c->period_end, slen(c->period_end));
    for (int k = 0; k < CT_N_IDS; k++)
        note_str(note, f->ids[k], f->id_lens[k]);
    double nums[3] = {c->period_budget, c->total_budget, c->markup};
    rc_buf_append(note, nums, sizeof nums);
    rc_buf_append(note, &c->rate_limit, sizeof c->rate_limit);
}

typedef struct reader {
    const char *p, *end;
    bool bad;
    /* NUL-terminated copies of the strings, for a ct_facts to point at */
    char *strs[6 + CT_N_IDS];
    int n_strs;
} reader;

static void take(reader *r, void *out, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
}

static const char *take_str(reader *r, size_t *n)
{
    uint32_t len;
    take(r, &len, 4);
    *n = 0;
    if (r->bad || len == ABSENT) return NULL;
    if ((size_t)(r->end - r->p) < len || r->n_strs == (int)(sizeof r->strs / sizeof *r->strs)) {
        r->bad = true;
        return NULL;
    }
    char *s = malloc((size_t)len + 1);
    if (!s) {
        r->bad = true;
        return NULL;
    }
    memcpy(s, r->p, len);
    s[len] = 0;
    r->p += len;
    r->strs[r->n_strs++] = s;
    *n = len;
    return s;
}

static void free_strs(reader *r)
{
    for (int i = 0; i < r->n_strs; i++)
        free(r->strs[i]);
    r->n_strs = 0;
}

/* budget_duration must point at a static literal (records do not copy it). */
static const char *static_duration(const char *s)
{
    static const char *const known[] = {"daily", "weekly", "monthly", "yearly"};
    for (size_t i = 0; s && i < sizeof known / sizeof *known; i++)
        if (strcmp(s, known[i]) == 0) return known[i];
    return NULL;
}

bool ct_note_each(const void *note, size_t len,
                  void (*fn)(void *arg, const uint8_t *tid, const ct_facts *f, bool root_seen),
                  void *arg)
{
    reader r = {note, (const char *)note + len, false, {0}, 0};
    while (r.p < r.end) {
        uint8_t tid[CT_TRACE_ID_BYTES], flags;
        uint16_t have;
        ct_facts f = {0};
        ct_customer *c = &f.c;
        size_t n;
        take(&r, tid, sizeof tid);
        take(&r, &flags, 1);
        take(&r, &have, 2);
        c->have = have;
        c->id = take_str(&r, &c->id_len);
        c->name = take_str(&r, &n);
        c->email = take_str(&r, &n);
        c->budget_duration = static_duration(take_str(&r, &n));
        c->period_start = take_str(&r, &n);
        c->period_end = take_str(&r, &n);
        for (int k = 0; k < CT_N_IDS; k++)
            f.ids[k] = take_str(&r, &f.id_lens[k]);
        double nums[3];
        take(&r, nums, sizeof nums);
        take(&r, &c->rate_limit, sizeof c->rate_limit);
        c->period_budget = nums[0];
        c->total_budget = nums[1];
        c->markup = nums[2];
        /* A field is had only with its value: a note never makes a
         * record point at nothing. */
        if (!c->id) c->have &= ~(unsigned)CV_ID;
        if (!c->name) c->have &= ~(unsigned)CV_NAME;
        if (!c->email) c->have &= ~(unsigned)CV_EMAIL;
        if (!c->budget_duration) c->have &= ~(unsigned)CV_BUDGET_DURATION;
        if (!c->period_start) c->have &= ~(unsigned)CV_PERIOD_START;
        if (!c->period_end) c->have &= ~(unsigned)CV_PERIOD_END;
        if (!r.bad) fn(arg, tid, &f, flags & 1);
        free_strs(&r);
        if (r.bad) return false;
    }
    return true;
}
