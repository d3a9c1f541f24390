"""Tool executions: which spans are one (each convention's marker and tool name), and what is stored of them.

A tool span is never an LLM call (``_is_llm_call`` says so first); the normaliser hands it here and the
exporter sends the :class:`ToolCall` to the pipeline's tool path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .._model.tool import ToolCall
from .conventions import (
    OPENINFERENCE_TOOL_KIND,
    OPENLLMETRY_TOOL_KIND,
    TOOL_CALL_ID_KEYS,
    TOOL_OPERATION,
    TOOL_TYPE_KEYS,
    VERCEL_TOOL_SPAN,
)
from .spans import Found, attribution, clean_id, error, first, service, text, timing


def tool_of(attrs: Mapping[str, Any], name: str) -> tuple[object, str] | None:
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


def tool_call(
    span: ReadableSpan,
    attrs: Mapping[str, Any],
    found: Found,
    tag_attrs: list[tuple[str, Any]],
    tool: tuple[object, str],
    now_ns: int,
) -> ToolCall:
    """A tool-execution span as a :class:`ToolCall`: attributed, timed and flagged like an LLM call."""
    flags: list[str] = []
    raw_name, source = tool
    tool_name = clean_id(text(raw_name), flags, "tool_name") if raw_name not in (None, "") else ""
    if not tool_name:
        flags.append("no_tool_name")
    user_id, _source, tenant_id, tags = attribution(found, tag_attrs, flags)
    timestamp, duration_us = timing(span, now_ns, flags)
    is_error, error_type = error(span, attrs)
    tool_type, call_id = first(attrs, TOOL_TYPE_KEYS), first(attrs, TOOL_CALL_ID_KEYS)
    return ToolCall(
        timestamp=timestamp,
        trace_id=span.context.trace_id if span.context else 0,
        span_id=span.context.span_id if span.context else 0,
        parent_span_id=span.parent.span_id if span.parent else 0,
        duration_us=duration_us,
        tool_name=tool_name,
        tool_type=text(tool_type[1])[:64] if tool_type else "",
        tool_call_id=text(call_id[1])[:128] if call_id else "",
        user_id=user_id,
        tenant_id=tenant_id,
        tags=tags,
        is_error=is_error,
        error_type=error_type,
        service_name=service(span),
        source=source,
        flags=flags,
    )
