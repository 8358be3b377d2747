/*
 * test_ledger.c - the in-memory budget ledger (store/ledger.h): dates and
 * durations parsed; the current period of daily, weekly, monthly, yearly
 * and custom periods; period usage restarting at each period while total
 * usage does not; the period and total budgets and the rate limit, as the
 * charge flags and as the decision (reason, retry after); settings written
 * field by field, their source, the changed list and loads; the markup; an
 * unknown customer; usage seeded from daily rollups.
 *
 * Every expected time is computed here with timegm() on explicit dates. The
 * ledger is one per process, so every case uses its own customer ids.
 */
#include "store/ledger.h"
#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEC 1000000ll
#define DAY (86400ll * SEC)

/* Unix microseconds of the UTC time y-mo-d h:mi:s. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * SEC;
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

/* Settings with nothing set (budgets and markup NAN). */
static rc_customer_settings unset(void)
{
    return (rc_customer_settings){
        .period_budget = NAN, .total_budget = NAN, .markup_percentage = NAN};
}

/* Customer id created by the API with a period and budgets. */
static bool make_customer(const char *id, rc_budget_duration d, int64_t start_us, int64_t end_us,
                          double period_budget, double total_budget, int64_t rate_limit)
{
    rc_customer_settings s = unset();
    s.duration = d;
    s.period_start_us = start_us;
    s.period_end_us = end_us;
    s.period_budget = period_budget;
    s.total_budget = total_budget;
    s.rate_limit = rate_limit;
    return rc_ledger_set(rc_ledger_shared(), id, &s,
                         RC_CS_DURATION | RC_CS_PERIOD_START | RC_CS_PERIOD_END |
                             RC_CS_PERIOD_BUDGET | RC_CS_TOTAL_BUDGET | RC_CS_RATE_LIMIT,
                         "api", utc(2025, 1, 1, 0, 0, 0));
}

/* --- dates and durations ------------------------------------------------------------------ */

static void test_date_parse(void)
{
    int64_t us = -1;
    CHECK(rc_date_parse_us("2025-03-01", &us));
    CHECK(us == utc(2025, 3, 1, 0, 0, 0));
    us = -1;
    CHECK(rc_date_parse_us("2025-03-01T12:34:56Z", &us));
    CHECK(us == utc(2025, 3, 1, 0, 0, 0));
    us = -1;
    CHECK(rc_date_parse_us("2024-02-29", &us)); /* a leap day */
    CHECK(us == utc(2024, 2, 29, 0, 0, 0));

    us = 42;
    CHECK(!rc_date_parse_us("2025-02-30", &us));
    CHECK(!rc_date_parse_us("2025-02-29", &us)); /* 2025 is no leap year */
    CHECK(!rc_date_parse_us("2025-13-01", &us));
    CHECK(!rc_date_parse_us("2025-00-10", &us));
    CHECK(!rc_date_parse_us("hello", &us));
    CHECK(!rc_date_parse_us("", &us));
    CHECK(!rc_date_parse_us(NULL, &us));
    CHECK(us == 42); /* untouched when refused */
}

static void test_duration_names(void)
{
    static const struct {
        const char *name;
        rc_budget_duration d;
    } table[] = {{"daily", RC_BUDGET_DAILY},
                 {"weekly", RC_BUDGET_WEEKLY},
                 {"monthly", RC_BUDGET_MONTHLY},
                 {"yearly", RC_BUDGET_YEARLY}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        rc_budget_duration d = RC_BUDGET_NONE;
        CHECK(rc_budget_duration_parse(table[i].name, &d));
        CHECK(d == table[i].d);
        CHECK_STR(rc_budget_duration_name(table[i].d), table[i].name);
    }
    rc_budget_duration d = RC_BUDGET_WEEKLY;
    CHECK(!rc_budget_duration_parse("hourly", &d));
    CHECK(!rc_budget_duration_parse("", &d));
    CHECK(!rc_budget_duration_parse(NULL, &d));
    CHECK(d == RC_BUDGET_WEEKLY);
    CHECK(rc_budget_duration_name(RC_BUDGET_NONE) == NULL);
}

