"""The statement and margins pages in a real browser (Debian's chromium driven by Playwright), on a desktop and a
phone; screenshots land in ``test-artifacts/`` at the repository root."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI

from spanledger._billing.billing import Billing
from spanledger._billing.rounding import cents_text
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, running, seeded
from tests.integration.test_browser import ARTIFACTS, CHROMIUM_ARGS, api, chromium

pytestmark = pytest.mark.integration
__all__ = ["chromium", "seeded"]  # the fixtures

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture(scope="module")
def month(seeded: tuple[FastAPI, datetime]) -> str:
    app, now = seeded
    month = f"{now - timedelta(days=10):%Y-%m}"
    billing = Billing(app.state.store)
    billing.set_markup("25", tenant="acme")
    billing.set_markup("12.5")
    lines = ["customer_id,period,amount,currency", f"acme,{month},0.02,USD", f"globex,{month},5,USD"]
    path = ARTIFACTS.parent / ".billing-revenue.csv"
    path.write_text("\n".join(lines) + "\n")
    try:
        billing.import_revenue(path)
    finally:
        path.unlink()
    return month


@pytest.fixture
def browser(seeded: tuple[FastAPI, datetime], chromium: str) -> Iterator[tuple[Any, str]]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with running(seeded[0]) as base, sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched, base
        launched.close()


def open_page(browser: tuple[Any, str], size: str, token: str) -> Any:
    launched, base = browser
    width, height = SIZES[size]
    tab = launched.new_page(viewport={"width": width, "height": height}, base_url=base)
    tab.set_default_timeout(20_000)
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("request", lambda r: None if r.url.startswith(base) else tab.problems.append(f"request: {r.url}"))
    tab.goto("/login")
    tab.fill("#token", token)
    with tab.expect_navigation():
        tab.click("form[action='/login'] button[type=submit]")
    return tab


@pytest.mark.parametrize("size", SIZES)
def test_the_printable_statement_shows_the_apis_numbers(
    browser: tuple[Any, str], seeded: tuple[FastAPI, datetime], month: str, size: str
) -> None:
    app = seeded[0]
    tab = open_page(browser, size, ADMIN_TOKEN)
    tab.goto(f"/tenants/acme/statement?period={month}")
    want = api(app, "/api/v1/statement", tenant="acme", period=month)
    assert tab.locator("#amount-due").inner_text() == cents_text(Decimal(want["amount"]))
    assert tab.locator("#total-amount").inner_text() == cents_text(Decimal(want["amount"]))
    rows = tab.locator("#statement-lines tbody tr")
    assert rows.count() == len(want["lines"])
    for i, line in enumerate(want["lines"]):
        amount = rows.nth(i).locator("td.amount").inner_text()
        assert amount == (cents_text(Decimal(line["amount"])) if line["priced"] else "not billed")
    unpriced = [line for line in want["lines"] if not line["priced"]]
    assert tab.locator("tr.line-unpriced").count() == len(unpriced)
    if unpriced:
        assert tab.locator("#unpriced-note").is_visible()
    assert "rounded half up to the cent" in tab.locator("#rounding-rule").inner_text()
    assert tab.locator("input[name=period]").input_value() == month
    tab.screenshot(path=str(ARTIFACTS / f"billing-statement-{size}.png"), full_page=True)
    fits = "(e => [e.scrollWidth, e.clientWidth])(document.querySelector('#statement .table-wrap'))"
    scroll, width = tab.evaluate(fits)
    assert scroll <= width  # every column shown fits, the amounts too, on a phone as on a desktop
    tab.emulate_media(media="print")
    assert not tab.locator("header.topbar").is_visible() and not tab.locator(".statement-tools").is_visible()
    tab.screenshot(path=str(ARTIFACTS / f"billing-statement-{size}-print.png"), full_page=True)
    tab.emulate_media(media="screen")
    assert tab.locator("[data-print]").is_visible()
    assert tab.problems == []


@pytest.mark.parametrize("size", SIZES)
def test_margins_worst_first_with_negative_ones_marked_and_a_tenant_sees_only_its_own(
    browser: tuple[Any, str], seeded: tuple[FastAPI, datetime], month: str, size: str
) -> None:
    app = seeded[0]
    tab = open_page(browser, size, ADMIN_TOKEN)
    tab.goto(f"/margins?period={month}")
    want = api(app, "/api/v1/margins", period=month)["data"]
    shown = tab.locator("#margins-table tbody tr")
    assert [shown.nth(i).get_attribute("data-customer") for i in range(shown.count())] == [
        r["customer_id"] for r in want
    ]
    negative = [r for r in want if r["negative"]]
    assert negative and tab.locator("tr.row-negative").count() == len(negative)
    assert tab.locator("tr.row-negative .badge-error").count() == len(negative)
    assert tab.locator("#negative-note").is_visible()
    tab.screenshot(path=str(ARTIFACTS / f"billing-margins-{size}.png"), full_page=True)
    scroll, width = tab.evaluate("(e => [e.scrollWidth, e.clientWidth])(document.querySelector('.table-wrap'))")
    assert scroll <= width  # the margins fit: no sideways scrolling to find them
    with tab.expect_navigation():  # each tenant opens its statement for the same month
        tab.click("#margins-table tr[data-customer='globex'] a")
    assert tab.url.endswith(f"/tenants/globex/statement?period={month}")
    acme = open_page(browser, size, ACME_TOKEN)
    acme.goto(f"/margins?period={month}")
    rows = acme.locator("#margins-table tbody tr")
    assert [rows.nth(i).get_attribute("data-customer") for i in range(rows.count())] == ["acme"]
    acme.goto(f"/margins?period={month}&by=user")
    assert "globex" not in acme.content()
    acme.screenshot(path=str(ARTIFACTS / f"billing-margins-tenant-{size}.png"), full_page=True)
    assert tab.problems == [] and acme.problems == []
