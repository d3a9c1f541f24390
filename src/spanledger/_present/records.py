"""The one JSON shape of every answer, shared by ``--format json`` / ``csv`` and the API.

Each kind of row has a :class:`Shape`: its fields in order, each with a kind (how its value is written), one
line of meaning and how it is read off the row. Usage metrics come from :data:`~spanledger._model.usage.METRICS`
and call fields from :data:`~spanledger._model.call.CALL_COLUMNS`, so a new metric or column appears in the
CLI's JSON and CSV, the API and its OpenAPI document with no edit here. Money is an exact decimal string,
times are ISO-8601 UTC with ``Z``, ids are as stored (trace and span ids in hex).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .._model.call import CALL_COLUMNS, StoredCall
from .._model.customer import Customer
from .._model.rows import (
    NO_TENANT_LABEL,
    UNATTRIBUTED_LABEL,
    Bucket,
    CallPage,
    DailyRow,
    ModelRow,
    Overview,
    Page,
    SegmentRow,
    TagChoice,
    TenantDetail,
    TenantRow,
    ToolRow,
    TopUser,
    Totals,
    UserRow,
)
from .._model.usage import DERIVED, METRICS, Usage
from .numbers import decimal_string, iso

Kind = Literal[
    "str", "str?", "int", "int?", "float", "bool", "money", "money?", "time?", "date", "strings", "tags", "hex"
]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a record."""

    name: str
    kind: Kind
    doc: str
    get: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Shape:
    """A kind of record: its name (the API schema's) and its fields, in order."""

    name: str
    fields: tuple[Field, ...]

    @property
    def columns(self) -> list[str]:
        """CSV columns, in order."""
        return [f.name for f in self.fields]

    def record(self, row: Any) -> dict[str, Any]:
        """The row as JSON-ready values (see :func:`plain`)."""
        return {f.name: plain(f.get(row), f.kind) for f in self.fields}

    def records(self, rows: Iterable[Any]) -> list[dict[str, Any]]:
        return [self.record(r) for r in rows]


def plain(value: Any, kind: Kind) -> Any:
    """A value as JSON carries it: money as an exact decimal string, times in ISO-8601 UTC."""
    if value is None:
        return None
    if kind in ("money", "money?"):
        return decimal_string(value)
    if kind == "time?":
        return iso(value)
    if kind == "date":
        return value.isoformat() if isinstance(value, date) else str(value)
    if kind == "strings":
        return list(value)
    if kind == "tags":
        return dict(value)
    if kind == "float":
        return round(float(value), 3)
    return value


def _kind_of_metric(name: str, merge: str) -> Kind:
    if name == "cost":
        return "money"
    if merge in ("min", "max"):
        return "time?"
    if merge == "uniq":
        return "int?"
    return "int"


def usage_fields(get: Callable[[Any], Usage]) -> tuple[Field, ...]:
    """Every shown usage metric and the derived values, read through ``get``."""
    out = [Field(m.name, _kind_of_metric(m.name, m.merge), m.doc, _getter(get, m.name)) for m in METRICS if m.shown]
    derived: dict[str, Kind] = {"total_tokens": "int", "avg_latency_ms": "float"}
    for name, doc in DERIVED.items():
        out.append(Field(name, derived[name], doc, _getter(get, name)))
    return tuple(out)


def _getter(get: Callable[[Any], Any], name: str) -> Callable[[Any], Any]:
    return lambda row: getattr(get(row), name)


_KINDS: dict[Any, Kind] = {
    str: "str",
    str | None: "str?",
    int: "int",
    bool: "bool",
    Decimal: "money",
    date: "date",
    datetime | None: "time?",
    float: "float",
}


_OPTIONAL: dict[Any, Kind] = {Decimal: "money?", int: "int?", datetime: "time?", str: "str"}


def _kind(annotation: Any) -> Kind:
    if annotation in _KINDS:
        return _KINDS[annotation]
    args = get_args(annotation)
    if len(args) == 2 and type(None) in args:  # X | None
        inner = next(a for a in args if a is not type(None))
        if inner in _OPTIONAL:
            return _OPTIONAL[inner]
    if get_origin(annotation) is tuple:
        return "strings"
    if get_origin(annotation) is dict:
        return "tags"
    if get_origin(annotation) is Literal and all(isinstance(v, str) for v in get_args(annotation)):
        return "str"
    raise TypeError(f"no record kind for {annotation!r}")


def shape_of(cls: type, name: str, *, derived: dict[str, tuple[str, ...]] | None = None) -> Shape:
    """The record of a row dataclass: its fields in order, a ``Usage`` field flattened into its metrics, and
    ``derived`` properties (named after the field they follow) with their docstrings."""
    hints = get_type_hints(cls)
    fields: list[Field] = []
    for f in dataclasses.fields(cls):
        if hints[f.name] is Usage:
            fields.extend(usage_fields(attrgetter(f.name)))
        else:
            fields.append(Field(f.name, _kind(hints[f.name]), f.metadata.get("doc", ""), attrgetter(f.name)))
        for prop in (derived or {}).get(f.name, ()):
            getter = getattr(cls, prop)
            kind = _kind(get_type_hints(getter.fget)["return"])
            fields.append(Field(prop, kind, (getter.__doc__ or "").strip(), attrgetter(prop)))
    return Shape(name, tuple(fields))


