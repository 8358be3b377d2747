/*
 * respan_api.h - the parts of the respan_api extension (extension/
 * respan_api*.c) that one file hands another. Not a public interface.
 *
 *   respan_api.c        the extension: config, auth, routing, answers
 *   respan_api_query.c  a request (query arguments and JSON body) into the
 *                       store's filter model (store/store.h)
 *   respan_api_users.c  the users endpoints: customers' usage, budgets
 *                       and the limits decision (store/ledger.h)
 *   respan_api_alerts.c budget alerts: logged, counted, POSTed to a webhook
 *   respan_api_uuid.c   UUID v5 (SHA-1 written here: none of the project's
 *                       libraries offers one) for stable evaluator ids
 */
#ifndef RC_RESPAN_API_H
#define RC_RESPAN_API_H

#include "core/admin_http.h"
#include "core/error.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

struct json_t;

/* A request as the store understands it. Strings point into the request
 * (valid during the handler's call), the parsed body (`body`) or `owned`;
 * rc_api_query_free releases all of it. */
typedef struct rc_api_query {
    rc_usage_filter filter;
    rc_usage_page page;
    rc_usage_cond *conds;
    size_t n_conds, cap_conds;
    struct json_t *body;
    char **owned;
    size_t n_owned, cap_owned;
    /* The query arguments other than page, kept to build next/previous. */
    rc_buf rest;
} rc_api_query;

/* Why a request could not be parsed: 400 with a message naming the input,
 * or 422 (valid JSON of the wrong shape), with `loc` the place in the body
 * ("filters.model.operator"). */
typedef struct rc_api_fault {
    unsigned status;
    char loc[128];
} rc_api_fault;

/* Fills q from the request's query arguments and JSON body; `list` takes
 * page, page_size and sort_by too. now_us is the default window's end. */
rc_status rc_api_query_parse(const rc_admin_request *req, bool list, int64_t now_us,
                             rc_api_query *q, rc_api_fault *fault, rc_error *err);
void rc_api_query_free(rc_api_query *q);

/* ISO 8601 ("2025-12-01T00:00:00Z", fractions, offsets, a bare date) to
 * Unix microseconds; false when it is not one. No zone means UTC. */
bool rc_api_parse_time(const char *s, int64_t *out_us);

/* The store the extension answers from, and its id for logs. */
typedef struct rc_api_store {
    const char *id;
    const rc_usage_store_ops *ops;
    rc_usage_store *store;
} rc_api_store;

/* {"detail": msg} with status; returns status. */
unsigned rc_api_detail(rc_buf *b, unsigned status, const char *msg);
/* 400 for a query the store refused (RC_EINVAL), else 500 (logged). */
unsigned rc_api_store_failed(const rc_api_store *s, rc_buf *b, rc_status st, const rc_error *err);
/* A JSON string: the ISO 8601 UTC time of Unix microseconds us. */
void rc_api_write_time(rc_buf *b, int64_t us);
/* ,"key":value of an object being written, or ,"key":null for a NULL
 * string, a non-finite number (unknown or not set) or a time of 0. */
void rc_api_put_str(rc_buf *b, const char *key, const char *v);
void rc_api_put_num(rc_buf *b, const char *key, double v);
void rc_api_put_time(rc_buf *b, const char *key, int64_t us);
/* ,"key":"<path>?page=N&<rest>" (next / previous), or ,"key":null when
 * that page does not exist; rest holds the other query arguments. */
void rc_api_page_link(rc_buf *b, const char *key, const char *path, const rc_buf *rest,
                      uint64_t page, bool exists);

/* Answers a request under /api/users/; 0 when the path is not one. */
unsigned rc_api_users_answer(const rc_api_store *s, const rc_admin_request *req, rc_buf *b);

/* Customers named in the extension config (`customers: {id: {fields}}`,
 * the users API's field names): parsed at create (errors name file, line
 * and key; *out NULL when none), applied at start as writes from source
 * "config" (to the store, then the ledger), freed with the extension. The
 * config must outlive them. */
typedef struct rc_api_customers rc_api_customers;
struct rc_cfg;
rc_status rc_api_customers_parse(struct rc_cfg *cfg, rc_api_customers **out, rc_error *err);
rc_status rc_api_customers_apply(const rc_api_store *s, const rc_api_customers *cs, rc_error *err);
void rc_api_customers_free(rc_api_customers *cs);

/* Budget alerts (respan_api_alerts.c). parse reads the extension config's
 * `alerts` (*out NULL when absent); id is the extension's and must outlive
 * them. start begins delivering; stop ends it (queued alerts are logged as
 * not delivered); free releases a parsed or stopped one (NULL: no-op). */
typedef struct rc_api_alerts rc_api_alerts;
rc_status rc_api_alerts_parse(struct rc_cfg *cfg, const char *id, rc_api_alerts **out,
                              rc_error *err);
rc_status rc_api_alerts_start(rc_api_alerts *a, rc_error *err);
void rc_api_alerts_stop(rc_api_alerts *a);
void rc_api_alerts_free(rc_api_alerts *a);

/* The name-based UUID (version 5, RFC 9562) of `name` in namespace ns, as
 * 36 characters and a NUL. */
void rc_uuid5(const uint8_t ns[16], const char *name, size_t len, char out[37]);

#endif
