/*
 * json_decode.c - OTLP/JSON to the protobuf-c structs of the pipeline, in one
 * pass over the body and straight into the request's arena.
 *
 * OTLP/HTTP JSON is what browser and many serverless SDKs send, so it must
 * cost about what protobuf costs: no parse tree, no per-value malloc, and no
 * memory beyond the arena the decoded request lives in (which the memory
 * limiter charges like any other). The decoder is a recursive-descent parser
 * directed by the protobuf-c descriptors: at each object it knows which
 * message it is reading, looks each key up among that message's fields and
 * reads the value as that field's type, writing it in place. Keys it does
 * not know are skipped with a syntax-only scanner. One generic walker serves
 * every message, so a field added to the protos is decoded without code
 * here. The language it accepts is docs/otlp-json.md's:
 *   - keys in lowerCamelCase or as the original proto names (a key names
 *     the field whose proto name it is once each capital becomes '_' and
 *     the small letter); unknown keys are ignored; null means the field is
 *     absent;
 *   - trace_id, span_id and parent_span_id are hex (either case); other
 *     bytes are base64, standard or URL-safe, padding optional;
 *   - 64-bit integers as numbers or decimal strings; 32-bit ones likewise;
 *   - enums as integers or by value name ("SPAN_KIND_SERVER");
 *   - doubles as numbers, numeric strings, or "NaN", "Infinity", "-Infinity".
 * A known key holding the wrong JSON type is an error naming its path, e.g.
 * "resourceSpans[0].scopeSpans[1].spans[3].kind: expected an integer"; a
 * syntax error names its line and column.
 *
 * The decoder replaced one that built a jansson tree first (kept as
 * fuzz/json_reference.c, which fuzz_json_diff holds this one to, input by
 * input). Everything that decoder accepted, and how, is kept, including
 * what followed from the tree:
 *   - the whole body is checked before any schema error is final, so a
 *     syntax error anywhere wins over a schema error, as it did;
 *   - a key repeated in one object counts once, at its first place, with
 *     its last value (jansson's object semantics). Each object therefore
 *     keeps a small table of the known keys it has seen and of the value
 *     each last held; the usual object, with no key twice and no error,
 *     has its values written as they are read, and only an irregular one
 *     is rebuilt from that table when it closes. A field's error is kept
 *     in the table too, so a later value of the same key can replace it;
 *   - values nest at most 2048 deep (jansson's limit), integer literals
 *     beyond int64 are read as doubles (Go writes doubles up to 1e21 in
 *     plain digits), a literal beyond the double range is a syntax error;
 *   - invalid UTF-8 bytes and escaped lone UTF-16 surrogates become U+FFFD,
 *     a NUL in a key is an error, and a "\u0000" in a string value becomes
 *     U+FFFD (strings are C strings), while a numeric or enum string is
 *     read as a C string, up to such a NUL;
 *   - two accidents of jansson and of the old decoder's rewrites, kept so
 *     that no body changes verdict: one raw NUL byte right after a number
 *     or literal is ignored, and one right after an integer beyond int64
 *     is an error.
 * The one difference on purpose: the old decoder refused an integer beyond
 * int64 that came before a lone surrogate (it repaired only the first of
 * the two it met); this one accepts it, as the old one did each alone.
 *
 * Invariants of what comes out: every message is allocated in the arena and
 * initialised by protobuf_c_message_init, so it packs with protobuf-c like
 * an unpacked one. Empty strings point at protobuf_c_empty_string, except
 * the members of a oneof: protobuf-c does not pack a oneof string equal to
 * the field default, so an explicit {"stringValue":""} gets its own "" to
 * survive a protobuf round trip. AnyValue arrays/kvlists nest at most
 * OTLP_MAX_DEPTH deep, the same bound the protobuf decoder applies.
 *
 * Every function that reads a value leaves the cursor after that value on
 * success and on a schema error alike (only a syntax error or an arena
 * refusal stops the pass), which is what lets an object carry on past a
 * failed field.
 */
#include "otlp/otlp.h"

#include "core/bytescan.h"
#include "core/json_writer.h"
#include "core/memlimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages nest 7 deep down to an attribute value; each AnyValue container
 * adds at most 3. The path stack is sized for the deepest accepted input. */
#define DECODE_MAX_DEPTH (OTLP_MAX_DEPTH * 3 + 16)
/* jansson's JSON_PARSER_MAX_DEPTH: a value inside 2048 containers is refused. */
#define JSON_MAX_NESTING 2048
/* Longer keys name no field (the longest OTLP field name is far shorter). */
#define KEY_MAX 62

typedef struct path_seg {
    const char *key;
    size_t key_len;
    long index; /* -1: not an array element */
} path_seg;

/* One field value as read, before it is written into its message: a
 * repeated field's count and elements, or a singular field's storage (at
 * most a ProtobufCBinaryData). */
typedef union field_value {
    struct {
        size_t n;
        void *elems;
    } rep;
    ProtobufCBinaryData bytes;
    uint64_t u64;
    char *str;
    void *msg;
} field_value;

enum { MEMBER_SET, MEMBER_NULL, MEMBER_FAILED };

/* A known key seen in the object being read, with what it last held. */
typedef struct member {
    const ProtobufCFieldDescriptor *f;
    const char *key; /* the key's text, unescaped (stable: body or arena) */
    size_t key_len;
    int state;
    field_value value;
    char *error; /* MEMBER_FAILED: the message, in the arena */
} member;

typedef struct dec {
    const unsigned char *start, *p, *end;
    rc_arena *arena;
    rc_error *err;
    bool syntax_failed; /* or out of memory: the pass stops */
    int nesting;        /* containers open around the cursor */
    int containers;     /* arrayValue/kvlistValue open */
    int depth;
    path_seg path[DECODE_MAX_DEPTH + 1];
    member *members; /* a stack: each open object owns its top part */
    size_t n_members, cap_members;
    member first_members[128]; /* enough for any request without odd keys */
} dec;

