/*
 * tenants.c - bearer tokens, tenants and per-tenant token buckets for the
 * OTLP receiver (see tenants.h for the config and the contract).
 *
 * Tokens are kept as SHA-256 digests, never as text, and a presented token
 * is compared with every known one (no early exit) by CRYPTO_memcmp on the
 * digests: the time taken depends neither on how much of a token matched
 * nor on its length. Tokens and the tenants they name form an epoch that
 * never changes once published: lookups load the current one with no lock.
 * SIGHUP with an unchanged config builds a new epoch from the tokens file
 * (rc_tenants_reload) and publishes it; older epochs stay until the
 * receiver goes, since requests in flight point into them. A reload starts
 * every tenant's bucket afresh.
 *
 * Rate limits are token buckets, one per tenant with its own mutex: tenants
 * never contend with each other, and there is no global lock on the path.
 * A tenant with no limit of its own (rate_limits.tenants) takes
 * rate_limits.default, each in its own bucket; with neither it is not
 * limited.
 */
#include "receiver/tenants.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

#include <errno.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TENANT "default"
#define MAX_TOKEN_LEN 4096
#define MAX_TENANT_LEN 128
#define REFUSAL_LOG_EVERY_MS 10000

typedef struct bucket_limit {
    bool set;
    double rate;  /* spans per second */
    double burst; /* bucket size */
} bucket_limit;

typedef struct tenant_rec {
    rc_tenant pub; /* first, so that an rc_tenant * is a tenant_rec * */
    bucket_limit limit;
    pthread_mutex_t mu;
    double tokens;
    int64_t refilled_ms;
    rc_counter *accepted, *refused, *throttled;
} tenant_rec;

typedef struct token_rec {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    tenant_rec *tenant;
} token_rec;

typedef struct named_limit {
    char *tenant;
    bucket_limit limit;
} named_limit;

/* The tokens and tenants of one reading of the config and tokens file. */
typedef struct epoch {
    tenant_rec **tenants;
    size_t n_tenants;
    token_rec *tokens;
    size_t n_tokens;
    tenant_rec *default_tenant;
    struct epoch *older; /* retired epochs, newest first */
} epoch;

struct rc_tenants {
    char *receiver_id;
    bool require_token;
    _Atomic(epoch *) current;
    epoch *building; /* the epoch the parse functions fill */
    pthread_mutex_t reload_mu;
    char *tokens_file;                             /* NULL: none */
    unsigned char (*bearer)[SHA256_DIGEST_LENGTH]; /* auth.bearer_tokens, digests */
    size_t n_bearer;
    bucket_limit default_limit;
    named_limit *limits;
    size_t n_limits;
    rc_counter *unauthenticated[2]; /* grpc, http */
    atomic_llong last_refusal_log_ms;
    atomic_ullong refusals_since_log;
};

/* --- tenants ------------------------------------------------------------------------------- */

static bucket_limit limit_for(const rc_tenants *t, const char *name)
{
    for (size_t i = 0; i < t->n_limits; i++)
        if (strcmp(t->limits[i].tenant, name) == 0) return t->limits[i].limit;
    return t->default_limit;
}

static rc_counter *tenant_counter(const rc_tenants *t, const char *outcome, const char *help,
                                  const char *tenant)
{
    char name[96], labels[320];
    snprintf(name, sizeof name, "respan_receiver_tenant_%s_spans", outcome);
    snprintf(labels, sizeof labels, "receiver=\"%s\",tenant=\"%s\"", t->receiver_id, tenant);
    return rc_counter_register(name, help, labels);
}

static void tenant_free(tenant_rec *r)
{
    if (!r) return;
    pthread_mutex_destroy(&r->mu);
    free((char *)r->pub.name);
    free((char *)r->pub.default_customer);
    free((char *)r->pub.environment);
    free(r);
}

static tenant_rec *find_tenant(const epoch *e, const char *name)
{
    for (size_t i = 0; i < e->n_tenants; i++)
        if (strcmp(e->tenants[i]->pub.name, name) == 0) return e->tenants[i];
    return NULL;
}

