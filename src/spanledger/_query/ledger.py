"""``Ledger``: who costs what — the public façade over the query modules (and the customer profiles that put
names to the ids).

Windows are exact to the microsecond: whole days come from the daily rollups, whole hours from the hourly
rollups, the partial hours at either edge from the raw ``llm_calls`` table, in one query (``tiers``,
``sql``). The questions themselves live in ``rankings``, ``detail``, ``series``, ``overview``, ``calls``
and ``segments``; each method here is one of them, bound to the ledger's store (same arguments, same documentation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from .._billing import margins, statements
from .._customers import store as profiles
from .._store.store import Store
from . import calls as calls_
from . import detail, menus, rankings, series, tools
from . import overview as overview_
from . import segments as segments_

if TYPE_CHECKING:
    from .._privacy.forget import ForgetReport

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
    user_ids = _on_store(rankings.user_ids)
    tenant = _on_store(detail.tenant)
    seen = _on_store(detail.seen)
    similar = _on_store(detail.similar)
    calls = _on_store(calls_.calls)
    count_calls = _on_store(calls_.count_calls)
    trace = _on_store(calls_.trace)
    segments = _on_store(segments_.segments)
    tag_keys = _on_store(menus.tag_keys)
    tag_values = _on_store(menus.tag_values)
    models = _on_store(menus.models)
    totals = _on_store(overview_.totals)
    overview = _on_store(overview_.overview)
    daily = _on_store(series.daily)
    tools = _on_store(tools.tools)
    customers = _on_store(profiles.listing)
    customer = _on_store(profiles.get)
    upsert_customers = _on_store(profiles.upsert_customers)
    statement = _on_store(statements.statement)
    margins = _on_store(margins.margins)

    def forget(self, user_id: str, **options: Any) -> ForgetReport:
        """Delete (``mode="delete"``) or anonymize (``mode="anonymize"``) one user's data everywhere; the one
        method that writes. See :func:`spanledger._privacy.forget.forget` for the options and what it does."""
        from .._privacy.forget import forget

        return forget(self.store, user_id, **options)