/* --- periods ------------------------------------------------------------------------------ */

/* Customer id with the given period, read at now: the current period is
 * [want_ps, want_pe). */
static void check_period(const char *id, rc_budget_duration d, int64_t start_us, int64_t end_us,
                         int64_t now_us, int64_t want_ps, int64_t want_pe)
{
    CHECK(make_customer(id, d, start_us, end_us, 100.0, NAN, 0));
    rc_customer_state st;
    CHECK(rc_ledger_get(rc_ledger_shared(), id, now_us, &st));
    CHECK(st.period_start_us == want_ps);
    CHECK(st.period_end_us == want_pe);
    if (st.period_start_us != want_ps || st.period_end_us != want_pe)
        fprintf(stderr, "  %s: period [%lld, %lld), want [%lld, %lld)\n", id,
                (long long)st.period_start_us, (long long)st.period_end_us, (long long)want_ps,
                (long long)want_pe);
    CHECK(st.s.duration == d);
    rc_customer_state_clear(&st);
}

static void test_periods(void)
{
    check_period("period-daily", RC_BUDGET_DAILY, utc(2025, 3, 1, 0, 0, 0), 0,
                 utc(2025, 3, 10, 15, 0, 0), utc(2025, 3, 10, 0, 0, 0), utc(2025, 3, 11, 0, 0, 0));
    /* 2025-03-03 is a Monday: weeks run Monday to Monday. */
    check_period("period-weekly", RC_BUDGET_WEEKLY, utc(2025, 3, 3, 0, 0, 0), 0,
                 utc(2025, 3, 19, 12, 0, 0), utc(2025, 3, 17, 0, 0, 0), utc(2025, 3, 24, 0, 0, 0));
    check_period("period-monthly", RC_BUDGET_MONTHLY, utc(2025, 1, 15, 0, 0, 0), 0,
                 utc(2025, 3, 20, 0, 0, 0), utc(2025, 3, 15, 0, 0, 0), utc(2025, 4, 15, 0, 0, 0));
    /* The last instant of a month's period still belongs to it. */
    check_period("period-monthly-edge", RC_BUDGET_MONTHLY, utc(2025, 1, 15, 0, 0, 0), 0,
                 utc(2025, 4, 15, 0, 0, 0) - 1, utc(2025, 3, 15, 0, 0, 0),
                 utc(2025, 4, 15, 0, 0, 0));
    check_period("period-yearly", RC_BUDGET_YEARLY, utc(2025, 6, 1, 0, 0, 0), 0,
                 utc(2026, 8, 10, 9, 0, 0), utc(2026, 6, 1, 0, 0, 0), utc(2027, 6, 1, 0, 0, 0));
    /* Custom: ten days, then ten days again and again. */
    check_period("period-custom-first", RC_BUDGET_NONE, utc(2025, 1, 1, 0, 0, 0),
                 utc(2025, 1, 11, 0, 0, 0), utc(2025, 1, 5, 0, 0, 0), utc(2025, 1, 1, 0, 0, 0),
                 utc(2025, 1, 11, 0, 0, 0));
    check_period("period-custom-rolled", RC_BUDGET_NONE, utc(2025, 1, 1, 0, 0, 0),
                 utc(2025, 1, 11, 0, 0, 0), utc(2025, 1, 25, 0, 0, 0), utc(2025, 1, 21, 0, 0, 0),
                 utc(2025, 1, 31, 0, 0, 0));
    /* A period that has not begun yet: the first one. */
    check_period("period-not-begun", RC_BUDGET_DAILY, utc(2025, 5, 1, 0, 0, 0), 0,
                 utc(2025, 4, 20, 8, 0, 0), utc(2025, 5, 1, 0, 0, 0), utc(2025, 5, 2, 0, 0, 0));

    /* Neither a duration nor a period end: no period. */
    CHECK(make_customer("period-none", RC_BUDGET_NONE, utc(2025, 1, 1, 0, 0, 0), 0, NAN, 5.0, 0));
    rc_customer_state st;
    CHECK(rc_ledger_get(rc_ledger_shared(), "period-none", utc(2025, 2, 1, 0, 0, 0), &st));
    CHECK(st.period_start_us == 0 && st.period_end_us == 0);
    rc_customer_state_clear(&st);
}

