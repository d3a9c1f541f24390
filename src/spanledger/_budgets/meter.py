"""The spend meter: what counts against a budget right now, in this process, without waiting on the store.

For each (kind of subject, subject, period) the guard asks about — a :class:`Key` — the meter keeps

* ``stored``: the spend the store held at the last read (one read per kind and period for every subject
  due, on the meter's own thread, at most ``ttl`` old while the key is in use);
* ``local``: calls priced by this process's pipeline (its hook) that the store did not hold at that read,
  by span id — each read reports which of them the store now holds, and they move from ``local`` to
  ``stored`` at once (``spend.py``), so a call is never counted twice nor missed;
* ``reserved``: the estimates of calls admitted and not yet priced.

``committed = stored + local + reserved`` is what a new call is checked against; admitting it and reserving
its estimate happen under one lock, so concurrent callers cannot both take the last dollar.

Reservations are matched to the priced call they were made for: by trace id (the guard records the trace
it runs in), else the oldest reservation of the same tenant and user. A reservation whose call fails is
released by the guard; one whose call never arrives (a call no exporter of this process sees) expires after
``reservation_ttl`` seconds and is released then (counted: ``reservations_expired``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .._model.call import LLMCall
from .._store.store import Store
from .spend import Kind, Subject, spend, subject_of

_log = logging.getLogger(__name__)
_ZERO = Decimal(0)
KINDS: tuple[Kind, ...] = ("user", "pair", "tenant")
RECENT_SECONDS = 600
"""Calls priced in the last ten minutes are remembered, so a subject first asked about later still counts
the ones the store may not hold yet."""
LOCAL_MAX_AGE = timedelta(hours=24)
"""A call counted from memory longer than this (the store unreachable for a day) is forgotten."""
IDLE_SECONDS = 600
"""A key unused this long, with nothing local or reserved, is dropped."""
PAST_SECONDS = 60
"""How often the spend of calls that started before the cut (an hour or two ago) is read again; in between,
only the calls since the cut are (a few rows per subject in ``llm_calls`` instead of the whole period). A call
stored more than an hour after it started is therefore seen within a minute."""


@dataclass(frozen=True, slots=True)
class Key:
    """A subject's spend in one period."""

    kind: Kind
    subject: Subject
    start: datetime
    end: datetime


class Entry:
    """What the meter knows of one :class:`Key`."""

    __slots__ = (
        "failed_at", "found", "local", "local_sum", "past", "past_at", "past_cut", "read_at", "reserved", "stored",
        "used_at",
    )  # fmt: skip

    def __init__(self) -> None:
        self.stored: Decimal | None = None
        self.past = _ZERO
        """Spend of the calls that started before ``past_cut``, read at ``past_at``."""
        self.past_cut: datetime | None = None
        self.past_at = float("-inf")
        self.read_at = float("-inf")
        self.failed_at = float("-inf")
        self.local: dict[int, tuple[Decimal, datetime]] = {}
        self.local_sum = _ZERO
        self.found: frozenset[int] = frozenset()
        self.reserved = _ZERO
        self.used_at = 0.0

    @property
    def committed(self) -> Decimal:
        return (self.stored or _ZERO) + self.local_sum + self.reserved

    def add_local(self, span_id: int, cost: Decimal, at: datetime) -> None:
        if span_id in self.found or span_id in self.local:  # the store already held it at the last read
            return
        self.local[span_id] = (cost, at)
        self.local_sum += cost

    def drop_local(self, span_ids: Iterable[int]) -> None:
        for span_id in span_ids:
            held = self.local.pop(span_id, None)
            if held is not None:
                self.local_sum -= held[0]


