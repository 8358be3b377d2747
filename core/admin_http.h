/*
 * admin_http.h - a small GET-only HTTP server for the collector's own
 * endpoints: the health_check extension and the /metrics endpoint.
 *
 * It runs libmicrohttpd with one internal thread; the handler fills a body
 * and returns the status code. Requests are tiny and rare, so there is no
 * concern for throughput here, only for never blocking the data path.
 */
#ifndef RC_ADMIN_HTTP_H
#define RC_ADMIN_HTTP_H

#include "core/buf.h"
#include "core/endpoint.h"
#include "core/error.h"

/* Fills `body` and *content_type; returns the HTTP status. */
typedef unsigned (*rc_admin_handler)(void *arg, const char *method, const char *path, rc_buf *body,
                                     const char **content_type);

typedef struct rc_admin_server rc_admin_server;

rc_admin_server *rc_admin_server_start(const char *name, const rc_endpoint *ep,
                                       rc_admin_handler handler, void *arg, rc_error *err);
void rc_admin_server_stop(rc_admin_server *s);

#endif
