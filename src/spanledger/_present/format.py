"""Render ledger answers as ``rich`` tables, JSON or CSV for the command line.

JSON and CSV keep money exact: a ``Decimal`` is written as a plain decimal string (never a float, never
an exponent) and datetimes as ISO-8601 UTC. Tables round money to 4 places for the eye only; totals are
summed exactly first.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import IO, Any, Literal

from rich import box
from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .._query.ledger import UNATTRIBUTED_LABEL, DailyRow, ModelRow, Overview, Page, TenantRow, TopUser, Usage, UserRow

NO_TENANT_LABEL = "(none)"
"""How a call with no tenant is shown; it is stored with ``tenant_id = ''``."""
_CENT_QUANTUM = Decimal("0.0001")


# ---------------------------------------------------------------- plain values


def money(value: Decimal) -> str:
    """``$1,234.5678`` for a table; a non-zero amount that rounds to zero shows as ``<$0.0001``."""
    rounded = value.quantize(_CENT_QUANTUM, rounding=ROUND_HALF_UP)
    if rounded == 0 and value != 0:
        return "<$0.0001" if value > 0 else "-<$0.0001"
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.4f}"


def count(value: int) -> str:
    """A whole number with thousands separators."""
    return f"{value:,}"


def when(value: datetime | None) -> str:
    """``2026-11-01 09:30`` (UTC) for a table."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC, or ``None``."""
    return value.astimezone(UTC).isoformat() if value else None