/* --- usage and budgets -------------------------------------------------------------------- */

/* Monthly and yearly periods from a day a shorter month lacks end on that
 * month's last day, as calendars do, and return to the day after. */
static void test_month_end(void)
{
    check_period("me-31", RC_BUDGET_MONTHLY, utc(2025, 1, 31, 0, 0, 0), 0,
                 utc(2025, 2, 10, 0, 0, 0), utc(2025, 1, 31, 0, 0, 0), utc(2025, 2, 28, 0, 0, 0));
    check_period("me-31b", RC_BUDGET_MONTHLY, utc(2025, 1, 31, 0, 0, 0), 0,
                 utc(2025, 3, 5, 0, 0, 0), utc(2025, 2, 28, 0, 0, 0), utc(2025, 3, 31, 0, 0, 0));
    check_period("me-leap", RC_BUDGET_YEARLY, utc(2024, 2, 29, 0, 0, 0), 0,
                 utc(2025, 6, 1, 0, 0, 0), utc(2025, 2, 28, 0, 0, 0), utc(2026, 2, 28, 0, 0, 0));
    int64_t x;
    CHECK(!rc_date_parse_us("2025-3-1", &x));
    CHECK(!rc_date_parse_us("2025-03-1", &x));
}

/* Without a period_start the period starts on the day of the first call
 * counted; a later call from an earlier day goes to the totals and does
 * not move the period under the usage already in it. */
static void test_late_call_keeps_period(void)
{
    const char *id = "late-call";
    rc_customer_settings s = unset();
    s.duration = RC_BUDGET_MONTHLY;
    s.period_budget = 10;
    CHECK(rc_ledger_set(rc_ledger_shared(), id, &s, RC_CS_DURATION | RC_CS_PERIOD_BUDGET, "api",
                        utc(2025, 3, 1, 0, 0, 0)));
    int64_t now = utc(2025, 3, 10, 12, 0, 0);
    rc_ledger_charge(rc_ledger_shared(), id, 5, now, now);
    rc_ledger_charge(rc_ledger_shared(), id, 1, utc(2025, 3, 9, 23, 0, 0), now + 2 * SEC);
    rc_customer_state st;
    CHECK(rc_ledger_get(rc_ledger_shared(), id, now + 3 * SEC, &st));
    CHECK(st.period_start_us == utc(2025, 3, 10, 0, 0, 0));
    CHECK(near(st.period_usage, 5));
    CHECK(near(st.total_usage, 6));
    rc_customer_state_clear(&st);
}

static void test_period_rollover(void)
{
    rc_ledger *l = rc_ledger_shared();
    const char *id = "rollover";
    CHECK(make_customer(id, RC_BUDGET_MONTHLY, utc(2025, 1, 15, 0, 0, 0), 0, 100.0, NAN, 0));
    int64_t now = utc(2025, 3, 20, 10, 0, 0);
    CHECK(rc_ledger_charge(l, id, 2.5, now, now) == 0);
    CHECK(rc_ledger_charge(l, id, 1.25, now + SEC, now + SEC) == 0);

    rc_customer_state st;
    CHECK(rc_ledger_get(l, id, now + 2 * SEC, &st));
    CHECK(near(st.period_usage, 3.75));
    CHECK(near(st.total_usage, 3.75));
    CHECK(st.total_requests == 2);
    rc_customer_state_clear(&st);

    /* The next period (from 2025-04-15): period usage restarts, total does not. */
    int64_t next = utc(2025, 4, 16, 0, 0, 0);
    CHECK(rc_ledger_get(l, id, next, &st));
    CHECK(st.period_start_us == utc(2025, 4, 15, 0, 0, 0));
    CHECK(near(st.period_usage, 0));
    CHECK(near(st.total_usage, 3.75));
    CHECK(st.total_requests == 2);
    rc_customer_state_clear(&st);

    /* A charge in the new period counts there alone. */
    CHECK(rc_ledger_charge(l, id, 0.5, next, next) == 0);
    CHECK(rc_ledger_get(l, id, next + SEC, &st));
    CHECK(near(st.period_usage, 0.5));
    CHECK(near(st.total_usage, 4.25));
    rc_customer_state_clear(&st);

    /* A late call from the previous period adds to the total only. */
    CHECK(rc_ledger_charge(l, id, 1.0, utc(2025, 4, 10, 0, 0, 0), next + 2 * SEC) == 0);
    CHECK(rc_ledger_get(l, id, next + 3 * SEC, &st));
    CHECK(near(st.period_usage, 0.5));
    CHECK(near(st.total_usage, 5.25));
    rc_customer_state_clear(&st);
}

