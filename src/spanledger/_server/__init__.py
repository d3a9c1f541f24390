"""``spanledger serve``: OTLP/HTTP ingest, a JSON API and a dashboard in one process.

Needs the ``serve`` extra (``pip install 'spanledger[serve]'``): FastAPI, uvicorn, Jinja2 and the
OpenTelemetry protocol definitions.
"""

from __future__ import annotations

from .app import create_app, serve
from .settings import DEFAULT_HOST, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_PORT, ServerSettings, Tokens, load_settings

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_PORT",
    "ServerSettings",
    "Tokens",
    "create_app",
    "load_settings",
    "serve",
]
