/*
 * input.c - a stored trace file as a stream of records (see input.h).
 *
 * Three layers, each pulling from the one below:
 *
 *   1. the file as stored: read(2) into `raw` (128 KiB), counted in
 *      bytes_read. A pipe opened as rewindable is copied, as it is read, to
 *      an unlinked temporary file (the spool) that a rewind reads instead.
 *   2. decompression (none, gzip members, zstd frames) into the window
 *      `win`: the decompressed bytes not yet consumed are win[pos, len).
 *   3. a record reader for the layout found at open: JSON lines, JSON
 *      documents, or length-prefixed protobuf.
 *
 * Memory is bounded by the window: it grows only while one record does not
 * fit, up to max_record_bytes + WIN_SLACK, and never past it. A record
 * larger than that is refused (a protobuf record: RC_EIO), skipped without
 * being held (a JSON line: RC_EINVAL) or cut into pieces that fit (a JSON
 * document: by resourceSpans elements, into `group`). The zstd decoder adds
 * its window, which the frame sets: 8 MiB at most at zstd's ordinary levels,
 * 128 MiB at most (libzstd's default limit) for --long files.
 *
 * Invariants:
 *   - the reader works with offsets relative to `pos`, so compacting the
 *     window (moving win[pos, len) to the front) never invalidates them;
 *   - the window is compacted and refilled only inside a call of
 *     rc_replay_input_next, so a record handed out (a pointer into `win` or
 *     `group`) stays valid until the next call;
 *   - `line` is the 1-based line of win[pos]: every consumed byte goes
 *     through consume(), which counts the newlines it passes;
 *   - a fatal error is sticky: `failed` is set and its message kept, so a
 *     caller that calls again gets the same answer, not garbage.
 *
 * The JSON scanner does not validate JSON: it tracks strings, escapes and
 * {}/[] depth, enough to find where a top-level value ends. The decoder
 * (otlp/json_decode.c) judges the record itself later.
 */
#include "replay/input.h"

#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
/* Stored bytes read per read(2). */
#define RAW_CAP (128 * KIB)
/* The window starts at this and doubles while a record does not fit. */
#define WIN_FIRST_CAP (256 * KIB)
/* Most decompressed bytes one refill adds: open reads little, and an error
 * further on comes after the records before it, not instead of them. */
#define WIN_STEP (32 * KIB)
/* Read-ahead the window may hold beyond one record of max_record_bytes. */
#define WIN_SLACK (256 * KIB)
/* max_record_bytes is clamped here so window arithmetic cannot overflow. */
#define MAX_RECORD_CEILING (SIZE_MAX / 4)

typedef enum compression { COMP_NONE, COMP_GZIP, COMP_ZSTD } compression;
typedef enum layout { LAYOUT_EMPTY, LAYOUT_JSON_LINES, LAYOUT_JSON_DOC, LAYOUT_PROTO } layout;

/* Where the JSON scanner is inside one value. */
typedef struct json_scan {
    uint64_t depth; /* open { and [ */
    bool in_string;
    bool escape;
    bool in_token; /* inside a bare top-level scalar (number, literal, garbage) */
} json_scan;

typedef enum scan_result {
    SCAN_MORE,       /* the value goes on past the bytes scanned */
    SCAN_DONE,       /* the value ends at *end (exclusive) */
    SCAN_UNBALANCED, /* a } or ] closes nothing, at *end */
} scan_result;

/* Document mode, splitting one top-level object too large for a record. */
typedef enum split_state {
    SP_NONE,          /* not splitting */
    SP_OPEN,          /* at the object's '{' */
    SP_KEY_OR_END,    /* between members */
    SP_IN_KEY,        /* inside a member name */
    SP_COLON,         /* after a member name */
    SP_VALUE,         /* before a member's value */
    SP_ARRAY_NEXT,    /* in resourceSpans, between elements */
    SP_ELEMENT,       /* in resourceSpans, scanning an element */
    SP_ELEMENT_READY, /* an element of elem_len bytes is at pos, not yet grouped */
} split_state;

struct rc_replay_input {
    /* --- 1. the file as stored */
    char *name;    /* for open's messages: the path, or "standard input" */
    int fd;        /* the file, standard input, or the spool after a rewind */
    bool owns_fd;  /* false for standard input */
    bool seekable; /* a regular file: rewind seeks */
    off_t start;   /* where a seekable standard input started */
    int spool_fd;  /* -1 unless a pipe is being copied for rewind */
    bool src_eof;
    uint64_t size;
    uint64_t bytes_read;
    uint8_t *raw;
    size_t raw_pos, raw_len;

    /* --- 2. decompression */
    compression comp;
    z_stream zs;
    bool zs_ready;
    bool gz_in_member; /* false between gzip members: the next must start with its magic */
    ZSTD_DCtx *zd;
    bool zstd_in_frame; /* the last call left a frame unfinished */
    bool dec_eof;       /* no more decompressed bytes will come */
    uint8_t *win;
    size_t win_cap, win_limit, pos, len;
    uint64_t line;   /* 1-based line of win[pos] */
    uint64_t offset; /* decompressed offset of win[pos] */

    /* --- 3. records */
    size_t max_record;
    layout layout;
    uint64_t index; /* records handed out (or refused) so far */
    bool failed;
    rc_status fail_status;
    rc_error fail_err;

    /* document mode: splitting a large object (see split_next) */
    split_state split;
    uint64_t split_line;   /* where the object started */
    uint64_t split_groups; /* records emitted from it */
    char key[16];          /* the member name, when short enough to matter */
    size_t key_len;
    bool key_escape;
    json_scan scan;
    size_t elem_scanned, elem_len;
    uint64_t elem_line, elem_count;
    rc_buf group;        /* {"resourceSpans":[...]} being built, or handed out */
    bool group_done;     /* handed out: start a new one on the next call */
    uint64_t group_line; /* the line of its first element */

    char format_name[64];
};

