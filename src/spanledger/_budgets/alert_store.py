"""Fired alerts and their webhook deliveries in the store (``budget_alerts``, ``alert_deliveries``).

Why the store, not a file beside the spool: alerts must fire once per subject, rule and period *whatever the
number of processes* writing to a ClickHouse server, and survive a restart of any of them; the store is the
one thing they all share. An alert's id is derived from its rule, subject and period; it is inserted with that
id as the insert's deduplication token, so when two processes claim the same alert at once ClickHouse keeps
the first block and drops the other, and both read back who holds it. A delivery is a history of rows per
alert (pending with its attempt count and next attempt, then delivered or failed); the latest row is its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .._query.sql import fetch
from .._store.schema import ALERTS_TABLE, DELIVERIES_TABLE
from .._store.store import Store

_ALERT_COLUMNS = (
    ("id", "String"),
    ("kind", "LowCardinality(String)"),
    ("rule", "String"),
    ("tenant_id", "String"),
    ("user_id", "String"),
    ("period_start", "DateTime64(6, 'UTC')"),
    ("spent", "Decimal(38, 12)"),
    ("threshold", "Decimal(38, 12)"),
    ("body", "String"),
    ("holder", "String"),
    ("fired_at", "DateTime64(6, 'UTC')"),
)
_DELIVERY_COLUMNS = (
    ("alert_id", "String"),
    ("url", "String"),
    ("state", "LowCardinality(String)"),
    ("attempts", "UInt32"),
    ("next_at", "DateTime64(6, 'UTC')"),
    ("status", "UInt16"),
    ("error", "String"),
    ("holder", "String"),
    ("updated_at", "DateTime64(6, 'UTC')"),
)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as stored: what fired, and its delivery's latest state."""

    id: str
    kind: str
    rule: str
    tenant_id: str
    user_id: str
    period_start: datetime
    spent: Decimal
    threshold: Decimal
    body: str
    holder: str
    fired_at: datetime
    delivery: str = ""
    """pending, delivered, failed, or empty (no webhook)."""
    attempts: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery's latest state."""

    alert_id: str
    url: str
    state: str
    attempts: int
    next_at: datetime
    holder: str
    updated_at: datetime
    body: str


def held(store: Store, ids: Sequence[str]) -> dict[str, str]:
    """Which of these alerts have fired, and who holds each (the first to claim it)."""
    if not ids:
        return {}
    rows = fetch(
        store,
        f"SELECT id, argMin(holder, fired_at) AS holder FROM {store.database}.{ALERTS_TABLE} "
        "WHERE id IN {ids:Array(String)} GROUP BY id",
        {"ids": list(ids)},
    )
    return {r["id"]: r["holder"] for r in rows}


def claim(store: Store, alerts: Sequence[StoredAlert], holder: str) -> list[StoredAlert]:
    """Record the alerts not fired before; returns the ones this holder claimed (each alert once, whatever
    the number of processes claiming it)."""
    before = held(store, [a.id for a in alerts])
    new = [a for a in alerts if a.id not in before]
    names = [name for name, _ in _ALERT_COLUMNS]
    types = [ctype for _, ctype in _ALERT_COLUMNS]
    for alert in new:
        row = [getattr(alert, name) for name in names]
        store.insert_rows(ALERTS_TABLE, [row], names, types, dedup_token=f"spanledger-alert-{alert.id}")
    after = held(store, [a.id for a in new])
    return [a for a in new if after.get(a.id) == holder]


def record_delivery(
    store: Store,
    alert_id: str,
    *,
    url: str,
    state: str,
    attempts: int,
    next_at: datetime,
    holder: str,
    status: int = 0,
    error: str = "",
) -> None:
    """Append a delivery's new state."""
    names = [name for name, _ in _DELIVERY_COLUMNS]
    types = [ctype for _, ctype in _DELIVERY_COLUMNS]
    row = [alert_id, url, state, attempts, next_at, status, error[:500], holder, datetime.now(UTC)]
    store.insert_rows(DELIVERIES_TABLE, [row], names, types)


def pending(store: Store) -> list[Delivery]:
    """Every delivery whose latest state is pending, with its alert's body."""
    db = store.database
    rows = fetch(
        store,
        f"""
SELECT d.alert_id AS alert_id, d.url AS url, d.state AS state, d.attempts AS attempts, d.next_at AS next_at,
       d.holder AS holder, d.updated_at AS updated_at, a.body AS body
FROM (SELECT * FROM {db}.{DELIVERIES_TABLE} ORDER BY alert_id, updated_at DESC LIMIT 1 BY alert_id) AS d
INNER JOIN (SELECT id, any(body) AS body FROM {db}.{ALERTS_TABLE} GROUP BY id) AS a ON a.id = d.alert_id
WHERE d.state = 'pending'
ORDER BY d.next_at""",
        {},
    )
    return [
        Delivery(
            r["alert_id"],
            r["url"],
            r["state"],
            int(r["attempts"]),
            _utc(r["next_at"]),
            r["holder"],
            _utc(r["updated_at"]),
            r["body"],
        )
        for r in rows
    ]


def alerts(store: Store, *, tenant_id: str | None = None, limit: int = 100) -> list[StoredAlert]:
    """The most recent alerts, newest first, with their delivery's latest state."""
    db = store.database
    where = ""
    params: dict[str, Any] = {"limit": limit}
    if tenant_id is not None:
        where = "WHERE tenant_id = {tenant:String}"
        params["tenant"] = tenant_id
    rows = fetch(
        store,
        f"""
SELECT a.*, d.state AS delivery, d.attempts AS attempts, d.error AS last_error
FROM (SELECT * FROM {db}.{ALERTS_TABLE} {where} ORDER BY fired_at DESC LIMIT 1 BY id LIMIT {{limit:UInt32}}) AS a
LEFT JOIN (SELECT alert_id, argMax(state, updated_at) AS state, max(attempts) AS attempts,
                  argMax(error, updated_at) AS error
           FROM {db}.{DELIVERIES_TABLE} GROUP BY alert_id) AS d ON d.alert_id = a.id
ORDER BY a.fired_at DESC, a.id""",
        params,
    )
    return [_alert(r) for r in rows]


def _alert(r: dict[str, Any]) -> StoredAlert:
    return StoredAlert(
        id=r["id"],
        kind=r["kind"],
        rule=r["rule"],
        tenant_id=r["tenant_id"],
        user_id=r["user_id"],
        period_start=_utc(r["period_start"]),
        spent=Decimal(r["spent"]),
        threshold=Decimal(r["threshold"]),
        body=r["body"],
        holder=r["holder"],
        fired_at=_utc(r["fired_at"]),
        delivery=r.get("delivery") or "",
        attempts=int(r.get("attempts") or 0),
        last_error=r.get("last_error") or "",
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
