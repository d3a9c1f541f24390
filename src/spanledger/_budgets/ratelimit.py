"""Sliding-window rate limits: requests (or tokens) per minute per subject, within one process.

Every admitted call is an event (its time and weight: 1 for requests, its tokens for tokens) kept for the
window; a call is admitted while the events of the last ``window`` seconds, plus its own weight, stay
within the limit. Exact, not a fixed-minute counter: 60 requests per minute never lets 120 through across
a minute boundary. A token event's weight is corrected to the call's real tokens when it is priced.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Hashable
from typing import Any

from .._config import env_int
from .errors import RateLimited
from .meter import Reservation


class Event:
    """One admitted call in a window."""

    __slots__ = ("at", "weight")

    def __init__(self, at: float, weight: int) -> None:
        self.at = at
        self.weight = weight


class _Log:
    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[Event] = deque()
        self.total = 0


class SlidingWindow:
    """The events of each subject over the last ``window`` seconds (not thread-safe: the guard holds its lock).

    Args:
        limit: Most weight per window.
        window: Seconds (60 for "per minute").
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._logs: dict[Hashable, _Log] = {}

    def _log(self, key: Hashable, now: float) -> _Log:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
        horizon = now - self.window
        while log.events and log.events[0].at <= horizon:
            log.total -= log.events.popleft().weight
        return log

    def wait(self, key: Hashable, weight: int, now: float) -> float:
        """0 when ``weight`` more fits now, else the seconds until it would (the whole window when ``weight``
        alone is over the limit)."""
        log = self._log(key, now)
        if log.total + weight <= self.limit:
            return 0.0
        if weight > self.limit:
            return self.window
        excess = log.total + weight - self.limit
        for event in log.events:
            excess -= event.weight
            if excess <= 0:
                return max(0.0, event.at + self.window - now)
        return self.window

    def add(self, key: Hashable, weight: int, now: float) -> Event:
        log = self._log(key, now)
        event = Event(now, weight)
        log.events.append(event)
        log.total += weight
        return event

    def reweigh(self, key: Hashable, event: Event, weight: int, now: float) -> None:
        """Correct an event's weight (a call's real tokens, once priced), if it is still in the window."""
        log = self._log(key, now)
        if event.at > now - self.window and log.events and event.at >= log.events[0].at:
            log.total += weight - event.weight
        event.weight = weight

    def remove(self, key: Hashable, event: Event, now: float) -> None:
        """Take back an event (the call was refused after all)."""
        log = self._log(key, now)
        try:
            log.events.remove(event)
        except ValueError:
            return
        log.total -= event.weight

    def prune(self, now: float) -> None:
        """Forget subjects with nothing left in the window."""
        for key in list(self._logs):
            if not self._log(key, now).events:
                del self._logs[key]


TokenEvents = list[tuple[SlidingWindow, Hashable, Event]]


class RateLimits:
    """The guard's limits per user and per tenant (0: none), each falling back to ``SPANLEDGER_RATE_USER_RPM``,
    ``SPANLEDGER_RATE_USER_TPM``, ``SPANLEDGER_RATE_TENANT_RPM``, ``SPANLEDGER_RATE_TENANT_TPM``. A user is
    limited within its tenant; calls without a user (or tenant) are not limited per user (or tenant)."""

    def __init__(self, *, user_rpm: int | None, user_tpm: int | None, tenant_rpm: int | None, tenant_tpm: int | None):
        self.windows: list[tuple[str, str, SlidingWindow]] = []
        for who, unit, value, env in (
            ("user", "requests", user_rpm, "SPANLEDGER_RATE_USER_RPM"),
            ("user", "tokens", user_tpm, "SPANLEDGER_RATE_USER_TPM"),
            ("tenant", "requests", tenant_rpm, "SPANLEDGER_RATE_TENANT_RPM"),
            ("tenant", "tokens", tenant_tpm, "SPANLEDGER_RATE_TENANT_TPM"),
        ):
            limit = env_int(env, value, 0)
            if limit:
                self.windows.append((who, unit, SlidingWindow(limit)))

    def take(self, tenant_id: str, user_id: str, tokens: int, stats: Counter[str]) -> TokenEvents:
        """Check every limit, then count the call in each; returns its token events (the caller holds the
        guard's lock).

        Raises:
            RateLimited: A limit would be passed (nothing is counted then).
        """
        if not self.windows:
            return []
        now = time.monotonic()
        todo: list[tuple[SlidingWindow, Hashable, str, int]] = []
        for who, unit, window in self.windows:
            name = user_id if who == "user" else tenant_id
            if not name:
                continue
            key: Hashable = (tenant_id, name) if who == "user" else name
            weight = 1 if unit == "requests" else tokens
            wait = window.wait(key, weight, now)
            if wait:
                stats[f"refused:{who}_{unit}"] += 1
                raise RateLimited(subject=f"{who} {name}", unit=unit, limit=window.limit, retry_after=wait)
            todo.append((window, key, unit, weight))
        events: TokenEvents = []
        for window, key, unit, weight in todo:
            event = window.add(key, weight, now)
            if unit == "tokens":
                events.append((window, key, event))
        return events

    def prune(self, now: float) -> None:
        for _, _, window in self.windows:
            window.prune(now)


def retoken(events: TokenEvents, reservation: Reservation, *_: Any) -> None:
    """A call's token events take its real tokens once it is priced, none when it failed (an expired
    reservation keeps its estimate)."""
    if reservation.state == "settled":
        weight = reservation.tokens or 0
    elif reservation.state == "released":
        weight = 0
    else:
        return
    now = time.monotonic()
    for window, key, event in events:
        window.reweigh(key, event, weight, now)
