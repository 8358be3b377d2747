/*
 * span_attrs.h - reading and writing the attributes of a span or resource.
 *
 * Attributes are the protobuf-c KeyValue arrays of the decoded request
 * (otlp/otlp.h). Reads are lenient where the meaning is unambiguous: an
 * integer may arrive as an integral double or a decimal string, a number as
 * a numeric string, a boolean as "true"/"false". Anything else is "wrong
 * type" and the caller decides whether to count it.
 *
 * Writes go through an rc_attr_list, a view of one KeyValue array that knows
 * how much room its array has: the decoder sizes arrays exactly, so the
 * first append copies the pointer array once into the request arena with
 * head room, and further appends on the same list are a pointer store.
 * Everything a write allocates (KeyValue, AnyValue, copied strings, the
 * grown array) comes from the arena of the request that owns the span, so
 * it lives exactly as long as the span. Keys are not copied: pass string
 * literals or strings that live in that arena.
 *
 * Nothing here takes a lock or calls malloc; one thread per batch.
 */
#ifndef RC_LLM_SPAN_ATTRS_H
#define RC_LLM_SPAN_ATTRS_H

#include "otlp/otlp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_AV_STRING OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE
#define RC_AV_BOOL OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE
#define RC_AV_INT OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE
#define RC_AV_DOUBLE OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE
#define RC_AV_ARRAY OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE
#define RC_AV_KVLIST OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE
#define RC_AV_BYTES OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE

/* --- finding ------------------------------------------------------------- */

/* The value of attribute `key` in kvs[0..n), or NULL when absent. A linear
 * scan: for many keys at once use the convention scanner (conventions.h). */
const otlp_any_value *rc_attr_find(otlp_key_value *const *kvs, size_t n, const char *key);
/* Its index, or -1. */
long rc_attr_index(otlp_key_value *const *kvs, size_t n, const char *key);

static inline const otlp_any_value *rc_span_attr(const otlp_span *s, const char *key)
{
    return rc_attr_find(s->attributes, s->n_attributes, key);
}
static inline const otlp_any_value *rc_resource_attr(const otlp_resource *r, const char *key)
{
    return r ? rc_attr_find(r->attributes, r->n_attributes, key) : NULL;
}

/* --- lenient typed reads ---------------------------------------------------
 * Each returns false (and leaves *out alone) when v is NULL or its value
 * cannot be read as the type without guessing. */

/* int; double with no fractional part within int64 range; a decimal string
 * ("42", " -7 ", "42.0" is refused: write integers as integers). */
bool rc_av_int(const otlp_any_value *v, int64_t *out);
/* double; int; a finite numeric string ("0.25", "1e-3", "12"). */
bool rc_av_double(const otlp_any_value *v, double *out);
/* bool; the strings "true" / "false" (any case). */
bool rc_av_bool(const otlp_any_value *v, bool *out);
/* The string value (NUL-terminated, valid UTF-8), NULL for other types. */
const char *rc_av_str(const otlp_any_value *v);
/* A string value that starts like a JSON object or array (after blanks):
 * the cheap test before handing it to a JSON parser. */
bool rc_av_looks_like_json(const otlp_any_value *v);

/* Decimal string parsing shared with the scanner; the whole of s[0..n)
 * must be the number, surrounding blanks allowed. */
bool rc_parse_int(const char *s, size_t n, int64_t *out);
bool rc_parse_double(const char *s, size_t n, double *out);
/* A double with no fractional part within int64 range, as an int64 (the
 * rule rc_av_int reads doubles by; casting any other double is undefined). */
bool rc_double_int(double d, int64_t *out);

/* --- writing ---------------------------------------------------------------- */

typedef struct rc_attr_list {
    rc_arena *arena;
    otlp_key_value ***kvs; /* the array being edited, e.g. &span->attributes */
    size_t *n;             /* its length, e.g. &span->n_attributes */
    size_t cap;            /* room known to exist in *kvs */
} rc_attr_list;

/* A list editing span->attributes, allocating from `arena` (the arena of the
 * request that owns the span). */
rc_attr_list rc_attr_list_of_span(otlp_span *span, rc_arena *arena);
rc_attr_list rc_attr_list_of_resource(otlp_resource *res, rc_arena *arena);

/* Set key (replacing the value of an existing attribute of that name, else
 * appending one). `key` is not copied. False when the arena refuses memory;
 * the list is then unchanged. */
bool rc_attr_set_str(rc_attr_list *l, const char *key, const char *val); /* copies val */
bool rc_attr_set_strn(rc_attr_list *l, const char *key, const char *val, size_t len);
/* Does not copy val: it must live in the arena (or be static). */
bool rc_attr_set_str_ref(rc_attr_list *l, const char *key, const char *val);
bool rc_attr_set_int(rc_attr_list *l, const char *key, int64_t val);
bool rc_attr_set_double(rc_attr_list *l, const char *key, double val);
bool rc_attr_set_bool(rc_attr_list *l, const char *key, bool val);
/* Append key without looking for it, for a caller that knows the list
 * lacks it (the convention scan saw it absent: rc_facts.present). Faster
 * than the set functions, which search the list first; with the key
 * present they would leave two attributes of that name. */
bool rc_attr_add_str_ref(rc_attr_list *l, const char *key, const char *val); /* val not copied */
bool rc_attr_add_int(rc_attr_list *l, const char *key, int64_t val);
bool rc_attr_add_double(rc_attr_list *l, const char *key, double val);
/* Removes every attribute named key; returns how many were removed. Order
 * of the others is kept. */
size_t rc_attr_remove(rc_attr_list *l, const char *key);

#endif
