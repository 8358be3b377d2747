#!/usr/bin/env python3
"""Writes the OTLP/JSON inputs of the LLM golden cases that are not real
SDK captures (those six were copied from ../shared/fixtures/otlp-json/).

Each case below is spans in the style of one instrumentation convention, or
one messy input the `customer` and `cost` processors must survive. The
expectations (NAME.expected.json) are written by hand, with the price
arithmetic in their "_why" fields; this script only writes NAME.json, so
re-running it never touches a checked expectation. Output is deterministic
(ids are hashes of the case and span names) and committed, so the C test
does not depend on Python:

    python3 tests/golden/llm/make_inputs.py

Span names are unique within a case: the expectations name spans by name.
Attribute values: str -> stringValue, bool -> boolValue, int -> intValue,
float -> doubleValue, list -> arrayValue, dict -> kvlistValue. A number
meant to arrive as a string is written as a str here.
"""
import hashlib
import json
import os

OUT = os.path.dirname(os.path.abspath(__file__))

NOV_2026 = 1795453075000000000  # 2026-11-24, the time of the real captures
MAY_2025 = 1746093600000000000  # 2025-05-01 10:00 UTC
JUL_2025 = 1751364000000000000  # 2025-07-01 10:00 UTC

SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 1, 2, 3


def hexid(*parts, nbytes):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[: 2 * nbytes]


def anyvalue(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [anyvalue(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": attributes(v)}}
    raise TypeError(v)


def attributes(d):
    return [{"key": k, "value": anyvalue(v)} for k, v in d.items()]


def span(case, s):
    start = s.get("start", NOV_2026)
    out = {
        "traceId": hexid(case, "trace", s.get("trace", 1), nbytes=16),
        "spanId": hexid(case, "span", s["name"], nbytes=8),
        "name": s["name"],
        "kind": s.get("kind", SPAN_KIND_CLIENT),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1500000000),
        "attributes": attributes(s.get("attrs", {})),
    }
    if s.get("parent"):
        out["parentSpanId"] = hexid(case, "span", s["parent"], nbytes=8)
    if s.get("events"):
        out["events"] = [
            {"timeUnixNano": str(start + 1000 * i), "name": name, "attributes": attributes(a)}
            for i, (name, a) in enumerate(s["events"])
        ]
    return out


def request(case, resources):
    names = [s["name"] for r in resources for s in r["spans"]]
    assert len(names) == len(set(names)), f"{case}: span names must be unique"
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes(r.get("attrs", {"service.name": "golden"}))},
                "scopeSpans": [
                    {
                        "scope": {"name": r.get("scope", "golden-emitter"), "version": "1.0.0"},
                        "spans": [span(case, s) for s in r["spans"]],
                    }
                ],
            }
            for r in resources
        ]
    }


def gen_ai(model, provider="openai", op="chat", **usage):
    """Current OpenTelemetry GenAI attributes of an LLM call (provider=None: none)."""
    a = {"gen_ai.operation.name": op, "gen_ai.provider.name": provider, "gen_ai.request.model": model}
    if provider is None:
        del a["gen_ai.provider.name"]
    for k, v in usage.items():
        a[{"inp": "gen_ai.usage.input_tokens", "out": "gen_ai.usage.output_tokens",
           "cread": "gen_ai.usage.cache_read.input_tokens",
           "cwrite": "gen_ai.usage.cache_creation.input_tokens",
           "reason": "gen_ai.usage.reasoning.output_tokens"}[k]] = v
    return a


def msgs(role, text, **extra):
    m = {"role": role, "parts": [{"type": "text", "content": text}]}
    m.update(extra)
    return json.dumps([m], separators=(",", ":"))


CASES = {}


def case(name, *resources):
    CASES[name] = list(resources)


# --- OpenTelemetry GenAI, current names ---------------------------------------

case("otel-genai-embeddings", {"spans": [
    {"name": "embeddings text-embedding-3-small",
     "attrs": gen_ai("text-embedding-3-small", op="embeddings", inp=1000)},
]})

case("otel-genai-reasoning", {"spans": [
    {"name": "chat o3-mini",
     "attrs": gen_ai("o3-mini", inp=2000, out=1500, reason=1000)},
]})

