"""``Billing``: what changes billing's data — markups, revenue imports, repricing — bound to one store.

The questions (statements, margins) are :class:`~spanledger.Ledger` methods; this is the other half.
"""

from __future__ import annotations

from pathlib import Path

from .._pricing.pricer import Pricer
from .._query.timebound import TimeBound
from .._store.rebuild import GRACE_SECONDS
from .._store.store import Store
from . import markups, revenue
from .model import Markup, RepriceReport, RevenueImport
from .reprice import reprice as _reprice


class Billing:
    """Markups, revenue and repricing for one ledger store.

    Args:
        store: A DSN (default ``SPANLEDGER_STORE``) or an open :class:`~spanledger.Store`.
    """

    def __init__(self, store: str | Store | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)

    def markups(self) -> list[Markup]:
        """The markups in force (user, tenant, plan, default)."""
        return markups.Markups.load(self.store).items

    def set_markup(
        self,
        percent: object,
        *,
        tenant: str | None = None,
        user: str | None = None,
        plan: str | None = None,
        note: str = "",
    ) -> Markup:
        """Set a markup (``"20"`` = +20 %) for one user, tenant or plan — or, naming none, the default."""
        scope, key = _scope(tenant=tenant, user=user, plan=plan)
        return markups.set_markup(self.store, scope, key, percent, note=note)

    def remove_markup(self, *, tenant: str | None = None, user: str | None = None, plan: str | None = None) -> bool:
        """Remove a markup (the default when naming none); whether one was in force."""
        scope, key = _scope(tenant=tenant, user=user, plan=plan)
        return markups.remove_markup(self.store, scope, key)

    def import_revenue(self, path: str | Path, *, dry_run: bool = False) -> RevenueImport:
        """Import a revenue CSV file, whole or not at all (see :mod:`spanledger._billing.revenue`)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise revenue.RevenueFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return revenue.import_revenue(self.store, text, name=path.name, dry_run=dry_run)

    def reprice(
        self,
        *,
        start: TimeBound,
        end: TimeBound,
        provider: str | None = None,
        model: str | None = None,
        price_file: str | Path | None = None,
        pricer: Pricer | None = None,
        dry_run: bool = False,
        grace_seconds: float = GRACE_SECONDS,
    ) -> RepriceReport:
        """Price the calls of a window again and rewrite those whose cost changes (see
        :mod:`spanledger._billing.reprice`)."""
        return _reprice(
            self.store,
            start=start,
            end=end,
            provider=provider,
            model=model,
            price_file=price_file,
            pricer=pricer,
            dry_run=dry_run,
            grace_seconds=grace_seconds,
        )


def _scope(*, tenant: str | None, user: str | None, plan: str | None) -> tuple[str, str]:
    from .._errors import ConfigError

    named = [(s, k) for s, k in (("user", user), ("tenant", tenant), ("plan", plan)) if k is not None]
    if len(named) > 1:
        raise ConfigError("a markup is for one user, one tenant or one plan (or the default): name one")
    return named[0] if named else ("default", "")
