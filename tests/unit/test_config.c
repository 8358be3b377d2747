/*
 * test_config.c - the YAML configuration tree and its typed getters.
 *
 * Most cases are rows of tables: a YAML snippet and either the value a
 * getter must return or a piece of the error it must report (file, line,
 * column and key path included). The example config from the README is the
 * contract for the config shape and must read completely. Files under
 * tests/golden/config/ are error cases too: each starts with a line
 * "# error: <expected substring>".
 */
#include "core/config.h"
#include "core/service.h"
#include "testing.h"

#include <dirent.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char example_config[] =
    "receivers:\n"
    "  otlp:\n"
    "    protocols:\n"
    "      grpc: { endpoint: \"127.0.0.1:4317\" }\n"
    "      http: { endpoint: \"127.0.0.1:4318\" }\n"
    "processors:\n"
    "  batch: { send_batch_size: 8192, timeout: 200ms }\n"
    "exporters:\n"
    "  file: { path: \"spans.jsonl\" }\n"
    "  debug: {}\n"
    "extensions:\n"
    "  health_check: { endpoint: \"127.0.0.1:13133\" }\n"
    "service:\n"
    "  extensions: [health_check]\n"
    "  telemetry: { metrics: { endpoint: \"127.0.0.1:8888\" }, logs: { level: info } }\n"
    "  pipelines:\n"
    "    traces: { receivers: [otlp], processors: [batch], exporters: [file] }\n";

static rc_cfg *parse(const char *yaml, rc_error *err)
{
    rc_cfg *root = NULL;
    memset(err, 0, sizeof *err);
    if (rc_config_parse("t.yaml", yaml, strlen(yaml), &root, err) != RC_OK) return NULL;
    return root;
}

/* Follows a dotted path of map keys ("a.b.c"); "" is the node itself. */
static rc_cfg *lookup(rc_cfg *n, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && n; k = strtok_r(NULL, ".", &save))
        n = rc_cfg_get(n, k);
    return n;
}

/* --- the contract: the example config reads completely ------------------ */

static void read_endpoint(rc_cfg *parent, const char *section, const char *want, rc_error *err)
{
    rc_cfg *m = NULL;
    const char *ep = NULL;
    CHECK(rc_cfg_map(parent, section, &m, err) == RC_OK);
    CHECK(rc_cfg_string(m, "endpoint", NULL, &ep, err) == RC_OK);
    CHECK_STR(ep, want);
    CHECK(rc_cfg_reject_unknown(m, err) == RC_OK);
}

static void check_seq1(rc_cfg *map, const char *key, const char *want, const char *want_path)
{
    rc_cfg *s = rc_cfg_get(map, key);
    CHECK(rc_cfg_kind_of(s) == RC_CFG_SEQ);
    CHECK(rc_cfg_len(s) == 1);
    CHECK_STR(rc_cfg_scalar(rc_cfg_at(s, 0)), want);
    CHECK_STR(rc_cfg_path(rc_cfg_at(s, 0)), want_path);
}

static void test_example_config(void)
{
    rc_error err;
    rc_cfg *root = parse(example_config, &err);
    CHECK(root != NULL);
    if (!root) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    rc_cfg *protocols = lookup(root, "receivers.otlp.protocols");
    read_endpoint(protocols, "grpc", "127.0.0.1:4317", &err);
    read_endpoint(protocols, "http", "127.0.0.1:4318", &err);
    CHECK(rc_cfg_line(rc_cfg_get(protocols, "http")) == 5);
    CHECK_STR(rc_cfg_path(rc_cfg_get(rc_cfg_get(protocols, "http"), "endpoint")),
              "receivers.otlp.protocols.http.endpoint");

    rc_cfg *batch = lookup(root, "processors.batch");
    uint64_t size = 0, timeout = 0;
    CHECK(rc_cfg_uint(batch, "send_batch_size", 1, 1, 1 << 20, &size, &err) == RC_OK);
    CHECK(size == 8192);
    CHECK(rc_cfg_duration_ms(batch, "timeout", 0, &timeout, &err) == RC_OK);
    CHECK(timeout == 200);
    CHECK(rc_cfg_reject_unknown(batch, &err) == RC_OK);
    rc_cfg *timeout_node = rc_cfg_get(batch, "timeout");
    CHECK_STR(rc_cfg_path(timeout_node), "processors.batch.timeout");
    CHECK(rc_cfg_line(timeout_node) == 7);
    CHECK(rc_cfg_col(timeout_node) == 44);
    CHECK_STR(rc_cfg_file(timeout_node), "t.yaml");

    rc_cfg *exporters = rc_cfg_get(root, "exporters");
    CHECK(rc_cfg_len(exporters) == 2);
    CHECK_STR(rc_cfg_key_at(exporters, 0), "file");
    CHECK_STR(rc_cfg_key_at(exporters, 1), "debug");
    const char *path = NULL;
    CHECK(rc_cfg_string(rc_cfg_at(exporters, 0), "path", NULL, &path, &err) == RC_OK);
    CHECK_STR(path, "spans.jsonl");
    rc_cfg *debug = rc_cfg_at(exporters, 1);
    CHECK(rc_cfg_kind_of(debug) == RC_CFG_MAP && rc_cfg_len(debug) == 0);

    read_endpoint(rc_cfg_get(root, "extensions"), "health_check", "127.0.0.1:13133", &err);

    rc_cfg *service = rc_cfg_get(root, "service");
    check_seq1(service, "extensions", "health_check", "service.extensions[0]");
    rc_cfg *telemetry = rc_cfg_get(service, "telemetry");
    read_endpoint(telemetry, "metrics", "127.0.0.1:8888", &err);
    const char *level = NULL;
    CHECK(rc_cfg_string(rc_cfg_get(telemetry, "logs"), "level", "warn", &level, &err) == RC_OK);
    CHECK_STR(level, "info");
    rc_cfg *traces = lookup(service, "pipelines.traces");
    check_seq1(traces, "receivers", "otlp", "service.pipelines.traces.receivers[0]");
    check_seq1(traces, "processors", "batch", "service.pipelines.traces.processors[0]");
    check_seq1(traces, "exporters", "file", "service.pipelines.traces.exporters[0]");

    /* everything above was read, at every level */
    const char *maps[] = {"",
                          "receivers",
                          "receivers.otlp",
                          "processors",
                          "exporters",
                          "extensions",
                          "service",
                          "service.telemetry",
                          "service.telemetry.logs",
                          "service.pipelines",
                          "service.pipelines.traces"};
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        CHECK(rc_cfg_reject_unknown(lookup(root, maps[i]), &err) == RC_OK);
    }
    CHECK(rc_cfg_reject_unknown(protocols, &err) == RC_OK);
    rc_config_free(root);
}

