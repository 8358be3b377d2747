/*
 * sqlite.c - the embedded usage store: one SQLite database in WAL mode.
 *
 * The file is <directory>/usage.db. Open creates the directory and the
 * schema when missing and records the schema version in store_meta (a
 * plain table rather than PRAGMA user_version, so that a server backend can
 * keep the same bookkeeping); a database written by a newer schema is
 * refused rather than guessed at.
 *
 * Tables. request_logs holds one row per request log, its columns named as
 * the filter fields they answer (store/filter.c resolves a field to that
 * name), with indexes on time and on (customer, time): every query is
 * bounded by a time window, and the users page and customer filters are the
 * common narrowing. scores holds evaluator scores, one row per score, keyed
 * by the log's id; expiry deletes a log's scores with it.
 *
 * Portability. The SQL is kept to what PostgreSQL also runs: standard
 * types, IN lists, LIKE ... ESCAPE, LOWER, CASE, LIMIT/OFFSET, subqueries.
 * Two things are SQLite's own and are kept here: the PRAGMAs of open (WAL,
 * synchronous=NORMAL, case-sensitive LIKE, which PostgreSQL has anyway) and
 * metadata lookups through json_extract (metadata_expr, the one place).
 *
 * Safety. Query text is assembled only from this file's literals and the
 * fixed column names of filter.c; every value a client supplies (filter
 * values, metadata keys, environments, times, pages) is bound as a
 * parameter, so SQL-shaped input is only ever data.
 *
 * Durability. WAL with synchronous=NORMAL: a committed batch survives a
 * process crash; a power loss may lose the last transactions. The store is
 * a derived view (the respan queue holds the data that matters), and
 * fsync per batch would tie write throughput to the disk's flush latency.
 */
#include "store/store.h"

#include "core/buf.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCHEMA_VERSION 2
#define DB_FILE "usage.db"
#define BUSY_TIMEOUT_MS 5000
#define MAX_PAGE_SIZE 1000
#define DAY_US (86400LL * 1000000LL)
#define HOUR_US (3600LL * 1000000LL)

struct rc_usage_store {
    sqlite3 *db;
    sqlite3_stmt *insert_log;
    sqlite3_stmt *insert_score;
    sqlite3_stmt *add_day;
    sqlite3_stmt *add_hour;
    char *path;
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS store_meta ("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS request_logs ("
    " id INTEGER PRIMARY KEY,"
    " time_us BIGINT NOT NULL,"
    " customer_identifier TEXT, model TEXT, provider_id TEXT, log_type TEXT,"
    " environment TEXT, is_test INTEGER NOT NULL DEFAULT 0,"
    " prompt_tokens BIGINT NOT NULL DEFAULT 0, completion_tokens BIGINT NOT NULL DEFAULT 0,"
    " total_tokens BIGINT NOT NULL DEFAULT 0, cost DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " latency DOUBLE PRECISION, time_to_first_token DOUBLE PRECISION,"
    " status_code INTEGER, status TEXT, metadata TEXT,"
    " trace_unique_id TEXT, span_unique_id TEXT, span_name TEXT,"
    " input TEXT, output TEXT);"
    /* A score carries its log's customer, time and environment, so that a
     * customer's summary reads its scores from the scores_customer index
     * without visiting the logs. */
    "CREATE TABLE IF NOT EXISTS scores ("
    " log_id BIGINT NOT NULL, slug TEXT NOT NULL, is_bool INTEGER NOT NULL,"
    " value DOUBLE PRECISION NOT NULL, customer_identifier TEXT,"
    " time_us BIGINT NOT NULL DEFAULT 0, environment TEXT, is_test INTEGER NOT NULL DEFAULT 0);"
    /* Each customer's LLM calls per UTC day, environment and model: budgets
     * are counted from it (store/ledger.h) and the users endpoints read it
     * rather than the logs, so they cost the same at a million logs; log
     * retention never trims it. Empty strings stand for "none" in the key. */
    "CREATE TABLE IF NOT EXISTS customer_days ("
    " customer TEXT NOT NULL, day_us BIGINT NOT NULL,"
    " environment TEXT NOT NULL, model TEXT NOT NULL,"
    " cost DOUBLE PRECISION NOT NULL, requests BIGINT NOT NULL,"
    " prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,"
    " latency_sum DOUBLE PRECISION NOT NULL, ttft_sum DOUBLE PRECISION NOT NULL,"
    " ttft_n BIGINT NOT NULL, first_us BIGINT NOT NULL, last_us BIGINT NOT NULL,"
    " PRIMARY KEY (customer, day_us, environment, model));"
    /* Logs per hour, environment and test flag: the list's count over a
     * long window adds up whole hours here and counts only the two partial
     * hours at its edges in the logs (env_null: the log had none). */
    "CREATE TABLE IF NOT EXISTS log_hours ("
    " hour_us BIGINT NOT NULL, environment TEXT NOT NULL, env_null INTEGER NOT NULL,"
    " is_test INTEGER NOT NULL, n BIGINT NOT NULL,"
    " PRIMARY KEY (hour_us, environment, env_null, is_test));"
    "CREATE TABLE IF NOT EXISTS customers ("
    " customer TEXT PRIMARY KEY, name TEXT, email TEXT,"
    " period_budget DOUBLE PRECISION, total_budget DOUBLE PRECISION, budget_duration TEXT,"
    " period_start_us BIGINT, period_end_us BIGINT, markup_percentage DOUBLE PRECISION,"
    " rate_limit BIGINT, metadata TEXT, source TEXT, updated_us BIGINT);";

/* Indexes, made once the tables have their current columns (migrate). */
static const char *const index_sql =
    /* The window and the environment rules of every query, readable from
     * the index alone: the list's count over 600k of a million logs takes
     * ~110 ms this way, ~2 s with a lookup of each row. */
    "DROP INDEX IF EXISTS request_logs_time;"
    "CREATE INDEX IF NOT EXISTS request_logs_time_env ON request_logs"
    " (time_us, is_test, environment);"
    /* A customer's summary reads only this index (a covering index): the
     * window, the environment rules and the sums, never the table, so a
     * customer holding most of a million logs is still summed in ~100 ms. */
    "DROP INDEX IF EXISTS request_logs_customer_time;"
    "CREATE INDEX IF NOT EXISTS request_logs_customer_cover ON request_logs"
    " (customer_identifier, time_us, environment, is_test, cost, prompt_tokens,"
    " completion_tokens);"
    "CREATE INDEX IF NOT EXISTS scores_log ON scores (log_id);"
    "CREATE INDEX IF NOT EXISTS scores_customer ON scores"
    " (customer_identifier, time_us, environment, is_test, slug, is_bool, value);";

/* Version 1 (before budgets) to 2: scores gain their log's customer, time
 * and environment, and the daily rollups are built from the logs kept. */
static const char *const migrate_v1_sql =
    "ALTER TABLE scores ADD COLUMN customer_identifier TEXT;"
    "ALTER TABLE scores ADD COLUMN time_us BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE scores ADD COLUMN environment TEXT;"
    "ALTER TABLE scores ADD COLUMN is_test INTEGER NOT NULL DEFAULT 0;"
    "UPDATE scores SET customer_identifier = l.customer_identifier, time_us = l.time_us,"
    " environment = l.environment, is_test = l.is_test FROM request_logs AS l"
    " WHERE l.id = scores.log_id;"
    "INSERT INTO customer_days (customer, day_us, environment, model, cost, requests,"
    " prompt_tokens, completion_tokens, latency_sum, ttft_sum, ttft_n, first_us, last_us)"
    " SELECT customer_identifier, time_us - (time_us % 86400000000), COALESCE(environment, ''),"
    " COALESCE(model, ''), SUM(cost), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens),"
    " SUM(COALESCE(latency, 0)), SUM(COALESCE(time_to_first_token, 0)),"
    " COUNT(time_to_first_token), MIN(time_us), MAX(time_us) FROM request_logs"
    " WHERE customer_identifier IS NOT NULL AND log_type IN"
    " ('chat', 'completion', 'response', 'embedding', 'generation')"
    " GROUP BY 1, 2, 3, 4 ON CONFLICT DO NOTHING;"
    "INSERT INTO log_hours (hour_us, environment, env_null, is_test, n)"
    " SELECT time_us - (time_us % 3600000000), COALESCE(environment, ''),"
    " environment IS NULL, is_test, COUNT(*) FROM request_logs GROUP BY 1, 2, 3, 4"
    " ON CONFLICT DO NOTHING;"
    "UPDATE store_meta SET value = '2' WHERE key = 'schema_version';";

#define LOG_COLUMNS                                                                                \
    "time_us, customer_identifier, model, provider_id, log_type, environment, is_test,"            \
    " prompt_tokens, completion_tokens, total_tokens, cost, latency, time_to_first_token,"         \
    " status_code, status, metadata, trace_unique_id, span_unique_id, span_name, input, output"

static rc_status db_error(rc_usage_store *s, rc_error *err, const char *what)
{
    rc_error_set(err, "usage store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
    return RC_EIO;
}

/* --- open and close -------------------------------------------------------------- */

/* mkdir -p: each component in turn, an existing one is fine. */
static rc_status make_dirs(const char *dir, rc_error *err)
{
    char *p = strdup(dir);
    if (!p) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    rc_status st = RC_OK;
    for (char *q = p + 1;; q++) {
        char saved = *q;
        if (saved != '/' && saved != 0) continue;
        *q = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc_error_set(err, "usage store: cannot create directory %s: %s", p, strerror(errno));
            st = RC_EIO;
            break;
        }
        *q = saved;
        if (!saved) break;
    }
    free(p);
    return st;
}

/* The stored schema version, written on first open; a newer one is refused. */
/* Runs a migration in one transaction: all of it or none. */
static rc_status migrate(rc_usage_store *s, const char *sql, rc_error *err)
{
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "beginning a schema migration");
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc_status rc = db_error(s, err, "migrating the schema");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc_status rc = db_error(s, err, "committing a schema migration");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return RC_OK;
}

static rc_status check_version(rc_usage_store *s, rc_error *err)
{
    sqlite3_stmt *st = NULL;
    rc_status rc = RC_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM store_meta WHERE key = 'schema_version'", -1,
                           &st, NULL) != SQLITE_OK)
        return db_error(s, err, "reading the schema version");
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        int v = atoi((const char *)sqlite3_column_text(st, 0));
        if (v > SCHEMA_VERSION) {
            rc_error_set(err, "usage store %s: schema version %d is newer than this build's %d",
                         s->path, v, SCHEMA_VERSION);
            rc = RC_EINVAL;
        } else if (v == 1) {
            rc = migrate(s, migrate_v1_sql, err);
        }
    } else if (step == SQLITE_DONE) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "INSERT INTO store_meta (key, value) VALUES ('schema_version', '%d')",
                 SCHEMA_VERSION);
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            rc = db_error(s, err, "writing the schema version");
    } else {
        rc = db_error(s, err, "reading the schema version");
    }
    sqlite3_finalize(st);
    return rc;
}

