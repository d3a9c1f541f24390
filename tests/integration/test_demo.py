"""``spanledger demo`` in this process: the traffic plan, the clock shift, and what lands in the ledger.

The demo drives the real ``openai`` client through the real OpenAI instrumentation against the stub
server; here it writes into a fresh database of the session's chDB directory, and every number the
ledger reports is checked against the seeded plan, cost recomputed independently with genai-prices.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import cast

import genai_prices
import pytest
from genai_prices import Usage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

from spanledger import ConfigError, Ledger, Store
from spanledger._demo.demo import _SNAPSHOTS, DEMO_SERVICE, UNPRICED_MODEL, TimeShiftExporter, plan_traffic, run_demo

pytestmark = pytest.mark.integration

HOUR_NS = 3600 * 10**9


def test_the_plan_is_seeded_and_looks_like_a_real_day() -> None:
    plan = plan_traffic()
    assert plan == plan_traffic()  # same seed, same traffic
    assert plan != plan_traffic(seed=8)
    assert 1500 <= len(plan) <= 3000
    per_user = Counter(c.user_id for c in plan if c.user_id)
    assert len(per_user) >= 30 and len({c.tenant_id for c in plan if c.tenant_id}) >= 5
    heaviest = per_user.most_common()
    assert heaviest[0][1] > 10 * heaviest[len(heaviest) // 2][1]  # Zipf-like: a few users dominate
    assert {c.plan for c in plan} == {"free", "pro", "enterprise", None}
    assert {"gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini", UNPRICED_MODEL} <= {c.model for c in plan}
    assert sum(1 for c in plan if c.cached_tokens) > 100
    assert all(c.cached_tokens <= c.input_tokens and c.reasoning_tokens <= c.output_tokens for c in plan)
    assert 10 < sum(1 for c in plan if c.status != 200) < len(plan) // 10
    assert 10 < sum(1 for c in plan if c.user_id is None) < len(plan) // 5
    assert all(timedelta(0) <= c.offset < timedelta(hours=24) for c in plan)
    assert plan[-1].offset - plan[0].offset > timedelta(hours=20)


def test_time_shift_moves_the_spans_of_a_recorded_trace_only() -> None:
    exported = InMemorySpanExporter()
    offsets: dict[int, int] = {}
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(TimeShiftExporter(exported, offsets)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as root:
        offsets[root.get_span_context().trace_id] = -5 * HOUR_NS
        with tracer.start_as_current_span("llm call") as child:
            child.add_event("retry")
    with tracer.start_as_current_span("elsewhere") as other:
        pass
    provider.shutdown()
    by_name = {span.name: span for span in exported.get_finished_spans()}
    root_s, child_s, other_s = (cast(ReadableSpan, span) for span in (root, child, other))
    for original in (root_s, child_s):
        assert original.start_time is not None and original.end_time is not None
        assert by_name[original.name].start_time == original.start_time - 5 * HOUR_NS
        assert by_name[original.name].end_time == original.end_time - 5 * HOUR_NS
    assert by_name["llm call"].events[0].timestamp == child_s.events[0].timestamp - 5 * HOUR_NS
    assert by_name["elsewhere"].start_time == other_s.start_time


def _expected_cost(calls: int) -> Decimal:
    """The plan's cost computed straight from genai-prices, each call rounded like the ledger stores it."""
    total = Decimal(0)
    for call in plan_traffic(calls=calls):
        if call.status != 200 or call.model == UNPRICED_MODEL:
            continue  # a failed call reports no tokens; the self-hosted model has no price
        price = genai_prices.calc_price(
            Usage(
                input_tokens=call.input_tokens, cache_read_tokens=call.cached_tokens, output_tokens=call.output_tokens
            ),
            model_ref=_SNAPSHOTS[call.model],
            provider_id="openai",
        )
        total += price.total_price.quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)
    return total


def test_the_demo_stores_exactly_the_planned_traffic(store_dsn: str) -> None:
    calls = 160
    plan = plan_traffic(calls=calls)
    out = io.StringIO()
    before = datetime.now(UTC)
    assert run_demo(store=store_dsn, calls=calls, console=Console(file=out, width=160)) == 0
    text = out.getvalue()
    assert "Timestamps spread over the last 24 h" in text
    assert f"Priced and stored all {calls} calls" in text
    assert "Top 10 users by LLM cost" in text and "Tenants by LLM cost" in text and "Next:" in text

    ledger = Ledger(store_dsn)
    tenants = ledger.tenants(limit=1000, include_no_tenant=True).rows
    assert sum(t.usage.requests for t in tenants) == calls
    assert sum(t.usage.errors for t in tenants) == sum(1 for c in plan if c.status != 200)
    assert sum(t.usage.unpriced_requests for t in tenants) == sum(1 for c in plan if c.model == UNPRICED_MODEL)
    assert sum((t.usage.cost for t in tenants), Decimal(0)) == _expected_cost(calls)
    assert sum(t.usage.cache_read_tokens for t in tenants) == sum(c.cached_tokens for c in plan if c.status == 200)

    users = ledger.users(limit=1000, include_unattributed=True).rows
    unattributed = [u for u in users if not u.user_id]
    assert [u.usage.requests for u in unattributed] == [sum(1 for c in plan if c.user_id is None)]
    free = ledger.users(tags={"plan": "free"}, limit=1000, include_unattributed=True).rows
    assert sum(u.usage.requests for u in free) == sum(1 for c in plan if c.plan == "free")
    assert users[0].user_id in text  # the top user is the first row of the demo's table

    store = Store(store_dsn)
    first, last, services = store.query(
        f"SELECT min(timestamp), max(timestamp), groupUniqArray(service_name) FROM {store.database}.llm_calls"
    ).result_rows[0]
    assert services == [DEMO_SERVICE]
    first, last = first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)
    assert before - timedelta(hours=24, seconds=1) <= first and last <= datetime.now(UTC)
    assert last - first > timedelta(hours=12)


def test_a_second_run_replaces_the_first(store_dsn: str) -> None:
    for _ in range(2):
        out = io.StringIO()
        assert run_demo(store=store_dsn, calls=40, seed=3, console=Console(file=out, width=160)) == 0
    assert "Replaced 40 calls from an earlier demo run." in out.getvalue()
    assert sum(t.usage.requests for t in Ledger(store_dsn).tenants(include_no_tenant=True).rows) == 40


def test_the_demo_leaves_a_database_with_other_data_alone(store_dsn: str) -> None:
    store = Store(store_dsn)
    store.command(
        f"INSERT INTO {store.database}.llm_calls (timestamp, service_name, model, user_id) "
        "VALUES (now64(6), 'checkout-api', 'gpt-4o', 'real-user')"
    )
    with pytest.raises(ConfigError, match="1 LLM calls the demo did not write"):
        run_demo(store=store_dsn, calls=20, console=Console(file=io.StringIO()))
    assert [row.user_id for row in Ledger(store_dsn).users().rows] == ["real-user"]
