/*
 * http_client.c - OTLP/HTTP load (protobuf or JSON) with the libcurl multi
 * interface.
 *
 * `concurrency` easy handles, each with at most one POST outstanding, share
 * one multi handle; its connection cache keeps one keep-alive HTTP/1.1
 * connection per handle, as a pool of exporters would. Over TLS with
 * --http2, the handles' requests are instead streams multiplexed over
 * `connections` HTTP/2 connections, as Go's and Java's exporters send. A handle is reused
 * for every request it sends, so only the body pointer changes per call and
 * curl neither copies the body (CURLOPT_POSTFIELDS points into the corpus)
 * nor reconnects.
 *
 * 200 is success (its body may carry a partial success, which we parse for
 * rejected spans); 429 and 503 are the collector's backpressure and make
 * the handle wait backoff_s before its next request; anything else,
 * transport errors included, is a failure.
 */
#include "loadgen.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 50
#define MAX_RESPONSE 65536

typedef struct slot {
    CURL *easy;
    bool busy;
    const lg_body *body;
    double started;
    double resume_at;
    char response[MAX_RESPONSE]; /* a response body; longer ones are cut */
    size_t response_len;
} slot;

typedef struct client {
    CURLM *multi;
    struct curl_slist *headers;
    slot *slots;
    unsigned n_slots, in_flight;
    bool json;
    long deadline_ms; /* the timeout of every request */
    const lg_client_opts *o;
    const lg_corpus *corpus;
    size_t next_body;
    lg_run *run;
} client;

static size_t keep_response(char *data, size_t size, size_t n, void *arg)
{
    slot *s = arg;
    size_t len = size * n, room = sizeof s->response - s->response_len;
    size_t take = len < room ? len : room;
    memcpy(s->response + s->response_len, data, take);
    s->response_len += take;
    return len;
}

static bool slot_init(client *c, slot *s, const char *url)
{
    s->easy = curl_easy_init();
    if (!s->easy) return false;
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, keep_response);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, c->deadline_ms);
    if (c->o->tls_ca) curl_easy_setopt(s->easy, CURLOPT_CAINFO, c->o->tls_ca);
    curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION,
                     c->o->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    if (c->o->http2) curl_easy_setopt(s->easy, CURLOPT_PIPEWAIT, 1L); /* share, not reconnect */
    return true;
}

static bool slot_start(client *c, slot *s)
{
    s->body = &c->corpus->bodies[c->next_body++ % c->corpus->n];
    s->response_len = 0;
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, (const char *)s->body->data);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body->len);
    s->started = lg_now();
    if (curl_multi_add_handle(c->multi, s->easy) != CURLM_OK) return false;
    s->busy = true;
    c->in_flight++;
    return true;
}

static size_t rejected_in_proto(const slot *s)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, s->response_len, (const uint8_t *)s->response);
    size_t rejected = 0;
    if (resp && resp->partial_success && resp->partial_success->rejected_spans > 0)
        rejected = (size_t)resp->partial_success->rejected_spans;
    if (resp)
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
            resp, NULL);
    return rejected;
}

static size_t rejected_in_json(const slot *s)
{
    json_t *root = json_loadb(s->response, s->response_len, 0, NULL);
    json_t *n = json_object_get(json_object_get(root, "partialSuccess"), "rejectedSpans");
    /* int64 fields may come as strings or numbers in OTLP/JSON. */
    size_t rejected = json_is_integer(n)  ? (size_t)json_integer_value(n)
                      : json_is_string(n) ? (size_t)strtoull(json_string_value(n), NULL, 10)
                                          : 0;
    json_decref(root);
    return rejected;
}

static void slot_finish(client *c, slot *s, CURLcode result)
{
    curl_multi_remove_handle(c->multi, s->easy);
    s->busy = false;
    c->in_flight--;
    long code = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    lg_outcome o = LG_FAILED;
    char detail[200];
    if (result != CURLE_OK) {
        snprintf(detail, sizeof detail, "curl: %s", curl_easy_strerror(result));
    } else if (code == 200) {
        o = LG_OK;
    } else {
        if (code == 429 || code == 503) o = LG_BACKPRESSURE;
        snprintf(detail, sizeof detail, "HTTP %ld: %.*s", code,
                 (int)(s->response_len < 120 ? s->response_len : 120), s->response);
    }
    size_t rejected = 0;
    if (o == LG_OK && s->response_len)
        rejected = c->json ? rejected_in_json(s) : rejected_in_proto(s);
    lg_run_record(c->run, o, s->body->spans, rejected, s->started, detail);
    s->resume_at = o == LG_OK ? 0 : lg_now() + c->run->backoff_s;
}

