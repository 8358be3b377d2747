/*
 * test_batch_processor.c - the `batch` processor, driven through its
 * factory exactly as the service drives it: config parsing and its errors,
 * the size trigger, the timeout, splitting at send_batch_max_size, and the
 * flush of everything pending on shutdown. Batches land in a recording
 * consumer; waits are bounded polls, not timing assertions.
 */
#include "core/component.h"
#include "core/memlimit.h"
#include "support.h"
#include "testing.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct recorder {
    pthread_mutex_t mu;
    size_t sizes[64];
    size_t n_batches;
    size_t n_spans;
} recorder;

static rc_status record(void *self, rc_batch *b, rc_error *err)
{
    recorder *r = self;
    pthread_mutex_lock(&r->mu);
    if (r->n_batches < 64) r->sizes[r->n_batches] = b->n_spans;
    r->n_batches++;
    r->n_spans += b->n_spans;
    pthread_mutex_unlock(&r->mu);
    rc_batch_free(b);
    return RC_OK;
}

static size_t spans_seen(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_spans;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Polls for up to 5 s; the processor's own timing is not asserted. */
static bool wait_for_spans(recorder *r, size_t want)
{
    for (int i = 0; i < 500; i++) {
        if (spans_seen(r) >= want) return true;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return false;
}

static rc_batch *batch_of(size_t n)
{
    rc_request *r = rc_request_new(rc_arena_new(4096));
    test_request_one_scope(r, NULL, n);
    return rc_batch_from_request(r);
}

typedef struct harness {
    rc_cfg *root;
    const rc_processor_factory *f;
    void *inst;
    recorder rec;
    rc_consumer next;
} harness;

static bool start(harness *h, const char *yaml)
{
    rc_error err = {{0}};
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->rec.mu, NULL);
    h->next = (rc_consumer){record, &h->rec, false};
    h->f = rc_find_processor("batch");
    if (!h->f || rc_config_parse("test.yaml", yaml, strlen(yaml), &h->root, &err) != RC_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return false;
    }
    rc_component_id id = {"batch", "batch", NULL};
    h->inst = h->f->create(&id, rc_cfg_get(h->root, "batch"), &err);
    if (!h->inst || h->f->start(h->inst, &h->next, &err) != RC_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return false;
    }
    return true;
}

static void stop(harness *h)
{
    if (h->inst) {
        h->f->shutdown(h->inst);
        h->f->destroy(h->inst);
    }
    rc_config_free(h->root);
    pthread_mutex_destroy(&h->rec.mu);
}

static rc_status push(harness *h, size_t n)
{
    rc_error err = {{0}};
    return h->f->consume(h->inst, batch_of(n), &err);
}

static void test_size_trigger_sends_without_waiting_for_the_timeout(void)
{
    harness h;
    CHECK(start(&h, "batch: { send_batch_size: 100, timeout: 1h }"));
    CHECK(push(&h, 60) == RC_OK);
    CHECK(push(&h, 60) == RC_OK); /* 120 >= 100: due now, not in an hour */
    CHECK(wait_for_spans(&h.rec, 120));
    CHECK(h.rec.n_batches == 1 && h.rec.sizes[0] == 120);
    stop(&h);
}

static void test_timeout_sends_a_small_batch(void)
{
    harness h;
    CHECK(start(&h, "batch: { send_batch_size: 1000, timeout: 50ms }"));
    CHECK(push(&h, 3) == RC_OK);
    CHECK(wait_for_spans(&h.rec, 3));
    CHECK(h.rec.n_batches == 1 && h.rec.sizes[0] == 3);
    stop(&h);
}

static void test_max_size_splits(void)
{
    harness h;
    CHECK(start(&h, "batch: { send_batch_size: 10, send_batch_max_size: 10, timeout: 1h }"));
    CHECK(push(&h, 25) == RC_OK);
    CHECK(wait_for_spans(&h.rec, 20));
    stop(&h); /* the last 5 are flushed on shutdown */
    CHECK(h.rec.n_spans == 25);
    bool within = true;
    for (size_t i = 0; i < h.rec.n_batches && i < 64; i++)
        within &= h.rec.sizes[i] <= 10;
    CHECK(within);
    CHECK(h.rec.n_batches == 3);
}

static void test_shutdown_flushes_everything_pending(void)
{
    harness h;
    CHECK(start(&h, "batch: { send_batch_size: 100000, timeout: 1h }"));
    for (int i = 0; i < 10; i++)
        CHECK(push(&h, 7) == RC_OK);
    CHECK(spans_seen(&h.rec) == 0); /* neither trigger has fired */
    h.f->shutdown(h.inst);
    CHECK(h.rec.n_spans == 70);
    h.f->destroy(h.inst);
    h.inst = NULL;
    stop(&h);
    CHECK(rc_mem_in_use() == 0); /* every request was released */
}

/* replay's end of input: flush sends what is pending long before the
 * timeout and returns only once the next stage has it; the processor goes
 * on working afterwards. */
static void test_flush_sends_pending_now(void)
{
    harness h;
    CHECK(start(&h, "batch: { send_batch_size: 100000, timeout: 1h }"));
    CHECK(push(&h, 5) == RC_OK);
    CHECK(push(&h, 6) == RC_OK);
    CHECK(spans_seen(&h.rec) == 0);
    h.f->flush(h.inst, 10000);
    CHECK(spans_seen(&h.rec) == 11); /* no wait: flush returned after the send */
    CHECK(push(&h, 4) == RC_OK);
    h.f->flush(h.inst, 10000);
    CHECK(spans_seen(&h.rec) == 15);
    h.f->flush(h.inst, 10000); /* nothing pending: returns at once */
    CHECK(h.rec.n_batches == 2);
    stop(&h);
}

static void expect_config_error(const char *yaml, const char *needle)
{
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(rc_config_parse("cfg.yaml", yaml, strlen(yaml), &root, &err) == RC_OK);
    rc_component_id id = {"batch", "batch", NULL};
    void *inst = rc_find_processor("batch")->create(&id, rc_cfg_get(root, "batch"), &err);
    CHECK(inst == NULL);
    CHECK_CONTAINS(err.msg, needle);
    CHECK_CONTAINS(err.msg, "cfg.yaml:1:");
    rc_config_free(root);
}

static void test_config_errors_name_file_line_and_key(void)
{
    expect_config_error("batch: { send_batch_size: abc }", "send_batch_size");
    expect_config_error("batch: { timeout: soon }", "timeout");
    expect_config_error("batch: { send_batch_size: 100, send_batch_max_size: 10 }",
                        "send_batch_max_size");
    expect_config_error("batch: { send_batch_sise: 100 }", "send_batch_sise");
}

int main(void)
{
    RUN(test_size_trigger_sends_without_waiting_for_the_timeout());
    RUN(test_timeout_sends_a_small_batch());
    RUN(test_max_size_splits());
    RUN(test_shutdown_flushes_everything_pending());
    RUN(test_flush_sends_pending_now());
    RUN(test_config_errors_name_file_line_and_key());
    TEST_MAIN_END();
}
