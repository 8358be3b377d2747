/*
 * compression.h - bounded decompression of request bodies, and gzip for
 * what exporters send.
 *
 * The output limit is enforced while inflating, before any allocation past
 * it: a 1 KiB zip bomb that expands to gigabytes costs at most `max_out`
 * bytes of memory and is answered RC_ETOOBIG. The output buffer is charged
 * to the memory limiter as it grows (RC_ENOMEM when refused).
 */
#ifndef RC_COMPRESSION_H
#define RC_COMPRESSION_H

#include "core/buf.h"
#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rc_encoding {
    RC_ENC_IDENTITY = 0,
    RC_ENC_GZIP,
    RC_ENC_DEFLATE,
    RC_ENC_ZSTD,
} rc_encoding;

/* Parses a Content-Encoding value ("gzip", "x-gzip", "deflate", "zstd",
 * "identity" or empty), case-insensitively. False when unsupported. */
bool rc_encoding_parse(const char *value, rc_encoding *out);

/* Decompresses `in` into a new heap buffer of at most max_out bytes.
 * On RC_OK, *out (free with rc_decompressed_free) holds *out_len bytes.
 * RC_EINVAL: corrupt stream; RC_ETOOBIG: output would pass max_out;
 * RC_ENOMEM: the memory limiter refused the buffer. */
rc_status rc_decompress(rc_encoding enc, const uint8_t *in, size_t in_len, size_t max_out,
                        uint8_t **out, size_t *out_len, rc_error *err);
void rc_decompressed_free(uint8_t *buf, size_t len);

/* Appends the gzip stream of `in` to `out` (an exporter's request body).
 * False when zlib or the buffer ran out of memory. */
bool rc_gzip(const void *in, size_t in_len, int level, rc_buf *out);

#endif
