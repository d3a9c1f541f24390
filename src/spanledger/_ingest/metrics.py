"""Every pipeline's counters as OpenTelemetry metrics, so silent loss is visible to an operator.

The instruments are registered once per process, on the first pipeline, and each observation carries the
pipeline's name as ``spanledger.pipeline``: with two pipelines in one process (two stores) both are
reported. Counters are observable (read from the pipelines' ``stats`` at collection time), so they cost
nothing when no ``MeterProvider`` is configured.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

LABEL = "spanledger.pipeline"

_COUNTERS = {
    "received": ("spanledger.spans.received", "Spans handed to an exporter"),
    "spooled": ("spanledger.calls.spooled", "LLM calls written to the durable spool"),
    "stored": ("spanledger.calls.stored", "LLM calls confirmed by ClickHouse"),
    "replayed": ("spanledger.calls.replayed", "LLM calls inserted from a spool left by an earlier process"),
    "unpriced": ("spanledger.calls.unpriced", "LLM calls whose model has no known price"),
    "quarantined": ("spanledger.calls.quarantined", "LLM calls set aside: refused by the store or past a bound"),
    "insert_failures": ("spanledger.inserts.failed", "Insert attempts ClickHouse refused or did not answer"),
    "tools_spooled": ("spanledger.tools.spooled", "Tool executions written to the durable spool"),
    "tools_stored": ("spanledger.tools.stored", "Tool executions confirmed by ClickHouse"),
}


class Observed(Protocol):
    """What the metrics read from a pipeline."""

    name: str
    stats: Counter[str]

    @property
    def spool_bytes(self) -> int: ...


_pipelines: weakref.WeakSet[Observed] = weakref.WeakSet()
_lock = threading.Lock()
_registered = False


def register(pipeline: Observed) -> None:
    """Report ``pipeline``'s counters (instruments are created on the first call in the process)."""
    global _registered
    with _lock:
        _pipelines.add(pipeline)
        if _registered:
            return
        _registered = True
    meter = metrics.get_meter("spanledger")  # a proxy until a MeterProvider is set: bound to it then

    def counter(key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        return lambda _options: [Observation(p.stats.get(key, 0), {LABEL: p.name}) for p in list(_pipelines)]

    for key, (name, description) in _COUNTERS.items():
        meter.create_observable_counter(name, callbacks=[counter(key)], unit="{item}", description=description)

    def by_reason(prefix: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(value, {LABEL: p.name, "reason": key.split(":", 1)[1]})
                for p in list(_pipelines)
                for key, value in list(p.stats.items())
                if key.startswith(prefix)
            ]

        return observe

    meter.create_observable_counter(
        "spanledger.spans.rejected", callbacks=[by_reason("rejected:")], unit="{span}", description="Refused, by reason"
    )
    meter.create_observable_counter(
        "spanledger.spans.skipped",
        callbacks=[by_reason("skipped:")],
        unit="{span}",
        description="Spans that are not LLM calls or duplicate one, by reason",
    )
    meter.create_observable_gauge(
        "spanledger.spool.size",
        callbacks=[lambda _o: [Observation(p.spool_bytes, {LABEL: p.name}) for p in list(_pipelines)]],
        unit="By",
        description="Bytes waiting in the durable spool",
    )
