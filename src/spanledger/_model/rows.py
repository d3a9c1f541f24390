"""The rows queries return: users, tenants, models, days, an overview, one user's detail, and pages of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Generic, TypeVar

from .call import StoredCall
from .usage import Usage

UNATTRIBUTED_LABEL = "(unattributed)"
"""How a call with no user is shown; it is stored with ``user_id = ''``."""
NO_TENANT_LABEL = "(no tenant)"
"""How a call with no tenant is shown; it is stored with ``tenant_id = ''``."""

SORT_KEYS: tuple[str, ...] = ("cost", "requests", "tokens", "last_seen")
"""What a ranking of users or tenants can be sorted by (the query layer maps each to its SQL)."""

T = TypeVar("T")


class _Labelled:
    """``label`` and ``attributed`` for the rows that name a user."""

    __slots__ = ()
    user_id: str

    @property
    def label(self) -> str:
        """The user id, or ``(unattributed)`` for the calls that carried none."""
        return self.user_id or UNATTRIBUTED_LABEL

    @property
    def attributed(self) -> bool:
        """Whether the row is a real user (not the unattributed calls)."""
        return bool(self.user_id)


@dataclass(frozen=True, slots=True)
class UserRow(_Labelled):
    """One user and their totals: within one tenant in a ranking, across their tenants in a user's detail."""

    user_id: str
    """``""`` for calls with no user: see :attr:`label`."""
    tenant_ids: tuple[str, ...]
    """The tenants of the calls counted (one in a ranking, where a row is a (tenant, user) pair)."""
    usage: Usage
    distinct_models: int
    """Models the user's calls were answered by (failed calls that never reached a model are not one)."""
    top_model: str
    """The model this user spent the most on in the window."""

    @property
    def tenant_id(self) -> str:
        """The row's tenant when it has exactly one (always, in a ranking); ``""`` otherwise."""
        return self.tenant_ids[0] if len(self.tenant_ids) == 1 else ""


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One tenant and its totals."""

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
    """Distinct attributed (tenant, user) pairs with calls."""
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
class ModelRow:
    """One model's totals (within a user's detail)."""

    provider: str
    model: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class DailyRow:
    """One UTC day (optionally of one user or tenant)."""

    day: date
    cost: Decimal
    requests: int
    active_users: int
    """Distinct attributed (tenant, user) pairs with calls that day, exact."""
    key: str = ""
    """The user or tenant id when the series was asked per user or per tenant."""


@dataclass(frozen=True, slots=True)
class Overview:
    """One window at a glance (``Ledger.overview``): what the dashboard's front page shows."""

    totals: Totals
    """Everything summed; ``active_users`` is exact: the attributed (tenant, user) pairs with calls."""
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
class Page(Generic[T]):
    """One page of rows and the number of rows on all pages."""

    rows: list[T]
    total: int
    """Rows on all pages."""
    page: int
    """This page's number, from 1."""
    limit: int
    """Rows per page."""

    @property
    def pages(self) -> int:
        """How many pages there are (at least 1)."""
        return max(1, -(-self.total // self.limit))


@dataclass(frozen=True, slots=True)
class UserDetail:
    """One user's totals, per-model breakdown, daily series and most recent calls."""

    user_id: str
    summary: UserRow | None
    """``None`` when the user has no calls in the window."""
    models: list[ModelRow]
    daily: list[DailyRow]
    calls: list[StoredCall] = field(default_factory=list)
    """The most recent calls, newest first."""
