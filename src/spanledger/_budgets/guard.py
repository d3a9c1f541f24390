"""``BudgetGuard``: checked before an LLM call, it refuses the call when a hard budget or a rate limit would
be exceeded, and otherwise holds the call's estimated cost until the call is priced.

**The bound.** Within one process a call is admitted only if what the meter counts for each hard budget it
falls under — spend read from the store, calls priced in this process since, and the estimates held for
calls still running — plus its own estimate stays within the limit; admitting and reserving happen under
one lock. So the spend admitted never passes a hard limit, however many calls race for the last dollar; real
spend can pass it only by what admitted calls cost beyond their estimates (nothing, when the estimate is an
upper bound, as one from ``max_tokens`` at the model's prices is). Across processes, each reads the others'
spend from the store at most ``cache_ttl_ms`` old: together they can pass a limit by what the other
processes admitted in the last ``cache_ttl_ms`` plus their flush interval.

**Never blocked by the store.** The guard reads on its own thread; a check waits for a read only for a
subject it has not read within ``cache_ttl_ms`` (its first call, after a pause, or when re-reading every
subject in use takes the guard's thread longer than ``cache_ttl_ms``: a slow store), and at most
``store_timeout_ms``. When the store cannot answer, ``fail_open`` decides: admit on the spend last read (or
none) plus this process's own (counted ``fail_open``), or refuse with :class:`BudgetUnavailable`
(``fail_closed``); either way logged, at most once a minute.

**Rate limits** (per process, sliding minute): requests and tokens per minute per user and per tenant.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import context, trace

from .._capture.attribution import TAG_PREFIX, TENANT_ATTRIBUTE, USER_ATTRIBUTE, UserAttributionProcessor
from .._config import env_bool, env_int, env_str
from .._errors import InvalidCallError
from .._ingest import shared
from .._ingest.pipeline import Pipeline
from .._store.store import Store
from .book import BudgetBook, key_for
from .errors import BudgetExceeded, BudgetUnavailable
from .estimate import Estimator, tokens
from .guarded import Guarded
from .meter import Key, Reservation, SpendMeter
from .model import Budget
from .ratelimit import RateLimits, retoken
from .store import load

_log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
_CONTEXT: Any = object()
_ZERO = Decimal(0)


class _Collector:
    """Stands in for a span so that the attribution processor writes the context's user and tenant here."""

    __slots__ = ("_attributes",)

    def __init__(self) -> None:
        self._attributes: dict[str, Any] = {}

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._attributes.update(attributes)


@dataclass(frozen=True, slots=True)
class _Ask:
    tenant_id: str
    user_id: str
    amount: Decimal
    tokens: int
    checks: tuple[tuple[Budget, Key], ...]
    trace_id: int


@dataclass(frozen=True, slots=True)
class Usage:
    """What counts against one budget of a subject right now."""

    budget: Budget
    stored: Decimal
    """Spend the store held at the last read."""
    local: Decimal
    """Calls priced in this process that the store did not hold then."""
    reserved: Decimal
    """Estimates of admitted calls not priced yet."""
    period_start: datetime
    period_end: datetime

    @property
    def committed(self) -> Decimal:
        """Everything that counts: what a new call's estimate is added to."""
        return self.stored + self.local + self.reserved

    @property
    def remaining(self) -> Decimal:
        """The limit minus what counts (negative when a call cost more than its estimate)."""
        return self.budget.limit - self.committed


