"""Rankings: a page of users or tenants sorted by a metric, and the ids alone for menus.

A page is two queries: the ranking by the sort key alone over every matching row (one metric per key is
what a ``GROUP BY`` over ~all users costs), then every metric for the page's rows only — and, for the page's
rows only, one look-up each for their customer profiles' names and their tool executions. A search matches
ids, and the names and e-mails of customer profiles (a subquery of the matching profiles' keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from .._customers import store as profiles
from .._customers.schema import CUSTOMERS_TABLE
from .._errors import ConfigError
from .._model.rows import SORT_KEYS, Page, TenantRow, UserRow
from .._model.usage import CALL_COST, Usage
from .._store.schema import DAILY_OF, TENANT_ROLLUP, USER_MODEL_DAILY_ROLLUP, USER_MODEL_ROLLUP, USER_ROLLUP
from .._store.store import Store
from . import tools
from .overview import per_tenant
from .sql import Query, check_paging, fetch, outer, raw_inner, rollup_inner
from .tiers import TierPlan, plan
from .timebound import TimeBound

SortBy = Literal["cost", "requests", "tokens", "last_seen"]
SortDir = Literal["asc", "desc"]

RANK_KEYS: dict[str, tuple[str, str, str]] = {
    "cost": ("cost", CALL_COST, "sum"),
    "requests": ("requests", "toUInt64(1)", "sum"),
    "tokens": ("input_tokens + output_tokens", "r.input_tokens + r.output_tokens", "sum"),
    "last_seen": ("last_seen", "r.timestamp", "max"),
}
"""Sort key → (per-row expression on a rollup, on the raw table, the aggregate over both): ranks rows
exactly as the full metric of the same name would (the tiers' rows are aggregated once, ungrouped)."""
assert tuple(RANK_KEYS) == SORT_KEYS, "every sort key needs its SQL"


def check_sort(sort_by: str, sort_dir: str) -> None:
    if sort_by not in RANK_KEYS:
        raise ConfigError(f"bad sort {sort_by!r}: use one of {', '.join(RANK_KEYS)}")
    if sort_dir not in ("asc", "desc"):
        raise ConfigError(f"bad sort direction {sort_dir!r}: use asc or desc")


def users(
    store: Store,
    *,
    sort_by: SortBy = "cost",
    sort_dir: SortDir = "desc",
    page: int = 1,
    limit: int = 50,
    search: str | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    traces: bool = True,
    include_inactive: bool = False,
) -> Page[UserRow]:
    """A page of users (per tenant) with their totals, sorted; ``total`` counts all matching users.

    ``search`` matches user ids, and the display names and e-mails of their customer profiles. Each row
    carries its profile's ``display_name`` and its ``tool_calls``. ``traces=False`` leaves distinct traces
    uncounted (``usage.traces`` is ``None``): merging the trace states of the heaviest users is the largest
    part of a page's cost. ``include_inactive``: the customers with a profile and no calls (matching the
    filters) in the window follow every user with calls, by tenant and user id, with zero usage; ``total``
    counts them too and ``inactive`` says how many there are. The calls that carried no user are never one
    of them.
    """
    check_sort(sort_by, sort_dir)
    page, limit = check_paging(page, limit)
    # A tag filter reads the raw table: the tags-keyed hourly rollups hold nearly one row per call
    # at high user counts and measured 4x slower than the raw table for it (bench Q5, 10M calls).
    q = Query(store.database, plan(start, end, rollups=not tags))
    q.where_equal("tenant_id", tenant_id)
    q.where_search("user_id", search, also=lambda param: profiles.matching_keys(store.database, param))
    q.where_tags(tags)
    keys = ["tenant_id", "user_id"]
    offset = (page - 1) * limit
    ranked, total = rank(store, q, USER_ROLLUP, keys, sort_by, sort_dir, limit, offset)
    pairs = [(r["tenant_id"], r["user_id"]) for r in ranked]
    idle: list[tuple[str, str]] = []
    inactive = 0
    if include_inactive:
        idle, inactive = _inactive(store, q, tenant_id, search, limit - len(pairs), max(0, offset - total))
    filled = _fill(store, q.window.by_day(), pairs, tags, traces=traces)
    names = profiles.names(store, pairs + idle)
    tool_calls = tools.per_pair(store, q.window, pairs + idle, tags)
    out = []
    for pair in pairs:
        r = filled[pair]
        row = UserRow(pair[1], (pair[0],), Usage.from_row(r), int(r["models"]), r["top_model"])
        out.append(replace(row, display_name=names.get(pair, ""), tool_calls=tool_calls.get(pair, 0)))
    none = Usage.summed([])
    for pair in idle:
        out.append(
            UserRow(
                pair[1],
                (pair[0],),
                replace(none, traces=None if not traces else 0),
                0,
                "",
                display_name=names.get(pair, ""),
                tool_calls=tool_calls.get(pair, 0),
            )
        )
    return Page(rows=out, total=total + inactive, page=page, limit=limit, inactive=inactive)


def _inactive(
    store: Store, q: Query, tenant_id: str | None, search: str | None, limit: int, offset: int
) -> tuple[list[tuple[str, str]], int]:
    """The customers with a user profile and no calls matching ``q`` in its window — ``limit`` of them from
    ``offset``, by tenant and user id — and how many there are."""
    active = q.union(
        USER_ROLLUP, ["tenant_id", "user_id"], "0 AS k", "0 AS k", daily=DAILY_OF[USER_ROLLUP], grouped=False
    )
    where = ["user_id != ''", f"(tenant_id, user_id) NOT IN (SELECT DISTINCT tenant_id, user_id FROM ({active}))"]
    if tenant_id is not None:
        where.append(f"tenant_id = {{{q.bind(tenant_id)}:String}}")
    if search:
        s = q.bind(search)
        matches = (
            f"positionCaseInsensitiveUTF8({c}, {{{s}:String}}) > 0" for c in ("user_id", "display_name", "email")
        )
        where.append(f"({' OR '.join(matches)})")
    source = f"{q.db}.{CUSTOMERS_TABLE} FINAL WHERE {' AND '.join(where)}"
    if limit <= 0:
        return [], int(fetch(store, f"SELECT count() AS n FROM {source}", q.params)[0]["n"])
    sql = f"SELECT tenant_id, user_id, count() OVER () AS total_rows FROM {source} ORDER BY tenant_id, user_id LIMIT {limit} OFFSET {offset}"
    rows = fetch(store, sql, q.params)
    if not rows:
        return [], int(fetch(store, f"SELECT count() AS n FROM {source}", q.params)[0]["n"])
    return [(r["tenant_id"], r["user_id"]) for r in rows], int(rows[0]["total_rows"])


def _fill(
    store: Store, w: TierPlan, pairs: list[tuple[str, str]], tags: Mapping[str, str] | None, *, traces: bool
) -> dict[tuple[str, str], dict[str, Any]]:
    """Every metric (distinct traces included), distinct models and top model by cost of the given
    (tenant, user) pairs, from the per-user-model tiers (whose daily tier has a projection by user)."""
    if not pairs:
        return {}
    q = Query(store.database, w)
    q.where_pairs(pairs)
    q.where_tags(tags)
    keys = ["tenant_id", "user_id", "provider", "model"]
    union = q.union(
        USER_MODEL_ROLLUP,
        keys,
        rollup_inner(traces=traces),
        raw_inner(traces=traces),
        daily=USER_MODEL_DAILY_ROLLUP,
    )
    sql = f"""
SELECT tenant_id, user_id, {outer(traces=traces)}, count() AS models,
       argMax(model, (model_cost, model_requests, model)) AS top_model
FROM (SELECT *, cost AS model_cost, requests AS model_requests
      FROM (SELECT tenant_id, user_id, model, {rollup_inner(traces=traces)}
            FROM ({union}) GROUP BY tenant_id, user_id, model))
GROUP BY tenant_id, user_id"""
    return {(r["tenant_id"], r["user_id"]): r for r in fetch(store, sql, q.params)}


def tenants(
    store: Store,
    *,
    sort_by: SortBy = "cost",
    sort_dir: SortDir = "desc",
    page: int = 1,
    limit: int = 50,
    search: str | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    tags: Mapping[str, str] | None = None,
    tenant_id: str | None = None,
    traces: bool = True,
) -> Page[TenantRow]:
    """A page of tenants with their totals, active users and profile names (``tenant_id``: that tenant only;
    ``search`` matches ids and the names and e-mails of tenants' own profiles); ``traces=False`` as in
    :meth:`users`."""
    check_sort(sort_by, sort_dir)
    page, limit = check_paging(page, limit)
    q = Query(store.database, plan(start, end))
    q.where_equal("tenant_id", tenant_id)
    q.where_search("tenant_id", search, also=lambda param: profiles.matching_keys(store.database, param, kind="tenant"))
    q.where_tags(tags)
    # Rank by the sort key alone, then count distinct traces and users for the page's tenants only:
    # the uniq states of a heavy tenant's traces cost ten times more to merge than every sum.
    ranked, total = rank(store, q, TENANT_ROLLUP, ["tenant_id"], sort_by, sort_dir, limit, (page - 1) * limit)
    if not ranked:
        return Page(rows=[], total=total, page=page, limit=limit)
    names = [r["tenant_id"] for r in ranked]
    pq = Query(store.database, q.window)
    pq.where_in("tenant_id", names)
    pq.where_tags(tags)
    by_name = {r["tenant_id"]: r for r in per_tenant(store, pq, users=True, traces=traces)}
    shown = profiles.tenant_names(store, names)
    out = [
        TenantRow(n, Usage.from_row(by_name[n]), int(by_name[n]["active_users"]), display_name=shown.get(n, ""))
        for n in names
    ]
    return Page(rows=out, total=total, page=page, limit=limit)


def tenant_ids(
    store: Store, *, start: TimeBound = None, end: TimeBound = None, limit: int = 200, sort_by: SortBy = "cost"
) -> list[str]:
    """The ids of the top ``limit`` tenants in the window (descending ``sort_by``): the ranking alone,
    for menus and pickers, without the per-tenant totals."""
    check_sort(sort_by, "desc")
    _page, limit = check_paging(1, limit)
    q = Query(store.database, plan(start, end))
    return [r["tenant_id"] for r in rank(store, q, TENANT_ROLLUP, ["tenant_id"], sort_by, "desc", limit, 0)[0]]


def rank(
    store: Store, q: Query, hourly: str, keys: list[str], sort_by: str, sort_dir: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of ``keys`` ranked by the sort key alone, and how many there are in all."""
    rollup_key, raw_key, outer_key = RANK_KEYS[sort_by]
    union = q.union(hourly, keys, f"{rollup_key} AS k", f"{raw_key} AS k", daily=DAILY_OF[hourly], grouped=False)
    group = ", ".join(keys)
    order = f"{outer_key}(k) {sort_dir.upper()}, " + ", ".join(f"{k} ASC" for k in keys)

    def ranked(limit: int, offset: int) -> list[dict[str, Any]]:
        sql = f"""
SELECT {group}, count() OVER () AS total_rows
FROM ({union})
GROUP BY {group}
ORDER BY {order}
LIMIT {limit} OFFSET {offset}"""
        return fetch(store, sql, q.params)

    rows = ranked(limit, offset)
    if not rows and offset > 0:  # past the last page: the count still comes from the first row
        first = ranked(1, 0)
        return rows, int(first[0]["total_rows"]) if first else 0
    return rows, int(rows[0]["total_rows"]) if rows else 0
