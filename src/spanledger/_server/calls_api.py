"""The calls explorer's API: ``GET /api/v1/calls`` (filtered, keyset-paged) and one call by its ids.

A page continues from a cursor (the ``next`` or ``prev`` of the page before), never from an offset: page
200 costs what page 1 costs, and calls stored meanwhile neither repeat nor skip a row.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request

from .._present import records
from .._query.calls import FLAGS
from .._query.sql import MAX_LIMIT
from . import params
from .api import FromParam, Reader, TagParam, TenantParam, ToParam, UserParam, filters, ledger
from .schemas import CallOut, CallsPage

router = APIRouter(prefix="/api/v1", tags=["calls"])

_HEX32 = "^[0-9a-fA-F]{32}$"
_HEX16 = "^[0-9a-fA-F]{16}$"


@router.get("/calls", response_model=CallsPage, summary="Every stored call, newest first, filtered and keyset-paged")
def calls(
    request: Request,
    principal: Reader,
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
    user: UserParam = None,
    provider: Annotated[
        str | None, Query(max_length=256, description="Only this provider (openai, anthropic …).")
    ] = None,
    model: Annotated[str | None, Query(max_length=256, description="Only calls this model answered.")] = None,
    status: Annotated[Literal["ok", "error"] | None, Query(description="Only calls that succeeded, or failed.")] = None,
    flag: Annotated[
        list[Literal["unpriced", "cached", "incomplete", "repaired"]],
        Query(description="Repeatable; each must hold. " + " ".join(f"`{k}`: {v[1]}" for k, v in FLAGS.items())),
    ] = [],  # noqa: B006
    tag: TagParam = [],  # noqa: B006
    min_cost: Annotated[
        str | None, Query(max_length=32, description="Cost at least this many USD (e.g. 0.05).")
    ] = None,
    max_cost: Annotated[str | None, Query(max_length=32, description="Cost at most this many USD.")] = None,
    trace: Annotated[
        str | None, Query(pattern=_HEX32, description="Only the calls of this trace (32 hex digits).")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=80, description="The `next` (or `prev`) of a previous page.")
    ] = None,
    direction: Annotated[
        Literal["older", "newer"], Query(description="`older` follows `next`; `newer` follows `prev`.")
    ] = "older",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Calls per page.")] = 50,
    count: Annotated[bool, Query(description="Also count every matching call (`total`).")] = False,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    asked: dict[str, Any] = {
        **filters(request, principal, tenant, user),
        "provider": params.text(provider, "provider"),
        "model": params.text(model, "model"),
        "status": status,
        "flags": flag,
        "min_cost": params.text(min_cost, "min_cost"),
        "max_cost": params.text(max_cost, "max_cost"),
        "trace_id": int(trace, 16) if trace else None,
    }
    led = ledger(request)
    page = led.calls(start=lo, end=hi, cursor=params.text(cursor, "cursor"), direction=direction, limit=limit, **asked)
    total = led.count_calls(start=lo, end=hi, **asked) if count else None
    return records.calls_record(page, window=records.window_record(lo, hi), total=total)


@router.get(
    "/calls/{trace_id}/{span_id}",
    response_model=CallOut,
    summary="One stored call, complete",
    responses={404: {"description": "No such call (or not in your tenant)."}},
)
def call(
    request: Request,
    principal: Reader,
    trace_id: Annotated[str, Path(pattern=_HEX32)],
    span_id: Annotated[str, Path(pattern=_HEX16)],
) -> dict[str, Any]:
    found = ledger(request).call(int(trace_id, 16), int(span_id, 16), tenant_id=principal.scope(None))
    if found is None:
        raise HTTPException(status_code=404, detail="no such call")
    return records.CALL.record(found)