class BudgetGuard:
    """Checks budgets and rate limits before an LLM call (see the module docs for the bound it keeps).

    Every argument falls back to a ``SPANLEDGER_*`` environment variable, then to its default.

    Args:
        store: DSN or open :class:`Store` holding the budgets and the spend (``SPANLEDGER_STORE``).
        pipeline: The pipeline whose priced calls settle reservations; default: this process's pipeline for
            the store (an exporter or recorder of it shares the same), created if there is none.
        cache_ttl_ms: How old the spend read from the store may be (``SPANLEDGER_BUDGET_CACHE_MS``, 1000).
        store_timeout_ms: Longest wait for the store in a check (``SPANLEDGER_BUDGET_STORE_TIMEOUT_MS``, 250).
        first_read_timeout_ms: Longest wait in the checks before the store first answered this guard
            (``SPANLEDGER_BUDGET_FIRST_READ_TIMEOUT_MS``, 5000): opening a store and its first reads take
            longer than a warm read, and a guard that failed open on its first call would admit a user
            already far past a hard budget.
        fail_open: When the store cannot answer: admit (True) or refuse (``SPANLEDGER_BUDGET_FAIL_OPEN``, True).
        reservation_ttl_s: Seconds before an unsettled reservation is released
            (``SPANLEDGER_BUDGET_RESERVATION_TTL_S``, 300).
        default_estimate: USD held for a call checked without an estimate or a known model
            (``SPANLEDGER_BUDGET_DEFAULT_ESTIMATE``, 0).
        refresh_s: How often the budgets themselves are read again (``SPANLEDGER_BUDGET_REFRESH_S``, 10).
        user_rpm, user_tpm, tenant_rpm, tenant_tpm: Requests / tokens per minute per user and per tenant,
            0 for none (``SPANLEDGER_RATE_USER_RPM`` …).
        now: The wall clock (for tests).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        pipeline: Pipeline | None = None,
        cache_ttl_ms: int | None = None,
        store_timeout_ms: int | None = None,
        first_read_timeout_ms: int | None = None,
        fail_open: bool | None = None,
        reservation_ttl_s: int | None = None,
        default_estimate: Decimal | str | None = None,
        refresh_s: int | None = None,
        user_rpm: int | None = None,
        user_tpm: int | None = None,
        tenant_rpm: int | None = None,
        tenant_tpm: int | None = None,
        price_file: str | Path | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.stats: Counter[str] = Counter()
        self._owned: Pipeline | None = None
        if pipeline is None:
            dsn = store.dsn if isinstance(store, Store) else env_str("SPANLEDGER_STORE", store, "chdb://.spanledger")
            running = shared.running()
            pipeline = running if running is not None and running.dsn == dsn else None
            if pipeline is None:
                pipeline = self._owned = shared.acquire(store if isinstance(store, Store) else dsn)
        self.pipeline = pipeline
        self.ttl = env_int("SPANLEDGER_BUDGET_CACHE_MS", cache_ttl_ms, 1000, minimum=1) / 1000
        self.timeout = env_int("SPANLEDGER_BUDGET_STORE_TIMEOUT_MS", store_timeout_ms, 250, minimum=0) / 1000
        first = env_int("SPANLEDGER_BUDGET_FIRST_READ_TIMEOUT_MS", first_read_timeout_ms, 5000, minimum=0) / 1000
        self.first_timeout = max(self.timeout, first)
        self._warm = False  # the store has answered a check of this guard
        self.fail_open = env_bool("SPANLEDGER_BUDGET_FAIL_OPEN", fail_open, True)
        self.refresh = env_int("SPANLEDGER_BUDGET_REFRESH_S", refresh_s, 10, minimum=1)
        self.rates = RateLimits(user_rpm=user_rpm, user_tpm=user_tpm, tenant_rpm=tenant_rpm, tenant_tpm=tenant_tpm)
        self._wall = now or (lambda: datetime.now(UTC))
        self.estimator = Estimator(
            default=default_estimate, price_file=price_file if price_file is not None else pipeline.price_file
        )
        self._attribution = UserAttributionProcessor()
        self.book = BudgetBook()
        self._book_at = float("-inf")
        self._book_failed = float("-inf")
        self._book_error = ""
        self.meter = SpendMeter(
            lambda: self.pipeline.store,
            ttl=self.ttl,
            reservation_ttl=env_int("SPANLEDGER_BUDGET_RESERVATION_TTL_S", reservation_ttl_s, 300, minimum=1),
            stats=self.stats,
            wall=self._wall,
            on_tick=self._tick,
        )
        self._closed = False
        pipeline.add_hook(self.meter.settle)
        self.meter.poke()

    # --- the budgets themselves -------------------------------------------------------------------------
    def _tick(self) -> None:
        """On the meter's thread: read the budgets again when due; forget idle rate-limit subjects."""
        now = time.monotonic()
        if now - self._book_at >= self.refresh and now - self._book_failed >= min(self.refresh, 1.0):
            try:
                book = BudgetBook(load(self.pipeline.store))
            except Exception as exc:
                with self.meter.cond:
                    self._book_failed = time.monotonic()
                    self._book_error = " ".join(str(exc).split())[:300] or type(exc).__name__
                    self.meter.cond.notify_all()
                _log.warning("spanledger budgets: cannot read the budgets: %s", self._book_error)
            else:
                with self.meter.cond:
                    self.book, self._book_at = book, now
                    self.stats["budget_reads"] += 1
                    self.meter.cond.notify_all()
        with self.meter.cond:
            self.rates.prune(now)

    def reload(self) -> None:
        """Read the budgets again at the next occasion (after ``Budgets.set`` in the same process)."""
        with self.meter.cond:
            self._book_at = float("-inf")
        self.meter.poke()

    def _book_ready(self, deadline: float) -> str | None:
        with self.meter.cond:
            if self._book_at > float("-inf"):
                return None
            asked = time.monotonic()
            self.meter.poke_locked()
            ready = self.meter.cond.wait_for(
                lambda: self._book_at > float("-inf") or self._book_failed >= asked, max(0.0, deadline - asked)
            )
            if self._book_at > float("-inf"):
                return None
            return self._book_error if ready else "no answer from the store in time"

    # --- checking a call ----------------------------------------------------------------------------
    def check(
        self,
        estimate: Decimal | str | int | None = None,
        *,
        user_id: str | None = _CONTEXT,
        tenant_id: str | None = _CONTEXT,
        tags: Mapping[str, str] | None = None,
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int = 0,
        max_tokens: int = 0,
    ) -> Reservation:
        """Admit one LLM call, or refuse it; returns the reservation holding its estimate.

        User, tenant and tags come from the current :class:`~spanledger.attribute_to` context unless given.
        The estimate is ``estimate`` (USD), else ``input_tokens`` + ``max_tokens`` priced at ``model``'s prices,
        else ``default_estimate``. Use the reservation as a context manager around the call: an exception
        releases it; otherwise the call's real cost replaces it when the pipeline prices the call.

        Raises:
            BudgetExceeded: A hard budget would be exceeded.
            RateLimited: Too many requests or tokens for the user or tenant in the last minute.
            BudgetUnavailable: The store cannot be read and the guard fails closed.
            InvalidCallError: A negative estimate or token count.
        """
        deadline = time.monotonic() + self._wait()
        ask = self._ask(
            estimate,
            deadline,
            user_id=user_id,
            tenant_id=tenant_id,
            tags=tags,
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
        )
        problem = self.meter.fresh([k for _, k in ask.checks], max(0.0, deadline - time.monotonic()))
        return self._admit(ask, problem)

    async def acheck(self, estimate: Decimal | str | int | None = None, **kwargs: Any) -> Reservation:
        """:meth:`check` for ``async`` code: a wait for the store happens in a worker thread, never on the loop."""
        deadline = time.monotonic() + self._wait()
        if self._book_at == float("-inf"):
            await asyncio.get_running_loop().run_in_executor(None, self._book_ready, deadline)
        ask = self._ask(estimate, deadline, **kwargs)
        keys = [k for _, k in ask.checks]
        problem = None
        if self.meter.stale(keys):
            wait = functools.partial(self.meter.fresh, keys, max(0.0, deadline - time.monotonic()))
            problem = await asyncio.get_running_loop().run_in_executor(None, wait)
        return self._admit(ask, problem)

    def guarded(self, estimate: Decimal | str | int | None = None, **kwargs: Any) -> Guarded:
        """:meth:`check` as a context manager or a decorator (sync or ``async def``) around the call."""
        return Guarded(self, estimate, kwargs)

    def _ask(
        self,
        estimate: Any,
        deadline: float,
        *,
        user_id: Any = _CONTEXT,
        tenant_id: Any = _CONTEXT,
        tags: Mapping[str, str] | None = None,
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int = 0,
        max_tokens: int = 0,
        soft: bool = False,
    ) -> _Ask:
        declared = tokens("input_tokens", input_tokens) + tokens("max_tokens", max_tokens)
        found: dict[str, Any] = {}
        if user_id is _CONTEXT or tenant_id is _CONTEXT or tags is None:
            collector = _Collector()
            self._attribution.on_start(collector, context.get_current())  # type: ignore[arg-type]
            found = collector._attributes
        user = str(found.get(USER_ATTRIBUTE, "")) if user_id is _CONTEXT else user_id or ""
        tenant = str(found.get(TENANT_ATTRIBUTE, "")) if tenant_id is _CONTEXT else tenant_id or ""
        tag_values = {k[len(TAG_PREFIX) :]: str(v) for k, v in found.items() if k.startswith(TAG_PREFIX)}
        tag_values.update(tags or {})
        amount = self.estimator.estimate(estimate, provider, model, input_tokens, max_tokens, self._wall())
        if self._book_at == float("-inf") and (problem := self._book_ready(deadline)) is not None:
            self._store_problem(f"user {user}" if user else f"tenant {tenant}", problem)
        at = self._wall()
        checks = []
        for budget in self.book.applicable(tenant, user, tag_values):
            if (budget.hard or soft) and (key := key_for(budget, tenant, user, at)) is not None:
                checks.append((budget, key))
        span = trace.get_current_span().get_span_context()
        return _Ask(tenant, user, amount, declared, tuple(checks), span.trace_id if span.is_valid else 0)

    def _wait(self) -> float:
        """How long a check may wait for the store: longer until the store first answered this guard."""
        return self.timeout if self._warm else self.first_timeout

    def _store_problem(self, subject: str, problem: str) -> None:
        """The store could not answer in time: fail open (counted, logged) or closed (raised)."""
        self.stats["store_unavailable"] += 1
        if not self.fail_open:
            self.stats["fail_closed"] += 1
            _log_throttled(f"spanledger budgets: failing closed, the store cannot be read: {problem}")
            raise BudgetUnavailable(subject=subject, reason=problem)
        self.stats["fail_open"] += 1
        _log_throttled(f"spanledger budgets: failing open, the store cannot be read: {problem}")

    def _admit(self, ask: _Ask, problem: str | None) -> Reservation:
        if self._closed:
            raise InvalidCallError("this BudgetGuard is closed")
        who = f"user {ask.user_id}" if ask.user_id else f"tenant {ask.tenant_id}"
        if problem is not None and ask.checks:
            self._store_problem(who, problem)
        elif problem is None and self._book_at != float("-inf"):
            self._warm = True
        with self.meter.cond:
            for budget, key in ask.checks:
                committed = self.meter.entry(key).committed
                if committed >= budget.limit or committed + ask.amount > budget.limit:
                    self.stats["refused:budget"] += 1
                    raise BudgetExceeded(
                        subject=budget.subject if not budget.is_default else f"user {ask.user_id} ({budget.subject})",
                        budget_id=budget.id,
                        limit=budget.limit,
                        spent=committed,
                        estimate=ask.amount,
                        period=budget.period,
                        period_start=key.start,
                        period_end=key.end,
                    )
            events = self.rates.take(ask.tenant_id, ask.user_id, ask.tokens, self.stats)
            keys = tuple(dict.fromkeys(k for _, k in ask.checks))
            reservation = self.meter.reserve(
                keys, ask.amount, trace_id=ask.trace_id, tenant_id=ask.tenant_id, user_id=ask.user_id
            )
            if events:
                reservation.on_close = functools.partial(retoken, events)
            self.stats["admitted"] += 1
            return reservation

    def usage(
        self, *, user_id: str | None = _CONTEXT, tenant_id: str | None = _CONTEXT, tags: Mapping[str, str] | None = None
    ) -> list[Usage]:
        """What counts against each budget of a user (and tenant) now, as :meth:`check` sees it (the same wait
        for the store, at most ``store_timeout_ms``)."""
        deadline = time.monotonic() + self._wait()
        ask = self._ask(None, deadline, user_id=user_id, tenant_id=tenant_id, tags=tags, soft=True)
        self.meter.fresh([k for _, k in ask.checks], max(0.0, deadline - time.monotonic()))
        with self.meter.cond:
            out = []
            for budget, key in ask.checks:
                e = self.meter.entry(key)
                out.append(Usage(budget, e.stored or _ZERO, e.local_sum, e.reserved, key.start, key.end))
            return out

    def close(self) -> None:
        """Stop the guard's thread and unsubscribe from the pipeline (a pipeline it created is released)."""
        if self._closed:
            return
        self._closed = True
        self.pipeline.remove_hook(self.meter.settle)
        self.meter.close()
        if self._owned is not None:
            shared.release(self._owned)

    def __enter__(self) -> BudgetGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_last_logged = [float("-inf")]


def _log_throttled(message: str) -> None:
    now = time.monotonic()
    if now - _last_logged[0] >= 60:
        _last_logged[0] = now
        _log.warning("%s", message)
