"""The JSON API answers exactly what ``Ledger`` answers; its OpenAPI document holds up under fuzzing."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.testclient import TestClient

from spanledger import UNATTRIBUTED_LABEL, Ledger, UserRow
from tests.integration.server_support import ADMIN_TOKEN, FORMULA_USER, OLD_USER, seeded

pytestmark = pytest.mark.integration
__all__ = ["seeded"]  # the module-scoped fixture

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def app(seeded: tuple[FastAPI, datetime]) -> FastAPI:
    return seeded[0]


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, headers=ADMIN)


@pytest.fixture(scope="module")
def ledger(app: FastAPI) -> Ledger:
    return Ledger(app.state.store)


def _row(r: UserRow) -> dict[str, Any]:
    u = r.usage
    return {
        "user_id": r.user_id,
        "tenant_id": r.tenant_id,
        "requests": u.requests,
        "total_tokens": u.total_tokens,
        "cost": u.cost,
        "unpriced_requests": u.unpriced_requests,
        "errors": u.errors,
        "top_model": r.top_model,
        "distinct_models": r.distinct_models,
    }


_KEYS = ("user_id", "tenant_id", "requests", "total_tokens", "cost", "unpriced_requests", "errors", "top_model")
_KEYS += ("distinct_models",)


@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        ({}, {}),
        ({"sortBy": "requests", "sortDir": "asc"}, {"sort_by": "requests", "sort_dir": "asc"}),
        ({"sortBy": "tokens", "limit": 7, "page": 2}, {"sort_by": "tokens", "limit": 7, "page": 2}),
        ({"sortBy": "last_seen", "search": "AN"}, {"sort_by": "last_seen", "search": "AN"}),
        ({"tenant": "globex", "from": "7d"}, {"tenant_id": "globex", "start": "7d"}),
        ({"tag.plan": "pro"}, {"tags": {"plan": "pro"}}),
        ({"tag": "plan=free", "tenant": "acme"}, {"tags": {"plan": "free"}, "tenant_id": "acme"}),
    ],
)
def test_users_endpoint_equals_the_ledger(
    client: TestClient, ledger: Ledger, query: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    body = client.get("/api/v1/users", params=query).json()
    expected = ledger.users(**kwargs)
    assert body["total"] == expected.total > 0
    assert [{k: Decimal(d[k]) if k == "cost" else d[k] for k in _KEYS} for d in body["data"]] == [
        _row(r) for r in expected.rows
    ]


def test_pages_tile_the_whole_list_and_windows_filter(client: TestClient, seeded: tuple[FastAPI, datetime]) -> None:
    everyone = client.get("/api/v1/users", params={"limit": 1000}).json()
    paged: list[str] = []
    for page in range(1, 5):
        paged += [
            f"{d['tenant_id']}/{d['user_id']}"
            for d in client.get("/api/v1/users", params={"limit": 10, "page": page}).json()["data"]
        ]
    assert paged == [f"{d['tenant_id']}/{d['user_id']}" for d in everyone["data"]]
    assert everyone["total"] == len(paged) == 34  # 30 users, 3 odd ids, old.timer: the unattributed calls are none
    assert everyone["unattributed"]["requests"] == 6 and all(d["attributed"] for d in everyone["data"])
    now = seeded[1]
    recent = client.get("/api/v1/users", params={"from": "28d", "limit": 1000}).json()
    ever = client.get("/api/v1/users", params={"from": "2020-01-01", "limit": 1000}).json()
    assert OLD_USER not in {d["user_id"] for d in recent["data"]}
    assert OLD_USER in {d["user_id"] for d in ever["data"]}
    exact = (now - timedelta(days=40, minutes=1)).isoformat()
    around = client.get("/api/v1/users", params={"from": exact, "to": (now - timedelta(days=39)).isoformat()}).json()
    assert [d["user_id"] for d in around["data"]] == [OLD_USER]
    rows = client.get("/api/v1/users", params={"limit": 1000, "include_unattributed": True}).json()
    unattributed = [d for d in rows["data"] if not d["attributed"]]
    assert {d["label"] for d in unattributed} == {UNATTRIBUTED_LABEL} and rows["total"] == 36  # in two tenants
    assert sum(d["requests"] for d in unattributed) == 6 and rows["unattributed"] is None
    last = client.get("/api/v1/users", params={"limit": 10, "page": 99}).json()
    assert (last["page"], last["pages"], [d["user_id"] for d in last["data"]]) == (
        4,
        4,
        [p.split("/", 1)[1] for p in paged[30:]],
    )


def test_bad_parameters_are_422(client: TestClient) -> None:
    for query in (
        {"sortBy": "price"},
        {"sortDir": "up"},
        {"page": 0},
        {"limit": 1001},
        {"from": "yesterday-ish"},
        {"from": "9999-01-01"},
        {"from": "2026-01-02", "to": "2026-01-01"},
        {"tag": "no-equals-sign"},
        {"search": "x" * 300},
        {"search": "bad\x01char"},
    ):
        response = client.get("/api/v1/users", params=query)
        assert response.status_code == 422, query
        assert "detail" in response.json()


def test_tenants_daily_and_user_detail_equal_the_ledger(client: TestClient, ledger: Ledger) -> None:
    tenants = client.get("/api/v1/tenants", params={"sortBy": "requests"}).json()
    expected = ledger.tenants(sort_by="requests")
    assert [(t["tenant_id"], Decimal(t["cost"]), t["active_users"]) for t in tenants["data"]] == [
        (t.tenant_id, t.usage.cost, t.active_users) for t in expected.rows
    ]
    daily = client.get("/api/v1/daily", params={"per": "tenant", "from": "90d"}).json()["data"]
    assert [(d["day"], d["key"], Decimal(d["cost"]), d["requests"]) for d in daily] == [
        (d.day.isoformat(), d.key, d.cost, d.requests) for d in ledger.daily(per="tenant", start="90d")
    ]
    detail = client.get("/api/v1/users/zoe.adams", params={"tenant": "globex"}).json()
    want = ledger.user("zoe.adams", tenant_id="globex")
    assert want.summary is not None
    assert Decimal(detail["summary"]["cost"]) == want.summary.usage.cost
    assert [(m["model"], Decimal(m["cost"])) for m in detail["models"]] == [
        (m.model, m.usage.cost) for m in want.models
    ]
    assert [c["span_id"] for c in detail["calls"]] == [f"{c.span_id:016x}" for c in want.calls]
    call = detail["calls"][0]
    record = client.get(f"/api/v1/calls/{call['trace_id']}/{call['span_id']}").json()
    assert record == call
    assert record["prompt"].startswith('[{"role": "user"')  # captured by this server's exporter
    nobody = client.get(f"/api/v1/users/{UNATTRIBUTED_LABEL}", params={"tenant": "acme"}).json()
    assert nobody["summary"]["requests"] == 5 and nobody["summary"]["attributed"] is False


@pytest.mark.parametrize(
    "query",
    [{}, {"from": "7d", "top": 3}, {"tenant": "globex"}, {"tag.plan": "pro"}, {"tenant": "acme", "tag": "plan=free"}],
)
def test_overview_endpoint_agrees_with_users_tenants_and_daily(client: TestClient, query: dict[str, Any]) -> None:
    """One request for the front page's numbers; each must be what the other endpoints answer."""
    body = client.get("/api/v1/overview", params=query).json()
    same = {k: v for k, v in query.items() if k != "top"}
    ranked = client.get("/api/v1/users", params={**same, "limit": 1000}).json()
    users = ranked["data"]
    ranked_tenants = client.get(
        "/api/v1/tenants", params={k: v for k, v in same.items() if k != "tenant"} | {"limit": 1000}
    ).json()
    tenants = ranked_tenants["data"]
    if "tenant" in query:  # /tenants has no tenant filter (search is a substring)
        tenants = [t for t in tenants if t["tenant_id"] == query["tenant"]]
    daily = client.get("/api/v1/daily", params=same).json()["data"]
    top = query.get("top", 10)
    fields = ("user_id", "tenant_id", "label", "attributed", "requests", "unpriced_requests")
    assert [({k: u[k] for k in fields}, Decimal(u["cost"])) for u in body["top_users"]] == [
        ({k: u[k] for k in fields}, Decimal(u["cost"])) for u in users[:top]
    ]
    assert [(t["tenant_id"], Decimal(t["cost"]), t["requests"], t["active_users"]) for t in body["top_tenants"]] == [
        (t["tenant_id"], Decimal(t["cost"]), t["requests"], t["active_users"]) for t in tenants[:top]
    ]
    totals, unattributed = body["totals"], ranked["unattributed"]
    assert Decimal(totals["cost"]) == sum((Decimal(u["cost"]) for u in users), Decimal(unattributed["cost"]))
    assert totals["requests"] == sum(u["requests"] for u in users) + unattributed["requests"]
    assert totals["traces"] is None
    # users and tenants are counted one way: what the rankings count is what the overview says
    assert totals["active_users"] == ranked["total"] == len(users)
    assert totals["tenants"] == len(tenants)
    if "tenant" not in query:
        assert totals["tenants"] == ranked_tenants["total"]
        assert Decimal(body["no_tenant_cost"]) == Decimal(ranked_tenants["no_tenant"]["cost"])
        assert Decimal(totals["cost"]) == sum((Decimal(t["cost"]) for t in tenants), Decimal(body["no_tenant_cost"]))
    assert Decimal(body["unattributed_cost"]) == Decimal(unattributed["cost"])
    assert body["unattributed_requests"] == unattributed["requests"]
    assert body["daily"] == daily
    assert body["top_users"] or not users  # the seeded store has calls for every query here but one


