"""What ``spanledger status`` reports: the spool on disk, the exporters writing to it, the quarantine, and
the store.

Readable from any process: it only reads the spool directory (each exporter leaves a ``stats.json``
snapshot there after every flush) and, when asked, queries the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .._store import maintenance
from .._store.store import Store
from .quarantine import Quarantine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spool_status(root: Path) -> dict[str, Any]:
    """Owners, pending segments and bytes, and each exporter's last counters, under a spool root."""
    owners = []
    total_bytes = 0
    now = time.time()
    for owner in sorted(root.glob("owner-*")) if root.exists() else []:
        segments = sorted(owner.glob("seg-*.ready"))
        active = owner / "active.log"
        size = sum(p.stat().st_size for p in segments) + (active.stat().st_size if active.exists() else 0)
        total_bytes += size
        pid = int(owner.name.split("-")[1]) if owner.name.count("-") >= 2 else 0
        stats: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            stats = json.loads((owner / "stats.json").read_text())
        oldest = None
        if segments:
            oldest = now - segments[0].stat().st_mtime
        owners.append(
            {
                "owner": owner.name,
                "pid": pid,
                "alive": _alive(pid) if pid else False,
                "segments": len(segments),
                "bytes": size,
                "oldest_segment_age_s": round(oldest, 1) if oldest is not None else None,
                "store_healthy": stats.get("store_healthy"),
                "last_error": stats.get("last_error") or None,
                "counters": stats.get("stats", {}),
                "counters_age_s": round(now - stats["time"], 1) if "time" in stats else None,
            }
        )
    return {
        "spool_dir": str(root),
        "pending_bytes": total_bytes,
        "owners": owners,
        "quarantine": Quarantine(root).summary(),
    }


def store_status(store: Store) -> dict[str, Any]:
    """Rows, cost and the newest insert in the store; an ``error`` entry when it cannot be read."""
    return maintenance.summary(store)
