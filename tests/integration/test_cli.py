"""The ``spanledger`` command line, run as a user runs it: ``python -m spanledger`` in a subprocess.

The store is seeded once per module by the real main job, ``spanledger demo``, in its own chDB directory
(the pytest process may open only its own). Every answer is checked against another answer of the CLI
or against the seeded traffic plan, with money compared as exact ``Decimal``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from spanledger import Store
from spanledger._demo.plan import PLANS, UNPRICED_MODEL, DemoCall, plan_month
from spanledger._store.schema import bootstrap, migrations

pytestmark = pytest.mark.integration

EXACT_MONEY = re.compile(r"^\d+\.\d{12}$")
PRO_TENANTS = {tenant for tenant, plan in PLANS.items() if plan == "pro"}
UNTIL = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
"""Where the demo's month ends in both runs (the default, the start of the hour, could change in between)."""


def plan_traffic() -> list[DemoCall]:
    """The calls the demo sends (``--until UNTIL``, the default seed and size)."""
    return plan_month(end=UNTIL).calls


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env["COLUMNS"] = "160"  # tables wide enough that no cell is shortened
    return env


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanledger", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        check=False,
    )


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single ``spanledger: error: ...`` line of a failed run."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spanledger: error: ")
    return lines[0]


@dataclass(frozen=True)
class Seeded:
    dsn: str
    demo_output: str
    users: dict[str, Any]
    tenants: dict[str, Any]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    dsn = f"chdb://{tmp_path_factory.mktemp('cli') / 'store'}"
    demo = cli("demo", "--store", dsn, "--until", UNTIL.isoformat(), timeout=600)
    assert demo.returncode == 0, demo.stderr
    users = json.loads(ok("users", "--limit", "1000", "--format", "json", "--store", dsn))
    tenants = json.loads(ok("tenants", "--limit", "1000", "--format", "json", "--store", dsn))
    return Seeded(dsn, demo.stdout, users, tenants)


def dollars(value: Decimal) -> str:
    """How a table shows an amount: $1,234.57 from $10 up, four decimals below (the README's rule)."""
    places = Decimal("0.01") if value >= 10 else Decimal("0.0001")
    return f"${value.quantize(places, rounding=ROUND_HALF_UP):,}"


def _money(row: dict[str, Any]) -> Decimal:
    assert isinstance(row["cost"], str) and EXACT_MONEY.match(row["cost"]), row["cost"]
    return Decimal(row["cost"])


def test_users_json_holds_every_user_with_exact_money(seeded: Seeded) -> None:
    plan = plan_traffic()
    rows, unattributed = seeded.users["data"], seeded.users["unattributed"]
    # a user is an attributed id: the calls without one are reported beside the ranking, never counted in it
    assert seeded.users["total"] == len(rows) == len({c.user_id for c in plan if c.user_id}) > 30
    assert all(r["user_id"] and r["attributed"] for r in rows)
    assert unattributed["requests"] == sum(1 for c in plan if c.user_id is None) > 0
    assert sum(r["requests"] for r in rows) + unattributed["requests"] == len(plan)
    assert sum(r["errors"] for r in rows) == sum(1 for c in plan if c.status != 200 and c.user_id)
    unpriced = sum(1 for c in plan if c.model == UNPRICED_MODEL)
    assert sum(r["unpriced_requests"] for r in rows) + unattributed["unpriced_requests"] == unpriced
    costs = [_money(r) for r in rows]
    assert costs == sorted(costs, reverse=True)  # default: most expensive first
    # users and tenants are two rollups of the same calls: their totals agree to the last digit
    everyone = sum(costs) + Decimal(unattributed["cost"])
    no_tenant = seeded.tenants["no_tenant"]
    assert everyone == sum(_money(t) for t in seeded.tenants["data"]) + Decimal(no_tenant["cost"]) > Decimal(1)
    for row in rows:
        assert row["last_seen"].endswith("Z")  # ISO-8601 UTC, as the API writes it


