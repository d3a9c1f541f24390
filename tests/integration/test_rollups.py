"""The rollups answer exactly what a plain GROUP BY over ``llm_calls`` answers, for any window.

A few thousand seeded random calls go through the real exporter in several inserts, with merges of
the rollup tables stopped, so every answer is first computed from unmerged parts; the last test forces
the merges (``OPTIMIZE … FINAL``) and asks again.
"""

from __future__ import annotations

import os
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from spanledger import CostExporter, Ledger, Store, Usage, testing
from spanledger._store.schema import DAILY_KEYS, ROLLUP_TABLES
from spanledger._store.schema import ROLLUP_KEYS as HOURLY_KEYS

pytestmark = pytest.mark.integration

SEED = 20260601
BASE = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 5
CALLS = 3000
BATCHES = 6
ROLLUPS = ROLLUP_TABLES
# what one row of each rollup stands for, computed from the raw table
ROLLUP_KEYS = {
    **{t: f"toStartOfHour(timestamp), {', '.join(k)}, mapSort(tags)" for t, k in HOURLY_KEYS.items()},
    **{t: f"toDate(timestamp), {', '.join(k)}" for t, k in DAILY_KEYS.items()},
}
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered: priced call by call
    ("google", "gemini-2.5-flash"),
    ("self-hosted", "llama-internal-70b"),  # unpriced
]
TENANTS = [f"tenant-{i}" for i in range(5)]
RESOURCE = Resource({"service.name": "rollups"})
USERS = [f"user-{i:02d}" for i in range(40)] + ["Ada.Lovelace", "ADA"]


def random_span(rng: random.Random, index: int, timestamps: list[datetime], busy: list[int]) -> ReadableSpan:
    roll = rng.random()
    if roll < 0.05:
        when = BASE + timedelta(hours=rng.randrange(DAYS * 24))  # exactly on an hour
    elif roll < 0.08 and timestamps:
        when = rng.choice(timestamps)  # the same instant as another call
    else:  # traffic comes in bursts: a random microsecond of one of the busy minutes
        when = BASE + timedelta(minutes=rng.choice(busy), microseconds=rng.randrange(60 * 10**6))
    timestamps.append(when)
    provider, model = rng.choice(MODELS)
    input_tokens = rng.choice([rng.randrange(0, 5000), rng.randrange(0, 300_000)])
    cache_read = rng.choice([0, rng.randrange(0, input_tokens + 1)])
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": rng.randrange(0, 4000),
        "gen_ai.usage.cache_read.input_tokens": cache_read,
        "gen_ai.usage.reasoning.output_tokens": rng.choice([0, rng.randrange(0, 500)]),
    }
    if rng.random() < 0.9:
        user = rng.choice(USERS)
        attributes["enduser.id"] = user
        home = TENANTS[USERS.index(user) % len(TENANTS)]
        attributes["tenant.id"] = home if rng.random() < 0.9 else rng.choice(TENANTS)
    elif rng.random() < 0.5:
        attributes["tenant.id"] = rng.choice(TENANTS)
    if rng.random() < 0.8:
        attributes["spanledger.tag.plan"] = rng.choice(["free", "pro", "enterprise"])
    if rng.random() < 0.4:
        attributes["spanledger.tag.feature"] = rng.choice(["chat", "search"])
    return testing.span(
        index,
        name=f"chat {model}",
        at=when,
        trace_id=0x7000 + rng.randrange(900),  # several calls per trace
        resource=RESOURCE,
        attributes=attributes,
        error=rng.random() < 0.05,
        duration=timedelta(microseconds=rng.randrange(0, 30 * 10**6)),
    )


@dataclass
class Data:
    ledger: Ledger
    store: Store
    windows: list[tuple[datetime | None, datetime | None]]
    timestamps: list[datetime]

    @property
    def db(self) -> str:
        return self.store.database


