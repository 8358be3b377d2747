/*
 * test_usage_exporter.c - the `usage` exporter (exporter/usage.c), end to
 * end in one process: a batch of spans (built as test_respan_log.c builds
 * them, with the attributes the customer and cost processors write) goes
 * through create/start/export_batch/shutdown into a temporary directory;
 * the store is then reopened and asked. Nothing here waits on a timer:
 * shutdown writes whatever is queued before it returns.
 */
#include "core/component.h"
#include "core/config.h"
#include "store/store.h"
#include "support.h"
#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const rc_exporter_factory rc_usage_exporter_factory;
static const rc_exporter_factory *const fac = &rc_usage_exporter_factory;

#define SEC_NS 1000000000ull
#define TRACE_A "0af7651916cd43dd8448eb211c80319c"

typedef struct span_spec {
    const char *name;
    bool error;
    const char *attrs[24];
    const char *event_name; /* one event, or NULL */
    const char *event_attrs[6];
} span_spec;

/* --- building spans ------------------------------------------------------------ */

static void add_event(rc_arena *a, otlp_span *s, const span_spec *sp)
{
    otlp_event *ev = rc_arena_alloc(a, sizeof *ev);
    opentelemetry__proto__trace__v1__span__event__init(ev);
    ev->name = rc_arena_strdup(a, sp->event_name);
    ev->attributes = test_kvs_of(a, sp->event_attrs, &ev->n_attributes);
    s->events = rc_arena_alloc(a, sizeof *s->events);
    s->events[0] = ev;
    s->n_events = 1;
}

static void fill_span(rc_arena *a, otlp_span *s, const span_spec *sp, size_t i, uint64_t t0)
{
    char id[17];
    snprintf(id, sizeof id, "%016zx", i + 0x1000);
    s->name = rc_arena_strdup(a, sp->name);
    test_set_hex(a, &s->trace_id, TRACE_A);
    test_set_hex(a, &s->span_id, id);
    s->start_time_unix_nano = t0;
    s->end_time_unix_nano = t0 + 2 * SEC_NS;
    s->attributes = test_kvs_of(a, sp->attrs, &s->n_attributes);
    if (sp->error) {
        otlp_status *st = rc_arena_alloc(a, sizeof *st);
        opentelemetry__proto__trace__v1__status__init(st);
        st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
        s->status = st;
    }
    if (sp->event_name) add_event(a, s, sp);
}

static rc_batch *batch_of(const span_spec *specs, size_t n, uint64_t t0)
{
    static const char *const resource[] = {"service.name=s:support-bot",
                                           "deployment.environment.name=s:prod", NULL};
    rc_request *r = rc_request_new(rc_arena_new(4096));
    otlp_resource *res = rc_arena_alloc(r->arena, sizeof *res);
    opentelemetry__proto__resource__v1__resource__init(res);
    res->attributes = test_kvs_of(r->arena, resource, &res->n_attributes);
    otlp_span **spans = test_request_one_scope(r, res, n);
    for (size_t i = 0; i < n; i++)
        fill_span(r->arena, spans[i], &specs[i], i, t0);
    return rc_batch_from_request(r);
}

/* Alice's call: 1.00 USD raw, 20% markup, as the cost processor writes it. */
static const span_spec spans[] = {
    {.name = "chat gpt-4o",
     .attrs = {"gen_ai.operation.name=s:chat", "gen_ai.provider.name=s:openai",
               "gen_ai.request.model=s:gpt-4o", "gen_ai.usage.input_tokens=i:100",
               "gen_ai.usage.output_tokens=i:10",
               "respan.customer_params.customer_identifier=s:alice",
               "respan.customer_params.markup_percentage=d:20", "respan.cost.raw=d:1.0",
               "respan.cost=d:1.2", "respan.metadata.user_tier=s:premium",
               "gen_ai.input.messages=s:[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
               "\"content\":\"hello\"}]}]",
               "respan.score.quality=d:4", "respan.score.accurate=b:true", NULL},
     .event_name = "gen_ai.evaluation.result",
     .event_attrs = {"gen_ai.evaluation.name=s:relevance", "gen_ai.evaluation.score.value=d:0.5",
                     NULL}},
    {.name = "chat gpt-4o-mini",
     .error = true,
     .attrs = {"gen_ai.operation.name=s:chat", "gen_ai.provider.name=s:openai",
               "gen_ai.request.model=s:gpt-4o-mini", "gen_ai.usage.input_tokens=i:50",
               "gen_ai.usage.output_tokens=i:5", "respan.customer_params.customer_identifier=s:bob",
               "respan.cost=d:0.5", "respan.metadata.user_tier=s:free", NULL},
     .event_name = "gen_ai.evaluation.result",
     .event_attrs = {"gen_ai.evaluation.name=s:accurate", "gen_ai.evaluation.score.label=s:false",
                     "gen_ai.evaluation.score.value=d:0", NULL}},
    {.name = "workflow", .attrs = {NULL}},
};
#define N_SPANS (sizeof spans / sizeof *spans)

