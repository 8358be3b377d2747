/*
 * compression.c - bounded decompression of request bodies (see
 * compression.h).
 *
 * The model: one output buffer that grows geometrically, is charged to the
 * memory limiter before every growth, and never grows past max_out + 1
 * bytes. The extra byte is how overflow is detected: the moment a decoder
 * has written max_out + 1 bytes we stop with RC_ETOOBIG, so a zip bomb costs
 * at most max_out + 1 bytes however far it would expand. A size hint from
 * the stream (gzip ISIZE, zstd frame content size) only sets the first
 * capacity; it is attacker-controlled, so it is clamped and never trusted
 * as a limit.
 *
 * Invariants:
 *   - out_buf.charged == out_buf.cap at every moment: what the buffer holds
 *     is exactly what the limiter knows about;
 *   - on RC_OK the buffer is shrunk to its length, so the charge equals the
 *     length handed to the caller and rc_decompressed_free(buf, len)
 *     releases it exactly;
 *   - on failure nothing stays charged and nothing is returned.
 *
 * Accepted inputs: "gzip" is one or more concatenated gzip members (as
 * gunzip and Go's gzip.Reader accept); "deflate" is the zlib format RFC 9110
 * means, with raw RFC 1951 deflate as a fallback because some clients send
 * that; "zstd" is one or more frames, skippable frames included. Anything
 * after the last member or frame, or a stream that stops early, is
 * RC_EINVAL. An empty body decodes to an empty body whatever the encoding:
 * clients that compress "nothing" sometimes send zero bytes.
 */
/* compression.h uses bool without including <stdbool.h>. */
#include <stdbool.h>

#include "otlp/compression.h"

#include "core/memlimit.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* First capacity when the stream gives no hint. */
#define OUT_MIN_CAP ((size_t)16 << 10)
/* Deflate cannot expand more than about 1032:1, so a gzip ISIZE hint above
 * that ratio is a lie and is not used to size the first buffer. */
#define DEFLATE_MAX_RATIO 1032
/* zstd window bounds: never below what ordinary compressors use with an
 * unknown size (level 19 uses 8 MiB), never above zstd's default limit. */
#define ZSTD_WLOG_FLOOR 23
#define ZSTD_WLOG_CEIL 27

bool rc_encoding_parse(const char *value, rc_encoding *out)
{
    if (!value) {
        *out = RC_ENC_IDENTITY;
        return true;
    }
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    static const struct {
        const char *name;
        rc_encoding enc;
    } names[] = {
        {"", RC_ENC_IDENTITY},   {"identity", RC_ENC_IDENTITY}, {"gzip", RC_ENC_GZIP},
        {"x-gzip", RC_ENC_GZIP}, {"deflate", RC_ENC_DEFLATE},   {"zstd", RC_ENC_ZSTD},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) == n && strncasecmp(names[i].name, value, n) == 0) {
            *out = names[i].enc;
            return true;
        }
    }
    return false;
}

/* --- the bounded output buffer ------------------------------------------- */

typedef struct out_buf {
    uint8_t *data;
    size_t len;
    size_t cap;   /* == bytes charged to the limiter */
    size_t limit; /* max_out + 1: reaching it means the output is too big */
} out_buf;

static rc_status out_reserve(out_buf *o, size_t new_cap, rc_error *err)
{
    if (new_cap > o->limit) new_cap = o->limit;
    if (new_cap <= o->cap) return RC_OK;
    size_t extra = new_cap - o->cap;
    if (!rc_mem_try_charge(extra)) {
        rc_error_set(err, "memory limit reached while decompressing the body (%zu bytes so far)",
                     o->len);
        return RC_ENOMEM;
    }
    uint8_t *p = realloc(o->data, new_cap);
    if (!p) {
        rc_mem_release(extra);
        rc_error_set(err, "out of memory while decompressing the body");
        return RC_ENOMEM;
    }
    o->data = p;
    o->cap = new_cap;
    return RC_OK;
}

/* Makes room for more output: doubles, up to the limit. RC_ETOOBIG once the
 * buffer already holds limit bytes, which is one more than allowed. */
