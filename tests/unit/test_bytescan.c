/*
 * test_bytescan.c - the run scanners of core/bytescan.h against a byte-by-byte
 * reference, with the special byte at every position of the 16-byte vector
 * step and of the scalar tail. Built twice: as it is (SSE2 on x86-64) and
 * with RC_TEST_NO_SSE2 defined (tests/unit/test_bytescan_words.c), so the
 * 8-byte-word fallback other CPUs use is tested here too.
 */
#ifdef RC_TEST_NO_SSE2
#undef __SSE2__
#endif
#include "core/bytescan.h"

#include "testing.h"

#include <stdlib.h>

static size_t reference_run(const unsigned char *s, size_t n, bool (*ok)(unsigned char))
{
    size_t i = 0;
    while (i < n && ok(s[i]))
        i++;
    return i;
}

/* Every length up to 48 with one byte `c` planted at every position. */
static void check_planted(unsigned char c)
{
    unsigned char s[64];
    for (size_t n = 0; n <= 48; n++) {
        for (size_t at = 0; at <= n; at++) {
            memset(s, 'a', sizeof s);
            if (at < n) s[at] = c;
            size_t plain = rc_json_plain_run(s, n), text = rc_json_text_run(s, n);
            CHECK(plain == reference_run(s, n, rc_byte_is_json_plain));
            CHECK(text == reference_run(s, n, rc_byte_is_json_text));
        }
    }
}

/* ASCII-without-NUL over every length up to 80 (the 64-byte rounds, the
 * 16-byte steps, the overlapping last load and the short path) with one
 * byte planted at every position. */
static void check_ascii_without_nul(void)
{
    static const unsigned char planted[] = {0x00, 0x80, 0xC3, 0xFF};
    unsigned char s[80];
    int bad = 0;
    for (size_t n = 0; n <= sizeof s; n++) {
        memset(s, 'a', sizeof s);
        if (!rc_ascii_without_nul(s, n)) bad++;
        for (size_t k = 0; k < sizeof planted; k++) {
            for (size_t at = 0; at < n; at++) {
                memset(s, 0x7F, sizeof s);
                s[at] = planted[k];
                if (rc_ascii_without_nul(s, n)) bad++;
            }
        }
    }
    CHECK(bad == 0);
}

/* Random bytes, mostly plain, so runs of every length come up. */
static void check_random(void)
{
    unsigned char s[256];
    srand(7);
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % (int)sizeof s);
        for (size_t i = 0; i < n; i++)
            s[i] =
                rand() % 40 ? (unsigned char)(0x20 + rand() % 0x5F) : (unsigned char)(rand() % 256);
        size_t off = n ? (size_t)(rand() % (int)n) : 0;
        if (rc_json_plain_run(s + off, n - off) !=
                reference_run(s + off, n - off, rc_byte_is_json_plain) ||
            rc_json_text_run(s + off, n - off) !=
                reference_run(s + off, n - off, rc_byte_is_json_text)) {
            CHECK(!"random run differs from the reference");
            return;
        }
    }
    CHECK(1);
}

int main(void)
{
    static const unsigned char specials[] = {'"',  '\\', 0x00, 0x01, 0x0A,
                                             0x1F, 0x7F, 0x80, 0xC3, 0xFF};
    for (size_t i = 0; i < sizeof specials; i++)
        check_planted(specials[i]);
    /* The edges of the classes: a space and a tilde are plain. */
    unsigned char edge[] = " ~ ~ ~ ~ ~ ~ ~ ~ ~ ~";
    CHECK(rc_json_plain_run(edge, sizeof edge - 1) == sizeof edge - 1);
    CHECK(rc_json_text_run((const unsigned char *)"caf\xC3\xA9\"", 6) == 5);
    CHECK(rc_json_plain_run((const unsigned char *)"caf\xC3\xA9\"", 6) == 3);
    check_random();
    check_ascii_without_nul();
    TEST_MAIN_END();
}
