/*
 * customer.c - the `customer` processor: who each span was made for.
 *
 * For every span it writes the canonical customer attributes
 *   respan.customer_params.customer_identifier, .name, .email,
 *   .budget_duration, .period_budget, .total_budget, .period_start,
 *   .period_end, .markup_percentage, .rate_limit
 * and, where the span (or its resource) carries them,
 *   respan.thread_identifier, respan.session_identifier,
 *   respan.custom_identifier, respan.trace_group_identifier.
 * Everything is read through the one convention scanner (llm/conventions.h),
 * span first, then resource. Originals stay unless drop_original is set.
 *
 * Where the customer comes from, first match wins:
 *   1. the span's own attributes, then its resource's (every convention);
 *   2. the trace: another span of the same trace that carried one, in this
 *      request or another (the trace map below);
 *   3. the request header named by from_header (e.g. x-customer-id), for
 *      every span of that request;
 *   4. default_customer.
 * An explicit attribute of the trace is more specific than a header, which
 * says who sent the request, and a header more specific than a default.
 *
 * Validation (an invalid field is dropped, counted in
 * respan_processor_customer_invalid_fields and logged at most every 10 s;
 * the span is kept): budget_duration in daily|weekly|monthly|yearly (any
 * case, written lower-case); period_start/end real YYYY-MM-DD dates;
 * period_budget, total_budget, markup_percentage, rate_limit numbers >= 0
 * (rate_limit an integer). Identifiers (customer, thread, session, custom,
 * trace group) are cut to 120 characters (code points, on a UTF-8
 * boundary), as Respan does.
 *
 * Trace-wide propagation. The Respan SDKs set the customer on one span but
 * it applies to the whole trace, whose spans may arrive in other requests.
 * A map trace id -> customer (TTL `ttl`, default 60 s, refreshed when a span
 * of the trace carries the customer again) remembers it. Customers are
 * interned (one record per distinct customer and params, reference-counted),
 * so an entry is a trace id, a pointer and list links: measured 7.3 MiB of
 * heap per 100k live traces of 1000 distinct customers
 * (test_customer_processor.c prints the figure). The map is bounded by
 * max_traces (default 100000) and max_memory_mib (default 32) and evicts
 * the least recently updated trace first; its heap is charged to the memory
 * limiter, and an entry the limiter refuses is simply not remembered.
 * Gauges: respan_processor_customer_trace_map_entries / _bytes.
 *
 * Waiting. A span whose customer is not known yet, by attribute, trace map
 * or header, may belong to a trace whose customer-carrying span is still on
 * its way (SDKs export children before their root). Such a span waits up to
 * propagation_wait (default 2 s, 0 disables waiting); it is then resolved
 * against the map and falls back to default_customer, or goes on without a
 * customer. Spans do not wait when a from_header value applies (the sender
 * said who it is for) or when propagation_wait is 0; they do wait when only
 * default_customer would apply, since a trace's own customer must beat the
 * default. What waits is the whole incoming batch (requests are never split,
 * so no other thread touches their arenas meanwhile); it goes on as soon as
 * every trace it waits for is known, at its deadline, or at shutdown, from
 * this processor's thread. Held requests stay charged to the memory limiter,
 * and at most max_held_mib (default 16) of them wait at once: beyond that a
 * batch is resolved at once (counted in respan_processor_customer_wait_
 * skipped_spans), so traffic without customers cannot fill the memory
 * budget with waiting spans. In front of an exporter that persists what it
 * accepts (rc_consumer.durable) nothing waits: a held span would have been
 * acknowledged while only in memory.
 */
#include "core/clock.h"
#include "core/component.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "llm/conventions.h"
#include "llm/span_attrs.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_IDENTIFIER_CHARS 120
#define TRACE_ID_BYTES 16
#define WARN_EVERY_MS 10000
#define RECHECK_MIN_MS 10

/* --- the canonical keys ------------------------------------------------------- */

#define K_CUSTOMER_ID "respan.customer_params.customer_identifier"
#define K_NAME "respan.customer_params.name"
#define K_EMAIL "respan.customer_params.email"
#define K_BUDGET_DURATION "respan.customer_params.budget_duration"
#define K_PERIOD_BUDGET "respan.customer_params.period_budget"
#define K_TOTAL_BUDGET "respan.customer_params.total_budget"
#define K_PERIOD_START "respan.customer_params.period_start"
#define K_PERIOD_END "respan.customer_params.period_end"
#define K_MARKUP "respan.customer_params.markup_percentage"
#define K_RATE_LIMIT "respan.customer_params.rate_limit"

/* The identifiers written for every span from its own facts. */
static const struct {
    rc_fact_id fact;
    const char *key;
} id_keys[] = {
    {RC_FACT_THREAD_ID, "respan.thread_identifier"},
    {RC_FACT_SESSION_ID, "respan.session_identifier"},
    {RC_FACT_CUSTOM_ID, "respan.custom_identifier"},
    {RC_FACT_TRACE_GROUP_ID, "respan.trace_group_identifier"},
};

/* --- a customer, validated ---------------------------------------------------- */

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

/* Borrowed view of a customer: from a span's facts, a map record or config.
 * Strings are NUL-terminated except id, which is id_len bytes (truncated). */
typedef struct cust_view {
    const char *id;
    size_t id_len;
    const char *name, *email, *budget_duration, *period_start, *period_end;
    double period_budget, total_budget, markup;
    int64_t rate_limit;
    unsigned have;
} cust_view;

/* Bytes of the first MAX_IDENTIFIER_CHARS code points of s. Decoded strings
 * are valid UTF-8, so counting non-continuation bytes counts code points. */
static size_t identifier_len(const char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++chars > MAX_IDENTIFIER_CHARS) return i;
    return n;
}

static const char *const durations[] = {"daily", "weekly", "monthly", "yearly"};

static const char *valid_duration(const char *s)
{
    for (size_t i = 0; i < sizeof durations / sizeof *durations; i++)
        if (strcasecmp(s, durations[i]) == 0) return durations[i];
    return NULL;
}

