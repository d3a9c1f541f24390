"""Keyword argument → ``SPANLEDGER_*`` environment variable → documented default.

A bad environment value is logged and replaced by the default: telemetry configuration must never
stop the host application from starting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

_log = logging.getLogger(__name__)

DEFAULT_STORE = "chdb://.spanledger"
"""The embedded chDB directory used when neither ``store=`` nor ``SPANLEDGER_STORE`` is given."""

DEFAULT_DATABASE = "spanledger"


def env_str(name: str, value: str | None, default: str) -> str:
    """``value`` if given, else the environment variable ``name``, else ``default``."""
    if value is not None:
        return value
    env = os.environ.get(name)
    return env if env else default


def env_int(name: str, value: int | None, default: int, *, minimum: int = 0) -> int:
    """Like :func:`env_str` for a whole number; a bad environment value falls back to ``default``."""
    if value is not None:
        if value < minimum:
            raise ValueError(f"{name.removeprefix('SPANLEDGER_').lower()} must be >= {minimum}, got {value}")
        return value
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        parsed = int(raw)
    except ValueError:
        _log.warning("ignoring %s=%r: not a whole number; using %s", name, raw, default)
        return default
    if parsed < minimum:
        _log.warning("ignoring %s=%r: must be >= %s; using %s", name, raw, minimum, default)
        return default
    return parsed


def env_bool(name: str, value: bool | None, default: bool) -> bool:
    """Like :func:`env_str` for a flag (``1/true/yes/on`` or ``0/false/no/off``)."""
    if value is not None:
        return value
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    _log.warning("ignoring %s=%r: not a boolean; using %s", name, raw, default)
    return default


def env_list(name: str, value: Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """Like :func:`env_str` for a comma-separated list."""
    if value is not None:
        return tuple(value)
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return tuple(default)
    return tuple(item.strip() for item in raw.split(",") if item.strip())
