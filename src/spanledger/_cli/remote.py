"""Reading the ledger through a running ``spanledger serve``: the same questions as :class:`~spanledger.Ledger`,
asked of its JSON API (``/api/v1``) and answered with the same rows.

An embedded store can be opened by one process at a time; while ``spanledger serve`` holds it, the command
line asks the server instead (found through the discovery file, :mod:`spanledger._store.served`, or given as
``--server URL``). Each method takes :class:`~spanledger.Ledger`'s arguments, sends them as the API's query
parameters, and turns the records back into rows (:mod:`spanledger._present.parse`): the commands render
what they get exactly as they render the store's answer. One more question is one more method.

It lives with the command line, its only user: the standard library's ``urllib`` keeps it cheap to import,
and its errors are the command line's one-line errors. Money never passes through a float: the API sends
it as decimal strings.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any, Literal
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import Request, urlopen

from .._errors import ConfigError, SpanledgerError, StoreUnavailableError
from .._model.rows import (
    NO_TENANT_LABEL,
    UNATTRIBUTED_LABEL,
    CallPage,
    DailyRow,
    Overview,
    Page,
    TenantRow,
    UserDetail,
    UserRow,
)
from .._present import parse
from .._present.numbers import iso
from .._query.timebound import TimeBound, parse_bound

MOST_CALLS = 1000
"""The most recent calls one user's detail may list (``spanledger._query.sql.MAX_LIMIT``, as the API bounds it)."""
TIMEOUT_S = 120.0


