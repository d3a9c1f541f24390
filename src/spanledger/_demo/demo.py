"""``spanledger demo``: a simulated day of LLM traffic through the real pipeline, then who costs the most.

Everything but the LLM is real: the ``openai`` client, OpenLLMetry's OpenAI instrumentation, a
``TracerProvider`` with :class:`UserAttributionProcessor` and ``BatchSpanProcessor(CostExporter)``, and
the store. The LLM is :class:`~spanledger._stub_llm.StubLLMServer` on 127.0.0.1, told per request how
many tokens to report, so the traffic is seeded and the numbers are the same on every run.

The demo owns what it writes: every span carries ``service.name = spanledger-demo``. Before sending, it
empties spanledger's tables in the chosen database, but only when every stored call came from an
earlier demo; a database holding other calls is left alone and the demo stops with an error.
"""

from __future__ import annotations

import contextlib
import math
import random
import shlex
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._capture.attribution import UserAttributionProcessor, attribute_to
from .._capture.exporter import CostExporter
from .._config import DEFAULT_STORE, env_str
from .._errors import ConfigError
from .._present.numbers import count
from .._present.tables import TimeRange, tenants_table, users_table
from .._query.ledger import Ledger
from .._store import maintenance
from .._store.store import Store

DEMO_SERVICE = "spanledger-demo"
"""The ``service.name`` of every demo span: how the demo recognises (and replaces) its own data."""
DEFAULT_CALLS = 1500
DEFAULT_SEED = 7
UNPRICED_MODEL = "llama-3.1-8b-selfhosted"
"""A self-hosted model behind an OpenAI-compatible gateway: no public price, so its calls stay unpriced."""

_PLANS = {"enterprise": 1.6, "pro": 1.0, "free": 0.35}
"""Plan → how much more than average its users call."""
# fmt: off
_TENANTS = (
    ("acme", "enterprise", 8), ("globex", "enterprise", 6), ("initech", "pro", 6), ("umbrella", "pro", 5),
    ("hooli", "pro", 5), ("piedpiper", "free", 4), ("vandelay", "free", 4), ("wonka", "free", 3),
)
"""(tenant, plan, number of users)"""
_NAMES = (
    "maya", "ari", "lena", "omar", "jin", "sofia", "noah", "ines", "ravi", "zoe", "liam", "ada", "kofi", "emma",
    "yuki", "leo", "nora", "amir", "chloe", "tariq", "mila", "jonas", "hana", "diego", "freya", "sam", "ivy",
    "malik", "rosa", "theo", "aisha", "ben", "clara", "dev", "elif", "finn", "gala", "hugo", "iris", "juno", "kai",
)
_SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06", "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31", UNPRICED_MODEL: UNPRICED_MODEL,
}
"""The dated snapshot the API answers with for each requested model."""
# fmt: on
_FREE_MODELS = frozenset({"gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano"})
_ERRORS = ((429, 5), (500, 3), (503, 2))
_ERROR_RATE = 0.025
_UNTAGGED_RATE = 0.05
"""Share of sessions that are background jobs, with no user or tenant."""
_JOB_FEATURES = frozenset({"summarize", "extract", "search"})
_SESSION_EXTRA_CALLS = 3.0
"""Mean number of calls in a session after the first."""
_DAY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class _Feature:
    name: str
    weight: float
    plans: frozenset[str]
    models: tuple[tuple[str, float], ...]
    input: tuple[int, int]
    output: tuple[int, int]
    cache_rate: float
    """Share of calls whose prompt prefix hits the provider's prompt cache."""
    prompt: str