/* --- parse errors ------------------------------------------------------- */

static const struct {
    const char *yaml;
    const char *want; /* substring of the error */
} parse_errors[] = {
    {"a: 1\nb: [1, 2\n", "t.yaml:3:1: "},
    {"a: 1\n  b: 2\n", "t.yaml:2:4: mapping values are not allowed"},
    {"a:\n  x: 1\n  y: 2\n  x: 3\n",
     "t.yaml:4:3: a: duplicate key \"x\" (first defined on line 2)"},
    {"- a\n- b\n", "t.yaml:1:1: the top level of the configuration must be a map"},
    {"just text\n", "the top level of the configuration must be a map"},
    {"? [a, b]\n: 1\n", "t.yaml:1:3: a map key must be a plain string, not a sequence"},
    {"x:\n  ? {a: 1}\n  : 1\n", "t.yaml:2:5: x: a map key must be a plain string, not a map"},
    {"\"\": 1\n", "t.yaml:1:1: a map key must not be empty"},
    {"a: &x {b: 1}\nc: *x\n", "t.yaml:2:4: c: aliases (*x) are not supported"},
    {"a: 1\n---\nb: 2\n", "t.yaml:2:1: the configuration must be a single YAML document"},
    {"a: \"unterminated\n", "t.yaml:"},
    {"a:\n\tb: 1\n", "t.yaml:2:1: found character that cannot start any token"},
    {"p:\n  x: \"${env:FOO\"\n", "t.yaml:2:6: p.x: unterminated ${ reference"},
    {"p:\n  x: ${file:/etc/passwd}\n",
     "t.yaml:2:6: p.x: unsupported reference ${file:/etc/passwd}"},
    {"p: ${env:1ABC}\n", "t.yaml:1:4: p: invalid reference ${env:1ABC}"},
    {"p: ${env:}\n", "invalid reference ${env:}"},
    {"p: ${}\n", "invalid reference ${}"},
    {"p: ${env:A B}\n", "invalid reference ${env:A B}"},
    {"p: ${env:A:default}\n", "invalid reference ${env:A:default}"},
    {"p: [a, \"${env:X\"]\n", "t.yaml:1:8: p[1]: unterminated ${ reference"},
    /* nested: checked even when the default is not used, and bounded */
    {"p: \"${env:A:-${env:B}\"\n", "t.yaml:1:4: p: unterminated ${ reference (missing '}')"},
    {"p: ${env:RC_T_SET:-${file:/x}}\n",
     "t.yaml:1:4: p: unsupported reference ${file:/x}: only ${env:NAME} is known"},
    {"p: ${env:A:-${env:B:-${env:C:-${env:D:-${env:E:-${env:F:-${env:G:-${env:H:-${env:I}}}}}}}}}"
     "\n",
     "t.yaml:1:4: p: references nested deeper than 8 levels: ${env:I}"},
};

static void test_parse_errors(void)
{
    for (size_t i = 0; i < sizeof parse_errors / sizeof parse_errors[0]; i++) {
        rc_error err;
        rc_cfg *root = parse(parse_errors[i].yaml, &err);
        CHECK(root == NULL);
        CHECK_CONTAINS(err.msg, parse_errors[i].want);
        rc_config_free(root);
    }
}

static void test_nesting_limit(void)
{
    char yaml[1024];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        yaml[n++] = '[';
    for (int i = 0; i < 100; i++)
        yaml[n++] = ']';
    yaml[n] = '\0';
    char doc[1100];
    snprintf(doc, sizeof doc, "a: %s\n", yaml);
    rc_error err;
    CHECK(parse(doc, &err) == NULL);
    CHECK_CONTAINS(err.msg, "nesting is deeper than 64 levels");
}

/* --- shapes that parse -------------------------------------------------- */

static void test_empty_and_null(void)
{
    const char *empties[] = {"", "\n", "# only a comment\n", "---\n", "~\n", "---\n...\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        rc_error err;
        rc_cfg *root = parse(empties[i], &err);
        CHECK(root != NULL);
        CHECK(rc_cfg_kind_of(root) == RC_CFG_MAP);
        CHECK(rc_cfg_len(root) == 0);
        CHECK_STR(rc_cfg_path(root), "");
        CHECK(rc_cfg_reject_unknown(root, &err) == RC_OK);
        rc_config_free(root);
    }

    rc_error err;
    rc_cfg *root = parse("exporters:\n  debug:\n  other: {}\n  t: ~\n  n: null\n  q: \"\"\n"
                         "  s: ''\n  z: \"null\"\n",
                         &err);
    CHECK(root != NULL);
    rc_cfg *ex = rc_cfg_get(root, "exporters");
    rc_cfg *debug = NULL, *other = NULL, *absent = (rc_cfg *)&err;
    CHECK(rc_cfg_map(ex, "debug", &debug, &err) == RC_OK);
    CHECK(rc_cfg_kind_of(debug) == RC_CFG_NULL);
    CHECK(rc_cfg_line(debug) == 2);
    CHECK(rc_cfg_len(debug) == 0 && rc_cfg_get(debug, "x") == NULL);
    CHECK(rc_cfg_reject_unknown(debug, &err) == RC_OK);
    CHECK(rc_cfg_map(ex, "other", &other, &err) == RC_OK);
    CHECK(rc_cfg_kind_of(other) == RC_CFG_MAP);
    CHECK(rc_cfg_map(ex, "absent", &absent, &err) == RC_OK);
    CHECK(absent == NULL);
    CHECK(rc_cfg_kind_of(rc_cfg_get(ex, "t")) == RC_CFG_NULL);
    CHECK(rc_cfg_kind_of(rc_cfg_get(ex, "n")) == RC_CFG_NULL);
    CHECK_STR(rc_cfg_scalar(rc_cfg_get(ex, "q")), "");
    CHECK_STR(rc_cfg_scalar(rc_cfg_get(ex, "s")), "");
    CHECK_STR(rc_cfg_scalar(rc_cfg_get(ex, "z")), "null");
    const char *s = NULL;
    CHECK(rc_cfg_string(ex, "t", "dflt", &s, &err) == RC_OK);
    CHECK_STR(s, "dflt");
    CHECK(rc_cfg_scalar(debug) == NULL);
    rc_config_free(root);
}

