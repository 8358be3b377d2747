/*
 * fuzz_http_body.c - libFuzzer target for the OTLP/HTTP body path:
 * Content-Encoding decompression (otlp/compression.h), then a decoder.
 *
 * Input layout: the first byte chooses, the rest is the body.
 *   bits 0-1  Content-Encoding: identity, gzip, deflate, zstd
 *   bit 2     decoder: 0 protobuf, 1 OTLP/JSON
 *   bit 3     0: the body is a compressed stream, decompressed as a
 *                receiver would (corrupt streams, bombs, truncation);
 *             1: the body is plain; we compress it ourselves with zlib or
 *                libzstd and check that rc_decompress gives it back exactly,
 *                that a limit of exactly its length passes and one byte less
 *                is RC_ETOOBIG - the off-by-one a bomb guard gets wrong.
 * Whatever decompresses is then decoded and round-tripped (roundtrip.c).
 * Seeds: fuzz/corpus/http_body/, made by fuzz/corpus/make_http_body.sh.
 */
#include "fuzz/roundtrip.h"

#include "core/error.h"
#include "otlp/compression.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* A receiver's body limit, small enough to keep each run fast. */
#define FUZZ_MAX_BODY ((size_t)1 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const enc_names[] = {"identity", "gzip", "deflate", "zstd"};

__attribute__((noreturn)) static void fail(const char *what, rc_encoding enc, const rc_error *err)
{
    fprintf(stderr, "fuzz: property broken: %s: %s (%s)\n", enc_names[enc], what,
            err ? err->msg : "");
    abort();
}

/* Compresses `in` as `enc` into a malloc'd buffer; false if the library
 * refuses (the input is then skipped, it says nothing about our code). */
static bool compress_as(rc_encoding enc, const uint8_t *in, size_t len, uint8_t **out,
                        size_t *out_len)
{
    if (enc == RC_ENC_IDENTITY) {
        *out = malloc(len ? len : 1);
        if (!*out) return false;
        if (len) memcpy(*out, in, len);
        *out_len = len;
        return true;
    }
    if (enc == RC_ENC_ZSTD) {
        size_t cap = ZSTD_compressBound(len);
        *out = malloc(cap ? cap : 1);
        if (!*out) return false;
        *out_len = ZSTD_compress(*out, cap, in, len, 1);
        return !ZSTD_isError(*out_len);
    }
    /* gzip wraps deflate in a gzip header, HTTP "deflate" in a zlib one. */
    int window_bits = enc == RC_ENC_GZIP ? 15 + 16 : 15;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
    size_t cap = deflateBound(&zs, len) + 32;
    *out = malloc(cap);
    bool ok = false;
    if (*out) {
        zs.next_in = (Bytef *)in;
        zs.avail_in = (uInt)len;
        zs.next_out = *out;
        zs.avail_out = (uInt)cap;
        ok = deflate(&zs, Z_FINISH) == Z_STREAM_END;
        *out_len = zs.total_out;
    }
    deflateEnd(&zs);
    return ok;
}

static rc_status decompress(rc_encoding enc, const uint8_t *in, size_t len, size_t max_out,
                            uint8_t **out, size_t *out_len, rc_error *err)
{
    *out = NULL;
    *out_len = 0;
    err->msg[0] = '\0';
    rc_status st = rc_decompress(enc, in, len, max_out, out, out_len, err);
    if (st == RC_OK && *out_len > max_out) fail("output passes max_out", enc, NULL);
    if (st == RC_OK && *out_len && !*out) fail("RC_OK with a NULL buffer", enc, NULL);
    if (st != RC_OK && st != RC_EINVAL && st != RC_ETOOBIG && st != RC_ENOMEM)
        fail("status outside the contract", enc, err);
    if (st != RC_OK && err->msg[0] == '\0') fail("failure without a message", enc, NULL);
    return st;
}

/* Bit 3 clear: a stream from the wire. */
static void check_stream(rc_encoding enc, fuzz_codec codec, const uint8_t *body, size_t len)
{
    uint8_t *plain;
    size_t plain_len;
    rc_error err;
    if (decompress(enc, body, len, FUZZ_MAX_BODY, &plain, &plain_len, &err) != RC_OK) return;
    if (enc == RC_ENC_IDENTITY && (plain_len != len || memcmp(plain, body, len) != 0))
        fail("identity changed the body", enc, NULL);
    fuzz_check_decode(codec, plain, plain_len);
    rc_decompressed_free(plain, plain_len);
}

/* Bit 3 set: our own compression of a known body. */
static void check_exact_limit(rc_encoding enc, fuzz_codec codec, const uint8_t *body, size_t len)
{
    uint8_t *packed = NULL, *plain;
    size_t packed_len = 0, plain_len;
    rc_error err;
    if (!compress_as(enc, body, len, &packed, &packed_len)) goto done;

    rc_status st = decompress(enc, packed, packed_len, len, &plain, &plain_len, &err);
    if (st == RC_ENOMEM) goto done;
    if (st != RC_OK) fail("a valid stream within the limit was refused", enc, &err);
    if (plain_len != len || (len && memcmp(plain, body, len) != 0))
        fail("the stream did not decompress to what was compressed", enc, NULL);
    fuzz_check_decode(codec, plain, plain_len);
    rc_decompressed_free(plain, plain_len);

    if (len > 0) {
        st = decompress(enc, packed, packed_len, len - 1, &plain, &plain_len, &err);
        if (st == RC_OK) {
            rc_decompressed_free(plain, plain_len);
            fail("a stream one byte over the limit was accepted", enc, NULL);
        }
        if (st != RC_ETOOBIG && st != RC_ENOMEM)
            fail("a stream one byte over the limit was not RC_ETOOBIG", enc, &err);
    }
done:
    free(packed);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    rc_encoding enc = (rc_encoding)(data[0] & 3);
    fuzz_codec codec = data[0] & 4 ? FUZZ_JSON : FUZZ_PROTO;
    if (data[0] & 8)
        check_exact_limit(enc, codec, data + 1, size - 1);
    else
        check_stream(enc, codec, data + 1, size - 1);
    fuzz_check_no_charges("fuzz_http_body");
    return 0;
}
