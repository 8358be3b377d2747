/*
 * support.h - helpers shared by the C unit tests (tests/unit/test_*.c),
 * built once as the static library `rc_test_support` that every unit test
 * links. Only logic that several tests repeat word for word lives here;
 * each helper allocates from the arena it is given (or returns heap memory
 * the caller frees), and aborts nothing: tests keep their own assertions.
 */
#ifndef RC_TEST_SUPPORT_H
#define RC_TEST_SUPPORT_H

#include "core/batch.h"

#include <stddef.h>

/* One attribute from a spec "key=T:value", T one of s (string), i (int),
 * d (double), b (bool: "true" or anything else), k (a kvlist of one member,
 * itself a nested spec "member=T:value"). Everything is allocated in `a`;
 * the spec must contain '=' followed by "T:". */
otlp_key_value *test_kv_of(rc_arena *a, const char *spec);

/* The attributes of a NULL-terminated list of such specs, in `a`; *n is
 * set to their count (the array has room for at least one). */
otlp_key_value **test_kvs_of(rc_arena *a, const char *const *specs, size_t *n);

/* Sets d to the bytes of an even-length hex string (a trace or span id),
 * allocated in `a`; "" gives an empty id. */
void test_set_hex(rc_arena *a, ProtobufCBinaryData *d, const char *hex);

/* The whole file at `path`, NUL-terminated, its length (without the NUL)
 * in *len; NULL when it cannot be opened. The caller frees the result. */
char *test_read_file(const char *path, size_t *len);

/* Makes r->data an export request of one ResourceSpans (with `resource`,
 * which may be NULL) holding one ScopeSpans of `n` blank, initialised
 * spans, all allocated in r's arena. Returns the span array so the caller
 * can fill the spans in; the request stays owned by the caller (typically
 * handed on with rc_batch_from_request, then freed with rc_batch_free). */
otlp_span **test_request_one_scope(rc_request *r, otlp_resource *resource, size_t n);

#endif
