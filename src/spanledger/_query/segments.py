"""Segments: spend per value of a tag (per plan, per feature).

Tags live in the hourly rollups and the raw table only (the daily rollups keep none). A segment counts its
users as everything else does: distinct attributed (tenant, user) pairs, exact. It is read from the raw
table, as a tag filter is elsewhere: per-user hourly rollups keyed by tags hold nearly one row per call at
high user counts (bench Q5).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from .._errors import ConfigError
from .._model.rows import DailyRow, SegmentRow
from .._model.usage import CALL_COST, Usage
from .._store.schema import TENANT_ROLLUP
from .._store.store import Store
from .sql import Query, fetch, outer, raw_inner, rollup_inner
from .tiers import plan, previous
from .timebound import TimeBound


def _query(
    store: Store,
    start: TimeBound,
    end: TimeBound,
    tenant_id: str | None,
    user_id: str | None,
    tags: Mapping[str, str] | None,
    *,
    rollups: bool,
) -> Query:
    q = Query(store.database, plan(start, end, rollups=rollups))
    q.where_equal("tenant_id", tenant_id)
    q.where_user(user_id)
    q.where_tags(tags)
    return q


def tag_key(by: str) -> str:
    if not isinstance(by, str) or not by.strip() or len(by) > 256:
        raise ConfigError("bad segment: name a tag key (plan, feature …)")
    return by.strip()


def segments(
    store: Store,
    by: str,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    compare: bool = False,
) -> tuple[list[SegmentRow], list[DailyRow]]:
    """Per value of the tag ``by``: totals and users, costliest first (the calls without the tag as value
    ``""``), and a daily series per value (``DailyRow.key`` is the value).

    ``compare`` adds each value's cost over the previous window of the same length.
    """
    key = tag_key(by)
    q = _query(store, start, end, tenant_id, user_id, tags, rollups=False)
    k = q.bind(key)
    keys = ["day", "tenant_id", "user_id", f"r.tags[{{{k}:String}}] AS value"]
    union = q.union(TENANT_ROLLUP, keys, rollup_inner(traces=False), raw_inner(traces=False))
    sql = f"""
SELECT grouping(day) = 0 AS per_day, value, day, {outer(traces=False)},
       uniqExactIf((tenant_id, user_id), user_id != '') AS active_users
FROM ({union})
GROUP BY GROUPING SETS ((value), (value, day))"""
    rows = fetch(store, sql, q.params)
    before = _previous(store, key, start, end, tenant_id, user_id, tags) if compare else None
    out = [
        SegmentRow(
            r["value"],
            Usage.from_row(r),
            int(r["active_users"]),
            (before.get(r["value"], Decimal(0)) if before is not None else None),
        )
        for r in rows
        if not r["per_day"]
    ]
    out.sort(key=lambda s: (-s.usage.cost, -s.usage.requests, s.value))
    daily = [
        DailyRow(r["day"], Decimal(r["cost"]), int(r["requests"]), int(r["active_users"]), key=r["value"])
        for r in rows
        if r["per_day"]
    ]
    daily.sort(key=lambda d: (d.day, d.key))
    return out, daily


def _previous(
    store: Store,
    key: str,
    start: TimeBound,
    end: TimeBound,
    tenant_id: str | None,
    user_id: str | None,
    tags: Mapping[str, str] | None,
) -> dict[str, Decimal] | None:
    window = previous(start, end)
    if window is None:
        return None
    q = _query(store, window[0], window[1], tenant_id, user_id, tags, rollups=False)
    k = q.bind(key)
    union = q.union(TENANT_ROLLUP, [f"r.tags[{{{k}:String}}] AS value"], "", f"{CALL_COST} AS c", grouped=False)
    sql = f"SELECT value, sum(c) AS cost FROM ({union}) GROUP BY value"
    return {r["value"]: Decimal(r["cost"]) for r in fetch(store, sql, q.params)}
