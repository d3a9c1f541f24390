"""Billing periods: ``2026-11`` (a calendar month, UTC) or ``2026-11-05`` (a day), as a window ``[start, end)``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from .._errors import ConfigError
from .._query.timebound import TimeBound, parse_bound

_MONTH = re.compile(r"^\s*(\d{4})-(\d{2})\s*$")


def month_start(value: date) -> datetime:
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def next_month(value: datetime) -> datetime:
    return datetime(value.year + value.month // 12, value.month % 12 + 1, 1, tzinfo=UTC)


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` → that month; ``YYYY-MM-DD`` → that day (UTC, end exclusive)."""
    match = _MONTH.match(period)
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12 or year < 1970:
            raise ConfigError(f"bad period {period!r}: use YYYY-MM (a month) or YYYY-MM-DD (a day)")
        start = datetime(year, month, 1, tzinfo=UTC)
        return start, next_month(start)
    try:
        day = date.fromisoformat(period.strip())
    except ValueError:
        raise ConfigError(f"bad period {period!r}: use YYYY-MM (a month) or YYYY-MM-DD (a day)") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def window(
    *, period: str | None = None, start: TimeBound = None, end: TimeBound = None, default_month: bool = False
) -> tuple[datetime | None, datetime | None]:
    """The window asked for: a period, or ``start`` / ``end``; with neither and ``default_month``, this month."""
    if period:
        if start is not None or end is not None:
            raise ConfigError("give a period or --from/--to, not both")
        return period_bounds(period)
    now = datetime.now(UTC)
    lo, hi = parse_bound(start, now=now), parse_bound(end, now=now)
    if lo is None and hi is None and default_month:
        lo = month_start(now.date())
        hi = next_month(lo)
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError("the window ends before it starts")
    return lo, hi
