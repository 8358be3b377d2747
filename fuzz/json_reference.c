/*
 * json_reference.c - the OTLP/JSON decoder as it was before the streaming one
 * (otlp/json_decode.c), kept unchanged in behaviour as the reference the
 * differential fuzzer (fuzz_json_diff.c) and tests hold the new one to.
 * What follows is its original description.
 *
 * OTLP/JSON to the protobuf-c structs of the pipeline.
 *
 * jansson parses the body into a tree; decode_message then walks that tree
 * guided by the protobuf-c descriptors, so one generic walker serves every
 * message of the schema and a field added to the protos is decoded without
 * code here. The rules are those of the OTLP "JSON Protobuf Encoding":
 *   - keys in lowerCamelCase or as the original proto names (a camelCase key
 *     is turned into snake_case and looked up by proto name); unknown keys
 *     are ignored; null means the field is absent;
 *   - trace_id, span_id and parent_span_id are hex (either case); other
 *     bytes are base64, standard or URL-safe, padding optional;
 *   - 64-bit integers as numbers or decimal strings; 32-bit ones likewise;
 *   - enums as integers or by value name ("SPAN_KIND_SERVER");
 *   - doubles as numbers, numeric strings, or "NaN", "Infinity", "-Infinity".
 * A known key holding the wrong JSON type is an error naming its path, e.g.
 * "resourceSpans[0].scopeSpans[1].spans[3].kind: expected an integer".
 *
 * Invariants of what comes out: every message is allocated in the arena and
 * initialised by protobuf_c_message_init, so it packs with protobuf-c like
 * an unpacked one. Empty strings point at protobuf_c_empty_string, except
 * the members of a oneof: protobuf-c does not pack a oneof string equal to
 * the field default, so an explicit {"stringValue":""} gets its own "" to
 * survive a protobuf round trip. A "\u0000" inside a string becomes U+FFFD,
 * since a C string would end there. AnyValue arrays/kvlists nest at most
 * OTLP_MAX_DEPTH deep, the same bound the protobuf decoder applies.
 *
 * Three jansson limits are worked around on rare paths, with a rewritten
 * copy of the body. jansson rejects invalid UTF-8 while OTLP asks us to keep
 * such strings and repair them, so a body that is not valid UTF-8 is first
 * copied with each bad byte replaced by U+FFFD. It rejects an escaped lone
 * UTF-16 surrogate ("\ud83d" from text cut mid-emoji), so on that error
 * such escapes become "\ufffd". And it refuses integer literals outside
 * int64 while Go writes doubles up to 1e21 in plain digits, so on that error
 * the body is re-parsed with such literals made reals.
 * The common, valid body is parsed in place. The jansson tree is freed
 * before returning; nothing is kept from it.
 */
#include "fuzz/json_reference.h"

#include "core/json_writer.h"
#include "core/memlimit.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages nest 7 deep down to an attribute value; each AnyValue container
 * adds at most 3. The path stack is sized for the deepest accepted input. */
#define DECODE_MAX_DEPTH (OTLP_MAX_DEPTH * 3 + 16)

typedef struct path_seg {
    const char *key;
    long index; /* -1: not an array element */
} path_seg;

typedef struct dec {
    rc_arena *arena;
    rc_error *err;
    path_seg path[DECODE_MAX_DEPTH + 1];
    int depth;
    int containers;
} dec;

/* --- errors --------------------------------------------------------------- */

static void format_path(const dec *d, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < d->depth && len < n; i++) {
        const path_seg *s = &d->path[i];
        int w = snprintf(out + len, n - len, "%s%s", i ? "." : "", s->key);
        if (w < 0) break;
        len += (size_t)w;
        if (s->index >= 0 && len < n) {
            w = snprintf(out + len, n - len, "[%ld]", s->index);
            if (w < 0) break;
            len += (size_t)w;
        }
    }
}

static rc_status fail(dec *d, const char *what)
{
    char path[384];
    format_path(d, path, sizeof path);
    if (path[0])
        rc_error_set(d->err, "invalid OTLP/JSON: %s: %s", path, what);
    else
        rc_error_set(d->err, "invalid OTLP/JSON: %s", what);
    return RC_EINVAL;
}

