"""Signing in with a token (a session cookie, never the token, is kept by the browser) and out."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..auth import SESSION_COOKIE, Authenticator
from .base import templates

router = APIRouter(include_in_schema=False)


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
