"""The rows queries return — users, tenants, models, tools, days, an overview, one user's detail, pages of
them — each field with one line of meaning, which the JSON and CSV records and the API's schema show."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from .call import StoredCall
from .customer import Customer
from .usage import Metric, Usage, metric

UNATTRIBUTED_LABEL = "(unattributed)"
"""How a call with no user is shown; it is stored with ``user_id = ''``."""
NO_TENANT_LABEL = "(no tenant)"
"""How a call with no tenant is shown; it is stored with ``tenant_id = ''``."""
UNNAMED_TOOL = "(unnamed)"
"""How a tool execution whose span names no tool is shown; it is stored with ``tool_name = ''``."""


def doc(meaning: str, **kwargs: Any) -> Any:
    """A row field and one line of what it holds."""
    return dataclasses.field(metadata={"doc": meaning}, **kwargs)


SORT_KEYS: tuple[str, ...] = ("cost", "requests", "tokens", "last_seen")
"""What a ranking of users or tenants can be sorted by (the query layer maps each to its SQL)."""

USERS_COUNTED = "Users with calls: distinct attributed (tenant, user) pairs, exact; unattributed calls are no user."
"""How users are counted everywhere: the overview, the users page, the API, the CLI."""
TENANTS_COUNTED = "Tenants with calls: distinct tenant ids, exact; the calls without a tenant are no tenant."
"""How tenants are counted everywhere."""

T = TypeVar("T")
_USER = 'The user; "" for the calls that carried none (shown as "(unattributed)").'
_TENANT = 'The tenant; "" for the calls that carried none.'
_USAGE = "Totals over the window."
_NAME = 'The display name of their customer profile; "" when they have none.'
_TENANT_NAME = 'The display name of the tenant\'s own profile; "" when it has none.'
_TOOL_CALLS = "Tool executions attributed to the user (in the row's tenant) in the window."
# Fields passed by keyword only (dataclasses.field, so that type checkers see it): they sit beside the field
# they belong with, which the records keep, without breaking the positional order of the others.


class _Labelled:
    """``label`` and ``attributed`` for the rows that name a user."""

    __slots__ = ()
    user_id: str

    @property
    def label(self) -> str:
        """The user id, or "(unattributed)" for the calls that carried none."""
        return self.user_id or UNATTRIBUTED_LABEL

    @property
    def attributed(self) -> bool:
        """Whether the row is a user (not the calls that carried none)."""
        return bool(self.user_id)


@dataclass(frozen=True, slots=True)
class UserRow(_Labelled):
    """One user and their totals: within one tenant in a ranking, across their tenants in a user's detail."""

    user_id: str = doc(_USER)
    display_name: str = dataclasses.field(default="", kw_only=True, metadata={"doc": _NAME})
    tenant_ids: tuple[str, ...] = doc(
        "The tenants of the calls counted (one in a ranking: a row is a (tenant, user) pair)."
    )
    usage: Usage = doc(_USAGE)
    distinct_models: int = doc("Models that answered at least one of the user's calls (failed calls do not count).")
    top_model: str = doc("The model the user spent the most on in the window.")
    previous_cost: Decimal | None = doc(
        "Cost in the previous window of the same length; null when not compared (or the window has no start).",
        default=None,
    )
    tool_calls: int = dataclasses.field(default=0, kw_only=True, metadata={"doc": _TOOL_CALLS})

    @property
    def tenant_id(self) -> str:
        """The row's tenant when it has exactly one (always, in a ranking); "" otherwise."""
        return self.tenant_ids[0] if len(self.tenant_ids) == 1 else ""


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One tenant and its totals."""

    tenant_id: str = doc(_TENANT)
    display_name: str = dataclasses.field(default="", kw_only=True, metadata={"doc": _TENANT_NAME})
    usage: Usage = doc(_USAGE)
    active_users: int = doc("Users with calls: distinct attributed user ids, exact.")
    previous_cost: Decimal | None = doc(
        "Cost in the previous window of the same length; null when not compared (or the window has no start).",
        default=None,
    )

    @property
    def label(self) -> str:
        """The tenant id, or "(no tenant)" for the calls that carried none."""
        return self.tenant_id or NO_TENANT_LABEL


@dataclass(frozen=True, slots=True)
class Totals:
    """Everything in a window summed (``Ledger.totals``); distinct traces are not counted (``usage.traces``
    is ``None``): merging every trace state costs ten times all the sums together."""

    usage: Usage = doc(_USAGE)
    active_users: int = doc(USERS_COUNTED)
    tenants: int = doc(TENANTS_COUNTED)


@dataclass(frozen=True, slots=True)
class TopUser(_Labelled):
    """One user (within one tenant) in an :class:`Overview`: what a leaderboard shows, not every metric."""

    user_id: str = doc(_USER)
    display_name: str = dataclasses.field(default="", kw_only=True, metadata={"doc": _NAME})
    tenant_id: str = doc(_TENANT)
    cost: Decimal = doc("Exact USD of the priced calls.")
    requests: int = doc("LLM calls.")
    unpriced_requests: int = doc("Calls with no known price: not in cost.")


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model's totals (within a user's detail)."""

    provider: str = doc("The provider.")
    model: str = doc("The model that answered.")
    usage: Usage = doc(_USAGE)


