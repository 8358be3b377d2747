/*
 * test_batch.c - the span-run model: building a batch from a request,
 * splitting it, moving runs, regrouping them into a view, cloning, and the
 * reference counting that frees a request (and its memory charge) exactly
 * when its last batch goes.
 */
#include "core/batch.h"
#include "core/memlimit.h"
#include "testing.h"

#include <stdlib.h>

/* A request with `n_rs` resources, each with two scopes of `per_scope` spans. */
static rc_request *make_request(size_t n_rs, size_t per_scope)
{
    rc_arena *a = rc_arena_new(4096);
    rc_request *r = rc_request_new(a);
    otlp_export_request *req = rc_arena_alloc(a, sizeof *req);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    req->n_resource_spans = n_rs;
    req->resource_spans = rc_arena_alloc(a, n_rs * sizeof(void *));
    for (size_t i = 0; i < n_rs; i++) {
        otlp_resource_spans *rs = rc_arena_alloc(a, sizeof *rs);
        opentelemetry__proto__trace__v1__resource_spans__init(rs);
        rs->n_scope_spans = 2;
        rs->scope_spans = rc_arena_alloc(a, 2 * sizeof(void *));
        for (size_t j = 0; j < 2; j++) {
            otlp_scope_spans *ss = rc_arena_alloc(a, sizeof *ss);
            opentelemetry__proto__trace__v1__scope_spans__init(ss);
            ss->n_spans = per_scope;
            ss->spans = rc_arena_alloc(a, per_scope * sizeof(void *));
            for (size_t k = 0; k < per_scope; k++) {
                otlp_span *s = rc_arena_alloc(a, sizeof *s);
                opentelemetry__proto__trace__v1__span__init(s);
                s->start_time_unix_nano = i * 1000 + j * 100 + k;
                ss->spans[k] = s;
            }
            rs->scope_spans[j] = ss;
        }
        req->resource_spans[i] = rs;
    }
    r->data = req;
    r->n_spans = n_rs * 2 * per_scope;
    return r;
}

static size_t view_spans(const otlp_export_request *v)
{
    return otlp_count_spans(v);
}

static void test_from_request_and_take(void)
{
    rc_batch *b = rc_batch_from_request(make_request(2, 5));
    CHECK(b->n_spans == 20);
    CHECK(b->n_runs == 4);

    rc_batch *head = rc_batch_take(b, 7); /* 5 from run 0, 2 split off run 1 */
    CHECK(head->n_spans == 7);
    CHECK(head->n_runs == 2);
    CHECK(b->n_spans == 13);
    CHECK(b->n_runs == 3);
    CHECK(b->runs[0].n_spans == 3);
    CHECK(b->runs[0].spans[0]->start_time_unix_nano == 102); /* scope 1 continues after the split */

    rc_batch *rest = rc_batch_take(b, 100);
    CHECK(rest->n_spans == 13 && b->n_spans == 0 && b->n_runs == 0);

    rc_batch_free(b);
    rc_batch_free(head);
    CHECK(rc_mem_in_use() > 0); /* rest still holds the request */
    rc_batch_free(rest);
    CHECK(rc_mem_in_use() == 0);
}

static void test_move_and_view(void)
{
    rc_batch *a = rc_batch_from_request(make_request(1, 3));
    rc_batch *b = rc_batch_from_request(make_request(2, 1));
    CHECK(rc_batch_move(a, b));
    CHECK(a->n_spans == 10 && b->n_spans == 0 && b->n_runs == 0);
    rc_batch_free(b);

    rc_arena *scratch = rc_arena_new_scratch(1024);
    otlp_export_request *v = rc_batch_view(a, scratch);
    CHECK(v != NULL);
    CHECK(v->n_resource_spans == 3); /* one from the first request, two from the second */
    CHECK(v->resource_spans[0]->n_scope_spans == 2);
    CHECK(view_spans(v) == 10);
    rc_arena_free(scratch);
    rc_batch_free(a);
    CHECK(rc_mem_in_use() == 0);
}

static void test_view_of_split_runs_regroups_by_resource(void)
{
    rc_batch *b = rc_batch_from_request(make_request(1, 4));
    rc_batch *head = rc_batch_take(b, 2);
    CHECK(rc_batch_move(head, b)); /* runs: [0:0-2] [0:2-4] [1:0-4], one resource */
    rc_arena *scratch = rc_arena_new_scratch(1024);
    otlp_export_request *v = rc_batch_view(head, scratch);
    CHECK(v->n_resource_spans == 1);
    CHECK(v->resource_spans[0]->n_scope_spans == 3);
    CHECK(view_spans(v) == 8);
    rc_arena_free(scratch);
    rc_batch_free(head);
    rc_batch_free(b);
    CHECK(rc_mem_in_use() == 0);
}

static void test_clone_is_independent(void)
{
    rc_request *r = make_request(1, 2);
    rc_header h = {"x-customer-id", "acme"};
    rc_request_meta meta = {.receiver = "otlp",
                            .transport = "http",
                            .peer = "127.0.0.1:1",
                            .n_headers = 1,
                            .headers = &h};
    CHECK(rc_request_set_meta(r, &meta));
    for (size_t j = 0; j < 2; j++)
        for (size_t k = 0; k < 2; k++) {
            otlp_span *s = r->data->resource_spans[0]->scope_spans[j]->spans[k];
            s->trace_id.len = 16;
            s->trace_id.data = rc_arena_calloc(r->arena, 16);
            s->span_id.len = 8;
            s->span_id.data = rc_arena_calloc(r->arena, 8);
            s->name = rc_arena_strdup(r->arena, "op");
        }
    rc_batch *b = rc_batch_from_request(r);
    rc_batch *c = rc_batch_clone(b);
    CHECK(c != NULL);
    CHECK(c && c->n_spans == 4);
    rc_batch_free(b); /* the clone must not depend on the original */
    CHECK(c && c->runs[0].owner != NULL);
    CHECK_STR(c ? rc_request_header(c->runs[0].owner, "X-Customer-Id") : NULL, "acme");
    CHECK_STR(c ? c->runs[0].spans[0]->name : NULL, "op");
    rc_batch_free(c);
    CHECK(rc_mem_in_use() == 0);
}

static void test_memory_limit_refuses_arena(void)
{
    rc_mem_set_limit(64 << 10);
    rc_arena *a = rc_arena_new(1024);
    CHECK(a != NULL);
    CHECK(rc_arena_alloc(a, 1 << 20) == NULL); /* past the limit */
    CHECK(rc_arena_exhausted(a));
    CHECK(!rc_arena_hit_max(a));
    rc_arena_set_max(a, 8 << 10);
    CHECK(rc_arena_alloc(a, 16 << 10) == NULL);
    CHECK(rc_arena_hit_max(a));
    rc_arena_free(a);
    CHECK(rc_mem_in_use() == 0);
    rc_mem_set_limit((size_t)512 << 20);
}

int main(void)
{
    RUN(test_from_request_and_take());
    RUN(test_move_and_view());
    RUN(test_view_of_split_runs_regroups_by_resource());
    RUN(test_clone_is_independent());
    RUN(test_memory_limit_refuses_arena());
    TEST_MAIN_END();
}
