/*
 * otlp.h - the OTLP trace data model and its two wire codecs.
 *
 * The pipeline carries the protobuf-c structs generated from proto/, under
 * short aliases. Both decoders build those structs inside a caller-given
 * arena (core/arena.h): a decoded request owns no heap memory of its own and
 * is released by freeing its arena.
 *
 * Decoders are total: any byte string gives either a request or RC_EINVAL
 * with a message naming what is wrong. They never crash, never recurse past
 * OTLP_MAX_DEPTH nested values and never allocate past the arena's limit
 * (RC_ENOMEM then). Invalid UTF-8 and embedded NULs in string fields are
 * repaired (U+FFFD) by the decoders, so every decoded string is valid UTF-8
 * and one bad attribute cannot make a whole batch undeliverable; the JSON
 * writer repairs again as a safety net.
 */
#ifndef RC_OTLP_H
#define RC_OTLP_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "google/rpc/status.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest otlp_export_request;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse otlp_export_response;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess otlp_partial_success;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans otlp_resource_spans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans otlp_scope_spans;
typedef Opentelemetry__Proto__Trace__V1__Span otlp_span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event otlp_event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link otlp_link;
typedef Opentelemetry__Proto__Trace__V1__Status otlp_status;
typedef Opentelemetry__Proto__Resource__V1__Resource otlp_resource;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope otlp_scope;
typedef Opentelemetry__Proto__Common__V1__KeyValue otlp_key_value;
typedef Opentelemetry__Proto__Common__V1__AnyValue otlp_any_value;
typedef Opentelemetry__Proto__Common__V1__ArrayValue otlp_array_value;
typedef Opentelemetry__Proto__Common__V1__KeyValueList otlp_kvlist;
typedef Google__Rpc__Status rpc_status;

/* Deepest nesting of AnyValue arrays/kvlists accepted (both codecs). */
#define OTLP_MAX_DEPTH 32

/* gRPC / google.rpc.Code values used in error bodies and statuses. */
enum {
    RPC_CODE_OK = 0,
    RPC_CODE_INVALID_ARGUMENT = 3,
    RPC_CODE_DEADLINE_EXCEEDED = 4,
    RPC_CODE_NOT_FOUND = 5,
    RPC_CODE_RESOURCE_EXHAUSTED = 8,
    RPC_CODE_INTERNAL = 13,
    RPC_CODE_UNAVAILABLE = 14,
    RPC_CODE_UNIMPLEMENTED = 12,
    RPC_CODE_UNAUTHENTICATED = 16,
};

/* --- protobuf (otlp/proto_codec.c) ---------------------------------------- */

/* Decodes a binary ExportTraceServiceRequest into `arena`.
 * RC_EINVAL: malformed; RC_ENOMEM: the arena's limit refused memory. */
rc_status otlp_proto_decode(const uint8_t *data, size_t len, rc_arena *arena,
                            otlp_export_request **out, rc_error *err);
/* Appends the binary encoding of `req` to `out`. */
void otlp_proto_encode(const otlp_export_request *req, rc_buf *out);

/* --- OTLP/JSON (otlp/json_decode.c, otlp/json_encode.c) ------------------- */

/* Decodes an OTLP/JSON ExportTraceServiceRequest into `arena`, following the
 * OTLP/JSON rules: hex trace/span ids, 64-bit integers as strings or
 * numbers, enums as integers, unknown fields ignored, lowerCamelCase and
 * original proto field names both accepted. */
rc_status otlp_json_decode(const char *data, size_t len, rc_arena *arena, otlp_export_request **out,
                           rc_error *err);
/* Appends `req` as one compact OTLP/JSON object (no newline), in the form
 * the OpenTelemetry Collector's file exporter writes. */
void otlp_json_encode(const otlp_export_request *req, rc_buf *out);

/* --- helpers (otlp/otlp_util.c) -------------------------------------------- */

size_t otlp_count_spans(const otlp_export_request *req);

/* Appends the binary encoding of any protobuf-c message to `out`. */
void otlp_pack_message(const ProtobufCMessage *msg, rc_buf *out);

/* Encodes a google.rpc.Status {code, message} as protobuf or as JSON; with
 * retry_delay_s > 0 a google.rpc.RetryInfo detail is attached. */
void otlp_status_encode_proto(int code, const char *message, unsigned retry_delay_s, rc_buf *out);
void otlp_status_encode_json(int code, const char *message, rc_buf *out);

/* Encodes an ExportTraceServiceResponse; partial_success is set only when
 * rejected > 0 or message is non-empty. */
void otlp_response_encode_proto(int64_t rejected, const char *message, rc_buf *out);
void otlp_response_encode_json(int64_t rejected, const char *message, rc_buf *out);

#endif
