"""Rebuilding rollups from ``llm_calls``: exact afterwards, nothing lost or doubled while writers insert,
and migration backfills that count a concurrent insert once."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger import CostExporter, Store
from spanledger._store import lease
from spanledger._store.rebuild import rebuild
from spanledger._store.schema import DAILY_KEYS, MIGRATIONS_TABLE, RAW_TABLE, ROLLUP_KEYS, ROLLUP_TABLES, migrations
from spanledger.testing import BASE_TIME, llm_span

pytestmark = pytest.mark.integration

_BASE_NS = int(BASE_TIME.timestamp()) * 10**9
HOUR_NS = 3600 * 10**9


def spans(first: int, count: int, *, users: int = 5, tenants: int = 2, hours_apart: float = 5.0) -> list[object]:
    """Calls over days and months (BASE_TIME is 2026-11-02 09:30: a month edge is ~29 days later)."""
    return [
        llm_span(
            n,
            user=f"user-{n % users}",
            tenant=f"tenant-{n % tenants}",
            start_ns=_BASE_NS + int(n * hours_apart * HOUR_NS),
            extra={"spanledger.tag.plan": "pro" if n % 3 else "free"},
        )
        for n in range(first, first + count)
    ]


def rollups_match_raw(store: Store) -> dict[str, bool]:
    """For every rollup: its rows, merged, equal a GROUP BY over llm_calls (requests, cost, tokens, traces)."""
    db = store.database
    out = {}
    for table in ROLLUP_TABLES:
        hourly = table in ROLLUP_KEYS
        keys = ROLLUP_KEYS[table] if hourly else DAILY_KEYS[table]
        time_col = "hour" if hourly else "day"
        raw_time = "toStartOfHour(timestamp)" if hourly else "toDate(timestamp)"
        group = ", ".join([time_col, *keys])
        rolled = store.query(
            f"SELECT {group}, sum(requests), sum(cost), sum(input_tokens), uniqMerge(traces) FROM {db}.{table} "
            f"GROUP BY {group} HAVING sum(requests) > 0 ORDER BY {group}"
        ).result_rows
        raw = store.query(
            f"SELECT {raw_time} AS {time_col}, {', '.join(keys)}, count(), sum(ifNull(cost, toDecimal64(0, 12))), "
            f"sum(input_tokens), uniq(trace_id) FROM {db}.{RAW_TABLE} GROUP BY {group} ORDER BY {group}"
        ).result_rows
        out[table] = [tuple(r) for r in rolled] == [tuple(r) for r in raw]
    return out


def test_deleting_a_users_calls_then_rebuilding_leaves_every_rollup_equal_to_the_raw_table(
    store: Store, tmp_path: Path
) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    exporter.export(spans(0, 300))  # 62 days: three month partitions
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    db = store.database
    before = store.query(f"SELECT sum(cost) FROM {db}.usage_by_tenant_daily WHERE tenant_id = 'tenant-1'").result_rows
    gone = store.query(
        f"SELECT sum(ifNull(cost, 0)) FROM {db}.{RAW_TABLE} WHERE user_id = 'user-3' AND tenant_id = 'tenant-1'"
    ).result_rows[0][0]
    store.command(f"DELETE FROM {db}.{RAW_TABLE} WHERE user_id = 'user-3'")
    assert not all(rollups_match_raw(store).values())  # a mutation never reaches the rollups by itself

    report = rebuild(store, users=["user-3"], grace_seconds=0)
    assert report.verified, report.mismatches
    assert report.partitions == ["202611", "202612"]  # (calls after tomorrow are stored at now: clock_skew)
    assert rollups_match_raw(store) == dict.fromkeys(ROLLUP_TABLES, True)
    after = store.query(f"SELECT sum(cost) FROM {db}.usage_by_tenant_daily WHERE tenant_id = 'tenant-1'").result_rows
    assert Decimal(before[0][0]) - Decimal(after[0][0]) == Decimal(gone) > 0  # the tenant lost exactly that spend
    assert lease.held(store) is None  # released


def test_a_rebuild_narrowed_to_days_and_a_tenant_keeps_everything_else(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    exporter.export(spans(0, 200))
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    db = store.database
    first, last = date(2026, 11, 10), date(2026, 11, 20)
    store.command(
        f"DELETE FROM {db}.{RAW_TABLE} WHERE tenant_id = 'tenant-0' AND toDate(timestamp) >= '2026-11-10' "
        "AND toDate(timestamp) < '2026-11-20'"
    )
    report = rebuild(store, start=first, end=last, tenants=["tenant-0"], grace_seconds=0)
    assert report.verified and report.partitions == ["202611"]
    assert rollups_match_raw(store) == dict.fromkeys(ROLLUP_TABLES, True)


def test_inserts_during_a_rebuild_wait_in_the_spool_and_are_counted_once(store: Store, tmp_path: Path) -> None:
    """A lease-aware writer keeps exporting while the rebuild swaps partitions: nothing lost, nothing doubled."""
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=20)
    exporter.export(spans(0, 150, hours_apart=1))
    assert exporter.force_flush(30_000)
    stop, sent = threading.Event(), [150]

    def keep_writing() -> None:
        while not stop.is_set():
            exporter.export(spans(sent[0], 7, hours_apart=1))
            sent[0] += 7
            time.sleep(0.01)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        time.sleep(0.2)
        report = rebuild(store, grace_seconds=0.5)
        paused = exporter.pipeline.flusher.paused_by
    finally:
        stop.set()
        writer.join()
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    assert report.verified, report.mismatches
    count = store.query(f"SELECT count(), uniqExact(span_id) FROM {store.database}.{RAW_TABLE}").result_rows[0]
    assert tuple(count) == (sent[0], sent[0])
    assert rollups_match_raw(store) == dict.fromkeys(ROLLUP_TABLES, True)
    assert paused == "" or ":" in paused  # (the flusher may or may not have been caught holding at that moment)


def test_a_writer_holds_its_inserts_while_the_lease_is_held(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=20)
    lease.take(store)
    try:
        exporter.export(spans(0, 5))
        assert exporter.force_flush(2_000)  # safe in the spool: a flush may say so while the store is held
        assert exporter.pipeline.flusher.paused_by == lease.holder()
        assert store.query(f"SELECT count() FROM {store.database}.{RAW_TABLE}").result_rows[0][0] == 0
    finally:
        lease.release(store)
    assert exporter.force_flush(10_000)
    assert store.query(f"SELECT count() FROM {store.database}.{RAW_TABLE}").result_rows[0][0] == 5
    exporter.shutdown()


def test_a_migration_backfill_counts_calls_inserted_meanwhile_once(store_dsn: str, tmp_path: Path) -> None:
    """Migrations 2 and 3 create daily rollups and fill them from llm_calls while another writer inserts:
    with the old INSERT … SELECT backfill, a row inserted between the view's creation and the backfill was
    counted twice; the rebuild holds the writers, so each is counted once."""
    v1 = Store(store_dsn, create=False)
    db = v1.database
    v1.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    from spanledger._store.schema import bootstrap

    for statement in bootstrap(db):
        v1.command(statement)
    first = migrations(db)[0]
    for statement in first.statements:
        v1.command(statement)
    v1.insert_rows(MIGRATIONS_TABLE, [[1, first.name]], ["version", "name"], ["UInt32", "String"])
    writer = CostExporter(v1, spool_dir=tmp_path / "spool", flush_interval_ms=20)  # already open: no migration
    writer.export(spans(0, 120, hours_apart=2))
    assert writer.force_flush(30_000)
    stop, sent = threading.Event(), [120]

    def keep_writing() -> None:
        while not stop.is_set():
            writer.export(spans(sent[0], 5, hours_apart=2))
            sent[0] += 5
            time.sleep(0.005)

    upgraded = Store(store_dsn, create=False)
    command = upgraded.command
    hooked: list[object] = []

    def command_then_insert(sql: str, *args: object, **kwargs: object) -> object:
        done = command(sql, *args, **kwargs)  # type: ignore[arg-type]
        if sql.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.usage_by_user_daily_mv"):
            # the worst moment: the view exists, the backfill has not run; a call lands now
            extra = spans(100_000, 9, hours_apart=2)  # ids of their own: the other thread counts up from 120
            hooked.extend(extra)
            writer.export(extra)
            wanted = [s.context.span_id for s in extra]  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until they are in (the other thread keeps the spool busy)
                query = f"SELECT count() FROM {db}.{RAW_TABLE} WHERE span_id IN {{ids:Array(UInt64)}}"
                if v1.query(query, {"ids": wanted}).result_rows[0][0] == len(wanted):
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the calls inserted between the view and its backfill never arrived")
        return done

    upgraded.command = command_then_insert  # type: ignore[method-assign]
    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        upgraded.ensure_schema()  # applies migrations 2 to 5 while the writer writes
    finally:
        stop.set()
        thread.join()
        upgraded.command = command  # type: ignore[method-assign]
    assert writer.force_flush(30_000)
    writer.shutdown()
    versions = [r[0] for r in upgraded.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE} ORDER BY 1").result_rows]
    assert versions == [m.version for m in migrations(db)]
    calls = sent[0] + len(hooked)
    assert len(hooked) == 9 and upgraded.query(f"SELECT count() FROM {db}.{RAW_TABLE}").result_rows[0][0] == calls
    for table in DAILY_KEYS:
        got = upgraded.query(f"SELECT sum(requests) FROM {db}.{table}").result_rows[0][0]
        assert got == calls, table
    assert rollups_match_raw(upgraded) == dict.fromkeys(ROLLUP_TABLES, True)


def test_spanledger_rebuild_from_the_command_line(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    dsn = f"chdb://{tmp_path / 'store'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    seed = (
        "import sys\nfrom spanledger import CostExporter, Store\nfrom tests.integration.test_rebuild import spans\n"
        "e = CostExporter(sys.argv[1])\ne.export(spans(0, 80))\nassert e.force_flush(30_000)\ne.shutdown()\n"
        "s = Store(sys.argv[1])\ns.command(f\"DELETE FROM {s.database}.llm_calls WHERE user_id = 'user-2'\")\n"
    )
    subprocess.run([sys.executable, "-c", seed, dsn], env=env, check=True, timeout=120)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "spanledger", *args, "--store", dsn]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    done = cli("rebuild", "--user", "user-2", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["verified"], report["partitions"], report["mismatches"]) == (True, ["202611"], [])
    users = json.loads(cli("users", "--format", "json").stdout)["data"]
    assert {u["user_id"] for u in users} == {"user-0", "user-1", "user-3", "user-4"}
    bad = cli("rebuild", "--from", "yesterday")
    assert (bad.returncode, bad.stderr.count("\n")) == (2, 1) and "bad --from day" in bad.stderr
