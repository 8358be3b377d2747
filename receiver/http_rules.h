/*
 * http_rules.h - how an OTLP/HTTP request is judged and answered, whichever
 * server carries it: libmicrohttpd for HTTP/1.1 (otlp_http.c), or nghttp2
 * for clients that chose HTTP/2 by ALPN on the TLS port (grpc_conn.c in its
 * HTTP mode). One set of rules, so that a client gets the same status, the
 * same google.rpc.Status body and the same headers over either.
 *
 * Statuses, as the OTLP/HTTP specification and the OpenTelemetry Collector
 * have them: 200 with an ExportTraceServiceResponse (partial success when
 * spans were dropped); 400 malformed body or encoding; 401 no valid token;
 * 404 wrong path; 405 not POST; 413 too large; 415 unknown Content-Type;
 * 429 over the tenant's rate limit and 503 under backpressure, both with
 * Retry-After. Error bodies are a google.rpc.Status in the request's format
 * (JSON when the request's format is unknown).
 */
#ifndef RC_HTTP_RULES_H
#define RC_HTTP_RULES_H

#include <stdbool.h> /* before compression.h, which uses bool */
#include <stddef.h>

#include "core/buf.h"
#include "otlp/compression.h"
#include "receiver/otlp_internal.h"

#define HTTP_CT_PROTO "application/x-protobuf"
#define HTTP_CT_JSON "application/json"

/* The head of a request, as text; NULL for a header that is absent. */
typedef struct http_head {
    const char *path; /* the request target; a query string is ignored */
    const char *method;
    const char *content_type;
    const char *content_encoding;
    const char *content_length;
} http_head;

/* What the head allows: the body's format and encoding, and its declared
 * length (0: none declared). */
typedef struct http_admit {
    rc_payload_format fmt; /* also the format of an error answer */
    rc_encoding enc;
    size_t declared;
} http_admit;

/* The format an error answer is written in: the request's Content-Type
 * when it names one we speak, else JSON. */
rc_payload_format http_answer_format(const char *content_type);

#define HTTP_NO_TOKEN_MSG "missing or unknown bearer token; send Authorization: Bearer <token>"

/* Whether request target `target` (len bytes) names `path`, a query
 * string aside. */
bool http_path_is(const char *target, size_t len, const char *path);

/* Judges a request's head before its body is read, in this order: the
 * path, method, Content-Type and Content-Encoding here; then the carrier
 * checks the token (401, HTTP_NO_TOKEN_MSG); then http_check_length. Each
 * returns 0 when the request may go on (*out filled), else the status to
 * answer with, and why in msg. */
unsigned http_check_head(const http_head *h, const char *path, http_admit *out, char *msg,
                         size_t cap);
unsigned http_check_length(const http_head *h, size_t body_limit, http_admit *out, char *msg,
                           size_t cap);

/* The HTTP status for an ingest or decompression result. */
unsigned http_status_for(rc_status st);

/* An answer: status, headers and body. */
typedef struct http_answer {
    unsigned status;
    rc_payload_format fmt;
    rc_buf body; /* the answer's; a carrier may take it (then resets it) */
    unsigned retry_after_s;
} http_answer;

/* A google.rpc.Status answer. 429 and 503 always carry Retry-After:
 * retry_after_s, else default_retry_s, and at least 1. */
void http_answer_error(http_answer *a, unsigned status, rc_payload_format fmt, const char *msg,
                       unsigned retry_after_s, unsigned default_retry_s);
/* The answer to an ingest result: 200 with an ExportTraceServiceResponse,
 * or the error. */
void http_answer_ingest(http_answer *a, rc_payload_format fmt, const rc_ingest_result *res,
                        unsigned default_retry_s);
void http_answer_free(http_answer *a);

/* The answer's headers besides its status, as name/value pairs (at most
 * HTTP_ANSWER_MAX_HEADERS); `scratch` holds the text of numeric values and
 * must live as long as the pairs are used. Names are lower case. */
#define HTTP_ANSWER_MAX_HEADERS 4
size_t http_answer_headers(const http_answer *a, const char **names, const char **values,
                           char scratch[16]);

#endif