def test_csv_export_has_every_row_and_defuses_formulas(client: TestClient) -> None:
    response = client.get("/api/v1/users.csv", params={"sortBy": "cost"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    api = client.get("/api/v1/users", params={"limit": 1000}).json()["data"]
    assert [(r["user_id"].removeprefix("'"), Decimal(r["cost"])) for r in rows] == [
        (d["user_id"], Decimal(d["cost"])) for d in api
    ]
    formula = next(r for r in rows if "HYPERLINK" in r["user_id"])
    assert formula["user_id"] == "'" + FORMULA_USER


def test_openapi_document_describes_the_api(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert set(spec["paths"]) >= {  # and the endpoints of the rooms built on it (budgets …), tested there
        "/api/v1/whoami",
        "/api/v1/overview",
        "/api/v1/users",
        "/api/v1/users.csv",
        "/api/v1/users/{user_id}",
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant_id}",
        "/api/v1/daily",
        "/api/v1/calls",
        "/api/v1/calls/{trace_id}/{span_id}",
        "/api/v1/segments",
        "/api/v1/tags",
        "/api/v1/tags/{key}",
        "/api/v1/status",
        "/api/v1/quarantine/replay",
        # billing (_server/billing_api.py)
        "/api/v1/statement",
        "/api/v1/statement.csv",
        "/api/v1/margins",
        "/api/v1/margins.csv",
        "/api/v1/markups",
        "/api/v1/revenue",
        "/api/v1/reprice",
        "/api/v1/privacy/forget",
        "/api/v1/privacy/audit",
        "/api/v1/privacy/retention",
        "/api/v1/customers",
        "/api/v1/customers:import",
        "/api/v1/customers/{user_id}",
        "/api/v1/tenants/{tenant_id}/profile",
        "/api/v1/tools",
    }
    users = {p["name"] for p in spec["paths"]["/api/v1/users"]["get"]["parameters"]}
    assert users == {
        "sortBy", "sortDir", "page", "limit", "search", "from", "to", "tenant", "user", "tag", "compare",
        "include_unattributed", "includeInactive",
    }  # fmt: skip
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_fuzzing_the_api_finds_no_server_error(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    spec = TestClient(app).get("/api/v1/openapi.json").json()
    assert len(operations) == sum(len(methods) for methods in spec["paths"].values()) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=ADMIN, checks=[not_a_server_error, response_schema_conformance])

        check()
