"""Where the ledger lives: a DSN read, checked and said back without its password.

* ``chdb:///abs/dir`` or ``chdb://rel/dir`` — embedded ClickHouse (chDB) in this process. **One process
  at a time** may open a chDB directory, and one process can open only one chDB directory (or memory).
* ``chdb://memory`` — embedded and in memory, gone at exit.
* ``http(s)://user:pass@host:port/database`` — a ClickHouse server or cluster (``connect_timeout`` and
  ``send_receive_timeout`` in seconds as query parameters).

``?database=name`` picks the database for chDB (default ``spanledger``). Every problem with a DSN is a
:class:`~spanledger.ConfigError` that says what is wrong in one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from .._config import DEFAULT_DATABASE
from .._errors import ConfigError

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TIMEOUTS = ("connect_timeout", "send_receive_timeout")


def redact(dsn: str) -> str:
    """The DSN with its password replaced by ``***``."""
    return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", dsn)


def parse(dsn: str) -> tuple[str, str | None, str, dict[str, Any]]:
    """``(kind, chdb location or None, database, http kwargs)`` for a DSN; ``kind`` is chdb or http."""
    parsed = urlparse(dsn)
    scheme = parsed.scheme.lower()
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    if scheme == "chdb":
        raw = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        database = _database(query.get("database", DEFAULT_DATABASE), dsn)
        if raw in ("", "memory", ":memory:"):
            return "chdb", None, database, {}
        return "chdb", _location(unquote(raw), dsn), database, {}
    if scheme in ("http", "https", "clickhouse", "clickhouses"):
        if not parsed.hostname:
            raise ConfigError(f"bad store DSN {redact(dsn)!r}: no host")
        secure = scheme in ("https", "clickhouses")
        try:
            port = parsed.port or (8443 if secure else 8123)
        except ValueError:
            raise ConfigError(f"bad store DSN {redact(dsn)!r}: the port is not a number from 0 to 65535") from None
        database = _database(unquote(parsed.path.strip("/")) or query.get("database", DEFAULT_DATABASE), dsn)
        kwargs: dict[str, Any] = {
            "host": parsed.hostname,
            "port": port,
            "username": unquote(parsed.username or "default"),
            "password": unquote(parsed.password or ""),
            "secure": secure,
            "autogenerate_session_id": False,
        }
        for key in _TIMEOUTS:
            if key in query:
                kwargs[key] = _seconds(key, query[key], dsn)
        return "http", None, database, kwargs
    raise ConfigError(f"bad store DSN {redact(dsn)!r}: expected chdb:///dir, chdb://memory or http(s)://host:port/db")


def _database(name: str, dsn: str) -> str:
    if not _DB_NAME.match(name):
        raise ConfigError(f"bad database name {name!r} in {redact(dsn)!r}: letters, digits and _ only")
    return name


def _seconds(key: str, value: str, dsn: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86_400:
        raise ConfigError(f"bad store DSN {redact(dsn)!r}: {key} must be a number of seconds, got {value!r}")
    return seconds


def _location(raw: str, dsn: str) -> str:
    """An embedded store's directory: every ``..`` must step out of a directory that exists (``/nonexistent/../x``
    is a typo, not ``/x``)."""
    parts = Path(raw).parts
    for index, part in enumerate(parts):
        if part == ".." and index:
            before = Path(*parts[:index])
            if not before.is_dir():
                raise ConfigError(f"bad store path {raw!r} in {redact(dsn)!r}: {before} does not exist")
    return os.path.realpath(raw)


def make_location(location: str, *, create: bool) -> None:
    """Check an embedded store's directory, creating it when ``create``; every problem is one ConfigError."""
    path = Path(location)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"the store location {location} is a file, not a directory")
    if not create:
        if not (path / "metadata").is_dir():  # chDB keeps its catalogue there: no store was ever made here
            raise ConfigError(
                f"there is no spanledger store in {location}: point --store (or SPANLEDGER_STORE) at one, or "
                "create one with `spanledger demo` or an exporter"
            )
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the store directory {location}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to the store directory {location}: permission denied")
