"""The dashboard in a real browser (Debian's chromium driven by Playwright) on a seeded ledger.

Screenshots land in ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from spanledger import UNATTRIBUTED_LABEL
from spanledger._server.views import money
from tests.integration.server_support import ADMIN_TOKEN, OLD_USER, XSS_USER, running, seeded

pytestmark = pytest.mark.integration
__all__ = ["seeded"]  # the module-scoped fixture

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS.append("--disable-sync")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is needed for the browser tests: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def page(seeded: tuple[FastAPI, datetime], chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    app = seeded[0]
    ARTIFACTS.mkdir(exist_ok=True)
    with running(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1360, "height": 900}, base_url=base)
        tab.set_default_timeout(20_000)
        tab.problems = []  # console errors, dialogs, and requests to anywhere but this server
        tab.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        tab.on("dialog", lambda d: (tab.problems.append(f"dialog: {d.message}"), d.dismiss()))
        tab.on("request", lambda r: None if r.url.startswith(base) else tab.problems.append(f"request: {r.url}"))
        yield tab
        browser.close()


def api(app: FastAPI, path: str, **params: Any) -> Any:
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        response = client.get(path, params=params)
        assert response.status_code == 200
        return response.json()


def labels(rows: list[dict[str, Any]]) -> list[str]:
    return [r["user_id"] or UNATTRIBUTED_LABEL for r in rows]


def table_users(page: Any) -> list[str]:
    """The ranked users shown (the pinned unattributed row is not one of them)."""
    return page.locator("#users-table tbody tr:not(#unattributed-row) td:first-child a.user-link").all_inner_texts()


def sign_in(page: Any, path: str = "/") -> None:
    page.goto(path)
    if urlsplit(page.url).path == "/login":
        page.fill("#token", ADMIN_TOKEN)
        go(page, "form[action='/login'] button[type=submit]")


def open_filters(page: Any) -> None:
    """Open the filter bar's drawer (closed while nothing narrows the view)."""
    if not page.locator("details.filter-drawer[open]").count():
        page.click("details.filter-drawer summary")