static rc_status prepare_inserts(rc_usage_store *s, rc_error *err)
{
    const char *log_sql = "INSERT INTO request_logs (" LOG_COLUMNS ") VALUES "
                          "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    const char *score_sql = "INSERT INTO scores (log_id, slug, is_bool, value,"
                            " customer_identifier, time_us, environment, is_test)"
                            " VALUES (?,?,?,?,?,?,?,?)";
    const char *day_sql =
        "INSERT INTO customer_days (customer, day_us, environment, model, cost, requests,"
        " prompt_tokens, completion_tokens, latency_sum, ttft_sum, ttft_n, first_us, last_us)"
        " VALUES (?,?,?,?,?,1,?,?,?,?,?,?,?) ON CONFLICT (customer, day_us, environment, model)"
        " DO UPDATE SET cost = customer_days.cost + excluded.cost,"
        " requests = customer_days.requests + 1,"
        " prompt_tokens = customer_days.prompt_tokens + excluded.prompt_tokens,"
        " completion_tokens = customer_days.completion_tokens + excluded.completion_tokens,"
        " latency_sum = customer_days.latency_sum + excluded.latency_sum,"
        " ttft_sum = customer_days.ttft_sum + excluded.ttft_sum,"
        " ttft_n = customer_days.ttft_n + excluded.ttft_n,"
        " first_us = CASE WHEN excluded.first_us < customer_days.first_us"
        " THEN excluded.first_us ELSE customer_days.first_us END,"
        " last_us = CASE WHEN excluded.last_us > customer_days.last_us"
        " THEN excluded.last_us ELSE customer_days.last_us END";
    if (sqlite3_prepare_v2(s->db, log_sql, -1, &s->insert_log, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, score_sql, -1, &s->insert_score, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, day_sql, -1, &s->add_day, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO log_hours (hour_us, environment, env_null, is_test, n)"
                           " VALUES (?,?,?,?,?) ON CONFLICT (hour_us, environment, env_null,"
                           " is_test) DO UPDATE SET n = log_hours.n + excluded.n",
                           -1, &s->add_hour, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing inserts");
    return RC_OK;
}

static void sqlite_close(rc_usage_store *s)
{
    if (!s) return;
    sqlite3_finalize(s->insert_log);
    sqlite3_finalize(s->insert_score);
    sqlite3_finalize(s->add_day);
    sqlite3_finalize(s->add_hour);
    if (s->db) sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static rc_status configure(rc_usage_store *s, rc_error *err)
{
    /* WAL: readers (the API) never wait for the writer, nor it for them.
     * case_sensitive_like: LIKE then behaves as PostgreSQL's, so `contains`
     * respects case and `icontains` says so with LOWER. */
    static const char *const pragmas = "PRAGMA journal_mode=WAL;"
                                       "PRAGMA synchronous=NORMAL;"
                                       "PRAGMA case_sensitive_like=ON;";
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "setting WAL mode");
    if (sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "creating the schema");
    rc_status st = check_version(s, err);
    if (st == RC_OK && sqlite3_exec(s->db, index_sql, NULL, NULL, NULL) != SQLITE_OK)
        st = db_error(s, err, "creating the indexes");
    return st == RC_OK ? prepare_inserts(s, err) : st;
}

static rc_status sqlite_open(const rc_usage_store_config *cfg, rc_usage_store **out, rc_error *err)
{
    *out = NULL;
    const char *dir = cfg && cfg->directory && cfg->directory[0] ? cfg->directory : "./data";
    rc_status st = make_dirs(dir, err);
    if (st != RC_OK) return st;
    rc_usage_store *s = calloc(1, sizeof *s);
    size_t n = strlen(dir) + sizeof "/" DB_FILE;
    if (!s || !(s->path = malloc(n))) {
        free(s);
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    snprintf(s->path, n, "%s/%s", dir, DB_FILE);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(s->path, &s->db, flags, NULL) != SQLITE_OK) {
        st = s->db ? db_error(s, err, "opening")
                   : (rc_error_set(err, "usage store %s: cannot open", s->path), RC_EIO);
    } else {
        st = configure(s, err);
    }
    if (st != RC_OK) {
        sqlite_close(s);
        return st;
    }
    *out = s;
    return RC_OK;
}

/* --- writing ------------------------------------------------------------------------- */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_real(sqlite3_stmt *st, int i, double d)
{
    if (isfinite(d))
        sqlite3_bind_double(st, i, d);
    else
        sqlite3_bind_null(st, i);
}

/* The row's LLM call into its customer's day (customer_days). */
static bool add_to_rollup(rc_usage_store *s, const rc_usage_row *r)
{
    sqlite3_stmt *d = s->add_day;
    int64_t day = r->time_us / DAY_US * DAY_US;
    if (r->time_us < 0 && r->time_us % DAY_US) day -= DAY_US;
    bool ttft = isfinite(r->time_to_first_token);
    sqlite3_reset(d);
    sqlite3_bind_text(d, 1, r->customer_identifier, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d, 2, day);
    sqlite3_bind_text(d, 3, r->environment ? r->environment : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 4, r->model ? r->model : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(d, 5, isfinite(r->cost) ? r->cost : 0);
    sqlite3_bind_int64(d, 6, r->prompt_tokens);
    sqlite3_bind_int64(d, 7, r->completion_tokens);
    sqlite3_bind_double(d, 8, isfinite(r->latency) ? r->latency : 0);
    sqlite3_bind_double(d, 9, ttft ? r->time_to_first_token : 0);
    sqlite3_bind_int(d, 10, ttft);
    sqlite3_bind_int64(d, 11, r->time_us);
    sqlite3_bind_int64(d, 12, r->time_us);
    return sqlite3_step(d) == SQLITE_DONE;
}

static bool insert_row(rc_usage_store *s, const rc_usage_row *r)
{
    sqlite3_stmt *st = s->insert_log;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, r->time_us);
    bind_text(st, 2, r->customer_identifier);
    bind_text(st, 3, r->model);
    bind_text(st, 4, r->provider_id);
    bind_text(st, 5, r->log_type);
    bind_text(st, 6, r->environment);
    sqlite3_bind_int(st, 7, r->is_test);
    sqlite3_bind_int64(st, 8, r->prompt_tokens);
    sqlite3_bind_int64(st, 9, r->completion_tokens);
    sqlite3_bind_int64(st, 10, r->prompt_tokens + r->completion_tokens);
    sqlite3_bind_double(st, 11, isfinite(r->cost) ? r->cost : 0);
    bind_real(st, 12, r->latency);
    bind_real(st, 13, r->time_to_first_token);
    sqlite3_bind_int(st, 14, r->status_code);
    bind_text(st, 15, r->status);
    bind_text(st, 16, r->metadata);
    bind_text(st, 17, r->trace_unique_id);
    bind_text(st, 18, r->span_unique_id);
    bind_text(st, 19, r->span_name);
    bind_text(st, 20, r->input);
    bind_text(st, 21, r->output);
    if (sqlite3_step(st) != SQLITE_DONE) return false;
    sqlite3_int64 id = sqlite3_last_insert_rowid(s->db);
    if (r->llm_call && r->customer_identifier && !add_to_rollup(s, r)) return false;
    for (size_t i = 0; i < r->n_scores; i++) {
        const rc_usage_score *sc = &r->scores[i];
        if (!sc->slug || !isfinite(sc->value)) continue;
        sqlite3_stmt *ss = s->insert_score;
        sqlite3_reset(ss);
        sqlite3_bind_int64(ss, 1, id);
        sqlite3_bind_text(ss, 2, sc->slug, -1, SQLITE_STATIC);
        sqlite3_bind_int(ss, 3, sc->is_bool);
        sqlite3_bind_double(ss, 4, sc->value);
        bind_text(ss, 5, r->customer_identifier);
        sqlite3_bind_int64(ss, 6, r->time_us);
        bind_text(ss, 7, r->environment);
        sqlite3_bind_int(ss, 8, r->is_test);
        if (sqlite3_step(ss) != SQLITE_DONE) return false;
    }
    return true;
}

static int64_t hour_of(int64_t us)
{
    int64_t h = us / HOUR_US * HOUR_US;
    return us < 0 && us % HOUR_US ? h - HOUR_US : h;
}

/* A batch's logs per hour, environment and test flag, added to log_hours
 * in one statement each: a batch mostly falls in one or two. */
typedef struct hour_count {
    int64_t hour_us;
    const char *environment; /* the row's: NULL for none */
    bool is_test;
    int64_t n;
} hour_count;

static bool same_env(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool add_hours(rc_usage_store *s, const rc_usage_row *rows, size_t n)
{
    hour_count counts[32];
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        const rc_usage_row *r = i < n ? &rows[i] : NULL;
        size_t j = 0;
        if (r)
            for (; j < k; j++)
                if (counts[j].hour_us == hour_of(r->time_us) && counts[j].is_test == r->is_test &&
                    same_env(counts[j].environment, r->environment))
                    break;
        if (r && j < k) {
            counts[j].n++;
            continue;
        }
        if (!r || k == sizeof counts / sizeof *counts) { /* flush what is counted */
            for (j = 0; j < k; j++) {
                sqlite3_stmt *st = s->add_hour;
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, counts[j].hour_us);
                sqlite3_bind_text(st, 2, counts[j].environment ? counts[j].environment : "", -1,
                                  SQLITE_STATIC);
                sqlite3_bind_int(st, 3, counts[j].environment == NULL);
                sqlite3_bind_int(st, 4, counts[j].is_test);
                sqlite3_bind_int64(st, 5, counts[j].n);
                if (sqlite3_step(st) != SQLITE_DONE) return false;
            }
            k = 0;
        }
        if (r) counts[k++] = (hour_count){hour_of(r->time_us), r->environment, r->is_test, 1};
    }
    sqlite3_reset(s->add_hour);
    sqlite3_clear_bindings(s->add_hour);
    return true;
}

static rc_status sqlite_write_batch(rc_usage_store *s, const rc_usage_row *rows, size_t n,
                                    rc_error *err)
{
    if (n == 0) return RC_OK;
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "beginning a batch");
    for (size_t i = 0; i <= n; i++) {
        if (i == n ? !add_hours(s, rows, n) : !insert_row(s, &rows[i])) {
            rc_status st = db_error(s, err, "writing a request log");
            sqlite3_reset(s->insert_log);
            sqlite3_reset(s->insert_score);
            sqlite3_reset(s->add_day);
            sqlite3_reset(s->add_hour);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return st;
        }
    }
    /* The statements hold the caller's strings (SQLITE_STATIC): reset
     * them before the rows go away. */
    sqlite3_reset(s->insert_log);
    sqlite3_reset(s->insert_score);
    sqlite3_reset(s->add_day);
    sqlite3_clear_bindings(s->add_day);
    sqlite3_clear_bindings(s->insert_log);
    sqlite3_clear_bindings(s->insert_score);
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc_status st = db_error(s, err, "committing a batch");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    return RC_OK;
}

static rc_status sqlite_expire(rc_usage_store *s, int64_t before_us, uint64_t *deleted,
                               rc_error *err)
{
    /* The hourly counts go with the logs: whole hours before the cutoff's,
     * and the cutoff's own hour counted again from what is left of it. */
    static const char *const sql[5] = {
        "DELETE FROM scores WHERE log_id IN (SELECT id FROM request_logs WHERE time_us < ?1)",
        "DELETE FROM request_logs WHERE time_us < ?1", "DELETE FROM log_hours WHERE hour_us <= ?2",
        "INSERT INTO log_hours (hour_us, environment, env_null, is_test, n)"
        " SELECT ?2, COALESCE(environment, ''), environment IS NULL, is_test, COUNT(*)"
        " FROM request_logs WHERE time_us >= ?2 AND time_us < ?2 + 3600000000"
        " GROUP BY 2, 3, 4",
        NULL};
    if (deleted) *deleted = 0;
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "beginning expiry");
    for (int i = 0; sql[i]; i++) {
        sqlite3_stmt *st = NULL;
        bool ok = sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) == SQLITE_OK &&
                  sqlite3_bind_int64(st, 1, before_us) == SQLITE_OK &&
                  (sqlite3_bind_parameter_count(st) < 2 ||
                   sqlite3_bind_int64(st, 2, hour_of(before_us)) == SQLITE_OK) &&
                  sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
        if (!ok) {
            rc_status rc = db_error(s, err, "expiring old logs");
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        if (i == 1 && deleted) *deleted = (uint64_t)sqlite3_changes(s->db);
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc_status rc = db_error(s, err, "committing expiry");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return RC_OK;
}

/* --- the WHERE clause -------------------------------------------------------------------- */

typedef enum { B_TEXT, B_REAL, B_INT } bind_kind;

typedef struct bind {
    bind_kind kind;
    char *text; /* owned */
    double real;
    int64_t i;
} bind;

/* Query text and its parameters, in order. */
typedef struct query {
    rc_buf sql;
    bind *binds;
    size_t n, cap;
    bool failed;
} query;

static void q_free(query *q)
{
    rc_buf_free(&q->sql);
    for (size_t i = 0; i < q->n; i++)
        free(q->binds[i].text);
    free(q->binds);
    memset(q, 0, sizeof *q);
}

static bind *q_param(query *q)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        bind *b = realloc(q->binds, cap * sizeof *b);
        if (!b) {
            q->failed = true;
            return NULL;
        }
        q->binds = b;
        q->cap = cap;
    }
    bind *b = &q->binds[q->n++];
    memset(b, 0, sizeof *b);
    rc_buf_putc(&q->sql, '?');
    return b;
}

