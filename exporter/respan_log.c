/*
 * respan_log.c - one Respan request-log JSON object per span (JSONL).
 *
 * The contract is exporter/respan_log.h; the field-by-field mapping, with
 * each field's sources in precedence order, is docs/respan-log-mapping.md.
 *
 * Where facts come from. The LLM facts (model, provider, tokens, messages,
 * kind, customer, identifiers, environment, workflow name) are read through
 * the one convention scanner of llm/conventions.h. Its table ranks the
 * canonical keys the customer and cost processors write first, so a span
 * that went through them is read from its canonical attributes and a span
 * that did not falls back, degraded, to its instrumentation's own keys. The
 * fields that no processor writes (request parameters, time to first token,
 * HTTP status, entity path and name, function input/output, tool
 * definitions, respan.cost) come from the small table `xkeys` below: those
 * keys are not in the convention table, so there is still one table per key.
 *
 * Per span the attributes are walked twice: once by the scanner, once here
 * with one hash lookup per key in an index built (once per process) from
 * the convention table and `xkeys`. The second walk finds the exporter-only
 * fields and classifies every attribute, so that the metadata loop knows
 * without another lookup whether an attribute was consumed into a named
 * field (then it is not repeated in metadata).
 *
 * Messages (GenAI parts JSON -> OpenAI chat shape) are converted by a small
 * validating reader that walks their text once and copies string contents
 * still escaped: a jansson tree per LLM span was most of the mapping's
 * time. jansson is used only on rarer paths: tool definitions and JSON
 * metadata objects to unfold.
 *
 * Memory. Nothing here mallocs per span but jansson on those rare paths.
 * Working text goes to a few rc_bufs that live for one call and keep their
 * capacity from span to span; the resource's pre-rendered metadata,
 * messages built for spans that did not pass through the cost processor
 * and the strings the scanner makes come from the caller's scratch arena,
 * which grows with the batch (the caller frees or recreates it after the
 * call).
 *
 * A log depends on its span and the span's resource only, never on the
 * other spans of the batch: a trace's logs are the same however its spans
 * were grouped into requests and batches. What a span is to learn from its
 * trace (its customer, its workflow) a processor writes onto it first.
 *
 * Invariants: every object is written with core/json_writer.h, so each line
 * is valid JSON with no raw newline whatever the span carried; a span is
 * never dropped for bad data (a value that cannot be read for its field is
 * left in metadata, a messages JSON that cannot be parsed is passed through
 * as the string it is); the only failure is memory.
 */
#include "exporter/respan_log.h"

#include "core/bytescan.h"
#include "core/json_writer.h"
#include "llm/conventions.h"
#include "llm/messages.h"
#include "llm/span_attrs.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LIT(b, s) rc_buf_append((b), (s), sizeof(s) - 1)

#define SPAN_NAME_MAX_CHARS 255
#define MAX_CONVERT_BYTES (4 * 1024 * 1024) /* larger messages pass through unconverted */
#define MAX_JSON_DEPTH 32
#define MAX_FLAT_TOOLS 64
#define STACK_ATTRS 128

/* --- the exporter-only keys ------------------------------------------------ */

/* Named fields that no processor writes canonically. F_SERVICE_NAME and
 * F_BULKY carry no value: they only mark keys for the metadata rules. */
typedef enum field_id {
    F_NONE,
    F_PATH,
    F_ENTITY_NAME,
    F_TTFT,
    F_TEMPERATURE,
    F_MAX_TOKENS,
    F_TOP_P,
    F_FREQUENCY_PENALTY,
    F_PRESENCE_PENALTY,
    F_STREAM,
    F_HTTP_STATUS,
    F_ENTITY_INPUT,
    F_ENTITY_OUTPUT,
    F_COST,
    F_TOOLS,
    F_SYSTEM,
    F_INVOCATION,
    F_SERVICE_NAME,
    F_BULKY,
    F_COUNT,
    /* pseudo fields for the "carried" mask */
    F_INPUT = F_COUNT,
    F_OUTPUT,
} field_id;

typedef enum value_type { T_MARK, T_STR, T_DOUBLE, T_NONNEG, T_INT, T_BOOL, T_ANY } value_type;

static const uint8_t field_type[F_COUNT] = {
    [F_PATH] = T_STR,
    [F_ENTITY_NAME] = T_STR,
    [F_TTFT] = T_NONNEG,
    [F_TEMPERATURE] = T_DOUBLE,
    [F_MAX_TOKENS] = T_INT,
    [F_TOP_P] = T_DOUBLE,
    [F_FREQUENCY_PENALTY] = T_DOUBLE,
    [F_PRESENCE_PENALTY] = T_DOUBLE,
    [F_STREAM] = T_BOOL,
    [F_HTTP_STATUS] = T_INT,
    [F_ENTITY_INPUT] = T_ANY,
    [F_ENTITY_OUTPUT] = T_ANY,
    [F_COST] = T_NONNEG,
    [F_TOOLS] = T_ANY,
    [F_SYSTEM] = T_ANY,
    [F_INVOCATION] = T_STR,
};

enum {
    X_MS = 1,      /* the value is in milliseconds */
    X_PARENTS = 2, /* a path of the entities above the span: its own name follows */
};

typedef struct xkey {
    const char *key;
    uint8_t field;
    uint8_t rank; /* lower wins, per field */
    uint8_t flags;
} xkey;

static const xkey xkeys[] = {
    {"traceloop.entity.path", F_PATH, 0, X_PARENTS},
    {"ai.path", F_PATH, 1, 0},
    {"traceloop.entity.name", F_ENTITY_NAME, 0, 0},
    {"gen_ai.response.time_to_first_chunk", F_TTFT, 0, 0},
    {"ai.response.msToFirstChunk", F_TTFT, 2, X_MS},
    {"ai.stream.msToFirstChunk", F_TTFT, 3, X_MS},
    {"gen_ai.request.temperature", F_TEMPERATURE, 0, 0},
    {"ai.settings.temperature", F_TEMPERATURE, 1, 0},
    {"gen_ai.request.max_tokens", F_MAX_TOKENS, 0, 0},
    {"ai.settings.maxOutputTokens", F_MAX_TOKENS, 1, 0},
    {"ai.settings.maxTokens", F_MAX_TOKENS, 2, 0},
    {"gen_ai.request.top_p", F_TOP_P, 0, 0},
    {"ai.settings.topP", F_TOP_P, 1, 0},
    {"gen_ai.request.frequency_penalty", F_FREQUENCY_PENALTY, 0, 0},
    {"ai.settings.frequencyPenalty", F_FREQUENCY_PENALTY, 1, 0},
    {"llm.frequency_penalty", F_FREQUENCY_PENALTY, 2, 0},
    {"gen_ai.request.presence_penalty", F_PRESENCE_PENALTY, 0, 0},
    {"ai.settings.presencePenalty", F_PRESENCE_PENALTY, 1, 0},
    {"llm.presence_penalty", F_PRESENCE_PENALTY, 2, 0},
    {"gen_ai.request.stream", F_STREAM, 0, 0},
    {"llm.is_streaming", F_STREAM, 1, 0},
    {"http.response.status_code", F_HTTP_STATUS, 0, 0},
    {"http.status_code", F_HTTP_STATUS, 1, 0},
    {"traceloop.entity.input", F_ENTITY_INPUT, 0, 0},
    {"input.value", F_ENTITY_INPUT, 1, 0},
    {"ai.prompt", F_ENTITY_INPUT, 2, 0},
    {"traceloop.entity.output", F_ENTITY_OUTPUT, 0, 0},
    {"output.value", F_ENTITY_OUTPUT, 1, 0},
    {"respan.cost", F_COST, 0, 0},
    {"gen_ai.tool.definitions", F_TOOLS, 0, 0},
    {"ai.prompt.tools", F_TOOLS, 1, 0},
    {"gen_ai.system_instructions", F_SYSTEM, 0, 0},
    {"llm.invocation_parameters", F_INVOCATION, 0, 0}, /* JSON; stays in metadata */
    {"service.name", F_SERVICE_NAME, 0, 0},
    {"pydantic_ai.all_messages", F_BULKY, 0, 0},
    {"logfire.json_schema", F_BULKY, 0, 0},
};

/* Flattened tool definitions: {prefix}{i}.name / .description / .parameters
 * (OpenLLMetry) and {prefix}{i}.tool.json_schema (OpenInference). */
static const xkey xprefixes[] = {
    {"llm.request.functions.", F_TOOLS, 2, 0},
    {"llm.tools.", F_TOOLS, 3, 0},
};

/* Facts whose named fields every log carries when the fact is known, and
 * the facts the log_type is derived from. */
#define CUSTOMER_FACTS RC_FACTS_CUSTOMER
#define LOG_TYPE_FACTS                                                                             \
    (RC_FACT_BIT(RC_FACT_LOG_TYPE) | RC_FACT_BIT(RC_FACT_TRACELOOP_KIND) |                         \
     RC_FACT_BIT(RC_FACT_OPENINFERENCE_KIND) | RC_FACT_BIT(RC_FACT_LLM_REQUEST_TYPE) |             \
     RC_FACT_BIT(RC_FACT_VERCEL_OPERATION) | RC_FACT_BIT(RC_FACT_OPERATION))
#define MODEL_FACTS (RC_FACT_BIT(RC_FACT_REQUEST_MODEL) | RC_FACT_BIT(RC_FACT_RESPONSE_MODEL))
#define USAGE_FACTS                                                                                \
    (RC_FACT_BIT(RC_FACT_INPUT_TOKENS) | RC_FACT_BIT(RC_FACT_OUTPUT_TOKENS) |                      \
     RC_FACT_BIT(RC_FACT_CACHE_READ_TOKENS) | RC_FACT_BIT(RC_FACT_CACHE_CREATION_TOKENS) |         \
     RC_FACT_BIT(RC_FACT_REASONING_TOKENS) | RC_FACT_BIT(RC_FACT_TOTAL_TOKENS))
/* What the resource may supply, all of it named fields: a resource
 * attribute that supplies one is not repeated in metadata. */
#define RESOURCE_FACTS                                                                             \
    (RC_FACTS_CUSTOMER | RC_FACT_BIT(RC_FACT_ENVIRONMENT) | RC_FACT_BIT(RC_FACT_WORKFLOW_NAME))

