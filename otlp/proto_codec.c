/*
 * proto_codec.c - binary OTLP (protobuf) decode and encode.
 *
 * Both directions are driven by one set of field tables, built once from the
 * protobuf-c descriptors of every message reachable from the request: what
 * each field number means (wire types it may arrive with, where it lives in
 * the generated struct, which table describes it when it is a message), and
 * what each one-byte tag means, so that the common tag costs one load. The
 * structs are protobuf-c's own, so the rest of the collector (and
 * protobuf-c's pack, for messages that are not requests) sees no difference.
 *
 * Decoding is one walk over the bytes that checks and builds at once, into
 * the caller's arena. The checks are those every earlier version made, with
 * the same messages: each tag, varint and length; that each declared field
 * arrives with the wire type its declaration allows; nesting, bounded twice:
 * AnyValue containers (ArrayValue, KeyValueList) may nest OTLP_MAX_DEPTH
 * deep, the JSON decoder's rule, and any message path is cut at
 * SCAN_MAX_DEPTH as a schema-independent guard. The walk recurses, never
 * deeper than that bound. The first error in byte order (depth first) is the
 * one reported, naming the field and the offset: a client debugging its
 * exporter deserves more than "failed".
 *
 * What is built is exactly what protobuf_c_message_unpack would build
 * (fuzz/proto_reference.c holds that decoder, and the tests compare the
 * two): every message initialised from its generated initialiser, so
 * base.descriptor is set and unset fields hold their defaults; strings
 * NUL-terminated arena copies, even empty ones; an empty bytes field NULL;
 * repeated fields in arrays of exactly their size, NULL when empty; undeclared
 * fields kept in base.unknown_fields, which the encoder writes back; a
 * singular field given twice takes the last value, and a singular message
 * given twice is merged as protobuf-c merges (merge_messages below); a oneof
 * takes its last member. A message's repeated and unknown fields are counted
 * by a quick pass over its own tags (not its children's) the first time one
 * is met, so that arrays are allocated once, at their size.
 *
 * A string field holding invalid UTF-8 or a NUL does not fail the request:
 * one bad attribute must not cost a whole batch. Its copy replaces each byte
 * outside a well-formed sequence, NUL included, with U+FFFD. So every decoded
 * request holds valid UTF-8 and whole C strings, and what the encoder writes
 * is valid for strict proto3 readers too.
 *
 * Failing is ordered as it always was, when the checks ran over the whole
 * input before protobuf-c unpacked it: a malformed input gets the message of
 * its first error even when the arena ran out earlier in the walk. So when
 * building must stop - the arena refused memory, or the input is one that
 * protobuf-c refused although it passes every check (a tag or length spelled
 * in more than 5 bytes, a KeyValue with two empty values) - the walk starts
 * again over the whole input in check-only mode (no struct, no allocation)
 * to find a first error to report. Only without one is the result RC_ENOMEM,
 * or for such an input RC_EINVAL.
 *
 * Encoding writes back to front, into the spare capacity of the output
 * buffer: a message's fields in reverse, then its length and tag in front of
 * them. Every length is known when it is written, so there is no sizing
 * pass, each string is measured once, and no byte moves but in one final
 * move to where the output belongs. The order and the omissions are
 * protobuf-c's (fields by number, then unknown fields; proto3 zero values
 * left out, oneof members written whenever set): the same struct gives the
 * same bytes as protobuf_c_message_pack, which the tests check.
 */
#include "otlp/otlp.h"

#include "core/bytescan.h"
#include "core/json_writer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Request > ResourceSpans > ScopeSpans > Span > Event > KeyValue > AnyValue
 * is 7 levels; each container adds at most 3 (KeyValueList > KeyValue >
 * AnyValue). The guard sits well above what valid OTLP can reach. */
#define SCAN_MAX_DEPTH (OTLP_MAX_DEPTH * 3 + 16)

/* protobuf-c reads at most this many bytes of a tag or a length prefix and
 * refuses an input that spells one longer (with redundant zero groups). */
#define PROTOBUF_C_MAX_PREFIX 5

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
 * The walk visits every tag of the request, so what it needs to know about a
 * field is packed into one small slot indexed by field number. From the
 * slots, each table also resolves every one-byte tag (field numbers below
 * 16, which is all of OTLP but Span.flags) to what the walk must do with it,
 * wire type check included: the common tag costs one load instead of a
 * varint decode, a slot lookup and a wire check. Longer tags go the long way
 * through the slots, and field numbers from TABLE_FIELDS up (none in OTLP
 * today) through the descriptor. The fields themselves are also listed in
 * descriptor order, which is the order protobuf-c packs them in. */

#define TABLE_FIELDS 32
#define MAX_TABLES 32  /* the request reaches 14 message types */
#define MAX_FIELDS 24  /* Span has 16 */
#define MAX_REPEATED 8 /* Span has 3 */
#define NO_FIELD 0xFF  /* tag_action.field of an undeclared field */

enum slot_kind {
    SLOT_UNKNOWN = 0, /* not declared: kept as an unknown field */
    SLOT_SCALAR,
    SLOT_STRING,
    SLOT_MESSAGE,
};

typedef struct field_slot {
    uint8_t kind;
    uint8_t wires; /* bit w set: wire type w is accepted */
    uint8_t sub;   /* SLOT_MESSAGE: index of the field's message table */
    uint8_t field; /* index in msg_table.fields; NO_FIELD when undeclared */
} field_slot;

