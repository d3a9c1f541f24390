"""Revenue import and margins on real chDB: good, malformed, mixed and duplicate files; margins exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger import Ledger, Store
from spanledger._billing.billing import Billing
from spanledger._billing.revenue import RevenueFileError
from spanledger._billing.schema import REVENUE_TABLE
from tests.integration.billing_support import call, store_calls

pytestmark = pytest.mark.integration

NOV = datetime(2026, 11, 10, 9, tzinfo=UTC)
COST = Decimal("0.0001212")  # one default call (gpt-4o-mini, 1200 in of which 1024 cached, 30 out)
GOOD = """customer_id,customer_type,period,date,amount,currency,tenant_id
acme,tenant,2026-11,,0.0002,USD,
globex,tenant,2026-11,,1.00,USD,
ann,user,,2026-11-10,0.00005,USD,acme
acme,tenant,2026-10,,99,USD,
"""


def revenue_rows(store: Store) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in store.query(
            f"SELECT kind, customer_id, tenant_id, period_start, amount FROM {store.database}.{REVENUE_TABLE} ORDER BY key"
        ).result_rows
    ]


@pytest.fixture
def billed(store: Store, tmp_path: Path) -> Store:
    spans = [call(NOV, user="ann", tenant="acme") for _ in range(3)]  # acme: 3 calls
    spans += [call(NOV, user="bob", tenant="acme"), call(NOV, user="cem", tenant="globex")]
    spans += [call(NOV, user="dia", tenant="initech", model="house-model-1", provider="acme-ai")]  # unpriced
    store_calls(store, spans, tmp_path)
    return store


def test_a_good_file_imports_once_and_margins_are_exact(billed: Store, tmp_path: Path) -> None:
    path = tmp_path / "revenue.csv"
    path.write_text(GOOD)
    billing = Billing(billed)
    first = billing.import_revenue(path)
    assert (first.lines, first.imported, first.already, first.amount) == (4, 4, 0, Decimal("100.00025"))
    stored = revenue_rows(billed)
    again = billing.import_revenue(path)
    assert (again.imported, again.already) == (0, 4) and revenue_rows(billed) == stored  # nothing changed

    ledger = Ledger(billed)
    billing.set_markup("50", tenant="acme")
    rows = {r.customer_id: r for r in ledger.margins(period="2026-11")}
    acme = rows["acme"]
    assert (acme.revenue, acme.cost, acme.price) == (Decimal("0.0002"), 4 * COST, 4 * COST * Decimal("1.5"))
    assert acme.gross_margin == Decimal("0.0002") - 4 * COST == Decimal("-0.0002848") and acme.negative
    assert acme.margin_pct == Decimal("-142.40")  # -0.0002848 / 0.0002, to two decimals
    assert (rows["globex"].margin_pct, rows["globex"].negative) == (Decimal("99.99"), False)
    assert rows["initech"].unpriced_requests == 1 and rows["initech"].cost == 0
    # worst first: cost without revenue would lead; then by margin %
    assert [r.customer_id for r in ledger.margins(period="2026-11")] == ["acme", "globex", "initech"]
    users = {r.customer_id: r for r in ledger.margins(period="2026-11", by="user")}
    assert users["ann"].revenue == Decimal("0.00005") and users["ann"].cost == 3 * COST
    assert users["bob"].margin_pct is None and users["bob"].gross_margin == -COST
    october = ledger.margins(period="2026-10")
    assert [(r.customer_id, r.revenue, r.cost) for r in october] == [("acme", Decimal(99), Decimal(0))]


def test_a_malformed_or_mixed_file_stores_nothing(billed: Store, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(GOOD + "acme,tenant,2026-11,,12,EUR,\nglobex,boss,2026-11,,1,USD,\n")
    with pytest.raises(RevenueFileError) as caught:
        Billing(billed).import_revenue(mixed)
    assert caught.value.errors == [
        "mixed.csv line 6: currency 'EUR': only USD is accepted",
        "mixed.csv line 7: customer_type 'boss': tenant or user",
    ]
    assert revenue_rows(billed) == []


def test_a_line_stored_before_with_other_content_refuses_the_file(billed: Store, tmp_path: Path) -> None:
    billing = Billing(billed)
    first = tmp_path / "a.csv"
    first.write_text("id,customer_id,period,amount,currency\ninv-7,acme,2026-11,10.00,USD\n")
    billing.import_revenue(first)
    second = tmp_path / "b.csv"
    second.write_text("id,customer_id,period,amount,currency\ninv-8,acme,2026-11,5,USD\ninv-7,acme,2026-11,12,USD\n")
    with pytest.raises(RevenueFileError, match=r"b.csv line 3: line id 'inv-7' was imported before with other content"):
        billing.import_revenue(second)
    assert [r[4] for r in revenue_rows(billed)] == [Decimal(10)]  # inv-8 was not stored either
    dry = billing.import_revenue(first, dry_run=True)
    assert (dry.imported, dry.already, dry.dry_run) == (0, 1, True)


def test_the_cli_prints_one_error_per_bad_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    dsn = f"chdb://{tmp_path / 'store'}"
    subprocess.run([sys.executable, "-c", "import sys; from spanledger import Store; Store(sys.argv[1])", dsn], env=env)
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,period,amount,currency\nacme,2026-11,x,USD\nacme,2026-11,1,USD\n,2026-11,1,USD\n")
    good = tmp_path / "good.csv"
    good.write_text(GOOD)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "spanledger", "revenue", "import", *args, "--store", dsn]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    refused = cli(str(bad))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "spanledger: error: bad.csv line 2: amount 'x' is not a number",
        "spanledger: error: bad.csv line 4: customer_id is empty",
    ]
    first, second = cli(str(good), "--format", "json"), cli(str(good), "--format", "json")
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert (json.loads(first.stdout)["imported"], json.loads(second.stdout)["already"]) == (4, 4)
    assert json.loads(second.stdout)["imported"] == 0
