"""``CostExporter``: normalise, price and store LLM spans; optionally forward them, cost included.

Follows the SDK's exporter contract: ``export`` never raises into the host application (it logs and
returns ``FAILURE``), ``shutdown`` is idempotent, export after shutdown warns and fails.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._config import DEFAULT_STORE, env_bool, env_int, env_str
from ._errors import ConfigError, SpanledgerError
from ._normalize import Normalizer
from ._pricing import Pricer
from ._record import LLMCall
from ._store import RAW_COLUMN_NAMES, Store, _parse

_log = logging.getLogger(__name__)

COST_AMOUNT_ATTRIBUTE = "gen_ai.usage.cost.amount"
COST_CURRENCY_ATTRIBUTE = "gen_ai.usage.cost.currency"
_SEEN_CAPACITY = 100_000


class CostExporter(SpanExporter):
    """Export LLM calls, priced in exact USD, to ClickHouse; other spans are counted and dropped.

    Every argument falls back to an environment variable, then to a default; a bad environment
    value is logged and replaced by the default.

    Args:
        store: DSN (``SPANLEDGER_STORE``, default ``chdb://.spanledger``); see :class:`Store`.
        price_file: TOML/YAML price overrides (``SPANLEDGER_PRICE_FILE``).
        capture_content: Also store prompts and completions (``SPANLEDGER_CAPTURE_CONTENT``, default off).
        max_content_chars: Per-field cap on stored content (``SPANLEDGER_MAX_CONTENT_CHARS``, 16384).
        forward_to: Another exporter that receives every span, LLM spans with
            ``gen_ai.usage.cost.amount`` and ``gen_ai.usage.cost.currency`` added.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        price_file: str | None = None,
        capture_content: bool | None = None,
        max_content_chars: int | None = None,
        forward_to: SpanExporter | None = None,
    ) -> None:
        if isinstance(store, Store):
            self._store: Store | None = store
            self._dsn = store.dsn
        else:
            self._store = None
            self._dsn = self._checked_dsn(store)
        self._normalizer = Normalizer(
            capture_content=env_bool("SPANLEDGER_CAPTURE_CONTENT", capture_content, False),
            max_content_chars=env_int("SPANLEDGER_MAX_CONTENT_CHARS", max_content_chars, 16_384, minimum=0),
        )
        self._pricer = Pricer(price_file=price_file)
        self._forward_to = forward_to
        self._lock = threading.Lock()
        self._shutdown = False
        self._seen: OrderedDict[tuple[int, int | str], None] = OrderedDict()
        self.stats: Counter[str] = Counter()
        """Spans ``received``, calls ``stored``, ``unpriced``, ``skipped:<reason>``, ``rejected:<reason>``, ``failed``."""

    @staticmethod
    def _checked_dsn(explicit: str | None) -> str:
        if explicit is not None:
            _parse(explicit)  # a bad DSN given in code is a programming error: say so now
            return explicit
        dsn = env_str("SPANLEDGER_STORE", None, DEFAULT_STORE)
        try:
            _parse(dsn)
        except ConfigError as exc:
            _log.error("ignoring SPANLEDGER_STORE: %s; using %s", exc, DEFAULT_STORE)
            return DEFAULT_STORE
        return dsn

    @property
    def store(self) -> Store:
        """The store, opened (and its schema created) on first use."""
        if self._store is None:
            self._store = Store(self._dsn)
        return self._store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _log.warning("CostExporter.export called after shutdown; %d spans dropped", len(spans))
            return SpanExportResult.FAILURE
        try:
            with self._lock:
                calls, forward = self._prepare(spans)
                if calls:
                    self._insert(calls)
        except SpanledgerError as exc:
            self.stats["failed"] += len(spans)
            _log.error("spanledger could not store %d spans: %s", len(spans), exc)
            return SpanExportResult.FAILURE
        except Exception:  # never raise into the host application
            self.stats["failed"] += len(spans)
            _log.exception("spanledger export failed for %d spans", len(spans))
            return SpanExportResult.FAILURE
        if self._forward_to is not None:
            try:
                return self._forward_to.export(forward)
            except Exception:
                _log.exception("forwarding %d spans failed", len(forward))
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _prepare(self, spans: Sequence[ReadableSpan]) -> tuple[list[LLMCall], list[ReadableSpan]]:
        now_ns = time.time_ns()
        calls: list[LLMCall] = []
        forward: list[ReadableSpan] = []
        for span in spans:
            self.stats["received"] += 1
            try:
                outcome = self._normalizer.normalize(span, now_ns)
                if isinstance(outcome, str):
                    self.stats[f"skipped:{outcome}"] += 1
                    forward.append(span)
                    continue
                if self._is_duplicate(outcome):
                    self.stats["skipped:duplicate"] += 1
                    forward.append(span)
                    continue
                self._pricer.price(outcome)
            except Exception:
                self.stats["rejected:unreadable"] += 1
                _log.warning("spanledger rejected an unreadable span %r", getattr(span, "name", "?"), exc_info=True)
                forward.append(span)
                continue
            if outcome.cost is None:
                self.stats["unpriced"] += 1
            calls.append(outcome)
            forward.append(_with_cost(span, outcome) if self._forward_to is not None else span)
        return calls, forward

    def _is_duplicate(self, call: LLMCall) -> bool:
        """The same span exported twice, or the same call described by two instrumentations."""
        keys: list[tuple[int, int | str]] = [(call.trace_id, call.span_id)]
        if call.response_id:
            keys.append((call.trace_id, f"{call.provider}:{call.response_id}"))
        if any(key in self._seen for key in keys):
            return True
        for key in keys:
            self._seen[key] = None
        while len(self._seen) > _SEEN_CAPACITY:
            self._seen.popitem(last=False)
        return False

    def _insert(self, calls: list[LLMCall]) -> None:
        columns = to_columns(calls)
        token = hashlib.sha256(
            b"".join(c.trace_id.to_bytes(16, "big") + c.span_id.to_bytes(8, "big") for c in calls)
        ).hexdigest()
        self.store.insert_calls(columns, dedup_token=token)
        self.stats["stored"] += len(calls)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._forward_to is not None:
            return bool(self._forward_to.force_flush(timeout_millis))
        return True

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        if self._forward_to is not None:
            try:
                self._forward_to.shutdown()
            except Exception:
                _log.exception("shutting down the forward exporter failed")
        if self._store is not None:
            self._store.close()


def to_columns(calls: Sequence[LLMCall]) -> list[list[Any]]:
    """Records → columns in :data:`RAW_COLUMNS` order, ready for a column-oriented insert."""
    columns: list[list[Any]] = [[] for _ in RAW_COLUMN_NAMES]
    for call in calls:
        row = (
            call.timestamp,
            call.trace_id,
            call.span_id,
            call.parent_span_id,
            call.duration_us,
            call.provider,
            call.model,
            call.request_model,
            call.operation,
            call.input_tokens,
            call.output_tokens,
            call.cache_read_tokens,
            call.cache_write_tokens,
            call.reasoning_tokens,
            call.user_id,
            call.user_source,
            call.tenant_id,
            dict(sorted(call.tags.items())),
            1 if call.is_error else 0,
            call.error_type,
            call.response_id,
            call.service_name,
            call.source,
            call.flags,
            call.cost,
            call.input_cost,
            call.output_cost,
            call.price_source,
            call.price_model,
            call.prompt,
            call.completion,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _with_cost(span: ReadableSpan, call: LLMCall) -> ReadableSpan:
    """A copy of ``span`` with the call's cost as ``gen_ai.usage.cost.*`` attributes (semconv PR 443)."""
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