static void test_block_and_flow_sequences(void)
{
    rc_error err;
    rc_cfg *root = parse("a:\n  - x\n  - {k: v}\n  - [1, 2]\nb: {c: [d]}\n", &err);
    CHECK(root != NULL);
    rc_cfg *a = rc_cfg_get(root, "a");
    CHECK(rc_cfg_len(a) == 3);
    CHECK_STR(rc_cfg_path(rc_cfg_at(a, 1)), "a[1]");
    CHECK_STR(rc_cfg_path(rc_cfg_get(rc_cfg_at(a, 1), "k")), "a[1].k");
    CHECK_STR(rc_cfg_path(rc_cfg_at(rc_cfg_at(a, 2), 1)), "a[2][1]");
    CHECK(rc_cfg_line(rc_cfg_at(a, 2)) == 4 && rc_cfg_col(rc_cfg_at(a, 2)) == 5);
    CHECK(rc_cfg_at(a, 3) == NULL);
    CHECK(rc_cfg_key_at(a, 0) == NULL);
    CHECK_STR(rc_cfg_path(rc_cfg_at(rc_cfg_get(rc_cfg_get(root, "b"), "c"), 0)), "b.c[0]");
    rc_config_free(root);
}

/* --- environment substitution ------------------------------------------- */

static const struct {
    const char *value; /* YAML value text */
    const char *want;
} env_cases[] = {
    {"${env:RC_T_SET}", "hello"},
    {"\"${env:RC_T_SET}\"", "hello"},
    {"'x-${env:RC_T_SET}-y'", "x-hello-y"},
    {"${env:RC_T_SET}${env:RC_T_SET}", "hellohello"},
    {"${RC_T_SET}", "hello"},
    {"\"${env:RC_T_UNSET}\"", ""},
    {"\"${env:RC_T_EMPTY}\"", ""},
    {"${env:RC_T_UNSET:-fallback}", "fallback"},
    {"${env:RC_T_EMPTY:-fallback}", "fallback"},
    {"${env:RC_T_SET:-fallback}", "hello"},
    {"\"${env:RC_T_UNSET:-}\"", ""},
    {"${RC_T_UNSET:-short}", "short"},
    {"\"${env:RC_T_UNSET:-a:b c}\"", "a:b c"},
    {"$${env:RC_T_SET}", "${env:RC_T_SET}"},
    {"\"a$${b}c\"", "a${b}c"},
    {"$RC_T_SET", "$RC_T_SET"},
    {"cost$", "cost$"},
    {"a$$b", "a$$b"},
    {"${env:RC_T_REF}", "${env:RC_T_SET}"}, /* not recursive */
    {"${env:RC_T_PORT}", "4317"},
    /* defaults holding references: A, else B, else the text */
    {"${env:RC_T_UNSET:-${env:RC_T_SET:-x}}", "hello"},
    {"${env:RC_T_UNSET:-${env:RC_T_EMPTY:-x}}", "x"},
    {"${env:RC_T_SET:-${env:RC_T_UNSET:-x}}", "hello"},
    {"${RC_T_UNSET:-${RC_T_EMPTY:-${RC_T_PORT}}}", "4317"},
    {"\"${env:RC_T_UNSET:-a-${env:RC_T_SET}-b}/c\"", "a-hello-b/c"},
    {"\"${env:RC_T_UNSET:-$${x}}\"", "${x}"},
    {"\"${env:RC_T_UNSET:-{x}}\"", "{x}"},
    {"${env:RC_T_UNSET:-${env:RC_T_UNSET:-${env:RC_T_UNSET:-${env:RC_T_UNSET:-"
     "${env:RC_T_UNSET:-${env:RC_T_UNSET:-${env:RC_T_UNSET:-${env:RC_T_SET}}}}}}}}",
     "hello"}, /* eight deep */
};

static void test_env(void)
{
    setenv("RC_T_SET", "hello", 1);
    setenv("RC_T_EMPTY", "", 1);
    setenv("RC_T_REF", "${env:RC_T_SET}", 1);
    setenv("RC_T_PORT", "4317", 1);
    unsetenv("RC_T_UNSET");
    for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "k: %s\n", env_cases[i].value);
        rc_error err;
        rc_cfg *root = parse(yaml, &err);
        CHECK(root != NULL);
        if (!root) {
            fprintf(stderr, "  case %zu: %s\n", i, err.msg);
            continue;
        }
        const char *got = NULL;
        CHECK(rc_cfg_string(root, "k", NULL, &got, &err) == RC_OK);
        CHECK_STR(got, env_cases[i].want);
        rc_config_free(root);
    }

    /* substituted text is typed afterwards; keys are not substituted */
    rc_error err;
    rc_cfg *root = parse("n: ${env:RC_T_PORT}\n${env:RC_T_SET}: 1\n", &err);
    uint64_t n = 0;
    CHECK(rc_cfg_uint(root, "n", 0, 1, 65535, &n, &err) == RC_OK && n == 4317);
    CHECK_STR(rc_cfg_key_at(root, 1), "${env:RC_T_SET}");
    rc_config_free(root);
}

/* --- text that is not YAML's --------------------------------------------- */

/* Bytes that are not UTF-8, a NUL or a control character are reported at
 * the line and column of the first one (libyaml's reader would say 1:1).
 * Columns count characters; lines end as libyaml ends them. */
