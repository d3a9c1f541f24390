"""Rebuilding rollups from ``llm_calls``: after deleting or repricing calls, and to backfill a new rollup.

ClickHouse mutations never fire materialized views and ``uniq`` states cannot be decremented, so a rollup
is corrected by recomputing it. For each month partition touched, per rollup:

1. a fresh table ``<rollup>__rb_<id>`` with the same structure gets the partition's rows that are *not*
   being rebuilt, copied as they are, and the rows that are, recomputed from ``llm_calls`` by the rollup's
   own view query (so a rollup and the raw table always agree);
2. ``ALTER TABLE <rollup> REPLACE PARTITION`` swaps it in: readers see the old partition or the new one,
   never a mix;
3. each day of the partition is checked against ``llm_calls`` (requests and cost); a partition that does
   not match is rebuilt again (up to ``attempts`` times), else reported.

While it runs the rebuild holds the maintenance lease (:mod:`.lease`): every spanledger writer of the store
(this version on) holds its inserts — its spool keeps accepting calls — so no insert lands in a partition
between its copy and its swap. That holds on chDB and on a server with several writers. A writer that does
not know the lease (an older version, another tool inserting into ``llm_calls``) can lose rows from the
rollups of a rebuilt partition; step 3 catches it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .._errors import StoreError
from . import lease
from .schema import DAILY_KEYS, RAW_TABLE, ROLLUP_KEYS, ROLLUP_TABLES, rollup_columns, rollup_select
from .store import Store

_log = logging.getLogger(__name__)

GRACE_SECONDS = 3.0
"""How long the rebuild waits after taking the lease, for inserts already under way to finish."""


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild did."""

    tables: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    """Month partitions swapped (``202611`` …)."""
    rows: int = 0
    """Rollup rows written into the swapped partitions (copied and recomputed)."""
    seconds: float = 0.0
    verified: bool = True
    """Every rebuilt day of every table equals ``llm_calls`` in requests and cost."""
    mismatches: list[str] = field(default_factory=list)


def _time_column(table: str) -> str:
    return "hour" if table in ROLLUP_KEYS else "day"


def _in(column: str, values: Sequence[str] | None, params: dict[str, Any], name: str) -> str:
    if values is None:
        return ""
    params[name] = list(values)
    return f" AND {column} IN {{{name}:Array(String)}}"


def rebuild(
    store: Store,
    *,
    start: date | None = None,
    end: date | None = None,
    tenants: Sequence[str] | None = None,
    users: Sequence[str] | None = None,
    tables: Sequence[str] = ROLLUP_TABLES,
    attempts: int = 3,
    grace_seconds: float = GRACE_SECONDS,
) -> RebuildReport:
    """Recompute ``tables`` for the UTC days ``[start, end)`` (every day when not given), narrowed to some
    tenants and/or users, from ``llm_calls``. See the module docs for what holds while writers insert."""
    started = time.monotonic()
    report = RebuildReport(tables=list(tables))
    db = store.database
    from .._privacy.retention import raw_horizon  # under a retention, llm_calls holds its last days only

    horizon = raw_horizon(store)
    if horizon is not None and (start is None or start < horizon):
        start = horizon  # older days: the rollups outlive the calls, and are kept as they are
    params: dict[str, Any] = {}
    days = ""
    if start is not None:
        params["rb_start"] = start
        days += " AND {t} >= {{rb_start:Date}}"
    if end is not None:
        params["rb_end"] = end
        days += " AND {t} < {{rb_end:Date}}"
    raw_filter = days.format(t="toDate(r.timestamp)")
    raw_filter += _in("r.tenant_id", tenants, params, "rb_tenants") + _in("r.user_id", users, params, "rb_users")
    partitions = [
        str(row[0])
        for row in store.query(
            f"SELECT DISTINCT toYYYYMM(r.timestamp) FROM {db}.{RAW_TABLE} AS r WHERE 1{raw_filter} ORDER BY 1", params
        ).result_rows
    ]
    # the rollups may also hold rows whose calls are gone (a delete, a retention): those partitions too
    for table in tables:
        t = _time_column(table)
        where = days.format(t=f"toDate({t})") + _in("tenant_id", tenants, params, "rb_tenants")
        if users is not None and "user_id" in _keys(table):
            where += _in("user_id", users, params, "rb_users")
        for row in store.query(f"SELECT DISTINCT toYYYYMM({t}) FROM {db}.{table} WHERE 1{where}", params).result_rows:
            if str(row[0]) not in partitions:
                partitions.append(str(row[0]))
    partitions.sort()
    if not partitions:
        report.seconds = time.monotonic() - started
        return report
    affected_tenants = _tenants_of(store, raw_filter, params, tenants, users)
    nested = lease.held(store) == lease.holder()  # a forget holds it around its rebuild: it releases it, not us
    lease.take(store)
    try:
        time.sleep(grace_seconds)
        for partition in partitions:
            for table in tables:
                for _attempt in range(attempts):
                    lease.take(store)  # renewed as it goes
                    report.rows += _swap(store, table, partition, days, params, tenants, users, affected_tenants)
                    problem = _check(store, table, partition, horizon)
                    if not problem:
                        break
                    _log.warning(
                        "rebuilt %s partition %s does not match llm_calls (%s); again", table, partition, problem
                    )
                else:
                    report.verified = False
                    report.mismatches.append(f"{table} {partition}: {problem}")
            report.partitions.append(partition)
    finally:
        if not nested:
            lease.release(store)
    report.seconds = time.monotonic() - started
    return report


