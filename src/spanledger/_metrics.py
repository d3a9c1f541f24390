"""The exporter's own counters as OpenTelemetry metrics, so silent loss is visible to an operator.

Counters are observable (read from the exporter's ``stats`` at collection time), so they cost nothing
when no ``MeterProvider`` is configured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

_COUNTERS = {
    "received": ("spanledger.spans.received", "Spans handed to the exporter"),
    "stored": ("spanledger.calls.stored", "LLM calls confirmed by ClickHouse"),
    "spooled": ("spanledger.calls.spooled", "LLM calls written to the durable spool"),
    "replayed": ("spanledger.calls.replayed", "LLM calls inserted from a spool left by an earlier process"),
    "unpriced": ("spanledger.calls.unpriced", "LLM calls whose model has no known price"),
    "insert_failures": ("spanledger.inserts.failed", "Insert attempts ClickHouse refused or did not answer"),
}


def register(stats: Counter[str], spool_bytes: Callable[[], int]) -> None:
    """Expose ``stats`` through the global meter provider."""
    meter = metrics.get_meter("spanledger")

    def counter(key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        return lambda _options: [Observation(stats.get(key, 0))]

    for key, (name, description) in _COUNTERS.items():
        meter.create_observable_counter(name, callbacks=[counter(key)], unit="{item}", description=description)

    def by_reason(prefix: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(value, {"reason": key.split(":", 1)[1]})
                for key, value in list(stats.items())
                if key.startswith(prefix)
            ]

        return observe

    meter.create_observable_counter(
        "spanledger.spans.rejected",
        callbacks=[by_reason("rejected:")],
        unit="{span}",
        description="Spans refused, by reason",
    )
    meter.create_observable_counter(
        "spanledger.spans.skipped",
        callbacks=[by_reason("skipped:")],
        unit="{span}",
        description="Spans that are not LLM calls or duplicate one, by reason",
    )
    meter.create_observable_gauge(
        "spanledger.spool.size",
        callbacks=[lambda _o: [Observation(spool_bytes())]],
        unit="By",
        description="Bytes waiting in the durable spool",
    )
