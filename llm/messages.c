/*
 * messages.c - every convention's messages, rewritten as GenAI parts JSON.
 *
 * Two kinds of source:
 *   - flattened, indexed attributes (OpenLLMetry, OpenInference): a first
 *     pass over the span's attributes finds the highest message index, a
 *     second fills one small record per message (role, content, tool calls,
 *     content blocks) in the request arena, then the records are written in
 *     index order, skipping holes;
 *   - JSON values (Vercel ai.prompt.messages, event payloads): parsed with
 *     jansson, the parse charged to the memory limiter for its duration,
 *     and written straight from the tree.
 * Both end in the same small writer (msg_writer) so every source produces
 * the same shapes. Output goes to a per-thread rc_buf that keeps its
 * capacity (no malloc per span once warm) and is copied into the arena.
 *
 * Bounds: at most MAX_MESSAGES messages and MAX_PARTS tool calls or content
 * blocks per message from indexed attributes, JSON texts up to
 * MAX_JSON_BYTES and nesting up to OTLP_MAX_DEPTH; beyond that the rest is
 * left out, never an error.
 */
#include "llm/messages.h"

#include "core/json_writer.h"
#include "core/memlimit.h"
#include "llm/conventions.h"
#include "llm/span_attrs.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 4096
#define MAX_PARTS 256
#define MAX_JSON_BYTES (4 * 1024 * 1024)
#define JSON_TREE_FACTOR 24 /* as otlp/json_decode.c */
#define KEEP_BUF_BYTES (1024 * 1024)

/* --- JSON parsing, charged ------------------------------------------------ */

typedef struct charged_json {
    json_t *root;
    size_t charge;
} charged_json;

/* Parses text as JSON when it looks like an object or array. */
static charged_json parse_json(const char *s, size_t n)
{
    charged_json j = {0};
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
        i++;
    if (i == n || (s[i] != '{' && s[i] != '[') || n > MAX_JSON_BYTES) return j;
    if (!rc_mem_try_charge(n * JSON_TREE_FACTOR)) return j;
    j.charge = n * JSON_TREE_FACTOR;
    j.root = json_loadb(s, n, 0, NULL);
    return j;
}

static void release_json(charged_json *j)
{
    json_decref(j->root);
    rc_mem_release(j->charge);
    j->root = NULL;
    j->charge = 0;
}

/* --- the writer ------------------------------------------------------------- */

typedef struct msg_writer {
    rc_buf *b;
    size_t n_msgs;
    size_t n_parts; /* in the open message */
} msg_writer;

/* A string that holds JSON is written as that JSON value, else as a string:
 * tool-call arguments arrive as JSON text but GenAI shows them as objects. */
static void emit_maybe_json_text(rc_buf *b, const char *s, size_t n)
{
    charged_json j = parse_json(s, n);
    if (j.root)
        rc_json_jansson(b, j.root, OTLP_MAX_DEPTH);
    else
        rc_json_string(b, s, n);
    release_json(&j);
}

static void emit_value_or_text(rc_buf *b, const json_t *v)
{
    if (json_is_string(v))
        emit_maybe_json_text(b, json_string_value(v), json_string_length(v));
    else if (v)
        rc_json_jansson(b, v, OTLP_MAX_DEPTH);
    else
        rc_buf_puts(b, "null");
}

static void begin_msg(msg_writer *w, const char *role, size_t role_len)
{
    rc_buf_putc(w->b, w->n_msgs++ ? ',' : '[');
    rc_buf_puts(w->b, "{\"role\":");
    rc_json_string(w->b, role, role_len);
    rc_buf_puts(w->b, ",\"parts\":[");
    w->n_parts = 0;
}

static void end_msg(msg_writer *w, const char *finish_reason, size_t n)
{
    rc_buf_putc(w->b, ']');
    if (finish_reason && n) {
        rc_buf_puts(w->b, ",\"finish_reason\":");
        rc_json_string(w->b, finish_reason, n);
    }
    rc_buf_putc(w->b, '}');
}

static void begin_part(msg_writer *w, const char *type)
{
    if (w->n_parts++) rc_buf_putc(w->b, ',');
    rc_buf_puts(w->b, "{\"type\":");
    rc_json_cstr(w->b, type);
}

