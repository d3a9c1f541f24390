"""How a window ``[start, end)`` is cut into tiers, so an answer is exact to the microsecond.

The whole UTC days inside it are read from the daily rollups, the whole hours around them from the hourly
rollups and the partial hours at both edges from the raw ``llm_calls`` table; :class:`~.sql.Query` combines
the parts with ``UNION ALL`` and groups them again, so the answer is what a ``GROUP BY`` over the raw table
would give. The daily tier carries no tags, so a tag filter reads whole hours from the hourly rollups.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from .._errors import ConfigError
from .timebound import TimeBound, parse_bound

_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TierPlan:
    """``[start, end)`` and its tiers: raw ``[start, hours) ∪ [hours_end, end)``, hourly the rest of
    ``[hours, hours_end)``, daily ``[days, days_end)``."""

    start: datetime
    end: datetime
    hours: datetime
    hours_end: datetime
    days: datetime
    days_end: datetime

    def by_day(self) -> TierPlan:
        """The same window without the hourly tier: whole days from the daily rollups, the partial days at
        the edges from the raw table. For a few users' rows (a page's fill) this is the cheaper cut: the
        raw table's key (day, tenant, user) finds their rows of an edge day directly, while an hour of the
        hourly rollups has every user's rows in each of its granules (10M calls, 50 users: the hourly tier
        alone was ~130 ms of a ~190 ms fill)."""
        if self.days >= self.days_end:  # no whole day inside: all of it from the raw table
            return TierPlan(self.start, self.end, self.end, self.end, self.end, self.end)
        return replace(self, hours=self.days, hours_end=self.days_end)


def plan(start: TimeBound, end: TimeBound, *, rollups: bool = True) -> TierPlan:
    """The tiers of ``[start, end)``; ``rollups=False`` reads it all from the raw table, which is faster
    for one user (the raw table's key leads with day, tenant, user; the rollups' with hour)."""
    s = parse_bound(start) or _FAR_PAST
    e = parse_bound(end) or _FAR_FUTURE
    if e < s:
        raise ConfigError(f"the window ends ({e:%Y-%m-%d %H:%M:%S}) before it starts ({s:%Y-%m-%d %H:%M:%S})")
    if not rollups:
        return TierPlan(s, e, e, e, e, e)
    hours = s.replace(minute=0, second=0, microsecond=0)
    if hours < s:
        hours += timedelta(hours=1)
    hours_end = e.replace(minute=0, second=0, microsecond=0)
    if hours_end < hours:
        hours = hours_end = e  # no whole hour inside: all of [s, e) comes from the raw table
    days = hours.replace(hour=0)
    if days < hours:
        days += timedelta(days=1)
    days_end = hours_end.replace(hour=0)
    if days_end <= days:
        days = days_end = hours_end  # no whole day inside: the hourly tier covers [hours, hours_end)
    return TierPlan(s, e, hours, hours_end, days, days_end)


def previous(start: TimeBound, end: TimeBound) -> tuple[datetime, datetime] | None:
    """The window of the same length just before ``[start, end)`` (``end`` open: now); ``None`` without a start."""
    s = parse_bound(start)
    if s is None:
        return None
    e = parse_bound(end) or datetime.now(UTC)
    return s - (e - s), s


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