static const struct {
    const char *text;
    size_t len; /* 0: strlen */
    const char *want;
} bad_text[] = {
    {"a: 1\nb: x\0y\n", 12, "t.yaml:2:5: a NUL byte is not allowed in a configuration file"},
    {"a: \"\0\"\n", 7, "t.yaml:1:5: a NUL byte is not allowed in a configuration file"},
    {"a: 1\nb: caf\xe9\n", 0,
     "t.yaml:2:7: invalid UTF-8: byte 0xE9 starts a character that is cut short (a "
     "configuration file must be UTF-8 text)"},
    {"a: \xff\n", 0,
     "t.yaml:1:4: invalid UTF-8: byte 0xFF cannot start a character (a configuration file must "
     "be UTF-8 text)"},
    {"a: \xc0\xaf\n", 0, "t.yaml:1:4: invalid UTF-8: byte 0xC0 cannot start a character"},
    {"a: \xe0\x80\xaf\n", 0,
     "t.yaml:1:4: invalid UTF-8: byte 0xE0 starts a sequence that encodes no character"},
    {"a: \xed\xa0\x80\n", 0, /* a UTF-16 surrogate */
     "t.yaml:1:4: invalid UTF-8: byte 0xED starts a sequence that encodes no character"},
    {"a: \xf0\x9f\x98", 0,
     "t.yaml:1:4: invalid UTF-8: byte 0xF0 starts a character that is cut "
     "short"},
    {"a: caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e \x01\n", 0,
     "t.yaml:1:13: control character U+0001 is not allowed in a configuration file"},
    {"a: \xc2\x80\n", 0, "t.yaml:1:4: control character U+0080 is not allowed"},
    {"a: \xef\xbf\xbe\n", 0, "t.yaml:1:4: character U+FFFE is not allowed"},
    {"a: 1\r\nb: 2\rc: 3\xc2\x85"
     "d: \x7f\n",
     0, "t.yaml:4:4: control character U+007F is not allowed"},
    {"\xef\xbb\xbf"
     "a: \x1b\n",
     0, "t.yaml:1:4: control character U+001B is not allowed"},
};

static void test_bad_text(void)
{
    for (size_t i = 0; i < sizeof bad_text / sizeof *bad_text; i++) {
        rc_error err = {{0}};
        rc_cfg *root = NULL;
        size_t len = bad_text[i].len ? bad_text[i].len : strlen(bad_text[i].text);
        CHECK(rc_config_parse("t.yaml", bad_text[i].text, len, &root, &err) == RC_EINVAL);
        CHECK(root == NULL);
        CHECK_CONTAINS(err.msg, bad_text[i].want);
        rc_config_free(root);
    }
    /* What YAML allows passes: tabs, line breaks, any character, a BOM. */
    rc_error err;
    rc_cfg *root = parse("\xef\xbb\xbf"
                         "a: \"caf\xc3\xa9\t\xe2\x9c\x93 \xf0\x9d\x84\x9e\"\r\nb: 1\n",
                         &err);
    CHECK(root != NULL);
    CHECK_STR(rc_cfg_scalar(rc_cfg_get(root, "a")), "caf\xc3\xa9\t\xe2\x9c\x93 \xf0\x9d\x84\x9e");
    rc_config_free(root);
    /* UTF-16 (with its byte order mark) is left to libyaml, which reads it. */
    static const char utf16[] = "\xff\xfe"
                                "a\0:\0 \0"
                                "1\0\n\0";
    root = NULL;
    CHECK(rc_config_parse("t.yaml", utf16, sizeof utf16 - 1, &root, &err) == RC_OK);
    CHECK_STR(rc_cfg_scalar(rc_cfg_get(root, "a")), "1");
    rc_config_free(root);
    /* ... and a character it refuses there is placed by line and column. */
    static const char utf16_bad[] = "\xfe\xff"
                                    "\0a\0:\0 \0"
                                    "1\0\r\0\n"
                                    "\0b\0:\0 \0\x01";
    root = NULL;
    CHECK(rc_config_parse("t.yaml", utf16_bad, sizeof utf16_bad - 1, &root, &err) == RC_EINVAL);
    CHECK(root == NULL);
    CHECK(strncmp(err.msg, "t.yaml:2:4: ", 12) == 0 && strstr(err.msg, "(the file is UTF-16)"));
}

/* --- typed getters ------------------------------------------------------ */

enum getter { G_STRING, G_UINT, G_BOOL, G_DURATION, G_MAP };

static const struct {
    enum getter g;
    const char *yaml; /* the getters read key "k" of map "m" */
    const char *want; /* value printed as text, or the error substring */
    bool ok;
} getter_cases[] = {
    {G_STRING, "m:\n  k: abc\n", "abc", true},
    {G_STRING, "m:\n  k: 42\n", "42", true},
    {G_STRING, "m:\n  k: \"\"\n", "", true},
    {G_STRING, "m:\n  k:\n", "default", true},
    {G_STRING, "m:\n", "default", true},
    {G_STRING, "m:\n  k: {a: 1}\n", "t.yaml:2:6: m.k: expected a string, got a map", false},
    {G_STRING, "m:\n  k:\n    - a\n", "t.yaml:3:5: m.k: expected a string, got a list", false},
    {G_UINT, "m: {k: 8192}\n", "8192", true},
    {G_UINT, "m: {k: \"10\"}\n", "10", true},
    {G_UINT, "m: {k: 1}\n", "1", true},
    {G_UINT, "m: {k: 100000}\n", "100000", true},
    {G_UINT, "m: {}\n", "7", true},
    {G_UINT, "m: {k: abc}\n",
     "t.yaml:1:8: m.k: expected an integer between 1 and 100000, got \"abc\"", false},
    {G_UINT, "m: {k: 0}\n", "expected an integer between 1 and 100000, got \"0\"", false},
    {G_UINT, "m: {k: 100001}\n", "got \"100001\"", false},
    {G_UINT, "m: {k: -1}\n", "got \"-1\"", false},
    {G_UINT, "m: {k: 1.5}\n", "got \"1.5\"", false},
    {G_UINT, "m: {k: 0x10}\n", "got \"0x10\"", false},
    {G_UINT, "m: {k: \" 5\"}\n", "got \" 5\"", false},
    {G_UINT, "m: {k: 99999999999999999999999}\n", "got \"99999999999999999999999\"", false},
    {G_UINT, "m:\n  k: [1]\n",
     "t.yaml:2:6: m.k: expected an integer between 1 and 100000, got a list", false},
    {G_BOOL, "m: {k: true}\n", "true", true},
    {G_BOOL, "m: {k: True}\n", "true", true},
    {G_BOOL, "m: {k: TRUE}\n", "true", true},
    {G_BOOL, "m: {k: false}\n", "false", true},
    {G_BOOL, "m: {k: FALSE}\n", "false", true},
    {G_BOOL, "m: {k: ~}\n", "true", true},
    {G_BOOL, "m: {k: yes}\n", "m.k: expected true or false, got \"yes\"", false},
    {G_BOOL, "m: {k: 1}\n", "expected true or false, got \"1\"", false},
    {G_BOOL, "m: {k: {}}\n", "expected true or false, got a map", false},
    {G_DURATION, "m: {k: 200ms}\n", "200", true},
    {G_DURATION, "m: {k: 0}\n", "0", true},
    {G_DURATION, "m: {}\n", "5000", true},
    {G_DURATION, "m: {k: 5}\n",
     "t.yaml:1:8: m.k: expected a duration such as 200ms or 5s, got \"5\"", false},
    {G_DURATION, "m: {k: {a: b}}\n", "expected a duration such as 200ms or 5s, got a map", false},
    {G_MAP, "m: {k: {a: b}}\n", "map", true},
    {G_MAP, "m: {k: }\n", "null", true},
    {G_MAP, "m: {}\n", "absent", true},
    {G_MAP, "m: {k: x}\n", "t.yaml:1:8: m.k: expected a map, got a string", false},
    {G_MAP, "m: {k: [x]}\n", "expected a map, got a list", false},
};

