"""The billing tables (migration 7): markups, imported revenue, and the log of repricings.

Each is a plain ``CREATE TABLE IF NOT EXISTS db.t (...) ENGINE = …`` so that the cluster DDL
(``_store/cluster.py``) derives its replicated and Distributed forms like every other table's.
"""

from __future__ import annotations

MARKUPS_TABLE = "billing_markups"
REVENUE_TABLE = "billing_revenue"
REPRICES_TABLE = "billing_reprices"

PERCENT_TYPE = "Decimal(18, 6)"
"""A markup in percent (``20`` = +20 %), six decimals."""
AMOUNT_TYPE = "Decimal(38, 12)"
"""Revenue in USD, as exact as a sum of costs."""


def billing_tables(db: str) -> tuple[str, ...]:
    """The statements of migration 7."""
    markups = f"""CREATE TABLE IF NOT EXISTS {db}.{MARKUPS_TABLE} (
    scope LowCardinality(String),
    key String,
    percent {PERCENT_TYPE},
    removed UInt8 DEFAULT 0,
    set_at DateTime64(6, 'UTC') DEFAULT now64(6),
    note String DEFAULT ''
)
ENGINE = MergeTree
ORDER BY (scope, key, set_at)"""
    revenue = f"""CREATE TABLE IF NOT EXISTS {db}.{REVENUE_TABLE} (
    key String,
    kind LowCardinality(String),
    customer_id String,
    tenant_id String,
    period_start Date,
    period_end Date,
    amount {AMOUNT_TYPE},
    currency LowCardinality(String),
    source LowCardinality(String),
    file String,
    line UInt32,
    description String,
    imported_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
ORDER BY key
SETTINGS non_replicated_deduplication_window = 1000"""
    reprices = f"""CREATE TABLE IF NOT EXISTS {db}.{REPRICES_TABLE} (
    id String,
    started_at DateTime64(6, 'UTC'),
    finished_at DateTime64(6, 'UTC') DEFAULT now64(6),
    window_start DateTime64(6, 'UTC'),
    window_end DateTime64(6, 'UTC'),
    provider String,
    model String,
    price_file String,
    calls UInt64,
    changed UInt64,
    newly_priced UInt64,
    kept UInt64,
    cost_before Decimal(38, 12),
    cost_after Decimal(38, 12)
)
ENGINE = MergeTree
ORDER BY (started_at, id)"""
    return markups, revenue, reprices