static bool valid_date(const char *s)
{
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) return false;
    if (s[10]) return false;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1) return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap);
}

/* --- the processor ------------------------------------------------------------- */

typedef struct cust_rec cust_rec;
typedef struct trace_ent trace_ent;
typedef struct held held;

/* Map and gauge figures, kept per processor id for the life of the process
 * because the metrics registry keeps gauge arguments that long. */
typedef struct gauge_stats {
    struct gauge_stats *next;
    char *id;
    atomic_size_t entries, bytes, held_spans;
} gauge_stats;

typedef struct customer_processor {
    char *id;
    /* config */
    const char *default_customer; /* = default_copy, truncated, or NULL */
    char *default_copy;
    char *from_header; /* lower-case */
    uint64_t ttl_ms, wait_ms, max_traces, max_bytes, max_held_bytes;
    bool drop_original;
    const rc_consumer *next;

    /* trace map, customers and held batches, under w.mu */
    rc_worker w;
    trace_ent **buckets;
    size_t n_buckets, n_entries;
    trace_ent *oldest, *newest; /* update order */
    cust_rec **cbuckets;
    size_t n_cbuckets, n_customers;
    size_t map_bytes;
    uint64_t generation; /* bumped when a trace gets its customer */
    held *held_first, *held_last;
    size_t held_bytes;

    gauge_stats *stats;
    rc_counter *invalid_fields, *wait_skipped, *waited_spans, *evictions, *failed_spans;
    rc_counter *by_source[5];
    /* rate-limited warning */
    _Atomic int64_t last_warn_ms;
    atomic_ulong suppressed_warns;
} customer_processor;

enum { SRC_ATTRIBUTE, SRC_TRACE, SRC_HEADER, SRC_DEFAULT, SRC_NONE };
static const char *const source_names[] = {"attribute", "trace", "header", "default", "none"};

static void warn_invalid(customer_processor *p, const char *field, const char *why)
{
    rc_counter_add(p->invalid_fields, 1);
    int64_t now = rc_now_ms(), last = atomic_load(&p->last_warn_ms);
    if (now - last < WARN_EVERY_MS ||
        !atomic_compare_exchange_strong(&p->last_warn_ms, &last, now)) {
        atomic_fetch_add(&p->suppressed_warns, 1);
        return;
    }
    unsigned long more = atomic_exchange(&p->suppressed_warns, 0);
    rc_warn(p->id, "dropped customer_params field %s: %s (%lu more since the last warning)", field,
            why, more);
}

/* Notes field `bit` of the span at hand as invalid: counted, logged. */
static void invalid_field(customer_processor *p, unsigned *invalid, unsigned bit, const char *field,
                          const char *why)
{
    *invalid |= bit;
    warn_invalid(p, field, why);
}

/* The customer fields as facts, with their bit and name. */
static const struct {
    rc_fact_id fact;
    unsigned bit;
    const char *name;
} fields[] = {
    {RC_FACT_CUSTOMER_ID, CV_ID, "customer_identifier"},
    {RC_FACT_CUSTOMER_NAME, CV_NAME, "name"},
    {RC_FACT_CUSTOMER_EMAIL, CV_EMAIL, "email"},
    {RC_FACT_BUDGET_DURATION, CV_BUDGET_DURATION, "budget_duration"},
    {RC_FACT_PERIOD_BUDGET, CV_PERIOD_BUDGET, "period_budget"},
    {RC_FACT_TOTAL_BUDGET, CV_TOTAL_BUDGET, "total_budget"},
    {RC_FACT_PERIOD_START, CV_PERIOD_START, "period_start"},
    {RC_FACT_PERIOD_END, CV_PERIOD_END, "period_end"},
    {RC_FACT_MARKUP_PERCENTAGE, CV_MARKUP, "markup_percentage"},
    {RC_FACT_RATE_LIMIT, CV_RATE_LIMIT, "rate_limit"},
};

static void validate_date(customer_processor *p, const rc_facts *f, rc_fact_id fact, unsigned bit,
                          const char *name, const char **out, cust_view *v, unsigned *invalid)
{
    const char *s = rc_facts_str(f, fact);
    if (!s) return;
    if (!valid_date(s)) {
        invalid_field(p, invalid, bit, name, "not a YYYY-MM-DD date");
        return;
    }
    *out = s;
    v->have |= bit;
}

static void validate_amount(customer_processor *p, const rc_facts *f, rc_fact_id fact, unsigned bit,
                            const char *name, double *out, cust_view *v, unsigned *invalid)
{
    if (!rc_facts_has(f, fact)) return;
    double d = f->f[fact].d;
    if (!(d >= 0 && isfinite(d))) {
        invalid_field(p, invalid, bit, name, "negative");
        return;
    }
    *out = d;
    v->have |= bit;
}

/* Builds the validated view of the customer fields in f, whether or not f
 * names a customer; returns whether it does. Invalid fields (also values
 * the scanner rejected as the wrong type) are left out, their CV_ bits set
 * in *invalid, counted and logged. */
