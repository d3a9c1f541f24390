"""What the demo prints once the month is stored: whether every call arrived and the totals agree, what the
month shows (read back from the ledger), the cases the counts must get right, the top users and tenants,
and what to run next."""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL, DailyRow
from .._present.numbers import count, money
from .._present.tables import TimeRange, tenants_table, unnamed_line, users_table
from .._query.ledger import Ledger
from .._store.store import Store
from .plan import NEW_MODEL, OLD_MODELS, SNAPSHOTS, SPIKE_FEATURE, TENANTS, UNPRICED_MODEL, Month

if TYPE_CHECKING:
    from .demo import Sent


def report(month: Month, sent: Sent, *, store: Store, console: Console, dsn: str | None) -> int:
    """Print the report; returns the exit code: 1 when some calls are missing or the totals disagree."""
    planned = len(month.calls)
    since = month.calls[-sent.live].at if sent.live else month.story.end
    console.print(
        f"Sent {count(planned)} calls in {sent.seconds:.1f} s: the newest {count(sent.live)} (since "
        f"{since:%a %d %b %H:%M}) as real requests, by the openai client under OpenLLMetry's instrumentation to a "
        f"stub LLM server on {sent.stub_url} (nothing leaves this machine); the {count(sent.history)} before "
        "straight to the same exporter's pipeline. All priced, spooled and stored the same way."
    )
    ledger = Ledger(store)
    totals = ledger.totals().usage
    stored = sent.stats.get("stored", 0)
    agree = (totals.requests, totals.cost, totals.unpriced_requests) == (
        sent.priced.calls,
        sent.priced.cost,
        sent.priced.unpriced,
    )
    if stored == planned == totals.requests and agree:
        console.print(
            f"Stored all {count(planned)} calls. The store's total, ${totals.cost}, is what the pipeline priced, "
            f"to 12 decimals; {count(totals.unpriced_requests)} calls stay unpriced."
        )
    else:
        console.print(
            f"[red]The store holds {count(totals.requests)} calls (${totals.cost}, {totals.unpriced_requests} unpriced); "
            f"the pipeline priced {count(sent.priced.calls)} (${sent.priced.cost}, {sent.priced.unpriced} unpriced) "
            f"of the {count(planned)} sent[/] ({escape(str(sent.stats))})."
        )
    _story(month, ledger, console)
    _cases(month, console)
    story = month.story
    window = TimeRange(story.start, story.end)
    console.print()
    top = ledger.users(start=story.start, limit=10)
    tenants = ledger.tenants(start=story.start, limit=20)
    for page, users, title in ((top, True, "Top 10 users"), (tenants, False, "Tenants")):
        table = users_table if users else tenants_table
        console.print(table(page, window, title=f"{title} by LLM cost (30 days)", width=console.width))
        line = unnamed_line(page, users=users)
        if line:
            console.print(line)
    _next_steps(console, dsn, story.spike_user)
    return 0 if stored == planned == totals.requests and agree else 1


