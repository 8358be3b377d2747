/*
 * test_usage_store.c - the usage store (store/store.h) on its SQLite
 * backend: rows written, then read back through the summary with every
 * operator, metadata filters, time windows and the environment rules;
 * scores aggregated; SQL-shaped values inert; expiry; a reopened store
 * keeping its data; the list and users reads.
 *
 * The data set is a table of six rows (`rows` below) whose expected sums
 * each case states; every store lives in a fresh temporary directory.
 */
#include "store/store.h"
#include "testing.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T 1800000000000000ll /* microseconds */
#define SEC 1000000ll
#define INJECTED "O'Brien\"; DROP TABLE request_logs; --"

static const rc_usage_store_ops *const ops = &rc_usage_sqlite_store;

static const rc_usage_score scores1[] = {{"quality", false, 4}, {"accurate", true, 1}};
static const rc_usage_score scores2[] = {{"quality", false, 2}, {"accurate", true, 0}};
static const rc_usage_score scores3[] = {{"accurate", true, 1}};
static const rc_usage_score scores5[] = {{"quality", false, 10}};

/* prod, unknown env, staging, test, old (out of the window), prod */
static const rc_usage_row rows[] = {
    {.time_us = T,
     .customer_identifier = "alice",
     .model = "gpt-4o",
     .provider_id = "openai",
     .log_type = "chat",
     .llm_call = true,
     .environment = "prod",
     .prompt_tokens = 100,
     .completion_tokens = 10,
     .cost = 1.0,
     .latency = 1.5,
     .time_to_first_token = 0.25,
     .status_code = 200,
     .status = "success",
     .metadata = "{\"user_tier\":\"premium\",\"department\":\"sales\"}",
     .scores = scores1,
     .n_scores = 2,
     .trace_unique_id = "0af7651916cd43dd8448eb211c80319c",
     .span_unique_id = "00000000000a0001",
     .span_name = "chat gpt-4o"},
    {.time_us = T + 60 * SEC,
     .customer_identifier = "alice",
     .model = "gpt-4o-mini",
     .provider_id = "openai",
     .log_type = "chat",
     .llm_call = true,
     .prompt_tokens = 50,
     .completion_tokens = 5,
     .cost = 0.5,
     .latency = 0.5,
     .time_to_first_token = NAN,
     .status_code = 500,
     .status = "error",
     .metadata = "{\"user_tier\":\"free\"}",
     .scores = scores2,
     .n_scores = 2,
     .span_name = "chat gpt-4o-mini"},
    {.time_us = T + 120 * SEC,
     .customer_identifier = "bob",
     .model = "claude-3-5-sonnet",
     .provider_id = "anthropic",
     .log_type = "chat",
     .llm_call = true,
     .environment = "staging",
     .prompt_tokens = 200,
     .completion_tokens = 20,
     .cost = 2.0,
     .latency = 3.0,
     .time_to_first_token = NAN,
     .status_code = 200,
     .status = "success",
     .metadata = "{\"user_tier\":\"premium\"}",
     .scores = scores3,
     .n_scores = 1,
     .span_name = "anthropic.chat"},
    {.time_us = T + 180 * SEC,
     .customer_identifier = "bob",
     .model = "gpt-4o",
     .provider_id = "openai",
     .log_type = "chat",
     .llm_call = true,
     .environment = "test",
     .is_test = true,
     .prompt_tokens = 400,
     .completion_tokens = 40,
     .cost = 4.0,
     .latency = 1.0,
     .time_to_first_token = NAN,
     .status_code = 200,
     .status = "success",
     .span_name = "chat gpt-4o"},
    {.time_us = T - 7200 * SEC,
     .model = "GPT-4O",
     .log_type = "task",
     .environment = "prod",
     .prompt_tokens = 1,
     .completion_tokens = 1,
     .cost = 0.25,
     .latency = 0,
     .time_to_first_token = NAN,
     .status_code = 200,
     .status = "success",
     .scores = scores5,
     .n_scores = 1,
     .span_name = "old"},
    {.time_us = T + 240 * SEC,
     .customer_identifier = INJECTED,
     .log_type = "task",
     .environment = "prod",
     .prompt_tokens = 8,
     .completion_tokens = 8,
     .cost = 8.0,
     .latency = 2.0,
     .time_to_first_token = NAN,
     .status_code = 200,
     .status = "success",
     .metadata = "{}",
     .span_name = "workflow"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* --- helpers ------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    rc_usage_store *s;
} fixture;

static bool open_store(fixture *f)
{
    rc_error err = {{0}};
    rc_usage_store_config cfg = {.directory = f->dir};
    rc_status st = ops->open(&cfg, &f->s, &err);
    if (st != RC_OK) fprintf(stderr, "open: %s\n", err.msg);
    return st == RC_OK;
}

static bool setup(fixture *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/rc_usage_store_XXXXXX");
    if (!mkdtemp(f->dir)) return false;
    /* a directory below, to show open creates it */
    strncat(f->dir, "/db", sizeof f->dir - strlen(f->dir) - 1);
    rc_error err = {{0}};
    if (!open_store(f)) return false;
    rc_status st = ops->write_batch(f->s, rows, N_ROWS, &err);
    if (st != RC_OK) fprintf(stderr, "write: %s\n", err.msg);
    return st == RC_OK;
}

static void teardown(fixture *f)
{
    ops->close(f->s);
    f->s = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(f->dir) - 3), f->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", f->dir);
}

