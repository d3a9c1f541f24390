"""Records back into rows: the inverse of :mod:`.records`, for answers that arrive as JSON.

The command line reading through ``spanledger serve`` gets the API's records and turns them back into the
row dataclasses of :mod:`spanledger._model.rows` — so its tables, JSON and CSV come from the same rendering
code, and read the same, as when it asks the store itself. Nothing here is written per row type: a flat row
is read through its :class:`~.records.Shape` (each field's kind says how its value was written), a
composite one (an overview, a user's detail) through its type hints.

One value is not in the records as such: a usage's ``latency_us``, which they carry as ``avg_latency_ms``
(rounded to the microsecond). It is recovered from that and ``requests``, so the recovered usage gives back
the same ``avg_latency_ms``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from .._model.call import StoredCall
from .._model.rows import (
    Bucket,
    CallPage,
    DailyRow,
    ModelRow,
    Overview,
    Page,
    TenantRow,
    TopUser,
    Totals,
    UserDetail,
    UserRow,
)
from .._model.usage import METRICS, Usage
from . import records
from .records import Kind, Shape

T = TypeVar("T")

SHAPES: dict[type, Shape] = {
    UserRow: records.USER,
    TenantRow: records.TENANT,
    ModelRow: records.MODEL,
    DailyRow: records.DAILY,
    TopUser: records.TOP_USER,
    Totals: records.TOTALS,
    StoredCall: records.CALL,
    Bucket: records.BUCKET,
}
"""Each flat row and the shape its records have."""

RECOVERED: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "latency_us": lambda record: round(float(record["avg_latency_ms"]) * 1000 * int(record["requests"])),
}
"""The usage metrics records do not carry (``shown=False``), from the values they do carry."""


def value(raw: Any, kind: Kind, hint: Any = None) -> Any:
    """One record value back as the row holds it (``hint``: the field's type, for ``strings``)."""
    if raw is None:
        return None
    if kind in ("money", "money?"):
        return Decimal(raw)
    if kind == "time?":
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if kind == "date":
        return date.fromisoformat(raw)
    if kind == "strings":
        return tuple(raw) if get_origin(hint) is tuple else list(raw)
    if kind == "tags":
        return dict(raw)
    if kind == "hex":
        return int(raw, 16)
    if kind == "float":
        return float(raw)
    return raw


def usage(record: Mapping[str, Any], kinds: Mapping[str, Kind]) -> Usage:
    """The :class:`Usage` a record's flattened metrics came from."""
    values = {m.name: value(record[m.name], kinds[m.name]) if m.shown else RECOVERED[m.name](record) for m in METRICS}
    return Usage(**values)


def row(cls: type[T], record: Mapping[str, Any]) -> T:
    """A flat row (one of :data:`SHAPES`) from its record; derived fields (``label`` …) are left out."""
    kinds = {f.name: f.kind for f in SHAPES[cls].fields}
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if hints[f.name] is Usage:
            values[f.name] = usage(record, kinds)
        elif f.name in record:
            values[f.name] = value(record[f.name], kinds[f.name], hints[f.name])
    return cls(**values)


def composite(cls: type[T], record: Mapping[str, Any]) -> T:
    """A row made of rows (:class:`Overview`, :class:`UserDetail`), read field by field through its type hints."""
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    return cls(**{f.name: _typed(hints[f.name], record[f.name]) for f in fields if f.name in record})


def _typed(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = get_origin(hint)
    if origin is list:
        (item,) = get_args(hint)
        return [_typed(item, each) for each in raw]
    if origin in (Union, types.UnionType):
        (present,) = [arg for arg in get_args(hint) if arg is not type(None)]
        return _typed(present, raw)
    if hint in SHAPES:
        return row(hint, raw)
    if dataclasses.is_dataclass(hint):
        return composite(hint, raw)  # type: ignore[arg-type]
    if hint is Decimal:
        return Decimal(raw)
    return raw


def page(record: Mapping[str, Any], cls: type[T]) -> Page[T]:
    """A page of rows from :func:`.records.page_record`."""
    rows = [row(cls, each) for each in record["data"]]
    bucket = record.get("unattributed", record.get("no_tenant"))
    return Page(
        rows=rows,
        total=int(record["total"]),
        page=int(record["page"]),
        limit=int(record["limit"]),
        unnamed=row(Bucket, bucket) if bucket else None,
        inactive=int(record.get("inactive") or 0),
    )


def calls(record: Mapping[str, Any]) -> CallPage:
    """A page of the calls explorer from :func:`.records.calls_record`."""
    return CallPage(
        calls=[row(StoredCall, each) for each in record["data"]],
        limit=int(record["limit"]),
        next=record["next"],
        prev=record["prev"],
    )


def overview(record: Mapping[str, Any]) -> Overview:
    """An :class:`Overview` from :func:`.records.overview_record`."""
    return composite(Overview, record)


def user_detail(record: Mapping[str, Any]) -> UserDetail:
    """A :class:`UserDetail` from :func:`.records.user_detail_record`."""
    return composite(UserDetail, record)


def daily(record: Mapping[str, Any]) -> list[DailyRow]:
    """The days of a ``{"data": [...]}`` series."""
    return [row(DailyRow, each) for each in record["data"]]
