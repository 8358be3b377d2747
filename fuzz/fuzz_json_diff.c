/*
 * fuzz_json_diff.c - libFuzzer target holding the streaming OTLP/JSON decoder
 * (otlp/json_decode.c) to the jansson one it replaced (fuzz/json_reference.c).
 *
 * Each input is decoded by both, each into an arena of its own. The promise
 * is that the replacement changed nothing a client can see but the wording
 * of syntax errors:
 *   - both succeed: the two requests encode to the same protobuf bytes;
 *   - one succeeds and the other fails: a difference, abort;
 *   - both fail: with the same class of status (bad input against memory).
 * One difference is intended: the reference repairs a lone surrogate and
 * widens an integer beyond int64 only after jansson fails on the first of
 * them it meets, so a body holding an out-of-range integer before a lone
 * surrogate was refused although each alone was accepted. The new decoder
 * accepts it. When the verdicts differ, the reference is asked again with
 * both rewrites applied up front; agreeing with that is agreeing with what
 * the reference meant (fuzz/README.md). Seeds: fuzz/corpus/json_diff/.
 */
#include "fuzz/json_reference.h"
#include "fuzz/roundtrip.h"

#include "core/memlimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef rc_status (*json_decoder)(const char *data, size_t len, rc_arena *arena,
                                  otlp_export_request **out, rc_error *err);

/* One decoder's verdict: its status, its message and the request's
 * protobuf encoding when it succeeded. */
typedef struct verdict {
    rc_status status;
    rc_error err;
    rc_buf proto;
} verdict;

static void decode_with(json_decoder decoder, const uint8_t *data, size_t size, verdict *v)
{
    rc_arena *arena = rc_arena_new(4096);
    if (!arena) fuzz_fail("no arena under an empty memory limiter");
    otlp_export_request *req = NULL;
    v->err.msg[0] = '\0';
    v->proto = (rc_buf)RC_BUF_INIT;
    v->status = decoder((const char *)data, size, arena, &req, &v->err);
    if (v->status == RC_OK) otlp_proto_encode(req, &v->proto);
    rc_arena_free(arena);
}

static bool same_verdict(const verdict *a, const verdict *b)
{
    if (a->status != b->status) return false;
    if (a->status != RC_OK) return true;
    return a->proto.len == b->proto.len &&
           (a->proto.len == 0 || memcmp(a->proto.data, b->proto.data, a->proto.len) == 0);
}

static void report(const char *what, const verdict *v)
{
    fprintf(stderr, "fuzz: %s: status %d, %s\n", what, (int)v->status,
            v->status == RC_OK ? "decoded" : v->err.msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verdict now, ref;
    decode_with(otlp_json_decode, data, size, &now);
    decode_with(otlp_json_decode_reference, data, size, &ref);
    bool agree = same_verdict(&now, &ref);
    if (!agree && ref.status == RC_EINVAL) {
        verdict meant;
        decode_with(otlp_json_decode_reference_rewritten, data, size, &meant);
        agree = same_verdict(&now, &meant);
        rc_buf_free(&meant.proto);
    }
    if (!agree) {
        report("streaming decoder", &now);
        report("reference decoder", &ref);
        fuzz_fail("the streaming and the reference OTLP/JSON decoders disagree (%s)",
                  now.status == ref.status ? "different requests" : "different verdicts");
    }
    if (now.proto.failed || ref.proto.failed) fuzz_fail("encoding ran out of memory");
    rc_buf_free(&now.proto);
    rc_buf_free(&ref.proto);
    fuzz_check_no_charges("fuzz_json_diff");
    return 0;
}