/* --- the key index ------------------------------------------------------------ */

typedef struct ix_entry {
    const char *key;
    uint32_t len;
    uint64_t facts;   /* convention facts the key feeds (exact and JSON rows) */
    unsigned sources; /* RC_MSG_* | RC_SRC_METADATA */
    uint8_t field, rank, flags;
} ix_entry;

typedef struct ix_prefix {
    const char *key;
    uint32_t len;
    unsigned sources;
    uint8_t field, rank;
} ix_prefix;

#define IX_SLOTS 2048 /* power of two, > 3x the keys */
#define IX_MAX 600
#define IX_MAX_PREFIXES 24
#define IX_EMPTY 0xffff

static ix_entry ix_entries[IX_MAX];
static size_t ix_n;
static uint16_t ix_slots[IX_SLOTS];
static ix_prefix ix_prefixes[IX_MAX_PREFIXES];
static size_t ix_n_prefixes;
static pthread_once_t ix_once = PTHREAD_ONCE_INIT;

/* Word-at-a-time: this runs once per attribute of every span. */
static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull), w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, s + i, n - i);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    return h ^ (h >> 29);
}

static const ix_entry *ix_find(const char *key, size_t len, uint64_t h)
{
    for (size_t i = h & (IX_SLOTS - 1); ix_slots[i] != IX_EMPTY; i = (i + 1) & (IX_SLOTS - 1)) {
        const ix_entry *e = &ix_entries[ix_slots[i]];
        if (e->len == len && memcmp(e->key, key, len) == 0) return e;
    }
    return NULL;
}

/* The entry of `key`, added when new; NULL when the index is full (a
 * build-time mistake the unit test would show as a missing field). */
static ix_entry *ix_add(const char *key)
{
    size_t len = strlen(key);
    ix_entry *e = (ix_entry *)ix_find(key, len, key_hash(key, len));
    if (e || ix_n >= IX_MAX) return e;
    size_t i = key_hash(key, len) & (IX_SLOTS - 1);
    while (ix_slots[i] != IX_EMPTY)
        i = (i + 1) & (IX_SLOTS - 1);
    e = &ix_entries[ix_n];
    *e = (ix_entry){.key = key, .len = (uint32_t)len};
    ix_slots[i] = (uint16_t)ix_n++;
    return e;
}

static void ix_add_prefix(const char *key, unsigned sources, uint8_t field, uint8_t rank)
{
    if (ix_n_prefixes < IX_MAX_PREFIXES)
        ix_prefixes[ix_n_prefixes++] =
            (ix_prefix){key, (uint32_t)strlen(key), sources, field, rank};
}

static void ix_build(void)
{
    memset(ix_slots, 0xff, sizeof ix_slots);
    size_t n;
    const rc_conv_entry *t = rc_conv_table(&n);
    for (size_t k = 0; k < n; k++) {
        if (t[k].match == RC_MATCH_PREFIX) {
            ix_add_prefix(t[k].key, t[k].source, F_NONE, 0);
            continue;
        }
        ix_entry *e = ix_add(t[k].key);
        if (!e) continue;
        if (t[k].fact >= 0) e->facts |= RC_FACT_BIT(t[k].fact);
        e->sources |= t[k].source;
    }
    for (size_t k = 0; k < sizeof xkeys / sizeof *xkeys; k++) {
        ix_entry *e = ix_add(xkeys[k].key);
        if (!e) continue;
        e->field = xkeys[k].field;
        e->rank = xkeys[k].rank;
        e->flags = xkeys[k].flags;
    }
    for (size_t k = 0; k < sizeof xprefixes / sizeof *xprefixes; k++)
        ix_add_prefix(xprefixes[k].key, 0, xprefixes[k].field, xprefixes[k].rank);
}

static const ix_prefix *ix_find_prefix(const char *key)
{
    for (size_t i = 0; i < ix_n_prefixes; i++) {
        const ix_prefix *p = &ix_prefixes[i];
        if (p->key[0] == key[0] && strncmp(p->key, key, p->len) == 0) return p;
    }
    return NULL;
}

/* --- small writers ------------------------------------------------------------ */

static void put_str(rc_buf *b, const char *s, size_t n)
{
    rc_json_string(b, n ? s : "", n);
}

static void put_buf_str(rc_buf *b, const rc_buf *text)
{
    put_str(b, text->data, text->len);
}

/* ,"key": for the mapping's own field names, which are plain identifiers
 * and need no escaping (attribute keys, which are user data, go through
 * rc_json_key). */
static void put_key(rc_buf *b, const char *key)
{
    size_t n = strlen(key);
    if (!rc_buf_reserve(b, n + 4)) return;
    char *o = b->data + b->len;
    o[0] = ',';
    o[1] = '"';
    memcpy(o + 2, key, n);
    o[n + 2] = '"';
    o[n + 3] = ':';
    b->len += n + 4;
}

static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil_from_days(int64_t z, unsigned *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (unsigned)(yoe + era * 400) + (*m <= 2);
}

/* Nanoseconds as decimal seconds ("1.5", "0.000001999"): exact, and the
 * double nearest to it is the one the division would give. */
static void put_seconds(rc_buf *b, uint64_t ns)
{
    rc_json_u64(b, ns / 1000000000u);
    unsigned frac = (unsigned)(ns % 1000000000u);
    if (!frac) return;
    char d[10] = ".";
    int n = 9;
    while (frac % 10 == 0) {
        frac /= 10;
        n--;
    }
    put_digits(d + 1, frac, n);
    rc_buf_append(b, d, (size_t)n + 1);
}

/* "2026-11-24T10:00:00.123456Z" */
static void put_time(rc_buf *b, uint64_t unix_nano)
{
    uint64_t secs = unix_nano / 1000000000u;
    unsigned micros = (unsigned)(unix_nano % 1000000000u / 1000u);
    unsigned y, mo, d, sod = (unsigned)(secs % 86400u);
    civil_from_days((int64_t)(secs / 86400u), &y, &mo, &d);
    char t[29] = "\"0000-00-00T00:00:00.000000Z\"";
    put_digits(t + 1, y, 4);
    put_digits(t + 6, mo, 2);
    put_digits(t + 9, d, 2);
    put_digits(t + 12, sod / 3600, 2);
    put_digits(t + 15, sod / 60 % 60, 2);
    put_digits(t + 18, sod % 60, 2);
    put_digits(t + 21, micros, 6);
    rc_buf_append(b, t, 29);
}

/* Bytes of s that hold at most `max` code points, cut between sequences. */
static size_t utf8_prefix(const char *s, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80) continue; /* continuation */
        if (chars++ == max) return i;
    }
    return n;
}

static bool glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

static bool any_glob(const char *const *pats, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (pats[i] && glob_match(pats[i], key)) return true;
    return false;
}

/* --- JSON values ------------------------------------------------------------------ */

/* An AnyValue as plain JSON: the text that stands for an array or kvlist. */
static void put_any_json(rc_buf *b, const otlp_any_value *v, int depth)
{
    if (!v || depth > MAX_JSON_DEPTH) {
        LIT(b, "null");
        return;
    }
    switch (v->value_case) {
    case RC_AV_STRING:
        rc_json_cstr(b, v->string_value);
        break;
    case RC_AV_INT:
        rc_json_i64(b, v->int_value);
        break;
    case RC_AV_DOUBLE:
        rc_json_double(b, v->double_value);
        break;
    case RC_AV_BOOL:
        if (v->bool_value)
            LIT(b, "true");
        else
            LIT(b, "false");
        break;
    case RC_AV_BYTES:
        rc_json_base64(b, v->bytes_value.data, v->bytes_value.len);
        break;
    case RC_AV_ARRAY: {
        const otlp_array_value *a = v->array_value;
        rc_buf_putc(b, '[');
        for (size_t i = 0; a && i < a->n_values; i++) {
            if (i) rc_buf_putc(b, ',');
            put_any_json(b, a->values[i], depth + 1);
        }
        rc_buf_putc(b, ']');
        break;
    }
    case RC_AV_KVLIST: {
        const otlp_kvlist *kl = v->kvlist_value;
        bool first = true;
        rc_buf_putc(b, '{');
        for (size_t i = 0; kl && i < kl->n_values; i++) {
            const otlp_key_value *kv = kl->values[i];
            if (!kv || !kv->key) continue;
            if (!first) rc_buf_putc(b, ',');
            first = false;
            rc_json_key(b, kv->key);
            put_any_json(b, kv->value, depth + 1);
        }
        rc_buf_putc(b, '}');
        break;
    }
    default:
        LIT(b, "null");
        break;
    }
}