static void part_text(msg_writer *w, const char *type, const char *s, size_t n)
{
    begin_part(w, type);
    rc_buf_puts(w->b, ",\"content\":");
    rc_json_string(w->b, s, n);
    rc_buf_putc(w->b, '}');
}

static void opt_field(rc_buf *b, const char *key, const char *s)
{
    if (!s) return;
    rc_buf_putc(b, ',');
    rc_json_key(b, key);
    rc_json_cstr(b, s);
}

/* A tool call whose arguments are JSON text (args_text) or a tree (args). */
static void part_tool_call(msg_writer *w, const char *id, const char *name, const char *args_text,
                           const json_t *args)
{
    begin_part(w, "tool_call");
    opt_field(w->b, "id", id);
    opt_field(w->b, "name", name);
    if (args_text || args) {
        rc_buf_puts(w->b, ",\"arguments\":");
        if (args_text)
            emit_maybe_json_text(w->b, args_text, strlen(args_text));
        else
            emit_value_or_text(w->b, args);
    }
    rc_buf_putc(w->b, '}');
}

static void part_tool_response(msg_writer *w, const char *id, const char *text,
                               const json_t *response)
{
    begin_part(w, "tool_call_response");
    opt_field(w->b, "id", id);
    rc_buf_puts(w->b, ",\"response\":");
    if (text)
        rc_json_cstr(w->b, text);
    else
        emit_value_or_text(w->b, response);
    rc_buf_putc(w->b, '}');
}

static void finish(msg_writer *w)
{
    if (w->n_msgs) rc_buf_putc(w->b, ']');
}

/* --- JSON shapes: content blocks and whole messages ------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static const json_t *jfirst(const json_t *o, const char *a, const char *b)
{
    const json_t *v = json_object_get(o, a);
    return v ? v : json_object_get(o, b);
}

/* One content block of any of the shapes in use (Vercel, OpenAI, Anthropic,
 * GenAI itself) as a part; unknown typed blocks pass through unchanged,
 * which GenAI allows as a generic part. */
static void part_of_block(msg_writer *w, const json_t *blk)
{
    const char *type = jstr(blk, "type");
    if (!json_is_object(blk) || !type) {
        if (json_is_string(blk))
            part_text(w, "text", json_string_value(blk), json_string_length(blk));
        return;
    }
    if (!strcmp(type, "text") || !strcmp(type, "input_text") || !strcmp(type, "output_text")) {
        const json_t *t = jfirst(blk, "text", "content");
        if (json_is_string(t)) part_text(w, "text", json_string_value(t), json_string_length(t));
    } else if (!strcmp(type, "reasoning") || !strcmp(type, "thinking")) {
        const json_t *t = jfirst(blk, "text", "thinking");
        if (!t) t = json_object_get(blk, "content");
        if (json_is_string(t))
            part_text(w, "reasoning", json_string_value(t), json_string_length(t));
    } else if (!strcmp(type, "tool-call")) {
        part_tool_call(w, jstr(blk, "toolCallId"), jstr(blk, "toolName"), NULL,
                       jfirst(blk, "input", "args"));
    } else if (!strcmp(type, "tool_use")) {
        part_tool_call(w, jstr(blk, "id"), jstr(blk, "name"), NULL, json_object_get(blk, "input"));
    } else if (!strcmp(type, "tool_call") && !json_object_get(blk, "function")) {
        part_tool_call(w, jstr(blk, "id"), jstr(blk, "name"), NULL,
                       json_object_get(blk, "arguments"));
    } else if (!strcmp(type, "function") || !strcmp(type, "tool_call")) {
        const json_t *fn = json_object_get(blk, "function");
        part_tool_call(w, jstr(blk, "id"), jstr(fn, "name"), NULL,
                       json_object_get(fn, "arguments"));
    } else if (!strcmp(type, "tool-result")) {
        part_tool_response(w, jstr(blk, "toolCallId"), NULL, jfirst(blk, "output", "result"));
    } else if (!strcmp(type, "tool_result")) {
        part_tool_response(w, jstr(blk, "tool_use_id"), NULL, json_object_get(blk, "content"));
    } else if (!strcmp(type, "tool_call_response")) {
        part_tool_response(w, jstr(blk, "id"), NULL, json_object_get(blk, "response"));
    } else {
        if (w->n_parts++) rc_buf_putc(w->b, ',');
        rc_json_jansson(w->b, blk, OTLP_MAX_DEPTH);
    }
}

