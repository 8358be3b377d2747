/*
 * proto_reference.c - the protobuf decoder as it was before otlp/proto_codec.c
 * built requests itself, kept as the reference the new one is held to.
 *
 * Up to the comparison helpers at the end, this is otlp/proto_codec.c of
 * commit 75e3878 unchanged but for the entry point's name: a validating
 * pre-scan (scan_message) that walks the wire format guided by the
 * protobuf-c descriptors, then protobuf-c's own protobuf_c_message_unpack
 * into the arena, then the UTF-8 repair of every string when the scan saw a
 * bad one (NULs masked to 0xFF in a copy of the input first). Its encoder
 * was protobuf_c_message_pack (otlp_pack_message).
 *
 * The fuzz target fuzz_proto and the unit test test_proto_codec feed the same
 * bytes to both decoders and require the same status, the same error
 * message and, on success, the same structs (proto_reference_diff) and the
 * same encoding from both encoders. This file is test code; it never ships
 * in the library.
 */
#include "fuzz/proto_reference.h"

#include "otlp/otlp.h"

#include "core/bytescan.h"
#include "core/json_writer.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Request > ResourceSpans > ScopeSpans > Span > Event > KeyValue > AnyValue
 * is 7 levels; each container adds at most 3 (KeyValueList > KeyValue >
 * AnyValue). The guard sits well above what valid OTLP can reach. */
#define SCAN_MAX_DEPTH (OTLP_MAX_DEPTH * 3 + 16)

enum wire_type {
    WIRE_VARINT = 0,
    WIRE_FIXED64 = 1,
    WIRE_LEN = 2,
    WIRE_GROUP_START = 3,
    WIRE_GROUP_END = 4,
    WIRE_FIXED32 = 5,
};

/* --- field tables ------------------------------------------------------------
 *
 * The scan visits every tag of the request, so what it needs to know about a
 * field is packed into one small slot indexed by field number, built once
 * from the descriptors of every message reachable from the request. From the
 * slots, each table also resolves every one-byte tag (field numbers below
 * 16, which is all of OTLP) to what the scan must do with it, wire type check
 * included: the common tag costs one load instead of a varint decode, a slot
 * lookup and a wire check. Longer tags go the long way through the slots,
 * and field numbers from TABLE_FIELDS up (none in OTLP today) through the
 * descriptor. */

#define TABLE_FIELDS 32
#define MAX_TABLES 32 /* the request reaches 14 message types */

enum slot_kind {
    SLOT_UNKNOWN = 0, /* not declared: skipped, kept by protobuf-c as unknown */
    SLOT_SCALAR,
    SLOT_STRING,
    SLOT_MESSAGE,
};

typedef struct field_slot {
    uint8_t kind;
    uint8_t wires; /* bit w set: wire type w is accepted */
    uint8_t sub;   /* SLOT_MESSAGE: index of the field's message table */
} field_slot;

/* What the scan does with one occurrence of a field, given its slot and the
 * wire type it arrived with. */
enum scan_op {
    OP_VARINT,
    OP_FIXED64,
    OP_FIXED32,
    OP_OPAQUE,  /* length-delimited bytes, packed scalars or an unknown field */
    OP_STRING,  /* length-delimited string: checked for UTF-8 */
    OP_MESSAGE, /* length-delimited message: scanned in turn */
    OP_WRONG_WIRE,
    OP_GROUP,
    OP_INVALID_WIRE,
    OP_NUMBER_ZERO,
};

#define ONE_BYTE_TAGS 128

/* What a tag means in a message: the scan_op, and for OP_MESSAGE the index of
 * the field's message table. */
typedef struct tag_action {
    uint8_t op;
    uint8_t sub;
} tag_action;

typedef struct msg_table {
    const ProtobufCMessageDescriptor *d;
    bool container;   /* ArrayValue or KeyValueList: counts toward OTLP_MAX_DEPTH */
    bool high_fields; /* some field number is >= TABLE_FIELDS */
    field_slot slots[TABLE_FIELDS];
    tag_action one_byte_tags[ONE_BYTE_TAGS];
} msg_table;

static msg_table tables[MAX_TABLES];
static unsigned n_tables;
static bool tables_overflow;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* The wire type a field's declared type is encoded with. */
static int expected_wire_type(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return WIRE_FIXED32;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return WIRE_FIXED64;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return WIRE_LEN;
    default:
        return WIRE_VARINT;
    }
}

