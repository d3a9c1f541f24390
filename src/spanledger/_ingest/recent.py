"""The pipeline's memory of recently accepted calls: the quick duplicate check, before the store's look-up."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from .._model.call import LLMCall


class Recent:
    """Keys of recently accepted calls: ``(trace id, span id)`` and ``(0, "provider:response id")``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[tuple[int, int | str], None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(call: LLMCall) -> list[tuple[int, int | str]]:
        out: list[tuple[int, int | str]] = [(call.trace_id, call.span_id)]
        if call.response_id:  # provider response ids are unique: two spans with one id are one call
            out.append((0, f"{call.provider}:{call.response_id}"))
        return out

    def claim(self, calls: Sequence[LLMCall]) -> tuple[list[LLMCall], int]:
        """The calls not seen before (now remembered), and how many were."""
        fresh, duplicates = [], 0
        with self._lock:
            for call in calls:
                keys = self.keys(call)
                if any(k in self._keys for k in keys):
                    duplicates += 1
                    continue
                for k in keys:
                    self._keys[k] = None
                fresh.append(call)
            while len(self._keys) > self.capacity:
                self._keys.popitem(last=False)
        return fresh, duplicates

    def release(self, calls: Sequence[LLMCall]) -> None:
        """Forget calls that were refused after all, so that a retry is not mistaken for a duplicate."""
        with self._lock:
            for call in calls:
                for k in self.keys(call):
                    self._keys.pop(k, None)