static rc_status out_grow(out_buf *o, size_t max_out, rc_error *err)
{
    if (o->cap >= o->limit) {
        rc_error_set(err, "decompressed body exceeds the limit of %zu bytes", max_out);
        return RC_ETOOBIG;
    }
    size_t want = o->cap < OUT_MIN_CAP / 2 ? OUT_MIN_CAP : o->cap * 2;
    if (want < o->cap) want = o->limit; /* overflow */
    return out_reserve(o, want, err);
}

static void out_discard(out_buf *o)
{
    free(o->data);
    rc_mem_release(o->cap);
    o->data = NULL;
    o->len = o->cap = 0;
}

/* Hands the buffer to the caller, shrunk so the charge equals its length. */
static void out_finish(out_buf *o, uint8_t **out, size_t *out_len)
{
    size_t keep = o->len ? o->len : 1;
    if (o->cap == 0) {
        o->data = malloc(1); /* callers get a non-NULL buffer even when empty */
    } else if (o->cap > keep) {
        uint8_t *p = realloc(o->data, keep);
        if (p) o->data = p; /* a failed shrink keeps the larger block */
    }
    rc_mem_release(o->cap - o->len);
    *out = o->data;
    *out_len = o->len;
    o->data = NULL;
    o->len = o->cap = 0;
}

static size_t clamp_hint(size_t hint, size_t max_out)
{
    if (hint < OUT_MIN_CAP) return OUT_MIN_CAP;
    /* +1 so a stream that is exactly its hint ends without a reallocation */
    return hint >= max_out ? max_out + 1 : hint + 1;
}

/* --- identity --------------------------------------------------------------- */

static rc_status copy_identity(const uint8_t *in, size_t in_len, size_t max_out, out_buf *o,
                               rc_error *err)
{
    if (in_len > max_out) {
        rc_error_set(err, "body of %zu bytes exceeds the limit of %zu bytes", in_len, max_out);
        return RC_ETOOBIG;
    }
    rc_status st = out_reserve(o, in_len, err);
    if (st != RC_OK) return st;
    if (in_len) memcpy(o->data, in, in_len);
    o->len = in_len;
    return RC_OK;
}

/* --- gzip and deflate (zlib) ---------------------------------------------- */

static bool is_zlib_header(const uint8_t *in, size_t len)
{
    /* RFC 1950: CM = 8 (deflate), CINFO <= 7, and the 16-bit header is a
     * multiple of 31. A raw deflate stream rarely passes all three. */
    return len >= 2 && (in[0] & 0x0f) == 8 && (in[0] >> 4) <= 7 &&
           (((unsigned)in[0] << 8) | in[1]) % 31 == 0;
}

static bool is_gzip_header(const uint8_t *in, size_t len)
{
    return len >= 2 && in[0] == 0x1f && in[1] == 0x8b;
}

/* The last member's ISIZE (length mod 2^32), when it is believable. */
static size_t gzip_size_hint(const uint8_t *in, size_t len)
{
    if (len < 18) return 0;
    const uint8_t *t = in + len - 4;
    size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    return isize / DEFLATE_MAX_RATIO <= len ? isize : 0;
}

static rc_status zlib_failure(const char *what, const z_stream *zs, int zret, rc_error *err)
{
    if (zret == Z_MEM_ERROR) {
        rc_error_set(err, "out of memory while decompressing the %s body", what);
        return RC_ENOMEM;
    }
    if (zret == Z_NEED_DICT) {
        rc_error_set(err, "invalid %s body: a preset dictionary is required", what);
        return RC_EINVAL;
    }
    rc_error_set(err, "invalid %s body: %s", what, zs->msg ? zs->msg : "corrupt stream");
    return RC_EINVAL;
}

/* Inflates with the given windowBits (16+MAX_WBITS gzip, MAX_WBITS zlib,
 * -MAX_WBITS raw). Concatenated members are accepted for gzip only. */
