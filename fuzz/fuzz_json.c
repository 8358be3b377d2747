/*
 * fuzz_json.c - libFuzzer target for the OTLP/JSON decoder.
 *
 * Each input is one OTLP/JSON ExportTraceServiceRequest body as an OTLP/HTTP
 * JSON exporter would POST it; the bytes are not NUL-terminated, so a
 * decoder that reads past `size` trips AddressSanitizer. What is checked on a
 * decoded request - both round trips, no leaked limiter charge - is in
 * roundtrip.c, shared with the other targets. Seeds: fuzz/corpus/json/;
 * fuzz/json.dict gives libFuzzer the OTLP field names.
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
    fuzz_check_decode(FUZZ_JSON, data, size);
    fuzz_check_no_charges("fuzz_json");
    return 0;
}
