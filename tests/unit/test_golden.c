/*
 * test_golden.c - data-driven tests of the OTLP codecs.
 *
 * Every input file in tests/golden/decode/ is one case:
 *   NAME.json or NAME.pb        the request body (OTLP/JSON or protobuf)
 *   NAME.expected.json          what otlp_json_encode must write for it,
 *                               stored indented; compared after removing
 *                               the whitespace between tokens, so key order,
 *                               number forms and escapes are all checked
 *   NAME.error                  instead: the decoder must fail with RC_EINVAL
 *                               and a message containing this text
 * Adding a case is adding files. Each successful case is also round-tripped:
 * protobuf-encoded, decoded again and JSON-encoded again, and its JSON
 * output decoded again and re-encoded; both must reproduce the expected
 * text exactly.
 *
 * The data is found under $RC_SOURCE_DIR (set by ctest), else the current
 * directory. A few checks that are not decode cases (memory limit, status
 * and response bodies) follow the table. With RC_GOLDEN_UPDATE=1 missing .expected.json files are
 * written instead of compared: review them, and check them against the
 * inputs with tests/golden/decode_reference.py (an independent Python
 * implementation) before committing.
 */
#include "otlp/otlp.h"

#include "support.h"
#include "testing.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CASES 512
/* Room for the 1 KiB data directory, a file name and a suffix. */
#define PATH_LEN 1536

static bool write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Drops whitespace outside strings, so indented expectations compare with
 * the encoder's compact output token for token. */
static void minify(const char *s, size_t n, rc_buf *out)
{
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            rc_buf_putc(out, c);
            if (c == '\\' && i + 1 < n)
                rc_buf_putc(out, s[++i]);
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
            rc_buf_putc(out, c);
        } else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
            rc_buf_putc(out, c);
        }
    }
    rc_buf_putc(out, '\0');
    out->len--;
}

static void newline(rc_buf *out, int indent)
{
    rc_buf_putc(out, '\n');
    for (int i = 0; i < indent; i++)
        rc_buf_append(out, "  ", 2);
}

/* Indents compact JSON without touching any token (numbers keep their
 * exact text), for writing readable expectation files. */
static void indent_json(const char *s, size_t n, rc_buf *out)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            rc_buf_putc(out, c);
            if (c == '\\' && i + 1 < n)
                rc_buf_putc(out, s[++i]);
            else if (c == '"')
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            rc_buf_putc(out, c);
            break;
        case '{':
        case '[':
            rc_buf_putc(out, c);
            if (i + 1 < n && (s[i + 1] == '}' || s[i + 1] == ']')) {
                rc_buf_putc(out, s[++i]);
                break;
            }
            newline(out, ++depth);
            break;
        case '}':
        case ']':
            newline(out, --depth);
            rc_buf_putc(out, c);
            break;
        case ',':
            rc_buf_putc(out, c);
            newline(out, depth);
            break;
        case ':':
            rc_buf_append(out, ": ", 2);
            break;
        default:
            rc_buf_putc(out, c);
        }
    }
    rc_buf_putc(out, '\n');
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static rc_status decode(bool is_json, const char *data, size_t len, rc_arena *arena,
                        otlp_export_request **req, rc_error *err)
{
    if (is_json) return otlp_json_decode(data, len, arena, req, err);
    return otlp_proto_decode((const uint8_t *)data, len, arena, req, err);
}

/* Re-decodes `encoded` (as JSON or protobuf) and checks that it encodes to
 * `want` again. */
static void check_round_trip(const char *name, const char *how, bool as_json, const rc_buf *encoded,
                             const char *want)
{
    rc_arena *arena = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    rc_error err = {{0}};
    rc_status st = decode(as_json, encoded->data, encoded->len, arena, &req, &err);
    if (st != RC_OK) {
        CHECK(!"round trip decode failed");
        fprintf(stderr, "  case %s (%s): %s\n", name, how, err.msg);
        rc_arena_free(arena);
        return;
    }
    rc_buf again = RC_BUF_INIT;
    otlp_json_encode(req, &again);
    rc_buf_putc(&again, '\0');
    if (strcmp(again.data, want) != 0) {
        CHECK(!"round trip changed the request");
        fprintf(stderr, "  case %s (%s)\n  got:  %s\n  want: %s\n", name, how, again.data, want);
    } else {
        CHECK(1);
    }
    rc_buf_free(&again);
    rc_arena_free(arena);
}

