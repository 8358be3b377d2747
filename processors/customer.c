/*
 * customer.c - the `customer` processor: who each span was made for.
 *
 * For every span it writes the canonical customer attributes
 *   respan.customer_params.customer_identifier, .name, .email,
 *   .budget_duration, .period_budget, .total_budget, .period_start,
 *   .period_end, .markup_percentage, .rate_limit
 * and the trace-level identifiers
 *   respan.thread_identifier, respan.session_identifier,
 *   respan.custom_identifier, respan.trace_group_identifier,
 *   respan.span_workflow_name (cut to 255 characters).
 * Everything is read through the one convention scanner (llm/conventions.h),
 * span first, then resource. Originals stay unless drop_original is set.
 *
 * Where a span's customer comes from, first match wins:
 *   1. the span's own attributes, then its resource's (every convention);
 *   2. its trace: what another span of the trace named, in this request or
 *      another (processors/customer_traces.h keeps it per trace);
 *   3. the request header named by from_header (e.g. x-customer-id);
 *   4. the default customer of the tenant whose token the request carried
 *      (receivers' auth, tokens_file), else default_customer.
 * A span whose request carried a tenant's token also gets respan.tenant
 * (overwriting any the span set itself) and, where neither it nor its
 * resource names one, the tenant's environment as
 * deployment.environment.name.
 * Identifiers and customer_params the span does not name itself come from
 * its trace in the same way (params only from the same customer).
 *
 * Order does not matter. A batch is handled in two passes: the first reads
 * every span and merges what each names into its trace; the second writes
 * each span from its own facts and its trace's. So a trace's spans get the
 * same attributes whether they arrive in one request or several, root
 * first or last. Across requests that takes waiting:
 *
 * Waiting. A span with no customer (of its own, from its trace or from a
 * header) whose trace is not settled yet (no customer known, root not
 * arrived) may belong to a trace whose customer-naming span is still on
 * its way: SDKs export children before their root. It waits in a span
 * hold (core/span_hold.h) for at most propagation_wait (default 30 s):
 * until its trace gets a customer, its root arrives, or the wait runs out;
 * then it is finished like any other span and passed on, from the hold's
 * thread. A root span, a span of a trace whose root was seen, and a span
 * whose request names its customer in a header never wait.
 *
 *   - In front of an exporter that persists what it accepts
 *     (rc_consumer.durable) the hold is on disk, fsync'd: the client is
 *     answered once waiting spans are on disk, a SIGKILL loses nothing, and
 *     after a restart they wait out what was left of their wait. What
 *     settled a trace is written to the hold as a note before its spans
 *     leave, so that a crash cannot cost them their customer either. At
 *     SIGTERM waiting spans stay on disk for the next start.
 *   - Otherwise the hold is in memory (charged to the memory limiter) and
 *     emptied into the next stage at shutdown.
 *   - At most max_held_mib waits (on disk: default 1024; in memory: 16).
 *     Near the bound the oldest go on first; a request that finds it full
 *     goes on at once. Both are counted (released_spans{reason="bound"});
 *     nothing is dropped.
 *
 * Validation (an invalid field is dropped, counted in
 * respan_processor_customer_invalid_fields and logged at most every 10 s;
 * the span is kept): budget_duration in daily|weekly|monthly|yearly (any
 * case, written lower-case); period_start/end real YYYY-MM-DD dates;
 * period_budget, total_budget, markup_percentage, rate_limit numbers >= 0
 * (rate_limit an integer). Identifiers are cut to 120 characters (code
 * points, on a UTF-8 boundary), as Respan does. A customer taken from a
 * header or from default_customer, text no decoder has seen, first has
 * every byte that is not valid UTF-8 replaced by U+FFFD.
 */
#include "core/clock.h"
#include "core/component.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/span_hold.h"
#include "core/worker.h"
#include "llm/conventions.h"
#include "llm/span_attrs.h"
#include "processors/customer_traces.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_IDENTIFIER_CHARS 120
#define MAX_NAME_CHARS 255 /* a workflow name, like a span name */
#define TRACE_ID_BYTES CT_TRACE_ID_BYTES
#define WARN_EVERY_MS 10000
#define DEFAULT_WAIT_MS 30000
#define MAX_WAIT_MS (24 * 3600 * 1000ull)
#define DEFAULT_HELD_MIB_DISK 1024
#define DEFAULT_HELD_MIB_MEMORY 16

/* --- the canonical keys ------------------------------------------------------- */

#define K_CUSTOMER_ID "respan.customer_params.customer_identifier"
#define K_TENANT "respan.tenant"
#define K_NAME "respan.customer_params.name"
#define K_EMAIL "respan.customer_params.email"
#define K_BUDGET_DURATION "respan.customer_params.budget_duration"
#define K_PERIOD_BUDGET "respan.customer_params.period_budget"
#define K_TOTAL_BUDGET "respan.customer_params.total_budget"
#define K_PERIOD_START "respan.customer_params.period_start"
#define K_PERIOD_END "respan.customer_params.period_end"
#define K_MARKUP "respan.customer_params.markup_percentage"
#define K_RATE_LIMIT "respan.customer_params.rate_limit"

/* The trace-level identifiers, indexed by CT_THREAD .. CT_WORKFLOW, and
 * how many characters Respan keeps of each. */
static const struct {
    rc_fact_id fact;
    const char *key;
    size_t max_chars;
} id_keys[CT_N_IDS] = {
    [CT_THREAD] = {RC_FACT_THREAD_ID, "respan.thread_identifier", MAX_IDENTIFIER_CHARS},
    [CT_SESSION] = {RC_FACT_SESSION_ID, "respan.session_identifier", MAX_IDENTIFIER_CHARS},
    [CT_CUSTOM] = {RC_FACT_CUSTOM_ID, "respan.custom_identifier", MAX_IDENTIFIER_CHARS},
    [CT_TRACE_GROUP] = {RC_FACT_TRACE_GROUP_ID, "respan.trace_group_identifier",
                        MAX_IDENTIFIER_CHARS},
    [CT_WORKFLOW] = {RC_FACT_WORKFLOW_NAME, "respan.span_workflow_name", MAX_NAME_CHARS},
};

