/*
 * debug.c - the `debug` exporter: what the collector sees, on stderr.
 *
 * Config (exporters.debug), the OpenTelemetry Collector's key and values:
 *   verbosity: normal    the default. One line per batch with its counts,
 *                        and one line per LLM span with the facts the
 *                        collector derives: service, span name, customer,
 *                        model, tokens in/out, cost and status. Other spans
 *                        show only in the count line.
 *              basic     the count line only.
 *              detailed  the count line, then every span with everything
 *                        it carries (resource, scope, span fields and
 *                        attributes, events, links, status), laid out like
 *                        the OpenTelemetry Collector's detailed output.
 * The OpenTelemetry Collector's default is `basic`; ours is `normal`,
 * because the customer and cost are what this collector is for.
 *
 * The LLM line reads its facts with the respan exporter's own code
 * (rc_respan_log_brief_of in respan_log.h): the line says what the request
 * log says, and there is no second mapping to drift.
 *
 * Every line is one core/log.h event (one write(2)), so lines never mix.
 * Strings from spans are untrusted: control characters (C0, DEL, C1, line
 * and paragraph separators, bidi overrides) are escaped, backslashes
 * doubled, and long strings cut at a character boundary with "...". One
 * mutex, shared by every debug exporter, keeps a batch's lines together.
 */
#include "core/arena.h"
#include "core/component.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "exporter/respan_log.h"
#include "llm/span_attrs.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { VERBOSITY_BASIC, VERBOSITY_NORMAL, VERBOSITY_DETAILED } verbosity;

#define SERVICE_MAX_CHARS 32
#define NAME_MAX_CHARS 64
#define VALUE_MAX_CHARS 64 /* customer, model */
#define ERROR_MAX_CHARS 120
#define DETAIL_MAX_CHARS 512 /* one value of the detailed output */
#define SERVICE_WIDTH 14     /* columns the service and the span name are padded to */
#define NAME_WIDTH 20
#define SCRATCH_MAX_BYTES (1024 * 1024)
#define MAX_DEPTH 8 /* nested arrays and maps in the detailed output */

typedef struct debug_exporter {
    char *id;
    verbosity level;
} debug_exporter;

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void debug_destroy(void *inst)
{
    debug_exporter *e = inst;
    if (!e) return;
    free(e->id);
    free(e);
}

static void *debug_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    const char *v = "normal";
    if (rc_cfg_string(cfg, "verbosity", "normal", &v, err) != RC_OK) return NULL;
    verbosity level;
    if (strcmp(v, "basic") == 0)
        level = VERBOSITY_BASIC;
    else if (strcmp(v, "normal") == 0)
        level = VERBOSITY_NORMAL;
    else if (strcmp(v, "detailed") == 0)
        level = VERBOSITY_DETAILED;
    else {
        rc_cfg_error(err, rc_cfg_get(cfg, "verbosity"),
                     "verbosity must be basic, normal or detailed, not \"%s\"", v);
        return NULL;
    }
    if (rc_cfg_reject_unknown(cfg, err) != RC_OK) return NULL;
    debug_exporter *e = calloc(1, sizeof *e);
    if (!e || !(e->id = strdup(id->id))) {
        rc_error_set(err, "out of memory");
        debug_destroy(e);
        return NULL;
    }
    e->level = level;
    return e;
}

static rc_status debug_start(void *inst, rc_error *err)
{
    return RC_OK;
}

/* --- safe text ------------------------------------------------------------ */

/* Length of the UTF-8 sequence starting with byte c (1 for a stray byte). */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xf0 && c < 0xf8) return 4;
    if (c >= 0xe0) return c < 0xf0 ? 3 : 1;
    if (c >= 0xc0) return 2;
    return 1;
}

/* Appends s[0..n) escaped: \n \r \t \\ (and \" when quoted), \xHH for
 * other C0 bytes, DEL and invalid bytes, \uHHHH for C1 controls, U+2028,
 * U+2029 and the bidi controls U+202A..U+202E and U+2066..U+2069. At most
 * max_chars characters are kept, then "...". Returns the columns
 * written (a character each, an escape its length), for padding. */
