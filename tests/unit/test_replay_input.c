/*
 * test_replay_input.c - stored trace files read as records (replay/input.c).
 *
 * Every case writes a file under a mkdtemp directory, reads it to the end
 * and checks exactly what came out: how many records, their statuses, lines
 * and indexes, the spans they decode to (with the collector's own decoders,
 * otlp/otlp.h), the final status and message, and that bytes_read reaches
 * the size. The same content is then read plain, gzip (one member and
 * several), zstd (one frame and several) and through a pipe on standard
 * input, and must give the same records; a rewind must give them again.
 */
#include "replay/input.h"

#include "core/arena.h"
#include "core/buf.h"
#include "otlp/compression.h"
#include "otlp/otlp.h"
#include "testing.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#define MAXREC 512

static char tmpdir[] = "/tmp/test_replay_input.XXXXXX";

/* --- inputs ------------------------------------------------------------------------- */

static int next_id = 1;

/* One ExportTraceServiceRequest with n_rs resourceSpans of n_spans spans
 * each; `sep` goes before every element and before the closing ']' ("" for
 * one line, "\n" for one element per line). */
static void request_json(rc_buf *b, int n_rs, int n_spans, const char *sep)
{
    rc_buf_puts(b, "{\"resourceSpans\":[");
    for (int i = 0; i < n_rs; i++) {
        rc_buf_printf(b,
                      "%s%s{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                      "\"value\":{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"spans\":[",
                      i ? "," : "", sep);
        for (int s = 0; s < n_spans; s++, next_id++)
            rc_buf_printf(b,
                          "%s{\"traceId\":\"%032x\",\"spanId\":\"%016x\",\"name\":\"span\","
                          "\"kind\":1,\"startTimeUnixNano\":\"1700000000000000000\","
                          "\"endTimeUnixNano\":\"1700000000100000000\"}",
                          s ? "," : "", next_id, next_id);
        rc_buf_puts(b, "]}]}");
    }
    rc_buf_printf(b, "%s]}", sep);
}

