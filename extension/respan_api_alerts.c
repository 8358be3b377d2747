/*
 * respan_api_alerts.c - budget alerts of the respan_api extension: when a
 * customer's usage crosses a fraction of its period or total budget
 * (store/ledger.h notices it as the call is charged), the alert is logged,
 * counted, and POSTed as JSON to a webhook, retried with backoff until it
 * is taken (issue 12).
 *
 * Config (extensions.respan_api.alerts):
 *   webhook_url: https://hooks.example.com/budget   required with alerts
 *   thresholds: [0.8, 1.0]                           fractions, default these
 *
 * One thread takes the ledger's alerts every ALERT_POLL_MS and delivers
 * them in order, one POST each. A failed POST (no answer, or a status other
 * than 2xx) waits and is tried again, the wait doubling from 1 s to 60 s,
 * while later alerts queue behind it (at most MAX_QUEUED; past that the
 * oldest goes, counted and logged). Alerts still queued at shutdown are
 * logged as not delivered. The body:
 *   {"event": "budget_threshold_crossed", "customer_identifier": "...",
 *    "budget_type": "period" | "total", "threshold": 0.8, "usage": 8.1,
 *    "budget": 10, "period_start": "...", "period_end": "...",
 *    "timestamp": "..."}
 */
#include "core/clock.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "exporter/http_client.h"
#include "extension/respan_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALERT_POLL_MS 200
#define FIRST_RETRY_MS 1000
#define MAX_RETRY_MS 60000
#define MAX_QUEUED 10000
#define POST_TIMEOUT_MS 10000

typedef struct queued {
    struct queued *next;
    char *body;
    size_t len;
    char *customer;
} queued;

struct rc_api_alerts {
    const char *id; /* the extension's, for logs */
    char *url;
    double thresholds[RC_LEDGER_MAX_THRESHOLDS];
    size_t n_thresholds;
    rc_worker w;
    bool started;
    rc_http_settings http;
    rc_http_client *client;
    queued *head, *tail; /* the worker's own: no lock */
    size_t n_queued;
    rc_counter *raised[2][RC_LEDGER_MAX_THRESHOLDS]; /* [period, total][threshold] */
    rc_counter *delivered, *failed, *dropped;
};

/* --- config -------------------------------------------------------------------------------- */

static rc_status parse_thresholds(rc_api_alerts *a, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *list = rc_cfg_get(cfg, "thresholds");
    if (!list || rc_cfg_kind_of(list) == RC_CFG_NULL) {
        a->thresholds[0] = 0.8;
        a->thresholds[1] = 1.0;
        a->n_thresholds = 2;
        return RC_OK;
    }
    if (rc_cfg_kind_of(list) != RC_CFG_SEQ || rc_cfg_len(list) == 0 ||
        rc_cfg_len(list) > RC_LEDGER_MAX_THRESHOLDS)
        return rc_cfg_error(err, list, "thresholds must be a list of 1 to %d fractions",
                            RC_LEDGER_MAX_THRESHOLDS);
    for (size_t i = 0; i < rc_cfg_len(list); i++) {
        rc_cfg *item = rc_cfg_at(list, i);
        const char *s = rc_cfg_scalar(item);
        char *end = NULL;
        double v = s ? strtod(s, &end) : NAN;
        if (!s || end == s || *end || !isfinite(v) || v <= 0 || v > 10)
            return rc_cfg_error(err, item,
                                "a threshold is a fraction of the budget above 0 (0.8 is 80%%)");
        a->thresholds[a->n_thresholds++] = v;
    }
    return RC_OK;
}

