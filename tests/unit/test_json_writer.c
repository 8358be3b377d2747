/*
 * test_json_writer.c - the JSON token writers: escaping, UTF-8 repair,
 * number forms, hex and base64.
 *
 * Each case is a table row (input bytes, expected JSON text) so a new edge
 * case is one line. The UTF-8 rows follow the Unicode malformation classes:
 * truncated sequences, stray continuation bytes, overlong forms, surrogates
 * and code points past U+10FFFF must each come out as U+FFFD, one per byte
 * that cannot start a well-formed sequence.
 */
#include "core/json_writer.h"

#include "testing.h"

#include <math.h>
#include <stdlib.h>

#define FFFD "\xEF\xBF\xBD"

static char *take(rc_buf *b)
{
    rc_buf_putc(b, '\0');
    return b->data;
}

struct string_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    const char *want;
};

static const struct string_case string_cases[] = {
    {"", 0, "\"\""},
    {"hello world", 0, "\"hello world\""},
    {"quote\" backslash\\ slash/", 0, "\"quote\\\" backslash\\\\ slash/\""},
    {"\n\r\t\b\f", 0, "\"\\n\\r\\t\\b\\f\""},
    {"\x01\x1f\x7f", 0, "\"\\u0001\\u001f\x7f\""},
    {"nul\0inside", 10, "\"nul\\u0000inside\""},
    {"<html> & 'x'", 0, "\"<html> & 'x'\""},
    /* valid multi-byte sequences pass through untouched */
    {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 0,
     "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
    {"\xEF\xBF\xBF\xF4\x8F\xBF\xBF", 0, "\"\xEF\xBF\xBF\xF4\x8F\xBF\xBF\""},
    {"\xED\x9F\xBF\xEE\x80\x80", 0, "\"\xED\x9F\xBF\xEE\x80\x80\""},
    /* truncated sequences, at the end and in the middle */
    {"a\xC3", 0, "\"a" FFFD "\""},
    {"a\xE2\x82", 0, "\"a" FFFD FFFD "\""},
    {"\xF0\x9F\x98z", 0, "\"" FFFD FFFD FFFD "z\""},
    /* stray continuation bytes and bytes that never occur */
    {"\x80\xBF", 0, "\"" FFFD FFFD "\""},
    {"\xFE\xFF\xF5", 0, "\"" FFFD FFFD FFFD "\""},
    /* overlong forms */
    {"\xC0\xAF", 0, "\"" FFFD FFFD "\""},
    {"\xC1\xBF", 0, "\"" FFFD FFFD "\""},
    {"\xE0\x80\xAF", 0, "\"" FFFD FFFD FFFD "\""},
    {"\xF0\x80\x80\xAF", 0, "\"" FFFD FFFD FFFD FFFD "\""},
    /* UTF-16 surrogates encoded as UTF-8 */
    {"\xED\xA0\x80", 0, "\"" FFFD FFFD FFFD "\""},
    {"\xED\xBF\xBF", 0, "\"" FFFD FFFD FFFD "\""},
    /* past U+10FFFF */
    {"\xF4\x90\x80\x80", 0, "\"" FFFD FFFD FFFD FFFD "\""},
    /* a repair does not swallow the valid text around it */
    {"ok\xFFok\xC3\xA9", 0, "\"ok" FFFD "ok\xC3\xA9\""},
};

static void test_strings(void)
{
    for (size_t i = 0; i < sizeof string_cases / sizeof string_cases[0]; i++) {
        const struct string_case *c = &string_cases[i];
        rc_buf b = RC_BUF_INIT;
        rc_json_string(&b, c->in, c->len ? c->len : strlen(c->in));
        CHECK_STR(take(&b), c->want);
        rc_buf_free(&b);
    }
}

static void test_long_string_fast_path(void)
{
    /* Long enough to cross buffer growth; escapes at both ends. */
    size_t n = 10000;
    char *in = malloc(n);
    memset(in, 'x', n);
    in[0] = '"';
    in[n - 1] = '\n';
    rc_buf b = RC_BUF_INIT;
    rc_json_string(&b, in, n);
    CHECK(b.len == n + 2 + 2);
    CHECK(memcmp(b.data, "\"\\\"xxx", 6) == 0);
    CHECK(memcmp(b.data + b.len - 6, "xxx\\n\"", 6) == 0);
    rc_buf_free(&b);
    free(in);
}

/* Every byte escaped at the widest (6 bytes for 1), after text already in
 * the buffer and between plain runs of every length: the writer's room
 * checks must grow the buffer as it goes, not trust the first estimate. */
static void test_dense_escapes(void)
{
    int bad = 0;
    for (size_t plain = 0; plain <= 33; plain++) {
        char in[3000];
        size_t n = 0;
        while (n + plain + 1 < sizeof in) {
            memset(in + n, 'p', plain);
            n += plain;
            in[n++] = '\x01';
        }
        rc_buf b = RC_BUF_INIT;
        rc_buf_append(&b, "prefix:", 7);
        rc_json_string(&b, in, n);
        size_t escapes = n / (plain + 1);
        size_t want_len = 7 + 2 + n - escapes + 6 * escapes;
        if (b.failed || b.len != want_len ||
            memcmp(b.data + 8, "pppp", plain < 4 ? plain : 4) != 0 ||
            memcmp(b.data + 8 + plain, "\\u0001", 6) != 0) {
            if (bad++ < 3)
                fprintf(stderr, "  plain run %zu: len %zu, want %zu\n", plain, b.len, want_len);
        }
        rc_buf_free(&b);
    }
    CHECK(bad == 0);
}

/* Every single byte value, at every offset of a string long enough for the
 * 8-byte fast path, comes out as it would one byte at a time. */
static void test_every_byte_at_every_offset(void)
{
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        char want_mid[8];
        if (c == '"' || c == '\\')
            snprintf(want_mid, sizeof want_mid, "\\%c", c);
        else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
            snprintf(want_mid, sizeof want_mid, "\\%c",
                     c == '\n'   ? 'n'
                     : c == '\r' ? 'r'
                     : c == '\t' ? 't'
                     : c == '\b' ? 'b'
                                 : 'f');
        else if (c < 0x20)
            snprintf(want_mid, sizeof want_mid, "\\u%04x", c);
        else if (c >= 0x80)
            snprintf(want_mid, sizeof want_mid, "%s", FFFD);
        else
            snprintf(want_mid, sizeof want_mid, "%c", c);
        for (int at = 0; at < 20; at++) {
            char in[24], want[64];
            memset(in, 'a', sizeof in);
            in[at] = (char)c;
            snprintf(want, sizeof want, "\"%.*s%s%.*s\"", at, in, want_mid, 23 - at, in + at + 1);
            rc_buf b = RC_BUF_INIT;
            rc_json_string(&b, in, sizeof in);
            if (strcmp(take(&b), want) != 0 && bad++ < 5)
                fprintf(stderr, "  byte 0x%02x at %d: got %s\n", c, at, b.data);
            rc_buf_free(&b);
        }
    }
    CHECK(bad == 0);
}

