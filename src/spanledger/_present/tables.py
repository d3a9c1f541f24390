"""Answers as ``rich`` tables for the command line.

Money is rounded for the eye only (:func:`~.numbers.money`); totals are summed exactly first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .._model.call import StoredCall
from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL, DailyRow, ModelRow, Page, TenantRow, TopUser, UserRow
from .._model.usage import Usage
from .numbers import count, money, plural, when
from .records import window_record
from .sorts import ranking_title


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The time window a command asked for: for captions, and echoed in JSON."""

    start: datetime | None
    end: datetime | None

    def describe(self) -> str:
        if self.start is None and self.end is None:
            return "all time"
        start = f"{self.start:%Y-%m-%d %H:%M}" if self.start else "the beginning"
        end = f"{self.end:%Y-%m-%d %H:%M}" if self.end else "now"
        return f"{start} → {end} UTC"

    def as_dict(self) -> dict[str, str | None]:
        return window_record(self.start, self.end)


@dataclass(frozen=True, slots=True)
class _Col:
    header: str
    number: bool = True
    """Numbers are right-aligned and never cut; text columns shrink with an ellipsis on a narrow console."""
    keep_width: bool = False
    """A text column that is never cut either (times, statuses)."""
    style: str = ""
    drop_below: int = 0
    """Leave the column out on consoles narrower than this."""


def _build(
    title: str, caption: str, cols: Sequence[_Col], rows: Sequence[Sequence[str]], footer: Sequence[str], width: int
) -> Table:
    keep = [i for i, col in enumerate(cols) if width >= col.drop_below]
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_footer=any(footer),
        title_justify="left",
        caption_justify="left",
        header_style="bold",
        footer_style="bold",
        pad_edge=False,
    )
    for i in keep:
        col = cols[i]
        cells = [col.header, footer[i], *(row[i] for row in rows)]
        if col.number or col.keep_width:
            min_width = max(cell_len(Text.from_markup(cell).plain) for cell in cells)
            justify: Literal["left", "right"] = "right" if col.number else "left"
            table.add_column(
                col.header, footer=footer[i], justify=justify, style=col.style, no_wrap=True, min_width=min_width
            )
        else:
            table.add_column(col.header, footer=footer[i], style=col.style, overflow="ellipsis")
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _unpriced(usage: Usage) -> str:
    return count(usage.unpriced_requests) if usage.unpriced_requests else "—"


def _errors(usage: Usage) -> str:
    return count(usage.errors) if usage.errors else "—"


def _totals(usages: Iterable[Usage]) -> list[str]:
    """Footer cells: requests, tokens, cost, unpriced, errors (summed exactly, then formatted)."""
    items = list(usages)
    unpriced = sum(u.unpriced_requests for u in items)
    return [
        count(sum(u.requests for u in items)),
        count(sum(u.total_tokens for u in items)),
        money(sum((u.cost for u in items), Decimal(0))),
        count(unpriced) if unpriced else "—",
        count(sum(u.errors for u in items)),
    ]


def _usage_cells(usage: Usage) -> list[str]:
    return [count(usage.requests), count(usage.total_tokens), money(usage.cost), _unpriced(usage), _errors(usage)]


_USAGE_COLS = (
    _Col("Requests"),
    _Col("Tokens"),
    _Col("Cost", style="green"),
    _Col("Unpriced", style="yellow"),
    _Col("Errors", drop_below=90),
)


def _caption(window: TimeRange, page: Page[Any], counted: str) -> str:
    return " · ".join([window.describe(), f"page {page.page} of {page.pages}", counted])


def _total_label(page: Page[Any]) -> str:
    if page.page == 1 and page.total <= len(page.rows):
        return "Total"
    return f"Shown ({len(page.rows)} of {count(page.total)})"


def _user_cell(row: UserRow | TopUser) -> str:
    return escape(row.label) if row.attributed else f"[italic]{UNATTRIBUTED_LABEL}[/]"


