"""The billing API and pages on the real app: a tenant token sees only its own statement and margins, through
every endpoint and parameter; the API's numbers are the ledger's; writes need the admin token; the call
page says which rule priced a repriced call."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from spanledger import Ledger, Store
from spanledger._billing import records
from spanledger._billing.billing import Billing
from spanledger._server import create_app
from tests.integration.billing_support import call, store_calls
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, GLOBEX_TOKEN, seeded, settings, users_of

pytestmark = pytest.mark.integration
__all__ = ["seeded"]  # the module-scoped fixture


def client(app: FastAPI, token: str | None) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {token}"} if token else {})


@pytest.fixture(scope="module")
def billed(seeded: tuple[FastAPI, datetime]) -> Iterator[tuple[FastAPI, str]]:
    """The seeded app with markups and revenue: for acme, for globex, and for users of each tenant."""
    app, now = seeded
    month = f"{now - timedelta(days=10):%Y-%m}"
    billing = Billing(app.state.store)
    billing.set_markup("30", tenant="acme")
    billing.set_markup("15")
    lines = [
        "customer_id,customer_type,period,amount,currency,tenant_id",
        f"acme,tenant,{month},0.05,USD,",
        f"globex,tenant,{month},3.00,USD,",
        f"alice.chen,user,{month},1.25,USD,acme",
        f"bruno.diaz,user,{month},2.50,USD,globex",
        f"chloe.martin,user,{month},0.75,USD,",
    ]
    with client(app, ADMIN_TOKEN) as admin:
        response = admin.post("/api/v1/revenue", content="\n".join(lines).encode(), params={"name": "rev.csv"})
        assert response.status_code == 200, response.text
    yield app, month


def test_a_tenant_token_sees_only_its_own_statement_and_margins(billed: tuple[FastAPI, str]) -> None:
    app, month = billed
    with client(app, ADMIN_TOKEN) as admin, client(app, ACME_TOKEN) as acme, client(app, GLOBEX_TOKEN) as globex:
        own = acme.get("/api/v1/statement", params={"period": month}).json()
        assert (
            own["tenant_id"] == "acme"
            and own == admin.get("/api/v1/statement", params={"tenant": "acme", "period": month}).json()
        )
        assert own["requests"] > 0
        for path in ("/api/v1/statement", "/api/v1/statement.csv", "/api/v1/margins", "/api/v1/margins.csv"):
            assert acme.get(path, params={"tenant": "globex"}).status_code == 403, path
            assert globex.get(path, params={"tenant": "acme", "period": month}).status_code == 403, path
            assert client(app, None).get(path, params={"tenant": "acme"}).status_code == 401, path
        # a globex user, asked for with the acme token: only that user's calls in acme (none)
        other = acme.get("/api/v1/statement", params={"user": "bruno.diaz", "period": month}).json()
        assert (other["tenant_id"], other["user_id"], other["requests"], other["lines"]) == (
            "acme",
            "bruno.diaz",
            0,
            [],
        )
        assert admin.get("/api/v1/statement", params={"user": "bruno.diaz", "period": month}).json()["requests"] > 0

        margins = acme.get("/api/v1/margins", params={"period": month}).json()["data"]
        assert [r["customer_id"] for r in margins] == ["acme"] and margins[0]["revenue"] == "0.050000000000"
        by_user = acme.get("/api/v1/margins", params={"period": month, "by": "user"}).json()["data"]
        assert {r["customer_id"] for r in by_user} <= users_of("acme") | {""}
        revenue = {r["customer_id"]: r["revenue"] for r in by_user if Decimal(r["revenue"])}
        assert revenue == {"alice.chen": "1.250000000000"}  # not bruno's (globex), not chloe's (no tenant)
        csv_rows = list(csv.DictReader(io.StringIO(acme.get("/api/v1/margins.csv", params={"by": "user"}).text)))
        assert {r["customer_id"] for r in csv_rows} <= users_of("acme") | {""}
        everyone = {r["customer_id"] for r in admin.get("/api/v1/margins", params={"period": month}).json()["data"]}
        assert {"acme", "globex", "initech"} <= everyone

        # the pages: the same limits
        assert acme.get("/tenants/globex/statement").status_code == 403
        assert acme.get("/tenants/(no tenant)/statement").status_code == 403
        assert acme.get("/margins", params={"tenant": "globex"}).status_code == 403
        page = acme.get("/margins", params={"period": month, "by": "user"}).text
        assert "bruno.diaz" not in page and "chloe.martin" not in page and "alice.chen" in page
        assert "globex" not in acme.get("/margins", params={"period": month}).text
        assert acme.get(f"/tenants/acme/statement?period={month}").status_code == 200

        # changing anything needs the admin token
        assert acme.get("/api/v1/markups").status_code == 403
        assert acme.put("/api/v1/markups", json={"percent": "0", "tenant": "acme"}).status_code == 403
        assert acme.delete("/api/v1/markups", params={"tenant": "acme"}).status_code == 403
        assert (
            acme.post(
                "/api/v1/revenue", content=b"customer_id,period,amount,currency\nacme,2026-01,9,USD\n"
            ).status_code
            == 403
        )
        assert acme.post("/api/v1/reprice", json={"from": "2026-01-01", "to": "2026-02-01"}).status_code == 403


def test_the_api_answers_with_the_ledgers_numbers(billed: tuple[FastAPI, str]) -> None:
    app, month = billed
    ledger: Ledger = app.state.ledger
    with client(app, ADMIN_TOKEN) as admin:
        for tenant in ("acme", "globex", "initech"):
            want = records.record(ledger.statement(tenant, period=month))
            got = admin.get("/api/v1/statement", params={"tenant": tenant, "period": month}).json()
            assert got == want
            rows = list(
                csv.DictReader(
                    io.StringIO(admin.get("/api/v1/statement.csv", params={"tenant": tenant, "period": month}).text)
                )
            )
            assert [r["amount"] for r in rows] == [*(line["amount"] or "" for line in want["lines"]), want["amount"]]
            html = admin.get(f"/tenants/{tenant}/statement", params={"period": month}).text
            assert (
                f'id="amount-due" title="exact price {Decimal(want["price"]).normalize():f} USD">${Decimal(want["amount"]):,}'
                in html
            )
        margins = admin.get("/api/v1/margins", params={"period": month}).json()
        assert margins["data"] == [records.record(r) for r in ledger.margins(period=month)]
        assert margins["window"]["from"].startswith(month)
        assert admin.get("/api/v1/statement", params={"period": "2026-13"}).status_code == 422
        assert admin.get("/api/v1/statement", params={"period": month}).status_code == 422  # for whom?
        assert admin.get("/api/v1/margins", params={"by": "plan"}).status_code == 422


def test_markups_and_revenue_through_the_api(billed: tuple[FastAPI, str]) -> None:
    app, month = billed
    with client(app, ADMIN_TOKEN) as admin:
        before = Decimal(admin.get("/api/v1/statement", params={"tenant": "initech", "period": month}).json()["price"])
        assert (
            admin.put("/api/v1/markups", json={"percent": "40", "tenant": "initech"}).json()["label"]
            == "tenant initech"
        )
        after = admin.get("/api/v1/statement", params={"tenant": "initech", "period": month}).json()
        assert Decimal(after["price"]) == Decimal(after["cost"]) * Decimal("1.4") != before
        assert "tenant initech" in {m["label"] for m in admin.get("/api/v1/markups").json()["markups"]}
        assert admin.delete("/api/v1/markups", params={"tenant": "initech"}).json() == {"removed": True}
        assert admin.put("/api/v1/markups", json={"percent": "abc"}).status_code == 422
        body = b"customer_id,period,amount,currency\ninitech,2026-11,1,USD\n"
        assert admin.post("/api/v1/revenue", content=body, params={"dry_run": True}).json()["imported"] == 1
        assert admin.post("/api/v1/revenue", content=body).json()["imported"] == 1
        assert admin.post("/api/v1/revenue", content=body).json()["already"] == 1
        refused = admin.post(
            "/api/v1/revenue", content=b"customer_id,period,amount,currency\nx,2026-11,1,GBP\n,2026-11,1,USD\n"
        )
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            "revenue.csv line 2: currency 'GBP': only USD is accepted",
            "revenue.csv line 3: customer_id is empty",
        ]


def test_a_repriced_calls_page_says_which_rule_priced_it(store_dsn: str, store: Store, tmp_path: Path) -> None:
    at = datetime(2026, 11, 20, 8, 30)
    spans = [call(at, user="ann", tenant="acme", provider="acme-ai", model="house-model-1") for _ in range(2)]
    store_calls(store, spans, tmp_path)  # stored unpriced: nobody knew the model
    prices = tmp_path / "prices.toml"
    prices.write_text('[[prices]]\nname = "house"\nmodel = "house-*"\ninput_mtok = "3"\noutput_mtok = "15"\n')
    app = create_app(settings(store_dsn, price_file=str(prices)), store=store)
    try:
        with client(app, ADMIN_TOKEN) as admin:
            window = {"from": "2026-11-20", "to": "2026-11-21"}
            dry = admin.post("/api/v1/reprice", json=window).json()  # a dry run unless told otherwise
            assert (dry["dry_run"], dry["changed"], dry["newly_priced"]) == (True, 2, 2)
            done = admin.post("/api/v1/reprice", json={**window, "dry_run": False}).json()
            assert (done["changed"], done["verified"]) == (2, True)
            span = spans[0].context
            found: dict[str, Any] = admin.get(f"/api/v1/calls/{span.trace_id:032x}/{span.span_id:016x}").json()
            assert found["price_source"] == "override:prices.toml#house" and "repriced" in found["flags"]
            assert Decimal(found["cost"]) == (Decimal(1200) * 3 + Decimal(30) * 15) / 10**6
            page = admin.get(f"/calls/{span.trace_id:032x}/{span.span_id:016x}").text
            assert "override:prices.toml#house" in page and "repriced" in page
    finally:
        app.state.exporter.shutdown()
