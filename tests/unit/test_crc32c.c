/*
 * test_crc32c.c - CRC-32C (core/crc32c.h), the checksum of queue records.
 *
 * The published vectors (the "123456789" check value and RFC 3720's iSCSI
 * vectors) pin the polynomial, the reflection and the final inversion.
 * Whichever path the CPU takes (SSE4.2 or the table), every length from 0
 * to 100 at every alignment of a word must match a bit-at-a-time reference
 * written here from the definition, and extending a CRC piece by piece must
 * give the one-shot value: the queue checksums header and payload apart.
 */
#include "core/crc32c.h"
#include "testing.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The definition: reflected polynomial 0x82F63B78, initial and final
 * value all ones, one bit at a time. */
static uint32_t crc32c_reference(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void test_known_vectors(void)
{
    CHECK(rc_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(rc_crc32c(0, "", 0) == 0);
    CHECK(rc_crc32c(0, NULL, 0) == 0);

    unsigned char buf[32];
    memset(buf, 0, sizeof buf);
    CHECK(rc_crc32c(0, buf, 32) == 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);
    CHECK(rc_crc32c(0, buf, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    CHECK(rc_crc32c(0, buf, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    CHECK(rc_crc32c(0, buf, 32) == 0x113FDB5Cu);
}

static void fill_random(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* Lengths 0..100 at offsets 0..7 exercise the 8-byte loop, the byte tail
 * and unaligned loads of the hardware path. */
static void test_matches_reference(void)
{
    unsigned char buf[128];
    fill_random(buf, sizeof buf, 7);
    int mismatches = 0;
    for (size_t align = 0; align < 8; align++)
        for (size_t len = 0; len <= 100; len++)
            if (rc_crc32c(0, buf + align, len) != crc32c_reference(buf + align, len)) mismatches++;
    CHECK(mismatches == 0);

    size_t big = 1 << 20;
    unsigned char *p = malloc(big + 3);
    CHECK(p != NULL);
    if (!p) return;
    fill_random(p, big + 3, 99);
    CHECK(rc_crc32c(0, p + 3, big) == crc32c_reference(p + 3, big));
    /* Around the three-lane blocks of the hardware path (3 x 4096 bytes),
     * continuing from a non-zero CRC so the lanes' join carries it. */
    static const size_t lanes[] = {12287, 12288, 12289, 24576 + 5, 36864 + 4095};
    int lane_mismatches = 0;
    for (size_t i = 0; i < sizeof lanes / sizeof *lanes; i++) {
        uint32_t want = crc32c_reference(p, lanes[i] + 5);
        if (rc_crc32c(rc_crc32c(0, p, 5), p + 5, lanes[i]) != want) lane_mismatches++;
        if (rc_crc32c(0, p, lanes[i] + 5) != want) lane_mismatches++;
    }
    CHECK(lane_mismatches == 0);
    free(p);
}

static void test_incremental(void)
{
    unsigned char buf[200];
    fill_random(buf, sizeof buf, 3);
    uint32_t whole = rc_crc32c(0, buf, sizeof buf);
    int mismatches = 0;
    for (size_t cut = 0; cut <= sizeof buf; cut++) {
        uint32_t c = rc_crc32c(rc_crc32c(0, buf, cut), buf + cut, sizeof buf - cut);
        if (c != whole) mismatches++;
    }
    CHECK(mismatches == 0);

    /* Three pieces, one of them empty, the way a header and payload are. */
    CHECK(rc_crc32c(rc_crc32c(rc_crc32c(0, buf, 8), buf + 8, 0), buf + 8, 192) == whole);

    /* One byte at a time. */
    uint32_t c = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        c = rc_crc32c(c, buf + i, 1);
    CHECK(c == whole);
    CHECK(rc_crc32c(rc_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);
}

/* A checksum is only useful if it notices a changed bit anywhere. */
static void test_detects_single_bit_flips(void)
{
    unsigned char buf[64];
    fill_random(buf, sizeof buf, 11);
    uint32_t good = rc_crc32c(0, buf, sizeof buf);
    int missed = 0;
    for (size_t bit = 0; bit < sizeof buf * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        if (rc_crc32c(0, buf, sizeof buf) == good) missed++;
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    CHECK(missed == 0);
}

int main(void)
{
    RUN(test_known_vectors());
    RUN(test_matches_reference());
    RUN(test_incremental());
    RUN(test_detects_single_bit_flips());
    TEST_MAIN_END();
}
