/*
 * sink.c - a fast stand-in for Respan's ingest API, for benchmarks only.
 *
 * The respan exporter benchmark (bench/respan.sh) needs a receiver that
 * keeps up with 100k+ request logs per second on a shared 2-core machine;
 * the Python stand-in of the tests (tests/lib/respan_standin.py) cannot.
 * This one parses nothing: it accepts
 *
 *   POST .../v1/traces/ingest            -> 200 {"status":"success"}
 *   POST .../request-logs/batch/create   -> 200 {"results":[{"status":"success"},...]}
 *                                           one entry per log in the body
 *   GET  /count                          -> "LOGS REQUESTS BYTES\n"
 *
 * and counts a log for every occurrence of "span_unique_id" (with its
 * quotes) in a body, which the exporter writes exactly once per request
 * log. Counting is streamed over the chunks libmicrohttpd hands over, so
 * bodies are never buffered; an occurrence split across two chunks is
 * found in a small seam buffer. Compressed bodies are refused (415): they
 * could not be counted, and the benchmark configs send none.
 *
 *   sink [--port N] [--threads N]
 *
 * Listens on 127.0.0.1:N (0, the default: a free port), prints the port
 * on the first line of stdout, and serves until SIGINT or SIGTERM. The
 * counters are totals since start; take differences between two reads.
 */
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARK "\"span_unique_id\""
#define MARK_LEN (sizeof MARK - 1)
#define INGEST_SUFFIX "/v1/traces/ingest"
#define BATCH_SUFFIX "/request-logs/batch/create"
#define RESULT_ITEM "{\"status\":\"success\"}"

static atomic_uint_fast64_t total_logs, total_requests, total_bytes;

typedef enum { ROUTE_INGEST, ROUTE_BATCH } route;

/* One POST in progress. `seam` holds the last MARK_LEN - 1 bytes seen, so
 * that a mark cut in two by a chunk boundary is still counted once. */
typedef struct upload {
    route route;
    uint64_t logs, bytes;
    char seam[MARK_LEN - 1];
    size_t seam_len;
} upload;

static uint64_t count_marks(const char *p, size_t n)
{
    uint64_t found = 0;
    const char *end = p + n;
    while ((size_t)(end - p) >= MARK_LEN) {
        const char *hit = memmem(p, (size_t)(end - p), MARK, MARK_LEN);
        if (!hit) break;
        found++;
        p = hit + MARK_LEN;
    }
    return found;
}

/* Neither side of a seam is long enough to hold a whole mark, so what is
 * found in seam + head must straddle the boundary. */
static void count_chunk(upload *u, const char *data, size_t n)
{
    char joint[2 * (MARK_LEN - 1)];
    size_t head = n < MARK_LEN - 1 ? n : MARK_LEN - 1;
    memcpy(joint, u->seam, u->seam_len);
    memcpy(joint + u->seam_len, data, head);
    u->logs += count_marks(joint, u->seam_len + head) + count_marks(data, n);
    u->bytes += n;
    /* the new seam: the last MARK_LEN - 1 bytes of seam + data */
    if (n >= MARK_LEN - 1) {
        memcpy(u->seam, data + n - (MARK_LEN - 1), MARK_LEN - 1);
        u->seam_len = MARK_LEN - 1;
    } else {
        size_t keep = u->seam_len + n > MARK_LEN - 1 ? MARK_LEN - 1 - n : u->seam_len;
        memmove(u->seam, u->seam + u->seam_len - keep, keep);
        memcpy(u->seam + keep, data, n);
        u->seam_len = keep + n;
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                              const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    char *body = strdup(text);
    if (!body) return MHD_NO;
    return answer(conn, status, body, strlen(body), "text/plain");
}

static enum MHD_Result answer_count(struct MHD_Connection *conn)
{
    char line[96];
    snprintf(line, sizeof line, "%llu %llu %llu\n", (unsigned long long)atomic_load(&total_logs),
             (unsigned long long)atomic_load(&total_requests),
             (unsigned long long)atomic_load(&total_bytes));
    return answer_text(conn, MHD_HTTP_OK, line);
}

static enum MHD_Result answer_upload(struct MHD_Connection *conn, const upload *u)
{
    atomic_fetch_add(&total_logs, u->logs);
    atomic_fetch_add(&total_requests, 1);
    atomic_fetch_add(&total_bytes, u->bytes);
    if (u->route == ROUTE_INGEST) {
        static const char ok[] = "{\"status\":\"success\"}";
        return answer(conn, MHD_HTTP_OK, strdup(ok), sizeof ok - 1, "application/json");
    }
    static const char open[] = "{\"results\":[", close[] = "]}";
    size_t item = sizeof RESULT_ITEM - 1;
    size_t len = sizeof open - 1 + u->logs * (item + 1) + sizeof close - 1;
    char *body = malloc(len + 1), *p = body;
    if (!body) return MHD_NO;
    p = mempcpy(p, open, sizeof open - 1);
    for (uint64_t i = 0; i < u->logs; i++) {
        if (i) *p++ = ',';
        p = mempcpy(p, RESULT_ITEM, item);
    }
    p = mempcpy(p, close, sizeof close - 1);
    return answer(conn, MHD_HTTP_OK, body, (size_t)(p - body), "application/json");
}

/* The first call for a request sees only its headers: route it (or answer
 * at once), then body chunks arrive, then a call with no data to answer. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    upload *u = *con_cls;
    if (!u) {
        if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 && strcmp(url, "/count") == 0)
            return answer_count(conn);
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST or GET /count\n");
        if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING))
            return answer_text(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                               "the bench sink counts uncompressed bodies only\n");
        route rt;
        if (ends_with(url, INGEST_SUFFIX))
            rt = ROUTE_INGEST;
        else if (ends_with(url, BATCH_SUFFIX))
            rt = ROUTE_BATCH;
        else
            return answer_text(conn, MHD_HTTP_NOT_FOUND, "unknown path\n");
        u = calloc(1, sizeof *u);
        if (!u) return MHD_NO;
        u->route = rt;
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_data_size) {
        count_chunk(u, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer_upload(conn, u);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static bool parse_uint(const char *name, const char *text, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text ? text : "", &end, 10);
    if (!text || errno || end == text || *end || v > max) {
        fprintf(stderr, "sink: %s %s: expected a number from 0 to %lu\n", name,
                text ? text : "(missing)", max);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    unsigned long port = 0, threads = 2;
    for (int i = 1; i < argc; i += 2) { /* option, value */
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok;
        if (strcmp(argv[i], "--port") == 0)
            ok = parse_uint("--port", value, 65535, &port);
        else if (strcmp(argv[i], "--threads") == 0)
            ok = parse_uint("--threads", value, 64, &threads);
        else {
            fprintf(stderr, "usage: sink [--port N] [--threads N]\n");
            return 1;
        }
        if (!ok) return 1;
    }
    if (threads == 0) threads = 1;

    /* Block the stop signals before MHD starts its threads, so that they
     * inherit the mask and only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
        (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sink: cannot listen on 127.0.0.1:%lu\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    return 0;
}