static rc_status inflate_all(const char *what, int window_bits, const uint8_t *in, size_t in_len,
                             size_t max_out, out_buf *o, rc_error *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int zret = inflateInit2(&zs, window_bits);
    if (zret != Z_OK) return zlib_failure(what, &zs, zret, err);

    bool gzip = window_bits > MAX_WBITS;
    rc_status st = RC_OK;
    /* zlib counts in uInt; feed huge inputs in pieces */
    size_t fed = 0;
    for (;;) {
        if (zs.avail_in == 0 && fed < in_len) {
            size_t piece = in_len - fed > UINT_MAX ? UINT_MAX : in_len - fed;
            zs.next_in = (Bytef *)(in + fed);
            zs.avail_in = (uInt)piece;
            fed += piece;
        }
        if (o->len == o->cap) {
            st = out_grow(o, max_out, err);
            if (st != RC_OK) break;
        }
        size_t room = o->cap - o->len > UINT_MAX ? UINT_MAX : o->cap - o->len;
        zs.next_out = o->data + o->len;
        zs.avail_out = (uInt)room;
        zret = inflate(&zs, Z_NO_FLUSH);
        o->len += room - zs.avail_out;
        if (o->len > max_out) {
            rc_error_set(err, "decompressed body exceeds the limit of %zu bytes", max_out);
            st = RC_ETOOBIG;
            break;
        }
        size_t left = zs.avail_in + (in_len - fed);
        if (zret == Z_STREAM_END) {
            if (left == 0) break;
            const uint8_t *rest = in + (in_len - left);
            if (gzip && is_gzip_header(rest, left)) {
                inflateReset(&zs);
                continue;
            }
            rc_error_set(err, "invalid %s body: %zu bytes of trailing data after the stream", what,
                         left);
            st = RC_EINVAL;
            break;
        }
        if (zret == Z_BUF_ERROR || (zret == Z_OK && left == 0 && zs.avail_out > 0)) {
            if (left == 0) {
                rc_error_set(err, "invalid %s body: the stream ends early (truncated)", what);
                st = RC_EINVAL;
                break;
            }
            continue; /* output was full: grow and go on */
        }
        if (zret != Z_OK) {
            st = zlib_failure(what, &zs, zret, err);
            break;
        }
    }
    inflateEnd(&zs);
    return st;
}

static rc_status decompress_gzip(const uint8_t *in, size_t in_len, size_t max_out, out_buf *o,
                                 rc_error *err)
{
    rc_status st = out_reserve(o, clamp_hint(gzip_size_hint(in, in_len), max_out), err);
    if (st != RC_OK) return st;
    return inflate_all("gzip", 16 + MAX_WBITS, in, in_len, max_out, o, err);
}

static rc_status decompress_deflate(const uint8_t *in, size_t in_len, size_t max_out, out_buf *o,
                                    rc_error *err)
{
    size_t hint = in_len < SIZE_MAX / 4 ? in_len * 4 : 0;
    rc_status st = out_reserve(o, clamp_hint(hint, max_out), err);
    if (st != RC_OK) return st;
    int bits = is_zlib_header(in, in_len) ? MAX_WBITS : -MAX_WBITS;
    return inflate_all("deflate", bits, in, in_len, max_out, o, err);
}

/* --- zstd ----------------------------------------------------------------------- */

static int zstd_window_log_max(size_t max_out)
{
    int wlog = ZSTD_WLOG_FLOOR;
    while (wlog < ZSTD_WLOG_CEIL && ((size_t)1 << wlog) < max_out)
        wlog++;
    return wlog;
}

static size_t zstd_size_hint(const uint8_t *in, size_t in_len)
{
    unsigned long long n = ZSTD_getFrameContentSize(in, in_len);
    if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > SIZE_MAX) return 0;
    return (size_t)n;
}

static rc_status zstd_failure(size_t code, rc_error *err)
{
    ZSTD_ErrorCode ec = ZSTD_getErrorCode(code);
    if (ec == ZSTD_error_memory_allocation) {
        rc_error_set(err, "out of memory while decompressing the zstd body");
        return RC_ENOMEM;
    }
    if (ec == ZSTD_error_frameParameter_windowTooLarge) {
        rc_error_set(err, "zstd body needs a window larger than this receiver allows: %s",
                     ZSTD_getErrorName(code));
        return RC_ETOOBIG;
    }
    rc_error_set(err, "invalid zstd body: %s", ZSTD_getErrorName(code));
    return RC_EINVAL;
}

/* The decoder's own memory (mostly its window) is charged too, as it grows,
 * so a frame that asks for a large window shows up in the limiter. */
static rc_status zstd_charge_ctx(ZSTD_DCtx *dctx, size_t *charged, rc_error *err)
{
    size_t now = ZSTD_sizeof_DCtx(dctx);
    if (now <= *charged) return RC_OK;
    if (!rc_mem_try_charge(now - *charged)) {
        rc_error_set(err, "memory limit reached while decompressing the zstd body");
        return RC_ENOMEM;
    }
    *charged = now;
    return RC_OK;
}

