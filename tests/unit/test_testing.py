"""``spanledger.testing``: the factories users and our own tests share."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import Pricer
from spanledger.testing import BASE_TIME, SequentialIdGenerator, llm_call, llm_span, span


def test_llm_span_describes_the_default_call_and_prices_to_the_documented_amount() -> None:
    made = llm_span(3, tags={"plan": "pro"})
    assert (made.context.span_id, made.context.trace_id, made.start_time) == (
        4,
        0xA003,
        int(BASE_TIME.timestamp()) * 10**9 + 3 * 10**9,
    )
    call = llm_call(3, tags={"plan": "pro"})
    Pricer().price(call)
    assert (call.user_id, call.tenant_id, call.tags, call.cost) == (
        "alice",
        "acme",
        {"plan": "pro"},
        Decimal("0.0001212"),
    )


def test_none_leaves_an_attribute_out_and_extra_overrides() -> None:
    attrs = dict(llm_span(user=None, cache_read=None, extra={"gen_ai.request.model": "o3"}).attributes or {})
    assert "enduser.id" not in attrs and "gen_ai.usage.cache_read.input_tokens" not in attrs
    assert attrs["gen_ai.request.model"] == "o3"
    assert dict(span(attributes={"http.method": "GET"}, name="GET /").attributes or {}) == {"http.method": "GET"}


def test_sequential_ids_make_a_run_repeatable() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SequentialIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("a"), provider.get_tracer("t").start_as_current_span("b"):
        pass
    ids = [(s.context.trace_id, s.context.span_id) for s in memory.get_finished_spans()]
    assert ids == [(1, 3), (1, 2)]
    provider.shutdown()