/* protobuf_c_message_descriptor_get_field, inlined: OTLP messages have one
 * or two runs of consecutive field numbers. field_ranges ends with a
 * sentinel whose orig_index is n_fields. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  uint64_t number)
{
    const ProtobufCIntRange *r = d->field_ranges;
    for (unsigned i = 0; i < d->n_field_ranges; i++) {
        uint64_t start = (uint64_t)r[i].start_value;
        uint64_t count = r[i + 1].orig_index - r[i].orig_index;
        if (number >= start && number - start < count)
            return &d->fields[r[i].orig_index + (number - start)];
    }
    return NULL;
}

static unsigned table_index(const ProtobufCMessageDescriptor *d);

static uint8_t op_for(field_slot s, int wire)
{
    if (s.kind != SLOT_UNKNOWN && !(s.wires & (1u << wire))) return OP_WRONG_WIRE;
    switch (wire) {
    case WIRE_VARINT:
        return OP_VARINT;
    case WIRE_FIXED64:
        return OP_FIXED64;
    case WIRE_FIXED32:
        return OP_FIXED32;
    case WIRE_LEN:
        return s.kind == SLOT_STRING ? OP_STRING : s.kind == SLOT_MESSAGE ? OP_MESSAGE : OP_OPAQUE;
    case WIRE_GROUP_START:
    case WIRE_GROUP_END:
        return OP_GROUP;
    default:
        return OP_INVALID_WIRE;
    }
}

static tag_action action_for(field_slot s, uint64_t number, int wire)
{
    tag_action a = {.op = number == 0 ? OP_NUMBER_ZERO : op_for(s, wire), .sub = s.sub};
    return a;
}

static field_slot slot_for(const ProtobufCFieldDescriptor *f)
{
    field_slot s = {.kind = SLOT_SCALAR, .wires = (uint8_t)(1u << expected_wire_type(f->type))};
    /* Repeated scalars may also come packed in one length-delimited run. */
    if (f->label == PROTOBUF_C_LABEL_REPEATED) s.wires |= 1u << WIRE_LEN;
    if (f->type == PROTOBUF_C_TYPE_STRING) s.kind = SLOT_STRING;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        s.kind = SLOT_MESSAGE;
        s.sub = (uint8_t)table_index(f->descriptor);
    }
    return s;
}

/* The table of d, built (with the tables of every message below it) on
 * first sight; tables are never freed. */
static unsigned table_index(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < n_tables; i++)
        if (tables[i].d == d) return i;
    if (n_tables == MAX_TABLES) {
        tables_overflow = true;
        return 0;
    }
    unsigned idx = n_tables++;
    msg_table *t = &tables[idx];
    t->d = d;
    t->container = d == &opentelemetry__proto__common__v1__array_value__descriptor ||
                   d == &opentelemetry__proto__common__v1__key_value_list__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        field_slot s = slot_for(f); /* may add tables: t stays valid, tables is static */
        if (f->id < TABLE_FIELDS)
            t->slots[f->id] = s;
        else
            t->high_fields = true;
    }
    for (unsigned tag = 0; tag < ONE_BYTE_TAGS; tag++)
        t->one_byte_tags[tag] = action_for(t->slots[tag >> 3], tag >> 3, (int)(tag & 7));
    return idx;
}

static void build_tables(void)
{
    table_index(
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor);
}

/* --- the scan ------------------------------------------------------------- */

typedef struct scan_ctx {
    const uint8_t *base; /* start of the request, for offsets in messages */
    rc_error *err;
    bool bad_string; /* some string field holds invalid UTF-8 or a NUL */
    uint8_t *patch;  /* second scan: copy of the request whose NULs in strings
                      * are overwritten (see mark_nuls) */
} scan_ctx;

/* The rest of clean_string, for strings that are not plain ASCII: a
 * byte-wise UTF-8 check that still skips ASCII runs a word at a time. */