/* Runs one getter on key "k" of map "m" and prints its result as text. */
static rc_status run_getter(enum getter g, rc_cfg *m, char *out, size_t out_len, rc_error *err)
{
    rc_status st = RC_EINVAL;
    const char *s = NULL;
    uint64_t u = 0;
    bool b = false;
    rc_cfg *map = NULL;
    switch (g) {
    case G_STRING:
        if (!(st = rc_cfg_string(m, "k", "default", &s, err))) snprintf(out, out_len, "%s", s);
        break;
    case G_UINT:
        if (!(st = rc_cfg_uint(m, "k", 7, 1, 100000, &u, err)))
            snprintf(out, out_len, "%" PRIu64, u);
        break;
    case G_BOOL:
        if (!(st = rc_cfg_bool(m, "k", true, &b, err)))
            snprintf(out, out_len, "%s", b ? "true" : "false");
        break;
    case G_DURATION:
        if (!(st = rc_cfg_duration_ms(m, "k", 5000, &u, err)))
            snprintf(out, out_len, "%" PRIu64, u);
        break;
    case G_MAP:
        if (!(st = rc_cfg_map(m, "k", &map, err)))
            snprintf(out, out_len, "%s",
                     !map                                ? "absent"
                     : rc_cfg_kind_of(map) == RC_CFG_MAP ? "map"
                                                         : "null");
        break;
    }
    return st;
}

static void test_getters(void)
{
    for (size_t i = 0; i < sizeof getter_cases / sizeof getter_cases[0]; i++) {
        rc_error err;
        rc_cfg *root = parse(getter_cases[i].yaml, &err);
        CHECK(root != NULL);
        if (!root) continue;
        char got[128] = "";
        rc_cfg *m = rc_cfg_get(root, "m");
        rc_status st = run_getter(getter_cases[i].g, m, got, sizeof got, &err);
        if (getter_cases[i].ok) {
            CHECK(st == RC_OK);
            CHECK_STR(got, getter_cases[i].want);
            /* the key counts as read, even when it held null */
            CHECK(rc_cfg_reject_unknown(m, &err) == RC_OK);
        } else {
            CHECK(st == RC_EINVAL);
            CHECK_CONTAINS(err.msg, getter_cases[i].want);
        }
        rc_config_free(root);
    }

    /* a section that is a scalar or a list, not a map, is refused by every getter */
    static const char *not_maps[] = {"m: text\n", "m: [a]\n"};
    for (size_t i = 0; i < 2; i++) {
        rc_error err;
        rc_cfg *root = parse(not_maps[i], &err);
        rc_cfg *m = rc_cfg_get(root, "m");
        for (enum getter g = G_STRING; g <= G_MAP; g++) {
            char got[64];
            CHECK(run_getter(g, m, got, sizeof got, &err) == RC_EINVAL);
            CHECK_CONTAINS(err.msg, i ? "t.yaml:1:4: m: expected a map, got a list"
                                      : "t.yaml:1:4: m: expected a map, got a string");
        }
        CHECK(rc_cfg_reject_unknown(m, &err) == RC_EINVAL);
        CHECK_CONTAINS(err.msg, "t.yaml:1:4: m: expected a map");
        rc_config_free(root);
    }

    /* a NULL map (a section that is absent) yields defaults */
    rc_error err;
    const char *s = NULL;
    uint64_t u = 0;
    bool b = false;
    rc_cfg *m = (rc_cfg *)&err;
    CHECK(rc_cfg_string(NULL, "k", "d", &s, &err) == RC_OK);
    CHECK_STR(s, "d");
    CHECK(rc_cfg_uint(NULL, "k", 3, 0, 9, &u, &err) == RC_OK && u == 3);
    CHECK(rc_cfg_bool(NULL, "k", true, &b, &err) == RC_OK && b);
    CHECK(rc_cfg_duration_ms(NULL, "k", 9, &u, &err) == RC_OK && u == 9);
    CHECK(rc_cfg_map(NULL, "k", &m, &err) == RC_OK && m == NULL);
    CHECK(rc_cfg_reject_unknown(NULL, &err) == RC_OK);
    CHECK(rc_cfg_get(NULL, "k") == NULL);
    CHECK(rc_cfg_len(NULL) == 0);
}

/* --- durations ---------------------------------------------------------- */

