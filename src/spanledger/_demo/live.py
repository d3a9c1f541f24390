"""The month's newest calls: each made for real, by the ``openai`` client under OpenLLMetry's OpenAI
instrumentation, against :class:`~.stub_llm.StubLLMServer` on 127.0.0.1 (told how many tokens to report).

The instrumentation stamps spans with the real clock, and the demo sends hours of calls in seconds:
:class:`TimeShiftExporter` moves each request's spans to the time the plan gave it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Tracer

from .._capture.attribution import attribute_to
from .history import nanos
from .plan import FEATURES, SNAPSHOTS, DemoCall


class TimeShiftExporter(SpanExporter):
    """Move the spans of a recorded trace by that trace's offset, then export; other spans pass unchanged.

    The start, end and event times of every span of a trace move by the offset (nanoseconds) recorded for its
    trace id, so the ledger sees the traffic when the plan says it happened.
    """

    def __init__(self, inner: SpanExporter, offsets: dict[int, int]) -> None:
        self._inner = inner
        self._offsets = offsets

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._shift(span) for span in spans])

    def _shift(self, span: ReadableSpan) -> ReadableSpan:
        offset = self._offsets.get(span.context.trace_id) if span.context else None
        if not offset:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=span.attributes,
            events=[Event(e.name, e.attributes, e.timestamp + offset) for e in span.events],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=None if span.start_time is None else span.start_time + offset,
            end_time=None if span.end_time is None else span.end_time + offset,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def live_call(client: Any, tracer: Tracer, call: DemoCall, offsets: dict[int, int]) -> None:
    """Make one planned call through the real client, inside the request span an app would have."""
    import openai

    stub: dict[str, Any] = {
        "input_tokens": call.input_tokens,
        "cached_tokens": call.cached_tokens,
        "output_tokens": call.output_tokens,
    }
    stub |= {"reasoning_tokens": call.reasoning_tokens, "status": call.status, "response_model": SNAPSHOTS[call.model]}
    # a background job has no user and no tenant: only its feature
    with attribute_to(user_id=call.user_id, tenant_id=call.tenant_id, plan=call.plan, feature=call.feature):
        name = f"POST /api/{call.feature}" if call.user_id else f"job {call.feature}"
        with tracer.start_as_current_span(name, kind=SpanKind.SERVER if call.user_id else SpanKind.INTERNAL) as span:
            offsets[span.get_span_context().trace_id] = nanos(call.at) - time.time_ns()
            # a failed call is recorded on its span by the instrumentation and counted as an error
            with contextlib.suppress(openai.APIStatusError):
                client.chat.completions.create(
                    model=call.model,
                    messages=[
                        {"role": "system", "content": f"You are the {call.feature} assistant."},
                        {"role": "user", "content": FEATURES[call.feature].prompt},
                    ],
                    extra_body={"stub": stub},
                )