static size_t put_safe(rc_buf *b, const char *s, size_t n, size_t max_chars, bool quoted)
{
    size_t chars = 0, width = 0;
    if (quoted) rc_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        if (chars == max_chars) {
            rc_buf_puts(b, "...");
            width += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_len(c);
        if (i + len > n) len = 1; /* cut short: escaped as a byte below */
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xc0) != 0x80) len = 1;
        uint32_t cp = c;
        if (len == 2) cp = (c & 0x1fu) << 6 | ((unsigned char)s[i + 1] & 0x3fu);
        if (len == 3)
            cp = (c & 0x0fu) << 12 | ((unsigned char)s[i + 1] & 0x3fu) << 6 |
                 ((unsigned char)s[i + 2] & 0x3fu);
        size_t before = b->len;
        if (c == '\n')
            rc_buf_puts(b, "\\n");
        else if (c == '\r')
            rc_buf_puts(b, "\\r");
        else if (c == '\t')
            rc_buf_puts(b, "\\t");
        else if (c == '\\')
            rc_buf_puts(b, "\\\\");
        else if (c == '"' && quoted)
            rc_buf_puts(b, "\\\"");
        else if (c < 0x20 || c == 0x7f || (len == 1 && c >= 0x80))
            rc_buf_printf(b, "\\x%02x", c);
        else if ((len == 2 && cp >= 0x80 && cp < 0xa0) ||
                 (len == 3 && cp >= 0x2028 && cp <= 0x202e) ||
                 (len == 3 && cp >= 0x2066 && cp <= 0x2069))
            rc_buf_printf(b, "\\u%04x", (unsigned)cp);
        if (b->len == before) {
            rc_buf_append(b, s + i, len);
            width++;
        } else {
            width += b->len - before;
        }
        i += len;
        chars++;
    }
    if (quoted) rc_buf_putc(b, '"');
    return width + (quoted ? 2 : 0);
}

static size_t put_safe_cstr(rc_buf *b, const char *s, size_t max_chars)
{
    return put_safe(b, s ? s : "", s ? strlen(s) : 0, max_chars, false);
}

/* A value of the LLM line: "-" when missing; quoted when it holds a blank,
 * a quote or an '=', or is empty, so the line still splits on blanks. */
static void put_field(rc_buf *b, const char *key, const char *s, size_t n)
{
    rc_buf_puts(b, "  ");
    rc_buf_puts(b, key);
    rc_buf_putc(b, '=');
    if (!s) {
        rc_buf_putc(b, '-');
        return;
    }
    bool quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ' ' || s[i] == '"' || s[i] == '=';
    put_safe(b, s, n, VALUE_MAX_CHARS, quote);
}

static void pad(rc_buf *b, size_t written, size_t width)
{
    for (; written < width; written++)
        rc_buf_putc(b, ' ');
}

/* --- the count line --------------------------------------------------------- */

static void log_counts(const debug_exporter *e, const rc_batch *batch)
{
    size_t resources = 0;
    const otlp_resource_spans *last = NULL;
    for (size_t i = 0; i < batch->n_runs; i++)
        if (batch->runs[i].rs != last) {
            resources++;
            last = batch->runs[i].rs;
        }
    rc_info(e->id, "traces: %zu spans from %zu resources", batch->n_spans, resources);
}

/* --- normal: one line per LLM span ------------------------------------------------ */

/* USD with up to 6 decimals and no trailing zeros; tiny costs in
 * scientific notation rather than as $0. */
static void put_cost(rc_buf *b, double d)
{
    char t[48];
    if (d > 0 && d < 0.000001) {
        snprintf(t, sizeof t, "%.2e", d);
    } else {
        snprintf(t, sizeof t, "%.6f", d);
        size_t n = strlen(t);
        while (n > 1 && t[n - 1] == '0')
            n--;
        if (t[n - 1] == '.') n--;
        t[n] = '\0';
    }
    rc_buf_putc(b, '$');
    rc_buf_puts(b, t);
}

