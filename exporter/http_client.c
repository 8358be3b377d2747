/*
 * http_client.c - one HTTP POST at a time over libcurl (see http_client.h).
 *
 * Each client owns an easy handle (whose connection libcurl keeps alive
 * between requests) and a multi handle to run it on: curl_multi_poll in
 * short slices lets a transfer be cut short when delivery aborts at
 * shutdown, which curl_easy_perform cannot.
 */
#include "exporter/http_client.h"

#include "core/buf.h"
#include "otlp/compression.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The body handed to libcurl piece by piece from the queued items: the
 * opening, the items with separators between, the closing. libcurl copies
 * what it sends into its own buffer anyway, so assembling the body first
 * would copy every byte once more (3% of the CPU at full load). Pieces are
 * numbered 0 (opening), odd (item k/2), even (a separator) and 2n
 * (closing). */
typedef struct body_reader {
    const rc_http_body *body;
    size_t piece, off; /* where the next byte comes from */
} body_reader;

struct rc_http_client {
    const rc_http_settings *set;
    const struct rc_delivery *d;
    CURL *easy;
    CURLM *multi;
    struct curl_slist *headers;
    rc_buf whole, gz, response; /* whole: assembled only to be compressed */
    body_reader reader;
    char retry_after[RC_HTTP_RETRY_AFTER_MAX];
    char content_type[128];
};

/* --- Retry-After ------------------------------------------------------------- */

bool rc_http_retry_after_header(const char *line, size_t len, char *out, size_t cap)
{
    if (len <= 12 || strncasecmp(line, "retry-after:", 12) != 0) return false;
    /* The value is trimmed of RFC 9110 whitespace (space and tab) and of
     * the line break; a NUL byte, which no valid value has, ends it. */
    const char *nul = memchr(line, '\0', len);
    size_t v = 12, e = nul ? (size_t)(nul - line) : len;
    while (v < e && (line[v] == ' ' || line[v] == '\t'))
        v++;
    while (e > v && (line[e - 1] == '\r' || line[e - 1] == '\n' || line[e - 1] == ' ' ||
                     line[e - 1] == '\t'))
        e--;
    snprintf(out, cap, "%.*s", (int)(e - v), line + v);
    return true;
}

int64_t rc_http_retry_after_ms(const char *v, int64_t now_s)
{
    if (!v[0]) return -1;
    char *end;
    double secs = strtod(v, &end);
    if (end != v && *end == '\0' && secs >= 0 && secs < RC_HTTP_RETRY_AFTER_MAX_S)
        return (int64_t)(secs * 1000);
    time_t when = curl_getdate(v, NULL);
    if (when < 0) return -1;
    int64_t d = (int64_t)when - now_s;
    if (d >= RC_HTTP_RETRY_AFTER_MAX_S) return -1; /* as a number that large is */
    return d < 0 ? 0 : d * 1000;
}

/* --- the body ---------------------------------------------------------------- */

static size_t body_length(const rc_http_body *b)
{
    size_t total = strlen(b->open) + strlen(b->close) + (b->n - 1) * strlen(b->sep);
    for (size_t i = 0; i < b->n; i++)
        total += b->items[i].len;
    return total;
}

static const char *body_piece(const body_reader *r, size_t *len)
{
    const rc_http_body *b = r->body;
    if (r->piece == 0) {
        *len = strlen(b->open);
        return b->open;
    }
    if (r->piece == 2 * b->n) {
        *len = strlen(b->close);
        return b->close;
    }
    if (r->piece % 2 == 0) {
        *len = strlen(b->sep);
        return b->sep;
    }
    const rc_delivery_item *it = &b->items[r->piece / 2];
    *len = it->len;
    return it->p;
}

/* CURLOPT_READFUNCTION: the next bytes of the body; 0 at its end. */
static size_t body_read(char *dst, size_t size, size_t nitems, void *arg)
{
    body_reader *r = arg;
    size_t room = size * nitems, got = 0;
    while (got < room && r->piece <= 2 * r->body->n) {
        size_t len;
        const char *p = body_piece(r, &len);
        size_t take = len - r->off < room - got ? len - r->off : room - got;
        memcpy(dst + got, p + r->off, take);
        got += take;
        r->off += take;
        if (r->off == len) {
            r->piece++;
            r->off = 0;
        }
    }
    return got;
}

/* CURLOPT_SEEKFUNCTION: libcurl rewinds a body it must send again (a
 * reused connection found closed); only back to the start is needed. */
