/*
 * otlphttp.c - the `otlphttp` exporter: spans forwarded as OTLP/HTTP
 * (protobuf, or JSON with `encoding: json`) to a collector or a tracing
 * backend, Respan's own OTLP endpoint ({base}/v2/traces) among them,
 * through the durable queue of exporter/delivery.h.
 *
 * Config (exporters.otlphttp; docs/configuration.md has every key), as in
 * the OpenTelemetry Collector:
 *   endpoint          base URL: POSTs go to {endpoint}/v1/traces
 *   traces_endpoint   the exact URL instead (wins over endpoint)
 *   encoding          proto (default) | json
 *   compression       gzip (default) | none
 *   headers           map, sent with every request (e.g. Authorization)
 *   tls               { ca_file, insecure_skip_verify, insecure (accepted
 *                     for compatibility: the URL's scheme decides) }
 *   max_batch_spans, max_batch_bytes_mib
 *   + the shared keys of rc_delivery_parse (timeout, sending_queue,
 *     retry_on_failure, num_consumers, flush_interval, dead_letter_file).
 *
 * export_batch queues items in the wire form of the request
 * (exporter/otlp_items.h). With protobuf the sender's body is the items'
 * bytes, handed to libcurl piece by piece (exporter/http_client.h); with
 * JSON the body is built at send time by decoding those bytes into a
 * scratch arena and writing OTLP/JSON, simple and exactly the file
 * exporter's encoding.
 *
 * What an answer leads to (exporter/otlp_response.c reads it; the OTLP
 * specification's table, with the choices noted):
 *   2xx                  delivered; a partial_success in the body (protobuf
 *                        or JSON per Content-Type) counts its rejected
 *                        spans as failed and logs its error_message
 *   429                  throttled: waits Retry-After (or backs off), never
 *                        gives up
 *   502, 503, 504, 408,  retried with backoff, Retry-After honoured; 408
 *   no answer            (the server timed out reading us) is not in the
 *                        specification's list but says nothing against the
 *                        data
 *   400, 413, 422        split: bisected until the refused items are alone,
 *                        which are dead-lettered; the rest is delivered
 *   500 and other 5xx    split too: "not retryable" in the specification,
 *                        and the one item that breaks a server is isolated
 *                        while the others still get through
 *   401, 403, 404, 405, 407, 410, 414, 415, 421, 426, 431, 501, 505, 3xx,
 *   other 4xx            permanent (a wrong URL, encoding or credentials,
 *                        or a refusal no single item causes): the whole
 *                        request is dead-lettered, for `replay` once the
 *                        cause is fixed
 * The detail logged and dead-lettered is the message of the google.rpc.Status
 * body (protobuf or JSON), else the start of the body. Header values are in
 * no log line and no error message.
 */
#include "core/component.h"
#include "core/log.h"
#include "exporter/delivery.h"
#include "exporter/http_client.h"
#include "exporter/otlp_config.h"
#include "exporter/otlp_items.h"
#include "exporter/otlp_response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct otlphttp_exporter {
    char *id;
    char *url;
    bool json, gzip;
    rc_otlp_tls tls;
    rc_otlp_headers headers;
    uint64_t max_spans, max_bytes;
    bool persists;
    rc_delivery_config dcfg;   /* handed to rc_delivery_start */
    rc_http_settings settings; /* points into the fields above */
    rc_delivery *d;
    uint64_t left_at_stop; /* records the queue still held when it stopped */
} otlphttp_exporter;

/* --- config ----------------------------------------------------------------- */

static void otlphttp_destroy(void *inst)
{
    otlphttp_exporter *x = inst;
    if (!x) return;
    rc_delivery_stop(x->d); /* after a failed start, destroy is all that is called */
    rc_delivery_config_free(&x->dcfg);
    rc_otlp_headers_free(&x->headers);
    rc_otlp_tls_free(&x->tls);
    free(x->url);
    free(x->id);
    free(x);
}

static bool is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static rc_status check_url(rc_cfg *node, const char *url, rc_error *err)
{
    if (!is_http_url(url))
        return rc_cfg_error(err, node, "expected an http:// or https:// URL, got \"%s\"",
                            rc_cfg_shown(node));
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return rc_cfg_error(err, node, "the URL contains a space or control character");
    return RC_OK;
}

