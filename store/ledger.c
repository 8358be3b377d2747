/*
 * ledger.c - customers' budgets, usage and request rates in memory
 * (ledger.h says what for and who calls it).
 *
 * A chained hash table of customers under one mutex. Each customer keeps
 * its settings, its total usage, the usage of the period it last saw, and
 * a 60-second window of calls as 60 one-second buckets, so the rate check
 * costs the same whatever the rate. A period is found from its start and
 * duration on demand (period_at), never stored as a schedule, so a period
 * that ended while nothing happened rolls over on the next look.
 */
#include "store/ledger.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_S 1000000LL
#define US_PER_DAY (86400LL * US_PER_S)
#define WINDOW_S 60
#define INITIAL_BUCKETS 1024

typedef struct customer {
    struct customer *next; /* hash chain */
    char *id;
    char *name, *email, *source;
    rc_customer_settings s; /* s.name / s.email unused: see name, email */
    int64_t updated_us;
    int64_t first_seen_us; /* first charge (or seeded day): the default period start */
    double total_usage;
    uint64_t total_requests;
    double period_usage;
    int64_t period_start_us; /* the period period_usage belongs to; 0 none yet */
    bool changed;            /* settings not yet taken by rc_ledger_take_changed */
    uint32_t win_sec[WINDOW_S];
    uint32_t win_count[WINDOW_S];
} customer;

#define MAX_PENDING_ALERTS 4096

typedef struct alert {
    rc_budget_alert a;
    char *customer; /* a.customer_identifier points here */
} alert;

struct rc_ledger {
    pthread_mutex_t mu;
    customer **buckets;
    size_t n_buckets, n;
    double thresholds[RC_LEDGER_MAX_THRESHOLDS];
    size_t n_thresholds;
    alert *alerts; /* a ring of MAX_PENDING_ALERTS, allocated on first use */
    size_t alert_head, n_alerts;
    uint64_t alerts_dropped;
};

/* --- dates and periods ---------------------------------------------------------------- */

static int64_t day_of(int64_t us)
{
    int64_t d = us / US_PER_DAY;
    if (us < 0 && us % US_PER_DAY) d--;
    return d * US_PER_DAY;
}

bool rc_date_parse_us(const char *text, int64_t *out_us)
{
    int y, m, d;
    char tail;
    if (!text || strlen(text) < 10 || text[4] != '-' || text[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (text[i] < '0' || text[i] > '9')) return false;
    if (sscanf(text, "%4d-%2d-%2d%c", &y, &m, &d, &tail) < 3) return false;
    if (strlen(text) > 10 && text[10] != 'T' && text[10] != ' ') return false;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31) return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d) return false; /* 2025-02-30 */
    *out_us = (int64_t)t * US_PER_S;
    return true;
}

bool rc_budget_duration_parse(const char *text, rc_budget_duration *out)
{
    static const char *const names[] = {"daily", "weekly", "monthly", "yearly"};
    for (int i = 0; text && i < 4; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (rc_budget_duration)(i + 1);
            return true;
        }
    return false;
}

const char *rc_budget_duration_name(rc_budget_duration d)
{
    static const char *const names[] = {NULL, "daily", "weekly", "monthly", "yearly"};
    return (unsigned)d <= RC_BUDGET_YEARLY ? names[d] : NULL;
}

