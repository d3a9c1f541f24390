"""What subjects have spent in a period, read from the store in one query per kind of subject and period.

Kinds: ``user`` (a user id in every tenant), ``pair`` (a user within a tenant), ``tenant``. A subject is
always a ``(tenant_id, user_id)`` pair, with ``""`` for the part its kind ignores.

The period is read exactly, like every ledger window: whole days from the daily rollups, whole hours from the
hourly ones, partial hours from ``llm_calls`` (``_query.sql.Query``). The guard's meter also asks which of the
calls it counts from memory the store now holds: the calls since ``cut`` are then read from ``llm_calls``
itself, and the query returns the span ids among them that are in ``watch`` or were inserted in the last
``recent_seconds`` (by the store's clock), so that the meter counts each call once — from memory until the
store holds it, from the store after.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from .._model.usage import CALL_COST
from .._query.sql import Query, fetch
from .._query.tiers import plan, ts
from .._store.schema import DAILY_OF, RAW_TABLE, TENANT_ROLLUP, USER_ROLLUP
from .._store.store import Store

Kind = Literal["user", "pair", "tenant"]
Subject = tuple[str, str]
"""(tenant_id, user_id); ``""`` for the part a kind ignores."""

_KEYS: dict[str, list[str]] = {"user": ["user_id"], "pair": ["tenant_id", "user_id"], "tenant": ["tenant_id"]}
_HOURLY = {"user": USER_ROLLUP, "pair": USER_ROLLUP, "tenant": TENANT_ROLLUP}
_T = "DateTime64(6, 'UTC')"


@dataclass(frozen=True, slots=True)
class Spent:
    """One subject's spend in a period, as the store holds it."""

    cost: Decimal
    found: frozenset[int] = frozenset()
    """Span ids of calls since the cut that are watched or were inserted just now (see the module docs)."""
    before_cut: Decimal = Decimal(0)
    """The part of ``cost`` from calls that started before the cut (all of it without a cut)."""


def subject_of(kind: str, tenant_id: str, user_id: str) -> Subject:
    """The subject of a call for a kind of budget."""
    return ("", user_id) if kind == "user" else (tenant_id, "") if kind == "tenant" else (tenant_id, user_id)


def spend(
    store: Store,
    kind: Kind,
    start: datetime,
    end: datetime,
    *,
    subjects: Sequence[Subject] | None = None,
    tenants: Sequence[str] | None = None,
    users: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    cut: datetime | None = None,
    watch: Sequence[int] = (),
    recent_seconds: int = 60,
    above: Decimal | None = None,
    since_cut_only: bool = False,
) -> dict[Subject, Spent]:
    """Spend per subject of ``kind`` in ``[start, end)``: of ``subjects``, or of every subject of ``tenants`` or
    ``users`` (``tags``: only subjects with calls carrying them, the calls themselves counted whatever their tags).
    Subjects without calls are left out. ``cut``: read ``[cut, end)`` from ``llm_calls`` and report the
    span ids found there (see the module docs); ``since_cut_only``: read only ``[cut, end)`` (the meter keeps
    what came before). ``above``: only subjects that spent more than this."""
    keys = _KEYS[kind]
    cut = None if cut is None else min(max(cut, start), end)
    q = Query(store.database, plan(start, cut if cut is not None else end))
    if subjects is not None:
        if not subjects:
            return {}
        if kind == "pair":
            q.where_pairs(list(subjects))
        elif kind == "user":
            q.where_in("user_id", sorted({u for _, u in subjects}))
        else:
            q.where_in("tenant_id", sorted({t for t, _ in subjects}))
    for column, values in (("tenant_id", tenants), ("user_id", users)):
        if values is not None:
            if not values:
                return {}
            q.where_in(column, list(values))
    q.where_tags(tags)
    parts = []
    if (cut is None or cut > start) and not (since_cut_only and cut is not None):
        hourly = _HOURLY[kind]
        parts.append(
            q.union(
                hourly,
                keys,
                "cost AS c, toUInt64(0) AS f, 0 AS after_cut",
                f"{CALL_COST} AS c, toUInt64(0) AS f, 0 AS after_cut",
                daily=DAILY_OF[hourly],
                grouped=False,
            )
        )
    if cut is not None and cut < end:
        lo, hi = q.bind(ts(cut)), q.bind(ts(end))
        ids = q.bind(sorted(set(watch)))
        parts.append(f"""
    SELECT {", ".join(keys)}, {CALL_COST} AS c,
           if(r.span_id IN {{{ids}:Array(UInt64)}} OR r.inserted_at >= now64(3) - INTERVAL {int(recent_seconds)} SECOND,
              r.span_id, toUInt64(0)) AS f, 1 AS after_cut
    FROM {store.database}.{RAW_TABLE} AS r
    WHERE toDate(timestamp) >= toDate32({{{lo}:{_T}}}) AND toDate(timestamp) <= toDate32({{{hi}:{_T}}})
      AND timestamp >= {{{lo}:{_T}}} AND timestamp < {{{hi}:{_T}}}{q.extra()}""")
    group = ", ".join(keys)
    having = f"\nHAVING spent > {{{q.bind(str(above))}:Decimal(38, 12)}}" if above is not None else ""
    sql = f"""
SELECT {group}, sum(c) AS spent, sumIf(c, after_cut = 0) AS before_cut, groupArrayIf(f, f != 0) AS found
FROM ({" UNION ALL ".join(parts)})
GROUP BY {group}{having}"""
    out: dict[Subject, Spent] = {}
    for row in fetch(store, sql, q.params):
        subject = subject_of(kind, row.get("tenant_id", ""), row.get("user_id", ""))
        found = frozenset(int(s) for s in row["found"])
        out[subject] = Spent(Decimal(row["spent"]), found, Decimal(row["before_cut"]))
    return out
