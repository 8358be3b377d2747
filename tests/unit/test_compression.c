/*
 * test_compression.c - bounded decompression (otlp/compression.c).
 *
 * Inputs are produced here with zlib and libzstd so every case states what
 * a real client would send: round trips for each encoding, concatenated
 * gzip members and zstd frames, corrupt, truncated and trailing-garbage
 * streams, and zip bombs. For the bombs the memory limiter itself is the
 * probe: its limit is set just above max_out, so an implementation that
 * buffered more than max_out would be refused (RC_ENOMEM) instead of
 * answering RC_ETOOBIG. After every case the limiter must be back to zero.
 */
#include <stdbool.h> /* compression.h uses bool without including it */

#include "otlp/compression.h"

#include "core/memlimit.h"
#include "testing.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define MIB ((size_t)1 << 20)

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

static void blob_free(blob *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* Compressible but not trivial: text-like records with a counter. */
static blob sample(size_t len)
{
    blob b = {malloc(len ? len : 1), len};
    for (size_t i = 0; i < len; i++)
        b.data[i] = (uint8_t)("span-attribute:"[i % 15] + (i / 4096) % 7);
    return b;
}

/* Deflates `repeat` copies of `chunk` with the given windowBits (16+15 gzip,
 * 15 zlib, -15 raw), streaming so a 64 MiB bomb needs no 64 MiB input. */
static blob zlib_pack(int window_bits, const uint8_t *chunk, size_t len, size_t repeat)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&zs, len * repeat) + 64;
    if (cap > 8 * MIB) cap = 8 * MIB; /* bombs compress ~1000:1 */
    blob out = {malloc(cap), 0};
    for (size_t i = 0; i < repeat; i++) {
        zs.next_in = (Bytef *)chunk;
        zs.avail_in = (uInt)len;
        int flush = i + 1 == repeat ? Z_FINISH : Z_NO_FLUSH;
        do {
            zs.next_out = out.data + out.len;
            zs.avail_out = (uInt)(cap - out.len);
            deflate(&zs, flush);
            out.len = cap - zs.avail_out;
        } while (zs.avail_in > 0 || (flush == Z_FINISH && zs.avail_out == 0));
    }
    deflateEnd(&zs);
    return out;
}

/* zstd: `repeat` copies of `chunk`, size unknown to the frame header unless
 * pledged, with a bounded window. */
static blob zstd_pack(const uint8_t *chunk, size_t len, size_t repeat, bool pledge)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 20);
    if (pledge) ZSTD_CCtx_setPledgedSrcSize(cc, (unsigned long long)len * repeat);
    size_t cap = ZSTD_compressBound(len * repeat) + 64;
    if (cap > 8 * MIB) cap = 8 * MIB;
    blob out = {malloc(cap), 0};
    for (size_t i = 0; i < repeat; i++) {
        ZSTD_inBuffer in = {chunk, len, 0};
        ZSTD_EndDirective mode = i + 1 == repeat ? ZSTD_e_end : ZSTD_e_continue;
        size_t left;
        do {
            ZSTD_outBuffer ob = {out.data, cap, out.len};
            left = ZSTD_compressStream2(cc, &ob, &in, mode);
            out.len = ob.pos;
        } while (in.pos < in.size || (mode == ZSTD_e_end && left != 0));
    }
    ZSTD_freeCCtx(cc);
    return out;
}

static blob concat(blob a, blob b)
{
    blob out = {malloc(a.len + b.len), a.len + b.len};
    if (a.len) memcpy(out.data, a.data, a.len);
    if (b.len) memcpy(out.data + a.len, b.data, b.len);
    return out;
}

/* A zstd skippable frame: magic 0x184D2A5?, 32-bit length, payload. */
static blob zstd_skippable(size_t payload)
{
    blob b = {calloc(1, 8 + payload), 8 + payload};
    const uint8_t hdr[8] = {0x50, 0x2a, 0x4d, 0x18, (uint8_t)payload, (uint8_t)(payload >> 8),
                            0,    0};
    memcpy(b.data, hdr, 8);
    return b;
}

/* Decompresses and compares with `want`; checks the charge while held. */
static void expect_round_trip(const char *what, rc_encoding enc, blob packed, blob want)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    rc_error err = {{0}};
    rc_status st = rc_decompress(enc, packed.data, packed.len, 64 * MIB, &out, &out_len, &err);
    if (st != RC_OK) fprintf(stderr, "%s: %s\n", what, err.msg);
    CHECK(st == RC_OK);
    CHECK(out != NULL);
    CHECK(out_len == want.len);
    CHECK(out_len == want.len && (want.len == 0 || memcmp(out, want.data, want.len) == 0));
    CHECK(rc_mem_in_use() == out_len); /* the charge is exactly the length */
    rc_decompressed_free(out, out_len);
    CHECK(rc_mem_in_use() == 0);
}

