"""Segments: spend per value of a tag (``GET /api/v1/segments?by=plan``), and the tag keys and values the
store holds (``GET /api/v1/tags``, ``GET /api/v1/tags/{key}``), which the dashboard's menus offer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from .._present import records
from . import params
from .api import CompareParam, FromParam, Reader, TagParam, TenantParam, ToParam, UserParam, filters, ledger
from .schemas import SegmentsOut, TagsOut

router = APIRouter(prefix="/api/v1", tags=["segments"])


@router.get(
    "/segments",
    response_model=SegmentsOut,
    summary="Cost, requests, users and a daily series per value of a tag (per plan, per feature)",
)
def segments(
    request: Request,
    principal: Reader,
    by: Annotated[
        str | None,
        Query(max_length=256, description="The tag key to split by (plan, feature …); default: the costliest key."),
    ] = None,
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
    user: UserParam = None,
    tag: TagParam = [],  # noqa: B006
    compare: CompareParam = False,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    asked = filters(request, principal, tenant, user)
    led = ledger(request)
    key = params.text(by, "by")
    if key is None:
        keys = led.tag_keys(start=lo, end=hi, tenant_id=asked["tenant_id"], limit=1)
        key = keys[0].key if keys else None
    rows, daily = led.segments(key, start=lo, end=hi, compare=compare, **asked) if key else ([], [])
    return {
        "window": records.window_record(lo, hi),
        "by": key,
        "data": records.SEGMENT.records(rows),
        "daily": records.DAILY.records(daily),
    }


@router.get("/tags", response_model=TagsOut, summary="The tag keys of the calls in the window, most spend first")
def tag_keys(
    request: Request,
    principal: Reader,
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    rows = ledger(request).tag_keys(start=lo, end=hi, tenant_id=principal.scope(params.tenant(tenant)))
    return {"window": records.window_record(lo, hi), "key": None, "data": records.TAG.records(rows)}


@router.get("/tags/{key:path}", response_model=TagsOut, summary="The values of one tag key, most spend first")
def tag_values(
    request: Request,
    principal: Reader,
    key: Annotated[str, Path(min_length=1, max_length=256)],
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    name = params.text(key, "key") or ""
    rows = ledger(request).tag_values(name, start=lo, end=hi, tenant_id=principal.scope(params.tenant(tenant)))
    return {"window": records.window_record(lo, hi), "key": name, "data": records.TAG.records(rows)}
