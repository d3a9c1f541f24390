"""Forwarding: every span to another exporter, LLM spans with their cost added (semconv PR 443's names).

A small wrapper the :class:`~spanledger.CostExporter` composes when given ``forward_to``; the cost is a
float there only because OpenTelemetry attributes have no decimal type (the ledger keeps the ``Decimal``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._model.call import LLMCall

_log = logging.getLogger(__name__)

COST_AMOUNT_ATTRIBUTE = "gen_ai.usage.cost.amount"
COST_CURRENCY_ATTRIBUTE = "gen_ai.usage.cost.currency"


class Forwarder:
    """Hands spans on to ``delegate``, each LLM span with its priced call's cost; never raises."""

    def __init__(self, delegate: SpanExporter) -> None:
        self.delegate = delegate

    def export(self, spans: Sequence[ReadableSpan], calls: Sequence[LLMCall | None]) -> bool:
        enriched = [span if call is None else with_cost(span, call) for span, call in zip(spans, calls, strict=True)]
        try:
            return self.delegate.export(enriched) is SpanExportResult.SUCCESS
        except Exception:
            _log.exception("forwarding %d spans failed", len(spans))
            return False

    def force_flush(self, timeout_millis: int) -> bool:
        try:
            return bool(self.delegate.force_flush(timeout_millis))
        except Exception:
            _log.exception("flushing the forward exporter failed")
            return False

    def shutdown(self) -> None:
        try:
            self.delegate.shutdown()
        except Exception:
            _log.exception("shutting down the forward exporter failed")


def with_cost(span: ReadableSpan, call: LLMCall) -> ReadableSpan:
    """A copy of ``span`` with the call's cost as ``gen_ai.usage.cost.*`` attributes (unpriced: unchanged)."""
    if call.cost is None:
        return span
    attributes = dict(span.attributes or {})
    attributes[COST_AMOUNT_ATTRIBUTE] = float(call.cost)  # OTel attributes have no decimal type
    attributes[COST_CURRENCY_ATTRIBUTE] = "USD"
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
