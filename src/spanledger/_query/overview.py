"""A window at a glance: totals, the unattributed spend, the top users and tenants (with their
customer profiles' names), the daily series.

Users and tenants are counted one way everywhere (:data:`~spanledger._model.rows.USERS_COUNTED`): distinct
attributed (tenant, user) pairs and distinct tenant ids with calls, exactly; the calls without a user id
(without a tenant id) are reported apart, never as a user (a tenant).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._customers import store as profiles
from .._model.rows import Overview, TenantRow, TopUser, Totals
from .._model.usage import CALL_COST, Usage
from .._store.schema import DAILY_OF, TENANT_DAILY_ROLLUP, TENANT_ROLLUP, USER_DAILY_ROLLUP, USER_ROLLUP
from .._store.store import Store
from .series import daily_pairs
from .sql import Query, check_paging, fetch, outer, raw_inner, rollup_inner
from .tiers import TierPlan, plan, previous
from .timebound import TimeBound


def _query(
    store: Store,
    w: TierPlan,
    tenant_id: str | None,
    user_id: str | None,
    tags: Mapping[str, str] | None,
) -> Query:
    q = Query(store.database, w)
    q.where_equal("tenant_id", tenant_id)
    q.where_user(user_id)
    q.where_tags(tags)
    return q


def totals(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Totals:
    """Everything in the window summed: spend, requests, tokens, users and tenants (exact).

    Distinct traces are not counted here (see :class:`Totals`).
    """
    q = _query(store, plan(start, end), tenant_id, user_id, tags)
    tenants = per_tenant(store, q, users=False, traces=False)
    users, named_tenants = _counts(store, q)
    return Totals(Usage.summed(tenants), active_users=users, tenants=named_tenants)


def per_tenant(store: Store, q: Query, *, users: bool, traces: bool) -> list[dict[str, Any]]:
    """Every metric per tenant (``active_users`` too, exact, when ``users``), by cost descending, then id.

    With a user filter the per-user rollups answer (the per-tenant ones keep no user ids)."""
    hourly, daily = (USER_ROLLUP, USER_DAILY_ROLLUP) if q.has_user else (TENANT_ROLLUP, TENANT_DAILY_ROLLUP)
    union = q.union(hourly, ["tenant_id"], rollup_inner(traces=traces), raw_inner(traces=traces), daily=daily)
    sql = f"""
