/*
 * test_respan_response.c - how the respan exporter reads Respan's answers
 * (exporter/respan_response.h): a table of answers (status, Retry-After
 * value, body) with the delay, detail and action each must give, then the
 * Retry-After header lines and the per-item results of batch_create.
 * fuzz/fuzz_respan_response.c holds the same functions to their promises
 * for any bytes; the cases here pin down the meaning.
 */
#include "exporter/http_client.h"
#include "exporter/respan_response.h"
#include "testing.h"

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

typedef struct answer_case {
    long status;
    const char *retry_after; /* header value */
    const char *body;
    int64_t want_ms;
    const char *want_detail;
    rc_respan_action want_action;
} answer_case;

static const answer_case answers[] = {
    {200, "", "{\"status\":\"success\",\"count\":3}", -1, "{\"status\":\"success\",\"count\":3}",
     RC_RESPAN_DELIVERED},
    {429, "3", "{\"detail\":\"rate limited\",\"retry_after\":5}", 3000, "rate limited",
     RC_RESPAN_RATE_LIMITED},
    {429, "", "{\"detail\":\"rate limited\",\"retry_after\":1.5}", 1500, "rate limited",
     RC_RESPAN_RATE_LIMITED},
    {429, "Thu, 01 Jan 2026 00:00:30 GMT", "", 30000, "HTTP 429 with an empty body",
     RC_RESPAN_RATE_LIMITED},
    {429, "Wed, 31 Dec 2025 00:00:00 GMT", "", 0, "HTTP 429 with an empty body",
     RC_RESPAN_RATE_LIMITED},
    /* a date as far as the longest number, or further: none, as for numbers */
    {429, "Fri, 02 Jan 2026 00:00:00 GMT", "", -1, "HTTP 429 with an empty body",
     RC_RESPAN_RATE_LIMITED},
    {429, "Fri, 01 Jan 2100 00:00:00 GMT", "{\"retry_after\":2}", 2000, "{\"retry_after\":2}",
     RC_RESPAN_RATE_LIMITED},
    {429, "90000", "", -1, "HTTP 429 with an empty body", RC_RESPAN_RATE_LIMITED},
    /* a delay that does not fit an int64_t of ms, or is days long: none */
    {429, "", "{\"retry_after\":1e300}", -1, "{\"retry_after\":1e300}", RC_RESPAN_RATE_LIMITED},
    {429, "", "{\"retry_after\":9223372036854775807}", -1, "{\"retry_after\":9223372036854775807}",
     RC_RESPAN_RATE_LIMITED},
    {429, "", "{\"retry_after\":100000}", -1, "{\"retry_after\":100000}", RC_RESPAN_RATE_LIMITED},
    {429, "", "{\"retry_after\":-1}", -1, "{\"retry_after\":-1}", RC_RESPAN_RATE_LIMITED},
    {503, "10", "{\"detail\":\"service unavailable\"}", 10000, "service unavailable",
     RC_RESPAN_RETRY},
    {401, "", "{\"detail\":\"Invalid API key\"}", -1, "Invalid API key", RC_RESPAN_REFUSED},
    {422, "", "{\"detail\":[{\"loc\":[\"body\"],\"msg\":\"field required\"}]}", -1,
     "[{\"loc\":[\"body\"],\"msg\":\"field required\"}]", RC_RESPAN_BISECT},
    {413, "", "<h1>413</h1>\r\n", -1, "<h1>413</h1>  ", RC_RESPAN_BISECT},
    {408, "", "", -1, "HTTP 408 with an empty body", RC_RESPAN_RETRY},
    {404, "", "", -1, "HTTP 404 with an empty body", RC_RESPAN_REFUSED},
    {0, "", "", -1, "HTTP 0 with an empty body", RC_RESPAN_RETRY},
    /* one log line: control characters become spaces, escaped or raw */
    {500, "", "{\"detail\":\"a\\nb\\u001b[2Jc\\u00e9\\u007f\"}", -1, "a b [2Jc\xc3\xa9 ",
     RC_RESPAN_RETRY},
    {500, "", "{\"detail\":{\"why\":\"x\\ty\"}}", -1, "{\"why\":\"x\\ty\"}", RC_RESPAN_RETRY},
    {502, "", "bad\tgateway\x7f", -1, "bad gateway ", RC_RESPAN_RETRY},
};

