/*
 * support.c - helpers shared by the C unit tests; see support.h. Builds
 * OTLP structures in an arena the way the decoders would, so the code under
 * test sees nothing a real request could not carry.
 */
#include "support.h"

#include "core/buf.h"
#include "llm/span_attrs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

otlp_key_value *test_kv_of(rc_arena *a, const char *spec)
{
    const char *eq = strchr(spec, '=');
    otlp_key_value *kv = rc_arena_alloc(a, sizeof *kv);
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = rc_arena_strndup(a, spec, (size_t)(eq - spec));
    otlp_any_value *v = rc_arena_alloc(a, sizeof *v);
    opentelemetry__proto__common__v1__any_value__init(v);
    const char *val = eq + 3;
    switch (eq[1]) {
    case 's':
        v->value_case = RC_AV_STRING;
        v->string_value = rc_arena_strdup(a, val);
        break;
    case 'i':
        v->value_case = RC_AV_INT;
        v->int_value = strtoll(val, NULL, 10);
        break;
    case 'd':
        v->value_case = RC_AV_DOUBLE;
        v->double_value = strtod(val, NULL);
        break;
    case 'b':
        v->value_case = RC_AV_BOOL;
        v->bool_value = strcmp(val, "true") == 0;
        break;
    case 'k': { /* one member "name:value" (string) */
        otlp_kvlist *kl = rc_arena_alloc(a, sizeof *kl);
        opentelemetry__proto__common__v1__key_value_list__init(kl);
        kl->values = rc_arena_alloc(a, sizeof(void *));
        kl->values[0] = test_kv_of(a, val); /* nested spec "member=s:value" */
        kl->n_values = 1;
        v->value_case = RC_AV_KVLIST;
        v->kvlist_value = kl;
        break;
    }
    }
    kv->value = v;
    return kv;
}

otlp_key_value **test_kvs_of(rc_arena *a, const char *const *specs, size_t *n)
{
    *n = 0;
    while (specs[*n])
        (*n)++;
    otlp_key_value **kvs = rc_arena_alloc(a, (*n ? *n : 1) * sizeof *kvs);
    for (size_t i = 0; i < *n; i++)
        kvs[i] = test_kv_of(a, specs[i]);
    return kvs;
}

void test_set_hex(rc_arena *a, ProtobufCBinaryData *d, const char *hex)
{
    size_t n = strlen(hex) / 2;
    d->data = rc_arena_alloc(a, n ? n : 1);
    d->len = n;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        d->data[i] = (uint8_t)v;
    }
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    rc_buf b = RC_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc_buf_append(&b, chunk, n);
    fclose(f);
    rc_buf_putc(&b, '\0');
    *len = b.len - 1;
    return b.data;
}

otlp_span **test_request_one_scope(rc_request *r, otlp_resource *resource, size_t n)
{
    rc_arena *a = r->arena;
    otlp_export_request *req = rc_arena_alloc(a, sizeof *req);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    otlp_resource_spans *rs = rc_arena_alloc(a, sizeof *rs);
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = resource;
    otlp_scope_spans *ss = rc_arena_alloc(a, sizeof *ss);
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->spans = rc_arena_alloc(a, n * sizeof(void *));
    for (size_t i = 0; i < n; i++) {
        ss->spans[i] = rc_arena_alloc(a, sizeof(otlp_span));
        opentelemetry__proto__trace__v1__span__init(ss->spans[i]);
    }
    ss->n_spans = n;
    rs->scope_spans = rc_arena_alloc(a, sizeof(void *));
    rs->scope_spans[0] = ss;
    rs->n_scope_spans = 1;
    req->resource_spans = rc_arena_alloc(a, sizeof(void *));
    req->resource_spans[0] = rs;
    req->n_resource_spans = 1;
    r->data = req;
    r->n_spans = n;
    return ss->spans;
}
