"""The quarantine: calls (or tool executions) set aside because the store refused their rows, or because they
lie outside the documented bounds (a cost of $1,000,000 or more for one call), so that they never stop
anything else.

Each entry is one file ``q-<time_ns>-<rand>.json`` under ``<spool root>/quarantine/``: a first line of JSON
saying why (``reason``, the store's ``error``, when, how many calls, where from), then the calls as a spool
payload (:mod:`.codec`). Files are written to a temporary name, ``fsync``'d and renamed, so an entry is
either whole or absent. Nothing here is deleted except by a successful replay (``spanledger quarantine
replay``), which prices the calls again with the current price rules and inserts them like any other call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import codec

_log = logging.getLogger(__name__)

DIRECTORY = "quarantine"


@dataclass(frozen=True, slots=True)
class Entry:
    """One quarantined batch of calls."""

    path: Path
    reason: str
    """``store_rejected`` (ClickHouse refused the rows) or ``out_of_range:<column>`` (a value past the bound)."""
    error: str
    """What the store or the bound check said."""
    calls: int
    quarantined_at: float
    """Unix time."""
    source: str
    """The spool segment (or entry point) the calls came from."""
    kind: str = codec.CALLS.name
    """``llm_calls``, or ``tool_calls`` for tool executions (counted in ``calls`` all the same)."""


class Quarantine:
    """Quarantined calls under ``root`` (shared by every process writing to the same store)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.dir = root / DIRECTORY
        self.fsync = fsync

    def put(
        self, columns: list[list[Any]], *, reason: str, error: str, source: str, kind: codec.Kind = codec.CALLS
    ) -> Path:
        """Durably set these records (of ``kind``) aside; returns the entry's file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        head = {
            "reason": reason,
            "error": error[:2000],
            "calls": codec.row_count(columns),
            "quarantined_at": time.time(),
            "source": source,
        }
        if kind is not codec.CALLS:
            head["kind"] = kind.name
        body = json.dumps(head, ensure_ascii=False).encode() + b"\n" + codec.encode(columns, kind=kind)
        name = f"q-{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.dir / name)
        if self.fsync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self.dir / name

    def entries(self) -> list[Entry]:
        """Every entry, oldest first; an unreadable file is logged and left where it is."""
        out = []
        for path in sorted(self.dir.glob("q-*.json")) if self.dir.is_dir() else []:
            try:
                with path.open("rb") as f:
                    head = json.loads(f.readline())
                out.append(
                    Entry(
                        path=path,
                        reason=str(head["reason"]),
                        error=str(head.get("error", "")),
                        calls=int(head["calls"]),
                        quarantined_at=float(head["quarantined_at"]),
                        source=str(head.get("source", "")),
                        kind=str(head.get("kind", codec.CALLS.name)),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                _log.error("unreadable quarantine entry %s is left in place", path)
        return out

    def load(self, entry: Entry) -> list[list[Any]]:
        """The entry's calls as columns; raises ``ValueError`` when the file cannot be read."""
        return self.load_record(entry).columns

    def load_record(self, entry: Entry) -> codec.Decoded:
        """The entry's records as columns, with their kind; raises ``ValueError`` when the file cannot be read."""
        data = entry.path.read_bytes()
        _, _, payload = data.partition(b"\n")
        return codec.decode_record(payload)

    def remove(self, entry: Entry) -> None:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()

    def summary(self) -> dict[str, Any]:
        """Calls and entries held, calls by reason, and the age of the oldest entry in seconds."""
        entries = self.entries()
        by_reason: dict[str, int] = {}
        for e in entries:
            by_reason[e.reason] = by_reason.get(e.reason, 0) + e.calls
        oldest = min((e.quarantined_at for e in entries), default=None)
        return {
            "dir": str(self.dir),
            "calls": sum(e.calls for e in entries),
            "entries": len(entries),
            "by_reason": by_reason,
            "oldest_age_s": round(time.time() - oldest, 1) if oldest is not None else None,
        }