static void test_seq_len(void)
{
    CHECK(rc_utf8_seq_len((const unsigned char *)"a", 1) == 1);
    CHECK(rc_utf8_seq_len((const unsigned char *)"\xC3\xA9", 2) == 2);
    CHECK(rc_utf8_seq_len((const unsigned char *)"\xC3\xA9", 1) == 0);
    CHECK(rc_utf8_seq_len((const unsigned char *)"\xE2\x82\xAC", 3) == 3);
    CHECK(rc_utf8_seq_len((const unsigned char *)"\xF0\x9F\x98\x80", 4) == 4);
    CHECK(rc_utf8_seq_len((const unsigned char *)"\xF0\x9F\x98\x80", 3) == 0);
    CHECK(rc_utf8_seq_len((const unsigned char *)"\xED\xA0\x80", 3) == 0);
    CHECK(rc_utf8_seq_len((const unsigned char *)"\xC0\x80", 2) == 0);
    CHECK(rc_utf8_seq_len((const unsigned char *)"", 0) == 0);
}

static void test_key(void)
{
    rc_buf b = RC_BUF_INIT;
    rc_json_key(&b, "traceId");
    CHECK_STR(take(&b), "\"traceId\":");
    rc_buf_free(&b);
}

struct double_case {
    double v;
    const char *want;
};