/* Parses a JSON array or object; NULL when s is not one or is too big. */
static json_t *parse_json(const char *s, size_t n)
{
    if (!s || n == 0 || n > MAX_CONVERT_BYTES) return NULL;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    if (i == n || (s[i] != '[' && s[i] != '{')) return NULL;
    return json_loadb(s, n, 0, NULL);
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* --- the call's working state ------------------------------------------------------ */

/* Metadata keys written for the current span, by hash, so a key never
 * appears twice (span attributes win over the resource's). A generation
 * number clears it in O(1) per span. */
#define SEEN_SLOTS 512
#define SEEN_MAX 384

typedef struct seen_set {
    uint64_t h[SEEN_SLOTS];
    uint32_t gen[SEEN_SLOTS];
    uint32_t cur;
    size_t n;
} seen_set;

typedef struct md_entry {
    uint64_t h;       /* hash of the key as written */
    const char *text; /* "key":"value", in the scratch arena */
    size_t len;
    bool always; /* service.name: past filters and the cap */
} md_entry;

/* What every span of a run shares through its resource. */
typedef struct run_state {
    const otlp_resource *res;
    bool valid;
    rc_facts facts;
    md_entry *md;
    size_t n_md;
} run_state;

typedef struct log_ctx {
    rc_buf *out;
    const rc_respan_log_opts *opts;
    rc_arena *scratch;
    rc_respan_log_stats *stats;
    bool ok; /* false once memory ran out */
    /* working text, kept from span to span */
    rc_buf escaped_once; /* system text on its way to being escaped twice */
    rc_buf text;         /* a message's text; JSON text made a string */
    rc_buf calls;        /* a message's tool calls */
    rc_buf resps;        /* a message's tool responses */
    rc_buf value;        /* flattened metadata values */
    rc_buf entry;        /* resource metadata entries being rendered */
    run_state run;
    seen_set seen;
} log_ctx;

/* --- one span's view ----------------------------------------------------------------- */

typedef struct attr_info {
    uint64_t h;
    uint32_t klen;
    const ix_entry *e;  /* exact entry, or NULL */
    const ix_prefix *p; /* else prefix family, or NULL */
} attr_info;

typedef struct span_view {
    const otlp_span *span;
    rc_facts f;
    attr_info *info; /* per attribute */
    const otlp_any_value *fv[F_COUNT];
    uint8_t frank[F_COUNT];
    uint8_t fflags[F_COUNT];
    bool flat_tools;         /* llm.request.functions.* / llm.tools.* seen */
    uint64_t consumed_facts; /* facts whose named fields this log carries */
    uint32_t carried;        /* field_id bits of the same */
    const char *log_type;
} span_view;

static bool value_fits(uint8_t type, const otlp_any_value *v)
{
    double d;
    int64_t i;
    bool b;
    switch (type) {
    case T_STR: {
        const char *s = rc_av_str(v);
        return s && s[0];
    }
    case T_DOUBLE:
        return rc_av_double(v, &d) && isfinite(d);
    case T_NONNEG:
        return rc_av_double(v, &d) && isfinite(d) && d >= 0;
    case T_INT:
        return rc_av_int(v, &i);
    case T_BOOL:
        return rc_av_bool(v, &b);
    case T_ANY:
        return v->value_case != 0 &&
               !(v->value_case == RC_AV_STRING && (!v->string_value || !v->string_value[0]));
    default:
        return false;
    }
}

static void offer_field(span_view *v, const ix_entry *e, const otlp_any_value *val)
{
    uint8_t f = e->field;
    if (field_type[f] == T_MARK || (v->fv[f] && v->frank[f] <= e->rank)) return;
    if (!value_fits(field_type[f], val)) return;
    v->fv[f] = val;
    v->frank[f] = e->rank;
    v->fflags[f] = e->flags;
}

/* One lookup per attribute: which field or family it belongs to. */
static void classify_attrs(span_view *v)
{
    const otlp_span *s = v->span;
    for (size_t i = 0; i < s->n_attributes; i++) {
        const otlp_key_value *kv = s->attributes[i];
        attr_info *ai = &v->info[i];
        ai->e = NULL;
        ai->p = NULL;
        if (!kv || !kv->key || !kv->value) {
            ai->klen = UINT32_MAX; /* skipped */
            continue;
        }
        size_t n = strlen(kv->key);
        ai->klen = (uint32_t)n;
        ai->h = key_hash(kv->key, n);
        ai->e = ix_find(kv->key, n, ai->h);
        if (ai->e) {
            if (ai->e->field) offer_field(v, ai->e, kv->value);
            continue;
        }
        ai->p = ix_find_prefix(kv->key);
        if (ai->p && ai->p->field == F_TOOLS) v->flat_tools = true;
    }
}

static bool is_call_type(const char *t)
{
    static const char *const calls[] = {"chat", "completion", "response", "embedding",
                                        "generation"};
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++)
        if (strcmp(t, calls[i]) == 0) return true;
    return false;
}

static bool is_llm_span(const rc_facts *f, const char *log_type)
{
    return (f->have & (MODEL_FACTS | USAGE_FACTS)) || is_call_type(log_type);
}

static bool is_root(const otlp_span *s)
{
    for (size_t i = 0; i < s->parent_span_id.len; i++)
        if (s->parent_span_id.data[i]) return false;
    return true;
}

/* --- metadata ------------------------------------------------------------------------- */

/* The metadata object of one log, written straight into the output: each
 * entry is checked against the key set and the size cap before and after
 * it is written, and rolled back when it does not fit. */
typedef struct md_writer {
    log_ctx *c;
    rc_buf *b;
    size_t cap;
    bool open;
    size_t body_start; /* after the '{' */
    size_t mark;       /* where the current entry started */
    bool opened_here;  /* the current entry wrote the opening */
    bool always;
} md_writer;

static bool seen_check_add(seen_set *s, uint64_t h)
{
    if (s->n >= SEEN_MAX) return false; /* past the table: no dedupe */
    for (size_t i = h & (SEEN_SLOTS - 1);; i = (i + 1) & (SEEN_SLOTS - 1)) {
        if (s->gen[i] != s->cur) {
            s->gen[i] = s->cur;
            s->h[i] = h;
            s->n++;
            return false;
        }
        if (s->h[i] == h) return true;
    }
}

static void seen_reset(seen_set *s)
{
    if (++s->cur == 0) { /* wrapped: really clear */
        memset(s->gen, 0, sizeof s->gen);
        s->cur = 1;
    }
    s->n = 0;
}

enum { MD_DROP, MD_KEEP, MD_ALWAYS };

/* The include/exclude/bulky rules for an attribute key. */
static int md_policy(const rc_respan_log_opts *o, const char *key, uint8_t field)
{
    if (field == F_SERVICE_NAME) return MD_ALWAYS;
    if (field == F_BULKY && o->drop_known_bulky) {
        bool listed = false;
        for (size_t i = 0; i < o->n_include && !listed; i++)
            listed = o->include[i] && strcmp(o->include[i], key) == 0;
        if (!listed) return MD_DROP;
    }
    if (o->n_include && !any_glob(o->include, o->n_include, key)) return MD_DROP;
    if (o->n_exclude && any_glob(o->exclude, o->n_exclude, key)) return MD_DROP;
    return MD_KEEP;
}

/* Starts an entry of at least `min_len` bytes; false when it is a
 * duplicate or cannot fit (then counted as cut off). */
static bool md_begin(md_writer *m, uint64_t h, bool always, size_t min_len)
{
    if (seen_check_add(&m->c->seen, h)) return false;
    size_t used = m->open ? m->b->len - m->body_start : 0;
    if (m->cap && !always && used + min_len + 1 > m->cap) {
        m->c->stats->metadata_truncated++;
        return false;
    }
    m->mark = m->b->len;
    m->always = always;
    m->opened_here = !m->open;
    if (!m->open) {
        LIT(m->b, ",\"metadata\":{");
        m->open = true;
        m->body_start = m->b->len;
    } else {
        rc_buf_putc(m->b, ',');
    }
    return true;
}

static void md_end(md_writer *m)
{
    if (!m->cap || m->always || m->b->len - m->body_start <= m->cap) return;
    m->b->len = m->mark;
    if (m->opened_here) m->open = false;
    m->c->stats->metadata_truncated++;
}

static void md_close(md_writer *m)
{
    if (m->open) rc_buf_putc(m->b, '}');
}

/* An AnyValue flattened to a JSON string token. */
static void put_flat_any(log_ctx *c, rc_buf *b, const otlp_any_value *v)
{
    switch (v->value_case) {
    case RC_AV_STRING:
        rc_json_cstr(b, v->string_value);
        break;
    case RC_AV_INT:
        rc_buf_putc(b, '"');
        rc_json_i64(b, v->int_value);
        rc_buf_putc(b, '"');
        break;
    case RC_AV_DOUBLE:
        if (isfinite(v->double_value)) rc_buf_putc(b, '"');
        rc_json_double(b, v->double_value); /* non-finite: already a string */
        if (isfinite(v->double_value)) rc_buf_putc(b, '"');
        break;
    case RC_AV_BOOL:
        if (v->bool_value)
            LIT(b, "\"true\"");
        else
            LIT(b, "\"false\"");
        break;
    case RC_AV_BYTES:
        rc_json_base64(b, v->bytes_value.data, v->bytes_value.len);
        break;
    default:
        rc_buf_reset(&c->value);
        put_any_json(&c->value, v, 0);
        put_buf_str(b, &c->value);
        break;
    }
}

static void put_flat_jansson(log_ctx *c, rc_buf *b, const json_t *v)
{
    if (json_is_string(v)) {
        put_str(b, json_string_value(v), json_string_length(v));
        return;
    }
    rc_buf_reset(&c->value);
    rc_json_jansson(&c->value, v, MAX_JSON_DEPTH);
    put_buf_str(b, &c->value);
}

static size_t any_min_len(const otlp_any_value *v)
{
    return v->value_case == RC_AV_STRING && v->string_value ? strlen(v->string_value) : 0;
}

static void md_put_any(md_writer *m, const char *key, size_t klen, uint64_t h, bool always,
                       const otlp_any_value *v)
{
    if (!v->value_case || !md_begin(m, h, always, klen + any_min_len(v) + 5)) return;
    put_str(m->b, key, klen);
    rc_buf_putc(m->b, ':');
    put_flat_any(m->c, m->b, v);
    md_end(m);
}

/* "metadata" / "respan.metadata" / "keywordsai.metadata": a JSON object (or
 * a kvlist) whose members are metadata entries of their own. */
static bool md_put_object(md_writer *m, const otlp_any_value *v, bool always)
{
    if (v->value_case == RC_AV_KVLIST && v->kvlist_value) {
        const otlp_kvlist *kl = v->kvlist_value;
        for (size_t i = 0; i < kl->n_values; i++) {
            const otlp_key_value *kv = kl->values[i];
            if (!kv || !kv->key || !kv->value) continue;
            size_t n = strlen(kv->key);
            md_put_any(m, kv->key, n, key_hash(kv->key, n), always, kv->value);
        }
        return true;
    }
    if (!rc_av_looks_like_json(v)) return false;
    json_t *root = parse_json(v->string_value, strlen(v->string_value));
    if (!json_is_object(root)) {
        json_decref(root);
        return false;
    }
    const char *k;
    json_t *mv;
    json_object_foreach(root, k, mv)
    {
        size_t n = strlen(k);
        size_t min = n + (json_is_string(mv) ? json_string_length(mv) : 0) + 5;
        if (!md_begin(m, key_hash(k, n), always, min)) continue;
        put_str(m->b, k, n);
        rc_buf_putc(m->b, ':');
        put_flat_jansson(m->c, m->b, mv);
        md_end(m);
    }
    json_decref(root);
    return true;
}