# The model only in the span name, as `{operation} {model}`.
case("otel-genai-span-name", {"spans": [
    {"name": "chat gpt-4o-mini",
     "attrs": {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
               "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}},
]})

# --- OpenTelemetry GenAI, deprecated names ------------------------------------

# The older content events (gen_ai.content.prompt / .completion, attributes
# gen_ai.prompt / gen_ai.completion) and the underscore cache keys.
case("otel-genai-deprecated-content", {"spans": [
    {"name": "anthropic.chat",
     "attrs": {"gen_ai.system": "anthropic", "gen_ai.operation.name": "chat",
               "gen_ai.request.model": "claude-3-5-haiku-20241022",
               "gen_ai.usage.prompt_tokens": 3000, "gen_ai.usage.completion_tokens": 200,
               "gen_ai.usage.cache_read_input_tokens": 2000,
               "gen_ai.usage.cache_creation_input_tokens": 500},
     "events": [
         ("gen_ai.content.prompt",
          {"gen_ai.prompt": json.dumps([{"role": "user", "content": "Name a colour."}])}),
         ("gen_ai.content.completion",
          {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "Teal."}])}),
     ]},
]})

# --- precedence: several conventions on one span ------------------------------

case("precedence-mixed",
     {"spans": [
         # Canonical names present: they win over every older spelling.
         {"name": "new wins", "trace": 1,
          "attrs": {"gen_ai.provider.name": "openai", "gen_ai.system": "azure.ai.openai",
                    "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.prompt_tokens": 900,
                    "llm.token_count.prompt": 800,
                    "gen_ai.usage.output_tokens": 100, "gen_ai.usage.completion_tokens": 90}},
         # No canonical names: the older GenAI names come before the other
         # conventions' (see docs/llm-mapping.md).
         {"name": "deprecated before others", "trace": 2,
          "attrs": {"gen_ai.system": "openai", "llm.provider": "azure",
                    "gen_ai.request.model": "gpt-4o-mini", "ai.model.id": "gpt-4o",
                    "gen_ai.usage.prompt_tokens": 2000, "llm.token_count.prompt": 1900,
                    "ai.usage.promptTokens": 1800,
                    "gen_ai.usage.completion_tokens": 200, "llm.token_count.completion": 190}},
     ]})

# --- wrong types --------------------------------------------------------------

case("string-numbers",
     {"spans": [
         # Counts as decimal strings and as integral doubles: unambiguous.
         {"name": "openinference strings", "trace": 1, "kind": SPAN_KIND_INTERNAL,
          "attrs": {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                    "llm.provider": "openai", "llm.token_count.prompt": "1200",
                    "llm.token_count.completion": 300.0,
                    "llm.token_count.prompt_details.cache_read": "1000"}},
         # Not numbers at all: skipped (and counted), the rest still priced.
         {"name": "garbage counts", "trace": 2,
          "attrs": {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "llm.token_count.prompt": "12abc", "gen_ai.usage.prompt_tokens": 500,
                    "gen_ai.usage.completion_tokens": "-7", "llm.token_count.completion": 50}},
     ]})

# --- missing data, unknown models ---------------------------------------------

case("missing-tokens",
     {"spans": [
         {"name": "no usage", "trace": 1, "attrs": gen_ai("gpt-4o")},
         {"name": "input only", "trace": 2, "attrs": gen_ai("gpt-4o", inp=4000)},
         {"name": "output only", "trace": 3, "attrs": gen_ai("gpt-4o", out=500)},
     ]})

case("unknown-model",
     {"spans": [
         {"name": "chat acme-internal-llm-v3", "trace": 1,
          "attrs": gen_ai("acme-internal-llm-v3", provider="acme", inp=1000, out=100)},
         {"name": "llm without model", "trace": 2,
          "attrs": {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 100}},
     ]})

# --- prices: tiers, cache, dated history, normalisation -----------------------

case("tiered-gemini",
     {"attrs": {"service.name": "gemini-app"}, "spans": [
         {"name": "under the tier", "trace": 1,
          "attrs": gen_ai("gemini-2.5-pro", provider="gcp.gemini", op="generate_content",
                          inp=150000, out=2000)},
         {"name": "over the tier", "trace": 2,
          "attrs": gen_ai("gemini-2.5-pro", provider="gcp.gemini", op="generate_content",
                          inp=250000, out=2000)},
         {"name": "over the tier with cache", "trace": 3,
          "attrs": gen_ai("models/gemini-2.5-pro", provider="gcp.gemini", op="generate_content",
                          inp=300000, cread=200000, out=1000)},
         {"name": "gemini 1.5 long context", "trace": 4,
          "attrs": gen_ai("gemini-1.5-pro-002", provider="gcp.vertex_ai", op="generate_content",
                          inp=130000, out=1000)},
     ]})

