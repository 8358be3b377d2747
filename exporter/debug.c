/*
 * debug.c - the `debug` exporter: a readable summary on stderr.
 *
 * Config (exporters.debug):
 *   verbosity: basic     basic: one line per batch with its counts
 *                        normal: also one line per span (ids, name, kind,
 *                                duration, status)
 *                        detailed: those span lines carry every attribute
 *
 * Like the rest of the logs, every line is one event.
 */
#include "core/component.h"
#include "core/json_writer.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

typedef enum { VERBOSITY_BASIC, VERBOSITY_NORMAL, VERBOSITY_DETAILED } verbosity;

typedef struct debug_exporter {
    char *id;
    verbosity level;
} debug_exporter;

static void debug_destroy(void *inst)
{
    debug_exporter *e = inst;
    if (!e) return;
    free(e->id);
    free(e);
}

static void *debug_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    const char *v = "basic";
    if (rc_cfg_string(cfg, "verbosity", "basic", &v, err) != RC_OK) return NULL;
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

static const char *kind_name(int kind)
{
    static const char *const names[] = {"unspecified", "internal", "server",
                                        "client",      "producer", "consumer"};
    return kind >= 0 && kind < 6 ? names[kind] : "unknown";
}

static void append_hex(rc_buf *b, const ProtobufCBinaryData *id)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < id->len; i++) {
        rc_buf_putc(b, digits[id->data[i] >> 4]);
        rc_buf_putc(b, digits[id->data[i] & 15]);
    }
    if (id->len == 0) rc_buf_putc(b, '-');
}

static void append_value(rc_buf *b, const otlp_any_value *v)
{
    if (!v) {
        rc_buf_puts(b, "null");
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        rc_json_cstr(b, v->string_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        rc_buf_puts(b, v->bool_value ? "true" : "false");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        rc_json_i64(b, v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        rc_json_double(b, v->double_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        rc_buf_printf(b, "[%zu values]", v->array_value ? v->array_value->n_values : 0);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        rc_buf_printf(b, "{%zu keys}", v->kvlist_value ? v->kvlist_value->n_values : 0);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        rc_buf_printf(b, "<%zu bytes>", v->bytes_value.len);
        break;
    default:
        rc_buf_puts(b, "empty");
    }
}

static void log_span(const debug_exporter *e, const otlp_span *s, rc_buf *line)
{
    rc_buf_reset(line);
    rc_buf_puts(line, "span trace_id=");
    append_hex(line, &s->trace_id);
    rc_buf_puts(line, " span_id=");
    append_hex(line, &s->span_id);
    rc_buf_puts(line, " parent_id=");
    append_hex(line, &s->parent_span_id);
    rc_buf_puts(line, " name=");
    rc_json_cstr(line, s->name);
    double ms = s->end_time_unix_nano >= s->start_time_unix_nano
                    ? (double)(s->end_time_unix_nano - s->start_time_unix_nano) / 1e6
                    : 0.0;
    static const char *const codes[] = {"unset", "ok", "error"};
    int code = s->status ? (int)s->status->code : 0;
    rc_buf_printf(line, " kind=%s duration_ms=%.3f status=%s attributes=%zu events=%zu links=%zu",
                  kind_name((int)s->kind), ms, code >= 0 && code < 3 ? codes[code] : "unknown",
                  s->n_attributes, s->n_events, s->n_links);
    if (e->level == VERBOSITY_DETAILED) {
        for (size_t i = 0; i < s->n_attributes; i++) {
            rc_buf_putc(line, ' ');
            rc_buf_puts(line, s->attributes[i]->key);
            rc_buf_putc(line, '=');
            append_value(line, s->attributes[i]->value);
        }
    }
    rc_buf_putc(line, '\0');
    if (!line->failed) rc_info(e->id, "%s", line->data);
}

static rc_status debug_export(void *inst, const rc_batch *batch, rc_error *err)
{
    debug_exporter *e = inst;
    size_t resources = 0;
    const otlp_resource_spans *last = NULL;
    for (size_t i = 0; i < batch->n_runs; i++)
        if (batch->runs[i].rs != last) {
            resources++;
            last = batch->runs[i].rs;
        }
    rc_info(e->id, "traces: %zu spans from %zu resources", batch->n_spans, resources);
    if (e->level == VERBOSITY_BASIC) return RC_OK;
    rc_buf line = RC_BUF_INIT;
    for (size_t i = 0; i < batch->n_runs; i++)
        for (size_t k = 0; k < batch->runs[i].n_spans; k++)
            log_span(e, batch->runs[i].spans[k], &line);
    rc_buf_free(&line);
    return RC_OK;
}

static void debug_shutdown(void *inst) {}

const rc_exporter_factory rc_debug_exporter_factory = {
    .type = "debug",
    .description = "prints a readable summary of the spans to stderr",
    .create = debug_create,
    .start = debug_start,
    .export_batch = debug_export,
    .shutdown = debug_shutdown,
    .destroy = debug_destroy,
};