@dataclass(frozen=True, slots=True)
class DailyRow:
    """One UTC day (optionally of one user or tenant)."""

    day: date = doc("The UTC day.")
    cost: Decimal = doc("Exact USD of the priced calls.")
    requests: int = doc("LLM calls.")
    active_users: int = doc("Distinct attributed (tenant, user) pairs with calls that day: exact.")
    key: str = doc("The user or tenant id, when the series is per user or per tenant.", default="")


@dataclass(frozen=True, slots=True)
class Overview:
    """One window at a glance (``Ledger.overview``): what the dashboard's front page shows."""

    totals: Totals = doc("Everything summed; active_users is exact: the attributed (tenant, user) pairs with calls.")
    unattributed_cost: Decimal = doc("Spend of the calls that carried no user id (in every tenant).")
    unattributed_requests: int = doc("Calls that carried no user id.")
    no_tenant_cost: Decimal = doc("Spend of the calls that carried no tenant id.")
    no_tenant_requests: int = doc("Calls that carried no tenant id.")
    top_users: list[TopUser] = doc("The costliest users, ties by tenant and user id, as Ledger.users ranks them.")
    top_tenants: list[TenantRow] = doc("The costliest tenants (traces not counted), as Ledger.tenants ranks them.")
    daily: list[DailyRow] = doc("Cost, requests and active users per UTC day, as Ledger.daily gives them.")
    previous: Totals | None = doc(
        "The same totals over the previous window of the same length; null when the window has no start.",
        default=None,
    )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of rows and the number of rows on all pages."""

    rows: list[T] = doc("The page's rows.")
    total: int = doc("Rows on all pages.")
    page: int = doc("This page, from 1 (a page past the end is the last page).")
    limit: int = doc("Rows per page.")
    unnamed: Bucket | None = doc(
        "The calls with no user id (no tenant id, for tenants) under the same filters: never a row, never counted.",
        default=None,
    )
    inactive: int = doc(
        "Of ``total``, customers with a profile and no calls in the window (listed after the others when asked).",
        default=0,
    )

    @property
    def pages(self) -> int:
        """How many pages there are (at least 1)."""
        return pages_of(self.total, self.limit)


def pages_of(total: int, limit: int) -> int:
    """How many pages ``total`` rows fill, ``limit`` a page (at least 1: an empty list is one empty page)."""
    return max(1, -(-total // limit))


@dataclass(frozen=True, slots=True)
class UserDetail:
    """One user's totals, per-model breakdown, daily series and most recent calls."""

    user_id: str = doc(_USER)
    summary: UserRow | None = doc("None when the user has no calls in the window.")
    models: list[ModelRow] = doc("Per model, costliest first.")
    daily: list[DailyRow] = doc("Per UTC day with calls.")
    calls: list[StoredCall] = doc("The most recent calls, newest first.", default_factory=list)
    profile: Customer | None = doc("The user's customer profile (in their tenant), None when none.", default=None)
    tools: list[ToolRow] = doc("Tool executions per tool, most used first.", default_factory=list)


