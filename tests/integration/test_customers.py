"""Customer profiles in the ledger: imported whole or not at all, written only when they change, shown beside
the ids everywhere a user appears, found by name and e-mail, and listed when they never used the product.
The command line is run as a user runs it (``python -m spanledger`` in a subprocess)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger import ConfigError, CostExporter, ImportRejected, Ledger, Store, testing
from spanledger._customers import store as profiles
from spanledger._customers.profiles import read_text
from spanledger._customers.schema import CUSTOMERS_TABLE
from spanledger._model.customer import Customer

pytestmark = pytest.mark.integration

DAY = datetime(2026, 6, 10, tzinfo=UTC)
MINI = Decimal("0.0001212")  # gpt-4o-mini: 1200 input of which 1024 cached, 30 output
PEOPLE = """user_id,tenant_id,display_name,email,plan
alice,acme,Alice Chen,alice@acme.example,pro
bob,acme,Bob Stone,bob@acme.example,free
carol,globex,Carol Díaz,carol@globex.example,pro
,acme,ACME Corporation,billing@acme.example,enterprise
nina,acme,Nina Newcomer,nina@newco.example,trial
"""


def spans() -> list[object]:
    """alice 3 calls, bob 1, carol (globex) 2, 1 unattributed in acme; alice runs 2 tools."""
    out: list[object] = []
    plan = [("alice", "acme")] * 3 + [("bob", "acme"), ("carol", "globex"), ("carol", "globex"), (None, "acme")]
    for n, (user, tenant) in enumerate(plan):
        out.append(testing.llm_span(n, user=user, tenant=tenant, at=DAY + timedelta(hours=n)))
    out += [
        testing.tool_span(100 + n, user="alice", tool="search", at=DAY + timedelta(minutes=5 + n)) for n in range(2)
    ]
    return out


@pytest.fixture
def ledger(store: Store, tmp_path: Path) -> Iterator[Ledger]:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    assert exporter.export(spans()).name == "SUCCESS"  # type: ignore[arg-type]
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    made = Ledger(store)
    profiles.upsert(store, read_text(PEOPLE, format="csv"))
    yield made


def _versions(store: Store) -> int:
    return int(store.query(f"SELECT count() FROM {store.database}.{CUSTOMERS_TABLE}").result_rows[0][0])


def test_a_repeated_import_writes_nothing_and_a_changed_row_one_version(ledger: Ledger) -> None:
    store = ledger.store
    assert _versions(store) == 5
    again = profiles.upsert(store, read_text(PEOPLE, format="csv"))
    assert (again.created, again.updated, again.unchanged, _versions(store)) == (0, 0, 5, 5)
    changed = PEOPLE.replace("Bob Stone,bob@acme.example,free", "Bob Stone,bob@acme.example,pro")
    result = profiles.upsert(store, read_text(changed, format="csv"))
    assert (result.created, result.updated, result.unchanged, _versions(store)) == (0, 1, 4, 6)
    bob = ledger.customer("bob", tenant_id="acme")
    assert bob is not None and bob.plan == "pro" and bob.created_at is not None and bob.updated_at > bob.created_at  # type: ignore[operator]
    # a JSONL row giving only the e-mail keeps the name and plan
    profiles.upsert(
        store, read_text('{"user_id": "bob", "tenant_id": "acme", "email": "robert@acme.example"}', format="jsonl")
    )
    bob = ledger.customer("bob", tenant_id="acme")
    assert bob is not None and (bob.display_name, bob.email, bob.plan) == ("Bob Stone", "robert@acme.example", "pro")


def test_a_file_with_one_bad_row_writes_nothing(ledger: Ledger) -> None:
    before = _versions(ledger.store)
    bad = PEOPLE.replace("alice,acme,Alice Chen", "alice,acme,Alice Chen-Renamed") + "dave,acme,Dave,dave(at)acme,pro\n"
    with pytest.raises(ImportRejected, match="line 7: email is not an e-mail address"):
        profiles.upsert(ledger.store, read_text(bad, format="csv"))
    assert _versions(ledger.store) == before
    assert ledger.customer("alice", tenant_id="acme").display_name == "Alice Chen"  # type: ignore[union-attr]
    with pytest.raises(ConfigError):  # the Python API checks the same way
        ledger.upsert_customers([{"user_id": "x", "email": "x"}, {"user_id": "y"}])
    assert ledger.customer("y") is None


def test_upsert_customers_takes_profiles_and_partial_rows(ledger: Ledger) -> None:
    result = ledger.upsert_customers(
        [
            Customer("initech", "erin", "Erin Kim", "erin@initech.example", "pro", {"seats": "3"}),
            {"user_id": "alice", "tenant_id": "acme", "metadata": {"region": "eu"}},
        ]
    )
    assert (result.created, result.updated) == (1, 1)
    alice = ledger.customer("alice", tenant_id="acme")
    assert alice is not None and (alice.display_name, alice.metadata) == ("Alice Chen", {"region": "eu"})
    erin = ledger.customer("erin", tenant_id="initech")
    assert erin is not None and (erin.kind, erin.email, erin.metadata) == (
        "user",
        "erin@initech.example",
        {"seats": "3"},
    )
    assert erin.created_at is not None and erin.updated_at is not None  # the store's times, not the caller's


def test_names_beside_ids_in_users_tenants_the_overview_and_a_user(ledger: Ledger) -> None:
    page = ledger.users(include_unattributed=True)
    assert {(r.tenant_id, r.user_id): r.display_name for r in page.rows} == {
        ("acme", "alice"): "Alice Chen",
        ("acme", "bob"): "Bob Stone",
        ("globex", "carol"): "Carol Díaz",
        ("acme", ""): "",  # the calls with no user: never the tenant's own profile's name
    }
    assert {r.tenant_id: r.display_name for r in ledger.tenants().rows} == {"acme": "ACME Corporation", "globex": ""}
    ov = ledger.overview()
    assert {u.user_id: u.display_name for u in ov.top_users} == {
        "alice": "Alice Chen",
        "bob": "Bob Stone",
        "carol": "Carol Díaz",
    }
    assert {t.tenant_id: t.display_name for t in ov.top_tenants}["acme"] == "ACME Corporation"
    detail = ledger.user("alice")
    assert detail.profile is not None and detail.profile.email == "alice@acme.example"
    assert detail.summary is not None and (detail.summary.display_name, detail.summary.tool_calls) == ("Alice Chen", 2)
    # a profile in another tenant than the one asked for is not this user's there
    assert ledger.user("alice", tenant_id="globex").profile is None
    # the usage figures do not change with the names
    assert sum((r.usage.cost for r in page.rows), Decimal(0)) == MINI * 7


def test_search_matches_ids_names_and_emails_case_insensitively(ledger: Ledger) -> None:
    def found(search: str, **kw: object) -> list[str]:
        return [r.user_id for r in ledger.users(search=search, **kw).rows]  # type: ignore[arg-type]

    assert found("ALICE") == ["alice"]  # the id
    assert found("stone") == ["bob"]  # the name
    assert found("díaz") == ["carol"] and found("DÍAZ") == ["carol"]  # non-ASCII, any case
    assert found("globex.example") == ["carol"]  # the e-mail
    assert found("acme.example") == ["alice", "bob"]  # by cost, then id
    assert found("acme.example", tenant_id="globex") == []
    assert found("newcomer") == []  # a customer with no calls is no user with calls
    assert [r.tenant_id for r in ledger.tenants(search="corporation").rows] == ["acme"]


def test_customers_who_never_called_are_listed_with_zero_spend_and_counted_apart(ledger: Ledger) -> None:
    # a tenant's own profile is no customer who never called, even in a tenant with no unattributed calls
    ledger.upsert_customers([{"tenant_id": "globex", "display_name": "Globex Inc"}])
    plain, both = ledger.users(), ledger.users(include_inactive=True)
    assert (plain.total, plain.inactive, both.total, both.inactive) == (3, 0, 4, 1)
    assert both.rows[:3] == plain.rows
    (nina,) = both.rows[3:]
    assert (nina.tenant_id, nina.user_id, nina.display_name) == ("acme", "nina", "Nina Newcomer")
    assert (nina.usage.requests, nina.usage.cost, nina.usage.last_seen, nina.distinct_models) == (
        0,
        Decimal(0),
        None,
        0,
    )
    # the unattributed calls are the same with and without them, and never one of them
    assert both.unnamed == plain.unnamed and plain.unnamed is not None and plain.unnamed.requests == 1
    assert not [r for r in both.rows if not r.user_id]
    # a window in which alice did not call either: she is inactive then
    later = ledger.users(start=DAY + timedelta(hours=3), include_inactive=True)
    assert {r.user_id for r in later.rows if not r.usage.requests} == {"alice", "nina"}
    assert ledger.users(include_inactive=True, tenant_id="globex").inactive == 0
    assert ledger.users(include_inactive=True, search="newco").rows[0].user_id == "nina"
    assert ledger.user("nina").profile.display_name == "Nina Newcomer"  # type: ignore[union-attr]


def test_profiles_honour_pseudonymous_ids(store: Store, tmp_path: Path) -> None:
    """When the privacy settings store ids hashed, a profile imported by the application's own id is keyed by
    the same hash, and so names the calls stored under it."""

    def pseudonymize(user_id: str) -> str:
        return "u_" + hashlib.sha256(b"k" + user_id.encode()).hexdigest()[:16]

    hashed = pseudonymize("alice")
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    exporter.export([testing.llm_span(0, user=hashed, tenant="acme", at=DAY)])
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    profiles.upsert(
        store, read_text("user_id,tenant_id,display_name\nalice,acme,Alice\n", format="csv"), pseudonymize=pseudonymize
    )
    (row,) = Ledger(store).users().rows
    assert (row.user_id, row.display_name) == (hashed, "Alice")
    assert Ledger(store).customer("alice", tenant_id="acme") is None


def test_forget_removes_the_profile(ledger: Ledger) -> None:
    assert profiles.forget(ledger.store, "nina").profiles == 1
    assert ledger.users(include_inactive=True).inactive == 0
    with pytest.raises(ValueError, match="needs a user id"):
        profiles.forget(ledger.store, "")


def test_names_and_e_mails_never_reach_the_logs(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    """Every logger, at DEBUG, through a changing import, a search by name, a listing and a forget."""
    caplog.set_level(logging.DEBUG)
    changed = PEOPLE.replace("Alice Chen,alice@acme.example", "Alice Chen-Wu,alice.wu@acme.example")
    assert profiles.upsert(ledger.store, read_text(changed, format="csv")).updated == 1
    assert [r.user_id for r in ledger.users(search="Chen-Wu").rows] == ["alice"]
    assert ledger.users(include_inactive=True).inactive == 1
    assert profiles.forget(ledger.store, "alice", tenant_id="acme").profiles == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "profiles in" in logged and "forgot a user" in logged  # the writes were logged, by counts
    for secret in ("Alice", "Chen", "acme.example", "Nina", "newco"):
        assert secret not in logged


# --- the command line ------------------------------------------------------------------------------------------

_SEED = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from spanledger import CostExporter, testing
    day = datetime(2026, 6, 10, tzinfo=UTC)
    exporter = CostExporter(sys.argv[1])
    plan = [("alice", "acme")] * 3 + [("bob", "acme"), (None, "acme")]
    exporter.export([testing.llm_span(n, user=u, tenant=t, at=day + timedelta(hours=n)) for n, (u, t) in enumerate(plan)])
    exporter.export([testing.tool_span(100 + n, user="alice", tool=t, at=day) for n, t in enumerate(["search", "search", "sql"])])
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    """
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    env["COLUMNS"] = "160"
    return env


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanledger", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
        check=False,
    )


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    dsn = f"chdb://{tmp_path_factory.mktemp('customers-cli') / 'store'}"
    seeded = subprocess.run([sys.executable, "-c", _SEED, dsn], capture_output=True, text=True, timeout=180, env=_env())
    assert seeded.returncode == 0, seeded.stderr
    return dsn


