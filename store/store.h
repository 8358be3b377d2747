/*
 * store.h - the usage store: request logs kept locally, and the questions
 * asked of them (issue 12).
 *
 * The `usage` exporter (exporter/usage.c) turns every span into one row, a
 * request log in the same terms as the `respan` exporter's (it is read from
 * that exporter's mapping), and hands rows to a store in batches off the hot
 * path. The `respan_api` extension (a later step) answers Respan's summary,
 * list and users endpoints from the same store.
 *
 * The store sits behind this one small interface, a table of functions
 * (rc_usage_store_ops) over an opaque handle, so that a server database
 * (PostgreSQL, for several replicas) can be added as another backend. The
 * header therefore holds only plain C: nothing here names SQLite.
 * store/sqlite.c is the embedded backend.
 *
 * Threads. A handle is used by one thread at a time. A reader on another
 * thread opens a handle of its own on the same directory: the SQLite
 * backend runs in WAL mode, so readers never wait for the writer.
 *
 * Ownership. Rows passed to write_batch are borrowed for the call. Results
 * (rc_usage_summary, rc_usage_list, rc_usage_users) are filled by the
 * store, owned by the caller, and released with their *_free function;
 * they are safe to free after a failed call too.
 */
#ifndef RC_STORE_STORE_H
#define RC_STORE_STORE_H

#include "core/error.h"
#include "store/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- what goes in ------------------------------------------------------------- */

/* One evaluator score of a request log: a number (numerical and percentage
 * evaluators) or a boolean (value 1 or 0). */
typedef struct rc_usage_score {
    const char *slug;
    bool is_bool;
    double value;
} rc_usage_score;

/* One request log. Strings may be NULL (unknown: stored as NULL, which the
 * `isnull` operator sees). Times are Unix microseconds; durations seconds. */
typedef struct rc_usage_row {
    int64_t time_us; /* the log's timestamp: the span's end */
    const char *customer_identifier;
    const char *model;
    const char *provider_id;
    const char *log_type;
    const char *environment;
    bool is_test;
    int64_t prompt_tokens;
    int64_t completion_tokens;
    /* No total_tokens: the store keeps prompt + completion, the one
     * definition Respan's summary uses, whatever a span reported. */
    /* USD, with the customer's markup applied: the `cost` field of the
     * request log, which the cost processor writes as respan.cost = raw *
     * (1 + markup_percentage / 100). */
    double cost;
    double latency;             /* seconds */
    double time_to_first_token; /* seconds; NAN when unknown */
    int status_code;
    const char *status;   /* "success" or "error" */
    const char *metadata; /* a JSON object's text (string values), or NULL */
    const rc_usage_score *scores;
    size_t n_scores;
    const char *trace_unique_id;
    const char *span_unique_id;
    const char *span_name;
    /* An LLM call (the cost processor's call kinds): counted in its
     * customer's daily rollup, which budgets are seeded from. */
    bool llm_call;
    /* Message bodies: NULL unless the exporter's store_content is on. */
    const char *input;
    const char *output;
} rc_usage_row;

/* --- what is asked ------------------------------------------------------------ */

/* One condition, as Respan's filters give it:
 *   {"<field>": {"operator": "<op>", "value": [v, ...]}}
 * Fields: model, customer_identifier, cost, prompt_tokens,
 * completion_tokens, total_tokens, latency, status_code, log_type,
 * environment, provider_id, span_name, trace_unique_id, metadata__<key>.
 * Operators:
 *   ""         equals any of the values        (same as "in")
 *   iexact     equals any, ignoring ASCII case
 *   not        equals none of the values (a NULL field matches)
 *   lt lte gt gte  compares with the first value
 *   contains icontains startswith endswith  text match with any value
 *              (icontains ignores ASCII case; the others respect it)
 *   in         equals any of the values
 *   isnull     value "true": the field is absent; "false": present
 * Values are text as the client sent them ("gpt-4o", "0.01", "true");
 * numeric fields read them as numbers. An unknown field or operator, a
 * missing value or a non-number for a numeric field fails the query with
 * RC_EINVAL and a message naming it. Values are always bound as query
 * parameters, never spliced into query text. */
