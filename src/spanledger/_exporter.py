"""``CostExporter``: normalise, price, spool durably, and insert LLM calls into ClickHouse.

``export()`` (called on the ``BatchSpanProcessor``'s worker thread, never the app's request path)
normalises and prices the batch, appends it to a crash-safe local spool (``fsync``'d) and returns. A
background flusher seals the spool every ``flush_interval_ms`` and inserts each sealed segment as one
block — coalescing the SDK's 512-span batches, because every ClickHouse insert has a fixed cost. Each
block carries a deduplication token derived from its segment, so a block replayed after a failure or a
crash is dropped by the raw table and by every rollup. When the store is down the flusher retries with
exponential backoff and jitter; the spool grows up to ``spool_max_bytes`` and then refuses new data
loudly (logged, counted) without deleting anything.

Follows the SDK's exporter contract: ``export`` never raises into the host application, ``shutdown`` is
idempotent and bounded in time, export after shutdown warns and fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _codec, _metrics
from ._codec import to_columns
from ._config import DEFAULT_STORE, env_bool, env_int, env_str
from ._errors import ConfigError, SpanledgerError
from ._normalize import Normalizer
from ._pricing import Pricer
from ._record import LLMCall
from ._spool import Spool, SpoolFullError
from ._store import Store, _parse

_log = logging.getLogger(__name__)

COST_AMOUNT_ATTRIBUTE = "gen_ai.usage.cost.amount"
COST_CURRENCY_ATTRIBUTE = "gen_ai.usage.cost.currency"
_SEEN_CAPACITY = 100_000
_MAX_BACKOFF_S = 30.0
_MEMORY_CACHE_ROWS = 200_000

__all__ = ["COST_AMOUNT_ATTRIBUTE", "COST_CURRENCY_ATTRIBUTE", "CostExporter", "to_columns"]


def default_spool_dir(dsn: str) -> Path:
    """Beside an embedded store's directory; under ``$XDG_STATE_HOME`` for a server."""
    kind, location, database, _ = _parse(dsn)
    if kind == "chdb" and location:
        return Path(f"{location}-spool") / database
    digest = hashlib.sha256(dsn.encode()).hexdigest()[:16]
    if kind == "chdb":
        return Path(tempfile.gettempdir()) / f"spanledger-spool-{os.getuid()}-{digest}"
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "spanledger" / "spool" / digest


