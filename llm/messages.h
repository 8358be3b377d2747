/*
 * messages.h - a span's LLM messages in the OpenTelemetry GenAI parts form.
 *
 * gen_ai.input.messages and gen_ai.output.messages hold JSON such as
 *   [{"role":"user","parts":[{"type":"text","content":"Hi"}]}]
 *   [{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"f",
 *     "arguments":{"x":1}}],"finish_reason":"tool_calls"}]
 * Each instrumentation carries messages its own way; this module converts:
 *   RC_MSG_OPENLLMETRY    gen_ai.prompt.{i}.role/content/tool_calls.{j}.*,
 *                         gen_ai.completion.{i}.* (+ finish_reason)
 *   RC_MSG_OPENINFERENCE  llm.input_messages.{i}.message.role, .content,
 *                         .contents.{j}.message_content.text, .tool_calls.{j}
 *                         .tool_call.*, and llm.output_messages.{i}.message.*
 *   RC_MSG_VERCEL         ai.prompt.messages (JSON), ai.response.text,
 *                         ai.response.toolCalls (JSON), ai.response.finishReason
 *   RC_MSG_EVENTS         gen_ai.{system,user,assistant,tool}.message and
 *                         gen_ai.choice span events
 *   RC_MSG_CONTENT_EVENTS gen_ai.content.prompt / .completion events
 * (traceloop.entity.input/output and input.value/output.value are not
 * messages but function arguments of non-LLM spans: they stay as they are.)
 *
 * Text is copied, never interpreted, except that a content string holding a
 * JSON array of content blocks (Anthropic, OpenAI, Vercel shapes) is
 * unfolded into parts, and tool-call arguments that are JSON text are
 * written as JSON values, as the GenAI examples do. The JSON is produced by
 * core/json_writer.h, so it is valid whatever the input.
 */
#ifndef RC_LLM_MESSAGES_H
#define RC_LLM_MESSAGES_H

#include "otlp/otlp.h"

#include <stdbool.h>

typedef struct rc_messages {
    const char *input;  /* JSON array in the arena, or NULL when none found */
    const char *output; /* likewise */
    size_t input_len, output_len;
} rc_messages;

/* Builds the input and output messages of `span` from the first of
 * `sources` (RC_MSG_* from rc_facts.msg_sources, conventions.h) that yields
 * any, in the order listed above; input and output are chosen separately.
 * RC_MSG_GENAI_JSON is ignored: that form is already canonical. The JSON is
 * allocated in `arena` (the request's). Returns false only when the arena
 * refused memory; *out then holds what was built before. */
bool rc_messages_build(const otlp_span *span, unsigned sources, rc_arena *arena, rc_messages *out);

#endif