static const struct {
    const char *text;
    bool ok;
    uint64_t ms;
} durations[] = {
    {"0", true, 0},
    {"200ms", true, 200},
    {"1s", true, 1000},
    {"1.5s", true, 1500},
    {"1m30s", true, 90000},
    {"2h", true, 7200000},
    {"1h1m1s1ms", true, 3661001},
    {"500us", true, 1},
    {"100ns", true, 1},
    {"1500us", true, 2},
    {"0s", true, 0},
    {"0ms", true, 0},
    {".5s", true, 500},
    {"0.1s", true, 100},
    {"0.001s", true, 1},
    {"2.5m", true, 150000},
    {"1.000000001s", true, 1001},
    {"3\xc2\xb5s", true, 1},
    {"1m0.5s", true, 60500},
    {"", false, 0},
    {"5", false, 0},
    {"-1s", false, 0},
    {"+1s", false, 0},
    {"1 s", false, 0},
    {"1sec", false, 0},
    {"ms", false, 0},
    {"1.s.", false, 0},
    {"1d", false, 0},
    {"s1", false, 0},
    {"99999999999999999999h", false, 0},
    {"5124096h", false, 0},
    {"1e3ms", false, 0},
};

static void test_durations(void)
{
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        uint64_t ms = 12345;
        bool ok = rc_parse_duration_ms(durations[i].text, &ms);
        if (ok != durations[i].ok || (ok && ms != durations[i].ms)) {
            fprintf(stderr, "duration \"%s\": got ok=%d ms=%" PRIu64 "\n", durations[i].text, ok,
                    ms);
        }
        CHECK(ok == durations[i].ok);
        if (ok && durations[i].ok) CHECK(ms == durations[i].ms);
    }
}

/* --- read tracking ------------------------------------------------------ */

static void test_unknown_keys(void)
{
    rc_error err;
    rc_cfg *root = parse("processors:\n  batch:\n    timeout: 1s\n    send_batch_sise: 10\n", &err);
    CHECK(root != NULL);
    rc_cfg *batch = lookup(root, "processors.batch");
    uint64_t u = 0;
    CHECK(rc_cfg_uint(batch, "send_batch_size", 5, 1, 100, &u, &err) == RC_OK && u == 5);
    CHECK(rc_cfg_duration_ms(batch, "timeout", 0, &u, &err) == RC_OK && u == 1000);
    CHECK(rc_cfg_reject_unknown(batch, &err) == RC_EINVAL);
    CHECK_STR(err.msg, "t.yaml:4:5: processors.batch: unknown key \"send_batch_sise\"");

    /* rc_cfg_at marks map values read; the top level has no path */
    rc_cfg *procs = rc_cfg_get(root, "processors");
    CHECK(rc_cfg_at(procs, 0) == batch);
    CHECK(rc_cfg_reject_unknown(procs, &err) == RC_OK);
    rc_config_free(root);

    root = parse("receivers: {}\nrecievers: {}\n", &err);
    rc_cfg_get(root, "receivers");
    CHECK(rc_cfg_reject_unknown(root, &err) == RC_EINVAL);
    CHECK_STR(err.msg, "t.yaml:2:1: unknown key \"recievers\"");
    rc_config_free(root);
}

static void test_cfg_error(void)
{
    rc_error err;
    rc_cfg *root = parse("a:\n  b:\n    c: 1\n", &err);
    rc_cfg *b = lookup(root, "a.b");
    CHECK(rc_cfg_error(&err, b, "needs %s", "an endpoint") == RC_EINVAL);
    CHECK_STR(err.msg, "t.yaml:3:5: a.b: needs an endpoint");
    CHECK(rc_cfg_error(&err, root, "top") == RC_EINVAL);
    CHECK_STR(err.msg, "t.yaml:1:1: top");
    CHECK(rc_cfg_error(&err, NULL, "no node") == RC_EINVAL);
    CHECK_STR(err.msg, "no node");
    rc_config_free(root);
}

/* --- secrets in the wrong field ------------------------------------------ */

/* A value from the environment may be a secret that landed in the wrong
 * field (an API key pasted into an endpoint): no error message, from the
 * config's getters, a component's own checks or a component that cannot
 * start, may show it. Each row puts ${env:RC_T_SECRET} into one field of a
 * config that is otherwise good, builds it (as validate does) and starts
 * it when it builds, and looks at the message it fails with. Rows marked
 * `shows` quote the value, which must read as the reference. */
#define SECRET "sk-live-9f8e7d6c5b4a3210"
#define SREF "${env:RC_T_SECRET}"

static const char secret_template[] =
    "receivers:\n"
    "  otlp:\n"
    "    protocols:\n"
    "      grpc: { endpoint: \"@grpc@\" }\n"
    "      http: { endpoint: \"@http@\", traces_url_path: \"@url@\" }\n"
    "processors:\n"
    "  batch: { send_batch_size: \"@size@\", timeout: \"@timeout@\" }\n"
    "  cost: { prefer: \"@prefer@\", pricing_file: @pricing@ }\n"
    "exporters:\n"
    "  debug: { verbosity: \"@verbosity@\" }\n"
    "  file: { path: \"@path@\" }\n"
    "  respan: { endpoint: \"@rendpoint@\", api_key: \"@key@\", api: \"@api@\",\n"
    "            compression: \"@compression@\", sending_queue: { directory: \"@dir@\",\n"
    "            max_size_mib: \"@mib@\", durability: \"@durability@\" } }\n"
    "extensions:\n"
    "  health_check: { endpoint: \"@health@\", path: \"@hpath@\" }\n"
    "service:\n"
    "  extensions: [@ext@]\n"
    "  telemetry: { metrics: { level: none }, logs: { level: \"@level@\" } }\n"
    "  pipelines:\n"
    "    traces: { receivers: [otlp], processors: [batch, cost], exporters: [debug, file, "
    "\"@exporter@\"] }\n";

static const struct {
    const char *marker, *value;
} secret_defaults[] = {
    {"grpc", "127.0.0.1:4317"},
    {"http", "127.0.0.1:4318"},
    {"url", "/v1/traces"},
    {"size", "10"},
    {"timeout", "1s"},
    {"prefer", "reported"},
    {"pricing", "null"},
    {"verbosity", "basic"},
    {"path", NULL /* tmp */},
    {"rendpoint", "https://api.example.com"},
    {"key", "k"},
    {"api", "traces_ingest"},
    {"compression", "none"},
    {"dir", NULL /* tmp */},
    {"mib", "64"},
    {"durability", "fsync"},
    {"health", "127.0.0.1:13133"},
    {"hpath", "/"},
    {"ext", ""},
    {"level", "info"},
    {"exporter", "respan"},
};