/* True when every element is an object with a string "type": a list of
 * content blocks rather than text that happens to look like JSON. */
static bool is_block_list(const json_t *a)
{
    if (!json_is_array(a) || json_array_size(a) == 0) return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_string(json_object_get(json_array_get(a, i), "type"))) return false;
    return true;
}

static void parts_of_blocks(msg_writer *w, const json_t *a)
{
    for (size_t i = 0; i < json_array_size(a); i++)
        part_of_block(w, json_array_get(a, i));
}

/* Text content: unfolded when it is a JSON list of content blocks. */
static void parts_of_text(msg_writer *w, const char *s, size_t n)
{
    if (n && (s[0] == '[' || s[0] == ' ')) {
        charged_json j = parse_json(s, n);
        bool blocks = is_block_list(j.root);
        if (blocks) parts_of_blocks(w, j.root);
        release_json(&j);
        if (blocks) return;
    }
    part_text(w, "text", s, n);
}

/* OpenAI-style tool_calls: [{id, function: {name, arguments}}] or flat. */
static void parts_of_tool_calls(msg_writer *w, const json_t *calls)
{
    for (size_t i = 0; i < json_array_size(calls); i++) {
        const json_t *c = json_array_get(calls, i);
        const json_t *fn = json_object_get(c, "function");
        if (fn)
            part_tool_call(w, jstr(c, "id"), jstr(fn, "name"), NULL,
                           json_object_get(fn, "arguments"));
        else if (json_object_get(c, "toolName"))
            part_tool_call(w, jstr(c, "toolCallId"), jstr(c, "toolName"), NULL,
                           jfirst(c, "input", "args"));
        else
            part_tool_call(w, jstr(c, "id"), jstr(c, "name"), NULL,
                           jfirst(c, "arguments", "input"));
    }
}

/* A message object {role, content, tool_calls, tool_call_id, finish_reason}
 * in the OpenAI, Vercel or Anthropic shape. */
static void message_of_json(msg_writer *w, const json_t *m, const char *def_role,
                            const char *finish_reason)
{
    if (!json_is_object(m)) return;
    const char *role = jstr(m, "role");
    if (!role) role = def_role;
    begin_msg(w, role, strlen(role));
    const json_t *content = json_object_get(m, "content");
    const char *tool_call_id = jstr(m, "tool_call_id");
    if (json_is_string(content)) {
        if (tool_call_id)
            part_tool_response(w, tool_call_id, json_string_value(content), NULL);
        else
            parts_of_text(w, json_string_value(content), json_string_length(content));
    } else if (json_is_array(content)) {
        parts_of_blocks(w, content);
    }
    parts_of_tool_calls(w, json_object_get(m, "tool_calls"));
    const char *fr = jstr(m, "finish_reason");
    if (!fr) fr = finish_reason;
    end_msg(w, fr, fr ? strlen(fr) : 0);
}

/* A JSON text holding a list of messages, or one message object. False
 * when it is neither (the caller then treats it as plain text). */
static bool messages_of_json_text(msg_writer *w, const char *s, const char *def_role,
                                  const char *finish_reason)
{
    charged_json j = parse_json(s, strlen(s));
    bool ok = false;
    if (json_is_array(j.root)) {
        ok = true;
        for (size_t i = 0; i < json_array_size(j.root); i++)
            message_of_json(w, json_array_get(j.root, i), def_role, finish_reason);
    } else if (json_is_object(j.root) && json_object_get(j.root, "role")) {
        ok = true;
        message_of_json(w, j.root, def_role, finish_reason);
    }
    release_json(&j);
    return ok;
}

/* --- indexed attributes (OpenLLMetry, OpenInference) ---------------------- */

typedef struct tool_rec {
    const char *id, *name, *args;
} tool_rec;

typedef struct msg_rec {
    const char *role, *content, *finish_reason, *tool_call_id;
    tool_rec *tools; /* by index j, MAX_PARTS at most */
    const char **texts;
    size_t n_tools, n_texts;
} msg_rec;

typedef struct family {
    const char *prefix;  /* "gen_ai.prompt." */
    const char *strip;   /* "message." for OpenInference, else "" */
    const char *tool_id; /* field names inside tool_calls.{j}. */
    const char *tool_name;
    const char *tool_args;
} family;