def test_cli_imports_lists_and_shows_profiles(cli_store: str, tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE)
    first = cli("customers", "import", str(people), "--store", cli_store)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{people}: 5 row(s) · 5 created · 0 updated · 0 unchanged"
    again = cli("customers", "import", str(people), "--store", cli_store, "--format", "json")
    assert json.loads(again.stdout) == {"file": str(people), "rows": 5, "created": 0, "updated": 0, "unchanged": 5}
    listed = list(csv.DictReader(io.StringIO(cli("customers", "list", "--store", cli_store, "--format", "csv").stdout)))
    assert [(r["tenant_id"], r["user_id"], r["kind"], r["display_name"]) for r in listed] == [
        ("acme", "", "tenant", "ACME Corporation"),
        ("acme", "alice", "user", "Alice Chen"),
        ("acme", "bob", "user", "Bob Stone"),
        ("acme", "nina", "user", "Nina Newcomer"),
        ("globex", "carol", "user", "Carol Díaz"),
    ]
    shown = cli("customers", "show", "alice", "--tenant", "acme", "--store", cli_store)
    assert shown.returncode == 0 and "Alice Chen  alice  ·  tenant acme" in shown.stdout
    assert "alice@acme.example · plan pro" in shown.stdout
    table = cli("customers", "list", "--search", "díaz", "--store", cli_store).stdout
    assert "Carol Díaz" in table and "Alice" not in table
    missing = cli("customers", "show", "zed", "--store", cli_store)
    assert missing.returncode == 1 and "No profile for user 'zed'" in missing.stdout


