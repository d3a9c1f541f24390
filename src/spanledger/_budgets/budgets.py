"""``Budgets``: managing budgets from Python — the same operations as ``spanledger budgets`` and the API."""

from __future__ import annotations

import builtins
from datetime import datetime

from .._errors import ConfigError
from .._store.store import Store
from . import store as budget_store
from .model import Budget, make_budget
from .report import BudgetStatus, report


class Budgets:
    """The budgets kept in a ledger's store (shared by every process that uses the store).

    Args:
        store: A DSN (default ``SPANLEDGER_STORE``) or an open :class:`Store`.
    """

    def __init__(self, store: str | Store | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)

    def set(
        self,
        *,
        limit: object,
        period: str,
        user_id: str | None = None,
        tenant_id: str | None = None,
        tag: str | tuple[str, str] | None = None,
        default: bool = False,
        hard: bool = True,
        timezone: str | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        alert_at: object = None,
    ) -> Budget:
        """Set a budget (replacing the subject's budget for the same period); returns it as stored.

        Args:
            limit: USD, as a ``Decimal``, a whole number or a string (never a float).
            period: ``daily``, ``weekly``, ``monthly``, ``yearly``, ``custom`` (with ``starts_at`` and
                ``ends_at``) or ``lifetime``.
            user_id, tenant_id, tag, default: The subject (see :func:`make_budget`): a user, a tenant, both, a
                tenant's default for its users (``default=True``) or a tag's (``tag="plan=free"``).
            hard: Enforced by :class:`BudgetGuard` (True) or alerts only.
            timezone: IANA time zone the period's days start in (default UTC).
            alert_at: Alert thresholds in percent (default 50, 80, 100).

        Raises:
            ConfigError: Bad input (a negative or non-numeric limit, an unknown period or time zone …);
                nothing is changed.
        """
        budget = make_budget(
            limit=limit,
            period=period,
            user_id=user_id,
            tenant_id=tenant_id,
            tag=tag,
            default=default,
            hard=hard,
            timezone=timezone,
            starts_at=starts_at,
            ends_at=ends_at,
            alert_at=alert_at,
        )
        return budget_store.save(self.store, budget)

    def list(self, *, tenant_id: str | None = None) -> builtins.list[Budget]:
        """The current budgets (``tenant_id``: only those within that tenant)."""
        return budget_store.load(self.store, tenant_id=tenant_id)

    def get(self, budget_id: str) -> Budget | None:
        found = budget_store.load(self.store, ids=[budget_id])
        return found[0] if found else None

    def remove(
        self,
        budget_id: str | None = None,
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
        tag: str | tuple[str, str] | None = None,
        default: bool = False,
        period: str | None = None,
    ) -> builtins.list[Budget]:
        """Remove a budget by id, or a subject's budgets (all its periods, or ``period``); returns them.

        Raises:
            ConfigError: No such budget.
        """
        if budget_id is not None:
            return [budget_store.remove(self.store, budget_id)]
        probe = make_budget(
            limit=0, period="lifetime", user_id=user_id, tenant_id=tenant_id, tag=tag, default=default
        )  # the subject, checked as set() checks it
        matches = [
            b
            for b in budget_store.load(self.store)
            if (b.scope, b.tenant_id, b.user_id, b.tag_key, b.tag_value)
            == (probe.scope, probe.tenant_id, probe.user_id, probe.tag_key, probe.tag_value)
            and (period is None or b.period == period)
        ]
        if not matches:
            raise ConfigError(f"no {period + ' ' if period else ''}budget for {probe.subject}")
        return [budget_store.remove(self.store, b.id) for b in matches]

    def report(
        self, *, tenant_id: str | None = None, over_only: bool = False, now: datetime | None = None
    ) -> builtins.list[BudgetStatus]:
        """Every budgeted subject this period with spend, limit, share used and projection, over-budget first."""
        return report(self.store, tenant_id=tenant_id, over_only=over_only, now=now)