static const family openllmetry_in = {"gen_ai.prompt.", "", "id", "name", "arguments"};
static const family openllmetry_out = {"gen_ai.completion.", "", "id", "name", "arguments"};
static const family openinference_in = {"llm.input_messages.", "message.", "tool_call.id",
                                        "tool_call.function.name", "tool_call.function.arguments"};
static const family openinference_out = {"llm.output_messages.", "message.", "tool_call.id",
                                         "tool_call.function.name", "tool_call.function.arguments"};

/* Reads "<digits>." at *p; advances past the dot. */
static bool read_index(const char **p, size_t max, size_t *out)
{
    const char *s = *p;
    size_t v = 0, n = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 6)
        v = v * 10 + (size_t)(s[n++] - '0');
    if (n == 0 || s[n] != '.' || v >= max) return false;
    *p = s + n + 1;
    *out = v;
    return true;
}

/* The field path of kv inside family f, and its message index. */
static const char *field_of(const family *f, const otlp_key_value *kv, size_t *index)
{
    size_t plen = strlen(f->prefix);
    if (!kv || !kv->key || strncmp(kv->key, f->prefix, plen) != 0) return NULL;
    const char *p = kv->key + plen;
    if (!read_index(&p, MAX_MESSAGES, index)) return NULL;
    size_t slen = strlen(f->strip);
    if (slen && strncmp(p, f->strip, slen) == 0) p += slen;
    return p;
}

/* Slot j of a lazily grown array of records of `size` bytes. */
static void *slot(rc_arena *a, void **arr, size_t *n, size_t j, size_t size)
{
    if (j >= MAX_PARTS) return NULL;
    if (j >= *n) {
        size_t cap = j + 1 < 4 ? 4 : (j + 1) * 2;
        if (cap > MAX_PARTS) cap = MAX_PARTS;
        void *grown = rc_arena_calloc(a, cap * size);
        if (!grown) return NULL;
        if (*n) memcpy(grown, *arr, *n * size);
        *arr = grown;
        *n = cap;
    }
    return (char *)*arr + j * size;
}

static bool fill_field(const family *f, msg_rec *m, const char *field, const char *val, rc_arena *a)
{
    size_t j;
    if (!strcmp(field, "role")) {
        m->role = val;
    } else if (!strcmp(field, "content")) {
        m->content = val;
    } else if (!strcmp(field, "finish_reason")) {
        m->finish_reason = val;
    } else if (!strcmp(field, "tool_call_id")) {
        m->tool_call_id = val;
    } else if (!strncmp(field, "tool_calls.", 11)) {
        const char *p = field + 11;
        if (!read_index(&p, MAX_PARTS, &j)) return true;
        tool_rec *t = slot(a, (void **)&m->tools, &m->n_tools, j, sizeof *t);
        if (!t) return j >= MAX_PARTS;
        if (!strcmp(p, f->tool_id)) t->id = val;
        if (!strcmp(p, f->tool_name)) t->name = val;
        if (!strcmp(p, f->tool_args)) t->args = val;
    } else if (!strncmp(field, "contents.", 9)) {
        const char *p = field + 9;
        if (!read_index(&p, MAX_PARTS, &j) || strcmp(p, "message_content.text") != 0) return true;
        const char **t = slot(a, (void **)&m->texts, &m->n_texts, j, sizeof *t);
        if (!t) return j >= MAX_PARTS;
        *t = val;
    }
    return true;
}

static void write_rec(msg_writer *w, const msg_rec *m, const char *def_role)
{
    bool has_tools = false, has_texts = false;
    for (size_t j = 0; j < m->n_tools; j++)
        has_tools |= m->tools[j].name || m->tools[j].id;
    for (size_t j = 0; j < m->n_texts; j++)
        has_texts |= m->texts[j] != NULL;
    if (!m->role && !m->content && !has_tools && !has_texts) return; /* a hole */
    const char *role = m->role ? m->role : def_role;
    begin_msg(w, role, strlen(role));
    if (m->content && m->tool_call_id)
        part_tool_response(w, m->tool_call_id, m->content, NULL);
    else if (m->content)
        parts_of_text(w, m->content, strlen(m->content));
    for (size_t j = 0; j < m->n_texts; j++)
        if (m->texts[j]) part_text(w, "text", m->texts[j], strlen(m->texts[j]));
    for (size_t j = 0; j < m->n_tools; j++)
        if (m->tools[j].name || m->tools[j].id)
            part_tool_call(w, m->tools[j].id, m->tools[j].name, m->tools[j].args, NULL);
    end_msg(w, m->finish_reason, m->finish_reason ? strlen(m->finish_reason) : 0);
}

