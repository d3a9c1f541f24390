"""The rounding rule: exact until one rounding to the cent, lines that add up to the total; markups in order."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spanledger import ConfigError
from spanledger._billing.markups import Markups, parse_percent
from spanledger._billing.model import Markup
from spanledger._billing.rounding import allocate, cents_text, marked_up, percent_of, to_cents

costs = st.decimals(min_value=0, max_value=Decimal("999999.999999999999"), places=12, allow_nan=False)
percents = st.decimals(min_value=-100, max_value=1000, places=6, allow_nan=False)


@given(st.lists(costs, max_size=40))
def test_allocated_cents_add_up_to_the_rounded_total_and_stay_within_a_cent(values: list[Decimal]) -> None:
    cents = allocate(values)
    assert sum(cents, Decimal(0)) == to_cents(sum(values, Decimal(0)))
    assert all(
        abs(c - v) < Decimal("0.01") and c == c.quantize(Decimal("0.01")) for c, v in zip(cents, values, strict=True)
    )


@given(costs, percents)
def test_a_markup_is_exact(cost: Decimal, percent: Decimal) -> None:
    price = marked_up(cost, percent)
    with decimal.localcontext(decimal.Context(prec=100)):
        assert price == cost * (100 + percent) / 100


def test_the_rule_by_example() -> None:
    assert marked_up(Decimal("0.0001212"), Decimal("20")) == Decimal("0.00014544")
    assert to_cents(Decimal("0.005")) == Decimal("0.01") and to_cents(Decimal("0.00499999")) == Decimal("0.00")
    # three lines of 0.4 cents: 1.2 cents in all, rounded to 1 cent, which goes to the first (ties: earlier first)
    assert allocate([Decimal("0.004")] * 3) == [Decimal("0.01"), Decimal("0"), Decimal("0")]
    assert allocate([Decimal("1.005"), Decimal("2.335")]) == [Decimal("1.01"), Decimal("2.33")]
    assert allocate([Decimal("0.001"), Decimal("0.009")]) == [Decimal("0"), Decimal("0.01")]  # largest remainder
    assert percent_of(Decimal("-1"), Decimal("3")) == Decimal("-33.33") and percent_of(Decimal(1), Decimal(0)) is None
    assert cents_text(Decimal("1234.5")) == "$1,234.50" and cents_text(Decimal("-3.2")) == "-$3.20"


def test_arithmetic_that_would_round_raises_instead() -> None:
    with pytest.raises(decimal.Inexact):
        marked_up(Decimal("0." + "3" * 40), Decimal("1e-45"))  # 88 digits: more than 80


def test_markups_are_looked_up_user_tenant_plan_default() -> None:
    m = Markups(
        [
            Markup("default", "", Decimal(5)),
            Markup("plan", "pro", Decimal(15)),
            Markup("tenant", "acme", Decimal(25)),
            Markup("user", "ann", Decimal(35)),
        ]
    )
    assert m.resolve("acme", "ann", "pro").percent == 35
    assert m.resolve("acme", "bob", "pro").percent == 25
    assert m.resolve("globex", "bob", "pro").percent == 15
    assert m.resolve("globex", "bob", "free").label == "default"
    assert Markups([]).resolve("acme", "ann", "pro").label == "none"
    assert (m.by_user, m.by_plan, Markups([]).by_user) == (True, True, False)


@pytest.mark.parametrize("bad", ["", "x", "NaN", "Infinity", "-100.5", "100001", "1e-7", 1.5, True])
def test_bad_percentages(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_percent(bad)


def test_good_percentages() -> None:
    assert [parse_percent(v) for v in ("20", "12.5%", " -10 ", 7, "0.000001")] == [
        Decimal(20),
        Decimal("12.5"),
        Decimal(-10),
        Decimal(7),
        Decimal("0.000001"),
    ]
