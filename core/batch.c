/*
 * batch.c - requests and batches (see batch.h for the model).
 *
 * Invariant: a batch holds exactly one reference on the owner of each of its
 * runs, so rc_batch_free releases every request it kept alive, and a request
 * whose spans were split across several batches stays alive until the last
 * of them is freed. n_spans always equals the sum of the runs' n_spans.
 */
#include "core/batch.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

rc_request *rc_request_new(rc_arena *arena)
{
    rc_request *r = rc_arena_calloc(arena, sizeof *r);
    if (!r) {
        rc_arena_free(arena);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->arena = arena;
    r->meta.receiver = r->meta.transport = r->meta.peer = "";
    return r;
}

void rc_request_ref(rc_request *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void rc_request_unref(rc_request *r)
{
    if (!r) return;
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        rc_arena_free(r->arena); /* the request itself lives in its arena */
}

const char *rc_request_header(const rc_request *r, const char *name)
{
    for (size_t i = 0; i < r->meta.n_headers; i++)
        if (strcasecmp(r->meta.headers[i].name, name) == 0) return r->meta.headers[i].value;
    return NULL;
}

static const char *copy_str(rc_arena *a, const char *s)
{
    return rc_arena_strdup(a, s ? s : "");
}

bool rc_request_set_meta(rc_request *r, const rc_request_meta *meta)
{
    rc_arena *a = r->arena;
    rc_request_meta m = {0};
    m.receiver = copy_str(a, meta->receiver);
    m.transport = copy_str(a, meta->transport);
    m.peer = copy_str(a, meta->peer);
    if (!m.receiver || !m.transport || !m.peer) return false;
    const char *optional[3] = {meta->tenant, meta->tenant_customer, meta->tenant_environment};
    const char **copies[3] = {&m.tenant, &m.tenant_customer, &m.tenant_environment};
    for (int i = 0; i < 3; i++)
        if (optional[i] && !(*copies[i] = copy_str(a, optional[i]))) return false;
    if (meta->n_headers) {
        m.headers = rc_arena_alloc(a, meta->n_headers * sizeof *m.headers);
        if (!m.headers) return false;
        for (size_t i = 0; i < meta->n_headers; i++) {
            m.headers[i].name = copy_str(a, meta->headers[i].name);
            m.headers[i].value = copy_str(a, meta->headers[i].value);
            if (!m.headers[i].name || !m.headers[i].value) return false;
        }
        m.n_headers = meta->n_headers;
    }
    r->meta = m;
    return true;
}

void rc_batch_forget_wire(rc_batch *b)
{
    for (size_t i = 0; i < b->n_runs; i++)
        b->runs[i].owner->wire = NULL;
}

rc_batch *rc_batch_new(void)
{
    return calloc(1, sizeof(rc_batch));
}

void rc_batch_free(rc_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n_runs; i++)
        rc_request_unref(b->runs[i].owner);
    free(b->runs);
    free(b);
}

static bool reserve_runs(rc_batch *b, size_t extra)
{
    if (b->cap_runs - b->n_runs >= extra) return true;
    size_t cap = b->cap_runs ? b->cap_runs * 2 : 8;
    while (cap - b->n_runs < extra)
        cap *= 2;
    rc_span_run *runs = realloc(b->runs, cap * sizeof *runs);
    if (!runs) return false;
    b->runs = runs;
    b->cap_runs = cap;
    return true;
}

/* Appends without taking a reference: the caller hands one over. */
static bool push_run(rc_batch *b, const rc_span_run *run)
{
    if (!reserve_runs(b, 1)) return false;
    b->runs[b->n_runs++] = *run;
    b->n_spans += run->n_spans;
    return true;
}

bool rc_batch_append(rc_batch *b, const rc_span_run *run)
{
    if (!push_run(b, run)) return false;
    rc_request_ref(run->owner);
    return true;
}

rc_batch *rc_batch_from_request(rc_request *req)
{
    rc_batch *b = rc_batch_new();
    if (!b) goto fail;
    const otlp_export_request *data = req->data;
    for (size_t i = 0; data && i < data->n_resource_spans; i++) {
        otlp_resource_spans *rs = data->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            otlp_scope_spans *ss = rs->scope_spans[j];
            if (ss->n_spans == 0) continue;
            rc_span_run run = {req, rs, ss, ss->spans, ss->n_spans};
            if (!rc_batch_append(b, &run)) goto fail;
        }
    }
    rc_request_unref(req); /* every run now holds its own reference */
    return b;
fail:
    rc_batch_free(b);
    rc_request_unref(req);
    return NULL;
}

bool rc_batch_move(rc_batch *dst, rc_batch *src)
{
    if (!reserve_runs(dst, src->n_runs)) return false;
    memcpy(dst->runs + dst->n_runs, src->runs, src->n_runs * sizeof *src->runs);
    dst->n_runs += src->n_runs;
    dst->n_spans += src->n_spans;
    src->n_runs = 0;
    src->n_spans = 0;
    return true;
}