/* --- errors --------------------------------------------------------------- */

static void format_path(const dec *d, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < d->depth && len < n; i++) {
        const path_seg *s = &d->path[i];
        int w = snprintf(out + len, n - len, "%s%.*s", i ? "." : "", (int)s->key_len, s->key);
        if (w < 0) break;
        len += (size_t)w;
        if (s->index >= 0 && len < n) {
            w = snprintf(out + len, n - len, "[%ld]", s->index);
            if (w < 0) break;
            len += (size_t)w;
        }
    }
}

/* A schema error: the value read is valid JSON but not what the field is. */
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

/* A syntax error at `at`: final, whatever else the body holds. */
static rc_status syntax_error(dec *d, const unsigned char *at, const char *what)
{
    long line = 1;
    const unsigned char *line_start = d->start;
    for (const unsigned char *s = d->start; s < at; s++)
        if (*s == '\n') {
            line++;
            line_start = s + 1;
        }
    rc_error_set(d->err, "invalid OTLP/JSON: line %ld column %ld: %s%s", line,
                 (long)(at - line_start) + 1, what, at < d->end ? "" : " (the body ends there)");
    d->syntax_failed = true;
    return RC_EINVAL;
}

static rc_status out_of_memory(dec *d)
{
    rc_error_set(d->err, "memory limit reached while decoding a %zu-byte OTLP/JSON request",
                 (size_t)(d->end - d->start));
    d->syntax_failed = true;
    return RC_ENOMEM;
}

/* --- lexing --------------------------------------------------------------- */

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static void skip_space(dec *d)
{
    while (d->p < d->end && is_space(*d->p))
        d->p++;
}

/* The next byte after white space, or 0 at the end of the body (a raw NUL
 * is no token either, so both are refused alike). Most tokens follow the
 * one before directly, so that case is tested first. */