@dataclass(eq=False)
class Reservation:
    """An estimate held against budgets until its call is priced, fails, or the reservation expires.

    A context manager: leaving the block with an exception releases it (the call failed); leaving it
    normally keeps it until the call is priced (the pipeline's hook) or :attr:`deadline` passes.
    """

    id: int
    amount: Decimal
    """USD held."""
    keys: tuple[Key, ...]
    trace_id: int
    tenant_id: str
    user_id: str
    deadline: float
    state: str = "open"
    """open, settled (its call was priced), released (it failed, or by hand) or expired."""
    cost: Decimal | None = None
    """What the call cost, once settled."""
    tokens: int | None = None
    """The call's input and output tokens, once settled."""
    on_close: Callable[[Reservation], None] | None = field(default=None, repr=False)
    _meter: SpendMeter | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the estimate back (the call was not made, or failed before it cost anything)."""
        if self._meter is not None:
            self._meter.release(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.release()


class SpendMeter:
    """Spend per key, reservations, and the thread that keeps keys in use fresh (see the module docs).

    Args:
        store: Returns the store to read (opened on first use).
        ttl: Seconds a read stays fresh (the cross-process bound: another process's spend is seen within
            ``ttl`` plus its flush interval).
        reservation_ttl: Seconds before an unsettled reservation expires.
        stats: Counters, shared with the guard.
    """

    def __init__(
        self,
        store: Callable[[], Store],
        *,
        ttl: float,
        reservation_ttl: float,
        stats: Counter[str],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self.ttl = ttl
        self.reservation_ttl = reservation_ttl
        self.stats = stats
        self.clock = clock
        self.wall = wall
        self._on_tick = on_tick
        self.cond = threading.Condition(threading.Lock())
        self.entries: dict[Key, Entry] = {}
        self._by_subject: dict[tuple[Kind, Subject], set[Key]] = {}
        self._recent: deque[tuple[float, int, datetime, str, str, Decimal]] = deque()
        self._open: dict[tuple[str, str], OrderedDict[int, Reservation]] = {}
        self._ids = itertools.count(1)
        self._wanted: set[Key] = set()
        self._poked = False
        self._start_lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_error_log = float("-inf")
        self._last_error = ""

    # --- reads -------------------------------------------------------------------------------------
    def entry(self, key: Key) -> Entry:
        """The entry of ``key``, created (and seeded with the calls priced recently) on first use. Hold
        :attr:`cond`."""
        found = self.entries.get(key)
        if found is None:
            found = self.entries[key] = Entry()
            self._by_subject.setdefault((key.kind, key.subject), set()).add(key)
            for _, span_id, at, tenant, user, cost in self._recent:
                if subject_of(key.kind, tenant, user) == key.subject and key.start <= at < key.end:
                    found.add_local(span_id, cost, at)
        found.used_at = self.clock()
        return found

    def fresh(self, keys: Sequence[Key], timeout: float) -> str | None:
        """Make sure every key was read within ``ttl``, waiting at most ``timeout`` seconds for the store;
        returns why not (the store's error, or a timeout), ``None`` when all are fresh."""
        self._start()
        with self.cond:
            asked = self.clock()
            stale = [k for k in keys if asked - self.entry(k).read_at > self.ttl]
            if not stale:
                return None
            self._wanted.update(stale)
            self.cond.notify_all()

            def done() -> bool:  # a read that started within ttl of the question, or a failure since
                return all(
                    self.entries[k].read_at >= asked - self.ttl or self.entries[k].failed_at >= asked for k in stale
                )

            if self.cond.wait_for(done, timeout):
                failed = [k for k in stale if self.entries[k].failed_at >= asked]
                return self._last_error if failed else None
            return f"no answer from the store within {timeout * 1000:.0f} ms"

    def _read(self, keys: list[Key]) -> None:
        """Read every key due, one query per kind and period, and apply the answers."""
        groups: dict[tuple[Kind, datetime, datetime], list[Key]] = {}
        for key in keys:
            groups.setdefault((key.kind, key.start, key.end), []).append(key)
        for (kind, start, end), members in groups.items():
            with self.cond:
                watch = [s for k in members for s in self.entries[k].local]
                oldest = min((at for k in members for _, at in self.entries[k].local.values()), default=None)
            started = self.clock()
            now = self.wall()
            cut = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
            if oldest is not None:
                cut = min(cut, oldest.replace(minute=0, second=0, microsecond=0))
            cut = min(max(cut, start), end)
            with self.cond:
                recent_only = all(
                    self.entries[k].past_cut == cut and started - self.entries[k].past_at < PAST_SECONDS
                    for k in members
                )
            try:
                got = spend(
                    self._store(),
                    kind,
                    start,
                    end,
                    subjects=[k.subject for k in members],
                    cut=cut,
                    watch=watch,
                    since_cut_only=recent_only,
                )
            except Exception as exc:  # a store error (or a bug) must never reach the host application
                with self.cond:
                    self._last_error = " ".join(str(exc).split())[:300] or type(exc).__name__
                    for key in members:
                        self.entries[key].failed_at = self.clock()
                    self.stats["store_errors"] += 1
                    self.cond.notify_all()
                if started - self._last_error_log > 60:
                    self._last_error_log = started
                    _log.warning("spanledger budgets: cannot read spend from the store: %s", self._last_error)
                continue
            with self.cond:
                for key in members:
                    entry = self.entries[key]
                    read = got.get(key.subject)
                    if not recent_only:
                        entry.past, entry.past_cut, entry.past_at = read.before_cut if read else _ZERO, cut, started
                    entry.stored = entry.past + ((read.cost - read.before_cut) if read else _ZERO)
                    entry.found = read.found if read else frozenset()
                    entry.drop_local(entry.found)
                    entry.read_at = started
                self.stats["store_reads"] += 1
                self.cond.notify_all()

    # --- reservations -------------------------------------------------------------------------------
    def reserve(
        self, keys: Sequence[Key], amount: Decimal, *, trace_id: int, tenant_id: str, user_id: str
    ) -> Reservation:
        """Hold ``amount`` against every key (hold :attr:`cond`; the caller checked the limits under it)."""
        reservation = Reservation(
            next(self._ids),
            amount,
            tuple(keys),
            trace_id,
            tenant_id,
            user_id,
            self.clock() + self.reservation_ttl,
            _meter=self,
        )
        for key in keys:
            self.entry(key).reserved += amount
        self._open.setdefault((tenant_id, user_id), OrderedDict())[reservation.id] = reservation
        self.stats["reserved"] += 1
        return reservation

    def _close(self, reservation: Reservation, state: str) -> bool:
        """Take an open reservation off its keys (hold :attr:`cond`)."""
        if reservation.state != "open":
            return False
        reservation.state = state
        for key in reservation.keys:
            entry = self.entries.get(key)
            if entry is not None:
                entry.reserved -= reservation.amount
        subject = (reservation.tenant_id, reservation.user_id)
        waiting = self._open.get(subject)
        if waiting is not None:
            waiting.pop(reservation.id, None)
            if not waiting:
                del self._open[subject]
        self.stats[state] += 1
        if reservation.on_close is not None:
            reservation.on_close(reservation)
        return True

    def release(self, reservation: Reservation) -> None:
        with self.cond:
            self._close(reservation, "released")

    def _match(self, call: LLMCall) -> Reservation | None:
        waiting = self._open.get((call.tenant_id, call.user_id))
        if not waiting:
            return None
        for reservation in waiting.values():
            if reservation.trace_id and reservation.trace_id == call.trace_id:
                return reservation
        return next(iter(waiting.values()))  # the oldest of the same tenant and user

    # --- the pipeline's hook ------------------------------------------------------------------------
    def settle(self, calls: Sequence[LLMCall]) -> None:
        """Priced calls (the pipeline's hook): settle their reservations, count their cost from memory."""
        now = self.clock()
        with self.cond:
            for call in calls:
                reservation = self._match(call)
                cost = call.cost if call.cost is not None else _ZERO  # unpriced: no known cost to count
                if reservation is not None:
                    reservation.cost, reservation.tokens = cost, call.input_tokens + call.output_tokens
                    self._close(reservation, "settled")
                else:
                    self.stats["unreserved_calls"] += 1
                self._recent.append((now, call.span_id, call.timestamp, call.tenant_id, call.user_id, cost))
                for kind in KINDS:
                    for key in self._by_subject.get((kind, subject_of(kind, call.tenant_id, call.user_id)), ()):
                        if key.start <= call.timestamp < key.end:
                            self.entries[key].add_local(call.span_id, cost, call.timestamp)

    # --- the meter's thread -------------------------------------------------------------------------
    def poke(self) -> None:
        """Run a round of the meter's thread now (the guard's budgets are read there too)."""
        with self.cond:
            self.poke_locked()

    def poke_locked(self) -> None:
        """:meth:`poke`, holding :attr:`cond`."""
        self._start()
        self._poked = True
        self.cond.notify_all()

    def stale(self, keys: Sequence[Key]) -> bool:
        """Whether a check of these keys would wait for the store."""
        with self.cond:
            now = self.clock()
            return any(now - self.entry(k).read_at > self.ttl for k in keys)

    def _start(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name="spanledger-budgets", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        tick = max(0.01, self.ttl / 2)
        while True:
            with self.cond:
                self.cond.wait_for(lambda: bool(self._wanted) or self._poked or self._closed, timeout=tick)
                if self._closed:
                    return
                self._poked = False
                now = self.clock()
                due = set(self._wanted)
                self._wanted.clear()
                for key, entry in self.entries.items():  # keys in use are read again before they go stale
                    if now - entry.used_at < 10 * self.ttl + 5 and now - entry.read_at >= tick:
                        due.add(key)
            try:
                if due:
                    self._read(sorted(due, key=lambda k: (k.kind, k.start)))
                if self._on_tick is not None:
                    self._on_tick()
                self._housekeeping()
            except Exception:
                _log.exception("spanledger budgets: the meter's thread failed a round; it goes on")

    def _housekeeping(self) -> None:
        """Expire reservations, forget old calls, drop idle keys."""
        now, wall = self.clock(), self.wall()
        with self.cond:
            for waiting in list(self._open.values()):
                for reservation in [r for r in waiting.values() if r.deadline <= now]:
                    if self._close(reservation, "expired"):
                        _log.debug("spanledger budgets: reservation %s expired unsettled", reservation.id)
            while self._recent and now - self._recent[0][0] > RECENT_SECONDS:
                self._recent.popleft()
            for key, entry in list(self.entries.items()):
                old = [s for s, (_, at) in entry.local.items() if wall - at > LOCAL_MAX_AGE]
                entry.drop_local(old)
                if now - entry.used_at > IDLE_SECONDS and not entry.local and not entry.reserved:
                    del self.entries[key]
                    self._by_subject.get((key.kind, key.subject), set()).discard(key)

    def close(self) -> None:
        with self.cond:
            self._closed = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