_LABELS = ("label", "attributed")
USER = shape_of(UserRow, "User", derived={"user_id": (*_LABELS, "tenant_id")})
TENANT = shape_of(TenantRow, "Tenant", derived={"tenant_id": ("label",)})
SEGMENT = shape_of(SegmentRow, "Segment")
TAG = shape_of(TagChoice, "Tag")
BUCKET = shape_of(Bucket, "Unnamed")
MODEL = shape_of(ModelRow, "Model")
DAILY = shape_of(DailyRow, "Day")
TOP_USER = shape_of(TopUser, "TopUser", derived={"user_id": _LABELS})
TOTALS = shape_of(Totals, "Totals")
TOOL = shape_of(ToolRow, "Tool", derived={"tool_name": ("label",), "duration_us": ("avg_duration_ms",)})
CUSTOMER = shape_of(Customer, "Customer", derived={"user_id": ("kind",)})


def _call_kind(name: str, ch_type: str) -> Kind:
    if name in ("trace_id", "span_id", "parent_span_id"):
        return "hex"
    if ch_type.startswith("Nullable(Decimal"):
        return "money?"
    if ch_type.startswith("DateTime64"):
        return "time?"
    if ch_type == "UInt8":
        return "bool"
    if ch_type.startswith("UInt"):
        return "int"
    if ch_type.startswith("Map("):
        return "tags"
    if ch_type.startswith("Array("):
        return "strings"
    return "str"


_HEX_WIDTH = {"trace_id": 32, "span_id": 16, "parent_span_id": 16}


def _call_get(name: str) -> Callable[[Any], Any]:
    if name in _HEX_WIDTH:
        width = _HEX_WIDTH[name]
        return lambda call: f"{getattr(call, name):0{width}x}"
    return attrgetter(name)


CALL = Shape(
    "Call",
    (
        *(Field(c.name, _call_kind(c.name, c.ch_type), c.doc, _call_get(c.name)) for c in CALL_COLUMNS),
        Field("inserted_at", "time?", "When the store received it.", attrgetter("inserted_at")),
    ),
)
"""One stored call, every column (ids in hex; prompt and completion empty unless capture was on)."""


def window_record(start: datetime | None, end: datetime | None) -> dict[str, str | None]:
    return {"from": iso(start), "to": iso(end)}


def page_record(page: Page[Any], shape: Shape, *, unnamed: str | None = None, **meta: Any) -> dict[str, Any]:
    """A page: ``meta`` (window, sort …), then ``page``, ``pages``, ``limit``, ``total`` and ``data``, and
    the calls with no id under the key ``unnamed`` names (``null`` when not reported)."""
    out = {
        **meta,
        "page": page.page,
        "pages": page.pages,
        "limit": page.limit,
        "total": page.total,
        "data": shape.records(page.rows),
    }
    if unnamed:
        out[unnamed] = BUCKET.record(page.unnamed) if page.unnamed else None
    return out


def calls_record(page: CallPage, **meta: Any) -> dict[str, Any]:
    """A page of the calls explorer: ``meta``, the cursors either side, and the calls."""
    return {**meta, "limit": page.limit, "next": page.next, "prev": page.prev, "data": CALL.records(page.calls)}


def tenant_detail_record(detail: TenantDetail) -> dict[str, Any]:
    """One tenant's detail: summary (``null`` when no calls in the window), models, days."""
    return {
        "tenant_id": detail.tenant_id,
        "label": detail.tenant_id or NO_TENANT_LABEL,
        "summary": TENANT.record(detail.summary) if detail.summary else None,
        "models": MODEL.records(detail.models),
        "daily": DAILY.records(detail.daily),
    }


def overview_record(ov: Overview) -> dict[str, Any]:
    """Everything :class:`Overview` holds (distinct traces are not counted: ``null``)."""
    return {
        "totals": TOTALS.record(ov.totals),
        "unattributed_cost": decimal_string(ov.unattributed_cost),
        "unattributed_requests": ov.unattributed_requests,
        "no_tenant_cost": decimal_string(ov.no_tenant_cost),
        "no_tenant_requests": ov.no_tenant_requests,
        "top_users": TOP_USER.records(ov.top_users),
        "top_tenants": TENANT.records(ov.top_tenants),
        "daily": DAILY.records(ov.daily),
        "previous": TOTALS.record(ov.previous) if ov.previous else None,
    }


def user_detail_record(
    user_id: str,
    summary: UserRow | None,
    models: Sequence[ModelRow],
    daily: Sequence[DailyRow],
    calls: Sequence[StoredCall],
    *,
    profile: Customer | None = None,
    tools: Sequence[ToolRow] = (),
) -> dict[str, Any]:
    """One user's detail: summary (``null`` when no calls in the window), models, days, recent calls, their
    customer profile (``null`` for none) and executions per tool."""
    return {
        "user_id": user_id,
        "label": user_id or UNATTRIBUTED_LABEL,
        "summary": USER.record(summary) if summary else None,
        "models": MODEL.records(models),
        "daily": DAILY.records(daily),
        "calls": CALL.records(calls),
        "profile": CUSTOMER.record(profile) if profile else None,
        "tools": TOOL.records(tools),
    }
