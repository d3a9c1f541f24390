"""The SQL every ledger query shares: metric expressions derived from :class:`Usage`, the tiers of a window
combined into one statement (:class:`Query`), bound filters, and running a statement.

Every user-supplied value reaches ClickHouse as a bound parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .._errors import ConfigError
from .._model.usage import METRICS
from .._store.schema import RAW_METRICS, RAW_TABLE
from .._store.store import Store
from .tiers import TierPlan, ts

_MERGE_ROLLUP = {
    "sum": "sum({0}) AS {0}",
    "min": "min({0}) AS {0}",
    "max": "max({0}) AS {0}",
    "uniq": "uniqMergeState({0}) AS {0}",
}
_MERGE_OUTER = {
    "sum": "sum({0}) AS {0}",
    "min": "min({0}) AS {0}",
    "max": "max({0}) AS {0}",
    "uniq": "uniqMerge({0}) AS {0}",
}


def rollup_inner(*, traces: bool) -> str:
    """Every metric, per group, read from a rollup table (hourly or daily)."""
    return ", ".join(_MERGE_ROLLUP[m.merge].format(m.name) for m in METRICS if traces or m.name != "traces")


def raw_inner(*, traces: bool) -> str:
    """The same metrics computed from the raw table (aliased ``r``)."""
    return ", ".join(f"{RAW_METRICS[m.name]} AS {m.name}" for m in METRICS if traces or m.name != "traces")


def outer(*, traces: bool) -> str:
    """The final aggregation over the union of tiers (``traces`` is NULL when not asked for)."""
    parts = [_MERGE_OUTER[m.merge].format(m.name) for m in METRICS if m.name != "traces"]
    return ", ".join([*parts, "uniqMerge(traces) AS traces" if traces else "NULL AS traces"])


MAX_LIMIT = 1000
"""The most rows one page may hold."""


def check_paging(page: int, limit: int) -> tuple[int, int]:
    if not isinstance(page, int) or page < 1:
        raise ConfigError(f"bad page {page!r}: pages start at 1")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"bad limit {limit!r}: between 1 and {MAX_LIMIT}")
    return page, limit


def fetch(store: Store, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run a query; every row as a dict by column name."""
    result = store.query(sql, dict(params))
    names = result.column_names
    return [dict(zip(names, row, strict=True)) for row in result.result_rows]


_T = "DateTime64(6, 'UTC')"


class Query:
    """The window and filter SQL shared by every ledger query, collecting bound parameters."""

    def __init__(self, db: str, w: TierPlan) -> None:
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
        self.has_user = False
        """Whether a user filter is set: the per-tenant rollups keep no user ids, so the per-user ones answer."""

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def where_equal(self, column: str, value: str | None) -> None:
        if value is not None:
            self.filters.append(f"{column} = {{{self.bind(value)}:String}}")

    def where_user(self, user_id: str | None) -> None:
        if user_id is not None:
            self.where_equal("user_id", user_id)
            self.has_user = True

    def where_tags(self, tags: Mapping[str, str] | None) -> None:
        for key, value in (tags or {}).items():
            k, v = self.bind(str(key)), self.bind(str(value))
            self.filters.append(f"tags[{{{k}:String}}] = {{{v}:String}}")
            self.has_tags = True

    def where_search(self, column: str, search: str | None, *, also: Callable[[str], str] | None = None) -> None:
        """Rows whose ``column`` contains ``search`` (case-insensitive) — or, ``also``, whose key is in the subquery
        it makes of the bound search parameter's name: ``(tenant_id, user_id)`` (``column`` ``user_id``) or
        ``tenant_id`` of the customer profiles whose name or e-mail matches."""
        if not search:
            return
        name = self.bind(search)
        condition = f"positionCaseInsensitiveUTF8({column}, {{{name}:String}}) > 0"
        if also is not None:
            key = "(tenant_id, user_id)" if column == "user_id" else column
            condition = f"({condition} OR {key} IN ({also(name)}))"
        self.filters.append(condition)

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
        raw: str = RAW_TABLE,
    ) -> str:
        """The tiers' rows UNION ALL'd, each grouped by ``keys`` (``day`` may be one of them, and a key may
        be an expression with an alias: ``tags[…] AS value``).

        ``daily`` names a per-day rollup with the same metric columns, used for the whole days
        unless a tag filter is set (it keeps no tags). ``grouped=False`` leaves each tier's rows
        ungrouped (``inner_*`` are then row expressions), so the caller aggregates once: a ranking over
        one metric measured 17 % faster that way at 10M calls. ``daily_part=False`` leaves the daily
        tier's rows out (the hourly tier still stops at its days), for a caller that reads them itself. ``raw``
        is the table the edges are read from (``tool_calls`` for the tool rollup).
        """
        at = self.bounds
        use_daily = self.uses_daily(daily)

        def select(day_expr: str) -> str:
            return ", ".join(day_expr if k == "day" else k for k in keys)

        names = [k.rpartition(" AS ")[2] for k in keys]  # a key may be an expression with an alias
        group = f"\n    GROUP BY {', '.join(names)}" if grouped else ""
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
    FROM {self.db}.{raw} AS r
    WHERE ({raw_range}){self.extra()}{group}""")
        return "\n    UNION ALL".join(parts)
