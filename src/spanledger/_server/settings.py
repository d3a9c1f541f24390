"""What ``spanledger serve`` is configured with: where it listens, the store, and its tokens.

Tokens come from the environment or from a TOML file, never from the command line (which other users
of the machine can read) and never into a log:

* ``SPANLEDGER_ADMIN_TOKEN`` — reads everything;
* ``SPANLEDGER_TENANT_TOKENS`` — ``tenant=token,tenant2=token2``: each reads only its own tenant;
* ``SPANLEDGER_INGEST_TOKEN`` — may only send spans to ``/v1/traces``;
* ``SPANLEDGER_TOKEN_FILE`` (or ``--token-file``) — the same in TOML::

      admin = "…"                 # or a list, to rotate tokens
      ingest = ["…", "…"]
      [tenants]
      acme = "…"
"""

from __future__ import annotations

import ipaddress
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import env_int
from .._errors import ConfigError

_log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4318
"""The standard OTLP/HTTP port, so SDKs and Collectors export here with stock settings."""
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024
"""The OTLP specification's recommended limit, applied before and after decompression."""
MIN_TOKEN_CHARS = 16

ENV_ADMIN_TOKEN = "SPANLEDGER_ADMIN_TOKEN"
ENV_TENANT_TOKENS = "SPANLEDGER_TENANT_TOKENS"
ENV_INGEST_TOKEN = "SPANLEDGER_INGEST_TOKEN"
ENV_TOKEN_FILE = "SPANLEDGER_TOKEN_FILE"
ENV_MAX_REQUEST_BYTES = "SPANLEDGER_MAX_REQUEST_BYTES"
ENV_STORE = "SPANLEDGER_STORE"
SERVER_ENV = (ENV_ADMIN_TOKEN, ENV_TENANT_TOKENS, ENV_INGEST_TOKEN, ENV_TOKEN_FILE, ENV_MAX_REQUEST_BYTES, ENV_STORE)
"""Every environment variable the server itself reads (the exporter's ``SPANLEDGER_*`` apply too)."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """The accepted tokens by role. ``repr`` never shows them."""

    admin: tuple[str, ...] = field(default=(), repr=False)
    ingest: tuple[str, ...] = field(default=(), repr=False)
    tenants: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    @property
    def readers(self) -> int:
        return len(self.admin) + sum(len(t) for t in self.tenants.values())


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything the app needs; build it with :func:`load_settings` or directly in tests."""

    store: str | None = None
    """DSN of the ledger (``SPANLEDGER_STORE``, then the embedded default)."""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    tokens: Tokens = field(default_factory=Tokens)
    no_auth: bool = False
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    price_file: str | None = None
    capture_content: bool | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _as_tuple(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise ConfigError(f"{where}: expected a token string or a list of token strings")
    return tuple(t.strip() for t in items if t.strip())


def _read_file(path: str) -> Tokens:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the token file {path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"admin", "ingest", "tenants"}
    if unknown:
        raise ConfigError(f"the token file {path} has unknown keys: {', '.join(sorted(unknown))}")
    tenants = data.get("tenants", {})
    if not isinstance(tenants, dict):
        raise ConfigError(f"the token file {path}: [tenants] must be a table of tenant = token")
    return Tokens(
        admin=_as_tuple(data.get("admin", []), f"{path}: admin"),
        ingest=_as_tuple(data.get("ingest", []), f"{path}: ingest"),
        tenants={str(k): _as_tuple(v, f"{path}: tenants.{k}") for k, v in tenants.items()},
    )


def _read_env() -> Tokens:
    tenants: dict[str, tuple[str, ...]] = {}
    for item in os.environ.get(ENV_TENANT_TOKENS, "").split(","):
        if not item.strip():
            continue
        tenant, sep, token = item.partition("=")
        if not sep or not tenant.strip() or not token.strip():
            raise ConfigError(f"{ENV_TENANT_TOKENS}: expected tenant=token pairs separated by commas")
        tenants[tenant.strip()] = (*tenants.get(tenant.strip(), ()), token.strip())
    admin = os.environ.get(ENV_ADMIN_TOKEN, "").strip()
    ingest = os.environ.get(ENV_INGEST_TOKEN, "").strip()
    return Tokens(admin=(admin,) if admin else (), ingest=(ingest,) if ingest else (), tenants=tenants)


def _merge(a: Tokens, b: Tokens) -> Tokens:
    tenants = dict(a.tenants)
    for tenant, tokens in b.tenants.items():
        tenants[tenant] = (*tenants.get(tenant, ()), *tokens)
    return Tokens(admin=a.admin + b.admin, ingest=a.ingest + b.ingest, tenants=tenants)


def check_tokens(tokens: Tokens) -> None:
    """Refuse short tokens and a token given two roles."""
    roles: dict[str, str] = {}
    pairs = [("admin", t) for t in tokens.admin] + [("ingest", t) for t in tokens.ingest]
    pairs += [(f"tenant {name!r}", t) for name, ts in tokens.tenants.items() for t in ts]
    for role, token in pairs:
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"the {role} token is too short: use at least {MIN_TOKEN_CHARS} random characters")
        if roles.setdefault(token, role) != role:
            raise ConfigError(f"the same token is configured for {roles[token]} and {role}: give each role its own")


def load_tokens(token_file: str | None = None) -> Tokens:
    """Tokens from the environment and the token file (``token_file``, else ``SPANLEDGER_TOKEN_FILE``)."""
    tokens = _read_env()
    path = token_file or os.environ.get(ENV_TOKEN_FILE) or None
    if path:
        tokens = _merge(tokens, _read_file(path))
    check_tokens(tokens)
    return tokens


def load_settings(
    *,
    store: str | None,
    host: str,
    port: int,
    no_auth: bool,
    token_file: str | None,
    max_request_bytes: int | None = None,
    price_file: str | None = None,
    capture_content: bool | None = None,
) -> ServerSettings:
    """Validated settings: ``--no-auth`` only on loopback, and at least one reader token otherwise."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"bad port {port}: between 0 and 65535")
    if no_auth and not is_loopback(host):
        raise ConfigError(f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1), not {host}")
    tokens = Tokens() if no_auth else load_tokens(token_file)
    if not no_auth and tokens.readers == 0:
        raise ConfigError(
            f"no tokens configured: set {ENV_ADMIN_TOKEN} (or {ENV_TENANT_TOKENS}, or a token file), "
            "or run with --no-auth on 127.0.0.1"
        )
    if not no_auth and not tokens.ingest:
        _log.warning("no ingest token configured (%s): POST /v1/traces will refuse every request", ENV_INGEST_TOKEN)
    limit = env_int(ENV_MAX_REQUEST_BYTES, max_request_bytes, DEFAULT_MAX_REQUEST_BYTES, minimum=1024)
    return ServerSettings(
        store=store,
        host=host,
        port=port,
        tokens=tokens,
        no_auth=no_auth,
        max_request_bytes=limit,
        price_file=price_file,
        capture_content=capture_content,
    )
