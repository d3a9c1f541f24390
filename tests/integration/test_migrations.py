"""Versioned migrations: applied once, in order, and a new rollup is backfilled from existing data."""

from __future__ import annotations

import time
from decimal import Decimal

from spanledger import Ledger, Store
from spanledger._capture.normalize import Normalizer
from spanledger._ingest.codec import to_columns
from spanledger._pricing.pricer import Pricer
from spanledger._store.schema import DAILY_KEYS, MIGRATIONS_TABLE, migrations
from spanledger.testing import llm_span


def test_migrations_2_and_3_backfill_the_daily_rollups_from_calls_stored_under_version_1(store_dsn: str) -> None:
    old = Store(store_dsn, create=False)
    db = old.database
    old.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    old.command(
        f"CREATE TABLE {db}.{MIGRATIONS_TABLE} (version UInt32, name String, applied_at DateTime64(3, 'UTC') "
        "DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    first = migrations(db)[0]
    for statement in first.statements:
        old.command(statement)
    old.insert_rows(MIGRATIONS_TABLE, [[1, first.name]], ["version", "name"], ["UInt32", "String"])
    normalizer, pricer = Normalizer(), Pricer()
    calls = []
    for n in range(50):  # 50 calls an hour apart: three days
        call = normalizer.normalize(
            llm_span(n, user=f"u{n % 3}", start_ns=1_793_000_000 * 10**9 + n * 3600 * 10**9), time.time_ns()
        )
        assert not isinstance(call, str)
        pricer.price(call)
        calls.append(call)
    old.insert_calls(to_columns(calls), dedup_token="v1-data")

    upgraded = Store(store_dsn)  # applies migrations 2 to 5
    versions = [
        r[0] for r in upgraded.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE} ORDER BY version").result_rows
    ]
    assert versions == [m.version for m in migrations(db)]
    for table in DAILY_KEYS:
        daily = upgraded.query(f"SELECT sum(requests), sum(cost), count() FROM {db}.{table}").result_rows[0]
        assert (daily[0], daily[1]) == (50, Decimal("0.0001212") * 50), table
    # one row per key and day: 3 days x 3 users (one model); 3 days x 1 tenant
    counts = {
        t: upgraded.query(f"SELECT count() FROM (SELECT * FROM {db}.{t} FINAL)").result_rows[0][0] for t in DAILY_KEYS
    }
    assert counts == {"usage_by_user_daily": 9, "usage_by_user_model_daily": 9, "usage_by_tenant_daily": 3}
    assert Store(store_dsn).ensure_schema() == []  # nothing left to apply, nothing applied twice
    rows = Ledger(upgraded).users().rows  # the whole history: whole days come from the daily rollup
    assert sorted((r.user_id, r.usage.requests) for r in rows) == [("u0", 17), ("u1", 17), ("u2", 16)]
    assert sum(r.usage.cost for r in rows) == Decimal("0.0001212") * 50
    assert {(r.user_id, r.distinct_models, r.top_model) for r in rows} == {
        (f"u{n}", 1, rows[0].top_model) for n in range(3)
    }
    (tenant,) = Ledger(upgraded).tenants().rows
    assert (tenant.usage.requests, tenant.usage.cost, tenant.active_users) == (50, Decimal("0.0001212") * 50, 3)


def test_tables_read_a_few_users_at_a_time_have_small_granules(store_dsn: str) -> None:
    """``llm_calls`` and the per-user-model daily rollup are read by ranges of a few users (a page, one
    user): their parts are written with 1,024-row granules, the others keep ClickHouse's 8,192."""
    store = Store(store_dsn)
    calls = []
    normalizer = Normalizer()
    for n in range(3000):  # one user-model pair per call: more rows than one small granule
        call = normalizer.normalize(llm_span(n, user=f"u{n}", start_ns=1_793_000_000 * 10**9), time.time_ns())
        assert not isinstance(call, str)
        calls.append(call)
    store.insert_calls(to_columns(calls), dedup_token="granules")
    marks = dict(
        store.query(
            "SELECT table, sum(marks) FROM system.parts WHERE database = {db:String} AND active GROUP BY table",
            {"db": store.database},
        ).result_rows
    )
    assert marks["llm_calls"] >= 3 and marks["usage_by_user_model_daily"] >= 3  # 3000 rows / 1024 (+ final)
    assert marks["usage_by_user_daily"] == 2  # 3000 rows in one 8,192-row granule (+ the final mark)


def test_migration_5_adds_a_metric_to_every_rollup_of_a_version_3_store(store_dsn: str) -> None:
    """A store made before ``incomplete_requests`` existed: its rollups get the column and their views the new
    query; calls stored before count 0 there, calls stored after are counted, and every query still works."""
    old = Store(store_dsn, create=False)
    db = old.database
    old.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    old.command(
        f"CREATE TABLE {db}.{MIGRATIONS_TABLE} (version UInt32, name String, applied_at DateTime64(3, 'UTC') "
        "DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    for migration in migrations(db)[:3]:  # as version 3 wrote them: without the metric
        for statement in migration.statements:
            without = "\n".join(line for line in statement.split("\n") if "incomplete_requests" not in line)
            old.command(without)
        old.insert_rows(
            MIGRATIONS_TABLE, [[migration.version, migration.name]], ["version", "name"], ["UInt32", "String"]
        )
    assert "incomplete_requests" not in old.query(f"SHOW CREATE TABLE {db}.usage_by_user_daily").result_rows[0][0]
    normalizer, pricer = Normalizer(), Pricer()

    def calls(first: int, flags: list[str]) -> list[object]:
        out = []
        for n in range(first, first + 4):
            call = normalizer.normalize(llm_span(n), time.time_ns())
            assert not isinstance(call, str)
            pricer.price(call)
            call.flags.extend(flags)
            out.append(call)
        return out

    old.insert_calls(to_columns(calls(0, ["usage_incomplete"])), dedup_token="before")  # type: ignore[arg-type]
    upgraded = Store(store_dsn)  # applies migrations 4 and 5
    upgraded.insert_calls(to_columns(calls(10, ["usage_incomplete"])), dedup_token="after")  # type: ignore[arg-type]
    from spanledger._store.schema import ROLLUP_TABLES

    for table in ROLLUP_TABLES:
        got = upgraded.query(f"SELECT sum(requests), sum(incomplete_requests) FROM {db}.{table}").result_rows[0]
        assert tuple(got) == (8, 4), table  # the 4 stored before the migration count 0: no rebuild was run
    page = Ledger(upgraded).users()
    assert [(r.user_id, r.usage.requests, r.usage.incomplete_requests) for r in page.rows] == [("alice", 8, 4)]