static double start_idle_slots(client *c, double now, double later)
{
    for (unsigned i = 0; i < c->n_slots; i++) {
        slot *s = &c->slots[i];
        if (s->busy) continue;
        if (!lg_run_may_issue(c->run)) break; /* e.g. --requests reached */
        if (s->resume_at > now) {
            later = s->resume_at < later ? s->resume_at : later;
            continue;
        }
        if (slot_start(c, s)) {
            lg_run_issued(c->run);
        } else {
            lg_run_record(c->run, LG_FAILED, 0, 0, now, "curl_multi_add_handle failed");
            s->resume_at = now + c->run->backoff_s;
        }
    }
    return later;
}

static void collect_done(client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        slot *s = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        /* m is invalid once its handle is removed: copy the result first. */
        CURLcode result = m->data.result;
        slot_finish(c, s, result);
    }
}

static void drive(client *c)
{
    lg_run_start(c->run);
    for (;;) {
        double now = lg_now(), wake = now + POLL_MS / 1000.0;
        bool more = lg_run_may_issue(c->run);
        if (more)
            wake = start_idle_slots(c, now, wake);
        else if (c->in_flight == 0)
            break;
        int running;
        curl_multi_perform(c->multi, &running);
        collect_done(c);
        int timeout_ms = wake > now ? (int)((wake - now) * 1000) : 0;
        curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
    }
    lg_run_finish(c->run);
}

/* One blocking request before the run, so that a missing collector is
 * reported once instead of as a flood of failed requests. Not counted. */
static bool probe(client *c, slot *s, const char *url, char *why, size_t why_len)
{
    s->response_len = 0;
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, (const char *)c->corpus->bodies[0].data);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->corpus->bodies[0].len);
    CURLcode rc = curl_easy_perform(s->easy);
    if (rc != CURLE_OK) {
        snprintf(why, why_len, "cannot POST to %s: %s", url, curl_easy_strerror(rc));
        return false;
    }
    return true;
}

static void client_close(client *c)
{
    for (unsigned i = 0; c->slots && i < c->n_slots; i++) {
        if (c->slots[i].busy) curl_multi_remove_handle(c->multi, c->slots[i].easy);
        if (c->slots[i].easy) curl_easy_cleanup(c->slots[i].easy);
    }
    if (c->multi) curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    free(c->slots);
}

bool lg_http_run(const lg_client_opts *o, const lg_corpus *corpus, lg_run *r, char *why,
                 size_t why_len)
{
    client c = {.corpus = corpus,
                .run = r,
                .json = o->protocol == LG_HTTP_JSON,
                .deadline_ms = o->deadline_ms,
                .o = o};
    bool ok = false;
    char url[512];
    snprintf(url, sizeof url, "%s://%s/v1/traces", o->tls_ca ? "https" : "http", o->target);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c.multi = curl_multi_init();
    if (c.multi && o->http2) {
        curl_multi_setopt(c.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
        curl_multi_setopt(c.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->connections);
    }
    c.n_slots = o->concurrency;
    c.slots = calloc(c.n_slots, sizeof *c.slots);
    c.headers = curl_slist_append(NULL, c.json ? "Content-Type: application/json"
                                               : "Content-Type: application/x-protobuf");
    /* No "Expect: 100-continue" round trip before large bodies. */
    c.headers = curl_slist_append(c.headers, "Expect:");
    if (corpus->gzipped) c.headers = curl_slist_append(c.headers, "Content-Encoding: gzip");
    char bearer[512];
    if (o->token) {
        snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", o->token);
        c.headers = curl_slist_append(c.headers, bearer);
    }
    if (!c.multi || !c.slots || !c.headers) {
        snprintf(why, why_len, "cannot set up libcurl for %u requests", c.n_slots);
        goto done;
    }
    for (unsigned i = 0; i < c.n_slots; i++) {
        if (!slot_init(&c, &c.slots[i], url)) {
            snprintf(why, why_len, "curl_easy_init failed");
            goto done;
        }
    }
    if (!probe(&c, &c.slots[0], url, why, why_len)) goto done;
    drive(&c);
    ok = true;
done:
    client_close(&c);
    curl_global_cleanup();
    return ok;
}