static inline unsigned char peek(dec *d)
{
    if (d->p<d->end && * d->p> ' ') return *d->p;
    skip_space(d);
    return d->p < d->end ? *d->p : 0;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code unit of the four hex digits at s, or -1. */
static long hex4(const unsigned char *s, const unsigned char *end)
{
    if (end - s < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(s[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t put_utf8(char *out, unsigned long cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (out) memcpy(out, b, n);
    return n;
}

#define REPLACEMENT_CHAR 0xFFFD

/* A "\uXXXX" escape at s (after the backslash and the 'u'), with its pair
 * when it is a high surrogate followed by an escaped low one. A lone
 * surrogate reads as U+FFFD. Returns the bytes of input used, 0 when the
 * escape is malformed. */
static size_t unicode_escape(const unsigned char *s, const unsigned char *end, unsigned long *cp)
{
    long v = hex4(s, end);
    if (v < 0) return 0;
    if (v >= 0xD800 && v <= 0xDBFF && end - s >= 10 && s[4] == '\\' && s[5] == 'u') {
        long low = hex4(s + 6, end);
        if (low >= 0xDC00 && low <= 0xDFFF) {
            *cp = 0x10000 + ((unsigned long)(v - 0xD800) << 10) + (unsigned long)(low - 0xDC00);
            return 10;
        }
    }
    *cp = v >= 0xD800 && v <= 0xDFFF ? REPLACEMENT_CHAR : (unsigned long)v;
    return 4;
}

enum string_mode {
    TEXT_VALUE,   /* a string field: NUL becomes U+FFFD */
    TEXT_KEY,     /* an object key: NUL is an error (jansson refuses it) */
    TEXT_NUMERIC, /* read as a C string later: NUL kept */
};

/* The character a single-character escape ("\\n") stands for, or -1. */
static long simple_escape(unsigned char c)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *at = c ? strchr(from, c) : NULL;
    return at ? (unsigned char)to[at - from] : -1;
}

/* Reads the escape at s (on its backslash) into *cp; returns the bytes of
 * input it takes, 0 after a syntax error. */
static size_t read_escape(dec *d, const unsigned char *s, enum string_mode mode, unsigned long *cp)
{
    if (d->end - s < 2) {
        syntax_error(d, s, "unterminated string");
        return 0;
    }
    size_t used = 2;
    long simple = simple_escape(s[1]);
    if (simple >= 0) {
        *cp = (unsigned long)simple;
    } else if (s[1] == 'u') {
        size_t n = unicode_escape(s + 2, d->end, cp);
        if (n == 0) {
            syntax_error(d, s, "invalid \\u escape");
            return 0;
        }
        used += n;
    } else {
        syntax_error(d, s, "invalid escape");
        return 0;
    }
    if (*cp == 0 && mode == TEXT_KEY) {
        syntax_error(d, s, "NUL in an object key");
        return 0;
    }
    if (*cp == 0 && mode == TEXT_VALUE) *cp = REPLACEMENT_CHAR;
    return used;
}

/* Reads the string whose text starts at s (after the opening quote):
 * checks it and, when out is not NULL, writes it unescaped and repaired.
 * Returns the unescaped length and sets *after past the closing quote;
 * (size_t)-1 after a syntax error. */
static size_t string_text(dec *d, const unsigned char *s, enum string_mode mode, char *out,
                          const unsigned char **after)
{
    const unsigned char *end = d->end;
    size_t o = 0;
    for (;;) {
        size_t run = rc_json_plain_run(s, (size_t)(end - s));
        if (out) memcpy(out + o, s, run);
        o += run;
        s += run;
        if (s >= end) {
            syntax_error(d, s, "unterminated string");
            return (size_t)-1;
        }
        if (*s == '"') break;
        if (*s < 0x20) {
            syntax_error(d, s, "control character in string");
            return (size_t)-1;
        }
        if (*s >= 0x80) {
            size_t n = rc_utf8_seq_len(s, (size_t)(end - s));
            if (n == 0) { /* a byte outside any valid sequence */
                o += put_utf8(out ? out + o : NULL, REPLACEMENT_CHAR);
                s++;
            } else {
                if (out) memcpy(out + o, s, n);
                o += n;
                s += n;
            }
            continue;
        }
        unsigned long cp;
        size_t used = read_escape(d, s, mode, &cp); /* *s == '\\' */
        if (used == 0) return (size_t)-1;
        o += put_utf8(out ? out + o : NULL, cp);
        s += used;
    }
    *after = s + 1;
    return o;
}

/* A string read: its text, unescaped, and its length. `text` points into the
 * body when the string needed no unescaping (then it is not NUL-terminated),
 * else into the arena (NUL-terminated). */
typedef struct string_ref {
    const char *text;
    size_t len;
    bool in_body;
} string_ref;

/* Reads the string at the cursor (on its opening quote). */
static rc_status read_string(dec *d, enum string_mode mode, string_ref *out)
{
    const unsigned char *s = d->p + 1;
    size_t run = rc_json_plain_run(s, (size_t)(d->end - s));
    if (s + run < d->end && s[run] == '"') {
        *out = (string_ref){(const char *)s, run, true};
        d->p = s + run + 1;
        return RC_OK;
    }
    const unsigned char *after;
    size_t n = string_text(d, s, mode, NULL, &after);
    if (n == (size_t)-1) return RC_EINVAL;
    char *text = rc_arena_alloc(d->arena, n + 1);
    if (!text) return out_of_memory(d);
    string_text(d, s, mode, text, &after);
    text[n] = '\0';
    *out = (string_ref){text, n, false};
    d->p = after;
    return RC_OK;
}

/* Steps over the string at the cursor (on its opening quote), checking it
 * as a value or as a key, without allocating. */
static rc_status skip_string(dec *d, enum string_mode mode)
{
    const unsigned char *after;
    if (string_text(d, d->p + 1, mode, NULL, &after) == (size_t)-1) return RC_EINVAL;
    d->p = after;
    return RC_OK;
}

/* The string's text as a NUL-terminated C string, cut at an embedded NUL as
 * jansson's json_string_value was. */
static rc_status c_string(dec *d, const string_ref *s, char small[64], const char **out)
{
    if (!s->in_body) {
        *out = s->text;
        return RC_OK;
    }
    if (s->len < 64) {
        memcpy(small, s->text, s->len);
        small[s->len] = '\0';
        *out = small;
        return RC_OK;
    }
    char *copy = rc_arena_strndup(d->arena, s->text, s->len);
    if (!copy) return out_of_memory(d);
    *out = copy;
    return RC_OK;
}

/* A JSON number as jansson held it: an integer when the literal has no
 * fraction or exponent and fits int64, else a double. */
typedef struct number {
    bool is_integer;
    int64_t i;
    double r;
} number;

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static const unsigned char *digits(const unsigned char *s, const unsigned char *end)
{
    while (s < end && is_digit(*s))
        s++;
    return s;
}

/* strtod needs a C string; a literal too long for the stack buffer (digits
 * by the thousand are valid JSON) gets a charged heap copy for the moment
 * it is read, not arena space that would outlive it. */
static rc_status literal_as_double(dec *d, const unsigned char *s, size_t n, double *out)
{
    char small[64];
    char *text = small;
    if (n >= sizeof small) {
        if (!rc_mem_try_charge(n + 1)) return out_of_memory(d);
        text = malloc(n + 1);
        if (!text) {
            rc_mem_release(n + 1);
            return out_of_memory(d);
        }
    }
    memcpy(text, s, n);
    text[n] = '\0';
    errno = 0;
    double r = strtod(text, NULL);
    bool overflow = (r == HUGE_VAL || r == -HUGE_VAL) && errno == ERANGE;
    if (text != small) {
        free(text);
        rc_mem_release(n + 1);
    }
    if (overflow) return syntax_error(d, s, "number out of the double range");
    *out = r;
    return RC_OK;
}

/* jansson reads one byte past a number or a literal and puts it back; a
 * NUL put back is lost (its read-ahead buffer takes NUL for "empty"), so
 * one NUL right after such a token was skipped, and still is. */
static void skip_lost_nul(dec *d)
{
    if (d->p < d->end && *d->p == 0) d->p++;
}

/* Reads the number at the cursor (strict JSON grammar). */
static rc_status read_number(dec *d, number *out)
{
    const unsigned char *start = d->p, *s = d->p, *end = d->end;
    bool neg = s < end && *s == '-';
    s += neg;
    if (s >= end || !is_digit(*s)) return syntax_error(d, start, "invalid number");
    if (*s == '0') {
        s++;
        if (s < end && is_digit(*s)) return syntax_error(d, start, "invalid number");
    } else {
        s = digits(s, end);
    }
    bool integral = true;
    if (s < end && *s == '.') {
        integral = false;
        if (++s >= end || !is_digit(*s)) return syntax_error(d, start, "invalid number");
        s = digits(s, end);
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        integral = false;
        s++;
        if (s < end && (*s == '+' || *s == '-')) s++;
        if (s >= end || !is_digit(*s)) return syntax_error(d, start, "invalid number");
        s = digits(s, end);
    }
    d->p = s;
    if (integral) {
        uint64_t mag = 0;
        bool fits = true;
        for (const unsigned char *c = start + neg; c < s && fits; c++) {
            unsigned digit = (unsigned)(*c - '0');
            if (mag > (UINT64_MAX - digit) / 10)
                fits = false;
            else
                mag = mag * 10 + digit;
        }
        if (fits && mag <= (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
            out->is_integer = true;
            out->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
            skip_lost_nul(d);
            return RC_OK;
        }
        /* The old decoder made such a literal a real by rewriting the body,
         * but took a NUL right after it for part of the literal and left it
         * as it was, which jansson then refused: kept, so that the two agree. */
        if (s < end && *s == 0) return syntax_error(d, s, "NUL byte after a number");
    }
    skip_lost_nul(d);
    out->is_integer = false;
    return literal_as_double(d, start, (size_t)(s - start), &out->r);
}

/* Reads the literal `word` (true, false, null) at the cursor. */
static rc_status read_word(dec *d, const char *word)
{
    size_t n = strlen(word);
    const unsigned char *s = d->p;
    if ((size_t)(d->end - s) < n || memcmp(s, word, n) != 0)
        return syntax_error(d, s, "invalid literal");
    s += n;
    /* jansson reads a run of letters as one token: "truex" is no "true". */
    if (s < d->end && ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z'))
        return syntax_error(d, d->p, "invalid literal");
    d->p = s;
    skip_lost_nul(d);
    return RC_OK;
}

/* Opens a container at the cursor, within jansson's nesting limit. */
static rc_status enter_value(dec *d)
{
    if (d->nesting >= JSON_MAX_NESTING)
        return syntax_error(d, d->p, "values nested deeper than 2048");
    return RC_OK;
}

/* --- skipping ------------------------------------------------------------- */

/* The containers skip_value has open: a bit each (1: object, 0: array). */
typedef struct open_containers {
    uint64_t bits[JSON_MAX_NESTING / 64 + 1];
    int top;
} open_containers;

static bool innermost_is_object(const open_containers *o)
{
    return o->bits[(o->top - 1) / 64] >> ((o->top - 1) % 64) & 1;
}

/* Steps over a key and its ':' inside a skipped object. */
static rc_status skip_key(dec *d)
{
    if (peek(d) != '"') return syntax_error(d, d->p, "expected a key");
    if (skip_string(d, TEXT_KEY) != RC_OK) return RC_EINVAL;
    if (peek(d) != ':') return syntax_error(d, d->p, "expected ':'");
    d->p++;
    return RC_OK;
}

/* Opens the container at the cursor; *more is false when it is empty (and
 * so already closed again), else the cursor is at its first value. */
static rc_status skip_open(dec *d, open_containers *o, bool *more)
{
    bool object = *d->p == '{';
    d->p++;
    if (peek(d) == (object ? '}' : ']')) {
        d->p++;
        *more = false;
        return RC_OK;
    }
    d->nesting++;
    uint64_t bit = (uint64_t)1 << (o->top % 64);
    o->bits[o->top / 64] = object ? o->bits[o->top / 64] | bit : o->bits[o->top / 64] & ~bit;
    o->top++;
    *more = true;
    return object ? skip_key(d) : RC_OK;
}

/* After a value: closes the containers that end here, or moves to the next
 * value of the innermost one (*more then true). */
static rc_status skip_after_value(dec *d, open_containers *o, bool *more)
{
    for (*more = false; o->top > 0;) {
        bool object = innermost_is_object(o);
        unsigned char c = peek(d);
        if (c == ',') {
            d->p++;
            *more = true;
            return object ? skip_key(d) : RC_OK;
        }
        if (c != (object ? '}' : ']'))
            return syntax_error(d, d->p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        d->p++;
        d->nesting--;
        o->top--;
    }
    return RC_OK;
}

/* Checks and steps over one scalar value at the cursor. */
static rc_status skip_scalar(dec *d, unsigned char c)
{
    number num;
    switch (c) {
    case '"':
        return skip_string(d, TEXT_NUMERIC);
    case 't':
        return read_word(d, "true");
    case 'f':
        return read_word(d, "false");
    case 'n':
        return read_word(d, "null");
    default:
        if (c != '-' && !is_digit(c)) return syntax_error(d, d->p, "expected a value");
        return read_number(d, &num); /* a long literal takes a charged copy */
    }
}

/* Checks and steps over the value at the cursor, without recursion (the
 * open containers are a bit stack). Used for unknown keys, for the rest of
 * an array after a failed element and for values of the wrong type (whose
 * syntax errors must win, as they did with a tree). */
static rc_status skip_value(dec *d)
{
    open_containers o;
    o.top = 0;
    for (bool more = true; more;) {
        unsigned char c = peek(d);
        if (d->nesting + 1 > JSON_MAX_NESTING)
            return syntax_error(d, d->p, "values nested deeper than 2048");
        rc_status st;
        if (c == '{' || c == '[') {
            st = skip_open(d, &o, &more);
            if (st != RC_OK) return st;
            if (more) continue; /* at the container's first value */
        } else {
            st = skip_scalar(d, c);
            if (st != RC_OK) return st;
        }
        st = skip_after_value(d, &o, &more);
        if (st != RC_OK) return st;
    }
    return RC_OK;
}

/* A value of the wrong type for its field: checked, stepped over, refused. */
static rc_status wrong_type(dec *d, const char *what)
{
    rc_status st = skip_value(d);
    return st != RC_OK ? st : fail(d, what);
}

/* --- scalars -------------------------------------------------------------- */

static bool parse_decimal_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10) return false;
        v = v * 10 + digit;
    }
    *out = v;
    return true;
}

/* The length of s up to an embedded NUL: what a C string of it holds. */
static size_t c_length(const string_ref *s)
{
    if (s->in_body) return s->len;
    const char *nul = memchr(s->text, 0, s->len);
    return nul ? (size_t)(nul - s->text) : s->len;
}

/* A JSON value read as a scalar: what a jansson leaf told apart. */
typedef enum scalar_kind { S_STRING, S_NUMBER, S_TRUE, S_FALSE, S_OTHER } scalar_kind;

typedef struct scalar {
    scalar_kind kind;
    string_ref str;
    number num;
} scalar;

/* Reads the value at the cursor when it is a string, number or boolean; an
 * object or array is stepped over and reported as S_OTHER (null cannot
 * arrive here: a null field is absent, a null element is S_OTHER too). */
static rc_status read_scalar(dec *d, enum string_mode mode, scalar *out)
{
    unsigned char c = peek(d);
    out->kind = S_OTHER;
    switch (c) {
    case '"':
        out->kind = S_STRING;
        return read_string(d, mode, &out->str);
    case 't':
        out->kind = S_TRUE;
        return read_word(d, "true");
    case 'f':
        out->kind = S_FALSE;
        return read_word(d, "false");
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        out->kind = S_NUMBER;
        return read_number(d, &out->num);
    default:
        return skip_value(d);
    }
}

/* An integral value (number or decimal string) as a sign and magnitude, so
 * that both the int64 and the uint64 ranges can be checked exactly. */
static bool integer_parts(const scalar *v, bool *neg, uint64_t *mag)
{
    if (v->kind == S_NUMBER && v->num.is_integer) {
        int64_t i = v->num.i;
        *neg = i < 0;
        *mag = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
        return true;
    }
    if (v->kind == S_NUMBER) {
        double r = v->num.r;
        if (!isfinite(r) || r != floor(r) || fabs(r) >= 18446744073709551616.0) return false;
        *neg = r < 0;
        *mag = (uint64_t)fabs(r);
        return true;
    }
    if (v->kind == S_STRING) {
        const char *s = v->str.text;
        size_t n = c_length(&v->str);
        *neg = n > 0 && *s == '-';
        return parse_decimal_u64(s + *neg, n - *neg, mag);
    }
    return false;
}

static rc_status get_signed(dec *d, const scalar *v, int64_t min, int64_t max, int64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!integer_parts(v, &neg, &mag)) return fail(d, "expected an integer");
    if (!neg && mag > (uint64_t)max) return fail(d, "integer out of range");
    if (neg && mag > (uint64_t)0 - (uint64_t)min) return fail(d, "integer out of range");
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return RC_OK;
}

static rc_status get_unsigned(dec *d, const scalar *v, uint64_t max, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!integer_parts(v, &neg, &mag)) return fail(d, "expected an integer");
    if ((neg && mag != 0) || mag > max) return fail(d, "integer out of range");
    *out = mag;
    return RC_OK;
}

static bool text_is(const char *s, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(s, word, n) == 0;
}

static rc_status get_double(dec *d, const scalar *v, double *out)
{
    if (v->kind == S_NUMBER) {
        *out = v->num.is_integer ? (double)v->num.i : v->num.r;
        return RC_OK;
    }
    if (v->kind != S_STRING) return fail(d, "expected a number");
    size_t n = c_length(&v->str);
    const char *s;
    if (text_is(v->str.text, n, "NaN")) {
        *out = NAN;
        return RC_OK;
    }
    if (text_is(v->str.text, n, "Infinity")) {
        *out = INFINITY;
        return RC_OK;
    }
    if (text_is(v->str.text, n, "-Infinity")) {
        *out = -INFINITY;
        return RC_OK;
    }
    char small[64];
    if (c_string(d, &v->str, small, &s) != RC_OK) return RC_ENOMEM;
    char *end;
    double r = strtod(s, &end);
    if (*s && !*end && isfinite(r) && (*s == '-' || (*s >= '0' && *s <= '9'))) {
        *out = r;
        return RC_OK;
    }
    return fail(d, "expected a number");
}

static rc_status get_enum(dec *d, const ProtobufCFieldDescriptor *f, const scalar *v, int *out)
{
    if (v->kind == S_STRING) {
        const char *name;
        char small[64];
        if (c_string(d, &v->str, small, &name) != RC_OK) return RC_ENOMEM;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, name);
        if (ev) {
            *out = ev->value;
            return RC_OK;
        }
        int64_t i;
        if (get_signed(d, v, INT32_MIN, INT32_MAX, &i) != RC_OK) {
            char what[160];
            snprintf(what, sizeof what, "unknown enum value \"%.100s\"", name);
            return fail(d, what);
        }
        *out = (int)i;
        return RC_OK;
    }
    if (v->kind != S_NUMBER) return fail(d, "expected an integer");
    int64_t i;
    rc_status st = get_signed(d, v, INT32_MIN, INT32_MAX, &i);
    if (st == RC_OK) *out = (int)i;
    return st;
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
        int hi = hex_value((unsigned char)s[i]), lo = hex_value((unsigned char)s[i + 1]);
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

static rc_status get_string(dec *d, const ProtobufCFieldDescriptor *f, char **out)
{
    if (peek(d) != '"') return wrong_type(d, "expected a string");
    string_ref s;
    rc_status st = read_string(d, TEXT_VALUE, &s);
    if (st != RC_OK) return st;
    bool in_oneof = f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF;
    if (s.len == 0 && !in_oneof) {
        *out = (char *)protobuf_c_empty_string;
        return RC_OK;
    }
    if (!s.in_body) {
        *out = (char *)s.text;
        return RC_OK;
    }
    *out = rc_arena_strndup(d->arena, s.text, s.len);
    return *out ? RC_OK : out_of_memory(d);
}

static rc_status get_bytes(dec *d, const ProtobufCFieldDescriptor *f, ProtobufCBinaryData *out)
{
    bool hex = is_hex_id_field(f);
    if (peek(d) != '"')
        return wrong_type(d, hex ? "expected a hex string" : "expected a base64 string");
    string_ref s;
    rc_status st = read_string(d, TEXT_NUMERIC, &s);
    if (st != RC_OK) return st;
    return hex ? get_hex(d, s.text, s.len, out) : get_base64(d, s.text, s.len, out);
}

static rc_status get_number_field(dec *d, const ProtobufCFieldDescriptor *f, void *slot)
{
    scalar v;
    rc_status st = read_scalar(d, TEXT_NUMERIC, &v);
    if (st != RC_OK) return st;
    int64_t i = 0;
    uint64_t u = 0;
    double x;
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        if (v.kind != S_TRUE && v.kind != S_FALSE) return fail(d, "expected true or false");
        *(protobuf_c_boolean *)slot = v.kind == S_TRUE;
        return RC_OK;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        st = get_signed(d, &v, INT32_MIN, INT32_MAX, &i);
        if (st == RC_OK) *(int32_t *)slot = (int32_t)i;
        return st;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        st = get_unsigned(d, &v, UINT32_MAX, &u);
        if (st == RC_OK) *(uint32_t *)slot = (uint32_t)u;
        return st;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return get_signed(d, &v, INT64_MIN, INT64_MAX, slot);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return get_unsigned(d, &v, UINT64_MAX, slot);
    case PROTOBUF_C_TYPE_DOUBLE:
        return get_double(d, &v, slot);
    case PROTOBUF_C_TYPE_FLOAT:
        st = get_double(d, &v, &x);
        if (st == RC_OK) *(float *)slot = (float)x;
        return st;
    case PROTOBUF_C_TYPE_ENUM:
        return get_enum(d, f, &v, slot);
    default:
        return fail(d, "unsupported field type");
    }
}

/* --- messages ------------------------------------------------------------- */

static rc_status decode_message(dec *d, const ProtobufCMessageDescriptor *desc,
                                ProtobufCMessage **out);

/* Reads one value of field f (one element, for repeated fields) into slot. */
static rc_status decode_value(dec *d, const ProtobufCFieldDescriptor *f, void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return get_string(d, f, slot);
    case PROTOBUF_C_TYPE_BYTES:
        return get_bytes(d, f, slot);
    case PROTOBUF_C_TYPE_MESSAGE:
        return decode_message(d, f->descriptor, slot);
    default:
        return get_number_field(d, f, slot);
    }
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

/* Array elements are read into a growing run in the arena: doubled when
 * full, so the copies cost at most the final size again. */
typedef struct elements {
    char *data;
    size_t n, cap, size;
} elements;

static void *element_slot(dec *d, elements *e)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        char *grown = rc_arena_calloc(d->arena, cap * e->size);
        if (!grown) return NULL;
        if (e->n) memcpy(grown, e->data, e->n * e->size);
        e->data = grown;
        e->cap = cap;
    }
    return e->data + e->n++ * e->size;
}