def users_table(
    page: Page[Any],
    window: TimeRange,
    *,
    sort_by: str = "cost",
    sort_dir: str = "desc",
    title: str | None = None,
    width: int = 120,
) -> Table:
    """One page of users: rank, user, name (when a profile names one), tenant, requests, tokens, cost, unpriced
    calls, errors, top model, tool executions (when there are any)."""
    rows: list[UserRow] = page.rows
    named, tools = any(r.display_name for r in rows), any(r.tool_calls for r in rows)
    cols = [_Col("#", style="dim"), _Col("User", number=False)]
    cols += [_Col("Name", number=False, drop_below=100)] if named else []
    cols += [_Col("Tenant", number=False), *_USAGE_COLS, _Col("Top model", number=False, drop_below=110)]
    cols += [_Col("Tools", drop_below=100)] if tools else []
    cells = [
        [
            str(rank),
            _user_cell(row) + (" [dim](no calls)[/]" if not row.usage.requests else ""),
            *([escape(row.display_name)] if named else []),
            escape(row.tenant_id) or NO_TENANT_LABEL,
            *_usage_cells(row.usage),
            escape(row.top_model),
            *([count(row.tool_calls) if row.tool_calls else "—"] if tools else []),
        ]
        for rank, row in enumerate(rows, start=(page.page - 1) * page.limit + 1)
    ]
    footer = ["", _total_label(page), *([""] if named else []), "", *_totals(r.usage for r in rows), ""]
    footer += [count(sum(r.tool_calls for r in rows))] if tools else []
    counted = plural(page.total - page.inactive, "user") + (
        f" · {plural(page.inactive, 'customer')} with no calls" if page.inactive else ""
    )
    caption = _caption(window, page, counted)
    return _build(title or ranking_title("Users", sort_by, sort_dir), caption, cols, cells, footer, width)


def top_users_table(rows: Sequence[TopUser], *, title: str, caption: str, width: int = 120) -> Table:
    """The costliest users of an overview: rank, user, name (when any), tenant, requests, cost, unpriced calls."""
    named = any(r.display_name for r in rows)
    cols = [_Col("#", style="dim"), _Col("User", number=False)]
    cols += [_Col("Name", number=False, drop_below=100)] if named else []
    cols += [
        _Col("Tenant", number=False),
        _Col("Requests"),
        _Col("Cost", style="green"),
        _Col("Unpriced", style="yellow"),
    ]
    cells = [
        [
            str(rank),
            _user_cell(row),
            *([escape(row.display_name)] if named else []),
            escape(row.tenant_id) or NO_TENANT_LABEL,
            count(row.requests),
            money(row.cost),
            count(row.unpriced_requests) if row.unpriced_requests else "—",
        ]
        for rank, row in enumerate(rows, start=1)
    ]
    return _build(title, caption, cols, cells, [""] * len(cols), width)


def tenants_table(
    page: Page[Any],
    window: TimeRange,
    *,
    sort_by: str = "cost",
    sort_dir: str = "desc",
    title: str | None = None,
    width: int = 120,
) -> Table:
    """One page of tenants with active users and totals."""
    rows: list[TenantRow] = page.rows
    cols = [_Col("#", style="dim"), _Col("Tenant", number=False), _Col("Users"), *_USAGE_COLS]
    cols.append(_Col("Last seen", number=False, keep_width=True, drop_below=100))
    cells = [
        [
            str(rank),
            escape(row.tenant_id) or f"[italic]{NO_TENANT_LABEL}[/]",
            count(row.active_users),
            *_usage_cells(row.usage),
            when(row.usage.last_seen),
        ]
        for rank, row in enumerate(rows, start=(page.page - 1) * page.limit + 1)
    ]
    footer = ["", _total_label(page), "", *_totals(r.usage for r in rows), ""]
    caption = _caption(window, page, plural(page.total, "tenant"))
    return _build(title or ranking_title("Tenants", sort_by, sort_dir), caption, cols, cells, footer, width)


