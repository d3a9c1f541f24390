"""The ``tool_calls`` table and its hourly rollup per (tenant, user, tool), kept by a materialized view.

Tool executions are stored apart from LLM calls (see :mod:`spanledger._model.tool`): no LLM rollup, query or
price ever reads them. Like ``llm_calls``, the table deduplicates a retried block (and so does its rollup),
and a second materialized view adds each execution's ids to ``call_keys``, so that a tool span delivered
again after a crash or a client's retry is stored once, whichever process stored it first.
"""

from __future__ import annotations

from .._model.rows import TOOL_METRICS
from .._model.tool import TOOL_COLUMNS

TOOL_TABLE = "tool_calls"
TOOL_ROLLUP = "tool_usage_hourly"
TOOL_KEYS = ("tenant_id", "user_id", "tool_name")
"""The rollup's key columns (after the hour)."""
TOOL_RAW_METRICS: dict[str, str] = {m.name: m.raw for m in TOOL_METRICS}
"""Each rollup metric computed from ``tool_calls`` (aliased ``r``): for the view and the exact-window queries."""


def tool_rollup_select(db: str, where: str = "") -> str:
    """The SELECT that computes the rollup's rows from ``tool_calls`` (its view's query; with ``where``, a
    condition on the raw rows ``r``)."""
    metrics = ",\n    ".join(f"{expr} AS {name}" for name, expr in TOOL_RAW_METRICS.items())
    condition = f"\nWHERE {where}" if where else ""
    return f"""SELECT
    toStartOfHour(timestamp) AS hour,
    {", ".join(TOOL_KEYS)},
    {metrics}
FROM {db}.{TOOL_TABLE} AS r{condition}
GROUP BY hour, {", ".join(TOOL_KEYS)}"""


def tool_ddl(db: str, *, keys_table: str, dedup_window: int) -> tuple[str, ...]:
    """The table, the rollup and its view, and the view that adds each stored execution's ids to
    ``keys_table`` (``call_keys``: the re-delivery look-up)."""
    columns = ",\n    ".join(f"{c.name} {c.ch_type}" for c in TOOL_COLUMNS)
    table = f"""CREATE TABLE IF NOT EXISTS {db}.{TOOL_TABLE} (
    {columns},
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), tenant_id, user_id, timestamp)
SETTINGS non_replicated_deduplication_window = {dedup_window}"""
    metric_columns = ",\n    ".join(f"{m.name} {m.rollup_type}" for m in TOOL_METRICS)
    rollup = f"""CREATE TABLE IF NOT EXISTS {db}.{TOOL_ROLLUP} (
    hour DateTime('UTC'),
    tenant_id String,
    user_id String,
    tool_name LowCardinality(String),
    {metric_columns}
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, {", ".join(TOOL_KEYS)})
SETTINGS non_replicated_deduplication_window = {dedup_window}"""
    view = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{TOOL_ROLLUP}_mv TO {db}.{TOOL_ROLLUP} AS\n{tool_rollup_select(db)}"
    keys = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{TOOL_TABLE}_keys_mv TO {db}.{keys_table} AS\n"
        f"SELECT span_id, trace_id FROM {db}.{TOOL_TABLE}"
    )
    return table, rollup, view, keys
