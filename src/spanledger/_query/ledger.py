"""``Ledger``: who costs what, answered from the rollups.

Windows are exact to the microsecond: whole days come from the daily rollup, whole hours from the hourly
rollups, the partial hours at either edge from the raw ``llm_calls`` table, in one query (see
``_query.py``). Every user-supplied value is a bound query parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from .._errors import ConfigError
from .._store.schema import (
    DAILY_OF,
    RAW_TABLE,
    TENANT_DAILY_ROLLUP,
    TENANT_ROLLUP,
    USER_DAILY_ROLLUP,
    USER_MODEL_DAILY_ROLLUP,
    USER_MODEL_ROLLUP,
    USER_ROLLUP,
    USERS_STATE,
)
from .._store.store import Store
from .sql import SUMS, ZERO_COST, Query, Window, outer, raw_inner, rollup_inner, window
from .timebound import TimeBound

UNATTRIBUTED_LABEL = "(unattributed)"
"""How a call with no user is shown; it is stored with ``user_id = ''``."""

SortBy = Literal["cost", "requests", "tokens", "last_seen"]
MAX_LIMIT = 1000
# sort key -> (per-row expression on a rollup, on the raw table, the aggregate over both): ranks users
# exactly as the full metric of the same name would (rows of the tiers are aggregated once, ungrouped)
_RANK_KEYS = {
    "cost": ("cost", "ifNull(r.cost, toDecimal64(0, 12))", "sum"),
    "requests": ("requests", "toUInt64(1)", "sum"),
    "tokens": ("input_tokens + output_tokens", "r.input_tokens + r.output_tokens", "sum"),
    "last_seen": ("last_seen", "r.timestamp", "max"),
}

# a tenant's distinct users as per-tier states, from the per-tenant rollups and from the raw table
_USERS_ROLLUP = "uniqMergeState(users) AS users"
_USERS_RAW = f"{USERS_STATE} AS users"


@dataclass(frozen=True, slots=True)
class Usage:
    """Totals for one user, tenant, model or day over a window."""

    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Decimal
    """Exact USD of the priced calls; unpriced calls are counted in ``unpriced_requests``, not here."""
    unpriced_requests: int
    unpriced_tokens: int
    avg_latency_ms: float
    traces: int | None
    """Distinct traces (ClickHouse ``uniq``: exact for small counts, within ~1 % beyond); ``None`` when
    the query was asked not to count them (``traces=False``, the dashboard's tables)."""
    first_seen: datetime | None
    last_seen: datetime | None


class _Labelled:
    """``label`` and ``attributed`` for the rows that name a user."""

    __slots__ = ()
    user_id: str

    @property
    def label(self) -> str:
        return self.user_id or UNATTRIBUTED_LABEL

    @property
    def attributed(self) -> bool:
        return bool(self.user_id)


@dataclass(frozen=True, slots=True)
class UserRow(_Labelled):
    """One user (within one tenant) and their totals."""

    user_id: str
    """``""`` for calls with no user: see :attr:`label`."""
    tenant_id: str
    usage: Usage
    distinct_models: int
    top_model: str
    """The model this user spent the most on in the window."""


@dataclass(frozen=True, slots=True)
class TenantRow:
    tenant_id: str
    usage: Usage
    active_users: int
    """Distinct attributed users (``uniq``)."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Everything in a window summed (``Ledger.totals``)."""

    usage: Usage
    """Distinct traces are left out (``usage.traces`` is ``None``): counting them across every tenant
    means merging every trace state, ten times the cost of all the sums together."""
    active_users: int
    """Distinct attributed users per tenant, added up over tenants (``uniq``)."""
    tenants: int
    """Tenants with calls in the window, the calls without a tenant counted as one."""


@dataclass(frozen=True, slots=True)
class TopUser(_Labelled):
    """One user (within one tenant) in an :class:`Overview`: what a leaderboard shows, not every metric."""

    user_id: str
    """``""`` for calls with no user: see :attr:`label`."""
    tenant_id: str
    cost: Decimal
    requests: int
    unpriced_requests: int


@dataclass(frozen=True, slots=True)
class Overview:
    """One window at a glance (``Ledger.overview``): what the dashboard's front page shows."""

    totals: Totals
    """Everything summed; ``active_users`` is exact here: the attributed (tenant, user) pairs with calls."""
    unattributed_cost: Decimal
    """Spend of the calls that carried no user id (in every tenant)."""
    unattributed_requests: int
    top_users: list[TopUser]
    """The costliest users, ties by tenant and user id, as :meth:`Ledger.users` ranks them."""
    top_tenants: list[TenantRow]
    """The costliest tenants (without distinct traces), as :meth:`Ledger.tenants` ranks them."""
    daily: list[DailyRow]
    """Cost, requests and active users per UTC day, as :meth:`Ledger.daily` gives them."""


@dataclass(frozen=True, slots=True)
class ModelRow:
    provider: str
    model: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class DailyRow:
    day: date
    cost: Decimal
    requests: int
    active_users: int
    """Distinct attributed (tenant, user) pairs with calls that day, exact (see :meth:`Ledger.daily`)."""
    key: str = ""
    """The user or tenant id when the series was asked per user or per tenant."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows and the number of rows on all pages."""

    rows: list[Any]
    total: int
    page: int
    limit: int


@dataclass(frozen=True, slots=True)
class UserDetail:
    user_id: str
    summary: UserRow | None
    models: list[ModelRow]
    daily: list[DailyRow]
    calls: list[dict[str, Any]] = field(default_factory=list)
    """The most recent calls, newest first, each the full stored record."""


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _usage(row: Mapping[str, Any]) -> Usage:
    requests = int(row["requests"])
    return Usage(
        requests=requests,
        errors=int(row["errors"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        total_tokens=int(row["total_tokens"]),
        cost=Decimal(row["cost"]),
        unpriced_requests=int(row["unpriced_requests"]),
        unpriced_tokens=int(row["unpriced_tokens"]),
        avg_latency_ms=(int(row["latency_us"]) / requests / 1000) if requests else 0.0,
        traces=None if row["traces"] is None else int(row["traces"]),
        first_seen=_utc(row["first_seen"]),
        last_seen=_utc(row["last_seen"]),
    )


def _summed(rows: list[dict[str, Any]]) -> Usage:
    """The usage of several rows (each with every metric) added up; distinct traces are not addable."""
    total: dict[str, Any] = {m: sum((r[m] for r in rows), Decimal(0) if m == "cost" else 0) for m in SUMS}
    total["total_tokens"] = total["input_tokens"] + total["output_tokens"]
    total["first_seen"] = min((r["first_seen"] for r in rows), default=None)
    total["last_seen"] = max((r["last_seen"] for r in rows), default=None)
    total["traces"] = None
    return _usage(total)


class Ledger:
    """Read-only questions about spend: who, which tenant, which model, which day.

    Args:
        store: A DSN (default ``SPANLEDGER_STORE``) or an open :class:`Store`.
    """

    def __init__(self, store: str | Store | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        result = self.store.query(sql, params)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def users(
        self,
        *,
        sort_by: SortBy = "cost",
        sort_dir: Literal["asc", "desc"] = "desc",
        page: int = 1,
        limit: int = 50,
        search: str | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        tenant_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        traces: bool = True,
    ) -> Page:
        """A page of users (per tenant) with their totals, sorted; ``total`` counts all matching users.

        ``traces=False`` leaves distinct traces uncounted (``usage.traces`` is ``None``): merging the trace
        states of the heaviest users is the largest part of a page's cost.
        """
        self._check_sort(sort_by, sort_dir)
        page, limit = self._paging(page, limit)
        # A tag filter reads the raw table: the tags-keyed hourly rollups hold nearly one row per call
        # at high user counts and measured 4x slower than the raw table for it (bench Q5, 10M calls).
        q = Query(self.store.database, window(start, end, rollups=not tags))
        q.where_equal("tenant_id", tenant_id)
        q.where_search("user_id", search)
        q.where_tags(tags)
        # Two steps: rank every matching user by the sort key alone (one metric per user is what the
        # GROUP BY over ~all users costs), then compute every metric for the page's users only.
        keys = ["tenant_id", "user_id"]
        ranked, total = self._rank(q, USER_ROLLUP, keys, sort_by, sort_dir, limit, (page - 1) * limit)
        pairs = [(r["tenant_id"], r["user_id"]) for r in ranked]
        page_rows = self._page(q.window.by_day(), pairs, tags, traces=traces)
        out = []
        for pair in pairs:
            r = page_rows[pair]
            out.append(UserRow(pair[1], pair[0], _usage(r), distinct_models=int(r["models"]), top_model=r["top_model"]))
        return Page(rows=out, total=total, page=page, limit=limit)

    def _page(
        self, w: Window, pairs: list[tuple[str, str]], tags: Mapping[str, str] | None, *, traces: bool
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Every metric (distinct traces included), distinct models and top model by cost of the given
        (tenant, user) pairs, from the per-user-model tiers (whose daily tier has a projection by user)."""
        if not pairs:
            return {}
        q = Query(self.store.database, w)
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
        return {(r["tenant_id"], r["user_id"]): r for r in self._rows(sql, q.params)}

    def user(
        self,
        user_id: str,
        *,
        start: TimeBound = None,
        end: TimeBound = None,
        tenant_id: str | None = None,
        calls: int = 50,
    ) -> UserDetail:
        """One user's totals, per-model breakdown, daily cost and most recent calls (``""`` = unattributed)."""
        # One user's rows are a narrow range of the raw table's primary key in each day: reading them
        # directly beats the rollups for one user (10M calls, 30 days: 0.29 s vs 0.38 s for the heaviest
        # user with 217k calls, 0.16 s vs 0.22 s for one with 19). One pass over them, grouped by tenant,
        # model and day, gives the summary, the per-model breakdown and the daily series through GROUPING
        # SETS: 2x faster than three reads of the same rows (10M calls, heaviest and lightest user).
        q = Query(self.store.database, window(start, end, rollups=False))
        q.where_equal("user_id", user_id)
        q.where_equal("tenant_id", tenant_id)
        union = q.union(
            USER_MODEL_ROLLUP,
            ["tenant_id", "provider", "model", "day"],
            rollup_inner(traces=True),
            raw_inner(traces=True),
            daily=USER_MODEL_DAILY_ROLLUP,
        )
        sql = f"""
SELECT grouping(provider, model) = 0 AS per_model, grouping(day) = 0 AS per_day, provider, model, day,
       arraySort(groupUniqArray(tenant_id)) AS tenants, {outer(traces=True)}
FROM ({union})
GROUP BY GROUPING SETS ((provider, model), (day), ())"""
        rows = [r for r in self._rows(sql, q.params) if r["requests"]]
        models = [ModelRow(r["provider"], r["model"], _usage(r)) for r in rows if r["per_model"]]
        models.sort(key=lambda m: (-m.usage.cost, -m.usage.requests, m.model, m.provider))
        active = 1 if user_id else 0  # the distinct attributed users of a day with calls: this one
        daily = [DailyRow(r["day"], Decimal(r["cost"]), int(r["requests"]), active) for r in rows if r["per_day"]]
        daily.sort(key=lambda d: d.day)
        total = next((r for r in rows if not r["per_model"] and not r["per_day"]), None)
        if total is None:  # no calls in the window: nothing recent either
            return UserDetail(user_id=user_id, summary=None, models=models, daily=daily, calls=[])
        summary = UserRow(
            user_id=user_id,
            tenant_id=",".join(total["tenants"]),
            usage=_usage(total),
            distinct_models=len(models),
            top_model=models[0].model if models else "",
        )
        if tenant_id is None:
            # the user's tenants, now known, complete the key prefix (day, tenant, user): without them a
            # light user's recent calls read ~30 % of the raw table's granules at 10M calls
            q.where_in("tenant_id", list(total["tenants"]))
        recent = self._recent_calls(q, max(0, min(calls, MAX_LIMIT)))
        return UserDetail(user_id=user_id, summary=summary, models=models, daily=daily, calls=recent)

    def _recent_calls(self, q: Query, limit: int) -> list[dict[str, Any]]:
        if limit == 0:
            return []
        sql = f"""
SELECT * FROM {q.db}.{RAW_TABLE}
WHERE timestamp >= {{w_start:DateTime64(6, 'UTC')}} AND timestamp < {{w_end:DateTime64(6, 'UTC')}}{q.extra()}
ORDER BY timestamp DESC, span_id DESC
LIMIT {limit}"""
        rows = self._rows(sql, q.params)
        for row in rows:
            row["trace_id"] = f"{row['trace_id']:032x}"
            row["span_id"] = f"{row['span_id']:016x}"
            row["parent_span_id"] = f"{row['parent_span_id']:016x}"
            for key in ("timestamp", "inserted_at"):
                row[key] = _utc(row[key])
        return rows

    def tenants(
        self,
        *,
        sort_by: SortBy = "cost",
        sort_dir: Literal["asc", "desc"] = "desc",
        page: int = 1,
        limit: int = 50,
        search: str | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        tags: Mapping[str, str] | None = None,
        tenant_id: str | None = None,
        traces: bool = True,
    ) -> Page:
        """A page of tenants with their totals and active users (``tenant_id``: that tenant only);
        ``traces=False`` as in :meth:`users`."""
        self._check_sort(sort_by, sort_dir)
        page, limit = self._paging(page, limit)
        q = Query(self.store.database, window(start, end))
        q.where_equal("tenant_id", tenant_id)
        q.where_search("tenant_id", search)
        q.where_tags(tags)
        # Rank by the sort key alone, then count distinct traces and users for the page's tenants only:
        # the uniq states of a heavy tenant's traces cost ten times more to merge than every sum.
        ranked, total = self._rank(q, TENANT_ROLLUP, ["tenant_id"], sort_by, sort_dir, limit, (page - 1) * limit)
        if not ranked:
            return Page(rows=[], total=total, page=page, limit=limit)
        names = [r["tenant_id"] for r in ranked]
        pq = Query(self.store.database, q.window)
        pq.where_in("tenant_id", names)
        pq.where_tags(tags)
        by_name = {r["tenant_id"]: r for r in self._per_tenant(pq, users=True, traces=traces)}
        out = [TenantRow(n, _usage(by_name[n]), int(by_name[n]["active_users"])) for n in names]
        return Page(rows=out, total=total, page=page, limit=limit)

    def tenant_ids(
        self, *, start: TimeBound = None, end: TimeBound = None, limit: int = 200, sort_by: SortBy = "cost"
    ) -> list[str]:
        """The ids of the top ``limit`` tenants in the window (descending ``sort_by``): the ranking alone,
        for menus and pickers, without the per-tenant totals."""
        self._check_sort(sort_by, "desc")
        _page, limit = self._paging(1, limit)
        q = Query(self.store.database, window(start, end))
        return [r["tenant_id"] for r in self._rank(q, TENANT_ROLLUP, ["tenant_id"], sort_by, "desc", limit, 0)[0]]

    def _rank(
        self, q: Query, hourly: str, keys: list[str], sort_by: str, sort_dir: str, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of ``keys`` ranked by the sort key alone, and how many there are in all."""
        rollup_key, raw_key, outer_key = _RANK_KEYS[sort_by]
        union = q.union(hourly, keys, f"{rollup_key} AS k", f"{raw_key} AS k", daily=DAILY_OF[hourly], grouped=False)
        group = ", ".join(keys)
        order = f"{outer_key}(k) {sort_dir.upper()}, " + ", ".join(f"{k} ASC" for k in keys)

        def rank(limit: int, offset: int) -> list[dict[str, Any]]:
            sql = f"""
SELECT {group}, count() OVER () AS total_rows
FROM ({union})
GROUP BY {group}
ORDER BY {order}
LIMIT {limit} OFFSET {offset}"""
            return self._rows(sql, q.params)

        rows = rank(limit, offset)
        if not rows and offset > 0:  # past the last page: the count still comes from the first row
            first = rank(1, 0)
            return rows, int(first[0]["total_rows"]) if first else 0
        return rows, int(rows[0]["total_rows"]) if rows else 0

    def totals(
        self,
        *,
        start: TimeBound = None,
        end: TimeBound = None,
        tenant_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Totals:
        """Everything in the window summed: spend, requests, tokens, active users and tenants.

        Distinct traces are not counted here (see :class:`Totals`); every other figure is exact.
        """
        q = Query(self.store.database, window(start, end))
        q.where_equal("tenant_id", tenant_id)
        q.where_tags(tags)
        tenants = self._per_tenant(q, users=True, traces=False)
        active_users = sum(int(r["active_users"]) for r in tenants)
        return Totals(_summed(tenants), active_users=active_users, tenants=len(tenants))

    def _per_tenant(self, q: Query, *, users: bool, traces: bool) -> list[dict[str, Any]]:
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
        return self._rows(sql, q.params)

    def overview(
        self,
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
        _page, top = self._paging(1, top)
        uq = Query(self.store.database, window(start, end, rollups=not tags))  # as users() reads tags
        uq.where_equal("tenant_id", tenant_id)
        uq.where_tags(tags)
        top_users, attributed, unattributed_cost, unattributed_requests = self._top_users(uq, top)

        q = Query(self.store.database, window(start, end))
        q.where_equal("tenant_id", tenant_id)
        q.where_tags(tags)
        tenants = self._per_tenant(q, users=False, traces=False)
        names = [r["tenant_id"] for r in tenants[:top]]
        users = self._active_users(q.window, names, tags)
        top_tenants = [TenantRow(r["tenant_id"], _usage(r), users.get(r["tenant_id"], 0)) for r in tenants[:top]]
        totals = Totals(_summed(tenants), active_users=attributed, tenants=len(tenants))
        return Overview(
            totals=totals,
            unattributed_cost=unattributed_cost,
            unattributed_requests=unattributed_requests,
            top_users=top_users,
            top_tenants=top_tenants,
            daily=self._daily_pairs(q, key=None),
        )

    def _top_users(self, q: Query, top: int) -> tuple[list[TopUser], int, Decimal, int]:
        """The top users by cost with their requests and unpriced calls, the number of attributed users,
        and the unattributed cost and requests: one pass over the per-user tiers."""
        union = q.union(
            USER_ROLLUP,
            ["tenant_id", "user_id"],
            "cost AS c, requests AS n, unpriced_requests AS u",
            f"{_RANK_KEYS['cost'][1]} AS c, toUInt64(1) AS n, toUInt64(r.cost IS NULL) AS u",
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
        rows = self._rows(sql, q.params)
        if not rows:
            return [], 0, Decimal(0), 0
        out = [
            TopUser(r["user_id"], r["tenant_id"], Decimal(r["cost"]), int(r["requests"]), int(r["unpriced_requests"]))
            for r in rows
        ]
        first = rows[0]
        return out, int(first["attributed"]), Decimal(first["unattributed_cost"]), int(first["unattributed_requests"])

    def _active_users(self, w: Window, names: list[str], tags: Mapping[str, str] | None) -> dict[str, int]:
        """Distinct attributed users (``uniq``) of the given tenants."""
        if not names:
            return {}
        q = Query(self.store.database, w)
        q.where_in("tenant_id", names)
        q.where_tags(tags)
        union = q.union(
            TENANT_ROLLUP,
            ["tenant_id"],
            _USERS_ROLLUP,
            _USERS_RAW,
            daily=TENANT_DAILY_ROLLUP,
        )
        sql = f"SELECT tenant_id, uniqMerge(users) AS active_users FROM ({union}) GROUP BY tenant_id"
        return {r["tenant_id"]: int(r["active_users"]) for r in self._rows(sql, q.params)}

    def daily(
        self,
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
        q = Query(self.store.database, window(start, end))
        q.where_equal("user_id", user_id)
        q.where_equal("tenant_id", tenant_id)
        q.where_tags(tags)
        if per not in (None, "user", "tenant"):
            raise ConfigError(f"bad per {per!r}: use user or tenant")
        key = f"{per}_id" if per else None
        if per == "user" or user_id is not None:
            return self._daily(q, key=key)
        return self._daily_pairs(q, key=key)

    def _daily(self, q: Query, *, key: str | None) -> list[DailyRow]:
        """Per day (and ``key``): cost, requests and distinct attributed user ids (exact)."""
        keys = ["day"] + ([key] if key else [])
        inner_rollup = "sum(cost) AS cost, sum(requests) AS requests, groupUniqArray(user_id) AS users"
        inner_raw = f"{ZERO_COST} AS cost, count() AS requests, groupUniqArray(r.user_id) AS users"
        users = "length(arrayFilter(u -> u != '', arrayDistinct(arrayFlatten(groupArray(users)))))"
        union = q.union(USER_ROLLUP, keys, inner_rollup, inner_raw, daily=USER_DAILY_ROLLUP)
        sql = f"""
SELECT {", ".join(keys)}, sum(cost) AS cost, sum(requests) AS requests, {users} AS active_users
FROM ({union})
GROUP BY {", ".join(keys)}
ORDER BY {", ".join(keys)}"""
        return self._daily_rows(sql, q.params, key)

    def _daily_pairs(self, q: Query, *, key: str | None) -> list[DailyRow]:
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
            f"{_RANK_KEYS['cost'][1]} AS c, toUInt64(1) AS n",
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
        return self._daily_rows(sql, q.params, key)

    def _daily_rows(self, sql: str, params: dict[str, Any], key: str | None) -> list[DailyRow]:
        return [
            DailyRow(
                day=r["day"],
                cost=Decimal(r["cost"]),
                requests=int(r["requests"]),
                active_users=int(r["active_users"]),
                key=r.get(key, "") if key else "",
            )
            for r in self._rows(sql, params)
        ]

    @staticmethod
    def _check_sort(sort_by: str, sort_dir: str) -> None:
        if sort_by not in _RANK_KEYS:
            raise ConfigError(f"bad sort {sort_by!r}: use one of {', '.join(_RANK_KEYS)}")
        if sort_dir not in ("asc", "desc"):
            raise ConfigError(f"bad sort direction {sort_dir!r}: use asc or desc")

    @staticmethod
    def _paging(page: int, limit: int) -> tuple[int, int]:
        if not isinstance(page, int) or page < 1:
            raise ConfigError(f"bad page {page!r}: pages start at 1")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ConfigError(f"bad limit {limit!r}: between 1 and {MAX_LIMIT}")
        return page, limit
