/*
 * otlp_items.c - the queued form of spans shared by the otlp and otlphttp
 * exporters; otlp_items.h states the framing and why it is shaped so.
 *
 * Encoding reuses the request encoder: a one-ResourceSpans
 * ExportTraceServiceRequest encodes as exactly [0x0a][varint n][n bytes],
 * the entry an item carries, so the item is that encoding behind its span
 * count. A ResourceSpans too large for one request is cut in halves (by
 * span, scopes kept) until each half fits; the halves are shallow views in
 * the batch's scratch arena and share the spans, so only their encodings
 * cost memory, and only a ResourceSpans past the limits is encoded more
 * than once.
 */
#include "exporter/otlp_items.h"

#include "core/arena.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define ITEM_COUNT_BYTES 4

static size_t rs_span_count(const otlp_resource_spans *rs)
{
    size_t n = 0;
    for (size_t i = 0; i < rs->n_scope_spans; i++)
        if (rs->scope_spans[i]) n += rs->scope_spans[i]->n_spans;
    return n;
}

/* Cuts rs into *a (its first `first` spans) and *b (the rest), shallow
 * copies in scratch sharing rs's span arrays. False when out of memory. */
static bool rs_split(const otlp_resource_spans *rs, size_t first, rc_arena *scratch,
                     otlp_resource_spans **a, otlp_resource_spans **b)
{
    otlp_resource_spans *ra = rc_arena_alloc(scratch, sizeof *ra);
    otlp_resource_spans *rb = rc_arena_alloc(scratch, sizeof *rb);
    size_t cap = rs->n_scope_spans + 1;
    otlp_scope_spans **sa = rc_arena_alloc(scratch, cap * sizeof *sa);
    otlp_scope_spans **sb = rc_arena_alloc(scratch, cap * sizeof *sb);
    if (!ra || !rb || !sa || !sb) return false;
    *ra = *rs;
    *rb = *rs;
    ra->scope_spans = sa;
    rb->scope_spans = sb;
    ra->n_scope_spans = rb->n_scope_spans = 0;
    size_t left = first; /* spans still to put into a */
    for (size_t i = 0; i < rs->n_scope_spans; i++) {
        otlp_scope_spans *ss = rs->scope_spans[i];
        if (!ss) continue;
        if (left >= ss->n_spans && left > 0) {
            sa[ra->n_scope_spans++] = ss;
            left -= ss->n_spans;
        } else if (left == 0) {
            sb[rb->n_scope_spans++] = ss;
        } else {
            /* The cut falls inside this scope: each side gets a copy of the
             * scope with its slice of the span pointers. */
            otlp_scope_spans *ha = rc_arena_alloc(scratch, sizeof *ha);
            otlp_scope_spans *hb = rc_arena_alloc(scratch, sizeof *hb);
            if (!ha || !hb) return false;
            *ha = *ss;
            *hb = *ss;
            ha->n_spans = left;
            hb->spans = ss->spans + left;
            hb->n_spans = ss->n_spans - left;
            sa[ra->n_scope_spans++] = ha;
            sb[rb->n_scope_spans++] = hb;
            left = 0;
        }
    }
    *a = ra;
    *b = rb;
    return true;
}

static bool encode_rs(otlp_resource_spans *rs, uint64_t max_spans, uint64_t max_bytes,
                      rc_arena *scratch, rc_buf *out)
{
    size_t n = rs_span_count(rs);
    if (n == 0) return true; /* a resource without spans carries nothing to deliver */
    size_t mark = out->len;
    uint8_t count[ITEM_COUNT_BYTES] = {0};
    rc_buf_append(out, count, sizeof count);
    otlp_export_request one =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    one.n_resource_spans = 1;
    one.resource_spans = &rs;
    otlp_proto_encode(&one, out);
    if (out->failed) return false;
    size_t bytes = out->len - mark - ITEM_COUNT_BYTES;
    if (n > 1 && (n > max_spans || bytes > max_bytes)) {
        out->len = mark;
        otlp_resource_spans *a, *b;
        return rs_split(rs, n / 2, scratch, &a, &b) &&
               encode_rs(a, max_spans, max_bytes, scratch, out) &&
               encode_rs(b, max_spans, max_bytes, scratch, out);
    }
    uint32_t c = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    for (int i = 0; i < ITEM_COUNT_BYTES; i++)
        out->data[mark + (size_t)i] = (char)(uint8_t)(c >> (8 * i));
    return true;
}

