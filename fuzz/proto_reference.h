/*
 * proto_reference.h - the protobuf codec as it was (scan, protobuf-c unpack,
 * protobuf-c pack), for tests that hold otlp/proto_codec.c to it. Test code:
 * see proto_reference.c.
 */
#ifndef RC_FUZZ_PROTO_REFERENCE_H
#define RC_FUZZ_PROTO_REFERENCE_H

#include "otlp/otlp.h"

#include <stddef.h>
#include <stdint.h>

/* otlp_proto_decode as it was: pre-scan, then protobuf_c_message_unpack. */
rc_status proto_reference_decode(const uint8_t *data, size_t len, rc_arena *arena,
                                 otlp_export_request **out, rc_error *err);

/* NULL when messages a and b (of one type) hold the same values, down to
 * what protobuf-c itself tells apart: NULL against empty strings, arrays and
 * bytes, a string that is its field's default (pointer) against an equal
 * copy, oneof cases and unknown fields. Else the first difference, described
 * in a static buffer. */
const char *proto_reference_diff(const ProtobufCMessage *a, const ProtobufCMessage *b);

/* NULL when otlp_proto_encode writes for req exactly what
 * protobuf_c_message_pack writes; else where they part. */
const char *proto_reference_encode_diff(const otlp_export_request *req);

/* Decodes data with both decoders (each in an arena of its own, capped at
 * arena_max bytes when not 0) and requires the same status, the same error
 * message, the same structs and the same encoding from both encoders.
 * NULL when all agree, else what differs. */
const char *proto_reference_compare(const uint8_t *data, size_t len, size_t arena_max);

#endif
