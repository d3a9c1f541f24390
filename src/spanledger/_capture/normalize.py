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

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from .._model.call import LLMCall
from .._model.tool import ToolCall
from .attribution import NESTED_ATTRIBUTE, TAG_PREFIX, USER_ATTRIBUTE, span_attributes
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
    OPENINFERENCE_TOOL_KIND,
    OPENLLMETRY_TOOL_KIND,
    OPERATION_KEYS,
    OUTPUT_KEYS,
    PROMPT_KEYS,
    PROVIDER_KEYS,
    REASONING_KEYS,
    REQUEST_MODEL_KEYS,
    RESPONSE_ID_KEYS,
    SPAN_TENANT_KEYS,
    SPAN_USER_KEYS,
    TOOL_CALL_ID_KEYS,
    TOOL_OPERATION,
    TOOL_TYPE_KEYS,
    VERCEL_CALL_SPAN,
    VERCEL_TOOL_SPAN,
    WRAPPER_OPERATIONS,
    normalize_provider,
)

SKIP_NOT_LLM: Final = "not_llm"
SKIP_NESTED: Final = "nested_duplicate"

MAX_TOKENS: Final = 10**10
"""Token counts above this are treated as corrupt (no real call reads ten billion tokens)."""
MAX_ID_CHARS: Final = 256
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MIN_TS_NS: Final = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1e9)
_FUTURE_SLACK_NS: Final = 24 * 3600 * 10**9


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

_Found = dict[str, tuple[str, Any]]


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


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return key, value
    return None


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


def _utf8(text: str) -> str:
    """``text`` made encodable as UTF-8 (a lone surrogate becomes U+FFFD) so it can be stored."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def clean_id(value: object, flags: list[str], what: str) -> str:
    """A user or tenant id made safe to store: valid UTF-8, no control characters, at most 256 chars."""
    if (
        type(value) is str
        and value.isascii()
        and value.isprintable()  # printable ASCII: no control characters
        and len(value) <= MAX_ID_CHARS
        and value[:1] != " "
        and value[-1:] != " "
    ):
        return value  # the usual id, checked at C speed
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = value if isinstance(value, str) else str(value)
    cleaned = _CONTROL_CHARS.sub("", _utf8(text)).strip()
    if cleaned != text:
        flags.append(f"{what}_cleaned")
    if len(cleaned) > MAX_ID_CHARS:
        cleaned = cleaned[:MAX_ID_CHARS]
        flags.append(f"{what}_truncated")
    return cleaned


def _text(value: object) -> str:
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, (list, tuple)):
        return _utf8("\n".join(str(v) for v in value))
    return _utf8(str(value))


def _detect_source(attrs: Mapping[str, Any], name: str) -> str:
    if "openinference.span.kind" in attrs or "llm.model_name" in attrs:
        return "openinference"
    if name.startswith("ai.") and any(k.startswith("ai.") for k in attrs):
        return "vercel-ai"
    if "gen_ai.usage.prompt_tokens" in attrs or "llm.request.type" in attrs:
        return "openllmetry"
    return "otel-genai"


def _tool(attrs: Mapping[str, Any], name: str) -> tuple[object, str] | None:
    """The tool a tool-execution span ran (as the span names it, maybe empty) and its convention; None for
    any other span."""
    if attrs.get("gen_ai.operation.name") == TOOL_OPERATION:
        return attrs.get("gen_ai.tool.name") or name.removeprefix(TOOL_OPERATION).strip(), "otel-genai"
    kind = attrs.get("openinference.span.kind")
    if kind is not None and str(kind).upper() == OPENINFERENCE_TOOL_KIND:
        return attrs.get("tool.name") or name, "openinference"
    kind = attrs.get("traceloop.span.kind")
    if kind is not None and str(kind).lower() == OPENLLMETRY_TOOL_KIND:
        return attrs.get("traceloop.entity.name") or name.removesuffix(".tool"), "openllmetry"
    if name == VERCEL_TOOL_SPAN:
        return attrs.get("ai.toolCall.name"), "vercel-ai"
    return None


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
    """

    def __init__(self, *, capture_content: bool = False, max_content_chars: int = 16_384) -> None:
        self.capture_content = capture_content
        self.max_content_chars = max_content_chars

    def normalize(self, span: ReadableSpan, now_ns: int) -> LLMCall | ToolCall | str:
        """The span's :class:`LLMCall` or :class:`ToolCall`, or the reason (``SKIP_*``) it is neither."""
        attrs = span_attributes(span)
        name = span.name or ""
        if attrs.get(NESTED_ATTRIBUTE):
            return SKIP_NESTED
        found, tag_attrs = _scan(attrs)
        if not _is_llm_call(attrs, name, found):
            tool = _tool(attrs, name)
            return SKIP_NOT_LLM if tool is None else _tool_call(span, attrs, found, tag_attrs, tool, now_ns)
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
        if len(text) > self.max_content_chars:
            call.flags.append("content_truncated")
            text = text[: self.max_content_chars]
        return text


