/*
 * ledger.h - every customer's budget, usage and request rate, in memory,
 * so that "may this customer make another LLM call now?" is answered
 * without touching the store (issue 12).
 *
 * One ledger per process (rc_ledger_shared). The cost processor charges it
 * with each LLM span's cost, as it prices the span, and marks the span
 * when its customer is over budget or over its rate limit. The respan_api
 * extension reads it for the limits endpoint and the budget fields of the
 * users endpoints, and writes it when a customer is created or updated.
 * The usage exporter seeds it at start from the store's daily rollups, so
 * usage survives a restart; the request rate (a 60-second window) does not
 * need to.
 *
 * Budgets (Respan's users page): a customer may have a period budget over
 * daily, weekly, monthly or yearly periods (or a custom period_start /
 * period_end, rolled over by its own length), a lifetime total budget, and
 * a rate limit in requests per minute. Periods start on period_start
 * (default: the day of the first call counted), midnight UTC, and
 * roll over on their own; period usage restarts at each period, total usage
 * never does. Costs are charged as the cost processor reports them, markup
 * included.
 *
 * Threads: every function may be called from any thread (one mutex; each
 * call is a hash lookup and a few additions, well under a microsecond).
 * Strings passed in are copied.
 */
#ifndef RC_STORE_LEDGER_H
#define RC_STORE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rc_budget_duration {
    RC_BUDGET_NONE,
    RC_BUDGET_DAILY,
    RC_BUDGET_WEEKLY,
    RC_BUDGET_MONTHLY,
    RC_BUDGET_YEARLY,
} rc_budget_duration;

/* "daily" ... "yearly" -> the duration; false for anything else. */
bool rc_budget_duration_parse(const char *text, rc_budget_duration *out);
const char *rc_budget_duration_name(rc_budget_duration d); /* NULL for NONE */

/* "YYYY-MM-DD" (or a longer ISO 8601 time, whose date is taken) -> Unix
 * microseconds at midnight UTC; false when it is no date. */
bool rc_date_parse_us(const char *text, int64_t *out_us);

/* Which fields of rc_customer_settings a write sets; the others keep their
 * value (the latest write of each field wins). */
enum {
    RC_CS_NAME = 1u << 0,
    RC_CS_EMAIL = 1u << 1,
    RC_CS_PERIOD_BUDGET = 1u << 2,
    RC_CS_TOTAL_BUDGET = 1u << 3,
    RC_CS_DURATION = 1u << 4,
    RC_CS_PERIOD_START = 1u << 5,
    RC_CS_PERIOD_END = 1u << 6,
    RC_CS_MARKUP = 1u << 7,
    RC_CS_RATE_LIMIT = 1u << 8,
};

/* A customer's settings. Budgets and markup are NAN when not set, the rate
 * limit 0, dates 0. */
typedef struct rc_customer_settings {
    const char *name, *email;
    double period_budget, total_budget, markup_percentage;
    int64_t rate_limit; /* requests per minute */
    rc_budget_duration duration;
    int64_t period_start_us, period_end_us;
} rc_customer_settings;

/* What the ledger knows of one customer at a moment: its settings, where
 * they last came from, its usage and the current period. Strings are the
 * caller's copies (rc_customer_state_clear frees them). */
typedef struct rc_customer_state {
    rc_customer_settings s;
    char *name, *email, *source; /* s.name / s.email point here */
    int64_t updated_us;
    double total_usage, period_usage;
    uint64_t total_requests;
    int64_t period_start_us, period_end_us; /* the current period; 0 without budget period */
    uint64_t requests_last_minute;
    int64_t first_seen_us;
} rc_customer_state;

void rc_customer_state_clear(rc_customer_state *st);

/* The answer to "may this customer make another LLM call now?". */
typedef struct rc_limits_decision {
    bool allowed;
    const char *reason;         /* NULL when allowed: "period_budget_exceeded",
                                   "total_budget_exceeded" or "rate_limit_exceeded" */
    double retry_after_seconds; /* NAN when waiting does not help (total budget) or allowed */
} rc_limits_decision;

/* Flags rc_ledger_charge returns. */
enum { RC_LEDGER_OVER_BUDGET = 1u << 0, RC_LEDGER_OVER_RATE = 1u << 1 };

typedef struct rc_ledger rc_ledger;

/* The process's ledger, made on first use; never freed. NULL only when
 * memory ran out. */
rc_ledger *rc_ledger_shared(void);

