"""The SQL behind :class:`Ledger`: exact windows over three tiers of pre-aggregation, and bound filters.

A window ``[start, end)`` is cut into the whole UTC days inside it (read from the daily per-user
rollup), the whole hours around those (the hourly rollups) and the partial hours at both edges (the raw
``llm_calls`` table). The parts are combined with ``UNION ALL`` and grouped again, so the answer is the
one a ``GROUP BY`` over the raw table would give, to the microsecond. The daily tier carries no tags, so
a tag filter reads whole hours from the hourly rollups instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .._errors import ConfigError
from .._store.schema import RAW_METRICS, RAW_TABLE
from .timebound import TimeBound, parse_bound

_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)

SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "unpriced_requests",
    "unpriced_tokens",
    "latency_us",
)


def rollup_inner(*, traces: bool) -> str:
    """Per-group metrics read from a rollup table (hourly or daily)."""
    parts = [f"sum({m}) AS {m}" for m in SUMS] + ["min(first_seen) AS first_seen", "max(last_seen) AS last_seen"]
    if traces:
        parts.append("uniqMergeState(traces) AS traces")
    return ", ".join(parts)


def raw_inner(*, traces: bool) -> str:
    """The same metrics computed from the raw table."""
    names = [*SUMS, "first_seen", "last_seen", *(["traces"] if traces else [])]
    return ", ".join(f"{RAW_METRICS[m]} AS {m}" for m in names)


def outer(*, traces: bool) -> str:
    """The final aggregation over the union of tiers (``traces`` is NULL when not asked for)."""
    parts = [f"sum({m}) AS {m}" for m in SUMS]
    parts += ["input_tokens + output_tokens AS total_tokens", "min(first_seen) AS first_seen"]
    parts += ["max(last_seen) AS last_seen", "uniqMerge(traces) AS traces" if traces else "NULL AS traces"]
    return ", ".join(parts)


ZERO_COST = RAW_METRICS["cost"]


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)`` and its tiers: raw ``[start, hours) ∪ [hours_end, end)``, hourly the rest of
    ``[hours, hours_end)``, daily ``[days, days_end)``."""

    start: datetime
    end: datetime
    hours: datetime
    hours_end: datetime
    days: datetime
    days_end: datetime

    def by_day(self) -> Window:
        """The same window without the hourly tier: whole days from the daily rollups, the partial days at
        the edges from the raw table. For a few users' rows (a page's fill) this is the cheaper cut: the
        raw table's key (day, tenant, user) finds their rows of an edge day directly, while an hour of the
        hourly rollups has every user's rows in each of its granules (10M calls, 50 users: the hourly tier
        alone was ~130 ms of a ~190 ms fill)."""
        if self.days >= self.days_end:  # no whole day inside: all of it from the raw table
            return Window(self.start, self.end, self.end, self.end, self.end, self.end)
        return replace(self, hours=self.days, hours_end=self.days_end)


def window(start: TimeBound, end: TimeBound, *, rollups: bool = True) -> Window:
    """The tiers of ``[start, end)``; ``rollups=False`` reads it all from the raw table, which is faster
    for one user (the raw table's key leads with day, tenant, user; the rollups' with hour)."""
    s = parse_bound(start) or _FAR_PAST
    e = parse_bound(end) or _FAR_FUTURE
    if e < s:
        raise ConfigError(f"the window ends ({e:%Y-%m-%d %H:%M:%S}) before it starts ({s:%Y-%m-%d %H:%M:%S})")
    if not rollups:
        return Window(s, e, e, e, e, e)
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
    return Window(s, e, hours, hours_end, days, days_end)


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_T = "DateTime64(6, 'UTC')"


