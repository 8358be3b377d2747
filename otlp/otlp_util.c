/*
 * otlp_util.c - small OTLP helpers: span counting, the google.rpc.Status
 * bodies of errors and the ExportTraceServiceResponse of successes.
 *
 * Receivers answer every request with one of these, so each encoder builds
 * its message on the stack (protobuf-c *__INIT structs, no heap) and packs
 * straight into the caller's rc_buf. The JSON forms follow protobuf JSON as
 * the OpenTelemetry Collector writes it: zero values left out, int64 as a
 * quoted decimal. An empty response is zero bytes in protobuf and {} in
 * JSON, which OTLP clients read as full success.
 */
#include "otlp/otlp.h"

#include "core/json_writer.h"

#include <stdbool.h>
#include <string.h>

#define RETRY_INFO_TYPE_URL "type.googleapis.com/google.rpc.RetryInfo"

size_t otlp_count_spans(const otlp_export_request *req)
{
    if (!req) return 0;
    size_t n = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const otlp_resource_spans *rs = req->resource_spans[i];
        if (!rs) continue;
        for (size_t j = 0; j < rs->n_scope_spans; j++)
            if (rs->scope_spans[j]) n += rs->scope_spans[j]->n_spans;
    }
    return n;
}

void otlp_pack_message(const ProtobufCMessage *msg, rc_buf *out)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size == 0 || !rc_buf_reserve(out, size)) return; /* an empty buffer may have no data */
    out->len += protobuf_c_message_pack(msg, (uint8_t *)out->data + out->len);
}

void otlp_status_encode_proto(int code, const char *message, unsigned retry_delay_s, rc_buf *out)
{
    rpc_status status = GOOGLE__RPC__STATUS__INIT;
    status.code = code;
    status.message = (char *)(message ? message : "");

    /* RetryInfo is packed first, into a small stack buffer, because Any
     * carries it as opaque bytes. Its encoding is at most ~16 bytes. */
    Google__Protobuf__Duration delay = GOOGLE__PROTOBUF__DURATION__INIT;
    Google__Rpc__RetryInfo retry = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Protobuf__Any detail = GOOGLE__PROTOBUF__ANY__INIT;
    Google__Protobuf__Any *details[1] = {&detail};
    uint8_t retry_bytes[32];
    if (retry_delay_s > 0) {
        delay.seconds = retry_delay_s;
        retry.retry_delay = &delay;
        detail.type_url = RETRY_INFO_TYPE_URL;
        detail.value.data = retry_bytes;
        detail.value.len = google__rpc__retry_info__pack(&retry, retry_bytes);
        status.n_details = 1;
        status.details = details;
    }
    otlp_pack_message(&status.base, out);
}

void otlp_status_encode_json(int code, const char *message, rc_buf *out)
{
    bool comma = false;
    rc_buf_putc(out, '{');
    if (code != 0) {
        rc_json_key(out, "code");
        rc_json_i64(out, code);
        comma = true;
    }
    if (message && *message) {
        if (comma) rc_buf_putc(out, ',');
        rc_json_key(out, "message");
        rc_json_cstr(out, message);
    }
    rc_buf_putc(out, '}');
}

static bool has_partial_success(int64_t rejected, const char *message)
{
    return rejected > 0 || (message && *message);
}

void otlp_response_encode_proto(int64_t rejected, const char *message, rc_buf *out)
{
    otlp_export_response resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    otlp_partial_success partial =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    if (has_partial_success(rejected, message)) {
        partial.rejected_spans = rejected;
        partial.error_message = (char *)(message ? message : "");
        resp.partial_success = &partial;
    }
    otlp_pack_message(&resp.base, out);
}

void otlp_response_encode_json(int64_t rejected, const char *message, rc_buf *out)
{
    rc_buf_putc(out, '{');
    if (has_partial_success(rejected, message)) {
        rc_json_key(out, "partialSuccess");
        rc_buf_putc(out, '{');
        bool comma = false;
        if (rejected != 0) {
            rc_json_key(out, "rejectedSpans");
            rc_json_i64_quoted(out, rejected);
            comma = true;
        }
        if (message && *message) {
            if (comma) rc_buf_putc(out, ',');
            rc_json_key(out, "errorMessage");
            rc_json_cstr(out, message);
        }
        rc_buf_putc(out, '}');
    }
    rc_buf_putc(out, '}');
}