static void test_period_budget(void)
{
    rc_ledger *l = rc_ledger_shared();
    const char *id = "period-budget";
    CHECK(make_customer(id, RC_BUDGET_DAILY, utc(2025, 3, 1, 0, 0, 0), 0, 1.0, NAN, 0));
    int64_t now = utc(2025, 3, 10, 15, 0, 0);

    unsigned f1 = rc_ledger_charge(l, id, 0.6, now, now);
    CHECK(!(f1 & RC_LEDGER_OVER_BUDGET));
    CHECK(f1 == 0);
    rc_limits_decision dec;
    rc_ledger_decide(l, id, now, &dec, NULL);
    CHECK(dec.allowed);
    CHECK(dec.reason == NULL);
    CHECK(isnan(dec.retry_after_seconds));

    unsigned f2 = rc_ledger_charge(l, id, 0.6, now + SEC, now + SEC);
    CHECK(f2 & RC_LEDGER_OVER_BUDGET);
    CHECK(!(f2 & RC_LEDGER_OVER_RATE));

    rc_customer_state st;
    rc_ledger_decide(l, id, now + 2 * SEC, &dec, &st);
    CHECK(!dec.allowed);
    CHECK_STR(dec.reason, "period_budget_exceeded");
    /* 15:00:02 to the next midnight. */
    double want = (double)(utc(2025, 3, 11, 0, 0, 0) - (now + 2 * SEC)) / (double)SEC;
    CHECK(near(want, 9 * 3600 - 2));
    CHECK(near(dec.retry_after_seconds, want));
    CHECK(near(st.period_usage, 1.2));
    CHECK(st.period_end_us == utc(2025, 3, 11, 0, 0, 0));
    rc_customer_state_clear(&st);

    /* The next day is allowed again. */
    rc_ledger_decide(l, id, utc(2025, 3, 11, 0, 0, 1), &dec, NULL);
    CHECK(dec.allowed);
    CHECK(dec.reason == NULL);
}

static void test_total_budget(void)
{
    rc_ledger *l = rc_ledger_shared();
    const char *id = "total-budget";
    CHECK(make_customer(id, RC_BUDGET_NONE, 0, 0, NAN, 1.0, 0));
    int64_t now = utc(2025, 3, 10, 15, 0, 0);
    CHECK(!(rc_ledger_charge(l, id, 0.7, now, now) & RC_LEDGER_OVER_BUDGET));
    CHECK(rc_ledger_charge(l, id, 0.5, now + SEC, now + SEC) & RC_LEDGER_OVER_BUDGET);

    rc_limits_decision dec;
    rc_ledger_decide(l, id, now + 2 * SEC, &dec, NULL);
    CHECK(!dec.allowed);
    CHECK_STR(dec.reason, "total_budget_exceeded");
    CHECK(isnan(dec.retry_after_seconds));
    /* Waiting does not help: a year later it is still exceeded. */
    rc_ledger_decide(l, id, utc(2026, 3, 10, 15, 0, 0), &dec, NULL);
    CHECK(!dec.allowed);
    CHECK_STR(dec.reason, "total_budget_exceeded");
}

