"""``/users``: the users ranking; ``/users/{id}``: one user (or "did you mean" when the id was never seen)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..._model.rows import UNATTRIBUTED_LABEL
from .. import params, views
from ..api import user_id_from_path
from . import budgets
from .base import PAGE_SIZES, Reader, filters_for, ledger, render

router = APIRouter(include_in_schema=False)


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, principal: Reader) -> Response:
    f = filters_for(request, principal, "inactive", "budget")
    inactive = f.get("inactive") == "1"  # also the customers with a profile and no calls
    budget = budgets.users(request, principal, f)  # the budget column; ?budget=over: the users over budget
    result = budget.over_page or ledger(request).users(
        sort_by=f.sort_by,  # type: ignore[arg-type]
        sort_dir=f.sort_dir,  # type: ignore[arg-type]
        page=f.page,
        limit=f.limit,
        search=f.search or None,
        traces=False,  # the table does not show them; counting them is most of a page's cost
        compare=True,
        include_inactive=inactive,
        **f.query,
    )
    budget.fill(request, principal, f, result.rows)
    page_cost = sum((r.usage.cost for r in result.rows), Decimal(0))
    return render(
        request,
        "users.html",
        principal,
        nav="users",
        f=f,
        result=result,
        rows=result.rows,
        page_cost=page_cost,
        page_sizes=PAGE_SIZES,
        inactive=result.inactive,
        show_inactive=inactive,
        budget=budget,
        csv_url="/api/v1/users.csv" + views.query(f.api_query + ([("includeInactive", "true")] if inactive else [])),
    )


@router.get("/users/{user_id:path}", response_class=HTMLResponse)
def user(request: Request, principal: Reader, user_id: str) -> Response:
    f = filters_for(request, principal)
    uid = params.text(user_id_from_path(user_id), "user id") or ""
    led = ledger(request)
    detail = led.user(uid, start=f.window.start, end=f.window.end, tenant_id=f.tenant, calls=10)
    if detail.summary is None and detail.profile is None and not led.seen(user_id=uid, tenant_id=principal.scope(None)):
        scope = principal.scope(None)
        return render(
            request,
            "not_found.html",
            principal,
            status_code=404,
            nav="users",
            f=f,
            kind="user",
            asked=uid,
            suggestions=[(s, f.url(views.user_path(s), user=None)) for s in led.similar(uid, tenant_id=scope)],
        )
    cost = detail.summary.usage.cost if detail.summary else Decimal(0)
    return render(
        request,
        "user.html",
        principal,
        nav="users",
        f=f,
        uid=uid,
        label=uid or UNATTRIBUTED_LABEL,
        detail=detail,
        s=detail.summary,
        total_cost=cost,
        chart=views.bar_chart(
            views.fill_days([(d.day, d.cost) for d in detail.daily], f.window.start, f.window.end),
            money_values=True,
            label=f"Daily cost of {uid or 'unattributed'}",
            width=1160,
            height=220,
        ),
        calls_url=f.url("/calls", user=uid),
        back=f.url("/users"),
        budget=budgets.user(request, principal, uid, detail.summary.tenant_ids if detail.summary else (), f),
    )
