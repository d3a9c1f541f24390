"""Access: tokens, tenant isolation through every parameter, bound parameters, sessions, no-auth."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from spanledger import ConfigError, Ledger
from spanledger._server import load_settings
from spanledger._server.auth import SESSION_COOKIE
from tests.integration.server_support import (
    ACME_TOKEN,
    ADMIN_TOKEN,
    GLOBEX_TOKEN,
    INGEST_TOKEN,
    INJECTION_USER,
    TENANTS,
    TOKENS,
    running,
    seeded,
    users_of,
)

pytestmark = pytest.mark.integration
__all__ = ["seeded"]  # the module-scoped fixture

FOREIGN = set().union(*(users_of(t) for t in TENANTS if t != "acme"))
INJECTIONS = [
    "' OR '1'='1",
    "acme' OR tenant_id != '",
    "x'); DROP TABLE llm_calls; --",
    "{p0:String}",
    "\\' OR 1=1 --",
    "%' UNION ALL SELECT * FROM system.tables --",
    "acme\\",
    '"; SELECT 1; --',
]
TENANT_VALUES = ["globex", "%", "acme' OR tenant_id != '", "(no tenant)"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def app(seeded: tuple[FastAPI, datetime]) -> FastAPI:
    return seeded[0]


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, follow_redirects=False)


def foreign_call(app: FastAPI) -> dict[str, str]:
    call = Ledger(app.state.store).user("zoe.adams", tenant_id="globex", start="90d").calls[0]
    return {"trace_id": f"{call.trace_id:032x}", "span_id": f"{call.span_id:016x}"}


def api_paths(app: FastAPI) -> list[str]:
    call = foreign_call(app)
    return [
        "/api/v1/whoami",
        "/api/v1/overview",
        "/api/v1/users",
        "/api/v1/users.csv",
        "/api/v1/users/alice.chen",
        "/api/v1/tenants",
        "/api/v1/daily",
        f"/api/v1/calls/{call['trace_id']}/{call['span_id']}",
    ]


def test_every_endpoint_needs_a_reader_token(client: TestClient, app: FastAPI) -> None:
    for path in api_paths(app):
        missing = client.get(path)
        assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer"), path
        assert client.get(path, headers=bearer("not-a-valid-token-at-all")).status_code == 401, path
        assert client.get(path, headers={"Authorization": f"Basic {ADMIN_TOKEN}"}).status_code == 401, path
        assert client.get(path, headers=bearer(INGEST_TOKEN)).status_code == 403, path  # ingest cannot read
        assert client.get(path, headers=bearer(ADMIN_TOKEN)).status_code == 200, path
    for page in ("/", "/users", "/users/alice.chen", "/users?search=a&window=7d"):
        response = client.get(page)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    for public in ("/api/v1/openapi.json", "/healthz", "/static/app.css", "/login"):
        assert client.get(public).status_code == 200, public


def _assert_only_acme(response: Any, where: str) -> None:
    assert response.status_code in (200, 403, 404, 422), where
    leaked = {u for u in FOREIGN if u in response.text}
    assert not leaked, f"{where} leaked {leaked}"
    if response.status_code == 200 and response.headers["content-type"].startswith("application/json"):
        body = response.json()
        rows = body if isinstance(body, list) else body.get("data", [body.get("summary")] if "summary" in body else [])
        if isinstance(body, dict):  # the overview's lists
            rows = [*rows, *body.get("top_users", []), *body.get("top_tenants", []), *body.get("daily", [])]
        for row in rows:
            if row and "tenant_id" in row:
                assert row["tenant_id"] == "acme", where
            if row and row.get("key"):
                assert row["key"] in users_of("acme") | {"acme", "plan", "free", "pro"}, where  # per user, tenant, tag


def test_a_tenant_token_cannot_read_another_tenant_through_any_parameter(client: TestClient, app: FastAPI) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    acme = bearer(ACME_TOKEN)
    checked = 0
    call = foreign_call(app)
    for path, item in spec["paths"].items():
        if "get" not in item or path == "/api/v1/status":  # admin-only: refused below
            continue
        concrete = path.replace("{user_id}", "alice.chen").replace("{tenant_id}", "acme").replace("{key}", "plan")
        concrete = concrete.replace("{trace_id}", call["trace_id"]).replace("{span_id}", call["span_id"])
        names = [p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query"]
        for name in [*names, "tenant_id"]:
            for value in TENANT_VALUES:
                response = client.get(concrete, params={name: value}, headers=acme)
                _assert_only_acme(response, f"{concrete}?{name}={value!r}")
                checked += 1
        if "tenant" in names:
            assert client.get(concrete, params={"tenant": "globex"}, headers=acme).status_code == 403
            assert client.get(concrete, params={"tenant": "acme"}, headers=acme).status_code in (200, 404)
    assert checked > 80
    # the pipeline's status and the quarantine are the operator's: a tenant token gets neither
    assert client.get("/api/v1/status", headers=acme).status_code == 403
    assert client.post("/api/v1/quarantine/replay", headers=acme).status_code == 403
    # foreign users and calls do not exist for this token
    for user in sorted(FOREIGN)[:6]:
        assert client.get(f"/api/v1/users/{user}", headers=acme).status_code == 404  # never seen in its tenant
        assert client.get("/api/v1/daily", params={"user": user}, headers=acme).json()["data"] == []
        assert client.get("/api/v1/users", params={"search": user}, headers=acme).json()["total"] == 0
    assert client.get(api_paths(app)[-1], headers=acme).status_code == 404
    tenants = client.get("/api/v1/tenants", headers=acme).json()["data"]
    assert [t["tenant_id"] for t in tenants] == ["acme"]
    users = client.get("/api/v1/users", params={"limit": 1000}, headers=acme).json()["data"]
    assert {u["user_id"] for u in users} == users_of("acme")
    assert client.get("/api/v1/tenants/globex", headers=acme).status_code == 403
    assert client.get("/api/v1/tenants/(no tenant)", headers=acme).status_code == 403
    # the admin does see other tenants, so the checks above can fail
    admin = client.get("/api/v1/users", params={"limit": 1000}, headers=bearer(ADMIN_TOKEN)).json()
    assert {u["user_id"] for u in admin["data"]} >= FOREIGN


def test_dashboard_pages_respect_the_tenant_scope(client: TestClient, app: FastAPI) -> None:
    acme = bearer(ACME_TOKEN)
    page = client.get("/users", params={"limit": 100, "window": "all"}, headers=acme)
    assert page.status_code == 200
    assert "alice.chen" in page.text and not {u for u in FOREIGN if u in page.text}
    assert client.get("/users", params={"tenant": "globex"}, headers=acme).status_code == 403
    foreign = client.get("/users/zoe.adams", params={"window": "all"}, headers=acme)
    assert foreign.status_code == 404 and "No user" in foreign.text  # not in its tenant: never seen
    assert not {u for u in FOREIGN if u in foreign.text.replace("zoe.adams", "")}  # no foreign "did you mean"
    assert client.get("/tenants/globex", headers=acme).status_code == 403
    call = foreign_call(app)
    assert client.get(f"/calls/{call['trace_id']}/{call['span_id']}", headers=acme).status_code == 404
    overview = client.get("/", params={"window": "all"}, headers=acme)
    assert "globex" not in overview.text and not {u for u in FOREIGN if u in overview.text}
    globex_page = client.get("/users", params={"window": "all"}, headers=bearer(GLOBEX_TOKEN))
    assert "zoe.adams" in globex_page.text and "alice.chen" not in globex_page.text


def test_query_values_are_bound_parameters_and_stay_data(
    client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = app.state.store
    seen: list[tuple[str, dict[str, Any]]] = []
    real_query = store.query

    def spy(sql: str, parameters: dict[str, Any] | None = None) -> Any:
        seen.append((sql, dict(parameters or {})))
        return real_query(sql, parameters)

    monkeypatch.setattr(store, "query", spy)
    count = real_query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0]
    admin = bearer(ADMIN_TOKEN)
    for value in INJECTIONS:
        for path, name in [
            ("/api/v1/users", "search"),
            ("/api/v1/users", "tenant"),
            ("/api/v1/users", "tag.plan"),
            ("/api/v1/overview", "tenant"),
            ("/api/v1/overview", "tag.plan"),
            ("/api/v1/tenants", "search"),
            ("/api/v1/daily", "user"),
            ("/api/v1/users.csv", "search"),
            ("/users", "search"),
            ("/users", "tag"),
        ]:
            query = {name: f"plan={value}" if name == "tag" else value}
            response = client.get(path, params=query, headers=admin)
            assert response.status_code == 200, (path, name, value)
            body = response.json() if path.startswith("/api/v1/") and not path.endswith(".csv") else None
            if isinstance(body, dict) and "totals" in body:
                assert (body["totals"]["requests"], body["top_users"]) == (0, []), (path, name, value)
            elif isinstance(body, dict) and "total" in body:
                assert body["total"] == 0, (path, name, value)
            elif isinstance(body, dict):
                assert body["data"] == [], (path, name, value)
        detail = client.get(f"/api/v1/users/{value}", headers=admin)
        assert detail.status_code == 404 and "no user" in detail.json()["detail"]
    assert seen
    for value in INJECTIONS:
        assert not [sql for sql, _ in seen if value in sql]
    assert any(value in map(str, p.values()) for value in INJECTIONS for _, p in seen)
    assert real_query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0] == count
    # a user whose id *is* an injection string is found exactly, as data
    found = client.get("/api/v1/users/" + INJECTION_USER.replace("/", "%2F"), headers=admin).json()
    assert found["summary"]["user_id"] == INJECTION_USER and found["summary"]["requests"] == 1
    searched = client.get("/api/v1/users", params={"search": "o'brien"}, headers=admin).json()
    assert [u["user_id"] for u in searched["data"]] == [INJECTION_USER]


def test_login_session_cookie_and_logout(client: TestClient) -> None:
    bad = client.post("/login", content="token=wrong-token-123456789&next=/users", headers=_form())
    assert bad.status_code == 401 and "not valid" in bad.text
    ingest = client.post("/login", content=f"token={INGEST_TOKEN}", headers=_form())
    assert ingest.status_code == 401
    ok = client.post("/login", content=f"token={ACME_TOKEN}&next=//evil.example/x", headers=_form())
    assert (ok.status_code, ok.headers["location"]) == (303, "/")
    cookie = ok.cookies[SESSION_COOKIE]
    assert ACME_TOKEN not in cookie and "httponly" in ok.headers["set-cookie"].lower()
    session = TestClient(client.app, cookies={SESSION_COOKIE: cookie})
    assert session.get("/api/v1/whoami").json() == {"role": "tenant", "tenant": "acme"}
    assert session.get("/users", params={"tenant": "globex"}).status_code == 403
    out = session.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and 'spanledger_session=""' in out.headers["set-cookie"]
    forged = TestClient(client.app, cookies={SESSION_COOKIE: "00" * 32}, follow_redirects=False)
    assert forged.get("/users").status_code == 303
    nxt = client.post("/login", content=f"token={ADMIN_TOKEN}&next=/users%3Fwindow%3D7d", headers=_form())
    assert nxt.headers["location"] == "/users?window=7d"
    assert client.post("/login", content="token=" + "x" * 10_000, headers=_form()).status_code == 413


def _form() -> dict[str, str]:
    return {"Content-Type": "application/x-www-form-urlencoded"}


def test_tokens_are_never_logged(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    import httpx2

    caplog.set_level(logging.DEBUG)
    with running(app) as base, httpx2.Client(base_url=base, timeout=30) as http:
        http.post("/login", content=f"token={ADMIN_TOKEN}", headers=_form())
        for token in (ADMIN_TOKEN, ACME_TOKEN, INGEST_TOKEN, "wrong-token-123456789"):
            http.get("/api/v1/users", headers=bearer(token))
            http.post("/v1/traces", content=b"\xff", headers={**bearer(token), "Content-Type": "application/json"})
    assert caplog.records  # the access log and the app did log
    for token in (ADMIN_TOKEN, ACME_TOKEN, INGEST_TOKEN, "wrong-token-123456789"):
        assert token not in caplog.text
    assert ADMIN_TOKEN not in repr(app.state.settings) and ACME_TOKEN not in repr(app.state.settings)


def test_tokens_from_env_and_file_and_their_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "tokens.toml"
    file.write_text(f'admin = "{ADMIN_TOKEN}"\ningest = ["{INGEST_TOKEN}"]\n[tenants]\nglobex = "{GLOBEX_TOKEN}"\n')
    monkeypatch.setenv("SPANLEDGER_TENANT_TOKENS", f"acme={ACME_TOKEN}")
    settings = load_settings(store=None, host="127.0.0.1", port=4318, no_auth=False, token_file=str(file))
    assert settings.tokens == TOKENS
    monkeypatch.setenv("SPANLEDGER_TOKEN_FILE", str(file))
    monkeypatch.delenv("SPANLEDGER_TENANT_TOKENS")
    assert load_settings(store=None, host="::1", port=1, no_auth=False, token_file=None).tokens.admin == (ADMIN_TOKEN,)
    monkeypatch.delenv("SPANLEDGER_TOKEN_FILE")
    base = {"store": None, "host": "127.0.0.1", "port": 4318, "token_file": None}
    with pytest.raises(ConfigError, match="no tokens configured"):
        load_settings(**base, no_auth=False)
    with pytest.raises(ConfigError, match="loopback"):
        load_settings(**{**base, "host": "0.0.0.0"}, no_auth=True)
    assert load_settings(**{**base, "host": "localhost"}, no_auth=True).no_auth
    monkeypatch.setenv("SPANLEDGER_ADMIN_TOKEN", "short")
    with pytest.raises(ConfigError, match="too short"):
        load_settings(**base, no_auth=False)
    monkeypatch.setenv("SPANLEDGER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("SPANLEDGER_INGEST_TOKEN", ADMIN_TOKEN)
    with pytest.raises(ConfigError, match="same token"):
        load_settings(**base, no_auth=False)
    monkeypatch.setenv("SPANLEDGER_TENANT_TOKENS", "acme")
    with pytest.raises(ConfigError, match="tenant=token"):
        load_settings(**base, no_auth=False)
