"""Rankings: a page of users or tenants sorted by a metric, and the ids alone for menus.

A page is two queries: the ranking by the sort key alone over every matching row (one metric per key is
what a ``GROUP BY`` over ~all users costs), then every metric for the page's rows only. Users and tenants
are counted the same way everywhere (:data:`~spanledger._model.rows.USERS_COUNTED`): the calls that carried
no user id (no tenant id) are no user (no tenant); a ranking leaves them out of its rows and its count and
reports them beside it (``Page.unnamed``). A page past the end is the last page. For the page's
rows only, one look-up each gives their customer profiles' names and their tool executions; a search
matches ids, and the names and e-mails of customer profiles (a subquery of the matching profiles' keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal

from .._customers import store as profiles
from .._customers.schema import CUSTOMERS_TABLE
from .._errors import ConfigError
from .._model.rows import SORT_KEYS, Bucket, Page, TenantRow, UserRow, pages_of
from .._model.usage import CALL_COST, Usage
from .._store.schema import DAILY_OF, TENANT_ROLLUP, USER_MODEL_DAILY_ROLLUP, USER_MODEL_ROLLUP, USER_ROLLUP
from .._store.store import Store
from . import tools
from .overview import per_tenant
from .sql import Query, check_paging, fetch, outer, raw_inner, rollup_inner
from .tiers import TierPlan, plan, previous
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

_BUCKET_ROLLUP = "cost AS c, requests AS n, unpriced_requests AS u"
_BUCKET_RAW = f"{CALL_COST} AS c, toUInt64(1) AS n, toUInt64(r.cost IS NULL) AS u"


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
    user_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    traces: bool = True,
    compare: bool = False,
    include_unattributed: bool = False,
    include_inactive: bool = False,
) -> Page[UserRow]:
    """A page of users (per tenant) with their totals, sorted; ``total`` counts all matching users.

    Args:
        search: A case-insensitive part of the user id, or of the display name or e-mail of their customer
            profile.
        tenant_id: Only this tenant (``""``: the calls without one).
        user_id: Only this user (in each of their tenants).
        traces: ``False`` leaves distinct traces uncounted (``usage.traces`` is ``None``): merging the
            trace states of the heaviest users is the largest part of a page's cost.
        compare: Also each row's cost over the previous window of the same length (``previous_cost``).
        include_unattributed: Rank the calls with no user id as rows of their own (one per tenant), counted
            in ``total``, instead of reporting them apart in ``unnamed``.
        include_inactive: The customers with a profile and no calls (matching the filters) in the window
            follow every user with calls, by tenant and user id, with zero usage; ``total`` counts them too
            and ``inactive`` says how many there are.

    Each row carries its profile's ``display_name`` and its ``tool_calls``.
    """
    check_sort(sort_by, sort_dir)
    page, limit = check_paging(page, limit)
    # A tag filter reads the raw table: the tags-keyed hourly rollups hold nearly one row per call
    # at high user counts and measured 4x slower than the raw table for it (bench Q5, 10M calls).
    q = Query(store.database, plan(start, end, rollups=not tags))
    q.where_equal("tenant_id", tenant_id)
    q.where_user(user_id)
    q.where_search("user_id", search, also=lambda param: profiles.matching_keys(store.database, param))
    q.where_tags(tags)
    unnamed = None
    if not include_unattributed:
        if not search and user_id is None:
            unnamed = _bucket(store, q, USER_ROLLUP, "user_id")
        q.filters.append("user_id != ''")
    keys = ["tenant_id", "user_id"]
    inactive = _inactive(store, q, tenant_id, search, 0, 0)[1] if include_inactive and user_id is None else 0
    ranked, total, page = rank(store, q, USER_ROLLUP, keys, sort_by, sort_dir, page, limit, extra=inactive)
    offset = (page - 1) * limit
    pairs = [(r["tenant_id"], r["user_id"]) for r in ranked]
    idle: list[tuple[str, str]] = []
    if inactive and len(pairs) < limit:
        idle = _inactive(store, q, tenant_id, search, limit - len(pairs), max(0, offset - total))[0]
    filled = _fill(store, q.window.by_day(), pairs, tags, traces=traces)
    before = _previous_costs(store, start, end, pairs, tags) if compare else {}
    names = profiles.names(store, pairs + idle)
    tool_calls = tools.per_pair(store, q.window, pairs + idle, tags)
    out = []
    for pair in pairs:
        r = filled[pair]
        prior = before.get(pair, Decimal(0)) if compare and before is not None else None
        row = UserRow(pair[1], (pair[0],), Usage.from_row(r), int(r["models"]), r["top_model"], prior)
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
                Decimal(0) if compare else None,
                display_name=names.get(pair, ""),
                tool_calls=tool_calls.get(pair, 0),
            )
        )
    return Page(rows=out, total=total + inactive, page=page, limit=limit, unnamed=unnamed, inactive=inactive)


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
    (tenant, user) pairs, from the per-user-model tiers (whose daily tier has a projection by user).
    A model counts when it answered at least one call: a failed call listed under the model it asked for
    is no model used."""
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
SELECT tenant_id, user_id, {outer(traces=traces)}, countIf(model_requests > model_errors) AS models,
       argMax(model, (model_cost, model_requests, model)) AS top_model
