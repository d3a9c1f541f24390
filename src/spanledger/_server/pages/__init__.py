"""The dashboard: one module per page (``overview``, ``users``, ``tenants``, ``segments``, ``calls``,
``billing``: a tenant's statement and the margins), what
they share (``base``: templates, the filter bar, menus) and signing in (``login``)."""

from __future__ import annotations

from fastapi import APIRouter

from . import billing, calls, login, overview, segments, tenants, users
from .base import templates

router = APIRouter(include_in_schema=False)
for _page in (overview, users, billing, tenants, segments, calls, login):  # billing first: /tenants/{id}/statement
    router.include_router(_page.router)

__all__ = ["router", "templates"]
