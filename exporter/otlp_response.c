/*
 * otlp_response.c - the reading of OTLP answers (gRPC and HTTP) into the
 * delivery module's verdicts; otlp_response.h states the mapping's choices
 * and the promises. Everything here is a function of its arguments: no
 * clock, no I/O, no state.
 *
 * Messages are unpacked with protobuf-c's own allocator and freed before
 * returning (bodies are bounded by the transports: RC_HTTP_MAX_RESPONSE_BYTES,
 * gRPC's receive limit); JSON is read with jansson.
 */
#include "exporter/otlp_response.h"

#include "exporter/http_client.h"
#include "otlp/otlp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_INFO_SUFFIX "/google.rpc.RetryInfo"

/* google.rpc.Code, as gRPC numbers them. */
enum {
    CODE_OK = 0,
    CODE_CANCELLED = 1,
    CODE_UNKNOWN = 2,
    CODE_INVALID_ARGUMENT = 3,
    CODE_DEADLINE_EXCEEDED = 4,
    CODE_NOT_FOUND = 5,
    CODE_ALREADY_EXISTS = 6,
    CODE_PERMISSION_DENIED = 7,
    CODE_RESOURCE_EXHAUSTED = 8,
    CODE_FAILED_PRECONDITION = 9,
    CODE_ABORTED = 10,
    CODE_OUT_OF_RANGE = 11,
    CODE_UNIMPLEMENTED = 12,
    CODE_INTERNAL = 13,
    CODE_UNAVAILABLE = 14,
    CODE_DATA_LOSS = 15,
    CODE_UNAUTHENTICATED = 16,
};

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

/* --- detail ------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p[0..n), 0 when there is none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void rc_otlp_set_detail(rc_send_result *r, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t o = 0, cap = sizeof r->detail - 1;
    for (size_t i = 0; p && i < len && o < cap;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            r->detail[o++] = '?';
            i++;
        } else if (n == 1) {
            r->detail[o++] = p[i] < 0x20 || p[i] == 0x7f ? ' ' : (char)p[i];
            i++;
        } else {
            if (o + n > cap) break; /* never half a character */
            memcpy(r->detail + o, p + i, n);
            o += n;
            i += n;
        }
    }
    r->detail[o] = '\0';
}

static void set_detail_str(rc_send_result *r, const char *s)
{
    rc_otlp_set_detail(r, s, s ? strlen(s) : 0);
}

/* --- google.rpc.Status ------------------------------------------------------------ */

/* Whether st carries a google.rpc.RetryInfo, and its delay in *ms: -1 when
 * it has none, or one that is negative or too long to believe (the sender
 * then backs off on its own). */
static bool retry_info(const rpc_status *st, int64_t *ms)
{
    *ms = -1;
    for (size_t i = 0; st && i < st->n_details; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        if (!any || !any->type_url) continue;
        size_t ul = strlen(any->type_url), sl = strlen(RETRY_INFO_SUFFIX);
        if (ul < sl || strcmp(any->type_url + ul - sl, RETRY_INFO_SUFFIX) != 0) continue;
        Google__Rpc__RetryInfo *ri =
            google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
        if (!ri) continue; /* not a RetryInfo after all */
        const Google__Protobuf__Duration *dl = ri->retry_delay;
        if (!dl) {
            *ms = 0; /* no delay given: the server says retry, now */
        } else if (dl->seconds >= 0 && dl->nanos >= 0 && dl->nanos < 1000000000 &&
                   dl->seconds < RC_HTTP_RETRY_AFTER_MAX_S) {
            *ms = dl->seconds * 1000 + dl->nanos / 1000000;
        }
        google__rpc__retry_info__free_unpacked(ri, NULL);
        return true;
    }
    return false;
}

/* --- gRPC ---------------------------------------------------------------------------- */

