"""The budgets report: every budgeted subject with its spend this period, its limit, the share used and the
spend projected to the end of the period at the rate so far — over-budget subjects first.

Read from the store alone (what every process has stored). A subject with a budget of its own is always
listed; a default (tenant or tag) lists the users it applies to who spent something this period.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from .._model.rows import doc
from .._store.store import Store
from .book import KIND_OF_SCOPE, BudgetBook
from .model import Budget
from .periods import Window
from .spend import Kind, Subject, spend, subject_of
from .store import load

_ZERO = Decimal("0.000000000000")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budgeted subject in the current period."""

    budget: Budget = doc("The budget.")
    tenant_id: str = doc("The subject's tenant (empty for a user budget counted in every tenant).")
    user_id: str = doc("The subject's user (empty for a tenant budget).")
    period_start: datetime = doc("The period's start (UTC).")
    period_end: datetime = doc("The period's end, exclusive (UTC).")
    spent: Decimal = doc("USD spent this period (stored calls).")
    projected: Decimal | None = doc("USD at the end of the period at the rate so far; null for a lifetime budget.")

    @property
    def limit(self) -> Decimal:
        return self.budget.limit

    @property
    def used_pct(self) -> Decimal:
        """Spend as a percentage of the limit, to a hundredth (100 for any spend against a $0 budget)."""
        if not self.budget.limit:
            return Decimal(100) if self.spent else _ZERO
        return (self.spent * 100 / self.budget.limit).quantize(_CENT, rounding=ROUND_HALF_UP)

    @property
    def remaining(self) -> Decimal:
        """The limit minus the spend (negative when over)."""
        return self.budget.limit - self.spent

    @property
    def over(self) -> bool:
        """Whether the budget is used up: spend at or past a limit."""
        return self.spent >= self.budget.limit and self.spent > 0

    @property
    def subject(self) -> str:
        """Who, as people read it."""
        if self.budget.is_default:
            return f"user {self.user_id} in tenant {self.tenant_id}" if self.tenant_id else f"user {self.user_id}"
        return self.budget.subject


def visible_to(budget: Budget, tenant_id: str) -> bool:
    """Whether a tenant's token may see this budget: it limits spend within that tenant only (a user budget
    counts the user's spend in every tenant, so it is an administrator's)."""
    if budget.scope == "user":
        return False
    return budget.tenant_id == tenant_id or (budget.scope == "tag_default" and budget.tenant_id == "")


def report(
    store: Store,
    *,
    now: datetime | None = None,
    tenant_id: str | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    over_only: bool = False,
    budgets: Iterable[Budget] | None = None,
    tenants_too: bool = False,
) -> list[BudgetStatus]:
    """Every budgeted subject this period, over-budget first, then by share used.

    Args:
        tenant_id: Only subjects within this tenant (what a tenant's token may see).
        pairs: Only these (tenant, user) pairs' user-level budgets (a page of the dashboard); with
            ``tenants_too``, their tenants' budgets as well.
        over_only: Only subjects at or past their limit.
        budgets: The budgets (default: read from the store).
    """
    now = now or datetime.now(UTC)
    everything = list(budgets) if budgets is not None else load(store)
    book = BudgetBook(everything)
    shown = [b for b in everything if tenant_id is None or visible_to(b, tenant_id)]
    wanted = set(pairs) if pairs is not None else None
    rows: list[BudgetStatus] = []
    explicit: dict[tuple[Kind, datetime, datetime], list[tuple[Budget, Subject, Window]]] = {}
    for budget in shown:
        window = budget.window(now)
        if window is None:
            continue
        if budget.is_default:
            rows.extend(_default_rows(store, book, budget, window, now, tenant_id, wanted))
            continue
        kind = KIND_OF_SCOPE[budget.scope]
        subject = subject_of(kind, budget.tenant_id, budget.user_id)
        if wanted is not None and not _touches(kind, subject, wanted, tenants_too):
            continue
        explicit.setdefault((kind, window.start, window.end), []).append((budget, subject, window))
    for (kind, start, end), members in explicit.items():
        got = spend(store, kind, start, end, subjects=[s for _, s, _ in members])
        for budget, subject, window in members:
            spent = got[subject].cost if subject in got else _ZERO
            rows.append(BudgetStatus(budget, subject[0], subject[1], start, end, spent, window.projected(spent, now)))
    if over_only:
        rows = [r for r in rows if r.over]
    rows.sort(key=lambda r: (not r.over, -r.used_pct, r.subject, r.budget.period))
    return rows


def _touches(kind: Kind, subject: Subject, pairs: set[tuple[str, str]], tenants_too: bool) -> bool:
    if kind == "pair":
        return subject in pairs
    if kind == "user":
        return any(u == subject[1] for _, u in pairs)
    return tenants_too and any(t == subject[0] for t, _ in pairs)


def _default_rows(
    store: Store,
    book: BudgetBook,
    budget: Budget,
    window: Window,
    now: datetime,
    tenant_id: str | None,
    pairs: set[tuple[str, str]] | None,
) -> list[BudgetStatus]:
    """The users a default applies to who spent something this period (without a budget of their own)."""
    tenants = [budget.tenant_id] if budget.tenant_id else [tenant_id] if tenant_id is not None else None
    subjects = sorted(p for p in pairs if tenants is None or p[0] in tenants) if pairs is not None else None
    if budget.scope == "tenant_default":
        got = spend(store, "pair", window.start, window.end, tenants=tenants, subjects=subjects)
    else:
        tagged = spend(
            store,
            "pair",
            window.start,
            window.end,
            tenants=tenants,
            subjects=subjects,
            tags={budget.tag_key: budget.tag_value},
        )
        got = spend(store, "pair", window.start, window.end, subjects=sorted(tagged)) if tagged else {}
    out = []
    for (tenant, user), read in got.items():
        if user and not book.own(tenant, user):
            out.append(
                BudgetStatus(
                    budget, tenant, user, window.start, window.end, read.cost, window.projected(read.cost, now)
                )
            )
    return out
