/*
 * fuzz_otlp_response.c - libFuzzer target for what the otlp and otlphttp
 * exporters read from bytes they did not write: a server's answers
 * (exporter/otlp_response.h) and queued records read back from disk
 * (exporter/otlp_items.h).
 *
 * Whatever answers at the configured endpoint - the next collector, a
 * proxy, something hostile - decides through these functions whether spans
 * are delivered, retried, kept or dead-lettered; a queue segment may come
 * back damaged. Both must be survived like any client input.
 *
 * Input layout: byte 0 selects (modulo 3)
 *   0  a gRPC answer: byte 1 the status code (0..19), bytes 2-3 and 4-5 the
 *      lengths (big-endian) of the status message and of the
 *      grpc-status-details-bin value, cut to what follows; then those two,
 *      and the rest is the response message;
 *   1  an HTTP answer: bytes 1-2 the status modulo 1000 (0 is not given to
 *      the reader: the sender handles "no answer" itself), byte 3 the
 *      Content-Type (protobuf, JSON, text, none), then a Retry-After value
 *      up to the first '\n', and the rest is the body;
 *   2  a queued record: the rest, framed item by item as a sender does,
 *      each item dead-lettered, and all of them made into an OTLP/JSON body.
 * Checked: the promises of otlp_response.h (detail NUL-terminated, valid
 * UTF-8, no control characters; retry_after_ms -1 or bounded, and only for
 * the verdicts that wait; rejected spans only on OK; the verdict the status
 * alone gives); frames inside the record and covering it in order; every
 * dead letter one line of JSON; no leak (ASan).
 * Seeds: fuzz/corpus/otlp_response/, made by fuzz/corpus/make_seeds.py.
 */
#include "exporter/http_client.h"
#include "exporter/otlp_items.h"
#include "exporter/otlp_response.h"
#include "core/log.h"
#include "fuzz/roundtrip.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NOW_S 1767225600 /* 2026-01-01T00:00:00Z: dates give the same delay every run */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const content_types[] = {"application/x-protobuf", "application/json",
                                            "text/plain", ""};