static bool utf8_without_nul(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (n - i >= 8 && rc_ascii_without_nul((const unsigned char *)p + i, 8)) {
            i += 8;
            continue;
        }
        if (p[i] == 0) return false;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = rc_utf8_seq_len(p + i, n - i);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

/* Whether p[0..n) is valid UTF-8 without NUL, which a C string cannot hold.
 * Telemetry strings are mostly ASCII, so that is tested first, in bulk. */
static inline bool clean_string(const uint8_t *p, size_t n)
{
    return rc_ascii_without_nul((const unsigned char *)p, n) || utf8_without_nul(p, n);
}

/* Reads a varint of at most 10 bytes; NULL when it runs past end or is
 * longer than any 64-bit value. */
static inline const uint8_t *read_varint(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    if (p < end && *p < 0x80) { /* tags and short lengths: one byte */
        *out = *p;
        return p + 1;
    }
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70 && p < end; shift += 7) {
        uint8_t byte = *p++;
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return p;
        }
    }
    return NULL;
}

/* Fails the scan with a message naming the field ("field
 * opentelemetry.proto.trace.v1.Span.trace_id", or "field 17 of
 * opentelemetry.proto.trace.v1.Span" when undeclared) and the offset. */
static rc_status scan_fail(scan_ctx *c, const msg_table *t, uint64_t number, const uint8_t *at,
                           const char *what)
{
    const ProtobufCFieldDescriptor *f = find_field(t->d, number);
    char name[200];
    if (f)
        snprintf(name, sizeof name, "field %s.%s", t->d->name, f->name);
    else
        snprintf(name, sizeof name, "field %llu of %s", (unsigned long long)number, t->d->name);
    rc_error_set(c->err, "invalid protobuf: %s: %s at offset %zu", name, what,
                 (size_t)(at - c->base));
    return RC_EINVAL;
}

static rc_status scan_wrong_wire(scan_ctx *c, const msg_table *t, uint64_t number, int wire,
                                 const uint8_t *at)
{
    char what[64];
    snprintf(what, sizeof what, "wrong wire type %d (expected %d)", wire,
             expected_wire_type(find_field(t->d, number)->type));
    return scan_fail(c, t, number, at, what);
}

/* protobuf-c stores strings NUL-terminated, so a NUL inside one would cut
 * it short. Before unpacking, each such NUL is overwritten with 0xFF, a byte
 * that is never valid UTF-8; the repair after unpack then turns it into
 * U+FFFD like any other bad byte, and nothing after it is lost. */
static void mark_nuls(uint8_t *p, size_t n)
{
    for (uint8_t *z = memchr(p, 0, n); z; z = memchr(z + 1, 0, n - (size_t)(z + 1 - p)))
        *z = 0xFF;
}

static field_slot slot_of(const msg_table *t, uint64_t number)
{
    if (number < TABLE_FIELDS) return t->slots[number];
    field_slot none = {0};
    if (!t->high_fields) return none;
    const ProtobufCFieldDescriptor *f = find_field(t->d, number);
    return f ? slot_for(f) : none;
}

static rc_status scan_message(scan_ctx *c, const msg_table *t, const uint8_t *p, const uint8_t *end,
                              unsigned depth, unsigned containers);

/* Checks one length-delimited value (OP_OPAQUE, OP_STRING or OP_MESSAGE)
 * whose length varint starts at *pp and descends into it when it is a
 * message. */
static rc_status scan_len(scan_ctx *c, const msg_table *t, uint64_t number, tag_action a,
                          const uint8_t **pp, const uint8_t *end, unsigned depth,
                          unsigned containers)
{
    const uint8_t *at = *pp;
    uint64_t len;
    const uint8_t *p = read_varint(at, end, &len);
    if (!p) return scan_fail(c, t, number, at, "truncated length");
    if (len > (uint64_t)(end - p)) {
        char what[96];
        snprintf(what, sizeof what, "length %llu past end of message", (unsigned long long)len);
        return scan_fail(c, t, number, at, what);
    }
    *pp = p + len;
    if (a.op == OP_STRING) {
        if (c->patch)
            mark_nuls(c->patch + (p - c->base), len);
        else if (!c->bad_string && !clean_string(p, len))
            c->bad_string = true;
        return RC_OK;
    }
    if (a.op != OP_MESSAGE) return RC_OK;

    const msg_table *sub = &tables[a.sub];
    if (sub->container && ++containers > OTLP_MAX_DEPTH) {
        rc_error_set(c->err,
                     "invalid protobuf: AnyValue arrays/kvlists nested deeper than %d "
                     "at offset %zu",
                     OTLP_MAX_DEPTH, (size_t)(p - c->base));
        return RC_EINVAL;
    }
    if (depth + 1 > SCAN_MAX_DEPTH) {
        rc_error_set(c->err, "invalid protobuf: messages nested deeper than %d at offset %zu",
                     SCAN_MAX_DEPTH, (size_t)(p - c->base));
        return RC_EINVAL;
    }
    return scan_message(c, sub, p, p + len, depth + 1, containers);
}