case("anthropic-cache-heavy",
     {"spans": [
         {"name": "mostly cached", "trace": 1,
          "attrs": gen_ai("claude-sonnet-4-20250514", provider="anthropic",
                          inp=100000, cread=90000, cwrite=8000, out=500)},
         # Past the 200k tier by total input, not by uncached input.
         {"name": "tiered by total input", "trace": 2,
          "attrs": gen_ai("claude-sonnet-4-5-20250929", provider="anthropic",
                          inp=210000, cread=200000, out=1000)},
         # Cache counts larger than the input count (an SDK that reports
         # Anthropic's exclusive input_tokens): uncached input clamps at 0.
         {"name": "cache exceeds input", "trace": 3,
          "attrs": gen_ai("claude-3-5-sonnet-20241022", provider="anthropic",
                          inp=100, cread=4000, out=50)},
     ]})

case("model-normalisation",
     {"spans": [
         {"name": "openai prefix", "trace": 1,
          "attrs": gen_ai("openai/gpt-4o", inp=1000, out=100)},
         {"name": "azure prefix", "trace": 2,
          "attrs": gen_ai("azure/gpt-4o-mini", provider="azure.ai.openai", inp=1000, out=100)},
         {"name": "upper case", "trace": 3,
          "attrs": gen_ai("GPT-4o", inp=1000, out=100)},
         {"name": "bedrock region and version", "trace": 4,
          "attrs": gen_ai("us.anthropic.claude-3-5-sonnet-20241022-v2:0", provider="aws.bedrock",
                          inp=1000, out=100)},
         {"name": "bedrock inference profile arn", "trace": 5,
          "attrs": gen_ai("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                          "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                          provider="aws.bedrock", inp=1000, out=100)},
         {"name": "vertex prefix", "trace": 6,
          "attrs": gen_ai("vertex_ai/gemini-2.0-flash", provider="gcp.vertex_ai",
                          op="generate_content", inp=1000, out=100)},
         {"name": "gemini models prefix", "trace": 7,
          "attrs": gen_ai("models/gemini-2.0-flash", provider="gcp.gemini",
                          op="generate_content", inp=1000, out=100)},
         {"name": "anthropic prefix", "trace": 8,
          "attrs": gen_ai("anthropic/claude-3-5-haiku-20241022", provider="anthropic",
                          inp=1000, out=100)},
         {"name": "openrouter prefix", "trace": 9,
          "attrs": gen_ai("openrouter/anthropic/claude-3.5-sonnet", provider="openrouter",
                          inp=1000, out=100)},
     ]})

case("dated-prices",
     {"spans": [
         {"name": "o3 before the price cut", "trace": 1, "start": MAY_2025,
          "attrs": gen_ai("o3", inp=1000, out=100)},
         {"name": "o3 after the price cut", "trace": 2, "start": JUL_2025,
          "attrs": gen_ai("o3", inp=1000, out=100)},
     ]})

# No provider on the span: the one the price table found the model through,
# by its OpenTelemetry name. A provider the span names is never replaced.
case("provider-from-price",
     {"spans": [
         {"name": "openai by model_match", "trace": 1,
          "attrs": gen_ai("gpt-4o", provider=None, inp=1000, out=100)},
         {"name": "bedrock prefix", "trace": 2,
          "attrs": gen_ai("bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0", provider=None,
                          inp=1000, out=100)},
         {"name": "azure prefix, openai's entry", "trace": 3,
          "attrs": gen_ai("azure/gpt-4o", provider=None, inp=1000, out=100)},
         {"name": "vertex prefix", "trace": 4,
          "attrs": gen_ai("vertex_ai/gemini-2.0-flash", provider=None, op="generate_content",
                          inp=1000, out=100)},
         {"name": "mistral by model_match", "trace": 5,
          "attrs": gen_ai("mistral-large-latest", provider=None, inp=1000, out=100)},
         {"name": "xai by model_match", "trace": 6,
          "attrs": gen_ai("grok-3", provider=None, inp=1000, out=100)},
         {"name": "openrouter: no OpenTelemetry name", "trace": 7,
          "attrs": gen_ai("openrouter/openai/gpt-4o", provider=None, inp=1000, out=100)},
         {"name": "the span's provider stays", "trace": 8,
          "attrs": gen_ai("claude-3-haiku-20240307", provider="my-gateway", inp=1000, out=100)},
     ]})