def models_table(rows: Sequence[ModelRow], *, title: str, caption: str, width: int = 120) -> Table:
    """One user's spend per model, with token detail and unpriced calls."""
    cols = (
        _Col("Model", number=False),
        _Col("Requests"),
        _Col("Input", drop_below=90),
        _Col("Cached", drop_below=90),
        _Col("Output", drop_below=90),
        _Col("Cost", style="green"),
        _Col("Unpriced", style="yellow"),
        _Col("Errors"),
    )
    cells = [
        [
            escape(row.model) or "(unknown)",
            count(row.usage.requests),
            count(row.usage.input_tokens),
            count(row.usage.cache_read_tokens),
            count(row.usage.output_tokens),
            money(row.usage.cost) if row.usage.requests > row.usage.unpriced_requests else "[yellow]unpriced[/]",
            _unpriced(row.usage),
            _errors(row.usage),
        ]
        for row in rows
    ]
    requests, _, cost, unpriced, errors = _totals(r.usage for r in rows)
    tokens = [
        count(sum(getattr(r.usage, f) for r in rows)) for f in ("input_tokens", "cache_read_tokens", "output_tokens")
    ]
    footer = ["Total", requests, *tokens, cost, unpriced, errors]
    return _build(title, caption, cols, cells, footer, width)


def daily_table(
    rows: Sequence[DailyRow], *, title: str, caption: str, key_title: str | None = None, width: int = 120
) -> Table:
    """Cost, requests and active users per UTC day (optionally per user or tenant within a day)."""
    cols = [_Col("Day", number=False, keep_width=True)]
    if key_title:
        cols.append(_Col(key_title, number=False))
    cols += [_Col("Requests"), _Col("Active users"), _Col("Cost", style="green")]
    fallback = UNATTRIBUTED_LABEL if key_title == "User" else NO_TENANT_LABEL
    cells = [
        [
            row.day.isoformat(),
            *([escape(row.key) or fallback] if key_title else []),
            count(row.requests),
            count(row.active_users),
            money(row.cost),
        ]
        for row in rows
    ]
    total = [count(sum(r.requests for r in rows)), "", money(sum((r.cost for r in rows), Decimal(0)))]
    footer = ["Total", *([""] if key_title else []), *total]
    return _build(title, caption, cols, cells, footer, width)


def calls_table(
    calls: Sequence[StoredCall], *, title: str, caption: str = "", who: bool = False, width: int = 120
) -> Table:
    """Calls, newest first (``who``: with their user and tenant, as the explorer lists them)."""
    cols = [_Col("Time (UTC)", number=False, keep_width=True)]
    if who:
        cols += [_Col("User", number=False), _Col("Tenant", number=False, drop_below=100)]
    cols += [
        _Col("Model", number=False),
        _Col("Input"),
        _Col("Cached", drop_below=90),
        _Col("Output"),
        _Col("Cost", style="green"),
        _Col("Tags", number=False, drop_below=130 if who else 110),
        _Col("Status", number=False, keep_width=True),
    ]
    cells = []
    for call in calls:
        people = [escape(call.user_id) or f"[italic]{UNATTRIBUTED_LABEL}[/]", escape(call.tenant_id) or NO_TENANT_LABEL]
        cells.append(
            [
                f"{call.timestamp:%Y-%m-%d %H:%M:%S}",
                *(people if who else []),
                escape(call.model or "(unknown)"),
                count(call.input_tokens),
                count(call.cache_read_tokens),
                count(call.output_tokens),
                money(call.cost) if call.cost is not None else "[yellow]unpriced[/]",
                escape(" ".join(f"{k}={v}" for k, v in sorted(call.tags.items()))),
                f"[red]{escape(call.error_type or 'error')}[/]" if call.is_error else "ok",
            ]
        )
    return _build(title, caption, cols, cells, [""] * len(cols), width)


def unnamed_line(page: Page[Any], *, users: bool) -> str | None:
    """The line under a ranking for the calls with no user id (no tenant id): their spend, never a row."""
    if not (page.unnamed and page.unnamed.requests):
        return None
    label, what = (UNATTRIBUTED_LABEL, "no user id") if users else (NO_TENANT_LABEL, "no tenant id")
    return (
        f"[italic]{label}[/]: {money(page.unnamed.cost)} over {plural(page.unnamed.requests, 'call')} with {what} "
        f"(not counted among the {'users' if users else 'tenants'})"
    )
