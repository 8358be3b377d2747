/*
 * json_encode.c - ExportTraceServiceRequest to OTLP/JSON, as the file
 * exporter writes it.
 *
 * The output is meant to be indistinguishable from what the OpenTelemetry
 * Collector's file exporter (pdata's JSON marshaler) writes, so existing
 * tooling can read our files:
 *   - lowerCamelCase keys, fields in proto declaration order (Span.flags
 *     comes right after parentSpanId although its number is 16);
 *   - fields holding their default value are left out (empty strings and
 *     arrays, zero numbers, all-zero ids), except where pdata's structs hold
 *     a value rather than a pointer: ResourceSpans.resource, ScopeSpans.scope,
 *     Span.status and KeyValue.value are always written, as {} when empty;
 *   - an AnyValue writes its set member even when zero ({"intValue":"0"});
 *   - trace and span ids as lower-case hex, 64-bit integers as quoted
 *     decimals, enums as integers, bytes as standard base64;
 *   - one compact line, no trailing newline.
 * Non-finite doubles are written "NaN", "Infinity", "-Infinity" (protobuf
 * JSON) where Go writes "NaN", "+Inf", "-Inf".
 *
 * The encoder is hand-written per message rather than driven by the
 * descriptors: the field order is not the field-number order, and this is
 * the file exporter's hot path, so every key is a literal appended with one
 * memcpy and nothing is allocated besides the output buffer. NULL pointers
 * anywhere (a processor may leave them) read as empty messages.
 */
#include "otlp/otlp.h"

#include "core/json_writer.h"

#include <stdbool.h>
#include <string.h>

/* Nesting past this is written as {}: decoders never produce it, but a
 * processor-built value must not overflow the stack. */
#define ENCODE_MAX_DEPTH 256

/* Tracks whether the current object already has a member, for commas. */
typedef struct obj {
    rc_buf *b;
    bool has_member;
} obj;

static obj obj_open(rc_buf *b)
{
    rc_buf_putc(b, '{');
    return (obj){.b = b, .has_member = false};
}

static void obj_close(obj *o)
{
    rc_buf_putc(o->b, '}');
}

static void member(obj *o, const char *quoted_key_colon, size_t n)
{
    if (o->has_member) rc_buf_putc(o->b, ',');
    o->has_member = true;
    rc_buf_append(o->b, quoted_key_colon, n);
}

#define KEY(o, name) member((o), "\"" name "\":", sizeof("\"" name "\":") - 1)

static bool str_set(const char *s)
{
    return s && *s;
}

static void str_member(obj *o, const char *quoted_key_colon, size_t n, const char *s)
{
    if (!str_set(s)) return;
    member(o, quoted_key_colon, n);
    rc_json_cstr(o->b, s);
}

#define STR(o, name, s) str_member((o), "\"" name "\":", sizeof("\"" name "\":") - 1, (s))

static void u32_member(obj *o, const char *quoted_key_colon, size_t n, uint32_t v)
{
    if (!v) return;
    member(o, quoted_key_colon, n);
    rc_json_u64(o->b, v);
}

#define U32(o, name, v) u32_member((o), "\"" name "\":", sizeof("\"" name "\":") - 1, (v))

static void time_member(obj *o, const char *quoted_key_colon, size_t n, uint64_t v)
{
    if (!v) return;
    member(o, quoted_key_colon, n);
    rc_json_u64_quoted(o->b, v);
}

#define TIME(o, name, v) time_member((o), "\"" name "\":", sizeof("\"" name "\":") - 1, (v))

static bool id_set(const ProtobufCBinaryData *id)
{
    for (size_t i = 0; i < id->len; i++)
        if (id->data[i]) return true;
    return false;
}

static void id_member(obj *o, const char *quoted_key_colon, size_t n, const ProtobufCBinaryData *id)
{
    if (!id_set(id)) return;
    member(o, quoted_key_colon, n);
    rc_json_hex(o->b, id->data, id->len);
}

#define ID(o, name, id) id_member((o), "\"" name "\":", sizeof("\"" name "\":") - 1, (id))

static void write_any_value(rc_buf *b, const otlp_any_value *v, int depth);

static void write_key_value(rc_buf *b, const otlp_key_value *kv, int depth)
{
    obj o = obj_open(b);
    if (kv) {
        STR(&o, "key", kv->key);
    }
    KEY(&o, "value");
    write_any_value(b, kv ? kv->value : NULL, depth);
    obj_close(&o);
}