rc_verdict rc_otlp_grpc_verdict(int code, bool has_retry_info)
{
    switch (code) {
    case CODE_OK:
        return RC_VERDICT_OK;
    case CODE_CANCELLED:
    case CODE_DEADLINE_EXCEEDED:
    case CODE_ABORTED:
    case CODE_OUT_OF_RANGE:
    case CODE_UNAVAILABLE:
    case CODE_DATA_LOSS:
        return RC_VERDICT_RETRY;
    case CODE_RESOURCE_EXHAUSTED:
        /* With RetryInfo the server can recover (it is shedding load);
         * without, it is a limit the request hit (gRPC's own "message
         * larger than max"), which a smaller request may pass. */
        return has_retry_info ? RC_VERDICT_THROTTLE : RC_VERDICT_SPLIT;
    case CODE_UNAUTHENTICATED:
    case CODE_PERMISSION_DENIED:
    case CODE_UNIMPLEMENTED:
    case CODE_NOT_FOUND:
        /* Permanent (OTLP spec, issue 10): dead-lettered, where a replay
         * picks them up once the credentials or the endpoint are fixed.
         * Not bisected: no half of the request would fare better. */
        return RC_VERDICT_DROP;
    default: /* INVALID_ARGUMENT, UNKNOWN, ALREADY_EXISTS, FAILED_PRECONDITION,
                INTERNAL, codes past UNAUTHENTICATED */
        return RC_VERDICT_SPLIT;
    }
}

