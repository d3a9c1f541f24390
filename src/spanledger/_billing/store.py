"""Every SQL statement of billing: markups and revenue (read and write), usage grouped for statements and
margins (read through the query layer's tiers, so a window is exact), and a repricing's reads and writes.

Every user-supplied value reaches ClickHouse as a bound parameter.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._query.sql import Query, fetch
from .._query.tiers import TierPlan, ts
from .._query.tiers import plan as plan_window
from .._store.schema import (
    RAW_METRICS,
    RAW_TABLE,
    TENANT_DAILY_ROLLUP,
    TENANT_ROLLUP,
    USER_DAILY_ROLLUP,
    USER_MODEL_DAILY_ROLLUP,
    USER_MODEL_ROLLUP,
    USER_ROLLUP,
)
from .._store.store import Store
from .model import LOOKUP, Markup
from .schema import MARKUPS_TABLE, PERCENT_TYPE, REPRICES_TABLE, REVENUE_TABLE

if TYPE_CHECKING:
    from .markups import Markups

_T = "DateTime64(6, 'UTC')"

# --- markups -----------------------------------------------------------------------------------------


def write_markup(store: Store, scope: str, key: str, percent: Decimal | None, note: str = "") -> None:
    """Set (``percent``) or remove (``None``) the markup of one scope and key; the history is kept."""
    store.insert_rows(
        MARKUPS_TABLE,
        [[scope, key, percent if percent is not None else Decimal(0), int(percent is None), note]],
        ["scope", "key", "percent", "removed", "note"],
        ["LowCardinality(String)", "String", PERCENT_TYPE, "UInt8", "String"],
    )


def read_markups(store: Store) -> list[Markup]:
    """The markups in force: the latest setting of each scope and key, unless it removed the markup."""
    rows = store.query(
        f"SELECT scope, key, argMax((percent, removed, note), set_at) AS last, max(set_at) "
        f"FROM {store.database}.{MARKUPS_TABLE} GROUP BY scope, key HAVING last.2 = 0 ORDER BY scope, key"
    ).result_rows
    return [Markup(scope, key, Decimal(last[0]).normalize(), _utc(at), last[2]) for scope, key, last, at in rows]


# --- revenue -----------------------------------------------------------------------------------------

REVENUE_COLUMNS = (
    ("key", "String"),
    ("kind", "LowCardinality(String)"),
    ("customer_id", "String"),
    ("tenant_id", "String"),
    ("period_start", "Date"),
    ("period_end", "Date"),
    ("amount", "Decimal(38, 12)"),
    ("currency", "LowCardinality(String)"),
    ("source", "LowCardinality(String)"),
    ("file", "String"),
    ("line", "UInt32"),
    ("description", "String"),
)


def stored_revenue(store: Store, keys: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The revenue lines already stored under these keys: key → (kind, customer, tenant, start, amount)."""
    found: dict[str, tuple[Any, ...]] = {}
    for begin in range(0, len(keys), 10_000):
        rows = store.query(
            f"SELECT key, any(kind), any(customer_id), any(tenant_id), any(period_start), any(amount) "
            f"FROM {store.database}.{REVENUE_TABLE} WHERE key IN {{keys:Array(String)}} GROUP BY key",
            {"keys": list(keys[begin : begin + 10_000])},
        ).result_rows
        found.update({r[0]: (r[1], r[2], r[3], r[4], Decimal(r[5])) for r in rows})
    return found


def insert_revenue(store: Store, rows: Sequence[Sequence[Any]], token: str) -> None:
    """One insert, one block: the file is stored whole or not at all (a retry with the same token is dropped)."""
    names, types = zip(*REVENUE_COLUMNS, strict=True)
    store.insert_rows(REVENUE_TABLE, rows, names, types, dedup_token=token)


def revenue_by_customer(store: Store, w: TierPlan, *, kind: str, tenant_id: str | None) -> dict[str, Decimal]:
    """Revenue per customer of ``kind`` whose period starts in the window (``tenant_id``: only the lines
    that name that tenant — a tenant's own revenue, and its users' when the file gave their tenant)."""
    params: dict[str, Any] = {"w_start": ts(w.start), "w_end": ts(w.end), "kind": kind}
    tenant = ""
    if tenant_id is not None:
        params["tenant"] = tenant_id
        tenant = " AND tenant_id = {tenant:String}"
    rows = store.query(
        f"SELECT customer_id, sum(amount) FROM (SELECT * FROM {store.database}.{REVENUE_TABLE} FINAL) "
        f"WHERE kind = {{kind:String}} AND toDateTime64(period_start, 6, 'UTC') >= {{w_start:{_T}}} "
        f"AND toDateTime64(period_start, 6, 'UTC') < {{w_end:{_T}}}{tenant} GROUP BY customer_id",
        params,
    ).result_rows
    return {r[0]: Decimal(r[1]) for r in rows}


# --- usage, grouped for statements and margins --------------------------------------------------------


TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
BILLED = ("requests", *TOKEN_KINDS, "cost", "unpriced_requests", "unpriced_tokens")
"""The usage metrics a statement or a margin needs (each a sum; its SQL is :class:`~spanledger.Usage`'s)."""


def markup_of(q: Query, markups: Markups) -> str:
    """The SQL that names each call's markup (``user bob``, ``tenant acme``, ``plan pro``, ``default``,
    ``none``: :attr:`Markup.label`), looked up in the order :data:`~.markups.LOOKUP` defines."""
    branches = []
    for scope, column in LOOKUP:
        keys = markups.keys(scope)
        if keys:
            branches.append(f"{column} IN {{{q.bind(keys)}:Array(String)}}, concat('{scope} ', {column})")
    fallback = "'default'" if markups.keys("default") else "'none'"
    return f"multiIf({', '.join(branches)}, {fallback})" if branches else fallback


def usage_groups(
    store: Store,
    w: TierPlan,
    keys: Sequence[str],
    markups: Markups,
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
) -> list[dict[str, Any]]:
    """Every usage metric per ``keys`` (of ``tenant_id``, ``user_id``, ``provider``, ``model``) and ``markup``
    (the label of the markup that applies to each call) — exact for the window: whole days from the daily
    rollups, hours from the hourly ones, the edges from the raw table; a few rows, since markups are few.

    The daily rollups keep no tags, so plan markups read the raw table alone: grouped by plan tag, the
    tags-keyed hourly rollups measured 25x slower than it for one tenant's month (bench Q12).
    """
    q = Query(store.database, plan_window(w.start, w.end, rollups=False) if markups.by_plan else w)
    q.where_equal("tenant_id", tenant_id)
    q.where_equal("user_id", user_id)
    if "model" in keys:
        hourly, daily = USER_MODEL_ROLLUP, USER_MODEL_DAILY_ROLLUP
    elif "user_id" in keys or user_id is not None or markups.by_user:
        hourly, daily = USER_ROLLUP, USER_DAILY_ROLLUP
    else:
        hourly, daily = TENANT_ROLLUP, TENANT_DAILY_ROLLUP
    markup = markup_of(q, markups)
    union = q.union(
        hourly,
        [*keys, f"{markup} AS markup"],
        ", ".join(f"sum({m}) AS {m}" for m in BILLED),
        ", ".join(f"{RAW_METRICS[m]} AS {m}" for m in BILLED),
        daily=None if markups.by_plan else daily,
    )
    group = ", ".join([*keys, "markup"])
    sql = f"""
SELECT {group}, {", ".join(f"sum({m}) AS {m}" for m in BILLED)}
FROM ({union})
GROUP BY {group}
HAVING requests > 0"""
    return fetch(store, sql, q.params)


def unpriced_groups(
    store: Store,
    w: TierPlan,
    keys: Sequence[str],
    markups: Markups,
    models: Sequence[tuple[str, str]],
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
) -> list[dict[str, Any]]:
    """Calls and tokens of the *unpriced* calls of some (provider, model)s per ``keys`` and ``markup``, from
    the raw table: for the lines whose model has priced and unpriced calls, which the rollups count apart
    but whose tokens they do not split."""
    q = Query(store.database, w)
    q.where_equal("tenant_id", tenant_id)
    q.where_equal("user_id", user_id)
    q.filters.append(f"(provider, model) IN {{{q.bind(list(models))}:Array(Tuple(String, String))}}")
    markup = markup_of(q, markups)
    group = ", ".join([*keys, "markup"])
    tokens = ", ".join(f"{RAW_METRICS[k]} AS {k}" for k in TOKEN_KINDS)
    sql = f"""
SELECT {", ".join(keys)}, {markup} AS markup, count() AS requests, {tokens}
FROM {store.database}.{RAW_TABLE} AS r
WHERE toDate(timestamp) >= toDate32({{w_start:{_T}}}) AND toDate(timestamp) <= toDate32({{w_end:{_T}}})
  AND timestamp >= {{w_start:{_T}}} AND timestamp < {{w_end:{_T}}} AND r.cost IS NULL{q.extra()}
GROUP BY {group}"""
    return fetch(store, sql, q.params)


# --- repricing ---------------------------------------------------------------------------------------

REPRICE_COLUMNS = (
    "trace_id, span_id, timestamp, tenant_id, user_id, provider, model, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, reasoning_tokens, is_error, flags, cost, input_cost, output_cost"
)
"""What a repricing reads of each call, in this order."""


def repriced_days(store: Store, start: datetime, end: datetime, provider: str | None, model: str | None) -> list[date]:
    """The UTC days of the window with calls to look at."""
    where, params = _reprice_where(start, end, provider, model)
    rows = store.query(
        f"SELECT DISTINCT toDate(timestamp) AS d FROM {store.database}.{RAW_TABLE} WHERE {where} ORDER BY d", params
    ).result_rows
    return [r[0] for r in rows]