/* Bytes of the first max_chars code points of s. Decoded strings are valid
 * UTF-8, so counting non-continuation bytes counts code points. */
static size_t cut_chars(const char *s, size_t n, size_t max_chars)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++chars > max_chars) return i;
    return n;
}

static size_t identifier_len(const char *s, size_t n)
{
    return cut_chars(s, n, MAX_IDENTIFIER_CHARS);
}

/* Room for an identifier made by text_identifier: 120 characters of at
 * most 4 bytes, and the NUL. */
#define TEXT_IDENTIFIER_MAX (4 * MAX_IDENTIFIER_CHARS + 1)

/* An identifier from text that was never decoded - a request header, or
 * the config's default_customer after ${env:} substitution - so any bytes:
 * each byte that starts no valid UTF-8 sequence becomes U+FFFD (one per
 * byte, as the decoders and the JSON writer do), then it is cut after 120
 * characters. `out` holds TEXT_IDENTIFIER_MAX bytes; returns the length.
 * Spans then carry only valid UTF-8, as the processors may assume of a
 * decoded request (otlp/otlp.h), and the cut counts characters right. */
static size_t text_identifier(const char *text, char *out)
{
    const unsigned char *s = (const unsigned char *)text, *end = s + strlen(text);
    size_t n = 0;
    for (size_t chars = 0; s < end && chars < MAX_IDENTIFIER_CHARS; chars++) {
        size_t len = rc_utf8_seq_len(s, (size_t)(end - s));
        if (len == 0) {
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            s++;
        } else {
            memcpy(out + n, s, len);
            n += len;
            s += len;
        }
    }
    out[n] = '\0';
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

/* Why a span that waited went on (released_spans{reason}). */
enum { R_ATTRIBUTION, R_ROOT, R_TIMEOUT, R_BOUND, R_SHUTDOWN, R_EVICTED, R_COUNT };
static const char *const reason_names[R_COUNT] = {"attribution", "root",     "timeout",
                                                  "bound",       "shutdown", "evicted"};

/* Where a span's customer came from (spans{source}). */
enum { SRC_ATTRIBUTE, SRC_TRACE, SRC_HEADER, SRC_DEFAULT, SRC_NONE, SRC_COUNT };
static const char *const source_names[SRC_COUNT] = {"attribute", "trace", "header", "default",
                                                    "none"};

typedef struct customer_processor {
    char *id, *pipeline;
    /* config */
    const char *default_customer; /* = default_copy, truncated, or NULL */
    char *default_copy;
    char *from_header; /* lower-case */
    char *hold_dir;    /* configured, or NULL for the default */
    uint64_t ttl_ms, wait_ms, max_traces, max_map_bytes, held_mib; /* held_mib 0: default */
    bool drop_original;
    const rc_consumer *next;

    pthread_mutex_t mu; /* guards map */
    ct_map *map;
    ct_roots *roots;
    rc_hold *hold;     /* NULL when spans never wait (propagation_wait 0) */
    rc_worker sweeper; /* without a hold, ticks in its stead */

    rc_counter *invalid_fields, *waited_spans, *evictions, *failed_spans, *note_failures;
    rc_counter *by_source[SRC_COUNT], *released[R_COUNT];
    rc_counter *g_entries, *g_bytes, *g_waiting, *g_held_bytes;
    /* rate-limited warnings */
    _Atomic int64_t last_warn_ms;
    atomic_ulong suppressed_warns;
} customer_processor;

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

/* Publishes the map's and the hold's figures. Map figures under mu. */
static void publish_map_stats(customer_processor *p)
{
    rc_counter_add(p->evictions, ct_map_take_evictions(p->map));
    rc_gauge_set(p->g_entries, ct_map_entries(p->map));
    rc_gauge_set(p->g_bytes, ct_map_bytes(p->map));
}

static void publish_hold_stats(customer_processor *p)
{
    if (!p->hold) return;
    rc_gauge_set(p->g_waiting, rc_hold_spans(p->hold));
    rc_gauge_set(p->g_held_bytes, rc_hold_bytes(p->hold));
}

/* --- a span's own customer, validated ------------------------------------------ */

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
                          const char *name, const char **out, ct_customer *v, unsigned *invalid)
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
                            const char *name, double *out, ct_customer *v, unsigned *invalid)
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

/* Builds the validated customer of the facts f, whether or not f names a
 * customer id. Invalid fields (also values the scanner rejected as the
 * wrong type) are left out, their CV_ bits set in *invalid, counted and
 * logged. */
static void customer_of_facts(customer_processor *p, const rc_facts *f, ct_customer *v,
                              unsigned *invalid)
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
    if (!rc_facts_has(f, RC_FACT_CUSTOMER_ID)) return;
    v->id = f->f[RC_FACT_CUSTOMER_ID].s;
    v->id_len = identifier_len(v->id, f->f[RC_FACT_CUSTOMER_ID].len);
    v->have |= CV_ID;
}

/* --- writing onto a span ---------------------------------------------------------- */

typedef struct span_ctx {
    otlp_span *span;
    rc_attr_list attrs;
    const rc_facts *facts; /* the span's own scan, or NULL */
    uint64_t written;      /* facts written from the span's own attributes */
} span_ctx;

static span_ctx ctx_of(rc_span_run *run, otlp_span *s, const rc_facts *facts)
{
    return (span_ctx){s, rc_attr_list_of_span(s, run->owner->arena), facts, 0};
}