/* --- small helpers ----------------------------------------------------------------- */

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* "64 MiB", "4 KiB" or "1000 bytes", for messages about max_record_bytes. */
static const char *size_text(size_t n, char *buf, size_t cap)
{
    if (n && n % MIB == 0)
        snprintf(buf, cap, "%zu MiB", n / MIB);
    else if (n && n % KIB == 0)
        snprintf(buf, cap, "%zu KiB", n / KIB);
    else
        snprintf(buf, cap, "%zu bytes", n);
    return buf;
}

static uint64_t count_newlines(const uint8_t *p, size_t n)
{
    uint64_t lines = 0;
    const uint8_t *end = p + n;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    return lines;
}

static size_t avail(const rc_replay_input *in)
{
    return in->len - in->pos;
}

static const uint8_t *cur(const rc_replay_input *in)
{
    return in->win + in->pos;
}

/* Consumes n window bytes, counting the lines they end. */
static void consume(rc_replay_input *in, size_t n)
{
    in->line += count_newlines(cur(in), n);
    in->pos += n;
    in->offset += n;
}

/* Stored-file offset of the first stored byte not yet decompressed. */
static uint64_t stored_offset(const rc_replay_input *in)
{
    return in->bytes_read - (in->raw_len - in->raw_pos);
}

/* --- 1. the file as stored ------------------------------------------------------- */

static rc_status write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return RC_EIO;
        p += w;
        n -= (size_t)w;
    }
    return RC_OK;
}

/* An unlinked temporary file in $TMPDIR: it disappears with its last fd. */
static int spool_create(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0]) dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    /* Filesystems without O_TMPFILE: create, then unlink at once. */
    char path[4096];
    if (snprintf(path, sizeof path, "%s/rc-replay-XXXXXX", dir) >= (int)sizeof path) return -1;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0) unlink(path);
    return fd;
}

/* Reads more stored bytes after raw[raw_len], first moving the unused ones
 * to the front. Sets src_eof at the end of the file. */
