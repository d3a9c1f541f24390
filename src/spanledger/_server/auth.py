"""Who is asking: admin, one tenant, or the ingest role — from a bearer token or a session cookie.

Tokens are never kept or compared in clear after start-up: each is replaced by its HMAC under a key
drawn at start, and a presented token is looked up by its HMAC. The dashboard's session cookie holds
that HMAC, not the token, and stops working when the server restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .settings import Tokens

SESSION_COOKIE = "spanledger_session"

Role = Literal["admin", "tenant", "ingest"]


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    tenant: str | None = None
    """The only tenant a tenant-scoped token may read."""

    @property
    def label(self) -> str:
        return f"tenant {self.tenant}" if self.role == "tenant" else self.role

    def scope(self, requested: str | None) -> str | None:
        """The tenant every query must be limited to (``None``: any, for an admin; ``""``: the calls without a
        tenant); asking for another tenant is refused (403)."""
        if self.role == "admin":
            return requested  # "" is the calls without a tenant
        if requested is not None and requested != self.tenant:
            raise HTTPException(status_code=403, detail=f"this token can only read tenant {self.tenant!r}")
        return self.tenant


ADMIN = Principal("admin")


class LoginRequired(Exception):
    """A dashboard page was asked for without a valid session: the app redirects to ``/login``."""


class Authenticator:
    """Maps a presented token (or session cookie) to its :class:`Principal`."""

    def __init__(self, tokens: Tokens, *, no_auth: bool) -> None:
        self.no_auth = no_auth
        self._key = secrets.token_bytes(32)
        self._table: dict[bytes, Principal] = {}
        for token in tokens.admin:
            self._table[self._digest(token)] = ADMIN
        for token in tokens.ingest:
            self._table[self._digest(token)] = Principal("ingest")
        for tenant, values in tokens.tenants.items():
            for token in values:
                self._table[self._digest(token)] = Principal("tenant", tenant)

    def _digest(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def for_token(self, token: str) -> Principal | None:
        return self._table.get(self._digest(token)) if token else None

    def session_value(self, token: str) -> str:
        """The cookie value for a token the user typed into the login form."""
        return self._digest(token).hex()

    def for_session(self, value: str) -> Principal | None:
        try:
            digest = bytes.fromhex(value)
        except ValueError:
            return None
        return self._table.get(digest)

    def identify(self, request: Request) -> Principal | None:
        """The principal behind the request's bearer token or, failing that, its session cookie."""
        if self.no_auth:
            return ADMIN
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return self.for_token(credentials.strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        return self.for_session(cookie) if cookie else None

    def may_ingest(self, request: Request) -> bool:
        principal = self.identify(request)
        return principal is not None and (self.no_auth or principal.role == "ingest")


def _authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


_bearer = HTTPBearer(auto_error=False, description="An admin or tenant token.")


def api_reader(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Principal:
    """FastAPI dependency: a principal allowed to read, else 401 (no or bad token) or 403 (ingest token).

    The session cookie of a signed-in dashboard user works too (the CSV export link relies on it)."""
    principal = _authenticator(request).identify(request)
    if principal is None:
        raise HTTPException(status_code=401, detail="missing or invalid token", headers={"WWW-Authenticate": "Bearer"})
    if principal.role == "ingest":
        raise HTTPException(status_code=403, detail="the ingest token may only send spans to /v1/traces")
    return principal


def page_reader(request: Request) -> Principal:
    """Like :func:`api_reader` for dashboard pages, which send the browser to the login page instead."""
    principal = _authenticator(request).identify(request)
    if principal is None or principal.role == "ingest":
        raise LoginRequired()
    return principal