/* A text parameter: prefix + value (with LIKE's wildcards escaped when
 * `like`) + suffix. */
static void q_text(query *q, const char *prefix, const char *v, bool like, const char *suffix)
{
    bind *b = q_param(q);
    if (!b) return;
    rc_buf t = RC_BUF_INIT;
    rc_buf_puts(&t, prefix);
    for (const char *p = v; *p; p++) {
        if (like && (*p == '%' || *p == '_' || *p == '\\')) rc_buf_putc(&t, '\\');
        rc_buf_putc(&t, *p);
    }
    rc_buf_puts(&t, suffix);
    rc_buf_putc(&t, 0);
    b->kind = B_TEXT;
    b->text = t.data;
    if (t.failed) q->failed = true;
}

static void q_real(query *q, double d)
{
    bind *b = q_param(q);
    if (b) *b = (bind){.kind = B_REAL, .real = d};
}

static void q_int(query *q, int64_t i)
{
    bind *b = q_param(q);
    if (b) *b = (bind){.kind = B_INT, .i = i};
}

/* SQLite-only: a metadata value by key, through the JSON1 functions.
 * PostgreSQL would read (metadata::jsonb ->> $n). The key is a bound
 * parameter inside a quoted JSON path; filter.c refused keys holding a
 * quote or a backslash, which could change the path. */