def server_url(text: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; anything else is a :class:`ConfigError`."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"bad --server {text!r}: expected http(s)://host:port, e.g. http://127.0.0.1:4318")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"bad --server {text!r}: the port is not a number from 0 to 65535") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class RemoteLedger:
    """:class:`~spanledger.Ledger`'s questions, answered by ``spanledger serve`` at ``url``.

    Args:
        url: The server (``http://127.0.0.1:4318``).
        token: An admin or tenant token (a tenant token sees its own tenant only, as in the API).
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = TIMEOUT_S) -> None:
        self.url = server_url(url)
        self._token = token
        self._timeout = timeout

    def users(
        self,
        *,
        sort_by: str = "cost",
        sort_dir: Literal["asc", "desc"] = "desc",
        page: int = 1,
        limit: int = 50,
        search: str | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        tenant_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        include_inactive: bool = False,
    ) -> Page[UserRow]:
        ranking = {"sortBy": sort_by, "sortDir": sort_dir, "page": page, "limit": limit, "search": search}
        inactive = "true" if include_inactive else None
        window, tenant = _window(start, end), _tenant(tenant_id)
        answer = self.ask("/users", **ranking, **window, tenant=tenant, tag=_tags(tags), includeInactive=inactive)
        return parse.page(answer, UserRow)

    def tenants(
        self,
        *,
        sort_by: str = "cost",
        sort_dir: Literal["asc", "desc"] = "desc",
        page: int = 1,
        limit: int = 50,
        search: str | None = None,
        start: TimeBound = None,
        end: TimeBound = None,
        tags: Mapping[str, str] | None = None,
    ) -> Page[TenantRow]:
        ranking = {"sortBy": sort_by, "sortDir": sort_dir, "page": page, "limit": limit, "search": search}
        return parse.page(self.ask("/tenants", **ranking, **_window(start, end), tag=_tags(tags)), TenantRow)

    def user(
        self,
        user_id: str,
        *,
        start: TimeBound = None,
        end: TimeBound = None,
        tenant_id: str | None = None,
        calls: int = 50,
    ) -> UserDetail:
        path = "/users/" + quote(user_id or UNATTRIBUTED_LABEL, safe="")
        answer = self.ask(path, **_window(start, end), tenant=_tenant(tenant_id), calls=max(0, min(calls, MOST_CALLS)))
        return parse.user_detail(answer)

    def daily(
        self,
        *,
        start: TimeBound = None,
        end: TimeBound = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        per: Literal["user", "tenant"] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[DailyRow]:
        user = (user_id or UNATTRIBUTED_LABEL) if user_id is not None else None
        window, tenant = _window(start, end), _tenant(tenant_id)
        return parse.daily(self.ask("/daily", **window, user=user, tenant=tenant, per=per, tag=_tags(tags)))

    def overview(
        self,
        *,
        start: TimeBound = None,
        end: TimeBound = None,
        tenant_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        top: int = 10,
    ) -> Overview:
        window, tenant = _window(start, end), _tenant(tenant_id)
        return parse.overview(self.ask("/overview", **window, tenant=tenant, top=top, tag=_tags(tags)))

    def calls(
        self,
        *,
        start: TimeBound = None,
        end: TimeBound = None,
        cursor: str | None = None,
        direction: Literal["older", "newer"] = "older",
        limit: int = 50,
        **filters: Any,
    ) -> CallPage:
        paging = {"cursor": cursor, "direction": direction, "limit": limit}
        return parse.calls(self.ask("/calls", **_window(start, end), **paging, **_call_filters(filters)))

    def count_calls(self, *, start: TimeBound = None, end: TimeBound = None, **filters: Any) -> int:
        answer = self.ask("/calls", **_window(start, end), limit=1, count="true", **_call_filters(filters))
        return int(answer["total"])

    def ask(self, path: str, **params: Any) -> Any:
        """``GET /api/v1<path>`` with the parameters that are not ``None`` (a list repeats its name); the JSON
        answer, or the error it means as one of ours."""
        query = urlencode([(k, v) for k, v in params.items() if v is not None for v in _each(v)])
        return self.get(f"/api/v1{path}" + (f"?{query}" if query else ""))

    def get(self, path: str) -> Any:
        request = Request(f"{self.url}{path}", headers={"Accept": "application/json"})
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urlopen(request, timeout=self._timeout) as response:
                body = response.read()
        except HTTPError as exc:
            raise self._refused(exc) from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            cause = "timed out" if isinstance(reason, TimeoutError | socket.timeout) else _cause(reason)
            raise StoreUnavailableError(f"cannot reach spanledger serve at {self.url}: {cause}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise SpanledgerError(f"{self.url}{path} did not answer JSON: is it spanledger serve?") from None

    def _refused(self, exc: HTTPError) -> SpanledgerError:
        detail = _detail(exc)
        where = f"spanledger serve at {self.url}"
        if exc.code == 401:
            return ConfigError(
                f"{where} wants a token: give an admin or tenant token in SPANLEDGER_TOKEN (or --token)"
                if not self._token
                else f"{where} refused the token: {detail}"
            )
        if exc.code in (403, 422):
            return ConfigError(f"{where}: {detail}")
        if exc.code == 404 and detail.startswith(("no user", "no tenant", "no such")):
            return ConfigError(detail)  # the question's subject is unknown (with the API's "did you mean")
        if exc.code == 404:
            return SpanledgerError(f"{where} has no {exc.url.split('?')[0]}: is it spanledger serve, and as new?")
        if exc.code >= 500:
            return StoreUnavailableError(f"{where} answered {exc.code}: {detail}")
        return SpanledgerError(f"{where} answered {exc.code}: {detail}")


def _window(start: TimeBound, end: TimeBound) -> dict[str, str | None]:
    """The window as absolute times: ``7d`` means the same instant to the server as to us."""
    return {"from": iso(parse_bound(start)), "to": iso(parse_bound(end))}


def _tenant(tenant_id: str | None) -> str | None:
    return NO_TENANT_LABEL if tenant_id == "" else tenant_id


def _call_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The explorer's filters (:func:`spanledger._query.calls.calls`'s keywords) as ``/calls``'s parameters."""
    user, trace = filters.get("user_id"), filters.get("trace_id")
    return {
        "tenant": _tenant(filters.get("tenant_id")),
        "user": (user or UNATTRIBUTED_LABEL) if user is not None else None,
        "provider": filters.get("provider"),
        "model": filters.get("model"),
        "status": filters.get("status"),
        "flag": list(filters.get("flags") or []),
        "tag": _tags(filters.get("tags")),
        "min_cost": filters.get("min_cost"),
        "max_cost": filters.get("max_cost"),
        "trace": f"{trace:032x}" if trace is not None else None,
    }


def _tags(tags: Mapping[str, str] | None) -> list[str]:
    return [f"{key}={value}" for key, value in (tags or {}).items()]


def _each(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _cause(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is it running?)"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror})"
    text = getattr(reason, "strerror", None) or str(reason)
    return " ".join(str(text).split())[:200]


def _detail(exc: HTTPError) -> str:
    """What the API said: its ``detail`` (a text, or FastAPI's list of validation errors)."""
    try:
        detail = json.loads(exc.read()).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, list):
        parts = []
        for error in detail:
            loc = [str(p) for p in error.get("loc", []) if p not in ("query", "path")]
            parts.append(f"{'.'.join(loc)}: {error.get('msg', '')}" if loc else str(error.get("msg", "")))
        detail = "; ".join(parts)
    return " ".join(str(detail or exc.reason or exc.code).split())[:500]