/* Decodes a tag of more than one byte at *pp: its field number and what to
 * do with it. Only field numbers from 16 up need one, and OTLP has none, so
 * this is the path of unknown fields and of malformed input. */
static rc_status read_long_tag(scan_ctx *c, const msg_table *t, const uint8_t **pp,
                               const uint8_t *end, uint64_t *number, tag_action *a)
{
    const uint8_t *tag_at = *pp;
    uint64_t tag;
    const uint8_t *p = read_varint(tag_at, end, &tag);
    if (!p || tag > UINT32_MAX) {
        rc_error_set(c->err, "invalid protobuf: %s: malformed tag at offset %zu", t->d->name,
                     (size_t)(tag_at - c->base));
        return RC_EINVAL;
    }
    *pp = p;
    *number = tag >> 3;
    *a = action_for(slot_of(t, *number), *number, (int)(tag & 7));
    return RC_OK;
}

/* Checks that [p, end) is a well-formed encoding of t's message. */
static rc_status scan_message(scan_ctx *c, const msg_table *t, const uint8_t *p, const uint8_t *end,
                              unsigned depth, unsigned containers)
{
    while (p < end) {
        const uint8_t *tag_at = p;
        uint64_t number;
        tag_action a;
        if (*p < 0x80) {
            a = t->one_byte_tags[*p];
            number = *p >> 3;
            p++;
        } else {
            rc_status st = read_long_tag(c, t, &p, end, &number, &a);
            if (st != RC_OK) return st;
        }
        switch (a.op) {
        case OP_VARINT: {
            uint64_t ignored;
            const uint8_t *next = read_varint(p, end, &ignored);
            if (!next) return scan_fail(c, t, number, p, "malformed varint");
            p = next;
            break;
        }
        case OP_FIXED64:
            if (end - p < 8) return scan_fail(c, t, number, p, "truncated fixed64");
            p += 8;
            break;
        case OP_FIXED32:
            if (end - p < 4) return scan_fail(c, t, number, p, "truncated fixed32");
            p += 4;
            break;
        case OP_OPAQUE:
        case OP_STRING:
        case OP_MESSAGE: {
            rc_status st = scan_len(c, t, number, a, &p, end, depth, containers);
            if (st != RC_OK) return st;
            break;
        }
        case OP_NUMBER_ZERO:
            rc_error_set(c->err, "invalid protobuf: %s: field number 0 at offset %zu", t->d->name,
                         (size_t)(tag_at - c->base));
            return RC_EINVAL;
        case OP_WRONG_WIRE: /* a tag's wire type is in the low bits of its first byte */
            return scan_wrong_wire(c, t, number, *tag_at & 7, tag_at);
        case OP_GROUP:
            return scan_fail(c, t, number, tag_at, "groups are not supported");
        default:
            return scan_fail(c, t, number, tag_at, "invalid wire type");
        }
    }
    return RC_OK;
}

/* --- UTF-8 repair (after unpack, only when the scan found a bad string) --- */

static bool repair_string(char **slot, rc_arena *arena)
{
    const unsigned char *s = (const unsigned char *)*slot;
    size_t n = strlen(*slot);
    if (clean_string(s, n)) return true;
    char *fixed = rc_arena_alloc(arena, n * 3 + 1);
    if (!fixed) return false;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = s[i] < 0x80 ? 1 : rc_utf8_seq_len(s + i, n - i);
        if (len == 0) {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, len);
            o += len;
            i += len;
        }
    }
    fixed[o] = '\0';
    *slot = fixed;
    return true;
}

static bool repair_message(ProtobufCMessage *m, rc_arena *arena);

static bool repair_item(const ProtobufCFieldDescriptor *f, void **slot, rc_arena *arena)
{
    if (!*slot) return true;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return repair_message(*slot, arena);
    return repair_string((char **)slot, arena);
}

/* Walks every string of m and the messages below it; the depth is the one
 * the scan already bounded. */