static void test_rate_limit(void)
{
    rc_ledger *l = rc_ledger_shared();
    const char *id = "rate-limit";
    CHECK(make_customer(id, RC_BUDGET_NONE, 0, 0, NAN, NAN, 3));
    int64_t t = utc(2025, 3, 10, 15, 0, 0);
    /* Four calls, one a second, at t .. t+3 s. */
    for (int i = 0; i < 3; i++)
        CHECK(!(rc_ledger_charge(l, id, 0.01, t + i * SEC, t + i * SEC) & RC_LEDGER_OVER_RATE));
    int64_t last = t + 3 * SEC;
    unsigned f = rc_ledger_charge(l, id, 0.01, last, last);
    CHECK(f & RC_LEDGER_OVER_RATE);
    CHECK(!(f & RC_LEDGER_OVER_BUDGET));

    rc_limits_decision dec;
    rc_customer_state st;
    rc_ledger_decide(l, id, last, &dec, &st);
    CHECK(!dec.allowed);
    CHECK_STR(dec.reason, "rate_limit_exceeded");
    CHECK(st.requests_last_minute == 4);
    CHECK(dec.retry_after_seconds > 0 && dec.retry_after_seconds <= 60);
    /* Below the limit once the calls at t and t+1 s have left the window,
     * at t+61 s: 58 s after t+3 s. */
    CHECK(near(dec.retry_after_seconds, 58));
    rc_customer_state_clear(&st);

    CHECK(rc_ledger_get(l, id, last, &st));
    CHECK(st.requests_last_minute == 4);
    rc_customer_state_clear(&st);

    /* At t+61 s the calls at t+2 s and t+3 s remain: allowed. */
    rc_ledger_decide(l, id, t + 61 * SEC, &dec, &st);
    CHECK(dec.allowed);
    CHECK(st.requests_last_minute == 2);
    rc_customer_state_clear(&st);

    /* 61 s after the last call, none remain. */
    rc_ledger_decide(l, id, last + 61 * SEC, &dec, &st);
    CHECK(dec.allowed);
    CHECK(dec.reason == NULL);
    CHECK(isnan(dec.retry_after_seconds));
    CHECK(st.requests_last_minute == 0);
    CHECK(st.total_requests == 4);
    rc_customer_state_clear(&st);
}

/* --- settings ----------------------------------------------------------------------------- */

static void test_set_fields(void)
{
    rc_ledger *l = rc_ledger_shared();
    const char *id = "set-fields";
    int64_t t1 = utc(2025, 2, 1, 0, 0, 0), t2 = utc(2025, 2, 2, 0, 0, 0);
    rc_customer_settings s = unset();
    s.name = "Alice";
    s.period_budget = 5.0;
    CHECK(rc_ledger_set(l, id, &s, RC_CS_NAME | RC_CS_PERIOD_BUDGET, "api", t1));

    /* Only the name is written: the period budget keeps 5. */
    s = unset();
    s.name = "Alicia";
    s.period_budget = 7.0;
    s.email = "alice@example.com";
    CHECK(rc_ledger_set(l, id, &s, RC_CS_NAME, "api", t2));

    rc_customer_state st;
    CHECK(rc_ledger_get(l, id, t2, &st));
    CHECK_STR(st.name, "Alicia");
    CHECK_STR(st.s.name, "Alicia");
    CHECK(st.email == NULL);
    CHECK(near(st.s.period_budget, 5.0));
    CHECK(isnan(st.s.total_budget));
    CHECK(isnan(st.s.markup_percentage));
    CHECK(st.s.rate_limit == 0);
    CHECK_STR(st.source, "api");
    CHECK(st.updated_us == t2);
    rc_customer_state_clear(&st);

    /* A write from spans that changes nothing keeps the source and time. */
    int64_t t3 = utc(2025, 2, 3, 0, 0, 0);
    s = unset();
    s.name = "Alicia";
    s.period_budget = 5.0;
    CHECK(rc_ledger_set(l, id, &s, RC_CS_NAME | RC_CS_PERIOD_BUDGET, "span", t3));
    CHECK(rc_ledger_get(l, id, t3, &st));
    CHECK_STR(st.source, "api");
    CHECK(st.updated_us == t2);
    rc_customer_state_clear(&st);

    /* One that changes something is a write from spans. */
    int64_t t4 = utc(2025, 2, 4, 0, 0, 0);
    s.email = "alicia@example.com";
    CHECK(rc_ledger_set(l, id, &s, RC_CS_NAME | RC_CS_EMAIL, "span", t4));
    CHECK(rc_ledger_get(l, id, t4, &st));
    CHECK_STR(st.source, "span");
    CHECK_STR(st.email, "alicia@example.com");
    CHECK_STR(st.name, "Alicia");
    CHECK(st.updated_us == t4);
    rc_customer_state_clear(&st);
}