static rc_status decompress_status(rc_encoding enc, blob in, size_t max_out, rc_error *err)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    rc_status st = rc_decompress(enc, in.data, in.len, max_out, &out, &out_len, err);
    if (st == RC_OK) {
        rc_decompressed_free(out, out_len);
    } else {
        CHECK(out == NULL);
    }
    CHECK(rc_mem_in_use() == 0);
    return st;
}

static void test_encoding_names(void)
{
    static const struct {
        const char *text;
        bool ok;
        rc_encoding enc;
    } cases[] = {
        {NULL, true, RC_ENC_IDENTITY},       {"", true, RC_ENC_IDENTITY},
        {"identity", true, RC_ENC_IDENTITY}, {"gzip", true, RC_ENC_GZIP},
        {"GZip", true, RC_ENC_GZIP},         {"x-gzip", true, RC_ENC_GZIP},
        {" gzip ", true, RC_ENC_GZIP},       {"deflate", true, RC_ENC_DEFLATE},
        {"ZSTD", true, RC_ENC_ZSTD},         {"br", false, RC_ENC_IDENTITY},
        {"snappy", false, RC_ENC_IDENTITY},  {"gzip, br", false, RC_ENC_IDENTITY},
        {"gzipx", false, RC_ENC_IDENTITY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc_encoding enc = (rc_encoding)-1;
        bool ok = rc_encoding_parse(cases[i].text, &enc);
        CHECK(ok == cases[i].ok);
        if (ok && cases[i].ok) CHECK(enc == cases[i].enc);
    }
}

static void test_round_trips(void)
{
    blob plain = sample(300000);
    blob gz = zlib_pack(16 + MAX_WBITS, plain.data, plain.len, 1);
    blob zl = zlib_pack(MAX_WBITS, plain.data, plain.len, 1);
    blob raw = zlib_pack(-MAX_WBITS, plain.data, plain.len, 1);
    blob zs = zstd_pack(plain.data, plain.len, 1, true);
    blob zs_stream = zstd_pack(plain.data, plain.len, 1, false);
    expect_round_trip("identity", RC_ENC_IDENTITY, plain, plain);
    expect_round_trip("gzip", RC_ENC_GZIP, gz, plain);
    expect_round_trip("deflate (zlib)", RC_ENC_DEFLATE, zl, plain);
    expect_round_trip("deflate (raw)", RC_ENC_DEFLATE, raw, plain);
    expect_round_trip("zstd", RC_ENC_ZSTD, zs, plain);
    expect_round_trip("zstd, size unknown", RC_ENC_ZSTD, zs_stream, plain);
    blob tiny = sample(1);
    blob tiny_gz = zlib_pack(16 + MAX_WBITS, tiny.data, tiny.len, 1);
    expect_round_trip("gzip, one byte", RC_ENC_GZIP, tiny_gz, tiny);
    blob none = {NULL, 0};
    blob none_gz = zlib_pack(16 + MAX_WBITS, (const uint8_t *)"", 0, 1);
    expect_round_trip("gzip of nothing", RC_ENC_GZIP, none_gz, none);
    blob *all[] = {&plain, &gz, &zl, &raw, &zs, &zs_stream, &tiny, &tiny_gz, &none_gz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        blob_free(all[i]);
}

static void test_multi_member(void)
{
    blob a = sample(5000), b = sample(7000);
    blob ab = concat(a, b);
    blob ga = zlib_pack(16 + MAX_WBITS, a.data, a.len, 1);
    blob gb = zlib_pack(16 + MAX_WBITS, b.data, b.len, 1);
    blob gab = concat(ga, gb);
    expect_round_trip("gzip, two members", RC_ENC_GZIP, gab, ab);

    blob za = zstd_pack(a.data, a.len, 1, true);
    blob zb = zstd_pack(b.data, b.len, 1, false);
    blob skip = zstd_skippable(100);
    blob zas = concat(za, skip);
    blob zasb = concat(zas, zb);
    expect_round_trip("zstd, frames and a skippable frame", RC_ENC_ZSTD, zasb, ab);
    blob none = {NULL, 0};
    expect_round_trip("zstd, only a skippable frame", RC_ENC_ZSTD, skip, none);
    blob *all[] = {&a, &b, &ab, &ga, &gb, &gab, &za, &zb, &skip, &zas, &zasb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        blob_free(all[i]);
}

static void test_empty_input(void)
{
    rc_encoding encs[] = {RC_ENC_IDENTITY, RC_ENC_GZIP, RC_ENC_DEFLATE, RC_ENC_ZSTD};
    for (size_t i = 0; i < 4; i++) {
        uint8_t *out = NULL;
        size_t out_len = 99;
        rc_error err = {{0}};
        CHECK(rc_decompress(encs[i], NULL, 0, MIB, &out, &out_len, &err) == RC_OK);
        CHECK(out != NULL);
        CHECK(out_len == 0);
        rc_decompressed_free(out, out_len);
        CHECK(rc_mem_in_use() == 0);
    }
}

static void test_exact_limit(void)
{
    blob plain = sample(100000);
    blob gz = zlib_pack(16 + MAX_WBITS, plain.data, plain.len, 1);
    blob zs = zstd_pack(plain.data, plain.len, 1, true);
    rc_error err = {{0}};
    CHECK(decompress_status(RC_ENC_GZIP, gz, plain.len, &err) == RC_OK);
    CHECK(decompress_status(RC_ENC_GZIP, gz, plain.len - 1, &err) == RC_ETOOBIG);
    CHECK_CONTAINS(err.msg, "exceeds the limit of 99999 bytes");
    CHECK(decompress_status(RC_ENC_ZSTD, zs, plain.len, &err) == RC_OK);
    CHECK(decompress_status(RC_ENC_ZSTD, zs, plain.len - 1, &err) == RC_ETOOBIG);
    CHECK(decompress_status(RC_ENC_IDENTITY, plain, plain.len, &err) == RC_OK);
    CHECK(decompress_status(RC_ENC_IDENTITY, plain, plain.len - 1, &err) == RC_ETOOBIG);
    blob_free(&plain);
    blob_free(&gz);
    blob_free(&zs);
}

/* 64 MiB of zeros against a 1 MiB limit, with the limiter set so that
 * holding more than max_out (plus the decoder's own state) is refused. */
static void test_bombs(void)
{
    uint8_t *zeros = calloc(1, MIB);
    size_t max_out = MIB;
    struct {
        const char *what;
        rc_encoding enc;
        blob packed;
        size_t decoder_slack; /* zstd's window is charged too */
    } bombs[] = {
        {"gzip", RC_ENC_GZIP, zlib_pack(16 + MAX_WBITS, zeros, MIB, 64), 0},
        {"deflate", RC_ENC_DEFLATE, zlib_pack(MAX_WBITS, zeros, MIB, 64), 0},
        {"raw deflate", RC_ENC_DEFLATE, zlib_pack(-MAX_WBITS, zeros, MIB, 64), 0},
        {"zstd", RC_ENC_ZSTD, zstd_pack(zeros, MIB, 64, false), 3 * MIB},
        {"zstd, size pledged", RC_ENC_ZSTD, zstd_pack(zeros, MIB, 64, true), 3 * MIB},
    };
    size_t old_limit = rc_mem_limit();
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        CHECK(bombs[i].packed.len < MIB); /* it really is a bomb */
        rc_mem_set_limit(max_out + 1 + bombs[i].decoder_slack);
        rc_error err = {{0}};
        rc_status st = decompress_status(bombs[i].enc, bombs[i].packed, max_out, &err);
        if (st != RC_ETOOBIG) fprintf(stderr, "%s bomb: %d %s\n", bombs[i].what, st, err.msg);
        CHECK(st == RC_ETOOBIG);
        CHECK_CONTAINS(err.msg, "exceeds the limit of 1048576 bytes");
        blob_free(&bombs[i].packed);
    }
    rc_mem_set_limit(old_limit);
    free(zeros);
}

static void test_corrupt(void)
{
    blob plain = sample(50000);
    blob gz = zlib_pack(16 + MAX_WBITS, plain.data, plain.len, 1);
    blob zl = zlib_pack(MAX_WBITS, plain.data, plain.len, 1);
    blob zs = zstd_pack(plain.data, plain.len, 1, true);
    blob text = {(uint8_t *)strdup("this is not compressed at all"), 29};
    rc_error err = {{0}};

    CHECK(decompress_status(RC_ENC_GZIP, text, MIB, &err) == RC_EINVAL);
    CHECK_STR(err.msg, "invalid gzip body: incorrect header check");
    CHECK(decompress_status(RC_ENC_ZSTD, text, MIB, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid zstd body: ");
    CHECK(decompress_status(RC_ENC_DEFLATE, text, MIB, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid deflate body: ");

    /* a zlib stream is not a gzip stream */
    CHECK(decompress_status(RC_ENC_GZIP, zl, MIB, &err) == RC_EINVAL);

    /* flipped bytes in the middle: bad data or a checksum mismatch */
    blob bad = concat(gz, (blob){NULL, 0});
    for (size_t i = bad.len / 2; i < bad.len / 2 + 8; i++)
        bad.data[i] ^= 0x5a;
    CHECK(decompress_status(RC_ENC_GZIP, bad, MIB, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid gzip body: ");
    blob_free(&bad);
    bad = concat(zs, (blob){NULL, 0});
    for (size_t i = bad.len / 2; i < bad.len / 2 + 8; i++)
        bad.data[i] ^= 0x5a;
    CHECK(decompress_status(RC_ENC_ZSTD, bad, MIB, &err) == RC_EINVAL);
    blob_free(&bad);

    /* trailing garbage after the gzip member, zlib stream and zstd frame */
    blob junk = {(uint8_t *)strdup("JUNK"), 4};
    bad = concat(gz, junk);
    CHECK(decompress_status(RC_ENC_GZIP, bad, MIB, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "trailing data");
    blob_free(&bad);
    bad = concat(zl, junk);
    CHECK(decompress_status(RC_ENC_DEFLATE, bad, MIB, &err) == RC_EINVAL);
    blob_free(&bad);
    bad = concat(zs, junk);
    CHECK(decompress_status(RC_ENC_ZSTD, bad, MIB, &err) == RC_EINVAL);
    blob_free(&bad);

    blob_free(&junk);
    blob_free(&text);
    blob_free(&plain);
    blob_free(&gz);
    blob_free(&zl);
    blob_free(&zs);
}

static void test_truncated(void)
{
    blob plain = sample(50000);
    struct {
        const char *what;
        rc_encoding enc;
        blob packed;
    } cases[] = {
        {"gzip", RC_ENC_GZIP, zlib_pack(16 + MAX_WBITS, plain.data, plain.len, 1)},
        {"deflate", RC_ENC_DEFLATE, zlib_pack(MAX_WBITS, plain.data, plain.len, 1)},
        {"raw deflate", RC_ENC_DEFLATE, zlib_pack(-MAX_WBITS, plain.data, plain.len, 1)},
        {"zstd", RC_ENC_ZSTD, zstd_pack(plain.data, plain.len, 1, true)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        blob p = cases[i].packed;
        /* cut in the trailer, in the middle, and right after the header */
        size_t cuts[] = {p.len - 1, p.len - 4, p.len / 2, 3};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            rc_error err = {{0}};
            blob cut = {p.data, cuts[c]};
            rc_status st = decompress_status(cases[i].enc, cut, MIB, &err);
            if (st != RC_EINVAL)
                fprintf(stderr, "%s cut at %zu: %d %s\n", cases[i].what, cuts[c], st, err.msg);
            CHECK(st == RC_EINVAL);
            CHECK_CONTAINS(err.msg, "invalid ");
        }
        blob_free(&cases[i].packed);
    }
    blob_free(&plain);
}

static void test_memory_limiter_refuses(void)
{
    blob plain = sample(200000);
    blob gz = zlib_pack(16 + MAX_WBITS, plain.data, plain.len, 1);
    blob zs = zstd_pack(plain.data, plain.len, 1, false);
    size_t old_limit = rc_mem_limit();
    rc_mem_set_limit(50000);
    rc_error err = {{0}};
    CHECK(decompress_status(RC_ENC_GZIP, gz, MIB, &err) == RC_ENOMEM);
    CHECK_CONTAINS(err.msg, "memory limit");
    CHECK(decompress_status(RC_ENC_ZSTD, zs, MIB, &err) == RC_ENOMEM);
    CHECK(decompress_status(RC_ENC_IDENTITY, plain, MIB, &err) == RC_ENOMEM);
    rc_mem_set_limit(old_limit);
    CHECK(decompress_status(RC_ENC_GZIP, gz, MIB, &err) == RC_OK);
    blob_free(&plain);
    blob_free(&gz);
    blob_free(&zs);
}

int main(void)
{
    RUN(test_encoding_names());
    RUN(test_round_trips());
    RUN(test_multi_member());
    RUN(test_empty_input());
    RUN(test_exact_limit());
    RUN(test_bombs());
    RUN(test_corrupt());
    RUN(test_truncated());
    RUN(test_memory_limiter_refuses());
    CHECK(rc_mem_in_use() == 0);
    TEST_MAIN_END();
}
