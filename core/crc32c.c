/*
 * crc32c.c - CRC-32C, in hardware where the CPU has it.
 *
 * The software path is the classic byte-at-a-time table over the reflected
 * polynomial 0x82F63B78; the hardware path uses the SSE4.2 crc32
 * instruction eight bytes at a time. Which one runs is decided once.
 *
 * The crc32 instruction has a latency of three cycles but can start one
 * every cycle, so a single chain of them runs at a third of the speed the
 * CPU offers. Long inputs (queue records are hundreds of KiB) are therefore
 * taken in blocks of three lanes checksummed side by side, and the lanes'
 * CRCs joined: the CRC register is linear, so the CRC of A followed by B is
 * the CRC of A "shifted" over |B| zero bytes, xor the CRC of B from zero.
 * Shifting over a lane's length is four table lookups, the tables built
 * once from the 32 single-bit shifts.
 */
#include "core/crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
}

static uint32_t crc32c_soft(uint32_t crc, const unsigned char *p, size_t n)
{
    pthread_once(&table_once, build_table);
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LANE 4096u /* bytes per lane of the three-lane loop */

static uint32_t lane_shift[4][256]; /* byte k of a CRC -> its shift over LANE zeros */
static pthread_once_t lane_shift_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static uint32_t crc32c_one_lane(uint32_t crc,
                                                                  const unsigned char *p, size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

static void build_lane_shift(void)
{
    static const unsigned char zeros[LANE];
    uint32_t bit_shift[32];
    for (int b = 0; b < 32; b++)
        bit_shift[b] = crc32c_one_lane(1u << b, zeros, LANE);
    for (int k = 0; k < 4; k++) {
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t s = 0;
            for (int b = 0; b < 8; b++)
                if (v & (1u << b)) s ^= bit_shift[8 * k + b];
            lane_shift[k][v] = s;
        }
    }
}

/* The CRC register c carried over LANE zero bytes. */
static uint32_t shift_over_lane(uint32_t c)
{
    return lane_shift[0][c & 0xff] ^ lane_shift[1][(c >> 8) & 0xff] ^
           lane_shift[2][(c >> 16) & 0xff] ^ lane_shift[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p,
                                                            size_t n)
{
    if (n >= 3 * LANE) pthread_once(&lane_shift_once, build_lane_shift);
    for (; n >= 3 * LANE; n -= 3 * LANE, p += 3 * LANE) {
        uint64_t a = crc, b = 0, d = 0;
        for (size_t i = 0; i < LANE; i += 8) {
            uint64_t va, vb, vd;
            memcpy(&va, p + i, 8);
            memcpy(&vb, p + LANE + i, 8);
            memcpy(&vd, p + 2 * LANE + i, 8);
            a = __builtin_ia32_crc32di(a, va);
            b = __builtin_ia32_crc32di(b, vb);
            d = __builtin_ia32_crc32di(d, vd);
        }
        crc = shift_over_lane(shift_over_lane((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
    }
    return crc32c_one_lane(crc, p, n);
}

static int have_sse42(void)
{
    static atomic_int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}
#endif

uint32_t rc_crc32c(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    crc = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (have_sse42()) return ~crc32c_hw(crc, p, n);
#endif
    return ~crc32c_soft(crc, p, n);
}