static rc_status parse_url(otlphttp_exporter *x, rc_cfg *cfg, rc_error *err)
{
    const char *ep = NULL, *traces = NULL;
    if (rc_cfg_string(cfg, "endpoint", "", &ep, err) ||
        rc_cfg_string(cfg, "traces_endpoint", "", &traces, err))
        return RC_EINVAL;
    if (traces[0]) {
        if (check_url(rc_cfg_get(cfg, "traces_endpoint"), traces, err)) return RC_EINVAL;
        if (ep[0] && check_url(rc_cfg_get(cfg, "endpoint"), ep, err)) return RC_EINVAL;
        return (x->url = strdup(traces)) ? RC_OK : RC_ENOMEM;
    }
    if (!ep[0])
        return rc_cfg_error(err, rc_cfg_get(cfg, "endpoint") ? rc_cfg_get(cfg, "endpoint") : cfg,
                            "endpoint (a base URL; POSTs go to {endpoint}/v1/traces) or "
                            "traces_endpoint (the exact URL) is required");
    if (check_url(rc_cfg_get(cfg, "endpoint"), ep, err)) return RC_EINVAL;
    size_t len = strlen(ep);
    while (len && ep[len - 1] == '/')
        len--;
    if (asprintf(&x->url, "%.*s/v1/traces", (int)len, ep) < 0) {
        x->url = NULL;
        return RC_ENOMEM;
    }
    return RC_OK;
}

static rc_status parse_config(otlphttp_exporter *x, rc_cfg *cfg, rc_error *err)
{
    const char *encoding = NULL;
    rc_status st;
    if ((st = parse_url(x, cfg, err)) || (st = rc_otlp_parse_tls(cfg, &x->tls, err)) ||
        (st = rc_otlp_parse_compression(cfg, &x->gzip, err)) ||
        (st = rc_otlp_parse_headers(cfg, RC_OTLP_HTTP, &x->headers, err)) ||
        (st = rc_otlp_parse_batch_limits(cfg, &x->dcfg, err)) ||
        (st = rc_cfg_string(cfg, "encoding", "proto", &encoding, err)))
        return st;
    if (strcmp(encoding, "json") == 0)
        x->json = true;
    else if (strcmp(encoding, "proto") != 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "encoding"),
                            "unknown encoding \"%s\": expected proto or json", encoding);
    if ((st = rc_delivery_parse(x->id, cfg, &x->dcfg, err))) return st;
    if (rc_cfg_reject_unknown(cfg, err)) return RC_EINVAL;
    x->max_spans = x->dcfg.max_batch_spans;
    x->max_bytes = x->dcfg.max_batch_bytes;
    x->persists = rc_delivery_config_persists(&x->dcfg);
    x->settings = (rc_http_settings){
        .url = x->url,
        .headers = (const char *const *)x->headers.lines,
        .n_headers = x->headers.n,
        .content_type = x->json ? "application/json" : "application/x-protobuf",
        .gzip = x->gzip,
        .timeout_ms = x->dcfg.timeout_ms,
        .ca_file = x->tls.ca_file,
        .insecure_skip_verify = x->tls.skip_verify,
    };
    return RC_OK;
}

static void *otlphttp_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    otlphttp_exporter *x = calloc(1, sizeof *x);
    if (!x) {
        rc_error_set(err, "out of memory");
        return NULL;
    }
    rc_status st = (x->id = strdup(id->id)) ? parse_config(x, cfg, err) : RC_ENOMEM;
    if (st != RC_OK) {
        if (st == RC_ENOMEM) rc_error_set(err, "out of memory");
        otlphttp_destroy(x);
        return NULL;
    }
    return x;
}

static uint64_t otlphttp_pending(const void *inst)
{
    const otlphttp_exporter *x = inst;
    return x->d ? rc_delivery_pending(x->d) : x->left_at_stop;
}

static bool otlphttp_persists(const void *inst)
{
    return ((const otlphttp_exporter *)inst)->persists;
}

/* --- senders ---------------------------------------------------------------- */

typedef struct http_sender {
    otlphttp_exporter *x;
    rc_http_client *client;
    rc_buf json; /* encoding: json: the body, rebuilt for every request */
} http_sender;

static void sender_free(void *sp)
{
    http_sender *s = sp;
    if (!s) return;
    rc_http_client_free(s->client);
    rc_buf_free(&s->json);
    free(s);
}