static bool repair_message(ProtobufCMessage *m, rc_arena *arena)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(size_t *)(base + f->quantifier_offset);
            void **items = *(void ***)(base + f->offset);
            for (size_t j = 0; j < n; j++)
                if (!repair_item(f, &items[j], arena)) return false;
        } else if (!repair_item(f, (void **)(base + f->offset), arena)) {
            return false;
        }
    }
    return true;
}

rc_status proto_reference_decode(const uint8_t *data, size_t len, rc_arena *arena,
                                 otlp_export_request **out, rc_error *err)
{
    static const uint8_t empty[1];
    if (len == 0) data = empty; /* protobuf-c wants a pointer even for nothing */

    pthread_once(&tables_once, build_tables);
    if (tables_overflow) { /* a schema change outgrew MAX_TABLES: fix the constant */
        rc_error_set(err, "protobuf decoder: more than %d message types in the schema", MAX_TABLES);
        return RC_EINVAL;
    }
    scan_ctx c = {.base = data, .err = err};
    rc_status st = scan_message(&c, &tables[0], data, data + len, 1, 0);
    if (st != RC_OK) return st;

    /* Rare path: strings with a NUL are unpacked from a patched copy. The
     * copy lives in the arena; protobuf-c copies what it keeps. */
    const uint8_t *input = data;
    if (c.bad_string) {
        uint8_t *copy = rc_arena_alloc(arena, len);
        if (!copy) goto no_memory;
        memcpy(copy, data, len);
        c.patch = copy;
        scan_message(&c, &tables[0], data, data + len, 1, 0);
        input = copy;
    }

    ProtobufCAllocator alloc = rc_arena_protobuf_allocator(arena);
    otlp_export_request *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            &alloc, len, input);
    if (!req) {
        if (rc_arena_exhausted(arena)) goto no_memory;
        rc_error_set(err, "invalid protobuf: ExportTraceServiceRequest could not be decoded");
        return RC_EINVAL;
    }
    if (c.bad_string && !repair_message(&req->base, arena)) goto no_memory;
    *out = req;
    return RC_OK;

no_memory:
    rc_error_set(err, "memory limit reached while decoding a %zu-byte protobuf request", len);
    return RC_ENOMEM;
}

/* --- comparing the two codecs ------------------------------------------------ */

static char g_why[512];

__attribute__((format(printf, 1, 2))) static const char *why(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_why, sizeof g_why, fmt, ap);
    va_end(ap);
    return g_why;
}

static const char *diff_message(const ProtobufCMessage *a, const ProtobufCMessage *b,
                                const char *path);

/* One value of field f: `a` and `b` point at the member or array element. */
static const char *diff_value(const ProtobufCFieldDescriptor *f, const void *a, const void *b,
                              const char *path)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        if (!x || !y) return x == y ? NULL : why("%s: NULL against a string", path);
        if ((x == f->default_value) != (y == f->default_value))
            return why("%s: the default string against a copy (\"%s\")", path,
                       x == f->default_value ? y : x);
        if (strcmp(x, y) != 0) return why("%s: \"%s\" against \"%s\"", path, x, y);
        return NULL;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = a, *y = b;
        if (x->len != y->len) return why("%s: %zu bytes against %zu", path, x->len, y->len);
        if (!x->data != !y->data) return why("%s: NULL bytes against non-NULL", path);
        if (x->len && memcmp(x->data, y->data, x->len) != 0) return why("%s: bytes differ", path);
        return NULL;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *x = *(ProtobufCMessage *const *)a;
        const ProtobufCMessage *y = *(ProtobufCMessage *const *)b;
        if (!x || !y) return x == y ? NULL : why("%s: NULL against a message", path);
        return diff_message(x, y, path);
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)a != *(const protobuf_c_boolean *)b)
            return why("%s: bool %d against %d", path, *(const protobuf_c_boolean *)a,
                       *(const protobuf_c_boolean *)b);
        return NULL;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (memcmp(a, b, 8) != 0) return why("%s: 64-bit values differ", path);
        return NULL;
    default:
        if (memcmp(a, b, 4) != 0) return why("%s: 32-bit values differ", path);
        return NULL;
    }
}

static size_t elt_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    default:
        return 4;
    }
}