/* The tenant called `name` in the epoch being built, made on first
 * mention. NULL when out of memory. */
static tenant_rec *tenant_named(rc_tenants *t, const char *name)
{
    epoch *e = t->building;
    tenant_rec *r = find_tenant(e, name);
    if (r) return r;
    tenant_rec **grown = realloc(e->tenants, (e->n_tenants + 1) * sizeof *grown);
    if (!grown) return NULL;
    e->tenants = grown;
    if (!(r = calloc(1, sizeof *r)) || !(r->pub.name = strdup(name))) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->limit = limit_for(t, name);
    r->tokens = r->limit.burst; /* a new tenant starts with a full bucket */
    r->refilled_ms = rc_now_ms();
    r->accepted = tenant_counter(t, "accepted", "Spans accepted, by tenant.", name);
    r->refused = tenant_counter(
        t, "refused", "Spans refused for another reason than the rate limit, by tenant.", name);
    r->throttled =
        tenant_counter(t, "throttled", "Spans refused by the tenant's rate limit.", name);
    e->tenants[e->n_tenants++] = r;
    return r;
}

static void epoch_free(epoch *e)
{
    while (e) {
        epoch *older = e->older;
        for (size_t i = 0; i < e->n_tenants; i++)
            tenant_free(e->tenants[i]);
        free(e->tenants);
        /* the digests are not the tokens, but they are cleared all the same */
        if (e->tokens) OPENSSL_cleanse(e->tokens, e->n_tokens * sizeof *e->tokens);
        free(e->tokens);
        free(e);
        e = older;
    }
}

/* --- tokens -------------------------------------------------------------------------------- */

static void digest_of(const char *token, size_t len, unsigned char *out)
{
    SHA256((const unsigned char *)token, len, out);
}

static bool has_token(const rc_tenants *t, const unsigned char *digest)
{
    const epoch *e = t->building;
    for (size_t i = 0; i < e->n_tokens; i++)
        if (memcmp(e->tokens[i].digest, digest, SHA256_DIGEST_LENGTH) == 0) return true;
    return false;
}

static bool has_bearer(const rc_tenants *t, const unsigned char *digest)
{
    for (size_t i = 0; i < t->n_bearer; i++)
        if (memcmp(t->bearer[i], digest, SHA256_DIGEST_LENGTH) == 0) return true;
    return false;
}

static rc_status add_digest(rc_tenants *t, const unsigned char *digest, tenant_rec *tenant)
{
    epoch *e = t->building;
    token_rec *grown = realloc(e->tokens, (e->n_tokens + 1) * sizeof *grown);
    if (!grown) return RC_ENOMEM;
    e->tokens = grown;
    memcpy(e->tokens[e->n_tokens].digest, digest, SHA256_DIGEST_LENGTH);
    e->tokens[e->n_tokens].tenant = tenant;
    e->n_tokens++;
    return RC_OK;
}

static bool token_text_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_TOKEN_LEN) return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f) return false;
    return true;
}

/* auth.bearer_tokens, kept as digests in t->bearer: every epoch starts
 * with them (build_epoch). */
static rc_status parse_bearer_tokens(rc_tenants *t, rc_cfg *seq, rc_error *err)
{
    if (rc_cfg_kind_of(seq) != RC_CFG_SEQ)
        return rc_cfg_error(err, seq, "must be a list of tokens");
    for (size_t i = 0; i < rc_cfg_len(seq); i++) {
        rc_cfg *item = rc_cfg_at(seq, i);
        const char *tok = rc_cfg_scalar(item);
        /* The messages never quote the token: it is a secret. */
        if (!tok || !token_text_ok(tok))
            return rc_cfg_error(err, item,
                                "a token must be 1 to %d printable characters without spaces",
                                MAX_TOKEN_LEN);
        unsigned char d[SHA256_DIGEST_LENGTH];
        digest_of(tok, strlen(tok), d);
        if (has_bearer(t, d)) return rc_cfg_error(err, item, "this token is listed twice");
        void *grown = realloc(t->bearer, (t->n_bearer + 1) * sizeof *t->bearer);
        if (!grown) return rc_cfg_error(err, item, "out of memory");
        t->bearer = grown;
        memcpy(t->bearer[t->n_bearer++], d, sizeof d);
    }
    return RC_OK;
}