/* What the walk does with one occurrence of a field, given its slot and the
 * wire type it arrived with. */
enum scan_op {
    OP_VARINT,
    OP_FIXED64,
    OP_FIXED32,
    OP_OPAQUE,  /* length-delimited bytes or an unknown field */
    OP_STRING,  /* length-delimited string: checked for UTF-8 */
    OP_MESSAGE, /* length-delimited message: walked in turn */
    OP_WRONG_WIRE,
    OP_GROUP,
    OP_INVALID_WIRE,
    OP_NUMBER_ZERO,
};

#define ONE_BYTE_TAGS 128

/* What a tag means in a message: the scan_op, the field's message table
 * (OP_MESSAGE) and the field itself (NO_FIELD when undeclared). */
typedef struct tag_action {
    uint8_t op;
    uint8_t sub;
    uint8_t field;
} tag_action;

/* One declared field, as the builder, the merge and the encoder use it. */
typedef struct field_info {
    uint32_t id;
    uint32_t offset;     /* of the member (the array, for repeated fields) */
    uint32_t quantifier; /* of n_*, the oneof case or has_*; 0 for none */
    uint8_t type;        /* ProtobufCType */
    uint8_t label;       /* ProtobufCLabel */
    bool oneof;
    uint8_t sub; /* PROTOBUF_C_TYPE_MESSAGE: the message's table */
    uint8_t rep; /* repeated fields: index of its count in a fill_state */
    uint8_t tag_len;
    uint8_t tag[PROTOBUF_C_MAX_PREFIX]; /* the field's tag, with its wire type */
    const void *default_value;
} field_info;

typedef struct msg_table {
    const ProtobufCMessageDescriptor *d;
    const ProtobufCMessage *init; /* the generated initialiser's result */
    bool container;               /* ArrayValue or KeyValueList: counts toward OTLP_MAX_DEPTH */
    bool high_fields;             /* some field number is >= TABLE_FIELDS */
    bool one_oneof;               /* every field is a member of one oneof (AnyValue) */
    uint8_t n_fields;
    uint8_t n_repeated;
    field_info fields[MAX_FIELDS];
    field_slot slots[TABLE_FIELDS];
    tag_action one_byte_tags[ONE_BYTE_TAGS];
} msg_table;

static msg_table tables[MAX_TABLES];
static unsigned n_tables;
static const char *schema_problem; /* set when the tables could not be built */
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

/* The bytes one element of a field takes in its struct or array. */
static size_t element_size(uint8_t type)
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
    tag_action a = {
        .op = number == 0 ? OP_NUMBER_ZERO : op_for(s, wire), .sub = s.sub, .field = s.field};
    return a;
}

/* The slot of field f, the index-th of its message. Repeated scalars could
 * also arrive packed; OTLP has none, so the builder does not know how to
 * store them and the tables refuse such a schema (see add_field). */
static field_slot slot_for(const ProtobufCFieldDescriptor *f, unsigned index)
{
    field_slot s = {.kind = SLOT_SCALAR,
                    .wires = (uint8_t)(1u << expected_wire_type(f->type)),
                    .field = (uint8_t)index};
    if (f->type == PROTOBUF_C_TYPE_STRING) s.kind = SLOT_STRING;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        s.kind = SLOT_MESSAGE;
        s.sub = (uint8_t)table_index(f->descriptor);
    }
    return s;
}

/* Writes the varint v at out; returns its length (at most 10). */
static size_t varint_bytes(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static void add_field(msg_table *t, unsigned index)
{
    const ProtobufCFieldDescriptor *f = &t->d->fields[index];
    if (f->label == PROTOBUF_C_LABEL_REPEATED && f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_BYTES && f->type != PROTOBUF_C_TYPE_MESSAGE)
        schema_problem = "a repeated scalar field";
    field_info *fi = &t->fields[index];
    fi->id = f->id;
    fi->offset = f->offset;
    fi->quantifier = f->quantifier_offset;
    fi->type = (uint8_t)f->type;
    fi->label = (uint8_t)f->label;
    fi->oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
    fi->default_value = f->default_value;
    uint8_t tag[10];
    fi->tag_len = (uint8_t)varint_bytes((uint64_t)f->id << 3 | expected_wire_type(f->type), tag);
    if (fi->tag_len > PROTOBUF_C_MAX_PREFIX) schema_problem = "a field number past 2^29";
    memcpy(fi->tag, tag, fi->tag_len <= PROTOBUF_C_MAX_PREFIX ? fi->tag_len : 0);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (t->n_repeated == MAX_REPEATED) schema_problem = "too many repeated fields";
        fi->rep = t->n_repeated++;
    }
    field_slot s = slot_for(f, index); /* may add tables: t stays valid, tables is static */
    fi->sub = s.sub;
    if (f->id < TABLE_FIELDS)
        t->slots[f->id] = s;
    else
        t->high_fields = true;
}

/* The table of d, built (with the tables of every message below it) on
 * first sight; tables are never freed. */
