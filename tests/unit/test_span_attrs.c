/*
 * test_span_attrs.c - llm/span_attrs: lenient typed reads (every accepted
 * and refused shape), and writes that replace, append past the decoder's
 * exact-sized arrays, and remove, all inside the request arena.
 */
#include "core/memlimit.h"
#include "llm/span_attrs.h"
#include "testing.h"

static otlp_any_value av_str(const char *s)
{
    otlp_any_value v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    v.value_case = RC_AV_STRING;
    v.string_value = (char *)s;
    return v;
}
static otlp_any_value av_int(int64_t i)
{
    otlp_any_value v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    v.value_case = RC_AV_INT;
    v.int_value = i;
    return v;
}
static otlp_any_value av_double(double d)
{
    otlp_any_value v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    v.value_case = RC_AV_DOUBLE;
    v.double_value = d;
    return v;
}
static otlp_any_value av_bool(bool b)
{
    otlp_any_value v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    v.value_case = RC_AV_BOOL;
    v.bool_value = b;
    return v;
}

static void test_int_reads(void)
{
    int64_t i = -1;
    otlp_any_value v = av_int(42);
    CHECK(rc_av_int(&v, &i) && i == 42);
    v = av_double(7.0);
    CHECK(rc_av_int(&v, &i) && i == 7);
    v = av_double(7.5);
    CHECK(!rc_av_int(&v, &i));
    v = av_double(1e300);
    CHECK(!rc_av_int(&v, &i));
    v = av_str(" 1200 ");
    CHECK(rc_av_int(&v, &i) && i == 1200);
    v = av_str("-3");
    CHECK(rc_av_int(&v, &i) && i == -3);
    v = av_str("9223372036854775807");
    CHECK(rc_av_int(&v, &i) && i == INT64_MAX);
    v = av_str("-9223372036854775808");
    CHECK(rc_av_int(&v, &i) && i == INT64_MIN);
    v = av_str("9223372036854775808");
    CHECK(!rc_av_int(&v, &i));
    const char *bad[] = {"", " ", "12a", "1.0", "0x10", "+", "1 2"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        v = av_str(bad[k]);
        CHECK(!rc_av_int(&v, &i));
    }
    v = av_bool(true);
    CHECK(!rc_av_int(&v, &i));
    CHECK(!rc_av_int(NULL, &i));
}

static void test_double_reads(void)
{
    double d = 0;
    otlp_any_value v = av_double(0.25);
    CHECK(rc_av_double(&v, &d) && d == 0.25);
    v = av_int(3);
    CHECK(rc_av_double(&v, &d) && d == 3.0);
    v = av_str("1e-3");
    CHECK(rc_av_double(&v, &d) && d == 1e-3);
    v = av_str(" 12 ");
    CHECK(rc_av_double(&v, &d) && d == 12.0);
    const char *bad[] = {"nan", "inf", "0x1p3", "", "1,5", "abc", "."};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        v = av_str(bad[k]);
        CHECK(!rc_av_double(&v, &d));
    }
    v = av_double(1.0 / 0.0);
    CHECK(!rc_av_double(&v, &d));
}

static void test_bool_and_string_reads(void)
{
    bool b = false;
    otlp_any_value v = av_bool(true);
    CHECK(rc_av_bool(&v, &b) && b);
    v = av_str("FALSE");
    CHECK(rc_av_bool(&v, &b) && !b);
    v = av_str("True");
    CHECK(rc_av_bool(&v, &b) && b);
    v = av_str("yes");
    CHECK(!rc_av_bool(&v, &b));
    v = av_int(1);
    CHECK(!rc_av_bool(&v, &b));
    v = av_str("x");
    CHECK_STR(rc_av_str(&v), "x");
    v = av_int(1);
    CHECK(rc_av_str(&v) == NULL);
    v = av_str("  {\"a\":1}");
    CHECK(rc_av_looks_like_json(&v));
    v = av_str("[1]");
    CHECK(rc_av_looks_like_json(&v));
    v = av_str("plain");
    CHECK(!rc_av_looks_like_json(&v));
}

