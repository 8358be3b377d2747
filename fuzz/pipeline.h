/*
 * pipeline.h - a small pipeline for fuzz targets that test more than a
 * decoder: processors made by their factories from YAML text, as the
 * service makes them, in front of a consumer that keeps what reaches it.
 *
 * A target builds the stages it needs (fuzz_stage_new, last stage first so
 * each knows its `next`), hands request bodies to the first with
 * rc_otlp_ingest exactly as the receivers do (fuzz_ingest), looks at the
 * batch the capture holds, and frees it. Everything aborts through
 * fuzz_fail when the harness itself cannot be set up: a broken harness
 * must not pass for a quiet run. Test code; never in the library.
 */
#ifndef RC_FUZZ_PIPELINE_H
#define RC_FUZZ_PIPELINE_H

#include "core/batch.h"
#include "core/component.h"
#include "core/config.h"
#include "receiver/otlp_internal.h"

/* The end of the pipeline: batches that reach it are moved into `batch`. */
typedef struct fuzz_capture {
    rc_batch *batch; /* NULL until something arrives */
    size_t calls;
    rc_consumer consumer;
} fuzz_capture;

void fuzz_capture_init(fuzz_capture *c);
/* Frees what was captured and empties the capture. */
void fuzz_capture_reset(fuzz_capture *c);

/* One processor, made by the factory of `type` from `yaml` (its section:
 * "propagation_wait: 0\nfrom_header: x-id\n") and started in front of
 * `next`. consumer is what the stage before it (or ingest) calls. */
typedef struct fuzz_stage {
    const rc_processor_factory *factory;
    rc_cfg *cfg; /* outlives the instance, as the service's tree does */
    void *inst;
    rc_consumer consumer;
} fuzz_stage;

void fuzz_stage_new(fuzz_stage *s, const char *type, const char *yaml, const rc_consumer *next);
/* Shuts the processor down (it flushes into its next) and frees it. */
void fuzz_stage_free(fuzz_stage *s);

/* Hands `body` to `next` through rc_otlp_ingest, as a receiver of
 * `transport` ("http" or "grpc") would, with the given headers (names
 * lower-case, as both receivers give them). */
void fuzz_ingest(const rc_consumer *next, rc_payload_format fmt, const uint8_t *body, size_t len,
                 const char *transport, const rc_header *headers, size_t n_headers,
                 rc_ingest_result *res);

#endif
