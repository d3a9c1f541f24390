"""BudgetGuard on the real chDB engine: the bound under 200 concurrent first requests (threads and asyncio),
reservations settled to the real cost by the pipeline, released on errors, expired; periods that roll over
exactly; defaults per plan; another writer's spend; a store that refuses or stalls; rate limits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from spanledger import (
    BudgetExceeded,
    BudgetGuard,
    Budgets,
    BudgetUnavailable,
    CostExporter,
    InvalidCallError,
    RateLimited,
    Reservation,
    Store,
    attribute_to,
)
from spanledger._ingest.codec import to_columns
from spanledger.testing import llm_call, llm_span
from tests.support.ch_http import ClickHouseHTTPServer

pytestmark = pytest.mark.integration

SPAN_COST = Decimal("0.0001212")  # what llm_span's default call costs


def until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def store_calls(store: Store, *calls: tuple[str, str, str, datetime]) -> None:
    """Calls (tenant, user, USD, when) written straight to the store, as another process's exporter would."""
    made = []
    for n, (tenant, user, cost, at) in enumerate(calls):
        call = llm_call(n, user=user, tenant=tenant, at=at, span_id=10_000_000 + n + int(time.time_ns() % 10**9))
        call.cost = Decimal(cost)
        made.append(call)
    store.insert_calls(to_columns(made))


@pytest.fixture
def exporter(store: Store, tmp_path: Path) -> Iterator[CostExporter]:
    made = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    yield made
    made.shutdown()


@pytest.fixture
def make_guard(store: Store, exporter: CostExporter) -> Iterator[Callable[..., BudgetGuard]]:
    guards: list[BudgetGuard] = []

    def make(**kwargs: Any) -> BudgetGuard:
        kwargs.setdefault("cache_ttl_ms", 100)
        kwargs.setdefault("store_timeout_ms", 5000)  # generous: this shared machine is slow at times
        guard = BudgetGuard(store, pipeline=exporter.pipeline, **kwargs)
        guards.append(guard)
        return guard

    yield make
    for guard in guards:
        guard.close()


def committed(guard: BudgetGuard, **who: str) -> Decimal:
    (usage,) = guard.usage(**who)
    return usage.committed


