"""``CostExporter``: finished spans → LLM calls (and tool executions) → the ingest pipeline (dedup, price, spool,
insert).

``export()`` runs on the ``BatchSpanProcessor``'s worker thread, never the app's request path: it
normalises the batch and submits the calls, which are durable in the spool when it returns. Follows the
SDK's exporter contract: ``export`` never raises into the host application, ``shutdown`` is idempotent and
bounded in time, export after shutdown warns and fails.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._config import DEFAULT_STORE, env_bool, env_int, env_str
from .._errors import ConfigError
from .._ingest import shared as _pipeline
from .._ingest.pipeline import BatchResult, Pipeline
from .._ingest.spool import Spool
from .._model.call import LLMCall
from .._model.tool import ToolCall
from .._privacy import pseudonym as _pseudonym
from .._privacy import redact as _redact
from .._store.dsn import parse as _parse
from .._store.store import Store
from .forward import COST_AMOUNT_ATTRIBUTE, COST_CURRENCY_ATTRIBUTE, Forwarder
from .normalize import Normalizer

_log = logging.getLogger(__name__)

__all__ = ["COST_AMOUNT_ATTRIBUTE", "COST_CURRENCY_ATTRIBUTE", "CostExporter", "Ingested"]


@dataclass(frozen=True, slots=True)
class Ingested:
    """One batch of spans through the exporter: what the pipeline made of its calls, and each span's call."""

    result: BatchResult
    """What became of the batch's LLM calls and tool executions together (a span is a span)."""
    calls: list[LLMCall | None]
    """Per span, in order: its priced call, or ``None`` (not an LLM call, a tool execution, a duplicate,
    unreadable)."""


