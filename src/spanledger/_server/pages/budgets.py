"""The dashboard's budget parts: a budget column and an over-budget filter on ``/users``, a budget card on a user's
page. Computed here, handed to the templates as one context entry each (``budget``), drawn by the partials
``templates/_budget_*.html``.

A row of ``/users`` is a (tenant, user) pair; its cell shows the tightest budget that applies to it this period
(its own, else the defaults of its tenant or tags). ``?budget=over`` lists the users at or past a budget
instead of the ranking, with their totals in the page's window. A tenant token sees its tenant's only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from fastapi import Request
from markupsafe import Markup

from ..._budgets.model import Budget
from ..._budgets.report import BudgetStatus, report, visible_to
from ..._budgets.spend import spend
from ..._budgets.store import load
from ..._model.rows import Page, UserRow
from ..._model.usage import Usage
from ..._query import rankings
from ..._query.tiers import plan
from ..._store.store import Store
from ..auth import Principal

if TYPE_CHECKING:
    from .base import Filters


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def meter(status: BudgetStatus, width: int = 72) -> Markup:
    """A small bar of the share used (an SVG: the page's CSP allows no inline styles)."""
    used = min(Decimal(1), status.spent / status.limit) if status.limit else Decimal(1 if status.spent else 0)
    state = "over" if status.over else "near" if status.used_pct >= 80 else "ok"
    filled = max(float(used) * width, 2.0 if status.spent else 0.0)
    return Markup(
        f'<svg class="budget-meter budget-{state}" width="{width}" height="6" aria-hidden="true">'
        f'<rect class="budget-meter-bg" width="{width}" height="6" rx="3"/>'
        f'<rect class="budget-meter-fg" width="{filled:.1f}" height="6" rx="3"/></svg>'
    )


@dataclass
class UsersBudget:
    """What ``/users`` shows of budgets: the filter and, per row, the tightest budget."""

    over_only: bool
    shown: bool
    """Whether any budget exists to show (else neither column nor filter)."""
    on_url: str
    off_url: str
    budgets: list[Budget] = field(default_factory=list)
    cells: dict[tuple[str, str], list[BudgetStatus]] = field(default_factory=dict)
    over_page: Page[UserRow] | None = None
    meter = staticmethod(meter)

    def cell(self, row: UserRow) -> BudgetStatus | None:
        """The tightest budget of a row this period."""
        found = self.cells.get((row.tenant_id, row.user_id), [])
        return max(found, key=lambda s: (s.over, s.used_pct)) if found else None

    def count(self, row: UserRow) -> int:
        return len(self.cells.get((row.tenant_id, row.user_id), []))

    def fill(self, request: Request, principal: Principal, f: Filters, rows: list[UserRow]) -> None:
        """The budgets of the page's rows, in one report."""
        if not self.shown or not rows:
            return
        pairs = [(r.tenant_id, r.user_id) for r in rows if r.user_id]
        for status in report(_store(request), tenant_id=_scope(principal, f), pairs=pairs, budgets=self.budgets):
            for tenant, user in pairs:
                if status.user_id == user and status.tenant_id in ("", tenant):
                    self.cells.setdefault((tenant, user), []).append(status)


def _scope(principal: Principal, f: Filters) -> str | None:
    return principal.scope(f.tenant or None)


def users(request: Request, principal: Principal, f: Filters) -> UsersBudget:
    """The budget state of ``/users`` (``?budget=over``: the over-budget users, as a page of the ranking)."""
    store = _store(request)
    scope = _scope(principal, f)
    budgets = load(store)
    shown = any(scope is None or visible_to(b, scope) for b in budgets)
    view = UsersBudget(
        over_only=shown and f.get("budget") == "over",
        shown=shown,
        on_url=f.url_with("budget", "over"),
        off_url=f.url_with("budget", ""),
        budgets=budgets,
    )
    if view.over_only:
        view.over_page = _over_page(store, principal, f, budgets)
    return view


def _over_page(store: Store, principal: Principal, f: Filters, budgets: list[Budget]) -> Page[UserRow]:
    """The users at or past a budget this period, with their totals in the page's window, sorted as asked."""
    over = report(store, tenant_id=_scope(principal, f), over_only=True, budgets=budgets)
    pairs = {(s.tenant_id, s.user_id) for s in over if s.user_id and s.tenant_id}
    everywhere = sorted({s.user_id for s in over if s.user_id and not s.tenant_id})  # a user's budget in any tenant
    if everywhere:
        start, end = over[0].period_start, over[0].period_end
        for s in over:
            start, end = min(start, s.period_start), max(end, s.period_end)
        pairs |= set(spend(store, "pair", start, end, users=everywhere))
    scope = _scope(principal, f)
    pairs = {p for p in pairs if scope is None or p[0] == scope}
    if f.user is not None:
        pairs = {p for p in pairs if p[1] == f.user}
    if f.search:
        pairs = {p for p in pairs if f.search.lower() in p[1].lower()}
    window = plan(f.window.start, f.window.end).by_day()
    filled = rankings._fill(store, window, sorted(pairs), f.tags or None, traces=False) if pairs else {}
    empty = Usage.summed([])
    rows = []
    for tenant, user in pairs:
        got = filled.get((tenant, user))
        if got is None:
            rows.append(UserRow(user, (tenant,), empty, 0, ""))
        else:
            rows.append(UserRow(user, (tenant,), Usage.from_row(got), int(got["models"]), got["top_model"]))
    key = {
        "cost": lambda r: r.usage.cost,
        "requests": lambda r: r.usage.requests,
        "tokens": lambda r: r.usage.total_tokens,
        "last_seen": lambda r: r.usage.last_seen.timestamp() if r.usage.last_seen else 0.0,
    }[f.sort_by]
    rows.sort(key=lambda r: (r.tenant_id, r.user_id))
    rows.sort(key=key, reverse=f.sort_dir == "desc")
    first = (f.page - 1) * f.limit
    return Page(rows=rows[first : first + f.limit], total=len(rows), page=f.page, limit=f.limit)


@dataclass
class UserBudget:
    """The budget card of a user's page: every budget that applies to them (and their tenants') this period."""

    statuses: list[BudgetStatus]
    meter = staticmethod(meter)


def user(request: Request, principal: Principal, user_id: str, tenant_ids: tuple[str, ...], f: Filters) -> UserBudget:
    """Every budget of the user in the tenants of their calls in the window (and those tenants' own budgets);
    without calls in the window, the user's budgets within the tenant asked for."""
    if not user_id:
        return UserBudget([])
    scope = _scope(principal, f)
    tenants = [t for t in (tenant_ids or (f.tenant or "",)) if scope is None or t == scope]
    pairs = [(t, user_id) for t in tenants]
    if not pairs:
        return UserBudget([])
    return UserBudget(report(_store(request), tenant_id=scope, pairs=pairs, tenants_too=bool(tenant_ids)))