static void metadata_expr(query *q, const char *key)
{
    rc_buf_puts(&q->sql, "json_extract(metadata, ");
    q_text(q, "$.\"", key, false, "\"");
    rc_buf_putc(&q->sql, ')');
}

static void term_expr(query *q, const rc_usage_term *t)
{
    if (t->kind == RC_UF_METADATA)
        metadata_expr(q, t->metadata_key);
    else
        rc_buf_puts(&q->sql, t->column);
}

static void term_value(query *q, const rc_usage_term *t, const char *v)
{
    if (t->kind == RC_UF_NUMBER)
        q_real(q, strtod(v, NULL));
    else
        q_text(q, "", v, false, "");
}

static void term_in(query *q, const rc_usage_term *t, const rc_usage_cond *c, bool negate)
{
    rc_buf_putc(&q->sql, '(');
    if (negate) {
        term_expr(q, t);
        rc_buf_puts(&q->sql, " IS NULL OR ");
    }
    term_expr(q, t);
    rc_buf_puts(&q->sql, negate ? " NOT IN (" : " IN (");
    for (size_t i = 0; i < c->n_values; i++) {
        if (i) rc_buf_putc(&q->sql, ',');
        term_value(q, t, c->values[i]);
    }
    rc_buf_puts(&q->sql, "))");
}

static void term_compare(query *q, const rc_usage_term *t, const char *v, const char *op)
{
    char *end = NULL;
    double d = strtod(v, &end);
    bool numeric = t->kind == RC_UF_NUMBER || (v[0] && *end == 0 && isfinite(d));
    if (t->kind == RC_UF_METADATA && numeric) {
        /* metadata values are text; a number compares as a number */
        rc_buf_puts(&q->sql, "CAST(");
        term_expr(q, t);
        rc_buf_puts(&q->sql, " AS DOUBLE PRECISION)");
    } else {
        term_expr(q, t);
    }
    rc_buf_puts(&q->sql, op);
    if (numeric)
        q_real(q, d);
    else
        q_text(q, "", v, false, "");
}

/* Any of the values, each by LIKE with the pattern around it. */
static void term_like(query *q, const rc_usage_term *t, const rc_usage_cond *c, bool fold,
                      const char *pre, const char *post)
{
    rc_buf_putc(&q->sql, '(');
    for (size_t i = 0; i < c->n_values; i++) {
        if (i) rc_buf_puts(&q->sql, " OR ");
        if (fold) rc_buf_puts(&q->sql, "LOWER(");
        term_expr(q, t);
        rc_buf_puts(&q->sql, fold ? ") LIKE LOWER(" : " LIKE ");
        q_text(q, pre, c->values[i], true, post);
        rc_buf_puts(&q->sql, fold ? ") ESCAPE '\\'" : " ESCAPE '\\'");
    }
    rc_buf_putc(&q->sql, ')');
}

static void term_iexact(query *q, const rc_usage_term *t, const rc_usage_cond *c)
{
    rc_buf_putc(&q->sql, '(');
    for (size_t i = 0; i < c->n_values; i++) {
        if (i) rc_buf_puts(&q->sql, " OR ");
        rc_buf_puts(&q->sql, "LOWER(");
        term_expr(q, t);
        rc_buf_puts(&q->sql, ") = LOWER(");
        q_text(q, "", c->values[i], false, "");
        rc_buf_putc(&q->sql, ')');
    }
    rc_buf_putc(&q->sql, ')');
}

