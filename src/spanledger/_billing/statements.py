"""Statements: what a tenant (or a user) used in a period, line by line, at cost and at the customer's price.

Usage comes from the query layer's tiers (whole days from the daily rollups, hours from the hourly ones,
the edges from the raw table), so a statement's cost is exactly ``Ledger.totals``' for the same window and
tenant. Lines are per provider and model — and, when markups differ within them, per markup (a user with
a markup of their own, a plan tag with one). Calls with no known price are lines of their own, with their
tokens and no cost. Rounding: :mod:`.rounding`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .._errors import ConfigError
from .._query.tiers import plan as tiers
from .._query.timebound import TimeBound
from .._store.store import Store
from . import store as sql
from .markups import Markups
from .model import Markup, Statement, StatementLine
from .periods import window
from .rounding import allocate, exact_sum, marked_up, to_cents

_TOKENS = sql.TOKEN_KINDS
_KEYS = ("provider", "model")
"""A statement's lines are per provider and model (and markup, which the store labels on each call)."""


@dataclass(slots=True)
class _Part:
    """Calls and tokens of one line while it is added up."""

    requests: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TOKENS, 0))
    cost: Decimal = Decimal(0)
    price: Decimal = Decimal(0)

    def add(self, requests: int, tokens: dict[str, int]) -> None:
        self.requests += requests
        for kind in _TOKENS:
            self.tokens[kind] += tokens[kind]


def statement(
    store: Store,
    tenant_id: str | None = None,
    *,
    user_id: str | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    period: str | None = None,
) -> Statement:
    """The statement of a tenant — or of a user (``user_id``; in one tenant when ``tenant_id`` is given too) —
    for ``period`` (``2026-11``) or ``[start, end)``; this month when neither is given."""
    if tenant_id is None and user_id is None:
        raise ConfigError("a statement is for a tenant or a user: give tenant_id or user_id")
    lo, hi = window(period=period, start=start, end=end, default_month=True)
    w = tiers(lo, hi)
    markups = Markups.load(store)
    scope = {"tenant_id": tenant_id, "user_id": user_id}
    groups = sql.usage_groups(store, w, _KEYS, markups, **scope)
    unpriced = _unpriced_parts(store, w, groups, markups, scope)

    priced_lines: dict[tuple[str, ...], tuple[_Part, Markup]] = {}
    unpriced_lines: dict[tuple[str, str], _Part] = {}
    totals = _Part()
    unpriced_tokens = 0
    for row in groups:
        usage = _Usage(row)
        tokens = {k: int(row[k]) for k in _TOKENS}
        totals.add(usage.requests, tokens)
        unpriced_tokens += usage.unpriced_tokens
        gone = unpriced.get(_key(row), (0, dict.fromkeys(_TOKENS, 0)))
        if usage.unpriced_requests == usage.requests:
            gone = (usage.requests, tokens)
        if gone[0]:
            unpriced_lines.setdefault((row["provider"], row["model"]), _Part()).add(*gone)
        requests = usage.requests - gone[0]
        if requests == 0:
            continue
        markup = markups.labelled(row["markup"])
        plan = markup.key if markup.scope == "plan" else ""
        part, _ = priced_lines.setdefault((row["provider"], row["model"], plan, markup.label), (_Part(), markup))
        part.add(requests, {k: tokens[k] - gone[1][k] for k in _TOKENS})
        part.cost = exact_sum([part.cost, usage.cost])
        part.price = exact_sum([part.price, marked_up(usage.cost, markup.percent)])

    ordered = sorted(priced_lines.items(), key=lambda kv: (-kv[1][0].cost, kv[0]))
    amounts = allocate([part.price for _, (part, _) in ordered])
    lines = [
        _line(key[0], key[1], key[2], part, markup, amount)
        for (key, (part, markup)), amount in zip(ordered, amounts, strict=True)
    ]
    lines += [
        _line(provider, model, "", part, None, None)
        for (provider, model), part in sorted(unpriced_lines.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    ]
    cost = exact_sum([part.cost for part, _ in priced_lines.values()])
    price = exact_sum([part.price for part, _ in priced_lines.values()])
    return Statement(
        tenant_id=tenant_id,
        user_id=user_id,
        start=w.start,
        end=w.end,
        lines=lines,
        requests=totals.requests,
        input_tokens=totals.tokens["input_tokens"],
        output_tokens=totals.tokens["output_tokens"],
        cost=cost,
        price=price,
        amount=to_cents(price),
        unpriced_requests=sum(p.requests for p in unpriced_lines.values()),
        unpriced_tokens=unpriced_tokens,
    )


def _line(provider: str, model: str, plan: str, part: _Part, markup: Any, amount: Decimal | None) -> StatementLine:
    return StatementLine(
        provider=provider,
        model=model,
        plan=plan,
        priced=markup is not None,
        requests=part.requests,
        **part.tokens,
        cost=part.cost if markup is not None else None,
        markup=markup.label if markup is not None else "",
        markup_percent=markup.percent if markup is not None else None,
        price=part.price if markup is not None else None,
        amount=amount,
    )


class _Usage:
    """The sums of one group (:data:`~.store.BILLED`)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.requests = int(row["requests"])
        self.cost = Decimal(row["cost"])
        self.unpriced_requests = int(row["unpriced_requests"])
        self.unpriced_tokens = int(row["unpriced_tokens"])


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["provider"], row["model"], row["markup"])


def _unpriced_parts(
    store: Store, w: Any, groups: list[dict[str, Any]], markups: Markups, scope: dict[str, Any]
) -> dict[tuple[str, ...], tuple[int, dict[str, int]]]:
    """The unpriced calls and tokens of the groups that hold priced and unpriced calls alike (a model priced
    only from some date, say): the rollups count their calls apart but not their tokens by kind."""
    mixed = sorted({(r["provider"], r["model"]) for r in groups if 0 < r["unpriced_requests"] < r["requests"]})
    if not mixed:
        return {}
    rows = sql.unpriced_groups(store, w, _KEYS, markups, mixed, **scope)
    return {_key(r): (int(r["requests"]), {k: int(r[k]) for k in _TOKENS}) for r in rows}