static void check_error_case(const char *name, const char *dir, rc_status st, const rc_error *err)
{
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/%s.error", dir, name);
    size_t len;
    char *want = test_read_file(path, &len);
    while (len > 0 && (want[len - 1] == '\n' || want[len - 1] == '\r'))
        want[--len] = '\0';
    if (st != RC_EINVAL) {
        CHECK(!"expected RC_EINVAL");
        fprintf(stderr, "  case %s: status %d\n", name, (int)st);
    } else {
        CHECK_CONTAINS(err->msg, want);
    }
    free(want);
}

static void check_expected(const char *name, const char *dir, const rc_buf *got)
{
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/%s.expected.json", dir, name);
    size_t len;
    char *text = test_read_file(path, &len);
    if (!text) {
        if (getenv("RC_GOLDEN_UPDATE")) {
            rc_buf pretty = RC_BUF_INIT;
            indent_json(got->data, got->len, &pretty);
            CHECK(write_file(path, pretty.data, pretty.len));
            fprintf(stderr, "  wrote %s: review it\n", path);
            rc_buf_free(&pretty);
        } else {
            CHECK(!"missing .expected.json (run with RC_GOLDEN_UPDATE=1 to create)");
            fprintf(stderr, "  case %s\n", name);
        }
        return;
    }
    rc_buf want = RC_BUF_INIT;
    minify(text, len, &want);
    if (strcmp(got->data, want.data) != 0) {
        CHECK(!"encoded JSON differs from the expectation");
        fprintf(stderr, "  case %s\n  got:  %s\n  want: %s\n", name, got->data, want.data);
    } else {
        CHECK(1);
    }
    rc_buf_free(&want);
    free(text);
}

static void run_case(const char *dir, const char *file)
{
    bool is_json = has_suffix(file, ".json");
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(strlen(file) - (is_json ? 5 : 3)), file);

    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len;
    char *input = test_read_file(path, &len);
    CHECK(input != NULL);
    if (!input) return;

    snprintf(path, sizeof path, "%s/%s.error", dir, name);
    FILE *probe = fopen(path, "r");
    bool expect_error = probe != NULL;
    if (probe) fclose(probe);

    rc_arena *arena = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    rc_error err = {{0}};
    rc_status st = decode(is_json, input, len, arena, &req, &err);
    if (expect_error) {
        check_error_case(name, dir, st, &err);
    } else if (st != RC_OK) {
        CHECK(!"decode failed");
        fprintf(stderr, "  case %s: %s\n", name, err.msg);
    } else {
        rc_buf json = RC_BUF_INIT;
        otlp_json_encode(req, &json);
        rc_buf_putc(&json, '\0');
        json.len--;
        check_expected(name, dir, &json);

        rc_buf proto = RC_BUF_INIT;
        otlp_proto_encode(req, &proto);
        CHECK(!proto.failed);
        check_round_trip(name, "via protobuf", false, &proto, json.data);
        check_round_trip(name, "via JSON", true, &json, json.data);
        rc_buf_free(&proto);
        rc_buf_free(&json);
    }
    rc_arena_free(arena);
    free(input);
}

/* --- checks that are not decode cases -------------------------------------- */

static void test_memory_limit(const char *dir)
{
    const char *inputs[] = {"sdk-proto-openllmetry.pb", "sdk-json-openllmetry.json"};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_LEN];
        snprintf(path, sizeof path, "%s/%s", dir, inputs[i]);
        size_t len;
        char *data = test_read_file(path, &len);
        CHECK(data != NULL);
        if (!data) continue;
        rc_arena *arena = rc_arena_new(1024);
        rc_arena_set_max(arena, 2048);
        otlp_export_request *req = NULL;
        rc_error err = {{0}};
        rc_status st = decode(has_suffix(inputs[i], ".json"), data, len, arena, &req, &err);
        CHECK(st == RC_ENOMEM);
        CHECK_CONTAINS(err.msg, "memory limit reached");
        rc_arena_free(arena);
        free(data);
    }
}

static void test_count_spans(const char *dir)
{
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/sdk-proto-openllmetry.pb", dir);
    size_t len;
    char *data = test_read_file(path, &len);
    CHECK(data != NULL);
    if (!data) return;
    rc_arena *arena = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    rc_error err = {{0}};
    CHECK(otlp_proto_decode((const uint8_t *)data, len, arena, &req, &err) == RC_OK);
    CHECK(otlp_count_spans(req) == 3);
    CHECK(otlp_count_spans(NULL) == 0);
    rc_arena_free(arena);
    free(data);
}

static char *take(rc_buf *b)
{
    rc_buf_putc(b, '\0');
    return b->data;
}

