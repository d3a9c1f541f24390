"""Query parameters shared by the JSON API and the dashboard: time bounds, windows and tag filters.

Everything here only validates and converts; values reach ClickHouse as bound parameters through
:class:`~spanledger.Ledger`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from fastapi.exceptions import RequestValidationError
from starlette.datastructures import QueryParams

from .._errors import ConfigError
from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL
from .._privacy.pseudonym import lookup_id
from .._query.timebound import parse_bound

MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
MAX_TEXT = 256
"""Longest user id, tenant id, tag or search string accepted (ids are stored cut to 256 characters)."""
MAX_TAGS = 16

WINDOWS: dict[str, tuple[str, timedelta | None]] = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "28d": ("Last 28 days", timedelta(days=28)),
    "90d": ("Last 90 days", timedelta(days=90)),
    "all": ("All time", None),
}
DEFAULT_WINDOW = "28d"


def invalid(message: str, *loc: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own validation errors (the OpenAPI document promises that shape)."""
    return RequestValidationError([{"loc": ["query", *loc], "msg": message, "type": "value_error"}])


def text(value: str | None, name: str) -> str | None:
    """A free-text parameter: ``None`` when empty; refused when too long or carrying control characters."""
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT:
        raise invalid(f"{name} is longer than {MAX_TEXT} characters", name)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise invalid(f"{name} contains control characters", name)
    return value


def tenant(value: str | None) -> str | None:
    """A tenant parameter: ``None`` when absent or empty, ``""`` for "(no tenant)" (the calls without one)."""
    checked = text(value, "tenant")
    return "" if checked == NO_TENANT_LABEL else checked


def user(value: str | None, name: str = "user") -> str | None:
    """A user parameter: ``None`` when absent or empty, ``""`` for "(unattributed)" (the calls without one); a
    raw id is hashed in a pseudonymized ledger (``SPANLEDGER_ID_KEY``), as in a path."""
    checked = text(value, name)
    if checked is None:
        return None
    return "" if checked == UNATTRIBUTED_LABEL else lookup_id(checked)


def bound(value: str | None, name: str, *, now: datetime | None = None) -> datetime | None:
    """A time bound (ISO date or time, or ``7d`` / ``24h`` back from now), between 1970 and 2200."""
    if value is None or not value.strip():
        return None
    try:
        parsed = parse_bound(value, now=now)
    except (ConfigError, OverflowError) as exc:
        raise invalid(f"{name}: {exc}", name) from None
    if parsed is None or not MIN_TIME <= parsed < MAX_TIME:
        raise invalid(f"{name} must lie between 1970-01-01 and 2200-01-01", name)
    return parsed


def window_bounds(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    now = datetime.now(UTC)
    lo, hi = bound(start, "from", now=now), bound(end, "to", now=now)
    if lo is not None and hi is not None and hi < lo:
        raise invalid("the window ends before it starts (to < from)", "to")
    return lo, hi


def tags(params: QueryParams | Mapping[str, str]) -> dict[str, str]:
    """Tag filters from ``tag.<key>=<value>`` parameters and from ``tag=<key>=<value>`` ones."""
    items = params.multi_items() if isinstance(params, QueryParams) else list(params.items())
    out: dict[str, str] = {}
    for key, value in items:
        if key.startswith("tag.") and len(key) > 4:
            name, wanted = key[4:], value
        elif key == "tag" and value.strip():
            name, sep, wanted = value.partition("=")
            if not sep or not name.strip():
                raise invalid(f"tag filter {value[:40]!r}: use key=value", "tag")
            name, wanted = name.strip(), wanted.strip()
        else:
            continue
        text(name, "tag key")
        text(wanted or "x", "tag value")
        out[name] = wanted
    if len(out) > MAX_TAGS:
        raise invalid(f"at most {MAX_TAGS} tag filters", "tag")
    return out


@dataclass(frozen=True, slots=True)
class WindowChoice:
    """The dashboard's time window: a preset (``24h`` … ``all``) or ``custom`` dates, ``to`` inclusive."""

    key: str
    start: datetime | None
    end: datetime | None
    label: str
    from_date: str = ""
    to_date: str = ""
    error: str = ""


def page_window(params: QueryParams) -> WindowChoice:
    """The window a dashboard URL asks for; a bad custom range falls back to the default, with a message."""
    key = params.get("window") or DEFAULT_WINDOW
    if key == "custom" or (key not in WINDOWS and (params.get("from") or params.get("to"))):
        first, last = params.get("from", ""), params.get("to", "")
        try:
            start = _day(first) if first else None
            end_day = _day(last) if last else None
            end = end_day + timedelta(days=1) if end_day else None
            if start and end and end <= start:
                raise ValueError("the end date is before the start date")
        except ValueError as exc:
            return replace(preset(DEFAULT_WINDOW), error=f"Custom range ignored: {exc}")
        label = f"{first or 'beginning'} → {last or 'now'}"
        return WindowChoice("custom", start, end, label, first, last)
    return preset(key if key in WINDOWS else DEFAULT_WINDOW)


def preset(key: str) -> WindowChoice:
    label, delta = WINDOWS[key]
    start = datetime.now(UTC) - delta if delta else None
    return WindowChoice(key, start, None, label)


def _day(value: str) -> datetime:
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value[:20]!r} is not a date (YYYY-MM-DD)") from None
    result = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    if not MIN_TIME <= result < MAX_TIME - timedelta(days=1):
        raise ValueError(f"{value[:20]!r} is out of range")
    return result
