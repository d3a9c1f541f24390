"""The month but its newest calls: each planned call as the :class:`LLMCall` the exporter makes of the span
the real client and instrumentation write for it, at its planned time, for the pipeline to price, spool
and store.

Sending a month of calls through an HTTP client would take minutes (about 5 ms a request here), and
making and reading back a span for each would double the demo's time (about 100 µs a call); what the
pipeline receives is the same. A test makes the same calls through the real ``openai`` client,
OpenLLMetry's instrumentation and the exporter's normalisation and checks every field (time, ids and
latency aside) against these.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from .._model.call import LLMCall
from .plan import SNAPSHOTS, DemoCall

ERROR_TYPES = {429: "RateLimitError", 500: "InternalServerError", 503: "InternalServerError"}
"""The ``openai`` client's exception for each status the stub answers with (what the instrumentation records)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def nanos(at: datetime) -> int:
    """``at`` in integer nanoseconds since the epoch (exact: no float on the way)."""
    delta = at - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def history_call(call: DemoCall, number: int, *, service_name: str) -> LLMCall:
    """The call the pipeline receives for one planned call; ``number`` makes its response id unique."""
    tags = {"feature": call.feature} if call.plan is None else {"plan": call.plan, "feature": call.feature}
    failed = call.failed  # the instrumentation records no usage and no response model for a failed call
    return LLMCall(
        timestamp=call.at,
        trace_id=secrets.randbits(127) + 1,
        span_id=secrets.randbits(63) + 1,
        parent_span_id=0,
        duration_us=(250 + 12 * call.output_tokens) * 1000,  # a fixed overhead and the time to write the answer
        provider="openai",
        model=call.model if failed else SNAPSHOTS[call.model],
        request_model=call.model,
        operation="chat",
        input_tokens=0 if failed else call.input_tokens,
        output_tokens=0 if failed else call.output_tokens,
        cache_read_tokens=0 if failed else call.cached_tokens,
        cache_write_tokens=0,
        reasoning_tokens=0 if failed else call.reasoning_tokens,
        user_id=call.user_id or "",
        user_source="attribution" if call.user_id else "",
        tenant_id=call.tenant_id or "",
        tags=tags,
        is_error=failed,
        error_type=ERROR_TYPES.get(call.status, "APIStatusError") if failed else "",
        response_id="" if failed else f"chatcmpl-demo{number:07d}",
        service_name=service_name,
        source="otel-genai",  # the convention OpenLLMetry's OpenAI instrumentation writes, read as such
        flags=["no_usage"] if failed else [],
    )