static rc_status zstd_run(ZSTD_DCtx *dctx, const uint8_t *in, size_t in_len, size_t max_out,
                          out_buf *o, size_t *ctx_charged, rc_error *err)
{
    ZSTD_inBuffer ib = {in, in_len, 0};
    for (;;) {
        if (o->len == o->cap) {
            rc_status st = out_grow(o, max_out, err);
            if (st != RC_OK) return st;
        }
        ZSTD_outBuffer ob = {o->data, o->cap, o->len};
        size_t ret = ZSTD_decompressStream(dctx, &ob, &ib);
        o->len = ob.pos;
        if (ZSTD_isError(ret)) return zstd_failure(ret, err);
        rc_status st = zstd_charge_ctx(dctx, ctx_charged, err);
        if (st != RC_OK) return st;
        if (o->len > max_out) {
            rc_error_set(err, "decompressed body exceeds the limit of %zu bytes", max_out);
            return RC_ETOOBIG;
        }
        if (ib.pos < ib.size) continue;
        if (ret == 0) return RC_OK; /* every frame complete, all input used */
        /* Input is used up mid-frame. A full output buffer may still hide
         * flushed-but-unwritten data; otherwise the stream is cut short. */
        if (ob.pos < ob.size) {
            rc_error_set(err, "invalid zstd body: the stream ends early (truncated)");
            return RC_EINVAL;
        }
    }
}

static rc_status decompress_zstd(const uint8_t *in, size_t in_len, size_t max_out, out_buf *o,
                                 rc_error *err)
{
    rc_status st = out_reserve(o, clamp_hint(zstd_size_hint(in, in_len), max_out), err);
    if (st != RC_OK) return st;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) {
        rc_error_set(err, "out of memory while decompressing the zstd body");
        return RC_ENOMEM;
    }
    size_t ctx_charged = 0;
    size_t r = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, zstd_window_log_max(max_out));
    if (ZSTD_isError(r))
        st = zstd_failure(r, err);
    else
        st = zstd_run(dctx, in, in_len, max_out, o, &ctx_charged, err);
    ZSTD_freeDCtx(dctx);
    rc_mem_release(ctx_charged);
    return st;
}

/* --- entry points ----------------------------------------------------------- */

rc_status rc_decompress(rc_encoding enc, const uint8_t *in, size_t in_len, size_t max_out,
                        uint8_t **out, size_t *out_len, rc_error *err)
{
    *out = NULL;
    *out_len = 0;
    out_buf o = {NULL, 0, 0, max_out == SIZE_MAX ? SIZE_MAX : max_out + 1};
    rc_status st;
    if (in_len == 0) {
        st = RC_OK;
    } else {
        switch (enc) {
        case RC_ENC_IDENTITY:
            st = copy_identity(in, in_len, max_out, &o, err);
            break;
        case RC_ENC_GZIP:
            st = decompress_gzip(in, in_len, max_out, &o, err);
            break;
        case RC_ENC_DEFLATE:
            st = decompress_deflate(in, in_len, max_out, &o, err);
            break;
        case RC_ENC_ZSTD:
            st = decompress_zstd(in, in_len, max_out, &o, err);
            break;
        default:
            rc_error_set(err, "unsupported content encoding %d", (int)enc);
            st = RC_EINVAL;
            break;
        }
    }
    if (st != RC_OK) {
        out_discard(&o);
        return st;
    }
    out_finish(&o, out, out_len);
    if (!*out) {
        rc_error_set(err, "out of memory while decompressing the body");
        return RC_ENOMEM;
    }
    return RC_OK;
}

void rc_decompressed_free(uint8_t *buf, size_t len)
{
    if (!buf) return;
    free(buf);
    rc_mem_release(len);
}

bool rc_gzip(const void *in, size_t in_len, int level, rc_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 16 + window bits asks zlib for a gzip header and trailer. */
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    size_t bound = deflateBound(&z, (uLong)in_len);
    if (!rc_buf_reserve(out, bound)) {
        deflateEnd(&z);
        return false;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)in_len;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)(out->cap - out->len);
    int rc = deflate(&z, Z_FINISH);
    if (rc == Z_STREAM_END) out->len += z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END;
}