/* Whether a span attribute was consumed into a named field of this log. */
static bool consumed(const span_view *v, const attr_info *ai)
{
    const bool messages = v->carried & (1u << F_INPUT | 1u << F_OUTPUT);
    if (ai->e) {
        const ix_entry *e = ai->e;
        if (e->facts & v->consumed_facts) return true;
        if (e->field && e->field < F_COUNT && (v->carried & (1u << e->field))) return true;
        return (e->sources & 0xff) && messages;
    }
    if (ai->p) {
        if (ai->p->field == F_TOOLS) return v->carried & (1u << F_TOOLS);
        return (ai->p->sources & 0xff) && messages;
    }
    return false;
}

/* One span attribute into metadata, by the rules of the mapping doc. */
static void md_put_attr(md_writer *m, const span_view *v, const otlp_key_value *kv,
                        const attr_info *ai)
{
    if (consumed(v, ai)) return;
    int policy = md_policy(m->c->opts, kv->key, ai->e ? ai->e->field : F_NONE);
    if (policy == MD_DROP) return;
    bool always = policy == MD_ALWAYS;
    if (ai->e && (ai->e->sources & RC_SRC_METADATA) && md_put_object(m, kv->value, always)) return;
    if (ai->p && (ai->p->sources & RC_SRC_METADATA) && ai->klen > ai->p->len) {
        /* A metadata family: the user's own key is what follows the prefix. */
        const char *k = kv->key + ai->p->len;
        size_t n = ai->klen - ai->p->len;
        md_put_any(m, k, n, key_hash(k, n), always, kv->value);
        return;
    }
    md_put_any(m, kv->key, ai->klen, ai->h, always, kv->value);
}

static void write_metadata(log_ctx *c, span_view *v)
{
    md_writer m = {.c = c, .b = c->out, .cap = c->opts->metadata_max_bytes};
    seen_reset(&c->seen);
    const otlp_span *s = v->span;
    for (size_t i = 0; i < s->n_attributes; i++)
        if (v->info[i].klen != UINT32_MAX) md_put_attr(&m, v, s->attributes[i], &v->info[i]);
    for (size_t i = 0; i < c->run.n_md; i++) {
        const md_entry *e = &c->run.md[i];
        if (!md_begin(&m, e->h, e->always, e->len)) continue;
        rc_buf_append(m.b, e->text, e->len);
        md_end(&m);
    }
    md_close(&m);
}

/* --- the resource, once per run --------------------------------------------------------- */

/* Renders the resource's metadata entries into the scratch arena, so each
 * span of the run only copies them. Cap and dedupe are per log, later. */
static bool render_resource_md(log_ctx *c, const otlp_resource *res)
{
    c->run.md = NULL;
    c->run.n_md = 0;
    if (!res || !res->n_attributes) return true;
    c->run.md = rc_arena_alloc(c->scratch, res->n_attributes * sizeof *c->run.md);
    if (!c->run.md) return false;
    for (size_t i = 0; i < res->n_attributes; i++) {
        const otlp_key_value *kv = res->attributes[i];
        if (!kv || !kv->key || !kv->value) continue;
        size_t n = strlen(kv->key);
        uint64_t h = key_hash(kv->key, n);
        const ix_entry *e = ix_find(kv->key, n, h);
        if (e && (e->facts & c->run.facts.have)) continue;
        int policy = md_policy(c->opts, kv->key, e ? e->field : F_NONE);
        if (policy == MD_DROP) continue;
        rc_buf_reset(&c->entry);
        put_str(&c->entry, kv->key, n);
        rc_buf_putc(&c->entry, ':');
        put_flat_any(c, &c->entry, kv->value);
        if (c->entry.failed) return false;
        char *text = rc_arena_strndup(c->scratch, c->entry.data, c->entry.len);
        if (!text) return false;
        c->run.md[c->run.n_md++] = (md_entry){h, text, c->entry.len, policy == MD_ALWAYS};
    }
    return true;
}

static bool enter_run(log_ctx *c, const rc_span_run *run)
{
    const otlp_resource *res = run->rs ? run->rs->resource : NULL;
    if (c->run.valid && c->run.res == res) return true;
    c->run.valid = true;
    c->run.res = res;
    rc_facts_init(&c->run.facts, RESOURCE_FACTS);
    if (res) rc_scan_resource(&c->run.facts, res, c->scratch);
    return render_resource_md(c, res);
}

/* --- a validating JSON reader, for the messages ------------------------------------------
 *
 * Messages are on every LLM span, and a jansson tree per span was most of
 * the mapping's time, so they are converted by walking their text once.
 * The reader validates as it goes (string escapes, no raw control
 * characters, numbers, literals, nesting up to MAX_JSON_DEPTH) and hands out
 * spans of the text: a string's content still escaped, any other value's
 * whole text. Escaped content copied between quotes is valid JSON string
 * content, so converted messages are built from the source text without
 * unescaping it; any invalid UTF-8 it holds is repaired when the converted
 * text is itself written as a JSON string. */

typedef struct jspan {
    const char *s; /* string: the content between the quotes; else the value's text */
    size_t n;
    char kind; /* 's' string, '{' object, '[' array, 'v' number or literal, 0 absent */
} jspan;

typedef struct jreader {
    const char *p, *end;
    int depth;
} jreader;

static void jws(jreader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool jstring(jreader *r, jspan *out)
{
    const char *p = r->p + 1, *start = p;
    while (p < r->end) {
        p += rc_json_text_run((const unsigned char *)p, (size_t)(r->end - p));
        if (p >= r->end) break;
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') {
            *out = (jspan){start, (size_t)(p - start), 's'};
            r->p = p + 1;
            return true;
        }
        if (ch < 0x20) return false;
        /* a backslash: the run stops at nothing else */
        if (++p >= r->end) return false;
        if (*p == 'u') {
            if (r->end - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]))
                return false;
            p += 5;
        } else if (*p && strchr("\"\\/bfnrt", *p)) {
            p++;
        } else {
            return false;
        }
    }
    return false;
}

static bool jdigits(jreader *r)
{
    const char *start = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return r->p > start;
}

static bool jnumber(jreader *r)
{
    if (*r->p == '-') r->p++;
    if (!jdigits(r)) return false;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!jdigits(r)) return false;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
        if (!jdigits(r)) return false;
    }
    return true;
}

static bool jliteral(jreader *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return false;
    r->p += n;
    return true;
}

static bool jcontainer(jreader *r);

/* Reads one value; false when the text is not JSON. */
static bool jvalue(jreader *r, jspan *out)
{
    jws(r);
    if (r->p >= r->end) return false;
    const char *start = r->p;
    char c = *r->p;
    bool ok;
    if (c == '"') return jstring(r, out);
    if (c == '{' || c == '[')
        ok = jcontainer(r);
    else if (c == 't')
        ok = jliteral(r, "true", 4);
    else if (c == 'f')
        ok = jliteral(r, "false", 5);
    else if (c == 'n')
        ok = jliteral(r, "null", 4);
    else
        ok = jnumber(r);
    *out = (jspan){start, (size_t)(r->p - start), c == '{' || c == '[' ? c : 'v'};
    return ok;
}

/* Iterates the members of an object or the items of an array on a shared
 * reader: each step leaves the reader at the next value, which the caller
 * consumes, by skipping it (jvalue) or by descending into it. So a
 * message's text is scanned once, however deep it sits. */
typedef struct jiter {
    jreader *r;
    char close;
    bool first;
} jiter;

static char jpeek(jreader *r)
{
    jws(r);
    return r->p < r->end ? *r->p : 0;
}

/* At an opening bracket of `kind`: starts iterating inside it. */
static bool jiter_open(jiter *it, jreader *r, char kind)
{
    if (jpeek(r) != kind || ++r->depth > MAX_JSON_DEPTH) return false;
    r->p++;
    *it = (jiter){r, kind == '{' ? '}' : ']', true};
    return true;
}

/* 1: at the next value (*key set for objects), 0: closed, -1: not JSON. */
static int jiter_next(jiter *it, jspan *key)
{
    jreader *r = it->r;
    char c = jpeek(r);
    if (!c) return -1;
    if (c == it->close) {
        r->p++;
        r->depth--;
        return 0;
    }
    if (!it->first) {
        if (c != ',') return -1;
        r->p++;
        jws(r);
    }
    it->first = false;
    if (it->close == '}') {
        if (r->p >= r->end || *r->p != '"' || !jstring(r, key) || jpeek(r) != ':') return -1;
        r->p++;
    }
    return jpeek(r) ? 1 : -1;
}

static bool jcontainer(jreader *r)
{
    jiter it;
    jspan k, v;
    int got;
    if (!jiter_open(&it, r, *r->p)) return false;
    while ((got = jiter_next(&it, &k)) == 1)
        if (!jvalue(r, &v)) return false;
    return got == 0;
}

static bool jis(jspan v, const char *lit)
{
    size_t n = strlen(lit);
    return v.kind == 's' && v.n == n && memcmp(v.s, lit, n) == 0;
}

/* A member to read: its name (and length, so that most keys are told apart
 * without touching their bytes) and where its jspan goes. */
typedef struct jfield {
    const char *name;
    size_t len;
    size_t offset;
} jfield;

#define JF(type, m)                                                                                \
    {                                                                                              \
#m, sizeof #m - 1, offsetof(type, m)                                                       \
    }
#define N_FIELDS(a) (sizeof a / sizeof *a)

static void jassign(jspan key, jspan val, const jfield *fields, size_t n, void *dst)
{
    if (key.kind != 's') return;
    for (size_t i = 0; i < n; i++) {
        if (key.n == fields[i].len && memcmp(key.s, fields[i].name, key.n) == 0) {
            *(jspan *)((char *)dst + fields[i].offset) = val;
            return;
        }
    }
}

/* Reads the named members of the object at r into the jspans of `dst`. */
static bool jread(jreader *r, const jfield *fields, size_t n, void *dst)
{
    jiter it;
    jspan k, v;
    int got;
    memset(dst, 0, n * sizeof(jspan));
    if (!jiter_open(&it, r, '{')) return false;
    while ((got = jiter_next(&it, &k)) == 1) {
        if (!jvalue(r, &v)) return false;
        jassign(k, v, fields, n, dst);
    }
    return got == 0;
}

/* --- messages: GenAI parts -> OpenAI chat ------------------------------------------------ */

