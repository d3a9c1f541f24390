"""``/``: the window at a glance, narrowed by the filter bar, against the previous window of the same length."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import views
from .base import Reader, filters_for, ledger, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, principal: Reader) -> Response:
    f = filters_for(request, principal)
    ov = ledger(request).overview(**f.query, top=10, compare=True)
    start, end = f.window.start, f.window.end
    return render(
        request,
        "overview.html",
        principal,
        nav="overview",
        f=f,
        ov=ov,
        cost_chart=views.bar_chart(
            views.fill_days([(d.day, d.cost) for d in ov.daily], start, end),
            money_values=True,
            label="Cost per day (USD)",
        ),
        users_chart=views.bar_chart(
            views.fill_days([(d.day, d.active_users) for d in ov.daily], start, end),
            money_values=False,
            label="Active users per day",
        ),
    )