static rc_status out_of_memory(dec *d)
{
    rc_error_set(d->err, "memory limit reached while decoding an OTLP/JSON request");
    return RC_ENOMEM;
}

/* --- scalars -------------------------------------------------------------- */

static bool parse_decimal_u64(const char *s, uint64_t *out)
{
    if (!*s) return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned digit = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10) return false;
        v = v * 10 + digit;
    }
    *out = v;
    return true;
}

/* An integral JSON value (number or decimal string) as a sign and magnitude,
 * so that both the int64 and the uint64 ranges can be checked exactly. */
static bool json_integer_parts(const json_t *v, bool *neg, uint64_t *mag)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *neg = i < 0;
        *mag = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
        return true;
    }
    if (json_is_real(v)) {
        double r = json_real_value(v);
        if (!isfinite(r) || r != floor(r) || fabs(r) >= 18446744073709551616.0) return false;
        *neg = r < 0;
        *mag = (uint64_t)fabs(r);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        *neg = *s == '-';
        return parse_decimal_u64(*neg ? s + 1 : s, mag);
    }
    return false;
}

static rc_status get_signed(dec *d, const json_t *v, int64_t min, int64_t max, int64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!json_integer_parts(v, &neg, &mag)) return fail(d, "expected an integer");
    if (!neg && mag > (uint64_t)max) return fail(d, "integer out of range");
    if (neg && mag > (uint64_t)0 - (uint64_t)min) return fail(d, "integer out of range");
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return RC_OK;
}

static rc_status get_unsigned(dec *d, const json_t *v, uint64_t max, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!json_integer_parts(v, &neg, &mag)) return fail(d, "expected an integer");
    if ((neg && mag != 0) || mag > max) return fail(d, "integer out of range");
    *out = mag;
    return RC_OK;
}

static rc_status get_double(dec *d, const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return RC_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return RC_OK;
        }
        if (strcmp(s, "Infinity") == 0) {
            *out = INFINITY;
            return RC_OK;
        }
        if (strcmp(s, "-Infinity") == 0) {
            *out = -INFINITY;
            return RC_OK;
        }
        char *end;
        double r = strtod(s, &end);
        if (*s && !*end && isfinite(r) && (*s == '-' || (*s >= '0' && *s <= '9'))) {
            *out = r;
            return RC_OK;
        }
    }
    return fail(d, "expected a number");
}

static rc_status get_enum(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, int *out)
{
    if (json_is_string(v)) {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
        if (ev) {
            *out = ev->value;
            return RC_OK;
        }
    }
    int64_t i;
    if (!json_is_string(v) && !json_is_number(v)) return fail(d, "expected an integer");
    if (get_signed(d, v, INT32_MIN, INT32_MAX, &i) != RC_OK) {
        if (json_is_string(v)) {
            char what[160];
            snprintf(what, sizeof what, "unknown enum value \"%.100s\"", json_string_value(v));
            return fail(d, what);
        }
        return RC_EINVAL;
    }
    *out = (int)i;
    return RC_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static rc_status get_hex(dec *d, const char *s, size_t n, ProtobufCBinaryData *out)
{
    if (n % 2) return fail(d, "hex id has an odd number of digits");
    uint8_t *bytes = NULL;
    if (n) {
        bytes = rc_arena_alloc(d->arena, n / 2);
        if (!bytes) return out_of_memory(d);
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0) return fail(d, "expected a hex id");
        bytes[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    out->data = bytes;
    out->len = n / 2;
    return RC_OK;
}

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Standard or URL-safe alphabet; trailing '=' padding optional. */
static rc_status get_base64(dec *d, const char *s, size_t n, ProtobufCBinaryData *out)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1) return fail(d, "invalid base64");
    size_t cap = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    uint8_t *bytes = NULL;
    if (cap) {
        bytes = rc_arena_alloc(d->arena, cap);
        if (!bytes) return out_of_memory(d);
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = base64_value(s[i]);
        if (v < 0) return fail(d, "invalid base64");
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[o++] = (uint8_t)(acc >> bits);
        }
    }
    out->data = bytes;
    out->len = o;
    return RC_OK;
}

