"""The schema for a ClickHouse cluster: ``ON CLUSTER`` DDL with Replicated engines and Distributed tables.

Derived from :func:`spanledger._schema.migrations`, so a cluster always gets the same columns, keys and
materialized views as the embedded store. Each table ``t`` becomes

* ``t_local`` — ``Replicated*MergeTree`` on every replica of every shard; the materialized views read
  ``llm_calls_local`` and write the ``*_local`` rollups, so each shard aggregates its own rows;
* ``t`` — a ``Distributed`` table over ``t_local``, under the name spanledger already uses, so the
  exporter inserts (sharded by tenant and user) and ``Ledger`` queries across shards with only the DSN
  changed.

Rollups hold mergeable states (sums, min/max, ``uniq`` states) and every query groups by its key, so
answers read through the Distributed tables are the same as on a single server.
"""

from __future__ import annotations

import re

from .._customers.schema import CUSTOMERS_TABLE
from .._errors import ConfigError
from .schema import MIGRATIONS_TABLE, RAW_TABLE, bootstrap, migrations
from .tool_schema import TOOL_TABLE

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CLUSTER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) \(", re.MULTILINE)
_CREATE_VIEW = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+) TO (\w+)\.(\w+) AS\b")
_ENGINE = re.compile(r"^ENGINE = (\w+)(?:\((.*)\))?\s*$", re.MULTILINE)
SHARDING_KEY = "cityHash64(tenant_id, user_id)"
"""How ``llm_calls`` rows are spread over shards: one user's calls stay on one shard."""
SHARDED = (RAW_TABLE, TOOL_TABLE, CUSTOMERS_TABLE)
"""The tables spanledger inserts into (the others are filled by views on each shard): sharded by
:data:`SHARDING_KEY`, so a user's calls, tool executions and profile versions stay on one shard."""
ZOOKEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"


def _local(name: str) -> str:
    return f"{name}_local"


def _table(statement: str, db: str, cluster: str, tables: set[str]) -> list[str]:
    on_cluster = f"ON CLUSTER `{cluster}`"
    match = _CREATE_TABLE.match(statement)
    engine = _ENGINE.search(statement)
    if match is None or engine is None:
        raise ValueError(f"unexpected table statement in the schema: {statement[:80]!r}")
    name = match.group(2)
    tables.add(name)
    args = f", {engine.group(2)}" if engine.group(2) else ""  # ReplacingMergeTree(updated_at) keeps its version
    local = statement.replace(
        match.group(0), f"CREATE TABLE IF NOT EXISTS {db}.{_local(name)} {on_cluster} (", 1
    ).replace(engine.group(0), f"ENGINE = Replicated{engine.group(1)}('{ZOOKEEPER_PATH}', '{{replica}}'{args})", 1)
    # Replicated tables deduplicate retried blocks through Keeper, with their own window setting.
    local = local.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
    key = f", {SHARDING_KEY}" if name in SHARDED else ""  # rollups are read-only through Distributed
    distributed = (
        f"CREATE TABLE IF NOT EXISTS {db}.{name} {on_cluster} AS {db}.{_local(name)}\n"
        f"ENGINE = Distributed('{cluster}', {db}, {_local(name)}{key})"
    )
    return [local, distributed]


def _view(statement: str, db: str, on_cluster: str, tables: set[str]) -> str:
    match = _CREATE_VIEW.match(statement)
    if match is None:
        raise ValueError(f"unexpected view statement in the schema: {statement[:80]!r}")
    head = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{match.group(2)} {on_cluster} TO {db}.{_local(match.group(4))} AS"
    )
    body = statement[match.end() :]
    for table in tables:  # the view reads the shard's own rows, never the Distributed table
        body = re.sub(rf"\b{db}\.{table}\b", f"{db}.{_local(table)}", body)
    return head + body


_ALTER = re.compile(r"^ALTER TABLE (\w+)\.(\w+) ")


def _alter(statement: str, db: str, on_cluster: str, tables: set[str]) -> list[str]:
    """A column added to a table: to its local tables and to the Distributed table over them; a view's new
    query: on every shard, reading the shard's own rows."""
    match = _ALTER.match(statement)
    if match is None:
        raise ValueError(f"unexpected ALTER statement in the schema: {statement[:80]!r}")
    name, rest = match.group(2), statement[match.end() :]
    if name in tables:
        return [
            f"ALTER TABLE {db}.{_local(name)} {on_cluster} {rest}",
            f"ALTER TABLE {db}.{name} {on_cluster} {rest}",
        ]
    for table in tables:  # a materialized view: it reads and writes the shard's local tables
        rest = re.sub(rf"\b{db}\.{table}\b", f"{db}.{_local(table)}", rest)
    return [f"ALTER TABLE {db}.{name} {on_cluster} {rest}"]


def cluster_statements(db: str, cluster: str) -> list[str]:
    """Every statement, in order, to create the ledger on ``cluster`` in database ``db``."""
    if not _NAME.match(db):
        raise ConfigError(f"bad database name {db!r}: letters, digits and _ only")
    if not _CLUSTER.match(cluster):
        raise ConfigError(f"bad cluster name {cluster!r}: letters, digits, _ . and - only")
    on_cluster = f"ON CLUSTER `{cluster}`"
    out = [f"CREATE DATABASE IF NOT EXISTS {db} {on_cluster}"]
    out.append(
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} {on_cluster} (version UInt32, name String, "
        f"applied_at DateTime64(3, 'UTC') DEFAULT now64(3))\n"
        f"ENGINE = ReplicatedReplacingMergeTree('{ZOOKEEPER_PATH}', '{{replica}}') ORDER BY version"
    )
    tables: set[str] = set()
    versions: list[str] = []
    out.extend(_table(bootstrap(db)[2], db, cluster, tables))  # the maintenance lease, seen from every node
    for migration in migrations(db):
        for statement in migration.statements:
            if statement.startswith("CREATE TABLE"):
                out.extend(_table(statement, db, cluster, tables))
            elif statement.startswith("CREATE MATERIALIZED VIEW"):
                out.append(_view(statement, db, on_cluster, tables))
            elif statement.startswith("ALTER TABLE"):
                out.extend(_alter(statement, db, on_cluster, tables))
            elif statement.startswith("INSERT INTO"):
                continue  # a backfill: a new cluster has nothing to backfill
            else:
                raise ValueError(f"no cluster form for schema statement {statement[:80]!r}")
        name = migration.name.replace("\\", "\\\\").replace("'", "\\'")
        versions.append(f"({migration.version}, '{name}')")
    # Recorded as applied, so ``Store`` (which creates what is missing) leaves the cluster schema alone.
    out.append(f"INSERT INTO {db}.{MIGRATIONS_TABLE} (version, name) VALUES {', '.join(versions)}")
    return out


def cluster_ddl(db: str, cluster: str) -> str:
    """The cluster schema as one SQL script (what ``spanledger schema --cluster NAME`` prints)."""
    header = (
        f"-- spanledger schema for the ClickHouse cluster {cluster!r} (run once, e.g. with clickhouse-client "
        "--multiquery).\n-- Needs the {shard} and {replica} macros on every server. Point spanledger at any "
        f"node: http://user:pass@host:8123/{db}\n"
    )
    return header + ";\n\n".join(cluster_statements(db, cluster)) + ";\n"
