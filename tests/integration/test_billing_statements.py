"""Statements on real chDB: totals equal ``Ledger.totals`` exactly for random windows, markups priced exactly
(checked against every call priced by hand), lines that add up to the total, unpriced calls on lines of
their own, and the same numbers in JSON, CSV and the CLI."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spanledger import ConfigError, Ledger, Store
from spanledger._billing import records
from spanledger._billing.billing import Billing
from spanledger._billing.rounding import to_cents
from spanledger._cli.main import main
from spanledger._pricing.pricer import Pricer, PriceRule
from tests.integration.billing_support import (
    START,
    TENANTS,
    USERS,
    call,
    priced_by_hand,
    raw_calls,
    store_calls,
    traffic,
)

pytestmark = pytest.mark.integration

MARKUPS = {
    ("default", ""): Decimal("10"),
    ("plan", "pro"): Decimal("35.5"),
    ("tenant", "globex"): Decimal("-12.25"),
    ("user", "bob"): Decimal("42.123456"),
}


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Store:
    store_calls(store, traffic(), tmp_path)
    billing = Billing(store)
    for (scope, key), percent in MARKUPS.items():
        billing.set_markup(str(percent), **({scope: key} if scope != "default" else {}))
    return store


def random_windows(n: int, seed: int = 5) -> list[tuple[datetime, datetime]]:
    """Windows at arbitrary microseconds: inside one hour, across hours, days, weeks, and the whole month."""
    rng = random.Random(seed)
    out = [(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))]
    for _ in range(n):
        start = START + timedelta(microseconds=rng.randrange(20 * 86_400 * 10**6))
        length = timedelta(microseconds=rng.choice((10**6 * 600, 10**6 * 5400, 86_400 * 10**6 * 3, 10**12)))
        out.append((start, start + length * rng.random() + timedelta(microseconds=1)))
    return out


def test_statement_totals_equal_ledger_totals_exactly_for_random_windows(seeded: Store) -> None:
    ledger = Ledger(seeded)
    checked = 0
    for start, end in random_windows(12):
        for tenant in (*TENANTS, ""):
            st = ledger.statement(tenant, start=start, end=end)
            totals = ledger.totals(start=start, end=end, tenant_id=tenant).usage
            assert (st.cost, st.requests) == (totals.cost, totals.requests), (tenant, start, end)
            assert (st.unpriced_requests, st.unpriced_tokens) == (totals.unpriced_requests, totals.unpriced_tokens)
            assert (st.input_tokens, st.output_tokens) == (totals.input_tokens, totals.output_tokens)
            assert to_cents(st.cost) == to_cents(totals.cost)
            # the markups, priced one call at a time from the raw table, give the same exact price
            assert st.price == priced_by_hand(raw_calls(seeded, start, end, tenant_id=tenant), MARKUPS)
            assert st.amount == to_cents(st.price) == sum((line.amount or Decimal(0) for line in st.lines), Decimal(0))
            assert sum(line.requests for line in st.lines) == st.requests
            for line in st.lines:
                if line.priced:
                    assert line.amount is not None and line.price is not None
                    assert abs(line.amount - line.price) < Decimal("0.01")
            checked += st.requests
    assert checked > 500  # the windows did hold calls


def test_a_users_statement_equals_their_ledger_totals_across_tenants_and_in_one(seeded: Store) -> None:
    ledger = Ledger(seeded)
    for start, end in random_windows(5, seed=9):
        for user in USERS:
            st = ledger.statement(user_id=user, start=start, end=end)
            detail = ledger.user(user, start=start, end=end, calls=0)
            usage = detail.summary.usage if detail.summary else None
            assert st.cost == (usage.cost if usage else Decimal(0))
            assert st.requests == (usage.requests if usage else 0)
            assert st.price == priced_by_hand(raw_calls(seeded, start, end, user_id=user), MARKUPS)
            one = ledger.statement("acme", user_id=user, start=start, end=end)
            assert one.price == priced_by_hand(raw_calls(seeded, start, end, user_id=user, tenant_id="acme"), MARKUPS)


def test_markups_are_looked_up_user_then_tenant_then_plan_then_default_and_priced_exactly(
    store: Store, tmp_path: Path
) -> None:
    at = datetime(2026, 11, 10, 12, tzinfo=UTC)
    spans = [
        call(at, user="bob", tenant="globex", plan="pro"),  # bob's own markup
        call(at, user="ann", tenant="globex", plan="pro"),  # globex's
        call(at, user="ann", tenant="acme", plan="pro"),  # pro's
        call(at, user="ann", tenant="acme"),  # the default
    ]
    store_calls(store, spans, tmp_path)
    billing = Billing(store)
    for (scope, key), percent in MARKUPS.items():
        billing.set_markup(str(percent), **({scope: key} if scope != "default" else {}))
    ledger = Ledger(store)
    cost = Decimal("0.0001212")  # each call: gpt-4o-mini, 1200 input of which 1024 cached, 30 output
    bob = ledger.statement(user_id="bob", period="2026-11")
    assert [(line.markup, line.markup_percent, line.price) for line in bob.lines] == [
        ("user bob", Decimal("42.123456"), Decimal("0.000172253628672")),  # 0.0001212 × 1.42123456, exactly
    ]
    globex = ledger.statement("globex", period="2026-11")
    assert {line.markup: line.price for line in globex.lines} == {
        "user bob": cost * Decimal("1.42123456"),
        "tenant globex": cost * Decimal("0.8775"),
    }
    acme = ledger.statement("acme", period="2026-11")
    assert {(line.markup, line.plan): line.price for line in acme.lines} == {
        ("plan pro", "pro"): cost * Decimal("1.355"),
        ("default", ""): cost * Decimal("1.1"),
    }
    assert acme.amount == Decimal("0.00") and acme.price == cost * Decimal("2.455")
    assert billing.remove_markup(user="bob") and not billing.remove_markup(user="bob")
    assert ledger.statement(user_id="bob", period="2026-11").lines[0].markup == "tenant globex"
    with pytest.raises(ConfigError, match="six decimals"):
        billing.set_markup("1.0000001", tenant="acme")
    with pytest.raises(ConfigError, match="between"):
        billing.set_markup("-101", tenant="acme")
    with pytest.raises(ConfigError, match="one user, one tenant or one plan"):
        billing.set_markup("5", tenant="acme", user="ann")


def test_unpriced_calls_are_a_line_of_their_own_with_their_tokens_even_within_a_priced_model(
    store: Store, tmp_path: Path
) -> None:
    """A model priced only from the 15th by a rule: its calls before are unpriced — the rollups count them but
    cannot split their tokens from the priced ones', so the statement asks the raw table."""
    rule = PriceRule(
        model="house-model-1", input_mtok=Decimal("2"), output_mtok=Decimal("4"), since=START.date().replace(day=15)
    )

    def house(day: int, input_tokens: int, output_tokens: int) -> Any:
        when = START + timedelta(days=day, hours=3)
        return call(
            when,
            user="ann",
            tenant="acme",
            provider="acme-ai",
            model="house-model-1",
            input_tokens=input_tokens,
            cache_read=0,
            output_tokens=output_tokens,
        )

    early = [house(d, 1000 + d, 7) for d in range(5)]
    late = [house(14 + d, 500, 9) for d in range(3)]
    exporter_spans = early + late
    from spanledger import CostExporter

    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    exporter.pipeline.pricer = Pricer(rules=[rule])
    exporter.export(exporter_spans)
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    st = Ledger(store).statement("acme", period="2026-11")
    priced, unpriced = st.lines
    assert (priced.priced, priced.requests, priced.input_tokens, priced.output_tokens) == (True, 3, 1500, 27)
    assert priced.cost == Decimal(1500 * 2 + 27 * 4) / 10**6
    assert (unpriced.priced, unpriced.requests, unpriced.input_tokens, unpriced.output_tokens) == (
        False,
        5,
        sum(1000 + d for d in range(5)),
        35,
    )
    assert (unpriced.cost, unpriced.price, unpriced.amount, unpriced.markup_percent) == (None, None, None, None)
    assert (st.unpriced_requests, st.unpriced_tokens) == (5, 5010 + 35)