def _attribution(
    found: _Found, tag_attrs: list[tuple[str, Any]], flags: list[str]
) -> tuple[str, str, str, dict[str, str]]:
    """User id, where it came from (``attribution`` or ``span``), tenant id and tags, cleaned."""
    user_id, user_source = "", ""
    user_found = found.get("user")
    if user_found:
        user_id = clean_id(user_found[1], flags, "user_id")
        user_source = "attribution" if user_found[0] == USER_ATTRIBUTE else "span"
    tenant_found = found.get("tenant")
    tenant_id = clean_id(tenant_found[1], flags, "tenant_id") if tenant_found else ""
    tags = {clean_id(k, flags, "tag"): clean_id(v, flags, "tag") for k, v in tag_attrs}
    return user_id, user_source, tenant_id, tags


def _timing(span: ReadableSpan, now_ns: int, flags: list[str]) -> tuple[datetime, int]:
    """When the span started (now, flagged ``clock_skew``, when its clock is implausible) and its duration (µs)."""
    start_ns = span.start_time if span.start_time is not None else now_ns
    end_ns = span.end_time or start_ns
    duration_us = max(0, (end_ns - start_ns) // 1000)
    if start_ns < _MIN_TS_NS or start_ns > now_ns + _FUTURE_SLACK_NS:
        flags.append("clock_skew")
        start_ns = now_ns
    return datetime.fromtimestamp(start_ns // 10**9, tz=UTC).replace(
        microsecond=(start_ns // 1000) % 10**6
    ), duration_us


def _error(span: ReadableSpan, attrs: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the span failed (an error status or an ``error.type``) and the error's type."""
    is_error = span.status.status_code is StatusCode.ERROR
    error_type = _text(attrs.get("error.type", "")) if is_error or "error.type" in attrs else ""
    if is_error and not error_type:
        error_type = _text(
            next(
                (e.attributes.get("exception.type", "") for e in span.events if e.name == "exception" and e.attributes),
                "",
            )
            or "error"
        )
    return is_error or "error.type" in attrs, str(error_type)[:128]


def _service(span: ReadableSpan) -> str:
    resource_attrs = span.resource.attributes if span.resource else {}
    return str(resource_attrs.get("service.name", ""))[:128]


def _tool_call(
    span: ReadableSpan,
    attrs: Mapping[str, Any],
    found: _Found,
    tag_attrs: list[tuple[str, Any]],
    tool: tuple[object, str],
    now_ns: int,
) -> ToolCall:
    """A tool-execution span as a :class:`ToolCall`: attributed, timed and flagged like an LLM call."""
    flags: list[str] = []
    raw_name, source = tool
    tool_name = clean_id(_text(raw_name), flags, "tool_name") if raw_name not in (None, "") else ""
    if not tool_name:
        flags.append("no_tool_name")
    user_id, _source, tenant_id, tags = _attribution(found, tag_attrs, flags)
    timestamp, duration_us = _timing(span, now_ns, flags)
    is_error, error_type = _error(span, attrs)
    tool_type, call_id = _first(attrs, TOOL_TYPE_KEYS), _first(attrs, TOOL_CALL_ID_KEYS)
    return ToolCall(
        timestamp=timestamp,
        trace_id=span.context.trace_id if span.context else 0,
        span_id=span.context.span_id if span.context else 0,
        parent_span_id=span.parent.span_id if span.parent else 0,
        duration_us=duration_us,
        tool_name=tool_name,
        tool_type=_text(tool_type[1])[:64] if tool_type else "",
        tool_call_id=_text(call_id[1])[:128] if call_id else "",
        user_id=user_id,
        tenant_id=tenant_id,
        tags=tags,
        is_error=is_error,
        error_type=error_type,
        service_name=_service(span),
        source=source,
        flags=flags,
    )


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