/* trace_id, span_id and parent_span_id are hex in OTLP/JSON, not base64. */
static bool is_hex_id_field(const ProtobufCFieldDescriptor *f)
{
    const char *n = f->name;
    return strcmp(n, "trace_id") == 0 || strcmp(n, "span_id") == 0 ||
           strcmp(n, "parent_span_id") == 0;
}

/* A C string cannot hold a NUL, so each one becomes U+FFFD instead of
 * cutting the string short. */
static char *copy_without_nuls(rc_arena *arena, const char *s, size_t n)
{
    size_t nuls = 0;
    for (const char *z = memchr(s, 0, n); z; z = memchr(z + 1, 0, n - (size_t)(z + 1 - s)))
        nuls++;
    char *out = rc_arena_alloc(arena, n + 2 * nuls + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i]) {
            out[o++] = s[i];
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
    }
    out[o] = '\0';
    return out;
}

static rc_status get_string(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, char **out)
{
    if (!json_is_string(v)) return fail(d, "expected a string");
    size_t n = json_string_length(v);
    bool in_oneof = f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF;
    if (n == 0 && !in_oneof) {
        *out = (char *)protobuf_c_empty_string;
        return RC_OK;
    }
    const char *text = json_string_value(v);
    char *s = memchr(text, 0, n) ? copy_without_nuls(d->arena, text, n)
                                 : rc_arena_strndup(d->arena, text, n);
    if (!s) return out_of_memory(d);
    *out = s;
    return RC_OK;
}

static rc_status get_bytes(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v,
                           ProtobufCBinaryData *out)
{
    if (!json_is_string(v))
        return fail(d, is_hex_id_field(f) ? "expected a hex string" : "expected a base64 string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    return is_hex_id_field(f) ? get_hex(d, s, n, out) : get_base64(d, s, n, out);
}

/* --- messages ------------------------------------------------------------- */

static rc_status decode_message(dec *d, const ProtobufCMessageDescriptor *desc, const json_t *obj,
                                ProtobufCMessage **out);

/* Decodes one value of field f (one element, for repeated fields) into the
 * storage at slot. */
static rc_status decode_value(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v,
                              void *slot)
{
    int64_t i = 0;
    uint64_t u = 0;
    rc_status st;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return get_string(d, f, v, slot);
    case PROTOBUF_C_TYPE_BYTES:
        return get_bytes(d, f, v, slot);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v)) return fail(d, "expected true or false");
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return RC_OK;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        st = get_signed(d, v, INT32_MIN, INT32_MAX, &i);
        if (st == RC_OK) *(int32_t *)slot = (int32_t)i;
        return st;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        st = get_unsigned(d, v, UINT32_MAX, &u);
        if (st == RC_OK) *(uint32_t *)slot = (uint32_t)u;
        return st;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return get_signed(d, v, INT64_MIN, INT64_MAX, slot);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return get_unsigned(d, v, UINT64_MAX, slot);
    case PROTOBUF_C_TYPE_DOUBLE:
        return get_double(d, v, slot);
    case PROTOBUF_C_TYPE_FLOAT: {
        double x;
        st = get_double(d, v, &x);
        if (st == RC_OK) *(float *)slot = (float)x;
        return st;
    }
    case PROTOBUF_C_TYPE_ENUM:
        return get_enum(d, f, v, slot);
    case PROTOBUF_C_TYPE_MESSAGE:
        return decode_message(d, f->descriptor, v, slot);
    }
    return fail(d, "unsupported field type");
}

static size_t element_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