/* False when the arena refused memory. */
static bool from_indexed(msg_writer *w, const otlp_span *span, const family *f,
                         const char *def_role, rc_arena *a)
{
    size_t max = 0, idx;
    bool any = false;
    for (size_t i = 0; i < span->n_attributes; i++)
        if (field_of(f, span->attributes[i], &idx)) {
            any = true;
            if (idx + 1 > max) max = idx + 1;
        }
    if (!any) return true;
    msg_rec *recs = rc_arena_calloc(a, max * sizeof *recs);
    if (!recs) return false;
    for (size_t i = 0; i < span->n_attributes; i++) {
        const otlp_key_value *kv = span->attributes[i];
        const char *field = field_of(f, kv, &idx);
        const char *val = field ? rc_av_str(kv->value) : NULL;
        if (val && !fill_field(f, &recs[idx], field, val, a)) return false;
    }
    for (size_t i = 0; i < max; i++)
        write_rec(w, &recs[i], def_role);
    return true;
}

/* --- Vercel ------------------------------------------------------------------ */

static void vercel_input(msg_writer *w, const otlp_span *span)
{
    const char *msgs = rc_av_str(rc_span_attr(span, "ai.prompt.messages"));
    if (msgs) messages_of_json_text(w, msgs, "user", NULL);
}

static void vercel_output(msg_writer *w, const otlp_span *span)
{
    const char *text = rc_av_str(rc_span_attr(span, "ai.response.text"));
    const char *calls = rc_av_str(rc_span_attr(span, "ai.response.toolCalls"));
    const char *fr = rc_av_str(rc_span_attr(span, "ai.response.finishReason"));
    charged_json j = calls ? parse_json(calls, strlen(calls)) : (charged_json){0};
    if (!(text && *text) && json_array_size(j.root) == 0) goto out;
    begin_msg(w, "assistant", 9);
    if (text && *text) part_text(w, "text", text, strlen(text));
    parts_of_tool_calls(w, j.root);
    end_msg(w, fr, fr ? strlen(fr) : 0);
out:
    release_json(&j);
}

/* --- events ------------------------------------------------------------------- */

static const char *event_str(const otlp_event *ev, const char *key)
{
    return rc_av_str(rc_attr_find(ev->attributes, ev->n_attributes, key));
}

/* gen_ai.{system,user,assistant,tool}.message: one input message each. */
static void event_input_message(msg_writer *w, const otlp_event *ev, const char *role,
                                size_t role_len)
{
    const char *content = event_str(ev, "content");
    const char *id = event_str(ev, "id");
    const char *calls = event_str(ev, "tool_calls");
    begin_msg(w, role, role_len);
    if (content && id && role_len == 4 && !strncmp(role, "tool", 4))
        part_tool_response(w, id, content, NULL);
    else if (content)
        parts_of_text(w, content, strlen(content));
    if (calls) {
        charged_json j = parse_json(calls, strlen(calls));
        parts_of_tool_calls(w, j.root);
        release_json(&j);
    }
    end_msg(w, NULL, 0);
}

/* gen_ai.choice: {index, finish_reason, message (JSON text or kvlist)}. */
static void event_choice(msg_writer *w, const otlp_event *ev)
{
    const char *fr = event_str(ev, "finish_reason");
    const otlp_any_value *m = rc_attr_find(ev->attributes, ev->n_attributes, "message");
    const char *text = rc_av_str(m);
    if (text && messages_of_json_text(w, text, "assistant", fr)) return;
    if (m && m->value_case == RC_AV_KVLIST && m->kvlist_value) {
        const otlp_kvlist *kl = m->kvlist_value;
        const char *role = rc_av_str(rc_attr_find(kl->values, kl->n_values, "role"));
        text = rc_av_str(rc_attr_find(kl->values, kl->n_values, "content"));
        if (!role) role = "assistant";
        begin_msg(w, role, strlen(role));
    } else {
        if (!text) text = event_str(ev, "content");
        begin_msg(w, "assistant", 9);
    }
    if (text) parts_of_text(w, text, strlen(text));
    end_msg(w, fr, fr ? strlen(fr) : 0);
}