/* Steps over the rest of an array after a failed element: its syntax must
 * still be checked. Called with the cursor after the failed element. */
static rc_status skip_rest_of_array(dec *d)
{
    for (;;) {
        unsigned char c = peek(d);
        if (c == ']') {
            d->p++;
            return RC_OK;
        }
        if (c != ',') return syntax_error(d, d->p, "expected ',' or ']'");
        d->p++;
        rc_status st = skip_value(d);
        if (st != RC_OK) return st;
    }
}

static rc_status decode_repeated(dec *d, const ProtobufCFieldDescriptor *f, field_value *out)
{
    if (peek(d) != '[') return wrong_type(d, "expected an array");
    if (enter_value(d) != RC_OK) return RC_EINVAL;
    d->p++;
    d->nesting++;
    elements e = {.size = element_size(f->type)};
    path_seg *seg = &d->path[d->depth - 1];
    rc_status st = RC_OK;
    if (peek(d) == ']') {
        d->p++;
    } else {
        for (;;) {
            void *slot = element_slot(d, &e);
            if (!slot) {
                st = out_of_memory(d);
                break;
            }
            seg->index = (long)(e.n - 1);
            st = decode_value(d, f, slot);
            if (st != RC_OK) break;
            unsigned char c = peek(d);
            if (c == ']') {
                d->p++;
                break;
            }
            if (c != ',') {
                st = syntax_error(d, d->p, "expected ',' or ']'");
                break;
            }
            d->p++;
        }
    }
    seg->index = -1;
    if (st != RC_OK && !d->syntax_failed) {
        /* The element's error stands unless the rest is not even JSON. */
        rc_error saved = *d->err;
        rc_status rest = skip_rest_of_array(d);
        if (rest == RC_OK)
            *d->err = saved;
        else
            st = rest;
    }
    d->nesting--;
    if (st != RC_OK) return st;
    out->rep.n = e.n;
    out->rep.elems = e.data;
    return RC_OK;
}