static void add_term(query *q, const rc_usage_term *t, const rc_usage_cond *c)
{
    static const char *const cmp[] = {
        [RC_UOP_LT] = " < ", [RC_UOP_LTE] = " <= ", [RC_UOP_GT] = " > ", [RC_UOP_GTE] = " >= "};
    rc_buf_puts(&q->sql, " AND ");
    switch (t->op) {
    case RC_UOP_EQ:
    case RC_UOP_IN:
        term_in(q, t, c, false);
        break;
    case RC_UOP_NOT:
        term_in(q, t, c, true);
        break;
    case RC_UOP_IEXACT:
        term_iexact(q, t, c);
        break;
    case RC_UOP_LT:
    case RC_UOP_LTE:
    case RC_UOP_GT:
    case RC_UOP_GTE:
        term_compare(q, t, c->values[0], cmp[t->op]);
        break;
    case RC_UOP_CONTAINS:
    case RC_UOP_ICONTAINS:
        term_like(q, t, c, t->op == RC_UOP_ICONTAINS, "%", "%");
        break;
    case RC_UOP_STARTSWITH:
        term_like(q, t, c, false, "", "%");
        break;
    case RC_UOP_ENDSWITH:
        term_like(q, t, c, false, "%", "");
        break;
    case RC_UOP_ISNULL:
        term_expr(q, t);
        rc_buf_puts(&q->sql, strcmp(c->values[0], "true") == 0 ? " IS NULL" : " IS NOT NULL");
        break;
    }
}

/* The environment rules of store.h. */
static void add_environment(query *q, const rc_usage_filter *f)
{
    if (f->is_test) {
        rc_buf_puts(&q->sql, " AND is_test = 1");
    } else {
        rc_buf_puts(&q->sql, " AND is_test = 0");
        if (f->all_envs) return;
        if (!f->environment) {
            rc_buf_puts(&q->sql, " AND (environment IS NULL OR environment IN "
                                 "('prod', 'production'))");
            return;
        }
    }
    if (f->environment) {
        rc_buf_puts(&q->sql, " AND environment = ");
        q_text(q, "", f->environment, false, "");
    }
}

/* " WHERE ..." for the filter, into q; RC_EINVAL naming a bad condition. */
static rc_status build_where(query *q, const rc_usage_filter *f, rc_error *err)
{
    rc_buf_puts(&q->sql, " WHERE time_us >= ");
    q_int(q, f->start_us);
    rc_buf_puts(&q->sql, " AND time_us <= ");
    q_int(q, f->end_us);
    add_environment(q, f);
    for (size_t i = 0; i < f->n_conds; i++) {
        rc_usage_term t;
        rc_status st = rc_usage_term_of(&f->conds[i], &t, err);
        if (st != RC_OK) return st;
        add_term(q, &t, &f->conds[i]);
    }
    if (q->failed || q->sql.failed) {
        rc_error_set(err, "out of memory building a query");
        return RC_ENOMEM;
    }
    return RC_OK;
}

/* Prepares head + where + tail and binds the where's parameters, then
 * `extra` more integers (LIMIT, OFFSET). */
static rc_status prepare(rc_usage_store *s, const char *head, const query *where, const char *tail,
                         const int64_t *extra, size_t n_extra, sqlite3_stmt **out, rc_error *err)
{
    rc_buf sql = RC_BUF_INIT;
    rc_buf_puts(&sql, head);
    if (where) rc_buf_append(&sql, where->sql.data, where->sql.len);
    rc_buf_puts(&sql, tail);
    rc_buf_putc(&sql, 0);
    *out = NULL;
    if (sql.failed) {
        rc_buf_free(&sql);
        rc_error_set(err, "out of memory building a query");
        return RC_ENOMEM;
    }
    int rc = sqlite3_prepare_v2(s->db, sql.data, -1, out, NULL);
    rc_buf_free(&sql);
    if (rc != SQLITE_OK) return db_error(s, err, "preparing a query");
    int i = 1;
    for (size_t k = 0; where && k < where->n; k++, i++) {
        const bind *b = &where->binds[k];
        if (b->kind == B_TEXT)
            sqlite3_bind_text(*out, i, b->text, -1, SQLITE_TRANSIENT);
        else if (b->kind == B_REAL)
            sqlite3_bind_double(*out, i, b->real);
        else
            sqlite3_bind_int64(*out, i, b->i);
    }
    for (size_t k = 0; k < n_extra; k++, i++)
        sqlite3_bind_int64(*out, i, extra[k]);
    return RC_OK;
}

/* --- the summary ---------------------------------------------------------------------------- */

static rc_status summary_totals(rc_usage_store *s, const query *w, rc_usage_summary *out,
                                rc_error *err)
{
    sqlite3_stmt *st;
    rc_status rc = prepare(s,
                           "SELECT COALESCE(SUM(cost), 0),"
                           " COALESCE(SUM(prompt_tokens + completion_tokens), 0), COUNT(*)"
                           " FROM request_logs",
                           w, "", NULL, 0, &st, err);
    if (rc != RC_OK) return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->total_cost = sqlite3_column_double(st, 0);
        out->total_tokens = sqlite3_column_int64(st, 1);
        out->number_of_requests = (uint64_t)sqlite3_column_int64(st, 2);
    } else {
        rc = db_error(s, err, "summing logs");
    }
    sqlite3_finalize(st);
    return rc;
}

static bool add_score(rc_usage_summary *out, sqlite3_stmt *st)
{
    rc_usage_score_summary *grown = realloc(out->scores, (out->n_scores + 1) * sizeof *out->scores);
    if (!grown) return false;
    out->scores = grown;
    rc_usage_score_summary *sc = &out->scores[out->n_scores];
    memset(sc, 0, sizeof *sc);
    sc->slug = strdup((const char *)sqlite3_column_text(st, 0));
    if (!sc->slug) return false;
    out->n_scores++;
    sc->is_bool = sqlite3_column_int(st, 1) != 0;
    sc->n = (uint64_t)sqlite3_column_int64(st, 4);
    if (sc->is_bool) {
        sc->true_count = (uint64_t)sqlite3_column_int64(st, 3);
        sc->false_count = sc->n - sc->true_count;
    } else {
        sc->avg_score = sqlite3_column_double(st, 2);
    }
    return true;
}

/* Scores are read one of three ways, the cheapest for the filter:
 *  - a filter on the window, the environment and the customer only (the
 *    common summary) reads the scores table alone, through scores_customer:
 *    scores carry those columns;
 *  - past SCORE_SCAN_ABOVE matching logs, the scores table is scanned and
 *    each score's log checked: scores are sparser than logs, so for a filter
 *    matching most logs this reads far fewer rows;
 *  - otherwise each matching log's scores are looked up.
 * (Over a million logs with a fifth scored: a filter matching 565k logs,
 * 1.07 s by lookups, 0.18 s by the scan; one matching 164, 1 ms against
 * the scan's 170 ms.) */
#define SCORE_SCAN_ABOVE 20000

static bool scores_alone(const rc_usage_filter *f)
{
    for (size_t i = 0; i < f->n_conds; i++)
        if (strcmp(f->conds[i].field, "customer_identifier") != 0) return false;
    return true;
}