typedef struct seen {
    const char *id;
    int count;
    char source[16];
    double period_budget;
} seen;

static void on_changed(void *arg, const char *id, const rc_customer_state *st)
{
    seen *s = arg;
    if (strcmp(id, s->id) != 0) return;
    s->count++;
    snprintf(s->source, sizeof s->source, "%s", st->source ? st->source : "");
    s->period_budget = st->s.period_budget;
}

static int changed_count(const char *id, seen *out)
{
    *out = (seen){.id = id};
    rc_ledger_take_changed(rc_ledger_shared(), on_changed, out);
    return out->count;
}

static void test_take_changed(void)
{
    rc_ledger *l = rc_ledger_shared();
    const char *id = "changed";
    int64_t t = utc(2025, 2, 1, 0, 0, 0);
    seen sn;
    rc_customer_settings s = unset();
    s.period_budget = 3.0;
    CHECK(rc_ledger_set(l, id, &s, RC_CS_PERIOD_BUDGET, "api", t));
    CHECK(changed_count(id, &sn) == 1);
    CHECK_STR(sn.source, "api");
    CHECK(near(sn.period_budget, 3.0));
    CHECK(changed_count(id, &sn) == 0); /* once only */

    /* A span write that changes nothing is no change. */
    CHECK(rc_ledger_set(l, id, &s, RC_CS_PERIOD_BUDGET, "span", t + SEC));
    CHECK(changed_count(id, &sn) == 0);

    s.period_budget = 4.0;
    CHECK(rc_ledger_set(l, id, &s, RC_CS_PERIOD_BUDGET, "api", t + 2 * SEC));
    CHECK(changed_count(id, &sn) == 1);
    CHECK(near(sn.period_budget, 4.0));
    CHECK(changed_count(id, &sn) == 0);

    /* Charges are usage, not settings. */
    CHECK(rc_ledger_charge(l, id, 0.1, t + 3 * SEC, t + 3 * SEC) == 0);
    CHECK(changed_count(id, &sn) == 0);

    /* Loaded from the store: kept as stored, not reported. */
    const char *lid = "changed-loaded";
    rc_customer_settings ls = unset();
    ls.name = "Loaded";
    ls.total_budget = 9.0;
    ls.markup_percentage = 12.5;
    int64_t stored = utc(2024, 12, 24, 8, 0, 0);
    CHECK(rc_ledger_load(l, lid, &ls, "config", stored));
    CHECK(changed_count(lid, &sn) == 0);
    rc_customer_state st;
    CHECK(rc_ledger_get(l, lid, t, &st));
    CHECK_STR(st.name, "Loaded");
    CHECK_STR(st.source, "config");
    CHECK(st.updated_us == stored);
    CHECK(near(st.s.total_budget, 9.0));
    CHECK(isnan(st.s.period_budget));
    rc_customer_state_clear(&st);

    /* A later change to a loaded customer is reported. */
    ls.total_budget = 10.0;
    CHECK(rc_ledger_set(l, lid, &ls, RC_CS_TOTAL_BUDGET, "api", t));
    CHECK(changed_count(lid, &sn) == 1);
    CHECK_STR(sn.source, "api");
}