def _keys(table: str) -> tuple[str, ...]:
    return ROLLUP_KEYS[table] if table in ROLLUP_KEYS else DAILY_KEYS[table]


def _tenants_of(
    store: Store, raw_filter: str, params: dict[str, Any], tenants: Sequence[str] | None, users: Sequence[str] | None
) -> list[str] | None:
    """The tenants whose per-tenant rows a users-narrowed rebuild must recompute (their users are mixed in)."""
    if users is None:
        return list(tenants) if tenants is not None else None
    db = store.database
    found = {
        r[0]
        for r in store.query(
            f"SELECT DISTINCT r.tenant_id FROM {db}.{RAW_TABLE} AS r WHERE 1{raw_filter}", params
        ).result_rows
    }
    for table in (t for t in ROLLUP_TABLES if "user_id" in _keys(t)):
        found |= {
            r[0]
            for r in store.query(
                f"SELECT DISTINCT tenant_id FROM {db}.{table} WHERE user_id IN {{rb_users:Array(String)}}", params
            ).result_rows
        }
    return sorted(found)


def _swap(
    store: Store,
    table: str,
    partition: str,
    days: str,
    params: dict[str, Any],
    tenants: Sequence[str] | None,
    users: Sequence[str] | None,
    affected_tenants: list[str] | None,
) -> int:
    """Build the partition aside and swap it in; returns the rows it holds."""
    db = store.database
    t = _time_column(table)
    keys = _keys(table)
    local = dict(params)
    local["rb_partition"] = int(partition)
    # which of the rollup's rows are rebuilt: the days, and the tenants / users asked for; a per-tenant rollup
    # narrowed to users is rebuilt for those users' tenants, whose rows mix them with others
    scope = days.format(t=f"toDate({t})")
    raw_scope = days.format(t="toDate(r.timestamp)")
    if "user_id" in keys:
        scope += _in("tenant_id", tenants, local, "rb_tenants") + _in("user_id", users, local, "rb_users")
        raw_scope += _in("r.tenant_id", tenants, local, "rb_tenants") + _in("r.user_id", users, local, "rb_users")
    else:
        scope += _in("tenant_id", affected_tenants, local, "rb_affected")
        raw_scope += _in("r.tenant_id", affected_tenants, local, "rb_affected")
    aside = f"{table}__rb_{secrets.token_hex(4)}"
    columns = ", ".join(rollup_columns(table))
    store.command(f"CREATE TABLE {db}.{aside} AS {db}.{table}")
    try:
        store.command(
            f"INSERT INTO {db}.{aside} ({columns}) SELECT {columns} FROM {db}.{table} "
            f"WHERE toYYYYMM({t}) = {{rb_partition:UInt32}} AND NOT (1{scope})",
            local,
        )
        where = f"toYYYYMM(r.timestamp) = {{rb_partition:UInt32}}{raw_scope}"
        store.command(f"INSERT INTO {db}.{aside} ({columns})\n{rollup_select(db, table, where)}", local)
        rows = int(store.query(f"SELECT count() FROM {db}.{aside}").result_rows[0][0])
        if rows:
            store.command(f"ALTER TABLE {db}.{table} REPLACE PARTITION ID '{int(partition)}' FROM {db}.{aside}")
        else:  # nothing left in the month (its only user forgotten): ClickHouse refuses to replace from empty
            store.command(f"ALTER TABLE {db}.{table} DROP PARTITION ID '{int(partition)}'")
        return rows
    finally:
        try:
            store.command(f"DROP TABLE IF EXISTS {db}.{aside} SYNC")
        except StoreError:
            _log.warning("could not drop %s.%s after a rebuild", db, aside, exc_info=True)


def _check(store: Store, table: str, partition: str, since: date | None = None) -> str:
    """'' when every day of the partition (from ``since``) has the same requests and cost in the rollup as in
    llm_calls."""
    db = store.database
    t = _time_column(table)
    p: dict[str, Any] = {"rb_partition": int(partition), "rb_since": since or date(1970, 1, 1)}
    raw = {
        r[0]: (int(r[1]), Decimal(r[2]))
        for r in store.query(
            f"SELECT toDate(timestamp) AS d, count(), sum(ifNull(cost, toDecimal64(0, 12))) FROM {db}.{RAW_TABLE} "
            "WHERE toYYYYMM(timestamp) = {rb_partition:UInt32} AND toDate(timestamp) >= {rb_since:Date} GROUP BY d",
            p,
        ).result_rows
    }
    rolled = {
        r[0]: (int(r[1]), Decimal(r[2]))
        for r in store.query(
            f"SELECT toDate({t}) AS d, sum(requests), sum(cost) FROM {db}.{table} "
            f"WHERE toYYYYMM({t}) = {{rb_partition:UInt32}} AND toDate({t}) >= {{rb_since:Date}} GROUP BY d "
            "HAVING sum(requests) > 0",
            p,
        ).result_rows
    }
    if raw == rolled:
        return ""
    wrong = sorted(d for d in raw.keys() | rolled.keys() if raw.get(d) != rolled.get(d))
    first = wrong[0]
    return f"{len(wrong)} day(s) differ, first {first}: llm_calls {raw.get(first)}, rollup {rolled.get(first)}"