static rc_status raw_read(rc_replay_input *in, rc_error *err)
{
    if (in->raw_pos > 0) {
        memmove(in->raw, in->raw + in->raw_pos, in->raw_len - in->raw_pos);
        in->raw_len -= in->raw_pos;
        in->raw_pos = 0;
    }
    ssize_t n;
    do {
        n = read(in->fd, in->raw + in->raw_len, RAW_CAP - in->raw_len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        rc_error_set(err, "read error at byte %" PRIu64 ": %s", in->bytes_read, strerror(errno));
        return RC_EIO;
    }
    if (n == 0) {
        in->src_eof = true;
        return RC_OK;
    }
    if (in->spool_fd >= 0 && write_all(in->spool_fd, in->raw + in->raw_len, (size_t)n) != RC_OK) {
        rc_error_set(err, "cannot copy standard input to a temporary file for rewinding: %s",
                     strerror(errno));
        return RC_EIO;
    }
    in->raw_len += (size_t)n;
    in->bytes_read += (uint64_t)n;
    return RC_OK;
}

/* --- 2. decompression into the window ---------------------------------------- */

/* Where a step may write: after win[len], at most WIN_STEP bytes. */
static size_t win_room(const rc_replay_input *in)
{
    size_t room = in->win_cap - in->len;
    return room < WIN_STEP ? room : WIN_STEP;
}

/* Each step decodes what it can of raw into the window's room. It sets
 * *need when it cannot go on without more stored bytes, and dec_eof at the
 * clean end of the stream. */

static rc_status step_none(rc_replay_input *in, bool *need, rc_error *err)
{
    size_t have = in->raw_len - in->raw_pos, room = win_room(in);
    if (have == 0) {
        if (in->src_eof)
            in->dec_eof = true;
        else
            *need = true;
        return RC_OK;
    }
    size_t n = have < room ? have : room;
    memcpy(in->win + in->len, in->raw + in->raw_pos, n);
    in->len += n;
    in->raw_pos += n;
    return RC_OK;
}

/* Between members: the end of the file, or the next member's magic. */
static rc_status gzip_next_member(rc_replay_input *in, bool *need, rc_error *err)
{
    size_t have = in->raw_len - in->raw_pos;
    if (have < 2 && !in->src_eof) {
        *need = true;
        return RC_OK;
    }
    if (have == 0) {
        in->dec_eof = true;
        return RC_OK;
    }
    const uint8_t *p = in->raw + in->raw_pos;
    if (have < 2 || p[0] != 0x1f || p[1] != 0x8b) {
        rc_error_set(err, "data that is not gzip after a gzip member, at byte %" PRIu64,
                     stored_offset(in));
        return RC_EIO;
    }
    if (inflateReset(&in->zs) != Z_OK) {
        rc_error_set(err, "cannot restart the gzip decoder");
        return RC_EIO;
    }
    in->gz_in_member = true;
    return RC_OK;
}

static rc_status step_gzip(rc_replay_input *in, bool *need, rc_error *err)
{
    if (!in->gz_in_member) {
        rc_status st = gzip_next_member(in, need, err);
        if (st != RC_OK || !in->gz_in_member) return st;
    }
    size_t have = in->raw_len - in->raw_pos, room = win_room(in);
    in->zs.next_in = in->raw + in->raw_pos;
    in->zs.avail_in = (uInt)have; /* <= RAW_CAP */
    in->zs.next_out = in->win + in->len;
    in->zs.avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    uInt out_before = in->zs.avail_out;
    int zret = inflate(&in->zs, Z_NO_FLUSH);
    in->raw_pos += have - in->zs.avail_in;
    in->len += out_before - in->zs.avail_out;
    if (zret == Z_STREAM_END) {
        in->gz_in_member = false;
        return RC_OK;
    }
    if (zret == Z_OK || zret == Z_BUF_ERROR) {
        if (in->raw_pos < in->raw_len) return RC_OK;
        if (in->src_eof && out_before == in->zs.avail_out) {
            rc_error_set(err, "the gzip stream ends early (truncated) at byte %" PRIu64,
                         in->bytes_read);
            return RC_EIO;
        }
        *need = !in->src_eof;
        return RC_OK;
    }
    if (zret == Z_MEM_ERROR) {
        rc_error_set(err, "out of memory in the gzip decoder");
        return RC_ENOMEM;
    }
    rc_error_set(err, "corrupt gzip data near byte %" PRIu64 ": %s", stored_offset(in),
                 in->zs.msg ? in->zs.msg : "invalid stream");
    return RC_EIO;
}

static rc_status step_zstd(rc_replay_input *in, bool *need, rc_error *err)
{
    size_t have = in->raw_len - in->raw_pos;
    if (have == 0 && !in->src_eof) {
        *need = true;
        return RC_OK;
    }
    if (have == 0 && !in->zstd_in_frame) {
        in->dec_eof = true;
        return RC_OK;
    }
    ZSTD_inBuffer ib = {in->raw + in->raw_pos, have, 0};
    ZSTD_outBuffer ob = {in->win + in->len, win_room(in), 0};
    size_t ret = ZSTD_decompressStream(in->zd, &ob, &ib);
    if (ZSTD_isError(ret)) {
        rc_error_set(err, "corrupt zstd data near byte %" PRIu64 ": %s", stored_offset(in),
                     ZSTD_getErrorName(ret));
        return RC_EIO;
    }
    in->raw_pos += ib.pos;
    in->len += ob.pos;
    in->zstd_in_frame = ret != 0;
    /* At the end of the file a frame that still wants input, and had room
     * to write but wrote nothing, is cut short. */
    if (have == 0 && ob.pos == 0 && in->zstd_in_frame) {
        rc_error_set(err, "the zstd stream ends early (truncated) at byte %" PRIu64,
                     in->bytes_read);
        return RC_EIO;
    }
    if (in->raw_pos == in->raw_len && ob.pos == 0) *need = !in->src_eof;
    return RC_OK;
}

/* Decodes until at least one byte is added to the window or the stream
 * ends (dec_eof). The window must have room. */
static rc_status decode_some(rc_replay_input *in, rc_error *err)
{
    size_t before = in->len;
    for (;;) {
        bool need = false;
        rc_status st;
        switch (in->comp) {
        case COMP_GZIP:
            st = step_gzip(in, &need, err);
            break;
        case COMP_ZSTD:
            st = step_zstd(in, &need, err);
            break;
        default:
            st = step_none(in, &need, err);
            break;
        }
        if (st != RC_OK) return st;
        if (in->len > before || in->dec_eof) return RC_OK;
        if (need) {
            st = raw_read(in, err);
            if (st != RC_OK) return st;
        }
    }
}

/* Adds decompressed bytes to the window: compacts consumed bytes away,
 * grows up to win_limit, then decodes. Adds nothing only at the end. */
static rc_status win_more(rc_replay_input *in, rc_error *err)
{
    if (in->dec_eof) return RC_OK;
    if (in->pos == in->len) {
        in->pos = in->len = 0;
    } else if (in->pos > 0 && (in->len == in->win_cap || in->pos >= in->win_cap / 2)) {
        memmove(in->win, in->win + in->pos, in->len - in->pos);
        in->len -= in->pos;
        in->pos = 0;
    }
    if (in->len == in->win_cap) {
        size_t cap = in->win_cap * 2 < in->win_limit ? in->win_cap * 2 : in->win_limit;
        if (cap <= in->win_cap) {
            /* Callers stop at max_record_bytes, below the limit. */
            rc_error_set(err, "internal error: the record window is full");
            return RC_EIO;
        }
        uint8_t *p = realloc(in->win, cap);
        if (!p) {
            rc_error_set(err, "out of memory growing the record buffer to %zu bytes", cap);
            return RC_ENOMEM;
        }
        in->win = p;
        in->win_cap = cap;
    }
    return decode_some(in, err);
}

/* Fills until at least n bytes are available or the stream ends. */
static rc_status ensure(rc_replay_input *in, size_t n, rc_error *err)
{
    while (avail(in) < n && !in->dec_eof) {
        rc_status st = win_more(in, err);
        if (st != RC_OK) return st;
    }
    return RC_OK;
}

/* Skips whitespace (counting lines); stops at a byte that is not, or at
 * the end. */
static rc_status skip_ws(rc_replay_input *in, rc_error *err)
{
    for (;;) {
        size_t n = 0, have = avail(in);
        const uint8_t *p = cur(in);
        while (n < have && is_ws(p[n]))
            n++;
        consume(in, n);
        if (avail(in) > 0 || in->dec_eof) return RC_OK;
        rc_status st = win_more(in, err);
        if (st != RC_OK) return st;
    }
}

/* A UTF-8 byte order mark, then whitespace: what precedes the first
 * record, at open and after a rewind. */
static rc_status skip_preamble(rc_replay_input *in, rc_error *err)
{
    rc_status st = ensure(in, 3, err);
    if (st != RC_OK) return st;
    if (avail(in) >= 3 && memcmp(cur(in), "\xef\xbb\xbf", 3) == 0) consume(in, 3);
    return skip_ws(in, err);
}

/* --- the JSON scanner -------------------------------------------------------------- */

static bool ends_token(uint8_t c)
{
    return is_ws(c) || c == '{' || c == '}' || c == '[' || c == ']' || c == '"' || c == ',' ||
           c == ':';
}

/* Scans p[from, to) of a value that starts at p[0] (not whitespace), with
 * the state left by the previous call on the same value. */
static scan_result scan_json(json_scan *s, const uint8_t *p, size_t from, size_t to, size_t *end)
{
    for (size_t i = from; i < to; i++) {
        uint8_t c = p[i];
        if (s->in_string) {
            if (s->escape) {
                s->escape = false;
            } else if (c == '\\') {
                s->escape = true;
            } else if (c == '"') {
                s->in_string = false;
                if (s->depth == 0) {
                    *end = i + 1;
                    return SCAN_DONE;
                }
            }
            continue;
        }
        if (s->in_token) {
            if (ends_token(c)) {
                *end = i;
                return SCAN_DONE;
            }
            continue;
        }
        switch (c) {
        case '"':
            s->in_string = true;
            break;
        case '{':
        case '[':
            s->depth++;
            break;
        case '}':
        case ']':
            if (s->depth == 0) {
                *end = i;
                return SCAN_UNBALANCED;
            }
            if (--s->depth == 0) {
                *end = i + 1;
                return SCAN_DONE;
            }
            break;
        default:
            if (s->depth > 0) break;
            if (c == ',' || c == ':') { /* a stray separator: a value of its own */
                *end = i + 1;
                return SCAN_DONE;
            }
            s->in_token = true;
            break;
        }
    }
    return SCAN_MORE;
}

/* A bare scalar ends with the input; a string or container does not. */
static bool scan_ends_at_eof(const json_scan *s)
{
    return s->in_token && s->depth == 0;
}

/* --- 3. record readers -------------------------------------------------------------- */

/* Length-prefixed protobuf: 4-byte big-endian length, then the request. */
static rc_status proto_next(rc_replay_input *in, rc_replay_record *rec, rc_error *err)
{
    rc_status st = ensure(in, 4, err);
    if (st != RC_OK) return st;
    if (avail(in) == 0) return RC_REPLAY_EOF;
    uint64_t index = ++in->index;
    rec->index = index;
    rec->line = 0;
    rec->format = RC_RECORD_PROTO;
    if (avail(in) < 4) {
        rc_error_set(err, "file ends inside the length of record %" PRIu64 " (has %zu of 4 bytes)",
                     index, avail(in));
        return RC_EIO;
    }
    const uint8_t *p = cur(in);
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3];
    if (n > in->max_record) {
        char lim[32];
        rc_error_set(err,
                     "record %" PRIu64 " at byte %" PRIu64
                     " has a length of %zu bytes, over the limit of %s",
                     index, in->offset, n, size_text(in->max_record, lim, sizeof lim));
        return RC_EIO;
    }
    st = ensure(in, 4 + n, err);
    if (st != RC_OK) return st;
    if (avail(in) < 4 + n) {
        rc_error_set(err, "file ends inside record %" PRIu64 " (needs %zu bytes, has %zu)", index,
                     n, avail(in) - 4);
        return RC_EIO;
    }
    rec->data = cur(in) + 4;
    rec->len = n;
    consume(in, 4 + n);
    return RC_OK;
}

