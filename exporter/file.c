/*
 * file.c - the `file` exporter: OTLP/JSON lines.
 *
 * Config (exporters.file):
 *   path: "spans.jsonl"   required; created if missing, appended to
 *
 * Each exported batch becomes one line holding one ExportTraceServiceRequest
 * in OTLP/JSON, the format the OpenTelemetry Collector's file exporter
 * writes, so `respan-collector replay` and other OTLP tools read it back.
 * The line is encoded outside the lock and written with one locked loop of
 * write(2) calls, so concurrent batches never interleave inside a line.
 * A failed write (a full disk) leaves no partial line behind and is reported
 * to the caller, which counts the spans as send_failed.
 */
#include "core/component.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct file_exporter {
    char *id;
    char *path;
    int fd;
    pthread_mutex_t mu;
} file_exporter;

static void file_destroy(void *inst)
{
    file_exporter *e = inst;
    if (!e) return;
    if (e->fd >= 0) close(e->fd);
    pthread_mutex_destroy(&e->mu);
    free(e->path);
    free(e->id);
    free(e);
}

static void *file_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    const char *path = NULL;
    if (rc_cfg_string(cfg, "path", NULL, &path, err) != RC_OK) return NULL;
    if (!path || !path[0]) {
        rc_cfg_error(err, cfg, "the file exporter needs a `path`");
        return NULL;
    }
    if (rc_cfg_reject_unknown(cfg, err) != RC_OK) return NULL;
    file_exporter *e = calloc(1, sizeof *e);
    if (!e) goto oom;
    e->fd = -1;
    pthread_mutex_init(&e->mu, NULL);
    if (!(e->id = strdup(id->id)) || !(e->path = strdup(path))) goto oom;
    return e;
oom:
    rc_error_set(err, "out of memory");
    file_destroy(e);
    return NULL;
}

static rc_status file_start(void *inst, rc_error *err)
{
    file_exporter *e = inst;
    e->fd = open(e->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (e->fd < 0) {
        rc_error_set(err, "%s: cannot open %s: %s", e->id, e->path, strerror(errno));
        return RC_EIO;
    }
    rc_info(e->id, "writing OTLP/JSON lines to %s", e->path);
    return RC_OK;
}

static rc_status write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return RC_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return RC_OK;
}

/* Appends one line, or nothing: a write that fails part-way (a full disk)
 * is cut back to where the line began, so a later line is never glued onto
 * a torn one and every line in the file stays a whole JSON object. Called
 * with the exporter's mutex held. */
static rc_status write_line(file_exporter *e, const char *p, size_t n, rc_error *err)
{
    off_t start = lseek(e->fd, 0, SEEK_END);
    if (write_all(e->fd, p, n) == RC_OK) return RC_OK;
    int saved = errno;
    if (start >= 0 && ftruncate(e->fd, start) != 0)
        rc_error_log(e->id, "cannot cut a partial line off %s: %s", e->path, strerror(errno));
    rc_error_set(err, "%s: cannot write to %s: %s", e->id, e->path, strerror(saved));
    return RC_EIO;
}

static rc_status file_export(void *inst, const rc_batch *batch, rc_error *err)
{
    file_exporter *e = inst;
    rc_arena *scratch = rc_arena_new_scratch(1024 + batch->n_runs * 256);
    rc_buf line = RC_BUF_INIT;
    rc_status st = RC_ENOMEM;
    otlp_export_request *view = scratch ? rc_batch_view(batch, scratch) : NULL;
    if (!view) {
        rc_error_set(err, "%s: out of memory", e->id);
        goto done;
    }
    otlp_json_encode(view, &line);
    rc_buf_putc(&line, '\n');
    if (line.failed) {
        rc_error_set(err, "%s: out of memory encoding %zu spans", e->id, batch->n_spans);
        goto done;
    }
    pthread_mutex_lock(&e->mu);
    st = write_line(e, line.data, line.len, err);
    pthread_mutex_unlock(&e->mu);
done:
    rc_buf_free(&line);
    rc_arena_free(scratch);
    return st;
}

static void file_shutdown(void *inst)
{
    file_exporter *e = inst;
    if (e->fd >= 0 && fsync(e->fd) != 0 && errno != EINVAL)
        rc_warn(e->id, "fsync of %s failed: %s", e->path, strerror(errno));
}

const rc_exporter_factory rc_file_exporter_factory = {
    .type = "file",
    .description = "writes OTLP/JSON lines, one ExportTraceServiceRequest per line",
    .create = file_create,
    .start = file_start,
    .export_batch = file_export,
    .shutdown = file_shutdown,
    .destroy = file_destroy,
};
