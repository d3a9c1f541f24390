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
    from spanledger.testing import llm_span
    exporter = CostExporter(sys.argv[1], flush_interval_ms=600_000)
    exporter.export([llm_span(i) for i in range(3)])
    exporter.pipeline._write_stats()
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
    contents = before["store_contents"]  # the exporter died before (or just after) creating the store
    assert contents.get("calls") == 0 or "there is no spanledger store" in contents["error"], contents

    subprocess.run([sys.executable, "-c", _DRAIN, dsn], env=env, timeout=120, check=True)
    after = _status(dsn, env)
    assert after["spool"]["pending_bytes"] == 0
    assert after["store_contents"]["calls"] == 3
    assert after["store_contents"]["cost_usd"] == "0.000363600000"


_POISON = textwrap.dedent(
    """
    import sys
    from spanledger import CostExporter
    from spanledger.testing import llm_span
    exporter = CostExporter(sys.argv[1], price_file=sys.argv[2])
    # priced at $2,000,000 by a rule off by a factor of a million: past the bound, set aside
    exporter.export([llm_span(0, model="in-house-7b", provider="vllm", input_tokens=1_000_000, output_tokens=0,
                              cache_read=0), llm_span(1)])
    assert exporter.force_flush(60_000)
    exporter.shutdown()
    """
)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "spanledger", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_status_shows_the_quarantine_and_replay_takes_it_back_after_the_fix(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'store'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    wrong, right = tmp_path / "wrong.toml", tmp_path / "right.toml"
    wrong.write_text('[[prices]]\nmodel = "in-house-*"\ninput_mtok = "2000000"\noutput_mtok = "0"\n')
    right.write_text('[[prices]]\nmodel = "in-house-*"\ninput_mtok = "2"\noutput_mtok = "0"\n')
    subprocess.run([sys.executable, "-c", _POISON, dsn, str(wrong)], env=env, timeout=120, check=True)

    status = _status(dsn, env)
    assert status["spool"]["quarantine"]["calls"] == 1
    assert status["spool"]["quarantine"]["by_reason"] == {"out_of_range:cost": 1}
    assert status["store_contents"]["calls"] == 1
    table = _cli(env, "status", "--store", dsn)
    assert "1 calls set aside" in table.stdout and "quarantine replay" in table.stdout
    listed = json.loads(_cli(env, "quarantine", "list", "--store", dsn, "--format", "json").stdout)
    [entry] = listed["entries"]
    assert (entry["reason"], entry["calls"]) == ("out_of_range:cost", 1) and "2000000" in entry["error"]

    still = _cli(env, "quarantine", "replay", "--store", dsn, "--price-file", str(wrong), "--format", "json")
    assert json.loads(still.stdout)["kept"] == 1, still.stderr  # the wrong rule still prices it past the bound
    dry = _cli(env, "quarantine", "replay", "--store", dsn, "--price-file", str(right), "--dry-run")
    assert "would replay 1" in dry.stdout, dry.stderr
    assert _status(dsn, env)["store_contents"]["calls"] == 1
    done = _cli(env, "quarantine", "replay", "--store", dsn, "--price-file", str(right))
    assert done.returncode == 0 and "replayed 1" in done.stdout, done.stderr
    after = _status(dsn, env)
    assert (after["store_contents"]["calls"], after["spool"]["quarantine"]["calls"]) == (2, 0)
    assert after["store_contents"]["cost_usd"] == "2.000121200000"  # $2 for a million tokens, plus alice's call
    again = _cli(env, "quarantine", "replay", "--store", dsn, "--price-file", str(right))
    assert "0 entries" in again.stdout
    assert _status(dsn, env)["store_contents"]["calls"] == 2