static bool view_of_facts(customer_processor *p, const rc_facts *f, cust_view *v, unsigned *invalid)
{
    memset(v, 0, sizeof *v);
    *invalid = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if ((f->rejected & RC_FACT_BIT(fields[i].fact)) && !rc_facts_has(f, fields[i].fact))
            invalid_field(p, invalid, fields[i].bit, fields[i].name,
                          "not a value of the expected type");
    if ((v->name = rc_facts_str(f, RC_FACT_CUSTOMER_NAME))) v->have |= CV_NAME;
    if ((v->email = rc_facts_str(f, RC_FACT_CUSTOMER_EMAIL))) v->have |= CV_EMAIL;
    const char *s = rc_facts_str(f, RC_FACT_BUDGET_DURATION);
    if (s && (v->budget_duration = valid_duration(s)))
        v->have |= CV_BUDGET_DURATION;
    else if (s)
        invalid_field(p, invalid, CV_BUDGET_DURATION, "budget_duration",
                      "not daily, weekly, monthly or yearly");
    validate_date(p, f, RC_FACT_PERIOD_START, CV_PERIOD_START, "period_start", &v->period_start, v,
                  invalid);
    validate_date(p, f, RC_FACT_PERIOD_END, CV_PERIOD_END, "period_end", &v->period_end, v,
                  invalid);
    validate_amount(p, f, RC_FACT_PERIOD_BUDGET, CV_PERIOD_BUDGET, "period_budget",
                    &v->period_budget, v, invalid);
    validate_amount(p, f, RC_FACT_TOTAL_BUDGET, CV_TOTAL_BUDGET, "total_budget", &v->total_budget,
                    v, invalid);
    validate_amount(p, f, RC_FACT_MARKUP_PERCENTAGE, CV_MARKUP, "markup_percentage", &v->markup, v,
                    invalid);
    if (rc_facts_has(f, RC_FACT_RATE_LIMIT)) {
        if (f->f[RC_FACT_RATE_LIMIT].i >= 0) {
            v->rate_limit = f->f[RC_FACT_RATE_LIMIT].i;
            v->have |= CV_RATE_LIMIT;
        } else {
            invalid_field(p, invalid, CV_RATE_LIMIT, "rate_limit", "negative");
        }
    }
    if (!rc_facts_has(f, RC_FACT_CUSTOMER_ID)) return false;
    v->id = f->f[RC_FACT_CUSTOMER_ID].s;
    v->id_len = identifier_len(v->id, f->f[RC_FACT_CUSTOMER_ID].len);
    v->have |= CV_ID;
    return true;
}

/* --- interned customer records ----------------------------------------------------- */

