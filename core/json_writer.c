/*
 * json_writer.c - JSON token writers shared by every encoder (see json_writer.h).
 *
 * The promise is that whatever bytes come in, what goes out is valid JSON
 * text: strings are escaped per RFC 8259 and any byte that does not belong
 * to a well-formed UTF-8 sequence (truncated sequences, overlong forms,
 * UTF-16 surrogates, code points past U+10FFFF, stray continuation bytes)
 * becomes one U+FFFD. Telemetry attributes are mostly printable ASCII, so
 * rc_json_string copies such bytes 16 at a time (core/bytescan.h) and only
 * drops to the per-character path for the byte that needs attention.
 *
 * Numbers follow what the OpenTelemetry Collector's JSON writer produces:
 * 64-bit integers as quoted decimals, doubles in their shortest round-trip
 * form, in fixed notation between 1e-6 and 1e21 and in exponent notation
 * ("1e+21", "1.5e-7") outside, and non-finite doubles as the strings protobuf
 * JSON uses. Nothing here allocates except through the rc_buf.
 */
#include "core/json_writer.h"

#include "core/bytescan.h"

#include <jansson.h>

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hex_digits[] = "0123456789abcdef";
static const char utf8_replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

size_t rc_utf8_seq_len(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    /* The second byte's allowed range is what rules out overlong forms
     * (E0, F0), surrogates (ED) and code points past U+10FFFF (F4). */
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0; /* continuation byte, C0/C1 (always overlong) or F5..FF */
    }
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

/* Writes the escape for an ASCII byte that is not plain (at most 6 bytes)
 * at o; returns the end. */
