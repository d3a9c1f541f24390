"""The ClickHouse schema: the raw ``llm_calls`` table, hourly rollups kept by materialized views, and
versioned migrations.

Rollup tables are ``AggregatingMergeTree`` with ``SimpleAggregateFunction(sum|min|max)`` columns and
``uniq`` states, so rows with the same key may be merged at any time without changing any answer.
Queries still ``GROUP BY`` the key, because merges are never guaranteed to have happened.

Every table keeps ``non_replicated_deduplication_window`` > 0 and inserts carry a deduplication token
with ``deduplicate_blocks_in_dependent_materialized_views = 1``: a retried block is dropped by the raw
table *and* by every rollup, instead of being counted twice in the rollups.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._billing.schema import billing_tables
from .._customers.schema import customers_ddl
from .._model.call import CALL_COLUMNS
from .._model.usage import METRICS
from .tool_schema import tool_ddl

RAW_TABLE = "llm_calls"
USER_ROLLUP = "usage_by_user_hourly"
USER_MODEL_ROLLUP = "usage_by_user_model_hourly"
TENANT_ROLLUP = "usage_by_tenant_hourly"
USER_DAILY_ROLLUP = "usage_by_user_daily"
USER_MODEL_DAILY_ROLLUP = "usage_by_user_model_daily"
TENANT_DAILY_ROLLUP = "usage_by_tenant_daily"
KEYS_TABLE = "call_keys"
MIGRATIONS_TABLE = "schema_migrations"
MAINTENANCE_TABLE = "maintenance"
DEDUP_WINDOW_HOURS = 48
"""How long ``call_keys`` remembers a stored call (``SPANLEDGER_DEDUP_WINDOW_HOURS`` changes it)."""
DEDUP_WINDOW = 10_000
POINT_READS = "index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 65536"
"""Settings of the tables read a few users at a time (a page's users, one user's calls): a user's rows
then cost ~1k rows of each column to decompress instead of 8k. Measured at 10M calls: filling a page of
50 users 2.2x faster, a light user's detail 2x faster, ``llm_calls`` 4.7 % larger on disk."""

RAW_COLUMNS: tuple[tuple[str, str], ...] = tuple((c.name, c.ch_type) for c in CALL_COLUMNS)
"""(name, ClickHouse type) of every column the pipeline writes, in insert order (from :class:`LLMCall`)."""

_CODECS = {
    "timestamp": "CODEC(DoubleDelta, ZSTD(1))",
    "duration_us": "CODEC(T64, ZSTD(1))",
    "input_tokens": "CODEC(T64, ZSTD(1))",
    "output_tokens": "CODEC(T64, ZSTD(1))",
    "cache_read_tokens": "CODEC(T64, ZSTD(1))",
    "cache_write_tokens": "CODEC(T64, ZSTD(1))",
    "reasoning_tokens": "CODEC(T64, ZSTD(1))",
    "response_id": "CODEC(ZSTD(3))",
    "prompt": "CODEC(ZSTD(3))",
    "completion": "CODEC(ZSTD(3))",
}

_METRICS = "\n" + ",\n".join(f"    {m.name} {m.rollup_type}" for m in METRICS)
"""The metric columns of every rollup, from :class:`~spanledger._model.usage.Usage`."""
RAW_METRICS: dict[str, str] = {m.name: m.raw for m in METRICS}
"""Each rollup metric computed from the raw table (aliased ``r``, so that the aliases, which reuse the
column names, never shadow a column). The materialized views and the ledger's exact-window queries
both use these, so a rollup and the raw table always agree."""
METRIC_SELECT = "\n" + ",\n".join(f"    {expr} AS {name}" for name, expr in RAW_METRICS.items())
USERS_STATE = "uniqStateIf(r.user_id, r.user_id != '')"
"""Distinct attributed users, as the per-tenant rollups keep them: for their views and the ledger."""

