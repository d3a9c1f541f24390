"""Daily series: cost, requests and active users per UTC day, optionally per user or per tenant."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from .._errors import ConfigError
from .._model.rows import DailyRow
from .._model.usage import CALL_COST
from .._store.schema import RAW_METRICS, USER_DAILY_ROLLUP, USER_ROLLUP
from .._store.store import Store
from .sql import Query, fetch
from .tiers import plan
from .timebound import TimeBound


def daily(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    user_id: str | None = None,
    tenant_id: str | None = None,
    per: Literal["user", "tenant"] | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[DailyRow]:
    """Cost, requests and active users per UTC day; ``per`` splits each day by user or tenant.

    A day's active users are the distinct attributed (tenant, user) pairs with calls that day, exact
    (the same user id in two tenants is two users, as everywhere else); per user (``per="user"`` or
    ``user_id``) it is 1 for an attributed user, 0 for the unattributed calls.
    """
    q = Query(store.database, plan(start, end))
    q.where_user(user_id)
    q.where_equal("tenant_id", tenant_id)
    q.where_tags(tags)
    if per not in (None, "user", "tenant"):
        raise ConfigError(f"bad per {per!r}: use user or tenant")
    key = f"{per}_id" if per else None
    if per == "user" or user_id is not None:
        return _daily_users(store, q, key=key)
    return daily_pairs(store, q, key=key)


def _daily_users(store: Store, q: Query, *, key: str | None) -> list[DailyRow]:
    """Per day (and ``key``): cost, requests and distinct attributed user ids (exact)."""
    keys = ["day"] + ([key] if key else [])
    inner_rollup = "sum(cost) AS cost, sum(requests) AS requests, groupUniqArray(user_id) AS users"
    inner_raw = f"{RAW_METRICS['cost']} AS cost, count() AS requests, groupUniqArray(r.user_id) AS users"
    users = "length(arrayFilter(u -> u != '', arrayDistinct(arrayFlatten(groupArray(users)))))"
    union = q.union(USER_ROLLUP, keys, inner_rollup, inner_raw, daily=USER_DAILY_ROLLUP)
    sql = f"""
SELECT {", ".join(keys)}, sum(cost) AS cost, sum(requests) AS requests, {users} AS active_users
FROM ({union})
GROUP BY {", ".join(keys)}
ORDER BY {", ".join(keys)}"""
    return _rows(store, sql, q.params, key)


def daily_pairs(store: Store, q: Query, *, key: str | None) -> list[DailyRow]:
    """Per day (and ``key``): cost, requests and distinct attributed (tenant, user) pairs, exact.

    Whole days count the rows of the daily per-user rollup, one per (day, tenant, user) once merged
    (``FINAL``; merging on read is cheap there, since inserts only add parts for recent days); the
    days at the window's edges, which only the hourly tier and the raw table hold, count distinct
    pairs (``uniqExact``). The two never share a day. 10M calls, 28 days: 1.6x faster than merging
    each tenant-day's ``uniq`` state of user ids (A/B, interleaved), and exact.
    """
    keys = ["day"] + ([key] if key else [])
    group = ", ".join(keys)
    edge = q.union(
        USER_ROLLUP,
        ["day", "tenant_id", "user_id"],
        "cost AS c, requests AS n",
        f"{CALL_COST} AS c, toUInt64(1) AS n",
        daily=USER_DAILY_ROLLUP,
        grouped=False,
        daily_part=False,
    )
    parts = [
        f"""
    SELECT {group}, sum(c) AS cost, sum(n) AS requests, uniqExactIf((tenant_id, user_id), user_id != '') AS users
    FROM ({edge})
    GROUP BY {group}"""
    ]
    if q.uses_daily(USER_DAILY_ROLLUP):
        parts.append(f"""
    SELECT {group}, sum(cost) AS cost, sum(requests) AS requests, countIf(user_id != '') AS users
    FROM {q.db}.{USER_DAILY_ROLLUP} FINAL
    WHERE {q.day_range()}{q.extra()}
    GROUP BY {group}""")
    sql = f"""
SELECT {group}, sum(cost) AS cost, sum(requests) AS requests, sum(users) AS active_users
FROM ({" UNION ALL ".join(parts)})
GROUP BY {group}
ORDER BY {group}"""
    return _rows(store, sql, q.params, key)


def _rows(store: Store, sql: str, params: dict[str, Any], key: str | None) -> list[DailyRow]:
    return [
        DailyRow(
            day=r["day"],
            cost=Decimal(r["cost"]),
            requests=int(r["requests"]),
            active_users=int(r["active_users"]),
            key=r.get(key, "") if key else "",
        )
        for r in fetch(store, sql, params)
    ]