class CostExporter(SpanExporter):
    """Export LLM calls, priced in exact USD, to ClickHouse; other spans are counted and dropped.

    Every argument falls back to a ``SPANLEDGER_*`` environment variable, then to its default; a bad
    environment value is logged and replaced by the default.

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
    ) -> None:
        if isinstance(store, Store):
            self._store: Store | None = store
            self._dsn = store.dsn
        else:
            self._store = None
            self._dsn = self._checked_dsn(store)
        self._owns_store = self._store is None  # a Store passed in stays open for its owner
        self._normalizer = Normalizer(
            capture_content=env_bool("SPANLEDGER_CAPTURE_CONTENT", capture_content, False),
            max_content_chars=env_int("SPANLEDGER_MAX_CONTENT_CHARS", max_content_chars, 16_384, minimum=0),
        )
        self._pricer = Pricer(price_file=price_file)
        self._forward_to = forward_to
        self._flush_interval = env_int("SPANLEDGER_FLUSH_INTERVAL_MS", flush_interval_ms, 1000, minimum=10) / 1000
        self._max_block_rows = env_int("SPANLEDGER_MAX_BLOCK_ROWS", max_block_rows, 50_000, minimum=1)
        self._shutdown_timeout = env_int("SPANLEDGER_SHUTDOWN_TIMEOUT_MS", shutdown_timeout_ms, 5000) / 1000
        root = env_str("SPANLEDGER_SPOOL_DIR", str(spool_dir) if spool_dir is not None else None, "")
        self._spool = Spool(
            Path(root) if root else default_spool_dir(self._dsn),
            max_bytes=env_int("SPANLEDGER_SPOOL_MAX_BYTES", spool_max_bytes, 1 << 30, minimum=1),
            fsync=env_bool("SPANLEDGER_SPOOL_FSYNC", fsync, True),
        )
        self.stats: Counter[str] = Counter()
        """``received`` spans; calls ``spooled``, ``stored``, ``replayed``, ``unpriced``; ``skipped:<reason>``,
        ``rejected:<reason>``; ``insert_failures``."""
        self._lock = threading.Lock()  # spool writes, sealing and the in-memory cache
        self._seen: OrderedDict[tuple[int, int | str], None] = OrderedDict()
        self._active_cache: list[list[list[Any]]] = []
        self._active_rows = 0
        self._cache: dict[Path, list[list[list[Any]]]] = {}
        self._cached_rows = 0
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._store_healthy = True
        self._refused_since_flush = 0
        self._shutdown = False
        self._stop = threading.Event()
        _metrics.register(self.stats, lambda: self._spool.size_bytes)
        self._flusher = threading.Thread(target=self._run, name="spanledger-flusher", daemon=True)
        self._flusher.start()

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

    @property
    def spool(self) -> Spool:
        return self._spool

    # --- export (caller's thread) ----------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _log.warning("CostExporter.export called after shutdown; %d spans dropped", len(spans))
            return SpanExportResult.FAILURE
        try:
            calls, forward = self._prepare(spans)
            if calls:
                self._spool_calls(calls)
        except SpoolFullError as exc:
            self.stats["rejected:spool_full"] += len(calls)
            self._refused_since_flush += len(calls)
            _log.error("spanledger refused %d LLM calls: %s", len(calls), exc)
            return SpanExportResult.FAILURE
        except Exception:  # never raise into the host application
            self.stats["rejected:export_error"] += len(spans)
            self._refused_since_flush += len(spans)
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
        """The same span exported twice, or the same call described by two instrumentations (even in
        different traces, when one instrumentation did not make its span current)."""
        keys: list[tuple[int, int | str]] = [(call.trace_id, call.span_id)]
        if call.response_id:  # provider response ids are unique: two spans with one id are one call
            keys.append((0, f"{call.provider}:{call.response_id}"))
        with self._lock:
            if any(key in self._seen for key in keys):
                return True
            for key in keys:
                self._seen[key] = None
            while len(self._seen) > _SEEN_CAPACITY:
                self._seen.popitem(last=False)
        return False

    def _spool_calls(self, calls: list[LLMCall]) -> None:
        columns = to_columns(calls)
        payload = _codec.encode(columns)
        with self._lock:
            self._spool.append(payload)
            self._active_rows += len(calls)
            if self._store_healthy and self._cached_rows + self._active_rows <= _MEMORY_CACHE_ROWS:
                self._active_cache.append(columns)
            full = self._active_rows >= self._max_block_rows
        self.stats["spooled"] += len(calls)
        if full:
            self._wake.set()

    # --- flusher (background thread) -------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(timeout=backoff or self._flush_interval)
            self._wake.clear()
            stopping = self._stop.is_set()
            ok = self._flush_once()
            self._write_stats()
            with self._idle:
                self._idle.notify_all()
            if stopping:
                return
            if ok:
                backoff = 0.0
            else:
                base = min(_MAX_BACKOFF_S, max(0.5, backoff * 2))
                backoff = random.uniform(base / 2, base)  # full jitter around the exponential step

    def _write_stats(self) -> None:
        """Leave a snapshot of the counters in the spool for ``spanledger status`` in another process."""
        try:
            snapshot = {
                "pid": os.getpid(),
                "time": time.time(),
                "store_healthy": self._store_healthy,
                "spool_bytes": self._spool.size_bytes,
                "stats": dict(self.stats),
            }
            tmp = self._spool.dir / "stats.json.tmp"
            tmp.write_text(json.dumps(snapshot))
            tmp.replace(self._spool.dir / "stats.json")
        except OSError:
            _log.debug("could not write exporter stats", exc_info=True)

    def _seal(self) -> None:
        with self._lock:
            segment = self._spool.seal()
            if segment is not None and (
                len(self._active_cache) and sum(_codec.row_count(c) for c in self._active_cache) == self._active_rows
            ):
                self._cache[segment] = self._active_cache
                self._cached_rows += self._active_rows
            self._active_cache = []
            self._active_rows = 0

    def _flush_once(self) -> bool:
        """Insert every sealed segment, oldest first; False at the first failure."""
        try:
            self._seal()
            for segment in self._spool.ready_segments():
                self._insert_segment(segment)
        except SpanledgerError as exc:
            self._drop_cache()
            self.stats["insert_failures"] += 1
            if self._store_healthy:
                _log.error(
                    "spanledger cannot reach the store (%s); calls stay in the spool %s and will be retried",
                    exc,
                    self._spool.dir,
                )
            self._store_healthy = False
            return False
        except Exception:
            self._drop_cache()
            self.stats["insert_failures"] += 1
            self._store_healthy = False
            _log.exception("spanledger flush failed; calls stay in the spool and will be retried")
            return False
        if not self._store_healthy:
            _log.warning("spanledger store is reachable again; the spool is drained")
        self._store_healthy = True
        return True

    def _drop_cache(self) -> None:
        """While the store is down, keep memory flat: sealed segments are read back from disk later."""
        with self._lock:
            self._cache.clear()
            self._cached_rows = 0
            self._active_cache = []

    def _insert_segment(self, segment: Path) -> None:
        with self._lock:
            blocks = self._cache.get(segment)
        replay = blocks is None
        if blocks is None:
            blocks = []
            for payload in self._spool.read(segment):
                try:
                    blocks.append(_codec.decode(payload))
                except ValueError:
                    self.stats["rejected:spool_unreadable"] += 1
                    _log.error("skipping an unreadable record in spool segment %s", segment)
        columns = _codec.concat(blocks) if blocks else []
        rows = _codec.row_count(columns)
        store = self.store
        for part, begin in enumerate(range(0, rows, self._max_block_rows)):
            chunk = [col[begin : begin + self._max_block_rows] for col in columns]
            store.insert_calls(chunk, dedup_token=f"{segment.name}:{part}")
        with self._lock:
            self._spool.remove(segment)
            if not replay:
                self._cache.pop(segment, None)
                self._cached_rows -= rows
        self.stats["stored"] += rows
        if replay:
            self.stats["replayed"] += rows

    def _pending(self) -> bool:
        with self._lock:
            return self._spool.active_bytes > 0 or bool(self._spool.ready_segments())

    # --- flush and shutdown -----------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Insert everything accepted so far. True when it is all in the store — or, while the store
        is down, when it is all safe in the spool and nothing was refused since the last flush."""
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = self._shutdown
        while not flushed:
            with self._idle:
                self._wake.set()
                self._idle.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            if not self._pending():
                flushed = True
            elif not self._store_healthy or time.monotonic() >= deadline:
                break
        if not flushed and not self._store_healthy:
            flushed = self._refused_since_flush == 0  # durable in the spool, replayed when the store is back
        refused, self._refused_since_flush = self._refused_since_flush, 0
        if self._forward_to is not None:
            flushed = bool(self._forward_to.force_flush(max(0, int((deadline - time.monotonic()) * 1000)))) and flushed
        return flushed and refused == 0

    def shutdown(self) -> None:
        """Stop accepting spans, try one last insert (bounded), and leave anything unsent in the spool."""
        if self._shutdown:
            return
        self._shutdown = True
        self._stop.set()
        self._wake.set()
        self._flusher.join(timeout=self._shutdown_timeout)
        if self._flusher.is_alive():
            _log.warning("spanledger shutdown timed out; unsent calls stay in the spool %s", self._spool.dir)
        with self._lock:
            self._spool.close()
        if self._forward_to is not None:
            try:
                self._forward_to.shutdown()
            except Exception:
                _log.exception("shutting down the forward exporter failed")
        if self._store is not None and self._owns_store:
            self._store.close()


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