static unsigned table_index(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < n_tables; i++)
        if (tables[i].d == d) return i;
    if (n_tables == MAX_TABLES || d->n_fields > MAX_FIELDS) {
        schema_problem = "more message types or fields than its tables hold";
        return 0;
    }
    unsigned idx = n_tables++;
    msg_table *t = &tables[idx];
    t->d = d;
    t->container = d == &opentelemetry__proto__common__v1__array_value__descriptor ||
                   d == &opentelemetry__proto__common__v1__key_value_list__descriptor;
    ProtobufCMessage *init = calloc(1, d->sizeof_message);
    if (!init) {
        schema_problem = "no memory for its tables";
        return 0;
    }
    d->message_init(init);
    t->init = init;
    t->n_fields = (uint8_t)d->n_fields;
    for (unsigned tag = 0; tag < TABLE_FIELDS; tag++)
        t->slots[tag].field = NO_FIELD;
    for (unsigned i = 0; i < d->n_fields; i++)
        add_field(t, i);
    t->one_oneof = d->n_fields > 0;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (!t->fields[i].oneof || t->fields[i].quantifier != t->fields[0].quantifier)
            t->one_oneof = false;
    for (unsigned tag = 0; tag < ONE_BYTE_TAGS; tag++)
        t->one_byte_tags[tag] = action_for(t->slots[tag >> 3], tag >> 3, (int)(tag & 7));
    return idx;
}

static void build_tables(void)
{
    table_index(
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor);
}

static field_slot slot_of(const msg_table *t, uint64_t number)
{
    if (number < TABLE_FIELDS) return t->slots[number];
    field_slot none = {.field = NO_FIELD};
    if (!t->high_fields) return none;
    const ProtobufCFieldDescriptor *f = find_field(t->d, number);
    return f ? slot_for(f, (unsigned)(f - t->d->fields)) : none;
}

/* The declared field numbered id, or NULL. */
static const field_info *field_by_id(const msg_table *t, uint64_t id)
{
    field_slot s = slot_of(t, id);
    return s.field == NO_FIELD ? NULL : &t->fields[s.field];
}

/* --- reading ---------------------------------------------------------------- */

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

/* The end of the value of wire type `wire` at p, or NULL when it is
 * malformed (for the counting pass, which only needs to skip). */
static const uint8_t *skip_value(const uint8_t *p, const uint8_t *end, int wire)
{
    uint64_t v;
    switch (wire) {
    case WIRE_VARINT:
        return read_varint(p, end, &v);
    case WIRE_FIXED64:
        return end - p >= 8 ? p + 8 : NULL;
    case WIRE_FIXED32:
        return end - p >= 4 ? p + 4 : NULL;
    case WIRE_LEN:
        p = read_varint(p, end, &v);
        return p && v <= (uint64_t)(end - p) ? p + v : NULL;
    default:
        return NULL;
    }
}

/* --- the walk's state ---------------------------------------------------------- */

typedef struct decode_ctx {
    const uint8_t *base; /* start of the request, for offsets in messages */
    rc_arena *arena;     /* NULL in check-only mode */
    rc_error *err;
    bool gave_up;       /* building stopped: out of memory or refused (below) */
    bool out_of_memory; /* the arena refused an allocation */
    bool refused;       /* the input spells a tag or length in more than 5 bytes */
} decode_ctx;

/* The arrays of one message being filled: each repeated field's and the
 * unknown fields' counted size, once counted. */
typedef struct fill_state {
    bool counted;
    size_t cap[MAX_REPEATED];
    size_t unknown_cap;
} fill_state;

/* One message being walked: m is NULL in check-only mode. */
typedef struct frame {
    const msg_table *t;
    ProtobufCMessage *m;
    const uint8_t *start, *end;
    unsigned depth, containers;
    fill_state fs;
} frame;

static inline void *member_at(ProtobufCMessage *m, uint32_t offset)
{
    return (char *)m + offset;
}

/* Building cannot go on; the caller starts over in check-only mode to find
 * what to report (see the top of the file). */
static rc_status give_up(decode_ctx *c)
{
    c->gave_up = true;
    return RC_ENOMEM;
}

static rc_status out_of_memory(decode_ctx *c)
{
    c->out_of_memory = true;
    return give_up(c);
}

/* A tag or length longer than protobuf-c reads: building gives up, checking
 * notes it and goes on. */
static rc_status refuse(decode_ctx *c)
{
    c->refused = true;
    return c->arena ? give_up(c) : RC_OK;
}

/* Fails the walk with a message naming the field ("field
 * opentelemetry.proto.trace.v1.Span.trace_id", or "field 17 of
 * opentelemetry.proto.trace.v1.Span" when undeclared) and the offset. */
static rc_status scan_fail(decode_ctx *c, const msg_table *t, uint64_t number, const uint8_t *at,
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

static rc_status scan_wrong_wire(decode_ctx *c, const msg_table *t, uint64_t number, int wire,
                                 const uint8_t *at)
{
    char what[64];
    snprintf(what, sizeof what, "wrong wire type %d (expected %d)", wire,
             expected_wire_type(find_field(t->d, number)->type));
    return scan_fail(c, t, number, at, what);
}

/* --- building ------------------------------------------------------------------ */

static ProtobufCMessage *new_message(decode_ctx *c, const msg_table *t)
{
    ProtobufCMessage *m = rc_arena_alloc(c->arena, t->d->sizeof_message);
    if (m) memcpy(m, t->init, t->d->sizeof_message);
    return m;
}

/* Copies p[0..n) with each byte outside a well-formed UTF-8 sequence, NUL
 * included, replaced by U+FFFD. */
static char *repaired_copy(rc_arena *arena, const uint8_t *p, size_t n)
{
    char *fixed = rc_arena_alloc(arena, n * 3 + 1);
    if (!fixed) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] == 0 ? 0 : p[i] < 0x80 ? 1 : rc_utf8_seq_len(p + i, n - i);
        if (len == 0) {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, p + i, len);
            o += len;
            i += len;
        }
    }
    fixed[o] = '\0';
    return fixed;
}