class CostExporter(SpanExporter):
    """Export LLM calls, priced in exact USD, to ClickHouse, and tool executions beside them (never priced,
    never counted as calls); other spans are counted and dropped.

    Every argument falls back to a ``SPANLEDGER_*`` environment variable, then to its default; a bad
    environment value is logged and replaced by the default. Exporters (and recorders) for the same store
    and spool in one process share one pipeline.

    Args:
        store: DSN (``SPANLEDGER_STORE``, default ``chdb://.spanledger``) or an open :class:`Store`.
        price_file: TOML/YAML price overrides (``SPANLEDGER_PRICE_FILE``).
        capture_content: Also store prompts and completions (``SPANLEDGER_CAPTURE_CONTENT``, off).
        max_content_chars: Per-field cap on stored content (``SPANLEDGER_MAX_CONTENT_CHARS``, 16384).
        forward_to: Another exporter that receives every span, LLM spans with
            ``gen_ai.usage.cost.amount`` / ``gen_ai.usage.cost.currency`` added.
        spool_dir: Durable spool directory (``SPANLEDGER_SPOOL_DIR``; default beside the chDB directory,
            or ``~/.local/state/spanledger/spool/<hash>`` for a server).
        spool_max_bytes: Cap on the spool (``SPANLEDGER_SPOOL_MAX_BYTES``, 1 GiB).
        fsync: ``fsync`` each batch before ``export`` returns (``SPANLEDGER_SPOOL_FSYNC``, on).
        flush_interval_ms: How often spooled calls are inserted (``SPANLEDGER_FLUSH_INTERVAL_MS``, 1000).
        max_block_rows: Rows per insert; a fuller spool is flushed at once (``SPANLEDGER_MAX_BLOCK_ROWS``, 50000).
        shutdown_timeout_ms: How long ``shutdown`` may try a last insert (``SPANLEDGER_SHUTDOWN_TIMEOUT_MS``, 5000).
        dedup: Drop calls the store already holds before inserting (``SPANLEDGER_DEDUP``, on).
        dedup_window_hours: How long the store remembers a stored call for that
            (``SPANLEDGER_DEDUP_WINDOW_HOURS``, 48).
        pseudonymize: Store and forward user ids (tenant ids too, if it says so) as their keyed hash: a
            :class:`~spanledger.Pseudonymizer`, ``True`` for one keyed by ``SPANLEDGER_ID_KEY``, ``False`` for
            ids in clear; by default on when ``SPANLEDGER_ID_KEY`` is set.
        redact: What captured content goes through before it is stored or forwarded: a ``str -> str``
            callable (then the built-in patterns), a :class:`~spanledger.Redactor`, or ``False`` for none; by
            default the built-in patterns (``SPANLEDGER_REDACT=false`` turns them off). Only with content capture.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        price_file: str | None = None,
        capture_content: bool | None = None,
        max_content_chars: int | None = None,
        forward_to: SpanExporter | None = None,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int | None = None,
        fsync: bool | None = None,
        flush_interval_ms: int | None = None,
        max_block_rows: int | None = None,
        shutdown_timeout_ms: int | None = None,
        dedup: bool | None = None,
        dedup_window_hours: int | None = None,
        pseudonymize: _pseudonym.Pseudonymizer | bool | None = None,
        redact: _redact.Redactor | Callable[[str], str] | bool | None = None,
    ) -> None:
        target: str | Store = store if isinstance(store, Store) else _checked_dsn(store)
        capture = env_bool("SPANLEDGER_CAPTURE_CONTENT", capture_content, False)
        pseudonymizer = _pseudonym.resolve(pseudonymize)
        redactor = _redact.resolve(redact) if capture else None
        self._normalizer = Normalizer(
            capture_content=capture,
            max_content_chars=env_int("SPANLEDGER_MAX_CONTENT_CHARS", max_content_chars, 16_384, minimum=0),
            pseudonymize=pseudonymizer,
            redact=redactor,
        )
        self.pipeline: Pipeline = _pipeline.acquire(
            target,
            price_file=price_file,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            fsync=fsync,
            flush_interval_ms=flush_interval_ms,
            max_block_rows=max_block_rows,
            shutdown_timeout_ms=shutdown_timeout_ms,
            dedup=dedup,
            dedup_window_hours=dedup_window_hours,
        )
        self._forward = (
            Forwarder(forward_to, pseudonymize=pseudonymizer, redact=redactor) if forward_to is not None else None
        )
        self._shutdown = False

    @property
    def stats(self) -> Counter[str]:
        """The pipeline's counters (shared with every exporter and recorder on the same pipeline)."""
        return self.pipeline.stats

    @property
    def store(self) -> Store:
        return self.pipeline.store

    @property
    def spool(self) -> Spool:
        return self.pipeline.spool

    # --- export (the BatchSpanProcessor's thread) ---------------------------------------------------
    def ingest(self, spans: Sequence[ReadableSpan], *, redelivered: bool = False) -> Ingested:
        """Normalise and submit a batch; never raises. The OTLP ingest reads the result per request and says
        ``redelivered``: spans from a client may be a retry of spans stored before (see ``Pipeline.submit``)."""
        now_ns = time.time_ns()
        stats = self.pipeline.stats
        stats["received"] += len(spans)
        calls: list[LLMCall | None] = []
        submitted: list[LLMCall] = []
        tools: list[ToolCall] = []
        unreadable = 0
        for span in spans:
            try:
                outcome = self._normalizer.normalize(span, now_ns)
            except Exception:
                unreadable += 1
                _log.warning("spanledger rejected an unreadable span %r", getattr(span, "name", "?"), exc_info=True)
                calls.append(None)
                continue
            if type(outcome) is LLMCall:
                calls.append(outcome)
                submitted.append(outcome)
                continue
            calls.append(None)
            if isinstance(outcome, ToolCall):
                tools.append(outcome)
            else:
                stats[f"skipped:{outcome}"] += 1
        if unreadable:
            stats["rejected:unreadable"] += unreadable
        try:
            result = self.pipeline.submit(submitted, redelivered=redelivered)
            if tools:
                result = _both(result, self.pipeline.submit_tools(tools, redelivered=redelivered))
        except Exception:  # never raise into the host application
            stats["rejected:export_error"] += len(submitted) + len(tools)
            _log.exception("spanledger export failed for %d spans", len(spans))
            result = BatchResult(rejected={"export_error": len(submitted) + len(tools)})
        result = result.plus("unreadable", unreadable, f"{unreadable} span(s) could not be read as LLM calls")
        return Ingested(result, calls)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _log.warning("CostExporter.export called after shutdown; %d spans dropped", len(spans))
            return SpanExportResult.FAILURE
        ingested = self.ingest(spans)
        ok = not ingested.result.retryable  # a call set aside in the quarantine is safe: nothing to retry
        if self._forward is not None:
            ok = self._forward.export(spans, ingested.calls) and ok
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    # --- flush and shutdown ------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Insert everything accepted so far (see :meth:`Pipeline.force_flush`); also flushes ``forward_to``."""
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = self.pipeline.force_flush(timeout_millis)
        if self._forward is not None:
            flushed = self._forward.force_flush(max(0, int((deadline - time.monotonic()) * 1000))) and flushed
        return flushed

    def shutdown(self) -> None:
        """Stop accepting spans; the pipeline's last user shuts it down (a last bounded insert)."""
        if self._shutdown:
            return
        self._shutdown = True
        _pipeline.release(self.pipeline)
        if self._forward is not None:
            self._forward.shutdown()


def _both(calls: BatchResult, tools: BatchResult) -> BatchResult:
    """One batch's LLM calls' and tool executions' results as one (each span counted once)."""
    rejected = dict(calls.rejected)
    for reason, n in tools.rejected.items():
        rejected[reason] = rejected.get(reason, 0) + n
    return BatchResult(
        calls.accepted + tools.accepted, calls.duplicates + tools.duplicates, rejected, calls.messages + tools.messages
    )


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
