/*
 * ingest.h - a request body becoming a pipeline request.
 *
 * The one place where OTLP bytes are decoded for the pipeline, shared by
 * the OTLP receiver's transports (through rc_otlp_ingest, otlp_internal.h)
 * and by `replay` (replay/replay.c), so that both accept the same inputs,
 * drop the same malformed spans and bound memory the same way.
 */
#ifndef RC_RECEIVER_INGEST_H
#define RC_RECEIVER_INGEST_H

#include "core/arena.h"
#include "core/batch.h"
#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef enum rc_payload_format {
    RC_FORMAT_PROTO,
    RC_FORMAT_JSON,
} rc_payload_format;

/* Decodes `body` (already decompressed) into a new request that owns
 * `arena` (taken over, also on failure), with `meta` copied into it. No
 * request may take more than half the memory budget once decoded.
 * Spans whose trace id is not 16 bytes or span id not 8 are dropped:
 * *rejected_spans says how many, and err describes the first.
 * RC_EINVAL: undecodable; RC_ETOOBIG: too big for the memory limit;
 * RC_ENOMEM: memory refused now, retry later. On RC_OK the caller owns
 * the one reference to *out; n_spans is set. */
rc_status rc_ingest_decode(rc_payload_format fmt, const uint8_t *body, size_t len, rc_arena *arena,
                           const rc_request_meta *meta, rc_request **out, size_t *rejected_spans,
                           rc_error *err);

#endif