def test_200_concurrent_first_requests_stay_within_the_budget_then_settle_to_the_real_cost(
    store: Store, exporter: CostExporter, make_guard: Callable[..., BudgetGuard]
) -> None:
    Budgets(store).set(user_id="newbie", limit="1", period="monthly")
    guard = make_guard()
    tracer = TracerProvider().get_tracer("app")
    start = threading.Barrier(200)
    admitted: list[tuple[Reservation, int]] = []
    refused: list[BudgetExceeded] = []

    def request() -> None:
        start.wait()
        with attribute_to(user_id="newbie", tenant_id="acme"), tracer.start_as_current_span("request") as span:
            try:
                admitted.append((guard.check(Decimal("0.03")), span.get_span_context().trace_id))
            except BudgetExceeded as exc:
                refused.append(exc)

    threads = [threading.Thread(target=request) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # the bound, exactly: 33 x $0.03 = $0.99 admitted, a 34th would make $1.02
    assert len(admitted) == 33 and len(refused) == 167
    assert sum(r.amount for r, _ in admitted) == Decimal("0.99")
    assert {e.spent for e in refused} == {Decimal("0.99")} and {e.limit for e in refused} == {Decimal(1)}
    assert refused[0].period == "monthly" and refused[0].subject == "user newbie"
    assert committed(guard, user_id="newbie", tenant_id="acme") == Decimal("0.99")
    assert guard.stats["store_reads"] <= 3  # one read served the 200 (a background refresh may add one)

    # 30 calls succeed and are priced by the pipeline (matched by trace); 3 fail and release
    for reservation, _ in admitted[30:]:
        with pytest.raises(RuntimeError), reservation:
            raise RuntimeError("the provider said 500")
    now = datetime.now(UTC)
    spans = [llm_span(i, user="newbie", tenant="acme", trace_id=t, at=now) for i, (_, t) in enumerate(admitted[:30])]
    exporter.export(spans)
    assert until(lambda: all(r.state == "settled" for r, _ in admitted[:30]))
    assert {r.state for r, _ in admitted[30:]} == {"released"}
    assert {r.cost for r, _ in admitted[:30]} == {SPAN_COST}
    real = 30 * SPAN_COST
    assert committed(guard, user_id="newbie", tenant_id="acme") == real  # from memory: not stored yet, or both
    assert exporter.force_flush()
    assert until(lambda: guard.usage(user_id="newbie", tenant_id="acme")[0].stored == real)
    (usage,) = guard.usage(user_id="newbie", tenant_id="acme")
    assert (usage.stored, usage.local, usage.reserved) == (real, 0, 0)  # moved to the store, counted once

    # the room left is exact too: (1 - 30 x 0.0001212) / 0.03 = 33.2 more calls
    more = 0
    with pytest.raises(BudgetExceeded):
        while True:
            guard.check(Decimal("0.03"), user_id="newbie", tenant_id="acme")
            more += 1
    assert more == 33


def test_200_concurrent_first_requests_in_asyncio(store: Store, make_guard: Callable[..., BudgetGuard]) -> None:
    Budgets(store).set(user_id="async-newbie", tenant_id="acme", limit="2", period="daily")
    guard = make_guard()

    async def request() -> Reservation | BudgetExceeded:
        with attribute_to(user_id="async-newbie", tenant_id="acme"):
            try:
                return await guard.acheck(Decimal("0.07"))
            except BudgetExceeded as exc:
                return exc

    async def main() -> list[Reservation | BudgetExceeded]:
        return await asyncio.gather(*(request() for _ in range(200)))

    results = asyncio.run(main())
    admitted = [r for r in results if isinstance(r, Reservation)]
    assert len(admitted) == 28  # 28 x 0.07 = 1.96; 29 would be 2.03
    assert sum(r.amount for r in admitted) == Decimal("1.96")
    assert {r.spent for r in results if isinstance(r, BudgetExceeded)} == {Decimal("1.96")}
    for reservation in admitted:
        reservation.release()
    assert committed(guard, user_id="async-newbie", tenant_id="acme") == 0


def test_an_unsettled_reservation_expires_and_a_guarded_block_releases_on_error(
    store: Store, make_guard: Callable[..., BudgetGuard]
) -> None:
    Budgets(store).set(tenant_id="initech", limit="1", period="monthly")
    guard = make_guard(reservation_ttl_s=1)
    reservation = guard.check("0.6", tenant_id="initech", user_id="peter")
    with pytest.raises(BudgetExceeded):
        guard.check("0.6", tenant_id="initech", user_id="milton")  # the tenant's budget holds for every user
    assert until(lambda: reservation.state == "expired")
    assert guard.stats["expired"] == 1 and committed(guard, tenant_id="initech", user_id="") == 0

    @guard.guarded("0.6", tenant_id="initech", user_id="peter")
    def failing_call() -> None:
        raise TimeoutError("the provider timed out")

    with pytest.raises(TimeoutError):
        failing_call()

    @guard.guarded("0.6", tenant_id="initech", user_id="peter")
    async def async_failing_call() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        asyncio.run(async_failing_call())
    assert guard.stats["released"] == 2 and committed(guard, tenant_id="initech", user_id="") == 0
    with guard.guarded("0.6", tenant_id="initech", user_id="peter") as held:
        assert held.state == "open"
    assert committed(guard, tenant_id="initech", user_id="") == Decimal("0.6")  # kept until the call is priced


def test_a_period_rolls_over_exactly_at_its_boundary_in_utc_and_in_tokyo(
    store: Store, make_guard: Callable[..., BudgetGuard]
) -> None:
    budgets = Budgets(store)
    budgets.set(user_id="ana", limit="1", period="monthly")
    budgets.set(user_id="kenji", limit="1", period="monthly", timezone="Asia/Tokyo")
    new_year = datetime(2027, 1, 1, tzinfo=UTC)
    tokyo_new_year = datetime(2026, 12, 31, 15, tzinfo=UTC)
    last_us = timedelta(microseconds=1)
    store_calls(
        store,
        ("acme", "ana", "1", new_year - timedelta(hours=2)),  # December: the whole budget
        ("acme", "kenji", "1", tokyo_new_year - timedelta(hours=1)),  # December in Tokyo
        ("acme", "kenji", "0.25", tokyo_new_year),  # January in Tokyo, still December in UTC
    )
    clock = [new_year - last_us]
    guard = make_guard(now=lambda: clock[0])
    with pytest.raises(BudgetExceeded) as refused:
        guard.check("0.01", user_id="ana", tenant_id="acme")
    assert refused.value.period_end == new_year and refused.value.spent == 1
    clock[0] = new_year
    assert guard.check("0.01", user_id="ana", tenant_id="acme").keys[0].start == new_year

    clock[0] = tokyo_new_year - last_us
    with pytest.raises(BudgetExceeded) as refused:
        guard.check("0.01", user_id="kenji", tenant_id="acme")
    assert (refused.value.period_start, refused.value.spent) == (datetime(2026, 11, 30, 15, tzinfo=UTC), 1)
    clock[0] = tokyo_new_year
    (usage,) = guard.usage(user_id="kenji", tenant_id="acme")
    assert (usage.period_start, usage.stored) == (tokyo_new_year, Decimal("0.25"))
    assert guard.check("0.75", user_id="kenji", tenant_id="acme").amount == Decimal("0.75")
    with pytest.raises(BudgetExceeded):
        guard.check("0.000000000001", user_id="kenji", tenant_id="acme")


def test_defaults_per_plan_apply_and_a_subjects_own_budget_wins(
    store: Store, make_guard: Callable[..., BudgetGuard]
) -> None:
    budgets = Budgets(store)
    budgets.set(tag="plan=free", limit="0.05", period="monthly")
    budgets.set(tenant_id="acme", default=True, limit="0.10", period="monthly")
    budgets.set(user_id="vip", tenant_id="acme", limit="10", period="monthly")
    guard = make_guard()
    with attribute_to(user_id="freebie", tenant_id="globex", plan="free"):
        guard.check("0.03")
        with pytest.raises(BudgetExceeded) as refused:
            guard.check("0.03")
        assert refused.value.limit == Decimal("0.05") and "plan=free" in refused.value.subject
    with attribute_to(user_id="freebie2", tenant_id="acme", plan="pro"):  # the tenant's default
        guard.check("0.06")
        with pytest.raises(BudgetExceeded):
            guard.check("0.06")
    with attribute_to(user_id="vip", tenant_id="acme", plan="free"):  # own budget: no default applies
        for _ in range(5):
            guard.check("0.06")
    with attribute_to(user_id="someone", tenant_id="globex", plan="pro"):  # no budget at all
        for _ in range(5):
            guard.check("1000")


def test_another_writers_spend_is_seen_within_the_cache_ttl(
    store: Store, make_guard: Callable[..., BudgetGuard]
) -> None:
    Budgets(store).set(user_id="shared", tenant_id="acme", limit="5", period="daily")
    guard = make_guard(cache_ttl_ms=200)
    guard.check("1", user_id="shared", tenant_id="acme").release()
    store_calls(store, *[("acme", "shared", "1.25", datetime.now(UTC)) for _ in range(3)])  # another process
    assert until(lambda: guard.usage(user_id="shared", tenant_id="acme")[0].stored == Decimal("3.75"))
    guard.check("1.25", user_id="shared", tenant_id="acme")
    with pytest.raises(BudgetExceeded) as refused:
        guard.check("0.01", user_id="shared", tenant_id="acme")
    assert refused.value.spent == Decimal(5)


def test_the_estimate_from_max_tokens_at_the_models_prices(
    store: Store, make_guard: Callable[..., BudgetGuard]
) -> None:
    guard = make_guard()
    made = guard.check(provider="openai", model="gpt-4o-mini", input_tokens=1000, max_tokens=500, user_id="u")
    assert made.amount == Decimal("0.00045")  # 1000 x $0.15/M + 500 x $0.60/M
    assert guard.check(model="no-such-model", user_id="u").amount == 0  # unpriced: the default estimate
    for bad in ({"input_tokens": -1}, {"max_tokens": 1.5}):
        with pytest.raises(InvalidCallError):
            guard.check(model="gpt-4o-mini", user_id="u", **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidCallError, match="negative"):
        guard.check("-0.01", user_id="u")


def test_rate_limits_per_user_and_tenant_in_a_sliding_minute(
    store: Store, make_guard: Callable[..., BudgetGuard]
) -> None:
    guard = make_guard(user_rpm=5, tenant_tpm=10_000)
    for _ in range(5):
        guard.check(user_id="chatty", tenant_id="acme")
    with pytest.raises(RateLimited) as limited:
        guard.check(user_id="chatty", tenant_id="acme")
    assert limited.value.unit == "requests" and limited.value.limit == 5 and 0 < limited.value.retry_after <= 60
    guard.check(user_id="chatty", tenant_id="globex")  # a user is limited within a tenant
    guard.check(user_id="quiet", tenant_id="acme", model="gpt-4o-mini", input_tokens=4000, max_tokens=1000)
    with pytest.raises(RateLimited) as limited:
        guard.check(user_id="quiet2", tenant_id="acme", model="gpt-4o-mini", input_tokens=4000, max_tokens=1001)
    assert limited.value.unit == "tokens" and limited.value.subject == "tenant acme"


@pytest.mark.parametrize("fail_open", [False, True])
def test_a_store_that_refuses_or_stalls_never_blocks_the_check(
    http_store_dsn: str, ch_server: ClickHouseHTTPServer, tmp_path: Path, fail_open: bool
) -> None:
    store = Store(http_store_dsn)
    Budgets(store).set(tag="plan=free", limit="1", period="monthly")
    exporter = CostExporter(http_store_dsn, spool_dir=tmp_path / "spool")
    guard = BudgetGuard(store, pipeline=exporter.pipeline, cache_ttl_ms=100, store_timeout_ms=5000, fail_open=fail_open)
    try:
        guard.check("0.5", user_id="alice", tenant_id="acme", tags={"plan": "free"})  # read while the store is up
        guard.timeout = 0.3
        for fault in (ch_server.refuse_connections, ch_server.stall_responses):
            fault()
            for n in range(2):  # a user never read yet: the store must answer, and cannot
                who: dict[str, Any] = {
                    "user_id": f"{fault.__name__}-{n}",
                    "tenant_id": "acme",
                    "tags": {"plan": "free"},
                }
                if fail_open:
                    assert guard.check("0.4", **who).amount == Decimal("0.4")
                else:
                    with pytest.raises(BudgetUnavailable):
                        guard.check("0.4", **who)
            ch_server.heal()
        counter = "fail_open" if fail_open else "fail_closed"
        assert guard.stats[counter] >= 4 and guard.stats["store_unavailable"] >= 4
    finally:
        ch_server.heal()
        guard.close()
        exporter.shutdown()


def test_a_new_guard_waits_for_the_stores_first_answer_before_admitting_anyone(
    store: Store, exporter: CostExporter
) -> None:
    """A guard's first reads (opening, first queries) are slower than a warm read: with a short store timeout
    the first check of a new guard must still see a user already far past a hard budget, not fail open."""
    store_calls(store, ("umbrella", "malik", "6.5", datetime.now(UTC) - timedelta(days=1)))
    Budgets(store).set(user_id="malik", period="lifetime", limit="0.01")
    guard = BudgetGuard(store, pipeline=exporter.pipeline, store_timeout_ms=1)  # warm reads: 1 ms at most
    try:
        with pytest.raises(BudgetExceeded) as refused:
            guard.check("0.001", user_id="malik", tenant_id="umbrella")
        assert refused.value.spent == Decimal("6.5") and guard.stats["fail_open"] == 0
        assert guard.timeout == 0.001 and guard.first_timeout == 5.0  # the first answer may take 5 s (default)
    finally:
        guard.close()


def test_the_readme_example_runs(store_dsn: str, exporter: CostExporter) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("<!-- budgets-example -->\n```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('"chdb:///var/lib/myapp/spend"', repr(store_dsn))
    sent: list[dict[str, Any]] = []

    class Completions:
        def create(self, **kwargs: Any) -> None:
            sent.append(kwargs)

    client = type("Client", (), {"chat": type("Chat", (), {"completions": Completions()})()})()
    namespace: dict[str, Any] = {"client": client, "messages": [{"role": "user", "content": "hi"}]}
    exec(code, namespace)
    guard: BudgetGuard = namespace["guard"]
    try:
        assert len(sent) == 1 and "reply" not in namespace  # admitted: the call was made
        usage = {u.budget.scope: u for u in guard.usage(user_id="alice", tenant_id="acme")}
        assert usage["pair"].reserved == Decimal("0.00048")  # 1,200 in and 500 out at gpt-4o-mini's prices
        assert usage["tenant"].reserved == 0  # alerts only: nothing is held against it
        namespace["budgets"].set(user_id="alice", tenant_id="acme", period="daily", limit="0.0005")
        guard.reload()
        assert until(lambda: guard.book.own("acme", "alice")[0].limit == Decimal("0.0005"))
        exec(code.split("guard = BudgetGuard", 1)[1].split("\n", 1)[1], namespace)  # the same call again
        assert len(sent) == 1 and namespace["reply"].startswith("Your daily budget of $0.00 is used up until 00:00")
    finally:
        guard.close()
