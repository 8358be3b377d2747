/*
 * otlp_response.h - what an OTLP server's answer means to the otlp and
 * otlphttp exporters, as pure functions of its bytes.
 *
 * The exporters' send() make the call (gRPC core, libcurl) and hand what
 * came back - a gRPC status with its message, its grpc-status-details-bin
 * trailer and the response message, or an HTTP status with Content-Type,
 * Retry-After and body - to these functions, which fill the rc_send_result
 * the delivery module (exporter/delivery.h) acts on. Kept apart from the
 * transports so that unit tests and fuzzers run the very code the
 * exporters run, on every code and on hostile bytes.
 *
 * The mapping follows the OTLP specification (protocol/exporter.md,
 * "Failures") and issue 10: retryable codes are retried, every other code
 * is permanent and its spans go to the dead-letter file (OTLP/JSON lines
 * that `respan-collector replay` sends once the cause is fixed), counted.
 * Choices where the specification leaves room:
 *   - codes a wrong endpoint or wrong credentials cause (gRPC
 *     UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED, NOT_FOUND; HTTP
 *     3xx, 401, 403, 404, 405, ...) are DROP: dead-lettered whole, since no
 *     part of the request would fare better;
 *   - the other permanent codes are SPLIT: the request is bisected, so the
 *     items a server refuses are isolated and dead-lettered while the rest
 *     is delivered; HTTP 4xx codes no item can cause on its own are DROP.
 * (The respan exporter keeps data queued on a refused key instead: its
 * key is this collector's own config, fixed by a reload.)
 *
 * Promises, whatever the bytes: detail is NUL-terminated valid UTF-8
 * without control characters; retry_after_ms is -1 or in
 * [0, RC_HTTP_RETRY_AFTER_MAX_S * 1000); nothing is allocated past the call.
 */
#ifndef RC_EXPORTER_OTLP_RESPONSE_H
#define RC_EXPORTER_OTLP_RESPONSE_H

#include "exporter/delivery.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a gRPC status code leads to; has_retry_info: the status carried a
 * google.rpc.RetryInfo (only RESOURCE_EXHAUSTED depends on it). */
rc_verdict rc_otlp_grpc_verdict(int code, bool has_retry_info);

/* Reads a finished gRPC call into *r (as send() receives it: zeroed,
 * retry_after_ms -1): the status code, its message (message_len bytes, not
 * NUL-terminated), the value of the grpc-status-details-bin trailer (a
 * google.rpc.Status; may be NULL) and, for OK, the response message (an
 * ExportTraceServiceResponse; may be NULL). */
void rc_otlp_grpc_read_answer(rc_send_result *r, int code, const char *message, size_t message_len,
                              const uint8_t *status_details, size_t status_details_len,
                              const uint8_t *response, size_t response_len);

/* What an HTTP status leads to. */
rc_verdict rc_otlphttp_verdict(long status);

/* Reads an HTTP answer (status > 0) into *r: Content-Type ("" when none),
 * the Retry-After value ("" when none; relative to now_s, Unix seconds) and
 * the body (len bytes, not NUL-terminated). 2xx bodies are read as an
 * ExportTraceServiceResponse, others as a google.rpc.Status, in protobuf
 * or JSON as the Content-Type says. */
void rc_otlphttp_read_answer(rc_send_result *r, long status, const char *content_type,
                             const char *retry_after, const char *body, size_t len, int64_t now_s);

/* Copies text[0..len) into r->detail, cut to fit, control characters made
 * spaces and invalid UTF-8 made '?'. */
void rc_otlp_set_detail(rc_send_result *r, const char *text, size_t len);

#endif
