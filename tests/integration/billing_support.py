"""Shared by the billing tests: a seeded ledger over three weeks of November 2026, and an oracle that prices
every stored call with the markups by hand (from the raw table, outside the query layer)."""

from __future__ import annotations

import decimal
import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from spanledger import CostExporter, Store, testing
from spanledger._store.schema import DAILY_KEYS, RAW_TABLE, ROLLUP_KEYS, ROLLUP_TABLES

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
TENANTS = ("acme", "globex", "initech")
USERS = ("ann", "bob", "cem", "dia", "eli")
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("acme-ai", "house-model-1"),  # no price anywhere: unpriced
)
_ids = itertools.count(1)


def call(
    when: datetime,
    *,
    user: str | None,
    tenant: str | None,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    input_tokens: int = 1200,
    cache_read: int = 1024,
    output_tokens: int = 30,
    plan: str | None = None,
) -> ReadableSpan:
    n = next(_ids)
    return testing.llm_span(
        n,
        at=when,
        user=user,
        tenant=tenant,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        cache_read=cache_read,
        output_tokens=output_tokens,
        tags={"plan": plan} if plan else None,
        trace_id=0xB111_0000_0000 + n,
        span_id=0xB000_0000 + n,
    )


def traffic(count: int = 400, *, seed: int = 14, days: int = 21) -> list[ReadableSpan]:
    """``count`` calls over ``days`` days from :data:`START`, at random microseconds, in three tenants
    (and some with no tenant or no user), four models (one unpriced), plans pro / free / none."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        when = START + timedelta(microseconds=rng.randrange(days * 86_400 * 10**6))
        provider, model = rng.choice(MODELS)
        inp = rng.randrange(10, 9000)
        out.append(
            call(
                when,
                user=rng.choice((*USERS, None)),
                tenant=rng.choice((*TENANTS, TENANTS[0], None)),
                provider=provider,
                model=model,
                input_tokens=inp,
                cache_read=rng.choice((0, 0, inp // 3)),
                output_tokens=rng.randrange(1, 2000),
                plan=rng.choice(("pro", "free", None)),
            )
        )
    return out


def store_calls(store: Store, spans: Sequence[ReadableSpan], tmp_path: Path, **options: Any) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / f"spool-{next(_ids)}", **options)
    exporter.export(list(spans))
    assert exporter.force_flush(60_000)
    exporter.shutdown()


def raw_calls(store: Store, start: datetime, end: datetime, **where: str) -> list[dict[str, Any]]:
    """Every stored call of ``[start, end)`` (tenant, user, plan tag, tokens, cost), straight from llm_calls."""
    params: dict[str, Any] = {"s": start.strftime("%Y-%m-%d %H:%M:%S.%f"), "e": end.strftime("%Y-%m-%d %H:%M:%S.%f")}
    extra = "".join(f" AND {k} = {{{k}:String}}" for k in where)
    params.update(where)
    result = store.query(
        f"SELECT tenant_id, user_id, tags['plan'] AS plan, provider, model, input_tokens, output_tokens, "
        f"cache_read_tokens, cost FROM {store.database}.{RAW_TABLE} "
        f"WHERE timestamp >= {{s:DateTime64(6, 'UTC')}} AND timestamp < {{e:DateTime64(6, 'UTC')}}{extra}",
        params,
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def priced_by_hand(calls: Sequence[dict[str, Any]], markups: dict[tuple[str, str], Decimal]) -> Decimal:
    """The customer's price of ``calls``, one call at a time: cost × (100 + its markup) / 100 — the markup
    being the call's user's, else its tenant's, else its plan's, else the default (``("default", "")``)."""
    with decimal.localcontext(decimal.Context(prec=100, traps=[decimal.Inexact])):
        total = Decimal(0)
        for c in calls:
            if c["cost"] is None:
                continue
            percent = next(
                (
                    markups[k]
                    for k in (("user", c["user_id"]), ("tenant", c["tenant_id"]), ("plan", c["plan"]), ("default", ""))
                    if k in markups
                ),
                Decimal(0),
            )
            total += c["cost"] * (100 + percent) / 100
        return total


def rollups_match_raw(store: Store) -> bool:
    """Every rollup, merged, equals a GROUP BY over llm_calls (requests, cost, tokens, unpriced calls)."""
    db = store.database
    for table in ROLLUP_TABLES:
        hourly = table in ROLLUP_KEYS
        keys = ROLLUP_KEYS[table] if hourly else DAILY_KEYS[table]
        time_col = "hour" if hourly else "day"
        raw_time = "toStartOfHour(timestamp)" if hourly else "toDate(timestamp)"
        group = ", ".join([time_col, *keys])
        rolled = store.query(
            f"SELECT {group}, sum(requests), sum(cost), sum(input_tokens), sum(unpriced_requests) FROM {db}.{table} "
            f"GROUP BY {group} HAVING sum(requests) > 0 ORDER BY {group}"
        ).result_rows
        raw = store.query(
            f"SELECT {raw_time} AS {time_col}, {', '.join(keys)}, count(), sum(ifNull(cost, toDecimal64(0, 12))), "
            f"sum(input_tokens), countIf(cost IS NULL) FROM {db}.{RAW_TABLE} GROUP BY {group} ORDER BY {group}"
        ).result_rows
        if [tuple(r) for r in rolled] != [tuple(r) for r in raw]:
            return False
    return True