bool rc_otlp_items_encode(const rc_batch *batch, uint64_t max_spans, uint64_t max_bytes,
                          rc_buf *out)
{
    rc_arena *scratch = rc_arena_new_scratch(1024 + batch->n_runs * 256);
    otlp_export_request *view = scratch ? rc_batch_view(batch, scratch) : NULL;
    bool ok = view != NULL;
    for (size_t i = 0; ok && i < view->n_resource_spans; i++)
        ok = encode_rs(view->resource_spans[i], max_spans ? max_spans : 1, max_bytes, scratch, out);
    rc_arena_free(scratch);
    return ok && !out->failed;
}

size_t rc_otlp_item_frame(const char *data, size_t len, rc_delivery_item *item)
{
    const uint8_t *p = (const uint8_t *)data;
    if (!data || len < ITEM_COUNT_BYTES + 2 || p[ITEM_COUNT_BYTES] != 0x0a) return 0;
    uint32_t count =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    size_t pos = ITEM_COUNT_BYTES + 1;
    uint64_t n = 0;
    for (unsigned shift = 0;; shift += 7) {
        /* A length takes at most 10 bytes; past that, or past the data, it
         * is not a length. */
        if (pos >= len || shift > 63) return 0;
        uint8_t b = p[pos++];
        n |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (n > len - pos) return 0;
    item->p = data + ITEM_COUNT_BYTES;
    item->len = pos - ITEM_COUNT_BYTES + (size_t)n;
    item->spans = count;
    return pos + (size_t)n;
}

/* The first span's trace id in hex, so a log line can be matched to its
 * dead-letter line; "" when there is none. */
static void first_trace_id(const otlp_export_request *req, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const otlp_resource_spans *rs = req->resource_spans[i];
        for (size_t j = 0; rs && j < rs->n_scope_spans; j++) {
            const otlp_scope_spans *ss = rs->scope_spans[j];
            if (!ss || ss->n_spans == 0 || !ss->spans[0]) continue;
            const ProtobufCBinaryData *id = &ss->spans[0]->trace_id;
            size_t k = 0;
            for (size_t b = 0; b < id->len && k + 3 <= cap; b++, k += 2)
                snprintf(out + k, cap - k, "%02x", id->data[b]);
            return;
        }
    }
}

void rc_otlp_dead_letter_entry(const char *id, const char *status_kind,
                               const rc_delivery_item *item, long status, const char *detail,
                               rc_buf *out)
{
    rc_arena *arena = rc_arena_new_scratch(4096 + item->len * 4);
    otlp_export_request *req = NULL;
    rc_error err;
    char trace[40] = "";
    if (arena &&
        otlp_proto_decode((const uint8_t *)item->p, item->len, arena, &req, &err) == RC_OK) {
        otlp_json_encode(req, out);
        first_trace_id(req, trace, sizeof trace);
    } else {
        /* Keep the bytes: they may still be read by hand. The line stays a
         * valid (empty) request, so a replay does not stumble on it. */
        rc_buf_puts(out, "{\"resourceSpans\":[],\"undecodableProtobuf\":\"");
        rc_buf_base64(out, (const uint8_t *)item->p, item->len);
        rc_buf_puts(out, "\"}");
        rc_warn(id, "a dead-lettered item does not decode (%s): written as base64",
                arena ? err.msg : "out of memory");
    }
    rc_arena_free(arena);
    /* The delivery module logs the refusal itself; this names the line. */
    rc_debug(id, "dead letter of %" PRIu32 " spans (%s %ld), first trace %s", item->spans,
             status_kind, status, trace[0] ? trace : "-");
    (void)detail;
}

rc_status rc_otlp_items_to_json(const rc_delivery_item *items, size_t n, rc_buf *out, rc_error *err)
{
    rc_buf wire = RC_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        rc_buf_append(&wire, items[i].p, items[i].len);
    rc_status st = RC_ENOMEM;
    /* Decoded protobuf takes a few times its size; the arena grows if not. */
    rc_arena *arena = wire.failed ? NULL : rc_arena_new_scratch(4096 + wire.len * 2);
    otlp_export_request *req = NULL;
    if (!arena) {
        rc_error_set(err, "out of memory");
        goto done;
    }
    st = otlp_proto_decode((const uint8_t *)wire.data, wire.len, arena, &req, err);
    if (st != RC_OK) goto done;
    otlp_json_encode(req, out);
    if (out->failed) {
        rc_error_set(err, "out of memory encoding OTLP/JSON");
        st = RC_ENOMEM;
    }
done:
    rc_arena_free(arena);
    rc_buf_free(&wire);
    return st;
}
