"""``Ledger``: who costs what — the public façade over the query modules (and the customer profiles that put
names to the ids).

Windows are exact to the microsecond: whole days come from the daily rollups, whole hours from the hourly
rollups, the partial hours at either edge from the raw ``llm_calls`` table, in one query (``tiers``,
``sql``). The questions themselves live in ``rankings``, ``detail``, ``series`` and ``overview``; each
method here is one of them, bound to the ledger's store (same arguments, same documentation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from .._customers import store as profiles
from .._store.store import Store
from . import detail, overview, rankings, series, tools

P = ParamSpec("P")
R = TypeVar("R")


def _on_store(question: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Ledger, P], R]:
    """A query module's function as a method that asks the ledger's store."""

    @functools.wraps(question)
    def method(self: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return question(self.store, *args, **kwargs)

    return method


class Ledger:
    """Questions about spend — who, which tenant, which model, which day, which tools — and the customer
    profiles that name the users and tenants (the one thing it writes).

    Args:
        store: A DSN (default ``SPANLEDGER_STORE``) or an open :class:`Store`.
    """

    def __init__(self, store: str | Store | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)

    users = _on_store(rankings.users)
    tenants = _on_store(rankings.tenants)
    tenant_ids = _on_store(rankings.tenant_ids)
    user = _on_store(detail.user)
    call = _on_store(detail.find_call)
    totals = _on_store(overview.totals)
    overview = _on_store(overview.overview)
    daily = _on_store(series.daily)
    tools = _on_store(tools.tools)
    customers = _on_store(profiles.listing)
    customer = _on_store(profiles.get)
    upsert_customers = _on_store(profiles.upsert_customers)
