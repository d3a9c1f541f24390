"""Budgets and alerts in the API: admin writes, bad input is a 422 that changes nothing, and a tenant token
reads only its own tenant's budgets, report rows and alerts through every endpoint and parameter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from spanledger import Alerts, Budgets
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, GLOBEX_TOKEN, INGEST_TOKEN, seeded, users_of

pytestmark = pytest.mark.integration
__all__ = ["seeded"]

READS = ["/api/v1/budgets", "/api/v1/budgets/report", "/api/v1/budgets/report.csv", "/api/v1/alerts"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def app(seeded: tuple[FastAPI, datetime]) -> Iterator[FastAPI]:
    app = seeded[0]
    budgets = Budgets(app.state.store)
    budgets.set(user_id="alice.chen", tenant_id="acme", limit="0.0001", period="yearly")
    budgets.set(user_id="bruno.diaz", tenant_id="globex", limit="0.0001", period="yearly")
    budgets.set(user_id="bruno.diaz", limit="5", period="lifetime")  # every tenant: an admin's only
    budgets.set(tenant_id="acme", limit="1000", period="lifetime")
    budgets.set(tenant_id="globex", limit="1000", period="lifetime")
    budgets.set(tenant_id="acme", default=True, limit="0.00001", period="yearly", hard=False)
    budgets.set(tag="plan=free", limit="1000", period="yearly")
    Alerts(app.state.store, webhook_url="").evaluate()
    yield app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, follow_redirects=False)


def get(client: TestClient, path: str, token: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json() if not path.endswith(".csv") else response.text


def test_an_admin_sees_every_budget_and_every_subject(client: TestClient) -> None:
    budgets = get(client, "/api/v1/budgets", ADMIN_TOKEN)["data"]
    assert len(budgets) == 7 and {b["scope"] for b in budgets} == {
        "pair",
        "user",
        "tenant",
        "tenant_default",
        "tag_default",
    }
    report = get(client, "/api/v1/budgets/report", ADMIN_TOKEN)["data"]
    assert report[0]["over"] and {r["tenant_id"] for r in report} >= {"acme", "globex", "initech", "umbrella", ""}
    over = get(client, "/api/v1/budgets/report", ADMIN_TOKEN, over="true")["data"]
    assert over and all(r["over"] for r in over) and {r["user_id"] for r in over} >= {"alice.chen", "bruno.diaz"}
    alice = [r for r in report if r["user_id"] == "alice.chen" and r["scope"] == "pair"]
    assert alice[0]["limit"] == "0.000100000000" and Decimal(alice[0]["spent"]) > 0 and alice[0]["used_pct"] > 100
    assert {a["tenant_id"] for a in get(client, "/api/v1/alerts", ADMIN_TOKEN)["data"]} >= {"acme", "globex"}


def test_a_tenant_token_reads_only_its_tenant_through_every_endpoint(client: TestClient) -> None:
    acme_users = users_of("acme")
    budgets = get(client, "/api/v1/budgets", ACME_TOKEN)["data"]
    assert {(b["scope"], b["tenant_id"]) for b in budgets} == {
        ("pair", "acme"), ("tenant", "acme"), ("tenant_default", "acme"), ("tag_default", "")
    }  # fmt: skip
    for params in ({}, {"tenant": "acme"}, {"over": "true"}, {"user": "alice.chen"}, {"user": "bruno.diaz"}):
        rows = get(client, "/api/v1/budgets/report", ACME_TOKEN, **params)["data"]
        assert all(r["tenant_id"] == "acme" and r["scope"] != "user" for r in rows)
        assert all(r["user_id"] in acme_users | {""} for r in rows)
        csv = get(client, "/api/v1/budgets/report.csv", ACME_TOKEN, **params)
        assert "globex" not in csv and "bruno.diaz" not in csv and csv.count("\n") == len(rows) + 1
    assert get(client, "/api/v1/budgets/report", ACME_TOKEN, user="bruno.diaz")["data"] == []
    alerts = get(client, "/api/v1/alerts", ACME_TOKEN)["data"]
    assert alerts and {a["tenant_id"] for a in alerts} == {"acme"}
    assert get(client, "/api/v1/alerts", GLOBEX_TOKEN)["data"] and all(
        a["tenant_id"] == "globex" for a in get(client, "/api/v1/alerts", GLOBEX_TOKEN)["data"]
    )
    for path in READS:
        for tenant in ("globex", "%", "acme' OR tenant_id != '", "ACME"):
            response = client.get(path, params={"tenant": tenant}, headers=bearer(ACME_TOKEN))
            assert response.status_code == 403, (path, tenant)


def test_only_an_admin_writes_and_nothing_changes_otherwise(client: TestClient) -> None:
    before = get(client, "/api/v1/budgets", ADMIN_TOKEN)["data"]
    acme_pair = next(b for b in before if b["scope"] == "pair" and b["tenant_id"] == "acme")
    body = {"user_id": "alice.chen", "tenant_id": "acme", "period": "yearly", "limit": "999"}
    for token in (ACME_TOKEN, GLOBEX_TOKEN):
        assert client.put("/api/v1/budgets", json=body, headers=bearer(token)).status_code == 403
        assert client.delete(f"/api/v1/budgets/{acme_pair['id']}", headers=bearer(token)).status_code == 403
        assert client.post("/api/v1/alerts/test", headers=bearer(token)).status_code == 403
    for path in READS:
        assert client.get(path).status_code == 401
        assert client.get(path, headers=bearer(INGEST_TOKEN)).status_code == 403
    assert get(client, "/api/v1/budgets", ADMIN_TOKEN)["data"] == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"limit": "-5"}, "negative"),
        ({"limit": "five"}, "not a number"),
        ({"limit": 2.5}, "valid"),
        ({"period": "fortnightly"}, "unknown period"),
        ({"timezone": "Nowhere/Atlantis"}, "time zone"),
        ({"period": "custom"}, "start and an end"),
        ({"user_id": None, "tenant_id": None}, "subject"),
        ({"tag": "plan"}, "key=value"),
        ({"alert_at": [0]}, "alert threshold"),
    ],
)
def test_bad_input_is_a_422_and_changes_nothing(client: TestClient, change: dict[str, Any], message: str) -> None:
    before = get(client, "/api/v1/budgets", ADMIN_TOKEN)["data"]
    body = {"user_id": "new.user", "tenant_id": "acme", "period": "monthly", "limit": "5", **change}
    response = client.put("/api/v1/budgets", json=body, headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 422 and message in response.text, response.text
    assert get(client, "/api/v1/budgets", ADMIN_TOKEN)["data"] == before


def test_an_admin_sets_replaces_and_removes_a_budget(client: TestClient) -> None:
    body = {
        "user_id": "zoe.adams",
        "tenant_id": "acme",
        "period": "monthly",
        "limit": "12.50",
        "timezone": "Asia/Tokyo",
    }
    made = client.put("/api/v1/budgets", json=body, headers=bearer(ADMIN_TOKEN)).json()
    assert (made["scope"], made["limit"], made["timezone"], made["hard"]) == (
        "pair",
        "12.500000000000",
        "Asia/Tokyo",
        True,
    )
    again = client.put("/api/v1/budgets", json={**body, "limit": 20, "hard": False}, headers=bearer(ADMIN_TOKEN)).json()
    assert again["id"] == made["id"] and (again["limit"], again["hard"]) == ("20.000000000000", False)
    listed = [b for b in get(client, "/api/v1/budgets", ACME_TOKEN)["data"] if b["id"] == made["id"]]
    assert listed == [again]  # visible to its tenant
    assert client.delete(f"/api/v1/budgets/{made['id']}", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client.delete(f"/api/v1/budgets/{made['id']}", headers=bearer(ADMIN_TOKEN)).status_code == 404
    assert client.delete("/api/v1/budgets/not-an-id", headers=bearer(ADMIN_TOKEN)).status_code == 422
    assert made["id"] not in {b["id"] for b in get(client, "/api/v1/budgets", ADMIN_TOKEN)["data"]}
    assert client.post("/api/v1/alerts/test", headers=bearer(ADMIN_TOKEN)).status_code == 409  # no webhook here


def test_the_openapi_document_lists_the_budget_endpoints(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/budgets", "/api/v1/budgets/{budget_id}", "/api/v1/budgets/report", "/api/v1/alerts"} <= set(paths)
    assert set(paths["/api/v1/budgets"]) == {"get", "put"}
