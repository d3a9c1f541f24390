"""A crash-safe local spool: what the exporter accepted but ClickHouse has not confirmed yet.

Layout: ``<root>/<owner>/`` per exporter process, holding an exclusive ``flock`` on ``<owner>/LOCK``.
Records are appended to ``active.log`` and ``fsync``'d before ``export()`` returns; sealing renames it
atomically to ``seg-<time_ns>-<rand>.ready`` (and ``fsync``s the directory). Segments are deleted only
after every block in them was inserted. A process that opens the spool adopts the directories of
owners that are gone (their lock is free), so a process killed with SIGKILL loses nothing.

Record format: ``b"SLR1"``, payload length (u32 BE), CRC-32 of the payload (u32 BE), payload. A torn
or corrupt tail (a crash mid-write) is detected by the length/CRC check; what precedes it is kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._errors import SpanledgerError

_log = logging.getLogger(__name__)

_MAGIC = b"SLR1"
_HEADER = struct.Struct(">4sII")
ACTIVE = "active.log"
_MAX_RECORD = 512 * 1024 * 1024


class SpoolFullError(SpanledgerError):
    """The spool reached its size cap; new data is refused (nothing already held is deleted)."""


class Spool:
    """The exporter's write-ahead spool in ``root`` (one owner directory per process).

    Args:
        root: Directory shared by every process exporting to the same store.
        max_bytes: Cap on all segments of this owner, adopted ones included.
        fsync: ``fsync`` every record (the default; ``False`` trades crash safety for speed).
    """

    def __init__(self, root: Path, *, max_bytes: int, fsync: bool = True) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)
        self.dir = root / f"owner-{os.getpid()}-{secrets.token_hex(4)}"
        self.dir.mkdir()
        self._lock_fd = os.open(self.dir / "LOCK", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._active: int | None = None
        self._active_bytes = 0
        self._bytes = 0
        self.corrupt_records = 0
        self.adopted_segments = self._adopt_orphans()
        self._bytes = sum(p.stat().st_size for p in self.ready_segments())

    # --- writing -------------------------------------------------------------------------
    def append(self, payload: bytes) -> None:
        """Durably append one record, or raise :class:`SpoolFullError` at the cap."""
        size = _HEADER.size + len(payload)
        if self._bytes + size > self.max_bytes:
            raise SpoolFullError(
                f"spool {self.dir} is full ({self._bytes} of {self.max_bytes} bytes); the store is not taking data"
            )
        if self._active is None:
            self._active = os.open(self.dir / ACTIVE, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            self._active_bytes = os.fstat(self._active).st_size
        record = _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload
        os.write(self._active, record)
        if self.fsync:
            os.fsync(self._active)
        self._active_bytes += size
        self._bytes += size

    def seal(self) -> Path | None:
        """Close the active file and make it a ready segment; ``None`` when nothing was written."""
        if self._active is None:
            return None
        os.close(self._active)
        self._active = None
        if self._active_bytes == 0:
            return None
        target = self.dir / f"seg-{time.time_ns():020d}-{secrets.token_hex(4)}.ready"
        os.rename(self.dir / ACTIVE, target)
        self._fsync_dir()
        self._active_bytes = 0
        return target

    @property
    def active_bytes(self) -> int:
        return self._active_bytes

    @property
    def size_bytes(self) -> int:
        """Bytes held: ready segments plus the active file."""
        return self._bytes

    # --- reading -------------------------------------------------------------------------
    def ready_segments(self) -> list[Path]:
        """Sealed segments, oldest first."""
        return sorted(self.dir.glob("seg-*.ready"))

    def read(self, segment: Path) -> Iterator[bytes]:
        """The intact records of a segment, in order; stops (and counts) at a torn or corrupt record."""
        with segment.open("rb") as f:
            data = f.read()
        payloads, torn = records(data)
        yield from payloads
        if torn is not None:
            self._corrupt(segment, *torn)

    def replace(self, segment: Path, payloads: Sequence[bytes]) -> None:
        """Replace a segment's records atomically (see :func:`write_records`); no records removes it."""
        before = segment.stat().st_size
        after = write_records(segment, payloads, fsync=self.fsync)
        self._bytes = max(0, self._bytes - before + after)

    def remove(self, segment: Path) -> None:
        """Delete a segment whose every block is in the store."""
        size = segment.stat().st_size
        segment.unlink()
        self._fsync_dir()
        self._bytes = max(0, self._bytes - size)

    def close(self) -> None:
        """Seal what is pending and release the lock; an empty owner directory is removed."""
        self.seal()
        if not self.ready_segments():
            for name in ("LOCK", "stats.json"):
                (self.dir / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.dir.rmdir()
        os.close(self._lock_fd)

    # --- internals -----------------------------------------------------------------------
    def _corrupt(self, segment: Path, offset: int, why: str) -> None:
        self.corrupt_records += 1
        _log.error("spool segment %s: %s at byte %d; the rest of the segment is skipped", segment, why, offset)

    def _fsync_dir(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _adopt_orphans(self) -> int:
        """Move the segments of owners that are gone (lock free) into our directory."""
        adopted = 0
        for other in sorted(self.root.glob("owner-*")):
            if other == self.dir or not other.is_dir():
                continue
            try:
                fd = os.open(other / "LOCK", os.O_CREAT | os.O_RDWR, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its owner is alive
            try:
                active = other / ACTIVE
                if active.exists() and active.stat().st_size:
                    os.rename(active, other / f"seg-{time.time_ns():020d}-{secrets.token_hex(4)}.ready")
                for segment in sorted(other.glob("seg-*.ready")):
                    os.rename(segment, self.dir / segment.name)
                    adopted += 1
                for leftover in other.iterdir():
                    leftover.unlink()
                other.rmdir()
            except OSError:
                _log.warning("could not adopt spool directory %s", other, exc_info=True)
            finally:
                os.close(fd)
        if adopted:
            self._fsync_dir()
            _log.warning("adopted %d unsent spool segment(s) left by a previous process; replaying", adopted)
        return adopted


def records(data: bytes) -> tuple[list[bytes], tuple[int, str] | None]:
    """The intact records of a spool file's bytes, and ``(offset, why)`` of a torn or corrupt one that ends them."""
    out: list[bytes] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            return out, (offset, "truncated header")
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if magic != _MAGIC or length > _MAX_RECORD or len(payload) != length or zlib.crc32(payload) != crc:
            return out, (offset, "bad checksum or length")
        out.append(payload)
        offset = start + length
    return out, None


def write_records(path: Path, payloads: Sequence[bytes], *, fsync: bool = True) -> int:
    """Make ``path`` hold exactly these records, atomically: written beside it, ``fsync``'d, renamed over it (a
    crash leaves the old file or the new one, never a mix); no records deletes it. Returns the new size."""
    if not payloads:
        path.unlink(missing_ok=True)
        size = 0
    else:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        data = b"".join(_HEADER.pack(_MAGIC, len(p), zlib.crc32(p)) + p for p in payloads)
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        size = len(data)
    if fsync:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return size
