"""No single span can stop accounting: bounds, the quarantine, bisection of refused blocks, and replay."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult
from starlette.testclient import TestClient

from spanledger import CostExporter, Store
from spanledger._capture.normalize import MAX_TOKENS, Normalizer
from spanledger._ingest import codec
from spanledger._ingest.quarantine import Quarantine
from spanledger._ingest.spool import Spool
from spanledger._pricing.pricer import Pricer
from spanledger._server import create_app
from spanledger.testing import llm_span
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, INGEST_TOKEN, settings

pytestmark = pytest.mark.integration

N = 9_999_999_999
CALL_COST = Decimal("0.0001212")  # gpt-4o-mini: 1200 input of which 1024 cached, 30 output
MAX_COST = Decimal(10) ** 6  # Decimal(18, 12): one call costs less than $1,000,000


def poison(n: int) -> object:
    """The span from the report: o1-pro with 9,999,999,999 tokens of every kind (about $10.5M)."""
    return llm_span(
        n,
        model="o1-pro",
        input_tokens=N,
        output_tokens=N,
        cache_read=N,
        extra={"gen_ai.usage.cache_creation.input_tokens": N},
    )


def _rows(store: Store, where: str = "1") -> list[tuple[object, ...]]:
    sql = f"SELECT span_id, input_tokens, cost, flags FROM {store.database}.llm_calls WHERE {where} ORDER BY span_id"
    return [tuple(r) for r in store.query(sql).result_rows]


def _rollup_requests(store: Store) -> int:
    return int(store.query(f"SELECT sum(requests) FROM {store.database}.usage_by_user_hourly").result_rows[0][0] or 0)


@pytest.fixture
def price_file(tmp_path: Path) -> Path:
    """A model that costs exactly $1 per input token, so a call's cost can sit right at the bound."""
    path = tmp_path / "prices.toml"
    path.write_text('[[prices]]\nmodel = "dollar-a-token"\ninput_mtok = "1000000"\noutput_mtok = "0"\n')
    return path


