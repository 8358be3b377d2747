/*
 * json_reference.h - the OTLP/JSON decoder as it was (jansson tree, then a
 * descriptor-driven walk), for tests and the differential fuzzer that hold
 * the streaming decoder in otlp/json_decode.c to it. Test code only: it
 * charges a tree of 24 times the body to the memory limiter.
 */
#ifndef RC_FUZZ_JSON_REFERENCE_H
#define RC_FUZZ_JSON_REFERENCE_H

#include "otlp/otlp.h"

#include <stdbool.h>
#include <stddef.h>

/* otlp_json_decode as it was before the streaming decoder. */
rc_status otlp_json_decode_reference(const char *data, size_t len, rc_arena *arena,
                                     otlp_export_request **out, rc_error *err);

/* The same, with its input rewrites (lone surrogates to U+FFFD, integer
 * literals beyond int64 made reals) applied up front instead of only after
 * jansson fails on them: the reference's intended language, free of the
 * order in which it happens to meet the two (fuzz/README.md). */
rc_status otlp_json_decode_reference_rewritten(const char *data, size_t len, rc_arena *arena,
                                               otlp_export_request **out, rc_error *err);

#endif