def test_a_users_cost_is_the_sum_of_their_per_model_costs(seeded: Seeded) -> None:
    rows = seeded.users["data"]
    for row in [rows[0], rows[1]]:
        detail = json.loads(ok("user", row["label"], "--format", "json", "--calls", "3", "--store", seeded.dsn))
        assert detail["user_id"] == row["user_id"]
        assert _money(detail["summary"]) == _money(row)
        assert sum(_money(m) for m in detail["models"]) == _money(row)
        assert sum(m["requests"] for m in detail["models"]) == row["requests"]
        assert len(detail["calls"]) == 3
        priced = [c for c in detail["calls"] if c["cost"] is not None]
        assert all(EXACT_MONEY.match(c["cost"]) for c in priced)
    nobody = json.loads(ok("user", "(unattributed)", "--format", "json", "--store", seeded.dsn))
    assert nobody["user_id"] == "" and nobody["label"] == "(unattributed)"
    assert _money(nobody["summary"]) == Decimal(seeded.users["unattributed"]["cost"])
    assert nobody["summary"]["requests"] == seeded.users["unattributed"]["requests"]
    typo = rows[0]["user_id"][:-1] + "x"
    message = one_line_error(cli("user", typo, "--store", seeded.dsn), 2)
    assert f"no user {typo!r} in the ledger; did you mean {rows[0]['user_id']}" in message