def plain(value: Any) -> Any:
    """``value`` with every ``Decimal``, datetime, date and bytes made JSON-safe, money as exact strings."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


# ---------------------------------------------------------------- records (JSON / CSV rows)


USAGE_FIELDS = (
    "requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens", "cost_usd", "unpriced_requests", "unpriced_tokens", "avg_latency_ms",
    "traces", "first_seen", "last_seen",
)  # fmt: skip
USER_FIELDS = ("user_id", "label", "tenant_id", *USAGE_FIELDS, "distinct_models", "top_model")
TENANT_FIELDS = ("tenant_id", "active_users", *USAGE_FIELDS)
MODEL_FIELDS = ("provider", "model", *USAGE_FIELDS)
"""CSV columns, in order (the header is written even when there are no rows)."""


def usage_record(usage: Usage) -> dict[str, Any]:
    """Every :class:`Usage` field, flat."""
    return {
        "requests": usage.requests,
        "errors": usage.errors,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": usage.cost,
        "unpriced_requests": usage.unpriced_requests,
        "unpriced_tokens": usage.unpriced_tokens,
        "avg_latency_ms": round(usage.avg_latency_ms, 3),
        "traces": usage.traces,
        "first_seen": usage.first_seen,
        "last_seen": usage.last_seen,
    }


def user_record(row: UserRow) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "label": row.label,
        "tenant_id": row.tenant_id,
        **usage_record(row.usage),
        "distinct_models": row.distinct_models,
        "top_model": row.top_model,
    }


def tenant_record(row: TenantRow) -> dict[str, Any]:
    return {"tenant_id": row.tenant_id, "active_users": row.active_users, **usage_record(row.usage)}


def model_record(row: ModelRow) -> dict[str, Any]:
    return {"provider": row.provider, "model": row.model, **usage_record(row.usage)}


def top_user_record(row: TopUser) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "label": row.label,
        "tenant_id": row.tenant_id,
        "requests": row.requests,
        "cost_usd": row.cost,
        "unpriced_requests": row.unpriced_requests,
    }


def overview_record(ov: Overview) -> dict[str, Any]:
    """Everything :class:`Overview` holds, for JSON (distinct traces are not counted: ``null``)."""
    totals = {**usage_record(ov.totals.usage), "active_users": ov.totals.active_users, "tenants": ov.totals.tenants}
    return {
        "totals": totals,
        "unattributed_cost_usd": ov.unattributed_cost,
        "unattributed_requests": ov.unattributed_requests,
        "top_users": [top_user_record(row) for row in ov.top_users],
        "top_tenants": [tenant_record(row) for row in ov.top_tenants],
        "daily": [daily_record(row) for row in ov.daily],
    }


def daily_record(row: DailyRow, key_name: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"day": row.day}
    if key_name:
        record[key_name] = row.key
    record.update(cost_usd=row.cost, requests=row.requests, active_users=row.active_users)
    return record


def write_json(obj: Any, out: IO[str]) -> None:
    """``obj`` as indented JSON, money as exact decimal strings."""
    json.dump(plain(obj), out, indent=2, ensure_ascii=False)
    out.write("\n")


def write_csv(records: Sequence[Mapping[str, Any]], out: IO[str], *, columns: Sequence[str]) -> None:
    """A header line, then one line per record; maps and lists are written as JSON."""
    names = list(columns)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for record in records:
        cells = []
        for name in names:
            value = plain(record.get(name))
            cells.append(json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value)
        writer.writerow(["" if cell is None else cell for cell in cells])


# ---------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class Window:
    """The time window a command asked for, for captions."""

    start: datetime | None
    end: datetime | None

    def describe(self) -> str:
        if self.start is None and self.end is None:
            return "all time"
        start = f"{self.start:%Y-%m-%d %H:%M}" if self.start else "the beginning"
        end = f"{self.end:%Y-%m-%d %H:%M}" if self.end else "now"
        return f"{start} → {end} UTC"

    def as_dict(self) -> dict[str, str | None]:
        return {"from": iso(self.start), "to": iso(self.end)}


def pages(page: Page) -> int:
    """How many pages ``page`` is one of (at least 1)."""
    return max(1, -(-page.total // page.limit))


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


def _caption(window: Window, page: Page, noun: str, extra: str = "") -> str:
    parts = [window.describe(), f"page {page.page} of {pages(page)}", f"{count(page.total)} {noun}"]
    return " · ".join([*parts, extra] if extra else parts)


def _total_label(page: Page) -> str:
    if page.page == 1 and page.total <= len(page.rows):
        return "Total"
    return f"Shown ({len(page.rows)} of {count(page.total)})"


def users_table(
    page: Page, window: Window, *, title: str = "Users by LLM cost", sort: str = "", width: int = 120
) -> Table:
    """One page of users: rank, user, tenant, requests, tokens, cost, unpriced calls, errors, top model."""
    rows: list[UserRow] = page.rows
    cols = [_Col("#", style="dim"), _Col("User", number=False), _Col("Tenant", number=False), *_USAGE_COLS]
    cols.append(_Col("Top model", number=False, drop_below=110))
    cells = [
        [
            str(rank),
            escape(row.label) if row.attributed else f"[italic]{UNATTRIBUTED_LABEL}[/]",
            escape(row.tenant_id) or NO_TENANT_LABEL,
            *_usage_cells(row.usage),
            escape(row.top_model),
        ]
        for rank, row in enumerate(rows, start=(page.page - 1) * page.limit + 1)
    ]
    footer = ["", _total_label(page), "", *_totals(r.usage for r in rows), ""]
    caption = _caption(window, page, "users" if page.total != 1 else "user", sort)
    return _build(title, caption, cols, cells, footer, width)


def top_users_table(rows: Sequence[TopUser], *, title: str, caption: str, width: int = 120) -> Table:
    """The costliest users of an overview: rank, user, tenant, requests, cost, unpriced calls."""
    cols = [_Col("#", style="dim"), _Col("User", number=False), _Col("Tenant", number=False), _Col("Requests")]
    cols += [_Col("Cost", style="green"), _Col("Unpriced", style="yellow")]
    cells = [
        [
            str(rank),
            escape(row.label) if row.attributed else f"[italic]{UNATTRIBUTED_LABEL}[/]",
            escape(row.tenant_id) or NO_TENANT_LABEL,
            count(row.requests),
            money(row.cost),
            count(row.unpriced_requests) if row.unpriced_requests else "—",
        ]
        for rank, row in enumerate(rows, start=1)
    ]
    return _build(title, caption, cols, cells, [""] * len(cols), width)


def tenants_table(
    page: Page, window: Window, *, title: str = "Tenants by LLM cost", sort: str = "", width: int = 120
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
    caption = _caption(window, page, "tenants" if page.total != 1 else "tenant", sort)
    return _build(title, caption, cols, cells, footer, width)


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


def calls_table(calls: Sequence[Mapping[str, Any]], *, title: str, width: int = 120) -> Table:
    """The most recent calls of one user, newest first."""
    cols = (
        _Col("Time (UTC)", number=False, keep_width=True),
        _Col("Model", number=False),
        _Col("Input"),
        _Col("Cached", drop_below=90),
        _Col("Output"),
        _Col("Cost", style="green"),
        _Col("Tags", number=False, drop_below=110),
        _Col("Status", number=False, keep_width=True),
    )
    cells = []
    for call in calls:
        cost = call.get("cost")
        tags = call.get("tags") or {}
        cells.append(
            [
                f"{call['timestamp']:%Y-%m-%d %H:%M:%S}",
                escape(str(call.get("model") or "(unknown)")),
                count(int(call["input_tokens"])),
                count(int(call["cache_read_tokens"])),
                count(int(call["output_tokens"])),
                money(Decimal(cost)) if cost is not None else "[yellow]unpriced[/]",
                escape(" ".join(f"{k}={v}" for k, v in sorted(tags.items()))),
                f"[red]{escape(str(call.get('error_type') or 'error'))}[/]" if call.get("is_error") else "ok",
            ]
        )
    return _build(title, "", cols, cells, [""] * len(cols), width)