static rc_status read_field(dec *d, const ProtobufCFieldDescriptor *f, field_value *out)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return decode_repeated(d, f, out);
    return decode_value(d, f, out);
}

/* Writes a field's value into msg, as the tree walker did on reading it. */
static void store_field(const ProtobufCFieldDescriptor *f, const field_value *v, char *msg)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (v->rep.n == 0) return; /* [] left the field as it was */
        *(size_t *)(msg + f->quantifier_offset) = v->rep.n;
        *(void **)(msg + f->offset) = v->rep.elems;
        return;
    }
    switch (element_size(f->type)) {
    case 16:
        memcpy(msg + f->offset, v, 16);
        break;
    case 8:
        memcpy(msg + f->offset, v, 8);
        break;
    default:
        memcpy(msg + f->offset, v, 4);
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)(msg + f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
             f->type != PROTOBUF_C_TYPE_STRING)
        *(protobuf_c_boolean *)(msg + f->quantifier_offset) = 1;
}

/* Whether the key names the field called `name`: whether the key, with each
 * capital turned into '_' and its small letter, is the name. So both the
 * proto name and its lowerCamelCase (or a mix, as before) match, without
 * building the converted key. */
static bool key_names(const char *key, size_t len, const char *name)
{
    for (size_t i = 0; i < len; i++) {
        char k = key[i];
        if (k >= 'A' && k <= 'Z') {
            if (name[0] != '_' || name[1] != k - 'A' + 'a') return false;
            name += 2;
        } else {
            if (*name != k || k == '\0') return false;
            name++;
        }
    }
    return *name == '\0';
}

