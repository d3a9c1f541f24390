"""Billing pages: a printable statement (``/tenants/{id}/statement``) and margins (``/margins``).

Server-rendered like the rest of the dashboard (templates of their own extending ``base.html``, styles in
``static/billing.css``); a tenant token sees only its own tenant's statement and margins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from ..._billing.model import MarginBy
from ..._billing.periods import month_start, next_month, period_bounds
from ..._billing.rounding import RULE, cents_text
from ..._billing.tables import percent
from ..._model.rows import NO_TENANT_LABEL
from ..._query.ledger import Ledger
from .. import params, views
from ..api import user_id_from_path
from ..auth import Principal, page_reader
from .base import render, templates

router = APIRouter(include_in_schema=False)
Reader = Annotated[Principal, Depends(page_reader)]
templates.env.filters.update(cents=cents_text, percent=percent)


def _window(request: Request) -> tuple[datetime, datetime, str]:
    """The page's window: ``period`` (a month or a day), or ``from`` / ``to`` (ISO; ``to`` exclusive); this month
    by default. Returns it and the month it is, if it is one (for the month picker)."""
    q = request.query_params
    period = params.text(q.get("period"), "period")
    if period:
        lo, hi = period_bounds(period)
    else:
        start, end = params.window_bounds(q.get("from"), q.get("to"))
        if start is None and end is None:
            start = month_start(datetime.now(UTC).date())
        lo = start or params.MIN_TIME
        hi = end or next_month(lo)
    month = f"{lo:%Y-%m}" if lo == month_start(lo.date()) and hi == next_month(lo) else ""
    return lo, hi, month


def _ledger(request: Request) -> Ledger:
    value: Ledger = request.app.state.ledger
    return value


def _query(**pairs: str) -> str:
    return views.query(list(pairs.items()))


@router.get("/tenants/{tenant_id:path}/statement", response_class=HTMLResponse)
def statement_page(request: Request, principal: Reader, tenant_id: str) -> Response:
    asked = "" if tenant_id == NO_TENANT_LABEL else params.text(tenant_id, "tenant") or ""
    if principal.role != "admin" and asked != principal.tenant:
        raise HTTPException(status_code=403, detail=f"this token can only read tenant {principal.tenant!r}")
    tenant = asked
    raw_user = params.text(request.query_params.get("user"), "user")
    user = user_id_from_path(raw_user) if raw_user is not None else None
    lo, hi, month = _window(request)
    st = _ledger(request).statement(tenant, user_id=user, start=lo, end=hi)
    api = _query(tenant=tenant, user=raw_user or "", **{"from": lo.isoformat(), "to": hi.isoformat()})
    return render(
        request,
        "billing_statement.html",
        principal,
        nav="tenants",
        st=st,
        tenant_label=tenant or NO_TENANT_LABEL,
        user=user,
        month=month,
        rule=RULE,
        csv_url="/api/v1/statement.csv" + api,
        json_url="/api/v1/statement" + api,
        margins_url="/margins" + _query(period=month) if month else "/margins",
    )


@router.get("/margins", response_class=HTMLResponse)
def margins_page(request: Request, principal: Reader) -> Response:
    by: MarginBy = "user" if request.query_params.get("by") == "user" else "tenant"
    lo, hi, month = _window(request)
    scope = principal.scope(params.text(request.query_params.get("tenant"), "tenant"))
    rows = _ledger(request).margins(lo, hi, by=by, tenant_id=scope)
    window = {"from": lo.isoformat(), "to": hi.isoformat()}
    links: dict[str, Any] = {}
    if by == "tenant":
        when = _query(period=month) if month else _query(**window)
        links = {
            r.customer_id: f"/tenants/{quote(r.customer_id or NO_TENANT_LABEL, safe='')}/statement{when}" for r in rows
        }
    return render(
        request,
        "billing_margins.html",
        principal,
        nav="margins",
        rows=rows,
        by=by,
        lo=lo,
        hi=hi,
        month=month,
        tenant=scope or "",
        negative=sum(1 for r in rows if r.negative),
        links=links,
        other=_query(by="tenant" if by == "user" else "user", period=month, tenant=scope or "")
        if month
        else _query(by="tenant" if by == "user" else "user", tenant=scope or "", **window),
        csv_url="/api/v1/margins.csv" + _query(by=by, tenant=scope or "", **window),
    )
