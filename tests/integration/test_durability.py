"""Money is never lost and never counted twice: spool, retries, replays, shutdown and flush."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from spanledger import CostExporter, Store
from spanledger._capture.normalize import Normalizer
from spanledger._ingest.codec import to_columns
from spanledger._pricing.pricer import Pricer
from spanledger._store.schema import ROLLUP_TABLES
from spanledger.testing import llm_span

CALL_COST = Decimal("0.0001212")  # gpt-4o-mini: 1200 input of which 1024 cached, 30 output


def _totals(store: Store) -> tuple[int, Decimal, int, Decimal]:
    raw = store.query(f"SELECT count(), sum(ifNull(cost, 0)) FROM {store.database}.llm_calls").result_rows[0]
    rollup = store.query(f"SELECT sum(requests), sum(cost) FROM {store.database}.usage_by_user_hourly").result_rows[0]
    return int(raw[0]), Decimal(raw[1]), int(rollup[0] or 0), Decimal(rollup[1] or 0)


def test_retried_block_is_counted_once_in_raw_table_and_every_rollup(store: Store) -> None:
    normalizer, pricer = Normalizer(), Pricer()
    calls = []
    for n in range(10):
        call = normalizer.normalize(llm_span(n), time.time_ns())
        assert not isinstance(call, str)
        pricer.price(call)
        calls.append(call)
    columns = to_columns(calls)
    for _ in range(3):  # the same block retried, as the flusher does after a failure or a crash
        store.insert_calls(columns, dedup_token="segment-1:0")
    assert _totals(store) == (10, CALL_COST * 10, 10, CALL_COST * 10)
    for table in ROLLUP_TABLES:  # every materialized view drops the retried block too
        requests = store.query(f"SELECT sum(requests) FROM {store.database}.{table}").result_rows[0][0]
        assert requests == 10, table
    store.insert_calls(columns, dedup_token="segment-2:0")  # another token is another block
    assert _totals(store)[0] == 20


def test_export_returns_before_insert_and_force_flush_makes_it_visible(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=60_000)
    assert exporter.export([llm_span(n) for n in range(5)]) is SpanExportResult.SUCCESS
    assert _totals(store)[0] == 0  # spooled, not yet inserted (flush interval is a minute)
    assert exporter.stats["spooled"] == 5
    assert exporter.force_flush(10_000) is True
    assert _totals(store) == (5, CALL_COST * 5, 5, CALL_COST * 5)
    assert exporter.stats["stored"] == 5
    exporter.shutdown()


def test_the_same_span_exported_twice_in_different_batches_is_counted_once(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    spans = [llm_span(n) for n in range(4)]
    exporter.export(spans[:3])
    exporter.export(spans[1:])  # a misconfigured double pipeline re-sends 1 and 2
    assert exporter.force_flush(10_000)
    assert _totals(store)[0] == 4
    assert exporter.stats["skipped:duplicate"] == 2
    exporter.shutdown()


def test_store_failure_keeps_calls_in_spool_and_retries_until_it_is_back(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    store.command(f"DETACH TABLE {store.database}.llm_calls")  # inserts now fail inside ClickHouse
    try:
        with caplog.at_level(logging.ERROR, logger="spanledger"):
            started = time.monotonic()
            assert exporter.export([llm_span(n) for n in range(7)]) is SpanExportResult.SUCCESS
            assert time.monotonic() - started < 5  # the caller is not held by the outage
            # durable in the spool and nothing was refused: force_flush may say so while the store is down
            assert exporter.force_flush(2_000) is True
        assert exporter.stats["insert_failures"] >= 1
        assert exporter.spool.size_bytes > 0
        assert any("cannot reach the store" in r.getMessage() for r in caplog.records)
    finally:
        store.command(f"ATTACH TABLE {store.database}.llm_calls")
    deadline = time.monotonic() + 60
    while exporter.stats["stored"] < 7 and time.monotonic() < deadline:
        exporter.force_flush(1_000)
    assert _totals(store) == (7, CALL_COST * 7, 7, CALL_COST * 7)
    assert exporter.spool.size_bytes == 0
    exporter.shutdown()


def test_full_spool_refuses_new_data_loudly_and_keeps_what_it_holds(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=60_000, spool_max_bytes=20_000)
    store.command(f"DETACH TABLE {store.database}.llm_calls")
    try:
        accepted = refused = 0
        with caplog.at_level(logging.ERROR, logger="spanledger"):
            for batch in range(20):
                result = exporter.export([llm_span(batch * 10 + i) for i in range(10)])
                if result is SpanExportResult.SUCCESS:
                    accepted += 10
                else:
                    refused += 10
        assert accepted > 0 and refused > 0
        assert exporter.stats["rejected:spool_full"] == refused
        assert any("is full" in r.getMessage() for r in caplog.records)
        assert exporter.force_flush(500) is False  # something handed over is in neither store nor spool
    finally:
        store.command(f"ATTACH TABLE {store.database}.llm_calls")
    assert exporter.force_flush(30_000) is True
    assert _totals(store)[0] == accepted  # everything accepted arrived, once
    exporter.shutdown()


def test_shutdown_is_idempotent_bounded_and_export_after_it_fails(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", shutdown_timeout_ms=2_000)
    exporter.export([llm_span(1)])
    started = time.monotonic()
    exporter.shutdown()
    exporter.shutdown()
    assert time.monotonic() - started < 5
    with caplog.at_level(logging.WARNING, logger="spanledger"):
        assert exporter.export([llm_span(2)]) is SpanExportResult.FAILURE
    assert any("after shutdown" in r.getMessage() for r in caplog.records)
    assert _totals(store)[0] == 1


def test_shutdown_with_the_store_down_leaves_data_in_the_spool_for_the_next_process(
    store: Store, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    first = CostExporter(store, spool_dir=spool, flush_interval_ms=60_000, shutdown_timeout_ms=1_000)
    store.command(f"DETACH TABLE {store.database}.llm_calls")
    try:
        first.export([llm_span(n) for n in range(3)])
        first.shutdown()
    finally:
        store.command(f"ATTACH TABLE {store.database}.llm_calls")
    assert _totals(store)[0] == 0
    assert list(spool.glob("owner-*/seg-*.ready"))
    second = CostExporter(store, spool_dir=spool)  # adopts the first one's spool
    assert second.force_flush(10_000)
    assert _totals(store) == (3, CALL_COST * 3, 3, CALL_COST * 3)
    assert second.stats["replayed"] == 3
    second.shutdown()


_PRODUCER = textwrap.dedent(
    """
    import sys
    from spanledger import CostExporter
    from spanledger.testing import llm_span
    exporter = CostExporter(sys.argv[1], spool_dir=sys.argv[2], flush_interval_ms=600_000)
    for batch in range(5):
        assert exporter.export([llm_span(batch * 100 + i) for i in range(100)]).name == "SUCCESS"
    print("exported", flush=True)
    sys.stdin.read()  # wait to be killed
    """
)
_CONSUMER = textwrap.dedent(
    """
    import json, sys
    from spanledger import CostExporter, Ledger
    exporter = CostExporter(sys.argv[1], spool_dir=sys.argv[2])
    assert exporter.force_flush(60_000)
    rows = Ledger(sys.argv[1]).users().rows
    print(json.dumps({"replayed": exporter.stats["replayed"],
                      "users": [[r.user_id, r.usage.requests, str(r.usage.cost)] for r in rows]}))
    exporter.shutdown()
    """
)


def test_sigkill_after_export_returned_loses_nothing(tmp_path: Path) -> None:
    dsn, spool = f"chdb://{tmp_path / 'store'}", str(tmp_path / "spool")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, dsn, spool], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    ) as producer:
        assert producer.stdout is not None
        assert producer.stdout.readline().strip() == b"exported"
        producer.send_signal(signal.SIGKILL)
        producer.wait(timeout=30)
    assert producer.returncode == -signal.SIGKILL
    result = subprocess.run(
        [sys.executable, "-c", _CONSUMER, dsn, spool], capture_output=True, env=env, timeout=120, check=True
    )
    report = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert report["replayed"] == 500
    assert report["users"] == [["alice", 500, str((CALL_COST * 500).quantize(Decimal("1e-12")))]]