# Regex clauses (translated to POSIX by scripts/convert_pricing.py) and a
# dated price history with tiers in both of its sets.
case("regex-dated-tiered",
     {"spans": [
         {"name": "luna dated name, new prices", "trace": 1,
          "attrs": gen_ai("gpt-5.6-luna-2026-09-01", inp=1000, cwrite=100, out=100)},
         {"name": "luna dashed name, old prices", "trace": 2, "start": MAY_2025,
          "attrs": gen_ai("gpt-5-6-luna-2025-04-01", inp=1000, cwrite=100, out=100)},
         {"name": "luna over the tier", "trace": 3,
          "attrs": gen_ai("gpt-5.6-luna", inp=300000, out=1000)},
         {"name": "luna name the regex refuses", "trace": 4,
          "attrs": gen_ai("gpt-5.6-luna-2026-9-1", inp=1000, out=100)},
     ]})

# An extra price table (pricing_file) adds models and wins over the shipped one.
case("pricing-file",
     {"spans": [
         {"name": "model only in the file", "trace": 1,
          "attrs": gen_ai("acme-llm-pro", provider="acme", inp=1000, out=100)},
         {"name": "file overrides the table", "trace": 2,
          "attrs": gen_ai("gpt-4o-mini", inp=1000, out=100)},
         {"name": "table still used", "trace": 3,
          "attrs": gen_ai("gpt-4o", inp=1000, out=100)},
     ]})

# --- OpenInference -----------------------------------------------------------

case("openinference-anthropic-cache", {"attrs": {"service.name": "oi-app"}, "spans": [
    {"name": "Anthropic.messages", "kind": SPAN_KIND_INTERNAL,
     "attrs": {"openinference.span.kind": "LLM", "llm.model_name": "claude-3-5-sonnet-20241022",
               "llm.provider": "anthropic", "llm.system": "anthropic",
               "llm.token_count.prompt": 3000, "llm.token_count.completion": 100,
               "llm.token_count.total": 3100,
               "llm.token_count.prompt_details.cache_read": 2000,
               "llm.token_count.prompt_details.cache_write": 500,
               "llm.input_messages.0.message.role": "user",
               "llm.input_messages.0.message.content": "Hello",
               "llm.output_messages.0.message.role": "assistant",
               "llm.output_messages.0.message.content": "Hi there",
               "llm.cost.total": "not a number"}},
    {"name": "OpenAIEmbeddings", "kind": SPAN_KIND_INTERNAL, "trace": 2,
     "attrs": {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
               "llm.token_count.prompt": 5000, "llm.token_count.total": 5000}},
]})

# EMBEDDING spans name their model in embedding.model_name, not llm.model_name;
# the OpenAI instrumentation adds llm.provider / llm.system and the texts.
case("openinference-embedding", {"attrs": {"service.name": "oi-rag"}, "spans": [
    {"name": "CreateEmbeddingResponse", "kind": SPAN_KIND_INTERNAL, "trace": 1,
     "attrs": {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
               "llm.provider": "openai", "llm.system": "openai",
               "embedding.invocation_parameters": '{"model":"text-embedding-3-small"}',
               "embedding.embeddings.0.embedding.text": "Tell me a joke about pirates",
               "llm.token_count.prompt": 1200, "llm.token_count.total": 1200}},
    {"name": "AzureOpenAIEmbedding", "kind": SPAN_KIND_INTERNAL, "trace": 2,
     "attrs": {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-large",
               "llm.provider": "azure", "llm.system": "openai",
               "llm.token_count.prompt": 300, "llm.token_count.total": 300}},
    {"name": "HuggingFaceEmbedding", "kind": SPAN_KIND_INTERNAL, "trace": 3,
     "attrs": {"openinference.span.kind": "EMBEDDING",
               "embedding.model_name": "BAAI/bge-small-en-v1.5",
               "llm.token_count.prompt": 40}},
]})

