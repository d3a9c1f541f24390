"""Budgets on the dashboard in a real browser (Debian's chromium via Playwright), desktop and phone: the budget
column and the over-budget filter of /users, the budget card of a user's page; screenshots of each."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from spanledger import Budgets
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, running, seeded, users_of
from tests.integration.test_browser import CHROMIUM_ARGS

pytestmark = pytest.mark.integration
__all__ = ["seeded"]

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def app(seeded: tuple[FastAPI, datetime]) -> FastAPI:
    app = seeded[0]
    budgets = Budgets(app.state.store)
    budgets.set(user_id="alice.chen", tenant_id="acme", limit="0.0001", period="yearly")
    budgets.set(tenant_id="acme", default=True, limit="0.01", period="yearly")
    budgets.set(tenant_id="acme", limit="1000", period="monthly", timezone="Asia/Tokyo", hard=False)
    budgets.set(user_id="bruno.diaz", limit="0.00001", period="lifetime")  # every tenant: admins only
    budgets.set(tag="plan=free", limit="1000", period="monthly")
    return app


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("budget-screenshots")


@pytest.fixture(params=list(SIZES))
def page(request: pytest.FixtureRequest, app: FastAPI) -> Iterator[Any]:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is needed for the browser tests: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with running(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport=SIZES[request.param], base_url=base)
        tab.set_default_timeout(20_000)
        tab.size = request.param
        tab.problems = []  # console errors (a CSP violation is one), and requests to anywhere else
        tab.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        tab.on("request", lambda r: None if r.url.startswith(base) else tab.problems.append(f"request: {r.url}"))
        yield tab
        browser.close()


def sign_in(page: Any, token: str) -> None:
    page.goto("/login")
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")


def report(app: FastAPI, token: str = ADMIN_TOKEN, **params: Any) -> list[dict[str, Any]]:
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get("/api/v1/budgets/report", params=params)
        assert response.status_code == 200
        rows: list[dict[str, Any]] = response.json()["data"]
        return rows


_ROWS_JS = """() => [...document.querySelectorAll('#users-table tbody tr:not(#unattributed-row)')].map(tr => [
    tr.querySelector('a.tenant-link').textContent.trim(),
    tr.querySelector('a.user-link').textContent.trim(),
    (tr.querySelector('td.budget-cell') || {textContent: ''}).textContent.trim(),
])"""


def rows(page: Any) -> list[tuple[str, str]]:
    """(tenant, user) of each row (the tenant's column is hidden on a phone: read from the page, not the eye)."""
    return [(t, u) for t, u, _ in page.evaluate(_ROWS_JS)]


def budget_cells(page: Any) -> dict[tuple[str, str], str]:
    return {(t, u): " ".join(b.split()) for t, u, b in page.evaluate(_ROWS_JS)}


def test_the_budget_column_the_over_budget_filter_and_the_budget_card(page: Any, app: FastAPI, shots: Path) -> None:
    sign_in(page, ADMIN_TOKEN)
    page.goto("/users?window=all&limit=100")
    assert page.locator("#users-table thead th", has_text="Budget").count() == 1
    cells = budget_cells(page)
    if page.size == "phone":  # the column is for wide screens; a phone sees "over budget" under the user
        over_here = page.locator("#users-table tbody tr", has=page.locator("a.user-link:text-is('alice.chen')"))
        assert over_here.locator(".phone-only.badge-error").inner_text() == "over budget"
    assert cells[("acme", "alice.chen")].startswith("$") and "/ $0.0001 " in cells[("acme", "alice.chen")]
    assert "over" in cells[("acme", "alice.chen")]
    assert "/ $0.0100" in cells[("acme", "emma.wilson")]  # the tenant's default
    assert "over" in cells[("globex", "bruno.diaz")]  # his own budget, in every tenant
    assert cells[("umbrella", "dev.patel")] == "—"  # no budget applies
    page.screenshot(path=str(shots / f"users-budget-column-{page.size}.png"), full_page=True)

    with page.expect_navigation():
        page.click("#over-budget-filter")
    assert parse_qs(urlsplit(page.url).query)["budget"] == ["over"]
    over = {(r["tenant_id"], r["user_id"]) for r in report(app, over="true") if r["user_id"] and r["tenant_id"]}
    assert over and set(rows(page)) == over | {("globex", "bruno.diaz")}
    with page.expect_navigation():  # sorting keeps the filter (a phone hides that column: its link, followed)
        page.goto(page.locator("#users-table th a[data-sort=requests]").get_attribute("href"))
    assert parse_qs(urlsplit(page.url).query)["budget"] == ["over"] and set(rows(page)) == set(over) | {
        ("globex", "bruno.diaz")
    }
    page.screenshot(path=str(shots / f"users-over-budget-{page.size}.png"), full_page=True)

    page.goto("/users/alice.chen?window=all&tenant=acme")
    card = page.locator("#budget-card")
    assert card.is_visible()
    subjects = card.locator("tbody tr td:first-child").all_inner_texts()
    assert subjects == ["user alice.chen in tenant acme", "tenant acme"]  # over budget first
    assert card.locator("tbody tr >> nth=0 >> .badge-error").inner_text() == "over"
    assert "Asia/Tokyo" in card.locator("tbody tr >> nth=1").inner_text()
    page.screenshot(path=str(shots / f"user-budget-card-{page.size}.png"), full_page=True)
    assert page.problems == []


def test_a_tenant_sees_only_its_own_users_budgets(page: Any, app: FastAPI, shots: Path) -> None:
    sign_in(page, ACME_TOKEN)
    page.goto("/users?window=all&budget=over&limit=100")
    listed = rows(page)
    over = {(r["tenant_id"], r["user_id"]) for r in report(app, ACME_TOKEN, over="true") if r["user_id"]}
    assert listed and set(listed) == over and {t for t, _ in listed} == {"acme"}
    assert {u for _, u in listed} <= users_of("acme")
    assert page.problems == []
    answer = page.goto("/users/bruno.diaz?window=all")  # globex's user: unknown to acme, a 404 page
    assert answer is not None and answer.status == 404
    assert page.locator("#budget-card").count() == 0  # his budget is an admin's, and his calls are globex's
    page.screenshot(path=str(shots / f"tenant-over-budget-{page.size}.png"), full_page=True)
