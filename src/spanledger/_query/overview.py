"""A window at a glance: totals, the unattributed spend, the top users and tenants (with their customer
profiles' names), the daily series."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._customers import store as profiles
from .._model.rows import Overview, TenantRow, TopUser, Totals
from .._model.usage import CALL_COST, Usage
from .._store.schema import TENANT_DAILY_ROLLUP, TENANT_ROLLUP, USER_DAILY_ROLLUP, USER_ROLLUP, USERS_STATE
from .._store.store import Store
from .series import daily_pairs
from .sql import Query, check_paging, fetch, outer, raw_inner, rollup_inner
from .tiers import TierPlan, plan
from .timebound import TimeBound

# a tenant's distinct users as per-tier states, from the per-tenant rollups and from the raw table
_USERS_ROLLUP = "uniqMergeState(users) AS users"
_USERS_RAW = f"{USERS_STATE} AS users"


def totals(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Totals:
    """Everything in the window summed: spend, requests, tokens, active users and tenants.

    Distinct traces are not counted here (see :class:`Totals`); active users are the per-tenant
    ``uniq`` estimates added up; every other figure is exact.
    """
    q = Query(store.database, plan(start, end))
    q.where_equal("tenant_id", tenant_id)
    q.where_tags(tags)
    tenants = per_tenant(store, q, users=True, traces=False)
    active_users = sum(int(r["active_users"]) for r in tenants)
    return Totals(Usage.summed(tenants), active_users=active_users, tenants=len(tenants))


def per_tenant(store: Store, q: Query, *, users: bool, traces: bool) -> list[dict[str, Any]]:
    """Every metric per tenant (``active_users`` too when ``users``), by cost descending, then tenant id."""
    inner_rollup, inner_raw = rollup_inner(traces=traces), raw_inner(traces=traces)
    active = ""
    if users:
        inner_rollup += f", {_USERS_ROLLUP}"
        inner_raw += f", {_USERS_RAW}"
        active = ", uniqMerge(users) AS active_users"
    sql = f"""
SELECT tenant_id, {outer(traces=traces)}{active}
FROM ({q.union(TENANT_ROLLUP, ["tenant_id"], inner_rollup, inner_raw, daily=TENANT_DAILY_ROLLUP)})
GROUP BY tenant_id
ORDER BY cost DESC, tenant_id ASC"""
    return fetch(store, sql, q.params)


def overview(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    top: int = 10,
) -> Overview:
    """Totals, unattributed spend, the top ``top`` users and tenants, and the daily series of a window.

    Four queries instead of the nine that :meth:`totals`, :meth:`users`, :meth:`tenants` and two
    :meth:`daily` calls take: the top users come with only their cost, requests and unpriced calls,
    ranked in the same pass that counts the window's users and its unattributed calls, and the
    tenants' sums give both the totals and the top tenants. Every figure is exact.
    """
    _page, top = check_paging(1, top)
    uq = Query(store.database, plan(start, end, rollups=not tags))  # as users() reads tags
    uq.where_equal("tenant_id", tenant_id)
    uq.where_tags(tags)
    top_users, attributed, unattributed_cost, unattributed_requests = _top_users(store, uq, top)

    q = Query(store.database, plan(start, end))
    q.where_equal("tenant_id", tenant_id)
    q.where_tags(tags)
    tenants = per_tenant(store, q, users=False, traces=False)
    names = [r["tenant_id"] for r in tenants[:top]]
    users = _active_users(store, q.window, names, tags)
    shown = profiles.tenant_names(store, names)
    top_tenants = [
        TenantRow(
            r["tenant_id"], Usage.from_row(r), users.get(r["tenant_id"], 0), display_name=shown.get(r["tenant_id"], "")
        )
        for r in tenants[:top]
    ]
    return Overview(
        totals=Totals(Usage.summed(tenants), active_users=attributed, tenants=len(tenants)),
        unattributed_cost=unattributed_cost,
        unattributed_requests=unattributed_requests,
        top_users=top_users,
        top_tenants=top_tenants,
        daily=daily_pairs(store, q, key=None),
    )


def _top_users(store: Store, q: Query, top: int) -> tuple[list[TopUser], int, Decimal, int]:
    """The top users by cost with their requests and unpriced calls, the number of attributed users,
    and the unattributed cost and requests: one pass over the per-user tiers."""
    union = q.union(
        USER_ROLLUP,
        ["tenant_id", "user_id"],
        "cost AS c, requests AS n, unpriced_requests AS u",
        f"{CALL_COST} AS c, toUInt64(1) AS n, toUInt64(r.cost IS NULL) AS u",
        daily=USER_DAILY_ROLLUP,
        grouped=False,
    )
    sql = f"""
SELECT tenant_id, user_id, sum(c) AS cost, sum(n) AS requests, sum(u) AS unpriced_requests,
       sum(user_id != '') OVER () AS attributed,
       sum(if(user_id = '', sum(c), 0)) OVER () AS unattributed_cost,
       sum(if(user_id = '', sum(n), 0)) OVER () AS unattributed_requests
FROM ({union})
GROUP BY tenant_id, user_id
ORDER BY cost DESC, tenant_id ASC, user_id ASC
LIMIT {top}"""
    rows = fetch(store, sql, q.params)
    if not rows:
        return [], 0, Decimal(0), 0
    names = profiles.names(store, ((r["tenant_id"], r["user_id"]) for r in rows))
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
    ]
    first = rows[0]
    return out, int(first["attributed"]), Decimal(first["unattributed_cost"]), int(first["unattributed_requests"])


def _active_users(store: Store, w: TierPlan, names: list[str], tags: Mapping[str, str] | None) -> dict[str, int]:
    """Distinct attributed users (``uniq``) of the given tenants."""
    if not names:
        return {}
    q = Query(store.database, w)
    q.where_in("tenant_id", names)
    q.where_tags(tags)
    union = q.union(TENANT_ROLLUP, ["tenant_id"], _USERS_ROLLUP, _USERS_RAW, daily=TENANT_DAILY_ROLLUP)
    sql = f"SELECT tenant_id, uniqMerge(users) AS active_users FROM ({union}) GROUP BY tenant_id"
    return {r["tenant_id"]: int(r["active_users"]) for r in fetch(store, sql, q.params)}
