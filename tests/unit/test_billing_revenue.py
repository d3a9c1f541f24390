"""Reading revenue files: both shapes, one error per bad line, keys that make a re-import a no-op."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from spanledger._billing.revenue import RevenueFileError, parse_revenue

GOOD = """customer_id,customer_type,period,date,amount,currency,tenant_id,description
acme,tenant,2026-11,,1200.50,USD,,November plan
ann,user,,2026-11-05,9.99,usd,acme,top-up
globex,,2026-11,,0.000000000001,USD,,
acme,tenant,2026-11,,1200.50,USD,,November plan
"""

STRIPE = """id,invoice_id,Customer,Amount,Currency,Period Start (UTC),Period End (UTC),Description,Customer Metadata: tenant_id,Customer Metadata: user_id
il_1,in_1,cus_9,129900,usd,1793491200,1796083199,Pro plan,acme,
il_2,in_1,cus_9,-2500,usd,2026-11-01 00:00:00,2026-11-30 23:59:59,Discount,acme,
il_3,in_2,cus_7,499,usd,2026-11-03T10:00:00Z,,Seat,acme,ann
"""


def test_the_spanledger_shape_reads_exactly() -> None:
    shape, lines = parse_revenue(GOOD, "rev.csv")
    assert shape == "spanledger"
    assert [(x.kind, x.customer_id, x.tenant_id, x.period_start, x.period_end, x.amount) for x in lines] == [
        ("tenant", "acme", "acme", date(2026, 11, 1), date(2026, 12, 1), Decimal("1200.50")),
        ("user", "ann", "acme", date(2026, 11, 5), date(2026, 11, 6), Decimal("9.99")),
        ("tenant", "globex", "globex", date(2026, 11, 1), date(2026, 12, 1), Decimal("1E-12")),
        ("tenant", "acme", "acme", date(2026, 11, 1), date(2026, 12, 1), Decimal("1200.50")),
    ]
    # two identical lines are two payments: different keys; the same file read again: the same keys
    assert len({x.key for x in lines}) == 4
    assert [x.key for x in parse_revenue(GOOD, "other-name.csv")[1]] == [x.key for x in lines]


def test_stripe_invoice_lines_are_cents_with_the_customer_from_its_metadata() -> None:
    shape, lines = parse_revenue(STRIPE, "stripe.csv")
    assert shape == "stripe"
    assert [(x.key, x.kind, x.customer_id, x.tenant_id, x.period_start, x.amount) for x in lines] == [
        ("stripe:in_1:il_1", "tenant", "acme", "acme", date(2026, 11, 1), Decimal("1299")),
        ("stripe:in_1:il_2", "tenant", "acme", "acme", date(2026, 11, 1), Decimal("-25")),
        ("stripe:in_2:il_3", "user", "ann", "acme", date(2026, 11, 3), Decimal("4.99")),
    ]


def test_every_bad_line_is_reported_once_and_nothing_is_returned() -> None:
    bad = """customer_id,period,date,amount,currency
acme,2026-11,,10,USD
acme,2026-13,,10,USD
,2026-11,,10,USD
acme,2026-11,,ten,USD
acme,2026-11,,10,EUR
acme,,,10,USD
acme,2026-11,2026-11-02,10,USD
acme,2026-11,,10
acme,2026-11,,1.0000000000001,USD
"""
    with pytest.raises(RevenueFileError) as caught:
        parse_revenue(bad, "bad.csv")
    errors = caught.value.errors
    assert [e.split(":")[0] for e in errors] == [f"bad.csv line {n}" for n in range(3, 11)]
    assert "period '2026-13'" in errors[0] and "customer_id is empty" in errors[1]
    assert "'ten' is not a number" in errors[2] and "only USD" in errors[3]
    assert "period and date are both empty" in errors[4] and "not both" in errors[5]
    assert "4 fields, the header has 5" in errors[6] and "more than 12 decimals" in errors[7]
    assert str(caught.value).startswith("bad.csv: 8 bad line(s), nothing imported")


def test_stripe_amounts_must_be_cents_and_name_a_customer() -> None:
    bad = STRIPE.replace("129900", "1299.00").replace(
        "cus_7,499,usd,2026-11-03T10:00:00Z,,Seat,acme,ann", "cus_7,499,usd,2026-11-03,,Seat,,"
    )
    with pytest.raises(RevenueFileError) as caught:
        parse_revenue(bad, "s.csv")
    assert caught.value.errors == [
        "s.csv line 2: amount '1299.00': Stripe amounts are whole cents (1234 for $12.34)",
        "s.csv line 4: no tenant or user id in the customer metadata columns",
    ]


def test_a_line_id_twice_must_name_the_same_line() -> None:
    twice = STRIPE + "il_1,in_1,cus_9,129900,usd,1793491200,1796083199,Pro plan,acme,\n"
    assert len(parse_revenue(twice)[1]) == 4  # the same line twice: imported once (the import keeps one)
    changed = STRIPE + "il_1,in_1,cus_9,1,usd,1793491200,1796083199,Pro plan,acme,\n"
    with pytest.raises(RevenueFileError, match="line id 'in_1:il_1' is also line 2, with other content"):
        parse_revenue(changed)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("customer_id,amount\nacme,1\n", "unknown columns"),
        ("customer_id,period,amount,currency\n", "no revenue lines"),
    ],
)
def test_files_that_are_not_revenue(text: str, message: str) -> None:
    with pytest.raises(RevenueFileError, match=message):
        parse_revenue(text)
