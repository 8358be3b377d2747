/*
 * fuzz_proto.c - libFuzzer target for the OTLP protobuf decoder.
 *
 * Each input is one ExportTraceServiceRequest body as a client would POST
 * it (or send over gRPC, after the 5-byte frame header). What is checked on
 * a decoded request - both round trips, no leaked limiter charge - is in
 * roundtrip.c, shared with the other targets. Every input is also decoded
 * by the decoder otlp/proto_codec.c replaced (fuzz/proto_reference.c): the
 * two must agree on the status, the error message and the structs, and both
 * encoders on the bytes. Seeds: fuzz/corpus/proto/.
 */
#include "fuzz/proto_reference.h"
#include "fuzz/roundtrip.h"

#include <stdio.h>
#include <stdlib.h>

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_decode(FUZZ_PROTO, data, size);
    const char *diff = proto_reference_compare(size ? data : (const uint8_t *)"", size, 0);
    if (diff) {
        fprintf(stderr, "fuzz: property broken: the old and new protobuf codecs disagree: %s\n",
                diff);
        abort();
    }
    fuzz_check_no_charges("fuzz_proto");
    return 0;
}