/* The members of a message or a part that the conversion reads. */
typedef struct jmsg {
    jspan role, name, tool_call_id, tool_calls;
} jmsg;

typedef struct jpart {
    jspan type, content, text, id, tool_use_id, name, arguments, input, response, result;
} jpart;

static const jfield msg_fields[] = {JF(jmsg, role), JF(jmsg, name), JF(jmsg, tool_call_id),
                                    JF(jmsg, tool_calls)};
static const jfield part_fields[] = {
    JF(jpart, type),        JF(jpart, content), JF(jpart, text),      JF(jpart, id),
    JF(jpart, tool_use_id), JF(jpart, name),    JF(jpart, arguments), JF(jpart, input),
    JF(jpart, response),    JF(jpart, result)};

/* One message being converted: its text, tool calls and tool responses
 * are gathered apart in one pass over its parts, then assembled.
 *
 * The converted messages are JSON text that the log holds as a string, so
 * they are written escaped, straight into that string: `text` and the
 * output hold "escaped JSON text" (a quote in the JSON is \" there, an
 * escaped newline in a message \\n). `calls` and `resps` hold plain JSON,
 * because the output's tool calls are also written as JSON of their own
 * (the log's tool_calls), and are escaped when they are copied in; they are
 * rare, `text` is in every message. `scratch` holds plain system text
 * escaped once, on its way into `text` escaped twice.
 *
 * Escaping piece by piece gives the same bytes as escaping the whole text
 * at once because the pieces are whole strings of valid UTF-8: the
 * decoders repair every string they accept, so no sequence is split
 * between two of them. */
typedef struct conv {
    rc_buf *text, *calls, *resps, *scratch;
    size_t n_calls, n_resps;
} conv;

static void conv_reset(conv *v)
{
    rc_buf_reset(v->text);
    rc_buf_reset(v->calls);
    rc_buf_reset(v->resps);
    v->n_calls = v->n_resps = 0;
}

/* A string value as it is (still escaped, so between quotes it is valid
 * JSON); any other value as its JSON text, made a string. */
static void put_jspan_text(rc_buf *b, jspan v)
{
    if (v.kind == 's') {
        rc_buf_putc(b, '"');
        rc_buf_append(b, v.s, v.n);
        rc_buf_putc(b, '"');
    } else {
        put_str(b, v.s, v.n);
    }
}

static void put_jspan_str(rc_buf *b, jspan v)
{
    if (v.kind == 's')
        put_jspan_text(b, v);
    else
        LIT(b, "\"\"");
}

static void conv_tool_call(conv *v, jspan id, jspan name, jspan args)
{
    rc_buf *b = v->calls;
    if (v->n_calls++) rc_buf_putc(b, ',');
    LIT(b, "{\"id\":");
    put_jspan_str(b, id);
    LIT(b, ",\"type\":\"function\",\"function\":{\"name\":");
    put_jspan_str(b, name);
    LIT(b, ",\"arguments\":");
    if (!args.kind || (args.kind == 'v' && args.n == 4 && memcmp(args.s, "null", 4) == 0))
        LIT(b, "\"{}\"");
    else
        put_jspan_text(b, args);
    LIT(b, "}}");
}

static void conv_tool_response(conv *v, const jpart *p)
{
    rc_buf *b = v->resps;
    jspan id = p->id.kind ? p->id : p->tool_use_id;
    jspan resp = p->response.kind ? p->response : p->result.kind ? p->result : p->content;
    if (v->n_resps++) rc_buf_putc(b, ',');
    LIT(b, "{\"role\":\"tool\",\"tool_call_id\":");
    put_jspan_str(b, id);
    LIT(b, ",\"content\":");
    if (resp.kind)
        put_jspan_text(b, resp);
    else
        LIT(b, "\"\"");
    rc_buf_putc(b, '}');
}

/* One part object at r. */
static bool conv_part(conv *v, jreader *r)
{
    jpart p;
    if (!jread(r, part_fields, N_FIELDS(part_fields), &p)) return false;
    if (jis(p.type, "tool_call") || jis(p.type, "tool_use")) {
        conv_tool_call(v, p.id, p.name, p.arguments.kind ? p.arguments : p.input);
    } else if (jis(p.type, "tool_call_response") || jis(p.type, "tool_result")) {
        conv_tool_response(v, &p);
    } else if (!p.type.kind || jis(p.type, "text") || jis(p.type, "input_text") ||
               jis(p.type, "output_text")) {
        jspan t = p.content.kind == 's' ? p.content : p.text;
        if (t.kind == 's') rc_json_escaped(v->text, t.s, t.n);
    }
    return true;
}

/* The parts array at r (or a content array of blocks; plain strings are text). */
static bool conv_parts(conv *v, jreader *r)
{
    jiter it;
    jspan k, item;
    int got;
    if (!jiter_open(&it, r, '[')) return false;
    while ((got = jiter_next(&it, &k)) == 1) {
        if (*r->p == '{') {
            if (!conv_part(v, r)) return false;
            continue;
        }
        if (!jvalue(r, &item)) return false;
        if (item.kind == 's') rc_json_escaped(v->text, item.s, item.n);
    }
    return got == 0;
}

/* OpenAI-shaped tool calls already on the message: normalised the same way. */
static bool conv_openai_tool_calls(conv *v, jspan calls)
{
    static const jfield tc_fields[] = {{"id", 2, 0}, {"function", 8, sizeof(jspan)}};
    static const jfield fn_fields[] = {{"name", 4, 0}, {"arguments", 9, sizeof(jspan)}};
    if (calls.kind != '[') return true;
    jreader r = {calls.s, calls.s + calls.n, 0};
    jiter it;
    jspan k;
    int got;
    if (!jiter_open(&it, &r, '[')) return false;
    while ((got = jiter_next(&it, &k)) == 1) {
        jspan tc[2], fn[2] = {{0}};
        if (!jread(&r, tc_fields, 2, tc)) return false;
        jreader fr = {tc[1].s, tc[1].s + tc[1].n, 0};
        if (tc[1].kind == '{' && !jread(&fr, fn_fields, 2, fn)) return false;
        conv_tool_call(v, tc[0], fn[0], fn[1]);
    }
    return got == 0;
}

/* The message object at r: its members read, its parts gathered. */
static bool conv_message(conv *v, jreader *r, jmsg *m)
{
    jiter it;
    jspan k, val;
    int got;
    memset(m, 0, sizeof *m);
    conv_reset(v);
    if (!jiter_open(&it, r, '{')) return false;
    while ((got = jiter_next(&it, &k)) == 1) {
        if ((jis(k, "parts") || jis(k, "content")) && *r->p == '[') {
            if (!conv_parts(v, r)) return false;
            continue;
        }
        if (!jvalue(r, &val)) return false;
        if (jis(k, "content") && val.kind == 's') rc_json_escaped(v->text, val.s, val.n);
        jassign(k, val, msg_fields, N_FIELDS(msg_fields), m);
    }
    return got == 0 && conv_openai_tool_calls(v, m->tool_calls);
}

/* A string member's value, escaped: \"...\". */
static void put_escaped_jspan(rc_buf *b, jspan v)
{
    LIT(b, "\\\"");
    rc_json_escaped(b, v.s, v.n);
    LIT(b, "\\\"");
}

/* {"role","content"[,"name"][,"tool_call_id"][,"tool_calls"]}, escaped:
 * the literals are written as they appear inside a string. */
static void conv_put_main(conv *v, rc_buf *b, const jmsg *m, const char *default_role)
{
    LIT(b, "{\\\"role\\\":");
    if (m->role.kind == 's') {
        put_escaped_jspan(b, m->role);
    } else {
        /* the default roles are plain words */
        LIT(b, "\\\"");
        rc_buf_append(b, default_role, strlen(default_role));
        LIT(b, "\\\"");
    }
    LIT(b, ",\\\"content\\\":\\\"");
    rc_buf_append(b, v->text->data, v->text->len);
    LIT(b, "\\\"");
    if (m->name.kind == 's') {
        LIT(b, ",\\\"name\\\":");
        put_escaped_jspan(b, m->name);
    }
    if (m->tool_call_id.kind == 's') {
        LIT(b, ",\\\"tool_call_id\\\":");
        put_escaped_jspan(b, m->tool_call_id);
    }
    if (v->n_calls) {
        LIT(b, ",\\\"tool_calls\\\":[");
        rc_json_escaped(b, v->calls->data, v->calls->len);
        rc_buf_putc(b, ']');
    }
    rc_buf_putc(b, '}');
}

static void sep(rc_buf *b, bool *first)
{
    if (!*first) rc_buf_putc(b, ',');
    *first = false;
}

/* The system instructions (GenAI parts JSON, or plain text) as a message. */
static bool conv_system(conv *v, rc_buf *b, const otlp_any_value *sys, bool *first)
{
    const char *s = rc_av_str(sys);
    if (!s) return true;
    size_t n = strlen(s);
    jreader r = {s, s + n, 0};
    jmsg m;
    memset(&m, 0, sizeof m);
    conv_reset(v);
    if (!conv_parts(v, &r) || jpeek(&r)) {
        /* plain text: escaped as a JSON string's text, then again for the
         * string that holds the messages */
        conv_reset(v);
        rc_buf_reset(v->scratch);
        rc_json_escaped(v->scratch, s, n);
        rc_json_escaped(v->text, v->scratch->data, v->scratch->len);
    }
    sep(b, first);
    conv_put_main(v, b, &m, "system");
    return true;
}

/* The input: an OpenAI chat array. Tool responses become "tool" messages
 * ahead of whatever else their message says. */
static bool conv_input(conv *v, rc_buf *b, jreader *r, const otlp_any_value *sys)
{
    jiter it;
    jspan k, item;
    int got;
    bool first = true;
    if (!jiter_open(&it, r, '[')) return false;
    rc_buf_putc(b, '[');
    if (sys && !conv_system(v, b, sys, &first)) return false;
    while ((got = jiter_next(&it, &k)) == 1) {
        jmsg m;
        if (*r->p != '{') {
            if (!jvalue(r, &item)) return false;
            continue;
        }
        if (!conv_message(v, r, &m)) return false;
        if (v->n_resps) {
            sep(b, &first);
            rc_json_escaped(b, v->resps->data, v->resps->len);
        }
        if (v->n_resps && !v->text->len && !v->n_calls) continue;
        sep(b, &first);
        conv_put_main(v, b, &m, "user");
    }
    rc_buf_putc(b, ']');
    return got == 0 && !jpeek(r);
}

