"""Where a store's spool (and quarantine) lives when the user does not say."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .._store.dsn import parse as _parse


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