typedef struct rc_usage_cond {
    const char *field;
    const char *op;
    const char *const *values;
    size_t n_values;
} rc_usage_cond;

/* Which logs a query covers. Environment rules (Respan's summary endpoint):
 *   is_test      only test logs (is_test overrides all_envs);
 *   all_envs     non-test logs of every environment;
 *   environment  non-test logs of that environment;
 *   none of them non-test logs whose environment is "prod",
 *                "production" or unknown.
 * With is_test, `environment` narrows further when given. */
typedef struct rc_usage_filter {
    int64_t start_us, end_us; /* inclusive window on the log's time */
    const char *environment;  /* NULL: not given */
    bool all_envs;
    bool is_test;
    const rc_usage_cond *conds;
    size_t n_conds;
} rc_usage_filter;

/* --- what comes out ------------------------------------------------------------ */

typedef struct rc_usage_score_summary {
    char *slug;
    bool is_bool;        /* boolean: the counts; numeric: avg_score */
    double avg_score;    /* numeric evaluators */
    uint64_t true_count; /* boolean evaluators */
    uint64_t false_count;
    uint64_t n; /* scores aggregated */
} rc_usage_score_summary;

typedef struct rc_usage_summary {
    double total_cost;
    int64_t total_tokens; /* prompt + completion */
    uint64_t number_of_requests;
    rc_usage_score_summary *scores; /* by slug, then numeric before boolean */
    size_t n_scores;
} rc_usage_summary;

void rc_usage_summary_free(rc_usage_summary *s);

/* A page of logs. sort_by: a field name among timestamp, cost, latency,
 * prompt_tokens, completion_tokens, total_tokens, with "-" for
 * descending; NULL: "-timestamp". */
typedef struct rc_usage_page {
    uint64_t page; /* from 1 */
    uint64_t page_size;
    const char *sort_by;
} rc_usage_page;

/* A stored log read back; every string is owned by the list. */
typedef struct rc_usage_log {
    int64_t time_us;
    char *customer_identifier, *model, *provider_id, *log_type, *environment;
    bool is_test;
    int64_t prompt_tokens, completion_tokens, total_tokens;
    double cost, latency, time_to_first_token; /* ttft NAN when unknown */
    int status_code;
    char *status, *metadata, *trace_unique_id, *span_unique_id, *span_name, *input, *output;
} rc_usage_log;

typedef struct rc_usage_list {
    uint64_t count; /* logs matching the filter, over all pages */
    rc_usage_log *logs;
    size_t n_logs;
} rc_usage_list;

void rc_usage_list_free(rc_usage_list *l);

/* One customer's usage, from the logs in the store. */
typedef struct rc_usage_user {
    char *customer_identifier;
    double total_usage; /* cost, with markup */
    uint64_t total_requests;
    int64_t total_prompt_tokens, total_completion_tokens, total_tokens;
    double average_latency;
    double average_ttft; /* NAN when no log had one */
    int64_t first_seen_us, last_active_us;
} rc_usage_user;

typedef struct rc_usage_users {
    uint64_t count; /* customers in the environment, over all pages */
    rc_usage_user *users;
    size_t n_users;
} rc_usage_users;

void rc_usage_users_free(rc_usage_users *u);

/* A customer's settings as the store keeps them: the ledger's settings
 * (store/ledger.h), its metadata (a JSON object's text) and where they last
 * came from. Borrowed for put_customer's call; for each_customer's
 * callback, valid during the call. */
typedef struct rc_customer_record {
    const char *customer_identifier;
    rc_customer_settings s;
    const char *metadata; /* put_customer: NULL keeps what is stored */
    const char *source;   /* "span", "api" or "config" */
    int64_t updated_us;
} rc_customer_record;

/* --- the interface ---------------------------------------------------------------- */

typedef struct rc_usage_store rc_usage_store; /* a backend's own */

typedef struct rc_usage_store_config {
    const char *directory; /* created when missing */
} rc_usage_store_config;

