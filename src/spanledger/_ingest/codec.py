"""LLM call columns ⇄ bytes, for the spool and the quarantine; the ranges each column can hold.

A batch is stored as the insert-ready columns in :data:`RAW_COLUMNS` order, encoded as compact JSON:
timestamps as integer microseconds since the epoch, costs as decimal strings (exact), everything
else as JSON natives. JSON keeps spool files readable by a person in an emergency.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .._record import LLMCall
from .._schema import RAW_COLUMNS

FORMAT_VERSION = 1
COLUMN_NAMES = tuple(name for name, _ in RAW_COLUMNS)
_TS = COLUMN_NAMES.index("timestamp")
_MONEY = tuple(i for i, (_, ctype) in enumerate(RAW_COLUMNS) if "Decimal" in ctype)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_columns(calls: Sequence[LLMCall]) -> list[list[Any]]:
    """Records → columns in :data:`RAW_COLUMNS` order, ready for a column-oriented insert.

    Timestamps become integer microseconds (what ``DateTime64(6)`` stores).
    """
    return [
        [_micros(c.timestamp) for c in calls],
        [c.trace_id for c in calls],
        [c.span_id for c in calls],
        [c.parent_span_id for c in calls],
        [c.duration_us for c in calls],
        [c.provider for c in calls],
        [c.model for c in calls],
        [c.request_model for c in calls],
        [c.operation for c in calls],
        [c.input_tokens for c in calls],
        [c.output_tokens for c in calls],
        [c.cache_read_tokens for c in calls],
        [c.cache_write_tokens for c in calls],
        [c.reasoning_tokens for c in calls],
        [c.user_id for c in calls],
        [c.user_source for c in calls],
        [c.tenant_id for c in calls],
        [dict(sorted(c.tags.items())) for c in calls],
        [1 if c.is_error else 0 for c in calls],
        [c.error_type for c in calls],
        [c.response_id for c in calls],
        [c.service_name for c in calls],
        [c.source for c in calls],
        [c.flags for c in calls],
        [c.cost for c in calls],
        [c.input_cost for c in calls],
        [c.output_cost for c in calls],
        [c.price_source for c in calls],
        [c.price_model for c in calls],
        [c.prompt for c in calls],
        [c.completion for c in calls],
    ]


def encode(columns: list[list[Any]]) -> bytes:
    """Columns → spool payload bytes."""
    out: list[Any] = list(columns)
    for i in _MONEY:
        out[i] = [None if v is None else str(v) for v in columns[i]]
    return json.dumps(
        {"v": FORMAT_VERSION, "columns": list(COLUMN_NAMES), "data": out}, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def decode(payload: bytes) -> list[list[Any]]:
    """Spool payload bytes → columns; raises ``ValueError`` for a payload this version cannot read."""
    doc = json.loads(payload.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION or tuple(doc.get("columns", ())) != COLUMN_NAMES:
        raise ValueError("spool record written by an incompatible spanledger version")
    columns: list[list[Any]] = doc["data"]
    for i in _MONEY:
        columns[i] = [None if v is None else Decimal(v) for v in columns[i]]
    return columns


def row_count(columns: list[list[Any]]) -> int:
    return len(columns[_TS]) if columns else 0


def concat(blocks: Sequence[list[list[Any]]]) -> list[list[Any]]:
    """Several column blocks → one."""
    if len(blocks) == 1:
        return blocks[0]
    return [[v for block in blocks for v in block[i]] for i in range(len(COLUMN_NAMES))]


def select(columns: list[list[Any]], rows: Sequence[int]) -> list[list[Any]]:
    """The given rows of a column block, in that order."""
    return [[col[i] for i in rows] for col in columns]


def from_columns(columns: list[list[Any]]) -> list[LLMCall]:
    """Columns → records (what a replay from the quarantine prices again)."""
    names = COLUMN_NAMES
    out = []
    for values in zip(*columns, strict=True):
        row = dict(zip(names, values, strict=True))
        row["timestamp"] = _EPOCH + timedelta(microseconds=row["timestamp"])
        row["is_error"] = bool(row["is_error"])
        row["tags"] = dict(row["tags"])
        row["flags"] = list(row["flags"])
        out.append(LLMCall(**row))
    return out


def _bound(ctype: str) -> tuple[int | Decimal, int | Decimal] | None:
    """The ``[low, high)`` range a value of this ClickHouse type can hold, as the codec writes it."""
    inner = ctype.removeprefix("Nullable(").removesuffix(")") if ctype.startswith("Nullable(") else ctype
    if inner.startswith("UInt"):
        return 0, 1 << int(inner[4:])
    if inner.startswith("Decimal("):
        precision, scale = (int(x) for x in inner[8:-1].split(","))
        limit = Decimal(10) ** (precision - scale)
        return -limit, limit
    if inner.startswith("DateTime64("):  # integer microseconds, 1970-01-01 … 2299-12-31 (ClickHouse's range)
        return 0, 10_413_792_000 * 1_000_000
    return None


_BOUNDS = [(i, name, _bound(ctype)) for i, (name, ctype) in enumerate(RAW_COLUMNS)]
_CHECKED = [(i, name, b) for i, name, b in _BOUNDS if b is not None]


def out_of_range(columns: list[list[Any]]) -> dict[int, str]:
    """Rows whose value some column's type cannot hold → the first such column: rows ClickHouse would refuse.

    A column's minimum and maximum are taken first (at C speed); only a column that strays is read row by row.
    """
    bad: dict[int, str] = {}
    for i, name, (low, high) in _CHECKED:
        values = [v for v in columns[i] if v is not None] if "Decimal" in RAW_COLUMNS[i][1] else columns[i]
        try:
            if not values or (low <= min(values) and max(values) < high):
                continue
        except TypeError:
            pass  # a value of the wrong type: found row by row below
        for row, value in enumerate(columns[i]):
            if value is None and "Nullable" in RAW_COLUMNS[i][1]:
                continue
            try:
                ok = low <= value < high and not isinstance(value, bool | float)
            except TypeError:
                ok = False
            if not ok:
                bad.setdefault(row, name)
    return bad
