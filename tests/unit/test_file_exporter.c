/*
 * test_file_exporter.c - the `file` exporter writes one whole OTLP/JSON
 * line per batch, and a write that fails part-way (a full disk, simulated
 * with RLIMIT_FSIZE) leaves no torn line behind: batches exported after the
 * disk has room again are still readable, line by line.
 */
#include "core/component.h"
#include "core/memlimit.h"
#include "support.h"
#include "testing.h"

#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static rc_batch *batch_of(size_t n, const char *name)
{
    rc_arena *a = rc_arena_new(4096);
    rc_request *r = rc_request_new(a);
    otlp_span **spans = test_request_one_scope(r, NULL, n);
    for (size_t i = 0; i < n; i++) {
        otlp_span *s = spans[i];
        s->name = rc_arena_strdup(a, name);
        s->trace_id.len = 16;
        s->trace_id.data = rc_arena_calloc(a, 16);
        s->span_id.len = 8;
        s->span_id.data = rc_arena_calloc(a, 8);
        s->span_id.data[0] = (uint8_t)(i + 1);
    }
    return rc_batch_from_request(r);
}

/* Every line of the file must be a whole JSON object; returns the count. */
static int count_whole_lines(const char *path, int *bad)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    *bad = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (json_is_object(j))
            n++;
        else
            (*bad)++;
        json_decref(j);
    }
    free(line);
    if (f) fclose(f);
    return n;
}

static void test_full_disk_leaves_no_torn_line(void)
{
    char path[] = "/tmp/rc-file-exporter-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);

    char yaml[256];
    snprintf(yaml, sizeof yaml, "file: { path: \"%s\" }", path);
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(rc_config_parse("t.yaml", yaml, strlen(yaml), &root, &err) == RC_OK);
    const rc_exporter_factory *f = rc_find_exporter("file");
    rc_component_id id = {"file", "file", NULL};
    void *e = f->create(&id, rc_cfg_get(root, "file"), &err);
    CHECK(e && f->start(e, &err) == RC_OK);

    /* A 16 KiB "disk": the first batch fits, the big one fails part-way. */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit small = {16 * 1024, old.rlim_max}; /* soft only: no privilege needed */
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    rc_batch *b1 = batch_of(2, "fits");
    rc_batch *b2 = batch_of(400, "does not fit");
    CHECK(f->export_batch(e, b1, &err) == RC_OK);
    CHECK(f->export_batch(e, b2, &err) == RC_EIO);
    CHECK_CONTAINS(err.msg, "cannot write");
    setrlimit(RLIMIT_FSIZE, &old); /* room again */
    rc_batch *b3 = batch_of(3, "after the disk was freed");
    CHECK(f->export_batch(e, b3, &err) == RC_OK);

    f->shutdown(e);
    f->destroy(e);
    int bad = 0;
    CHECK(count_whole_lines(path, &bad) == 2);
    CHECK(bad == 0);
    rc_batch_free(b1);
    rc_batch_free(b2);
    rc_batch_free(b3);
    rc_config_free(root);
    unlink(path);
    CHECK(rc_mem_in_use() == 0);
}

int main(void)
{
    RUN(test_full_disk_leaves_no_torn_line());
    TEST_MAIN_END();
}