def test_the_reported_poison_span_is_quarantined_and_later_spans_are_stored(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    # quarantined is safe, not a failure to retry: the SDK must not be told to resend it
    assert exporter.export([poison(0)]) is SpanExportResult.SUCCESS
    assert exporter.export([llm_span(1), llm_span(2)]) is SpanExportResult.SUCCESS
    assert exporter.force_flush(10_000)
    assert [r[0] for r in _rows(store)] == [2, 3]  # span ids n + 1: both later spans, not the poison
    assert _rollup_requests(store) == 2
    [entry] = Quarantine(tmp_path / "spool").entries()
    assert (entry.reason, entry.calls) == ("out_of_range:cost", 1)
    assert "10499999.99895" in entry.error  # the cost that did not fit, said plainly
    assert exporter.stats["quarantined"] == 1
    exporter.shutdown()
    # a restart: nothing is replayed ahead of new spans, the quarantine stays as it was
    again = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    assert again.export([llm_span(3)]) is SpanExportResult.SUCCESS
    assert again.force_flush(10_000)
    assert [r[0] for r in _rows(store)] == [2, 3, 4]
    assert Quarantine(tmp_path / "spool").summary()["calls"] == 1
    again.shutdown()


def test_token_and_cost_bounds_at_and_one_past(store: Store, tmp_path: Path, price_file: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", price_file=str(price_file), flush_interval_ms=50)
    spans = [
        # tokens: at the bound a call is stored; one past it, that count is stored as 0 and flagged
        llm_span(0, input_tokens=MAX_TOKENS, output_tokens=MAX_TOKENS, cache_read=0),
        llm_span(1, input_tokens=MAX_TOKENS + 1, output_tokens=30, cache_read=0),
        # cost: $999,999 is stored exactly; $999,999.999999 too; $1,000,000 is past the bound
        llm_span(2, model="dollar-a-token", provider="selfhosted", input_tokens=999_999, output_tokens=0, cache_read=0),
        llm_span(
            3, model="dollar-a-token", provider="selfhosted", input_tokens=1_000_000, output_tokens=0, cache_read=0
        ),
    ]
    result = exporter.ingest(spans).result
    assert (result.accepted, result.rejected) == (3, {"out_of_range:cost": 1})
    assert exporter.force_flush(10_000)
    rows = {r[0]: r for r in _rows(store)}
    assert sorted(rows) == [1, 2, 3]
    # gpt-4o-mini at 10^10 input and output tokens: $0.15 and $0.60 per million
    assert rows[1][1:3] == (MAX_TOKENS, Decimal(MAX_TOKENS) * Decimal("0.75") / 10**6)
    assert rows[2][1] == 0 and "invalid_tokens:gen_ai.usage.input_tokens" in rows[2][3]
    assert rows[3][1:3] == (999_999, Decimal(999_999))
    [entry] = Quarantine(tmp_path / "spool").entries()
    assert (entry.reason, entry.calls) == ("out_of_range:cost", 1)
    [call] = codec.from_columns(Quarantine(tmp_path / "spool").load(entry))
    assert (call.span_id, call.input_tokens, call.cost) == (4, 1_000_000, MAX_COST)
    exporter.shutdown()


def test_a_row_the_store_refuses_is_bisected_out_and_the_rest_of_its_block_stored(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A constraint makes ClickHouse itself refuse one user's rows (VIOLATED_CONSTRAINT, a data error):
    # the block of 40 calls is split until only that user's 3 calls are left out.
    store.command(f"ALTER TABLE {store.database}.llm_calls ADD CONSTRAINT no_mallory CHECK user_id != 'mallory'")
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=60_000)
    bad = {5, 17, 33}
    spans = [llm_span(n, user="mallory" if n in bad else f"user-{n % 4}") for n in range(40)]
    with caplog.at_level(logging.WARNING, logger="spanledger"):
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.force_flush(30_000)
    stored = [r[0] for r in _rows(store)]
    assert stored == [n + 1 for n in range(40) if n not in bad]
    assert _rollup_requests(store) == 37  # every rollup saw each good row once, despite the retries
    entries = Quarantine(tmp_path / "spool").entries()
    assert {e.reason for e in entries} == {"store_rejected"} and sum(e.calls for e in entries) == 3
    assert all("VIOLATED_CONSTRAINT" in e.error for e in entries)
    assert exporter.stats["stored"] == 37 and exporter.pipeline.flusher.healthy
    assert exporter.spool.size_bytes == 0

    # fix the cause, replay: the three calls are stored once, and a second replay changes nothing
    store.command(f"ALTER TABLE {store.database}.llm_calls DROP CONSTRAINT no_mallory")
    report = exporter.pipeline.replay_quarantine()
    assert (report["calls"], report["replayed"], report["kept"]) == (3, 3, 0)
    assert exporter.force_flush(30_000)
    assert [r[0] for r in _rows(store)] == [n + 1 for n in range(40)]
    assert _rollup_requests(store) == 40
    assert exporter.pipeline.replay_quarantine() == {"entries": 0, "calls": 0, "replayed": 0, "kept": 0}
    exporter.shutdown()


def test_replay_prices_again_with_a_corrected_price_rule(store: Store, tmp_path: Path) -> None:
    # the report's case as an operator meets it: a price rule off by a factor of a million is fixed, then replayed
    wrong, right = tmp_path / "wrong.toml", tmp_path / "right.toml"
    wrong.write_text('[[prices]]\nmodel = "in-house-*"\ninput_mtok = "2000000000000"\noutput_mtok = "0"\n')
    right.write_text('[[prices]]\nmodel = "in-house-*"\ninput_mtok = "2"\noutput_mtok = "0"\n')
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", price_file=str(wrong), flush_interval_ms=50)
    span = llm_span(0, model="in-house-7b", provider="selfhosted", input_tokens=5000, output_tokens=10, cache_read=0)
    assert exporter.ingest([span]).result.rejected == {"out_of_range:cost": 1}
    exporter.shutdown()
    fixed = CostExporter(store, spool_dir=tmp_path / "spool", price_file=str(right), flush_interval_ms=50)
    assert fixed.pipeline.replay_quarantine(dry_run=True) == {"entries": 1, "calls": 1, "replayed": 1, "kept": 0}
    assert Quarantine(tmp_path / "spool").summary()["calls"] == 1  # a dry run changes nothing
    assert fixed.pipeline.replay_quarantine()["replayed"] == 1
    assert fixed.force_flush(10_000)
    assert [r[2] for r in _rows(store)] == [Decimal("0.01")]  # 5,000 tokens at $2 per million
    fixed.shutdown()


def test_an_out_of_range_row_left_in_the_spool_by_an_older_version_is_set_aside_at_flush(
    store: Store, tmp_path: Path
) -> None:
    # a segment written before the bound check existed: its good rows are stored, the bad one set aside
    normalizer, pricer = Normalizer(), Pricer()
    calls = []
    for n in range(5):
        call = normalizer.normalize(llm_span(n), time.time_ns())
        assert not isinstance(call, str)
        pricer.price(call)
        calls.append(call)
    calls[2].cost = Decimal("12345678.5")
    old = Spool(tmp_path / "spool", max_bytes=1 << 20)
    old.append(codec.encode(codec.to_columns(calls)))
    old.close()  # sealed and unlocked, as a process that died would leave it
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    assert exporter.force_flush(10_000)
    assert [r[0] for r in _rows(store)] == [1, 2, 4, 5]
    [entry] = Quarantine(tmp_path / "spool").entries()
    assert (entry.reason, entry.calls) == ("out_of_range:cost", 1)
    exporter.shutdown()


def test_poison_through_serve_is_quarantined_visible_and_does_not_come_back(store_dsn: str) -> None:
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {INGEST_TOKEN}"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    app = create_app(settings(store_dsn))
    client = TestClient(app)
    assert client.get("/healthz").json()["status"] == "ok"
    body = encode_spans([poison(0), llm_span(1)]).SerializeToString()
    response = client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1 and "quarantine" in partial.error_message
    assert app.state.exporter.force_flush(10_000)
    later = client.post("/v1/traces", content=encode_spans([llm_span(2)]).SerializeToString(), headers=headers)
    assert later.status_code == 200 and app.state.exporter.force_flush(10_000)
    users = client.get("/api/v1/users", headers=admin).json()
    assert [(u["user_id"], u["requests"], Decimal(u["cost"])) for u in users["data"]] == [("alice", 2, CALL_COST * 2)]
    health = client.get("/healthz").json()
    assert (health["status"], health["store"], health["quarantined_calls"]) == ("degraded", "ok", 1)
    status = client.get("/api/v1/status", headers=admin).json()
    assert status["quarantine"]["by_reason"] == {"out_of_range:cost": 1}
    assert client.get("/api/v1/status", headers={"Authorization": f"Bearer {ACME_TOKEN}"}).status_code == 403
    assert client.post("/api/v1/quarantine/replay", headers=admin).json()["kept"] == 1  # still past the bound
    app.state.exporter.shutdown()

    restarted = create_app(settings(store_dsn))  # the same store and spool: nothing blocks, nothing is lost
    client = TestClient(restarted)
    resent = client.post("/v1/traces", content=encode_spans([llm_span(3)]).SerializeToString(), headers=headers)
    assert resent.status_code == 200
    assert restarted.state.exporter.force_flush(10_000)
    users = client.get("/api/v1/users", headers=admin).json()
    assert [u["requests"] for u in users["data"]] == [3]
    assert client.get("/healthz").json()["quarantined_calls"] == 1
    restarted.state.exporter.shutdown()