static char *string_copy(decode_ctx *c, const uint8_t *p, size_t n)
{
    if (!clean_string(p, n)) return repaired_copy(c->arena, p, n);
    char *s = rc_arena_alloc(c->arena, n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Counts the repeated and unknown fields of fr's message and allocates
 * their arrays. The count stops quietly at the first malformed tag or value:
 * the walk stops there too, with the error, so no array is outgrown. */
static rc_status count_fields(decode_ctx *c, frame *fr)
{
    const msg_table *t = fr->t;
    size_t *cap = fr->fs.cap;
    memset(cap, 0, t->n_repeated * sizeof *cap);
    fr->fs.unknown_cap = 0;
    for (const uint8_t *p = fr->start; p < fr->end;) {
        uint64_t tag;
        if (*p < 0x80)
            tag = *p++;
        else if (!(p = read_varint(p, fr->end, &tag)) || tag > UINT32_MAX)
            break;
        field_slot s = slot_of(t, tag >> 3);
        if (s.field == NO_FIELD)
            fr->fs.unknown_cap++;
        else if (t->fields[s.field].label == PROTOBUF_C_LABEL_REPEATED)
            cap[t->fields[s.field].rep]++;
        p = skip_value(p, fr->end, (int)(tag & 7));
        if (!p) break;
    }
    fr->fs.counted = true;
    for (unsigned i = 0; i < t->n_fields; i++) {
        const field_info *f = &t->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED || cap[f->rep] == 0) continue;
        void *array = rc_arena_alloc(c->arena, cap[f->rep] * element_size(f->type));
        if (!array) return out_of_memory(c);
        *(void **)member_at(fr->m, f->offset) = array;
    }
    if (fr->fs.unknown_cap) {
        fr->m->unknown_fields =
            rc_arena_alloc(c->arena, fr->fs.unknown_cap * sizeof(ProtobufCMessageUnknownField));
        if (!fr->m->unknown_fields) return out_of_memory(c);
    }
    return RC_OK;
}

/* The next element of repeated field f, counting it. */
static void *next_element(decode_ctx *c, frame *fr, const field_info *f)
{
    if (!fr->fs.counted && count_fields(c, fr) != RC_OK) return NULL;
    size_t *n = member_at(fr->m, f->quantifier);
    if (*n == fr->fs.cap[f->rep]) { /* the count disagrees with the walk: a bug */
        give_up(c);
        return NULL;
    }
    return *(char **)member_at(fr->m, f->offset) + element_size(f->type) * (*n)++;
}

/* Where a value of singular field f goes. A oneof forgets its previous
 * member first, as protobuf-c does (parse_oneof_member), so that a message
 * member is replaced rather than merged. */
static void *singular_member(const frame *fr, const field_info *f)
{
    void *where = member_at(fr->m, f->offset);
    if (f->oneof) {
        uint32_t *which = member_at(fr->m, f->quantifier);
        const field_info *old = *which ? field_by_id(fr->t, *which) : NULL;
        if (old) memset(where, 0, element_size(old->type));
        *which = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier) {
        *(protobuf_c_boolean *)member_at(fr->m, f->quantifier) = 1;
    }
    return where;
}

/* The slot a value of field f is stored in: an array element or the
 * member. NULL when out of memory. */
static inline void *value_slot(decode_ctx *c, frame *fr, const field_info *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return next_element(c, fr, f);
    if (!f->oneof && f->label == PROTOBUF_C_LABEL_NONE) return member_at(fr->m, f->offset);
    return singular_member(fr, f);
}

static void store_varint(void *where, uint8_t type, uint64_t v, const uint8_t *raw,
                         const uint8_t *raw_end)
{
    switch (type) {
    case PROTOBUF_C_TYPE_SINT32: {
        uint32_t u = (uint32_t)v;
        *(int32_t *)where = (int32_t)((u >> 1) ^ (~(u & 1) + 1));
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        *(uint64_t *)where = v;
        break;
    case PROTOBUF_C_TYPE_SINT64:
        *(int64_t *)where = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
        break;
    case PROTOBUF_C_TYPE_BOOL: {
        /* protobuf-c's parse_boolean looks at every group of the varint,
         * including bits a 10-byte varint carries past 64. */
        protobuf_c_boolean b = 0;
        for (const uint8_t *q = raw; q < raw_end; q++)
            b |= (*q & 0x7F) != 0;
        *(protobuf_c_boolean *)where = b;
        break;
    }
    default: /* int32, uint32, enum: the low 32 bits */
        *(uint32_t *)where = (uint32_t)v;
        break;
    }
}

static rc_status store_unknown(decode_ctx *c, frame *fr, uint64_t number, int wire,
                               const uint8_t *value, const uint8_t *value_end)
{
    if (!fr->fs.counted && count_fields(c, fr) != RC_OK) return RC_ENOMEM;
    ProtobufCMessage *m = fr->m;
    if (m->n_unknown_fields == fr->fs.unknown_cap) return give_up(c); /* a bug, as above */
    size_t len = (size_t)(value_end - value);
    ProtobufCMessageUnknownField *u = &m->unknown_fields[m->n_unknown_fields++];
    u->tag = (uint32_t)number;
    u->wire_type = (ProtobufCWireType)wire;
    u->len = len;
    u->data = rc_arena_alloc(c->arena, len);
    if (!u->data) return out_of_memory(c);
    memcpy(u->data, value, len);
    return RC_OK;
}

/* A scalar of wire type VARINT, FIXED32 or FIXED64 at [value, value_end). */
static rc_status store_scalar(decode_ctx *c, frame *fr, tag_action a, uint64_t number, int wire,
                              uint64_t v, const uint8_t *value, const uint8_t *value_end)
{
    if (a.field == NO_FIELD) return store_unknown(c, fr, number, wire, value, value_end);
    const field_info *f = &fr->t->fields[a.field];
    void *where = value_slot(c, fr, f);
    if (!where) return RC_ENOMEM;
    if (wire == WIRE_VARINT)
        store_varint(where, f->type, v, value, value_end);
    else
        memcpy(where, value, (size_t)(value_end - value));
    return RC_OK;
}

static rc_status store_text(decode_ctx *c, frame *fr, const field_info *f, const uint8_t *p,
                            size_t len)
{
    void *where = value_slot(c, fr, f);
    if (!where) return RC_ENOMEM;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char *s = string_copy(c, p, len);
        if (!s) return out_of_memory(c);
        *(char **)where = s;
        return RC_OK;
    }
    ProtobufCBinaryData *bd = where; /* protobuf-c leaves empty bytes NULL */
    bd->len = len;
    bd->data = NULL;
    if (len == 0) return RC_OK;
    bd->data = rc_arena_alloc(c->arena, len);
    if (!bd->data) return out_of_memory(c);
    memcpy(bd->data, p, len);
    return RC_OK;
}

/* --- merging a singular message given twice ----------------------------------
 *
 * protobuf-c's merge_messages, field for field, so that such input decodes as
 * it always did: `latter` (the message just decoded) takes from `earlier`
 * what it lacks. Repeated fields are concatenated, earlier first; a
 * submessage present in both is merged in turn; a string or bytes field is
 * taken when the latter's is unset (an explicit empty string counts as set,
 * empty bytes do not); a oneof is taken whole when the latter has none.
 * Plain proto3 scalars have no has_ flag and are never taken: the latter's
 * value stands, even zero. A oneof unset in both (KeyValue.value given
 * twice, both empty) makes protobuf-c look up the field of case 0, which
 * it reads from before its field array; with our generated code that read
 * ends in a refused input, so such input is refused here too. */

static rc_status merge_messages(decode_ctx *c, const msg_table *t, ProtobufCMessage *earlier,
                                ProtobufCMessage *latter);

static rc_status merge_repeated(decode_ctx *c, const field_info *f, ProtobufCMessage *earlier,
                                ProtobufCMessage *latter)
{
    size_t *n_e = member_at(earlier, f->quantifier), *n_l = member_at(latter, f->quantifier);
    char **p_e = member_at(earlier, f->offset), **p_l = member_at(latter, f->offset);
    if (*n_e == 0) return RC_OK;
    if (*n_l > 0) {
        size_t el = element_size(f->type);
        char *both = rc_arena_alloc(c->arena, (*n_e + *n_l) * el);
        if (!both) return out_of_memory(c);
        memcpy(both, *p_e, *n_e * el);
        memcpy(both + *n_e * el, *p_l, *n_l * el);
        *p_l = both;
        *n_l += *n_e;
    } else {
        *p_l = *p_e;
        *n_l = *n_e;
    }
    *n_e = 0;
    *p_e = NULL;
    return RC_OK;
}

/* Whether latter lacks singular field f and should take earlier's; merges
 * submessages present in both, setting *st when that fails. */
static bool should_take(decode_ctx *c, const field_info *f, const uint32_t *e_case,
                        const uint32_t *l_case, void *e_elem, void *l_elem, rc_status *st)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *em = *(ProtobufCMessage **)e_elem, *lm = *(ProtobufCMessage **)l_elem;
        if (!em) return false;
        if (!lm) return true;
        *st = merge_messages(c, &tables[f->sub], em, lm);
        return false;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const uint8_t *e = ((ProtobufCBinaryData *)e_elem)->data;
        const uint8_t *l = ((ProtobufCBinaryData *)l_elem)->data;
        const ProtobufCBinaryData *d = f->default_value;
        return (e && (!d || e != d->data)) && (!l || (d && l == d->data));
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *e = *(char **)e_elem, *l = *(char **)l_elem;
        return e != f->default_value && l == f->default_value;
    }
    default:
        /* protobuf-c tests the has_ flag or case here; without one (plain
         * proto3) it reads the descriptor pointers at offset 0, equal and
         * non-zero in both, and takes nothing. */
        return f->quantifier && *e_case != 0 && *l_case == 0;
    }
}