# --- OpenLLMetry -------------------------------------------------------------

case("openllmetry-association", {"attrs": {"service.name": "tl-app"}, "spans": [
    {"name": "openai.completion", "trace": 1,
     "attrs": {"llm.request.type": "completion", "gen_ai.system": "OpenAI",
               "gen_ai.request.model": "gpt-3.5-turbo-instruct",
               "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5,
               "gen_ai.prompt.0.content": "Say hi", "gen_ai.completion.0.content": "hi",
               "traceloop.association.properties.user_id": "tl-user-1",
               "traceloop.association.properties.session_id": "tl-sess-1"}},
    # customer_id comes before user_id.
    {"name": "both ids", "trace": 2, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"traceloop.span.kind": "task", "traceloop.entity.name": "both",
               "traceloop.association.properties.user_id": "tl-user-2",
               "traceloop.association.properties.customer_id": "tl-cust-2"}},
    # A workflow span with usage summed over its calls: never priced.
    {"name": "summed.workflow", "trace": 3, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"traceloop.span.kind": "workflow", "traceloop.workflow.name": "summed",
               "gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 5000,
               "gen_ai.usage.completion_tokens": 500, "llm.usage.total_tokens": 5500}},
]})

# --- Vercel AI SDK -----------------------------------------------------------

case("vercel-ai-v4", {"attrs": {"service.name": "next-v4"}, "spans": [
    {"name": "ai.streamText.doStream", "trace": 1, "parent": "ai.streamText",
     "attrs": {"operation.name": "ai.streamText.doStream", "ai.operationId": "ai.streamText.doStream",
               "ai.model.id": "claude-3-5-haiku-20241022", "ai.model.provider": "anthropic.messages",
               "ai.telemetry.metadata.customer_params": json.dumps(
                   {"customer_identifier": "v4-cust", "name": "V Four", "email": "v4@example.com"}),
               "ai.prompt.messages": json.dumps([{"role": "user", "content": "Write a haiku."}]),
               "ai.response.text": "Autumn moonlight",
               "ai.usage.promptTokens": 500, "ai.usage.completionTokens": 50}},
    {"name": "ai.streamText", "trace": 1, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"operation.name": "ai.streamText", "ai.operationId": "ai.streamText",
               "ai.model.id": "claude-3-5-haiku-20241022", "ai.model.provider": "anthropic.messages",
               "ai.telemetry.metadata.customer_params": json.dumps(
                   {"customer_identifier": "v4-cust", "name": "V Four", "email": "v4@example.com"}),
               "ai.usage.promptTokens": 500, "ai.usage.completionTokens": 50}},
    {"name": "ai.generateObject.doGenerate", "trace": 2,
     "attrs": {"operation.name": "ai.generateObject.doGenerate",
               "ai.operationId": "ai.generateObject.doGenerate",
               "ai.model.id": "gpt-4o-mini", "ai.model.provider": "openai.chat",
               "ai.telemetry.metadata.userId": "v4-user",
               "ai.response.toolCalls": json.dumps(
                   [{"toolCallType": "function", "toolCallId": "call_9", "toolName": "lookup",
                     "args": "{\"id\":7}"}]),
               "ai.usage.promptTokens": 1000, "ai.usage.completionTokens": 100}},
]})

case("vercel-ai-v5-cache", {"attrs": {"service.name": "next-v5"}, "spans": [
    {"name": "ai.generateText.doGenerate", "parent": "ai.generateText",
     "attrs": {"operation.name": "ai.generateText.doGenerate",
               "ai.operationId": "ai.generateText.doGenerate",
               "ai.model.id": "gpt-4.1", "ai.model.provider": "openai.responses",
               "ai.telemetry.metadata.customer_identifier": "v5-cust",
               "ai.usage.inputTokens": 10000, "ai.usage.cachedInputTokens": 8000,
               "ai.usage.outputTokens": 200}},
    {"name": "ai.generateText", "kind": SPAN_KIND_INTERNAL,
     "attrs": {"operation.name": "ai.generateText", "ai.operationId": "ai.generateText",
               "ai.model.id": "gpt-4.1", "ai.model.provider": "openai.responses",
               "ai.telemetry.metadata.customer_identifier": "v5-cust",
               "ai.usage.inputTokens": 10000, "ai.usage.cachedInputTokens": 8000,
               "ai.usage.outputTokens": 200}},
]})