static const char *diff_field(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *a,
                              const ProtobufCMessage *b, const char *path)
{
    char sub[400];
    snprintf(sub, sizeof sub, "%s.%s", path, f->name);
    const char *ma = (const char *)a + f->offset, *mb = (const char *)b + f->offset;
    const char *qa = (const char *)a + f->quantifier_offset;
    const char *qb = (const char *)b + f->quantifier_offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t ca = *(const uint32_t *)qa, cb = *(const uint32_t *)qb;
        if (ca != cb) return why("%s: oneof case %u against %u", sub, ca, cb);
        if (ca != f->id) return NULL;
    }
    if (f->label != PROTOBUF_C_LABEL_REPEATED) return diff_value(f, ma, mb, sub);
    size_t na = *(const size_t *)qa, nb = *(const size_t *)qb;
    const char *xa = *(char *const *)ma, *xb = *(char *const *)mb;
    if (na != nb) return why("%s: %zu elements against %zu", sub, na, nb);
    if (!xa != !xb) return why("%s: a NULL array against a non-NULL one", sub);
    for (size_t i = 0; i < na; i++) {
        char el[440];
        snprintf(el, sizeof el, "%s[%zu]", sub, i);
        const char *d = diff_value(f, xa + i * elt_size(f->type), xb + i * elt_size(f->type), el);
        if (d) return d;
    }
    return NULL;
}

static const char *diff_message(const ProtobufCMessage *a, const ProtobufCMessage *b,
                                const char *path)
{
    if (a->descriptor != b->descriptor) return why("%s: different message types", path);
    const ProtobufCMessageDescriptor *d = a->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *r = diff_field(&d->fields[i], a, b, path);
        if (r) return r;
    }
    if (a->n_unknown_fields != b->n_unknown_fields)
        return why("%s: %u unknown fields against %u", path, a->n_unknown_fields,
                   b->n_unknown_fields);
    if (!a->unknown_fields != !b->unknown_fields)
        return why("%s: NULL unknown fields against non-NULL", path);
    for (unsigned i = 0; i < a->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *x = &a->unknown_fields[i], *y = &b->unknown_fields[i];
        if (x->tag != y->tag || x->wire_type != y->wire_type || x->len != y->len ||
            memcmp(x->data, y->data, x->len) != 0)
            return why("%s: unknown field %u differs", path, i);
    }
    return NULL;
}

const char *proto_reference_diff(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    return diff_message(a, b, a->descriptor->short_name);
}

const char *proto_reference_encode_diff(const otlp_export_request *req)
{
    rc_buf want = RC_BUF_INIT, got = RC_BUF_INIT;
    otlp_pack_message(&req->base, &want);
    otlp_proto_encode(req, &got);
    const char *r = NULL;
    if (want.failed || got.failed) {
        r = want.failed == got.failed ? NULL : why("one encoder ran out of memory");
    } else {
        size_t at = 0, n = want.len < got.len ? want.len : got.len;
        while (at < n && want.data[at] == got.data[at])
            at++;
        if (at < n || want.len != got.len)
            r = why("encodings differ at offset %zu (protobuf-c %zu bytes, ours %zu)", at, want.len,
                    got.len);
    }
    rc_buf_free(&want);
    rc_buf_free(&got);
    return r;
}

const char *proto_reference_compare(const uint8_t *data, size_t len, size_t arena_max)
{
    rc_arena *ao = rc_arena_new(4096), *an = rc_arena_new(4096);
    const char *r = NULL;
    if (!ao || !an) goto done;
    if (arena_max) {
        rc_arena_set_max(ao, arena_max);
        rc_arena_set_max(an, arena_max);
    }
    otlp_export_request *old = NULL, *new = NULL;
    rc_error eo = {{0}}, en = {{0}};
    rc_status so = proto_reference_decode(data, len, ao, &old, &eo);
    rc_status sn = otlp_proto_decode(data, len, an, &new, &en);
    /* Memory use differs by design: running out in one is no verdict. */
    if (so == RC_ENOMEM || sn == RC_ENOMEM) goto done;
    if (so != sn) {
        r = why("status %d (was %d): \"%s\" (was \"%s\")", sn, so, en.msg, eo.msg);
    } else if (so != RC_OK) {
        if (strcmp(eo.msg, en.msg) != 0) r = why("error \"%s\" (was \"%s\")", en.msg, eo.msg);
    } else if (!(r = proto_reference_diff(&old->base, &new->base))) {
        r = proto_reference_encode_diff(new);
    }
done:
    rc_arena_free(ao);
    rc_arena_free(an);
    return r;
}
