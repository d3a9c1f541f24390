"""What the pipeline accepted and the store has not confirmed yet: the durable spool, plus an in-memory copy
of its newest blocks so that, while the store keeps up, a flush never reads back what was just written.

While the store is failing the copy is dropped (memory stays flat however long the outage lasts) and
sealed segments are read back from disk when it returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import codec
from .spool import Spool

MEMORY_ROWS = 200_000
"""Rows kept in memory at most; beyond that a flush reads the segment back from the spool."""


@dataclass(frozen=True, slots=True)
class Block:
    """Records of one kind (LLM calls or tool executions) spooled together, as columns."""

    columns: list[list[Any]]
    check: bool
    """They may be in the store already (a client's re-delivery): look them up before inserting."""
    kind: codec.Kind = codec.CALLS

    @property
    def rows(self) -> int:
        return codec.row_count(self.columns)


class Backlog:
    """The spool and its in-memory copy, safe to use from the submitting threads and the flusher."""

    def __init__(self, spool: Spool, *, memory_rows: int = MEMORY_ROWS) -> None:
        self.spool = spool
        self.memory_rows = memory_rows
        self.lock = threading.Lock()
        self.keep_in_memory = True
        """Set by the flusher: False while the store is failing."""
        self._active: list[Block] = []
        self._active_rows = 0
        self._sealed: dict[Path, list[Block]] = {}
        self._sealed_rows = 0

    def append(self, columns: list[list[Any]], *, check: bool = False, kind: codec.Kind = codec.CALLS) -> int:
        """Durably append one block of ``kind`` (raises ``SpoolFullError`` at the cap); returns the rows waiting
        in the active file. ``check``: the records may be stored already (see :func:`.codec.encode`)."""
        rows = codec.row_count(columns)
        payload = codec.encode(columns, check=check, kind=kind)
        with self.lock:
            self.spool.append(payload)
            self._active_rows += rows
            if self.keep_in_memory and self._sealed_rows + self._active_rows <= self.memory_rows:
                self._active.append(Block(columns, check, kind))
            return self._active_rows

    def seal(self) -> None:
        """Make the active file a segment, keeping its in-memory copy when that copy is complete."""
        with self.lock:
            self._seal()

    def _seal(self) -> None:
        segment = self.spool.seal()
        if segment is not None and self._active and sum(b.rows for b in self._active) == self._active_rows:
            self._sealed[segment] = self._active
            self._sealed_rows += self._active_rows
        self._active = []
        self._active_rows = 0

    def rewrite(self, edit: Callable[[list[list[Any]], codec.Kind], tuple[list[list[Any]], int] | None]) -> int:
        """Pass every waiting block through ``edit``, on disk and in memory: it returns ``None`` to leave a block as
        it is, else the block's new columns (no rows: the block goes) and how many rows it changed or removed;
        returns the sum of those counts.

        The active file is sealed first; each changed segment is replaced atomically (:meth:`Spool.replace`), so
        a crash leaves a segment as it was or as edited. Call it while the flusher holds its inserts (under the
        maintenance lease): a block being inserted meanwhile would go in as it was.
        """
        changed = 0
        with self.lock:
            self._seal()
            for segment in self.spool.ready_segments():
                kept: list[bytes] = []
                blocks: list[Block] = []
                touched = False
                for payload in self.spool.read(segment):
                    try:
                        record = codec.decode_record(payload)
                    except ValueError:
                        kept.append(payload)  # unreadable here: left for the flusher to count
                        continue
                    outcome = edit(record.columns, record.kind)
                    if outcome is None:
                        kept.append(payload)
                        blocks.append(Block(record.columns, record.check, record.kind))
                        continue
                    touched = True
                    edited, affected = outcome
                    changed += affected
                    if codec.row_count(edited):
                        kept.append(codec.encode(edited, check=record.check, kind=record.kind))
                        blocks.append(Block(edited, record.check, record.kind))
                if not touched:
                    continue
                self.spool.replace(segment, kept)
                old = self._sealed.pop(segment, None)
                if old is not None:
                    self._sealed_rows -= sum(b.rows for b in old)
                    if kept:
                        self._sealed[segment] = blocks
                        self._sealed_rows += sum(b.rows for b in blocks)
        return changed

    def segments(self) -> list[Path]:
        with self.lock:
            return self.spool.ready_segments()

    def load(self, segment: Path) -> tuple[list[Block], bool, int]:
        """A segment's blocks, whether they were read back from disk (a replay), and how many records of it
        could not be decoded (skipped)."""
        with self.lock:
            blocks = self._sealed.get(segment)
        if blocks is not None:
            return blocks, False, 0
        blocks, unreadable = [], 0
        for payload in self.spool.read(segment):
            try:
                record = codec.decode_record(payload)
                blocks.append(Block(record.columns, record.check, record.kind))
            except ValueError:
                unreadable += 1
        return blocks, True, unreadable

    def done(self, segment: Path) -> None:
        """Every row of the segment is in the store (or set aside): delete it."""
        with self.lock:
            self.spool.remove(segment)
            blocks = self._sealed.pop(segment, None)
            if blocks is not None:
                self._sealed_rows -= sum(b.rows for b in blocks)

    def forget_memory(self) -> None:
        """While the store is down, keep memory flat: sealed segments are read back from disk later."""
        with self.lock:
            self._sealed.clear()
            self._sealed_rows = 0
            self._active = []

    def pending(self) -> bool:
        with self.lock:
            return self.spool.active_bytes > 0 or bool(self.spool.ready_segments())

    def close(self) -> None:
        with self.lock:
            self.spool.close()