def make_windows(rng: random.Random, timestamps: list[datetime]) -> list[tuple[datetime | None, datetime | None]]:
    us = timedelta(microseconds=1)
    span_us = (DAYS * 86_400 + 4 * 3600) * 10**6
    windows: list[tuple[datetime | None, datetime | None]] = [
        (None, None),
        (BASE, BASE + timedelta(days=DAYS)),
        (BASE + timedelta(hours=5), BASE + timedelta(hours=5)),  # empty
        (BASE + timedelta(hours=30, minutes=10), BASE + timedelta(hours=30, minutes=50)),  # inside one hour
        (BASE + timedelta(hours=30, minutes=10), BASE + timedelta(hours=31, minutes=5)),  # across one boundary
        (BASE + timedelta(hours=7), BASE + timedelta(days=2, hours=3, seconds=1)),  # aligned start
        (BASE + timedelta(hours=7, microseconds=1), BASE + timedelta(days=2, hours=3)),  # aligned end
        (None, BASE + timedelta(days=2, minutes=17)),
        (BASE + timedelta(days=3, hours=11, minutes=59, seconds=59), None),
    ]
    for _ in range(3):  # bounds exactly on calls: the start is included, the end excluded
        a, b = sorted(rng.sample(timestamps, 2))
        windows.append((a, b))
        windows.append((a + us, b + us))
    lengths = [10 * 60 * 10**6, 3600 * 10**6, 3 * 3600 * 10**6, 2 * 86_400 * 10**6, 6 * 86_400 * 10**6]
    for limit in lengths:
        start = BASE - timedelta(hours=2) + timedelta(microseconds=rng.randrange(span_us))
        windows.append((start, start + timedelta(microseconds=rng.randrange(1, limit))))
    return windows