/* A line over the limit: skipped up to its newline without holding it. */
static rc_status skip_long_line(rc_replay_input *in, rc_replay_record *rec, rc_error *err)
{
    rec->index = ++in->index;
    rec->line = in->line;
    for (;;) {
        const uint8_t *nl = memchr(cur(in), '\n', avail(in));
        if (nl) {
            consume(in, (size_t)(nl - cur(in)) + 1);
            break;
        }
        consume(in, avail(in));
        if (in->dec_eof) break;
        rc_status st = win_more(in, err);
        if (st != RC_OK) return st;
    }
    char lim[32];
    rc_error_set(err, "line longer than %s", size_text(in->max_record, lim, sizeof lim));
    return RC_EINVAL;
}

/* JSON lines: every non-blank line is one record, whatever it holds. */
static rc_status lines_next(rc_replay_input *in, rc_replay_record *rec, rc_error *err)
{
    for (;;) {
        size_t scanned = 0;
        const uint8_t *nl;
        /* Find the end of the line, holding at most max_record + 1 bytes of
         * it (the +1 is a CR before the newline). */
        while ((nl = memchr(cur(in) + scanned, '\n', avail(in) - scanned)) == NULL) {
            scanned = avail(in);
            if (scanned > in->max_record + 1) return skip_long_line(in, rec, err);
            if (in->dec_eof) break;
            rc_status st = win_more(in, err);
            if (st != RC_OK) return st;
        }
        const uint8_t *p = cur(in);
        size_t line_len = nl ? (size_t)(nl - p) : avail(in);
        size_t next = nl ? line_len + 1 : line_len;
        if (next == 0) return RC_REPLAY_EOF;
        size_t s = 0, e = line_len;
        while (s < e && is_ws(p[s]))
            s++;
        while (e > s && is_ws(p[e - 1]))
            e--;
        if (s == e) { /* blank */
            consume(in, next);
            continue;
        }
        rec->index = ++in->index;
        rec->line = in->line;
        rec->format = RC_RECORD_JSON;
        if (e - s > in->max_record) {
            consume(in, next);
            char lim[32];
            rc_error_set(err, "line longer than %s", size_text(in->max_record, lim, sizeof lim));
            return RC_EINVAL;
        }
        rec->data = p + s;
        rec->len = e - s;
        consume(in, next);
        return RC_OK;
    }
}

static rc_status unclosed_value(uint64_t line, rc_error *err)
{
    rc_error_set(err,
                 "unbalanced JSON: the value that starts on line %" PRIu64
                 " is not closed at the end of the input",
                 line);
    return RC_EIO;
}

static rc_status unexpected_closer(rc_replay_input *in, size_t at, rc_error *err)
{
    rc_error_set(err, "unbalanced JSON: unexpected '%c' on line %" PRIu64, cur(in)[at],
                 in->line + count_newlines(cur(in), at));
    return RC_EIO;
}

/* Skips (without holding) the value at pos, of which `scanned` bytes have
 * been scanned into *s. A closer at the value's start ends it unconsumed:
 * it belongs to the enclosing object. */
static rc_status skip_value(rc_replay_input *in, json_scan *s, size_t scanned, uint64_t line,
                            rc_error *err)
{
    for (;;) {
        size_t end;
        scan_result r = scan_json(s, cur(in), scanned, avail(in), &end);
        if (r != SCAN_MORE) {
            consume(in, end);
            return RC_OK;
        }
        consume(in, avail(in));
        scanned = 0;
        rc_status st = win_more(in, err);
        if (st != RC_OK) return st;
        if (avail(in) == 0) {
            if (scan_ends_at_eof(s)) return RC_OK;
            return unclosed_value(line, err);
        }
    }
}

