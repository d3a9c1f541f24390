"""The demo's month in the store, at the default size: built once for the module (the real pipeline, the real
openai client for the newest calls), then every part of the story and every counting case read back through
the ledger, the totals checked against what the pipeline priced and against genai-prices directly."""

from __future__ import annotations

import io
import itertools
import statistics
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from spanledger import Ledger, Store
from spanledger._demo.demo import LIVE_CALLS, Sent, build
from spanledger._demo.plan import NEW_MODEL, OLD_MODELS, SNAPSHOTS, TENANTS, UNPRICED_MODEL, Month, plan_month
from spanledger._demo.report import report
from tests.integration.demo_support import planned_cost

pytestmark = pytest.mark.integration

END = datetime(2026, 11, 30, 15, tzinfo=UTC)


@dataclass(frozen=True)
class Built:
    month: Month
    sent: Sent
    store: Store
    ledger: Ledger
    output: str
    code: int


@pytest.fixture(scope="module")
def built(chdb_dir: Path) -> Iterator[Built]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    store = Store(f"chdb://{chdb_dir}?database={database}")
    month = plan_month(end=END)
    out = io.StringIO()
    console = Console(file=out, width=200)
    sent = build(month, store=store, console=console)
    code = report(month, sent, store=store, console=console, dsn=store.dsn)
    yield Built(month, sent, store, Ledger(store), out.getvalue(), code)
    store.command(f"DROP DATABASE IF EXISTS {database} SYNC")


def _midnight(day: object) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)  # type: ignore[arg-type]


def test_every_call_is_stored_at_the_price_the_pipeline_gave_it(built: Built) -> None:
    calls = built.month.calls
    assert built.code == 0
    assert built.sent.stats["stored"] == len(calls) == 30_000
    totals = built.ledger.totals().usage
    # what the pipeline priced (added up by its hook), what the store holds, and genai-prices: one figure
    assert (totals.requests, totals.unpriced_requests) == (built.sent.priced.calls, built.sent.priced.unpriced)
    assert totals.cost == built.sent.priced.cost == sum((planned_cost(c) for c in calls), Decimal(0))
    assert totals.unpriced_requests == sum(1 for c in calls if c.model == UNPRICED_MODEL)
    assert totals.errors == sum(1 for c in calls if c.failed)
    assert totals.cache_read_tokens == sum(c.cached_tokens for c in calls if not c.failed)
    assert totals.input_tokens == sum(c.input_tokens for c in calls if not c.failed)
    assert f"The store's total, ${totals.cost}, is what the pipeline priced" in built.output


def test_the_newest_calls_went_through_the_real_client_and_the_others_to_the_pipeline(built: Built) -> None:
    cut = built.month.calls[-LIVE_CALLS].at
    rows = built.store.query(
        f"SELECT timestamp >= {{cut:DateTime64(6)}} AS live, count(), countIf(parent_span_id != 0), "
        f"countIf(startsWith(response_id, 'chatcmpl-stub')), countIf(response_id = ''), "
        f"groupUniqArray(source), min(timestamp), max(timestamp) "
        f"FROM {built.store.database}.llm_calls GROUP BY live ORDER BY live",
        {"cut": cut.replace(tzinfo=None)},
    ).result_rows
    failed_live = sum(1 for c in built.month.calls[-LIVE_CALLS:] if c.failed)
    (_, history, nested, stubbed, _, sources, first, _), (_, live, live_nested, live_stubbed, no_id, _, _, last) = rows
    assert (history, live) == (built.sent.history, built.sent.live) == (30_000 - LIVE_CALLS, LIVE_CALLS)
    assert sources == ["otel-genai"]
    assert (nested, stubbed) == (0, 0)  # calls submitted as such: no request span around them, no stub answered
    assert live_nested == live  # each real request inside the app's request span
    assert (live_stubbed, no_id) == (live - failed_live, failed_live)  # the stub's response ids
    assert first.replace(tzinfo=UTC) >= END - timedelta(days=30) and last.replace(tzinfo=UTC) < END


def test_the_month_has_a_weekly_rhythm(built: Built) -> None:
    story = built.month.story
    days = built.ledger.daily(start=story.start.date() + timedelta(days=1), end=story.end.date())
    assert len(days) == 29
    weekdays = [d.requests for d in days if d.day.weekday() < 5 and d.day != story.spike_day]
    weekends = [d.requests for d in days if d.day.weekday() >= 5]
    assert len(weekends) >= 8 and statistics.mean(weekdays) > 2.2 * statistics.mean(weekends)
    assert all(d.active_users >= 10 for d in days)


def test_the_growing_tenant_spends_more_every_week(built: Built) -> None:
    story = built.month.story
    weeks = [built.ledger.tenants(tenant_id=story.growing_tenant, start=a, end=b).rows[0] for a, b in story.weeks()]
    requests = [w.usage.requests for w in weeks]
    costs = [w.usage.cost for w in weeks]
    assert all(later > 1.3 * earlier for earlier, later in itertools.pairwise(requests)), requests
    assert costs == sorted(costs) and len(set(costs)) == 4, costs
    growing = [c for c in built.month.calls if c.tenant_id == story.growing_tenant]
    for (a, b), week in zip(story.weeks(), weeks, strict=True):
        assert week.usage.cost == sum((planned_cost(c) for c in growing if a <= c.at < b), Decimal(0))


def test_one_user_spikes_on_the_known_day(built: Built) -> None:
    story = built.month.story
    days = {d.day: d for d in built.ledger.daily(user_id=story.spike_user, start=story.start)}
    spike = days.pop(story.spike_day)
    planned = [c for c in built.month.calls if c.user_id == story.spike_user and c.at.date() == story.spike_day]
    assert spike.requests == len(planned) >= story.spike_calls
    assert spike.cost == sum((planned_cost(c) for c in planned), Decimal(0))
    assert spike.cost > 20 * max(d.cost for d in days.values())
    assert f"{story.spike_user} spikes on {story.spike_day:%a %d %b}" in built.output