/* The output: the first message, as the assistant's message. Its tool
 * calls stay in v->calls, as JSON. */
static bool conv_output(conv *v, rc_buf *b, jreader *r)
{
    jiter it;
    jspan k;
    jmsg m;
    if (jpeek(r) == '[' && (!jiter_open(&it, r, '[') || jiter_next(&it, &k) != 1)) return false;
    if (!conv_message(v, r, &m)) return false;
    conv_put_main(v, b, &m, "assistant");
    return true;
}

/* Writes ,"key":"<converted>" from GenAI parts JSON text, or passes the
 * text through as it is when it is not messages JSON. The conversion
 * writes into the log directly; when the text turns out not to be
 * messages JSON what it wrote is cut off again. */
static void write_messages_field(log_ctx *c, const char *key, const char *json, size_t len,
                                 bool output, const otlp_any_value *sys)
{
    conv v = {
        .text = &c->text, .calls = &c->calls, .resps = &c->resps, .scratch = &c->escaped_once};
    rc_buf *b = c->out;
    jreader r = {json, json + len, 0};
    put_key(b, key);
    size_t start = b->len;
    rc_buf_putc(b, '"');
    bool ok =
        len <= MAX_CONVERT_BYTES && (output ? conv_output(&v, b, &r) : conv_input(&v, b, &r, sys));
    if (!ok) {
        b->len = start;
        put_str(b, json, len);
        return;
    }
    rc_buf_putc(b, '"');
    if (output && v.n_calls) {
        LIT(b, ",\"tool_calls\":[");
        rc_buf_append(b, v.calls->data, v.calls->len);
        rc_buf_putc(b, ']');
    }
}

/* --- tools ------------------------------------------------------------------------------ */

/* One tool definition in OpenAI shape. */
static void put_tool_def(rc_buf *b, const json_t *t)
{
    if (json_is_object(json_object_get(t, "function"))) {
        rc_json_jansson(b, t, MAX_JSON_DEPTH);
        return;
    }
    LIT(b, "{\"type\":\"function\",\"function\":{\"name\":");
    rc_json_cstr(b, jstr(t, "name"));
    const char *desc = jstr(t, "description");
    if (desc) {
        put_key(b, "description");
        rc_json_cstr(b, desc);
    }
    const json_t *params = json_object_get(t, "parameters");
    if (!params) params = json_object_get(t, "inputSchema");
    if (!params) params = json_object_get(t, "input_schema");
    if (params) {
        put_key(b, "parameters");
        rc_json_jansson(b, params, MAX_JSON_DEPTH);
    }
    LIT(b, "}}");
}

/* Appends the definitions found in one JSON text (an array of them, or one). */
static size_t put_tool_defs_json(rc_buf *b, const char *s, size_t n)
{
    json_t *root = parse_json(s, n);
    size_t count = 0;
    if (json_is_object(root)) {
        put_tool_def(b, root);
        count = 1;
    }
    for (size_t i = 0; json_is_array(root) && i < json_array_size(root); i++) {
        const json_t *t = json_array_get(root, i);
        if (!json_is_object(t)) continue;
        if (count++) rc_buf_putc(b, ',');
        put_tool_def(b, t);
    }
    json_decref(root);
    return count;
}

/* gen_ai.tool.definitions / ai.prompt.tools: JSON text, or an array of JSON texts. */
static size_t put_tools_value(rc_buf *b, const otlp_any_value *v)
{
    const char *s = rc_av_str(v);
    if (s) return put_tool_defs_json(b, s, strlen(s));
    size_t count = 0;
    const otlp_array_value *a = v->value_case == RC_AV_ARRAY ? v->array_value : NULL;
    for (size_t i = 0; a && i < a->n_values; i++) {
        const char *t = rc_av_str(a->values[i]);
        if (!t) continue;
        size_t mark = b->len;
        if (count) rc_buf_putc(b, ',');
        size_t got = put_tool_defs_json(b, t, strlen(t));
        if (!got) b->len = mark;
        count += got;
    }
    return count;
}

typedef struct flat_tool {
    const char *name, *description, *parameters, *schema;
} flat_tool;

/* Gathers llm.request.functions.{i}.* and llm.tools.{i}.tool.json_schema. */
static size_t gather_flat_tools(const span_view *v, flat_tool *tools)
{
    size_t n = 0;
    const otlp_span *s = v->span;
    for (size_t i = 0; i < s->n_attributes; i++) {
        const attr_info *ai = &v->info[i];
        if (!ai->p || ai->p->field != F_TOOLS) continue;
        const char *rest = s->attributes[i]->key + ai->p->len;
        char *end = NULL;
        unsigned long idx = strtoul(rest, &end, 10);
        const char *val = rc_av_str(s->attributes[i]->value);
        if (end == rest || *end != '.' || idx >= MAX_FLAT_TOOLS || !val) continue;
        if (idx >= n) {
            memset(tools + n, 0, (idx + 1 - n) * sizeof *tools);
            n = idx + 1;
        }
        const char *field = end + 1;
        if (strcmp(field, "name") == 0)
            tools[idx].name = val;
        else if (strcmp(field, "description") == 0)
            tools[idx].description = val;
        else if (strcmp(field, "parameters") == 0)
            tools[idx].parameters = val;
        else if (strcmp(field, "tool.json_schema") == 0)
            tools[idx].schema = val;
    }
    return n;
}

static size_t put_flat_tools(rc_buf *b, const span_view *v)
{
    flat_tool tools[MAX_FLAT_TOOLS];
    size_t n = gather_flat_tools(v, tools), count = 0;
    for (size_t i = 0; i < n; i++) {
        const flat_tool *t = &tools[i];
        if (t->schema) {
            size_t mark = b->len;
            if (count) rc_buf_putc(b, ',');
            size_t got = put_tool_defs_json(b, t->schema, strlen(t->schema));
            if (!got) b->len = mark;
            count += got;
            continue;
        }
        if (!t->name) continue;
        if (count++) rc_buf_putc(b, ',');
        LIT(b, "{\"type\":\"function\",\"function\":{\"name\":");
        rc_json_cstr(b, t->name);
        if (t->description) {
            put_key(b, "description");
            rc_json_cstr(b, t->description);
        }
        json_t *params = t->parameters ? parse_json(t->parameters, strlen(t->parameters)) : NULL;
        if (params) {
            put_key(b, "parameters");
            rc_json_jansson(b, params, MAX_JSON_DEPTH);
            json_decref(params);
        }
        LIT(b, "}}");
    }
    return count;
}

static void write_tools(log_ctx *c, span_view *v)
{
    if (!v->fv[F_TOOLS] && !v->flat_tools) return;
    size_t mark = c->out->len;
    LIT(c->out, ",\"tools\":[");
    size_t n = v->fv[F_TOOLS] ? put_tools_value(c->out, v->fv[F_TOOLS]) : 0;
    if (!n && v->flat_tools) n = put_flat_tools(c->out, v);
    if (!n) {
        c->out->len = mark;
        return;
    }
    rc_buf_putc(c->out, ']');
    v->carried |= 1u << F_TOOLS;
}

/* --- the fields of one log ------------------------------------------------------------------ */

static void carry_fact(span_view *v, rc_fact_id id)
{
    v->consumed_facts |= RC_FACT_BIT(id);
}

static void write_identity(log_ctx *c, const otlp_span *s)
{
    LIT(c->out, "{\"trace_unique_id\":");
    rc_json_hex(c->out, s->trace_id.data, s->trace_id.len);
    LIT(c->out, ",\"span_unique_id\":");
    rc_json_hex(c->out, s->span_id.data, s->span_id.len);
    if (!is_root(s)) {
        LIT(c->out, ",\"span_parent_id\":");
        rc_json_hex(c->out, s->parent_span_id.data, s->parent_span_id.len);
    }
}

/* The workflow fact (span, then resource); else a root span, which starts
 * the workflow, names it. A child without the fact gets none: looking for
 * its root elsewhere in the batch would make the log depend on batching. */
static void write_workflow(log_ctx *c, span_view *v)
{
    const rc_fact *f = &v->f.f[RC_FACT_WORKFLOW_NAME];
    const char *name = v->span->name;
    if (rc_facts_has(&v->f, RC_FACT_WORKFLOW_NAME)) {
        LIT(c->out, ",\"span_workflow_name\":");
        put_str(c->out, f->s, f->len);
        carry_fact(v, RC_FACT_WORKFLOW_NAME);
    } else if (is_root(v->span) && name && name[0]) {
        LIT(c->out, ",\"span_workflow_name\":");
        rc_json_cstr(c->out, name);
    }
}

/* The full path of the span's entity. Traceloop splits it: its
 * traceloop.entity.path names the entities above the span
 * ("joke_generator"), traceloop.entity.name the span's own ("create_joke"),
 * and an LLM span carries only the path, its caller's. Vercel's ai.path
 * is whole, and used only when neither Traceloop key is there. */
static void write_path(log_ctx *c, span_view *v)
{
    const char *path = rc_av_str(v->fv[F_PATH]);
    const char *name = rc_av_str(v->fv[F_ENTITY_NAME]);
    if (name && path && !(v->fflags[F_PATH] & X_PARENTS)) path = NULL;
    if (!path && !name) return;
    LIT(c->out, ",\"span_path\":\"");
    if (path) rc_json_escaped(c->out, path, strlen(path));
    if (path && name) rc_buf_putc(c->out, '.');
    if (name) rc_json_escaped(c->out, name, strlen(name));
    rc_buf_putc(c->out, '"');
    v->carried |= 1u << F_PATH; /* its sources at any rank, as for every field */
    if (name) v->carried |= 1u << F_ENTITY_NAME;
}

static void write_description(log_ctx *c, span_view *v)
{
    const otlp_span *s = v->span;
    const char *name = s->name ? s->name : "";
    size_t n = strlen(name);
    LIT(c->out, ",\"span_name\":");
    put_str(c->out, name, utf8_prefix(name, n, SPAN_NAME_MAX_CHARS));
    write_workflow(c, v);
    write_path(c, v);
    LIT(c->out, ",\"log_type\":");
    rc_json_cstr(c->out, v->log_type);
    v->consumed_facts |= LOG_TYPE_FACTS;
}

