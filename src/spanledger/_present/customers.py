"""Customer profiles and tool use as ``rich`` tables for the command line (see :mod:`.tables` for the rest)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from .._model.customer import Customer
from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL, Page, ToolRow
from .numbers import count, latency, plural, when
from .tables import _build, _Col


def customers_table(page: Page[Customer], *, title: str = "Customer profiles", width: int = 120) -> Table:
    """A page of profiles: tenant, user (or "(tenant)" for a tenant's own), name, e-mail, plan, updated."""
    cols = [
        _Col("Tenant", number=False),
        _Col("User", number=False),
        _Col("Name", number=False),
        _Col("E-mail", number=False, drop_below=90),
        _Col("Plan", number=False, drop_below=100),
        _Col("Metadata", number=False, drop_below=130),
        _Col("Updated (UTC)", number=False, keep_width=True, drop_below=110),
    ]
    cells = [
        [
            escape(c.tenant_id) or NO_TENANT_LABEL,
            escape(c.user_id) if c.user_id else "[dim](tenant)[/]",
            escape(c.display_name),
            escape(c.email),
            escape(c.plan),
            escape(" ".join(f"{k}={v}" for k, v in c.metadata.items())),
            when(c.updated_at),
        ]
        for c in page.rows
    ]
    caption = f"page {page.page} of {page.pages} · {plural(page.total, 'profile')}"
    return _build(title, caption, cols, cells, [""] * len(cols), width)


def profile_lines(customer: Customer) -> list[str]:
    """What one profile says, a line a fact (for ``customers show`` and ``user``)."""
    who = escape(customer.user_id) if customer.user_id else "the tenant itself"
    lines = [
        f"[bold]{escape(customer.display_name) or '(no name)'}[/]  {who}"
        f"  ·  tenant {escape(customer.tenant_id) or NO_TENANT_LABEL}",
    ]
    if customer.email or customer.plan:
        lines.append(
            " · ".join(
                x for x in (escape(customer.email), f"plan {escape(customer.plan)}" if customer.plan else "") if x
            )
        )
    if customer.metadata:
        lines.append(escape(" ".join(f"{k}={v}" for k, v in customer.metadata.items())))
    lines.append(f"created {when(customer.created_at)}, updated {when(customer.updated_at)} UTC")
    return lines


def tools_table(
    rows: Sequence[ToolRow], *, title: str, caption: str = "", width: int = 120, per_user: bool = False
) -> Table:
    """Executions per tool (``per_user``: per tenant, user and tool), with errors, mean duration, last seen."""
    cols: list[_Col] = []
    if per_user:
        cols += [_Col("Tenant", number=False), _Col("User", number=False)]
    cols += [
        _Col("Tool", number=False),
        _Col("Calls"),
        _Col("Errors"),
        _Col("Avg duration", drop_below=90),
        _Col("Last seen (UTC)", number=False, keep_width=True, drop_below=100),
    ]
    cells: list[list[str]] = []
    for row in rows:
        who: list[Any] = []
        if per_user:
            who = [
                escape(row.tenant_id or "") or NO_TENANT_LABEL,
                escape(row.user_id or "") or f"[italic]{UNATTRIBUTED_LABEL}[/]",
            ]
        cells.append(
            [
                *who,
                escape(row.tool_name) or f"[italic]{row.label}[/]",
                count(row.calls),
                count(row.errors) if row.errors else "—",
                latency(row.avg_duration_ms),
                when(row.last_seen),
            ]
        )
    footer = [
        *([""] * (2 if per_user else 0)),
        "Total",
        count(sum(r.calls for r in rows)),
        count(sum(r.errors for r in rows)),
        "",
        "",
    ]
    return _build(title, caption, cols, cells, footer, width)