@dataclass(frozen=True, slots=True)
class Bucket:
    """The calls that carried no user id (or no tenant id): spend without a name, shown apart from the ranking."""

    cost: Decimal = doc("Exact USD of the priced calls.")
    requests: int = doc("LLM calls.")
    unpriced_requests: int = doc("Calls with no known price: not in cost.")
    users: int = doc("Distinct attributed users among them (for the calls without a tenant).", default=0)


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of the calls explorer, newest first, and the cursors to the pages beside it."""

    calls: list[StoredCall] = doc("The calls, newest first.")
    limit: int = doc("Calls per page.")
    next: str | None = doc("Cursor to the older calls (null: none).")
    prev: str | None = doc("Cursor to the newer calls (null: this is the newest page).")


@dataclass(frozen=True, slots=True)
class TenantDetail:
    """One tenant: totals, per-model breakdown and daily series."""

    tenant_id: str = doc(_TENANT)
    summary: TenantRow | None = doc("None when the tenant has no calls in the window.")
    models: list[ModelRow] = doc("Per model, costliest first.")
    daily: list[DailyRow] = doc("Per UTC day with calls.")


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One value of a tag (one plan, one feature) and its totals."""

    value: str = doc('The tag\'s value; "" for the calls that do not carry the tag.')
    usage: Usage = doc(_USAGE)
    active_users: int = doc("Users with calls: distinct attributed (tenant, user) pairs, exact.")
    previous_cost: Decimal | None = doc(
        "Cost in the previous window of the same length; null when not compared (or the window has no start).",
        default=None,
    )


@dataclass(frozen=True, slots=True)
class TagChoice:
    """A tag key or value offered in a menu, with the spend it carries in the window."""

    key: str = doc("The tag key.")
    value: str = doc('The value ("" in the list of keys).')
    cost: Decimal = doc("Exact USD of the priced calls carrying it.")
    requests: int = doc("LLM calls carrying it.")


_PER_USER = "null when the row sums every user asked about."


@dataclass(frozen=True, slots=True)
class ToolRow:
    """One tool's executions over a window: of one user within one tenant, or of every user asked about.

    Its metric fields say how each is computed from ``tool_calls`` (aliased ``r``) and merged across tiers,
    like :class:`Usage`'s: the hourly tool rollup and the tool queries derive from them."""

    tool_name: str = doc('The tool; "" when its spans named none (shown as "(unnamed)").')
    tenant_id: str | None = doc(f'The user\'s tenant ("" for none); {_PER_USER}')
    user_id: str | None = doc(f'The user ("" for executions that carried none); {_PER_USER}')
    calls: int = metric("count()", "sum", "UInt64", "Tool executions.")
    errors: int = metric("sum(r.is_error)", "sum", "UInt64", "Executions that ended in an error.")
    duration_us: int = metric("sum(r.duration_us)", "sum", "UInt64", "Time spent in the tool (µs).")
    last_seen: datetime | None = metric("max(r.timestamp)", "max", "DateTime64(6, 'UTC')", "The last execution.")

    @property
    def label(self) -> str:
        """The tool's name, or "(unnamed)"."""
        return self.tool_name or UNNAMED_TOOL

    @property
    def avg_duration_ms(self) -> float:
        """Mean duration of an execution, in milliseconds."""
        return self.duration_us / self.calls / 1000 if self.calls else 0.0


TOOL_METRICS: tuple[Metric, ...] = tuple(
    Metric(f.name, f.metadata["raw"], f.metadata["merge"], f.metadata["ch"], f.metadata["doc"], True)
    for f in dataclasses.fields(ToolRow)
    if "raw" in f.metadata
)
"""The tool rollup's metric columns, in order (each over ``tool_calls`` aliased ``r``)."""
