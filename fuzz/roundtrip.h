/*
 * roundtrip.h - the properties every fuzz target checks on a decoded request.
 *
 * A fuzz target feeds bytes to one decoder; this module then holds the codecs
 * to the promises of otlp/otlp.h and aborts (so libFuzzer keeps the input as
 * a reproducer) when one is broken:
 *
 *   - a decoder either succeeds or fails with RC_EINVAL / RC_ENOMEM and a
 *     non-empty message;
 *   - whatever was decoded re-encodes to protobuf that decodes again, to the
 *     same OTLP/JSON and to the same protobuf bytes;
 *   - the OTLP/JSON we write decodes again to the same OTLP/JSON;
 *   - once every arena and buffer of the input is freed, the memory limiter
 *     holds exactly the charges it held before the input (no leaked charge).
 *
 * A step refused by the memory limit (RC_ENOMEM, a failed rc_buf) ends the
 * check without a verdict: running out of budget is allowed, lying is not.
 */
#ifndef RC_FUZZ_ROUNDTRIP_H
#define RC_FUZZ_ROUNDTRIP_H

#include "otlp/otlp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum fuzz_codec {
    FUZZ_PROTO,
    FUZZ_JSON,
} fuzz_codec;

/* Budget the memory limiter gives each fuzz process. */
#define FUZZ_MEM_LIMIT ((size_t)256 << 20)

/* Sets the memory limit and records the limiter's baseline; call once from
 * LLVMFuzzerInitialize. */
void fuzz_setup(void);

/* Decodes `data` with `codec` and checks the properties above; aborts on a
 * broken one. */
void fuzz_check_decode(fuzz_codec codec, const uint8_t *data, size_t size);

/* Aborts unless the limiter is back at its baseline; `what` names the
 * target in the message. */
void fuzz_check_no_charges(const char *what);

/* The helpers the checks above are made of, for targets that test more than
 * a decoder (processors, the exporter's mapping, config, pricing). */

/* Prints "fuzz: property broken: <message>" and the stack, then aborts, so
 * libFuzzer keeps the input. */
__attribute__((noreturn, format(printf, 1, 2))) void fuzz_fail(const char *fmt, ...);

/* Whether s[0..n) is valid UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF). */
bool fuzz_utf8_valid(const char *s, size_t n);

/* Aborts unless `req` is what a processor may assume of a request: every
 * string non-NULL and valid UTF-8, no value nested past OTLP_MAX_DEPTH.
 * Also what a processor must leave behind. */
void fuzz_check_request(const otlp_export_request *req);

#endif