static const char *status_name(const otlp_span *s)
{
    static const char *const codes[] = {"unset", "ok", "error"};
    int code = s->status ? (int)s->status->code : 0;
    return code >= 0 && code < 3 ? codes[code] : "unknown";
}

static void put_llm_line(rc_buf *line, const otlp_span *s, const otlp_resource *res,
                         const rc_respan_log_brief *br)
{
    const char *service = rc_av_str(rc_resource_attr(res, "service.name"));
    size_t w = service && service[0] ? put_safe_cstr(line, service, SERVICE_MAX_CHARS)
                                     : (rc_buf_putc(line, '-'), 1);
    pad(line, w, SERVICE_WIDTH);
    rc_buf_puts(line, "  ");
    w = s->name && s->name[0] ? put_safe_cstr(line, s->name, NAME_MAX_CHARS)
                              : (rc_buf_putc(line, '-'), 1);
    pad(line, w, NAME_WIDTH);
    put_field(line, "customer", br->customer, br->customer_len);
    put_field(line, "model", br->model, br->model_len);
    rc_buf_puts(line, "  tokens=");
    if (!br->has_prompt_tokens && !br->has_completion_tokens) {
        rc_buf_putc(line, '-');
    } else {
        if (br->has_prompt_tokens)
            rc_buf_printf(line, "%" PRId64, br->prompt_tokens);
        else
            rc_buf_putc(line, '-');
        rc_buf_putc(line, '/');
        if (br->has_completion_tokens)
            rc_buf_printf(line, "%" PRId64, br->completion_tokens);
        else
            rc_buf_putc(line, '-');
    }
    rc_buf_puts(line, "  cost=");
    if (br->has_cost)
        put_cost(line, br->cost);
    else
        rc_buf_putc(line, '-');
    rc_buf_puts(line, "  status=");
    rc_buf_puts(line, status_name(s));
    if (br->error && br->error_message) {
        rc_buf_puts(line, "  error=");
        put_safe(line, br->error_message, strlen(br->error_message), ERROR_MAX_CHARS, true);
    }
}

static bool log_llm_spans(const debug_exporter *e, const rc_batch *batch)
{
    rc_arena *scratch = rc_arena_new_scratch(16384);
    if (!scratch) return false;
    rc_buf line = RC_BUF_INIT;
    bool ok = true;
    for (size_t i = 0; ok && i < batch->n_runs; i++) {
        const rc_span_run *run = &batch->runs[i];
        const otlp_resource *res = run->rs ? run->rs->resource : NULL;
        for (size_t k = 0; k < run->n_spans; k++) {
            const otlp_span *s = run->spans[k];
            rc_respan_log_brief br;
            if (!s) continue;
            /* The scan's strings are needed only until the line is
             * printed: keep the scratch from growing with the batch. */
            if (rc_arena_bytes(scratch) > SCRATCH_MAX_BYTES) {
                rc_arena_free(scratch);
                scratch = rc_arena_new_scratch(16384);
            }
            if (!scratch || !rc_respan_log_brief_of(s, res, scratch, &br)) {
                ok = false;
                break;
            }
            if (!br.llm) continue;
            rc_buf_reset(&line);
            put_llm_line(&line, s, res, &br);
            rc_buf_putc(&line, '\0');
            if (line.failed) {
                ok = false;
                break;
            }
            rc_info(e->id, "%s", line.data);
        }
    }
    rc_arena_free(scratch);
    rc_buf_free(&line);
    return ok;
}

/* --- detailed: everything, as the OpenTelemetry Collector lays it out ------------- */

static const char *kind_name(int kind)
{
    static const char *const names[] = {"Unspecified", "Internal", "Server",
                                        "Client",      "Producer", "Consumer"};
    return kind >= 0 && kind < 6 ? names[kind] : "Unknown";
}