FROM (SELECT *, cost AS model_cost, requests AS model_requests, errors AS model_errors
      FROM (SELECT tenant_id, user_id, model, {rollup_inner(traces=traces)}
            FROM ({union}) GROUP BY tenant_id, user_id, model))
GROUP BY tenant_id, user_id"""
    return {(r["tenant_id"], r["user_id"]): r for r in fetch(store, sql, q.params)}


def _previous_costs(
    store: Store, start: TimeBound, end: TimeBound, pairs: list[tuple[str, str]], tags: Mapping[str, str] | None
) -> dict[tuple[str, str], Decimal] | None:
    """The pairs' cost over the previous window of the same length (``None``: the window has no start)."""
    window = previous(start, end)
    if window is None:
        return None
    if not pairs:
        return {}
    q = Query(store.database, plan(*window).by_day())
    q.where_pairs(pairs)
    q.where_tags(tags)
    union = q.union(
        USER_ROLLUP,
        ["tenant_id", "user_id"],
        "cost AS c",
        f"{CALL_COST} AS c",
        daily=DAILY_OF[USER_ROLLUP],
        grouped=False,
    )
    sql = f"SELECT tenant_id, user_id, sum(c) AS cost FROM ({union}) GROUP BY tenant_id, user_id"
    return {(r["tenant_id"], r["user_id"]): Decimal(r["cost"]) for r in fetch(store, sql, q.params)}


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
    user_id: str | None = None,
    traces: bool = True,
    compare: bool = False,
    include_no_tenant: bool = False,
) -> Page[TenantRow]:
    """A page of tenants with their totals, users and profile names (``tenant_id``: that tenant only;
    ``user_id``: the tenants of that user; ``search`` matches ids and the names and e-mails of tenants' own
    profiles); ``traces`` and ``compare`` as in :func:`users`. The calls with no tenant id are reported apart
    (``unnamed``) unless ``include_no_tenant`` ranks them as a row."""
    check_sort(sort_by, sort_dir)
    page, limit = check_paging(page, limit)
    q = Query(store.database, plan(start, end))
    q.where_equal("tenant_id", tenant_id)
    q.where_user(user_id)
    q.where_search("tenant_id", search, also=lambda param: profiles.matching_keys(store.database, param, kind="tenant"))
    q.where_tags(tags)
    hourly = USER_ROLLUP if q.has_user else TENANT_ROLLUP  # the per-tenant rollups keep no user ids
    unnamed = None
    if not include_no_tenant:
        if not search and tenant_id is None:
            unnamed = _bucket(store, q, hourly, "tenant_id")
        q.filters.append("tenant_id != ''")
    # Rank by the sort key alone, then count distinct traces and users for the page's tenants only:
    # the uniq states of a heavy tenant's traces cost ten times more to merge than every sum.
    ranked, total, page = rank(store, q, hourly, ["tenant_id"], sort_by, sort_dir, page, limit)
    if not ranked:
        return Page(rows=[], total=total, page=page, limit=limit, unnamed=unnamed)
    names = [r["tenant_id"] for r in ranked]
    pq = Query(store.database, q.window)
    pq.where_in("tenant_id", names)
    pq.where_user(user_id)
    pq.where_tags(tags)
    by_name = {r["tenant_id"]: r for r in per_tenant(store, pq, users=True, traces=traces)}
    before: dict[str, Decimal] | None = {}
    if compare:
        before = _previous_tenant_costs(store, start, end, names, user_id, tags)
    shown = profiles.tenant_names(store, names)
    out = []
    for n in names:
        prior = (before or {}).get(n, Decimal(0)) if compare and before is not None else None
        row = TenantRow(n, Usage.from_row(by_name[n]), int(by_name[n]["active_users"]), prior)
        out.append(replace(row, display_name=shown.get(n, "")))
    return Page(rows=out, total=total, page=page, limit=limit, unnamed=unnamed)


