"""Forgetting a user outside the store: calls accepted but not inserted yet (the spools) and calls set aside (the
quarantine), rewritten without the user's calls — or with the pseudonym — file by file, each replaced atomically.

* The pipelines of this process: through :meth:`Backlog.rewrite`, which edits the files and their copy in memory
  under the backlog's lock (their flushers hold their inserts meanwhile: the maintenance lease).
* Spool directories whose process is gone (their ``LOCK`` is free): locked by us while we rewrite them, so a
  process starting meanwhile does not adopt them half-way.
* Spool directories of other running processes cannot be rewritten from here (their calls are in their memory
  too): they are only read, and what they hold of the user is reported.
* Quarantine entries: each rewritten under the same ``flock`` a replay takes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._ingest import codec
from .._ingest.pipeline import Pipeline
from .._ingest.quarantine import DIRECTORY as QUARANTINE_DIRECTORY
from .._ingest.spool import ACTIVE, records, write_records

_log = logging.getLogger(__name__)


def _at(kind: codec.Kind, *names: str) -> tuple[int, ...]:
    """Where the named columns are in a block of ``kind`` (those it has)."""
    return tuple(kind.names.index(n) for n in names if n in kind.names)


@dataclass(frozen=True, slots=True)
class Edit:
    """What happens to the user's calls in a block of columns: removed, or given ``pseudonym`` and no content."""

    ids: frozenset[str]
    tenant: str | None
    pseudonym: str | None = None

    def rows(self, columns: list[list[Any]], kind: codec.Kind = codec.CALLS) -> list[int]:
        user, tenant = _at(kind, "user_id", "tenant_id")
        users, tenants = columns[user], columns[tenant]
        return [
            r for r, user in enumerate(users) if user in self.ids and (self.tenant is None or tenants[r] == self.tenant)
        ]

    def __call__(self, columns: list[list[Any]], kind: codec.Kind = codec.CALLS) -> tuple[list[list[Any]], int] | None:
        """The block (LLM calls or tool executions) edited and the rows touched; ``None`` when it holds none of
        the user's records."""
        hit = self.rows(columns, kind)
        if not hit:
            return None
        if self.pseudonym is None:
            gone = set(hit)
            return codec.select(columns, [r for r in range(codec.row_count(columns)) if r not in gone]), len(hit)
        edited = [list(col) for col in columns]
        (user,) = _at(kind, "user_id")
        for r in hit:
            edited[user][r] = self.pseudonym
            for c in _at(kind, "prompt", "completion"):
                edited[c][r] = ""
        return edited, len(hit)


@dataclass(slots=True)
class SpoolReport:
    """What the spools and the quarantine held of the user."""

    calls: int = 0
    """Calls removed or rewritten (spools and quarantine)."""
    files: int = 0
    """Files replaced or removed."""
    running: dict[str, int] = field(default_factory=dict)
    """Spool directories of other running processes → the user's calls they hold (not rewritable from here)."""


def _owners(roots: Sequence[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_dir():
            yield from sorted(p for p in root.glob("owner-*") if p.is_dir())


@contextlib.contextmanager
def _flocked(path: Path, *, create: bool = False) -> Iterator[bool]:
    """An exclusive, non-blocking ``flock`` on ``path`` while the block runs; False when someone holds it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600) if create else os.open(path, os.O_RDONLY)
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


def _files(owner: Path) -> list[Path]:
    return [*sorted(owner.glob("seg-*.ready")), *([owner / ACTIVE] if (owner / ACTIVE).exists() else [])]


def _edit_file(path: Path, edit: Edit, *, write: bool, fsync: bool) -> int:
    """The user's calls in one spool file; rewritten without them (or anonymized) when ``write``."""
    try:
        payloads, _torn = records(path.read_bytes())
    except FileNotFoundError:
        return 0  # inserted and removed by its owner meanwhile
    out: list[bytes] = []
    found = 0
    for payload in payloads:
        try:
            record = codec.decode_record(payload)
        except ValueError:
            out.append(payload)
            continue
        outcome = edit(record.columns, record.kind)
        if outcome is None:
            out.append(payload)
            continue
        edited, hit = outcome
        found += hit
        if codec.row_count(edited):
            out.append(codec.encode(edited, check=record.check, kind=record.kind))
    if write and found:
        write_records(path, out, fsync=fsync)  # a torn tail, unreadable anyway, is left out
    return found


def forget_in_spools(
    roots: Sequence[Path], edit: Edit, *, pipelines: Sequence[Pipeline] = (), write: bool = True, fsync: bool = True
) -> SpoolReport:
    """Remove (or anonymize) the user's calls from every spool under ``roots`` and from ``pipelines`` of this
    process; with ``write=False`` only count them. See the module docs for what each kind of directory gets."""
    report = SpoolReport()
    ours = {p.spool.dir.resolve() for p in pipelines}
    for pipeline in pipelines:
        if write:
            found = pipeline.backlog.rewrite(edit)
        else:
            found = sum(_edit_file(f, edit, write=False, fsync=fsync) for f in _files(pipeline.spool.dir))
        report.calls += found
    for owner in _owners(roots):
        if owner.resolve() in ours:
            continue
        with _flocked(owner / "LOCK", create=True) as gone:
            for path in _files(owner):
                found = _edit_file(path, edit, write=write and gone, fsync=fsync)
                if not found:
                    continue
                if gone:
                    report.calls += found
                    report.files += 1
                else:
                    report.running[str(owner)] = report.running.get(str(owner), 0) + found
    for root in roots:
        calls, files = _forget_in_quarantine(root / QUARANTINE_DIRECTORY, edit, write=write, fsync=fsync)
        report.calls += calls
        report.files += files
    return report


def _forget_in_quarantine(directory: Path, edit: Edit, *, write: bool, fsync: bool) -> tuple[int, int]:
    calls = files = 0
    for path in sorted(directory.glob("q-*.json")) if directory.is_dir() else []:
        with _flocked(path) as ours:
            if not ours or not path.exists():
                continue  # a replay has it: it re-spools the calls, and the spools are looked at too
            try:
                head_line, _, payload = path.read_bytes().partition(b"\n")
                head = json.loads(head_line)
                record = codec.decode_record(payload)
            except (OSError, ValueError):
                _log.error("unreadable quarantine entry %s could not be checked for the user", path)
                continue
            outcome = edit(record.columns, record.kind)
            if outcome is None:
                continue
            edited, hit = outcome
            calls += hit
            files += 1
            if not write:
                continue
            if not codec.row_count(edited):
                path.unlink()
                continue
            head["calls"] = codec.row_count(edited)
            body = (
                json.dumps(head, ensure_ascii=False).encode()
                + b"\n"
                + codec.encode(edited, check=record.check, kind=record.kind)
            )
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            with open(tmp, "wb") as f:
                f.write(body)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
    return calls, files