static void put_hex(rc_buf *b, const ProtobufCBinaryData *id)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < id->len; i++) {
        rc_buf_putc(b, digits[id->data[i] >> 4]);
        rc_buf_putc(b, digits[id->data[i] & 15]);
    }
}

/* "2026-11-23 16:57:55.123456789 +0000 UTC", Go's time.String as the
 * OpenTelemetry Collector prints it. */
static void put_time(rc_buf *b, uint64_t unix_nano)
{
    time_t sec = (time_t)(unix_nano / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    rc_buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d.%09u +0000 UTC", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (unsigned)(unix_nano % 1000000000u));
}

/* A value inside Slice(...) or Map(...): JSON text. */
static void put_json_any(rc_buf *b, const otlp_any_value *v, int depth)
{
    if (!v) {
        rc_buf_puts(b, "null");
        return;
    }
    switch (v->value_case) {
    case RC_AV_STRING:
        rc_json_cstr(b, v->string_value);
        break;
    case RC_AV_BOOL:
        rc_buf_puts(b, v->bool_value ? "true" : "false");
        break;
    case RC_AV_INT:
        rc_json_i64(b, v->int_value);
        break;
    case RC_AV_DOUBLE:
        rc_json_double(b, v->double_value);
        break;
    case RC_AV_BYTES:
        rc_json_hex(b, v->bytes_value.data, v->bytes_value.len);
        break;
    case RC_AV_ARRAY:
        if (depth >= MAX_DEPTH || !v->array_value) {
            rc_buf_puts(b, "[]");
            break;
        }
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < v->array_value->n_values; i++) {
            if (i) rc_buf_putc(b, ',');
            put_json_any(b, v->array_value->values[i], depth + 1);
        }
        rc_buf_putc(b, ']');
        break;
    case RC_AV_KVLIST:
        if (depth >= MAX_DEPTH || !v->kvlist_value) {
            rc_buf_puts(b, "{}");
            break;
        }
        rc_buf_putc(b, '{');
        for (size_t i = 0; i < v->kvlist_value->n_values; i++) {
            const otlp_key_value *kv = v->kvlist_value->values[i];
            if (i) rc_buf_putc(b, ',');
            rc_json_key(b, kv && kv->key ? kv->key : "");
            put_json_any(b, kv ? kv->value : NULL, depth + 1);
        }
        rc_buf_putc(b, '}');
        break;
    default:
        rc_buf_puts(b, "null");
    }
}

/* Str(..), Int(..), Double(..), Bool(..), Bytes(..), Slice(..), Map(..),
 * Empty(): the OpenTelemetry Collector's notation. */
static void put_typed(rc_buf *b, rc_buf *tmp, const otlp_any_value *v)
{
    char num[64];
    switch (v ? v->value_case : 0) {
    case RC_AV_STRING:
        rc_buf_puts(b, "Str(");
        put_safe_cstr(b, v->string_value, DETAIL_MAX_CHARS);
        break;
    case RC_AV_BOOL:
        rc_buf_puts(b, v->bool_value ? "Bool(true" : "Bool(false");
        break;
    case RC_AV_INT:
        rc_buf_printf(b, "Int(%" PRId64, v->int_value);
        break;
    case RC_AV_DOUBLE:
        snprintf(num, sizeof num, "%.17g", v->double_value);
        rc_buf_printf(b, "Double(%s", num);
        break;
    case RC_AV_BYTES:
        rc_buf_puts(b, "Bytes(");
        put_hex(b, &v->bytes_value);
        break;
    case RC_AV_ARRAY:
    case RC_AV_KVLIST:
        rc_buf_puts(b, v->value_case == RC_AV_ARRAY ? "Slice(" : "Map(");
        rc_buf_reset(tmp);
        put_json_any(tmp, v, 0);
        put_safe(b, tmp->data ? tmp->data : "", tmp->len, DETAIL_MAX_CHARS, false);
        break;
    default:
        rc_buf_puts(b, "Empty(");
    }
    rc_buf_putc(b, ')');
}

typedef struct printer {
    const debug_exporter *e;
    rc_buf line, tmp;
    bool ok;
} printer;