class Query:
    """The window and filter SQL shared by every ledger query, collecting bound parameters."""

    def __init__(self, db: str, w: Window) -> None:
        self.db = db
        self.window = w
        self.bounds: dict[str, datetime] = {
            "w_start": w.start,
            "w_end": w.end,
            "w_hours": w.hours,
            "w_hours_end": w.hours_end,
            "w_days": w.days,
            "w_days_end": w.days_end,
        }
        """The window's tier bounds by the name of the query parameter that carries each."""
        self.params: dict[str, Any] = {name: ts(at) for name, at in self.bounds.items()}
        self.filters: list[str] = []
        self.has_tags = False

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def where_equal(self, column: str, value: str | None) -> None:
        if value is not None:
            self.filters.append(f"{column} = {{{self.bind(value)}:String}}")

    def where_tags(self, tags: Mapping[str, str] | None) -> None:
        for key, value in (tags or {}).items():
            k, v = self.bind(str(key)), self.bind(str(value))
            self.filters.append(f"tags[{{{k}:String}}] = {{{v}:String}}")
            self.has_tags = True

    def where_search(self, column: str, search: str | None) -> None:
        if search:
            self.filters.append(f"positionCaseInsensitiveUTF8({column}, {{{self.bind(search)}:String}}) > 0")

    def where_in(self, column: str, values: list[str]) -> None:
        self.filters.append(f"{column} IN {{{self.bind(values)}:Array(String)}}")

    def where_pairs(self, pairs: list[tuple[str, str]]) -> None:
        name = self.bind(pairs)
        # a bound array, not a subquery: with ``IN (SELECT …)`` the primary key analysis dropped the
        # day column and read 1,045 of 1,241 granules of a 10M-call table for two partial hours
        self.filters.append(f"(tenant_id, user_id) IN {{{name}:Array(Tuple(String, String))}}")

    def extra(self) -> str:
        return "".join(f" AND {f}" for f in self.filters)

    def uses_daily(self, daily: str | None) -> bool:
        """Whether :meth:`union` reads whole days from the daily rollup ``daily`` (it keeps no tags)."""
        return daily is not None and not self.has_tags and self.window.days < self.window.days_end

    def day_range(self) -> str:
        """The daily tier's days, ``[days, days_end)``, as a condition on a daily rollup's ``day``."""
        return f"day >= toDate32({{w_days:{_T}}}) AND day < toDate32({{w_days_end:{_T}}})"

    def union(
        self,
        hourly: str,
        keys: list[str],
        inner_rollup: str,
        inner_raw: str,
        *,
        daily: str | None = None,
        grouped: bool = True,
        daily_part: bool = True,
    ) -> str:
        """The tiers' rows UNION ALL'd, each grouped by ``keys`` (``day`` may be one of them).

        ``daily`` names a per-day rollup with the same metric columns, used for the whole days
        unless a tag filter is set (it keeps no tags). ``grouped=False`` leaves each tier's rows
        ungrouped (``inner_*`` are then row expressions), so the caller aggregates once: a ranking over
        one metric measured 17 % faster that way at 10M calls. ``daily_part=False`` leaves the daily
        tier's rows out (the hourly tier still stops at its days), for a caller that reads them itself.
        """
        at = self.bounds
        use_daily = self.uses_daily(daily)

        def select(day_expr: str) -> str:
            return ", ".join(day_expr if k == "day" else k for k in keys)

        group = f"\n    GROUP BY {', '.join(keys)}" if grouped else ""
        hours = [("w_hours", "w_days"), ("w_days_end", "w_hours_end")] if use_daily else [("w_hours", "w_hours_end")]
        hours = [(a, b) for a, b in hours if at[a] < at[b]]
        parts = []
        if hours:
            hour_range = " OR ".join(f"(hour >= {{{a}:{_T}}} AND hour < {{{b}:{_T}}})" for a, b in hours)
            parts.append(f"""
    SELECT {select("toDate(hour) AS day")}, {inner_rollup}
    FROM {self.db}.{hourly}
    WHERE ({hour_range}){self.extra()}{group}""")
        if use_daily and daily_part:
            parts.append(f"""
    SELECT {select("day")}, {inner_rollup}
    FROM {self.db}.{daily}
    WHERE {self.day_range()}{self.extra()}{group}""")
        edges = [(a, b) for a, b in (("w_start", "w_hours"), ("w_hours_end", "w_end")) if at[a] < at[b]]
        if edges or not parts:
            # the day bounds are implied by the timestamp bounds; written out, they let the primary key
            # (day, tenant, user, …) narrow each edge to its day, which it did not do through the OR
            raw_range = " OR ".join(
                f"(toDate(timestamp) >= toDate32({{{a}:{_T}}}) AND toDate(timestamp) <= toDate32({{{b}:{_T}}})"
                f" AND timestamp >= {{{a}:{_T}}} AND timestamp < {{{b}:{_T}}})"
                # nothing at the edges: all of it, or (when the daily tier covers it but its rows were left
                # out) an empty range, so that the union stays one valid SELECT
                for a, b in edges or [("w_start", "w_start" if use_daily else "w_end")]
            )
            parts.append(f"""
    SELECT {select("toDate(timestamp) AS day")}, {inner_raw}
    FROM {self.db}.{RAW_TABLE} AS r
    WHERE ({raw_range}){self.extra()}{group}""")
        return "\n    UNION ALL".join(parts)
