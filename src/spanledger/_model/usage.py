"""Usage over a window — and the one definition of every usage metric.

Each field of :class:`Usage` carries, in its metadata, how the metric is computed from the raw calls (an
aggregate over ``llm_calls`` aliased ``r``), how partial results combine (``sum``, ``min``, ``max`` or
``uniq``), its ClickHouse type and one line of meaning. The rollups' columns and materialized views, the
exact-window queries, the API's schema, the CSV columns and the CLI's JSON are all derived from it: a new
metric is one field here plus a migration (``ALTER TABLE … ADD COLUMN`` and ``MODIFY QUERY`` on the views).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

Merge = Literal["sum", "min", "max", "uniq"]


def metric(raw: str, merge: Merge, ch_type: str, doc: str, *, shown: bool = True) -> Any:
    """A :class:`Usage` field: ``raw`` computes it from calls, ``merge`` combines partial results."""
    return dataclasses.field(metadata={"raw": raw, "merge": merge, "ch": ch_type, "doc": doc, "shown": shown})


_U64 = "UInt64"
CALL_COST = "ifNull(r.cost, toDecimal64(0, 12))"
"""One raw call's cost, unpriced as 0 (unpriced calls are counted apart, never as free)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Totals for one user, tenant, model or day over a window."""

    requests: int = metric("count()", "sum", _U64, "LLM calls.")
    errors: int = metric("sum(r.is_error)", "sum", _U64, "Calls that ended in an error.")
    input_tokens: int = metric("sum(r.input_tokens)", "sum", _U64, "Input tokens, cache reads and writes included.")
    output_tokens: int = metric("sum(r.output_tokens)", "sum", _U64, "Output tokens, reasoning included.")
    cache_read_tokens: int = metric("sum(r.cache_read_tokens)", "sum", _U64, "Input tokens read from a prompt cache.")
    cache_write_tokens: int = metric(
        "sum(r.cache_write_tokens)", "sum", _U64, "Input tokens written to a prompt cache."
    )
    reasoning_tokens: int = metric("sum(r.reasoning_tokens)", "sum", _U64, "Output tokens spent on reasoning.")
    cost: Decimal = metric(
        f"sum({CALL_COST})",
        "sum",
        "Decimal(38, 12)",
        "Exact USD of the priced calls; unpriced calls are counted in unpriced_requests, not here.",
    )
    unpriced_requests: int = metric(
        "countIf(r.cost IS NULL)", "sum", _U64, "Calls with no known price or no usage: not free, not in cost."
    )
    unpriced_tokens: int = metric(
        "sumIf(r.input_tokens + r.output_tokens, r.cost IS NULL)", "sum", _U64, "Tokens of the unpriced calls."
    )
    incomplete_requests: int = metric(
        "countIf(has(r.flags, 'usage_incomplete'))",
        "sum",
        _U64,
        "Calls whose source cannot report cached or reasoning tokens: their cost may be overstated.",
    )
    latency_us: int = metric("sum(r.duration_us)", "sum", _U64, "Time spent in the calls (µs).", shown=False)
    traces: int | None = metric(
        "uniqState(r.trace_id)",
        "uniq",
        "UInt128",
        "Distinct traces (ClickHouse uniq: exact for small counts, within ~1 % beyond); null when not counted.",
    )
    first_seen: datetime | None = metric("min(r.timestamp)", "min", "DateTime64(6, 'UTC')", "The first call.")
    last_seen: datetime | None = metric("max(r.timestamp)", "max", "DateTime64(6, 'UTC')", "The last call.")

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    @property
    def avg_latency_ms(self) -> float:
        """Mean duration of a call, in milliseconds."""
        return self.latency_us / self.requests / 1000 if self.requests else 0.0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Usage:
        """A query row holding every metric under its name (``traces`` may be NULL: not counted)."""
        values: dict[str, Any] = {}
        for m in METRICS:
            value = row[m.name]
            if m.merge in ("min", "max"):
                values[m.name] = _utc(value)
            elif value is None:
                values[m.name] = None
            else:
                values[m.name] = Decimal(value) if m.name == "cost" else int(value)
        return cls(**values)

    @classmethod
    def summed(cls, rows: Sequence[Mapping[str, Any]]) -> Usage:
        """Several rows of every metric added up; distinct traces do not add up (``None``)."""
        values: dict[str, Any] = {}
        for m in METRICS:
            got = [r[m.name] for r in rows if r[m.name] is not None]
            if m.merge == "sum":
                values[m.name] = sum(got, Decimal(0) if m.name == "cost" else 0)
            elif m.merge == "min":
                values[m.name] = min(got, default=None)
            elif m.merge == "max":
                values[m.name] = max(got, default=None)
            else:
                values[m.name] = None
        return cls.from_row(values)


@dataclass(frozen=True, slots=True)
class Metric:
    """One usage metric, as :class:`Usage` defines it."""

    name: str
    raw: str
    """The aggregate over raw calls (``llm_calls`` aliased ``r``); a state (``uniqState``) for ``uniq``."""
    merge: Merge
    ch_type: str
    """The type of its values (for ``uniq``, of what is counted)."""
    doc: str
    shown: bool
    """Whether records (JSON, CSV) carry it; derived values (:data:`DERIVED`) stand for the others."""

    @property
    def rollup_type(self) -> str:
        """The column type in a rollup table."""
        if self.merge == "uniq":
            return f"AggregateFunction(uniq, {self.ch_type})"
        return f"SimpleAggregateFunction({self.merge}, {self.ch_type})"


METRICS: tuple[Metric, ...] = tuple(
    Metric(f.name, f.metadata["raw"], f.metadata["merge"], f.metadata["ch"], f.metadata["doc"], f.metadata["shown"])
    for f in dataclasses.fields(Usage)
)
"""Every stored usage metric, in the rollups' column order."""
SUM_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.merge == "sum")
DERIVED: dict[str, str] = {
    name: (getattr(Usage, name).__doc__ or "").strip() for name in ("total_tokens", "avg_latency_ms")
}
"""Values computed from the metrics, shown beside them in records: name → meaning."""


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None