/* Ends the line being built and logs it. */
static void emit(printer *p)
{
    rc_buf_putc(&p->line, '\0');
    if (p->line.failed || p->tmp.failed)
        p->ok = false;
    else
        rc_info(p->e->id, "%s", p->line.data);
    rc_buf_reset(&p->line);
}

static void emit_text(printer *p, const char *label, const char *s)
{
    rc_buf_puts(&p->line, label);
    put_safe_cstr(&p->line, s, DETAIL_MAX_CHARS);
    emit(p);
}

static void emit_attrs(printer *p, const char *indent, otlp_key_value *const *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const otlp_key_value *kv = kvs[i];
        if (!kv) continue;
        rc_buf_puts(&p->line, indent);
        rc_buf_puts(&p->line, "-> ");
        put_safe_cstr(&p->line, kv->key, NAME_MAX_CHARS * 2);
        rc_buf_puts(&p->line, ": ");
        put_typed(&p->line, &p->tmp, kv->value);
        emit(p);
    }
}

static void emit_span(printer *p, const otlp_span *s, size_t index)
{
    rc_buf_printf(&p->line, "Span #%zu", index);
    emit(p);
    rc_buf_puts(&p->line, "    Trace ID       : ");
    put_hex(&p->line, &s->trace_id);
    emit(p);
    rc_buf_puts(&p->line, "    Parent ID      : ");
    put_hex(&p->line, &s->parent_span_id);
    emit(p);
    rc_buf_puts(&p->line, "    ID             : ");
    put_hex(&p->line, &s->span_id);
    emit(p);
    emit_text(p, "    Name           : ", s->name);
    rc_buf_printf(&p->line, "    Kind           : %s", kind_name((int)s->kind));
    emit(p);
    emit_text(p, "    TraceState     : ", s->trace_state);
    rc_buf_puts(&p->line, "    Start time     : ");
    put_time(&p->line, s->start_time_unix_nano);
    emit(p);
    rc_buf_puts(&p->line, "    End time       : ");
    put_time(&p->line, s->end_time_unix_nano);
    emit(p);
    static const char *const codes[] = {"Unset", "Ok", "Error"};
    int code = s->status ? (int)s->status->code : 0;
    rc_buf_printf(&p->line, "    Status code    : %s",
                  code >= 0 && code < 3 ? codes[code] : "Unknown");
    emit(p);
    emit_text(p, "    Status message : ", s->status ? s->status->message : "");
    rc_buf_printf(&p->line, "    DroppedAttributesCount: %u", s->dropped_attributes_count);
    emit(p);
    rc_buf_printf(&p->line, "    DroppedEventsCount: %u", s->dropped_events_count);
    emit(p);
    rc_buf_printf(&p->line, "    DroppedLinksCount: %u", s->dropped_links_count);
    emit(p);
    if (s->n_attributes) {
        emit_text(p, "Attributes:", "");
        emit_attrs(p, "     ", s->attributes, s->n_attributes);
    }
    if (s->n_events) emit_text(p, "Events:", "");
    for (size_t i = 0; i < s->n_events; i++) {
        const otlp_event *ev = s->events[i];
        if (!ev) continue;
        rc_buf_printf(&p->line, "SpanEvent #%zu", i);
        emit(p);
        emit_text(p, "     -> Name: ", ev->name);
        rc_buf_puts(&p->line, "     -> Timestamp: ");
        put_time(&p->line, ev->time_unix_nano);
        emit(p);
        rc_buf_printf(&p->line, "     -> DroppedAttributesCount: %u", ev->dropped_attributes_count);
        emit(p);
        if (ev->n_attributes) {
            emit_text(p, "     -> Attributes::", "");
            emit_attrs(p, "          ", ev->attributes, ev->n_attributes);
        }
    }
    if (s->n_links) emit_text(p, "Links:", "");
    for (size_t i = 0; i < s->n_links; i++) {
        const otlp_link *l = s->links[i];
        if (!l) continue;
        rc_buf_printf(&p->line, "SpanLink #%zu", i);
        emit(p);
        rc_buf_puts(&p->line, "     -> Trace ID: ");
        put_hex(&p->line, &l->trace_id);
        emit(p);
        rc_buf_puts(&p->line, "     -> ID: ");
        put_hex(&p->line, &l->span_id);
        emit(p);
        emit_text(p, "     -> TraceState: ", l->trace_state);
        rc_buf_printf(&p->line, "     -> DroppedAttributesCount: %u", l->dropped_attributes_count);
        emit(p);
        if (l->n_attributes) {
            emit_text(p, "     -> Attributes::", "");
            emit_attrs(p, "          ", l->attributes, l->n_attributes);
        }
    }
}

