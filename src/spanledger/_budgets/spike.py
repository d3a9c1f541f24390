"""The spike rule: a user (or tenant) whose last hour or day cost more than ``factor`` times its own trailing
baseline, and more than an absolute floor.

The baseline is the median of the subject's daily totals over the ``baseline_days`` whole UTC days before
today, days without calls counted as $0, read from the daily rollups (``usage_by_user_daily``,
``usage_by_tenant_daily``); for an hour it is that median divided by 24. A user stuck in a loop stands out
against their own history; a steadily heavy customer does not, whatever they spend, and the floor keeps a
$0.02 user who spent $0.30 from paging anyone. Two queries at any scale: the subjects above the floor in the
recent window (one ``GROUP BY``), then the daily totals of those few.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .._query.sql import fetch
from .._store.schema import TENANT_DAILY_ROLLUP, USER_DAILY_ROLLUP
from .._store.store import Store
from .spend import Kind, spend

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True, slots=True)
class Spike:
    """A subject spending well above its own baseline."""

    tenant_id: str
    user_id: str
    recent: Decimal
    """Spend in the recent window."""
    baseline: Decimal
    """The median daily total, scaled to the window (÷ 24 for an hour)."""
    window_start: datetime
    window_end: datetime


def median(values: list[Decimal]) -> Decimal:
    """The exact median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    if not ordered:
        return Decimal(0)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def spikes(
    store: Store,
    *,
    scope: str,
    window: str,
    factor: Decimal,
    floor: Decimal,
    baseline_days: int,
    now: datetime,
) -> list[Spike]:
    """Subjects of ``scope`` (``user``: a user within a tenant; ``tenant``) spiking in the ``window``
    (``hour`` or ``day``) that ends ``now``."""
    kind: Kind = "pair" if scope == "user" else "tenant"
    end = now
    start = end - WINDOWS[window]
    recent = spend(store, kind, start, end, above=floor)
    if not recent:
        return []
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=baseline_days)
    table = USER_DAILY_ROLLUP if kind == "pair" else TENANT_DAILY_ROLLUP
    params: dict[str, Any] = {"first": first, "today": today}
    if kind == "pair":
        where, keys = "(tenant_id, user_id) IN {s:Array(Tuple(String, String))}", "tenant_id, user_id"
        params["s"] = sorted(recent)
    else:
        where, keys = "tenant_id IN {s:Array(String)}", "tenant_id"
        params["s"] = sorted(t for t, _ in recent)
    rows = fetch(
        store,
        f"""
SELECT {keys}, day, sum(cost) AS cost FROM {store.database}.{table}
WHERE day >= {{first:Date}} AND day < {{today:Date}} AND {where}
GROUP BY {keys}, day""",
        params,
    )
    days: dict[tuple[str, str], list[Decimal]] = {}
    for r in rows:
        subject = (r["tenant_id"], r.get("user_id", ""))
        days.setdefault(subject, []).append(Decimal(r["cost"]))
    out = []
    scale = Decimal(24) if window == "hour" else Decimal(1)
    for subject, got in recent.items():
        totals = days.get(subject, [])
        totals = totals + [Decimal(0)] * (baseline_days - len(totals))  # days without calls cost nothing
        baseline = median(totals) / scale
        if got.cost > factor * baseline:
            out.append(Spike(subject[0], subject[1], got.cost, baseline.quantize(Decimal("1e-12")), start, end))
    out.sort(key=lambda s: (-s.recent, s.tenant_id, s.user_id))
    return out