/* Hands out the group being built as one record. */
static rc_status emit_group(rc_replay_input *in, rc_replay_record *rec, rc_error *err)
{
    rc_buf_puts(&in->group, "]}");
    if (in->group.failed) {
        rc_error_set(err, "out of memory building a record of resourceSpans");
        return RC_ENOMEM;
    }
    in->split_groups++;
    in->group_done = true;
    rec->index = ++in->index;
    rec->line = in->group_line;
    rec->format = RC_RECORD_JSON;
    rec->data = (const uint8_t *)in->group.data;
    rec->len = in->group.len;
    return RC_OK;
}

/* The input cannot go on, but the whole elements grouped so far are good:
 * they go out first, and the error (kept in fail_err) comes next call. */
static rc_status emit_before_failing(rc_replay_input *in, rc_replay_record *rec, bool *emitted,
                                     rc_error *err)
{
    in->failed = true;
    in->fail_status = RC_EIO;
    if (err) in->fail_err = *err;
    *emitted = true;
    return emit_group(in, rec, err);
}

static bool key_is_resource_spans(const rc_replay_input *in)
{
    return (in->key_len == 13 && memcmp(in->key, "resourceSpans", 13) == 0) ||
           (in->key_len == 14 && memcmp(in->key, "resource_spans", 14) == 0);
}

/* Reads a member name after its opening quote; keeps its first bytes. */
static void split_key_bytes(rc_replay_input *in)
{
    const uint8_t *p = cur(in);
    size_t n = avail(in);
    for (size_t i = 0; i < n; i++) {
        if (in->key_escape) {
            in->key_escape = false;
        } else if (p[i] == '\\') {
            in->key_escape = true;
        } else if (p[i] == '"') {
            consume(in, i + 1);
            in->split = SP_COLON;
            return;
        }
        if (in->key_len < sizeof in->key) in->key[in->key_len] = (char)p[i];
        in->key_len++;
    }
    consume(in, n);
}

/* Scans the element at pos; SP_ELEMENT_READY once its end is known. */
static rc_status split_scan_element(rc_replay_input *in, rc_error *err)
{
    size_t end;
    scan_result r = scan_json(&in->scan, cur(in), in->elem_scanned, avail(in), &end);
    if (r == SCAN_UNBALANCED) return unexpected_closer(in, end, err);
    if (r == SCAN_DONE && end <= in->max_record) {
        in->elem_len = end;
        in->split = SP_ELEMENT_READY;
        return RC_OK;
    }
    in->elem_scanned = avail(in);
    if (r == SCAN_DONE || avail(in) > in->max_record) {
        char lim[32];
        rc_error_set(err,
                     "resourceSpans element %" PRIu64 " (line %" PRIu64
                     ") is larger than the limit of %s",
                     in->elem_count + 1, in->elem_line, size_text(in->max_record, lim, sizeof lim));
        return RC_EIO;
    }
    if (in->dec_eof) {
        if (!scan_ends_at_eof(&in->scan)) return unclosed_value(in->split_line, err);
        in->elem_len = avail(in);
        in->split = SP_ELEMENT_READY;
        return RC_OK;
    }
    return win_more(in, err);
}

/* Adds the element at pos to the group, or, when the group is full, hands
 * the group out first (*emitted) and keeps the element for the next. */
static rc_status split_take_element(rc_replay_input *in, rc_replay_record *rec, bool *emitted,
                                    rc_error *err)
{
    rc_buf *g = &in->group;
    if (g->len > 0 && g->len + 1 + in->elem_len + 2 > in->max_record / 2) {
        *emitted = true;
        return emit_group(in, rec, err);
    }
    if (g->len == 0) {
        rc_buf_puts(g, "{\"resourceSpans\":[");
        in->group_line = in->elem_line; /* a group is on its first element's line */
    } else {
        rc_buf_putc(g, ',');
    }
    rc_buf_append(g, cur(in), in->elem_len);
    consume(in, in->elem_len);
    in->elem_count++;
    in->split = SP_ARRAY_NEXT;
    return RC_OK;
}

/* One step of the member walk: what to do with the byte at pos. */
static rc_status split_step(rc_replay_input *in, rc_replay_record *rec, bool *emitted,
                            rc_error *err)
{
    uint8_t c = cur(in)[0];
    switch (in->split) {
    case SP_OPEN:
        consume(in, 1);
        in->split = SP_KEY_OR_END;
        return RC_OK;
    case SP_KEY_OR_END:
        if (is_ws(c) || c == ',') {
            consume(in, 1);
        } else if (c == '}') {
            consume(in, 1);
            in->split = SP_NONE;
        } else if (c == '"') {
            consume(in, 1);
            in->key_len = 0;
            in->key_escape = false;
            in->split = SP_IN_KEY;
        } else if (c == ']') {
            return unexpected_closer(in, 0, err);
        } else {
            in->key_len = 0; /* not a name: skipped as a value */
            in->split = SP_VALUE;
        }
        return RC_OK;
    case SP_IN_KEY:
        split_key_bytes(in);
        return RC_OK;
    case SP_COLON:
        if (is_ws(c)) {
            consume(in, 1);
        } else {
            if (c == ':') consume(in, 1);
            in->split = SP_VALUE;
        }
        return RC_OK;
    case SP_VALUE:
        if (is_ws(c)) {
            consume(in, 1);
            return RC_OK;
        }
        if (c == ']') return unexpected_closer(in, 0, err);
        if (c == '[' && key_is_resource_spans(in)) {
            consume(in, 1);
            rc_buf_reset(&in->group);
            in->split = SP_ARRAY_NEXT;
            return RC_OK;
        }
        in->split = SP_KEY_OR_END;
        json_scan s = {0};
        return skip_value(in, &s, 0, in->split_line, err);
    case SP_ARRAY_NEXT:
        if (is_ws(c) || c == ',') {
            consume(in, 1);
        } else if (c == ']') {
            consume(in, 1);
            in->split = SP_KEY_OR_END;
            if (in->group.len > 0) {
                *emitted = true;
                return emit_group(in, rec, err);
            }
        } else {
            memset(&in->scan, 0, sizeof in->scan);
            in->elem_scanned = 0;
            in->elem_line = in->line;
            in->split = SP_ELEMENT;
        }
        return RC_OK;
    case SP_ELEMENT:
        return split_scan_element(in, err);
    case SP_ELEMENT_READY:
        return split_take_element(in, rec, emitted, err);
    default:
        return RC_OK;
    }
}

