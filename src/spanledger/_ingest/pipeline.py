"""The ingest pipeline: the one way an LLM call gets into the store, whichever door it came through.

``submit(calls)`` (called by :class:`~spanledger.CostExporter`, the OTLP ingest of ``spanledger serve`` and
``record_call``) drops calls seen before, prices the rest, sets aside any that lie outside the documented
bounds, appends them to the crash-safe spool (``fsync``'d before it returns) and hands them to the
hooks; a :class:`~.flusher.Flusher` thread inserts them. It returns a :class:`BatchResult` for that batch
alone, so no caller has to diff shared counters.

One pipeline per store and spool per process (:func:`acquire`): an exporter and a recorder in the same
process share its spool, flusher, memory of recent calls and metrics.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .._config import env_bool, env_int, env_str
from .._errors import SpanledgerError
from .._model.call import LLMCall
from .._model.tool import ToolCall
from .._pricing.pricer import Pricer
from .._store.dsn import redact as _redact
from .._store.schema import DEDUP_WINDOW_HOURS
from .._store.store import Store
from . import codec, metrics
from .backlog import Backlog
from .flusher import Flusher, write_stats
from .hooks import Hook, Hooks
from .paths import default_spool_dir
from .quarantine import Quarantine
from .recent import Keyed, Recent
from .spool import Spool, SpoolFullError

_log = logging.getLogger(__name__)

R = TypeVar("R", bound=Keyed)

RECENT_KEYS = 100_000
"""Calls remembered in memory for the quick duplicate check (the store answers for older ones)."""

RETRYABLE = frozenset({"spool_full", "spool_error", "shutdown", "export_error"})
"""Rejection reasons that a client should retry later (the OTLP ingest answers 503 for them). The others
(``out_of_range:*`` set aside in the quarantine, an adapter's ``unreadable``) would be refused again."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of one submitted batch."""

    accepted: int = 0
    """Calls spooled: they will be in the store once the flusher has run."""
    duplicates: int = 0
    """Calls already accepted before (the same span again, or the same call from another instrumentation)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Refused calls by reason: :data:`RETRYABLE` ones (retry later), ``out_of_range:<column>``
    (set aside in the quarantine), or an adapter's own (``unreadable``)."""
    messages: tuple[str, ...] = ()

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def retryable(self) -> bool:
        """Whether some calls were refused only for now (a full spool, a pipeline shutting down …)."""
        return any(reason in RETRYABLE for reason in self.rejected)

    def plus(self, reason: str, count: int, message: str = "") -> BatchResult:
        """This result with ``count`` more calls rejected for ``reason``."""
        if not count:
            return self
        rejected = dict(self.rejected)
        rejected[reason] = rejected.get(reason, 0) + count
        return BatchResult(self.accepted, self.duplicates, rejected, (*self.messages, *([message] if message else [])))


class Pipeline:
    """Dedup, pricing, spool and flusher for one store (see the module docs).

    Every argument falls back to a ``SPANLEDGER_*`` environment variable, then to its default.

    Args:
        store: An open :class:`Store`, or its DSN (opened on first insert, and closed at shutdown).
        price_file: Price rules (``SPANLEDGER_PRICE_FILE``).
        spool_dir: Spool root (``SPANLEDGER_SPOOL_DIR``; default beside an embedded store's directory).
        spool_max_bytes: Cap on the spool (``SPANLEDGER_SPOOL_MAX_BYTES``, 1 GiB).
        fsync: ``fsync`` each batch (``SPANLEDGER_SPOOL_FSYNC``, on).
        flush_interval_ms: Time between inserts (``SPANLEDGER_FLUSH_INTERVAL_MS``, 1000).
        max_block_rows: Rows per insert (``SPANLEDGER_MAX_BLOCK_ROWS``, 50000).
        shutdown_timeout_ms: Longest last flush at shutdown (``SPANLEDGER_SHUTDOWN_TIMEOUT_MS``, 5000).
        dedup: Look up each block in the store before inserting it, so a call delivered again after a crash
            or by a client's retry is counted once (``SPANLEDGER_DEDUP``, on).
        dedup_window_hours: How long the store remembers a stored call for that look-up
            (``SPANLEDGER_DEDUP_WINDOW_HOURS``, 48).
    """

    def __init__(
        self,
        store: str | Store,
        *,
        price_file: str | None = None,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int | None = None,
        fsync: bool | None = None,
        flush_interval_ms: int | None = None,
        max_block_rows: int | None = None,
        shutdown_timeout_ms: int | None = None,
        dedup: bool | None = None,
        dedup_window_hours: int | None = None,
    ) -> None:
        self._store = store if isinstance(store, Store) else None
        self._window_hours = env_int("SPANLEDGER_DEDUP_WINDOW_HOURS", dedup_window_hours, DEDUP_WINDOW_HOURS, minimum=1)
        self._window_set = False
        self.dsn = store.dsn if isinstance(store, Store) else store
        self._owns_store = self._store is None
        self._store_lock = threading.Lock()
        self.name = _redact(self.dsn)
        self.price_file = price_file
        self.pricer = Pricer(price_file=price_file)
        self.stats: Counter[str] = Counter()
        """``spooled``, ``stored``, ``replayed``, ``unpriced``, ``quarantined``, ``skipped:<reason>``,
        ``rejected:<reason>``, ``insert_failures``, ``tools_spooled``, ``tools_stored`` (and the adapters'
        ``received``, ``skipped:not_llm`` …)."""
        root = env_str("SPANLEDGER_SPOOL_DIR", str(spool_dir) if spool_dir is not None else None, "")
        self.spool_root = Path(root) if root else default_spool_dir(self.dsn)
        do_fsync = env_bool("SPANLEDGER_SPOOL_FSYNC", fsync, True)
        spool = Spool(
            self.spool_root,
            max_bytes=env_int("SPANLEDGER_SPOOL_MAX_BYTES", spool_max_bytes, 1 << 30, minimum=1),
            fsync=do_fsync,
        )
        self.backlog = Backlog(spool)
        self.quarantine = Quarantine(self.spool_root, fsync=do_fsync)
        self._max_block_rows = env_int("SPANLEDGER_MAX_BLOCK_ROWS", max_block_rows, 50_000, minimum=1)
        self._shutdown_timeout = env_int("SPANLEDGER_SHUTDOWN_TIMEOUT_MS", shutdown_timeout_ms, 5000) / 1000
        self._recent = Recent(RECENT_KEYS)
        self._hooks = Hooks(self.stats)
        self._refused_since_flush = 0
        self._closed = False
        self.flusher = Flusher(
            self.backlog,
            self.quarantine,
            lambda: self.store,
            self.stats,
            interval=env_int("SPANLEDGER_FLUSH_INTERVAL_MS", flush_interval_ms, 1000, minimum=10) / 1000,
            max_block_rows=self._max_block_rows,
            check_stored=env_bool("SPANLEDGER_DEDUP", dedup, True),
            on_idle=self._write_stats,
        )
        metrics.register(self)
        self.flusher.start()

    @property
    def store(self) -> Store:
        """The store, opened (and its schema created) on first use."""
        with self._store_lock:
            if self._store is None:
                self._store = Store(self.dsn)
            if not self._window_set:
                self._window_set = True
                try:
                    self._store.set_dedup_window(self._window_hours)
                except SpanledgerError as exc:  # the default window stays; never fatal
                    _log.warning("could not set the dedup window to %d hours: %s", self._window_hours, exc)
                from .._privacy.retention import apply_from_env

                apply_from_env(self._store)  # SPANLEDGER_*RETENTION_DAYS, when set; never fatal
            return self._store

    @property
    def spool(self) -> Spool:
        return self.backlog.spool

    @property
    def spool_bytes(self) -> int:
        return self.backlog.spool.size_bytes

    # --- submit (the caller's thread) -----------------------------------------------------------
    def submit(self, calls: Sequence[LLMCall], *, redelivered: bool = False) -> BatchResult:
        """Accept normalised calls: dedup, price, bound-check, spool (durable on return), hooks.

        ``redelivered``: the calls come from outside this process (an OTLP client, ``record_call`` with a
        request id) and may have been delivered before — to an earlier run of this process, or to another
        writer: they are looked up in the store before they are inserted.
        """
        fresh, result = self._claim(calls, "LLM calls")
        if not fresh:
            return result
        for call in fresh:
            self.pricer.price(call)
        accepted, result = self._spool(codec.CALLS, fresh, result, redelivered)
        unpriced = sum(1 for c in accepted if c.cost is None)
        if unpriced:
            self.stats["unpriced"] += unpriced
        self._hooks.publish(accepted)
        return result

    def submit_tools(self, tools: Sequence[ToolCall], *, redelivered: bool = False) -> BatchResult:
        """Accept normalised tool executions: dedup, bound-check, spool (durable on return) — the same path as
        :meth:`submit`'s, into ``tool_calls``; nothing is priced and the hooks never see them."""
        fresh, result = self._claim(tools, "tool executions")
        if not fresh:
            return result
        return self._spool(codec.TOOLS, fresh, result, redelivered)[1]

    def _claim(self, records: Sequence[R], what: str) -> tuple[list[R], BatchResult]:
        """The records not accepted before (the rest counted as duplicates); none while shut down."""
        if self._closed:
            _log.warning("spanledger pipeline for %s is shut down; %d %s refused", self.name, len(records), what)
            return [], BatchResult(rejected={"shutdown": len(records)} if records else {})
        fresh, duplicates = self._recent.claim(records)
        if duplicates:
            self.stats["skipped:duplicate"] += duplicates
        return fresh, BatchResult(duplicates=duplicates)

    def _spool(
        self, kind: codec.Kind, fresh: list[R], result: BatchResult, redelivered: bool
    ) -> tuple[list[R], BatchResult]:
        """Set aside the records past a bound, append the rest to the spool; returns those accepted."""
        columns = kind.to_columns(fresh)
        bad = kind.out_of_range(columns)
        if bad:
            fresh, columns, result = self._set_aside(kind, fresh, columns, bad, result)
            if not fresh:
                return [], result
        what = "LLM calls" if kind is codec.CALLS else "tool executions"
        try:
            waiting = self.backlog.append(columns, check=redelivered, kind=kind)
        except SpoolFullError as exc:
            self._recent.release(fresh)
            self.stats["rejected:spool_full"] += len(fresh)
            self._refused_since_flush += len(fresh)
            _log.error("spanledger refused %d %s: %s", len(fresh), what, exc)
            return [], result.plus("spool_full", len(fresh), str(exc))
        except OSError as exc:
            self._recent.release(fresh)
            self.stats["rejected:spool_error"] += len(fresh)
            self._refused_since_flush += len(fresh)
            _log.error("spanledger could not write %d %s to the spool: %s", len(fresh), what, exc)
            return [], result.plus("spool_error", len(fresh), f"the spool cannot be written: {exc.strerror or exc}")
        self.stats["spooled" if kind is codec.CALLS else "tools_spooled"] += len(fresh)
        if waiting >= self._max_block_rows:
            self.flusher.wake()
        return fresh, BatchResult(len(fresh), result.duplicates, result.rejected, result.messages)

    def _set_aside(
        self, kind: codec.Kind, records: list[R], columns: list[list[Any]], bad: dict[int, str], result: BatchResult
    ) -> tuple[list[R], list[list[Any]], BatchResult]:
        """Quarantine the records with a value past its column's bound (a cost of $1M or more for one call)."""
        what = "call(s)" if kind is codec.CALLS else "tool execution(s)"
        for column in sorted(set(bad.values())):
            rows = sorted(r for r, c in bad.items() if c == column)
            reason = f"out_of_range:{column}"
            worst = max((columns[kind.names.index(column)][r] for r in rows), key=_magnitude)
            message = f"{len(rows)} {what} with {column} {worst} past its bound set aside in the quarantine"
            self.quarantine.put(codec.select(columns, rows), reason=reason, error=message, source="submit", kind=kind)
            self.stats["quarantined"] += len(rows)
            self.stats[f"quarantined:{reason}"] += len(rows)
            self.stats[f"rejected:{reason}"] += len(rows)
            _log.error("spanledger: %s", message)
            result = result.plus(reason, len(rows), message)
        keep = [r for r in range(len(records)) if r not in bad]
        return [records[r] for r in keep], codec.select(columns, keep), result

    # --- hooks -------------------------------------------------------------------------------------
    def add_hook(self, hook: Hook) -> None:
        """Call ``hook`` with every batch of accepted, priced calls (on the pipeline's hook thread)."""
        self._hooks.add(hook)

    def remove_hook(self, hook: Hook) -> None:
        self._hooks.remove(hook)

    # --- the quarantine --------------------------------------------------------------------------
    def replay_quarantine(self, *, dry_run: bool = False) -> dict[str, int]:
        """Price every quarantined call again (current price rules) and submit those now within bounds.

        Returns ``entries``, ``calls`` looked at, ``replayed`` (spooled; in the store after the next flush) and
        ``kept`` (still out of bounds, left in the quarantine). Calls the store already holds are dropped at
        the flush, so a replay never counts a call twice. ``dry_run`` changes nothing.
        """
        report = {"entries": 0, "calls": 0, "replayed": 0, "kept": 0}
        for entry in self.quarantine.entries():
            with _locked(entry.path) as held:
                if not held or not entry.path.exists():
                    continue  # another process is replaying it
                try:
                    record = self.quarantine.load_record(entry)
                    kind = record.kind
                    calls = kind.from_columns(record.columns)
                except (OSError, ValueError, TypeError):
                    _log.error("cannot read quarantine entry %s; left in place", entry.path)
                    continue
                report["entries"] += 1
                report["calls"] += len(calls)
                if kind is codec.CALLS:  # tool executions have no price: they go back as they are
                    for call in calls:
                        call.flags = [f for f in call.flags if f not in ("unpriced", "cost_rounded")]
                        self.pricer.price(call)
                columns = kind.to_columns(calls)
                bad = kind.out_of_range(columns)
                report["kept"] += len(bad)
                report["replayed"] += len(calls) - len(bad)
                if dry_run or len(bad) == len(calls):
                    continue
                keep = [r for r in range(len(calls)) if r not in bad]
                if bad:
                    kept = codec.select(columns, sorted(bad))
                    self.quarantine.put(kept, reason=entry.reason, error=entry.error, source=entry.source, kind=kind)
                self.backlog.append(codec.select(columns, keep), check=True, kind=kind)
                self.stats["replayed_from_quarantine"] += len(keep)
                self.quarantine.remove(entry)
        if not dry_run:
            self.flusher.wake()
        return report

    # --- flush and shutdown -------------------------------------------------------------------------
    def _write_stats(self) -> None:
        snapshot = {
            "store_healthy": self.flusher.healthy,
            "last_error": self.flusher.last_error,
            "spool_bytes": self.spool_bytes,
            "stats": dict(self.stats),
        }
        write_stats(self.backlog.spool.dir, snapshot)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Insert everything accepted so far. True when it is all in the store — or, while the store is
        down, when it is all safe in the spool and nothing was refused since the last flush."""
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = self._closed
        while not flushed:
            with self.flusher.idle:
                self.flusher.wake()
                self.flusher.idle.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            if not self.backlog.pending():
                flushed = True
            elif not self.flusher.healthy or self.flusher.paused_by or time.monotonic() >= deadline:
                break
        if not flushed and self.flusher.paused_by:  # a rebuild holds the inserts: safe in the spool
            flushed = self._refused_since_flush == 0
        if not flushed and not self.flusher.healthy:
            flushed = self._refused_since_flush == 0  # durable in the spool, replayed when the store is back
        refused, self._refused_since_flush = self._refused_since_flush, 0
        self._hooks.drain(max(0.0, deadline - time.monotonic()))
        return flushed and refused == 0

    def shutdown(self) -> None:
        """Stop accepting calls, try one last insert (bounded), leave anything unsent in the spool."""
        if self._closed:
            return
        self._closed = True
        if not self.flusher.stop(self._shutdown_timeout):
            _log.warning("spanledger shutdown timed out; unsent calls stay in the spool %s", self.spool.dir)
        self._hooks.drain(1.0)
        self.backlog.close()
        if self._store is not None and self._owns_store:
            self._store.close()


def _magnitude(value: Any) -> Any:
    try:
        return abs(value)
    except TypeError:
        return 0


@contextlib.contextmanager
def _locked(path: Path) -> Any:
    """An exclusive, non-blocking ``flock`` on ``path`` for as long as the block runs (False when taken)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