ROLLUP_KEYS = {
    USER_ROLLUP: ("tenant_id", "user_id"),
    USER_MODEL_ROLLUP: ("tenant_id", "user_id", "provider", "model"),
    TENANT_ROLLUP: ("tenant_id",),
}
"""The hourly rollups (keyed by hour, these and the tags)."""
DAILY_KEYS = {
    USER_DAILY_ROLLUP: ("tenant_id", "user_id"),
    USER_MODEL_DAILY_ROLLUP: ("tenant_id", "user_id", "provider", "model"),
    TENANT_DAILY_ROLLUP: ("tenant_id",),
}
"""The daily rollups (keyed by day and these, no tags)."""
DAILY_OF = {
    USER_ROLLUP: USER_DAILY_ROLLUP,
    USER_MODEL_ROLLUP: USER_MODEL_DAILY_ROLLUP,
    TENANT_ROLLUP: TENANT_DAILY_ROLLUP,
}
"""The daily rollup that serves the whole days of a window for each hourly rollup."""
ROLLUP_TABLES = (*ROLLUP_KEYS, *DAILY_KEYS)
"""Every table a materialized view fills from ``llm_calls``."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    backfill: tuple[str, ...] = ()
    """Rollups the migration creates that must be filled from ``llm_calls``: rebuilt (``rebuild.py``), so that
    rows other writers insert meanwhile are counted once; ``spanledger schema`` prints them as plain
    ``INSERT … SELECT`` statements."""


def bootstrap(db: str) -> list[str]:
    """What exists before any migration: the database, the migrations table, the maintenance lease table."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version",
        f"""CREATE TABLE IF NOT EXISTS {db}.{MAINTENANCE_TABLE} (
    name String,
    holder String,
    until DateTime64(3, 'UTC'),
    set_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (name, set_at)
TTL toDateTime(set_at) + INTERVAL 30 DAY""",
    ]


def backfill_statement(db: str, table: str) -> str:
    """A rollup filled from every stored call in one statement (for a script; the store uses a rebuild)."""
    return f"INSERT INTO {db}.{table} ({', '.join(rollup_columns(table))})\n{rollup_select(db, table)}"


def _raw_table(db: str) -> str:
    cols = ",\n    ".join(f"{name} {ctype} {_CODECS.get(name, '')}".rstrip() for name, ctype in RAW_COLUMNS)
    return f"""CREATE TABLE IF NOT EXISTS {db}.{RAW_TABLE} (
    {cols},
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), tenant_id, user_id, timestamp)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}, {POINT_READS}"""


def _key_columns(keys: tuple[str, ...]) -> str:
    """A rollup's key columns, one DDL line each."""
    return "".join(f"    {k} {'LowCardinality(String)' if k in ('provider', 'model') else 'String'},\n" for k in keys)


def _users(keys: tuple[str, ...]) -> tuple[str, str]:
    """The distinct-users column and its view expression, which only the per-tenant rollups keep."""
    if keys != ("tenant_id",):
        return "", ""
    return "    users AggregateFunction(uniq, String),\n", f"    {USERS_STATE} AS users,\n"


def _rollup(db: str, table: str) -> tuple[str, str]:
    keys = ROLLUP_KEYS[table]
    key_cols, extra = _key_columns(keys), _users(keys)[0]
    create = f"""CREATE TABLE IF NOT EXISTS {db}.{table} (
    hour DateTime('UTC'),
{key_cols}    tags Map(LowCardinality(String), String),
{extra}{_METRICS.strip(chr(10))}
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, {", ".join(keys)}, tags)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"""
    view = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{table}_mv TO {db}.{table} AS\n{rollup_select(db, table)}"
    return create, view


def rollup_columns(table: str) -> list[str]:
    """A rollup's columns in table order: its time column, keys, (tags), (users), the metrics."""
    hourly = table in ROLLUP_KEYS
    keys = ROLLUP_KEYS[table] if hourly else DAILY_KEYS[table]
    users = ["users"] if keys == ("tenant_id",) else []
    return ["hour" if hourly else "day", *keys, *(["tags"] if hourly else []), *users, *RAW_METRICS]


def rollup_select(db: str, table: str, where: str = "") -> str:
    """The SELECT that computes a rollup's rows from ``llm_calls`` (its materialized view's query; with
    ``where``, a condition on the raw rows ``r``, what a backfill or a rebuild inserts)."""
    hourly = table in ROLLUP_KEYS
    keys = ROLLUP_KEYS[table] if hourly else DAILY_KEYS[table]
    _, users = _users(keys)
    time = "toStartOfHour(timestamp) AS hour" if hourly else "toDate(timestamp) AS day"
    tags = "\n    mapSort(tags) AS tags," if hourly else ""
    group = ", ".join(["hour" if hourly else "day", *keys, *(["tags"] if hourly else [])])
    condition = f"\nWHERE {where}" if where else ""
    return f"""SELECT
    {time},
    {", ".join(keys)},{tags}
{users}{METRIC_SELECT.strip(chr(10))}
FROM {db}.{RAW_TABLE} AS r{condition}
GROUP BY {group}"""


