"""``record_call`` / ``Recorder``: calls no instrumentation sees, through the same pipeline as spans."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spanledger import CostExporter, InvalidCallError, Ledger, Recorder, Store, attribute_to, record_call
from spanledger._ingest import shared as pipelines
from spanledger.testing import llm_span

pytestmark = pytest.mark.integration

MINI = Decimal("0.0001212")  # gpt-4o-mini: 1200 input of which 1024 cached, 30 output
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def test_a_recorded_call_is_priced_attributed_from_context_and_stored(store: Store, tmp_path: Path) -> None:
    with Recorder(store, spool_dir=tmp_path / "spool", service_name="worker") as recorder:
        with attribute_to(user_id="alice", tenant_id="acme", plan="pro"):
            done = recorder.record(
                provider="OpenAI",  # any gen_ai.system spelling
                model="gpt-4o-mini",
                input_tokens=1200,
                cache_read_tokens=1024,
                output_tokens=30,
                tags={"feature": "nightly-digest"},
                timestamp=WHEN,
                duration=timedelta(milliseconds=850),
            )
        assert done.accepted and done.call.cost == MINI
        assert recorder.flush(10_000)
    detail = Ledger(store).user("alice")
    assert detail.summary is not None and detail.summary.usage.cost == MINI
    (call,) = detail.calls
    assert (call.provider, call.source, call.user_source, call.service_name) == (
        "openai",
        "record_call",
        "attribution",
        "worker",
    )
    assert (call.tenant_id, call.tags, call.timestamp, call.duration_us) == (
        "acme",
        {"plan": "pro", "feature": "nightly-digest"},
        WHEN,
        850_000,
    )


def test_explicit_arguments_win_over_the_context_and_none_means_none(store: Store, tmp_path: Path) -> None:
    with Recorder(store, spool_dir=tmp_path / "spool") as recorder, attribute_to(user_id="alice", tenant_id="acme"):
        recorder.record(provider="openai", model="gpt-4o-mini", input_tokens=10, user_id="bob", tenant_id=None)
        recorder.record(provider="openai", model="no-such-model-anywhere", input_tokens=10, error=TimeoutError())
        assert recorder.flush(10_000)
    rows = {(r.user_id, r.tenant_id): r for r in Ledger(store).users().rows}
    assert set(rows) == {("bob", ""), ("alice", "acme")}
    alice = rows[("alice", "acme")].usage
    assert (alice.requests, alice.errors, alice.unpriced_requests, alice.cost) == (1, 1, 1, Decimal(0))
    (call,) = Ledger(store).user("alice").calls
    assert (call.error_type, call.cost, "unpriced" in call.flags) == ("TimeoutError", None, True)


def test_the_same_request_id_counts_once_even_after_a_restart(store: Store, tmp_path: Path) -> None:
    args: dict[str, Any] = {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1200}
    args |= {"cache_read_tokens": 1024, "output_tokens": 30, "user_id": "alice", "request_id": "chatcmpl-7x9"}
    with Recorder(store, spool_dir=tmp_path / "spool") as first:
        assert first.record(**args).accepted
        again = first.record(**args)
        assert (again.accepted, again.duplicate) == (False, True)
        assert first.flush(10_000)
    with Recorder(store, spool_dir=tmp_path / "spool") as restarted:  # a new process would start like this
        assert restarted.record(**args).accepted  # not in its memory: the store is asked at insert time
        assert restarted.record(**{**args, "request_id": "chatcmpl-other"}).accepted
        assert restarted.flush(10_000)
    usage = Ledger(store).user("alice").summary
    assert usage is not None and (usage.usage.requests, usage.usage.cost) == (2, MINI * 2)


def test_anthropic_style_input_is_converted_and_flagged(store: Store, tmp_path: Path) -> None:
    with Recorder(store, spool_dir=tmp_path / "spool") as recorder:
        done = recorder.record(
            provider="anthropic",
            model="claude-3-5-haiku-20241022",
            input_tokens=100,  # Anthropic's API: cache tokens come on top of this
            cache_read_tokens=2000,
            cache_write_tokens=500,
            output_tokens=10,
            user_id="carol",
        )
    assert done.call.input_tokens == 2600 and "input_excluded_cache" in done.call.flags
    # haiku 3.5: $0.80 / M input, $0.08 / M cache read, $1.00 / M cache write, $4 / M output
    assert done.call.cost == Decimal("0.00008") + Decimal("0.00016") + Decimal("0.0005") + Decimal("0.00004")


BAD: list[tuple[dict[str, Any], str]] = [
    ({"provider": "", "model": "gpt-4o"}, "provider must be a non-empty string"),
    ({"provider": "openai", "model": None}, "model must be a non-empty string"),
    ({"input_tokens": -1}, "input_tokens must be between 0"),
    ({"output_tokens": 10**10 + 1}, "output_tokens must be between 0"),
    ({"cache_read_tokens": 1.5}, "cache_read_tokens must be a whole number"),
    ({"input_tokens": True}, "input_tokens must be a whole number"),
    ({"output_tokens": 5, "reasoning_tokens": 6}, "reasoning_tokens (6) is part of output_tokens (5)"),
    ({"timestamp": "2026-11-01"}, "timestamp must be a datetime"),
    ({"timestamp": datetime(2019, 12, 31, tzinfo=UTC)}, "before 2020"),
    ({"timestamp": datetime.now(UTC) + timedelta(days=2)}, "more than a day ahead"),
    ({"duration": -1}, "duration must be between 0"),
    ({"duration": "1s"}, "duration must be a timedelta or seconds"),
    ({"user_id": 42}, "user_id must be a string or None"),
    ({"tags": ["plan", "pro"]}, "tags must be a mapping"),
    ({"tags": {"": "x"}}, "tag names must be non-empty strings"),
    ({"error": 3}, "error must be a bool, a string or an exception"),
    ({"request_id": ""}, "request_id must be a non-empty string"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_argument_raises_at_the_call_and_records_nothing(
    store: Store, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with Recorder(store, spool_dir=tmp_path / "spool") as recorder:
        with pytest.raises(InvalidCallError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
            recorder.record(**{"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, **change})
        assert isinstance(raised.value, ValueError)
        assert recorder.pipeline.stats["spooled"] == 0


def test_record_call_shares_the_pipeline_of_the_exporter_already_running(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    try:
        assert pipelines.running() is exporter.pipeline
        exporter.export([llm_span(0, user="alice")])
        done = record_call(provider="openai", model="gpt-4o-mini", input_tokens=1200, cache_read_tokens=1024,
                           output_tokens=30, user_id="alice", tenant_id="acme")  # fmt: skip
        assert done.accepted and exporter.stats["spooled"] == 2  # one pipeline: one spool, one set of counters
        assert exporter.force_flush(10_000)
        summary = Ledger(store).user("alice").summary
        assert summary is not None and (summary.usage.requests, summary.usage.cost) == (2, MINI * 2)
    finally:
        exporter.shutdown()


def test_record_call_alone_in_a_process_uses_the_default_store_and_flushes_at_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from spanledger import attribute_to, record_call
        with attribute_to(user_id="dana", tenant_id="globex"):
            print(record_call(provider="openai", model="gpt-4o-mini", input_tokens=1200,
                              cache_read_tokens=1024, output_tokens=30).accepted)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env |= {"SPANLEDGER_STORE": f"chdb://{tmp_path / 'store'}", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr
    read = subprocess.run(
        [sys.executable, "-m", "spanledger", "users", "--format", "json"], env=env, capture_output=True, text=True
    )
    assert read.returncode == 0, read.stderr
    import json

    (row,) = json.loads(read.stdout)["data"]
    assert (row["user_id"], row["tenant_id"], Decimal(row["cost"])) == ("dana", "globex", MINI)
