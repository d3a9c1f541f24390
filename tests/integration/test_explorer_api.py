"""The calls explorer's API, 404s, and one count everywhere: the overview, the users and tenants pages, the
API and the CLI agree on one seeded store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from spanledger import NO_TENANT_LABEL, UNATTRIBUTED_LABEL, Store, testing
from spanledger._server import create_app
from tests.integration.server_support import ADMIN_TOKEN, seed, settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def app(store_dsn: str) -> Iterator[FastAPI]:
    application = create_app(settings(store_dsn))
    yield application
    application.state.exporter.shutdown()


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['trace_id']}/{r['span_id']}" for r in rows]


def test_keyset_pages_skip_and_repeat_nothing_while_calls_arrive(app: FastAPI) -> None:
    now = seed(app.state.exporter)
    client = TestClient(app, headers=ADMIN)
    before = client.get("/api/v1/calls", params={"limit": 1000}).json()["data"]
    assert len(before) > 150

    stop = threading.Event()
    exporter = app.state.exporter

    def arrive() -> None:  # new calls, now and among the old ones, while the pages are read
        n = 10_000
        while not stop.is_set():
            at = now - timedelta(minutes=(n * 37) % (20 * 24 * 60)) if n % 2 else datetime.now(UTC)
            exporter.export([testing.llm_span(n, at=at, user=f"late-{n}", tenant="acme")])
            exporter.force_flush(10_000)
            n += 1

    worker = threading.Thread(target=arrive)
    worker.start()
    try:
        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        while True:
            body = client.get("/api/v1/calls", params={"limit": 17, **({"cursor": cursor} if cursor else {})}).json()
            pages.append(body["data"])
            cursor = body["next"]
            if cursor is None:
                break
    finally:
        stop.set()
        worker.join()
    seen = [i for page in pages for i in ids(page)]
    assert len(seen) == len(set(seen)), "a call was repeated"
    assert set(ids(before)) <= set(seen), "a call stored before paging began was skipped"
    times = [c["timestamp"] for page in pages for c in page]
    assert times == sorted(times, reverse=True)  # newest first, across pages
    late = [c for page in pages for c in page if c["user_id"].startswith("late-")]
    assert late, "the concurrent calls went into the past as well"
    # paging back with prev returns the same pages
    last = client.get("/api/v1/calls", params={"limit": 17, "cursor": body["prev"], "direction": "newer"}).json()
    assert ids(last["data"]) == ids(pages[-2])


def test_filters_count_and_bad_input(app: FastAPI) -> None:
    seed(app.state.exporter)
    client = TestClient(app, headers=ADMIN)
    every = client.get("/api/v1/calls", params={"limit": 1000, "count": True}).json()
    assert every["total"] == len(every["data"]) and every["next"] is None and every["prev"] is None
    checks = {
        "status=error": (lambda c: c["is_error"], {"status": "error"}),
        "unpriced": (lambda c: c["cost"] is None, {"flag": "unpriced"}),
        "cached": (lambda c: c["cache_read_tokens"] > 0, {"flag": "cached"}),
        "tenant": (lambda c: c["tenant_id"] == "globex", {"tenant": "globex"}),
        "no tenant": (lambda c: c["tenant_id"] == "", {"tenant": NO_TENANT_LABEL}),
        "no user": (lambda c: c["user_id"] == "", {"user": UNATTRIBUTED_LABEL}),
        "model": (lambda c: c["model"] == "gpt-4o", {"model": "gpt-4o"}),
        "tag": (lambda c: c["tags"].get("plan") == "pro", {"tag": "plan=pro"}),
        "cost range": (
            lambda c: c["cost"] is not None and Decimal("0.005") <= Decimal(c["cost"]) <= Decimal("0.02"),
            {"min_cost": "0.005", "max_cost": "0.02"},
        ),
        "error and unpriced": (lambda c: c["is_error"] and c["cost"] is None, {"status": "error", "flag": "unpriced"}),
    }
    for name, (keep, query) in checks.items():
        body = client.get("/api/v1/calls", params={**query, "limit": 1000, "count": True}).json()
        want = [c for c in every["data"] if keep(c)]
        assert ids(body["data"]) == ids(want), name
        assert body["total"] == len(want), name  # counted from the rollups or the raw calls: the same number
    for bad in ({"cursor": "nope"}, {"min_cost": "cheap"}, {"min_cost": "2", "max_cost": "1"}, {"trace": "xyz"}):
        response = client.get("/api/v1/calls", params=bad)
        assert response.status_code == 422, bad
    one = every["data"][5]
    trace = client.get("/api/v1/calls", params={"trace": one["trace_id"]}).json()
    assert ids(trace["data"]) == [f"{one['trace_id']}/{one['span_id']}"]


def test_unknown_ids_are_404_and_known_ones_in_an_empty_window_are_not(app: FastAPI) -> None:
    seed(app.state.exporter)
    client = TestClient(app, headers=ADMIN)
    assert client.get("/api/v1/users/nobody.here").status_code == 404
    assert client.get("/api/v1/tenants/no-such-tenant").status_code == 404
    quiet = client.get("/api/v1/users/alice.chen", params={"from": "2001-01-01", "to": "2001-01-02"})
    assert quiet.status_code == 200 and quiet.json()["summary"] is None
    assert client.get(f"/api/v1/tenants/{NO_TENANT_LABEL}").json()["summary"]["requests"] == 1
    page = client.get("/users/alise.chen")
    assert page.status_code == 404 and "alice.chen" in page.text  # did you mean


def _number(html: str, element_id: str) -> int:
    match = re.search(rf'id="{element_id}"><strong>([\d,]+)</strong>', html)
    assert match, element_id
    return int(match.group(1).replace(",", ""))


def _kpi(html: str, label: str) -> int:
    match = re.search(rf'kpi-label">{label}</div>\s*<div class="kpi-value">([\d,]+)', html)
    assert match, label
    return int(match.group(1).replace(",", ""))


def _cli(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "spanledger", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    value: dict[str, Any] = json.loads(out.stdout)
    return value


@pytest.mark.parametrize("window", ["all", "7d"])
def test_users_and_tenants_are_counted_the_same_everywhere(http_store_dsn: str, window: str) -> None:
    app = create_app(settings(http_store_dsn))
    try:
        seed(app.state.exporter)
        client = TestClient(app, headers=ADMIN)
        api_from = {} if window == "all" else {"from": "7d"}
        cli_from = () if window == "all" else ("--from", "7d")
        overview = client.get("/api/v1/overview", params=api_from).json()
        users = client.get("/api/v1/users", params=api_from).json()
        tenants = client.get("/api/v1/tenants", params=api_from).json()
        front = client.get("/", params={"window": window}).text
        users_page = client.get("/users", params={"window": window}).text
        tenants_page = client.get("/tenants", params={"window": window}).text
        store = ("--store", http_store_dsn)
        cli_overview = _cli("overview", "--format", "json", *cli_from, *store)
        cli_users = _cli("users", "--format", "json", *cli_from, *store)
        cli_tenants = _cli("tenants", "--format", "json", *cli_from, *store)
    finally:
        app.state.exporter.shutdown()
    user_counts = {
        "overview API": overview["totals"]["active_users"],
        "users API": users["total"],
        "overview page": _kpi(front, "Active users"),
        "users page": _number(users_page, "result-count"),
        "overview CLI": cli_overview["totals"]["active_users"],
        "users CLI": cli_users["total"],
    }
    assert len(set(user_counts.values())) == 1, user_counts
    tenant_counts = {
        "overview API": overview["totals"]["tenants"],
        "tenants API": tenants["total"],
        "tenants page": _number(tenants_page, "result-count"),
        "overview CLI": cli_overview["totals"]["tenants"],
        "tenants CLI": cli_tenants["total"],
    }
    assert len(set(tenant_counts.values())) == 1, tenant_counts
    assert f"{tenant_counts['tenants API']} tenant" in front  # the KPI's line, pluralised
    # the calls without a user or a tenant are reported, never counted
    assert users["unattributed"]["requests"] == overview["unattributed_requests"] > 0
    assert Decimal(tenants["no_tenant"]["cost"]) == Decimal(overview["no_tenant_cost"]) > 0
    total = Decimal(overview["totals"]["cost"])
    assert total == sum((Decimal(t["cost"]) for t in tenants["data"]), Decimal(tenants["no_tenant"]["cost"]))
    Store(http_store_dsn, create=False).close()