def _daily_rollup(db: str, table: str = USER_DAILY_ROLLUP) -> tuple[str, ...]:
    """Per-day totals without tags (create, materialized view): long windows read one row per key and day.

    With many users an hourly rollup holds nearly one row per call; a 30-day ranking over the daily
    rollup reads about 24 times fewer rows. Each is created by a migration that then fills it from the
    raw table by a rebuild (:attr:`Migration.backfill`).

    ``usage_by_user_model_daily`` also keeps a projection ordered by tenant and user: one page of users,
    or one user, is a few granules of it instead of every granule of the day-ordered table (the heaviest
    users have rows in every granule of a day), and small granules (:data:`POINT_READS`) for it.
    """
    keys = DAILY_KEYS[table]
    key_cols, extra = _key_columns(keys), _users(keys)[0]
    projection, settings = "", ""
    if table == USER_MODEL_DAILY_ROLLUP:
        projection = f",\n    PROJECTION by_user (SELECT * ORDER BY tenant_id, user_id, day, {', '.join(keys[2:])})"
        # a projection on an AggregatingMergeTree must say how merges keep it (ClickHouse >= 24.8)
        settings = f"deduplicate_merge_projection_mode = 'rebuild', {POINT_READS}, "
    create = f"""CREATE TABLE IF NOT EXISTS {db}.{table} (
    day Date,
{key_cols}{extra}{_METRICS.strip(chr(10))}{projection}
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, {", ".join(keys)})
SETTINGS {settings}non_replicated_deduplication_window = {DEDUP_WINDOW}"""
    mv = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{table}_mv TO {db}.{table} AS\n{rollup_select(db, table)}"
    return create, mv


def _keys_table(db: str) -> tuple[str, str, str]:
    """``call_keys`` (create, materialized view, backfill): the ids of the calls stored in the last
    :data:`DEDUP_WINDOW_HOURS`, ordered by span id, so that the flusher can tell which calls of a block are
    already stored with one point look-up per call instead of a range of ``llm_calls`` per user.

    256-row granules: a block of 2,000 fresh calls reads at most 2,000 small granules whatever the size of
    the table. Filled by a materialized view from ``llm_calls``, so it holds every writer's calls; rows
    leave by TTL. A key counted twice here is harmless (the table is only asked whether a key exists), so
    the backfill may race with inserts.
    """
    create = f"""CREATE TABLE IF NOT EXISTS {db}.{KEYS_TABLE} (
    span_id UInt64,
    trace_id UInt128,
    inserted_at DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree
ORDER BY span_id
TTL inserted_at + INTERVAL {DEDUP_WINDOW_HOURS} HOUR
SETTINGS index_granularity = 256, non_replicated_deduplication_window = {DEDUP_WINDOW}"""
    view = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{KEYS_TABLE}_mv TO {db}.{KEYS_TABLE} AS\n"
        f"SELECT span_id, trace_id FROM {db}.{RAW_TABLE}"
    )
    backfill = (
        f"INSERT INTO {db}.{KEYS_TABLE} (span_id, trace_id, inserted_at)\n"
        f"SELECT span_id, trace_id, toDateTime(inserted_at) FROM {db}.{RAW_TABLE}\n"
        f"WHERE inserted_at >= now() - INTERVAL {DEDUP_WINDOW_HOURS} HOUR"
    )
    return create, view, backfill


def migrations(db: str) -> list[Migration]:
    """Every schema version in order; each statement is idempotent (``IF NOT EXISTS``) or a backfill."""
    statements: list[str] = [_raw_table(db)]
    for table in (USER_ROLLUP, USER_MODEL_ROLLUP, TENANT_ROLLUP):
        statements.extend(_rollup(db, table))
    return [
        Migration(1, "llm_calls with hourly user, user-model and tenant rollups", tuple(statements)),
        Migration(2, "daily per-user rollup for long windows", _daily_rollup(db), backfill=(USER_DAILY_ROLLUP,)),
        Migration(
            3,
            "daily per-user-model and per-tenant rollups",
            _daily_rollup(db, USER_MODEL_DAILY_ROLLUP) + _daily_rollup(db, TENANT_DAILY_ROLLUP),
            backfill=(USER_MODEL_DAILY_ROLLUP, TENANT_DAILY_ROLLUP),
        ),
        Migration(4, "call_keys: recently stored calls, so a re-delivered call is counted once", _keys_table(db)),
        Migration(5, "incomplete_requests in every rollup", _added_metric(db, "incomplete_requests")),
        Migration(6, "budgets, fired alerts and their webhook deliveries", _budget_tables(db)),
        Migration(7, "billing: markups, revenue, repricings", billing_tables(db)),
        Migration(8, "privacy: forget audit records and unfinished anonymizations", _privacy_tables(db)),
        Migration(
            9,
            "customer profiles, tool calls and their hourly rollup",
            (*customers_ddl(db), *tool_ddl(db, keys_table=KEYS_TABLE, dedup_window=DEDUP_WINDOW)),
        ),
    ]


