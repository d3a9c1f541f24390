"""``Ledger`` queries on real chDB: sorting, paging, search, validation, injection, user detail."""

from __future__ import annotations

import dataclasses
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from spanledger import UNATTRIBUTED_LABEL, Bucket, ConfigError, CostExporter, Ledger, Store, UserRow, testing
from spanledger._store.schema import RAW_COLUMNS

pytestmark = pytest.mark.integration

DAY1 = datetime(2026, 6, 10, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)
MINI = Decimal("0.0001212")  # gpt-4o-mini: 1200 input of which 1024 cached, 30 output
_ids = itertools.count(1)


def llm_span(
    when: datetime,
    *,
    user: str | None,
    tenant: str,
    model: str = "gpt-4o-mini",
    input_tokens: int = 1200,
    cache_read: int = 1024,
    output_tokens: int = 30,
    tags: dict[str, str] | None = None,
    error: bool = False,
) -> ReadableSpan:
    n = next(_ids)
    return testing.llm_span(
        n,
        at=when,
        user=user,
        tenant=tenant,
        model=model,
        input_tokens=input_tokens,
        cache_read=cache_read,
        output_tokens=output_tokens,
        tags=tags,
        error=error,
        trace_id=0x5EED_0000 + n,
        span_id=0x100 + n,
    )


def dataset() -> list[ReadableSpan]:
    pro, free = {"plan": "pro"}, {"plan": "free"}
    spans = [
        # alice: the biggest spender (0.035 + 0.07 + MINI)
        llm_span(
            DAY1 + timedelta(hours=9),
            user="alice",
            tenant="acme",
            model="gpt-4o",
            input_tokens=10_000,
            cache_read=0,
            output_tokens=1000,
            tags=pro,
        ),
        llm_span(
            DAY2 + timedelta(hours=10, minutes=15),
            user="alice",
            tenant="acme",
            model="gpt-4o",
            input_tokens=20_000,
            cache_read=0,
            output_tokens=2000,
            tags=pro,
        ),
        llm_span(DAY2 + timedelta(hours=11), user="alice", tenant="acme", tags=pro),
        # Carol: the most tokens, all on a model no price table knows
        llm_span(
            DAY1 + timedelta(hours=12),
            user="Carol",
            tenant="globex",
            model="acme-internal-llm",
            input_tokens=500_000,
            cache_read=0,
            output_tokens=1000,
        ),
        # dave: the most recent, one error
        llm_span(DAY3 + timedelta(hours=23), user="dave", tenant="globex"),
        llm_span(DAY3 + timedelta(hours=23, minutes=30), user="dave", tenant="globex", error=True),
        # no user at all
        llm_span(DAY2 + timedelta(hours=1), user=None, tenant="acme"),
        llm_span(DAY2 + timedelta(hours=2), user=None, tenant="acme"),
        # a user id with an underscore, for search
        llm_span(
            DAY2 + timedelta(hours=3),
            user="al_x",
            tenant="initech",
            model="gpt-4o",
            input_tokens=100,
            cache_read=0,
            output_tokens=0,
        ),
    ]
    # bob: the most requests, one a minute from midnight on day 1
    spans += [llm_span(DAY1 + timedelta(minutes=i), user="bob", tenant="acme", tags=free) for i in range(60)]
    return spans


def ingest(store: Store, spool_dir: Path, *batches: list[ReadableSpan]) -> None:
    """Each batch through the real exporter, flushed as its own insert."""
    exporter = CostExporter(store, spool_dir=spool_dir, fsync=False)
    try:
        for batch in batches:
            assert exporter.export(batch) is SpanExportResult.SUCCESS
            assert exporter.force_flush()
    finally:
        exporter.shutdown()
    assert exporter.stats["stored"] == sum(len(b) for b in batches)


