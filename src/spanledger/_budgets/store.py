"""Budgets in the store: set, remove and load them (``budgets`` table, migration 6).

A budget is a history of rows keyed by its id; the latest row by ``updated_at`` is the budget (``deleted``
marks a removal). Nothing is updated in place, so several processes may set budgets at once and every
process reading the table sees the same current set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .._errors import ConfigError
from .._store.schema import BUDGETS_TABLE
from .._store.store import Store
from .model import Budget

_COLUMNS = (
    ("id", "String"),
    ("scope", "LowCardinality(String)"),
    ("tenant_id", "String"),
    ("user_id", "String"),
    ("tag_key", "String"),
    ("tag_value", "String"),
    ("period", "LowCardinality(String)"),
    ("limit_usd", "Decimal(38, 12)"),
    ("hard", "UInt8"),
    ("timezone", "LowCardinality(String)"),
    ("starts_at", "Nullable(DateTime64(6, 'UTC'))"),
    ("ends_at", "Nullable(DateTime64(6, 'UTC'))"),
    ("alert_at", "Array(UInt16)"),
    ("deleted", "UInt8"),
    ("updated_at", "DateTime64(6, 'UTC')"),
)
_NAMES = [name for name, _ in _COLUMNS]
_TYPES = [ctype for _, ctype in _COLUMNS]


def _row(budget: Budget, *, deleted: bool, at: datetime) -> list[Any]:
    return [
        budget.id,
        budget.scope,
        budget.tenant_id,
        budget.user_id,
        budget.tag_key,
        budget.tag_value,
        budget.period,
        budget.limit,
        int(budget.hard),
        budget.timezone,
        budget.starts_at,
        budget.ends_at,
        list(budget.alert_at),
        int(deleted),
        at,
    ]


def save(store: Store, budget: Budget, *, now: datetime | None = None) -> Budget:
    """Store ``budget`` (replacing the one with the same subject and period); returns it as stored."""
    at = _later_than_stored(store, budget.id, now or datetime.now(UTC))
    store.insert_rows(BUDGETS_TABLE, [_row(budget, deleted=False, at=at)], _NAMES, _TYPES)
    return _with_time(budget, at)


def save_all(store: Store, budgets: Sequence[Budget], *, now: datetime | None = None) -> None:
    """Store many budgets in one insert (an import): each replaces the one with the same subject and period."""
    at = now or datetime.now(UTC)
    store.insert_rows(BUDGETS_TABLE, [_row(b, deleted=False, at=at) for b in budgets], _NAMES, _TYPES)


def remove(store: Store, budget_id: str, *, now: datetime | None = None) -> Budget:
    """Remove the budget ``budget_id``; returns what it was.

    Raises:
        ConfigError: There is no such budget.
    """
    found = {b.id: b for b in load(store, ids=[budget_id])}
    if budget_id not in found:
        raise ConfigError(f"no budget {budget_id!r}: `spanledger budgets list` shows their ids")
    budget = found[budget_id]
    at = _later_than_stored(store, budget_id, now or datetime.now(UTC))
    store.insert_rows(BUDGETS_TABLE, [_row(budget, deleted=True, at=at)], _NAMES, _TYPES)
    return budget


def _later_than_stored(store: Store, budget_id: str, at: datetime) -> datetime:
    """``at``, or just after the budget's last row if that is later (a clock behind another writer's must not
    leave an older row current)."""
    rows = store.query(
        f"SELECT max(updated_at) FROM {store.database}.{BUDGETS_TABLE} WHERE id = {{id:String}}", {"id": budget_id}
    ).result_rows
    last = _utc(rows[0][0]) if rows else None
    if last is not None and last.year > 1970 and last >= at:
        return last + timedelta(microseconds=1)
    return at


def load(
    store: Store, *, ids: Sequence[str] | None = None, tenant_id: str | None = None, scope: str | None = None
) -> list[Budget]:
    """The current budgets (``ids``: only these; ``tenant_id``: only budgets within that tenant), ordered by
    scope and subject."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if ids is not None:
        where.append("id IN {ids:Array(String)}")
        params["ids"] = list(ids)
    inner_where = f"WHERE {' AND '.join(where)}" if where else ""
    outer = ["deleted = 0"]
    if tenant_id is not None:
        outer.append("tenant_id = {tenant:String}")
        params["tenant"] = tenant_id
    if scope is not None:
        outer.append("scope = {scope:String}")
        params["scope"] = scope
    sql = f"""
SELECT {", ".join(_NAMES)}
FROM (SELECT * FROM {store.database}.{BUDGETS_TABLE} {inner_where} ORDER BY id, updated_at DESC LIMIT 1 BY id)
WHERE {" AND ".join(outer)}
ORDER BY scope, tenant_id, user_id, tag_key, tag_value, period"""
    result = store.query(sql, params)
    return [_budget(dict(zip(result.column_names, row, strict=True))) for row in result.result_rows]


def _budget(row: dict[str, Any]) -> Budget:
    return Budget(
        scope=row["scope"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        tag_key=row["tag_key"],
        tag_value=row["tag_value"],
        period=row["period"],
        limit=Decimal(row["limit_usd"]),
        hard=bool(row["hard"]),
        timezone=row["timezone"] or "UTC",
        starts_at=_utc(row["starts_at"]),
        ends_at=_utc(row["ends_at"]),
        alert_at=tuple(int(p) for p in row["alert_at"]),
        updated_at=_utc(row["updated_at"]),
    )


def _with_time(budget: Budget, at: datetime) -> Budget:
    return replace(budget, updated_at=at)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
