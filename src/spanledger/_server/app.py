"""The ASGI app: OTLP/HTTP ingest, the JSON API and the dashboard on one port, and ``serve()``.

FastAPI gives the API its validation (every query parameter typed and bounded before it reaches the
ledger) and its OpenAPI document; uvicorn serves it. The process owns the store: an embedded chDB
directory can be opened by one process only, so this is how other processes read and write it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .._capture import otlp
from .._capture.exporter import CostExporter
from .._errors import ConfigError, StoreError
from .._query.ledger import Ledger
from .._store.dsn import redact as _redact
from .._store.store import Store
from . import api, billing_api, budgets_api, calls_api, customers_api, docs, pages, privacy_api, segments_api
from .auth import Authenticator, LoginRequired
from .settings import ServerSettings, load_settings

_log = logging.getLogger(__name__)

_CSP = b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_DOCS_CSP = _CSP + b"; style-src 'self' 'unsafe-inline'"
"""Swagger UI sets style attributes; scripts stay ours only."""


class _SecurityHeaders:
    """Adds a strict CSP (no inline script, no third-party origin) and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        csp = _DOCS_CSP if scope["path"].startswith(docs.DOCS_PATH) else _CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", csp),
                    *_SECURITY_HEADERS,
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _decode(data: bytes, encoding: str) -> otlp.Decoded:
    """The request's spans; any failure to decode the body is the body's fault: a 400, never a 500."""
    try:
        request, decoded = otlp.parse(data, encoding)
        return otlp.to_spans(request, decoded)
    except otlp.OtlpError:
        raise
    except RecursionError:
        raise otlp.OtlpError(400, "the body is nested too deeply to decode") from None
    except Exception as exc:
        _log.warning("an OTLP body could not be decoded", exc_info=True)
        raise otlp.OtlpError(400, f"the body could not be decoded: {type(exc).__name__}") from None


async def ingest_traces(request: Request) -> Response:
    """``POST /v1/traces``: OTLP/HTTP, protobuf or JSON, optionally gzip/deflate."""
    header = request.headers.get("content-type")
    encoding = otlp.JSON if (header or "").lower().startswith(otlp.JSON) else otlp.PROTOBUF
    settings: ServerSettings = request.app.state.settings
    try:
        if not request.app.state.auth.may_ingest(request):
            raise otlp.OtlpError(401, "missing or invalid ingest token (Authorization: Bearer <token>)")
        encoding = otlp.media_type(header)
        limit = settings.max_request_bytes
        body = await otlp.read_limited(request.stream(), limit, request.headers.get("content-length"))
        data = otlp.decompress(body, request.headers.get("content-encoding"), limit)
        decoded = await run_in_threadpool(_decode, data, encoding)
        rejected, refused = decoded.rejected, 0
        if decoded.spans:
            exporter: CostExporter = request.app.state.exporter
            # a client re-sends what it thinks was lost: look its spans up in the store before inserting them
            ingested = await run_in_threadpool(lambda: exporter.ingest(decoded.spans, redelivered=True))
            result = ingested.result
            if result.retryable:
                raise otlp.OtlpError(503, "spanledger could not store the spans right now; retry later")
            refused = result.rejected_total
            if refused:
                rejected += refused
                decoded.messages.extend(result.messages)
        if rejected:
            _log.info("OTLP request: %d spans accepted, %d rejected", len(decoded.spans) - refused, rejected)
        body_out = otlp.success_body(rejected, decoded.messages, encoding)
        return Response(body_out, media_type=encoding)
    except otlp.OtlpError as exc:
        headers = {"Retry-After": "5"} if exc.status == 503 else {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        _log.debug("OTLP request refused with %s: %s", exc.status, exc.message)
        return Response(otlp.error_body(exc.status, exc.message, encoding), exc.status, headers, encoding)


def healthz(request: Request) -> dict[str, Any]:
    """Liveness (always 200 while the process answers) and what an operator must know at a glance: whether
    the store takes inserts, what waits in the spool, and how many calls sit in the quarantine."""
    pipeline = request.app.state.exporter.pipeline
    quarantined = pipeline.quarantine.summary()["calls"]
    healthy = pipeline.flusher.healthy
    return {
        "status": "ok" if healthy and not quarantined else "degraded",
        "store": "ok" if healthy else "failing",
        "store_error": pipeline.flusher.last_error or None,
        "spool_bytes": pipeline.spool_bytes,
        "quarantined_calls": quarantined,
    }


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/v1/"))


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": [{"loc": ["query"], "msg": str(exc), "type": "value_error"}]}, 422)
        return _error(request, 422, str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        _log.error("store error while serving %s: %s", request.url.path, exc)
        return _error(request, 503, "the ledger store is unavailable; try again shortly")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": jsonable_errors(exc)}, status_code=422)
        return _error(request, 422, "; ".join(str(e.get("msg", "")) for e in exc.errors()))


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in exc.errors()
    ]


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    principal = request.app.state.auth.identify(request)
    return pages.templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "principal": principal, "no_auth": request.app.state.auth.no_auth},
        status_code=status,
        headers=headers,
    )


