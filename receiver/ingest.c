/*
 * ingest.c - where a request body becomes a pipeline request.
 *
 * Both OTLP transports call rc_otlp_ingest with a decompressed body and a
 * fresh arena; it decodes, drops spans whose ids are malformed (reported as
 * a partial success, as the OTLP specification asks), attaches the
 * transport metadata and hands the batch to the pipeline. What the pipeline
 * answers is what the client is told: the receiver acknowledges only after
 * the pipeline has accepted the batch.
 *
 * Every span is counted exactly once, as accepted or as refused, under the
 * OpenTelemetry Collector's receiver metric names.
 */
#include "receiver/otlp_internal.h"

#include "core/log.h"
#include "core/memlimit.h"

#include <string.h>

static bool span_ids_valid(const otlp_span *s)
{
    return s->trace_id.len == 16 && s->span_id.len == 8 &&
           (s->parent_span_id.len == 0 || s->parent_span_id.len == 8);
}

/* Removes spans with malformed ids in place; returns how many were removed
 * and describes the first in `why`. */
static size_t drop_invalid_spans(otlp_export_request *req, rc_error *why)
{
    size_t dropped = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        otlp_resource_spans *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            otlp_scope_spans *ss = rs->scope_spans[j];
            size_t kept = 0;
            for (size_t k = 0; k < ss->n_spans; k++) {
                otlp_span *s = ss->spans[k];
                if (span_ids_valid(s)) {
                    ss->spans[kept++] = s;
                    continue;
                }
                if (dropped++ == 0)
                    rc_error_set(why,
                                 "span \"%s\" has a trace id of %zu bytes, span id of %zu bytes "
                                 "and parent span id of %zu bytes (want 16, 8 and 0 or 8)",
                                 s->name ? s->name : "", s->trace_id.len, s->span_id.len,
                                 s->parent_span_id.len);
            }
            ss->n_spans = kept;
        }
    }
    return dropped;
}

/* Refuses `spans` spans (0: an undecodable request). The tenant's bucket
 * gets them back: the client retries the request, and must not pay for it
 * twice. */
static void refuse(const rc_otlp_ingest_ctx *ctx, const rc_tenant *tenant, rc_ingest_result *res,
                   rc_status st, size_t spans)
{
    res->status = st;
    if (st == RC_EBUSY || st == RC_ENOMEM) res->retry_after_s = ctx->retry_after_s;
    if (!spans) return;
    rc_counter_add(ctx->refused_spans, spans);
    rc_tenant_count_refused(tenant, spans);
    rc_tenant_refund(tenant, spans);
}

rc_status rc_ingest_decode(rc_payload_format fmt, const uint8_t *body, size_t len, rc_arena *arena,
                           const rc_request_meta *meta, rc_request **out, size_t *rejected_spans,
                           rc_error *err)
{
    *out = NULL;
    *rejected_spans = 0;
    rc_request *req = rc_request_new(arena);
    if (!req) {
        rc_error_set(err, "memory limit reached, retry later");
        return RC_ENOMEM;
    }
    /* No single request may take more than half the budget once decoded:
     * one that needs more could never be accepted, so it must be told 413
     * rather than asked to retry forever. */
    rc_arena_set_max(arena, rc_mem_limit() / 2);
    rc_status st = fmt == RC_FORMAT_PROTO
                       ? otlp_proto_decode(body, len, arena, &req->data, err)
                       : otlp_json_decode((const char *)body, len, arena, &req->data, err);
    if (st == RC_ENOMEM && rc_arena_hit_max(arena)) {
        st = RC_ETOOBIG;
        rc_error_set(err,
                     "request needs more than %zu MiB once decoded, half of "
                     "service.memory_limit_mib; send smaller batches",
                     rc_mem_limit() / 2 >> 20);
    }
    if (st != RC_OK) {
        rc_request_unref(req);
        return st;
    }
    *rejected_spans = drop_invalid_spans(req->data, err);
    req->n_spans = otlp_count_spans(req->data);
    if (!rc_request_set_meta(req, meta)) {
        rc_request_unref(req);
        rc_error_set(err, "memory limit reached, retry later");
        return RC_ENOMEM;
    }
    *out = req;
    return RC_OK;
}

/* The whole request waits for the tenant's bucket: half of it accepted
 * would leave the client unable to tell which half to send again. */
static bool within_rate_limit(const rc_otlp_ingest_ctx *ctx, const rc_tenant *tenant,
                              size_t n_spans, rc_ingest_result *res)
{
    unsigned retry = 0;
    if (rc_tenant_admit(tenant, n_spans, &retry)) return true;
    rc_error_set(&res->err,
                 "tenant \"%s\" is over its rate limit (%zu spans refused); retry in %u s",
                 tenant->name, n_spans, retry);
    res->status = RC_ELIMIT;
    res->retry_after_s = retry;
    rc_counter_add(ctx->refused_spans, n_spans);
    return false;
}

void rc_otlp_ingest(const rc_otlp_ingest_ctx *ctx, rc_payload_format fmt, const uint8_t *body,
                    size_t len, rc_arena *arena, const rc_request_meta *meta,
                    const rc_tenant *tenant, rc_ingest_result *res)
{
    memset(res, 0, sizeof *res);
    rc_request_meta with_tenant = *meta;
    if (tenant) {
        with_tenant.tenant = tenant->name;
        with_tenant.tenant_customer = tenant->default_customer;
        with_tenant.tenant_environment = tenant->environment;
    }
    rc_request *req = NULL;
    rc_status st = rc_ingest_decode(fmt, body, len, arena, &with_tenant, &req, &res->rejected_spans,
                                    &res->err);
    if (st != RC_OK) {
        rc_debug(ctx->receiver_id, "%s request refused: %s", ctx->transport, res->err.msg);
        refuse(ctx, tenant, res, st, 0);
        return;
    }
    if (res->rejected_spans) {
        rc_counter_add(ctx->refused_spans, res->rejected_spans);
        rc_tenant_count_refused(tenant, res->rejected_spans);
    }

    size_t n_spans = req->n_spans;
    if (n_spans == 0) { /* nothing to deliver: accepted as is */
        rc_request_unref(req);
        res->status = RC_OK;
        return;
    }
    if (!within_rate_limit(ctx, tenant, n_spans, res)) {
        rc_request_unref(req);
        res->rejected_spans = 0;
        return;
    }
    /* The body still encodes the request exactly unless spans were
     * dropped; it is lent to the pipeline for this call only (batch.h). */
    if (fmt == RC_FORMAT_PROTO && res->rejected_spans == 0) {
        req->wire = body;
        req->wire_len = len;
    }
    rc_request_ref(req); /* kept past the consume, to take the loan back */
    rc_batch *batch = rc_batch_from_request(req);
    if (!batch) {
        rc_request_unref(req);
        rc_error_set(&res->err, "out of memory, retry later");
        refuse(ctx, tenant, res, RC_ENOMEM, n_spans);
        return;
    }
    rc_error perr = {{0}};
    st = rc_consume(ctx->next, batch, &perr);
    req->wire = NULL;
    rc_request_unref(req);
    if (st != RC_OK) {
        res->err = perr;
        refuse(ctx, tenant, res, st, n_spans);
        return;
    }
    res->status = RC_OK;
    res->accepted_spans = n_spans;
    rc_counter_add(ctx->accepted_spans, n_spans);
    rc_tenant_count_accepted(tenant, n_spans);
}
