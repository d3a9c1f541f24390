"""The attribute names each convention writes — OpenTelemetry GenAI (current and deprecated), OpenLLMetry,
OpenInference, OpenLIT, the Vercel AI SDK, Logfire / Pydantic AI — ordered per concept (the first present
wins), what marks a span as a wrapper rather than a call, and the spellings of providers (see
``CONVENTIONS.md`` §2)."""

from __future__ import annotations

import re
from typing import Final

from .attribution import TENANT_ATTRIBUTE, USER_ATTRIBUTE

PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
MODEL_KEYS = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.request.model",
    "llm.model_name",
    "embedding.model_name",  # OpenInference EMBEDDING spans carry their model only here
    "ai.response.model",
    "ai.model.id",
)
REQUEST_MODEL_KEYS = (
    "gen_ai.request.model",
    "llm.request.model",
    "llm.model_name",
    "embedding.model_name",
    "ai.model.id",
)
INPUT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
)
OUTPUT_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
)
CACHE_READ_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "ai.usage.cachedInputTokens",
    "ai.usage.inputTokenDetails.cacheReadTokens",
    "gen_ai.usage.details.cache_read_tokens",  # Pydantic AI
)
CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "llm.token_count.prompt_details.cache_write",
    "ai.usage.cacheWriteTokens",
    "ai.usage.inputTokenDetails.cacheWriteTokens",
    "gen_ai.usage.details.cache_write_tokens",  # Pydantic AI
)
REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
    "ai.usage.reasoningTokens",
    "ai.usage.outputTokenDetails.reasoningTokens",
    "gen_ai.usage.details.reasoning_tokens",  # Pydantic AI
)
OPERATION_KEYS = ("gen_ai.operation.name", "llm.request.type")
RESPONSE_ID_KEYS = ("gen_ai.response.id", "llm.response.id", "ai.response.id")
SPAN_USER_KEYS = (
    USER_ATTRIBUTE,
    "user.id",
    "langfuse.user.id",
    "gen_ai.user",
    "gen_ai.request.user",
    "llm.user",
    "traceloop.association.properties.user_id",
    "ai.telemetry.metadata.userId",
)
SPAN_TENANT_KEYS = (
    TENANT_ATTRIBUTE,
    "traceloop.association.properties.tenant_id",
    "ai.telemetry.metadata.tenantId",
    "langfuse.trace.metadata.tenant_id",
)
PROMPT_KEYS = ("gen_ai.input.messages", "gen_ai.prompt", "input.value", "ai.prompt.messages", "ai.prompt")
COMPLETION_KEYS = ("gen_ai.output.messages", "gen_ai.completion", "output.value", "ai.response.text")

# Tool executions (stored as tool calls, never as LLM calls): the marker of each convention, and its tool name.
TOOL_OPERATION = "execute_tool"
"""``gen_ai.operation.name`` of an OpenTelemetry GenAI tool span; its tool is ``gen_ai.tool.name``."""
OPENINFERENCE_TOOL_KIND = "TOOL"
"""``openinference.span.kind`` of an OpenInference tool span; its tool is ``tool.name``."""
OPENLLMETRY_TOOL_KIND = "tool"
"""``traceloop.span.kind`` of an OpenLLMetry tool span; its tool is ``traceloop.entity.name``."""
VERCEL_TOOL_SPAN = "ai.toolCall"
"""The Vercel AI SDK's tool span (its tool is ``ai.toolCall.name``)."""
TOOL_TYPE_KEYS = ("gen_ai.tool.type",)
TOOL_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool.id", "ai.toolCall.id")

# Operations that wrap LLM calls rather than being one; counting them would count the call twice.
WRAPPER_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "workflow", "task", "agent", "tool"})
OPENINFERENCE_LLM_KINDS = frozenset({"LLM", "EMBEDDING"})
# Pydantic AI's agent run span carries the run's total usage but no operation name.
AGENT_RUN_SPAN = re.compile(r"^(agent run|invoke_agent)( |$)")
VERCEL_CALL_SPAN = re.compile(r"^ai\.[A-Za-z]+\.do[A-Z][A-Za-z]*$")

# gen_ai.system / llm.provider / ai.model.provider spellings → genai-prices provider ids.
PROVIDER_ALIASES = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure_openai": "azure",
    "azure": "azure",
    "azure.ai.inference": "azure",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google": "google",
    "google.generative-ai": "google",
    "google.vertex": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "amazon-bedrock": "aws",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
}

INCOMPLETE_USAGE_SCOPES: Final = frozenset(
    {"opentelemetry.util.genai.handler", "opentelemetry.instrumentation.openai_v2"}
)
"""Instrumentations that put no cached and no reasoning tokens on their spans (opentelemetry-instrumentation-
openai-v2 2.4b0, through opentelemetry-util-genai 1.1b0): a cached prompt looks uncached and is charged at the
full input price. Their chat calls without a cache attribute are flagged ``usage_incomplete``."""
CACHE_AWARE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", ""})


def normalize_provider(raw: str) -> str:
    """``gen_ai.system``-style spellings (``OpenAI``, ``gcp.vertex_ai``, ``openai.chat``) → a price-table id."""
    value = raw.strip().lower()
    if value in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[value]
    head = value.split(".", 1)[0]  # Vercel: "openai.responses", "anthropic.messages"
    return PROVIDER_ALIASES.get(head, value)