/* Matching a key against each field name a character at a time was the
 * decoder's largest cost, so each message reachable from the request gets,
 * once per process, its field names' lengths and lowerCamelCase spellings:
 * the keys senders write are then found by length and memcmp. A key in
 * neither spelling (a mix, or unknown) still goes through key_names. */
#define NAMES_MAX_FIELDS 24
#define NAMES_MAX_LEN 40
#define NAMES_SLOTS 64 /* a power of two, well above the messages of OTLP traces */

typedef struct field_names {
    const ProtobufCMessageDescriptor *desc;
    uint8_t name_len[NAMES_MAX_FIELDS];
    uint8_t camel_len[NAMES_MAX_FIELDS]; /* 0: no camel spelling of its own */
    char camel[NAMES_MAX_FIELDS][NAMES_MAX_LEN];
} field_names;

static field_names g_names[NAMES_SLOTS];
static pthread_once_t g_names_once = PTHREAD_ONCE_INIT;

static size_t names_slot(const ProtobufCMessageDescriptor *desc)
{
    return ((uintptr_t)desc >> 4) * 0x9E3779B97F4A7C15ULL >> 58;
}

static void names_add(const ProtobufCMessageDescriptor *desc)
{
    if (desc->n_fields > NAMES_MAX_FIELDS) return; /* key_names serves it */
    size_t slot = names_slot(desc);
    for (size_t tries = 0; g_names[slot].desc; tries++) {
        if (g_names[slot].desc == desc || tries == NAMES_SLOTS) return;
        slot = (slot + 1) % NAMES_SLOTS;
    }
    field_names *t = &g_names[slot];
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const char *name = desc->fields[i].name;
        size_t len = strlen(name), n = 0;
        t->name_len[i] = len < NAMES_MAX_LEN ? (uint8_t)len : 0;
        for (size_t j = 0; j < len && n + 1 < NAMES_MAX_LEN; j++) {
            if (name[j] == '_' && name[j + 1] >= 'a' && name[j + 1] <= 'z')
                t->camel[i][n++] = (char)(name[++j] - 'a' + 'A');
            else
                t->camel[i][n++] = name[j];
        }
        /* Only a spelling key_names would accept, and not the name itself. */
        bool usable = n < NAMES_MAX_LEN - 1 && n != len && key_names(t->camel[i], n, name);
        t->camel_len[i] = usable ? (uint8_t)n : 0;
    }
    t->desc = desc; /* last: names_add runs once, before any reader */
    for (unsigned i = 0; i < desc->n_fields; i++)
        if (desc->fields[i].type == PROTOBUF_C_TYPE_MESSAGE) names_add(desc->fields[i].descriptor);
}