static rc_status summary_scores(rc_usage_store *s, const rc_usage_filter *f, const query *w,
                                rc_usage_summary *out, rc_error *err)
{
#define SCORE_COLS                                                                                 \
    "SELECT slug, is_bool, AVG(value), SUM(CASE WHEN value <> 0 THEN 1 ELSE 0 END), COUNT(*)"
#define SCORE_GROUPS " GROUP BY slug, is_bool ORDER BY slug, is_bool"
    sqlite3_stmt *st;
    rc_status rc;
    if (scores_alone(f))
        rc = prepare(s, SCORE_COLS " FROM scores", w, SCORE_GROUPS, NULL, 0, &st, err);
    else if (out->number_of_requests > SCORE_SCAN_ABOVE)
        rc = prepare(s, SCORE_COLS " FROM scores WHERE EXISTS (SELECT 1 FROM request_logs", w,
                     " AND request_logs.id = scores.log_id)" SCORE_GROUPS, NULL, 0, &st, err);
    else
        rc = prepare(s, SCORE_COLS " FROM scores WHERE log_id IN (SELECT id FROM request_logs", w,
                     ")" SCORE_GROUPS, NULL, 0, &st, err);
    if (rc != RC_OK) return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (!add_score(out, st)) {
            rc_error_set(err, "out of memory reading scores");
            rc = RC_ENOMEM;
            break;
        }
    }
    if (rc == RC_OK && step != SQLITE_DONE) rc = db_error(s, err, "reading scores");
    sqlite3_finalize(st);
    return rc;
}

