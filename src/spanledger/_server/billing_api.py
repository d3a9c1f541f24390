"""The billing API (``/api/v1``): statements, margins, markups, revenue import and repricing.

Reading a statement or margins needs a reader token; a tenant token's tenant is forced into every query
(asking for another is a 403). Changing anything — markups, revenue, prices — needs the admin token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .._billing import records
from .._billing.billing import Billing
from .._billing.markups import remove_markup
from .._billing.periods import month_start, next_month, period_bounds
from .._billing.revenue import RevenueFileError, import_revenue
from .._present.output import csv_lines
from .._query.ledger import Ledger
from . import params
from .api import FromParam, ToParam, admin, user_id_from_path
from .auth import Principal, api_reader
from .billing_schemas import (
    MarginsOut,
    MarkupIn,
    MarkupOut,
    MarkupsOut,
    RepriceIn,
    RepriceOut,
    RevenueImportOut,
    StatementOut,
)

router = APIRouter(prefix="/api/v1", tags=["billing"])

Reader = Annotated[Principal, Depends(api_reader)]
PeriodParam = Annotated[
    str | None, Query(max_length=10, description="A month `2026-11` or a day `2026-11-05` (UTC) instead of from/to.")
]
TenantParam = Annotated[str | None, Query(max_length=256, description="The tenant (a tenant token: its own only).")]
UserParam = Annotated[str | None, Query(max_length=256, description='A user id ("(unattributed)" for none).')]
ByParam = Annotated[Literal["tenant", "user"], Query(description="One row per tenant or per user id.")]
MAX_REVENUE_BYTES = 20 * 1024 * 1024


def _ledger(request: Request) -> Ledger:
    value: Ledger = request.app.state.ledger
    return value


def window(
    period: str | None, start: str | None, end: str | None, *, default_month: bool
) -> tuple[datetime | None, datetime | None]:
    """The window asked for: a period, or from/to (a statement with neither: this month)."""
    if period:
        if start or end:
            raise params.invalid("give period or from/to, not both", "period")
        try:
            return period_bounds(period)
        except ValueError as exc:
            raise params.invalid(str(exc), "period") from None
    lo, hi = params.window_bounds(start, end)
    if lo is None and hi is None and default_month:
        lo = month_start(datetime.now(UTC).date())
        hi = next_month(lo)
    return lo, hi


def scoped_statement(
    request: Request,
    principal: Principal,
    tenant: str | None,
    user: str | None,
    period: str | None,
    start: str | None,
    end: str | None,
) -> Any:
    """A statement, never wider than a tenant token's tenant."""
    tenant_id = principal.scope(params.text(tenant, "tenant"))
    raw_user = params.text(user, "user")
    user_id = user_id_from_path(raw_user) if raw_user is not None else None
    if tenant_id is None and user_id is None:
        raise params.invalid("a statement is for a tenant or a user: give tenant or user", "tenant")
    lo, hi = window(period, start, end, default_month=True)
    return _ledger(request).statement(tenant_id, user_id=user_id, start=lo, end=hi)


@router.get("/statement", response_model=StatementOut, summary="A tenant's (or user's) statement for a period")
def statement(
    request: Request,
    principal: Reader,
    tenant: TenantParam = None,
    user: UserParam = None,
    period: PeriodParam = None,
    start: FromParam = None,
    end: ToParam = None,
) -> dict[str, Any]:
    return records.record(scoped_statement(request, principal, tenant, user, period, start, end))