/* Sets a tenant's default (customer or environment) from tokens-file line
 * `line`; two lines may not disagree about it. */
static rc_status set_default(const char **slot, const char *value, const char *what,
                             const char *tenant, const char *file, int line, rc_error *err)
{
    if (!value) return RC_OK;
    if (*slot) {
        if (strcmp(*slot, value) == 0) return RC_OK;
        rc_error_set(err, "%s:%d: tenant \"%s\" already has another %s on an earlier line", file,
                     line, tenant, what);
        return RC_EINVAL;
    }
    if (!(*slot = strdup(value))) {
        rc_error_set(err, "%s:%d: out of memory", file, line);
        return RC_ENOMEM;
    }
    return RC_OK;
}

static bool printable_word(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == '"' || *s == '\\' || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

/* One line of the tokens file: token tenant [default_customer] [environment]. */
static rc_status parse_token_line(rc_tenants *t, char *text, const char *file, int line,
                                  rc_error *err)
{
    char *words[5] = {0}, *save = NULL;
    int n = 0;
    for (char *w = strtok_r(text, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
        if (n == 0 && w[0] == '#') return RC_OK;
        if (n == 4) {
            rc_error_set(err,
                         "%s:%d: too many fields; want: token tenant [default_customer] "
                         "[environment]",
                         file, line);
            return RC_EINVAL;
        }
        words[n++] = w;
    }
    if (n == 0) return RC_OK;
    if (n < 2) {
        rc_error_set(err,
                     "%s:%d: a token without a tenant; want: token tenant "
                     "[default_customer] [environment]",
                     file, line);
        return RC_EINVAL;
    }
    if (!token_text_ok(words[0])) {
        rc_error_set(err, "%s:%d: the token is longer than %d characters", file, line,
                     MAX_TOKEN_LEN);
        return RC_EINVAL;
    }
    for (int i = 1; i < n; i++)
        if (!printable_word(words[i], MAX_TENANT_LEN)) {
            rc_error_set(err, "%s:%d: field %d must be at most %d printable characters", file, line,
                         i + 1, MAX_TENANT_LEN);
            return RC_EINVAL;
        }
    unsigned char d[SHA256_DIGEST_LENGTH];
    digest_of(words[0], strlen(words[0]), d);
    if (has_token(t, d)) {
        rc_error_set(err, "%s:%d: this token is listed twice", file, line);
        return RC_EINVAL;
    }
    tenant_rec *tenant = tenant_named(t, words[1]);
    if (!tenant || add_digest(t, d, tenant) != RC_OK) {
        rc_error_set(err, "%s:%d: out of memory", file, line);
        return RC_ENOMEM;
    }
    /* "-" keeps a field empty, so that an environment can follow no customer. */
    const char *cust = n > 2 && strcmp(words[2], "-") != 0 ? words[2] : NULL;
    const char *env = n > 3 && strcmp(words[3], "-") != 0 ? words[3] : NULL;
    if (set_default(&tenant->pub.default_customer, cust, "default customer", words[1], file, line,
                    err) != RC_OK ||
        set_default(&tenant->pub.environment, env, "environment", words[1], file, line, err) !=
            RC_OK)
        return RC_EINVAL;
    return RC_OK;
}

/* Fills the epoch being built from the tokens file. node: where the
 * config names it, for messages (NULL on a reload). */
static rc_status read_tokens_file(rc_tenants *t, rc_cfg *node, const char *path, rc_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (!node) {
            rc_error_set(err, "cannot read the tokens file %s: %s", path, strerror(errno));
            return RC_EIO;
        }
        return rc_cfg_error(err, node, "cannot read the tokens file %s: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    int no = 0;
    rc_status st = RC_OK;
    while (st == RC_OK && getline(&line, &cap, f) >= 0) {
        no++;
        line[strcspn(line, "\n")] = 0;
        st = parse_token_line(t, line, path, no, err);
    }
    if (st == RC_OK && ferror(f)) {
        rc_error_set(err, "cannot read the tokens file %s", path);
        st = RC_EIO;
    }
    free(line);
    fclose(f);
    return st;
}

/* The auth map: its bearer tokens and the tokens file's path (*file_node:
 * where the config names it); the file is read by build_epoch. */
static rc_status parse_auth(rc_tenants *t, rc_cfg *auth, rc_cfg **file_node, rc_error *err)
{
    if (rc_cfg_kind_of(auth) != RC_CFG_MAP)
        return rc_cfg_error(err, auth, "must be a map with bearer_tokens and/or tokens_file");
    rc_cfg *list = rc_cfg_get(auth, "bearer_tokens");
    if (list && parse_bearer_tokens(t, list, err) != RC_OK) return RC_EINVAL;
    const char *path = NULL;
    if (rc_cfg_string(auth, "tokens_file", NULL, &path, err) != RC_OK) return RC_EINVAL;
    if (path && !(t->tokens_file = strdup(path))) return rc_cfg_error(err, auth, "out of memory");
    *file_node = rc_cfg_get(auth, "tokens_file");
    if (rc_cfg_reject_unknown(auth, err) != RC_OK) return RC_EINVAL;
    t->require_token = true;
    return RC_OK;
}

/* Builds in t->building the epoch of the tenant "default", the bearer
 * tokens and the tokens file: at parse (file_node: where the config names
 * the file, for messages) and at each reload (NULL). */
static rc_status build_epoch(rc_tenants *t, rc_cfg *file_node, rc_error *err)
{
    epoch *e = t->building = calloc(1, sizeof *t->building);
    tenant_rec *def = e ? tenant_named(t, DEFAULT_TENANT) : NULL;
    rc_status st = def ? RC_OK : RC_ENOMEM;
    for (size_t i = 0; st == RC_OK && i < t->n_bearer; i++)
        st = add_digest(t, t->bearer[i], def);
    if (st != RC_OK) {
        rc_error_set(err, "out of memory reading the tokens");
        return st;
    }
    e->default_tenant = def;
    return t->tokens_file ? read_tokens_file(t, file_node, t->tokens_file, err) : RC_OK;
}

/* --- rate limits --------------------------------------------------------------------------- */

static rc_status parse_limit(rc_cfg *node, bucket_limit *out, rc_error *err)
{
    if (rc_cfg_kind_of(node) != RC_CFG_MAP)
        return rc_cfg_error(err, node, "must be a map: { spans_per_second: N, burst: N }");
    uint64_t rate = 0, burst = 0;
    if (rc_cfg_uint(node, "spans_per_second", 0, 1, 1000000000, &rate, err) != RC_OK ||
        rc_cfg_uint(node, "burst", 0, 0, 1000000000, &burst, err) != RC_OK ||
        rc_cfg_reject_unknown(node, err) != RC_OK)
        return RC_EINVAL;
    if (!rc_cfg_get(node, "spans_per_second"))
        return rc_cfg_error(err, node, "spans_per_second is required");
    out->set = true;
    out->rate = (double)rate;
    /* No burst: one second's worth, the usual token-bucket default. */
    out->burst = burst ? (double)burst : (double)rate;
    return RC_OK;
}

static rc_status parse_rate_limits(rc_tenants *t, rc_cfg *rl, rc_error *err)
{
    if (rc_cfg_kind_of(rl) != RC_CFG_MAP)
        return rc_cfg_error(err, rl, "must be a map with default and/or tenants");
    rc_cfg *def = rc_cfg_get(rl, "default");
    if (def && parse_limit(def, &t->default_limit, err) != RC_OK) return RC_EINVAL;
    rc_cfg *tenants = NULL;
    if (rc_cfg_map(rl, "tenants", &tenants, err) != RC_OK) return RC_EINVAL;
    size_t n = rc_cfg_len(tenants);
    if (n && !(t->limits = calloc(n, sizeof *t->limits)))
        return rc_cfg_error(err, rl, "out of memory");
    for (size_t i = 0; i < n; i++) {
        rc_cfg *one = rc_cfg_at(tenants, i);
        named_limit *nl = &t->limits[t->n_limits];
        if (!(nl->tenant = strdup(rc_cfg_key_at(tenants, i))))
            return rc_cfg_error(err, one, "out of memory");
        t->n_limits++;
        if (parse_limit(one, &nl->limit, err) != RC_OK) return RC_EINVAL;
    }
    return rc_cfg_reject_unknown(rl, err);
}

/* --- life cycle ---------------------------------------------------------------------------- */

rc_status rc_tenants_parse(const char *receiver_id, rc_cfg *auth, rc_cfg *rate_limits,
                           rc_tenants **out, rc_error *err)
{
    *out = NULL;
    if (!auth && !rate_limits) return RC_OK;
    rc_tenants *t = calloc(1, sizeof *t);
    if (!t || !(t->receiver_id = strdup(receiver_id))) {
        free(t);
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    pthread_mutex_init(&t->reload_mu, NULL);
    atomic_init(&t->current, NULL);
    /* Limits first: tenants take theirs when they are made. */
    rc_cfg *file_node = NULL;
    if ((rate_limits && parse_rate_limits(t, rate_limits, err) != RC_OK) ||
        (auth && parse_auth(t, auth, &file_node, err) != RC_OK) ||
        build_epoch(t, file_node, err) != RC_OK ||
        (auth && t->building->n_tokens == 0 &&
         rc_cfg_error(err, auth,
                      "no token configured: every request would be refused; list "
                      "bearer_tokens or give a tokens_file with at least one line") != RC_OK)) {
        rc_tenants_free(t);
        return RC_EINVAL;
    }
    atomic_store(&t->current, t->building);
    t->building = NULL;
    const char *transports[2] = {"grpc", "http"};
    for (int i = 0; i < 2; i++) {
        char labels[256];
        snprintf(labels, sizeof labels, "receiver=\"%s\",transport=\"%s\"", receiver_id,
                 transports[i]);
        t->unauthenticated[i] =
            rc_counter_register("respan_receiver_unauthenticated_requests",
                                "Requests refused for a missing or unknown bearer token.", labels);
    }
    *out = t;
    return RC_OK;
}

void rc_tenants_free(rc_tenants *t)
{
    if (!t) return;
    epoch_free(t->building);
    epoch_free(atomic_load(&t->current));
    for (size_t i = 0; i < t->n_limits; i++)
        free(t->limits[i].tenant);
    free(t->limits);
    if (t->bearer) OPENSSL_cleanse(t->bearer, t->n_bearer * sizeof *t->bearer);
    free(t->bearer);
    free(t->tokens_file);
    pthread_mutex_destroy(&t->reload_mu);
    free(t->receiver_id);
    free(t);
}

rc_status rc_tenants_reload(rc_tenants *t, rc_error *err)
{
    if (!t || !t->tokens_file) return RC_OK;
    pthread_mutex_lock(&t->reload_mu);
    rc_status st = build_epoch(t, NULL, err);
    if (st == RC_OK)
        t->building->older = atomic_exchange(&t->current, t->building);
    else
        epoch_free(t->building);
    t->building = NULL;
    pthread_mutex_unlock(&t->reload_mu);
    return st;
}

bool rc_tenants_require_token(const rc_tenants *t)
{
    return t && t->require_token;
}

/* --- the request path ---------------------------------------------------------------------- */

/* The token of "Bearer <token>" (scheme in any case), or NULL. */
static const char *bearer_token(const char *authorization, size_t *len)
{
    if (!authorization) return NULL;
    const char *p = authorization;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) return NULL;
    p += 7;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0 || n > MAX_TOKEN_LEN) return NULL;
    *len = n;
    return p;
}

/* Warns at most every 10 s, with how many were refused since: a client
 * with a wrong token retries, and must not flood the log. */
static void note_refusal(rc_tenants *t, const char *transport, bool had_token)
{
    atomic_fetch_add(&t->refusals_since_log, 1);
    int64_t now = rc_now_ms();
    long long last = atomic_load(&t->last_refusal_log_ms);
    if (now - last < REFUSAL_LOG_EVERY_MS ||
        !atomic_compare_exchange_strong(&t->last_refusal_log_ms, &last, now))
        return;
    unsigned long long n = atomic_exchange(&t->refusals_since_log, 0);
    rc_warn(t->receiver_id, "%s request refused: %s bearer token (%llu refused in the last %d s)",
            transport, had_token ? "unknown" : "no", n, REFUSAL_LOG_EVERY_MS / 1000);
}

const rc_tenant *rc_tenants_authenticate(rc_tenants *t, const char *authorization,
                                         const char *transport)
{
    if (!t) return NULL;
    const epoch *e = atomic_load(&t->current);
    if (!t->require_token) return &e->default_tenant->pub;
    size_t len = 0;
    const char *tok = bearer_token(authorization, &len);
    tenant_rec *found = NULL;
    if (tok) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        digest_of(tok, len, d);
        for (size_t i = 0; i < e->n_tokens; i++) /* every one: no early exit */
            if (CRYPTO_memcmp(e->tokens[i].digest, d, sizeof d) == 0) found = e->tokens[i].tenant;
        OPENSSL_cleanse(d, sizeof d);
    }
    if (found) return &found->pub;
    rc_counter_add(t->unauthenticated[strcmp(transport, "grpc") == 0 ? 0 : 1], 1);
    note_refusal(t, transport, tok != NULL);
    return NULL;
}

bool rc_tenant_admit(const rc_tenant *tenant, size_t spans, unsigned *retry_after_s)
{
    *retry_after_s = 0;
    tenant_rec *r = (tenant_rec *)tenant;
    if (!r || !r->limit.set || spans == 0) return true;
    double want = (double)spans;
    pthread_mutex_lock(&r->mu);
    int64_t now = rc_now_ms();
    double refill = (double)(now - r->refilled_ms) * r->limit.rate / 1000.0;
    r->tokens = fmin(r->limit.burst, r->tokens + refill);
    r->refilled_ms = now;
    /* Larger than the burst: passes on a full bucket and leaves it in debt. */
    double need = fmin(want, r->limit.burst);
    bool ok = r->tokens >= need;
    if (ok)
        r->tokens -= want;
    else
        *retry_after_s = (unsigned)ceil((need - r->tokens) / r->limit.rate);
    pthread_mutex_unlock(&r->mu);
    if (ok) return true;
    if (*retry_after_s == 0) *retry_after_s = 1;
    rc_counter_add(r->throttled, spans);
    return false;
}

void rc_tenant_refund(const rc_tenant *tenant, size_t spans)
{
    tenant_rec *r = (tenant_rec *)tenant;
    if (!r || !r->limit.set || spans == 0) return;
    pthread_mutex_lock(&r->mu);
    r->tokens = fmin(r->limit.burst, r->tokens + (double)spans);
    pthread_mutex_unlock(&r->mu);
}

void rc_tenant_count_accepted(const rc_tenant *tenant, size_t spans)
{
    if (tenant && spans) rc_counter_add(((const tenant_rec *)tenant)->accepted, spans);
}

void rc_tenant_count_refused(const rc_tenant *tenant, size_t spans)
{
    if (tenant && spans) rc_counter_add(((const tenant_rec *)tenant)->refused, spans);
}
