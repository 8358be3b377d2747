/*
 * admin_http.c - GET-only HTTP server for health and metrics (see
 * admin_http.h), on libmicrohttpd.
 */
#include "core/admin_http.h"

#include "core/log.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rc_admin_server {
    struct MHD_Daemon *daemon;
    int fd;
    rc_admin_handler handler;
    void *arg;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    rc_admin_server *s = cls;
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
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body.len, body.len ? body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    rc_buf_free(&body);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

rc_admin_server *rc_admin_server_start(const char *name, const rc_endpoint *ep,
                                       rc_admin_handler handler, void *arg, rc_error *err)
{
    char why[256];
    rc_admin_server *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "%s: out of memory", name);
        return NULL;
    }
    s->handler = handler;
    s->arg = arg;
    s->fd = rc_endpoint_listen(ep, why, sizeof why);
    if (s->fd < 0) {
        rc_error_set(err, "%s: %s", name, why);
        free(s);
        return NULL;
    }
    s->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, answer, s,
                         MHD_OPTION_LISTEN_SOCKET, s->fd, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (!s->daemon) {
        rc_error_set(err, "%s: cannot start the HTTP server on %s", name, ep->text);
        close(s->fd);
        free(s);
        return NULL;
    }
    return s;
}

void rc_admin_server_stop(rc_admin_server *s)
{
    if (!s) return;
    MHD_stop_daemon(s->daemon); /* closes the listening socket it was given */
    free(s);
}