static void from_events(msg_writer *w, const otlp_span *span, bool output)
{
    for (size_t i = 0; i < span->n_events; i++) {
        const otlp_event *ev = span->events[i];
        const char *name = ev ? ev->name : NULL;
        if (!name || strncmp(name, "gen_ai.", 7) != 0) continue;
        if (output) {
            if (!strcmp(name, "gen_ai.choice")) event_choice(w, ev);
            continue;
        }
        size_t n = strlen(name);
        if (n > 15 && !strcmp(name + n - 8, ".message")) /* gen_ai.<role>.message */
            event_input_message(w, ev, name + 7, n - 15);
    }
}

/* gen_ai.content.prompt / .completion carry gen_ai.prompt / gen_ai.completion:
 * a JSON list of OpenAI-style messages, or plain text. */
static void from_content_events(msg_writer *w, const otlp_span *span, bool output)
{
    const char *event = output ? "gen_ai.content.completion" : "gen_ai.content.prompt";
    const char *attr = output ? "gen_ai.completion" : "gen_ai.prompt";
    const char *role = output ? "assistant" : "user";
    for (size_t i = 0; i < span->n_events; i++) {
        const otlp_event *ev = span->events[i];
        if (!ev || !ev->name || strcmp(ev->name, event) != 0) continue;
        const char *v = event_str(ev, attr);
        if (!v || messages_of_json_text(w, v, role, NULL)) continue;
        begin_msg(w, role, strlen(role));
        part_text(w, "text", v, strlen(v));
        end_msg(w, NULL, 0);
    }
}

/* --- entry point --------------------------------------------------------------- */

/* One scratch buffer per thread, freed when the thread exits. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void free_scratch(void *p)
{
    rc_buf_free(p);
    free(p);
}

static void make_scratch_key(void)
{
    pthread_key_create(&scratch_key, free_scratch);
}

static rc_buf *thread_scratch(void)
{
    pthread_once(&scratch_once, make_scratch_key);
    rc_buf *b = pthread_getspecific(scratch_key);
    if (!b && (b = calloc(1, sizeof *b)) && pthread_setspecific(scratch_key, b) != 0) {
        free(b);
        b = NULL;
    }
    return b;
}

/* Writes one side from the first source that yields a message. */
static bool build_side(const otlp_span *span, unsigned sources, bool output, rc_arena *a,
                       const char **out, size_t *out_len)
{
    rc_buf local = RC_BUF_INIT, *buf = thread_scratch();
    if (!buf) buf = &local;
    rc_buf_reset(buf);
    msg_writer w = {buf, 0, 0};
    bool ok = true;
    if (!w.n_msgs && (sources & RC_MSG_OPENLLMETRY))
        ok = from_indexed(&w, span, output ? &openllmetry_out : &openllmetry_in,
                          output ? "assistant" : "user", a);
    if (ok && !w.n_msgs && (sources & RC_MSG_OPENINFERENCE))
        ok = from_indexed(&w, span, output ? &openinference_out : &openinference_in,
                          output ? "assistant" : "user", a);
    if (ok && !w.n_msgs && (sources & RC_MSG_VERCEL))
        (output ? vercel_output : vercel_input)(&w, span);
    if (ok && !w.n_msgs && (sources & RC_MSG_EVENTS)) from_events(&w, span, output);
    if (ok && !w.n_msgs && (sources & RC_MSG_CONTENT_EVENTS)) from_content_events(&w, span, output);
    finish(&w);
    if (ok && w.n_msgs && !buf->failed) {
        *out = rc_arena_strndup(a, buf->data, buf->len);
        *out_len = buf->len;
        ok = *out != NULL;
    }
    if (buf == &local || buf->cap > KEEP_BUF_BYTES) rc_buf_free(buf);
    return ok;
}

bool rc_messages_build(const otlp_span *span, unsigned sources, rc_arena *arena, rc_messages *out)
{
    *out = (rc_messages){0};
    return build_side(span, sources, false, arena, &out->input, &out->input_len) &&
           build_side(span, sources, true, arena, &out->output, &out->output_len);
}