/* The window holding every row but the old one. */
static rc_usage_filter window(void)
{
    return (rc_usage_filter){.start_us = T - 3600 * SEC, .end_us = T + 3600 * SEC};
}

static rc_usage_summary summary(fixture *f, const rc_usage_filter *flt)
{
    rc_usage_summary s;
    rc_error err = {{0}};
    rc_status st = ops->query_summary(f->s, flt, &s, &err);
    if (st != RC_OK) fprintf(stderr, "summary: %s\n", err.msg);
    CHECK(st == RC_OK);
    return s;
}

/* Requests matching one condition, over every environment but test. */
static uint64_t count_where(fixture *f, const char *field, const char *op,
                            const char *const *values)
{
    size_t n = 0;
    while (values[n])
        n++;
    rc_usage_cond c = {field, op, values, n};
    rc_usage_filter flt = window();
    flt.all_envs = true;
    flt.conds = &c;
    flt.n_conds = 1;
    rc_usage_summary s = summary(f, &flt);
    uint64_t got = s.number_of_requests;
    rc_usage_summary_free(&s);
    return got;
}

#define V(...) ((const char *const[]){__VA_ARGS__, NULL})

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

/* --- cases --------------------------------------------------------------------- */

/* Default: not test, environment prod, production or unknown (rows 0, 1, 5). */
static void test_default_environment(void)
{
    fixture f;
    CHECK(setup(&f));
    rc_usage_filter flt = window();
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.number_of_requests == 3);
    CHECK(near(s.total_cost, 9.5));
    CHECK(s.total_tokens == 110 + 55 + 16); /* prompt + completion */
    rc_usage_summary_free(&s);
    teardown(&f);
}

static void test_environment_rules(void)
{
    fixture f;
    CHECK(setup(&f));
    rc_usage_filter flt = window();
    flt.all_envs = true;
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.number_of_requests == 4); /* every environment, test logs still out */
    CHECK(near(s.total_cost, 11.5));
    rc_usage_summary_free(&s);

    flt.is_test = true; /* overrides all_envs: test logs only */
    s = summary(&f, &flt);
    CHECK(s.number_of_requests == 1);
    CHECK(near(s.total_cost, 4.0));
    rc_usage_summary_free(&s);

    flt = window();
    flt.environment = "staging";
    s = summary(&f, &flt);
    CHECK(s.number_of_requests == 1);
    CHECK(near(s.total_cost, 2.0));
    rc_usage_summary_free(&s);

    flt.environment = "test"; /* the test environment's logs are test logs */
    s = summary(&f, &flt);
    CHECK(s.number_of_requests == 0);
    rc_usage_summary_free(&s);
    teardown(&f);
}

static void test_time_window(void)
{
    fixture f;
    CHECK(setup(&f));
    rc_usage_filter flt = {.start_us = T + 30 * SEC, .end_us = T + 130 * SEC, .all_envs = true};
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.number_of_requests == 2);
    rc_usage_summary_free(&s);
    flt.start_us = flt.end_us = T; /* both ends inclusive */
    s = summary(&f, &flt);
    CHECK(s.number_of_requests == 1);
    rc_usage_summary_free(&s);
    flt.start_us = T - 8000 * SEC; /* the old row too */
    flt.end_us = T + 8000 * SEC;
    s = summary(&f, &flt);
    CHECK(s.number_of_requests == 5);
    CHECK(near(s.total_cost, 11.75));
    rc_usage_summary_free(&s);
    teardown(&f);
}

