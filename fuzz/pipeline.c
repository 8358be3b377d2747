/*
 * pipeline.c - processors and a capturing consumer for fuzz targets (see
 * pipeline.h).
 */
#include "fuzz/pipeline.h"

#include "core/arena.h"
#include "core/metrics.h"
#include "fuzz/roundtrip.h"

#include <string.h>

static rc_status capture_consume(void *self, rc_batch *batch, rc_error *err)
{
    fuzz_capture *c = self;
    c->calls++;
    if (!c->batch) {
        c->batch = batch;
        return RC_OK;
    }
    if (!rc_batch_move(c->batch, batch)) fuzz_fail("the capture cannot keep a batch");
    rc_batch_free(batch);
    return RC_OK;
}

void fuzz_capture_init(fuzz_capture *c)
{
    memset(c, 0, sizeof *c);
    c->consumer = (rc_consumer){capture_consume, c, false};
}

void fuzz_capture_reset(fuzz_capture *c)
{
    rc_batch_free(c->batch);
    c->batch = NULL;
    c->calls = 0;
}

static rc_status stage_consume(void *self, rc_batch *batch, rc_error *err)
{
    fuzz_stage *s = self;
    return s->factory->consume(s->inst, batch, err);
}

void fuzz_stage_new(fuzz_stage *s, const char *type, const char *yaml, const rc_consumer *next)
{
    rc_error err = {{0}};
    memset(s, 0, sizeof *s);
    if (!(s->factory = rc_find_processor(type))) fuzz_fail("no processor of type %s", type);
    if (rc_config_parse("fuzz-harness.yaml", yaml, strlen(yaml), &s->cfg, &err) != RC_OK)
        fuzz_fail("harness config for %s: %s", type, err.msg);
    rc_component_id id = {type, type, "traces"};
    if (!(s->inst = s->factory->create(&id, s->cfg, &err)))
        fuzz_fail("cannot create the %s processor: %s", type, err.msg);
    if (s->factory->start(s->inst, next, &err) != RC_OK)
        fuzz_fail("cannot start the %s processor: %s", type, err.msg);
    s->consumer = (rc_consumer){stage_consume, s, next->durable};
}

void fuzz_stage_free(fuzz_stage *s)
{
    if (!s->inst) return;
    s->factory->shutdown(s->inst);
    s->factory->destroy(s->inst);
    rc_config_free(s->cfg);
    memset(s, 0, sizeof *s);
}

void fuzz_ingest(const rc_consumer *next, rc_payload_format fmt, const uint8_t *body, size_t len,
                 const char *transport, const rc_header *headers, size_t n_headers,
                 rc_ingest_result *res)
{
    rc_otlp_ingest_ctx ctx = {
        .receiver_id = "otlp",
        .transport = transport,
        .next = next,
        .accepted_spans = rc_counter_register("fuzz_accepted_spans", "fuzz harness", ""),
        .refused_spans = rc_counter_register("fuzz_refused_spans", "fuzz harness", ""),
        .retry_after_s = 1,
    };
    rc_request_meta meta = {.receiver = "otlp",
                            .transport = transport,
                            .peer = "127.0.0.1:40000",
                            .n_headers = n_headers,
                            .headers = (rc_header *)headers};
    rc_arena *arena = rc_arena_new(4096);
    if (!arena) {
        memset(res, 0, sizeof *res);
        res->status = RC_ENOMEM;
        return;
    }
    /* A decoder may be handed an empty body; give it a real pointer. */
    rc_otlp_ingest(&ctx, fmt, body ? body : (const uint8_t *)"", len, arena, &meta, NULL, res);
}
