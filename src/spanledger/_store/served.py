"""Which ``spanledger serve`` holds an embedded store: the discovery file it leaves in the store's directory.

A chDB directory can be opened by one process at a time. While ``spanledger serve`` holds one, it writes
``<store dir>/.spanledger-serve.json`` (its URL, pid and database) once it listens, and removes it when it
stops; the command line reads that file to answer through the server's API instead of failing on the lock.
A file whose process is gone (the server was killed) is ignored, as is one another user wrote.

Cheap to import (no ClickHouse client): the command line consults it before loading anything heavy.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

_log = logging.getLogger(__name__)

FILE_NAME = ".spanledger-serve.json"


@dataclass(frozen=True, slots=True)
class Served:
    """A running ``spanledger serve`` and the embedded store it holds."""

    url: str
    """Where its API answers (``http://127.0.0.1:4318``)."""
    pid: int
    database: str
    """The database of the store it serves (a chDB directory may hold several)."""
    started_at: str
    """When it started listening (ISO-8601 UTC)."""


def file_for(location: str) -> Path:
    """The discovery file of the embedded store in ``location``."""
    return Path(location) / FILE_NAME


def advertise(location: str, *, url: str, database: str) -> Path:
    """Say that this process serves the store in ``location`` at ``url`` (written atomically)."""
    served = Served(url=url, pid=os.getpid(), database=database, started_at=datetime.now(UTC).isoformat())
    path = file_for(location)
    partial = path.with_name(f"{FILE_NAME}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(served), indent=2) + "\n")
    os.replace(partial, path)
    return path


def withdraw(location: str) -> None:
    """Remove the discovery file if this process wrote it (never another server's)."""
    path = file_for(location)
    found = _read(path)
    if found is not None and found.pid == os.getpid():
        try:
            path.unlink()
        except OSError as exc:  # stopping must never fail on it; a dead pid makes it stale anyway
            _log.warning("could not remove %s: %s", path, exc)


def find(location: str) -> Served | None:
    """The server holding the store in ``location``, if its discovery file is there, was written by this
    user and names a process that is still running; ``None`` otherwise."""
    path = file_for(location)
    try:
        if path.stat().st_uid != os.getuid():  # another user's file could send our token anywhere
            _log.debug("ignoring %s: written by another user", path)
            return None
    except OSError:
        return None
    found = _read(path)
    if found is None or not _alive(found.pid):
        return None
    return found


def _read(path: Path) -> Served | None:
    try:
        data = json.loads(path.read_text())
        served = Served(str(data["url"]), int(data["pid"]), str(data["database"]), str(data.get("started_at", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return served if served.url.startswith(("http://", "https://")) and served.pid > 0 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is someone else's
        return True
    except OSError:
        return False
    try:  # a killed process its parent has not reaped yet still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
