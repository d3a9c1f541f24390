"""The month but its newest calls: each planned call as the span an OpenTelemetry GenAI instrumentation
writes for it, started and ended at its planned time.

Sending a month of calls through an HTTP client would take minutes; the spans are what the rest of the
path sees anyway. Each is made by a real tracer inside :class:`attribute_to` (so the
:class:`UserAttributionProcessor` puts user, tenant and tags on it from baggage), carries the attributes
``opentelemetry-instrumentation-openai`` writes (checked against it: the same names, the dated response
model, ``error.type`` and an error status for a failed call, no usage then) and goes on through the same
``BatchSpanProcessor`` → :class:`CostExporter` → normalise → price → spool → store as the newest calls,
which are real requests (:mod:`.live`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .._capture.attribution import attribute_to
from .plan import SNAPSHOTS, DemoCall

ERROR_TYPES = {429: "RateLimitError", 500: "InternalServerError", 503: "InternalServerError"}
"""The ``openai`` client's exception for each status the stub answers with (what the instrumentation records)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def nanos(at: datetime) -> int:
    """``at`` in integer nanoseconds since the epoch (exact: no float on the way)."""
    delta = at - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def history_span(tracer: Tracer, call: DemoCall, number: int) -> None:
    """Start and end the span of one planned call at its planned time; ``number`` makes its response id."""
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": call.model,
    }
    if not call.failed:
        attributes |= {
            "gen_ai.response.model": SNAPSHOTS[call.model],
            "gen_ai.response.id": f"chatcmpl-demo{number:07d}",
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": call.cached_tokens,
            "gen_ai.usage.reasoning_tokens": call.reasoning_tokens,
        }
    start = nanos(call.at)
    # a background job has no user and no tenant: only its feature
    with attribute_to(user_id=call.user_id, tenant_id=call.tenant_id, plan=call.plan, feature=call.feature):
        span = tracer.start_span("openai.chat", kind=SpanKind.CLIENT, attributes=attributes, start_time=start)
        if call.failed:
            span.set_attribute("error.type", ERROR_TYPES.get(call.status, "APIStatusError"))
            span.set_status(Status(StatusCode.ERROR, f"Error code: {call.status}"))
        # a plausible latency: a fixed overhead and the time to write the answer
        span.end(end_time=start + (250 + 12 * call.output_tokens) * 1_000_000)
