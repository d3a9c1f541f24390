"""The dashboard's finding pages in a real browser: the calls explorer, tenants, segments, the filter bar
across navigation, "did you mean", and every page at a phone's width (390×844) as at a desktop's.

Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from fastapi import FastAPI

from spanledger import NO_TENANT_LABEL
from spanledger._server.views import money
from tests.integration.server_support import seeded
from tests.integration.test_browser import (
    CHROMIUM_ARGS,
    api,
    chromium,
    go,
    open_filters,
    page,
    query_of,
    shot,
    sign_in,
    table_users,
)

pytestmark = pytest.mark.integration
__all__ = ["chromium", "page", "seeded"]  # fixtures

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def call_ids(page: Any) -> list[str]:
    return [
        h.split("/calls/", 1)[1].split("?")[0]
        for h in page.locator("#calls-table a.call-link").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    ]


def api_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['trace_id']}/{r['span_id']}" for r in rows]


def test_calls_explorer_filters_paging_and_the_trace(page: Any, seeded: tuple[FastAPI, datetime]) -> None:
    app, _now = seeded
    sign_in(page, "/calls?window=all&limit=25")
    everything = api(app, "/api/v1/calls", limit=1000, count=True)
    assert page.locator("#result-count strong").inner_text() == f"{everything['total']:,}"
    # keyset paging: every call once, newest first, through "Older" to the end, and back through "Newer"
    seen: list[str] = []
    pages: list[list[str]] = []
    while True:
        ids = call_ids(page)
        pages.append(ids)
        seen += ids
        if not page.locator("a#older").count():
            break
        go(page, "a#older")
        assert "cursor" in query_of(page)
    assert seen == api_ids(everything["data"]) and len(pages) == -(-len(seen) // 25)
    go(page, "a#newer")
    assert call_ids(page) == pages[-2]
    go(page, "a#newest")
    assert call_ids(page) == pages[0] and not page.locator("a#newer").count()
    shot(page, "calls")

    # filters: failed calls of one model, then unpriced ones, then a cost floor
    page.click("details.explorer-filters summary")
    page.select_option("#explorer-form select[name=status]", "error")
    go(page, "#explorer-form button[type=submit]")
    failed = api(app, "/api/v1/calls", status="error", limit=1000)["data"]
    assert call_ids(page) == api_ids(failed)[:25] and failed
    assert page.locator("#calls-table .badge-error").count() == min(25, len(failed))
    page.select_option("#explorer-form select[name=status]", "")
    page.check("#explorer-form input[name=flag][value=unpriced]")
    go(page, "#explorer-form button[type=submit]")
    unpriced = api(app, "/api/v1/calls", flag="unpriced", limit=1000)["data"]
    assert call_ids(page) == api_ids(unpriced) and all(c["cost"] is None for c in unpriced)
    page.uncheck("#explorer-form input[name=flag][value=unpriced]")
    page.fill("#explorer-form input[name=min_cost]", "0.02")
    go(page, "#explorer-form button[type=submit]")
    dear = api(app, "/api/v1/calls", min_cost="0.02", limit=1000)["data"]
    assert dear and call_ids(page) == api_ids(dear)[:25]
    assert all(Decimal(c["cost"]) >= Decimal("0.02") for c in dear)
    models = page.locator("select[name=model] option").all_inner_texts()
    assert any(m == "gpt-4o-mini (openai)" for m in models)  # offered from the store
    shot(page, "calls-filtered")

    # a call opens as a record, links to its trace, and the trace lists its calls in the explorer
    go(page, "#calls-table a.call-link >> nth=0")
    assert page.locator("#cost-record").is_visible() and page.locator("#trace-table tr.current").count() == 1
    go(page, "a#trace-link")
    assert "trace" in query_of(page)
    trace = query_of(page)["trace"][0]
    assert call_ids(page) == api_ids(api(app, "/api/v1/calls", trace=trace, limit=1000)["data"])
    assert page.problems == []


def test_tenant_and_segment_pages(page: Any, seeded: tuple[FastAPI, datetime]) -> None:
    app, _now = seeded
    sign_in(page, "/tenants?window=all")
    ranking = api(app, "/api/v1/tenants", limit=100)
    assert page.locator("#result-count strong").inner_text() == str(ranking["total"])
    names = page.locator("#tenants-table tbody tr:not(#no-tenant-row) a.tenant-link").all_inner_texts()
    assert names == [t["tenant_id"] for t in ranking["data"]]
    assert money(Decimal(ranking["no_tenant"]["cost"])) in page.locator("#no-tenant-row").inner_text()
    shot(page, "tenants")

    # a tenant: its cost, its users (linked to the users page narrowed to it), its models
    top = ranking["data"][0]
    go(page, "#tenants-table tbody tr:not(#no-tenant-row) >> nth=0 >> a.tenant-link")
    assert page.locator("h1").inner_text() == top["tenant_id"]
    detail = api(app, f"/api/v1/tenants/{top['tenant_id']}")
    assert page.locator(".kpi >> nth=0 >> .kpi-value").inner_text() == money(Decimal(detail["summary"]["cost"]))
    assert page.locator(".kpi >> nth=1 >> .kpi-value").inner_text() == str(top["active_users"])
    assert page.locator("#models-table tbody tr").count() == len(detail["models"])
    users = api(app, "/api/v1/users", tenant=top["tenant_id"], limit=10)
    shown = page.locator("#tenant-users tbody tr:not(.row-unattributed) a.user-link").all_inner_texts()
    assert shown == [u["user_id"] for u in users["data"]]
    shot(page, "tenant")
    go(page, "a:has-text('All " + str(users["total"]) + " users')")
    assert query_of(page)["tenant"] == [top["tenant_id"]] and urlsplit(page.url).path == "/users"

    # "(no tenant)" opens like any tenant, and can be picked in the filter bar
    page.goto("/tenants?window=all")
    go(page, "#no-tenant-row a.tenant-link")
    assert page.locator("h1").inner_text() == NO_TENANT_LABEL
    assert page.locator(".kpi >> nth=0 >> .kpi-value").inner_text() == money(Decimal(ranking["no_tenant"]["cost"]))
    page.goto("/?window=all")
    open_filters(page)
    page.select_option("select[name=tenant]", NO_TENANT_LABEL)
    page.wait_for_url("**tenant=%28no+tenant%29**")
    nothing = api(app, "/api/v1/overview", tenant=NO_TENANT_LABEL)
    assert page.locator(".kpi >> nth=0 >> .kpi-value").inner_text() == money(Decimal(nothing["totals"]["cost"]))

    # segments: per plan, the values offered from the store; a value narrows every page
    page.goto("/segments?window=all")
    keys = page.locator("select[name=by] option").all_inner_texts()
    assert keys == ["plan"]
    segments = api(app, "/api/v1/segments", by="plan")
    rows = page.locator("#segments-table tbody tr")
    assert rows.count() == len(segments["data"])
    for i, seg in enumerate(segments["data"]):
        assert money(Decimal(seg["cost"])) in rows.nth(i).inner_text()
    assert page.locator("#segments-table svg.spark").count() == len(segments["data"])
    shot(page, "segments")
    go(page, "#segments-table a:has-text('pro')")
    assert query_of(page)["tag"] == ["plan=pro"] and urlsplit(page.url).path == "/"
    pro = api(app, "/api/v1/overview", **{"tag.plan": "pro"})
    assert page.locator(".kpi >> nth=0 >> .kpi-value").inner_text() == money(Decimal(pro["totals"]["cost"]))
    assert page.problems == []


def test_the_filter_bar_narrows_every_page_and_stays_across_navigation(
    page: Any, seeded: tuple[FastAPI, datetime]
) -> None:
    app, _now = seeded
    sign_in(page, "/?window=all")
    user = api(app, "/api/v1/users", limit=1)["data"][0]
    open_filters(page)
    page.fill("input[name=user]", user["user_id"])
    go(page, "#filter-form button[type=submit]")
    assert query_of(page)["user"] == [user["user_id"]]
    assert page.locator(".kpi >> nth=0 >> .kpi-value").inner_text() == money(Decimal(user["cost"]))
    shot(page, "overview-one-user")
    for nav, path in (("Users", "/users"), ("Tenants", "/tenants"), ("Segments", "/segments"), ("Calls", "/calls")):
        go(page, f"nav a:has-text('{nav}')")
        assert urlsplit(page.url).path == path
        assert query_of(page)["user"] == [user["user_id"]] and query_of(page)["window"] == ["all"], nav
        assert page.locator(".active-filters .chip").first.inner_text() == f"user {user['user_id']} ✕"
    # the explorer lists only that user's calls
    calls = api(app, "/api/v1/calls", user=user["user_id"], limit=1000)["data"]
    assert call_ids(page) == api_ids(calls)[:50] and len(calls) == user["requests"]
    go(page, "nav a:has-text('Users')")
    assert table_users(page) == [user["user_id"]]
    go(page, ".active-filters a.chip")  # remove it
    assert "user" not in query_of(page)
    assert len(table_users(page)) == api(app, "/api/v1/users")["total"]
    assert page.problems == []


def test_unknown_user_is_a_did_you_mean_page(page: Any, seeded: tuple[FastAPI, datetime]) -> None:
    sign_in(page, "/")
    response = page.goto("/users/" + quote("alise.chen"))
    assert response is not None and response.status == 404
    assert "No user" in page.locator("h1").inner_text()
    suggestions = page.locator(".suggestions a").all_inner_texts()
    assert suggestions[0] == "alice.chen"
    go(page, ".suggestions a >> nth=0")
    assert page.locator("h1").inner_text() == "alice.chen"
    shot(page, "did-you-mean")


PAGES = ["/", "/users", "/tenants", "/tenants/acme", "/segments?by=plan", "/calls", "/users/alice.chen", "/login"]


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_page_fits_the_screen(size: str, seeded: tuple[FastAPI, datetime], chromium: str) -> None:
    """No page scrolls sideways, the header never overflows, and the users table shows user and cost."""
    from playwright.sync_api import sync_playwright

    from tests.integration.server_support import running

    app = seeded[0]
    viewport = PHONE if size == "phone" else DESKTOP
    with running(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport=viewport, base_url=base)
        sign_in(tab, "/")
        calls = api(app, "/api/v1/calls", limit=1)["data"][0]
        for path in [*PAGES, f"/calls/{calls['trace_id']}/{calls['span_id']}"]:
            tab.goto(path + ("&" if "?" in path else "?") + "window=all")
            wide = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert wide <= 0, f"{path} at {size}: {wide}px wider than the screen"
            header = tab.evaluate(
                "(() => { const h = document.querySelector('.topbar-inner');"
                " return h ? h.scrollWidth - h.clientWidth : 0 })()"
            )
            assert header <= 0, f"{path} at {size}: the header overflows by {header}px"
            for picker in tab.locator("select, input:not([type=hidden])").all():
                if picker.is_visible():
                    box = picker.bounding_box()
                    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1, path
            name = path.strip("/").replace("/", "-").split("?")[0] or "overview"
            shot(tab, f"{size}-{name}")
        # the users table: user and cost in view without scrolling sideways
        tab.goto("/users?window=all")
        first = tab.locator("#users-table tbody tr:not(#unattributed-row) >> nth=0")
        for cell in (first.locator("td >> nth=0"), first.locator("td >> nth=1")):
            box = cell.bounding_box()
            assert box is not None and box["x"] + box["width"] <= viewport["width"]
        assert "$" in first.locator("td >> nth=1").inner_text()
        tab.goto("/calls?window=all")  # the explorer: when, who and what it cost
        first = tab.locator("#calls-table tbody tr >> nth=0")
        for cell in ("td >> nth=0", "td >> nth=1", "td.cost"):
            box = first.locator(cell).bounding_box()
            assert box is not None and box["x"] + box["width"] <= viewport["width"], cell
        assert "$" in first.locator("td.cost").inner_text() or "unpriced" in first.locator("td.cost").inner_text()
        if size == "phone":  # the secondary columns step aside; every nav link stays reachable inside the bar
            assert not tab.locator("#users-table th:has-text('Top model')").is_visible()
        browser.close()


def test_api_docs_are_browsable_and_served_by_the_package(page: Any, seeded: tuple[FastAPI, datetime]) -> None:
    """Swagger UI from the package's own files (the page fixture records any request to another origin)."""
    sign_in(page, "/")
    response = page.goto("/api/v1/docs")
    assert response is not None and response.status == 200
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    for path in ("/api/v1/calls", "/api/v1/users", "/api/v1/segments", "/api/v1/tenants/{tenant_id}"):
        assert any(p.replace("\u200b", "") == path for p in paths), path
    shot(page, "api-docs")
    assert page.problems == []  # no CDN, no console error