/* start moved on by k periods of duration d (k >= 0). */
static int64_t step(int64_t start_us, rc_budget_duration d, int64_t k)
{
    if (d == RC_BUDGET_DAILY) return start_us + k * US_PER_DAY;
    if (d == RC_BUDGET_WEEKLY) return start_us + k * 7 * US_PER_DAY;
    time_t t = (time_t)(start_us / US_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    int mday = tm.tm_mday;
    tm.tm_mday = 1;
    if (d == RC_BUDGET_MONTHLY) {
        tm.tm_year += (int)(k / 12);
        tm.tm_mon += (int)(k % 12);
    } else {
        tm.tm_year += (int)k;
    }
    /* A period from the 31st (or 29 February) ends on the last day of a
     * shorter month, as calendars do, rather than spilling into the next. */
    time_t first = timegm(&tm);
    struct tm next = tm;
    next.tm_mon++;
    int last = (int)((timegm(&next) - first) / 86400);
    tm.tm_mday = mday < last ? mday : last;
    return (int64_t)timegm(&tm) * US_PER_S + start_us % US_PER_S;
}

/* The period of c holding now: [*ps, *pe). False when c has no budget
 * period (neither a duration nor a period end). */
static bool period_at(const customer *c, int64_t now_us, int64_t *ps, int64_t *pe)
{
    int64_t base = c->s.period_start_us ? c->s.period_start_us
                   : c->first_seen_us   ? day_of(c->first_seen_us)
                                        : day_of(now_us);
    rc_budget_duration d = c->s.duration;
    int64_t end = c->s.period_end_us;
    if (d == RC_BUDGET_NONE && end <= base) return false;
    if (end > base) { /* a custom first period; then periods of its length, or of d */
        if (now_us < end) {
            *ps = base;
            *pe = end;
            return true;
        }
        if (d == RC_BUDGET_NONE) {
            int64_t len = end - base, k = (now_us - end) / len;
            *ps = end + k * len;
            *pe = *ps + len;
            return true;
        }
        base = end;
    }
    if (now_us < base) { /* a period that has not begun: the first one */
        *ps = base;
        *pe = step(base, d, 1);
        return true;
    }
    int64_t k = 0;
    if (d == RC_BUDGET_DAILY || d == RC_BUDGET_WEEKLY) {
        k = (now_us - base) / (step(base, d, 1) - base);
    } else { /* calendar months or years: estimate, then settle */
        int64_t per = d == RC_BUDGET_MONTHLY ? 28 * US_PER_DAY : 365 * US_PER_DAY;
        k = (now_us - base) / per;
        while (k > 0 && step(base, d, k) > now_us)
            k--;
        while (step(base, d, k + 1) <= now_us)
            k++;
    }
    *ps = step(base, d, k);
    *pe = step(base, d, k + 1);
    return true;
}

/* Moves c's period usage to the period holding now: a new period starts
 * from nothing. */
static void roll_period(customer *c, int64_t now_us)
{
    int64_t ps, pe;
    if (!period_at(c, now_us, &ps, &pe)) return;
    if (c->period_start_us != ps) {
        c->period_start_us = ps;
        c->period_usage = 0;
    }
}

/* --- the rate window -------------------------------------------------------------------- */

/* A call at time_us into the window ending at now_us. Only seconds inside
 * it count: a later one would take the slot of a second still in the
 * window, and an earlier one (a late span) the slot of a newer second. */
static void window_add(customer *c, int64_t time_us, int64_t now_us)
{
    int64_t sec64 = time_us / US_PER_S, now_sec = now_us / US_PER_S;
    if (sec64 > now_sec || now_sec - sec64 >= WINDOW_S) return;
    uint32_t sec = (uint32_t)sec64;
    size_t i = sec % WINDOW_S;
    if (c->win_sec[i] != sec) {
        c->win_sec[i] = sec;
        c->win_count[i] = 0;
    }
    if (c->win_count[i] < UINT32_MAX) c->win_count[i]++;
}

/* Calls in the 60 s ending at now, and (when over the limit) in how many
 * seconds enough of them leave the window to allow one more. */
static uint64_t window_count(const customer *c, int64_t now_us, double *retry_s)
{
    uint32_t now = (uint32_t)(now_us / US_PER_S);
    uint64_t n = 0;
    for (size_t i = 0; i < WINDOW_S; i++)
        if (c->win_count[i] && now - c->win_sec[i] < WINDOW_S && c->win_sec[i] <= now)
            n += c->win_count[i];
    if (retry_s && c->s.rate_limit > 0 && n >= (uint64_t)c->s.rate_limit) {
        /* Oldest seconds first: the wait until the count drops below the limit. */
        uint64_t left = n;
        for (uint32_t age = WINDOW_S - 1; age < WINDOW_S; age--) {
            uint32_t sec = now - age;
            size_t i = sec % WINDOW_S;
            if (c->win_sec[i] == sec) left -= c->win_count[i];
            if (left < (uint64_t)c->s.rate_limit) {
                *retry_s =
                    (double)(WINDOW_S - age) - (double)(now_us % US_PER_S) / (double)US_PER_S;
                break;
            }
        }
    }
    return n;
}

/* --- the table ---------------------------------------------------------------------------- */

static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static customer *find(rc_ledger *l, const char *id)
{
    for (customer *c = l->buckets[hash_of(id) & (l->n_buckets - 1)]; c; c = c->next)
        if (strcmp(c->id, id) == 0) return c;
    return NULL;
}

static void grow(rc_ledger *l)
{
    size_t n = l->n_buckets * 2;
    customer **b = calloc(n, sizeof *b);
    if (!b) return; /* chains just get longer */
    for (size_t i = 0; i < l->n_buckets; i++)
        for (customer *c = l->buckets[i], *nx; c; c = nx) {
            nx = c->next;
            size_t k = hash_of(c->id) & (n - 1);
            c->next = b[k];
            b[k] = c;
        }
    free(l->buckets);
    l->buckets = b;
    l->n_buckets = n;
}

static customer *find_or_add(rc_ledger *l, const char *id)
{
    customer *c = find(l, id);
    if (c) return c;
    if (!(c = calloc(1, sizeof *c)) || !(c->id = strdup(id))) {
        free(c);
        return NULL;
    }
    c->s.period_budget = c->s.total_budget = c->s.markup_percentage = NAN;
    if (l->n >= l->n_buckets) grow(l);
    size_t k = hash_of(id) & (l->n_buckets - 1);
    c->next = l->buckets[k];
    l->buckets[k] = c;
    l->n++;
    return c;
}

static rc_ledger *g_ledger;

static void ledger_make(void)
{
    rc_ledger *l = calloc(1, sizeof *l);
    if (!l || !(l->buckets = calloc(INITIAL_BUCKETS, sizeof *l->buckets))) {
        free(l);
        return;
    }
    l->n_buckets = INITIAL_BUCKETS;
    pthread_mutex_init(&l->mu, NULL);
    g_ledger = l;
}

rc_ledger *rc_ledger_shared(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ledger_make);
    return g_ledger;
}

