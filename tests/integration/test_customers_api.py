"""Customer profiles and tool use through the JSON API: admin writes, tenant tokens read only their own tenant's
profiles, names and search everywhere a user appears, inactive customers with zero spend."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from spanledger import Ledger, testing
from spanledger._customers.schema import CUSTOMERS_TABLE
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, GLOBEX_TOKEN, seeded

pytestmark = pytest.mark.integration
__all__ = ["seeded"]  # the module-scoped fixture

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACME = {"Authorization": f"Bearer {ACME_TOKEN}"}
GLOBEX = {"Authorization": f"Bearer {GLOBEX_TOKEN}"}

PEOPLE_CSV = """user_id,tenant_id,display_name,email,plan,metadata.seats
alice.chen,acme,Alice Chen,alice@acme.example,pro,5
bruno.diaz,globex,Bruno Díaz,bruno@globex.example,free,
,acme,ACME Corporation,billing@acme.example,enterprise,
new.signup,acme,Nina Newcomer,nina@newco.example,trial,
globex.trial,globex,Gary Trial,gary@globex.example,trial,
"""
TOOLS = [("alice.chen", "acme", "search_docs", False)] * 2 + [
    ("alice.chen", "acme", "search_docs", True),
    ("alice.chen", "acme", "run_sql", False),
    ("bruno.diaz", "globex", "search_docs", False),
    ("bruno.diaz", "globex", "search_docs", False),
]


@pytest.fixture(scope="module")
def app(seeded: tuple[FastAPI, datetime]) -> FastAPI:
    app, now = seeded
    spans = [
        testing.tool_span(
            n, tool=tool, user=user, tenant=tenant, error=error, at=now - timedelta(hours=2 + n), span_id=0x7001 + n
        )
        for n, (user, tenant, tool, error) in enumerate(TOOLS)
    ]
    app.state.exporter.export(spans)
    assert app.state.exporter.force_flush(30_000)
    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=ADMIN) as made:
        response = made.post("/api/v1/customers:import", content=PEOPLE_CSV, headers={"content-type": "text/csv"})
        assert response.status_code == 200, response.text
        yield made


def _versions(app: FastAPI) -> int:
    store = app.state.store
    return int(store.query(f"SELECT count() FROM {store.database}.{CUSTOMERS_TABLE}").result_rows[0][0])


def test_import_is_whole_or_nothing_and_the_same_file_again_changes_nothing(app: FastAPI, client: TestClient) -> None:
    versions = _versions(app)
    again = client.post("/api/v1/customers:import", content=PEOPLE_CSV, headers={"content-type": "text/csv"})
    assert again.json() == {"rows": 5, "created": 0, "updated": 0, "unchanged": 5}
    assert _versions(app) == versions  # no new version of any profile
    bad = PEOPLE_CSV + "broken,acme,Broken,not an address,,\nalice.chen,acme,Twice,,,\n"
    refused = client.post("/api/v1/customers:import", content=bad, headers={"content-type": "text/csv"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {"loc": ["body", 7], "msg": "line 7: email is not an e-mail address", "type": "value_error"},
        {
            "loc": ["body", 8],
            "msg": "line 8: user 'alice.chen' of tenant 'acme' is already given on line 2",
            "type": "value_error",
        },
    ]
    jsonl = "\n".join(json.dumps(r) for r in ({"user_id": "alice.chen", "tenant_id": "acme", "plan": "enterprise"},))
    one = client.post("/api/v1/customers:import", content=jsonl, headers={"content-type": "application/x-ndjson"})
    assert one.json() == {"rows": 1, "created": 0, "updated": 1, "unchanged": 0}
    assert _versions(app) == versions + 1
    assert (
        client.post("/api/v1/customers:import", content="x", headers={"content-type": "application/pdf"}).status_code
        == 415
    )
    assert (
        client.post("/api/v1/customers:import", content=b"\xff\xfe", headers={"content-type": "text/csv"}).status_code
        == 422
    )


def test_put_creates_updates_and_reports_an_unchanged_profile(client: TestClient) -> None:
    url = "/api/v1/customers/carol.new?tenant=initech"
    created = client.put(url, json={"display_name": "Carol New", "email": "carol@initech.example"})
    assert created.status_code == 200 and created.json()["result"] == "created"
    assert client.put(url, json={"display_name": "Carol New"}).json()["result"] == "unchanged"
    updated = client.put(url, json={"plan": "pro", "metadata": {"seats": 3, "beta": True}}).json()
    assert updated["result"] == "updated"
    assert {k: updated["customer"][k] for k in ("display_name", "email", "plan", "metadata", "kind")} == {
        "display_name": "Carol New",
        "email": "carol@initech.example",
        "plan": "pro",
        "metadata": {"beta": "true", "seats": "3"},
        "kind": "user",
    }
    assert client.get(url).json()["created_at"] == created.json()["customer"]["created_at"]
    bad = client.put(url, json={"email": "nope"})
    assert bad.status_code == 422 and [e["msg"] for e in bad.json()["detail"]] == ["email is not an e-mail address"]
    assert client.put(url, json={"colour": "red"}).status_code == 422  # unknown fields are refused
    tenant = client.put("/api/v1/tenants/initech/profile", json={"display_name": "Initech"}).json()
    assert (tenant["result"], tenant["customer"]["kind"], tenant["customer"]["user_id"]) == ("created", "tenant", "")
    assert client.get("/api/v1/tenants/initech/profile").json()["display_name"] == "Initech"
    assert client.get("/api/v1/customers/nobody").status_code == 404


def test_tenant_tokens_read_only_their_tenants_profiles_and_never_write(app: FastAPI, client: TestClient) -> None:
    with TestClient(app, headers=ACME) as acme:
        listed = acme.get("/api/v1/customers").json()
        assert {(c["tenant_id"], c["user_id"]) for c in listed["data"]} == {
            ("acme", ""),
            ("acme", "alice.chen"),
            ("acme", "new.signup"),
        }
        assert acme.get("/api/v1/customers?tenant=globex").status_code == 403
        assert acme.get("/api/v1/customers/alice.chen").json()["display_name"] == "Alice Chen"  # its tenant forced
        assert acme.get("/api/v1/customers/bruno.diaz").status_code == 404  # globex's: not found in acme
        assert acme.get("/api/v1/customers/bruno.diaz?tenant=globex").status_code == 403
        assert acme.get("/api/v1/tenants/globex/profile").status_code == 403
        assert acme.get("/api/v1/customers?search=globex.example").json()["total"] == 0
        assert acme.put("/api/v1/customers/alice.chen?tenant=acme", json={"plan": "x"}).status_code == 403
        imported = acme.post("/api/v1/customers:import", content=PEOPLE_CSV, headers={"content-type": "text/csv"})
        assert imported.status_code == 403
        # its users: names beside ids, search by name within its tenant only
        users = acme.get("/api/v1/users", params={"search": "Díaz"}).json()
        assert users["total"] == 0
        alice = acme.get("/api/v1/users", params={"search": "alice chen"}).json()["data"]
        assert [(u["user_id"], u["display_name"]) for u in alice] == [("alice.chen", "Alice Chen")]
    with TestClient(app, headers=GLOBEX) as globex:
        assert [c["user_id"] for c in globex.get("/api/v1/customers").json()["data"]] == ["bruno.diaz", "globex.trial"]
        tools = globex.get("/api/v1/tools", params={"perUser": "true"}).json()["data"]
        assert {(t["user_id"], t["tool_name"], t["calls"]) for t in tools} == {("bruno.diaz", "search_docs", 2)}


def test_users_carry_names_search_matches_names_and_emails(app: FastAPI, client: TestClient) -> None:
    page = client.get("/api/v1/users", params={"limit": 1000}).json()
    named = {u["user_id"]: u["display_name"] for u in page["data"] if u["display_name"]}
    assert named == {"alice.chen": "Alice Chen", "bruno.diaz": "Bruno Díaz"}
    # the calls with no user in acme are never given the tenant's own profile's name
    assert all(u["display_name"] == "" for u in page["data"] if not u["user_id"])
    for search, expected in (("bruno@", ["bruno.diaz"]), ("DÍAZ", ["bruno.diaz"]), ("chen", ["alice.chen"])):
        found = client.get("/api/v1/users", params={"search": search}).json()
        assert [u["user_id"] for u in found["data"]] == expected, search
    # tenants: the tenant's own profile names it, and its name finds it
    tenants = client.get("/api/v1/tenants", params={"search": "corporation"}).json()["data"]
    assert [(t["tenant_id"], t["display_name"]) for t in tenants] == [("acme", "ACME Corporation")]
    overview = client.get("/api/v1/overview", params={"top": 50}).json()
    assert {u["user_id"]: u["display_name"] for u in overview["top_users"] if u["display_name"]} == named
    assert next(t for t in overview["top_tenants"] if t["tenant_id"] == "acme")["display_name"] == "ACME Corporation"
    rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/users.csv").text)))
    assert {r["user_id"]: r["display_name"] for r in rows if r["display_name"]} == named
    assert list(rows[0])[:5] == ["user_id", "label", "attributed", "tenant_id", "display_name"]


def test_inactive_customers_are_listed_with_zero_spend_after_everyone_else(app: FastAPI, client: TestClient) -> None:
    plain = client.get("/api/v1/users", params={"limit": 1000}).json()
    both = client.get("/api/v1/users", params={"limit": 1000, "includeInactive": "true"}).json()
    assert (plain["inactive"], both["inactive"], both["total"]) == (0, 3, plain["total"] + 3)
    assert both["data"][: plain["total"]] == plain["data"]
    tail = both["data"][plain["total"] :]
    assert [(u["tenant_id"], u["user_id"], u["display_name"]) for u in tail] == [
        ("acme", "new.signup", "Nina Newcomer"),
        ("globex", "globex.trial", "Gary Trial"),
        ("initech", "carol.new", "Carol New"),  # put by an earlier test of this module
    ]
    assert all((u["requests"], Decimal(u["cost"]), u["last_seen"]) == (0, 0, None) for u in tail)
    # counted apart from the calls with no user, whose totals do not move
    unattributed = [u for u in both["data"] if not u["user_id"]]
    assert unattributed == [u for u in plain["data"] if not u["user_id"]]
    # paging across the boundary: the last page holds the last active users and then the inactive ones
    pages = -(-both["total"] // 7)
    for number in range(1, pages + 1):
        got = client.get("/api/v1/users", params={"limit": 7, "page": number, "includeInactive": "true"}).json()
        expected = both["data"][(number - 1) * 7 : number * 7]
        assert [u["user_id"] for u in got["data"]] == [u["user_id"] for u in expected], number
        assert (got["total"], got["inactive"], got["pages"]) == (both["total"], 3, pages)
    found = client.get("/api/v1/users", params={"includeInactive": "true", "search": "newco"}).json()
    assert (found["total"], found["inactive"], found["data"][0]["user_id"]) == (1, 1, "new.signup")
    csv_rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/users.csv?includeInactive=true").text)))
    assert len(csv_rows) == both["total"] and csv_rows[-1]["user_id"] == "carol.new" and csv_rows[-1]["cost"] == "0"
    with TestClient(app, headers=ACME) as acme:
        mine = acme.get("/api/v1/users", params={"includeInactive": "true", "limit": 1000}).json()
        assert [u["user_id"] for u in mine["data"] if not u["requests"]] == ["new.signup"]


def test_tool_use_per_tool_and_user_in_the_api(client: TestClient) -> None:
    per_tool = client.get("/api/v1/tools").json()
    assert [(t["tool_name"], t["calls"], t["errors"], t["user_id"]) for t in per_tool["data"]] == [
        ("search_docs", 5, 1, None),
        ("run_sql", 1, 0, None),
    ]
    per_user = client.get("/api/v1/tools", params={"perUser": "true", "tenant": "acme"}).json()["data"]
    assert {(t["user_id"], t["tool_name"]): t["calls"] for t in per_user} == {
        ("alice.chen", "search_docs"): 3,
        ("alice.chen", "run_sql"): 1,
    }
    users = {u["user_id"]: u["tool_calls"] for u in client.get("/api/v1/users", params={"limit": 1000}).json()["data"]}
    assert (users["alice.chen"], users["bruno.diaz"], users["emma.wilson"]) == (4, 2, 0)
    detail = client.get("/api/v1/users/alice.chen").json()
    assert [(t["tool_name"], t["calls"]) for t in detail["tools"]] == [("search_docs", 3), ("run_sql", 1)]
    assert detail["summary"]["tool_calls"] == 4 and detail["summary"]["display_name"] == "Alice Chen"
    assert detail["profile"]["email"] == "alice@acme.example" and detail["profile"]["metadata"] == {"seats": "5"}
    newcomer = client.get("/api/v1/users/new.signup").json()
    assert (newcomer["summary"], newcomer["profile"]["display_name"], newcomer["tools"]) == (None, "Nina Newcomer", [])


def test_openapi_describes_the_customer_endpoints(client: TestClient) -> None:
    spec: dict[str, Any] = client.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/customers", "/api/v1/customers:import", "/api/v1/customers/{user_id}", "/api/v1/tools"):
        assert path in spec["paths"], path
    assert "text/csv" in spec["paths"]["/api/v1/customers:import"]["post"]["requestBody"]["content"]
    user = spec["components"]["schemas"]["UserOut"]["properties"]
    assert "display_name" in user and "tool_calls" in user
    assert Ledger  # the API answers what Ledger answers: see test_server_api