def create_app(settings: ServerSettings, *, store: Store | None = None) -> FastAPI:
    """The app, with the store opened (schema created) and an exporter ready for ingest.

    Args:
        settings: What to serve and who may see it.
        store: An already open store to serve (default: open ``settings.store``).
    """
    store = store if store is not None else Store(settings.store)
    exporter = CostExporter(store.dsn, price_file=settings.price_file, capture_content=settings.capture_content)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        budgets_api.start(app)
        yield
        await run_in_threadpool(budgets_api.stop, app)
        await run_in_threadpool(exporter.shutdown)

    app = FastAPI(
        title="spanledger",
        version=__version__,
        description="Exact USD cost of LLM calls per end user and tenant. Money is a decimal string.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # the stock docs pages load scripts from a CDN: ours is docs.py
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.exporter = exporter
    app.state.ledger = Ledger(store)
    app.state.auth = Authenticator(settings.tokens, no_auth=settings.no_auth)
    app.state.choices = {}
    app.add_middleware(_SecurityHeaders)
    _install_handlers(app)
    app.add_api_route("/v1/traces", ingest_traces, methods=["POST"], include_in_schema=False)
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.include_router(customers_api.router)  # first: /tenants/{id}/profile, which /tenants/{id:path} would take
    app.include_router(api.router)
    app.include_router(calls_api.router)
    app.include_router(segments_api.router)
    docs.mount(app)
    app.include_router(privacy_api.router)
    app.include_router(budgets_api.router)
    budgets_api.attach(app, store)
    app.include_router(pages.router)
    app.include_router(billing_api.router)  # billing: statements, margins, markups, revenue, reprice
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    return app


def serve(
    *,
    store: str | Store | None,
    host: str,
    port: int,
    no_auth: bool,
    token_file: str | None,
    max_request_bytes: int | None = None,
    price_file: str | None = None,
    capture_content: bool | None = None,
    log_level: str = "info",
) -> int:
    """Run ``spanledger serve`` until interrupted; returns the process exit code.

    Raises:
        ConfigError: Bad settings (no tokens, ``--no-auth`` off loopback, a bad token file …).
        StoreError: The store cannot be opened (for chDB: another process holds it).
    """
    import uvicorn

    from .discovery import DiscoverableServer

    settings = load_settings(
        store=store.dsn if isinstance(store, Store) else store,
        host=host,
        port=port,
        no_auth=no_auth,
        token_file=token_file,
        max_request_bytes=max_request_bytes,
        price_file=price_file,
        capture_content=capture_content,
    )
    app = create_app(settings, store=store if isinstance(store, Store) else None)
    t = settings.tokens
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    auth = (
        "OFF (--no-auth, loopback only)"
        if settings.no_auth
        else f"{len(t.admin)} admin, {sum(map(len, t.tenants.values()))} tenant, {len(t.ingest)} ingest token(s)"
    )
    print(
        f"spanledger serve: store {_redact(app.state.store.dsn)}\n  dashboard   {where}/\n"
        f"  OTLP/HTTP   {where}/v1/traces\n  API         {where}/api/v1/docs\n  auth        {auth}",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False, proxy_headers=False)
    try:  # an embedded store's directory gets a discovery file: the CLI reads through this server
        DiscoverableServer(config, store=app.state.store).run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind the port
        return int(exc.code or 1)
    return 0