def test_json_csv_and_the_table_carry_the_same_numbers(
    seeded: Store, store_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    st = Ledger(seeded).statement("acme", period="2026-11")
    assert main(["statement", "--tenant", "acme", "--period", "2026-11", "--store", store_dsn, "--format", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json == json.loads(json.dumps(records.record(st)))
    assert as_json["amount"] == f"{st.amount}" and as_json["cost"] == f"{st.cost:f}"
    assert main(["statement", "--tenant", "acme", "--period", "2026-11", "--store", store_dsn, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["line"] for r in rows] == [*("priced" if line.priced else "unpriced" for line in st.lines), "total"]
    for row, line in zip(rows, as_json["lines"], strict=False):
        assert (row["cost"], row["price"], row["amount"]) == tuple(line[k] or "" for k in ("cost", "price", "amount"))
    assert (rows[-1]["cost"], rows[-1]["price"], rows[-1]["amount"]) == (
        as_json["cost"],
        as_json["price"],
        as_json["amount"],
    )
    assert sum(Decimal(r["amount"]) for r in rows[:-1] if r["amount"]) == Decimal(rows[-1]["amount"])
    assert main(["statement", "--tenant", "acme", "--period", "2026-11", "--store", store_dsn]) == 0
    table = capsys.readouterr().out
    assert f"Amount due: ${st.amount:,}" in table
    for line in st.lines:
        if line.priced:
            assert f"${line.amount:,}" in table


def test_bad_statement_requests_are_one_line(store_dsn: str, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["statement", "--store", store_dsn]) == 2
    assert "give --tenant ID or --user ID" in capsys.readouterr().err
    assert main(["statement", "--tenant", "acme", "--period", "2026-13", "--store", store_dsn]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad period" in err
    assert main(["statement", "--tenant", "a", "--period", "2026-11", "--from", "7d", "--store", store_dsn]) == 2
    assert "not both" in capsys.readouterr().err


def test_markups_from_the_command_line(store: Store, store_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["markup", "set", "20", "--tenant", "acme", "--note", "2026 contract", "--store", store_dsn]) == 0
    assert main(["markup", "set", "7.5", "--store", store_dsn]) == 0
    assert capsys.readouterr().out.splitlines() == ["Markup of tenant acme: 20%.", "Markup of default: 7.5%."]
    assert main(["markup", "list", "--format", "json", "--store", store_dsn]) == 0
    listed = json.loads(capsys.readouterr().out)["markups"]
    assert [(m["label"], m["percent"], m["note"]) for m in listed] == [
        ("tenant acme", "20", "2026 contract"),
        ("default", "7.5", ""),
    ]
    assert main(["markup", "unset", "--tenant", "acme", "--store", store_dsn]) == 0
    assert main(["markup", "unset", "--tenant", "acme", "--store", store_dsn]) == 0
    assert capsys.readouterr().out.splitlines() == ["Removed.", "No such markup was set."]
    assert [m.label for m in Billing(store).markups()] == ["default"]
    assert main(["markup", "set", "--tenant", "acme", "--store", store_dsn]) == 2
    assert "give the percentage" in capsys.readouterr().err
    assert main(["markup", "set", "1e400", "--plan", "pro", "--store", store_dsn]) == 2
    assert main(["markup", "set", "5", "--tenant", "a", "--user", "b", "--store", store_dsn]) == 2
    assert capsys.readouterr().err.count("\n") == 2