static void test_status_bodies(void)
{
    rc_buf b = RC_BUF_INIT;
    otlp_status_encode_json(RPC_CODE_UNAVAILABLE, "queue \"full\"", &b);
    CHECK_STR(take(&b), "{\"code\":14,\"message\":\"queue \\\"full\\\"\"}");
    rc_buf_reset(&b);
    otlp_status_encode_json(RPC_CODE_OK, "", &b);
    CHECK_STR(take(&b), "{}");
    rc_buf_reset(&b);

    otlp_status_encode_proto(RPC_CODE_UNAVAILABLE, "busy", 7, &b);
    rpc_status *st = google__rpc__status__unpack(NULL, b.len, (const uint8_t *)b.data);
    CHECK(st != NULL);
    if (st) {
        CHECK(st->code == 14);
        CHECK_STR(st->message, "busy");
        CHECK(st->n_details == 1);
        if (st->n_details == 1) {
            CHECK_STR(st->details[0]->type_url, "type.googleapis.com/google.rpc.RetryInfo");
            Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(
                NULL, st->details[0]->value.len, st->details[0]->value.data);
            CHECK(ri && ri->retry_delay && ri->retry_delay->seconds == 7);
            if (ri) google__rpc__retry_info__free_unpacked(ri, NULL);
        }
        google__rpc__status__free_unpacked(st, NULL);
    }
    rc_buf_reset(&b);
    otlp_status_encode_proto(RPC_CODE_INVALID_ARGUMENT, "bad", 0, &b);
    st = google__rpc__status__unpack(NULL, b.len, (const uint8_t *)b.data);
    CHECK(st && st->code == 3 && st->n_details == 0);
    if (st) google__rpc__status__free_unpacked(st, NULL);
    rc_buf_free(&b);
}

static void test_response_bodies(void)
{
    rc_buf b = RC_BUF_INIT;
    otlp_response_encode_proto(0, "", &b);
    CHECK(b.len == 0 && !b.failed);
    otlp_response_encode_proto(0, NULL, &b);
    CHECK(b.len == 0);
    otlp_response_encode_json(0, NULL, &b);
    CHECK_STR(take(&b), "{}");
    rc_buf_reset(&b);
    otlp_response_encode_json(2, "2 spans dropped", &b);
    CHECK_STR(take(&b), "{\"partialSuccess\":{\"rejectedSpans\":\"2\",\"errorMessage\":\"2 spans "
                        "dropped\"}}");
    rc_buf_reset(&b);
    otlp_response_encode_json(0, "warning only", &b);
    CHECK_STR(take(&b), "{\"partialSuccess\":{\"errorMessage\":\"warning only\"}}");
    rc_buf_reset(&b);

    otlp_response_encode_proto(5, "dropped", &b);
    otlp_export_response *r =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, b.len, (const uint8_t *)b.data);
    CHECK(r && r->partial_success);
    if (r && r->partial_success) {
        CHECK(r->partial_success->rejected_spans == 5);
        CHECK_STR(r->partial_success->error_message, "dropped");
    }
    if (r)
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
            r, NULL);
    rc_buf_free(&b);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *root = getenv("RC_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/golden/decode", root && *root ? root : ".");

    DIR *dp = opendir(dir);
    CHECK(dp != NULL);
    if (!dp) {
        fprintf(stderr, "cannot open %s\n", dir);
        TEST_MAIN_END();
    }
    char *names[MAX_CASES];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < MAX_CASES) {
        const char *f = e->d_name;
        bool input =
            (has_suffix(f, ".json") && !has_suffix(f, ".expected.json")) || has_suffix(f, ".pb");
        if (input) names[n++] = strdup(f);
    }
    closedir(dp);
    qsort(names, n, sizeof names[0], compare_names);

    CHECK(n > 0);
    for (size_t i = 1; i < n; i++) {
        /* NAME.json and NAME.pb would share NAME.expected.json. */
        size_t a = strcspn(names[i - 1], "."), b = strcspn(names[i], ".");
        if (a == b && strncmp(names[i - 1], names[i], a) == 0) {
            CHECK(!"two inputs share a case name");
            fprintf(stderr, "  %s and %s\n", names[i - 1], names[i]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        run_case(dir, names[i]);
        free(names[i]);
    }
    printf("%zu golden cases\n", n);

    RUN(test_memory_limit(dir));
    RUN(test_count_spans(dir));
    RUN(test_status_bodies());
    RUN(test_response_bodies());
    TEST_MAIN_END();
}
