"""``/tenants``: the tenants ranking; ``/tenants/{id}``: one tenant — its users, models and days
("(no tenant)" is the calls that carried none, and opens like any tenant)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..._model.rows import NO_TENANT_LABEL
from .. import params, views
from ..api import tenant_id_from_path
from .base import PAGE_SIZES, Reader, filters_for, ledger, render

router = APIRouter(include_in_schema=False)


@router.get("/tenants", response_class=HTMLResponse)
def tenants(request: Request, principal: Reader) -> Response:
    f = filters_for(request, principal)
    query = {**f.query, "include_no_tenant": principal.role != "admin"}
    result = ledger(request).tenants(
        sort_by=f.sort_by,  # type: ignore[arg-type]
        sort_dir=f.sort_dir,  # type: ignore[arg-type]
        page=f.page,
        limit=f.limit,
        search=f.search or None,
        traces=False,
        compare=True,
        **query,
    )
    return render(
        request, "tenants.html", principal, nav="tenants", f=f, result=result, rows=result.rows, page_sizes=PAGE_SIZES
    )


@router.get("/tenants/{tenant_id:path}", response_class=HTMLResponse)
def tenant(request: Request, principal: Reader, tenant_id: str) -> Response:
    f = filters_for(request, principal)
    tid = principal.scope(params.text(tenant_id_from_path(tenant_id), "tenant id") or "") or ""
    led = ledger(request)
    start, end = f.window.start, f.window.end
    detail = led.tenant(tid, start=start, end=end, user_id=f.user, tags=f.tags or None)
    if detail.summary is None and not led.seen(tenant_id=tid):
        return render(
            request,
            "not_found.html",
            principal,
            status_code=404,
            nav="tenants",
            f=f,
            kind="tenant",
            asked=tid,
            suggestions=[(s, f.url(views.tenant_path(s))) for s in led.similar(tid, column="tenant_id")],
        )
    top = led.users(limit=10, start=start, end=end, tenant_id=tid, user_id=f.user, tags=f.tags or None, traces=False)
    return render(
        request,
        "tenant.html",
        principal,
        nav="tenants",
        f=f,
        tid=tid,
        label=tid or NO_TENANT_LABEL,
        detail=detail,
        s=detail.summary,
        users=top,
        chart=views.bar_chart(
            views.fill_days([(d.day, d.cost) for d in detail.daily], start, end),
            money_values=True,
            label=f"Daily cost of {tid or NO_TENANT_LABEL}",
            width=1160,
            height=220,
        ),
        users_url=f.url("/users", tenant=tid),
        calls_url=f.url("/calls", tenant=tid),
        back=f.url("/tenants"),
    )