static void test_operators(void)
{
    fixture f;
    CHECK(setup(&f));
    /* over rows 0, 1, 2, 5 */
    CHECK(count_where(&f, "model", "", V("gpt-4o")) == 1);
    CHECK(count_where(&f, "model", "in", V("gpt-4o", "claude-3-5-sonnet")) == 2);
    CHECK(count_where(&f, "model", "iexact", V("GPT-4O")) == 1);
    CHECK(count_where(&f, "model", "not", V("gpt-4o")) == 3); /* NULL model included */
    CHECK(count_where(&f, "cost", "lt", V("1")) == 1);
    CHECK(count_where(&f, "cost", "lte", V("1")) == 2);
    CHECK(count_where(&f, "cost", "gt", V("2")) == 1);
    CHECK(count_where(&f, "cost", "gte", V("2")) == 2);
    CHECK(count_where(&f, "model", "contains", V("4o")) == 2);
    CHECK(count_where(&f, "model", "contains", V("4O")) == 0); /* case respected */
    CHECK(count_where(&f, "model", "icontains", V("4O")) == 2);
    CHECK(count_where(&f, "model", "startswith", V("claude")) == 1);
    CHECK(count_where(&f, "model", "endswith", V("mini")) == 1);
    CHECK(count_where(&f, "model", "isnull", V("true")) == 1);
    CHECK(count_where(&f, "model", "isnull", V("false")) == 3);
    CHECK(count_where(&f, "customer_identifier", "in", V("alice", "bob")) == 3);
    CHECK(count_where(&f, "prompt_tokens", "gte", V("100")) == 2);
    CHECK(count_where(&f, "completion_tokens", "lt", V("10")) == 2);
    CHECK(count_where(&f, "total_tokens", "gt", V("100")) == 2);
    CHECK(count_where(&f, "latency", "lt", V("1")) == 1);
    CHECK(count_where(&f, "status_code", "gte", V("500")) == 1);
    CHECK(count_where(&f, "log_type", "", V("chat")) == 3);
    CHECK(count_where(&f, "environment", "", V("staging")) == 1);
    CHECK(count_where(&f, "provider_id", "", V("anthropic")) == 1);
    CHECK(count_where(&f, "span_name", "startswith", V("chat")) == 2);
    CHECK(count_where(&f, "trace_unique_id", "", V("0af7651916cd43dd8448eb211c80319c")) == 1);
    teardown(&f);
}

static void test_metadata_filters(void)
{
    fixture f;
    CHECK(setup(&f));
    CHECK(count_where(&f, "metadata__user_tier", "", V("premium")) == 2);
    CHECK(count_where(&f, "metadata__department", "icontains", V("SAL")) == 1);
    CHECK(count_where(&f, "metadata__user_tier", "isnull", V("true")) == 1);
    CHECK(count_where(&f, "metadata__user_tier", "not", V("premium")) == 2);
    /* conditions are ANDed */
    rc_usage_cond c[] = {{"customer_identifier", "", V("alice"), 1},
                         {"metadata__user_tier", "", V("premium"), 1}};
    rc_usage_filter flt = window();
    flt.conds = c;
    flt.n_conds = 2;
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.number_of_requests == 1);
    CHECK(near(s.total_cost, 1.0));
    rc_usage_summary_free(&s);
    teardown(&f);
}

static void test_scores(void)
{
    fixture f;
    CHECK(setup(&f));
    rc_usage_filter flt = window();
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.n_scores == 2);
    const rc_usage_score_summary *q = score_of(&s, "quality"), *a = score_of(&s, "accurate");
    CHECK(q && !q->is_bool && near(q->avg_score, 3.0) && q->n == 2);
    CHECK(a && a->is_bool && a->true_count == 1 && a->false_count == 1);
    rc_usage_summary_free(&s);
    flt.all_envs = true; /* bob's staging log adds a true */
    s = summary(&f, &flt);
    a = score_of(&s, "accurate");
    CHECK(a && a->true_count == 2 && a->false_count == 1);
    rc_usage_summary_free(&s);
    teardown(&f);
}