static void test_doubles(void)
{
    const struct double_case cases[] = {
        {0.0, "0"},
        {-0.0, "-0.0"}, /* "-0" would read back as the integer 0 */
        {1.0, "1"},
        {-1.0, "-1"},
        {1.5, "1.5"},
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789.0, "123456789"},
        {1e20, "100000000000000000000"},
        {1e21, "1e+21"},
        {1.5e300, "1.5e+300"},
        {0.000001, "0.000001"},
        {1e-7, "1e-7"},
        {1.25e-10, "1.25e-10"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {9007199254740993.0, "9007199254740992"},
        {3.14159, "3.14159"},
        {NAN, "\"NaN\""},
        {INFINITY, "\"Infinity\""},
        {-INFINITY, "\"-Infinity\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc_buf b = RC_BUF_INIT;
        rc_json_double(&b, cases[i].v);
        CHECK_STR(take(&b), cases[i].want);
        rc_buf_free(&b);
    }
}

static void test_doubles_round_trip(void)
{
    /* Whatever the value, the text reads back as the same double. */
    unsigned seed = 12345;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            bits = bits << 16 | (seed >> 8 & 0xFFFF);
        }
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        rc_buf b = RC_BUF_INIT;
        rc_json_double(&b, v);
        double back = strtod(take(&b), NULL);
        if (memcmp(&back, &v, sizeof v) != 0) {
            CHECK(!"double does not round-trip");
            fprintf(stderr, "  %.17g -> %s\n", v, b.data);
        }
        rc_buf_free(&b);
    }
    CHECK(1);
}

static void test_integers(void)
{
    rc_buf b = RC_BUF_INIT;
    rc_json_u64(&b, 0);
    rc_buf_putc(&b, ' ');
    rc_json_u64(&b, UINT64_MAX);
    rc_buf_putc(&b, ' ');
    rc_json_i64(&b, INT64_MIN);
    rc_buf_putc(&b, ' ');
    rc_json_i64(&b, -42);
    rc_buf_putc(&b, ' ');
    rc_json_u64_quoted(&b, 1795453075631000000ULL);
    rc_buf_putc(&b, ' ');
    rc_json_i64_quoted(&b, INT64_MIN);
    rc_buf_putc(&b, ' ');
    rc_json_i64_quoted(&b, 0);
    CHECK_STR(take(&b), "0 18446744073709551615 -9223372036854775808 -42 "
                        "\"1795453075631000000\" \"-9223372036854775808\" \"0\"");
    rc_buf_free(&b);
}

static void test_hex(void)
{
    const uint8_t id[] = {0xad, 0x7e, 0x64, 0xfb, 0x00, 0x0F, 0xF0, 0xff};
    rc_buf b = RC_BUF_INIT;
    rc_json_hex(&b, id, sizeof id);
    rc_json_hex(&b, id, 0);
    CHECK_STR(take(&b), "\"ad7e64fb000ff0ff\"\"\"");
    rc_buf_free(&b);
}

static void test_base64(void)
{
    /* RFC 4648 section 10 test vectors. */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"\"\"",         "\"Zg==\"",     "\"Zm8=\"",    "\"Zm9v\"",
                          "\"Zm9vYg==\"", "\"Zm9vYmE=\"", "\"Zm9vYmFy\""};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        rc_buf b = RC_BUF_INIT;
        rc_json_base64(&b, (const uint8_t *)in[i], strlen(in[i]));
        CHECK_STR(take(&b), want[i]);
        rc_buf_free(&b);
    }
    const uint8_t bin[] = {0xfb, 0xff, 0xfe, 0x00};
    rc_buf b = RC_BUF_INIT;
    rc_json_base64(&b, bin, sizeof bin);
    CHECK_STR(take(&b), "\"+//+AA==\"");
    rc_buf_free(&b);
}

int main(void)
{
    RUN(test_strings());
    RUN(test_long_string_fast_path());
    RUN(test_dense_escapes());
    RUN(test_every_byte_at_every_offset());
    RUN(test_seq_len());
    RUN(test_key());
    RUN(test_doubles());
    RUN(test_doubles_round_trip());
    RUN(test_integers());
    RUN(test_hex());
    RUN(test_base64());
    TEST_MAIN_END();
}
