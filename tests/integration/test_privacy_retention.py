"""Retention on the real chDB engine: TTLs drop old raw calls and captured content and keep rollups; changing a
retention is idempotent; a bad period changes nothing; rebuilds leave the days the raw table dropped alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger import ConfigError, CostExporter, Ledger, Store
from spanledger._privacy import retention
from spanledger._store.rebuild import rebuild
from spanledger._store.schema import ROLLUP_TABLES
from spanledger.testing import llm_span

pytestmark = pytest.mark.integration


def _calls(store: Store, tmp_path: Path, now: datetime) -> None:
    """One call a day for 60 days, each with content."""
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", capture_content=True)
    exporter.export(
        [
            llm_span(n, at=now - timedelta(days=n, hours=1), extra={"gen_ai.input.messages": f"prompt {n}"})
            for n in range(60)
        ]
    )
    assert exporter.force_flush(30_000)
    exporter.shutdown()


def _merge(store: Store) -> None:
    for table in ("llm_calls", *ROLLUP_TABLES):
        store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")


def test_retention_drops_old_calls_and_content_and_keeps_rollups(store: Store, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    _calls(store, tmp_path, now)
    ledger = Ledger(store)
    total = ledger.totals(start=now - timedelta(days=90), end=now).usage.cost
    assert total == Decimal("0.0001212") * 60

    changed = retention.apply(store, raw_days=30, content_days=7, rollup_days=400)
    assert len(changed) == 1 + 2 + len(ROLLUP_TABLES)
    assert retention.apply(store, raw_days=30, content_days=7, rollup_days=400) == []  # idempotent
    _merge(store)

    db = store.database
    raw = store.query(f"SELECT count(), countIf(prompt != ''), min(timestamp) FROM {db}.llm_calls").result_rows[0]
    assert raw[0] == 30 and raw[1] == 7  # 30 days of calls, 7 of them still with content
    assert raw[2] >= (now - timedelta(days=30)).replace(tzinfo=None)
    rolled = store.query(f"SELECT sum(requests), sum(cost) FROM {db}.usage_by_user_daily").result_rows[0]
    assert rolled == (60, total)  # the rollups keep all 60 days
    assert retention.current(store) == retention.Retention(30, 7, 400)
    assert retention.report(store)["kept"] == {
        "raw calls": "30 days",
        "captured content": "7 days",
        "rollups": "400 days",
    }

    report = rebuild(store, grace_seconds=0)  # older days are left as they are, not recomputed from nothing
    assert report.verified, report.mismatches
    assert store.query(f"SELECT sum(requests) FROM {db}.usage_by_user_daily").result_rows[0][0] == 60

    assert retention.apply(store, raw_days=None, content_days=None, rollup_days=None)  # forever again
    assert retention.current(store) == retention.Retention()


def test_a_bad_retention_changes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    retention.apply(store, raw_days=90)
    for bad in ({"raw_days": 0}, {"raw_days": -5}, {"content_days": 120}, {"rollup_days": 30}):
        with pytest.raises(ConfigError):
            retention.apply(store, **bad)
    assert retention.current(store) == retention.Retention(raw_days=90)
    # a writer given a bad value in its environment logs it and changes nothing; a good one is applied
    monkeypatch.setenv("SPANLEDGER_RETENTION_DAYS", "0")
    retention.apply_from_env(store)
    assert retention.current(store) == retention.Retention(raw_days=90)
    monkeypatch.setenv("SPANLEDGER_RETENTION_DAYS", "45")
    monkeypatch.setenv("SPANLEDGER_ROLLUP_RETENTION_DAYS", "365")
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    exporter.export([llm_span(0)])
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    assert retention.current(store) == retention.Retention(raw_days=45, rollup_days=365)
