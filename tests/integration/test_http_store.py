"""``http://`` stores, spoken to over real HTTP: the loopback ClickHouse endpoint backed by chDB (with faults),
or the real server in ``SPANLEDGER_TEST_CLICKHOUSE_URL`` (the fault tests are skipped then)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import CostExporter, Ledger, Store, StoreError, StoreUnavailableError, attribute_to
from spanledger._capture.normalize import Normalizer
from spanledger._ingest.codec import to_columns
from spanledger._pricing.pricer import Pricer
from spanledger._store.schema import ROLLUP_TABLES
from spanledger._store.schema import migrations as schema_migrations
from spanledger.testing import llm_span
from tests.support.ch_http import ClickHouseHTTPServer

pytestmark = pytest.mark.integration

MINI = Decimal("0.0001212")  # gpt-4o-mini: 1200 input of which 1024 cached, 30 output
# (user, tenant, provider, model, input, output, cache read, cache write)
CALLS = [
    ("alice", "acme", "openai", "gpt-4o-mini", 1200, 30, 1024, 0),
    ("alice", "acme", "openai", "gpt-4o-mini", 1200, 30, 1024, 0),
    ("alice", "acme", "openai", "gpt-4o", 1000, 500, 0, 0),
    ("bob", "globex", "anthropic", "claude-sonnet-4-5", 2000, 100, 500, 1000),
    ("carol", "globex", "vllm", "my-local-llama", 700, 70, 0, 0),
    (None, None, "openai", "gpt-4o-mini", 100, 10, 0, 0),
]
EXPECTED_COST = {
    ("acme", "alice"): MINI * 2 + Decimal("0.0075"),
    ("globex", "bob"): Decimal("0.0069"),
    ("globex", "carol"): Decimal(0),  # unpriced, not free: counted in unpriced_requests
    ("", ""): Decimal("0.000021"),
}
TOTAL_COST = sum(EXPECTED_COST.values(), Decimal(0))


@pytest.fixture
def spans(provider: TracerProvider, memory_exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """Finished spans from a real SDK pipeline: ``attribute_to`` → baggage → ``UserAttributionProcessor``."""
    tracer = provider.get_tracer("test")
    for user, tenant, system, model, inp, out, read, write in CALLS:
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": system,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out,
            "gen_ai.usage.cache_read.input_tokens": read,
            "gen_ai.usage.cache_creation.input_tokens": write,
        }
        if user is None:
            with tracer.start_as_current_span(f"chat {model}", attributes=attributes):
                pass
        else:
            with (
                attribute_to(user_id=user, tenant_id=tenant, plan="pro"),
                tracer.start_as_current_span(f"chat {model}", attributes=attributes),
            ):
                pass
    finished = list(memory_exporter.get_finished_spans())
    assert [(s.attributes or {}).get("enduser.id") for s in finished] == [c[0] for c in CALLS]
    return finished


def _export(dsn: str, spans: Sequence[ReadableSpan], spool: Path) -> CostExporter:
    exporter = CostExporter(dsn, spool_dir=spool, flush_interval_ms=50, shutdown_timeout_ms=2_000)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.force_flush(30_000) is True
    return exporter


def _integrity(dsn: str) -> tuple[int, int, Decimal, list[int], list[Decimal]]:
    """Raw rows, distinct spans, raw cost, and requests / cost summed in each rollup."""
    store = Store(dsn, create=False)
    db = store.database
    count, distinct, cost = store.query(
        f"SELECT count(), uniqExact(trace_id, span_id), sum(ifNull(cost, 0)) FROM {db}.llm_calls"
    ).result_rows[0]
    requests, costs = [], []
    for table in ROLLUP_TABLES:
        row = store.query(f"SELECT sum(requests), sum(cost) FROM {db}.{table}").result_rows[0]
        requests.append(int(row[0] or 0))
        costs.append(Decimal(row[1] or 0))
    store.close()
    return int(count), int(distinct), Decimal(cost), requests, costs


def _per_user(dsn: str) -> dict[tuple[str, str], Decimal]:
    return {
        (r.tenant_id, r.user_id): r.usage.cost for r in Ledger(dsn).users(limit=1000, include_unattributed=True).rows
    }


# --- the store over HTTP ------------------------------------------------------------------------------------


def test_schema_creation_over_http_is_idempotent(http_store_dsn: str) -> None:
    first = Store(http_store_dsn)
    assert first.ensure_schema() == []  # the constructor applied everything
    assert Store(http_store_dsn).ensure_schema() == []
    tables = first.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name", {"db": first.database}
    ).result_rows
    assert [t[0] for t in tables] == [
        "alert_deliveries",
        "billing_markups",
        "billing_reprices",
        "billing_revenue",
        "budget_alerts",
        "budgets",
        "call_keys",
        "call_keys_mv",
        "customers",
        "llm_calls",
        "maintenance",
        "privacy_audit",
        "privacy_jobs",
        "schema_migrations",
        "tool_calls",
        "tool_calls_keys_mv",
        "tool_usage_hourly",
        "tool_usage_hourly_mv",
        "usage_by_tenant_daily",
        "usage_by_tenant_daily_mv",
        "usage_by_tenant_hourly",
        "usage_by_tenant_hourly_mv",
        "usage_by_user_daily",
        "usage_by_user_daily_mv",
        "usage_by_user_hourly",
        "usage_by_user_hourly_mv",
        "usage_by_user_model_daily",
        "usage_by_user_model_daily_mv",
        "usage_by_user_model_hourly",
        "usage_by_user_model_hourly_mv",
    ]
    versions = first.query(f"SELECT version FROM {first.database}.schema_migrations ORDER BY version").result_rows
    assert versions == [(m.version,) for m in schema_migrations(first.database)]


def test_exporter_and_ledger_over_http_match_the_embedded_store_exactly(
    http_store_dsn: str, store_dsn: str, spans: list[ReadableSpan], tmp_path: Path
) -> None:
    over_http = _export(http_store_dsn, spans, tmp_path / "spool-http")
    embedded = _export(store_dsn, spans, tmp_path / "spool-chdb")
    assert over_http.stats["stored"] == embedded.stats["stored"] == len(CALLS)
    over_http.shutdown()
    embedded.shutdown()

    assert _per_user(http_store_dsn) == EXPECTED_COST
    http_ledger, chdb_ledger = Ledger(http_store_dsn), Ledger(store_dsn)
    assert http_ledger.users().rows == chdb_ledger.users().rows
    assert http_ledger.users().unnamed == chdb_ledger.users().unnamed
    assert http_ledger.tenants().rows == chdb_ledger.tenants().rows
    assert http_ledger.daily(per="user") == chdb_ledger.daily(per="user")
    alice_http, alice_chdb = http_ledger.user("alice"), chdb_ledger.user("alice")
    assert alice_http.summary == alice_chdb.summary
    assert alice_http.models == alice_chdb.models
    assert alice_http.summary is not None and alice_http.summary.usage.cost == MINI * 2 + Decimal("0.0075")
    carol = http_ledger.user("carol").summary
    assert carol is not None and (carol.usage.cost, carol.usage.unpriced_requests) == (Decimal(0), 1)
    assert [(c.user_id, c.tags) for c in http_ledger.user("alice").calls] == [("alice", {"plan": "pro"})] * 3
    assert _integrity(http_store_dsn) == (6, 6, TOTAL_COST, [6] * len(ROLLUP_TABLES), [TOTAL_COST] * len(ROLLUP_TABLES))


EVIL = [
    "x' OR '1'='1",
    "'; DROP TABLE llm_calls; --",
    "{p0:String}",
    "back\\slash\\'",
    'double"quote',
    "%27%20&query=DROP+DATABASE&param_p0=x",
    "ünïcødé 用户 🚀",
    "\\N",
    "a\\tb",
]


def test_bound_parameters_carry_injection_strings_verbatim(http_store_dsn: str, tmp_path: Path) -> None:
    spans = [llm_span(n, user=user, tenant=user) for n, user in enumerate(EVIL)]
    _export(http_store_dsn, spans, tmp_path / "spool").shutdown()
    ledger = Ledger(http_store_dsn)
    for user in EVIL:
        detail = ledger.user(user, tenant_id=user)
        assert detail.summary is not None, user
        assert (detail.summary.usage.requests, detail.summary.usage.cost) == (1, MINI), user
        assert [r.user_id for r in ledger.users(search=user, tenant_id=user).rows] == [user]
    assert sorted(r.user_id for r in ledger.users(limit=100).rows) == sorted(EVIL)
    store = Store(http_store_dsn, create=False)
    for value in [*EVIL, "tab\there", "new\nline", "nul\0byte", "a" * 10_000]:  # long ones go as a form
        assert store.query("SELECT {s:String}", {"s": value}).result_rows == [(value,)]


def test_server_errors_keep_clickhouse_code_and_hide_the_password(http_store_dsn: str) -> None:
    store = Store(http_store_dsn)
    with pytest.raises(StoreError) as missing:
        store.query(f"SELECT count() FROM {store.database}.no_such_table")
    assert missing.value.code == 60
    assert "UNKNOWN_TABLE" in str(missing.value)
    parts = urlsplit(http_store_dsn)
    wrong = parts._replace(netloc=f"{parts.username}:not-the-password@{parts.hostname}:{parts.port}")
    with pytest.raises(StoreError) as denied:
        Store(urlunsplit(wrong))
    assert denied.value.code == 516
    assert "not-the-password" not in str(denied.value)


# --- faults (the loopback fixture only) ---------------------------------------------------------------------


def test_a_reset_insert_retried_by_the_client_is_counted_once(
    ch_server: ClickHouseHTTPServer, http_store_dsn: str
) -> None:
    store = Store(http_store_dsn)
    normalizer, pricer = Normalizer(), Pricer()
    calls = []
    for n in range(10):
        call = normalizer.normalize(llm_span(n), time.time_ns())
        assert not isinstance(call, str)
        pricer.price(call)
        calls.append(call)
    ch_server.reset_responses(times=1)  # the insert runs, its response is cut: clickhouse-connect resends it
    store.insert_calls(to_columns(calls), dedup_token="segment-x:0")
    inserts = [r for r in ch_server.requests if r.statement.startswith("INSERT INTO `") and "llm_calls" in r.statement]
    assert [r.fault for r in inserts] == ["reset", ""]
    assert all(r.params["insert_deduplication_token"] == "segment-x:0" for r in inserts)
    assert _integrity(http_store_dsn) == (
        10,
        10,
        MINI * 10,
        [10] * len(ROLLUP_TABLES),
        [MINI * 10] * len(ROLLUP_TABLES),
    )


FAULTS: dict[str, Callable[[ClickHouseHTTPServer], None]] = {
    "refused": ClickHouseHTTPServer.refuse_connections,
    "reset": ClickHouseHTTPServer.reset_responses,
    "503": ClickHouseHTTPServer.respond_503,
    "stall": ClickHouseHTTPServer.stall_responses,  # past the 2 s timeout; the statement still runs
}


def _export_bounded(exporter: CostExporter, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    """``export`` on another thread: it must come back while the fault lasts (a hang fails the test)."""
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(spans)), daemon=True)
    worker.start()
    worker.join(timeout=60)  # the stalling fault holds a response forever, so this only passes if export returns
    assert not worker.is_alive(), "export() blocked on a faulty store"
    return results[0]


@pytest.mark.parametrize("opened", [True, False], ids=["store-open", "store-never-reached"])
@pytest.mark.parametrize("fault", FAULTS)
def test_after_a_fault_every_call_is_counted_exactly_once(
    fault: str, opened: bool, ch_server: ClickHouseHTTPServer, http_store_dsn: str, tmp_path: Path
) -> None:
    before, during = [llm_span(n) for n in range(5)], [llm_span(n) for n in range(5, 12)]
    exporter = CostExporter(http_store_dsn, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    try:
        if opened:
            assert _export_bounded(exporter, before) is SpanExportResult.SUCCESS
            assert exporter.force_flush(30_000) is True
        if fault in ("reset", "stall"):  # the insert runs and its response is lost; the look-ups before it answer
            getattr(ch_server, f"{fault}_responses")(inserts_only=True)
        else:
            FAULTS[fault](ch_server)
        seen = ch_server.request_count
        assert _export_bounded(exporter, during) is SpanExportResult.SUCCESS  # spooled durably
        exporter.force_flush(10_000)  # drives an insert attempt into the fault
        assert exporter.stats["insert_failures"] >= 1
        assert fault == "refused" or ch_server.request_count > seen
        if opened and fault in ("reset", "stall"):  # the block was stored while the client saw a failure
            assert any(r.fault == fault and r.status == 200 and "llm_calls" in r.statement for r in ch_server.requests)
        ch_server.heal()
        expected = len(during) + (len(before) if opened else 0)
        deadline = time.monotonic() + 60
        while exporter.stats["stored"] < expected and time.monotonic() < deadline:
            exporter.force_flush(1_000)
        assert exporter.force_flush(30_000) is True
    finally:
        ch_server.heal()
        exporter.shutdown()
    cost = MINI * expected
    assert _integrity(http_store_dsn) == (
        expected,
        expected,
        cost,
        [expected] * len(ROLLUP_TABLES),
        [cost] * len(ROLLUP_TABLES),
    )
    assert _per_user(http_store_dsn) == {("acme", "alice"): cost}
    assert exporter.spool.size_bytes == 0


@pytest.mark.parametrize("fault", FAULTS)
def test_opening_a_faulty_store_raises_store_unavailable(
    fault: str, ch_server: ClickHouseHTTPServer, http_store_dsn: str
) -> None:
    FAULTS[fault](ch_server)
    with pytest.raises(StoreUnavailableError) as unavailable:
        Store(http_store_dsn)
    assert ch_server.password not in str(unavailable.value)
