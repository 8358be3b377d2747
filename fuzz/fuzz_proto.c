/*
 * fuzz_proto.c - libFuzzer target for the OTLP protobuf decoder.
 *
 * Each input is one ExportTraceServiceRequest body as a client would POST
 * it (or send over gRPC, after the 5-byte frame header). What is checked on
 * a decoded request - both round trips, no leaked limiter charge - is in
 * roundtrip.c, shared with the other targets. Seeds: fuzz/corpus/proto/.
 */
#include "fuzz/roundtrip.h"

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
    fuzz_check_no_charges("fuzz_proto");
    return 0;
}
