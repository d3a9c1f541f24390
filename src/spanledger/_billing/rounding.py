"""The rounding rule of every statement and margin — exact ``Decimal`` until one rounding to the cent.

* A cost is a sum of stored per-call costs (``Decimal(18, 12)`` each), exact.
* A line's price is its cost × (100 + markup %) / 100, exact (:func:`marked_up`: written with 12 decimals
  like a cost when that is exact, with more when the markup needs them; an arithmetic that would have to
  round raises instead of rounding silently).
* Rounding to the cent happens once, for the statement: the total price is rounded half up to the cent
  (:func:`to_cents`), and the lines' amounts are that total shared out over the lines (:func:`allocate`):
  each line's exact price rounded down (toward −∞) to the cent, the cents left over given one by one to the lines
  with the largest remainders (earlier lines first on ties). The lines add up to the total, and no line
  is a cent or more away from its exact price.

CSV, JSON, the CLI's table and the printable page all show these same numbers: they are computed here
once and only formatted elsewhere (:func:`cents_text`).
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
_COST_QUANTUM = Decimal("1e-12")
_HUNDRED = Decimal(100)
_EXACT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.Overflow, decimal.InvalidOperation])
"""Wide enough for any sum of ``Decimal(38, 12)`` times a six-decimal percentage; refuses to round."""

RULE = (
    "Amounts are exact Decimal until the statement's total: a line's price is its cost × (100 + markup %) / 100, "
    "exactly; the total price is rounded half up to the cent, and the lines' amounts share that total out "
    "(each line's price rounded down to the cent, the remaining cents to the largest remainders), so the "
    "lines add up to the total."
)
"""The rule in one paragraph, as statements carry it (``rounding`` in JSON, a note on the page)."""


def marked_up(cost: Decimal, percent: Decimal) -> Decimal:
    """``cost`` with a markup of ``percent`` (``20`` = +20 %, ``-10`` = a 10 % discount), exactly."""
    with decimal.localcontext(_EXACT):
        price = cost * (_HUNDRED + percent) / _HUNDRED
        try:  # as many decimals as a cost when that is exact (it is for any markup of up to 4 decimals)
            return price.quantize(_COST_QUANTUM)
        except decimal.Inexact:
            return price


def exact_sum(values: Sequence[Decimal]) -> Decimal:
    """A sum that refuses to round."""
    with decimal.localcontext(_EXACT):
        return sum(values, Decimal(0))


def to_cents(value: Decimal) -> Decimal:
    """Rounded half up to the cent (``0.005`` → ``0.01``; ``-0.005`` → ``-0.01``)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def allocate(exact: Sequence[Decimal]) -> list[Decimal]:
    """Cent amounts for ``exact`` values that add up to ``to_cents(sum(exact))``, each less than a cent away
    from its exact value (largest remainders; earlier values first on ties)."""
    if not exact:
        return []
    total = to_cents(exact_sum(exact))
    floors = [v.quantize(CENT, rounding=ROUND_FLOOR) for v in exact]
    left = int((total - exact_sum(floors)) / CENT)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    out = list(floors)
    for i in order[:left]:
        out[i] += CENT
    return out


def percent_of(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part / whole`` in percent, rounded half up to two decimals; ``None`` when ``whole`` is 0."""
    if whole == 0:
        return None
    with decimal.localcontext(decimal.Context(prec=60)):
        return (part * _HUNDRED / whole).quantize(CENT, rounding=ROUND_HALF_UP)


def cents_text(value: Decimal | None) -> str:
    """``$1,234.56`` for an amount already in cents (``-$3.20``; ``—`` for none): never re-rounded."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value).quantize(CENT):,}"