static rc_status decode_repeated(dec *d, const ProtobufCFieldDescriptor *f, const json_t *arr,
                                 char *msg)
{
    if (!json_is_array(arr)) return fail(d, "expected an array");
    size_t n = json_array_size(arr);
    if (n == 0) return RC_OK;
    size_t size = element_size(f->type);
    char *elems = rc_arena_calloc(d->arena, n * size);
    if (!elems) return out_of_memory(d);
    path_seg *seg = &d->path[d->depth - 1];
    for (size_t i = 0; i < n; i++) {
        seg->index = (long)i;
        rc_status st = decode_value(d, f, json_array_get(arr, i), elems + i * size);
        if (st != RC_OK) return st;
    }
    seg->index = -1;
    *(size_t *)(msg + f->quantifier_offset) = n;
    *(void **)(msg + f->offset) = elems;
    return RC_OK;
}

static rc_status decode_field(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, char *msg)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return decode_repeated(d, f, v, msg);
    rc_status st = decode_value(d, f, v, msg + f->offset);
    if (st != RC_OK) return st;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)(msg + f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
             f->type != PROTOBUF_C_TYPE_STRING)
        *(protobuf_c_boolean *)(msg + f->quantifier_offset) = 1;
    return RC_OK;
}

/* The field a JSON key names: its proto name, or that name in lowerCamelCase. */
static const ProtobufCFieldDescriptor *lookup_field(const ProtobufCMessageDescriptor *desc,
                                                    const char *key)
{
    char snake[64];
    size_t n = 0;
    for (const char *k = key; *k; k++) {
        if (n + 2 >= sizeof snake) return NULL; /* longer than any field name */
        if (*k >= 'A' && *k <= 'Z') {
            snake[n++] = '_';
            snake[n++] = (char)(*k - 'A' + 'a');
        } else {
            snake[n++] = *k;
        }
    }
    snake[n] = '\0';
    return protobuf_c_message_descriptor_get_field_by_name(desc, snake);
}

static bool is_container(const ProtobufCMessageDescriptor *desc)
{
    return desc == &opentelemetry__proto__common__v1__array_value__descriptor ||
           desc == &opentelemetry__proto__common__v1__key_value_list__descriptor;
}

static rc_status decode_fields(dec *d, const ProtobufCMessageDescriptor *desc, const json_t *obj,
                               char *msg)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (json_is_null(v)) continue;
        const ProtobufCFieldDescriptor *f = lookup_field(desc, key);
        if (!f) continue;
        d->path[d->depth++] = (path_seg){.key = key, .index = -1};
        rc_status st = decode_field(d, f, v, msg);
        d->depth--;
        if (st != RC_OK) return st;
    }
    return RC_OK;
}

static rc_status decode_message(dec *d, const ProtobufCMessageDescriptor *desc, const json_t *obj,
                                ProtobufCMessage **out)
{
    if (!json_is_object(obj)) return fail(d, "expected an object");
    bool container = is_container(desc);
    if (container && d->containers + 1 > OTLP_MAX_DEPTH) {
        char what[96];
        snprintf(what, sizeof what, "arrayValue/kvlistValue nested deeper than %d", OTLP_MAX_DEPTH);
        return fail(d, what);
    }
    if (d->depth >= DECODE_MAX_DEPTH) return fail(d, "objects nested too deeply");

    ProtobufCMessage *msg = rc_arena_alloc(d->arena, desc->sizeof_message);
    if (!msg) return out_of_memory(d);
    protobuf_c_message_init(desc, msg);

    d->containers += container;
    rc_status st = decode_fields(d, desc, obj, (char *)msg);
    d->containers -= container;
    if (st != RC_OK) return st;
    *out = msg;
    return RC_OK;
}

/* --- input rewrites (rare paths) -------------------------------------------- */

/* A copy of the body that the caller frees with text_free; the bytes are
 * charged to the memory limiter while it lives. */
typedef struct text_copy {
    char *data;
    size_t len;
    size_t charged;
} text_copy;

static bool text_alloc(text_copy *t, size_t cap)
{
    if (!rc_mem_try_charge(cap)) return false;
    t->data = malloc(cap);
    if (!t->data) {
        rc_mem_release(cap);
        return false;
    }
    t->len = 0;
    t->charged = cap;
    return true;
}

static void text_free(text_copy *t)
{
    if (!t->data) return;
    free(t->data);
    rc_mem_release(t->charged);
    t->data = NULL;
}

