"""The flusher: a background thread that moves sealed spool segments into the store, oldest first.

Every ``interval`` it seals the spool and inserts each sealed segment as blocks of at most
``max_block_rows`` rows — coalescing many small batches, because every ClickHouse insert has a fixed cost.
A segment's LLM calls go to ``llm_calls`` and its tool executions to ``tool_calls``, each kind in blocks of
its own, the same way. For each block:

1. Rows whose value a column cannot hold are set aside in the quarantine (``out_of_range:<column>``).
2. Rows the raw table already holds are dropped (``Store.stored_call_keys``): a call delivered again
   after a crash, a restart or a client's retry is counted once, whichever process stored it first.
3. The rest is inserted with a deduplication token derived from the segment and the block, so a block
   retried after an ambiguous failure is dropped by the raw table and by every rollup.

A store error is classified (:class:`~spanledger.StoreDataError` or not). Unreachable, overloaded or any
other store trouble: the segment stays, and the flusher retries with exponential backoff and full jitter.
Refused *rows*: the block is bisected, each half inserted under its own token, down to the single rows the
store refuses, which go to the quarantine — so one bad call can never hold back any other.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import SpanledgerError, StoreDataError
from .._store import lease
from .._store.store import Store
from . import codec
from .backlog import Backlog, Block
from .quarantine import Quarantine

_log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class Flusher:
    """Inserts what the backlog holds; one per pipeline.

    Args:
        backlog: The spool (and its in-memory copy) to drain.
        quarantine: Where refused rows go.
        store: Returns the open store (opened on first use).
        stats: The pipeline's counters (``stored``, ``replayed``, ``quarantined``, ``skipped:duplicate_stored``,
            ``insert_failures``, ``rejected:spool_unreadable``).
        interval: Seconds between flushes.
        max_block_rows: Rows per insert.
        check_stored: Drop rows the store already holds before inserting (the cross-restart dedup).
        on_idle: Called after every flush attempt (the pipeline writes its counters then).
    """

    def __init__(
        self,
        backlog: Backlog,
        quarantine: Quarantine,
        store: Callable[[], Store],
        stats: Counter[str],
        *,
        interval: float,
        max_block_rows: int,
        check_stored: bool = True,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.backlog = backlog
        self.quarantine = quarantine
        self._store = store
        self.stats = stats
        self.interval = interval
        self.max_block_rows = max_block_rows
        self.check_stored = check_stored
        self.healthy = True
        """False from a failed flush until the next one that drains everything."""
        self.last_error = ""
        self.paused_by = ""
        """Who holds the maintenance lease while this flusher waits for it (a rebuild), else ''."""
        self._on_idle = on_idle
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="spanledger-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Ask for one last flush and wait up to ``timeout`` seconds; False when it did not finish."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()

    # --- the loop -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:  # open the store now, not at the first insert: that may come at interpreter exit, too late to import
            self._store().prepare_inserts()
        except Exception:
            _log.debug("the store could not be opened yet; the first flush will try again", exc_info=True)
        backoff = 0.0
        while True:
            self._wake.wait(timeout=backoff or self.interval)
            self._wake.clear()
            stopping = self._stop.is_set()
            ok = self.flush_once()
            if self._on_idle is not None:
                self._on_idle()
            with self.idle:
                self.idle.notify_all()
            if stopping:
                return
            if ok:
                backoff = 0.0
            else:
                base = min(MAX_BACKOFF_S, max(0.5, backoff * 2))
                backoff = random.uniform(base / 2, base)  # full jitter around the exponential step

    def flush_once(self) -> bool:
        """Insert every sealed segment, oldest first; False at the first store failure (nothing is lost)."""
        try:
            self.backlog.seal()
            for segment in self.backlog.segments():
                # asked before every segment, not once per flush: a backlog takes many inserts to drain, and
                # a rebuild must not find one of them under way once its grace period is over
                if self._held():
                    return True
                self._insert_segment(segment)
        except Exception as exc:  # a store failure, or our own bug: the segment stays, retried with backoff
            self.backlog.forget_memory()
            self.backlog.keep_in_memory = False
            self.stats["insert_failures"] += 1
            self.last_error = " ".join(str(exc).split())[:500]
            if self.healthy:
                if isinstance(exc, SpanledgerError):
                    _log.error(
                        "spanledger cannot reach the store (%s); calls stay in the spool and will be retried", exc
                    )
                else:
                    _log.exception("spanledger flush failed; calls stay in the spool and will be retried")
            self.healthy = False
            return False
        if not self.healthy:
            _log.warning("spanledger store is reachable again; the spool is drained")
        self.paused_by = ""
        self.healthy = True
        self.last_error = ""
        self.backlog.keep_in_memory = True
        return True

    def _held(self) -> bool:
        """Whether a rollup rebuild holds the store: the calls then wait in the spool (new ones still come in)."""
        holder = lease.held(self._store()) or ""
        if holder and not self.paused_by:
            _log.info("spanledger holds its inserts: the store is being rebuilt by %s", holder)
        elif self.paused_by and not holder:
            _log.info("spanledger resumes its inserts: the rebuild by %s is over", self.paused_by)
        self.paused_by = holder
        return bool(holder)

    # --- one segment -----------------------------------------------------------------------------
    def _insert_segment(self, segment: Path) -> None:
        blocks, replay, unreadable = self.backlog.load(segment)
        if unreadable:
            self.stats["rejected:spool_unreadable"] += unreadable
            _log.error("skipped %d unreadable record(s) in spool segment %s", unreadable, segment)
        for kind in (codec.CALLS, codec.TOOLS):  # LLM calls first, then tool executions, each in blocks
            mine = [b for b in blocks if b.kind is kind]
            if mine:
                self._insert_kind(segment, kind, mine, replay)
        self.backlog.done(segment)

    def _insert_kind(self, segment: Path, kind: codec.Kind, blocks: list[Block], replay: bool) -> None:
        columns = kind.concat([b.columns for b in blocks])
        rows = codec.row_count(columns)
        # Look the records up in the store when they may be there already: a client's re-delivery, or a segment
        # read back from disk (left by a crash, or retried after a failure, maybe a half-done bisection).
        # Calls an exporter in this process spooled once and inserts now cannot be there: no look-up.
        check = self.check_stored and (replay or any(b.check for b in blocks))
        prefix = segment.name if kind is codec.CALLS else f"{segment.name}:tools"  # the calls' tokens as before
        stored = 0
        for part, begin in enumerate(range(0, rows, self.max_block_rows)):
            chunk = [col[begin : begin + self.max_block_rows] for col in columns]
            stored += self._insert_block(kind, chunk, f"{prefix}:{part}", source=segment.name, check=check)
        if kind is codec.CALLS:
            self.stats["stored"] += stored
            if replay:
                self.stats["replayed"] += stored
        else:
            self.stats["tools_stored"] += stored

    def _insert_block(self, kind: codec.Kind, chunk: list[list[Any]], token: str, *, source: str, check: bool) -> int:
        """Insert one block (its rows fixed by the segment, so its token always names the same rows);
        returns the rows inserted."""
        bad = kind.out_of_range(chunk)
        if bad:
            for column in sorted(set(bad.values())):
                rows = [r for r, c in bad.items() if c == column]
                error = f"a {column} value its column cannot hold"
                self._set_aside(kind, codec.select(chunk, rows), f"out_of_range:{column}", error, source)
            keep = [r for r in range(codec.row_count(chunk)) if r not in bad]
            chunk = codec.select(chunk, keep)
        already = self._stored(kind, chunk) if check else set()
        return self._insert_range(kind, chunk, already, 0, codec.row_count(chunk), token, source)

    def _stored(self, kind: codec.Kind, chunk: list[list[Any]]) -> set[tuple[int, int]]:
        if not codec.row_count(chunk):
            return set()
        return self._store().stored_call_keys(list(zip(chunk[kind.trace], chunk[kind.span], strict=True)))

    def _insert(self, kind: codec.Kind, part: list[list[Any]], token: str) -> None:
        store = self._store()
        if kind is codec.CALLS:
            store.insert_calls(part, dedup_token=token)
        else:
            store.insert_rows(kind.name, part, kind.names, kind.types, dedup_token=token, column_oriented=True)

    def _insert_range(
        self,
        kind: codec.Kind,
        chunk: list[list[Any]],
        already: set[tuple[int, int]],
        lo: int,
        hi: int,
        token: str,
        source: str,
    ) -> int:
        """Rows ``[lo, hi)`` of the block, less those already stored, under a token naming that range; a range
        the store refuses for its data is split in two, down to single rows, which are quarantined."""
        keep, seen = [], set()
        traces, spans = chunk[kind.trace], chunk[kind.span]
        for r in range(lo, hi):
            key = (traces[r], spans[r])
            if key in already or key in seen:
                self.stats["skipped:duplicate_stored"] += 1
                continue
            seen.add(key)
            keep.append(r)
        if not keep:
            return 0
        part = chunk if len(keep) == codec.row_count(chunk) else codec.select(chunk, keep)
        try:
            self._insert(kind, part, token)
            return len(keep)
        except StoreDataError as exc:
            if hi - lo == 1:
                self._set_aside(kind, part, "store_rejected", str(exc), source)
                return 0
            _log.warning(
                "the store refused a block of %d %s for its data (%s); splitting it", len(keep), kind.name, exc
            )
        if not already and self.check_stored and (lo, hi) == (0, codec.row_count(chunk)):
            # halves go in under tokens of their own; if this is ever retried (a crash mid-way), the retry must
            # see what the halves stored: so from here on the records are looked up (segments read back from
            # disk always are)
            already = self._stored(kind, chunk)
        mid = (lo + hi) // 2
        return self._insert_range(kind, chunk, already, lo, mid, f"{token}/{lo}-{mid}", source) + self._insert_range(
            kind, chunk, already, mid, hi, f"{token}/{mid}-{hi}", source
        )

    def _set_aside(self, kind: codec.Kind, columns: list[list[Any]], reason: str, error: str, source: str) -> None:
        n = codec.row_count(columns)
        path = self.quarantine.put(columns, reason=reason, error=error, source=source, kind=kind)
        self.stats["quarantined"] += n
        self.stats[f"quarantined:{reason}"] += n
        what = "call(s)" if kind is codec.CALLS else "tool execution(s)"
        _log.error("spanledger set %d %s aside in %s (%s: %s)", n, what, path, reason, error)


def write_stats(directory: Path, snapshot: dict[str, Any]) -> None:
    """Leave a snapshot of the counters in the spool for ``spanledger status`` in another process."""
    try:
        tmp = directory / "stats.json.tmp"
        tmp.write_text(json.dumps({"pid": os.getpid(), "time": time.time(), **snapshot}))
        tmp.replace(directory / "stats.json")
    except OSError:
        _log.debug("could not write pipeline stats", exc_info=True)