def _story(month: Month, ledger: Ledger, console: Console) -> None:
    """The month's shape, read back from the ledger."""
    story = month.story
    first, last = story.start.date() + timedelta(days=1), story.end.date()  # the whole days
    days = ledger.daily(start=first, end=last)
    weekdays = [d.requests for d in days if d.day.weekday() < 5]
    weekends = [d.requests for d in days if d.day.weekday() >= 5]
    weeks = [ledger.tenants(tenant_id=story.growing_tenant, start=a, end=b).rows for a, b in story.weeks()]
    growth = " → ".join(money(rows[0].usage.cost if rows else Decimal(0)) for rows in weeks)
    spiker = ledger.daily(user_id=story.spike_user, start=story.start)
    spike = next((d for d in spiker if d.day == story.spike_day), None)
    usual = _median(d for d in spiker if d.day != story.spike_day)
    switch = ledger.daily(tenant_id=story.switch_tenant, start=first, end=last)
    before = _median(d for d in switch if d.day < story.switch_day)
    after = _median(d for d in switch if d.day >= story.switch_day)
    console.print("[bold]What the month shows[/] (28-day charts and period comparisons have something to compare):")
    lines = [
        f"a weekly rhythm: {count(round(statistics.mean(weekdays or [0])))} calls on a weekday, "
        f"{count(round(statistics.mean(weekends or [0])))} on a weekend day",
        f"{story.growing_tenant} grows week over week: {growth} in each of the last four weeks",
        f"{escape(story.spike_user)} spikes on {story.spike_day:%a %d %b}: {count(story.spike_calls)} "
        f"{SPIKE_FEATURE} calls in an afternoon, {money(spike.cost if spike else None)} (a usual day: {money(usual)})",
        f"{story.switch_tenant} moves from {' and '.join(OLD_MODELS)} to {NEW_MODEL} on {story.switch_day:%a %d %b}: "
        f"{money(before)} a day before, {money(after)} after (median)",
    ]
    for line in lines:
        console.print(f"  • {line}")


def _cases(month: Month, console: Console) -> None:
    """The cases the ledger's counts must get right, present on purpose, with how many of each."""
    calls = month.calls
    users = {c.user_id for c in calls if c.user_id}
    jobs = sum(1 for c in calls if c.user_id is None)
    loners = month.story.no_tenant_users
    no_tenant = sum(1 for c in calls if c.user_id and c.tenant_id is None)
    failed = [c for c in calls if c.failed]
    example = max({c.model for c in failed} or {NEW_MODEL}, key=lambda m: sum(1 for c in failed if c.model == m))
    unpriced = sum(1 for c in calls if c.model == UNPRICED_MODEL)
    cached = sum(1 for c in calls if c.cached_tokens and not c.failed)
    console.print("[bold]Cases the counts must get right[/] (in the data on purpose):")
    lines = [
        f"{UNATTRIBUTED_LABEL}: {count(jobs)} calls from background jobs with no user; a line under "
        f"the {len(users)} users, not one more user",
        f"{NO_TENANT_LABEL}: {count(no_tenant)} calls from {len(loners)} users with no tenant "
        f"({escape(', '.join(loners))}) and the jobs' calls; a line under the {len(TENANTS)} tenants, not one "
        f"more tenant, though its {len(loners)} users are users",
        f"failed: {count(len(failed))} calls (HTTP 429, 500, 503) with no tokens and $0, stored under the model "
        f"asked for ({example}), not the snapshot that answered the others ({SNAPSHOTS[example]}): not one more model",
        f"unpriced: {count(unpriced)} calls to {UNPRICED_MODEL} (self-hosted, no public price): cost unknown, not $0",
        f"cached: {count(cached)} calls read part of their prompt from the provider's cache, billed at its rate",
    ]
    for line in lines:
        console.print(f"  • {line}")


def _median(days: Iterable[DailyRow]) -> Decimal | None:
    costs = [d.cost for d in days]
    return statistics.median(costs) if costs else None


def _next_steps(console: Console, dsn: str | None, spike_user: str) -> None:
    store = f" --store {shlex.quote(dsn)}" if dsn else ""
    steps = [
        (f"spanledger overview --from 30d{store}", "total and unattributed spend, top users and tenants, each day"),
        (f"spanledger users --from 7d --tag plan=pro{store}", "who on the pro plan costs the most"),
        (f"spanledger user {shlex.quote(spike_user)}{store}", "the user who spiked: models, days, recent calls"),
        (f"spanledger tenants --from 30d --format json{store}", "the same numbers, exact to 1e-12 USD, for scripts"),
        (f"spanledger serve --no-auth{store}", "the dashboard, on http://127.0.0.1:4318/"),
    ]
    console.print("[bold]Next:[/]")
    width = max(len(cmd) for cmd, _ in steps)
    for cmd, why in steps:
        console.print(f"  [cyan]{escape(cmd.ljust(width))}[/]  [dim]{why}[/]")