/* --- running the exporter ---------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * SEC_NS + (uint64_t)ts.tv_nsec;
}

static void *create(const char *yaml, rc_cfg **root, rc_error *err)
{
    *root = NULL;
    if (rc_config_parse("usage.yaml", yaml, strlen(yaml), root, err) != RC_OK) return NULL;
    rc_component_id id = {.id = "usage", .type = "usage"};
    return fac->create(&id, rc_cfg_get(*root, "usage"), err);
}

/* Exports the spans through an exporter on `dir`; true when all went well. */
static bool export_into(const char *dir, bool store_content, uint64_t t0)
{
    char yaml[256];
    snprintf(yaml, sizeof yaml, "usage:\n  directory: %s\n  retention: 30d\n  store_content: %s\n",
             dir, store_content ? "true" : "false");
    rc_cfg *root;
    rc_error err = {{0}};
    void *x = create(yaml, &root, &err);
    CHECK(x != NULL);
    if (!x) {
        fprintf(stderr, "create: %s\n", err.msg);
        rc_config_free(root);
        return false;
    }
    bool ok = fac->start(x, &err) == RC_OK;
    if (ok) {
        rc_batch *b = batch_of(spans, N_SPANS, t0);
        ok = fac->export_batch(x, b, &err) == RC_OK;
        rc_batch_free(b);
        fac->shutdown(x);
    }
    if (!ok) fprintf(stderr, "usage exporter: %s\n", err.msg);
    fac->destroy(x);
    rc_config_free(root);
    return ok;
}

static rc_usage_store *reopen(const char *dir)
{
    rc_usage_store *s = NULL;
    rc_error err = {{0}};
    rc_usage_store_config cfg = {.directory = dir};
    if (rc_usage_sqlite_store.open(&cfg, &s, &err) != RC_OK) fprintf(stderr, "%s\n", err.msg);
    return s;
}

static void make_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/rc_usage_exporter_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

static const rc_usage_score_summary *score_of(const rc_usage_summary *s, const char *slug)
{
    for (size_t i = 0; i < s->n_scores; i++)
        if (strcmp(s->scores[i].slug, slug) == 0) return &s->scores[i];
    return NULL;
}

/* --- cases ----------------------------------------------------------------------------- */

static void test_batch_to_summary(void)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    uint64_t t0 = now_ns() - 60 * SEC_NS;
    CHECK(export_into(dir, false, t0));
    rc_usage_store *s = reopen(dir);
    CHECK(s != NULL);
    if (!s) return;
    int64_t t_us = (int64_t)(t0 / 1000);
    rc_usage_filter f = {.start_us = t_us - 3600000000ll, .end_us = t_us + 3600000000ll};
    rc_usage_summary sum;
    rc_error err = {{0}};
    CHECK(rc_usage_sqlite_store.query_summary(s, &f, &sum, &err) == RC_OK);
    CHECK(sum.number_of_requests == 3);     /* every span, as the respan exporter sends */
    CHECK(near(sum.total_cost, 1.2 + 0.5)); /* with alice's markup */
    CHECK(sum.total_tokens == 100 + 10 + 50 + 5);
    const rc_usage_score_summary *q = score_of(&sum, "quality"), *a = score_of(&sum, "accurate"),
                                 *r = score_of(&sum, "relevance");
    CHECK(q && !q->is_bool && near(q->avg_score, 4));
    CHECK(a && a->is_bool && a->true_count == 1 && a->false_count == 1);
    CHECK(r && !r->is_bool && near(r->avg_score, 0.5));
    rc_usage_summary_free(&sum);

    const char *alice[] = {"alice"}, *premium[] = {"premium"}, *err_code[] = {"500"};
    rc_usage_cond conds[][1] = {{{"customer_identifier", "", alice, 1}},
                                {{"metadata__user_tier", "", premium, 1}},
                                {{"status_code", "gte", err_code, 1}}};
    const double want_cost[] = {1.2, 1.2, 0.5};
    for (size_t i = 0; i < 3; i++) {
        f.conds = conds[i];
        f.n_conds = 1;
        CHECK(rc_usage_sqlite_store.query_summary(s, &f, &sum, &err) == RC_OK);
        CHECK(sum.number_of_requests == 1 && near(sum.total_cost, want_cost[i]));
        rc_usage_summary_free(&sum);
    }

    /* the row keeps the log's facts; no message bodies by default */
    f.n_conds = 1;
    f.conds = conds[0];
    rc_usage_page p = {.page = 1, .page_size = 10};
    rc_usage_list l;
    CHECK(rc_usage_sqlite_store.query_list(s, &f, &p, &l, &err) == RC_OK);
    CHECK(l.n_logs == 1);
    if (l.n_logs == 1) {
        const rc_usage_log *g = &l.logs[0];
        CHECK_STR(g->model, "gpt-4o");
        CHECK_STR(g->provider_id, "openai");
        CHECK_STR(g->environment, "prod");
        CHECK_STR(g->log_type, "chat");
        CHECK_STR(g->span_name, "chat gpt-4o");
        CHECK_STR(g->trace_unique_id, TRACE_A);
        CHECK(g->time_us == (int64_t)((t0 + 2 * SEC_NS) / 1000)); /* the span's end */
        CHECK(near(g->latency, 2.0) && g->status_code == 200 && !g->is_test);
        CHECK_CONTAINS(g->metadata, "\"user_tier\":\"premium\"");
        CHECK(g->input == NULL && g->output == NULL);
    }
    rc_usage_list_free(&l);
    rc_usage_sqlite_store.close(s);
    remove_dir(dir);
}