static void test_answers(void)
{
    for (size_t i = 0; i < sizeof answers / sizeof *answers; i++) {
        const answer_case *c = &answers[i];
        rc_respan_answer a;
        rc_respan_read_answer(&a, c->status, c->retry_after, c->body, strlen(c->body), NOW);
        if (a.retry_after_ms != c->want_ms)
            fprintf(stderr, "answer %zu: %lld ms\n", i, (long long)a.retry_after_ms);
        CHECK(a.status == c->status);
        CHECK(a.retry_after_ms == c->want_ms);
        CHECK_STR(a.detail, c->want_detail);
        CHECK(rc_respan_action_of(c->status) == c->want_action);
        CHECK(rc_respan_asked_wait_ms(&a) ==
              (c->status == 429 || c->status == 503 ? c->want_ms : -1));
    }
}

/* Header lines as libcurl hands them to the header callback. */
static void test_header_lines(void)
{
    static const struct {
        const char *line;
        bool is_retry_after;
        const char *want;
    } lines[] = {
        {"Retry-After: 5\r\n", true, "5"},
        {"retry-after:\t 0.25 \r\n", true, "0.25"},
        {"RETRY-AFTER: 7\t\r\n", true, "7"}, /* a tab before the line break */
        {"Retry-After: Thu, 01 Jan 2026 00:00:30 GMT\r\n", true, "Thu, 01 Jan 2026 00:00:30 GMT"},
        {"Retry-After:\r\n", true, ""},
        {"Retry-After-Ms: 5\r\n", false, ""},
        {"Content-Type: application/json\r\n", false, ""},
        {"\r\n", false, ""},
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        char out[RC_HTTP_RETRY_AFTER_MAX] = "";
        CHECK(rc_http_retry_after_header(lines[i].line, strlen(lines[i].line), out, sizeof out) ==
              lines[i].is_retry_after);
        CHECK_STR(out, lines[i].want);
    }
    /* A NUL byte ends the value, and what comes before it is trimmed. */
    static const char with_nul[] = "Retry-After: 9 \0junk\r\n";
    char out[RC_HTTP_RETRY_AFTER_MAX] = "";
    CHECK(rc_http_retry_after_header(with_nul, sizeof with_nul - 1, out, sizeof out));
    CHECK_STR(out, "9");
    CHECK(rc_http_retry_after_ms(out, NOW) == 9000);
}

/* batch_create's results: positional, only "status" other than "success"
 * fails, never past the batch, details cleaned like the answer's. */
static void test_items(void)
{
    static const struct {
        const char *body;
        size_t n_logs;
        const char *want; /* "index:detail;" per failed item */
    } cases[] = {
        {"{\"results\":[{\"status\":\"success\"},{\"status\":\"error\",\"detail\":\"bad\"},"
         "{\"status\":\"success\"},{\"status\":\"error\"}]}",
         4, "1:bad;3:item failed;"},
        {"{\"results\":[{\"status\":\"error\"},{\"status\":\"error\"}]}", 1, "0:item failed;"},
        {"{\"results\":[{\"status\":\"error\",\"detail\":\"a\\r\\nb\"}]}", 3, "0:a  b;"},
        {"{\"results\":[1,null,{\"status\":7},{\"status\":\"\"}]}", 4, "3:item failed;"},
        {"{\"results\":{\"status\":\"error\"}}", 2, ""},
        {"[{\"status\":\"error\"}]", 2, ""},
        {"not json", 2, ""},
        {"", 2, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char got[256] = "";
        size_t used = 0, index;
        const char *detail;
        rc_respan_items it;
        rc_respan_items_open(&it, cases[i].body, strlen(cases[i].body), cases[i].n_logs);
        while (rc_respan_items_next_failed(&it, &index, &detail))
            used += (size_t)snprintf(got + used, sizeof got - used, "%zu:%s;", index, detail);
        rc_respan_items_close(&it);
        CHECK_STR(got, cases[i].want);
    }
}

int main(void)
{
    RUN(test_items());
    RUN(test_answers());
    RUN(test_header_lines());
    TEST_MAIN_END();
}