rc_status rc_api_alerts_parse(rc_cfg *cfg, const char *id, rc_api_alerts **out, rc_error *err)
{
    *out = NULL;
    rc_cfg *node = rc_cfg_get(cfg, "alerts");
    if (!node || rc_cfg_kind_of(node) == RC_CFG_NULL) return RC_OK;
    if (rc_cfg_kind_of(node) != RC_CFG_MAP) return rc_cfg_error(err, node, "alerts must be a map");
    rc_api_alerts *a = calloc(1, sizeof *a);
    if (!a) return (rc_error_set(err, "out of memory"), RC_ENOMEM);
    a->id = id;
    const char *url = NULL;
    rc_status st = rc_cfg_string(node, "webhook_url", NULL, &url, err);
    if (st == RC_OK && (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))))
        st = rc_cfg_error(err,
                          rc_cfg_get(node, "webhook_url") ? rc_cfg_get(node, "webhook_url") : node,
                          "alerts need a webhook_url (http:// or https://)");
    if (st == RC_OK) st = parse_thresholds(a, node, err);
    if (st == RC_OK) st = rc_cfg_reject_unknown(node, err);
    if (st == RC_OK && !(a->url = strdup(url)))
        st = (rc_error_set(err, "out of memory"), RC_ENOMEM);
    if (st != RC_OK) {
        rc_api_alerts_free(a);
        return st;
    }
    rc_worker_init(&a->w);
    *out = a;
    return RC_OK;
}

void rc_api_alerts_free(rc_api_alerts *a)
{
    if (!a) return;
    if (a->url) rc_worker_destroy(&a->w); /* initialised once parsed whole */
    free(a->url);
    free(a);
}

/* --- the queue ------------------------------------------------------------------------------ */

static void drop_front(rc_api_alerts *a)
{
    queued *q = a->head;
    a->head = q->next;
    if (!a->head) a->tail = NULL;
    a->n_queued--;
    free(q->body);
    free(q->customer);
    free(q);
}

static void note_counter(rc_api_alerts *a, const rc_budget_alert *al)
{
    int kind = strcmp(al->budget_type, "total") == 0;
    for (size_t i = 0; i < a->n_thresholds; i++)
        if (a->thresholds[i] == al->threshold) rc_counter_add(a->raised[kind][i], 1);
}

/* One alert from the ledger: logged, counted, queued for the webhook. */
static void take_one(void *arg, const rc_budget_alert *al)
{
    rc_api_alerts *a = arg;
    rc_warn(a->id, "customer %s reached %.0f%% of its %s budget (%.6g of %.6g USD)",
            al->customer_identifier, al->threshold * 100, al->budget_type, al->usage, al->budget);
    note_counter(a, al);
    rc_buf b = RC_BUF_INIT;
    rc_buf_puts(&b, "{\"event\":\"budget_threshold_crossed\",\"customer_identifier\":");
    rc_json_cstr(&b, al->customer_identifier);
    rc_buf_puts(&b, ",\"budget_type\":");
    rc_json_cstr(&b, al->budget_type);
    rc_buf_puts(&b, ",\"threshold\":");
    rc_json_double(&b, al->threshold);
    rc_buf_puts(&b, ",\"usage\":");
    rc_json_double(&b, al->usage);
    rc_buf_puts(&b, ",\"budget\":");
    rc_json_double(&b, al->budget);
    rc_api_put_time(&b, "period_start", al->period_start_us);
    rc_api_put_time(&b, "period_end", al->period_end_us);
    rc_api_put_time(&b, "timestamp", al->time_us);
    rc_buf_putc(&b, '}');
    queued *q = calloc(1, sizeof *q);
    if (b.failed || !q || !(q->customer = strdup(al->customer_identifier))) {
        rc_error_log(a->id, "out of memory: the alert for %s is not sent", al->customer_identifier);
        rc_counter_add(a->dropped, 1);
        free(q);
        rc_buf_free(&b);
        return;
    }
    q->body = b.data;
    q->len = b.len;
    if (a->tail)
        a->tail->next = q;
    else
        a->head = q;
    a->tail = q;
    if (++a->n_queued > MAX_QUEUED) {
        rc_warn(a->id, "%d budget alerts wait for the webhook: the oldest (for %s) is dropped",
                MAX_QUEUED, a->head->customer);
        rc_counter_add(a->dropped, 1);
        drop_front(a);
    }
}

/* --- delivery ------------------------------------------------------------------------------- */

