/*
 * respan_response.c - reading Respan's answers (see respan_response.h).
 *
 * Everything here is a function of the bytes of one answer (and, for an
 * HTTP-date Retry-After, of the current time, which the caller passes):
 * no transfer, no queue, no thread. respan.c calls these from its senders;
 * fuzz/fuzz_respan_response.c calls them with hostile answers.
 */
#include "exporter/respan_response.h"

#include "exporter/http_client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copies at most RC_RESPAN_DETAIL_MAX - 1 bytes of s into `out` for one
 * log line: control characters, NUL and DEL included, become spaces,
 * whether the body had them raw or JSON-escaped ("\n", "\u001b[2J"). */
static void copy_detail(char *out, const char *s, size_t n)
{
    size_t i = 0;
    for (; i < n && i < RC_RESPAN_DETAIL_MAX - 1; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    out[i] = '\0';
}

/* detail: the body's "detail", or the start of the body; and the body's
 * retry_after when the header named no delay. */
static void read_body(rc_respan_answer *a, const char *body, size_t len)
{
    a->detail[0] = '\0';
    json_error_t jerr;
    json_t *root = len ? json_loadb(body, len, 0, &jerr) : NULL;
    json_t *detail = json_is_object(root) ? json_object_get(root, "detail") : NULL;
    if (json_is_string(detail)) {
        copy_detail(a->detail, json_string_value(detail), json_string_length(detail));
    } else if (detail) {
        char *text = json_dumps(detail, JSON_COMPACT);
        copy_detail(a->detail, text ? text : "", text ? strlen(text) : 0);
        free(text);
    } else if (len) {
        copy_detail(a->detail, body, len);
    } else {
        snprintf(a->detail, sizeof a->detail, "HTTP %ld with an empty body", a->status);
    }
    /* Bounded like the header's: a larger number would not even convert
     * to int64_t (1e300 seconds), and no answer may stall delivery for days. */
    json_t *ra = json_is_object(root) ? json_object_get(root, "retry_after") : NULL;
    double secs = json_is_number(ra) ? json_number_value(ra) : -1;
    if (a->retry_after_ms < 0 && secs >= 0 && secs < RC_RESPAN_RETRY_AFTER_MAX_S)
        a->retry_after_ms = (int64_t)(secs * 1000);
    json_decref(root);
}

void rc_respan_read_answer(rc_respan_answer *a, long status, const char *retry_after,
                           const char *body, size_t len, int64_t now_s)
{
    a->status = status;
    a->retry_after_ms = rc_http_retry_after_ms(retry_after, now_s);
    read_body(a, body, len);
}

rc_respan_action rc_respan_action_of(long status)
{
    if (status >= 200 && status < 300) return RC_RESPAN_DELIVERED;
    if (status == 400 || status == 413 || status == 422) return RC_RESPAN_BISECT;
    if (status == 429) return RC_RESPAN_RATE_LIMITED;
    if (status >= 400 && status < 500 && status != 408) return RC_RESPAN_REFUSED;
    return RC_RESPAN_RETRY;
}

int64_t rc_respan_asked_wait_ms(const rc_respan_answer *a)
{
    return a->status == 429 || a->status == 503 ? a->retry_after_ms : -1;
}

void rc_respan_items_open(rc_respan_items *it, const char *body, size_t len, size_t n_logs)
{
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, 0, &jerr);
    json_t *results = json_is_object(root) ? json_object_get(root, "results") : NULL;
    it->root = root;
    it->n = json_is_array(results) ? json_array_size(results) : 0;
    if (it->n > n_logs) it->n = n_logs;
    it->next = 0;
}

bool rc_respan_items_next_failed(rc_respan_items *it, size_t *index, const char **detail)
{
    json_t *results = it->n ? json_object_get(it->root, "results") : NULL;
    while (it->next < it->n) {
        size_t i = it->next++;
        json_t *item = json_array_get(results, i);
        json_t *status = json_object_get(item, "status");
        bool failed = json_is_string(status) && strcmp(json_string_value(status), "success") != 0;
        if (!failed) continue;
        json_t *d = json_object_get(item, "detail");
        if (json_is_string(d))
            copy_detail(it->detail, json_string_value(d), json_string_length(d));
        else
            copy_detail(it->detail, "item failed", strlen("item failed"));
        *index = i;
        *detail = it->detail;
        return true;
    }
    return false;
}

void rc_respan_items_close(rc_respan_items *it)
{
    json_decref(it->root);
    it->root = NULL;
    it->n = it->next = 0;
}
