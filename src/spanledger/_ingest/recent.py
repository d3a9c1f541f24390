"""The pipeline's memory of recently accepted calls: the quick duplicate check, before the store's look-up."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Keyed(Protocol):
    """A record with span ids: an LLM call or a tool execution."""

    @property
    def trace_id(self) -> int: ...
    @property
    def span_id(self) -> int: ...


R = TypeVar("R", bound=Keyed)


class Recent:
    """Keys of recently accepted records: ``(trace id, span id)`` and, for an LLM call, ``(0, "provider:response
    id")``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[tuple[int, int | str], None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(call: Keyed) -> list[tuple[int, int | str]]:
        out: list[tuple[int, int | str]] = [(call.trace_id, call.span_id)]
        response_id = getattr(call, "response_id", "")
        if response_id:  # provider response ids are unique: two spans with one id are one call
            out.append((0, f"{getattr(call, 'provider', '')}:{response_id}"))
        return out

    def claim(self, calls: Sequence[R]) -> tuple[list[R], int]:
        """The records not seen before (now remembered), and how many were."""
        fresh: list[R] = []
        duplicates = 0
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

    def release(self, calls: Sequence[Keyed]) -> None:
        """Forget calls that were refused after all, so that a retry is not mistaken for a duplicate."""
        with self._lock:
            for call in calls:
                for k in self.keys(call):
                    self._keys.pop(k, None)