static rc_status sqlite_query_summary(rc_usage_store *s, const rc_usage_filter *f,
                                      rc_usage_summary *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    query w = {0};
    rc_status rc = build_where(&w, f, err);
    /* Both reads in one transaction, so totals and scores agree. */
    if (rc == RC_OK && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_error(s, err, "beginning a read");
    if (rc == RC_OK) {
        rc = summary_totals(s, &w, out, err);
        if (rc == RC_OK) rc = summary_scores(s, f, &w, out, err);
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    q_free(&w);
    if (rc != RC_OK) rc_usage_summary_free(out);
    return rc;
}

/* --- the list ------------------------------------------------------------------------------- */

/* ORDER BY from a fixed table: sort_by is the client's text. */
static const char *order_by(const char *sort_by, const char *const (*table)[2], size_t n,
                            rc_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(sort_by, table[i][0]) == 0) return table[i][1];
    rc_error_set(err, "unknown sort_by \"%s\"", sort_by);
    return NULL;
}

static const char *const log_orders[][2] = {
    {"timestamp", " ORDER BY time_us ASC, id ASC"},
    {"-timestamp", " ORDER BY time_us DESC, id DESC"},
    {"cost", " ORDER BY cost ASC, id ASC"},
    {"-cost", " ORDER BY cost DESC, id DESC"},
    {"latency", " ORDER BY latency ASC, id ASC"},
    {"-latency", " ORDER BY latency DESC, id DESC"},
    {"prompt_tokens", " ORDER BY prompt_tokens ASC, id ASC"},
    {"-prompt_tokens", " ORDER BY prompt_tokens DESC, id DESC"},
    {"completion_tokens", " ORDER BY completion_tokens ASC, id ASC"},
    {"-completion_tokens", " ORDER BY completion_tokens DESC, id DESC"},
    {"total_tokens", " ORDER BY total_tokens ASC, id ASC"},
    {"-total_tokens", " ORDER BY total_tokens DESC, id DESC"},
};

static rc_status check_page(const rc_usage_page *p, int64_t limit_offset[2], rc_error *err)
{
    uint64_t page = p && p->page ? p->page : 1;
    uint64_t size = p && p->page_size ? p->page_size : 100;
    if (size > MAX_PAGE_SIZE) {
        rc_error_set(err, "page_size %llu is over the maximum of %d", (unsigned long long)size,
                     MAX_PAGE_SIZE);
        return RC_EINVAL;
    }
    if (page > (uint64_t)INT64_MAX / size) {
        rc_error_set(err, "page %llu is out of range", (unsigned long long)page);
        return RC_EINVAL;
    }
    limit_offset[0] = (int64_t)size;
    limit_offset[1] = (int64_t)((page - 1) * size);
    return RC_OK;
}

static char *col_strdup(sqlite3_stmt *st, int i, bool *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) return NULL;
    char *s = strdup((const char *)t);
    if (!s) *oom = true;
    return s;
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static bool read_log(sqlite3_stmt *st, rc_usage_log *l)
{
    bool oom = false;
    memset(l, 0, sizeof *l);
    l->time_us = sqlite3_column_int64(st, 0);
    l->customer_identifier = col_strdup(st, 1, &oom);
    l->model = col_strdup(st, 2, &oom);
    l->provider_id = col_strdup(st, 3, &oom);
    l->log_type = col_strdup(st, 4, &oom);
    l->environment = col_strdup(st, 5, &oom);
    l->is_test = sqlite3_column_int(st, 6) != 0;
    l->prompt_tokens = sqlite3_column_int64(st, 7);
    l->completion_tokens = sqlite3_column_int64(st, 8);
    l->total_tokens = sqlite3_column_int64(st, 9);
    l->cost = sqlite3_column_double(st, 10);
    l->latency = col_real(st, 11);
    l->time_to_first_token = col_real(st, 12);
    l->status_code = sqlite3_column_int(st, 13);
    l->status = col_strdup(st, 14, &oom);
    l->metadata = col_strdup(st, 15, &oom);
    l->trace_unique_id = col_strdup(st, 16, &oom);
    l->span_unique_id = col_strdup(st, 17, &oom);
    l->span_name = col_strdup(st, 18, &oom);
    l->input = col_strdup(st, 19, &oom);
    l->output = col_strdup(st, 20, &oom);
    return !oom;
}

static rc_status count_rows(rc_usage_store *s, const char *head, const query *w, const char *tail,
                            uint64_t *count, rc_error *err)
{
    sqlite3_stmt *st;
    rc_status rc = prepare(s, head, w, tail, NULL, 0, &st, err);
    if (rc != RC_OK) return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = db_error(s, err, "counting");
    sqlite3_finalize(st);
    return rc;
}

static rc_status list_page(rc_usage_store *s, const query *w, const char *order,
                           const int64_t lo[2], rc_usage_list *out, rc_error *err)
{
    sqlite3_stmt *st;
    char tail[128];
    snprintf(tail, sizeof tail, "%s LIMIT ? OFFSET ?", order);
    rc_status rc = prepare(s, "SELECT " LOG_COLUMNS " FROM request_logs", w, tail, lo, 2, &st, err);
    if (rc != RC_OK) return rc;
    out->logs = calloc((size_t)lo[0] ? (size_t)lo[0] : 1, sizeof *out->logs);
    if (!out->logs) rc = (rc_error_set(err, "out of memory"), RC_ENOMEM);
    int step = SQLITE_DONE;
    while (rc == RC_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        bool ok = read_log(st, &out->logs[out->n_logs]);
        out->n_logs++; /* counted even when partial, so that it is freed */
        if (!ok) rc = (rc_error_set(err, "out of memory reading logs"), RC_ENOMEM);
    }
    if (rc == RC_OK && step != SQLITE_DONE) rc = db_error(s, err, "reading logs");
    sqlite3_finalize(st);
    return rc;
}

/* The environment rules of add_environment, on log_hours' columns. */
static void hours_environment(query *q, const rc_usage_filter *f)
{
    rc_buf_puts(&q->sql, f->is_test ? " AND is_test = 1" : " AND is_test = 0");
    if (!f->is_test && f->all_envs) return;
    if (!f->is_test && !f->environment) {
        rc_buf_puts(&q->sql, " AND (env_null = 1 OR environment IN ('prod', 'production'))");
        return;
    }
    if (f->environment) {
        rc_buf_puts(&q->sql, " AND env_null = 0 AND environment = ");
        q_text(q, "", f->environment, false, "");
    }
}

/* Logs of window [a, b] under f's environment rules, from the logs. */
static rc_status count_span(rc_usage_store *s, const rc_usage_filter *f, int64_t a, int64_t b,
                            uint64_t *n, rc_error *err)
{
    *n = 0;
    if (a > b) return RC_OK;
    rc_usage_filter part = *f;
    part.start_us = a;
    part.end_us = b;
    query w = {0};
    rc_status rc = build_where(&w, &part, err);
    if (rc == RC_OK) rc = count_rows(s, "SELECT COUNT(*) FROM request_logs", &w, "", n, err);
    q_free(&w);
    return rc;
}

/* How many logs the filter matches. With conditions, counted in the logs
 * (through whichever index serves them). Without, over a window holding
 * whole hours: those hours from log_hours, the partial hours at the edges
 * from the logs, so a day's count reads 24 rows and two hours of index
 * instead of a day of it. */
static rc_status count_logs(rc_usage_store *s, const rc_usage_filter *f, const query *w,
                            uint64_t *count, rc_error *err)
{
    int64_t first = hour_of(f->start_us - 1) + HOUR_US; /* the first whole hour */
    int64_t end = hour_of(f->end_us + 1);               /* where whole hours stop */
    if (f->n_conds || first >= end)
        return count_rows(s, "SELECT COUNT(*) FROM request_logs", w, "", count, err);
    query h = {0};
    rc_buf_puts(&h.sql, " WHERE hour_us >= ");
    q_int(&h, first);
    rc_buf_puts(&h.sql, " AND hour_us < ");
    q_int(&h, end);
    hours_environment(&h, f);
    uint64_t whole = 0, before = 0, after = 0;
    rc_status rc =
        h.failed || h.sql.failed
            ? (rc_error_set(err, "out of memory"), RC_ENOMEM)
            : count_rows(s, "SELECT COALESCE(SUM(n), 0) FROM log_hours", &h, "", &whole, err);
    q_free(&h);
    if (rc == RC_OK) rc = count_span(s, f, f->start_us, first - 1, &before, err);
    if (rc == RC_OK) rc = count_span(s, f, end, f->end_us, &after, err);
    *count = whole + before + after;
    return rc;
}

static rc_status sqlite_query_list(rc_usage_store *s, const rc_usage_filter *f,
                                   const rc_usage_page *p, rc_usage_list *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t lo[2];
    const char *order = order_by(p && p->sort_by ? p->sort_by : "-timestamp", log_orders,
                                 sizeof log_orders / sizeof *log_orders, err);
    if (!order) return RC_EINVAL;
    rc_status rc = check_page(p, lo, err);
    if (rc != RC_OK) return rc;
    query w = {0};
    rc = build_where(&w, f, err);
    if (rc == RC_OK && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_error(s, err, "beginning a read");
    if (rc == RC_OK) {
        rc = count_logs(s, f, &w, &out->count, err);
        if (rc == RC_OK) rc = list_page(s, &w, order, lo, out, err);
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    q_free(&w);
    if (rc != RC_OK) rc_usage_list_free(out);
    return rc;
}

/* --- users ---------------------------------------------------------------------------------- */

static const char *const user_orders[][2] = {
    {"customer_identifier", " ORDER BY customer_identifier ASC"},
    {"-customer_identifier", " ORDER BY customer_identifier DESC"},
    {"total_usage", " ORDER BY 2 ASC, customer_identifier ASC"},
    {"-total_usage", " ORDER BY 2 DESC, customer_identifier ASC"},
    {"total_requests", " ORDER BY 3 ASC, customer_identifier ASC"},
    {"-total_requests", " ORDER BY 3 DESC, customer_identifier ASC"},
    {"last_active", " ORDER BY 9 ASC, customer_identifier ASC"},
    {"-last_active", " ORDER BY 9 DESC, customer_identifier ASC"},
};

static bool read_user(sqlite3_stmt *st, rc_usage_user *u)
{
    bool oom = false;
    memset(u, 0, sizeof *u);
    u->customer_identifier = col_strdup(st, 0, &oom);
    u->total_usage = sqlite3_column_double(st, 1);
    u->total_requests = (uint64_t)sqlite3_column_int64(st, 2);
    u->total_prompt_tokens = sqlite3_column_int64(st, 3);
    u->total_completion_tokens = sqlite3_column_int64(st, 4);
    u->total_tokens = u->total_prompt_tokens + u->total_completion_tokens;
    u->average_latency = col_real(st, 5);
    u->average_ttft = col_real(st, 6);
    u->first_seen_us = sqlite3_column_int64(st, 7);
    u->last_active_us = sqlite3_column_int64(st, 8);
    return !oom;
}

/* Customers created (users API, config) that no LLM call names yet: a
 * customer exists once created, as in Respan. */
#define CREATED_ONLY " FROM customers WHERE customer NOT IN (SELECT customer FROM customer_days)"

static rc_status users_page(rc_usage_store *s, const query *w, const char *order, bool created,
                            const int64_t lo[2], rc_usage_users *out, rc_error *err)
{
    sqlite3_stmt *st;
    char tail[512];
    snprintf(tail, sizeof tail, " GROUP BY customer%s%s LIMIT ? OFFSET ?",
             created ? " UNION ALL SELECT customer, 0, 0, 0, 0, NULL, NULL, updated_us, "
                       "updated_us" CREATED_ONLY
                     : "",
             order);
    rc_status rc =
        prepare(s,
                "SELECT customer AS customer_identifier, SUM(cost), SUM(requests),"
                " SUM(prompt_tokens), SUM(completion_tokens), SUM(latency_sum) / SUM(requests),"
                " SUM(ttft_sum) / NULLIF(SUM(ttft_n), 0), MIN(first_us), MAX(last_us)"
                " FROM customer_days",
                w, tail, lo, 2, &st, err);
    if (rc != RC_OK) return rc;
    out->users = calloc((size_t)lo[0] ? (size_t)lo[0] : 1, sizeof *out->users);
    if (!out->users) rc = (rc_error_set(err, "out of memory"), RC_ENOMEM);
    int step = SQLITE_DONE;
    while (rc == RC_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        bool ok = read_user(st, &out->users[out->n_users]);
        out->n_users++;
        if (!ok) rc = (rc_error_set(err, "out of memory reading users"), RC_ENOMEM);
    }
    if (rc == RC_OK && step != SQLITE_DONE) rc = db_error(s, err, "reading users");
    sqlite3_finalize(st);
    return rc;
}

/* Customers from the daily rollups of LLM calls (customer_days), never a
 * scan of the logs; an environment "" is stored for logs without one. */
static rc_status sqlite_users(rc_usage_store *s, const char *environment, const char *customer,
                              const rc_usage_page *p, rc_usage_users *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t lo[2];
    const char *order = order_by(p && p->sort_by ? p->sort_by : "-last_active", user_orders,
                                 sizeof user_orders / sizeof *user_orders, err);
    if (!order) return RC_EINVAL;
    rc_status rc = check_page(p, lo, err);
    if (rc != RC_OK) return rc;
    query w = {0};
    rc_buf_puts(&w.sql, " WHERE 1 = 1");
    if (environment) {
        rc_buf_puts(&w.sql, " AND environment = ");
        q_text(&w, "", environment, false, "");
    }
    if (customer) {
        rc_buf_puts(&w.sql, " AND customer = ");
        q_text(&w, "", customer, false, "");
    }
    bool created = !environment && !customer;
    if (w.failed || w.sql.failed) rc = (rc_error_set(err, "out of memory"), RC_ENOMEM);
    if (rc == RC_OK && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_error(s, err, "beginning a read");
    if (rc == RC_OK) {
        rc = count_rows(s, "SELECT (SELECT COUNT(DISTINCT customer) FROM customer_days", &w,
                        created ? ") + (SELECT COUNT(*)" CREATED_ONLY ")" : ")", &out->count, err);
        if (rc == RC_OK) rc = users_page(s, &w, order, created, lo, out, err);
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    q_free(&w);
    if (rc != RC_OK) rc_usage_users_free(out);
    return rc;
}

/* --- customers ------------------------------------------------------------------------------ */

static void bind_opt_real(sqlite3_stmt *st, int i, double d)
{
    bind_real(st, i, d); /* NAN (not set) is NULL */
}

static void bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
    if (v)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static rc_status sqlite_put_customer(rc_usage_store *s, const rc_customer_record *r, rc_error *err)
{
    static const char sql[] =
        "INSERT INTO customers (customer, name, email, period_budget, total_budget,"
        " budget_duration, period_start_us, period_end_us, markup_percentage, rate_limit,"
        " metadata, source, updated_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (customer) DO UPDATE SET name = excluded.name, email = excluded.email,"
        " period_budget = excluded.period_budget, total_budget = excluded.total_budget,"
        " budget_duration = excluded.budget_duration,"
        " period_start_us = excluded.period_start_us, period_end_us = excluded.period_end_us,"
        " markup_percentage = excluded.markup_percentage, rate_limit = excluded.rate_limit,"
        " metadata = COALESCE(excluded.metadata, customers.metadata),"
        " source = excluded.source, updated_us = excluded.updated_us";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing a customer write");
    const rc_customer_settings *c = &r->s;
    bind_text(st, 1, r->customer_identifier);
    bind_text(st, 2, c->name);
    bind_text(st, 3, c->email);
    bind_opt_real(st, 4, c->period_budget);
    bind_opt_real(st, 5, c->total_budget);
    bind_text(st, 6, rc_budget_duration_name(c->duration));
    bind_opt_int(st, 7, c->period_start_us);
    bind_opt_int(st, 8, c->period_end_us);
    bind_opt_real(st, 9, c->markup_percentage);
    bind_opt_int(st, 10, c->rate_limit);
    bind_text(st, 11, r->metadata);
    bind_text(st, 12, r->source);
    sqlite3_bind_int64(st, 13, r->updated_us);
    rc_status rc = sqlite3_step(st) == SQLITE_DONE ? RC_OK : db_error(s, err, "writing a customer");
    sqlite3_finalize(st);
    return rc;
}

static double col_opt_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static rc_status sqlite_each_customer(rc_usage_store *s, const char *only,
                                      void (*fn)(void *arg, const rc_customer_record *r), void *arg,
                                      rc_error *err)
{
    static const char sql[] =
        "SELECT customer, name, email, period_budget, total_budget, budget_duration,"
        " period_start_us, period_end_us, markup_percentage, rate_limit, metadata, source,"
        " updated_us FROM customers WHERE (?1 IS NULL OR customer = ?1)";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing a customer read");
    bind_text(st, 1, only);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rc_customer_record r = {
            .customer_identifier = (const char *)sqlite3_column_text(st, 0),
            .s = {.name = (const char *)sqlite3_column_text(st, 1),
                  .email = (const char *)sqlite3_column_text(st, 2),
                  .period_budget = col_opt_real(st, 3),
                  .total_budget = col_opt_real(st, 4),
                  .period_start_us = sqlite3_column_int64(st, 6),
                  .period_end_us = sqlite3_column_int64(st, 7),
                  .markup_percentage = col_opt_real(st, 8),
                  .rate_limit = sqlite3_column_int64(st, 9)},
            .metadata = (const char *)sqlite3_column_text(st, 10),
            .source = (const char *)sqlite3_column_text(st, 11),
            .updated_us = sqlite3_column_int64(st, 12),
        };
        rc_budget_duration_parse((const char *)sqlite3_column_text(st, 5), &r.s.duration);
        if (r.customer_identifier) fn(arg, &r);
    }
    rc_status rc = step == SQLITE_DONE ? RC_OK : db_error(s, err, "reading customers");
    sqlite3_finalize(st);
    return rc;
}

static rc_status sqlite_each_customer_day(rc_usage_store *s,
                                          void (*fn)(void *arg, const char *id, int64_t day_us,
                                                     double cost, uint64_t requests),
                                          void *arg, rc_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT customer, day_us, cost, requests FROM customer_days"
                           " ORDER BY day_us",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing a rollup read");
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (id)
            fn(arg, id, sqlite3_column_int64(st, 1), sqlite3_column_double(st, 2),
               (uint64_t)sqlite3_column_int64(st, 3));
    }
    rc_status rc = step == SQLITE_DONE ? RC_OK : db_error(s, err, "reading rollups");
    sqlite3_finalize(st);
    return rc;
}

static rc_status sqlite_customer_cost(rc_usage_store *s, const char *customer, int64_t from_us,
                                      int64_t to_us, double *cost, rc_error *err)
{
    sqlite3_stmt *st;
    *cost = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT COALESCE(SUM(cost), 0) FROM customer_days"
                           " WHERE customer = ? AND day_us >= ? AND day_us < ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing a rollup sum");
    bind_text(st, 1, customer);
    sqlite3_bind_int64(st, 2, from_us);
    sqlite3_bind_int64(st, 3, to_us);
    rc_status rc = RC_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *cost = sqlite3_column_double(st, 0);
    else
        rc = db_error(s, err, "summing rollups");
    sqlite3_finalize(st);
    return rc;
}

static rc_status sqlite_top_models(rc_usage_store *s, const char *customer, size_t max, char ***out,
                                   size_t *n_out, rc_error *err)
{
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT model FROM customer_days WHERE customer = ?"
                           " AND model <> '' GROUP BY model"
                           " ORDER BY SUM(requests) DESC, model ASC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing a model read");
    bind_text(st, 1, customer);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    char **models = calloc(max ? max : 1, sizeof *models);
    rc_status rc = models ? RC_OK : (rc_error_set(err, "out of memory"), RC_ENOMEM);
    int step = SQLITE_DONE;
    bool oom = false;
    while (rc == RC_OK && *n_out < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
        models[*n_out] = col_strdup(st, 0, &oom);
        if (oom) rc = (rc_error_set(err, "out of memory"), RC_ENOMEM);
        (*n_out)++;
    }
    if (rc == RC_OK && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = db_error(s, err, "reading models");
    sqlite3_finalize(st);
    *out = models;
    return rc;
}

const rc_usage_store_ops rc_usage_sqlite_store = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .write_batch = sqlite_write_batch,
    .query_summary = sqlite_query_summary,
    .query_list = sqlite_query_list,
    .users = sqlite_users,
    .expire = sqlite_expire,
    .put_customer = sqlite_put_customer,
    .each_customer = sqlite_each_customer,
    .each_customer_day = sqlite_each_customer_day,
    .top_models = sqlite_top_models,
    .customer_cost = sqlite_customer_cost,
};
