"""Test helpers: finished LLM and tool spans and calls built by hand, with deterministic ids and times.

For testing an application's use of spanledger (hand spans to a :class:`~spanledger.CostExporter` and read
the :class:`~spanledger.Ledger`) without an LLM, an instrumentation or a ``TracerProvider`` — and what
spanledger's own tests are written on::

    from spanledger.testing import llm_span

    exporter.export([llm_span(n, user="alice", tenant="acme") for n in range(3)])
    assert exporter.force_flush()

Spans follow the OpenTelemetry GenAI conventions, as the instrumentations write them after our
:class:`~spanledger.UserAttributionProcessor` ran (``enduser.id``, ``tenant.id``, ``spanledger.tag.*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ._capture.attribution import TAG_PREFIX, TENANT_ATTRIBUTE, USER_ATTRIBUTE
from ._capture.normalize import Normalizer
from ._model.call import LLMCall

__all__ = ["BASE_TIME", "SequentialIdGenerator", "llm_call", "llm_span", "span", "tool_span"]

BASE_TIME = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
"""When span ``0`` starts; span ``n`` starts ``n`` seconds later unless told otherwise."""
_BASE_NS = int(BASE_TIME.timestamp()) * 10**9
_RESOURCE = Resource.create({"service.name": "test-app"})


def _ns(at: datetime) -> int:
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    return int(utc.timestamp()) * 10**9 + utc.microsecond * 1000


def span(
    n: int = 0,
    *,
    attributes: Mapping[str, Any] | None = None,
    name: str = "span",
    at: datetime | None = None,
    start_ns: int | None = None,
    duration: timedelta = timedelta(milliseconds=250),
    trace_id: int | None = None,
    span_id: int | None = None,
    parent_span_id: int | None = None,
    error: bool = False,
    kind: SpanKind = SpanKind.CLIENT,
    resource: Resource | None = None,
) -> ReadableSpan:
    """The ``n``-th finished span: span id ``n + 1``, trace id ``0xA000 + n``, starting ``n`` seconds after
    :data:`BASE_TIME` (or ``at`` / ``start_ns``), with exactly ``attributes``."""
    start = start_ns if start_ns is not None else _ns(at) if at is not None else _BASE_NS + n * 10**9
    trace = trace_id if trace_id is not None else 0xA000 + n
    context = SpanContext(trace, span_id if span_id is not None else n + 1, False, TraceFlags(TraceFlags.SAMPLED))
    parent = SpanContext(trace, parent_span_id, False, TraceFlags(TraceFlags.SAMPLED)) if parent_span_id else None
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource if resource is not None else _RESOURCE,
        attributes=dict(attributes or {}),
        kind=kind,
        status=Status(StatusCode.ERROR) if error else Status(StatusCode.UNSET),
        start_time=start,
        end_time=start + int(duration.total_seconds() * 10**9),
    )


def llm_span(
    n: int = 0,
    *,
    user: str | None = "alice",
    tenant: str | None = "acme",
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    input_tokens: Any = 1200,
    output_tokens: Any = 30,
    cache_read: Any = 1024,
    cache_write: Any = None,
    reasoning: Any = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    **span_args: Any,
) -> ReadableSpan:
    """The ``n``-th OTel GenAI chat call (see :func:`span` for ids and times): by default alice of acme,
    gpt-4o-mini, 1,200 input tokens of which 1,024 cached, 30 output — $0.0001212.

    ``None`` leaves an attribute out; token counts may be anything an instrumentation might send (strings,
    floats, negatives) to test what the exporter makes of them; ``extra`` adds or overrides attributes.
    """
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    optional = {
        "gen_ai.usage.cache_read.input_tokens": cache_read,
        "gen_ai.usage.cache_creation.input_tokens": cache_write,
        "gen_ai.usage.reasoning.output_tokens": reasoning,
        USER_ATTRIBUTE: user,
        TENANT_ATTRIBUTE: tenant,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    attributes.update({TAG_PREFIX + k: v for k, v in (tags or {}).items()})
    attributes.update(extra or {})
    return span(n, attributes=attributes, name=f"chat {model}", **span_args)


def llm_call(n: int = 0, **llm_span_args: Any) -> LLMCall:
    """The call :func:`llm_span` describes, normalised as the exporter reads it (not priced yet)."""
    made = llm_span(n, **llm_span_args)
    call = Normalizer().normalize(made, made.start_time or _BASE_NS)
    if not isinstance(call, LLMCall):
        raise ValueError(f"these arguments describe no LLM call ({call})")
    return call


TOOL_CONVENTIONS = ("otel-genai", "openinference", "openllmetry")


def tool_span(
    n: int = 0,
    *,
    tool: str | None = "get_weather",
    user: str | None = "alice",
    tenant: str | None = "acme",
    convention: str = "otel-genai",
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    **span_args: Any,
) -> ReadableSpan:
    """The ``n``-th tool execution (see :func:`span` for ids and times, ``error=True`` for a failed one), as
    ``convention`` writes it: ``otel-genai`` (``gen_ai.operation.name = execute_tool``, ``gen_ai.tool.name``),
    ``openinference`` (``openinference.span.kind = TOOL``, ``tool.name``) or ``openllmetry``
    (``traceloop.span.kind = tool``, ``traceloop.entity.name``). ``tool=None`` leaves the name out."""
    if convention == "otel-genai":
        attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool}
        name = f"execute_tool {tool}" if tool else "execute_tool"
    elif convention == "openinference":
        attributes, name = {"openinference.span.kind": "TOOL", "tool.name": tool}, tool or "tool"
    elif convention == "openllmetry":
        attributes = {"traceloop.span.kind": "tool", "traceloop.entity.name": tool}
        name = f"{tool}.tool" if tool else "tool"
    else:
        raise ValueError(f"unknown convention {convention!r}: use one of {', '.join(TOOL_CONVENTIONS)}")
    attributes.update({USER_ATTRIBUTE: user, TENANT_ATTRIBUTE: tenant})
    attributes = {k: v for k, v in attributes.items() if v is not None}
    attributes.update({TAG_PREFIX + k: v for k, v in (tags or {}).items()})
    attributes.update(extra or {})
    span_args.setdefault("kind", SpanKind.INTERNAL)
    return span(n, attributes=attributes, name=name, **span_args)


class SequentialIdGenerator(IdGenerator):
    """Trace and span ids 1, 2, 3 … for a ``TracerProvider(id_generator=…)``: the same run, the same ids."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def _take(self) -> int:
        value, self._next = self._next, self._next + 1
        return value

    def generate_span_id(self) -> int:
        return self._take()

    def generate_trace_id(self) -> int:
        return self._take()