static rc_status merge_messages(decode_ctx *c, const msg_table *t, ProtobufCMessage *earlier,
                                ProtobufCMessage *latter)
{
    for (unsigned i = 0; i < t->n_fields; i++) {
        const field_info *f = &t->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            rc_status st = merge_repeated(c, f, earlier, latter);
            if (st != RC_OK) return st;
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REQUIRED) continue;
        uint32_t *e_case = member_at(earlier, f->quantifier);
        uint32_t *l_case = member_at(latter, f->quantifier);
        if (f->oneof) {
            if (*l_case != 0) continue;
            f = field_by_id(t, *e_case);
            if (!f) return give_up(c); /* see above */
        }
        void *e_elem = member_at(earlier, f->offset), *l_elem = member_at(latter, f->offset);
        rc_status st = RC_OK;
        bool take = should_take(c, f, e_case, l_case, e_elem, l_elem, &st);
        if (st != RC_OK) return st;
        if (!take) continue;
        size_t el = element_size(f->type);
        memcpy(l_elem, e_elem, el);
        memset(e_elem, 0, el);
        if (f->quantifier) {
            *l_case = *e_case;
            *e_case = 0;
        }
    }
    return RC_OK;
}

/* --- the walk -------------------------------------------------------------------- */

static rc_status walk_message(decode_ctx *c, const msg_table *t, ProtobufCMessage *m,
                              const uint8_t *p, const uint8_t *end, unsigned depth,
                              unsigned containers);

