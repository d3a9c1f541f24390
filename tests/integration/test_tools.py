"""Tool executions: stored apart from LLM calls through the same pipeline, counted per user and per tool over any
window, exactly, and never in an LLM figure."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from spanledger import CostExporter, Ledger, Store, testing
from spanledger._capture.normalize import Normalizer
from spanledger._customers import store as profiles
from spanledger._model.rows import ToolRow
from spanledger._model.tool import ToolCall
from spanledger._store.tool_schema import TOOL_ROLLUP, TOOL_TABLE

pytestmark = pytest.mark.integration

DAY = datetime(2026, 6, 10, tzinfo=UTC)
MINI = Decimal("0.0001212")  # gpt-4o-mini: 1200 input of which 1024 cached, 30 output
_ids = itertools.count(1)


def llm(when: datetime, user: str | None, tenant: str | None = "acme", **kw: object) -> ReadableSpan:
    n = next(_ids)
    return testing.llm_span(n, at=when, user=user, tenant=tenant, trace_id=0x7000 + n, span_id=0x9000 + n, **kw)  # type: ignore[arg-type]


def tool(when: datetime, name: str | None, user: str | None, tenant: str | None = "acme", **kw: object) -> ReadableSpan:
    n = next(_ids)
    return testing.tool_span(
        n, tool=name, at=when, user=user, tenant=tenant, trace_id=0x7000 + n, span_id=0x9000 + n, **kw
    )  # type: ignore[arg-type]


def llm_spans() -> list[ReadableSpan]:
    return [
        llm(DAY + timedelta(hours=9, minutes=5), "alice"),
        llm(DAY + timedelta(hours=30), "alice", tags={"plan": "pro"}),
        llm(DAY + timedelta(hours=10, minutes=40), "bob", tenant="globex"),
        llm(DAY + timedelta(hours=11), None),
    ]


def tool_spans() -> list[ReadableSpan]:
    """alice: 3 search (one failed, one a day later with plan=pro) and 1 calculator; bob (globex): 2 search;
    unattributed: 1 unnamed tool — in each of the three conventions."""
    return [
        tool(DAY + timedelta(hours=9, minutes=6), "search", "alice", duration=timedelta(milliseconds=120)),
        tool(DAY + timedelta(hours=9, minutes=7), "search", "alice", convention="openinference", error=True),
        tool(DAY + timedelta(hours=30, minutes=1), "search", "alice", convention="openllmetry", tags={"plan": "pro"}),
        tool(DAY + timedelta(hours=9, minutes=8), "calculator", "alice", duration=timedelta(milliseconds=30)),
        tool(DAY + timedelta(hours=10, minutes=41), "search", "bob", tenant="globex"),
        tool(DAY + timedelta(hours=12), "search", "bob", tenant="globex", convention="openinference"),
        tool(DAY + timedelta(hours=11, minutes=1), None, None),
    ]


@pytest.fixture
def exporter(store: Store, tmp_path: Path) -> CostExporter:
    made = CostExporter(store, spool_dir=tmp_path / "spool")
    yield made
    made.shutdown()


def _export(exporter: CostExporter, spans: list[ReadableSpan]) -> None:
    assert exporter.export(spans).name == "SUCCESS"
    assert exporter.force_flush(30_000)


def test_tool_spans_are_counted_per_user_and_per_tool_and_llm_totals_do_not_change(
    store: Store, exporter: CostExporter
) -> None:
    ledger = Ledger(store)
    _export(exporter, llm_spans())
    before = (
        ledger.totals(),
        ledger.users(include_unattributed=True),
        ledger.overview(),
        ledger.tenants(),
        ledger.user("alice"),
    )
    _export(exporter, tool_spans())
    after = (
        ledger.totals(),
        ledger.users(include_unattributed=True),
        ledger.overview(),
        ledger.tenants(),
        ledger.user("alice"),
    )
    # every LLM figure is what it was: the tool executions are no LLM calls, priced nothing, counted nowhere
    assert after[0] == before[0] and after[0].usage.requests == 4 and after[0].usage.cost == MINI * 4
    assert [r.usage for r in after[1].rows] == [r.usage for r in before[1].rows]
    assert after[2].totals == before[2].totals and after[3] == before[3]
    assert after[4].summary.usage == before[4].summary.usage and after[4].models == before[4].models  # type: ignore[union-attr]
    assert exporter.stats["spooled"] == 4 and exporter.stats["tools_spooled"] == 7
    assert exporter.stats["tools_stored"] == 7 and exporter.stats["unpriced"] == 0

    per_tool = ledger.tools().rows
    assert [(t.tool_name, t.calls, t.errors) for t in per_tool] == [("search", 5, 1), ("", 1, 0), ("calculator", 1, 0)]
    per_user = ledger.tools(per_user=True).rows
    assert {(t.tenant_id, t.user_id, t.tool_name): t.calls for t in per_user} == {
        ("acme", "alice", "search"): 3,
        ("acme", "alice", "calculator"): 1,
        ("globex", "bob", "search"): 2,
        ("acme", "", ""): 1,
    }
    calculator = next(t for t in per_tool if t.tool_name == "calculator")
    assert (calculator.duration_us, calculator.avg_duration_ms, calculator.label) == (30_000, 30.0, "calculator")
    assert next(t for t in per_tool if not t.tool_name).label == "(unnamed)"
    # the users table: a tools column, the unattributed row's own tool execution
    assert {(r.tenant_id, r.user_id): r.tool_calls for r in after[1].rows} == {
        ("acme", "alice"): 4,
        ("globex", "bob"): 2,
        ("acme", ""): 1,
    }
    # the user page: by tool
    detail = after[4]
    assert [(t.tool_name, t.calls, t.tenant_id, t.user_id) for t in detail.tools] == [
        ("search", 3, None, None),
        ("calculator", 1, None, None),
    ]
    assert detail.summary is not None and detail.summary.tool_calls == 4


def test_tool_use_over_any_window_is_exact_across_the_tiers(store: Store, exporter: CostExporter) -> None:
    """Executions spread over three days, at minutes inside hours: every window, whole or cut mid-hour, counts
    what the raw table holds between its bounds."""
    spans = [
        tool(DAY + timedelta(minutes=37 * i), ("search", "fetch", "sql")[i % 3], f"u{i % 4}", error=i % 5 == 0)
        for i in range(120)
    ]
    _export(exporter, spans)
    ledger = Ledger(store)
    bounds = [
        (DAY, DAY + timedelta(days=4)),
        (DAY + timedelta(minutes=17), DAY + timedelta(days=1, hours=5, minutes=3)),
        (DAY + timedelta(hours=2), DAY + timedelta(hours=26)),
        (DAY + timedelta(hours=3, minutes=1), DAY + timedelta(hours=3, minutes=59)),
        (DAY + timedelta(days=1), DAY + timedelta(days=2)),
    ]
    for start, end in bounds:
        raw = store.query(
            f"SELECT tool_name, count(), sum(is_error) FROM {store.database}.{TOOL_TABLE} "
            "WHERE timestamp >= {s:DateTime64(6, 'UTC')} AND timestamp < {e:DateTime64(6, 'UTC')} GROUP BY tool_name",
            {"s": start, "e": end},
        ).result_rows
        got = {(t.tool_name, t.calls, t.errors) for t in ledger.tools(start=start, end=end).rows}
        assert got == {(name, n, errors) for name, n, errors in raw}, (start, end)
        users = ledger.tools(start=start, end=end, per_user=True, user_id="u1").rows
        assert sum(t.calls for t in users) == sum(
            1 for i in range(120) if i % 4 == 1 and start <= DAY + timedelta(minutes=37 * i) < end
        )
    # the whole hours came from the hourly rollup, which the view keeps with every execution
    assert store.query(f"SELECT sum(calls) FROM {store.database}.{TOOL_ROLLUP}").result_rows[0][0] == 120


def test_tool_filters_tenant_user_tags_and_paging(store: Store, exporter: CostExporter) -> None:
    _export(exporter, llm_spans() + tool_spans())
    ledger = Ledger(store)
    assert [(t.tool_name, t.calls) for t in ledger.tools(tenant_id="globex").rows] == [("search", 2)]
    assert [(t.tool_name, t.calls) for t in ledger.tools(tags={"plan": "pro"}).rows] == [("search", 1)]
    assert [(t.tool_name, t.calls) for t in ledger.tools(user_id="").rows] == [("", 1)]
    first, second = ledger.tools(per_user=True, limit=3), ledger.tools(per_user=True, limit=3, page=2)
    assert (first.total, second.total, len(first.rows), len(second.rows)) == (4, 4, 3, 1)
    assert ledger.tools(per_user=True, limit=3, page=9).total == 4  # past the last page: still counted
    assert {(r.user_id, r.tool_calls) for r in ledger.users(tags={"plan": "pro"}).rows} == {("alice", 1)}


def test_a_tool_span_delivered_again_is_stored_once_even_by_another_pipeline(store: Store, tmp_path: Path) -> None:
    spans = tool_spans()
    first = CostExporter(store, spool_dir=tmp_path / "a")
    _export(first, spans)
    first.ingest(spans[:3], redelivered=True)  # a client's retry: the same process remembers them
    assert first.force_flush(30_000)
    first.shutdown()
    second = CostExporter(store, spool_dir=tmp_path / "b")  # another process: only the store knows them
    assert not second.ingest(spans, redelivered=True).result.rejected
    assert second.force_flush(30_000)
    assert second.stats["skipped:duplicate_stored"] == len(spans)
    second.shutdown()
    assert store.query(f"SELECT count() FROM {store.database}.{TOOL_TABLE}").result_rows[0][0] == len(spans)
    assert sum(t.calls for t in Ledger(store).tools().rows) == len(spans)


def test_tool_executions_wait_in_the_spool_while_their_table_is_down_and_nothing_is_doubled(
    store: Store, tmp_path: Path
) -> None:
    """One segment holds both kinds: the LLM calls go in, the tool block fails; the segment stays, and its
    retry (by the next process) stores the tool executions and looks the calls up instead of doubling them."""
    spool = tmp_path / "spool"
    first = CostExporter(store, spool_dir=spool, flush_interval_ms=60_000, shutdown_timeout_ms=2_000)
    store.command(f"DETACH TABLE {store.database}.{TOOL_TABLE}")
    try:
        assert first.export(llm_spans() + tool_spans()).name == "SUCCESS"
        first.shutdown()
    finally:
        store.command(f"ATTACH TABLE {store.database}.{TOOL_TABLE}")
    assert list(spool.glob("owner-*/seg-*.ready"))
    second = CostExporter(store, spool_dir=spool)
    assert second.force_flush(30_000)
    second.shutdown()
    ledger = Ledger(store)
    assert ledger.totals().usage.requests == 4 and ledger.totals().usage.cost == MINI * 4
    assert sum(t.calls for t in ledger.tools().rows) == 7


def test_a_tool_execution_past_a_bound_is_quarantined_and_replayable(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    made = testing.tool_span(1, at=DAY)
    good = Normalizer().normalize(made, made.start_time or 0)
    assert isinstance(good, ToolCall)
    bad = replace(good, span_id=99, duration_us=2**64)  # no UInt64 holds it
    result = exporter.pipeline.submit_tools([good, bad])
    assert (result.accepted, result.rejected) == (1, {"out_of_range:duration_us": 1})
    (entry,) = exporter.pipeline.quarantine.entries()
    assert (entry.kind, entry.calls) == ("tool_calls", 1)
    assert exporter.pipeline.replay_quarantine() == {"entries": 1, "calls": 1, "replayed": 0, "kept": 1}
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    assert sum(t.calls for t in Ledger(store).tools().rows) == 1


def test_forget_deletes_a_users_profile_and_tool_executions_and_leaves_the_rest_exact(
    store: Store, exporter: CostExporter
) -> None:
    _export(exporter, llm_spans() + tool_spans())
    ledger = Ledger(store)
    ledger.upsert_customers([{"user_id": "alice", "tenant_id": "acme", "display_name": "Alice"}])
    gone = profiles.forget(store, "alice", tenant_id="acme")
    assert (gone.profiles, gone.tool_calls) == (1, 4)
    assert ledger.customer("alice", tenant_id="acme") is None
    assert {(t.user_id, t.tool_name): t.calls for t in ledger.tools(per_user=True).rows} == {
        ("bob", "search"): 2,
        ("", ""): 1,
    }
    # the rollup's rows for the user are gone too: a window of whole hours (read from it) agrees
    whole = ledger.tools(start=DAY, end=DAY + timedelta(days=3), per_user=True).rows
    assert sum(t.calls for t in whole) == 3
    assert isinstance(whole[0], ToolRow)
