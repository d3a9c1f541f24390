"""``Ledger``: who costs what — the public façade over the query modules.

Windows are exact to the microsecond: whole days come from the daily rollups, whole hours from the hourly
rollups, the partial hours at either edge from the raw ``llm_calls`` table, in one query (``tiers``,
``sql``). The questions themselves live in ``rankings``, ``detail``, ``series`` and ``overview``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from .._model.call import StoredCall
from .._model.rows import DailyRow, Overview, Page, TenantRow, Totals, UserDetail, UserRow
from .._store.store import Store
from . import detail, overview, rankings, series
from .rankings import SortBy, SortDir
from .timebound import TimeBound


class Ledger:
    """Read-only questions about spend: who, which tenant, which model, which day.

    Args:
        store: A DSN (default ``SPANLEDGER_STORE``) or an open :class:`Store`.
    """

    def __init__(self, store: str | Store | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)

    def users(
        self,
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
    ) -> Page[UserRow]:
        """A page of users (per tenant) with their totals, sorted; ``total`` counts all matching users.

        ``traces=False`` leaves distinct traces uncounted (``usage.traces`` is ``None``): merging the trace
        states of the heaviest users is the largest part of a page's cost.
        """
        return rankings.users(
            self.store,
            sort_by=sort_by,
            sort_dir=sort_dir,
            page=page,
            limit=limit,
            search=search,
            start=start,
            end=end,
            tenant_id=tenant_id,
            tags=tags,
            traces=traces,
        )

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
        return detail.user(self.store, user_id, start=start, end=end, tenant_id=tenant_id, calls=calls)

    def call(self, trace_id: int, span_id: int, *, tenant_id: str | None = None) -> StoredCall | None:
        """One stored call by its trace and span id (``tenant_id``: only within that tenant)."""
        return detail.find_call(self.store, trace_id, span_id, tenant_id=tenant_id)

    def tenants(
        self,
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
        """A page of tenants with their totals and active users (``tenant_id``: that tenant only);
        ``traces=False`` as in :meth:`users`."""
        return rankings.tenants(
            self.store,
            sort_by=sort_by,
            sort_dir=sort_dir,
            page=page,
            limit=limit,
            search=search,
            start=start,
            end=end,
            tags=tags,
            tenant_id=tenant_id,
            traces=traces,
        )

    def tenant_ids(
        self, *, start: TimeBound = None, end: TimeBound = None, limit: int = 200, sort_by: SortBy = "cost"
    ) -> list[str]:
        """The ids of the top ``limit`` tenants in the window (descending ``sort_by``): the ranking alone,
        for menus and pickers, without the per-tenant totals."""
        return rankings.tenant_ids(self.store, start=start, end=end, limit=limit, sort_by=sort_by)

    def totals(
        self,
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
        return overview.totals(self.store, start=start, end=end, tenant_id=tenant_id, tags=tags)

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
        return overview.overview(self.store, start=start, end=end, tenant_id=tenant_id, tags=tags, top=top)

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
        return series.daily(self.store, start=start, end=end, user_id=user_id, tenant_id=tenant_id, per=per, tags=tags)