def test_a_tenant_changes_model_mid_month(built: Built) -> None:
    story = built.month.story
    switch = _midnight(story.switch_day)
    rows = built.store.query(
        f"SELECT tenant_id, model, min(timestamp), max(timestamp), count() FROM {built.store.database}.llm_calls "
        "WHERE model IN {models:Array(String)} GROUP BY tenant_id, model",
        {"models": [*OLD_MODELS, NEW_MODEL, *(SNAPSHOTS[m] for m in (*OLD_MODELS, NEW_MODEL))]},
    ).result_rows
    switcher = {
        model: (first.replace(tzinfo=UTC), last.replace(tzinfo=UTC))
        for t, model, first, last, _ in rows
        if t == story.switch_tenant
    }
    for old in OLD_MODELS:
        assert switcher[SNAPSHOTS[old]][1] < switch  # the tenant's last call to an old model: before the day
    assert switcher[SNAPSHOTS[NEW_MODEL]][0] >= switch  # its first to the new one: on or after it
    assert {t for t, model, *_ in rows if model.startswith(NEW_MODEL)} == {story.switch_tenant}
    # the per-model breakdown of the tenant's heaviest user shows the change
    heaviest = built.ledger.users(tenant_id=story.switch_tenant, start=story.start, limit=1).rows[0].user_id
    before = built.ledger.user(heaviest, start=story.start, end=switch, calls=0).models
    after = built.ledger.user(heaviest, start=switch, calls=0).models
    assert {SNAPSHOTS[m] for m in OLD_MODELS} <= {m.model for m in before} and SNAPSHOTS[NEW_MODEL] not in {
        m.model for m in before
    }
    assert SNAPSHOTS[NEW_MODEL] in {m.model for m in after} and not {SNAPSHOTS[m] for m in OLD_MODELS} & {
        m.model for m in after
    }
    daily = built.ledger.daily(
        tenant_id=story.switch_tenant, start=story.start.date() + timedelta(days=1), end=END.date()
    )
    cost_before = statistics.median(d.cost for d in daily if d.day < story.switch_day)
    assert statistics.median(d.cost for d in daily if d.day >= story.switch_day) < cost_before / 2


def test_the_cases_the_counts_must_get_right_are_in_the_store(built: Built) -> None:
    calls, story = built.month.calls, built.month.story
    ledger = built.ledger
    users = {c.user_id for c in calls if c.user_id}
    jobs = [c for c in calls if c.user_id is None]
    assert all(c.tenant_id is None for c in jobs)

    page = ledger.users(start=story.start, limit=1000)
    assert {r.user_id for r in page.rows} == users and page.total == len(users)  # every user, and only users
    assert page.unnamed is not None and page.unnamed.requests == len(jobs)  # the calls with none: apart
    everyone = ledger.users(start=story.start, limit=1000, include_unattributed=True).rows
    assert next(r for r in everyone if not r.user_id).usage.requests == len(jobs)
    ranked = ledger.tenants(start=story.start, limit=100)
    assert {t.tenant_id for t in ranked.rows} == set(TENANTS)
    loners = [c for c in calls if c.user_id and c.tenant_id is None]
    assert ranked.unnamed is not None and ranked.unnamed.requests == len(loners) + len(jobs)
    assert ranked.unnamed.users == len(story.no_tenant_users) == 3  # users, though they have no tenant
    tenants = {t.tenant_id: t for t in ledger.tenants(start=story.start, limit=100, include_no_tenant=True).rows}
    assert tenants[""].active_users == 3
    overview = ledger.overview(start=story.start)
    assert overview.totals.active_users == len(users)
    assert overview.totals.tenants == len(TENANTS)  # the calls without a tenant are not a tenant
    assert overview.no_tenant_requests == len(loners) + len(jobs)
    assert overview.unattributed_requests == len(jobs)

    failed = built.store.query(
        f"SELECT count(), countIf(model = request_model), sum(input_tokens + output_tokens), sum(cost), "
        f"countIf(model IN {{snapshots:Array(String)}}) FROM {built.store.database}.llm_calls WHERE is_error",
        {"snapshots": [s for m, s in SNAPSHOTS.items() if s != m]},
    ).result_rows[0]
    # every failed call: under the model asked for, no tokens, nothing spent, never under a dated snapshot
    assert failed == (sum(1 for c in calls if c.failed), failed[0], 0, Decimal(0), 0)
    for line in (
        f"(unattributed): {len(jobs):,} calls from background jobs with no user; a line under the {len(users)} users",
        f"(no tenant): {len(loners):,} calls from 3 users with no tenant",
        f"failed: {failed[0]:,} calls (HTTP 429, 500, 503) with no tokens and $0, stored under the model asked for",
        f"unpriced: {built.ledger.totals().usage.unpriced_requests:,} calls to {UNPRICED_MODEL}",
    ):
        assert line in built.output


def test_segments_have_a_few_values_each(built: Built) -> None:
    story = built.month.story
    by_plan = Counter(c.plan for c in built.month.calls)
    for plan in ("free", "pro", "enterprise"):
        assert built.ledger.totals(start=story.start, tags={"plan": plan}).usage.requests == by_plan[plan]
    by_feature = Counter(c.feature for c in built.month.calls)
    assert len(by_feature) == 7
    for feature, n in by_feature.items():
        assert built.ledger.totals(start=story.start, tags={"feature": feature}).usage.requests == n