static int body_seek(void *arg, curl_off_t offset, int origin)
{
    body_reader *r = arg;
    if (offset != 0 || origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
    r->piece = r->off = 0;
    return CURL_SEEKFUNC_OK;
}

/* --- the transfer ------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    rc_buf *b = arg;
    size_t len = size * n;
    if (b->len + len <= RC_HTTP_MAX_RESPONSE_BYTES) rc_buf_append(b, data, len);
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    rc_http_client *c = arg;
    size_t len = size * n;
    rc_http_retry_after_header(data, len, c->retry_after, sizeof c->retry_after);
    return len;
}

static void init_curl(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

rc_http_client *rc_http_client_new(const rc_http_settings *set, const struct rc_delivery *d,
                                   rc_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_curl);
    rc_http_client *c = calloc(1, sizeof *c);
    if (!c) {
        rc_error_set(err, "out of memory");
        return NULL;
    }
    c->set = set;
    c->d = d;
    struct curl_slist *h = NULL, *t;
    bool ok = (c->easy = curl_easy_init()) && (c->multi = curl_multi_init());
    char ct[160];
    snprintf(ct, sizeof ct, "Content-Type: %s", set->content_type);
    ok = ok && (t = curl_slist_append(h, ct)) && (h = t);
    /* No "Expect: 100-continue" (libcurl asks for it past 1 MiB): waiting
     * for the go-ahead costs a round trip per batch, and a refused batch
     * costs only its upload. */
    ok = ok && (t = curl_slist_append(h, "Expect:")) && (h = t);
    if (ok && set->gzip) ok = (t = curl_slist_append(h, "Content-Encoding: gzip")) && (h = t);
    for (size_t i = 0; ok && i < set->n_headers; i++)
        ok = (t = curl_slist_append(h, set->headers[i])) && (h = t);
    c->headers = h;
    if (!ok) {
        rc_error_set(err, "cannot initialise libcurl");
        rc_http_client_free(c);
        return NULL;
    }
    return c;
}

void rc_http_client_free(rc_http_client *c)
{
    if (!c) return;
    if (c->multi) curl_multi_cleanup(c->multi);
    if (c->easy) curl_easy_cleanup(c->easy);
    /* The list holds the API key: it should not outlive its use in a core
     * dump. */
    for (struct curl_slist *h = c->headers; h; h = h->next)
        memset(h->data, 0, strlen(h->data));
    curl_slist_free_all(c->headers);
    rc_buf_free(&c->whole);
    rc_buf_free(&c->gz);
    rc_buf_free(&c->response);
    free(c);
}

static void set_request_options(rc_http_client *c, size_t body_len)
{
    const rc_http_settings *set = c->set;
    CURL *e = c->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, set->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "respan-collector/" RC_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(set->timeout_ms < 10000 ? set->timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)set->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->response);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    if (set->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, set->ca_file);
    if (set->insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (set->gzip) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->gz.data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->gz.len);
        return;
    }
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, body_read);
    curl_easy_setopt(e, CURLOPT_READDATA, &c->reader);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, body_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, &c->reader);
}

/* Runs the transfer on the multi handle, so that an abort can cut it
 * short; returns the transfer's result code. */
static CURLcode perform(rc_http_client *c)
{
    CURLcode rc = CURLE_OK;
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) return CURLE_FAILED_INIT;
    int running = 1;
    while (running) {
        if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
        if (!running) break;
        if (c->d && rc_delivery_aborting(c->d)) {
            rc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        curl_multi_poll(c->multi, NULL, 0, 200, NULL);
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(c->multi, &left)))
        if (msg->msg == CURLMSG_DONE && rc == CURLE_OK) rc = msg->data.result;
    curl_multi_remove_handle(c->multi, c->easy);
    return rc;
}

/* Assembles the whole body and compresses it into c->gz. */
static bool compress_body(rc_http_client *c, size_t total)
{
    rc_buf_reset(&c->whole);
    if (!rc_buf_reserve(&c->whole, total)) return false;
    c->whole.len = body_read(c->whole.data, 1, total, &c->reader);
    c->reader.piece = c->reader.off = 0;
    return rc_gzip(c->whole.data, c->whole.len, 6, &c->gz);
}

long rc_http_post(rc_http_client *c, const rc_http_body *body, rc_http_answer *a)
{
    memset(a, 0, sizeof *a);
    a->content_type = "";
    rc_buf_reset(&c->gz);
    rc_buf_reset(&c->response);
    c->retry_after[0] = c->content_type[0] = '\0';
    c->reader = (body_reader){body, 0, 0};
    size_t len = body_length(body);
    if (c->set->gzip && !compress_body(c, len)) {
        snprintf(a->error, sizeof a->error, "out of memory building the request");
        return 0;
    }
    set_request_options(c, len);
    CURLcode rc = perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &a->status);
        const char *ct = NULL;
        if (curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(c->content_type, sizeof c->content_type, "%s", ct);
    } else {
        /* curl's messages name the host and the failure, never headers. */
        snprintf(a->error, sizeof a->error, "%s", curl_easy_strerror(rc));
    }
    a->body = c->response.data ? c->response.data : "";
    a->body_len = c->response.len;
    a->content_type = c->content_type;
    snprintf(a->retry_after, sizeof a->retry_after, "%s", c->retry_after);
    return a->status;
}