@router.get(
    "/statement.csv",
    summary="The same statement as CSV: its lines, then a total row",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV with a header row."}},
)
def statement_csv(
    request: Request,
    principal: Reader,
    tenant: TenantParam = None,
    user: UserParam = None,
    period: PeriodParam = None,
    start: FromParam = None,
    end: ToParam = None,
) -> StreamingResponse:
    st = scoped_statement(request, principal, tenant, user, period, start, end)
    rows = records.statement_rows(st)
    name = f"statement-{st.start:%Y%m%d}-{st.end:%Y%m%d}.csv"
    return StreamingResponse(
        iter(list(csv_lines(rows, records.LINE_COLUMNS))),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def scoped_margins(
    request: Request,
    principal: Principal,
    by: str,
    tenant: str | None,
    period: str | None,
    start: str | None,
    end: str | None,
) -> tuple[list[Any], datetime | None, datetime | None]:
    lo, hi = window(period, start, end, default_month=False)
    tenant_id = principal.scope(params.text(tenant, "tenant"))
    return _ledger(request).margins(lo, hi, by=by, tenant_id=tenant_id), lo, hi  # type: ignore[arg-type]


@router.get("/margins", response_model=MarginsOut, summary="Revenue against cost per tenant or user, worst first")
def margins(
    request: Request,
    principal: Reader,
    by: ByParam = "tenant",
    tenant: TenantParam = None,
    period: PeriodParam = None,
    start: FromParam = None,
    end: ToParam = None,
) -> dict[str, Any]:
    rows, lo, hi = scoped_margins(request, principal, by, tenant, period, start, end)
    return records.margins_record(rows, by=by, start=lo, end=hi)


@router.get(
    "/margins.csv",
    summary="Margins as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV with a header row."}},
)
def margins_csv(
    request: Request,
    principal: Reader,
    by: ByParam = "tenant",
    tenant: TenantParam = None,
    period: PeriodParam = None,
    start: FromParam = None,
    end: ToParam = None,
) -> StreamingResponse:
    rows, _, _ = scoped_margins(request, principal, by, tenant, period, start, end)
    lines = list(csv_lines([records.record(r) for r in rows], records.MARGIN_COLUMNS))
    return StreamingResponse(
        iter(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="spanledger-margins.csv"'},
    )


def _billing(request: Request) -> Billing:
    return Billing(_ledger(request).store)


@router.get("/markups", response_model=MarkupsOut, summary="The markups in force (admin)")
def markups(request: Request, principal: Reader) -> dict[str, Any]:
    admin(principal)
    return {"markups": [records.record(m) for m in _billing(request).markups()]}


@router.put(
    "/markups", response_model=MarkupOut, summary="Set a markup for a tenant, user, plan or the default (admin)"
)
def set_markup(request: Request, principal: Reader, body: MarkupIn) -> dict[str, Any]:
    admin(principal)
    done = _billing(request).set_markup(
        body.percent, tenant=body.tenant, user=body.user, plan=body.plan, note=body.note
    )
    return records.record(done)


@router.delete("/markups", summary="Remove a markup (admin)")
def delete_markup(
    request: Request,
    principal: Reader,
    tenant: TenantParam = None,
    user: UserParam = None,
    plan: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    admin(principal)
    named = [(s, k) for s, k in (("user", user), ("tenant", tenant), ("plan", plan)) if k is not None]
    if len(named) > 1:
        raise params.invalid("name one of tenant, user, plan (or none for the default)", "tenant")
    scope, key = named[0] if named else ("default", "")
    return {"removed": remove_markup(_ledger(request).store, scope, key)}


@router.post(
    "/revenue",
    response_model=RevenueImportOut,
    summary="Import a revenue CSV sent as the body, whole or not at all (admin)",
    responses={422: {"description": "The file was refused: `errors` holds one message per bad line."}},
)
async def revenue(
    request: Request,
    principal: Reader,
    name: Annotated[str, Query(max_length=128, pattern=r"^[\w.\- ]+$")] = "revenue.csv",
    dry_run: bool = False,
) -> Any:
    admin(principal)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REVENUE_BYTES:
            raise HTTPException(status_code=413, detail=f"a revenue file is at most {MAX_REVENUE_BYTES} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(status_code=422, detail="the file is not UTF-8 text") from None
    store = _ledger(request).store
    try:
        done = await run_in_threadpool(lambda: import_revenue(store, text, name=name, dry_run=dry_run))
    except RevenueFileError as exc:
        return JSONResponse({"detail": str(exc), "errors": exc.errors}, status_code=422)
    return records.record(done)


@router.post("/reprice", response_model=RepriceOut, summary="Price a window's stored calls again (admin)")
def reprice(request: Request, principal: Reader, body: RepriceIn) -> dict[str, Any]:
    admin(principal)
    lo, hi = params.window_bounds(body.start, body.end)
    if lo is None or hi is None:
        raise params.invalid("a repricing needs from and to", "from")
    report = _billing(request).reprice(  # the prices the server's own ingest uses
        start=lo,
        end=hi,
        provider=body.provider,
        model=body.model,
        price_file=request.app.state.settings.price_file,
        dry_run=body.dry_run,
    )
    return records.record(report)