/* Walks a top-level object too large for one record, member by member,
 * handing out groups of whole resourceSpans elements as
 * {"resourceSpans":[...]} of at most about max_record/2 bytes (at least one
 * element each). Members other than resourceSpans are skipped. RC_OK with
 * *emitted false: the object is done (in->split is SP_NONE again). */
static rc_status split_next(rc_replay_input *in, rc_replay_record *rec, bool *emitted,
                            rc_error *err)
{
    *emitted = false;
    if (in->group_done) { /* handed out by the last call: done with now */
        rc_buf_reset(&in->group);
        in->group_done = false;
    }
    while (in->split != SP_NONE) {
        rc_status st = RC_OK;
        if (avail(in) == 0) {
            st = win_more(in, err);
            if (st == RC_OK && avail(in) == 0) st = unclosed_value(in->split_line, err);
        }
        if (st == RC_OK) st = split_step(in, rec, emitted, err);
        if (st == RC_EIO && in->group.len > 0 && !in->group_done)
            return emit_before_failing(in, rec, emitted, err);
        if (st != RC_OK || *emitted) return st;
    }
    if (in->split_groups == 0) {
        char lim[32];
        rec->index = ++in->index;
        rec->line = in->split_line;
        rec->format = RC_RECORD_JSON;
        rc_error_set(err,
                     "the object on line %" PRIu64
                     " is larger than %s and has no resourceSpans array to split it by",
                     in->split_line, size_text(in->max_record, lim, sizeof lim));
        return RC_EINVAL;
    }
    return RC_OK;
}

/* A top-level value too large for one record: an object is split by its
 * resourceSpans; anything else is skipped as one malformed record. `end` is
 * where the value ends when the scan found it, else 0 (then `scanned` bytes
 * of it are scanned into *s). */
static rc_status large_value(rc_replay_input *in, rc_replay_record *rec, json_scan *s,
                             size_t scanned, size_t end, uint64_t line, bool *emitted,
                             rc_error *err)
{
    if (cur(in)[0] == '{') {
        in->split = SP_OPEN;
        in->split_line = line;
        in->split_groups = 0;
        in->elem_count = 0;
        rc_buf_reset(&in->group);
        in->group_done = false;
        return split_next(in, rec, emitted, err);
    }
    rec->index = ++in->index;
    rec->line = line;
    rec->format = RC_RECORD_JSON;
    if (end > 0) {
        consume(in, end);
    } else {
        rc_status st = skip_value(in, s, scanned, line, err);
        if (st != RC_OK) return st;
    }
    char lim[32];
    rc_error_set(err, "the value on line %" PRIu64 " is larger than %s and is not an object", line,
                 size_text(in->max_record, lim, sizeof lim));
    return RC_EINVAL;
}

/* The top-level value at pos (after whitespace). *emitted false with RC_OK:
 * a large object ended without a record left to give; look again. */
static rc_status doc_value(rc_replay_input *in, rc_replay_record *rec, bool *emitted, rc_error *err)
{
    *emitted = false;
    uint64_t line = in->line;
    json_scan s = {0};
    size_t scanned = 0, end = 0;
    for (;;) {
        scan_result r = scan_json(&s, cur(in), scanned, avail(in), &end);
        if (r == SCAN_UNBALANCED) return unexpected_closer(in, end, err);
        if (r == SCAN_DONE) break;
        scanned = avail(in);
        /* Large before ended: what is read of a large value does not depend
         * on how much of the file the window happens to hold. */
        if (scanned > in->max_record)
            return large_value(in, rec, &s, scanned, 0, line, emitted, err);
        if (in->dec_eof) {
            if (!scan_ends_at_eof(&s)) return unclosed_value(line, err);
            end = scanned;
            break;
        }
        rc_status st = win_more(in, err);
        if (st != RC_OK) return st;
    }
    /* A window filled at once can hold the whole of a large value. */
    if (end > in->max_record) return large_value(in, rec, &s, scanned, end, line, emitted, err);
    *emitted = true;
    rec->index = ++in->index;
    rec->line = line;
    rec->format = RC_RECORD_JSON;
    rec->data = cur(in);
    rec->len = end;
    consume(in, end);
    return RC_OK;
}

/* JSON documents: consecutive top-level values, one record each. */
static rc_status doc_next(rc_replay_input *in, rc_replay_record *rec, rc_error *err)
{
    for (;;) {
        bool emitted = false;
        rc_status st;
        if (in->split != SP_NONE) {
            st = split_next(in, rec, &emitted, err);
        } else {
            st = skip_ws(in, err);
            if (st != RC_OK) return st;
            if (avail(in) == 0) return RC_REPLAY_EOF;
            st = doc_value(in, rec, &emitted, err);
        }
        if (st != RC_OK || emitted) return st;
    }
}

/* --- detection ------------------------------------------------------------------------ */

static rc_status decoder_init(rc_replay_input *in, rc_error *err)
{
    if (in->comp == COMP_GZIP) {
        if (inflateInit2(&in->zs, 16 + MAX_WBITS) != Z_OK) {
            rc_error_set(err, "out of memory starting the gzip decoder");
            return RC_ENOMEM;
        }
        in->zs_ready = true;
        in->gz_in_member = true;
    } else if (in->comp == COMP_ZSTD) {
        in->zd = ZSTD_createDCtx();
        if (!in->zd) {
            rc_error_set(err, "out of memory starting the zstd decoder");
            return RC_ENOMEM;
        }
    }
    return RC_OK;
}