static void test_injection_inert(void)
{
    fixture f;
    CHECK(setup(&f));
    CHECK(count_where(&f, "customer_identifier", "", V("x' OR '1'='1")) == 0);
    CHECK(count_where(&f, "model", "", V("gpt-4o'); DROP TABLE request_logs; --")) == 0);
    CHECK(count_where(&f, "model", "contains", V("%")) == 0); /* wildcards are literal */
    CHECK(count_where(&f, "model", "contains", V("_")) == 0);
    CHECK(count_where(&f, "metadata__a') OR 1=1 --", "", V("x")) == 0);
    CHECK(count_where(&f, "customer_identifier", "", V(INJECTED)) == 1); /* kept as data */
    CHECK(count_where(&f, "customer_identifier", "contains", V("DROP TABLE")) == 1);
    rc_usage_filter flt = window();
    flt.environment = "prod' OR 1=1 --";
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.number_of_requests == 0);
    rc_usage_summary_free(&s);
    CHECK(count_where(&f, "model", "", V("gpt-4o")) == 1); /* the table is still there */
    teardown(&f);
}

static void expect_refused(fixture *f, const char *field, const char *op, const char *value,
                           const char *needle)
{
    const char *vals[] = {value};
    rc_usage_cond c = {field, op, vals, value ? 1 : 0};
    rc_usage_filter flt = window();
    flt.conds = &c;
    flt.n_conds = 1;
    rc_usage_summary s;
    rc_error err = {{0}};
    CHECK(ops->query_summary(f->s, &flt, &s, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, needle);
    rc_usage_summary_free(&s);
}

static void test_unknown_field_or_operator(void)
{
    fixture f;
    CHECK(setup(&f));
    expect_refused(&f, "modle", "", "x", "unknown filter field \"modle\"");
    expect_refused(&f, "model", "equals", "x", "unknown filter operator \"equals\"");
    expect_refused(&f, "cost", "gte", "cheap", "\"cheap\" is not a number");
    expect_refused(&f, "cost", "contains", "1", "does not apply");
    expect_refused(&f, "model", "", NULL, "no value");
    expect_refused(&f, "model", "isnull", "maybe", "isnull takes true or false");
    expect_refused(&f, "metadata__a\"b", "", "x", "metadata__a\"b");
    teardown(&f);
}

static void test_expire(void)
{
    fixture f;
    CHECK(setup(&f));
    rc_error err = {{0}};
    uint64_t deleted = 0;
    CHECK(ops->expire(f.s, T, &deleted, &err) == RC_OK);
    CHECK(deleted == 1);
    rc_usage_filter flt = {.start_us = 0, .end_us = T + 8000 * SEC, .all_envs = true};
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.number_of_requests == 4);
    const rc_usage_score_summary *q = score_of(&s, "quality");
    CHECK(q && q->n == 2 && near(q->avg_score, 3.0)); /* the old log's score went with it */
    rc_usage_summary_free(&s);
    CHECK(ops->expire(f.s, T, &deleted, &err) == RC_OK);
    CHECK(deleted == 0);
    teardown(&f);
}

static void test_reopen_keeps_data(void)
{
    fixture f;
    CHECK(setup(&f));
    ops->close(f.s);
    f.s = NULL;
    CHECK(open_store(&f));
    rc_usage_filter flt = window();
    rc_usage_summary s = summary(&f, &flt);
    CHECK(s.number_of_requests == 3);
    CHECK(near(s.total_cost, 9.5));
    CHECK(s.n_scores == 2);
    rc_usage_summary_free(&s);
    char wal[96];
    snprintf(wal, sizeof wal, "%s/usage.db-wal", f.dir);
    CHECK(access(wal, F_OK) == 0); /* WAL mode */
    teardown(&f);
}

