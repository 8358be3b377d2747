/*
 * admin_http.c - the HTTP server for health, metrics and the respan_api
 * extension (see admin_http.h), on libmicrohttpd.
 *
 * libmicrohttpd calls `answer` several times per request: once with the
 * headers, then once per piece of body, then once more with no body left,
 * which is when we answer. In full mode each connection's request carries
 * a `pending` of its own (the body gathered so far), freed when the
 * request completes, whatever way it ends (request_done).
 */
#include "core/admin_http.h"

#include "core/log.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rc_admin_server {
    rc_mhd_daemons daemons; /* .current accepts; a reload retires the one before */
    int fd;
    rc_admin_handler handler;      /* GET-only mode */
    rc_admin_request_handler full; /* full mode */
    size_t max_body;
    void *arg;
    const rc_tls_server_config *tls; /* NULL: plain HTTP */
};

/* One request in full mode. */
typedef struct pending {
    rc_buf body;
    bool too_large;
} pending;

static enum MHD_Result send_answer(struct MHD_Connection *conn, unsigned status, rc_buf *body,
                                   const char *ctype)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body->len, body->len ? body->data : (void *)"", MHD_RESPMEM_MUST_COPY);
    rc_buf_free(body);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result answer_get_only(rc_admin_server *s, struct MHD_Connection *conn,
                                       const char *url, const char *method, size_t *upload_size,
                                       void **state)
{
    if (!*state) { /* first call: headers only; answer on the next */
        *state = s;
        return MHD_YES;
    }
    if (*upload_size) { /* ignore any body */
        *upload_size = 0;
        return MHD_YES;
    }
    rc_buf body = RC_BUF_INIT;
    const char *ctype = "text/plain; charset=utf-8";
    unsigned status;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        status = s->handler(s->arg, method, url, &body, &ctype);
    } else {
        rc_buf_puts(&body, "only GET is served here\n");
        status = 405;
    }
    return send_answer(conn, status, &body, ctype);
}

/* Keeps body bytes up to max_body; past it, drops them all and remembers,
 * so the handler answers 413 without the server holding an unbounded body. */
static void gather(rc_admin_server *s, pending *p, const char *data, size_t n)
{
    if (p->too_large) return;
    if (n > s->max_body - p->body.len) {
        p->too_large = true;
        rc_buf_free(&p->body);
        return;
    }
    rc_buf_append(&p->body, data, n);
}

static enum MHD_Result answer_full(rc_admin_server *s, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *upload, size_t *upload_size,
                                   void **state)
{
    pending *p = *state;
    if (!p) {
        if (!(p = calloc(1, sizeof *p))) return MHD_NO;
        *state = p;
        return MHD_YES;
    }
    if (*upload_size) {
        gather(s, p, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!rc_tls_mhd_client_verified(s->tls, conn)) {
        rc_buf body = RC_BUF_INIT;
        rc_buf_puts(&body, "{\"detail\":\"a client certificate signed by the server's "
                           "client_ca_file is required\"}");
        return send_answer(conn, 401, &body, "application/json");
    }
    rc_buf_putc(&p->body, 0); /* NUL-terminate for parsers */
    rc_admin_request req = {.method = method,
                            .path = url,
                            .body = p->too_large || !p->body.data ? "" : p->body.data,
                            .body_len = p->too_large || !p->body.len ? 0 : p->body.len - 1,
                            .body_too_large = p->too_large,
                            .conn = conn};
    rc_buf body = RC_BUF_INIT;
    const char *ctype = "application/json";
    unsigned status = s->full(s->arg, &req, &body, &ctype);
    return send_answer(conn, status, &body, ctype);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)version;
    rc_admin_server *s = cls;
    if (s->full) return answer_full(s, conn, url, method, upload, upload_size, state);
    return answer_get_only(s, conn, url, method, upload_size, state);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code)
{
    (void)conn;
    (void)code;
    rc_admin_server *s = cls;
    if (!s->full || !*state) return;
    pending *p = *state;
    rc_buf_free(&p->body);
    free(p);
    *state = NULL;
}

const char *rc_admin_header(const rc_admin_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

typedef struct args_walk {
    bool (*fn)(void *arg, const char *key, const char *value);
    void *arg;
} args_walk;

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    args_walk *w = cls;
    return w->fn(w->arg, key, value ? value : "") ? MHD_YES : MHD_NO;
}

void rc_admin_query_args(const rc_admin_request *req,
                         bool (*fn)(void *arg, const char *key, const char *value), void *arg)
{
    args_walk w = {fn, arg};
    if (!req->conn) { /* a request made without a server (the fuzzers) */
        for (size_t i = 0; i < req->n_args; i++)
            if (!fn(arg, req->args[2 * i], req->args[2 * i + 1])) return;
        return;
    }
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, each_arg, &w);
}

/* A daemon on the server's listening socket, with its certificate as it
 * is now in s->tls. MHD_USE_ITC lets a reload stop it accepting. */
static struct MHD_Daemon *make_daemon(void *arg, int fd)
{
    rc_admin_server *s = arg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    struct MHD_OptionItem tls[RC_TLS_MHD_MAX_OPTIONS] = {{MHD_OPTION_END, 0, NULL}};
    if (s->tls && s->tls->enabled) {
        rc_tls_mhd_options(s->tls, tls);
        flags |= MHD_USE_TLS;
    }
    return MHD_start_daemon(flags, 0, NULL, NULL, answer, s, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_NOTIFY_COMPLETED,
                            request_done, s, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

rc_status rc_admin_server_reload_tls(rc_admin_server *s, rc_error *err)
{
    if (!s || !s->tls || !s->tls->enabled) return RC_OK;
    return rc_tls_mhd_switch(&s->daemons, make_daemon, s, err);
}

static rc_admin_server *start(const char *name, const rc_endpoint *ep, rc_admin_server *s,
                              rc_error *err)
{
    char why[256];
    s->fd = rc_endpoint_listen(ep, why, sizeof why);
    if (s->fd < 0) {
        rc_error_set(err, "%s: %s", name, why);
        free(s);
        return NULL;
    }
    if (!rc_mhd_start(&s->daemons, s->fd, make_daemon, s)) {
        rc_error_set(err, "%s: cannot start the HTTP server on %s", name, ep->text);
        close(s->fd);
        free(s);
        return NULL;
    }
    return s;
}

rc_admin_server *rc_admin_server_start(const char *name, const rc_endpoint *ep,
                                       rc_admin_handler handler, void *arg, rc_error *err)
{
    rc_admin_server *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "%s: out of memory", name);
        return NULL;
    }
    s->handler = handler;
    s->arg = arg;
    return start(name, ep, s, err);
}

rc_admin_server *rc_admin_server_start_full(const char *name, const rc_endpoint *ep,
                                            const rc_tls_server_config *tls,
                                            rc_admin_request_handler handler, void *arg,
                                            size_t max_body, rc_error *err)
{
    rc_admin_server *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "%s: out of memory", name);
        return NULL;
    }
    s->full = handler;
    s->tls = tls;
    s->max_body = max_body;
    s->arg = arg;
    return start(name, ep, s, err);
}

void rc_admin_server_stop(rc_admin_server *s)
{
    if (!s) return;
    rc_mhd_stop(&s->daemons, NULL, NULL); /* closes the listening socket too */
    free(s);
}