static void test_store_content(void)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    uint64_t t0 = now_ns() - 60 * SEC_NS;
    CHECK(export_into(dir, true, t0));
    rc_usage_store *s = reopen(dir);
    CHECK(s != NULL);
    if (!s) return;
    const char *alice[] = {"alice"};
    rc_usage_cond c = {"customer_identifier", "", alice, 1};
    int64_t t_us = (int64_t)(t0 / 1000);
    rc_usage_filter f = {
        .start_us = t_us - 3600000000ll, .end_us = t_us + 3600000000ll, .conds = &c, .n_conds = 1};
    rc_usage_page p = {.page = 1, .page_size = 10};
    rc_usage_list l;
    rc_error err = {{0}};
    CHECK(rc_usage_sqlite_store.query_list(s, &f, &p, &l, &err) == RC_OK);
    CHECK(l.n_logs == 1 && l.logs[0].input && strstr(l.logs[0].input, "hello"));
    rc_usage_list_free(&l);
    rc_usage_sqlite_store.close(s);
    remove_dir(dir);
}

/* Logs reach the store while the exporter runs, without a shutdown: the
 * writer flushes on its own clock. Read through a second handle (WAL lets
 * a reader in beside the writer). Polls for up to 10 s, far above the
 * 200 ms flush interval, so a slow machine does not fail it. */
static void test_flushes_while_running(void)
{
    char dir[64], yaml[160];
    make_dir(dir, sizeof dir);
    snprintf(yaml, sizeof yaml, "usage:\n  directory: %s\n", dir);
    rc_cfg *root;
    rc_error err = {{0}};
    void *x = create(yaml, &root, &err);
    CHECK(x && fac->start(x, &err) == RC_OK);
    uint64_t t0 = now_ns() - 60 * SEC_NS;
    rc_batch *b = batch_of(spans, N_SPANS, t0);
    CHECK(x && fac->export_batch(x, b, &err) == RC_OK);
    rc_batch_free(b);
    rc_usage_store *s = reopen(dir);
    int64_t t_us = (int64_t)(t0 / 1000);
    rc_usage_filter f = {.start_us = t_us - 3600000000ll, .end_us = t_us + 3600000000ll};
    uint64_t seen = 0;
    for (int i = 0; s && i < 200 && seen < 3; i++) {
        rc_usage_summary sum;
        if (rc_usage_sqlite_store.query_summary(s, &f, &sum, &err) == RC_OK)
            seen = sum.number_of_requests;
        rc_usage_summary_free(&sum);
        if (seen < 3) nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    CHECK(seen == 3);
    rc_usage_sqlite_store.close(s);
    if (x) {
        fac->shutdown(x);
        fac->destroy(x);
    }
    rc_config_free(root);
    remove_dir(dir);
}

static void expect_config_error(const char *yaml, const char *needle)
{
    rc_cfg *root;
    rc_error err = {{0}};
    void *x = create(yaml, &root, &err);
    CHECK(x == NULL);
    CHECK_CONTAINS(err.msg, needle);
    if (x) fac->destroy(x);
    rc_config_free(root);
}

static void test_config_errors(void)
{
    expect_config_error("usage:\n  retention: soon\n", "usage.yaml:2");
    expect_config_error("usage:\n  retention: soon\n", "retention");
    expect_config_error("usage:\n  store_content: maybe\n", "store_content");
    expect_config_error("usage:\n  directroy: ./x\n", "directroy");
    expect_config_error("usage:\n  directory: \"\"\n", "directory");
    /* the defaults: directory ./data, 30d, no content; created, not started */
    rc_cfg *root;
    rc_error err = {{0}};
    void *x = create("usage: {}\n", &root, &err);
    CHECK(x != NULL);
    if (x) fac->destroy(x);
    rc_config_free(root);
}

int main(void)
{
    RUN(test_batch_to_summary());
    RUN(test_store_content());
    RUN(test_flushes_while_running());
    RUN(test_config_errors());
    TEST_MAIN_END();
}
