/*
 * health_check.c - the `health_check` extension, as in the OpenTelemetry
 * Collector: GET / (or the configured path) answers 200 with
 * {"status":"Server available"} while every pipeline runs, and 503 with
 * {"status":"Server not available"} during start-up and shutdown, so a
 * load balancer stops sending before the collector stops accepting.
 *
 * Config (extensions.health_check):
 *   endpoint: "127.0.0.1:13133"
 *   path: "/"
 */
#include "core/admin_http.h"
#include "core/component.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct health_check {
    char *id;
    char *path;
    rc_endpoint endpoint;
    rc_admin_server *server;
} health_check;

static void health_destroy(void *inst)
{
    health_check *h = inst;
    if (!h) return;
    free(h->path);
    free(h->id);
    free(h);
}

static void *health_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    const char *endpoint, *path;
    char why[256];
    if (rc_cfg_string(cfg, "endpoint", "127.0.0.1:13133", &endpoint, err) ||
        rc_cfg_string(cfg, "path", "/", &path, err))
        return NULL;
    health_check *h = calloc(1, sizeof *h);
    if (!h || !(h->id = strdup(id->id)) || !(h->path = strdup(path))) {
        rc_error_set(err, "out of memory");
        health_destroy(h);
        return NULL;
    }
    if (!rc_endpoint_parse(endpoint, &h->endpoint, why, sizeof why)) {
        rc_cfg_error(err, rc_cfg_get(cfg, "endpoint"), "%s", why);
        health_destroy(h);
        return NULL;
    }
    if (path[0] != '/') {
        rc_cfg_error(err, rc_cfg_get(cfg, "path"), "path must start with /");
        health_destroy(h);
        return NULL;
    }
    if (rc_cfg_reject_unknown(cfg, err) != RC_OK) {
        health_destroy(h);
        return NULL;
    }
    return h;
}

static unsigned health_answer(void *arg, const char *method, const char *path, rc_buf *body,
                              const char **ctype)
{
    health_check *h = arg;
    *ctype = "application/json";
    if (strcmp(path, h->path) != 0) {
        rc_buf_puts(body, "{\"status\":\"Not found\"}");
        return 404;
    }
    if (rc_service_is_ready()) {
        rc_buf_puts(body, "{\"status\":\"Server available\"}");
        return 200;
    }
    rc_buf_puts(body, "{\"status\":\"Server not available\"}");
    return 503;
}

static rc_status health_start(void *inst, rc_error *err)
{
    health_check *h = inst;
    h->server = rc_admin_server_start(h->id, &h->endpoint, health_answer, h, err);
    if (!h->server) return RC_EIO;
    rc_info(h->id, "health check on http://%s%s", h->endpoint.text, h->path);
    return RC_OK;
}

static void health_shutdown(void *inst)
{
    health_check *h = inst;
    rc_admin_server_stop(h->server);
    h->server = NULL;
}

const rc_extension_factory rc_health_check_extension_factory = {
    .type = "health_check",
    .description = "HTTP health check: 200 {\"status\":\"Server available\"} while running",
    .create = health_create,
    .start = health_start,
    .shutdown = health_shutdown,
    .destroy = health_destroy,
};
