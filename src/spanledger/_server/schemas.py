"""The API's response models — generated from the record shapes the CLI's JSON uses, so the two never differ.

Each :class:`~spanledger._present.records.Shape` becomes a pydantic model whose fields carry the shape's
meanings into the OpenAPI document. Money is a decimal string (``format: decimal``), never a JSON float;
times are ISO-8601 UTC strings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from .._present import records
from .._present.records import Kind, Shape

_TYPES: dict[Kind, Any] = {
    "str": str,
    "str?": str | None,
    "int": int,
    "int?": int | None,
    "float": float,
    "bool": bool,
    "money": str,
    "money?": str | None,
    "time?": str | None,
    "date": str,
    "strings": list[str],
    "tags": dict[str, str],
    "hex": str,
}
_FORMATS: dict[Kind, str] = {"money": "decimal", "money?": "decimal", "time?": "date-time", "date": "date"}


def _field(kind: Kind, doc: str) -> Any:
    extra: Any = {"format": _FORMATS[kind]} if kind in _FORMATS else None
    return (_TYPES[kind], Field(description=doc, json_schema_extra=extra))


def model(shape: Shape) -> type[BaseModel]:
    """The pydantic model of one record shape (``User`` → ``UserOut``)."""
    fields = {f.name: _field(f.kind, f.doc) for f in shape.fields}
    return create_model(f"{shape.name}Out", **fields)


UserOut = model(records.USER)
TenantOut = model(records.TENANT)
ModelOut = model(records.MODEL)
DailyOut = model(records.DAILY)
TopUserOut = model(records.TOP_USER)
TotalsOut = model(records.TOTALS)
CallOut = model(records.CALL)
SegmentOut = model(records.SEGMENT)
TagOut = model(records.TAG)
UnnamedOut = model(records.BUCKET)
ToolOut = model(records.TOOL)
CustomerOut = model(records.CUSTOMER)


class WindowOut(BaseModel):
    """The window the answer covers, as resolved (``7d`` becomes a time)."""

    model_config = {"populate_by_name": True}
    start: str | None = Field(alias="from", description="Start (inclusive), ISO-8601 UTC; null: the beginning.")
    end: str | None = Field(alias="to", description="End (exclusive), ISO-8601 UTC; null: now.")


def _page(name: str, row: type[BaseModel], unnamed: str, meaning: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "window": (WindowOut, ...),
        "sort_by": (str, ...),
        "sort_dir": (str, ...),
        "page": (int, Field(description="This page, from 1 (a page past the end is the last page).")),
        "pages": (int, Field(description="Pages in all (at least 1).")),
        "limit": (int, Field(description="Rows per page.")),
        "total": (int, Field(description="Rows on all pages.")),
        "data": (list[row], ...),  # type: ignore[valid-type]
        unnamed: (UnnamedOut | None, Field(description=meaning)),
    }
    return create_model(name, **fields)


UsersPage = create_model(
    "UsersPage",
    __base__=_page(
        "UsersPageBase",
        UserOut,
        "unattributed",
        "The calls with no user id under the same filters: not a row, not counted in total (null when a search or "
        "a user filter is set, or with include_unattributed, which ranks them as rows).",
    ),
    inactive=(
        int,
        Field(description="Of total, customers with a profile and no calls in the window (include_inactive)."),
    ),
)
TenantsPage = _page(
    "TenantsPage",
    TenantOut,
    "no_tenant",
    "The calls with no tenant id under the same filters: not a row, not counted in total (null with a search, "
    "a tenant filter or include_no_tenant).",
)
CallsPage = create_model(
    "CallsPage",
    window=(WindowOut, ...),
    limit=(int, Field(description="Calls per page.")),
    next=(str | None, Field(description="Cursor to the older calls: pass it as `cursor` (null: none).")),
    prev=(
        str | None,
        Field(description="Cursor to the newer calls: pass it as `cursor` with `direction=newer` (null: none)."),
    ),
    total=(int | None, Field(description="Calls matching the filters (only with `count=true`; null otherwise).")),
    data=(list[CallOut], Field(description="The calls, newest first.")),  # type: ignore[valid-type]
)
TenantDetailOut = create_model(
    "TenantDetailOut",
    window=(WindowOut, ...),
    tenant_id=(str, ...),
    label=(str, ...),
    summary=(TenantOut | None, Field(description="null when the tenant has no calls in the window.")),  # type: ignore[arg-type]
    models=(list[ModelOut], ...),  # type: ignore[valid-type]
    daily=(list[DailyOut], ...),  # type: ignore[valid-type]
)
SegmentsOut = create_model(
    "SegmentsOut",
    window=(WindowOut, ...),
    by=(str | None, Field(description="The tag key the calls are split by (null: no call carries a tag).")),
    data=(list[SegmentOut], Field(description='Per value, costliest first ("" for calls without the tag).')),  # type: ignore[valid-type]
    daily=(list[DailyOut], Field(description="Per UTC day and value (`key` is the value).")),  # type: ignore[valid-type]
)
TagsOut = create_model(
    "TagsOut",
    window=(WindowOut, ...),
    key=(str | None, Field(description="The key whose values are listed; null when listing keys.")),
    data=(list[TagOut], ...),  # type: ignore[valid-type]
)
DailySeries = create_model(
    "DailySeries",
    window=(WindowOut, ...),
    per=(str | None, Field(description="user or tenant when each day is split; null otherwise.")),
    data=(list[DailyOut], ...),  # type: ignore[valid-type]
)
UserDetailOut = create_model(
    "UserDetailOut",
    window=(WindowOut, ...),
    user_id=(str, ...),
    label=(str, ...),
    summary=(UserOut | None, Field(description="null when the user has no calls in the window.")),  # type: ignore[arg-type]
    models=(list[ModelOut], ...),  # type: ignore[valid-type]
    daily=(list[DailyOut], ...),  # type: ignore[valid-type]
    calls=(list[CallOut], Field(description="The most recent calls, newest first.")),  # type: ignore[valid-type]
    profile=(CustomerOut | None, Field(description="The user's customer profile; null when none.")),  # type: ignore[arg-type]
    tools=(list[ToolOut], Field(description="Tool executions per tool, most used first.")),  # type: ignore[valid-type]
)
OverviewOut = create_model(
    "OverviewOut",
    window=(WindowOut, ...),
    totals=(TotalsOut, Field(description="Everything in the window summed (traces not counted: null).")),
    unattributed_cost=(
        str,
        Field(description="Spend of the calls that carried no user id.", json_schema_extra={"format": "decimal"}),
    ),
    unattributed_requests=(int, ...),
    no_tenant_cost=(
        str,
        Field(description="Spend of the calls that carried no tenant id.", json_schema_extra={"format": "decimal"}),
    ),
    no_tenant_requests=(int, ...),
    top_users=(list[TopUserOut], Field(description="The costliest users, ranked as /users ranks them.")),  # type: ignore[valid-type]
    top_tenants=(list[TenantOut], Field(description="The costliest tenants (traces null).")),  # type: ignore[valid-type]
    daily=(list[DailyOut], ...),  # type: ignore[valid-type]
    previous=(
        TotalsOut | None,  # type: ignore[arg-type]
        Field(description="The totals of the previous window of the same length (with compare=true and a start)."),
    ),
)


class WhoAmI(BaseModel):
    role: str
    tenant: str | None
