"""The versioned JSON API (``/api/v1``): the same questions and answers as :class:`~spanledger.Ledger`.

Money is a decimal string (``"0.000121200000"``), never a JSON float. A tenant-scoped token's tenant is
forced into every query; asking for another tenant is a 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse

from .._errors import unknown_user
from .._model.rows import NO_TENANT_LABEL, SORT_KEYS, UNATTRIBUTED_LABEL, Page, TenantRow
from .._present import records
from .._present.output import csv_lines
from .._privacy.pseudonym import lookup_id
from .._query.ledger import Ledger
from .._query.sql import MAX_LIMIT
from . import params
from .auth import Principal, api_reader
from .schemas import DailySeries, OverviewOut, TenantDetailOut, TenantsPage, UserDetailOut, UsersPage, WhoAmI

router = APIRouter(prefix="/api/v1", tags=["ledger"])

Reader = Annotated[Principal, Depends(api_reader)]
SortByParam = Annotated[
    Literal["cost", "requests", "tokens", "last_seen"],
    Query(alias="sortBy", description=f"Sort column: {', '.join(SORT_KEYS)}."),
]
SortDirParam = Annotated[Literal["asc", "desc"], Query(alias="sortDir")]
PageParam = Annotated[
    int, Query(ge=1, le=1_000_000, description="Page number, from 1; a page past the end answers the last page.")
]
LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")]
FromParam = Annotated[
    str | None,
    Query(alias="from", max_length=64, description="Start (inclusive): ISO date/time, or `7d`, `24h` back from now."),
]
ToParam = Annotated[str | None, Query(alias="to", max_length=64, description="End (exclusive), same forms as `from`.")]
TenantParam = Annotated[
    str | None,
    Query(
        max_length=256,
        description=f'Only this tenant; "{NO_TENANT_LABEL}" for the calls without one (a tenant token may only '
        "name its own).",
    ),
]
UserParam = Annotated[
    str | None,
    Query(max_length=256, description=f'Only this user (exact id); "{UNATTRIBUTED_LABEL}" for the calls without one.'),
]
SearchParam = Annotated[
    str | None,
    Query(
        max_length=256, description="Case-insensitive substring of the id (users: or of a profile's name or e-mail)."
    ),
]
InactiveParam = Annotated[
    bool,
    Query(
        alias="includeInactive",
        description="Also the customers with a profile and no calls in the window (zero usage, after the others).",
    ),
]
TagParam = Annotated[
    list[str],
    Query(
        description="Tag filter `key=value`, repeatable. `tag.<key>=<value>` parameters (e.g. `tag.plan=pro`) work too."
    ),
]
CompareParam = Annotated[
    bool, Query(description="Also the cost over the previous window of the same length (needs a `from`).")
]


def ledger(request: Request) -> Ledger:
    value: Ledger = request.app.state.ledger
    return value


def user_id_from_path(user_id: str) -> str:
    """The stored id for a path segment: the unattributed label stands for ``""``; a raw id is hashed in a
    pseudonymized ledger (``SPANLEDGER_ID_KEY``), a pseudonym stays itself."""
    return "" if user_id == UNATTRIBUTED_LABEL else lookup_id(user_id)


def tenant_id_from_path(tenant_id: str) -> str:
    """The stored id for a path segment: the no-tenant label stands for ``""``."""
    return "" if tenant_id == NO_TENANT_LABEL else tenant_id


def filters(request: Request, principal: Principal, tenant: str | None, user: str | None = None) -> dict[str, Any]:
    """The filters every question shares: tenant (scoped by the token), user, tags."""
    return {
        "tenant_id": principal.scope(params.tenant(tenant)),
        "user_id": params.user(user),
        "tags": params.tags(request.query_params),
    }


def tenant_page(led: Ledger, principal: Principal, **kwargs: Any) -> Page[TenantRow]:
    """A page of tenants; a tenant-scoped token gets its own tenant's row and nothing else."""
    if principal.role == "admin":
        return led.tenants(**kwargs)
    # never wider than its own tenant
    return led.tenants(**{**kwargs, "tenant_id": principal.tenant or "", "include_no_tenant": True})


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
    user: UserParam = None,
    top: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many top users and tenants.")] = 10,
    tag: TagParam = [],  # noqa: B006
    compare: CompareParam = False,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    ov = ledger(request).overview(
        start=lo, end=hi, top=top, compare=compare, **filters(request, principal, tenant, user)
    )
    return {"window": records.window_record(lo, hi), **records.overview_record(ov)}


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
    user: UserParam = None,
    tag: TagParam = [],  # noqa: B006 - FastAPI copies defaults
    compare: CompareParam = False,
    include_unattributed: Annotated[
        bool, Query(description="Rank the calls with no user id as rows (one per tenant), counted in total.")
    ] = False,
    include_inactive: InactiveParam = False,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    result = ledger(request).users(
        sort_by=sort_by,
        sort_dir=sort_dir,
        page=page,
        limit=limit,
        search=params.text(search, "search"),
        start=lo,
        end=hi,
        compare=compare,
        include_unattributed=include_unattributed,
        include_inactive=include_inactive,
        **filters(request, principal, tenant, user),
    )
    meta = {"window": records.window_record(lo, hi), "sort_by": sort_by, "sort_dir": sort_dir}
    return records.page_record(result, records.USER, unnamed="unattributed", **meta, inactive=result.inactive)


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
    user: UserParam = None,
    tag: TagParam = [],  # noqa: B006
    include_unattributed: Annotated[
        bool, Query(description="Include the calls with no user id as rows (one per tenant).")
    ] = False,
    include_inactive: InactiveParam = False,
) -> StreamingResponse:
    lo, hi = params.window_bounds(start, end)
    query: dict[str, Any] = {
        "sort_by": sort_by,
        "sort_dir": sort_dir,
        "search": params.text(search, "search"),
        "start": lo,
        "end": hi,
        "include_unattributed": include_unattributed,
        "include_inactive": include_inactive,
        **filters(request, principal, tenant, user),
    }
    led = ledger(request)
    first = led.users(page=1, limit=MAX_LIMIT, **query)  # errors surface now, before the response starts

    def every_row() -> Iterator[dict[str, Any]]:
        result, number = first, 1
        while True:
            yield from records.USER.records(result.rows)
            if number * MAX_LIMIT >= result.total:
                return
            number += 1
            result = led.users(page=number, limit=MAX_LIMIT, **query)

    def rows() -> Iterator[str]:
        yield from csv_lines(every_row(), records.USER.columns)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="spanledger-users.csv"'},
    )