SELECT tenant_id, {outer(traces=traces)}
FROM ({union})
GROUP BY tenant_id
ORDER BY cost DESC, tenant_id ASC"""
    rows = fetch(store, sql, q.params)
    if users:
        counts = tenant_users(store, q)
        for r in rows:
            r["active_users"] = counts.get(r["tenant_id"], 0)
    return rows


def _pairs(q: Query) -> str:
    """Every (tenant, user) pair with calls under ``q``, one row each (from the per-user tiers)."""
    union = q.union(USER_ROLLUP, ["tenant_id", "user_id"], "1 AS x", "1 AS x", daily=USER_DAILY_ROLLUP, grouped=False)
    return f"SELECT tenant_id, user_id FROM ({union}) GROUP BY tenant_id, user_id"


def tenant_users(store: Store, q: Query) -> dict[str, int]:
    """Distinct attributed users per tenant under ``q``, exact."""
    sql = f"SELECT tenant_id, countIf(user_id != '') AS users FROM ({_pairs(q)}) GROUP BY tenant_id"
    return {r["tenant_id"]: int(r["users"]) for r in fetch(store, sql, q.params)}


def _counts(store: Store, q: Query) -> tuple[int, int]:
    """Users (attributed pairs) and tenants (non-empty ids) with calls under ``q``, exact."""
    sql = (
        f"SELECT countIf(user_id != '') AS users, uniqExactIf(tenant_id, tenant_id != '') AS tenants FROM ({_pairs(q)})"
    )
    r = fetch(store, sql, q.params)[0]
    return int(r["users"]), int(r["tenants"])


def overview(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    top: int = 10,
    compare: bool = False,
) -> Overview:
    """Totals, unattributed spend, the top ``top`` users and tenants, and the daily series of a window;
    ``compare`` adds the totals of the previous window of the same length (``previous``).

    The top users come with only their cost, requests and unpriced calls, ranked in the same pass that
    counts the window's users and tenants and its unattributed calls; the tenants' sums give both the
    totals and the top tenants. Every figure is exact.
    """
    _page, top = check_paging(1, top)
    uq = _query(store, plan(start, end, rollups=not tags), tenant_id, user_id, tags)  # as users() reads tags
    top_users, counts, unattributed = _top_users(store, uq, top)

    q = _query(store, plan(start, end), tenant_id, user_id, tags)
    tenants = per_tenant(store, q, users=False, traces=False)
    named = [r for r in tenants if r["tenant_id"]][:top]
    nameless = next((r for r in tenants if not r["tenant_id"]), None)
    tq = _query(store, q.window, None, user_id, tags)
    tq.where_in("tenant_id", [r["tenant_id"] for r in named])
    users = tenant_users(store, tq) if named else {}
    shown = profiles.tenant_names(store, [r["tenant_id"] for r in named])
    top_tenants = [
        TenantRow(
            r["tenant_id"], Usage.from_row(r), users.get(r["tenant_id"], 0), display_name=shown.get(r["tenant_id"], "")
        )
        for r in named
    ]
    window = previous(start, end) if compare else None
    return Overview(
        totals=Totals(Usage.summed(tenants), active_users=counts[0], tenants=counts[1]),
        unattributed_cost=unattributed[0],
        unattributed_requests=unattributed[1],
        no_tenant_cost=Decimal(nameless["cost"]) if nameless else Decimal(0),
        no_tenant_requests=int(nameless["requests"]) if nameless else 0,
        top_users=top_users,
        top_tenants=top_tenants,
        daily=daily_pairs(store, q, key=None),
        previous=(
            totals(store, start=window[0], end=window[1], tenant_id=tenant_id, user_id=user_id, tags=tags)
            if window
            else None
        ),
    )


def _top_users(store: Store, q: Query, top: int) -> tuple[list[TopUser], tuple[int, int], tuple[Decimal, int]]:
    """The top attributed users by cost with their requests and unpriced calls, the number of users and of
    tenants, and the unattributed cost and requests: one pass over the per-user tiers."""
    union = q.union(
        USER_ROLLUP,
        ["tenant_id", "user_id"],
        "cost AS c, requests AS n, unpriced_requests AS u",
        f"{CALL_COST} AS c, toUInt64(1) AS n, toUInt64(r.cost IS NULL) AS u",
        daily=DAILY_OF[USER_ROLLUP],
        grouped=False,
    )
    sql = f"""
SELECT tenant_id, user_id, sum(c) AS cost, sum(n) AS requests, sum(u) AS unpriced_requests,
       sum(user_id != '') OVER () AS attributed,
       uniqExact(tenant_id) OVER () - max(tenant_id = '') OVER () AS named_tenants,
       sum(if(user_id = '', sum(c), 0)) OVER () AS unattributed_cost,
       sum(if(user_id = '', sum(n), 0)) OVER () AS unattributed_requests
FROM ({union})
GROUP BY tenant_id, user_id
ORDER BY user_id = '' ASC, cost DESC, tenant_id ASC, user_id ASC
LIMIT {top}"""
    rows = fetch(store, sql, q.params)
    if not rows:
        return [], (0, 0), (Decimal(0), 0)
    names = profiles.names(store, ((r["tenant_id"], r["user_id"]) for r in rows if r["user_id"]))
    out = [
        TopUser(
            r["user_id"],
            r["tenant_id"],
            Decimal(r["cost"]),
            int(r["requests"]),
            int(r["unpriced_requests"]),
            display_name=names.get((r["tenant_id"], r["user_id"]), ""),
        )
        for r in rows
        if r["user_id"]
    ]
    first = rows[0]
    counts = (int(first["attributed"]), int(first["named_tenants"]))
    return out, counts, (Decimal(first["unattributed_cost"]), int(first["unattributed_requests"]))
