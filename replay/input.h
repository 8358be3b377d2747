/*
 * input.h - the input side of `respan-collector replay`: a stored trace file
 * as a stream of records.
 *
 * replay/replay.c opens each INPUT with rc_replay_input_open and calls
 * rc_replay_input_next until RC_REPLAY_EOF; every record is one OTLP request
 * it decodes with otlp_json_decode or otlp_proto_decode. The format is found
 * from the content, never from the file name:
 *
 *   - compression: gzip (any number of members) or zstd (any number of
 *     frames) or none;
 *   - OTLP/JSON lines (every non-blank line is one record, as the
 *     OpenTelemetry Collector's file exporter and our `file` exporter write
 *     them), or OTLP/JSON documents (pretty-printed or concatenated
 *     top-level values, one record each);
 *   - length-prefixed protobuf: a 4-byte big-endian length, then an
 *     ExportTraceServiceRequest, repeated (the file exporter's proto mode).
 *
 * The file is streamed, never read whole: memory stays at a few MiB plus one
 * record (max_record_bytes) however large the file is. A JSON document
 * larger than max_record_bytes is cut into records of whole resourceSpans
 * elements, each wrapped as {"resourceSpans":[...]}.
 *
 * An input is used by one thread at a time. Error messages are one line and
 * never name the file (the caller prefixes "file:" or "file:line:"), except
 * those of rc_replay_input_open for a file that cannot be opened or read.
 */
#ifndef RC_REPLAY_INPUT_H
#define RC_REPLAY_INPUT_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by rc_replay_input_next at the end of the input: not an error,
 * and outside the codes of core/error.h so it cannot be mistaken for one. */
#define RC_REPLAY_EOF ((rc_status)100)

typedef enum rc_record_format { RC_RECORD_JSON, RC_RECORD_PROTO } rc_record_format;

typedef struct rc_replay_record {
    /* One OTLP/JSON ExportTraceServiceRequest/TracesData object, or one
     * protobuf ExportTraceServiceRequest (possibly empty: len 0). Borrowed
     * from the input: valid until the next call on it. */
    const uint8_t *data;
    size_t len;
    rc_record_format format;
    uint64_t line;  /* JSON: 1-based line of the record's first byte; proto: 0 */
    uint64_t index; /* 1-based record number in the input */
} rc_replay_record;

typedef struct rc_replay_input_opts {
    size_t max_record_bytes; /* 0: default 64 MiB */
    /* Makes a pipe (standard input) rewindable by spooling what is read to
     * an unlinked temporary file in $TMPDIR (default /tmp). A regular file
     * is always rewindable. */
    bool rewindable;
} rc_replay_input_opts;

#define RC_REPLAY_DEFAULT_MAX_RECORD ((size_t)64 << 20)

typedef struct rc_replay_input rc_replay_input;

/* Opens `path` ("-" is standard input; opts may be NULL for the defaults)
 * and reads enough to detect compression and format. On RC_OK the caller
 * owns *out and frees it with rc_replay_input_close.
 *   RC_EIO:    the file is missing or cannot be read (the message names it),
 *              or its compressed stream is corrupt;
 *   RC_EINVAL: "unknown format: ..." (with the first bytes, in hex);
 *   RC_ENOMEM: out of memory.
 * An empty file (or one of whitespace only) opens and yields no records. */
rc_status rc_replay_input_open(const char *path, const rc_replay_input_opts *opts,
                               rc_replay_input **out, rc_error *err);

/* The next record.
 *   RC_OK:          *rec is filled;
 *   RC_REPLAY_EOF:  no more records (again on every later call);
 *   RC_EINVAL:      one malformed record (a JSON line longer than
 *                   max_record_bytes, a JSON value too large to split):
 *                   rec->line and rec->index say where, err says why; the
 *                   input has skipped it and next may be called again;
 *   RC_EIO:         the input cannot go on (read error, corrupt compressed
 *                   stream, truncated protobuf record, unbalanced JSON
 *                   document): err says why and where; every later call
 *                   returns the same;
 *   RC_ENOMEM:      out of memory; as final as RC_EIO. */
rc_status rc_replay_input_next(rc_replay_input *in, rc_replay_record *rec, rc_error *err);

/* e.g. "OTLP/JSON lines, zstd"; valid while the input is open. */
const char *rc_replay_input_format_name(const rc_replay_input *in);

/* Bytes read from the file as stored (compressed), for progress. */
uint64_t rc_replay_input_bytes_read(const rc_replay_input *in);

/* Bytes of the file as stored that the records handed out so far came
 * from (for compressed input, estimated from the decompression ratio so
 * far): what a progress display counts as done, rather than the read-ahead
 * of bytes_read. */
uint64_t rc_replay_input_bytes_done(const rc_replay_input *in);

/* The file's size as stored; 0 when unknown (a pipe, until a rewind has
 * spooled all of it). */
uint64_t rc_replay_input_size(const rc_replay_input *in);

/* Starts again from the first record (replay reads an input twice for
 * --rebase-time). RC_EIO when the input is a pipe opened without
 * opts.rewindable, or when reading or seeking fails. */
rc_status rc_replay_input_rewind(rc_replay_input *in, rc_error *err);

/* Closes the file (not standard input) and frees everything; NULL is fine. */
void rc_replay_input_close(rc_replay_input *in);

#endif