static bool log_detailed(const debug_exporter *e, const rc_batch *batch)
{
    printer p = {.e = e, .line = RC_BUF_INIT, .tmp = RC_BUF_INIT, .ok = true};
    const otlp_resource_spans *last_rs = NULL;
    const otlp_scope_spans *last_ss = NULL;
    size_t n_rs = 0, n_ss = 0;
    for (size_t i = 0; p.ok && i < batch->n_runs; i++) {
        const rc_span_run *run = &batch->runs[i];
        if (i == 0 || run->rs != last_rs) {
            const otlp_resource *res = run->rs ? run->rs->resource : NULL;
            rc_buf_printf(&p.line, "ResourceSpans #%zu", n_rs++);
            emit(&p);
            emit_text(&p, "Resource SchemaURL: ", run->rs ? run->rs->schema_url : "");
            if (res && res->n_attributes) {
                emit_text(&p, "Resource attributes:", "");
                emit_attrs(&p, "     ", res->attributes, res->n_attributes);
            }
            last_rs = run->rs;
            last_ss = NULL;
            n_ss = 0;
        }
        if (!last_ss || run->ss != last_ss) {
            const otlp_scope *sc = run->ss ? run->ss->scope : NULL;
            rc_buf_printf(&p.line, "ScopeSpans #%zu", n_ss++);
            emit(&p);
            emit_text(&p, "ScopeSpans SchemaURL: ", run->ss ? run->ss->schema_url : "");
            rc_buf_puts(&p.line, "InstrumentationScope ");
            put_safe_cstr(&p.line, sc ? sc->name : "", NAME_MAX_CHARS * 2);
            rc_buf_putc(&p.line, ' ');
            put_safe_cstr(&p.line, sc ? sc->version : "", NAME_MAX_CHARS);
            emit(&p);
            if (sc && sc->n_attributes) {
                emit_text(&p, "InstrumentationScope attributes:", "");
                emit_attrs(&p, "     ", sc->attributes, sc->n_attributes);
            }
            last_ss = run->ss;
        }
        for (size_t k = 0; p.ok && k < run->n_spans; k++)
            if (run->spans[k]) emit_span(&p, run->spans[k], k);
    }
    rc_buf_free(&p.line);
    rc_buf_free(&p.tmp);
    return p.ok;
}

static rc_status debug_export(void *inst, const rc_batch *batch, rc_error *err)
{
    debug_exporter *e = inst;
    pthread_mutex_lock(&print_lock);
    log_counts(e, batch);
    bool ok = true;
    if (e->level == VERBOSITY_NORMAL)
        ok = log_llm_spans(e, batch);
    else if (e->level == VERBOSITY_DETAILED)
        ok = log_detailed(e, batch);
    pthread_mutex_unlock(&print_lock);
    /* Printing is best effort: a batch is never refused for it. */
    if (!ok) rc_warn(e->id, "out of memory: some spans were not printed");
    return RC_OK;
}

static void debug_shutdown(void *inst) {}

const rc_exporter_factory rc_debug_exporter_factory = {
    .type = "debug",
    .description = "prints the spans to stderr: counts, one line per LLM span, or everything",
    .create = debug_create,
    .start = debug_start,
    .export_batch = debug_export,
    .shutdown = debug_shutdown,
    .destroy = debug_destroy,
};
