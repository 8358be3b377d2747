/*
 * respan_api_uuid.c - UUID v5 (RFC 9562: SHA-1 of namespace and name) for
 * the summary's evaluator ids.
 *
 * Respan keys scores by evaluator_id, a UUID. The collector only knows an
 * evaluator's slug, so the id is derived from it: the same slug gives the
 * same id on every run and every replica, and a client can compute it
 * itself (Python: uuid.uuid5(namespace, slug)). None of the libraries the
 * project links (grpc, protobuf-c, jansson, libyaml, libmicrohttpd,
 * nghttp2, zlib, zstd, libcurl, SQLite) exports SHA-1, and linking
 * libcrypto for one hash of a few bytes is not worth a new dependency, so
 * SHA-1 (FIPS 180-4) is written here. It is used as a name hash, not for
 * security.
 */
#include "extension/respan_api.h"

#include <stdio.h>
#include <string.h>

typedef struct sha1 {
    uint32_t h[5];
    uint8_t block[64];
    size_t fill;
    uint64_t bytes;
} sha1;

static uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(sha1 *c, const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = c->h[0], b = c->h[1], d = c->h[3], e = c->h[4], cc = c->h[2];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & cc) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ cc ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & cc) | (b & d) | (cc & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ cc ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = cc;
        cc = rol(b, 30);
        b = a;
        a = t;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
}

static void sha1_init(sha1 *c)
{
    static const uint32_t h0[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    memset(c, 0, sizeof *c);
    memcpy(c->h, h0, sizeof h0);
}

static void sha1_update(sha1 *c, const uint8_t *p, size_t n)
{
    c->bytes += n;
    while (n) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill == 64) {
            sha1_block(c, c->block);
            c->fill = 0;
        }
    }
}

static void sha1_final(sha1 *c, uint8_t out[20])
{
    uint64_t bits = c->bytes * 8;
    uint8_t pad[72] = {0x80};
    size_t npad = (c->fill < 56 ? 56 : 120) - c->fill;
    for (int i = 0; i < 8; i++)
        pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(c, pad, npad + 8);
    for (int i = 0; i < 20; i++)
        out[i] = (uint8_t)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}

void rc_uuid5(const uint8_t ns[16], const char *name, size_t len, char out[37])
{
    sha1 c;
    uint8_t d[20];
    sha1_init(&c);
    sha1_update(&c, ns, 16);
    sha1_update(&c, (const uint8_t *)name, len);
    sha1_final(&c, d);
    d[6] = (uint8_t)((d[6] & 0x0F) | 0x50); /* version 5 */
    d[8] = (uint8_t)((d[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        o += snprintf(o, 3, "%02x", d[i]);
    }
    *o = 0;
}
