/*
 * fuzz_queue.c - libFuzzer target for the durable queue's recovery.
 *
 * A queue directory is input the collector reads back after a crash, a
 * full disk or a bad sector, so recovery is a decoder like the OTLP ones.
 * The input is split into an .ack file (its first two bytes give the ack
 * part's length) and a segment file; the queue is opened on them, every
 * recovered record taken and marked done, and the queue closed. Whatever
 * the bytes, recovery must not crash, leak or hang, and every record it
 * hands out must lie within the segment and match its checksum.
 */
#include "core/log.h"
#include "core/queue.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/rc-fuzz-queue.XXXXXX");
        if (!mkdtemp(dir)) abort();
        rc_log_set_level(RC_LOG_ERROR);
    }
    size_t ack_len = size >= 2 ? ((size_t)data[0] << 8 | data[1]) : 0;
    const uint8_t *rest = size >= 2 ? data + 2 : data;
    size_t rest_len = size >= 2 ? size - 2 : size;
    if (ack_len > rest_len) ack_len = rest_len;
    write_file("0000000000000001.ack", rest, ack_len);
    write_file("0000000000000001.seg", rest + ack_len, rest_len - ack_len);

    rc_queue_options o = {"fuzz", dir, 64u << 20, 0, RC_QUEUE_ASYNC, 0};
    rc_queue *q = NULL;
    rc_error err;
    if (rc_queue_open(&o, &q, &err) == RC_OK) {
        rc_queue_wake(q); /* take what is there without waiting */
        rc_queue_record r[16];
        size_t n;
        while ((n = rc_queue_take(q, r, 16, UINT64_MAX, SIZE_MAX, 0)) > 0) {
            for (size_t i = 0; i < n; i++) {
                if (r[i].len > rest_len) abort(); /* cannot come from this input */
                rc_queue_done(q, &r[i]);
            }
        }
        rc_queue_close(q);
    }
    remove_file("0000000000000001.seg");
    remove_file("0000000000000001.ack");
    remove_file("LOCK");
    return 0;
}
