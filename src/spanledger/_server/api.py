"""The versioned JSON API (``/api/v1``): the same questions and answers as :class:`~spanledger.Ledger`.

Money is a decimal string (``"0.000121200000"``), never a JSON float. A tenant-scoped token's tenant is
forced into every query; asking for another tenant is a 403.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse

from .._query.ledger import MAX_LIMIT, UNATTRIBUTED_LABEL, Ledger, TenantRow, UserRow
from . import params
from .auth import Principal, api_reader
from .records import find_call
from .schemas import (
    CallOut,
    DailyOut,
    OverviewOut,
    TenantsPage,
    UserDetailOut,
    UsersPage,
    WhoAmI,
    daily_out,
    model_out,
    overview_out,
    tenant_out,
    user_out,
)

router = APIRouter(prefix="/api/v1", tags=["ledger"])

Reader = Annotated[Principal, Depends(api_reader)]
SortByParam = Annotated[
    Literal["cost", "requests", "tokens", "last_seen"], Query(alias="sortBy", description="Sort column.")
]
SortDirParam = Annotated[Literal["asc", "desc"], Query(alias="sortDir")]
PageParam = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]
LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")]
FromParam = Annotated[
    str | None,
    Query(alias="from", max_length=64, description="Start (inclusive): ISO date/time, or `7d`, `24h` back from now."),
]
ToParam = Annotated[str | None, Query(alias="to", max_length=64, description="End (exclusive), same forms as `from`.")]
TenantParam = Annotated[
    str | None, Query(max_length=256, description="Only this tenant (a tenant token may only name its own).")
]
SearchParam = Annotated[str | None, Query(max_length=256, description="Case-insensitive substring of the id.")]
TagParam = Annotated[
    list[str],
    Query(
        description="Tag filter `key=value`, repeatable. `tag.<key>=<value>` parameters (e.g. `tag.plan=pro`) work too."
    ),
]


def ledger(request: Request) -> Ledger:
    value: Ledger = request.app.state.ledger
    return value


def user_id_from_path(user_id: str) -> str:
    """The stored id for a path segment: the unattributed label stands for ``""``."""
    return "" if user_id == UNATTRIBUTED_LABEL else user_id


def tenant_rows(led: Ledger, principal: Principal, **kwargs: Any) -> tuple[list[TenantRow], int]:
    """A page of tenants; a tenant-scoped token gets its own tenant's row and nothing else."""
    if principal.role == "admin":
        page = led.tenants(**kwargs)
        return page.rows, page.total
    page = led.tenants(**{**kwargs, "tenant_id": principal.tenant or ""})  # never wider than its own tenant
    return page.rows, page.total


def admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise HTTPException(status_code=403, detail="this needs an admin token")


@router.get("/status", summary="The ingest pipeline: counters, spool, store health and the quarantine (admin)")
def status(request: Request, principal: Reader) -> dict[str, Any]:
    admin(principal)
    pipeline = request.app.state.exporter.pipeline
    return {
        "store_healthy": pipeline.flusher.healthy,
        "store_error": pipeline.flusher.last_error or None,
        "spool_bytes": pipeline.spool_bytes,
        "counters": dict(pipeline.stats),
        "quarantine": pipeline.quarantine.summary(),
    }


@router.post(
    "/quarantine/replay",
    summary="Price the quarantined calls again and insert those now within bounds (admin)",
)
def quarantine_replay(request: Request, principal: Reader, dry_run: bool = False) -> dict[str, Any]:
    admin(principal)
    pipeline = request.app.state.exporter.pipeline
    report: dict[str, Any] = pipeline.replay_quarantine(dry_run=dry_run)
    return {**report, "dry_run": dry_run}


@router.get("/whoami", response_model=WhoAmI, summary="The role and tenant of the token in use")
def whoami(principal: Reader) -> WhoAmI:
    return WhoAmI(role=principal.role, tenant=principal.tenant)


@router.get(
    "/overview",
    response_model=OverviewOut,
    summary="A window at a glance: totals, unattributed spend, top users and tenants, cost per day",
)
def overview(
    request: Request,
    principal: Reader,
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
    top: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many top users and tenants.")] = 10,
    tag: TagParam = [],  # noqa: B006
) -> OverviewOut:
    lo, hi = params.window_bounds(start, end)
    ov = ledger(request).overview(
        start=lo,
        end=hi,
        tenant_id=principal.scope(params.text(tenant, "tenant")),
        tags=params.tags(request.query_params),
        top=top,
    )
    return overview_out(ov)


@router.get("/users", response_model=UsersPage, summary="Users (per tenant) with their totals, sorted and paged")
def users(
    request: Request,
    principal: Reader,
    sort_by: SortByParam = "cost",
    sort_dir: SortDirParam = "desc",
    page: PageParam = 1,
    limit: LimitParam = 50,
    search: SearchParam = None,
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
    tag: TagParam = [],  # noqa: B006 - FastAPI copies defaults
) -> UsersPage:
    lo, hi = params.window_bounds(start, end)
    result = ledger(request).users(
        sort_by=sort_by,
        sort_dir=sort_dir,
        page=page,
        limit=limit,
        search=params.text(search, "search"),
        start=lo,
        end=hi,
        tenant_id=principal.scope(params.text(tenant, "tenant")),
        tags=params.tags(request.query_params),
    )
    return UsersPage(data=[user_out(r) for r in result.rows], total=result.total, page=page, limit=limit)