# --- LiteLLM -----------------------------------------------------------------

LITELLM_SPANS = [
    {"name": "litellm_request", "trace": 1,
     "attrs": {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
               "gen_ai.usage.prompt_tokens": 1000, "gen_ai.usage.completion_tokens": 100,
               "gen_ai.cost.total_cost": 0.004,
               "metadata.user_api_key_end_user_id": "ll-user"}},
    {"name": "litellm end user", "trace": 2,
     "attrs": {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3-5-haiku-20241022",
               "gen_ai.usage.prompt_tokens": 2000, "gen_ai.usage.completion_tokens": 100,
               "litellm.end_user.id": "ll-end-2"}},
]
case("litellm", {"attrs": {"service.name": "litellm-proxy"}, "spans": LITELLM_SPANS})
case("litellm-prefer-computed", {"attrs": {"service.name": "litellm-proxy"}, "spans": LITELLM_SPANS})

# --- Langfuse ----------------------------------------------------------------

case("langfuse", {"attrs": {"service.name": "lf-app"}, "spans": [
    {"name": "lf generation reported", "trace": 1,
     "attrs": {"langfuse.observation.type": "generation",
               "langfuse.observation.model.name": "gpt-4o-mini",
               "langfuse.observation.usage_details": json.dumps({"input": 2000, "output": 100}),
               "langfuse.observation.cost_details": json.dumps({"total": 0.0005}),
               "langfuse.user.id": "lf-user", "langfuse.session.id": "lf-sess"}},
    {"name": "lf generation computed", "trace": 2,
     "attrs": {"langfuse.observation.type": "generation",
               "langfuse.observation.model.name": "gpt-4o-mini",
               "langfuse.observation.usage_details": json.dumps({"input": 2000, "output": 100}),
               "langfuse.user.id": "lf-user-2"}},
]})

# --- Respan / Keywords AI: every spelling, one trace each ---------------------

case("respan-spellings", {"attrs": {"service.name": "respan-app"}, "spans": [
    {"name": "respan customer_params", "trace": 1, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"respan.customer_params.customer_identifier": "r-params",
               "respan.customer_params.name": "R Params", "respan.customer_params.email": "p@r.example"}},
    {"name": "respan customer_identifier", "trace": 2, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"respan.customer_identifier": "r-flat"}},
    {"name": "respan customer dot", "trace": 3, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"respan.customer.identifier": "r-dot", "respan.customer.email": "d@r.example",
               "respan.customer.name": "R Dot"}},
    {"name": "keywordsai customer_params", "trace": 4, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"keywordsai.customer_params.customer_identifier": "k-params",
               "keywordsai.customer_params.name": "K Params",
               "keywordsai.customer_params.email": "p@k.example"}},
    {"name": "keywordsai customer_identifier", "trace": 5, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"keywordsai.customer_identifier": "k-flat"}},
    {"name": "keywordsai customer dot", "trace": 6, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"keywordsai.customer.identifier": "k-dot", "keywordsai.customer.email": "d@k.example",
               "keywordsai.customer.name": "K Dot"}},
    {"name": "respan identifiers", "trace": 7, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"respan.threads.thread_identifier": "thread-r",
               "respan.trace.trace_group_identifier": "group-r",
               "respan.span_params.custom_identifier": "custom-r",
               "respan.entity.log_type": "agent",
               "respan.metadata.plan": "pro", "respan.metadata": json.dumps({"region": "eu"})}},
    {"name": "keywordsai identifiers", "trace": 8, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"keywordsai.threads.thread_identifier": "thread-k",
               "keywordsai.trace.trace_group_identifier": "group-k",
               "keywordsai.span_params.custom_identifier": "custom-k",
               "keywordsai.entity.log_type": "tool"}},
    # Several spellings at once: the first in the documented order wins.
    {"name": "spellings compete", "trace": 9, "kind": SPAN_KIND_INTERNAL,
     "attrs": {"keywordsai.customer_identifier": "c-k-flat",
               "respan.customer.identifier": "c-r-dot",
               "respan.customer_identifier": "c-r-flat",
               "respan.customer_params.customer_identifier": "c-r-params",
               "user.id": "c-user"}},
]})

# --- generic identity keys, span before resource ------------------------------