struct cust_rec {
    cust_rec *next; /* hash chain */
    uint64_t hash;
    size_t refs;
    size_t bytes;
    cust_view v; /* strings point into data */
    char data[];
};

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    return hash_bytes(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

static uint64_t hash_view(const cust_view *v)
{
    uint64_t h = hash_bytes(14695981039346656037ull, v->id, v->id_len);
    h = hash_bytes(h, &v->have, sizeof v->have);
    h = hash_str(h, v->name);
    h = hash_str(h, v->email);
    h = hash_str(h, v->budget_duration);
    h = hash_str(h, v->period_start);
    h = hash_str(h, v->period_end);
    double nums[3] = {v->period_budget, v->total_budget, v->markup};
    h = hash_bytes(h, nums, sizeof nums);
    return hash_bytes(h, &v->rate_limit, sizeof v->rate_limit);
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_view(const cust_view *a, const cust_view *b)
{
    return a->id_len == b->id_len && memcmp(a->id, b->id, a->id_len) == 0 && a->have == b->have &&
           same_str(a->name, b->name) && same_str(a->email, b->email) &&
           same_str(a->budget_duration, b->budget_duration) &&
           same_str(a->period_start, b->period_start) && same_str(a->period_end, b->period_end) &&
           a->period_budget == b->period_budget && a->total_budget == b->total_budget &&
           a->markup == b->markup && a->rate_limit == b->rate_limit;
}

/* Copies string s into the record's data at *at. */
static const char *pack(char *data, size_t *at, const char *s, size_t n)
{
    if (!s) return NULL;
    char *d = data + *at;
    memcpy(d, s, n);
    d[n] = 0;
    *at += n + 1;
    return d;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Heap bytes an allocation of n really takes (glibc: 16-byte granules and
 * an 8-byte header), so the byte gauge tracks the heap, not sizeof. */
static size_t heap_size(size_t n)
{
    return (n + 8 + 15) & ~(size_t)15;
}

static bool grow_cbuckets(customer_processor *p)
{
    size_t n = p->n_cbuckets ? p->n_cbuckets * 2 : 256;
    cust_rec **b = calloc(n, sizeof *b);
    if (!b) return false;
    for (size_t i = 0; i < p->n_cbuckets; i++)
        for (cust_rec *c = p->cbuckets[i], *nx; c; c = nx) {
            nx = c->next;
            c->next = b[c->hash & (n - 1)];
            b[c->hash & (n - 1)] = c;
        }
    p->map_bytes +=
        heap_size(n * sizeof *b) - (p->n_cbuckets ? heap_size(p->n_cbuckets * sizeof *b) : 0);
    free(p->cbuckets);
    p->cbuckets = b;
    p->n_cbuckets = n;
    return true;
}

/* The record equal to v with one more reference, made when new; NULL when
 * the memory limiter or the heap refuses. Called under w.mu. */
static cust_rec *intern(customer_processor *p, const cust_view *v)
{
    uint64_t h = hash_view(v);
    if (p->n_cbuckets)
        for (cust_rec *c = p->cbuckets[h & (p->n_cbuckets - 1)]; c; c = c->next)
            if (c->hash == h && same_view(&c->v, v)) {
                c->refs++;
                return c;
            }
    if (p->n_customers >= p->n_cbuckets && !grow_cbuckets(p)) return NULL;
    size_t data = v->id_len + 1 + slen(v->name) + slen(v->email) + slen(v->period_start) +
                  slen(v->period_end);
    size_t bytes = heap_size(sizeof(cust_rec) + data);
    if (!rc_mem_try_charge(bytes)) return NULL;
    cust_rec *c = malloc(sizeof(cust_rec) + data);
    if (!c) {
        rc_mem_release(bytes);
        return NULL;
    }
    size_t at = 0;
    c->v = *v;
    c->v.id = pack(c->data, &at, v->id, v->id_len);
    c->v.name = pack(c->data, &at, v->name, v->name ? strlen(v->name) : 0);
    c->v.email = pack(c->data, &at, v->email, v->email ? strlen(v->email) : 0);
    c->v.period_start = pack(c->data, &at, v->period_start, v->period_start ? 10 : 0);
    c->v.period_end = pack(c->data, &at, v->period_end, v->period_end ? 10 : 0);
    /* budget_duration points at a static literal already */
    c->hash = h;
    c->refs = 1;
    c->bytes = bytes;
    c->next = p->cbuckets[h & (p->n_cbuckets - 1)];
    p->cbuckets[h & (p->n_cbuckets - 1)] = c;
    p->n_customers++;
    p->map_bytes += bytes;
    return c;
}

static void unref_customer(customer_processor *p, cust_rec *c)
{
    if (--c->refs) return;
    cust_rec **pp = &p->cbuckets[c->hash & (p->n_cbuckets - 1)];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    p->n_customers--;
    p->map_bytes -= c->bytes;
    rc_mem_release(c->bytes);
    free(c);
}

/* --- the trace map ------------------------------------------------------------------ */

struct trace_ent {
    trace_ent *next;          /* hash chain */
    trace_ent *older, *newer; /* update order */
    cust_rec *cust;
    int64_t expires_ms;
    uint8_t id[TRACE_ID_BYTES];
};

#define ENTRY_BYTES heap_size(sizeof(trace_ent))

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

static trace_ent **slot_of(customer_processor *p, const uint8_t *id)
{
    trace_ent **pp = &p->buckets[trace_hash(id) & (p->n_buckets - 1)];
    while (*pp && memcmp((*pp)->id, id, TRACE_ID_BYTES) != 0)
        pp = &(*pp)->next;
    return pp;
}

static trace_ent *find_trace(customer_processor *p, const uint8_t *id)
{
    return p->n_buckets ? *slot_of(p, id) : NULL;
}

static void unlink_order(customer_processor *p, trace_ent *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        p->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        p->newest = e->older;
    e->older = e->newer = NULL;
}

static void link_newest(customer_processor *p, trace_ent *e)
{
    e->older = p->newest;
    e->newer = NULL;
    if (p->newest)
        p->newest->newer = e;
    else
        p->oldest = e;
    p->newest = e;
}

static void remove_trace(customer_processor *p, trace_ent *e)
{
    trace_ent **pp = slot_of(p, e->id);
    *pp = e->next;
    unlink_order(p, e);
    unref_customer(p, e->cust);
    p->n_entries--;
    p->map_bytes -= ENTRY_BYTES;
    rc_mem_release(ENTRY_BYTES);
    free(e);
}

static void publish_stats(customer_processor *p)
{
    atomic_store(&p->stats->entries, p->n_entries);
    atomic_store(&p->stats->bytes, p->map_bytes);
}

/* Drops expired traces, then the least recently updated ones while a bound
 * is passed. Called under w.mu. */
static void trim_map(customer_processor *p, int64_t now, size_t room)
{
    while (p->oldest && p->oldest->expires_ms <= now)
        remove_trace(p, p->oldest);
    while (p->oldest && (p->n_entries + room > p->max_traces ||
                         p->map_bytes + room * ENTRY_BYTES > p->max_bytes)) {
        remove_trace(p, p->oldest);
        rc_counter_add(p->evictions, 1);
    }
}

static bool grow_buckets(customer_processor *p)
{
    size_t n = p->n_buckets ? p->n_buckets * 2 : 1024;
    trace_ent **b = calloc(n, sizeof *b);
    if (!b) return false;
    for (size_t i = 0; i < p->n_buckets; i++)
        for (trace_ent *e = p->buckets[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[trace_hash(e->id) & (n - 1)];
            b[trace_hash(e->id) & (n - 1)] = e;
        }
    p->map_bytes +=
        heap_size(n * sizeof *b) - (p->n_buckets ? heap_size(p->n_buckets * sizeof *b) : 0);
    free(p->buckets);
    p->buckets = b;
    p->n_buckets = n;
    return true;
}

/* Records that trace `id` belongs to v. The first customer of a trace
 * stays (a later span naming another keeps its own attribute but does not
 * re-assign the trace); the same customer with more params replaces the
 * record. Returns the trace's record, NULL when it could not be kept.
 * Called under w.mu. */
static cust_rec *remember(customer_processor *p, const uint8_t *id, const cust_view *v, int64_t now)
{
    trace_ent *e = find_trace(p, id);
    if (e) {
        const cust_view *old = &e->cust->v;
        if (old->id_len == v->id_len && memcmp(old->id, v->id, v->id_len) == 0 &&
            (v->have & ~old->have)) {
            cust_rec *c = intern(p, v);
            if (c) {
                unref_customer(p, e->cust);
                e->cust = c;
            }
        }
        e->expires_ms = now + (int64_t)p->ttl_ms;
        unlink_order(p, e);
        link_newest(p, e);
        return e->cust;
    }
    if (p->max_traces == 0) return NULL;
    trim_map(p, now, 1);
    /* Load factor at most 1; a failed growth only makes chains longer. */
    if (p->n_entries >= p->n_buckets && p->n_buckets < (size_t)1 << 30 && !grow_buckets(p) &&
        p->n_buckets == 0)
        return NULL;
    cust_rec *c = intern(p, v);
    if (!c) return NULL;
    if (!rc_mem_try_charge(ENTRY_BYTES)) {
        unref_customer(p, c);
        return NULL;
    }
    if (!(e = calloc(1, sizeof *e))) {
        rc_mem_release(ENTRY_BYTES);
        unref_customer(p, c);
        return NULL;
    }
    memcpy(e->id, id, TRACE_ID_BYTES);
    e->cust = c;
    e->expires_ms = now + (int64_t)p->ttl_ms;
    trace_ent **pp = slot_of(p, id);
    *pp = e;
    link_newest(p, e);
    p->n_entries++;
    p->map_bytes += ENTRY_BYTES;
    p->generation++;
    return c;
}

/* The live customer record of a trace, or NULL. Called under w.mu. */
static cust_rec *lookup(customer_processor *p, const uint8_t *id, int64_t now)
{
    trace_ent *e = find_trace(p, id);
    return e && e->expires_ms > now ? e->cust : NULL;
}

/* --- writing a customer onto a span ------------------------------------------------ */

typedef struct span_ctx {
    customer_processor *p;
    otlp_span *span;
    rc_attr_list attrs;
    const rc_facts *facts; /* the span's own, or NULL */
    uint64_t written;      /* facts written from the span's own attributes */
} span_ctx;

/* Writes s unless it is the value already under the canonical key. */
static void put_str(span_ctx *c, rc_fact_id fact, const char *key, const char *s, size_t n)
{
    const rc_fact *own = c->facts && rc_facts_has(c->facts, fact) ? &c->facts->f[fact] : NULL;
    if (own && own->s == s && own->len == n && !own->from_resource && strcmp(own->key, key) == 0)
        return; /* already canonical */
    rc_attr_set_strn(&c->attrs, key, s, n);
}

static void write_customer(span_ctx *c, const cust_view *v)
{
    put_str(c, RC_FACT_CUSTOMER_ID, K_CUSTOMER_ID, v->id, v->id_len);
    if (v->have & CV_NAME) put_str(c, RC_FACT_CUSTOMER_NAME, K_NAME, v->name, strlen(v->name));
    if (v->have & CV_EMAIL) put_str(c, RC_FACT_CUSTOMER_EMAIL, K_EMAIL, v->email, strlen(v->email));
    if (v->have & CV_BUDGET_DURATION)
        rc_attr_set_str_ref(&c->attrs, K_BUDGET_DURATION, v->budget_duration); /* static */
    if (v->have & CV_PERIOD_START)
        put_str(c, RC_FACT_PERIOD_START, K_PERIOD_START, v->period_start, 10);
    if (v->have & CV_PERIOD_END) put_str(c, RC_FACT_PERIOD_END, K_PERIOD_END, v->period_end, 10);
    if (v->have & CV_PERIOD_BUDGET)
        rc_attr_set_double(&c->attrs, K_PERIOD_BUDGET, v->period_budget);
    if (v->have & CV_TOTAL_BUDGET) rc_attr_set_double(&c->attrs, K_TOTAL_BUDGET, v->total_budget);
    if (v->have & CV_MARKUP) rc_attr_set_double(&c->attrs, K_MARKUP, v->markup);
    if (v->have & CV_RATE_LIMIT) rc_attr_set_int(&c->attrs, K_RATE_LIMIT, v->rate_limit);
}

/* Writes the params of `from` that v lacks, when both name the same
 * customer: a span naming its customer without params gets the params
 * another span of its trace gave. */
static void write_missing_params(span_ctx *c, const cust_view *v, const cust_view *from)
{
    if (from->id_len != v->id_len || memcmp(from->id, v->id, v->id_len) != 0) return;
    unsigned have = from->have & ~v->have;
    if (have & CV_NAME) rc_attr_set_str(&c->attrs, K_NAME, from->name);
    if (have & CV_EMAIL) rc_attr_set_str(&c->attrs, K_EMAIL, from->email);
    if (have & CV_BUDGET_DURATION)
        rc_attr_set_str_ref(&c->attrs, K_BUDGET_DURATION, from->budget_duration); /* static */
    if (have & CV_PERIOD_START) rc_attr_set_str(&c->attrs, K_PERIOD_START, from->period_start);
    if (have & CV_PERIOD_END) rc_attr_set_str(&c->attrs, K_PERIOD_END, from->period_end);
    if (have & CV_PERIOD_BUDGET)
        rc_attr_set_double(&c->attrs, K_PERIOD_BUDGET, from->period_budget);
    if (have & CV_TOTAL_BUDGET) rc_attr_set_double(&c->attrs, K_TOTAL_BUDGET, from->total_budget);
    if (have & CV_MARKUP) rc_attr_set_double(&c->attrs, K_MARKUP, from->markup);
    if (have & CV_RATE_LIMIT) rc_attr_set_int(&c->attrs, K_RATE_LIMIT, from->rate_limit);
}

/* The customer_params keys and the field each holds. */
static const struct {
    const char *key;
    unsigned bit;
} param_keys[] = {
    {K_CUSTOMER_ID, CV_ID},
    {K_NAME, CV_NAME},
    {K_EMAIL, CV_EMAIL},
    {K_BUDGET_DURATION, CV_BUDGET_DURATION},
    {K_PERIOD_BUDGET, CV_PERIOD_BUDGET},
    {K_TOTAL_BUDGET, CV_TOTAL_BUDGET},
    {K_PERIOD_START, CV_PERIOD_START},
    {K_PERIOD_END, CV_PERIOD_END},
    {K_MARKUP, CV_MARKUP},
    {K_RATE_LIMIT, CV_RATE_LIMIT},
};

/* Removes the canonical keys of the fields found invalid, so whatever goes
 * on under respan.customer_params.* has been validated. */
static void purge_invalid_params(span_ctx *c, unsigned invalid)
{
    for (size_t i = 0; i < sizeof param_keys / sizeof *param_keys; i++)
        if (invalid & param_keys[i].bit) rc_attr_remove(&c->attrs, param_keys[i].key);
}

static void write_identifiers(span_ctx *c)
{
    for (size_t i = 0; i < sizeof id_keys / sizeof *id_keys; i++) {
        const rc_fact *f = &c->facts->f[id_keys[i].fact];
        if (!rc_facts_has(c->facts, id_keys[i].fact)) continue;
        put_str(c, id_keys[i].fact, id_keys[i].key, f->s, identifier_len(f->s, f->len));
        c->written |= RC_FACT_BIT(id_keys[i].fact);
    }
}

static bool is_canonical_key(const char *key)
{
    if (strncmp(key, "respan.", 7) != 0) return false;
    if (strncmp(key, "respan.customer_params.", 23) == 0) return true;
    for (size_t i = 0; i < sizeof id_keys / sizeof *id_keys; i++)
        if (strcmp(key, id_keys[i].key) == 0) return true;
    return false;
}

/* drop_original: removes the span's convention attributes that fed a fact
 * now written canonically. The resource is shared and left alone. */
static void drop_sources(span_ctx *c)
{
    if (!c->written) return;
    otlp_key_value **kvs = c->span->attributes;
    size_t kept = 0;
    for (size_t i = 0; i < c->span->n_attributes; i++) {
        const char *key = kvs[i] && kvs[i]->key ? kvs[i]->key : "";
        if ((rc_conv_key_facts(key) & c->written) && !is_canonical_key(key)) continue;
        kvs[kept++] = kvs[i];
    }
    c->span->n_attributes = kept;
}

/* --- one batch --------------------------------------------------------------------- */

/* A span whose customer is decided later (by the trace, header, default). */
typedef struct pending_span {
    uint32_t run, span;
} pending_span;

struct held {
    held *next;
    rc_batch *batch;
    int64_t deadline_ms;
    pending_span *pending;
    size_t n_pending;
    size_t resolved; /* pending[0..resolved) have a known trace customer */
    size_t bytes;    /* arena bytes charged against max_held_bytes */
};

static const uint8_t *trace_id_of(const otlp_span *s)
{
    return s->trace_id.len == TRACE_ID_BYTES ? s->trace_id.data : NULL;
}

/* Spans by customer source, counted locally and added to the shared
 * counters once per batch: receiver threads share those cache lines. */
typedef struct source_counts {
    uint64_t n[5];
} source_counts;

static void add_counts(customer_processor *p, const source_counts *c)
{
    for (int i = 0; i < 5; i++)
        if (c->n[i]) rc_counter_add(p->by_source[i], c->n[i]);
}

/* Lists span i of run r as pending; false when out of memory. */
static bool add_pending(pending_span **pend, size_t *n_pend, size_t *cap, size_t r, size_t i)
{
    if (*n_pend == *cap) {
        size_t n = *cap ? *cap * 2 : 64;
        pending_span *grown = realloc(*pend, n * sizeof *grown);
        if (!grown) return false;
        *pend = grown;
        *cap = n;
    }
    (*pend)[(*n_pend)++] = (pending_span){(uint32_t)r, (uint32_t)i};
    return true;
}

/* First pass: each span's own facts, identifiers and own customer (which
 * is remembered for its trace). Spans without one are listed in *pend. */
static bool first_pass(customer_processor *p, rc_batch *b, pending_span **pend, size_t *n_pend,
                       source_counts *counts)
{
    size_t cap = 0;
    rc_facts res, f;
    for (size_t r = 0; r < b->n_runs; r++) {
        rc_span_run *run = &b->runs[r];
        rc_arena *arena = run->owner->arena;
        rc_facts_init(&res, RC_FACTS_CUSTOMER);
        rc_scan_resource(&res, run->rs ? run->rs->resource : NULL, arena);
        for (size_t i = 0; i < run->n_spans; i++) {
            otlp_span *s = run->spans[i];
            rc_facts_init(&f, RC_FACTS_CUSTOMER);
            rc_scan_span(&f, s, 0, arena);
            rc_facts_fill_from(&f, &res);
            if (!(f.have | f.rejected)) { /* nothing to write, validate or drop */
                if (!add_pending(pend, n_pend, &cap, r, i)) return false;
                continue;
            }
            span_ctx c = {p, s, rc_attr_list_of_span(s, arena), &f, 0};
            write_identifiers(&c);
            cust_view v;
            unsigned invalid;
            bool has_customer = view_of_facts(p, &f, &v, &invalid);
            if (invalid) purge_invalid_params(&c, invalid);
            if (has_customer) {
                write_customer(&c, &v);
                c.written |= RC_FACTS_CUSTOMER;
                counts->n[SRC_ATTRIBUTE]++;
                const uint8_t *tid = trace_id_of(s);
                if (tid) {
                    pthread_mutex_lock(&p->w.mu);
                    cust_rec *known = remember(p, tid, &v, rc_now_ms());
                    if (known) write_missing_params(&c, &v, &known->v);
                    publish_stats(p);
                    pthread_mutex_unlock(&p->w.mu);
                }
            } else if (!add_pending(pend, n_pend, &cap, r, i)) {
                return false;
            }
            if (p->drop_original) drop_sources(&c);
        }
    }
    return true;
}

/* Gives pending span ps its customer from the trace map, the header or the
 * default; with `may_wait`, a span with none of those is left for later
 * and false returned. Called under w.mu. */
static bool resolve(customer_processor *p, rc_batch *b, const pending_span *ps, bool may_wait,
                    int64_t now, source_counts *counts)
{
    rc_span_run *run = &b->runs[ps->run];
    otlp_span *s = run->spans[ps->span];
    span_ctx c = {p, s, rc_attr_list_of_span(s, run->owner->arena), NULL, 0};
    const uint8_t *tid = trace_id_of(s);
    cust_rec *known = tid ? lookup(p, tid, now) : NULL;
    if (known) {
        write_customer(&c, &known->v);
        counts->n[SRC_TRACE]++;
        return true;
    }
    const char *header = p->from_header ? rc_request_header(run->owner, p->from_header) : NULL;
    if (header && *header) {
        rc_attr_set_strn(&c.attrs, K_CUSTOMER_ID, header, identifier_len(header, strlen(header)));
        counts->n[SRC_HEADER]++;
        return true;
    }
    if (may_wait && tid) return false;
    if (p->default_customer) {
        rc_attr_set_str(&c.attrs, K_CUSTOMER_ID, p->default_customer); /* outlives us */
        counts->n[SRC_DEFAULT]++;
    } else {
        counts->n[SRC_NONE]++;
    }
    return true;
}

static size_t batch_arena_bytes(const rc_batch *b)
{
    size_t n = 0;
    const rc_request *last = NULL;
    for (size_t r = 0; r < b->n_runs; r++)
        if (b->runs[r].owner != last) {
            last = b->runs[r].owner;
            n += rc_arena_bytes(last->arena);
        }
    return n;
}

static void pass_on(customer_processor *p, rc_batch *b)
{
    size_t n = b->n_spans;
    rc_error err = {{0}};
    if (rc_consume(p->next, b, &err) != RC_OK) {
        rc_counter_add(p->failed_spans, n);
        rc_warn(p->id, "could not pass %zu spans on: %s", n, err.msg);
    }
}

/* Resolves every still-pending span of h without waiting, and sends it. */
static void release(customer_processor *p, held *h)
{
    source_counts counts = {{0}};
    pthread_mutex_lock(&p->w.mu);
    int64_t now = rc_now_ms();
    for (size_t i = 0; i < h->n_pending; i++)
        resolve(p, h->batch, &h->pending[i], false, now, &counts);
    pthread_mutex_unlock(&p->w.mu);
    add_counts(p, &counts);
    pass_on(p, h->batch);
    free(h->pending);
    free(h);
}

static rc_status customer_consume(void *inst, rc_batch *b, rc_error *err)
{
    customer_processor *p = inst;
    pending_span *pend = NULL;
    size_t n_pend = 0;
    source_counts counts = {{0}};
    if (!first_pass(p, b, &pend, &n_pend, &counts)) {
        free(pend);
        rc_batch_free(b);
        rc_error_set(err, "out of memory in %s, retry later", p->id);
        return RC_ENOMEM;
    }
    if (n_pend == 0) { /* every span named its customer */
        add_counts(p, &counts);
        return rc_consume(p->next, b, err);
    }
    /* Second pass: the trace, the header, or wait. Spans that can be
     * resolved now are moved out of the pending list. */
    pthread_mutex_lock(&p->w.mu);
    int64_t now = rc_now_ms();
    bool may_wait = p->wait_ms > 0 && !p->w.stopping && !p->next->durable;
    size_t waiting = 0;
    for (size_t i = 0; i < n_pend; i++)
        if (!resolve(p, b, &pend[i], may_wait, now, &counts)) pend[waiting++] = pend[i];
    held *h = NULL;
    if (waiting) {
        size_t bytes = batch_arena_bytes(b);
        if (p->held_bytes + bytes <= p->max_held_bytes && (h = calloc(1, sizeof *h))) {
            *h = (held){NULL, b, now + (int64_t)p->wait_ms, pend, waiting, 0, bytes};
            if (p->held_last)
                p->held_last->next = h;
            else
                p->held_first = h;
            p->held_last = h;
            p->held_bytes += bytes;
            atomic_fetch_add(&p->stats->held_spans, waiting);
            rc_counter_add(p->waited_spans, waiting);
        } else {
            rc_counter_add(p->wait_skipped, waiting);
            for (size_t i = 0; i < waiting; i++)
                resolve(p, b, &pend[i], false, now, &counts);
        }
    }
    publish_stats(p);
    pthread_mutex_unlock(&p->w.mu);
    add_counts(p, &counts);
    if (h) {
        rc_worker_wake(&p->w);
        return RC_OK;
    }
    free(pend);
    return rc_consume(p->next, b, err);
}

/* --- the waiting thread ------------------------------------------------------------- */

/* True when every trace h waits for has its customer. Under w.mu. */
static bool all_known(customer_processor *p, held *h, int64_t now)
{
    while (h->resolved < h->n_pending) {
        const pending_span *ps = &h->pending[h->resolved];
        const otlp_span *s = h->batch->runs[ps->run].spans[ps->span];
        if (!lookup(p, trace_id_of(s), now)) return false;
        h->resolved++;
    }
    return true;
}

/* Unlinks and returns the held batches that may go now. Under w.mu. */
static held *take_due(customer_processor *p, int64_t now, bool check_known)
{
    held *due = NULL, **tail = &due, *prev = NULL;
    for (held *h = p->held_first, *nx; h; h = nx) {
        nx = h->next;
        if (p->w.stopping || h->deadline_ms <= now || (check_known && all_known(p, h, now))) {
            if (prev)
                prev->next = nx;
            else
                p->held_first = nx;
            if (p->held_last == h) p->held_last = prev;
            p->held_bytes -= h->bytes;
            atomic_fetch_sub(&p->stats->held_spans, h->n_pending);
            h->next = NULL;
            *tail = h;
            tail = &h->next;
        } else {
            prev = h;
        }
    }
    return due;
}

static void *customer_loop(void *arg)
{
    customer_processor *p = arg;
    uint64_t seen_generation = 0;
    int64_t last_sweep = rc_now_ms();
    pthread_mutex_lock(&p->w.mu);
    for (;;) {
        int64_t now = rc_now_ms();
        bool news = p->generation != seen_generation;
        seen_generation = p->generation;
        held *due = take_due(p, now, news);
        if (now - last_sweep >= 1000) { /* expired traces go even when idle */
            trim_map(p, now, 0);
            publish_stats(p);
            last_sweep = now;
        }
        if (due) {
            pthread_mutex_unlock(&p->w.mu);
            for (held *h = due, *nx; h; h = nx) {
                nx = h->next;
                release(p, h);
            }
            pthread_mutex_lock(&p->w.mu);
            continue;
        }
        if (p->w.stopping) break;
        /* Sleep to the first deadline (or a second, for the sweep); news
         * of a trace's customer wakes us, at most every RECHECK_MIN_MS. */
        int64_t wait = 1000;
        if (p->held_first && p->held_first->deadline_ms - now < wait)
            wait = p->held_first->deadline_ms - now;
        if (wait < 1) wait = 1;
        rc_worker_wait(&p->w, rc_now_ms() + wait);
        if (p->held_first && p->generation != seen_generation && !p->w.stopping) {
            pthread_mutex_unlock(&p->w.mu);
            nanosleep(&(struct timespec){0, RECHECK_MIN_MS * 1000000L}, NULL);
            pthread_mutex_lock(&p->w.mu);
        }
    }
    pthread_mutex_unlock(&p->w.mu);
    return NULL;
}

/* --- life cycle --------------------------------------------------------------------- */

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static gauge_stats *all_stats;

static double gauge_entries(void *arg)
{
    return (double)atomic_load(&((gauge_stats *)arg)->entries);
}
static double gauge_bytes(void *arg)
{
    return (double)atomic_load(&((gauge_stats *)arg)->bytes);
}
static double gauge_held(void *arg)
{
    return (double)atomic_load(&((gauge_stats *)arg)->held_spans);
}

/* One stats block per processor id, kept for the process's life. */
static gauge_stats *stats_for(const char *id)
{
    pthread_mutex_lock(&stats_mu);
    gauge_stats *s = all_stats;
    while (s && strcmp(s->id, id) != 0)
        s = s->next;
    if (!s && (s = calloc(1, sizeof *s))) {
        if ((s->id = strdup(id))) {
            s->next = all_stats;
            all_stats = s;
        } else {
            free(s);
            s = NULL;
        }
    }
    pthread_mutex_unlock(&stats_mu);
    return s;
}

static void customer_destroy(void *inst)
{
    customer_processor *p = inst;
    if (!p) return;
    for (held *h = p->held_first, *nx; h; h = nx) { /* only after a failed start */
        nx = h->next;
        rc_batch_free(h->batch);
        free(h->pending);
        free(h);
    }
    while (p->oldest)
        remove_trace(p, p->oldest);
    free(p->buckets);
    free(p->cbuckets);
    if (p->stats) publish_stats(p);
    rc_worker_destroy(&p->w);
    free(p->default_copy);
    free(p->from_header);
    free(p->id);
    free(p);
}

static rc_status parse_config(customer_processor *p, rc_cfg *cfg, rc_error *err)
{
    const char *def = NULL, *header = NULL;
    uint64_t max_mib = 0, held_mib = 0;
    if (rc_cfg_string(cfg, "default_customer", NULL, &def, err) ||
        rc_cfg_string(cfg, "from_header", NULL, &header, err) ||
        rc_cfg_duration_ms(cfg, "ttl", 60000, &p->ttl_ms, err) ||
        rc_cfg_duration_ms(cfg, "propagation_wait", 2000, &p->wait_ms, err) ||
        rc_cfg_uint(cfg, "max_traces", 100000, 0, 100000000, &p->max_traces, err) ||
        rc_cfg_uint(cfg, "max_memory_mib", 32, 1, 1 << 20, &max_mib, err) ||
        rc_cfg_uint(cfg, "max_held_mib", 16, 1, 1 << 20, &held_mib, err) ||
        rc_cfg_bool(cfg, "drop_original", false, &p->drop_original, err))
        return RC_EINVAL;
    if (p->ttl_ms == 0) return rc_cfg_error(err, rc_cfg_get(cfg, "ttl"), "ttl must be positive");
    if (p->wait_ms > p->ttl_ms)
        return rc_cfg_error(err, rc_cfg_get(cfg, "propagation_wait"),
                            "propagation_wait (%llums) must not exceed ttl (%llums)",
                            (unsigned long long)p->wait_ms, (unsigned long long)p->ttl_ms);
    if (def && *def) {
        size_t n = identifier_len(def, strlen(def));
        if (!(p->default_copy = strndup(def, n))) goto oom;
        p->default_customer = p->default_copy;
    }
    if (header && *header) {
        if (!(p->from_header = strdup(header))) goto oom;
        for (char *c = p->from_header; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    }
    p->max_bytes = max_mib << 20;
    p->max_held_bytes = held_mib << 20;
    return rc_cfg_reject_unknown(cfg, err);
oom:
    rc_error_set(err, "out of memory");
    return RC_ENOMEM;
}

static void *customer_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    customer_processor *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    rc_worker_init(&p->w);
    if (!(p->id = strdup(id->id))) goto oom;
    if (parse_config(p, cfg, err) != RC_OK) {
        customer_destroy(p);
        return NULL;
    }
    return p;
oom:
    rc_error_set(err, "out of memory");
    customer_destroy(p);
    return NULL;
}

static rc_status customer_start(void *inst, const rc_consumer *next, rc_error *err)
{
    customer_processor *p = inst;
    char labels[256];
    snprintf(labels, sizeof labels, "processor=\"%s\"", p->id);
    p->next = next;
    if (next->durable && p->wait_ms > 0)
        rc_info(p->id, "an exporter after it persists what it accepts, so spans are not held for "
                       "propagation_wait (that would acknowledge spans only in memory); a trace's "
                       "customer reaches the spans that arrive with it or after it");
    if (!(p->stats = stats_for(p->id))) {
        rc_error_set(err, "%s: out of memory", p->id);
        return RC_ENOMEM;
    }
    rc_gauge_register("respan_processor_customer_trace_map_entries",
                      "Traces whose customer the customer processor remembers.", labels,
                      gauge_entries, p->stats);
    rc_gauge_register("respan_processor_customer_trace_map_bytes",
                      "Heap bytes of the customer processor's trace map.", labels, gauge_bytes,
                      p->stats);
    rc_gauge_register("respan_processor_customer_waiting_spans",
                      "Spans waiting for their trace's customer.", labels, gauge_held, p->stats);
    p->invalid_fields = rc_counter_register(
        "respan_processor_customer_invalid_fields",
        "Customer fields dropped because their value was invalid or of the wrong type.", labels);
    p->waited_spans = rc_counter_register("respan_processor_customer_waited_spans",
                                          "Spans that waited for their trace's customer.", labels);
    p->wait_skipped = rc_counter_register(
        "respan_processor_customer_wait_skipped_spans",
        "Spans that went on without waiting because max_held_mib was reached.", labels);
    p->evictions =
        rc_counter_register("respan_processor_customer_trace_map_evictions",
                            "Traces dropped from the map to stay within its bounds.", labels);
    p->failed_spans = rc_counter_register(
        "respan_processor_customer_send_failed_spans",
        "Spans the next stage refused after they waited in the customer processor.", labels);
    for (int i = 0; i < 5; i++) {
        char l[320];
        snprintf(l, sizeof l, "%s,source=\"%s\"", labels, source_names[i]);
        p->by_source[i] = rc_counter_register("respan_processor_customer_spans",
                                              "Spans by where their customer came from.", l);
    }
    if (!rc_worker_start(&p->w, customer_loop, p)) {
        rc_error_set(err, "%s: cannot start its thread", p->id);
        return RC_EIO;
    }
    return RC_OK;
}

static void customer_shutdown(void *inst)
{
    customer_processor *p = inst;
    rc_worker_stop(&p->w);
}

const rc_processor_factory rc_customer_processor_factory = {
    .type = "customer",
    .description = "finds the customer of every span (attributes, trace, header, default) and "
                   "writes the canonical respan.customer_params.* and identifier attributes",
    .create = customer_create,
    .start = customer_start,
    .consume = customer_consume,
    .shutdown = customer_shutdown,
    .destroy = customer_destroy,
};