/* A message field's value at [p, p + len), walked after the nesting
 * checks and, when building, stored (appended, replacing a oneof member or
 * merged into an earlier occurrence). */
static rc_status walk_submessage(decode_ctx *c, frame *fr, tag_action a, const uint8_t *p,
                                 size_t len)
{
    const msg_table *sub = &tables[a.sub];
    unsigned containers = fr->containers;
    if (sub->container && ++containers > OTLP_MAX_DEPTH) {
        rc_error_set(c->err,
                     "invalid protobuf: AnyValue arrays/kvlists nested deeper than %d "
                     "at offset %zu",
                     OTLP_MAX_DEPTH, (size_t)(p - c->base));
        return RC_EINVAL;
    }
    if (fr->depth + 1 > SCAN_MAX_DEPTH) {
        rc_error_set(c->err, "invalid protobuf: messages nested deeper than %d at offset %zu",
                     SCAN_MAX_DEPTH, (size_t)(p - c->base));
        return RC_EINVAL;
    }
    if (!fr->m) return walk_message(c, sub, NULL, p, p + len, fr->depth + 1, containers);

    ProtobufCMessage *msg = new_message(c, sub);
    if (!msg) return out_of_memory(c);
    rc_status st = walk_message(c, sub, msg, p, p + len, fr->depth + 1, containers);
    if (st != RC_OK) return st;
    const field_info *f = &fr->t->fields[a.field];
    ProtobufCMessage **where = value_slot(c, fr, f);
    if (!where) return RC_ENOMEM;
    if (!f->oneof && f->label != PROTOBUF_C_LABEL_REPEATED && *where &&
        *where != f->default_value) {
        st = merge_messages(c, sub, *where, msg);
        if (st != RC_OK) return st;
    }
    *where = msg;
    return RC_OK;
}

/* Checks one length-delimited value (OP_OPAQUE, OP_STRING or OP_MESSAGE)
 * whose length varint starts at *pp, and stores it when building. */
static rc_status walk_len(decode_ctx *c, frame *fr, uint64_t number, tag_action a,
                          const uint8_t **pp)
{
    const uint8_t *at = *pp;
    uint64_t len;
    const uint8_t *p = read_varint(at, fr->end, &len);
    if (!p) return scan_fail(c, fr->t, number, at, "truncated length");
    if (len > (uint64_t)(fr->end - p)) {
        char what[96];
        snprintf(what, sizeof what, "length %llu past end of message", (unsigned long long)len);
        return scan_fail(c, fr->t, number, at, what);
    }
    *pp = p + len;
    if (p - at > PROTOBUF_C_MAX_PREFIX && refuse(c) != RC_OK) return RC_ENOMEM;
    if (a.op == OP_MESSAGE) return walk_submessage(c, fr, a, p, (size_t)len);
    if (!fr->m) return RC_OK;
    if (a.field == NO_FIELD) return store_unknown(c, fr, number, WIRE_LEN, at, p + len);
    return store_text(c, fr, &fr->t->fields[a.field], p, (size_t)len);
}

/* Decodes a tag of more than one byte at *pp: its field number and what to
 * do with it. Only field numbers from 16 up need one (Span.flags), so this
 * is also the path of unknown fields and of malformed input. */
static rc_status read_long_tag(decode_ctx *c, const msg_table *t, const uint8_t **pp,
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
    if (p - tag_at > PROTOBUF_C_MAX_PREFIX && a->op != OP_NUMBER_ZERO) return refuse(c);
    return RC_OK;
}

/* One scalar: checks it is whole and, when building, stores it. */
static rc_status walk_scalar(decode_ctx *c, frame *fr, uint64_t number, tag_action a,
                             const uint8_t **pp)
{
    const uint8_t *p = *pp, *next;
    uint64_t v = 0;
    int wire;
    switch (a.op) {
    case OP_VARINT:
        next = read_varint(p, fr->end, &v);
        if (!next) return scan_fail(c, fr->t, number, p, "malformed varint");
        wire = WIRE_VARINT;
        break;
    case OP_FIXED64:
        if (fr->end - p < 8) return scan_fail(c, fr->t, number, p, "truncated fixed64");
        next = p + 8;
        wire = WIRE_FIXED64;
        break;
    default:
        if (fr->end - p < 4) return scan_fail(c, fr->t, number, p, "truncated fixed32");
        next = p + 4;
        wire = WIRE_FIXED32;
        break;
    }
    *pp = next;
    if (!fr->m) return RC_OK;
    return store_scalar(c, fr, a, number, wire, v, p, next);
}

