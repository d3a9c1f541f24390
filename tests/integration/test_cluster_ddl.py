"""``ON CLUSTER`` DDL: every statement parses with ClickHouse's own parser, and the shape is right."""

from __future__ import annotations

import re

import pytest

from spanledger import ConfigError, Store, StoreError
from spanledger._customers.schema import CUSTOMERS_TABLE
from spanledger._store.cluster import SHARDED, SHARDING_KEY, cluster_ddl, cluster_statements
from spanledger._store.schema import KEYS_TABLE, RAW_TABLE, ROLLUP_TABLES, migrations
from spanledger._store.tool_schema import TOOL_ROLLUP, TOOL_TABLE

pytestmark = pytest.mark.integration


def test_every_statement_parses_with_clickhouses_parser(store: Store) -> None:
    statements = cluster_statements("ledger", "prod-eu.1")
    engines = []
    for statement in statements:
        formatted = store.query("SELECT formatQuery({q:String})", {"q": statement}).result_rows[0][0]
        assert formatted.split()[:2] == statement.split()[:2]
        if not statement.startswith("INSERT"):
            assert "ON CLUSTER `prod-eu.1`" in formatted
        engines += re.findall(r"ENGINE = (\w+)", formatted)
    replicated = ["ReplicatedAggregatingMergeTree", "ReplicatedMergeTree", "ReplicatedReplacingMergeTree"]
    assert sorted(set(engines)) == ["Distributed", *replicated]
    with pytest.raises(StoreError, match="Syntax error"):  # the parser does reject broken DDL
        store.query("SELECT formatQuery({q:String})", {"q": statements[2].replace(")\nENGINE", "\nENGINE", 1)})


def test_replicated_local_tables_distributed_tables_and_local_views() -> None:
    statements = cluster_statements("ledger", "prod")
    tables = [RAW_TABLE, *ROLLUP_TABLES, KEYS_TABLE, TOOL_TABLE, TOOL_ROLLUP]
    assert all(" ON CLUSTER `prod`" in s for s in statements[:-1])
    for table in tables:
        (local,) = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS ledger.{table}_local ")]
        assert re.search(r"ENGINE = Replicated(Aggregating)?MergeTree\('/clickhouse/tables/\{shard\}/", local)
        assert "non_replicated_deduplication_window" not in local and "replicated_deduplication_window" in local
        (dist,) = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS ledger.{table} ON")]
        key = f", {SHARDING_KEY}" if table in (RAW_TABLE, TOOL_TABLE) else ""
        assert dist.endswith(f"ENGINE = Distributed('prod', ledger, {table}_local{key})")
    # profiles: the newest version kept on every replica, one customer's versions on one shard
    (local,) = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS ledger.{CUSTOMERS_TABLE}_local ")]
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', " in local
    )
    assert local.split("ENGINE = ")[1].startswith("ReplicatedReplacingMergeTree(") and "', updated_at)\n" in local
    (dist,) = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS ledger.{CUSTOMERS_TABLE} ON")]
    assert dist.endswith(f"ENGINE = Distributed('prod', ledger, {CUSTOMERS_TABLE}_local, {SHARDING_KEY})")
    assert set(SHARDED) == {RAW_TABLE, TOOL_TABLE, CUSTOMERS_TABLE}
    views = [s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) == len(ROLLUP_TABLES) + 3  # and call_keys', the tool rollup's, tool_calls' keys
    # a metric added later: the column on every local and Distributed rollup, every view's query on every shard
    added = [s for s in statements if "ADD COLUMN IF NOT EXISTS incomplete_requests" in s]
    assert len(added) == 2 * len(ROLLUP_TABLES)
    modified = [s for s in statements if " MODIFY QUERY" in s]
    assert len(modified) == len(ROLLUP_TABLES)
    assert all("FROM ledger.llm_calls_local AS r" in s and " ON CLUSTER `prod`" in s for s in modified)
    for view in views:
        assert re.search(r"FROM ledger\.(llm|tool)_calls_local\b", view) and re.search(
            r" TO ledger\.\w+_local AS", view
        )
    # the same columns and keys as the single-server schema, table for table
    single = [s for m in migrations("ledger") for s in m.statements if s.startswith("CREATE TABLE")]
    for statement in single:
        body = statement[statement.index("(") : statement.index("ENGINE")]
        assert any(body in s for s in statements)
    assert statements[-1].startswith("INSERT INTO ledger.schema_migrations (version, name) VALUES (1, ")
    assert "(2, 'daily per-user rollup for long windows')" in statements[-1]
    assert "(3, 'daily per-user-model and per-tenant rollups')" in statements[-1]
    assert not any(s.startswith("INSERT INTO ledger.usage_by_") for s in statements)  # nothing to backfill
    # the projection stays on the replicated table; a Distributed table keeps none (ClickHouse copies
    # projections only to *MergeTree engines in CREATE … AS)
    (model_local,) = [
        s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS ledger.usage_by_user_model_daily_local")
    ]
    assert "PROJECTION by_user (SELECT * ORDER BY tenant_id, user_id, day, provider, model)" in model_local
    assert "deduplicate_merge_projection_mode = 'rebuild'" in model_local


def test_names_are_checked_and_the_script_is_printable() -> None:
    with pytest.raises(ConfigError, match="cluster"):
        cluster_statements("ledger", "prod`; DROP DATABASE x; --")
    with pytest.raises(ConfigError, match="database"):
        cluster_statements("ledger; x", "prod")
    script = cluster_ddl("spanledger", "prod")
    assert script.startswith("-- spanledger schema") and script.rstrip().endswith(";")
    assert script.count(";\n\n") == len(cluster_statements("spanledger", "prod")) - 1
