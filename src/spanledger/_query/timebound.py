"""Time bounds from what people type: ISO dates and times, or relative spans like ``7d``, ``24h``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from .._errors import ConfigError

_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

TimeBound = datetime | date | str | None


def parse_bound(value: TimeBound, *, now: datetime | None = None) -> datetime | None:
    """A UTC ``datetime`` for a bound: ``datetime`` (naive = UTC), ``date`` (its midnight UTC),
    ``"now"``, a relative span back from now (``"7d"``, ``"24h"``, ``"90m"``), or an ISO date or time."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = value.strip()
    now = now or datetime.now(UTC)
    if text.lower() == "now":
        return now
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"bad date {value!r}: use an ISO date (2026-11-01), date-time (2026-11-01T09:30) or a span like 7d, 24h"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
