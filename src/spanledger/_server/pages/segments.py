"""``/segments?by=<tag key>``: cost, requests, users and a daily series per value of a tag."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..._model.rows import DailyRow, SegmentRow
from .. import views
from .base import Reader, choices, filters_for, ledger, render

router = APIRouter(include_in_schema=False)


@router.get("/segments", response_class=HTMLResponse)
def segments(request: Request, principal: Reader) -> Response:
    f = filters_for(request, principal, "by")
    menus = choices(request, principal, f)
    by = f.get("by") or next(iter(menus.tags), "")
    rows: list[SegmentRow] = []
    daily: list[DailyRow] = []
    if by:
        rows, daily = ledger(request).segments(by, compare=True, **f.query)
    total = sum((r.usage.cost for r in rows), Decimal(0))
    charts = {
        r.value: views.spark(
            views.fill_days([(d.day, d.cost) for d in daily if d.key == r.value], f.window.start, f.window.end)
        )
        for r in rows
    }
    return render(
        request,
        "segments.html",
        principal,
        nav="segments",
        f=f,
        choices=menus,
        by=by,
        rows=rows,
        total=total,
        charts=charts,
        keys=list(menus.tags),
    )