def test_cli_rejects_a_bad_file_line_by_line_and_imports_nothing(cli_store: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": "x", "email": "nope"}\n{"user_id": "y"}\n[1]\n{"user_id": "y"}\n')
    result = cli("customers", "import", str(bad), "--store", cli_store)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"{bad}: line 1: email is not an e-mail address",
        f"{bad}: line 3: not an object",
        f"{bad}: line 4: user 'y' is already given on line 2",
        f"spanledger: error: {bad}: 3 bad row(s); nothing was imported",
    ]
    assert "line" not in cli("customers", "show", "y", "--store", cli_store).stderr
    assert cli("customers", "show", "y", "--store", cli_store).returncode == 1
    unknown = cli("customers", "import", str(tmp_path / "people.xlsx"), "--store", cli_store)
    assert unknown.returncode == 2 and unknown.stderr.startswith("spanledger: error: ") and ".xlsx" in unknown.stderr


def test_cli_users_show_names_tools_and_inactive_customers(cli_store: str, tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE)
    assert cli("customers", "import", str(people), "--store", cli_store).returncode == 0
    table = cli("users", "--store", cli_store, "--include-inactive").stdout
    assert "Alice Chen" in table and "Tools" in table and "Nina Newcomer" in table and "(no calls)" in table
    assert "2 users · 2 customers with no calls" in table  # nina, and carol of globex (no calls in this store)
    rows = list(
        csv.DictReader(io.StringIO(cli("users", "--store", cli_store, "--format", "csv", "--include-inactive").stdout))
    )
    assert [(r["user_id"], r["display_name"], r["tool_calls"], r["requests"]) for r in rows] == [
        ("alice", "Alice Chen", "3", "3"),
        ("bob", "Bob Stone", "0", "1"),
        ("nina", "Nina Newcomer", "0", "0"),
        ("carol", "Carol Díaz", "0", "0"),
    ]
    page = json.loads(cli("users", "--store", cli_store, "--format", "json", "--include-inactive").stdout)
    assert (page["total"], page["inactive"]) == (4, 2)
    found = json.loads(cli("users", "--store", cli_store, "--format", "json", "--search", "stone").stdout)
    assert [u["user_id"] for u in found["data"]] == ["bob"]
    tools = json.loads(cli("tools", "--store", cli_store, "--format", "json", "--per-user").stdout)
    assert [(t["user_id"], t["tool_name"], t["calls"]) for t in tools["data"]] == [
        ("alice", "search", 2),
        ("alice", "sql", 1),
    ]
    assert "search" in cli("tools", "--store", cli_store).stdout
    user = cli("user", "alice", "--store", cli_store).stdout
    assert "Alice Chen" in user and "Per tool" in user and "sql" in user
    detail = json.loads(cli("user", "alice", "--store", cli_store, "--format", "json").stdout)
    assert detail["profile"]["display_name"] == "Alice Chen" and [t["tool_name"] for t in detail["tools"]] == [
        "search",
        "sql",
    ]
