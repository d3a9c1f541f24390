"""``spanledger budgets set | list | rm | report`` and ``spanledger alerts list | test | run``, run as a user runs
them (``python -m spanledger`` in a subprocess, on a chDB directory of its own)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from spanledger._budgets.records import STATUS
from tests.integration.test_budgets_alerts import Receiver
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration

SECRET = "cli-secret-0123456789"
SEED = """
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from spanledger import Store
from spanledger._ingest.codec import to_columns
from spanledger.testing import llm_call
now = datetime.now(UTC)
calls = []
for n, (tenant, user, cost) in enumerate([
    ("acme", "alice", "3.25"), ("acme", "alice", "1.75"), ("acme", "bob", "0.40"),
    ("globex", "carol", "12.00"), ("globex", "=cmd|' /C calc'!A0", "0.10"),
]):
    call = llm_call(n, user=user, tenant=tenant, at=now - timedelta(minutes=5 + n))
    call.cost = Decimal(cost)
    calls.append(call)
Store(sys.argv[1]).insert_calls(to_columns(calls))
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanledger", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**_env(), **(env or {})},
        check=False,
    )


@pytest.fixture(scope="module")
def store_arg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    dsn = f"chdb://{tmp_path_factory.mktemp('budgets-cli') / 'store'}"
    seeded = subprocess.run([sys.executable, "-c", SEED, dsn], capture_output=True, text=True, timeout=180, env=_env())
    assert seeded.returncode == 0, seeded.stderr
    yield "--store", dsn


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = run(*args, env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def fails(code: int, *args: str, env: dict[str, str] | None = None) -> str:
    result = run(*args, env=env)
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spanledger: error: "), result.stderr
    return lines[0]


def listed(store: tuple[str, str]) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(ok("budgets", "list", "--format", "json", *store))["data"]
    return data


def test_budgets_set_list_report_and_remove(store_arg: tuple[str, str]) -> None:
    made = json.loads(
        ok(
            "budgets",
            "set",
            "--user",
            "alice",
            "--tenant",
            "acme",
            "--period",
            "lifetime",
            "--limit",
            "4",
            "--format",
            "json",
            *store_arg,
        )
    )
    assert (made["scope"], made["limit"], made["hard"]) == ("pair", "4.000000000000", True)
    ok("budgets", "set", "--tenant", "globex", "--period", "lifetime", "--limit", "100", "--soft", *store_arg)
    ok(
        "budgets",
        "set",
        "--tenant",
        "acme",
        "--default",
        "--period",
        "lifetime",
        "--limit",
        "1",
        "--alert-at",
        "90",
        *store_arg,
    )
    out = ok(
        "budgets",
        "set",
        "--tag",
        "plan=free",
        "--period",
        "monthly",
        "--limit",
        "5",
        "--timezone",
        "Asia/Tokyo",
        *store_arg,
    )
    assert "each user with plan=free" in out and "Asia/Tokyo" in out
    budgets = listed(store_arg)
    assert sorted(b["scope"] for b in budgets) == ["pair", "tag_default", "tenant", "tenant_default"]
    table = ok("budgets", "list", *store_arg)
    assert "user alice in tenant acme" in table and "each user of tenant acme" in table and "soft" in table

    report = json.loads(ok("budgets", "report", "--format", "json", *store_arg))["data"]
    assert [(r["subject"], r["spent"], r["over"]) for r in report] == [
        ("user alice in tenant acme", "5.000000000000", True),  # over first: 125 %
        ("user bob in tenant acme", "0.400000000000", False),  # the tenant's default: 40 %
        ("tenant globex", "12.100000000000", False),
    ]
    assert report[0]["used_pct"] == 125.0 and report[0]["remaining"] == "-1.000000000000"
    assert report[0]["projected"] is None  # a lifetime has no end to project to
    over = json.loads(ok("budgets", "report", "--over", "--format", "json", *store_arg))["data"]
    assert [r["subject"] for r in over] == ["user alice in tenant acme"]
    rows = list(csv.DictReader(io.StringIO(ok("budgets", "report", "--format", "csv", "--tenant", "acme", *store_arg))))
    assert list(rows[0]) == STATUS.columns and {r["tenant_id"] for r in rows} == {"acme"}
    assert sum(Decimal(r["spent"]) for r in rows) == Decimal("5.40")
    text = ok("budgets", "report", *store_arg)
    assert "1 of 3 over budget" in text and "over" in text

    ok("budgets", "rm", "--tag", "plan=free", *store_arg)
    pair = next(b for b in listed(store_arg) if b["scope"] == "pair")
    assert pair["id"] in ok("budgets", "rm", pair["id"], *store_arg)
    assert sorted(b["scope"] for b in listed(store_arg)) == ["tenant", "tenant_default"]


BAD_INPUT = [
    (("--user", "x", "--period", "monthly", "--limit", "-5"), "cannot be negative"),
    (("--user", "x", "--period", "monthly", "--limit", "lots"), "not a number"),
    (("--user", "x", "--period", "fortnightly", "--limit", "5"), "invalid choice"),
    (("--user", "x", "--period", "monthly", "--limit", "5", "--timezone", "Mars/Base"), "unknown time zone"),
    (("--user", "x", "--period", "custom", "--limit", "5"), "start and an end"),
    (("--user", "x", "--period", "custom", "--limit", "5", "--from", "soon", "--to", "later"), "bad date"),
    (("--tag", "plan", "--period", "monthly", "--limit", "5"), "key=value"),
    (("--period", "monthly", "--limit", "5"), "needs a subject"),
    (("--user", "x", "--default", "--period", "monthly", "--limit", "5"), "tenant default needs a tenant"),
]


def test_bad_input_is_one_line_exit_2_and_changes_nothing(store_arg: tuple[str, str]) -> None:
    before = listed(store_arg)
    for args, message in BAD_INPUT:
        assert message in fails(2, "budgets", "set", *args, *store_arg), args
    assert listed(store_arg) == before


def test_rm_needs_a_budget_that_exists(store_arg: tuple[str, str]) -> None:
    assert "no budget" in fails(2, "budgets", "rm", "0123456789abcdef", *store_arg)
    assert "no daily budget" in fails(2, "budgets", "rm", "--user", "nobody", "--period", "daily", *store_arg)
    assert "not both" in fails(2, "budgets", "rm", *store_arg)


def test_alerts_run_list_and_test_against_a_receiver(store_arg: tuple[str, str]) -> None:
    ok("budgets", "set", "--user", "carol", "--tenant", "globex", "--period", "lifetime", "--limit", "10", *store_arg)
    assert "alert(s) fired" in ok("alerts", "run", *store_arg)
    assert "0 alert(s) fired" in ok("alerts", "run", *store_arg)  # once
    fired = json.loads(ok("alerts", "list", "--format", "json", *store_arg))["data"]
    assert sorted(a["rule"].rsplit(":", 1)[1] for a in fired if a["user_id"] == "carol") == ["100", "50", "80"]
    assert all(a["delivery"] == "" for a in fired)  # no webhook: the log only
    rows = list(csv.DictReader(io.StringIO(ok("alerts", "list", "--format", "csv", "--tenant", "acme", *store_arg))))
    assert {r["tenant_id"] for r in rows} <= {"acme"}

    receiver = Receiver()
    try:
        secret = {"SPANLEDGER_ALERT_WEBHOOK_SECRET": SECRET}
        rule = "absolute:user:daily:11"
        out = ok("alerts", "test", "--webhook", receiver.url, "--rule", rule, *store_arg, env=secret)
        assert "would fire: user carol in tenant globex spent $12" in out and "HTTP 200" in out
        ((headers, body),) = receiver.received
        assert (
            headers["X-Spanledger-Signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        )
        assert json.loads(ok("alerts", "list", "--format", "json", *store_arg))["data"] == fired  # nothing recorded
        receiver.down()
        assert (
            "did not take the test alert"
            in run("alerts", "test", "--webhook", receiver.url, *store_arg, env=secret).stdout
        )
    finally:
        receiver.down()
    assert "webhook URL" in fails(2, "alerts", "test", "--webhook", "ftp://hooks.example/x", *store_arg, env=secret)
    assert "secret" in fails(2, "alerts", "test", "--webhook", "https://hooks.example/x", *store_arg)
    assert "bad alert rule" in fails(2, "alerts", "test", "--rule", "loud:everyone", *store_arg)