/* Writes s unless it is the value already under the canonical key. */
static void put_str(span_ctx *c, rc_fact_id fact, const char *key, const char *s, size_t n)
{
    const rc_fact *own = c->facts && rc_facts_has(c->facts, fact) ? &c->facts->f[fact] : NULL;
    if (own && own->s == s && own->len == n && !own->from_resource && strcmp(own->key, key) == 0)
        return; /* already canonical */
    rc_attr_set_strn(&c->attrs, key, s, n);
}

/* Writes the fields of v named in `which` (CV_ bits). */
static void write_fields(span_ctx *c, const ct_customer *v, unsigned which)
{
    if (which & CV_ID) put_str(c, RC_FACT_CUSTOMER_ID, K_CUSTOMER_ID, v->id, v->id_len);
    if (which & CV_NAME) put_str(c, RC_FACT_CUSTOMER_NAME, K_NAME, v->name, strlen(v->name));
    if (which & CV_EMAIL) put_str(c, RC_FACT_CUSTOMER_EMAIL, K_EMAIL, v->email, strlen(v->email));
    if (which & CV_BUDGET_DURATION)
        rc_attr_set_str_ref(&c->attrs, K_BUDGET_DURATION, v->budget_duration); /* static */
    if (which & CV_PERIOD_START)
        put_str(c, RC_FACT_PERIOD_START, K_PERIOD_START, v->period_start, 10);
    if (which & CV_PERIOD_END) put_str(c, RC_FACT_PERIOD_END, K_PERIOD_END, v->period_end, 10);
    if (which & CV_PERIOD_BUDGET) rc_attr_set_double(&c->attrs, K_PERIOD_BUDGET, v->period_budget);
    if (which & CV_TOTAL_BUDGET) rc_attr_set_double(&c->attrs, K_TOTAL_BUDGET, v->total_budget);
    if (which & CV_MARKUP) rc_attr_set_double(&c->attrs, K_MARKUP, v->markup);
    if (which & CV_RATE_LIMIT) rc_attr_set_int(&c->attrs, K_RATE_LIMIT, v->rate_limit);
}

static bool same_customer_id(const ct_customer *a, const ct_customer *b)
{
    return a->id_len == b->id_len && memcmp(a->id, b->id, a->id_len) == 0;
}

/* The trace's params that a span naming the same customer lacks. */
static void write_missing_params(span_ctx *c, const ct_customer *own, const ct_customer *trace)
{
    if ((trace->have & CV_ID) && same_customer_id(own, trace))
        write_fields(c, trace, trace->have & ~own->have & ~(unsigned)CV_ID);
}

/* The trace's identifiers that the span does not name itself (own: what it
 * names, or NULL for nothing; a released span's own were written at its
 * arrival, so they are looked up among its attributes). */
