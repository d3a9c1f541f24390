"""Billing's answers as ``rich`` tables for the command line.

Amounts billed are shown exactly as computed (:func:`~.rounding.cents_text`); costs are exact sums shown
through the one money formatter (:func:`~spanledger._present.numbers.money`), rounded for the eye only.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich import box
from rich.markup import escape
from rich.table import Table

from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL
from .._present.numbers import count, money
from .model import MarginRow, RepriceChange, Statement
from .rounding import cents_text


def _table(title: str, caption: str, headers: Sequence[str], text_columns: int) -> Table:
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        header_style="bold",
        footer_style="bold",
        pad_edge=False,
        show_footer=True,
    )
    for i, header in enumerate(headers):
        if i < text_columns:
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header, justify="right", no_wrap=True)
    return table


def percent(value: Decimal | None) -> str:
    """``20%``, ``12.5%``, ``-10%``; ``—`` for none."""
    return "—" if value is None else f"{value.normalize():f}%"


def statement_table(statement: Statement, *, caption: str) -> Table:
    """The lines of a statement and its total."""
    headers = ["Provider", "Model", "Markup", "Requests", "Input", "Cached", "Output", "Cost", "Price", "Amount"]
    table = _table(f"Statement · {statement.customer}", caption, headers, 3)
    for line in statement.lines:
        markup = f"{escape(line.markup)} {percent(line.markup_percent)}" if line.priced else "[yellow]unpriced[/]"
        if line.plan:
            markup += f" (plan {escape(line.plan)})"
        table.add_row(
            escape(line.provider),
            escape(line.model) or "(unknown)",
            markup,
            count(line.requests),
            count(line.input_tokens),
            count(line.cache_read_tokens),
            count(line.output_tokens),
            money(line.cost) if line.cost is not None else "[yellow]—[/]",
            money(line.price) if line.price is not None else "—",
            cents_text(line.amount) if line.amount is not None else "—",
        )
    tokens = [count(sum(getattr(line, k) for line in statement.lines)) for k in ("input_tokens", "cache_read_tokens")]
    footer = ["Total", "", "", count(statement.requests), *tokens, count(statement.output_tokens)]
    footer += [money(statement.cost), money(statement.price), f"[bold]{cents_text(statement.amount)}[/]"]
    for column, text in zip(table.columns, footer, strict=True):
        column.footer = text
    return table


def margins_table(rows: Sequence[MarginRow], *, title: str, caption: str) -> Table:
    """Customers, worst margin first; negative margins in red."""
    headers = ["Customer", "Revenue", "Cost", "Price (marked up)", "Gross margin", "Margin", "Requests", "Unpriced"]
    table = _table(title, caption, headers, 1)
    for row in rows:
        style = "red" if row.negative else ""
        table.add_row(
            escape(row.customer_id) or NO_TENANT_LABEL,
            money(row.revenue),
            money(row.cost),
            money(row.price),
            f"[{style}]{money(row.gross_margin)}[/]" if style else money(row.gross_margin),
            f"[{style}]{percent(row.margin_pct)}[/]" if style else percent(row.margin_pct),
            count(row.requests),
            count(row.unpriced_requests) if row.unpriced_requests else "—",
        )
    revenue = sum((r.revenue for r in rows), Decimal(0))
    cost = sum((r.cost for r in rows), Decimal(0))
    footer = ["Total", money(revenue), money(cost), money(sum((r.price for r in rows), Decimal(0)))]
    footer += [money(revenue - cost), "", count(sum(r.requests for r in rows)), ""]
    for column, text in zip(table.columns, footer, strict=True):
        column.footer = text
    return table


def reprice_table(changes: Sequence[RepriceChange], *, title: str, caption: str, users: bool) -> Table:
    """Before and after, per tenant or per user."""
    headers = ["Tenant", *(["User"] if users else []), "Calls", "Changed", "Newly priced", "Before", "After"]
    table = _table(title, caption, [*headers, "Difference"], 2 if users else 1)
    for change in changes:
        table.add_row(
            escape(change.tenant_id) or NO_TENANT_LABEL,
            *([escape(change.user_id or "") or UNATTRIBUTED_LABEL] if users else []),
            count(change.calls),
            count(change.changed),
            count(change.newly_priced),
            money(change.before),
            money(change.after),
            _signed(change.difference),
        )
    return table


def _signed(value: Decimal) -> str:
    return f"+{money(value)}" if value > 0 else money(value)
