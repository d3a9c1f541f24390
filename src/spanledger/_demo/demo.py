"""``spanledger demo``: a seeded month of LLM traffic through the real pipeline, then what to look at.

The month (:mod:`.plan`) goes into the store through the real pipeline. Its newest calls are real requests
(:mod:`.live`): the ``openai`` client under OpenLLMetry's instrumentation, against a local stub server, in
a ``TracerProvider`` with :class:`UserAttributionProcessor` and ``BatchSpanProcessor(CostExporter)``, then
normalise → price → spool → store, the rollups kept by the store's materialized views. The calls before go
to the same exporter's pipeline as the calls it makes of those spans (:mod:`.history`), to be priced,
spooled and stored the same way: sending a month over HTTP would take minutes. A pipeline hook adds up what the
pipeline priced, and the demo checks the store's totals against it.

The demo owns what it writes: every span carries ``service.name = spanledger-demo``. Before sending, it
empties spanledger's tables in the chosen database, but only when every stored call came from an
earlier demo; a database holding other calls is left alone and the demo stops with an error.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._capture.attribution import UserAttributionProcessor
from .._capture.exporter import CostExporter
from .._config import DEFAULT_STORE, env_str
from .._errors import ConfigError
from .._ingest.pipeline import Pipeline
from .._model.call import LLMCall
from .._present.numbers import count
from .._store import maintenance
from .._store.store import Store
from .history import history_call
from .live import TimeShiftExporter, live_call
from .plan import DEFAULT_CALLS, DEFAULT_SEED, DemoCall, Month, plan_month
from .report import report

DEMO_SERVICE = "spanledger-demo"
"""The ``service.name`` of every demo span: how the demo recognises (and replaces) its own data."""
LIVE_CALLS = 200
"""The newest calls of the month are made for real (a sample of the whole path, a few hours' worth); the
ones before go to the pipeline as the calls the exporter makes of the instrumentation's spans."""
_BATCH = 5000


@dataclass(slots=True)
class Meter:
    """A pipeline hook that adds up the calls the pipeline accepted and what it priced them at."""

    calls: int = 0
    unpriced: int = 0
    cost: Decimal = field(default_factory=Decimal)

    def __call__(self, calls: Sequence[LLMCall]) -> None:
        for call in calls:
            self.calls += 1
            if call.cost is None:
                self.unpriced += 1
            else:
                self.cost += call.cost


@dataclass(frozen=True, slots=True)
class Sent:
    """What the demo sent, and what the pipeline made of it."""

    history: int
    live: int
    seconds: float
    stats: dict[str, int]
    """The exporter's counters (``stored``, ``unpriced`` …)."""
    priced: Meter
    """What the pipeline priced, added up by a hook as it went."""
    stub_url: str


def build(month: Month, *, store: Store, console: Console) -> Sent:
    """Empty the demo's earlier data from ``store`` and send ``month`` through the pipeline into it."""
    removed = _reset(store)
    if removed:
        console.print(f"Replaced {count(removed)} calls from an earlier demo run.")
    return _send(month, dsn=store.dsn, console=console)


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


def _send(month: Month, *, dsn: str, console: Console) -> Sent:
    import openai
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    from .stub_llm import StubLLMServer

    history, live = month.calls[:-LIVE_CALLS], month.calls[-LIVE_CALLS:]
    spool = tempfile.TemporaryDirectory(prefix="spanledger-demo-spool-")
    # Its own store connection (shutting the exporter down closes it) and a throw-away spool: a seeded
    # demo can always be sent again, so it needs no crash-safe spool beside the real one.
    exporter = CostExporter(dsn, spool_dir=spool.name, fsync=False, flush_interval_ms=5000)
    meter = Meter()
    exporter.pipeline.add_hook(meter)
    offsets: dict[int, int] = {}
    provider = TracerProvider(resource=Resource.create({"service.name": DEMO_SERVICE}))
    provider.add_span_processor(UserAttributionProcessor())
    # a queue that holds every span (two per call: the request and the LLM call) never drops one
    queue = max(2048, 2 * len(live) + 64)
    provider.add_span_processor(BatchSpanProcessor(TimeShiftExporter(exporter, offsets), max_queue_size=queue))
    instrumentor = OpenAIInstrumentor()
    stub = StubLLMServer().start()
    client: openai.OpenAI | None = None
    began = time.monotonic()
    try:
        instrumentor.instrument(tracer_provider=provider)
        client = openai.OpenAI(base_url=stub.openai_base_url, api_key="demo", max_retries=0)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            _submit_history(exporter.pipeline, history, progress)
            task = progress.add_task("The newest calls, real requests", total=len(live))
            tracer = provider.get_tracer("spanledger.demo")
            for call in live:
                live_call(client, tracer, call, offsets)
                progress.advance(task)
            if not provider.force_flush(timeout_millis=120_000):
                console.print("[yellow]The exporter did not finish in 2 minutes.[/]")
    finally:
        if client is not None:
            client.close()
        instrumentor.uninstrument()
        provider.shutdown()
        stub.stop()
        spool.cleanup()
    return Sent(len(history), len(live), time.monotonic() - began, dict(exporter.stats), meter, stub.url)


def _submit_history(pipeline: Pipeline, calls: Sequence[DemoCall], progress: Progress) -> None:
    """The month's calls but the newest, submitted to the pipeline the exporter uses, a batch at a time."""
    task = progress.add_task("The month before, to the pipeline", total=len(calls))
    for first in range(0, len(calls), _BATCH):
        batch = calls[first : first + _BATCH]
        pipeline.submit([history_call(c, first + n, service_name=DEMO_SERVICE) for n, c in enumerate(batch)])
        progress.advance(task, len(batch))


def preload() -> threading.Thread:
    """Import the openai client, its instrumentation and the stub server on a thread of their own (about 2 s of
    CPU), so that it overlaps the opening of the store, which runs in chDB without holding the GIL."""

    def load() -> None:
        with contextlib.suppress(ImportError):  # the demo's own import then says what is missing
            import openai  # noqa: F401
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor  # noqa: F401

            # what OpenAIInstrumentor.instrument() imports for openai 1.x (the client's types, ~0.7 s of CPU)
            importlib.import_module("opentelemetry.instrumentation.openai.v1")
            from . import stub_llm  # noqa: F401

    thread = threading.Thread(target=load, name="spanledger-demo-preload", daemon=True)
    thread.start()
    return thread


def month_end(end: datetime | None) -> datetime:
    """When the month ends: ``end`` in UTC, by default the start of the current hour; never in the future."""
    now = datetime.now(UTC)
    end = (end or now.replace(minute=0, second=0, microsecond=0)).astimezone(UTC)
    if end > now:
        raise ConfigError(f"the demo's month cannot end in the future ({end.isoformat()})")
    return end


def run_demo(
    *,
    store: Store | str | None,
    calls: int | None = None,
    seed: int | None = None,
    end: datetime | None = None,
    console: Console,
    show_store: bool = True,
) -> int:
    """Run the demo; returns the exit code (1 if some calls were not stored, or the totals disagree).

    Args:
        store: An open store or a DSN (default ``SPANLEDGER_STORE``, then ``chdb://.spanledger``).
        calls: Calls in the month (default 30,000).
        seed: The random seed (default 7).
        end: When the month ends (default: the start of the current hour); not in the future.
        show_store: Put ``--store`` in the suggested next commands (off when the default store is used).
    """
    end = month_end(end)
    opened = store if isinstance(store, Store) else Store(env_str("SPANLEDGER_STORE", store, DEFAULT_STORE))
    seed = DEFAULT_SEED if seed is None else seed
    month = plan_month(calls=calls or DEFAULT_CALLS, seed=seed, end=end)
    console.print(
        f"[bold]spanledger demo[/] · store {escape(opened.dsn)} · database {opened.database} · seed {seed} · "
        f"{count(len(month.calls))} calls from {month.story.start:%a %d %b %H:%M} to {end:%a %d %b %H:%M} UTC"
    )
    sent = build(month, store=opened, console=console)
    return report(month, sent, store=opened, console=console, dsn=opened.dsn if show_store else None)
