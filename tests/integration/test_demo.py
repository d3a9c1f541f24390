"""``spanledger demo``'s parts: the month's plan and its story, the clock shift, the history spans against
the real instrumentation's, and what a run does to a database.

The month in the store, at the default size, is checked in ``test_demo_month.py``.
"""

from __future__ import annotations

import io
import itertools
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import openai
import pytest
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

from spanledger import ConfigError, Ledger, Store, UserAttributionProcessor
from spanledger._capture.normalize import Normalizer
from spanledger._demo.demo import DEMO_SERVICE, run_demo
from spanledger._demo.history import history_call
from spanledger._demo.live import TimeShiftExporter, live_call
from spanledger._demo.plan import (
    DEFAULT_CALLS,
    NEW_MODEL,
    OLD_MODELS,
    SNAPSHOTS,
    UNPRICED_MODEL,
    DemoCall,
    plan_month,
)
from spanledger._demo.stub_llm import StubLLMServer
from tests.integration.demo_support import planned_cost

pytestmark = pytest.mark.integration

HOUR_NS = 3600 * 10**9
END = datetime(2026, 11, 30, 15, tzinfo=UTC)
"""A fixed end, so that the figures do not depend on the day the tests run."""


def test_the_plan_is_seeded_exact_and_inside_its_month() -> None:
    month = plan_month(calls=3000, end=END)
    assert month == plan_month(calls=3000, end=END)  # same seed, calls and end: the same month
    assert month.calls != plan_month(calls=3000, seed=8, end=END).calls
    assert month.calls != plan_month(calls=3000, end=END + timedelta(hours=1)).calls
    assert len(month.calls) == 3000
    assert month.story.start == END - timedelta(days=30) and month.story.end == END
    assert all(END - timedelta(days=30) <= c.at < END for c in month.calls)
    assert [c.at for c in month.calls] == sorted(c.at for c in month.calls)
    assert all(c.cached_tokens <= c.input_tokens and c.reasoning_tokens <= c.output_tokens for c in month.calls)
    assert all(c.model in SNAPSHOTS for c in month.calls)
    assert [len(plan_month(calls=n, end=END).calls) for n in (1, 7, 100)] == [1, 7, 100]


# Ends at 13 different hours of the week: the story must hold whichever day the demo runs.
@pytest.mark.parametrize("hours", range(0, 7 * 24, 13))
def test_the_month_tells_its_story_whenever_it_ends(hours: int) -> None:
    month = plan_month(end=END + timedelta(hours=hours))
    calls, story = month.calls, month.story
    assert len(calls) == DEFAULT_CALLS
    whole_days = Counter(c.at.date() for c in calls if story.start.date() < c.at.date() < story.end.date())
    assert len(whole_days) == 29
    weekday = statistics.mean(n for d, n in whole_days.items() if d.weekday() < 5 and d != story.spike_day)
    weekend = statistics.mean(n for d, n in whole_days.items() if d.weekday() >= 5)
    assert weekday > 2.2 * weekend

    weeks = [[c for c in calls if c.tenant_id == story.growing_tenant and a <= c.at < b] for a, b in story.weeks()]
    requests = [len(w) for w in weeks]
    assert all(later > 1.3 * earlier for earlier, later in itertools.pairwise(requests)), requests
    costs = [sum((planned_cost(c) for c in w), Decimal(0)) for w in weeks]
    assert costs == sorted(costs) and len(set(costs)) == 4, costs

    spiker = Counter(c.at.date() for c in calls if c.user_id == story.spike_user)
    assert (
        story.spike_day.weekday() < 5 and story.start.date() < story.spike_day < (story.end - timedelta(days=1)).date()
    )
    assert spiker[story.spike_day] >= story.spike_calls == round(DEFAULT_CALLS * 0.012)
    assert spiker[story.spike_day] > 10 * max(n for d, n in spiker.items() if d != story.spike_day)

    switch = datetime(story.switch_day.year, story.switch_day.month, story.switch_day.day, tzinfo=UTC)
    switcher = [c for c in calls if c.tenant_id == story.switch_tenant]
    assert {c.model for c in switcher if c.at < switch} >= set(OLD_MODELS)
    assert NEW_MODEL not in {c.model for c in switcher if c.at < switch}
    assert {c.model for c in switcher if c.at >= switch} & set(OLD_MODELS) == set()
    assert {c.tenant_id for c in calls if c.model == NEW_MODEL} == {story.switch_tenant}
    assert story.start + timedelta(days=12) < switch < story.end - timedelta(days=12)

    # the cases the counts must get right, each present on purpose
    assert 0.03 * len(calls) < sum(1 for c in calls if c.user_id is None and c.tenant_id is None) < 0.08 * len(calls)
    loners = {c.user_id for c in calls if c.user_id and c.tenant_id is None}
    assert loners == set(story.no_tenant_users) and len(loners) == 3
    assert 0.015 * len(calls) < sum(1 for c in calls if c.failed) < 0.04 * len(calls)
    assert {c.model for c in calls if c.failed} >= {"gpt-4o-mini", UNPRICED_MODEL}
    assert sum(1 for c in calls if c.model == UNPRICED_MODEL) > 100
    assert sum(1 for c in calls if c.cached_tokens) > 0.1 * len(calls)
    assert {c.plan for c in calls} == {"free", "pro", "enterprise", None}
    assert len({c.feature for c in calls}) == 7


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


