"""Margins: each customer's imported revenue against what serving them cost, worst first.

Cost is read like a statement's (exact for the window) and marked up by the same rules, so a customer's
``price`` is what their statement charges. Revenue counts in a window when its period *starts* in it (a
month's invoice belongs to that month's window; it is never split across windows).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from .._errors import ConfigError
from .._query.tiers import plan as tiers
from .._query.timebound import TimeBound
from .._store.store import Store
from . import store as sql
from .markups import Markups
from .model import MarginBy, MarginRow
from .periods import window
from .rounding import exact_sum, marked_up, percent_of


def margins(
    store: Store,
    start: TimeBound = None,
    end: TimeBound = None,
    *,
    by: MarginBy = "tenant",
    period: str | None = None,
    tenant_id: str | None = None,
) -> list[MarginRow]:
    """Revenue, cost, marked-up price, gross margin and margin % per tenant (or per user id, across their
    tenants), worst margin first: customers with cost and no revenue, then by margin % ascending.

    ``tenant_id`` narrows it to one tenant: its own row, or (``by="user"``) its users' calls and the revenue
    lines that name that tenant.
    """
    if by not in ("tenant", "user"):
        raise ConfigError(f"bad margins by {by!r}: use tenant or user")
    lo, hi = window(period=period, start=start, end=end)
    w = tiers(lo, hi)
    markups = Markups.load(store)
    key = f"{by}_id"
    groups = sql.usage_groups(store, w, [key], markups, tenant_id=tenant_id)
    cost: dict[str, list[Decimal]] = defaultdict(list)
    price: dict[str, list[Decimal]] = defaultdict(list)
    requests: dict[str, int] = defaultdict(int)
    unpriced: dict[str, int] = defaultdict(int)
    for row in groups:
        customer, spent = row[key], Decimal(row["cost"])
        cost[customer].append(spent)
        price[customer].append(marked_up(spent, markups.labelled(row["markup"]).percent))
        requests[customer] += int(row["requests"])
        unpriced[customer] += int(row["unpriced_requests"])
    revenue = sql.revenue_by_customer(store, w, kind=by, tenant_id=tenant_id)
    if tenant_id is not None and by == "tenant":
        revenue = {k: v for k, v in revenue.items() if k == tenant_id}
    rows = []
    for customer in sorted(set(cost) | set(revenue)):
        spent = exact_sum(cost.get(customer, []))
        earned = revenue.get(customer, Decimal(0))
        margin = exact_sum([earned, -spent])
        rows.append(
            MarginRow(
                customer_id=customer,
                revenue=earned,
                cost=spent,
                price=exact_sum(price.get(customer, [])),
                gross_margin=margin,
                margin_pct=percent_of(margin, earned),
                requests=requests.get(customer, 0),
                unpriced_requests=unpriced.get(customer, 0),
            )
        )
    rows.sort(key=_worst_first)
    return rows


def _worst_first(row: MarginRow) -> tuple[int, Decimal, Decimal, str]:
    """Cost without revenue first (an infinitely negative margin), then by margin %, then by gross margin."""
    if row.margin_pct is None:
        return (0 if row.cost > 0 else 2, row.gross_margin, row.gross_margin, row.customer_id)
    return (1, row.margin_pct, row.gross_margin, row.customer_id)
