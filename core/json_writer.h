/*
 * json_writer.h - the one place JSON text is produced.
 *
 * Encoders (the OTLP/JSON file output, error bodies, later the Respan
 * request logs) append tokens to an rc_buf through these helpers. Strings
 * are escaped per RFC 8259 and invalid UTF-8 is replaced by U+FFFD, never
 * passed through, so the output is always valid JSON whatever the input.
 * Separators (commas, colons) are the caller's business.
 */
#ifndef RC_JSON_WRITER_H
#define RC_JSON_WRITER_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

/* A quoted, escaped JSON string of the n bytes at s. */
void rc_json_string(rc_buf *b, const char *s, size_t n);
/* The same without the quotes: for a string written in pieces (the
 * respan exporter writes converted messages, JSON text, straight into the
 * string that holds them). */
void rc_json_escaped(rc_buf *b, const char *s, size_t n);
static inline void rc_json_cstr(rc_buf *b, const char *s)
{
    rc_json_string(b, s ? s : "", s ? __builtin_strlen(s) : 0);
}
/* "key": (quoted key and colon). */
void rc_json_key(rc_buf *b, const char *key);
void rc_json_u64(rc_buf *b, uint64_t v);
void rc_json_i64(rc_buf *b, int64_t v);
/* A 64-bit integer as a quoted decimal string, as protobuf JSON writes it. */
void rc_json_u64_quoted(rc_buf *b, uint64_t v);
void rc_json_i64_quoted(rc_buf *b, int64_t v);
/* Shortest round-trip form; NaN and infinities as "NaN", "Infinity",
 * "-Infinity" strings, as protobuf JSON writes them. */
void rc_json_double(rc_buf *b, double v);
/* Lower-case hex of n bytes, quoted. */
void rc_json_hex(rc_buf *b, const uint8_t *p, size_t n);
/* Standard base64 (with padding) of n bytes, quoted. */
void rc_json_base64(rc_buf *b, const uint8_t *p, size_t n);

/* A jansson value as JSON text, nested at most max_depth deep (deeper
 * values, and NULL, are written as null). Strings are escaped as above. */
struct json_t;
void rc_json_jansson(rc_buf *b, const struct json_t *v, int max_depth);

/* Lengths of valid UTF-8 prefix utilities, shared with the decoders. */
/* Returns the length of the valid UTF-8 sequence starting at s (1..4), or 0
 * when the bytes at s do not start a valid sequence within n bytes. */
size_t rc_utf8_seq_len(const unsigned char *s, size_t n);

#endif