@pytest.fixture(scope="module")
def ledger(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """One database with the dataset for the whole module: these tests only read."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("SPANLEDGER_")]:
            env.delenv(name)
        store = Store(f"chdb://{chdb_dir}?database={database}")
        spans = dataset()
        assert len(spans) == 69
        ingest(store, tmp_path_factory.mktemp("spool"), spans[:20], spans[20:])
    yield Ledger(store)
    store.command(f"DROP DATABASE IF EXISTS {database} SYNC")


ALL_USERS = {
    ("acme", "alice"),
    ("acme", "bob"),
    ("acme", ""),
    ("globex", "Carol"),
    ("globex", "dave"),
    ("initech", "al_x"),
}


def keys(rows: list[UserRow]) -> list[tuple[str, str]]:
    return [(r.tenant_id, r.user_id) for r in rows]


def test_totals_per_user(ledger: Ledger) -> None:
    page = ledger.users(limit=100)
    # the unattributed calls are no user: reported beside the ranking, never a row of it, never counted
    assert page.total == 5 and set(keys(page.rows)) == ALL_USERS - {("acme", "")}
    assert page.unnamed == Bucket(MINI * 2, 2, 0, 0)
    assert set(keys(ledger.users(limit=100, include_unattributed=True).rows)) == ALL_USERS
    by_user = {r.user_id: r for r in page.rows}
    alice = by_user["alice"].usage
    assert alice.cost == Decimal("0.035") + Decimal("0.07") + MINI
    assert (alice.requests, alice.input_tokens, alice.output_tokens, alice.cache_read_tokens) == (3, 31_200, 3030, 1024)
    assert alice.total_tokens == 34_230
    assert (by_user["alice"].distinct_models, by_user["alice"].top_model) == (2, "gpt-4o")
    bob = by_user["bob"].usage
    assert (bob.requests, bob.cost) == (60, MINI * 60)
    assert (bob.first_seen, bob.last_seen) == (DAY1, DAY1 + timedelta(minutes=59))
    carol = by_user["Carol"].usage
    assert (carol.cost, carol.unpriced_requests, carol.unpriced_tokens) == (Decimal(0), 1, 501_000)
    assert (by_user["dave"].usage.errors, by_user["dave"].usage.requests) == (1, 2)
    assert by_user["alice"].usage.avg_latency_ms == 250.0


def test_unattributed_calls_are_listed_under_the_empty_user(ledger: Ledger) -> None:
    assert all(r.user_id for r in ledger.users().rows)
    row = next(r for r in ledger.users(include_unattributed=True).rows if r.user_id == "")
    assert (row.tenant_id, row.label, row.attributed) == ("acme", UNATTRIBUTED_LABEL, False)
    assert (row.usage.requests, row.usage.cost) == (2, MINI * 2)
    detail = ledger.user("")
    assert detail.summary is not None and detail.summary.usage.requests == 2
    assert len(detail.calls) == 2 and all(c.user_id == "" for c in detail.calls)


SORT_VALUES: dict[str, Callable[[UserRow], Any]] = {
    "cost": lambda r: r.usage.cost,
    "requests": lambda r: r.usage.requests,
    "tokens": lambda r: r.usage.total_tokens,
    "last_seen": lambda r: r.usage.last_seen,
}


@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
@pytest.mark.parametrize(
    ("sort_by", "first_desc"), [("cost", "alice"), ("requests", "bob"), ("tokens", "Carol"), ("last_seen", "dave")]
)
def test_sorting_by_each_key_and_direction(ledger: Ledger, sort_by: str, first_desc: str, sort_dir: str) -> None:
    rows = ledger.users(sort_by=sort_by, sort_dir=sort_dir).rows  # type: ignore[arg-type]
    value = SORT_VALUES[sort_by]
    values = [value(r) for r in rows]
    assert values == sorted(values, reverse=sort_dir == "desc")
    # ties are broken by tenant, then user, ascending
    for a, b in itertools.pairwise(rows):
        if value(a) == value(b):
            assert (a.tenant_id, a.user_id) < (b.tenant_id, b.user_id)
    if sort_dir == "desc":
        assert rows[0].user_id == first_desc
    else:
        assert rows[-1].user_id == first_desc


def test_tenants_sorted_and_counted(ledger: Ledger) -> None:
    page = ledger.tenants(sort_by="requests", sort_dir="desc")
    assert [t.tenant_id for t in page.rows] == ["acme", "globex", "initech"]
    acme = page.rows[0]
    assert (acme.usage.requests, acme.active_users) == (65, 2)  # the unattributed user is not an active user
    assert acme.usage.cost == Decimal("0.105") + MINI * 63
    assert [t.tenant_id for t in ledger.tenants(sort_by="tokens", sort_dir="asc").rows] == ["initech", "acme", "globex"]
    only = ledger.tenants(tenant_id="acme")
    assert ([t.tenant_id for t in only.rows], only.total) == (["acme"], 1)
    assert ledger.tenants(tenant_id="acm").rows == []  # exact, not a substring


def test_totals_add_up_every_tenant(ledger: Ledger) -> None:
    t = ledger.totals()
    u = t.usage
    tenants = ledger.tenants(limit=100).rows
    al_x = ledger.user("al_x").summary
    assert al_x is not None and al_x.usage.cost == Decimal("0.00025")  # gpt-4o: 100 input tokens at $2.50/M
    expected = Decimal("0.105") + Decimal("0.00025") + MINI * 65
    assert u.cost == sum((r.usage.cost for r in tenants), Decimal(0)) == expected
    assert (u.requests, u.errors, u.traces, t.tenants) == (69, 1, None, 3)
    assert t.active_users == sum(r.active_users for r in tenants) == 5  # alice, bob, Carol, dave, al_x
    assert (u.unpriced_requests, u.unpriced_tokens) == (1, 501_000)
    assert u.total_tokens == sum(r.usage.total_tokens for r in tenants)
    assert (u.first_seen, u.last_seen) == (DAY1, DAY3 + timedelta(hours=23, minutes=30))
    only = ledger.totals(tenant_id="globex", start=DAY1, end=DAY3)  # Carol's call only: dave's are on day 3
    assert (only.usage.requests, only.usage.cost, only.usage.unpriced_requests) == (1, 0, 1)
    assert (only.active_users, only.tenants) == (1, 1)
    assert ledger.totals(tags={"plan": "pro"}).usage.cost == Decimal("0.105") + MINI
    nothing = ledger.totals(start="2030-01-01")
    assert (nothing.usage.requests, nothing.usage.cost, nothing.tenants, nothing.usage.first_seen) == (0, 0, 0, None)


def test_traces_false_leaves_only_the_trace_count_out(ledger: Ledger) -> None:
    full = ledger.users(limit=100, include_unattributed=True)
    light = ledger.users(limit=100, traces=False, include_unattributed=True)
    assert [r.usage.traces for r in full.rows] == [r.usage.traces for r in full.rows if r.usage.traces is not None]
    assert sum(r.usage.traces or 0 for r in full.rows) == 69  # one trace per call in this dataset
    assert all(r.usage.traces is None for r in light.rows)
    assert [replace(r, usage=replace(r.usage, traces=None)) for r in full.rows] == light.rows
    tenants = ledger.tenants(traces=False).rows
    assert all(t.usage.traces is None for t in tenants)
    assert [(t.tenant_id, t.usage.cost, t.active_users) for t in tenants] == [
        (t.tenant_id, t.usage.cost, t.active_users) for t in ledger.tenants().rows
    ]


def test_tenant_ids_are_the_ranking_alone(ledger: Ledger) -> None:
    assert ledger.tenant_ids() == [t.tenant_id for t in ledger.tenants().rows] == ["acme", "initech", "globex"]
    assert ledger.tenant_ids(sort_by="tokens", limit=1) == ["globex"]
    with pytest.raises(ConfigError):
        ledger.tenant_ids(limit=0)


def test_paging(ledger: Ledger) -> None:
    everyone = ledger.users(limit=100).rows
    pages = [ledger.users(limit=3, page=p) for p in (1, 2, 3, 99)]
    # a full page, the last page, and past the end: the last page again, numbered as such
    assert [len(p.rows) for p in pages] == [3, 2, 2, 2]
    assert all(p.total == 5 and p.limit == 3 and p.pages == 2 for p in pages)
    assert [p.page for p in pages] == [1, 2, 2, 2]
    assert pages[3].rows == pages[1].rows
    assert keys(pages[0].rows + pages[1].rows) == keys(everyone)
    tenants = [ledger.tenants(limit=2, page=p) for p in (1, 2, 5)]
    assert [(len(p.rows), p.page) for p in tenants] == [(2, 1), (1, 2), (1, 2)]
    assert all(p.total == 3 for p in tenants)
    assert ledger.users(start="2030-01-01", page=7).page == 1  # nothing at all: page 1, empty


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("AL", {"alice", "al_x"}),
        ("carol", {"Carol"}),
        ("_", {"al_x"}),
        ("%", set()),
        ("", {u for _, u in ALL_USERS if u}),
    ],
)
def test_search_is_a_case_insensitive_substring(ledger: Ledger, search: str, expected: set[str]) -> None:
    page = ledger.users(search=search)
    assert {r.user_id for r in page.rows} == expected
    assert page.total == len(expected)


def test_filters(ledger: Ledger) -> None:
    assert set(keys(ledger.users(tenant_id="globex").rows)) == {("globex", "Carol"), ("globex", "dave")}
    pro = ledger.users(tags={"plan": "pro"}).rows
    assert keys(pro) == [("acme", "alice")] and pro[0].usage.requests == 3
    assert [t.tenant_id for t in ledger.tenants(search="GLOB").rows] == ["globex"]
    assert [t.tenant_id for t in ledger.tenants(tags={"plan": "free"}).rows] == ["acme"]
    day1 = ledger.users(start=DAY1, end="2026-06-11")
    assert set(keys(day1.rows)) == {("acme", "alice"), ("acme", "bob"), ("globex", "Carol")}


def test_a_window_inside_one_hour(ledger: Ledger) -> None:
    """Bob made one call a minute from 00:00; 00:10 to 00:20 holds exactly ten of them."""
    rows = ledger.users(start=DAY1 + timedelta(minutes=10), end=DAY1 + timedelta(minutes=20)).rows
    assert keys(rows) == [("acme", "bob")]
    assert rows[0].usage.requests == 10
    assert rows[0].usage.first_seen == DAY1 + timedelta(minutes=10)
    assert rows[0].usage.last_seen == DAY1 + timedelta(minutes=19)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sort_by": "price"},
        {"sort_by": "cost; DROP TABLE llm_calls"},
        {"sort_dir": "up"},
        {"sort_dir": "DESC"},
        {"page": 0},
        {"page": -1},
        {"page": "2"},
        {"page": 1.5},
        {"limit": 0},
        {"limit": 1001},
        {"limit": "10"},
        {"start": "yesterday-ish"},
        {"start": "2026-06-12", "end": "2026-06-11"},
    ],
)
def test_bad_arguments_raise_config_error(ledger: Ledger, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ledger.users(**kwargs)
    with pytest.raises(ConfigError):
        ledger.tenants(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"per": "model"}, {"per": "user_id; --"}, {"start": "2026-06-12", "end": "2026-06-11"}]
)
def test_bad_daily_arguments_raise_config_error(ledger: Ledger, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ledger.daily(**kwargs)


INJECTIONS = [
    "' OR 1=1 --",
    "x'); DROP TABLE llm_calls; --",
    "alice' OR user_id != '",
    "{p0:String}",
    "acme\\' OR \\'1\\'=\\'1",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_strings_are_data(ledger: Ledger, evil: str) -> None:
    assert ledger.users(search=evil, tenant_id=evil).rows == []
    assert ledger.users(tags={evil: "pro", "plan": evil}).rows == []
    assert ledger.tenants(search=evil, tags={evil: evil}).rows == []
    assert ledger.daily(user_id=evil, tenant_id=evil) == []
    detail = ledger.user(evil)
    assert (detail.summary, detail.models, detail.daily, detail.calls) == (None, [], [], [])
    store = ledger.store
    assert store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows == [(69,)]


def test_injection_like_values_are_matched_literally(store: Store) -> None:
    """A value that looks like SQL or a query parameter still finds exactly the rows that hold it."""
    odd = "o'hara {p0:String} \\ --"
    store.command(
        f"INSERT INTO {store.database}.llm_calls (timestamp, user_id, tenant_id, tags, model) VALUES "
        "('2026-06-10 05:00:00', {u:String}, {u:String}, map('k', {u:String}), 'gpt-4o'), "
        "('2026-06-10 05:00:00', 'o', 'o', map('k', 'o'), 'gpt-4o')",
        parameters={"u": odd},
    )
    ledger = Ledger(store)
    assert keys(ledger.users(search=odd).rows) == [(odd, odd)]
    assert keys(ledger.users(tenant_id=odd, tags={"k": odd}).rows) == [(odd, odd)]
    assert [t.tenant_id for t in ledger.tenants(search="'HARA").rows] == [odd]
    detail = ledger.user(odd)
    assert detail.summary is not None and detail.summary.usage.requests == 1


def test_user_detail(ledger: Ledger) -> None:
    detail = ledger.user("alice")
    assert detail.user_id == "alice"
    assert detail.summary is not None
    assert (detail.summary.tenant_id, detail.summary.usage.requests) == ("acme", 3)
    assert detail.summary.usage.cost == Decimal("0.1051212")
    assert (detail.summary.distinct_models, detail.summary.top_model) == (2, "gpt-4o")
    assert [(m.provider, m.model, m.usage.requests, m.usage.cost) for m in detail.models] == [
        ("openai", "gpt-4o", 2, Decimal("0.105")),
        ("openai", "gpt-4o-mini", 1, MINI),
    ]
    assert [(d.day, d.cost, d.requests, d.active_users) for d in detail.daily] == [
        (date(2026, 6, 10), Decimal("0.035"), 1, 1),
        (date(2026, 6, 11), Decimal("0.07") + MINI, 2, 1),
    ]
    calls = detail.calls
    assert [c.timestamp for c in calls] == [
        DAY2 + timedelta(hours=11),
        DAY2 + timedelta(hours=10, minutes=15),
        DAY1 + timedelta(hours=9),
    ]
    newest = calls[0]
    assert {name for name, _ in RAW_COLUMNS} <= {f.name for f in dataclasses.fields(newest)}
    assert newest.cost == MINI and isinstance(newest.cost, Decimal)
    assert (newest.model, newest.provider, newest.tenant_id, newest.tags) == (
        "gpt-4o-mini",
        "openai",
        "acme",
        {"plan": "pro"},
    )
    assert (newest.input_tokens, newest.cache_read_tokens, newest.output_tokens) == (1200, 1024, 30)
    assert newest.trace_id > 0x5EED_0000
    assert newest.span_id > 0
    assert newest.price_source.startswith("genai-prices ")


def test_user_detail_keeps_the_last_fifty_calls_newest_first(ledger: Ledger) -> None:
    calls = ledger.user("bob").calls
    assert len(calls) == 50
    assert [c.timestamp for c in calls] == [DAY1 + timedelta(minutes=59 - i) for i in range(50)]
    assert len(ledger.user("bob", calls=10).calls) == 10
    assert ledger.user("bob", calls=0).calls == []


def test_user_detail_for_an_unknown_user(ledger: Ledger) -> None:
    detail = ledger.user("nobody")
    assert (detail.summary, detail.models, detail.daily, detail.calls) == (None, [], [], [])


def test_user_in_two_tenants_and_tenant_filter(store: Store, tmp_path: Path) -> None:
    ingest(store, tmp_path, [llm_span(DAY1, user="sam", tenant="b"), llm_span(DAY2, user="sam", tenant="a")])
    ledger = Ledger(store)
    detail = ledger.user("sam")
    assert detail.summary is not None
    assert (detail.summary.tenant_ids, detail.summary.usage.requests) == (("a", "b"), 2)
    only_b = ledger.user("sam", tenant_id="b")
    assert only_b.summary is not None and only_b.summary.usage.requests == 1
    assert set(keys(ledger.users().rows)) == {("a", "sam"), ("b", "sam")}
    per_tenant = ledger.daily(user_id="sam", per="tenant")
    assert [(d.day, d.key, d.requests, d.cost) for d in per_tenant] == [
        (date(2026, 6, 10), "b", 1, MINI),
        (date(2026, 6, 11), "a", 1, MINI),
    ]


def test_daily_series(ledger: Ledger) -> None:
    days = ledger.daily()
    assert [(d.day, d.requests, d.active_users) for d in days] == [
        (date(2026, 6, 10), 62, 3),
        (date(2026, 6, 11), 5, 2),
        (date(2026, 6, 12), 2, 1),
    ]
    assert sum((d.cost for d in days), Decimal(0)) == Decimal("0.105") + Decimal("0.00025") + MINI * 65
    per_tenant = ledger.daily(per="tenant", start=DAY3)
    assert [(d.day, d.key, d.requests) for d in per_tenant] == [(date(2026, 6, 12), "globex", 2)]
    per_user = ledger.daily(per="user", end=DAY2)
    assert [(d.key, d.requests) for d in per_user] == [("Carol", 1), ("alice", 1), ("bob", 60)]


def test_overview_sums_what_the_other_questions_answer(ledger: Ledger) -> None:
    ov = ledger.overview(top=2)
    assert (ov.totals.usage, ov.totals.tenants) == (ledger.totals().usage, ledger.totals().tenants)
    assert ov.totals.active_users == 5  # alice, bob, Carol, dave, al_x: counted exactly
    users = ledger.users(limit=2, traces=False).rows
    assert [(u.user_id, u.tenant_id, u.cost, u.requests) for u in ov.top_users] == [
        (u.user_id, u.tenant_id, u.usage.cost, u.usage.requests) for u in users
    ]
    assert ov.top_tenants == ledger.tenants(limit=2, traces=False).rows
    nobody = ledger.daily(user_id="")
    assert ov.unattributed_requests == sum(d.requests for d in nobody) > 0
    assert ov.unattributed_cost == sum((d.cost for d in nobody), Decimal(0))
    assert ov.daily == ledger.daily()
    empty = ledger.overview(start="2030-01-01")
    assert (empty.top_users, empty.top_tenants, empty.daily, empty.totals.tenants) == ([], [], [], 0)
    assert (empty.totals.active_users, empty.unattributed_requests, empty.totals.usage.first_seen) == (0, 0, None)
    with pytest.raises(ConfigError):
        ledger.overview(top=0)