_SAME = [
    "provider",
    "model",
    "request_model",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "user_id",
    "user_source",
    "tenant_id",
    "tags",
    "is_error",
    "error_type",
    "service_name",
    "source",
    "flags",
]


def test_a_history_call_is_the_call_the_real_client_s_span_becomes() -> None:
    """The month but its newest calls goes to the pipeline as calls: each must be the call the exporter makes
    of the span the real client and instrumentation write for it (all but its time, ids and latency)."""
    at = END - timedelta(hours=3)
    cases = [
        DemoCall(at, "ada@acme.example", "acme", "enterprise", "agent", "o3-mini", 5000, 1152, 900, 500, 200),
        DemoCall(at, "ben@mail.example", None, "free", "chat", "gpt-4o-mini", 400, 0, 80, 0, 200),
        DemoCall(at, None, None, None, "extract", UNPRICED_MODEL, 900, 0, 60, 0, 200),
        DemoCall(at, "ivy@globex.example", "globex", "enterprise", "chat", "gpt-4o", 700, 0, 50, 0, 429),
        DemoCall(at, "ivy@globex.example", "globex", "enterprise", "chat", NEW_MODEL, 700, 0, 50, 0, 503),
    ]
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": DEMO_SERVICE}))
    provider.add_span_processor(UserAttributionProcessor())
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with (
            StubLLMServer() as stub,
            openai.OpenAI(base_url=stub.openai_base_url, api_key="x", max_retries=0) as client,
        ):
            for call in cases:
                live_call(client, provider.get_tracer("test"), call, {})
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    normalizer = Normalizer()
    live = [normalizer.normalize(s, time.time_ns()) for s in spans.get_finished_spans() if s.name == "openai.chat"]
    history = [history_call(call, number, service_name=DEMO_SERVICE) for number, call in enumerate(cases)]
    assert len(live) == len(history) == len(cases)
    for real, written, call in zip(live, history, cases, strict=True):
        assert not isinstance(real, str)
        assert {f: getattr(written, f) for f in _SAME} == {f: getattr(real, f) for f in _SAME}, call
        assert written.timestamp == call.at and written.trace_id and written.span_id
        assert bool(written.response_id) == bool(real.response_id)
    # a failed call is stored under the model asked for: no snapshot answered it
    assert [c.model for c in history] == [
        SNAPSHOTS["o3-mini"],
        SNAPSHOTS["gpt-4o-mini"],
        UNPRICED_MODEL,
        "gpt-4o",
        NEW_MODEL,
    ]
    assert [c.error_type for c in history[3:]] == ["RateLimitError", "InternalServerError"]


def _run(dsn: str, calls: int, **kwargs: Any) -> str:
    out = io.StringIO()
    assert run_demo(store=dsn, calls=calls, end=END, console=Console(file=out, width=200), **kwargs) == 0
    return out.getvalue()


def test_two_runs_with_the_same_seed_store_the_same_figures(chdb_dir: Any) -> None:
    figures = []
    for run in range(2):
        dsn = f"chdb://{chdb_dir}?database=demo_twice_{run}"
        _run(dsn, 2000)
        ledger = Ledger(dsn)
        users = ledger.users(start=END - timedelta(days=30), limit=1000).rows
        figures.append(
            (ledger.totals().usage, sorted((u.tenant_id, u.user_id, u.usage.requests, u.usage.cost) for u in users))
        )
        Store(dsn).command(f"DROP DATABASE IF EXISTS demo_twice_{run} SYNC")
    (first, first_users), (second, second_users) = figures
    assert first.cost == second.cost and first.cost == sum(
        (planned_cost(c) for c in plan_month(calls=2000, end=END).calls), Decimal(0)
    )
    assert (first.requests, first.errors, first.unpriced_requests) == (
        second.requests,
        second.errors,
        second.unpriced_requests,
    )
    assert first.cache_read_tokens == second.cache_read_tokens and first_users == second_users


def test_a_second_run_replaces_the_first(store_dsn: str) -> None:
    _run(store_dsn, 60, seed=3)
    assert "Replaced 60 calls from an earlier demo run." in _run(store_dsn, 60, seed=3)
    assert Ledger(store_dsn).totals().usage.requests == 60


def test_the_demo_leaves_a_database_with_other_data_alone(store_dsn: str) -> None:
    store = Store(store_dsn)
    store.command(
        f"INSERT INTO {store.database}.llm_calls (timestamp, service_name, model, user_id) "
        "VALUES (now64(6), 'checkout-api', 'gpt-4o', 'real-user')"
    )
    with pytest.raises(ConfigError, match="1 LLM calls the demo did not write"):
        run_demo(store=store_dsn, calls=20, console=Console(file=io.StringIO()))
    assert [row.user_id for row in Ledger(store_dsn).users().rows] == ["real-user"]


def test_the_month_cannot_end_in_the_future(store_dsn: str) -> None:
    with pytest.raises(ConfigError, match="cannot end in the future"):
        run_demo(store=store_dsn, end=datetime.now(UTC) + timedelta(hours=2), console=Console(file=io.StringIO()))
