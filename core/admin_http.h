/*
 * admin_http.h - a small HTTP server for the collector's own endpoints:
 * the health_check extension, the /metrics endpoint and the respan_api
 * extension.
 *
 * It runs libmicrohttpd with one internal thread. Two ways to start it:
 *   rc_admin_server_start       GET (and HEAD) only; any body is ignored
 *                               and other methods get 405. Health and
 *                               metrics use it.
 *   rc_admin_server_start_full  every method, with the request body
 *                               gathered up to a bound, headers and query
 *                               arguments; the handler decides everything,
 *                               including the answer to a method it does
 *                               not serve or to a body over the bound.
 * The handler fills a body and returns the status code. Every request is
 * answered on the server's one thread, so handlers of one server never
 * run concurrently (the respan_api extension relies on this to use one
 * store handle), and never block the data path.
 */
#ifndef RC_ADMIN_HTTP_H
#define RC_ADMIN_HTTP_H

#include "core/buf.h"
#include "core/endpoint.h"
#include "core/error.h"
#include "core/tls.h"

#include <stdbool.h>
#include <stddef.h>

/* Fills `body` and *content_type; returns the HTTP status. */
typedef unsigned (*rc_admin_handler)(void *arg, const char *method, const char *path, rc_buf *body,
                                     const char **content_type);

/* A request as rc_admin_server_start_full hands it over; valid for the
 * handler's call only. */
typedef struct rc_admin_request {
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    bool body_too_large; /* the body passed max_body: `body` is empty */
    void *conn;          /* the server's own */
    /* For a request made without a server (conn NULL: the fuzzers), its
     * query arguments: n_args pairs of key then value, already decoded. */
    const char *const *args;
    size_t n_args;
} rc_admin_request;

typedef unsigned (*rc_admin_request_handler)(void *arg, const rc_admin_request *req, rc_buf *body,
                                             const char **content_type);

/* A request header by name (case-insensitive), or NULL. */
const char *rc_admin_header(const rc_admin_request *req, const char *name);
/* Calls fn for each query argument, URL-decoded, in the order sent; a
 * key without "=" has the value "". Stops when fn returns false. A request
 * with no connection (conn NULL, made by a fuzzer) has its `args`. */
void rc_admin_query_args(const rc_admin_request *req,
                         bool (*fn)(void *arg, const char *key, const char *value), void *arg);

typedef struct rc_admin_server rc_admin_server;

rc_admin_server *rc_admin_server_start(const char *name, const rc_endpoint *ep,
                                       rc_admin_handler handler, void *arg, rc_error *err);
/* tls: NULL or not enabled for plain HTTP; else HTTPS, and with its
 * client_ca_file a request whose client presented no certificate that
 * chains to it is answered 401 before the handler sees it. The config
 * must outlive the server. */
rc_admin_server *rc_admin_server_start_full(const char *name, const rc_endpoint *ep,
                                            const rc_tls_server_config *tls,
                                            rc_admin_request_handler handler, void *arg,
                                            size_t max_body, rc_error *err);
void rc_admin_server_stop(rc_admin_server *s);
/* Serves the certificate now in the server's tls config (rc_tls_reload
 * read it) to new connections; established ones keep theirs. */
rc_status rc_admin_server_reload_tls(rc_admin_server *s, rc_error *err);

#endif