static const struct {
    const char *marker, *value, *marker2, *value2;
    bool shows; /* the message quotes the field's value */
} secret_rows[] = {
    {"grpc", SREF, NULL, NULL, true},
    {"grpc", "127.0.0.1:" SREF, NULL, NULL, true},
    {"http", SREF, NULL, NULL, true},
    {"http", SREF ":99999", NULL, NULL, true},
    {"url", SREF, NULL, NULL, true},
    {"size", SREF, NULL, NULL, true},
    {"timeout", SREF, NULL, NULL, true},
    {"prefer", SREF, NULL, NULL, true},
    {"pricing", "\"/nonexistent/" SREF "\"", NULL, NULL, true},
    {"verbosity", SREF, NULL, NULL, true},
    {"rendpoint", SREF, NULL, NULL, true},
    {"rendpoint", "ftp://" SREF "@example.com", NULL, NULL, true},
    {"key", "a\\n" SREF, NULL, NULL, false},
    {"api", SREF, NULL, NULL, true},
    {"compression", SREF, NULL, NULL, true},
    {"mib", SREF, NULL, NULL, true},
    {"durability", SREF, NULL, NULL, true},
    {"level", SREF, NULL, NULL, true},
    {"exporter", SREF, NULL, NULL, true},
    {"health", SREF, "ext", "health_check", true},
    {"hpath", SREF, "ext", "health_check", false},
    {"ext", "\"" SREF "\"", NULL, NULL, true},
    /* Not refused until start: the file cannot be opened, the queue's
     * directory cannot be made. */
    {"path", "/nonexistent/" SREF "/out.jsonl", NULL, NULL, true},
    {"dir", "/proc/" SREF "/queue", NULL, NULL, true},
};

/* Copies `from` to `to`, replacing every "@name@" with what `value` gives. */
static void fill_template(char *to, size_t cap, const char *from,
                          const char *(*value)(const char *name, void *arg), void *arg)
{
    size_t o = 0;
    while (*from && o + 1 < cap) {
        const char *end = from[0] == '@' ? strchr(from + 1, '@') : NULL;
        if (!end) {
            to[o++] = *from++;
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(end - from - 1), from + 1);
        o += (size_t)snprintf(to + o, cap - o, "%s", value(name, arg));
        if (o >= cap) o = cap - 1;
        from = end + 1;
    }
    to[o] = '\0';
}

typedef struct secret_case {
    size_t row;
    char path[300], dir[300]; /* the defaults, in the test's directory */
} secret_case;