_ALL = frozenset(_PLANS)
_PAID = frozenset({"pro", "enterprise"})
_ENTERPRISE = frozenset({"enterprise"})
# fmt: off
_FEATURES = (
    #        name           weight plans        models (weighted)                              input tokens   output       cache
    _Feature("chat",        5,   _ALL,        (("gpt-4o-mini", 6), ("gpt-4o", 3)),             (300, 3000),   (40, 600),   0.4,
             "How do I rotate my API keys?"),
    _Feature("summarize",   3,   _ALL,        (("gpt-4o-mini", 5), ("gpt-4.1-mini", 3)),       (2000, 9000),  (120, 450),  0.1,
             "Summarize this thread."),
    _Feature("search",      3,   _ALL,        (("gpt-4.1-nano", 1),),                          (500, 2000),   (30, 200),   0.0,
             "Rewrite this query for search."),
    _Feature("extract",     2,   _PAID,       (("gpt-4.1-mini", 2), (UNPRICED_MODEL, 3)),      (800, 4000),   (60, 300),   0.2,
             "Extract the invoice fields as JSON."),
    _Feature("code-review", 2,   _PAID,       (("gpt-4.1", 1),),                               (4000, 16000), (300, 1500), 0.5,
             "Review this diff."),
    _Feature("support-bot", 2,   _ENTERPRISE, (("gpt-4o", 1),),                                (1500, 6000),  (80, 500),   0.7,
             "Customer asks about SSO."),
    _Feature("agent",       1.5, _ENTERPRISE, (("o3-mini", 1),),                               (3000, 12000), (600, 4000), 0.3,
             "Plan the data migration."),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class DemoCall:
    """One simulated request: who, when, which model, and what the stub should answer."""

    offset: timedelta
    """How long after the start of the simulated day the call happened."""
    user_id: str | None
    tenant_id: str | None
    plan: str | None
    feature: str
    model: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    status: int


def _span(rng: random.Random, bounds: tuple[int, int]) -> int:
    """A log-uniform whole number within ``bounds``: many small values, a few large ones."""
    lo, hi = bounds
    return round(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def plan_traffic(*, calls: int = DEFAULT_CALLS, seed: int = DEFAULT_SEED) -> list[DemoCall]:
    """A seeded day of traffic: Zipf-like heavy users working in short sessions, plans and features as
    tags, several models, prompt caching, some errors, and background jobs with no user. Same seed,
    same list."""
    rng = random.Random(seed)
    clock = random.Random(seed + 1)  # times use their own stream: the calls never depend on the clock
    names = list(_NAMES)
    rng.shuffle(names)
    users: list[tuple[str, str, str]] = []
    for tenant, plan, n in _TENANTS:
        users += [(f"{names.pop()}@{tenant}.example", tenant, plan) for _ in range(n)]
    rng.shuffle(users)
    weights = [_PLANS[plan] / (rank**1.1) for rank, (_, _, plan) in enumerate(users, start=1)]
    out: list[DemoCall] = []
    while len(out) < calls:
        # a session: one user (or one background job) making a few calls to one feature and model
        job = rng.random() < _UNTAGGED_RATE
        user, tenant, plan = rng.choices(users, weights)[0]
        features = [f for f in _FEATURES if (f.name in _JOB_FEATURES if job else plan in f.plans)]
        feature = rng.choices(features, [f.weight for f in features])[0]
        models = [m for m in feature.models if plan != "free" or m[0] in _FREE_MODELS] or list(feature.models[:1])
        model = rng.choices([m for m, _ in models], [w for _, w in models])[0]
        size = min(calls - len(out), 1 + int(rng.expovariate(1 / _SESSION_EXTRA_CALLS)))
        at = _time_of_day(clock)
        for _ in range(size):
            input_tokens = _span(rng, feature.input)
            output_tokens = _span(rng, feature.output)
            cached = 0
            if input_tokens >= 1024 and rng.random() < feature.cache_rate:
                # OpenAI caches a prompt prefix of 1,024 tokens and more, in steps of 128
                cached = 1024 + 128 * rng.randint(0, max(0, int(input_tokens * 0.8) - 1024) // 128)
            reasoning = round(output_tokens * rng.uniform(0.4, 0.8)) if model.startswith("o") else 0
            status = 200
            if rng.random() < _ERROR_RATE:
                status = rng.choices([s for s, _ in _ERRORS], [w for _, w in _ERRORS])[0]
            who: tuple[str | None, str | None, str | None] = (None, None, None) if job else (user, tenant, plan)
            offset = min(at, _DAY - timedelta(milliseconds=1))
            tokens = (input_tokens, min(cached, input_tokens), output_tokens, reasoning)
            out.append(DemoCall(offset, *who, feature.name, model, *tokens, status))
            at += timedelta(seconds=clock.uniform(3, 40))
    return sorted(out, key=lambda c: c.offset)


def _time_of_day(clock: random.Random) -> timedelta:
    """A moment in a 24 h day, busier in the (simulated) working hours than at night."""
    while True:
        seconds = clock.uniform(0, _DAY.total_seconds())
        hour = seconds / 3600
        busy = 0.2 + 0.8 * max(0.0, math.sin(math.pi * (hour - 7) / 12)) if 7 <= hour <= 19 else 0.2
        if clock.random() < busy:
            return timedelta(seconds=seconds)


class TimeShiftExporter(SpanExporter):
    """Move each demo request's spans from the real clock to its simulated time, then export.

    The instrumentation stamps spans with the real clock, and the demo sends a whole day in seconds;
    this wrapper shifts the start, end and event times of every span of a trace by the offset the demo
    recorded for that trace, so the ledger sees the traffic spread over the last 24 hours.
    """

    def __init__(self, inner: SpanExporter, offsets: dict[int, int]) -> None:
        self._inner = inner
        self._offsets = offsets

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._shift(span) for span in spans])

    def _shift(self, span: ReadableSpan) -> ReadableSpan:
        offset = self._offsets.get(span.context.trace_id) if span.context else None
        if not offset:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=span.attributes,
            events=[Event(e.name, e.attributes, e.timestamp + offset) for e in span.events],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=None if span.start_time is None else span.start_time + offset,
            end_time=None if span.end_time is None else span.end_time + offset,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _reset(store: Store) -> int:
    """Empty spanledger's tables if they hold only demo calls; returns how many demo calls were removed."""
    demo, other = maintenance.calls_by_service(store, DEMO_SERVICE)
    if other:
        raise ConfigError(
            f"database {store.database!r} of the store holds {other:,} LLM calls the demo did not write, and the "
            "demo only replaces its own; run it on another database, e.g. --store 'chdb://.spanledger?database=demo'"
        )
    maintenance.empty(store)
    return demo


def _send(traffic: Sequence[DemoCall], *, dsn: str, day_start: datetime, console: Console) -> dict[str, int]:
    """Send ``traffic`` through the real client and instrumentation; returns the exporter's counters."""
    import openai
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    from .stub_llm import StubLLMServer

    spool = tempfile.TemporaryDirectory(prefix="spanledger-demo-spool-")
    # Its own store connection (shutting the exporter down closes it) and a throw-away spool: a seeded
    # demo can always be sent again, so it needs no crash-safe spool beside the real one.
    exporter = CostExporter(dsn, spool_dir=spool.name, fsync=False, flush_interval_ms=5000)
    offsets: dict[int, int] = {}
    provider = TracerProvider(resource=Resource.create({"service.name": DEMO_SERVICE}))
    provider.add_span_processor(UserAttributionProcessor())
    # two spans per call (the request and the LLM call): a queue that holds them all never drops one
    provider.add_span_processor(
        BatchSpanProcessor(
            TimeShiftExporter(exporter, offsets),
            max_queue_size=max(2048, 2 * len(traffic) + 64),
            max_export_batch_size=2048,
            schedule_delay_millis=500,
        )
    )
    tracer = provider.get_tracer("spanledger.demo")
    instrumentor = OpenAIInstrumentor()
    stub = StubLLMServer().start()
    start_ns = int(day_start.timestamp() * 1e9)
    client: openai.OpenAI | None = None
    try:
        instrumentor.instrument(tracer_provider=provider)
        client = openai.OpenAI(base_url=stub.openai_base_url, api_key="demo", max_retries=0)
        console.print(f"Stub LLM server on {stub.url} (OpenAI-compatible; nothing leaves this machine)")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("Sending a day of LLM traffic", total=len(traffic))
            for call in traffic:
                _one(client, tracer, call, offsets, start_ns)
                progress.advance(task)
        provider.force_flush(timeout_millis=120_000)
    finally:
        if client is not None:
            client.close()
        instrumentor.uninstrument()
        provider.shutdown()
        stub.stop()
        spool.cleanup()
    return dict(exporter.stats)


def _one(client: Any, tracer: Any, call: DemoCall, offsets: dict[int, int], start_ns: int) -> None:
    import openai

    stub: dict[str, Any] = {
        "input_tokens": call.input_tokens,
        "cached_tokens": call.cached_tokens,
        "output_tokens": call.output_tokens,
    }
    stub |= {"reasoning_tokens": call.reasoning_tokens, "status": call.status, "response_model": _SNAPSHOTS[call.model]}
    prompt = next(f.prompt for f in _FEATURES if f.name == call.feature)
    # calls with no user model background jobs: no attribute_to at all
    scope: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if call.user_id:
        scope = attribute_to(user_id=call.user_id, tenant_id=call.tenant_id, plan=call.plan, feature=call.feature)
    with scope:
        name = f"POST /api/{call.feature}" if call.user_id else f"job {call.feature}"
        with tracer.start_as_current_span(name, kind=SpanKind.SERVER if call.user_id else SpanKind.INTERNAL) as span:
            simulated = start_ns + int(call.offset.total_seconds() * 1e9)
            offsets[span.get_span_context().trace_id] = simulated - time.time_ns()
            # a failed call is recorded on its span by the instrumentation and counted as an error
            with contextlib.suppress(openai.APIStatusError):
                client.chat.completions.create(
                    model=call.model,
                    messages=[
                        {"role": "system", "content": f"You are the {call.feature} assistant."},
                        {"role": "user", "content": prompt},
                    ],
                    extra_body={"stub": stub},
                )


def run_demo(
    *,
    store: Store | str | None,
    calls: int | None = None,
    seed: int | None = None,
    console: Console,
    show_store: bool = True,
) -> int:
    """Run the demo; returns the exit code (1 if some calls were not stored).

    Args:
        store: An open store or a DSN (default ``SPANLEDGER_STORE``, then ``chdb://.spanledger``).
        show_store: Put ``--store`` in the suggested next commands (off when the default store is used).
    """
    opened = store if isinstance(store, Store) else Store(env_str("SPANLEDGER_STORE", store, DEFAULT_STORE))
    dsn = opened.dsn
    calls = calls or DEFAULT_CALLS
    seed = DEFAULT_SEED if seed is None else seed
    traffic = plan_traffic(calls=calls, seed=seed)
    console.print(f"[bold]spanledger demo[/] · store {escape(dsn)} · database {opened.database}")
    removed = _reset(opened)
    if removed:
        console.print(f"Replaced {count(removed)} calls from an earlier demo run.")
    now = datetime.now(UTC).replace(microsecond=0)
    day_start = now - timedelta(hours=24)
    began = time.monotonic()
    stats = _send(traffic, dsn=dsn, day_start=day_start, console=console)
    elapsed = time.monotonic() - began
    failed = sum(1 for c in traffic if c.status != 200)
    anonymous = sum(1 for c in traffic if c.user_id is None)
    users = len({c.user_id for c in traffic if c.user_id})
    console.print(
        f"Sent {count(len(traffic))} calls in {elapsed:.1f} s: {users} users in {len(_TENANTS)} tenants, "
        f"{count(failed)} answered with an HTTP error, {count(anonymous)} with no user (background jobs)."
    )
    stored, unpriced = stats.get("stored", 0), stats.get("unpriced", 0)
    if stored == len(traffic):
        console.print(
            f"Timestamps spread over the last 24 h. Priced and stored all {count(stored)} calls; "
            f"{count(unpriced)} stay unpriced ({UNPRICED_MODEL} is self-hosted: no public price)."
        )
    else:
        console.print(f"[red]Stored only {count(stored)} of {count(len(traffic))} calls[/] ({escape(str(stats))}).")
    ledger = Ledger(opened)
    window = TimeRange(day_start, None)
    top = ledger.users(start=day_start, limit=10)
    tenants = ledger.tenants(start=day_start, limit=10)
    console.print()
    title = "Top 10 users by LLM cost (last 24 h)"
    console.print(users_table(top, window, title=title, width=console.width))
    title = "Tenants by LLM cost (last 24 h)"
    console.print(tenants_table(tenants, window, title=title, width=console.width))
    _next_steps(console, dsn if show_store else None, next((r.user_id for r in top.rows if r.user_id), ""))
    return 0 if stored == len(traffic) else 1


def _next_steps(console: Console, dsn: str | None, user_id: str) -> None:
    store = f" --store {shlex.quote(dsn)}" if dsn else ""
    steps = [
        (f"spanledger overview --from 24h{store}", "total and unattributed spend, top users and tenants"),
        (f"spanledger users --from 24h --tag plan=pro{store}", "who on the pro plan costs the most"),
        (f"spanledger user {shlex.quote(user_id)}{store}", "one user: models, days, recent calls"),
        (f"spanledger tenants --format json{store}", "the same numbers, exact to 1e-12 USD, for scripts"),
    ]
    console.print("[bold]Next:[/]")
    width = max(len(cmd) for cmd, _ in steps)
    for cmd, why in steps:
        console.print(f"  [cyan]{escape(cmd.ljust(width))}[/]  [dim]{why}[/]")