def test_sort_order_limit_and_page(seeded: Seeded) -> None:
    args = ("users", "--sort", "requests", "--asc", "--limit", "5", "--page", "2", "--format", "json")
    out = json.loads(ok(*args, "--store", seeded.dsn))
    assert out["sort_by"] == "requests" and out["sort_dir"] == "asc" and out["page"] == 2
    assert len(out["data"]) == 5 and out["total"] == seeded.users["total"]
    assert out["pages"] == -(-seeded.users["total"] // 5)
    by_requests = sorted(seeded.users["data"], key=lambda r: (r["requests"], r["tenant_id"], r["user_id"]))
    assert [r["user_id"] for r in out["data"]] == [r["user_id"] for r in by_requests[5:10]]


def test_search_and_tenant_filters(seeded: Seeded) -> None:
    found = json.loads(ok("users", "--search", "ACME", "--limit", "1000", "--format", "json", "--store", seeded.dsn))
    expected = [r["user_id"] for r in seeded.users["data"] if "acme" in r["user_id"]]
    assert [r["user_id"] for r in found["data"]] == expected and expected

    globex = json.loads(ok("users", "--tenant", "globex", "--limit", "1000", "--format", "json", "--store", seeded.dsn))
    expected = [r["user_id"] for r in seeded.users["data"] if r["tenant_id"] == "globex"]
    assert [r["user_id"] for r in globex["data"]] == expected and expected


def test_tag_filters(seeded: Seeded) -> None:
    pro = json.loads(ok("users", "--tag", "plan=pro", "--limit", "1000", "--format", "json", "--store", seeded.dsn))
    assert {r["tenant_id"] for r in pro["data"]} == PRO_TENANTS
    tenant_totals = {t["tenant_id"]: t for t in seeded.tenants["data"]}
    assert sum(r["requests"] for r in pro["data"]) == sum(tenant_totals[t]["requests"] for t in PRO_TENANTS)
    assert sum(_money(r) for r in pro["data"]) == sum(_money(tenant_totals[t]) for t in PRO_TENANTS)

    args = ("users", "--tag", "plan=pro", "--tag", "feature=chat", "--limit", "1000", "--format", "json")
    chat = json.loads(ok(*args, "--store", seeded.dsn))
    plan = plan_traffic()
    assert sum(r["requests"] for r in chat["data"]) == sum(1 for c in plan if c.plan == "pro" and c.feature == "chat")


def test_csv_has_a_header_and_one_line_per_user(seeded: Seeded) -> None:
    text = ok("users", "--limit", "7", "--format", "csv", "--store", seeded.dsn)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 7 and text.count("\n") == 8
    assert [r["user_id"] for r in rows] == [r["user_id"] for r in seeded.users["data"][:7]]
    assert [Decimal(r["cost"]) for r in rows] == [_money(r) for r in seeded.users["data"][:7]]


def test_tables_show_money_totals_and_the_page(seeded: Seeded) -> None:
    table = ok("users", "--limit", "5", "--store", seeded.dsn)
    top = seeded.users["data"][0]
    assert top["user_id"] in table
    assert dollars(_money(top)) in table
    assert f"page 1 of {-(-seeded.users['total'] // 5)}" in table
    assert f"Shown (5 of {seeded.users['total']})" in table
    assert "unpriced" in table  # the note under the table

    tenants = ok("tenants", "--store", seeded.dsn)
    total = sum(_money(t) for t in seeded.tenants["data"])
    requests = sum(t["requests"] for t in seeded.tenants["data"])
    assert re.search(rf"Total\s.*{requests:,}.*{re.escape(dollars(total))}", tenants)


def test_user_table_and_unknown_user(seeded: Seeded) -> None:
    top = seeded.users["data"][0]
    page = ok("user", top["user_id"], "--store", seeded.dsn)
    for heading in ("Per model", "Per day", "most recent calls"):
        assert heading in page
    assert "no user 'nobody-at-all' in the ledger" in one_line_error(
        cli("user", "nobody-at-all", "--store", seeded.dsn), 2
    )
    quiet = ok("user", top["user_id"], "--from", "2001-01-01", "--to", "2001-01-02", "--store", seeded.dsn)
    assert f"No LLM calls for {top['user_id']} in this window" in quiet  # known, but not then


def test_overview_agrees_with_users_and_tenants(seeded: Seeded) -> None:
    out = json.loads(ok("overview", "--top", "3", "--format", "json", "--store", seeded.dsn))
    users, tenants, plan = seeded.users["data"], seeded.tenants["data"], plan_traffic()

    def key(u: dict[str, Any]) -> tuple[Any, ...]:
        return (u["user_id"], u["label"], u["tenant_id"], _money(u), u["requests"], u["unpriced_requests"])

    assert [key(u) for u in out["top_users"]] == [key(u) for u in users[:3]]
    assert [(t["tenant_id"], _money(t)) for t in out["top_tenants"]] == [
        (t["tenant_id"], _money(t)) for t in tenants[:3]
    ]
    totals = out["totals"]
    no_tenant = Decimal(out["no_tenant_cost"])
    assert no_tenant == Decimal(seeded.tenants["no_tenant"]["cost"])
    assert _money(totals) == sum(_money(t) for t in tenants) + no_tenant and totals["requests"] == len(plan)
    # users and tenants are counted one way: the overview's counts are the rankings' totals
    assert totals["active_users"] == seeded.users["total"] == len(users)
    assert totals["tenants"] == seeded.tenants["total"] == len(tenants)
    assert out["unattributed_requests"] == sum(1 for c in plan if c.user_id is None) > 0
    assert Decimal(out["unattributed_cost"]) == Decimal(seeded.users["unattributed"]["cost"])
    assert sum(Decimal(d["cost"]) for d in out["daily"]) == _money(totals)

    table = ok("overview", "--store", seeded.dsn)
    assert dollars(_money(totals)) in table
    assert users[0]["user_id"] in table and tenants[0]["tenant_id"] in table
    for heading in ("Top users by LLM cost", "Top tenants by LLM cost", "Cost per day", "with no user"):
        assert heading in table
    assert "No LLM calls match" in ok("overview", "--tenant", "no-such-tenant", "--store", seeded.dsn)


def test_daily_totals_match(seeded: Seeded) -> None:
    out = json.loads(ok("daily", "--format", "json", "--store", seeded.dsn))
    assert len(out["data"]) == (30 if UNTIL.hour == 0 else 31)  # the demo's 30 days touch 30 or 31 UTC days
    tenants = sum(_money(t) for t in seeded.tenants["data"]) + Decimal(seeded.tenants["no_tenant"]["cost"])
    assert sum(Decimal(r["cost"]) for r in out["data"]) == tenants


def test_schema_prints_ddl_clickhouse_parses(store: Store) -> None:
    ddl = ok("schema")
    assert "CREATE MATERIALIZED VIEW" in ddl
    chunks = ("\n".join(line for line in chunk.splitlines() if not line.startswith("--")) for chunk in ddl.split(";"))
    statements = [chunk.strip() for chunk in chunks if chunk.strip()]
    # database, raw table, three hourly rollups and their views; migration 2: daily rollup, view, backfill;
    # migration 3: two more daily rollups, each with its view and backfill; migration 4: call_keys, its view,
    # backfill; migration 5: a column on each of the six rollups, a new query for each of their views;
    # migration 6: budgets, fired alerts, webhook deliveries; migration 7: the three billing tables;
    # migration 8: the privacy audit and its unfinished anonymizations;
    # migration 9: customers, tool_calls, its rollup and view, the view feeding call_keys with tool keys
    assert (
        len(statements) == 2 + 17 + 3 + 12 + 3 + 3 + 2 + 5
    )  # and, before the migrations, the tables of migrations and leases
    assert len(statements) == len(bootstrap("spanledger")) + sum(
        len(m.statements) + len(m.backfill) for m in migrations("spanledger")
    )
    for statement in statements:
        formatted = store.query("SELECT formatQuery({q:String})", {"q": statement}).result_rows[0][0]
        assert formatted.split()[0] in ("CREATE", "INSERT", "ALTER")


def test_schema_for_a_cluster() -> None:
    result = cli("schema", "--cluster", "prod")
    assert result.returncode == 0, result.stderr
    assert "ON CLUSTER `prod`" in result.stdout
    assert "ReplicatedAggregatingMergeTree" in result.stdout
    assert "ENGINE = Distributed(" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("users", "--from", "last tuesday"), "bad date 'last tuesday'"),
        (("users", "--tag", "plan"), "bad tag 'plan': expected key=value"),
        (("users", "--sort", "vibes"), "invalid choice: 'vibes'"),
        (("users", "--store", "ftp://example.com/db"), "bad store DSN"),
        (("daily", "--tag", "plan=pro", "--tag", "plan=free"), "--tag plan given twice"),
        (("demo", "--until", "someday"), "bad date 'someday'"),
        (("demo", "--until", "2999-01-01"), "the demo's month cannot end in the future"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], expected: str, tmp_path: Path) -> None:
    # the store is never opened: bad input is rejected first
    line = one_line_error(cli(*args, *([] if "--store" in args else ["--store", f"chdb://{tmp_path}"])), 2)
    assert expected in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("command", "dsn", "code", "expected"),
    [
        ("users", "chdb:///proc/forbidden", 2, "there is no spanledger store in /proc/forbidden"),
        ("demo", "chdb:///proc/forbidden", 2, "cannot create the store directory /proc/forbidden"),
        ("users", "chdb://{file}", 2, "is a file, not a directory"),
        ("demo", "chdb://{file}", 2, "is a file, not a directory"),
        ("users", "http://h:1/db?connect_timeout=abc", 2, "connect_timeout must be a number of seconds, got 'abc'"),
        ("users", "http://h:99999/db", 2, "the port is not a number from 0 to 65535"),
        (
            "users",
            "http://127.0.0.1:1/db",
            1,
            "cannot connect to the ClickHouse server 127.0.0.1:1: connection refused",
        ),
        ("users", "chdb://{tmp}/nonexistent/../x", 2, "nonexistent does not exist"),
        ("users", "chdb://{tmp}/empty", 2, "there is no spanledger store in"),
        ("status", "chdb://{tmp}/empty", 0, ""),
    ],
)
def test_a_bad_store_is_one_line_and_a_question_creates_nothing(
    command: str, dsn: str, code: int, expected: str, tmp_path: Path
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a store")
    (tmp_path / "empty").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli(command, "--store", dsn.format(file=a_file, tmp=tmp_path))
    if code:
        assert expected in one_line_error(result, code)
    else:  # status reports what it finds; it creates no store either
        assert result.returncode == 0 and "there is no spanledger store" in result.stdout, result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing made, not even a directory
    assert not Path("/x").exists()


@pytest.fixture
def held_store(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A chDB store held open by another process, and that process's PID."""
    dsn = f"chdb://{tmp_path / 'held'}"
    code = (
        "import sys, spanledger\nstore = spanledger.Store(sys.argv[1])\nprint('ready', flush=True)\nsys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env()
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "ready"
            yield dsn, holder.pid
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)


def test_locked_store_names_the_holder(held_store: tuple[str, int]) -> None:
    dsn, pid = held_store
    line = one_line_error(cli("users", "--store", dsn), 1)
    assert f"in use by PID {pid} " in line


def test_console_script_and_help() -> None:
    script = Path(sys.executable).parent / "spanledger"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False, env=_env())
    assert version.returncode == 0 and version.stdout.startswith("spanledger ")
    assert "--tag" in ok("users", "--help")


def test_a_second_demo_run_shows_the_same_numbers(seeded: Seeded) -> None:
    again = cli("demo", "--store", seeded.dsn, "--until", UNTIL.isoformat(), timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"Replaced {len(plan_traffic()):,} calls from an earlier demo run." in again.stdout
    users = json.loads(ok("users", "--limit", "1000", "--format", "json", "--store", seeded.dsn))
    tenants = json.loads(ok("tenants", "--limit", "1000", "--format", "json", "--store", seeded.dsn))
    assert users["data"][0]["user_id"] == seeded.users["data"][0]["user_id"]

    def totals(rows: list[dict[str, Any]]) -> list[tuple[str, int, int, Decimal]]:
        return sorted((r.get("user_id", r["tenant_id"]), r["requests"], r["total_tokens"], _money(r)) for r in rows)

    assert totals(users["data"]) == totals(seeded.users["data"])
    assert totals(tenants["data"]) == totals(seeded.tenants["data"])
    assert _ranked_lines(again.stdout) == _ranked_lines(seeded.demo_output)


def _ranked_lines(demo_output: str) -> list[str]:
    """The rows of the demo's top-users table (rank, user, tenant, requests, tokens, cost, ...)."""
    block = demo_output.split("Top 10 users")[1].split("Tenants by LLM cost")[0]
    lines = [line.strip() for line in block.splitlines() if re.match(r"^\s*\d+\s+\S+@", line)]
    assert len(lines) >= 9
    return lines