static void names_build(void)
{
    names_add(
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor);
}

static const field_names *names_of(const ProtobufCMessageDescriptor *desc)
{
    size_t slot = names_slot(desc);
    for (size_t tries = 0; tries < NAMES_SLOTS && g_names[slot].desc; tries++) {
        if (g_names[slot].desc == desc) return &g_names[slot];
        slot = (slot + 1) % NAMES_SLOTS;
    }
    return NULL;
}

/* The field a JSON key names: its proto name, or that name in lowerCamelCase. */
static const ProtobufCFieldDescriptor *lookup_field(const ProtobufCMessageDescriptor *desc,
                                                    const char *key, size_t len)
{
    if (len == 0) return NULL;
    const field_names *t = names_of(desc);
    for (unsigned i = 0; t && i < desc->n_fields; i++) {
        if ((len == t->camel_len[i] && memcmp(key, t->camel[i], len) == 0) ||
            (len == t->name_len[i] && memcmp(key, desc->fields[i].name, len) == 0))
            return &desc->fields[i];
    }
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->name[0] == key[0] && key_names(key, len, f->name)) return f;
    }
    return NULL;
}

static bool is_container(const ProtobufCMessageDescriptor *desc)
{
    return desc == &opentelemetry__proto__common__v1__array_value__descriptor ||
           desc == &opentelemetry__proto__common__v1__key_value_list__descriptor;
}

/* The member this object already holds for exactly this key, if any. */
static member *find_member(dec *d, size_t first, const ProtobufCFieldDescriptor *f, const char *key,
                           size_t len)
{
    for (size_t i = first; i < d->n_members; i++) {
        member *m = &d->members[i];
        if (m->f == f && m->key_len == len && memcmp(m->key, key, len) == 0) return m;
    }
    return NULL;
}

static member *push_member(dec *d)
{
    if (d->n_members == d->cap_members) {
        size_t cap = d->cap_members * 2;
        member *grown = rc_arena_alloc(d->arena, cap * sizeof *grown);
        if (!grown) return NULL;
        if (d->n_members) memcpy(grown, d->members, d->n_members * sizeof *grown);
        d->members = grown;
        d->cap_members = cap;
    }
    return &d->members[d->n_members++];
}

/* Reads the key at the cursor and the ':' after it. */
static rc_status read_key(dec *d, string_ref *key)
{
    if (peek(d) != '"') return syntax_error(d, d->p, "expected a key");
    rc_status st = read_string(d, TEXT_KEY, key);
    if (st != RC_OK) return st;
    if (peek(d) != ':') return syntax_error(d, d->p, "expected ':'");
    d->p++;
    return RC_OK;
}

/* Records what key (naming field f) now holds, in this object's table. On a
 * repeated key the object becomes irregular: its values are rebuilt from
 * the table when it closes. */
static rc_status note_member(dec *d, member *m, const ProtobufCFieldDescriptor *f,
                             const string_ref *key, int state, const field_value *value,
                             bool *irregular)
{
    if (m) {
        *irregular = true;
    } else {
        m = push_member(d);
        if (!m) return out_of_memory(d);
        m->f = f;
        m->key = key->text;
        m->key_len = key->len;
    }
    m->state = state;
    m->value = *value;
    m->error = NULL;
    if (state == MEMBER_FAILED) {
        *irregular = true;
        m->error = rc_arena_strdup(d->arena, d->err->msg);
        if (!m->error) return out_of_memory(d);
    }
    return RC_OK;
}