_CSV_COLUMNS = [
    "user_id", "tenant_id", "requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "total_tokens", "cost_usd", "unpriced_requests", "unpriced_tokens",
    "avg_latency_ms", "traces", "distinct_models", "top_model", "first_seen", "last_seen",
]  # fmt: skip


def _csv_values(r: UserRow) -> tuple[object, ...]:
    u = r.usage
    return (r.user_id, r.tenant_id, u.requests, u.errors, u.input_tokens, u.output_tokens, u.cache_read_tokens,
            u.cache_write_tokens, u.reasoning_tokens, u.total_tokens, u.cost, u.unpriced_requests, u.unpriced_tokens,
            f"{u.avg_latency_ms:.1f}", u.traces, r.distinct_models, r.top_model, u.first_seen, u.last_seen)  # fmt: skip


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (ids come from untrusted spans)."""
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get(
    "/users.csv",
    summary="Every matching user as CSV (all pages)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV with a header row."}},
)
def users_csv(
    request: Request,
    principal: Reader,
    sort_by: SortByParam = "cost",
    sort_dir: SortDirParam = "desc",
    search: SearchParam = None,
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
    tag: TagParam = [],  # noqa: B006
) -> StreamingResponse:
    lo, hi = params.window_bounds(start, end)
    query: dict[str, Any] = {
        "sort_by": sort_by,
        "sort_dir": sort_dir,
        "search": params.text(search, "search"),
        "start": lo,
        "end": hi,
        "tenant_id": principal.scope(params.text(tenant, "tenant")),
        "tags": params.tags(request.query_params),
    }
    led = ledger(request)
    first = led.users(page=1, limit=MAX_LIMIT, **query)  # errors surface now, before the response starts

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(_CSV_COLUMNS)
        result, number = first, 1
        while True:
            for r in result.rows:
                writer.writerow(_cell(v) for v in _csv_values(r))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if number * MAX_LIMIT >= result.total:
                return
            number += 1
            result = led.users(page=number, limit=MAX_LIMIT, **query)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="spanledger-users.csv"'},
    )


@router.get(
    "/users/{user_id:path}",
    response_model=UserDetailOut,
    summary="One user's totals, per-model breakdown, daily cost and last 50 calls",
)
def user(
    request: Request,
    principal: Reader,
    user_id: Annotated[str, Path(max_length=256, description='User id; "(unattributed)" for calls with no user.')],
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
) -> UserDetailOut:
    lo, hi = params.window_bounds(start, end)
    uid = params.text(user_id_from_path(user_id), "user id") or ""
    detail = ledger(request).user(uid, start=lo, end=hi, tenant_id=principal.scope(params.text(tenant, "tenant")))
    return UserDetailOut(
        user_id=uid,
        summary=user_out(detail.summary) if detail.summary else None,
        models=[model_out(m) for m in detail.models],
        daily=[daily_out(d) for d in detail.daily],
        calls=[CallOut(**c) for c in detail.calls],
    )


@router.get("/tenants", response_model=TenantsPage, summary="Tenants with their totals and active users")
def tenants(
    request: Request,
    principal: Reader,
    sort_by: SortByParam = "cost",
    sort_dir: SortDirParam = "desc",
    page: PageParam = 1,
    limit: LimitParam = 50,
    search: SearchParam = None,
    start: FromParam = None,
    end: ToParam = None,
    tag: TagParam = [],  # noqa: B006
) -> TenantsPage:
    lo, hi = params.window_bounds(start, end)
    rows, total = tenant_rows(
        ledger(request),
        principal,
        sort_by=sort_by,
        sort_dir=sort_dir,
        page=page,
        limit=limit,
        search=params.text(search, "search"),
        start=lo,
        end=hi,
        tags=params.tags(request.query_params),
    )
    return TenantsPage(data=[tenant_out(r) for r in rows], total=total, page=page, limit=limit)


@router.get("/daily", response_model=list[DailyOut], summary="Cost, requests and active users per UTC day")
def daily(
    request: Request,
    principal: Reader,
    start: FromParam = None,
    end: ToParam = None,
    user: Annotated[str | None, Query(max_length=256, description="Only this user.")] = None,
    tenant: TenantParam = None,
    per: Annotated[Literal["user", "tenant"] | None, Query(description="Split each day per user or tenant.")] = None,
    tag: TagParam = [],  # noqa: B006
) -> list[DailyOut]:
    lo, hi = params.window_bounds(start, end)
    uid = params.text(user, "user")
    rows = ledger(request).daily(
        start=lo,
        end=hi,
        user_id=user_id_from_path(uid) if uid is not None else None,
        tenant_id=principal.scope(params.text(tenant, "tenant")),
        per=per,
        tags=params.tags(request.query_params),
    )
    return [daily_out(r) for r in rows]


@router.get(
    "/calls/{trace_id}/{span_id}",
    response_model=CallOut,
    summary="One stored call, complete",
    responses={404: {"description": "No such call (or not in your tenant)."}},
)
def call(
    request: Request,
    principal: Reader,
    trace_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{32}$")],
    span_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{16}$")],
) -> CallOut:
    record = find_call(ledger(request).store, trace_id, span_id, tenant_id=principal.scope(None))
    if record is None:
        raise HTTPException(status_code=404, detail="no such call")
    return CallOut(**record)