static void write_attributes(obj *o, size_t n, otlp_key_value *const *kvs, int depth)
{
    if (n == 0) return;
    KEY(o, "attributes");
    rc_buf_putc(o->b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) rc_buf_putc(o->b, ',');
        write_key_value(o->b, kvs[i], depth);
    }
    rc_buf_putc(o->b, ']');
}

static void write_array_value(rc_buf *b, const otlp_array_value *a, int depth)
{
    obj o = obj_open(b);
    if (a && a->n_values) {
        KEY(&o, "values");
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < a->n_values; i++) {
            if (i) rc_buf_putc(b, ',');
            write_any_value(b, a->values[i], depth + 1);
        }
        rc_buf_putc(b, ']');
    }
    obj_close(&o);
}

static void write_kvlist(rc_buf *b, const otlp_kvlist *l, int depth)
{
    obj o = obj_open(b);
    if (l && l->n_values) {
        KEY(&o, "values");
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < l->n_values; i++) {
            if (i) rc_buf_putc(b, ',');
            write_key_value(b, l->values[i], depth + 1);
        }
        rc_buf_putc(b, ']');
    }
    obj_close(&o);
}

static void write_any_value(rc_buf *b, const otlp_any_value *v, int depth)
{
    obj o = obj_open(b);
    if (!v || depth > ENCODE_MAX_DEPTH) {
        obj_close(&o);
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        KEY(&o, "stringValue");
        rc_json_cstr(b, v->string_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        KEY(&o, "boolValue");
        if (v->bool_value)
            rc_buf_append(b, "true", 4);
        else
            rc_buf_append(b, "false", 5);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        KEY(&o, "intValue");
        rc_json_i64_quoted(b, v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        KEY(&o, "doubleValue");
        rc_json_double(b, v->double_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        KEY(&o, "arrayValue");
        write_array_value(b, v->array_value, depth);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        KEY(&o, "kvlistValue");
        write_kvlist(b, v->kvlist_value, depth);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        KEY(&o, "bytesValue");
        rc_json_base64(b, v->bytes_value.data, v->bytes_value.len);
        break;
    default:
        break;
    }
    obj_close(&o);
}

static void write_entity_ref_strings(obj *o, const char *quoted_key_colon, size_t n, size_t count,
                                     char *const *strs)
{
    if (count == 0) return;
    member(o, quoted_key_colon, n);
    rc_buf_putc(o->b, '[');
    for (size_t i = 0; i < count; i++) {
        if (i) rc_buf_putc(o->b, ',');
        rc_json_cstr(o->b, strs[i]);
    }
    rc_buf_putc(o->b, ']');
}

#define STRS(o, name, count, strs)                                                                 \
    write_entity_ref_strings((o), "\"" name "\":", sizeof("\"" name "\":") - 1, (count), (strs))

static void write_entity_ref(rc_buf *b, const Opentelemetry__Proto__Common__V1__EntityRef *e)
{
    obj o = obj_open(b);
    if (e) {
        STR(&o, "schemaUrl", e->schema_url);
        STR(&o, "type", e->type);
        STRS(&o, "idKeys", e->n_id_keys, e->id_keys);
        STRS(&o, "descriptionKeys", e->n_description_keys, e->description_keys);
    }
    obj_close(&o);
}

static void write_resource(rc_buf *b, const otlp_resource *r)
{
    obj o = obj_open(b);
    if (r) {
        write_attributes(&o, r->n_attributes, r->attributes, 0);
        U32(&o, "droppedAttributesCount", r->dropped_attributes_count);
        if (r->n_entity_refs) {
            KEY(&o, "entityRefs");
            rc_buf_putc(b, '[');
            for (size_t i = 0; i < r->n_entity_refs; i++) {
                if (i) rc_buf_putc(b, ',');
                write_entity_ref(b, r->entity_refs[i]);
            }
            rc_buf_putc(b, ']');
        }
    }
    obj_close(&o);
}

static void write_scope(rc_buf *b, const otlp_scope *s)
{
    obj o = obj_open(b);
    if (s) {
        STR(&o, "name", s->name);
        STR(&o, "version", s->version);
        write_attributes(&o, s->n_attributes, s->attributes, 0);
        U32(&o, "droppedAttributesCount", s->dropped_attributes_count);
    }
    obj_close(&o);
}

static void write_event(rc_buf *b, const otlp_event *e)
{
    obj o = obj_open(b);
    if (e) {
        TIME(&o, "timeUnixNano", e->time_unix_nano);
        STR(&o, "name", e->name);
        write_attributes(&o, e->n_attributes, e->attributes, 0);
        U32(&o, "droppedAttributesCount", e->dropped_attributes_count);
    }
    obj_close(&o);
}

static void write_link(rc_buf *b, const otlp_link *l)
{
    obj o = obj_open(b);
    if (l) {
        ID(&o, "traceId", &l->trace_id);
        ID(&o, "spanId", &l->span_id);
        STR(&o, "traceState", l->trace_state);
        write_attributes(&o, l->n_attributes, l->attributes, 0);
        U32(&o, "droppedAttributesCount", l->dropped_attributes_count);
        U32(&o, "flags", l->flags);
    }
    obj_close(&o);
}

static void write_status(rc_buf *b, const otlp_status *s)
{
    obj o = obj_open(b);
    if (s) {
        STR(&o, "message", s->message);
        if (s->code) {
            KEY(&o, "code");
            rc_json_i64(b, (int32_t)s->code); /* enums are int32 on the wire */
        }
    }
    obj_close(&o);
}

static void write_span(rc_buf *b, const otlp_span *s)
{
    obj o = obj_open(b);
    if (!s) {
        KEY(&o, "status");
        write_status(b, NULL);
        obj_close(&o);
        return;
    }
    ID(&o, "traceId", &s->trace_id);
    ID(&o, "spanId", &s->span_id);
    STR(&o, "traceState", s->trace_state);
    ID(&o, "parentSpanId", &s->parent_span_id);
    U32(&o, "flags", s->flags);
    STR(&o, "name", s->name);
    if (s->kind) {
        KEY(&o, "kind");
        rc_json_i64(b, (int32_t)s->kind); /* enums are int32 on the wire */
    }
    TIME(&o, "startTimeUnixNano", s->start_time_unix_nano);
    TIME(&o, "endTimeUnixNano", s->end_time_unix_nano);
    write_attributes(&o, s->n_attributes, s->attributes, 0);
    U32(&o, "droppedAttributesCount", s->dropped_attributes_count);
    if (s->n_events) {
        KEY(&o, "events");
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < s->n_events; i++) {
            if (i) rc_buf_putc(b, ',');
            write_event(b, s->events[i]);
        }
        rc_buf_putc(b, ']');
    }
    U32(&o, "droppedEventsCount", s->dropped_events_count);
    if (s->n_links) {
        KEY(&o, "links");
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < s->n_links; i++) {
            if (i) rc_buf_putc(b, ',');
            write_link(b, s->links[i]);
        }
        rc_buf_putc(b, ']');
    }
    U32(&o, "droppedLinksCount", s->dropped_links_count);
    KEY(&o, "status");
    write_status(b, s->status);
    obj_close(&o);
}

static void write_scope_spans(rc_buf *b, const otlp_scope_spans *ss)
{
    obj o = obj_open(b);
    KEY(&o, "scope");
    write_scope(b, ss ? ss->scope : NULL);
    if (ss && ss->n_spans) {
        KEY(&o, "spans");
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < ss->n_spans; i++) {
            if (i) rc_buf_putc(b, ',');
            write_span(b, ss->spans[i]);
        }
        rc_buf_putc(b, ']');
    }
    if (ss) STR(&o, "schemaUrl", ss->schema_url);
    obj_close(&o);
}

static void write_resource_spans(rc_buf *b, const otlp_resource_spans *rs)
{
    obj o = obj_open(b);
    KEY(&o, "resource");
    write_resource(b, rs ? rs->resource : NULL);
    if (rs && rs->n_scope_spans) {
        KEY(&o, "scopeSpans");
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < rs->n_scope_spans; i++) {
            if (i) rc_buf_putc(b, ',');
            write_scope_spans(b, rs->scope_spans[i]);
        }
        rc_buf_putc(b, ']');
    }
    if (rs) STR(&o, "schemaUrl", rs->schema_url);
    obj_close(&o);
}

void otlp_json_encode(const otlp_export_request *req, rc_buf *out)
{
    obj o = obj_open(out);
    if (req && req->n_resource_spans) {
        KEY(&o, "resourceSpans");
        rc_buf_putc(out, '[');
        for (size_t i = 0; i < req->n_resource_spans; i++) {
            if (i) rc_buf_putc(out, ',');
            write_resource_spans(out, req->resource_spans[i]);
        }
        rc_buf_putc(out, ']');
    }
    obj_close(&o);
}