def calls_of_day(
    store: Store, day: date, start: datetime, end: datetime, provider: str | None, model: str | None
) -> Iterator[tuple[Any, ...]]:
    """The stored calls of one UTC day of the window, with what pricing needs (:data:`REPRICE_COLUMNS`)."""
    where, params = _reprice_where(start, end, provider, model)
    params["day"] = day
    result = store.query(
        f"SELECT {REPRICE_COLUMNS} FROM {store.database}.{RAW_TABLE} WHERE toDate(timestamp) = {{day:Date}} AND {where} "
        "ORDER BY provider, model, timestamp",  # the pricer resolves a model's price once per minute: in a row
        params,
    )
    yield from result.result_rows


def _reprice_where(
    start: datetime, end: datetime, provider: str | None, model: str | None
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"w_start": ts(start), "w_end": ts(end)}
    where = (
        f"toDate(timestamp) >= toDate32({{w_start:{_T}}}) AND toDate(timestamp) <= toDate32({{w_end:{_T}}}) "
        f"AND timestamp >= {{w_start:{_T}}} AND timestamp < {{w_end:{_T}}}"
    )
    if provider is not None:
        params["provider"] = provider
        where += " AND provider = {provider:String}"
    if model is not None:
        params["model"] = model
        where += " AND model = {model:String}"
    return where, params


NEW_PRICE = (
    ("trace_id", "UInt128"),
    ("span_id", "UInt64"),
    ("hit", "UInt8"),
    ("cost", "Nullable(Decimal(18, 12))"),
    ("input_cost", "Nullable(Decimal(18, 12))"),
    ("output_cost", "Nullable(Decimal(18, 12))"),
    ("price_source", "LowCardinality(String)"),
    ("price_model", "LowCardinality(String)"),
    ("flags", "Array(LowCardinality(String))"),
)
_REWRITTEN = ("cost", "input_cost", "output_cost", "price_source", "price_model", "flags")


def create_prices_table(store: Store) -> str:
    """A ``Join`` table, keyed by (trace, span), for the new prices of some calls (:data:`NEW_PRICE` columns)."""
    name = f"billing_reprice_{secrets.token_hex(4)}"
    columns = ", ".join(f"{column} {ctype}" for column, ctype in NEW_PRICE)
    store.command(f"CREATE TABLE {store.database}.{name} ({columns}) ENGINE = Join(ANY, LEFT, trace_id, span_id)")
    return name


def add_prices(store: Store, table: str, rows: Sequence[Sequence[Any]]) -> None:
    names, types = zip(*NEW_PRICE, strict=True)
    for begin in range(0, len(rows), 50_000):
        store.insert_rows(table, rows[begin : begin + 50_000], names, types)


def apply_prices(store: Store, table: str, partition: int, start: datetime, end: datetime) -> int:
    """Rewrite the calls of one month partition that ``table`` holds new prices for: one mutation, waited for
    (``mutations_sync = 2``), that touches only them; returns how many distinct calls now hold those prices.

    Mutations fire no materialized view: the caller rebuilds the rollups.
    """
    db = store.database
    side = f"{db}.{table}"
    where, params = _reprice_where(start, end, None, None)
    hit = f"joinGet('{side}', 'hit', trace_id, span_id) = 1"
    sets = ", ".join(f"{c} = joinGet('{side}', '{c}', trace_id, span_id)" for c in _REWRITTEN)
    store.command(
        f"ALTER TABLE {db}.{RAW_TABLE} UPDATE {sets} IN PARTITION ID '{int(partition)}' WHERE {hit} AND {where}",
        params,
        settings={"mutations_sync": 2},
    )
    same = " AND ".join(f"{c} = joinGet('{side}', '{c}', trace_id, span_id)" for c in _REWRITTEN)
    found = store.query(
        f"SELECT uniqExact(trace_id, span_id) FROM {db}.{RAW_TABLE} "
        f"WHERE toYYYYMM(timestamp) = {int(partition)} AND {hit} AND {where} AND {same}",
        params,
    ).result_rows
    return int(found[0][0])


def drop_prices_table(store: Store, table: str) -> None:
    store.command(f"DROP TABLE IF EXISTS {store.database}.{table} SYNC")


def log_reprice(store: Store, values: dict[str, Any]) -> None:
    """Keep a line about a repricing (what, when, how much) in ``billing_reprices``."""
    types = {
        "id": "String",
        "started_at": _T,
        "window_start": _T,
        "window_end": _T,
        "provider": "String",
        "model": "String",
        "price_file": "String",
        "calls": "UInt64",
        "changed": "UInt64",
        "newly_priced": "UInt64",
        "kept": "UInt64",
        "cost_before": "Decimal(38, 12)",
        "cost_after": "Decimal(38, 12)",
    }
    store.insert_rows(REPRICES_TABLE, [[values[k] for k in types]], list(types), list(types.values()))


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None