@pytest.fixture(scope="module")
def data(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    rng = random.Random(SEED)
    timestamps: list[datetime] = []
    busy = rng.sample(range(DAYS * 24 * 60), 400)
    spans = [random_span(rng, i, timestamps, busy) for i in range(CALLS)]
    rng.shuffle(spans)  # each insert holds calls from every hour, so rollup keys repeat across parts
    database = f"t_{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("SPANLEDGER_")]:
            env.delenv(name)
        store = Store(f"chdb://{chdb_dir}?database={database}")
        for table in ROLLUPS:
            store.command(f"SYSTEM STOP MERGES {database}.{table}")
        exporter = CostExporter(store, spool_dir=tmp_path_factory.mktemp("spool"), fsync=False)
        try:
            size = CALLS // BATCHES
            for begin in range(0, CALLS, size):
                assert exporter.export(spans[begin : begin + size]) is SpanExportResult.SUCCESS
                assert exporter.force_flush()
        finally:
            exporter.shutdown()
        assert exporter.stats["stored"] == CALLS
    yield Data(Ledger(store), store, make_windows(rng, timestamps), timestamps)
    store.command(f"DROP DATABASE IF EXISTS {database} SYNC")


# --- the reference: plain SQL over the raw table ----------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bound(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def reference(
    data: Data,
    window: tuple[datetime | None, datetime | None],
    group_by: list[str],
    *,
    user_id: str | None = None,
    tenant_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Totals per ``group_by`` key over the raw calls in ``[start, end)``."""
    where = ["1"]
    params: dict[str, Any] = {}
    if window[0] is not None:
        where.append("timestamp >= toDateTime64({start:String}, 6, 'UTC')")
        params["start"] = _bound(window[0])
    if window[1] is not None:
        where.append("timestamp < toDateTime64({end:String}, 6, 'UTC')")
        params["end"] = _bound(window[1])
    if user_id is not None:
        where.append("user_id = {user:String}")
        params["user"] = user_id
    if tenant_id is not None:
        where.append("tenant_id = {tenant:String}")
        params["tenant"] = tenant_id
    for i, (key, value) in enumerate((tags or {}).items()):
        where.append(f"tags[{{k{i}:String}}] = {{v{i}:String}}")
        params[f"k{i}"], params[f"v{i}"] = key, value
    groups = ", ".join(group_by)
    sql = f"""
SELECT {groups},
    count() AS requests, sum(is_error) AS errors,
    sum(input_tokens) AS input, sum(output_tokens) AS output,
    sum(cache_read_tokens) AS cache_read, sum(cache_write_tokens) AS cache_write,
    sum(reasoning_tokens) AS reasoning, sum(cost) AS priced_cost,
    countIf(cost IS NULL) AS unpriced, sumIf(input_tokens + output_tokens, cost IS NULL) AS unpriced_tokens,
    sum(duration_us) AS latency, uniqExact(trace_id) AS traces,
    min(timestamp) AS first, max(timestamp) AS last,
    uniqExactIf(user_id, user_id != '') AS active_users,
    uniqExactIf((tenant_id, user_id), user_id != '') AS active_pairs
FROM {data.db}.llm_calls
WHERE {" AND ".join(where)}
GROUP BY {groups}"""
    result = data.store.query(sql, params)
    rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    return {tuple(r[g.split(" AS ")[-1]] for g in group_by): r for r in rows}


def expected_usage(r: Mapping[str, Any]) -> tuple[Any, ...]:
    requests = int(r["requests"])
    return (
        requests,
        int(r["errors"]),
        int(r["input"]),
        int(r["output"]),
        int(r["cache_read"]),
        int(r["cache_write"]),
        int(r["reasoning"]),
        int(r["input"]) + int(r["output"]),
        Decimal(r["priced_cost"] or 0),
        int(r["unpriced"]),
        int(r["unpriced_tokens"]),
        int(r["latency"]) / requests / 1000,
        int(r["traces"]),
        _aware(r["first"]),
        _aware(r["last"]),
    )


def actual_usage(u: Usage) -> tuple[Any, ...]:
    return (
        u.requests,
        u.errors,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        u.total_tokens,
        u.cost,
        u.unpriced_requests,
        u.unpriced_tokens,
        u.avg_latency_ms,
        u.traces,
        u.first_seen,
        u.last_seen,
    )


# --- the checks -------------------------------------------------------------------------------------------


def check_users(
    data: Data,
    window: tuple[datetime | None, datetime | None],
    *,
    tenant_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    search: str | None = None,
) -> int:
    page = data.ledger.users(
        start=window[0],
        end=window[1],
        limit=1000,
        tenant_id=tenant_id,
        tags=tags,
        search=search,
        include_unattributed=True,
    )
    ref = reference(data, window, ["tenant_id", "user_id"], tenant_id=tenant_id, tags=tags)
    per_model = reference(data, window, ["tenant_id", "user_id", "model"], tenant_id=tenant_id, tags=tags)
    if search:
        ref = {k: v for k, v in ref.items() if search.lower() in k[1].lower()}
    models: dict[tuple[str, str], list[tuple[Decimal, int, str]]] = defaultdict(list)
    answered: dict[tuple[str, str], int] = defaultdict(int)  # a model counts when it answered a call
    for (tenant, user, model), r in per_model.items():
        models[(tenant, user)].append((Decimal(r["priced_cost"] or 0), int(r["requests"]), model))
        answered[(tenant, user)] += int(r["requests"]) > int(r["errors"])
    got = {(r.tenant_id, r.user_id): r for r in page.rows}
    context = f"window={window} tenant={tenant_id} tags={tags} search={search}"
    assert page.total == len(ref) == len(got), context
    assert set(got) == set(ref), context
    for key, row in got.items():
        assert actual_usage(row.usage) == expected_usage(ref[key]), f"{key} {context}"
        assert row.distinct_models == answered[key], f"{key} {context}"
        assert row.top_model == max(models[key])[2], f"{key} {context}"
    return len(got)


def check_tenants(data: Data, window: tuple[datetime | None, datetime | None], **filters: Any) -> None:
    page = data.ledger.tenants(start=window[0], end=window[1], limit=1000, include_no_tenant=True, **filters)
    ref = reference(data, window, ["tenant_id"], tags=filters.get("tags"))
    got = {t.tenant_id: t for t in page.rows}
    assert page.total == len(got) and set(got) == {k[0] for k in ref}, window
    for tenant, row in got.items():
        assert actual_usage(row.usage) == expected_usage(ref[(tenant,)]), (tenant, window)
        assert row.active_users == ref[(tenant,)]["active_users"], (tenant, window)


def check_totals(data: Data, window: tuple[datetime | None, datetime | None], **filters: Any) -> None:
    t = data.ledger.totals(start=window[0], end=window[1], **filters)
    ref = reference(data, window, ["tenant_id"], **filters)
    rows = [expected_usage(r) for r in ref.values()]
    assert t.tenants == sum(1 for (tenant,) in ref if tenant), window  # the calls without a tenant are none
    assert t.usage.traces is None
    got = actual_usage(t.usage)
    # every summed field, in expected_usage's order (the average latency and traces are not sums)
    for i in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10):
        assert got[i] == sum(r[i] for r in rows), (i, window)
    assert got[8] == sum((r[8] for r in rows), Decimal(0)), window
    pairs = reference(data, window, ["tenant_id", "user_id"], **filters)
    assert t.active_users == sum(1 for _t, u in pairs if u), window  # exact pairs, not summed estimates
    assert got[13] == min((r[13] for r in rows), default=None), window
    assert got[14] == max((r[14] for r in rows), default=None), window


def check_overview(data: Data, window: tuple[datetime | None, datetime | None], **filters: Any) -> None:
    start, end = window
    ov = data.ledger.overview(start=start, end=end, top=7, **filters)
    ref = reference(data, window, ["tenant_id", "user_id"], **filters)
    cost = {k: Decimal(r["priced_cost"] or 0) for k, r in ref.items()}
    ranked = sorted((k for k in ref if k[1]), key=lambda k: (-cost[k], k))[:7]  # users: attributed ids
    assert [(u.tenant_id, u.user_id, u.cost, u.requests, u.unpriced_requests) for u in ov.top_users] == [
        (*k, cost[k], ref[k]["requests"], ref[k]["unpriced"]) for k in ranked
    ], window
    assert ov.totals.active_users == sum(1 for _t, u in ref if u), window  # exact, not uniq
    nobody = [k for k in ref if not k[1]]
    assert ov.unattributed_cost == sum((cost[k] for k in nobody), Decimal(0)), window
    assert ov.unattributed_requests == sum(ref[k]["requests"] for k in nobody), window
    totals = data.ledger.totals(start=start, end=end, **filters)
    assert (ov.totals.usage, ov.totals.tenants) == (totals.usage, totals.tenants), window
    named = data.ledger.tenants(start=start, end=end, limit=7, traces=False, **filters)
    assert ov.top_tenants == named.rows and ov.totals.tenants == named.total
    assert ov.no_tenant_cost == sum((cost[k] for k in ref if not k[0]), Decimal(0)), window
    assert ov.daily == data.ledger.daily(start=start, end=end, **filters)


def check_daily(
    data: Data, window: tuple[datetime | None, datetime | None], per: str | None = None, **filters: Any
) -> None:
    days = data.ledger.daily(start=window[0], end=window[1], per=per, **filters)  # type: ignore[arg-type]
    group = ["toDate(timestamp) AS day"] + ([f"{per}_id"] if per else [])
    ref = reference(data, window, group, **filters)
    got = {(d.day, d.key) if per else (d.day,): d for d in days}
    assert len(got) == len(days) and set(got) == set(ref), (window, per)
    assert [d.day for d in days] == sorted(d.day for d in days)
    for key, row in got.items():
        r = ref[key]
        # a day's active users are (tenant, user) pairs; per user, that user's id
        assert (row.cost, row.requests, row.active_users) == (
            Decimal(r["priced_cost"] or 0),
            r["requests"],
            r["active_users"] if per == "user" else r["active_pairs"],
        ), (key, window, per)


def check_user(data: Data, window: tuple[datetime | None, datetime | None], user_id: str) -> None:
    detail = data.ledger.user(user_id, start=window[0], end=window[1])
    ref = reference(data, window, ["user_id"], user_id=user_id)
    tenants = reference(data, window, ["tenant_id"], user_id=user_id)
    if not ref:
        assert (detail.summary, detail.models, detail.daily, detail.calls) == (None, [], [], [])
        return
    assert detail.summary is not None
    assert actual_usage(detail.summary.usage) == expected_usage(ref[(user_id,)]), (user_id, window)
    assert detail.summary.tenant_ids == tuple(sorted(k[0] for k in tenants))
    models = reference(data, window, ["provider", "model"], user_id=user_id)
    assert {(m.provider, m.model): actual_usage(m.usage) for m in detail.models} == {
        k: expected_usage(r) for k, r in models.items()
    }
    costs = [(m.usage.cost, m.usage.requests) for m in detail.models]
    assert costs == sorted(costs, reverse=True)
    daily = reference(data, window, ["toDate(timestamp) AS day"], user_id=user_id)
    assert [(d.day, d.cost, d.requests, d.active_users) for d in detail.daily] == [
        (day, Decimal(r["priced_cost"] or 0), r["requests"], 1 if user_id else 0) for (day,), r in sorted(daily.items())
    ]
    where = ["user_id = {u:String}"]
    params: dict[str, Any] = {"u": user_id}
    if window[0] is not None:
        where.append("timestamp >= toDateTime64({s:String}, 6, 'UTC')")
        params["s"] = _bound(window[0])
    if window[1] is not None:
        where.append("timestamp < toDateTime64({e:String}, 6, 'UTC')")
        params["e"] = _bound(window[1])
    newest = data.store.query(
        f"SELECT span_id FROM {data.db}.llm_calls WHERE {' AND '.join(where)} "
        "ORDER BY timestamp DESC, span_id DESC LIMIT 50",
        params,
    ).result_rows
    assert [c.span_id for c in detail.calls] == [row[0] for row in newest]


# --- the tests --------------------------------------------------------------------------------------------


def test_rollups_hold_unmerged_parts(data: Data) -> None:
    """The premise of the next tests: the same rollup key appears in several parts, not yet merged."""
    for table in ROLLUPS:
        stored = data.store.query(f"SELECT count() FROM {data.db}.{table}").result_rows[0][0]
        distinct = distinct_keys(data, table)
        assert stored > distinct, table


def test_users_match_a_group_by_for_every_window(data: Data) -> None:
    seen = [check_users(data, window) for window in data.windows]
    assert seen[0] > 150  # the open window holds every (tenant, user) pair
    assert 0 in seen and any(0 < n < 50 for n in seen)  # empty and small windows were asked too


def test_tenants_match_a_group_by_for_every_window(data: Data) -> None:
    for window in data.windows:
        check_tenants(data, window)


def test_totals_match_a_group_by_for_every_window(data: Data) -> None:
    for window in data.windows:
        check_totals(data, window)


def test_overview_matches_a_group_by_for_every_window(data: Data) -> None:
    for window in data.windows[::2]:
        check_overview(data, window)


def test_daily_matches_a_group_by_for_every_window(data: Data) -> None:
    for i, window in enumerate(data.windows):
        check_daily(data, window, per=(None, "user", "tenant")[i % 3])


def test_user_detail_matches_a_group_by(data: Data) -> None:
    rng = random.Random(SEED + 1)
    for window in data.windows[::3]:
        check_user(data, window, rng.choice([*USERS, ""]))


@pytest.mark.parametrize(
    "filters",
    [
        {"tags": {"plan": "pro"}},
        {"tags": {"plan": "free", "feature": "search"}},
        {"tenant_id": "tenant-2"},
        {"tenant_id": "tenant-3", "tags": {"plan": "enterprise"}},
        {"search": "ada"},
        {"search": "-1"},
    ],
)
def test_filters_match_a_group_by(data: Data, filters: dict[str, Any]) -> None:
    for window in data.windows[::7]:
        check_users(data, window, **filters)
    tags = filters.get("tags")
    for window in data.windows[3::7]:
        check_tenants(data, window, tags=tags)
        check_daily(data, window, tags=tags, tenant_id=filters.get("tenant_id"))
        if "search" not in filters:
            check_totals(data, window, tags=tags, tenant_id=filters.get("tenant_id"))
            check_overview(data, window, tags=tags, tenant_id=filters.get("tenant_id"))


def distinct_keys(data: Data, table: str) -> int:
    sql = f"SELECT count() FROM (SELECT DISTINCT {ROLLUP_KEYS[table]} FROM {data.db}.llm_calls)"
    return int(data.store.query(sql).result_rows[0][0])


def test_answers_are_unchanged_after_forced_merges(data: Data) -> None:
    for table in ROLLUPS:
        data.store.command(f"SYSTEM START MERGES {data.db}.{table}")
        data.store.command(f"OPTIMIZE TABLE {data.db}.{table} FINAL")
        stored = data.store.query(f"SELECT count() FROM {data.db}.{table}").result_rows[0][0]
        assert stored == distinct_keys(data, table), table
    data.store.command(f"OPTIMIZE TABLE {data.db}.llm_calls FINAL")
    for i, window in enumerate(data.windows[1::3]):
        check_users(data, window)
        check_tenants(data, window)
        check_daily(data, window, per=(None, "user", "tenant")[i % 3])
    check_users(data, (None, None), tags={"plan": "pro"})
    check_user(data, (None, None), USERS[0])
    check_user(data, (None, None), "")