static void put_double_field(log_ctx *c, span_view *v, const char *key, field_id f)
{
    double d;
    if (!v->fv[f] || !rc_av_double(v->fv[f], &d)) return;
    if (v->fflags[f] & X_MS) d /= 1000;
    put_key(c->out, key);
    rc_json_double(c->out, d);
    v->carried |= 1u << f;
}

static void write_timing(log_ctx *c, span_view *v)
{
    const otlp_span *s = v->span;
    uint64_t start = s->start_time_unix_nano;
    uint64_t end = s->end_time_unix_nano ? s->end_time_unix_nano : start;
    LIT(c->out, ",\"start_time\":");
    put_time(c->out, start);
    LIT(c->out, ",\"timestamp\":");
    put_time(c->out, end);
    LIT(c->out, ",\"latency\":");
    put_seconds(c->out, end > start ? end - start : 0);
    put_double_field(c, v, "time_to_first_token", F_TTFT);
}

static void put_fact_str(log_ctx *c, span_view *v, const char *key, rc_fact_id id)
{
    const rc_fact *f = &v->f.f[id];
    if (!rc_facts_has(&v->f, id)) return;
    put_key(c->out, key);
    put_str(c->out, f->s, f->len);
    carry_fact(v, id);
}

static void put_fact_int(log_ctx *c, span_view *v, const char *key, rc_fact_id id)
{
    if (!rc_facts_has(&v->f, id)) return;
    put_key(c->out, key);
    rc_json_i64(c->out, v->f.f[id].i);
    carry_fact(v, id);
}

/* The provider as sent; Vercel's "openai.chat" names the provider first. */
static void write_provider(log_ctx *c, span_view *v)
{
    const rc_fact *f = &v->f.f[RC_FACT_PROVIDER];
    if (!rc_facts_has(&v->f, RC_FACT_PROVIDER)) return;
    size_t n = f->len;
    const char *dot = memchr(f->s, '.', n);
    if (v->f.vercel != RC_VERCEL_NONE && dot && dot != f->s) n = (size_t)(dot - f->s);
    LIT(c->out, ",\"provider_id\":");
    put_str(c->out, f->s, n);
    carry_fact(v, RC_FACT_PROVIDER);
}

/* respan.cost; else, for a call only, the cost the instrumentation
 * reported. False when the log has no cost; *from_field says which. */
static bool cost_of(const span_view *v, double *cost, bool *from_field)
{
    *from_field = v->fv[F_COST] != NULL;
    if (*from_field) return rc_av_double(v->fv[F_COST], cost);
    const rc_fact *f = &v->f.f[RC_FACT_REPORTED_COST];
    if (!rc_facts_has(&v->f, RC_FACT_REPORTED_COST) || !is_call_type(v->log_type) ||
        !isfinite(f->d) || f->d < 0)
        return false;
    *cost = f->d;
    return true;
}

static void write_cost(log_ctx *c, span_view *v)
{
    double d;
    bool from_field;
    bool known = cost_of(v, &d, &from_field);
    if (from_field) {
        put_double_field(c, v, "cost", F_COST);
        carry_fact(v, RC_FACT_REPORTED_COST);
        return;
    }
    if (!known) return;
    LIT(c->out, ",\"cost\":");
    rc_json_double(c->out, d);
    carry_fact(v, RC_FACT_REPORTED_COST);
    v->carried |= 1u << F_COST;
}

/* OpenInference's llm.invocation_parameters: the request's parameters as
 * JSON, read for those the span has no attribute of its own for. */
typedef struct jparams {
    jspan temperature, max_tokens, max_completion_tokens, top_p, frequency_penalty,
        presence_penalty, stream;
} jparams;

static const jfield param_fields[] = {
    JF(jparams, temperature), JF(jparams, max_tokens),        JF(jparams, max_completion_tokens),
    JF(jparams, top_p),       JF(jparams, frequency_penalty), JF(jparams, presence_penalty),
    JF(jparams, stream)};

static void read_invocation(const span_view *v, jparams *p)
{
    memset(p, 0, sizeof *p);
    const char *s = rc_av_str(v->fv[F_INVOCATION]);
    if (!s) return;
    jreader r = {s, s + strlen(s), 0};
    if (!jread(&r, param_fields, N_FIELDS(param_fields), p)) memset(p, 0, sizeof *p);
}

/* A JSON number (integral when asked), copied as it is written. */
static bool jnumber_text(jspan v, bool integral)
{
    if (v.kind != 'v' || !v.n || (v.s[0] != '-' && (v.s[0] < '0' || v.s[0] > '9'))) return false;
    return !integral ||
           (!memchr(v.s, '.', v.n) && !memchr(v.s, 'e', v.n) && !memchr(v.s, 'E', v.n));
}

static void put_param(log_ctx *c, span_view *v, const char *key, field_id f, jspan fallback)
{
    if (v->fv[f]) {
        put_double_field(c, v, key, f);
    } else if (jnumber_text(fallback, false)) {
        put_key(c->out, key);
        rc_buf_append(c->out, fallback.s, fallback.n);
    }
}

static void write_stream(log_ctx *c, span_view *v, jspan fallback)
{
    bool stream = false, known = v->fv[F_STREAM] && rc_av_bool(v->fv[F_STREAM], &stream);
    if (known) v->carried |= 1u << F_STREAM;
    const char *op = rc_facts_str(&v->f, RC_FACT_VERCEL_OPERATION);
    if (!known && op && v->f.vercel == RC_VERCEL_CALL) {
        known = true;
        stream = strstr(op, ".doStream") != NULL;
    }
    if (!known && fallback.kind == 'v' && (fallback.n == 4 || fallback.n == 5) &&
        (fallback.s[0] == 't' || fallback.s[0] == 'f')) {
        known = true;
        stream = fallback.s[0] == 't';
    }
    if (!known) return;
    if (stream)
        LIT(c->out, ",\"stream\":true");
    else
        LIT(c->out, ",\"stream\":false");
}

static void write_params(log_ctx *c, span_view *v)
{
    jparams inv;
    read_invocation(v, &inv);
    put_param(c, v, "temperature", F_TEMPERATURE, inv.temperature);
    int64_t i;
    jspan max = inv.max_tokens.kind ? inv.max_tokens : inv.max_completion_tokens;
    if (v->fv[F_MAX_TOKENS] && rc_av_int(v->fv[F_MAX_TOKENS], &i)) {
        LIT(c->out, ",\"max_tokens\":");
        rc_json_i64(c->out, i);
        v->carried |= 1u << F_MAX_TOKENS;
    } else if (jnumber_text(max, true)) {
        LIT(c->out, ",\"max_tokens\":");
        rc_buf_append(c->out, max.s, max.n);
    }
    put_param(c, v, "top_p", F_TOP_P, inv.top_p);
    put_param(c, v, "frequency_penalty", F_FREQUENCY_PENALTY, inv.frequency_penalty);
    put_param(c, v, "presence_penalty", F_PRESENCE_PENALTY, inv.presence_penalty);
    write_stream(c, v, inv.stream);
}

/* The log's model: the response model, else the request model. */
static rc_fact_id model_fact(const span_view *v)
{
    return rc_facts_has(&v->f, RC_FACT_RESPONSE_MODEL) ? RC_FACT_RESPONSE_MODEL
                                                       : RC_FACT_REQUEST_MODEL;
}

static void write_model(log_ctx *c, span_view *v)
{
    rc_fact_id model = model_fact(v);
    put_fact_str(c, v, "model", model);
    if (rc_facts_has(&v->f, model)) v->consumed_facts |= MODEL_FACTS;
    write_provider(c, v);
    put_fact_int(c, v, "prompt_tokens", RC_FACT_INPUT_TOKENS);
    put_fact_int(c, v, "completion_tokens", RC_FACT_OUTPUT_TOKENS);
    put_fact_int(c, v, "prompt_cache_hit_tokens", RC_FACT_CACHE_READ_TOKENS);
    put_fact_int(c, v, "prompt_cache_creation_tokens", RC_FACT_CACHE_CREATION_TOKENS);
    write_cost(c, v);
    write_params(c, v);
}

/* A function's input or output, passed through as the string it is. */
static void put_entity(log_ctx *c, const char *key, const otlp_any_value *val)
{
    put_key(c->out, key);
    put_flat_any(c, c->out, val);
}

static bool write_content(log_ctx *c, span_view *v)
{
    if (c->opts->no_content) {
        /* The caller keeps no bodies (the usage store without
         * store_content): what carries them is consumed, not written, so
         * it does not reappear in metadata either. */
        v->carried |= 1u << F_INPUT | 1u << F_ENTITY_INPUT | 1u << F_SYSTEM | 1u << F_OUTPUT |
                      1u << F_ENTITY_OUTPUT | 1u << F_TOOLS;
        carry_fact(v, RC_FACT_INPUT_MESSAGES);
        carry_fact(v, RC_FACT_OUTPUT_MESSAGES);
        return true;
    }
    const char *in = rc_facts_str(&v->f, RC_FACT_INPUT_MESSAGES);
    const char *out = rc_facts_str(&v->f, RC_FACT_OUTPUT_MESSAGES);
    size_t in_len = in ? v->f.f[RC_FACT_INPUT_MESSAGES].len : 0;
    size_t out_len = out ? v->f.f[RC_FACT_OUTPUT_MESSAGES].len : 0;
    if ((!in || !out) && (v->f.msg_sources & ~(unsigned)RC_MSG_GENAI_JSON)) {
        /* Not through the cost processor: build what it would have written. */
        rc_messages m = {0};
        if (!rc_messages_build(v->span, v->f.msg_sources, c->scratch, &m)) return false;
        if (!in && m.input) in = m.input, in_len = m.input_len;
        if (!out && m.output) out = m.output, out_len = m.output_len;
    }
    if (in) {
        write_messages_field(c, "input", in, in_len, false, v->fv[F_SYSTEM]);
        v->carried |= 1u << F_INPUT | 1u << F_ENTITY_INPUT | 1u << F_SYSTEM;
        carry_fact(v, RC_FACT_INPUT_MESSAGES);
    } else if (v->fv[F_ENTITY_INPUT]) {
        put_entity(c, "input", v->fv[F_ENTITY_INPUT]);
        v->carried |= 1u << F_ENTITY_INPUT;
    }
    if (out) {
        write_messages_field(c, "output", out, out_len, true, NULL);
        v->carried |= 1u << F_OUTPUT | 1u << F_ENTITY_OUTPUT;
        carry_fact(v, RC_FACT_OUTPUT_MESSAGES);
    } else if (v->fv[F_ENTITY_OUTPUT]) {
        put_entity(c, "output", v->fv[F_ENTITY_OUTPUT]);
        v->carried |= 1u << F_ENTITY_OUTPUT;
    }
    write_tools(c, v);
    return true;
}

