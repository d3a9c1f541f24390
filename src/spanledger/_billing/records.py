"""Billing's answers as JSON and CSV records, derived from the dataclasses in :mod:`.model`: one shape each,
shared by ``--format json`` / ``csv`` and the API. Money is an exact decimal string (amounts in cents have
two decimals), times ISO-8601 UTC with ``Z``.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .._present.numbers import decimal_string, iso
from .model import MarginRow, Markup, RepriceChange, RepriceReport, Statement, StatementLine

DERIVED: dict[type, tuple[str, ...]] = {
    Statement: ("customer",),
    MarginRow: ("negative",),
    RepriceChange: ("difference",),
    RepriceReport: ("difference",),
    Markup: ("label",),
}
"""Properties a record carries after its fields."""


def plain(value: Any) -> Any:
    """A value as JSON carries it."""
    if isinstance(value, Decimal):
        return decimal_string(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return record(value)
    return value


def record(obj: Any) -> dict[str, Any]:
    """Every field of a billing dataclass, then its derived properties."""
    out = {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    out.update({name: plain(getattr(obj, name)) for name in DERIVED.get(type(obj), ())})
    return out


LINE_COLUMNS = ["line", *(f.name for f in dataclasses.fields(StatementLine))]
"""A statement as CSV: one row per line (``priced`` / ``unpriced``), then a ``total`` row."""


def statement_rows(statement: Statement) -> list[dict[str, Any]]:
    """The CSV rows of a statement: its lines and its total, with the same numbers as its JSON."""
    rows = [{"line": "priced" if line.priced else "unpriced", **record(line)} for line in statement.lines]
    tokens = {
        kind: sum(getattr(line, kind) for line in statement.lines)
        for kind in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    }
    total = {
        "line": "total",
        "provider": "",
        "model": "",
        "plan": "",
        "priced": "",
        "requests": statement.requests,
        **tokens,
        "cost": plain(statement.cost),
        "markup": "",
        "markup_percent": None,
        "price": plain(statement.price),
        "amount": plain(statement.amount),
    }
    return [*rows, total]


MARGIN_COLUMNS = [*(f.name for f in dataclasses.fields(MarginRow)), "negative"]


def margins_record(rows: list[MarginRow], *, by: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """Margins as JSON: the window, ``by``, and one record per customer (worst margin first)."""
    return {"window": {"from": iso(start), "to": iso(end)}, "by": by, "data": [record(r) for r in rows]}
