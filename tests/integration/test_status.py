"""`spanledger status` shows what is waiting in the spool, who left it, and what the store holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_LEAVE_IN_SPOOL = textwrap.dedent(
    """
    import os, sys
    from spanledger import CostExporter
    from tests.factories import llm_span
    exporter = CostExporter(sys.argv[1], flush_interval_ms=600_000)
    exporter.export([llm_span(i) for i in range(3)])
    exporter._write_stats()
    os._exit(0)  # dies without flushing, as a crashed app would
    """
)
_DRAIN = "import sys\nfrom spanledger import CostExporter\ne = CostExporter(sys.argv[1])\nassert e.force_flush(60_000)\ne.shutdown()"


def _status(dsn: str, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-m", "spanledger", "status", "--store", dsn, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def test_status_reports_pending_spool_then_stored_calls(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'store'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-c", _LEAVE_IN_SPOOL, dsn], env=env, timeout=120, check=True)
    before = _status(dsn, env)
    assert before["spool"]["pending_bytes"] > 0
    [owner] = before["spool"]["owners"]
    assert owner["alive"] is False
    assert owner["counters"] == {"received": 3, "spooled": 3}
    assert before["store_contents"]["calls"] == 0

    subprocess.run([sys.executable, "-c", _DRAIN, dsn], env=env, timeout=120, check=True)
    after = _status(dsn, env)
    assert after["spool"]["pending_bytes"] == 0
    assert after["store_contents"]["calls"] == 3
    assert after["store_contents"]["cost_usd"] == "0.000363600000"