static void test_writes_replace_append_remove(void)
{
    rc_arena *a = rc_arena_new(1024);
    otlp_span *span = rc_arena_alloc(a, sizeof *span);
    opentelemetry__proto__trace__v1__span__init(span);
    /* A decoder-made, exact-sized array of two. */
    span->attributes = rc_arena_alloc(a, 2 * sizeof(void *));
    const char *keys[] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        otlp_key_value *kv = rc_arena_alloc(a, sizeof *kv);
        opentelemetry__proto__common__v1__key_value__init(kv);
        kv->key = (char *)keys[i];
        kv->value = rc_arena_alloc(a, sizeof(otlp_any_value));
        *kv->value = av_int(i);
        span->attributes[i] = kv;
    }
    span->n_attributes = 2;

    rc_attr_list l = rc_attr_list_of_span(span, a);
    CHECK(rc_attr_set_str(&l, "b", "replaced"));
    CHECK(span->n_attributes == 2);
    CHECK_STR(rc_av_str(rc_span_attr(span, "b")), "replaced");
    for (int i = 0; i < 20; i++) {
        static const char *names[] = {"k0",  "k1",  "k2",  "k3",  "k4",  "k5",  "k6",
                                      "k7",  "k8",  "k9",  "k10", "k11", "k12", "k13",
                                      "k14", "k15", "k16", "k17", "k18", "k19"};
        CHECK(rc_attr_set_int(&l, names[i], i));
    }
    CHECK(span->n_attributes == 22);
    int64_t i = 0;
    CHECK(rc_av_int(rc_span_attr(span, "k19"), &i) && i == 19);
    CHECK(rc_av_int(rc_span_attr(span, "a"), &i) && i == 0);
    CHECK(rc_attr_set_double(&l, "d", 0.5));
    CHECK(rc_attr_set_bool(&l, "flag", true));
    bool b = false;
    CHECK(rc_av_bool(rc_span_attr(span, "flag"), &b) && b);
    CHECK(rc_attr_remove(&l, "k3") == 1);
    CHECK(rc_attr_remove(&l, "absent") == 0);
    CHECK(rc_span_attr(span, "k3") == NULL);
    CHECK(span->n_attributes == 23);
    CHECK(rc_attr_index(span->attributes, span->n_attributes, "k4") == 5); /* order kept */
    /* A fresh list over the now-grown array must not trust spare room. */
    rc_attr_list l2 = rc_attr_list_of_span(span, a);
    CHECK(rc_attr_set_strn(&l2, "s", "hello world", 5));
    CHECK_STR(rc_av_str(rc_span_attr(span, "s")), "hello");
    /* Appending without a search: past the array's room, each type. */
    size_t n = span->n_attributes;
    rc_attr_list l3 = rc_attr_list_of_span(span, a);
    CHECK(rc_attr_add_str_ref(&l3, "as", "v"));
    CHECK(rc_attr_add_int(&l3, "ai", 7));
    CHECK(rc_attr_add_double(&l3, "ad", 2.5));
    CHECK(span->n_attributes == n + 3);
    CHECK_STR(rc_av_str(rc_span_attr(span, "as")), "v");
    CHECK(rc_av_int(rc_span_attr(span, "ai"), &i) && i == 7);
    double d = 0;
    CHECK(rc_av_double(rc_span_attr(span, "ad"), &d) && d == 2.5);
    CHECK(rc_attr_index(span->attributes, span->n_attributes, "ad") == (long)n + 2);
    rc_arena_free(a);
    CHECK(rc_mem_in_use() == 0);
}

int main(void)
{
    RUN(test_int_reads());
    RUN(test_double_reads());
    RUN(test_bool_and_string_reads());
    RUN(test_writes_replace_append_remove());
    TEST_MAIN_END();
}
