"""What every dashboard page shares: the templates, the filter bar's state (:class:`Filters`), the menus'
choices, and rendering.

The filter bar — window, user, tenant, tags — narrows every page and stays in the URL across navigation; a
page's own parameters (sort, page, search, the explorer's filters, a cursor) stay on that page. Every view
can be shared as a link. Server-rendered with Jinja2, autoescaped: user and tenant ids come from untrusted
spans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from ... import __version__
from ..._model.rows import NO_TENANT_LABEL, SORT_KEYS, UNATTRIBUTED_LABEL
from ..._present import numbers, sorts
from ..._query.ledger import Ledger
from ..._query.sql import MAX_LIMIT
from .. import params, views
from ..auth import Principal, page_reader

templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
templates.env.filters.update(
    money=numbers.money,
    exact=numbers.exact,
    number=numbers.count,
    compact=numbers.compact,
    timestamp=numbers.timestamp,
    ago=numbers.ago,
    latency=numbers.latency,
    user_path=views.user_path,
    tenant_path=views.tenant_path,
    trace_hex="{:032x}".format,
    span_hex="{:016x}".format,
)
templates.env.globals.update(
    version=__version__,
    unattributed=UNATTRIBUTED_LABEL,
    no_tenant=NO_TENANT_LABEL,
    share_bar=views.share_bar,
    delta=views.delta,
    plural=numbers.plural,
    ranking_title=sorts.ranking_title,
)

Reader = Annotated[Principal, Depends(page_reader)]
PAGE_SIZES = (25, 50, 100)
_GLOBAL = ("window", "from", "to", "user", "tenant", "tag")
"""The filter bar's parameters: kept when moving to another page."""


@dataclass(frozen=True, slots=True)
class Filters:
    """The state of a dashboard view, and links to the same view (or another page) with something changed."""

    path: str
    window: params.WindowChoice
    user: str | None = None
    """Only this user (``""``: the unattributed calls); ``None``: everyone."""
    tenant: str | None = None
    """Only this tenant (``""``: the calls without one); ``None``: every tenant."""
    tags: dict[str, str] = field(default_factory=dict)
    search: str = ""
    sort_by: str = "cost"
    sort_dir: str = "desc"
    page: int = 1
    limit: int = 50
    local: tuple[tuple[str, str], ...] = ()
    """The page's own further parameters (the explorer's filters, a segment key, a cursor)."""

    def pairs(self) -> list[tuple[str, str]]:
        out = [("window", self.window.key)]
        if self.window.key == "custom":
            out += [("from", self.window.from_date), ("to", self.window.to_date)]
        if self.user is not None:
            out.append(("user", self.user or UNATTRIBUTED_LABEL))
        if self.tenant is not None:
            out.append(("tenant", self.tenant or NO_TENANT_LABEL))
        out += [("tag", f"{k}={v}") for k, v in self.tags.items()]
        out.append(("search", self.search))
        if (self.sort_by, self.sort_dir) != ("cost", "desc"):
            out += [("sortBy", self.sort_by), ("sortDir", self.sort_dir)]
        if self.page != 1:
            out.append(("page", str(self.page)))
        if self.limit != 50:
            out.append(("limit", str(self.limit)))
        return out + list(self.local)

    def url(self, path: str | None = None, **changes: Any) -> str:
        """This view with ``changes``; on another ``path``, only the filter bar carries over."""
        if "window" in changes and isinstance(changes["window"], str):
            changes["window"] = params.preset(changes["window"])
        base = self
        if path is not None and path != self.path:
            base = Filters(path, self.window, self.user, self.tenant, self.tags)
        changed = replace(base, **changes) if changes else base
        return (self.path if path is None else path) + views.query(changed.pairs())

    def sort_url(self, column: str) -> str:
        direction = "asc" if (self.sort_by == column and self.sort_dir == "desc") else "desc"
        return self.url(sort_by=column, sort_dir=direction, page=1)

    def hidden(self, *skip: str) -> list[tuple[str, str]]:
        """Hidden form inputs that carry the rest of the view through a form."""
        return [(k, v) for k, v in self.pairs() if k not in skip and v]

    def without_tag(self, key: str) -> str:
        return self.url(tags={k: v for k, v in self.tags.items() if k != key}, page=1, local=self.unpaged())

    def unpaged(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in self.local if k not in ("cursor", "direction"))

    def url_with(self, name: str, value: str) -> str:
        """This view from its first page with the page parameter ``name`` set to ``value`` (``""`` drops it)."""
        kept = tuple((k, v) for k, v in self.local if k != name)
        return self.url(local=kept + (((name, value),) if value else ()), page=1)

    def get(self, name: str) -> str:
        """A page parameter's value ("" when absent)."""
        return next((v for k, v in self.local if k == name), "")

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.local if k == name]

    @property
    def narrowed(self) -> bool:
        """Whether the filter bar narrows the view beyond the window."""
        return self.user is not None or self.tenant is not None or bool(self.tags)

    @property
    def query(self) -> dict[str, Any]:
        """The filter bar as Ledger arguments."""
        return {
            "start": self.window.start,
            "end": self.window.end,
            "user_id": self.user,
            "tenant_id": self.tenant,
            "tags": self.tags or None,
        }

    @property
    def api_query(self) -> list[tuple[str, str]]:
        out = [("from", self.window.start.isoformat() if self.window.start else "")]
        out.append(("to", self.window.end.isoformat() if self.window.end else ""))
        if self.user is not None:
            out.append(("user", self.user or UNATTRIBUTED_LABEL))
        if self.tenant is not None:
            out.append(("tenant", self.tenant or NO_TENANT_LABEL))
        out += [("search", self.search), ("sortBy", self.sort_by), ("sortDir", self.sort_dir)]
        return out + [("tag", f"{k}={v}") for k, v in self.tags.items()]


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(value or default)))
    except ValueError:
        return default