@router.get(
    "/users/{user_id:path}",
    response_model=UserDetailOut,
    summary="One user's totals, per-model breakdown, daily cost and most recent calls (50 unless `calls`)",
    responses={404: {"description": "No call of this user was ever stored (in your tenant)."}},
)
def user(
    request: Request,
    principal: Reader,
    user_id: Annotated[str, Path(max_length=256, description='User id; "(unattributed)" for calls with no user.')],
    start: FromParam = None,
    end: ToParam = None,
    tenant: TenantParam = None,
    calls: Annotated[int, Query(ge=0, le=MAX_LIMIT, description="How many of the most recent calls.")] = 50,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    uid = params.text(user_id_from_path(user_id), "user id") or ""
    scope = principal.scope(params.tenant(tenant))
    led = ledger(request)
    detail = led.user(uid, start=lo, end=hi, tenant_id=scope, calls=calls)
    if detail.summary is None and detail.profile is None and not led.seen(user_id=uid, tenant_id=scope):
        raise HTTPException(status_code=404, detail=unknown_user(uid, scope, led.similar(uid, tenant_id=scope)))
    body = records.user_detail_record(
        uid, detail.summary, detail.models, detail.daily, detail.calls, profile=detail.profile, tools=detail.tools
    )
    return {"window": records.window_record(lo, hi), **body}


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
    user: UserParam = None,
    tag: TagParam = [],  # noqa: B006
    compare: CompareParam = False,
    include_no_tenant: Annotated[
        bool, Query(description="Rank the calls with no tenant id as a row, counted in total.")
    ] = False,
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    result = tenant_page(
        ledger(request),
        principal,
        sort_by=sort_by,
        sort_dir=sort_dir,
        page=page,
        limit=limit,
        search=params.text(search, "search"),
        start=lo,
        end=hi,
        user_id=params.user(user),
        tags=params.tags(request.query_params),
        compare=compare,
        include_no_tenant=include_no_tenant,
    )
    meta = {"window": records.window_record(lo, hi), "sort_by": sort_by, "sort_dir": sort_dir}
    return records.page_record(result, records.TENANT, unnamed="no_tenant", **meta)


@router.get(
    "/tenants/{tenant_id:path}",
    response_model=TenantDetailOut,
    summary="One tenant's totals, users, per-model breakdown and daily series",
    responses={404: {"description": "No call of this tenant was ever stored."}},
)
def tenant(
    request: Request,
    principal: Reader,
    tenant_id: Annotated[
        str, Path(max_length=256, description=f'Tenant id; "{NO_TENANT_LABEL}" for the calls without one.')
    ],
    start: FromParam = None,
    end: ToParam = None,
    user: UserParam = None,
    tag: TagParam = [],  # noqa: B006
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    tid = principal.scope(params.text(tenant_id_from_path(tenant_id), "tenant id") or "")
    assert tid is not None
    led = ledger(request)
    detail = led.tenant(tid, start=lo, end=hi, user_id=params.user(user), tags=params.tags(request.query_params))
    if detail.summary is None and not led.seen(tenant_id=tid):
        raise HTTPException(status_code=404, detail=f"no tenant {tid!r}")
    return {"window": records.window_record(lo, hi), **records.tenant_detail_record(detail)}


@router.get("/daily", response_model=DailySeries, summary="Cost, requests and active users per UTC day")
def daily(
    request: Request,
    principal: Reader,
    start: FromParam = None,
    end: ToParam = None,
    user: UserParam = None,
    tenant: TenantParam = None,
    per: Annotated[Literal["user", "tenant"] | None, Query(description="Split each day per user or tenant.")] = None,
    tag: TagParam = [],  # noqa: B006
) -> dict[str, Any]:
    lo, hi = params.window_bounds(start, end)
    rows = ledger(request).daily(start=lo, end=hi, per=per, **filters(request, principal, tenant, user))
    return {"window": records.window_record(lo, hi), "per": per, "data": records.DAILY.records(rows)}
