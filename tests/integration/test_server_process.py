"""``spanledger serve`` as a real process: it starts, ingests, shuts down cleanly, and keeps what it took."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from spanledger._cli.main import main
from tests.integration.server_support import ADMIN_TOKEN, INGEST_TOKEN

pytestmark = pytest.mark.integration

SPAN = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "manual"},
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "name": "chat gpt-4o-mini",
                            "kind": 3,
                            "startTimeUnixNano": str(time.time_ns() - 2_000_000_000),
                            "endTimeUnixNano": str(time.time_ns() - 1_000_000_000),
                            "attributes": [
                                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
                                {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": 1024}},
                                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "30"}},
                                {"key": "enduser.id", "value": {"stringValue": "carol"}},
                                {"key": "tenant.id", "value": {"stringValue": "initech"}},
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "spanledger", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_serve_ingests_shuts_down_cleanly_and_the_data_stays(tmp_path: Path) -> None:
    port = _free_port()
    store = f"chdb://{tmp_path / 'ledger'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")},
        "SPANLEDGER_ADMIN_TOKEN": ADMIN_TOKEN,
        "SPANLEDGER_INGEST_TOKEN": INGEST_TOKEN,
    }
    command = [sys.executable, "-m", "spanledger", "serve", "--store", store, "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx2.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:  # wait for it to listen (start-up, not something under test)
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"spanledger serve did not start: {server.communicate()[1][-2000:]}")
                time.sleep(0.1)
            sent = http.post(
                "/v1/traces",
                content=json.dumps(SPAN),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {INGEST_TOKEN}"},
            )
            assert (sent.status_code, sent.json()) == (200, {})
            assert http.get("/api/v1/users").status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: the exit status says "stopped by SIGTERM"
    assert server.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    assert "Application shutdown complete" in stderr
    assert f"OTLP/HTTP   http://127.0.0.1:{port}/v1/traces" in stderr
    assert ADMIN_TOKEN not in stderr and INGEST_TOKEN not in stderr
    # the process is gone, its store is free: the CLI reads what the server stored on shutdown
    users = _cli("users", "--store", store, "--format", "json", env=env)
    assert users.returncode == 0, users.stderr
    (row,) = json.loads(users.stdout)["data"]
    assert (row["user_id"], row["tenant_id"], Decimal(row["cost"])) == (
        "carol",
        "initech",
        Decimal("0.0001212"),
    )


def test_cli_refuses_bad_serve_settings_in_one_line(store_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--store", store_dsn, "--host", "0.0.0.0", "--no-auth"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-auth is only allowed on a loopback address" in err
    assert main(["serve", "--store", store_dsn]) == 2
    assert "no tokens configured" in capsys.readouterr().err