/* POSTs the first queued alert; true when the webhook took it. */
static bool post_front(rc_api_alerts *a)
{
    rc_delivery_item item = {.p = a->head->body, .len = a->head->len, .spans = 0};
    rc_http_body body = {.open = "", .sep = "", .close = "", .items = &item, .n = 1};
    rc_http_answer ans;
    long status = rc_http_post(a->client, &body, &ans);
    if (status >= 200 && status < 300) {
        rc_counter_add(a->delivered, 1);
        return true;
    }
    rc_counter_add(a->failed, 1);
    if (status)
        rc_warn(a->id, "budget alert webhook answered %ld; retrying", status);
    else
        rc_warn(a->id, "budget alert webhook: %s; retrying", ans.error);
    return false;
}

static void *alerts_loop(void *arg)
{
    rc_api_alerts *a = arg;
    int64_t retry_ms = 0, next_try = 0;
    pthread_mutex_lock(&a->w.mu);
    while (!a->w.stopping) {
        pthread_mutex_unlock(&a->w.mu);
        uint64_t dropped = 0;
        rc_ledger_take_alerts(rc_ledger_shared(), take_one, a, &dropped);
        if (dropped) {
            rc_warn(a->id, "%llu budget alerts were dropped before they could be queued",
                    (unsigned long long)dropped);
            rc_counter_add(a->dropped, dropped);
        }
        while (a->head && rc_now_ms() >= next_try) {
            if (!post_front(a)) {
                retry_ms = retry_ms ? retry_ms * 2 : FIRST_RETRY_MS;
                if (retry_ms > MAX_RETRY_MS) retry_ms = MAX_RETRY_MS;
                next_try = rc_now_ms() + retry_ms;
                break;
            }
            drop_front(a);
            retry_ms = 0;
        }
        pthread_mutex_lock(&a->w.mu);
        if (!a->w.stopping) rc_worker_wait(&a->w, rc_now_ms() + ALERT_POLL_MS);
    }
    pthread_mutex_unlock(&a->w.mu);
    if (a->n_queued)
        rc_warn(a->id, "stopping with %zu budget alerts not delivered to the webhook", a->n_queued);
    while (a->head)
        drop_front(a);
    return NULL;
}

static void register_counters(rc_api_alerts *a)
{
    static const char *const kinds[2] = {"period", "total"};
    char labels[200];
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < a->n_thresholds; i++) {
            snprintf(labels, sizeof labels, "extension=\"%s\",budget=\"%s\",threshold=\"%g\"",
                     a->id, kinds[k], a->thresholds[i]);
            a->raised[k][i] =
                rc_counter_register("respan_budget_alerts",
                                    "Customers' usage crossing a fraction of a budget.", labels);
        }
    snprintf(labels, sizeof labels, "extension=\"%s\"", a->id);
    a->delivered = rc_counter_register("respan_budget_alerts_delivered",
                                       "Budget alerts the webhook accepted.", labels);
    a->failed = rc_counter_register("respan_budget_alert_posts_failed",
                                    "Budget alert POSTs that failed (each is retried).", labels);
    a->dropped = rc_counter_register("respan_budget_alerts_dropped",
                                     "Budget alerts dropped because too many waited.", labels);
}

rc_status rc_api_alerts_start(rc_api_alerts *a, rc_error *err)
{
    a->http = (rc_http_settings){
        .url = a->url, .content_type = "application/json", .timeout_ms = POST_TIMEOUT_MS};
    if (!(a->client = rc_http_client_new(&a->http, NULL, err))) return RC_EIO;
    register_counters(a);
    rc_ledger_set_alert_thresholds(rc_ledger_shared(), a->thresholds, a->n_thresholds);
    if (!rc_worker_start(&a->w, alerts_loop, a)) {
        rc_error_set(err, "%s: cannot start the alerts thread", a->id);
        rc_api_alerts_stop(a); /* the client and the thresholds */
        return RC_ENOMEM;
    }
    a->started = true;
    rc_info(a->id, "budget alerts at %zu threshold(s) POSTed to the webhook", a->n_thresholds);
    return RC_OK;
}

void rc_api_alerts_stop(rc_api_alerts *a)
{
    if (!a) return;
    if (a->started) rc_worker_stop(&a->w);
    a->started = false;
    rc_ledger_set_alert_thresholds(rc_ledger_shared(), NULL, 0);
    rc_http_client_free(a->client);
    a->client = NULL;
}
