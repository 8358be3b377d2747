/*
 * fuzz_replay_input.c - libFuzzer target for replay's input reader
 * (replay/input.c).
 *
 * Each input is a whole stored trace file, in any format, compressed or not:
 * it is written to a memfd and opened by its /proc/self/fd path, as replay
 * opens a file, with max_record_bytes of 4096 so that the paths for large
 * values (over-long lines skipped, documents split by resourceSpans) run on
 * small inputs. A compressed input that expands past 1 MiB is left out
 * (otlp/compression.c measures it), so no input is a slow bomb.
 *
 * Checked, on every record until the end and again after a rewind:
 *   - open gives RC_OK, RC_EINVAL or RC_EIO, with a message on failure;
 *   - next gives RC_OK, RC_EINVAL, RC_EIO or RC_REPLAY_EOF; RC_EIO and
 *     RC_REPLAY_EOF are sticky; failures carry a message;
 *   - indexes count 1, 2, 3...; JSON records are non-empty, on lines that
 *     never go back; protobuf records are on line 0; no record is larger
 *     than max_record_bytes (plus the {"resourceSpans":[]} of a group);
 *   - each call consumes input: the calls are bounded by its size;
 *   - at a clean end every stored byte was read;
 *   - the rewind gives the same statuses, lines and bytes.
 */
#include "fuzz/roundtrip.h"
#include "otlp/compression.h"
#include "replay/input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_RECORD 4096
#define MAX_EXPANDED ((size_t)1 << 20)
/* The bytes around a record in a group: {"resourceSpans":[ and ]} */
#define GROUP_WRAP 20

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

/* The decompressed size, or SIZE_MAX when it is over MAX_EXPANDED. */
static size_t expanded_size(const uint8_t *data, size_t size)
{
    rc_encoding enc = RC_ENC_IDENTITY;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) enc = RC_ENC_GZIP;
    if (size >= 4 && memcmp(data, "\x28\xb5\x2f\xfd", 4) == 0) enc = RC_ENC_ZSTD;
    if (enc == RC_ENC_IDENTITY) return size;
    uint8_t *out = NULL;
    size_t out_len = 0;
    rc_error err = {{0}};
    rc_status st = rc_decompress(enc, data, size, MAX_EXPANDED, &out, &out_len, &err);
    if (st == RC_OK) rc_decompressed_free(out, out_len);
    /* A corrupt or truncated stream stops the reader where it stops this. */
    return st == RC_ETOOBIG || st == RC_ENOMEM ? SIZE_MAX : MAX_EXPANDED;
}

/* One pass to the end; returns a hash of everything seen. */
static uint64_t read_all(rc_replay_input *in, size_t max_calls, size_t stored_size)
{
    uint64_t hash = 1469598103934665603ull, last_line = 0, index = 0;
    for (size_t calls = 0;; calls++) {
        if (calls > max_calls) fuzz_fail("%zu calls for an input of %zu bytes", calls, max_calls);
        rc_replay_record rec;
        rc_error err = {{0}};
        rc_status st = rc_replay_input_next(in, &rec, &err);
        hash = (hash ^ (uint64_t)st) * 1099511628211ull;
        if (st == RC_REPLAY_EOF || st == RC_EIO) {
            rc_error again_err = {{0}};
            rc_status again = rc_replay_input_next(in, &rec, &again_err);
            if (again != st) fuzz_fail("status %d after %d: not sticky", (int)again, (int)st);
            if (st == RC_EIO && (!err.msg[0] || strcmp(err.msg, again_err.msg) != 0))
                fuzz_fail("RC_EIO messages \"%s\" then \"%s\"", err.msg, again_err.msg);
            if (st == RC_REPLAY_EOF && rc_replay_input_bytes_read(in) != stored_size)
                fuzz_fail("clean end after %llu of %zu bytes",
                          (unsigned long long)rc_replay_input_bytes_read(in), stored_size);
            return hash;
        }
        if (st != RC_OK && st != RC_EINVAL) fuzz_fail("next gave status %d", (int)st);
        if (st == RC_EINVAL && !err.msg[0]) fuzz_fail("RC_EINVAL without a message");
        if (rec.index != ++index)
            fuzz_fail("record index %llu, expected %llu", (unsigned long long)rec.index,
                      (unsigned long long)index);
        if (st == RC_EINVAL) {
            hash = (hash ^ rec.line) * 1099511628211ull;
            continue;
        }
        if (rec.format == RC_RECORD_PROTO) {
            if (rec.line != 0)
                fuzz_fail("a protobuf record on line %llu", (unsigned long long)rec.line);
            if (rec.len > MAX_RECORD) fuzz_fail("protobuf record of %zu bytes", rec.len);
        } else {
            if (rec.len == 0) fuzz_fail("empty JSON record %llu", (unsigned long long)index);
            if (rec.line == 0 || rec.line < last_line)
                fuzz_fail("record on line %llu after line %llu", (unsigned long long)rec.line,
                          (unsigned long long)last_line);
            if (rec.len > MAX_RECORD + GROUP_WRAP) fuzz_fail("JSON record of %zu bytes", rec.len);
            last_line = rec.line;
        }
        hash = (hash ^ rec.line) * 1099511628211ull;
        for (size_t i = 0; i < rec.len; i++)
            hash = (hash ^ rec.data[i]) * 1099511628211ull;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t expanded = expanded_size(data, size);
    if (expanded == SIZE_MAX) return 0;
    int fd = memfd_create("fuzz_replay_input", MFD_CLOEXEC);
    if (fd < 0) fuzz_fail("memfd_create failed");
    if (size && write(fd, data, size) != (ssize_t)size) fuzz_fail("memfd write failed");
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    rc_replay_input_opts opts = {.max_record_bytes = MAX_RECORD};
    rc_replay_input *in = NULL;
    rc_error err = {{0}};
    rc_status st = rc_replay_input_open(path, &opts, &in, &err);
    if (st != RC_OK) {
        if (st != RC_EINVAL && st != RC_EIO) fuzz_fail("open gave status %d", (int)st);
        if (!err.msg[0]) fuzz_fail("open failed without a message");
        close(fd);
        return 0;
    }
    if (rc_replay_input_size(in) != size)
        fuzz_fail("size %zu of %zu", (size_t)rc_replay_input_size(in), size);
    /* Every record and every refused one consumes at least a byte. */
    size_t max_calls = expanded + 2;
    uint64_t first = read_all(in, max_calls, size);
    if (rc_replay_input_rewind(in, &err) != RC_OK) fuzz_fail("rewind: %s", err.msg);
    uint64_t second = read_all(in, max_calls, size);
    if (first != second) fuzz_fail("the rewind read something else");
    rc_replay_input_close(in);
    close(fd);
    fuzz_check_no_charges("fuzz_replay_input");
    return 0;
}