AUDIT_TABLE = "privacy_audit"
"""One row when a forget starts and one when it is done: when, mode, rows, a keyed hash of the id — never the id."""
JOBS_TABLE = "privacy_jobs"
"""An anonymization under way: the pseudonym it gives the id, so a run cut short finishes with the same one; the
row is deleted when it is done."""


def _privacy_tables(db: str) -> tuple[str, str]:
    audit = f"""CREATE TABLE IF NOT EXISTS {db}.{AUDIT_TABLE} (
    at DateTime64(3, 'UTC') DEFAULT now64(3),
    id_hash String,
    tenant_scope String,
    mode LowCardinality(String),
    state LowCardinality(String),
    rows UInt64,
    detail String,
    holder String
)
ENGINE = MergeTree
ORDER BY (id_hash, at)"""
    jobs = f"""CREATE TABLE IF NOT EXISTS {db}.{JOBS_TABLE} (
    id_hash String,
    tenant_scope String,
    pseudonym String,
    started_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (id_hash, tenant_scope)"""
    return audit, jobs


def _added_metric(db: str, name: str) -> tuple[str, ...]:
    """A usage metric added after the rollups were created: the column in every rollup (after the metric
    before it, so that the tables keep :class:`Usage`'s order), then every view's query. Between the two
    statements inserts go on with the old query, which leaves the new column 0 for them; earlier rows
    stay 0 too unless the rollups are rebuilt."""
    metric = next(m for m in METRICS if m.name == name)
    before = list(RAW_METRICS)[list(RAW_METRICS).index(name) - 1]
    out = [
        f"ALTER TABLE {db}.{table} ADD COLUMN IF NOT EXISTS {name} {metric.rollup_type} AFTER {before}"
        for table in ROLLUP_TABLES
    ]
    out += [f"ALTER TABLE {db}.{table}_mv MODIFY QUERY\n{rollup_select(db, table)}" for table in ROLLUP_TABLES]
    return tuple(out)


BUDGETS_TABLE = "budgets"
ALERTS_TABLE = "budget_alerts"
DELIVERIES_TABLE = "alert_deliveries"


def _budget_tables(db: str) -> tuple[str, ...]:
    """Budgets, fired alerts and webhook deliveries (``spanledger._budgets``): small tables shared by every
    process that writes to the store. A budget or a delivery is a history of rows, the latest by
    ``updated_at`` being the current one (no row is ever changed); an alert is one row, claimed by its first
    writer with a deduplication token (its id), so it fires once whatever the number of processes."""
    budgets = f"""CREATE TABLE IF NOT EXISTS {db}.{BUDGETS_TABLE} (
    id String,
    scope LowCardinality(String),
    tenant_id String,
    user_id String,
    tag_key String,
    tag_value String,
    period LowCardinality(String),
    limit_usd Decimal(38, 12),
    hard UInt8,
    timezone LowCardinality(String),
    starts_at Nullable(DateTime64(6, 'UTC')),
    ends_at Nullable(DateTime64(6, 'UTC')),
    alert_at Array(UInt16),
    deleted UInt8,
    updated_at DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (id, updated_at)"""
    alerts = f"""CREATE TABLE IF NOT EXISTS {db}.{ALERTS_TABLE} (
    id String,
    kind LowCardinality(String),
    rule String,
    tenant_id String,
    user_id String,
    period_start DateTime64(6, 'UTC'),
    spent Decimal(38, 12),
    threshold Decimal(38, 12),
    body String,
    holder String,
    fired_at DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY id
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"""
    deliveries = f"""CREATE TABLE IF NOT EXISTS {db}.{DELIVERIES_TABLE} (
    alert_id String,
    url String,
    state LowCardinality(String),
    attempts UInt32,
    next_at DateTime64(6, 'UTC'),
    status UInt16,
    error String,
    holder String,
    updated_at DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (alert_id, updated_at)
TTL toDateTime(updated_at) + INTERVAL 90 DAY"""
    return budgets, alerts, deliveries


def schema_ddl(db: str) -> str:
    """The whole schema as a SQL script (what ``spanledger schema`` prints)."""
    parts = bootstrap(db)
    for migration in migrations(db):
        first, *rest = migration.statements
        parts.append(f"-- migration {migration.version}: {migration.name}\n{first}")
        parts.extend(rest)
        parts.extend(backfill_statement(db, table) for table in migration.backfill)
    return ";\n\n".join(parts) + ";\n"