static size_t first_invalid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = rc_utf8_seq_len(s + i, n - i);
        if (len == 0) return i;
        i += len;
    }
    return n;
}

/* Copies data with every byte outside a valid UTF-8 sequence replaced by
 * U+FFFD (one per byte, as the JSON writer does). */
static bool repair_utf8(const char *data, size_t len, size_t from, text_copy *t)
{
    if (len > SIZE_MAX / 3 || !text_alloc(t, len * 3)) return false;
    memcpy(t->data, data, from);
    size_t o = from;
    const unsigned char *s = (const unsigned char *)data;
    for (size_t i = from; i < len;) {
        size_t n = s[i] < 0x80 ? 1 : rc_utf8_seq_len(s + i, len - i);
        if (n == 0) {
            memcpy(t->data + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(t->data + o, s + i, n);
            o += n;
            i += n;
        }
    }
    t->len = o;
    return true;
}

static bool fits_int64(const char *tok, size_t n)
{
    bool neg = tok[0] == '-';
    const char *digits = tok + neg;
    size_t nd = n - neg;
    const char *limit = neg ? "9223372036854775808" : "9223372036854775807";
    while (nd > 1 && *digits == '0') {
        digits++;
        nd--;
    }
    if (nd != 19) return nd < 19;
    return memcmp(digits, limit, 19) <= 0;
}

/* jansson refuses integer literals outside the int64 range, yet doubles
 * below 1e21 are written in plain digits by the Collector's JSON writer
 * (and by ours): "doubleValue":100000000000000000000. This copies the body
 * with ".0" appended to every such literal so jansson reads it as a real;
 * integer fields still accept integral reals. */
static bool widen_big_integers(const char *data, size_t len, text_copy *t)
{
    /* Each widened literal has at least 20 characters and gains 2. */
    if (!text_alloc(t, len + len / 10 + 16)) return false;
    bool in_string = false;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char c = data[i];
        if (in_string) {
            t->data[o++] = c;
            i++;
            if (c == '\\' && i < len)
                t->data[o++] = data[i++];
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        if (c != '-' && (c < '0' || c > '9')) {
            t->data[o++] = c;
            i++;
            continue;
        }
        size_t start = i;
        bool integral = true;
        while (i < len && strchr("-+0123456789.eE", data[i])) {
            if (strchr(".eE", data[i])) integral = false;
            i++;
        }
        memcpy(t->data + o, data + start, i - start);
        o += i - start;
        if (integral && i - start > 1 && !fits_int64(data + start, i - start)) {
            t->data[o++] = '.';
            t->data[o++] = '0';
        }
    }
    t->len = o;
    return true;
}

/* The code unit of a "\\uXXXX" escape at s (n bytes available), or -1. */
static long unicode_escape(const char *s, size_t n)
{
    if (n < 6 || s[0] != '\\' || s[1] != 'u') return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hex_value(s[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* jansson refuses an escaped UTF-16 surrogate that is not part of a pair,
 * which JavaScript emits for a string cut in the middle of an emoji (LLM
 * text truncated by length, typically). This copies the body with each
 * such escape replaced by "\ufffd", the same length. */
static bool fix_lone_surrogates(const char *data, size_t len, text_copy *t)
{
    if (!text_alloc(t, len ? len : 1)) return false;
    memcpy(t->data, data, len);
    t->len = len;
    char *s = t->data;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_string = false;
            continue;
        }
        if (s[i] != '\\') continue;
        long v = unicode_escape(s + i, len - i);
        if (v >= 0xD800 && v <= 0xDBFF) {
            long low = unicode_escape(s + i + 6, len - i - 6);
            if (low >= 0xDC00 && low <= 0xDFFF) {
                i += 11; /* a proper pair: keep both */
                continue;
            }
        }
        if (v >= 0xD800 && v <= 0xDFFF) {
            memcpy(s + i, "\\ufffd", 6);
            i += 5;
        } else {
            i++; /* skip the escaped character, which may be a quote */
        }
    }
    return true;
}

/* jansson's parse tree takes 4 to 22 times the body's size (measured on
 * SDK output and on compact JSON of many small values). It is charged to the
 * memory limiter up front, at JSON_TREE_FACTOR times the body, and released
 * once the tree is freed. Charging inside jansson's allocator would be exact,
 * but jansson's error path frees pointers it never allocated when a malloc
 * fails mid-parse, so its allocations must never fail. */
#define JSON_TREE_FACTOR 24

static json_t *parse(const char *data, size_t len, json_error_t *jerr)
{
    return json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, jerr);
}

/* --- entry point ------------------------------------------------------------ */

static rc_status decode(const char *data, size_t len, bool rewrite_first, rc_arena *arena,
                        otlp_export_request **out, rc_error *err)
{
    rc_status st = RC_OK;
    text_copy repaired = {0}, unpaired = {0}, widened = {0};
    json_t *root = NULL;
    dec *d = NULL;

    if (len == 0) { /* valid protobuf, but not valid JSON (the Go collector agrees) */
        rc_error_set(err, "invalid JSON: the body is empty");
        return RC_EINVAL;
    }

    if (len > rc_mem_limit() / 2 / JSON_TREE_FACTOR) {
        rc_error_set(err,
                     "a %zu-byte OTLP/JSON body needs about %zu MiB to parse, more than half of "
                     "service.memory_limit_mib; send smaller batches or use protobuf",
                     len, len * JSON_TREE_FACTOR >> 20);
        return RC_ETOOBIG;
    }
    size_t tree_charge = len * JSON_TREE_FACTOR;
    if (!rc_mem_try_charge(tree_charge)) {
        rc_error_set(err, "memory limit reached, retry later");
        return RC_ENOMEM;
    }

    size_t bad = first_invalid_utf8((const unsigned char *)data, len);
    if (bad < len) {
        if (!repair_utf8(data, len, bad, &repaired)) goto no_memory;
        data = repaired.data;
        len = repaired.len;
    }

    json_error_t jerr;
    if (rewrite_first) {
        if (!fix_lone_surrogates(data, len, &unpaired)) goto no_memory;
        if (!widen_big_integers(unpaired.data, len, &widened)) goto no_memory;
        data = widened.data;
        len = widened.len;
    }
    root = parse(data, len, &jerr);
    if (!root && strstr(jerr.text, "invalid Unicode")) {
        if (!fix_lone_surrogates(data, len, &unpaired)) goto no_memory;
        data = unpaired.data;
        root = parse(data, len, &jerr);
    }
    if (!root && strstr(jerr.text, "too big")) {
        if (!widen_big_integers(data, len, &widened)) goto no_memory;
        root = parse(widened.data, widened.len, &jerr);
    }
    if (!root && json_error_code(&jerr) == json_error_out_of_memory) goto no_memory;
    if (!root) {
        rc_error_set(err, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
        st = RC_EINVAL;
        goto done;
    }
    if (!json_is_object(root)) {
        rc_error_set(err, "invalid OTLP/JSON: the request must be a JSON object");
        st = RC_EINVAL;
        goto done;
    }
    /* The path stack is a few KiB: keep it off the caller's stack. */
    d = calloc(1, sizeof *d);
    if (!d) goto no_memory;
    d->arena = arena;
    d->err = err;
    ProtobufCMessage *msg = NULL;
    st = decode_message(
        d, &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
        root, &msg);
    if (st == RC_OK) *out = (otlp_export_request *)msg;
    goto done;

no_memory:
    rc_error_set(err, "memory limit reached while decoding a %zu-byte OTLP/JSON request", len);
    st = RC_ENOMEM;
done:
    free(d);
    json_decref(root);
    text_free(&widened);
    text_free(&unpaired);
    text_free(&repaired);
    rc_mem_release(tree_charge);
    return st;
}

rc_status otlp_json_decode_reference(const char *data, size_t len, rc_arena *arena,
                                     otlp_export_request **out, rc_error *err)
{
    return decode(data, len, false, arena, out, err);
}

rc_status otlp_json_decode_reference_rewritten(const char *data, size_t len, rc_arena *arena,
                                               otlp_export_request **out, rc_error *err)
{
    return decode(data, len, true, arena, out, err);
}