/* Compression, from the magic of the stored bytes. */
static rc_status detect_compression(rc_replay_input *in, rc_error *err)
{
    while (in->raw_len - in->raw_pos < 4 && !in->src_eof) {
        rc_status st = raw_read(in, err);
        if (st != RC_OK) return st;
    }
    const uint8_t *p = in->raw + in->raw_pos;
    size_t have = in->raw_len - in->raw_pos;
    if (have >= 2 && p[0] == 0x1f && p[1] == 0x8b)
        in->comp = COMP_GZIP;
    else if (have >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
        in->comp = COMP_ZSTD;
    else
        in->comp = COMP_NONE;
    return decoder_init(in, err);
}

/* JSON lines when the first value ends on the line it starts on; JSON
 * documents otherwise (also when it has not ended within max_record bytes:
 * a document can be split, a line cannot). Only peeks. */
static rc_status detect_json_layout(rc_replay_input *in, rc_error *err)
{
    json_scan s = {0};
    size_t scanned = 0, end;
    for (;;) {
        if (scan_json(&s, cur(in), scanned, avail(in), &end) == SCAN_DONE) {
            bool one_line = memchr(cur(in), '\n', end) == NULL;
            in->layout = one_line ? LAYOUT_JSON_LINES : LAYOUT_JSON_DOC;
            return RC_OK;
        }
        scanned = avail(in);
        if (scanned > in->max_record || in->dec_eof) {
            in->layout = LAYOUT_JSON_DOC;
            return RC_OK;
        }
        rc_status st = win_more(in, err);
        if (st != RC_OK) return st;
    }
}

/* Length-prefixed protobuf when the first 4 bytes are a plausible length
 * followed by field 1 (resource_spans, length-delimited: 0x0a), or are a
 * zero length. */
static bool looks_like_proto(const rc_replay_input *in)
{
    const uint8_t *p = cur(in);
    if (avail(in) < 4) return false;
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3];
    if (n > in->max_record) return false;
    return n == 0 || (avail(in) >= 5 && p[4] == 0x0a);
}

static rc_status detect_layout(rc_replay_input *in, rc_error *err)
{
    rc_status st = skip_preamble(in, err);
    if (st == RC_OK) st = ensure(in, 5, err);
    if (st != RC_OK) return st;
    if (avail(in) == 0) {
        in->layout = LAYOUT_EMPTY;
        return RC_OK;
    }
    if (cur(in)[0] == '{') return detect_json_layout(in, err);
    if (looks_like_proto(in)) {
        in->layout = LAYOUT_PROTO;
        return RC_OK;
    }
    char hex[16] = "";
    size_t n = avail(in) < 4 ? avail(in) : 4, at = 0;
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(hex + at, sizeof hex - at, "%s%02x", i ? " " : "", cur(in)[i]);
    rc_error_set(err,
                 "unknown format: neither OTLP/JSON nor length-prefixed OTLP protobuf "
                 "(first bytes: %s)",
                 hex);
    return RC_EINVAL;
}

static void set_format_name(rc_replay_input *in)
{
    static const char *const layouts[] = {
        [LAYOUT_EMPTY] = "empty",
        [LAYOUT_JSON_LINES] = "OTLP/JSON lines",
        [LAYOUT_JSON_DOC] = "OTLP/JSON document",
        [LAYOUT_PROTO] = "OTLP protobuf, length-prefixed",
    };
    static const char *const comps[] = {
        [COMP_NONE] = "", [COMP_GZIP] = ", gzip", [COMP_ZSTD] = ", zstd"};
    snprintf(in->format_name, sizeof in->format_name, "%s%s", layouts[in->layout], comps[in->comp]);
}

/* --- opening ------------------------------------------------------------------------- */

/* The fd, its size and whether it can seek; a pipe opened as rewindable
 * gets its spool. Messages name the file. */
static rc_status open_source(rc_replay_input *in, const char *path, bool rewindable, rc_error *err)
{
    if (strcmp(path, "-") == 0) {
        in->fd = STDIN_FILENO;
        in->owns_fd = false;
    } else {
        in->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            rc_error_set(err, "cannot open %s: %s", in->name, strerror(errno));
            return RC_EIO;
        }
        in->owns_fd = true;
    }
    struct stat st;
    if (fstat(in->fd, &st) != 0) {
        rc_error_set(err, "cannot read %s: %s", in->name, strerror(errno));
        return RC_EIO;
    }
    if (S_ISDIR(st.st_mode)) {
        rc_error_set(err, "cannot read %s: it is a directory", in->name);
        return RC_EIO;
    }
    if (S_ISREG(st.st_mode)) {
        /* Standard input may be a file the shell has already read part of. */
        off_t at = lseek(in->fd, 0, SEEK_CUR);
        in->start = at > 0 ? at : 0;
        in->seekable = at >= 0;
        in->size = st.st_size > in->start ? (uint64_t)(st.st_size - in->start) : 0;
    } else if (rewindable) {
        in->spool_fd = spool_create();
        if (in->spool_fd < 0) {
            rc_error_set(err, "cannot create a temporary file to make %s rewindable: %s", in->name,
                         strerror(errno));
            return RC_EIO;
        }
    }
    return RC_OK;
}

static rc_replay_input *input_alloc(const char *path, const rc_replay_input_opts *opts)
{
    rc_replay_input *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    in->fd = in->spool_fd = -1;
    size_t max =
        opts && opts->max_record_bytes ? opts->max_record_bytes : RC_REPLAY_DEFAULT_MAX_RECORD;
    in->max_record = max < MAX_RECORD_CEILING ? max : MAX_RECORD_CEILING;
    in->win_limit = in->max_record + WIN_SLACK;
    in->win_cap = WIN_FIRST_CAP < in->win_limit ? WIN_FIRST_CAP : in->win_limit;
    in->line = 1;
    in->name = strdup(strcmp(path, "-") == 0 ? "standard input" : path);
    in->raw = malloc(RAW_CAP);
    in->win = malloc(in->win_cap);
    rc_buf init = RC_BUF_INIT;
    in->group = init;
    if (!in->name || !in->raw || !in->win) {
        rc_replay_input_close(in);
        return NULL;
    }
    return in;
}