static void test_markup(void)
{
    rc_ledger *l = rc_ledger_shared();
    int64_t t = utc(2025, 2, 1, 0, 0, 0);
    rc_customer_settings s = unset();
    s.markup_percentage = 20.0;
    CHECK(rc_ledger_set(l, "markup-set", &s, RC_CS_MARKUP, "api", t));
    double m = -1;
    CHECK(rc_ledger_markup(l, "markup-set", &m));
    CHECK(near(m, 20.0));

    /* A customer without a markup, and one the ledger does not know. */
    s = unset();
    s.name = "No markup";
    CHECK(rc_ledger_set(l, "markup-none", &s, RC_CS_NAME, "api", t));
    m = -1;
    CHECK(!rc_ledger_markup(l, "markup-none", &m));
    CHECK(!rc_ledger_markup(l, "markup-nobody", &m));
    CHECK(m == -1);

    /* Unset again (NAN): no markup. */
    s = unset();
    CHECK(rc_ledger_set(l, "markup-set", &s, RC_CS_MARKUP, "api", t + SEC));
    CHECK(!rc_ledger_markup(l, "markup-set", &m));
}

static void test_unknown_customer(void)
{
    rc_ledger *l = rc_ledger_shared();
    int64_t now = utc(2025, 3, 10, 15, 0, 0);
    rc_limits_decision dec = {.allowed = false, .reason = "x", .retry_after_seconds = 1};
    rc_customer_state st;
    memset(&st, 0xff, sizeof st);
    rc_ledger_decide(l, "unknown-customer", now, &dec, &st);
    CHECK(dec.allowed);
    CHECK(dec.reason == NULL);
    CHECK(isnan(dec.retry_after_seconds));
    CHECK(st.source == NULL && st.name == NULL && st.total_usage == 0);
    rc_customer_state_clear(&st);

    CHECK(!rc_ledger_get(l, "unknown-customer", now, &st));
    /* Neither call made it known. */
    CHECK(!rc_ledger_get(l, "unknown-customer", now, &st));
    rc_customer_state_clear(&st);
}

static void test_seed_day(void)
{
    rc_ledger *l = rc_ledger_shared();
    const char *id = "seeded";
    /* seed_day reads the ledger's clock: a 20-day custom period around it. */
    int64_t now = rc_wall_now_us();
    int64_t today = now / DAY * DAY;
    CHECK(make_customer(id, RC_BUDGET_NONE, today - 10 * DAY, today + 10 * DAY, 100.0, NAN, 5));

    rc_ledger_seed_day(l, id, today, 2.0, 5);
    rc_ledger_seed_day(l, id, today - 30 * DAY, 3.0, 2); /* before the period */
    rc_ledger_seed_day(l, id, today - 3 * DAY, 0.25, 1);

    rc_customer_state st;
    CHECK(rc_ledger_get(l, id, rc_wall_now_us(), &st));
    CHECK(near(st.total_usage, 5.25));
    CHECK(st.total_requests == 8);
    CHECK(near(st.period_usage, 2.25));
    CHECK(st.period_start_us == today - 10 * DAY);
    CHECK(st.requests_last_minute == 0); /* seeds are not in the rate window */
    rc_customer_state_clear(&st);

    /* A customer with no settings at all: totals only. */
    rc_ledger_seed_day(l, "seeded-bare", today - 2 * DAY, 1.5, 3);
    CHECK(rc_ledger_get(l, "seeded-bare", rc_wall_now_us(), &st));
    CHECK(near(st.total_usage, 1.5));
    CHECK(st.total_requests == 3);
    CHECK(st.period_start_us == 0 && near(st.period_usage, 0));
    rc_customer_state_clear(&st);
}

int main(void)
{
    RUN(test_date_parse());
    RUN(test_duration_names());
    RUN(test_periods());
    RUN(test_month_end());
    RUN(test_late_call_keeps_period());
    RUN(test_period_rollover());
    RUN(test_period_budget());
    RUN(test_total_budget());
    RUN(test_rate_limit());
    RUN(test_set_fields());
    RUN(test_take_changed());
    RUN(test_markup());
    RUN(test_unknown_customer());
    RUN(test_seed_day());
    TEST_MAIN_END();
}