static char *path_of(const char *name)
{
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", tmpdir, name);
    return p;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
    const char *path = path_of(name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return path;
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
    return path;
}

/* gzip in `members` members, cut at even intervals (mid-line too). */
static void gzip_members(const rc_buf *in, int members, rc_buf *out)
{
    size_t at = 0;
    for (int m = 0; m < members; m++) {
        size_t end = m + 1 == members ? in->len : in->len * (size_t)(m + 1) / (size_t)members;
        CHECK(rc_gzip(in->data + at, end - at, 6, out));
        at = end;
    }
}

static void zstd_frames(const rc_buf *in, int frames, rc_buf *out)
{
    size_t at = 0;
    for (int f = 0; f < frames; f++) {
        size_t end = f + 1 == frames ? in->len : in->len * (size_t)(f + 1) / (size_t)frames;
        size_t bound = ZSTD_compressBound(end - at);
        rc_buf_reserve(out, bound);
        size_t n = ZSTD_compress(out->data + out->len, bound, in->data + at, end - at, 3);
        CHECK(!ZSTD_isError(n));
        out->len += n;
        at = end;
    }
}

/* --- reading everything ------------------------------------------------------------ */

typedef struct outcome {
    rc_status open_st;
    char open_err[512];
    char format[64];
    size_t n; /* next() calls that gave RC_OK or RC_EINVAL */
    rc_status st[MAXREC];
    uint64_t line[MAXREC], index[MAXREC];
    size_t len[MAXREC];
    long spans[MAXREC]; /* -1: the record does not decode */
    uint64_t hash[MAXREC];
    char err[MAXREC][512];
    long total_spans;
    rc_status end; /* RC_REPLAY_EOF or the fatal status */
    char end_err[512];
    uint64_t bytes_read, size;
} outcome;

static long decode_spans(const rc_replay_record *r)
{
    rc_arena *a = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    rc_error e = {{0}};
    rc_status st = r->format == RC_RECORD_JSON
                       ? otlp_json_decode((const char *)r->data, r->len, a, &req, &e)
                       : otlp_proto_decode(r->data, r->len, a, &req, &e);
    long n = st == RC_OK ? (long)otlp_count_spans(req) : -1;
    rc_arena_free(a);
    return n;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void read_records(rc_replay_input *in, outcome *o)
{
    o->n = 0;
    o->total_spans = 0;
    for (;;) {
        rc_replay_record r;
        rc_error e = {{0}};
        rc_status st = rc_replay_input_next(in, &r, &e);
        if (st != RC_OK && st != RC_EINVAL) {
            o->end = st;
            snprintf(o->end_err, sizeof o->end_err, "%s", st == RC_REPLAY_EOF ? "" : e.msg);
            /* The end, or a fatal error, is said again on every later call. */
            rc_error again = {{0}};
            CHECK(rc_replay_input_next(in, &r, &again) == st);
            if (st != RC_REPLAY_EOF) CHECK_STR(again.msg, e.msg);
            break;
        }
        if (o->n == MAXREC) {
            CHECK(!"too many records");
            break;
        }
        size_t i = o->n++;
        o->st[i] = st;
        o->line[i] = r.line;
        o->index[i] = r.index;
        if (st == RC_OK) {
            CHECK(r.data != NULL);
            o->len[i] = r.len;
            o->hash[i] = fnv1a(r.data, r.len);
            o->spans[i] = decode_spans(&r);
            if (o->spans[i] > 0) o->total_spans += o->spans[i];
        } else {
            snprintf(o->err[i], sizeof o->err[i], "%s", e.msg);
        }
    }
    o->bytes_read = rc_replay_input_bytes_read(in);
    o->size = rc_replay_input_size(in);
}

static outcome *read_path(const char *path, size_t max_record)
{
    outcome *o = calloc(1, sizeof *o);
    rc_replay_input_opts opts = {.max_record_bytes = max_record};
    rc_replay_input *in = NULL;
    rc_error e = {{0}};
    o->open_st = rc_replay_input_open(path, &opts, &in, &e);
    snprintf(o->open_err, sizeof o->open_err, "%s", e.msg);
    if (o->open_st != RC_OK) return o;
    snprintf(o->format, sizeof o->format, "%s", rc_replay_input_format_name(in));
    read_records(in, o);
    /* A rewind reads the same again. */
    outcome *again = calloc(1, sizeof *again);
    CHECK(rc_replay_input_rewind(in, &e) == RC_OK);
    read_records(in, again);
    CHECK(again->n == o->n && again->end == o->end && again->total_spans == o->total_spans);
    CHECK(memcmp(again->hash, o->hash, sizeof o->hash) == 0);
    CHECK(memcmp(again->line, o->line, sizeof o->line) == 0);
    CHECK(again->bytes_read == o->bytes_read);
    free(again);
    rc_replay_input_close(in);
    return o;
}

/* Same records, same end, whatever the compression or transport. */
static void check_same_records(const outcome *a, const outcome *b)
{
    CHECK(a->n == b->n);
    CHECK(a->end == b->end);
    CHECK(a->total_spans == b->total_spans);
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        CHECK(a->st[i] == b->st[i]);
        CHECK(a->line[i] == b->line[i]);
        CHECK(a->index[i] == b->index[i]);
        CHECK(a->hash[i] == b->hash[i]);
    }
}

/* Writes `content` plain, gzip (1 and 3 members) and zstd (1 and 3 frames);
 * each must read as the plain file does, with `format` plus ", gzip" or
 * ", zstd" as its name and every stored byte read. */
static void check_compressed_alike(const char *name, const rc_buf *content, size_t max_record,
                                   const outcome *plain, const char *format)
{
    for (int v = 0; v < 4; v++) {
        rc_buf packed = RC_BUF_INIT;
        if (v < 2)
            gzip_members(content, v == 0 ? 1 : 3, &packed);
        else
            zstd_frames(content, v == 2 ? 1 : 3, &packed);
        char fname[128];
        snprintf(fname, sizeof fname, "%s.%d", name, v);
        outcome *o = read_path(write_file(fname, packed.data, packed.len), max_record);
        CHECK(o->open_st == RC_OK);
        char want[96];
        snprintf(want, sizeof want, "%s, %s", format, v < 2 ? "gzip" : "zstd");
        CHECK_STR(o->format, want);
        check_same_records(plain, o);
        CHECK(o->bytes_read == packed.len && o->size == packed.len);
        free(o);
        rc_buf_free(&packed);
    }
}

/* --- JSON lines ------------------------------------------------------------------------ */

/* Blank lines, CRLF, leading blanks, a malformed line, an over-long line and
 * a last line without a newline. Lines: 1 record, 2 blank, 3 CRLF record, 4
 * malformed, 5 over-long, 6 record, 7 blank CRLF, 8 record without '\n'. */
static void make_json_lines(rc_buf *b)
{
    request_json(b, 1, 1, "");
    rc_buf_puts(b, "\n\n  ");
    request_json(b, 1, 2, "");
    rc_buf_puts(b, "\r\n{not json\n{\"x\":\"");
    for (int i = 0; i < 3000; i++)
        rc_buf_putc(b, 'a');
    rc_buf_puts(b, "\"}\n");
    request_json(b, 2, 1, "");
    rc_buf_puts(b, "\n\r\n");
    request_json(b, 1, 3, "");
}

static void test_json_lines(void)
{
    rc_buf b = RC_BUF_INIT;
    make_json_lines(&b);
    outcome *o = read_path(write_file("lines.jsonl", b.data, b.len), 1024);
    CHECK(o->open_st == RC_OK);
    CHECK_STR(o->format, "OTLP/JSON lines");
    CHECK(o->n == 6);
    static const uint64_t lines[] = {1, 3, 4, 5, 6, 8};
    static const long spans[] = {1, 2, -1, 0, 2, 3};
    for (size_t i = 0; i < 6 && i < o->n; i++) {
        CHECK(o->line[i] == lines[i]);
        CHECK(o->index[i] == i + 1);
        CHECK(o->st[i] == (i == 3 ? RC_EINVAL : RC_OK));
        if (i != 3) CHECK(o->spans[i] == spans[i]);
    }
    CHECK_STR(o->err[3], "line longer than 1 KiB");
    CHECK(o->total_spans == 8);
    CHECK(o->end == RC_REPLAY_EOF);
    CHECK(o->bytes_read == b.len && o->size == b.len);
    check_compressed_alike("lines.jsonl", &b, 1024, o, "OTLP/JSON lines");
    free(o);
    rc_buf_free(&b);
}

/* --- JSON documents ---------------------------------------------------------------- */

/* A byte order mark and a blank line, then a pretty-printed document. */
static void test_pretty_document(void)
{
    rc_buf b = RC_BUF_INIT;
    rc_buf_puts(&b, "\xef\xbb\xbf\n");
    request_json(&b, 3, 2, "\n  ");
    rc_buf_puts(&b, "\n");
    outcome *o = read_path(write_file("pretty.json", b.data, b.len), 0);
    CHECK(o->open_st == RC_OK);
    CHECK_STR(o->format, "OTLP/JSON document");
    CHECK(o->n == 1);
    CHECK(o->st[0] == RC_OK && o->line[0] == 2 && o->index[0] == 1 && o->spans[0] == 6);
    CHECK(o->len[0] == b.len - 5); /* not the BOM, the blank line or the last newline */
    CHECK(o->end == RC_REPLAY_EOF);
    CHECK(o->bytes_read == b.len);
    check_compressed_alike("pretty.json", &b, 0, o, "OTLP/JSON document");
    free(o);
    rc_buf_free(&b);
}

/* Two documents back to back: the second starts on the line the first ends. */
static void test_concatenated_documents(void)
{
    rc_buf b = RC_BUF_INIT;
    request_json(&b, 2, 1, "\n"); /* lines 1-4 */
    request_json(&b, 3, 1, "\n"); /* lines 4-8 */
    rc_buf_puts(&b, "\n\n");
    request_json(&b, 1, 4, "\n"); /* lines 10-12 */
    outcome *o = read_path(write_file("two.json", b.data, b.len), 0);
    CHECK_STR(o->format, "OTLP/JSON document");
    CHECK(o->n == 3);
    CHECK(o->line[0] == 1 && o->line[1] == 4 && o->line[2] == 10);
    CHECK(o->spans[0] == 2 && o->spans[1] == 3 && o->spans[2] == 4);
    CHECK(o->index[2] == 3);
    CHECK(o->end == RC_REPLAY_EOF);
    free(o);
    rc_buf_free(&b);
}

/* A document of 40 resourceSpans (3 spans, 648 bytes each, one per line
 * from line 2) read with records of at most 4 KiB: groups of three elements
 * (1969 bytes; four would pass max/2), each a {"resourceSpans":[...]} on its
 * first element's line, every span kept. A member before resourceSpans is
 * skipped, brackets in its strings included. */
static void test_large_document_split(void)
{
    rc_buf b = RC_BUF_INIT;
    rc_buf req = RC_BUF_INIT;
    request_json(&req, 40, 3, "\n");
    rc_buf_puts(&b, "{\"extra\": {\"a\": [1, \"]}\"]},");
    rc_buf_append(&b, req.data + 1, req.len - 1);
    rc_buf_puts(&b, "\n{\"resourceSpans\":[]}\n"); /* a small document after it, line 43 */
    outcome *o = read_path(write_file("large.json", b.data, b.len), 4096);
    CHECK(o->open_st == RC_OK);
    CHECK_STR(o->format, "OTLP/JSON document");
    CHECK(o->n == 15);
    for (size_t i = 0; i < 14 && i < o->n; i++) {
        CHECK(o->st[i] == RC_OK);
        CHECK(o->line[i] == 2 + 3 * i);
        CHECK(o->index[i] == i + 1);
        CHECK(o->spans[i] == (i < 13 ? 9 : 3));
        CHECK(o->len[i] == (i < 13 ? 1969 : 669));
    }
    CHECK(o->line[14] == 43 && o->spans[14] == 0 && o->index[14] == 15);
    CHECK(o->total_spans == 120);
    CHECK(o->end == RC_REPLAY_EOF);
    check_compressed_alike("large.json", &b, 4096, o, "OTLP/JSON document");
    free(o);

    /* An element over the limit cannot be split further: fatal. */
    o = read_path(write_file("large2.json", b.data, b.len), 600);
    CHECK(o->n == 0);
    CHECK(o->end == RC_EIO);
    CHECK_STR(o->end_err, "resourceSpans element 1 (line 2) is larger than the limit of 600 bytes");
    free(o);
    rc_buf_free(&b);
    rc_buf_free(&req);
}

/* Too large and not an object: skipped as one malformed record. */
static void test_large_value_not_object(void)
{
    rc_buf b = RC_BUF_INIT;
    rc_buf_puts(&b, "{\n}\n[");
    for (int i = 0; i < 2000; i++)
        rc_buf_puts(&b, "1,\n");
    rc_buf_puts(&b, "1]\n{\"resourceSpans\":\n[]}");
    outcome *o = read_path(write_file("array.json", b.data, b.len), 1024);
    CHECK_STR(o->format, "OTLP/JSON document");
    CHECK(o->n == 3);
    CHECK(o->st[0] == RC_OK && o->line[0] == 1);
    CHECK(o->st[1] == RC_EINVAL && o->line[1] == 3 && o->index[1] == 2);
    CHECK_STR(o->err[1], "the value on line 3 is larger than 1 KiB and is not an object");
    CHECK(o->st[2] == RC_OK && o->line[2] == 2004 && o->index[2] == 3);
    CHECK(o->end == RC_REPLAY_EOF);
    free(o);
    rc_buf_free(&b);
}

/* Too large, an object, but nothing to split it by: skipped whole. */
static void test_large_object_without_resource_spans(void)
{
    rc_buf b = RC_BUF_INIT;
    rc_buf_puts(&b, "{\"other\": [");
    for (int i = 0; i < 2000; i++)
        rc_buf_puts(&b, "\"x\",\n");
    rc_buf_puts(&b, "1], \"resourceSpans\": {}}\n");
    request_json(&b, 1, 2, "\n");
    outcome *o = read_path(write_file("other.json", b.data, b.len), 1024);
    CHECK_STR(o->format, "OTLP/JSON document");
    CHECK(o->n == 2);
    CHECK(o->st[0] == RC_EINVAL && o->line[0] == 1 && o->index[0] == 1);
    CHECK_STR(o->err[0], "the object on line 1 is larger than 1 KiB and has no resourceSpans "
                         "array to split it by");
    CHECK(o->st[1] == RC_OK && o->line[1] == 2002 && o->index[1] == 2 && o->spans[1] == 2);
    CHECK(o->end == RC_REPLAY_EOF);
    free(o);
    rc_buf_free(&b);
}

static void test_truncated_document(void)
{
    rc_buf b = RC_BUF_INIT;
    request_json(&b, 1, 1, "\n");
    rc_buf_puts(&b, "\n");
    request_json(&b, 2, 2, "\n");
    b.len -= 10; /* the second document, from line 4, loses its end */
    outcome *o = read_path(write_file("cut.json", b.data, b.len), 0);
    CHECK(o->n == 1 && o->spans[0] == 1);
    CHECK(o->end == RC_EIO);
    CHECK_STR(o->end_err,
              "unbalanced JSON: the value that starts on line 4 is not closed at the end of "
              "the input");
    free(o);

    /* The same cut inside a document being split. */
    o = read_path(write_file("cut2.json", b.data, b.len), 700);
    CHECK(o->n == 2 && o->line[1] == 5 && o->spans[1] == 2);
    CHECK(o->end == RC_EIO);
    CHECK_CONTAINS(o->end_err, "the value that starts on line 4 is not closed");
    free(o);

    o = read_path(write_file("closer.json", "{\n}\n}\n", 6), 0);
    CHECK(o->n == 1 && o->end == RC_EIO);
    CHECK_STR(o->end_err, "unbalanced JSON: unexpected '}' on line 3");
    free(o);
    rc_buf_free(&b);
}

/* --- protobuf --------------------------------------------------------------------------- */

/* Appends the 4-byte big-endian length and the protobuf of a request. */
static void append_proto_record(rc_buf *out, int n_rs, int n_spans)
{
    rc_buf json = RC_BUF_INIT, pb = RC_BUF_INIT;
    request_json(&json, n_rs, n_spans, "");
    rc_arena *a = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    rc_error e = {{0}};
    if (n_rs > 0) {
        CHECK(otlp_json_decode(json.data, json.len, a, &req, &e) == RC_OK);
        if (req) otlp_proto_encode(req, &pb);
    }
    uint8_t len[4] = {(uint8_t)(pb.len >> 24), (uint8_t)(pb.len >> 16), (uint8_t)(pb.len >> 8),
                      (uint8_t)pb.len};
    rc_buf_append(out, len, 4);
    rc_buf_append(out, pb.data, pb.len);
    rc_arena_free(a);
    rc_buf_free(&json);
    rc_buf_free(&pb);
}

static void test_proto(void)
{
    rc_buf b = RC_BUF_INIT;
    append_proto_record(&b, 1, 1);
    append_proto_record(&b, 2, 3);
    append_proto_record(&b, 0, 0); /* an empty request: length 0 */
    append_proto_record(&b, 1, 2);
    outcome *o = read_path(write_file("spans.pb", b.data, b.len), 0);
    CHECK(o->open_st == RC_OK);
    CHECK_STR(o->format, "OTLP protobuf, length-prefixed");
    CHECK(o->n == 4);
    static const long spans[] = {1, 6, 0, 2};
    for (size_t i = 0; i < 4 && i < o->n; i++) {
        CHECK(o->st[i] == RC_OK && o->line[i] == 0 && o->index[i] == i + 1);
        CHECK(o->spans[i] == spans[i]);
    }
    CHECK(o->len[2] == 0);
    CHECK(o->end == RC_REPLAY_EOF);
    CHECK(o->bytes_read == b.len && o->size == b.len);
    check_compressed_alike("spans.pb", &b, 0, o, "OTLP protobuf, length-prefixed");
    free(o);

    /* Cut 7 bytes into the last record's 2-span request. */
    rc_buf last = RC_BUF_INIT;
    append_proto_record(&last, 1, 2);
    size_t cut = b.len - (last.len - 4) + 7;
    o = read_path(write_file("cut.pb", b.data, cut), 0);
    CHECK(o->n == 3);
    CHECK(o->end == RC_EIO);
    char want[128];
    snprintf(want, sizeof want, "file ends inside record 4 (needs %zu bytes, has 7)", last.len - 4);
    CHECK_STR(o->end_err, want);
    free(o);

    o = read_path(write_file("cut-length.pb", b.data, b.len - last.len + 2), 0);
    CHECK(o->n == 3 && o->end == RC_EIO);
    CHECK_STR(o->end_err, "file ends inside the length of record 4 (has 2 of 4 bytes)");
    free(o);

    /* A length over the limit. */
    rc_buf big = RC_BUF_INIT;
    append_proto_record(&big, 1, 1);
    size_t first = big.len;
    append_proto_record(&big, 30, 1);
    o = read_path(write_file("big.pb", big.data, big.len), 2048);
    CHECK(o->n == 1 && o->end == RC_EIO);
    snprintf(want, sizeof want,
             "record 2 at byte %zu has a length of %zu bytes, over the limit of 2 KiB", first,
             big.len - first - 4);
    CHECK_STR(o->end_err, want);
    free(o);
    rc_buf_free(&big);
    rc_buf_free(&last);
    rc_buf_free(&b);
}

/* --- what is not a trace file ------------------------------------------------------- */

static void test_unknown_missing_empty(void)
{
    static const uint8_t exe[] = {0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00};
    outcome *o = read_path(write_file("prog.exe", exe, sizeof exe), 0);
    CHECK(o->open_st == RC_EINVAL);
    CHECK_STR(o->open_err, "unknown format: neither OTLP/JSON nor length-prefixed OTLP protobuf "
                           "(first bytes: 4d 5a 90 00)");
    free(o);

    const char *missing = path_of("no-such-file.jsonl");
    o = read_path(missing, 0);
    CHECK(o->open_st == RC_EIO);
    char want[600];
    snprintf(want, sizeof want, "cannot open %s: No such file or directory", missing);
    CHECK_STR(o->open_err, want);
    free(o);

    o = read_path(tmpdir, 0);
    CHECK(o->open_st == RC_EIO);
    CHECK_CONTAINS(o->open_err, "is a directory");
    free(o);

    static const char *const empties[] = {"", " \n\r\n\t", "\xef\xbb\xbf\n"};
    for (size_t i = 0; i < 3; i++) {
        o = read_path(write_file("empty", empties[i], strlen(empties[i])), 0);
        CHECK(o->open_st == RC_OK);
        CHECK_STR(o->format, "empty");
        CHECK(o->n == 0 && o->end == RC_REPLAY_EOF);
        CHECK(o->bytes_read == strlen(empties[i]));
        free(o);
    }
}

/* A gzip file whose second member is corrupt, and zstd cut short. */
static void test_corrupt_compression(void)
{
    rc_buf b = RC_BUF_INIT, gz = RC_BUF_INIT, zs = RC_BUF_INIT;
    for (int i = 0; i < 500; i++) {
        request_json(&b, 1, 2, "");
        rc_buf_putc(&b, '\n');
    }
    /* 250 good lines, then a member whose first deflate block has the
     * reserved type 3 (0xff: final block, type 11). */
    rc_buf half = {b.data, b.len / 2, b.len / 2, false};
    while (half.len > 0 && half.data[half.len - 1] != '\n')
        half.len--;
    gzip_members(&half, 1, &gz);
    static const uint8_t bad_member[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff};
    rc_buf_append(&gz, bad_member, sizeof bad_member);
    outcome *o = read_path(write_file("corrupt.gz", gz.data, gz.len), 0);
    CHECK(o->open_st == RC_OK);
    CHECK(o->n == 250 && o->total_spans == 500); /* the records before the damage */
    CHECK(o->end == RC_EIO);
    CHECK_CONTAINS(o->end_err, "corrupt gzip data near byte ");
    CHECK_CONTAINS(o->end_err, ": invalid block type");
    free(o);

    zstd_frames(&b, 1, &zs);
    o = read_path(write_file("cut.zst", zs.data, zs.len - 5), 0);
    CHECK(o->end == RC_EIO);
    CHECK_CONTAINS(o->end_err, "the zstd stream ends early (truncated)");
    free(o);

    /* Something after the last gzip member that is not one. */
    rc_buf_reset(&gz);
    gzip_members(&b, 1, &gz);
    rc_buf_puts(&gz, "garbage");
    o = read_path(write_file("trailing.gz", gz.data, gz.len), 0);
    CHECK(o->n == 500 && o->total_spans == 1000);
    CHECK(o->end == RC_EIO);
    snprintf(o->open_err, sizeof o->open_err,
             "data that is not gzip after a gzip member, at byte %zu", gz.len - 7);
    CHECK_STR(o->end_err, o->open_err);
    free(o);
    rc_buf_free(&b);
    rc_buf_free(&gz);
    rc_buf_free(&zs);
}

/* --- standard input ------------------------------------------------------------------ */

/* Puts a pipe on fd 0 that a child fills with `data`; returns the child. */
static pid_t stdin_from_child(const rc_buf *data, int *saved_stdin)
{
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        size_t at = 0;
        while (at < data->len) {
            ssize_t w = write(p[1], data->data + at, data->len - at);
            if (w <= 0) _exit(1);
            at += (size_t)w;
        }
        _exit(0);
    }
    close(p[1]);
    *saved_stdin = dup(STDIN_FILENO);
    dup2(p[0], STDIN_FILENO);
    close(p[0]);
    return pid;
}

