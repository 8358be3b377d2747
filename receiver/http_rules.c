/*
 * http_rules.c - the OTLP/HTTP rules both HTTP servers follow (http_rules.h):
 * which requests are taken, and what each is answered.
 */
#include "receiver/http_rules.h"

#include "otlp/otlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool media_type_is(const char *value, const char *want)
{
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strcspn(value, ";");
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(value, want, n) == 0;
}

static bool parse_content_type(const char *value, rc_payload_format *fmt)
{
    if (!value) return false;
    if (media_type_is(value, HTTP_CT_PROTO)) {
        *fmt = RC_FORMAT_PROTO;
        return true;
    }
    if (media_type_is(value, HTTP_CT_JSON)) {
        *fmt = RC_FORMAT_JSON;
        return true;
    }
    return false;
}

rc_payload_format http_answer_format(const char *content_type)
{
    rc_payload_format fmt = RC_FORMAT_JSON;
    parse_content_type(content_type, &fmt);
    return fmt;
}

bool http_path_is(const char *target, size_t len, const char *path)
{
    const char *q = memchr(target, '?', len);
    size_t n = q ? (size_t)(q - target) : len;
    return n == strlen(path) && memcmp(target, path, n) == 0;
}

/* Content-Length as digits only; false for anything else. */
static bool parse_length(const char *text, size_t *out)
{
    size_t v = 0;
    if (!*text) return false;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10) return false;
        v = v * 10 + (size_t)(*p - '0');
    }
    *out = v;
    return true;
}

unsigned http_check_head(const http_head *h, const char *path, http_admit *out, char *msg,
                         size_t cap)
{
    *out = (http_admit){.fmt = http_answer_format(h->content_type), .enc = RC_ENC_IDENTITY};
    if (!http_path_is(h->path, strlen(h->path), path)) {
        snprintf(msg, cap, "no OTLP endpoint at \"%.200s\"; send traces to %s", h->path, path);
        return 404;
    }
    if (strcmp(h->method, "POST") != 0) {
        snprintf(msg, cap, "method %.32s is not allowed on %s; use POST", h->method, path);
        return 405;
    }
    if (!parse_content_type(h->content_type, &out->fmt)) {
        out->fmt = RC_FORMAT_JSON;
        if (h->content_type)
            snprintf(msg, cap,
                     "unsupported content type \"%.200s\"; use " HTTP_CT_PROTO " or " HTTP_CT_JSON,
                     h->content_type);
        else
            snprintf(msg, cap, "missing Content-Type; use " HTTP_CT_PROTO " or " HTTP_CT_JSON);
        return 415;
    }
    if (!rc_encoding_parse(h->content_encoding, &out->enc)) {
        snprintf(msg, cap, "unsupported Content-Encoding: %.200s; use gzip, deflate, zstd or none",
                 h->content_encoding);
        return 400;
    }
    return 0;
}

unsigned http_check_length(const http_head *h, size_t body_limit, http_admit *out, char *msg,
                           size_t cap)
{
    if (h->content_length && !parse_length(h->content_length, &out->declared)) {
        snprintf(msg, cap, "Content-Length \"%.40s\" is not a number", h->content_length);
        return 400;
    }
    if (out->declared > body_limit) {
        snprintf(msg, cap, "request body of %zu bytes exceeds the limit of %zu bytes",
                 out->declared, body_limit);
        return 413;
    }
    return 0;
}

unsigned http_status_for(rc_status st)
{
    switch (st) {
    case RC_OK:
        return 200;
    case RC_EINVAL:
        return 400;
    case RC_ETOOBIG:
        return 413;
    case RC_ELIMIT:
        return 429;
    case RC_EBUSY:
    case RC_ENOMEM:
        return 503;
    default:
        return 500;
    }
}

static int rpc_code_for(unsigned status)
{
    switch (status) {
    case 404:
        return RPC_CODE_NOT_FOUND;
    case 405:
        return RPC_CODE_UNIMPLEMENTED;
    case 413:
    case 429:
        return RPC_CODE_RESOURCE_EXHAUSTED;
    case 401:
        return RPC_CODE_UNAUTHENTICATED;
    case 503:
        return RPC_CODE_UNAVAILABLE;
    case 500:
        return RPC_CODE_INTERNAL;
    default:
        return RPC_CODE_INVALID_ARGUMENT; /* 400, 408, 415 */
    }
}

void http_answer_error(http_answer *a, unsigned status, rc_payload_format fmt, const char *msg,
                       unsigned retry_after_s, unsigned default_retry_s)
{
    *a = (http_answer){.status = status, .fmt = fmt, .body = RC_BUF_INIT};
    if (status == 429 || status == 503) {
        a->retry_after_s = retry_after_s ? retry_after_s : status == 503 ? default_retry_s : 1;
        if (a->retry_after_s == 0) a->retry_after_s = 1;
    }
    if (fmt == RC_FORMAT_PROTO)
        otlp_status_encode_proto(rpc_code_for(status), msg, a->retry_after_s, &a->body);
    else
        otlp_status_encode_json(rpc_code_for(status), msg, &a->body);
    if (a->body.failed) rc_buf_free(&a->body); /* the status alone goes */
}

void http_answer_ingest(http_answer *a, rc_payload_format fmt, const rc_ingest_result *res,
                        unsigned default_retry_s)
{
    if (res->status != RC_OK) {
        http_answer_error(a, http_status_for(res->status), fmt, res->err.msg, res->retry_after_s,
                          default_retry_s);
        return;
    }
    *a = (http_answer){.status = 200, .fmt = fmt, .body = RC_BUF_INIT};
    int64_t rejected = (int64_t)res->rejected_spans;
    const char *msg = rejected > 0 ? res->err.msg : "";
    if (fmt == RC_FORMAT_PROTO)
        otlp_response_encode_proto(rejected, msg, &a->body);
    else
        otlp_response_encode_json(rejected, msg, &a->body);
    if (a->body.failed) rc_buf_free(&a->body);
}

void http_answer_free(http_answer *a)
{
    rc_buf_free(&a->body);
}

size_t http_answer_headers(const http_answer *a, const char **names, const char **values,
                           char scratch[16])
{
    size_t n = 0;
    names[n] = "content-type";
    values[n++] = a->fmt == RC_FORMAT_PROTO ? HTTP_CT_PROTO : HTTP_CT_JSON;
    if (a->status == 405) {
        names[n] = "allow";
        values[n++] = "POST";
    }
    if (a->status == 401) {
        names[n] = "www-authenticate";
        values[n++] = "Bearer";
    }
    if (a->retry_after_s) {
        snprintf(scratch, 16, "%u", a->retry_after_s);
        names[n] = "retry-after";
        values[n++] = scratch;
    }
    return n;
}
