"""The dashboard: ``/`` overview, ``/users`` table, ``/users/{id}`` detail and ``/calls/…`` records.

Server-rendered (Jinja2, autoescaped: user and tenant ids come from untrusted spans). Every filter —
window, search, tenant, tags, sort, page — lives in the URL, so any view can be shared as a link.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from .. import __version__
from .._model.rows import SORT_KEYS, UNATTRIBUTED_LABEL
from .._present import numbers, records
from .._query.ledger import Ledger
from .._query.sql import MAX_LIMIT
from . import budgets_pages, params, views
from .api import user_id_from_path
from .auth import SESSION_COOKIE, Authenticator, Principal, page_reader

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters.update(
    money=numbers.money,
    exact=numbers.exact,
    number=numbers.count,
    compact=numbers.compact,
    timestamp=numbers.timestamp,
    ago=numbers.ago,
    latency=numbers.latency,
    user_path=views.user_path,
    trace_hex="{:032x}".format,
    span_hex="{:016x}".format,
)
templates.env.globals.update(version=__version__, unattributed=UNATTRIBUTED_LABEL, share_bar=views.share_bar)

Reader = Annotated[Principal, Depends(page_reader)]
PAGE_SIZES = (25, 50, 100)


@dataclass(frozen=True, slots=True)
class Filters:
    """The state of a dashboard view, and links to the same view with something changed."""

    path: str
    window: params.WindowChoice
    search: str = ""
    tenant: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    sort_by: str = "cost"
    sort_dir: str = "desc"
    page: int = 1
    limit: int = 50
    budget: str = ""
    """``over``: only the users at or past a budget (``budgets_pages``)."""

    def pairs(self) -> list[tuple[str, str]]:
        out = [("window", self.window.key)]
        if self.window.key == "custom":
            out += [("from", self.window.from_date), ("to", self.window.to_date)]
        out += [("search", self.search), ("tenant", self.tenant)]
        out += [("tag", f"{k}={v}") for k, v in self.tags.items()]
        out.append(("budget", self.budget))
        if (self.sort_by, self.sort_dir) != ("cost", "desc"):
            out += [("sortBy", self.sort_by), ("sortDir", self.sort_dir)]
        if self.page != 1:
            out.append(("page", str(self.page)))
        if self.limit != 50:
            out.append(("limit", str(self.limit)))
        return out

    def url(self, path: str | None = None, **changes: Any) -> str:
        if "window" in changes and isinstance(changes["window"], str):
            changes["window"] = params.preset(changes["window"])
        changed = replace(self, **changes) if changes else self
        return (self.path if path is None else path) + views.query(changed.pairs())

    def sort_url(self, column: str) -> str:
        direction = "asc" if (self.sort_by == column and self.sort_dir == "desc") else "desc"
        return self.url(sort_by=column, sort_dir=direction, page=1)

    def hidden(self, *skip: str) -> list[tuple[str, str]]:
        """Hidden form inputs that carry the rest of the view through a filter form."""
        return [(k, v) for k, v in self.pairs() if k not in skip and v]

    @property
    def api_query(self) -> list[tuple[str, str]]:
        out = [("from", self.window.start.isoformat() if self.window.start else "")]
        out.append(("to", self.window.end.isoformat() if self.window.end else ""))
        out += [("search", self.search), ("tenant", self.tenant), ("sortBy", self.sort_by), ("sortDir", self.sort_dir)]
        return out + [("tag", f"{k}={v}") for k, v in self.tags.items()]


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(value or default)))
    except ValueError:
        return default


def filters_for(request: Request, principal: Principal) -> Filters:
    q = request.query_params
    sort_by = q.get("sortBy") if q.get("sortBy") in SORT_KEYS else "cost"
    return Filters(
        path=request.url.path,
        window=params.page_window(q),
        search=params.text(q.get("search"), "search") or "",
        tenant=principal.scope(params.text(q.get("tenant"), "tenant")) or "",
        tags=params.tags(q),
        sort_by=sort_by or "cost",
        sort_dir="asc" if q.get("sortDir") == "asc" else "desc",
        page=_int(q.get("page"), 1, 1, 1_000_000),
        limit=_int(q.get("limit"), 50, 1, MAX_LIMIT),
        budget="over" if q.get("budget") == "over" else "",
    )


def ledger(request: Request) -> Ledger:
    value: Ledger = request.app.state.ledger
    return value


def render(request: Request, name: str, principal: Principal, status_code: int = 200, **context: Any) -> Response:
    context.update(principal=principal, no_auth=request.app.state.auth.no_auth)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


_CHOICES_TTL = 60.0


def _tenant_choices(request: Request, principal: Principal, f: Filters) -> list[str]:
    """Tenants for the filter menu, cached for a minute per window (the list rarely changes)."""
    if principal.role != "admin":
        return [principal.tenant or ""]
    cache: dict[tuple[str, str, str], tuple[float, set[str]]] = request.app.state.tenant_choices
    key = (f.window.key, f.window.from_date, f.window.to_date)
    hit = cache.get(key)
    if hit is None or hit[0] < time.monotonic():
        names = ledger(request).tenant_ids(limit=200, start=f.window.start, end=f.window.end)
        hit = (time.monotonic() + _CHOICES_TTL, set(names))
        cache[key] = hit
    return sorted((hit[1] | {f.tenant}) - {""})


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, principal: Reader) -> Response:
    f = filters_for(request, principal)
    led = ledger(request)
    start, end = f.window.start, f.window.end
    tags = f.tags or None
    scope = principal.scope(f.tenant or None)  # a tenant-scoped token never sees wider than its tenant
    ov = led.overview(tenant_id=scope, tags=tags, start=start, end=end, top=10)
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


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, principal: Reader) -> Response:
    f = filters_for(request, principal)
    led = ledger(request)
    budget = budgets_pages.users(request, principal, f)  # the budget column; ?budget=over: the users over budget
    result = budget.over_page or led.users(
        sort_by=f.sort_by,  # type: ignore[arg-type]
        sort_dir=f.sort_dir,  # type: ignore[arg-type]
        page=f.page,
        limit=f.limit,
        search=f.search or None,
        start=f.window.start,
        end=f.window.end,
        tenant_id=f.tenant or None,
        tags=f.tags or None,
        traces=False,  # the table does not show them; counting them is most of a page's cost
    )
    budget.fill(request, principal, f, result.rows)
    pages = max(1, -(-result.total // f.limit))
    page_cost = sum((r.usage.cost for r in result.rows), Decimal(0))
    return render(
        request,
        "users.html",
        principal,
        nav="users",
        f=f,
        rows=result.rows,
        total=result.total,
        pages=pages,
        page_cost=page_cost,
        page_sizes=PAGE_SIZES,
        tenant_choices=_tenant_choices(request, principal, f),
        csv_url="/api/v1/users.csv" + views.query(f.api_query),
        budget=budget,
    )


@router.get("/users/{user_id:path}", response_class=HTMLResponse)
def user(request: Request, principal: Reader, user_id: str) -> Response:
    f = filters_for(request, principal)
    uid = params.text(user_id_from_path(user_id), "user id") or ""
    detail = ledger(request).user(uid, start=f.window.start, end=f.window.end, tenant_id=f.tenant or None)
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
        back=f.url("/users"),
        budget=budgets_pages.user(request, principal, uid, detail.summary.tenant_ids if detail.summary else (), f),
    )


@router.get("/calls/{trace_id}/{span_id}", response_class=HTMLResponse)
def call(request: Request, principal: Reader, trace_id: str, span_id: str) -> Response:
    f = filters_for(request, principal)
    try:
        if len(trace_id) != 32 or len(span_id) != 16:
            raise ValueError
        int(trace_id, 16), int(span_id, 16)
    except ValueError:
        raise HTTPException(status_code=404, detail="no such call") from None
    found = ledger(request).call(int(trace_id, 16), int(span_id, 16), tenant_id=principal.scope(None))
    if found is None:
        raise HTTPException(status_code=404, detail="no such call")
    back = f.url(views.user_path(found.user_id), tenant=found.tenant_id if principal.role == "admin" else f.tenant)
    skip = {"prompt", "completion", "tags", "flags"}
    fields = [(field.name, field.get(found)) for field in records.CALL.fields if field.name not in skip]
    return render(request, "call.html", principal, nav="users", f=f, r=found, fields=fields, back=back)


# --- sign in / out ----------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never ``//evil.example`` or ``https://…``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    return parts.path + (f"?{parts.query}" if parts.query else "")


_MAX_FORM_BYTES = 8192


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"next": _safe_next(request.query_params.get("next")), "error": ""}
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_FORM_BYTES:
            raise HTTPException(status_code=413, detail="the sign-in form is too large")
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    auth: Authenticator = request.app.state.auth
    token = form.get("token", "").strip()
    principal = auth.for_token(token)
    target = _safe_next(form.get("next"))
    if principal is None or principal.role == "ingest":
        message = "That token is not valid for reading." if principal is None else "The ingest token cannot read."
        context = {"next": target, "error": message}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        auth.session_value(token),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