static void stdin_restore(pid_t pid, int saved)
{
    dup2(saved, STDIN_FILENO);
    close(saved);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_stdin(void)
{
    rc_buf b = RC_BUF_INIT, zs = RC_BUF_INIT;
    /* Large enough that the child blocks on a full pipe. */
    for (int i = 0; i < 400; i++) {
        request_json(&b, 1, 3, "");
        rc_buf_puts(&b, "\n");
    }
    zstd_frames(&b, 2, &zs);
    outcome *file = read_path(write_file("stdin.jsonl", b.data, b.len), 0);
    CHECK(file->n == 400 && file->total_spans == 1200);

    int saved;
    pid_t pid = stdin_from_child(&zs, &saved);
    setenv("TMPDIR", tmpdir, 1);
    rc_replay_input_opts opts = {.rewindable = true};
    rc_replay_input *in = NULL;
    rc_error e = {{0}};
    CHECK(rc_replay_input_open("-", &opts, &in, &e) == RC_OK);
    if (in) {
        CHECK_STR(rc_replay_input_format_name(in), "OTLP/JSON lines, zstd");
        outcome *o = calloc(1, sizeof *o);
        read_records(in, o);
        check_same_records(file, o);
        CHECK(o->size == 0 && o->bytes_read == zs.len);
        /* The rewind reads the spool: same records, and now a size. */
        CHECK(rc_replay_input_rewind(in, &e) == RC_OK);
        read_records(in, o);
        check_same_records(file, o);
        CHECK(o->size == zs.len && o->bytes_read == zs.len);
        free(o);
        rc_replay_input_close(in);
    }
    stdin_restore(pid, saved);

    /* Rewound before the end: the rest of the pipe is spooled first. */
    pid = stdin_from_child(&zs, &saved);
    CHECK(rc_replay_input_open("-", &opts, &in, &e) == RC_OK);
    if (in) {
        rc_replay_record r;
        CHECK(rc_replay_input_next(in, &r, &e) == RC_OK && r.index == 1);
        CHECK(rc_replay_input_rewind(in, &e) == RC_OK);
        outcome *o = calloc(1, sizeof *o);
        read_records(in, o);
        check_same_records(file, o);
        free(o);
        rc_replay_input_close(in);
    }
    stdin_restore(pid, saved);

    /* Not rewindable unless asked. */
    pid = stdin_from_child(&zs, &saved);
    opts.rewindable = false;
    CHECK(rc_replay_input_open("-", &opts, &in, &e) == RC_OK);
    if (in) {
        CHECK(rc_replay_input_rewind(in, &e) == RC_EIO);
        CHECK_STR(e.msg, "cannot rewind standard input: it is a pipe, not opened as rewindable");
        outcome *o = calloc(1, sizeof *o);
        read_records(in, o); /* reads the pipe to its end, so the child can exit */
        free(o);
        rc_replay_input_close(in);
    }
    stdin_restore(pid, saved);
    free(file);
    rc_buf_free(&b);
    rc_buf_free(&zs);
}

static void remove_tmpdir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_json_lines());
    RUN(test_pretty_document());
    RUN(test_concatenated_documents());
    RUN(test_large_document_split());
    RUN(test_large_value_not_object());
    RUN(test_large_object_without_resource_spans());
    RUN(test_truncated_document());
    RUN(test_proto());
    RUN(test_unknown_missing_empty());
    RUN(test_corrupt_compression());
    RUN(test_stdin());
    if (!getenv("KEEP")) remove_tmpdir();
    TEST_MAIN_END();
}