static void *sender_new(void *exporter, const rc_delivery *d, rc_error *err)
{
    otlphttp_exporter *x = exporter;
    http_sender *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "%s: out of memory", x->id);
        return NULL;
    }
    s->x = x;
    if (!(s->client = rc_http_client_new(&x->settings, d, err))) {
        free(s);
        return NULL;
    }
    return s;
}

static void send_items(void *sp, const rc_delivery_item *items, size_t n, rc_send_result *r)
{
    http_sender *s = sp;
    uint64_t spans = 0;
    for (size_t i = 0; i < n; i++)
        spans += items[i].spans;
    rc_http_body body = {.open = "", .sep = "", .close = "", .items = items, .n = n};
    rc_delivery_item whole;
    if (s->x->json) {
        rc_error e;
        rc_buf_reset(&s->json);
        rc_status st = rc_otlp_items_to_json(items, n, &s->json, &e);
        if (st != RC_OK) {
            /* Items that do not decode (a damaged record) are isolated by
             * bisection and dead-lettered; memory may come back. */
            r->verdict = st == RC_EINVAL ? RC_VERDICT_SPLIT : RC_VERDICT_RETRY;
            rc_otlp_set_detail(r, e.msg, strlen(e.msg));
            return;
        }
        whole = (rc_delivery_item){s->json.data, s->json.len, (uint32_t)spans};
        body.items = &whole;
        body.n = 1;
    }
    rc_http_answer a;
    long status = rc_http_post(s->client, &body, &a);
    if (status == 0) {
        r->verdict = RC_VERDICT_RETRY;
        r->status = 0;
        rc_otlp_set_detail(r, a.error, strlen(a.error));
        return;
    }
    rc_otlphttp_read_answer(r, status, a.content_type, a.retry_after, a.body, a.body_len,
                            (int64_t)time(NULL));
    if (r->rejected_spans > spans) r->rejected_spans = spans; /* believe no more than sent */
    if (r->verdict == RC_VERDICT_DROP) {
        /* The detail, in the log line and the dead letters, says where to
         * look. */
        char why[sizeof r->detail + 512];
        snprintf(why, sizeof why, "%s answered HTTP %ld (%s): check the URL, encoding and headers",
                 s->x->url, status, r->detail);
        rc_otlp_set_detail(r, why, strlen(why));
    }
}

static void dead_letter_entry(void *exporter, const rc_delivery_item *item, long status,
                              const char *detail, rc_buf *out)
{
    const otlphttp_exporter *x = exporter;
    rc_otlp_dead_letter_entry(x->id, "HTTP", item, status, detail, out);
}

static const rc_delivery_ops otlphttp_ops = {
    .sender_new = sender_new,
    .sender_free = sender_free,
    .send = send_items,
    .frame = rc_otlp_item_frame,
    .dead_letter_entry = dead_letter_entry,
};

/* --- life cycle ------------------------------------------------------------- */

static rc_status otlphttp_start(void *inst, rc_error *err)
{
    otlphttp_exporter *x = inst;
    rc_otlp_warn_skip_verify(x->id, &x->tls);
    return rc_delivery_start(x->id, &x->dcfg, &otlphttp_ops, x, &x->d, err);
}

static rc_status otlphttp_export(void *inst, const rc_batch *batch, rc_error *err)
{
    otlphttp_exporter *x = inst;
    rc_buf items = RC_BUF_INIT;
    rc_status st = RC_OK;
    uint64_t spans;
    if (!rc_otlp_items_encode(batch, x->max_spans, x->max_bytes, &items, &spans)) {
        rc_error_set(err, "%s: out of memory encoding %zu spans", x->id, batch->n_spans);
        st = RC_ENOMEM;
    } else if (items.len) {
        st = rc_delivery_enqueue_counted(x->d, &items, spans, err);
    }
    rc_buf_free(&items);
    return st;
}

static void otlphttp_shutdown(void *inst)
{
    otlphttp_exporter *x = inst;
    x->left_at_stop = rc_delivery_stop(x->d);
    x->d = NULL;
}

const rc_exporter_factory rc_otlphttp_exporter_factory = {
    .type = "otlphttp",
    .description = "forwards spans as OTLP/HTTP (protobuf or JSON), through a durable queue",
    .create = otlphttp_create,
    .start = otlphttp_start,
    .export_batch = otlphttp_export,
    .persists = otlphttp_persists,
    .pending = otlphttp_pending,
    .queued = true,
    .shutdown = otlphttp_shutdown,
    .destroy = otlphttp_destroy,
};