static void test_list_and_users(void)
{
    fixture f;
    CHECK(setup(&f));
    rc_error err = {{0}};
    rc_usage_filter flt = window();
    flt.all_envs = true;
    rc_usage_page p = {.page = 1, .page_size = 2, .sort_by = "-cost"};
    rc_usage_list l;
    CHECK(ops->query_list(f.s, &flt, &p, &l, &err) == RC_OK);
    CHECK(l.count == 4 && l.n_logs == 2);
    CHECK(l.n_logs == 2 && near(l.logs[0].cost, 8.0) && near(l.logs[1].cost, 2.0));
    CHECK(l.n_logs == 2 && l.logs[1].model && strcmp(l.logs[1].model, "claude-3-5-sonnet") == 0);
    rc_usage_list_free(&l);
    p.page = 2;
    CHECK(ops->query_list(f.s, &flt, &p, &l, &err) == RC_OK);
    CHECK(l.n_logs == 2 && near(l.logs[0].cost, 1.0));
    rc_usage_list_free(&l);
    p.page_size = 5000;
    CHECK(ops->query_list(f.s, &flt, &p, &l, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "page_size");
    p = (rc_usage_page){.page = 1, .page_size = 10, .sort_by = "cost; DROP TABLE scores"};
    CHECK(ops->query_list(f.s, &flt, &p, &l, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown sort_by");

    rc_usage_users u;
    p = (rc_usage_page){.page = 1, .page_size = 10, .sort_by = "customer_identifier"};
    CHECK(ops->users(f.s, NULL, NULL, &p, &u, &err) == RC_OK);
    /* Users are customers with LLM calls (the daily rollups): INJECTED's
     * only log is a task span, so it is not one. */
    CHECK(u.count == 2 && u.n_users == 2);
    if (u.n_users == 2) {
        CHECK_STR(u.users[0].customer_identifier, "alice");
        CHECK(near(u.users[0].total_usage, 1.5) && u.users[0].total_requests == 2);
        CHECK(u.users[0].total_tokens == 165 && near(u.users[0].average_latency, 1.0));
        CHECK(near(u.users[0].average_ttft, 0.25) && u.users[0].last_active_us == T + 60 * SEC);
        CHECK_STR(u.users[1].customer_identifier, "bob");
    }
    rc_usage_users_free(&u);
    CHECK(ops->users(f.s, "staging", NULL, &p, &u, &err) == RC_OK);
    CHECK(u.count == 1 && u.n_users == 1);
    rc_usage_users_free(&u);
    teardown(&f);
}

/* The list's count over windows holding whole hours (added up from the
 * hourly counts) and partial ones (counted in the logs) equals a count of
 * the logs themselves, under each environment rule, and after expiry cut
 * an hour in two. */
static void test_hourly_counts(void)
{
    fixture f = {.s = NULL};
    snprintf(f.dir, sizeof f.dir, "/tmp/rc_usage_hours_XXXXXX");
    CHECK(mkdtemp(f.dir) != NULL);
    strncat(f.dir, "/db", sizeof f.dir - strlen(f.dir) - 1);
    CHECK(open_store(&f));
    enum { N = 600 };
    static rc_usage_row many[N];
    static const char *const envs[] = {"prod", NULL, "staging", "test", "production"};
    const int64_t H = 3600 * SEC, base = T - T % H; /* an hour's start */
    for (int i = 0; i < N; i++)
        many[i] = (rc_usage_row){.time_us = base + (int64_t)i * 37 * SEC, /* ~6 hours */
                                 .customer_identifier = "h",
                                 .environment = envs[i % 5],
                                 .is_test = i % 5 == 3,
                                 .log_type = "chat"};
    rc_error err = {{0}};
    CHECK(ops->write_batch(f.s, many, N, &err) == RC_OK);
    const int64_t windows[][2] = {{base, base + 6 * H},
                                  {base + 1234 * SEC, base + 5 * H - 1},
                                  {base + 30 * SEC, base + 40 * SEC},
                                  {base - H, base + 2 * H + 17 * SEC},
                                  {base + H, base + 3 * H - 1},
                                  {base + H, base + 3 * H}};
    for (int round = 0; round < 2; round++) {
        for (size_t w = 0; w < sizeof windows / sizeof *windows; w++)
            for (int rule = 0; rule < 4; rule++) {
                rc_usage_filter flt = {.start_us = windows[w][0], .end_us = windows[w][1]};
                if (rule == 1) flt.all_envs = true;
                if (rule == 2) flt.environment = "staging";
                if (rule == 3) flt.is_test = true;
                uint64_t want = 0;
                for (int i = 0; i < N; i++) {
                    const rc_usage_row *r = &many[i];
                    if (r->time_us < flt.start_us || r->time_us > flt.end_us) continue;
                    if (round == 1 && r->time_us < base + 2 * H + 5 * SEC) continue; /* expired */
                    bool env =
                        rule == 1 ? !r->is_test
                        : rule == 2
                            ? !r->is_test && r->environment && !strcmp(r->environment, "staging")
                        : rule == 3
                            ? r->is_test
                            : !r->is_test && (!r->environment || !strcmp(r->environment, "prod") ||
                                              !strcmp(r->environment, "production"));
                    want += env;
                }
                rc_usage_page p = {.page = 1, .page_size = 1};
                rc_usage_list l;
                CHECK(ops->query_list(f.s, &flt, &p, &l, &err) == RC_OK);
                if (l.count != want)
                    fprintf(stderr, "  round %d window %zu rule %d: count %llu, want %llu\n", round,
                            w, rule, (unsigned long long)l.count, (unsigned long long)want);
                CHECK(l.count == want);
                rc_usage_list_free(&l);
            }
        uint64_t deleted = 0;
        if (round == 0) CHECK(ops->expire(f.s, base + 2 * H + 5 * SEC, &deleted, &err) == RC_OK);
    }
    teardown(&f);
}

/* A store of schema version 1 (before budgets: scores without their log's
 * customer, no rollups) is migrated on open: its scores answer a
 * customer's summary, and its LLM calls are in the users' rollups. */
static void test_migrates_version_1(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/rc_usage_v1_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char path[96];
    snprintf(path, sizeof path, "%s/usage.db", dir);
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    const char *v1 =
        "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO store_meta VALUES ('schema_version', '1');"
        "CREATE TABLE request_logs (id INTEGER PRIMARY KEY, time_us BIGINT NOT NULL,"
        " customer_identifier TEXT, model TEXT, provider_id TEXT, log_type TEXT,"
        " environment TEXT, is_test INTEGER NOT NULL DEFAULT 0,"
        " prompt_tokens BIGINT NOT NULL DEFAULT 0, completion_tokens BIGINT NOT NULL DEFAULT 0,"
        " total_tokens BIGINT NOT NULL DEFAULT 0, cost DOUBLE PRECISION NOT NULL DEFAULT 0,"
        " latency DOUBLE PRECISION, time_to_first_token DOUBLE PRECISION, status_code INTEGER,"
        " status TEXT, metadata TEXT, trace_unique_id TEXT, span_unique_id TEXT,"
        " span_name TEXT, input TEXT, output TEXT);"
        "CREATE INDEX request_logs_time ON request_logs (time_us);"
        "CREATE TABLE scores (log_id BIGINT NOT NULL, slug TEXT NOT NULL,"
        " is_bool INTEGER NOT NULL, value DOUBLE PRECISION NOT NULL);"
        "INSERT INTO request_logs (id, time_us, customer_identifier, model, log_type,"
        " environment, prompt_tokens, completion_tokens, cost, latency)"
        " VALUES (1, 1700000000000000, 'old-alice', 'gpt-4o', 'chat', 'prod', 10, 5, 0.5, 1.0),"
        " (2, 1700000001000000, 'old-alice', 'gpt-4o', 'chat', 'prod', 20, 5, 0.25, 3.0),"
        " (3, 1700000002000000, 'old-alice', NULL, 'task', 'prod', 0, 0, 0, 1.0);"
        "INSERT INTO scores VALUES (1, 'quality', 0, 4.0), (2, 'quality', 0, 2.0);";
    CHECK(sqlite3_exec(db, v1, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);

    fixture f = {.s = NULL};
    snprintf(f.dir, sizeof f.dir, "%s", dir);
    CHECK(open_store(&f));
    rc_error err = {{0}};
    const char *who[] = {"old-alice"};
    rc_usage_cond c = {.field = "customer_identifier", .op = "", .values = who, .n_values = 1};
    rc_usage_filter flt = {
        .start_us = 1699999999000000, .end_us = 1700000009000000, .conds = &c, .n_conds = 1};
    rc_usage_summary sum;
    CHECK(f.s && ops->query_summary(f.s, &flt, &sum, &err) == RC_OK);
    CHECK(sum.number_of_requests == 3 && near(sum.total_cost, 0.75));
    CHECK(sum.n_scores == 1 && near(sum.scores[0].avg_score, 3.0));
    rc_usage_summary_free(&sum);
    rc_usage_users u;
    rc_usage_page p = {.page = 1, .page_size = 10};
    CHECK(f.s && ops->users(f.s, NULL, "old-alice", &p, &u, &err) == RC_OK);
    CHECK(u.n_users == 1 && u.users[0].total_requests == 2 && near(u.users[0].total_usage, 0.75));
    CHECK(u.n_users == 1 && u.users[0].total_tokens == 40 && near(u.users[0].average_latency, 2));
    rc_usage_users_free(&u);
    ops->close(f.s);
    /* Opening it again finds version 2: no second migration. */
    CHECK(open_store(&f));
    ops->close(f.s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    RUN(test_default_environment());
    RUN(test_environment_rules());
    RUN(test_time_window());
    RUN(test_operators());
    RUN(test_metadata_filters());
    RUN(test_scores());
    RUN(test_injection_inert());
    RUN(test_unknown_field_or_operator());
    RUN(test_expire());
    RUN(test_reopen_keeps_data());
    RUN(test_list_and_users());
    RUN(test_migrates_version_1());
    RUN(test_hourly_counts());
    TEST_MAIN_END();
}