static const char *exception_message(const otlp_span *s)
{
    for (size_t i = 0; i < s->n_events; i++) {
        const otlp_event *ev = s->events[i];
        if (!ev || !ev->name || strcmp(ev->name, "exception") != 0) continue;
        const char *m =
            rc_av_str(rc_attr_find(ev->attributes, ev->n_attributes, "exception.message"));
        if (m && m[0]) return m;
    }
    return NULL;
}

/* The log's status: error when the span status is ERROR; the HTTP status
 * the span carries, else 500 or 200; the error's message, if any. */
static bool status_of(span_view *v, int64_t *code, const char **message)
{
    const otlp_span *s = v->span;
    bool error =
        s->status &&
        s->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    *code = error ? 500 : 200;
    if (v->fv[F_HTTP_STATUS] && rc_av_int(v->fv[F_HTTP_STATUS], code))
        v->carried |= 1u << F_HTTP_STATUS;
    *message = NULL;
    if (error)
        *message =
            s->status->message && s->status->message[0] ? s->status->message : exception_message(s);
    return error;
}

static void write_status(log_ctx *c, span_view *v)
{
    int64_t code;
    const char *msg;
    bool error = status_of(v, &code, &msg);
    LIT(c->out, ",\"status_code\":");
    rc_json_i64(c->out, code);
    if (!error) {
        LIT(c->out, ",\"status\":\"success\"");
        return;
    }
    LIT(c->out, ",\"status\":\"error\"");
    if (msg) {
        LIT(c->out, ",\"error_message\":");
        rc_json_cstr(c->out, msg);
    }
}

static void write_customer(log_ctx *c, span_view *v)
{
    put_fact_str(c, v, "customer_identifier", RC_FACT_CUSTOMER_ID);
    if (!(v->f.have & CUSTOMER_FACTS)) return;
    static const struct {
        const char *key;
        rc_fact_id id;
    } params[] = {
        {"customer_identifier", RC_FACT_CUSTOMER_ID},
        {"name", RC_FACT_CUSTOMER_NAME},
        {"email", RC_FACT_CUSTOMER_EMAIL},
        {"budget_duration", RC_FACT_BUDGET_DURATION},
        {"period_budget", RC_FACT_PERIOD_BUDGET},
        {"total_budget", RC_FACT_TOTAL_BUDGET},
        {"period_start", RC_FACT_PERIOD_START},
        {"period_end", RC_FACT_PERIOD_END},
        {"markup_percentage", RC_FACT_MARKUP_PERCENTAGE},
        {"rate_limit", RC_FACT_RATE_LIMIT},
    };
    LIT(c->out, ",\"customer_params\":{");
    bool first = true;
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        rc_fact_id id = params[i].id;
        const rc_fact *f = &v->f.f[id];
        if (!rc_facts_has(&v->f, id)) continue;
        rc_fact_type t = rc_fact_type_of(id);
        if (t == RC_FACT_DOUBLE && !isfinite(f->d)) continue;
        sep(c->out, &first);
        rc_json_key(c->out, params[i].key);
        if (t == RC_FACT_STR)
            put_str(c->out, f->s, f->len);
        else if (t == RC_FACT_INT)
            rc_json_i64(c->out, f->i);
        else
            rc_json_double(c->out, f->d);
        carry_fact(v, id);
    }
    rc_buf_putc(c->out, '}');
}

static void write_identifiers(log_ctx *c, span_view *v)
{
    put_fact_str(c, v, "thread_identifier", RC_FACT_THREAD_ID);
    put_fact_str(c, v, "session_identifier", RC_FACT_SESSION_ID);
    put_fact_str(c, v, "custom_identifier", RC_FACT_CUSTOM_ID);
    put_fact_str(c, v, "trace_group_identifier", RC_FACT_TRACE_GROUP_ID);
    if (rc_facts_has(&v->f, RC_FACT_ENVIRONMENT)) {
        put_fact_str(c, v, "environment", RC_FACT_ENVIRONMENT);
    } else if (c->opts->environment && c->opts->environment[0]) {
        LIT(c->out, ",\"environment\":");
        rc_json_cstr(c->out, c->opts->environment);
    }
}

/* --- one span ----------------------------------------------------------------------------------
 */

static const char *log_type_of(const rc_facts *f)
{
    const char *t = rc_facts_log_type(f);
    return strcmp(t, "unknown") == 0 ? "task" : t;
}

/* Scans span s (then the facts of its resource, run_facts) into v. */
static void view_scan(span_view *v, const otlp_span *s, const rc_facts *run_facts,
                      rc_arena *scratch)
{
    v->span = s;
    rc_facts_init(&v->f, RC_FACTS_ALL);
    rc_scan_span(&v->f, s, RC_SCAN_EVENTS | RC_SCAN_SPAN_NAME, scratch);
    rc_facts_fill_from(&v->f, run_facts);
    v->log_type = log_type_of(&v->f);
}

/* Classifies v's attributes; info holds STACK_ATTRS entries, more come
 * from scratch. False when memory ran out. */
static bool view_classify(span_view *v, attr_info *info, rc_arena *scratch)
{
    const otlp_span *s = v->span;
    v->info = s->n_attributes <= STACK_ATTRS
                  ? info
                  : rc_arena_alloc(scratch, s->n_attributes * sizeof *v->info);
    if (!v->info) return false;
    memset(v->fv, 0, sizeof v->fv);
    v->flat_tools = false;
    v->consumed_facts = 0;
    v->carried = 0;
    classify_attrs(v);
    return true;
}

static bool write_span(log_ctx *c, const otlp_span *s)
{
    span_view v;
    view_scan(&v, s, &c->run.facts, c->scratch);
    if (c->opts->llm_only && !is_llm_span(&v.f, v.log_type)) {
        c->stats->skipped_non_llm++;
        return true;
    }
    attr_info stack_info[STACK_ATTRS];
    if (!view_classify(&v, stack_info, c->scratch)) return false;

    write_identity(c, s);
    write_description(c, &v);
    write_timing(c, &v);
    write_model(c, &v);
    if (!write_content(c, &v)) return false;
    write_status(c, &v);
    write_customer(c, &v);
    write_identifiers(c, &v);
    write_metadata(c, &v);
    LIT(c->out, "}\n");
    c->stats->logs++;
    return c->ok;
}

bool rc_respan_log_brief_of(const otlp_span *s, const otlp_resource *res, rc_arena *scratch,
                            rc_respan_log_brief *out)
{
    pthread_once(&ix_once, ix_build);
    memset(out, 0, sizeof *out);
    rc_facts run;
    span_view view, *v = &view;
    attr_info info[STACK_ATTRS];
    rc_facts_init(&run, RESOURCE_FACTS);
    if (res) rc_scan_resource(&run, res, scratch);
    view_scan(v, s, &run, scratch);
    if (!view_classify(v, info, scratch)) return false;
    out->llm = is_llm_span(&v->f, v->log_type);
    out->log_type = v->log_type;
    if (rc_facts_has(&v->f, RC_FACT_CUSTOMER_ID)) {
        out->customer = v->f.f[RC_FACT_CUSTOMER_ID].s;
        out->customer_len = v->f.f[RC_FACT_CUSTOMER_ID].len;
    }
    rc_fact_id model = model_fact(v);
    if (rc_facts_has(&v->f, model)) {
        out->model = v->f.f[model].s;
        out->model_len = v->f.f[model].len;
    }
    out->has_prompt_tokens = rc_facts_has(&v->f, RC_FACT_INPUT_TOKENS);
    out->prompt_tokens = out->has_prompt_tokens ? v->f.f[RC_FACT_INPUT_TOKENS].i : 0;
    out->has_completion_tokens = rc_facts_has(&v->f, RC_FACT_OUTPUT_TOKENS);
    out->completion_tokens = out->has_completion_tokens ? v->f.f[RC_FACT_OUTPUT_TOKENS].i : 0;
    bool from_field;
    out->has_cost = cost_of(v, &out->cost, &from_field);
    out->error = status_of(v, &out->status_code, &out->error_message);
    return !rc_arena_exhausted(scratch);
}

bool rc_respan_logs_write(rc_buf *out, const rc_batch *batch, const rc_respan_log_opts *opts,
                          rc_arena *scratch, rc_respan_log_stats *stats)
{
    static const rc_respan_log_opts no_opts = {0};
    rc_respan_log_stats local = {0};
    pthread_once(&ix_once, ix_build);
    log_ctx *c = rc_arena_calloc(scratch, sizeof *c);
    if (!c) return false;
    c->out = out;
    c->opts = opts ? opts : &no_opts;
    c->scratch = scratch;
    c->stats = stats ? stats : &local;
    c->ok = true;
    c->seen.cur = 1;
    for (size_t r = 0; c->ok && r < batch->n_runs; r++) {
        const rc_span_run *run = &batch->runs[r];
        if (!enter_run(c, run)) {
            c->ok = false;
            break;
        }
        for (size_t i = 0; c->ok && i < run->n_spans; i++)
            if (run->spans[i] && !write_span(c, run->spans[i])) c->ok = false;
    }
    bool ok = c->ok && !out->failed && !c->escaped_once.failed && !c->text.failed &&
              !c->calls.failed && !c->resps.failed && !c->value.failed && !c->entry.failed &&
              !rc_arena_exhausted(scratch);
    rc_buf_free(&c->escaped_once);
    rc_buf_free(&c->text);
    rc_buf_free(&c->calls);
    rc_buf_free(&c->resps);
    rc_buf_free(&c->value);
    rc_buf_free(&c->entry);
    return ok;
}