rc_status rc_replay_input_open(const char *path, const rc_replay_input_opts *opts,
                               rc_replay_input **out, rc_error *err)
{
    *out = NULL;
    rc_replay_input *in = input_alloc(path, opts);
    if (!in) {
        rc_error_set(err, "out of memory opening %s", path);
        return RC_ENOMEM;
    }
    rc_status st = open_source(in, path, opts && opts->rewindable, err);
    if (st == RC_OK) st = detect_compression(in, err);
    if (st == RC_OK) st = detect_layout(in, err);
    if (st != RC_OK) {
        /* A read or decompression error is about this file: say which. */
        if (st == RC_EIO && strncmp(err ? err->msg : "", "cannot ", 7) != 0)
            rc_error_prefix(err, "%s", in->name);
        rc_replay_input_close(in);
        return st;
    }
    set_format_name(in);
    *out = in;
    return RC_OK;
}

/* --- the rest of the API ------------------------------------------------------------ */

rc_status rc_replay_input_next(rc_replay_input *in, rc_replay_record *rec, rc_error *err)
{
    if (in->failed) {
        if (err) *err = in->fail_err;
        return in->fail_status;
    }
    memset(rec, 0, sizeof *rec);
    rc_error local = {{0}};
    rc_status st;
    switch (in->layout) {
    case LAYOUT_JSON_LINES:
        st = lines_next(in, rec, &local);
        break;
    case LAYOUT_JSON_DOC:
        st = doc_next(in, rec, &local);
        break;
    case LAYOUT_PROTO:
        st = proto_next(in, rec, &local);
        break;
    default:
        st = RC_REPLAY_EOF;
        break;
    }
    if (st != RC_OK && st != RC_REPLAY_EOF && st != RC_EINVAL) {
        /* Fatal: the stream position is lost, so every later call says so. */
        in->failed = true;
        in->fail_status = st;
        in->fail_err = local;
    }
    if (err && st != RC_OK && st != RC_REPLAY_EOF) *err = local;
    return st;
}

const char *rc_replay_input_format_name(const rc_replay_input *in)
{
    return in->format_name;
}

uint64_t rc_replay_input_bytes_read(const rc_replay_input *in)
{
    return in->bytes_read;
}

uint64_t rc_replay_input_bytes_done(const rc_replay_input *in)
{
    if (in->comp == COMP_NONE) return in->offset;
    /* Compressed: the stored bytes behind what was decompressed, in the
     * proportion of it handed out. */
    uint64_t produced = in->offset + avail(in);
    if (produced == 0) return 0;
    return (uint64_t)((double)stored_offset(in) * (double)in->offset / (double)produced);
}

uint64_t rc_replay_input_size(const rc_replay_input *in)
{
    return in->size;
}

/* A pipe being spooled: copies what is left of it, then reads the spool
 * from now on (which also makes its size known). */
static rc_status switch_to_spool(rc_replay_input *in, rc_error *err)
{
    while (!in->src_eof) {
        in->raw_pos = in->raw_len = 0; /* what is buffered is in the spool already */
        rc_status st = raw_read(in, err);
        if (st != RC_OK) return st;
    }
    if (in->owns_fd) close(in->fd);
    in->fd = in->spool_fd;
    in->owns_fd = true;
    in->spool_fd = -1;
    in->seekable = true;
    in->start = 0;
    off_t end = lseek(in->fd, 0, SEEK_END);
    in->size = end > 0 ? (uint64_t)end : 0;
    return RC_OK;
}

static rc_status decoder_reset(rc_replay_input *in, rc_error *err)
{
    if (in->comp == COMP_GZIP && inflateReset(&in->zs) != Z_OK) {
        rc_error_set(err, "cannot restart the gzip decoder");
        return RC_EIO;
    }
    if (in->comp == COMP_ZSTD && ZSTD_isError(ZSTD_DCtx_reset(in->zd, ZSTD_reset_session_only))) {
        rc_error_set(err, "cannot restart the zstd decoder");
        return RC_EIO;
    }
    in->gz_in_member = in->comp == COMP_GZIP;
    in->zstd_in_frame = false;
    return RC_OK;
}

rc_status rc_replay_input_rewind(rc_replay_input *in, rc_error *err)
{
    if (!in->seekable && in->spool_fd < 0) {
        rc_error_set(err, "cannot rewind %s: it is a pipe, not opened as rewindable", in->name);
        return RC_EIO;
    }
    rc_status st = in->spool_fd >= 0 ? switch_to_spool(in, err) : RC_OK;
    if (st != RC_OK) return st;
    if (lseek(in->fd, in->start, SEEK_SET) < 0) {
        rc_error_set(err, "cannot rewind %s: %s", in->name, strerror(errno));
        return RC_EIO;
    }
    in->src_eof = in->dec_eof = false;
    in->raw_pos = in->raw_len = 0;
    in->bytes_read = 0;
    in->pos = in->len = 0;
    in->line = 1;
    in->offset = 0;
    in->index = 0;
    in->failed = false;
    in->split = SP_NONE;
    in->group_done = false;
    rc_buf_reset(&in->group);
    st = decoder_reset(in, err);
    if (st == RC_OK) st = skip_preamble(in, err);
    if (st != RC_OK) {
        in->failed = true;
        in->fail_status = st;
        if (err) in->fail_err = *err;
    }
    return st;
}

void rc_replay_input_close(rc_replay_input *in)
{
    if (!in) return;
    if (in->zs_ready) inflateEnd(&in->zs);
    ZSTD_freeDCtx(in->zd);
    if (in->owns_fd && in->fd >= 0) close(in->fd);
    if (in->spool_fd >= 0) close(in->spool_fd);
    rc_buf_free(&in->group);
    free(in->win);
    free(in->raw);
    free(in->name);
    free(in);
}
