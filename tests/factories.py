"""Hand-built finished spans with deterministic ids and clocks (no SDK pipeline needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

BASE_TIME = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
_BASE_NS = int(BASE_TIME.timestamp()) * 10**9


def llm_span(
    n: int,
    *,
    user: str | None = "alice",
    tenant: str | None = "acme",
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    input_tokens: Any = 1200,
    output_tokens: Any = 30,
    cache_read: Any = 1024,
    start_ns: int | None = None,
    trace_id: int | None = None,
    extra: dict[str, Any] | None = None,
) -> ReadableSpan:
    """The ``n``-th OTel GenAI chat span (span id ``n + 1``), one second apart from ``BASE_TIME``."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    if cache_read is not None:
        attributes["gen_ai.usage.cache_read.input_tokens"] = cache_read
    if user is not None:
        attributes["enduser.id"] = user
    if tenant is not None:
        attributes["tenant.id"] = tenant
    attributes.update(extra or {})
    start = _BASE_NS + n * 10**9 if start_ns is None else start_ns
    context = SpanContext(
        trace_id=trace_id if trace_id is not None else 0xA000 + n,
        span_id=n + 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return ReadableSpan(
        name=f"chat {model}",
        context=context,
        resource=Resource.create({"service.name": "test-app"}),
        attributes=attributes,
        kind=SpanKind.CLIENT,
        start_time=start,
        end_time=start + 250_000_000,
    )