def query_of(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def go(page: Any, selector: str) -> None:
    """Click a link or button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_users_table_sorting_search_window_paging_and_drill_down(page: Any, seeded: tuple[FastAPI, datetime]) -> None:
    app, now = seeded
    page.goto("/users")
    assert urlsplit(page.url).path == "/login"
    shot(page, "login")
    page.fill("#token", ADMIN_TOKEN)
    go(page, "form[action='/login'] button[type=submit]")
    page.wait_for_url("**/users")
    expected = api(app, "/api/v1/users", **{"from": "28d"})
    assert page.locator("#result-count strong").inner_text() == str(expected["total"])
    assert table_users(page) == labels(expected["data"])
    assert page.locator("#users-table th.sorted").inner_text().startswith("Cost")
    # the unattributed calls are pinned above the ranking, not one of its users
    pinned = page.locator("#unattributed-row")
    assert pinned.locator("a.user-link").inner_text() == UNATTRIBUTED_LABEL
    assert money(Decimal(expected["unattributed"]["cost"])) in pinned.inner_text()
    shot(page, "users")

    # sort by each column, both directions; the title follows the sort
    for column in ("requests", "tokens", "last_seen", "cost"):
        for direction in ("desc", "asc"):  # a new column starts descending; a second click flips it
            go(page, f"#users-table th a[data-sort={column}]")
            assert query_of(page).get("sortBy", ["cost"]) == [column]
            assert query_of(page).get("sortDir", ["desc"]) == [direction]
            want = api(app, "/api/v1/users", sortBy=column, sortDir=direction, **{"from": "28d"})
            assert table_users(page) == labels(want["data"]), (column, direction)
            title = {"cost": "LLM cost", "requests": "requests", "tokens": "tokens", "last_seen": "last seen"}[column]
            assert f"Users by {title}" in page.locator(".subtitle").inner_text()

    # substring search on the user id
    page.fill(".inline-search input[name=search]", "AN")
    page.press(".inline-search input[name=search]", "Enter")
    page.wait_for_url("**search=AN**")
    found = table_users(page)
    assert found and all("an" in u.lower() for u in found)
    assert query_of(page)["sortDir"] == ["asc"]  # the search form keeps the sort
    assert found == labels(api(app, "/api/v1/users", search="AN", sortDir="asc", **{"from": "28d"})["data"])
    page.fill(".inline-search input[name=search]", "")
    page.press(".inline-search input[name=search]", "Enter")
    page.wait_for_url(lambda url: "search" not in url)

    # the window: presets, all time, and a custom range that holds only the oldest call
    go(page, "a.seg[data-window='7d']")
    page.wait_for_url("**window=7d**")
    assert page.locator("#result-count strong").inner_text() == str(
        api(app, "/api/v1/users", **{"from": "7d"})["total"]
    )
    go(page, "a.seg[data-window='all']")
    page.wait_for_url("**window=all**")
    assert page.locator("#result-count strong").inner_text() == "34"
    assert OLD_USER in table_users(page)
    page.click("details.custom summary")
    day = (now - timedelta(days=40)).date()
    page.fill("input[name=from]", (day - timedelta(days=1)).isoformat())
    page.fill("input[name=to]", (day + timedelta(days=1)).isoformat())
    go(page, ".custom-form button[type=submit]")
    page.wait_for_url("**window=custom**")
    assert table_users(page) == [OLD_USER]
    shot(page, "users-custom-window")

    # pagination: 25 rows a page over all 34 users; a page past the end is the last page
    go(page, "a.seg[data-window='all']")
    page.wait_for_url("**window=all**")
    go(page, ".page-size a:has-text('25')")
    page.wait_for_url("**limit=25**")
    first = table_users(page)
    go(page, "a[rel=next]")
    page.wait_for_url("**page=2**")
    assert page.locator("#page-of").inner_text() == "Page 2 of 2"
    second = table_users(page)
    everyone = labels(api(app, "/api/v1/users", limit=100, sortDir="asc")["data"])  # the sort is kept
    assert (len(first), len(second)) == (25, 9) and first + second == everyone
    go(page, "a[rel=prev]")
    assert table_users(page) == first
    page.goto("/users?window=all&limit=25&page=9")
    assert page.locator("#page-of").inner_text() == "Page 2 of 2"
    assert "There is no page 9" in page.locator("#clamped").inner_text()
    assert table_users(page) == labels(api(app, "/api/v1/users", limit=100)["data"])[25:]

    # tenant (auto-submitted by the select) and tag (picked from the store's values) stay in the URL
    page.goto("/users?window=all&limit=25")
    open_filters(page)
    page.select_option("select[name=tenant]", "globex")
    page.wait_for_url("**tenant=globex**")
    tenants = page.locator("#users-table tbody tr td a.tenant-link").all_inner_texts()
    assert tenants and set(tenants) == {"globex"}
    offered = page.locator("select[name=tag] option").all_inner_texts()
    assert "plan = pro" in offered and "plan = free" in offered  # from the store, not typed blind
    page.select_option("select[name=tag]", "plan=pro")
    page.wait_for_url("**tag=plan%3Dpro**")
    pro = api(app, "/api/v1/users", tenant="globex", limit=100, **{"tag.plan": "pro"})
    assert table_users(page) == labels(pro["data"])[:25]
    assert page.locator(".active-filters .chip").all_inner_texts() == ["tenant globex ✕", "plan pro ✕"]
    shot(page, "users-filtered")
    go(page, ".active-filters a.chip:has-text('plan')")
    assert "tag" not in query_of(page) and query_of(page)["tenant"] == ["globex"]

    # an id that is markup is shown as text, never run
    page.goto(f"/users?window=all&search={XSS_USER[:9]}")
    assert table_users(page) == [XSS_USER]

    # click through to a user, then to one of their calls
    page.goto("/users?window=all")
    top = api(app, "/api/v1/users", limit=1)["data"][0]
    go(page, "#users-table tbody tr:not(#unattributed-row) >> nth=0 >> a.user-link")
    page.wait_for_url("**/users/**")
    assert page.locator("h1").inner_text() == top["user_id"]
    detail = api(app, f"/api/v1/users/{top['user_id']}", tenant=top["tenant_id"])
    assert page.locator(".kpi >> nth=0 >> .kpi-value").inner_text() == money(Decimal(top["cost"]))
    assert page.locator("#models-table tbody tr").count() == len(detail["models"])
    assert page.locator("#calls-table tbody tr").count() == min(10, top["requests"])
    first_day = date.fromisoformat(detail["daily"][0]["day"])
    assert page.locator("svg.chart rect.bar").count() == (datetime.now(UTC).date() - first_day).days + 1
    shot(page, "user")
    newest = detail["calls"][0]
    go(page, "#calls-table a.call-link >> nth=0")
    page.wait_for_url(f"**/calls/{newest['trace_id']}/{newest['span_id']}**")
    record = dict(
        zip(
            page.locator("#call-record dt").all_inner_texts(),
            page.locator("#call-record dd").all_inner_texts(),
            strict=True,
        )
    )
    assert record["Model that answered"] == newest["model"]
    ids = dict(
        zip(
            page.locator("#ids-record dt").all_inner_texts(),
            page.locator("#ids-record dd").all_inner_texts(),
            strict=True,
        )
    )
    assert ids["Span"] == newest["span_id"] and ids["Trace"] == newest["trace_id"]
    tokens = page.locator("#tokens-record").inner_text()
    assert f"{newest['input_tokens']:,}" in tokens and f"{newest['output_tokens']:,}" in tokens
    cost = page.locator("#cost-record").inner_text()
    assert newest["cost"] is None or str(Decimal(newest["cost"]).normalize()) in cost
    assert "Summarise ticket" in page.locator("#prompt").inner_text()
    shot(page, "call")
    go(page, ".breadcrumbs a >> nth=0")
    page.wait_for_url("**/users/**")
    assert page.locator("h1").inner_text() == top["user_id"]

    # the overview keeps the tenant of the view it came from (the filter bar); without it, every tenant
    go(page, "nav a:has-text('Overview')")
    overview = api(app, "/api/v1/overview", tenant=top["tenant_id"], **{"from": "28d"})
    assert query_of(page)["tenant"] == [top["tenant_id"]]
    assert (
        page.locator(".kpi >> nth=0 >> .kpi-value").inner_text().startswith(money(Decimal(overview["totals"]["cost"])))
    )
    page.goto("/?window=all")
    everything = api(app, "/api/v1/overview")
    assert page.locator(".kpi >> nth=0 >> .kpi-value").inner_text() == money(Decimal(everything["totals"]["cost"]))
    assert page.locator(".kpi-warn").count() == 2  # unpriced calls and unattributed spend are shown
    shot(page, "overview")
    assert page.problems == []