def _previous_tenant_costs(
    store: Store,
    start: TimeBound,
    end: TimeBound,
    names: list[str],
    user_id: str | None,
    tags: Mapping[str, str] | None,
) -> dict[str, Decimal] | None:
    window = previous(start, end)
    if window is None:
        return None
    q = Query(store.database, plan(*window))
    q.where_in("tenant_id", names)
    q.where_user(user_id)
    q.where_tags(tags)
    hourly = USER_ROLLUP if q.has_user else TENANT_ROLLUP
    union = q.union(hourly, ["tenant_id"], "cost AS c", f"{CALL_COST} AS c", daily=DAILY_OF[hourly], grouped=False)
    sql = f"SELECT tenant_id, sum(c) AS cost FROM ({union}) GROUP BY tenant_id"
    return {r["tenant_id"]: Decimal(r["cost"]) for r in fetch(store, sql, q.params)}


def _bucket(store: Store, q: Query, hourly: str, column: str) -> Bucket:
    """The calls whose ``column`` is empty under ``q``'s filters: cost, requests, unpriced calls, and for
    the calls without a tenant their distinct attributed users."""
    bq = Query(store.database, q.window)
    bq.filters = [*q.filters, f"{column} = ''"]
    bq.params = {**q.params}
    bq.has_tags, bq.has_user = q.has_tags, q.has_user
    users = column == "tenant_id"
    source = USER_ROLLUP if users else hourly  # distinct users need the user ids
    keys = ["tenant_id", "user_id"] if users else ["tenant_id"]
    union = bq.union(source, keys, _BUCKET_ROLLUP, _BUCKET_RAW, daily=DAILY_OF[source], grouped=False)
    count = "uniqExactIf(user_id, user_id != '')" if users else "0"
    sql = f"SELECT sum(c) AS cost, sum(n) AS requests, sum(u) AS unpriced, {count} AS users FROM ({union})"
    r = fetch(store, sql, bq.params)[0]
    return Bucket(Decimal(r["cost"]), int(r["requests"]), int(r["unpriced"]), int(r["users"]))


def tenant_ids(
    store: Store, *, start: TimeBound = None, end: TimeBound = None, limit: int = 200, sort_by: SortBy = "cost"
) -> list[str]:
    """The ids of the top ``limit`` tenants in the window (descending ``sort_by``), ``""`` among them when
    calls without a tenant rank there: the ranking alone, for menus and pickers, without the totals."""
    check_sort(sort_by, "desc")
    _page, limit = check_paging(1, limit)
    q = Query(store.database, plan(start, end))
    return [r["tenant_id"] for r in rank(store, q, TENANT_ROLLUP, ["tenant_id"], sort_by, "desc", 1, limit)[0]]


def user_ids(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    tenant_id: str | None = None,
    limit: int = 200,
) -> list[str]:
    """The ids of the top ``limit`` users by cost in the window (each once, whatever their tenants), for menus."""
    _page, limit = check_paging(1, limit)
    q = Query(store.database, plan(start, end))
    q.where_equal("tenant_id", tenant_id)
    q.filters.append("user_id != ''")
    return [r["user_id"] for r in rank(store, q, USER_ROLLUP, ["user_id"], "cost", "desc", 1, limit)[0]]


def rank(
    store: Store,
    q: Query,
    hourly: str,
    keys: list[str],
    sort_by: str,
    sort_dir: str,
    page: int,
    limit: int,
    *,
    extra: int = 0,
) -> tuple[list[dict[str, Any]], int, int]:
    """One page of ``keys`` ranked by the sort key alone, how many there are in all, and the page's number:
    a page past the end is the last page (of the ranked rows and ``extra`` rows listed after them)."""
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

    rows = ranked(limit, (page - 1) * limit)
    if rows:
        return rows, int(rows[0]["total_rows"]), page
    if page == 1:
        return [], 0, 1
    first = ranked(1, 0)  # past the last page: the count comes from the first row, then the last page
    total = int(first[0]["total_rows"]) if first else 0
    if page <= pages_of(total + extra, limit):
        return [], total, page  # a page of the extra rows only
    last = pages_of(total + extra, limit)
    return (ranked(limit, (last - 1) * limit) if total else []), total, last
