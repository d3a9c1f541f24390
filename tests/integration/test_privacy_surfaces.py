"""Forget, look-ups by raw id and retention through the real FastAPI app and the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from spanledger import Pseudonymizer, Store
from spanledger._server import create_app
from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, seed, settings
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration

KEY = "surfaces-test-key-0123456789"
USER = "alice.chen"  # seeded in acme with calls that carry content


def _bodies(client: TestClient, headers: dict[str, str]) -> str:
    """Every API answer a reader can get about users, tenants and days, concatenated."""
    out = []
    for path in (
        "/api/v1/users?limit=500&from=90d",
        "/api/v1/users.csv?from=90d",
        "/api/v1/tenants?from=90d",
        "/api/v1/daily?per=user&from=90d",
        "/api/v1/overview?from=90d&top=100",
        "/api/v1/status",
        "/api/v1/privacy/audit",
        "/users?from=90d&limit=500",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        out.append(response.text)
    users = client.get("/api/v1/users?limit=500&from=90d", headers=headers).json()["data"]
    for row in users:  # every user's detail, with its calls and their content
        detail = client.get(f"/api/v1/users/{row['user_id'] or '(unattributed)'}?from=90d", headers=headers)
        out.append(detail.text)
        for call in detail.json()["calls"]:
            out.append(client.get(f"/api/v1/calls/{call['trace_id']}/{call['span_id']}", headers=headers).text)
    return "\n".join(out)


def test_the_api_looks_up_raw_ids_forgets_and_then_shows_the_id_nowhere(
    chdb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLEDGER_ID_KEY", KEY)
    pseudonym = Pseudonymizer(KEY)(USER)
    dsn = f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}"
    app = create_app(settings(dsn))
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        seed(app.state.exporter)
        with TestClient(app) as client:
            by_raw = client.get(f"/api/v1/users/{USER}?from=90d", headers=admin).json()
            assert by_raw["user_id"] == pseudonym and by_raw["summary"]["requests"] > 0  # stored hashed, found by raw
            everything = _bodies(client, admin)
            assert pseudonym in everything and USER not in everything

            body = {"user_id": USER}
            acme = {"Authorization": f"Bearer {ACME_TOKEN}"}
            assert client.post("/api/v1/privacy/forget", json=body, headers=acme).status_code == 403
            assert client.post("/api/v1/privacy/forget", json={"user_id": "nobody"}, headers=admin).status_code == 404
            dry = client.post("/api/v1/privacy/forget", json={**body, "dry_run": True}, headers=admin).json()
            assert dry["rows"]["llm_calls"] > 0 and client.get("/api/v1/privacy/audit", headers=admin).json() == {
                "data": []
            }

            done = client.post("/api/v1/privacy/forget", json=body, headers=admin)
            assert done.status_code == 200, done.text
            assert done.json()["verified"] and USER not in done.text and pseudonym not in done.text
            everything = _bodies(client, admin)
            assert USER not in everything and pseudonym not in everything
            again = client.post("/api/v1/privacy/forget", json=body, headers=admin).json()
            assert again["already_forgotten"]
            assert [a["state"] for a in client.get("/api/v1/privacy/audit", headers=admin).json()["data"]] == [
                "started",
                "done",
            ]
            assert client.get("/api/v1/privacy/retention", headers=admin).json()["kept"]["raw calls"] == "forever"
    finally:
        app.state.exporter.shutdown()
        Store(dsn, create=False).command(f"DROP DATABASE IF EXISTS {Store(dsn, create=False).database} SYNC")


def _cli(*args: str, key: bool = True) -> subprocess.CompletedProcess[str]:
    env = _env()
    if key:
        env["SPANLEDGER_ID_KEY"] = KEY
    return subprocess.run(
        [sys.executable, "-m", "spanledger", *args], capture_output=True, text=True, timeout=180, env=env, check=False
    )


def test_the_command_line_forgets_by_raw_id_and_reports_retention(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'store'}"
    script = textwrap.dedent(
        f"""
        from spanledger import CostExporter
        from tests.integration.server_support import seed
        exporter = CostExporter({dsn!r}, capture_content=True)
        seed(exporter)
        exporter.shutdown()
        """
    )
    env = {**_env(), "SPANLEDGER_ID_KEY": KEY, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    made = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert made.returncode == 0, made.stderr
    pseudonym = Pseudonymizer(KEY)(USER)

    user = _cli("user", USER, "--store", dsn, "--from", "90d", "--format", "json")
    assert user.returncode == 0, user.stderr
    assert json.loads(user.stdout)["user_id"] == pseudonym  # looked up by the raw id

    for bad, message in (
        (("--calls", "0"), "1 or more"),
        (("--calls", "-2"), "1 or more"),
        (("--content", "x"), "days"),
    ):
        failed = _cli("retention", "--store", dsn, *bad)
        assert failed.returncode == 2 and message in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert _cli("retention", "--store", dsn, "--calls", "90", "--content", "30").returncode == 0
    status = json.loads(_cli("status", "--store", dsn, "--format", "json").stdout)
    assert status["retention"]["kept"] == {"raw calls": "90 days", "captured content": "30 days", "rollups": "forever"}
    assert "raw calls 90 days" in _cli("status", "--store", dsn).stdout

    no_key = _cli("forget", USER, "--store", dsn, key=False)
    assert no_key.returncode == 2 and "SPANLEDGER_ID_KEY" in no_key.stderr
    unknown = _cli("forget", "mallory", "--store", dsn)
    assert unknown.returncode == 2 and "nothing was changed" in unknown.stderr
    done = _cli("forget", USER, "--store", dsn)
    assert done.returncode == 0, done.stderr
    assert "Checked" in done.stdout and USER not in done.stdout + done.stderr
    assert "Nothing to do" in _cli("forget", USER, "--store", dsn).stdout

    outputs = [
        _cli(*cmd, "--store", dsn).stdout
        for cmd in (
            ("users", "--from", "90d", "--limit", "500", "--format", "json"),
            ("users", "--from", "90d", "--limit", "500", "--format", "csv"),
            ("daily", "--from", "90d", "--per", "user", "--format", "csv"),
            ("overview", "--from", "90d", "--top", "100", "--format", "json"),
            ("status", "--format", "json"),
        )
    ]
    assert all(outputs) and not any(USER in o or pseudonym in o for o in outputs)
    spool = tmp_path / "store-spool"
    assert not [p for p in spool.rglob("*") if p.is_file() and pseudonym.encode() in p.read_bytes()]