static void write_missing_ids(span_ctx *c, const ct_facts *own, const ct_facts *trace, bool look_up)
{
    for (int k = 0; k < CT_N_IDS; k++) {
        if (!trace->ids[k] || (own && own->ids[k])) continue;
        if (look_up && rc_span_attr(c->span, id_keys[k].key)) continue;
        rc_attr_set_strn(&c->attrs, id_keys[k].key, trace->ids[k], trace->id_lens[k]);
    }
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

/* The span's own identifiers: written canonically, and noted in f. */
static void own_identifiers(span_ctx *c, ct_facts *f)
{
    for (int k = 0; k < CT_N_IDS; k++) {
        const rc_fact *fact = &c->facts->f[id_keys[k].fact];
        if (!rc_facts_has(c->facts, id_keys[k].fact)) continue;
        f->ids[k] = fact->s;
        f->id_lens[k] = cut_chars(fact->s, fact->len, id_keys[k].max_chars);
        put_str(c, id_keys[k].fact, id_keys[k].key, fact->s, f->id_lens[k]);
        c->written |= RC_FACT_BIT(id_keys[k].fact);
    }
}

static bool is_canonical_key(const char *key)
{
    if (strncmp(key, "respan.", 7) != 0) return false;
    if (strncmp(key, "respan.customer_params.", 23) == 0) return true;
    for (size_t i = 0; i < CT_N_IDS; i++)
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

/* --- one batch: what its spans name --------------------------------------------- */

static const uint8_t *trace_id_of(const otlp_span *s)
{
    return s->trace_id.len == TRACE_ID_BYTES ? s->trace_id.data : NULL;
}

static bool is_root(const otlp_span *s)
{
    for (size_t i = 0; i < s->parent_span_id.len; i++)
        if (s->parent_span_id.data[i]) return false;
    return true;
}

/* What a span of the batch named for its trace (its facts borrow from the
 * span), to merge into the trace map. */
typedef struct update {
    const uint8_t *tid;
    ct_facts f;
    bool root;
} update;

enum { SP_WAIT = 1 }; /* a span that is to wait */

typedef struct batch_work {
    int32_t *upd;   /* per span (run order): its update, or -1 */
    uint8_t *marks; /* per span: SP_* */
    update *updates;
    size_t n_updates, cap_updates;
    rc_buf settled; /* trace ids this batch settled, 16 bytes each */
    size_t n_wait;
    uint64_t by_source[SRC_COUNT];
} batch_work;

static void work_free(batch_work *w)
{
    free(w->upd);
    free(w->marks);
    free(w->updates);
    rc_buf_free(&w->settled);
}

static update *add_update(batch_work *w)
{
    if (w->n_updates == w->cap_updates) {
        size_t cap = w->cap_updates ? w->cap_updates * 2 : 32;
        update *n = realloc(w->updates, cap * sizeof *n);
        if (!n) return NULL;
        w->updates = n;
        w->cap_updates = cap;
    }
    return &w->updates[w->n_updates++];
}

/* First pass over one span: its own facts written canonically, what it names
 * for its trace noted. False when out of memory. */
static bool read_span(customer_processor *p, rc_span_run *run, otlp_span *s, const rc_facts *res,
                      batch_work *w, size_t at)
{
    rc_facts f;
    rc_facts_init(&f, RC_FACTS_CUSTOMER);
    rc_scan_span(&f, s, 0, run->owner->arena);
    rc_facts_fill_from(&f, res);
    const uint8_t *tid = trace_id_of(s);
    bool root = is_root(s);
    w->upd[at] = -1;
    if (!(f.have | f.rejected) && !(root && tid)) return true; /* nothing to note */
    update u;
    memset(&u, 0, sizeof u);
    u.tid = tid;
    u.root = root;
    if (f.have | f.rejected) {
        span_ctx c = ctx_of(run, s, &f);
        unsigned invalid;
        own_identifiers(&c, &u.f);
        customer_of_facts(p, &f, &u.f.c, &invalid);
        if (invalid) purge_invalid_params(&c, invalid);
        if (u.f.c.have & CV_ID) {
            write_fields(&c, &u.f.c, u.f.c.have);
            c.written |= RC_FACTS_CUSTOMER;
            w->by_source[SRC_ATTRIBUTE]++;
        }
        if (p->drop_original) drop_sources(&c);
    }
    if (!tid || (ct_facts_empty(&u.f) && !root)) return true;
    update *slot = add_update(w);
    if (!slot) return false;
    *slot = u;
    w->upd[at] = (int32_t)(w->n_updates - 1);
    return true;
}

static bool read_batch(customer_processor *p, rc_batch *b, batch_work *w)
{
    size_t n = b->n_spans ? b->n_spans : 1;
    if (!(w->upd = malloc(n * sizeof *w->upd)) || !(w->marks = calloc(n, 1))) return false;
    size_t at = 0;
    rc_facts res;
    for (size_t r = 0; r < b->n_runs; r++) {
        rc_span_run *run = &b->runs[r];
        rc_facts_init(&res, RC_FACTS_CUSTOMER);
        rc_scan_resource(&res, run->rs ? run->rs->resource : NULL, run->owner->arena);
        for (size_t i = 0; i < run->n_spans; i++, at++)
            if (!read_span(p, run, run->spans[i], &res, w, at)) return false;
    }
    return true;
}

/* --- one batch: what its spans get --------------------------------------------- */

/* Merges every update into the map and notes the traces it settled. Under mu. */
static void merge_updates(customer_processor *p, batch_work *w, int64_t now)
{
    for (size_t i = 0; i < w->n_updates; i++) {
        const update *u = &w->updates[i];
        if (u->root) ct_roots_add(p->roots, u->tid);
        if (ct_map_merge(p->map, u->tid, &u->f, u->root, now))
            rc_buf_append(&w->settled, u->tid, TRACE_ID_BYTES);
    }
}

/* Whether trace tid is settled: it has a customer or its root arrived. */
static bool settled(customer_processor *p, const uint8_t *tid, const ct_trace *t, bool known)
{
    return (known && ((t->facts->c.have & CV_ID) || t->root_seen)) || ct_roots_seen(p->roots, tid);
}

/* Gives a span with no customer of its own the default (or none): its
 * tenant's, else the processor's. */
static void write_default(customer_processor *p, const rc_span_run *run, span_ctx *c,
                          uint64_t *by_source)
{
    const char *tenant_customer = run->owner->meta.tenant_customer;
    if (tenant_customer && *tenant_customer) {
        char id[TEXT_IDENTIFIER_MAX];
        rc_attr_set_strn(&c->attrs, K_CUSTOMER_ID, id, text_identifier(tenant_customer, id));
        by_source[SRC_DEFAULT]++;
    } else if (p->default_customer) {
        rc_attr_set_str(&c->attrs, K_CUSTOMER_ID, p->default_customer); /* copied */
        by_source[SRC_DEFAULT]++;
    } else {
        by_source[SRC_NONE]++;
    }
}

/* Second pass over one span: its customer, params and identifiers from its
 * trace, header or default; or marks it to wait. Under mu. */
static void resolve_span(customer_processor *p, rc_span_run *run, otlp_span *s, const update *own,
                         bool may_wait, int64_t now, batch_work *w, size_t at)
{
    const uint8_t *tid = trace_id_of(s);
    ct_trace t;
    bool known = tid && ct_map_find(p->map, tid, now, &t);
    const ct_facts *tf = known ? t.facts : NULL;
    const ct_facts *of = own ? &own->f : NULL;
    span_ctx c = ctx_of(run, s, NULL);
    if (of && (of->c.have & CV_ID)) { /* its own customer */
        if (tf) {
            write_missing_params(&c, &of->c, &tf->c);
            write_missing_ids(&c, of, tf, false);
        }
        return;
    }
    if (tf && (tf->c.have & CV_ID)) {
        write_fields(&c, &tf->c, tf->c.have);
        write_missing_ids(&c, of, tf, false);
        w->by_source[SRC_TRACE]++;
        return;
    }
    const char *header = p->from_header ? rc_request_header(run->owner, p->from_header) : NULL;
    if (!(header && *header) && may_wait && tid && !is_root(s) && !settled(p, tid, &t, known)) {
        w->marks[at] |= SP_WAIT;
        w->n_wait++;
        return;
    }
    if (header && *header) {
        char id[TEXT_IDENTIFIER_MAX];
        rc_attr_set_strn(&c.attrs, K_CUSTOMER_ID, id, text_identifier(header, id));
        w->by_source[SRC_HEADER]++;
    } else {
        write_default(p, run, &c, w->by_source);
    }
    if (tf) write_missing_ids(&c, of, tf, false);
}

static bool has_environment(const otlp_resource *res, const otlp_span *s)
{
    static const char *const keys[] = {"deployment.environment.name", "deployment.environment"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (rc_span_attr(s, keys[i]) || (res && rc_resource_attr(res, keys[i]))) return true;
    return false;
}

/* A resource cannot name the tenant either: the token does (write_tenant).
 * Once per run, before its spans are written. */
static void clear_resource_tenant(rc_span_run *run)
{
    if (!run->owner->meta.tenant || !run->rs || !run->rs->resource) return;
    rc_attr_list res = rc_attr_list_of_resource(run->rs->resource, run->owner->arena);
    rc_attr_remove(&res, K_TENANT);
}

/* The tenant whose token carried the span (receivers' auth): respan.tenant,
 * always, so that a span cannot claim another tenant; and the tenant's
 * environment where the span and its resource name none. */
static void write_tenant(rc_span_run *run, otlp_span *s)
{
    const rc_request_meta *m = &run->owner->meta;
    if (!m->tenant) return;
    rc_attr_list attrs = rc_attr_list_of_span(s, run->owner->arena);
    rc_attr_remove(&attrs, K_TENANT);                 /* every copy the span sent */
    rc_attr_add_str_ref(&attrs, K_TENANT, m->tenant); /* lives in the request's arena */
    if (m->tenant_environment && !has_environment(run->rs ? run->rs->resource : NULL, s))
        rc_attr_set_str_ref(&attrs, "deployment.environment.name", m->tenant_environment);
}

static void resolve_batch(customer_processor *p, rc_batch *b, batch_work *w, bool may_wait)
{
    pthread_mutex_lock(&p->mu);
    int64_t now = rc_now_ms();
    merge_updates(p, w, now);
    size_t at = 0;
    for (size_t r = 0; r < b->n_runs; r++) {
        rc_span_run *run = &b->runs[r];
        bool wrote = false; /* a span of the run goes on now */
        for (size_t i = 0; i < run->n_spans; i++, at++) {
            const update *own = w->upd[at] >= 0 ? &w->updates[w->upd[at]] : NULL;
            resolve_span(p, run, run->spans[i], own, may_wait, now, w, at);
            if (w->marks[at] & SP_WAIT) continue;
            write_tenant(run, run->spans[i]);
            wrote = true;
        }
        if (wrote) clear_resource_tenant(run);
    }
    publish_map_stats(p);
    pthread_mutex_unlock(&p->mu);
}

static void add_counts(rc_counter **counters, const uint64_t *n, int count)
{
    for (int i = 0; i < count; i++)
        if (n[i]) rc_counter_add(counters[i], n[i]);
}

/* --- settling traces in the hold ------------------------------------------------- */

/* Tells the hold that these traces (16 bytes each) are settled. On disk a
 * note of what settled them is written first (see the top comment); if it
 * cannot be, they are settled all the same, from memory, and the failure is
 * counted: the spans are safe, only their attribution after a crash is not. */
static void settle_traces(customer_processor *p, const uint8_t *tids, size_t n)
{
    if (!p->hold || n == 0 || rc_hold_spans(p->hold) == 0) return;
    bool *waited = malloc(n * sizeof *waited);
    if (!waited) {
        rc_hold_settle(p->hold, tids, n);
        return;
    }
    size_t k = rc_hold_waiting(p->hold, tids, n, waited);
    rc_buf ids = RC_BUF_INIT, note = RC_BUF_INIT;
    if (k == 0) goto out;
    pthread_mutex_lock(&p->mu);
    int64_t now = rc_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (!waited[i]) continue;
        const uint8_t *tid = tids + i * TRACE_ID_BYTES;
        ct_trace t;
        static const ct_facts none;
        bool known = ct_map_find(p->map, tid, now, &t);
        rc_buf_append(&ids, tid, TRACE_ID_BYTES);
        if (rc_hold_durable(p->hold))
            ct_note_add(&note, tid, known ? t.facts : &none,
                        (known && t.root_seen) || ct_roots_seen(p->roots, tid));
    }
    pthread_mutex_unlock(&p->mu);
    rc_error err = {{0}};
    if (ids.failed || note.failed ||
        rc_hold_settle_noted(p->hold, (const uint8_t *)ids.data, k, note.data, note.len, &err) !=
            RC_OK) {
        rc_counter_add(p->note_failures, 1);
        rc_warn(p->id,
                "could not note what settled %zu traces (%s); their waiting spans go on "
                "attributed from memory",
                k, ids.failed || note.failed ? "out of memory" : err.msg);
        if (!ids.failed) rc_hold_settle(p->hold, (const uint8_t *)ids.data, k);
    }
out:
    free(waited);
    rc_buf_free(&ids);
    rc_buf_free(&note);
}

/* After a put: the traces of held spans that got settled while the put was
 * under way (the hold indexes a record only once it is written), so that
 * none waits for news that came and went. */
static void recheck_held(customer_processor *p, const rc_batch *held)
{
    rc_buf now_settled = RC_BUF_INIT;
    pthread_mutex_lock(&p->mu);
    int64_t now = rc_now_ms();
    for (size_t r = 0; r < held->n_runs; r++)
        for (size_t i = 0; i < held->runs[r].n_spans; i++) {
            const uint8_t *tid = trace_id_of(held->runs[r].spans[i]);
            ct_trace t;
            bool known = ct_map_find(p->map, tid, now, &t);
            if (settled(p, tid, &t, known)) rc_buf_append(&now_settled, tid, TRACE_ID_BYTES);
        }
    pthread_mutex_unlock(&p->mu);
    settle_traces(p, (const uint8_t *)now_settled.data, now_settled.len / TRACE_ID_BYTES);
    rc_buf_free(&now_settled);
}

static void finish_marked(customer_processor *p, rc_batch *b, const uint8_t *marks,
                          rc_hold_reason why);

/* Moves the spans marked to wait into the hold. Those it refuses go on now
 * with the rest, finished as if their wait had ended at the bound. */
static void hold_waiting(customer_processor *p, rc_batch *b, batch_work *w)
{
    rc_batch *held = rc_batch_split(b, w->marks);
    rc_error err = {{0}};
    rc_status st = held ? rc_hold_put(p->hold, held, &err) : RC_ENOMEM;
    if (st == RC_OK) {
        rc_counter_add(p->waited_spans, held->n_spans);
        recheck_held(p, held);
        publish_hold_stats(p);
        rc_batch_free(held);
        return;
    }
    rc_debug(p->id, "%zu spans go on without waiting: %s", w->n_wait,
             held ? err.msg : "out of memory");
    if (!held) { /* b is unchanged: finish its marked spans in place */
        finish_marked(p, b, w->marks, RC_HOLD_BOUND);
        return;
    }
    finish_marked(p, held, NULL, RC_HOLD_BOUND);
    /* The runs came out of b, whose array has room for them again. */
    rc_batch_move(b, held);
    rc_batch_free(held);
}

static rc_status customer_consume(void *inst, rc_batch *b, rc_error *err)
{
    customer_processor *p = inst;
    batch_work w = {0};
    if (!read_batch(p, b, &w)) {
        work_free(&w);
        rc_batch_free(b);
        rc_error_set(err, "out of memory in %s, retry later", p->id);
        return RC_ENOMEM;
    }
    resolve_batch(p, b, &w, p->hold != NULL);
    settle_traces(p, (const uint8_t *)w.settled.data, w.settled.len / TRACE_ID_BYTES);
    if (w.n_wait) hold_waiting(p, b, &w);
    add_counts(p->by_source, w.by_source, SRC_COUNT);
    work_free(&w);
    if (b->n_spans == 0) { /* everything waits: held means accepted */
        rc_batch_free(b);
        return RC_OK;
    }
    return rc_consume(p->next, b, err);
}

/* --- spans back from the hold -------------------------------------------------- */

static int release_reason(customer_processor *p, const uint8_t *tid, const ct_trace *t, bool known,
                          rc_hold_reason why)
{
    if (known && (t->facts->c.have & CV_ID)) return R_ATTRIBUTION;
    if ((known && t->root_seen) || (tid && ct_roots_seen(p->roots, tid))) return R_ROOT;
    switch (why) {
    case RC_HOLD_TIMEOUT:
        return R_TIMEOUT;
    case RC_HOLD_BOUND:
        return R_BOUND;
    case RC_HOLD_SHUTDOWN:
        return R_SHUTDOWN;
    default:
        return R_EVICTED; /* settled, but the map has forgotten the trace since */
    }
}

/* A span that waited: its customer and identifiers from its trace, or the
 * default. Its own identifiers were written when it arrived. Under mu. */
static void finish_released(customer_processor *p, rc_span_run *run, otlp_span *s,
                            rc_hold_reason why, int64_t now, uint64_t *by_source,
                            uint64_t *by_reason)
{
    const uint8_t *tid = trace_id_of(s);
    ct_trace t;
    bool known = tid && ct_map_find(p->map, tid, now, &t);
    span_ctx c = ctx_of(run, s, NULL);
    by_reason[release_reason(p, tid, &t, known, why)]++;
    if (known && (t.facts->c.have & CV_ID)) {
        write_fields(&c, &t.facts->c, t.facts->c.have);
        by_source[SRC_TRACE]++;
    } else {
        write_default(p, run, &c, by_source);
    }
    if (known) write_missing_ids(&c, NULL, t.facts, true);
    write_tenant(run, s);
}

/* Finishes the spans of b that waited, or (marks not NULL) those marked to.
 * Counts them only once they are sure to go on: a release the next stage
 * refuses is offered again, and finished again. */
static void finish_spans(customer_processor *p, rc_batch *b, const uint8_t *marks,
                         rc_hold_reason why, uint64_t *by_source, uint64_t *by_reason)
{
    pthread_mutex_lock(&p->mu);
    int64_t now = rc_now_ms();
    size_t at = 0;
    for (size_t r = 0; r < b->n_runs; r++) {
        bool wrote = false;
        for (size_t i = 0; i < b->runs[r].n_spans; i++, at++) {
            if (marks && !marks[at]) continue;
            finish_released(p, &b->runs[r], b->runs[r].spans[i], why, now, by_source, by_reason);
            wrote = true;
        }
        if (wrote) clear_resource_tenant(&b->runs[r]);
    }
    pthread_mutex_unlock(&p->mu);
}

static void finish_marked(customer_processor *p, rc_batch *b, const uint8_t *marks,
                          rc_hold_reason why)
{
    uint64_t by_source[SRC_COUNT] = {0}, by_reason[R_COUNT] = {0};
    finish_spans(p, b, marks, why, by_source, by_reason);
    add_counts(p->by_source, by_source, SRC_COUNT);
    add_counts(p->released, by_reason, R_COUNT);
}

static rc_status customer_release(void *arg, rc_batch *b, rc_hold_reason why, rc_error *err)
{
    customer_processor *p = arg;
    uint64_t by_source[SRC_COUNT] = {0}, by_reason[R_COUNT] = {0};
    size_t n = b->n_spans;
    finish_spans(p, b, NULL, why, by_source, by_reason);
    rc_status st = rc_consume(p->next, b, err);
    if (st != RC_OK) {
        rc_counter_add(p->failed_spans, n); /* the hold offers them again */
        return st;
    }
    add_counts(p->by_source, by_source, SRC_COUNT);
    add_counts(p->released, by_reason, R_COUNT);
    publish_hold_stats(p);
    return RC_OK;
}

/* A note read back at open: what settled some traces before a restart. */
typedef struct replay_ctx {
    customer_processor *p;
    int64_t then; /* the note's time on the monotonic clock */
} replay_ctx;

static void replay_entry(void *arg, const uint8_t *tid, const ct_facts *f, bool root_seen)
{
    replay_ctx *c = arg;
    if (root_seen) ct_roots_add(c->p->roots, tid);
    ct_map_merge(c->p->map, tid, f, root_seen, c->then);
}

static void replay_note(void *arg, const void *data, size_t len, int64_t written_unix_ms)
{
    customer_processor *p = arg;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    int64_t age = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000 - written_unix_ms;
    replay_ctx c = {p, rc_now_ms() - (age > 0 ? age : 0)};
    pthread_mutex_lock(&p->mu);
    if (!ct_note_each(data, len, replay_entry, &c))
        rc_warn(p->id, "a held note is malformed; what it said after the fault is ignored");
    pthread_mutex_unlock(&p->mu);
}

static bool is_settled_cb(void *arg, const uint8_t *tid)
{
    customer_processor *p = arg;
    pthread_mutex_lock(&p->mu);
    ct_trace t;
    bool known = ct_map_find(p->map, tid, rc_now_ms(), &t);
    bool s = settled(p, tid, &t, known);
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* About once a second, on the hold's thread: expired traces go even when
 * nothing arrives. */
static void tick(void *arg)
{
    customer_processor *p = arg;
    pthread_mutex_lock(&p->mu);
    ct_map_trim(p->map, rc_now_ms());
    publish_map_stats(p);
    pthread_mutex_unlock(&p->mu);
    publish_hold_stats(p);
}

/* Without a hold (nothing ever waits) a thread of its own calls tick. */
static void *sweep_loop(void *arg)
{
    customer_processor *p = arg;
    pthread_mutex_lock(&p->sweeper.mu);
    while (!p->sweeper.stopping) {
        rc_worker_wait(&p->sweeper, rc_now_ms() + 1000);
        if (p->sweeper.stopping) break;
        pthread_mutex_unlock(&p->sweeper.mu);
        tick(p);
        pthread_mutex_lock(&p->sweeper.mu);
    }
    pthread_mutex_unlock(&p->sweeper.mu);
    return NULL;
}

/* --- life cycle --------------------------------------------------------------------- */

static void customer_destroy(void *inst)
{
    customer_processor *p = inst;
    if (!p) return;
    rc_hold_close(p->hold); /* only after a failed start; shutdown closed it */
    rc_worker_stop(&p->sweeper);
    rc_worker_destroy(&p->sweeper);
    ct_map_free(p->map);
    ct_roots_free(p->roots);
    pthread_mutex_destroy(&p->mu);
    free(p->default_copy);
    free(p->from_header);
    free(p->hold_dir);
    free(p->pipeline);
    free(p->id);
    free(p);
}

static rc_status parse_config(customer_processor *p, rc_cfg *cfg, rc_error *err)
{
    const char *def = NULL, *header = NULL, *dir = NULL;
    uint64_t max_mib = 0;
    if (rc_cfg_string(cfg, "default_customer", NULL, &def, err) ||
        rc_cfg_string(cfg, "from_header", NULL, &header, err) ||
        rc_cfg_duration_ms(cfg, "propagation_wait", DEFAULT_WAIT_MS, &p->wait_ms, err) ||
        rc_cfg_duration_ms(cfg, "ttl", 0, &p->ttl_ms, err) ||
        rc_cfg_uint(cfg, "max_traces", 100000, 0, 100000000, &p->max_traces, err) ||
        rc_cfg_uint(cfg, "max_memory_mib", 32, 1, 1 << 20, &max_mib, err) ||
        rc_cfg_uint(cfg, "max_held_mib", 0, 1, 1 << 24, &p->held_mib, err) ||
        rc_cfg_string(cfg, "hold_directory", NULL, &dir, err) ||
        rc_cfg_bool(cfg, "drop_original", false, &p->drop_original, err))
        return RC_EINVAL;
    if (p->wait_ms > MAX_WAIT_MS)
        return rc_cfg_error(err, rc_cfg_get(cfg, "propagation_wait"),
                            "propagation_wait must be at most 24h");
    if (rc_cfg_get(cfg, "ttl") && p->ttl_ms == 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "ttl"), "ttl must be positive");
    if (rc_cfg_get(cfg, "ttl") && p->wait_ms > p->ttl_ms)
        return rc_cfg_error(err, rc_cfg_get(cfg, "propagation_wait"),
                            "propagation_wait (%llums) must not exceed ttl (%llums)",
                            (unsigned long long)p->wait_ms, (unsigned long long)p->ttl_ms);
    /* A trace is remembered at least as long as its spans may wait for it. */
    if (!rc_cfg_get(cfg, "ttl")) p->ttl_ms = p->wait_ms * 2 > 60000 ? p->wait_ms * 2 : 60000;
    if (dir && !dir[0])
        return rc_cfg_error(err, rc_cfg_get(cfg, "hold_directory"), "must not be empty");
    if (def && *def) {
        char id[TEXT_IDENTIFIER_MAX];
        size_t n = text_identifier(def, id);
        if (!(p->default_copy = strndup(id, n))) goto oom;
        p->default_customer = p->default_copy;
    }
    if (header && *header) {
        if (!(p->from_header = strdup(header))) goto oom;
        for (char *c = p->from_header; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    }
    if (dir && !(p->hold_dir = strdup(dir))) goto oom;
    p->max_map_bytes = max_mib << 20;
    return rc_cfg_reject_unknown(cfg, err);
oom:
    rc_error_set(err, "out of memory");
    return RC_ENOMEM;
}

static void *customer_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    customer_processor *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    pthread_mutex_init(&p->mu, NULL);
    rc_worker_init(&p->sweeper);
    if (!(p->id = strdup(id->id)) ||
        !(p->pipeline = strdup(id->pipeline ? id->pipeline : "traces")))
        goto oom;
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

static void register_metrics(customer_processor *p)
{
    char labels[256], l[320];
    snprintf(labels, sizeof labels, "processor=\"%s\"", p->id);
    p->g_entries =
        rc_gauge_register_value("respan_processor_customer_trace_map_entries",
                                "Traces whose facts the customer processor remembers.", labels);
    p->g_bytes =
        rc_gauge_register_value("respan_processor_customer_trace_map_bytes",
                                "Heap bytes of the customer processor's trace map.", labels);
    p->g_waiting = rc_gauge_register_value("respan_processor_customer_waiting_spans",
                                           "Spans waiting for their trace's customer.", labels);
    p->g_held_bytes = rc_gauge_register_value(
        "respan_processor_customer_held_bytes",
        "Bytes the waiting spans take in the hold (on disk in front of a durable exporter).",
        labels);
    p->invalid_fields = rc_counter_register(
        "respan_processor_customer_invalid_fields",
        "Customer fields dropped because their value was invalid or of the wrong type.", labels);
    p->waited_spans = rc_counter_register("respan_processor_customer_waited_spans",
                                          "Spans that waited for their trace's customer.", labels);
    p->evictions =
        rc_counter_register("respan_processor_customer_trace_map_evictions",
                            "Traces dropped from the map to stay within its bounds.", labels);
    p->failed_spans = rc_counter_register(
        "respan_processor_customer_send_failed_spans",
        "Spans that waited which the next stage refused for now (they are offered again).", labels);
    p->note_failures = rc_counter_register(
        "respan_processor_customer_note_failures",
        "Times what settled a trace could not be written to the hold before its spans went on.",
        labels);
    for (int i = 0; i < SRC_COUNT; i++) {
        snprintf(l, sizeof l, "%s,source=\"%s\"", labels, source_names[i]);
        p->by_source[i] = rc_counter_register("respan_processor_customer_spans",
                                              "Spans by where their customer came from.", l);
    }
    for (int i = 0; i < R_COUNT; i++) {
        snprintf(l, sizeof l, "%s,reason=\"%s\"", labels, reason_names[i]);
        p->released[i] = rc_counter_register(
            "respan_processor_customer_released_spans",
            "Spans that waited or were to wait, by what ended the wait: their trace's customer "
            "(attribution), its root (root), propagation_wait (timeout), max_held_mib (bound), "
            "shutdown of a memory hold, or the trace map forgetting the trace (evicted).",
            l);
    }
}

/* ./data/hold/<pipeline>/<id>, with any '/' of either turned into '_'. */
static char *default_hold_dir(const customer_processor *p)
{
    char *dir = NULL;
    if (asprintf(&dir, "./data/hold/%s/%s", p->pipeline, p->id) < 0) return NULL;
    char *leaf = dir + strlen("./data/hold/");
    for (char *c = leaf; *c; c++)
        if (*c == '/' && c != leaf + strlen(p->pipeline)) *c = '_';
    return dir;
}

static rc_status open_hold(customer_processor *p, rc_error *err)
{
    bool disk = p->next->durable;
    uint64_t mib = p->held_mib ? p->held_mib
                   : disk      ? DEFAULT_HELD_MIB_DISK
                               : DEFAULT_HELD_MIB_MEMORY;
    if (disk && !p->hold_dir && !(p->hold_dir = default_hold_dir(p))) {
        rc_error_set(err, "%s: out of memory", p->id);
        return RC_ENOMEM;
    }
    rc_hold_options o = {p->id,     p->hold_dir, disk ? RC_QUEUE_FSYNC : RC_QUEUE_MEMORY,
                         mib << 20, p->wait_ms,  0};
    rc_hold_callbacks cb = {customer_release, replay_note, is_settled_cb, tick, p};
    rc_status st = rc_hold_open(&o, &cb, &p->hold, err);
    if (st == RC_OK && disk)
        rc_info(p->id,
                "spans wait up to %llums for their trace's customer on disk in %s (at most "
                "%llu MiB), acknowledged once fsync'd",
                (unsigned long long)p->wait_ms, p->hold_dir, (unsigned long long)mib);
    return st;
}

static rc_status customer_start(void *inst, const rc_consumer *next, rc_error *err)
{
    customer_processor *p = inst;
    p->next = next;
    register_metrics(p);
    ct_map_limits lim = {p->ttl_ms, p->max_traces, p->max_map_bytes};
    if (!(p->map = ct_map_new(&lim)) || !(p->roots = ct_roots_new())) {
        rc_error_set(err, "%s: out of memory", p->id);
        return RC_ENOMEM;
    }
    if (p->wait_ms > 0) {
        rc_status st = open_hold(p, err);
        if (st != RC_OK) return st;
    } else if (!rc_worker_start(&p->sweeper, sweep_loop, p)) {
        rc_error_set(err, "%s: cannot start its thread", p->id);
        return RC_EIO;
    }
    publish_hold_stats(p);
    return RC_OK;
}

/* End of a finite input: no later span can name a waiting trace's
 * customer, so every held span goes now, as if its wait had run out. */
static void customer_flush(void *inst, uint64_t timeout_ms)
{
    customer_processor *p = inst;
    if (!p->hold) return;
    rc_hold_release_all(p->hold);
    int64_t until = rc_now_ms() + (int64_t)timeout_ms;
    while (rc_hold_spans(p->hold) > 0 && rc_now_ms() < until)
        rc_sleep_ms(10);
    publish_hold_stats(p);
}

static void customer_shutdown(void *inst)
{
    customer_processor *p = inst;
    rc_hold_close(p->hold);
    p->hold = NULL;
    rc_worker_stop(&p->sweeper);
    rc_gauge_set(p->g_waiting, 0);
}

const rc_processor_factory rc_customer_processor_factory = {
    .type = "customer",
    .description = "finds the customer of every span (attributes, trace, header, default), "
                   "waiting for its trace's when needed, and writes the canonical "
                   "respan.customer_params.* and identifier attributes",
    .create = customer_create,
    .start = customer_start,
    .consume = customer_consume,
    .flush = customer_flush,
    .shutdown = customer_shutdown,
    .destroy = customer_destroy,
};