/* --- settings ------------------------------------------------------------------------------ */

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_num(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* Whether applying set/mask to c would change anything. */
static bool would_change(const customer *c, const rc_customer_settings *set, unsigned mask)
{
    const rc_customer_settings *o = &c->s;
    return ((mask & RC_CS_NAME) && !same_text(c->name, set->name)) ||
           ((mask & RC_CS_EMAIL) && !same_text(c->email, set->email)) ||
           ((mask & RC_CS_PERIOD_BUDGET) && !same_num(o->period_budget, set->period_budget)) ||
           ((mask & RC_CS_TOTAL_BUDGET) && !same_num(o->total_budget, set->total_budget)) ||
           ((mask & RC_CS_DURATION) && o->duration != set->duration) ||
           ((mask & RC_CS_PERIOD_START) && o->period_start_us != set->period_start_us) ||
           ((mask & RC_CS_PERIOD_END) && o->period_end_us != set->period_end_us) ||
           ((mask & RC_CS_MARKUP) && !same_num(o->markup_percentage, set->markup_percentage)) ||
           ((mask & RC_CS_RATE_LIMIT) && o->rate_limit != set->rate_limit);
}

static bool replace_text(char **slot, const char *v)
{
    char *copy = NULL;
    if (v && !(copy = strdup(v))) return false;
    free(*slot);
    *slot = copy;
    return true;
}

bool rc_ledger_set(rc_ledger *l, const char *id, const rc_customer_settings *set, unsigned mask,
                   const char *source, int64_t now_us)
{
    if (!l || !id) return false;
    pthread_mutex_lock(&l->mu);
    customer *c = find_or_add(l, id);
    bool ok = c != NULL;
    if (ok && would_change(c, set, mask)) {
        if (mask & RC_CS_NAME) ok &= replace_text(&c->name, set->name);
        if (mask & RC_CS_EMAIL) ok &= replace_text(&c->email, set->email);
        if (mask & RC_CS_PERIOD_BUDGET) c->s.period_budget = set->period_budget;
        if (mask & RC_CS_TOTAL_BUDGET) c->s.total_budget = set->total_budget;
        if (mask & RC_CS_DURATION) c->s.duration = set->duration;
        if (mask & RC_CS_PERIOD_START) c->s.period_start_us = set->period_start_us;
        if (mask & RC_CS_PERIOD_END) c->s.period_end_us = set->period_end_us;
        if (mask & RC_CS_MARKUP) c->s.markup_percentage = set->markup_percentage;
        if (mask & RC_CS_RATE_LIMIT) c->s.rate_limit = set->rate_limit;
        ok &= replace_text(&c->source, source);
        c->updated_us = now_us;
        c->changed = true;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

bool rc_ledger_markup(rc_ledger *l, const char *id, double *out)
{
    if (!l || !id) return false;
    pthread_mutex_lock(&l->mu);
    customer *c = find(l, id);
    bool has = c && !isnan(c->s.markup_percentage);
    if (has) *out = c->s.markup_percentage;
    pthread_mutex_unlock(&l->mu);
    return has;
}

bool rc_ledger_load(rc_ledger *l, const char *id, const rc_customer_settings *set,
                    const char *source, int64_t updated_us)
{
    const unsigned all = RC_CS_NAME | RC_CS_EMAIL | RC_CS_PERIOD_BUDGET | RC_CS_TOTAL_BUDGET |
                         RC_CS_DURATION | RC_CS_PERIOD_START | RC_CS_PERIOD_END | RC_CS_MARKUP |
                         RC_CS_RATE_LIMIT;
    if (!rc_ledger_set(l, id, set, all, source, updated_us)) return false;
    pthread_mutex_lock(&l->mu);
    customer *c = find(l, id);
    if (c) c->changed = false;
    pthread_mutex_unlock(&l->mu);
    return true;
}

/* --- usage -------------------------------------------------------------------------------- */

static unsigned over(customer *c, int64_t now_us)
{
    unsigned f = 0;
    int64_t ps, pe;
    bool in_period = period_at(c, now_us, &ps, &pe) && c->period_start_us == ps;
    if ((!isnan(c->s.period_budget) && in_period && c->period_usage > c->s.period_budget) ||
        (!isnan(c->s.total_budget) && c->total_usage > c->s.total_budget))
        f |= RC_LEDGER_OVER_BUDGET;
    if (c->s.rate_limit > 0 && window_count(c, now_us, NULL) > (uint64_t)c->s.rate_limit)
        f |= RC_LEDGER_OVER_RATE;
    return f;
}

/* Cost at time_us into c's totals and, when time_us falls in the period
 * holding now, into its period. */
static void add_usage(customer *c, double cost, uint64_t requests, int64_t time_us, int64_t now_us)
{
    /* The first call counted fixes the default period start: a later call
     * from an earlier day must not move the period under usage already
     * counted in it (the store seeds days oldest first). */
    if (!c->first_seen_us) c->first_seen_us = time_us < now_us ? time_us : now_us;
    c->total_usage += cost;
    c->total_requests += requests;
    roll_period(c, now_us);
    int64_t ps, pe;
    if (period_at(c, now_us, &ps, &pe) && time_us >= ps && time_us < pe) c->period_usage += cost;
}

/* --- alerts ------------------------------------------------------------------------------- */

void rc_ledger_set_alert_thresholds(rc_ledger *l, const double *fractions, size_t n)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->n_thresholds = n < RC_LEDGER_MAX_THRESHOLDS ? n : RC_LEDGER_MAX_THRESHOLDS;
    for (size_t i = 0; i < l->n_thresholds; i++)
        l->thresholds[i] = fractions[i];
    pthread_mutex_unlock(&l->mu);
}

/* Queues one alert (l->mu held); the oldest goes when the list is full. */
static void raise_alert(rc_ledger *l, const rc_budget_alert *a)
{
    if (!l->alerts && !(l->alerts = calloc(MAX_PENDING_ALERTS, sizeof *l->alerts))) {
        l->alerts_dropped++;
        return;
    }
    char *copy = strdup(a->customer_identifier);
    if (!copy) {
        l->alerts_dropped++;
        return;
    }
    if (l->n_alerts == MAX_PENDING_ALERTS) {
        free(l->alerts[l->alert_head].customer);
        l->alert_head = (l->alert_head + 1) % MAX_PENDING_ALERTS;
        l->n_alerts--;
        l->alerts_dropped++;
    }
    alert *slot = &l->alerts[(l->alert_head + l->n_alerts++) % MAX_PENDING_ALERTS];
    slot->a = *a;
    slot->customer = copy;
    slot->a.customer_identifier = copy;
}

/* Alerts for each threshold the usage went past, from before to after. */
static void check_crossings(rc_ledger *l, const customer *c, const char *type, double before,
                            double after, double budget, int64_t ps, int64_t pe, int64_t time_us)
{
    if (isnan(budget) || budget <= 0) return;
    for (size_t i = 0; i < l->n_thresholds; i++) {
        double mark = l->thresholds[i] * budget;
        if (before < mark && after >= mark) {
            rc_budget_alert a = {.customer_identifier = c->id,
                                 .budget_type = type,
                                 .threshold = l->thresholds[i],
                                 .usage = after,
                                 .budget = budget,
                                 .period_start_us = ps,
                                 .period_end_us = pe,
                                 .time_us = time_us};
            raise_alert(l, &a);
        }
    }
}

void rc_ledger_take_alerts(rc_ledger *l, void (*fn)(void *arg, const rc_budget_alert *a), void *arg,
                           uint64_t *dropped)
{
    if (dropped) *dropped = 0;
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    size_t n = l->n_alerts;
    alert *taken = n ? malloc(n * sizeof *taken) : NULL;
    if (taken) {
        for (size_t i = 0; i < n; i++)
            taken[i] = l->alerts[(l->alert_head + i) % MAX_PENDING_ALERTS];
        l->alert_head = l->n_alerts = 0;
    }
    if (dropped) *dropped = l->alerts_dropped;
    l->alerts_dropped = 0;
    pthread_mutex_unlock(&l->mu);
    if (!taken) return; /* none, or no memory: they wait for the next call */
    for (size_t i = 0; i < n; i++) {
        fn(arg, &taken[i].a);
        free(taken[i].customer);
    }
    free(taken);
}

unsigned rc_ledger_charge(rc_ledger *l, const char *id, double cost, int64_t time_us,
                          int64_t now_us)
{
    if (!l || !id || !isfinite(cost) || cost < 0) return 0;
    pthread_mutex_lock(&l->mu);
    customer *c = find_or_add(l, id);
    unsigned f = 0;
    if (c) {
        roll_period(c, now_us);
        double period_before = c->period_usage, total_before = c->total_usage;
        add_usage(c, cost, 1, time_us, now_us);
        if (l->n_thresholds) {
            int64_t ps = 0, pe = 0;
            if (period_at(c, now_us, &ps, &pe) && c->period_start_us == ps)
                check_crossings(l, c, "period", period_before, c->period_usage, c->s.period_budget,
                                ps, pe, time_us);
            check_crossings(l, c, "total", total_before, c->total_usage, c->s.total_budget, 0, 0,
                            time_us);
        }
        window_add(c, time_us, now_us);
        f = over(c, now_us);
    }
    pthread_mutex_unlock(&l->mu);
    return f;
}

void rc_ledger_seed_day(rc_ledger *l, const char *id, int64_t day_us, double cost,
                        uint64_t requests)
{
    if (!l || !id) return;
    int64_t now_us = rc_wall_now_us();
    pthread_mutex_lock(&l->mu);
    customer *c = find_or_add(l, id);
    if (c) add_usage(c, cost, requests, day_us, now_us);
    pthread_mutex_unlock(&l->mu);
}

void rc_ledger_set_period_usage(rc_ledger *l, const char *id, int64_t period_start_us, double usage)
{
    if (!l || !id) return;
    pthread_mutex_lock(&l->mu);
    customer *c = find(l, id);
    if (c) {
        c->period_start_us = period_start_us;
        c->period_usage = usage;
    }
    pthread_mutex_unlock(&l->mu);
}

void rc_ledger_reset_usage(rc_ledger *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n_buckets; i++)
        for (customer *c = l->buckets[i]; c; c = c->next) {
            c->total_usage = c->period_usage = 0;
            c->total_requests = 0;
            c->period_start_us = c->first_seen_us = 0;
        }
    pthread_mutex_unlock(&l->mu);
}

/* --- reading -------------------------------------------------------------------------------- */

void rc_customer_state_clear(rc_customer_state *st)
{
    if (!st) return;
    free(st->name);
    free(st->email);
    free(st->source);
    memset(st, 0, sizeof *st);
}

/* c's state at now_us; with_text, its name, email and source too (copies:
 * the limits decision, asked before every call, needs none of them). */
static void state_of(customer *c, int64_t now_us, bool with_text, rc_customer_state *st)
{
    roll_period(c, now_us);
    memset(st, 0, sizeof *st);
    st->s = c->s;
    if (with_text) {
        st->name = c->name ? strdup(c->name) : NULL;
        st->email = c->email ? strdup(c->email) : NULL;
        st->source = c->source ? strdup(c->source) : NULL;
    }
    st->s.name = st->name;
    st->s.email = st->email;
    st->updated_us = c->updated_us;
    st->total_usage = c->total_usage;
    st->total_requests = c->total_requests;
    st->first_seen_us = c->first_seen_us;
    if (period_at(c, now_us, &st->period_start_us, &st->period_end_us))
        st->period_usage = c->period_start_us == st->period_start_us ? c->period_usage : 0;
    st->requests_last_minute = window_count(c, now_us, NULL);
}

/* The state of a customer the ledger does not know: no settings. */
static void unknown_state(rc_customer_state *st)
{
    memset(st, 0, sizeof *st);
    st->s.period_budget = st->s.total_budget = st->s.markup_percentage = NAN;
}

bool rc_ledger_get(rc_ledger *l, const char *id, int64_t now_us, rc_customer_state *out)
{
    unknown_state(out);
    if (!l || !id) return false;
    pthread_mutex_lock(&l->mu);
    customer *c = find(l, id);
    if (c) state_of(c, now_us, true, out);
    pthread_mutex_unlock(&l->mu);
    return c != NULL;
}

static void decide(customer *c, int64_t now_us, rc_limits_decision *out)
{
    double retry = NAN;
    uint64_t calls = window_count(c, now_us, &retry);
    int64_t ps = 0, pe = 0;
    bool has_period = period_at(c, now_us, &ps, &pe);
    double period_usage = has_period && c->period_start_us == ps ? c->period_usage : 0;
    *out = (rc_limits_decision){.allowed = true, .retry_after_seconds = NAN};
    if (!isnan(c->s.total_budget) && c->total_usage >= c->s.total_budget) {
        out->allowed = false;
        out->reason = "total_budget_exceeded";
    } else if (has_period && !isnan(c->s.period_budget) && period_usage >= c->s.period_budget) {
        out->allowed = false;
        out->reason = "period_budget_exceeded";
        out->retry_after_seconds = (double)(pe - now_us) / (double)US_PER_S;
    } else if (c->s.rate_limit > 0 && calls >= (uint64_t)c->s.rate_limit) {
        out->allowed = false;
        out->reason = "rate_limit_exceeded";
        out->retry_after_seconds = retry;
    }
}

void rc_ledger_decide(rc_ledger *l, const char *id, int64_t now_us, rc_limits_decision *out,
                      rc_customer_state *state)
{
    *out = (rc_limits_decision){.allowed = true, .retry_after_seconds = NAN};
    if (state) unknown_state(state);
    if (!l || !id) return;
    pthread_mutex_lock(&l->mu);
    customer *c = find(l, id);
    if (c) {
        roll_period(c, now_us);
        decide(c, now_us, out);
        if (state) state_of(c, now_us, false, state);
    }
    pthread_mutex_unlock(&l->mu);
}

void rc_ledger_take_changed(rc_ledger *l,
                            void (*fn)(void *arg, const char *id, const rc_customer_state *st),
                            void *arg)
{
    if (!l) return;
    int64_t now_us = rc_wall_now_us();
    /* Copies under the lock, calls outside it: fn writes to the store. */
    size_t n = 0, cap = 0;
    rc_customer_state *states = NULL;
    char **ids = NULL;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n_buckets; i++)
        for (customer *c = l->buckets[i]; c; c = c->next) {
            if (!c->changed) continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                rc_customer_state *ns = realloc(states, nc * sizeof *ns);
                if (ns) states = ns;
                char **ni = ns ? realloc(ids, nc * sizeof *ni) : NULL;
                if (ni) ids = ni;
                if (!ns || !ni) goto out; /* the rest stay changed: next time */
                cap = nc;
            }
            if (!(ids[n] = strdup(c->id))) goto out;
            state_of(c, now_us, true, &states[n]);
            c->changed = false;
            n++;
        }
out:
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        fn(arg, ids[i], &states[i]);
        rc_customer_state_clear(&states[i]);
        free(ids[i]);
    }
    free(states);
    free(ids);
}

/* --- the clock -------------------------------------------------------------------------------- */

static int64_t g_offset_us;

static void read_offset(void)
{
    const char *e = getenv("RESPAN_COLLECTOR_CLOCK_OFFSET");
    double s = e && *e ? strtod(e, NULL) : 0;
    g_offset_us = isfinite(s) ? (int64_t)(s * (double)US_PER_S) : 0;
}

int64_t rc_wall_now_us(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_offset);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * US_PER_S + t.tv_nsec / 1000 + g_offset_us;
}