rc_batch *rc_batch_take(rc_batch *b, size_t max_spans)
{
    rc_batch *out = rc_batch_new();
    if (!out) return NULL;
    size_t i = 0;
    while (i < b->n_runs && out->n_spans < max_spans) {
        rc_span_run *run = &b->runs[i];
        size_t room = max_spans - out->n_spans;
        if (run->n_spans <= room) {
            if (!push_run(out, run)) goto fail;
            i++;
            continue;
        }
        /* Split the run: the head goes out, the tail stays, both own a ref. */
        rc_span_run head = *run;
        head.n_spans = room;
        if (!rc_batch_append(out, &head)) goto fail;
        run->spans += room;
        run->n_spans -= room;
        break;
    }
    memmove(b->runs, b->runs + i, (b->n_runs - i) * sizeof *b->runs);
    b->n_runs -= i;
    b->n_spans -= out->n_spans;
    return out;
fail:
    /* Whole runs were pushed without a reference and are still b's (b has
     * not been compacted yet); a failed split pushed nothing. */
    out->n_runs = 0;
    rc_batch_free(out);
    return NULL;
}

otlp_export_request *rc_batch_view(const rc_batch *b, rc_arena *scratch)
{
    otlp_export_request *req = rc_arena_alloc(scratch, sizeof *req);
    if (!req) return NULL;
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    if (b->n_runs == 0) return req;

    /* At most one ResourceSpans and one ScopeSpans per run. */
    req->resource_spans = rc_arena_alloc(scratch, b->n_runs * sizeof *req->resource_spans);
    if (!req->resource_spans) return NULL;
    otlp_resource_spans *cur_rs = NULL;
    const otlp_resource_spans *src_rs = NULL;
    for (size_t i = 0; i < b->n_runs; i++) {
        const rc_span_run *run = &b->runs[i];
        if (run->rs != src_rs) {
            cur_rs = rc_arena_alloc(scratch, sizeof *cur_rs);
            if (!cur_rs) return NULL;
            *cur_rs = *run->rs;
            cur_rs->n_scope_spans = 0;
            cur_rs->scope_spans = rc_arena_alloc(scratch, (b->n_runs - i) * sizeof(void *));
            if (!cur_rs->scope_spans) return NULL;
            req->resource_spans[req->n_resource_spans++] = cur_rs;
            src_rs = run->rs;
        }
        otlp_scope_spans *ss = rc_arena_alloc(scratch, sizeof *ss);
        if (!ss) return NULL;
        *ss = *run->ss;
        ss->spans = run->spans;
        ss->n_spans = run->n_spans;
        cur_rs->scope_spans[cur_rs->n_scope_spans++] = ss;
    }
    return req;
}

/* Stable partition of run->spans: unmarked first, then marked. Returns
 * how many are unmarked. `tmp` has room for the run's marked spans. */
static size_t partition_run(rc_span_run *run, const uint8_t *marks, otlp_span **tmp)
{
    size_t kept = 0, moved = 0;
    for (size_t i = 0; i < run->n_spans; i++) {
        if (marks[i])
            tmp[moved++] = run->spans[i];
        else
            run->spans[kept++] = run->spans[i];
    }
    memcpy(run->spans + kept, tmp, moved * sizeof *tmp);
    return kept;
}

rc_batch *rc_batch_split(rc_batch *b, const uint8_t *marks)
{
    rc_batch *out = rc_batch_new();
    size_t longest = 0;
    for (size_t r = 0; r < b->n_runs; r++)
        if (b->runs[r].n_spans > longest) longest = b->runs[r].n_spans;
    otlp_span **tmp = malloc((longest ? longest : 1) * sizeof *tmp);
    if (!out || !tmp || !reserve_runs(out, b->n_runs)) {
        free(tmp);
        rc_batch_free(out);
        return NULL;
    }
    size_t kept_runs = 0;
    for (size_t r = 0; r < b->n_runs; r++) {
        rc_span_run run = b->runs[r];
        size_t kept = partition_run(&run, marks, tmp);
        marks += run.n_spans;
        if (kept < run.n_spans) {
            rc_span_run tail = {run.owner, run.rs, run.ss, run.spans + kept, run.n_spans - kept};
            push_run(out, &tail);                /* room reserved; takes the run's reference... */
            if (kept) rc_request_ref(run.owner); /* ...and the head keeps one of its own */
        }
        if (kept) {
            run.n_spans = kept;
            b->runs[kept_runs++] = run;
        }
    }
    b->n_runs = kept_runs;
    b->n_spans -= out->n_spans;
    free(tmp);
    return out;
}

rc_batch *rc_batch_clone(const rc_batch *b)
{
    rc_arena *scratch = rc_arena_new(4096);
    if (!scratch) return NULL;
    rc_buf wire = RC_BUF_INIT;
    rc_batch *out = NULL;
    otlp_export_request *view = rc_batch_view(b, scratch);
    if (!view) goto done;
    otlp_proto_encode(view, &wire);
    if (wire.failed) goto done;

    rc_arena *arena = rc_arena_new(wire.len * 2 + 1024);
    if (!arena) goto done;
    rc_request *req = rc_request_new(arena);
    if (!req) goto done;
    rc_error err;
    if (otlp_proto_decode((const uint8_t *)wire.data, wire.len, arena, &req->data, &err) != RC_OK) {
        rc_request_unref(req);
        goto done;
    }
    /* The metadata of the first request stands for the clone's; a batch
     * that mixes requests has already been through metadata-aware stages. */
    if (b->n_runs && !rc_request_set_meta(req, &b->runs[0].owner->meta)) {
        rc_request_unref(req);
        goto done;
    }
    req->n_spans = b->n_spans;
    out = rc_batch_from_request(req);
done:
    rc_buf_free(&wire);
    rc_arena_free(scratch);
    return out;
}
