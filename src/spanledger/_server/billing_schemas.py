"""The billing API's response models, generated from billing's dataclasses (the records the CLI's JSON
prints), so the two never differ. Money is a decimal string (``format: decimal``), never a JSON float."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, Field, create_model

from .._billing.model import MarginRow, Markup, RepriceChange, RepriceReport, RevenueImport, Statement, StatementLine
from .._billing.records import DERIVED

_MODELS: dict[type, type[BaseModel]] = {}


def _type(annotation: Any) -> tuple[Any, str | None]:
    """The JSON type of a dataclass field's annotation, and its string format."""
    if annotation is Decimal:
        return str, "decimal"
    if annotation is datetime:
        return str, "date-time"
    if annotation is date:
        return str, "date"
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        kind, fmt = _type(inner[0])
        return kind | None, fmt
    if origin is list:
        kind, _ = _type(get_args(annotation)[0])
        return list[kind], None  # type: ignore[valid-type]
    if origin is typing.Literal:
        return str, None
    if dataclasses.is_dataclass(annotation):
        return model_of(annotation), None  # type: ignore[arg-type]
    return annotation, None


def model_of(cls: type) -> type[BaseModel]:
    """The pydantic model of a billing dataclass and its derived properties (``Statement`` → ``StatementOut``)."""
    if cls in _MODELS:
        return _MODELS[cls]
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind, fmt = _type(hints[f.name])
        fields[f.name] = (kind, Field(description=f.metadata.get("doc", ""), json_schema_extra=_fmt(fmt)))
    for name in DERIVED.get(cls, ()):
        prop = getattr(cls, name)
        kind, fmt = _type(get_type_hints(prop.fget)["return"])
        fields[name] = (kind, Field(description=(prop.__doc__ or "").strip(), json_schema_extra=_fmt(fmt)))
    _MODELS[cls] = create_model(f"{cls.__name__}Out", **fields)
    return _MODELS[cls]


def _fmt(fmt: str | None) -> Any:
    return {"format": fmt} if fmt else None


LineOut = model_of(StatementLine)
StatementOut = model_of(Statement)
MarginOut = model_of(MarginRow)
MarkupOut = model_of(Markup)
RevenueImportOut = model_of(RevenueImport)
RepriceChangeOut = model_of(RepriceChange)
RepriceOut = model_of(RepriceReport)


class WindowOut(BaseModel):
    model_config = {"populate_by_name": True}
    start: str | None = Field(alias="from", description="Start (inclusive), ISO-8601 UTC; null: the beginning.")
    end: str | None = Field(alias="to", description="End (exclusive), ISO-8601 UTC; null: now.")


class MarginsOut(BaseModel):
    window: WindowOut
    by: str = Field(description="tenant or user.")
    data: list[MarginOut] = Field(description="One row per customer, worst margin first.")  # type: ignore[valid-type]


class MarkupsOut(BaseModel):
    markups: list[MarkupOut]  # type: ignore[valid-type]


class MarkupIn(BaseModel):
    """A markup to set: for one tenant, user or plan, or (naming none) the default."""

    percent: str = Field(description="Percent added to cost, as a string: '20', '12.5', '-10'.", max_length=32)
    tenant: str | None = Field(default=None, max_length=256)
    user: str | None = Field(default=None, max_length=256)
    plan: str | None = Field(default=None, max_length=256)
    note: str = Field(default="", max_length=500)


class RepriceIn(BaseModel):
    """A window to price again with the server's prices (genai-prices and its price file)."""

    model_config = {"populate_by_name": True}
    start: str = Field(alias="from", max_length=64, description="Start: ISO date or time (UTC).")
    end: str = Field(alias="to", max_length=64, description="End (exclusive).")
    provider: str | None = Field(default=None, max_length=256)
    model: str | None = Field(default=None, max_length=256)
    dry_run: bool = Field(default=True, description="Report what would change, write nothing (the default).")
