"""Repricing: recompute stored calls' costs from their raw token counts with the current prices.

Every call of the window (and provider / model, when given) is priced again by the same
:class:`~spanledger.Pricer` the pipeline uses (the genai-prices catalog and a price file); a call whose cost
changes is rewritten in ``llm_calls`` (cost, input and output cost, price source and model, flags —
``repriced`` added), and the rollups of the days touched are rebuilt from the raw table
(:func:`~spanledger._store.rebuild.rebuild`), since a mutation fires no materialized view.

* An unpriced call that now has a price becomes priced. A priced call for which no price is found now is
  *kept* as it was (counted in ``kept``): a price file left out by mistake never wipes costs out.
* Running it again changes nothing: the second run finds every cost equal.
* A dry run reads and prices exactly as the real run does and reports the same numbers; it writes nothing.
* While it runs it holds the maintenance lease (:mod:`spanledger._store.lease`): spanledger writers of the
  store hold their inserts (their spools keep accepting calls) and insert them when it is over, priced by
  their own pricer. So no call is lost or counted twice, the calls repriced are those stored when it
  started, and the rollups equal a GROUP BY over ``llm_calls`` afterwards (checked day by day).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._config import env_str
from .._errors import ConfigError
from .._model.call import LLMCall
from .._pricing.pricer import Pricer
from .._query.timebound import TimeBound, parse_bound
from .._store import lease
from .._store.rebuild import GRACE_SECONDS, rebuild
from .._store.store import Store
from . import store as sql
from .model import RepriceChange, RepriceReport

_log = logging.getLogger(__name__)

PRICING_FLAGS = ("unpriced", "cost_rounded", "repriced")
"""Flags that say how a call was priced: dropped before pricing it again (``repriced`` is added back)."""
RENEW_SECONDS = 20.0
"""How often the lease is renewed while calls are priced (it lasts two minutes)."""
MAX_REBUILD_TENANTS = 1000
"""Above this many tenants touched, the rollups of the days touched are rebuilt for every tenant."""


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    changed: int = 0
    newly_priced: int = 0
    before: Decimal = Decimal(0)
    after: Decimal = Decimal(0)


def _scratch() -> LLMCall:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    fields: dict[str, Any] = dict.fromkeys(
        ("provider", "model", "request_model", "operation", "user_id", "user_source", "tenant_id"), ""
    )
    fields.update(dict.fromkeys(("error_type", "response_id", "service_name", "source"), ""))
    ints = ("trace_id", "span_id", "parent_span_id", "duration_us", "input_tokens", "output_tokens")
    fields.update(dict.fromkeys((*ints, "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"), 0))
    return LLMCall(timestamp=epoch, tags={}, is_error=False, **fields)


def reprice(
    store: Store,
    *,
    start: TimeBound,
    end: TimeBound,
    provider: str | None = None,
    model: str | None = None,
    price_file: str | Path | None = None,
    pricer: Pricer | None = None,
    dry_run: bool = False,
    grace_seconds: float = GRACE_SECONDS,
) -> RepriceReport:
    """Price the calls of ``[start, end)`` again and rewrite those whose cost changes (see the module docs).

    Args:
        store: The ledger's store.
        start: First instant (ISO date or time, a ``datetime``; a span like ``7d`` back from now).
        end: End, exclusive.
        provider: Only this provider's calls.
        model: Only this model's calls (the model that answered, as stored).
        price_file: Price rules (default ``SPANLEDGER_PRICE_FILE``); the genai-prices catalog otherwise.
        pricer: A pricer of your own instead (``price_file`` is then ignored).
        dry_run: Report what would change; write nothing.
        grace_seconds: After taking the lease, how long to wait for inserts already under way.
    """
    started = time.monotonic()
    now = datetime.now(UTC)
    lo, hi = parse_bound(start, now=now), parse_bound(end, now=now)
    if lo is None or hi is None:
        raise ConfigError("a repricing needs both ends of its window (--from and --to)")
    if hi <= lo:
        raise ConfigError("the window ends before it starts")
    file = env_str("SPANLEDGER_PRICE_FILE", str(price_file) if price_file is not None else None, "")
    if pricer is None:
        pricer = Pricer(price_file=file or None)
        pricer_file = file
    else:
        pricer_file = ""
    report = RepriceReport(lo, hi, provider, model, pricer_file, dry_run)
    if not dry_run:
        lease.take(store)
        time.sleep(grace_seconds)
    try:
        scanning = time.monotonic()
        tallies, tenants, days = _run(store, report, pricer)
        report.phases["read_and_price"] = time.monotonic() - scanning - report.phases.get("rewrite", 0.0)
        report.tenants = _changes(tenants, users=False)
        report.users = _changes(tallies, users=True)
        report.days = [d.isoformat() for d in sorted(days)]
        if not dry_run and report.changed:
            first, last = min(days), max(days)
            touched = sorted({tenant for (tenant, _), tally in tallies.items() if tally.changed})
            narrowed = touched if len(touched) <= MAX_REBUILD_TENANTS else None
            rebuilding = time.monotonic()
            rebuilt = rebuild(store, start=first, end=last + timedelta(days=1), tenants=narrowed, grace_seconds=0)
            report.phases["rebuild"] = time.monotonic() - rebuilding
            report.verified = rebuilt.verified and report.verified is not False
            if not rebuilt.verified:
                _log.error("repriced rollups do not match llm_calls: %s", "; ".join(rebuilt.mismatches))
            _log_run(store, report, started_at=now)
    except BaseException:
        if not dry_run and "rewrite" in report.phases:  # some calls were rewritten: their rollups must follow
            _log.error("repricing failed after rewriting calls; rebuilding the window's rollups from llm_calls")
            try:
                rebuild(store, start=lo.date(), end=hi.date() + timedelta(days=1), grace_seconds=0)
            except Exception:
                _log.exception("could not rebuild: run `spanledger rebuild --from %s --to %s`", lo.date(), hi.date())
        raise
    finally:
        if not dry_run:
            lease.release(store)
    report.seconds = time.monotonic() - started
    return report


def _run(
    store: Store, report: RepriceReport, pricer: Pricer
) -> tuple[dict[tuple[str, str], _Tally], dict[str, _Tally], set[Any]]:
    """Price every call of the window; rewrite (unless a dry run) the ones that change, a month at a time."""
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    tenants: dict[str, _Tally] = defaultdict(_Tally)
    changed_days: set[Any] = set()
    call = _scratch()
    renewed = time.monotonic()
    table, partition, written = "", 0, 0
    try:
        for day in sql.repriced_days(store, report.start, report.end, report.provider, report.model):
            if not report.dry_run and time.monotonic() - renewed > RENEW_SECONDS:
                lease.take(store)
                renewed = time.monotonic()
            month = day.year * 100 + day.month
            if table and month != partition:
                _apply(store, table, partition, report, written)
                table, written = "", 0
            rows = []
            for row in sql.calls_of_day(store, day, report.start, report.end, report.provider, report.model):
                new = _price(call, row, pricer, report, tallies, tenants)
                if new is not None:
                    rows.append(new)
            if rows:
                changed_days.add(day)
                if not report.dry_run:
                    if not table:
                        table, partition = sql.create_prices_table(store), month
                    sql.add_prices(store, table, rows)
                    written += len(rows)
        if table:
            _apply(store, table, partition, report, written)
            table = ""
    finally:
        if table:
            sql.drop_prices_table(store, table)
    return tallies, tenants, changed_days


def _apply(store: Store, table: str, partition: int, report: RepriceReport, expected: int) -> None:
    began = time.monotonic()
    try:
        done = sql.apply_prices(store, table, partition, report.start, report.end)
    finally:
        sql.drop_prices_table(store, table)
        report.phases["rewrite"] = report.phases.get("rewrite", 0.0) + time.monotonic() - began
    if done != expected:
        _log.error("repricing month %s: %d calls hold their new price, %d expected", partition, done, expected)
        report.verified = False


def _price(
    call: LLMCall,
    row: tuple[Any, ...],
    pricer: Pricer,
    report: RepriceReport,
    tallies: dict[tuple[str, str], _Tally],
    tenants: dict[str, _Tally],
) -> tuple[Any, ...] | None:
    """Price one stored call again; its new price row when its cost changes, else ``None``."""
    (trace, span, at, tenant, user, provider, model, inp, out, read, write, reasoning, error, flags, *old) = row
    cost, input_cost, output_cost = old
    call.timestamp = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    call.provider, call.model, call.is_error = provider, model, bool(error)
    call.input_tokens, call.output_tokens, call.reasoning_tokens = inp, out, reasoning
    call.cache_read_tokens, call.cache_write_tokens = read, write
    call.flags = [f for f in flags if f not in PRICING_FLAGS]
    pricer.price(call)
    before = cost if cost is not None else Decimal(0)
    change = call.cost is not None and (cost, input_cost, output_cost) != (call.cost, call.input_cost, call.output_cost)
    after = call.cost if change and call.cost is not None else before
    report.calls += 1
    report.before += before
    report.after += after
    if call.cost is None and cost is not None:
        report.kept += 1
    for tally in (tallies[(tenant, user)], tenants[tenant]):
        tally.calls += 1
        tally.before += before
        tally.after += after
        if change:
            tally.changed += 1
            tally.newly_priced += cost is None
    if not change:
        return None
    report.changed += 1
    report.newly_priced += cost is None
    flagged = [*call.flags, "repriced"]
    return (trace, span, 1, call.cost, call.input_cost, call.output_cost, call.price_source, call.price_model, flagged)


def _changes(tallies: dict[Any, _Tally], *, users: bool) -> list[RepriceChange]:
    out = [
        RepriceChange(
            tenant_id=key[0] if users else key,
            user_id=key[1] if users else None,
            calls=t.calls,
            changed=t.changed,
            newly_priced=t.newly_priced,
            before=t.before,
            after=t.after,
        )
        for key, t in tallies.items()
        if t.changed
    ]
    out.sort(key=lambda c: (-abs(c.difference), c.tenant_id, c.user_id or ""))
    return out


def _log_run(store: Store, report: RepriceReport, *, started_at: datetime) -> None:
    sql.log_reprice(
        store,
        {
            "id": secrets.token_hex(8),
            "started_at": started_at,
            "window_start": report.start,
            "window_end": report.end,
            "provider": report.provider or "",
            "model": report.model or "",
            "price_file": report.price_file,
            "calls": report.calls,
            "changed": report.changed,
            "newly_priced": report.newly_priced,
            "kept": report.kept,
            "cost_before": report.before,
            "cost_after": report.after,
        },
    )
