"""Finished span → :class:`LLMCall`, whichever instrumentation wrote it.

Reads the OpenTelemetry GenAI conventions (current and deprecated names), OpenLLMetry, OpenInference,
OpenLIT, the Vercel AI SDK and Logfire / Pydantic AI (see ``CONVENTIONS.md`` §2). Each concept has an
ordered list of attribute names; the first one present wins.

Outcomes for a span, each counted by the exporter:

* an LLM call → an :class:`LLMCall` (with ``flags`` naming whatever had to be repaired);
* a tool execution (OTel GenAI ``execute_tool``, OpenInference ``TOOL``, OpenLLMetry ``tool``, the Vercel AI
  SDK's ``ai.toolCall``) → a :class:`ToolCall`, stored apart: never an LLM call, never priced;
* not an LLM call (HTTP, DB, agent or workflow wrapper spans) → ``SKIP_NOT_LLM``;
* an LLM span nested in another LLM span (two instrumentations of the same call) → ``SKIP_NESTED``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan

from .._model.call import LLMCall
from .._model.tool import ToolCall
from .._privacy.pseudonym import Pseudonymizer
from .attribution import NESTED_ATTRIBUTE, TAG_PREFIX, span_attributes
from .conventions import (
    AGENT_RUN_SPAN,
    CACHE_AWARE_OPERATIONS,
    CACHE_READ_KEYS,
    CACHE_WRITE_KEYS,
    COMPLETION_KEYS,
    INCOMPLETE_USAGE_SCOPES,
    INPUT_KEYS,
    MODEL_KEYS,
    OPENINFERENCE_LLM_KINDS,
    OPERATION_KEYS,
    OUTPUT_KEYS,
    PROMPT_KEYS,
    PROVIDER_KEYS,
    REASONING_KEYS,
    REQUEST_MODEL_KEYS,
    RESPONSE_ID_KEYS,
    SPAN_TENANT_KEYS,
    SPAN_USER_KEYS,
    VERCEL_CALL_SPAN,
    WRAPPER_OPERATIONS,
    normalize_provider,
)
from .spans import MAX_ID_CHARS as MAX_ID_CHARS
from .spans import Found as _Found
from .spans import attribution as _attribution
from .spans import clean_id as clean_id
from .spans import error as _error
from .spans import first as _first
from .spans import service as _service
from .spans import text as _text
from .spans import timing as _timing
from .tools import tool_call as _tool_call
from .tools import tool_of as _tool

SKIP_NOT_LLM: Final = "not_llm"
SKIP_NESTED: Final = "nested_duplicate"

MAX_TOKENS: Final = 10**10
"""Token counts above this are treated as corrupt (no real call reads ten billion tokens)."""


_CONCEPT_KEYS: dict[str, tuple[str, ...]] = {
    "provider": PROVIDER_KEYS,
    "model": MODEL_KEYS,
    "request_model": REQUEST_MODEL_KEYS,
    "input": INPUT_KEYS,
    "output": OUTPUT_KEYS,
    "cache_read": CACHE_READ_KEYS,
    "cache_write": CACHE_WRITE_KEYS,
    "reasoning": REASONING_KEYS,
    "operation": OPERATION_KEYS,
    "response_id": RESPONSE_ID_KEYS,
    "user": SPAN_USER_KEYS,
    "tenant": SPAN_TENANT_KEYS,
}
# attribute name → every (concept, rank) it serves; a span's attributes are scanned once.
_INDEX: dict[str, list[tuple[str, int]]] = {}
for _concept, _keys in _CONCEPT_KEYS.items():
    for _rank, _key in enumerate(_keys):
        _INDEX.setdefault(_key, []).append((_concept, _rank))


def _scan(attrs: Mapping[str, Any]) -> tuple[_Found, list[tuple[str, Any]]]:
    """One pass over the attributes: the best-ranked ``(key, value)`` per concept, and the tag attributes."""
    found: _Found = {}
    ranks: dict[str, int] = {}
    tags: list[tuple[str, Any]] = []
    for key, value in attrs.items():
        hits = _INDEX.get(key)
        if hits is None:
            if key.startswith(TAG_PREFIX):
                tags.append((key[len(TAG_PREFIX) :], value))
            continue
        if value is None or value == "":
            continue
        for concept, rank in hits:
            if rank < ranks.get(concept, 1 << 30):
                ranks[concept] = rank
                found[concept] = (key, value)
    return found, tags


def _tokens(found: tuple[str, Any] | None, flags: list[str]) -> int:
    if found is None:
        return 0
    key, value = found
    if isinstance(value, bool):
        flags.append(f"invalid_tokens:{key}")
        return 0
    if isinstance(value, float):
        if not value.is_integer():
            flags.append(f"invalid_tokens:{key}")
            return 0
        value = int(value)
        flags.append(f"coerced_tokens:{key}")
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            flags.append(f"invalid_tokens:{key}")
            return 0
        flags.append(f"coerced_tokens:{key}")
    elif not isinstance(value, int):
        flags.append(f"invalid_tokens:{key}")
        return 0
    if value < 0 or value > MAX_TOKENS:
        flags.append(f"invalid_tokens:{key}")
        return 0
    return value


def _detect_source(attrs: Mapping[str, Any], name: str) -> str:
    if "openinference.span.kind" in attrs or "llm.model_name" in attrs:
        return "openinference"
    if name.startswith("ai.") and any(k.startswith("ai.") for k in attrs):
        return "vercel-ai"
    if "gen_ai.usage.prompt_tokens" in attrs or "llm.request.type" in attrs:
        return "openllmetry"
    return "otel-genai"


def _is_llm_call(attrs: Mapping[str, Any], name: str, found: _Found) -> bool:
    kind = attrs.get("openinference.span.kind")
    if kind is not None and str(kind).upper() not in OPENINFERENCE_LLM_KINDS:
        return False
    if "traceloop.span.kind" in attrs:
        return False
    operation = attrs.get("gen_ai.operation.name")
    if operation is not None and str(operation) in WRAPPER_OPERATIONS:
        return False
    if AGENT_RUN_SPAN.match(name):
        return False
    if name.startswith("ai.") and "ai.model.id" in attrs and not VERCEL_CALL_SPAN.match(name):
        return False  # ai.generateText wraps ai.generateText.doGenerate, which is the call
    return "model" in found or "input" in found or "output" in found


class Normalizer:
    """Turns finished spans into :class:`LLMCall` records.

    Args:
        capture_content: Keep prompts and completions (off by default: the ledger holds token counts,
            cost and tags only).
        max_content_chars: Per-field cap on kept content; longer text is cut and flagged.
        pseudonymize: Store user ids (and tenant ids, when it says so) as their keyed hash, whichever
            attribute named them.
        redact: Runs on captured content before it is kept; when it raises, the content is dropped and the
            call flagged ``redaction_failed``.
    """

    def __init__(
        self,
        *,
        capture_content: bool = False,
        max_content_chars: int = 16_384,
        pseudonymize: Pseudonymizer | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.capture_content = capture_content
        self.max_content_chars = max_content_chars
        self.pseudonymize = pseudonymize
        self.redact = redact

    def normalize(self, span: ReadableSpan, now_ns: int) -> LLMCall | ToolCall | str:
        """The span's :class:`LLMCall` or :class:`ToolCall`, or the reason (``SKIP_*``) it is neither."""
        attrs = span_attributes(span)
        name = span.name or ""
        if attrs.get(NESTED_ATTRIBUTE):
            return SKIP_NESTED
        found, tag_attrs = _scan(attrs)
        if not _is_llm_call(attrs, name, found):
            tool = _tool(attrs, name)
            if tool is None:
                return SKIP_NOT_LLM
            executed = _tool_call(span, attrs, found, tag_attrs, tool, now_ns)
            if self.pseudonymize is not None:  # tool executions name the same users as the calls
                executed.user_id = self.pseudonymize(executed.user_id)
                executed.tenant_id = self.pseudonymize.tenant(executed.tenant_id)
            return executed
        flags: list[str] = []
        source = _detect_source(attrs, name)

        provider_found = found.get("provider")
        provider = normalize_provider(_text(provider_found[1])) if provider_found else ""
        model_found = found.get("model")
        model = _text(model_found[1]).strip()[:MAX_ID_CHARS] if model_found else ""
        if not model:
            flags.append("no_model")
        request_found = found.get("request_model")
        request_model = _text(request_found[1]).strip()[:MAX_ID_CHARS] if request_found else model
        op_found = found.get("operation")
        if op_found:
            operation = _text(op_found[1])
        elif "openinference.span.kind" in attrs:
            operation = str(attrs["openinference.span.kind"]).lower()
        elif source == "vercel-ai":
            operation = name.split(".")[1] if name.count(".") >= 1 else name
        else:
            operation = ""

        if "input" not in found and "output" not in found:
            flags.append("no_usage")  # e.g. an OpenAI stream without stream_options.include_usage
        input_tokens = _tokens(found.get("input"), flags)
        output_tokens = _tokens(found.get("output"), flags)
        cache_read = _tokens(found.get("cache_read"), flags)
        cache_write = _tokens(found.get("cache_write"), flags)
        reasoning = _tokens(found.get("reasoning"), flags)
        if (
            span.instrumentation_scope is not None
            and span.instrumentation_scope.name in INCOMPLETE_USAGE_SCOPES
            and operation in CACHE_AWARE_OPERATIONS
            and "cache_read" not in found
        ):
            flags.append("usage_incomplete")  # its cost may be overstated: cache reads priced as full input
        if input_excludes_cache(attrs, source, provider, input_tokens, cache_read, cache_write):
            input_tokens += cache_read + cache_write
            flags.append("input_excluded_cache")

        user_id, user_source, tenant_id, tags = _attribution(found, tag_attrs, flags)
        if self.pseudonymize is not None:
            user_id, tenant_id = self.pseudonymize(user_id), self.pseudonymize.tenant(tenant_id)
        timestamp, duration_us = _timing(span, now_ns, flags)
        is_error, error_type = _error(span, attrs)
        response_found = found.get("response_id")

        call = LLMCall(
            timestamp=timestamp,
            trace_id=span.context.trace_id if span.context else 0,
            span_id=span.context.span_id if span.context else 0,
            parent_span_id=span.parent.span_id if span.parent else 0,
            duration_us=duration_us,
            provider=provider,
            model=model,
            request_model=request_model,
            operation=operation[:64],
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            user_id=user_id,
            user_source=user_source,
            tenant_id=tenant_id,
            tags=tags,
            is_error=is_error,
            error_type=error_type,
            response_id=_text(response_found[1])[:128] if response_found else "",
            service_name=_service(span),
            source=source,
            flags=flags,
        )
        if self.capture_content:
            call.prompt = self._content(attrs, PROMPT_KEYS, call)
            call.completion = self._content(attrs, COMPLETION_KEYS, call)
        return call

    def _content(self, attrs: Mapping[str, Any], keys: tuple[str, ...], call: LLMCall) -> str:
        found = _first(attrs, keys)
        if found is None:
            return ""
        text = _text(found[1])
        if self.redact is not None:
            # redacted before it is cut, with a margin, so a pattern at the cut is still recognised
            try:
                text = self.redact(text[: self.max_content_chars + 256])
            except Exception:
                call.flags.append("redaction_failed")
                return ""
        if len(text) > self.max_content_chars:
            call.flags.append("content_truncated")
            text = text[: self.max_content_chars]
        return text


def input_excludes_cache(
    attrs: Mapping[str, Any], source: str, provider: str, input_tokens: int, cache_read: int, cache_write: int
) -> bool:
    """Whether this source reported input tokens *without* cache tokens (Anthropic's API style).

    OpenTelemetry GenAI and genai-prices count cache reads and writes inside ``input_tokens``.
    Anthropic's API reports them on top; the Vercel AI SDK before v6 passes that through, and any
    span whose input is smaller than its cache tokens cannot have included them.
    """
    if cache_read + cache_write == 0:
        return False
    if input_tokens < cache_read + cache_write:
        return True
    return source == "vercel-ai" and provider == "anthropic" and "ai.usage.inputTokenDetails.noCacheTokens" not in attrs