/* Applies the fields of `set` named by `mask` to customer `id` (created
 * when unknown), noting source ("span", "api", "config") and the time.
 * A write that changes nothing (spans repeat their customer_params on
 * every call) is not a write: the settings keep their source and time. Returns false when memory
 * ran out. */
bool rc_ledger_set(rc_ledger *l, const char *id, const rc_customer_settings *set, unsigned mask,
                   const char *source, int64_t now_us);

/* The markup percentage set for customer id; false when none is. */
bool rc_ledger_markup(rc_ledger *l, const char *id, double *out);

/* Settings read back from the store at start: as rc_ledger_set with every
 * field, keeping the stored source and time, and not reported as changed. */
bool rc_ledger_load(rc_ledger *l, const char *id, const rc_customer_settings *set,
                    const char *source, int64_t updated_us);

/* One LLM call of customer id that cost `cost` USD (markup included) and
 * ended at time_us; the rate window counts it at time_us. Returns the
 * RC_LEDGER_* flags that hold once it is counted: over the period or total
 * budget (usage strictly above it), over the rate limit (more calls in the
 * last 60 s than the limit allows). */
unsigned rc_ledger_charge(rc_ledger *l, const char *id, double cost, int64_t time_us,
                          int64_t now_us);

/* Usage read back from the store at start: cost and calls of one customer
 * on the UTC day starting at day_us. Not counted in the rate window. */
void rc_ledger_seed_day(rc_ledger *l, const char *id, int64_t day_us, double cost,
                        uint64_t requests);

/* Customer id's usage in the period starting at period_start_us, counted
 * again from the store after its period was redefined. */
void rc_ledger_set_period_usage(rc_ledger *l, const char *id, int64_t period_start_us,
                                double usage);

/* Drops the seeded and charged usage of every customer (settings stay):
 * for a store that is seeded again. */
void rc_ledger_reset_usage(rc_ledger *l);

/* The decision for customer id at now_us. A customer the ledger does not
 * know is allowed (no budget, no limit). state (may be NULL) gets its
 * usage and settings, without the strings (name, email, source NULL). */
void rc_ledger_decide(rc_ledger *l, const char *id, int64_t now_us, rc_limits_decision *out,
                      rc_customer_state *state);

/* Customer id's state at now_us (its period rolled over to the one holding
 * now_us); false when the ledger does not know it. */
bool rc_ledger_get(rc_ledger *l, const char *id, int64_t now_us, rc_customer_state *out);

/* Customers whose settings changed since the last call, for the store to
 * persist: fn is called for each, outside no lock the caller could need
 * (with copies). */
void rc_ledger_take_changed(rc_ledger *l,
                            void (*fn)(void *arg, const char *id, const rc_customer_state *st),
                            void *arg);

/* --- budget alerts ---------------------------------------------------------------------- */

#define RC_LEDGER_MAX_THRESHOLDS 8

/* A customer's usage crossed a fraction of one of its budgets. */
typedef struct rc_budget_alert {
    const char *customer_identifier;
    const char *budget_type; /* "period" or "total" */
    double threshold;        /* the fraction crossed, e.g. 0.8 */
    double usage, budget;
    int64_t period_start_us, period_end_us; /* "period": the period; else 0 */
    int64_t time_us;                        /* of the call that crossed it */
} rc_budget_alert;

/* The fractions of a budget whose crossing raises an alert (at most
 * RC_LEDGER_MAX_THRESHOLDS; none by default). A crossing is noticed when a
 * call is charged: usage before it below the fraction, after it at or
 * above, so each fires once per period (period budgets) or once (total
 * budgets), and a restart, which seeds usage without charging, does not
 * fire again. */
void rc_ledger_set_alert_thresholds(rc_ledger *l, const double *fractions, size_t n);

/* Calls fn for each alert raised since the last call, oldest first (the
 * alert is valid during the call). Alerts wait in a bounded list; when it
 * is full the oldest goes, counted in *dropped (may be NULL). */
void rc_ledger_take_alerts(rc_ledger *l, void (*fn)(void *arg, const rc_budget_alert *a), void *arg,
                           uint64_t *dropped);

/* The Unix time in microseconds the collector's budgets and windows use:
 * the wall clock, shifted by RESPAN_COLLECTOR_CLOCK_OFFSET seconds when
 * that is set (a signed number), so that tests can move a month ahead
 * without waiting a month. */
int64_t rc_wall_now_us(void);

#endif