def filters_for(request: Request, principal: Principal, *local: str) -> Filters:
    """The view a URL asks for; ``local`` names the page's own further parameters to keep."""
    q = request.query_params
    sort_by = q.get("sortBy") if q.get("sortBy") in SORT_KEYS else "cost"
    kept = tuple((k, v) for k, v in q.multi_items() if k in local and v)
    return Filters(
        path=request.url.path,
        window=params.page_window(q),
        user=params.user(q.get("user")),
        tenant=principal.scope(params.tenant(q.get("tenant"))),
        tags=params.tags(q),
        search=params.text(q.get("search"), "search") or "",
        sort_by=sort_by or "cost",
        sort_dir="asc" if q.get("sortDir") == "asc" else "desc",
        page=_int(q.get("page"), 1, 1, 1_000_000),
        limit=_int(q.get("limit"), 50, 1, MAX_LIMIT),
        local=kept,
    )


def ledger(request: Request) -> Ledger:
    value: Ledger = request.app.state.ledger
    return value


_CHOICES_TTL = 60.0
T = TypeVar("T")


def cached(request: Request, name: str, f: Filters, compute: Callable[[], T], *extra: str) -> T:
    """A menu's choices, computed at most once a minute per window (they rarely change)."""
    cache: dict[tuple[str, ...], tuple[float, Any]] = request.app.state.choices
    key = (name, f.window.key, f.window.from_date, f.window.to_date, *extra)
    hit = cache.get(key)
    if hit is None or hit[0] < time.monotonic():
        if len(cache) > 512:
            cache.clear()
        hit = (time.monotonic() + _CHOICES_TTL, compute())
        cache[key] = hit
    value: T = hit[1]
    return value


@dataclass(frozen=True, slots=True)
class Choices:
    """What the filter bar's menus offer: tenants, users, and tag values by key."""

    tenants: list[str]
    users: list[str]
    tags: dict[str, list[str]]


def choices(request: Request, principal: Principal, f: Filters) -> Choices:
    led = ledger(request)
    start, end = f.window.start, f.window.end
    scope = principal.scope(None)
    if principal.role == "admin":
        tenants = cached(request, "tenants", f, lambda: led.tenant_ids(limit=200, start=start, end=end))
        if f.tenant is not None and f.tenant not in tenants:
            tenants = [*tenants, f.tenant]
    else:
        tenants = [principal.tenant or ""]
    users = cached(
        request, "users", f, lambda: led.user_ids(limit=200, start=start, end=end, tenant_id=scope), scope or ""
    )

    def tag_menu() -> dict[str, list[str]]:
        keys = led.tag_keys(start=start, end=end, tenant_id=scope, limit=20)
        return {
            k.key: [v.value for v in led.tag_values(k.key, start=start, end=end, tenant_id=scope, limit=50)]
            for k in keys
        }

    tags = cached(request, "tags", f, tag_menu, scope or "")
    return Choices(tenants=sorted(tenants, key=lambda t: (t == "", t)), users=users, tags=tags)


def render(request: Request, name: str, principal: Principal, status_code: int = 200, **context: Any) -> Response:
    context.update(principal=principal, no_auth=request.app.state.auth.no_auth)
    if "f" in context and "choices" not in context:
        context["choices"] = choices(request, principal, context["f"])
    return templates.TemplateResponse(request, name, context, status_code=status_code)
