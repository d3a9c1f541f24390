"""Profiles and tool use on the dashboard, in a real browser (Debian's chromium driven by Playwright), at a desktop
(1280×800) and a phone (390×844) size: names beside ids, search by name and e-mail, customers with no calls,
the user page's profile and "By tool" card, and a tenant's session seeing only its own tenant's names.

Screenshots land in a pytest temporary directory (``customers-shots``), printed at the end of the session's log.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI

from spanledger import Ledger, testing
from spanledger._customers import store as profiles
from spanledger._customers.profiles import read_text
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, running, seeded

pytestmark = pytest.mark.integration
__all__ = ["seeded"]  # the module-scoped fixture

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PEOPLE = """user_id,tenant_id,display_name,email,plan,metadata.seats
alice.chen,acme,Alice Chen,alice@acme.example,pro,5
bruno.diaz,globex,Bruno Díaz,bruno@globex.example,free,
emma.wilson,acme,Emma Wilson-Featherstonehaugh of the Very Long Name,emma@acme.example,pro,
,acme,ACME Corporation,billing@acme.example,enterprise,
dev.patel,umbrella,Dev Patel,dev@umbrella.example,pro,
new.signup,acme,Nina Newcomer,nina@newco.example,trial,
"""
TOOLS = [("search_docs", False)] * 2 + [("search_docs", True), ("run_sql", False)]


@pytest.fixture(scope="module")
def app(seeded: tuple[FastAPI, datetime]) -> FastAPI:
    app, now = seeded
    spans = [
        testing.tool_span(n, tool=name, user="alice.chen", tenant="acme", error=error, at=now - timedelta(hours=3 + n))
        for n, (name, error) in enumerate(TOOLS)
    ]
    app.state.exporter.export(spans)
    assert app.state.exporter.force_flush(30_000)
    profiles.upsert(app.state.store, read_text(PEOPLE, format="csv"))
    return app


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("customers-shots")


@pytest.fixture(scope="module")
def browser(app: FastAPI) -> Iterator[tuple[Any, str]]:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is needed for the browser tests: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with running(app) as base, sync_playwright() as pw:
        made = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield made, base
        made.close()


def signed_in(browser: tuple[Any, str], token: str, viewport: dict[str, int]) -> Any:
    chromium, base = browser
    page = chromium.new_page(viewport=viewport, base_url=base)
    page.set_default_timeout(20_000)
    page.problems = []  # console errors and requests to anywhere but this server
    page.on("console", lambda m: page.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(base) else page.problems.append(f"request: {r.url}"))
    page.goto("/login")
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    return page


def go(page: Any, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def row_of(page: Any, user_id: str) -> Any:
    return page.locator("#users-table tbody tr", has=page.locator(f"a.user-link:text-is('{user_id}')"))


def test_users_table_names_search_tools_and_customers_with_no_calls(browser: tuple[Any, str], shots: Path) -> None:
    page = signed_in(browser, ADMIN_TOKEN, DESKTOP)
    page.goto("/users?window=all")
    alice = row_of(page, "alice.chen")
    assert alice.locator(".customer-name").inner_text() == "Alice Chen"
    assert alice.locator("td.tools-cell").inner_text() == "4"
    assert row_of(page, "chloe.martin").locator("td.tools-cell").inner_text() == "0"
    headers = page.locator("#users-table thead th").all_inner_texts()
    assert headers[-1] == "Tools"
    # the calls with no user carry no name, not the tenant's
    assert page.locator("#users-table tr.row-unattributed").count() == 1
    assert page.locator("#users-table tr.row-unattributed .customer-name").count() == 0
    # a very long name is cut by the layout, never widening the table past the page
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    page.screenshot(path=str(shots / "users-desktop.png"), full_page=True)

    # search by a name (non-ASCII, any case), then by an e-mail
    page.fill("input[type=search][name=search]", "díaz")
    with page.expect_navigation():
        page.press("input[type=search][name=search]", "Enter")
    assert page.locator("#users-table a.user-link").all_inner_texts() == ["bruno.diaz"]
    assert page.locator("input[type=search][name=search]").get_attribute("placeholder") == "Search id, name or e-mail…"
    page.fill("input[type=search][name=search]", "emma@acme")
    with page.expect_navigation():
        page.press("input[type=search][name=search]", "Enter")
    assert page.locator("#users-table a.user-link").all_inner_texts() == ["emma.wilson"]
    page.screenshot(path=str(shots / "users-search-email.png"), full_page=True)

    # who signed up and never used it: listed after everyone else with zero spend, and the switch stays on
    page.goto("/users?window=all")
    go(page, "a:text('Show customers with no calls')")
    assert parse_qs(urlsplit(page.url).query)["inactive"] == ["1"]
    newcomer = row_of(page, "new.signup")
    assert newcomer.locator(".customer-name").inner_text() == "Nina Newcomer"
    assert newcomer.locator(".badge").inner_text() == "no calls"
    assert newcomer.locator("td.num.strong").inner_text() == "$0.00"
    assert page.locator("#users-table a.user-link").all_inner_texts()[-1] == "new.signup"
    assert "1 with no calls" in page.locator(".inactive-toggle").inner_text()
    go(page, "a[data-sort=requests]")
    assert parse_qs(urlsplit(page.url).query)["inactive"] == ["1"]  # sorting keeps it
    assert "includeInactive=true" in page.locator("a[download]").get_attribute("href")
    page.screenshot(path=str(shots / "users-inactive.png"), full_page=True)
    go(page, "a:text('Hide them')")
    assert row_of(page, "new.signup").count() == 0
    assert page.problems == []


def test_user_page_profile_and_tools_at_desktop_and_phone(browser: tuple[Any, str], shots: Path, app: FastAPI) -> None:
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = signed_in(browser, ADMIN_TOKEN, viewport)
        page.goto("/users/alice.chen?window=all")
        profile = page.locator("#customer-profile")
        assert profile.locator(".profile-name").inner_text() == "Alice Chen"
        assert "alice@acme.example" in profile.inner_text() and "seats=5" in profile.inner_text()
        tools = page.locator("#tools-table tbody tr")
        assert [r.locator("td").nth(0).inner_text() for r in tools.all()] == ["search_docs", "run_sql"]
        assert [r.locator("td").nth(1).inner_text() for r in tools.all()] == ["3", "1"]
        assert tools.nth(0).locator(".badge-error").inner_text() == "1"
        expected = Ledger(app.state.store).user("alice.chen").tools
        assert [t.calls for t in expected] == [3, 1]
        page.screenshot(path=str(shots / f"user-{name}.png"), full_page=True)
        if name == "phone":  # the profile and the card fit the phone; the card's table scrolls inside it
            for selector in ("#customer-profile", "#tools-card"):
                box = page.locator(selector).bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], selector
        page.goto("/users/new.signup?window=all")
        assert page.locator("#customer-profile .profile-name").inner_text() == "Nina Newcomer"
        assert "No calls from new.signup" in page.locator(".card .empty").inner_text()
        page.goto("/?window=all")
        top = page.locator("table.compact").first  # dev.patel is the costliest user of the seed
        assert top.locator("tbody tr").first.locator(".customer-name").inner_text() == "Dev Patel"
        assert "ACME Corporation" in page.locator("table.compact").nth(1).inner_text()
        page.screenshot(path=str(shots / f"overview-{name}.png"), full_page=True)
        page.goto("/users?window=all")
        page.screenshot(path=str(shots / f"users-{name}-again.png"), full_page=True)
        assert page.problems == []
        page.close()


def test_a_tenant_session_sees_only_its_tenants_names(browser: tuple[Any, str], shots: Path) -> None:
    page = signed_in(browser, ACME_TOKEN, DESKTOP)
    page.goto("/users?window=all&search=d%C3%ADaz")  # bruno.diaz is globex's
    assert page.locator("#users-table a.user-link").count() == 0
    page.goto("/users?window=all&inactive=1")
    names = page.locator("#users-table .customer-name").all_inner_texts()
    assert "Alice Chen" in names and "Nina Newcomer" in names and "Bruno Díaz" not in names
    assert page.problems == []
    answer = page.goto("/users/bruno.diaz?window=all")  # another tenant's user: unknown here, a 404 page
    assert answer is not None and answer.status == 404
    assert page.locator("#customer-profile").count() == 0 and "Bruno" not in page.content()
    page.screenshot(path=str(shots / "tenant-acme.png"), full_page=True)
    print(f"\nscreenshots: {shots}")
