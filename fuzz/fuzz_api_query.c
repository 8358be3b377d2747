/*
 * fuzz_api_query.c - libFuzzer target for the body of a respan_api summary
 * or list request, from the JSON the client sends to the SQL the store
 * runs (extension/respan_api_query.c, store/filter.c, store/sqlite.c).
 *
 * The body is the API's most structured untrusted input: filters name
 * fields and operators and carry values that become query parameters. The
 * target parses it as the extension does, and when it is accepted runs the
 * summary or the list against a small SQLite store made once per process,
 * so the WHERE builder, the bound parameters and SQLite itself see every
 * accepted shape.
 *
 * Input layout:
 *   byte 0     bit 0: the list endpoint (page, page_size, sort_by) rather
 *              than the summary; bit 1: the rest starts with a query
 *              string up to the first newline (the URL filters:
 *              customer_identifier, start_time, environment, all_envs,
 *              metadata__*, page, page_size, ...), split at '&' and '='
 *              as the server's URL decoding would hand it over
 *   the rest   the request body
 * Checked: a refusal is 400 or 422 with a message (and a location for
 * 422); an accepted request is answered by the store, or refused by it as
 * bad input (RC_EINVAL, an unknown sort_by) with a message, never another
 * failure; a list page holds at most page_size logs and the count is at
 * least what it holds. No leak or memory error (ASan).
 * Seeds: fuzz/corpus/api_query/.
 */
#include "core/admin_http.h"
#include "extension/respan_api.h"
#include "fuzz/roundtrip.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW_US 1800000000000000ll /* a fixed "now": the default window ends here */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const rc_usage_store_ops *ops = &rc_usage_sqlite_store;
static rc_usage_store *store;

/* A store in a fresh directory with a few logs inside the default window. */
static void open_store(void)
{
    static char dir[] = "/tmp/rc_fuzz_api_XXXXXX";
    if (!mkdtemp(dir)) fuzz_fail("mkdtemp: cannot make the store's directory");
    rc_usage_store_config cfg = {.directory = dir};
    rc_error err = {{0}};
    if (ops->open(&cfg, &store, &err) != RC_OK) fuzz_fail("opening the store: %s", err.msg);
    static const rc_usage_score scores[] = {{"quality", false, 4.0}, {"accurate", true, 1}};
    rc_usage_row rows[3] = {
        {.time_us = NOW_US - 60000000,
         .customer_identifier = "alice",
         .model = "gpt-4o",
         .environment = "prod",
         .log_type = "chat",
         .llm_call = true,
         .prompt_tokens = 10,
         .completion_tokens = 5,
         .cost = 0.5,
         .latency = 1.0,
         .metadata = "{\"tier\":\"pro\"}",
         .scores = scores,
         .n_scores = 2},
        {.time_us = NOW_US - 120000000,
         .customer_identifier = "bob",
         .model = "claude",
         .log_type = "chat",
         .llm_call = true,
         .cost = 0.25},
        {.time_us = NOW_US - 180000000, .environment = "test", .is_test = true, .log_type = "task"},
    };
    if (ops->write_batch(store, rows, 3, &err) != RC_OK) fuzz_fail("writing: %s", err.msg);
}

static void check_refusal(const rc_api_fault *f, const rc_error *err)
{
    if (f->status && f->status != 400 && f->status != 422)
        fuzz_fail("a refused request got status %u", f->status);
    if (!err->msg[0]) fuzz_fail("a refused request has no message");
    if (f->status == 422 && !f->loc[0]) fuzz_fail("a 422 names no location");
}

static void run_query(const rc_api_query *q, bool list)
{
    rc_error err = {{0}};
    rc_status st;
    if (list) {
        rc_usage_list l = {0};
        st = ops->query_list(store, &q->filter, &q->page, &l, &err);
        if (st == RC_OK) {
            uint64_t size = q->page.page_size ? q->page.page_size : 100;
            if (l.n_logs > size)
                fuzz_fail("a page of %zu logs over page_size %llu", l.n_logs,
                          (unsigned long long)size);
            if (l.count < l.n_logs)
                fuzz_fail("count %llu under the page's %zu logs", (unsigned long long)l.count,
                          l.n_logs);
        }
        rc_usage_list_free(&l);
    } else {
        rc_usage_summary s = {0};
        st = ops->query_summary(store, &q->filter, &s, &err);
        rc_usage_summary_free(&s);
    }
    if (st != RC_OK && st != RC_EINVAL)
        fuzz_fail("the store failed on an accepted query: %s", err.msg);
    if (st == RC_EINVAL && !err.msg[0]) fuzz_fail("the store refused a query without a message");
}

#define MAX_ARGS 32

/* Splits "k=v&k2&..." in place into key/value pairs; returns how many. */
static size_t split_query(char *q, const char **args)
{
    size_t n = 0;
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv && n < MAX_ARGS;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) *eq = 0;
        args[2 * n] = kv;
        args[2 * n + 1] = eq ? eq + 1 : "";
        n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!store) open_store();
    bool list = data[0] & 1;
    char *text = malloc(size); /* query, body and their NULs */
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char *body = text;
    size_t body_len = size - 1;
    const char *args[2 * MAX_ARGS];
    size_t n_args = 0;
    if (data[0] & 2) {
        char *nl = memchr(text, '\n', size - 1);
        if (nl) {
            *nl = 0;
            body = nl + 1;
            body_len = (size_t)(text + size - 1 - body);
        } else {
            body = text + size - 1;
            body_len = 0;
        }
        n_args = split_query(text, args);
    }
    rc_admin_request req = {.method = "POST",
                            .path = list ? "/api/request-logs/list/" : "/api/request-logs/summary/",
                            .body = body,
                            .body_len = body_len,
                            .conn = NULL,
                            .args = args,
                            .n_args = n_args};
    rc_api_query q;
    rc_api_fault fault;
    rc_error err = {{0}};
    if (rc_api_query_parse(&req, list, NOW_US, &q, &fault, &err) == RC_OK)
        run_query(&q, list);
    else
        check_refusal(&fault, &err);
    rc_api_query_free(&q);
    free(text);
    return 0;
}