/* Reads one member's value (the key is read) into this object's table. */
static rc_status read_member(dec *d, size_t first, const ProtobufCMessageDescriptor *desc,
                             const string_ref *key, char *msg, uint64_t *fields_seen,
                             bool *irregular)
{
    const ProtobufCFieldDescriptor *f = lookup_field(desc, key->text, key->len);
    if (!f) return skip_value(d);
    /* A field met for the first time needs no search of the table. */
    size_t index = (size_t)(f - desc->fields);
    uint64_t bit = index < 64 ? (uint64_t)1 << index : 0;
    bool maybe_seen = !bit || (*fields_seen & bit);
    *fields_seen |= bit;
    field_value value = {0};
    int state = MEMBER_SET;
    if (peek(d) == 'n' && d->end - d->p >= 4 && memcmp(d->p, "null", 4) == 0) {
        if (read_word(d, "null") != RC_OK) return RC_EINVAL;
        state = MEMBER_NULL;
    } else {
        d->path[d->depth++] = (path_seg){.key = key->text, .key_len = key->len, .index = -1};
        rc_status st = read_field(d, f, &value);
        d->depth--;
        if (st != RC_OK && d->syntax_failed) return st;
        if (st != RC_OK) state = MEMBER_FAILED;
    }
    /* Looked up after reading: the value may have pushed and popped members
     * of nested objects above this object's own. */
    member *seen = maybe_seen ? find_member(d, first, f, key->text, key->len) : NULL;
    if (state == MEMBER_SET && !*irregular && !seen)
        store_field(f, &value, msg); /* the usual case: in order, once */
    return note_member(d, seen, f, key, state, &value, irregular);
}

/* An irregular object, as jansson's tree had it: each key once, at its
 * first place, with its last value; the first error in that order wins. */
static rc_status rebuild_object(dec *d, size_t first, const ProtobufCMessageDescriptor *desc,
                                char *msg)
{
    for (size_t i = first; i < d->n_members; i++) {
        if (d->members[i].state == MEMBER_FAILED) {
            rc_error_set(d->err, "%s", d->members[i].error);
            return RC_EINVAL;
        }
    }
    protobuf_c_message_init(desc, msg);
    for (size_t i = first; i < d->n_members; i++)
        if (d->members[i].state == MEMBER_SET)
            store_field(d->members[i].f, &d->members[i].value, msg);
    return RC_OK;
}

/* Reads the members of the object at the cursor (on its '{') into msg. */
static rc_status decode_fields(dec *d, const ProtobufCMessageDescriptor *desc, char *msg)
{
    d->p++;
    d->nesting++;
    size_t first = d->n_members;
    uint64_t fields_seen = 0;
    bool irregular = false;
    rc_status st = RC_OK;
    if (peek(d) == '}') {
        d->p++;
    } else {
        for (;;) {
            string_ref key;
            /* The key's text stays valid to the end of the request (in the
             * body, or unescaped in the arena): the table keeps it. */
            st = read_key(d, &key);
            if (st == RC_OK) st = read_member(d, first, desc, &key, msg, &fields_seen, &irregular);
            if (st != RC_OK) break;
            unsigned char c = peek(d);
            if (c == '}') {
                d->p++;
                break;
            }
            if (c != ',') {
                st = syntax_error(d, d->p, "expected ',' or '}'");
                break;
            }
            d->p++;
        }
    }
    if (st == RC_OK && irregular) st = rebuild_object(d, first, desc, msg);
    d->n_members = first;
    d->nesting--;
    return st;
}

static rc_status decode_message(dec *d, const ProtobufCMessageDescriptor *desc,
                                ProtobufCMessage **out)
{
    if (peek(d) != '{') return wrong_type(d, "expected an object");
    if (enter_value(d) != RC_OK) return RC_EINVAL;
    bool container = is_container(desc);
    if (container && d->containers + 1 > OTLP_MAX_DEPTH) {
        char what[96];
        snprintf(what, sizeof what, "arrayValue/kvlistValue nested deeper than %d", OTLP_MAX_DEPTH);
        return wrong_type(d, what);
    }
    if (d->depth >= DECODE_MAX_DEPTH) return wrong_type(d, "objects nested too deeply");

    ProtobufCMessage *msg = rc_arena_alloc(d->arena, desc->sizeof_message);
    if (!msg) return out_of_memory(d);
    protobuf_c_message_init(desc, msg);

    d->containers += container;
    rc_status st = decode_fields(d, desc, (char *)msg);
    d->containers -= container;
    if (st != RC_OK) return st;
    *out = msg;
    return RC_OK;
}

/* --- entry point ------------------------------------------------------------ */

/* Past the request's value only white space may follow. */
static rc_status expect_end(dec *d)
{
    skip_space(d);
    if (d->p < d->end) return syntax_error(d, d->p, "content after the request");
    return RC_OK;
}

static rc_status decode_request(dec *d, otlp_export_request **out)
{
    if (peek(d) != '{') {
        rc_status st = skip_value(d);
        if (st != RC_OK) return st;
        if (expect_end(d) != RC_OK) return RC_EINVAL;
        rc_error_set(d->err, "invalid OTLP/JSON: the request must be a JSON object");
        return RC_EINVAL;
    }
    ProtobufCMessage *msg = NULL;
    rc_status st = decode_message(
        d, &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
        &msg);
    if (d->syntax_failed) return st;
    if (st != RC_OK) {
        /* A schema error stands only if the body is JSON to its end. */
        rc_error saved = *d->err;
        if (expect_end(d) != RC_OK) return RC_EINVAL;
        *d->err = saved;
        return st;
    }
    if (expect_end(d) != RC_OK) return RC_EINVAL;
    *out = (otlp_export_request *)msg;
    return RC_OK;
}

rc_status otlp_json_decode(const char *data, size_t len, rc_arena *arena, otlp_export_request **out,
                           rc_error *err)
{
    if (len == 0) { /* valid protobuf, but not valid JSON (the Go collector agrees) */
        rc_error_set(err, "invalid JSON: the body is empty");
        return RC_EINVAL;
    }
    pthread_once(&g_names_once, names_build);
    /* The path stack is a few KiB: keep it off the caller's stack. */
    dec *d = calloc(1, sizeof *d);
    if (!d) {
        rc_error_set(err, "memory limit reached while decoding a %zu-byte OTLP/JSON request", len);
        return RC_ENOMEM;
    }
    d->start = d->p = (const unsigned char *)data;
    d->end = d->start + len;
    d->arena = arena;
    d->err = err;
    d->members = d->first_members;
    d->cap_members = sizeof d->first_members / sizeof d->first_members[0];
    rc_status st = decode_request(d, out);
    free(d);
    return st;
}