/* Checks that [p, end) is a well-formed encoding of t's message and, unless
 * m is NULL (check-only mode), fills m, an initialised message, from it. */
static rc_status walk_message(decode_ctx *c, const msg_table *t, ProtobufCMessage *m,
                              const uint8_t *p, const uint8_t *end, unsigned depth,
                              unsigned containers)
{
    frame fr; /* not zeroed whole: its counts are written when counted */
    fr.t = t;
    fr.m = m;
    fr.start = p;
    fr.end = end;
    fr.depth = depth;
    fr.containers = containers;
    fr.fs.counted = false;
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
        rc_status st;
        switch (a.op) {
        case OP_VARINT:
        case OP_FIXED64:
        case OP_FIXED32:
            st = walk_scalar(c, &fr, number, a, &p);
            break;
        case OP_OPAQUE:
        case OP_STRING:
        case OP_MESSAGE:
            st = walk_len(c, &fr, number, a, &p);
            break;
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
        if (st != RC_OK) return st;
    }
    return RC_OK;
}

/* What to report once building gave up: the first error of a check-only
 * walk over the whole input, else why building stopped. */
static rc_status failure_after_giving_up(const decode_ctx *built, const uint8_t *data, size_t len,
                                         rc_arena *arena, rc_error *err)
{
    decode_ctx check = {.base = data, .err = err};
    rc_status st = walk_message(&check, &tables[0], NULL, data, data + len, 1, 0);
    if (st != RC_OK) return st;
    /* As protobuf-c's unpack failing was told apart: by the arena's word. */
    if (!check.refused && built->out_of_memory && rc_arena_exhausted(arena)) {
        rc_error_set(err, "memory limit reached while decoding a %zu-byte protobuf request", len);
        return RC_ENOMEM;
    }
    rc_error_set(err, "invalid protobuf: ExportTraceServiceRequest could not be decoded");
    return RC_EINVAL;
}

rc_status otlp_proto_decode(const uint8_t *data, size_t len, rc_arena *arena,
                            otlp_export_request **out, rc_error *err)
{
    static const uint8_t empty[1];
    if (len == 0) data = empty; /* offsets are taken from a real pointer */

    pthread_once(&tables_once, build_tables);
    if (schema_problem) { /* a schema change outgrew the tables: fix them */
        rc_error_set(err, "protobuf decoder: the schema has %s", schema_problem);
        return RC_EINVAL;
    }
    decode_ctx c = {.base = data, .arena = arena, .err = err};
    ProtobufCMessage *req = new_message(&c, &tables[0]);
    rc_status st =
        req ? walk_message(&c, &tables[0], req, data, data + len, 1, 0) : out_of_memory(&c);
    if (st == RC_OK) {
        *out = (otlp_export_request *)req;
        return RC_OK;
    }
    if (!c.gave_up) return st;
    return failure_after_giving_up(&c, data, len, arena, err);
}

/* --- encoding ---------------------------------------------------------------------
 *
 * The encoding grows downward from the end of out's capacity: [pos, top) is
 * what is written so far and [floor, pos) the free room, where top is
 * out->data + out->cap and floor out->data + out->len. Growing moves what
 * is written to the new top, so a position is kept as its distance from
 * the top. */

typedef struct back_writer {
    rc_buf *out;
    uint8_t *floor, *pos, *top;
    bool failed;
} back_writer;

/* Grows out (keeping what is written at the end of its capacity) until
 * there is room for n more bytes. */
__attribute__((noinline)) static bool grow(back_writer *w, size_t n)
{
    rc_buf *b = w->out;
    size_t written = (size_t)(w->top - w->pos);
    size_t room = (size_t)(w->pos - w->floor);
    if (w->failed || !rc_buf_reserve(b, written + (room + n) * 2)) {
        w->failed = true;
        return false;
    }
    w->floor = (uint8_t *)b->data + b->len;
    w->top = (uint8_t *)b->data + b->cap;
    /* realloc kept the bytes at their old offset: move them to the new top */
    memmove(w->top - written, w->floor + room, written);
    w->pos = w->top - written;
    return true;
}

static inline bool room(back_writer *w, size_t n)
{
    if ((size_t)(w->pos - w->floor) >= n) return true;
    return grow(w, n);
}

static inline void put_bytes(back_writer *w, const void *p, size_t n)
{
    if (!room(w, n)) return;
    w->pos -= n;
    if (n) memcpy(w->pos, p, n);
}

static inline void put_varint(back_writer *w, uint64_t v)
{
    if (v < 0x80 && room(w, 1)) {
        *--w->pos = (uint8_t)v;
        return;
    }
    uint8_t tmp[10];
    put_bytes(w, tmp, varint_bytes(v, tmp));
}

static inline void put_tag(back_writer *w, const field_info *f)
{
    if (f->tag_len == 1 && room(w, 1)) { /* every field of OTLP but Span.flags */
        *--w->pos = f->tag[0];
        return;
    }
    put_bytes(w, f->tag, f->tag_len);
}

static void put_message(back_writer *w, const msg_table *t, const ProtobufCMessage *m);

/* A length-delimited message with its length prefix (protobuf-c writes a
 * NULL one as empty). */
static void put_submessage(back_writer *w, const field_info *f, const ProtobufCMessage *m)
{
    size_t below = (size_t)(w->top - w->pos);
    if (m) put_message(w, &tables[f->sub], m);
    if (w->failed) return;
    put_varint(w, (uint64_t)(w->top - w->pos) - below);
}

