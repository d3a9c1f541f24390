"""``/calls``: the calls explorer (filtered, keyset-paged); ``/calls/{trace}/{span}``: one call as a record a
person reads, with the other calls of its trace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from ..._errors import ConfigError
from ..._query.calls import FLAGS, Direction
from .. import params, views
from .base import Filters, Reader, choices, filters_for, ledger, render

router = APIRouter(include_in_schema=False)

EXPLORER = ("provider", "model", "status", "flag", "min_cost", "max_cost", "trace", "cursor", "direction")
"""The explorer's own parameters (beside the filter bar's)."""
_PAGE_SIZES = (25, 50, 100, 200)


def _asked(f: Filters) -> dict[str, Any]:
    trace = f.get("trace").strip().lower()
    if trace and (len(trace) != 32 or any(c not in "0123456789abcdef" for c in trace)):
        raise ConfigError("bad trace id: 32 hex digits")
    status = f.get("status")
    return {
        **f.query,
        "provider": params.text(f.get("provider"), "provider"),
        "model": params.text(f.get("model"), "model"),
        "status": status if status in ("ok", "error") else None,
        "flags": [x for x in f.get_all("flag") if x in FLAGS],
        "min_cost": params.text(f.get("min_cost"), "min_cost"),
        "max_cost": params.text(f.get("max_cost"), "max_cost"),
        "trace_id": int(trace, 16) if trace else None,
    }


@router.get("/calls", response_class=HTMLResponse)
def calls(request: Request, principal: Reader) -> Response:
    f = filters_for(request, principal, *EXPLORER)
    asked = _asked(f)
    led = ledger(request)
    direction: Direction = "newer" if f.get("direction") == "newer" else "older"
    page = led.calls(cursor=f.get("cursor") or None, direction=direction, limit=min(f.limit, 200), **asked)
    total = led.count_calls(**asked)
    unpaged = tuple((k, v) for k, v in f.local if k not in ("cursor", "direction"))
    older = f.url(local=(*unpaged, ("cursor", page.next))) if page.next else None
    newer = f.url(local=(*unpaged, ("cursor", page.prev), ("direction", "newer"))) if page.prev else None
    menus = choices(request, principal, f)
    return render(
        request,
        "calls.html",
        principal,
        nav="calls",
        f=f,
        choices=menus,
        page=page,
        total=total,
        older=older,
        newer=newer,
        first=f.url(local=unpaged) if f.get("cursor") else None,
        models=led.models(start=f.window.start, end=f.window.end, tenant_id=principal.scope(None)),
        flags=FLAGS,
        page_sizes=_PAGE_SIZES,
    )


def _rates(request: Request, call: Any) -> Any:
    """The price per million tokens the server's price table gives the call's model at its time (what the
    pipeline applied, unless the table changed since: the stored costs are the record)."""
    if call.cost is None or not call.model:
        return None
    pricer = request.app.state.exporter.pipeline.pricer
    return pricer.rates(call.provider, call.model, call.timestamp)


@router.get("/calls/{trace_id}/{span_id}", response_class=HTMLResponse)
def call(request: Request, principal: Reader, trace_id: str, span_id: str) -> Response:
    f = filters_for(request, principal)
    try:
        if len(trace_id) != 32 or len(span_id) != 16:
            raise ValueError
        trace, span = int(trace_id, 16), int(span_id, 16)
    except ValueError:
        raise HTTPException(status_code=404, detail="no such call") from None
    led = ledger(request)
    scope = principal.scope(None)
    found = led.call(trace, span, tenant_id=scope)
    if found is None:
        raise HTTPException(status_code=404, detail="no such call")
    siblings = led.trace(trace, near=found.timestamp, tenant_id=scope)
    return render(
        request,
        "call.html",
        principal,
        nav="calls",
        f=f,
        r=found,
        flag_meaning=views.flag_meaning,
        rates=_rates(request, found),
        siblings=siblings,
        back=f.url(views.user_path(found.user_id)),
        trace_url=f.url("/calls", local=(("trace", f"{trace:032x}"),)),
    )
