"""``OTEL_TRACES_EXPORTER=spanledger`` resolves to CostExporter, which then works from env vars alone."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk._configuration import _import_exporters

from spanledger import CostExporter, Ledger
from spanledger.testing import llm_span


def test_zero_code_configuration_finds_and_builds_the_exporter(
    store_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces, _, _ = _import_exporters(["spanledger"], [], [])
    assert traces == {"spanledger": CostExporter}
    monkeypatch.setenv("SPANLEDGER_STORE", store_dsn)
    monkeypatch.setenv("SPANLEDGER_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("SPANLEDGER_FLUSH_INTERVAL_MS", "not-a-number")  # logged and replaced, never a crash
    exporter = traces["spanledger"]()  # the SDK configurator calls it with no arguments
    exporter.export([llm_span(0, user="zero-code")])
    assert exporter.force_flush(10_000)
    rows = Ledger(store_dsn).users().rows
    assert [(r.user_id, r.usage.cost) for r in rows] == [("zero-code", Decimal("0.0001212"))]
    exporter.shutdown()