static const char *secret_value(const char *name, void *arg)
{
    const secret_case *c = arg;
    if (strcmp(name, secret_rows[c->row].marker) == 0) return secret_rows[c->row].value;
    if (secret_rows[c->row].marker2 && strcmp(name, secret_rows[c->row].marker2) == 0)
        return secret_rows[c->row].value2;
    if (strcmp(name, "path") == 0) return c->path;
    if (strcmp(name, "dir") == 0) return c->dir;
    for (size_t i = 0; i < sizeof secret_defaults / sizeof *secret_defaults; i++)
        if (strcmp(name, secret_defaults[i].marker) == 0) return secret_defaults[i].value;
    return "?";
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* The message a config fails with: from the build, else from the start. */
static bool fail_message(const char *yaml, rc_error *err)
{
    rc_cfg *root = NULL;
    rc_service *svc = NULL;
    memset(err, 0, sizeof *err);
    bool failed = rc_config_parse("s.yaml", yaml, strlen(yaml), &root, err) != RC_OK ||
                  rc_service_build(root, &svc, err) != RC_OK;
    if (!failed) {
        failed = rc_service_start(svc, err) != RC_OK;
        rc_service_shutdown(svc);
        rc_service_free(svc);
    }
    rc_config_free(root);
    return failed;
}

static void test_secret_never_shown(void)
{
    setenv("RC_T_SECRET", SECRET, 1);
    char tmp[] = "/tmp/rc-config-secret-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    static char yaml[8192];
    for (size_t i = 0; i < sizeof secret_rows / sizeof *secret_rows; i++) {
        secret_case c = {.row = i};
        snprintf(c.path, sizeof c.path, "%s/out.jsonl", tmp);
        snprintf(c.dir, sizeof c.dir, "%s/queue", tmp);
        fill_template(yaml, sizeof yaml, secret_template, secret_value, &c);
        rc_error err;
        bool failed = fail_message(yaml, &err);
        bool leaked = strstr(err.msg, SECRET) != NULL;
        bool shown = strstr(err.msg, SREF) != NULL;
        CHECK(failed);
        CHECK(!leaked);
        if (secret_rows[i].shows) CHECK(shown);
        if (!failed || leaked || (secret_rows[i].shows && !shown))
            fprintf(stderr, "  row %zu (%s): %s\n", i, secret_rows[i].marker,
                    failed ? err.msg : "no error");
    }
    nftw(tmp, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    unsetenv("RC_T_SECRET");
}

/* How a value reads in a message: rc_cfg_shown gives the text as written;
 * rc_cfg_error puts the reference in the place of a value the caller
 * printed, a short one only where it stands as a word of its own, and
 * copies references as they are even when the value occurs inside one;
 * rc_cfg_redact does the same for a message made without a node. */
static void test_values_in_messages(void)
{
    setenv("RC_T_SHORT", "10", 1);
    setenv("RC_T_WORD", "env", 1);
    setenv("RC_T_LONG", "longer-than-8", 1);
    rc_error err;
    rc_cfg *root = parse("a: ${env:RC_T_SHORT}\nb: x-${env:RC_T_WORD}\nc: plain\n"
                         "d: \"$${env:X}\"\ne: ${env:RC_T_UNSET:-${env:RC_T_LONG}}\n",
                         &err);
    CHECK(root != NULL);
    rc_cfg *a = rc_cfg_get(root, "a"), *b = rc_cfg_get(root, "b"), *e = rc_cfg_get(root, "e");
    CHECK_STR(rc_cfg_shown(a), "${env:RC_T_SHORT}");
    CHECK_STR(rc_cfg_shown(b), "x-${env:RC_T_WORD}");
    CHECK_STR(rc_cfg_shown(rc_cfg_get(root, "c")), "plain");
    CHECK_STR(rc_cfg_shown(rc_cfg_get(root, "d")), "${env:X}"); /* an escape, no reference */
    CHECK(rc_cfg_shown(root) == NULL);

    rc_cfg_error(&err, a, "between 1 and 100, got \"%s\"", rc_cfg_scalar(a));
    CHECK_STR(err.msg, "t.yaml:1:4: a: between 1 and 100, got \"${env:RC_T_SHORT}\"");
    rc_cfg_error(&err, b, "got \"%s\", shown as \"%s\"", rc_cfg_scalar(b), rc_cfg_shown(b));
    CHECK_STR(err.msg,
              "t.yaml:2:4: b: got \"x-${env:RC_T_WORD}\", shown as \"x-${env:RC_T_WORD}\"");
    rc_cfg_error(&err, e, "got %s (%s)", rc_cfg_scalar(e), rc_cfg_shown(e));
    CHECK_STR(err.msg, "t.yaml:5:4: e: got ${env:RC_T_LONG} (${env:RC_T_UNSET:-${env:RC_T_LONG}})");

    rc_error_set(&err, "cannot open /x/longer-than-8.txt: see 10 and 100");
    rc_cfg_redact(root, &err);
    CHECK_STR(err.msg, "cannot open /x/${env:RC_T_LONG}.txt: see ${env:RC_T_SHORT} and 100");
    /* Where the error is stays as it is: a value equal to its line number,
     * or to a word of its key path, is no reason to hide either. */
    rc_cfg *deep = parse("x:\n  y:\n    z:\n      w: 1\n"
                         "          \n          \n          \n          \n          \n"
                         "env: ${env:RC_T_SHORT}\nq: ${env:RC_T_WORD}\n",
                         &err);
    CHECK(deep != NULL);
    rc_cfg *ten = deep ? rc_cfg_get(deep, "env") : NULL;
    if (ten) {
        rc_cfg_error(&err, ten, "got %s", rc_cfg_scalar(ten));
        CHECK_STR(err.msg, "t.yaml:10:6: env: got ${env:RC_T_SHORT}");
        rc_cfg_redact(deep, &err);
        CHECK_STR(err.msg, "t.yaml:10:6: env: got ${env:RC_T_SHORT}");
    }
    rc_config_free(deep);
    rc_config_free(root);
    unsetenv("RC_T_SHORT");
    unsetenv("RC_T_WORD");
    unsetenv("RC_T_LONG");
}

/* --- files -------------------------------------------------------------- */

static void test_load(void)
{
    rc_error err;
    rc_cfg *root = NULL;
    CHECK(rc_config_load("/nonexistent/respan.yaml", &root, &err) != RC_OK);
    CHECK(root == NULL);
    CHECK_STR(err.msg,
              "cannot read config file /nonexistent/respan.yaml: No such file or directory");

    CHECK(rc_config_load("tests", &root, &err) != RC_OK);
    CHECK_STR(err.msg, "cannot read config file tests: Is a directory");

    char path[] = "/tmp/rc_test_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(example_config, f);
    fclose(f);
    CHECK(rc_config_load(path, &root, &err) == RC_OK);
    CHECK(root != NULL);
    CHECK_STR(rc_cfg_file(lookup(root, "processors.batch.timeout")), path);
    rc_config_free(root);
    unlink(path);
}

/* Each golden file starts with "# error: <substring of the message>". */
/* SIGHUP tells an unchanged config by its text (rc_config_same_text). */
static void test_same_text(void)
{
    static const char a[] = "receivers: { otlp: { protocols: { grpc: {} } } }\n";
    static const char b[] = "receivers: { otlp: { protocols: { http: {} } } }\n";
    rc_cfg *r1 = NULL, *r2 = NULL, *r3 = NULL;
    rc_error err = {{0}};
    CHECK(rc_config_parse("a.yaml", a, strlen(a), &r1, &err) == RC_OK);
    CHECK(rc_config_parse("a.yaml", a, strlen(a), &r2, &err) == RC_OK);
    CHECK(rc_config_parse("b.yaml", b, strlen(b), &r3, &err) == RC_OK);
    CHECK(rc_config_same_text(r1, r2));
    CHECK(!rc_config_same_text(r1, r3));
    CHECK(!rc_config_same_text(r1, NULL));
    rc_config_free(r1);
    rc_config_free(r2);
    rc_config_free(r3);
}

static void test_golden_errors(void)
{
    /* ctest runs from the source tree; RC_SOURCE_DIR helps a run from elsewhere */
    const char *src = getenv("RC_SOURCE_DIR");
    char dir[400];
    snprintf(dir, sizeof dir, "%s%stests/golden/config", src ? src : "", src ? "/" : "");
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        char path[700], first[512] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f || !fgets(first, sizeof first, f)) {
            CHECK(!"cannot read golden file");
            if (f) fclose(f);
            continue;
        }
        fclose(f);
        first[strcspn(first, "\n")] = '\0';
        const char *want = strncmp(first, "# error: ", 9) == 0 ? first + 9 : NULL;
        CHECK(want != NULL);
        rc_error err = {{0}};
        rc_cfg *root = NULL;
        rc_status st = rc_config_load(path, &root, &err);
        CHECK(st == RC_EINVAL);
        if (want) CHECK_CONTAINS(err.msg, want);
        rc_config_free(root);
        files++;
    }
    closedir(d);
    CHECK(files > 0);
}

int main(void)
{
    RUN(test_example_config());
    RUN(test_same_text());
    RUN(test_parse_errors());
    RUN(test_nesting_limit());
    RUN(test_empty_and_null());
    RUN(test_block_and_flow_sequences());
    RUN(test_env());
    RUN(test_bad_text());
    RUN(test_getters());
    RUN(test_durations());
    RUN(test_unknown_keys());
    RUN(test_cfg_error());
    RUN(test_values_in_messages());
    RUN(test_secret_never_shown());
    RUN(test_load());
    RUN(test_golden_errors());
    TEST_MAIN_END();
}
