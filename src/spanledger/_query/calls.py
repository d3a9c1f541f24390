"""The calls explorer: every stored call, newest first, filtered, keyset-paged; and the calls of one trace.

A page never uses ``OFFSET``: it continues from a cursor, the (timestamp, trace id, span id) of the last
call shown, so page 200 costs what page 1 costs and a call inserted meanwhile never shifts a page (nothing
is skipped or repeated). The raw table is ordered by (day, tenant, user, timestamp), not by time, so
"the newest 51 calls before the cursor" is asked of a time slice just before the cursor, one hour wide,
then four times wider each time the slice held too few: the first page at 10M calls reads an hour of
them, and a rare filter reaches a month back in six slices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal

from .._errors import ConfigError
from .._model.call import StoredCall
from .._model.rows import CallPage
from .._store.schema import DAILY_OF, RAW_TABLE, TENANT_ROLLUP, USER_MODEL_ROLLUP, USER_ROLLUP
from .._store.store import Store
from .sql import MAX_LIMIT, Query, fetch
from .tiers import plan, ts
from .timebound import TimeBound

Status = Literal["ok", "error"]
Direction = Literal["older", "newer"]

FLAGS: dict[str, tuple[str, str]] = {
    "unpriced": ("r.cost IS NULL", "No known price (or no usage): not in cost."),
    "cached": ("r.cache_read_tokens > 0", "Some input tokens were read from a prompt cache."),
    "incomplete": (
        "has(r.flags, 'usage_incomplete')",
        "The source cannot report cached or reasoning tokens: the cost may be overstated.",
    ),
    "repaired": (
        "arrayExists(f -> f NOT IN ('unpriced', 'usage_incomplete'), r.flags)",
        "Normalisation had to repair something (see the call's flags).",
    ),
}
"""What ``flags`` may ask for: the condition on the raw row and what it means."""
_T = "DateTime64(6, 'UTC')"
_FIRST_SLICE = timedelta(hours=1)
_GROWTH = 4
_CURSOR = re.compile(r"^(\d{1,19})-([0-9a-f]{32})-([0-9a-f]{16})$")
_MAX_COST = Decimal("999999")
_TRACE_DAYS = 1
"""How far either side of a call's day its trace's other calls are looked for."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the last call's timestamp, trace id and span id (calls are ordered by these)."""

    timestamp: datetime
    trace_id: int
    span_id: int

    def encode(self) -> str:
        """``<µs since the epoch>-<trace hex>-<span hex>``: short, URL-safe, readable."""
        micros = (self.timestamp - _EPOCH) // timedelta(microseconds=1)
        return f"{micros}-{self.trace_id:032x}-{self.span_id:016x}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = _CURSOR.match(text.strip().lower())
        if not match:
            raise ConfigError(f"bad cursor {text[:60]!r}: use the next/prev value of a previous page")
        micros, trace, span = match.groups()
        try:
            at = _EPOCH + timedelta(microseconds=int(micros))
        except OverflowError:
            raise ConfigError(f"bad cursor {text[:60]!r}: its time is out of range") from None
        return cls(at, int(trace, 16), int(span, 16))

    @classmethod
    def of(cls, call: StoredCall) -> Cursor:
        return cls(call.timestamp, call.trace_id, call.span_id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def calls(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    user_id: str | None = None,
    tenant_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    status: Status | None = None,
    flags: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    min_cost: Decimal | str | None = None,
    max_cost: Decimal | str | None = None,
    trace_id: int | None = None,
    cursor: str | None = None,
    direction: Direction = "older",
    limit: int = 50,
) -> CallPage:
    """A page of calls, newest first, matching every filter given.

    Args:
        user_id, tenant_id: Exact ids (``""`` is the calls that carried none).
        provider, model: Exact names (``model`` is the model that answered).
        status: ``ok`` or ``error``.
        flags: Each must hold: ``unpriced``, ``cached``, ``incomplete`` (usage), ``repaired``.
        tags: ``{key: value}``, each must match.
        min_cost, max_cost: USD bounds on a call's cost, inclusive (an unpriced call has none: it never
            matches a cost bound).
        trace_id: Only the calls of this trace.
        cursor: A page's ``next`` (older calls) or ``prev`` (newer calls, with ``direction="newer"``).
        limit: Calls per page, 1 to 1000.

    Returns:
        The page (newest first whatever the direction) with the cursors to the pages on either side.

    Raises:
        ConfigError: A bad filter, cursor or window.
    """
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"bad limit {limit!r}: between 1 and {MAX_LIMIT}")
    if direction not in ("older", "newer"):
        raise ConfigError(f"bad direction {direction!r}: use older or newer")
    window = plan(start, end, rollups=False)
    q = Query(store.database, window)
    filter_calls(
        q,
        user_id=user_id,
        tenant_id=tenant_id,
        provider=provider,
        model=model,
        status=status,
        flags=flags,
        tags=tags,
        min_cost=min_cost,
        max_cost=max_cost,
        trace_id=trace_id,
    )
    at = Cursor.decode(cursor) if cursor else None
    older = direction == "older"
    rows = _scan(store, q, window.start, window.end, at, older=older, want=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    if not older:
        rows.reverse()
    found = [StoredCall.from_row(r) for r in rows]
    first, last = (Cursor.of(found[0]).encode(), Cursor.of(found[-1]).encode()) if found else (None, None)
    if older:
        # older calls exist past the last one when the scan found more; newer ones whenever we came from a cursor
        next_cursor, prev_cursor = (last if more else None), (first if at else None)
    else:
        next_cursor, prev_cursor = (last if at else None), (first if more else None)
    if not found and at is not None:  # past either end: the way back is the cursor itself
        next_cursor, prev_cursor = (None, cursor) if older else (cursor, None)
    return CallPage(calls=found, limit=limit, next=next_cursor, prev=prev_cursor)


def filter_calls(
    q: Query,
    *,
    user_id: str | None = None,
    tenant_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    status: Status | None = None,
    flags: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    min_cost: Decimal | str | None = None,
    max_cost: Decimal | str | None = None,
    trace_id: int | None = None,
) -> None:
    """The explorer's filters as conditions on the raw table (aliased ``r``)."""
    q.where_equal("tenant_id", tenant_id)
    q.where_equal("user_id", user_id)
    q.where_equal("provider", provider)
    q.where_equal("model", model)
    if status is not None:
        if status not in ("ok", "error"):
            raise ConfigError(f"bad status {status!r}: use ok or error")
        q.filters.append(f"is_error = {1 if status == 'error' else 0}")
    for flag in dict.fromkeys(flags):
        if flag not in FLAGS:
            raise ConfigError(f"bad flag {flag!r}: use {', '.join(FLAGS)}")
        q.filters.append(FLAGS[flag][0])
    q.where_tags(tags)
    low, high = _cost(min_cost, "min_cost"), _cost(max_cost, "max_cost")
    if low is not None and high is not None and high < low:
        raise ConfigError(f"max_cost {high} is below min_cost {low}")
    if low is not None:
        q.filters.append(f"cost >= {{{q.bind(low)}:Decimal(18, 12)}}")
    if high is not None:
        q.filters.append(f"cost <= {{{q.bind(high)}:Decimal(18, 12)}}")
    if trace_id is not None:
        if not 0 <= trace_id < 2**128:
            raise ConfigError("bad trace id: 32 hex digits")
        q.filters.append(f"trace_id = {{{q.bind(trace_id)}:UInt128}}")


def _cost(value: Decimal | str | None, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise ConfigError(f"bad {name} {str(value)[:30]!r}: a USD amount like 0.05") from None
    if not amount.is_finite() or not Decimal(0) <= amount <= _MAX_COST:
        raise ConfigError(f"bad {name} {str(value)[:30]!r}: between 0 and {_MAX_COST}")
    return amount.quantize(Decimal("1e-12"))


def _scan(
    store: Store, q: Query, lo_limit: datetime, hi_limit: datetime, at: Cursor | None, *, older: bool, want: int
) -> list[dict[str, object]]:
    """Up to ``want`` calls past the cursor (older or newer), nearest first, read slice by slice."""
    rows: list[dict[str, object]] = []
    if older:
        edge = hi_limit if at is None else min(hi_limit, at.timestamp + timedelta(microseconds=1))
    else:
        edge = lo_limit if at is None else max(lo_limit, at.timestamp)
    width = _FIRST_SLICE
    soon = datetime.now(UTC) + _FIRST_SLICE
    while len(rows) < want:
        if older and edge > soon:  # an open end: whatever lies after "now" (clock skew) in one slice
            lo, hi = max(lo_limit, soon), edge
        elif older:
            lo, hi = max(lo_limit, edge - width), edge
            width *= _GROWTH
        else:
            lo, hi = edge, min(hi_limit, edge + width)
            width *= _GROWTH
        if lo >= hi:
            break
        rows += _slice(store, q, lo, hi, at, older=older, limit=want - len(rows))
        edge = lo if older else hi
    return rows


def _slice(
    store: Store, q: Query, lo: datetime, hi: datetime, at: Cursor | None, *, older: bool, limit: int
) -> list[dict[str, object]]:
    params = {**q.params, "s_lo": ts(lo), "s_hi": ts(hi)}
    keyset = ""
    if at is not None:
        params.update(c_ts=ts(at.timestamp), c_trace=at.trace_id, c_span=at.span_id)
        sign = "<" if older else ">"
        keyset = f" AND (timestamp, trace_id, span_id) {sign} ({{c_ts:{_T}}}, {{c_trace:UInt128}}, {{c_span:UInt64}})"
    order = "DESC" if older else "ASC"
    # the day bounds are implied by the time bounds; written out, the primary key (day, …) prunes the days
    sql = f"""
SELECT * FROM {q.db}.{RAW_TABLE} AS r
WHERE toDate(timestamp) >= toDate32({{s_lo:{_T}}}) AND toDate(timestamp) <= toDate32({{s_hi:{_T}}})
  AND timestamp >= {{s_lo:{_T}}} AND timestamp < {{s_hi:{_T}}}{keyset}{q.extra()}
ORDER BY timestamp {order}, trace_id {order}, span_id {order}
LIMIT {limit}"""
    return fetch(store, sql, params)


_COUNTED: dict[str, tuple[str, str]] = {
    "all": ("requests", "toUInt64(1)"),
    "error": ("errors", "toUInt64(r.is_error)"),
    "ok": ("requests - errors", "toUInt64(NOT r.is_error)"),
    "unpriced": ("unpriced_requests", "toUInt64(r.cost IS NULL)"),
    "incomplete": ("incomplete_requests", "toUInt64(has(r.flags, 'usage_incomplete'))"),
}
"""What the rollups count, per row of a rollup and of the raw table: a count that needs one of these (and
filters the rollups keep) is read from them, exactly, instead of from every matching call."""


def count_calls(
    store: Store,
    *,
    start: TimeBound = None,
    end: TimeBound = None,
    user_id: str | None = None,
    tenant_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    status: Status | None = None,
    flags: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    min_cost: Decimal | str | None = None,
    max_cost: Decimal | str | None = None,
    trace_id: int | None = None,
) -> int:
    """How many calls match (the filters of :func:`calls`).

    A count by user, tenant, provider, model, tags and one of status, ``unpriced`` or ``incomplete`` is summed
    from the rollups (whole days and hours) and the raw table (the partial hours at the edges), exactly; any
    other filter (cost bounds, ``cached``, ``repaired``, a trace, two kinds at once) counts the raw calls.
    """
    wanted = [k for k in (status, *dict.fromkeys(flags)) if k is not None]
    bounded = min_cost not in (None, "") or max_cost not in (None, "")
    if len(wanted) <= 1 and set(wanted) <= set(_COUNTED) and not bounded and trace_id is None:
        kind = wanted[0] if wanted else "all"
        return _count_rollups(store, start, end, user_id, tenant_id, provider, model, tags, kind)
    q = Query(store.database, plan(start, end, rollups=False))
    filter_calls(
        q,
        user_id=user_id,
        tenant_id=tenant_id,
        provider=provider,
        model=model,
        status=status,
        flags=flags,
        tags=tags,
        min_cost=min_cost,
        max_cost=max_cost,
        trace_id=trace_id,
    )
    sql = f"""
SELECT count() AS n FROM {q.db}.{RAW_TABLE} AS r
WHERE toDate(timestamp) >= toDate32({{w_start:{_T}}}) AND toDate(timestamp) <= toDate32({{w_end:{_T}}})
  AND timestamp >= {{w_start:{_T}}} AND timestamp < {{w_end:{_T}}}{q.extra()}"""
    return int(fetch(store, sql, q.params)[0]["n"])


def _count_rollups(
    store: Store,
    start: TimeBound,
    end: TimeBound,
    user_id: str | None,
    tenant_id: str | None,
    provider: str | None,
    model: str | None,
    tags: Mapping[str, str] | None,
    kind: str,
) -> int:
    q = Query(store.database, plan(start, end))
    q.where_equal("tenant_id", tenant_id)
    q.where_user(user_id)
    q.where_equal("provider", provider)
    q.where_equal("model", model)
    q.where_tags(tags)
    if provider is not None or model is not None:
        hourly = USER_MODEL_ROLLUP
    else:
        hourly = USER_ROLLUP if user_id is not None else TENANT_ROLLUP
    rollup, raw = _COUNTED[kind]
    union = q.union(hourly, ["tenant_id"], f"{rollup} AS n", f"{raw} AS n", daily=DAILY_OF[hourly], grouped=False)
    return int(fetch(store, f"SELECT sum(n) AS n FROM ({union})", q.params)[0]["n"] or 0)


def trace(store: Store, trace_id: int, *, near: datetime, tenant_id: str | None = None) -> list[StoredCall]:
    """The calls of one trace, oldest first, looked for within a day either side of ``near`` (a call of it).

    Args:
        trace_id: The trace.
        near: When one of its calls happened (the trace's other calls are looked for ±1 UTC day from it).
        tenant_id: Only this tenant's calls (a tenant token's scope).
    """
    day = near.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return calls(
        store,
        start=day - timedelta(days=_TRACE_DAYS),
        end=day + timedelta(days=_TRACE_DAYS + 1),
        trace_id=trace_id,
        tenant_id=tenant_id,
        direction="newer",
        limit=MAX_LIMIT,
    ).calls[::-1]
