/*
 * otlp_items.h - the queued form of spans for the OTLP exporters (otlp,
 * otlphttp): what export_batch appends to the queue, how a sender reads it
 * back, and what goes to the dead-letter file.
 *
 * One item per ResourceSpans of a batch (rc_batch_view), framed as
 *
 *     [u32 little-endian span count][0x0a][varint n][n bytes ResourceSpans]
 *
 * The part after the count is exactly the field-1 entry of an
 * ExportTraceServiceRequest, so the entries of any items, concatenated in
 * any order, are a valid ExportTraceServiceRequest: a sender hands the
 * queued bytes to gRPC or libcurl as they are, with no decoding or
 * re-encoding. The count lets rc_delivery count spans and cut records
 * without decoding either. A ResourceSpans with more spans or bytes than
 * one request may carry is cut into several items of the same resource and
 * scopes, so that every item fits in a request on its own.
 *
 * Records come back from a queue on disk, which a crash, a full disk or a
 * hand may have damaged: rc_otlp_item_frame is total and refuses (returns
 * 0 for) anything that is not a whole item.
 */
#ifndef RC_EXPORTER_OTLP_ITEMS_H
#define RC_EXPORTER_OTLP_ITEMS_H

#include "core/batch.h"
#include "core/buf.h"
#include "exporter/delivery.h"

#include <stddef.h>
#include <stdint.h>

/* Appends the items of batch to out, each at most max_spans spans and,
 * unless it is a single span, max_bytes bytes. False when memory ran out
 * (out may then hold some of the items; the caller drops it). */
bool rc_otlp_items_encode(const rc_batch *batch, uint64_t max_spans, uint64_t max_bytes,
                          rc_buf *out);

/* rc_delivery_ops.frame: the item at the start of data[0..len). item->p
 * and item->len are the request entry (without the count); returns the
 * bytes the item takes, 0 when data does not start with a whole item. */
size_t rc_otlp_item_frame(const char *data, size_t len, rc_delivery_item *item);

/* The dead-letter line of an item: its spans as one OTLP/JSON
 * ExportTraceServiceRequest ({"resourceSpans":[...]}, the file exporter's
 * format), so that the file can be replayed as it is, e.g. line by line to
 * an OTLP/HTTP endpoint with Content-Type: application/json. The status and
 * detail are not in the line (a strict reader of ExportTraceServiceRequest
 * might refuse a field it does not know): the delivery module logs them
 * with the span count; at debug level this adds the first span's trace id
 * to find the line by. An item that does not decode (a damaged record) is written as an empty
 * request carrying its bytes in base64 under "undecodableProtobuf". */
void rc_otlp_dead_letter_entry(const char *id, const char *status_kind,
                               const rc_delivery_item *item, long status, const char *detail,
                               rc_buf *out);

/* Appends items[0..n) as one OTLP/JSON ExportTraceServiceRequest to out:
 * the body of otlphttp with `encoding: json`. RC_EINVAL (err says why) when
 * the items do not decode, RC_ENOMEM when memory ran out. */
rc_status rc_otlp_items_to_json(const rc_delivery_item *items, size_t n, rc_buf *out,
                                rc_error *err);

#endif