/* One value of field f (not its tag), as protobuf-c's required_field_pack
 * writes it. */
static void put_value(back_writer *w, const field_info *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_SINT32: {
        int32_t x = *(const int32_t *)v;
        put_varint(w, x < 0 ? (-(uint32_t)x) * 2 - 1 : (uint32_t)x * 2);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_INT32: /* negative values take 10 bytes, as int64 */
        put_varint(w, (uint64_t)(int64_t) * (const int32_t *)v);
        break;
    case PROTOBUF_C_TYPE_UINT32:
        put_varint(w, *(const uint32_t *)v);
        break;
    case PROTOBUF_C_TYPE_SINT64: {
        int64_t x = *(const int64_t *)v;
        put_varint(w, x < 0 ? (-(uint64_t)x) * 2 - 1 : (uint64_t)x * 2);
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        put_varint(w, *(const uint64_t *)v);
        break;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        put_bytes(w, v, 4);
        break;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        put_bytes(w, v, 8);
        break;
    case PROTOBUF_C_TYPE_BOOL: {
        uint8_t b = *(const protobuf_c_boolean *)v ? 1 : 0;
        put_bytes(w, &b, 1);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)v;
        size_t n = s ? strlen(s) : 0;
        put_bytes(w, s, n);
        put_varint(w, (uint32_t)n);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = v;
        put_bytes(w, bd->data, bd->len);
        put_varint(w, (uint32_t)bd->len);
        break;
    }
    default:
        put_submessage(w, f, *(ProtobufCMessage *const *)v);
        break;
    }
}

/* protobuf-c's field_is_zeroish: the proto3 values a plain field leaves out.
 * A bytes field is tested by its first word, which is its length. */
static bool zeroish(const field_info *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)v == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)v == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)v == 0;
    case PROTOBUF_C_TYPE_STRING:
        return !*(char *const *)v || !**(char *const *)v;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)v)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return !*(const void *const *)v;
    default:
        return element_size(f->type) == 8 ? *(const uint64_t *)v == 0 : *(const uint32_t *)v == 0;
    }
}

/* Whether singular field f of m is written at all, as protobuf-c decides. */
static bool present(const field_info *f, const ProtobufCMessage *m, const void *v)
{
    const void *q = (const char *)m + f->quantifier;
    bool pointer = f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING;
    if (f->oneof) {
        if (*(const uint32_t *)q != f->id) return false;
        return !pointer || (*(const void *const *)v && *(const void *const *)v != f->default_value);
    }
    switch (f->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return true;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (pointer) return *(const void *const *)v && *(const void *const *)v != f->default_value;
        return *(const protobuf_c_boolean *)q;
    default:
        return !zeroish(f, v);
    }
}

static void put_field(back_writer *w, const field_info *f, const ProtobufCMessage *m)
{
    const char *v = (const char *)m + f->offset;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        if (!present(f, m, v)) return;
        put_value(w, f, v);
        put_tag(w, f);
        return;
    }
    size_t n = *(const size_t *)((const char *)m + f->quantifier);
    const char *array = *(char *const *)v;
    size_t el = element_size(f->type);
    for (size_t i = n; i-- > 0 && !w->failed;) {
        /* Written last first, the structs are read against the order they
         * were allocated in, which hardware prefetchers follow poorly: ask
         * for the next one (its start, where its first strings sit too). */
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && i > 0) {
            const char *next = ((char *const *)array)[i - 1];
            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
        }
        put_value(w, f, array + i * el);
        put_tag(w, f);
    }
}

static void put_unknown(back_writer *w, const ProtobufCMessageUnknownField *u)
{
    put_bytes(w, u->data, u->len);
    uint8_t tag[10];
    size_t n = varint_bytes((uint64_t)u->tag << 3, tag);
    tag[0] |= (uint8_t)u->wire_type;
    put_bytes(w, tag, n);
}

/* Writes m's fields, last first, so that they read in protobuf-c's order:
 * declared fields by number, then unknown fields. */
static void put_message(back_writer *w, const msg_table *t, const ProtobufCMessage *m)
{
    for (size_t i = m->n_unknown_fields; i-- > 0;)
        put_unknown(w, &m->unknown_fields[i]);
    if (t->one_oneof) { /* only the member its case names can be written */
        uint32_t which = *(const uint32_t *)((const char *)m + t->fields[0].quantifier);
        const field_info *f = field_by_id(t, which);
        if (f) put_field(w, f, m);
        return;
    }
    for (unsigned i = t->n_fields; i-- > 0 && !w->failed;)
        put_field(w, &t->fields[i], m);
}

void otlp_proto_encode(const otlp_export_request *req, rc_buf *out)
{
    pthread_once(&tables_once, build_tables);
    if (schema_problem) { /* only a schema change gets here; protobuf-c can still pack */
        otlp_pack_message(&req->base, out);
        return;
    }
    if (out->failed) return;
    if (out->cap - out->len < 256 && !rc_buf_reserve(out, 256)) return;
    back_writer w = {.out = out,
                     .floor = (uint8_t *)out->data + out->len,
                     .top = (uint8_t *)out->data + out->cap};
    w.pos = w.top;
    put_message(&w, &tables[0], &req->base);
    if (w.failed) return;
    size_t n = (size_t)(w.top - w.pos);
    memmove(w.floor, w.pos, n);
    out->len += n;
}
