"""Hooks: what runs after a batch is priced and spooled (a budget's spend meter, an alert evaluator), on a
thread of its own so that a slow hook never delays the caller."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from .._model.call import LLMCall

_log = logging.getLogger(__name__)

QUEUE_BATCHES = 10_000
"""Batches waiting for the hooks at most; beyond that they are counted (``hooks_dropped``) and logged."""

Hook = Callable[[Sequence[LLMCall]], None]
"""Called with each batch of accepted calls, priced, on the pipeline's hook thread (never the caller's)."""


class Hooks:
    """Runs the hooks on one daemon thread, so a slow hook never delays a caller."""

    def __init__(self, stats: Counter[str]) -> None:
        self.stats = stats
        self.hooks: list[Hook] = []
        self._queue: queue.Queue[Sequence[LLMCall] | None] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, hook: Hook) -> None:
        with self._lock:
            self.hooks.append(hook)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="spanledger-hooks", daemon=True)
                self._thread.start()

    def remove(self, hook: Hook) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self.hooks.remove(hook)

    def publish(self, calls: Sequence[LLMCall]) -> None:
        if not self.hooks or not calls:
            return
        try:
            self._queue.put_nowait(calls)
        except Exception:  # queue.Full: the hooks are far behind; say so rather than block the caller
            self.stats["hooks_dropped"] += len(calls)
            _log.error("spanledger hooks are %d batches behind; %d calls not passed to them", QUEUE_BATCHES, len(calls))

    def _run(self) -> None:
        while True:
            calls = self._queue.get()
            if calls is None:
                return
            for hook in list(self.hooks):
                try:
                    hook(calls)
                except Exception:
                    _log.exception("spanledger hook %r failed", hook)
            self._queue.task_done()

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