static void check_result(const rc_send_result *r)
{
    const char *nul = memchr(r->detail, '\0', sizeof r->detail);
    if (!nul) fuzz_fail("detail is not NUL-terminated");
    for (const char *p = r->detail; p < nul; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            fuzz_fail("detail holds control character 0x%02x", (unsigned char)*p);
    if (!fuzz_utf8_valid(r->detail, (size_t)(nul - r->detail)))
        fuzz_fail("detail is not valid UTF-8");
    bool waits = r->verdict == RC_VERDICT_RETRY || r->verdict == RC_VERDICT_THROTTLE;
    if (r->retry_after_ms != -1 && (!waits || r->retry_after_ms < 0 ||
                                    r->retry_after_ms >= (int64_t)RC_HTTP_RETRY_AFTER_MAX_S * 1000))
        fuzz_fail("verdict %d with a delay of %lld ms", (int)r->verdict,
                  (long long)r->retry_after_ms);
    if (r->rejected_spans && r->verdict != RC_VERDICT_OK)
        fuzz_fail("verdict %d with rejected spans", (int)r->verdict);
}

/* An exact heap copy, so that a read past the end trips ASan. */
static uint8_t *copy_of(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (c && n) memcpy(c, p, n);
    return c;
}

static void fuzz_grpc(const uint8_t *data, size_t size)
{
    if (size < 5) return;
    int code = data[0] % 20;
    size_t msg_len = (size_t)data[1] << 8 | data[2];
    size_t det_len = (size_t)data[3] << 8 | data[4];
    data += 5;
    size -= 5;
    if (msg_len > size) msg_len = size;
    if (det_len > size - msg_len) det_len = size - msg_len;
    uint8_t *msg = copy_of(data, msg_len);
    uint8_t *det = copy_of(data + msg_len, det_len);
    uint8_t *resp = copy_of(data + msg_len + det_len, size - msg_len - det_len);
    if (msg && det && resp) {
        rc_send_result r;
        memset(&r, 0x5a, sizeof r); /* nothing may be left as it was */
        rc_otlp_grpc_read_answer(&r, code, (const char *)msg, msg_len, det, det_len, resp,
                                 size - msg_len - det_len);
        check_result(&r);
        if (r.status != code) fuzz_fail("code %d read as %ld", code, r.status);
        /* Only RESOURCE_EXHAUSTED depends on the details. */
        if (code != 8 && r.verdict != rc_otlp_grpc_verdict(code, false))
            fuzz_fail("code %d gives verdict %d", code, (int)r.verdict);
        if (code == 8 && r.verdict != RC_VERDICT_THROTTLE && r.verdict != RC_VERDICT_SPLIT)
            fuzz_fail("RESOURCE_EXHAUSTED gives verdict %d", (int)r.verdict);
    }
    free(msg);
    free(det);
    free(resp);
}

static void fuzz_http(const uint8_t *data, size_t size)
{
    if (size < 3) return;
    long status = (long)(((unsigned)data[0] << 8 | data[1]) % 1000);
    const char *ct = content_types[data[2] % 4];
    if (status == 0) status = 200;
    const char *rest = (const char *)data + 3;
    size_t left = size - 3;
    const char *nl = memchr(rest, '\n', left);
    size_t ra_len = nl ? (size_t)(nl - rest) : left;
    char retry_after[RC_HTTP_RETRY_AFTER_MAX];
    size_t n = ra_len < sizeof retry_after - 1 ? ra_len : sizeof retry_after - 1;
    memcpy(retry_after, rest, n);
    retry_after[n] = '\0';
    const char *body = nl ? nl + 1 : rest + left;
    size_t body_len = left - (size_t)(body - rest);
    if (body_len > RC_HTTP_MAX_RESPONSE_BYTES) body_len = RC_HTTP_MAX_RESPONSE_BYTES;
    uint8_t *copy = copy_of((const uint8_t *)body, body_len);
    if (!copy) return;
    rc_send_result r;
    memset(&r, 0x5a, sizeof r);
    rc_otlphttp_read_answer(&r, status, ct, retry_after, (const char *)copy, body_len, FUZZ_NOW_S);
    check_result(&r);
    if (r.status != status) fuzz_fail("HTTP %ld read as %ld", status, r.status);
    if (r.verdict != rc_otlphttp_verdict(status))
        fuzz_fail("HTTP %ld gives verdict %d", status, (int)r.verdict);
    free(copy);
}

static void fuzz_record(const uint8_t *data, size_t size)
{
    char *rec = (char *)copy_of(data, size);
    rc_delivery_item items[64];
    size_t n = 0, pos = 0;
    if (!rec) return;
    while (pos < size && n < sizeof items / sizeof *items) {
        size_t used = rc_otlp_item_frame(rec + pos, size - pos, &items[n]);
        if (used == 0) break;
        if (used > size - pos) fuzz_fail("a frame of %zu bytes with %zu left", used, size - pos);
        if (items[n].p != rec + pos + 4 || items[n].p + items[n].len != rec + pos + used)
            fuzz_fail("the item is not where its frame is");
        pos += used;
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        rc_buf line = RC_BUF_INIT;
        rc_otlp_dead_letter_entry("fuzz", "HTTP", &items[i], 400, "refused", &line);
        if (line.failed) fuzz_fail("out of memory writing a dead letter");
        if (memchr(line.data, '\n', line.len)) fuzz_fail("a dead letter spans lines");
        json_error_t jerr;
        json_t *root = json_loadb(line.data, line.len, 0, &jerr);
        if (!json_is_object(root)) fuzz_fail("a dead letter is not a JSON object: %s", jerr.text);
        json_decref(root);
        rc_buf_free(&line);
    }
    if (n) {
        rc_buf json = RC_BUF_INIT;
        rc_error err;
        rc_status st = rc_otlp_items_to_json(items, n, &json, &err);
        if (st != RC_OK && st != RC_EINVAL) fuzz_fail("items to JSON: status %d", (int)st);
        rc_buf_free(&json);
    }
    free(rec);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* A damaged item is logged when dead-lettered: not once per input. */
    rc_log_set_level(RC_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_grpc(data + 1, size - 1);
        break;
    case 1:
        fuzz_http(data + 1, size - 1);
        break;
    default:
        fuzz_record(data + 1, size - 1);
        break;
    }
    return 0;
}