typedef struct rc_usage_store_ops {
    const char *name;
    rc_status (*open)(const rc_usage_store_config *cfg, rc_usage_store **out, rc_error *err);
    void (*close)(rc_usage_store *s); /* NULL is a no-op */
    /* All rows or none (one transaction). */
    rc_status (*write_batch)(rc_usage_store *s, const rc_usage_row *rows, size_t n, rc_error *err);
    rc_status (*query_summary)(rc_usage_store *s, const rc_usage_filter *f, rc_usage_summary *out,
                               rc_error *err);
    rc_status (*query_list)(rc_usage_store *s, const rc_usage_filter *f, const rc_usage_page *p,
                            rc_usage_list *out, rc_error *err);
    /* Customers with LLM calls (read from the daily rollups, not the
     * logs) in `environment` (NULL: every environment, and customers
     * created that no call names yet), or only `customer`,
     * sorted by sort_by (customer_identifier, total_usage, total_requests,
     * last_active, "-" for descending; NULL: "-last_active"). */
    rc_status (*users)(rc_usage_store *s, const char *environment, const char *customer,
                       const rc_usage_page *p, rc_usage_users *out, rc_error *err);
    /* Deletes every log older than before_us; *deleted (may be NULL) gets
     * how many. */
    rc_status (*expire)(rc_usage_store *s, int64_t before_us, uint64_t *deleted, rc_error *err);
    /* Creates or replaces a customer's settings. */
    rc_status (*put_customer)(rc_usage_store *s, const rc_customer_record *r, rc_error *err);
    /* Calls fn for every stored customer (only: that one; NULL: all). */
    rc_status (*each_customer)(rc_usage_store *s, const char *only,
                               void (*fn)(void *arg, const rc_customer_record *r), void *arg,
                               rc_error *err);
    /* Calls fn for every customer's every day with LLM calls (the daily
     * rollups written with the logs; retention does not trim them). */
    rc_status (*each_customer_day)(rc_usage_store *s,
                                   void (*fn)(void *arg, const char *id, int64_t day_us,
                                              double cost, uint64_t requests),
                                   void *arg, rc_error *err);
    /* The cost of the customer's LLM calls on the days in [from_us, to_us)
     * (day starts), from the daily rollups. */
    rc_status (*customer_cost)(rc_usage_store *s, const char *customer, int64_t from_us,
                               int64_t to_us, double *cost, rc_error *err);
    /* The customer's most used models, most first, at most max; *out (an
     * array of n_out strings) is the caller's: free each, then it. */
    rc_status (*top_models)(rc_usage_store *s, const char *customer, size_t max, char ***out,
                            size_t *n_out, rc_error *err);
} rc_usage_store_ops;

extern const rc_usage_store_ops rc_usage_sqlite_store;

/* --- the filter vocabulary, shared by every backend (store/filter.c) ------------------ */

typedef enum rc_usage_field_kind { RC_UF_TEXT, RC_UF_NUMBER, RC_UF_METADATA } rc_usage_field_kind;

typedef enum rc_usage_op {
    RC_UOP_EQ,
    RC_UOP_IEXACT,
    RC_UOP_NOT,
    RC_UOP_LT,
    RC_UOP_LTE,
    RC_UOP_GT,
    RC_UOP_GTE,
    RC_UOP_CONTAINS,
    RC_UOP_ICONTAINS,
    RC_UOP_STARTSWITH,
    RC_UOP_ENDSWITH,
    RC_UOP_IN,
    RC_UOP_ISNULL,
} rc_usage_op;

/* A resolved condition: the column it reads (a fixed name from the store's
 * own table, never the client's text) or the metadata key. */
typedef struct rc_usage_term {
    rc_usage_field_kind kind;
    const char *column;       /* RC_UF_TEXT / RC_UF_NUMBER */
    const char *metadata_key; /* RC_UF_METADATA: after "metadata__" */
    rc_usage_op op;
} rc_usage_term;

/* Resolves and checks one condition; RC_EINVAL naming the field, operator
 * or value at fault. */
rc_status rc_usage_term_of(const rc_usage_cond *c, rc_usage_term *out, rc_error *err);

#endif