case("generic-identity",
     {"attrs": {"service.name": "generic", "deployment.environment.name": "prod"}, "spans": [
         {"name": "user.id", "trace": 1, "kind": SPAN_KIND_SERVER, "attrs": {"user.id": "g-user"}},
         {"name": "enduser.id", "trace": 2, "kind": SPAN_KIND_SERVER, "attrs": {"enduser.id": "g-enduser"}},
         {"name": "session.id", "trace": 3, "kind": SPAN_KIND_SERVER, "attrs": {"session.id": "g-session"}},
         {"name": "conversation", "trace": 4,
          "attrs": {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-1"}},
     ]},
     {"attrs": {"service.name": "tenant-svc", "respan.customer_identifier": "res-cust"}, "spans": [
         {"name": "from resource", "trace": 5, "kind": SPAN_KIND_SERVER, "attrs": {"http.route": "/x"}},
         {"name": "span beats resource", "trace": 6, "kind": SPAN_KIND_SERVER,
          "attrs": {"user.id": "span-user"}},
     ]})

# --- customer propagation within one batch ------------------------------------

case("customer-propagation",
     {"spans": [
         {"name": "root", "trace": 1, "kind": SPAN_KIND_SERVER, "attrs": {"http.route": "/chat"}},
         {"name": "chat gpt-4o", "trace": 1, "parent": "root", "attrs": gen_ai("gpt-4o", inp=1000, out=100)},
         {"name": "leaf with customer", "trace": 1, "parent": "chat gpt-4o", "kind": SPAN_KIND_INTERNAL,
          "attrs": {"respan.customer_params.customer_identifier": "deep-cust"}},
         {"name": "other trace", "trace": 2, "kind": SPAN_KIND_SERVER, "attrs": {"http.route": "/other"}},
     ]})

# --- customer_params validation, markup, truncation ---------------------------

case("customer-params-validation",
     {"spans": [
         {"name": "valid params", "trace": 1, "kind": SPAN_KIND_INTERNAL,
          "attrs": {"keywordsai.customer_params.customer_identifier": "budget-ok",
                    "keywordsai.customer_params.budget_duration": "monthly",
                    "keywordsai.customer_params.period_budget": 1000,
                    "keywordsai.customer_params.total_budget": 10000.5,
                    "keywordsai.customer_params.period_start": "2025-01-01",
                    "keywordsai.customer_params.period_end": "2025-12-31",
                    "keywordsai.customer_params.markup_percentage": "12.5",
                    "keywordsai.customer_params.rate_limit": "60"}},
         {"name": "invalid params", "trace": 2, "kind": SPAN_KIND_INTERNAL,
          "attrs": {"keywordsai.customer_params.customer_identifier": "budget-bad",
                    "keywordsai.customer_params.budget_duration": "fortnightly",
                    "keywordsai.customer_params.period_budget": -5,
                    "keywordsai.customer_params.total_budget": "abc",
                    "keywordsai.customer_params.period_start": "2025-13-45",
                    "keywordsai.customer_params.period_end": "31/12/2025",
                    "keywordsai.customer_params.markup_percentage": -1.5,
                    "keywordsai.customer_params.rate_limit": "lots"}},
         # Invalid values under the canonical names themselves are removed.
         {"name": "invalid canonical params", "trace": 3, "kind": SPAN_KIND_INTERNAL,
          "attrs": {"respan.customer_params.customer_identifier": "canon-bad",
                    "respan.customer_params.budget_duration": "hourly",
                    "respan.customer_params.rate_limit": 2.5,
                    "respan.customer_params.period_end": "2025-02-30",
                    "respan.customer_params.total_budget": 50}},
     ]})

# drop_original: the convention attributes that fed a canonical one go.
case("customer-drop-original",
     {"spans": [
         {"name": "several sources", "kind": SPAN_KIND_INTERNAL,
          "attrs": {"keywordsai.customer_identifier": "drop-k", "user.id": "drop-user",
                    "keywordsai.customer.email": "k@drop.example",
                    "session.id": "drop-session", "http.route": "/kept"}},
     ]})

case("customer-markup",
     {"spans": [
         # The markup on the span that made the call.
         {"name": "chat with markup", "trace": 1,
          "attrs": {**gen_ai("gpt-4o", inp=1000, out=100),
                    "respan.customer_params.customer_identifier": "markup-co",
                    "respan.customer_params.markup_percentage": 20}},
         # The markup on the root, the call in a child: it follows the customer.
         {"name": "root with markup", "trace": 2, "kind": SPAN_KIND_SERVER,
          "attrs": {"respan.customer_params.customer_identifier": "markup-root",
                    "respan.customer_params.markup_percentage": 50.0}},
         {"name": "child call", "trace": 2, "parent": "root with markup",
          "attrs": gen_ai("gpt-4o-mini", inp=10000, out=1000)},
     ]})

LONG_CUSTOMER = "cust-" + "x" * 140 + "-tail"  # 150 characters
LONG_THREAD = "thread-" + "0123456789" * 13  # 137 characters
LONG_UNICODE = "客户-" + "ü" * 130  # 133 characters, 269 bytes of UTF-8
case("customer-truncate",
     {"spans": [
         {"name": "long identifiers", "kind": SPAN_KIND_INTERNAL,
          "attrs": {"respan.customer_identifier": LONG_CUSTOMER,
                    "respan.threads.thread_identifier": LONG_THREAD,
                    "session.id": "s" * 121}},
         # Characters, not bytes: the cut falls on a code point boundary.
         {"name": "long unicode identifier", "trace": 2, "kind": SPAN_KIND_INTERNAL,
          "attrs": {"respan.customer_identifier": LONG_UNICODE}},
     ]})

# --- customer from config: request header, default ----------------------------

case("customer-from-header",
     {"spans": [
         {"name": "no customer on span", "trace": 1, "kind": SPAN_KIND_SERVER, "attrs": {"http.route": "/a"}},
         {"name": "customer on span", "trace": 2, "kind": SPAN_KIND_SERVER,
          "attrs": {"respan.customer_identifier": "span-cust"}},
         # The trace's own customer is more specific than the header.
         {"name": "trace root with customer", "trace": 3, "kind": SPAN_KIND_SERVER,
          "attrs": {"user.id": "trace-user"}},
         {"name": "trace child", "trace": 3, "parent": "trace root with customer",
          "attrs": gen_ai("gpt-4o-mini", inp=1000, out=100)},
     ]})

case("customer-default",
     {"spans": [
         {"name": "anonymous", "trace": 1, "kind": SPAN_KIND_SERVER, "attrs": {"http.route": "/a"}},
         {"name": "known", "trace": 2, "kind": SPAN_KIND_SERVER, "attrs": {"enduser.id": "known-user"}},
         # The trace's customer beats the default for a span naming none.
         {"name": "child of known", "trace": 2, "parent": "known", "kind": SPAN_KIND_INTERNAL,
          "attrs": {"http.route": "/b"}},
     ]})

# --- cost config: per-model prices, reported costs ----------------------------

case("cost-config-models",
     {"spans": [
         {"name": "configured model", "trace": 1,
          "attrs": gen_ai("acme-llm", provider="acme", inp=1000, cread=400, out=100)},
         {"name": "override of the table", "trace": 2,
          "attrs": gen_ai("gpt-4o", inp=1000, out=100)},
         {"name": "table model", "trace": 3,
          "attrs": gen_ai("gpt-4o-mini", inp=1000, out=100)},
     ]})

case("reported-cost",
     {"spans": [
         {"name": "gen_ai.usage.cost", "trace": 1,
          "attrs": {**gen_ai("gpt-4o", inp=1000, out=100), "gen_ai.usage.cost": 0.01}},
         {"name": "llm.cost.total", "trace": 2, "kind": SPAN_KIND_INTERNAL,
          "attrs": {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
                    "llm.token_count.prompt": 1000, "llm.token_count.completion": 100,
                    "llm.cost.total": 0.02}},
         {"name": "reported as string", "trace": 3,
          "attrs": {**gen_ai("gpt-4o", inp=1000, out=100), "gen_ai.usage.cost": "0.03"}},
         {"name": "reported for unknown model", "trace": 4,
          "attrs": {**gen_ai("acme-internal-llm-v3", provider="acme", inp=1000, out=100),
                    "gen_ai.usage.cost": 0.05}},
     ]})


def main():
    for name, resources in CASES.items():
        path = os.path.join(OUT, name + ".json")
        with open(path, "w") as f:
            json.dump(request(name, resources), f, indent=2)
            f.write("\n")
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
