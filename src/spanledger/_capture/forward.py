"""Forwarding: every span to another exporter, LLM spans with their cost added (semconv PR 443's names).

A small wrapper the :class:`~spanledger.CostExporter` composes when given ``forward_to``; the cost is a
float there only because OpenTelemetry attributes have no decimal type (the ledger keeps the ``Decimal``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._model.call import LLMCall
from .._privacy.pseudonym import Pseudonymizer
from .._privacy.spans import hashed_ids, redacted_content

_log = logging.getLogger(__name__)

COST_AMOUNT_ATTRIBUTE = "gen_ai.usage.cost.amount"
COST_CURRENCY_ATTRIBUTE = "gen_ai.usage.cost.currency"


class Forwarder:
    """Hands spans on to ``delegate``, each LLM span with its priced call's cost; never raises.

    With ``pseudonymize``, every id attribute of every span goes out as its keyed hash; with ``redact``, the
    content attributes go out redacted (see :mod:`spanledger._privacy.spans`).
    """

    def __init__(
        self,
        delegate: SpanExporter,
        *,
        pseudonymize: Pseudonymizer | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.delegate = delegate
        self.pseudonymize = pseudonymize
        self.redact = redact

    def export(self, spans: Sequence[ReadableSpan], calls: Sequence[LLMCall | None]) -> bool:
        try:
            enriched = [self._outgoing(span, call) for span, call in zip(spans, calls, strict=True)]
        except Exception:  # never forward ids or content in clear because a rewrite failed
            _log.exception("preparing %d spans for forwarding failed; they are not forwarded", len(spans))
            return False
        try:
            return self.delegate.export(enriched) is SpanExportResult.SUCCESS
        except Exception:
            _log.exception("forwarding %d spans failed", len(spans))
            return False

    def _outgoing(self, span: ReadableSpan, call: LLMCall | None) -> ReadableSpan:
        if self.pseudonymize is None and self.redact is None:
            return span if call is None else with_cost(span, call)
        attrs = span.attributes or {}
        changes: dict[str, Any] = {}
        if self.pseudonymize is not None:
            changes.update(hashed_ids(attrs, self.pseudonymize))
        if self.redact is not None:
            changes.update(redacted_content(attrs, self.redact))
        if call is not None and call.cost is not None:
            changes.update(_cost_attributes(call))
        return with_attributes(span, changes) if changes else span

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
    return with_attributes(span, _cost_attributes(call))


def _cost_attributes(call: LLMCall) -> dict[str, Any]:
    assert call.cost is not None
    return {COST_AMOUNT_ATTRIBUTE: float(call.cost), COST_CURRENCY_ATTRIBUTE: "USD"}  # no decimal type in OTel


def with_attributes(span: ReadableSpan, changes: Mapping[str, Any]) -> ReadableSpan:
    """A copy of ``span`` with ``changes`` applied to its attributes."""
    attributes = {**(span.attributes or {}), **changes}
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