static char *put_escape(char *o, unsigned char c)
{
    static const char short_form[0x60] = {
        ['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
        ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't',
    };
    *o++ = '\\';
    if (c < sizeof short_form && short_form[c]) {
        *o++ = short_form[c];
        return o;
    }
    *o++ = 'u';
    *o++ = '0';
    *o++ = '0';
    *o++ = hex_digits[c >> 4];
    *o++ = hex_digits[c & 0xF];
    return o;
}

/* Writes straight into the buffer's memory rather than through
 * rc_buf_append: strings are most of any JSON we write, and request logs
 * embed JSON text whose every quote needs an escape, so a call per run or
 * per escape would dominate. Invariant: from o there is room for every
 * byte of s not yet consumed, copied as it is, plus one (a closing quote);
 * a byte that grows (an escape, a replacement) first makes room for
 * itself. */
void rc_json_escaped(rc_buf *b, const char *str, size_t n)
{
    if (n == 0) return; /* str may be NULL then */
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + n;
    if (!rc_buf_reserve(b, n + 1)) return;
    char *o = b->data + b->len;
    while (s < end) {
        size_t run;
        if (end - s >= 16) {
            /* All 16 bytes are copied whatever the run (the invariant leaves
             * room): a fixed-size copy is one load and store where a
             * variable one is a call, and most runs end within 16 bytes
             * in quote-dense text. */
            memcpy(o, s, 16);
            run = rc_json_plain_run16(s);
        } else {
            run = rc_json_plain_run(s, (size_t)(end - s));
            memcpy(o, s, run);
        }
        o += run;
        s += run;
        if (run == 16 || s == end) continue;
        if ((size_t)(b->data + b->cap - o) < (size_t)(end - s) + 6 + 1) {
            b->len = (size_t)(o - b->data);
            if (!rc_buf_reserve(b, (size_t)(end - s) + 6 + 1)) return;
            o = b->data + b->len;
        }
        if (*s < 0x80) {
            o = put_escape(o, *s++);
            continue;
        }
        size_t len = rc_utf8_seq_len(s, (size_t)(end - s));
        if (len == 0) {
            memcpy(o, utf8_replacement, 3);
            o += 3;
            s++;
        } else {
            memcpy(o, s, len);
            o += len;
            s += len;
        }
    }
    b->len = (size_t)(o - b->data);
}

void rc_json_string(rc_buf *b, const char *str, size_t n)
{
    if (!rc_buf_reserve(b, n + 2)) return;
    b->data[b->len++] = '"';
    rc_json_escaped(b, str, n);
    rc_buf_putc(b, '"');
}

void rc_json_key(rc_buf *b, const char *key)
{
    rc_json_string(b, key, strlen(key));
    rc_buf_putc(b, ':');
}

/* Decimal digits of v, written backwards into the end of buf[21]. */
static char *u64_digits(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void append_i64(rc_buf *b, int64_t v, bool quoted)
{
    char buf[24];
    char *end = buf + sizeof buf;
    char *p;
    if (quoted) *--end = '"';
    if (v < 0) {
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        p = u64_digits(end, 0 - (uint64_t)v);
        *--p = '-';
    } else {
        p = u64_digits(end, (uint64_t)v);
    }
    if (quoted) *--p = '"';
    rc_buf_append(b, p, (size_t)(buf + sizeof buf - p));
}

static void append_u64(rc_buf *b, uint64_t v, bool quoted)
{
    char buf[24];
    char *end = buf + sizeof buf;
    if (quoted) *--end = '"';
    char *p = u64_digits(end, v);
    if (quoted) *--p = '"';
    rc_buf_append(b, p, (size_t)(buf + sizeof buf - p));
}

void rc_json_u64(rc_buf *b, uint64_t v)
{
    append_u64(b, v, false);
}

void rc_json_i64(rc_buf *b, int64_t v)
{
    append_i64(b, v, false);
}

void rc_json_u64_quoted(rc_buf *b, uint64_t v)
{
    append_u64(b, v, true);
}

void rc_json_i64_quoted(rc_buf *b, int64_t v)
{
    append_i64(b, v, true);
}

/* The shortest decimal digits d1 d2 ... dn and exponent e such that
 * d1.d2...dn x 10^e reads back as exactly v (v finite, non-zero, positive).
 * Fifteen significant digits always suffice to round-trip when the shortest
 * form has at most fifteen, and the correctly rounded 16- or 17-digit form
 * is the closest one, so trying 15, 16, 17 finds the shortest for normal
 * doubles. */
/* The common case in request logs (costs, latencies, temperatures): v is
 * m / 10^k for a small k and an integer m below 2^53. Division of two
 * exactly representable integers is correctly rounded, so when m / 10^k
 * gives back v, the decimal m x 10^-k reads back as v too, and the
 * smallest such k gives the fewest digits; with at most 15 of them it is
 * the one the slow path finds. Saves the printf/strtod rounds. */
static size_t short_decimal_digits(double v, char digits[20], int *exp10)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    if (v < 1e-6 || v >= 1e15) return 0;
    for (int k = 0; k < 10; k++) {
        double x = v * pow10[k];
        /* Past 15 digits another 16-digit decimal may also read back as
         * v; the slow path picks the closest one. */
        if (x >= 1e15) return 0;
        uint64_t m = (uint64_t)(x + 0.5);
        if (m == 0 || (double)m / pow10[k] != v) continue;
        char tmp[20];
        size_t len = 0;
        for (uint64_t r = m; r; r /= 10)
            tmp[len++] = (char)('0' + r % 10);
        size_t n = 0;
        for (size_t i = len; i > 0; i--)
            digits[n++] = tmp[i - 1];
        *exp10 = (int)len - 1 - k;
        while (n > 1 && digits[n - 1] == '0')
            n--;
        return n;
    }
    return 0;
}

static size_t shortest_digits(double v, char digits[20], int *exp10)
{
    size_t quick = short_decimal_digits(v, digits, exp10);
    if (quick) return quick;
    char tmp[40];
    /* Subnormals carry fewer significant bits, so the argument above does
     * not hold for them: search from one digit up (they are rare). */
    int first = v < DBL_MIN ? 1 : 15;
    for (int prec = first; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    /* tmp is "d.ddd...e[+-]xx" (or "de[+-]xx"): gather digits, then exponent. */
    size_t n = 0;
    const char *p = tmp;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[n++] = *p;
    *exp10 = (*p == 'e') ? atoi(p + 1) : 0;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    return n;
}

static void append_fixed(rc_buf *b, const char *digits, size_t n, int exp10)
{
    if (exp10 < 0) {
        rc_buf_append(b, "0.", 2);
        for (int i = -1; i > exp10; i--)
            rc_buf_putc(b, '0');
        rc_buf_append(b, digits, n);
        return;
    }
    size_t int_digits = (size_t)exp10 + 1;
    if (n <= int_digits) {
        rc_buf_append(b, digits, n);
        for (size_t i = n; i < int_digits; i++)
            rc_buf_putc(b, '0');
        return;
    }
    rc_buf_append(b, digits, int_digits);
    rc_buf_putc(b, '.');
    rc_buf_append(b, digits + int_digits, n - int_digits);
}

static void append_exponent(rc_buf *b, const char *digits, size_t n, int exp10)
{
    rc_buf_putc(b, digits[0]);
    if (n > 1) {
        rc_buf_putc(b, '.');
        rc_buf_append(b, digits + 1, n - 1);
    }
    /* Exponent notation is only used from 1e21 up and below 1e-6, so the
     * exponent has at least two digits when positive; negative exponents
     * are written unpadded ("e-7"), as Go's encoding/json writes them. */
    char exp[8];
    int len = snprintf(exp, sizeof exp, "e%c%d", exp10 < 0 ? '-' : '+', abs(exp10));
    rc_buf_append(b, exp, (size_t)len);
}

void rc_json_double(rc_buf *b, double v)
{
    if (isnan(v)) {
        rc_buf_append(b, "\"NaN\"", 5);
        return;
    }
    if (isinf(v)) {
        if (v > 0)
            rc_buf_append(b, "\"Infinity\"", 10);
        else
            rc_buf_append(b, "\"-Infinity\"", 11);
        return;
    }
    if (signbit(v)) rc_buf_putc(b, '-');
    double a = fabs(v);
    if (a == 0) {
        /* "-0" would read back as the integer 0 and lose its sign. */
        if (signbit(v))
            rc_buf_append(b, "0.0", 3);
        else
            rc_buf_putc(b, '0');
        return;
    }
    char digits[20];
    int exp10;
    size_t n = shortest_digits(a, digits, &exp10);
    if (a < 1e-6 || a >= 1e21)
        append_exponent(b, digits, n, exp10);
    else
        append_fixed(b, digits, n, exp10);
}

void rc_json_hex(rc_buf *b, const uint8_t *p, size_t n)
{
    if (!rc_buf_reserve(b, 2 * n + 2)) return;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        *o++ = hex_digits[p[i] >> 4];
        *o++ = hex_digits[p[i] & 0xF];
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

void rc_json_base64(rc_buf *b, const uint8_t *p, size_t n)
{
    rc_buf_putc(b, '"');
    rc_buf_base64(b, p, n);
    rc_buf_putc(b, '"');
}

static void jansson_value(rc_buf *b, const json_t *v, int depth_left)
{
    if (!v || depth_left < 0) {
        rc_buf_append(b, "null", 4);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *m;
        bool first = true;
        rc_buf_putc(b, '{');
        json_object_foreach((json_t *)v, k, m)
        {
            if (!first) rc_buf_putc(b, ',');
            first = false;
            rc_json_key(b, k);
            jansson_value(b, m, depth_left - 1);
        }
        rc_buf_putc(b, '}');
        break;
    }
    case JSON_ARRAY:
        rc_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) rc_buf_putc(b, ',');
            jansson_value(b, json_array_get(v, i), depth_left - 1);
        }
        rc_buf_putc(b, ']');
        break;
    case JSON_STRING:
        rc_json_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        rc_json_i64(b, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        rc_json_double(b, json_real_value(v));
        break;
    case JSON_TRUE:
        rc_buf_append(b, "true", 4);
        break;
    case JSON_FALSE:
        rc_buf_append(b, "false", 5);
        break;
    default:
        rc_buf_append(b, "null", 4);
        break;
    }
}

void rc_json_jansson(rc_buf *b, const json_t *v, int max_depth)
{
    jansson_value(b, v, max_depth);
}
