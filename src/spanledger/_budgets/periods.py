"""A budget's periods: the day, week (from Monday), month or year containing an instant, in an IANA time zone.

A Tokyo customer's month starts at midnight in Tokyo (15:00 UTC the day before); a period ends exactly where
the next starts, so every instant is in exactly one period. Windows are ``[start, end)`` in UTC.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._errors import ConfigError

PERIODS: tuple[str, ...] = ("daily", "weekly", "monthly", "yearly", "custom", "lifetime")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime(2200, 1, 1, tzinfo=UTC)
"""A lifetime budget counts every call stored in ``[EPOCH, FOREVER)``."""


@dataclass(frozen=True, slots=True)
class Window:
    """One period of a budget: ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def endless(self) -> bool:
        """A lifetime: no end a rate could be projected to."""
        return self.start == EPOCH and self.end == FOREVER

    def projected(self, spent: Decimal, now: datetime) -> Decimal | None:
        """Spend at the end of the period if it goes on at the rate so far (``None`` for a lifetime, or before
        the period starts). Exact: microseconds, no float."""
        if self.endless or now <= self.start:
            return None
        elapsed = _micros(min(now, self.end) - self.start)
        whole = _micros(self.end - self.start)
        return (spent * whole / elapsed).quantize(Decimal("1e-12"))


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@functools.lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows (``UTC``, ``Asia/Tokyo``), else a ConfigError."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ConfigError(f"bad time zone {name!r}: use an IANA name such as UTC or Asia/Tokyo")
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"unknown time zone {name!r}: use an IANA name such as UTC or Asia/Tokyo") from None
    return name


def window(
    period: str, at: datetime, tz: str = "UTC", starts_at: datetime | None = None, ends_at: datetime | None = None
) -> Window | None:
    """The period of kind ``period`` that contains ``at`` (``None``: ``at`` is outside a custom period)."""
    if period == "lifetime":
        return Window(EPOCH, FOREVER)
    if period == "custom":
        if starts_at is None or ends_at is None or not starts_at <= at < ends_at:
            return None
        return Window(starts_at, ends_at)
    where = zone(tz)
    day = at.astimezone(where).date()
    if period == "daily":
        first, following = day, day + timedelta(days=1)
    elif period == "weekly":
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
    elif period == "monthly":
        first = day.replace(day=1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    elif period == "yearly":
        first, following = date(day.year, 1, 1), date(day.year + 1, 1, 1)
    else:
        raise ConfigError(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")
    return Window(_midnight(first, where), _midnight(following, where))


def _midnight(day: date, where: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``where``, in UTC (a midnight skipped by a clock change starts the day
    at the instant the clock jumped to)."""
    local = datetime.combine(day, time(), tzinfo=where)
    utc = local.astimezone(UTC)
    if utc.astimezone(where).date() != day:  # midnight did not exist that day: the day starts an hour later
        utc = datetime.combine(day, time(1), tzinfo=where).astimezone(UTC)
    return utc
