"""One pipeline per store and spool per process: exporters and recorders of the same store share it."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from .._config import env_str
from .._store.store import Store
from .paths import default_spool_dir
from .pipeline import Pipeline

_log = logging.getLogger(__name__)

_shared: dict[tuple[str, str], tuple[Pipeline, int]] = {}
_shared_lock = threading.Lock()


def acquire(store: str | Store, *, spool_dir: str | Path | None = None, **options: Any) -> Pipeline:
    """The process's pipeline for this store and spool root, created on first use (later callers share it,
    and the first caller's options; a conflicting option is logged)."""
    dsn = store.dsn if isinstance(store, Store) else store
    root = env_str("SPANLEDGER_SPOOL_DIR", str(spool_dir) if spool_dir is not None else None, "")
    key = (dsn, os.path.realpath(root) if root else str(default_spool_dir(dsn)))
    with _shared_lock:
        found = _shared.get(key)
        if found is not None and not found[0]._closed:
            pipeline, users = found
            if options.get("price_file") not in (None, pipeline.price_file):
                _log.warning("a pipeline for %s already runs in this process; its price rules apply", pipeline.name)
            _shared[key] = (pipeline, users + 1)
            return pipeline
        pipeline = Pipeline(store, spool_dir=spool_dir, **options)
        _shared[key] = (pipeline, 1)
        return pipeline


def running() -> Pipeline | None:
    """The pipeline an exporter or recorder of this process already writes through (the first, if several)."""
    with _shared_lock:
        return next((p for p, _ in _shared.values() if not p._closed), None)


def for_store(dsn: str) -> list[Pipeline]:
    """Every open pipeline of this process that writes to the store ``dsn``."""
    with _shared_lock:
        return [p for p, _ in _shared.values() if not p._closed and p.dsn == dsn]


def release(pipeline: Pipeline) -> None:
    """One user of ``pipeline`` is done; the last one shuts it down."""
    with _shared_lock:
        for key, (found, users) in list(_shared.items()):
            if found is pipeline:
                if users > 1:
                    _shared[key] = (found, users - 1)
                    return
                del _shared[key]
                break
    pipeline.shutdown()
