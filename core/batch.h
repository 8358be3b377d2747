/*
 * batch.h - what flows through a pipeline.
 *
 * An rc_request is one decoded ExportTraceServiceRequest together with the
 * arena that holds it and the metadata of the transport request that carried
 * it (receiver, transport, peer, headers). It is reference-counted: the
 * arena, and the memory charged for it, is freed when the last batch that
 * points into it is freed.
 *
 * An rc_batch is a list of span runs. A run is a contiguous slice of the
 * spans of one ScopeSpans of one ResourceSpans of one request. Batching
 * several requests, or splitting one, moves runs around without copying a
 * span. Exporters that need a whole ExportTraceServiceRequest build a view
 * with rc_batch_view, which regroups runs by resource and scope.
 *
 * Processors may modify spans in place; anything they allocate for a span
 * must come from that run's owner->arena so it lives as long as the span.
 * A batch is used by one thread at a time.
 */
#ifndef RC_BATCH_H
#define RC_BATCH_H

#include "otlp/otlp.h"

#include <stdatomic.h>
#include <stddef.h>

typedef struct rc_header {
    const char *name; /* lower-case */
    const char *value;
} rc_header;

/* Transport metadata of the request, allocated in the request's arena. */
typedef struct rc_request_meta {
    const char *receiver;  /* component id, e.g. "otlp" */
    const char *transport; /* "grpc" or "http" */
    const char *peer;      /* client address, may be "" */
    size_t n_headers;
    rc_header *headers;
    /* The tenant whose bearer token the request carried (or "default"
     * under rate limits without auth), and that tenant's default customer
     * and environment: NULL when none. Kept with the spans in the
     * customer processor's hold, unlike headers. */
    const char *tenant;
    const char *tenant_customer;
    const char *tenant_environment;
} rc_request_meta;

typedef struct rc_request {
    atomic_int refs;
    rc_arena *arena;
    otlp_export_request *data;
    rc_request_meta meta;
    size_t n_spans;
    /* The request as it came in, protobuf, when it still encodes exactly
     * `data` (no span dropped): borrowed from the receiver, valid only
     * during the receiver's consume call, then NULL. Only the first
     * processor of a pipeline sees it (the service clears it before later
     * ones, which may get changed spans), and may store it instead of
     * encoding `data` again (the customer processor's hold) if it has
     * changed no span itself. A stage that keeps a batch past its consume
     * call must clear it first (rc_batch_forget_wire). */
    const uint8_t *wire;
    size_t wire_len;
} rc_request;

/* Takes ownership of `arena` (also on failure); refs starts at 1. */
rc_request *rc_request_new(rc_arena *arena);
void rc_request_ref(rc_request *r);
void rc_request_unref(rc_request *r);
/* Copies meta (strings and headers) into r's arena; false when the memory
 * limit refuses it. */
bool rc_request_set_meta(rc_request *r, const rc_request_meta *meta);
/* Value of a header (name compared case-insensitively), or NULL. */
const char *rc_request_header(const rc_request *r, const char *name);

typedef struct rc_span_run {
    rc_request *owner;
    otlp_resource_spans *rs;
    otlp_scope_spans *ss;
    otlp_span **spans;
    size_t n_spans;
} rc_span_run;

typedef struct rc_batch {
    rc_span_run *runs;
    size_t n_runs;
    size_t cap_runs;
    size_t n_spans;
} rc_batch;

rc_batch *rc_batch_new(void);
void rc_batch_free(rc_batch *b);
/* A batch holding every span of `req`; takes over the caller's reference
 * to req (also on failure, returning NULL). */
rc_batch *rc_batch_from_request(rc_request *req);
/* Clears the wire bytes of every request of b (see rc_request.wire). */
void rc_batch_forget_wire(rc_batch *b);
/* Appends a run; the batch takes a new reference on run->owner. */
bool rc_batch_append(rc_batch *b, const rc_span_run *run);
/* Moves every run of src to the end of dst; src is left empty. */
bool rc_batch_move(rc_batch *dst, rc_batch *src);
/* Takes the first `max_spans` spans out of b into a new batch. */
rc_batch *rc_batch_take(rc_batch *b, size_t max_spans);
/* Moves the spans marked in `marks` (one byte per span of b, in run order;
 * non-zero: move) out of b into a new batch, keeping their order in each
 * part. Runs are split in place: each run's slice of span pointers is
 * reordered so that the spans staying come first, and the two parts share
 * the request (each with its own reference). NULL when out of memory, b
 * then unchanged; an empty batch when nothing was marked. */
rc_batch *rc_batch_split(rc_batch *b, const uint8_t *marks);
/* A deep copy in a fresh request, for fan-out to a second pipeline that may
 * modify spans. NULL when the memory limit refuses it. */
rc_batch *rc_batch_clone(const rc_batch *b);
/* Builds an ExportTraceServiceRequest that groups the runs by resource and
 * scope, allocated in `scratch`; spans are shared, not copied. Valid while
 * both the batch and the scratch arena live. NULL on allocation failure. */
otlp_export_request *rc_batch_view(const rc_batch *b, rc_arena *scratch);

#endif