static void read_partial_success(rc_send_result *r, const uint8_t *response, size_t len)
{
    if (!response || len == 0) return;
    otlp_export_response *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(NULL, len,
                                                                                          response);
    if (!resp) return; /* the server said OK; an unreadable answer takes nothing back */
    if (resp->partial_success) {
        if (resp->partial_success->rejected_spans > 0)
            r->rejected_spans = (uint64_t)resp->partial_success->rejected_spans;
        set_detail_str(r, resp->partial_success->error_message);
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(resp,
                                                                                             NULL);
}

void rc_otlp_grpc_read_answer(rc_send_result *r, int code, const char *message, size_t message_len,
                              const uint8_t *status_details, size_t status_details_len,
                              const uint8_t *response, size_t response_len)
{
    r->status = code;
    r->retry_after_ms = -1;
    r->rejected_spans = 0;
    r->detail[0] = '\0';
    if (code == CODE_OK) {
        r->verdict = RC_VERDICT_OK;
        read_partial_success(r, response, response_len);
        return;
    }
    rpc_status *st = status_details && status_details_len
                         ? google__rpc__status__unpack(NULL, status_details_len, status_details)
                         : NULL;
    int64_t delay;
    r->verdict = rc_otlp_grpc_verdict(code, retry_info(st, &delay));
    if (r->verdict == RC_VERDICT_RETRY || r->verdict == RC_VERDICT_THROTTLE)
        r->retry_after_ms = delay;
    /* "UNAVAILABLE: message": the name says more in a log than the number. */
    char text[sizeof r->detail], number[32];
    snprintf(number, sizeof number, "gRPC status %d", code);
    const char *name = code > 0 && code < (int)(sizeof code_names / sizeof *code_names)
                           ? code_names[code]
                           : number;
    const char *msg = message;
    size_t mlen = message_len;
    if ((!msg || mlen == 0) && st && st->message) {
        msg = st->message;
        mlen = strlen(st->message);
    }
    int n;
    if (msg && mlen)
        n = snprintf(text, sizeof text, "%s: %.*s", name, (int)(mlen < 400 ? mlen : 400), msg);
    else
        n = snprintf(text, sizeof text, "%s", name);
    rc_otlp_set_detail(r, text, n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
    if (st) google__rpc__status__free_unpacked(st, NULL);
}

/* --- HTTP ---------------------------------------------------------------------------- */

rc_verdict rc_otlphttp_verdict(long status)
{
    if (status >= 200 && status < 300) return RC_VERDICT_OK;
    switch (status) {
    case 429:
        return RC_VERDICT_THROTTLE;
    case 408: /* the server gave up waiting for our request: nothing wrong with it */
    case 502:
    case 503:
    case 504:
        return RC_VERDICT_RETRY;
    case 400:
    case 413:
    case 422:
        return RC_VERDICT_SPLIT;
    case 401:
    case 403:
    case 404:
    case 405:
    case 407: /* a proxy wants credentials */
    case 410: /* the endpoint is gone */
    case 414: /* our URL is too long: the config */
    case 415: /* the server does not take this encoding: the config */
    case 421: /* sent to a server that does not serve that host */
    case 426: /* the server wants another protocol (TLS): the config */
    case 431: /* our headers are too large: the config */
    case 501: /* the server does not do OTLP here */
    case 505:
        /* The config, not the data: permanent, dead-lettered whole. */
        return RC_VERDICT_DROP;
    default:
        break;
    }
    if (status >= 300 && status < 400) return RC_VERDICT_DROP; /* moved: fix the endpoint */
    if (status >= 400 && status < 500) return RC_VERDICT_DROP;
    /* 500 and the rest of 5xx: permanent in OTLP, but one bad item may be
     * what breaks the server: bisection isolates it and sends the rest. */
    if (status >= 500 && status < 600) return RC_VERDICT_SPLIT;
    return RC_VERDICT_RETRY; /* not an HTTP status we know: as if there were no answer */
}

static bool ct_is(const char *content_type, const char *type)
{
    size_t n = strlen(type);
    return content_type && strncasecmp(content_type, type, n) == 0 &&
           (content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ');
}

static bool ct_proto(const char *ct)
{
    return ct_is(ct, "application/x-protobuf") || ct_is(ct, "application/protobuf");
}

static bool ct_json(const char *ct)
{
    return ct_is(ct, "application/json");
}

static json_t *json_member(json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    return v ? v : json_object_get(obj, snake);
}

static void read_partial_success_json(rc_send_result *r, const char *body, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *ps =
        json_is_object(root) ? json_member(root, "partialSuccess", "partial_success") : NULL;
    if (json_is_object(ps)) {
        json_t *rej = json_member(ps, "rejectedSpans", "rejected_spans");
        json_t *msg = json_member(ps, "errorMessage", "error_message");
        long long n = 0;
        /* int64 is a string in OTLP/JSON; a number is accepted too. */
        if (json_is_integer(rej)) {
            n = json_integer_value(rej);
        } else if (json_is_string(rej)) {
            char *end;
            n = strtoll(json_string_value(rej), &end, 10);
            if (*end || end == json_string_value(rej)) n = 0;
        }
        if (n > 0) r->rejected_spans = (uint64_t)n;
        if (json_is_string(msg))
            rc_otlp_set_detail(r, json_string_value(msg), json_string_length(msg));
    }
    json_decref(root);
}

/* detail from a google.rpc.Status body, else the body's start, else the
 * status. */
static void read_error_detail(rc_send_result *r, long status, const char *ct, const char *body,
                              size_t len)
{
    r->detail[0] = '\0';
    if (len && ct_proto(ct)) {
        rpc_status *st = google__rpc__status__unpack(NULL, len, (const uint8_t *)body);
        if (st && st->message && st->message[0]) set_detail_str(r, st->message);
        if (st) google__rpc__status__free_unpacked(st, NULL);
    } else if (len && ct_json(ct)) {
        json_error_t jerr;
        json_t *root = json_loadb(body, len, 0, &jerr);
        json_t *msg = json_is_object(root) ? json_object_get(root, "message") : NULL;
        if (json_is_string(msg))
            rc_otlp_set_detail(r, json_string_value(msg), json_string_length(msg));
        json_decref(root);
    }
    if (r->detail[0]) return;
    if (len && !ct_proto(ct)) {
        rc_otlp_set_detail(r, body, len);
        if (r->detail[0]) return;
    }
    snprintf(r->detail, sizeof r->detail, "HTTP %ld", status);
}

void rc_otlphttp_read_answer(rc_send_result *r, long status, const char *content_type,
                             const char *retry_after, const char *body, size_t len, int64_t now_s)
{
    r->status = status;
    r->verdict = rc_otlphttp_verdict(status);
    r->retry_after_ms = -1;
    r->rejected_spans = 0;
    r->detail[0] = '\0';
    if (!body) len = 0;
    if (r->verdict == RC_VERDICT_OK) {
        if (len && ct_proto(content_type))
            read_partial_success(r, (const uint8_t *)body, len);
        else if (len && ct_json(content_type))
            read_partial_success_json(r, body, len);
        return;
    }
    if (r->verdict == RC_VERDICT_RETRY || r->verdict == RC_VERDICT_THROTTLE)
        r->retry_after_ms = rc_http_retry_after_ms(retry_after ? retry_after : "", now_s);
    read_error_detail(r, status, content_type, body, len);
}
